#!/usr/bin/env python3
"""asyncpg through the gateway under the shipped default policy: error
recovery inside pipelines and pool release.

* executemany whose third row fails (unique violation): asyncpg pipelines
  Bind/Execute for every row and relies on the server skipping to Sync;
  afterwards the connection must answer correctly, with every value of the
  right type (a relay out of step would hand back answers to its own
  Describe, or mask a value with another statement's column types).
* a pool of one connection released many times: asyncpg resets it with
  RESET ALL (and more) on every release, which must not be held.

Connection settings come from PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE.
Exits non-zero with the reason on the first failure.
"""

import asyncio
import os
import sys

import asyncpg


def fail(why):
    print(why, file=sys.stderr)
    sys.exit(1)


async def main():
    params = dict(
        host=os.environ["PGHOST"],
        port=int(os.environ["PGPORT"]),
        user=os.environ["PGUSER"],
        password=os.environ["PGPASSWORD"],
        database=os.environ["PGDATABASE"],
    )
    conn = await asyncpg.connect(**params)
    # Tables are made directly by the test: DDL is held by the default policy.
    for attempt in range(3):
        try:
            await conn.executemany(
                "INSERT INTO rec_items (id, label) VALUES ($1, $2)",
                [(1, "a"), (2, "b"), (1, "dup"), (3, "c")],
            )
            fail("executemany with a duplicate key did not fail")
        except asyncpg.UniqueViolationError:
            pass
        # The failed batch left nothing (it runs in one implicit transaction).
        count = await conn.fetchval("SELECT count(*) FROM rec_items")
        if count != 0:
            fail(f"after a failed executemany, {count} rows")
        row = await conn.fetchrow(
            "SELECT $1::int AS n, $2::text AS t, now()::date AS d", 41 + attempt, "x"
        )
        if row["n"] != 41 + attempt or row["t"] != "x":
            fail(f"out of step after the error: {row!r}")
        print(f"executemany recovery {attempt}: ok")
    await conn.executemany(
        "INSERT INTO rec_items (id, label) VALUES ($1, $2)", [(1, "a"), (2, "b")]
    )
    labels = [r["label"] for r in await conn.fetch("SELECT label FROM rec_items ORDER BY id")]
    if labels != ["a", "b"]:
        fail(f"rows after a good executemany: {labels}")
    # An error inside a transaction, then a savepoint rollback.
    async with conn.transaction():
        try:
            async with conn.transaction():
                await conn.execute("INSERT INTO rec_items VALUES (1, 'again')")
        except asyncpg.UniqueViolationError:
            pass
        await conn.execute("INSERT INTO rec_items VALUES (9, 'nine')")
    if await conn.fetchval("SELECT label FROM rec_items WHERE id = 9") != "nine":
        fail("savepoint recovery lost the transaction")
    print("savepoint recovery: ok")
    await conn.close()

    pool = await asyncpg.create_pool(min_size=1, max_size=1, **params)
    for i in range(20):
        async with pool.acquire() as c:
            await c.execute("SET work_mem = '8MB'")
            if await c.fetchval("SELECT $1::int", i) != i:
                fail(f"pool round {i}: wrong answer")
    await asyncio.wait_for(pool.close(), 20)
    print("pool release x20: ok")


asyncio.run(asyncio.wait_for(main(), 90))
