//! TLS on both legs of the Postgres gateway, driven through the real binary.
//!
//! Client-facing: `[tls] cert/key/require` with real psql (libpq/OpenSSL)
//! in `sslmode=require` / `verify-full` / `disable`, and raw sockets for the
//! SSLRequest negotiation itself.
//!
//! Upstream: `postgres.upstream_tls` against a private PostgreSQL cluster
//! that each test starts with a server certificate from a test CA, so the
//! tests do not depend on how the machine's own server is configured.
//!
//! Every certificate is made here with rcgen: a test CA, a server
//! certificate it signs (SANs `localhost` and 127.0.0.1), and an unrelated
//! CA that must not be trusted for it.

mod support;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use support::gateway::{binary, write, Gateway, Options, AGENT, AGENT_PASSWORD};
use support::wire::{server_error, Wire};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// SSLRequest: length 8, code 1234.5679.
const SSL_REQUEST: [u8; 8] = [0x00, 0x00, 0x00, 0x08, 0x04, 0xd2, 0x16, 0x2f];

/// A well-formed protocol 3.0 StartupMessage for the agent.
const STARTUP_PACKET: &[u8] =
    b"\x00\x00\x00\x22\x00\x03\x00\x00user\x00agent\x00database\x00test\x00\x00";

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

// ---- certificates -----------------------------------------------------------

/// A CA and what it signs, as PEM files in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
    ca_cert: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
    /// The CA that signed the server certificate.
    ca: String,
    /// A CA that signed nothing here.
    other_ca: String,
    server_cert: String,
    server_key: String,
}

impl Pki {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let (ca_cert, ca_key) = make_ca("Airlock Test CA");
        let (other_ca, _) = make_ca("Unrelated Test CA");
        let (server_cert, server_key) = make_server(&["localhost", "127.0.0.1"], &ca_cert, &ca_key);
        Self {
            ca: write(dir.path(), "ca.pem", &ca_cert.pem()),
            other_ca: write(dir.path(), "other-ca.pem", &other_ca.pem()),
            server_cert: write(dir.path(), "server.pem", &server_cert),
            server_key: write(dir.path(), "server.key", &server_key),
            ca_cert,
            ca_key,
            dir,
        }
    }

    /// Another server certificate from the same CA, for other names;
    /// returns the paths of its certificate and key.
    fn server_for(&self, names: &[&str], label: &str) -> (String, String) {
        let (cert, key) = make_server(names, &self.ca_cert, &self.ca_key);
        (
            write(self.dir.path(), &format!("{label}.pem"), &cert),
            write(self.dir.path(), &format!("{label}.key"), &key),
        )
    }
}

fn make_ca(name: &str) -> (rcgen::Certificate, rcgen::KeyPair) {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert, key)
}

/// A server certificate for `names` (DNS names or IP addresses), signed by
/// the CA; returns (certificate PEM, private key PEM).
fn make_server(
    names: &[&str],
    ca: &rcgen::Certificate,
    ca_key: &rcgen::KeyPair,
) -> (String, String) {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let mut params = rcgen::CertificateParams::new(names.clone()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, names[0].as_str());
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, ca, ca_key).unwrap();
    (cert.pem(), key.serialize_pem())
}

// ---- psql with TLS settings --------------------------------------------------

struct Psql<'a> {
    host: &'a str,
    port: u16,
    sslmode: &'a str,
    rootcert: Option<&'a str>,
    /// Shows up as `application=` in the gateway's audit line.
    appname: &'a str,
}

impl Psql<'_> {
    /// Runs `\conninfo` and then `sql`, one `-c` each.
    fn run(&self, sql: &str) -> Output {
        let mut cmd = Command::new("psql");
        cmd.args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", self.host])
            .args(["-p", &self.port.to_string(), "-U", AGENT, "-d", "test"])
            .args(["-c", "\\conninfo", "-c", sql])
            .env("PGPASSWORD", AGENT_PASSWORD)
            .env("PGCONNECT_TIMEOUT", "10")
            .env("PGSSLMODE", self.sslmode)
            .env("PGGSSENCMODE", "disable")
            .env("PGAPPNAME", self.appname)
            // Nothing from the caller's environment or home may change what
            // libpq trusts.
            .env_remove("PGSSLCERT")
            .env_remove("PGSSLKEY")
            .env_remove("PGSERVICE");
        match self.rootcert {
            Some(path) => cmd.env("PGSSLROOTCERT", path),
            None => cmd.env("PGSSLROOTCERT", "/nonexistent/airlock-test-root.crt"),
        };
        cmd.output().expect("run psql")
    }
}

