#!/usr/bin/env python3
"""Load and failure behaviour of one gateway, measured (issue: running it in
production). Four scenarios, each printed as a Markdown section:

  sessions   1,000 agent sessions at once through one gateway whose upstream
             pool is smaller (they queue for a connection), and the memory
             an idle session costs.
  restart    the upstream PostgreSQL restarted while agents work: what they
             are told during the outage, and how soon new sessions succeed.
  disk       the audit log's disk fills while agents write: statements are
             refused, and every statement that ran is in the log.
  reload     SIGHUP policy reloads (valid and invalid) while agents work.

    benches/load.py [scenario ...]          (default: all four)

Needs: root (the restart scenario runs a PostgreSQL of its own with
initdb/pg_ctl as the postgres user; the disk scenario mounts a small tmpfs
in a private mount namespace), PostgreSQL at 127.0.0.1:5432 with trust auth,
asyncpg, and the release binary (built if missing).
"""

import asyncio
import glob
import json
import os
import signal
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import asyncpg

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.environ.get("AIRLOCK_BIN", os.path.join(ROOT, "target/release/airlock"))
PASSWORD = "load-secret"
ALLOW_ALL = '[[rule]]\nname = "allow-all"\nclasses = ["read", "write", "session", "ddl", "unknown"]\naction = "allow"\n'


def psql(sql, db="test", port=5432):
    out = subprocess.run(
        ["psql", "-X", "-A", "-t", "-q", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
         "-d", db, "-c", sql],
        capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"psql {sql}: {out.stderr}")
    return out.stdout.strip()


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Gateway:
    """One `airlock serve` with its own state directory."""

    def __init__(self, upstream, extra="", policy=ALLOW_ALL, wrap=None, audit_dir=None, sections=""):
        self.dir = tempfile.mkdtemp(prefix="airlock-load-")
        os.makedirs(f"{self.dir}/policies")
        self.policy_file = f"{self.dir}/policies/00-load.toml"
        with open(self.policy_file, "w") as f:
            f.write(policy)
        audit = f'[audit]\ndir = "{audit_dir}"\n' if audit_dir else ""
        self.config = f"{self.dir}/airlock.toml"
        with open(self.config, "w") as f:
            f.write(
                f'state_dir = "{self.dir}/var"\npolicies = "{self.dir}/policies"\n'
                f'[postgres]\nlisten = "127.0.0.1:0"\nupstream = "{upstream}"\n{extra}\n'
                f'[inbox]\nlisten = "127.0.0.1:0"\n[mysql]\nlisten = "127.0.0.1:0"\n'
                f'[log]\nlevel = "warn"\n{audit}{sections}'
                f'[[identity]]\nname = "agent"\nrole = "agent"\npassword = "{PASSWORD}"\n')
        command = [BINARY, "serve", "--config", self.config]
        if wrap:
            command = wrap(command)
        self.stdout = open(f"{self.dir}/stdout", "w+")
        self.stderr = open(f"{self.dir}/stderr", "w+")
        self.proc = subprocess.Popen(command, stdout=self.stdout, stderr=self.stderr)
        self.port = None
        deadline = time.time() + 20
        while time.time() < deadline and self.port is None:
            time.sleep(0.1)
            with open(f"{self.dir}/stdout") as f:
                for line in f:
                    if line.startswith("postgres listening on 127.0.0.1:"):
                        self.port = int(line.split(":")[1].split()[0])
        if self.port is None:
            raise RuntimeError("airlock did not start: " + open(f"{self.dir}/stderr").read())
        self.pid = self.airlock_pid()

    def airlock_pid(self):
        """The gateway's own pid (under a wrapper, its descendant)."""
        if os.path.basename(os.readlink(f"/proc/{self.proc.pid}/exe")) == "airlock":
            return self.proc.pid
        out = subprocess.run(["pgrep", "-f", f"serve --config {self.config}"],
                             capture_output=True, text=True).stdout.split()
        for pid in out:
            if os.path.basename(os.readlink(f"/proc/{pid}/exe")) == "airlock":
                return int(pid)
        return self.proc.pid

    async def connect(self, db, timeout=60):
        return await asyncpg.connect(host="127.0.0.1", port=self.port, user="agent",
                                     password=PASSWORD, database=db, timeout=timeout,
                                     statement_cache_size=0)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def error_name(e):
    code = getattr(e, "sqlstate", None)
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    return f"{code} {text[:90]}" if code else f"{type(e).__name__}: {text[:90]}"


