# shellcheck shell=bash
# Sourced by bench/run.sh once every figure is gathered: writes the report to $TMP/report.md from
# its arrays (TPS, LAT, CPU, ROUND_TPS, MEM, ...) and settings. Not a command of its own.

# ---------------------------------------------------------------------------------------------
# 6. Report.
ratio() {  # a b -> a/b with 2 decimals, or n/a
  awk -v a="$1" -v b="$2" 'BEGIN { if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) printf "%.2f", a / b; else printf "n/a" }'
}
added() {  # a b -> how much a is above b, in percent of b, or n/a
  awk -v a="$1" -v b="$2" 'BEGIN { if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) printf "%+.1f %%", (a - b) * 100 / b; else printf "n/a" }'
}
fmt() { awk -v x="$1" 'BEGIN { if (x ~ /^[0-9.]+$/) printf "%.0f", x; else printf "%s", x }'; }
round_ratios() {  # other mode clients -> " r1 | r2 | ..." : pgvigil/other in each round
  local r
  for ((r = 1; r <= BENCH_ROUNDS; r++)); do
    printf ' %s |' "$(ratio "${ROUND_TPS[pgvigil,$2,$3,$r]}" "${ROUND_TPS[$1,$2,$3,$r]}")"
  done
}
cell() {  # array-name target mode clients
  local -n arr=$1
  if [[ "$2" == pgvigil && "$PV_STATUS" != ok ]]; then echo "n/a"; else echo "${arr[$2,$3,$4]:-n/a}"; fi
}

session_of() { ps -o sid= -p "$1" 2>/dev/null | tr -d ' ' || true; }
scheduling_line() {
  local autogroup pg_pid
  autogroup="$(cat /proc/sys/kernel/sched_autogroup_enabled 2>/dev/null || echo n/a)"
  pg_pid="$(head -1 "$TMP/pgdata/postmaster.pid" 2>/dev/null || true)"
  echo "kernel.sched_autogroup_enabled=$autogroup; sessions (autogroups): PostgreSQL $(session_of "$pg_pid"), PgBouncer $(session_of "$PGB_PID"), pgvigil $( [[ -n "$PGVIGIL_PID" ]] && session_of "$PGVIGIL_PID" || echo n/a), pgbench (this script) $(session_of $$). Each server runs in a session of its own, so none shares a CPU weight with pgbench or with another."
}

