#!/usr/bin/env bash
# Check-in throughput and latency with many enrolled devices, as a ratio against the server's
# own trivial liveness endpoint measured in the same run.
#
#   bench/checkin.sh sqlite            # SQLite in a fresh data directory
#   bench/checkin.sh postgres          # a fresh database on FERRY_BENCH_POSTGRES_URL's server
#
# Environment: DEVICES (100000), CONNECTIONS (64), DURATION (15s), ROUNDS (3), THREADS (2),
# FERRY_BIN (target/release/ferry: set it to measure another build's server against the same
# seeded data, e.g. the build before a change; ferry-bench always comes from this tree).
# Every device is checked in once first (`ferry-bench warm`): that first-contact rate, which
# includes issuing each device's director chain, is reported on its own line. Every run prints
# the count of answers per HTTP status and fails on any that is not 2xx.
# Needs wrk (Debian package `wrk`). Traffic goes to 127.0.0.1 only and every run is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
backend="${1:-sqlite}"
DEVICES="${DEVICES:-100000}" CONNECTIONS="${CONNECTIONS:-64}" DURATION="${DURATION:-15s}"
ROUNDS="${ROUNDS:-3}" THREADS="${THREADS:-2}" PORT="${PORT:-18080}"
FERRY_BIN="${FERRY_BIN:-target/release/ferry}"
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
target/release/ferry-bench seed --sign --devices "$DEVICES" --data-dir "$work/data" --database-url "$db_url" --out "$work" >&2

FERRY_LOG__LEVEL=warn FERRY_DATABASE_URL="$db_url" \
  "$FERRY_BIN" serve --data-dir "$work/data" --listen "127.0.0.1:$PORT" 2>"$work/server.log" &
server=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/livez" >/dev/null && break; sleep 0.1; done

run() { wrk_run "$@"; }

# Every device's first check-in issues its director chain (signing three files): check each
# device in once first, report that rate on its own, and measure steady state after it.
echo "first contact of every device..." >&2
first=$(target/release/ferry-bench warm --url "http://127.0.0.1:$PORT" --dir "$work" --concurrency "$CONNECTIONS")
echo "$first" >&2

export FERRY_BENCH_DIR="$work"
printf "%-6s %-8s %10s %8s %8s\n" round endpoint req/s p50_ms p99_ms
: >"$work/results"
for r in $(seq "$ROUNDS"); do
  read -r lrps lp50 lp99 < <(run "http://127.0.0.1:$PORT/livez")
  read -r crps cp50 cp99 < <(run -s bench/checkin.lua "http://127.0.0.1:$PORT/device/v1/checkin")
  printf "%-6s %-8s %10s %8s %8s\n" "$r" livez "$lrps" "$lp50" "$lp99" "$r" checkin "$crps" "$cp50" "$cp99"
  echo "$lrps $crps $cp50 $cp99" >>"$work/results"
done
ml=$(awk '{print $1}' "$work/results" | median)
mc=$(awk '{print $2}' "$work/results" | median)
m50=$(awk '{print $3}' "$work/results" | median)
m99=$(awk '{print $4}' "$work/results" | median)
ratio=$(awk -v c="$mc" -v l="$ml" 'BEGIN { printf "%.3f", c/l }')
echo
echo "server=$FERRY_BIN backend=$backend devices=$DEVICES connections=$CONNECTIONS duration=$DURATION rounds=$ROUNDS"
echo "median livez req/s: $ml"
echo "median checkin req/s: $mc  (ratio to livez: $ratio)  p50: ${m50} ms  p99: ${m99} ms"
echo "$first"
