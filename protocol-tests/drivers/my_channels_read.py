#!/usr/bin/env python3
"""Runs statements through a MySQL driver and writes everything the client
decoded, for protocol-tests/mysql_channels.rs to look for values that should
have been masked.

    python3 my_channels_read.py DRIVER OUT

DRIVER is one of:

* `pymysql`: text protocol. It asks for CLIENT_SESSION_TRACK (PyMySQL can;
  it keeps the bytes after an OK packet's fixed fields, info and session
  state, as the result's `message`), so what a server tracks reaches it if
  the capability is negotiated.
* `connector`: mysql-connector-python, text protocol.
* `connector-prepared`: mysql-connector-python, `cursor(prepared=True)`:
  COM_STMT_PREPARE / COM_STMT_EXECUTE, binary rows.

AIRLOCK_SQL is a JSON list of statements run in order on one connection;
each gives one JSON line in OUT: {"sql": s, "rows": [[repr(value), ...]],
"columns": [name, ...],
"message": "<hex of the OK packet's trailing bytes>" (pymysql)} or
{"sql": s, "error": "..."}. The first line is {"capabilities": n}, the
capability flags the session ended up with (pymysql).

Connection settings come from MYSQL_HOST, MYSQL_PORT, MYSQL_USER,
MYSQL_PASSWORD, MYSQL_DATABASE. Gives up after 120 s.
"""

import json
import os
import signal
import sys


def statements():
    return json.loads(os.environ["AIRLOCK_SQL"])


def settings():
    return dict(
        host=os.environ["MYSQL_HOST"],
        port=int(os.environ["MYSQL_PORT"]),
        user=os.environ["MYSQL_USER"],
        password=os.environ["MYSQL_PASSWORD"],
        database=os.environ["MYSQL_DATABASE"],
    )


def run_pymysql(out):
    import pymysql
    from pymysql.constants import CLIENT

    conn = pymysql.connect(
        **settings(), ssl_disabled=True, autocommit=True, client_flag=CLIENT.SESSION_TRACK
    )
    out.append({"capabilities": conn.server_capabilities & conn.client_flag})
    try:
        for sql in statements():
            try:
                with conn.cursor() as cur:
                    cur.execute(sql)
                    rows = cur.fetchall()
                    names = [d[0] for d in cur.description or []]
                    message = getattr(cur._result, "message", b"") or b""
            except Exception as e:  # noqa: BLE001 - the error is the finding
                out.append({"sql": sql, "error": f"{type(e).__name__}: {e}"})
                continue
            out.append(
                {
                    "sql": sql,
                    "rows": [[repr(v) for v in row] for row in rows or []],
                    "columns": names,
                    "message": bytes(message).hex(),
                }
            )
    finally:
        conn.close()


def run_connector(prepared, out):
    import mysql.connector

    conn = mysql.connector.connect(**settings(), ssl_disabled=True, autocommit=True)
    try:
        for sql in statements():
            try:
                cur = conn.cursor(prepared=prepared)
                cur.execute(sql)
                rows = cur.fetchall() if cur.with_rows else []
                names = [d[0] for d in cur.description or []]
                cur.close()
            except Exception as e:  # noqa: BLE001 - the error is the finding
                out.append({"sql": sql, "error": f"{type(e).__name__}: {e}"})
                continue
            out.append(
                {"sql": sql, "rows": [[repr(v) for v in row] for row in rows], "columns": names}
            )
    finally:
        conn.close()


def main():
    driver, path = sys.argv[1:3]
    signal.alarm(120)
    out = []
    if driver == "pymysql":
        run_pymysql(out)
    elif driver == "connector":
        run_connector(False, out)
    elif driver == "connector-prepared":
        run_connector(True, out)
    else:
        raise SystemExit(f"unknown driver {driver}")
    with open(path, "w", encoding="utf-8") as f:
        for line in out:
            f.write(json.dumps(line, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
