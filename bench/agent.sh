#!/usr/bin/env bash
# The device agent against its goals: stripped binary size, idle memory after ten check-ins,
# CPU while idle between check-ins, and download throughput as a ratio against curl fetching
# the same target from the same server in the same run.
#
#   bench/agent.sh               # SIZE_MIB=512 ROUNDS=5 IDLE_SECS=30 CHECKINS=10 PORT=18090
#   AGENT_BIN=PATH bench/agent.sh    # measure that build of the agent (e.g. another profile)
#   KEEP=1 bench/agent.sh            # keep the work directory (logs, configs) for a look
#
# 1. Size: `cargo build --profile agent -p ferry-agent` alone (the workspace's size-tuned
#    profile for the device binary; alone so its dependencies' features do not unify with the
#    server's), then `strip` a copy. That stripped copy is the agent every
#    measurement below runs.
# 2. Memory: `ferry-agent run --no-initial-jitter` in a group with a 1 s check-in interval and
#    no jitter (the server's default interval, set so: groups cannot go under 60 s) installs a
#    small release (tar.gz, `dir` handler), then checks in until CHECKINS more check-ins have
#    ended (counted from its info log); VmRSS and VmHWM are read between two check-ins.
# 3. Idle CPU: the same daemon's group is set to 1 h; once the check-ins have stopped,
#    utime+stime (all threads) and each thread's schedstat are read, and again IDLE_SECS later.
# 4. Download: a random SIZE_MIB file is published as a required release (application/
#    octet-stream) installed by a `command` handler that exits 0 at once. Each round enrolls a
#    new device and times `ferry-agent check` from start to exit (enroll, check-in, director
#    and image metadata, download hashed with SHA-256 as it arrives (a complete download is not
#    fsynced: the agent hashes it again after any restart), install, commit, report; peak RSS with
#    GNU time when installed), then curl fetches the same TUF target URL into a file on the
#    same disk with another device's credential: alone, then followed by `sha256sum`, then by
#    `openssl dgst -sha256` (when installed). The CPU time of the agent's check and of the plain
#    curl fetch (user+sys, bash's `time`) and the server's over each (utime+stime from /proc)
#    show what each transfer costs and how many cores it kept busy. Medians over ROUNDS.
#
# Needs curl, strip, tar and sha256sum. Traffic goes to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
SIZE_MIB="${SIZE_MIB:-512}" ROUNDS="${ROUNDS:-5}" PORT="${PORT:-18090}" IDLE_SECS="${IDLE_SECS:-30}"
CHECKINS="${CHECKINS:-10}"
for tool in curl strip tar sha256sum; do
  command -v "$tool" >/dev/null || { echo "error: $tool is not installed" >&2; exit 1; }
done

