#!/usr/bin/env python3
"""Scripted PyMySQL session, run against the gateway or directly against MySQL/MariaDB.

Connection settings come from MYSQL_HOST, MYSQL_PORT, MYSQL_USER,
MYSQL_PASSWORD, MYSQL_DATABASE. MYSQL_TLS=require makes the session use TLS
without verifying the certificate and fail unless the socket is encrypted;
anything else turns TLS off (PyMySQL would otherwise try it when offered).
MYSQL_AUTH=caching_sha2_password or mysql_native_password picks the auth
plugin PyMySQL answers the greeting with (unset: the server's default).
Every object this script creates is prefixed `pym_` so other driver sessions
can run at the same time in the same database.

PyMySQL has no server-side prepared statements: every statement goes out as
COM_QUERY with client-side interpolated parameters (text protocol only).

Prints one line per step; on the first failure prints the reason to stderr
and exits 1.
"""

import hashlib
import json
import os
import signal
import ssl
import sys
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from decimal import Decimal

import pymysql
import pymysql.connections
from pymysql.constants import CLIENT

DRIVER = "pymysql"
# A stuck gateway must fail this script, not hang the caller.
# Generous: the value over 16 MiB is scanned by the tests' debug build,
# with the other driver tests on the same two cores.
DEADLINE_SECONDS = 240
BIG_VALUE_BYTES = 16 * 1024 * 1024 + 4096  # just over one 16 MiB packet


class StepFailed(Exception):
    pass


class Skipped(Exception):
    pass


