# Shared helpers for e2e/cluster/{up,down}.sh. Sourced, not executed.
# shellcheck shell=bash disable=SC2034 # variables are used by the sourcing scripts

CLUSTER_SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$CLUSTER_SCRIPT_DIR/../.." && pwd)"
# State dir: certs, kubeconfigs, pids, logs, etcd data. Override for parallel
# clusters (then also override the ports).
STATE_DIR="${VIGIL_CLUSTER_DIR:-$REPO_ROOT/.cluster}"
while [[ "$STATE_DIR" == */ && "$STATE_DIR" != / ]]; do STATE_DIR="${STATE_DIR%/}"; done
[[ "$STATE_DIR" == /* ]] || STATE_DIR="$PWD/$STATE_DIR"
PID_DIR="$STATE_DIR/pids"
LOG_DIR="$STATE_DIR/logs"
PKI_DIR="$STATE_DIR/pki"

# Components in start order; down.sh stops them in reverse.
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)

# say never fails: losing a progress line (reader gone) must not abort cleanup.
say() { printf '%s: %s\n' "${LOG_PREFIX:-cluster}" "$*" >&2 2>/dev/null || true; }
die() { printf '%s: ERROR: %s\n' "${LOG_PREFIX:-cluster}" "$*" >&2; exit 1; }

# pid_of NAME -> prints the PID recorded for NAME (empty if none).
pid_of() {
  local f="$PID_DIR/$1.pid"
  [[ -f "$f" ]] || return 0
  local pid
  pid="$(tr -dc '0-9' <"$f")"
  printf '%s' "$pid"
}

# pid_is NAME PID -> true iff PID is alive AND is the NAME binary started for
# this state dir (checked through /proc/PID/exe and /proc/PID/cmdline), so a
# recycled PID is never mistaken for ours.
pid_is() {
  local name="$1" pid="$2" exe
  [[ -n "$pid" && -d "/proc/$pid" ]] || return 1
  exe="$(readlink "/proc/$pid/exe" 2>/dev/null)" || return 1
  exe="${exe% (deleted)}"
  [[ "${exe##*/}" == "$name" ]] || return 1
  # Every component is started with a flag pointing into STATE_DIR.
  tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$STATE_DIR/" || return 1
  # A zombie is not running.
  [[ "$(awk '/^State:/ {print $2}' "/proc/$pid/status" 2>/dev/null)" != "Z" ]]
}

# stop_component NAME [TIMEOUT_S]: TERM, wait, then KILL; only our own PID.
stop_component() {
  local name="$1" timeout="${2:-15}" pid i
  pid="$(pid_of "$name")"
  if [[ -z "$pid" ]]; then
    return 0
  fi
  if ! pid_is "$name" "$pid"; then
    say "$name: pid $pid is not running (or is not our $name); nothing to stop"
    rm -f "$PID_DIR/$name.pid"
    return 0
  fi
  say "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < timeout * 10; i++)); do
    pid_is "$name" "$pid" || break
    sleep 0.1
  done
  if pid_is "$name" "$pid"; then
    say "$name (pid $pid) did not exit after ${timeout}s; sending KILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      pid_is "$name" "$pid" || break
      sleep 0.1
    done
    pid_is "$name" "$pid" && die "$name (pid $pid) survived SIGKILL"
  fi
  rm -f "$PID_DIR/$name.pid"
}

stop_all() {
  local i
  for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
    stop_component "${COMPONENTS[$i]}"
  done
}

# lock_state: serialise up.sh/down.sh runs on the same state dir (e.g. two
# test suites calling `make cluster-up` at once). The lock lives outside the
# state dir, which gets removed.
lock_state() {
  local key lock
  key="$(printf '%s' "$STATE_DIR" | sha256sum | cut -c1-16)"
  lock="${TMPDIR:-/tmp}/vigil-cluster-$key.lock"
  exec 8>>"$lock"
  if ! flock -n 8; then
    say "another up.sh/down.sh is running on $STATE_DIR; waiting for it"
    flock -w 600 8 || die "timed out waiting for the lock $lock"
  fi
}
