#!/usr/bin/env bash
# vigil-e2e: per-build
#
# vigil-operator end to end, against the local control plane and a real
# PostgreSQL, running as its ServiceAccount with the shipped RBAC:
#   convergence of the sample Platform and Tenants, GitOps drift repair,
#   recreate, prune, no-op re-apply (counted by the operator's own write
#   counter), autoscaler ownership of replicas, bad input surfacing as a
#   condition and an Event without a hot loop, Tenant database rows and
#   archiving, cascade deletion, an API server restart, and leader election
#   with a kill -9 of the leader.
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
k() { kubectl -n "$NS" "$@"; }
pass=0
check() {
	pass=$((pass + 1))
	say "ok  $*"
}

cleanup() {
	set +e
	operator_kill9 a
	operator_kill9 b
	operator_kill9 c
	kubectl delete -f config/samples/tenant-acme.yaml -f config/samples/tenant-globex.yaml \
		--ignore-not-found --wait=false >/dev/null 2>&1
	kubectl -n "$NS" delete platform --all --wait=false >/dev/null 2>&1
	kubectl delete namespace vigil-e2e-bad --ignore-not-found --wait=false >/dev/null 2>&1
	# Tenants keep a finalizer the (now stopped) operator would remove
	for t in acme globex; do
		kubectl patch tenant "$t" --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1
	done
	pg_stop
}
trap cleanup EXIT

# jsonpath of an object, empty when it does not exist
jp() { kubectl "$@" 2>/dev/null || true; }
cond() { jp -n "$NS" get "$1" "$2" -o "jsonpath={.status.conditions[?(@.type==\"$3\")].status}"; }
is_equal() { [ "$("${@:2}")" = "$1" ]; }
gone() { ! kubectl "$@" >/dev/null 2>&1; }

echo "== setup"
install_crds_rbac
pg_start
k delete platform --all --ignore-not-found --wait=true >/dev/null
k create secret generic vigil-postgres --from-literal=username=vigil \
	--from-literal=password=not-a-real-one --dry-run=client -o yaml | kubectl apply -f - >/dev/null
operator_start a --database-url "$PG_URL"
M=$OP_a_METRICS

echo "== convergence of the samples"
t0=$SECONDS
kubectl apply -f config/samples/platform.yaml -f config/samples/tenant-acme.yaml \
	-f config/samples/tenant-globex.yaml >/dev/null
wait_for 30 "Platform Ready" is_equal True cond platform vigil Ready
for d in gateway brain worker; do
	wait_for 30 "deployment vigil-$d Available" \
		k wait --for=condition=Available "deployment/vigil-$d" --timeout=1s
	[ -n "$(jp -n $NS get hpa "vigil-$d" -o name)" ] || fail "no HPA for $d"
	[ -n "$(jp -n $NS get pdb "vigil-$d" -o name)" ] || fail "no PDB for $d"
done
for o in service/vigil-gateway service/vigil-brain configmap/vigil-config secret/vigil-session-key \
	networkpolicy/vigil-default-deny networkpolicy/vigil-gateway networkpolicy/vigil-brain \
	serviceaccount/vigil-gateway; do
	k get "$o" >/dev/null || fail "missing $o"
done
wait_for 30 "Tenant acme Ready" is_equal True jp get tenant acme -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}'
wait_for 30 "Tenant globex Ready" is_equal True jp get tenant globex -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}'
for o in namespace/tenant-acme namespace/globex-scans; do kubectl get "$o" >/dev/null || fail "missing $o"; done
kubectl -n tenant-acme get resourcequota/vigil-quota networkpolicy/vigil-tenant role/vigil-tenant-admin \
	rolebinding/vigil-tenant-admins secret/vigil-agent-token >/dev/null || fail "tenant-acme children missing"
[ "$(psql_q "select count(*) from vigil.tenants where state='active' and name in ('acme','globex')")" = 2 ] ||
	fail "tenant rows missing in the database"
# pods are scheduled onto the kwok nodes by the real scheduler
k get pods -l app.kubernetes.io/component=gateway -o jsonpath='{.items[*].spec.nodeName}' | grep -q vigil-node- ||
	fail "gateway pods not bound to kwok nodes"
check "samples converged in $((SECONDS - t0)) s: Platform and Tenants Ready, Deployments Available"

# status reports per-component replicas and observedGeneration
[ "$(jp -n $NS get platform vigil -o 'jsonpath={.status.observedGeneration}')" = \
	"$(jp -n $NS get platform vigil -o 'jsonpath={.metadata.generation}')" ] || fail "observedGeneration behind"
check "status observedGeneration current"

