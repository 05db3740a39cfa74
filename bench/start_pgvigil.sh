# Sourced by bench/run.sh: starting pgvigil, and the baseline pgvigil of an A/B, each in a
# session of its own with the benchmark's config. Uses run.sh's settings at call time; sets
# PV_STATUS, PV_VERSION, PGVIGIL_PID, BL_VERSION and BASELINE_PID.

pgvigil_unavailable() {
  PV_STATUS="not available ($1)"
  if (( ALLOW_MISSING )); then
    echo "pgvigil: not available ($1)"
    return 0
  fi
  die "pgvigil: $1 (pass --allow-missing-pgvigil to benchmark PgBouncer and direct only)"
}
# The server link in the clear, as PgBouncer's (server_tls_sslmode = disable): PostgreSQL has
# ssl = on for the tls mode, and pgvigil's default sslmode (prefer) would otherwise encrypt
# its server connections while PgBouncer's stay plain, which measures TLS, not the poolers.
write_pgvigil_config() {  # file port admin_port [more keys of the listen map]
  cat >"$1" <<EOF
admin: {listen: "127.0.0.1:$3"}
listen: {address: "127.0.0.1:$2", max_client_connections: $((BENCH_IDLE_CLIENTS + 100))${4:+, $4}}
$PGV_POOL_LINE
databases:
  $DB: {host: 127.0.0.1, port: $PG_PORT, dbname: $DB, user: postgres, pool_mode: transaction, sslmode: disable}
EOF
}
start_pgvigil() {
  if [[ ! -x "$PGVIGIL_BINARY" ]]; then
    log "pgvigil binary missing at $PGVIGIL_BINARY: building with scripts/build.sh"
    if ! run_waited timeout 1200 scripts/build.sh >"$TMP/build.log" 2>&1 || [[ ! -x "$PGVIGIL_BINARY" ]]; then
      tail -15 "$TMP/build.log" >&2
      pgvigil_unavailable "build failed; see above"
      return
    fi
  fi
  PV_VERSION="$("$PGVIGIL_BINARY" --version 2>/dev/null | head -1 || echo unknown)"
  write_pgvigil_config "$TMP/pgvigil.yaml" "$PV_PORT" "$PV_ADMIN_PORT" \
    "tls: {cert_file: \"$TMP/tls.crt\", key_file: \"$TMP/tls.key\"}"
  log "pgvigil: port $PV_PORT, admin $PV_ADMIN_PORT ($POOL_LAYOUT pool: ${PGV_POOL_LINE:-as in config.yaml})"
  # In a session of its own, as PgBouncer (-d) and PostgreSQL (pg_ctl) are: with the kernel's
  # autogroup scheduling each session shares one CPU weight, so a pooler left in this script's
  # session would share pgbench's. setsid execs in place (this shell has no job control, so the
  # child is not a process group leader): $! is pgvigil's pid.
  setsid "$PGVIGIL_BINARY" --config "$TMP/pgvigil.yaml" >"$TMP/pgvigil.log" 2>&1 &
  PGVIGIL_PID=$!
  local i
  for ((i = 0; i < 200; i++)); do
    if ! kill -0 "$PGVIGIL_PID" 2>/dev/null; then
      wait "$PGVIGIL_PID" 2>/dev/null || true
      PGVIGIL_PID=""
      tail -15 "$TMP/pgvigil.log" >&2
      pgvigil_unavailable "exited at start-up; see above"
      return
    fi
    port_open "$PV_PORT" && { PV_STATUS=ok; return; }
    sleep 0.1
  done
  tail -15 "$TMP/pgvigil.log" >&2
  pgvigil_unavailable "not listening on 127.0.0.1:$PV_PORT after 20s"
}

start_baseline() {
  [[ -x "$BENCH_BASELINE_BINARY" ]] || die "BENCH_BASELINE_BINARY=$BENCH_BASELINE_BINARY is not an executable"
  BL_VERSION="$("$BENCH_BASELINE_BINARY" --version 2>/dev/null | head -1 || echo unknown)"
  write_pgvigil_config "$TMP/baseline.yaml" "$BL_PORT" "$BL_ADMIN_PORT" "$BENCH_BASELINE_LISTEN"
  [[ -z "$BENCH_BASELINE_YAML" ]] || printf '%s\n' "$BENCH_BASELINE_YAML" >>"$TMP/baseline.yaml"
  log "baseline pgvigil ($BENCH_BASELINE_BINARY): port $BL_PORT"
  setsid "$BENCH_BASELINE_BINARY" --config "$TMP/baseline.yaml" >"$TMP/baseline.log" 2>&1 &
  BASELINE_PID=$!
  wait_port "$BL_PORT" 20 || { tail -15 "$TMP/baseline.log" >&2; die "the baseline pgvigil is not listening"; }
}
