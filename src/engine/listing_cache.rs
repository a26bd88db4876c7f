//! The cache of directory listings (feature `browse`): each directory's names, and
//! the pages rendered from them.
//!
//! A page is an [`Entry`] like any file: its bytes (HTML or JSON) were rendered once,
//! its ETag is the CRC-64 of those bytes, its `Last-Modified` the latest modification
//! time of the directory and of the entries on the page. So conditionals, ranges and
//! HEAD work on it exactly as on a file, page by page.
//!
//! * **Snapshots.** A directory's names, sorted ([`Snapshot`]), are read once per
//!   version of the directory (key: the directory and what is listed, not the page
//!   size) and every page is a slice of them: page 1000 costs what page 1 does, a
//!   binary search and the `stat`s of its entries. A snapshot holds kinds and names
//!   only, which change only through the directory, so it is kept while the
//!   directory's `stat` is unchanged; except, aging as a page does, one that met a
//!   symbolic link (its target may change) or whose directory changed less than
//!   [`RACY`] before it was read (a change within the same tick of a coarse clock
//!   would not show in the directory's times).
//! * **Bounds on snapshots**: at most [`MAX_SNAPSHOTS`] and [`MAX_SNAPSHOT_BYTES`] in
//!   all, the least recently used dropped first (CLOCK, as in the file cache). A
//!   directory whose names would take more than [`MAX_SNAPSHOT_SIZE`] (some 400 000
//!   names of 30 bytes) has none: each of its pages is read in a pass of its own
//!   (`scan::scan_window`), with memory for two pages whatever the size of the
//!   directory, and time for a whole `readdir`.
//! * **Pages.** Key: the directory, the page (format, sort, order, the URL path
//!   shown), the scan options, and where the page starts: its position in the
//!   snapshot, so that every cursor naming the same position shares one page; or, for
//!   a directory without a snapshot, its cursor. A page is kept for the version of
//!   the directory and the read of its names it was made from.
//! * **Single flight**: concurrent requests for one snapshot or one page share one
//!   build; builds run on tokio's blocking pool, at most [`MAX_CONCURRENT_BUILDS`] at
//!   once per cache, so a few huge directories cannot take every blocking thread.
//! * **Change detection** follows the file cache's [`Revalidate`] policy, once per
//!   request, for the snapshot: with `Always`, every request `stat`s the directory and
//!   a changed fingerprint (an entry added, removed or renamed changes the directory's
//!   mtime and ctime) reads it again; a page is kept for the snapshot's version only. A
//!   file rewritten in place changes its own times but not its directory's, so a page
//!   is also rebuilt once it is older than [`MAX_AGE`] (with `Every(d)`, older than `d`
//!   if that is longer), or than ten times what it took to build if that is longer
//!   still: a page that takes 200 ms to build is built again at most every 2 s, so
//!   refreshing costs at most a tenth of one thread. A rebuild that renders the same
//!   bytes has the same ETag, so clients keep getting 304. With `Never`, snapshots and
//!   pages are built once and kept until evicted.
//! * **Bounds on pages**: at most [`MAX_LISTINGS`] pages and [`MAX_BYTES`] rendered
//!   bytes; past either, the least recently used are dropped (CLOCK, down to 63/64
//!   of the bound).
//!
//! The slots, their single flight, their accounting and their eviction are the file
//! cache's (`engine::cache::slots`); what is the listings' own is their freshness rule
//! ([`ListingAge`], [`SnapshotAge`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::Semaphore;

use crate::engine::cache::slots::{Freshness, SlotMap, VersionSlot};
use crate::engine::cache::Revalidate;
use crate::engine::entry::Entry;
use crate::engine::error::CacheError;
use crate::engine::fingerprint::Fingerprint;
use crate::engine::listing::entries::NameKey;
use crate::engine::listing::page::{render, PageSpec};
use crate::engine::listing::scan::{scan_window, stat_dir, stat_window, ScanOptions};
use crate::engine::listing::snapshot::Snapshot;
use crate::engine::listing::window::PageLink;
use crate::semantics::listing::Cursor;

