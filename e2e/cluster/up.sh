#!/usr/bin/env bash
# Start vigil's local Kubernetes control plane from real upstream components:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok
# (fake nodes vigil-node-*), all on 127.0.0.1 only.
#
#   bash e2e/cluster/up.sh        (make cluster-up)
#   bash e2e/cluster/down.sh      (make cluster-down)
#
# State (certs, kubeconfigs, pids, logs, etcd data) lives in .cluster/ at the
# repo root; .cluster/env is a sourceable file describing the cluster.
#
# Environment (all optional):
#   VIGIL_CLUSTER_DIR            state dir                  (default <repo>/.cluster)
#   VIGIL_CACHE_DIR              binary cache root          (default ~/.cache/vigil)
#   VIGIL_ETCD_PORT              etcd client port           (default 23790)
#   VIGIL_ETCD_PEER_PORT         etcd peer port             (default 23800)
#   VIGIL_APISERVER_PORT         kube-apiserver HTTPS port  (default 26443)
#   VIGIL_KCM_PORT               controller-manager HTTPS   (default 20257)
#   VIGIL_SCHEDULER_PORT         kube-scheduler HTTPS       (default 20259)
#   VIGIL_KWOK_NODES             number of fake nodes       (default 3)
#   VIGIL_SERVICE_CIDR           service cluster IP range   (default 10.96.0.0/16)
#   VIGIL_APISERVER_EXTRA_ARGS   extra kube-apiserver flags, space separated
#                                (e.g. --watch-cache-sizes=configmaps#0)
#   VIGIL_KCM_EXTRA_ARGS, VIGIL_SCHEDULER_EXTRA_ARGS, VIGIL_ETCD_EXTRA_ARGS,
#   VIGIL_KWOK_EXTRA_ARGS        likewise for the other components
#   VIGIL_CLUSTER_TIMEOUT        seconds to wait for each readiness step (default 120)
set -euo pipefail

LOG_PREFIX="up.sh"
# shellcheck source=e2e/cluster/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
lock_state

ETCD_PORT="${VIGIL_ETCD_PORT:-23790}"
ETCD_PEER_PORT="${VIGIL_ETCD_PEER_PORT:-23800}"
APISERVER_PORT="${VIGIL_APISERVER_PORT:-26443}"
KCM_PORT="${VIGIL_KCM_PORT:-20257}"
SCHEDULER_PORT="${VIGIL_SCHEDULER_PORT:-20259}"
NODE_COUNT="${VIGIL_KWOK_NODES:-3}"
SERVICE_CIDR="${VIGIL_SERVICE_CIDR:-10.96.0.0/16}"
TIMEOUT="${VIGIL_CLUSTER_TIMEOUT:-120}"
HOST=127.0.0.1
APISERVER_URL="https://$HOST:$APISERVER_PORT"
ETCD_URL="http://$HOST:$ETCD_PORT"
SA_ISSUER="https://kubernetes.default.svc.cluster.local"
KUBECONFIG_ADMIN="$STATE_DIR/kubeconfig"

for v in ETCD_PORT ETCD_PEER_PORT APISERVER_PORT KCM_PORT SCHEDULER_PORT NODE_COUNT TIMEOUT; do
  [[ "${!v}" =~ ^[0-9]+$ ]] || die "$v must be a number, got '${!v}'"
done
(( NODE_COUNT >= 1 )) || die "VIGIL_KWOK_NODES must be >= 1"

command -v kubectl >/dev/null 2>&1 || die "kubectl not found in PATH"
command -v openssl >/dev/null 2>&1 || die "openssl not found in PATH"
command -v curl >/dev/null 2>&1 || die "curl not found in PATH"
command -v setsid >/dev/null 2>&1 || die "setsid not found in PATH (util-linux)"

kc() { kubectl --kubeconfig="$KUBECONFIG_ADMIN" --request-timeout=10s "$@"; }

node_name() { printf 'vigil-node-%d' "$1"; }

