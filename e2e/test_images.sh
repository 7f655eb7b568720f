#!/usr/bin/env bash
#
# vigil's container images. scripts/images.sh builds them here (the Debian
# base with debootstrap, then one image per program from build/bin); each
# image is then run as a container: --version, the nonroot user 65532,
# its labels; the gateway, worker and brain answer /healthz and /readyz
# on a real PostgreSQL and Redis started on this machine (--network host,
# the VIGIL_* environment the operator renders) and stop cleanly on
# SIGTERM as PID 1; the operator as a standby replica against the local
# cluster; the agent scans a port a listener here holds. A second build
# reuses the base and docker's cache. Image sizes are printed.
#
# Without a docker engine there is nothing to build or run: it says so and
# counts nothing. With one, a failing build fails the test.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

if ! command -v docker >/dev/null 2>&1 || ! docker info >/dev/null 2>&1; then
	echo "images: no docker engine on this machine — not built"
	echo "0 passed, 0 failed"
	exit 0
fi

# shellcheck source=lib/operator.sh
. e2e/lib/operator.sh
# shellcheck source=lib/services.sh
. e2e/lib/services.sh

PROGRAMS=(operator gateway worker brain agent)
REPO=${VIGIL_IMAGE_REPO:-vigil}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/vigil-e2e-images-XXXXXX")
CIDS=()      # containers this test started
LISTEN_PID=  # the agent's scan target
RENEW_PID=   # keeps the operator's Lease held by someone else
NS=
pass=0
check() {
	pass=$((pass + 1))
	say "ok  $*"
}

cleanup() {
	local rc=$? c
	set +e
	for c in "${CIDS[@]}"; do
		docker rm -f "$c" >/dev/null 2>&1
	done
	[ -n "$RENEW_PID" ] && kill "$RENEW_PID" 2>/dev/null && wait "$RENEW_PID" 2>/dev/null
	[ -n "$LISTEN_PID" ] && kill "$LISTEN_PID" 2>/dev/null && wait "$LISTEN_PID" 2>/dev/null
	[ -n "$NS" ] && kubectl delete namespace "$NS" --wait=false >/dev/null 2>&1
	redis_stop
	pg_stop
	rm -rf "$WORK"
	[ $rc -eq 0 ] || echo "$pass passed, 1 failed"
}
trap cleanup EXIT

# start NAME IMAGE [docker run args...] -- [program args...]: a detached
# container; sets CID
start() {
	local name=$1 image=$2 dargs=()
	shift 2
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		dargs+=("$1")
		shift
	done
	[ $# -gt 0 ] && shift
	CID=$(docker run -d "${dargs[@]}" "$image" "$@") || fail "$name: docker run failed"
	CIDS+=("$CID")
}

# wait_http URL CID NAME: until URL answers 200 (30 s)
wait_http() {
	for _ in $(seq 1 150); do
		curl -sf "$1" >/dev/null 2>&1 && return 0
		if [ "$(docker inspect -f '{{.State.Running}}' "$2" 2>/dev/null)" != true ]; then
			docker logs "$2" 2>&1 | tail -n 30
			fail "$3 exited during start-up"
		fi
		sleep 0.2
	done
	docker logs "$2" 2>&1 | tail -n 30
	fail "$3: $1 did not answer 200 within 30 s"
}

# stop_clean CID NAME: SIGTERM (docker stop), then exit status 0 — the
# program is PID 1 in its container, where only handled signals work
stop_clean() {
	local t0=$SECONDS rc
	docker stop -t 20 "$1" >/dev/null
	rc=$(docker inspect -f '{{.State.ExitCode}}' "$1")
	if [ "$rc" != 0 ]; then
		docker logs "$1" 2>&1 | tail -n 20
		fail "$2: exit status $rc after SIGTERM, want 0"
	fi
	STOP_SECONDS=$((SECONDS - t0))
}

size_of() { docker image inspect -f '{{.Size}}' "$1"; }
mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1e6 }'; }

VERSION=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
TAG=$(printf '%s' "$VERSION" | tr -c 'A-Za-z0-9_.-' '-' | sed 's/^[.-]*//' | cut -c1-128)
for p in "${PROGRAMS[@]}"; do
	[ -x "build/bin/vigil-$p" ] || fail "build/bin/vigil-$p is not built (make programs)"
done

echo "== build: scripts/images.sh"
t0=$SECONDS
if ! VERSION=$VERSION bash scripts/images.sh >"$WORK/build1.log" 2>&1; then
	cat "$WORK/build1.log"
	fail "scripts/images.sh failed"
