# e2e/lib/platform.sh - vigil's platform services (gateway, worker, brain)
# as local processes on a real PostgreSQL and Redis, wired the way the
# operator's ConfigMap wires them in a cluster (the VIGIL_* environment).
# Source after e2e/lib/operator.sh and e2e/lib/services.sh, with PG_PORT
# and REDIS_PORT set (pg_start, redis_start).
#
#   platform_start     sets GW_PORT, GW_URL, GW_HEALTH, ADMIN_KEY, BRAIN_URL and the
#                      PIDs PLAT_GATEWAY_PID, PLAT_WORKER_PID, PLAT_BRAIN_PID
#   platform_stop      SIGTERM each, fail on a sanitizer report
#   gw METHOD PATH [curl args]   the gateway API as the platform admin

PLAT_LOG=${PLAT_LOG:-$E2E_STATE}

# the environment every service shares: the platform database (migrated by
# the gateway as the database owner; the services work as vigil_app, which
# the trust authentication of the test server lets in) and Redis
plat_env() {
	# the brain's API token, shared by the three (as the operator's
	# <platform>-brain-token Secret is)
	: "${VIGIL_BRAIN_TOKEN:=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')}"
	export VIGIL_BRAIN_TOKEN
	export VIGIL_DB_HOST=127.0.0.1 VIGIL_DB_PORT=$PG_PORT VIGIL_DB_NAME=vigil \
		VIGIL_DB_SSLMODE=disable VIGIL_REDIS_HOST=127.0.0.1 \
		VIGIL_REDIS_PORT=$REDIS_PORT VIGIL_LOG_LEVEL=${VIGIL_LOG_LEVEL:-info}
}

# plat_wait_http URL PID NAME LOG: until URL answers 200
plat_wait_http() {
	for _ in $(seq 1 150); do
		curl -sf "$1" >/dev/null 2>&1 && return 0
		kill -0 "$2" 2>/dev/null || { tail -n 30 "$4"; fail "$3 exited during start-up"; }
		sleep 0.2
	done
	tail -n 30 "$4"
	fail "$3 not ready within 30 s"
}

platform_start() {
	local hp
	plat_env
	psql -XAtq "postgresql://postgres@127.0.0.1:$PG_PORT/postgres" \
		-c "CREATE DATABASE vigil" >/dev/null 2>&1 || true
	ADMIN_KEY=${ADMIN_KEY:-vgk_00000000_$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=' | head -c 43)}
	GW_PORT=$(free_port)
	GW_HEALTH=$(free_port)
	GW_URL=http://127.0.0.1:$GW_PORT
	VIGIL_DB_USER=postgres VIGIL_DB_APP_USER=vigil_app \
		VIGIL_GATEWAY_LISTEN=127.0.0.1:$GW_PORT VIGIL_HEALTH_LISTEN=127.0.0.1:$GW_HEALTH \
		VIGIL_BOOTSTRAP_ADMIN_KEY=$ADMIN_KEY VIGIL_SESSION_KEY=e2e-session-key \
		"$VIGIL_BUILD/bin/vigil-gateway" >"$PLAT_LOG/gateway.log" 2>&1 &
	PLAT_GATEWAY_PID=$!
	echo "$PLAT_GATEWAY_PID" >"$PLAT_LOG/gateway.pid"
	plat_wait_http "http://127.0.0.1:$GW_HEALTH/readyz" "$PLAT_GATEWAY_PID" vigil-gateway "$PLAT_LOG/gateway.log"

	hp=$(free_port)
	VIGIL_DB_USER=vigil_app VIGIL_HEALTH_PORT=$hp \
		"$VIGIL_BUILD/bin/vigil-worker" >"$PLAT_LOG/worker.log" 2>&1 &
	PLAT_WORKER_PID=$!
	echo "$PLAT_WORKER_PID" >"$PLAT_LOG/worker.pid"
	plat_wait_http "http://127.0.0.1:$hp/readyz" "$PLAT_WORKER_PID" vigil-worker "$PLAT_LOG/worker.log"

	PLAT_BRAIN_PID=
	if [ -x "$VIGIL_BUILD/bin/vigil-brain" ]; then
		hp=$(free_port)
		BRAIN_PORT=$(free_port)
		BRAIN_URL=http://127.0.0.1:$BRAIN_PORT
		VIGIL_DB_USER=vigil_app VIGIL_HEALTH_PORT=$hp \
			VIGIL_BRAIN_LISTEN=127.0.0.1:$BRAIN_PORT \
			"$VIGIL_BUILD/bin/vigil-brain" >"$PLAT_LOG/brain.log" 2>&1 &
		PLAT_BRAIN_PID=$!
		echo "$PLAT_BRAIN_PID" >"$PLAT_LOG/brain.pid"
		plat_wait_http "http://127.0.0.1:$hp/readyz" "$PLAT_BRAIN_PID" vigil-brain "$PLAT_LOG/brain.log"
	fi
}

# plat_stop_one PID NAME LOG: SIGTERM, wait up to 15 s, exit 0, no sanitizer report
plat_stop_one() {
	local pid=$1 name=$2 log=$3 rc=0
	[ -n "$pid" ] || return 0
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid"
		for _ in $(seq 1 150); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -0 "$pid" 2>/dev/null && { kill -KILL "$pid"; fail "$name ignored SIGTERM for 15 s"; }
	fi
	wait "$pid" 2>/dev/null || rc=$?
	if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$log"; then
		grep -A 30 -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$log" | head -n 60
		fail "$name: sanitizer report in $log"
	fi
	[ $rc -eq 0 ] || fail "$name exited with $rc after SIGTERM"
}

platform_stop() {
	plat_stop_one "${PLAT_BRAIN_PID:-}" vigil-brain "$PLAT_LOG/brain.log"
	plat_stop_one "${PLAT_WORKER_PID:-}" vigil-worker "$PLAT_LOG/worker.log"
	plat_stop_one "${PLAT_GATEWAY_PID:-}" vigil-gateway "$PLAT_LOG/gateway.log"
	PLAT_BRAIN_PID= PLAT_WORKER_PID= PLAT_GATEWAY_PID=
}

# platform_kill: for cleanup traps
platform_kill() {
	local p
	for p in "${PLAT_BRAIN_PID:-}" "${PLAT_WORKER_PID:-}" "${PLAT_GATEWAY_PID:-}"; do
		[ -n "$p" ] && kill -KILL "$p" 2>/dev/null
	done
	PLAT_BRAIN_PID= PLAT_WORKER_PID= PLAT_GATEWAY_PID=
	return 0
}

gw() {
	local m=$1 p=$2
	shift 2
	curl -sS -X "$m" -H "Authorization: Bearer $ADMIN_KEY" -H 'Content-Type: application/json' \
		"$GW_URL$p" "$@"
}
