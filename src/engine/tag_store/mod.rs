//! The persistent tag store (feature `tag-store`): the ETag and the integrity digests
//! of each file version that was hashed, kept on disk so that a restart or an eviction
//! of an unchanged file reads none of its content to answer with them. The cache
//! consults it behind its tag memo (`engine::tag_memo`), once
//! [`Cache::with_tag_store`](crate::cache::Cache::with_tag_store) gave it one.
//!
//! Its guarantees (keys, crash safety, one writer per file, versions, errors, bounded
//! growth) are documented on [`TagStore`], where docs.rs shows them. The rooms:
//!
//! | module | what it holds |
//! |---|---|
//! | this one | the API: [`TagStore`], its errors, [`StoredTags`], [`TagStoreStats`]; the [`Remember`] impl the tag memo calls |
//! | `open` | the lock, redb's integrity check, the schema version, a bad file moved aside |
//! | `writer` | the writer thread: the queue, batched commits, flushes, the close |
//! | `record` | the tables, the key of a file version and the encoding of its record |
//! | `prune` | prune passes in short steps, and compaction after them |

mod open;
mod prune;
mod record;
#[cfg(all(test, unix))]
mod tests;
mod writer;

use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, TryLockError};
use std::thread::JoinHandle;
use std::time::Duration;

use redb::{ReadableDatabase, StorageError, TableError};

use crate::engine::digest::ReprDigest;
use crate::engine::fingerprint::Fingerprint;
use crate::engine::tag::{Recalled, Remember};
use crate::engine::warn::warn;
use crate::semantics::digest::DigestAlgorithm;
use crate::semantics::etag::EntityTag;
use record::{encode_key, Key, Record, TAGS};
use writer::Inner;

/// The most memory redb uses to cache the store's pages.
pub(crate) const CACHE_BYTES: usize = 8 << 20;

/// How long the writer waits after a first queued record for more, before it commits
/// them together.
pub(crate) const FLUSH_DELAY: Duration = Duration::from_secs(1);

/// A batch this large is committed at once.
pub(crate) const BATCH_MAX: usize = 4096;

/// The most records queued for the writer; more are dropped (and counted).
pub(crate) const PENDING_MAX: usize = 65_536;

/// How long after the end of a prune pass the next one starts.
pub(crate) const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Entries checked by one step of a prune pass (one short write transaction, if any
/// of them is stale).
pub(crate) const PRUNE_BATCH: usize = 1024;

/// The least free space, in bytes, worth a compaction (it also takes half the file).
pub(crate) const COMPACT_MIN_FREE: u64 = 8 << 20;

/// Why a tag store could not be opened. Each is a reason to serve without the store
/// (hashing as usual), never a reason not to serve.
#[derive(Debug)]
#[non_exhaustive]
pub enum TagStoreError {
    /// The store file or its directory could not be created, opened, read or written:
    /// permissions, a read-only file system, a full disk, a path through a file.
    Io {
        /// The store's path.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// The store is open for writing elsewhere — another process, or another
    /// [`TagStore`] of this process — and only one writer may hold a store file (an
    /// exclusive lock, held while it is open). Give each server its own file.
    Locked {
        /// The store's path.
        path: PathBuf,
    },
    /// The store's file system does not support the exclusive lock (`flock`). Without
    /// it, nothing would stop a second server from writing the same file, which would
    /// corrupt it: such a store is not used. Put it on a local file system.
    LockUnsupported {
        /// The store's path.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// The file is not a readable tag store and could not be replaced by a new one.
    Corrupt {
        /// The store's path.
        path: PathBuf,
        /// What was wrong with it, and why it could not be rebuilt.
        reason: String,
    },
    /// The store was written by a newer version of rocket-mmap (its schema version is
    /// higher than this build's); it is left untouched.
    NewerVersion {
        /// The store's path.
        path: PathBuf,
        /// The schema version in the file.
        found: u64,
        /// The highest schema version this build reads.
        supported: u64,
    },
}

impl TagStoreError {
    /// The store's path.
    pub fn path(&self) -> &Path {
        match self {
            TagStoreError::Io { path, .. }
            | TagStoreError::Locked { path }
            | TagStoreError::LockUnsupported { path, .. }
            | TagStoreError::Corrupt { path, .. }
            | TagStoreError::NewerVersion { path, .. } => path,
        }
    }
}

impl std::fmt::Display for TagStoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TagStoreError::Io { path, source } => {
                write!(f, "cannot use the tag store {}: {source}", path.display())?;
                if source.raw_os_error() == Some(libc::ENOSPC) {
                    f.write_str(" (the disk is full)")?;
                }
                Ok(())
            }
            TagStoreError::Locked { path } => write!(
                f,
                "the tag store {} is open in another process (one writer per store file: give \
                 each server its own --tag-store path)",
                path.display()
            ),
            TagStoreError::LockUnsupported { path, source } => write!(
                f,
                "the tag store {} is on a file system that does not support file locks \
                 ({source}); without a lock a second server could write it too, so it is not \
                 used: put it on a local file system",
                path.display()
            ),
            TagStoreError::Corrupt { path, reason } => write!(
                f,
                "the tag store {} is unreadable and could not be rebuilt: {reason}",
                path.display()
            ),
            TagStoreError::NewerVersion {
                path,
                found,
                supported,
            } => write!(
                f,
                "the tag store {} was written by a newer rocket-mmap (schema {found}, this build \
                 reads up to {supported}); it is left as it is: use another path or a newer build",
                path.display()
            ),
        }
    }
}

