//! The file cache's slots: one [`Entry`] per path, fresh until its mapping is
//! poisoned, and the watcher's view of each (under [`Revalidate::Watch`]).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::config::{Revalidate, ENTRY_OVERHEAD};
use super::slots::{Freshness, SlotMap, VersionSlot};
use crate::engine::entry::Entry;

/// The file cache's own state in a slot: what the watcher says of the file.
pub(super) struct FileState {
    /// [`Revalidate::Watch`]: whether the watcher covers this file (its directory and
    /// their ancestors are watched, and its path is its canonical path).
    pub(super) watched: AtomicBool,
    /// [`Revalidate::Watch`]: events reported for this file, and the count the last
    /// successful `stat` covered; a hit of a watched slot with both equal is current.
    pub(super) events: AtomicU64,
    pub(super) verified: AtomicU64,
}

impl FileState {
    /// A slot's state before its load: not watched, and unverified, so the first hit
    /// after the load takes a `stat`, which covers the changes made before the
    /// watches were in place.
    pub(super) fn unverified() -> FileState {
        FileState {
            watched: AtomicBool::new(false),
            events: AtomicU64::new(1),
            verified: AtomicU64::new(0),
        }
    }

    /// [`Revalidate::Watch`]: whether the watcher vouches for this slot, `events`
    /// being its event count read now: it is watched, and no event came since the
    /// last successful `stat`.
    pub(super) fn vouched(&self, events: u64) -> bool {
        self.watched.load(Ordering::Acquire) && self.verified.load(Ordering::Acquire) == events
    }
}

impl Freshness for FileState {
    type Value = Entry;

    /// Mapped bytes (none for a small file read into memory).
    fn bytes(entry: &Entry) -> u64 {
        if entry.is_mapped() {
            entry.len()
        } else {
            0
        }
    }

    /// The entry's own memory (see [`ENTRY_OVERHEAD`]), and its content when it was
    /// read into memory.
    fn memory(entry: &Entry) -> u64 {
        let path = entry
            .canonical_path()
            .map_or(0, |p| p.as_os_str().len() as u64);
        let content = if entry.is_mapped() { 0 } else { entry.len() };
        ENTRY_OVERHEAD + 2 * path + content
    }

    /// One per mapped file.
    fn mappings(entry: &Entry) -> u64 {
        u64::from(entry.is_mapped())
    }

    /// An entry stays fresh until the SIGBUS guard or a body poisons it; whether the
    /// file changed is the `stat`'s to say.
    fn is_fresh(slot: &FileSlot, _now: u64, _revalidate: Revalidate) -> bool {
        slot.cell.get().is_none_or(|e| !e.is_poisoned())
    }
}

/// A slot of the file cache.
pub(super) type FileSlot = VersionSlot<FileState>;

/// The file cache's slots, keyed by the path as given.
pub(super) type FileSlots = SlotMap<PathBuf, FileState>;
