//! Each case's own directory, and the registry of those that exist right now, so that a gate
//! told to stop (SIGINT, SIGTERM, SIGHUP) can kill its targets and remove every one of them.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::conform::verdict::Problem;

/// Every case directory that exists right now.
static DIRECTORIES: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
/// Set by [`abort_run`]: no case creates a directory any more.
static ABORTED: AtomicBool = AtomicBool::new(false);

/// A new empty directory `udsping-conform-XXXXXX` in the temporary directory, removed (with
/// everything in it) when dropped.
pub(crate) struct CaseDir(tempfile::TempDir);

impl CaseDir {
    pub(crate) fn new() -> Result<CaseDir, Problem> {
        let mut directories = DIRECTORIES.lock().unwrap_or_else(|p| p.into_inner());
        if ABORTED.load(Ordering::SeqCst) {
            return Err(Problem::Harness("the gate is stopping".into()));
        }
        let dir = tempfile::Builder::new()
            .prefix("udsping-conform-")
            .tempdir()
            .map_err(|e| Problem::harness("cannot create a temporary directory", e))?;
        directories.push(dir.path().to_path_buf());
        Ok(CaseDir(dir))
    }

    pub(crate) fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for CaseDir {
    fn drop(&mut self) {
        // Removed under the registry's lock, so that a gate stopping meanwhile (which exits
        // once `abort_run` returns) never ends this removal half done and leaves the directory.
        let mut directories = DIRECTORIES.lock().unwrap_or_else(|p| p.into_inner());
        let path = self.0.path().to_path_buf();
        directories.retain(|d| *d != path);
        let _ = std::fs::remove_dir_all(&path);
    }
}

/// For a gate that was told to stop: kills every target still running, with everything it
/// started, and removes every case directory. Returns the directories that could not be
/// removed, with why.
pub fn abort_run() -> Vec<(PathBuf, io::Error)> {
    crate::process::kill_everything();
    let directories = {
        let mut directories = DIRECTORIES.lock().unwrap_or_else(|p| p.into_inner());
        // Under the lock that every case takes to create its directory: none is made after this.
        ABORTED.store(true, Ordering::SeqCst);
        std::mem::take(&mut *directories)
    };
    directories
        .into_iter()
        .filter_map(|dir| match std::fs::remove_dir_all(&dir) {
            Ok(()) => None,
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => Some((dir, e)),
        })
        .collect()
}
