#!/usr/bin/env python3
"""Regenerates protocol-tests/corpus/drivers.toml: the statements mainstream
drivers send on their own, captured from the servers' own statement logs.

Runs every installed driver's session (sessions.py, sessions.js,
Sessions.java next to this file) directly against the local PostgreSQL
(a scratch database with log_statement = 'all') and MariaDB (the general
log), keeps every logged statement that the application did not write
itself (application statements start with `/*app*/`), and writes one
corpus case per distinct statement, naming the drivers that sent it.

Expected classes are the reviewer's: a statement already in drivers.toml
keeps the classes written there; a new one gets a guess from its leading
keyword and a `why` that says so, to be reviewed before committing.

Usage (from the repository root; needs the test dependencies of
protocol-tests/drivers/README.md, and read access to the servers' logs):

    python3 scripts/driver-corpus/capture.py [--node-path DIR]
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(ROOT, "protocol-tests", "corpus", "drivers.toml")
APP = "/*app*/"


def run(cmd, **kw):
    print("+", " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True, timeout=180, **kw)


def psql(sql, db="postgres"):
    return subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-Atqc", sql],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout.strip()


def mariadb(sql):
    return subprocess.run(
        ["mariadb", "-h127.0.0.1", "-uroot", "-N", "-e", sql],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout.strip()


def pg_log_file():
    out = subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True,
                         text=True, check=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) > 2 and parts[2] == "5432":
            return parts[-1]
    sys.exit("no PostgreSQL cluster on port 5432")


def pg_statements(log_text, db):
    """Statements logged for `db`: `statement: …` and `execute name: …`
    entries, with their continuation lines (which start with a tab)."""
    head = re.compile(r"^\S+ \S+ \S+ \[\d+\] \S*@(\S+) LOG:  (?:statement|execute [^:]*): (.*)$")
    out, current = [], None
    for line in log_text.splitlines():
        if current is not None and line.startswith("\t"):
            current.append(line[1:])
            continue
        if current is not None:
            out.append("\n".join(current))
            current = None
        m = head.match(line)
        if m and m.group(1) == db:
            current = [m.group(2)]
    if current is not None:
        out.append("\n".join(current))
    return out


def mariadb_statements(log_text, db):
    """Query/Prepare/Execute entries of the connections that logged in to
    `db` (the general log names the database only on Connect)."""
    entry = re.compile(r"^(?:\d{6} +[\d:]+)?\s+(\d+) (Connect|Query|Prepare|Execute|Init DB|Change user|Quit)\t?(.*)$")
    ours, out, current = set(), [], None
    for line in log_text.splitlines():
        m = entry.match(line)
        if not m:
            if current is not None:
                current.append(line)
            continue
        if current is not None:
            out.append("\n".join(current))
            current = None
        thread, kind, text = m.groups()
        if kind in ("Connect", "Change user") and f" on {db} " in text + " ":
            ours.add(thread)
        elif kind in ("Query", "Prepare", "Execute") and thread in ours:
            current = [text]
    if current is not None:
        out.append("\n".join(current))
    return out


def read_from(path, offset):
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read().decode("utf-8", "replace")


def driver_own(statements):
    """Drops the application's statements and statements naming the
    scratch database's test table only through the application."""
    keep = []
    for s in statements:
        s = s.strip()
        if not s or s.startswith(APP):
            continue
        keep.append(s)
    return keep


