#!/usr/bin/env bash
# The gateway's HTTP throughput next to nginx's `return 200`, measured in
# the same run on this machine (wrk, keep-alive, loopback), printed as
# ratios. Starts a throw-away PostgreSQL and Redis; stops everything it
# started. Not a test: it never gates CI.
#
#   controlplane/gateway/bench/http.sh [build-dir]     (default: build)
#
# Needs wrk and nginx (Debian packages wrk, nginx-light or nginx).
set -euo pipefail

top=$(cd "$(dirname "$0")/../../.." && pwd)
build=${1:-build}
gw=$top/$build/bin/vigil-gateway
secs=${BENCH_SECONDS:-8}
conns=${BENCH_CONNECTIONS:-50}
pgbin=/usr/lib/postgresql/15/bin
tmp=$(mktemp -d /tmp/gw-bench.XXXXXX)
pids=()

for t in wrk nginx "$gw"; do
	command -v "$t" >/dev/null || { echo "missing: $t" >&2; exit 2; }
done

cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

pgport=$(free_port); rport=$(free_port); gport=$(free_port)
hport=$(free_port); nport=$(free_port)

mkdir -p "$tmp/pg" && chmod 777 "$tmp" && chown -R postgres "$tmp/pg" 2>/dev/null || true
as_pg "$pgbin/initdb" -D "$tmp/pg" -U postgres -A trust -E UTF8 --no-sync >/dev/null
as_pg "$pgbin/postgres" -D "$tmp/pg" -p "$pgport" -k "$tmp" -c listen_addresses=127.0.0.1 \
	-c fsync=off >"$tmp/pg.log" 2>&1 &
pids+=($!)
redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no \
	--dir "$tmp" >"$tmp/redis.log" 2>&1 &
pids+=($!)
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
	"$gw" 2>"$tmp/gw.log" &
pids+=($!)
for _ in $(seq 100); do
	curl -sf "http://127.0.0.1:$gport/readyz" >/dev/null && break
	sleep 0.2
done

