use std::path::Path;
use std::time::Duration;

use serde_json::{Map, Value};

use super::chain;
use super::log::{AuditLog, Fsync, LogSettings};
use super::verify::{verify, Problem, Trust, Unchecked};

/// The chain key of format-1 records.
const KEY: [u8; 32] = [3; 32];
const SIGNING: [u8; 32] = [9; 32];

fn public(signing: [u8; 32]) -> [u8; 32] {
    ed25519_dalek::SigningKey::from_bytes(&signing)
        .verifying_key()
        .to_bytes()
}

/// The auditor's trust: the writer's public key, pinned.
fn pinned() -> Trust {
    Trust {
        pinned: Some(public(SIGNING)),
        chain_key: None,
    }
}

fn settings(dir: &Path) -> LogSettings {
    LogSettings {
        dir: dir.to_path_buf(),
        chain_key: None,
        previous_signing_key: None,
        signing_key: SIGNING,
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
        log.append(record(i).into());
    }
    log.close();
    dir
}

fn lines(dir: &Path) -> Vec<(std::path::PathBuf, Vec<String>)> {
    super::layout::segments(dir)
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
    verify(dir, &pinned()).unwrap().broken.map(|b| b.problem)
}

#[test]
fn a_clean_log_verifies_across_segments() {
    let dir = written(100);
    let report = verify(dir.path(), &pinned()).unwrap();
    assert!(report.broken.is_none(), "{:?}", report.broken);
    assert!(report.segments > 1, "rotation by size");
    // The records, the checkpoints and the writer's start.
    assert_eq!(report.records, 100 + report.checkpoints + 1);
    assert!(report.checkpoints >= 14);
}

#[test]
fn each_kind_of_tampering_is_named() {
    // Edited: a value changed in place.
    let dir = written(20);
    let (path, mut l) = lines(dir.path()).remove(0);
    let i = l.iter().position(|x| x.contains("SELECT 3")).unwrap();
    l[i] = l[i].replace("SELECT 3", "SELECT 4");
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
    l.truncate(l.len().saturating_sub(2));
    rewrite(&path, &l);
    assert_eq!(problem(dir.path()), Some(Problem::Truncated));

    // Bad signature: verified against a public key that did not sign.
    let dir = written(10);
    let trust = Trust {
        pinned: Some(public([1; 32])),
        chain_key: None,
    };
    let report = verify(dir.path(), &trust).unwrap();
    assert_eq!(
        report.broken.map(|b| b.problem),
        Some(Problem::BadSignature)
    );
}

/// Rewrites every record of the log from `from` (a 0-based index over
/// all lines) with `change` applied to the first, recomputing every hash
/// after it: what anyone can do, since hashes need no key.
fn forge(dir: &Path, from: usize, change: &dyn Fn(&mut Map<String, Value>)) {
    let mut prev: Option<chain::Hash> = None;
    let mut index = 0;
    for (path, mut l) in lines(dir) {
        for line in l.iter_mut() {
            if index >= from {
                let mut r: Map<String, Value> = serde_json::from_str(line).unwrap();
                if index == from {
                    change(&mut r);
                }
                if let Some(p) = prev {
                    r.insert("prev".into(), chain::hex(&p).into());
                }
                r.remove("hash");
                let p = chain::unhex::<32>(r["prev"].as_str().unwrap()).unwrap();
                let (sealed, hash) = chain::seal(&p, &mut r);
                *line = String::from_utf8(sealed).unwrap();
                prev = Some(hash);
            }
            index += 1;
        }
        rewrite(&path, &l);
    }
}

#[test]
fn with_the_public_key_alone_a_rehashed_edit_is_caught_by_the_signatures() {
    let dir = written(20);
    assert_eq!(problem(dir.path()), None);
    // Hashes are public: an edit with every later hash recomputed links
    // and hashes cleanly, and the next checkpoint's signature gives it away.
    forge(dir.path(), 3, &|r| {
        r.insert("sql".into(), "SELECT 'harmless'".into());
    });
    assert_eq!(problem(dir.path()), Some(Problem::BadSignature));

    // A truncation dressed as a clean end: cut after a checkpoint that was
    // not final, and mark it final. The signature covers `final`.
    let dir = written(20);
    let (path, mut l) = lines(dir.path()).remove(0);
    let at = l.iter().position(|x| x.contains("\"checkpoint\"")).unwrap();
    l.truncate(at + 1);
    rewrite(&path, &l);
    for (p, _) in lines(dir.path()).into_iter().skip(1) {
        std::fs::remove_file(p).unwrap();
    }
    assert_eq!(problem(dir.path()), Some(Problem::Truncated));
    forge(dir.path(), at, &|r| {
        r.insert("final".into(), true.into());
    });
    assert_eq!(problem(dir.path()), Some(Problem::BadSignature));
}

