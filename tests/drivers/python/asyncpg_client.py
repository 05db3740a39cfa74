#!/usr/bin/python3
"""asyncpg through pgvigil: usage  asyncpg_client.py DSN
DSN is either libpq key=value ("host=127.0.0.1 port=56432 dbname=postgres user=postgres
sslmode=disable"; values without spaces or quotes), converted here to a URL, or a URL
("postgresql://postgres@127.0.0.1:56432/postgres?sslmode=disable") passed on as is.

Proves asyncpg with its DEFAULT settings (every query a named prepared statement,
statement cache of 100, type introspection) works through a transaction-pooling pgvigil
with few server connections: 16 asyncpg.connect connections and an asyncpg.create_pool of
8 at once, ~300 operations each over 50 distinct $1 texts (fetchval, fetch, executemany,
`async with conn.transaction()`, an explicit conn.prepare() statement reused), every
result checked; a division by zero (plain and in a transaction) then continuing; an enum
type (introspection); a cache rotation past 100 texts (asyncpg Closes the evicted); and
that the statements are really prepared on the server (pg_prepared_statements).
Prints "asyncpg OK: N executions, 0 errors" and exits 0, else prints failures, exits 1.
"""
import asyncio
import random
import sys
import uuid

import asyncpg

ARG = sys.argv[1] if len(sys.argv) > 1 else \
    "host=127.0.0.1 port=56432 dbname=postgres user=postgres sslmode=disable"
RUN = uuid.uuid4().hex[:12]   # texts, table and type unique to this run
TEXTS = [f"SELECT $1::int + {k} /* {RUN} */" for k in range(50)]
OPS = 200   # operations per connection (~1.6 statements each)
TABLE, MOOD = "pgv_drv_apg_" + RUN, "pgv_mood_" + RUN
failures, seen_on_server = [], set()
executions = 0


def to_url(arg):
    if "://" in arg:
        return arg
    kv = dict(p.split("=", 1) for p in arg.split())
    url = f"postgresql://{kv.get('user', 'postgres')}@{kv.get('host', '127.0.0.1')}:" \
          f"{kv.get('port', '5432')}/{kv.get('dbname', 'postgres')}"
    return url + (f"?sslmode={kv['sslmode']}" if "sslmode" in kv else "")


URL = to_url(ARG)


def check(what, got, want):
    if got != want:
        failures.append(f"{what}: got {got!r}, want {want!r}")


async def step(conn, tag, i, rnd, state):
    """One operation of the mix; returns how many statements it executed."""
    k, x = rnd.randrange(50), rnd.randrange(1, 10**6)
    kind = i % 10
    if kind < 4:
        check(f"{tag} fetchval k={k}", await conn.fetchval(TEXTS[k], x), x + k)
        return 1
    if kind == 4:
        rows = await conn.fetch(f"SELECT g, g + $1::int FROM generate_series(1, $2::int) g "
                                f"/* {RUN} */", x, k % 5 + 1)
        check(f"{tag} fetch", [tuple(r) for r in rows], [(g, g + x) for g in range(1, k % 5 + 2)])
        return 1
    if kind == 5:
        k2 = rnd.randrange(50)
        async with conn.transaction():
            a = await conn.fetchval(TEXTS[k], x)
            await conn.execute(f"INSERT INTO {TABLE} (tag, v) VALUES ($1, $2)", tag, a)
            b = await conn.fetchval(TEXTS[k2], a)
        state["rows"] += 1
        check(f"{tag} tx", b, x + k + k2)
        return 3
    if kind == 6:
        await conn.executemany(f"INSERT INTO {TABLE} (tag, v) VALUES ($1, $2)",
                               [(tag, x + j) for j in range(3)])
        state["rows"] += 3
        check(f"{tag} count", await conn.fetchval(
            f"SELECT count(*) FROM {TABLE} WHERE tag = $1", tag), state["rows"])
        return 4
    if kind == 7:
        stmt = state.get(conn)
        if stmt is None:   # one explicit statement per connection, reused
            stmt = state[conn] = await conn.prepare(f"SELECT $1::int * 2 /* {RUN} */")
        check(f"{tag} prepared", await stmt.fetchval(x), 2 * x)
        return 1
    if kind == 8 and i % 100 == 8:   # an error, plain and inside a transaction, then on
        div = f"SELECT 100 / $1::int /* {RUN} */"
        check(f"{tag} div", await conn.fetchval(div, 4), 25)
        for in_tx in (False, True):
            try:
                if in_tx:
                    async with conn.transaction():
                        await conn.fetchval(TEXTS[k], x)
                        await conn.fetchval(div, 0)
                else:
                    await conn.fetchval(div, 0)
                failures.append(f"{tag}: 100/0 did not fail")
            except asyncpg.DivisionByZeroError:
                pass
            check(f"{tag} after div0", await conn.fetchval(div, 5), 20)
        return 7
    if kind == 8 and i % 100 == 18:   # really prepared: on this very server connection
        async with conn.transaction():
            check(f"{tag} warm", await conn.fetchval(TEXTS[k], x), x + k)
            names = await conn.fetch("SELECT name FROM pg_prepared_statements")
        if not names:
            failures.append(f"{tag}: pg_prepared_statements empty on its server connection")
        seen_on_server.update(r[0] for r in names[:3])
        return 2
    if tag % 4 == 0:   # a few connections only: introspection is slow where jit is on
        check(f"{tag} enum", await conn.fetchval(f"SELECT $1::{MOOD}", "ok"), "ok")
    else:
        check(f"{tag} fetchval k={k}", await conn.fetchval(TEXTS[k], -x), k - x)
    return 1


