#!/usr/bin/env python3
"""A statement refused inside a transaction, seen by PyMySQL: prints one
JSON line per round with the refused statement's error code, whether the
session is still in its transaction afterwards, and what a second
connection sees after COMMIT / ROLLBACK. protocol-tests/mysql_driver_probes.rs
runs it directly (as a MariaDB user without the privilege) and through
Airlock's default policy, and compares.

Needs table `tx_items (v VARCHAR(20))` in MYSQL_DATABASE; connection
settings as the other sessions (MYSQL_HOST, MYSQL_PORT, MYSQL_USER,
MYSQL_PASSWORD, MYSQL_DATABASE).
"""

import json
import os
import pymysql


def connect():
    return pymysql.connect(host=os.environ["MYSQL_HOST"], port=int(os.environ["MYSQL_PORT"]),
                           user=os.environ["MYSQL_USER"], password=os.environ.get("MYSQL_PASSWORD", "").encode(),
                           database=os.environ["MYSQL_DATABASE"], autocommit=False, ssl_disabled=True)


def seen(value):
    other = connect()
    with other.cursor() as c:
        c.execute("SELECT COUNT(*) FROM tx_items WHERE v = %s", (value,))
        n = c.fetchone()[0]
    other.close()
    return n


def round_(name, refused_sql, end):
    conn = connect()
    out = {"round": name}
    with conn.cursor() as c:
        c.execute("BEGIN")
        c.execute("INSERT INTO tx_items (v) VALUES (%s)", (name,))
        try:
            c.execute(refused_sql)
            out["refused"] = None
        except pymysql.MySQLError as e:
            out["refused"] = e.args[0]
        out["in_transaction_flag"] = bool(conn.server_status & 1)
        c.execute("SELECT @@in_transaction")
        out["in_transaction"] = c.fetchone()[0]
        c.execute("SELECT COUNT(*) FROM tx_items WHERE v = %s", (name,))
        out["own_insert_visible"] = c.fetchone()[0]
        c.execute(end)
    out["after_" + end.lower()] = seen(name)
    conn.close()
    print(json.dumps(out, sort_keys=True), flush=True)


round_("export_commit", "SELECT 1 INTO OUTFILE '/tmp/airlock-tx-refusal-never-written'", "COMMIT")
round_("export_rollback", "SELECT 1 INTO OUTFILE '/tmp/airlock-tx-refusal-never-written'", "ROLLBACK")
round_("ddl_rollback", "DROP TABLE tx_items", "ROLLBACK")
print(json.dumps({"step": "end"}), flush=True)
