#!/usr/bin/env bash
# Live events: N WebSockets on the gateway's GET /v1/events, next to N
# subscribers straight on Redis (the reference: the same events without
# the gateway's hop) and N WebSockets on a libwebsockets server doing the
# same fan-out (bench/events_lws.c, the other design), measured in the
# same run: messages/s delivered,
# latency from PUBLISH to receipt (p50, p99), resident memory per
# connection. Starts a throw-away PostgreSQL, Redis and gateway; stops
# everything it started. Not a test: it never gates CI.
#
#   bench/events.sh [build-dir]        (default: build)
#
# BENCH_CONNS (1000), BENCH_EVENTS (2000, as fast as Redis takes them;
# the gateway's per-client queue is BENCH_MAX_QUEUE, 4 MiB, so that the
# burst measures the fan-out rather than the slow-client policy),
# BENCH_RATE_EVENTS (500) at BENCH_RATE per second (50) for latency.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-${BUILD:-build}}
gw=$top/$build/bin/vigil-gateway
conns=${BENCH_CONNS:-1000}
events=${BENCH_EVENTS:-2000}
rate_events=${BENCH_RATE_EVENTS:-500}
rate=${BENCH_RATE:-50}
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
tmp=$(mktemp -d /tmp/events-bench.XXXXXX)
pids=()

for t in redis-server curl python3 "$gw"; do
	command -v "$t" >/dev/null || { echo "missing: $t" >&2; exit 2; }
done

cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

ulimit -n $((conns * 2 + 256)) 2>/dev/null || true
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

gcc -O2 -o "$tmp/events_load" "$top/bench/events_load.c" -lhiredis
gcc -O2 -o "$tmp/events_lws" "$top/bench/events_lws.c" -lwebsockets -lhiredis -pthread

pgport=$(free_port); rport=$(free_port); gport=$(free_port); hport=$(free_port)
lport=$(free_port)
mkdir -p "$tmp/pg" && chmod 777 "$tmp" && chown -R postgres "$tmp/pg" 2>/dev/null || true
as_pg "$pgbin/initdb" -D "$tmp/pg" -U postgres -A trust -E UTF8 --no-sync >/dev/null
as_pg "$pgbin/postgres" -D "$tmp/pg" -p "$pgport" -k "$tmp" -c listen_addresses=127.0.0.1 \
	-c fsync=off >"$tmp/pg.log" 2>&1 &
pids+=($!)
redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no \
	--maxclients $((conns * 2 + 100)) --dir "$tmp" >"$tmp/redis.log" 2>&1 &
rpid=$!
pids+=($rpid)
for _ in $(seq 50); do
	as_pg "$pgbin/pg_isready" -q -h 127.0.0.1 -p "$pgport" && break
	sleep 0.2
done
as_pg "$pgbin/psql" -q -h 127.0.0.1 -p "$pgport" -U postgres -c 'CREATE DATABASE vigil'

key=bench-bootstrap-key-0123456789abcdef0123
VIGIL_DB_HOST=127.0.0.1 VIGIL_DB_PORT=$pgport VIGIL_DB_USER=postgres \
	VIGIL_DB_APP_USER=vigil_app VIGIL_DB_SSLMODE=disable \
	VIGIL_REDIS_HOST=127.0.0.1 VIGIL_REDIS_PORT=$rport \
	VIGIL_GATEWAY_LISTEN=127.0.0.1:$gport VIGIL_HEALTH_LISTEN=127.0.0.1:$hport \
	VIGIL_BOOTSTRAP_ADMIN_KEY=$key VIGIL_SESSION_KEY=bench \
	VIGIL_ACCESS_LOG=false VIGIL_LOG_LEVEL=warn VIGIL_AUTH_FAIL_LIMIT=1000000 \
	VIGIL_GATEWAY_LOOPS=2 VIGIL_GATEWAY_MAX_CONNS=$((conns + 100)) \
	VIGIL_EVENTS_MAX_QUEUE=${BENCH_MAX_QUEUE:-4194304} \
	"$gw" 2>"$tmp/gw.log" &
