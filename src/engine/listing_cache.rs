//! The cache of rendered directory listings (feature `browse`).
//!
//! A listing is an [`Entry`] like any file: its bytes (HTML or JSON) were rendered
//! once, its ETag is the CRC-64 of those bytes, its `Last-Modified` the latest
//! modification time of the directory and of the listed entries. So conditionals,
//! ranges and HEAD work on it exactly as on a file.
//!
//! * **Key**: the directory, the page (format, sort, order, the URL path shown) and
//!   the scan options. Each `FileServer` owns one cache, shared by its routes.
//! * **Single flight**: concurrent requests for one key share one build; builds run
//!   on tokio's blocking pool, at most [`MAX_CONCURRENT_BUILDS`] at once per cache, so
//!   a few huge directories cannot take every blocking thread.
//! * **Change detection** follows the file cache's [`Revalidate`] policy: with
//!   `Always`, every request `stat`s the directory and a changed fingerprint (an entry
//!   added, removed or renamed changes the directory's mtime and ctime) rebuilds the
//!   listing. A file rewritten in place changes its own times but not its
//!   directory's, so a listing is also rebuilt once it is older than [`MAX_AGE`]
//!   (with `Every(d)`, older than `d` if that is longer), or than ten times what it
//!   took to build if that is longer still: a directory that takes 200 ms to read is
//!   read again at most every 2 s, so refreshing costs at most a tenth of one thread.
//!   A rebuild that renders the same bytes has the same ETag, so clients keep getting
//!   304. With `Never`, a listing is built once and kept until evicted.
//! * **Bounds**: at most [`MAX_LISTINGS`] listings and [`MAX_BYTES`] rendered bytes;
//!   past either, the least recently used are dropped (down to 7/8 of the bound).
//!
//! The slots, their single flight, their accounting and their eviction are the file
//! cache's (`engine::cache::slots`); what is a listing's own is its freshness rule
//! ([`ListingAge`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::engine::cache::slots::{Freshness, SlotMap, VersionSlot};
use crate::engine::cache::Revalidate;
use crate::engine::entry::Entry;
use crate::engine::error::CacheError;
use crate::engine::listing::page::{render, PageSpec};
use crate::engine::listing::scan::{scan, stat_dir, ScanOptions};

/// How old a listing may get before it is rebuilt even though its directory did not
/// change (so that sizes and dates of files rewritten in place show).
pub(crate) const MAX_AGE: Duration = Duration::from_secs(1);
/// The most listings kept per file server.
pub(crate) const MAX_LISTINGS: usize = 256;
/// The most rendered bytes kept per file server.
pub(crate) const MAX_BYTES: u64 = 64 << 20;
/// The most listings built at the same time per file server.
pub(crate) const MAX_CONCURRENT_BUILDS: usize = 4;

/// A rendered listing.
#[derive(Debug)]
pub(crate) struct Listing {
    /// The page, ready to serve.
    pub(crate) entry: Arc<Entry>,
    /// How many entries the directory has that would be listed.
    pub(crate) total: usize,
    /// How long reading and rendering took, in milliseconds.
    build_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    dir: PathBuf,
    page: PageSpec,
    scan: ScanOptions,
}

/// A listing slot's own state: when it was made, for its freshness rule.
struct ListingAge {
    /// Milliseconds since the cache's epoch.
    created: u64,
}

impl Freshness for ListingAge {
    type Value = Listing;

    /// Rendered bytes.
    fn bytes(listing: &Listing) -> u64 {
        listing.entry.len()
    }

    /// A listing being built may be shared; a built one is fresh while it is young
    /// enough to serve without a rebuild: younger than [`MAX_AGE`], the revalidation
    /// interval, and ten times its build time, whichever is longest; always under
    /// [`Revalidate::Never`].
    fn is_fresh(slot: &ListingSlot, now: u64, revalidate: Revalidate) -> bool {
        let Some(listing) = slot.cell.get() else {
            return true;
        };
        let max_age = match revalidate {
            // Listings are not watched: a directory is `stat`ed as under "always".
            Revalidate::Always | Revalidate::Watch => MAX_AGE,
            Revalidate::Every(d) => d.max(MAX_AGE),
            Revalidate::Never => return true,
        };
        let max_age = (max_age.as_millis() as u64).max(listing.build_ms.saturating_mul(10));
        now.saturating_sub(slot.state.created) < max_age
    }
}

