//! The audit log as the real gateway writes it, against the real server:
//!
//! * each kind of tampering, done to a log the gateway wrote, is named by
//!   `airlock audit verify` with its exit code — with only the pinned
//!   public key — and by the independent Python verifier
//!   (`tools/audit_verify.py`) with the same verdict;
//! * a new signing key is followed when the old one introduced it, and a
//!   forged introduction is refused;
//! * `audit sessions`, `replay` and `export` tell what happened, and an
//!   export verifies on its own;
//! * `kill -9` under load, then a restart: the torn end is repaired, the log
//!   verifies, and every statement PostgreSQL's own log shows as received
//!   has its `statement` record;
//! * values from the masking corpus sent in statements, returned in rows
//!   (captured) and quoted in errors never appear in the log in clear;
//! * a full disk (a small tmpfs in a private mount namespace) makes the
//!   gateway refuse statements with SQLSTATE 53100 until space returns.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use airlock::audit::chain;
use serde_json::{Map, Value};
use support::corpus::{load_corpus, Cell};
use support::gateway::{
    default_policy, psql_direct, psql_through, Gateway, Options, TestDb, AGENT, AGENT_PASSWORD,
};
use support::wire::Frontend;

/// A gateway whose audit log rotates and checkpoints often, so that a few
/// statements exercise segments and signatures.
fn audited(extra: &str, policy: Option<String>) -> Gateway {
    Gateway::start_with(Options {
        toml: format!(
            "[audit]\nsegment_bytes = 4096\ncheckpoint_every = 5\ncapture_rows = 2\n{extra}"
        ),
        policy,
        ..Default::default()
    })
}

fn audit_dir(dir: &Path) -> PathBuf {
    dir.join("var/audit")
}

/// The checkpoint public key the gateway printed at start.
fn public_key(gateway: &Gateway) -> String {
    gateway
        .stdout
        .lines()
        .find_map(|l| l.split("checkpoints signed by ").nth(1))
        .expect("the public key line")
        .trim()
        .to_string()
}

