#!/usr/bin/env bash
# make demo: the whole platform on this machine, and a real scan.
#
#   the local Kubernetes control plane (etcd, kube-apiserver, controller-
#   manager, scheduler, kwok nodes), vigil's CRDs and the operator's RBAC;
#   PostgreSQL and Redis on loopback; vigil-gateway, vigil-worker and
#   vigil-brain as local processes, which the Platform names as its
#   external services; vigil-operator as its ServiceAccount; demo targets
#   with known weaknesses; a Tenant whose scope covers them and a
#   ScanPolicy that scans them. The operator creates the agent Job; each of
#   its pods is run here as the real vigil-agent with exactly the pod's
#   command, arguments and environment. Findings land in PostgreSQL, the
#   brain writes the report.
#
#   scripts/demo.sh        start (a second run restarts the services and
#                          scans again; the cluster and database stay)
#   scripts/demo.sh down   stop exactly what the demo started
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
export E2E_STATE=$top/.demo
export VIGIL_BUILD=build
export PLAT_LOG=$E2E_STATE
mkdir -p "$E2E_STATE"

NS=vigil-system
TENANT=demo
TNS=tenant-demo
POLICY=demo-scan

bold() { printf '\033[1m%s\033[0m\n' "$*"; }
step() { printf '\n'; bold "==> $*"; }
info() { printf '    %s\n' "$*"; }

# stop_pidfile FILE EXE: stop the process recorded in FILE if it still is
# EXE (checked through /proc/PID/exe), then forget it
stop_pidfile() {
	local f=$1 exe=$2 pid
	[ -f "$f" ] || return 0
	pid=$(tr -dc '0-9' <"$f")
	# (a binary rebuilt since it started shows as "PATH (deleted)")
	if [ -n "$pid" ] && [ "$(readlink "/proc/$pid/exe" 2>/dev/null | sed 's/ (deleted)$//')" = "$exe" ]; then
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 1 75); do
			[ -d "/proc/$pid" ] || break
			sleep 0.2
		done
		[ -d "/proc/$pid" ] && kill -KILL "$pid" 2>/dev/null
	fi
	rm -f "$f"
}

# alive FILE EXE: the process recorded in FILE runs EXE
alive() {
	local pid
	[ -f "$1" ] || return 1
	pid=$(tr -dc '0-9' <"$1")
	[ -n "$pid" ] && [ "$(readlink "/proc/$pid/exe" 2>/dev/null | sed 's/ (deleted)$//')" = "$2" ]
}


stop_services() {
	stop_pidfile "$E2E_STATE/operator-demo.pid" "$top/build/bin/vigil-operator"
	stop_pidfile "$E2E_STATE/brain.pid" "$top/build/bin/vigil-brain"
	stop_pidfile "$E2E_STATE/worker.pid" "$top/build/bin/vigil-worker"
	stop_pidfile "$E2E_STATE/gateway.pid" "$top/build/bin/vigil-gateway"
	# python3 may be a wrapper: the binary it ran was recorded at start
	stop_pidfile "$E2E_STATE/targets.pid" "$(cat "$E2E_STATE/targets.exe" 2>/dev/null)"
}

down() {
	step "stopping what the demo started"
	stop_services
	stop_pidfile "$E2E_STATE/redis.pid" "$(readlink -f "$(command -v redis-server)")"
	stop_pidfile "$E2E_STATE/postgres.pid" /usr/lib/postgresql/15/bin/postgres
	for d in postgres.dir redis.dir; do
		[ -f "$E2E_STATE/$d" ] && rm -rf "$(cat "$E2E_STATE/$d")" "$(cat "$E2E_STATE/$d").log"
	done
	rm -rf "$E2E_STATE"
	bash e2e/cluster/down.sh
}

if [ "${1:-}" = down ]; then
	down
	exit 0
fi

t_start=$SECONDS
# a second `make demo`: the services start afresh, the rest is reused
stop_services

step "local Kubernetes control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok)"
bash e2e/cluster/up.sh 2>&1 | grep -E 'ready in|cluster is up|building|built' | sed 's/^/    /'
# shellcheck disable=SC1091
. .cluster/env
export KUBECONFIG
# shellcheck source=../e2e/lib/operator.sh
. e2e/lib/operator.sh
# shellcheck source=../e2e/lib/services.sh
. e2e/lib/services.sh
# shellcheck source=../e2e/lib/platform.sh
. e2e/lib/platform.sh
# shellcheck source=../e2e/lib/targets.sh
. e2e/lib/targets.sh
# shellcheck source=../e2e/lib/agentpod.sh
. e2e/lib/agentpod.sh
kubectl get nodes --no-headers | sed 's/^/    /'

