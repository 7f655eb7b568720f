#!/usr/bin/env bash
# vigil-e2e: per-build
#
# The ScanPolicy controller end to end, against the local control plane and
# a real PostgreSQL, the operator running as its ServiceAccount: the agent
# Job a policy gets (Indexed shards, owner, token from the tenant Secret,
# gateway and tenant id from the Platform and Tenant, restricted pods), run
# once, run-now, history pruning, scope refusals (outside the tenant's
# allowedTargets, cloud metadata), a Tenant change re-admitting a policy,
# the tenant quota, concurrencyPolicy Forbid, the emergency stop (running
# Jobs deleted, no new runs, resumes without a burst), and a cron schedule.
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

NS=vigil-system
TNS=tenant-scanco
pass=0
check() {
	pass=$((pass + 1))
	say "ok  $*"
}

cleanup() {
	set +e
	operator_kill9 s
	kubectl -n "$TNS" delete scanpolicy --all --wait=false >/dev/null 2>&1
	kubectl delete tenant scanco --ignore-not-found --wait=false >/dev/null 2>&1
	kubectl patch tenant scanco --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1
	kubectl -n "$NS" delete platform --all --wait=false >/dev/null 2>&1
	pg_stop
}
trap cleanup EXIT

jp() { kubectl "$@" 2>/dev/null || true; }
is_equal() { [ "$("${@:2}")" = "$1" ]; }
gone() { ! kubectl "$@" >/dev/null 2>&1; }
t() { kubectl -n "$TNS" "$@"; }
pcond() { jp -n "$TNS" get scanpolicy "$1" -o "jsonpath={.status.conditions[?(@.type==\"$2\")].$3}"; }
jobs_of() { jp -n "$TNS" get jobs -l "vigil.dev/scan-policy=$1" -o name | wc -l | tr -d ' '; }
active_jobs() {
	kubectl -n "$TNS" get jobs -o json |
		jq '[.items[] | select(.metadata.deletionTimestamp == null) |
			select(([.status.conditions[]? | select(.status == "True") |
			select(.type == "Complete" or .type == "Failed")] | length) == 0)] | length'
}
policy() { # name, then spec lines (YAML, indented by 2)
	local name=$1
	shift
	{
		printf 'apiVersion: vigil.dev/v1alpha1\nkind: ScanPolicy\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n' "$name" "$TNS"
		printf '  %s\n' "$@"
	} | kubectl apply -f - >/dev/null
}

echo "== setup"
install_crds_rbac
pg_start
kubectl -n "$NS" delete platform --all --ignore-not-found --wait=true >/dev/null
kubectl -n "$NS" create secret generic vigil-postgres --from-literal=username=vigil \
	--from-literal=password=not-a-real-one --dry-run=client -o yaml | kubectl apply -f - >/dev/null
operator_start s --database-url "$PG_URL" --agent-image vigil/vigil-agent:e2e
M=$OP_s_METRICS
kubectl apply -f config/samples/platform.yaml >/dev/null
kubectl apply -f - >/dev/null <<'YAML'
apiVersion: vigil.dev/v1alpha1
kind: Tenant
metadata:
  name: scanco
spec:
  allowedTargets: [10.20.0.0/16, "*.scan.example", 169.254.0.0/16]
  quota: {maxConcurrentScans: 1, maxAgentPods: 2}
YAML
wait_for 60 "Tenant scanco has a database id" sh -c \
	"kubectl get tenant scanco -o jsonpath='{.status.databaseID}' | grep -q ."
wait_for 60 "Platform endpoint" sh -c \
	"kubectl -n $NS get platform vigil -o jsonpath='{.status.endpoint}' | grep -q ."
endpoint=$(kubectl -n "$NS" get platform vigil -o jsonpath='{.status.endpoint}')
tid=$(kubectl get tenant scanco -o jsonpath='{.status.databaseID}')
# a cron schedule, checked at the end (it fires at the next whole minute)
policy minutely 'targets: [10.20.9.0/30]' 'schedule: "* * * * *"' \
	'successfulRunsHistoryLimit: 1'

