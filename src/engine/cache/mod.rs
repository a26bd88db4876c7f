//! The mmap cache: files mapped once, hashed once (after their first response),
//! served as slices.
//!
//! * Entries live in a [`DashMap`] keyed by path. A hit costs one map lookup (no key
//!   allocation) and, depending on [`Revalidate`], one `stat`.
//! * **Small files in memory**: a file of at most 64 KiB is read into memory, not
//!   mapped; when its path and pages are in memory it is read on the calling worker
//!   with calls that cannot block (see `engine::small`), so such a miss costs about
//!   what a hit does.
//! * **Single flight**: concurrent misses for one mapped file version share one slot,
//!   whose `OnceCell` runs a single load; loading (open, `fstat`, map), and anything
//!   that may wait for the disk (a path or pages not in memory), runs on tokio's
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
//! * **Bounds**: at most [`CacheConfig::max_entries`] entries,
//!   [`CacheConfig::max_memory`] bytes of memory held, [`CacheConfig::max_mappings`]
//!   mappings and [`CacheConfig::max_bytes`] mapped bytes; past any, entries are
//!   evicted by CLOCK, an approximation of least recently used (down to 63/64 of the
//!   bound; each eviction O(1), see `slots`). A file larger than `max_bytes` on its
//!   own is served but not kept.
//! * No file descriptor stays open once a file is mapped and hashed (a file whose tag
//!   is pending keeps its descriptor until its hash ran); empty files have no mapping.
//! * A mapping the SIGBUS guard found truncated, or whose file a body found rewritten
//!   ([`Entry::is_poisoned`]), is dropped and the file mapped afresh on the next lookup.
//! * **Exactly one version per response**: unless the policy is [`Revalidate::Never`],
//!   every mapping's watch carries the file's path and fingerprint, and a body checks
//!   them (one `stat`) before it returns its last bytes; see
//!   `MappingWatch::verify_unmodified`. A tag whose file's fingerprint changed while
//!   it was hashed is never published (the entry is poisoned and the file loaded
//!   afresh), and a file changed less than [`SETTLE`](crate::cache::SETTLE) ago is hashed
//!   again once the change has settled, so an ETag never describes a mix of two
//!   versions.
//! * **Counters** ([`Cache::stats`]): hits, misses, loads, evictions, single-flight
//!   waits and load times are counted here, and every body made for this cache
//!   counts its bytes and how it ended, in relaxed atomics (see `engine::stats`).

mod config;
mod file_slot;
mod get;
pub(crate) mod slots;
mod stats;
mod watching;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

#[cfg(doc)]
use crate::engine::entry::Entry;
pub use crate::engine::error::CacheError;
use crate::engine::fault_in::Pager;
#[cfg(doc)]
use crate::engine::fingerprint::Fingerprint;
use crate::engine::siblings::SiblingIndex;
pub use crate::engine::stats::CacheStats;
use crate::engine::stats::Counters;
use crate::engine::tag::HashLimit;
use crate::engine::tag_memo::TagMemo;
use crate::engine::watch::{DirWatch, MAX_WATCHED_DIRS};
pub(crate) use config::mappings_bound;
pub use config::{CacheConfig, Revalidate};
use file_slot::FileSlots;
use watching::on_change;

/// The mmap cache. Share it (it is `Send + Sync`; Rocket keeps it in managed state).
///
/// ```rust
/// use std::sync::Arc;
/// use rocket_mmap::cache::{Cache, CacheConfig, Revalidate};
///
/// # let dir = std::env::temp_dir().join(format!("rocket-mmap-doc-cache-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// # let path = dir.join("hello.txt");
/// # std::fs::write(&path, "Hello, world!\n").unwrap();
/// let cache = Cache::new(CacheConfig {
///     max_entries: 256,
///     revalidate: Revalidate::Always, // a `stat` per request notices a changed file
///     ..CacheConfig::default()
/// });
/// // On a blocking thread, or at start-up; `cache.get(&path).await` on an async one.
/// let entry = cache.get_blocking(&path)?; // mapped once…
/// assert_eq!(&entry.content()[..], b"Hello, world!\n");
/// let again = cache.get_blocking(&path)?; // …and shared
/// assert!(Arc::ptr_eq(&entry, &again));
/// assert_eq!((cache.stats().misses, cache.stats().hits), (1, 1));
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), rocket_mmap::CacheError>(())
/// ```
pub struct Cache {
    /// The entries, keyed by the path as given, bounded by
    /// [`CacheConfig::max_entries`] and [`CacheConfig::max_bytes`]. Shared with the
    /// watcher's event handler under [`Revalidate::Watch`].
    slots: Arc<FileSlots>,
    config: CacheConfig,
    /// The inotify watcher, under [`Revalidate::Watch`] when inotify is available.
    watch: Option<Arc<DirWatch>>,
    /// Moves on with every directory event (and lost events) of the watcher: a load
    /// that saw it move while it decided its slot was watched does not trust that.
    tree_epoch: Arc<AtomicU64>,
    epoch: Instant,
    /// Hits, misses, loads, evictions, load times, and the bodies' counters; shared
    /// with every body made for this cache (see `crate::engine::stats`).
    counters: Arc<Counters>,
    /// Runs the fault-ins of this cache's bodies, at most `max_fault_ins` at once.
    pager: Arc<Pager>,
    /// The bound on tag hashes running at once ([`CacheConfig::max_background_hashes`]).
    hashes: HashLimit,
    /// Which files have precompressed siblings, per directory.
    siblings: SiblingIndex,
}

