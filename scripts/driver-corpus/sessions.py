"""The Python drivers' own traffic, for the driver corpus (see capture.py).

Each session does what an application typically does — connect, a
transaction with a savepoint, a cursor, executemany, a pool release,
close — and leaves the rest to the driver. Every statement the
application itself writes starts with the marker comment `/*app*/`, so
that capture.py keeps only what the driver sent on its own (a driver's
wrapper around an application statement, e.g. `DECLARE … CURSOR FOR
/*app*/ …`, is kept).

Usage: python3 sessions.py {psycopg|asyncpg|pymysql|mysql-connector} DB
"""

import asyncio
import sys

APP = "/*app*/ "
PG = dict(host="127.0.0.1", port=5432, user="postgres")
MY = dict(host="127.0.0.1", port=3306, user="root", password="")


def psycopg_session(db):
    import psycopg
    from psycopg import sql  # noqa: F401  (imported as applications do)

    with psycopg.connect(dbname=db, **PG) as conn:
        conn.execute(APP + "CREATE TABLE t (id int, v text)")
        conn.commit()
        with conn.transaction():
            conn.execute(APP + "INSERT INTO t VALUES (1, 'a')")
            with conn.transaction():  # a savepoint
                conn.execute(APP + "INSERT INTO t VALUES (2, 'b')")
            try:
                with conn.transaction():
                    conn.execute(APP + "SELECT 1/0")
            except psycopg.errors.DivisionByZero:
                pass
        with conn.cursor() as cur:
            cur.executemany(APP + "INSERT INTO t VALUES (%s, %s)", [(3, "c"), (4, "d")])
        conn.commit()
        with conn.cursor(name="srv", scrollable=True, withhold=True) as cur:
            cur.execute(APP + "SELECT * FROM t ORDER BY id")
            cur.fetchone()
            cur.scroll(0, mode="absolute")
            cur.fetchmany(2)
            cur.fetchall()
        conn.commit()
        with conn.cursor(name="plain") as cur:
            cur.execute(APP + "SELECT * FROM t")
            cur.fetchall()
        conn.rollback()
        conn.isolation_level = psycopg.IsolationLevel.SERIALIZABLE
        conn.read_only = True
        conn.deferrable = True
        conn.execute(APP + "SELECT 1")
        conn.commit()
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = False
        conn.deferrable = False
        conn.execute(APP + "SELECT 1")
        conn.rollback()
        conn.autocommit = True
        with conn.pipeline():
            conn.execute(APP + "SELECT 1")
            conn.execute(APP + "SELECT 2")
        psycopg.types.TypeInfo.fetch(conn, "text")
        psycopg.types.TypeInfo.fetch(conn, "int4[]")
        from psycopg.types.enum import EnumInfo
        from psycopg.types.composite import CompositeInfo
        from psycopg.types.range import RangeInfo

        EnumInfo.fetch(conn, "text")
        CompositeInfo.fetch(conn, "t")
        RangeInfo.fetch(conn, "int4range")
        with conn.cursor() as cur:
            with cur.copy(APP + "COPY t TO STDOUT") as copy:
                for _ in copy:
                    pass
        conn.execute(APP + "DROP TABLE t")
    # Two-phase commit, as psycopg's tpc_* API sends it (the server may
    # have max_prepared_transactions = 0: PREPARE TRANSACTION then fails).
    conn = psycopg.connect(dbname=db, **PG)
    try:
        conn.tpc_begin(conn.xid(1, "gtrid", "bqual"))
        conn.execute(APP + "SELECT 1")
        conn.tpc_prepare()
        conn.tpc_rollback()
    except psycopg.Error:
        pass
    conn.close()
    with psycopg.connect(dbname=db, **PG) as conn:
        conn.tpc_recover()


