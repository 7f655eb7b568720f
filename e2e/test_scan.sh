#!/usr/bin/env bash
# vigil-e2e: per-build
#
# A scan end to end. The operator (as its ServiceAccount) turns a Tenant and
# a ScanPolicy into an agent Job; the pods the Job controller made in the
# local control plane are the source of truth: for each, the real
# vigil-agent runs here with exactly the pod's command, arguments and
# environment (Secret and downward-API values resolved as the kubelet
# would, the image's binary path and the spool volume mapped to this
# machine). It scans real local targets (an SSH banner, TLS with an expired
# self-signed certificate, HTTP without security headers); results go
# through the real gateway, Redis queue and worker into PostgreSQL, and the
# brain writes the report. Also: the agent's own scope refusals, a gateway
# restart during a scan losing nothing, and the emergency stop stopping a
# scan in progress within 2 s.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
# shellcheck disable=SC1091
. .cluster/env
export KUBECONFIG
# shellcheck source=lib/operator.sh
. e2e/lib/operator.sh
# shellcheck source=lib/services.sh
. e2e/lib/services.sh
# shellcheck source=lib/platform.sh
. e2e/lib/platform.sh
# shellcheck source=lib/targets.sh
. e2e/lib/targets.sh
# shellcheck source=lib/agentpod.sh
. e2e/lib/agentpod.sh

NS=vigil-system
TNS=tenant-scanlab
WORK=$(mktemp -d "${TMPDIR:-/tmp}/vigil-e2e-scan-XXXXXX")
export AGENT_SPOOL_ROOT=$WORK/spool
pass=0
check() {
	pass=$((pass + 1))
	say "ok  $*"
}

cleanup() {
	set +e
	operator_kill9 x
	platform_kill
	targets_stop
	kubectl -n "$TNS" delete scanpolicy --all --wait=false >/dev/null 2>&1
	kubectl delete tenant scanlab --ignore-not-found --wait=false >/dev/null 2>&1
	kubectl patch tenant scanlab --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1
	kubectl -n "$NS" delete platform --all --wait=false >/dev/null 2>&1
	redis_stop
	pg_stop
	rm -rf "$WORK"
}
trap cleanup EXIT

q() { psql -XAtq "postgresql://postgres@127.0.0.1:$PG_PORT/vigil" -c "$1"; }

echo "== setup: PostgreSQL, Redis, gateway, worker, brain, targets, operator"
install_crds_rbac
pg_start
redis_start
platform_start
targets_start "$WORK/certs"
kubectl -n "$NS" delete platform --all --ignore-not-found --wait=true >/dev/null
kubectl -n "$NS" create secret generic vigil-postgres --from-literal=username=vigil \
	--from-literal=password=not-a-real-one --dry-run=client -o yaml | kubectl apply -f - >/dev/null
operator_start x --database-url "postgresql://postgres@127.0.0.1:$PG_PORT/vigil" \
	--agent-gateway-url "$GW_URL" --agent-image vigil/vigil-agent:e2e
kubectl apply -f config/samples/platform.yaml >/dev/null
kubectl apply -f - >/dev/null <<'YAML'
apiVersion: vigil.dev/v1alpha1
kind: Tenant
metadata:
  name: scanlab
spec:
  allowedTargets: [127.0.0.0/29]
  quota: {maxConcurrentScans: 2, maxAgentPods: 4}
YAML
wait_for 60 "Tenant scanlab in the database" sh -c \
	"kubectl get tenant scanlab -o jsonpath='{.status.databaseID}' | grep -q ."
tid=$(kubectl get tenant scanlab -o jsonpath='{.status.databaseID}')
wait_for 30 "agent key registered" sh -c "[ \"\$(psql -XAtq postgresql://postgres@127.0.0.1:$PG_PORT/vigil \
	-c \"SELECT count(*) FROM vigil.api_keys WHERE tenant_id = '$tid' AND role = 'agent' AND revoked_at IS NULL\")\" = 1 ]"
ports="$TGT_SSH,$TGT_TLS,$TGT_HTTP,$TGT_CLOSED"
kubectl apply -f - >/dev/null <<YAML
apiVersion: vigil.dev/v1alpha1
kind: ScanPolicy
metadata:
  name: lab
  namespace: $TNS
spec:
  targets: [127.0.0.2-127.0.0.4]
  ports: "$ports"
  scanners: [tcp, banner, tls, http]
  allowLoopback: true
  parallelism: 2
  rateLimit: {packetsPerSecond: 200, perTargetPerSecond: 50}
  connectTimeoutMilliseconds: 1000
YAML
wait_for 30 "Job lab-once" kubectl -n "$TNS" get job lab-once
job=lab-once
wait_for 30 "two agent pods" sh -c "[ \$(kubectl -n $TNS get pods -l job-name=$job -o name | wc -l) -eq 2 ]"
mapfile -t pods < <(kubectl -n "$TNS" get pods -l "job-name=$job" -o json |
	jq -r '.items | sort_by(.metadata.annotations["batch.kubernetes.io/job-completion-index"]) | .[].metadata.name')
