#!/usr/bin/env bash
# bench/agent.sh - vigil-agent's connect scan against 10,000 open ports on
# loopback listeners, side by side with `nmap -sT` on the same targets in
# the same run: ports/s, CPU time, peak probes in flight, ratio to nmap.
# Then the agent alone holding 10,000 connections at once (banner scanner,
# services that never speak) to show its in-flight capacity.
#
#   bash bench/agent.sh            (VIGIL_BUILD=build, ADDRS=10, PORTS=1000)
#
# Not a test: it prints numbers and never fails on them.
set -euo pipefail

BUILD=${VIGIL_BUILD:-build}
ADDRS=${ADDRS:-10}
PORTS=${PORTS:-1000}
BASE=${BASE:-20001}
PREFIX=${PREFIX:-127.0.1.}
ROUNDS=${ROUNDS:-3}
AGENT=$BUILD/bin/vigil-agent
TOTAL=$((ADDRS * PORTS))
LAST=$((BASE + PORTS - 1))

command -v nmap >/dev/null || { echo "nmap missing: apt-get install -y nmap" >&2; exit 1; }
[ -x "$AGENT" ] || make -j2 "$AGENT" >/dev/null
work=$(mktemp -d /tmp/vigil-bench-agent.XXXXXX)
listener_pid=
cleanup() {
	[ -n "$listener_pid" ] && kill "$listener_pid" 2>/dev/null && wait "$listener_pid" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
cc -O2 -o "$work/agent_listen" "$(dirname "$0")/agent_listen.c"

start_listener() { # mode
	"$work/agent_listen" "$PREFIX" "$ADDRS" "$BASE" "$PORTS" "$1" >"$work/listen.out" &
	listener_pid=$!
	for _ in $(seq 100); do grep -q ready "$work/listen.out" 2>/dev/null && return; sleep 0.1; done
	echo "listener did not start" >&2; exit 1
}
stop_listener() {
	kill "$listener_pid"; wait "$listener_pid" 2>/dev/null || true; listener_pid=
}

# measure CMD...: wall-clock and CPU (user + system) seconds into $wall
# $cpu; CMD's own stderr must be redirected inside it
measure() {
	local TIMEFORMAT='%R %U %S' u sy
	{ time "$@"; } 2>"$work/time"
	read -r wall u sy < <(tail -1 "$work/time")
	cpu=$(echo "$u + $sy" | bc -l)
}

targets="${PREFIX}1-${PREFIX}${ADDRS}"
nmap_targets="${PREFIX}1-${ADDRS}"
echo "targets: $targets ports $BASE-$LAST: $TOTAL open ports, $ROUNDS rounds each"
start_listener close

agent_run() {
	"$AGENT" --targets "$targets" --allowed "${PREFIX}0/24" --allow-loopback \
		--ports "$BASE-$LAST" --rate 10000000 --per-target-rate 10000000 \
		--max-in-flight 10000 --connect-timeout-ms 2000 \
		--output "$work/agent.jsonl" 2>"$work/agent.log"
}
nmap_run() {
	nmap -sT -n -Pn -T5 --max-retries 1 --min-rate 100000 \
		-p "$BASE-$LAST" "$nmap_targets" -oG "$work/nmap.gnmap" >/dev/null 2>"$work/nmap.log"
}

best_agent=; best_nmap=
for r in $(seq "$ROUNDS"); do
	measure agent_run; a_wall=$wall; a_cpu=$cpu
	a_open=$(wc -l <"$work/agent.jsonl")
	a_peak=$(grep '"msg":"scan finished"' "$work/agent.log" | sed 's/.*"peak_in_flight":"\([0-9]*\)".*/\1/')
	measure nmap_run; n_wall=$wall; n_cpu=$cpu
	n_open=$(grep -o '[0-9]*/open/' "$work/nmap.gnmap" | wc -l)
	printf 'round %d: agent %6.3f s (%s open, cpu %.2f s, peak in flight %s)   nmap %6.3f s (%s open, cpu %.2f s)\n' \
		"$r" "$a_wall" "$a_open" "$a_cpu" "$a_peak" "$n_wall" "$n_open" "$n_cpu"
	if [ -z "$best_agent" ] || (( $(echo "$a_wall < $best_agent" | bc -l) )); then
		best_agent=$a_wall; best_agent_cpu=$a_cpu; best_agent_peak=$a_peak; best_agent_open=$a_open
	fi
	if [ -z "$best_nmap" ] || (( $(echo "$n_wall < $best_nmap" | bc -l) )); then
		best_nmap=$n_wall; best_nmap_cpu=$n_cpu; best_nmap_open=$n_open
	fi
done
stop_listener

a_rate=$(echo "$TOTAL / $best_agent" | bc -l)
n_rate=$(echo "$TOTAL / $best_nmap" | bc -l)
echo
echo "connect scan of $TOTAL open ports (best of $ROUNDS):"
printf '  vigil-agent  %8.0f ports/s  %6.3f s  cpu %.2f s  open %s  peak in flight %s\n' \
	"$a_rate" "$best_agent" "$best_agent_cpu" "$best_agent_open" "$best_agent_peak"
printf '  nmap -sT     %8.0f ports/s  %6.3f s  cpu %.2f s  open %s\n' \
	"$n_rate" "$best_nmap" "$best_nmap_cpu" "$best_nmap_open"
printf '  ratio agent/nmap: %.2fx the speed, %.2fx the CPU time\n' \
	"$(echo "$a_rate / $n_rate" | bc -l)" "$(echo "$best_agent_cpu / $best_nmap_cpu" | bc -l)"

# In-flight capacity: services that accept but never send a banner keep
# every connection open until the banner timeout.
start_listener hold
hold_run() {
	"$AGENT" --targets "$targets" --allowed "${PREFIX}0/24" --allow-loopback \
		--ports "$BASE-$LAST" --scanners tcp,banner --banner-timeout-ms 3000 \
		--rate 10000000 --per-target-rate 10000000 --max-in-flight 10000 \
		--output "$work/hold.jsonl" 2>"$work/hold.log"
}
measure hold_run
stop_listener
h_peak=$(grep '"msg":"scan finished"' "$work/hold.log" | sed 's/.*"peak_in_flight":"\([0-9]*\)".*/\1/')
printf '\nbanner wait on %d silent services: peak in flight %s, %.3f s (timeout 3 s), %s open\n' \
	"$TOTAL" "$h_peak" "$wall" "$(grep -c '"scanner":"tcp"' "$work/hold.jsonl")"