# an agent token: the hot path of agents polling the emergency stop
tid=$(curl -sf -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
	-d '{"k8s_uid":"00000000-0000-4000-8000-0000000000b1","name":"bench"}' \
	"http://127.0.0.1:$gport/v1/tenants" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
agent=$(curl -sf -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
	-d '{"name":"bench","role":"agent"}' \
	"http://127.0.0.1:$gport/v1/tenants/$tid/api-keys" | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')

# (b) a tenant with FINDINGS findings (default 100,000) in one run, read
# by an analyst key 50 at a time, as the findings page of a UI does
nfind=${FINDINGS:-100000}
analyst=$(curl -sf -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
	-d '{"name":"bench-analyst","role":"analyst"}' \
	"http://127.0.0.1:$gport/v1/tenants/$tid/api-keys" | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
as_pg "$pgbin/psql" -q -h 127.0.0.1 -p "$pgport" -U postgres -d vigil -v ON_ERROR_STOP=1 <<SQL
INSERT INTO vigil.scan_runs (id, tenant_id, job_name, state, shards, shards_done)
VALUES ('00000000-0000-4000-8000-00000000b00c', '$tid', 'bench-run', 'succeeded', 1, 1);
INSERT INTO vigil.findings (tenant_id, run_id, batch_id, host, port, scanner,
	severity, fingerprint, title, evidence, first_seen, last_seen)
SELECT '$tid', '00000000-0000-4000-8000-00000000b00c', 'b' || (i / 500),
	'10.' || (i / 65536) % 256 || '.' || (i / 256) % 256 || '.' || i % 256,
	(ARRAY[22, 80, 443, 3389, 8080])[1 + i % 5], 'tcp',
	(ARRAY['info', 'low', 'medium', 'high', 'critical'])[1 + i % 5]::vigil.severity,
	md5(i::text), 'finding ' || i, jsonb_build_object('check', 'bench', 'i', i),
	now() - (i || ' seconds')::interval, now() - (i || ' seconds')::interval
FROM generate_series(1, $nfind) AS i;
ANALYZE vigil.findings;
SQL

cat >"$tmp/nginx.conf" <<NGINX
worker_processes 2;
daemon off;
pid $tmp/nginx.pid;
error_log $tmp/nginx-error.log;
events { worker_connections 4096; }
http {
	access_log off;
	keepalive_requests 1000000;
	server { listen 127.0.0.1:$nport; location / { return 200 "ok\n"; } }
}
NGINX
nginx -c "$tmp/nginx.conf" &
pids+=($!)
sleep 0.5

rate() { # url [header]
	local out
	if [ $# -gt 1 ]; then
		out=$(wrk -t1 -c"$conns" -d"${secs}s" --latency -H "$2" "$1")
	else
		out=$(wrk -t1 -c"$conns" -d"${secs}s" --latency "$1")
	fi
	echo "$out" >"$tmp/last-wrk.txt"
	echo "$out" | awk '/Requests\/sec/ {print $2}'
}
# p50 and p99 of the last rate() run
lat() { awk '$1 == "50%" {p50 = $2} $1 == "99%" {p99 = $2} END {printf "p50 %s p99 %s", p50, p99}' "$tmp/last-wrk.txt"; }

ref=$(rate "http://127.0.0.1:$nport/")
if [ -n "${BENCH_DETAIL:-}" ]; then
	echo "whoami (bootstrap: Redis only): $(rate "http://127.0.0.1:$gport/v1/whoami" "Authorization: Bearer $key")"
	echo "estop (bootstrap: Redis + 1 query): $(rate "http://127.0.0.1:$gport/v1/emergency-stop" "Authorization: Bearer $key")"
	echo "whoami (agent: Redis + key lookup): $(rate "http://127.0.0.1:$gport/v1/whoami" "Authorization: Bearer $agent")"
fi
health=$(rate "http://127.0.0.1:$gport/healthz")
health_lat=$(lat)
estop=$(rate "http://127.0.0.1:$gport/v1/emergency-stop" "Authorization: Bearer $agent")
estop_lat=$(lat)
find=$(rate "http://127.0.0.1:$gport/v1/tenants/$tid/findings?limit=50" "Authorization: Bearer $analyst")
find_lat=$(lat)
# the ceiling under it: PostgreSQL alone running the same page query
# (pgbench, prepared, generic plan, the tenant set per session, text rows)
# on the same cores, with as many clients as the gateway has connections
cat >"$tmp/page.sql" <<SQL
SELECT id, run_id, batch_id, host, port, protocol, scanner, severity, fingerprint,
 title, evidence, state, first_seen, last_seen, severity, last_seen, id
 FROM findings WHERE tenant_id = current_tenant()
 ORDER BY severity_rank DESC, last_seen DESC, id DESC LIMIT 51;
SQL
pg_ref=$(as_pg env PGOPTIONS="-c vigil.tenant_id=$tid -c search_path=vigil -c plan_cache_mode=force_generic_plan" \
	"$pgbin/pgbench" -n -h 127.0.0.1 -p "$pgport" -U vigil_app -c 16 -j 2 -T "$secs" -M prepared \
	-f "$tmp/page.sql" vigil 2>/dev/null | awk '/^tps/ {printf "%.0f", $3}')
n50=$(curl -sf -H "Authorization: Bearer $analyst" "http://127.0.0.1:$gport/v1/tenants/$tid/findings?limit=50" |
	python3 -c 'import json,sys; print(len(json.load(sys.stdin)["items"]))')
echo "wrk -t1 -c$conns -d${secs}s, $(nproc) cores, keep-alive"
printf '%-44s %10s req/s\n' "nginx return 200 (2 workers)" "$ref"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "?" }'; }
printf '%-50s %10s req/s  ratio %s  %s\n' "gateway GET /healthz (event loop)" "$health" \
	"$(ratio "$health" "$ref")" "$health_lat"
printf '%-50s %10s req/s  ratio %s  %s\n' "gateway GET /v1/emergency-stop (agent key)" "$estop" \
	"$(ratio "$estop" "$ref")" "$estop_lat"
printf '%-50s %10s req/s  ratio %s  %s\n' "gateway GET findings?limit=50 ($nfind findings)" "$find" \
	"$(ratio "$find" "$ref")" "$find_lat"
printf '%-50s %10s q/s    gateway/PostgreSQL %s\n' "PostgreSQL alone, the same page query (pgbench)" \
	"${pg_ref:-?}" "$(ratio "$find" "${pg_ref:-0}")"
echo "(each findings page held $n50 findings; goals: /healthz >= 0.5 x nginx; findings >= 10,000 req/s, p99 < 20 ms)"
