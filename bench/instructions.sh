#!/bin/bash
# pgvigil's instructions per new connection and per transaction, counted by callgrind: a measure
# that the machine's load does not move, for comparing two builds of the relay's code paths. The
# timed benchmark (bench/run.sh) says what the figures are worth in throughput and CPU.
#
#   bench/instructions.sh [BINARY]    (default build/daemon/pgvigil)
#
# Needs a running PostgreSQL with pgbench's tables (pgbench -i) that trusts the user postgres:
# PGHOST (a host name or a socket directory; default /var/run/postgresql), PGPORT (5432),
# PGDATABASE (postgres). pgvigil runs under valgrind on 127.0.0.1:$BENCH_PORT (default 7599; its
# admin port BENCH_ADMIN_PORT, 7598),
# with the shipped pool settings, one database, transaction pooling. Prints, each after a warm-up
# whose counts are discarded: instructions per connection (pgbench -S -C -c 1, 1000 connections),
# per simple-protocol and per extended-protocol transaction (pgbench -S -c 1, 5000 each).
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
pgbench="$(ls /usr/lib/postgresql/*/bin/pgbench | sort -V | tail -1)"
if ! command -v callgrind_control >/dev/null; then
  apt-get update -q >/dev/null && apt-get install -y -q valgrind >/dev/null
fi
work="$(mktemp -d /tmp/pgvigil-instructions.XXXXXX)"
chmod 755 "$work"
valgrind_pid=""
cleanup() {
  if [[ -n "$valgrind_pid" ]]; then
    kill "$valgrind_pid" 2>/dev/null || true
    wait "$valgrind_pid" 2>/dev/null || true  # its last dump and its ports, before the next run
  fi
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
setsid valgrind --tool=callgrind --callgrind-out-file="$work/counts" "$binary" \
  --config "$work/pgvigil.yaml" >"$work/valgrind.log" 2>&1 &
valgrind_pid=$!
for ((i = 0; i < 120; i++)); do
  (exec 3<>"/dev/tcp/127.0.0.1/$listen_port") 2>/dev/null && break
  kill -0 "$valgrind_pid" 2>/dev/null || { cat "$work/valgrind.log" >&2; exit 1; }
  sleep 0.5
done
if ! (exec 3<>"/dev/tcp/127.0.0.1/$listen_port") 2>/dev/null; then
  echo "pgvigil under valgrind is not listening on 127.0.0.1:$listen_port after 60 s" >&2
  cat "$work/valgrind.log" >&2
  exit 1
fi

run() {  # pgbench arguments; fails loudly, as a failed run would count nothing
  su postgres -c "$pgbench -S -n $* -h 127.0.0.1 -p $listen_port $database" >"$work/pgbench.log" 2>&1 ||
    { cat "$work/pgbench.log" >&2; exit 1; }
}
dumps=0
# Dumps the counts since the last dump; sets `per` to them divided by $1. Not called in a
# command substitution: the dump count must survive the call.
per=""
dump() {
  callgrind_control -d "$valgrind_pid" >>"$work/control.log" 2>&1
  dumps=$((dumps + 1))
  # The dump is written after callgrind_control returns; its totals line comes last.
  local file="$work/counts.$dumps"
  for ((i = 0; i < 300; i++)); do grep -q '^totals:' "$file" 2>/dev/null && break; sleep 0.1; done
  if ! grep -q '^totals:' "$file"; then
    echo "callgrind wrote no counts to $file; callgrind_control said:" >&2
    cat "$work/control.log" >&2
    exit 1
  fi
  per="$(awk -v n="$1" '/^totals:/ {printf "%d", $2 / n}' "$file")"
}
run -C -c 1 -t 200; dump 1
run -C -c 1 -t 1000; dump 1000; per_connection="$per"
run -c 1 -t 200; dump 1
run -c 1 -t 5000; dump 5000; per_simple="$per"
run -M extended -c 1 -t 200; dump 1
run -M extended -c 1 -t 5000; dump 5000; per_extended="$per"
echo "binary: $binary"
echo "instructions per connection (pgbench -S -C -c 1): $per_connection"
echo "instructions per simple transaction (pgbench -S -c 1): $per_simple"
echo "instructions per extended transaction (pgbench -S -M extended -c 1): $per_extended"
