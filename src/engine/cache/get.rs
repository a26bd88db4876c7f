//! The cache's lookups: [`Cache::get`] (async, loads on the blocking pool),
//! [`Cache::get_blocking`] (loads and hashes on the calling thread), and the
//! peek-then-confirm pair of the file server's fast path.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use super::file_slot::{FileSlot, FileState};
use super::slots::{Freshness, VersionSlot};
use super::watching::LoadWatch;
use super::{Cache, CacheError, Revalidate};
use crate::engine::entry::Entry;
use crate::engine::fingerprint::Fingerprint;
use crate::engine::load::{load_file, Hash};
use crate::engine::open::stat;
use crate::engine::small::{self, Quick, Why};
use crate::engine::stats::Counters;
use crate::engine::tag::HashLimit;
use crate::semantics::digest::DigestAlgorithm;
use crate::semantics::encoding::negotiate_coding;

/// An entry found by [`Cache::peek`], with its slot (so that [`Cache::confirm`]
/// needs no second lookup). The file server's one-`stat` path is its only user.
#[cfg_attr(not(feature = "rocket"), allow(dead_code))]
pub(crate) struct Peeked {
    slot: Arc<FileSlot>,
    /// The entry, not yet compared with the disk.
    pub(crate) entry: Arc<Entry>,
}