type ListingSlot = VersionSlot<ListingAge>;

/// The listings of one file server. See the module docs.
pub(crate) struct ListingCache {
    slots: SlotMap<Key, ListingAge>,
    builds: Semaphore,
    epoch: Instant,
    builds_done: AtomicU64,
}

impl std::fmt::Debug for ListingCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (listings, bytes) = self.usage();
        f.debug_struct("ListingCache")
            .field("listings", &listings)
            .field("bytes", &bytes)
            .finish()
    }
}

impl Default for ListingCache {
    fn default() -> Self {
        ListingCache {
            slots: SlotMap::new(MAX_LISTINGS, MAX_BYTES),
            builds: Semaphore::new(MAX_CONCURRENT_BUILDS),
            epoch: Instant::now(),
            builds_done: AtomicU64::new(0),
        }
    }
}

impl ListingCache {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Listings kept and their bytes.
    pub(crate) fn usage(&self) -> (usize, u64) {
        (self.slots.len(), self.slots.bytes())
    }

    /// How many listings were built since the cache was made.
    #[cfg(test)]
    pub(crate) fn builds(&self) -> u64 {
        self.builds_done.load(Ordering::Relaxed)
    }

    /// The listing of `dir` rendered as `page`, from the cache if current, otherwise
    /// read and rendered on the blocking pool.
    ///
    /// # Errors
    /// [`CacheError::NotFound`] if `dir` is not (or no longer) a directory, permission
    /// and I/O errors as for files.
    pub(crate) async fn get(
        &self,
        dir: &Path,
        page: PageSpec,
        scan_options: ScanOptions,
        revalidate: Revalidate,
    ) -> Result<Arc<Listing>, CacheError> {
        let key = Key {
            dir: dir.to_path_buf(),
            page,
            scan: scan_options,
        };
        let now = self.now_ms();
        let mut fingerprint = None;
        if let Some(slot) = self.slots.get(&key) {
            if let Some(listing) = slot.cell.get() {
                if ListingAge::is_fresh(&slot, now, revalidate) {
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
                        slot.last_used.store(now, Ordering::Relaxed);
                        if check {
                            slot.last_checked.store(now, Ordering::Relaxed);
                        }
                        return Ok(listing.clone());
                    }
                }
            }
        }
        let fingerprint = match fingerprint {
            Some(fp) => fp,
            None => stat_dir(dir)?,
        };
        let (slot, _evicted) =
            self.slots
                .slot_for(key.clone(), fingerprint, now, revalidate, || ListingAge {
                    created: now,
                });
        let listing = slot
            .cell
            .get_or_try_init(|| async {
                let _permit = self
                    .builds
                    .acquire()
                    .await
                    .map_err(|e| CacheError::Io(std::io::Error::other(e)))?;
                let (dir, page, options) = (key.dir.clone(), key.page.clone(), key.scan.clone());
                let started = Instant::now();
                let built =
                    tokio::task::spawn_blocking(move || build(&dir, &page, &options, started))
                        .await
                        .map_err(|e| CacheError::Io(std::io::Error::other(e)))??;
                self.builds_done.fetch_add(1, Ordering::Relaxed);
                Ok::<_, CacheError>(Arc::new(built))
            })
            .await?
            .clone();
        self.slots.loaded(&key, &slot, self.now_ms());
        Ok(listing)
    }
}

