#!/usr/bin/env python3
"""Differential probe for the Python MySQL drivers: runs the same session
and prints everything the driver reports, one JSON line per step, so that a
run directly against MariaDB and a run through Airlock can be compared line
by line (protocol-tests/mysql_driver_probes.rs does that).

Usage: mysql_probe.py pymysql | pure | cext
  pymysql  PyMySQL (text protocol, client-side executemany rewriting)
  pure     mysql-connector-python, use_pure=True, incl. cursor(prepared=True)
  cext     mysql-connector-python's C extension, incl. cursor(prepared=True)

Connection settings: MYSQL_HOST, MYSQL_PORT, MYSQL_USER, MYSQL_PASSWORD,
MYSQL_DATABASE (no TLS). Statements the probe writes itself start with
`/*app*/` so that a general-log capture can tell them from the driver's own
(scripts/driver-corpus/capture.py uses the same mark).

Nothing printed may depend on who connected or when: no connection ids,
user names or clocks. Objects are prefixed `prb_` and dropped at both ends.
Exits non-zero only when the probe itself cannot run (a lost connection is
printed as a step result, since that is a difference to report).
"""

import hashlib
import io
import json
import os
import signal
import sys
import warnings
from datetime import date, datetime, time, timedelta
from decimal import Decimal

warnings.simplefilter("ignore")
MODE = sys.argv[1] if len(sys.argv) == 2 else ""
if MODE not in ("pymysql", "pure", "cext"):
    sys.exit(f"usage: {sys.argv[0]} pymysql|pure|cext")


def on_deadline(*_):
    import faulthandler
    print("TIMEOUT", flush=True)
    faulthandler.dump_traceback(file=sys.stderr)  # where it was stuck
    os._exit(3)


signal.signal(signal.SIGALRM, on_deadline)
signal.alarm(int(os.environ.get("PROBE_DEADLINE", "300")))

HOST = os.environ["MYSQL_HOST"]
PORT = int(os.environ["MYSQL_PORT"])
USER = os.environ["MYSQL_USER"]
PASSWORD = os.environ.get("MYSQL_PASSWORD", "")
DB = os.environ["MYSQL_DATABASE"]
A = "/*app*/ "

if MODE == "pymysql":
    import pymysql
    import pymysql.cursors
    Error = pymysql.err.MySQLError
else:
    import mysql.connector
    from mysql.connector import errors as myerrors
    Error = myerrors.Error


def norm(v):
    """A value as the driver decoded it: its Python type and its repr
    (bytes by digest when long)."""
    if isinstance(v, (bytes, bytearray)) and len(v) > 64:
        return [type(v).__name__, len(v), hashlib.md5(v).hexdigest()]
    if isinstance(v, str) and len(v) > 64:
        return ["str", len(v), hashlib.md5(v.encode("utf-8", "surrogatepass")).hexdigest()]
    if isinstance(v, (set, frozenset)):  # a SET column; iteration order is random
        return [type(v).__name__, sorted(norm(x) for x in v)]
    if isinstance(v, (list, tuple)):
        return [norm(x) for x in v]
    if isinstance(v, dict):
        return {str(k): norm(x) for k, x in v.items()}
    if v is None or isinstance(v, (bool, int, str)):
        return [type(v).__name__, v]
    return [type(v).__name__, repr(v)]


class S:
    """The probe's main connection; replaced after a driver failure that
    leaves it unusable (the failure itself is the step's result)."""
    conn = None
    broken = False


def emit(step, value):
    print(json.dumps({"step": step, "result": value}, sort_keys=True, default=repr), flush=True)
    if S.broken:
        S.broken = False
        try:
            S.conn.close()
        except Exception:  # noqa: BLE001 - it is being replaced
            pass
        S.conn = connect()
        print(json.dumps({"step": step + ".reconnected", "result": True}), flush=True)


def err(e):
    if MODE == "pymysql":
        args = list(e.args)
        return {"error": type(e).__name__, "args": [norm(a) for a in args]}
    return {"error": type(e).__name__, "errno": e.errno, "sqlstate": e.sqlstate, "msg": e.msg}


