#!/usr/bin/env bash
# e2e/test_helm.sh - the Helm chart helm/vigil, with a real helm (built from
# the Go module proxy by scripts/helm.sh) against the local control plane.
#
# What it checks, one line per check:
#   - `helm lint --strict`, with the defaults and with every option on;
#   - helm/vigil/crds/ is byte-for-byte the repository's crds/, and the
#     chart's RBAC is config/rbac/operator.yaml's: the copy in
#     helm/vigil/files/ is identical, and the rules of the rendered
#     ClusterRole and leader-election Role equal the shipped ones;
#   - values.schema.json rejects bad values with a message naming the field
#     (replicas "two" and 0, image.pullPolicy Sometimes, an unknown top-level
#     key, workers out of range), and the chart refuses 2 replicas without
#     leader election;
#   - the rendered operator meets the restricted Pod Security Standard and
#     has its probes, ports and --leader-elect=true; the NetworkPolicy opens
#     only the metrics and health ports; the ServiceMonitor is rendered only
#     when the cluster serves monitoring.coreos.com/v1 ServiceMonitor; the
#     Grafana dashboard ConfigMap has its label and a panel for every
#     operator and platform metric, in PromQL that promtool accepts;
#   - `helm template` output is accepted by the API server
#     (`kubectl apply --dry-run=server --validate=strict`), and so is the
#     sample Platform against the installed CRD;
#   - `helm install` into a namespace that enforces the restricted Pod
#     Security Standard: the CRDs are there (Helm skips CRDs that already
#     exist, leaving them untouched), the operator Deployment becomes
#     Available on the kwok nodes, its ServiceAccount, ClusterRole and
#     bindings exist and the live ClusterRole's rules are the shipped ones,
#     and config/rbac/operator.yaml's own objects are untouched;
#   - `helm upgrade` to 3 replicas rolls out; an upgrade with a bad value is
#     refused and leaves the release as it was;
#   - `helm uninstall` removes the release's objects and keeps the CRDs.
#
# It leaves the cluster as it found it: the release is uninstalled, its
# namespace deleted, and CRDs it created (none when another test installed
# them first) are deleted again. Object names carry the release's own
# prefix (vigil-e2e-helm-operator), so they never collide with the
# vigil-operator objects of config/rbac/operator.yaml that other tests apply.
#
# Usage: bash e2e/test_helm.sh
#   The cluster is the one of ${VIGIL_CLUSTER_DIR:-.cluster}/env (make
#   cluster-up). The first run builds helm (a few minutes; cached after).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
env_file=${VIGIL_CLUSTER_DIR:-$top/.cluster}/env
[ -f "$env_file" ] || {
	echo "test_helm: no cluster: $env_file does not exist (make cluster-up)" >&2
	echo "0 passed, 1 failed"
	exit 1
}
# shellcheck disable=SC1090
. "$env_file"
export KUBECONFIG

CHART=$top/helm/vigil
RELEASE=vigil-e2e-helm
NS=vigil-e2e-helm
OPNAME=$RELEASE-operator # fullnameOverride=$RELEASE
CRDS=(backupschedules.vigil.dev platforms.vigil.dev scanpolicies.vigil.dev tenants.vigil.dev)
WORK=$(mktemp -d)
# helm's own state (repositories, cache) stays in the scratch directory
export HELM_CONFIG_HOME=$WORK/helm/config HELM_CACHE_HOME=$WORK/helm/cache HELM_DATA_HOME=$WORK/helm/data
export KUBECACHEDIR=$WORK/kube-cache

passed=0
failed=0
pass() {
	passed=$((passed + 1))
	printf 'ok    %s\n' "$*"
}
fail() {
	failed=$((failed + 1))
	printf 'FAIL  %s\n' "$1"
	if [ -n "${2:-}" ]; then printf '%s\n' "$2" | head -n 30 | sed 's/^/        /'; fi
}
# die: a failure the rest cannot go on from
die() {
	fail "$@"
	exit 1
}
section() { printf '\n== %s\n' "$*"; }

