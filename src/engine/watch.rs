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

use backend::Backend;

/// The most directories one cache watches; the files of further directories are
/// revalidated with a `stat` per hit. (Each watch also counts against the per-user
/// `max_user_watches` of the kernel, shared with every other program of that user.)
pub const MAX_WATCHED_DIRS: usize = 8192;

/// What the watcher reports to the cache.
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

fn lock(dirs: &Dirs) -> std::sync::MutexGuard<'_, HashSet<PathBuf>> {
    dirs.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The watcher of one cache: which directories it watches, and what an event on them
/// tells the cache ([`Change`]). The events come from the system through a `Backend`:
/// inotify (the `notify` crate, feature `watch`) on Linux; elsewhere there is none,
/// and [`DirWatch::new`] gives `None`.
pub(crate) struct DirWatch {
    backend: Mutex<Backend>,
    dirs: Dirs,
    max_dirs: usize,
}

impl DirWatch {
    /// A watcher that reports every [`Change`] to `on_change` (on the backend's own
    /// thread), or `None` if the system's notifications are not available.
    pub(crate) fn new(
        on_change: impl Fn(Change) + Send + 'static,
        max_dirs: usize,
    ) -> Option<DirWatch> {
        let dirs: Dirs = Arc::default();
        let seen = dirs.clone();
        let backend = Backend::new(move |paths: Option<&[PathBuf]>| {
            handle(&seen, paths, &on_change);
        })?;
        Some(DirWatch {
            backend: Mutex::new(backend),
            dirs,
            max_dirs,
        })
    }

    /// Watches the directory of `file` and its ancestors (those not watched yet);
    /// `true` if all of them are watched. Blocks on the backend's thread for each
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
        let mut backend = self.backend.lock().unwrap_or_else(PoisonError::into_inner);
        for d in missing {
            if !backend.watch(&d) {
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

/// What one event does: `paths` are the paths it names (`None` if events were lost or
/// the backend failed). Each path is reported as a [`Change`]; a watched directory's
/// is forgotten with the directories below it, and lost events forget them all, so
/// that the next loads watch the directories now at those paths.
fn handle(dirs: &Dirs, paths: Option<&[PathBuf]>, on_change: &impl Fn(Change)) {
    let Some(paths) = paths else {
        lock(dirs).clear();
        on_change(Change::All);
        return;
    };
    for path in paths {
        let change = {
            let mut dirs = lock(dirs);
            let change = classify(&dirs, path);
            if let Change::Tree(root) = &change {
                forget_tree(&mut dirs, root);
            }
            change
        };
        on_change(change);
    }
}

/// Which [`Change`] an event on `path` is: a directory change if `path` is a watched
/// directory, a file change otherwise.
fn classify(dirs: &HashSet<PathBuf>, path: &Path) -> Change {
    if dirs.contains(path) {
        Change::Tree(path.to_path_buf())
    } else {
        Change::File(path.to_path_buf())
    }
}

/// Forgets `root` and every watched directory below it.
fn forget_tree(dirs: &mut HashSet<PathBuf>, root: &Path) {
    dirs.retain(|d| !d.starts_with(root));
}

/// Every directory from `dir` up to the file system's root, `dir` first.
fn ancestors(dir: &Path) -> impl Iterator<Item = &Path> {
    dir.ancestors().filter(|d| !d.as_os_str().is_empty())
}

/// inotify, through the `notify` crate: the only code of the watcher that needs the
/// `watch` feature.
#[cfg(all(feature = "watch", target_os = "linux"))]
mod backend {
    use std::path::{Path, PathBuf};

    use notify::event::{AccessKind, AccessMode, EventKind};
    use notify::{RecursiveMode, Watcher};

    /// One inotify instance.
    pub(super) struct Backend(notify::INotifyWatcher);

    impl Backend {
        /// An inotify instance that hands `handler` the paths of every event that may
        /// change a file (`None` when events were lost or the watcher failed), on its
        /// own thread; `None` if it cannot be made (the per-user limit of instances).
        pub(super) fn new(
            handler: impl Fn(Option<&[PathBuf]>) + Send + 'static,
        ) -> Option<Backend> {
            let on_event = move |event: notify::Result<notify::Event>| match event {
                Ok(e) if !e.need_rescan() => {
                    // Opening or reading a file changes nothing; closing it after
                    // writing is reported (the write itself was too).
                    let unchanged = matches!(
                        e.kind,
                        EventKind::Access(kind) if kind != AccessKind::Close(AccessMode::Write)
                    );
                    if !unchanged {
                        handler(Some(&e.paths));
                    }
                }
                _ => handler(None),
            };
            notify::INotifyWatcher::new(on_event, notify::Config::default())
                .ok()
                .map(Backend)
        }

        /// Watches `dir`, not recursively; `false` if it cannot be watched.
        pub(super) fn watch(&mut self, dir: &Path) -> bool {
            self.0.watch(dir, RecursiveMode::NonRecursive).is_ok()
        }
    }
}

/// No backend: not Linux, or the `watch` feature (and with it `notify`) is off. None
/// can be made, so the cache revalidates every entry with a `stat`.
#[cfg(not(all(feature = "watch", target_os = "linux")))]
mod backend {
    use std::path::{Path, PathBuf};

    /// Has no value: [`Backend::new`] never makes one.
    pub(super) enum Backend {}

    impl Backend {
        /// Always `None`.
        pub(super) fn new(
            _handler: impl Fn(Option<&[PathBuf]>) + Send + 'static,
        ) -> Option<Backend> {
            None
        }

        /// Never called: there is no backend to call it on.
        pub(super) fn watch(&mut self, _dir: &Path) -> bool {
            match *self {}
        }
    }
}

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

    /// What the backend's events do, without a backend: every path is reported, a
    /// watched directory is forgotten with those below it, lost events forget all.
    #[test]
    fn an_event_reports_its_paths_and_lost_events_forget_every_directory() {
        let dirs: Dirs = Arc::new(Mutex::new(
            ["/srv", "/srv/a", "/srv/a/b"]
                .iter()
                .map(PathBuf::from)
                .collect(),
        ));
        let changes = Mutex::new(Vec::new());
        let note = |c: Change| changes.lock().unwrap().push(c);
        handle(
            &dirs,
            Some(&["/srv/a/x.bin".into(), "/srv/a".into()]),
            &note,
        );
        assert_eq!(*lock(&dirs), HashSet::from([PathBuf::from("/srv")]));
        handle(&dirs, None, &note);
        assert!(lock(&dirs).is_empty());
        assert_eq!(
            changes.into_inner().unwrap(),
            [
                Change::File("/srv/a/x.bin".into()),
                Change::Tree("/srv/a".into()),
                Change::All
            ]
        );
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