def connect(**kw):
    if MODE == "pymysql":
        params = dict(host=HOST, port=PORT, user=USER, password=PASSWORD.encode(), database=DB,
                      ssl_disabled=True, charset="utf8mb4", connect_timeout=20)
        params.update(kw)
        return pymysql.connect(**params)
    params = dict(host=HOST, port=PORT, user=USER, password=PASSWORD, database=DB,
                  use_pure=(MODE == "pure"), ssl_disabled=True, connection_timeout=20)
    params.update(kw)
    return mysql.connector.connect(**params)


def status(conn):
    """What the driver knows of the server's status flags."""
    if MODE == "pymysql":
        return conn.server_status
    if MODE == "pure":
        return conn._server_status if hasattr(conn, "_server_status") else None
    return None


def describe(cur):
    d = cur.description
    return None if d is None else [list(col) for col in d]


def run(conn, sql, args=None, many=False, prepared=False, **curkw):
    """Executes and reads every result set; returns what the driver says."""
    out = {}
    try:
        cur = conn.cursor(prepared=True) if prepared else conn.cursor(**curkw)
        if many:
            cur.executemany(sql, args)
        elif args is not None:
            cur.execute(sql, args)
        else:
            cur.execute(sql)
        sets = []
        while True:
            one = {"description": describe(cur), "rowcount": cur.rowcount}
            if cur.description is not None:
                one["rows"] = norm(cur.fetchall())
            sets.append(one)
            if prepared or MODE != "pymysql":
                break
            if not cur.nextset():
                break
        out["sets"] = sets
        out["lastrowid"] = cur.lastrowid
        if MODE == "pymysql":
            out["warnings"] = conn.warning_count if hasattr(conn, "warning_count") else None
            out["info"] = norm(cur._result.message) if cur._result is not None else None
        else:
            out["warnings"] = cur.warning_count
        cur.close()
    except Error as e:
        out["error"] = err(e)
        if MODE != "pymysql" and e.errno in (2013, 2014, 2055, -1):
            S.broken = True
    except Exception as e:  # noqa: BLE001 - the driver's own failure is a result
        out["driver"] = {"error": type(e).__name__, "msg": str(e)}
        S.broken = True
    out["status"] = status(conn)
    return out


def multi(conn, sql):
    """A multi-statement query, every result (mysql-connector reads them
    with cursor.execute(..., multi=True) in 9.x: fetchsets / nextset)."""
    if MODE == "pymysql":
        return run(conn, sql)
    out = []
    try:
        cur = conn.cursor()
        cur.execute(sql, map_results=False) if False else cur.execute(sql)
        while True:
            one = {"description": describe(cur), "rowcount": cur.rowcount}
            if cur.description is not None:
                one["rows"] = norm(cur.fetchall())
            out.append(one)
            if not cur.nextset():
                break
        cur.close()
    except Error as e:
        out.append(err(e))
        S.broken = True
    except Exception as e:  # noqa: BLE001 - the driver's own failure is a result
        out.append({"driver": type(e).__name__, "msg": str(e)})
        S.broken = True
    return {"sets": out, "status": status(conn)}


