#!/usr/bin/env bash
# restart.sh COMPONENT [DOWNTIME_S]: stop one component of the running local
# control plane by PID, optionally stay down a while, and start it again
# with exactly the command line up.sh used. For tests of how clients survive
# an API server (or etcd, scheduler, ...) restart.
set -euo pipefail
LOG_PREFIX=restart
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

name=${1:?usage: restart.sh COMPONENT [DOWNTIME_S]}
downtime=${2:-0}
args_file=$PID_DIR/$name.args
[[ " ${COMPONENTS[*]} " == *" $name "* ]] || die "unknown component $name (one of: ${COMPONENTS[*]})"
[[ -f "$args_file" ]] || die "$name was not started by up.sh in $STATE_DIR"
. "$STATE_DIR/env"
bin="$VIGIL_CLUSTER_BIN_DIR/$name"

lock_state
stop_component "$name"
sleep "$downtime"
mapfile -d '' args <"$args_file"
setsid "$bin" "${args[@]}" </dev/null >>"$LOG_DIR/$name.log" 2>&1 8>&- &
pid=$!
printf '%s\n' "$pid" >"$PID_DIR/$name.pid"
for ((i = 0; i < 300; i++)); do
  pid_is "$name" "$pid" || [[ -d /proc/$pid ]] || die "$name exited on restart; see $LOG_DIR/$name.log"
  if [[ $name != kube-apiserver ]] ||
    [[ "$(kubectl --kubeconfig="$KUBECONFIG" --request-timeout=5s get --raw /readyz 2>/dev/null)" == ok ]]; then
    say "$name restarted (pid $pid)"
    exit 0
  fi
  sleep 0.2
done
die "$name not ready 60 s after restart"
