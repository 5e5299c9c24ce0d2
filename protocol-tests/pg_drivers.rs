//! Real drivers running scripted sessions through Airlock: psql, pgbench,
//! psycopg 3, asyncpg, node-postgres and pgJDBC. Each script asserts the
//! values it gets back; a non-zero exit fails the test with its output.

mod support;

use std::path::Path;
use std::process::Command;
use support::gateway::{
    default_policy, psql_direct, Gateway, Options, TestDb, AGENT, AGENT_PASSWORD,
};

fn run_driver(label: &str, program: &str, args: &[&str], extra_env: &[(&str, &str)]) {
    let db = TestDb::create(label);
    run_driver_in(&db, Gateway::start(), program, args, extra_env);
}

fn run_driver_in(
    db: &TestDb,
    gateway: Gateway,
    program: &str,
    args: &[&str],
    extra_env: &[(&str, &str)],
) {
    let label = &db.name;
    let drivers = Path::new(env!("CARGO_MANIFEST_DIR")).join("protocol-tests/drivers");
    let (host, port) = gateway.addr.rsplit_once(':').unwrap();
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(&drivers)
        .env("PGHOST", host)
        .env("PGPORT", port)
        .env("PGUSER", AGENT)
        .env("PGPASSWORD", AGENT_PASSWORD)
        .env("PGDATABASE", &db.name)
        // libpq must not pick a TLS or service setup up from the environment.
        .env("PGSSLMODE", "disable")
        .env_remove("PGSERVICE");
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e} (run .ci/install-test-deps.sh)"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{label} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    println!("{stdout}");
}

#[test]
fn psql() {
    run_driver(
        "psql",
        "bash",
        &["psql_session.sh"],
        &[("AIRLOCK_EXPECT_FASTPATH_REFUSED", "1")],
    );
}

#[test]
fn pgbench_simple_prepared_and_extended() {
    run_driver("pgbench", "bash", &["pgbench.sh"], &[]);
}

#[test]
fn psycopg3_text_and_binary() {
    run_driver("psycopg", "python3", &["psycopg_session.py"], &[]);
}

#[test]
fn asyncpg() {
    run_driver("asyncpg", "python3", &["asyncpg_session.py"], &[]);
}

#[test]
fn node_postgres() {
    run_driver("nodepg", "node", &["node/session.js"], &[]);
}

#[test]
fn pgjdbc() {
    run_driver("jdbc", "bash", &["jdbc/run.sh"], &[]);
}

/// asyncpg under the shipped default policy: executemany whose batch fails
/// part-way, savepoint recovery, and a pool whose release resets the
/// connection (RESET ALL, which must not be held).
#[test]
fn asyncpg_recovers_from_errors_and_pools_under_the_default_policy() {
    let db = TestDb::create("apgrec");
    psql_direct(
        &db.name,
        "CREATE TABLE rec_items (id int PRIMARY KEY, label text)",
    );
    let gateway = Gateway::start_with(Options {
        policy: Some(default_policy()),
        ..Default::default()
    });
    run_driver_in(&db, gateway, "python3", &["asyncpg_recovery.py"], &[]);
}

/// What psycopg and asyncpg send on their own — asyncpg's pool reset
/// (`SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`),
/// `BEGIN ISOLATION LEVEL … READ ONLY DEFERRABLE`, savepoints, `MOVE` and
/// `FETCH` on scrollable cursors, type introspection — passes the shipped
/// default policy: a held driver statement would stall every pool.
#[test]
fn drivers_own_statements_pass_the_default_policy() {
    let db = TestDb::create("dps");
    psql_direct(&db.name, "CREATE TABLE dps_items (id int, v text)");
    let gateway = Gateway::start_with(Options {
        policy: Some(default_policy()),
        ..Default::default()
    });
    run_driver_in(&db, gateway, "python3", &["default_policy_session.py"], &[]);
}

/// node-postgres sees through Airlock exactly what it sees from the server:
/// the same probe (drivers/node/differential.js) runs directly and through
/// an allow-all gateway, and every case's result — rows, types, COPY
/// bytes, notification, error codes, the cancelled and timed-out queries —
/// must be identical.
#[test]
fn node_postgres_matches_the_server() {
    let db = TestDb::create("npdiff");
    let gateway = Gateway::start();
    let drivers = Path::new(env!("CARGO_MANIFEST_DIR")).join("protocol-tests/drivers/node");
    let run = |addr: &str, user: &str, password: &str| {
        let (host, port) = addr.rsplit_once(':').unwrap();
        let out = Command::new("node")
            .arg("differential.js")
            .current_dir(&drivers)
            .env("PGHOST", host)
            .env("PGPORT", port)
            .env("PGUSER", user)
            .env("PGPASSWORD", password)
            .env("PGDATABASE", &db.name)
            .output()
            .unwrap_or_else(|e| panic!("cannot run node: {e} (run .ci/install-test-deps.sh)"));
        assert!(
            out.status.success(),
            "differential.js against {addr} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let direct = run(support::gateway::UPSTREAM_ADDR, "postgres", "");
    let through = run(&gateway.addr, AGENT, AGENT_PASSWORD);
    assert!(
        direct.lines().count() >= 13,
        "probe ran every case:\n{direct}"
    );
    for (d, g) in direct.lines().zip(through.lines()) {
        assert_eq!(d, g, "node-postgres differs through Airlock");
    }
    assert_eq!(direct.lines().count(), through.lines().count());
}
