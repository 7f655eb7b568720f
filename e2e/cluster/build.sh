#!/usr/bin/env bash
# Build the pinned upstream control-plane binaries (kube-apiserver,
# kube-controller-manager, kube-scheduler, etcd, etcdctl, kwok) from the Go
# tools modules under e2e/cluster/tools/, through the Go module proxy.
#
# Binaries are cached OUTSIDE git, keyed by a hash of the tools modules:
#   ${VIGIL_CACHE_DIR:-$HOME/.cache/vigil}/cluster/<hash>/bin/
# A second run with the same go.mod/go.sum files builds nothing.
#
# Usage:
#   bash e2e/cluster/build.sh             build what is missing, print progress
#   bash e2e/cluster/build.sh --bin-dir   print the bin dir only (no build)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TOOLS_DIR="$SCRIPT_DIR/tools"
CACHE_ROOT="${VIGIL_CACHE_DIR:-${HOME:?HOME is not set}/.cache/vigil}/cluster"

# Tool families: "<dir under tools/>:<binary>=<go package>,..."
FAMILIES=(
  "etcd:etcd=./cmd/etcd,etcdctl=go.etcd.io/etcd/etcdctl/v3"
  "kwok:kwok=sigs.k8s.io/kwok/cmd/kwok"
  "k8s:kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver,kube-controller-manager=k8s.io/kubernetes/cmd/kube-controller-manager,kube-scheduler=k8s.io/kubernetes/cmd/kube-scheduler"
)

log() { printf 'build.sh: %s\n' "$*" >&2; }
die() { printf 'build.sh: ERROR: %s\n' "$*" >&2; exit 1; }

# Hash of every tools module's go.mod + go.sum (and the tiny wrapper sources),
# plus this script's flag set, so a change to pins or flags gives a new dir.
tools_hash() {
  (
    cd "$TOOLS_DIR"
    find . -type f \( -name go.mod -o -name go.sum -o -name '*.go' \) | LC_ALL=C sort |
      while read -r f; do printf '%s\n' "$f"; cat "$f"; done
    printf 'flags: -trimpath -ldflags=-s -w +version-x v1\n'
  ) | sha256sum | cut -c1-16
}

HASH="$(tools_hash)"
OUT_DIR="$CACHE_ROOT/$HASH"
BIN_DIR="$OUT_DIR/bin"

if [[ "${1:-}" == "--bin-dir" ]]; then
  printf '%s\n' "$BIN_DIR"
  exit 0
elif [[ $# -gt 0 ]]; then
  die "unknown argument: $1 (usage: build.sh [--bin-dir])"
fi

family_complete() { # family-name binaries...
  local fam="$1"; shift
  [[ -f "$OUT_DIR/.complete-$fam" ]] || return 1
  local b
  for b in "$@"; do [[ -x "$BIN_DIR/$b" ]] || return 1; done
}

all_complete() {
  local spec fam bins b
  for spec in "${FAMILIES[@]}"; do
    fam="${spec%%:*}"; bins=()
    IFS=, read -r -a pairs <<<"${spec#*:}"
    for b in "${pairs[@]}"; do bins+=("${b%%=*}"); done
    family_complete "$fam" "${bins[@]}" || return 1
  done
}

# Fast path: everything already built (no lock, no go invocation).
if all_complete; then
  log "all binaries present in $BIN_DIR (cached, nothing to build)"
  exit 0
fi

if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
  PATH="/usr/local/go/bin:$PATH"
fi
command -v go >/dev/null 2>&1 || die "go not found in PATH (need Go >= 1.26; try PATH=/usr/local/go/bin:\$PATH)"
command -v flock >/dev/null 2>&1 || die "flock not found (install util-linux)"

mkdir -p "$BIN_DIR"
# Serialise concurrent builds of the same cache dir.
exec 9>"$OUT_DIR/.lock"
if ! flock -n 9; then
  log "another build holds $OUT_DIR/.lock; waiting for it"
  flock 9
fi

total_start=$SECONDS
for spec in "${FAMILIES[@]}"; do
  fam="${spec%%:*}"
  IFS=, read -r -a pairs <<<"${spec#*:}"
  bins=(); pkgs=()
  for p in "${pairs[@]}"; do bins+=("${p%%=*}"); pkgs+=("${p#*=}"); done
  if family_complete "$fam" "${bins[@]}"; then
    log "$fam: cached (${bins[*]})"
    continue
  fi

  mod_dir="$TOOLS_DIR/$fam"
  [[ -f "$mod_dir/go.mod" && -f "$mod_dir/go.sum" ]] || die "missing $mod_dir/go.mod or go.sum"

  ldflags="-s -w"
  case "$fam" in
    k8s)
      kver="$(cd "$mod_dir" && go list -m -f '{{.Version}}' k8s.io/kubernetes)"
      [[ "$kver" =~ ^v([0-9]+)\.([0-9]+)\. ]] || die "cannot parse k8s.io/kubernetes version '$kver'"
      for vpkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        ldflags+=" -X $vpkg.gitVersion=$kver -X $vpkg.gitMajor=${BASH_REMATCH[1]} -X $vpkg.gitMinor=${BASH_REMATCH[2]}"
        ldflags+=" -X $vpkg.gitTreeState=clean -X $vpkg.buildDate=1970-01-01T00:00:00Z"
      done
      ;;
    kwok)
      kwver="$(cd "$mod_dir" && go list -m -f '{{.Version}}' sigs.k8s.io/kwok)"
      ldflags+=" -X sigs.k8s.io/kwok/pkg/consts.Version=${kwver#v}"
      ;;
  esac

  tmp="$OUT_DIR/tmp-$fam.$$"
  rm -rf "$tmp"; mkdir -p "$tmp"
  log "$fam: building ${bins[*]} (from $mod_dir) ..."
  start=$SECONDS
  # One `go build` per binary: building several main packages with -o DIR works
  # too, but per-binary builds give clearer errors and the same total time.
  for i in "${!bins[@]}"; do
    bstart=$SECONDS
    if ! (cd "$mod_dir" && CGO_ENABLED=0 go build -buildvcs=false -trimpath -ldflags="$ldflags" -o "$tmp/${bins[$i]}" "${pkgs[$i]}"); then
      rm -rf "$tmp"
      die "$fam: go build ${pkgs[$i]} failed"
    fi
    log "$fam: built ${bins[$i]} in $((SECONDS - bstart))s ($(du -h "$tmp/${bins[$i]}" | cut -f1))"
  done
  for b in "${bins[@]}"; do mv -f "$tmp/$b" "$BIN_DIR/$b"; done
  rmdir "$tmp"
  touch "$OUT_DIR/.complete-$fam"
  log "$fam: done in $((SECONDS - start))s"
done
log "all binaries ready in $BIN_DIR (total $((SECONDS - total_start))s)"
