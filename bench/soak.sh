#!/usr/bin/env bash
# A bounded soak: CONNECTIONS devices' worth of mixed traffic (check-ins, status events and
# downloads, see bench/soak.lua) against one `ferry serve` for DURATION, then a report: the
# count of answers per HTTP status, wrk's socket errors, throughput and latency, the server's
# memory at the start and the end, and the warnings and errors it logged. Fails if any answer
# was not 2xx or a request failed.
#
#   bench/soak.sh                  # DURATION=10m CONNECTIONS=64 DEVICES=20000 ARTIFACT_KIB=256
#   DURATION=30s bench/soak.sh     # a short smoke run
#
# Needs wrk (Debian package `wrk`). Traffic goes to 127.0.0.1 only; the run ends by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
DURATION="${DURATION:-10m}" CONNECTIONS="${CONNECTIONS:-64}" THREADS="${THREADS:-2}"
DEVICES="${DEVICES:-20000}" ARTIFACT_KIB="${ARTIFACT_KIB:-256}" PORT="${PORT:-18085}"
command -v wrk >/dev/null || { echo "error: wrk is not installed (apt-get install wrk)" >&2; exit 1; }

cargo build --release -q -p ferry -p ferry-bench
work=$(mktemp -d)
trap 'kill "${server:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

head -c "$((ARTIFACT_KIB * 1024))" /dev/urandom >"$work/artifact.bin"
echo "seeding $DEVICES devices..." >&2
target/release/ferry-bench seed --sign --devices "$DEVICES" --data-dir "$work/data" --out "$work" \
  --artifact "$work/artifact.bin" >&2
FERRY_LOG__LEVEL=warn target/release/ferry serve --data-dir "$work/data" --listen "127.0.0.1:$PORT" \
  2>"$work/server.log" &
server=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/livez" >/dev/null && break; sleep 0.1; done
rss() { awk '/^VmRSS/ {printf "%.1f", $2/1024}' "/proc/$server/status"; }

# Every device's first check-in issues its director chain: take that out of the soak.
target/release/ferry-bench warm --url "http://127.0.0.1:$PORT" --dir "$work" --concurrency "$CONNECTIONS"
rss_start=$(rss)
echo "soaking for $DURATION with $CONNECTIONS connections..." >&2
export FERRY_BENCH_DIR="$work" THREADS
out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --timeout 10s --latency -s bench/soak.lua \
  "http://127.0.0.1:$PORT")
rss_end=$(rss)
kill -0 "$server" 2>/dev/null || { echo "error: the server died during the soak" >&2; cat "$work/server.log" >&2; exit 1; }

statuses=$(grep '^statuses:' <<<"$out" || echo "statuses: (none counted)")
socket=$(grep -o 'Socket errors:.*' <<<"$out" || echo "Socket errors: none")
logged=$(grep -ciE '"level":"(WARN|ERROR)"| WARN | ERROR ' "$work/server.log" || true)
echo
echo "duration=$DURATION connections=$CONNECTIONS threads=$THREADS devices=$DEVICES artifact=${ARTIFACT_KIB}KiB"
echo "requests: $(awk '/requests in/ {print $1}' <<<"$out")  req/s: $(awk '/^Requests\/sec/ {print $2}' <<<"$out")" \
  " p50: $(to_ms "$(awk '$1=="50%" {print $2}' <<<"$out")") ms  p99: $(to_ms "$(awk '$1=="99%" {print $2}' <<<"$out")") ms" \
  " max: $(to_ms "$(awk '$1=="Latency" {print $4}' <<<"$out")") ms"
echo "$statuses"
echo "$socket"
echo "server RSS: ${rss_start} MiB after the warm-up, ${rss_end} MiB at the end; warnings/errors logged: $logged"
if grep -q "Non-2xx" <<<"$out" || grep -qE '(^| )[013-9][0-9][0-9]=' <<<"${statuses#statuses:}"; then
  echo "error: non-2xx answers during the soak" >&2; grep -iE 'WARN|ERROR' "$work/server.log" | head -20 >&2; exit 1
fi
if grep -q 'Socket errors' <<<"$out"; then echo "error: requests failed during the soak" >&2; exit 1; fi
echo "soak passed: every answer was 2xx"
