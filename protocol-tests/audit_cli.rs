//! `airlock audit verify` on logs written by the audit writer: OK on an
//! intact log, the right exit code and message on a tampered one.

use std::process::Command;
use std::time::Duration;

use airlock::audit::log::{AuditLog, Fsync, LogSettings};
use airlock::hex::encode as hex;
use serde_json::{Map, Value};

const KEY: [u8; 32] = [5; 32];

fn write_log(dir: &std::path::Path, records: u64) {
    let settings = LogSettings {
        dir: dir.to_path_buf(),
        chain_key: KEY,
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
        log.append(r);
    }
    log.close();
}

fn verify(
    dir: &std::path::Path,
    key_file: &std::path::Path,
    pubkey: Option<&str>,
) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_airlock"));
    cmd.args(["audit", "verify", "--dir"])
        .arg(dir)
        .arg("--key-file")
        .arg(key_file);
    if let Some(p) = pubkey {
        cmd.args(["--pubkey", p]);
    }
    let out = cmd.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn verify_reports_ok_and_names_tampering_with_its_exit_code() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    write_log(&dir, 30);
    let key_file = tmp.path().join("chain.key");
    std::fs::write(&key_file, hex(&KEY)).unwrap();
    let public = hex(ed25519_dalek::SigningKey::from_bytes(&[6; 32])
        .verifying_key()
        .as_bytes());

    let (code, text) = verify(&dir, &key_file, Some(&public));
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("OK") && text.contains("34 records, 4 checkpoints"),
        "{text}"
    );

    let segment = dir.join("00000001.jsonl");
    let original = std::fs::read_to_string(&segment).unwrap();
    std::fs::write(&segment, original.replacen("SELECT 7", "SELECT 8", 1)).unwrap();
    let (code, text) = verify(&dir, &key_file, Some(&public));
    assert_eq!(code, 10, "{text}");
    assert!(text.contains("edited") && text.contains("line 8"), "{text}");

    std::fs::write(&segment, &original).unwrap();
    let wrong = tmp.path().join("wrong.key");
    std::fs::write(&wrong, hex(&[1; 32])).unwrap();
    let (code, text) = verify(&dir, &wrong, None);
    assert_eq!(code, 15, "{text}");

    let other = hex(ed25519_dalek::SigningKey::from_bytes(&[2; 32])
        .verifying_key()
        .as_bytes());
    let (code, text) = verify(&dir, &key_file, Some(&other));
    assert_eq!(code, 16, "{text}");

    let (code, text) = verify(&dir, &tmp.path().join("missing.key"), None);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("missing.key"), "{text}");
}
