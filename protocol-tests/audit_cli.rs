//! `airlock audit verify` on logs written by the audit writer: what it
//! checked and OK on an intact log, the right exit code and message on a
//! tampered one or when it has no trusted key.

use std::process::Command;
use std::time::Duration;

use airlock::audit::log::{AuditLog, Fsync, LogSettings};
use airlock::hex::encode as hex;
use serde_json::{Map, Value};

fn write_log(dir: &std::path::Path, records: u64) {
    let settings = LogSettings {
        dir: dir.to_path_buf(),
        chain_key: None,
        previous_signing_key: None,
        signing_key: [6; 32],
        fsync: Fsync::Batch,
        window: Duration::from_millis(5),
        segment_bytes: 64 * 1024,
        checkpoint_every: 10,
        checkpoint_secs: 60,
        backlog_bytes: 1 << 20,
    };
    let log = AuditLog::open(settings, Vec::new()).unwrap();
    for i in 0..records {
        let mut r = Map::new();
        r.insert("kind".into(), Value::from("statement"));
        r.insert("sql".into(), Value::from(format!("SELECT {i}")));
        log.append(r.into());
    }
    log.close();
}

fn verify(dir: &std::path::Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["audit", "verify", "--dir"])
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn verify_says_what_it_checked_and_names_tampering_with_its_exit_code() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    write_log(&dir, 30);
    let public = hex(ed25519_dalek::SigningKey::from_bytes(&[6; 32])
        .verifying_key()
        .as_bytes());

    let (code, text) = verify(&dir, &["--pubkey", &public]);
    assert_eq!(code, 0, "{text}");
    // 30 records, the writer's start and 4 checkpoints.
    assert!(text.contains(&format!("log: {}", dir.display())), "{text}");
    assert!(
        text.contains("records: 35 (seq 1 to 35), from 20"),
        "{text}"
    );
    assert!(
        text.contains("checkpoints: 4 signatures verified"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "key {public}: pinned by --pubkey; signed 4 checkpoints"
        )),
        "{text}"
    );
    assert!(
        text.contains("signatures cover every record up to seq 35"),
        "{text}"
    );
    assert!(text.ends_with("OK\n"), "{text}");

    let segment = dir.join("00000001.jsonl");
    let original = std::fs::read_to_string(&segment).unwrap();
    std::fs::write(&segment, original.replacen("SELECT 7", "SELECT 8", 1)).unwrap();
    let (code, text) = verify(&dir, &["--pubkey", &public]);
    assert_eq!(code, 10, "{text}");
    assert!(text.contains("edited") && text.contains("line 9"), "{text}");
    std::fs::write(&segment, &original).unwrap();

    // Without a trusted key: not vouched for, unless only a self-check is asked.
    let (code, text) = verify(&dir, &[]);
    assert_eq!(code, 20, "{text}");
    assert!(text.contains("no trusted public key"), "{text}");
    let (code, text) = verify(&dir, &["--self-check"]);
    assert_eq!(code, 0, "{text}");

    let other = hex(ed25519_dalek::SigningKey::from_bytes(&[2; 32])
        .verifying_key()
        .as_bytes());
    let (code, text) = verify(&dir, &["--pubkey", &other]);
    assert_eq!(code, 16, "{text}");

    let missing = tmp.path().join("missing.key");
    let (code, text) = verify(
        &dir,
        &["--pubkey", &public, "--key-file", missing.to_str().unwrap()],
    );
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("missing.key"), "{text}");
}