fn airlock(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(support::gateway::binary())
        .args(args)
        .output()
        .expect("run airlock");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The independent verifier, in Python.
fn python_verifier(args: &[&str]) -> (i32, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/audit_verify.py");
    let out = Command::new("python3")
        .arg(script)
        .args(args)
        .output()
        .expect("run python3");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// Where a verifier says the log broke: the line and seq it names.
fn broken_at(text: &str) -> Option<String> {
    let rest = text.split("BROKEN at ").nth(1)?;
    let at = rest.rfind(" line ")?;
    let after = &rest[at..];
    Some(after[..after.find(':')?].to_string())
}

/// Both verifiers on the same target must reach the same verdict: the
/// exit code, and the line and seq of a break. Returns Rust's.
fn both(rust: &[&str], python: &[&str]) -> (i32, String) {
    let (code, out, err) = airlock(rust);
    let text = out + &err;
    let (py_code, py_text) = python_verifier(python);
    assert_eq!(
        (code, broken_at(&text)),
        (py_code, broken_at(&py_text)),
        "the verifiers disagree:\n--- airlock\n{text}\n--- python\n{py_text}"
    );
    (code, text)
}

/// `airlock audit verify` (and the Python verifier) with the pinned key.
fn verify(dir: &Path, pubkey: Option<&str>) -> (i32, String) {
    let d = dir.to_str().unwrap();
    let mut rust = vec!["audit", "verify", "--dir", d];
    let mut python = vec![d];
    if let Some(p) = pubkey {
        rust.extend(["--pubkey", p]);
        python.extend(["--pubkey", p]);
    }
    both(&rust, &python)
}

/// `airlock audit verify-export` (and the Python verifier) on an export.
fn verify_export(file: &Path, pubkey: &str) -> (i32, String) {
    let f = file.to_str().unwrap();
    both(
        &["audit", "verify-export", f, "--pubkey", pubkey],
        &["--export", f, "--pubkey", pubkey],
    )
}

/// Rewrites the log from line `from` (counted over all segments, from 0)
/// with `change` applied to that record, recomputing every hash after it —
/// which anyone can do — and returns the line numbers rewritten.
fn forge(dir: &Path, from: usize, change: &dyn Fn(&mut Map<String, Value>)) {
    let mut prev: Option<chain::Hash> = None;
    let mut index = 0;
    for (path, mut lines) in segment_lines(dir) {
        for line in lines.iter_mut() {
            if index >= from {
                let mut r: Map<String, Value> = serde_json::from_str(line).unwrap();
                if index == from {
                    change(&mut r);
                }
                if let Some(p) = prev {
                    r.insert("prev".into(), Value::from(chain::hex(&p)));
                }
                r.remove("hash");
                let p = chain::unhex::<32>(r["prev"].as_str().unwrap()).unwrap();
                let (sealed, hash) = chain::seal(&p, &mut r);
                *line = String::from_utf8(sealed).unwrap();
                prev = Some(hash);
            }
            index += 1;
        }
        rewrite(&path, &lines);
    }
}

/// The index (over all segments) of the first line containing `needle`.
fn line_index(dir: &Path, needle: &str) -> usize {
    segment_lines(dir)
        .into_iter()
        .flat_map(|(_, l)| l)
        .position(|l| l.contains(needle))
        .expect("the line")
}

fn sign(key: &ed25519_dalek::SigningKey, domain: &[u8], r: &mut Map<String, Value>) {
    use ed25519_dalek::Signer;
    let signature = key.sign(&chain::signed_message(domain, r));
    r.insert(
        "signature".into(),
        Value::from(chain::hex(&signature.to_bytes())),
    );
}

fn psql_ok(gateway: &Gateway, database: &str, sql: &[&str]) -> String {
    let mut args = Vec::new();
    for s in sql {
        args.extend(["-c", *s]);
    }
    let out = psql_through(&gateway.addr, AGENT, AGENT_PASSWORD, database, &args);
    assert!(
        out.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every record in the log, in order.
fn records(dir: &Path) -> Vec<Map<String, Value>> {
    let mut all = Vec::new();
    airlock::audit::read::for_each(dir, |_, r| {
        all.push(r.clone());
        true
    })
    .expect("read the log");
    all
}

fn segment_lines(dir: &Path) -> Vec<(PathBuf, Vec<String>)> {
    airlock::audit::layout::segments(dir)
        .unwrap()
        .into_iter()
        .map(|(_, p)| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text.lines().map(str::to_string).collect())
        })
        .collect()
}

fn rewrite(path: &Path, lines: &[String]) {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(path, text).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn each_kind_of_tampering_with_a_gateway_written_log_is_named() {
    let db = TestDb::create("audit_tamper");
    let gateway = audited("", None);
    let pubkey = public_key(&gateway);
    psql_ok(&gateway, &db.name, &["CREATE TABLE t (n int, note text)"]);
    for i in 0..12 {
        psql_ok(
            &gateway,
            &db.name,
            &[
                &format!("INSERT INTO t VALUES ({i}, 'row {i}')"),
                "SELECT n, note FROM t ORDER BY n",
            ],
        );
    }
    let dir = gateway.stop();
    let log = audit_dir(dir.path());
    // No secret is kept for the chain any more: the public key is enough.
    assert!(!dir.path().join("var/audit-chain-key").exists());
    let (code, text) = verify(&log, Some(&pubkey));
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("OK"), "{text}");
    assert!(
        text.contains(&format!("key {pubkey}: pinned by --pubkey")),
        "{text}"
    );
    assert!(text.contains("sessions proved complete"), "{text}");
    let segments = segment_lines(&log);
    assert!(segments.len() >= 3, "rotated by size: {}", segments.len());

    let scratch = tempfile::tempdir().unwrap();
    let mut n = 0;
    let mut tampered = |change: &dyn Fn(&Path)| -> (i32, String) {
        n += 1;
        let copy = scratch.path().join(format!("copy{n}"));
        copy_dir(&log, &copy);
        change(&copy);
        verify(&copy, Some(&pubkey))
    };
    let first = |dir: &Path| segment_lines(dir).remove(0);
    let middle = |dir: &Path| segment_lines(dir).remove(1);

    // Edited: one statement's text changed in place. Records reach the
    // segments a batch at a time, so which segment holds a statement
    // depends on timing: the first that holds one.
    let (code, text) = tampered(&|d| {
        let (path, mut lines) = segment_lines(d)
            .into_iter()
            .find(|(_, lines)| lines.iter().any(|l| l.contains("INSERT INTO t VALUES (")))
            .expect("a segment with a statement");
        let i = lines
            .iter()
            .position(|l| l.contains("INSERT INTO t VALUES ("))
            .unwrap();
        lines[i] = lines[i].replacen("INSERT INTO t VALUES (", "INSERT INTO t VALUES (9", 1);
        rewrite(&path, &lines);
    });
    assert_eq!(code, 10, "{text}");
    assert!(text.contains("edited"), "{text}");

    // Deleted: a record taken out of the middle, and a whole segment.
    let (code, text) = tampered(&|d| {
        let (path, mut lines) = middle(d);
        lines.remove(2);
        rewrite(&path, &lines);
    });
    assert_eq!(code, 11, "{text}");
    assert!(text.contains("deleted"), "{text}");
    let (code, text) = tampered(&|d| {
        std::fs::remove_file(middle(d).0).unwrap();
    });
    assert_eq!(code, 11, "{text}");

    // Inserted: a genuine record copied in again.
    let (code, text) = tampered(&|d| {
        let (path, mut lines) = first(d);
        let copy = lines[1].clone();
        lines.insert(3, copy);
        rewrite(&path, &lines);
    });
    assert_eq!(code, 12, "{text}");
    assert!(text.contains("inserted"), "{text}");

    // Reordered: two records swapped.
    let (code, text) = tampered(&|d| {
        let (path, mut lines) = middle(d);
        lines.swap(1, 2);
        rewrite(&path, &lines);
    });
    assert_eq!(code, 13, "{text}");
    assert!(text.contains("reordered"), "{text}");

    // Truncated: the end, with the final checkpoint, cut off.
    let (code, text) = tampered(&|d| {
        let (path, mut lines) = segment_lines(d).pop().unwrap();
        lines.truncate(lines.len().saturating_sub(3));
        rewrite(&path, &lines);
    });
    assert_eq!(code, 14, "{text}");
    assert!(text.contains("truncated"), "{text}");

    // A signature that does not verify with the key given.
    let other = airlock::hex::encode(
        ed25519_dalek::SigningKey::from_bytes(&[2; 32])
            .verifying_key()
            .as_bytes(),
    );
    let (code, text) = verify(&log, Some(&other));
    assert_eq!(code, 16, "{text}");

    // No trusted key: nothing is vouched for, and the exit code says so.
    let (code, text) = verify(&log, None);
    assert_eq!(code, 20, "{text}");
    assert!(text.contains("NOT VOUCHED FOR"), "{text}");
    let (code, text, _) = airlock(&[
        "audit",
        "verify",
        "--dir",
        log.to_str().unwrap(),
        "--self-check",
    ]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("self-check only"), "{text}");

    // Hashes are public: an edit with every hash after it recomputed links
    // cleanly, and the next checkpoint's signature gives it away.
    let (code, text) = tampered(&|d| {
        let at = line_index(d, "INSERT INTO t VALUES (3");
        forge(d, at, &|r| {
            r.insert("sql".into(), Value::from("SELECT 'nothing to see'"));
        });
    });
    assert_eq!(code, 16, "{text}");

    // A forged checkpoint: re-signed by a key of the forger's own.
    let (code, text) = tampered(&|d| {
        let at = line_index(d, "\"checkpoint\"");
        forge(d, at, &|r| {
            let forger = ed25519_dalek::SigningKey::from_bytes(&[66; 32]);
            r.insert(
                "public_key".into(),
                Value::from(chain::hex(forger.verifying_key().as_bytes())),
            );
            sign(&forger, chain::CHECKPOINT_DOMAIN, r);
        });
    });
    assert_eq!(code, 16, "{text}");

    // A truncation dressed as a clean shutdown: cut after a checkpoint
    // and mark it final. The signature covers `final`.
    let (code, text) = tampered(&|d| {
        let at = line_index(d, "\"checkpoint\"");
        let mut index = 0;
        for (path, lines) in segment_lines(d) {
            let keep: Vec<String> = lines
                .into_iter()
                .filter(|_| {
                    index += 1;
                    index <= at + 1
                })
                .collect();
            if keep.is_empty() {
                std::fs::remove_file(&path).unwrap();
            } else {
                rewrite(&path, &keep);
            }
        }
        forge(d, at, &|r| {
            r.insert("final".into(), Value::from(true));
        });
    });
    assert_eq!(code, 16, "{text}");
}

#[test]
fn a_new_signing_key_is_followed_from_the_pinned_one_and_a_forged_one_refused() {
    let db = TestDb::create("audit_rotate");
    let gateway = audited("", None);
    let old_public = public_key(&gateway);
    psql_ok(
        &gateway,
        &db.name,
        &["CREATE TABLE t (n int)", "INSERT INTO t VALUES (1)"],
    );
    let dir = gateway.stop();
    // The operator replaces the signing key, keeping the old one to
    // introduce the new.
    let key = dir.path().join("var/audit-signing-key");
    let old = dir.path().join("old-signing-key");
    std::fs::rename(&key, &old).unwrap();
    let config = dir.path().join("airlock.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let with_new = text.replacen(
        "[audit]\n",
        &format!(
            "[audit]\nprevious_signing_key_file = \"{}\"\n",
            old.display()
        ),
        1,
    );
    std::fs::write(&config, &with_new).unwrap();
    let gateway = Gateway::spawn(dir, &["serve", "--config", config.to_str().unwrap()], &[]);
    let new_public = public_key(&gateway);
    assert_ne!(new_public, old_public);
    psql_ok(
        &gateway,
        &db.name,
        &["INSERT INTO t VALUES (2)", "SELECT * FROM t"],
    );
    let dir = gateway.stop();
    let log = audit_dir(dir.path());

    let (code, text) = verify(&log, Some(&old_public));
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("1 key rotation"), "{text}");
    assert!(
        text.contains(&format!(
            "key {new_public}: introduced by the rotation at seq"
        )),
        "{text}"
    );
    // The new key alone is not the log's pinned start.
    let (code, text) = verify(&log, Some(&new_public));
    assert_eq!(code, 16, "{text}");

    // The pinned key from the auditor's configuration, never from the log.
    let auditor = dir.path().join("auditor.toml");
    std::fs::write(
        &auditor,
        format!("[audit]\npublic_key = \"{old_public}\"\n"),
    )
    .unwrap();
    let (code, out, err) = airlock(&[
        "audit",
        "verify",
        "--dir",
        log.to_str().unwrap(),
        "--config",
        auditor.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("pinned by audit.public_key in"), "{out}");

    // A rotation to a forger's key, signed by the forger.
    let copy = dir.path().join("forged");
    copy_dir(&log, &copy);
    let at = line_index(&copy, "key_rotation");
    forge(&copy, at, &|r| {
        let forger = ed25519_dalek::SigningKey::from_bytes(&[66; 32]);
        r.insert(
            "new_public_key".into(),
            Value::from(chain::hex(forger.verifying_key().as_bytes())),
        );
        sign(&forger, chain::ROTATION_DOMAIN, r);
    });
    let (code, text) = verify(&copy, Some(&old_public));
    assert_eq!(code, 18, "{text}");
    assert!(text.contains("bad rotation"), "{text}");

    // A new key nobody introduced: the gateway refuses to start on the log.
    std::fs::write(&config, text_without_previous(&with_new)).unwrap();
    std::fs::remove_file(dir.path().join("var/audit-signing-key")).unwrap();
    let out = Command::new(support::gateway::binary())
        .args(["serve", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("previous_signing_key_file"), "{err}");
}

fn text_without_previous(config: &str) -> String {
    config
        .lines()
        .filter(|l| !l.starts_with("previous_signing_key_file"))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn replay_shows_agent_supplied_control_characters_escaped() {
    let db = TestDb::create("audit_escape");
    let gateway = audited("", None);
    let sql = "SELECT 1 AS \"a\u{1b}[2J\u{1b}]0;owned\u{7}\", 'x\rDROP TABLE users\u{9b}31m \u{202e}cod.exe'";
    let out = Command::new("psql")
        .args(["-X", "-h", gateway.addr.rsplit_once(':').unwrap().0])
        .args([
            "-p",
            gateway.addr.rsplit_once(':').unwrap().1,
            "-U",
            AGENT,
            "-d",
            &db.name,
        ])
        .args(["-c", sql])
        .env("PGPASSWORD", AGENT_PASSWORD)
        .env("PGAPPNAME", "agent\u{1b}[1A\u{1b}[2K")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = gateway.stop();
    let log = audit_dir(dir.path());
    let session = records(&log)
        .iter()
        .find(|r| {
            r["kind"] == "statement" && r["sql"].as_str().is_some_and(|s| s.contains("owned"))
        })
        .map(|r| r["session"].as_str().unwrap().to_string())
        .expect("the statement's record");
    let log_arg = log.to_str().unwrap();
    let (code, out, err) = airlock(&["audit", "replay", "--dir", log_arg, "--session", &session]);
    assert_eq!(code, 0, "{err}");
    for bad in ['\u{1b}', '\r', '\u{7}', '\u{9b}', '\u{202e}'] {
        assert!(
            !out.contains(bad),
            "{bad:?} reaches the terminal raw: {out:?}"
        );
    }
    assert!(out.contains(r"a\x1b[2J\x1b]0;owned\x07"), "{out}");
    assert!(
        out.contains(r"x\rDROP TABLE users\x9b31m \u{202e}cod.exe"),
        "{out}"
    );
    assert!(out.contains(r"via agent\x1b[1A\x1b[2K"), "{out}");
    let (code, out, _) = airlock(&["audit", "sessions", "--dir", log_arg]);
    assert_eq!(code, 0);
    assert!(!out.contains('\u{1b}'), "{out:?}");
    assert!(out.contains(r"via agent\x1b[1A\x1b[2K"), "{out}");
}

/// Results are recorded once the client has been answered, so the results
/// of statements still finishing when a session ends are recorded as it
/// ends: each after its statement, all before the session's end.
#[tokio::test]
async fn results_of_statements_pipelined_up_to_terminate_are_all_recorded_before_the_end() {
    const QUERIES: usize = 40;
    let db = TestDb::create("audit_pipelined");
    psql_direct(
        &db.name,
        "CREATE TABLE people (id int, email text); \
         INSERT INTO people VALUES (1, 'ana.lima@example.com')",
    );
    let gateway = audited("", None);
    let mut wire = gateway.agent_session(&db.name).await;
    let mut batch: Vec<Frontend> = (0..QUERIES)
        .map(|i| Frontend::query(&format!("SELECT id, email, {i} AS n FROM people")))
        .collect();
    batch.push(Frontend::Terminate);
    wire.send_all(&batch).await.expect("send the batch");
    let mut ready = 0;
    while let Some(msg) = wire.recv_or_eof().await.expect("read the answers") {
        ready += usize::from(msg.ready_status().is_some());
    }
    assert_eq!(ready, QUERIES, "every query was answered");

    let dir = gateway.stop();
    let all = records(&audit_dir(dir.path()));
    let session = all
        .iter()
        .find(|r| r["kind"] == "session_start" && r["identity"] == AGENT)
        .and_then(|r| r["session"].as_str())
        .expect("the session's start")
        .to_string();
    let kinds: Vec<&str> = all
        .iter()
        .filter(|r| r.get("session").and_then(Value::as_str) == Some(session.as_str()))
        .map(|r| r["kind"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(kinds.first(), Some(&"session_start"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"session_end"), "{kinds:?}");
    assert_eq!(
        kinds.iter().filter(|k| **k == "statement").count(),
        QUERIES,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "result").count(),
        QUERIES,
        "{kinds:?}"
    );
    // The n-th result never comes before the n-th statement.
    let (mut statements, mut results) = (0, 0);
    for kind in &kinds {
        match *kind {
            "statement" => statements += 1,
            "result" => {
                results += 1;
                assert!(
                    results <= statements,
                    "a result before its statement: {kinds:?}"
                );
            }
            _ => {}
        }
    }
    for r in all
        .iter()
        .filter(|r| r["kind"] == "result" && r["session"] == session.as_str())
    {
        assert_eq!(r["tag"], "SELECT 1", "{r:?}");
        assert_eq!(r["rows"], 1, "{r:?}");
    }
}

#[test]
fn sessions_replay_and_export_tell_what_happened() {
    let db = TestDb::create("audit_tools");
    psql_direct(
        &db.name,
        "CREATE TABLE people (id int, email text); \
         INSERT INTO people VALUES (1, 'ana.lima@example.com'), (2, 'joe@example.org'), (3, 'x')",
    );
    let gateway = audited("", Some(default_policy()));
    psql_ok(
        &gateway,
        &db.name,
        &["SELECT id, email FROM people ORDER BY id"],
    );
    // Held by the default policy (DDL), then an error from the server.
    let out = psql_through(
        &gateway.addr,
        AGENT,
        AGENT_PASSWORD,
        &db.name,
        &[
            "-v",
            "ON_ERROR_STOP=0",
            "-c",
            "DROP TABLE people",
            "-c",
            "SELECT * FROM missing_table",
        ],
    );
    assert!(!String::from_utf8_lossy(&out.stderr).is_empty());
    let pubkey = public_key(&gateway);
    let dir = gateway.stop();
    let log = audit_dir(dir.path());
    let log_arg = log.to_str().unwrap();
    // The signing key was created on first start, readable by the owner only.
    {
        use std::os::unix::fs::PermissionsExt;
        let name = "var/audit-signing-key";
        let mode = std::fs::metadata(dir.path().join(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name}");
    }

    let (code, out, err) = airlock(&["audit", "sessions", "--dir", log_arg]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].contains("agent (agent)") && lines[0].contains("1 statements (1 allow)"),
        "{out}"
    );
    assert!(lines[0].contains("3 rows, 2 masked"), "{out}");
    assert!(
        lines[1].contains("1 hold") && lines[1].contains("1 errors"),
        "{out}"
    );
    let held_session = lines[1].split_whitespace().next().unwrap().to_string();

    let (_, out, _) = airlock(&["audit", "sessions", "--dir", log_arg, "--verdict", "hold"]);
    assert_eq!(out.lines().count(), 1, "{out}");
    let (_, out, _) = airlock(&[
        "audit",
        "sessions",
        "--dir",
        log_arg,
        "--identity",
        "nobody",
    ]);
    assert_eq!(out.lines().count(), 0, "{out}");
    let (_, out, _) = airlock(&["audit", "sessions", "--dir", log_arg, "--since", "1h"]);
    assert_eq!(out.lines().count(), 2, "{out}");
    let (_, out, _) = airlock(&[
        "audit",
        "sessions",
        "--dir",
        log_arg,
        "--until",
        "2000-01-01",
    ]);
    assert_eq!(out.lines().count(), 0, "{out}");
    let (code, _, err) = airlock(&["audit", "sessions", "--dir", log_arg, "--since", "soon"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--since") && err.contains("not a time"),
        "{err}"
    );

    // The first session's replay: the rows as the agent saw them (masked).
    let first_session = records(&log)
        .iter()
        .find(|r| r["kind"] == "session_start")
        .map(|r| r["session"].as_str().unwrap().to_string())
        .unwrap();
    let (code, out, err) = airlock(&[
        "audit",
        "replay",
        "--dir",
        log_arg,
        "--session",
        &first_session,
        "--pubkey",
        &pubkey,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("chain verified"), "{out}");
    assert!(out.contains("connected: agent (role agent)"), "{out}");
    assert!(
        out.contains("SELECT id, email FROM people ORDER BY id"),
        "{out}"
    );
    assert!(out.contains("result SELECT 3: 3 rows"), "{out}");
    assert!(out.contains("| 1 | <EMAIL> |"), "{out}");
    assert!(!out.contains("example.com"), "{out}");
    assert!(out.contains("disconnected: client terminated"), "{out}");

    let (code, out, _) = airlock(&[
        "audit",
        "replay",
        "--dir",
        log_arg,
        "--session",
        &held_session,
    ]);
    assert_eq!(code, 0);
    assert!(
        out.contains("held for approval (rule hold-for-dba)"),
        "{out}"
    );
    assert!(out.contains("error 42P01"), "{out}");

    let (code, out, _) = airlock(&[
        "audit",
        "replay",
        "--dir",
        log_arg,
        "--session",
        &held_session,
        "--json",
    ]);
    assert_eq!(code, 0);
    for line in out.lines() {
        let r: Map<String, Value> = serde_json::from_str(line).unwrap();
        assert_eq!(r["session"], Value::from(held_session.as_str()));
        assert!(r.contains_key("hash") && r.contains_key("prev"));
    }
    let (code, _, err) = airlock(&["audit", "replay", "--dir", log_arg, "--session", "s-none"]);
    assert_eq!(code, 2);
    assert!(err.contains("no session `s-none`"), "{err}");

    // An export from the second session on: an unbroken stretch of the
    // chain that the receiver verifies with the chain key and public key.
    let since = records(&log)
        .iter()
        .find(|r| r.get("session").and_then(Value::as_str) == Some(held_session.as_str()))
        .map(|r| r["ts"].as_str().unwrap().to_string())
        .unwrap();
    let (code, out, err) = airlock(&["audit", "export", "--dir", log_arg, "--since", &since]);
    assert_eq!(code, 0, "{err}");
    let exported: Vec<Map<String, Value>> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(exported.len() >= 5, "{out}");
    assert!(exported
        .iter()
        .all(|r| r["ts"].as_str().unwrap() >= since.as_str()));
    // The receiver verifies it with the public key alone, with either
    // verifier; the held session is in it whole and proved complete.
    let file = dir.path().join("export.jsonl");
    std::fs::write(&file, &out).unwrap();
    let (code, text) = verify_export(&file, &pubkey);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("1 sessions proved complete"), "{text}");
    assert_eq!(exported.last().unwrap()["kind"], "checkpoint", "{out}");
    // An export edited, cut before its checkpoint, or without a key.
    let lines: Vec<String> = out.lines().map(str::to_string).collect();
    let mut edited = lines.clone();
    let i = edited
        .iter()
        .position(|l| l.contains("DROP TABLE"))
        .unwrap();
    edited[i] = edited[i].replace("DROP TABLE people", "SELECT 1");
    rewrite(&file, &edited);
    let (code, text) = verify_export(&file, &pubkey);
    assert_eq!(code, 10, "{text}");
    rewrite(&file, &lines[..lines.len() - 1]);
    let (code, text) = verify_export(&file, &pubkey);
    assert_eq!(code, 20, "{text}");
    assert!(text.contains("covered by no checkpoint"), "{text}");
}

/// Where PostgreSQL writes its log: the collector's file, or the file the
/// Debian cluster wrapper sends the server's stderr to.
fn postgres_log() -> PathBuf {
    let current = psql_direct("test", "SELECT coalesce(pg_current_logfile(), '')");
    if !current.is_empty() {
        let data = psql_direct("test", "SHOW data_directory");
        let path = Path::new(&current);
        return if path.is_absolute() {
            path.to_path_buf()
        } else {
            Path::new(&data).join(path)
        };
    }
    let mut logs: Vec<PathBuf> = std::fs::read_dir("/var/log/postgresql")
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "log"))
                .collect()
        })
        .unwrap_or_default();
    logs.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    logs.pop()
        .expect("PostgreSQL's log: no log collector and nothing in /var/log/postgresql")
}

#[test]
fn kill_9_under_load_then_restart_verifies_and_every_executed_statement_is_recorded() {
    let db = TestDb::create("audit_crash");
    psql_direct(&db.name, "CREATE TABLE crash (n int PRIMARY KEY, tag text)");
    // PostgreSQL logs every statement this database receives.
    psql_direct(
        "test",
        &format!("ALTER DATABASE {} SET log_statement = 'all'", db.name),
    );
    let tag = db.name.clone();
    let pg_log = postgres_log();
    let log_start = std::fs::metadata(&pg_log).map(|m| m.len()).unwrap_or(0);

    let gateway = audited("", None);
    let (host, port) = gateway.addr.rsplit_once(':').unwrap();
    let (host, port) = (host.to_string(), port.to_string());
    let clients: Vec<std::process::Child> = (0..4)
        .map(|c| {
            let script: String = (0..4000)
                .map(|i| {
                    let n = c * 100_000 + i;
                    format!("INSERT INTO crash VALUES ({n}, 'm-{tag}-{n}');\n")
                })
                .collect();
            let file = gateway.path(&format!("load{c}.sql"));
            std::fs::write(&file, script).unwrap();
            Command::new("psql")
                .args([
                    "-X", "-q", "-h", &host, "-p", &port, "-U", AGENT, "-d", &db.name, "-f",
                ])
                .arg(&file)
                .env("PGPASSWORD", AGENT_PASSWORD)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    // Mid-way: enough rows in to show the load runs, far from all of them.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n: u64 = psql_direct(&db.name, "SELECT count(*) FROM crash")
            .parse()
            .unwrap();
        if n >= 2000 {
            break;
        }
        assert!(Instant::now() < deadline, "the load did not run");
        std::thread::sleep(Duration::from_millis(20));
    }
    let dir = gateway.crash();
    for mut c in clients {
        let _ = c.wait();
    }
    let inserted: u64 = psql_direct(&db.name, "SELECT count(*) FROM crash")
        .parse()
        .unwrap();
    assert!(
        inserted < 16_000,
        "the gateway was killed mid-way ({inserted} rows)"
    );

    // Restart on the same state: the torn end is cut and a repair recorded.
    let config = dir.path().join("airlock.toml");
    let gateway = Gateway::spawn(dir, &["serve", "--config", config.to_str().unwrap()], &[]);
    psql_ok(&gateway, &db.name, &["SELECT count(*) FROM crash"]);
    let pubkey = public_key(&gateway);
    let log = audit_dir(gateway.dir.path());
    let (code, text) = verify(&log, Some(&pubkey));
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("still being written") && text.contains("1 repair\n"),
        "{text}"
    );
    let dir = gateway.stop();
    let (code, text) = verify(&audit_dir(dir.path()), Some(&pubkey));
    assert_eq!(code, 0, "{text}");

    // The witness: every INSERT PostgreSQL received has its record.
    let recorded: BTreeSet<String> = records(&audit_dir(dir.path()))
        .iter()
        .filter(|r| r["kind"] == "statement")
        .filter_map(|r| r["sql"].as_str().and_then(|s| marker(s, &tag)))
        .collect();
    let text = std::fs::read(&pg_log).expect("read PostgreSQL's log");
    let text = String::from_utf8_lossy(&text[log_start.min(text.len() as u64) as usize..]);
    let executed: BTreeSet<String> = text
        .lines()
        .filter(|l| l.contains("statement: INSERT INTO crash"))
        .filter_map(|l| marker(l, &tag))
        .collect();
    assert!(
        executed.len() as u64 >= inserted,
        "PostgreSQL's log shows {} INSERTs for {inserted} rows: is log_statement in effect?",
        executed.len()
    );
    let missing: Vec<&String> = executed.difference(&recorded).collect();
    assert!(
        missing.is_empty(),
        "{} statements reached PostgreSQL without a record, e.g. {:?}",
        missing.len(),
        missing.iter().take(5).collect::<Vec<_>>()
    );
    psql_direct(
        "test",
        &format!("ALTER DATABASE {} RESET log_statement", db.name),
    );
}

fn marker(text: &str, tag: &str) -> Option<String> {
    let at = text.find(&format!("m-{tag}-"))?;
    let rest = &text[at..];
    let end = rest.find('\'').unwrap_or(rest.len());
    Some(rest[..end].to_string())
}

#[test]
fn values_from_the_masking_corpus_never_reach_the_log_in_clear() {
    let cells: Vec<Cell> = load_corpus()
        .into_iter()
        .filter(|c| !c.labels.is_empty())
        .step_by(4)
        .collect();
    let db = TestDb::create("audit_pii");
    let policy = format!(
        "{}\n[masking]\ndetectors = [\"all\"]\njson_secret_keys = true\n",
        support::gateway::ALLOW_ALL_POLICY
    );
    let gateway = Gateway::start_with(Options {
        toml: "[audit]\ncapture_rows = 100000\n".into(),
        policy: Some(policy),
        ..Default::default()
    });
    // Values in statements (simple queries), in rows sent back, and quoted
    // in the server's error messages.
    let mut script = String::from("CREATE TABLE pii (id int PRIMARY KEY, body text);\n");
    for cell in &cells {
        let literal = cell.text.replace('\'', "''");
        script.push_str(&format!(
            "INSERT INTO pii VALUES ({}, '{literal}');\n",
            cell.id
        ));
    }
    script.push_str("SELECT id, body FROM pii ORDER BY id;\n");
    for cell in cells.iter().take(300) {
        let literal = cell.text.replace('\'', "''");
        script.push_str(&format!("SELECT '{literal}'::int;\n"));
    }
    let file = gateway.path("pii.sql");
    std::fs::write(&file, script).unwrap();
    let out = psql_through(
        &gateway.addr,
        AGENT,
        AGENT_PASSWORD,
        &db.name,
        &["-v", "ON_ERROR_STOP=0", "-f", file.to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("invalid input syntax"), "{stderr}");
    let dir = gateway.stop();

    let mut log = String::new();
    for (_, path) in airlock::audit::layout::segments(&audit_dir(dir.path())).unwrap() {
        log.push_str(&std::fs::read_to_string(path).unwrap());
    }
    assert!(log.contains("\"captured\""), "rows were captured");
    assert!(log.contains("invalid input syntax"), "errors were recorded");
    let (mut checked, mut misses) = (0, 0);
    // Each detected value as written in the statement, and as the log's
    // JSON escapes it; one pass over the log finds them all. Values with a
    // checksum or a fixed shape are unique to their cell and looked for in
    // the whole log. A name is not ("Rodriguez" is in many cells, some of
    // which hold it as a street), so a person label is looked for only in
    // what the log holds of its own cell: its INSERT, its row in the
    // captured result, and its `SELECT '…'::int` with the error quoting it.
    let mut needles: Vec<(String, String, Option<u32>)> = Vec::new();
    for cell in &cells {
        for label in &cell.labels {
            let value = &cell.text[label.start..label.end];
            if !cell.detected(label) {
                misses += 1;
                continue;
            }
            checked += 1;
            let what = format!("cell {} {}: {value}", cell.id, label.kind);
            let owner = (label.kind == "person").then_some(cell.id);
            let escaped = serde_json::to_string(value).unwrap();
            needles.push((value.to_string(), what.clone(), owner));
            needles.push((escaped[1..escaped.len() - 1].to_string(), what, owner));
        }
    }
    let finder = aho_corasick::AhoCorasick::new(needles.iter().map(|(n, _, _)| n)).unwrap();
    let mut leaks = BTreeSet::new();
    // The cell each `SELECT '…'::int` quotes, in the order they were sent.
    let mut quoted = cells.iter().take(300).map(|c| c.id);
    let mut current: Option<u32> = None;
    for line in log.lines() {
        let record: Map<String, Value> = serde_json::from_str(line).unwrap();
        let kind = record.get("kind").and_then(Value::as_str).unwrap_or("?");
        // (text, the cell it belongs to) pieces of this record.
        let mut pieces: Vec<(String, Option<u32>)> = Vec::new();
        match kind {
            "statement" => {
                let sql = record["sql"].as_str().unwrap_or_default();
                current = if let Some(rest) = sql.strip_prefix("INSERT INTO pii VALUES (") {
                    rest.split(',').next().and_then(|id| id.parse().ok())
                } else if sql.starts_with("SELECT '") {
                    quoted.next()
                } else {
                    None
                };
                pieces.push((line.to_string(), current));
            }
            "error" => pieces.push((line.to_string(), current)),
            "result" => {
                for row in record
                    .get("captured")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let owner = row
                        .get(0)
                        .and_then(Value::as_str)
                        .and_then(|id| id.parse().ok());
                    pieces.push((serde_json::to_string(row).unwrap(), owner));
                }
                pieces.push((line.to_string(), None));
            }
            _ => pieces.push((line.to_string(), None)),
        }
        for (text, owner) in &pieces {
            for m in finder.find_overlapping_iter(text.as_str()) {
                let (_, what, needle_owner) = &needles[m.pattern().as_usize()];
                if needle_owner.is_none() || needle_owner == owner {
                    leaks.insert(format!("{what} (in a {kind} record)"));
                }
            }
        }
    }
    eprintln!("{checked} labelled values checked, {misses} not detected (detector misses)");
    assert!(checked > 1000, "{checked}");
    assert!(
        leaks.is_empty(),
        "{} values in clear in the audit log, e.g. {:?}",
        leaks.len(),
        leaks.iter().take(10).collect::<Vec<_>>()
    );
    // No credentials: the agent's password is nowhere in the log.
    assert!(!log.contains(AGENT_PASSWORD));
}

#[test]
fn a_full_disk_refuses_statements_until_space_returns() {
    let db = TestDb::create("audit_full");
    psql_direct(&db.name, "CREATE TABLE t (n int)");
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().join("audit-disk");
    std::fs::create_dir_all(&mount).unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    std::fs::write(
        policies.join("00-test.toml"),
        support::gateway::ALLOW_ALL_POLICY,
    )
    .unwrap();
    let config = dir.path().join("airlock.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{var}\"\npolicies = \"{policies}\"\n\
             [postgres]\nlisten = \"127.0.0.1:0\"\n[inbox]\nlisten = \"127.0.0.1:0\"\n\
             [audit]\ndir = \"{mount}/audit\"\n\
             [[identity]]\nname = \"{AGENT}\"\nrole = \"agent\"\npassword = \"{AGENT_PASSWORD}\"\n",
            var = dir.path().join("var").display(),
            policies = policies.display(),
            mount = mount.display(),
        ),
    )
    .unwrap();
    // A 256 KiB filesystem of the gateway's own, seen from here through
    // /proc/<pid>/root.
    let script = format!(
        "mount -t tmpfs -o size=256k airlock-test {} && exec {} serve --config {}",
        mount.display(),
        support::gateway::binary(),
        config.display()
    );
    let gateway = Gateway::spawn_program(
        dir,
        "unshare",
        &["--mount", "--propagation", "private", "sh", "-c", &script],
        &[],
    );
    let inside = PathBuf::from(format!("/proc/{}/root", gateway.pid()))
        .join(mount.strip_prefix("/").unwrap());
    assert!(
        inside.join("audit").is_dir(),
        "the audit log is on the small disk"
    );

    psql_ok(&gateway, &db.name, &["INSERT INTO t VALUES (1)"]);
    // Fill the disk.
    let filler = inside.join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    let block = vec![0u8; 4096];
    while std::io::Write::write_all(&mut file, &block).is_ok() {}
    drop(file);

    // Statements are refused (a page of the segment may still take a few).
    let mut refused = None;
    for n in 2..200 {
        let out = psql_through(
            &gateway.addr,
            AGENT,
            AGENT_PASSWORD,
            &db.name,
            &["-c", &format!("INSERT INTO t VALUES ({n})")],
        );
        if !out.status.success() {
            refused = Some((n, String::from_utf8_lossy(&out.stderr).into_owned()));
            break;
        }
    }
    let (n, error) = refused.expect("statements were still run with the disk full");
    assert!(
        error.contains("Airlock cannot record statements right now"),
        "{error}"
    );
    let upstream = psql_direct(&db.name, &format!("SELECT count(*) FROM t WHERE n = {n}"));
    assert_eq!(upstream, "0", "the refused statement did not run");
    // With SQLSTATE 53100 (disk full).
    let out = psql_through(
        &gateway.addr,
        AGENT,
        AGENT_PASSWORD,
        &db.name,
        &["-v", "VERBOSITY=verbose", "-c", "SELECT 1"],
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("53100"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Space returns: statements run again, and nothing was lost.
    std::fs::remove_file(&filler).unwrap();
    psql_ok(&gateway, &db.name, &["INSERT INTO t VALUES (1000)"]);
    let (code, text) = verify(&inside.join("audit"), Some(&public_key(&gateway)));
    assert_eq!(code, 0, "{text}");
    let all = records(&inside.join("audit"));
    let sqls: Vec<&str> = all
        .iter()
        .filter(|r| r["kind"] == "statement")
        .filter_map(|r| r["sql"].as_str())
        .collect();
    assert!(sqls.contains(&"INSERT INTO t VALUES (1000)"), "{sqls:?}");
    assert!(!sqls.contains(&format!("INSERT INTO t VALUES ({n})").as_str()));
    // Sessions that connected while the disk was full have their records
    // too, written once it took them again.
    let starts = all.iter().filter(|r| r["kind"] == "session_start").count();
    assert!(
        starts as u64 >= n,
        "{starts} session starts for {n} sessions"
    );
}