fi
sed 's/^/    /' "$WORK/build1.log"
base=$(sed -n 's/^images: base .* = \([^ ,]*\),.*/\1/p' "$WORK/build1.log")
[ -n "$base" ] || fail "scripts/images.sh named no base image"
for p in "${PROGRAMS[@]}"; do
	docker image inspect "$REPO/vigil-$p:$TAG" >/dev/null 2>&1 || fail "no image $REPO/vigil-$p:$TAG"
	[ "$(docker image inspect -f '{{.Id}}' "$REPO/vigil-$p:$TAG")" = \
		"$(docker image inspect -f '{{.Id}}' "$REPO/vigil-$p:latest")" ] ||
		fail "$REPO/vigil-$p:latest is not $REPO/vigil-$p:$TAG"
done
check "built $base and ${#PROGRAMS[@]} images tagged :$TAG and :latest in $((SECONDS - t0)) s"

echo "== a second build reuses the base and docker's cache"
layers() { docker image inspect -f '{{range .RootFS.Layers}}{{println .}}{{end}}' "$1" | grep .; }
declare -A before
for p in "${PROGRAMS[@]}"; do
	# every layer but the last, the program's COPY
	before[$p]=$(layers "$REPO/vigil-$p:$TAG" | sed '$d')
done
t0=$SECONDS
VERSION=$VERSION bash scripts/images.sh >"$WORK/build2.log" 2>&1 || { cat "$WORK/build2.log"; fail "second build failed"; }
warm=$((SECONDS - t0))
grep -q "^images: base $base: unchanged, reused" "$WORK/build2.log" ||
	{ cat "$WORK/build2.log"; fail "the second build did not reuse $base"; }
for p in "${PROGRAMS[@]}"; do
	# the base and the package layer come from the cache, unchanged
	[ "$(layers "$REPO/vigil-$p:$TAG" | sed '$d')" = "${before[$p]}" ] ||
		{ cat "build/images/$p.log"; fail "$p: the second build rebuilt the base or package layers"; }
done
check "second build in $warm s: base reused, package layers from the cache"

for p in "${PROGRAMS[@]}"; do
	img=$REPO/vigil-$p:$TAG
	echo "== $img"
	want=$("build/bin/vigil-$p" --version)
	got=$(docker run --rm "$img" --version 2>&1) || fail "$p: --version failed: $got"
	[ "$got" = "$want" ] || fail "$p: --version prints '$got', the binary in build/bin '$want'"
	case $got in "vigil-$p "?*) ;; *) fail "$p: --version prints '$got'" ;; esac
	[ "$(docker image inspect -f '{{json .Config.Entrypoint}}' "$img")" = "[\"/usr/local/bin/vigil-$p\"]" ] ||
		fail "$p: entrypoint $(docker image inspect -f '{{json .Config.Entrypoint}}' "$img")"
	check "$p: --version prints '$got'; entrypoint /usr/local/bin/vigil-$p"

	user=$(docker image inspect -f '{{.Config.User}}' "$img")
	[ "$user" = 65532:65532 ] || fail "$p: Config.User is '$user', want 65532:65532"
	ids=$(docker run --rm --entrypoint /usr/bin/id "$img" -u)/$(docker run --rm --entrypoint /usr/bin/id "$img" -g)
	[ "$ids" = 65532/65532 ] || fail "$p: runs as uid/gid $ids, want 65532/65532"
	# the program is root's: the process cannot change it
	docker run --rm --entrypoint /bin/sh "$img" -c \
		"[ -x /usr/local/bin/vigil-$p ] && [ ! -w /usr/local/bin/vigil-$p ] && [ \"\$(stat -c %u /usr/local/bin/vigil-$p)\" = 0 ]" ||
		fail "$p: /usr/local/bin/vigil-$p is writable by the process or not root's"
	check "$p: runs as 65532:65532, cannot modify its program"

	labels=$(docker image inspect -f '{{json .Config.Labels}}' "$img")
	lab() { echo "$labels" | jq -r --arg k "org.opencontainers.image.$1" '.[$k] // empty'; }
	[ "$(lab title)" = "vigil-$p" ] || fail "$p: label title '$(lab title)'"
	[ "$(lab version)" = "$VERSION" ] || fail "$p: label version '$(lab version)', want $VERSION"
	rev=$(lab revision)
	[[ $rev =~ ^[0-9a-f]{40}$ ]] && git cat-file -e "$rev^{commit}" 2>/dev/null || fail "$p: label revision '$rev' is no commit here"
	for k in description licenses created base.name; do
		[ -n "$(lab "$k")" ] || fail "$p: label org.opencontainers.image.$k is empty"
	done
	echo "$labels" | jq -e 'has("org.opencontainers.image.source")' >/dev/null || fail "$p: no source label"
	check "$p: OCI labels title, version $VERSION, revision ${rev:0:12}, licenses $(lab licenses), description, created"

	extra=$(($(size_of "$img") - $(size_of "$base")))
	[ $extra -lt 10000000 ] || fail "$p: the image adds $(mb $extra) to the base (packages installed on top?)"
	check "$p: $(mb "$(size_of "$img")"), of which $(mb $extra) over the base"