/// The audit log's "session start" line for the session with this
/// application name, waiting (bounded) for it to be written.
fn session_start_line(gateway: &Gateway, appname: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    let needle = format!("application=\"{appname}\"");
    loop {
        let log = gateway.stderr();
        if let Some(line) = log
            .lines()
            .find(|l| l.contains("session start") && l.contains(&needle))
        {
            return line.to_string();
        }
        if Instant::now() > deadline {
            panic!("no `session start` line for {appname} in the gateway log:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn tls_gateway(pki: &Pki, require: bool) -> Gateway {
    Gateway::start_with(Options {
        toml: format!(
            "[tls]\ncert = \"{}\"\nkey = \"{}\"\nrequire = {require}\n",
            pki.server_cert, pki.server_key
        ),
        ..Default::default()
    })
}

// ---- client-facing TLS ---------------------------------------------------------

#[test]
fn clients_can_use_tls_and_verify_the_gateway_certificate() {
    let pki = Pki::new();
    let gateway = tls_gateway(&pki, false);
    assert!(
        gateway.stdout.contains("client TLS: optional"),
        "{}",
        gateway.stdout
    );
    let port = gateway.port();

    // sslmode=require: encrypted, certificate not checked.
    let out = Psql {
        host: "127.0.0.1",
        port,
        sslmode: "require",
        rootcert: None,
        appname: "tls_require",
    }
    .run("SELECT 40 + 2");
    assert!(out.status.success(), "{}", stderr_of(&out));
    let stdout = stdout_of(&out);
    assert!(
        stdout.contains("SSL connection (protocol: TLSv1."),
        "{stdout}"
    );
    assert!(stdout.ends_with("\n42"), "{stdout}");
    let line = session_start_line(&gateway, "tls_require");
    assert!(line.contains("tls=true"), "{line}");
    assert!(line.contains("identity=agent"), "{line}");

    // verify-full: libpq checks the chain against the test CA and the name
    // `localhost` against the certificate's SANs.
    let out = Psql {
        host: "localhost",
        port,
        sslmode: "verify-full",
        rootcert: Some(&pki.ca),
        appname: "tls_verify_full",
    }
    .run("SELECT 'verified'");
    assert!(out.status.success(), "{}", stderr_of(&out));
    let stdout = stdout_of(&out);
    assert!(
        stdout.contains("SSL connection (protocol: TLSv1."),
        "{stdout}"
    );
    assert!(stdout.ends_with("\nverified"), "{stdout}");
    let line = session_start_line(&gateway, "tls_verify_full");
    assert!(line.contains("tls=true"), "{line}");

    // The IP SAN works for verify-full too.
    let out = Psql {
        host: "127.0.0.1",
        port,
        sslmode: "verify-full",
        rootcert: Some(&pki.ca),
        appname: "tls_verify_ip",
    }
    .run("SELECT 1");
    assert!(out.status.success(), "{}", stderr_of(&out));

    // A CA that did not sign the gateway's certificate is refused by libpq:
    // the check above is a real check.
    let out = Psql {
        host: "localhost",
        port,
        sslmode: "verify-full",
        rootcert: Some(&pki.other_ca),
        appname: "tls_wrong_ca",
    }
    .run("SELECT 1");
    assert!(!out.status.success(), "{}", stdout_of(&out));
    assert!(
        stderr_of(&out).contains("certificate verify failed"),
        "{}",
        stderr_of(&out)
    );

    // Plaintext is still accepted when TLS is not required.
    let out = Psql {
        host: "127.0.0.1",
        port,
        sslmode: "disable",
        rootcert: None,
        appname: "plain_client",
    }
    .run("SELECT 'plain'");
    assert!(out.status.success(), "{}", stderr_of(&out));
    let stdout = stdout_of(&out);
    assert!(!stdout.contains("SSL connection"), "{stdout}");
    assert!(stdout.ends_with("\nplain"), "{stdout}");
    let line = session_start_line(&gateway, "plain_client");
    assert!(line.contains("tls=false"), "{line}");
}

#[test]
fn require_true_refuses_plaintext_clients() {
    let pki = Pki::new();
    let gateway = tls_gateway(&pki, true);
    assert!(
        gateway.stdout.contains("client TLS: required"),
        "{}",
        gateway.stdout
    );
    let port = gateway.port();

    let out = Psql {
        host: "127.0.0.1",
        port,
        sslmode: "disable",
        rootcert: None,
        appname: "plain_refused",
    }
    .run("SELECT 1");
    assert!(!out.status.success(), "{}", stdout_of(&out));
    let err = stderr_of(&out);
    assert!(err.contains("requires TLS"), "{err}");
    assert!(
        !gateway.stderr().contains("application=plain_refused"),
        "a refused client must not get a session"
    );

    let out = Psql {
        host: "127.0.0.1",
        port,
        sslmode: "require",
        rootcert: None,
        appname: "tls_required",
    }
    .run("SELECT 'ok'");
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(stdout_of(&out).ends_with("\nok"), "{}", stdout_of(&out));
    assert!(session_start_line(&gateway, "tls_required").contains("tls=true"));

    // The raw protocol: a plaintext StartupMessage gets a FATAL 28000 and
    // the connection closes.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let err = Wire::connect(&gateway.addr, AGENT, AGENT_PASSWORD, "test", &[])
            .await
            .err()
            .expect("plaintext login must fail");
        let server = server_error(&err).expect("an ErrorResponse");
        assert_eq!(server.code(), "28000", "{server}");
        assert!(server.message().contains("requires TLS"), "{server}");
    });
}

#[tokio::test]
async fn garbage_instead_of_a_client_hello_closes_only_that_connection() {
    let pki = Pki::new();
    let gateway = tls_gateway(&pki, false);

    let mut stream = TcpStream::connect(&gateway.addr).await.unwrap();
    stream.write_all(&SSL_REQUEST).await.unwrap();
    let mut answer = [0u8; 1];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut answer))
        .await
        .expect("an answer to SSLRequest")
        .unwrap();
    assert_eq!(answer[0], b'S');

    // Plaintext where the ClientHello should be: a StartupMessage-looking
    // blob and some text.
    assert_eq!(STARTUP_PACKET[3] as usize, STARTUP_PACKET.len());
    let mut garbage = STARTUP_PACKET.to_vec();
    garbage.extend_from_slice(b"this is not a TLS ClientHello\r\n\r\n");
    stream.write_all(&garbage).await.unwrap();

    let mut rest = Vec::new();
    // A reset is as good as a clean close; what matters is that it ends.
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest))
        .await
        .expect("the gateway closes the connection");
    // Whatever came back is at most a TLS alert record (content type 21),
    // never a plaintext Postgres message.
    assert!(
        rest.is_empty() || rest[0] == 0x15,
        "unexpected reply to a bad handshake: {rest:?}"
    );
    assert!(
        !rest.windows(5).any(|w| w == b"SFATA"),
        "no plaintext error after 'S'"
    );

    // The same, pipelined: SSLRequest and a plaintext StartupMessage in one
    // write (the buffer-stuffing pattern of CVE-2021-23214). The bytes after
    // the SSLRequest must go to the TLS handshake, not be taken as a
    // startup packet.
    let mut stream = TcpStream::connect(&gateway.addr).await.unwrap();
    let mut stuffed = SSL_REQUEST.to_vec();
    stuffed.extend_from_slice(STARTUP_PACKET);
    stream.write_all(&stuffed).await.unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest))
        .await
        .expect("the gateway closes the connection");
    assert_eq!(rest.first(), Some(&b'S'), "{rest:?}");
    assert!(
        rest.len() == 1 || rest[1] == 0x15,
        "the stuffed startup packet was answered in plaintext: {rest:?}"
    );

    // The gateway keeps serving.
    let mut wire = Wire::connect(&gateway.addr, AGENT, AGENT_PASSWORD, "test", &[])
        .await
        .expect("login after a failed handshake");
    let rows = wire.simple_query("SELECT 7").await.unwrap();
    assert!(
        rows.iter()
            .any(|m| m.data_row() == Some(vec![Some(b"7".to_vec())])),
        "{rows:?}"
    );
    let out = Psql {
        host: "127.0.0.1",
        port: gateway.port(),
        sslmode: "require",
        rootcert: None,
        appname: "after_garbage",
    }
    .run("SELECT 1");
    assert!(out.status.success(), "{}", stderr_of(&out));
    wait_for_log(&gateway, "TLS handshake with client failed");
}