/// How old a page may get before it is rebuilt even though its directory did not
/// change (so that sizes and dates of files rewritten in place show).
pub(crate) const MAX_AGE: Duration = Duration::from_secs(1);
/// The most pages kept per file server.
pub(crate) const MAX_LISTINGS: usize = 256;
/// The most rendered bytes kept per file server.
pub(crate) const MAX_BYTES: u64 = 64 << 20;
/// The most snapshots kept per file server.
pub(crate) const MAX_SNAPSHOTS: usize = 64;
/// The most bytes of snapshots kept per file server.
pub(crate) const MAX_SNAPSHOT_BYTES: u64 = 64 << 20;
/// The most bytes one snapshot may take; a directory with more names has none. Sorting
/// takes about three times a snapshot's size for a while, and up to
/// [`MAX_CONCURRENT_BUILDS`] snapshots may be sorted at once.
pub(crate) const MAX_SNAPSHOT_SIZE: u64 = 16 << 20;
/// How recently a directory may have changed for its snapshot to be kept for as long
/// as the directory's `stat` is unchanged: more than the coarsest clock of a common
/// file system (FAT's 2 s).
pub(crate) const RACY: Duration = Duration::from_secs(3);
/// The most listings built at the same time per file server.
pub(crate) const MAX_CONCURRENT_BUILDS: usize = 4;

/// A rendered page of a listing.
#[derive(Debug)]
pub(crate) struct Listing {
    /// The page, ready to serve.
    pub(crate) entry: Arc<Entry>,
    /// How many entries the directory has that would be listed.
    pub(crate) total: usize,
    /// The link to the previous page, if any.
    pub(crate) previous: Option<PageLink>,
    /// The link to the next page, if any.
    pub(crate) next: Option<PageLink>,
    /// How long reading and rendering took, in milliseconds.
    build_ms: u64,
}

/// A directory's names, read.
#[derive(Debug)]
struct Names {
    /// The names, or `None` when there are too many to keep.
    snapshot: Option<Snapshot>,
    /// Which read this is, among all of this cache's: pages name it.
    generation: u64,
    /// Whether the names stay right while the directory's `stat` does (see the
    /// module docs).
    settled: bool,
    /// How long reading took, in milliseconds.
    build_ms: u64,
}

/// What names are read for: the directory, and what is listed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct NamesKey {
    dir: PathBuf,
    /// The scan options with `max_entries` 0: the page size does not change the names.
    scan: ScanOptions,
}

/// Where a page starts.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Start {
    /// At this position of the snapshot.
    Position(usize),
    /// After this cursor (a directory with no snapshot).
    After(Option<Cursor>),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    dir: PathBuf,
    page: PageSpec,
    scan: ScanOptions,
    start: Start,
}

/// Whether a value made at `created` and built in `build_ms` is young enough to serve
/// without a rebuild at `now`: younger than [`MAX_AGE`], the revalidation interval,
/// and ten times its build time, whichever is longest; always under
/// [`Revalidate::Never`].
fn is_young(created: u64, build_ms: u64, now: u64, revalidate: Revalidate) -> bool {
    let max_age = match revalidate {
        // Listings are not watched: a directory is `stat`ed as under "always".
        Revalidate::Always | Revalidate::Watch => MAX_AGE,
        Revalidate::Every(d) => d.max(MAX_AGE),
        Revalidate::Never => return true,
    };
    let max_age = (max_age.as_millis() as u64).max(build_ms.saturating_mul(10));
    now.saturating_sub(created) < max_age
}

/// A page slot's own state: when it was made, for its freshness rule, and from which
/// names.
struct ListingAge {
    /// Milliseconds since the cache's epoch.
    created: u64,
    /// The generation of the names the page was made from.
    generation: u64,
}

impl Freshness for ListingAge {
    type Value = Listing;

    /// Rendered bytes.
    fn bytes(listing: &Listing) -> u64 {
        listing.entry.len()
    }

    /// A page being built may be shared; a built one is fresh while it is young
    /// ([`is_young`]).
    fn is_fresh(slot: &VersionSlot<ListingAge>, now: u64, revalidate: Revalidate) -> bool {
        slot.cell
            .get()
            .is_none_or(|listing| is_young(slot.state.created, listing.build_ms, now, revalidate))
    }
}

/// A snapshot slot's own state: when it was made, for its freshness rule.
struct SnapshotAge {
    /// Milliseconds since the cache's epoch.
    created: u64,
}

impl Freshness for SnapshotAge {
    type Value = Names;

    /// The snapshot's buffers.
    fn bytes(names: &Names) -> u64 {
        names.snapshot.as_ref().map_or(0, Snapshot::bytes)
    }

    /// Names being read may be shared; read ones are fresh while the directory is
    /// unchanged if they are settled, otherwise while they are young ([`is_young`]).
    fn is_fresh(slot: &VersionSlot<SnapshotAge>, now: u64, revalidate: Revalidate) -> bool {
        slot.cell.get().is_none_or(|names| {
            names.settled || is_young(slot.state.created, names.build_ms, now, revalidate)
        })
    }
}

