#!/usr/bin/env bash
# Builds pgvigil, starts a throwaway PostgreSQL on 127.0.0.1, and runs pgvigil against it in the
# foreground. Ctrl-C (or SIGTERM) stops pgvigil, then the PostgreSQL this script started.
#
# Where things live:
#   .run/config.yaml   the config pgvigil runs with (rewritten on every run)
#   PostgreSQL data    .run/pg when not root. As root it is /var/tmp/pgvigil-run-<hash of this
#                      checkout>, linked from .run/pg: PostgreSQL must run as user postgres, which
#                      cannot enter a checkout under /root (mode 0700).
# The data dir is re-created on each run; its server.log stays for a look after the run.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo_root=$(pwd)
scripts/build.sh </dev/null

source scripts/lib/paths.sh
if [[ ! -x $PGVIGIL_BINARY ]]; then
  echo "run: $PGVIGIL_BINARY was not built (is the daemon target in place?)" >&2
  exit 1
fi

if [[ ! -x $PGVIGIL_PG_BINDIR/initdb ]]; then
  echo "run: PostgreSQL server binaries not found (set PGVIGIL_PG_BINDIR)" >&2
  exit 1
fi

mkdir -p .run
if [[ $(id -u) -eq 0 ]]; then
  pg_dir=/var/tmp/pgvigil-run-$(printf '%s' "$repo_root" | sha256sum | cut -c1-12)
  as_pg() { runuser -u postgres -- "$@"; }
else
  pg_dir=$repo_root/.run/pg
  as_pg() { "$@"; }
fi
data_dir=$pg_dir/data
server_log=$pg_dir/server.log

# A server left over from a run that was killed with SIGKILL still owns the old data dir.
if [[ -f $data_dir/postmaster.pid ]]; then
  (cd / && as_pg "$PGVIGIL_PG_BINDIR/pg_ctl" -D "$data_dir" -m immediate -w stop) >/dev/null 2>&1 || true
fi
if [[ $(id -u) -eq 0 ]]; then
  rm -rf "$pg_dir"
  install -d -m 0700 -o postgres -g postgres "$pg_dir"
  ln -sfn "$pg_dir" .run/pg
else
  rm -rf "$pg_dir"
  mkdir -m 0700 "$pg_dir"
fi

port_in_use() { [[ -n $(ss -Htln "( sport = :$1 )" 2>/dev/null) ]]; }
port=${PGVIGIL_RUN_PG_PORT:-5433}
while port_in_use "$port"; do port=$((port + 1)); done

# The tools run from / because the caller's directory may be closed to user postgres.
if ! (cd / && as_pg "$PGVIGIL_PG_BINDIR/initdb" -D "$data_dir" -U postgres -A trust -E UTF8 --locale=C \
      --no-sync --no-instructions) >"$repo_root/.run/initdb.log" 2>&1; then
  echo "run: initdb FAILED:" >&2
  tail -n 20 .run/initdb.log >&2
  exit 1
fi

started=0
stop_postgres() {
  if [[ $started -eq 1 ]]; then
    echo "run: stopping PostgreSQL ($data_dir)"
    (cd / && as_pg "$PGVIGIL_PG_BINDIR/pg_ctl" -D "$data_dir" -m fast -w stop) >/dev/null 2>&1 || true
    started=0
  fi
}
trap stop_postgres EXIT

if ! (cd / && as_pg "$PGVIGIL_PG_BINDIR/pg_ctl" -D "$data_dir" -l "$server_log" -w -t 60 \
      -o "-p $port -k '$pg_dir' -c listen_addresses=127.0.0.1 -c fsync=off" start) >/dev/null 2>&1; then
  echo "run: PostgreSQL did not start; last lines of $server_log:" >&2
  tail -n 20 "$server_log" >&2 || true
  exit 1
fi
started=1

pg_ctl_prefix=""
if [[ $(id -u) -eq 0 ]]; then pg_ctl_prefix="runuser -u postgres -- "; fi
proxy_port=${PGVIGIL_RUN_PORT:-6432}
while port_in_use "$proxy_port"; do proxy_port=$((proxy_port + 1)); done

cat >.run/config.yaml <<YAML
# Written by scripts/run.sh on every run: one pool for the throwaway PostgreSQL, all else default.
listen:
  address: "127.0.0.1:$proxy_port"
  unix_socket_dir: "$repo_root/.run"
databases:
  postgres:
    host: 127.0.0.1
    port: $port
    dbname: postgres
    user: postgres
YAML

cat <<INFO

PostgreSQL  127.0.0.1:$port (throwaway)   data: $data_dir   log: $server_log
pgvigil     config: .run/config.yaml
  connect:  psql -h 127.0.0.1 -p $proxy_port -U postgres postgres
            psql -h $repo_root/.run -p $proxy_port -U postgres postgres   (Unix socket)
  metrics:  curl http://127.0.0.1:9930/metrics   (also /healthz and /readyz)
Break the server and watch pgvigil notice (from another terminal):
  stop:     $pg_ctl_prefix$PGVIGIL_PG_BINDIR/pg_ctl -D $data_dir -m fast stop
  start:    $pg_ctl_prefix$PGVIGIL_PG_BINDIR/pg_ctl -D $data_dir -l $server_log -o "-p $port -k '$pg_dir' -c listen_addresses=127.0.0.1 -c fsync=off" start
Stop with Ctrl-C: pgvigil shuts down, then this PostgreSQL is stopped.

INFO

# pgvigil runs as a background job so this shell can forward Ctrl-C / SIGTERM to it and still
# stop PostgreSQL afterwards (a shell delays its traps until a foreground child exits).
"$PGVIGIL_BINARY" --config .run/config.yaml </dev/null &
daemon_pid=$!
trap 'kill -TERM "$daemon_pid" 2>/dev/null || true' INT TERM
status=0
while kill -0 "$daemon_pid" 2>/dev/null; do
  if wait "$daemon_pid"; then status=0; else status=$?; fi
done
echo "run: pgvigil exited with status $status"
exit "$status"