def guess(sql, dialect):
    word = re.match(r"\s*(?:/\*.*?\*/\s*)*(\w+)", sql, re.S)
    lead = word.group(1).upper() if word else ""
    if lead in ("SELECT", "WITH", "FETCH", "MOVE", "CLOSE", "DECLARE"):
        return ["read"]
    return ["session"]  # SET, SHOW, transaction control, LISTEN, …


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--node-path", default=os.environ.get("NODE_PATH", ""),
                    help="node_modules holding pg and mysql2")
    args = ap.parse_args()
    db = f"drvcorpus_{os.getpid()}"
    found = {}  # (dialect, sql) -> set of drivers

    def note(dialect, driver, statements):
        for s in driver_own(statements):
            # Scratch names differ run to run; the corpus keeps them fixed.
            s = s.replace(db, "drvcorpus")
            found.setdefault((dialect, s), set()).add(driver)

    java_classes = tempfile.mkdtemp()
    cp_pg = "/usr/share/java/postgresql.jar"
    cp_maria = "/usr/share/java/mariadb-java-client.jar"
    run(["javac", "-d", java_classes, "-cp", f"{cp_pg}:{cp_maria}",
         os.path.join(HERE, "Sessions.java")])
    node_env = dict(os.environ, NODE_PATH=args.node_path)

    # PostgreSQL.
    psql(f"CREATE DATABASE {db}")
    try:
        psql(f"ALTER DATABASE {db} SET log_statement = 'all'")
        log = pg_log_file()
        for driver, cmd, env in [
            ("psycopg", [sys.executable, os.path.join(HERE, "sessions.py"), "psycopg", db], None),
            ("asyncpg", [sys.executable, os.path.join(HERE, "sessions.py"), "asyncpg", db], None),
            ("node-postgres", ["node", os.path.join(HERE, "sessions.js"), "pg", db], node_env),
            ("pgJDBC", ["java", "-cp", f"{java_classes}:{cp_pg}", "Sessions", "pg", db], None),
        ]:
            start = os.path.getsize(log)
            run(cmd, env=env)
            note("postgres", driver, pg_statements(read_from(log, start), db))
    finally:
        psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")

    # MariaDB.
    was_on = mariadb("SELECT @@general_log") == "1"
    was_output = mariadb("SELECT @@log_output")
    mariadb(f"CREATE DATABASE {db}")
    try:
        if not was_on:
            mariadb("SET GLOBAL log_output = 'FILE'; SET GLOBAL general_log = ON")
        elif "FILE" not in was_output.upper():
            sys.exit("the general log is on but not to a file; leaving it alone")
        name = mariadb("SELECT @@general_log_file")
        log = name if name.startswith("/") else mariadb("SELECT @@datadir") + name
        for driver, cmd, env in [
            ("PyMySQL", [sys.executable, os.path.join(HERE, "sessions.py"), "pymysql", db], None),
            ("mysql-connector-python", [sys.executable, os.path.join(HERE, "sessions.py"), "mysql-connector", db], None),
            ("mysql2", ["node", os.path.join(HERE, "sessions.js"), "mysql2", db], node_env),
            ("MariaDB Connector/J", ["java", "-cp", f"{java_classes}:{cp_maria}", "Sessions", "mariadb", db], None),
        ]:
            start = os.path.getsize(log)
            run(cmd, env=env)
            note("mysql", driver, mariadb_statements(read_from(log, start), db))
    finally:
        if not was_on:
            mariadb("SET GLOBAL general_log = OFF")
        mariadb(f"DROP DATABASE IF EXISTS {db}")
        shutil.rmtree(java_classes, ignore_errors=True)

    # Keep the reviewed expectations of cases already in the corpus.
    reviewed = {}
    if os.path.exists(OUT):
        with open(OUT, "rb") as f:
            for case in tomllib.load(f).get("case", []):
                reviewed[(case["dialect"], case["sql"])] = case

    with open(OUT, "w") as f:
        f.write(HEADER)
        for (dialect, sql) in sorted(found, key=lambda k: (k[0], k[1].lower())):
            drivers = ", ".join(sorted(found[(dialect, sql)], key=str.lower))
            old = reviewed.get((dialect, sql))
            if old:
                classes = old["classes"]
                why = old["why"]
            else:
                classes = guess(sql, dialect)
                why = f"sent by {drivers} on its own (expectation guessed: review)"
            f.write("\n[[case]]\ncategory = \"benign\"\n")
            f.write(f"dialect = \"{dialect}\"\n")
            if "'''" in sql or "\r" in sql:
                f.write(f"sql = {toml_string(sql)}\n")
            else:
                f.write(f"sql = '''{sql}'''\n")
            f.write("classes = [" + ", ".join(f'"{c}"' for c in classes) + "]\n")
            f.write(f"why = {toml_string(why)}\n")
    print(f"wrote {len(found)} cases to {OUT}", file=sys.stderr)


def toml_string(s):
    out = s.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + out.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t") + '"'


HEADER = """\
# Statements mainstream drivers send on their own — session set-up and
# reset, transactions, savepoints, isolation levels, cursors, type
# introspection — captured from the servers' own statement logs by
# scripts/driver-corpus/capture.py (run it to refresh; it keeps the classes
# reviewed here). Same format as classification.toml; run by
# protocol-tests/sql_corpus.rs. None of these may be `unknown` or held by
# the default policy: a driver's own traffic must pass through the gateway.
"""

if __name__ == "__main__":
    main()