MISSED=()
{
  echo "# pgvigil benchmark results"
  echo
  echo "- Date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "- Command: \`$COMMAND\`"
  echo "- Machine: $(nproc) CPUs, $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), $(uname -sr)"
  echo "- PostgreSQL: $("$PGVIGIL_PG_BINDIR/postgres" --version)"
  echo "- PgBouncer: $PGB_VERSION"
  echo "- pgvigil: $PV_VERSION, $PV_STATUS; git $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' + uncommitted changes')"
  echo "- Workload: \`pgbench -S -n -T $BENCH_SECONDS\` (select-only), scale $BENCH_SCALE, \`-j min(clients,2)\`, TCP on 127.0.0.1, sslmode=disable except in mode tls (\`-M simple\`, sslmode=require: TLS between pgbench and the target, one EC P-256 certificate for PostgreSQL ssl=on, PgBouncer client_tls_sslmode=allow and pgvigil listen.tls; the poolers' server links stay plain); all processes on the same machine."
  echo "- PostgreSQL settings: max_connections=200, shared_buffers=256MB, **fsync=off, synchronous_commit=off, full_page_writes=off** (no durability; irrelevant for a read-only proxy benchmark)."
  if [[ "$POOL_LAYOUT" == shipped ]]; then
    echo "- Poolers: transaction mode, at most $BENCH_POOL_SIZE server connections each. pgvigil runs the shipped config.yaml's pool settings untouched (max_size $BENCH_POOL_SIZE, min_idle $BENCH_MIN_POOL, pool.shards $BENCH_PGVIGIL_SHARDS: one shard per worker, lending each other connections, on its default workers: $(grep -o 'with [0-9]* worker(s)' "$TMP/pgvigil.log" 2>/dev/null | head -1 | grep -o '[0-9]*' || echo '?')); PgBouncer default_pool_size=max_db_connections=$BENCH_POOL_SIZE, min_pool_size=$BENCH_MIN_POOL, one process, one thread."
  else
    echo "- Poolers: transaction mode, $BENCH_POOL_SIZE server connections each (PgBouncer default_pool_size=min_pool_size=max_db_connections; pgvigil min_idle=max_size, split into pool.shards=$BENCH_PGVIGIL_SHARDS pools on as many of its $(nproc) default workers; PgBouncer is one process, one thread)."
  fi
  echo "- Sessions moved between pgvigil's workers during the run, warm-up included (\`pgvigil_worker_sessions_moved_in_total\`, every worker; n/a for a build without it): $PV_MOVED$( [[ -n "$BASELINE_PID" ]] && echo "; baseline $BL_MOVED")."
  echo "- TPS is pgbench's \"without initial connection time\" figure (for \`connect\`, \`-C\`: the one including the connections), the median of $BENCH_ROUNDS rounds (the lower middle one for an even count); each round runs the whole matrix, the targets one after the other per configuration. Ratios are pgvigil's median TPS divided by the other target's; the ratio of every round is listed below the table."
  echo "- Scheduling: $(scheduling_line)"
  echo
  echo "## Throughput (TPS)"
  echo
  echo "| mode | clients | direct TPS | pgbouncer TPS | pgvigil TPS | pgvigil/pgbouncer | pgvigil/direct |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  for mode in $BENCH_MODES; do
    for c in $BENCH_CLIENTS; do
      d="$(cell TPS direct "$mode" "$c")"; b="$(cell TPS pgbouncer "$mode" "$c")"; v="$(cell TPS pgvigil "$mode" "$c")"
      rb="$(ratio "$v" "$b")"; rd="$(ratio "$v" "$d")"
      if [[ "$mode" == prepared ]]; then
        # Preparing should pay: against pgvigil's own extended mode, PgBouncer 1.18 cannot.
        re="$(ratio "$v" "$(cell TPS pgvigil extended "$c")")"
        echo "| $mode | $c | $(fmt "$d") | cannot | $(fmt "$v") | n/a ($re of pgvigil -M extended) | $rd |"
        if [[ "$PV_STATUS" == ok && "$c" != 1 ]] &&
          { [[ "$re" == n/a ]] || awk -v r="$re" 'BEGIN { exit !(r < 1.0) }'; }; then
          MISSED+=("TARGET MISSED: pgvigil -M prepared / -M extended = $re at -c $c (target >= 1.0)")
        fi
        continue
      fi
      echo "| $mode | $c | $(fmt "$d") | $(fmt "$b") | $(fmt "$v") | $rb | $rd |"
      if [[ "$PV_STATUS" == ok ]] && { [[ "$rb" == n/a ]] || awk -v r="$rb" 'BEGIN { exit !(r < 1.0) }'; }; then
        MISSED+=("TARGET MISSED: pgvigil/pgbouncer = $rb for -M $mode -c $c (pgvigil $(fmt "$v") TPS, pgbouncer $(fmt "$b") TPS; target >= 1.0)")
      fi
    done
  done
  echo
  echo "pgvigil/pgbouncer in each round:"
  echo
  echo "| mode | clients | $(for ((r = 1; r <= BENCH_ROUNDS; r++)); do printf 'round %d | ' "$r"; done)"
  echo "|---|---:|$(for ((r = 1; r <= BENCH_ROUNDS; r++)); do printf -- '---:|'; done)"
  for mode in $BENCH_MODES; do
    for c in $BENCH_CLIENTS; do
      if [[ "$PV_STATUS" == ok ]]; then
        echo "| $mode | $c |$(round_ratios pgbouncer "$mode" "$c")"
      else
        echo "| $mode | $c |$(for ((r = 1; r <= BENCH_ROUNDS; r++)); do printf ' n/a |'; done)"
      fi
    done
  done
  if [[ -n "$BASELINE_PID" ]]; then
    echo
    echo "## This build against the baseline"
    echo
    if [[ -n "$BENCH_BASELINE_YAML" ]]; then
      echo "Baseline: \`$BENCH_BASELINE_BINARY\` ($BL_VERSION), the same configuration plus \`$(printf '%s' "$BENCH_BASELINE_YAML" | tr '\n' ' ')\`, in a session of its own, interleaved with the other targets in every round."
    else
      echo "Baseline: \`$BENCH_BASELINE_BINARY\` ($BL_VERSION), the same configuration, in a session of its own, interleaved with the other targets in every round."
    fi
    echo
    echo "| mode | clients | baseline TPS | pgvigil TPS | pgvigil/baseline | $(for ((r = 1; r <= BENCH_ROUNDS; r++)); do printf 'round %d | ' "$r"; done)"
    echo "|---|---:|---:|---:|---:|$(for ((r = 1; r <= BENCH_ROUNDS; r++)); do printf -- '---:|'; done)"
    for mode in $BENCH_MODES; do
      for c in $BENCH_CLIENTS; do
        echo "| $mode | $c | $(fmt "${TPS[baseline,$mode,$c]}") | $(fmt "$(cell TPS pgvigil "$mode" "$c")") | $(ratio "$(cell TPS pgvigil "$mode" "$c")" "${TPS[baseline,$mode,$c]}") |$(round_ratios baseline "$mode" "$c")"
      done
    done
  fi
  echo
  echo "## Average latency (ms)"
  echo
  echo "| mode | clients | direct | pgbouncer | pgvigil |"
  echo "|---|---:|---:|---:|---:|"
  for mode in $BENCH_MODES; do
    for c in $BENCH_CLIENTS; do
      echo "| $mode | $c | $(cell LAT direct "$mode" "$c") | $(cell LAT pgbouncer "$mode" "$c") | $(cell LAT pgvigil "$mode" "$c") |"
    done
  done
  echo
  echo "## Latency added at 1 client"
  echo
  echo "One client (\`-c 1\`): the average latency pgbench reports, and the 99th percentile of every transaction's latency (\`pgbench --log\`); medians of the rounds. Added: over the direct connection, measured in the same rounds."
  echo
  echo "| mode | direct avg | direct p99 | pgbouncer avg | pgbouncer p99 | pgvigil avg | pgvigil p99 | added avg pgbouncer | added avg pgvigil | added p99 pgbouncer | added p99 pgvigil |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for mode in $BENCH_MODES; do
    [[ "$mode" == connect ]] && continue
    [[ " $BENCH_CLIENTS " == *" 1 "* ]] || continue
    row="| $mode"
    for t in direct pgbouncer pgvigil; do row+=" | $(cell LAT "$t" "$mode" 1) | $(cell P99 "$t" "$mode" 1)"; done
    for measure in LAT P99; do
      for t in pgbouncer pgvigil; do row+=" | $(added "$(cell "$measure" "$t" "$mode" 1)" "$(cell "$measure" direct "$mode" 1)")"; done
    done
    echo "$row |"
  done
  echo
  echo "## Pooler CPU per transaction (µs, user + system)"
  echo
  echo "The pooler process's CPU time (every thread, from /proc/PID/stat) across each pgbench run, divided by the transactions pgbench counted; medians of the rounds."
  echo
  bl_head="" bl_rule=""
  [[ -n "$BASELINE_PID" ]] && bl_head=" baseline | pgvigil/baseline |" bl_rule="---:|---:|"
  echo "| mode | clients | pgbouncer | pgvigil | pgvigil/pgbouncer |$bl_head"
  echo "|---|---:|---:|---:|---:|$bl_rule"
  for mode in $BENCH_MODES; do
    for c in $BENCH_CLIENTS; do
      bl_cells=""
      [[ -n "$BASELINE_PID" ]] && bl_cells=" $(cell CPU baseline "$mode" "$c") | $(ratio "$(cell CPU pgvigil "$mode" "$c")" "$(cell CPU baseline "$mode" "$c")") |"
      echo "| $mode | $c | $(cell CPU pgbouncer "$mode" "$c") | $(cell CPU pgvigil "$mode" "$c") | $(ratio "$(cell CPU pgvigil "$mode" "$c")" "$(cell CPU pgbouncer "$mode" "$c")") |$bl_cells"
    done
  done
  echo
  echo "## Memory per idle client"
  echo
  if (( BENCH_IDLE_CLIENTS == 0 )); then
    echo "Skipped (BENCH_IDLE_CLIENTS=0)."
  else
    echo "$BENCH_IDLE_CLIENTS idle sessions (startup handshake done, ReadyForQuery received, then silent) held by \`bench/idle_clients.py\`; pooler VmRSS sampled before opening and 2 s after the last one reached ReadyForQuery. Descriptor limits: client tool $FD_LIMIT, PgBouncer ${NOFILE[pgbouncer]:-?}, pgvigil ${NOFILE[pgvigil]:-n/a}."
    echo
    echo "| pooler | RSS before (kB) | RSS after (kB) | idle clients (opened/alive at end) | bytes per idle client |"
    echo "|---|---:|---:|---:|---:|"
    memory_targets=(pgbouncer pgvigil)
    [[ -n "$BASELINE_PID" ]] && memory_targets+=(baseline)
    for t in "${memory_targets[@]}"; do
      if [[ "$t" == pgvigil && "$PV_STATUS" != ok ]]; then
        echo "| pgvigil | n/a | n/a | n/a | n/a |"
        continue
      fi
      IFS='|' read -r per before after counts <<<"${MEM[$t]:-error|||}"
      echo "| $t | ${before:-n/a} | ${after:-n/a} | ${counts:-n/a} | $per |"
      if [[ "$t" == pgvigil ]] && { ! [[ "$per" =~ ^-?[0-9]+$ ]] || (( per > 1024 )); }; then
        MISSED+=("TARGET MISSED: pgvigil uses $per bytes per idle client (target <= 1024)")
      fi
    done
  fi
  echo
  if (( ${#MISSED[@]} || ${#FAILURES[@]} )); then
    echo "## Targets and failures"
    echo
    echo '```'
    for m in "${MISSED[@]}"; do echo "$m"; done
    for f in "${FAILURES[@]}"; do echo "FAILED: $f"; done
    echo '```'
  else
    [[ "$PV_STATUS" == ok ]] && echo "All targets met: pgvigil/pgbouncer >= 1.0 everywhere and <= 1024 bytes per idle client."
  fi
  if [[ "$PV_STATUS" != ok ]]; then echo; echo "pgvigil: $PV_STATUS"; fi
} >"$TMP/report.md"
