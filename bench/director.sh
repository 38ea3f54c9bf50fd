#!/usr/bin/env bash
# The cost of the director repository (docs/trust.md#the-director-repository): check-in throughput when every answer points
# at freshly verified per-device director metadata, as a ratio against the Foundation build
# (the last revision before the director, FOUNDATION_REV) measured in the same run on the same
# kind of data set; plus the cost of building and signing one device's director chain.
#
#   bench/director.sh sqlite|postgres
#
# Environment: DEVICES (20000), CONNECTIONS (64), DURATION (15s), ROUNDS (3), THREADS (2),
# FOUNDATION_REV (62e3c6f). Needs wrk and git. Traffic goes to 127.0.0.1 only; every run is
# bounded. Each server is warmed up first (one pass issues every device's first chain), then
# rounds alternate between the two builds and medians are reported.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
backend="${1:-sqlite}"
DEVICES="${DEVICES:-20000}" CONNECTIONS="${CONNECTIONS:-64}" DURATION="${DURATION:-15s}"
ROUNDS="${ROUNDS:-3}" THREADS="${THREADS:-2}" FOUNDATION_REV="${FOUNDATION_REV:-62e3c6f}"
command -v wrk >/dev/null || { echo "error: wrk is not installed (apt-get install wrk)" >&2; exit 1; }

work=$(mktemp -d)
pids=()
dbs=()
admin_url="${FERRY_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for d in "${dbs[@]}"; do psql -q "$admin_url" -c "DROP DATABASE IF EXISTS $d" >/dev/null 2>&1 || true; done
  git worktree remove --force "$work/foundation" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "building the current revision and the Foundation revision $FOUNDATION_REV..." >&2
cargo build --release -q -p ferry -p ferry-bench
git worktree add -q --detach "$work/foundation" "$FOUNDATION_REV"
foundation_target="target/bench-foundation"
(cd "$work/foundation" && cargo build --release -q -p ferry -p ferry-bench --target-dir "$OLDPWD/$foundation_target")

# start NAME BIN_DIR PORT SEED_FLAGS... → seeds a fresh data set and starts that build's server
start() {
  local name=$1 bin=$2 port=$3; shift 3
  local db_url=""
  if [ "$backend" = postgres ]; then
    local db="ferry_bench_${name}_$$"
    psql -q "$admin_url" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
    dbs+=("$db")
    db_url="${admin_url%/*}/$db"
  fi
  mkdir -p "$work/$name"
  echo "seeding $DEVICES devices for $name ($backend)..." >&2
  "$bin/ferry-bench" seed --devices "$DEVICES" --data-dir "$work/$name/data" --database-url "$db_url" --out "$work/$name" "$@" >&2
  FERRY_LOG__LEVEL=warn FERRY_DATABASE_URL="$db_url" \
    "$bin/ferry" serve --data-dir "$work/$name/data" --listen "127.0.0.1:$port" 2>"$work/$name/server.log" &
  pids+=($!)
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/livez" >/dev/null && break; sleep 0.1; done
}
start foundation "$foundation_target/release" 18081
start director target/release 18082 --sign

# The signed data set must really carry director metadata naming a signed release.
probe=$(curl -fs -X POST -H "Authorization: Bearer $(head -1 "$work/director/tokens.txt")" \
  -H 'Content-Type: application/json' --data-binary @"$work/director/checkin.json" http://127.0.0.1:18082/device/v1/checkin)
grep -q '"director"' <<<"$probe" || { echo "error: the check-in answer has no director pointer: $probe" >&2; exit 1; }
grep -q '"offers":\[{' <<<"$probe" || { echo "error: the signed release is not offered: $probe" >&2; exit 1; }

# run DATA_DIR URL → check-in run against that server with that data set
run() { FERRY_BENCH_DIR="$1" wrk_run -s bench/checkin.lua "$2/device/v1/checkin"; }

echo "warming up (every device's first director chain is issued here)..." >&2
run "$work/foundation" http://127.0.0.1:18081 >/dev/null
run "$work/director" http://127.0.0.1:18082 >/dev/null

printf "%-6s %-10s %10s %8s %8s\n" round build req/s p50_ms p99_ms
: >"$work/results"
for r in $(seq "$ROUNDS"); do
  read -r frps fp50 fp99 < <(run "$work/foundation" http://127.0.0.1:18081)
  read -r drps dp50 dp99 < <(run "$work/director" http://127.0.0.1:18082)
  printf "%-6s %-10s %10s %8s %8s\n" "$r" foundation "$frps" "$fp50" "$fp99" "$r" director "$drps" "$dp50" "$dp99"
  echo "$frps $drps $dp50 $dp99" >>"$work/results"
done
mf=$(awk '{print $1}' "$work/results" | median)
md=$(awk '{print $2}' "$work/results" | median)
m50=$(awk '{print $3}' "$work/results" | median)
m99=$(awk '{print $4}' "$work/results" | median)
ratio=$(awk -v d="$md" -v f="$mf" 'BEGIN { printf "%.3f", d/f }')
echo
echo "backend=$backend devices=$DEVICES connections=$CONNECTIONS duration=$DURATION rounds=$ROUNDS foundation=$FOUNDATION_REV"
echo "median Foundation check-ins/s: $mf"
echo "median check-ins/s with director metadata: $md  (ratio to Foundation: $ratio)  p50: ${m50} ms  p99: ${m99} ms"
echo
target/release/ferry-bench director-cost
