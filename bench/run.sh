#!/usr/bin/env bash
# pgvigil benchmark: pgbench -S throughput and latency direct / through PgBouncer / through
# pgvigil, plus pooler memory per idle client. Starts and stops everything it needs on loopback.
# See bench/README.md. Usage: bench/run.sh [--allow-missing-pgvigil]
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: bench/run.sh [--allow-missing-pgvigil] [-h|--help]

Environment (defaults in brackets):
  BENCH_SECONDS=10        duration of each pgbench run
  BENCH_CLIENTS="1 8 32"  client counts
  BENCH_MODES="simple extended prepared tls connect"  pgbench query modes (-M); PgBouncer 1.18 cannot run
                          prepared in transaction mode: it is not run against it, and pgvigil's
                          prepared TPS is compared with its own extended TPS instead. tls: -M simple
                          with sslmode=require to every target (PostgreSQL ssl=on, PgBouncer
                          client_tls_sslmode=allow, pgvigil listen.tls), one certificate for all;
                          connect: -M simple -C, a new connection per transaction
  BENCH_POOL_SIZE=shipped server connections of each pooler. shipped: pgvigil runs the shipped
                          config.yaml's pool settings untouched (the product's defaults) and
                          PgBouncer gets its max_size (default_pool_size=max_db_connections) and
                          min_idle (min_pool_size). A number N: the tuned layout, pgvigil
                          min_idle=max_size=N split into BENCH_PGVIGIL_SHARDS, PgBouncer N.
  BENCH_PGVIGIL_SHARDS=<cores>  pgvigil pool.shards with a number BENCH_POOL_SIZE
  BENCH_SCALE=10          pgbench -i scale
  BENCH_IDLE_CLIENTS=10000  idle client sessions for the memory test (0 skips it)
  BENCH_WARMUP_SECONDS=2  warm-up run per target before measuring
  BENCH_ROUNDS=3          rounds of the whole pgbench matrix; each figure is the median
  PGVIGIL_BINARY=build/daemon/pgvigil  pgvigil binary
  PGBOUNCER=/usr/sbin/pgbouncer  PgBouncer binary
  PGVIGIL_PG_BINDIR=/usr/lib/postgresql/15/bin  PostgreSQL server binaries (the first Debian has)
  BENCH_KEEP_TMP=0        1 keeps the temporary directory (data, configs, logs)
  BENCH_OUTPUT=bench/results/latest.md  where the report is written
  BENCH_BASELINE_BINARY=  another pgvigil binary (say, the build before a change) measured as a
                          fourth target, interleaved with the others; the report adds
                          pgvigil/baseline for every figure
  BENCH_BASELINE_YAML=    top-level config lines for the baseline only, keys the benchmark's
                          config does not set (say, "workers: 1"): a configuration A/B; the
                          baseline binary is then pgvigil's own unless BENCH_BASELINE_BINARY is set.
                          With a number BENCH_POOL_SIZE both get pool.shards BENCH_PGVIGIL_SHARDS:
                          compare worker counts with the shipped layout
  BENCH_BASELINE_LISTEN=  keys added to the baseline's listen map (say, "pack_until_busy: 0"),
                          as BENCH_BASELINE_YAML adds top-level ones
EOF
}

ALLOW_MISSING=0
for arg in "$@"; do
  case "$arg" in
    --allow-missing-pgvigil) ALLOW_MISSING=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run.sh: unknown argument: $arg" >&2; usage >&2; exit 64 ;;
  esac
done

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
cd "$ROOT"