#[test]
fn without_a_pinned_key_the_report_says_nothing_is_vouched_for() {
    let dir = written(20);
    let report = verify(dir.path(), &Trust::default()).unwrap();
    assert!(report.broken.is_none(), "{:?}", report.broken);
    assert_eq!(report.unchecked(), vec![Unchecked::NoPinnedKey]);
    // The forger edits and re-signs with a key of their own: consistent
    // with itself, so only a pinned key tells.
    let forger = ed25519_dalek::SigningKey::from_bytes(&[66; 32]);
    let mut prev: Option<chain::Hash> = None;
    let mut roots: std::collections::HashMap<String, (u64, chain::Hash)> = Default::default();
    for (path, mut l) in lines(dir.path()) {
        for line in l.iter_mut() {
            let mut r: Map<String, Value> = serde_json::from_str(line).unwrap();
            if let Some(p) = prev {
                r.insert("prev".into(), chain::hex(&p).into());
            }
            if r.get("sql") == Some(&Value::from("SELECT 3")) {
                r.insert("sql".into(), "SELECT 'harmless'".into());
            }
            if r["kind"] == "checkpoint" {
                use ed25519_dalek::Signer;
                for (id, entry) in r["sessions"].as_object_mut().unwrap() {
                    let (n, root) = roots[id.as_str()];
                    entry["records"] = n.into();
                    entry["root"] = chain::hex(&root).into();
                }
                r.insert(
                    "public_key".into(),
                    chain::hex(forger.verifying_key().as_bytes()).into(),
                );
                let m = chain::signed_message(chain::CHECKPOINT_DOMAIN, &r);
                r.insert(
                    "signature".into(),
                    chain::hex(&forger.sign(&m).to_bytes()).into(),
                );
            }
            r.remove("hash");
            let p = chain::unhex::<32>(r["prev"].as_str().unwrap()).unwrap();
            let (sealed, hash) = chain::seal(&p, &mut r);
            if let Some(session) = r.get("session").and_then(Value::as_str) {
                let entry = roots.entry(session.to_string()).or_default();
                *entry = (entry.0 + 1, chain::session_root(&entry.1, &hash));
            }
            *line = String::from_utf8(sealed).unwrap();
            prev = Some(hash);
        }
        rewrite(&path, &l);
    }
    let report = verify(dir.path(), &Trust::default()).unwrap();
    assert!(
        report.broken.is_none(),
        "self-consistent: {:?}",
        report.broken
    );
    assert_eq!(report.unchecked(), vec![Unchecked::NoPinnedKey]);
    assert_eq!(problem(dir.path()), Some(Problem::BadSignature));
}

/// A log as written before format 2: keyed BLAKE3 hashes, checkpoints
/// signing (seq, hash) of the record before them.
fn format1_log(dir: &Path, n: u64) {
    use ed25519_dalek::Signer;
    let signing = ed25519_dalek::SigningKey::from_bytes(&SIGNING);
    let mut prev = chain::GENESIS;
    let mut out = String::new();
    let mut seal = |seq: u64, mut r: Map<String, Value>, prev: &mut chain::Hash| {
        r.insert("v".into(), 1.into());
        r.insert("seq".into(), seq.into());
        r.insert("ts".into(), "2026-01-01T00:00:00.000000Z".into());
        r.insert("prev".into(), chain::hex(prev).into());
        let hash = chain::keyed_record_hash(&KEY, prev, &chain::canonical(&r));
        r.insert("hash".into(), chain::hex(&hash).into());
        out.push_str(&serde_json::to_string(&r).unwrap());
        out.push('\n');
        *prev = hash;
    };
    for i in 0..n {
        seal(i + 1, record(i), &mut prev);
    }
    let mut c = Map::new();
    c.insert("kind".into(), "checkpoint".into());
    c.insert("signed_seq".into(), n.into());
    c.insert("signed_hash".into(), chain::hex(&prev).into());
    let sig = signing.sign(&chain::checkpoint_message_v1(n, &prev));
    c.insert("signature".into(), chain::hex(&sig.to_bytes()).into());
    c.insert("public_key".into(), chain::hex(&public(SIGNING)).into());
    c.insert("final".into(), true.into());
    seal(n + 1, c, &mut prev);
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("00000001.jsonl"), out).unwrap();
}