installed=0
created_crds=()
cleanup() {
	local rc=$?
	set +e
	section "cleanup"
	if [ $installed -eq 1 ] && "$HELM" status "$RELEASE" -n "$NS" >/dev/null 2>&1; then
		"$HELM" uninstall "$RELEASE" -n "$NS" --wait --timeout 60s >/dev/null 2>&1
		printf 'done  uninstalled %s\n' "$RELEASE"
	fi
	if kubectl get namespace "$NS" >/dev/null 2>&1; then
		kubectl delete namespace "$NS" --wait=true --timeout=90s >/dev/null 2>&1 ||
			printf 'warn  namespace %s is still terminating\n' "$NS"
		printf 'done  deleted namespace %s\n' "$NS"
	fi
	if [ ${#created_crds[@]} -gt 0 ]; then
		kubectl delete crd "${created_crds[@]}" --ignore-not-found --wait=true --timeout=60s >/dev/null 2>&1
		printf 'done  deleted the CRDs this test created (%s)\n' "${created_crds[*]}"
	fi
	rm -rf "$WORK"
	# an unexpected error outside a check counts as a failure
	if [ $rc -ne 0 ] && [ $failed -eq 0 ]; then
		failed=1
	fi
	echo
	echo "$passed passed, $failed failed"
	[ $failed -eq 0 ] && [ $rc -eq 0 ] && exit 0
	exit 1
}
trap cleanup EXIT
trap 'printf "test_helm: unexpected failure at line %s: %s\n" "$LINENO" "$BASH_COMMAND" >&2' ERR

command -v kubectl >/dev/null || die "kubectl not found in PATH"
command -v jq >/dev/null || die "jq not found in PATH (make deps)"

# --- helm ---------------------------------------------------------------------
section "helm"
t0=$SECONDS
HELM=$(bash scripts/helm.sh) || die "scripts/helm.sh could not build helm"
pass "helm $("$HELM" version --template '{{.Version}}') at $HELM (ready in $((SECONDS - t0)) s)"

readyz=$(kubectl get --raw /readyz 2>&1) || die "the API server is not reachable (KUBECONFIG=$KUBECONFIG)" "$readyz"
pass "API server ready: $(kubectl version -o json 2>/dev/null | jq -r .serverVersion.gitVersion)"

# a previous run that was killed may have left its release or namespace
if "$HELM" status "$RELEASE" -n "$NS" >/dev/null 2>&1; then
	"$HELM" uninstall "$RELEASE" -n "$NS" --wait --timeout 60s >/dev/null
fi
kubectl delete namespace "$NS" --ignore-not-found --wait=true --timeout=90s >/dev/null
kubectl delete clusterrole,clusterrolebinding "$OPNAME" --ignore-not-found >/dev/null

# render [helm template args...]: the chart as the test installs it
render() { "$HELM" template "$RELEASE" "$CHART" -n "$NS" --set fullnameOverride="$RELEASE" "$@"; }
# to_json FILE: the YAML documents of FILE as {"items": [...]} (kubectl
# reads them, client-side only)
to_json() {
	kubectl create --dry-run=client -o json -f "$1" |
		jq -s '{items: [.[] | if .kind == "List" then .items[] else . end]}'
}

# --- lint and static checks -------------------------------------------------
section "lint and static checks"
if out=$("$HELM" lint --strict "$CHART" 2>&1); then
	pass "helm lint --strict (defaults)"
else
	fail "helm lint --strict (defaults)" "$out"
fi
if out=$("$HELM" lint --strict "$CHART" --set samplePlatform.enabled=true,serviceMonitor.enabled=true \
	--set operator.watchNamespace=team-a,operator.agentImage=agent:1,operator.databaseURLSecret.name=db \
	--set commonLabels.team=sec,commonAnnotations.owner=sec,image.digest=sha256:$(printf '%064d' 0) 2>&1); then
	pass "helm lint --strict (every option on)"
else
	fail "helm lint --strict (every option on)" "$out"
fi

if out=$(diff -r "$top/crds" "$CHART/crds" 2>&1); then
	pass "helm/vigil/crds/ is identical to crds/ ($(ls "$CHART/crds" | wc -l) CRDs)"
else
	fail "helm/vigil/crds/ differs from crds/ (cp crds/*.yaml helm/vigil/crds/)" "$out"
fi
if out=$(diff "$top/config/rbac/operator.yaml" "$CHART/files/operator-rbac.yaml" 2>&1); then
	pass "helm/vigil/files/operator-rbac.yaml is identical to config/rbac/operator.yaml"
else
	fail "helm/vigil/files/operator-rbac.yaml differs from config/rbac/operator.yaml" "$out"
fi

render >"$WORK/default.yaml" || die "helm template with the defaults failed"
to_json "$WORK/default.yaml" >"$WORK/default.json"
to_json "$top/config/rbac/operator.yaml" >"$WORK/shipped.json"
rules() { jq -S --arg k "$2" '[.items[] | select(.kind == $k)] | if length == 1 then .[0].rules else error("\(length) objects of kind \($k)") end' "$1"; }
for kind in ClusterRole Role; do
	if out=$(diff <(rules "$WORK/shipped.json" $kind) <(rules "$WORK/default.json" $kind) 2>&1); then
		pass "rendered $kind rules equal config/rbac/operator.yaml's ($(rules "$WORK/default.json" $kind | jq length) rules)"
	else
		fail "rendered $kind rules differ from config/rbac/operator.yaml's" "$out"
	fi
done
# the bindings point at the release's own ServiceAccount and roles
if jq -e --arg n "$OPNAME" --arg ns "$NS" '
	[.items[] | select(.kind == "ClusterRoleBinding" or .kind == "RoleBinding")] | length == 2 and
	all(.subjects == [{kind: "ServiceAccount", name: $n, namespace: $ns}]) and
	(map(.roleRef.name) | sort == [$n, $n + "-leader-election"])' "$WORK/default.json" >/dev/null; then
	pass "ClusterRoleBinding and RoleBinding bind $OPNAME's roles to ServiceAccount $NS/$OPNAME"
else
	fail "the bindings do not bind the release's roles to its ServiceAccount"
fi

# schema: each bad value is refused with a message that names the field
# expect_rejected LABEL REGEX helm-template-args...
expect_rejected() {
	local label=$1 want=$2 out
	shift 2
	if out=$(render "$@" 2>&1); then
		fail "$label: accepted"
	elif grep -qE -- "$want" <<<"$out"; then
		pass "$label: rejected ($(grep -E -- "$want" <<<"$out" | head -n 1 | sed 's/^[[:space:]-]*//'))"
	else
		fail "$label: rejected, but the message does not match /$want/" "$out"
	fi
}
expect_rejected 'replicas: "two"' "replicas.*(want integer|integer)" --set-string replicas=two
expect_rejected "replicas: 0" "replicas.*(minimum|>= 1|1)" --set replicas=0
expect_rejected "image.pullPolicy: Sometimes" "pullPolicy.*(Always|IfNotPresent|enum)" --set image.pullPolicy=Sometimes
expect_rejected "unknown top-level key replica" "additional ?propert.*replica" --set replica=3
expect_rejected "operator.workers: 100" "workers.*(maximum|64)" --set operator.workers=100
expect_rejected "operator.qps: fast" "qps.*(want number|number)" --set-string operator.qps=fast
expect_rejected "replicas 2 without leader election" "replicas > 1 needs leaderElection.enabled" --set leaderElection.enabled=false
if render --set replicas=1 --set leaderElection.enabled=false >/dev/null 2>&1; then
	pass "1 replica without leader election is accepted"
else
	fail "1 replica without leader election is refused"
fi

# the operator Deployment: restricted pod security, probes, ports, flags
dep='.items[] | select(.kind == "Deployment")'
if out=$(jq -e "$dep"' | .spec.template.spec as $p | $p.containers[0] as $c |
	.spec.replicas == 2 and
	$p.securityContext.runAsNonRoot == true and
	$p.securityContext.seccompProfile.type == "RuntimeDefault" and
	$c.securityContext.readOnlyRootFilesystem == true and
	$c.securityContext.allowPrivilegeEscalation == false and
	$c.securityContext.capabilities.drop == ["ALL"] and
	($c.resources.requests | has("cpu") and has("memory")) and
	($c.resources.limits | has("cpu") and has("memory")) and
	$c.livenessProbe.httpGet == {path: "/healthz", port: "health"} and
	$c.readinessProbe.httpGet == {path: "/readyz", port: "health"} and
	([$c.ports[] | {(.name): .containerPort}] | add) == {health: 8081, metrics: 8080} and
	($c.args | index("--leader-elect=true") != null) and
	($c.args | index("--leader-election-namespace='"$NS"'") != null) and
	($c.args | index("--health-addr=0.0.0.0:8081") != null) and
	($c.args | index("--metrics-addr=0.0.0.0:8080") != null) and
	$p.serviceAccountName == "'"$OPNAME"'"' "$WORK/default.json" 2>&1); then
	pass "Deployment: 2 replicas, --leader-elect=true, restricted security context, resources, /healthz and /readyz on the health port, metrics port"
else
	fail "the rendered Deployment misses part of its contract" "$(jq "$dep" "$WORK/default.json")"
fi
render --set replicas=3 --set operator.logLevel=debug --set-json operator.qps=5.5 --set operator.burst=11 \
	--set operator.workers=4 --set operator.watchNamespace=team-a --set operator.agentImage=agent:2 \
	--set operator.agentGatewayURL=https://gw.example:8443 --set operator.databaseURLSecret.name=pg-url \
	-s templates/deployment.yaml >"$WORK/flags.yaml"
want_args='["--leader-elect=true","--leader-election-namespace='"$NS"'","--leader-election-id='"$OPNAME"'","--metrics-addr=0.0.0.0:8080","--health-addr=0.0.0.0:8081","--log-level=debug","--qps=5.5","--burst=11","--workers=4","--namespace=team-a","--agent-image=agent:2","--agent-gateway-url=https://gw.example:8443"]'
if to_json "$WORK/flags.yaml" | jq -e --argjson want "$want_args" '.items[0].spec.template.spec.containers[0] |
	.args == $want and .env == [{name: "VIGIL_DATABASE_URL", valueFrom: {secretKeyRef: {name: "pg-url", key: "url"}}}]' >/dev/null; then
	pass "operator values become its flags (--log-level, --qps, --burst, --workers, --namespace, --agent-image, ...) and VIGIL_DATABASE_URL"
else
	fail "operator values do not map to the flags" "$(to_json "$WORK/flags.yaml" | jq -c '.items[0].spec.template.spec.containers[0] | {args, env}')"
fi

# NetworkPolicy: ingress to the two ports only; egress API server, DNS, database
if jq -e '.items[] | select(.kind == "NetworkPolicy") | .spec as $s |
	$s.policyTypes == ["Ingress", "Egress"] and
	($s.ingress | length) == 1 and ([$s.ingress[0].ports[].port] | sort) == ["health", "metrics"] and
	($s.egress | length) == 3 and
	([$s.egress[0].ports[].port] | sort) == [443, 6443] and
	([$s.egress[1].ports[].port] | unique) == [53] and
	$s.egress[2].ports == [{port: 5432, protocol: "TCP"}]' "$WORK/default.json" >/dev/null; then
	pass "NetworkPolicy: ingress only to the metrics and health ports; egress to the API server, DNS and PostgreSQL"
else
	fail "the NetworkPolicy is not as documented" "$(jq '.items[] | select(.kind == "NetworkPolicy") | .spec' "$WORK/default.json")"
fi
if jq -e '[.items[] | select(.kind == "PodDisruptionBudget")] | length == 1 and .[0].spec.minAvailable == 1' \
	"$WORK/default.json" >/dev/null &&
	[ "$(render --set replicas=1,leaderElection.enabled=false | grep -c '^kind: PodDisruptionBudget')" = 0 ]; then
	pass "PodDisruptionBudget minAvailable 1 (none with a single replica)"
else
	fail "PodDisruptionBudget not as documented"
fi
if [ "$(grep -c '^kind: Platform$' "$WORK/default.yaml")" = 0 ] &&
	[ "$(render --set samplePlatform.enabled=true | grep -c '^kind: Platform$')" = 1 ]; then
	pass "sample Platform: off by default, rendered when samplePlatform.enabled"
else
	fail "sample Platform not off by default / not rendered when enabled"
fi

# ServiceMonitor: only when enabled AND the cluster serves the API
sm() { render "$@" | grep -c '^kind: ServiceMonitor$' || true; }
n_default=$(sm)
n_noapi=$(sm --set serviceMonitor.enabled=true)
n_api=$(sm --set serviceMonitor.enabled=true --api-versions monitoring.coreos.com/v1/ServiceMonitor)
n_off=$(sm --api-versions monitoring.coreos.com/v1/ServiceMonitor)
if [ "$n_default$n_noapi$n_api$n_off" = 0010 ]; then
	pass "ServiceMonitor only when enabled and monitoring.coreos.com/v1/ServiceMonitor is served"
else
	fail "ServiceMonitor rendering: default $n_default, enabled without the API $n_noapi, enabled with it $n_api, API but disabled $n_off (want 0 0 1 0)"
fi

# Grafana dashboard
jq '.items[] | select(.kind == "ConfigMap" and .metadata.labels.grafana_dashboard == "1") | .data["vigil.json"]' -r \
	"$WORK/default.json" >"$WORK/dashboard.json"
metrics=(controller_runtime_reconcile_total controller_runtime_reconcile_errors_total workqueue_depth
	controller_runtime_reconcile_time_seconds http_requests_total http_request_duration_seconds
	vigil_scan_jobs vigil_emergency_stop vigil_active_sessions)
if ! jq -e '.panels | length > 0' "$WORK/dashboard.json" >/dev/null 2>&1; then
	fail "no ConfigMap labelled grafana_dashboard=1 with a JSON dashboard"
else
	missing=()
	for m in "${metrics[@]}"; do
		jq -e --arg m "$m" '[.panels[].targets[]?.expr | select(test("\\b" + $m + "(_bucket)?\\b"))] | length > 0' \
			"$WORK/dashboard.json" >/dev/null || missing+=("$m")
	done
	if [ ${#missing[@]} -eq 0 ]; then
		pass "Grafana dashboard ConfigMap (grafana_dashboard: \"1\"): $(jq '[.panels[] | select(.type != "row")] | length' "$WORK/dashboard.json") panels covering ${#metrics[@]} operator and platform metrics"
	else
		fail "the dashboard has no panel for: ${missing[*]}"
	fi
	# every expression is valid PromQL (Grafana's variables replaced)
	jq -r '.panels[].targets[]?.expr' "$WORK/dashboard.json" |
		sed -e 's/\$__rate_interval/5m/g' -e 's/\$namespace/.*/g' |
		awk 'BEGIN { print "groups:\n  - name: dashboard\n    rules:" }
			{ gsub(/\\/, "\\\\"); gsub(/"/, "\\\""); printf "      - record: vigil:panel_%d\n        expr: \"%s\"\n", NR, $0 }' \
			>"$WORK/dashboard-rules.yaml"
	if ! command -v promtool >/dev/null; then
		fail "promtool not found (make deps installs prometheus): cannot check the dashboard's PromQL"
	elif out=$(promtool check rules "$WORK/dashboard-rules.yaml" 2>&1); then
		pass "promtool accepts the dashboard's $(grep -c 'record:' "$WORK/dashboard-rules.yaml") PromQL expressions"
	else
		fail "promtool rejects the dashboard's PromQL" "$out"
	fi
fi

# --- the API server's view ----------------------------------------------------
section "server-side dry run"
declare -A crd_rv=()
for c in "${CRDS[@]}"; do
	crd_rv[$c]=$(kubectl get crd "$c" -o jsonpath='{.metadata.resourceVersion}' 2>/dev/null || true)
done
shipped_cr_rv=$(kubectl get clusterrole vigil-operator -o jsonpath='{.metadata.resourceVersion}' 2>/dev/null || true)
shipped_crb_rv=$(kubectl get clusterrolebinding vigil-operator -o jsonpath='{.metadata.resourceVersion}' 2>/dev/null || true)

# the namespace enforces the restricted Pod Security Standard: the operator's
# pods are only created if they meet it
kubectl create namespace "$NS" >/dev/null
kubectl label namespace "$NS" pod-security.kubernetes.io/enforce=restricted \
	pod-security.kubernetes.io/warn=restricted >/dev/null
render --include-crds >"$WORK/with-crds.yaml"
if out=$(kubectl apply --dry-run=server --validate=strict -f "$WORK/with-crds.yaml" 2>&1); then
	pass "helm template --include-crds: $(grep -c 'server dry run' <<<"$out") objects accepted by kubectl apply --dry-run=server --validate=strict"
else
	fail "the API server rejects the rendered chart" "$out"
fi

# --- install ------------------------------------------------------------------
section "helm install"
t0=$SECONDS
installed=1
if out=$("$HELM" install "$RELEASE" "$CHART" -n "$NS" --set fullnameOverride="$RELEASE" --wait --timeout 180s 2>&1); then
	pass "helm install $RELEASE -n $NS --wait ($((SECONDS - t0)) s)"
else
	die "helm install failed" "$out"
fi
for c in "${CRDS[@]}"; do
	[ -n "${crd_rv[$c]}" ] || created_crds+=("$c")
done
if kubectl wait --for=condition=Established crd "${CRDS[@]}" --timeout=60s >/dev/null 2>&1; then
	pass "CRDs Established: ${CRDS[*]}"
else
	fail "CRDs not all Established"
fi
unchanged=1
for c in "${CRDS[@]}"; do
	if [ -n "${crd_rv[$c]}" ] && [ "$(kubectl get crd "$c" -o jsonpath='{.metadata.resourceVersion}')" != "${crd_rv[$c]}" ]; then
		unchanged=0
	fi
done
if [ ${#created_crds[@]} -eq ${#CRDS[@]} ]; then
	pass "helm installed the ${#CRDS[@]} CRDs from helm/vigil/crds/"
elif [ $unchanged -eq 1 ]; then
	pass "CRDs that existed were left untouched by helm (${#created_crds[@]} created)"
else
	fail "helm changed CRDs that already existed"
fi

if kubectl -n "$NS" wait --for=condition=Available "deployment/$OPNAME" --timeout=60s >/dev/null 2>&1 &&
	[ "$(kubectl -n "$NS" get deployment "$OPNAME" -o jsonpath='{.status.readyReplicas}')" = 2 ]; then
	pass "Deployment $OPNAME Available with 2 ready replicas"
else
	fail "Deployment $OPNAME not Available" "$(kubectl -n "$NS" describe deployment "$OPNAME" 2>&1 | tail -n 20)"
fi
nodes=$(kubectl -n "$NS" get pods -l app.kubernetes.io/instance="$RELEASE",app.kubernetes.io/name=vigil-operator \
	-o jsonpath='{range .items[*]}{.spec.nodeName}{"\n"}{end}')
if [ "$(grep -c '^vigil-node-' <<<"$nodes")" = 2 ]; then
	pass "operator pods scheduled on kwok nodes ($(echo $nodes)) and admitted under the restricted Pod Security Standard"
else
	fail "operator pods are not on the kwok nodes" "$nodes"
fi
missing=()
for o in "serviceaccount/$OPNAME" "role/$OPNAME-leader-election" "rolebinding/$OPNAME-leader-election" \
	"service/$OPNAME-metrics" "networkpolicy/$OPNAME" "poddisruptionbudget/$OPNAME" "configmap/$RELEASE-dashboard"; do
	kubectl -n "$NS" get "$o" >/dev/null 2>&1 || missing+=("$o")
done
for o in "clusterrole/$OPNAME" "clusterrolebinding/$OPNAME"; do
	kubectl get "$o" >/dev/null 2>&1 || missing+=("$o")
done
if [ ${#missing[@]} -eq 0 ]; then
	pass "ServiceAccount, ClusterRole, ClusterRoleBinding, leader-election Role/RoleBinding, metrics Service, NetworkPolicy, PDB, dashboard ConfigMap exist"
else
	fail "missing after install: ${missing[*]}"
fi
if out=$(diff <(rules "$WORK/shipped.json" ClusterRole) <(kubectl get clusterrole "$OPNAME" -o json | jq -S '.rules') 2>&1); then
	pass "the live ClusterRole $OPNAME has config/rbac/operator.yaml's rules"
else
	fail "the live ClusterRole's rules differ from config/rbac/operator.yaml's" "$out"
fi
if [ "$(kubectl auth can-i create deployments.apps -n default --as "system:serviceaccount:$NS:$OPNAME")" = yes ] &&
	[ "$(kubectl auth can-i create leases.coordination.k8s.io -n "$NS" --as "system:serviceaccount:$NS:$OPNAME")" = yes ] &&
	[ "$(kubectl auth can-i create leases.coordination.k8s.io -n default --as "system:serviceaccount:$NS:$OPNAME" || true)" = no ] &&
	[ "$(kubectl auth can-i create clusterroles --as "system:serviceaccount:$NS:$OPNAME" 2>/dev/null || true)" = no ]; then
	pass "the ServiceAccount may manage Deployments and Leases in $NS, not Leases elsewhere nor ClusterRoles"
else
	fail "the ServiceAccount's permissions are not the shipped least privilege"
fi
if [ "$(kubectl get clusterrole vigil-operator -o jsonpath='{.metadata.resourceVersion}' 2>/dev/null || true)" = "$shipped_cr_rv" ] &&
	[ "$(kubectl get clusterrolebinding vigil-operator -o jsonpath='{.metadata.resourceVersion}' 2>/dev/null || true)" = "$shipped_crb_rv" ]; then
	pass "config/rbac/operator.yaml's ClusterRole/Binding vigil-operator untouched (${shipped_cr_rv:-absent})"
else
	fail "the release changed the ClusterRole/Binding vigil-operator of config/rbac/operator.yaml"
fi

# the sample Platform against the installed CRD
render --set samplePlatform.enabled=true -s templates/platform.yaml >"$WORK/platform.yaml"
if out=$(kubectl apply --dry-run=server --validate=strict -f "$WORK/platform.yaml" 2>&1); then
	pass "the sample Platform is valid for the Platform CRD (server dry run)"
else
	fail "the API server rejects the sample Platform" "$out"
fi

# --- upgrade ------------------------------------------------------------------
section "helm upgrade"
t0=$SECONDS
if out=$("$HELM" upgrade "$RELEASE" "$CHART" -n "$NS" --reuse-values --set replicas=3 --wait --timeout 180s 2>&1) &&
	kubectl -n "$NS" rollout status "deployment/$OPNAME" --timeout=60s >/dev/null 2>&1 &&
	[ "$(kubectl -n "$NS" get deployment "$OPNAME" -o jsonpath='{.spec.replicas}/{.status.readyReplicas}/{.status.updatedReplicas}')" = 3/3/3 ]; then
	pass "helm upgrade --set replicas=3: rolled out, 3 ready replicas ($((SECONDS - t0)) s)"
else
	fail "helm upgrade to 3 replicas did not roll out" "$out$(kubectl -n "$NS" get deployment "$OPNAME" -o wide 2>&1)"
fi
if out=$("$HELM" upgrade "$RELEASE" "$CHART" -n "$NS" --reuse-values --set image.pullPolicy=Sometimes 2>&1); then
	fail "helm upgrade accepted image.pullPolicy=Sometimes"
elif grep -q pullPolicy <<<"$out" &&
	[ "$("$HELM" history "$RELEASE" -n "$NS" --max 1 -o json | jq -r '.[0] | "\(.revision) \(.status)"')" = "2 deployed" ] &&
	[ "$(kubectl -n "$NS" get deployment "$OPNAME" -o jsonpath='{.spec.template.spec.containers[0].imagePullPolicy}')" = IfNotPresent ]; then
	pass "helm upgrade with image.pullPolicy=Sometimes refused by the schema; revision 2 stays deployed"
else
	fail "a bad upgrade was not refused cleanly" "$out"
fi

# --- uninstall ----------------------------------------------------------------
section "helm uninstall"
if out=$("$HELM" uninstall "$RELEASE" -n "$NS" --wait --timeout 120s 2>&1); then
	installed=0
	left=()
	for o in "deployment/$OPNAME" "serviceaccount/$OPNAME" "role/$OPNAME-leader-election" \
		"rolebinding/$OPNAME-leader-election" "service/$OPNAME-metrics" "networkpolicy/$OPNAME" \
		"poddisruptionbudget/$OPNAME" "configmap/$RELEASE-dashboard"; do
		kubectl -n "$NS" get "$o" >/dev/null 2>&1 && left+=("$o")
	done
	for o in "clusterrole/$OPNAME" "clusterrolebinding/$OPNAME"; do
		kubectl get "$o" >/dev/null 2>&1 && left+=("$o")
	done
	if [ ${#left[@]} -eq 0 ]; then
		pass "helm uninstall removed every object of the release, cluster-scoped ones too"
	else
		fail "left after helm uninstall: ${left[*]}"
	fi
else
	fail "helm uninstall failed" "$out"
fi
if kubectl get crd "${CRDS[@]}" >/dev/null 2>&1; then
	pass "the CRDs stay after helm uninstall (as Helm does with crds/)"
else
	fail "CRDs were removed by helm uninstall"
fi
