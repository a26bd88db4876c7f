//! `revalidate = "watch"`: inotify tells the cache which files changed, so a cache hit
//! needs no system call at all.
//!
//! # What is watched
//! For every file the cache loads, the directory that holds it **and every ancestor
//! of that directory** (non-recursive inotify watches through the `notify` crate; one
//! watch per directory, shared by all its files). The file's own directory reports
//! writes, truncations, `chmod`/`touch`, deletions and a new file renamed over it
//! (`IN_MODIFY`, `IN_ATTRIB`, `IN_CLOSE_WRITE`, `IN_DELETE`, `IN_MOVED_TO`, ...); the
//! ancestors report a directory on the path that is renamed, deleted or replaced,
//! after which the path names other files although none of them changed.
//!
//! # What an event does
//! * An event naming a cached file ([`Change::File`]) moves that entry's event count
//!   on; the next hit sees the count differ from the one its last `stat` covered and
//!   revalidates with a `stat`, exactly as [`Revalidate::Always`] would (a changed
//!   file is loaded again, an unchanged one is trusted again).
//! * An event naming a watched directory ([`Change::Tree`]) turns every entry below it
//!   into an unwatched one (a `stat` on every hit, until the file changes and is
//!   loaded afresh, watched again), and forgets the directories below it, so the next
//!   load watches the directories now at those paths.
//! * A lost event (the kernel's queue overflowed: more than
//!   `/proc/sys/fs/inotify/max_queued_events` events pending at once) or an error of
//!   the watcher ([`Change::All`]) does the same to every entry.
//!
//! # When a watch is not possible
//! An entry is served with a `stat` on every hit, as under `"always"`, when: the
//! watcher could not be made (no inotify: not Linux, the `watch` feature off, or the
//! per-user limit of inotify instances reached; [`Cache::is_watching`] tells); a
//! directory on its path could not be watched (the per-user limit of watches,
//! `/proc/sys/fs/inotify/max_user_watches`, or the cache's own bound of
//! [`MAX_WATCHED_DIRS`]); or its path is not the file's canonical path (a relative
//! path, or one through a symbolic link, whose target changes under another directory).
//!
//! # What "watch" gives up, and what it keeps
//! * **Changes are noticed once the watcher's thread has handled the event**, not on
//!   the very next request: inotify queues the event before the writer's `write`
//!   returns, but a request that arrives in the microseconds before the watcher's
//!   thread reads it is still answered from the old version. docs/operating.md gives the
//!   delay measured here.
//! * Changes inotify does not report are not noticed by hits: writes through a hard
//!   link in an unwatched directory, writes through another mount of the same file
//!   system (bind mounts), writes through a shared writable `mmap`, and changes made
//!   by another machine on a network file system. Do not use `"watch"` there.
//! * **A response never mixes two versions**, as under `"always"`: a body still takes
//!   one `stat` after it copied its last bytes (`MappingWatch::verify_unmodified`).
//!   inotify cannot replace it: the kernel queues `IN_MODIFY` *after* a `write` has
//!   copied its data into the page cache, so a body could copy new bytes and finish
//!   before any event exists, while the file's mtime and ctime move *before* the data
//!   does, which that `stat` sees. A 304 has no body and needs no `stat`. (A request
//!   that races a write whose event is not handled yet may still be answered from
//!   the old version; if the answer has a body, that `stat` then cuts it, as it
//!   cuts a download that a write overtakes under `"always"`.)
//!
//! [`Revalidate::Always`]: crate::engine::cache::Revalidate::Always
//! [`Cache::is_watching`]: crate::engine::cache::Cache::is_watching

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

/// The most directories one cache watches; the files of further directories are
/// revalidated with a `stat` per hit. (Each watch also counts against the per-user
/// `max_user_watches` of the kernel, shared with every other program of that user.)
pub const MAX_WATCHED_DIRS: usize = 8192;

/// What the watcher reports to the cache.
#[cfg_attr(not(all(feature = "watch", target_os = "linux")), allow(dead_code))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    /// Something happened to the file (or other entry) at this path.
    File(PathBuf),
    /// A watched directory was renamed, deleted or replaced: every path below it may
    /// now name another file.
    Tree(PathBuf),
    /// Events were lost: anything may have changed.
    All,
}

/// The directories watched, shared with the event handler.
type Dirs = Arc<Mutex<HashSet<PathBuf>>>;

#[cfg_attr(not(all(feature = "watch", target_os = "linux")), allow(dead_code))]
fn lock(dirs: &Dirs) -> std::sync::MutexGuard<'_, HashSet<PathBuf>> {
    dirs.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Which [`Change`] an event on `path` is: `None` for events that change nothing
/// (opening, reading), a directory change if `path` is a watched directory.
#[cfg_attr(not(all(feature = "watch", target_os = "linux")), allow(dead_code))]
fn classify(dirs: &HashSet<PathBuf>, path: &Path) -> Change {
    if dirs.contains(path) {
        Change::Tree(path.to_path_buf())
    } else {
        Change::File(path.to_path_buf())
    }
}

/// Forgets `root` and every watched directory below it.
#[cfg_attr(not(all(feature = "watch", target_os = "linux")), allow(dead_code))]
fn forget_tree(dirs: &mut HashSet<PathBuf>, root: &Path) {
    dirs.retain(|d| !d.starts_with(root));
}

