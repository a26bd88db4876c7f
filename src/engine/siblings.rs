//! Which files have precompressed siblings (`FILE.br`, `FILE.gz`): one reading of each
//! directory per version of it, instead of two failed `stat`s per file loaded.
//!
//! A mirror of many files, few or none of them precompressed, would otherwise ask the
//! file system twice per miss for siblings that do not exist. The index keeps, per
//! directory, the names that have a sibling (a regular file, or a link to one, named
//! `NAME.br` or `NAME.gz`), read on the blocking pool (never on an async worker: a
//! directory may be large, or not in memory), once for all the requests that wait for
//! it.
//!
//! * **Revalidation**: a directory's record is used as it is for [`RECHECK`] (1 s)
//!   after it was read or checked, for files older than the reading; then one `stat`
//!   of the directory (on the blocking pool) compares its version (inode, mtime and
//!   ctime, which move when an entry is added, removed or renamed) and reads it again
//!   if it changed. A file changed after (or just before) the reading was read may have
//!   come with siblings the reading did not see, so its lookup checks the directory's
//!   version at once: a file deployed together with its siblings gets them on its
//!   first request. A reading made within [`SETTLE`](crate::cache::SETTLE) of the
//!   directory's last change is not trusted (a change in the same clock tick leaves the
//!   version as it was): it is read again when consulted for such a file. A sibling
//!   added later to an older file is noticed within about a second; the cache's
//!   entries keep what they were given for the version of the file they hold.
//! * **Bounds**: [`MAX_NAMES`] names with siblings over all directories (a directory
//!   weighs one plus its names), evicted by `quick_cache`'s policy.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::engine::fingerprint::Fingerprint;
use crate::engine::tag::{now_ns, SETTLE_NS};
use crate::semantics::encoding::Siblings;

/// How long a directory's record is used before its version is checked again.
pub(crate) const RECHECK: Duration = Duration::from_secs(1);

/// The most names with a sibling kept over all directories.
pub(crate) const MAX_NAMES: u64 = 1 << 20;

/// The index: see the module docs.
pub(crate) struct SiblingIndex {
    dirs: quick_cache::sync::Cache<PathBuf, Arc<DirSiblings>, ByNames>,
    epoch: Instant,
}

/// One directory version's names with siblings.
struct DirSiblings {
    /// The directory's version when it was read (`None`: it could not be read).
    version: Option<Fingerprint>,
    /// When the reading began, in ns since the Unix epoch (the clock of file times).
    read_at_ns: i128,
    /// When it was read or last found unchanged, in ms since the index's epoch.
    checked: AtomicU64,
    names: HashMap<OsString, Siblings>,
}

impl DirSiblings {
    fn of(&self, name: &std::ffi::OsStr) -> Siblings {
        self.names.get(name).copied().unwrap_or_default()
    }

    /// Whether a file last changed at `changed_ns` may be newer than this reading.
    fn older_than(&self, changed_ns: i128) -> bool {
        changed_ns >= self.read_at_ns - SETTLE_NS
    }

    /// Whether the directory had been still for [`SETTLE`](crate::cache::SETTLE) when the
    /// reading began, so that an unchanged version means unchanged names.
    fn settled(&self) -> bool {
        self.version
            .is_some_and(|v| self.read_at_ns - v.mtime_ns.max(v.ctime_ns) >= SETTLE_NS)
    }
}

/// A directory weighs one plus its names.
#[derive(Clone, Copy)]
struct ByNames;

impl quick_cache::Weighter<PathBuf, Arc<DirSiblings>> for ByNames {
    fn weight(&self, _dir: &PathBuf, record: &Arc<DirSiblings>) -> u64 {
        1 + record.names.len() as u64
    }
}

impl Default for SiblingIndex {
    fn default() -> Self {
        SiblingIndex {
            dirs: quick_cache::sync::Cache::with_weighter(4096, MAX_NAMES, ByNames),
            epoch: Instant::now(),
        }
    }
}

impl SiblingIndex {
    /// Which siblings the file at `file`, last changed at `changed_ns` (its ctime, ns
    /// since the Unix epoch, if known), has. Must be called within a tokio runtime.
    pub(crate) async fn of(&self, file: &Path, changed_ns: Option<i128>) -> Siblings {
        let (Some(dir), Some(name)) = (file.parent(), file.file_name()) else {
            return Siblings::default();
        };
        let now = self.now_ms();
        if let Some(record) = self.dirs.get(dir) {
            let checked = record.checked.load(Ordering::Relaxed);
            let newer = changed_ns.is_none_or(|c| record.older_than(c));
            if !newer && now.saturating_sub(checked) < RECHECK.as_millis() as u64 {
                return record.of(name);
            }
            let path = dir.to_path_buf();
            let version = blocking(move || dir_version(&path)).await.flatten();
            if version.is_some() && version == record.version && record.settled() {
                record.checked.store(now, Ordering::Relaxed);
                return record.of(name);
            }
            self.dirs.remove(dir);
        }
        match self.dirs.get_value_or_guard_async(dir).await {
            Ok(record) => record.of(name),
            Err(guard) => {
                let path = dir.to_path_buf();
                let record = blocking(move || read(&path, now))
                    .await
                    .unwrap_or_else(|| unreadable(now));
                let record = Arc::new(record);
                let _ = guard.insert(record.clone());
                record.of(name)
            }
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }
}

/// Runs `f` on the blocking pool; `None` if it panicked or the runtime is shutting down.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    tokio::task::spawn_blocking(f).await.ok()
}

