#!/usr/bin/env bash
# Run vigil's test suites against one or more build directories.
#
#   scripts/run-tests.sh build [build/asan ...]
#
# Suites (VIGIL_SUITES, default "unit fuzz e2e"):
#   unit  every cmocka binary under <build>/test/ (unit and integration
#         tests; integration tests start their own PostgreSQL/Redis)
#   fuzz  every build/fuzz/fuzz_* target for FUZZ_SECONDS (default 10)
#         from its seeds and corpus: a crash, leak or timeout fails it
#   e2e   the local Kubernetes control plane is started if it is not up
#         (and stopped again at the end unless VIGIL_KEEP_CLUSTER=1); then
#         every <build>/e2e/ binary, and e2e/test_*.sh: once, or for every
#         build when marked "# vigil-e2e: per-build"
#
# Ends with one line "N passed, N failed" counting test cases; exits non-zero
# when anything failed.
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
suites=${VIGIL_SUITES:-unit fuzz e2e}
test_timeout=${VIGIL_TEST_TIMEOUT:-900}
logdir=$top/build/test-logs
mkdir -p "$logdir"

passed=0
failed=0
failures=()
started_cluster=0

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

has_suite() { [[ " $suites " == *" $1 "* ]]; }

# run_one LABEL COMMAND... : runs a test with a timeout and counts its cases.
run_one() {
	local label=$1
	shift
	local log="$logdir/$(echo "$label" | tr '/ ' '__').log"
	local t0 t1 rc ok bad
	t0=$(date +%s.%N)
	timeout --kill-after=10 "$test_timeout" "$@" >"$log" 2>&1
	rc=$?
	t1=$(date +%s.%N)
	# cmocka: "[  PASSED  ] 3 test(s)." / "[  FAILED  ] 1 test(s), listed below:"
	ok=$(grep -oaE '\[  PASSED  \] [0-9]+ test' "$log" | awk '{s+=$4} END {print s+0}')
	bad=$(grep -oaE '\[  FAILED  \] [0-9]+ test' "$log" | awk '{s+=$4} END {print s+0}')
	if [ "$ok" -eq 0 ] && [ "$bad" -eq 0 ]; then
		# a script: its own closing "N passed, N failed" line, else one case
		local tally
		tally=$(grep -aE '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
		if [ -n "$tally" ]; then
			ok=$(echo "$tally" | awk '{print $1}')
			bad=$(echo "$tally" | awk '{print $3}')
		fi
		if [ $rc -ne 0 ] && [ "$bad" -eq 0 ]; then
			bad=1
		elif [ $rc -eq 0 ] && [ "$ok" -eq 0 ]; then
			ok=1
		fi
	elif [ $rc -ne 0 ] && [ "$bad" -eq 0 ]; then
		bad=1 # crashed or leaked after its cases passed
	fi
	passed=$((passed + ok))
	failed=$((failed + bad))
	if [ "$bad" -eq 0 ] && [ $rc -eq 0 ]; then
		printf 'PASS  %-50s %4d case(s) %6.1fs\n' "$label" "$ok" "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')"
	else
		printf 'FAIL  %-50s exit %d, %d failed (log: %s)\n' "$label" "$rc" "$bad" "${log#$top/}"
		tail -n 40 "$log" | sed 's/^/      | /'
		failures+=("$label")
	fi
}

cluster_up() {
	if [ -f .cluster/kubeconfig ] && kubectl --kubeconfig .cluster/kubeconfig \
		get --raw /readyz >/dev/null 2>&1; then
		return 0
	fi
	echo "== starting the local Kubernetes control plane"
	if ! bash e2e/cluster/up.sh; then
		echo "FAIL  the local control plane did not start"
		failed=$((failed + 1))
		failures+=("cluster-up")
		return 1
	fi
	started_cluster=1
}

cleanup() {
	if [ $started_cluster -eq 1 ] && [ "${VIGIL_KEEP_CLUSTER:-0}" != 1 ]; then
		echo "== stopping the local Kubernetes control plane"
		bash e2e/cluster/down.sh >/dev/null 2>&1 || true
	fi
}
trap cleanup EXIT

[ $# -ge 1 ] || set -- build
if has_suite fuzz && compgen -G 'build/fuzz/fuzz_*' >/dev/null; then
	echo "== fuzz targets, ${FUZZ_SECONDS:-10}s each"
	for f in build/fuzz/fuzz_*; do
		[ -x "$f" ] && [ -f "$f" ] || continue
		run_one "fuzz/${f##*/}" bash scripts/fuzz.sh "${FUZZ_SECONDS:-10}" "$f"
	done
fi
first=1
for b in "$@"; do
	if has_suite unit; then
		echo "== unit and integration tests ($b)"
		while IFS= read -r t; do
			run_one "${t#$b/}${b:+ [$b]}" "$t"
		done < <(find "$b/test" -type f -name 'test_*' -perm -u+x 2>/dev/null | sort)
	fi
	if has_suite e2e; then
		if cluster_up; then
			# shellcheck disable=SC1091
			. .cluster/env
			export KUBECONFIG
			echo "== e2e tests ($b)"
			while IFS= read -r t; do
				run_one "${t#$b/} [$b]" "$t"
			done < <(find "$b/e2e" -type f \( -name 'test_*' -o -name 'e2e_*' \) -perm -u+x 2>/dev/null | sort)
			# scripts marked "vigil-e2e: per-build" drive this build's
			# programs (VIGIL_BUILD); the others test the cluster and
			# the API once
			for s in e2e/test_*.sh; do
				[ -e "$s" ] || continue
				if grep -q '^# vigil-e2e: per-build' "$s"; then
					VIGIL_BUILD=$b run_one "$s [$b]" bash "$s"
				elif [ $first -eq 1 ]; then
					run_one "$s" bash "$s"
				fi
			done
		fi
	fi
	first=0
done

echo
if [ ${#failures[@]} -gt 0 ]; then
	echo "failed: ${failures[*]}"
fi
echo "$passed passed, $failed failed"
[ $failed -eq 0 ] && [ $passed -gt 0 ]
