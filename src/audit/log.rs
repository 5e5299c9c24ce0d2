//! The chained audit log on disk: segments of JSON Lines under one
//! directory, written by one thread with group commit.
//!
//! Senders hand records to a bounded queue; when the disk is slow the queue
//! fills and senders wait — a record is never dropped. The writer drains
//! what is queued, links and seals each record, writes the batch and
//! fsyncs it (every batch with `fsync = "always"`, at most every `window`
//! with `"batch"`, and always before acknowledging a record a caller waits
//! on). Every `checkpoint_every` records or `checkpoint_secs` a checkpoint
//! signed with the Ed25519 key vouches for the chain so far; a clean
//! shutdown writes a final one. On start, a torn tail (a crash mid-write)
//! is cut and a `repair` record says what was cut.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ed25519_dalek::{Signer, SigningKey};
use serde_json::{Map, Value};

use super::chain::{self, Hash, GENESIS};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    Always,
    Batch,
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    pub dir: PathBuf,
    pub chain_key: Hash,
    pub signing_key: [u8; 32],
    pub fsync: Fsync,
    pub window: Duration,
    pub segment_bytes: u64,
    pub checkpoint_every: u64,
    pub checkpoint_secs: u64,
    pub queue: usize,
}

/// A record on its way to the writer, and who waits for it to be durable.
enum Job {
    Record(
        Map<String, Value>,
        Option<tokio::sync::oneshot::Sender<Result<(), String>>>,
    ),
    Shutdown(std::sync::mpsc::Sender<()>),
}

/// The handle senders use. Cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    tx: SyncSender<Job>,
    failed: Arc<Mutex<Option<String>>>,
    healthy: Arc<AtomicBool>,
}

/// Segment files are `NNNNNNNN.jsonl`, numbered from 1.
fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:08}.jsonl"))
}

/// The segments under `dir`, in order.
pub fn segments(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(n) = name
            .strip_suffix(".jsonl")
            .and_then(|n| n.parse::<u64>().ok())
        {
            found.push((n, entry.path()));
        }
    }
    found.sort();
    Ok(found)
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
}

/// Reads the last segment, cutting a torn or unverifiable end.
fn recover(dir: &Path, key: &Hash) -> Result<Tail, String> {
    let segs = segments(dir).map_err(|e| format!("cannot list `{}`: {e}", dir.display()))?;
    recover_in(&segs, key)
}

