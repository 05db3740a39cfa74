#!/bin/bash
# pgvigil's instructions per new connection and per transaction, and PgBouncer's under the same
# load, counted by callgrind: a measure that the machine's load does not move, for comparing two
# builds of the relay's code paths and pgvigil's user-space work with PgBouncer's. The timed
# benchmark (bench/run.sh) says what the figures are worth in throughput and CPU. Both count
# user-space instructions only: the kernel's share of a transaction (most of it on loopback) is
# not in them.
#
#   bench/instructions.sh [BINARY]    (default build/daemon/pgvigil)
#
# Needs a running PostgreSQL with pgbench's tables (pgbench -i) that trusts the user postgres:
# PGHOST (a host name or a socket directory; default /var/run/postgresql), PGPORT (5432),
# PGDATABASE (postgres). pgvigil runs under valgrind on 127.0.0.1:$BENCH_PORT (default 7599; its
# admin port BENCH_ADMIN_PORT, 7598),
# with the shipped pool settings, one database, transaction pooling; then PgBouncer (PGBOUNCER,
# default /usr/sbin/pgbouncer; BENCH_PGBOUNCER=0 skips it) on $BENCH_PGBOUNCER_PORT (7597),
# transaction pooling, its pool sized as pgvigil's (10, at least 2 kept), no connection logging,
# as bench/run.sh runs it. Prints, each after a warm-up whose counts are discarded: instructions
# per connection (pgbench -S -C -c 1, 1000 connections), per simple-protocol and per
# extended-protocol transaction (pgbench -S -c 1, 5000 each), and pgvigil's over PgBouncer's.
# Installs valgrind with apt-get when it is missing.
set -euo pipefail
# PostgreSQL's tools run as postgres (su), and valgrind may need installing: both need root.
if ((EUID != 0)); then
  echo "bench/instructions.sh: run as root" >&2
  exit 1
fi
binary="$(realpath "${1:-build/daemon/pgvigil}")"
host="${PGHOST:-/var/run/postgresql}" port="${PGPORT:-5432}" database="${PGDATABASE:-postgres}"
listen_port="${BENCH_PORT:-7599}" admin_port="${BENCH_ADMIN_PORT:-7598}"
pgbouncer="${PGBOUNCER:-/usr/sbin/pgbouncer}" pgbouncer_port="${BENCH_PGBOUNCER_PORT:-7597}"
pgbench="$(ls /usr/lib/postgresql/*/bin/pgbench | sort -V | tail -1)"
if ! command -v callgrind_control >/dev/null; then
  apt-get update -q >/dev/null && apt-get install -y -q valgrind >/dev/null