fn unreadable(now: u64) -> DirSiblings {
    DirSiblings {
        version: None,
        read_at_ns: now_ns(),
        checked: AtomicU64::new(now),
        names: HashMap::new(),
    }
}

fn dir_version(dir: &Path) -> Option<Fingerprint> {
    std::fs::metadata(dir).ok().map(|m| Fingerprint::of(&m))
}

/// Reads the directory `dir`: the names that have a sibling. Its version is taken
/// first, so that a change made while it is read moves the version the next check
/// compares.
fn read(dir: &Path, now: u64) -> DirSiblings {
    let read_at_ns = now_ns();
    let version = dir_version(dir);
    let mut names: HashMap<OsString, Siblings> = HashMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return unreadable(now);
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some((base, br)) = split_sibling(&name) else {
            continue;
        };
        let is_file = match entry.file_type() {
            Ok(t) if t.is_file() => true,
            Ok(t) if t.is_symlink() => std::fs::metadata(entry.path()).is_ok_and(|m| m.is_file()),
            _ => false,
        };
        if is_file {
            let s = names.entry(base).or_default();
            if br {
                s.br = true;
            } else {
                s.gzip = true;
            }
        }
    }
    DirSiblings {
        version,
        read_at_ns,
        checked: AtomicU64::new(now),
        names,
    }
}

/// `NAME.br` → `(NAME, true)`, `NAME.gz` → `(NAME, false)`; anything else `None`.
fn split_sibling(name: &std::ffi::OsStr) -> Option<(OsString, bool)> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let bytes = name.as_bytes();
        let (base, br) = if let Some(base) = bytes.strip_suffix(b".br") {
            (base, true)
        } else {
            (bytes.strip_suffix(b".gz")?, false)
        };
        (!base.is_empty()).then(|| (std::ffi::OsStr::from_bytes(base).to_owned(), br))
    }
    #[cfg(not(unix))]
    {
        let s = name.to_str()?;
        let (base, br) = if let Some(base) = s.strip_suffix(".br") {
            (base, true)
        } else {
            (s.strip_suffix(".gz")?, false)
        };
        (!base.is_empty()).then(|| (OsString::from(base), br))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::test_support::TempDir;

    #[tokio::test]
    async fn one_reading_per_directory_version() {
        let d = TempDir::new("siblings");
        d.write("a.js", b"a");
        d.write("a.js.br", b"b");
        d.write("a.js.gz", b"g");
        d.write("b.css", b"b");
        d.write("b.css.gz", b"g");
        d.write("c.txt", b"c");
        std::fs::create_dir(d.0.join("d.gz")).unwrap();
        d.write("d", b"d");
        #[cfg(unix)]
        std::os::unix::fs::symlink(d.0.join("c.txt"), d.0.join("c.txt.br")).unwrap();
        let index = SiblingIndex::default();
        let of = |name: &str| {
            let path = d.0.join(name);
            let index = &index;
            async move { index.of(&path, Some(0)).await }
        };
        assert_eq!(
            of("a.js").await,
            Siblings {
                br: true,
                gzip: true
            }
        );
        assert_eq!(
            of("b.css").await,
            Siblings {
                br: false,
                gzip: true
            }
        );
        assert_eq!(
            of("c.txt").await,
            Siblings {
                br: cfg!(unix),
                gzip: false
            }
        );
        assert_eq!(
            of("d").await,
            Siblings::default(),
            "a directory is no sibling"
        );
        assert_eq!(of("missing").await, Siblings::default());
        assert_eq!(index.dirs.len(), 1);
        // A sibling added later is seen once the record is checked again.
        d.write("d.br", b"x");
        assert_eq!(of("d").await, Siblings::default(), "within RECHECK");
        std::thread::sleep(RECHECK + Duration::from_millis(10));
        assert_eq!(
            of("d").await,
            Siblings {
                br: true,
                gzip: false
            }
        );
    }

    /// A file and its sibling written after the directory was read (a deployment right
    /// after a request in that directory) are found on the file's first lookup.
    #[tokio::test]
    async fn a_file_deployed_with_its_sibling_after_the_reading_gets_it() {
        let d = TempDir::new("siblings-deploy");
        d.write("old.txt", b"o");
        let index = SiblingIndex::default();
        let changed = |p: &Path| {
            use std::os::unix::fs::MetadataExt;
            let m = std::fs::metadata(p).unwrap();
            i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec())
        };
        let old = d.0.join("old.txt");
        assert_eq!(
            index.of(&old, Some(changed(&old))).await,
            Siblings::default()
        );
        let page = d.write("page.txt", b"p");
        d.write("page.txt.gz", b"g");
        let got = index.of(&page, Some(changed(&page))).await;
        assert_eq!(
            got,
            Siblings {
                br: false,
                gzip: true
            }
        );
        // Within the same 50 ms as the first reading, even an unchanged-looking
        // directory is read again for a new file.
        d.write("late.txt", b"l");
        d.write("late.txt.br", b"b");
        let late = d.0.join("late.txt");
        assert_eq!(
            index.of(&late, Some(changed(&late))).await,
            Siblings {
                br: true,
                gzip: false
            }
        );
    }

    #[test]
    fn sibling_names() {
        let split = |n: &str| split_sibling(std::ffi::OsStr::new(n));
        assert_eq!(split("a.br"), Some(("a".into(), true)));
        assert_eq!(split("a.tar.gz"), Some(("a.tar".into(), false)));
        assert_eq!(split(".gz"), None);
        assert_eq!(split("a.txt"), None);
    }
}
