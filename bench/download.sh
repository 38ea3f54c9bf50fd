#!/usr/bin/env bash
# Download throughput of one large artifact from `ferry serve`, as a ratio against nginx
# (Debian's package) serving the same file from the same disk in the same run. Each round
# fetches the file once from each with curl into /dev/null; medians are reported.
#
#   bench/download.sh            # SIZE_MIB=1024 ROUNDS=5
#
# Needs nginx and curl. Traffic goes to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
SIZE_MIB="${SIZE_MIB:-1024}" ROUNDS="${ROUNDS:-5}" PORT="${PORT:-18080}" NGINX_PORT="${NGINX_PORT:-18081}"
command -v nginx >/dev/null || { echo "error: nginx is not installed (apt-get install nginx-light)" >&2; exit 1; }

cargo build --release -q -p ferry -p ferry-bench
work=$(mktemp -d)
trap 'kill "${server:-}" 2>/dev/null || true; [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"' EXIT

mkdir -p "$work/www"
# nginx workers run unprivileged: let them read the served file.
chmod 755 "$work" "$work/www"
head -c "$((SIZE_MIB * 1024 * 1024))" /dev/urandom >"$work/www/artifact.bin"
target/release/ferry-bench seed --sign --devices 1 --data-dir "$work/data" --out "$work" --artifact "$work/www/artifact.bin" >&2
sha=$(cat "$work/artifact.sha256")
token=$(head -n1 "$work/tokens.txt")

FERRY_LOG__LEVEL=warn target/release/ferry serve --data-dir "$work/data" --listen "127.0.0.1:$PORT" 2>"$work/server.log" &
server=$!
cat >"$work/nginx.conf" <<NGINX
daemon on;
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 64; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  client_body_temp_path $work/nginx-tmp;
  proxy_temp_path $work/nginx-tmp;
  fastcgi_temp_path $work/nginx-tmp;
  uwsgi_temp_path $work/nginx-tmp;
  scgi_temp_path $work/nginx-tmp;
  server { listen 127.0.0.1:$NGINX_PORT; root $work/www; }
}
NGINX
mkdir -p "$work/nginx-tmp"
nginx -c "$work/nginx.conf" -p "$work"
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/livez" >/dev/null && break; sleep 0.1; done

# Uploads stream: a 1 GiB upload through the CLI must not grow the server's memory by its size.
hwm() { awk '/^VmHWM/ {print $2}' "/proc/$server/status"; }
head -c "$((SIZE_MIB * 1024 * 1024))" /dev/urandom >"$work/upload.bin"
before=$(hwm)
start=$(date +%s.%N)
FERRY_TOKEN=$(cat "$work/data/admin-token") target/release/ferry --server "http://127.0.0.1:$PORT" --quiet content upload "$work/upload.bin" >/dev/null 2>&1
end=$(date +%s.%N)
after=$(hwm)
rm -f "$work/upload.bin"
awk -v s="$start" -v e="$end" -v m="$SIZE_MIB" -v b="$before" -v a="$after" 'BEGIN {
  printf "upload of %d MiB via ferry content upload (hash, then stream): %.1f s; server peak RSS %.1f MiB before, %.1f MiB after\n", m, e-s, b/1024, a/1024 }'

# fetch NAME CURL_ARGS... → prints the speed in bytes/s; counts the HTTP status per server in
# $work/statuses and fails on anything but 200.
fetch() {
  local name=$1 code speed; shift
  read -r code speed < <(curl -sS -o /dev/null -w '%{http_code} %{speed_download}\n' "$@")
  echo "$name $code" >>"$work/statuses"
  [ "$code" = 200 ] || { echo "error: $name answered HTTP $code" >&2; exit 1; }
  echo "$speed"
}
: >"$work/results"
: >"$work/statuses"
# Warm the page cache for both.
fetch nginx "http://127.0.0.1:$NGINX_PORT/artifact.bin" >/dev/null
printf "%-6s %14s %14s\n" round "ferry MB/s" "nginx MB/s"
for r in $(seq "$ROUNDS"); do
  f=$(fetch ferry -H "Authorization: Bearer $token" "http://127.0.0.1:$PORT/device/v1/content/$sha")
  n=$(fetch nginx "http://127.0.0.1:$NGINX_PORT/artifact.bin")
  printf "%-6s %14.1f %14.1f\n" "$r" "$(awk -v b="$f" 'BEGIN{print b/1e6}')" "$(awk -v b="$n" 'BEGIN{print b/1e6}')"
  echo "$f $n" >>"$work/results"
done
mf=$(awk '{print $1}' "$work/results" | median)
mn=$(awk '{print $2}' "$work/results" | median)
echo
echo "size=${SIZE_MIB}MiB rounds=$ROUNDS"
echo "statuses: $(sort "$work/statuses" | uniq -c | awk '{printf "%s%s %s=%s", (NR>1 ? "; " : ""), $2, $3, $1}')"
awk -v f="$mf" -v n="$mn" 'BEGIN { printf "median ferry: %.1f MB/s  median nginx: %.1f MB/s  ratio: %.3f\n", f/1e6, n/1e6, f/n }'