step "vigil's API: CustomResourceDefinitions and the operator's RBAC"
install_crds_rbac
kubectl get crd -o name | grep vigil.dev | sed 's/^/    /'

step "PostgreSQL and Redis on loopback"
if alive "$E2E_STATE/postgres.pid" /usr/lib/postgresql/15/bin/postgres; then
	PG_PORT=$(cat "$E2E_STATE/postgres.port")
	info "PostgreSQL: reusing 127.0.0.1:$PG_PORT"
else
	pg_start
	echo "$PG_PID" >"$E2E_STATE/postgres.pid"
	echo "$PG_DIR" >"$E2E_STATE/postgres.dir"
	echo "$PG_PORT" >"$E2E_STATE/postgres.port"
	info "PostgreSQL 15: 127.0.0.1:$PG_PORT (pid $PG_PID)"
fi
if alive "$E2E_STATE/redis.pid" "$(readlink -f "$(command -v redis-server)")"; then
	REDIS_PORT=$(cat "$E2E_STATE/redis.port")
	info "Redis: reusing 127.0.0.1:$REDIS_PORT"
else
	redis_start
	echo "$REDIS_PID" >"$E2E_STATE/redis.pid"
	echo "$REDIS_DIR" >"$E2E_STATE/redis.dir"
	echo "$REDIS_PORT" >"$E2E_STATE/redis.port"
	info "Redis: 127.0.0.1:$REDIS_PORT (pid $REDIS_PID)"
fi
DB_URL="postgresql://postgres@127.0.0.1:$PG_PORT/vigil"

step "vigil-gateway, vigil-worker, vigil-brain"
[ -f "$E2E_STATE/admin-key" ] && ADMIN_KEY=$(cat "$E2E_STATE/admin-key")
platform_start
(umask 077 && echo "$ADMIN_KEY" >"$E2E_STATE/admin-key")
info "gateway $GW_URL (pid $PLAT_GATEWAY_PID), worker (pid $PLAT_WORKER_PID), brain (pid ${PLAT_BRAIN_PID:-none})"

step "demo targets: an SSH banner, TLS with an expired self-signed certificate, HTTP without security headers"
# the same ports as the last demo when they are free, so a second scan
# finds the same services (findings persist rather than all being new)
# shellcheck disable=SC2046
targets_start "$E2E_STATE/targets" $(cat "$E2E_STATE/targets.ports" 2>/dev/null)
echo "$TGT_PID" >"$E2E_STATE/targets.pid"
readlink "/proc/$TGT_PID/exe" >"$E2E_STATE/targets.exe"
echo "$TGT_SSH $TGT_TLS $TGT_HTTP $TGT_CLOSED" >"$E2E_STATE/targets.ports"
info "127.0.0.2:$TGT_SSH ssh   127.0.0.3:$TGT_TLS tls   127.0.0.4:$TGT_HTTP http   port $TGT_CLOSED closed"

step "vigil-operator (as the vigil-operator ServiceAccount, with the shipped RBAC)"
rm -f "$E2E_STATE/operator.kubeconfig"
operator_start demo --database-url "$DB_URL" --agent-gateway-url "$GW_URL" \
	--agent-image vigil/vigil-agent:latest
info "pid $OP_demo_PID, metrics http://127.0.0.1:$OP_demo_METRICS/metrics, log $E2E_STATE/operator-demo.log"

step "the Platform, a Tenant and a ScanPolicy (kubectl apply)"
kubectl -n "$NS" create secret generic vigil-postgres --from-literal=username=postgres \
	--from-literal=password=unused-trust-auth --dry-run=client -o yaml | kubectl apply -f - >/dev/null
run_now=$(date -u +%Y%m%dT%H%M%SZ)
kubectl apply -f - <<YAML | sed 's/^/    /'
apiVersion: vigil.dev/v1alpha1
kind: Platform
metadata:
  name: vigil
  namespace: $NS