BENCH_SECONDS="${BENCH_SECONDS:-10}"
BENCH_CLIENTS="${BENCH_CLIENTS:-1 8 32}"
BENCH_MODES="${BENCH_MODES:-simple extended prepared tls connect}"
BENCH_POOL_SIZE="${BENCH_POOL_SIZE:-shipped}"
BENCH_PGVIGIL_SHARDS="${BENCH_PGVIGIL_SHARDS:-$(nproc)}"
BENCH_SCALE="${BENCH_SCALE:-10}"
BENCH_IDLE_CLIENTS="${BENCH_IDLE_CLIENTS:-10000}"
BENCH_WARMUP_SECONDS="${BENCH_WARMUP_SECONDS:-2}"
BENCH_ROUNDS="${BENCH_ROUNDS:-3}"
BENCH_KEEP_TMP="${BENCH_KEEP_TMP:-0}"
BENCH_BASELINE_YAML="${BENCH_BASELINE_YAML:-}"
BENCH_BASELINE_LISTEN="${BENCH_BASELINE_LISTEN:-}"
BENCH_BASELINE_BINARY="${BENCH_BASELINE_BINARY:-}"
source "$ROOT/scripts/lib/paths.sh"
PGBOUNCER="${PGBOUNCER:-/usr/sbin/pgbouncer}"
PGBENCH="$PGVIGIL_PG_BINDIR/pgbench"
[[ -x "$PGBENCH" ]] || PGBENCH="$(command -v pgbench)"
DB=bench
RESULTS="${BENCH_OUTPUT:-$BENCH_DIR/results/latest.md}"
COMMAND="BENCH_SECONDS=$BENCH_SECONDS BENCH_CLIENTS=\"$BENCH_CLIENTS\" BENCH_MODES=\"$BENCH_MODES\" BENCH_POOL_SIZE=$BENCH_POOL_SIZE BENCH_PGVIGIL_SHARDS=$BENCH_PGVIGIL_SHARDS BENCH_SCALE=$BENCH_SCALE BENCH_IDLE_CLIENTS=$BENCH_IDLE_CLIENTS BENCH_ROUNDS=$BENCH_ROUNDS${BENCH_BASELINE_BINARY:+ BENCH_BASELINE_BINARY=$BENCH_BASELINE_BINARY}${BENCH_BASELINE_YAML:+ BENCH_BASELINE_YAML=$(printf %q "$BENCH_BASELINE_YAML")}${BENCH_BASELINE_LISTEN:+ BENCH_BASELINE_LISTEN=$(printf %q "$BENCH_BASELINE_LISTEN")}${BENCH_OUTPUT:+ BENCH_OUTPUT=$BENCH_OUTPUT} bench/run.sh${*:+ $*}"

# The shipped config.yaml's pool section: what a new user runs.
shipped_pool_key() { awk -v key="$1" '/^pool:/ {p = 1; next} /^[^ #]/ {p = 0} p && $1 == key ":" {print $2; exit}' "$ROOT/config.yaml"; }
PGV_POOL_LINE=""
if [[ "$BENCH_POOL_SIZE" == shipped ]]; then
  BENCH_POOL_SIZE="$(shipped_pool_key max_size)"
  BENCH_MIN_POOL="$(shipped_pool_key min_idle)"
  BENCH_PGVIGIL_SHARDS="$(shipped_pool_key shards)"
  POOL_LAYOUT=shipped
else
  BENCH_MIN_POOL="$BENCH_POOL_SIZE"
  POOL_LAYOUT=tuned
fi
for v in BENCH_SECONDS BENCH_POOL_SIZE BENCH_MIN_POOL BENCH_PGVIGIL_SHARDS BENCH_SCALE BENCH_IDLE_CLIENTS BENCH_WARMUP_SECONDS BENCH_ROUNDS; do
  [[ "${!v}" =~ ^[0-9]+$ ]] || { echo "run.sh: $v must be a non-negative integer" >&2; exit 64; }
