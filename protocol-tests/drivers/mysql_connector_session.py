#!/usr/bin/env python3
"""Scripted mysql-connector-python session, run against the gateway or directly against MySQL/MariaDB.

Usage: mysql_connector_session.py --pure | --cext
  --pure  use_pure=True: the driver's own Python protocol code (prefix `myc_`)
  --cext  use_pure=False: the C extension over libmysqlclient (prefix `mycx_`);
          fails unless the connection really is a CMySQLConnection.

Connection settings come from MYSQL_HOST, MYSQL_PORT, MYSQL_USER,
MYSQL_PASSWORD, MYSQL_DATABASE. MYSQL_TLS=require: TLS without verifying the
certificate, and the session fails unless the connection is encrypted (the
driver silently stays in plaintext when the server offers no TLS and
ssl_verify_cert is off); anything else: ssl_disabled=True.
MYSQL_AUTH=caching_sha2_password or mysql_native_password is passed as
auth_plugin (the plugin of the first answer to the greeting) with --pure;
--cext cannot take it (the 9.7.0 C extension fails before connecting whenever
auth_plugin is set) and says so in its first line. Unset: the driver's default.

Server-side prepared statements (cursor(prepared=True)) use the binary
protocol. With --pure a BLOB parameter given as a file object goes out with
COM_STMT_SEND_LONG_DATA (128 KiB pieces), and a statement executed with a
read-only cursor is read with COM_STMT_FETCH; the C extension supports
neither, so those steps are --pure only.

Prints one line per step; on the first failure prints the reason to stderr
and exits 1.
"""

import hashlib
import io
import json
import os
import signal
import ssl
import sys
import warnings
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from decimal import Decimal

import mysql.connector
from mysql.connector import errors
from mysql.connector.constants import ClientFlag

if len(sys.argv) != 2 or sys.argv[1] not in ("--pure", "--cext"):
    sys.exit(f"usage: {sys.argv[0]} --pure | --cext")
PURE = sys.argv[1] == "--pure"
DRIVER = "mysql-connector-pure" if PURE else "mysql-connector-cext"
P = "myc_" if PURE else "mycx_"  # object prefix
# A stuck gateway must fail this script, not hang the caller.
# Generous: the value over 16 MiB is scanned by the tests' debug build,
# with the other driver tests on the same two cores.
DEADLINE_SECONDS = 240
BIG_VALUE_BYTES = 16 * 1024 * 1024 + 4096  # just over one 16 MiB packet
CURSOR_FETCH_ROWS = 1000
# get_warnings=True also turns every Note (DROP ... IF EXISTS) into a Python
# warning, and the driver flags its own deprecations; the session checks the
# server's warnings itself.
warnings.simplefilter("ignore")


class StepFailed(Exception):
    pass


class Skipped(Exception):
    pass


@contextmanager
def step(name):
    try:
        yield
    except Skipped as e:
        print(f"[{DRIVER}] skip {name}: {e}", flush=True)
        return
    except Exception as e:  # noqa: BLE001 - any error ends the session with its reason
        if os.environ.get("SESSION_TRACEBACK"):
            import traceback
            traceback.print_exc()
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
    options = dict(
        host=env("MYSQL_HOST"),
        port=int(env("MYSQL_PORT")),
        user=env("MYSQL_USER"),
        password=os.environ.get("MYSQL_PASSWORD", ""),
        database=env("MYSQL_DATABASE"),
        charset="utf8mb4",
        collation="utf8mb4_general_ci",
        use_pure=PURE,
        connection_timeout=10,
        autocommit=True,
        get_warnings=True,
        conn_attrs={"program_name": f"airlock-{DRIVER}-session"},
    )
    if TLS_REQUIRED:
        options.update(ssl_disabled=False, ssl_verify_cert=False, ssl_verify_identity=False)
    else:
        options.update(ssl_disabled=True)
    if AUTH_PLUGIN is not None:
        if AUTH_PLUGIN not in ("caching_sha2_password", "mysql_native_password"):
            raise StepFailed(f"MYSQL_AUTH={AUTH_PLUGIN!r} is not a plugin this session knows")
        if PURE:
            options["auth_plugin"] = AUTH_PLUGIN
        # The 9.7.0 C extension fails before it even opens the socket whenever
        # auth_plugin is set (MySQLInterfaceError, errno 2002, no message), so
        # --cext leaves the plugin to libmysqlclient, which follows the server.
    options.update(kwargs)
    return mysql.connector.connect(**options)


