//! The columns masking has found sensitive values in, learned from results
//! as they pass and kept across restarts.
//!
//! A policy rule with `transforms = "masked-columns"` holds statements that
//! read such a column through a reversible transform (`reverse(email)`,
//! `card + 1`; see `sql::transforms`): content detection cannot see through
//! those, but it has already seen what the column holds.
//!
//! Columns are known by the name the result gave them, lower-cased, across
//! every database the gateway serves: a name flagged in one database counts
//! in all of them, which can only hold more, never less. A result label is
//! not always the column's name (`SELECT email AS e`), so the column it
//! comes from is learned too: from the protocol where it says so (MySQL's
//! original column name), and from the statements the gateway classified
//! (an output name and the columns it reads, [`MaskedColumns::note_outputs`]).
//! Those notes are shared by all sessions: a label that two statements give
//! to different columns flags both, which again can only hold more. Learning costs a
//! read lock and a set lookup per masked column per result; only a name seen
//! for the first time takes the write lock and is appended to the file.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::sync::{Mutex, RwLock, RwLockReadGuard};

use super::MaskStats;

/// Beyond this many names the set stops growing (and says so once): a
/// result with a column per row value cannot grow it without bound.
const MAX_COLUMNS: usize = 100_000;
/// Output names whose source columns are remembered; beyond this the notes
/// are cleared and start again (a label seen again is noted again).
const MAX_OUTPUTS: usize = 10_000;

/// The learned column names; see the module docs.
#[derive(Default)]
pub struct MaskedColumns {
    names: RwLock<HashSet<String>>,
    /// Output name → the columns statements read under it.
    outputs: RwLock<HashMap<String, Vec<String>>>,
    /// Where new names are appended (one JSON string per line); `None`
    /// keeps them in memory only.
    file: Option<Mutex<File>>,
}

impl MaskedColumns {
    /// A set kept in memory only (tests, tools).
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// The set stored at `path`, created when missing. A line that cannot
    /// be read as a name is skipped: losing a learned name only means it
    /// is learned again.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let mut names = HashSet::new();
        match File::open(path) {
            Ok(f) => {
                for line in BufReader::new(f).lines() {
                    if let Ok(name) = serde_json::from_str::<String>(&line?) {
                        names.insert(name);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self {
            names: RwLock::new(names),
            outputs: RwLock::default(),
            file: Some(Mutex::new(file)),
        })
    }

    /// Remembers which columns a classified statement reads under each of
    /// its output names (see [`crate::sql::Statement::outputs`]).
    pub fn note_outputs(&self, outputs: &[(String, Vec<String>)]) {
        if outputs.is_empty() {
            return;
        }
        let mut map = self.outputs.write().unwrap_or_else(|e| e.into_inner());
        if map.len() + outputs.len() > MAX_OUTPUTS {
            map.clear();
        }
        for (name, sources) in outputs {
            let known = map.entry(name.clone()).or_default();
            for s in sources {
                if !known.contains(s) && known.len() < 64 {
                    known.push(s.clone());
                }
            }
        }
    }

    /// Adds the columns `stats` found values in.
    pub fn learn(&self, stats: &MaskStats) {
        if stats.is_empty() {
            return;
        }
        let new: Vec<String> = {
            let known = self.read();
            let outputs = self.outputs.read().unwrap_or_else(|e| e.into_inner());
            let mut seen = HashSet::new();
            let labels = stats.columns.iter().map(|(name, _)| name.to_lowercase());
            let mut all: Vec<String> = Vec::new();
            for label in labels {
                if let Some(sources) = outputs.get(&label) {
                    all.extend(sources.iter().cloned());
                }
                all.push(label);
            }
            all.extend(stats.originals.iter().map(|n| n.to_lowercase()));
            all.into_iter()
                .filter(|name| !known.contains(name) && seen.insert(name.clone()))
                .collect()
        };
        if new.is_empty() {
            return;
        }
        let mut names = self.names.write().unwrap_or_else(|e| e.into_inner());
        for name in new {
            if names.len() >= MAX_COLUMNS {
                tracing::warn!(
                    limit = MAX_COLUMNS,
                    "masked-column set is full; further columns are not learned"
                );
                return;
            }
            if !names.insert(name.clone()) {
                continue;
            }
            if let Some(file) = &self.file {
                let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
                let line = serde_json::to_string(&name).unwrap_or_default();
                if let Err(e) = writeln!(file, "{line}") {
                    tracing::warn!(error = %e, "cannot record a masked column; it is kept in memory");
                }
            }
        }
    }

    /// The names learned so far.
    pub fn read(&self) -> RwLockReadGuard<'_, HashSet<String>> {
        self.names.read().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask::Kind;

    fn stats(names: &[&str]) -> MaskStats {
        MaskStats {
            columns: names
                .iter()
                .map(|n| (n.to_string(), vec![(Kind::Email, 1)]))
                .collect(),
            ..MaskStats::default()
        }
    }

    #[test]
    fn learned_names_are_lower_cased_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("masked-columns");
        let set = MaskedColumns::open(&path).unwrap();
        set.learn(&stats(&["Email", "card"]));
        set.learn(&stats(&["email", "line\nbreak"]));
        assert!(set.read().contains("email"));
        drop(set);
        let again = MaskedColumns::open(&path).unwrap();
        let names = again.read();
        assert_eq!(names.len(), 3);
        assert!(names.contains("card") && names.contains("line\nbreak"));
    }

    #[test]
    fn the_columns_behind_a_label_are_learned_with_it() {
        let set = MaskedColumns::in_memory();
        set.note_outputs(&[("e".into(), vec!["email".into()])]);
        set.learn(&stats(&["E"]));
        let mut original = stats(&["c"]);
        original.originals.push("Card".into());
        set.learn(&original);
        let names = set.read();
        for name in ["e", "email", "c", "card"] {
            assert!(names.contains(name), "{name}");
        }
        assert_eq!(names.len(), 4);
    }

    #[test]
    fn a_damaged_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("masked-columns");
        std::fs::write(&path, "\"ssn\"\nnot json\n").unwrap();
        let set = MaskedColumns::open(&path).unwrap();
        assert!(set.read().contains("ssn"));
        assert_eq!(set.read().len(), 1);
    }
}