TYPES = (
    "id INT PRIMARY KEY, ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED, "
    "mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED, "
    "de DECIMAL(30,10), de0 DECIMAL(5,0), f FLOAT, d DOUBLE, dt DATE, tm TIME, tm6 TIME(6), "
    "dtm DATETIME, dtm6 DATETIME(6), ts TIMESTAMP(3) NULL DEFAULT NULL, y YEAR, b1 BIT(1), b64 BIT(64), "
    "e ENUM('a','b','ç'), s SET('x','y','z'), j JSON, c CHAR(5), vc VARCHAR(100), bn BINARY(4), "
    "vb VARBINARY(10), tt TINYTEXT, t TEXT, mt MEDIUMTEXT, lt LONGTEXT, tb TINYBLOB, bl BLOB, "
    "mb MEDIUMBLOB, lb LONGBLOB"
)
ROWS = [
    "(1, -128, 0, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808, 0, "
    "'-12345678901234567890.0123456789', -99999, -3.4e38, -1.7976931348623157e308, '1000-01-01', "
    "'-838:59:59', '-838:59:58.999999', '1000-01-01 00:00:00', '1000-01-01 00:00:00.000001', "
    "'1970-01-02 00:00:00.001', 1901, b'0', b'0', 'a', '', '[]', '', '', x'00', x'', '', '', '', '', "
    "x'', x'00ff', x'', x'')",
    "(2, 127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295, 9223372036854775807, "
    "18446744073709551615, '12345678901234567890.0123456789', 99999, 3.4e38, 1.7976931348623157e308, "
    "'9999-12-31', '838:59:59', '838:59:58.999999', '9999-12-31 23:59:59', '9999-12-31 23:59:59.999999', "
    "'2038-01-19 03:14:07.999', 2155, b'1', b'1111111111111111111111111111111111111111111111111111111111111111', "
    "'ç', 'x,y,z', '{\"a\": [1, 2.5, \"ü\", null, true]}', 'abcde', 'żółw 🐢', x'01020304', x'00ff00ff', "
    "REPEAT('t', 255), REPEAT('é', 1000), REPEAT('m', 70000), REPEAT('l', 100000), x'00ff', "
    "REPEAT(x'ab', 3000), REPEAT(x'cd', 70000), REPEAT(x'ef', 100000))",
    "(3, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, '0.0000000001', 0, 1.5, 0.1, '2024-02-29', '00:00:00', "
    "'-00:00:01.5', '2024-02-29 12:34:56', '2024-02-29 12:34:56.5', '2024-02-29 12:34:56.123', 2024, "
    "b'1', b'101', 'b', 'y', '\"s\"', 'a', 'NULL', x'00000000', x'00', 'x', 'y', 'z', 'w', x'', x'', x'', x'')",
    "(4" + ", NULL" * 38 + ")",
]