async def run(tag, ops, acquire):
    global executions
    rnd, state = random.Random(tag), {"rows": 0}
    try:
        for i in range(ops):
            async with acquire() as conn:
                n = await step(conn, tag, i, rnd, state)
                executions += n
    except Exception as e:  # noqa: BLE001
        failures.append(f"{tag} op {i}: unexpected {type(e).__name__}: {e}")


def own(conn):
    class Ctx:   # a connection of one's own, "acquired" for every step
        async def __aenter__(self):
            return conn

        async def __aexit__(self, *exc):
            return False
    return Ctx


async def rotation():
    """111 texts on one connection: asyncpg's cache (100) Closes the evicted statements."""
    global executions
    conn = await asyncpg.connect(URL)
    try:
        for rep in range(2):
            for k in range(111):
                check(f"rotation {rep} k={k}", await conn.fetchval(
                    f"SELECT $1::int + {k} /* rot {RUN} */", k), 2 * k)
                executions += 1
    except Exception as e:  # noqa: BLE001
        failures.append(f"rotation k={k}: unexpected {type(e).__name__}: {e}")
    finally:
        await conn.close()


async def main():
    admin = await asyncpg.connect(URL)
    await admin.execute(f"CREATE TABLE {TABLE} (tag int NOT NULL, v int NOT NULL);"
                        f"CREATE TYPE {MOOD} AS ENUM ('ok', 'meh')")
    try:
        conns = await asyncio.gather(*(asyncpg.connect(URL) for _ in range(16)))
        pool = await asyncpg.create_pool(URL, min_size=8, max_size=8)
        try:
            await asyncio.gather(*(run(t, OPS, own(c)) for t, c in enumerate(conns)),
                                 *(run(100 + t, OPS, pool.acquire) for t in range(8)),
                                 rotation())
        finally:
            await asyncio.gather(*(c.close() for c in conns))
            await pool.close()
        for t in [*range(16), *range(100, 108)]:
            rows = await admin.fetchval(f"SELECT count(*) FROM {TABLE} WHERE tag = $1", t)
            check(f"{t} final rows", rows, OPS // 10 * 4)   # per 10 ops: 1 tx insert, 3 executemany
    finally:
        await admin.execute(f"DROP TABLE IF EXISTS {TABLE}; DROP TYPE IF EXISTS {MOOD}")
        await admin.close()
    if not seen_on_server:
        failures.append("no prepared statement ever seen in pg_prepared_statements")
    names = sorted(seen_on_server)[:3]
    if failures:
        for f in failures[:30]:
            print("FAIL:", f)
        print(f"asyncpg FAILED: {executions} executions, {len(failures)} errors (server names e.g. {names})")
        sys.exit(1)
    print(f"asyncpg OK: {executions} executions, 0 errors (server statement names e.g. {names})")


if __name__ == "__main__":
    asyncio.run(asyncio.wait_for(main(), 25))