#[test]
fn a_format1_log_continued_in_format2_verifies_across_the_switch() {
    let dir = tempfile::tempdir().unwrap();
    format1_log(dir.path(), 6);
    let mut s = settings(dir.path());
    s.chain_key = Some(KEY);
    s.segment_bytes = 1 << 20;
    let log = AuditLog::open(s, Vec::new()).unwrap();
    for i in 10..30 {
        log.append(record(i).into());
    }
    log.close();
    let with_key = Trust {
        pinned: Some(public(SIGNING)),
        chain_key: Some(KEY),
    };
    let report = verify(dir.path(), &with_key).unwrap();
    assert!(report.broken.is_none(), "{:?}", report.broken);
    assert_eq!(report.keyed_records, 7);
    assert!(report.unchecked().is_empty(), "{:?}", report.unchecked());
    // Without the chain key the old records' content is not checked, and
    // the report says so.
    let report = verify(dir.path(), &pinned()).unwrap();
    assert!(report.broken.is_none());
    assert_eq!(report.unchecked(), vec![Unchecked::KeyedRecords(7)]);
    // A wrong chain key; an old record edited; a new record passed off as old.
    let wrong = Trust {
        chain_key: Some([4; 32]),
        ..with_key.clone()
    };
    let broken = |trust: &Trust| verify(dir.path(), trust).unwrap().broken.map(|b| b.problem);
    assert_eq!(broken(&wrong), Some(Problem::WrongKey));
    let (path, original) = lines(dir.path()).remove(0);
    let mut l = original.clone();
    l[2] = l[2].replace("SELECT 2", "SELECT 9");
    rewrite(&path, &l);
    assert_eq!(broken(&with_key), Some(Problem::Edited));
    rewrite(&path, &original);
    let mut l = original.clone();
    let i = l.iter().position(|x| x.contains("SELECT 12")).unwrap();
    l[i] = l[i].replace("\"v\":2", "\"v\":1");
    rewrite(&path, &l);
    assert_eq!(broken(&with_key), Some(Problem::Edited));
}

#[test]
fn a_new_signing_key_is_introduced_by_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(settings(dir.path()), Vec::new()).unwrap();
    for i in 0..10 {
        log.append(record(i).into());
    }
    log.close();
    // A new key without the old one to introduce it: refused.
    let mut s = settings(dir.path());
    s.signing_key = [10; 32];
    let e = AuditLog::open(s.clone(), Vec::new()).err().unwrap();
    assert!(e.contains("previous_signing_key_file"), "{e}");
    s.previous_signing_key = Some(SIGNING);
    let log = AuditLog::open(s, Vec::new()).unwrap();
    for i in 10..20 {
        log.append(record(i).into());
    }
    log.close();
    let report = verify(dir.path(), &pinned()).unwrap();
    assert!(report.broken.is_none(), "{:?}", report.broken);
    assert_eq!(report.rotations, 1);
    assert_eq!(report.keys.len(), 2);
    assert_eq!(report.keys[1].key, public([10; 32]));
    assert!(report.keys[1].checkpoints >= 2);
    // The new key is not the pinned one: from it, the old checkpoints fail.
    let new_pinned = Trust {
        pinned: Some(public([10; 32])),
        chain_key: None,
    };
    assert_eq!(
        verify(dir.path(), &new_pinned)
            .unwrap()
            .broken
            .map(|b| b.problem),
        Some(Problem::BadSignature)
    );
    // A rotation to a forger's key, signed by the forger: refused.
    let all: Vec<String> = lines(dir.path()).into_iter().flat_map(|(_, l)| l).collect();
    let at = all.iter().position(|x| x.contains("key_rotation")).unwrap();
    forge(dir.path(), at, &|r| {
        use ed25519_dalek::Signer;
        let forger = ed25519_dalek::SigningKey::from_bytes(&[66; 32]);
        r.insert(
            "new_public_key".into(),
            chain::hex(forger.verifying_key().as_bytes()).into(),
        );
        let m = chain::signed_message(chain::ROTATION_DOMAIN, r);
        r.insert(
            "signature".into(),
            chain::hex(&forger.sign(&m).to_bytes()).into(),
        );
    });
    assert_eq!(problem(dir.path()), Some(Problem::BadRotation));
}

