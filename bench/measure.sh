# Sourced by bench/run.sh: one pgbench run against a target and what is measured around it
# (the pooler's CPU, the latency percentiles), the medians of the rounds, and the sessions
# pgvigil moved between its workers. Uses run.sh's settings and targets at call time.

run_pgbench() {  # target mode clients seconds outfile [log]
  local jobs=$(( $3 < 2 ? $3 : 2 )) protocol=$2 sslmode=disable extra=()
  [[ "$2" == tls ]] && protocol=simple sslmode=require
  # connect: a new connection for every transaction (-C), start-up and login on the hot path.
  [[ "$2" == connect ]] && protocol=simple extra=(-C)
  # log: every transaction's latency, next to the output, for its percentiles (p99_ms).
  [[ "${6:-}" == log ]] && extra+=(--log "--log-prefix=$5.tx")
  run_waited timeout --signal=INT --kill-after=10 $(( $4 + 60 )) \
    env PGSSLMODE="$sslmode" "$PGBENCH" -h 127.0.0.1 -p "$(target_port "$1")" -U postgres -n -S -M "$protocol" \
    "${extra[@]}" -c "$3" -j "$jobs" -T "$4" "$DB" >"$5" 2>&1
}
# The pooler's process (every thread): its CPU time is read around each run. PostgreSQL's is
# spread over a backend per connection and is not measured.
target_pid() {
  case "$1" in
    pgbouncer) echo "$PGB_PID" ;; pgvigil) echo "$PGVIGIL_PID" ;; baseline) echo "$BASELINE_PID" ;;
    *) echo "" ;;
  esac
}
CLOCK_TICKS="$(getconf CLK_TCK)"
cpu_ticks() {  # pid -> user + system clock ticks so far (fields 14 and 15 of /proc/pid/stat)
  [[ -n "$1" && -r "/proc/$1/stat" ]] || { echo ""; return; }
  awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}
# Microseconds of pooler CPU per transaction: ticks over the transactions pgbench counted.
cpu_per_transaction() {  # ticks_before ticks_after pgbench_log
  local done_count
  done_count="$(awk '/^number of transactions actually processed:/ {print $6}' "$3" | cut -d/ -f1)"
  awk -v a="$1" -v b="$2" -v n="$done_count" -v hz="$CLOCK_TICKS" \
    'BEGIN { if (a ~ /^[0-9]+$/ && b ~ /^[0-9]+$/ && n > 0) printf "%.1f", (b - a) * 1e6 / hz / n; else printf "n/a" }'
}
# The 99th percentile of the transaction latencies (ms) that run_pgbench ... log wrote next to
# `outfile` (pgbench --log: the third field is the latency in microseconds); the files go.
p99_ms() {  # outfile
  local files=("$1".tx.*)
  [[ -e "${files[0]}" ]] || { echo n/a; return; }
  awk '{print $3}' "${files[@]}" | sort -n |
    awk '{v[NR] = $1} END { if (NR == 0) { print "n/a"; exit } i = int(NR * 0.99); if (i < NR * 0.99) i++; printf "%.3f", v[i] / 1000 }'
  rm -f "${files[@]}"
}
# What a target does not run: PgBouncer before 1.21 refuses named statements in transaction
# pooling; a baseline binary may predate client TLS.
skipped() {  # target mode
  [[ "$2" == prepared && "$1" == pgbouncer ]] || [[ "$2" == tls && "$1" == baseline ]]
}

median() {  # values... -> the middle of the sorted values, or "error" if any is not a number
  printf '%s\n' "$@" | sort -g | awk '!/^[0-9.]+$/ {bad = 1} {v[NR] = $1} END { if (bad || NR == 0) print "error"; else print v[int((NR + 1) / 2)] }'
}

# Sessions moved between workers during the run, warm-up included
# (pgvigil_worker_sessions_moved_in_total over every worker): whether a run reached
# listen.pack_until_busy, where a busy worker sheds sessions. n/a for a build without the metric.
sessions_moved() {  # admin_port -> the count, or n/a
  python3 - "$1" <<'EOF_MOVED' 2>/dev/null || echo n/a
import sys, urllib.request
# Straight to the loopback port: an http_proxy in the environment is not for this.
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
page = opener.open(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5).read().decode()
values = [float(line.rsplit(" ", 1)[1]) for line in page.splitlines()
          if line.startswith("pgvigil_worker_sessions_moved_in_total")]
if not values:
    sys.exit(1)
print(int(sum(values)))
EOF_MOVED
}
