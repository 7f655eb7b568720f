#!/usr/bin/env bash
# Run each libFuzzer target for a while, with a corpus kept under build/.
#   scripts/fuzz.sh SECONDS build/fuzz/fuzz_a [build/fuzz/fuzz_b ...]
set -euo pipefail
secs=$1
shift
rc=0
for bin in "$@"; do
	name=$(basename "$bin")
	corpus=build/fuzz-corpus/$name
	mkdir -p "$corpus"
	seeds=lib/fuzz/seeds/${name#fuzz_}
	echo "== $name for ${secs}s"
	args=("$corpus")
	[ -d "$seeds" ] && args+=("$seeds")
	if ! "$bin" -max_total_time="$secs" -print_final_stats=1 \
		-artifact_prefix="build/fuzz/$name-" "${args[@]}" \
		>"build/fuzz/$name.log" 2>&1; then
		echo "FAIL  $name: see build/fuzz/$name.log"
		tail -n 30 "build/fuzz/$name.log"
		rc=1
	else
		grep -E 'stat::number_of_executed_units|cov:' "build/fuzz/$name.log" | tail -n 2
	fi
done
exit $rc
