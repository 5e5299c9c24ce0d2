//! The statement journal: where a sealed record is put before the
//! statement it describes is forwarded, without a system call.
//!
//! The segments are written by `write`, and a `write` per statement costs
//! the kernel an update of the file's size and times each time. The
//! journal is a small file of the audit directory, filled with zeros once
//! so that its blocks are allocated, and mapped into memory: copying a
//! record into it puts the record in the page cache, which outlives the
//! process — a `kill -9` loses nothing copied. The segment is then written
//! once per batch window for every record since the last, and the journal
//! starts over. On start, records the journal holds beyond the end of the
//! last segment are appended to it ([`replay`]), so the segments stay
//! plain JSON Lines that any reader can tail.
//!
//! Each record is a frame: its length (u32, little-endian), the CRC-32 of
//! its bytes, then the line itself. A journal that starts over leaves
//! older frames behind the newer ones; their sequence numbers, lower than
//! the newer ones', end a replay, as does a torn frame's checksum.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use memmap2::MmapMut;
use serde_json::{Map, Value};

use super::chain::{self, Hash};

/// The journal's size: the records of a 10 ms batch window at about
/// 20,000 statements a second fit. A record that does not is written to
/// the segment at once, as without a journal.
pub const JOURNAL_BYTES: usize = 128 * 1024;

const FRAME_HEAD: usize = 8;

pub fn journal_path(dir: &Path) -> PathBuf {
    dir.join("journal")
}

pub struct Journal {
    map: MmapMut,
    at: usize,
}