def encrypted_cipher(conn):
    """The TLS cipher of the client's own socket, or None in plaintext."""
    if PURE:
        sock = conn._socket.sock
        return sock.cipher()[0] if isinstance(sock, ssl.SSLSocket) else None
    return conn._cmysql.get_ssl_cipher() or None


def query(conn, sql, args=None):
    cur = conn.cursor()
    try:
        cur.execute(sql, args)
        return cur.fetchall() if cur.with_rows else cur.rowcount
    finally:
        cur.close()


def prepared(conn, sql, args=()):
    cur = conn.cursor(prepared=True)
    try:
        cur.execute(sql, args)
        return cur.fetchall() if cur.with_rows else cur.rowcount
    finally:
        cur.close()


BLOB = bytes(range(256))
JSON_TEXT = '{"a": [1, 2, {"b": null}], "s": "ü🐬"}'
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
    ("c_blob", "BLOB", BLOB),
    ("c_json", "JSON", JSON_TEXT),
    ("c_enum", "ENUM('small','medium','large')", "medium"),
    # Written as an integer; mysql-connector reads BIT back as an int too.
    ("c_bit", "BIT(8)", 0xA5),
]
COLS = ", ".join(col for col, _, _ in TYPE_COLUMNS)
# The pure driver's binary-protocol decoder gets two types wrong: YEAR (read
# as a length-prefixed string instead of a 2-byte integer, which derails the
# rest of the row) and negative TIME (only the day count is negated: -25:30:01
# comes back as -22:29:59). With --pure the binary SELECT reads those two
# columns through expressions of other types; the text protocol and --cext
# read them as they are.
PURE_BINARY_EXPRS = {"c_year": "c_year + 0", "c_time": "CAST(c_time AS CHAR)"}
BINARY_COLS = ", ".join(
    f"{PURE_BINARY_EXPRS[col]} AS {col}" if PURE and col in PURE_BINARY_EXPRS else col
    for col, _, _ in TYPE_COLUMNS
)


def check_types_row(row, what, pure_binary=False):
    for (col, _, expected), actual in zip(TYPE_COLUMNS, row):
        if pure_binary and col == "c_time":
            expected = "-25:30:01"
        if col == "c_json":
            # MySQL has a JSON type, MariaDB sends LONGTEXT: compare the parsed value.
            if isinstance(actual, (bytes, bytearray)):
                actual = actual.decode()
            check(type(actual), str, f"{what} {col} wire type")
            check(json.loads(actual), json.loads(expected), f"{what} {col}")
            continue
        if isinstance(actual, bytearray):
            actual = bytes(actual)
        if col == "c_bit" and isinstance(actual, bytes):
            # The pure driver's binary-protocol decoder hands BIT over as bytes.
            actual = int.from_bytes(actual, "big")
        check(actual, expected, f"{what} {col}")


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


EXPECTED_LABELS_MD5 = hashlib.md5(",".join(f"row-{n}" for n in range(1, 10001)).encode()).hexdigest()
EXPECTED_SQ = sum(n * n for n in range(1, 10001))


def check_10k(rows, what):
    check(len(rows), 10000, f"{what} row count")
    check(sum(int(r[0]) for r in rows), 50005000, f"{what} sum")
    check(sum(int(r[2]) for r in rows), EXPECTED_SQ, f"{what} sum of squares")
    labels = ",".join(r[1].decode() if isinstance(r[1], (bytes, bytearray)) else r[1] for r in rows)
    check(hashlib.md5(labels.encode()).hexdigest(), EXPECTED_LABELS_MD5, f"{what} md5 of labels")