async def asyncpg_session(db):
    import asyncpg

    conn = await asyncpg.connect(database=db, **PG)
    await conn.execute(APP + "CREATE TABLE t (id int, v text, e text[])")
    async with conn.transaction():
        await conn.execute(APP + "INSERT INTO t VALUES (1, 'a')")
        async with conn.transaction():  # a savepoint
            await conn.execute(APP + "INSERT INTO t VALUES (2, 'b')")
        try:
            async with conn.transaction():
                await conn.execute(APP + "SELECT 1/0")
        except asyncpg.DataError:
            pass
    await conn.executemany(APP + "INSERT INTO t VALUES ($1, $2)", [(3, "c"), (4, "d")])
    for isolation in ("serializable", "repeatable_read", "read_committed"):
        async with conn.transaction(isolation=isolation, readonly=True, deferrable=True):
            await conn.fetch(APP + "SELECT 1")
    async with conn.transaction(isolation="repeatable_read", readonly=False):
        await conn.fetch(APP + "SELECT 1")
    async with conn.transaction():
        async for _ in conn.cursor(APP + "SELECT * FROM t", prefetch=1):
            pass
        cur = await conn.cursor(APP + "SELECT * FROM t")
        await cur.fetch(2)
        await cur.forward(1)
        await cur.fetchrow()
    # Types the introspection query has to look up.
    await conn.fetch(APP + "SELECT e, '{1}'::int[], int4range(1, 2), ROW(1, 'x') FROM t")
    await conn.set_type_codec("json", encoder=str, decoder=str, schema="pg_catalog")
    await conn.reload_schema_state()
    await conn.add_listener("chan", lambda *a: None)
    await conn.remove_listener("chan", lambda *a: None)
    await conn.execute(APP + "DROP TABLE t")
    await conn.close()
    # A pool: acquire, use, release (the reset query), close.
    pool = await asyncpg.create_pool(database=db, min_size=1, max_size=2, **PG)
    async with pool.acquire() as c:
        await c.fetch(APP + "SELECT 1")
        await c.add_listener("chan2", lambda *a: None)
    async with pool.acquire() as c:
        await c.fetch(APP + "SELECT 2")
    await pool.close()


def pymysql_session(db):
    import pymysql

    conn = pymysql.connect(database=db, **MY)
    with conn.cursor() as cur:
        cur.execute(APP + "CREATE TABLE t (id int, v text)")
        conn.begin()
        cur.execute(APP + "INSERT INTO t VALUES (1, 'a')")
        cur.execute(APP + "SAVEPOINT s1")
        conn.rollback()
        cur.executemany(APP + "INSERT INTO t VALUES (%s, %s)", [(3, "c"), (4, "d")])
        conn.commit()
        cur.execute(APP + "SELECT * FROM t")
        cur.fetchall()
        cur.execute(APP + "SELECT 1/0")
        cur.execute(APP + "SHOW WARNINGS")
    with conn.cursor(pymysql.cursors.SSCursor) as cur:
        cur.execute(APP + "SELECT * FROM t")
        cur.fetchall()
    conn.autocommit(True)
    conn.autocommit(False)
    conn.ping(reconnect=True)
    conn.select_db(db)
    conn.set_charset("utf8mb4")
    conn.show_warnings()
    with conn.cursor() as cur:
        cur.execute(APP + "DROP TABLE t")
    conn.close()


def mysql_connector_session(db, pure):
    import mysql.connector

    conn = mysql.connector.connect(database=db, use_pure=pure, **MY)
    cur = conn.cursor()
    cur.execute(APP + "CREATE TABLE t (id int, v text)")
    conn.start_transaction(isolation_level="REPEATABLE READ")
    cur.execute(APP + "INSERT INTO t VALUES (1, 'a')")
    conn.rollback()
    conn.start_transaction(isolation_level="SERIALIZABLE")
    conn.commit()
    conn.start_transaction(consistent_snapshot=True)
    conn.commit()
    cur.executemany(APP + "INSERT INTO t VALUES (%s, %s)", [(3, "c"), (4, "d")])
    conn.commit()
    cur.execute(APP + "SELECT * FROM t")
    cur.fetchall()
    prepared = conn.cursor(prepared=True)
    prepared.execute(APP + "SELECT * FROM t WHERE id = %s", (3,))
    prepared.fetchall()
    prepared.close()
    conn.autocommit = True
    conn.autocommit = False
    conn.set_charset_collation("utf8mb4", "utf8mb4_general_ci")
    conn.time_zone = "+00:00"
    conn.sql_mode = "TRADITIONAL"
    _ = conn.time_zone, conn.sql_mode, conn.autocommit
    conn.ping(reconnect=True)
    conn.cmd_reset_connection()
    conn.reset_session({"a": 1}, {"wait_timeout": 100})
    conn.database = db
    cur = conn.cursor()
    cur.execute(APP + "DROP TABLE t")
    cur.close()
    conn.close()


def main():
    which, db = sys.argv[1], sys.argv[2]
    if which == "psycopg":
        psycopg_session(db)
    elif which == "asyncpg":
        asyncio.run(asyncpg_session(db))
    elif which == "pymysql":
        pymysql_session(db)
    elif which == "mysql-connector":
        mysql_connector_session(db, pure=True)
        mysql_connector_session(db, pure=False)
    else:
        sys.exit(f"unknown driver {which}")


if __name__ == "__main__":
    main()
