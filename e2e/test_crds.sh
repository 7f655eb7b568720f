#!/usr/bin/env bash
# e2e/test_crds.sh - the vigil.dev/v1alpha1 CustomResourceDefinitions against a
# real kube-apiserver (the local control plane of e2e/cluster/).
#
# What it checks, printing one line per check:
#   - crds/ applies (server-side, idempotently, also when already installed);
#     every CRD becomes Established with its names accepted and is structural;
#   - every schema field of every kind has a description, and
#     `kubectl explain` teaches the API (platform.spec.gateway, ...);
#   - every sample in config/samples/ is accepted (server dry-run, strict
#     field validation), and objects created from them come back with the
#     documented defaults filled in (gateway 3-20 replicas, HPA 70/80, ...);
#   - status is a subresource (spec and status are written separately);
#   - printer columns, short names and the category `vigil` work;
#   - every object under e2e/crds/invalid/ is rejected by the API server with
#     the message in its first line (`# expect: <substring>`), and every object
#     under e2e/crds/valid/ is accepted. In a file with several documents, all
#     but the last are created for real first and the last is applied as an
#     update (this is how immutability and "can only grow" rules are tested).
#
# Everything it creates lives in a scratch namespace or carries the label
# e2e.vigil.dev/suite=crds, and is deleted at exit. The CRDs stay installed
# (other tests use them).
#
# Usage: bash e2e/test_crds.sh    (KUBECONFIG, or .cluster/env from make cluster-up)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

die() { printf 'test_crds: FATAL: %s\n' "$*" >&2; exit 1; }

if [[ -z "${KUBECONFIG:-}" ]]; then
  # shellcheck disable=SC1091
  [[ -f .cluster/env ]] && source .cluster/env
  if [[ -z "${KUBECONFIG:-}" && -f .cluster/kubeconfig ]]; then
    export KUBECONFIG="$ROOT/.cluster/kubeconfig"
  fi
fi
[[ -n "${KUBECONFIG:-}" ]] ||
  die "no cluster: KUBECONFIG is unset and .cluster/env does not exist; start the local control plane first (make cluster-up)"
command -v kubectl >/dev/null || die "kubectl not found in PATH"
command -v jq >/dev/null || die "jq not found in PATH (apt-get install jq)"

WORK="$(mktemp -d)"
# A private discovery/OpenAPI cache, so kubectl sees the CRDs as applied now.
export KUBECACHEDIR="$WORK/kube-cache"
NS="vigil-e2e-crds-$(date +%s)-$$"
RUN_ID="$(printf '%04x%04x' $RANDOM $RANDOM)"
SUITE_LABEL="e2e.vigil.dev/suite=crds"
CRDS=(platforms.vigil.dev tenants.vigil.dev scanpolicies.vigil.dev backupschedules.vigil.dev)
CREATED_TENANTS=()

PASSED=0
FAILED=0
FAILURES=()
pass() { PASSED=$((PASSED + 1)); printf 'ok    %s\n' "$1"; }
fail() {
  FAILED=$((FAILED + 1)); FAILURES+=("$1")
  printf 'FAIL  %s\n' "$1"
  if [[ -n "${2:-}" ]]; then printf '%s\n' "$2" | sed 's/^/        /'; fi
}
section() { printf '\n== %s\n' "$*"; }

kc() { kubectl "$@"; }