def main():
    emit("mode", MODE)
    try:
        S.conn = connect()
    except Error as e:
        emit("connect", err(e))
        return
    if MODE == "pymysql":
        emit("connect", {"server_charset": S.conn.server_charset if hasattr(S.conn, "server_charset") else None,
                         "status": S.conn.server_status, "autocommit": S.conn.get_autocommit(),
                         "encoding": S.conn.encoding})
    else:
        emit("connect", {"autocommit": S.conn.autocommit, "charset": S.conn.charset,
                         "collation": S.conn.collation, "in_transaction": S.conn.in_transaction,
                         "database": S.conn.database})

    emit("setup", run(S.conn, A + "DROP TABLE IF EXISTS prb_types, prb_items, prb_big"))
    emit("setup.proc", run(S.conn, A + "DROP PROCEDURE IF EXISTS prb_proc"))
    emit("create.types", run(S.conn, A + f"CREATE TABLE prb_types ({TYPES})"))
    emit("create.items", run(S.conn, A + "CREATE TABLE prb_items (id INT AUTO_INCREMENT PRIMARY KEY, "
                                       "name VARCHAR(20) UNIQUE, qty INT) ENGINE=InnoDB"))
    emit("create.proc", run(S.conn, A + "CREATE PROCEDURE prb_proc(IN a INT, INOUT b INT, OUT c VARCHAR(10)) "
                                      "BEGIN SELECT a AS a_in, b AS b_in; SET b = a + b, c = CONCAT('c', a); "
                                      "SELECT name FROM prb_items ORDER BY id; END"))
    for n, row in enumerate(ROWS):
        emit(f"insert.types.{n}", run(S.conn, A + f"INSERT INTO prb_types VALUES {row}"))
    S.conn.commit()

    emit("select.types.text", run(S.conn, A + "SELECT * FROM prb_types ORDER BY id"))
    emit("select.exprs.text", run(S.conn, A + "SELECT 1, -1, 1.5, 1e300, 'x', NULL, 18446744073709551615, "
                                            "CAST(1 AS UNSIGNED), NOW() IS NOT NULL, CAST('2020-01-01' AS DATE), "
                                            "CAST('12:00' AS TIME), X'00', _latin1'é', CONVERT('ü' USING utf8mb3)"))
    emit("select.empty", run(S.conn, A + "SELECT * FROM prb_types WHERE id < 0"))
    if MODE != "pymysql":
        # One column at a time: a type the driver cannot decode fails
        # alone (the pure driver has such bugs) without hiding the rest.
        for col in [c.split()[0] for c in TYPES.split(", ") if not c[0].isdigit() and "'" not in c.split()[0]]:
            emit(f"select.types.binary.{col}", run(S.conn, A + f"SELECT {col} FROM prb_types WHERE id > ? ORDER BY id",
                                                   (0,), prepared=True))
        emit("select.exprs.binary", run(S.conn, A + "SELECT ?, ?, ?, ?, ?, ?, ?, ?", (
            1, -1, Decimal("1.50"), 2.5, "żółw", None, b"\x00\xff", date(2020, 1, 2)), prepared=True))
        emit("prepared.reexec", [run(S.conn, A + "SELECT id, vc FROM prb_types WHERE id = ?", (k,), prepared=True)
                                 for k in (1, 2, 4)])
        emit("prepared.insert.types", run(S.conn, A + "INSERT INTO prb_items (name, qty) VALUES (?, ?)",
                                          ("prep", 7), prepared=True))
        emit("prepared.error", run(S.conn, A + "SELECT * FROM prb_nope WHERE id = ?", (1,), prepared=True))
        emit("prepared.syntax", run(S.conn, A + "SELEC ?", (1,), prepared=True))

    # Affected rows, insert ids, info strings.
    emit("insert.multi", run(S.conn, A + "INSERT INTO prb_items (name, qty) VALUES ('a', 1), ('b', 2), ('c', 3)"))
    emit("update.info", run(S.conn, A + "UPDATE prb_items SET qty = 2 WHERE qty <= 2"))
    emit("insert.dup.update", run(S.conn, A + "INSERT INTO prb_items (name, qty) VALUES ('a', 9) "
                                            "ON DUPLICATE KEY UPDATE qty = VALUES(qty)"))
    emit("last_insert_id", run(S.conn, A + "SELECT LAST_INSERT_ID(), ROW_COUNT(), FOUND_ROWS()"))
    emit("alter.info", run(S.conn, A + "ALTER TABLE prb_items ADD COLUMN extra INT NULL"))
    emit("executemany.insert", run(S.conn, A + "INSERT INTO prb_items (name, qty) VALUES (%s, %s)",
                                   [("m1", 1), ("m2", 2), ("m3", 3)], many=True))
    emit("executemany.update", run(S.conn, A + "UPDATE prb_items SET qty = qty + %s WHERE name = %s",
                                   [(10, "m1"), (20, "m2"), (30, "zz")], many=True))
    emit("executemany.dup", run(S.conn, A + "INSERT INTO prb_items (name, qty) VALUES (%s, %s)",
                                [("m4", 1), ("m1", 2), ("m5", 3)], many=True))
    emit("after.dup", run(S.conn, A + "SELECT name, qty FROM prb_items ORDER BY id"))
    if MODE != "pymysql":
        emit("executemany.prepared", run(S.conn, A + "INSERT INTO prb_items (name, qty) VALUES (?, ?)",
                                         [("p1", 1), ("p2", 2)], many=True, prepared=True))
    S.conn.commit()

    # Warnings.
    emit("warn.mode", run(S.conn, A + "SET SESSION sql_mode = ''"))
    emit("warn.insert", run(S.conn, A + "INSERT INTO prb_items (name, qty) VALUES ('this name is far too long', 'x')"))
    emit("warn.show", run(S.conn, A + "SHOW WARNINGS"))
    emit("warn.count", run(S.conn, A + "SHOW COUNT(*) WARNINGS"))
    emit("warn.div", run(S.conn, A + "SELECT 1/0, CAST('x' AS SIGNED)"))
    emit("warn.show2", run(S.conn, A + "SHOW WARNINGS"))
    emit("warn.note", run(S.conn, A + "DROP TABLE IF EXISTS prb_absent"))
    emit("warn.show3", run(S.conn, A + "SHOW WARNINGS"))
    emit("warn.errors", run(S.conn, A + "SHOW ERRORS"))
    S.conn.commit()

    # Errors and recovery.
    emit("err.syntax", run(S.conn, A + "SELEC 1"))
    emit("err.missing", run(S.conn, A + "SELECT * FROM prb_nope"))
    emit("err.dup", run(S.conn, A + "INSERT INTO prb_items (name) VALUES ('a')"))
    emit("err.signal", run(S.conn, A + "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'custom ü', MYSQL_ERRNO = 1644"))
    emit("err.recover", run(S.conn, A + "SELECT COUNT(*) FROM prb_items"))

    # Multiple statements and result sets.
    emit("multi.select", multi(S.conn, A + "SELECT 1 AS one; SELECT 'two' AS two, NULL; "
                                         "UPDATE prb_items SET qty = qty WHERE id = 1; SELECT 3"))
    emit("multi.error.middle", multi(S.conn, A + "SELECT 1; SELECT * FROM prb_nope; SELECT 3"))
    emit("multi.recover", run(S.conn, A + "SELECT 'ok'"))

    # Stored procedures: OUT params and result sets.
    if MODE == "pymysql":
        try:
            cur = S.conn.cursor()
            res = cur.callproc("prb_proc", (5, 6, None))
            sets = []
            while True:
                sets.append({"description": describe(cur), "rows": norm(cur.fetchall()) if cur.description else None,
                             "rowcount": cur.rowcount})
                if not cur.nextset():
                    break
            cur.execute("SELECT @_prb_proc_0, @_prb_proc_1, @_prb_proc_2")
            emit("callproc", {"args": norm(res), "sets": sets, "out": norm(cur.fetchall()), "status": status(S.conn)})
            cur.close()
        except Error as e:
            emit("callproc", err(e))
    else:
        try:
            cur = S.conn.cursor()
            res = cur.callproc("prb_proc", (5, 6, None))
            sets = [norm(r.fetchall()) for r in cur.stored_results()]
            emit("callproc", {"args": norm(res), "sets": sets})
            cur.close()
        except Error as e:
            emit("callproc", err(e))
        emit("call.prepared", run(S.conn, A + "CALL prb_proc(?, ?, ?)", (1, 2, None), prepared=True))
    emit("call.text", multi(S.conn, A + "CALL prb_proc(1, @x, @y)"))
    emit("call.vars", run(S.conn, A + "SELECT @x, @y"))

    # Transactions, autocommit, status flags.
    emit("tx.autocommit.get", S.conn.get_autocommit() if MODE == "pymysql" else S.conn.autocommit)
    emit("tx.begin", run(S.conn, A + "START TRANSACTION"))
    emit("tx.insert", run(S.conn, A + "INSERT INTO prb_items (name, qty) VALUES ('tx', 1)"))
    if MODE != "pymysql":
        emit("tx.in_transaction", S.conn.in_transaction)
    S.conn.rollback()
    emit("tx.after.rollback", run(S.conn, A + "SELECT COUNT(*) FROM prb_items WHERE name = 'tx'"))
    S.conn.autocommit(True) if MODE == "pymysql" else setattr(S.conn, "autocommit", True)
    emit("tx.autocommit.on", S.conn.get_autocommit() if MODE == "pymysql" else S.conn.autocommit)
    emit("tx.auto.insert", run(S.conn, A + "INSERT INTO prb_items (name, qty) VALUES ('auto', 1)"))
    S.conn.autocommit(False) if MODE == "pymysql" else setattr(S.conn, "autocommit", False)
    emit("tx.autocommit.off", S.conn.get_autocommit() if MODE == "pymysql" else S.conn.autocommit)
    if MODE == "pymysql":
        S.conn.begin()
    else:
        S.conn.start_transaction(isolation_level="READ COMMITTED")
        emit("tx.isolation", run(S.conn, A + "SELECT @@tx_isolation"))
    emit("tx.savepoint", run(S.conn, A + "SAVEPOINT s1"))
    emit("tx.sp.insert", run(S.conn, A + "INSERT INTO prb_items (name, qty) VALUES ('sp', 1)"))
    emit("tx.sp.rollback", run(S.conn, A + "ROLLBACK TO SAVEPOINT s1"))
    emit("tx.sp.release", run(S.conn, A + "RELEASE SAVEPOINT s1"))
    S.conn.commit()
    emit("tx.after.commit", run(S.conn, A + "SELECT name FROM prb_items WHERE name IN ('sp', 'auto', 'tx')"))
    if MODE != "pymysql":
        emit("tx.readonly", run(S.conn, A + "START TRANSACTION READ ONLY"))
        emit("tx.readonly.write", run(S.conn, A + "INSERT INTO prb_items (name, qty) VALUES ('ro', 1)"))
        S.conn.rollback()

    # Session commands.
    if MODE == "pymysql":
        S.conn.ping(reconnect=False)
        emit("ping", "ok")
        S.conn.select_db(DB)
        emit("select_db", run(S.conn, A + "SELECT DATABASE()"))
        try:
            S.conn.select_db("prb_no_such_db")
        except Error as e:
            emit("select_db.missing", err(e))
        S.conn.set_character_set("latin1")
        emit("charset.latin1", run(S.conn, A + "SELECT 'é', @@character_set_client, @@character_set_results"))
        S.conn.set_character_set("utf8mb4", "utf8mb4_bin")
        emit("charset.utf8mb4", run(S.conn, A + "SELECT 'é', @@collation_connection"))
        emit("show.variables", run(S.conn, A + "SHOW VARIABLES LIKE 'auto_increment_%'"))
        emit("kill.none", run(S.conn, A + "KILL QUERY 999999999"))
    else:
        try:
            S.conn.ping(reconnect=False)
            emit("ping", "ok")
        except Error as e:
            emit("ping", err(e))
        try:
            S.conn.cmd_init_db(DB)
            emit("init_db", run(S.conn, A + "SELECT DATABASE()"))
        except Error as e:
            emit("init_db", err(e))
        try:
            S.conn.cmd_init_db("prb_no_such_db")
        except Error as e:
            emit("init_db.missing", err(e))
        emit("set.var", run(S.conn, A + "SET @prb = 42"))
        try:
            S.conn.cmd_reset_connection()
            emit("reset_connection", run(S.conn, A + "SELECT @prb, DATABASE()"))
        except Error as e:
            emit("reset_connection", err(e))
        try:
            S.conn.reset_session(user_variables={"prb2": 1}, session_variables={"sql_mode": "STRICT_ALL_TABLES"})
            emit("reset_session", run(S.conn, A + "SELECT @prb2, @@sql_mode"))
        except Error as e:
            emit("reset_session", err(e))
        try:
            stats = S.conn.cmd_statistics()
            emit("statistics", sorted(stats.keys()))
        except Error as e:
            emit("statistics", err(e))
        S.conn.set_charset_collation("latin1")
        emit("charset.latin1", run(S.conn, A + "SELECT 'é', @@character_set_client"))
        S.conn.set_charset_collation("utf8mb4", "utf8mb4_general_ci")
        emit("charset.utf8mb4", run(S.conn, A + "SELECT 'é', @@collation_connection"))
        try:
            info = S.conn.cmd_change_user(username=USER, password=PASSWORD, database=DB)
            emit("change_user", {"ok": True})
            emit("change_user.after", run(S.conn, A + "SELECT DATABASE()"))
        except Error as e:
            emit("change_user", err(e))
        except Exception as e:  # noqa: BLE001
            emit("change_user", {"driver": type(e).__name__, "msg": str(e)})
        try:
            S.conn.ping(reconnect=False)
            emit("ping.after.change_user", "ok")
        except Exception as e:  # noqa: BLE001
            emit("ping.after.change_user", {"driver": type(e).__name__})

    # Large values (over 16 MiB) both ways, when the server allows them.
    big_ok = run(S.conn, A + "SELECT @@max_allowed_packet >= 64 * 1024 * 1024")
    emit("big.allowed", big_ok)
    conn2 = connect()
    emit("big.create", run(conn2, A + "CREATE TABLE prb_big (id INT PRIMARY KEY, v LONGBLOB)"))
    allowed = big_ok.get("sets", [{}])[0].get("rows") == [[["int", 1]]]
    if allowed:
        big = bytes(range(256)) * (17 * 4096 + 3)
        fmt = "?" if MODE != "pymysql" else "%s"
        emit("big.insert.text", run(conn2, A + f"INSERT INTO prb_big VALUES (1, {'%s'})", (big,)))
        emit("big.select.text", run(conn2, A + "SELECT id, v, LENGTH(v) FROM prb_big"))
        if MODE != "pymysql":
            emit("big.insert.prepared", run(conn2, A + f"INSERT INTO prb_big VALUES (2, {fmt})",
                                            (io.BytesIO(big) if MODE == "pure" else big,), prepared=True))
            emit("big.select.prepared", run(conn2, A + "SELECT id, LENGTH(v), MD5(v) FROM prb_big WHERE id > ?",
                                            (0,), prepared=True))
        emit("big.repeat", run(conn2, A + "SELECT REPEAT('z', 17000000) AS z"))
    conn2.commit()
    conn2.close()

    # Cursors (COM_STMT_FETCH) and streaming.
    if MODE == "pymysql":
        cur = S.conn.cursor(pymysql.cursors.SSCursor)
        cur.execute(A + "SELECT id, vc FROM prb_types ORDER BY id")
        emit("sscursor", norm([cur.fetchone(), cur.fetchmany(2), cur.fetchall()]))
        cur.close()
        emit("sscursor.after", run(S.conn, A + "SELECT 1"))
    elif MODE == "pure":
        try:
            stmt = S.conn.cmd_stmt_prepare((A + "SELECT id, vc, de FROM prb_types ORDER BY id").encode())
            res = S.conn.cmd_stmt_execute(stmt["statement_id"], flags=1)
            got = []
            while True:
                rows, eof = S.conn.get_rows(binary=True, columns=stmt["columns"])
                got.extend(rows)
                if not S.conn.unread_result and not (eof or {}).get("status_flag", 0) & 64:
                    break
                if eof and eof.get("status_flag", 0) & 128:  # SERVER_STATUS_LAST_ROW_SENT
                    break
                S.conn.cmd_stmt_fetch(stmt["statement_id"], 1)
            emit("cursor.fetch", {"rows": norm(got), "eof": norm(eof)})
            S.conn.cmd_stmt_close(stmt["statement_id"])
        except Exception as e:  # noqa: BLE001
            emit("cursor.fetch", {"driver": type(e).__name__, "msg": str(e)})
        emit("cursor.after", run(S.conn, A + "SELECT 1"))

    # Compression, when the driver offers it.
    if MODE != "pymysql":
        try:
            c = connect(compress=True)
            emit("compress", run(c, A + "SELECT REPEAT('c', 100000) AS c, 1"))
            c.close()
        except Error as e:
            emit("compress", err(e))
        except Exception as e:  # noqa: BLE001
            emit("compress", {"driver": type(e).__name__, "msg": str(e)})

    # Pooling: reset between uses.
    if MODE != "pymysql":
        try:
            from mysql.connector import pooling
            pool = pooling.MySQLConnectionPool(pool_name=f"prb{MODE}", pool_size=1, host=HOST, port=PORT,
                                               user=USER, password=PASSWORD, database=DB,
                                               use_pure=(MODE == "pure"), ssl_disabled=True)
            p = pool.get_connection()
            emit("pool.first", run(p, A + "SET @pooled = 1"))
            p.close()
            p = pool.get_connection()
            emit("pool.second", run(p, A + "SELECT @pooled"))
            p.close()
        except Error as e:
            emit("pool", err(e))

    emit("cleanup", run(S.conn, A + "DROP TABLE IF EXISTS prb_types, prb_items, prb_big"))
    emit("cleanup.proc", run(S.conn, A + "DROP PROCEDURE IF EXISTS prb_proc"))
    S.conn.close()
    emit("end", "ok")


main()
