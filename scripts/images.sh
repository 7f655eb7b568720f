#!/usr/bin/env bash
# Build vigil's container images from the programs in build/bin.
#
#   scripts/images.sh [all|base|programs|check] [PROGRAM...]
#
#   base      vigil/base:bookworm: Debian 12 (minbase) made here with
#             debootstrap from the APT mirror this machine uses, plus the
#             runtime libraries of images/base/packages; docs, man pages,
#             locales and APT lists stripped; `docker import`ed. Tagged
#             vigil/base:bookworm-<hash of the list and recipe> too, and
#             reused while that tag exists (or its tarball is cached).
#   programs  vigil/vigil-<program>:<VERSION> and :latest from
#             images/<program>/Dockerfile (context: the repository root,
#             kept small by .dockerignore), FROM the local base with no
#             network. PROGRAM... limits the build to some programs.
#   check     only that every program's Dockerfile lists the packages of
#             the libraries its binary links (and the base has them all).
#   all       check, base, programs (default).
#
# Environment:
#   VERSION            image tag and org.opencontainers.image.version
#                      (default: git describe, as the Makefile)
#   VIGIL_CACHE_DIR    cache outside git (default ~/.cache/vigil); the base
#                      lives in $VIGIL_CACHE_DIR/images/
#   VIGIL_BASE_IMAGE   build FROM this instead of the local base (e.g.
#                      debian:12-slim where a registry is reachable); the
#                      Dockerfiles then install the libraries with apt-get
#   VIGIL_IMAGE_REPO   repository prefix of the images (default vigil)
#   VIGIL_DEBIAN_MIRROR  mirror for debootstrap (default: the one of the
#                      "bookworm" entry in /etc/apt/sources.list{,.d})
#   VIGIL_IMAGE_SOURCE, VIGIL_IMAGE_LICENSES  OCI labels (default: the git
#                      remote "origin", NOASSERTION)
#
# Without a reachable docker engine it says so and exits 0: there is
# nothing to build images into.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

ALL_PROGRAMS=(operator gateway worker brain agent)
SUITE=bookworm
# bump when the base recipe below changes in a way the package list does not show
BASE_RECIPE=1
REPO=${VIGIL_IMAGE_REPO:-vigil}
CACHE=${VIGIL_CACHE_DIR:-$HOME/.cache/vigil}/images
BIN=build/bin

say() { printf 'images: %s\n' "$*"; }
die() {
	printf 'images: error: %s\n' "$*" >&2
	exit 1
}

cmd=${1:-all}
case $cmd in
all | base | programs | check) shift || true ;;
-h | --help)
	sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
	exit 0
	;;