def tally(errors):
    counts = {}
    for e in errors:
        counts[e] = counts.get(e, 0) + 1
    return "; ".join(f"{n}× {e}" for e, n in sorted(counts.items(), key=lambda x: -x[1])) or "none"


def pct(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


# ---- sessions ---------------------------------------------------------------

async def sessions(db):
    pool = 60
    # All agents come from one address here; in production they come from
    # many, each under the per-address share of connections not yet
    # logged in (64 by default).
    gw = Gateway(f"postgresql://postgres@127.0.0.1:5432/{db}",
                 f"pool_size = {pool}\nacquire_timeout_secs = 120",
                 sections="[limits]\npreauth_per_address = 2000\npreauth_total = 2000\n")
    try:
        # The idle cost: sessions that logged in and wait (each holds its
        # upstream connection, as a session does for its whole life).
        base = rss_kb(gw.pid)
        idle = [await gw.connect(db) for _ in range(50)]
        for c in idle:
            await c.fetchval("SELECT 1")
        await asyncio.sleep(1)
        with_idle = rss_kb(gw.pid)
        for c in idle:
            await c.close()
        await asyncio.sleep(1)

        n = 1000
        connect_ms, errors, done = [], [], 0
        peak = [rss_kb(gw.pid)]

        async def agent(i):
            nonlocal done
            t0 = time.perf_counter()
            try:
                c = await gw.connect(db, timeout=180)
                connect_ms.append((time.perf_counter() - t0) * 1e3)
                for _ in range(5):
                    await c.fetchval("SELECT count(*) FROM t WHERE n < $1", i)
                await asyncio.sleep(0.05)
                await c.close()
                done += 1
            except Exception as e:  # noqa: BLE001 - every failure is reported
                errors.append(error_name(e))

        async def watch():
            while True:
                peak.append(rss_kb(gw.pid))
                await asyncio.sleep(0.2)

        watcher = asyncio.create_task(watch())
        t0 = time.perf_counter()
        await asyncio.gather(*(agent(i) for i in range(n)))
        wall = time.perf_counter() - t0
        watcher.cancel()
        alive = gw.proc.poll() is None
        print("### 1,000 sessions at once\n")
        print(f"{n} asyncpg sessions started together against one gateway whose pool holds "
              f"{pool} upstream connections (`acquire_timeout_secs = 120`; all from one address, so "
              "`[limits] preauth_per_address` is raised to 2,000); each logs in, runs 5 "
              "statements and leaves.\n")
        print("| measure | value |\n|---|---|")
        print(f"| sessions completed | {done} of {n} |")
        print(f"| errors | {tally(errors)} |")
        print(f"| wall time | {wall:.1f} s ({done / wall:.0f} sessions/s) |")
        print(f"| login wait p50 / p99 / max | {pct(connect_ms, .5):.0f} / {pct(connect_ms, .99):.0f} / "
              f"{max(connect_ms or [0]):.0f} ms |")
        print(f"| gateway RSS before / peak | {base / 1024:.1f} / {max(peak) / 1024:.1f} MiB |")
        print(f"| memory per idle logged-in session | {(with_idle - base) / 50:.0f} KiB (50 sessions: "
              f"{base / 1024:.1f} → {with_idle / 1024:.1f} MiB) |")
        print(f"| gateway still serving | {'yes' if alive else 'NO'} |\n")
        return done == n and alive
    finally:
        gw.stop()


# ---- upstream restart -------------------------------------------------------

def private_postgres():
    """A PostgreSQL of this run's own (restarting the shared one would hurt
    everyone else on the machine)."""
    bindir = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1]
    data = tempfile.mkdtemp(prefix="airlock-load-pg-")
    shutil.chown(data, "postgres", "postgres")
    port = 55000 + os.getpid() % 5000

    def as_postgres(*args):
        subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True,
                       capture_output=True)

    as_postgres(f"{bindir}/initdb", "-D", data, "-A", "trust", "-U", "postgres")
    options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c max_connections=60"
    as_postgres(f"{bindir}/pg_ctl", "-D", data, "-o", options, "-l", f"{data}/log", "-w", "start")
    return bindir, data, port, options, as_postgres


