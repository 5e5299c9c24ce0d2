//! Where the log lives on disk: segment files and the writer's lock. The
//! writer (`log`) and the readers (`verify`, `read`) share this and nothing
//! else.

use std::path::{Path, PathBuf};

/// Segment files are `NNNNNNNN.jsonl`, numbered from 1.
pub fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:08}.jsonl"))
}

/// The segments under `dir`, in order.
pub fn segments(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        // Digits only: `parse` alone would also take a sign.
        if let Some(n) = name
            .strip_suffix(".jsonl")
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<u64>().ok())
        {
            found.push((n, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// The file a running writer holds; verification uses it to tell a log
/// that is being written from one cut short.
pub const WRITER_LOCK: &str = "writer.pid";

/// Whether the process named in the writer lock is alive.
pub fn writer_running(dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(dir.join(WRITER_LOCK)) else {
        return false;
    };
    let Ok(pid) = text.trim().parse::<u32>() else {
        return false;
    };
    Path::new(&format!("/proc/{pid}")).exists()
}