# ---------------------------------------------------------------- health ----
# cluster_healthy: every recorded process is ours and alive, the apiserver is
# ready, all fake nodes are Ready.
cluster_healthy() {
  local c pid i
  [[ -f "$KUBECONFIG_ADMIN" && -f "$STATE_DIR/env" ]] || return 1
  for c in "${COMPONENTS[@]}"; do
    pid="$(pid_of "$c")"
    pid_is "$c" "$pid" || return 1
  done
  [[ "$(curl -sS --max-time 5 --cacert "$PKI_DIR/ca.crt" --cert "$PKI_DIR/admin.crt" \
    --key "$PKI_DIR/admin.key" "$APISERVER_URL/readyz" 2>/dev/null)" == "ok" ]] || return 1
  local ready
  ready="$(kc get nodes -l type=kwok -o 'jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' 2>/dev/null)" || return 1
  for ((i = 0; i < NODE_COUNT; i++)); do
    grep -qx "$(node_name "$i")=True" <<<"$ready" || return 1
  done
}

any_pidfile() {
  local c
  for c in "${COMPONENTS[@]}"; do [[ -f "$PID_DIR/$c.pid" ]] && return 0; done
  return 1
}

print_usage_line() {
  say "cluster is up: $APISERVER_URL ($NODE_COUNT kwok nodes)"
  printf 'export KUBECONFIG=%q\n' "$KUBECONFIG_ADMIN"
  printf '# or: source %q\n' "$STATE_DIR/env"
}

if [[ -d "$STATE_DIR" ]]; then
  if cluster_healthy; then
    say "cluster already up and healthy (state in $STATE_DIR); nothing to do"
    print_usage_line
    exit 0
  fi
  if any_pidfile; then
    say "found a previous cluster in $STATE_DIR that is not healthy; cleaning it up"
    stop_all
  fi
  say "removing stale state dir $STATE_DIR"
  rm -rf "$STATE_DIR"
fi

t0=$SECONDS

# ----------------------------------------------------------------- build ----
bash "$CLUSTER_SCRIPT_DIR/build.sh"
BIN_DIR="$(bash "$CLUSTER_SCRIPT_DIR/build.sh" --bin-dir)"
for b in etcd etcdctl kube-apiserver kube-controller-manager kube-scheduler kwok; do
  [[ -x "$BIN_DIR/$b" ]] || die "missing binary $BIN_DIR/$b after build"
done
t_build=$((SECONDS - t0))

# ----------------------------------------------------------------- ports ----
port_owner() { ss -Hltnp "sport = :$1" 2>/dev/null | head -n1; }
for p in "$ETCD_PORT" "$ETCD_PEER_PORT" "$APISERVER_PORT" "$KCM_PORT" "$SCHEDULER_PORT"; do
  owner="$(port_owner "$p")"
  if [[ -n "$owner" ]]; then
    die "port $p is already in use by another process: $owner
  (set VIGIL_ETCD_PORT / VIGIL_ETCD_PEER_PORT / VIGIL_APISERVER_PORT / VIGIL_KCM_PORT / VIGIL_SCHEDULER_PORT to free ports)"
  fi
done
[[ "$(printf '%s\n' "$ETCD_PORT" "$ETCD_PEER_PORT" "$APISERVER_PORT" "$KCM_PORT" "$SCHEDULER_PORT" | sort -u | wc -l)" == 5 ]] ||
  die "the five ports must be distinct"

mkdir -p "$PID_DIR" "$LOG_DIR" "$PKI_DIR" "$STATE_DIR/kubeconfigs" "$STATE_DIR/etcd"

# If anything below fails, stop what was started (by PID) and keep the logs
# in $LOG_DIR for inspection; the next up.sh removes the leftovers.
on_exit() {
  local rc=$?
  trap '' PIPE  # the reader of our output may be gone; keep cleaning up
  set +e
  if ((rc != 0)); then
    say "start-up failed (exit $rc); stopping the components started so far"
    stop_all || true
    say "logs kept in $LOG_DIR"
  fi
}
trap on_exit EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 141' PIPE
trap 'exit 143' TERM
chmod 700 "$STATE_DIR" "$PKI_DIR" "$STATE_DIR/etcd"

