#!/usr/bin/env bash
# Smoke test of the local control plane (e2e/cluster/up.sh must have run).
# Checks that the real controllers and kwok do their jobs:
#   - kubectl sees >= 3 Ready kwok nodes
#   - a 3-replica Deployment gets a ReplicaSet from kube-controller-manager,
#     its pods are bound by kube-scheduler to vigil-node-* and become
#     Running+Ready through kwok, and the Deployment becomes Available
#   - a Job's pod runs and exits 0, and the Job completes
#   - deleting the objects removes their pods
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENV_FILE="${VIGIL_CLUSTER_DIR:-$ROOT/.cluster}/env"
TIMEOUT="${SMOKE_TIMEOUT:-90s}"

pass=0
fail() { printf 'FAIL: %s\n' "$*" >&2; printf '%d passed, 1 failed\n' "$pass"; exit 1; }
ok() { pass=$((pass + 1)); printf 'ok %d - %s\n' "$pass" "$*"; }

[[ -f "$ENV_FILE" ]] || fail "cluster env $ENV_FILE not found; run 'make cluster-up' (bash e2e/cluster/up.sh) first"
# shellcheck source=/dev/null
source "$ENV_FILE"
command -v kubectl >/dev/null || fail "kubectl not in PATH"

NS="vigil-smoke-$$"
k() { kubectl --request-timeout=20s "$@"; }
cleanup() {
  k delete namespace "$NS" --wait=false --ignore-not-found >/dev/null 2>&1 || true
}
trap cleanup EXIT

# --- nodes ------------------------------------------------------------------
[[ "$(k get --raw /readyz 2>&1)" == ok ]] || fail "apiserver $VIGIL_APISERVER_URL /readyz is not ok"
ok "apiserver /readyz ok ($VIGIL_APISERVER_URL)"

ready_nodes="$(k get nodes -l type=kwok -o 'jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c '^vigil-node-.*=True$' || true)"
((ready_nodes >= 3)) || { k get nodes -o wide >&2 || true; fail "expected >= 3 Ready kwok nodes, got $ready_nodes"; }
ok "$ready_nodes kwok nodes Ready"

# --- deployment ---------------------------------------------------------------
k create namespace "$NS" >/dev/null || fail "cannot create namespace $NS"
k -n "$NS" apply -f - >/dev/null <<'EOF' || fail "kubectl apply Deployment failed"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: smoke-web
spec:
  replicas: 3
  selector:
    matchLabels: {app: smoke-web}
  template:
    metadata:
      labels: {app: smoke-web}
    spec:
      containers:
      - name: web
        image: registry.invalid/vigil/smoke-web:1.0
        ports: [{containerPort: 8080}]
        resources:
          requests: {cpu: 100m, memory: 64Mi}
        readinessProbe:
          httpGet: {path: /healthz, port: 8080}
EOF
ok "Deployment smoke-web applied"

if ! k -n "$NS" wait deployment/smoke-web --for=condition=Available --timeout="$TIMEOUT" >/dev/null; then
  k -n "$NS" get deploy,rs,pods -o wide >&2 || true
  fail "Deployment smoke-web did not become Available within $TIMEOUT"
fi
ok "Deployment smoke-web Available"

rs_owner="$(k -n "$NS" get rs -l app=smoke-web -o 'jsonpath={.items[*].metadata.ownerReferences[0].name}')"
[[ "$rs_owner" == "smoke-web" ]] || fail "expected one ReplicaSet owned by Deployment smoke-web, got owners '$rs_owner'"
ok "ReplicaSet created by kube-controller-manager (owned by smoke-web)"

ready="$(k -n "$NS" get deployment smoke-web -o 'jsonpath={.status.readyReplicas}')"
[[ "$ready" == 3 ]] || fail "expected 3 ready replicas, got '$ready'"
ok "3/3 replicas ready"

pods="$(k -n "$NS" get pods -l app=smoke-web -o 'jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName} {.status.phase} {.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}')"
[[ "$(grep -c . <<<"$pods")" == 3 ]] || fail "expected 3 pods, got: $pods"
while read -r name node phase rdy; do
  [[ "$node" == vigil-node-* ]] || fail "pod $name is bound to '$node', not a kwok node vigil-node-*"
  [[ "$phase" == Running && "$rdy" == True ]] || fail "pod $name is phase=$phase ready=$rdy, want Running/True"
done <<<"$pods"
ok "every pod bound to a vigil-node-* node, Running and Ready"

# --- job ------------------------------------------------------------------------
k -n "$NS" apply -f - >/dev/null <<'EOF' || fail "kubectl apply Job failed"
apiVersion: batch/v1
kind: Job
metadata:
  name: smoke-job
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: scan
        image: registry.invalid/vigil/smoke-job:1.0
        command: ["/bin/true"]
EOF
if ! k -n "$NS" wait job/smoke-job --for=condition=Complete --timeout="$TIMEOUT" >/dev/null; then
  k -n "$NS" get job,pods -o wide >&2 || true
  fail "Job smoke-job did not complete within $TIMEOUT"
fi
job_pod="$(k -n "$NS" get pods -l job-name=smoke-job -o 'jsonpath={.items[0].metadata.name} {.items[0].spec.nodeName} {.items[0].status.phase} {.items[0].status.containerStatuses[0].state.terminated.exitCode}')"
read -r jname jnode jphase jcode <<<"$job_pod"
[[ "$jnode" == vigil-node-* && "$jphase" == Succeeded && "$jcode" == 0 ]] ||
  fail "job pod $jname: node=$jnode phase=$jphase exitCode=$jcode, want vigil-node-*/Succeeded/0"
ok "Job smoke-job Complete (pod $jname on $jnode exited 0)"

# --- deletion -------------------------------------------------------------------
k -n "$NS" delete deployment smoke-web --wait=true --timeout="$TIMEOUT" >/dev/null || fail "deleting Deployment failed"
deadline=$((SECONDS + ${TIMEOUT%s}))
until [[ -z "$(k -n "$NS" get pods -l app=smoke-web -o name)" ]]; do
  if ((SECONDS >= deadline)); then
    k -n "$NS" get pods -o wide >&2 || true
    fail "pods of the deleted Deployment did not go away within $TIMEOUT"
  fi
  sleep 0.5
done
ok "Deployment deleted and its pods are gone"

k delete namespace "$NS" --timeout="$TIMEOUT" >/dev/null || fail "deleting namespace $NS failed"
ok "namespace $NS deleted"
trap - EXIT

printf '%d passed, 0 failed\n' "$pass"