fi
work="$(mktemp -d /tmp/pgvigil-instructions.XXXXXX)"
chmod 755 "$work"
valgrind_pid=""
# Ends the target under valgrind and waits for it: its last dump and its ports, before the next.
stop_target() {
  if [[ -n "$valgrind_pid" ]]; then
    kill "$valgrind_pid" 2>/dev/null || true
    wait "$valgrind_pid" 2>/dev/null || true
    # PgBouncer runs as postgres under su: the valgrind process is su's child.
    pkill -f "valgrind.bin .*callgrind-out-file=$work/" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
      pgrep -f "valgrind.bin .*callgrind-out-file=$work/" >/dev/null || break
      sleep 0.1
    done
  fi
  valgrind_pid=""
}
cleanup() {
  stop_target
  [[ -n "${BENCH_KEEP_TMP:-}" ]] || rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/pgvigil.yaml" <<YAML
listen: {address: "127.0.0.1:$listen_port"}
admin: {listen: "127.0.0.1:$admin_port"}
log: {level: warn}
databases:
  $database: {host: "$host", port: $port, dbname: $database, user: postgres, pool_mode: transaction, sslmode: disable}
YAML
# PgBouncer takes a TCP host or a socket directory as pgvigil does.
echo '"postgres" ""' >"$work/userlist.txt"
cat >"$work/pgbouncer.ini" <<INI
[databases]
$database = host=$host port=$port dbname=$database user=postgres
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $pgbouncer_port
unix_socket_dir =
auth_type = trust
auth_file = $work/userlist.txt
pool_mode = transaction
default_pool_size = 10
max_db_connections = 10
min_pool_size = 2
server_tls_sslmode = disable
logfile = $work/pgbouncer.log
log_connections = 0
log_disconnections = 0
stats_period = 3600
INI
chown -R postgres: "$work"

# start_target NAME PORT COMMAND...: runs COMMAND (valgrind, writing its counts to $work/NAME.N)
# and waits until it listens on PORT.
start_target() {
  local name=$1 target_port=$2
  shift 2
  setsid "$@" >"$work/$name.valgrind.log" 2>&1 &
  valgrind_pid=$!
  for ((i = 0; i < 120; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$target_port") 2>/dev/null && return 0
    kill -0 "$valgrind_pid" 2>/dev/null || { cat "$work/$name.valgrind.log" >&2; exit 1; }
    sleep 0.5
  done
  echo "$name under valgrind is not listening on 127.0.0.1:$target_port after 60 s" >&2
  cat "$work/$name.valgrind.log" >&2
  exit 1
}

run() {  # port, then pgbench arguments; fails loudly, as a failed run would count nothing
  local target_port=$1
  shift
  su postgres -c "$pgbench -S -n $* -h 127.0.0.1 -p $target_port $database" >"$work/pgbench.log" 2>&1 ||
    { cat "$work/pgbench.log" >&2; exit 1; }
}
# Dumps the counts of target $1 since its last dump; sets `per` to them divided by $2. Not called
# in a command substitution: the dump count must survive the call.
dumps=0
per=""
dump() {
  local name=$1
  # The valgrind process itself (PgBouncer's is su's child). callgrind_control finds it by its
  # pipes, which are its user's: PgBouncer's are postgres's.
  local pid
  pid="$(pgrep -f "valgrind.bin .*callgrind-out-file=$work/$name" | head -1 || true)"
  if [[ -z "$pid" ]]; then
    echo "$name under valgrind is gone; its log:" >&2
    cat "$work/$name.valgrind.log" >&2
    exit 1
  fi
  local asked=0
  if [[ $name == pgbouncer ]]; then
    su postgres -c "callgrind_control -d $pid" >>"$work/control.log" 2>&1 || asked=$?
  else
    callgrind_control -d "$pid" >>"$work/control.log" 2>&1 || asked=$?
  fi
  if ((asked != 0)); then
    echo "callgrind_control -d $pid failed; it said:" >&2
    cat "$work/control.log" >&2
    exit 1
  fi
  dumps=$((dumps + 1))
  # The dump is written after callgrind_control returns; its totals line comes last.
  local file="$work/$name.$dumps"
  for ((i = 0; i < 300; i++)); do grep -q '^totals:' "$file" 2>/dev/null && break; sleep 0.1; done
  if ! grep -q '^totals:' "$file"; then
    echo "callgrind wrote no counts to $file; callgrind_control said:" >&2
    cat "$work/control.log" >&2
    exit 1
  fi
  per="$(awk -v n="$2" '/^totals:/ {printf "%d", $2 / n}' "$file")"
}
# measure NAME PORT: sets NAME's three counts in counts[NAME.connection], ...
declare -A counts
measure() {
  local name=$1 target_port=$2
  dumps=0
  run "$target_port" -C -c 1 -t 200; dump "$name" 1
  run "$target_port" -C -c 1 -t 1000; dump "$name" 1000; counts[$name.connection]="$per"
  run "$target_port" -c 1 -t 200; dump "$name" 1
  run "$target_port" -c 1 -t 5000; dump "$name" 5000; counts[$name.simple]="$per"
  run "$target_port" -M extended -c 1 -t 200; dump "$name" 1
  run "$target_port" -M extended -c 1 -t 5000; dump "$name" 5000; counts[$name.extended]="$per"
}

start_target pgvigil "$listen_port" valgrind --tool=callgrind --callgrind-out-file="$work/pgvigil" \
  "$binary" --config "$work/pgvigil.yaml"
measure pgvigil "$listen_port"
stop_target
targets=(pgvigil)
if [[ "${BENCH_PGBOUNCER:-1}" != 0 && ! -x "$pgbouncer" ]]; then
  echo "bench/instructions.sh: no PgBouncer at $pgbouncer (PGBOUNCER; apt-get install pgbouncer):" \
    "pgvigil's counts only" >&2
elif [[ "${BENCH_PGBOUNCER:-1}" != 0 ]]; then
  # PgBouncer refuses to run as root.
  start_target pgbouncer "$pgbouncer_port" su postgres -c \
    "exec valgrind --tool=callgrind --callgrind-out-file=$work/pgbouncer $pgbouncer $work/pgbouncer.ini"
  measure pgbouncer "$pgbouncer_port"
  stop_target
  targets+=(pgbouncer)
fi

echo "binary: $binary"
[[ ${#targets[@]} -gt 1 ]] && echo "pgbouncer: $("$pgbouncer" --version 2>/dev/null | head -1)"
printf '%-52s %10s' "instructions" pgvigil
[[ ${#targets[@]} -gt 1 ]] && printf ' %10s %18s' pgbouncer "pgvigil/pgbouncer"
echo
for row in "connection:per connection (pgbench -S -C -c 1)" \
  "simple:per simple transaction (pgbench -S -c 1)" \
  "extended:per extended transaction (pgbench -S -M extended -c 1)"; do
  key=${row%%:*}
  printf '%-52s %10s' "${row#*:}" "${counts[pgvigil.$key]}"
  if [[ ${#targets[@]} -gt 1 ]]; then
    printf ' %10s %18s' "${counts[pgbouncer.$key]}" \
      "$(awk -v a="${counts[pgvigil.$key]}" -v b="${counts[pgbouncer.$key]}" 'BEGIN {printf "%.2f", a / b}')"
  fi
  echo
done