#[tokio::test]
async fn without_tls_ssl_request_gets_n_and_the_session_goes_on_in_plaintext() {
    let gateway = Gateway::start();
    assert!(
        gateway.stdout.contains("client TLS: off"),
        "{}",
        gateway.stdout
    );
    let mut stream = TcpStream::connect(&gateway.addr).await.unwrap();
    stream.write_all(&SSL_REQUEST).await.unwrap();
    let mut answer = [0u8; 1];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut answer))
        .await
        .expect("an answer to SSLRequest")
        .unwrap();
    assert_eq!(answer[0], b'N');
    // Exactly one byte: nothing else is waiting before the client speaks.
    let mut extra = [0u8; 16];
    match tokio::time::timeout(Duration::from_millis(300), stream.read(&mut extra)).await {
        Err(_) => {}
        Ok(r) => panic!("the gateway sent more than 'N': {r:?} {extra:?}"),
    }

    // Same socket, plaintext: a full SCRAM login and a query.
    let value = plaintext_login_and_query(&mut stream, "SELECT 'still plain'").await;
    assert_eq!(value, "still plain");
    let line = session_start_line(&gateway, "after_n");
    assert!(line.contains("tls=false"), "{line}");
}

/// Logs in as the agent on an already-open plaintext socket and returns the
/// single value `sql` yields.
async fn plaintext_login_and_query(stream: &mut TcpStream, sql: &str) -> String {
    use bytes::BytesMut;
    use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256, SCRAM_SHA_256};
    use postgres_protocol::message::frontend;

    let mut buf = BytesMut::new();
    frontend::startup_message(
        [
            ("user", AGENT),
            ("database", "test"),
            ("application_name", "after_n"),
        ],
        &mut buf,
    )
    .unwrap();
    stream.write_all(&buf).await.unwrap();
    let mut scram: Option<ScramSha256> = None;
    let mut value = None;
    let mut queried = false;
    loop {
        let (tag, body) = read_message(stream).await;
        let mut out = BytesMut::new();
        match tag {
            b'R' => {
                let code = i32::from_be_bytes(body[..4].try_into().unwrap());
                match code {
                    0 => {}
                    10 => {
                        let s = ScramSha256::new(
                            AGENT_PASSWORD.as_bytes(),
                            ChannelBinding::unsupported(),
                        );
                        frontend::sasl_initial_response(SCRAM_SHA_256, s.message(), &mut out)
                            .unwrap();
                        scram = Some(s);
                    }
                    11 => {
                        let s = scram.as_mut().expect("SASL started");
                        s.update(&body[4..]).unwrap();
                        frontend::sasl_response(s.message(), &mut out).unwrap();
                    }
                    12 => scram
                        .take()
                        .expect("SASL started")
                        .finish(&body[4..])
                        .unwrap(),
                    other => panic!("unexpected authentication request {other}"),
                }
            }
            b'E' => panic!("error: {}", String::from_utf8_lossy(&body)),
            b'D' => {
                // One column: count (2), length (4), value.
                let len = i32::from_be_bytes(body[2..6].try_into().unwrap()) as usize;
                value = Some(String::from_utf8(body[6..6 + len].to_vec()).unwrap());
            }
            b'Z' if !queried => {
                frontend::query(sql, &mut out).unwrap();
                queried = true;
            }
            b'Z' => break,
            _ => {}
        }
        if !out.is_empty() {
            stream.write_all(&out).await.unwrap();
        }
    }
    value.expect("a row")
}