echo "== a one-shot policy runs once, as an Indexed agent Job"
policy once 'targets: [10.20.1.0/24, host.scan.example]' 'excludeTargets: [10.20.1.1]' \
	'ports: "22,443"' 'scanners: [tcp, tls]' 'parallelism: 3' \
	'rateLimit: {packetsPerSecond: 500, perTargetPerSecond: 10}'
wait_for 20 "Job once-once" t get job once-once
job=$(t get job once-once -o json)
[ "$(jq -r '.spec.completionMode' <<<"$job")" = Indexed ] || fail "not Indexed"
[ "$(jq -r '.spec.completions' <<<"$job")" = 2 ] || fail "parallelism 3 not capped by maxAgentPods 2"
[ "$(jq -r '.metadata.ownerReferences[0] | "\(.kind)/\(.name)/\(.controller)"' <<<"$job")" = ScanPolicy/once/true ] ||
	fail "Job not controlled by its policy"
c='.spec.template.spec.containers[0]'
[ "$(jq -r "$c.image" <<<"$job")" = vigil/vigil-agent:e2e ] || fail "image"
envv() { jq -r --arg n "$1" "$c.env[] | select(.name == \$n) | .value" <<<"$job"; }
[ "$(envv VIGIL_GATEWAY_URL)" = "$endpoint" ] || fail "gateway URL $(envv VIGIL_GATEWAY_URL) != $endpoint"
[ "$(envv VIGIL_TENANT_ID)" = "$tid" ] || fail "tenant id"
[ "$(jq -r "$c.env[] | select(.name == \"VIGIL_AGENT_TOKEN\") | .valueFrom.secretKeyRef.name" <<<"$job")" = vigil-agent-token ] ||
	fail "token not from the tenant Secret"
args=$(jq -c "$c.args" <<<"$job")
[[ $args == *'"--targets","10.20.1.0/24,host.scan.example"'* && $args == *'"--rate","250"'* &&
	$args == *'"--allowed","10.20.0.0/16,*.scan.example,169.254.0.0/16"'* ]] || fail "args: $args"
[ "$(jq -r '.spec.template.spec.automountServiceAccountToken' <<<"$job")" = false ] || fail "API token mounted"
# the Job controller made the pods (one per shard) on kwok nodes, with the
# shard index the agent reads
wait_for 30 "two agent pods" sh -c "[ \$(kubectl -n $TNS get pods -l job-name=once-once -o name | wc -l) -ge 2 ]"
idx=$(t get pods -l job-name=once-once -o json |
	jq -r '[.items[].spec.containers[0].env[] | select(.name == "JOB_COMPLETION_INDEX")] | length')
[ "$idx" -ge 2 ] || fail "pods without JOB_COMPLETION_INDEX"
wait_for 60 "run Succeeded" is_equal Succeeded jp -n "$TNS" get scanpolicy once -o 'jsonpath={.status.lastRun.phase}'
[ -n "$(jp -n "$TNS" get scanpolicy once -o 'jsonpath={.status.lastSuccessfulTime}')" ] || fail "no lastSuccessfulTime"
[ "$(pcond once Ready status)" = True ] || fail "Ready is not True"
sleep 3
[ "$(jobs_of once)" = 1 ] || fail "a one-shot policy ran again"
check "one-shot: Indexed Job of 2 shards, owner, image, gateway, tenant id, token Secret, args; Succeeded, ran once"

echo "== out of scope: refused by the operator, no Job"
policy outside 'targets: [10.20.2.0/24, 192.0.2.0/28]'
wait_for 20 "OutOfScope" is_equal True pcond outside OutOfScope status
msg=$(pcond outside OutOfScope message)
[[ $msg == *192.0.2.0/28* ]] || fail "OutOfScope message does not name the target: $msg"
[ "$(pcond outside Ready reason)" = OutOfScope ] || fail "Ready reason"
wait_for 10 "OutOfScope Event" sh -c "kubectl -n $TNS get events --field-selector \
	involvedObject.name=outside,reason=OutOfScope -o name | grep -q ."
policy metadata 'targets: [169.254.169.254]'
wait_for 20 "metadata address refused" is_equal True pcond metadata OutOfScope status
[[ $(pcond metadata OutOfScope message) == *link-local* ]] || fail "metadata: $(pcond metadata OutOfScope message)"
sleep 2
[ "$(jobs_of outside)" = 0 ] && [ "$(jobs_of metadata)" = 0 ] || fail "an out-of-scope policy got a Job"
check "out of scope: OutOfScope ($msg), Event, no Job; 169.254.169.254 refused though the tenant allows 169.254.0.0/16"

echo "== widening the tenant's scope admits the policy (Tenant watch)"
kubectl patch tenant scanco --type=json \
	-p '[{"op":"add","path":"/spec/allowedTargets/-","value":"192.0.2.0/24"}]' >/dev/null
wait_for 20 "in scope" is_equal False pcond outside OutOfScope status
wait_for 20 "Job outside-once" t get job outside-once
check "Tenant change re-evaluated: in scope, run started"

echo "== run-now, and history pruning"
policy ondemand 'targets: [10.20.3.0/24]' 'schedule: "0 0 1 1 *"' 'successfulRunsHistoryLimit: 1'
wait_for 20 "ondemand Ready" is_equal True pcond ondemand Ready status
wait_for 30 "no active runs" is_equal 0 active_jobs
[ "$(jobs_of ondemand)" = 0 ] || fail "ran before its schedule"
t annotate scanpolicy ondemand vigil.dev/run-now=first >/dev/null
wait_for 20 "first manual Job" is_equal 1 jobs_of ondemand
first=$(t get jobs -l vigil.dev/scan-policy=ondemand -o jsonpath='{.items[0].metadata.name}')
[ "$(t get job "$first" -o jsonpath='{.metadata.labels.vigil\.dev/trigger}')" = manual ] || fail "trigger label"
wait_for 20 "lastRunNow" is_equal first jp -n "$TNS" get scanpolicy ondemand -o 'jsonpath={.status.lastRunNow}'
wait_for 30 "first run done" is_equal Succeeded jp -n "$TNS" get scanpolicy ondemand -o 'jsonpath={.status.lastRun.phase}'
t annotate --overwrite scanpolicy ondemand vigil.dev/run-now=first >/dev/null
sleep 3
[ "$(jobs_of ondemand)" = 1 ] || fail "the same run-now value ran twice"
t annotate --overwrite scanpolicy ondemand vigil.dev/run-now=second >/dev/null
wait_for 20 "second manual Job" sh -c "kubectl -n $TNS get jobs -l vigil.dev/scan-policy=ondemand -o name | grep -qv $first"
wait_for 40 "first pruned (history limit 1)" gone -n "$TNS" get job "$first"
check "run-now: one Job per value, recorded in status.lastRunNow; history limit 1 keeps only the latest"

echo "== quota and concurrencyPolicy Forbid"
wait_for 30 "no active runs" is_equal 0 active_jobs
policy long 'targets: [10.20.4.0/24]' 'podAnnotations: {vigil.dev/kwok-run-for: 120s}'
wait_for 20 "long run active" is_equal 1 active_jobs
t annotate --overwrite scanpolicy ondemand vigil.dev/run-now=third >/dev/null
wait_for 20 "QuotaExceeded" is_equal True pcond ondemand QuotaExceeded status
[ "$(active_jobs)" = 1 ] || fail "quota of 1 exceeded: $(active_jobs) active"
t annotate --overwrite scanpolicy long vigil.dev/run-now=again >/dev/null
sleep 3
[ "$(jobs_of long)" = 1 ] || fail "Forbid: a second run of long started while one runs"
check "quota 1: second policy waits (QuotaExceeded); Forbid: no second run while one is active"

echo "== emergency stop"
kubectl -n "$NS" patch platform vigil --type=merge -p '{"spec":{"emergencyStop":true}}' >/dev/null
t0=$SECONDS
wait_for 10 "running Job deleted" is_equal 0 active_jobs
dt=$((SECONDS - t0))
[ $dt -le 5 ] || fail "running agent Job deleted after ${dt}s (> 5 s)"
for p in once ondemand long minutely; do
	wait_for 10 "EmergencyStop on $p" is_equal True pcond "$p" EmergencyStop status
done
sleep 3
[ "$(active_jobs)" = 0 ] || fail "a run started during the emergency stop"
check "emergency stop: running Job gone in ${dt}s, EmergencyStop on every policy, nothing new"
before=$(t get jobs -o name | wc -l)
kubectl -n "$NS" patch platform vigil --type=merge -p '{"spec":{"emergencyStop":false}}' >/dev/null
for p in once ondemand long minutely; do
	wait_for 10 "EmergencyStop off on $p" is_equal False pcond "$p" EmergencyStop status
done
# the waiting requests go one at a time (quota 1), the minutely schedule
# does not catch up on the minutes it missed
sleep 4
n=$(active_jobs)
[ "$n" -le 1 ] || fail "burst after the emergency stop: $n active runs"
check "resumed: EmergencyStop False everywhere, $n active run(s) (quota 1, no burst); $before Jobs kept"

# free the tenant's single slot: the long run would hold it for minutes
t delete scanpolicy long --wait=false >/dev/null
wait_for 30 "no active runs" is_equal 0 active_jobs

echo "== concurrencyPolicy Replace"
policy repl 'targets: [10.20.5.0/24]' 'schedule: "0 0 1 1 *"' 'concurrencyPolicy: Replace' \
	'podAnnotations: {vigil.dev/kwok-run-for: 120s}'
t annotate --overwrite scanpolicy repl vigil.dev/run-now=a >/dev/null
wait_for 30 "first repl run active" sh -c "[ \$(kubectl -n $TNS get jobs -l vigil.dev/scan-policy=repl -o name | wc -l) -eq 1 ]"
ra=$(t get jobs -l vigil.dev/scan-policy=repl -o jsonpath='{.items[0].metadata.name}')
wait_for 30 "first repl run has a pod" sh -c "kubectl -n $TNS get pods -l job-name=$ra -o name | grep -q ."
t annotate --overwrite scanpolicy repl vigil.dev/run-now=b >/dev/null
wait_for 30 "first run replaced" gone -n "$TNS" get job "$ra"
wait_for 30 "second repl run" sh -c "kubectl -n $TNS get jobs -l vigil.dev/scan-policy=repl -o name | grep -qv $ra"
wait_for 10 "RunStopped Event" sh -c "kubectl -n $TNS get events --field-selector \
	involvedObject.name=repl,reason=RunStopped -o name | grep -q ."
t delete scanpolicy repl --wait=false >/dev/null
wait_for 30 "no active runs" is_equal 0 active_jobs
check "Replace: the running Job $ra deleted (RunStopped Event), the new run started"

echo "== a cron schedule"
# lastScheduleTime also moves over the times an emergency stop skipped, and
# a minute boundary may pass between two reads: wait until the latest
# recorded schedule time has its Job, named as a CronJob names its Jobs
# (the schedule time in minutes)
sched_job() {
	local l
	l=$(kubectl -n "$TNS" get scanpolicy minutely -o jsonpath='{.status.lastScheduleTime}')
	[ -n "$l" ] && kubectl -n "$TNS" get job "minutely-$(($(date -d "$l" +%s) / 60))" >/dev/null 2>&1
}
wait_for 130 "a Job for the latest lastScheduleTime" sched_job
last=$(jp -n "$TNS" get scanpolicy minutely -o 'jsonpath={.status.lastScheduleTime}')
next=$(jp -n "$TNS" get scanpolicy minutely -o 'jsonpath={.status.nextScheduleTime}')
[[ $last == *:00Z ]] || fail "lastScheduleTime not a whole minute: $last"
[ $(($(date -d "$next" +%s) - $(date -d "$last" +%s))) -ge 60 ] || fail "nextScheduleTime $next vs last $last"
check "schedule * * * * *: ran at $last, next $next"

echo "== the operator stops cleanly"
errs=$(metric "$M" 'controller_runtime_reconcile_errors_total{controller="scanpolicy"')
operator_stop s || fail "operator exit code $?"
check "SIGTERM: clean exit, no sanitizer report ($errs reconcile errors)"

echo "$pass passed, 0 failed"
