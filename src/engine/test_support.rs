//! What the engine's unit tests share (compiled for them only): a temporary
//! directory. The integration tests have their own in `tests/common/`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A temporary directory for one test, removed on drop. Its name holds the test's
/// `name`, the process id and a counter, so tests running at once never share one.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    /// A new, empty directory under the system's temporary directory.
    pub(crate) fn new(name: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!(
            "rocket-mmap-unit-{name}-{}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    /// [`TempDir::new`], named by its canonical path (no symbolic link on the way):
    /// for tests that compare paths with resolved ones, as the watcher and the
    /// symbolic link policies do.
    pub(crate) fn canonical(name: &str) -> TempDir {
        let mut d = TempDir::new(name);
        d.0 = d.0.canonicalize().unwrap();
        d
    }

    /// Writes `bytes` to the file `name` in this directory; its path.
    pub(crate) fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    /// Replaces the file `name` by rename, as deployments do (a new inode).
    pub(crate) fn replace(&self, name: &str, bytes: &[u8]) {
        let tmp = self.write(&format!("{name}.tmp"), bytes);
        std::fs::rename(tmp, self.0.join(name)).unwrap();
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

mod tests {
    use super::*;

    /// What the tests rely on: two directories of one name are distinct, a canonical
    /// one is its own resolved path, and each goes with its `TempDir`.
    #[test]
    fn temp_dirs_are_distinct_canonical_when_asked_and_removed_on_drop() {
        let (a, b) = (TempDir::new("twice"), TempDir::canonical("twice"));
        assert_ne!(a.0, b.0);
        assert_eq!(b.0.canonicalize().unwrap(), b.0);
        let paths = [a.0.clone(), b.0.clone()];
        assert!(paths.iter().all(|p| p.is_dir()));
        drop((a, b));
        assert!(paths.iter().all(|p| !p.exists()));
    }
}