async fn read_message(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    let work = async {
        let mut head = [0u8; 5];
        stream.read_exact(&mut head).await?;
        let len = u32::from_be_bytes(head[1..5].try_into().unwrap()) as usize;
        let mut body = vec![0u8; len - 4];
        stream.read_exact(&mut body).await?;
        Ok::<_, std::io::Error>((head[0], body))
    };
    tokio::time::timeout(Duration::from_secs(10), work)
        .await
        .expect("a message within 10 s")
        .expect("read a message")
}

#[test]
fn invalid_tls_files_are_reported_before_listening() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let not_pem = write(dir.path(), "not-a-cert.pem", "this is not PEM\n");

    // A certificate file without a certificate: serve stops with code 2.
    let config = write(
        dir.path(),
        "bad-cert.toml",
        &format!(
            "state_dir = \"{}\"\n[postgres]\nlisten = \"127.0.0.1:0\"\n[tls]\ncert = \"{not_pem}\"\nkey = \"{}\"\n",
            dir.path().join("var").display(),
            pki.server_key
        ),
    );
    let out = airlock(&["serve", "--config", &config]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains(&format!("error: tls: `{not_pem}` holds no PEM certificate")),
        "{}",
        stderr_of(&out)
    );
    assert!(
        !stdout_of(&out).contains("listening"),
        "{}",
        stdout_of(&out)
    );

    // A key file without a key: the same, naming the key file.
    let config = write(
        dir.path(),
        "bad-key.toml",
        &format!(
            "state_dir = \"{}\"\n[postgres]\nlisten = \"127.0.0.1:0\"\n[tls]\ncert = \"{}\"\nkey = \"{not_pem}\"\n",
            dir.path().join("var").display(),
            pki.server_cert
        ),
    );
    let out = airlock(&["serve", "--config", &config]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains(&format!("error: tls: `{not_pem}` holds no PEM private key")),
        "{}",
        stderr_of(&out)
    );

    // A certificate that does not match the key: rustls refuses the pair.
    let (_, other_key) = pki.server_for(&["localhost"], "mismatch");
    let config = write(
        dir.path(),
        "mismatch.toml",
        &format!(
            "state_dir = \"{}\"\n[postgres]\nlisten = \"127.0.0.1:0\"\n[tls]\ncert = \"{}\"\nkey = \"{other_key}\"\n",
            dir.path().join("var").display(),
            pki.server_cert
        ),
    );
    let out = airlock(&["serve", "--config", &config]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("error: tls: invalid TLS setup"),
        "{}",
        stderr_of(&out)
    );

    // A file that does not exist: config check names the key.
    let missing = dir.path().join("missing.pem");
    let config = write(
        dir.path(),
        "missing.toml",
        &format!(
            "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
            missing.display(),
            pki.server_key
        ),
    );
    let out = airlock(&["config", "check", &config]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains(&format!(
            "{config}: key `tls.cert`: file `{}` does not exist",
            missing.display()
        )),
        "{}",
        stderr_of(&out)
    );

    // And a good [tls] section passes the check and says so.
    let config = write(
        dir.path(),
        "good.toml",
        &format!(
            "[tls]\ncert = \"{}\"\nkey = \"{}\"\nrequire = true\n",
            pki.server_cert, pki.server_key
        ),
    );
    let out = airlock(&["config", "check", &config]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(stdout_of(&out).contains("tls on"), "{}", stdout_of(&out));
}

