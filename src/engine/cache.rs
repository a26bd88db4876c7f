//! The mmap cache: files mapped once, hashed once (after their first response),
//! served as slices.
//!
//! * Entries live in a [`DashMap`] keyed by path. A hit costs one map lookup (no key
//!   allocation) and, depending on [`Revalidate`], one `stat`.
//! * **Single flight**: concurrent misses for one file version share one slot, whose
//!   `OnceCell` runs a single load; loading (open, `fstat`, map) runs on tokio's
//!   blocking pool, never on the async worker threads.
//! * **The first byte does not wait for the hash**: a load reads no content; the
//!   entry is served at once, and its strong ETag is computed in the background, at
//!   most [`CacheConfig::max_background_hashes`] files at a time (see `engine::tag`).
//!   [`Cache::get_blocking`] (start-up warming) and [`CacheConfig::digests_at_load`]
//!   still hash while loading.
//! * **Change detection**: a lookup compares the file's [`Fingerprint`] (device, inode,
//!   size, mtime and ctime in ns) with the entry's; a changed file gets a new entry,
//!   and responses in flight keep the old mapping alive through their `Bytes`. Under
//!   [`Revalidate::Watch`], inotify says which entries to compare (see `engine::watch`).
//! * **Bounds**: at most [`CacheConfig::max_entries`] entries and
//!   [`CacheConfig::max_bytes`] mapped bytes; past either, the least recently used
//!   entries are evicted (down to 7/8 of the bound, so eviction is amortised). A file
//!   larger than `max_bytes` on its own is served but not kept.
//! * No file descriptor stays open once a file is mapped and hashed (a file whose tag
//!   is pending keeps its descriptor until its hash ran); empty files have no mapping.
//! * A mapping the SIGBUS guard found truncated, or whose file a body found rewritten
//!   ([`Entry::is_poisoned`]), is dropped and the file mapped afresh on the next lookup.
//! * **Exactly one version per response**: unless the policy is [`Revalidate::Never`],
//!   every mapping's watch carries the file's path and fingerprint, and a body checks
//!   them (one `stat`) before it returns its last bytes; see
//!   `MappingWatch::verify_unmodified`. A tag whose file's fingerprint changed while
//!   it was hashed is never published (the entry is poisoned and the file loaded
//!   afresh), and a file changed less than [`SETTLE`](crate::SETTLE) ago is hashed
//!   again once the change has settled, so an ETag never describes a mix of two
//!   versions.
//! * **Counters** ([`Cache::stats`]): hits, misses, loads, evictions, single-flight
//!   waits and load times are counted here, and every body made for this cache
//!   counts its bytes and how it ended, in relaxed atomics (see `engine::stats`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use tokio::sync::OnceCell;

use crate::engine::entry::Entry;
pub use crate::engine::error::CacheError;
use crate::engine::fault_in::{Pager, DEFAULT_MAX_FAULT_INS};
use crate::engine::fingerprint::Fingerprint;
use crate::engine::load::{load_file, stat, Hash};
pub use crate::engine::stats::CacheStats;
use crate::engine::stats::Counters;
use crate::engine::tag::HashLimit;
use crate::engine::watch::{Change, DirWatch, MAX_WATCHED_DIRS};
use crate::semantics::digest::DigestAlgorithm;

/// When a cached file is compared with the file on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Revalidate {
    /// `stat` on every lookup (the default): a changed file is noticed at once.
    Always,
    /// `stat` at most once per interval per file: changes are noticed within it.
    Every(Duration),
    /// Never: for immutable deployments; a file is mapped once and served until
    /// evicted. (A truncated file is still noticed through the SIGBUS guard.)
    Never,
    /// On inotify's word (Linux, feature `watch`): a hit makes no system call, and a
    /// `stat` is taken only after the file's directory reported an event for it. A
    /// change is noticed once the watcher's thread has handled its event (tens of
    /// microseconds after the `write`; the README gives the figure measured), not
    /// strictly on the next request, and changes inotify does not report (a write
    /// through a hard link in another directory, a shared writable `mmap`, a network
    /// file system changed elsewhere) are not noticed by hits. A response still never
    /// mixes two versions. Entries that cannot be watched are revalidated as under
    /// [`Revalidate::Always`]; so is every entry when inotify is not available
    /// ([`Cache::is_watching`]). The whole contract is in the `engine::watch` module.
    Watch,
}

/// Bounds and policies of a [`Cache`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    /// The most entries kept (default 1024).
    pub max_entries: usize,
    /// The most mapped bytes kept (default 16 GiB; address space, not memory: pages
    /// are the kernel's page cache and are shared with every other reader).
    pub max_bytes: u64,
    /// When to compare a cached file with the disk (default [`Revalidate::Always`]).
    pub revalidate: Revalidate,
    /// Integrity digests computed when a file is loaded, right after its ETag, on the
    /// same blocking thread (default none: each is computed by the first request that
    /// asks for it; see [`Entry::digest`]).
    pub digests_at_load: Vec<DigestAlgorithm>,
    /// The most fault-ins (mapped pages a body found not in memory, read in on tokio's
    /// blocking pool before the body copies them) in flight at once for the whole
    /// cache; more wait their turn (default 32, as many as nginx's default `aio
    /// threads` pool has threads; see `engine::fault_in`).
    pub max_fault_ins: usize,
    /// How many files are hashed at once, at most, in the background for their ETags
    /// and digests (default 2). A file is served as soon as it is mapped; its tag
    /// (CRC-64 of the whole content) is computed afterwards on tokio's blocking pool,
    /// and the responses that need it wait for it (see `engine::tag`, and the README's
    /// "Decisions"). The bound keeps background hashing from taking the disk from
    /// downloads. A response waiting for a tag whose hash has not started yet does not
    /// queue behind other files: such hashes have a lane of as many permits of their
    /// own. 0: no hashing in the background; a file is hashed only when a response
    /// needs its tag, one at a time.
    pub max_background_hashes: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            max_entries: 1024,
            max_bytes: 16 << 30,
            revalidate: Revalidate::Always,
            digests_at_load: Vec::new(),
            max_fault_ins: DEFAULT_MAX_FAULT_INS,
            max_background_hashes: 2,
        }
    }
}

struct Slot {
    /// The file version this slot was made for.
    fingerprint: Fingerprint,
    cell: OnceCell<Arc<Entry>>,
    /// Milliseconds since the cache's epoch.
    last_used: AtomicU64,
    last_checked: AtomicU64,
    /// Whether this slot's bytes are counted in `Cache::bytes`.
    counted: AtomicBool,
    /// [`Revalidate::Watch`]: whether the watcher covers this file (its directory and
    /// their ancestors are watched, and its path is its canonical path).
    watched: AtomicBool,
    /// [`Revalidate::Watch`]: events reported for this file, and the count the last
    /// successful `stat` covered; a hit of a watched slot with both equal is current.
    events: AtomicU64,
    verified: AtomicU64,
}

