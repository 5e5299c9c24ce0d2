#!/usr/bin/env python3
"""Scripted asyncpg session, run against the gateway or directly against Postgres.

asyncpg always uses the extended protocol with binary formats and named
prepared statements, so it exercises a different path than psycopg's defaults.

Connection settings come from PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE.
Every object this script creates is prefixed `apg_` so other driver sessions
can run at the same time in the same database.

Prints one line per step; on the first failure prints the reason to stderr
and exits 1.
"""

import asyncio
import io
import json
import os
import sys
import uuid
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import asyncpg

DRIVER = "asyncpg"
# A stuck gateway must fail this script, not hang the caller.
DEADLINE_SECONDS = 60


class StepFailed(Exception):
    pass


class SessionFailed(Exception):
    """Raised once a step has reported its failure; ends the session quietly."""


class Steps:
    """Async counterpart of a `with step(name):` block: `async with steps(name):`."""

    def __call__(self, name):
        self.name = name
        return self

    async def __aenter__(self):
        return self

    async def __aexit__(self, exc_type, exc, tb):
        if exc is not None:
            print(f"[{DRIVER}] FAIL {self.name}: {exc_type.__name__}: {exc}", file=sys.stderr)
            # sys.exit() inside an asyncio task dumps a traceback; unwind to main() instead.
            raise SessionFailed from None
        print(f"[{DRIVER}] ok   {self.name}")


step = Steps()


def check(actual, expected, what):
    # isinstance rather than exact type: asyncpg returns its own uuid.UUID subclass.
    if actual != expected or not isinstance(actual, type(expected)):
        raise StepFailed(
            f"{what}: expected {expected!r} ({type(expected).__name__}), "
            f"got {actual!r} ({type(actual).__name__})"
        )


