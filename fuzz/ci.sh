#!/usr/bin/env bash
# CI's brief fuzz step: build every target and run each for 20,000 inputs or 15 s, whichever
# comes first, from the seeds. The long runs (10 million inputs per target) are recorded in
# FUZZING.md and stay out of CI.
set -euo pipefail
cd "$(dirname "$0")"

RUNS="${FUZZ_CI_RUNS:-20000}"
# Only the stable toolchain exists here; cargo-fuzz passes -Z flags, which stable rustc takes
# when RUSTC_BOOTSTRAP is set.
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

python3 seed.py
cargo fuzz build
passed=0
failed=0
for target in $(cargo fuzz list); do
  if cargo fuzz run "$target" "corpus/$target" -- \
      -runs="$RUNS" -max_total_time="${FUZZ_CI_SECONDS:-15}" -max_len=8192 -rss_limit_mb=2048 -print_final_stats=1 \
      >"target/ci-$target.log" 2>&1; then
    echo "fuzz $target: $(grep -o 'stat::number_of_executed_units: *[0-9]*' "target/ci-$target.log" | grep -o '[0-9]*$') inputs, no crash"
    passed=$((passed + 1))
  else
    echo "fuzz $target: FAILED" >&2
    tail -n 60 "target/ci-$target.log" >&2
    failed=$((failed + 1))
  fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
