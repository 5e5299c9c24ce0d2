//! Airlock's upstream MySQL login against the real MariaDB on 127.0.0.1:3306:
//! password accounts, refused logins with their error codes, a query read
//! packet by packet, `KILL QUERY` from a second connection, and TLS (or,
//! when the server has TLS disabled, the clear refusal of `require`).
//!
//! Each test makes its own account (`airlock_up_<pid>_<nanos>_<n>`, for
//! 127.0.0.1 and localhost) with the `mariadb` CLI as root, and a guard
//! drops it when the test ends, failed or not.
//!
//! TLS is also tested whatever the machine's server says, against a private
//! MariaDB the test starts in a temporary directory with a certificate from
//! a test CA made with rcgen.

use airlock::config::UpstreamTls;
use airlock::proxy::mysql::handshake::{
    self, ErrPacket, OkPacket, CLIENT_DEPRECATE_EOF, CLIENT_LONG_PASSWORD, CLIENT_PROTOCOL_41,
    CLIENT_SSL,
};
use airlock::proxy::mysql::packet::{Fields, PacketStream};
use airlock::proxy::mysql::upstream::{
    self, kill_query, Upstream, UpstreamError, UpstreamSettings,
};
use airlock::proxy::{tls, Stream};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const ADDRESS: &str = "127.0.0.1:3306";
const PASSWORD: &str = "x-Airlock-up-7f3!";

