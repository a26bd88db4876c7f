//! The cache's slots (one per file version, single flight through its `OnceCell`),
//! their accounting in mapped bytes, and eviction of the least recently used.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use tokio::sync::OnceCell;

use super::Cache;
use crate::engine::entry::Entry;
use crate::engine::fingerprint::Fingerprint;

pub(super) struct Slot {
    /// The file version this slot was made for.
    pub(super) fingerprint: Fingerprint,
    pub(super) cell: OnceCell<Arc<Entry>>,
    /// Milliseconds since the cache's epoch.
    pub(super) last_used: AtomicU64,
    pub(super) last_checked: AtomicU64,
    /// Whether this slot's bytes are counted in `Cache::bytes`.
    pub(super) counted: AtomicBool,
    /// [`Revalidate::Watch`](super::Revalidate::Watch): whether the watcher covers this file (its directory and
    /// their ancestors are watched, and its path is its canonical path).
    pub(super) watched: AtomicBool,
    /// [`Revalidate::Watch`](super::Revalidate::Watch): events reported for this file, and the count the last
    /// successful `stat` covered; a hit of a watched slot with both equal is current.
    pub(super) events: AtomicU64,
    pub(super) verified: AtomicU64,
}

impl Slot {
    /// [`Revalidate::Watch`](super::Revalidate::Watch): whether the watcher vouches for this slot, `events`
    /// being its event count read now: it is watched, and no event came since the
    /// last successful `stat`.
    pub(super) fn vouched(&self, events: u64) -> bool {
        self.watched.load(Ordering::Acquire) && self.verified.load(Ordering::Acquire) == events
    }
}

pub(super) type Map = DashMap<PathBuf, Arc<Slot>, foldhash::fast::RandomState>;

impl Cache {
    /// The slot for this file version: the existing one if it was made for the same
    /// fingerprint (so concurrent misses share one load), otherwise a new one.
    pub(super) fn slot_for(&self, path: &Path, fingerprint: Fingerprint) -> Arc<Slot> {
        let now = self.now_ms();
        let fresh = || {
            Arc::new(Slot {
                fingerprint,
                cell: OnceCell::new(),
                last_used: AtomicU64::new(now),
                last_checked: AtomicU64::new(now),
                counted: AtomicBool::new(false),
                watched: AtomicBool::new(false),
                // Unverified: the first hit after the load takes a `stat`, which
                // covers the changes made before the watches were in place.
                events: AtomicU64::new(1),
                verified: AtomicU64::new(0),
            })
        };
        if fingerprint.size > self.config.max_bytes {
            // Served, never kept.
            return fresh();
        }
        let mut replaced = None;
        let slot = match self.map.entry(path.to_path_buf()) {
            dashmap::Entry::Occupied(mut o) => {
                let cur = o.get();
                let usable = cur.fingerprint == fingerprint
                    && cur.cell.get().is_none_or(|e| !e.is_poisoned());
                if usable {
                    cur.clone()
                } else {
                    let slot = fresh();
                    replaced = Some(o.insert(slot.clone()));
                    slot
                }
            }
            dashmap::Entry::Vacant(v) => v.insert(fresh()).clone(),
        };
        if let Some(old) = replaced {
            self.uncount(&old);
        }
        slot
    }

    /// Accounts for a finished load and enforces the bounds.
    pub(super) fn loaded(&self, path: &Path, slot: &Arc<Slot>, entry: &Entry) {
        if !slot.counted.swap(true, Ordering::AcqRel) {
            self.counters.loads.fetch_add(1, Ordering::Relaxed);
            self.bytes.fetch_add(entry.len(), Ordering::Relaxed);
            let still_there = self
                .map
                .get(path)
                .is_some_and(|s| Arc::ptr_eq(s.value(), slot));
            if !still_there {
                self.uncount(slot);
            }
        }
        slot.last_used.store(self.now_ms(), Ordering::Relaxed);
        self.enforce_bounds();
    }

    pub(super) fn uncount(&self, slot: &Slot) {
        if slot.counted.swap(false, Ordering::AcqRel) {
            if let Some(e) = slot.cell.get() {
                self.bytes.fetch_sub(e.len(), Ordering::Relaxed);
            }
        }
    }

    fn over(&self, entries: usize, bytes: u64) -> bool {
        entries > self.config.max_entries || bytes > self.config.max_bytes
    }

    /// Evicts least recently used entries until both bounds hold with 1/8 to spare.
    fn enforce_bounds(&self) {
        if !self.over(self.map.len(), self.bytes.load(Ordering::Relaxed)) {
            return;
        }
        let target_entries = self.config.max_entries - self.config.max_entries / 8;
        let target_bytes = self.config.max_bytes - self.config.max_bytes / 8;
        let mut by_age: Vec<(u64, PathBuf)> = self
            .map
            .iter()
            .map(|e| (e.value().last_used.load(Ordering::Relaxed), e.key().clone()))
            .collect();
        by_age.sort_unstable_by_key(|(t, _)| *t);
        for (_, key) in by_age {
            let entries = self.map.len();
            let bytes = self.bytes.load(Ordering::Relaxed);
            if entries <= target_entries && bytes <= target_bytes {
                break;
            }
            if let Some((_, slot)) = self.map.remove(&key) {
                self.uncount(&slot);
                self.counters.evictions.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