impl Journal {
    /// Creates or reuses the journal under `dir`, its blocks allocated.
    /// `None` when it cannot be (a disk too small or full, no `mmap`):
    /// records are then written to the segment one by one.
    pub fn open(dir: &Path) -> Option<Journal> {
        let path = journal_path(dir);
        match Self::open_at(&path) {
            Ok(journal) => Some(journal),
            Err(e) => {
                tracing::warn!(
                    path = %path.display(),
                    error = %e,
                    "no audit journal: each statement's record is written to the segment on its own"
                );
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    fn open_at(path: &Path) -> std::io::Result<Journal> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        if file.metadata()?.len() != JOURNAL_BYTES as u64 {
            // Written, not sized: a sparse file would need blocks (and
            // could find the disk full) when a page is first touched.
            file.set_len(0)?;
            file.write_all(&vec![0u8; JOURNAL_BYTES])?;
            file.sync_all()?;
        }
        // SAFETY: the mapping is of the audit directory's own working
        // file, whose length never changes while the gateway runs; the
        // process reads and writes it only through this map.
        let map = unsafe { MmapMut::map_mut(&file)? };
        let mut journal = Journal { map, at: 0 };
        journal.start_over();
        Ok(journal)
    }

    /// Copies `line` into the journal; false when it does not fit.
    pub fn put(&mut self, line: &[u8]) -> bool {
        let end = self.at + FRAME_HEAD + line.len();
        if end + FRAME_HEAD > self.map.len() || line.len() > u32::MAX as usize {
            return false;
        }
        let head = &mut self.map[self.at..self.at + FRAME_HEAD];
        head[..4].copy_from_slice(&(line.len() as u32).to_le_bytes());
        head[4..].copy_from_slice(&crc32fast::hash(line).to_le_bytes());
        self.map[self.at + FRAME_HEAD..end].copy_from_slice(line);
        self.at = end;
        true
    }

    /// Everything put so far is in the segment: new frames start at the
    /// beginning again.
    pub fn start_over(&mut self) {
        self.at = 0;
    }

    /// Where the next frame goes.
    pub fn position(&self) -> usize {
        self.at
    }

    /// Takes back the frames from `at` on: a zero length there ends a
    /// replay before them.
    pub fn cut_back(&mut self, at: usize) {
        if at < self.at {
            self.map[at..at + 4].fill(0);
            self.at = at;
        }
    }
}

/// The lines of `journal`'s frames that continue a chain ending at
/// `seq` / `hash`, in order: frames at or before `seq` are passed over,
/// and the first frame that does not continue the chain (torn, older, or
/// not linked) ends them.
pub fn continuation(journal: &[u8], mut seq: u64, mut hash: Hash) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + FRAME_HEAD <= journal.len() {
        let len = u32::from_le_bytes(journal[at..at + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(journal[at + 4..at + 8].try_into().expect("4 bytes"));
        let start = at + FRAME_HEAD;
        let Some(line) = journal.get(start..start + len) else {
            break;
        };
        if len == 0 || crc32fast::hash(line) != crc || line.last() != Some(&b'\n') {
            break;
        }
        let Some((line_seq, prev, line_hash)) = link(&line[..len - 1]) else {
            break;
        };
        if line_seq <= seq {
            at = start + len;
            continue;
        }
        if line_seq != seq + 1 || prev != hash {
            break;
        }
        out.extend_from_slice(line);
        seq = line_seq;
        hash = line_hash;
        at = start + len;
    }
    out
}

/// A format-2 record's sequence number, `prev` and own hash, when the
/// hash is right.
fn link(line: &[u8]) -> Option<(u64, Hash, Hash)> {
    let record: Map<String, Value> = serde_json::from_slice(line).ok()?;
    let prev = chain::unhex::<32>(record.get("prev")?.as_str()?)?;
    let hash = chain::unhex::<32>(record.get("hash")?.as_str()?)?;
    let seq = record.get("seq")?.as_u64()?;
    (record.get("v").and_then(Value::as_u64) == Some(chain::VERSION)
        && chain::record_hash(&prev, &chain::canonical(&record)) == hash)
        .then_some((seq, prev, hash))
}

/// Appends to `segment` the records the journal under `dir` holds past
/// the chain's end (`seq`, `hash`), and makes them durable; the new end
/// and how many records were appended.
pub fn replay(
    dir: &Path,
    segment: &Path,
    seq: u64,
    hash: Hash,
) -> Result<(u64, Hash, u64), String> {
    let path = journal_path(dir);
    let journal = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((seq, hash, 0)),
        Err(e) => return Err(format!("cannot read `{}`: {e}", path.display())),
    };
    let lines = continuation(&journal, seq, hash);
    if lines.is_empty() {
        return Ok((seq, hash, 0));
    }
    let mut end = (seq, hash);
    let mut count = 0;
    for line in lines.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let (s, _, h) = link(line).expect("checked by continuation");
        end = (s, h);
        count += 1;
    }
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(segment)
        .map_err(|e| format!("cannot open `{}`: {e}", segment.display()))?;
    file.write_all(&lines)
        .and_then(|()| file.sync_data())
        .map_err(|e| format!("cannot write `{}`: {e}", segment.display()))?;
    Ok((end.0, end.1, count))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::chain::{Record, GENESIS};

    /// `n` chained lines from `seq`/`prev`, and the chain's end.
    fn lines(n: u64, mut seq: u64, mut prev: Hash) -> (Vec<Vec<u8>>, u64, Hash) {
        let mut out = Vec::new();
        for i in 0..n {
            seq += 1;
            let mut record = Record::new("statement");
            record
                .str("sql", &format!("SELECT {i}"))
                .u64("v", chain::VERSION)
                .u64("seq", seq)
                .str("prev", &chain::hex(&prev));
            let mut line = Vec::new();
            prev = record.seal_into(&prev, &mut line);
            line.push(b'\n');
            out.push(line);
        }
        (out, seq, prev)
    }

    fn journal_of(frames: &[Vec<u8>]) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path()).unwrap();
        for f in frames {
            assert!(journal.put(f));
        }
        journal.map.to_vec()
    }

    #[test]
    fn frames_past_the_chain_end_are_replayed_in_order() {
        let (first, seq, hash) = lines(3, 0, GENESIS);
        let (more, _, _) = lines(4, seq, hash);
        let all: Vec<Vec<u8>> = first.iter().chain(more.iter()).cloned().collect();
        let bytes = journal_of(&all);
        // The segment holds the first three: the other four follow.
        assert_eq!(continuation(&bytes, seq, hash), more.concat());
        // The segment holds all: nothing.
        let (_, end_seq, end_hash) = lines(7, 0, GENESIS);
        assert!(continuation(&bytes, end_seq, end_hash).is_empty());
    }

    #[test]
    fn torn_stale_and_unlinked_frames_end_the_replay() {
        let (chain7, _, _) = lines(7, 0, GENESIS);
        // A torn last frame: its checksum fails.
        let mut bytes = journal_of(&chain7);
        let last_start = bytes.len() - bytes.iter().rev().position(|&b| b != 0).unwrap() - 5;
        bytes[last_start] ^= 0xff;
        assert_eq!(continuation(&bytes, 0, GENESIS), chain7[..6].concat());
        // Started over: two new frames over seven old ones; the old ones
        // after them are older and end the replay.
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path()).unwrap();
        for f in &chain7 {
            assert!(journal.put(f));
        }
        journal.start_over();
        let (_, seq5, hash5) = lines(5, 0, GENESIS);
        let (next, _, _) = lines(2, seq5, hash5);
        for f in &next {
            assert!(journal.put(f));
        }
        assert_eq!(continuation(&journal.map, seq5, hash5), next.concat());
        // The segment already holds the first new one.
        let (_, seq6, hash6) = lines(1, seq5, hash5);
        assert_eq!(continuation(&journal.map, seq6, hash6), next[1..].concat());
        // A chain of the same length that is not this one: nothing.
        let (_, seq7, hash7) = lines(7, 0, GENESIS);
        assert!(continuation(&journal.map, seq7 - 1, hash7).is_empty());
        // Frames of another chain do not link.
        let (other, _, _) = lines(2, 5, [7; 32]);
        assert!(continuation(&journal_of(&other), seq5, hash5).is_empty());
    }

    #[test]
    fn frames_cut_back_are_not_replayed() {
        let (chain3, _, _) = lines(3, 0, GENESIS);
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path()).unwrap();
        assert!(journal.put(&chain3[0]));
        let after_first = journal.position();
        assert!(journal.put(&chain3[1]));
        journal.cut_back(after_first);
        assert_eq!(continuation(&journal.map, 0, GENESIS), chain3[0]);
        // Put again, a different record in its place.
        let (first, seq1, hash1) = lines(1, 0, GENESIS);
        let (other, _, _) = lines(1, seq1, [1; 32]);
        assert!(journal.put(&other[0]));
        assert_eq!(continuation(&journal.map, seq1, hash1), Vec::<u8>::new());
        assert_eq!(continuation(&journal.map, 0, GENESIS), first[0]);
    }

    #[test]
    fn a_record_that_does_not_fit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path()).unwrap();
        assert!(!journal.put(&vec![b'x'; JOURNAL_BYTES]));
        assert!(journal.put(b"{}\n"));
        assert_eq!(journal.position(), FRAME_HEAD + 3);
    }
}
