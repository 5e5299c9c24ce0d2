//! Real MySQL drivers running scripted sessions through Airlock's MySQL
//! listener: the `mariadb` client, PyMySQL, mysql-connector-python (pure
//! and C extension), node mysql2 and MariaDB Connector/J — with and without
//! TLS, with `caching_sha2_password` and `mysql_native_password`. Each
//! script asserts the values it gets back; a non-zero exit fails the test
//! with its output.

mod support;

use std::path::Path;
use std::process::Command;
use support::gateway::{tls_section, Gateway, Options, AGENT, AGENT_PASSWORD};
use support::mysql::{LargePackets, MyDb};

/// A gateway with a TLS certificate (self-signed; drivers are told not to
/// verify it) and an identity known only by its SCRAM verifier.
fn gateway_with_tls() -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let verifier = airlock::identity::ScramVerifier::generate("hashed-pw", 4096).to_string();
    let gateway = Gateway::start_with(Options {
        toml: format!(
            "{}\n[[identity]]\nname = \"hashed\"\nrole = \"agent\"\nscram_verifier = \"{verifier}\"\n",
            tls_section(dir.path())
        ),
        ..Default::default()
    });
    // The certificate files must outlive the gateway's start only.
    drop(dir);
    gateway
}

fn run_driver(gateway: &Gateway, label: &str, program: &str, args: &[&str], env: &[(&str, &str)]) {
    let db = MyDb::create(label);
    let drivers = Path::new(env!("CARGO_MANIFEST_DIR")).join("protocol-tests/drivers");
    let (host, port) = gateway.mysql_addr.rsplit_once(':').unwrap();
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(&drivers)
        .env("MYSQL_HOST", host)
        .env("MYSQL_PORT", port)
        .env("MYSQL_USER", AGENT)
        .env("MYSQL_PASSWORD", AGENT_PASSWORD)
        .env("MYSQL_DATABASE", &db.name)
        .env_remove("MYSQL_TLS")
        .env_remove("MYSQL_AUTH");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e} (run .ci/install-test-deps.sh)"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{label} {env:?} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
}

/// Each session with each plugin, in clear and over TLS.
fn every_way(label: &str, program: &str, args: &[&str]) {
    // Sessions send values over 16 MiB.
    let _large = LargePackets::allow();
    let gateway = gateway_with_tls();
    for auth in ["caching_sha2_password", "mysql_native_password"] {
        for tls in ["", "require"] {
            run_driver(
                &gateway,
                label,
                program,
                args,
                &[("MYSQL_AUTH", auth), ("MYSQL_TLS", tls)],
            );
        }
    }
}

#[test]
fn mariadb_client() {
    every_way("mcli", "bash", &["mariadb_cli_session.sh"]);
}

#[test]
fn pymysql() {
    every_way("pym", "python3", &["pymysql_session.py"]);
}

#[test]
fn mysql_connector_pure() {
    every_way("myc", "python3", &["mysql_connector_session.py", "--pure"]);
}

#[test]
fn mysql_connector_c_extension() {
    every_way("mycx", "python3", &["mysql_connector_session.py", "--cext"]);
}

#[test]
fn node_mysql2_query_and_execute() {
    every_way("mysql2", "node", &["node/mysql_session.js"]);
}

#[test]
fn mariadb_connector_j() {
    every_way("mjdbc", "bash", &["jdbc/mariadb_run.sh"]);
}

#[test]
fn an_identity_known_by_its_scram_verifier_logs_in_over_tls_first() {
    let gateway = gateway_with_tls();
    let db = MyDb::create("hashed");
    let login = |tls: bool| {
        let (host, port) = gateway.mysql_addr.rsplit_once(':').unwrap();
        let mut cmd = Command::new("mariadb");
        cmd.args([
            "-h",
            host,
            "-P",
            port,
            "-u",
            "hashed",
            "--password=hashed-pw",
            "-N",
            "-B",
        ])
        .args(["-D", &db.name, "-e", "SELECT 'in'"]);
        if tls {
            cmd.args(["--ssl", "--ssl-verify-server-cert=0"]);
        } else {
            cmd.arg("--skip-ssl");
        }
        cmd.output().unwrap()
    };
    // In clear, nothing can check a fast-path answer yet.
    let out = login(false);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("1045") && said.contains("log in once over TLS"),
        "{said}"
    );
    // Over TLS the password itself is checked against the verifier...
    let out = login(true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "in");
    // ... and remembered for the fast path, even in clear.
    let out = login(false);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An identity configured the way README says for hashed MySQL logins
/// (`scram_verifier` plus `mysql_native_hash`, no password in the config)
/// logs in with README's own `mariadb` command, in clear and at once: the
/// client answers the greeting's caching_sha2_password, which nothing can
/// check in clear for it, so Airlock switches it to native auth.
#[test]
fn a_hashed_identity_logs_in_with_the_readme_command() {
    let verifier = airlock::identity::ScramVerifier::generate("hashed-pw", 4096).to_string();
    let native = airlock::identity::MysqlCredentials::from_password("hashed-pw")
        .native
        .expect("a native hash")
        .to_string();
    let gateway = Gateway::start_with(Options {
        toml: format!(
            "[[identity]]\nname = \"hashed\"\nrole = \"agent\"\nscram_verifier = \"{verifier}\"\nmysql_native_hash = \"{native}\"\n"
        ),
        ..Default::default()
    });
    let db = MyDb::create("readme");
    let (host, port) = gateway.mysql_addr.rsplit_once(':').unwrap();
    let login = |password: &str| {
        Command::new("mariadb")
            .args(["-h", host, "-P", port, "-u", "hashed"])
            .arg(format!("--password={password}"))
            .args(["--skip-ssl", "-N", "-B", &db.name, "-e", "SELECT 'in'"])
            .output()
            .unwrap()
    };
    let out = login("hashed-pw");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "in");
    let out = login("wrong-pw");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("1045"));
}