done
(( BENCH_SECONDS > 0 && BENCH_POOL_SIZE > 0 && BENCH_ROUNDS > 0 )) || { echo "run.sh: BENCH_SECONDS, BENCH_POOL_SIZE and BENCH_ROUNDS must be above 0" >&2; exit 64; }
if [[ "$POOL_LAYOUT" == tuned ]]; then
  (( BENCH_PGVIGIL_SHARDS >= 1 )) || BENCH_PGVIGIL_SHARDS=1
  (( BENCH_PGVIGIL_SHARDS <= BENCH_POOL_SIZE )) || BENCH_PGVIGIL_SHARDS=$BENCH_POOL_SIZE
  PGV_POOL_LINE="pool: {min_idle: $BENCH_POOL_SIZE, max_size: $BENCH_POOL_SIZE, shards: $BENCH_PGVIGIL_SHARDS}"
fi

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Client-side variables that could redirect or alter pgbench's connections.
unset PGHOST PGHOSTADDR PGPORT PGDATABASE PGUSER PGPASSWORD PGSERVICE PGOPTIONS PGSSLMODE
export PGSSLMODE=disable PGCONNECT_TIMEOUT=10

# Many idle sessions need many descriptors, in this shell's children (the tool and the poolers).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
FD_LIMIT="$(ulimit -n)"

# PostgreSQL runs as postgres through runuser. PgBouncer refuses to run as root too, but runuser's
# PAM session resets the descriptor limit to 1024, so it is started through setpriv (no PAM).
if [[ $EUID -eq 0 ]]; then
  AS_PG=(runuser -u postgres --)
  AS_PG_KEEP_LIMITS=(setpriv --reuid=postgres --regid=postgres --init-groups --)
else
  AS_PG=()
  AS_PG_KEEP_LIMITS=()
fi