done

echo "== vigil-agent: a scan of a port held here"
docker run --rm --entrypoint /bin/sh "$REPO/vigil-agent:$TAG" -c \
	'[ "$(stat -c %u:%g /var/spool/vigil)" = 65532:65532 ] && touch /var/spool/vigil/probe && [ "$VIGIL_SPOOL_DIR" = /var/spool/vigil ]' ||
	fail "agent: /var/spool/vigil is not the nonroot user's spool"
check "agent: /var/spool/vigil is owned and writable by 65532, the default spool"
python3 -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0)); s.listen(16)
print(s.getsockname()[1], flush=True)
s.settimeout(1)
end = time.time() + 300
while time.time() < end:
    try:
        c, _ = s.accept(); c.close()
    except socket.timeout:
        pass
' >"$WORK/listener.port" &
LISTEN_PID=$!
for _ in $(seq 1 50); do [ -s "$WORK/listener.port" ] && break; sleep 0.1; done
open_port=$(cat "$WORK/listener.port")
[ -n "$open_port" ] || fail "the test listener did not start"
closed_port=$(free_port)
rc=0
docker run --rm --network host "$REPO/vigil-agent:$TAG" --allow-loopback --allowed 127.0.0.0/8 \
	--targets 127.0.0.1 --ports "$open_port,$closed_port" --connect-timeout-ms 1000 --output - \
	>"$WORK/scan.out" 2>"$WORK/scan.err" || rc=$?
[ $rc -eq 0 ] || { cat "$WORK/scan.err"; fail "agent scan: exit $rc, want 0"; }
jq -e --argjson p "$open_port" 'select(.host == "127.0.0.1" and .port == $p and .evidence.state == "open")' \
	"$WORK/scan.out" >/dev/null || { cat "$WORK/scan.out" "$WORK/scan.err"; fail "agent scan: port $open_port not reported open"; }
! jq -e --argjson p "$closed_port" 'select(.port == $p and .evidence.state == "open")' "$WORK/scan.out" >/dev/null ||
	fail "agent scan: closed port $closed_port reported open"
check "agent: scan of 127.0.0.1 exits 0, reports $open_port open and $closed_port not"

echo "== gateway, worker, brain on a real PostgreSQL and Redis"
pg_start
redis_start
psql -XAtq "$PG_URL" -c "CREATE DATABASE vigil" >/dev/null
ADMIN_KEY=vgk_00000000_$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=' | head -c 43)
envs=(-e VIGIL_DB_HOST=127.0.0.1 -e "VIGIL_DB_PORT=$PG_PORT" -e VIGIL_DB_NAME=vigil
	-e VIGIL_DB_SSLMODE=disable -e VIGIL_REDIS_HOST=127.0.0.1 -e "VIGIL_REDIS_PORT=$REDIS_PORT")

gp=$(free_port)
hp=$(free_port)
start gateway "$REPO/vigil-gateway:$TAG" --network host "${envs[@]}" \
	-e VIGIL_DB_USER=postgres -e VIGIL_DB_APP_USER=vigil_app \
	-e "VIGIL_GATEWAY_LISTEN=127.0.0.1:$gp" -e "VIGIL_HEALTH_LISTEN=127.0.0.1:$hp" \
	-e "VIGIL_BOOTSTRAP_ADMIN_KEY=$ADMIN_KEY" -e VIGIL_SESSION_KEY=e2e-images-session-key
gw_cid=$CID
wait_http "http://127.0.0.1:$hp/healthz" "$gw_cid" gateway
wait_http "http://127.0.0.1:$hp/readyz" "$gw_cid" gateway
code=$(curl -s -o "$WORK/whoami.json" -w '%{http_code}' -H "Authorization: Bearer $ADMIN_KEY" \
	"http://127.0.0.1:$gp/v1/whoami")
[ "$code" = 200 ] || { cat "$WORK/whoami.json"; fail "gateway: GET /v1/whoami answered $code"; }
[ "$(psql -XAtq "postgresql://postgres@127.0.0.1:$PG_PORT/vigil" -c \
	"SELECT count(*) > 0 FROM pg_roles WHERE rolname = 'vigil_app'")" = t ] || fail "gateway: no migrations in PostgreSQL"
check "gateway: /healthz and /readyz answer 200, the API answers the admin key, the schema is migrated"

