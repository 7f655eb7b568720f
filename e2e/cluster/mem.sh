#!/usr/bin/env bash
# Print current (VmRSS) and peak (VmHWM) resident memory of every control-plane
# process started by e2e/cluster/up.sh, and the totals.
set -euo pipefail

LOG_PREFIX="mem.sh"
# shellcheck source=e2e/cluster/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

[[ -d "$PID_DIR" ]] || die "no cluster state in $STATE_DIR (run e2e/cluster/up.sh first)"

mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
field_kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status" 2>/dev/null; }

total_rss=0 total_hwm=0
printf '%-24s %8s %12s %12s\n' COMPONENT PID "RSS(MiB)" "PEAK(MiB)"
for c in "${COMPONENTS[@]}"; do
  pid="$(pid_of "$c")"
  if ! pid_is "$c" "$pid"; then
    printf '%-24s %8s %12s %12s\n' "$c" "${pid:--}" "not running" ""
    continue
  fi
  rss="$(field_kib "$pid" VmRSS)"; hwm="$(field_kib "$pid" VmHWM)"
  total_rss=$((total_rss + ${rss:-0})); total_hwm=$((total_hwm + ${hwm:-0}))
  printf '%-24s %8s %12s %12s\n' "$c" "$pid" "$(mib "${rss:-0}")" "$(mib "${hwm:-0}")"
done
printf '%-24s %8s %12s %12s\n' TOTAL "" "$(mib "$total_rss")" "$(mib "$total_hwm")"
