#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 600), one after the other, at the lowest
# CPU priority. Needs cargo-fuzz (`cargo install cargo-fuzz`); works on the stable toolchain
# (RUSTC_BOOTSTRAP lets cargo fuzz use the sanitizer flags it needs).
#
#   fuzz/run.sh [SECONDS] [TARGET...]
#
# Corpora grow in fuzz/corpus/TARGET, crashes land in fuzz/artifacts/TARGET, each target's
# output in fuzz/logs/TARGET.log. Prints one line per target (runs, corpus size, crash or
# not) and exits non-zero if any target crashed: turn each crash into a regular test in the
# crate that owns the code, then fix it.
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_EACH="${1:-600}"
shift || true
command -v cargo-fuzz >/dev/null || { echo "error: cargo-fuzz is not installed (cargo install cargo-fuzz)" >&2; exit 1; }
export RUSTC_BOOTSTRAP=1
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)

# Its own target directory: the instrumented builds never mix with the workspace's.
export CARGO_TARGET_DIR="$PWD/target"
nice -n 19 cargo fuzz build -O
mkdir -p logs
failed=0
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  status=ok
  nice -n 19 cargo fuzz run -O "$t" "corpus/$t" -- -max_total_time="$SECONDS_EACH" -max_len=65536 \
    -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 >"logs/$t.log" 2>&1 || status=CRASH
  runs=$(awk '/stat::number_of_executed_units/ {print $2}' "logs/$t.log" | tail -1)
  printf "%-16s %8ss  %12s runs  corpus %5s files  %s\n" "$t" "$SECONDS_EACH" "${runs:-?}" \
    "$(find "corpus/$t" -type f | wc -l)" "$status"
  if [ "$status" != ok ]; then
    failed=1
    grep -m1 -A3 "ERROR\|panicked" "logs/$t.log" >&2 || true
    ls "artifacts/$t" >&2
  fi
done
exit "$failed"
