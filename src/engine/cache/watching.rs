//! The cache's side of [`Revalidate::Watch`](super::Revalidate::Watch): what the watcher's thread does
//! with a change, and a load's part (watch the directories, then decide whether its slot may
//! trust them). The watcher itself is `engine::watch`.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::file_slot::{FileSlot, FileSlots};
use crate::engine::entry::Entry;
use crate::engine::error::CacheError;
use crate::engine::watch::{Change, DirWatch};

/// What the watcher's thread does with a [`Change`] (see `engine::watch`).
pub(super) fn on_change(slots: &FileSlots, tree_epoch: &AtomicU64, change: Change) {
    match change {
        Change::File(path) => {
            if let Some(slot) = slots.get(&path) {
                slot.state.events.fetch_add(1, Ordering::AcqRel);
            }
        }
        Change::Tree(root) => unwatch(slots, tree_epoch, |key| key.starts_with(&root)),
        Change::All => unwatch(slots, tree_epoch, |_| true),
    }
}

/// Turns the slots whose key `which` picks into unwatched ones (a `stat` on every
/// hit), after moving the directory epoch on (see [`LoadWatch::settle`]).
fn unwatch(slots: &FileSlots, tree_epoch: &AtomicU64, which: impl Fn(&Path) -> bool) {
    tree_epoch.fetch_add(1, Ordering::SeqCst);
    slots.for_each(|key, slot| {
        if which(key) {
            slot.state.watched.store(false, Ordering::SeqCst);
        }
    });
}

/// A load's part in [`Revalidate::Watch`](super::Revalidate::Watch): watch the file's directories before it is
/// loaded, then decide whether its slot may trust the watches.
pub(super) struct LoadWatch {
    pub(super) dirs: Arc<DirWatch>,
    pub(super) slot: Arc<FileSlot>,
    pub(super) tree_epoch: Arc<AtomicU64>,
    /// The directory epoch before the watches were made.
    pub(super) epoch_before: u64,
}

impl LoadWatch {
    /// Runs `load` (blocking) for the file at `path`; under a watcher, watches the
    /// file's directories first and then decides whether the slot trusts them.
    pub(super) fn around(
        watch: Option<&LoadWatch>,
        path: &Path,
        load: impl FnOnce() -> Result<Arc<Entry>, CacheError>,
    ) -> Result<Arc<Entry>, CacheError> {
        let Some(w) = watch else {
            return load();
        };
        let covered = w.dirs.cover(path);
        let entry = load()?;
        w.settle_after(covered, w.epoch_before, path, &entry);
        Ok(entry)
    }

    /// The slot is watched if its directories are (`covered`, by a `cover` made
    /// before the file's fingerprint was taken), its path is the file's canonical
    /// path, and no directory event came in since `epoch_before`, read before the
    /// watches were made (one might have moved a directory they were put on).
    pub(super) fn settle_after(
        &self,
        covered: bool,
        epoch_before: u64,
        path: &Path,
        entry: &Entry,
    ) {
        let canonical = entry.canonical_path() == Some(path);
        // Stored before the epoch is read again: a directory event whose handler
        // ran its pass over the slots before this store is caught by the epoch.
        let watched = &self.slot.state.watched;
        watched.store(covered && canonical, Ordering::SeqCst);
        if self.tree_epoch.load(Ordering::SeqCst) != epoch_before {
            watched.store(false, Ordering::SeqCst);
        }
    }
}