/// Runs the airlock binary with `args`, without the caller's AIRLOCK_* variables.
fn airlock(args: &[&str]) -> Output {
    let mut cmd = Command::new(binary());
    cmd.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("AIRLOCK_") {
            cmd.env_remove(k);
        }
    }
    cmd.output().expect("run airlock")
}

// ---- a private PostgreSQL cluster with TLS -----------------------------------------

/// A throwaway PostgreSQL cluster on an ephemeral port, stopped and removed
/// on drop.
struct Cluster {
    base: tempfile::TempDir,
    data: PathBuf,
    bin: PathBuf,
    port: u16,
}

/// The newest `/usr/lib/postgresql/<version>/bin` that has initdb.
fn pg_bin_dir() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries under /usr/lib/postgresql")
        .filter_map(Result::ok)
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .expect("no /usr/lib/postgresql/<version>/bin/initdb")
        .1
}

fn command_output(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        stderr_of(&out)
    );
    stdout_of(&out)
}

fn is_root() -> bool {
    command_output("id", &["-u"]) == "0"
}

/// Runs a PostgreSQL program as the `postgres` OS user (the server refuses
/// to run as root), or directly when not root.
fn as_postgres(program: &Path, args: &[OsString]) -> Output {
    let mut cmd = if !is_root() {
        let mut c = Command::new(program);
        c.args(args);
        c
    } else if Path::new("/usr/sbin/runuser").exists() || Path::new("/sbin/runuser").exists() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program).args(args);
        c
    } else {
        let quote =
            |s: &std::ffi::OsStr| format!("'{}'", s.to_string_lossy().replace('\'', "'\\''"));
        let line = std::iter::once(quote(program.as_os_str()))
            .chain(args.iter().map(|a| quote(a)))
            .collect::<Vec<_>>()
            .join(" ");
        let mut c = Command::new("su");
        c.args(["postgres", "-s", "/bin/sh", "-c", &line]);
        c
    };
    cmd.output().expect("run a PostgreSQL program")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