# ------------------------------------------------------------------ PKI -----
say "generating certificates in $PKI_DIR (ECDSA P-256; RSA-2048 service-account key)"
ossl() { openssl "$@" 2>>"$LOG_DIR/openssl.log" || die "openssl $1 failed (see $LOG_DIR/openssl.log)"; }

ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 -days 3650 \
  -keyout "$PKI_DIR/ca.key" -out "$PKI_DIR/ca.crt" -subj "/CN=vigil-local-ca" \
  -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"

# sign_cert NAME SUBJECT EXT_USAGE [SAN]
sign_cert() {
  local name="$1" subj="$2" eku="$3" san="${4:-}" ext="$PKI_DIR/$1.ext"
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature"
    echo "extendedKeyUsage=$eku"
    echo "authorityKeyIdentifier=keyid,issuer"
    [[ -n "$san" ]] && echo "subjectAltName=$san"
  } >"$ext"
  ossl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 -keyout "$PKI_DIR/$name.key" \
    -out "$PKI_DIR/$name.csr" -subj "$subj"
  local ca="${CA_NAME:-ca}"
  ossl x509 -req -in "$PKI_DIR/$name.csr" -CA "$PKI_DIR/$ca.crt" -CAkey "$PKI_DIR/$ca.key" \
    -CAcreateserial -days 825 -sha256 -extfile "$ext" -out "$PKI_DIR/$name.crt"
  rm -f "$PKI_DIR/$name.csr" "$ext"
}

# First IP of the service range = ClusterIP of the `kubernetes` Service.
svc_net="${SERVICE_CIDR%/*}"
IFS=. read -r o1 o2 o3 o4 <<<"$svc_net"
KUBERNETES_SVC_IP="$o1.$o2.$o3.$((o4 + 1))"

sign_cert apiserver "/CN=kube-apiserver" serverAuth \
  "IP:127.0.0.1,IP:$KUBERNETES_SVC_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
sign_cert admin "/O=system:masters/CN=vigil-admin" clientAuth
sign_cert controller-manager "/CN=system:kube-controller-manager" clientAuth
sign_cert scheduler "/CN=system:kube-scheduler" clientAuth
# kwok plays the kubelet of every fake node and needs cluster-wide node/pod
# status writes, so it runs as a cluster admin (like kwokctl does).
sign_cert kwok "/O=system:masters/CN=kwok-controller" clientAuth
# Serving certs of controller-manager/scheduler secure ports.
sign_cert controller-manager-serving "/CN=kube-controller-manager" serverAuth "IP:127.0.0.1,DNS:localhost"
sign_cert scheduler-serving "/CN=kube-scheduler" serverAuth "IP:127.0.0.1,DNS:localhost"
# Front-proxy (request-header) CA and client: not used by vigil, but without it
# every component logs "missing content for CA bundle requestheader-client-ca".
ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 -days 3650 \
  -keyout "$PKI_DIR/front-proxy-ca.key" -out "$PKI_DIR/front-proxy-ca.crt" -subj "/CN=vigil-front-proxy-ca" \
  -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"
