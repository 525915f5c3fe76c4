#!/usr/bin/env bash
# CI stage: the three k6 scenarios (loadtest/) with the real k6 against `npm run cluster` (Redis, 3 replicas and
# nginx, all on 127.0.0.1), CI-sized so the stage takes under 2 minutes. Writes each scenario's k6 summary
# (<scenario>.json from --summary-export, <scenario>.txt the printed summary), the cluster's log and summary.md
# (one table of the three) to the folder $1, stops the cluster on exit, and exits non-zero when any threshold is
# crossed (k6 exits 99) or a scenario or the cluster fails.
#
#   scripts/ci-k6.sh [out-dir]          out-dir defaults to .ci-work/k6
#   PROFILE=ci (default) | prod         latency thresholds (loadtest/lib/profile.js)
#   K6=path/to/k6                       defaults to ../shared/tools/k6 (Grafana k6 v2.2.0)
#   K6_PORT=base                        nginx port (replicas base+1…+3, metrics base+1001…+1003); random by default
#
# Server limits: the scenarios stay well under the per-socket rate limit (room-chat 1 event/s per member,
# broadcast 2/s per sender, against RATE_LIMIT_EVENTS_PER_S 50 / burst 100), 1,000 connections is far under
# MAX_CONNECTIONS, and nginx's per-IP limits are off in `npm run cluster`, so the cluster runs with its defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-.ci-work/k6}
export PROFILE=${PROFILE:-ci}
k6=${K6:-../shared/tools/k6}
started=$SECONDS
log() { echo "--- [k6 +$((SECONDS - started))s] $*"; }