echo "== the services' database login: vigil_app with the generated password"
apppw() { psql -XAtq "$PG_URL" -c "SELECT rolpassword FROM pg_authid WHERE rolname = 'vigil_app'"; }
wait_for 30 "vigil_app's password set" sh -c "psql -XAtq '$PG_URL' -c \"SELECT rolcanlogin AND rolpassword LIKE 'SCRAM-SHA-256\\$%' FROM pg_authid WHERE rolname = 'vigil_app'\" | grep -q t"
pw1=$(apppw)
[ "$(k get deploy vigil-worker -o jsonpath='{.spec.template.spec.containers[0].env[?(@.name=="VIGIL_DB_USER")].valueFrom.secretKeyRef.name}')" = vigil-db-app ] ||
	fail "the worker does not log in as vigil_app"
[ -z "$(k get deploy vigil-worker -o jsonpath='{.spec.template.spec.containers[0].env[?(@.name=="VIGIL_DB_APP_PASSWORD")].name}')" ] ||
	fail "the worker holds the owner's login"
# a new Secret (deleted by hand, generated again) sets a new password
k delete secret vigil-db-app >/dev/null
wait_for 30 "Secret vigil-db-app generated again" k get secret vigil-db-app
wait_for 30 "vigil_app's new password set" sh -c "[ \"\$(psql -XAtq '$PG_URL' -c \"SELECT rolpassword FROM pg_authid WHERE rolname = 'vigil_app'\")\" != '$pw1' ]"
check "vigil_app: SCRAM password from Secret vigil-db-app, set again when the Secret is; worker and brain log in as vigil_app"

echo "== no-op: applying the same objects again writes nothing"
# the HPAs raise the Deployments to their minimum (their sync period is 15 s)
for c in gateway:3 brain:2 worker:3; do
	wait_for 60 "${c%:*} at its HPA minimum" is_equal "${c#*:}" \
		jp -n "$NS" get platform vigil -o "jsonpath={.status.${c%:*}.readyReplicas}"
done
# let status settle: no write for 4 s in a row
quiet=0 prev=-1
for _ in $(seq 1 60); do
	cur=$(metric "$M" vigil_operator_write_requests_total)
	if [ "$cur" = "$prev" ]; then quiet=$((quiet + 1)); else quiet=0; fi
	[ $quiet -ge 8 ] && break
	prev=$cur
	sleep 0.5
done
[ $quiet -ge 8 ] || fail "the operator never stopped writing after convergence"
w0=$(metric "$M" vigil_operator_write_requests_total)
r0=$(metric "$M" 'controller_runtime_reconcile_total{controller="platform"')
kubectl apply -f config/samples/platform.yaml -f config/samples/tenant-acme.yaml \
	-f config/samples/tenant-globex.yaml >/dev/null
k annotate platform vigil vigil.dev/touch="$RANDOM" --overwrite >/dev/null # a real event, no change
sleep 5
w1=$(metric "$M" vigil_operator_write_requests_total)
r1=$(metric "$M" 'controller_runtime_reconcile_total{controller="platform"')
[ "$r1" -gt "$r0" ] || fail "the annotation did not trigger a reconcile ($r0 -> $r1)"
[ "$w1" -eq "$w0" ] || fail "no-op reconciles wrote $((w1 - w0)) times"
check "re-apply and a reconcile with nothing to change made 0 writes ($r0 -> $r1 reconciles)"

echo "== drift is reverted within 10 s"
image=$(k get deploy vigil-gateway -o 'jsonpath={.spec.template.spec.containers[0].image}')
k set image deploy/vigil-gateway gateway=registry.invalid/evil:1 >/dev/null
wait_for 10 "gateway image restored" is_equal "$image" \
	k get deploy vigil-gateway -o 'jsonpath={.spec.template.spec.containers[0].image}'
check "hand-edited image reverted"
k patch networkpolicy vigil-gateway --type=json \
	-p '[{"op":"replace","path":"/spec/ingress/0/ports/0/port","value":1234}]' >/dev/null
wait_for 10 "network policy port restored" is_equal 8080 \
	k get networkpolicy vigil-gateway -o 'jsonpath={.spec.ingress[0].ports[0].port}'
check "hand-edited NetworkPolicy rule reverted"
k patch service vigil-gateway --type=json -p '[{"op":"replace","path":"/spec/ports/0/port","value":9999}]' >/dev/null
wait_for 10 "service port restored" is_equal 8080 k get service vigil-gateway -o 'jsonpath={.spec.ports[0].port}'
check "hand-edited Service port reverted"
k label deployment vigil-brain app.kubernetes.io/part-of- >/dev/null
wait_for 10 "label restored" is_equal vigil \
	k get deployment vigil-brain -o 'jsonpath={.metadata.labels.app\.kubernetes\.io/part-of}'
