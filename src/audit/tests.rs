use std::path::Path;
use std::time::Duration;

use serde_json::{Map, Value};

use super::log::{AuditLog, Fsync, LogSettings};
use super::verify::{verify, Problem};

const KEY: [u8; 32] = [3; 32];

fn settings(dir: &Path) -> LogSettings {
    LogSettings {
        dir: dir.to_path_buf(),
        chain_key: KEY,
        signing_key: [9; 32],
        fsync: Fsync::Batch,
        window: Duration::from_millis(5),
        segment_bytes: 4096,
        checkpoint_every: 7,
        checkpoint_secs: 60,
        backlog_bytes: 1 << 20,
    }
}

fn record(n: u64) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("kind".into(), "statement".into());
    m.insert("session".into(), format!("s-{}", n % 3).into());
    m.insert("sql".into(), format!("SELECT {n}").into());
    m
}

/// A closed log of `n` records (plus checkpoints) under a new directory.
fn written(n: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(settings(dir.path()), Vec::new()).unwrap();
    for i in 0..n {
        log.append(record(i));
    }
    log.close();
    dir
}

fn lines(dir: &Path) -> Vec<(std::path::PathBuf, Vec<String>)> {
    super::log::segments(dir)
        .unwrap()
        .into_iter()
        .map(|(_, p)| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text.lines().map(str::to_string).collect())
        })
        .collect()
}

fn rewrite(path: &Path, lines: &[String]) {
    std::fs::write(
        path,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
}

fn problem(dir: &Path) -> Option<Problem> {
    verify(dir, Some(&KEY), None)
        .unwrap()
        .broken
        .map(|b| b.problem)
}

#[test]
fn a_clean_log_verifies_across_segments() {
    let dir = written(100);
    let report = verify(dir.path(), Some(&KEY), None).unwrap();
    assert!(report.broken.is_none(), "{:?}", report.broken);
    assert!(report.segments > 1, "rotation by size");
    assert_eq!(report.records, 100 + report.checkpoints);
    assert!(report.checkpoints >= 14);
}

#[test]
fn each_kind_of_tampering_is_named() {
    // Edited: a value changed in place.
    let dir = written(20);
    let (path, mut l) = lines(dir.path()).remove(0);
    l[3] = l[3].replace("SELECT 3", "SELECT 4");
    rewrite(&path, &l);
    assert_eq!(problem(dir.path()), Some(Problem::Edited));

    // Deleted: a record taken out of the middle.
    let dir = written(20);
    let (path, mut l) = lines(dir.path()).remove(0);
    l.remove(4);
    rewrite(&path, &l);
    assert!(matches!(
        problem(dir.path()),
        Some(Problem::Deleted {
            missing_from: 5,
            missing_to: 5
        })
    ));

    // Inserted: a genuine record copied in a second time.
    let dir = written(20);
    let (path, mut l) = lines(dir.path()).remove(0);
    let copy = l[2].clone();
    l.insert(3, copy);
    rewrite(&path, &l);
    assert_eq!(problem(dir.path()), Some(Problem::Inserted));

    // Reordered: two records swapped.
    let dir = written(20);
    let (path, mut l) = lines(dir.path()).remove(0);
    l.swap(2, 3);
    rewrite(&path, &l);
    assert_eq!(problem(dir.path()), Some(Problem::Reordered));

    // Truncated: the end (with the final checkpoint) cut off.
    let dir = written(20);
    let segs = lines(dir.path());
    let (path, mut l) = segs.last().cloned().unwrap();
    l.truncate(l.len() - 2);
    rewrite(&path, &l);
    assert_eq!(problem(dir.path()), Some(Problem::Truncated));

    // Wrong key.
    let dir = written(5);
    let report = verify(dir.path(), Some(&[4; 32]), None).unwrap();
    assert_eq!(report.broken.map(|b| b.problem), Some(Problem::WrongKey));

    // Bad signature: verified against a public key that did not sign.
    let dir = written(10);
    let other = ed25519_dalek::SigningKey::from_bytes(&[1; 32])
        .verifying_key()
        .to_bytes();
    let report = verify(dir.path(), Some(&KEY), Some(&other)).unwrap();
    assert_eq!(
        report.broken.map(|b| b.problem),
        Some(Problem::BadSignature)
    );
}

#[test]
fn without_the_chain_key_links_sequence_and_signatures_are_still_checked() {
    let dir = written(20);
    let public = ed25519_dalek::SigningKey::from_bytes(&[9; 32])
        .verifying_key()
        .to_bytes();
    assert!(verify(dir.path(), None, Some(&public))
        .unwrap()
        .broken
        .is_none());
    let (path, mut l) = lines(dir.path()).remove(0);
    l.remove(5);
    rewrite(&path, &l);
    assert!(matches!(
        verify(dir.path(), None, Some(&public))
            .unwrap()
            .broken
            .map(|b| b.problem),
        Some(Problem::Deleted { .. })
    ));
}

#[test]
fn a_torn_end_is_cut_and_repaired_on_the_next_start() {
    let dir = written(10);
    // A crash: the final checkpoint lost and half a record written.
    let segs = lines(dir.path());
    let (path, mut l) = segs.last().cloned().unwrap();
    l.pop();
    let mut text: String = l.iter().map(|x| format!("{x}\n")).collect();
    text.push_str("{\"v\":1,\"seq\":99,\"kind\":\"stat");
    std::fs::write(&path, text).unwrap();

    let log = AuditLog::open(settings(dir.path()), Vec::new()).unwrap();
    log.append(record(100));
    log.close();
    let report = verify(dir.path(), Some(&KEY), None).unwrap();
    assert!(report.broken.is_none(), "{:?}", report.broken);
    assert_eq!(report.repairs, 1);
    let all: String = lines(dir.path())
        .into_iter()
        .flat_map(|(_, l)| l)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(all.contains("\"cut_lines\":1"), "{all}");
}

#[test]
fn durable_appends_return_after_the_record_is_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(settings(dir.path()), Vec::new()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(log.append_durable(record(1))).unwrap();
    let text =
        std::fs::read_to_string(super::log::segments(dir.path()).unwrap()[0].1.clone()).unwrap();
    assert!(text.contains("SELECT 1"));
    // While the writer runs, a log without a final checkpoint is open, not truncated.
    let report = verify(dir.path(), Some(&KEY), None).unwrap();
    assert!(
        report.open && report.broken.is_none(),
        "{:?}",
        report.broken
    );
    log.close();
}

#[test]
fn a_quiet_log_is_checkpointed_after_checkpoint_secs() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    s.checkpoint_every = 1_000;
    s.checkpoint_secs = 1;
    let log = AuditLog::open(s, Vec::new()).unwrap();
    log.append(record(1)).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let report = verify(dir.path(), Some(&KEY), None).unwrap();
    assert!(report.broken.is_none(), "{:?}", report.broken);
    assert_eq!(report.checkpoints, 1, "a checkpoint without a new record");
    log.close();
}

#[test]
fn appends_from_many_threads_form_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(settings(dir.path()), Vec::new()).unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let log = log.clone();
            s.spawn(move || {
                for i in 0..250 {
                    log.append(record(t * 1000 + i)).unwrap();
                }
            });
        }
    });
    log.close();
    let report = verify(dir.path(), Some(&KEY), None).unwrap();
    assert!(report.broken.is_none(), "{:?}", report.broken);
    assert_eq!(report.records - report.checkpoints, 1000);
}