@contextmanager
def step(name):
    try:
        yield
    except Skipped as e:
        print(f"[{DRIVER}] skip {name}: {e}")
        return
    except Exception as e:  # noqa: BLE001 - any error ends the session with its reason
        print(f"[{DRIVER}] FAIL {name}: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
    print(f"[{DRIVER}] ok   {name}", flush=True)


def check(actual, expected, what):
    if actual != expected or type(actual) is not type(expected):
        raise StepFailed(
            f"{what}: expected {expected!r} ({type(expected).__name__}), "
            f"got {actual!r} ({type(actual).__name__})"
        )


def env(name):
    value = os.environ.get(name)
    if value is None:
        raise StepFailed(f"environment variable {name} is not set")
    return value


TLS_REQUIRED = os.environ.get("MYSQL_TLS") == "require"
AUTH_PLUGIN = os.environ.get("MYSQL_AUTH") or None


def connect(**kwargs):
    if TLS_REQUIRED:
        # A non-empty ssl dict makes TLS mandatory (no plaintext fallback);
        # without a CA the context verifies neither chain nor host name.
        tls = {"ssl": {"check_hostname": False, "verify_mode": False}}
    else:
        tls = {"ssl_disabled": True}
    return pymysql.connect(
        host=env("MYSQL_HOST"),
        port=int(env("MYSQL_PORT")),
        user=env("MYSQL_USER"),
        # PyMySQL encodes a str password as latin-1; servers hash UTF-8.
        password=os.environ.get("MYSQL_PASSWORD", "").encode("utf-8"),
        database=env("MYSQL_DATABASE"),
        charset="utf8mb4",
        connect_timeout=10,
        # Long enough for the 16 MiB value's statement and row to be
        # scanned by a debug build on two busy cores (well over 30 s when
        # the machine is slow); a hung connection still ends at the
        # script's deadline.
        read_timeout=120,
        write_timeout=120,
        autocommit=True,
        # The client-side cap on packets it builds; the server's own limit
        # still applies and is checked before the big-value step.
        max_allowed_packet=64 * 1024 * 1024,
        program_name="airlock-pymysql-session",
        **tls,
        **kwargs,
    )


def query(conn, sql, args=None):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchall()


# One value per column; NULL is checked by a separate all-NULL row.
TYPE_COLUMNS = [
    ("c_int", "INT", -2147483648),
    ("c_bigint", "BIGINT", 9223372036854775807),
    ("c_decimal", "DECIMAL(12,2)", Decimal("-1234567890.12")),
    ("c_double", "DOUBLE", 0.1),
    ("c_date", "DATE", date(2024, 2, 29)),
    ("c_datetime", "DATETIME(6)", datetime(2024, 3, 10, 12, 34, 56, 789012)),
    ("c_time", "TIME", -timedelta(hours=25, minutes=30, seconds=1)),
    ("c_year", "YEAR", 2155),
    ("c_varchar", "VARCHAR(100) CHARACTER SET utf8mb4", "héllo wörld — 日本語 🐬"),
    ("c_text", "TEXT CHARACTER SET utf8mb4", "Ünïcödé\nline 'two' \"quoted\" back\\slash\ttab"),
    ("c_blob", "BLOB", bytes(range(256))),
    ("c_json", "JSON", {"a": [1, 2, {"b": None}], "s": "ü🐬"}),
    ("c_enum", "ENUM('small','medium','large')", "medium"),
    ("c_bit", "BIT(8)", b"\xa5"),
]
COLS = ", ".join(col for col, _, _ in TYPE_COLUMNS)


def check_types_row(row, what):
    for (col, _, expected), actual in zip(TYPE_COLUMNS, row):
        if col == "c_json":
            check(type(actual), str, f"{what} {col} wire type")
            actual = json.loads(actual)
        check(actual, expected, f"{what} {col}")


def sql_value(col, value):
    return json.dumps(value) if col == "c_json" else value


def digits_cte(limit):
    # 1..limit without recursion: MariaDB stops recursive CTEs silently at
    # max_recursive_iterations (1000 by default), MySQL errors at 1000.
    return (
        "WITH d(x) AS (SELECT 0 UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 "
        "UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 "
        "UNION ALL SELECT 8 UNION ALL SELECT 9), "
        "seq(n) AS (SELECT a.x + 10*b.x + 100*c.x + 1000*e.x + 1 FROM d a, d b, d c, d e) "
        f"SELECT n, CONCAT('row-', n) AS label, n * n AS sq FROM seq WHERE n <= {limit} ORDER BY n"
    )


def on_deadline(signum, frame):
    raise TimeoutError(f"session exceeded {DEADLINE_SECONDS}s")


def drop_all(conn):
    query(conn, "DROP TABLE IF EXISTS pym_items, pym_types, pym_short, pym_big")
    query(conn, "DROP PROCEDURE IF EXISTS pym_two_results")


def main():
    signal.signal(signal.SIGALRM, on_deadline)
    signal.alarm(DEADLINE_SECONDS)
    database = env("MYSQL_DATABASE")

    with step(f"connect (TLS {'required' if TLS_REQUIRED else 'off'}, auth plugin {AUTH_PLUGIN or 'server default'})"):
        if AUTH_PLUGIN is not None:
            # PyMySQL has no public option for this: it answers with the plugin
            # the greeting names, unless this module-level override is set.
            if AUTH_PLUGIN not in ("caching_sha2_password", "mysql_native_password"):
                raise StepFailed(f"MYSQL_AUTH={AUTH_PLUGIN!r} is not a plugin this session knows")
            pymysql.connections._DEFAULT_AUTH_PLUGIN = AUTH_PLUGIN
        conn = connect(client_flag=CLIENT.MULTI_STATEMENTS)
        other = connect()
        found_rows = connect(client_flag=CLIENT.FOUND_ROWS)
        check(query(conn, "SELECT 1, 'one', NULL"), ((1, "one", None),), "first row")

    with step("TLS state matches MYSQL_TLS"):
        server_cipher = query(conn, "SHOW SESSION STATUS LIKE 'Ssl_cipher'")[0][1]
        for name, c in (("main", conn), ("other", other), ("found_rows", found_rows)):
            encrypted = isinstance(c._sock, ssl.SSLSocket)
            check(encrypted, TLS_REQUIRED, f"{name} connection encrypted")
            if encrypted:
                cipher = c._sock.cipher()
                if not cipher or not cipher[0]:
                    raise StepFailed(f"{name} connection: TLS socket without a cipher")
        if TLS_REQUIRED:
            print(f"[{DRIVER}]      client cipher {conn._sock.cipher()[0]}, server Ssl_cipher {server_cipher!r}")
        else:
            print(f"[{DRIVER}]      plaintext; server Ssl_cipher {server_cipher!r}")

    with step("create tables and a procedure (dropping leftovers first)"):
        drop_all(conn)
        query(conn, "CREATE TABLE pym_items (id INT AUTO_INCREMENT PRIMARY KEY, "
                    "name VARCHAR(50) NOT NULL UNIQUE, qty INT) CHARACTER SET utf8mb4")
        query(conn, "CREATE TABLE pym_types (id INT PRIMARY KEY, "
                    + ", ".join(f"{col} {sql_type}" for col, sql_type, _ in TYPE_COLUMNS)
                    + ") CHARACTER SET utf8mb4")
        query(conn, "CREATE TABLE pym_short (s VARCHAR(3))")
        query(conn, "CREATE PROCEDURE pym_two_results(IN k INT) "
                    "BEGIN SELECT k AS first_k; SELECT k * 2 AS doubled, 'two' AS tag; END")

    with step("INSERT: affected rows, lastrowid and LAST_INSERT_ID()"):
        with conn.cursor() as cur:
            check(cur.execute("INSERT INTO pym_items (name, qty) VALUES (%s, %s)", ("apple", 3)), 1, "affected rows")
            check(cur.lastrowid, 1, "lastrowid")
            n = cur.execute("INSERT INTO pym_items (name, qty) VALUES ('banana', 5), ('cherry', 5), ('durian', NULL)")
            check(n, 3, "affected rows of a 3-row insert")
            # A multi-row insert reports the id of its first row.
            check(cur.lastrowid, 2, "lastrowid of a multi-row insert")
            check(conn.insert_id(), 2, "conn.insert_id()")
            cur.execute("SELECT LAST_INSERT_ID()")
            check(cur.fetchone(), (2,), "LAST_INSERT_ID()")

    with step("UPDATE: changed rows by default, matched rows with CLIENT_FOUND_ROWS"):
        with conn.cursor() as cur:
            # banana and cherry already have qty 5: three rows match, one changes.
            check(cur.execute("UPDATE pym_items SET qty = 5 WHERE id <= 3"), 1, "affected (changed) rows")
            # Servers send the info as a length-prefixed string even without
            # CLIENT_SESSION_TRACK; PyMySQL keeps the length byte (0x28 = "(").
            check(conn._result.message, b"(Rows matched: 3  Changed: 1  Warnings: 0", "OK packet info")
        with found_rows.cursor() as cur:
            check(cur.execute("UPDATE pym_items SET qty = 5 WHERE id <= 3"), 3, "affected (matched) rows")

    with step("types round-trip (text protocol) and an all-NULL row"):
        placeholders = ", ".join(["%s"] * (len(TYPE_COLUMNS) + 1))
        with conn.cursor() as cur:
            n = cur.execute(
                f"INSERT INTO pym_types (id, {COLS}) VALUES ({placeholders})",
                [1, *(sql_value(col, v) for col, _, v in TYPE_COLUMNS)],
            )
            check(n, 1, "affected rows")
            check(cur.execute("INSERT INTO pym_types (id) VALUES (2)"), 1, "affected rows")
        rows = query(conn, f"SELECT {COLS} FROM pym_types ORDER BY id")
        check(len(rows), 2, "row count")
        check_types_row(rows[0], "row 1")
        check(rows[1], (None,) * len(TYPE_COLUMNS), "all-NULL row")
        # The server's own rendering proves what was stored, not just the echo.
        text = query(conn, "SELECT HEX(c_blob), CAST(c_datetime AS CHAR), CAST(c_time AS CHAR), "
                           "CHAR_LENGTH(c_varchar), LENGTH(c_varchar), HEX(c_bit), c_decimal + 0.01 "
                           "FROM pym_types WHERE id = 1")[0]
        check(text[0], bytes(range(256)).hex().upper(), "blob as server hex")
        check(text[1], "2024-03-10 12:34:56.789012", "datetime as server text")
        check(text[2], "-25:30:01", "time as server text")
        check(text[3:5], (19, 32), "varchar characters and bytes")
        check(text[5], "A5", "bit as server hex")
        check(text[6], Decimal("-1234567890.11"), "decimal arithmetic on the server")

    with step("transaction rolled back (row absent) and one committed (seen by another connection)"):
        conn.begin()
        query(conn, "INSERT INTO pym_items (name, qty) VALUES ('rolled-back', 1)")
        check(query(conn, "SELECT COUNT(*) FROM pym_items WHERE name = 'rolled-back'"), ((1,),), "inside the transaction")
        check(query(other, "SELECT COUNT(*) FROM pym_items WHERE name = 'rolled-back'"), ((0,),), "seen by other before rollback")
        conn.rollback()
        check(query(conn, "SELECT COUNT(*) FROM pym_items WHERE name = 'rolled-back'"), ((0,),), "after rollback")
        conn.begin()
        query(conn, "INSERT INTO pym_items (name, qty) VALUES ('committed', 7)")
        conn.commit()
        check(query(other, "SELECT qty FROM pym_items WHERE name = 'committed'"), ((7,),), "seen by other after commit")

    with step("errors 1062 (duplicate key) and 1146 (unknown table), connection keeps working"):
        try:
            query(conn, "INSERT INTO pym_items (name, qty) VALUES ('apple', 1)")
        except pymysql.err.IntegrityError as e:
            check(e.args[0], 1062, "error code")
            check(e.args[1], "Duplicate entry 'apple' for key 'name'", "error message")
        else:
            raise StepFailed("duplicate insert did not raise")
        # PyMySQL drops the SQLSTATE from the ERR packet; ask the server for it.
        query(conn, "GET DIAGNOSTICS CONDITION 1 @pym_state = RETURNED_SQLSTATE, @pym_errno = MYSQL_ERRNO")
        check(query(conn, "SELECT @pym_state, @pym_errno"), (("23000", 1062),), "diagnostics of the duplicate")
        try:
            query(conn, "SELECT * FROM pym_no_such_table")
        except pymysql.err.ProgrammingError as e:
            check(e.args[0], 1146, "error code")
            check(e.args[1], f"Table '{database}.pym_no_such_table' doesn't exist", "error message")
        else:
            raise StepFailed("select from a missing table did not raise")
        query(conn, "GET DIAGNOSTICS CONDITION 1 @pym_state = RETURNED_SQLSTATE")
        check(query(conn, "SELECT @pym_state"), (("42S02",),), "sqlstate of the missing table")
        check(query(conn, "SELECT 41 + 1"), ((42,),), "query after the errors")

    with step("warnings: truncation under a non-strict sql_mode, division by zero"):
        query(conn, "SET SESSION sql_mode = ''")
        with conn.cursor() as cur:
            check(cur.execute("INSERT INTO pym_short VALUES ('abcdef')"), 1, "affected rows")
            check(cur.warning_count, 1, "warning count of the truncating insert")
            cur.execute("SHOW WARNINGS")
            check(cur.fetchall(), (("Warning", 1265, "Data truncated for column 's' at row 1"),), "SHOW WARNINGS")
        check(query(conn, "SELECT s FROM pym_short"), (("abc",),), "stored truncated value")
        query(conn, "SET SESSION sql_mode = 'ERROR_FOR_DIVISION_BY_ZERO'")
        with conn.cursor() as cur:
            cur.execute("SELECT 1/0")
            check(cur.fetchall(), ((None,),), "1/0")
            check(cur.warning_count, 1, "warning count of 1/0")
            cur.execute("SHOW WARNINGS")
            check(cur.fetchall(), (("Warning", 1365, "Division by 0"),), "SHOW WARNINGS")
        query(conn, "SET SESSION sql_mode = DEFAULT")

    with step("multiple result sets: multi-statement query and a procedure CALL"):
        with conn.cursor() as cur:
            cur.execute("SELECT 1 AS a; SELECT 'two' AS b, NULL AS c; UPDATE pym_items SET qty = qty WHERE id = 1")
            first = (cur.description[0][0], cur.fetchall())
            check(cur.nextset(), True, "second result exists")
            second = (cur.description[0][0], cur.fetchall())
            check(cur.nextset(), True, "third result (UPDATE) exists")
            check(cur.description, None, "UPDATE has no columns")
            check(cur.nextset(), None, "no fourth result")
            check((first, second), (("a", ((1,),)), ("b", (("two", None),))), "multi-statement results")
            cur.execute("CALL pym_two_results(21)")
            sets = [cur.fetchall()]
            while cur.nextset():
                sets.append(cur.fetchall())
            # Two SELECT results, then the CALL's own status result.
            check(sets, [((21,),), ((42, "two"),), []], "procedure results")
        check(query(conn, "SELECT 'after'"), (("after",),), "query after the CALL")

    with step("change database to the same one (COM_INIT_DB and USE), ping"):
        conn.select_db(database)
        check(query(conn, "SELECT DATABASE()"), ((database,),), "database after COM_INIT_DB")
        query(conn, f"USE `{database}`")
        check(query(conn, "SELECT DATABASE()"), ((database,),), "database after USE")
        conn.ping(reconnect=False)
        check(query(conn, "SELECT COUNT(*) FROM pym_items"), ((5,),), "items after ping")

    with step("10,000-row result, buffered and streamed (SSCursor), with checksums"):
        expected_md5 = hashlib.md5(",".join(f"row-{n}" for n in range(1, 10001)).encode()).hexdigest()
        expected_sq = sum(n * n for n in range(1, 10001))
        for cursor_class in (pymysql.cursors.Cursor, pymysql.cursors.SSCursor):
            with conn.cursor(cursor_class) as cur:
                cur.execute(digits_cte(10000))
                count = total = sq = 0
                labels = []
                for n, label, square in cur:
                    count += 1
                    total += n
                    sq += square
                    labels.append(label)
                what = cursor_class.__name__
                check(count, 10000, f"{what} row count")
                check(total, 50005000, f"{what} sum")
                check(sq, expected_sq, f"{what} sum of squares")
                check(hashlib.md5(",".join(labels).encode()).hexdigest(), expected_md5, f"{what} md5 of labels")

    with step(f"value of {BIG_VALUE_BYTES} bytes (over 16 MiB) round-trip"):
        limit = query(conn, "SELECT @@max_allowed_packet")[0][0]
        # The INSERT carries the value plus the statement text and escapes.
        if limit < BIG_VALUE_BYTES + 1024 * 1024:
            raise Skipped(f"server max_allowed_packet is {limit}, needs at least {BIG_VALUE_BYTES + 1024 * 1024}")
        big = bytes((i * 7 + i // 256) % 256 for i in range(BIG_VALUE_BYTES))
        query(conn, "CREATE TABLE pym_big (id INT PRIMARY KEY, v LONGBLOB)")
        with conn.cursor() as cur:
            check(cur.execute("INSERT INTO pym_big VALUES (1, %s)", (big,)), 1, "affected rows")
        check(query(conn, "SELECT LENGTH(v), MD5(v) FROM pym_big"),
              ((BIG_VALUE_BYTES, hashlib.md5(big).hexdigest()),), "length and md5 on the server")
        back = query(conn, "SELECT v FROM pym_big")[0][0]
        check(len(back), BIG_VALUE_BYTES, "length read back")
        if back != big:
            raise StepFailed("value read back differs")
        query(conn, "DROP TABLE pym_big")

    with step("drop every object and close"):
        drop_all(conn)
        check(query(conn, "SELECT COUNT(*) FROM information_schema.tables "
                          "WHERE table_schema = DATABASE() AND table_name LIKE 'pym\\_%'"), ((0,),), "tables left")
        for c in (conn, other, found_rows):
            c.close()

    signal.alarm(0)
    print(f"[{DRIVER}] session passed")


if __name__ == "__main__":
    main()
