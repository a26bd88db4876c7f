//! The slot map both caches keep their values in: the file cache its entries (one
//! per path), the listing cache its rendered pages (one per directory and page).
//!
//! * A [`VersionSlot`] is made for one version of what it holds (the [`Fingerprint`]
//!   of the file or directory on disk); concurrent misses for that version share it,
//!   and its `OnceCell` runs a single load (single flight).
//! * Each cache says when a slot may still answer for its version ([`Freshness`]):
//!   a file's entry until its mapping is poisoned, a listing until it is too old. A
//!   hit serves a fresh slot after the [`Revalidate`] policy's check
//!   ([`VersionSlot::needs_stat`]); a miss shares a fresh slot of the same version,
//!   or replaces it with a new one.
//! * **Bounds**: at most `max_entries` slots and `max_bytes` bytes of loaded values;
//!   past either, the least recently used slots are dropped, down to 7/8 of the bound
//!   so that eviction is amortised. A value's bytes are counted once, when its load
//!   finishes, and only while its slot is in the map.

use std::borrow::Borrow;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use tokio::sync::OnceCell;

use super::config::Revalidate;
use crate::engine::fingerprint::Fingerprint;

/// A cache's rule for its slots: what they hold, what a value weighs against the
/// bound, and whether a slot may still answer for the version it was made for. The
/// type is also the cache's own state kept in each slot.
pub(crate) trait Freshness: Sized + Send + Sync + 'static {
    /// What a slot holds once loaded.
    type Value: Send + Sync + 'static;

    /// The bytes `value` counts towards the map's `max_bytes`.
    fn bytes(value: &Self::Value) -> u64;

    /// Whether `slot` may still answer for its version at `now` (milliseconds since
    /// the cache's epoch) under `revalidate`: a hit serves its value only then, and a
    /// miss of the same version shares the slot (and its load) only then. A slot not
    /// loaded yet is asked too.
    fn is_fresh(slot: &VersionSlot<Self>, now: u64, revalidate: Revalidate) -> bool;
}

/// One version of one key: its load (single flight), its recency, and the cache's own
/// state `F`.
pub(crate) struct VersionSlot<F: Freshness> {
    /// The version on disk this slot was made for.
    pub(crate) fingerprint: Fingerprint,
    /// The loaded value; loaded once, however many callers wait.
    pub(crate) cell: OnceCell<Arc<F::Value>>,
    /// Milliseconds since the cache's epoch.
    pub(crate) last_used: AtomicU64,
    pub(crate) last_checked: AtomicU64,
    /// Whether this slot's bytes are counted in the map's bytes.
    counted: AtomicBool,
    /// The cache's own per-slot state.
    pub(crate) state: F,
}

impl<F: Freshness> VersionSlot<F> {
    /// A slot for the version `fingerprint`, made at `now`, not loaded yet.
    pub(crate) fn new(fingerprint: Fingerprint, now: u64, state: F) -> Arc<VersionSlot<F>> {
        Arc::new(VersionSlot {
            fingerprint,
            cell: OnceCell::new(),
            last_used: AtomicU64::new(now),
            last_checked: AtomicU64::new(now),
            counted: AtomicBool::new(false),
            state,
        })
    }

    /// Whether a hit must `stat` the file or directory before it serves this slot's
    /// value under `revalidate`: always, never, once the interval since the last check
    /// has passed, or (under [`Revalidate::Watch`]) unless `vouched` says the watcher
    /// vouches for it.
    pub(crate) fn needs_stat(
        &self,
        now: u64,
        revalidate: Revalidate,
        vouched: impl FnOnce() -> bool,
    ) -> bool {
        match revalidate {
            Revalidate::Always => true,
            Revalidate::Never => false,
            Revalidate::Every(d) => {
                now.saturating_sub(self.last_checked.load(Ordering::Relaxed))
                    >= d.as_millis() as u64
            }
            Revalidate::Watch => !vouched(),
        }
    }
}

/// Keyed slots, bounded in number and in bytes. See the module docs.
pub(crate) struct SlotMap<K, F: Freshness> {
    /// Hashed with foldhash, not SipHash: a slot is made only after a successful
    /// `stat`, so keys name things that exist and no client can fill the map with
    /// colliding keys; hashing a path is a large part of a file cache hit's cost.
    map: DashMap<K, Arc<VersionSlot<F>>, foldhash::fast::RandomState>,
    bytes: AtomicU64,
    max_entries: usize,
    max_bytes: u64,
}

impl<K: Eq + Hash + Clone, F: Freshness> SlotMap<K, F> {
    /// An empty map bounded by `max_entries` slots and `max_bytes` bytes.
    pub(crate) fn new(max_entries: usize, max_bytes: u64) -> SlotMap<K, F> {
        SlotMap {
            map: DashMap::with_hasher(foldhash::fast::RandomState::default()),
            bytes: AtomicU64::new(0),
            max_entries,
            max_bytes,
        }
    }