impl std::error::Error for TagStoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TagStoreError::Io { source, .. } | TagStoreError::LockUnsupported { source, .. } => {
                Some(source)
            }
            _ => None,
        }
    }
}

/// What the store knows of one file version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredTags {
    /// The strong content tag, exactly as it was computed.
    pub etag: EntityTag,
    /// The digests computed for this version so far (at most one per algorithm).
    pub digests: Vec<ReprDigest>,
}

/// The store's counters since it was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TagStoreStats {
    /// Lookups that found the version.
    pub hits: u64,
    /// Lookups that did not, including those made while the file was being compacted.
    pub misses: u64,
    /// Lookups that failed (read errors, undecodable entries): answered `None`.
    pub errors: u64,
    /// Records committed to disk.
    pub written: u64,
    /// Records not kept: the queue was full, or writing failed.
    pub dropped: u64,
    /// Entries removed by prune passes (their file is gone or changed).
    pub pruned: u64,
    /// Compactions of the file, after prune passes that left most of it free.
    pub compactions: u64,
}

/// A persistent map from file versions (their stat data: device, inode, size, mtime
/// and ctime) to their ETag and digests: one [`redb`] file (3.x: pure Rust,
/// copy-on-write B-trees, every page checksummed; no `mmap`, so no SIGBUS), its page
/// cache capped at 8 MiB. The cache consults it behind its tag memo, once a load would
/// hash (see [`Cache::with_tag_store`](crate::cache::Cache::with_tag_store)): a lookup
/// happens once per load, never per request.
///
/// # Keys: never another version's tags
///
/// **git's index is the model**: stat data mapped to a content hash. The key is
/// everything a [`Fingerprint`] holds — device, inode, size, mtime and ctime in ns —
/// as 56 fixed bytes; the value is the strong ETag, the digests computed so far, and
/// the path the version was loaded from (for pruning). The ctime is what makes the key
/// safe: a writer can restore a file's size and mtime (`touch -d`), but every write
/// moves the ctime, which no unprivileged process can set. The racy case of git's
/// index (a change within the same timestamp tick as the hash) is the caller's:
/// [`TagStore::record`] is only called for versions that had settled (ctime older than
/// [`SETTLE`](crate::cache::SETTLE)) when they were hashed.
///
/// # Crash safety: never trusted when in doubt
///
/// * Records are committed in batches, each one durable redb commit (one `fsync`),
///   atomic: a crash, even within a commit, leaves the last committed batch. A crash
///   loses at most the records of the last second (the batch not yet committed),
///   which only costs hashing those files again.
/// * At [`TagStore::open`] redb verifies every page's checksum (rolling back to the
///   last intact commit after a crash). A torn, corrupt, truncated or foreign file
///   (not redb, or a redb file without this store's schema) is **moved aside** as
///   `PATH.corrupt-<unix seconds>` (deleted if it cannot be renamed) and a new store is
///   created in its place; [`TagStore::moved_aside`] says so, for a warning. Moving
///   aside rather than deleting never destroys a file someone put there by mistake.
/// * redb 3 panics on some damaged files (in the test that damages one byte at a
///   time, about one in five); every call into redb is behind `catch_unwind`, so such
///   a file is handled as corrupt (the panic's message still reaches stderr; with
///   `panic = "abort"` in the application's profile it ends the process instead).
///
/// # One writer per file
///
/// An open store holds an exclusive `flock` on its file. A second [`TagStore::open`]
/// of the path — in another process, or in this one — fails at once with
/// [`TagStoreError::Locked`]. Many servers may share a directory, each with its own
/// store file. On a file system without `flock` the store is refused with
/// [`TagStoreError::LockUnsupported`] rather than opened unlocked: two writers would
/// corrupt the file, and a store is not worth that. (Linux's NFS client emulates
/// `flock` with the server's byte-range locks, so a store on NFS is locked across
/// hosts, unless the mount keeps locks local, `nolock` or `local_lock=flock`: then
/// give each host its own file.)
///
/// # Versions
///
/// The store holds its schema version. A store written by a newer schema is refused
/// with [`TagStoreError::NewerVersion`] and left untouched, not a byte written (it is
/// read through a read-only open first: an older build must not wipe a newer one's
/// work); one written by an older schema is emptied and re-stamped (it is only a
/// cache). A newer redb *file format* is handled as corrupt and moved aside (redb 3, 4
/// and 5 all write format 3).
///
/// # Errors never reach the request path
///
/// [`TagStore::lookup`] answers `None` on any error and [`TagStore::record`] returns
/// nothing; the first read error and the first write error are logged once (through
/// `log`, or on stderr when no logger takes warnings) and counted in
/// [`TagStoreStats`]. After a write error (a full disk, an I/O error) redb refuses
/// further writes until reopened: the store stops recording for the rest of the run,
/// and the server hashes as it does without it.
///
/// # Cheap for the caller
///
/// [`TagStore::record`] only puts the record in a queue (a mutex and a hash map
/// insert). A writer thread owned by the store commits the queue a second after the
/// first queued record, or at once when 4096 are queued (after the prune step under
/// way, if any: one `stat` per entry, 1024 entries at most). redb's non-durable
/// commits are not used: they must be followed by a durable one anyway, and until then
/// redb cannot reuse the pages they free. The queue holds at most 65,536 versions;
/// past it records are dropped (counted). Dropping the store commits what is queued
/// and joins the thread. Measured here (release build, 100,000 entries): a record
/// costs the caller 1.4 µs, a lookup 2 µs, committing them all 0.64 s on the writer
/// thread, and an open that verifies the whole store 45 ms.
///
/// # Bounded growth
///
/// * **One entry per inode**: recording a version of an inode removes the store's
///   other versions of it (device and inode equal).
/// * **Prune passes**: at open, and an hour after the end of each pass, the writer
///   thread removes the entries whose recorded path is gone or now holds another
///   version (a deployment that replaces files by rename leaves new inodes behind).
///   A pass goes in steps of 1024 entries: each reads them in a read transaction,
///   `stat`s their paths with no transaction open, and removes the stale ones in a
///   short write transaction of its own, so records wait for at most one step, and
///   a pass interrupted by a crash or the close keeps what it did. A path that cannot
///   be checked for another reason (permissions) keeps its entry; a library on a
///   volume that is not mounted during a pass loses its entries.
/// * **Compaction**: redb reuses freed pages but only shrinks the file when its end is
///   free. After a pass, if at least half of the file and at least 8 MiB are free, the
///   writer compacts it (`redb::Database::compact`), which moves the pages in use to
///   the front and truncates the rest; lookups made meanwhile answer `None`
///   (a rehash, never a wrong answer).
/// * So the store holds the versions of files that existed at the last pass plus
///   those recorded since, one per inode, and after each pass the file is at most
///   twice the size of the pages in use, or 8 MiB more, whichever is larger.
///
/// Measured here (release build, page cache warm): 100,000 entries with both digests
/// and a 60-byte path take 67 MB on disk (B-tree pages written in key order are half
/// full). A pass over them took 0.16 s when all were current, 0.24 s when it pruned
/// 90,000 (88 steps), and compacting the file left with 10,000 entries (40 MB) to
/// 4.2 MB took 40 ms, that pass included.
///
/// Only on Unix: elsewhere a [`Fingerprint`] has no inode and no ctime, so it cannot
/// tell a rewrite that restored the mtime, and the store records nothing.
pub struct TagStore {
    inner: Arc<Inner>,
    writer: Option<JoinHandle<()>>,
    moved_aside: Option<(PathBuf, String)>,
}

