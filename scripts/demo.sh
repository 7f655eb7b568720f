#!/usr/bin/env bash
# make demo: bring up vigil's local Kubernetes control plane and show it.
#   scripts/demo.sh        start (or reuse) and show
#   scripts/demo.sh down   stop exactly what the demo started
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

if [ "${1:-}" = down ]; then
	step "stopping the local control plane"
	bash e2e/cluster/down.sh
	exit 0
fi

step "local Kubernetes control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok)"
bash e2e/cluster/up.sh
# shellcheck disable=SC1091
. .cluster/env
export KUBECONFIG

step "API server"
kubectl version 2>/dev/null | sed 's/^/  /' || true
kubectl get --raw '/readyz?verbose' | tail -n 1 | sed 's/^/  readyz: /'

step "nodes (kwok fakes: pods are scheduled and run through their lifecycle without containers)"
kubectl get nodes -o wide

step "a Deployment goes through the real controllers"
kubectl create namespace vigil-demo --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl -n vigil-demo create deployment hello --image=registry.invalid/hello:1 --replicas=3 \
	--dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl -n vigil-demo wait --for=condition=Available deployment/hello --timeout=90s
kubectl -n vigil-demo get deployment,replicaset,pods -o wide

step "ready"
cat <<TXT
  export KUBECONFIG=$KUBECONFIG
  kubectl get nodes

  Stop everything the demo started:  make demo-down
TXT