[ -x "$k6" ] || { echo "k6 not found at $k6 (set K6=/path/to/k6)" >&2; exit 2; }
mkdir -p "$out"
rm -f "$out"/*.json "$out"/*.txt "$out"/summary.md "$out"/cpu.md "$out"/.times "$out"/cluster.log

# `npm run cluster` in its own process group (setsid), so the trap can stop npm, tsx, the replicas, nginx and
# Redis together even when the script is interrupted.
cluster_pid=
stop_cluster() {
  [ -n "$cluster_pid" ] || return 0
  if kill -0 -- "-$cluster_pid" 2>/dev/null; then
    kill -TERM -- "-$cluster_pid" 2>/dev/null || true
    for _ in $(seq 1 150); do kill -0 -- "-$cluster_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$cluster_pid" 2>/dev/null || true
  fi
  cluster_pid=
}
# k6 runs in the background and the script waits for it, so a signal is handled at once: k6 is interrupted (it
# still writes its summary), then the EXIT trap stops the cluster.
k6_pid=
on_signal() {
  [ -z "$k6_pid" ] || kill -INT "$k6_pid" 2>/dev/null || true
  [ -z "$k6_pid" ] || wait "$k6_pid" 2>/dev/null || true
  exit 130
}
trap stop_cluster EXIT
trap on_signal INT TERM

# CPU accounting per scenario, so a slow run can be told apart from a busy machine: k6 (this shell's reaped
# children), the cluster (its process group) and everything else (the machine's busy time minus both).
hz=$(getconf CLK_TCK)
machine_busy() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8}' /proc/stat; }
cluster_cpu() {
  local total=0 p t
  for p in $(pgrep -g "$cluster_pid" || true); do
    t=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}') || continue
    total=$((total + ${t:-0}))
  done
  echo "$total"
}
# `times` must run in this shell (a $(…) subshell has no reaped children): it writes to a file, awk reads it.
children_cpu() {
  times >"$out/.times"
  children=$(awk -v hz="$hz" 'NR == 2 { t = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] } printf "%d", t * hz }' "$out/.times")
}
ncpu=$(nproc)

base_url=
for attempt in 1 2 3 4 5; do
  port=${K6_PORT:-$((20000 + RANDOM % 20000))}
  log "npm run cluster on 127.0.0.1:$port (3 replicas), attempt $attempt"
  PORT=$port CLUSTER_REPLICAS=3 setsid npm run cluster >"$out/cluster.log" 2>&1 </dev/null &
  cluster_pid=$!
  for _ in $(seq 1 600); do
    grep -q '^cluster ready at ' "$out/cluster.log" && break
    kill -0 "$cluster_pid" 2>/dev/null || break
    sleep 0.1
  done
  if grep -q '^cluster ready at ' "$out/cluster.log"; then
    base_url=http://127.0.0.1:$port
    log "$(grep -m1 '^cluster ready at ' "$out/cluster.log")"
    break
  fi
  tail -20 "$out/cluster.log"
  stop_cluster
  # Only a taken port is worth another try (on another random port).
  grep -q 'already in use' "$out/cluster.log" && [ -z "${K6_PORT:-}" ] || break
done
[ -n "$base_url" ] || { echo "the cluster did not start" >&2; exit 1; }

# CI-sized: the scenarios' default load (1,000 clients; 2 rooms of 50 at 1 message/s each; 500 clients with 5
# senders at 2/s), shorter phases.
scenarios=(
  "connect-storm VUS=1000 RAMP_S=15 HOLD_S=10"
  "room-chat ROOMS=2 ROOM_SIZE=50 RATE=1 DURATION_S=20"
  "broadcast VUS=500 SENDERS=5 RATE=2 DURATION_S=20"
)
failed=()
for line in "${scenarios[@]}"; do
  read -r name params <<<"$line"
  args=()
  for p in $params; do args+=(-e "$p"); done
  # The load average says whether something else competed for the cores (the thresholds assume it did not).
  log "k6 run loadtest/$name.js ($params, PROFILE=$PROFILE); load average $(cut -d' ' -f1-3 /proc/loadavg)"
  children_cpu
  t0=$SECONDS busy0=$(machine_busy) cl0=$(cluster_cpu) k0=$children
  "$k6" run --quiet --no-color --no-usage-report --summary-export "$out/$name.json" \
    -e BASE_URL="$base_url" -e PROFILE="$PROFILE" "${args[@]}" "loadtest/$name.js" >"$out/$name.txt" 2>&1 &
  k6_pid=$!
  rc=0
  wait "$k6_pid" || rc=$?
  k6_pid=
  cat "$out/$name.txt"
  children_cpu
  wall=$((SECONDS - t0)) busy=$(($(machine_busy) - busy0)) cl=$(($(cluster_cpu) - cl0)) k=$((children - k0))
  cpu_line=$(awk -v w="$wall" -v hz="$hz" -v b="$busy" -v c="$cl" -v k="$k" -v n="$ncpu" -v s="$name" 'BEGIN {
    d = (w > 0 ? w : 1) * hz; o = b - c - k; if (o < 0) o = 0
    printf "%s: %d s, cores busy %.2f of %d: k6 %.2f, cluster %.2f, other processes %.2f", s, w, b / d, n, k / d, c / d, o / d }')
  log "$cpu_line"
  echo "- $cpu_line" >>"$out/cpu.md"
  case $rc in
    0) ;;
    99) failed+=("$name (threshold crossed)") ;;
    *) failed+=("$name (k6 exit $rc)") ;;
  esac
  if ! kill -0 "$cluster_pid" 2>/dev/null; then
    failed+=("the cluster stopped during $name")
    tail -30 "$out/cluster.log"
    break
  fi
done

stop_cluster
rm -f "$out/.times"
{ npx tsx loadtest/summarize.ts "$out" && echo && cat "$out/cpu.md"; } | tee "$out/summary.md"
log "done in $((SECONDS - started)) s (load average $(cut -d' ' -f1-3 /proc/loadavg)); summaries in $out"
if [ ${#failed[@]} -gt 0 ]; then
  printf 'k6 FAILED: %s\n' "${failed[@]}" >&2
  exit 1
fi