# ---------------------------------------------------------------------------------------------
# Clean-up of everything started here, on any exit, Ctrl-C included.
TMP=""
PG_STARTED=0
PGB_PIDFILE=""
PGVIGIL_PID=""
BASELINE_PID=""
IDLE_PID=""
CHILD_PID=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  [[ -n "$CHILD_PID" ]] && kill -TERM "$CHILD_PID" 2>/dev/null && wait "$CHILD_PID" 2>/dev/null
  [[ -n "$IDLE_PID" ]] && kill -TERM "$IDLE_PID" 2>/dev/null
  local pid
  for pid in "$PGVIGIL_PID" "$BASELINE_PID"; do
    [[ -n "$pid" ]] || continue
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
  done
  if [[ -n "$PGB_PIDFILE" && -s "$PGB_PIDFILE" ]]; then
    local pid; pid="$(cat "$PGB_PIDFILE")"
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
  fi
  if (( PG_STARTED )); then
    "${AS_PG[@]}" "$PGVIGIL_PG_BINDIR/pg_ctl" -D "$TMP/pgdata" -m immediate -w -t 30 stop >/dev/null 2>&1
  fi
  if [[ -n "$TMP" && -d "$TMP" ]]; then
    if [[ "$BENCH_KEEP_TMP" == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
# Runs a command in the background and waits for it: the builtin wait returns as soon as a trapped
# signal arrives, so Ctrl-C takes effect at once even though timeout(1) moves its command out of
# the terminal's process group.
run_waited() {
  "$@" &
  CHILD_PID=$!
  local rc=0
  wait "$CHILD_PID" || rc=$?
  CHILD_PID=""
  return "$rc"
}
trap 'log "terminated"; exit 143' TERM

TMP="$(mktemp -d /tmp/pgvigil-bench.XXXXXX)"
chmod 755 "$TMP"
[[ $EUID -eq 0 ]] && chown postgres: "$TMP"

# Free loopback ports, bound together so they are distinct.
read -r PG_PORT PGB_PORT PV_PORT PV_ADMIN_PORT BL_PORT BL_ADMIN_PORT < <(python3 - <<'EOF'
import socket
socks = []
for _ in range(6):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(*(s.getsockname()[1] for s in socks))
EOF
)

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() {  # port seconds
  local i
  for ((i = 0; i < $2 * 10; i++)); do port_open "$1" && return 0; sleep 0.1; done
  return 1
}
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
nofile() { awk '/^Max open files/ {print $4}' "/proc/$1/limits" 2>/dev/null; }
declare -A NOFILE

# One certificate (EC P-256) for every target's client TLS (mode tls), readable by postgres.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=127.0.0.1 -keyout "$TMP/tls.key" -out "$TMP/tls.crt" >"$TMP/openssl.log" 2>&1 \
  || { cat "$TMP/openssl.log" >&2; die "openssl could not make the benchmark's certificate"; }
chmod 600 "$TMP/tls.key"
[[ $EUID -eq 0 ]] && chown postgres: "$TMP/tls.key" "$TMP/tls.crt"

# ---------------------------------------------------------------------------------------------
# 1. Throwaway PostgreSQL.
log "PostgreSQL: initdb in $TMP/pgdata, port $PG_PORT"
"${AS_PG[@]}" "$PGVIGIL_PG_BINDIR/initdb" -D "$TMP/pgdata" -U postgres -A trust -E UTF8 --no-sync \
  >"$TMP/initdb.log" 2>&1 || { tail -20 "$TMP/initdb.log" >&2; die "initdb failed"; }
cat >>"$TMP/pgdata/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = ''
max_connections = 200
shared_buffers = 256MB
fsync = off
synchronous_commit = off
full_page_writes = off
logging_collector = off
ssl = on
ssl_cert_file = '$TMP/tls.crt'
ssl_key_file = '$TMP/tls.key'
EOF
"${AS_PG[@]}" "$PGVIGIL_PG_BINDIR/pg_ctl" -D "$TMP/pgdata" -l "$TMP/postgres.log" -w -t 60 start >/dev/null \
  || { tail -20 "$TMP/postgres.log" >&2; die "PostgreSQL did not start"; }
PG_STARTED=1
"$PGVIGIL_PG_BINDIR/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres "$DB"
log "pgbench -i -s $BENCH_SCALE"
run_waited timeout 1800 "$PGBENCH" -i -s "$BENCH_SCALE" -h 127.0.0.1 -p "$PG_PORT" -U postgres "$DB" >"$TMP/pgbench-init.log" 2>&1 \
  || { tail -20 "$TMP/pgbench-init.log" >&2; die "pgbench -i failed"; }
"$PGVIGIL_PG_BINDIR/psql" -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d "$DB" -c "VACUUM ANALYZE" >/dev/null

# ---------------------------------------------------------------------------------------------
# 2. PgBouncer, transaction mode, same server pool size as pgvigil.
PGB_MAX_CLIENTS=$(( BENCH_IDLE_CLIENTS + 200 ))
echo '"postgres" ""' >"$TMP/userlist.txt"
cat >"$TMP/pgbouncer.ini" <<EOF
[databases]
$DB = host=127.0.0.1 port=$PG_PORT dbname=$DB user=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGB_PORT
unix_socket_dir =
auth_type = trust
auth_file = $TMP/userlist.txt
pool_mode = transaction
default_pool_size = $BENCH_POOL_SIZE
min_pool_size = $BENCH_MIN_POOL
reserve_pool_size = 0
max_client_conn = $PGB_MAX_CLIENTS
max_db_connections = $BENCH_POOL_SIZE
listen_backlog = 1024
ignore_startup_parameters = extra_float_digits
server_tls_sslmode = disable
client_tls_sslmode = allow
client_tls_cert_file = $TMP/tls.crt
client_tls_key_file = $TMP/tls.key
logfile = $TMP/pgbouncer.log
pidfile = $TMP/pgbouncer.pid
log_connections = 0
log_disconnections = 0
log_pooler_errors = 1
stats_period = 3600
EOF
[[ $EUID -eq 0 ]] && chown postgres: "$TMP/pgbouncer.ini" "$TMP/userlist.txt"
PGB_VERSION="$("$PGBOUNCER" --version 2>/dev/null | head -1)"
log "PgBouncer: port $PGB_PORT (default_pool_size=$BENCH_POOL_SIZE, max_client_conn=$PGB_MAX_CLIENTS)"
PGB_PIDFILE="$TMP/pgbouncer.pid"
"${AS_PG_KEEP_LIMITS[@]}" "$PGBOUNCER" -d "$TMP/pgbouncer.ini" >"$TMP/pgbouncer.out" 2>&1 \
  || { cat "$TMP/pgbouncer.out" "$TMP/pgbouncer.log" >&2 2>/dev/null; die "PgBouncer did not start"; }
wait_port "$PGB_PORT" 20 || { tail -20 "$TMP/pgbouncer.log" >&2; die "PgBouncer is not listening"; }
for _ in $(seq 50); do [[ -s "$PGB_PIDFILE" ]] && break; sleep 0.1; done
PGB_PID="$(cat "$PGB_PIDFILE")"

# ---------------------------------------------------------------------------------------------
# 3. pgvigil.
PV_STATUS="not available"
PV_VERSION="n/a"
# shellcheck source=bench/start_pgvigil.sh
source "$BENCH_DIR/start_pgvigil.sh"
start_pgvigil

# The baseline: the same configuration on another binary, or with BENCH_BASELINE_YAML's lines
# added, in a session of its own too.
BL_VERSION=""
[[ -n "$BENCH_BASELINE_YAML$BENCH_BASELINE_LISTEN" && -z "$BENCH_BASELINE_BINARY" ]] && BENCH_BASELINE_BINARY="$PGVIGIL_BINARY"
[[ -n "$BENCH_BASELINE_BINARY" ]] && start_baseline

TARGETS=(direct pgbouncer)
[[ "$PV_STATUS" == ok ]] && TARGETS+=(pgvigil)
[[ -n "$BASELINE_PID" ]] && TARGETS+=(baseline)
target_port() {
  case "$1" in
    direct) echo "$PG_PORT" ;; pgbouncer) echo "$PGB_PORT" ;; pgvigil) echo "$PV_PORT" ;;
    baseline) echo "$BL_PORT" ;;
  esac
}