async def restart():
    bindir, data, port, options, as_postgres = private_postgres()
    psql("CREATE TABLE t (n int); INSERT INTO t SELECT generate_series(1, 1000)", "postgres", port)
    gw = Gateway(f"postgresql://postgres@127.0.0.1:{port}/postgres",
                 "pool_size = 20\nacquire_timeout_secs = 5\nconnect_timeout_secs = 2")
    try:
        stop_at = 3.0
        down_for = 2.0
        end_at = 12.0
        events = []  # (t, ok, error)
        start = time.perf_counter()

        async def worker(long_lived):
            conn = None
            while time.perf_counter() - start < end_at:
                t = time.perf_counter() - start
                try:
                    if conn is None or conn.is_closed():
                        conn = await gw.connect("postgres", timeout=10)
                    await conn.fetchval("SELECT count(*) FROM t")
                    events.append((t, True, None))
                    if not long_lived:
                        await conn.close()
                        conn = None
                except Exception as e:  # noqa: BLE001
                    events.append((t, False, error_name(e)))
                    if conn is not None:
                        conn.terminate()
                    conn = None
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.01)
            if conn is not None:
                await conn.close()

        async def outage():
            await asyncio.sleep(stop_at)
            down = time.perf_counter() - start
            await asyncio.to_thread(as_postgres, f"{bindir}/pg_ctl", "-D", data, "-m", "fast", "-w", "stop")
            await asyncio.sleep(down_for)
            await asyncio.to_thread(as_postgres, f"{bindir}/pg_ctl", "-D", data, "-o", options,
                                    "-l", f"{data}/log", "-w", "start")
            return down, time.perf_counter() - start

        out = await asyncio.gather(outage(), *(worker(i % 2 == 0) for i in range(10)))
        down, up = out[0]
        during = [e for e in events if down <= e[0] < up]
        after_ok = [e for e in events if e[0] >= up and e[1]]
        first_ok = min((e[0] for e in after_ok), default=float("nan"))
        after_errors = [e[2] for e in events if e[0] >= up and not e[1]]
        alive = gw.proc.poll() is None
        print("### Upstream restart under load\n")
        print("10 agents (5 keep their session, 5 reconnect for each statement) query through "
              f"the gateway; its upstream, a PostgreSQL of this run's own, is told to stop (`-m fast`) at "
              f"{down:.1f} s and is started again at {up:.1f} s.\n")
        print("| measure | value |\n|---|---|")
        print(f"| statements before the stop | {sum(1 for e in events if e[0] < down and e[1])} ok; "
              f"failures: {tally([e[2] for e in events if e[0] < down and not e[1]])} |")
        print(f"| what agents were told from the stop to the start | {tally([e[2] for e in during if not e[1]])} |")
        print(f"| first success after the start | {first_ok - up:.2f} s after it |")
        print(f"| statements after the start | {len(after_ok)} ok; failures: {tally(after_errors)} |")
        print(f"| gateway still serving | {'yes' if alive else 'NO'} |\n")
        return alive and len(after_ok) > 0
    finally:
        gw.stop()
        subprocess.run(["runuser", "-u", "postgres", "--", f"{bindir}/pg_ctl", "-D", data, "-m",
                        "immediate", "stop"], capture_output=True)
        shutil.rmtree(data, ignore_errors=True)