def on_deadline(signum, frame):
    raise TimeoutError(f"session exceeded {DEADLINE_SECONDS}s")


def drop_all(conn):
    query(conn, f"DROP TABLE IF EXISTS {P}items, {P}types, {P}short, {P}long, {P}big")
    query(conn, f"DROP PROCEDURE IF EXISTS {P}two_results")


def main():
    signal.signal(signal.SIGALRM, on_deadline)
    signal.alarm(DEADLINE_SECONDS)
    database = env("MYSQL_DATABASE")

    auth = AUTH_PLUGIN if PURE else f"driver default, MYSQL_AUTH={AUTH_PLUGIN} not passed" if AUTH_PLUGIN else None
    with step(f"connect (use_pure={PURE}, TLS {'required' if TLS_REQUIRED else 'off'}, "
              f"auth_plugin {auth or 'driver default'})"):
        conn = connect()
        other = connect()
        found_rows = connect(client_flags=[ClientFlag.FOUND_ROWS])
        expected_class = "MySQLConnection" if PURE else "CMySQLConnection"
        for c in (conn, other, found_rows):
            check(type(c).__name__, expected_class, "connection class")
        check(query(conn, "SELECT 1, 'one', NULL"), [(1, "one", None)], "first row")

    with step("TLS state matches MYSQL_TLS"):
        server_cipher = query(conn, "SHOW SESSION STATUS LIKE 'Ssl_cipher'")[0][1]
        for name, c in (("main", conn), ("other", other), ("found_rows", found_rows)):
            cipher = encrypted_cipher(c)
            check(cipher is not None, TLS_REQUIRED, f"{name} connection encrypted (cipher {cipher!r})")
        client = f"client cipher {encrypted_cipher(conn)}" if TLS_REQUIRED else "plaintext"
        print(f"[{DRIVER}]      {client}; server Ssl_cipher {server_cipher!r}")

    with step("create tables and a procedure (dropping leftovers first)"):
        drop_all(conn)
        query(conn, f"CREATE TABLE {P}items (id INT AUTO_INCREMENT PRIMARY KEY, "
                    "name VARCHAR(50) NOT NULL UNIQUE, qty INT) CHARACTER SET utf8mb4")
        query(conn, f"CREATE TABLE {P}types (id INT PRIMARY KEY, "
                    + ", ".join(f"{col} {sql_type}" for col, sql_type, _ in TYPE_COLUMNS)
                    + ") CHARACTER SET utf8mb4")
        query(conn, f"CREATE TABLE {P}short (s VARCHAR(3))")
        query(conn, f"CREATE TABLE {P}long (id INT PRIMARY KEY, v MEDIUMBLOB)")
        query(conn, f"CREATE PROCEDURE {P}two_results(IN k INT) "
                    "BEGIN SELECT k AS first_k; SELECT k * 2 AS doubled, 'two' AS tag; END")

    with step("INSERT (text and prepared): rowcount, lastrowid, LAST_INSERT_ID()"):
        cur = conn.cursor()
        cur.execute(f"INSERT INTO {P}items (name, qty) VALUES (%s, %s)", ("apple", 3))
        check(cur.rowcount, 1, "rowcount")
        check(cur.lastrowid, 1, "lastrowid")
        cur.close()
        cur = conn.cursor(prepared=True)
        cur.execute(f"INSERT INTO {P}items (name, qty) VALUES (?, ?), (?, ?), (?, ?)",
                    ("banana", 5, "cherry", 5, "durian", None))
        check(cur.rowcount, 3, "rowcount of a 3-row prepared insert")
        # A multi-row insert reports the id of its first row.
        check(cur.lastrowid, 2, "lastrowid of a multi-row insert")
        cur.close()
        check(query(conn, "SELECT LAST_INSERT_ID()"), [(2,)], "LAST_INSERT_ID()")

    with step("UPDATE: changed rows by default, matched rows with CLIENT_FOUND_ROWS"):
        # banana and cherry already have qty 5: three rows match, one changes.
        check(query(conn, f"UPDATE {P}items SET qty = 5 WHERE id <= 3"), 1, "rowcount (changed)")
        check(prepared(conn, f"UPDATE {P}items SET qty = ? WHERE id <= ?", (5, 3)), 0, "prepared rowcount (changed)")
        check(query(found_rows, f"UPDATE {P}items SET qty = 5 WHERE id <= 3"), 3, "rowcount (matched)")
        check(prepared(found_rows, f"UPDATE {P}items SET qty = ? WHERE id <= ?", (5, 3)), 3, "prepared rowcount (matched)")

    with step("types round-trip: text insert (id 1), prepared insert (id 2), all-NULL prepared insert (id 3)"):
        values = [v for _, _, v in TYPE_COLUMNS]
        n = len(TYPE_COLUMNS) + 1
        check(query(conn, f"INSERT INTO {P}types (id, {COLS}) VALUES ({', '.join(['%s'] * n)})", [1, *values]),
              1, "text insert rowcount")
        # Both drivers encode a negative timedelta parameter wrongly (pure:
        # abs(days) with the normalised positive seconds, -25:30:01 becomes
        # -70:29:59; cext: 00:00:00), so the prepared insert sends it as text.
        # The C extension binds a Python float as a single-precision FLOAT
        # (0.1 arrives as 0.10000000149011612), so it sends the DOUBLE as text.
        binary_values = ["-25:30:01" if col == "c_time" else "0.1" if col == "c_double" and not PURE else v
                         for col, _, v in TYPE_COLUMNS]
        check(prepared(conn, f"INSERT INTO {P}types (id, {COLS}) VALUES ({', '.join(['?'] * n)})", [2, *binary_values]),
              1, "prepared insert rowcount")
        check(prepared(conn, f"INSERT INTO {P}types (id, {COLS}) VALUES ({', '.join(['?'] * n)})",
                       [3, *([None] * len(TYPE_COLUMNS))]), 1, "all-NULL prepared insert rowcount")
        for how, run in (("text", lambda: query(conn, f"SELECT {COLS} FROM {P}types ORDER BY id")),
                         ("binary", lambda: prepared(conn, f"SELECT {BINARY_COLS} FROM {P}types WHERE id > ? ORDER BY id", (0,)))):
            rows = run()
            check(len(rows), 3, f"{how} row count")
            pure_binary = PURE and how == "binary"
            check_types_row(rows[0], f"{how} row 1", pure_binary)
            check_types_row(rows[1], f"{how} row 2", pure_binary)
            check(tuple(rows[2]), (None,) * len(TYPE_COLUMNS), f"{how} all-NULL row")
        text = query(conn, f"SELECT HEX(c_blob), CAST(c_time AS CHAR), CHAR_LENGTH(c_varchar), LENGTH(c_varchar), "
                           f"HEX(c_bit), c_decimal + 0.01 FROM {P}types WHERE id = 2")[0]
        check(text, (BLOB.hex().upper(), "-25:30:01", 19, 32, "A5", Decimal("-1234567890.11")),
              "server-side rendering of the prepared insert")

    with step("prepared statement re-executed with parameters of several types, NULL included"):
        cur = conn.cursor(prepared=True)
        sql = "SELECT ? + 0, CONCAT(?, ''), ? IS NULL, HEX(?), ? * 2, CAST(? AS DECIMAL(12,2)), CAST(? AS DATETIME(6))"
        cases = [
            ((7, "ü🐬", None, b"\x00\xff", 2.5, Decimal("10.05"), datetime(2024, 1, 2, 3, 4, 5, 6)),
             (7, "ü🐬", 1, "00FF", 5.0, Decimal("10.05"), datetime(2024, 1, 2, 3, 4, 5, 6))),
            ((-1, "", "x", b"", -0.5, Decimal("-0.01"), datetime(1999, 12, 31, 23, 59, 59)),
             (-1, "", 0, "", -1.0, Decimal("-0.01"), datetime(1999, 12, 31, 23, 59, 59))),
        ]
        exprs = ["? + 0", "CONCAT(?, '')", "? IS NULL", "HEX(?)", "? * 2",
                 "CAST(? AS DECIMAL(12,2))", "CAST(? AS DATETIME(6))"]
        for params, expected in cases:
            if PURE:
                cur.execute(sql, params)
                row = cur.fetchall()
            else:
                # The C extension (9.7.0) corrupts its heap executing this
                # seven-parameter statement, directly against MariaDB too
                # ("malloc(): unaligned tcache chunk detected"); one
                # parameter per statement exercises the same encodings.
                row = [[]]
                for expr, param in zip(exprs, params):
                    cur.execute("SELECT " + expr, (param,))
                    row[0].append(cur.fetchall()[0][0])
            check(len(row), 1, "row count")
            got = list(row[0])
            if isinstance(got[1], (bytes, bytearray)):
                got[1] = bytes(got[1]).decode()
            if isinstance(got[3], (bytes, bytearray)):
                got[3] = bytes(got[3]).decode()
            # `? + 0` on an integer parameter is DECIMAL or BIGINT depending on the server.
            got[0] = int(got[0])
            check(tuple(got), expected, f"row for {params!r}")
        cur.close()

    if PURE:
        with step("COM_STMT_SEND_LONG_DATA: BLOB parameter from a file object, sent in pieces"):
            long_value = bytes((i * 7 + i // 256) % 256 for i in range(300_000))
            check(prepared(conn, f"INSERT INTO {P}long VALUES (?, ?)", (1, io.BytesIO(long_value))), 1, "rowcount")
            check(query(conn, f"SELECT LENGTH(v), MD5(v) FROM {P}long WHERE id = 1"),
                  [(300_000, hashlib.md5(long_value).hexdigest())], "length and md5 on the server")
            back = prepared(conn, f"SELECT v FROM {P}long WHERE id = ?", (1,))[0][0]
            check(bytes(back) == long_value, True, "value read back")

    with step("transaction rolled back (row absent) and one committed (seen by another connection)"):
        conn.start_transaction()
        prepared(conn, f"INSERT INTO {P}items (name, qty) VALUES (?, ?)", ("rolled-back", 1))
        check(query(conn, f"SELECT COUNT(*) FROM {P}items WHERE name = 'rolled-back'"), [(1,)], "inside the transaction")
        check(query(other, f"SELECT COUNT(*) FROM {P}items WHERE name = 'rolled-back'"), [(0,)], "other before rollback")
        conn.rollback()
        check(query(conn, f"SELECT COUNT(*) FROM {P}items WHERE name = 'rolled-back'"), [(0,)], "after rollback")
        conn.start_transaction()
        query(conn, f"INSERT INTO {P}items (name, qty) VALUES ('committed', 7)")
        conn.commit()
        check(query(other, f"SELECT qty FROM {P}items WHERE name = 'committed'"), [(7,)], "other after commit")

    with step("errors 1062/23000 and 1146/42S02 (text and prepared), connection keeps working"):
        dup = "Duplicate entry 'apple' for key 'name'"
        missing = f"Table '{database}.{P}no_such_table' doesn't exist"
        cases = [
            (lambda: query(conn, f"INSERT INTO {P}items (name, qty) VALUES ('apple', 1)"), errors.IntegrityError, 1062, "23000", dup),
            (lambda: prepared(conn, f"INSERT INTO {P}items (name, qty) VALUES (?, ?)", ("apple", 1)), errors.IntegrityError, 1062, "23000", dup),
            (lambda: query(conn, f"SELECT * FROM {P}no_such_table"), errors.ProgrammingError, 1146, "42S02", missing),
            (lambda: prepared(conn, f"SELECT * FROM {P}no_such_table WHERE 1 = ?", (1,)), errors.ProgrammingError, 1146, "42S02", missing),
        ]
        for run, error_class, errno, sqlstate, msg in cases:
            try:
                run()
            except error_class as e:
                check((e.errno, e.sqlstate, e.msg), (errno, sqlstate, msg), "error")
            else:
                raise StepFailed(f"expected error {errno}, the statement succeeded")
            check(prepared(conn, "SELECT 41 + ?", (1,)), [(42,)], f"prepared query after error {errno}")
            check(query(conn, "SELECT 'still here'"), [("still here",)], f"text query after error {errno}")

    with step("warnings: truncation under a non-strict sql_mode, division by zero"):
        query(conn, "SET SESSION sql_mode = ''")
        cur = conn.cursor()
        cur.execute(f"INSERT INTO {P}short VALUES ('abcdef')")
        check(cur.warning_count, 1, "warning count of the truncating insert")
        check(cur.warnings, [("Warning", 1265, "Data truncated for column 's' at row 1")], "warnings fetched")
        cur.close()
        cur = conn.cursor(prepared=True)
        cur.execute(f"INSERT INTO {P}short VALUES (?)", ("uvwxyz",))
        check(cur.warning_count, 1, "warning count of the truncating prepared insert")
        cur.close()
        check(query(conn, f"SELECT s FROM {P}short ORDER BY s"), [("abc",), ("uvw",)], "stored truncated values")
        query(conn, "SET SESSION sql_mode = 'ERROR_FOR_DIVISION_BY_ZERO'")
        cur = conn.cursor()
        cur.execute("SELECT 1/0")
        check(cur.fetchall(), [(None,)], "1/0")
        check(cur.warning_count, 1, "warning count of 1/0")
        cur.execute("SHOW WARNINGS")
        check(cur.fetchall(), [("Warning", 1365, "Division by 0")], "SHOW WARNINGS")
        cur.close()
        query(conn, "SET SESSION sql_mode = DEFAULT")

    with step("multiple result sets: multi-statement query, CALL, callproc"):
        cur = conn.cursor()
        cur.execute(f"SELECT 1 AS a; SELECT 'two' AS b, NULL AS c; UPDATE {P}items SET qty = qty WHERE id = 1")
        sets = [(cur.column_names, cur.fetchall())]
        while cur.nextset():
            sets.append((cur.column_names, cur.fetchall() if cur.with_rows else cur.rowcount))
        check(sets, [(("a",), [(1,)]), (("b", "c"), [("two", None)]), ((), 0)], "multi-statement results")
        cur.execute(f"CALL {P}two_results(21)")
        sets = [cur.fetchall()]
        while cur.nextset():
            sets.append(cur.fetchall() if cur.with_rows else None)
        # Two SELECT results, then the CALL's own status.
        check(sets, [[(21,)], [(42, "two")], None], "CALL results")
        cur.callproc(f"{P}two_results", (5,))
        check([r.fetchall() for r in cur.stored_results()], [[(5,)], [(10, "two")]], "callproc stored_results")
        cur.close()
        check(query(conn, "SELECT 'after'"), [("after",)], "query after the CALLs")

    with step("change database to the same one (COM_INIT_DB and USE), ping"):
        conn.database = database  # COM_INIT_DB
        check(query(conn, "SELECT DATABASE()"), [(database,)], "database after COM_INIT_DB")
        query(conn, f"USE `{database}`")
        check(query(conn, "SELECT DATABASE()"), [(database,)], "database after USE")
        conn.ping(reconnect=False)
        check(query(conn, f"SELECT COUNT(*) FROM {P}items"), [(5,)], "items after ping")

    with step("10,000-row result: text protocol and prepared (binary protocol)"):
        check_10k(query(conn, digits_cte(10000)), "text")
        check_10k(prepared(conn, digits_cte(10000)), "binary")
        cur = conn.cursor(buffered=False)
        cur.execute(digits_cte(10000))
        streamed = []
        while batch := cur.fetchmany(777):
            streamed.extend(batch)
        cur.close()
        check_10k(streamed, "unbuffered fetchmany")

    if PURE:
        with step(f"COM_STMT_FETCH: read-only cursor over 10,000 rows in batches of {CURSOR_FETCH_ROWS}"):
            # The cursor API never asks for a server cursor; the connection's
            # command methods do: COM_STMT_EXECUTE with CURSOR_TYPE_READ_ONLY,
            # then COM_STMT_FETCH for each batch.
            stmt = conn.cmd_stmt_prepare(digits_cte(10000).encode())
            columns, _ = stmt["columns"], stmt["parameters"]
            check(len(columns), 3, "prepared statement columns")
            res = conn.cmd_stmt_execute(stmt["statement_id"], flags=1)  # CURSOR_TYPE_READ_ONLY
            check(isinstance(res, tuple), True, "execute opened a result")
            # With a cursor the server sends column definitions, then an EOF
            # whose status says a cursor exists, and no rows yet.
            status = res[2]["status_flag"]
            check(bool(status & 0x0040), True, f"SERVER_STATUS_CURSOR_EXISTS in {status:#x}")
            rows, batches = [], 0
            while True:
                conn.cmd_stmt_fetch(stmt["statement_id"], CURSOR_FETCH_ROWS)
                batch, eof = conn.get_rows(binary=True, columns=res[1])
                batches += 1
                rows.extend(batch)
                check(len(batch) <= CURSOR_FETCH_ROWS, True, "batch size")
                if eof["status_flag"] & 0x0080:  # SERVER_STATUS_LAST_ROW_SENT
                    break
                if batches > 20:
                    raise StepFailed("more than 20 fetches for 10,000 rows")
            check_10k(rows, "COM_STMT_FETCH")
            check(batches in (10, 11), True, f"fetch count {batches}")
            conn.cmd_stmt_close(stmt["statement_id"])
            check(query(conn, "SELECT 'after cursor'"), [("after cursor",)], "query after the cursor")

    with step(f"value of {BIG_VALUE_BYTES} bytes (over 16 MiB) as a prepared-statement parameter"):
        limit = query(conn, "SELECT @@max_allowed_packet")[0][0]
        if limit < BIG_VALUE_BYTES + 1024 * 1024:
            raise Skipped(f"server max_allowed_packet is {limit}, needs at least {BIG_VALUE_BYTES + 1024 * 1024}")
        big = bytes((i * 7 + i // 256) % 256 for i in range(BIG_VALUE_BYTES))
        query(conn, f"CREATE TABLE {P}big (id INT PRIMARY KEY, v LONGBLOB)")
        # --pure sends it with COM_STMT_SEND_LONG_DATA, --cext inline in COM_STMT_EXECUTE.
        check(prepared(conn, f"INSERT INTO {P}big VALUES (?, ?)", (1, io.BytesIO(big) if PURE else big)), 1, "rowcount")
        check(query(conn, f"SELECT LENGTH(v), MD5(v) FROM {P}big"),
              [(BIG_VALUE_BYTES, hashlib.md5(big).hexdigest())], "length and md5 on the server")
        # The pure driver reads only the first 16 MiB packet of a binary-protocol
        # row (16777204 bytes of this value come back), so --pure reads it with
        # the text protocol, which joins the packets.
        if PURE:
            back = query(conn, f"SELECT v FROM {P}big WHERE id = 1")[0][0]
        else:
            back = prepared(conn, f"SELECT v FROM {P}big WHERE id = ?", (1,))[0][0]
        check(len(back), BIG_VALUE_BYTES, "length read back")
        check(bytes(back) == big, True, "value read back")
        query(conn, f"DROP TABLE {P}big")

    with step("drop every object and close"):
        drop_all(conn)
        check(query(conn, "SELECT COUNT(*) FROM information_schema.tables "
                          f"WHERE table_schema = DATABASE() AND table_name LIKE '{P.replace('_', chr(92) + '_')}%'"),
              [(0,)], "tables left")
        for c in (conn, other, found_rows):
            c.close()

    signal.alarm(0)
    print(f"[{DRIVER}] session passed")


if __name__ == "__main__":
    main()