gpid=$!
pids+=($gpid)
for _ in $(seq 100); do
	curl -sf "http://127.0.0.1:$gport/readyz" >/dev/null && break
	sleep 0.2
done

"$tmp/events_lws" "$lport" "$rport" 2>"$tmp/lws.log" &
lpid=$!
pids+=($lpid)
sleep 0.5

tid=$(curl -sf -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
	-d '{"k8s_uid":"00000000-0000-4000-8000-0000000000e1","name":"bench"}' \
	"http://127.0.0.1:$gport/v1/tenants" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
viewer=$(curl -sf -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
	-d '{"name":"bench","role":"viewer"}' \
	"http://127.0.0.1:$gport/v1/tenants/$tid/api-keys" | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')

run() { # mode port events rate token pid
	"$tmp/events_load" "$1" 127.0.0.1 "$2" "$conns" "$3" "$4" "$rport" "$tid" "$5" "$6" || true
}
val() { echo "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k {print $2}'; }

echo "$conns subscribers, $(nproc) cores shared by Redis, the gateway and the client"
ref_t=$(run redis "$rport" "$events" 0 - "$rpid")
gw_t=$(run ws "$gport" "$events" 0 "$viewer" "$gpid")
lws_t=$(run ws "$lport" "$events" 0 - "$lpid")
ref_l=$(run redis "$rport" "$rate_events" "$rate" - "$rpid")
gw_l=$(run ws "$gport" "$rate_events" "$rate" "$viewer" "$gpid")
lws_l=$(run ws "$lport" "$rate_events" "$rate" - "$lpid")

per_conn() { # line: KiB per connection
	echo "scale=1; ($(val "$1" rss_kb_connected) - $(val "$1" rss_kb_before)) / $conns" | bc -l
}
printf '%-34s %12s %9s %9s %14s\n' "" "msgs/s" "p50 ms" "p99 ms" "RSS KiB/conn"
printf '%-34s %12s %9s %9s %14s\n' "Redis pub/sub direct (reference)" \
	"$(val "$ref_t" msgs_per_s)" "$(val "$ref_l" p50_ms)" "$(val "$ref_l" p99_ms)" "$(per_conn "$ref_t")"
printf '%-34s %12s %9s %9s %14s\n' "gateway /v1/events (WebSocket)" \
	"$(val "$gw_t" msgs_per_s)" "$(val "$gw_l" p50_ms)" "$(val "$gw_l" p99_ms)" "$(per_conn "$gw_t")"
printf '%-34s %12s %9s %9s %14s\n' "libwebsockets 4.1 (no auth)" \
	"$(val "$lws_t" msgs_per_s)" "$(val "$lws_l" p50_ms)" "$(val "$lws_l" p99_ms)" "$(per_conn "$lws_t")"
printf 'ratio libwebsockets/reference: throughput %.2f, p50 %.2f, p99 %.2f\n' \
	"$(echo "$(val "$lws_t" msgs_per_s) / $(val "$ref_t" msgs_per_s)" | bc -l)" \
	"$(echo "$(val "$lws_l" p50_ms) / $(val "$ref_l" p50_ms)" | bc -l)" \
	"$(echo "$(val "$lws_l" p99_ms) / $(val "$ref_l" p99_ms)" | bc -l)"
printf 'ratio gateway/reference: throughput %.2f, p50 %.2f, p99 %.2f\n' \
	"$(echo "$(val "$gw_t" msgs_per_s) / $(val "$ref_t" msgs_per_s)" | bc -l)" \
	"$(echo "$(val "$gw_l" p50_ms) / $(val "$ref_l" p50_ms)" | bc -l)" \
	"$(echo "$(val "$gw_l" p99_ms) / $(val "$ref_l" p99_ms)" | bc -l)"
kill -0 "$gpid" 2>/dev/null || { echo "the gateway died:" >&2; tail -5 "$tmp/gw.log" >&2; }
if [ -n "${BENCH_DETAIL:-}" ]; then
	printf '%s\n' "$ref_t" "$gw_t" "$lws_t" "$ref_l" "$gw_l" "$lws_l"
fi