/// Runs SQL as root through the CLI.
fn mariadb(sql: &str) -> String {
    let out = Command::new("mariadb")
        .args(["-uroot", "-h127.0.0.1", "-P3306", "-N", "-B", "-e", sql])
        .output()
        .expect("the mariadb CLI");
    assert!(
        out.status.success(),
        "mariadb -e {sql:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A password account that exists for the life of the value.
struct TestUser {
    name: String,
}

impl TestUser {
    fn create() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "airlock_up_{}_{nanos}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let user = Self { name };
        for host in ["127.0.0.1", "localhost"] {
            mariadb(&format!(
                "CREATE USER '{}'@'{host}' IDENTIFIED BY '{PASSWORD}'; \
                 GRANT ALL ON test.* TO '{}'@'{host}'",
                user.name, user.name
            ));
        }
        user
    }

    fn settings(&self) -> UpstreamSettings {
        let mut s = UpstreamSettings::new(ADDRESS, self.name.clone());
        s.password = PASSWORD.into();
        s.database = Some("test".into());
        s.connect_timeout = Duration::from_secs(5);
        s
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        for host in ["127.0.0.1", "localhost"] {
            let _ = Command::new("mariadb")
                .args([
                    "-uroot",
                    "-h127.0.0.1",
                    "-P3306",
                    "-e",
                    &format!("DROP USER IF EXISTS '{}'@'{host}'", self.name),
                ])
                .output();
        }
    }
}

fn rejected(result: Result<Upstream, UpstreamError>) -> (u16, String, String) {
    match result {
        Err(UpstreamError::Rejected {
            code,
            sqlstate,
            message,
        }) => (code, sqlstate, message),
        Err(other) => panic!("expected an ERR from the server, got: {other}"),
        Ok(_) => panic!("the login succeeded"),
    }
}

type ResultSet = (Vec<String>, Vec<Vec<Option<String>>>);

/// Sends one COM_QUERY.
async fn send_query(packets: &mut PacketStream<Stream>, sql: &str) {
    packets.reset();
    let mut payload = vec![0x03];
    payload.extend_from_slice(sql.as_bytes());
    packets.write_packet(&payload);
    packets.flush().await.expect("send the query");
}

/// Reads one text-protocol result set by hand: the column count, the
/// column definitions, the rows, and the end (EOF, or OK under
/// DEPRECATE_EOF). Returns the column names and the rows as text, or the
/// ERR that came instead of the result or in the middle of its rows.
async fn read_result_set(up: &mut Upstream) -> Result<ResultSet, ErrPacket> {
    let caps = up.capabilities;
    let deprecate_eof = caps & CLIENT_DEPRECATE_EOF != 0;
    let first = up.packets.read().await.unwrap().unwrap();
    assert_eq!(first.seq, 1, "the reply continues the command's numbering");
    if first.payload[0] == 0xFF {
        return Err(ErrPacket::parse(&first.payload).unwrap());
    }
    let count = Fields::new(&first.payload).lenenc_int().unwrap();
    let mut names = Vec::new();
    for _ in 0..count {
        let def = up.packets.read().await.unwrap().unwrap();
        let mut f = Fields::new(&def.payload);
        assert_eq!(f.lenenc_bytes().unwrap(), b"def", "catalog");
        let _schema = f.lenenc_bytes().unwrap();
        let _table = f.lenenc_bytes().unwrap();
        let _org_table = f.lenenc_bytes().unwrap();
        names.push(String::from_utf8_lossy(f.lenenc_bytes().unwrap()).into_owned());
        let _org_name = f.lenenc_bytes().unwrap();
        assert_eq!(f.lenenc_int().unwrap(), 0x0C, "fixed-length fields");
    }
    if !deprecate_eof {
        let eof = up.packets.read().await.unwrap().unwrap();
        assert!(handshake::is_eof(&eof.payload), "EOF after the columns");
    }
    let mut rows = Vec::new();
    loop {
        let p = up.packets.read().await.unwrap().unwrap();
        if handshake::ends_result_set(&p.payload, caps) {
            if deprecate_eof {
                let ok = OkPacket::parse(&p.payload, caps).unwrap();
                assert_eq!(ok.status & handshake::SERVER_MORE_RESULTS_EXISTS, 0);
            }
            return Ok((names, rows));
        }
        if p.payload[0] == 0xFF {
            return Err(ErrPacket::parse(&p.payload).unwrap());
        }
        let mut f = Fields::new(&p.payload);
        let mut row = Vec::new();
        for _ in 0..count {
            if f.peek_u8() == Some(0xFB) {
                f.u8().unwrap();
                row.push(None);
            } else {
                row.push(Some(
                    String::from_utf8_lossy(f.lenenc_bytes().unwrap()).into_owned(),
                ));
            }
        }
        rows.push(row);
    }
}

async fn query(up: &mut Upstream, sql: &str) -> Vec<Vec<Option<String>>> {
    send_query(&mut up.packets, sql).await;
    read_result_set(up).await.expect("a result set").1
}

#[tokio::test]
async fn logs_in_with_a_password() {
    let user = TestUser::create();
    let mut up = upstream::connect(&user.settings())
        .await
        .expect("login with the right password");
    eprintln!(
        "server {:?}, thread {}, server caps {:#010x}, MariaDB ext caps {:#010x}, \
         negotiated {:#010x}, plugin {}, status {:#06x}",
        up.server_version,
        up.connection_id,
        up.server_capabilities,
        up.server_mariadb_capabilities,
        up.capabilities,
        up.auth_plugin,
        up.status
    );
    assert!(up.server_version.contains("MariaDB"));
    assert!(up.is_mariadb(), "MariaDB clears CLIENT_LONG_PASSWORD");
    assert!(!up.is_tls());
    assert_eq!(up.auth_plugin, "mysql_native_password");
    assert_ne!(up.capabilities & CLIENT_DEPRECATE_EOF, 0);
    assert_eq!(up.capabilities & handshake::CLIENT_LOCAL_FILES, 0);

    // The session is who and where it should be, and the thread id is the
    // server's own.
    let rows = query(
        &mut up,
        "SELECT CURRENT_USER(), DATABASE(), CONNECTION_ID(), @@character_set_client",
    )
    .await;
    let row = &rows[0];
    assert_eq!(
        row[0].as_deref(),
        Some(format!("{}@127.0.0.1", user.name).as_str())
    );
    assert_eq!(row[1].as_deref(), Some("test"));
    assert_eq!(row[2], Some(up.connection_id.to_string()));
    assert_eq!(row[3].as_deref(), Some("utf8mb4"));

    let ok = upstream::execute(&mut up, "DO 1").await.expect("DO 1");
    assert_eq!(ok.affected_rows, 0);
}

#[tokio::test]
async fn wrong_password_is_error_1045() {
    let user = TestUser::create();
    let mut settings = user.settings();
    settings.password = "not-the-password".into();
    let (code, sqlstate, message) = rejected(upstream::connect(&settings).await);
    assert_eq!((code, sqlstate.as_str()), (1045, "28000"));
    assert!(message.contains("Access denied"), "{message}");
    assert!(!message.contains("not-the-password"));
    // And an empty password for an account that has one.
    settings.password.clear();
    let (code, _, message) = rejected(upstream::connect(&settings).await);
    assert_eq!(code, 1045);
    assert!(message.contains("using password: NO"), "{message}");
}

#[tokio::test]
async fn unknown_database_is_refused() {
    let user = TestUser::create();
    let mut settings = user.settings();
    settings.database = Some("airlock_no_such_db".into());
    // Without rights there, the server does not say whether it exists.
    let (code, sqlstate, _) = rejected(upstream::connect(&settings).await);
    assert_eq!((code, sqlstate.as_str()), (1044, "42000"));
    // root (no password: an empty token) learns that it does not.
    let mut root = UpstreamSettings::new(ADDRESS, "root");
    root.database = Some("airlock_no_such_db".into());
    let (code, sqlstate, message) = rejected(upstream::connect(&root).await);
    assert_eq!((code, sqlstate.as_str()), (1049, "42000"));
    assert!(message.contains("airlock_no_such_db"), "{message}");
}

#[tokio::test]
async fn select_one_read_by_hand_with_and_without_eof_packets() {
    let user = TestUser::create();
    for caps in [
        handshake::DEFAULT_CLIENT,
        handshake::DEFAULT_CLIENT & !CLIENT_DEPRECATE_EOF,
    ] {
        let mut settings = user.settings();
        settings.capabilities = caps;
        let mut up = upstream::connect(&settings).await.expect("login");
        assert_eq!(
            up.capabilities & CLIENT_DEPRECATE_EOF,
            caps & CLIENT_DEPRECATE_EOF
        );
        send_query(&mut up.packets, "SELECT 1").await;
        let (names, rows) = read_result_set(&mut up).await.expect("a result set");
        assert_eq!(names, ["1"]);
        assert_eq!(rows, [[Some("1".to_string())]]);
        // NULL, and a second command on the same connection.
        let rows = query(&mut up, "SELECT NULL, 'a' UNION ALL SELECT 2, 'b'").await;
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0], [None, Some("a".into())]);
    }
}