CLUSTER_OK=0
cleanup() {
  local rc=$?
  set +e
  if ((CLUSTER_OK == 0)); then rm -rf "$WORK"; exit "$rc"; fi
  section "cleanup"
  if kc get namespace "$NS" >/dev/null 2>&1; then
    kc -n "$NS" delete platforms,scanpolicies,backupschedules --all --wait=false >/dev/null 2>&1
    kc delete namespace "$NS" --wait=true --timeout=60s >/dev/null 2>&1 ||
      printf 'warn  namespace %s is still terminating\n' "$NS"
    printf 'done  deleted namespace %s\n' "$NS"
  fi
  local t
  for t in "${CREATED_TENANTS[@]}"; do
    kc delete tenant "$t" --ignore-not-found --wait=false >/dev/null 2>&1
  done
  kc delete tenants -l "$SUITE_LABEL" --ignore-not-found --wait=true --timeout=60s >/dev/null 2>&1 ||
    printf 'warn  some test Tenants are still being deleted\n'
  printf 'done  deleted test Tenants\n'
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
# An unexpected failure outside a check (for example the API server going
# away mid-run) names the command instead of ending silently.
trap 'printf "test_crds: FATAL: unexpected failure at line %s: %s\n" "$LINENO" "$BASH_COMMAND" >&2' ERR

# --- helpers -----------------------------------------------------------------

# Collapse whitespace (kubectl explain wraps long descriptions).
flat() { tr -s ' \n\t' '   ' | sed 's/^ //; s/ $//'; }

# render FILE NAME_PREFIX: set metadata.namespace of namespaced objects to the
# scratch namespace and (if NAME_PREFIX is given) prefix metadata.name, so
# samples can be created without touching vigil-system or real tenants.
render() {
  awk -v ns="$NS" -v prefix="${2:-}" '
    /^[^[:space:]#]/ { inmeta = ($0 ~ /^metadata:/) }
    /^---/ { inmeta = 0 }
    inmeta && /^  namespace:/ { print "  namespace: " ns; next }
    inmeta && prefix != "" && /^  name:/ { sub(/^  name: */, "  name: " prefix "-"); print; next }
    { print }' "$1"
}

# split_docs FILE DIR: DIR/doc-000.yaml, doc-001.yaml, ... (one per YAML document)
split_docs() {
  mkdir -p "$2"
  awk -v dir="$2" '
    BEGIN { n = 0; f = sprintf("%s/doc-%03d.yaml", dir, n) }
    /^---[[:space:]]*$/ { n++; f = sprintf("%s/doc-%03d.yaml", dir, n); next }
    { print > f }' "$1"
}

# expect_json FILE 'jq filter' EXPECTED LABEL
expect_json() {
  local got
  got="$(jq -c "$2" "$1" 2>&1)" || got="<jq error: $got>"
  if [[ "$got" == "$3" ]]; then
    pass "$4: $2 = $3"
  else
    fail "$4: $2 = $got, want $3"
  fi
}

# --- 0. the cluster ----------------------------------------------------------
section "cluster"
readyz="$(kc get --raw /readyz 2>&1)" ||
  die "the API server is not reachable with KUBECONFIG=$KUBECONFIG: $readyz"
[[ "$readyz" == "ok" ]] || die "the API server is not ready: $readyz"
server_version="$(kc version -o json 2>/dev/null | jq -r '.serverVersion.gitVersion // "unknown"')"
pass "API server ready (kube-apiserver $server_version)"
CLUSTER_OK=1

# --- 1. install the CRDs -----------------------------------------------------
section "install crds/"
crd_generations() {
  local c
  for c in "${CRDS[@]}"; do
    printf '%s=%s ' "$c" "$(kc get crd "$c" -o jsonpath='{.metadata.generation}' 2>/dev/null || echo none)"
  done
}
before="$(crd_generations)"
out="$(kc apply --server-side --force-conflicts --field-manager=vigil-crds -f crds/ 2>&1)" ||
  die "kubectl apply -f crds/ failed:
$out"
pass "kubectl apply --server-side -f crds/ ($(grep -c serverside-applied <<<"$out") CRDs)"
for c in "${CRDS[@]}"; do
  if kc wait --for=condition=Established --timeout=60s "crd/$c" >/dev/null 2>&1 &&
    kc wait --for=condition=NamesAccepted --timeout=60s "crd/$c" >/dev/null 2>&1; then
    pass "$c is Established with its names accepted"
  else
    fail "$c did not become Established" "$(kc get crd "$c" -o jsonpath='{.status.conditions}' 2>&1)"
  fi
  nonstructural="$(kc get crd "$c" -o jsonpath='{.status.conditions[?(@.type=="NonStructuralSchema")].message}')"
  if [[ -z "$nonstructural" ]]; then
    pass "$c has a structural schema"
  else
    fail "$c is not structural" "$nonstructural"
  fi
done
after="$(crd_generations)"
if [[ "$before" != "$after" ]]; then
  # A changed schema is served a moment after the CRD object is written.
  sleep 3
fi
# Applying the same files again must change nothing (stable, normalised YAML).
rv_before="$(kc get crd "${CRDS[@]}" -o jsonpath='{range .items[*]}{.metadata.resourceVersion} {end}')"
out="$(kc apply --server-side --force-conflicts --field-manager=vigil-crds -f crds/ 2>&1)" ||
  fail "second kubectl apply -f crds/ failed" "$out"
rv_after="$(kc get crd "${CRDS[@]}" -o jsonpath='{range .items[*]}{.metadata.resourceVersion} {end}')"
if [[ "$rv_before" == "$rv_after" ]]; then
  pass "applying crds/ again is a no-op (resourceVersions unchanged)"
else
  fail "applying crds/ again changed the CRDs" "before: $rv_before
after:  $rv_after"
fi

# --- 2. descriptions and kubectl explain -------------------------------------
section "descriptions"
for c in "${CRDS[@]}"; do
  missing="$(kc get crd "$c" -o json | jq -r '
    .spec.versions[] | .name as $v | .schema.openAPIV3Schema
    | [paths(objects) as $p
       | select(($p | length) >= 2 and $p[-2] == "properties")
       | select($p != ["properties", "metadata"])   # standard ObjectMeta: no schema of ours
       | select(getpath($p).description == null or getpath($p).description == "")
       | "\($v): " + ([$p[] | select(. != "properties" and . != "items")] | map(tostring) | join("."))]
    | .[]')"
  nfields="$(kc get crd "$c" -o json | jq '[.spec.versions[].schema.openAPIV3Schema | paths(objects) as $p | select(($p | length) >= 2 and $p[-2] == "properties" and $p != ["properties", "metadata"])] | length')"
  if [[ -z "$missing" ]]; then
    pass "$c: all $nfields schema fields have a description"
  else
    fail "$c: fields without a description" "$missing"
  fi
done

explain_has() { # RESOURCE.PATH PHRASE...
  local what="$1"; shift
  local text phrase
  if ! text="$(kc explain "$what" 2>&1 | flat)"; then
    fail "kubectl explain $what" "$text"; return
  fi
  for phrase in "$@"; do
    if [[ "$text" != *"$phrase"* ]]; then
      fail "kubectl explain $what mentions \"$phrase\"" "$text"; return
    fi
  done
  pass "kubectl explain $what explains it ($(printf '"%s" ' "$@"))"
}
explain_has platform.spec.gateway "The gateway: REST API and WebSocket event stream" \
  "replicas" "autoscaling" "resources" "rolloutStrategy" "image" "port"
explain_has platform.spec.gateway.replicas "Replica bounds of the gateway" "set min equal to max" "Defaults to min 3, max 20"
explain_has platform.spec.gateway.rolloutStrategy "BlueGreen starts a complete second set of pods" "RollingUpdate"
explain_has platform.spec.database "Set exactly one of managed" "external"
explain_has platform.spec.emergencyStop "no scan starts anywhere on the platform"
explain_has tenant.spec.allowedTargets "authorised scan scope"
explain_has tenant.spec.quota.maxConcurrentScans "Defaults to 2"
explain_has scanpolicy.spec "targets" "schedule" "parallelism" "rateLimit" "timeoutSeconds"
explain_has scanpolicy.spec.schedule "cron expression with five fields" "one-shot"
explain_has backupschedule.spec.destination "Set exactly one of s3 or volume"
explain_has backupschedule.spec.retention.keepLast "Defaults to 7"

# --- 3. samples --------------------------------------------------------------
section "samples (config/samples/)"
kc create namespace "$NS" >/dev/null || die "cannot create the scratch namespace $NS"
kc label namespace "$NS" "$SUITE_LABEL" >/dev/null
pass "scratch namespace $NS created"

for f in config/samples/*.yaml; do
  render "$f" "e2e-crds-$RUN_ID" >"$WORK/sample.yaml"
  if out="$(kc apply --dry-run=server --validate=strict -n "$NS" -f "$WORK/sample.yaml" 2>&1)"; then
    pass "sample $f accepted ($(grep -c 'created\|configured\|unchanged' <<<"$out") objects, server dry-run)"
  else
    fail "sample $f rejected" "$out"
  fi
done

# Platform: created for real (the sample sets no replicas, HPA targets or
# resources), read back, and compared with the defaults table of DESIGN.md.
if out="$(render config/samples/platform.yaml | kc create -n "$NS" -f - 2>&1)"; then
  pass "created Platform vigil from config/samples/platform.yaml"
  kc -n "$NS" get platform vigil -o json >"$WORK/platform.json"
  P="$WORK/platform.json"
  for comp in gateway:3:20:100m:500m:256Mi:1Gi brain:2:10:250m:1000m:512Mi:2Gi worker:3:20:250m:1000m:512Mi:2Gi; do
    IFS=: read -r c mn mx creq clim mreq mlim <<<"$comp"
    expect_json "$P" "[.spec.$c.replicas.min, .spec.$c.replicas.max]" "[$mn,$mx]" "default $c replicas"
    expect_json "$P" "[.spec.$c.autoscaling.targetCPUUtilization, .spec.$c.autoscaling.targetMemoryUtilization]" "[70,80]" "default $c HPA targets"
    expect_json "$P" ".spec.$c.resources" "{\"limits\":{\"cpu\":\"$clim\",\"memory\":\"$mlim\"},\"requests\":{\"cpu\":\"$creq\",\"memory\":\"$mreq\"}}" "default $c resources"
    expect_json "$P" "[.spec.$c.rolloutStrategy, .spec.$c.image.pullPolicy]" '["RollingUpdate","IfNotPresent"]' "default $c rollout and pull policy"
  done
  expect_json "$P" "[.spec.gateway.port, .spec.brain.port, .spec.gateway.service.type]" '[8080,8081,"ClusterIP"]' "default ports"
  expect_json "$P" "[.spec.imageRegistry, .spec.logLevel]" '["ghcr.io/vigil-dev","info"]' "default registry and log level"
  expect_json "$P" "[.spec.emergencyStop, .spec.networkPolicy.enabled]" '[false,true]' "default emergency stop and network policy"
  expect_json "$P" ".spec.database.external | [.port, .database, .sslMode, .credentialsSecret.usernameKey, .credentialsSecret.passwordKey]" \
    '[5432,"vigil","disable","username","password"]' "external database"
  expect_json "$P" ".spec.redis.external | [.port, .database]" '[6379,0]' "default external redis"
  expect_json "$P" ".metadata.generation" '1' "new Platform"
else
  fail "create Platform from config/samples/platform.yaml" "$out"
fi

# Managed database and redis: defaults seen through a server dry-run.
cat >"$WORK/managed.yaml" <<'EOF'
apiVersion: vigil.dev/v1alpha1
kind: Platform
metadata:
  name: managed-defaults
spec:
  version: 0.1.0
  database:
    managed: {}
  redis:
    managed: {}
EOF
if kc create --dry-run=server --validate=strict -n "$NS" -o json -f "$WORK/managed.yaml" >"$WORK/managed.json" 2>"$WORK/err"; then
  M="$WORK/managed.json"
  expect_json "$M" ".spec.database.managed | [.version, .storage]" '["16","20Gi"]' "default managed database"
  expect_json "$M" ".spec.database.managed.resources" '{"limits":{"cpu":"1000m","memory":"2Gi"},"requests":{"cpu":"250m","memory":"512Mi"}}' "default managed database resources"
  expect_json "$M" ".spec.redis.managed | [.persistence, .storage]" '[true,"8Gi"]' "default managed redis"
  expect_json "$M" ".spec.redis.managed.resources" '{"limits":{"cpu":"500m","memory":"512Mi"},"requests":{"cpu":"100m","memory":"256Mi"}}' "default managed redis resources"
else
  fail "dry-run of a managed Platform" "$(cat "$WORK/err")"
fi

# Tenants: the cluster-scoped samples, renamed, through a server dry-run.
for t in acme globex; do
  render "config/samples/tenant-$t.yaml" "e2e-crds-$RUN_ID" >"$WORK/tenant-$t.yaml"
  if ! kc create --dry-run=server --validate=strict -o json -f "$WORK/tenant-$t.yaml" >"$WORK/tenant-$t.json" 2>"$WORK/err"; then
    fail "dry-run of Tenant $t" "$(cat "$WORK/err")"
  fi
done
expect_json "$WORK/tenant-globex.json" ".spec.quota" '{"agentCPU":"4","agentMemory":"4Gi","maxAgentPods":10,"maxConcurrentScans":2}' "default Tenant quota"
expect_json "$WORK/tenant-globex.json" "[.spec.suspend, .spec.namespace]" '[false,"globex-scans"]' "Tenant globex"
expect_json "$WORK/tenant-acme.json" ".spec.quota.maxConcurrentScans" '3' "Tenant acme quota"
expect_json "$WORK/tenant-acme.json" ".spec | has(\"namespace\")" 'false' "Tenant acme namespace left to the operator"
# One real Tenant for the printer-column and category checks.
acme="e2e-crds-$RUN_ID-acme"
if out="$(kc create -f "$WORK/tenant-acme.yaml" 2>&1)"; then
  CREATED_TENANTS+=("$acme")
  kc label tenant "$acme" "$SUITE_LABEL" >/dev/null
  pass "created Tenant $acme from config/samples/tenant-acme.yaml"
else
  fail "create Tenant from config/samples/tenant-acme.yaml" "$out"
fi

# ScanPolicies: both samples created for real in the scratch namespace.
if out="$(render config/samples/scanpolicy.yaml | kc create -n "$NS" -f - 2>&1)"; then
  pass "created ScanPolicies nightly-web and adhoc-ipv6 from config/samples/scanpolicy.yaml"
  kc -n "$NS" get scanpolicy adhoc-ipv6 -o json >"$WORK/sp.json"
  S="$WORK/sp.json"
  expect_json "$S" ".spec | [.ports, .scanners, .concurrencyPolicy, .suspend, .parallelism]" '["1-1024",["tcp"],"Forbid",false,1]' "default ScanPolicy"
  expect_json "$S" ".spec | [.timeoutSeconds, .backoffLimit, .successfulRunsHistoryLimit, .failedRunsHistoryLimit]" '[3600,2,3,1]' "default ScanPolicy limits"
  expect_json "$S" ".spec | [.rateLimit.packetsPerSecond, .rateLimit.perTargetPerSecond, .connectTimeoutMilliseconds, .allowLoopback]" '[1000,50,2000,false]' "default ScanPolicy rate limits"
  expect_json "$S" ".spec.resources" '{"limits":{"cpu":"500m","memory":"256Mi"},"requests":{"cpu":"100m","memory":"64Mi"}}' "default agent resources"
  expect_json "$S" ".spec | has(\"schedule\")" 'false' "one-shot ScanPolicy"
  kc -n "$NS" get scanpolicy nightly-web -o json >"$WORK/sp2.json"
  expect_json "$WORK/sp2.json" ".spec | [.schedule, .timeZone, .parallelism, .scanners]" '["0 2 * * *","Europe/Berlin",4,["tcp","banner","tls","http"]]' "ScanPolicy nightly-web keeps its values"
else
  fail "create ScanPolicies from config/samples/scanpolicy.yaml" "$out"
fi

# BackupSchedule: created for real.
if out="$(render config/samples/backupschedule.yaml | kc create -n "$NS" -f - 2>&1)"; then
  pass "created BackupSchedule vigil-nightly from config/samples/backupschedule.yaml"
  kc -n "$NS" get backupschedule vigil-nightly -o json >"$WORK/bs.json"
  B="$WORK/bs.json"
  expect_json "$B" ".spec | [.retention.keepLast, .retention.maxAge, .walArchiving.maxRPOSeconds, .suspend]" '[14,"720h",300,false]' "BackupSchedule"
  expect_json "$B" ".spec.destination.s3 | [.credentialsSecret.accessKeyIDKey, .credentialsSecret.secretAccessKeyKey, .insecure]" '["AWS_ACCESS_KEY_ID","AWS_SECRET_ACCESS_KEY",false]' "default S3 credentials keys"
else
  fail "create BackupSchedule from config/samples/backupschedule.yaml" "$out"
fi
printf 'apiVersion: vigil.dev/v1alpha1\nkind: BackupSchedule\nmetadata:\n  name: minimal\nspec:\n  platformRef: {name: vigil}\n  schedule: "@daily"\n  destination:\n    volume: {claimName: backups}\n' >"$WORK/bs-min.yaml"
if kc create --dry-run=server -n "$NS" -o json -f "$WORK/bs-min.yaml" >"$WORK/bs-min.json" 2>"$WORK/err"; then
  expect_json "$WORK/bs-min.json" ".spec | [.retention.keepLast, .walArchiving.enabled, .verify.enabled, .destination.volume.path]" '[7,false,false,"backups"]' "default BackupSchedule"
else
  fail "dry-run of a minimal BackupSchedule" "$(cat "$WORK/err")"
fi

# --- 4. status subresource ---------------------------------------------------
# An operator may be running against the same cluster and write the status of
# this Platform too, so every check reads the server's answer to its own
# request instead of assuming that nobody else wrote in between.
section "status subresource"
status_patch='{"status":{"observedGeneration":1,"phase":"Ready","endpoint":"http://vigil-gateway.'"$NS"'.svc:8080","gateway":{"desiredReplicas":3,"readyReplicas":3,"ready":"3/3"},"brain":{"desiredReplicas":2,"readyReplicas":1,"ready":"1/2"},"worker":{"desiredReplicas":3,"readyReplicas":3,"ready":"3/3"},"conditions":[{"type":"Ready","status":"True","reason":"AllComponentsReady","message":"all components are ready","lastTransitionTime":"2025-01-01T00:00:00Z","observedGeneration":1}]}}'
gen0="$(kc -n "$NS" get platform vigil -o jsonpath='{.metadata.generation}')"
if kc -n "$NS" patch platform vigil --subresource=status --type=merge -p "$status_patch" -o json >"$WORK/st1.json" 2>"$WORK/err"; then
  pass "status written through the status subresource"
  expect_json "$WORK/st1.json" "[.status.gateway.ready, .status.brain.ready, .metadata.generation]" "[\"3/3\",\"1/2\",$gen0]" "status write stored, generation unchanged"
else
  fail "patch Platform status through the status subresource" "$(cat "$WORK/err")"
fi
if kc -n "$NS" patch platform vigil --type=merge -p '{"status":{"endpoint":"http://written-through-the-main-resource.invalid"}}' -o json >"$WORK/st2.json" 2>"$WORK/err"; then
  expect_json "$WORK/st2.json" '.status.endpoint == "http://written-through-the-main-resource.invalid"' 'false' "status in a write to the main resource is ignored"
else
  fail "patch of the main resource" "$(cat "$WORK/err")"
fi
if out="$(kc -n "$NS" patch platform vigil --subresource=status --type=merge \
  -p '{"status":{"conditions":[{"type":"Ready","status":"Maybe","reason":"X","message":"","lastTransitionTime":"2025-01-01T00:00:00Z"}]}}' 2>&1)"; then
  fail "a condition with status Maybe was accepted"
elif [[ "$out" == *'Unsupported value: "Maybe"'* ]]; then
  pass "status is validated too (condition status Maybe rejected)"
else
  fail "condition status Maybe rejected with an unexpected message" "$out"
fi
if kc -n "$NS" patch platform vigil --type=merge -p '{"spec":{"emergencyStop":true}}' -o json >"$WORK/st3.json" 2>"$WORK/err"; then
  expect_json "$WORK/st3.json" "[.metadata.generation > $gen0, .spec.emergencyStop, .status != null]" '[true,true,true]' "spec change bumps the generation and keeps the status"
else
  fail "patch Platform spec.emergencyStop" "$(cat "$WORK/err")"
fi

# --- 5. printer columns, short names, category --------------------------------
section "printer columns, short names, category"
header_is() { # LABEL WANT kubectl-args...
  local label="$1" want="$2"; shift 2
  local out got
  if ! out="$(kc "$@" 2>&1)"; then fail "$label" "$out"; return; fi
  got="$(head -n1 <<<"$out" | tr -s ' ')"
  if [[ "$got" == "$want" ]]; then
    pass "$label: $want"
  else
    fail "$label: header is '$got', want '$want'" "$out"
  fi
  printf '%s\n' "$out" | sed 's/^/        /'
}
header_is "kubectl get platforms" "NAME VERSION READY GATEWAY EMERGENCY STOP AGE" -n "$NS" get platforms
header_is "kubectl get platforms -o wide" "NAME VERSION READY GATEWAY BRAIN WORKER EMERGENCY STOP PHASE ENDPOINT AGE" -n "$NS" get platforms -o wide
# The row must show the object's own values (read again if an operator
# updated the status between the two reads).
row_ok=0
for attempt in 1 2 3; do
  row="$(kc -n "$NS" get platform vigil --no-headers | tr -s ' ')"
  want="$(kc -n "$NS" get platform vigil -o json | jq -r '[.metadata.name, .spec.version,
    ((.status.conditions // []) | map(select(.type == "Ready")) | .[0].status // ""),
    (.status.gateway.ready // ""), (.spec.emergencyStop | tostring)] | join(" ")' | tr -s ' ')"
  if [[ "$row" == "$want "* ]]; then row_ok=1; break; fi
  sleep 1
done
if ((row_ok)); then
  pass "Platform row shows name, version, Ready, gateway ready/desired, emergency stop: $row"
else
  fail "Platform row: '$row', want '$want <age>'"
fi
header_is "kubectl get tenants" "NAME NAMESPACE READY SUSPENDED AGE" get tenants "$acme"
header_is "kubectl get tenants -o wide" "NAME DISPLAY NAME NAMESPACE READY SUSPENDED ACTIVE SCANS AGE" get tenants "$acme" -o wide
header_is "kubectl get scanpolicies" "NAME SCHEDULE SUSPEND LAST RUN PHASE AGE" -n "$NS" get scanpolicies
header_is "kubectl get scanpolicies -o wide" "NAME SCHEDULE SUSPEND LAST RUN PHASE CRITICAL HIGH NEXT RUN AGE" -n "$NS" get scanpolicies -o wide
header_is "kubectl get backupschedules" "NAME PLATFORM SCHEDULE LAST BACKUP AGE" -n "$NS" get backupschedules
header_is "kubectl get backupschedules -o wide" "NAME PLATFORM SCHEDULE SUSPEND LAST BACKUP BACKUPS READY AGE" -n "$NS" get backupschedules -o wide

short_name_lists() { # SHORTNAME WANT-NAME [-n NS]
  local sn="$1" want="$2"; shift 2
  local out
  if out="$(kc get "$sn" "$@" -o name 2>&1)" && grep -qx "$want" <<<"$out"; then
    pass "kubectl get $sn lists $want"
  else
    fail "kubectl get $sn does not list $want" "$out"
  fi
}
short_name_lists vplat platform.vigil.dev/vigil -n "$NS"
short_name_lists vten "tenant.vigil.dev/$acme"
short_name_lists vsp scanpolicy.vigil.dev/nightly-web -n "$NS"
short_name_lists scanpol scanpolicy.vigil.dev/adhoc-ipv6 -n "$NS"
short_name_lists vbs backupschedule.vigil.dev/vigil-nightly -n "$NS"

if out="$(kc get vigil -n "$NS" -o name 2>&1)"; then
  missing=""
  for want in platform.vigil.dev/vigil "tenant.vigil.dev/$acme" scanpolicy.vigil.dev/nightly-web \
    scanpolicy.vigil.dev/adhoc-ipv6 backupschedule.vigil.dev/vigil-nightly; do
    grep -qx "$want" <<<"$out" || missing+=" $want"
  done
  if [[ -z "$missing" ]]; then
    pass "kubectl get vigil (category) lists Platforms, Tenants, ScanPolicies and BackupSchedules"
  else
    fail "kubectl get vigil misses:$missing" "$out"
  fi
else
  fail "kubectl get vigil" "$out"
fi
if out="$(kc get vigil -n "$NS" 2>&1)"; then
  pass "kubectl get vigil prints each kind with its columns"
  printf '%s\n' "$out" | sed 's/^/        /'
else
  fail "kubectl get vigil" "$out"
fi

# --- 6. invalid objects are rejected ------------------------------------------
section "invalid objects (e2e/crds/invalid/) are rejected with a clear message"
# apply_setup DIR: create every document but the last for real (update cases).
# Namespaced objects go to the scratch namespace; cluster-scoped ones (Tenants)
# must carry the label e2e.vigil.dev/suite=crds so that cleanup finds them.
apply_setup() {
  local dir="$1" docs=("$1"/doc-*.yaml) i out
  for ((i = 0; i < ${#docs[@]} - 1; i++)); do
    if grep -q '^kind: Tenant' "${docs[$i]}" && ! grep -q 'e2e.vigil.dev/suite: crds' "${docs[$i]}"; then
      printf 'a Tenant created by a fixture needs the label e2e.vigil.dev/suite: crds (for cleanup)\n'; return 1
    fi
    if ! out="$(kc apply --validate=strict -n "$NS" -f "${docs[$i]}" 2>&1)"; then
      printf '%s\n' "$out"; return 1
    fi
  done
}
n=0
for f in e2e/crds/invalid/*.yaml; do
  n=$((n + 1))
  expect="$(head -n1 "$f" | sed -n 's/^# expect: //p')"
  if [[ -z "$expect" ]]; then fail "$f: first line must be '# expect: <message substring>'"; continue; fi
  d="$WORK/invalid-$n"
  split_docs "$f" "$d"
  docs=("$d"/doc-*.yaml)
  last="${docs[${#docs[@]} - 1]}"
  if ((${#docs[@]} > 1)); then
    if ! out="$(apply_setup "$d")"; then fail "$f: setup object rejected" "$out"; continue; fi
    verb="update"
    cmd=(apply --dry-run=server --validate=strict -n "$NS" -f "$last")
  else
    verb="create"
    cmd=(create --dry-run=server --validate=strict -n "$NS" -f "$last")
  fi
  if out="$(kc "${cmd[@]}" 2>&1)"; then
    fail "$f: $verb was accepted, want rejection with: $expect" "$out"
  elif [[ "$(flat <<<"$out")" == *"$(flat <<<"$expect")"* ]]; then
    pass "$f: $verb rejected"
    # Show what a user sees (the server's message, without kubectl's prefix).
    sed -E 's/^Error from server \([A-Za-z]+\): (error when [a-z]+ "[^"]*": )?//' <<<"$out" | sed 's/^/        /'
  else
    fail "$f: rejected, but the message lacks: $expect" "$out"
  fi
done

# --- 7. valid edge cases are accepted -----------------------------------------
section "valid edge cases (e2e/crds/valid/) are accepted"
for f in e2e/crds/valid/*.yaml; do
  n=$((n + 1))
  d="$WORK/valid-$n"
  split_docs "$f" "$d"
  docs=("$d"/doc-*.yaml)
  last="${docs[${#docs[@]} - 1]}"
  if ((${#docs[@]} > 1)); then
    if ! out="$(apply_setup "$d")"; then fail "$f: setup object rejected" "$out"; continue; fi
    verb="update"
    cmd=(apply --dry-run=server --validate=strict -n "$NS" -f "$last")
  else
    verb="create"
    cmd=(create --dry-run=server --validate=strict -n "$NS" -f "$last")
  fi
  if out="$(kc "${cmd[@]}" 2>&1)"; then
    pass "$f: $verb accepted"
  else
    fail "$f: $verb rejected" "$out"
  fi
done

# --- summary -------------------------------------------------------------------
section "summary"
if ((FAILED > 0)); then
  printf 'failed checks:\n'
  printf '  - %s\n' "${FAILURES[@]}"
fi
printf '%d passed, %d failed\n' "$PASSED" "$FAILED"
trap - ERR
exit $((FAILED > 0 ? 1 : 0))