spec:
  version: 0.1.0
  database:
    external:
      host: 127.0.0.1
      port: $PG_PORT
      database: vigil
      sslMode: disable
      credentialsSecret: {name: vigil-postgres}
  redis:
    external: {host: 127.0.0.1, port: $REDIS_PORT}
---
apiVersion: vigil.dev/v1alpha1
kind: Tenant
metadata:
  name: $TENANT
spec:
  displayName: Demo tenant
  allowedTargets: [127.0.0.0/29]
  quota: {maxConcurrentScans: 2, maxAgentPods: 4}
---
apiVersion: vigil.dev/v1alpha1
kind: ScanPolicy
metadata:
  name: $POLICY
  namespace: $TNS
  annotations:
    vigil.dev/run-now: "$run_now"
spec:
  targets: [127.0.0.2-127.0.0.4]
  ports: "$TGT_SSH,$TGT_TLS,$TGT_HTTP,$TGT_CLOSED"
  scanners: [tcp, banner, tls, http]
  allowLoopback: true
  schedule: "0 3 * * 0"
  timeZone: Etc/UTC
  parallelism: 2
  rateLimit: {packetsPerSecond: 200, perTargetPerSecond: 50}
  connectTimeoutMilliseconds: 1000
YAML

printf '    waiting for the tenant (namespace, database row, agent token) '
for _ in $(seq 1 120); do
	tid=$(kubectl get tenant "$TENANT" -o jsonpath='{.status.databaseID}' 2>/dev/null || true)
	keys=$(psql -XAtq "$DB_URL" -c "SELECT count(*) FROM vigil.api_keys WHERE tenant_id = '${tid:-00000000-0000-0000-0000-000000000000}' AND role = 'agent' AND revoked_at IS NULL" 2>/dev/null || echo 0)
	[ -n "$tid" ] && [ "$keys" = 1 ] && break
	printf '.'
	sleep 0.5
done
echo
[ -n "$tid" ] || fail "the Tenant got no database row"
info "tenant $TENANT is $tid in the platform database"

printf '    waiting for the agent Job '
job=
for _ in $(seq 1 120); do
	if [ "$(kubectl -n "$TNS" get scanpolicy "$POLICY" -o jsonpath='{.status.lastRunNow}' 2>/dev/null)" = "$run_now" ]; then
		job=$(kubectl -n "$TNS" get scanpolicy "$POLICY" -o jsonpath='{.status.lastRun.name}')
		[ -n "$job" ] && [ "$(kubectl -n "$TNS" get pods -l "job-name=$job" -o name 2>/dev/null | wc -l)" -ge 2 ] && break
	fi
	printf '.'
	sleep 0.5
done
echo
[ -n "$job" ] || fail "no agent Job for the ScanPolicy"
mapfile -t pods < <(kubectl -n "$TNS" get pods -l "job-name=$job" -o json |
	jq -r '.items | sort_by(.metadata.annotations["batch.kubernetes.io/job-completion-index"]) | .[].metadata.name')
info "Job $job: pods ${pods[*]} (one per shard, on kwok nodes)"

step "the scan: each agent pod's command, arguments and environment, run here"
kubectl -n "$TNS" get pod "${pods[0]}" -o json |
	jq -r '.spec.containers[0] | "    " + ([.command[0]] + .args | join(" "))'
declare -a apids=()
for p in "${pods[@]}"; do
	run_pod "$TNS" "$p" "$E2E_STATE/agent-$p.log" &
	apids+=($!)
done
# progress: the agents' own JSON lines
while :; do
	running=0
	for pid in "${apids[@]}"; do kill -0 "$pid" 2>/dev/null && running=$((running + 1)); done
	line=
	for p in "${pods[@]}"; do
		l=$(grep -h '"probes_sent"' "$E2E_STATE/agent-$p.log" 2>/dev/null | tail -n 1 |
			jq -r '"probes \(.probes_sent // 0), open \(.open_ports // 0), findings \(.findings // 0)"' 2>/dev/null || true)
		line+="  [${p##*-once-}${l:+: $l}]"
	done
	if [ -t 1 ]; then
		printf '\r    %d agent(s) running%s   ' "$running" "$line"
	elif [ "$line" != "${last_line:-}" ] || [ $running -eq 0 ]; then
		printf '    %d agent(s) running%s\n' "$running" "$line"
	fi
	last_line=$line
	[ $running -eq 0 ] && break
	sleep 1
