//! The chained audit log on disk: segments of JSON Lines under one
//! directory.
//!
//! A record is linked and sealed by the caller, under one lock that keeps
//! the chain in order, and copied into the memory-mapped journal (see
//! [`super::journal`]) — so a statement's record is in the page cache
//! before the statement is sent upstream, and a `kill -9` of the gateway
//! can lose no record of anything that ran. The syncing thread writes the
//! segment once per `window` for every record since (one `write` for many)
//! and makes it durable (group commit) — at most every `window` with
//! `fsync = "batch"`, and at once when a caller waits on a record
//! ([`AuditLog::durable`]). Without a journal (none could be made, or
//! `fsync = "always"`), and for a record the journal has no room for, the
//! caller writes the segment itself (a `write` to the kernel) before the
//! statement goes on.
//!
//! Every `checkpoint_every` records or `checkpoint_secs` a checkpoint
//! signed with the Ed25519 key vouches for the chain so far and for the
//! transcript root of every session with records since the checkpoint
//! before; a clean shutdown writes a final one with every open session's
//! root. On start, a torn tail (a crash mid-write) is cut and a `repair`
//! record says what was cut; a new signing key is introduced by a
//! `key_rotation` record the previous key signs.
//!
//! When the disk refuses a write (full, read-only), the bytes are cut back
//! to the last whole record, the sealed records wait in memory (bounded)
//! and are written when the disk takes them again; meanwhile
//! [`AuditLog::failure`] says why, and the gate refuses statements.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ed25519_dalek::{Signer, SigningKey};
use serde_json::{Map, Value};

use super::chain::{self, Hash, Record, GENESIS};
use super::journal::{self, Journal};
use super::layout::{segment_path, segments};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fsync {
    Always,
    Batch,
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    pub dir: PathBuf,
    /// The key of format-1 (keyed) records, to check the end of a log
    /// written before format 2 when continuing it; new records need none.
    pub chain_key: Option<Hash>,
    pub signing_key: [u8; 32],
    /// The key that signed the log so far, when `signing_key` replaces it:
    /// it signs the `key_rotation` record that introduces the new one.
    pub previous_signing_key: Option<[u8; 32]>,
    pub fsync: Fsync,
    pub window: Duration,
    pub segment_bytes: u64,
    pub checkpoint_every: u64,
    pub checkpoint_secs: u64,
    /// Bytes of sealed records kept in memory while the disk refuses them;
    /// beyond this, records are counted as lost and a `repair` record
    /// reports how many once the disk takes writes again.
    pub backlog_bytes: usize,
}

/// Deferred records are written once this many bytes wait.
const DEFERRED_BYTES: usize = 64 * 1024;

/// The handle senders use. Cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    shared: Arc<Shared>,
}

struct Shared {
    writer: Mutex<Writer>,
    /// Wakes the syncing thread: a caller waits on a record, or shutdown.
    wake: Condvar,
    /// The highest sequence number known to be on disk, and the error of
    /// the last fsync if it failed.
    synced: tokio::sync::watch::Sender<(u64, Option<String>)>,
    healthy: AtomicBool,
    failure: Mutex<Option<String>>,
}

/// Where the chain stood at the end of the log found on disk.
struct Tail {
    seq: u64,
    hash: Hash,
    segment: u64,
    /// Whether the last record is a final checkpoint (a clean shutdown).
    clean: bool,
    /// Bytes cut from a torn or corrupt end, and how many lines they held.
    cut: Option<(u64, usize)>,
    /// The key the log's last checkpoint or key rotation names.
    signing_key: Option<[u8; 32]>,
}

/// Reads the last segment, cutting a torn or unverifiable end.
fn recover(dir: &Path, key: Option<&Hash>) -> Result<Tail, String> {
    let segs = segments(dir).map_err(|e| format!("cannot list `{}`: {e}", dir.display()))?;
    let mut tail = recover_in(&segs, key)?;
    // The key in force: from the last segment that names one.
    for (_, path) in segs.iter().rev() {
        if tail.signing_key.is_some() {
            break;
        }
        tail.signing_key = last_signing_key(path);
    }
    Ok(tail)
}

