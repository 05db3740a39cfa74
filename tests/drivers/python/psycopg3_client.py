#!/usr/bin/python3
"""psycopg 3 through pgvigil: usage  psycopg3_client.py "host=... port=... dbname=... user=..."

Proves psycopg 3's prepared statements work through a transaction-pooling
pgvigil with few server connections: two phases (default prepare_threshold=5,
then prepare=True on every execute), 8 threads each with its own connection,
~300 executions per thread over 50 parameterised SELECT texts plus INSERT/SELECT
on a scratch table, some inside `with conn.transaction()`; every result checked.
Also: psycopg's cache rotation past prepared_max=100, a division by zero in a prepared statement (autocommit and inside a
transaction, whose ROLLBACK makes psycopg send its own DEALLOCATE ALL), a
user-issued DEALLOCATE ALL, and that statements really are prepared (psycopg's
cache, and pg_prepared_statements on the server connection running them).
Prints "psycopg3 OK: N executions, 0 errors" and exits 0, else prints failures, exits 1.
"""
import random
import sys
import threading
import uuid

import psycopg
from psycopg import errors

DSN = sys.argv[1] if len(sys.argv) > 1 else \
    "host=127.0.0.1 port=56432 dbname=postgres user=postgres sslmode=disable"
THREADS, PER_THREAD = 8, 300
RUN = uuid.uuid4().hex[:12]   # texts and table unique to this run
TEXTS = [f"SELECT %s::int + {k} /* {RUN} */" for k in range(50)]
TABLE = "pgv_drv_py_" + RUN

lock = threading.Lock()
failures = []
executions = 0
seen_on_server = []      # names seen in pg_prepared_statements


def fail(msg):
    with lock:
        failures.append(msg)


def check(what, got, want):
    if got != want:
        fail(f"{what}: got {got!r}, want {want!r}")


def worker(tid, prep):
    global executions
    rnd = random.Random(tid * 7919 + (prep is True))
    n = 0
    tag = tid + (100 if prep else 0)
    inserted = 0

    def q(conn, sql, params):
        nonlocal n
        n += 1
        return conn.execute(sql, params, prepare=prep)

    try:
        with psycopg.connect(DSN, autocommit=True) as conn:
            for i in range(PER_THREAD):
                k, x = rnd.randrange(50), rnd.randrange(1, 10**6)
                kind = i % 10
                if kind < 6:
                    check(f"t{tag} select k={k}", q(conn, TEXTS[k], (x,)).fetchone()[0], x + k)
                elif kind < 8:
                    k2 = rnd.randrange(50)
                    with conn.transaction():
                        a = q(conn, TEXTS[k], (x,)).fetchone()[0]
                        q(conn, f"INSERT INTO {TABLE} (tag, v) VALUES (%s, %s)", (tag, x))
                        b = q(conn, TEXTS[k2], (a,)).fetchone()[0]
                    inserted += 1
                    check(f"t{tag} tx k={k},{k2}", b, x + k + k2)
                elif kind == 8:
                    got = q(conn, f"SELECT count(*) FROM {TABLE} WHERE tag = %s", (tag,)).fetchone()[0]
                    check(f"t{tag} count", got, inserted)
                else:
                    got = q(conn, f"SELECT coalesce(max(v), -1) FROM {TABLE} WHERE tag = %s AND v = %s",
                            (tag, x)).fetchone()[0]
                    if got not in (-1, x):
                        fail(f"t{tag} max: got {got}, want -1 or {x}")
                if i == 40:   # warm: statements are prepared, in psycopg and on the server
                    if hasattr(conn, "_prepared") and not conn._prepared._names:
                        fail(f"t{tag}: psycopg cache holds no prepared statement after warm-up")
                    with conn.transaction():   # same server connection for both
                        check(f"t{tag} warm", q(conn, TEXTS[k], (x,)).fetchone()[0], x + k)
                        names = [r[0] for r in conn.execute(
                            "SELECT name FROM pg_prepared_statements").fetchall()]
                    if not names:
                        fail(f"t{tag}: pg_prepared_statements empty on the server connection")
                    with lock:
                        seen_on_server.extend(names[:3])
                if i == 100:
                    n += errors_case(conn, tag, prep)
            if inserted:
                check(f"t{tag} final count", conn.execute(
                    f"SELECT count(*) FROM {TABLE} WHERE tag = %s", (tag,), prepare=prep).fetchone()[0],
                    inserted)
                n += 1
    except Exception as e:  # noqa: BLE001
        fail(f"t{tag}: unexpected {type(e).__name__}: {e}")
    with lock:
        executions += n