impl Slot {
    /// [`Revalidate::Watch`]: whether the watcher vouches for this slot, `events`
    /// being its event count read now: it is watched, and no event came since the
    /// last successful `stat`.
    fn vouched(&self, events: u64) -> bool {
        self.watched.load(Ordering::Acquire) && self.verified.load(Ordering::Acquire) == events
    }
}

type Map = DashMap<PathBuf, Arc<Slot>, foldhash::fast::RandomState>;

/// The mmap cache. Share it (it is `Send + Sync`; Rocket keeps it in managed state).
pub struct Cache {
    /// Keyed by the path as given. Hashed with foldhash, not SipHash: keys are only
    /// ever paths of files that exist (a slot is made after a successful `stat`), so
    /// no client can fill the map with colliding keys, and hashing a path is a large
    /// part of a hit's cost.
    /// Shared with the watcher's event handler under [`Revalidate::Watch`].
    map: Arc<Map>,
    config: CacheConfig,
    /// The inotify watcher, under [`Revalidate::Watch`] when inotify is available.
    watch: Option<Arc<DirWatch>>,
    /// Moves on with every directory event (and lost events) of the watcher: a load
    /// that saw it move while it decided its slot was watched does not trust that.
    tree_epoch: Arc<AtomicU64>,
    epoch: Instant,
    bytes: AtomicU64,
    /// Hits, misses, loads, evictions, load times, and the bodies' counters; shared
    /// with every body made for this cache (see `crate::engine::stats`).
    counters: Arc<Counters>,
    /// Runs the fault-ins of this cache's bodies, at most `max_fault_ins` at once.
    pager: Arc<Pager>,
    /// The bound on tag hashes running at once ([`CacheConfig::max_background_hashes`]).
    hashes: HashLimit,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("config", &self.config)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Default for Cache {
    fn default() -> Self {
        Cache::new(CacheConfig::default())
    }
}

/// An entry found by [`Cache::peek`], with its slot (so that [`Cache::confirm`]
/// needs no second lookup).
#[cfg_attr(not(feature = "rocket"), allow(dead_code))]
pub(crate) struct Peeked {
    slot: Arc<Slot>,
    /// The entry, not yet compared with the disk.
    pub(crate) entry: Arc<Entry>,
}

impl Cache {
    /// An empty cache with the given bounds and policy.
    pub fn new(config: CacheConfig) -> Cache {
        Cache::with_watch_limit(config, MAX_WATCHED_DIRS)
    }

    /// [`Cache::new`] with another bound on the directories watched.
    pub(crate) fn with_watch_limit(config: CacheConfig, max_dirs: usize) -> Cache {
        let map: Arc<Map> = Arc::new(DashMap::with_hasher(foldhash::fast::RandomState::default()));
        let tree_epoch = Arc::new(AtomicU64::new(0));
        let watch = (config.revalidate == Revalidate::Watch)
            .then(|| {
                let (map, tree_epoch) = (map.clone(), tree_epoch.clone());
                DirWatch::new(move |change| on_change(&map, &tree_epoch, change), max_dirs)
            })
            .flatten()
            .map(Arc::new);
        let counters = Arc::<Counters>::default();
        let pager = Arc::new(Pager::new(config.max_fault_ins, counters.clone()));
        Cache {
            map,
            hashes: HashLimit::new(config.max_background_hashes).giving_way_to({
                let c = counters.clone();
                move || {
                    c.fault_ins_queued.load(Ordering::Relaxed)
                        + c.fault_ins_running.load(Ordering::Relaxed)
                        > 0
                }
            }),
            config,
            watch,
            tree_epoch,
            epoch: Instant::now(),
            bytes: AtomicU64::new(0),
            counters,
            pager,
        }
    }

    /// The same cache, remembering every file version's ETag and digests in `store`
    /// and looking them up there before it would hash (feature `tag-store`; see
    /// `engine::tag_store`): after a restart, or an eviction, an unchanged file is
    /// answered with its tag without reading its content. Call it before the cache
    /// serves anything.
    ///
    /// For example `Cache::new(CacheConfig::default()).with_tag_store(store)` with the
    /// `store` from [`TagStore::open`](crate::TagStore::open); the Rocket configuration
    /// does this for the `tag_store` key.
    #[cfg(feature = "tag-store")]
    pub fn with_tag_store(mut self, store: crate::engine::tag_store::TagStore) -> Cache {
        let memory: Arc<dyn crate::engine::tag::Remember> = Arc::new(store);
        self.hashes = self.hashes.clone().remembering(Some(memory));
        self
    }

    /// The configuration.
    pub fn config(&self) -> &CacheConfig {
        &self.config
    }

    /// Whether hits trust an inotify watcher: `true` under [`Revalidate::Watch`] when
    /// the watcher could be made (Linux, feature `watch`, an inotify instance
    /// available); otherwise every entry is revalidated with a `stat`.
    pub fn is_watching(&self) -> bool {
        self.watch.is_some()
    }

    /// How many directories the watcher watches (0 without one).
    pub fn watched_dirs(&self) -> usize {
        self.watch.as_ref().map_or(0, |w| w.watched_dirs())
    }