done
echo
rcs=()
for pid in "${apids[@]}"; do
	rc=0
	wait "$pid" || rc=$?
	rcs+=("$rc")
done
info "agent exit codes: ${rcs[*]} (0: done, results delivered)"

printf '    waiting for the worker to finalize the run and the brain to report '
run=
for _ in $(seq 1 120); do
	run=$(psql -XAtq "$DB_URL" -c "SELECT id FROM vigil.scan_runs WHERE job_name = '$job' AND state = 'succeeded'" 2>/dev/null || true)
	if [ -n "$run" ] && [ "$(psql -XAtq "$DB_URL" -c "SELECT count(*) FROM vigil.reports WHERE run_id = '$run' AND state = 'ready'")" -ge 1 ]; then
		break
	fi
	printf '.'
	sleep 0.5
done
echo
[ -n "$run" ] || fail "the run did not finish (see $E2E_STATE/worker.log)"

# the report, through the API, as a tenant analyst would fetch it
if [ ! -f "$E2E_STATE/api-key" ] || [ "$(cat "$E2E_STATE/api-key.tenant" 2>/dev/null)" != "$tid" ]; then
	gw POST "/v1/tenants/$tid/api-keys" -d '{"name":"demo","role":"analyst"}' | jq -r .key >"$E2E_STATE/api-key"
	echo "$tid" >"$E2E_STATE/api-key.tenant"
	chmod 600 "$E2E_STATE/api-key"
fi
KEY=$(cat "$E2E_STATE/api-key")
api() { curl -sS -H "Authorization: Bearer $KEY" "$GW_URL$1"; }
report_file=
reports=$(api "/v1/tenants/$tid/reports?limit=50")
rep=$(jq -c --arg r "$run" '[.items[]? | select(.run_id == $r and .state == "ready")][0] // empty' <<<"$reports")
if [ -n "$rep" ]; then
	case $(jq -r '.content_type // .format' <<<"$rep") in
	*html*) ext=html ;;
	*) ext=json ;;
	esac
	report_file=$E2E_STATE/report-$run.$ext
	api "/v1/tenants/$tid/reports/$(jq -r .id <<<"$rep")/content" >"$report_file"
	api "/v1/tenants/$tid/reports/$(jq -r .id <<<"$rep")" | jq .summary >"$E2E_STATE/report-$run.summary.json"
fi

# the operator reads the run's results into the ScanPolicy's status
for _ in $(seq 1 40); do
	st=$(kubectl -n "$TNS" get scanpolicy "$POLICY" -o json |
		jq -c '.status.lastRun | select(.findings) | {phase, findings, openPorts}')
	[ -n "$st" ] && break
	sleep 0.5
done

step "done in $((SECONDS - t_start)) s"
echo
kubectl get platforms,tenants -A 2>/dev/null | sed 's/^/    /'
echo
kubectl get scanpolicies -A -o wide 2>/dev/null | sed 's/^/    /'
echo
bold "    findings of run $run (job $job), by severity:"
api "/v1/tenants/$tid/findings?run_id=$run&limit=500" |
	jq -r '.items | group_by(.severity) | map({s: .[0].severity, n: length}) |
		sort_by({"critical":0,"high":1,"medium":2,"low":3,"info":4}[.s]) | .[] |
		"      \(.s)\t\(.n)"'
echo
bold "    the top findings:"
api "/v1/tenants/$tid/findings?run_id=$run&severity=critical,high,medium&limit=8" |
	jq -r '.items[] | "      \(.severity)\t\(.host):\(.port)\t\(.title)"'
echo
if [ -n "$report_file" ]; then
	bold "    report: $report_file"
	info "  (and its JSON summary: $E2E_STATE/report-$run.summary.json)"
fi
cat <<TXT

    gateway:    $GW_URL   (an analyst key of tenant $TENANT: $E2E_STATE/api-key)
      curl -s -H "Authorization: Bearer \$(cat $E2E_STATE/api-key)" \\
        '$GW_URL/v1/tenants/$tid/findings?severity=high,medium&limit=20' | jq .
    kubectl:    export KUBECONFIG=$KUBECONFIG
      kubectl get vigil -A
      kubectl -n $TNS annotate scanpolicy $POLICY --overwrite vigil.dev/run-now=\$(date +%s)   # scan again
    logs:       $E2E_STATE/*.log

    Stop everything the demo started:  make demo-down
TXT
