//! The audit log's cost, measured on this machine's disk:
//!
//! * records/s appended to the chained log (statement records as the gate
//!   writes them), from one thread and from two, with `fsync = "batch"`
//!   (10 ms window) and `"always"`;
//! * the latency the log adds to each statement: `Gate::check` timed call
//!   by call with the chained log and with no log (operator log only), in
//!   the same run; p50 and p99 of each and the difference;
//! * the latency of a privileged statement, whose record must be fsynced
//!   before it runs;
//! * the chain's hashing per record: format 1 (keyed BLAKE3) against
//!   format 2 (SHA-256 record hash and session transcript root), same bytes;
//! * the auditor's side: the first page of a 40,000-statement session's
//!   replay, full verification (records/s), and an incremental one after
//!   more records were written; the inbox's session list (its index
//!   built on the first view, then read on with nothing new) and the
//!   OCSF export (events/s).
//!
//!     cargo bench --bench audit
//!
//! The log is written under `target/` (the real disk, not a tmpfs).

use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock::audit::log::{AuditLog, Fsync, LogSettings};
use airlock::audit::{record, Audit, AuditEvent};
use airlock::gate::{Gate, Origin, Protocol, SessionId, SessionInfo, SessionStatements};
use airlock::identity::Role;
use airlock::policy::Policy;
use airlock::sql::{Classes, StatementClass};

const RECORDS: u64 = 200_000;
const CALLS: usize = 50_000;

fn settings(dir: &std::path::Path, fsync: Fsync) -> LogSettings {
    LogSettings {
        dir: dir.to_path_buf(),
        chain_key: None,
        previous_signing_key: None,
        signing_key: [9; 32],
        fsync,
        window: Duration::from_millis(10),
        segment_bytes: 64 << 20,
        checkpoint_every: 10_000,
        checkpoint_secs: 60,
        backlog_bytes: 64 << 20,
    }
}

fn scratch_dir() -> tempfile::TempDir {
    let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-audit");
    std::fs::create_dir_all(&base).expect("target/bench-audit");
    tempfile::tempdir_in(base).expect("temp dir")
}

/// A statement record as the gate writes one.
fn statement_record(n: u64) -> airlock::audit::chain::Record {
    let session = SessionId(format!("s-6b02a1f0-{}", n % 64));
    let sql =
        format!("SELECT id, email, created_at FROM customers WHERE id = {n} ORDER BY id LIMIT 50");
    let objects = vec!["customers".to_string()];
    record::to_record(&AuditEvent::Statement {
        session: &session,
        sql: &sql,
        origin: Origin::SimpleQuery,
        classes: Classes::of(&[StatementClass::Read]),
        objects: &objects,
        action: "allow",
        rule: "allow-read-write-session",
    })
}

fn throughput(fsync: Fsync, threads: u64) -> f64 {
    let dir = scratch_dir();
    let log = AuditLog::open(settings(dir.path(), fsync), Vec::new()).expect("open");
    let per_thread = RECORDS / threads;
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let log = log.clone();
            s.spawn(move || {
                for i in 0..per_thread {
                    log.append(statement_record(t * per_thread + i))
                        .expect("written");
                }
            });
        }
    });
    log.close();
    let elapsed = start.elapsed();
    (per_thread * threads) as f64 / elapsed.as_secs_f64()
}

