#!/usr/bin/env bash
# Check-in throughput with an active staged rollout against the same server before it, in one
# run: the same seeded fleet checks in for ROUNDS rounds, then a rollout of a new release to
# the whole fleet starts (waves 1,10,50,100; 1 % of the devices are granted, the rest wait in
# later waves), every device checks in once (the granted ones get a new director chain), and
# ROUNDS more rounds run. Each round is also measured against the server's /livez.
#
#   bench/rollout.sh sqlite|postgres
#
# Environment as bench/checkin.sh: DEVICES (100000), CONNECTIONS (64), DURATION (15s),
# ROUNDS (3), THREADS (2). Needs wrk. Traffic goes to 127.0.0.1 only and every run is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
backend="${1:-sqlite}"
DEVICES="${DEVICES:-100000}" CONNECTIONS="${CONNECTIONS:-64}" DURATION="${DURATION:-15s}"
ROUNDS="${ROUNDS:-3}" THREADS="${THREADS:-2}" PORT="${PORT:-18080}"
command -v wrk >/dev/null || { echo "error: wrk is not installed (apt-get install wrk)" >&2; exit 1; }

cargo build --release -q -p ferry -p ferry-bench
work=$(mktemp -d)
trap 'kill "${server:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
db_url=""
if [ "$backend" = postgres ]; then
  admin_url="${FERRY_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
  db="ferry_bench_$$"
  psql -q "$admin_url" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
  db_url="${admin_url%/*}/$db"
  trap 'kill "${server:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; psql -q "$admin_url" -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true' EXIT
fi

echo "seeding $DEVICES devices ($backend)..." >&2
target/release/ferry-bench seed --sign --rollout-release --devices "$DEVICES" --data-dir "$work/data" \
  --database-url "$db_url" --out "$work" >&2
FERRY_LOG__LEVEL=warn FERRY_DATABASE_URL="$db_url" \
  target/release/ferry serve --data-dir "$work/data" --listen "127.0.0.1:$PORT" 2>"$work/server.log" &
server=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/livez" >/dev/null && break; sleep 0.1; done
target/release/ferry-bench warm --url "http://127.0.0.1:$PORT" --dir "$work" --concurrency "$CONNECTIONS" >&2
export FERRY_BENCH_DIR="$work"

rounds() {
  : >"$work/$1"
  for r in $(seq "$ROUNDS"); do
    read -r lrps _ _ < <(wrk_run "http://127.0.0.1:$PORT/livez")
    read -r crps cp50 cp99 < <(wrk_run -s bench/checkin.lua "http://127.0.0.1:$PORT/device/v1/checkin")
    printf "%-8s %-6s livez %10s  checkin %10s  p50 %6s ms  p99 %6s ms\n" "$1" "$r" "$lrps" "$crps" "$cp50" "$cp99" >&2
    echo "$lrps $crps $cp50 $cp99" >>"$work/$1"
  done
}
rounds none

release=$(cat "$work/rollout-release.txt")
FERRY_URL="http://127.0.0.1:$PORT" FERRY_TOKEN_FILE="$work/data/admin-token" \
  target/release/ferry rollout create "$release" --target bench --waves 1,10,50,100 --soak 1d --quiet >&2
echo "rollout started; every device checks in once..." >&2
target/release/ferry-bench warm --url "http://127.0.0.1:$PORT" --dir "$work" --concurrency "$CONNECTIONS" >&2
rounds rollout
granted=$(FERRY_URL="http://127.0.0.1:$PORT" FERRY_TOKEN_FILE="$work/data/admin-token" \
  target/release/ferry rollout show 1 --json | grep -m1 -o '"granted": [0-9]*' | awk '{print $2}')

med() { awk -v c="$2" '{print $c}' "$work/$1" | median; }
none=$(med none 2) with=$(med rollout 2)
echo
echo "backend=$backend devices=$DEVICES connections=$CONNECTIONS duration=$DURATION rounds=$ROUNDS granted_in_wave_1=$granted"
echo "median checkin req/s: none $none  rollout $with  (rollout/none: $(awk -v a="$with" -v b="$none" 'BEGIN { printf "%.3f", a/b }'))"
echo "median livez req/s:   none $(med none 1)  rollout $(med rollout 1)"
echo "median checkin p99 ms: none $(med none 4)  rollout $(med rollout 4)"
