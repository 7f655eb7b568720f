#!/usr/bin/env bash
# make demo: bring up the local Kubernetes control plane, install vigil's
# API, run vigil-operator as its ServiceAccount with a real PostgreSQL, and
# let it converge the sample Platform and Tenants.
#   scripts/demo.sh        start (or reuse) and show
#   scripts/demo.sh down   stop exactly what the demo started
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
export E2E_STATE=$top/.demo
mkdir -p "$E2E_STATE"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

# stop_pidfile FILE: stop the process recorded in FILE if it is still the
# program we started (checked through /proc/PID/exe)
stop_pidfile() {
	local f=$1 exe=$2 pid
	[ -f "$f" ] || return 0
	pid=$(tr -dc '0-9' <"$f")
	if [ -n "$pid" ] && [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$exe" ]; then
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 1 50); do
			[ -d "/proc/$pid" ] || break
			sleep 0.2
		done
	fi
	rm -f "$f"
}

down() {
	step "stopping vigil-operator, PostgreSQL and the local control plane"
	stop_pidfile "$E2E_STATE/operator-demo.pid" "$top/build/bin/vigil-operator"
	stop_pidfile "$E2E_STATE/postgres.pid" /usr/lib/postgresql/15/bin/postgres
	if [ -f "$E2E_STATE/postgres.dir" ]; then
		rm -rf "$(cat "$E2E_STATE/postgres.dir")"
	fi
	rm -rf "$E2E_STATE"
	bash e2e/cluster/down.sh
}

if [ "${1:-}" = down ]; then
	down
	exit 0
fi

step "local Kubernetes control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok)"
bash e2e/cluster/up.sh
# shellcheck disable=SC1091
. .cluster/env
export KUBECONFIG
# shellcheck source=../e2e/lib/operator.sh
. e2e/lib/operator.sh
# shellcheck source=../e2e/lib/services.sh
. e2e/lib/services.sh
kubectl get nodes -o wide

step "vigil's API: CustomResourceDefinitions and the operator's RBAC"
install_crds_rbac
kubectl get crd -l app.kubernetes.io/part-of=vigil 2>/dev/null || kubectl get crd | grep vigil.dev

step "PostgreSQL (the platform database, a real server on loopback)"
if [ -f "$E2E_STATE/postgres.url" ] && pg_isready -q -d "$(cat "$E2E_STATE/postgres.url")" 2>/dev/null; then
	PG_URL=$(cat "$E2E_STATE/postgres.url")
	echo "  reusing $PG_URL"
else
	pg_start
	echo "$PG_PID" >"$E2E_STATE/postgres.pid"
	echo "$PG_DIR" >"$E2E_STATE/postgres.dir"
	echo "$PG_URL" >"$E2E_STATE/postgres.url"
	echo "  $PG_URL"
fi

step "vigil-operator (as the vigil-operator ServiceAccount)"
stop_pidfile "$E2E_STATE/operator-demo.pid" "$top/build/bin/vigil-operator"
rm -f "$E2E_STATE/operator.kubeconfig"
VIGIL_BUILD=build operator_start demo --database-url "$PG_URL"
echo "  pid $OP_demo_PID, health http://127.0.0.1:$OP_demo_HEALTH/readyz, metrics http://127.0.0.1:$OP_demo_METRICS/metrics"
echo "  log $E2E_STATE/operator-demo.log"

step "the sample Platform and Tenants (config/samples/)"
kubectl -n vigil-system create secret generic vigil-postgres --from-literal=username=vigil \
	--from-literal=password="$(openssl rand -hex 12)" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl apply -f config/samples/platform.yaml -f config/samples/tenant-acme.yaml -f config/samples/tenant-globex.yaml
printf '  waiting for the Platform to be Ready '
for _ in $(seq 1 120); do
	st=$(kubectl -n vigil-system get platform vigil -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null || true)
	gw=$(kubectl -n vigil-system get platform vigil -o 'jsonpath={.status.gateway.readyReplicas}' 2>/dev/null || true)
	[ "$st" = True ] && [ "${gw:-0}" -ge 3 ] && break
	printf '.'
	sleep 1
done
echo

step "what the operator built"
kubectl get vigil -A
echo
kubectl -n vigil-system get deployments,hpa,services,networkpolicies,pdb
echo
kubectl get namespaces -l vigil.dev/tenant
echo
echo "  tenant rows in the platform database:"
psql -XAtq "$PG_URL" -c "select '    ' || name || '  ' || state || '  ' || id from vigil.tenants order by name" || true

step "ready"
cat <<TXT
  export KUBECONFIG=$KUBECONFIG
  kubectl get vigil -A                     # Platforms, Tenants, ScanPolicies, BackupSchedules
  kubectl -n vigil-system set image deploy/vigil-gateway gateway=x:1   # drift: reverted in seconds
  curl -s http://127.0.0.1:$OP_demo_METRICS/metrics | grep controller_runtime_reconcile_total

  Stop everything the demo started:  make demo-down
TXT