check "operator: Job $job with pods ${pods[*]}"

echo "== the agent refuses what is out of scope, by itself"
rc=0
run_pod "$TNS" "${pods[0]}" "$WORK/refuse.log" --targets 10.9.9.9 || rc=$?
[ $rc -eq 2 ] || { cat "$WORK/refuse.log"; fail "out-of-scope target: exit $rc, want 2"; }
grep -q "10.9.9.9" "$WORK/refuse.log" || fail "refusal does not name the target"
rc=0
run_pod "$TNS" "${pods[0]}" "$WORK/meta.log" --targets 169.254.169.254 --allowed 169.254.0.0/16 || rc=$?
[ $rc -eq 2 ] || { cat "$WORK/meta.log"; fail "metadata address: exit $rc, want 2"; }
[ "$(q "SELECT count(*) FROM vigil.scan_runs")" = 0 ] || fail "a refused scan reached the gateway"
check "agent: 10.9.9.9 outside the scope and 169.254.169.254 refused (exit 2), nothing posted"

echo "== shard 0 as its pod, through the gateway, queue and worker"
t0=$SECONDS
run_pod "$TNS" "${pods[0]}" "$WORK/shard0.log" || { tail -n 20 "$WORK/shard0.log"; fail "shard 0 failed"; }
check "shard 0: exit 0 in $((SECONDS - t0)) s"

echo "== shard 1 with the gateway down: spooled, delivered after its restart"
kill -TERM "$PLAT_GATEWAY_PID"
wait "$PLAT_GATEWAY_PID" 2>/dev/null || true
run_pod "$TNS" "${pods[1]}" "$WORK/shard1.log" &
agent=$!
# down until the agent has failed to deliver, and a little longer
wait_for 60 "a delivery failure" grep -q "will retry" "$WORK/shard1.log"
sleep 2
kill -0 "$agent" 2>/dev/null || { cat "$WORK/shard1.log"; fail "the agent gave up while the gateway was down"; }
VIGIL_DB_USER=postgres VIGIL_DB_APP_USER=vigil_app \
	VIGIL_GATEWAY_LISTEN=127.0.0.1:$GW_PORT VIGIL_HEALTH_LISTEN=127.0.0.1:$GW_HEALTH \
	VIGIL_BOOTSTRAP_ADMIN_KEY=$ADMIN_KEY VIGIL_SESSION_KEY=e2e-session-key \
	"$VIGIL_BUILD/bin/vigil-gateway" >>"$PLAT_LOG/gateway.log" 2>&1 &
PLAT_GATEWAY_PID=$!
rc=0
wait "$agent" || rc=$?
[ $rc -eq 0 ] || { tail -n 20 "$WORK/shard1.log"; fail "shard 1 exit $rc after the gateway came back"; }
left=$(find "$WORK/spool/${pods[1]}" -name '*.json' -o -name '*.rejected' | wc -l)
[ "$left" = 0 ] || fail "$left batches left in the spool"
check "gateway down during the scan: the agent spooled, retried, delivered (exit 0)"

echo "== the results in PostgreSQL"
wait_for 60 "run succeeded" sh -c "[ \"\$(psql -XAtq postgresql://postgres@127.0.0.1:$PG_PORT/vigil \
	-c \"SELECT state FROM vigil.scan_runs WHERE job_name = '$job'\")\" = succeeded ]"
run=$(q "SELECT id FROM vigil.scan_runs WHERE job_name = '$job'")
[ "$(q "SELECT shards || '/' || shards_done || '/' || policy_name || '/' || tenant_id FROM vigil.scan_runs WHERE id = '$run'")" = "2/2/lab/$tid" ] ||
	fail "run row: $(q "SELECT * FROM vigil.scan_runs WHERE id = '$run'")"