# ---- audit disk full --------------------------------------------------------

def audit_records(directory):
    records = []
    for path in sorted(glob.glob(f"{directory}/*.jsonl")):
        with open(path, errors="replace") as f:
            for line in f:
                try:
                    records.append(json.loads(line))
                except ValueError:
                    pass
    return records


async def disk(db):
    psql("CREATE TABLE w (worker int, n int)", db)
    mount = tempfile.mkdtemp(prefix="airlock-load-disk-")

    def wrap(command):
        script = f"mount -t tmpfs -o size=16m airlock-load {mount} && exec {' '.join(command)}"
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]

    gw = Gateway(f"postgresql://postgres@127.0.0.1:5432/{db}", wrap=wrap, audit_dir=f"{mount}/audit")
    inside = f"/proc/{gw.pid}/root{mount}"
    try:
        ran, refused, other = [], [], []
        start = time.perf_counter()
        full_at, freed_at = 2.0, 6.0
        end_at = 9.0

        async def worker(k):
            conn = await gw.connect(db)
            n = 0
            while time.perf_counter() - start < end_at:
                n += 1
                try:
                    await conn.execute(f"INSERT INTO w VALUES ({k}, {n})")
                    ran.append((k, n, time.perf_counter() - start))
                except asyncpg.PostgresError as e:
                    (refused if e.sqlstate == "53100" else other).append(error_name(e))
                except Exception as e:  # noqa: BLE001
                    other.append(error_name(e))
                    conn = await gw.connect(db)
                await asyncio.sleep(0.005)
            await conn.close()

        async def fill_and_free():
            await asyncio.sleep(full_at)
            filler = f"{inside}/filler"
            try:
                with open(filler, "wb") as f:
                    while True:
                        f.write(b"\0" * 4096)
                        f.flush()
            except OSError:
                pass
            await asyncio.sleep(freed_at - full_at)
            os.remove(filler)

        await asyncio.gather(fill_and_free(), *(worker(k) for k in range(8)))
        await asyncio.sleep(1)
        in_table = int(psql("SELECT count(*) FROM w", db))
        logged = {r.get("sql") for r in audit_records(f"{inside}/audit") if r.get("kind") == "statement"}
        missing = [x for x in ran if f"INSERT INTO w VALUES ({x[0]}, {x[1]})" not in logged]
        after = sum(1 for x in ran if x[2] >= freed_at)
        verify = subprocess.run([BINARY, "audit", "verify", "--config", gw.config, "--dir", f"{inside}/audit"],
                                capture_output=True, text=True)
        alive = gw.proc.poll() is None
        print("### The audit disk fills under load\n")
        print("8 agents insert rows as fast as they can; the gateway's audit log is on a 16 MiB "
              f"tmpfs of its own, filled at {full_at:.0f} s and freed at {freed_at:.0f} s.\n")
        print("| measure | value |\n|---|---|")
        print(f"| statements that ran (agent saw success) | {len(ran)} |")
        print(f"| rows in the table | {in_table} |")
        print(f"| statements refused with 53100 | {len(refused)} |")
        print(f"| statements that ran after the space returned | {after} |")
        print(f"| other errors | {tally(other)} |")
        print(f"| statements that ran but are missing from the audit log | {len(missing)} |")
        print(f"| `audit verify` | exit {verify.returncode}: {(verify.stdout + verify.stderr).strip().splitlines()[-1] if (verify.stdout + verify.stderr).strip() else ''} |")
        print(f"| gateway still serving | {'yes' if alive else 'NO'} |\n")
        return alive and not missing and in_table == len(ran) and refused and after > 0
    finally:
        gw.stop()
        shutil.rmtree(mount, ignore_errors=True)


# ---- SIGHUP reload ----------------------------------------------------------