#[tokio::test]
async fn qualified_names_work_without_a_database() {
    // Regression: asking for every supported flag included NO_SCHEMA, and
    // MariaDB then refused `information_schema.x` with "No database selected".
    let user = TestUser::create();
    let mut settings = user.settings();
    settings.database = None;
    let mut up = upstream::connect(&settings).await.expect("login");
    let rows = query(
        &mut up,
        "SELECT COUNT(*) > 0 FROM information_schema.SESSION_STATUS",
    )
    .await;
    assert_eq!(rows, [[Some("1".to_string())]]);
    // An agent that asks for NO_SCHEMA gets it.
    settings.capabilities |= handshake::CLIENT_NO_SCHEMA;
    let mut up = upstream::connect(&settings).await.expect("login");
    assert_ne!(up.capabilities & handshake::CLIENT_NO_SCHEMA, 0);
    send_query(
        &mut up.packets,
        "SELECT COUNT(*) FROM information_schema.SESSION_STATUS",
    )
    .await;
    let err = read_result_set(&mut up)
        .await
        .expect_err("NO_SCHEMA refuses db.table");
    assert_eq!(err.code, 1046);
}

#[tokio::test]
async fn server_errors_on_commands_carry_code_and_sqlstate() {
    let user = TestUser::create();
    let mut up = upstream::connect(&user.settings()).await.expect("login");
    match upstream::execute(&mut up, "DROP TABLE airlock_no_such_table").await {
        Err(UpstreamError::Rejected { code, sqlstate, .. }) => {
            assert_eq!((code, sqlstate.as_str()), (1051, "42S02"))
        }
        other => panic!("{other:?}"),
    }
    // The connection is still usable after an error.
    assert_eq!(query(&mut up, "SELECT 2").await, [[Some("2".to_string())]]);
}

