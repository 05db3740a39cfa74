# Sourced by bench/run.sh: the pooler's memory per idle client (BENCH_IDLE_CLIENTS sessions
# opened by bench/idle_clients.py and held silent). Uses run.sh's settings and targets at call
# time; records MEM[target] and NOFILE[target].

idle_memory() {  # target pid
  local target=$1 pid=$2 port out before after opened
  port="$(target_port "$target")"
  out="$TMP/idle-$target.out"
  sleep 1
  before="$(rss_kb "$pid")"
  NOFILE[$target]="$(nofile "$pid")"
  log "idle clients: opening $BENCH_IDLE_CLIENTS against $target (RSS before ${before} kB)"
  # 40 handshakes in flight: below pgvigil's shipped listen.max_startup_per_address (50), which
  # pushes out the oldest of a source address's unfinished startups beyond it (all come from
  # 127.0.0.1 here).
  python3 "$BENCH_DIR/idle_clients.py" --port "$port" --database "$DB" -k "$BENCH_IDLE_CLIENTS" --concurrency 40 \
    --max-hold 300 >"$out" 2>"$TMP/idle-$target.err" &
  IDLE_PID=$!
  local i
  for ((i = 0; i < 1800; i++)); do
    grep -q '^READY' "$out" 2>/dev/null && break
    kill -0 "$IDLE_PID" 2>/dev/null || break
    sleep 0.1
  done
  if ! grep -q '^READY' "$out" 2>/dev/null; then
    kill -TERM "$IDLE_PID" 2>/dev/null; wait "$IDLE_PID" 2>/dev/null || true; IDLE_PID=""
    FAILURES+=("idle clients against $target: the tool did not finish opening; $(tail -1 "$TMP/idle-$target.err")")
    MEM[$target]="error|||"
    return
  fi
  sleep 2
  after="$(rss_kb "$pid")"
  kill -TERM "$IDLE_PID" 2>/dev/null
  wait "$IDLE_PID" 2>/dev/null || true
  IDLE_PID=""
  opened="$(sed -n 's/^READY opened=\([0-9]*\).*/\1/p' "$out")"
  local ready alive
  ready="$(grep -m1 '^READY' "$out")"
  alive="$(sed -n 's/^ALIVE //p' "$out")"
  log "idle clients: $target: $ready; alive at end: ${alive:-?}; RSS after ${after} kB"
  if [[ "$opened" != "$BENCH_IDLE_CLIENTS" ]]; then
    FAILURES+=("idle clients against $target: only $opened of $BENCH_IDLE_CLIENTS reached ReadyForQuery (${ready#READY })")
  fi
  if (( opened > 0 )); then
    MEM[$target]="$(( (after - before) * 1024 / opened ))|$before|$after|$opened/${alive:-?}"
  else
    MEM[$target]="error|$before|$after|0"
  fi
}