/// The key a segment's last checkpoint or key rotation says signs from then on.
fn last_signing_key(path: &Path) -> Option<[u8; 32]> {
    let file = File::open(path).ok()?;
    let mut found = None;
    for line in BufReader::new(file).split(b'\n') {
        let Ok(line) = line else { break };
        if let Some(key) = signing_key_named(&line) {
            found = Some(key);
        }
    }
    found
}

fn signing_key_named(line: &[u8]) -> Option<[u8; 32]> {
    // Most records are neither: skip parsing them.
    let text = std::str::from_utf8(line).ok()?;
    if !text.contains("\"checkpoint\"") && !text.contains("\"key_rotation\"") {
        return None;
    }
    let record: Map<String, Value> = serde_json::from_str(text).ok()?;
    let field = match record.get("kind")?.as_str()? {
        "checkpoint" => "public_key",
        "key_rotation" => "new_public_key",
        _ => return None,
    };
    chain::unhex::<32>(record.get(field)?.as_str()?)
}

fn recover_in(segs: &[(u64, PathBuf)], key: Option<&Hash>) -> Result<Tail, String> {
    // The hash the last segment starts from is the previous segment's end.
    let Some((last_n, last_path)) = segs.last().cloned() else {
        return Ok(Tail {
            seq: 0,
            hash: GENESIS,
            segment: 1,
            clean: true,
            cut: None,
            signing_key: None,
        });
    };
    let file = File::open(&last_path)
        .map_err(|e| format!("cannot open `{}`: {e}", last_path.display()))?;
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    let mut good_end = 0u64;
    let mut offset = 0u64;
    let mut tail: Option<(u64, Hash, bool)> = None;
    let mut bad_lines = 0usize;
    let mut signing_key = None;
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| format!("cannot read `{}`: {e}", last_path.display()))?;
        if n == 0 {
            break;
        }
        offset += n as u64;
        let complete = line.last() == Some(&b'\n');
        let parsed = complete
            .then(|| serde_json::from_slice::<Map<String, Value>>(&line[..line.len() - 1]).ok())
            .flatten()
            .and_then(|record| {
                let prev = chain::unhex::<32>(record.get("prev")?.as_str()?)?;
                let hash = chain::unhex::<32>(record.get("hash")?.as_str()?)?;
                let seq = record.get("seq")?.as_u64()?;
                let links = match tail {
                    Some((s, h, _)) => prev == h && seq == s + 1,
                    None => true,
                };
                let canonical = chain::canonical(&record);
                // A format-1 record is checked when its key is known; else
                // its link alone (a torn line does not parse at all).
                let hashed = match record.get("v").and_then(Value::as_u64) {
                    Some(chain::VERSION) => chain::record_hash(&prev, &canonical) == hash,
                    Some(chain::KEYED_VERSION) => {
                        key.is_none_or(|k| chain::keyed_record_hash(k, &prev, &canonical) == hash)
                    }
                    _ => false,
                };
                let clean = record.get("kind").and_then(Value::as_str) == Some("checkpoint")
                    && record.get("final").and_then(Value::as_bool) == Some(true);
                (links && hashed).then_some((seq, hash, clean))
            });
        match parsed {
            Some(t) if bad_lines == 0 => {
                tail = Some(t);
                good_end = offset;
                if let Some(k) = signing_key_named(&line[..line.len() - 1]) {
                    signing_key = Some(k);
                }
            }
            _ => bad_lines += 1,
        }
    }
    let cut = (offset > good_end).then_some((offset - good_end, bad_lines));
    if cut.is_some() {
        let file = OpenOptions::new()
            .write(true)
            .open(&last_path)
            .map_err(|e| format!("cannot open `{}` to repair it: {e}", last_path.display()))?;
        file.set_len(good_end)
            .map_err(|e| format!("cannot truncate `{}`: {e}", last_path.display()))?;
        file.sync_all()
            .map_err(|e| format!("cannot sync `{}`: {e}", last_path.display()))?;
    }
    match tail {
        Some((seq, hash, clean)) => Ok(Tail { seq, hash, segment: last_n, clean, cut, signing_key }),
        None if last_n == 1 => Ok(Tail {
            seq: 0,
            hash: GENESIS,
            segment: 1,
            clean: false,
            cut,
            signing_key: None,
        }),
        // A segment started just before a crash: the chain ends in the one before.
        None if segs.len() >= 2 => {
            let before = recover_in(&segs[..segs.len() - 1], key)?;
            Ok(Tail { segment: last_n, clean: false, cut, ..before })
        }
        None => Err(format!(
            "`{}` holds no intact record; the chain cannot be continued (run `airlock audit verify`)",
            last_path.display()
        )),
    }
}