/// The listings of one file server. See the module docs.
pub(crate) struct ListingCache {
    snapshots: SlotMap<NamesKey, SnapshotAge>,
    pages: SlotMap<Key, ListingAge>,
    /// The most bytes one snapshot may take.
    snapshot_size: u64,
    builds: Semaphore,
    epoch: Instant,
    generations: AtomicU64,
    builds_done: AtomicU64,
}

impl std::fmt::Debug for ListingCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (listings, bytes) = self.usage();
        f.debug_struct("ListingCache")
            .field("listings", &listings)
            .field("bytes", &bytes)
            .field("snapshots", &self.snapshots.len())
            .field("snapshot_bytes", &self.snapshots.bytes())
            .finish()
    }
}

impl Default for ListingCache {
    fn default() -> Self {
        ListingCache::with_bounds(MAX_SNAPSHOTS, MAX_SNAPSHOT_BYTES, MAX_SNAPSHOT_SIZE)
    }
}

impl ListingCache {
    /// A cache keeping at most `snapshots` snapshots and `snapshot_bytes` of them,
    /// none larger than `snapshot_size`.
    fn with_bounds(snapshots: usize, snapshot_bytes: u64, snapshot_size: u64) -> ListingCache {
        ListingCache {
            snapshots: SlotMap::new(snapshots, snapshot_bytes),
            snapshot_size,
            pages: SlotMap::new(MAX_LISTINGS, MAX_BYTES),
            builds: Semaphore::new(MAX_CONCURRENT_BUILDS),
            epoch: Instant::now(),
            generations: AtomicU64::new(0),
            builds_done: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Pages kept and their bytes.
    pub(crate) fn usage(&self) -> (usize, u64) {
        (self.pages.len(), self.pages.bytes())
    }

    /// How many pages were built since the cache was made.
    #[cfg(test)]
    pub(crate) fn builds(&self) -> u64 {
        self.builds_done.load(Ordering::Relaxed)
    }

    /// How many times names were read since the cache was made.
    #[cfg(test)]
    pub(crate) fn snapshot_builds(&self) -> u64 {
        self.generations.load(Ordering::Relaxed)
    }

    /// The page of the listing of `dir` that starts after `after` (the first page
    /// without it), rendered as `page`, from the cache if current, otherwise read and
    /// rendered on the blocking pool. Pages hold `scan_options.max_entries` entries.
    ///
    /// # Errors
    /// [`CacheError::NotFound`] if `dir` is not (or no longer) a directory, permission
    /// and I/O errors as for files.
    pub(crate) async fn get(
        &self,
        dir: &Path,
        page: PageSpec,
        after: Option<Cursor>,
        scan_options: ScanOptions,
        revalidate: Revalidate,
    ) -> Result<Arc<Listing>, CacheError> {
        let (names, fingerprint) = self.names(dir, &scan_options, revalidate).await?;
        let cursor = after.as_ref().map(NameKey::of_cursor);
        let start = match &names.snapshot {
            Some(snapshot) => {
                Start::Position(cursor.as_ref().map_or(0, |c| snapshot.position_after(c)))
            }
            None => Start::After(after),
        };
        let key = Key {
            dir: dir.to_path_buf(),
            page,
            scan: scan_options,
            start,
        };
        let now = self.now_ms();
        let generation = names.generation;
        if let Some(slot) = self.pages.get(&key) {
            if slot.state.generation != generation {
                // Made from other names of the same version (names that aged): the
                // same position may hold other entries now.
                self.pages.remove(&key);
            } else if let Some(listing) = slot.cell.get() {
                if slot.fingerprint == fingerprint && ListingAge::is_fresh(&slot, now, revalidate) {
                    slot.touch();
                    return Ok(listing.clone());
                }
            }
        }
        let (slot, _evicted) =
            self.pages
                .slot_for(key.clone(), fingerprint, now, revalidate, || ListingAge {
                    created: now,
                    generation,
                });
        let listing = slot
            .cell
            .get_or_try_init(|| async {
                let (dir, page, options) = (key.dir.clone(), key.page.clone(), key.scan.clone());
                let first = match key.start {
                    Start::Position(first) => Some(first),
                    Start::After(_) => None,
                };
                let modified = system_time(fingerprint.mtime_ns);
                let built = self
                    .blocking(move || {
                        let started = Instant::now();
                        let n = options.max_entries;
                        let window = match (&names.snapshot, first) {
                            (Some(snapshot), Some(first)) => snapshot.window_at(first, n),
                            _ => scan_window(&dir, &options, cursor.as_ref(), n)?,
                        };
                        let (entries, modified) = stat_window(&dir, &window, modified);
                        let bytes = render(entries, &window, &page);
                        let mut entry = Entry::from_bytes(bytes, page.format.content_type());
                        if let Some(t) = modified {
                            entry = entry.last_modified_at(t);
                        }
                        Ok(Listing {
                            entry: Arc::new(entry),
                            total: window.total,
                            previous: window.previous,
                            next: window.next,
                            build_ms: started.elapsed().as_millis() as u64,
                        })
                    })
                    .await?;
                self.builds_done.fetch_add(1, Ordering::Relaxed);
                Ok::<_, CacheError>(Arc::new(built))
            })
            .await?
            .clone();
        self.pages.loaded(&key, &slot);
        Ok(listing)
    }

    /// The names of `dir` as `options` lists them, from the cache if current, otherwise
    /// read on the blocking pool; and the version of the directory they are of.
    async fn names(
        &self,
        dir: &Path,
        options: &ScanOptions,
        revalidate: Revalidate,
    ) -> Result<(Arc<Names>, Fingerprint), CacheError> {
        let key = NamesKey {
            dir: dir.to_path_buf(),
            scan: ScanOptions {
                max_entries: 0,
                ..options.clone()
            },
        };
        let now = self.now_ms();
        let mut fingerprint = None;
        if let Some(slot) = self.snapshots.get(&key) {
            if let Some(names) = slot.cell.get() {
                if SnapshotAge::is_fresh(&slot, now, revalidate) {
                    // Listings are not watched: under "watch", a `stat` as under "always".
                    let check = slot.needs_stat(now, revalidate, || false);
                    let unchanged = if check {
                        let fp = stat_dir(dir)?;
                        fingerprint = Some(fp);
                        fp == slot.fingerprint
                    } else {
                        true
                    };
                    if unchanged {
                        slot.touch();
                        if check {
                            slot.last_checked.store(now, Ordering::Relaxed);
                        }
                        return Ok((names.clone(), slot.fingerprint));
                    }
                }
            }
        }
        let fingerprint = match fingerprint {
            Some(fp) => fp,
            None => stat_dir(dir)?,
        };
        let (slot, _evicted) =
            self.snapshots
                .slot_for(key.clone(), fingerprint, now, revalidate, || SnapshotAge {
                    created: now,
                });
        let names = slot
            .cell
            .get_or_try_init(|| async {
                let (dir, options) = (key.dir.clone(), key.scan.clone());
                let size = self.snapshot_size;
                let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
                let names = self
                    .blocking(move || {
                        let started = Instant::now();
                        let read = Snapshot::read(&dir, &options, size)?;
                        Ok(Names {
                            snapshot: read.snapshot,
                            generation,
                            settled: !read.links && !changed_lately(&fingerprint),
                            build_ms: started.elapsed().as_millis() as u64,
                        })
                    })
                    .await?;
                Ok::<_, CacheError>(Arc::new(names))
            })
            .await?
            .clone();
        self.snapshots.loaded(&key, &slot);
        Ok((names, fingerprint))
    }

    /// Runs `work` on the blocking pool, with one of the cache's build permits.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, CacheError> + Send + 'static,
    ) -> Result<T, CacheError> {
        let _permit = self
            .builds
            .acquire()
            .await
            .map_err(|e| CacheError::Io(std::io::Error::other(e)))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| CacheError::Io(std::io::Error::other(e)))?
    }
}

/// Whether the directory of version `fp` changed less than [`RACY`] ago.
fn changed_lately(fp: &Fingerprint) -> bool {
    let changed = system_time(fp.mtime_ns.max(fp.ctime_ns));
    match changed.map(|t| SystemTime::now().duration_since(t)) {
        Some(Ok(ago)) => ago < RACY,
        // In the future, or unknown: as if just now.
        _ => true,
    }
}

/// A time in nanoseconds since the Unix epoch, if a `SystemTime` holds it.
fn system_time(ns: i128) -> Option<SystemTime> {
    let abs = Duration::from_nanos(u64::try_from(ns.unsigned_abs()).ok()?);
    if ns >= 0 {
        UNIX_EPOCH.checked_add(abs)
    } else {
        UNIX_EPOCH.checked_sub(abs)
    }
}

#[cfg(test)]
mod tests;