#[tokio::test]
async fn kill_query_interrupts_a_running_statement() {
    let user = TestUser::create();
    let settings = user.settings();
    let mut victim = upstream::connect(&settings).await.expect("login");
    let id = victim.connection_id;
    let started = Instant::now();
    send_query(&mut victim.packets, "SELECT SLEEP(10)").await;
    // Let the statement start before it is killed.
    tokio::time::sleep(Duration::from_millis(300)).await;
    kill_query(&settings, id).await.expect("KILL QUERY");
    // MariaDB sends the column definition, then ERR 1317 (70100) where
    // the row would be. The timeout only keeps a broken kill from hanging
    // the suite.
    let result = tokio::time::timeout(Duration::from_secs(30), read_result_set(&mut victim))
        .await
        .expect("the statement was not interrupted");
    eprintln!("killed after {:?}: {result:?}", started.elapsed());
    let err = result.expect_err("SLEEP ran to its end");
    assert_eq!((err.code, err.sqlstate()), (1317, "70100"));
    // KILL QUERY leaves the connection open.
    assert_eq!(
        query(&mut victim, "SELECT 3").await,
        [[Some("3".to_string())]]
    );
    // Killing a thread that does not exist is the server's error.
    match kill_query(&settings, u32::MAX - 1).await {
        Err(UpstreamError::Rejected { code: 1094, .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn tls_login_or_a_clear_refusal() {
    let user = TestUser::create();
    let have_ssl = mariadb("SHOW VARIABLES LIKE 'have_ssl'");
    let mut settings = user.settings();
    settings.tls = tls::upstream_config(UpstreamTls::Require, None).expect("TLS config");
    let result = upstream::connect(&settings).await;
    if have_ssl.contains("YES") {
        let mut up = result.expect("login over TLS");
        assert!(up.is_tls());
        assert_ne!(up.capabilities & CLIENT_SSL, 0);
        let rows = query(&mut up, "SHOW STATUS LIKE 'Ssl_version'").await;
        assert!(rows[0][1].as_deref().is_some_and(|v| v.starts_with("TLS")));
    } else {
        match result {
            Err(e @ UpstreamError::Tls(_)) => {
                let text = e.to_string();
                assert!(text.contains("does not accept TLS"), "{text}");
            }
            Err(other) => panic!("expected a TLS error, got: {other}"),
            Ok(_) => panic!("logged in without TLS although TLS was required"),
        }
    }
}

#[test]
fn capability_constants_match_the_protocol() {
    // Spot checks against the protocol documentation's values.
    assert_eq!(CLIENT_LONG_PASSWORD, 0x1);
    assert_eq!(CLIENT_PROTOCOL_41, 0x200);
    assert_eq!(CLIENT_SSL, 0x800);
    assert_eq!(handshake::CLIENT_PLUGIN_AUTH, 0x80000);
    assert_eq!(CLIENT_DEPRECATE_EOF, 0x100_0000);
    assert_eq!(handshake::CLIENT_QUERY_ATTRIBUTES, 0x800_0000);
}

// ---- a private MariaDB with TLS ----------------------------------------------

/// A throwaway MariaDB server with TLS on, killed when dropped.
struct TlsServer {
    child: std::process::Child,
    port: u16,
    dir: tempfile::TempDir,
    /// The CA that signed the server certificate, and one that did not.
    ca: std::path::PathBuf,
    other_ca: std::path::PathBuf,
}

fn ca(name: &str) -> (rcgen::Certificate, rcgen::KeyPair) {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let key = rcgen::KeyPair::generate().unwrap();
    (params.self_signed(&key).unwrap(), key)
}

impl TlsServer {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = |name: &str| dir.path().join(name);
        let (ca_cert, ca_key) = ca("Airlock MySQL Test CA");
        let (other, _) = ca("Unrelated Test CA");
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &ca_cert, &ca_key).unwrap();
        std::fs::write(path("ca.pem"), ca_cert.pem()).unwrap();
        std::fs::write(path("other-ca.pem"), other.pem()).unwrap();
        std::fs::write(path("server.pem"), cert.pem()).unwrap();
        std::fs::write(path("server.key"), key.serialize_pem()).unwrap();

        let data = path("data");
        let install = Command::new("mariadb-install-db")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .args(["--user=root", "--auth-root-authentication-method=normal"])
            .arg("--skip-test-db")
            .output()
            .expect("mariadb-install-db");
        assert!(
            install.status.success(),
            "{}",
            String::from_utf8_lossy(&install.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let child = Command::new("/usr/sbin/mariadbd")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", path("sock").display()))
            .arg(format!("--pid-file={}", path("pid").display()))
            .arg(format!("--ssl-cert={}", path("server.pem").display()))
            .arg(format!("--ssl-key={}", path("server.key").display()))
            .args(["--user=root", "--bind-address=127.0.0.1", "--skip-log-bin"])
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(path("server.log")).unwrap())
            .spawn()
            .expect("mariadbd");
        let server = Self {
            child,
            port,
            ca: path("ca.pem"),
            other_ca: path("other-ca.pem"),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while server.sql("SELECT 1").is_err() {
            assert!(
                Instant::now() < deadline,
                "the private MariaDB did not start: {}",
                std::fs::read_to_string(server.dir.path().join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        server
    }

    fn sql(&self, sql: &str) -> Result<String, String> {
        let out = Command::new("mariadb")
            .args(["-uroot", "-h127.0.0.1", "--skip-ssl", "-N", "-B"])
            .arg(format!("-P{}", self.port))
            .args(["-e", sql])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    fn settings(&self, mode: UpstreamTls, ca: Option<&std::path::Path>) -> UpstreamSettings {
        let mut s = UpstreamSettings::new(format!("127.0.0.1:{}", self.port), "tls_only");
        s.password = PASSWORD.into();
        s.connect_timeout = Duration::from_secs(5);
        s.tls = tls::upstream_config(mode, ca).expect("TLS config");
        s
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn tls_against_a_private_server() {
    let server = TlsServer::start();
    server
        .sql(&format!(
            "CREATE USER 'tls_only'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}' REQUIRE SSL"
        ))
        .expect("create the TLS-only account");

    // `require`: encrypted, certificate not checked.
    let mut up = upstream::connect(&server.settings(UpstreamTls::Require, None))
        .await
        .expect("login over TLS");
    assert!(up.is_tls());
    assert_ne!(up.server_capabilities & CLIENT_SSL, 0);
    let rows = query(
        &mut up,
        "SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS \
         WHERE VARIABLE_NAME = 'SSL_VERSION'",
    )
    .await;
    let version = rows[0][0].clone().unwrap_or_default();
    eprintln!("private server TLS version: {version}");
    assert!(version.starts_with("TLS"), "{version:?}");

    // `verify-full` with the CA that signed the certificate.
    let up = upstream::connect(&server.settings(UpstreamTls::VerifyFull, Some(&server.ca)))
        .await
        .expect("login with a verified certificate");
    assert!(up.is_tls());

    // `verify-full` with a CA that did not sign it.
    match upstream::connect(&server.settings(UpstreamTls::VerifyFull, Some(&server.other_ca))).await
    {
        Err(UpstreamError::Tls(message)) => eprintln!("untrusted certificate: {message}"),
        Err(other) => panic!("expected a TLS error, got: {other}"),
        Ok(_) => panic!("an untrusted certificate was accepted"),
    }

    // Without TLS the account refuses the login.
    let (code, _, _) =
        rejected(upstream::connect(&server.settings(UpstreamTls::Disable, None)).await);
    assert_eq!(code, 1045);
}