    /// Current levels and counters (each read with a relaxed load: a snapshot that
    /// may be a few events apart between fields while requests run).
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            watched_dirs: self.watched_dirs(),
            ..self
                .counters
                .snapshot(self.map.len(), self.bytes.load(Ordering::Relaxed))
        }
    }

    /// The bound on tag hashes (tests hold its permits to keep hashes queued).
    #[cfg(test)]
    pub(crate) fn hash_limit(&self) -> &HashLimit {
        &self.hashes
    }

    /// The counters, for the bodies made for this cache.
    pub(crate) fn pager(&self) -> &Arc<Pager> {
        &self.pager
    }

    pub(crate) fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Drops every entry (responses in flight keep their mappings).
    pub fn clear(&self) {
        let keys: Vec<PathBuf> = self.map.iter().map(|e| e.key().clone()).collect();
        for k in keys {
            if let Some((_, slot)) = self.map.remove(&k) {
                self.uncount(&slot);
            }
        }
    }

    /// Drops the entry for `path`, if any.
    pub fn invalidate(&self, path: &Path) {
        if let Some((_, slot)) = self.map.remove(path) {
            self.uncount(&slot);
        }
    }

    /// The entry for the file at `path`: from the cache if it is current, otherwise
    /// mapped on the blocking pool (once, however many callers wait). A file's ETag is
    /// computed after it is mapped, in the background ([`Entry::etag`] is `None` until
    /// then; [`Entry::strong_etag`] waits for it), unless the file is small or
    /// [`CacheConfig::digests_at_load`] asks for digests at load.
    ///
    /// Must be called within a tokio runtime.
    ///
    /// # Errors
    /// See [`CacheError`]: missing files, directories and non-regular files,
    /// permission errors, and files that kept changing while being loaded.
    pub async fn get(&self, path: &Path) -> Result<Arc<Entry>, CacheError> {
        let fingerprint = match self.fast_path(path)? {
            Ok(entry) => return Ok(entry),
            Err(fp) => fp,
        };
        let slot = self.slot_for(path, fingerprint);
        let owned = path.to_path_buf();
        let origin = self.config.revalidate != Revalidate::Never;
        let digests = self.config.digests_at_load.clone();
        let hash = if digests.is_empty() {
            Hash::Later
        } else {
            Hash::AtLoad
        };
        let hashes = self.hashes.clone();
        let counters = self.counters.clone();
        let watch = self.watcher_for(&slot);
        let mut loaded_here = false;
        let entry = slot
            .cell
            .get_or_try_init(|| {
                loaded_here = true;
                async move {
                    tokio::task::spawn_blocking(move || {
                        LoadWatch::around(watch.as_ref(), &owned, || {
                            timed_load(&counters, &owned, origin, hash, &digests, &hashes)
                        })
                    })
                    .await
                    .map_err(|e| CacheError::Io(std::io::Error::other(e)))?
                }
            })
            .await?
            .clone();
        if !loaded_here {
            self.counters
                .single_flight_waits
                .fetch_add(1, Ordering::Relaxed);
        }
        self.loaded(path, &slot, &entry);
        Ok(entry)
    }

    /// Like [`Cache::get`], but loads on the calling thread, and hashes the file there
    /// too (its ETag is known when this returns; a cached entry whose tag is pending
    /// is hashed here). For start-up warming and other synchronous contexts; do not
    /// call it from an async worker thread.
    ///
    /// # Errors
    /// As [`Cache::get`].
    pub fn get_blocking(&self, path: &Path) -> Result<Arc<Entry>, CacheError> {
        for _ in 0..3 {
            let entry = self.get_blocking_once(path)?;
            // A tag that cannot be computed poisoned the entry: the next try loads anew.
            if entry.etag_blocking().is_some() {
                return Ok(entry);
            }
        }
        Err(CacheError::Unstable)
    }

    /// [`Cache::get_blocking`] without the wait for a pending tag.
    fn get_blocking_once(&self, path: &Path) -> Result<Arc<Entry>, CacheError> {
        let fingerprint = match self.fast_path(path)? {
            Ok(entry) => return Ok(entry),
            Err(fp) => fp,
        };
        let slot = self.slot_for(path, fingerprint);
        if let Some(entry) = slot.cell.get() {
            return Ok(entry.clone());
        }
        let origin = self.config.revalidate != Revalidate::Never;
        let watch = self.watcher_for(&slot);
        let entry = LoadWatch::around(watch.as_ref(), path, || {
            timed_load(
                &self.counters,
                path,
                origin,
                Hash::AtLoad,
                &self.config.digests_at_load,
                &self.hashes,
            )
        })?;
        // Another thread may have won; either way the slot holds one entry.
        let entry = match slot.cell.set(entry.clone()) {
            Ok(()) => entry,
            Err(_) => slot.cell.get().cloned().unwrap_or(entry),
        };
        self.loaded(path, &slot, &entry);
        Ok(entry)
    }

    /// The cached entry for `path` *without* comparing it with the disk: for a caller
    /// that builds its answer first and then calls [`Cache::confirm`] (under
    /// [`Revalidate::Always`] one `stat` taken after the body's bytes were copied,
    /// which both revalidates the entry and proves the copied bytes belong to it).
    /// Only under [`Revalidate::Always`] and [`Revalidate::Watch`]; `None` when there
    /// is no usable entry.
    #[cfg_attr(not(feature = "rocket"), allow(dead_code))]
    pub(crate) fn peek(&self, path: &Path) -> Option<Peeked> {
        if !matches!(
            self.config.revalidate,
            Revalidate::Always | Revalidate::Watch
        ) {
            return None;
        }
        let slot = Arc::clone(self.map.get(path)?.value());
        let entry = slot.cell.get()?.clone();
        (!entry.is_poisoned()).then_some(Peeked { slot, entry })
    }

    /// Whether the entry `peeked` is still the version of the file at `path`. One
    /// `stat`, compared with the entry's fingerprint; the file's mtime and ctime move
    /// before a `write` copies its data, so bytes copied out of the entry before a
    /// `confirm` that returns `true` are bytes of that version. Under
    /// [`Revalidate::Watch`], an entry the watcher vouches for needs that `stat` only
    /// if `copied` (the answer holds bytes copied out of the mapping, which only a
    /// `stat` after the copy can prove; see `engine::watch`): a 304 makes no system
    /// call. A `true` counts as a cache hit.
    #[cfg_attr(not(feature = "rocket"), allow(dead_code))]
    pub(crate) fn confirm(&self, path: &Path, peeked: &Peeked, copied: bool) -> bool {
        let (entry, slot) = (&peeked.entry, &peeked.slot);
        let events = slot.events.load(Ordering::Acquire);
        let vouched = self.config.revalidate == Revalidate::Watch && slot.vouched(events);
        let current = !entry.is_poisoned()
            && ((vouched && !copied)
                || stat(path).is_ok_and(|fp| Some(&fp) == entry.fingerprint()));
        if current {
            self.counters.hits.fetch_add(1, Ordering::Relaxed);
            let now = self.now_ms();
            slot.last_used.store(now, Ordering::Relaxed);
            slot.last_checked.store(now, Ordering::Relaxed);
            slot.verified.fetch_max(events, Ordering::AcqRel);
        }
        current
    }

    /// The watcher's part in a load of `slot`, under [`Revalidate::Watch`].
    fn watcher_for(&self, slot: &Arc<Slot>) -> Option<LoadWatch> {
        Some(LoadWatch {
            dirs: self.watch.clone()?,
            slot: slot.clone(),
            tree_epoch: self.tree_epoch.clone(),
            epoch_before: self.tree_epoch.load(Ordering::SeqCst),
        })
    }

    /// A hit, or the fingerprint to load (a miss); counts which.
    #[allow(clippy::type_complexity)]
    fn fast_path(&self, path: &Path) -> Result<Result<Arc<Entry>, Fingerprint>, CacheError> {
        let found = self.lookup(path)?;
        let counter = match found {
            Ok(_) => &self.counters.hits,
            Err(_) => &self.counters.misses,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(found)
    }

    /// A current cached entry, or the fingerprint of the file on disk.
    #[allow(clippy::type_complexity)]
    fn lookup(&self, path: &Path) -> Result<Result<Arc<Entry>, Fingerprint>, CacheError> {
        let now = self.now_ms();
        let slot = self.map.get(path).map(|s| Arc::clone(s.value()));
        if let Some(slot) = &slot {
            if let Some(entry) = slot.cell.get() {
                if !entry.is_poisoned() {
                    // Read before the `stat`: an event after it keeps the slot unverified.
                    let events = slot.events.load(Ordering::Acquire);
                    let check = match self.config.revalidate {
                        Revalidate::Always => true,
                        Revalidate::Never => false,
                        Revalidate::Every(d) => {
                            now.saturating_sub(slot.last_checked.load(Ordering::Relaxed))
                                >= d.as_millis() as u64
                        }
                        Revalidate::Watch => !slot.vouched(events),
                    };
                    if !check {
                        slot.last_used.store(now, Ordering::Relaxed);
                        return Ok(Ok(entry.clone()));
                    }
                    let fp = stat(path)?;
                    if Some(&fp) == entry.fingerprint() {
                        slot.last_used.store(now, Ordering::Relaxed);
                        slot.last_checked.store(now, Ordering::Relaxed);
                        slot.verified.fetch_max(events, Ordering::AcqRel);
                        return Ok(Ok(entry.clone()));
                    }
                    return Ok(Err(fp));
                }
            }
        }
        Ok(Err(stat(path)?))
    }

    /// The slot for this file version: the existing one if it was made for the same
    /// fingerprint (so concurrent misses share one load), otherwise a new one.
    fn slot_for(&self, path: &Path, fingerprint: Fingerprint) -> Arc<Slot> {
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
        // A new key makes room first, and enforces the bounds again once inserted (a
        // concurrent miss may have filled the room): a slot counts as an entry from
        // here on, while its file loads, and a load can take long on a busy machine.
        let new_key = !self.map.contains_key(path);
        if new_key {
            self.enforce_bounds(1);
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
        if new_key {
            self.enforce_bounds(0);
        }
        slot
    }

    /// Accounts for a finished load and enforces the bounds.
    fn loaded(&self, path: &Path, slot: &Arc<Slot>, entry: &Entry) {
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
        self.enforce_bounds(0);
    }

    fn uncount(&self, slot: &Slot) {
        if slot.counted.swap(false, Ordering::AcqRel) {
            if let Some(e) = slot.cell.get() {
                self.bytes.fetch_sub(e.len(), Ordering::Relaxed);
            }
        }
    }

    fn over(&self, entries: usize, bytes: u64) -> bool {
        entries > self.config.max_entries || bytes > self.config.max_bytes
    }

    /// Evicts least recently used entries until both bounds hold with 1/8 to spare,
    /// counting `incoming` entries about to be inserted.
    fn enforce_bounds(&self, incoming: usize) {
        if !self.over(
            self.map.len() + incoming,
            self.bytes.load(Ordering::Relaxed),
        ) {
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
            let entries = self.map.len() + incoming;
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

/// What the watcher's thread does with a [`Change`] (see `engine::watch`).
fn on_change(map: &Map, tree_epoch: &AtomicU64, change: Change) {
    match change {
        Change::File(path) => {
            if let Some(slot) = map.get(&path) {
                slot.events.fetch_add(1, Ordering::AcqRel);
            }
        }
        Change::Tree(root) => unwatch(map, tree_epoch, |key| key.starts_with(&root)),
        Change::All => unwatch(map, tree_epoch, |_| true),
    }
}

/// Turns the slots whose key `which` picks into unwatched ones (a `stat` on every
/// hit), after moving the directory epoch on (see [`LoadWatch::settle`]).
fn unwatch(map: &Map, tree_epoch: &AtomicU64, which: impl Fn(&Path) -> bool) {
    tree_epoch.fetch_add(1, Ordering::SeqCst);
    for slot in map.iter().filter(|s| which(s.key())) {
        slot.watched.store(false, Ordering::SeqCst);
    }
}

/// A load's part in [`Revalidate::Watch`]: watch the file's directories before it is
/// loaded, then decide whether its slot may trust the watches.
struct LoadWatch {
    dirs: Arc<DirWatch>,
    slot: Arc<Slot>,
    tree_epoch: Arc<AtomicU64>,
    /// The directory epoch before the watches were made.
    epoch_before: u64,
}

impl LoadWatch {
    /// Runs `load` (blocking) for the file at `path`; under a watcher, watches the
    /// file's directories first and then decides whether the slot trusts them.
    fn around(
        watch: Option<&LoadWatch>,
        path: &Path,
        load: impl FnOnce() -> Result<Arc<Entry>, CacheError>,
    ) -> Result<Arc<Entry>, CacheError> {
        let Some(w) = watch else {
            return load();
        };
        let covered = w.dirs.cover(path);
        let entry = load()?;
        w.settle(covered, path, &entry);
        Ok(entry)
    }

    /// The slot is watched if its directories are, its path is the file's canonical
    /// path, and no directory event came in since before the watches were made (one
    /// might have moved a directory the watches were put on).
    fn settle(&self, covered: bool, path: &Path, entry: &Entry) {
        let canonical = entry.canonical_path() == Some(path);
        // Stored before the epoch is read again: a directory event whose handler
        // ran its pass over the slots before this store is caught by the epoch.
        self.slot
            .watched
            .store(covered && canonical, Ordering::SeqCst);
        if self.tree_epoch.load(Ordering::SeqCst) != self.epoch_before {
            self.slot.watched.store(false, Ordering::SeqCst);
        }
    }
}

/// Loads a file on the calling (blocking) thread, records how long it took, and
/// starts the hash of its tag if the load left it pending.
fn timed_load(
    counters: &Arc<Counters>,
    path: &Path,
    origin: bool,
    hash: Hash,
    digests: &[DigestAlgorithm],
    hashes: &HashLimit,
) -> Result<Arc<Entry>, CacheError> {
    let started = Instant::now();
    let entry = load_file(path, origin, hash, digests, hashes)?;
    counters.load_time.observe(started.elapsed());
    entry.count_digests_in(counters);
    entry.start_etag();
    Ok(Arc::new(entry))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::io::Write;

    /// A temporary directory for one test, removed on drop (also used by
    /// `digest_tests`).
    pub(super) struct TempDir(pub(super) PathBuf);

    impl TempDir {
        pub(super) fn new(name: &str) -> TempDir {
            let p = std::env::temp_dir()
                .join(format!("rocket-mmap-cache-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
        pub(super) fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
            let p = self.0.join(name);
            std::fs::write(&p, bytes).unwrap();
            p
        }
        /// Replaces a file by rename, as deployments do (a new inode).
        pub(super) fn replace(&self, name: &str, bytes: &[u8]) {
            let tmp = self.write(&format!("{name}.tmp"), bytes);
            std::fs::rename(tmp, self.0.join(name)).unwrap();
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[tokio::test]
    async fn maps_and_hashes_once() {
        let d = TempDir::new("once");
        let p = d.write("a.txt", b"123456789");
        let cache = Cache::default();
        let e1 = cache.get(&p).await.unwrap();
        let e2 = cache.get(&p).await.unwrap();
        assert!(Arc::ptr_eq(&e1, &e2));
        assert_eq!(e1.content().as_ref(), b"123456789");
        assert_eq!(e1.etag_header(), Some("\"995dc9bbdf1939fa-9\""));
        assert_eq!(e1.content_type(), "text/plain; charset=utf-8");
        assert!(e1.last_modified().is_some());
        assert_eq!(cache.stats().loads, 1);
        assert_eq!(cache.stats().bytes, 9);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn single_flight_for_32_concurrent_misses() {
        let d = TempDir::new("flight");
        let p = d.write("big.bin", &vec![1u8; 8 << 20]);
        let cache = Arc::new(Cache::default());
        let mut tasks = Vec::new();
        for _ in 0..32 {
            let cache = cache.clone();
            let p = p.clone();
            tasks.push(tokio::spawn(async move { cache.get(&p).await.unwrap() }));
        }
        let entries: Vec<_> = futures_join(tasks).await;
        assert_eq!(cache.stats().loads, 1, "one mapping and one hash");
        for e in &entries {
            assert!(Arc::ptr_eq(e, &entries[0]));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn counts_paced_responses_at_their_first_read() {
        use crate::engine::body::SegmentBody;
        use crate::engine::pace::RateLimit;
        use tokio::io::AsyncReadExt;
        let cache = Cache::default();
        let fast = RateLimit {
            bytes_per_second: 1 << 30,
            after: 0,
        };
        let bytes = bytes::Bytes::from_static(b"0123456789");
        // Either order of counting and pacing; an unpaced body and an unread one
        // count nothing.
        let paced = SegmentBody::single(bytes.clone())
            .counted_in(&cache)
            .limit_rate(fast);
        let paced_too = SegmentBody::single(bytes.clone())
            .limit_rate(fast)
            .counted_in(&cache);
        let plain = SegmentBody::single(bytes.clone()).counted_in(&cache);
        let unread = SegmentBody::single(bytes)
            .limit_rate(fast)
            .counted_in(&cache);
        for mut b in [paced, paced_too, plain] {
            let mut out = Vec::new();
            b.read_to_end(&mut out).await.unwrap();
            assert_eq!(out, b"0123456789");
        }
        drop(unread);
        let stats = cache.stats();
        assert_eq!(stats.paced_responses, 2);
        assert_eq!(stats.bodies_completed, 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn counts_hits_misses_single_flight_waits_and_load_times() {
        let d = TempDir::new("counters");
        let p = d.write("big.bin", &vec![7u8; 8 << 20]);
        let cache = Arc::new(Cache::default());
        assert!(matches!(
            cache.get(&d.0.join("missing")).await,
            Err(CacheError::NotFound)
        ));
        assert_eq!(
            cache.stats(),
            CacheStats::default(),
            "a missing file counts nothing"
        );
        let mut tasks = Vec::new();
        for _ in 0..32 {
            let cache = cache.clone();
            let p = p.clone();
            tasks.push(tokio::spawn(async move { cache.get(&p).await.unwrap() }));
        }
        futures_join(tasks).await;
        let s = cache.stats();
        assert_eq!(s.loads, 1);
        assert_eq!(s.hits + s.misses, 32, "{s:?}");
        assert!(s.misses >= 1);
        assert_eq!(
            s.single_flight_waits,
            s.misses - 1,
            "all misses but one waited"
        );
        assert_eq!(s.load_time.count, 1);
        assert!(s.load_time.sum_nanos > 0);
        cache.get(&p).await.unwrap();
        assert_eq!(cache.stats().hits, s.hits + 1);
    }

    async fn futures_join(tasks: Vec<tokio::task::JoinHandle<Arc<Entry>>>) -> Vec<Arc<Entry>> {
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn etag_depends_on_content_only() {
        let d = TempDir::new("etag");
        let a = d.write("a.bin", b"same bytes");
        std::thread::sleep(Duration::from_millis(20));
        let b = d.write("b.dat", b"same bytes");
        let cache = Cache::default();
        let ea = cache.get(&a).await.unwrap();
        let eb = cache.get(&b).await.unwrap();
        assert_eq!(ea.etag(), eb.etag());
        // touch: new mtime, same tag
        let f = File::options().write(true).open(&a).unwrap();
        f.set_modified(std::time::SystemTime::now() + Duration::from_secs(5))
            .unwrap();
        let ea2 = cache.get(&a).await.unwrap();
        assert!(!Arc::ptr_eq(&ea, &ea2), "touch is noticed");
        assert_eq!(ea.etag(), ea2.etag(), "but the tag stays");
    }

    #[tokio::test]
    async fn change_within_the_same_second_is_noticed() {
        let d = TempDir::new("same-second");
        let p = d.write("f.txt", b"version one");
        let cache = Cache::default();
        let e1 = cache.get(&p).await.unwrap();
        // Rewrite in place, same size, restoring the mtime to the exact same second.
        let mtime = std::fs::metadata(&p).unwrap().modified().unwrap();
        let mut f = File::options().write(true).open(&p).unwrap();
        f.write_all(b"version two").unwrap();
        f.set_modified(mtime).unwrap();
        drop(f);
        let e2 = cache.get(&p).await.unwrap();
        assert_eq!(e2.content().as_ref(), b"version two");
        assert_ne!(e1.etag(), e2.etag());
    }

    #[tokio::test]
    async fn replace_by_rename_keeps_old_mapping_alive() {
        let d = TempDir::new("rename");
        let p = d.write("f.bin", &vec![1u8; 100_000]);
        let cache = Cache::default();
        let old = cache.get(&p).await.unwrap();
        let tmp = d.write("f.tmp", &vec![2u8; 50_000]);
        std::fs::rename(&tmp, &p).unwrap();
        let new = cache.get(&p).await.unwrap();
        assert_eq!(new.len(), 50_000);
        assert!(old.content().iter().all(|&b| b == 1), "old version intact");
        assert_eq!(cache.stats().entries, 1);
        assert_eq!(cache.stats().bytes, 50_000);
    }

    #[tokio::test]
    async fn errors_are_typed() {
        let d = TempDir::new("errors");
        let cache = Cache::default();
        assert!(matches!(
            cache.get(&d.0.join("missing")).await,
            Err(CacheError::NotFound)
        ));
        assert!(matches!(
            cache.get(&d.0).await,
            Err(CacheError::IsDirectory)
        ));
        let f = d.write("f", b"x");
        assert!(matches!(
            cache.get(&f.join("below-a-file")).await,
            Err(CacheError::NotFound)
        ));
        #[cfg(unix)]
        {
            let fifo = d.0.join("fifo");
            let made = std::process::Command::new("mkfifo").arg(&fifo).status();
            assert!(
                made.is_ok_and(|s| s.success()),
                "mkfifo (coreutils) is needed"
            );
            assert!(matches!(cache.get(&fifo).await, Err(CacheError::NotAFile)));
        }
        assert_eq!(CacheError::NotFound.status(), 404);
        assert_eq!(CacheError::PermissionDenied.status(), 403);
    }

    #[tokio::test]
    async fn deleted_file_is_not_found() {
        let d = TempDir::new("delete");
        let p = d.write("f", b"data");
        let cache = Cache::default();
        let e = cache.get(&p).await.unwrap();
        std::fs::remove_file(&p).unwrap();
        assert!(matches!(cache.get(&p).await, Err(CacheError::NotFound)));
        assert_eq!(e.content().as_ref(), b"data", "in-flight bytes stay valid");
    }

    #[tokio::test]
    async fn empty_file_has_no_mapping() {
        let d = TempDir::new("empty");
        let p = d.write("empty.txt", b"");
        let cache = Cache::default();
        let e = cache.get(&p).await.unwrap();
        assert!(e.is_empty());
        assert!(e.watch().is_none());
        assert_eq!(e.etag_header(), Some("\"0000000000000000-0\""));
    }

    #[tokio::test]
    async fn eviction_by_entry_count() {
        let d = TempDir::new("evict-n");
        let cache = Cache::new(CacheConfig {
            max_entries: 16,
            ..CacheConfig::default()
        });
        let before = crate::engine::mapping::registered();
        for i in 0..100 {
            let p = d.write(&format!("f{i}"), format!("file {i}").as_bytes());
            cache.get(&p).await.unwrap();
            assert!(cache.stats().entries <= 16);
        }
        assert!(cache.stats().evictions >= 84);
        // Mappings of evicted entries are gone (none is held elsewhere).
        assert!(crate::engine::mapping::registered() <= before + 16 + 8);
    }

    /// A slot is in the map (and counted in `entries`) from the miss on, while its
    /// file loads: misses whose loads have not finished must not take the cache past
    /// `max_entries` either (the soak saw 65 and 66 entries of 64 under load).
    #[test]
    fn loads_in_flight_stay_within_max_entries() {
        let d = TempDir::new("evict-inflight");
        let cache = Cache::new(CacheConfig {
            max_entries: 16,
            ..CacheConfig::default()
        });
        let mut slots = Vec::new();
        for i in 0..100 {
            let p = d.write(&format!("f{i}"), format!("file {i}").as_bytes());
            // What a miss does before its load runs on the blocking pool.
            slots.push(cache.slot_for(&p, stat(&p).unwrap()));
            assert!(
                cache.stats().entries <= 16,
                "{} entries",
                cache.stats().entries
            );
        }
        assert!(cache.stats().evictions >= 84);
        // The newest slots are the ones kept.
        let newest = d.0.join("f99");
        assert!(cache
            .map
            .get(&newest)
            .is_some_and(|s| Arc::ptr_eq(s.value(), &slots[99])));
    }

    #[tokio::test]
    async fn eviction_by_bytes_keeps_recently_used() {
        let d = TempDir::new("evict-b");
        let cache = Cache::new(CacheConfig {
            max_bytes: 10_000,
            ..CacheConfig::default()
        });
        let hot = d.write("hot", &[1u8; 3000]);
        for i in 0..10 {
            cache.get(&hot).await.unwrap();
            let p = d.write(&format!("f{i}"), &[2u8; 3000]);
            cache.get(&p).await.unwrap();
            assert!(cache.stats().bytes <= 10_000);
        }
        let hot_entry = cache.get(&hot).await.unwrap();
        assert_eq!(hot_entry.len(), 3000);
        assert!(cache.stats().evictions > 0);
    }

    #[tokio::test]
    async fn file_larger_than_bound_is_served_not_kept() {
        let d = TempDir::new("huge");
        let cache = Cache::new(CacheConfig {
            max_bytes: 100,
            ..CacheConfig::default()
        });
        let p = d.write("big", &[3u8; 1000]);
        let e = cache.get(&p).await.unwrap();
        assert_eq!(e.len(), 1000);
        assert_eq!(cache.stats().entries, 0);
        assert_eq!(cache.stats().bytes, 0);
    }

    #[tokio::test]
    async fn revalidate_never_serves_cached_version() {
        let d = TempDir::new("never");
        let p = d.write("f", b"one");
        let cache = Cache::new(CacheConfig {
            revalidate: Revalidate::Never,
            ..CacheConfig::default()
        });
        cache.get(&p).await.unwrap();
        d.replace("f", b"two!");
        assert_eq!(cache.get(&p).await.unwrap().content().as_ref(), b"one");
        cache.invalidate(&p);
        assert_eq!(cache.get(&p).await.unwrap().content().as_ref(), b"two!");
    }

    #[tokio::test]
    async fn revalidate_every_interval() {
        let d = TempDir::new("every");
        let p = d.write("f", b"one");
        let cache = Cache::new(CacheConfig {
            revalidate: Revalidate::Every(Duration::from_millis(200)),
            ..CacheConfig::default()
        });
        cache.get(&p).await.unwrap();
        d.replace("f", b"two!");
        assert_eq!(cache.get(&p).await.unwrap().content().as_ref(), b"one");
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(cache.get(&p).await.unwrap().content().as_ref(), b"two!");
    }

    #[tokio::test]
    async fn truncated_mapping_is_dropped_and_remapped() {
        let d = TempDir::new("trunc");
        let p = d.write("f", &vec![5u8; 1 << 20]);
        let cache = Cache::new(CacheConfig {
            revalidate: Revalidate::Never,
            ..CacheConfig::default()
        });
        let e = cache.get(&p).await.unwrap();
        File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(4096)
            .unwrap();
        // Read it all, as a response would: survives, and poisons the entry.
        let sum: u64 = e.content().iter().map(|&b| u64::from(b)).sum();
        assert_eq!(sum, 5 * 4096);
        assert!(e.is_poisoned());
        // Even with Revalidate::Never, the poisoned entry is not served again.
        let e2 = cache.get(&p).await.unwrap();
        assert_eq!(e2.len(), 4096);
        assert!(!e2.is_poisoned());
    }

    #[test]
    fn blocking_get_for_warming() {
        let d = TempDir::new("blocking");
        let p = d.write("f", b"warm me");
        let cache = Cache::default();
        let e = cache.get_blocking(&p).unwrap();
        assert_eq!(e.content().as_ref(), b"warm me");
        assert!(Arc::ptr_eq(&e, &cache.get_blocking(&p).unwrap()));
    }
}

/// The digests of entries (`engine::digest`), tested through the entries and the cache
/// that hold them: kept here so that `digest.rs` imports neither (no import cycle).
#[cfg(all(test, feature = "digest"))]
mod digest_tests {
    use super::tests::TempDir;
    use crate::engine::entry::Entry;
    use crate::semantics::digest::DigestAlgorithm;
    use std::sync::Arc;
    use DigestAlgorithm::{Sha256, Sha512};

    #[tokio::test]
    async fn known_answers() {
        let e = Entry::from_static(b"abc", "text/plain");
        let d = e.digest(Sha256).await.unwrap();
        assert_eq!(
            d.repr_digest_value(),
            "sha-256=:ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=:"
        );
        assert_eq!(
            d.digest_value(),
            "SHA-256=ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
        );
        let d = e.digest(Sha512).await.unwrap();
        assert_eq!(d.bytes().len(), 64);
        assert!(d
            .repr_digest_value()
            .starts_with("sha-512=:3a81oZNherrMQXNJriBBMRLm+k6JqX6iCp7u5ktV05ohkpkqJ0/BqDa6PCOj/uu9RU1EI2Q86A4qmslPpUyknw==:"));
        let empty = Entry::from_static(b"", "text/plain");
        assert_eq!(
            empty.digest(Sha256).await.unwrap().digest_value(),
            "SHA-256=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
        assert_eq!(e.digest_computations(), 2, "one hash per algorithm");
        e.digest(Sha256).await.unwrap();
        assert_eq!(e.digest_computations(), 2, "kept");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn single_flight_for_32_concurrent_first_requests() {
        let e = Arc::new(Entry::from_bytes(
            vec![7u8; 16 << 20],
            "application/octet-stream",
        ));
        let mut tasks = Vec::new();
        for _ in 0..32 {
            let e = e.clone();
            tasks.push(tokio::spawn(async move {
                e.digest(Sha256).await.map(|d| d.bytes().to_vec())
            }));
        }
        let mut got = Vec::new();
        for t in tasks {
            got.push(t.await.unwrap().expect("a digest"));
        }
        assert!(got.iter().all(|d| d == &got[0]));
        assert_eq!(e.digest_computations(), 1, "32 waiters, one hash");
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_does_not_waste_the_hash() {
        let e = Entry::from_bytes(vec![1u8; 32 << 20], "application/octet-stream");
        // Polled once (starts the task), then dropped.
        let gave_up = tokio::time::timeout(std::time::Duration::ZERO, e.digest(Sha256)).await;
        assert!(gave_up.is_err());
        let d = e.digest(Sha256).await.unwrap().bytes().to_vec();
        assert_eq!(d.len(), 32);
        assert_eq!(e.digest_computations(), 1);
    }

    /// A directory under the temp dir, removed on drop.
    fn sha256(bytes: &[u8]) -> Vec<u8> {
        use sha2::Digest as _;
        sha2::Sha256::digest(bytes).to_vec()
    }

    #[tokio::test]
    async fn truncated_under_the_mapping_gives_no_digest_of_zeros() {
        use crate::engine::cache::{Cache, CacheConfig, Revalidate};
        let d = TempDir::new("digest-trunc");
        let p = d.write("f.bin", &vec![5u8; 1 << 20]);
        // `Never`: no end-of-body stat, so only the SIGBUS guard and the sentinel can
        // tell; the digest must still not be computed over the zero pages.
        let cache = Cache::new(CacheConfig {
            revalidate: Revalidate::Never,
            ..CacheConfig::default()
        });
        let e = cache.get(&p).await.unwrap();
        std::fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(4096)
            .unwrap();
        assert!(e.digest(Sha256).await.is_none(), "no digest over zeros");
        assert!(e.is_poisoned());
        // The next lookup maps the file as it is now, and its digest is right.
        let e2 = cache.get(&p).await.unwrap();
        assert_eq!(
            e2.digest(Sha256).await.unwrap().bytes(),
            sha256(&[5u8; 4096])
        );
    }

    #[tokio::test]
    async fn truncated_inside_the_last_page_gives_no_digest() {
        use crate::engine::cache::{Cache, CacheConfig, Revalidate};
        let d = TempDir::new("digest-trunc-last");
        let p = d.write("f.bin", &[9u8; 3000]);
        let cache = Cache::new(CacheConfig {
            revalidate: Revalidate::Never,
            ..CacheConfig::default()
        });
        let e = cache.get(&p).await.unwrap();
        // No fault: the rest of the page reads as zeros. The sentinel tells.
        std::fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(1000)
            .unwrap();
        assert!(e.digest(Sha256).await.is_none());
        assert!(e.is_poisoned());
    }

    #[tokio::test]
    async fn rewritten_in_place_gives_no_digest_and_the_new_version_its_own() {
        use crate::engine::cache::Cache;
        use std::os::unix::fs::FileExt;
        let d = TempDir::new("digest-rewrite");
        let v1 = vec![1u8; 256 << 10];
        let v2 = vec![2u8; 256 << 10];
        let p = d.write("f.bin", &v1);
        let cache = Cache::default();
        let e1 = cache.get(&p).await.unwrap();
        // Same inode, same size: only the mtime tells.
        let f = std::fs::File::options().write(true).open(&p).unwrap();
        f.write_all_at(&v2, 0).unwrap();
        drop(f);
        assert!(
            e1.digest(Sha256).await.is_none(),
            "the mapping shows v2 now"
        );
        assert!(e1.is_poisoned());
        let e2 = cache.get(&p).await.unwrap();
        assert_eq!(e2.digest(Sha256).await.unwrap().bytes(), sha256(&v2));
    }

    #[tokio::test]
    async fn a_file_replaced_by_rename_gets_a_new_digest_and_the_old_entry_keeps_its_own() {
        use crate::engine::cache::Cache;
        let d = TempDir::new("digest-rename");
        let p = d.write("f.bin", b"version one");
        let cache = Cache::default();
        let e1 = cache.get(&p).await.unwrap();
        let old = e1.digest(Sha256).await.unwrap().bytes().to_vec();
        assert_eq!(old, sha256(b"version one"));
        let tmp = d.write("f.tmp", b"version two");
        std::fs::rename(tmp, &p).unwrap();
        let e2 = cache.get(&p).await.unwrap();
        assert_eq!(
            e2.digest(Sha256).await.unwrap().bytes(),
            sha256(b"version two")
        );
        assert_eq!(
            e1.ready_digest(Sha256).unwrap().bytes(),
            old,
            "old bytes, old digest"
        );
    }

    #[test]
    fn digests_at_load_are_ready_before_any_request() {
        use crate::engine::cache::{Cache, CacheConfig};
        let d = TempDir::new("digest-at-load");
        let p = d.write("f.bin", b"warm digests");
        let cache = Cache::new(CacheConfig {
            digests_at_load: vec![Sha256, Sha512],
            ..CacheConfig::default()
        });
        let e = cache.get_blocking(&p).unwrap();
        assert_eq!(
            e.ready_digest(Sha256).unwrap().bytes(),
            sha256(b"warm digests")
        );
        assert!(e.ready_digest(Sha512).is_some());
        assert_eq!(e.digest_computations(), 2);
        assert_eq!(
            cache.stats().digests_computed,
            2,
            "counted in the cache's stats"
        );
    }

    #[tokio::test]
    async fn digests_computed_are_counted_once_per_hash() {
        use crate::engine::cache::Cache;
        let d = TempDir::new("digest-count-digests");
        let p = d.write("f.bin", b"count me");
        let cache = Cache::default();
        let e = cache.get(&p).await.unwrap();
        assert_eq!(cache.stats().digests_computed, 0);
        e.digest(Sha256).await.expect("a digest");
        e.digest(Sha256).await.expect("the same digest");
        assert_eq!(cache.stats().digests_computed, 1);
        cache.get(&p).await.unwrap().digest(Sha512).await.unwrap();
        assert_eq!(cache.stats().digests_computed, 2);
    }

    #[test]
    fn blocking_outside_a_runtime() {
        let e = Entry::from_static(b"abc", "text/plain");
        assert!(e.ready_digest(Sha256).is_none());
        e.start_digest(Sha256); // no runtime: computed here
        assert!(e.ready_digest(Sha256).is_some());
        assert!(e.digest_blocking(Sha512).is_some());
        assert_eq!(e.digest_computations(), 2);
    }
}

/// [`Revalidate::Watch`] against real files and real inotify events.
#[cfg(all(test, feature = "watch", target_os = "linux"))]
mod watch_tests {
    use super::tests::TempDir;
    use super::*;
    use crate::semantics::etag::EntityTag;

    fn watching() -> Cache {
        let cache = Cache::new(CacheConfig {
            revalidate: Revalidate::Watch,
            ..CacheConfig::default()
        });
        assert!(cache.is_watching(), "no inotify watcher on Linux");
        cache
    }

    /// A directory whose path is canonical (the watcher trusts canonical paths only).
    fn dir(name: &str) -> TempDir {
        let mut d = TempDir::new(name);
        d.0 = d.0.canonicalize().unwrap();
        d
    }

    fn tag(cache: &Cache, p: &Path) -> EntityTag {
        cache.get_blocking(p).unwrap().etag().cloned().unwrap()
    }

    /// Asks until the entry's tag is no longer `old`; how long that took.
    fn until_changed(cache: &Cache, p: &Path, old: &EntityTag) -> Duration {
        let start = Instant::now();
        while tag(cache, p) == *old {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "change not noticed in 5 s"
            );
            std::thread::yield_now();
        }
        start.elapsed()
    }

    /// Writes `bytes` over the start of the file at `p`, in place (same inode).
    fn write_in_place(p: &Path, bytes: &[u8]) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
        f.write_all(bytes).unwrap();
    }

    #[test]
    fn hits_trust_the_watch_and_events_bring_changes() {
        let d = dir("watch-hits");
        let other = dir("watch-hits-elsewhere");
        let p = d.write("f.bin", b"version one");
        let link = other.0.join("link.bin");
        std::fs::hard_link(&p, &link).unwrap();
        let cache = watching();
        let one = tag(&cache, &p);
        // The first hit after a load takes a stat; after it, hits trust the watch.
        assert_eq!(tag(&cache, &p), one);
        assert!(cache.watched_dirs() >= 2, "{}", cache.watched_dirs());
        assert_eq!(cache.stats().watched_dirs, cache.watched_dirs());
        // A write through a hard link in an unwatched directory reports no event
        // to the file's directory: a hit that made a `stat` would see it, and does
        // not (the limit the module documents; it proves hits make no system call).
        write_in_place(&link, b"VERSION");
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(tag(&cache, &p), one);
        // A write through the file's own path is reported and noticed.
        write_in_place(&p, b"v");
        until_changed(&cache, &p, &one);
        assert_eq!(
            cache.get_blocking(&p).unwrap().content().as_ref(),
            b"vERSION one"
        );
    }

    #[test]
    fn notices_replacement_deletion_and_moved_directories() {
        let d = dir("watch-moves");
        std::fs::create_dir(d.0.join("sub")).unwrap();
        let p = d.write("sub/f.bin", b"first");
        let cache = watching();
        let first = tag(&cache, &p);
        // Replaced by rename (a new inode), as deployments do.
        d.replace("sub/f.bin", b"second");
        until_changed(&cache, &p, &first);
        let second = tag(&cache, &p);
        assert_eq!(
            cache.get_blocking(&p).unwrap().content().as_ref(),
            b"second"
        );
        // The directory moved away and another one put at its path.
        std::fs::rename(d.0.join("sub"), d.0.join("old")).unwrap();
        std::fs::create_dir(d.0.join("sub")).unwrap();
        d.write("sub/f.bin", b"third");
        until_changed(&cache, &p, &second);
        assert_eq!(cache.get_blocking(&p).unwrap().content().as_ref(), b"third");
        // The new directory is watched again: an in-place write there is noticed.
        let third = tag(&cache, &p);
        assert_eq!(tag(&cache, &p), third);
        write_in_place(&p, b"T");
        until_changed(&cache, &p, &third);
        // Truncated (IN_MODIFY).
        let fourth = tag(&cache, &p);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(2)
            .unwrap();
        until_changed(&cache, &p, &fourth);
        assert_eq!(cache.get_blocking(&p).unwrap().content().as_ref(), b"Th");
        // `chmod` (IN_ATTRIB): same bytes, so the same tag, but a new version is
        // loaded (its ctime moved).
        let before = *cache.get_blocking(&p).unwrap().fingerprint().unwrap();
        assert_eq!(tag(&cache, &p), tag(&cache, &p));
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let start = Instant::now();
        while *cache.get_blocking(&p).unwrap().fingerprint().unwrap() == before {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "chmod not noticed"
            );
            std::thread::yield_now();
        }
        // Deleted: answered as missing once the event is handled.
        std::fs::remove_file(&p).unwrap();
        let start = Instant::now();
        while cache.get_blocking(&p).is_ok() {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "deletion not noticed"
            );
            std::thread::yield_now();
        }
        assert!(matches!(cache.get_blocking(&p), Err(CacheError::NotFound)));
    }

    #[test]
    fn entries_that_cannot_be_watched_are_revalidated_by_stat() {
        // No room for watches: every hit takes a `stat`, and a write no watch could
        // report (through a hard link elsewhere) is noticed on the next request.
        let d = dir("watch-limit");
        let other = dir("watch-limit-elsewhere");
        let p = d.write("f.bin", b"version one");
        let link = other.0.join("link.bin");
        std::fs::hard_link(&p, &link).unwrap();
        let cache = Cache::with_watch_limit(
            CacheConfig {
                revalidate: Revalidate::Watch,
                ..CacheConfig::default()
            },
            0,
        );
        let one = tag(&cache, &p);
        assert_eq!(tag(&cache, &p), one);
        write_in_place(&link, b"VERSION");
        assert_ne!(tag(&cache, &p), one);

        // A path through a symbolic link: the target changes in another directory.
        let cache = watching();
        let via = d.0.join("via.bin");
        std::os::unix::fs::symlink(&link, &via).unwrap();
        let before = tag(&cache, &via);
        assert_eq!(tag(&cache, &via), before);
        write_in_place(&link, b"version");
        assert_ne!(tag(&cache, &via), before);
    }

    /// The delay from a `write` returning to the watcher marking the entry, and to
    /// the cache serving the new version (which includes the load's wait for the
    /// change to settle, as under "always"). Bounded (a correctness check); the
    /// figures are printed for the README:
    /// `cargo test --lib watch_delay -- --nocapture`.
    #[test]
    fn watch_delay_from_write_to_new_tag() {
        let d = dir("watch-delay");
        let p = d.write("f.bin", &[0u8; 4096]);
        let cache = watching();
        let mut old = tag(&cache, &p);
        let (mut marked, mut served) = (Vec::new(), Vec::new());
        for i in 1..=100u32 {
            let events = cache.map.get(&p).unwrap().events.load(Ordering::Acquire);
            let start = Instant::now();
            write_in_place(&p, &i.to_le_bytes());
            while cache.map.get(&p).unwrap().events.load(Ordering::Acquire) == events {
                assert!(start.elapsed() < Duration::from_secs(5), "no event in 5 s");
                std::hint::spin_loop();
            }
            marked.push(start.elapsed());
            until_changed(&cache, &p, &old);
            served.push(start.elapsed());
            old = tag(&cache, &p);
        }
        for (what, v) in [
            ("event handled", &mut marked),
            ("new tag served", &mut served),
        ] {
            v.sort();
            eprintln!(
                "watch: write -> {what} over {} writes: median {:?}, p90 {:?}, max {:?}",
                v.len(),
                v[v.len() / 2],
                v[v.len() * 9 / 10],
                v[v.len() - 1]
            );
        }
    }
}

#[cfg(test)]
mod tag_tests;

#[cfg(all(test, unix, feature = "tag-store"))]
mod store_tests;