impl std::fmt::Debug for TagStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TagStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

/// When prune passes run and when compaction is worth it; tests shorten them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tuning {
    /// From the end of a prune pass to the start of the next.
    pub(crate) prune_every: Duration,
    /// Entries checked by one step of a pass.
    pub(crate) prune_batch: usize,
    /// The least free space worth a compaction.
    pub(crate) compact_min_free: u64,
}

impl Default for Tuning {
    fn default() -> Tuning {
        Tuning {
            prune_every: PRUNE_EVERY,
            prune_batch: PRUNE_BATCH,
            compact_min_free: COMPACT_MIN_FREE,
        }
    }
}

/// The store's counters, relaxed atomics read by [`TagStore::stats`].
#[derive(Debug, Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    errors: AtomicU64,
    written: AtomicU64,
    dropped: AtomicU64,
    pruned: AtomicU64,
    compactions: AtomicU64,
}

impl Counters {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn stats(&self) -> TagStoreStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TagStoreStats {
            hits: get(&self.hits),
            misses: get(&self.misses),
            errors: get(&self.errors),
            written: get(&self.written),
            dropped: get(&self.dropped),
            pruned: get(&self.pruned),
            compactions: get(&self.compactions),
        }
    }
}

/// What one lookup found for a version.
#[derive(Debug)]
enum Lookup {
    /// The version's tags, queued or committed.
    Found(StoredTags),
    /// No record of it.
    Missing,
    /// Not read: the file is being compacted.
    Compacting,
    /// A record that does not decode, or whose digest does not fit its algorithm.
    Undecodable,
    /// A read error, or a panic inside redb.
    Unreadable(redb::Error),
}