CA_NAME=front-proxy-ca sign_cert front-proxy-client "/CN=front-proxy-client" clientAuth
# Service-account token signing key pair.
ossl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$PKI_DIR/sa.key"
ossl pkey -in "$PKI_DIR/sa.key" -pubout -out "$PKI_DIR/sa.pub"
chmod 600 "$PKI_DIR"/*.key

# write_kubeconfig FILE CERT_NAME USER
write_kubeconfig() {
  local file="$1" cert="$2" user="$3"
  cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: vigil
  cluster:
    server: $APISERVER_URL
    certificate-authority-data: $(base64 -w0 <"$PKI_DIR/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 <"$PKI_DIR/$cert.crt")
    client-key-data: $(base64 -w0 <"$PKI_DIR/$cert.key")
contexts:
- name: vigil
  context:
    cluster: vigil
    user: $user
    namespace: default
current-context: vigil
EOF
  chmod 600 "$file"
}
write_kubeconfig "$KUBECONFIG_ADMIN" admin vigil-admin
write_kubeconfig "$STATE_DIR/kubeconfigs/controller-manager.kubeconfig" controller-manager system:kube-controller-manager
write_kubeconfig "$STATE_DIR/kubeconfigs/scheduler.kubeconfig" scheduler system:kube-scheduler
write_kubeconfig "$STATE_DIR/kubeconfigs/kwok.kubeconfig" kwok kwok-controller

# ------------------------------------------------------------ processes -----
# start NAME ARGS...: run BIN_DIR/NAME in its own session, log to
# logs/NAME.log, record its PID in pids/NAME.pid.
start() {
  local name="$1"; shift
  local bin="$BIN_DIR/$name" pid i
  say "starting $name"
  # `setsid` execs in place here (the child is not a process-group leader),
  # so $! is the component's own PID; checked below via /proc/PID/exe.
  # fd 8 is the state lock (lock_state): the component must not inherit it.
  # the command line, so restart.sh can start the same process again
  printf '%s\0' "$@" >"$PID_DIR/$name.args"
  setsid "$bin" "$@" </dev/null >>"$LOG_DIR/$name.log" 2>&1 8>&- &
  pid=$!
  printf '%s\n' "$pid" >"$PID_DIR/$name.pid"
  for ((i = 0; i < 50; i++)); do
    pid_is "$name" "$pid" && return 0
    [[ -d "/proc/$pid" ]] || break
    sleep 0.1
  done
  tail -n 30 "$LOG_DIR/$name.log" >&2 || true
  die "$name (pid $pid) failed to start; see $LOG_DIR/$name.log"
}

# wait_for WHAT CHECK_CMD... : poll until CHECK_CMD succeeds or TIMEOUT; fail
# early if one of our processes died.
wait_for() {
  local what="$1"; shift
  local deadline=$((SECONDS + TIMEOUT)) c
  until "$@" >/dev/null 2>&1; do
    for c in "${COMPONENTS[@]}"; do
      if [[ -f "$PID_DIR/$c.pid" ]] && ! pid_is "$c" "$(pid_of "$c")"; then
        tail -n 30 "$LOG_DIR/$c.log" >&2 || true
        die "$c exited while waiting for $what; see $LOG_DIR/$c.log"
      fi
    done
    if ((SECONDS >= deadline)); then
      die "timed out after ${TIMEOUT}s waiting for $what (logs in $LOG_DIR)"
    fi
    sleep 0.2
  done
  say "$what: ok ($((SECONDS - t0))s)"
}

# shellcheck disable=SC2086 # *_EXTRA_ARGS are intentionally word-split.
start etcd \
  --name=vigil-etcd \
  --data-dir="$STATE_DIR/etcd" \
  --listen-client-urls="$ETCD_URL" \
  --advertise-client-urls="$ETCD_URL" \
  --listen-peer-urls="http://$HOST:$ETCD_PEER_PORT" \
  --initial-advertise-peer-urls="http://$HOST:$ETCD_PEER_PORT" \
  --initial-cluster="vigil-etcd=http://$HOST:$ETCD_PEER_PORT" \
  --initial-cluster-state=new \
  --initial-cluster-token=vigil-local \
  --quota-backend-bytes=$((2 * 1024 * 1024 * 1024)) \
  --log-level=warn \
  ${VIGIL_ETCD_EXTRA_ARGS:-}
wait_for "etcd health" curl -fsS "$ETCD_URL/health"

# shellcheck disable=SC2086
start kube-apiserver \
  --etcd-servers="$ETCD_URL" \
  --bind-address=$HOST \
  --advertise-address=$HOST \
  --secure-port="$APISERVER_PORT" \
  --tls-cert-file="$PKI_DIR/apiserver.crt" \
  --tls-private-key-file="$PKI_DIR/apiserver.key" \
  --client-ca-file="$PKI_DIR/ca.crt" \
  --authorization-mode=Node,RBAC \
  --enable-admission-plugins=NodeRestriction \
  --service-account-issuer="$SA_ISSUER" \
  --service-account-key-file="$PKI_DIR/sa.pub" \
  --service-account-signing-key-file="$PKI_DIR/sa.key" \
  --api-audiences="$SA_ISSUER" \
  --service-cluster-ip-range="$SERVICE_CIDR" \
  --requestheader-client-ca-file="$PKI_DIR/front-proxy-ca.crt" \
  --requestheader-allowed-names=front-proxy-client \
  --requestheader-username-headers=X-Remote-User \
  --requestheader-group-headers=X-Remote-Group \
  --requestheader-extra-headers-prefix=X-Remote-Extra- \
  --proxy-client-cert-file="$PKI_DIR/front-proxy-client.crt" \
  --proxy-client-key-file="$PKI_DIR/front-proxy-client.key" \
  --endpoint-reconciler-type=none \
  --allow-privileged=true \
  --kubelet-preferred-address-types=InternalIP,Hostname \
  --profiling=false \
  ${VIGIL_APISERVER_EXTRA_ARGS:-}
apiserver_ready() { [[ "$(kc get --raw /readyz 2>/dev/null)" == ok ]]; }
wait_for "kube-apiserver /readyz" apiserver_ready

# Register the fake nodes before kwok starts, with a realistic capacity in
# their status, so kwok's node-initialize stage keeps it.
nodes_yaml=""
for ((i = 0; i < NODE_COUNT; i++)); do
  n="$(node_name "$i")"
  nodes_yaml+="---
apiVersion: v1
kind: Node
metadata:
  name: $n
  labels:
    type: kwok
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    kubernetes.io/hostname: $n
    node.kubernetes.io/instance-type: vigil-kwok
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: \"0\"
spec: {}
"
done
kc apply -f - <<<"$nodes_yaml" >/dev/null || die "could not create the kwok Nodes"
capacity='{"cpu":"8","memory":"32Gi","pods":"110","ephemeral-storage":"100Gi"}'
for ((i = 0; i < NODE_COUNT; i++)); do
  kc patch node "$(node_name "$i")" --subresource=status --type=merge \
    -p "{\"status\":{\"capacity\":$capacity,\"allocatable\":$capacity}}" >/dev/null ||
    die "could not set the capacity of node $(node_name "$i")"
done

# shellcheck disable=SC2086
start kube-controller-manager \
  --kubeconfig="$STATE_DIR/kubeconfigs/controller-manager.kubeconfig" \
  --authentication-kubeconfig="$STATE_DIR/kubeconfigs/controller-manager.kubeconfig" \
  --authorization-kubeconfig="$STATE_DIR/kubeconfigs/controller-manager.kubeconfig" \
  --bind-address=$HOST \
  --secure-port="$KCM_PORT" \
  --tls-cert-file="$PKI_DIR/controller-manager-serving.crt" \
  --tls-private-key-file="$PKI_DIR/controller-manager-serving.key" \
  --client-ca-file="$PKI_DIR/ca.crt" \
  --leader-elect=false \
  --use-service-account-credentials=true \
  --service-account-private-key-file="$PKI_DIR/sa.key" \
  --root-ca-file="$PKI_DIR/ca.crt" \
  --cluster-signing-cert-file="$PKI_DIR/ca.crt" \
  --cluster-signing-key-file="$PKI_DIR/ca.key" \
  --service-cluster-ip-range="$SERVICE_CIDR" \
  --controllers='*' \
  --profiling=false \
  ${VIGIL_KCM_EXTRA_ARGS:-}

# shellcheck disable=SC2086
start kube-scheduler \
  --kubeconfig="$STATE_DIR/kubeconfigs/scheduler.kubeconfig" \
  --authentication-kubeconfig="$STATE_DIR/kubeconfigs/scheduler.kubeconfig" \
  --authorization-kubeconfig="$STATE_DIR/kubeconfigs/scheduler.kubeconfig" \
  --bind-address=$HOST \
  --secure-port="$SCHEDULER_PORT" \
  --tls-cert-file="$PKI_DIR/scheduler-serving.crt" \
  --tls-private-key-file="$PKI_DIR/scheduler-serving.key" \
  --client-ca-file="$PKI_DIR/ca.crt" \
  --leader-elect=false \
  --profiling=false \
  ${VIGIL_SCHEDULER_EXTRA_ARGS:-}

# shellcheck disable=SC2086
start kwok \
  --kubeconfig="$STATE_DIR/kubeconfigs/kwok.kubeconfig" \
  --config="$CLUSTER_SCRIPT_DIR/kwok/kwok.yaml" \
  --manage-all-nodes=false \
  --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
  --node-ip=$HOST \
  ${VIGIL_KWOK_EXTRA_ARGS:-}

wait_for "kube-controller-manager /healthz" curl -fsS --cacert "$PKI_DIR/ca.crt" "https://$HOST:$KCM_PORT/healthz"
wait_for "kube-scheduler /healthz" curl -fsS --cacert "$PKI_DIR/ca.crt" "https://$HOST:$SCHEDULER_PORT/healthz"

all_nodes_ready() {
  local i
  for ((i = 0; i < NODE_COUNT; i++)); do
    [[ "$(kc get node "$(node_name "$i")" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}')" == "True" ]] || return 1
  done
  # The node lifecycle controller removes the not-ready taint once Ready.
  [[ -z "$(kc get nodes -l type=kwok -o 'jsonpath={.items[*].spec.taints[?(@.key=="node.kubernetes.io/not-ready")].key}')" ]]
}
wait_for "$NODE_COUNT kwok nodes Ready" all_nodes_ready
wait_for "ServiceAccount default/default" kc -n default get serviceaccount default
wait_for "ConfigMap default/kube-root-ca.crt" kc -n default get configmap kube-root-ca.crt

# ------------------------------------------------------------------ env -----
node_names=""
for ((i = 0; i < NODE_COUNT; i++)); do node_names+="${node_names:+ }$(node_name "$i")"; done
k8s_version="$(kc version -o json 2>/dev/null | sed -n 's/.*"gitVersion": *"\([^"]*\)".*/\1/p' | tail -n1)"
{
  echo "# vigil local control plane, written by e2e/cluster/up.sh. Source it:"
  echo "#   source $STATE_DIR/env"
  printf 'export VIGIL_CLUSTER_DIR=%q\n' "$STATE_DIR"
  printf 'export KUBECONFIG=%q\n' "$KUBECONFIG_ADMIN"
  printf 'export VIGIL_KUBECONFIG=%q\n' "$KUBECONFIG_ADMIN"
  printf 'export VIGIL_APISERVER_URL=%q\n' "$APISERVER_URL"
  printf 'export VIGIL_K8S_VERSION=%q\n' "$k8s_version"
  printf 'export VIGIL_ETCD_ENDPOINT=%q\n' "$ETCD_URL"
  printf 'export VIGIL_ETCD_TLS=0\n'
  printf 'export VIGIL_ETCD_PREFIX=/registry\n'
  printf 'export ETCDCTL_ENDPOINTS=%q\n' "$ETCD_URL"
  printf 'export VIGIL_ETCDCTL=%q\n' "$BIN_DIR/etcdctl"
  printf 'export VIGIL_CLUSTER_BIN_DIR=%q\n' "$BIN_DIR"
  printf 'export VIGIL_CA_CERT=%q\n' "$PKI_DIR/ca.crt"
  printf 'export VIGIL_CA_KEY=%q\n' "$PKI_DIR/ca.key"
  printf 'export VIGIL_SA_KEY=%q\n' "$PKI_DIR/sa.key"
  printf 'export VIGIL_SA_PUB=%q\n' "$PKI_DIR/sa.pub"
  printf 'export VIGIL_SA_ISSUER=%q\n' "$SA_ISSUER"
  printf 'export VIGIL_API_AUDIENCES=%q\n' "$SA_ISSUER"
  printf 'export VIGIL_SERVICE_CIDR=%q\n' "$SERVICE_CIDR"
  printf 'export VIGIL_KWOK_NODE_NAMES=%q\n' "$node_names"
  printf 'export VIGIL_CLUSTER_LOG_DIR=%q\n' "$LOG_DIR"
  printf 'export VIGIL_CLUSTER_PID_DIR=%q\n' "$PID_DIR"
} >"$STATE_DIR/env.tmp"
mv "$STATE_DIR/env.tmp" "$STATE_DIR/env"

trap - EXIT
say "ready in $((SECONDS - t0))s (build/cache check ${t_build}s)"
print_usage_line
