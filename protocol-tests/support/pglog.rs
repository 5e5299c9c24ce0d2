//! PostgreSQL's own statement log as a test's witness: what reached the
//! server, whatever the gateway says.

use super::gateway::{psql_direct, TestDb};

/// The server's log file, from `pg_lsclusters` (Debian), for port 5432.
pub fn server_log() -> String {
    let out = std::process::Command::new("pg_lsclusters")
        .arg("--no-header")
        .output()
        .expect("pg_lsclusters");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.split_whitespace().nth(2) == Some("5432"))
        .and_then(|l| l.split_whitespace().last().map(str::to_string))
        .expect("a cluster on port 5432 with a log file")
}

/// The log's text so far (empty when it cannot be read).
pub fn log_text(path: &str) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

pub fn log_contains(path: &str, marker: &str) -> bool {
    log_text(path).contains(marker)
}

/// A fresh database whose every statement the server logs.
pub fn logged_database(label: &str) -> TestDb {
    let db = TestDb::create(label);
    psql_direct(
        "test",
        &format!("ALTER DATABASE {} SET log_statement = 'all'", db.name),
    );
    db
}

/// A marker unique to this run, for finding statements in the log.
pub fn run_marker(label: &str) -> String {
    super::mysql::marker(label)
}