open=$(q "SELECT string_agg(host || ':' || port, ',' ORDER BY host) FROM vigil.findings
	WHERE run_id = '$run' AND scanner = 'tcp' AND evidence->>'check' = 'open'")
[ "$open" = "127.0.0.2:$TGT_SSH,127.0.0.3:$TGT_TLS,127.0.0.4:$TGT_HTTP" ] || fail "open ports: $open"
[ "$(q "SELECT count(*) FROM vigil.findings WHERE run_id = '$run' AND port = $TGT_CLOSED")" = 0 ] ||
	fail "the closed port was reported"
for c in tls-cert-expired tls-cert-self-signed; do
	[ "$(q "SELECT host || ':' || port FROM vigil.findings WHERE run_id = '$run' AND evidence->>'check' = '$c'")" = "127.0.0.3:$TGT_TLS" ] ||
		fail "no $c finding on the TLS target"
done
for c in http-missing-csp http-missing-x-frame-options http-missing-x-content-type-options; do
	[ "$(q "SELECT host || ':' || port FROM vigil.findings WHERE run_id = '$run' AND evidence->>'check' = '$c'")" = "127.0.0.4:$TGT_HTTP" ] ||
		fail "no $c finding on the HTTP target"
done
[ "$(q "SELECT count(*) FROM vigil.findings WHERE run_id = '$run' AND scanner = 'banner' AND evidence::text LIKE '%OpenSSH_7.4%'")" -ge 1 ] ||
	fail "no banner finding with the SSH banner"
[ "$(q "SELECT count(*) FROM vigil.findings WHERE run_id = '$run' AND severity = 'high' AND evidence->>'check' = 'tls-cert-expired'")" = 1 ] ||
	fail "the expired certificate is not high"
n=$(q "SELECT count(*) FROM vigil.findings WHERE run_id = '$run'")
dups=$(q "SELECT count(*) - count(DISTINCT fingerprint) FROM vigil.findings WHERE run_id = '$run'")
[ "$dups" = 0 ] || fail "$dups duplicate findings"
counts=$(q "SELECT finding_counts FROM vigil.scan_runs WHERE id = '$run'")
[ "$(jq .total <<<"$counts")" = "$n" ] || fail "finding_counts $counts vs $n rows"
check "run succeeded: $n findings, exactly the 3 open ports, expired+self-signed TLS, missing headers, banner; no duplicates; counts $counts"

echo "== the ScanPolicy's status reports the run's results"
wait_for 60 "lastRun.findings in the status" sh -c "[ \"\$(kubectl -n $TNS get scanpolicy lab \
	-o jsonpath='{.status.lastRun.findings.high}')\" = 1 ]"
st=$(kubectl -n "$TNS" get scanpolicy lab -o json | jq -c '.status.lastRun | {phase, findings, openPorts}')
[ "$(jq -r .openPorts <<<"$st")" = 3 ] || fail "status: $st"
[ "$(jq -r '.findings.medium' <<<"$st")" = "$(jq .medium <<<"$counts")" ] || fail "status $st vs run $counts"
check "ScanPolicy status: $st"

echo "== the API lists them"
items=$(gw GET "/v1/tenants/$tid/findings?run_id=$run&limit=500" | jq '.items | length')
[ "$items" = "$n" ] || fail "GET findings: $items of $n"
check "GET /v1/tenants/{tid}/findings: $items findings"

if [ -n "${PLAT_BRAIN_PID:-}" ]; then
	echo "== the brain's report"
	wait_for 60 "run report ready" sh -c "[ \"\$(psql -XAtq postgresql://postgres@127.0.0.1:$PG_PORT/vigil \
		-c \"SELECT count(*) FROM vigil.reports WHERE run_id = '$run' AND state = 'ready'\")\" -ge 1 ]"
	check "report for the run: $(q "SELECT string_agg(format, ',') FROM vigil.reports WHERE run_id = '$run' AND state = 'ready'")"
	# the brain's own API, as gateway and worker call it
	r=$(curl -sS -H "Authorization: Bearer $VIGIL_BRAIN_TOKEN" -H 'Content-Type: application/json' \
		-d "{\"tenant_id\":\"$tid\",\"run_id\":\"$run\"}" "$BRAIN_URL/v1/reports")
	[ "$(jq -r .state <<<"$r")" = ready ] || fail "brain POST /v1/reports: $r"
	code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer wrong-token-0123456789' \
		-H 'Content-Type: application/json' -d "{\"tenant_id\":\"$tid\",\"run_id\":\"$run\"}" "$BRAIN_URL/v1/reports")
	[ "$code" = 401 ] || fail "brain API with a wrong token: $code"
	check "brain POST /v1/reports: ready report for the run; a wrong token is 401"
fi

echo "== the emergency stop ends a scan in progress within 2 s"
rc=0
run_pod "$TNS" "${pods[0]}" "$WORK/estop.log" --ports 1-65535 --rate 100 --targets 127.0.0.2 --shards 1 &
agent=$!
sleep 2
kill -0 "$agent" 2>/dev/null || { cat "$WORK/estop.log"; fail "the long scan ended early"; }
gw PUT /v1/emergency-stop -d '{"engaged":true,"reason":"e2e"}' >/dev/null
t0=$(date +%s%N)
wait "$agent" || rc=$?
dt=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
gw PUT /v1/emergency-stop -d '{"engaged":false}' >/dev/null
[ $rc -eq 3 ] || { tail -n 20 "$WORK/estop.log"; fail "agent exit $rc under the emergency stop, want 3"; }
awk -v d="$dt" 'BEGIN { exit !(d < 2.5) }' || fail "the agent stopped ${dt}s after the emergency stop"
check "emergency stop: the agent stopped probing and exited 3 after ${dt}s"

echo "== everything stops cleanly"
operator_stop x || fail "operator exit $?"
platform_stop
check "operator, gateway, worker, brain: SIGTERM, exit 0, no sanitizer report"

echo "$pass passed, 0 failed"