impl Cluster {
    /// `cert`: the server certificate and key to serve with `ssl = on`;
    /// `None` for a server with `ssl = off`.
    fn start(cert: Option<(&str, &str)>) -> Self {
        let bin = pg_bin_dir();
        let base = tempfile::tempdir().expect("temp dir");
        let data = base.path().join("data");
        let root = is_root();
        let ids = root.then(|| {
            (
                command_output("id", &["-u", "postgres"])
                    .parse::<u32>()
                    .unwrap(),
                command_output("id", &["-g", "postgres"])
                    .parse::<u32>()
                    .unwrap(),
            )
        });
        let chown = |p: &Path| {
            if let Some((uid, gid)) = ids {
                std::os::unix::fs::chown(p, Some(uid), Some(gid)).expect("chown to postgres");
            }
        };
        chown(base.path());

        let out = as_postgres(
            &bin.join("initdb"),
            &[
                os(&["-D"]),
                vec![data.clone().into_os_string()],
                os(&["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C"]),
                os(&["--no-sync", "--no-instructions"]),
            ]
            .concat(),
        );
        assert!(
            out.status.success(),
            "initdb: {}{}",
            stdout_of(&out),
            stderr_of(&out)
        );

        let mut conf = format!(
            "\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             shared_buffers = 16MB\nmax_connections = 20\nfsync = off\n",
            base.path().display()
        );
        if let Some((cert, key)) = cert {
            use std::os::unix::fs::PermissionsExt;
            let crt = data.join("server.crt");
            let k = data.join("server.key");
            std::fs::copy(cert, &crt).unwrap();
            std::fs::copy(key, &k).unwrap();
            std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o600)).unwrap();
            chown(&crt);
            chown(&k);
            conf.push_str("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        } else {
            conf.push_str("ssl = off\n");
        }
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .unwrap();
        std::io::Write::write_all(&mut file, conf.as_bytes()).unwrap();
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 trust\n",
        )
        .unwrap();

        // The port is picked by binding and releasing it; another process
        // could take it in between, so a failed start is retried.
        let log = base.path().join("server.log");
        let mut last = String::new();
        for _ in 0..3 {
            let port = free_port();
            let out = as_postgres(
                &bin.join("pg_ctl"),
                &[
                    os(&["-D"]),
                    vec![data.clone().into_os_string()],
                    os(&["-w", "-t", "30", "-l"]),
                    vec![log.clone().into_os_string()],
                    os(&["-o", &format!("-p {port}"), "start"]),
                ]
                .concat(),
            );
            if out.status.success() {
                return Self {
                    base,
                    data,
                    bin,
                    port,
                };
            }
            last = format!(
                "{}{}\n{}",
                stdout_of(&out),
                stderr_of(&out),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        panic!("the test PostgreSQL cluster did not start:\n{last}");
    }

    /// Runs SQL on the cluster directly over its Unix socket.
    fn psql(&self, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-U", "postgres"])
            .arg("-h")
            .arg(self.base.path())
            .args(["-p", &self.port.to_string(), "-d", "postgres", "-c", sql])
            .output()
            .expect("run psql");
        assert!(out.status.success(), "{sql}: {}", stderr_of(&out));
        stdout_of(&out)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = as_postgres(
            &self.bin.join("pg_ctl"),
            &[
                os(&["-D"]),
                vec![self.data.clone().into_os_string()],
                os(&["-m", "immediate", "-w", "stop"]),
            ]
            .concat(),
        );
    }
}

/// A gateway whose upstream is `cluster`, reached as `host`.
fn upstream_gateway(cluster: &Cluster, host: &str, tls: &str, ca: Option<&str>) -> Gateway {
    let mut toml = format!(
        "[postgres]\nlisten = \"127.0.0.1:0\"\nupstream = \"postgresql://postgres@{host}:{}/postgres\"\n\
         upstream_tls = \"{tls}\"\nconnect_timeout_secs = 5\n",
        cluster.port
    );
    if let Some(ca) = ca {
        toml.push_str(&format!("upstream_ca = \"{ca}\"\n"));
    }
    let gateway = Gateway::start_with(Options {
        toml,
        ..Default::default()
    });
    assert!(
        gateway.stdout.contains(&format!("upstream TLS: {tls})")),
        "{}",
        gateway.stdout
    );
    gateway
}