#[test]
fn checkpoints_sign_each_sessions_transcript_root() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(settings(dir.path()), Vec::new()).unwrap();
    for s in 0..3 {
        let mut start = Map::new();
        start.insert("kind".into(), "session_start".into());
        start.insert("session".into(), format!("s-{s}").into());
        log.append(start.into());
    }
    for i in 0..30 {
        log.append(record(i).into());
    }
    for s in 0..2 {
        let mut end = Map::new();
        end.insert("kind".into(), "session_end".into());
        end.insert("session".into(), format!("s-{s}").into());
        log.append(end.into());
    }
    log.close();
    let report = verify(dir.path(), &pinned()).unwrap();
    assert!(report.broken.is_none(), "{:?}", report.broken);
    assert_eq!(report.sessions_proved, 2);
    assert!(report.session_roots >= 6, "{}", report.session_roots);
    // A checkpoint signed by the real key over a wrong root is caught.
    let all: Vec<String> = lines(dir.path()).into_iter().flat_map(|(_, l)| l).collect();
    let at = all
        .iter()
        .position(|x| x.contains("\"checkpoint\""))
        .unwrap();
    forge(dir.path(), at, &|r| {
        use ed25519_dalek::Signer;
        let sessions = r["sessions"].as_object_mut().unwrap();
        let first = sessions.values_mut().next().unwrap();
        first["records"] = (first["records"].as_u64().unwrap() - 1).into();
        let m = chain::signed_message(chain::CHECKPOINT_DOMAIN, r);
        let key = ed25519_dalek::SigningKey::from_bytes(&SIGNING);
        r.insert(
            "signature".into(),
            chain::hex(&key.sign(&m).to_bytes()).into(),
        );
    });
    assert_eq!(problem(dir.path()), Some(Problem::SessionMismatch));
}

#[test]
fn replay_shows_terminal_controls_escaped() {
    let mut r = Map::new();
    r.insert("kind".into(), "statement".into());
    r.insert("ts".into(), "t".into());
    r.insert(
        "sql".into(),
        "SELECT 1\u{1b}[2J\u{1b}]0;pwned\u{7}\rDROP\u{9b}31m \u{202e}txt.exe\u{2066}\nSELECT 2"
            .into(),
    );
    let mut start = Map::new();
    start.insert("kind".into(), "session_start".into());
    start.insert("ts".into(), "t".into());
    start.insert("application".into(), "psql\u{1b}[1A\r\u{85}".into());
    let shown = super::read::transcript(&[(String::new(), start), (String::new(), r)]);
    for c in shown.chars() {
        assert!(
            c == '\n'
                || !(c.is_control()
                    || ('\u{2028}'..='\u{202e}').contains(&c)
                    || ('\u{2066}'..='\u{2069}').contains(&c)),
            "{c:?} shown raw in {shown:?}"
        );
    }
    assert!(
        shown.contains(r"SELECT 1\x1b[2J\x1b]0;pwned\x07\rDROP\x9b31m \u{202e}txt.exe\u{2066}"),
        "{shown}"
    );
    assert!(shown.contains(r"via psql\x1b[1A\r\x85"), "{shown}");
    assert!(shown.contains("\n      SELECT 2"), "{shown}");
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
    log.append(record(100).into());
    log.close();
    let report = verify(dir.path(), &pinned()).unwrap();
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
fn records_only_in_the_journal_when_the_process_dies_are_replayed_on_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut slow = settings(dir.path());
    // The syncing thread, woken by the first record, writes it and then
    // waits an hour to sync: the others are in the journal only.
    slow.window = Duration::from_secs(3600);
    slow.checkpoint_every = 1000;
    slow.segment_bytes = 1 << 20;
    let log = AuditLog::open(slow.clone(), Vec::new()).unwrap();
    log.append(record(0).into()).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    for i in 1..5 {
        log.append(record(i).into()).unwrap();
    }
    std::thread::sleep(Duration::from_millis(50));
    let before: Vec<String> = lines(dir.path()).into_iter().flat_map(|(_, l)| l).collect();
    assert!(
        !before.iter().any(|l| l.contains("SELECT 4")),
        "the last record is not in the segment yet"
    );
    // The process dies: no close, nothing more written.
    std::mem::forget(log);

    let log = AuditLog::open(slow, Vec::new()).unwrap();
    log.append(record(5).into()).unwrap();
    log.close();
    let report = verify(dir.path(), &pinned()).unwrap();
    assert!(report.broken.is_none(), "{:?}", report.broken);
    let all: Vec<String> = lines(dir.path()).into_iter().flat_map(|(_, l)| l).collect();
    for i in 0..6 {
        let sql = format!("\"SELECT {i}\"");
        assert_eq!(
            all.iter().filter(|l| l.contains(&sql)).count(),
            1,
            "{sql} once: {all:#?}"
        );
    }
    assert!(
        all.iter().any(|l| l.contains("\"replayed_records\"")),
        "{all:#?}"
    );
}

