#!/usr/bin/env bash
# Install the Debian packages vigil needs, only those that are missing.
set -euo pipefail

pkgs=(
	gcc make pkg-config git openssl ca-certificates curl procps python3 jq iproute2 util-linux
	libcurl4-openssl-dev libjansson-dev libyaml-dev libssl-dev libpq-dev
	libhiredis-dev libwebsockets-dev libcmocka-dev libargon2-dev libzstd-dev
	postgresql redis-server prometheus clang libclang-rt-14-dev nmap chromium
)

missing=()
for p in "${pkgs[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done

if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi

echo "deps: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
	sudo=sudo
else
	sudo=
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q >/dev/null
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
echo "deps: done"
