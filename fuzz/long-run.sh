#!/usr/bin/env bash
# The long fuzz runs recorded in FUZZING.md: one target at a time, one job, lowest priority.
#   bash fuzz/long-run.sh [target[:seconds]]...    (default: every target, no time cap)
# Each run stops at 10 million inputs (or at its time cap) and its final stats go to
# fuzz/runs/<target>.log; a summary line per target goes to fuzz/runs/summary.tsv.
set -euo pipefail
cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=1
# Allocation stack traces are only for reports; skipping them makes each input cheaper.
export ASAN_OPTIONS="${ASAN_OPTIONS:-malloc_context_size=0}"
RUNS="${FUZZ_RUNS:-10000000}"
mkdir -p runs
python3 seed.py >/dev/null
cargo fuzz build
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)
for spec in "${targets[@]}"; do
  target="${spec%%:*}"
  cap=()
  [ "$spec" != "$target" ] && cap=("-max_total_time=${spec#*:}")
  log="runs/$target.log"
  start=$(date +%s)
  set +e
  nice -n 19 cargo fuzz run "$target" "corpus/$target" -- \
    -runs="$RUNS" "${cap[@]}" -max_len=8192 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1
  rc=$?
  set -e
  secs=$(( $(date +%s) - start ))
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$target" "$execs" "$secs" "$(( execs / (secs > 0 ? secs : 1) ))" \
    "$rc" "$(date -u +%FT%TZ)" | tee -a runs/summary.tsv
done