/// Reads and renders one listing. Blocking.
fn build(
    dir: &Path,
    page: &PageSpec,
    options: &ScanOptions,
    started: Instant,
) -> Result<Listing, CacheError> {
    let read = scan(dir, options)?;
    let total = read.total;
    let bytes = render(read.entries, total, page);
    let mut entry = Entry::from_bytes(bytes, page.format.content_type());
    if let Some(t) = read.modified {
        entry = entry.last_modified_at(t);
    }
    Ok(Listing {
        entry: Arc::new(entry),
        total,
        build_ms: started.elapsed().as_millis() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::links::Symlinks;
    use crate::semantics::listing::Format;

    use crate::engine::test_support::TempDir;

    fn opts() -> ScanOptions {
        ScanOptions {
            dotfiles: false,
            links: Symlinks::Never,
            root: std::path::PathBuf::from("/"),
            max_entries: 100,
        }
    }

    fn json() -> PageSpec {
        PageSpec {
            format: Format::Json,
            ..PageSpec::default()
        }
    }

    #[tokio::test]
    async fn built_once_and_rebuilt_when_the_directory_changes() {
        let d = TempDir::new("rebuild");
        std::fs::write(d.0.join("a"), "1").unwrap();
        let cache = ListingCache::default();
        let get = || cache.get(&d.0, json(), opts(), Revalidate::Always);
        let first = get().await.unwrap();
        let again = get().await.unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(cache.builds(), 1);
        assert_eq!(first.entry.content_type(), "application/json");
        assert!(first.entry.last_modified().is_some());

        std::fs::write(d.0.join("b"), "2").unwrap();
        let changed = get().await.unwrap();
        assert_eq!(cache.builds(), 2);
        assert_ne!(changed.entry.etag(), first.entry.etag());
        assert_eq!(changed.total, 2);

        // HTML is another key, built once.
        let html = cache
            .get(&d.0, PageSpec::default(), opts(), Revalidate::Always)
            .await
            .unwrap();
        assert_eq!(html.entry.content_type(), "text/html; charset=utf-8");
        assert_eq!(cache.builds(), 3);
        assert_eq!(cache.usage().0, 2);
    }

    #[tokio::test]
    async fn never_keeps_and_old_listings_are_rebuilt_to_the_same_tag() {
        let d = TempDir::new("never");
        std::fs::write(d.0.join("a"), "1").unwrap();
        let cache = ListingCache::default();
        let first = cache
            .get(&d.0, json(), opts(), Revalidate::Never)
            .await
            .unwrap();
        std::fs::write(d.0.join("b"), "2").unwrap();
        let kept = cache
            .get(&d.0, json(), opts(), Revalidate::Never)
            .await
            .unwrap();
        assert!(Arc::ptr_eq(&first, &kept), "never: not rebuilt");

        let cache = ListingCache::default();
        let first = cache
            .get(&d.0, json(), opts(), Revalidate::Always)
            .await
            .unwrap();
        tokio::time::sleep(MAX_AGE + Duration::from_millis(50)).await;
        let rebuilt = cache
            .get(&d.0, json(), opts(), Revalidate::Always)
            .await
            .unwrap();
        assert!(!Arc::ptr_eq(&first, &rebuilt));
        assert_eq!(cache.builds(), 2);
        assert_eq!(
            rebuilt.entry.etag(),
            first.entry.etag(),
            "same bytes, same tag"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_misses_share_one_build() {
        let d = TempDir::new("flight");
        for i in 0..200 {
            std::fs::write(d.0.join(format!("f{i}")), "x").unwrap();
        }
        let cache = Arc::new(ListingCache::default());
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (cache, dir) = (cache.clone(), d.0.clone());
                tokio::spawn(async move {
                    cache
                        .get(&dir, json(), opts(), Revalidate::Always)
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut tags = Vec::new();
        for t in tasks {
            tags.push(t.await.unwrap().entry.etag().cloned());
        }
        assert_eq!(cache.builds(), 1);
        assert!(tags.windows(2).all(|w| w[0] == w[1]));
    }

    #[tokio::test]
    async fn bounded_by_count() {
        let d = TempDir::new("bound");
        let cache = ListingCache::default();
        for i in 0..(MAX_LISTINGS + 10) {
            let page = PageSpec {
                path: format!("/{i}/"),
                ..json()
            };
            cache
                .get(&d.0, page, opts(), Revalidate::Always)
                .await
                .unwrap();
        }
        let (listings, bytes) = cache.usage();
        assert!(listings <= MAX_LISTINGS, "{listings}");
        assert!(bytes > 0 && bytes <= MAX_BYTES);
    }

    #[tokio::test]
    async fn a_missing_directory_is_not_found() {
        let d = TempDir::new("missing");
        let cache = ListingCache::default();
        let r = cache
            .get(&d.0.join("nope"), json(), opts(), Revalidate::Always)
            .await;
        assert!(matches!(r, Err(CacheError::NotFound)));
    }
}