impl Default for Cache {
    fn default() -> Self {
        Cache::new(CacheConfig::default())
    }
}

impl Cache {
    /// An empty cache with the given bounds and policy.
    pub fn new(config: CacheConfig) -> Cache {
        Cache::with_watch_limit(config, MAX_WATCHED_DIRS)
    }

    /// [`Cache::new`] with another bound on the directories watched.
    pub(crate) fn with_watch_limit(config: CacheConfig, max_dirs: usize) -> Cache {
        let slots = Arc::new(
            FileSlots::new(config.max_entries, config.max_bytes)
                .with_memory_bounds(config.max_memory, mappings_bound(config.max_mappings)),
        );
        let tree_epoch = Arc::new(AtomicU64::new(0));
        let watch = (config.revalidate == Revalidate::Watch)
            .then(|| {
                let (slots, tree_epoch) = (slots.clone(), tree_epoch.clone());
                DirWatch::new(
                    move |change| on_change(&slots, &tree_epoch, change),
                    max_dirs,
                )
            })
            .flatten()
            .map(Arc::new);
        let counters = Arc::<Counters>::default();
        let pager = Arc::new(Pager::new(config.max_fault_ins, counters.clone()));
        Cache {
            slots,
            hashes: HashLimit::new(config.max_background_hashes)
                .giving_way_to({
                    let c = counters.clone();
                    move || {
                        c.fault_ins_queued.load(Ordering::Relaxed)
                            + c.fault_ins_running.load(Ordering::Relaxed)
                            > 0
                    }
                })
                .remembering(Arc::new(TagMemo::new(config.max_remembered_versions, None))),
            config,
            watch,
            tree_epoch,
            epoch: Instant::now(),
            counters,
            pager,
            siblings: SiblingIndex::default(),
        }
    }

    /// The same cache, remembering every file version's ETag and digests in `store`
    /// too (behind the tag memo, `engine::tag_memo`) and looking them up there before
    /// it would hash (feature `tag-store`; the store's guarantees are on
    /// [`TagStore`](crate::cache::TagStore)): after a restart, or an eviction, an
    /// unchanged file is answered with its tag without reading its content. Call it
    /// before the cache serves anything.
    ///
    /// For example `Cache::new(CacheConfig::default()).with_tag_store(store)` with the
    /// `store` from [`TagStore::open`](crate::cache::TagStore::open); the Rocket configuration
    /// does this for the `tag_store` key.
    #[cfg(feature = "tag-store")]
    pub fn with_tag_store(mut self, store: crate::engine::tag_store::TagStore) -> Cache {
        let store: Arc<dyn crate::engine::tag::Remember> = Arc::new(store);
        let memo = TagMemo::new(self.config.max_remembered_versions, Some(store));
        self.hashes = self.hashes.clone().remembering(Arc::new(memo));
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

    pub(super) fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Drops every entry (responses in flight keep their mappings).
    pub fn clear(&self) {
        self.slots.clear();
    }

    /// Drops the entry for `path`, if any.
    pub fn invalidate(&self, path: &Path) {
        self.slots.remove(path);
    }
}

#[cfg(test)]
mod tests;

#[cfg(all(test, feature = "digest"))]
mod digest_tests;

#[cfg(all(test, feature = "watch", target_os = "linux"))]
mod watch_tests;

#[cfg(test)]
mod tag_tests;

#[cfg(all(test, unix, feature = "tag-store"))]
mod store_tests;