fn recover_in(segs: &[(u64, PathBuf)], key: &Hash) -> Result<Tail, String> {
    // The hash the last segment starts from is the previous segment's end.
    let Some((last_n, last_path)) = segs.last().cloned() else {
        return Ok(Tail {
            seq: 0,
            hash: GENESIS,
            segment: 1,
            clean: true,
            cut: None,
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
                let ok =
                    links && chain::record_hash(key, &prev, &chain::canonical(&record)) == hash;
                let clean = record.get("kind").and_then(Value::as_str) == Some("checkpoint")
                    && record.get("final").and_then(Value::as_bool) == Some(true);
                ok.then_some((seq, hash, clean))
            });
        match parsed {
            Some(t) if bad_lines == 0 => {
                tail = Some(t);
                good_end = offset;
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
        Some((seq, hash, clean)) => Ok(Tail { seq, hash, segment: last_n, clean, cut }),
        None if last_n == 1 => Ok(Tail { seq: 0, hash: GENESIS, segment: 1, clean: false, cut }),
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
    /// Opens (or creates) the log, repairs a torn end, and starts the
    /// writer thread. `first` records are written before any other
    /// (`policy_loaded`, for one).
    pub fn open(settings: LogSettings, first: Vec<Map<String, Value>>) -> Result<AuditLog, String> {
        std::fs::create_dir_all(&settings.dir).map_err(|e| {
            format!(
                "cannot create audit directory `{}`: {e}",
                settings.dir.display()
            )
        })?;
        let tail = recover(&settings.dir, &settings.chain_key)?;
        let path = segment_path(&settings.dir, tail.segment);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| format!("cannot open `{}`: {e}", path.display()))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let (tx, rx) = sync_channel(settings.queue.max(1));
        let failed = Arc::new(Mutex::new(None));
        let healthy = Arc::new(AtomicBool::new(true));
        let mut writer = Writer {
            signing: SigningKey::from_bytes(&settings.signing_key),
            settings,
            file,
            size,
            segment: tail.segment,
            seq: tail.seq,
            prev: tail.hash,
            since_checkpoint: 0,
            last_checkpoint: Instant::now(),
            last_sync: Instant::now(),
            buffer: Vec::with_capacity(64 * 1024),
            failed: failed.clone(),
            healthy: healthy.clone(),
        };
        let mut opening = Vec::new();
        if tail.seq > 0 && (!tail.clean || tail.cut.is_some()) {
            let mut repair = Map::new();
            repair.insert("kind".into(), "repair".into());
            let reason = match tail.cut {
                Some(_) => "the previous run stopped mid-write; its torn end was cut",
                None => "the previous run did not shut down cleanly",
            };
            repair.insert("reason".into(), reason.into());
            repair.insert("after_seq".into(), tail.seq.into());
            if let Some((bytes, lines)) = tail.cut {
                repair.insert("cut_bytes".into(), bytes.into());
                repair.insert("cut_lines".into(), (lines as u64).into());
            }
            opening.push(repair);
        }
        opening.extend(first);
        for record in opening {
            writer.append(record);
        }
        writer
            .flush(true)
            .map_err(|e| format!("cannot write the audit log: {e}"))?;
        // While this file names a live process, verification treats an
        // end without a final checkpoint as a log still being written.
        let lock = writer.settings.dir.join(super::verify::WRITER_LOCK);
        std::fs::write(&lock, std::process::id().to_string())
            .map_err(|e| format!("cannot write `{}`: {e}", lock.display()))?;
        std::thread::Builder::new()
            .name("airlock-audit".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| format!("cannot start the audit writer: {e}"))?;
        Ok(AuditLog {
            tx,
            failed,
            healthy,
        })
    }

    /// Queues a record; waits while the queue is full.
    pub fn append(&self, record: Map<String, Value>) {
        if self.tx.send(Job::Record(record, None)).is_err() {
            self.fail("the audit writer has stopped".into());
        }
    }

    /// Queues a record and returns when it is on disk (fsynced).
    pub async fn append_durable(&self, record: Map<String, Value>) -> Result<(), String> {
        let (done, wait) = tokio::sync::oneshot::channel();
        let tx = self.tx.clone();
        // The queue may be full: wait for room off the async threads.
        tokio::task::spawn_blocking(move || tx.send(Job::Record(record, Some(done))))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|_| "the audit writer has stopped".to_string())?;
        wait.await
            .map_err(|_| "the audit writer has stopped".to_string())?
    }

    /// Why the log cannot be written, if it cannot.
    pub fn failure(&self) -> Option<String> {
        if self.healthy.load(Ordering::Relaxed) {
            return None;
        }
        self.failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn fail(&self, why: String) {
        *self.failed.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
        self.healthy.store(false, Ordering::Relaxed);
    }

    /// Writes a final checkpoint and stops the writer.
    pub fn close(&self) {
        let (done, wait) = std::sync::mpsc::channel();
        if self.tx.send(Job::Shutdown(done)).is_ok() {
            let _ = wait.recv_timeout(Duration::from_secs(10));
        }
    }
}

struct Writer {
    settings: LogSettings,
    signing: SigningKey,
    file: File,
    size: u64,
    segment: u64,
    seq: u64,
    prev: Hash,
    since_checkpoint: u64,
    last_checkpoint: Instant,
    last_sync: Instant,
    buffer: Vec<u8>,
    failed: Arc<Mutex<Option<String>>>,
    healthy: Arc<AtomicBool>,
}

impl Writer {
    fn run(mut self, rx: Receiver<Job>) {
        let mut waiting: Vec<tokio::sync::oneshot::Sender<Result<(), String>>> = Vec::new();
        loop {
            let first = match rx.recv_timeout(self.settings.window.max(Duration::from_millis(1))) {
                Ok(job) => Some(job),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let mut shutdown = None;
            let mut jobs: Vec<Job> = first.into_iter().collect();
            while jobs.len() < 4096 {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            for job in jobs {
                match job {
                    Job::Record(record, ack) => {
                        self.append(record);
                        if self.since_checkpoint >= self.settings.checkpoint_every {
                            self.checkpoint(false);
                        }
                        if let Some(ack) = ack {
                            waiting.push(ack);
                        }
                    }
                    Job::Shutdown(done) => shutdown = Some(done),
                }
            }
            let due = self.since_checkpoint >= self.settings.checkpoint_every
                || (self.since_checkpoint > 0
                    && self.last_checkpoint.elapsed()
                        >= Duration::from_secs(self.settings.checkpoint_secs));
            if due || shutdown.is_some() {
                self.checkpoint(shutdown.is_some());
            }
            let must_sync = !waiting.is_empty()
                || shutdown.is_some()
                || self.settings.fsync == Fsync::Always
                || self.last_sync.elapsed() >= self.settings.window;
            let result = self
                .flush(must_sync)
                .map_err(|e| format!("the audit log cannot be written: {e}"));
            if let Err(why) = &result {
                tracing::error!(error = %why, "audit log write failed; statements are refused until it can be written");
                *self.failed.lock().unwrap_or_else(|e| e.into_inner()) = Some(why.clone());
                self.healthy.store(false, Ordering::Relaxed);
            }
            if must_sync || result.is_err() {
                for ack in waiting.drain(..) {
                    let _ = ack.send(result.clone());
                }
            }
            if let Some(done) = shutdown {
                if result.is_ok() {
                    let _ =
                        std::fs::remove_file(self.settings.dir.join(super::verify::WRITER_LOCK));
                }
                let _ = done.send(());
                return;
            }
        }
    }

    /// Links, seals and buffers one record.
    fn append(&mut self, mut record: Map<String, Value>) {
        self.seq += 1;
        record.insert("v".into(), chain::VERSION.into());
        record.insert("seq".into(), self.seq.into());
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        record.insert("ts".into(), chain::timestamp(now).into());
        record.insert("prev".into(), chain::hex(&self.prev).into());
        let (line, hash) = chain::seal(&self.settings.chain_key, &self.prev, &mut record);
        self.buffer.extend_from_slice(&line);
        self.buffer.push(b'\n');
        self.prev = hash;
        if record.get("kind").and_then(Value::as_str) != Some("checkpoint") {
            self.since_checkpoint += 1;
        }
    }

    /// A checkpoint vouching, by signature, for the record before it.
    fn checkpoint(&mut self, last: bool) {
        let signature = self
            .signing
            .sign(&chain::checkpoint_message(self.seq, &self.prev));
        let mut record = Map::new();
        record.insert("kind".into(), "checkpoint".into());
        record.insert("signed_seq".into(), self.seq.into());
        record.insert("signed_hash".into(), chain::hex(&self.prev).into());
        record.insert("signature".into(), chain::hex(&signature.to_bytes()).into());
        record.insert(
            "public_key".into(),
            chain::hex(self.signing.verifying_key().as_bytes()).into(),
        );
        if last {
            record.insert("final".into(), true.into());
        }
        self.append(record);
        self.since_checkpoint = 0;
        self.last_checkpoint = Instant::now();
    }

    fn flush(&mut self, sync: bool) -> std::io::Result<()> {
        if !self.buffer.is_empty() {
            if self.size > 0 && self.size + self.buffer.len() as u64 > self.settings.segment_bytes {
                self.rotate()?;
            }
            self.file.write_all(&self.buffer)?;
            self.size += self.buffer.len() as u64;
            self.buffer.clear();
        }
        if sync {
            self.file.sync_data()?;
            self.last_sync = Instant::now();
        }
        Ok(())
    }

    /// Starts the next segment; its first record links to this one's last.
    fn rotate(&mut self) -> std::io::Result<()> {
        self.file.sync_data()?;
        self.segment += 1;
        let path = segment_path(&self.settings.dir, self.segment);
        self.file = OpenOptions::new().create(true).append(true).open(&path)?;
        self.file.seek(SeekFrom::End(0))?;
        self.size = 0;
        if let Ok(dir) = File::open(&self.settings.dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}