async def connect(**kwargs):
    conn = await asyncpg.connect(
        host=os.environ["PGHOST"],
        port=int(os.environ["PGPORT"]),
        user=os.environ["PGUSER"],
        password=os.environ["PGPASSWORD"],
        database=os.environ["PGDATABASE"],
        timeout=10,
        **kwargs,
    )
    # Decode JSON into Python objects the way applications usually configure asyncpg.
    for pg_type in ("json", "jsonb"):
        await conn.set_type_codec(pg_type, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    return conn


TYPE_COLUMNS = [
    ("c_int2", "int2", -32768),
    ("c_int4", "int4", 2147483647),
    ("c_int8", "int8", -9223372036854775808),
    ("c_numeric", "numeric", Decimal("-98765432109876543210.000000000000000001")),
    ("c_float8", "float8", 1.0000000000000002),
    ("c_text", "text", "naïve café — 中文 🐘"),
    ("c_bytea", "bytea", bytes(range(255, -1, -1))),
    ("c_bool", "bool", False),
    ("c_uuid", "uuid", uuid.UUID("123e4567-e89b-12d3-a456-426614174000")),
    ("c_date", "date", date(1999, 12, 31)),
    ("c_tstz", "timestamptz", datetime(2024, 7, 1, 23, 59, 59, 123456, tzinfo=timezone.utc)),
    ("c_interval", "interval", timedelta(days=-1, seconds=30, microseconds=5)),
    ("c_json", "json", {"list": [1, "two", None], "nested": {"ok": True}}),
    ("c_jsonb", "jsonb", {"π": 3.14159, "empty": []}),
    ("c_int_arr", "int4[]", [10, None, -30]),
    ("c_text_arr", "text[]", ["x", "", None, "with,comma", "ü"]),
]


async def session():
    async with step("connect with a non-UTC TimeZone startup parameter, plus a second connection"):
        conn = await connect(server_settings={"TimeZone": "America/St_Johns", "application_name": "airlock-asyncpg-session"})
        other = await connect()
        check(await conn.fetchval("SHOW TimeZone"), "America/St_Johns", "TimeZone")
        check(conn.get_server_version().major >= 12, True, "server major version >= 12")

    async with step("create tables"):
        await conn.execute(
            """
            DROP TABLE IF EXISTS apg_items, apg_types, apg_copy;
            CREATE TABLE apg_items (id int PRIMARY KEY, name text NOT NULL, qty int, price numeric(12,3));
            CREATE TABLE apg_copy (id int PRIMARY KEY, label text, amount numeric, seen_at timestamptz);
            """
        )
        await conn.execute(
            "CREATE TABLE apg_types (id int PRIMARY KEY, "
            + ", ".join(f"{col} {pg_type}" for col, pg_type, _ in TYPE_COLUMNS)
            + ")"
        )

    async with step("executemany, then fetch/fetchrow/fetchval with parameters"):
        await conn.executemany(
            "INSERT INTO apg_items VALUES ($1, $2, $3, $4)",
            [(i, f"item-{i}", i * 10, Decimal(i) / 8) for i in range(1, 11)],
        )
        rows = await conn.fetch("SELECT id, price FROM apg_items WHERE qty > $1 ORDER BY id", 70)
        check([tuple(r) for r in rows], [(8, Decimal("1.000")), (9, Decimal("1.125")), (10, Decimal("1.250"))], "fetch")
        row = await conn.fetchrow("SELECT name, qty FROM apg_items WHERE id = $1", 3)
        check((row["name"], row["qty"]), ("item-3", 30), "fetchrow")
        check(await conn.fetchrow("SELECT * FROM apg_items WHERE id = $1", 999), None, "fetchrow with no match")
        check(await conn.fetchval("SELECT sum(qty) FROM apg_items WHERE name LIKE $1", "item-%"), 550, "fetchval")

    async with step("prepared statement reused with different parameters"):
        stmt = await conn.prepare("SELECT name, price * $2 FROM apg_items WHERE id = $1")
        check([t.name for t in stmt.get_parameters()], ["int4", "numeric"], "parameter types")
        check([a.name for a in stmt.get_attributes()], ["name", "?column?"], "result columns")
        for item_id in (2, 4, 6, 8):
            name, total = await stmt.fetchrow(item_id, Decimal("3"))
            check((name, total), (f"item-{item_id}", Decimal(item_id) / 8 * 3), f"row for id {item_id}")
        check(await stmt.fetchval(999, Decimal(1)), None, "no row")

    async with step("types round-trip (binary)"):
        cols = ", ".join(col for col, _, _ in TYPE_COLUMNS)
        placeholders = ", ".join(f"${i}" for i in range(1, len(TYPE_COLUMNS) + 2))
        await conn.execute(
            f"INSERT INTO apg_types (id, {cols}) VALUES ({placeholders})",
            1,
            *(value for _, _, value in TYPE_COLUMNS),
        )
        await conn.execute("INSERT INTO apg_types (id) VALUES (2)")
        row = await conn.fetchrow(f"SELECT {cols} FROM apg_types WHERE id = 1")
        for (col, _, expected), actual in zip(TYPE_COLUMNS, row):
            check(actual, expected, col)
        row = await conn.fetchrow(f"SELECT {cols} FROM apg_types WHERE id = 2")
        check(tuple(row), (None,) * len(TYPE_COLUMNS), "all-NULL row")
        # The server's own rendering proves what was stored, in the session's TimeZone (-02:30 in July).
        text = await conn.fetchrow("SELECT c_numeric::text AS n, c_tstz::text AS t FROM apg_types WHERE id = 1")
        check(text["n"], "-98765432109876543210.000000000000000001", "numeric as server text")
        check(text["t"], "2024-07-01 21:29:59.123456-02:30", "timestamptz as server text")

    async with step("transaction rollback (exception and explicit)"):
        try:
            async with conn.transaction():
                await conn.execute("INSERT INTO apg_items VALUES (100, 'undone', 1, 1)")
                raise RuntimeError("force rollback")
        except RuntimeError:
            pass
        tr = conn.transaction()
        await tr.start()
        await conn.execute("INSERT INTO apg_items VALUES (101, 'undone too', 1, 1)")
        check(await conn.fetchval("SELECT count(*) FROM apg_items WHERE id >= 100"), 1, "count inside transaction")
        await tr.rollback()
        check(await conn.fetchval("SELECT count(*) FROM apg_items WHERE id >= 100"), 0, "count after rollbacks")
        async with conn.transaction():
            await conn.execute("INSERT INTO apg_items VALUES (102, 'kept', 1, 1)")
        check(await other.fetchval("SELECT name FROM apg_items WHERE id = 102"), "kept", "committed row seen by other session")

    async with step("error 22012 carries its sqlstate, connection keeps working"):
        for sql, args in (("SELECT 1/0", ()), ("SELECT 1/$1::int", (0,))):
            try:
                await conn.fetchval(sql, *args)
            except asyncpg.exceptions.DivisionByZeroError as e:
                check(e.sqlstate, "22012", f"sqlstate for {sql}")
            else:
                raise StepFailed(f"{sql} did not raise")
            check(await conn.fetchval("SELECT $1::int + 1", 41), 42, f"query after {sql}")
        try:
            await conn.execute("INSERT INTO apg_items VALUES (1, 'duplicate', 1, 1)")
        except asyncpg.exceptions.UniqueViolationError as e:
            check(e.sqlstate, "23505", "sqlstate for duplicate key")
            check(e.constraint_name, "apg_items_pkey", "constraint name")
        else:
            raise StepFailed("duplicate insert did not raise")

    async with step("copy_records_to_table (binary COPY FROM STDIN)"):
        seen_at = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
        records = [(i, None if i == 3 else f"label-{i}", Decimal(f"{i}.{i}"), seen_at) for i in range(1, 6)]
        status = await conn.copy_records_to_table("apg_copy", records=records, columns=["id", "label", "amount", "seen_at"])
        check(status, "COPY 5", "status")
        check(await conn.fetchval("SELECT sum(amount) FROM apg_copy"), Decimal("16.5"), "sum of amounts")
        check(await conn.fetchval("SELECT label FROM apg_copy WHERE id = 3"), None, "NULL label")

    async with step("copy_from_query (COPY TO STDOUT, csv)"):
        out = io.BytesIO()
        status = await conn.copy_from_query(
            "SELECT id, label, amount FROM apg_copy WHERE id <= $1 ORDER BY id", 3, output=out, format="csv"
        )
        check(status, "COPY 3", "status")
        check(out.getvalue(), b"1,label-1,1.1\n2,label-2,2.2\n3,,3.3\n", "csv output")

    async with step("add_listener receives NOTIFY from another session"):
        received = asyncio.get_running_loop().create_future()

        def on_notify(_conn, _pid, channel, payload):
            if not received.done():
                received.set_result((channel, payload))

        await conn.add_listener("apg_channel", on_notify)
        await other.execute("NOTIFY apg_channel, 'hello from asyncpg'")
        check(await asyncio.wait_for(received, 5), ("apg_channel", "hello from asyncpg"), "notification")
        await conn.remove_listener("apg_channel", on_notify)

    async with step("cursor iteration in a transaction with prefetch=3 (portal suspension)"):
        async with conn.transaction():
            seen = [r["g"] async for r in conn.cursor("SELECT g FROM generate_series(1, $1) AS g", 20, prefetch=3)]
            check(seen, list(range(1, 21)), "iterated rows")
            cur = await conn.cursor("SELECT id FROM apg_items WHERE id <= 10 ORDER BY id")
            check([r["id"] for r in await cur.fetch(4)], [1, 2, 3, 4], "first fetch")
            check(await cur.forward(3), 3, "rows skipped")
            check((await cur.fetchrow())["id"], 8, "row after forward")
            check([r["id"] for r in await cur.fetch(10)], [9, 10], "rest")

    async with step("close"):
        await conn.execute("DROP TABLE apg_items, apg_types, apg_copy")
        await other.close()
        await conn.close()

    print(f"[{DRIVER}] session passed")


async def main():
    try:
        await asyncio.wait_for(session(), DEADLINE_SECONDS)
    except asyncio.TimeoutError:
        print(f"[{DRIVER}] FAIL session exceeded {DEADLINE_SECONDS}s", file=sys.stderr)
        return 1
    except SessionFailed:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