async def reload(db):
    gw = Gateway(f"postgresql://postgres@127.0.0.1:5432/{db}", "pool_size = 16")
    try:
        latencies = {"steady": [], "reloading": []}
        errors = []
        phase = ["steady"]
        start = time.perf_counter()
        end_at = 10.0

        async def worker():
            conn = await gw.connect(db)
            while time.perf_counter() - start < end_at:
                t0 = time.perf_counter()
                try:
                    await conn.fetchval("SELECT count(*) FROM t")
                    latencies[phase[0]].append((time.perf_counter() - t0) * 1e3)
                except Exception as e:  # noqa: BLE001
                    errors.append(error_name(e))
            await conn.close()

        reloads = {"valid": 0, "invalid": 0}
        # After each broken reload, the policy before it (which denies
        # privilege changes) must still be the one in force.
        kept = {"denied": 0, "ran": 0}
        probe = await gw.connect(db)

        async def hup():
            await asyncio.sleep(3)
            phase[0] = "reloading"
            for i in range(40):
                bad = i % 4 == 3
                with open(gw.policy_file, "w") as f:
                    f.write("[[rule]]\nname = broken" if bad else
                            f'[[rule]]\nname = "deny-privilege-{i}"\nclasses = ["privilege"]\naction = "deny"\nreason = "r"\n' + ALLOW_ALL)
                os.kill(gw.pid, signal.SIGHUP)
                reloads["invalid" if bad else "valid"] += 1
                await asyncio.sleep(0.1)
                if bad:
                    try:
                        await probe.execute("GRANT SELECT ON t TO PUBLIC")
                        kept["ran"] += 1
                    except asyncpg.PostgresError:
                        kept["denied"] += 1
            with open(gw.policy_file, "w") as f:
                f.write(ALLOW_ALL)
            os.kill(gw.pid, signal.SIGHUP)
            await asyncio.sleep(0.5)
            phase[0] = "steady"

        await asyncio.gather(hup(), *(worker() for _ in range(8)))
        await probe.close()
        stderr = open(f"{gw.dir}/stderr").read()
        alive = gw.proc.poll() is None
        print("### SIGHUP policy reloads under load\n")
        print(f"8 agents query continuously; {reloads['valid']} reloads of a valid policy and "
              f"{reloads['invalid']} of a broken one are sent 0.1 s apart.\n")
        print("| measure | value |\n|---|---|")
        for name, values in latencies.items():
            print(f"| statements {name} | {len(values)}, p50 {pct(values, .5):.2f} ms, "
                  f"p99 {pct(values, .99):.2f} ms |")
        print(f"| errors seen by agents | {tally(errors)} |")
        print(f"| after a broken reload, the policy before it still in force | {kept['denied']} of "
              f"{reloads['invalid']} probes denied as it says ({kept['ran']} ran); "
              f"{stderr.count('reload')} log lines about reloads |")
        print(f"| gateway still serving | {'yes' if alive else 'NO'} |\n")
        return alive and not errors and kept["ran"] == 0
    finally:
        gw.stop()


async def main(which):
    if not os.path.exists(BINARY):
        subprocess.run(["cargo", "build", "--release", "--quiet", "--manifest-path",
                        f"{ROOT}/Cargo.toml"], check=True)
    db = f"airlock_load_{os.getpid()}"
    psql(f"CREATE DATABASE {db}")
    psql("CREATE TABLE t (n int); INSERT INTO t SELECT generate_series(1, 10000)", db)
    print(f"benches/load.py, {os.cpu_count()} cores, {time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime())}\n")
    results = {}
    try:
        for name in which:
            if name == "sessions":
                results[name] = await sessions(db)
            elif name == "restart":
                results[name] = await restart()
            elif name == "disk":
                results[name] = await disk(db)
            elif name == "reload":
                results[name] = await reload(db)
            else:
                raise SystemExit(f"unknown scenario {name}")
    finally:
        psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    failed = [n for n, ok in results.items() if not ok]
    print("all scenarios behaved" if not failed else f"misbehaved: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:] or ["sessions", "restart", "disk", "reload"])))
