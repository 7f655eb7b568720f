#!/usr/bin/env bash
# Build the pinned upstream `helm` (tools/helm/go.mod) through the Go module
# proxy, once, and print the path of the binary.
#
# The binary is cached OUTSIDE git, keyed by a hash of tools/helm/go.mod,
# go.sum and the build flags:
#   ${VIGIL_CACHE_DIR:-$HOME/.cache/vigil}/helm/<hash>/bin/helm
# A second run with the same files builds nothing. Progress goes to stderr,
# the path alone to stdout:
#
#   HELM=$(bash scripts/helm.sh)
#   "$HELM" lint --strict helm/vigil
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mod_dir=$top/tools/helm
cache_root=${VIGIL_CACHE_DIR:-${HOME:?HOME is not set}/.cache/vigil}/helm

log() { printf 'helm.sh: %s\n' "$*" >&2; }
die() {
	printf 'helm.sh: ERROR: %s\n' "$*" >&2
	exit 1
}

[ -f "$mod_dir/go.mod" ] && [ -f "$mod_dir/go.sum" ] || die "missing $mod_dir/go.mod or go.sum"

flags="-trimpath -ldflags=-s -w +version-x v1"
hash=$(
	cd "$mod_dir"
	for f in go.mod go.sum; do
		printf '%s\n' "$f"
		cat "$f"
	done
	printf 'flags: %s\n' "$flags"
)
hash=$(printf '%s' "$hash" | sha256sum | cut -c1-16)
out_dir=$cache_root/$hash
bin=$out_dir/bin/helm

# fast path: built before (no lock, no go invocation)
if [ -x "$bin" ] && [ -f "$out_dir/.complete" ]; then
	printf '%s\n' "$bin"
	exit 0
fi

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	PATH=/usr/local/go/bin:$PATH
fi
command -v go >/dev/null 2>&1 || die "go not found in PATH (need Go >= 1.26; try PATH=/usr/local/go/bin:\$PATH)"
command -v flock >/dev/null 2>&1 || die "flock not found (install util-linux)"

mkdir -p "$out_dir/bin"
# serialise concurrent builds of the same cache dir
exec 9>"$out_dir/.lock"
if ! flock -n 9; then
	log "another build holds $out_dir/.lock; waiting for it"
	flock 9
fi
if [ -x "$bin" ] && [ -f "$out_dir/.complete" ]; then
	printf '%s\n' "$bin"
	exit 0
fi

# the version helm reports (`helm version`) is the pinned module's
ver=$(cd "$mod_dir" && go list -m -f '{{.Version}}' helm.sh/helm/v3) ||
	die "cannot read the helm.sh/helm/v3 version from $mod_dir/go.mod"
# as Helm's own release builds do: the Kubernetes version lint and
# `helm template` assume is the one of the client-go it is built with
kver=$(cd "$mod_dir" && go list -m -f '{{.Version}}' k8s.io/client-go) ||
	die "cannot read the k8s.io/client-go version from $mod_dir/go.mod"
[[ "$kver" =~ ^v0\.([0-9]+)\. ]] || die "cannot parse k8s.io/client-go version '$kver'"
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$ver"
ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for p in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
	ldflags+=" -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=${BASH_REMATCH[1]}"
done

log "building helm $ver (from $mod_dir) ..."
start=$SECONDS
tmp=$out_dir/bin/helm.tmp.$$
if ! (cd "$mod_dir" && CGO_ENABLED=0 go build -p 2 -buildvcs=false -trimpath \
	-ldflags="$ldflags" -o "$tmp" helm.sh/helm/v3/cmd/helm); then
	rm -f "$tmp"
	die "go build helm.sh/helm/v3/cmd/helm failed"
fi
mv -f "$tmp" "$bin"
touch "$out_dir/.complete"
log "built helm $ver in $((SECONDS - start))s ($(du -h "$bin" | cut -f1)): $bin"
printf '%s\n' "$bin"