/// Whether the gateway's own upstream connection for this session is
/// encrypted, as the upstream server itself sees it.
async fn upstream_ssl_through(gateway: &Gateway) -> String {
    let mut wire = Wire::connect(&gateway.addr, AGENT, AGENT_PASSWORD, "postgres", &[])
        .await
        .unwrap_or_else(|e| panic!("login through airlock: {e}\n{}", gateway.stderr()));
    let rows = wire
        .simple_query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .await
        .unwrap();
    let values: Vec<_> = rows.iter().filter_map(|m| m.data_row()).collect();
    assert_eq!(values.len(), 1, "{rows:?}");
    let value = values[0][0].clone().expect("non-null");
    let _ = wire.terminate().await;
    String::from_utf8(value).unwrap()
}

async fn upstream_login_error(gateway: &Gateway) -> support::wire::ServerError {
    let started = Instant::now();
    let err = Wire::connect(&gateway.addr, AGENT, AGENT_PASSWORD, "postgres", &[])
        .await
        .err()
        .expect("login must fail");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the failure took {:?}",
        started.elapsed()
    );
    server_error(&err)
        .unwrap_or_else(|| panic!("an ErrorResponse, got {err}"))
        .clone()
}

/// Waits (bounded) for `needle` in the gateway's log.
fn wait_for_log(gateway: &Gateway, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = gateway.stderr();
        if let Some(line) = log.lines().find(|l| l.contains(needle)) {
            return line.to_string();
        }
        if Instant::now() > deadline {
            panic!("`{needle}` not in the gateway log:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn assert_no_upstream_details(error: &support::wire::ServerError, cluster: &Cluster) {
    let text = error.to_string();
    for secret in [
        cluster.port.to_string().as_str(),
        "localhost",
        "127.0.0.1",
        "certificate",
        "TLS",
        "UnknownIssuer",
        "postgres@",
    ] {
        assert!(
            !text.contains(secret),
            "`{secret}` leaked to the agent: {text}"
        );
    }
}

// ---- upstream TLS ------------------------------------------------------------------

#[tokio::test]
async fn upstream_tls_require_encrypts_the_upstream_leg() {
    let pki = Pki::new();
    let cluster = Cluster::start(Some((&pki.server_cert, &pki.server_key)));
    // The cluster itself accepts both, so encryption is Airlock's choice.
    assert_eq!(cluster.psql("SHOW ssl"), "on");
    let gateway = upstream_gateway(&cluster, "127.0.0.1", "require", None);
    assert_eq!(upstream_ssl_through(&gateway).await, "t");
    // The pooled connection is reused and still encrypted.
    assert_eq!(upstream_ssl_through(&gateway).await, "t");
    // From the server's side: every connection from the gateway is TLS.
    let seen = cluster.psql(
        "SELECT count(*) FILTER (WHERE NOT s.ssl), count(*) FROM pg_stat_ssl s \
         JOIN pg_stat_activity a USING (pid) WHERE a.client_addr IS NOT NULL",
    );
    let (plain, total) = seen.split_once('|').unwrap();
    assert_eq!(
        plain, "0",
        "plaintext TCP connections on the upstream: {seen}"
    );
    assert_ne!(
        total, "0",
        "the gateway's connection is visible upstream: {seen}"
    );
}

#[tokio::test]
async fn upstream_tls_verify_full_checks_the_chain_by_name_and_address() {
    let pki = Pki::new();
    let cluster = Cluster::start(Some((&pki.server_cert, &pki.server_key)));
    for host in ["localhost", "127.0.0.1"] {
        let gateway = upstream_gateway(&cluster, host, "verify-full", Some(&pki.ca));
        assert_eq!(upstream_ssl_through(&gateway).await, "t", "via {host}");
    }
}

#[tokio::test]
async fn upstream_tls_verify_full_rejects_an_untrusted_ca_without_telling_the_agent_why() {
    let pki = Pki::new();
    let cluster = Cluster::start(Some((&pki.server_cert, &pki.server_key)));
    let gateway = upstream_gateway(&cluster, "localhost", "verify-full", Some(&pki.other_ca));
    let error = upstream_login_error(&gateway).await;
    assert_eq!(error.code(), "08001", "{error}");
    assert_eq!(error.severity(), "FATAL", "{error}");
    assert_no_upstream_details(&error, &cluster);
    // The operator's log says what went wrong.
    let line = wait_for_log(&gateway, "TLS with the upstream server failed");
    assert!(line.contains("UnknownIssuer"), "{line}");
    // The upstream never saw a session from the gateway.
    assert_eq!(
        cluster.psql("SELECT count(*) FROM pg_stat_activity WHERE client_addr IS NOT NULL"),
        "0"
    );
}

#[tokio::test]
async fn upstream_tls_verify_full_rejects_a_certificate_for_another_name() {
    let pki = Pki::new();
    // Signed by a CA the gateway trusts, but for `db.example` only.
    let (cert, key) = pki.server_for(&["db.example"], "other-name");
    let cluster = Cluster::start(Some((&cert, &key)));
    let gateway = upstream_gateway(&cluster, "127.0.0.1", "verify-full", Some(&pki.ca));
    let error = upstream_login_error(&gateway).await;
    assert_eq!(error.code(), "08001", "{error}");
    assert_no_upstream_details(&error, &cluster);
    let line = wait_for_log(&gateway, "TLS with the upstream server failed");
    assert!(line.contains("certificate not valid for name"), "{line}");
    // The server itself is fine: `require`, which skips the certificate
    // checks, gets through, so the refusal above was about the name.
    let gateway = upstream_gateway(&cluster, "127.0.0.1", "require", None);
    assert_eq!(upstream_ssl_through(&gateway).await, "t");
}

#[tokio::test]
async fn upstream_tls_disable_stays_plaintext() {
    let pki = Pki::new();
    let cluster = Cluster::start(Some((&pki.server_cert, &pki.server_key)));
    let gateway = upstream_gateway(&cluster, "127.0.0.1", "disable", None);
    assert_eq!(upstream_ssl_through(&gateway).await, "f");
}

#[tokio::test]
async fn upstream_tls_require_fails_against_a_server_without_tls() {
    let cluster = Cluster::start(None);
    assert_eq!(cluster.psql("SHOW ssl"), "off");
    let gateway = upstream_gateway(&cluster, "127.0.0.1", "require", None);
    let error = upstream_login_error(&gateway).await;
    assert_eq!(error.code(), "08001", "{error}");
    assert_no_upstream_details(&error, &cluster);
    wait_for_log(&gateway, "the server does not accept TLS connections");
    // Without TLS the same server is reachable: the failure was the TLS demand.
    let gateway = upstream_gateway(&cluster, "127.0.0.1", "disable", None);
    assert_eq!(upstream_ssl_through(&gateway).await, "f");
}

#[test]
fn upstream_tls_settings_are_validated() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();

    let config = write(
        dir.path(),
        "no-ca.toml",
        "[postgres]\nupstream_tls = \"verify-full\"\n",
    );
    let out = airlock(&["config", "check", &config]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains(&format!(
            "{config}: key `postgres.upstream_tls`: verify-full needs postgres.upstream_ca"
        )),
        "{}",
        stderr_of(&out)
    );

    let config = write(
        dir.path(),
        "bad-mode.toml",
        "[postgres]\nupstream_tls = \"verify-ca\"\n",
    );
    let out = airlock(&["config", "check", &config]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("key `postgres.upstream_tls`: unknown variant `verify-ca`"),
        "{}",
        stderr_of(&out)
    );

    let missing = dir.path().join("missing-ca.pem");
    let config = write(
        dir.path(),
        "missing-ca.toml",
        &format!(
            "[postgres]\nupstream_tls = \"verify-full\"\nupstream_ca = \"{}\"\n",
            missing.display()
        ),
    );
    let out = airlock(&["config", "check", &config]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("key `postgres.upstream_ca`: file"),
        "{}",
        stderr_of(&out)
    );

    // A CA file that holds no certificate stops `serve` before it listens.
    let not_pem = write(dir.path(), "not-a-ca.pem", "nothing here\n");
    let config = write(
        dir.path(),
        "bad-ca.toml",
        &format!(
            "state_dir = \"{}\"\n[postgres]\nlisten = \"127.0.0.1:0\"\nupstream_tls = \"verify-full\"\nupstream_ca = \"{not_pem}\"\n",
            dir.path().join("var").display()
        ),
    );
    let out = airlock(&["serve", "--config", &config]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains(&format!(
            "error: postgres.upstream_ca: `{not_pem}` holds no PEM certificate"
        )),
        "{}",
        stderr_of(&out)
    );

    let config = write(
        dir.path(),
        "good.toml",
        &format!(
            "[postgres]\nupstream_tls = \"verify-full\"\nupstream_ca = \"{}\"\n",
            pki.ca
        ),
    );
    let out = airlock(&["config", "check", &config]);
    assert!(out.status.success(), "{}", stderr_of(&out));
}
