//! Starts the real `airlock` binary for a test, and gives each test its own
//! database on the real PostgreSQL server.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The PostgreSQL server the tests run against (trust auth for `postgres`).
pub const UPSTREAM_ADDR: &str = "127.0.0.1:5432";
pub const AGENT: &str = "agent";
pub const AGENT_PASSWORD: &str = "agent-secret";

/// A running gateway with its own state directory, killed on drop.
pub struct Gateway {
    child: Option<Child>,
    pub addr: String,
    /// The MySQL listener's address (empty when it is off).
    pub mysql_addr: String,
    pub dir: tempfile::TempDir,
    pub stdout: String,
}

/// A policy that allows everything: for tests of the relay itself, which
/// must be able to run any SQL through the gateway.
pub const ALLOW_ALL_POLICY: &str =
    "[[rule]]\nname = \"protocol-tests-allow-everything\"\naction = \"allow\"\n";

/// How to configure a gateway for a test. `toml` is appended to a config
/// that listens on an ephemeral port and defines the `agent` identity.
#[derive(Default)]
pub struct Options {
    pub toml: String,
    /// The policy file's text; `None` allows everything
    /// ([`ALLOW_ALL_POLICY`]). Use [`DEFAULT_POLICY`] for the shipped one.
    pub policy: Option<String>,
    /// Leave out the `agent` identity (zero-identity setups).
    pub no_identity: bool,
    pub env: Vec<(String, String)>,
}

impl Gateway {
    /// A gateway with the shipped default policy (approvals off: held
    /// statements are refused at once).
    pub fn with_default_policy() -> Self {
        Self::start_with(Options {
            policy: Some(default_policy()),
            ..Default::default()
        })
    }

    /// The test agent's session to `database` through this gateway.
    pub async fn agent_session(&self, database: &str) -> super::wire::Wire {
        super::wire::Wire::connect(&self.addr, AGENT, AGENT_PASSWORD, database, &[])
            .await
            .expect("login through airlock")
    }

    pub fn start() -> Self {
        Self::start_with(Options::default())
    }

    pub fn start_with(options: Options) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let policies = dir.path().join("policies");
        std::fs::create_dir_all(&policies).expect("policies dir");
        let policy = options.policy.as_deref().unwrap_or(ALLOW_ALL_POLICY);
        std::fs::write(policies.join("00-test.toml"), policy).expect("write policy");
        let mut toml = format!(
            "state_dir = \"{}\"\npolicies = \"{}\"\n",
            dir.path().join("var").display(),
            policies.display()
        );
        toml.push_str(&options.toml);
        if !options.toml.contains("[postgres]") {
            toml.push_str("\n[postgres]\nlisten = \"127.0.0.1:0\"\n");
        }
        if !options.toml.contains("[mysql]") {
            toml.push_str("\n[mysql]\nlisten = \"127.0.0.1:0\"\n");
        }
        if !options.toml.contains("[inbox]") {
            toml.push_str("\n[inbox]\nlisten = \"127.0.0.1:0\"\n");
        }
        // Held statements are refused at once unless a test sets up
        // approvers: most tests check verdicts, not approvals.
        if !options.toml.contains("[approval]") {
            toml.push_str("\n[approval]\nenabled = false\n");
        }
        if !options.no_identity {
            toml.push_str(&format!(
                "\n[[identity]]\nname = \"{AGENT}\"\nrole = \"agent\"\npassword = \"{AGENT_PASSWORD}\"\n"
            ));
        }
        let config = dir.path().join("airlock.toml");
        std::fs::write(&config, toml).expect("write config");
        let args = ["serve", "--config", config.to_str().expect("utf-8 path")];
        Self::spawn(dir, &args, &options.env)
    }

    /// Runs `airlock` with exactly `args` in `dir` (no generated config).
    pub fn spawn(dir: tempfile::TempDir, args: &[&str], env: &[(String, String)]) -> Self {
        Self::spawn_program(dir, binary(), args, env)
    }

    /// Runs `program` (which must end up running the gateway, as `unshare
    /// … airlock serve` does) in `dir`.
    pub fn spawn_program(
        dir: tempfile::TempDir,
        program: &str,
        args: &[&str],
        env: &[(String, String)],
    ) -> Self {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join("stderr.log"))
            .expect("stderr log");
        let mut cmd = Command::new(program);
        cmd.args(args)
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .stderr(stderr);
        // The caller's own AIRLOCK_* variables must not reconfigure the gateway under test.
        for (k, _) in std::env::vars() {
            if k.starts_with("AIRLOCK_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("AIRLOCK_LOG_LEVEL", "info,airlock=debug");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn airlock");
        let stdout = child.stdout.take().expect("stdout");
        // Lines go through a channel; the thread keeps draining stdout so
        // the gateway never blocks on a full pipe.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut stdout = String::new();
        while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            stdout.push_str(&line);
            stdout.push('\n');
            if line.starts_with("postgres listening on ") {
                break;
            }
        }
        let addr = stdout
            .lines()
            .find_map(|l| l.strip_prefix("postgres listening on "))
            .and_then(|l| l.split_whitespace().next())
            .map(str::to_string);
        let mysql_addr = stdout
            .lines()
            .find_map(|l| l.strip_prefix("mysql listening on "))
            .and_then(|l| l.split_whitespace().next())
            .map(str::to_string)
            .unwrap_or_default();
        let mut gateway = Gateway {
            child: Some(child),
            addr: String::new(),
            mysql_addr,
            dir,
            stdout,
        };
        match addr {
            Some(addr) => gateway.addr = addr,
            None => panic!(
                "airlock did not start.\nstdout:\n{}\nstderr:\n{}",
                gateway.stdout,
                gateway.stderr()
            ),
        }
        gateway
    }

    pub fn port(&self) -> u16 {
        self.addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port")
    }

    /// Everything the gateway logged so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(&mut self, within: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "airlock did not exit within {within:?} of SIGTERM\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The gateway's process id (to send it signals).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Kills the process with SIGKILL (a crash) and gives back its
    /// directory, to start a gateway on the same state again.
    pub fn crash(mut self) -> tempfile::TempDir {
        let mut child = self.child.take().expect("running");
        let _ = child.kill();
        let _ = child.wait();
        std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"))
    }

    /// Stops the process with SIGTERM and gives back its directory.
    pub fn stop(mut self) -> tempfile::TempDir {
        let status = self.terminate(Duration::from_secs(30));
        assert!(status.success(), "airlock exited with {status}");
        std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"))
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- airlock stderr ---\n{}", self.stderr());
        }
    }
}

