"""What psycopg 3 and asyncpg send on their own must pass the shipped
default policy: pool releases (asyncpg's reset query: advisory unlock,
CLOSE ALL, UNLISTEN *, RESET ALL), transactions with isolation levels,
READ ONLY and DEFERRABLE, savepoints, scrollable and plain server-side
cursors (MOVE, FETCH), executemany, LISTEN, SQL EXECUTE of a statement
prepared by name. The application's own
statements here are reads and writes only, which the policy allows; the
table `dps_items (id int, v text)` exists beforehand (DDL is held).

Reads PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE; prints one line
per step; exits non-zero on the first failure, or after 60 s (a held
statement would wait).
"""

import asyncio
import os
import signal
import sys

signal.alarm(60)

ENV = dict(
    host=os.environ["PGHOST"],
    port=int(os.environ["PGPORT"]),
    user=os.environ["PGUSER"],
    password=os.environ.get("PGPASSWORD", ""),
    dbname=os.environ["PGDATABASE"],
)


def step(what):
    print(f"[default-policy] ok {what}", flush=True)


def psycopg_session():
    import psycopg

    with psycopg.connect(**ENV) as conn:
        with conn.transaction():
            conn.execute("INSERT INTO dps_items VALUES (1, 'a')")
            with conn.transaction():
                conn.execute("INSERT INTO dps_items VALUES (2, 'b')")
            try:
                with conn.transaction():
                    conn.execute("SELECT 1/0")
            except psycopg.errors.DivisionByZero:
                pass
        step("psycopg transaction with savepoints")
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO dps_items VALUES (%s, %s)", [(3, "c"), (4, "d")])
        conn.commit()
        step("psycopg executemany")
        with conn.cursor(name="srv", scrollable=True, withhold=True) as cur:
            cur.execute("SELECT id FROM dps_items ORDER BY id")
            assert cur.fetchone() == (1,)
            cur.scroll(0, mode="absolute")
            assert cur.fetchmany(2) == [(1,), (2,)]
            cur.scroll(-1)
            assert cur.fetchall() == [(2,), (3,), (4,)]
        conn.commit()
        step("psycopg scrollable cursor WITH HOLD (MOVE, FETCH)")
        conn.isolation_level = psycopg.IsolationLevel.SERIALIZABLE
        conn.read_only = True
        conn.deferrable = True
        assert conn.execute("SELECT count(*) FROM dps_items").fetchone() == (4,)
        conn.commit()
        step("psycopg BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE")
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = False
        conn.deferrable = False
        conn.execute("SELECT 1")
        conn.rollback()
        step("psycopg READ WRITE NOT DEFERRABLE")
        conn.autocommit = True
        psycopg.types.TypeInfo.fetch(conn, "int4[]")
        step("psycopg type introspection")


async def asyncpg_session():
    import asyncpg

    args = dict(ENV)
    args["database"] = args.pop("dbname")
    pool = await asyncpg.create_pool(min_size=1, max_size=1, **args)
    for n in range(3):
        async with pool.acquire() as conn:
            await conn.add_listener("dps_chan", lambda *a: None)
            async with conn.transaction():
                cur = await conn.cursor("SELECT id FROM dps_items ORDER BY id")
                await cur.forward(1)
                assert (await cur.fetchrow())["id"] == 2
            await conn.execute("SELECT pg_advisory_lock(42)")
        # The release ran the reset query; the one connection is reused.
        step(f"asyncpg pool acquire/release {n}")
    async with pool.acquire() as conn:
        for isolation in ("serializable", "repeatable_read", "read_committed"):
            async with conn.transaction(isolation=isolation, readonly=True, deferrable=True):
                await conn.fetch("SELECT 1")
        async with conn.transaction():
            await conn.execute("INSERT INTO dps_items VALUES (5, 'e')")
            try:
                async with conn.transaction():
                    await conn.execute("SELECT 1/0")
            except asyncpg.DataError:
                pass
        await conn.executemany("INSERT INTO dps_items VALUES ($1, $2)", [(6, "f"), (7, "g")])
        rows = await conn.fetch("SELECT id FROM dps_items WHERE id > 4 ORDER BY id")
        assert [r["id"] for r in rows] == [5, 6, 7], rows
    step("asyncpg isolation levels, savepoints, executemany")
    async with pool.acquire() as conn:
        # A statement prepared under a name (protocol Parse) run by SQL
        # EXECUTE, itself sent as a Parse: it runs what the name means.
        # (asyncpg closes a statement once nothing refers to it: keep it.)
        by_id = await conn.prepare("SELECT id FROM dps_items WHERE id = $1", name="dps_by_id")
        for _ in range(2):
            assert await conn.fetchval("EXECUTE dps_by_id(5)") == 5
        assert await by_id.fetchval(6) == 6
    step("asyncpg EXECUTE of a statement prepared by name")
    await pool.close()
    step("asyncpg pool closed")


def main():
    psycopg_session()
    asyncio.run(asyncpg_session())
    print("[default-policy] PASS", flush=True)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # report, then fail
        print(f"[default-policy] FAIL {type(e).__name__}: {e}", flush=True)
        sys.exit(1)