def errors_case(conn, tag, prep):
    """Division by zero in a prepared statement, DEALLOCATE ALL; returns executions."""
    n = 0
    div = f"SELECT 100 / %s::int /* {RUN} */"
    for d in (1, 2, 4, 5, 10, 20):   # past the threshold: now prepared
        check(f"t{tag} div", conn.execute(div, (d,), prepare=prep).fetchone()[0], 100 // d); n += 1
    try:
        conn.execute(div, (0,), prepare=prep); n += 1
        fail(f"t{tag}: 100/0 did not fail")
    except errors.DivisionByZero:
        n += 1
    check(f"t{tag} after div0", conn.execute(div, (25,), prepare=prep).fetchone()[0], 4); n += 1
    # error inside a transaction: ROLLBACK, on which psycopg sends DEALLOCATE ALL itself
    try:
        with conn.transaction():
            conn.execute(TEXTS[3], (1,), prepare=prep); n += 1
            conn.execute(div, (0,), prepare=prep); n += 1
        fail(f"t{tag}: 100/0 in transaction did not fail")
    except errors.DivisionByZero:
        pass
    check(f"t{tag} after rollback", conn.execute(div, (50,), prepare=prep).fetchone()[0], 2); n += 1
    for k in range(5):
        check(f"t{tag} after rollback k={k}",
              conn.execute(TEXTS[k], (10,), prepare=prep).fetchone()[0], 10 + k); n += 1
    # a user DEALLOCATE ALL: psycopg 3.1 does not track it, so its cached name is
    # gone on the server as with PostgreSQL itself; then clear psycopg's cache
    conn.execute("DEALLOCATE ALL"); n += 1
    try:
        check(f"t{tag} after DEALLOCATE ALL", conn.execute(div, (5,), prepare=prep).fetchone()[0], 20)
        n += 1
    except errors.InvalidSqlStatementName:
        n += 1
        conn._prepared.clear()   # forget the names; send psycopg's own DEALLOCATE ALL now
        for cmd in conn._prepared.get_maintenance_commands():
            conn.execute(cmd, prepare=False); n += 1
    for d in (5, 4, 2, 1, 10, 20, 25):
        check(f"t{tag} after DEALLOCATE ALL d={d}",
              conn.execute(div, (d,), prepare=prep).fetchone()[0], 100 // d); n += 1
    return n


def rotation_case():
    """psycopg keeps at most prepared_max (100) statements: the 101st makes it send
    DEALLOCATE of its oldest name (extended protocol). Returns executions."""
    global executions
    with psycopg.connect(DSN, autocommit=True) as conn:
        for k in range(110):
            try:
                check(f"rotation k={k}", conn.execute(f"SELECT %s::int + {k} /* rot {RUN} */",
                                                      (k,), prepare=True).fetchone()[0], 2 * k)
            except Exception as e:  # noqa: BLE001
                return fail(f"rotation k={k}: unexpected {type(e).__name__}: {e}")
            finally:
                executions += 1
        check("rotation cache size", len(conn._prepared._names), conn.prepared_max)


def main():
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {TABLE} (tag int NOT NULL, v int NOT NULL)")
    try:
        for prep in (None, True):
            ts = [threading.Thread(target=worker, args=(t, prep)) for t in range(THREADS)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
        rotation_case()
    finally:
        with psycopg.connect(DSN, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
    if not seen_on_server:
        fail("no prepared statement ever seen in pg_prepared_statements")
    if failures:
        for f in failures[:30]:
            print("FAIL:", f)
        print(f"psycopg3 FAILED: {executions} executions, {len(failures)} errors "
              f"(server names e.g. {sorted(set(seen_on_server))[:3]})")
        sys.exit(1)
    print(f"psycopg3 OK: {executions} executions, 0 errors "
          f"(server statement names e.g. {sorted(set(seen_on_server))[:3]})")


if __name__ == "__main__":
    main()
