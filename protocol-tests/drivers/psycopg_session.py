#!/usr/bin/env python3
"""Scripted psycopg 3 session, run against the gateway or directly against Postgres.

Connection settings come from PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE.
Every object this script creates is prefixed `psy_` so other driver sessions
can run at the same time in the same database.

Prints one line per step; on the first failure prints the reason to stderr
and exits 1.
"""

import os
import signal
import sys
import uuid
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import psycopg
from psycopg import errors
from psycopg.types.json import Json, Jsonb

DRIVER = "psycopg"
# A half-hour offset catches code that assumes whole-hour zones.
SESSION_TZ = "Asia/Kolkata"
IST = timezone(timedelta(hours=5, minutes=30))
# A stuck gateway must fail this script, not hang the caller.
DEADLINE_SECONDS = 60


class StepFailed(Exception):
    pass


@contextmanager
def step(name):
    try:
        yield
    except Exception as e:  # noqa: BLE001 - any error ends the session with its reason
        print(f"[{DRIVER}] FAIL {name}: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
    print(f"[{DRIVER}] ok   {name}")


def check(actual, expected, what):
    if actual != expected or type(actual) is not type(expected):
        raise StepFailed(
            f"{what}: expected {expected!r} ({type(expected).__name__}), "
            f"got {actual!r} ({type(actual).__name__})"
        )


def connect(**kwargs):
    return psycopg.connect(
        host=os.environ["PGHOST"],
        port=os.environ["PGPORT"],
        user=os.environ["PGUSER"],
        password=os.environ["PGPASSWORD"],
        dbname=os.environ["PGDATABASE"],
        connect_timeout=10,
        application_name="airlock-psycopg-session",
        **kwargs,
    )


# One value per column; NULL is checked by a separate all-NULL row.
TYPE_COLUMNS = [
    ("c_int2", "int2", 32767),
    ("c_int4", "int4", -2147483648),
    ("c_int8", "int8", 9223372036854775807),
    ("c_numeric", "numeric", Decimal("12345678901234567890.000000000123456789")),
    ("c_float8", "float8", 0.1),
    ("c_text", "text", "héllo wörld — 日本語 🐘"),
    ("c_bytea", "bytea", bytes(range(256))),
    ("c_bool", "bool", True),
    ("c_uuid", "uuid", uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")),
    ("c_date", "date", date(2024, 2, 29)),
    ("c_tstz", "timestamptz", datetime(2024, 3, 10, 7, 4, 56, 789012, tzinfo=timezone.utc)),
    ("c_interval", "interval", timedelta(days=3, hours=4, minutes=5, seconds=6, microseconds=7)),
    ("c_json", "json", {"a": [1, 2, {"b": None}], "s": "ü"}),
    ("c_jsonb", "jsonb", {"k": [True, False], "n": 1.5}),
    ("c_int_arr", "int4[]", [1, 2, None, 4]),
    ("c_text_arr", "text[]", ["a", "b c", 'quo"te', "ü", None]),
]


def adapt(pg_type, value):
    # psycopg needs to be told which JSON flavour to send.
    if pg_type == "json":
        return Json(value)
    if pg_type == "jsonb":
        return Jsonb(value)
    return value


def check_types_row(row, what):
    for (col, pg_type, expected), actual in zip(TYPE_COLUMNS, row):
        if pg_type == "timestamptz":
            check(actual, expected, f"{what} {col} instant")
            check(actual.utcoffset(), timedelta(hours=5, minutes=30), f"{what} {col} offset ({SESSION_TZ})")
        else:
            check(actual, expected, f"{what} {col}")


def on_deadline(signum, frame):
    raise TimeoutError(f"session exceeded {DEADLINE_SECONDS}s")


def main():
    signal.signal(signal.SIGALRM, on_deadline)
    signal.alarm(DEADLINE_SECONDS)

    with step("connect (autocommit) and a second connection for cross-session checks"):
        conn = connect(autocommit=True)
        other = connect(autocommit=True)
        conn.execute(f"SET TimeZone = '{SESSION_TZ}'")
        check(conn.execute("SHOW TimeZone").fetchone()[0], SESSION_TZ, "TimeZone")

    with step("simple query, text results"):
        cur = conn.execute("SELECT 1, 'one', NULL::text")
        check(cur.fetchone(), (1, "one", None), "row")
        check(cur.pgresult.fformat(0), 0, "result format of column 0 (0=text)")

    with step("create tables"):
        conn.execute("DROP TABLE IF EXISTS psy_items, psy_types, psy_copy")
        conn.execute(
            "CREATE TABLE psy_items (id int PRIMARY KEY, name text NOT NULL, qty int, price numeric(10,2))"
        )
        conn.execute(
            "CREATE TABLE psy_types (id int PRIMARY KEY, "
            + ", ".join(f"{col} {pg_type}" for col, pg_type, _ in TYPE_COLUMNS)
            + ")"
        )
        conn.execute("CREATE TABLE psy_copy (id int PRIMARY KEY, name text, data bytea)")

    with step("parameterized insert and select"):
        conn.execute(
            "INSERT INTO psy_items VALUES (%s, %s, %s, %s)", (1, "widget", 3, Decimal("9.99"))
        )
        row = conn.execute("SELECT name, qty, price FROM psy_items WHERE id = %s", (1,)).fetchone()
        check(row, ("widget", 3, Decimal("9.99")), "row")

    with step("executemany"):
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO psy_items VALUES (%s, %s, %s, %s)",
                [(i, f"item-{i}", i * 10, Decimal(i) / 4) for i in range(2, 12)],
            )
        rows = conn.execute("SELECT id, qty, price FROM psy_items WHERE id >= 2 ORDER BY id").fetchall()
        check(len(rows), 10, "row count")
        check(rows[-1], (11, 110, Decimal("2.75")), "last row")

    with step("binary result format"):
        with conn.cursor(binary=True) as cur:
            cur.execute("SELECT id, name, price FROM psy_items WHERE id = %s", (1,))
            check(cur.fetchone(), (1, "widget", Decimal("9.99")), "row")
            for col in range(3):
                check(cur.pgresult.fformat(col), 1, f"result format of column {col} (1=binary)")

    with step("transaction commit is visible to another session"):
        with conn.transaction():
            conn.execute("INSERT INTO psy_items VALUES (100, 'committed', 1, 1)")
        row = other.execute("SELECT name FROM psy_items WHERE id = 100").fetchone()
        check(row, ("committed",), "row seen by other session")

    with step("transaction rollback and savepoint rollback"):
        with conn.transaction():
            conn.execute("INSERT INTO psy_items VALUES (200, 'kept', 1, 1)")
            with conn.transaction() as inner:  # a SAVEPOINT
                conn.execute("INSERT INTO psy_items VALUES (201, 'savepoint-undone', 1, 1)")
                raise psycopg.Rollback(inner)
        with conn.transaction() as tx:
            conn.execute("INSERT INTO psy_items VALUES (202, 'undone', 1, 1)")
            raise psycopg.Rollback(tx)
        ids = [r[0] for r in conn.execute("SELECT id FROM psy_items WHERE id >= 200 ORDER BY id")]
        check(ids, [200], "ids >= 200")

    with step("error 22012 (simple and extended protocol), connection keeps working"):
        for sql, params in (("SELECT 1/0", None), ("SELECT 1/%s", (0,))):
            try:
                conn.execute(sql, params)
            except errors.DivisionByZero as e:
                check(e.sqlstate, "22012", f"sqlstate for {sql}")
            else:
                raise StepFailed(f"{sql} did not raise")
            check(conn.execute("SELECT 41 + 1").fetchone(), (42,), f"query after {sql}")
        try:
            with conn.transaction():
                conn.execute("INSERT INTO psy_items VALUES (300, 'aborted', 1, 1)")
                conn.execute("SELECT 1/0")
        except errors.DivisionByZero:
            pass
        check(conn.execute("SELECT count(*) FROM psy_items WHERE id = 300").fetchone(), (0,), "aborted insert")

    with step("types round-trip (text and binary parameters and results)"):
        cols = ", ".join(col for col, _, _ in TYPE_COLUMNS)
        values = [adapt(pg_type, value) for _, pg_type, value in TYPE_COLUMNS]
        # %t forces text-format parameters, %b binary-format ones.
        for row_id, placeholder in ((1, "%t"), (2, "%b")):
            placeholders = ", ".join([placeholder] * (len(TYPE_COLUMNS) + 1))
            conn.execute(f"INSERT INTO psy_types (id, {cols}) VALUES ({placeholders})", [row_id, *values])
        conn.execute("INSERT INTO psy_types (id) VALUES (3)")
        for binary in (False, True):
            fmt = "binary" if binary else "text"
            with conn.cursor(binary=binary) as cur:
                for row_id in (1, 2):
                    cur.execute(f"SELECT {cols} FROM psy_types WHERE id = %s", (row_id,))
                    check_types_row(cur.fetchone(), f"{fmt} row {row_id}")
                cur.execute(f"SELECT {cols} FROM psy_types WHERE id = 3")
                check(cur.fetchone(), (None,) * len(TYPE_COLUMNS), f"{fmt} all-NULL row")
        # The server's own rendering proves the value stored, not just the client's echo.
        text = conn.execute("SELECT c_numeric::text, c_tstz::text, c_bytea::text FROM psy_types WHERE id = 2").fetchone()
        check(text[0], "12345678901234567890.000000000123456789", "numeric as server text")
        check(text[1], "2024-03-10 12:34:56.789012+05:30", "timestamptz as server text")
        check(text[2], "\\x" + bytes(range(256)).hex(), "bytea as server text")

    with step("COPY FROM STDIN (text)"):
        with conn.cursor() as cur:
            with cur.copy("COPY psy_copy (id, name, data) FROM STDIN") as copy:
                for i in range(1, 6):
                    copy.write_row((i, f"tab\there-{i}", bytes([i, 0, 255])))
            check(cur.rowcount, 5, "rows copied")

    with step("COPY FROM STDIN (binary)"):
        with conn.cursor() as cur:
            with cur.copy("COPY psy_copy (id, name, data) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["int4", "text", "bytea"])
                for i in range(6, 11):
                    copy.write_row((i, None if i == 10 else f"bin-{i}", bytes([i])))
            check(cur.rowcount, 5, "rows copied")
        check(conn.execute("SELECT count(*), count(name) FROM psy_copy").fetchone(), (10, 9), "counts")

    with step("COPY TO STDOUT (text)"):
        with conn.cursor() as cur:
            with cur.copy("COPY (SELECT id, name, data FROM psy_copy WHERE id <= 2 ORDER BY id) TO STDOUT") as copy:
                data = b"".join(bytes(chunk) for chunk in copy)
        check(data, b"1\ttab\\there-1\t\\\\x0100ff\n2\ttab\\there-2\t\\\\x0200ff\n", "raw COPY text")

    with step("COPY TO STDOUT (binary)"):
        with conn.cursor() as cur:
            with cur.copy("COPY (SELECT id, name, data FROM psy_copy ORDER BY id) TO STDOUT (FORMAT BINARY)") as copy:
                copy.set_types(["int4", "text", "bytea"])
                rows = list(copy.rows())
        check(len(rows), 10, "row count")
        check(rows[0], (1, "tab\there-1", b"\x01\x00\xff"), "first row")
        check(rows[9], (10, None, b"\x0a"), "last row")

    with step("server-side named cursor fetching in batches"):
        with conn.transaction():
            with conn.cursor("psy_named_cursor") as cur:
                cur.execute("SELECT g, g * g FROM generate_series(1, 25) AS g")
                batches = []
                while batch := cur.fetchmany(10):
                    batches.append(batch)
        check([len(b) for b in batches], [10, 10, 5], "batch sizes")
        check(batches[2][-1], (25, 625), "last row")
        check([r[0] for b in batches for r in b], list(range(1, 26)), "order")

    with step("LISTEN/NOTIFY from another session"):
        conn.execute("LISTEN psy_channel")
        other.execute("SELECT pg_notify('psy_channel', %s)", ("payload-ü",))
        received = list(conn.notifies(timeout=5, stop_after=1))
        check(len(received), 1, "notifications received within 5s")
        check((received[0].channel, received[0].payload), ("psy_channel", "payload-ü"), "notification")
        conn.execute("UNLISTEN psy_channel")

    with step("NOTICE from a DO block reaches the notice handler"):
        notices = []
        # The Diagnostic is only readable during the callback, so copy the fields out.
        conn.add_notice_handler(
            lambda d: notices.append((d.severity_nonlocalized, d.sqlstate, d.message_primary))
        )
        conn.execute("DO $$ BEGIN RAISE NOTICE 'psy notice %', 42; END $$")
        check(notices, [("NOTICE", "00000", "psy notice 42")], "notices received")

    with step("pipeline mode with several queries"):
        with conn.pipeline():
            inserted = conn.execute("INSERT INTO psy_items VALUES (%s, %s, 1, 1) RETURNING id", (400, "piped"))
            counted = conn.execute("SELECT count(*) FROM psy_items WHERE id = %s", (400,))
            echoed = conn.execute("SELECT %s::text || %s::text", ("pipe", "line"))
            binary = conn.cursor(binary=True)
            binary.execute("SELECT %s::numeric", (Decimal("1.000000000000000000001"),))
        check(inserted.fetchone(), (400,), "insert returning")
        check(counted.fetchone(), (1,), "count")
        check(echoed.fetchone(), ("pipeline",), "concatenation")
        check(binary.fetchone(), (Decimal("1.000000000000000000001"),), "binary numeric")

    with step("pipeline error rolls back the batch, connection keeps working"):
        try:
            with conn.pipeline():
                conn.execute("INSERT INTO psy_items VALUES (500, 'before error', 1, 1)")
                conn.execute("SELECT 1/%s", (0,))
                conn.execute("INSERT INTO psy_items VALUES (501, 'after error', 1, 1)")
        except errors.DivisionByZero as e:
            check(e.sqlstate, "22012", "sqlstate")
        else:
            raise StepFailed("pipeline with 1/0 did not raise")
        # Everything up to the pipeline's Sync is one implicit transaction: the
        # error rolls back the insert before it and skips the one after it.
        ids = [r[0] for r in conn.execute("SELECT id FROM psy_items WHERE id >= 500 ORDER BY id")]
        check(ids, [], "ids >= 500")

    with step("close"):
        conn.execute("DROP TABLE psy_items, psy_types, psy_copy")
        other.close()
        conn.close()

    signal.alarm(0)
    print(f"[{DRIVER}] session passed")


if __name__ == "__main__":
    main()