# ---------------------------------------------------------------------------------------------
# 4. pgbench -S matrix, targets interleaved per configuration.
declare -A TPS LAT
FAILURES=()
# shellcheck source=bench/measure.sh
source "$BENCH_DIR/measure.sh"
if (( BENCH_WARMUP_SECONDS > 0 )); then
  for t in "${TARGETS[@]}"; do
    log "warm-up: $t"
    run_pgbench "$t" simple 8 "$BENCH_WARMUP_SECONDS" "$TMP/warmup-$t.log" \
      || { tail -5 "$TMP/warmup-$t.log" >&2; log "warm-up against $t failed"; }
  done
fi

# Each round runs the whole matrix; TPS and LAT keep the median over the rounds (the middle one of
# the sorted values; "error" when any round failed), ROUND_TPS every round's figure.
declare -A ROUND_TPS ROUND_LAT ROUND_CPU CPU ROUND_P99 P99
for ((round = 1; round <= BENCH_ROUNDS; round++)); do
  for mode in $BENCH_MODES; do
    for c in $BENCH_CLIENTS; do
      for t in "${TARGETS[@]}"; do
        if skipped "$t" "$mode"; then
          ROUND_TPS[$t,$mode,$c,$round]=n/a ROUND_LAT[$t,$mode,$c,$round]=n/a
          continue
        fi
        out="$TMP/pgbench-$t-$mode-$c-round$round.log"
        log "round $round/$BENCH_ROUNDS: pgbench -S -M $mode -c $c -T $BENCH_SECONDS -> $t"
        key="$t,$mode,$c,$round"
        ticks_before="$(cpu_ticks "$(target_pid "$t")")"
        # One client: every transaction's latency is logged, for the 99th percentile.
        latency_log=""
        [[ "$c" == 1 && "$mode" != connect ]] && latency_log=log
        if run_pgbench "$t" "$mode" "$c" "$BENCH_SECONDS" "$out" "$latency_log"; then
          [[ -n "$latency_log" ]] && ROUND_P99[$key]="$(p99_ms "$out")"
          # With -C the figure that counts is the one including the connections.
          ROUND_TPS[$key]="$(awk '/^tps = .*(without initial connection time|excluding connections establishing|including reconnection times)/ {print $3; exit}' "$out")"
          ROUND_LAT[$key]="$(awk '/^latency average = / {print $4}' "$out")"
          ROUND_CPU[$key]="$(cpu_per_transaction "$ticks_before" "$(cpu_ticks "$(target_pid "$t")")" "$out")"
        fi
        if [[ -z "${ROUND_TPS[$key]:-}" ]]; then
          ROUND_TPS[$key]=error
          ROUND_LAT[$key]=error
          FAILURES+=("round $round: pgbench -M $mode -c $c against $t failed: $(grep -m1 -iE 'error|fatal|abort' "$out" || tail -1 "$out")")
          log "${FAILURES[-1]}"
        fi
      done
    done
  done