    /// The slots kept.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// The bytes of the loaded values kept.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// The slot kept for `key`, if any.
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<Arc<VersionSlot<F>>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get(key).map(|s| Arc::clone(s.value()))
    }

    /// Calls `f` with every slot kept and its key.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&K, &VersionSlot<F>)) {
        for s in self.map.iter() {
            f(s.key(), s.value());
        }
    }

    /// The slot for the version `fingerprint` of `key`: the one kept if it was made
    /// for the same version and is still fresh (so concurrent misses share one load),
    /// otherwise a new one with the state `state` makes, kept in its place. Also
    /// returns how many slots were evicted to make room.
    ///
    /// A slot counts as an entry from here on, while its value loads (a load can take
    /// long on a busy machine): a new key makes room before it is inserted, and the
    /// bounds are enforced again once it is (a concurrent miss may have taken the
    /// room), so loads in flight never take the map past `max_entries`.
    pub(crate) fn slot_for(
        &self,
        key: K,
        fingerprint: Fingerprint,
        now: u64,
        revalidate: Revalidate,
        state: impl FnOnce() -> F,
    ) -> (Arc<VersionSlot<F>>, u64) {
        let new_key = !self.map.contains_key(&key);
        let mut evicted = if new_key { self.enforce_bounds(1) } else { 0 };
        let mut replaced = None;
        let slot = match self.map.entry(key) {
            dashmap::Entry::Occupied(mut o) => {
                let cur = o.get();
                if cur.fingerprint == fingerprint && F::is_fresh(cur, now, revalidate) {
                    cur.clone()
                } else {
                    let slot = VersionSlot::new(fingerprint, now, state());
                    replaced = Some(o.insert(slot.clone()));
                    slot
                }
            }
            dashmap::Entry::Vacant(v) => v
                .insert(VersionSlot::new(fingerprint, now, state()))
                .clone(),
        };
        if let Some(old) = replaced {
            self.uncount(&old);
        }
        if new_key {
            evicted += self.enforce_bounds(0);
        }
        (slot, evicted)
    }

    /// Accounts for a finished load of `slot` (kept under `key`, or no longer), marks
    /// it used at `now`, and enforces the bounds. Returns whether this call counted
    /// the load (the first for this slot) and how many slots were evicted.
    pub(crate) fn loaded<Q>(&self, key: &Q, slot: &Arc<VersionSlot<F>>, now: u64) -> (bool, u64)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let first = !slot.counted.swap(true, Ordering::AcqRel);
        if first {
            if let Some(value) = slot.cell.get() {
                self.bytes.fetch_add(F::bytes(value), Ordering::Relaxed);
            }
            let still_there = self
                .map
                .get(key)
                .is_some_and(|s| Arc::ptr_eq(s.value(), slot));
            if !still_there {
                self.uncount(slot);
            }
        }
        slot.last_used.store(now, Ordering::Relaxed);
        (first, self.enforce_bounds(0))
    }

    /// Drops the slot kept for `key`, if any.
    pub(crate) fn remove<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some((_, slot)) = self.map.remove(key) {
            self.uncount(&slot);
        }
    }

    /// Drops every slot.
    pub(crate) fn clear(&self) {
        let keys: Vec<K> = self.map.iter().map(|e| e.key().clone()).collect();
        for k in keys {
            self.remove(&k);
        }
    }

    fn uncount(&self, slot: &VersionSlot<F>) {
        if slot.counted.swap(false, Ordering::AcqRel) {
            if let Some(value) = slot.cell.get() {
                self.bytes.fetch_sub(F::bytes(value), Ordering::Relaxed);
            }
        }
    }

    fn over(&self, entries: usize, bytes: u64) -> bool {
        entries > self.max_entries || bytes > self.max_bytes
    }

    /// Evicts least recently used slots until both bounds hold with 1/8 to spare,
    /// counting `incoming` slots about to be inserted; returns how many.
    fn enforce_bounds(&self, incoming: usize) -> u64 {
        if !self.over(self.map.len() + incoming, self.bytes()) {
            return 0;
        }
        let target_entries = self.max_entries - self.max_entries / 8;
        let target_bytes = self.max_bytes - self.max_bytes / 8;
        let mut by_age: Vec<(u64, K)> = self
            .map
            .iter()
            .map(|e| (e.value().last_used.load(Ordering::Relaxed), e.key().clone()))
            .collect();
        by_age.sort_unstable_by_key(|(t, _)| *t);
        let mut evicted = 0;
        for (_, key) in by_age {
            if self.map.len() + incoming <= target_entries && self.bytes() <= target_bytes {
                break;
            }
            if let Some((_, slot)) = self.map.remove(&key) {
                self.uncount(&slot);
                evicted += 1;
            }
        }
        evicted
    }
}
