#!/usr/bin/env bash
# Stop the local control plane started by e2e/cluster/up.sh and remove its
# state dir (.cluster/). Only the processes recorded in .cluster/pids/ are
# stopped, each after checking (via /proc/PID/exe and /proc/PID/cmdline) that
# the PID still is the binary up.sh started: TERM, then KILL after a timeout.
# Never kills by name.
set -euo pipefail

LOG_PREFIX="down.sh"
# shellcheck source=e2e/cluster/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
lock_state

if [[ ! -d "$STATE_DIR" ]]; then
  say "no cluster state in $STATE_DIR; nothing to do"
  exit 0
fi

stop_all

# Anything left in pids/ is a file we do not know; refuse to delete state that
# may belong to a still-running process.
leftover=()
for f in "$PID_DIR"/*.pid; do
  [[ -e "$f" ]] && leftover+=("$f")
done
if ((${#leftover[@]})); then
  die "unexpected pid files left: ${leftover[*]} (not removing $STATE_DIR)"
fi

rm -rf "$STATE_DIR"
say "cluster stopped; removed $STATE_DIR"
