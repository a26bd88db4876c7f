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
//!   mappings; past any, slots are dropped down to 63/64 of each bound, by CLOCK (an
//!   approximation of least recently used): in the order they were made, except that
//!   a slot used again since it was made or last passed over is passed over once more.
//!   Each slot dropped costs O(1), with no pass over the whole map (see
//!   [`SlotMap::enforce_bounds`]). A value's bytes are counted once, when its load
//!   finishes, and only while its slot is in the map.

use std::borrow::Borrow;
use std::collections::VecDeque;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

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
    /// Whether the slot was used again since it was made or eviction last passed over
    /// it (CLOCK's reference bit; see [`VersionSlot::touch`]).
    referenced: AtomicBool,
    /// Milliseconds since the cache's epoch.
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
            referenced: AtomicBool::new(false),
            last_checked: AtomicU64::new(now),
            counted: AtomicBool::new(false),
            state,
        })
    }

    /// Marks the slot used by a hit: eviction passes over it once more.
    pub(crate) fn touch(&self) {
        // Read first: a hot slot's line is not written on every hit.
        if !self.referenced.load(Ordering::Relaxed) {
            self.referenced.store(true, Ordering::Relaxed);
        }
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
    /// Every slot made, oldest first, with its key: CLOCK's ring. A slot replaced or
    /// removed stays here until eviction reaches it or the ring is compacted
    /// ([`SlotMap::queue`]). Taken before a shard of `map`, never while one is held.
    order: Mutex<VecDeque<(K, Weak<VersionSlot<F>>)>>,
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
            order: Mutex::new(VecDeque::new()),
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
        // The key of a slot made here, for the ring (a slot shared copies no key).
        let mut made = None;
        let slot = match self.map.entry(key) {
            dashmap::Entry::Occupied(mut o) => {
                let cur = o.get();
                if cur.fingerprint == fingerprint && F::is_fresh(cur, now, revalidate) {
                    cur.clone()
                } else {
                    let slot = VersionSlot::new(fingerprint, now, state());
                    replaced = Some(o.insert(slot.clone()));
                    made = Some(o.key().clone());
                    slot
                }
            }
            dashmap::Entry::Vacant(v) => {
                made = Some(v.key().clone());
                v.insert(VersionSlot::new(fingerprint, now, state()))
                    .clone()
            }
        };
        // After the entry's shard lock is released: eviction takes the ring first.
        if let Some(key) = made {
            self.queue(key, &slot);
        }
        if let Some(old) = replaced {
            self.uncount(&old);
        }
        if new_key {
            evicted += self.enforce_bounds(0, Some(&slot));
        }
        (slot, evicted)
    }

    /// Accounts for a finished load of `slot` (kept under `key`, or no longer) and
    /// enforces the bounds. Returns whether this call counted the load (the first for
    /// this slot) and how many slots were evicted.
    pub(crate) fn loaded<Q>(&self, key: &Q, slot: &Arc<VersionSlot<F>>) -> (bool, u64)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let first = !slot.counted.swap(true, Ordering::AcqRel);
        if first {
            if let Some(value) = slot.cell.get() {
                for (used, w) in self.used.iter().zip(weights::<F>(value)) {
                    used.fetch_add(w, Ordering::Relaxed);
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
        self.ring().clear();
    }

    /// What a slot's counted value weighed, now no longer counted (zeros if it was
    /// not counted).
    fn uncount(&self, slot: &VersionSlot<F>) -> [u64; WEIGHTS] {
        if slot.counted.swap(false, Ordering::AcqRel) {
            if let Some(value) = slot.cell.get() {
                let w = weights::<F>(value);
                for (used, w) in self.used.iter().zip(w) {
                    used.fetch_sub(w, Ordering::Relaxed);
                }
                return w;
            }
        }
        [0; WEIGHTS]
    }

    fn ring(&self) -> std::sync::MutexGuard<'_, VecDeque<(K, Weak<VersionSlot<F>>)>> {
        self.order.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Puts a slot just made for `key` at the back of the ring. When the ring holds
    /// more than twice the map's slots plus some (slots replaced or removed, not yet
    /// reached by eviction), it is compacted to the slots still in the map: O(n) once
    /// per n slots made, so the ring stays within a few times the map's size.
    fn queue(&self, key: K, slot: &Arc<VersionSlot<F>>) {
        let mut ring = self.ring();
        ring.push_back((key, Arc::downgrade(slot)));
        if ring.len() > 2 * self.map.len() + 64 {
            ring.retain(|(key, slot)| self.is_kept(key, slot));
        }
    }

    /// Whether `slot` is the one the map keeps for `key`.
    fn is_kept(&self, key: &K, slot: &Weak<VersionSlot<F>>) -> bool {
        self.map
            .get(key)
            .is_some_and(|s| std::ptr::eq(Arc::as_ptr(s.value()), slot.as_ptr()))
    }

    fn over(&self, entries: usize, used: [u64; WEIGHTS]) -> bool {
        entries > self.max_entries || used.iter().zip(self.max).any(|(u, m)| *u > m)
    }

    /// Evicts slots until every bound holds with 1/64 to spare, counting `incoming`
    /// slots about to be inserted, and never `keep` (the slot just made or loaded);
    /// returns how many.
    ///
    /// CLOCK: the ring's front is the oldest slot made. A slot no longer in the map is
    /// dropped from the ring; one used since it was made or last passed over
    /// ([`VersionSlot::touch`]) loses that mark and goes to the back; any other is
    /// evicted. Each step is O(1) (one lookup in the map), so a pass costs what it
    /// evicts, not the size of the map: an exact least-recently-used pass, which
    /// sorted every slot's last use, took 5 ms on a mirror's 7 000 entries and was
    /// its p99. At most two turns of the ring, so a pass ends even if every slot is
    /// in use. Evicted slots are dropped once the ring is released.
    fn enforce_bounds(&self, incoming: usize, keep: Option<&VersionSlot<F>>) -> u64 {
        let entries = self.map.len() + incoming;
        let used = self.used();
        if !self.over(entries, used) {
            return 0;
        }
        // A bound under 64 keeps no spare: each pass then evicts just what it must.
        let target_entries = self.max_entries - self.max_entries / 64;
        let target: [u64; WEIGHTS] = std::array::from_fn(|i| self.max[i] - self.max[i] / 64);
        let fits = |left: usize, used: &[u64; WEIGHTS]| {
            left <= target_entries && used.iter().zip(target).all(|(u, m)| *u <= m)
        };
        let (mut left, mut left_used) = (entries, used);
        let mut evicted = Vec::new();
        let mut ring = self.ring();
        let mut steps = 2 * ring.len();
        while steps > 0 && !fits(left, &left_used) {
            steps -= 1;
            let Some((key, weak)) = ring.pop_front() else {
                break;
            };
            if !self.is_kept(&key, &weak) {
                continue;
            }
            let Some(slot) = weak.upgrade() else {
                continue;
            };
            let kept = keep.is_some_and(|k| std::ptr::eq(k, Arc::as_ptr(&slot)));
            if kept || slot.referenced.swap(false, Ordering::Relaxed) {
                ring.push_back((key, weak));
                continue;
            }
            if let Some((_, gone)) = self.map.remove_if(&key, |_, s| Arc::ptr_eq(s, &slot)) {
                let w = self.uncount(&gone);
                left -= 1;
                for (u, w) in left_used.iter_mut().zip(w) {
                    *u = u.saturating_sub(w);
                }
                evicted.push(gone);
            }
        }
        drop(ring);
        evicted.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Slots whose value weighs its number of bytes, always fresh.
    struct Plain;

    impl Freshness for Plain {
        type Value = u64;
        fn bytes(value: &u64) -> u64 {
            *value
        }
        fn is_fresh(_: &VersionSlot<Plain>, _: u64, _: Revalidate) -> bool {
            true
        }
    }

    fn version(n: u64) -> Fingerprint {
        Fingerprint {
            ino: n,
            ..Fingerprint::default()
        }
    }

    /// A slot for `key`, loaded with a value of `bytes`.
    fn load(map: &SlotMap<u32, Plain>, key: u32, version_no: u64, bytes: u64) -> u64 {
        let (slot, mut evicted) =
            map.slot_for(key, version(version_no), 0, Revalidate::Always, || Plain);
        slot.cell.set(Arc::new(bytes)).unwrap();
        evicted += map.loaded(&key, &slot).1;
        evicted
    }

    fn keys(map: &SlotMap<u32, Plain>) -> Vec<u32> {
        let mut keys = Vec::new();
        map.for_each(|k, _| keys.push(*k));
        keys.sort();
        keys
    }

    #[test]
    fn the_oldest_untouched_slots_go_first() {
        let map = SlotMap::<u32, Plain>::new(8, u64::MAX);
        for k in 0..8 {
            load(&map, k, 1, 1);
        }
        // 0 and 3 are used again: each is passed over once.
        map.get(&0).unwrap().touch();
        map.get(&3).unwrap().touch();
        // Past the bound (no spare under 64 slots): one slot goes, the new one kept.
        assert_eq!(load(&map, 8, 1, 1), 1);
        assert_eq!(keys(&map), [0, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(load(&map, 9, 1, 1), 1);
        assert_eq!(keys(&map), [0, 3, 4, 5, 6, 7, 8, 9]);
        // 3 has its second chance now; 0 had it and went to the back.
        assert_eq!(load(&map, 10, 1, 1), 1);
        assert_eq!(keys(&map), [0, 3, 5, 6, 7, 8, 9, 10]);
    }

    #[test]
    fn a_pass_ends_when_every_slot_is_in_use() {
        let map = SlotMap::<u32, Plain>::new(4, u64::MAX);
        for k in 0..4 {
            load(&map, k, 1, 1);
        }
        for k in 0..4 {
            map.get(&k).unwrap().touch();
        }
        assert_eq!(load(&map, 4, 1, 1), 1);
        assert_eq!(keys(&map), [1, 2, 3, 4]);
    }

    #[test]
    fn large_bounds_keep_a_64th_spare() {
        let map = SlotMap::<u32, Plain>::new(128, u64::MAX);
        for k in 0..128 {
            load(&map, k, 1, 1);
        }
        assert_eq!(load(&map, 128, 1, 1), 3);
        assert_eq!(map.len(), 126);
        assert_eq!(keys(&map)[..2], [3, 4]);
    }

    #[test]
    fn bytes_are_a_bound_too_and_the_slot_loaded_is_kept() {
        let map = SlotMap::<u32, Plain>::new(100, 1000);
        for k in 0..4 {
            load(&map, k, 1, 300);
        }
        assert!(map.bytes() <= 1000, "{}", map.bytes());
        assert!(map.get(&3).is_some());
        // A value over the bound alone is counted, then evicted by the next pass, never
        // by its own.
        assert_eq!(load(&map, 9, 1, 5000), 3);
        assert!(map.get(&9).is_some());
        load(&map, 10, 1, 1);
        assert!(map.get(&9).is_none());
        assert_eq!(map.bytes(), 1);
    }

    #[test]
    fn slots_replaced_or_removed_do_not_grow_the_ring() {
        let map = SlotMap::<u32, Plain>::new(16, u64::MAX);
        for n in 0..10_000 {
            load(&map, (n % 4) as u32, n, 1);
            if n % 3 == 0 {
                map.remove(&((n % 4) as u32));
            }
        }
        // Compacted: 10 000 slots made, a few dozen in the ring.
        assert!(map.ring().len() <= 2 * 16 + 65, "{}", map.ring().len());
        map.clear();
        assert_eq!(map.len(), 0);
        assert_eq!(map.bytes(), 0);
        assert!(map.ring().is_empty());
    }
}