impl AuditLog {
    /// Opens (or creates) the log, repairs a torn end, writes `first`
    /// (`policy_loaded`, for one) and starts the syncing thread.
    pub fn open(settings: LogSettings, first: Vec<Record>) -> Result<AuditLog, String> {
        std::fs::create_dir_all(&settings.dir).map_err(|e| {
            format!(
                "cannot create audit directory `{}`: {e}",
                settings.dir.display()
            )
        })?;
        let mut tail = recover(&settings.dir, settings.chain_key.as_ref())?;
        // Records a killed run copied into its journal but had not yet
        // written to the segment.
        let (seq, hash, replayed) = journal::replay(
            &settings.dir,
            &segment_path(&settings.dir, tail.segment),
            tail.seq,
            tail.hash,
        )?;
        if replayed > 0 {
            tail.seq = seq;
            tail.hash = hash;
            tail.clean = false;
        }
        let signing = SigningKey::from_bytes(&settings.signing_key);
        let public = *signing.verifying_key().as_bytes();
        // A key the log has not seen must be introduced by the one it has:
        // otherwise verification with the pinned key stops at the switch.
        let previous = match tail.signing_key {
            Some(in_log) if in_log != public => {
                match settings
                    .previous_signing_key
                    .map(|k| SigningKey::from_bytes(&k))
                    .filter(|k| k.verifying_key().as_bytes() == &in_log)
                {
                    Some(previous) => Some(previous),
                    None => {
                        return Err(format!(
                            "`{}` is signed with the key {}, not this signing key ({}): set \
                             `audit.previous_signing_key_file` to the key it was signed with, so \
                             that a key rotation record introduces the new key, or start a new \
                             audit directory",
                            settings.dir.display(),
                            chain::hex(&in_log),
                            chain::hex(&public)
                        ))
                    }
                }
            }
            _ => None,
        };
        let path = segment_path(&settings.dir, tail.segment);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| format!("cannot open `{}`: {e}", path.display()))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let syncing = Arc::new(
            file.try_clone()
                .map_err(|e| format!("cannot open `{}`: {e}", path.display()))?,
        );
        let journal = match settings.fsync {
            Fsync::Batch => Journal::open(&settings.dir),
            Fsync::Always => None,
        };
        let mut writer = Writer {
            signing,
            journal,
            journal_whole: true,
            settings,
            file,
            syncing,
            size,
            segment: tail.segment,
            seq: tail.seq,
            prev: tail.hash,
            written_seq: tail.seq,
            since_checkpoint: 0,
            last_checkpoint: Instant::now(),
            last_sync: Instant::now(),
            sync_requested: false,
            syncer_idle: false,
            pending: Vec::with_capacity(64 * 1024),
            lost: 0,
            closed: false,
            sessions: HashMap::new(),
            stamp: chain::Stamp::default(),
        };
        // Every run begins with a mark: session transcripts (and their
        // roots in checkpoints) start afresh with each run.
        let mut opening = vec![Record::new("writer_start")];
        if tail.seq > 0 && (!tail.clean || tail.cut.is_some()) {
            let mut repair = Record::new("repair");
            let reason = match tail.cut {
                Some(_) => "the previous run stopped mid-write; its torn end was cut",
                None => "the previous run did not shut down cleanly",
            };
            repair.str("reason", reason).u64("after_seq", tail.seq);
            if replayed > 0 {
                repair.u64("replayed_records", replayed);
            }
            if let Some((bytes, lines)) = tail.cut {
                repair
                    .u64("cut_bytes", bytes)
                    .u64("cut_lines", lines as u64);
            }
            opening.push(repair);
        }
        for record in opening {
            writer.seal(record);
        }
        if let Some(previous) = previous {
            writer.rotate_key(&previous);
        }
        for record in first {
            writer.seal(record);
        }
        writer
            .write_pending()
            .and_then(|()| writer.file.sync_data())
            .map_err(|e| format!("cannot write the audit log: {e}"))?;
        // While this file names a live process, verification treats an
        // end without a final checkpoint as a log still being written.
        let lock = writer.settings.dir.join(super::layout::WRITER_LOCK);
        std::fs::write(&lock, std::process::id().to_string())
            .map_err(|e| format!("cannot write `{}`: {e}", lock.display()))?;
        let (synced, _) = tokio::sync::watch::channel((writer.seq, None));
        let shared = Arc::new(Shared {
            writer: Mutex::new(writer),
            wake: Condvar::new(),
            synced,
            healthy: AtomicBool::new(true),
            failure: Mutex::new(None),
        });
        let syncer = shared.clone();
        std::thread::Builder::new()
            .name("airlock-audit-sync".into())
            .spawn(move || syncer.sync_loop())
            .map_err(|e| format!("cannot start the audit syncing thread: {e}"))?;
        Ok(AuditLog { shared })
    }

    /// Links, seals and writes one record; returns its sequence number, or
    /// `None` when it could not be written (see [`AuditLog::failure`]; the
    /// record then waits in memory, or is counted as lost if the backlog
    /// is full).
    ///
    /// A record the disk refuses is taken back out of the chain: its
    /// statement is refused, so the log must not later show it as run.
    pub fn append(&self, record: Record) -> Option<u64> {
        let started = Instant::now();
        let seq = self.append_now(record);
        crate::metrics::get().audit_append(started.elapsed());
        seq
    }

    fn append_now(&self, record: Record) -> Option<u64> {
        let mut w = self.admit()?;
        let before = w.mark(&record);
        let seq = w.seal(record);
        // In the journal it outlives the process; the syncing thread
        // writes it to the segment with the others of its window.
        let mut written = w.journaled() || self.shared.write(&mut w);
        if !written {
            w.undo(before);
        } else if w.since_checkpoint >= w.settings.checkpoint_every {
            w.checkpoint(false);
            written = self.shared.write(&mut w);
        }
        if w.settings.fsync == Fsync::Always || std::mem::take(&mut w.syncer_idle) {
            self.shared.wake.notify_one();
        }
        written.then_some(seq)
    }

    /// Links and seals one record that nothing waits on (a result, a
    /// session's end) and leaves it to be written with the next record
    /// written at once, or by the syncing thread within the batch window:
    /// one write for many records. A crash can lose such records of the
    /// last window (as `fsync = "batch"` can lose a window to a power
    /// cut), never a statement's. With `fsync = "always"` it is written
    /// at once.
    pub fn append_deferred(&self, record: Record) -> Option<u64> {
        let mut w = self.admit()?;
        if w.settings.fsync == Fsync::Always {
            drop(w);
            return self.append(record);
        }
        let seq = w.seal(record);
        if w.since_checkpoint >= w.settings.checkpoint_every {
            w.checkpoint(false);
        }
        if w.pending.len() >= DEFERRED_BYTES {
            self.shared.write(&mut w);
        }
        if std::mem::take(&mut w.syncer_idle) {
            self.shared.wake.notify_one();
        }
        crate::metrics::get().audit_backlog(w.pending.len());
        Some(seq)
    }

    /// The writer, unless the log is closed or its backlog full (the
    /// record is then counted as lost).
    fn admit(&self) -> Option<MutexGuard<'_, Writer>> {
        let mut w = self.shared.lock();
        if w.closed || w.pending.len() >= w.settings.backlog_bytes {
            w.lost += 1;
            return None;
        }
        Some(w)
    }

    /// Returns once record `seq` is on disk (fsynced): the syncing thread
    /// is woken at once rather than at the end of its window.
    pub async fn durable(&self, seq: u64) -> Result<(), String> {
        let mut watch = self.shared.synced.subscribe();
        if watch.borrow().0 >= seq {
            return Ok(());
        }
        self.shared.lock().sync_requested = true;
        self.shared.wake.notify_one();
        let state = watch
            .wait_for(|(synced, error)| *synced >= seq || error.is_some())
            .await
            .map_err(|_| "the audit log is closed".to_string())?;
        match &state.1 {
            Some(error) if state.0 < seq => Err(error.clone()),
            _ => Ok(()),
        }
    }

    /// Appends and waits until the record is on disk.
    pub async fn append_durable(&self, record: Record) -> Result<(), String> {
        match self.append(record) {
            Some(seq) => self.durable(seq).await,
            None => Err(self
                .failure()
                .unwrap_or_else(|| "the audit log is closed".into())),
        }
    }

    pub fn fsync(&self) -> Fsync {
        self.shared.lock().settings.fsync
    }

    /// Why the log cannot be written, if it cannot.
    pub fn failure(&self) -> Option<String> {
        if self.shared.healthy.load(Ordering::Relaxed) {
            return None;
        }
        self.shared
            .failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Writes a final checkpoint, makes everything durable and stops the
    /// syncing thread. Records appended afterwards are counted as lost.
    pub fn close(&self) {
        let mut w = self.shared.lock();
        if w.closed {
            return;
        }
        w.checkpoint(true);
        let written = self.shared.write(&mut w);
        let synced = written && w.file.sync_data().is_ok();
        w.closed = true;
        if synced {
            let _ = std::fs::remove_file(w.settings.dir.join(super::layout::WRITER_LOCK));
            let seq = w.written_seq;
            self.shared.synced.send_replace((seq, None));
        } else {
            tracing::error!(
                "the audit log could not be completed at shutdown; the next start records a repair"
            );
        }
        drop(w);
        self.shared.wake.notify_all();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes what is pending and keeps the health flag true to the result.
    fn write(&self, w: &mut Writer) -> bool {
        let written = w.write_pending();
        crate::metrics::get().audit_backlog(w.pending.len());
        match written {
            Ok(()) => {
                if !self.healthy.load(Ordering::Relaxed) {
                    self.recovered(w);
                }
                true
            }
            Err(e) => {
                let why = format!(
                    "the audit log cannot be written ({}): {e}",
                    w.settings.dir.display()
                );
                if self.healthy.swap(false, Ordering::Relaxed) {
                    tracing::error!(error = %why, "audit log write failed; statements are refused until it can be written");
                }
                *self.failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
                false
            }
        }
    }

    /// The disk takes writes again: say what was lost meanwhile, if anything.
    fn recovered(&self, w: &mut Writer) {
        if w.lost > 0 {
            let mut repair = Record::new("repair");
            repair
                .str(
                    "reason",
                    "records were lost while the audit log could not be written",
                )
                .u64("lost_records", w.lost);
            w.lost = 0;
            w.seal(repair);
            if w.write_pending().is_err() {
                return;
            }
        }
        self.healthy.store(true, Ordering::Relaxed);
        *self.failure.lock().unwrap_or_else(|e| e.into_inner()) = None;
        tracing::info!("the audit log is writable again");
    }

    /// Group commit: fsyncs whatever was written since the last fsync —
    /// at once when asked to (or with `fsync = "always"`), else once the
    /// batch window has passed. Also writes time-based checkpoints and
    /// retries a backlog the disk refused.
    fn sync_loop(&self) {
        let mut synced = self.synced.borrow().0;
        loop {
            let mut w = self.lock();
            let (file, target) = loop {
                if w.closed {
                    return;
                }
                if !w.pending.is_empty() {
                    self.write(&mut w);
                }
                if w.since_checkpoint > 0
                    && w.last_checkpoint.elapsed()
                        >= Duration::from_secs(w.settings.checkpoint_secs)
                {
                    w.checkpoint(false);
                    self.write(&mut w);
                }
                let dirty = w.written_seq > synced;
                let window = w.settings.window;
                let due = w.sync_requested
                    || w.settings.fsync == Fsync::Always
                    || w.last_sync.elapsed() >= window;
                if dirty && due {
                    w.sync_requested = false;
                    break (w.syncing.clone(), w.written_seq);
                }
                // Appends do not wake this thread (with `batch`) while it
                // has work: it looks again each window, so nothing written
                // waits longer. With nothing to do it sleeps until the
                // next record wakes it (or a time-based checkpoint is
                // due), rather than waking every window on an idle gateway.
                let busy = dirty || !w.pending.is_empty();
                w.syncer_idle = !busy;
                let wait = if busy {
                    window.saturating_sub(w.last_sync.elapsed())
                } else if w.since_checkpoint > 0 {
                    Duration::from_secs(w.settings.checkpoint_secs)
                        .saturating_sub(w.last_checkpoint.elapsed())
                } else {
                    Duration::from_secs(3600)
                };
                w = self
                    .wake
                    .wait_timeout(w, wait.max(Duration::from_micros(100)))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            };
            drop(w);
            let started = Instant::now();
            let result = file.sync_data();
            crate::metrics::get().audit_fsync(started.elapsed());
            self.lock().last_sync = Instant::now();
            match result {
                Ok(()) => {
                    synced = target;
                    self.synced.send_replace((synced, None));
                }
                Err(e) => {
                    let why = format!("the audit log cannot be synced to disk: {e}");
                    tracing::error!(error = %why, "audit log fsync failed");
                    self.synced.send_replace((synced, Some(why)));
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }
}

struct Writer {
    settings: LogSettings,
    signing: SigningKey,
    /// Where sealed records go before the segment, if a journal could be
    /// made.
    journal: Option<Journal>,
    /// Whether every pending line is in the journal: once one did not fit,
    /// records are written to the segment until it starts over.
    journal_whole: bool,
    file: File,
    /// The current segment, for the syncing thread.
    syncing: Arc<File>,
    /// Bytes of the current segment on disk (whole records only).
    size: u64,
    segment: u64,
    seq: u64,
    prev: Hash,
    /// The last sequence number in the file.
    written_seq: u64,
    since_checkpoint: u64,
    last_checkpoint: Instant,
    last_sync: Instant,
    sync_requested: bool,
    /// The syncing thread sleeps with nothing to do until woken: the next
    /// record must wake it (once, not every record).
    syncer_idle: bool,
    /// Sealed lines not yet in the file.
    pending: Vec<u8>,
    /// Records refused while the backlog was full.
    lost: u64,
    closed: bool,
    /// Each session's transcript so far, until the checkpoint after its end.
    sessions: HashMap<String, Transcript>,
    stamp: chain::Stamp,
}

/// A session's records so far: how many, and the root over their hashes.
#[derive(Clone, Copy)]
struct Transcript {
    records: u64,
    root: Hash,
    /// Records since the last checkpoint: it goes in the next one.
    touched: bool,
    ended: bool,
}

/// Where the chain stood before a record was sealed, to take it back.
struct Mark {
    pending: usize,
    journal: Option<usize>,
    journal_whole: bool,
    seq: u64,
    prev: Hash,
    since_checkpoint: u64,
    /// The session the record belongs to, and its transcript before.
    session: Option<(String, Option<Transcript>)>,
}

impl Writer {
    /// Whether every record not yet in the segment is in the journal.
    fn journaled(&self) -> bool {
        self.journal.is_some() && self.journal_whole
    }

    /// Where the chain stands before `record` is sealed.
    fn mark(&self, record: &Record) -> Mark {
        let session = record
            .session_id()
            .map(|id| (id.to_string(), self.sessions.get(id.as_ref()).copied()));
        Mark {
            pending: self.pending.len(),
            journal: self.journal.as_ref().map(Journal::position),
            journal_whole: self.journal_whole,
            seq: self.seq,
            prev: self.prev,
            since_checkpoint: self.since_checkpoint,
            session,
        }
    }

    /// Takes the record sealed since `mark` out of the chain (it was never
    /// written).
    fn undo(&mut self, mark: Mark) {
        self.pending.truncate(mark.pending);
        // A refused statement's record must not come back from the
        // journal on the next start.
        if let (Some(journal), Some(at)) = (&mut self.journal, mark.journal) {
            journal.cut_back(at);
        }
        self.journal_whole = mark.journal_whole;
        self.seq = mark.seq;
        self.prev = mark.prev;
        self.since_checkpoint = mark.since_checkpoint;
        if let Some((id, before)) = mark.session {
            match before {
                Some(t) => {
                    self.sessions.insert(id, t);
                }
                None => {
                    self.sessions.remove(&id);
                }
            }
        }
    }

    /// Links and seals one record onto the pending bytes; its sequence number.
    fn seal(&mut self, record: Record) -> u64 {
        self.seal_signed(record, None)
    }

    /// Seals a record, first signing it (all but `hash` and `signature`)
    /// with `signer` under the domain given, when given.
    fn seal_signed(&mut self, mut record: Record, signer: Option<(&SigningKey, &[u8])>) -> u64 {
        self.seq += 1;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let mut prev = [0u8; 64];
        record
            .u64("v", chain::VERSION)
            .u64("seq", self.seq)
            .str("ts", self.stamp.at(now))
            .str("prev", crate::hex::encode_into(&self.prev, &mut prev));
        if let Some((key, domain)) = signer {
            let signature = key.sign(&record.signed_message(domain));
            record.str("signature", &chain::hex(&signature.to_bytes()));
        }
        let is_checkpoint = record.get("kind") == Some(b"\"checkpoint\"".as_slice());
        let start = self.pending.len();
        let hash = record.seal_into(&self.prev, &mut self.pending);
        self.pending.push(b'\n');
        if let Some(journal) = &mut self.journal {
            self.journal_whole = self.journal_whole && journal.put(&self.pending[start..]);
        }
        self.prev = hash;
        if !is_checkpoint {
            self.since_checkpoint += 1;
        }
        if let Some(session) = record.session_id() {
            let ended = record.get("kind") == Some(b"\"session_end\"".as_slice());
            let transcript = match self.sessions.get_mut(session.as_ref()) {
                Some(t) => t,
                None => self
                    .sessions
                    .entry(session.to_string())
                    .or_insert(Transcript {
                        records: 0,
                        root: GENESIS,
                        touched: false,
                        ended: false,
                    }),
            };
            transcript.records += 1;
            transcript.root = chain::session_root(&transcript.root, &hash);
            transcript.touched = true;
            transcript.ended |= ended;
        }
        self.seq
    }

    /// Introduces this writer's key: a `key_rotation` record signed by the
    /// key that signed the log so far, then a checkpoint the new key signs.
    fn rotate_key(&mut self, previous: &SigningKey) {
        let mut record = Record::new("key_rotation");
        record
            .str(
                "public_key",
                &chain::hex(previous.verifying_key().as_bytes()),
            )
            .str(
                "new_public_key",
                &chain::hex(self.signing.verifying_key().as_bytes()),
            );
        self.seal_signed(record, Some((previous, chain::ROTATION_DOMAIN)));
        self.checkpoint(false);
    }

    /// A checkpoint vouching, by signature, for the record before it.
    /// Its signature covers its own fields: `prev` (the chain head, and so
    /// every record before it), `final`, and the transcript root and record
    /// count of each session with records since the checkpoint before (of
    /// every session still open, in a final one).
    fn checkpoint(&mut self, last: bool) {
        let mut record = Record::new("checkpoint");
        record.str(
            "public_key",
            &chain::hex(self.signing.verifying_key().as_bytes()),
        );
        let mut sessions = Map::new();
        for (id, t) in &mut self.sessions {
            if t.touched || last {
                let mut entry = Map::new();
                entry.insert("records".into(), t.records.into());
                entry.insert("root".into(), chain::hex(&t.root).into());
                if t.ended {
                    entry.insert("ended".into(), true.into());
                }
                sessions.insert(id.clone(), Value::Object(entry));
                t.touched = false;
            }
        }
        // An ended session's root is now signed; nothing more can join it.
        self.sessions.retain(|_, t| !t.ended);
        record.value("sessions", &Value::Object(sessions));
        if last {
            record.bool("final", true);
        }
        let signing = self.signing.clone();
        self.seal_signed(record, Some((&signing, chain::CHECKPOINT_DOMAIN)));
        self.since_checkpoint = 0;
        self.last_checkpoint = Instant::now();
    }

    /// Writes the pending lines, rotating first when the segment is full.
    /// A failed write is cut back to the last whole record, so the file
    /// never holds half a line while the gateway runs.
    fn write_pending(&mut self) -> std::io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if self.size > 0 && self.size + self.pending.len() as u64 > self.settings.segment_bytes {
            self.rotate()?;
        }
        if let Err(e) = self.file.write_all(&self.pending) {
            let _ = self.file.set_len(self.size);
            return Err(e);
        }
        self.size += self.pending.len() as u64;
        self.pending.clear();
        self.written_seq = self.seq;
        if let Some(journal) = &mut self.journal {
            journal.start_over();
        }
        self.journal_whole = true;
        Ok(())
    }

    /// Starts the next segment; its first record links to this one's last.
    fn rotate(&mut self) -> std::io::Result<()> {
        self.file.sync_data()?;
        let path = segment_path(&self.settings.dir, self.segment + 1);
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let syncing = Arc::new(file.try_clone()?);
        if let Ok(dir) = File::open(&self.settings.dir) {
            let _ = dir.sync_all();
        }
        self.segment += 1;
        self.file = file;
        self.syncing = syncing;
        self.size = 0;
        Ok(())
    }
}
