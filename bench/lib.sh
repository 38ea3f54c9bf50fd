# Shared by the bench scripts (sourced). Needs THREADS, CONNECTIONS and DURATION set.

# wrk ARGS... → prints "rps p50_ms p99_ms"; on stderr, the count of answers per HTTP status
# (and wrk's socket errors, if any). Fails the script if any answer is not 2xx. A script given
# with -s must load bench/status.lua (see bench/checkin.lua); without one, that one is used.
wrk_run() {
  local out script=()
  [[ " $* " == *" -s "* ]] || script=(-s bench/status.lua)
  out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "${script[@]}" "$@")
  local statuses
  statuses=$(grep '^statuses:' <<<"$out" || echo "statuses: (none counted)")
  echo "  $statuses$(grep -o 'Socket errors:.*' <<<"$out" | sed 's/^/; /')" >&2
  if grep -q "Non-2xx" <<<"$out" || grep -qE '(^| )[013-9][0-9][0-9]=' <<<"${statuses#statuses:}"; then
    echo "error: non-2xx answers during the run:" >&2; echo "$out" >&2; exit 1
  fi
  local rps p50 p99
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  echo "$rps $(to_ms "$p50") $(to_ms "$p99")"
}

# wrk's latency (e.g. 812.00us, 3.2ms, 1.1s) in milliseconds.
to_ms() { awk -v v="$1" 'BEGIN { n=v+0; if (v ~ /us$/) n/=1000; else if (v ~ /ms$/) n=n; else if (v ~ /s$/) n*=1000; printf "%.2f", n }'; }

# numbers on stdin → their median
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