impl Cache {
    /// The entry for the file at `path`: from the cache if it is current, otherwise
    /// mapped on the blocking pool (once, however many callers wait). A file's ETag is
    /// computed after it is mapped, in the background ([`Entry::etag`] is `None` until
    /// then; [`Entry::strong_etag`] waits for it), unless the file is small or
    /// [`CacheConfig::digests_at_load`](super::CacheConfig::digests_at_load) asks for
    /// digests at load.
    ///
    /// Must be called within a tokio runtime.
    ///
    /// # Errors
    /// See [`CacheError`]: missing files, directories and non-regular files,
    /// permission errors, and files that kept changing while being loaded.
    pub async fn get(&self, path: &Path) -> Result<Arc<Entry>, CacheError> {
        let hash = if self.config.digests_at_load.is_empty() {
            Hash::Later
        } else {
            Hash::AtLoad
        };
        let mut fingerprint = match self.cached(path)? {
            Cached::Hit(entry) => {
                self.counters.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(entry);
            }
            Cached::Changed(fingerprint) => Some(fingerprint),
            Cached::Absent => None,
        };
        // A small file whose path and pages are in memory: loaded here, without a hop.
        let mut why = Why::NotSmall;
        if hash == Hash::Later {
            match self.load_here(path)? {
                Here::Loaded(entry) => return Ok(entry),
                Here::Blocking(reason, known) => {
                    why = reason;
                    fingerprint = fingerprint.or(known);
                }
            }
        }
        let fingerprint = match fingerprint {
            Some(fingerprint) => fingerprint,
            // The path is not in memory: even its `stat` may wait for the disk.
            None => {
                let path = path.to_path_buf();
                tokio::task::spawn_blocking(move || stat(&path))
                    .await
                    .map_err(|e| CacheError::Io(std::io::Error::other(e)))??
            }
        };
        let counter = match why {
            Why::ColdPath => &self.counters.blocking_loads_cold_path,
            Why::Link => &self.counters.blocking_loads_link,
            Why::ColdData => &self.counters.blocking_loads_cold_data,
            Why::NotSmall => &self.counters.blocking_loads_mapped,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let Miss { slot, load } = self.miss(path, fingerprint, hash);
        // On the blocking pool, once for the slot: later callers wait for it.
        let mut loaded_here = false;
        let entry = slot
            .cell
            .get_or_try_init(|| {
                loaded_here = true;
                async move {
                    tokio::task::spawn_blocking(move || load.run())
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
        self.loaded(path, &slot);
        Ok(entry)
    }

    /// The precompressed variant of the file at `path` (loaded as `entry`) to send for
    /// a request's `Accept-Encoding` field, as the file server picks it: a sibling
    /// `FILE.br` or `FILE.gz` the client accepts (Brotli first on equal `q`; RFC 9110
    /// §12.5.3), as the pair of its content coding (`"br"` or `"gzip"`) and its path;
    /// `None` for the file itself. The `bool` says whether the file has any sibling:
    /// every response for it, variant or not, then carries `Vary: Accept-Encoding`
    /// (RFC 9110 §12.5.5).
    ///
    /// Siblings are looked up once per entry, in an index of each directory read on the
    /// blocking pool once per version of the directory (no `stat` per file; see
    /// `engine::siblings`): a sibling added to a directory is seen within about a
    /// second by the entries loaded after it. Serve the variant through the cache too
    /// (`cache.get(&path)`), with the original's content type. Must be called within a
    /// tokio runtime.
    ///
    /// ```rust
    /// use rocket_mmap::cache::Cache;
    ///
    /// # let dir = std::env::temp_dir().join(format!("rocket-mmap-doc-variant-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir).unwrap();
    /// # std::fs::write(dir.join("app.js"), "let x = 1;").unwrap();
    /// # std::fs::write(dir.join("app.js.br"), "(brotli)").unwrap();
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let cache = Cache::default();
    /// let path = dir.join("app.js");
    /// let entry = cache.get(&path).await?;
    /// let (vary, variant) = cache.precompressed_variant(&path, &entry, Some("gzip, br")).await;
    /// assert!(vary);
    /// assert_eq!(variant, Some(("br", dir.join("app.js.br"))));
    /// let (_, none) = cache.precompressed_variant(&path, &entry, Some("identity")).await;
    /// assert_eq!(none, None);
    /// # Ok::<(), rocket_mmap::CacheError>(())
    /// # }).unwrap();
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// ```
    pub async fn precompressed_variant(
        &self,
        path: &Path,
        entry: &Entry,
        accept_encoding: Option<&str>,
    ) -> (bool, Option<(&'static str, PathBuf)>) {
        let siblings = match entry.known_siblings() {
            Some(known) => known,
            None => {
                let changed = entry.fingerprint().map(|f| f.ctime_ns);
                let found = self.siblings.of(path, changed).await;
                entry.siblings_with(|| found)
            }
        };
        if !siblings.any() {
            return (false, None);
        }
        let variant = negotiate_coding(accept_encoding, siblings).map(|coding| {
            let mut p = path.as_os_str().to_owned();
            p.push(coding.extension());
            (coding.token(), PathBuf::from(p))
        });
        (true, variant)
    }

    /// [`small::load_now`] for `path`, under the watcher if any: the entry, kept in its
    /// slot and counted as a miss and a load, or what the attempt learnt of the file.
    fn load_here(&self, path: &Path) -> Result<Here, CacheError> {
        let started = Instant::now();
        let epoch_before = self.tree_epoch.load(Ordering::SeqCst);
        let mut covered = false;
        let quick = small::load_now(path, &self.hashes, || {
            covered = self.watch.as_ref().is_some_and(|w| w.cover(path));
        })?;
        let entry = match quick {
            Quick::Loaded(entry) => Arc::new(entry),
            Quick::Blocking(why, fingerprint) => return Ok(Here::Blocking(why, fingerprint)),
        };
        self.counters.misses.fetch_add(1, Ordering::Relaxed);
        let Some(&fingerprint) = entry.fingerprint() else {
            return Ok(Here::Loaded(entry));
        };
        let slot = self.slot_for(path, fingerprint);
        if let Some(w) = self.watcher_for(&slot) {
            w.settle_after(covered, epoch_before, path, &entry);
        }
        // A concurrent load of the same version may have filled the slot first: every
        // caller gets the one kept.
        let entry = match slot.cell.set(entry.clone()) {
            Ok(()) => {
                self.counters.load_time.observe(started.elapsed());
                entry
            }
            Err(_) => slot.cell.get().cloned().unwrap_or(entry),
        };
        self.loaded(path, &slot);
        Ok(Here::Loaded(entry))
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
        let Miss { slot, load } = match self.hit_or_miss(path, Hash::AtLoad)? {
            Ok(entry) => return Ok(entry),
            Err(miss) => miss,
        };
        if let Some(entry) = slot.cell.get() {
            return Ok(entry.clone());
        }
        // Here, without waiting for a load in flight: another thread may win the
        // slot; either way the slot holds one entry.
        let entry = load.run()?;
        let entry = match slot.cell.set(entry.clone()) {
            Ok(()) => entry,
            Err(_) => slot.cell.get().cloned().unwrap_or(entry),
        };
        self.loaded(path, &slot);
        Ok(entry)
    }

    /// The blocking lookup's path: a current entry (a hit), or the miss to load, with
    /// `hash` for its load; counts which.
    fn hit_or_miss(&self, path: &Path, hash: Hash) -> Result<Result<Arc<Entry>, Miss>, CacheError> {
        let fingerprint = match self.cached(path)? {
            Cached::Hit(entry) => {
                self.counters.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(Ok(entry));
            }
            Cached::Changed(fingerprint) => fingerprint,
            Cached::Absent => stat(path)?,
        };
        Ok(Err(self.miss(path, fingerprint, hash)))
    }

    /// The miss of the version `fingerprint` of `path` (counted): its slot, and the
    /// load that fills it.
    fn miss(&self, path: &Path, fingerprint: Fingerprint, hash: Hash) -> Miss {
        self.counters.misses.fetch_add(1, Ordering::Relaxed);
        let slot = self.slot_for(path, fingerprint);
        let load = Load {
            path: path.to_path_buf(),
            origin: self.config.revalidate != Revalidate::Never,
            hash,
            digests: self.config.digests_at_load.clone(),
            hashes: self.hashes.clone(),
            counters: self.counters.clone(),
            watch: self.watcher_for(&slot),
        };
        Miss { slot, load }
    }

    /// The cached entry for `path` if it is current; otherwise the fingerprint of the
    /// file on disk if the policy's check took one, or [`Cached::Absent`] when nothing
    /// usable is cached (then nothing was asked of the file system).
    fn cached(&self, path: &Path) -> Result<Cached, CacheError> {
        let now = self.now_ms();
        let revalidate = self.config.revalidate;
        let Some(slot) = &self.slots.get(path) else {
            return Ok(Cached::Absent);
        };
        let Some(entry) = slot.cell.get() else {
            return Ok(Cached::Absent);
        };
        if !FileState::is_fresh(slot, now, revalidate) {
            return Ok(Cached::Absent);
        }
        // Read before the `stat`: an event after it keeps the slot unverified.
        let events = slot.state.events.load(Ordering::Acquire);
        let check = slot.needs_stat(now, revalidate, || slot.state.vouched(events));
        if !check {
            slot.touch();
            return Ok(Cached::Hit(entry.clone()));
        }
        let fp = stat(path)?;
        if Some(&fp) == entry.fingerprint() {
            slot.touch();
            slot.last_checked.store(now, Ordering::Relaxed);
            slot.state.verified.fetch_max(events, Ordering::AcqRel);
            return Ok(Cached::Hit(entry.clone()));
        }
        Ok(Cached::Changed(fp))
    }

    /// The slot for this file version: the one kept if it was made for the same
    /// fingerprint (so concurrent misses share one load), otherwise a new one. A file
    /// larger than [`CacheConfig::max_bytes`](super::CacheConfig::max_bytes) on its
    /// own gets a slot that is served, never kept.
    pub(super) fn slot_for(&self, path: &Path, fingerprint: Fingerprint) -> Arc<FileSlot> {
        let now = self.now_ms();
        if fingerprint.size > self.config.max_bytes {
            return VersionSlot::new(fingerprint, now, FileState::unverified());
        }
        let revalidate = self.config.revalidate;
        let (slot, evicted) = self.slots.slot_for(
            path.to_path_buf(),
            fingerprint,
            now,
            revalidate,
            FileState::unverified,
        );
        self.count_evictions(evicted);
        slot
    }

    /// Accounts for a finished load (counted once per slot) and enforces the bounds.
    fn loaded(&self, path: &Path, slot: &Arc<FileSlot>) {
        let (first, evicted) = self.slots.loaded(path, slot);
        if first {
            self.counters.loads.fetch_add(1, Ordering::Relaxed);
        }
        self.count_evictions(evicted);
    }

    fn count_evictions(&self, evicted: u64) {
        if evicted > 0 {
            self.counters
                .evictions
                .fetch_add(evicted, Ordering::Relaxed);
        }
    }

    /// The watcher's part in a load of `slot`, under [`Revalidate::Watch`].
    fn watcher_for(&self, slot: &Arc<FileSlot>) -> Option<LoadWatch> {
        Some(LoadWatch {
            dirs: self.watch.clone()?,
            slot: slot.clone(),
            tree_epoch: self.tree_epoch.clone(),
            epoch_before: self.tree_epoch.load(Ordering::SeqCst),
        })
    }
}

/// The file server's one-`stat` path: build the answer from a cached entry first, check
/// it afterwards.
#[cfg_attr(not(feature = "rocket"), allow(dead_code))]
impl Cache {
    /// The cached entry for `path` *without* comparing it with the disk: for a caller
    /// that builds its answer first and then calls [`Cache::confirm`] (under
    /// [`Revalidate::Always`] one `stat` taken after the body's bytes were copied,
    /// which both revalidates the entry and proves the copied bytes belong to it).
    /// Only under [`Revalidate::Always`] and [`Revalidate::Watch`]; `None` when there
    /// is no usable entry.
    pub(crate) fn peek(&self, path: &Path) -> Option<Peeked> {
        if !matches!(
            self.config.revalidate,
            Revalidate::Always | Revalidate::Watch
        ) {
            return None;
        }
        let slot = self.slots.get(path)?;
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
    pub(crate) fn confirm(&self, path: &Path, peeked: &Peeked, copied: bool) -> bool {
        let (entry, slot) = (&peeked.entry, &peeked.slot);
        let events = slot.state.events.load(Ordering::Acquire);
        let vouched = self.config.revalidate == Revalidate::Watch && slot.state.vouched(events);
        let current = !entry.is_poisoned()
            && ((vouched && !copied)
                || stat(path).is_ok_and(|fp| Some(&fp) == entry.fingerprint()));
        if current {
            self.counters.hits.fetch_add(1, Ordering::Relaxed);
            let now = self.now_ms();
            slot.touch();
            slot.last_checked.store(now, Ordering::Relaxed);
            slot.state.verified.fetch_max(events, Ordering::AcqRel);
        }
        current
    }
}

/// What the cache holds for a path (see [`Cache::cached`]).
enum Cached {
    /// A current entry.
    Hit(Arc<Entry>),
    /// An entry of another version; the fingerprint of the one on disk.
    Changed(Fingerprint),
    /// Nothing usable.
    Absent,
}

/// What [`Cache::load_here`] did.
enum Here {
    /// Loaded, kept and counted.
    Loaded(Arc<Entry>),
    /// Left to the blocking pool, why, and the file's fingerprint if it was taken.
    Blocking(Why, Option<Fingerprint>),
}

/// A miss: the slot of the file version on disk (shared by concurrent misses of that
/// version) and the load that fills it.
struct Miss {
    slot: Arc<FileSlot>,
    load: Load,
}

/// One load of one file version, owned, so that it can move to a blocking thread.
struct Load {
    path: PathBuf,
    /// Whether the mapping's watch checks the file at the end of each body.
    origin: bool,
    hash: Hash,
    digests: Vec<DigestAlgorithm>,
    hashes: HashLimit,
    counters: Arc<Counters>,
    /// The watcher's part, under [`Revalidate::Watch`].
    watch: Option<LoadWatch>,
}

impl Load {
    /// Loads the file on the calling (blocking) thread, under the watcher if any;
    /// records how long it took, and starts the hash of its tag if the load left it
    /// pending.
    fn run(self) -> Result<Arc<Entry>, CacheError> {
        LoadWatch::around(self.watch.as_ref(), &self.path, || {
            let started = Instant::now();
            let entry = load_file(
                &self.path,
                self.origin,
                self.hash,
                &self.digests,
                &self.hashes,
            )?;
            self.counters.load_time.observe(started.elapsed());
            entry.count_digests_in(&self.counters);
            entry.start_etag();
            Ok(Arc::new(entry))
        })
    }
}
