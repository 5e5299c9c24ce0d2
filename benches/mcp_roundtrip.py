#!/usr/bin/env python3
"""MCP `query` round trip for a point select, against the same statement
through Airlock's PostgreSQL wire listener and directly, in one run
(alternating rounds, medians).

    benches/mcp_roundtrip.py [calls-per-round] [rounds]        (defaults: 500, 3)

Needs: PostgreSQL at 127.0.0.1:5432 with trust auth, asyncpg, the `mcp`
Python SDK, and the release binary (built if missing).
"""

import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import asyncpg
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.environ.get("AIRLOCK_BIN", os.path.join(ROOT, "target/release/airlock"))
PASSWORD = "bench-secret"
ALLOW_ALL = '[[rule]]\nname = "allow-all"\nclasses = ["read", "write", "session"]\naction = "allow"\n'


def psql(sql, db="test"):
    subprocess.run(["psql", "-X", "-q", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-c", sql],
                   check=True, capture_output=True)


def new_token():
    """A fresh MCP token and its hash, as `airlock identity token --mcp` makes them."""
    out = subprocess.run([BINARY, "identity", "token", "--mcp"], capture_output=True, text=True,
                         check=True).stdout
    token = next(l.split(": ", 1)[1] for l in out.splitlines() if l.startswith("token: "))
    digest = next(l.split('"')[1] for l in out.splitlines() if l.startswith("mcp_token_hash"))
    return token.strip(), digest


def start(db, work, digest):
    os.makedirs(f"{work}/policies")
    with open(f"{work}/policies/00.toml", "w") as f:
        f.write(ALLOW_ALL)
    with open(f"{work}/airlock.toml", "w") as f:
        f.write(
            f'state_dir = "{work}/var"\npolicies = "{work}/policies"\n'
            f'[postgres]\nlisten = "127.0.0.1:0"\nupstream = "postgresql://postgres@127.0.0.1:5432/{db}"\n'
            f'[inbox]\nlisten = "127.0.0.1:0"\n[mysql]\nlisten = "127.0.0.1:0"\n'
            f'[mcp]\nlisten = "127.0.0.1:0"\n[log]\nlevel = "warn"\n'
            f'[[identity]]\nname = "bench"\nrole = "agent"\npassword = "{PASSWORD}"\n'
            f'mcp_token_hash = "{digest}"\n')
    out = open(f"{work}/stdout", "w+")
    proc = subprocess.Popen([BINARY, "serve", "--config", f"{work}/airlock.toml"], stdout=out,
                            stderr=open(f"{work}/stderr", "w"))
    wire = mcp = None
    deadline = time.time() + 20
    while time.time() < deadline and (wire is None or mcp is None):
        time.sleep(0.1)
        for line in open(f"{work}/stdout"):
            if line.startswith("postgres listening on 127.0.0.1:"):
                wire = int(line.split(":")[1].split()[0])
            if line.startswith("mcp listening on") and "http://" in line:
                mcp = line[line.index("http://"):].split()[0].rstrip(",;)")
    if wire is None or mcp is None:
        raise SystemExit("airlock did not start: " + open(f"{work}/stderr").read()
                         + open(f"{work}/stdout").read())
    return proc, wire, mcp


async def timed_pg(port, user, password, db, n):
    conn = await asyncpg.connect(host="127.0.0.1", port=port, user=user, password=password,
                                 database=db)
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        await conn.fetchrow("SELECT id, name FROM items WHERE id = $1", i % 1000 + 1)
        times.append(time.perf_counter() - t0)
    await conn.close()
    return times


async def timed_mcp(url, token, db, n):
    client = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    times = []
    async with client:
        async with streamable_http_client(url, http_client=client) as (read, write, *_):
            async with ClientSession(read, write) as session:
                await session.initialize()
                for i in range(n):
                    sql = f"SELECT id, name FROM items WHERE id = {i % 1000 + 1}"
                    t0 = time.perf_counter()
                    result = await session.call_tool("query", {"sql": sql, "database": db})
                    times.append(time.perf_counter() - t0)
                    if result.is_error:
                        raise SystemExit(f"query failed: {result}")
    return times


async def main(n, rounds):
    if not os.path.exists(BINARY):
        subprocess.run(["cargo", "build", "--release", "--quiet", "--manifest-path",
                        f"{ROOT}/Cargo.toml"], check=True)
    db = f"airlock_mcp_bench_{os.getpid()}"
    psql(f"CREATE DATABASE {db}")
    work = tempfile.mkdtemp(prefix="airlock-mcp-bench-")
    proc = None
    try:
        psql("CREATE TABLE items (id int PRIMARY KEY, name text); "
             "INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 1000) g", db)
        token, digest = new_token()
        proc, wire, url = start(db, work, digest)
        results = {"direct": [], "wire": [], "mcp": []}
        for _ in range(rounds):
            results["direct"].append(await timed_pg(5432, "postgres", "", db, n))
            results["wire"].append(await timed_pg(wire, "bench", PASSWORD, db, n))
            results["mcp"].append(await timed_mcp(url, token, db, n))
        print(f"benches/mcp_roundtrip.py: point select, {n} calls per round, median of {rounds} rounds, "
              f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime())}\n")
        print("| path | median round trip | p99 | calls/s (one client) |\n|---|---|---|---|")
        for name, label in [("direct", "PostgreSQL directly (asyncpg)"),
                            ("wire", "through Airlock's wire listener (asyncpg)"),
                            ("mcp", "Airlock MCP `query` (Python SDK, Streamable HTTP)")]:
            medians = [statistics.median(r) for r in results[name]]
            p99s = [sorted(r)[int(len(r) * .99)] for r in results[name]]
            m = statistics.median(medians)
            print(f"| {label} | {m * 1e3:.3f} ms | {statistics.median(p99s) * 1e3:.3f} ms | {1 / m:.0f} |")
    finally:
        if proc:
            proc.terminate()
            proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)
        psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 500,
                     int(sys.argv[2]) if len(sys.argv) > 2 else 3))