# --- 1. size -------------------------------------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/ferry-agent-bench.XXXXXX")
cleanup() {
  [ -n "${daemon:-}" ] && kill "$daemon" 2>/dev/null
  [ -n "${server:-}" ] && kill "$server" 2>/dev/null
  wait 2>/dev/null || true
  if [ -n "${KEEP:-}" ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# AGENT_BIN=PATH measures that build of the agent instead (e.g. one made with another profile).
if [ -n "${AGENT_BIN:-}" ]; then
  cp "$AGENT_BIN" "$work/ferry-agent.unstripped"
else
  cargo build --profile agent -q -p ferry-agent
  cp target/agent/ferry-agent "$work/ferry-agent.unstripped"
fi
cp "$work/ferry-agent.unstripped" "$work/ferry-agent"
strip "$work/ferry-agent"
agent="$work/ferry-agent"
size_unstripped=$(stat -c %s "$work/ferry-agent.unstripped")
size=$(stat -c %s "$agent")
cargo build --release -q -p ferry
ferry="$PWD/target/release/ferry"
"$agent" --version >&2

# --- server and fleet ----------------------------------------------------------------------
# Groups may not check in more often than once a minute, but the server's default interval (for
# groups that set none) may be anything: 1 s, no jitter, for the check-in count of part 2.
FERRY_CHECKIN__INTERVAL_SECS=1 FERRY_CHECKIN__JITTER=0 FERRY_LOG__LEVEL=warn "$ferry" serve --data-dir "$work/data" --listen "127.0.0.1:$PORT" 2>"$work/server.log" &
server=$!
url="http://127.0.0.1:$PORT"
for _ in $(seq 100); do curl -fs "$url/livez" >/dev/null && break; sleep 0.1; done
curl -fs "$url/livez" >/dev/null || { echo "error: the server did not start" >&2; cat "$work/server.log" >&2; exit 1; }

export FERRY_URL="$url" FERRY_TOKEN_FILE="$work/data/admin-token" KEY_PASSPHRASE="bench passphrase"
# Cheap key sealing for the CLI's offline keys: not what this benchmark measures.
export FERRY_INSECURE_FAST_KEY_SEALING=1
unset FERRY_TOKEN
cli() { (cd "$work" && "$ferry" "$@"); }
cli product create app >/dev/null
cli platform create linux-x86_64 >/dev/null
key_fast=$(cli group create fast --quiet)   # the server's default: 1 s
key_dl=$(cli group create dl --interval 1h --jitter 0 --quiet)
for k in root targets; do cli key generate --out "$k.key" --passphrase-env KEY_PASSPHRASE >/dev/null; done
cli trust online-keys --out online-keys.json >/dev/null
cli root create --root-key root.key.pub --targets-key targets.key.pub --online-keys online-keys.json --out root.json >/dev/null
cli metadata sign root.json --key root.key --passphrase-env KEY_PASSPHRASE >/dev/null
cli trust push root.json >/dev/null
curl -fsS -H "authorization: Bearer $(cat "$FERRY_TOKEN_FILE")" "$url/tuf/director/root.json" >"$work/director-root.json"

# publish FILE VERSION GROUP MEDIA_TYPE → signed, approved, required release
publish() {
  local id
  id=$(cli release publish --product app --version "$2" --platform linux-x86_64 --artifact "$1" \
       --media-type "$4" --required --quiet)
  cli release sign "$id" --key targets.key --passphrase-env KEY_PASSPHRASE >/dev/null
  cli approve "$id" --group "$3" >/dev/null
}

# device ID ENROLLMENT_KEY HANDLER_TOML → path of its config (info log, state in DIR/state)
device() {
  local dir="$work/devices/$1"
  mkdir -p "$dir"
  cat >"$dir/agent.toml" <<EOF
server_url = "$url"
platform = "linux-x86_64"
device_id = "$1"
enrollment_key = "$2"
state_dir = "$dir/state"
log_level = "info"
[trust]
image_root = "$work/root.json"
director_root = "$work/director-root.json"
[checkin]
initial_jitter_secs = 0
[[handler]]
product = "app"
$3
EOF
  echo "$dir/agent.toml"
}

# --- 2. idle memory after ten check-ins ----------------------------------------------------
mkdir -p "$work/src"
head -c $((1024 * 1024)) /dev/urandom >"$work/src/payload.bin"
echo "1.0" >"$work/src/VERSION"
tar -C "$work/src" -czf "$work/app-1.0.tar.gz" payload.bin VERSION
publish "$work/app-1.0.tar.gz" 1.0 fast application/gzip

cfg=$(device idle-1 "$key_fast" "type = \"dir\"
root = \"$work/devices/idle-1/opt/app\"")
"$agent" --config "$cfg" run --no-initial-jitter 2>"$work/daemon.log" &
daemon=$!
checks() { grep -c ' result=' "$work/daemon.log" || true; }
# The install is the first check; then CHECKINS more.
deadline=$((SECONDS + 60 + 3 * CHECKINS))
while [ "$(checks)" -lt $((CHECKINS + 1)) ]; do
  [ $SECONDS -lt $deadline ] || { echo "error: only $(checks) check-ins in time" >&2; cat "$work/daemon.log" >&2; exit 1; }
  kill -0 "$daemon" 2>/dev/null || { echo "error: the daemon exited" >&2; cat "$work/daemon.log" >&2; exit 1; }
  sleep 0.1
done
sleep 0.3   # between two check-ins (1 s apart)
[ "$(readlink "$work/devices/idle-1/opt/app/current")" = versions/1.0 ] \
  || { echo "error: release 1.0 was not installed" >&2; cat "$work/daemon.log" >&2; exit 1; }
status() { awk -v k="$1:" '$1==k {print $2}' "/proc/$daemon/status"; }
rss=$(status VmRSS) hwm=$(status VmHWM)
checks_at_rss=$(checks)

# --- 3. CPU while idle ---------------------------------------------------------------------
cli group set fast --interval 1h --jitter 0 >/dev/null
# A check-in under way may still have been told 1 s; the next one is told 1 h. Wait until the
# check-ins stop (none for 3 s).
n=$(checks) quiet=0
deadline=$((SECONDS + 30))
while [ $quiet -lt 30 ]; do
  [ $SECONDS -lt $deadline ] || { echo "error: the check-ins went on after the interval change" >&2; cat "$work/daemon.log" >&2; exit 1; }
  sleep 0.1
  m=$(checks)
  if [ "$m" = "$n" ]; then quiet=$((quiet + 1)); else n=$m quiet=0; fi
done
ticks() { awk '{print $14 + $15}' "/proc/$daemon/stat"; }   # all threads, exited ones too
# Per thread: "TID NS_ON_CPU TIMESLICES" (schedstat), so that a thread that exits in the window
# does not count negatively.
sched() { for t in /proc/"$daemon"/task/*; do echo "${t##*/} $(cat "$t/schedstat" 2>/dev/null)"; done; }
n=$(checks) t0=$(ticks) s0=$(sched) threads0=$(status Threads)
sleep "$IDLE_SECS"
t1=$(ticks) s1=$(sched) threads1=$(status Threads)
# Run time and timeslices (wake-ups) in the window of the threads alive at its end.
read -r idle_ns idle_slices < <(awk 'NR==FNR {ns[$1]=$2; sl[$1]=$4; next} {a += $2 - ns[$1]; b += $4 - sl[$1]} END {print a+0, b+0}' \
  <(echo "$s0") <(echo "$s1"))
idle_checks=$(( $(checks) - n ))
rss_after_idle=$(status VmRSS)
kill "$daemon"; wait "$daemon" 2>/dev/null || true; daemon=

# --- 4. download throughput ----------------------------------------------------------------
bytes=$((SIZE_MIB * 1024 * 1024))
head -c "$bytes" /dev/urandom >"$work/big.bin"
sha=$(sha256sum "$work/big.bin" | cut -d' ' -f1)
publish "$work/big.bin" 2.0 dl application/octet-stream
rm -f "$work/big.bin"
target_url="$url/tuf/image/targets/app/2.0/$sha.big.bin"
printf '#!/bin/sh\nexit 0\n' >"$work/install-noop.sh"
chmod 755 "$work/install-noop.sh"
handler="type = \"command\"
argv = [\"$work/install-noop.sh\"]"

# curl's device: enrolled in the same group and checked in once, so that it is entitled to
# the target (a device that installed it is offered it no more).
cred=$(curl -fsS -H 'content-type: application/json' \
  -d "{\"device_id\":\"curl-1\",\"enrollment_key\":\"$key_dl\"}" "$url/device/v1/enroll" |
  sed -n 's/.*"credential" *: *"\([^"]*\)".*/\1/p')
[ -n "$cred" ] || { echo "error: enrolling curl's device failed" >&2; exit 1; }
curl -fsS -o /dev/null -H "authorization: Bearer $cred" -H 'content-type: application/json' \
  -d '{"platform":"linux-x86_64"}' "$url/device/v1/checkin"

now() { date +%s.%N; }
openssl=$(command -v openssl || true)
# GNU time, when there, for the check's peak RSS (it adds a fork and a wait4).
timed() { local out=$1; shift; if [ -x /usr/bin/time ]; then /usr/bin/time -f %M -o "$out" "$@"; else "$@"; fi; }
# The log's timestamp of the first line matching $2 in $1, as seconds.
logtime() { date -d "$(grep -m1 "$2" "$1" | cut -d' ' -f1)" +%s.%N; }
mkdir -p "$work/curl"
: >"$work/results"
# Warm-up: one fetch, so that every round reads the server's content store from the page cache.
curl -fsS -o "$work/curl/warm.bin" -H "authorization: Bearer $cred" "$target_url"
rm -f "$work/curl/warm.bin"
# CPU time: the client's user+sys (bash's `time`, children included) and the server's (its
# utime+stime ticks before and after), in seconds.
TIMEFORMAT='%3U %3S'
server_ticks() { awk '{print $14 + $15}' "/proc/$server/stat"; }
cpu_of() { awk '{u = $1; s = $2} END {printf "%.3f", u + s}' "$1"; }
server_cpu() { awk -v a="$1" -v b="$(server_ticks)" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.2f", (b - a) / hz}'; }
printf "%-6s %11s %10s %14s %15s %14s %13s %15s %21s %21s\n" round "agent MB/s" "curl MB/s" "+sha256sum MB/s" "+openssl MB/s" "agent dl MB/s" "after dl (s)" "agent peak RSS" "CPU agent+server (s)" "CPU curl+server (s)"
for r in $(seq "$ROUNDS"); do
  cfg=$(device "dl-$r" "$key_dl" "$handler")
  sync
  t=$(server_ticks) s=$(now)
  code=0; { time timed "$work/devices/dl-$r/maxrss" "$agent" --config "$cfg" check >"$work/devices/dl-$r/check.out" 2>"$work/devices/dl-$r/check.log"; } 2>"$work/cpu" || code=$?
  e=$(now)
  agent_cpu=$(cpu_of "$work/cpu") agent_server_cpu=$(server_cpu "$t")
  [ "$code" = 4 ] || { echo "error: ferry-agent check exited $code (4 expected)" >&2; cat "$work/devices/dl-$r/check.log" >&2; exit 1; }
  log="$work/devices/dl-$r/check.log"
  # Download (request to verified .part renamed, hashing as it goes) and what follows it (the
  # handler, commit, removing the download, report), from the agent's log.
  dl=$(awk -v b="$bytes" -v s="$(logtime "$log" 'update starts')" -v e="$(logtime "$log" 'target downloaded and verified')" 'BEGIN {printf "%.0f", b / (e - s)}')
  post=$(awk -v s="$(logtime "$log" 'target downloaded and verified')" -v e="$(logtime "$log" 'update committed')" 'BEGIN {printf "%.4f", e - s}')
  peak=$(tail -n1 "$work/devices/dl-$r/maxrss" 2>/dev/null || true)   # kB
  [[ "$peak" =~ ^[0-9]+$ ]] || peak=0
  rm -rf "$work/devices/dl-$r/state"   # its download is gone already; keep the disk tidy
  a=$(awk -v b="$bytes" -v s="$s" -v e="$e" 'BEGIN {printf "%.0f", b / (e - s)}')

  sync
  t=$(server_ticks) s=$(now)
  { time curl -fsS -o "$work/curl/big.bin" -H "authorization: Bearer $cred" "$target_url"; } 2>"$work/cpu"
  e=$(now)
  curl_cpu=$(cpu_of "$work/cpu") curl_server_cpu=$(server_cpu "$t")
  c=$(awk -v b="$bytes" -v s="$s" -v e="$e" 'BEGIN {printf "%.0f", b / (e - s)}')
  rm -f "$work/curl/big.bin"

  sync
  s=$(now)
  curl -fsS -o "$work/curl/big.bin" -H "authorization: Bearer $cred" "$target_url" && got=$(sha256sum "$work/curl/big.bin" | cut -d' ' -f1)
  e=$(now)
  [ "$got" = "$sha" ] || { echo "error: curl fetched a different file" >&2; exit 1; }
  ch=$(awk -v b="$bytes" -v s="$s" -v e="$e" 'BEGIN {printf "%.0f", b / (e - s)}')
  rm -f "$work/curl/big.bin"

  # The same with OpenSSL's SHA-256 (SHA-NI where the CPU has it, as ring uses).
  oh=0
  if [ -n "$openssl" ]; then
    sync
    s=$(now)
    curl -fsS -o "$work/curl/big.bin" -H "authorization: Bearer $cred" "$target_url" && got=$(openssl dgst -sha256 -r "$work/curl/big.bin" | cut -d' ' -f1)
    e=$(now)
    [ "$got" = "$sha" ] || { echo "error: curl fetched a different file" >&2; exit 1; }
    oh=$(awk -v b="$bytes" -v s="$s" -v e="$e" 'BEGIN {printf "%.0f", b / (e - s)}')
    rm -f "$work/curl/big.bin"
  fi

  printf "%-6s %11.1f %10.1f %14.1f %15.1f %14.1f %13.2f %11.1f MiB %21s %21s\n" "$r" "$(awk -v b="$a" 'BEGIN{print b/1e6}')" \
    "$(awk -v b="$c" 'BEGIN{print b/1e6}')" "$(awk -v b="$ch" 'BEGIN{print b/1e6}')" "$(awk -v b="$oh" 'BEGIN{print b/1e6}')" \
    "$(awk -v b="$dl" 'BEGIN{print b/1e6}')" "$post" "$(awk -v k="$peak" 'BEGIN{print k/1024}')" \
    "$agent_cpu + $agent_server_cpu" "$curl_cpu + $curl_server_cpu"
  echo "$a $c $ch $dl $post $peak $oh $agent_cpu $agent_server_cpu $curl_cpu $curl_server_cpu" >>"$work/results"
done
ma=$(awk '{print $1}' "$work/results" | median)
mc=$(awk '{print $2}' "$work/results" | median)
mh=$(awk '{print $3}' "$work/results" | median)
mdl=$(awk '{print $4}' "$work/results" | median)
mpost=$(awk '{print $5}' "$work/results" | median)
mpeak=$(awk '{print $6}' "$work/results" | median)
mo=$(awk '{print $7}' "$work/results" | median)
m_agent_cpu=$(awk '{print $8}' "$work/results" | median) m_agent_srv=$(awk '{print $9}' "$work/results" | median)
m_curl_cpu=$(awk '{print $10}' "$work/results" | median) m_curl_srv=$(awk '{print $11}' "$work/results" | median)

# --- report --------------------------------------------------------------------------------
hz=$(getconf CLK_TCK)
echo
echo "ferry-agent${AGENT_BIN:+ $AGENT_BIN,} commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- crates Cargo.toml Cargo.lock 2>/dev/null || echo ' (+ uncommitted changes)'), size=${SIZE_MIB}MiB rounds=$ROUNDS"
printf "| %-48s | %-28s | %-12s |\n" measurement value goal
printf "| %-48s | %-28s | %-12s |\n" "----" "----" "----"
mib() { awk -v b="$1" 'BEGIN {printf "%.2f MiB", b / 1048576}'; }
printf "| %-48s | %-28s | %-12s |\n" "binary, stripped" "$size B ($(mib "$size"))" "<= 5 MiB"
printf "| %-48s | %-28s | %-12s |\n" "binary, unstripped" "$size_unstripped B ($(mib "$size_unstripped"))" ""
printf "| %-48s | %-28s | %-12s |\n" "VmRSS after install + $CHECKINS check-ins" "$(mib $((rss * 1024))) ($rss kB)" "<= 10 MiB"
printf "| %-48s | %-28s | %-12s |\n" "VmHWM (peak RSS) then" "$(mib $((hwm * 1024))) ($hwm kB)" ""
printf "| %-48s | %-28s | %-12s |\n" "VmRSS after the idle window" "$(mib $((rss_after_idle * 1024))) ($rss_after_idle kB)" ""
printf "| %-48s | %-28s | %-12s |\n" "CPU ticks in ${IDLE_SECS} s idle (USER_HZ=$hz)" "$((t1 - t0))" "0"
printf "| %-48s | %-28s | %-12s |\n" "CPU time / timeslices in the window (schedstat)" "$idle_ns ns / $idle_slices" ""
printf "| %-48s | %-28s | %-12s |\n" "check-ins in the idle window" "$idle_checks" "0"
printf "| %-48s | %-28s | %-12s |\n" "threads at the window's start / end" "$threads0 / $threads1" ""
awk -v a="$ma" -v c="$mc" -v h="$mh" -v d="$mdl" -v p="$mpost" -v k="$mpeak" -v o="$mo" 'BEGIN {
  printf "| %-48s | %-28s | %-12s |\n", "download: agent check, median", sprintf("%.1f MB/s", a/1e6), ""
  printf "| %-48s | %-28s | %-12s |\n", "download: curl -o FILE, median", sprintf("%.1f MB/s", c/1e6), ""
  printf "| %-48s | %-28s | %-12s |\n", "download: curl -o FILE && sha256sum, median", sprintf("%.1f MB/s", h/1e6), ""
  printf "| %-48s | %-28s | %-12s |\n", "ratio agent / curl", sprintf("%.3f", a/c), ">= 0.9"
  printf "| %-48s | %-28s | %-12s |\n", "ratio agent / (curl && sha256sum)", sprintf("%.3f", a/h), ""
  if (o > 0) {
    printf "| %-48s | %-28s | %-12s |\n", "download: curl -o FILE && openssl sha256, median", sprintf("%.1f MB/s", o/1e6), ""
    printf "| %-48s | %-28s | %-12s |\n", "ratio agent / (curl && openssl sha256)", sprintf("%.3f", a/o), "" }
  printf "| %-48s | %-28s | %-12s |\n", "agent download phase only (from its log)", sprintf("%.1f MB/s", d/1e6), ""
  printf "| %-48s | %-28s | %-12s |\n", "agent after the download (install, commit...)", sprintf("%.2f s", p), ""
  printf "| %-48s | %-28s | %-12s |\n", "agent check peak RSS (GNU time), median", sprintf("%.1f MiB", k/1024), "" }'
# CPU: what each transfer costs both processes, and how many of the cores it kept busy. At the
# same core use, the agent/curl ratio cannot pass curl's CPU over the agent's.
awk -v b="$bytes" -v a="$ma" -v c="$mc" -v ac="$m_agent_cpu" -v as="$m_agent_srv" -v cc="$m_curl_cpu" -v cs="$m_curl_srv" 'BEGIN {
  printf "| %-48s | %-28s | %-12s |\n", "CPU agent + server per check, median (s)", sprintf("%.2f + %.2f (%.2f cores)", ac, as, (ac + as) / (b / a)), ""
  printf "| %-48s | %-28s | %-12s |\n", "CPU curl + server per fetch, median (s)", sprintf("%.2f + %.2f (%.2f cores)", cc, cs, (cc + cs) / (b / c)), ""
  printf "| %-48s | %-28s | %-12s |\n", "CPU ratio (curl + server) / (agent + server)", sprintf("%.3f", (cc + cs) / (ac + as)), "" }'
