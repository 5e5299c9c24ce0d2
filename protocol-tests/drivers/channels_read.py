#!/usr/bin/env python3
"""Runs statements through a driver and writes everything the client decoded
(values and the server's reported settings), for protocol-tests/pg_channels.rs
to look for values that should have been masked.

    python3 channels_read.py DRIVER OUT

DRIVER is `psycopg` (binary cursor), `psycopg-text` (text cursor) or
`asyncpg` (binary by default). AIRLOCK_SQL is a JSON list of statements, run
in order on one connection; each gives one JSON line in OUT:
{"sql": s, "rows": [[repr(value), ...], ...], "types": [python type names],
"settings": {name: value}} or {"sql": s, "error": "...", "raw": "<hex>"}
(raw: the bytes a decoder failed on, when the error has them). The settings are
those named in AIRLOCK_SETTINGS (comma-separated), as the driver keeps them
from ParameterStatus messages.

Connection settings come from PGHOST, PGPORT, PGUSER, PGPASSWORD,
PGDATABASE. Gives up after 120 s.
"""

import asyncio
import json
import os
import signal
import sys


def statements():
    return json.loads(os.environ["AIRLOCK_SQL"])


def setting_names():
    return [s for s in os.environ.get("AIRLOCK_SETTINGS", "").split(",") if s]


def error_line(sql, e):
    """An error, with the bytes a decoder choked on: a client that decodes a
    value with the wrong type still holds the value's bytes."""
    line = {"sql": sql, "error": f"{type(e).__name__}: {e}"}
    raw = getattr(e, "object", None)
    if isinstance(raw, (bytes, bytearray, memoryview)):
        line["raw"] = bytes(raw).hex()
    return line


def rows_line(sql, rows, settings):
    return {
        "sql": sql,
        "rows": [[repr(v) for v in row] for row in rows],
        "types": [[type(v).__name__ for v in row] for row in rows],
        "settings": settings,
    }


def run_psycopg(binary, out):
    import psycopg

    with psycopg.connect(
        host=os.environ["PGHOST"],
        port=os.environ["PGPORT"],
        user=os.environ["PGUSER"],
        password=os.environ["PGPASSWORD"],
        dbname=os.environ["PGDATABASE"],
        sslmode="disable",
        connect_timeout=10,
        autocommit=True,
    ) as conn:
        for sql in statements():
            try:
                with conn.cursor(binary=binary) as cur:
                    cur.execute(sql)
                    rows = cur.fetchall() if cur.description else []
            except Exception as e:  # noqa: BLE001 - the error is the finding
                out.append(error_line(sql, e))
                continue
            settings = {n: conn.info.parameter_status(n) for n in setting_names()}
            out.append(rows_line(sql, rows, settings))


async def run_asyncpg(out):
    import asyncpg

    conn = await asyncpg.connect(
        host=os.environ["PGHOST"],
        port=int(os.environ["PGPORT"]),
        user=os.environ["PGUSER"],
        password=os.environ["PGPASSWORD"],
        database=os.environ["PGDATABASE"],
        ssl=False,
        timeout=10,
    )
    try:
        for sql in statements():
            try:
                rows = [tuple(r) for r in await conn.fetch(sql)]
            except Exception as e:  # noqa: BLE001 - the error is the finding
                out.append(error_line(sql, e))
                continue
            settings = {n: getattr(conn.get_settings(), n, None) for n in setting_names()}
            out.append(rows_line(sql, rows, settings))
    finally:
        await conn.close()


def main():
    driver, path = sys.argv[1:3]
    signal.alarm(120)
    out = []
    if driver == "psycopg":
        run_psycopg(True, out)
    elif driver == "psycopg-text":
        run_psycopg(False, out)
    elif driver == "asyncpg":
        asyncio.run(run_asyncpg(out))
    else:
        raise SystemExit(f"unknown driver {driver}")
    with open(path, "w", encoding="utf-8") as f:
        for line in out:
            f.write(json.dumps(line, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
