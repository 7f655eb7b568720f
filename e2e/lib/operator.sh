# e2e/lib/operator.sh - run vigil-operator against the local cluster the way
# it runs in one: as the vigil-operator ServiceAccount, with the shipped RBAC.
# Source it from a test (after .cluster/env); every function fails loudly.
#
#   VIGIL_BUILD   build tree whose bin/vigil-operator runs (default: build)

: "${VIGIL_BUILD:=build}"
E2E_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
E2E_STATE=${E2E_STATE:-$E2E_TOP/build/e2e-state/$(basename "$VIGIL_BUILD")}
mkdir -p "$E2E_STATE"

say() { printf '  %s\n' "$*"; }
fail() {
	printf 'FAIL: %s\n' "$*" >&2
	exit 1
}

# free_port: a TCP port on 127.0.0.1 nobody listens on now
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# install_crds_rbac: the CRDs and the operator's RBAC, waiting for Established
install_crds_rbac() {
	kubectl apply --server-side --force-conflicts -f "$E2E_TOP/crds/" >/dev/null
	kubectl wait --for=condition=Established crd --all --timeout=60s >/dev/null
	kubectl apply -f "$E2E_TOP/config/rbac/operator.yaml" >/dev/null
	# a token minted for an earlier cluster would be Unauthorized
	rm -f "$E2E_STATE/operator.kubeconfig"
}

# operator_kubeconfig FILE: a kubeconfig holding a token of the
# vigil-operator ServiceAccount (so RBAC is exactly what we ship)
operator_kubeconfig() {
	local out=$1 server ca token
	server=$(kubectl config view --raw --minify -o jsonpath='{.clusters[0].cluster.server}')
	ca=$(kubectl config view --raw --minify -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')
	token=$(kubectl -n vigil-system create token vigil-operator --duration=2h)
	umask 077
	cat >"$out" <<KC
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: $server
    certificate-authority-data: $ca
users:
- name: vigil-operator
  user:
    token: $token
contexts:
- name: vigil-operator
  context:
    cluster: local
    user: vigil-operator
    namespace: vigil-system
current-context: vigil-operator
KC
}

# operator_start NAME [flags...]: start in the background; sets
# OP_<NAME>_PID, OP_<NAME>_HEALTH, OP_<NAME>_METRICS (ports)
operator_start() {
	local name=$1
	shift
	local kc=$E2E_STATE/operator.kubeconfig hp mp log=$E2E_STATE/operator-$name.log
	[ -x "$VIGIL_BUILD/bin/vigil-operator" ] || fail "$VIGIL_BUILD/bin/vigil-operator is not built"
	[ -f "$kc" ] || operator_kubeconfig "$kc"
	hp=$(free_port)
	mp=$(free_port)
	: >"$log"
	VIGIL_LOG_LEVEL=${VIGIL_LOG_LEVEL:-info} "$VIGIL_BUILD/bin/vigil-operator" \
		--kubeconfig "$kc" --health-addr "127.0.0.1:$hp" \
		--metrics-addr "127.0.0.1:$mp" "$@" >>"$log" 2>&1 &
	local pid=$!
	eval "OP_${name}_PID=$pid OP_${name}_HEALTH=$hp OP_${name}_METRICS=$mp"
	echo "$pid" >"$E2E_STATE/operator-$name.pid"
	for _ in $(seq 1 150); do
		if curl -sf "http://127.0.0.1:$hp/readyz" >/dev/null 2>&1; then
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || { tail -n 30 "$log"; fail "operator $name exited during start-up"; }
		sleep 0.2
	done
	tail -n 30 "$log"
	fail "operator $name not ready within 30 s"
}

# operator_stop NAME: SIGTERM, wait, and check it exited cleanly (exit 0, no
# sanitizer report in its log)
operator_stop() {
	local name=$1 pidvar="OP_${1}_PID" rc=0
	local pid=${!pidvar:-} log=$E2E_STATE/operator-$name.log
	[ -n "$pid" ] || return 0
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid"
		for _ in $(seq 1 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -0 "$pid" 2>/dev/null && { kill -KILL "$pid"; fail "operator $name ignored SIGTERM for 10 s"; }
	fi
	wait "$pid" 2>/dev/null || rc=$?
	eval "OP_${name}_PID="
	if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$log"; then
		grep -A 30 -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$log" | head -n 60
		fail "operator $name: sanitizer report in $log"
	fi
	return $rc
}

# operator_kill9 NAME: crash it
operator_kill9() {
	local pidvar="OP_${1}_PID"
	local pid=${!pidvar:-}
	[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null || true
	eval "OP_${1}_PID="
}

# metric PORT NAME[{label="v"...]: sum of the series starting with it, 0
# when absent
metric() {
	curl -sf "http://127.0.0.1:$1/metrics" | awk -v m="$2" '
		index($0, m) == 1 && substr($0, length(m) + 1, 1) ~ /[ {,}]/ { s += $NF }
		END { printf "%d\n", s }'
}

# wait_for SECONDS DESCRIPTION COMMAND...: poll until COMMAND succeeds
wait_for() {
	local secs=$1 what=$2
	shift 2
	local end=$((SECONDS + secs))
	while [ $SECONDS -lt $end ]; do
		if "$@" >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.5
	done
	fail "timed out after ${secs}s waiting for: $what"
}
