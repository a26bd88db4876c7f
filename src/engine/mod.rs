//! The mmap engine: files mapped once, hashed once, and served as slices of the
//! mapping. It uses the [`semantics`](crate::semantics) and knows nothing of Rocket.
//! Its public types are re-exported in [`cache`](crate::cache) (the few that a
//! Rocket application names, [`CacheError`](crate::CacheError) and
//! [`RateLimit`](crate::RateLimit), at the crate root too).
//!
//! | module | what it holds |
//! |---|---|
//! | `fingerprint` | which version of a file is on disk (one `stat`) |
//! | `links` | [`Symlinks`](crate::Symlinks): which symbolic links below a root are followed, for files and listings alike, and for an application checking an [`Entry::canonical_path`](crate::cache::Entry::canonical_path) itself |
//! | `mapping` | memory mappings and the SIGBUS guard: the crate's only `unsafe` |
//! | `entry` | a servable representation: content, ETag, Last-Modified, header values made once |
//! | `digest` | SHA-256 / SHA-512 of an entry's content: once, off the workers, single flight |
//! | `load` | open, `fstat`, and read (64 KiB at most) or map one file version on the blocking pool (a mapping's content is not read; warming hashes too) |
//! | `open` | opening one file version: a regular file, its canonical path without `realpath` when no link is on the way, the write barrier |
//! | `small` | small files read into memory on the async worker when nothing can block (`RESOLVE_CACHED`, `RWF_NOWAIT`), or on the blocking pool |
//! | `siblings` | which files have precompressed siblings: one reading per directory version |
//! | `tag` | the strong ETag of a file entry: hashed after its first response, in the background, bounded, for one version only |
//! | `cache` | the `DashMap` of entries bounded in number, memory and mappings, single flight, change detection, eviction |
//! | `watch` | `revalidate = "watch"`: inotify says which entries changed, so a hit makes no system call (feature `watch`) |
//! | `tag_memo` | file version → ETag and digests, bounded, in memory: tags outlive cache entries |
//! | `tag_store` | ETags and digests kept on disk by file version (stat data), reused after a restart (feature `tag-store`) |
//! | `warn` | a warning through `log`, else on stderr: the tag store's errors, and the shell's when it opens the store (feature `tag-store`) |
//! | `error` | [`CacheError`](crate::CacheError): why a path could not be served |
//! | `stats` | the counters: relaxed atomics for cache and body events, read at scrape time |
//! | `body` | the sized, seekable body over a few `Bytes` segments |
//! | `fault_in` | residency before a copy; missing pages faulted in on the background pool, bounded, read ahead |
//! | `background` | the pool of lower-priority threads that fault-ins and background hashes run on |
//! | `pace` | [`RateLimit`](crate::RateLimit): a body's `limit_rate` token bucket on tokio's timer |
//! | `listing` | directory listings: a directory's names read once per version into a sorted snapshot, as the file server would serve it, cut in pages and rendered as HTML or JSON (feature `browse`) |
//! | `listing_cache` | rendered listings as entries: single flight, change detection, bounds (feature `browse`) |
//! | `respond` | from an entry and a request to a [`Reply`](crate::cache::Reply) (status, headers, body) |

pub(crate) mod background;
pub(crate) mod body;
pub(crate) mod cache;
pub(crate) mod digest;
pub(crate) mod entry;
pub(crate) mod error;
pub(crate) mod fault_in;
pub(crate) mod fingerprint;
pub(crate) mod links;
#[cfg(feature = "browse")]
pub(crate) mod listing;
#[cfg(feature = "browse")]
pub(crate) mod listing_cache;
pub(crate) mod load;
#[allow(unsafe_code)]
pub(crate) mod mapping;
pub(crate) mod open;
pub(crate) mod pace;
pub(crate) mod respond;
pub(crate) mod siblings;
pub(crate) mod small;
pub(crate) mod stats;
pub(crate) mod tag;
pub(crate) mod tag_memo;
#[cfg(feature = "tag-store")]
pub(crate) mod tag_store;
#[cfg(test)]
pub(crate) mod test_support;
#[cfg(feature = "tag-store")]
pub(crate) mod warn;
pub(crate) mod watch;
