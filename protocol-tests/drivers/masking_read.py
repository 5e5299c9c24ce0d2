#!/usr/bin/env python3
"""Reads result rows through a driver and writes what the client decoded, for
protocol-tests/pg_masking.rs to check against the values it stored.

    python3 masking_read.py DRIVER TASK OUT

DRIVER is `psycopg` (binary results) or `asyncpg` (binary by default). TASK:

* `select`: runs AIRLOCK_SQL once.
* `columns`: for each column in AIRLOCK_COLUMNS (comma-separated), runs
  `SELECT id, <column> FROM <AIRLOCK_TABLE> ORDER BY id` AIRLOCK_REPEAT times
  (default 1) as a prepared statement (psycopg `prepare=True`, an asyncpg
  prepared statement, which is only bound and executed after the first run).
  A column whose values the driver cannot decode gets an error line instead
  of rows, and the other columns are still read.
* `stream` (psycopg): streams AIRLOCK_SQL row by row without keeping rows and
  writes one summary: rows, and rows whose second column contains
  AIRLOCK_FORBIDDEN.

OUT gets JSON lines: first {"columns": [[name, type_oid], ...]}, then
{"run": k, "row": [value, ...]} per row; `columns` writes
{"column": c, "run": k, "row": [id, value]} or {"column": c, "error": "..."}.
Values are tagged so the checker sees what the driver decoded: strings and
numbers as JSON, {"json": v} for json/jsonb (decoded by the driver),
{"numeric": "..."}, {"bytes": "<hex>"}, {"inet": "..."}, lists for arrays.
Outside `columns`, a decoding error fails the script: a masked value that a
driver cannot decode is a bug.

Connection settings come from PGHOST, PGPORT, PGUSER, PGPASSWORD,
PGDATABASE. Gives up after 120 s.
"""

import asyncio
import ipaddress
import json
import os
import signal
import sys
from decimal import Decimal

JSON_OIDS = {114, 3802}
JSON_ARRAY_OIDS = {199, 3807}


def norm(value, json_value=False):
    if value is None:
        return None
    if json_value:
        return {"json": value}
    if isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Decimal):
        return {"numeric": str(value)}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"bytes": bytes(value).hex()}
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address, ipaddress.IPv4Network,
                          ipaddress.IPv6Network, ipaddress.IPv4Interface, ipaddress.IPv6Interface)):
        return {"inet": str(value)}
    if isinstance(value, (list, tuple)):
        return [norm(v) for v in value]
    if isinstance(value, dict):
        return {"json": value}
    return {"other": type(value).__name__, "text": str(value)}


def norm_row(row, oids):
    out = []
    for value, oid in zip(row, oids):
        if oid in JSON_ARRAY_OIDS and value is not None:
            out.append([norm(v, json_value=v is not None) for v in value])
        else:
            out.append(norm(value, json_value=oid in JSON_OIDS))
    return out


class Out:
    def __init__(self, path):
        self.f = open(path, "w", encoding="utf-8")

    def columns(self, columns):
        self.write({"columns": columns})

    def row(self, run, row, oids):
        self.write({"run": run, "row": norm_row(row, oids)})

    def write(self, obj):
        self.f.write(json.dumps(obj, ensure_ascii=False))
        self.f.write("\n")

    def close(self):
        self.f.close()


def column_sql(column):
    return f"SELECT id, {column} FROM {os.environ['AIRLOCK_TABLE']} ORDER BY id"


def column_list():
    return [c for c in os.environ["AIRLOCK_COLUMNS"].split(",") if c]


def repeat():
    return int(os.environ.get("AIRLOCK_REPEAT", "1"))


def psycopg_connect():
    import psycopg

    return psycopg.connect(
        host=os.environ["PGHOST"],
        port=os.environ["PGPORT"],
        user=os.environ["PGUSER"],
        password=os.environ["PGPASSWORD"],
        dbname=os.environ["PGDATABASE"],
        sslmode="disable",
        connect_timeout=10,
        autocommit=True,
    )


def psycopg_task(task, out):
    with psycopg_connect() as conn:
        if task == "select":
            with conn.cursor(binary=True) as cur:
                cur.execute(os.environ["AIRLOCK_SQL"])
                out.columns([[d.name, d.type_code] for d in cur.description])
                oids = [d.type_code for d in cur.description]
                for row in cur:
                    out.row(0, row, oids)
        elif task == "columns":
            for column in column_list():
                try:
                    lines = []
                    for run in range(repeat()):
                        cur = conn.execute(column_sql(column), prepare=True, binary=True)
                        oids = [d.type_code for d in cur.description]
                        lines += [(run, norm_row(row, oids)) for row in cur]
                except Exception as e:  # noqa: BLE001 - the error is the finding
                    out.write({"column": column, "error": f"{type(e).__name__}: {e}"})
                    continue
                for run, row in lines:
                    out.write({"column": column, "run": run, "row": row})
        elif task == "stream":
            forbidden = os.environ["AIRLOCK_FORBIDDEN"]
            rows = leaked = 0
            with conn.cursor(binary=True) as cur:
                # One result, consumed row by row: neither side may hold it whole.
                for row in cur.stream(os.environ["AIRLOCK_SQL"]):
                    rows += 1
                    if forbidden in row[1]:
                        leaked += 1
            out.write({"rows": rows, "leaked": leaked})
        else:
            raise SystemExit(f"unknown task {task}")


async def asyncpg_task(task, out):
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
        # JSON decoded by the driver, as applications usually configure it.
        for pg_type in ("json", "jsonb"):
            await conn.set_type_codec(pg_type, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
        if task == "select":
            stmt = await conn.prepare(os.environ["AIRLOCK_SQL"])
            oids = [a.type.oid for a in stmt.get_attributes()]
            out.columns([[a.name, a.type.oid] for a in stmt.get_attributes()])
            for row in await stmt.fetch():
                out.row(0, tuple(row), oids)
        elif task == "columns":
            for column in column_list():
                try:
                    stmt = await conn.prepare(column_sql(column))
                    oids = [a.type.oid for a in stmt.get_attributes()]
                    lines = []
                    for run in range(repeat()):
                        # After the first run the statement is only bound and executed.
                        lines += [(run, norm_row(tuple(row), oids)) for row in await stmt.fetch()]
                except Exception as e:  # noqa: BLE001 - the error is the finding
                    out.write({"column": column, "error": f"{type(e).__name__}: {e}"})
                    continue
                for run, row in lines:
                    out.write({"column": column, "run": run, "row": row})
        else:
            raise SystemExit(f"unknown task {task} for asyncpg")
    finally:
        await conn.close()


def main():
    driver, task, path = sys.argv[1:4]
    signal.alarm(120)
    out = Out(path)
    try:
        if driver == "psycopg":
            psycopg_task(task, out)
        elif driver == "asyncpg":
            asyncio.run(asyncpg_task(task, out))
        else:
            raise SystemExit(f"unknown driver {driver}")
    finally:
        out.close()


if __name__ == "__main__":
    main()