/// `f`, with a panic inside redb (a file damaged after the check at open) turned into
/// an error like any other.
fn guarded<T>(f: impl FnOnce() -> Result<T, redb::Error>) -> Result<T, redb::Error> {
    catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err(StorageError::Corrupted("panic inside redb".into()).into()))
}

impl TagStore {
    /// Opens the store at `path`, creating it (and its directory) if missing. A
    /// corrupt or foreign file there is moved aside and replaced (see
    /// [`TagStore::moved_aside`]); then a first prune pass starts in the background.
    ///
    /// # Errors
    /// [`TagStoreError::Locked`] if the store is open elsewhere,
    /// [`TagStoreError::LockUnsupported`] if its file system cannot lock it,
    /// [`TagStoreError::NewerVersion`] if a newer build wrote it,
    /// [`TagStoreError::Io`] if it cannot be created or opened (permissions, full
    /// disk), [`TagStoreError::Corrupt`] if it is unreadable and cannot be replaced.
    pub fn open(path: &Path) -> Result<TagStore, TagStoreError> {
        TagStore::open_tuned(path, Tuning::default())
    }

    /// [`TagStore::open`] with other prune and compaction settings.
    pub(crate) fn open_tuned(path: &Path, tuning: Tuning) -> Result<TagStore, TagStoreError> {
        let opened = open::open(path)?;
        let inner = Arc::new(Inner::new(path.to_path_buf(), opened.db, tuning));
        let me = Arc::clone(&inner);
        let writer = std::thread::Builder::new()
            .name("rocket-mmap tag store".into())
            .spawn(move || me.run_writer())
            .map_err(|source| TagStoreError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(TagStore {
            inner,
            writer: Some(writer),
            moved_aside: opened.moved_aside,
        })
    }

    /// The store's path.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// If [`TagStore::open`] found a corrupt or foreign file and replaced it: where
    /// that file was moved (empty if it had to be deleted), and what was wrong.
    pub fn moved_aside(&self) -> Option<(&Path, &str)> {
        self.moved_aside
            .as_ref()
            .map(|(p, why)| (p.as_path(), why.as_str()))
    }

    /// The ETag and digests recorded for exactly this file version, if any. Never
    /// fails: a read error is counted ([`TagStoreStats::errors`]), logged once, and
    /// answered `None`, as is an entry that does not decode. Sees records still queued;
    /// one in the batch being committed at that moment may be missed, and so is every
    /// version while the file is being compacted (a rehash, never a wrong answer).
    /// Costs a mutex and a read transaction (about 2 µs).
    pub fn lookup(&self, fp: &Fingerprint) -> Option<StoredTags> {
        if !cfg!(unix) {
            return None;
        }
        let c = &self.inner.counters;
        let (counter, tags) = match self.find(&encode_key(fp)) {
            Lookup::Found(tags) => (&c.hits, Some(tags)),
            Lookup::Missing | Lookup::Compacting => (&c.misses, None),
            Lookup::Undecodable => (&c.errors, None),
            Lookup::Unreadable(e) => {
                if !self.inner.read_warned.swap(true, Ordering::Relaxed) {
                    warn(&format!(
                        "rocket-mmap: cannot read the tag store {} ({e}); files it does not \
                         answer for are hashed",
                        self.inner.path.display()
                    ));
                }
                (&c.errors, None)
            }
        };
        Counters::add(counter, 1);
        tags
    }

    /// The queued or committed record of `key`.
    fn find(&self, key: &Key) -> Lookup {
        let record = match self.inner.queued(key) {
            Some(record) => record,
            None => {
                let db = match self.inner.db.try_read() {
                    Ok(db) => db,
                    Err(TryLockError::WouldBlock) => return Lookup::Compacting,
                    Err(TryLockError::Poisoned(p)) => p.into_inner(),
                };
                let read = guarded(|| {
                    let txn = db.begin_read()?;
                    let table = match txn.open_table(TAGS) {
                        Ok(t) => t,
                        Err(TableError::TableDoesNotExist(_)) => return Ok(None),
                        Err(e) => return Err(e.into()),
                    };
                    Ok(table.get(key)?.map(|v| Record::decode(v.value())))
                });
                match read {
                    Ok(None) => return Lookup::Missing,
                    Ok(Some(Some(record))) => record,
                    Ok(Some(None)) => return Lookup::Undecodable,
                    Err(e) => return Lookup::Unreadable(e),
                }
            }
        };
        record.tags().map_or(Lookup::Undecodable, Lookup::Found)
    }

    /// Records the tags of one file version, loaded from `path`, for later
    /// [`lookup`](TagStore::lookup)s. Best effort and cheap: it queues the record for
    /// the writer thread and returns; nothing is reported to the caller.
    ///
    /// The caller's contract (git's "racy" rule): `fp` must be the fingerprint the
    /// content was hashed under, and that version must have **settled** — its ctime
    /// older than [`SETTLE`](crate::cache::SETTLE) when it was hashed, with the
    /// fingerprint unchanged after the hash — so that no second write within the same
    /// timestamp tick can share the fingerprint. `etag` is the strong tag of exactly
    /// those bytes, and `digests` the digests known for them so far; a later record of
    /// the same version with the same tag adds its digests to those kept. Recording a
    /// version replaces the store's other versions of the same inode. `path` is kept
    /// for pruning: pass the absolute path the file was opened by.
    pub fn record(&self, fp: &Fingerprint, path: &Path, etag: &EntityTag, digests: &[&ReprDigest]) {
        if !cfg!(unix) || etag.tag().len() > usize::from(u8::MAX) {
            return;
        }
        if self.inner.write_failed.load(Ordering::Relaxed) {
            Counters::add(&self.inner.counters.dropped, 1);
            return;
        }
        self.inner
            .enqueue(encode_key(fp), Record::new(etag, digests, path));
    }

    /// Waits until every record queued before the call is committed (or dropped by a
    /// write error), and until the prune pass under way, if any, is done (at open,
    /// the first one).
    pub fn flush(&self) {
        self.inner.flush(self.writer.as_ref());
    }

    /// The counters since the store was opened.
    pub fn stats(&self) -> TagStoreStats {
        self.inner.counters.stats()
    }
}

impl Drop for TagStore {
    /// Commits what is queued and stops the writer thread (one `fsync`; a prune pass
    /// under way stops checking files).
    fn drop(&mut self) {
        self.inner.close();
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

/// The tag memo's view of the store (see [`Remember`]): a load asks it before it
/// would hash, and tags and digests are recorded as they are computed.
impl Remember for TagStore {
    fn recall(&self, fp: &Fingerprint) -> Option<Recalled> {
        let stored = self.lookup(fp)?;
        Some(Recalled {
            etag: stored.etag,
            digests: stored
                .digests
                .iter()
                .map(|d| (d.algorithm(), d.bytes().to_vec()))
                .collect(),
        })
    }

    fn remember(
        &self,
        fp: &Fingerprint,
        path: &Path,
        etag: &EntityTag,
        digests: &[(DigestAlgorithm, &[u8])],
    ) {
        let digests: Vec<ReprDigest> = digests
            .iter()
            .filter_map(|(a, bytes)| ReprDigest::from_stored(*a, bytes))
            .collect();
        let refs: Vec<&ReprDigest> = digests.iter().collect();
        self.record(fp, path, etag, &refs);
    }
}