check "removed label restored"
kubectl -n tenant-acme delete resourcequota vigil-quota --wait=false >/dev/null
k delete service vigil-brain --wait=false >/dev/null
wait_for 10 "service recreated" k get service vigil-brain
wait_for 10 "tenant quota recreated" kubectl -n tenant-acme get resourcequota vigil-quota
check "deleted children recreated (Service, ResourceQuota)"

echo "== a fixed count handed to an autoscaler keeps its replicas"
k patch platform vigil --type=merge -p '{"spec":{"worker":{"replicas":{"min":4,"max":4}}}}' >/dev/null
wait_for 30 "worker fixed at 4" is_equal 4 k get deploy vigil-worker -o 'jsonpath={.spec.replicas}'
wait_for 30 "worker HPA removed" gone -n "$NS" get hpa vigil-worker
k patch platform vigil --type=merge -p '{"spec":{"worker":{"replicas":{"min":3,"max":20}}}}' >/dev/null
wait_for 30 "worker HPA back" k get hpa vigil-worker
sleep 3
[ "$(k get deploy vigil-worker -o jsonpath='{.spec.replicas}')" = 4 ] ||
	fail "replicas reset when the autoscaler took over: $(k get deploy vigil-worker -o jsonpath='{.spec.replicas}')"
k get deploy vigil-worker --show-managed-fields -o jsonpath='{.metadata.managedFields[*].manager}' |
	grep -q vigil-operator-handover || fail "no handover field manager on spec.replicas"
check "fixed count -> HPA: replicas stay at 4, co-owned by the handover manager"

echo "== the autoscaler owns replicas"
k scale deployment vigil-worker --replicas=5 >/dev/null
sleep 6
[ "$(k get deploy vigil-worker -o jsonpath='{.spec.replicas}')" = 5 ] || fail "operator fought the replica count"
check "replicas set by another manager left alone"

echo "== prune: switching redis to external removes the managed one"
k patch platform vigil --type=merge -p '{"spec":{"redis":{"external":null,"managed":{"persistence":true}}}}' >/dev/null
wait_for 30 "managed redis created" k get deployment vigil-redis
k patch platform vigil --type=merge -p '{"spec":{"redis":{"managed":null,"external":{"host":"127.0.0.1","port":6379}}}}' >/dev/null
wait_for 30 "managed redis pruned" gone -n "$NS" get deployment vigil-redis
wait_for 10 "redis service pruned" gone -n "$NS" get service vigil-redis
check "children no longer desired are deleted"

echo "== bad input: a missing Secret is a Degraded condition and an Event, not a hot loop"
kubectl create namespace vigil-e2e-bad --dry-run=client -o yaml | kubectl apply -f - >/dev/null
sed -e 's/namespace: vigil-system/namespace: vigil-e2e-bad/' -e 's/name: vigil$/name: broken/' \
	config/samples/platform.yaml | kubectl apply -f - >/dev/null
wait_for 20 "Degraded=True" is_equal True jp -n vigil-e2e-bad get platform broken \
	-o 'jsonpath={.status.conditions[?(@.type=="Degraded")].status}'
msg=$(kubectl -n vigil-e2e-bad get platform broken -o 'jsonpath={.status.conditions[?(@.type=="Degraded")].message}')
[[ $msg == *vigil-postgres* ]] || fail "Degraded message does not name the Secret: $msg"
wait_for 10 "a Warning Event" sh -c "kubectl -n vigil-e2e-bad get events \
	--field-selector involvedObject.name=broken,type=Warning -o name | grep -q ."
# the children's own rollout (Deployment and pod status) and the
# autoscalers' first sync (their status, about 15 s in) legitimately
# enqueue the Platform: measure once both have settled
wait_for 60 "broken platform's Deployments Available" kubectl -n vigil-e2e-bad \
	wait deployment --all --for=condition=Available --timeout=5s
hpas_synced() {
	local n s
	n=$(kubectl -n vigil-e2e-bad get hpa -o name | wc -l)
	s=$(kubectl -n vigil-e2e-bad get hpa -o \
		jsonpath='{range .items[*]}{.status.conditions[0].type}{"\n"}{end}' | grep -c .)
	[ "$n" -gt 0 ] && [ "$s" -eq "$n" ]
}
wait_for 60 "broken platform's autoscalers synced once" hpas_synced
sleep 3
b0=$(metric "$M" 'controller_runtime_reconcile_total{controller="platform"')
sleep 10
b1=$(metric "$M" 'controller_runtime_reconcile_total{controller="platform"')
[ $((b1 - b0)) -le 4 ] || fail "hot loop: $((b1 - b0)) reconciles in 10 s for a Platform waiting on a Secret"
# every reconcile meanwhile reported the same problem: one Event each,
# its count raised, never a second Event with the same reason and message
dups=$(kubectl -n vigil-e2e-bad get events --field-selector involvedObject.name=broken,type=Warning \
	-o jsonpath='{range .items[*]}{.reason}|{.message}{"\n"}{end}' | sort | uniq -d)
