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
//! * **Bounds**: at most `max_entries` slots, `max_bytes` bytes of loaded values,
//!   and (for the file cache) `max_memory` bytes held in memory and `max_mappings`
//!   mappings; past any, the least recently used slots are dropped, down to 7/8 of
//!   each bound so that eviction is amortised. A value's bytes are counted once, when its load
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

    /// The bytes of memory `value` holds, towards the map's `max_memory` (none unless
    /// the cache says so).
    fn memory(_value: &Self::Value) -> u64 {
        0
    }

    /// The mappings `value` holds, towards the map's `max_mappings` (none unless the
    /// cache says so).
    fn mappings(_value: &Self::Value) -> u64 {
        0
    }

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
    /// What its value weighs (see [`weights`]), set when its load is first counted:
    /// eviction reads it here rather than from each value.
    weights: std::sync::OnceLock<[u64; WEIGHTS]>,
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
            weights: std::sync::OnceLock::new(),
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

/// Keyed slots, bounded in number, in bytes, in memory and in mappings. See the
/// module docs.
pub(crate) struct SlotMap<K, F: Freshness> {
    /// Hashed with foldhash, not SipHash: a slot is made only after a successful
    /// `stat`, so keys name things that exist and no client can fill the map with
    /// colliding keys; hashing a path is a large part of a file cache hit's cost.
    map: DashMap<K, Arc<VersionSlot<F>>, foldhash::fast::RandomState>,
    /// What the loaded values kept weigh, and the bounds on it.
    used: [AtomicU64; WEIGHTS],
    max: [u64; WEIGHTS],
    max_entries: usize,
}

/// The weights a slot's value counts towards: [`Freshness::bytes`],
/// [`Freshness::memory`] and [`Freshness::mappings`], in that order.
const WEIGHTS: usize = 3;

fn weights<F: Freshness>(value: &F::Value) -> [u64; WEIGHTS] {
    [F::bytes(value), F::memory(value), F::mappings(value)]
}

impl<K: Eq + Hash + Clone, F: Freshness> SlotMap<K, F> {
    /// An empty map bounded by `max_entries` slots and `max_bytes` bytes.
    pub(crate) fn new(max_entries: usize, max_bytes: u64) -> SlotMap<K, F> {
        SlotMap {
            map: DashMap::with_hasher(foldhash::fast::RandomState::default()),
            used: Default::default(),
            max: [max_bytes, u64::MAX, u64::MAX],
            max_entries,
        }
    }

    /// The same map, also bounded by `max_memory` bytes of [`Freshness::memory`] and
    /// `max_mappings` [`Freshness::mappings`].
    pub(crate) fn with_memory_bounds(mut self, max_memory: u64, max_mappings: u64) -> Self {
        self.max[1] = max_memory;
        self.max[2] = max_mappings;
        self
    }

    /// The slots kept.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// The bytes of the loaded values kept.
    pub(crate) fn bytes(&self) -> u64 {
        self.used[0].load(Ordering::Relaxed)
    }

    /// The memory ([`Freshness::memory`]) and mappings ([`Freshness::mappings`]) of
    /// the loaded values kept.
    pub(crate) fn memory_and_mappings(&self) -> (u64, u64) {
        (
            self.used[1].load(Ordering::Relaxed),
            self.used[2].load(Ordering::Relaxed),
        )
    }

    fn used(&self) -> [u64; WEIGHTS] {
        std::array::from_fn(|i| self.used[i].load(Ordering::Relaxed))
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
        let mut evicted = if new_key {
            self.enforce_bounds(1, None)
        } else {
            0
        };
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
            evicted += self.enforce_bounds(0, Some(&slot));
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
                let w = slot.weights.get_or_init(|| weights::<F>(value));
                for (used, w) in self.used.iter().zip(w) {
                    used.fetch_add(*w, Ordering::Relaxed);
                }
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
        (first, self.enforce_bounds(0, Some(slot)))
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
            if let Some(w) = slot.weights.get() {
                for (used, w) in self.used.iter().zip(w) {
                    used.fetch_sub(*w, Ordering::Relaxed);
                }
            }
        }
    }

    fn over(&self, entries: usize, used: [u64; WEIGHTS]) -> bool {
        entries > self.max_entries || used.iter().zip(self.max).any(|(u, m)| *u > m)
    }

    /// Evicts least recently used slots until every bound holds with 1/8 to spare,
    /// counting `incoming` slots about to be inserted, and never `keep` (the slot just
    /// made or loaded: slots used in the same millisecond are equally old); returns
    /// how many.
    ///
    /// One pass over the map collects each slot's last use and weights (no key is
    /// copied), a sort finds the last use at and below which the oldest slots must go,
    /// and a second pass removes them: O(n log n) in the slots' ages, once per 1/8 of
    /// the bound.
    fn enforce_bounds(&self, incoming: usize, keep: Option<&VersionSlot<F>>) -> u64 {
        let kept = |slot: &VersionSlot<F>| keep.is_some_and(|k| std::ptr::eq(k, slot));
        let entries = self.map.len() + incoming;
        let used = self.used();
        if !self.over(entries, used) {
            return 0;
        }
        let target_entries = self.max_entries - self.max_entries / 8;
        let target: [u64; WEIGHTS] = std::array::from_fn(|i| self.max[i] - self.max[i] / 8);
        let mut by_age: Vec<(u64, [u64; WEIGHTS])> = self
            .map
            .iter()
            .filter(|e| !kept(e.value()))
            .map(|e| {
                let slot = e.value();
                let w = match slot.weights.get() {
                    Some(w) if slot.counted.load(Ordering::Relaxed) => *w,
                    _ => [0; WEIGHTS],
                };
                (slot.last_used.load(Ordering::Relaxed), w)
            })
            .collect();
        by_age.sort_unstable_by_key(|(t, _)| *t);
        let (mut left, mut left_used) = (entries, used);
        // The oldest slots to evict: every one used before `cutoff`, and `at_cutoff`
        // of those last used at `cutoff` (slots used in the same millisecond are equal).
        let (mut cutoff, mut at_cutoff) = (None, 0usize);
        for (t, w) in &by_age {
            let fits = left <= target_entries && left_used.iter().zip(target).all(|(u, m)| *u <= m);
            if fits {
                break;
            }
            left -= 1;
            for (u, w) in left_used.iter_mut().zip(w) {
                *u = u.saturating_sub(*w);
            }
            at_cutoff = if cutoff == Some(*t) { at_cutoff + 1 } else { 1 };
            cutoff = Some(*t);
        }
        let Some(cutoff) = cutoff else {
            return 0;
        };
        let mut evicted = 0;
        self.map.retain(|_, slot| {
            let t = slot.last_used.load(Ordering::Relaxed);
            let evict = !kept(slot) && (t < cutoff || (t == cutoff && at_cutoff > 0));
            if t == cutoff && evict {
                at_cutoff -= 1;
            }
            if evict {
                self.uncount(slot);
                evicted += 1;
            }
            !evict
        });
        evicted
    }
}