done
PV_MOVED=n/a BL_MOVED=n/a
[[ "$PV_STATUS" == ok ]] && PV_MOVED="$(sessions_moved "$PV_ADMIN_PORT")"
[[ -n "$BASELINE_PID" ]] && BL_MOVED="$(sessions_moved "$BL_ADMIN_PORT")"
for mode in $BENCH_MODES; do
  for c in $BENCH_CLIENTS; do
    for t in "${TARGETS[@]}"; do
      if skipped "$t" "$mode"; then
        TPS[$t,$mode,$c]=cannot LAT[$t,$mode,$c]=cannot
        continue
      fi
      tps=() lat=()
      for ((round = 1; round <= BENCH_ROUNDS; round++)); do
        tps+=("${ROUND_TPS[$t,$mode,$c,$round]}")
        lat+=("${ROUND_LAT[$t,$mode,$c,$round]}")
      done
      TPS[$t,$mode,$c]="$(median "${tps[@]}")"
      LAT[$t,$mode,$c]="$(median "${lat[@]}")"
      cpu=()
      for ((round = 1; round <= BENCH_ROUNDS; round++)); do cpu+=("${ROUND_CPU[$t,$mode,$c,$round]:-n/a}"); done
      CPU[$t,$mode,$c]="$(median "${cpu[@]}")"
      p99=()
      for ((round = 1; round <= BENCH_ROUNDS; round++)); do p99+=("${ROUND_P99[$t,$mode,$c,$round]:-n/a}"); done
      P99[$t,$mode,$c]="$(median "${p99[@]}")"
    done
  done
done

# ---------------------------------------------------------------------------------------------
# 5. Idle-client memory.
declare -A MEM
# shellcheck source=bench/idle_memory.sh
source "$BENCH_DIR/idle_memory.sh"
if (( BENCH_IDLE_CLIENTS > 0 )); then
  idle_memory pgbouncer "$PGB_PID"
  [[ "$PV_STATUS" == ok ]] && idle_memory pgvigil "$PGVIGIL_PID"
  [[ -n "$BASELINE_PID" ]] && idle_memory baseline "$BASELINE_PID"
  if [[ "$PV_STATUS" == ok ]] && ! kill -0 "$PGVIGIL_PID" 2>/dev/null; then
    FAILURES+=("pgvigil exited during the benchmark; last log lines: $(tail -3 "$TMP/pgvigil.log" | tr '\n' ' ')")
  fi
fi

# ---------------------------------------------------------------------------------------------
# 6. Report (bench/report.sh: the tables, from the figures gathered above).
# shellcheck source=bench/report.sh
source "$BENCH_DIR/report.sh"

mkdir -p "$BENCH_DIR/results"
cp "$TMP/report.md" "$RESULTS"
echo
cat "$RESULTS"
echo
echo "(written to ${RESULTS#"$ROOT"/})"

# A measurement that did not happen is an error; a missed target is not.
(( ${#FAILURES[@]} == 0 )) || exit 2
exit 0