fn session() -> SessionInfo {
    SessionInfo {
        door: Default::default(),
        id: SessionId("s-bench-0".into()),
        identity: "agent".into(),
        role: Role::Agent,
        client_addr: "127.0.0.1:50000".parse().unwrap(),
        application_name: Some("bench".into()),
        database: "test".into(),
        protocol: Protocol::Postgres,
        confinement: Default::default(),
        ending: Default::default(),
        sampler: None,
        tls: false,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

/// Latencies of `Gate::check` for `sql`, call by call.
fn check_latencies(gate: &Gate, sql: &str, calls: usize) -> Vec<Duration> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let session = session();
    let mut statements = SessionStatements::default();
    let mut out = Vec::with_capacity(calls);
    runtime.block_on(async {
        for i in 0..calls + 1000 {
            let start = Instant::now();
            let checked = gate
                .check(
                    &session,
                    &mut statements,
                    sql.as_bytes(),
                    Origin::SimpleQuery,
                )
                .await;
            let took = start.elapsed();
            assert!(checked.audit_failure.is_none());
            // The first thousand warm the classifier cache and the disk.
            if i >= 1000 {
                out.push(took);
            }
        }
    });
    out.sort();
    out
}

fn main() {
    // `cargo bench` passes --bench. `cargo bench --bench audit -- auditor`
    // runs only the auditor's part (replay, verification, session list,
    // OCSF export).
    if std::env::args().any(|a| a == "auditor") {
        auditor();
        return;
    }
    println!(
        "audit log throughput ({RECORDS} statement records, on {})",
        scratch_dir().path().display()
    );
    for (fsync, name) in [(Fsync::Batch, "batch (10 ms)"), (Fsync::Always, "always")] {
        for threads in [1, 2] {
            let rate = throughput(fsync, threads);
            println!("  fsync {name:<14} {threads} thread(s): {rate:>9.0} records/s");
        }
    }

    let sql = "SELECT id, email, created_at FROM customers WHERE id = 42 ORDER BY id LIMIT 50";
    let untracked = Gate::new(Arc::new(Audit::log_only()), Policy::builtin_default());
    let dir = scratch_dir();
    let chained_log = AuditLog::open(settings(dir.path(), Fsync::Batch), Vec::new()).unwrap();
    let chained = Gate::new(
        Arc::new(Audit::chained(chained_log.clone(), 0)),
        Policy::builtin_default(),
    );
    println!("\nGate::check per statement ({CALLS} calls each, same run)");
    let mut rows = Vec::new();
    for round in 0..3 {
        let base = check_latencies(&untracked, sql, CALLS);
        let with = check_latencies(&chained, sql, CALLS);
        rows.push((percentile(&base, 0.5), percentile(&with, 0.5)));
        println!(
            "  round {round}: no log p50 {:>6.1} µs p99 {:>6.1} µs | chained log (batch) p50 {:>6.1} µs p99 {:>6.1} µs | added p50 {:>5.1} µs",
            micros(percentile(&base, 0.5)),
            micros(percentile(&base, 0.99)),
            micros(percentile(&with, 0.5)),
            micros(percentile(&with, 0.99)),
            micros(percentile(&with, 0.5).saturating_sub(percentile(&base, 0.5))),
        );
    }
    rows.sort_by_key(|(b, w)| w.saturating_sub(*b));
    let (b, w) = rows[1];
    println!(
        "  median of rounds: added p50 {:.1} µs",
        micros(w.saturating_sub(b))
    );

    // A privileged statement waits for its record to reach the disk.
    let ddl = "CREATE INDEX customers_email ON customers (email)";
    let admin_policy = Policy::builtin_default();
    let admin_gate = Gate::new(
        Arc::new(Audit::chained(chained_log.clone(), 0)),
        admin_policy,
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut session = session();
    session.role = Role::Admin;
    let mut statements = SessionStatements::default();
    let mut durable = Vec::new();
    runtime.block_on(async {
        for _ in 0..300 {
            let start = Instant::now();
            let checked = admin_gate
                .check(
                    &session,
                    &mut statements,
                    ddl.as_bytes(),
                    Origin::SimpleQuery,
                )
                .await;
            durable.push(start.elapsed());
            assert!(checked.audit_failure.is_none());
        }
    });
    durable.sort();
    println!(
        "\nprivileged statement (record fsynced before it runs): p50 {:.0} µs p99 {:.0} µs",
        micros(percentile(&durable, 0.5)),
        micros(percentile(&durable, 0.99))
    );
    chained_log.close();

    hashing();
    auditor();
}

/// Format 1 against format 2: the hashes a record costs, on the same
/// canonical bytes.
fn hashing() {
    use airlock::audit::chain;
    let canonical = statement_record(42).canonical();
    let n = 1_000_000u32;
    let start = Instant::now();
    let mut h = chain::GENESIS;
    for _ in 0..n {
        h = chain::keyed_record_hash(&[7; 32], &h, &canonical);
    }
    let keyed = start.elapsed() / n;
    let start = Instant::now();
    let mut root = chain::GENESIS;
    for _ in 0..n {
        h = chain::record_hash(&h, &canonical);
        root = chain::session_root(&root, &h);
    }
    let public = start.elapsed() / n;
    std::hint::black_box((h, root));
    println!(
        "
chain hashing per record ({} bytes canonical): format 1 keyed BLAKE3 {:.0} ns, format 2 SHA-256 + session root {:.0} ns",
        canonical.len(),
        keyed.as_nanos(),
        public.as_nanos()
    );
}

/// The auditor's side on a log with one session of 40,000 statements (each
/// with its result) among 40,000 records of other sessions.
fn auditor() {
    use airlock::audit::{read, verify};
    const STATEMENTS: u64 = 40_000;
    let dir = scratch_dir();
    let log = AuditLog::open(settings(dir.path(), Fsync::Batch), Vec::new()).unwrap();
    let big = "s-6b02a1f0-big";
    for n in 0..STATEMENTS {
        let mut r = statement_record(n);
        r.session(big);
        log.append(r);
        let mut result = airlock::audit::chain::Record::new("result");
        result.session(big).str("tag", "SELECT 1").u64("rows", 1);
        log.append_deferred(result);
        log.append(statement_record(n));
    }
    log.close();
    let signing = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let trust = verify::Trust {
        pinned: Some(signing.verifying_key().to_bytes()),
        chain_key: None,
    };
    println!(
        "
auditor: a session of {STATEMENTS} statements and their results among {STATEMENTS} other records"
    );
    for round in 0..3 {
        let start = Instant::now();
        let page = read::session_page(dir.path(), big, 0, 1000).unwrap();
        let text = read::transcript(&page.records);
        let first_page = start.elapsed();
        assert_eq!(page.total as u64, 2 * STATEMENTS);
        std::hint::black_box(text);
        let start = Instant::now();
        let report = verify::verify(dir.path(), &trust).unwrap();
        let full = start.elapsed();
        assert!(report.broken.is_none());
        let mut incremental = verify::Incremental::default();
        incremental.verify(dir.path(), &trust).unwrap();
        let start = Instant::now();
        let again = incremental.verify(dir.path(), &trust).unwrap();
        let resumed = start.elapsed();
        assert!(again.broken.is_none());
        println!(
            "  round {round}: replay first page (1,000 of {} records) {:.0} ms | full verify {} records in {:.0} ms = {:.0} records/s | incremental re-verify {:.0} ms",
            page.total,
            first_page.as_secs_f64() * 1e3,
            report.records,
            full.as_secs_f64() * 1e3,
            report.records as f64 / full.as_secs_f64(),
            resumed.as_secs_f64() * 1e3,
        );
        let start = Instant::now();
        let mut index = read::SessionIndex::default();
        index.refresh(dir.path()).unwrap();
        let filter = read::SessionFilter::default();
        let listed: Vec<_> = index.matching(&filter).rev().take(100).collect();
        let first_list = start.elapsed();
        assert_eq!(listed.len(), 65);
        let start = Instant::now();
        index.refresh(dir.path()).unwrap();
        let filter = read::SessionFilter {
            verdict: Some("allow".into()),
            ..Default::default()
        };
        let again = index.matching(&filter).rev().take(100).count();
        let next_list = start.elapsed();
        std::hint::black_box(again);
        let start = Instant::now();
        let events = airlock::audit::ocsf::export(dir.path(), None, None, std::io::sink()).unwrap();
        let ocsf = start.elapsed();
        println!(
            "  round {round}: session list, first view (index of {} records) {:.0} ms | next view {:.1} ms | OCSF export {events} events in {:.0} ms = {:.0} events/s",
            report.records,
            first_list.as_secs_f64() * 1e3,
            next_list.as_secs_f64() * 1e3,
            ocsf.as_secs_f64() * 1e3,
            events as f64 / ocsf.as_secs_f64(),
        );
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