/// The policy Airlock ships (`policies/default.toml`).
pub fn default_policy() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/default.toml"))
        .expect("policies/default.toml")
}

/// The `airlock` binary Cargo built for these tests.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_airlock")
}

/// A fresh database on the real server, dropped (with its connections) on drop.
pub struct TestDb {
    pub name: String,
}

impl TestDb {
    pub fn create(label: &str) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "airlock_t_{}_{}_{}",
            label,
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        psql_direct("test", &format!("CREATE DATABASE {name}"));
        Self { name }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = run_psql(
            "test",
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// Runs SQL directly against the upstream as `postgres`; panics on failure.
pub fn psql_direct(database: &str, sql: &str) -> String {
    let out = run_psql(database, sql);
    assert!(
        out.status.success(),
        "psql failed for {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn run_psql(database: &str, sql: &str) -> std::process::Output {
    Command::new("psql")
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-p",
            "5432",
            "-U",
            "postgres",
        ])
        .args(["-d", database, "-c", sql])
        .output()
        .expect("run psql")
}

/// Runs psql through a gateway as `user`, returning the output.
pub fn psql_through(
    addr: &str,
    user: &str,
    password: &str,
    database: &str,
    args: &[&str],
) -> std::process::Output {
    let (host, port) = addr.rsplit_once(':').expect("host:port");
    Command::new("psql")
        .args([
            "-X",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            host,
            "-p",
            port,
            "-U",
            user,
            "-d",
            database,
        ])
        .args(args)
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .expect("run psql")
}

/// Writes a file and returns its path as a string.
pub fn write(dir: &Path, name: &str, contents: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write file");
    path.to_str().expect("utf-8").to_string()
}

/// A `[tls]` section with a fresh self-signed certificate for `localhost`
/// and 127.0.0.1, written into `dir` (clients are told not to verify it).
pub fn tls_section(dir: &Path) -> String {
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let cert = rcgen::generate_simple_self_signed(names).expect("certificate");
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).expect("write certificate");
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).expect("write key");
    format!(
        "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        cert_path.display(),
        key_path.display()
    )
}

/// The `masked` counts of one column in every result record of `rows` rows
/// in the audit log under a stopped gateway's directory, in log order.
pub fn masked_counts_of_results(dir: &Path, rows: u64, column: &str) -> Vec<serde_json::Value> {
    let mut counted = Vec::new();
    airlock::audit::read::for_each(&dir.join("var/audit"), |_, r| {
        if r["kind"] == "result" && r["rows"] == rows {
            counted.push(r["masked"][column].clone());
        }
        true
    })
    .expect("read the audit log");
    counted
}
