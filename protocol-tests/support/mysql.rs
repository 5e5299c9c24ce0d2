//! MariaDB on this machine, for the MySQL side: fresh databases, SQL run
//! directly as root, and the `mariadb` command-line client through a
//! gateway.

use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

pub const MYSQL_HOST: &str = "127.0.0.1";
pub const MYSQL_PORT: &str = "3306";

/// A fresh database on the real MariaDB, dropped on drop.
pub struct MyDb {
    pub name: String,
}

impl MyDb {
    pub fn create(label: &str) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "airlock_my_{}_{}_{}",
            label,
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        mariadb_direct("", &format!("CREATE DATABASE {name}"));
        Self { name }
    }
}

impl Drop for MyDb {
    fn drop(&mut self) {
        let _ = run_direct("", &format!("DROP DATABASE IF EXISTS {}", self.name));
    }
}

/// Runs SQL directly against MariaDB as root; panics on failure; the
/// output in batch form (tab-separated, no headers).
pub fn mariadb_direct(database: &str, sql: &str) -> String {
    let out = run_direct(database, sql);
    assert!(
        out.status.success(),
        "mariadb failed for {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn run_direct(database: &str, sql: &str) -> Output {
    let mut cmd = Command::new("mariadb");
    cmd.args(["-h", MYSQL_HOST, "-P", MYSQL_PORT, "-u", "root", "-N", "-B"]);
    if !database.is_empty() {
        cmd.args(["-D", database]);
    }
    cmd.args(["-e", sql]).output().expect("run mariadb")
}

/// The `mariadb` client through a gateway's MySQL listener: `-N -B -e sql`
/// plus `extra` arguments.
pub fn mariadb_through(
    addr: &str,
    user: &str,
    password: &str,
    database: &str,
    sql: &str,
    extra: &[&str],
) -> Output {
    mariadb_command(addr, user, password, database, extra)
        .args(["-e", sql])
        .output()
        .expect("run mariadb")
}

/// The `mariadb` command for a gateway, without the statement.
pub fn mariadb_command(
    addr: &str,
    user: &str,
    password: &str,
    database: &str,
    extra: &[&str],
) -> Command {
    let (host, port) = addr.rsplit_once(':').expect("host:port");
    let mut cmd = Command::new("mariadb");
    cmd.args(["-h", host, "-P", port, "-u", user, "-N", "-B"])
        .arg(format!("--password={password}"))
        .args(["--skip-ssl", "--connect-timeout=10"]);
    cmd.args(extra);
    if !database.is_empty() {
        cmd.args(["-D", database]);
    }
    cmd
}

/// MariaDB's general query log, on while any guard lives: the server's own
/// record of every statement it received, the witness that a refused
/// statement never reached it.
pub struct GeneralLog {
    pub file: String,
}

static GENERAL_LOG_USERS: std::sync::Mutex<usize> = std::sync::Mutex::new(0);

impl GeneralLog {
    pub fn on() -> Self {
        let mut users = GENERAL_LOG_USERS.lock().unwrap_or_else(|e| e.into_inner());
        if *users == 0 {
            mariadb_direct(
                "",
                "SET GLOBAL log_output = 'FILE'; SET GLOBAL general_log = ON",
            );
        }
        *users += 1;
        let file = mariadb_direct("", "SELECT @@general_log_file");
        let datadir = mariadb_direct("", "SELECT @@datadir");
        let file = if file.starts_with('/') {
            file
        } else {
            format!("{datadir}{file}")
        };
        GeneralLog { file }
    }

    /// Whether the log has a line containing `marker`.
    pub fn contains(&self, marker: &str) -> bool {
        // The server writes the log as it receives statements; a moment
        // covers its buffering.
        std::thread::sleep(std::time::Duration::from_millis(200));
        std::fs::read(&self.file)
            .map(|b| String::from_utf8_lossy(&b).contains(marker))
            .unwrap_or(false)
    }
}

impl Drop for GeneralLog {
    fn drop(&mut self) {
        let mut users = GENERAL_LOG_USERS.lock().unwrap_or_else(|e| e.into_inner());
        *users -= 1;
        if *users == 0 {
            let _ = run_direct("", "SET GLOBAL general_log = OFF");
        }
    }
}

/// A marker unique to this run, for finding statements in the log.
pub fn marker(label: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    format!("{label}{}x{nanos}", std::process::id())
}

/// MariaDB's `max_allowed_packet` raised to 128 MiB while any guard lives
/// (a global: sessions opened after see it), so that packets past 16 MiB
/// can travel; put back when the last guard goes.
pub struct LargePackets;

static LARGE_PACKETS: std::sync::Mutex<(usize, String)> = std::sync::Mutex::new((0, String::new()));

impl LargePackets {
    pub fn allow() -> Self {
        let mut state = LARGE_PACKETS.lock().unwrap_or_else(|e| e.into_inner());
        if state.0 == 0 {
            state.1 = mariadb_direct("", "SELECT @@GLOBAL.max_allowed_packet");
            mariadb_direct("", "SET GLOBAL max_allowed_packet = 134217728");
            // A new session sees it: the server builds values past 16 MiB
            // (at the old limit REPEAT would answer NULL with a warning).
            assert_eq!(
                mariadb_direct("", "SELECT LENGTH(REPEAT('b', 20000000))"),
                "20000000"
            );
        }
        state.0 += 1;
        LargePackets
    }
}

impl Drop for LargePackets {
    fn drop(&mut self) {
        let mut state = LARGE_PACKETS.lock().unwrap_or_else(|e| e.into_inner());
        state.0 -= 1;
        if state.0 == 0 {
            let _ = run_direct("", &format!("SET GLOBAL max_allowed_packet = {}", state.1));
        }
    }
}