#[test]
fn durable_appends_return_after_the_record_is_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(settings(dir.path()), Vec::new()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(log.append_durable(record(1).into())).unwrap();
    let text =
        std::fs::read_to_string(super::layout::segments(dir.path()).unwrap()[0].1.clone()).unwrap();
    assert!(text.contains("SELECT 1"));
    // While the writer runs, a log without a final checkpoint is open, not truncated.
    let report = verify(dir.path(), &pinned()).unwrap();
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
    log.append(record(1).into()).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let report = verify(dir.path(), &pinned()).unwrap();
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
                    log.append(record(t * 1000 + i).into()).unwrap();
                }
            });
        }
    });
    log.close();
    let report = verify(dir.path(), &pinned()).unwrap();
    assert!(report.broken.is_none(), "{:?}", report.broken);
    assert_eq!(report.records - report.checkpoints, 1000 + 1);
}

#[test]
fn incremental_verification_resumes_and_still_sees_an_old_record_edited() {
    let dir = written(40);
    let mut incremental = super::verify::Incremental::default();
    let first = incremental.verify(dir.path(), &pinned()).unwrap();
    assert!(first.broken.is_none(), "{:?}", first.broken);
    let resumes = incremental
        .resumes_after()
        .expect("a checkpoint to resume after");
    assert_eq!(resumes, first.last_seq, "the final checkpoint");
    // More records from a second run: verification goes on from the
    // checkpoint and agrees with a full one.
    let log = AuditLog::open(settings(dir.path()), Vec::new()).unwrap();
    for i in 100..140 {
        log.append(record(i).into());
    }
    log.close();
    let again = incremental.verify(dir.path(), &pinned()).unwrap();
    let full = verify(dir.path(), &pinned()).unwrap();
    assert!(again.broken.is_none(), "{:?}", again.broken);
    assert!(incremental.resumes_after() > Some(resumes));
    assert_eq!(
        (
            again.records,
            again.checkpoints,
            again.segments,
            again.session_roots,
            again.last_seq
        ),
        (
            full.records,
            full.checkpoints,
            full.segments,
            full.session_roots,
            full.last_seq
        )
    );
    // A record verified before is edited: the resume point no longer
    // holds, and the edit is found.
    let (path, mut l) = lines(dir.path()).remove(0);
    let i = l.iter().position(|x| x.contains("SELECT 3")).unwrap();
    l[i] = l[i].replace("SELECT 3", "SELECT 4");
    rewrite(&path, &l);
    let report = incremental.verify(dir.path(), &pinned()).unwrap();
    assert_eq!(report.broken.map(|b| b.problem), Some(Problem::Edited));
    // With other keys it starts over too.
    let other = Trust {
        pinned: Some(public([1; 32])),
        chain_key: None,
    };
    let report = super::verify::Incremental::default()
        .verify(dir.path(), &other)
        .unwrap();
    assert!(report.broken.is_some());
}