for p in worker brain; do
	hp=$(free_port)
	start "$p" "$REPO/vigil-$p:$TAG" --network host "${envs[@]}" -e VIGIL_DB_USER=vigil_app \
		-- --health-addr "127.0.0.1:$hp"
	wait_http "http://127.0.0.1:$hp/healthz" "$CID" "$p"
	wait_http "http://127.0.0.1:$hp/readyz" "$CID" "$p"
	curl -sf "http://127.0.0.1:$hp/metrics" >"$WORK/$p.metrics" || fail "$p: /metrics"
	grep -q '^process_' "$WORK/$p.metrics" || { head -n 20 "$WORK/$p.metrics"; fail "$p: no process metrics in /metrics"; }
	stop_clean "$CID" "$p"
	check "$p: /healthz, /readyz and /metrics answer on PostgreSQL and Redis; SIGTERM: exit 0 in $STOP_SECONDS s"
done
stop_clean "$gw_cid" gateway
check "gateway: SIGTERM: exit 0 in $STOP_SECONDS s"

echo "== vigil-operator against the local cluster, as a standby replica"
[ -f .cluster/env ] && . .cluster/env
if [ -z "${KUBECONFIG:-}" ] || ! kubectl --kubeconfig "$KUBECONFIG" get --raw /readyz >/dev/null 2>&1; then
	echo "  skipped: the local cluster is not up (make cluster-up) — vigil-operator's /healthz not checked"
else
	export KUBECONFIG
	if ! kubectl get crd platforms.vigil.dev tenants.vigil.dev scanpolicies.vigil.dev >/dev/null 2>&1; then
		kubectl apply --server-side --force-conflicts -f crds/ >/dev/null
		kubectl wait --for=condition=Established crd --all --timeout=60s >/dev/null
	fi
	NS=vigil-images-$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
	kubectl create namespace "$NS" >/dev/null
	# a Lease held by someone else and kept fresh: the operator in the image
	# campaigns, never leads, so it writes nothing to the shared cluster
	now() { date -u +%Y-%m-%dT%H:%M:%S.000000Z; }
	kubectl apply -f - >/dev/null <<-YAML
		apiVersion: coordination.k8s.io/v1
		kind: Lease
		metadata: {name: vigil-operator, namespace: $NS}
		spec: {holderIdentity: e2e-images-holder, leaseDurationSeconds: 3600, renewTime: "$(now)", acquireTime: "$(now)"}
	YAML
	(while sleep 3; do
		kubectl -n "$NS" patch lease vigil-operator --type=merge \
			-p "{\"spec\":{\"renewTime\":\"$(now)\"}}" >/dev/null 2>&1 || true
	done) &
	RENEW_PID=$!
	# the admin kubeconfig, readable by the nonroot user only
	install -m 0400 -o 65532 -g 65532 "$KUBECONFIG" "$WORK/kubeconfig"
	hp=$(free_port)
	mp=$(free_port)
	start operator "$REPO/vigil-operator:$TAG" --network host \
		-v "$WORK/kubeconfig:/etc/vigil/kubeconfig:ro" -- \
		--kubeconfig /etc/vigil/kubeconfig --namespace "$NS" --leader-elect \
		--leader-election-namespace "$NS" --health-addr "127.0.0.1:$hp" --metrics-addr "127.0.0.1:$mp"
	op_cid=$CID
	wait_http "http://127.0.0.1:$hp/healthz" "$op_cid" operator
	wait_http "http://127.0.0.1:$hp/readyz" "$op_cid" operator
	curl -sf "http://127.0.0.1:$mp/metrics" >"$WORK/op.metrics" || fail "operator: /metrics"
	grep -q '^leader_election_master_status{name="vigil-operator"} 0' "$WORK/op.metrics" ||
		{ grep leader_election "$WORK/op.metrics"; fail "operator: not a standby"; }
	[ "$(kubectl -n "$NS" get lease vigil-operator -o jsonpath='{.spec.holderIdentity}')" = e2e-images-holder ] ||
		fail "operator: took the Lease"
	stop_clean "$op_cid" operator
	check "operator: /healthz and /readyz (caches synced) answer with the kubeconfig mounted read-only; a standby; SIGTERM: exit 0 in $STOP_SECONDS s"
fi

echo "== image sizes"
printf '  %-40s %s\n' "$base" "$(mb "$(size_of "$base")")"
for p in "${PROGRAMS[@]}"; do
	printf '  %-40s %s\n' "$REPO/vigil-$p:$TAG" "$(mb "$(size_of "$REPO/vigil-$p:$TAG")")"
done

echo "$pass passed, 0 failed"