*) cmd=all ;;
esac
programs=("$@")
[ ${#programs[@]} -gt 0 ] || programs=("${ALL_PROGRAMS[@]}")
for p in "${programs[@]}"; do
	[ -f "images/$p/Dockerfile" ] || die "no images/$p/Dockerfile (programs: ${ALL_PROGRAMS[*]})"
done

if ! command -v docker >/dev/null 2>&1; then
	say "no docker command on this machine — no images built"
	exit 0
fi
if ! docker info >/dev/null 2>&1; then
	say "no docker engine reachable ('docker info' fails) — no images built"
	exit 0
fi

as_root=()
if [ "$(id -u)" -ne 0 ]; then
	as_root=(sudo)
fi

VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
# a tag is [A-Za-z0-9_.-]{1,128}, not starting with . or -
TAG=$(printf '%s' "$VERSION" | tr -c 'A-Za-z0-9_.-' '-' | sed 's/^[.-]*//' | cut -c1-128)
[ -n "$TAG" ] || TAG=dev
REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown)
CREATED=$(git log -1 --format=%cI 2>/dev/null || echo 1970-01-01T00:00:00Z)
SOURCE=${VIGIL_IMAGE_SOURCE:-$(git remote get-url origin 2>/dev/null || true)}
LICENSES=${VIGIL_IMAGE_LICENSES:-NOASSERTION}

# --- the packages each program needs -------------------------------------

# base_packages: images/base/packages without comments
base_packages() {
	sed -e 's/#.*//' -e 's/[[:space:]]//g' images/base/packages | grep -v '^$' | sort -u
}

# dockerfile_packages PROGRAM: the RUNTIME_PACKAGES of its Dockerfile
dockerfile_packages() {
	sed -n 's/^ARG RUNTIME_PACKAGES="\(.*\)"/\1/p' "images/$1/Dockerfile" | tr ' ' '\n' | grep -v '^$' | sort -u
}

# needed_packages BINARY: the Debian packages of the libraries it links
# (its NEEDED entries, resolved on this Debian machine), libc6 left out
needed_packages() {
	local so path real f cands=() owners out=()
	for so in $(readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
		path=$(ldconfig -p | awk -v s="$so" '$1 == s { print $NF; exit }')
		[ -n "$path" ] || die "$1 links $so, which this machine does not have"
		real=$(readlink -f "$path")
		# dpkg knows a file under /lib or /usr/lib (merged /usr)
		for f in "$path" "$real"; do
			cands+=("/usr${f#/usr}" "${f#/usr}")
		done
	done
	[ ${#cands[@]} -gt 0 ] || return 0
	owners=$(dpkg-query -S "${cands[@]}" 2>/dev/null || true)
	for so in $(readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
		path=$(ldconfig -p | awk -v s="$so" '$1 == s { print $NF; exit }')
		real=$(readlink -f "$path")
		f=$(echo "$owners" | awk -v a="${path##*/}" -v b="${real##*/}" '{
			n = split($NF, p, "/"); if (p[n] == a || p[n] == b) { sub(/[:,].*/, "", $1); print $1; exit } }')
		[ -n "$f" ] || die "$1 links $so ($path), which no Debian package provides"
		out+=("$f")
	done
	printf '%s\n' "${out[@]}" | grep -vx 'libc6' | sort -u || true
}

check_packages() {
	local p bin need missing base
	base=$(base_packages)
	for p in "${programs[@]}"; do
		bin=$BIN/vigil-$p
		[ -x "$bin" ] || die "$bin is not built (make programs)"
		need=$(needed_packages "$bin")
		missing=$(comm -23 <(echo "$need") <(dockerfile_packages "$p"))
		[ -z "$missing" ] || die "vigil-$p links libraries of $(echo $missing): add them to RUNTIME_PACKAGES in images/$p/Dockerfile"
		missing=$(comm -23 <(dockerfile_packages "$p") <(echo "$base"))
		[ -z "$missing" ] || die "images/$p/Dockerfile needs $(echo $missing), which images/base/packages lacks"
	done
}

# --- the base image ------------------------------------------------------

# apt_entries: "URI SUITE COMPONENTS..." of every enabled deb source
apt_entries() {
	local f
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		awk '$1 == "deb" {
			i = 2
			if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
			line = $i " " $(i + 1)
			for (j = i + 2; j <= NF && $j !~ /^#/; j++) line = line " " $j
			print line
		}' "$f"
	done
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		awk 'BEGIN { RS = ""; FS = "\n" }
		{
			types = uris = suites = comps = ""; enabled = "yes"
			for (i = 1; i <= NF; i++) {
				l = $i
				if (l ~ /^[[:space:]]*#/) continue
				k = l; sub(/:.*/, "", k); v = l; sub(/^[^:]*:[[:space:]]*/, "", v)
				k = tolower(k)
				if (k == "types") types = v
				else if (k == "uris") uris = v
				else if (k == "suites") suites = v
				else if (k == "components") comps = v
				else if (k == "enabled") enabled = tolower(v)
			}
			if (enabled == "no" || (" " types " ") !~ / deb /) next
			nu = split(uris, u, /[[:space:]]+/); ns = split(suites, s, /[[:space:]]+/)
			for (a = 1; a <= nu; a++) for (b = 1; b <= ns; b++)
				if (u[a] != "" && s[b] != "") print u[a] " " s[b] " " comps
		}' "$f"
	done
}

# debian_sources: the host's entries for bookworm, -updates and -security
# (main only), as sources.list lines for the base
debian_sources() {
	apt_entries | awk -v s="$SUITE" '$2 == s || $2 == s "-updates" || $2 == s "-security" {
		if ((" " $0 " ") ~ / main /) print "deb " $1 " " $2 " main"
	}' | awk '!seen[$0]++'
}

base_hash() {
	{
		echo "recipe $BASE_RECIPE suite $SUITE variant minbase"
		base_packages
	} | sha256sum | cut -c1-12
}

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

ensure_debootstrap() {
	command -v debootstrap >/dev/null 2>&1 && return 0
	say "installing debootstrap"
	"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 \
		install -y -q --no-install-recommends debootstrap >/dev/null 2>&1 || {
		"${as_root[@]}" apt-get -o DPkg::Lock::Timeout=600 update -q >/dev/null
		"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 \
			install -y -q --no-install-recommends debootstrap >/dev/null
	}
}

# make_rootfs DIR: debootstrap, the packages, then everything a container
# does not need removed
make_rootfs() {
	local root=$1 mirror sources pkgs log=$CACHE/base.log
	sources=$(debian_sources)
	mirror=${VIGIL_DEBIAN_MIRROR:-$(echo "$sources" | awk -v s="$SUITE" '$3 == s { print $2; exit }')}
	[ -n "$mirror" ] || die "no '$SUITE' entry in /etc/apt/sources.list{,.d}; set VIGIL_DEBIAN_MIRROR"
	[ -n "$sources" ] || sources="deb $mirror $SUITE main"
	pkgs=$(base_packages | tr '\n' ' ')
	ensure_debootstrap
	mkdir -p "$CACHE/debs"
	: >"$log"
	say "debootstrap --variant=minbase $SUITE from $mirror (log: $log)"
	"${as_root[@]}" debootstrap --variant=minbase --cache-dir="$CACHE/debs" \
		"$SUITE" "$root" "$mirror" >>"$log" 2>&1 || {
		tail -n 30 "$log"
		die "debootstrap failed"
	}

	# from here on, dpkg leaves out what a container never reads (as the
	# Debian "slim" images do); copyright files stay
	"${as_root[@]}" tee "$root/etc/dpkg/dpkg.cfg.d/90-vigil-slim" >/dev/null <<-'EOF'
		path-exclude /usr/share/doc/*
		path-include /usr/share/doc/*/copyright
		path-exclude /usr/share/man/*
		path-exclude /usr/share/info/*
		path-exclude /usr/share/locale/*
		path-include /usr/share/locale/locale.alias
		path-exclude /usr/share/lintian/*
		path-exclude /usr/share/linda/*
		path-exclude /usr/share/groff/*
	EOF
	"${as_root[@]}" tee "$root/etc/apt/apt.conf.d/90-vigil-slim" >/dev/null <<-'EOF'
		APT::Install-Recommends "false";
		APT::Install-Suggests "false";
		Acquire::Languages "none";
		DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
	EOF
	echo "$sources" | "${as_root[@]}" tee "$root/etc/apt/sources.list" >/dev/null
	# no service starts inside the chroot
	printf '#!/bin/sh\nexit 101\n' | "${as_root[@]}" tee "$root/usr/sbin/policy-rc.d" >/dev/null
	"${as_root[@]}" chmod 0755 "$root/usr/sbin/policy-rc.d"

	say "installing $pkgs(and security updates)"
	"${as_root[@]}" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
		chroot "$root" sh -euc "
			apt-get update -q
			apt-get -y -q upgrade
			apt-get -y -q install $pkgs
			apt-get clean
		" >>"$log" 2>&1 || {
		tail -n 30 "$log"
		die "installing the runtime packages in the base failed"
	}
	"${as_root[@]}" rm -f "$root/usr/sbin/policy-rc.d"

	# what debootstrap installed before the dpkg filter, and the caches
	"${as_root[@]}" sh -euc '
		cd "$1"
		find usr/share/doc -mindepth 1 -not -name copyright -not -type d -delete
		find usr/share/doc -mindepth 1 -type d -empty -delete
		rm -rf usr/share/man/* usr/share/info/* usr/share/lintian usr/share/linda \
			usr/share/groff usr/share/bash-completion
		find usr/share/locale -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
		rm -rf var/lib/apt/lists/* var/cache/apt/* var/cache/debconf/*-old \
			var/lib/dpkg/*-old var/log/apt/* var/log/*.log tmp/* var/tmp/* root/.??* \
			dev/* proc/* sys/* run/*
		: >etc/machine-id 2>/dev/null || true
		mkdir -p var/lib/apt/lists/partial var/cache/apt/archives/partial
	' sh "$root"
}

# remove_rootfs DIR: a root file system left by this script; what a failed
# debootstrap left mounted in it is unmounted first, never crossed
remove_rootfs() {
	local root=$1 m
	[ -e "$root" ] || return 0
	for m in $(findmnt -rn -o TARGET | grep -F "$root/" | sort -r); do
		"${as_root[@]}" umount "$m" 2>/dev/null || "${as_root[@]}" umount -l "$m" || true
	done
	if findmnt -rn -o TARGET | grep -F "$root/" >/dev/null; then
		die "$root has file systems mounted in it; unmount them and remove it"
	fi
	"${as_root[@]}" rm -rf --one-file-system "$root"
}

build_base() {
	local hash tag tarball root
	hash=$(base_hash)
	tag=$REPO/base:$SUITE-$hash
	BASE_IMAGE=$tag
	mkdir -p "$CACHE"
	tarball=$CACHE/base-$SUITE-$hash.tar
	if image_exists "$tag"; then
		say "base $tag: unchanged, reused"
	elif [ -s "$tarball" ]; then
		say "base $tag: importing the cached root file system $tarball"
		import_base "$tarball" "$tag" "$hash"
	else
		local t0=$SECONDS
		root=$CACHE/rootfs-$hash
		remove_rootfs "$root"
		make_rootfs "$root"
		"${as_root[@]}" chroot "$root" dpkg-query -W -f '${Package} ${Version}\n' >"$CACHE/base-$SUITE-$hash.manifest"
		"${as_root[@]}" tar --numeric-owner --xattrs -C "$root" -cf "$tarball.tmp" .
		"${as_root[@]}" chown "$(id -u):$(id -g)" "$tarball.tmp"
		mv "$tarball.tmp" "$tarball"
		remove_rootfs "$root"
		import_base "$tarball" "$tag" "$hash"
		say "base $tag: built in $((SECONDS - t0)) s ($(wc -l <"$CACHE/base-$SUITE-$hash.manifest") packages, manifest $CACHE/base-$SUITE-$hash.manifest)"
		# older bases' root file systems
		find "$CACHE" -maxdepth 1 -name "base-$SUITE-*.tar" -not -name "base-$SUITE-$hash.tar" -delete
	fi
	docker tag "$tag" "$REPO/base:$SUITE"
	say "base $REPO/base:$SUITE = $tag, $(human "$(docker image inspect -f '{{.Size}}' "$tag")")"
}

import_base() {
	local tarball=$1 tag=$2 hash=$3
	docker import \
		--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		--change 'CMD ["/bin/bash"]' \
		--change "LABEL org.opencontainers.image.title=vigil-base" \
		--change "LABEL org.opencontainers.image.description=\"Debian 12 (bookworm, minbase) with the runtime libraries of vigil's programs\"" \
		--change "LABEL dev.vigil.base.hash=$hash" \
		--change "LABEL org.opencontainers.image.revision=$REVISION" \
		"$tarball" "$tag" >/dev/null
}

# --- the programs' images ------------------------------------------------

human() {
	awk -v b="$1" 'BEGIN { split("B KB MB GB", u); i = 1; while (b >= 1000 && i < 4) { b /= 1000; i++ } printf(i == 1 ? "%d %s" : "%.1f %s", b, u[i]) }'
}

build_programs() {
	local p log args=() t0 id
	export DOCKER_BUILDKIT=${DOCKER_BUILDKIT:-$(docker buildx version >/dev/null 2>&1 && echo 1 || echo 0)}
	mkdir -p build/images
	if [ -n "${VIGIL_BASE_IMAGE:-}" ]; then
		BASE_IMAGE=$VIGIL_BASE_IMAGE
	else
		# the local base has every runtime package: nothing to download
		args+=(--network none)
	fi
	for p in "${programs[@]}"; do
		[ -x "$BIN/vigil-$p" ] || die "$BIN/vigil-$p is not built (make programs)"
		log=build/images/$p.log
		t0=$SECONDS
		if ! docker build -f "images/$p/Dockerfile" "${args[@]}" \
			--build-arg "BASE=$BASE_IMAGE" \
			--build-arg "VERSION=$VERSION" \
			--build-arg "REVISION=$REVISION" \
			--build-arg "CREATED=$CREATED" \
			--build-arg "SOURCE=$SOURCE" \
			--build-arg "LICENSES=$LICENSES" \
			-t "$REPO/vigil-$p:$TAG" -t "$REPO/vigil-$p:latest" . >"$log" 2>&1; then
			tail -n 30 "$log"
			die "building $REPO/vigil-$p failed (log: $log)"
		fi
		id=$(docker image inspect -f '{{.Id}}' "$REPO/vigil-$p:$TAG")
		printf 'images: %-34s %9s  %s  (%d s)\n' "$REPO/vigil-$p:$TAG" \
			"$(human "$(docker image inspect -f '{{.Size}}' "$id")")" "${id#sha256:}" $((SECONDS - t0)) |
			sed 's/\(  [0-9a-f]\{12\}\)[0-9a-f]*/\1/'
	done
	# images of ours that a rebuild left without a tag (only those: the
	# label filter leaves everybody else's alone)
	docker image prune -f --filter "label=org.opencontainers.image.vendor=vigil" >/dev/null 2>&1 || true
}

# one build at a time per cache (the base's root file system is shared)
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
if ! flock -n 9; then
	say "waiting for another scripts/images.sh to finish"
	flock 9
fi

t_start=$SECONDS
case $cmd in
check) check_packages ;;
base) build_base ;;
programs)
	check_packages
	BASE_IMAGE=$REPO/base:$SUITE-$(base_hash)
	[ -n "${VIGIL_BASE_IMAGE:-}" ] || image_exists "$BASE_IMAGE" || build_base
	build_programs
	;;
all)
	check_packages
	[ -n "${VIGIL_BASE_IMAGE:-}" ] || build_base
	build_programs
	;;
esac
say "done in $((SECONDS - t_start)) s"