[ -z "$dups" ] || fail "a repeated Warning became another Event instead of a higher count: $dups"
check "missing Secret: Degraded ($msg), Warning Event, $((b1 - b0)) reconciles in 10 s"
kubectl delete namespace vigil-e2e-bad --wait=false >/dev/null

echo "== the API server restarts under the operator"
rel0=$(metric "$M" vigil_operator_relists_total)
wr0=$(metric "$M" vigil_operator_watch_restarts_total)
bash e2e/cluster/restart.sh kube-apiserver 2 >/dev/null 2>&1 || fail "API server restart failed"
k set image deploy/vigil-gateway gateway=registry.invalid/evil:2 >/dev/null
wait_for 30 "drift repaired after the restart" is_equal "$image" \
	k get deploy vigil-gateway -o 'jsonpath={.spec.template.spec.containers[0].image}'
kill -0 "$OP_a_PID" || fail "the operator died with the API server"
rel1=$(metric "$M" vigil_operator_relists_total)
wr1=$(metric "$M" vigil_operator_watch_restarts_total)
[ $((rel1 + wr1)) -gt $((rel0 + wr0)) ] || fail "no watch was re-established"
check "recovered without a restart: $((wr1 - wr0)) watch restarts, $((rel1 - rel0)) relists (410 after the restart)"

echo "== deleting a Tenant archives its row and removes its namespace"
kubectl delete tenant globex --wait=false >/dev/null
wait_for 30 "Tenant globex gone" gone get tenant globex
[ "$(psql_q "select state from vigil.tenants where name='globex'")" = archived ] || fail "globex row not archived"
wait_for 120 "namespace globex-scans terminating or gone (garbage collector)" sh -c \
	"! kubectl get namespace globex-scans -o jsonpath='{.status.phase}' 2>/dev/null | grep -q Active"
check "Tenant deletion: row archived, namespace removed"

echo "== cascade: deleting the Platform removes what it owned"
k delete platform vigil --wait=true >/dev/null
wait_for 120 "deployments garbage-collected" sh -c \
	"[ -z \"\$(kubectl -n $NS get deploy,svc,hpa,pdb,networkpolicy -l app.kubernetes.io/instance=vigil -o name)\" ]"
check "Platform deletion cascaded to its children"
operator_stop a || fail "operator a did not exit cleanly on SIGTERM"
check "SIGTERM: clean exit"

echo "== leader election: one writer; kill -9 the leader, the other takes over"
kubectl apply -f config/samples/platform.yaml >/dev/null
operator_start b --leader-elect --database-url "$PG_URL"
operator_start c --leader-elect --database-url "$PG_URL"
wait_for 30 "a leader" sh -c "[ \$(( \$(curl -sf 127.0.0.1:$OP_b_METRICS/metrics | grep -c '^leader_election_master_status.* 1$') + \
	\$(curl -sf 127.0.0.1:$OP_c_METRICS/metrics | grep -c '^leader_election_master_status.* 1$') )) -eq 1 ]"
wait_for 30 "Platform Ready under the leader" is_equal True cond platform vigil Ready
# who leads, from the Lease itself (identity <host>_<pid>), not from a
# second scrape that could fail under load and point at the wrong one
holder=$(k get lease vigil-operator -o jsonpath='{.spec.holderIdentity}')
if [ "${holder##*_}" = "$OP_b_PID" ]; then
	leader=b follower=c
elif [ "${holder##*_}" = "$OP_c_PID" ]; then
	leader=c follower=b
else
	fail "the Lease is held by $holder, neither b ($OP_b_PID) nor c ($OP_c_PID)"
fi
fm=OP_${follower}_METRICS
[ "$(metric "${!fm}" vigil_operator_write_requests_total)" -eq 0 ] ||
	fail "the follower wrote: $(curl -sf "127.0.0.1:${!fm}/metrics" | grep -E '^(rest_client_requests_total|vigil_operator_write|leader_election)')"
check "leader $leader writes, follower $follower made 0 writes"
operator_kill9 "$leader"
t0=$SECONDS
k set image deploy/vigil-gateway gateway=registry.invalid/evil:3 >/dev/null
wait_for 20 "the follower takes over and repairs drift" is_equal "$image" \
	k get deploy vigil-gateway -o 'jsonpath={.spec.template.spec.containers[0].image}'
check "after kill -9 of the leader, $follower reconciled within $((SECONDS - t0)) s"
operator_stop "$follower" || fail "operator $follower did not exit cleanly"

echo
echo "$pass passed, 0 failed"