/// Every directory from `dir` up to the file system's root, `dir` first.
#[cfg_attr(not(all(feature = "watch", target_os = "linux")), allow(dead_code))]
fn ancestors(dir: &Path) -> impl Iterator<Item = &Path> {
    dir.ancestors().filter(|d| !d.as_os_str().is_empty())
}

#[cfg(all(feature = "watch", target_os = "linux"))]
mod imp {
    use super::*;
    use notify::event::{AccessKind, AccessMode, EventKind};
    use notify::{RecursiveMode, Watcher};

    /// The inotify watcher of one cache.
    pub(crate) struct DirWatch {
        watcher: Mutex<notify::INotifyWatcher>,
        dirs: Dirs,
        max_dirs: usize,
    }

    impl DirWatch {
        /// A watcher that reports every [`Change`] to `on_change` (on the watcher's
        /// own thread), or `None` if inotify is not available.
        pub(crate) fn new(
            on_change: impl Fn(Change) + Send + 'static,
            max_dirs: usize,
        ) -> Option<DirWatch> {
            let dirs: Dirs = Arc::default();
            let seen = dirs.clone();
            let handler = move |event: notify::Result<notify::Event>| {
                let event = match event {
                    Ok(e) if !e.need_rescan() => e,
                    // Lost events, or the watcher failed: trust nothing.
                    _ => {
                        lock(&seen).clear();
                        on_change(Change::All);
                        return;
                    }
                };
                // Opening or reading a file changes nothing; closing it after
                // writing is reported (the write itself was too).
                if let EventKind::Access(kind) = event.kind {
                    if kind != AccessKind::Close(AccessMode::Write) {
                        return;
                    }
                }
                for path in &event.paths {
                    let change = {
                        let mut dirs = lock(&seen);
                        let change = classify(&dirs, path);
                        if let Change::Tree(root) = &change {
                            forget_tree(&mut dirs, root);
                        }
                        change
                    };
                    on_change(change);
                }
            };
            let watcher = notify::INotifyWatcher::new(handler, notify::Config::default()).ok()?;
            Some(DirWatch {
                watcher: Mutex::new(watcher),
                dirs,
                max_dirs,
            })
        }

        /// Watches the directory of `file` and its ancestors (those not watched yet);
        /// `true` if all of them are watched. Blocks on the watcher's thread for each
        /// new watch: call it where blocking is allowed.
        pub(crate) fn cover(&self, file: &Path) -> bool {
            let Some(dir) = file.parent() else {
                return false;
            };
            // Watch from the root down, so that a directory is watched only once the
            // ones above it are (a rename above is then never missed).
            let missing: Vec<PathBuf> = {
                let dirs = lock(&self.dirs);
                let mut m: Vec<PathBuf> = ancestors(dir)
                    .filter(|d| !dirs.contains(*d))
                    .map(Path::to_path_buf)
                    .collect();
                if dirs.len() + m.len() > self.max_dirs {
                    return false;
                }
                m.reverse();
                m
            };
            let mut watcher = self.watcher.lock().unwrap_or_else(PoisonError::into_inner);
            for d in missing {
                if watcher.watch(&d, RecursiveMode::NonRecursive).is_err() {
                    return false;
                }
                lock(&self.dirs).insert(d);
            }
            true
        }

        /// How many directories are watched.
        pub(crate) fn watched_dirs(&self) -> usize {
            lock(&self.dirs).len()
        }
    }
}

#[cfg(not(all(feature = "watch", target_os = "linux")))]
mod imp {
    use super::*;

    /// Without inotify (or the `watch` feature) there is no watcher: every entry is
    /// revalidated with a `stat`.
    pub(crate) struct DirWatch;

    impl DirWatch {
        /// Always `None` here.
        pub(crate) fn new(
            _on_change: impl Fn(Change) + Send + 'static,
            _max_dirs: usize,
        ) -> Option<DirWatch> {
            None
        }

        /// Never called (there is no watcher).
        pub(crate) fn cover(&self, _file: &Path) -> bool {
            false
        }

        /// Never called (there is no watcher).
        pub(crate) fn watched_dirs(&self) -> usize {
            0
        }
    }
}

pub(crate) use imp::DirWatch;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_on_watched_directories_are_tree_changes() {
        let mut dirs: HashSet<PathBuf> = ["/srv", "/srv/a", "/srv/a/b", "/srv/ab"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(
            classify(&dirs, Path::new("/srv/a/x.bin")),
            Change::File("/srv/a/x.bin".into())
        );
        assert_eq!(
            classify(&dirs, Path::new("/srv/a")),
            Change::Tree("/srv/a".into())
        );
        forget_tree(&mut dirs, Path::new("/srv/a"));
        let mut left: Vec<_> = dirs.into_iter().collect();
        left.sort();
        // Path prefixes, not string prefixes: /srv/ab stays.
        assert_eq!(left, [PathBuf::from("/srv"), PathBuf::from("/srv/ab")]);
    }

    #[test]
    fn ancestors_run_up_to_the_root() {
        let all: Vec<_> = ancestors(Path::new("/srv/a/b")).collect();
        assert_eq!(
            all,
            [
                Path::new("/srv/a/b"),
                Path::new("/srv/a"),
                Path::new("/srv"),
                Path::new("/")
            ]
        );
        let rel: Vec<_> = ancestors(Path::new("a/b")).collect();
        assert_eq!(rel, [Path::new("a/b"), Path::new("a")]);
    }
}
