//! The persistent tag store: the ETag and the integrity digests of each file version
//! that was hashed, kept on disk so that a restart or an eviction of an unchanged file
//! reads none of its content to answer with them (feature `tag-store`).
//!
//! **git's index is the model**: stat data mapped to a content hash. The key is
//! everything a [`Fingerprint`] holds — device, inode, size, mtime and ctime in ns —
//! as 56 fixed bytes; the value is the strong [`EntityTag`], the [`ReprDigest`]s
//! computed so far, and the path the version was loaded from (for pruning). The ctime
//! is what makes the key safe: a writer can restore a file's size and mtime (`touch
//! -d`), but every write moves the ctime, which no unprivileged process can set. The
//! racy case of git's index (a change within the same timestamp tick as the hash) is
//! the caller's: [`TagStore::record`] is only called for versions that had settled
//! (ctime older than [`SETTLE`](crate::cache::SETTLE)) when they were hashed.
//!
//! Decisions:
//! * **The store**: one [`redb`] file (3.x: pure Rust, copy-on-write B-trees, every
//!   page checksummed, crash-safe commits, an exclusive `flock` while open; no
//!   `mmap`, so no SIGBUS). Its page cache is capped at [`CACHE_BYTES`]: a lookup
//!   happens once per load, never per request.
//! * **Never trusted when in doubt.** At [`TagStore::open`] redb verifies every
//!   page's checksum (`check_integrity`; it rolls back to the last intact commit after
//!   a crash). A torn, corrupt, truncated or foreign file (not redb, or a redb file
//!   without our schema) is **moved aside** as `PATH.corrupt-<unix seconds>` (deleted
//!   if it cannot be renamed) and a new store is created in its place;
//!   [`TagStore::moved_aside`] says so, for a warning. Moving aside rather than
//!   deleting never destroys a file someone put there by mistake. redb 3 panics on
//!   some damaged files (in the test that damages one byte at a time, about one in
//!   five); every call into redb is behind `catch_unwind`, so such a file is handled
//!   as corrupt (the panic's message still reaches stderr; with `panic = "abort"` in
//!   the application's profile it would end the process instead).
//! * **Versions**: the store holds its schema version. A store written by a newer
//!   schema is refused with [`TagStoreError::NewerVersion`] and left untouched, not a
//!   byte written (it is read through a read-only open first: an older build must not
//!   wipe a newer one's work); one written by an older schema is emptied and
//!   re-stamped (it is only a cache). A newer redb *file format* would be handled as
//!   corrupt and moved aside (redb 3, 4 and 5 all write format 3).
//! * **One writer per file**: a second [`TagStore::open`] of a path that is open —
//!   in another process, or in this one — fails at once with
//!   [`TagStoreError::Locked`]. Many servers may share a directory, each with its own
//!   store file.
//! * **Cheap for the caller**: [`TagStore::record`] only puts the record in a queue
//!   (a mutex and a hash map insert). A writer thread owned by the store commits the
//!   queue in batches: at most [`FLUSH_DELAY`] after the first queued record, or at
//!   once when [`BATCH_MAX`] are queued, one durable commit (one `fsync`) per batch.
//!   A crash loses at most the last batch, which only costs hashing those files
//!   again. redb's non-durable commits were not chosen: they must be followed by a
//!   durable one anyway, and until then redb cannot reuse the pages they free. The
//!   queue is bounded ([`PENDING_MAX`]); past it records are dropped (counted).
//!   Dropping the store writes what is queued and joins the thread. Measured here
//!   (release build, 100,000 entries): a record costs the caller 1.4 µs, a lookup
//!   2 µs, committing them all 0.64 s on the writer thread, and an open that verifies
//!   the whole store 45 ms.
//! * **Errors never reach the request path.** [`TagStore::lookup`] answers `None` on
//!   any error and [`TagStore::record`] returns nothing; the first read error and the
//!   first write error are logged once (through `log`, or on stderr when no logger
//!   takes warnings) and counted in [`TagStoreStats`]. After a write error (a full
//!   disk, an I/O error) redb refuses further writes until reopened: the store stops
//!   recording for the rest of the run, and the server hashes as it does without it.
//! * **Bounded growth**: recording a version of an inode removes the store's other
//!   versions of that inode (device and inode equal), so the store holds at most one
//!   entry per inode it has seen. Each open prunes, on the writer thread, the entries
//!   whose recorded path is gone or now holds another version (a deployment that
//!   replaces files by rename leaves new inodes behind). Measured here (release
//!   build): 100,000 entries with both digests and a 60-byte path take 67 MB on disk
//!   (B-tree pages written in key order are half full); pruning all of them took 3 s
//!   on the writer thread. redb reuses freed pages but does not shrink the file;
//!   deleting it while the server is stopped only costs hashing again. A library on a
//!   volume that is not mounted when the server starts loses its entries.
//! * Only on Unix: elsewhere a [`Fingerprint`] has no inode and no ctime, so it
//!   cannot tell a rewrite that restored the mtime, and the store records nothing.

// The cache does not call the store yet (issue 21: the lead wires it into the load).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redb::{
    Builder, Database, DatabaseError, ReadableDatabase, ReadableTable, StorageError,
    TableDefinition, TableError, TableHandle,
};

use crate::engine::digest::ReprDigest;
#[cfg(test)]
use crate::engine::entry::Entry;
use crate::engine::fingerprint::Fingerprint;
use crate::engine::tag::{Recalled, Remember};
use crate::semantics::digest::DigestAlgorithm;
use crate::semantics::etag::EntityTag;

/// The schema version this build writes and reads. A store with a higher one is
/// refused ([`TagStoreError::NewerVersion`]); one with a lower one is emptied.
pub const SCHEMA_VERSION: u64 = 1;

/// The most memory redb uses to cache the store's pages.
pub const CACHE_BYTES: usize = 8 << 20;

/// How long the writer thread waits after a first queued record for more, before it
/// commits them together.
pub const FLUSH_DELAY: Duration = Duration::from_secs(1);

/// A batch this large is committed at once.
pub const BATCH_MAX: usize = 4096;

/// The most records queued for the writer; more are dropped (and counted).
pub const PENDING_MAX: usize = 65_536;

/// `schema` → the schema version.
const META: TableDefinition<&str, u64> = TableDefinition::new("rocket-mmap meta");
const SCHEMA_KEY: &str = "schema";
/// Fingerprint (56 bytes) → the encoded [`Record`].
const TAGS: TableDefinition<&[u8; KEY_LEN], &[u8]> = TableDefinition::new("rocket-mmap tags");

/// Bytes of an encoded [`Fingerprint`]: dev, ino, size (8 each), mtime, ctime (16 each).
const KEY_LEN: usize = 56;
type Key = [u8; KEY_LEN];

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
        /// The highest schema version this build reads (`SCHEMA_VERSION`).
        supported: u64,
    },
}

impl TagStoreError {
    /// The store's path.
    pub fn path(&self) -> &Path {
        match self {
            TagStoreError::Io { path, .. }
            | TagStoreError::Locked { path }
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
            TagStoreError::Io { source, .. } => Some(source),
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
    /// Lookups that did not.
    pub misses: u64,
    /// Lookups that failed (read errors, undecodable entries): answered `None`.
    pub errors: u64,
    /// Records committed to disk.
    pub written: u64,
    /// Records not kept: the queue was full, or writing failed.
    pub dropped: u64,
    /// Entries removed by the prune at open (their file is gone or changed).
    pub pruned: u64,
}

/// A persistent map from file versions (their stat data: device, inode, size, mtime
/// and ctime) to their ETag and digests.
/// See the module docs for its guarantees. Dropping it commits what is queued.
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

struct Inner {
    path: PathBuf,
    db: Database,
    queue: Mutex<Queue>,
    /// Wakes the writer thread.
    wake: Condvar,
    /// Wakes [`TagStore::flush`] callers when a batch is written.
    written: Condvar,
    /// A write failed: nothing more is recorded.
    write_failed: AtomicBool,
    /// The store is being dropped: a prune under way stops checking files.
    stopping: AtomicBool,
    read_warned: AtomicBool,
    counters: [AtomicU64; 6],
}

#[derive(Default)]
struct Queue {
    records: HashMap<Key, Record>,
    closing: bool,
    /// Flushes asked for, and the last one the writer has completed.
    flush_asked: u64,
    flush_done: u64,
}

const HITS: usize = 0;
const MISSES: usize = 1;
const ERRORS: usize = 2;
const WRITTEN: usize = 3;
const DROPPED: usize = 4;
const PRUNED: usize = 5;

/// The value of one entry, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Record {
    etag: EntityTag,
    digests: Vec<(DigestAlgorithm, Box<[u8]>)>,
    path: PathBuf,
}

impl TagStore {
    /// Opens the store at `path`, creating it (and its directory) if missing. A
    /// corrupt or foreign file there is moved aside and replaced (see
    /// [`TagStore::moved_aside`]); then the entries whose files are gone or changed
    /// are pruned in the background.
    ///
    /// # Errors
    /// [`TagStoreError::Locked`] if the store is open elsewhere,
    /// [`TagStoreError::NewerVersion`] if a newer build wrote it,
    /// [`TagStoreError::Io`] if it cannot be created or opened (permissions, full
    /// disk), [`TagStoreError::Corrupt`] if it is unreadable and cannot be replaced.
    pub fn open(path: &Path) -> Result<TagStore, TagStoreError> {
        let io_err = |source| TagStoreError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io_err)?;
        }
        let mut moved_aside = None;
        let db = match attempt(path) {
            Ok(db) => db,
            Err((Failure::Corrupt(reason), guard)) => {
                // Still holding the lock, so no other opener sees the file half-replaced.
                let aside = aside_path(path);
                let moved = match std::fs::rename(path, &aside) {
                    Ok(()) => aside,
                    Err(_) => {
                        std::fs::remove_file(path).map_err(|e| TagStoreError::Corrupt {
                            path: path.to_path_buf(),
                            reason: format!(
                                "{reason}; it could not be moved aside or removed: {e}"
                            ),
                        })?;
                        PathBuf::new()
                    }
                };
                drop(guard);
                moved_aside = Some((moved, reason));
                attempt(path).map_err(|(f, _)| f.into_error(path))?
            }
            Err((f, _)) => return Err(f.into_error(path)),
        };
        let inner = Arc::new(Inner {
            path: path.to_path_buf(),
            db,
            queue: Mutex::default(),
            wake: Condvar::new(),
            written: Condvar::new(),
            write_failed: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            read_warned: AtomicBool::new(false),
            counters: Default::default(),
        });
        let me = Arc::clone(&inner);
        let writer = std::thread::Builder::new()
            .name("rocket-mmap tag store".into())
            .spawn(move || me.run_writer())
            .map_err(io_err)?;
        Ok(TagStore {
            inner,
            writer: Some(writer),
            moved_aside,
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
    /// one in the batch being committed at that moment may be missed (a rehash, never
    /// a wrong answer). Costs a mutex and a read transaction (about 2 µs).
    pub fn lookup(&self, fp: &Fingerprint) -> Option<StoredTags> {
        if !cfg!(unix) {
            return None;
        }
        let key = encode_key(fp);
        let queued = self.inner.queue().records.get(&key).cloned();
        let found = match queued {
            Some(r) => Some(Ok(r)),
            None => match self.inner.read(&key) {
                Ok(v) => v.map(|bytes| Record::decode(&bytes).ok_or(None)),
                Err(e) => Some(Err(Some(e))),
            },
        };
        let n = match found {
            None => MISSES,
            Some(Ok(record)) => {
                if let Some(tags) = record.tags() {
                    self.inner.count(HITS);
                    return Some(tags);
                }
                ERRORS
            }
            Some(Err(Some(e))) => {
                if !self.inner.read_warned.swap(true, Ordering::Relaxed) {
                    warn(&format!(
                        "rocket-mmap: cannot read the tag store {} ({e}); files it does not \
                         answer for are hashed",
                        self.inner.path.display()
                    ));
                }
                ERRORS
            }
            Some(Err(None)) => ERRORS,
        };
        self.inner.count(n);
        None
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
            self.inner.count(DROPPED);
            return;
        }
        let record = Record {
            etag: etag.clone(),
            digests: digests
                .iter()
                .map(|d| (d.algorithm(), Box::from(d.bytes())))
                .collect(),
            path: path.to_path_buf(),
        };
        let key = encode_key(fp);
        let mut q = self.inner.queue();
        if q.closing {
            return;
        }
        let len = q.records.len();
        match q.records.get_mut(&key) {
            Some(queued) => queued.absorb(record),
            None if len >= PENDING_MAX => {
                drop(q);
                self.inner.count(DROPPED);
                return;
            }
            None => {
                q.records.insert(key, record);
            }
        }
        if len == 0 || len + 1 >= BATCH_MAX {
            self.inner.wake.notify_one();
        }
    }

    /// Records what `entry` knows of its version: its ETag and every digest computed
    /// so far (see [`TagStore::record`] for the contract on `fp`). Nothing while its
    /// tag is not known yet.
    #[cfg(test)]
    pub(crate) fn record_entry(&self, fp: &Fingerprint, path: &Path, entry: &Entry) {
        let Some(etag) = entry.etag() else {
            return;
        };
        let digests: Vec<&ReprDigest> = DigestAlgorithm::ALL
            .into_iter()
            .filter_map(|a| entry.ready_digest(a))
            .collect();
        self.record(fp, path, etag, &digests);
    }

    /// Waits until every record queued before the call is committed (or dropped by a
    /// write error), and, the first time, until the prune at open is done.
    pub fn flush(&self) {
        let mut q = self.inner.queue();
        q.flush_asked += 1;
        let want = q.flush_asked;
        self.inner.wake.notify_one();
        while q.flush_done < want && self.writer.as_ref().is_some_and(|w| !w.is_finished()) {
            q = self
                .inner
                .written
                .wait_timeout(q, Duration::from_millis(100))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// The counters since the store was opened.
    pub fn stats(&self) -> TagStoreStats {
        let c = |i: usize| self.inner.counters[i].load(Ordering::Relaxed);
        TagStoreStats {
            hits: c(HITS),
            misses: c(MISSES),
            errors: c(ERRORS),
            written: c(WRITTEN),
            dropped: c(DROPPED),
            pruned: c(PRUNED),
        }
    }
}

impl Drop for TagStore {
    /// Commits what is queued and stops the writer thread (one `fsync`; a prune under
    /// way stops checking files).
    fn drop(&mut self) {
        self.inner.stopping.store(true, Ordering::Relaxed);
        self.inner.queue().closing = true;
        self.inner.wake.notify_one();
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

impl Inner {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn count(&self, counter: usize) {
        self.counters[counter].fetch_add(1, Ordering::Relaxed);
    }

    /// The stored bytes for `key`. A panic inside redb (a file damaged after the
    /// check at open) is an error like any other.
    fn read(&self, key: &Key) -> Result<Option<Vec<u8>>, redb::Error> {
        catch_unwind(AssertUnwindSafe(|| {
            let txn = self.db.begin_read()?;
            let table = match txn.open_table(TAGS) {
                Ok(t) => t,
                Err(TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            Ok(table.get(key)?.map(|v| v.value().to_vec()))
        }))
        .unwrap_or_else(|_| Err(StorageError::Corrupted("panic while reading".into()).into()))
    }

    /// The writer thread: prunes once, then commits queued records in batches until
    /// the store is dropped.
    fn run_writer(&self) {
        if let Err(e) = self.prune() {
            self.write_failed(&e);
        }
        loop {
            let (batch, asked, closing) = {
                let mut q = self.queue();
                while q.records.is_empty() && !q.closing && q.flush_asked == q.flush_done {
                    q = self.wake.wait(q).unwrap_or_else(PoisonError::into_inner);
                }
                // Linger for more records, unless someone waits.
                let until = Instant::now() + FLUSH_DELAY;
                while !q.closing && q.flush_asked == q.flush_done && q.records.len() < BATCH_MAX {
                    let Some(left) = until.checked_duration_since(Instant::now()) else {
                        break;
                    };
                    q = self
                        .wake
                        .wait_timeout(q, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
                (std::mem::take(&mut q.records), q.flush_asked, q.closing)
            };
            let n = batch.len() as u64;
            if n > 0 {
                if self.write_failed.load(Ordering::Relaxed) {
                    self.counters[DROPPED].fetch_add(n, Ordering::Relaxed);
                } else {
                    match catch_unwind(AssertUnwindSafe(|| self.write(batch))) {
                        Ok(Ok(())) => {
                            self.counters[WRITTEN].fetch_add(n, Ordering::Relaxed);
                        }
                        Ok(Err(e)) => {
                            self.counters[DROPPED].fetch_add(n, Ordering::Relaxed);
                            self.write_failed(&e);
                        }
                        Err(_) => {
                            self.counters[DROPPED].fetch_add(n, Ordering::Relaxed);
                            self.write_failed(&StorageError::Corrupted("panic".into()).into());
                        }
                    }
                }
            }
            let mut q = self.queue();
            q.flush_done = asked;
            self.written.notify_all();
            if closing && q.records.is_empty() {
                return;
            }
        }
    }

    fn write_failed(&self, e: &redb::Error) {
        if self.write_failed.swap(true, Ordering::Relaxed) {
            return;
        }
        let full = matches!(e, redb::Error::Io(io) if io.raw_os_error() == Some(libc::ENOSPC));
        warn(&format!(
            "rocket-mmap: cannot write the tag store {} ({e}{}); tags are no longer recorded \
             in this run, files are hashed as without a store",
            self.path.display(),
            if full { ": the disk is full" } else { "" }
        ));
    }

    /// Commits one batch: each record merged with the digests already stored for its
    /// version, the other versions of its inode removed.
    fn write(&self, batch: HashMap<Key, Record>) -> Result<(), redb::Error> {
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(TAGS)?;
            for (key, mut record) in batch {
                let stored = table.get(&key)?.and_then(|v| Record::decode(v.value()));
                if let Some(stored) = stored {
                    record.keep_digests_of(stored);
                }
                let (lo, hi) = inode_range(&key);
                table.retain_in::<&Key, _>(&lo..=&hi, |k, _| k == &key)?;
                table.insert(&key, record.encode().as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Removes the entries whose recorded path is gone or holds another version.
    fn prune(&self) -> Result<(), redb::Error> {
        let txn = self.db.begin_write()?;
        let mut pruned = 0;
        {
            let mut table = txn.open_table(TAGS)?;
            table.retain(|key, value| {
                // Stopping: keep the rest unchecked, so that dropping the store is quick.
                let live = self.stopping.load(Ordering::Relaxed)
                    || Record::decode(value).is_some_and(|r| still_current(key, &r.path));
                pruned += u64::from(!live);
                live
            })?;
        }
        txn.commit()?;
        self.counters[PRUNED].fetch_add(pruned, Ordering::Relaxed);
        Ok(())
    }
}

/// Whether `path` still holds the version `key` describes (an error other than "no
/// such file" keeps the entry: a permission problem does not prove a change).
fn still_current(key: &Key, path: &Path) -> bool {
    match std::fs::metadata(path) {
        Ok(meta) => encode_key(&Fingerprint::of(&meta)) == *key,
        Err(e) => !matches!(
            e.kind(),
            io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
        ),
    }
}

/// Why one attempt to open failed.
enum Failure {
    Locked,
    Io(io::Error),
    Corrupt(String),
    Newer(u64),
}

impl Failure {
    fn into_error(self, path: &Path) -> TagStoreError {
        let path = path.to_path_buf();
        match self {
            Failure::Locked => TagStoreError::Locked { path },
            Failure::Io(source) => TagStoreError::Io { path, source },
            Failure::Corrupt(reason) => TagStoreError::Corrupt { path, reason },
            Failure::Newer(found) => TagStoreError::NewerVersion {
                path,
                found,
                supported: SCHEMA_VERSION,
            },
        }
    }

    fn from_redb(e: redb::Error) -> Failure {
        match e {
            redb::Error::DatabaseAlreadyOpen => Failure::Locked,
            // redb reports a file without its magic number as InvalidData, and a file
            // cut short as an early end.
            redb::Error::Io(io)
                if matches!(
                    io.kind(),
                    io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
                ) =>
            {
                Failure::Corrupt(format!("not a redb file, or cut short ({io})"))
            }
            redb::Error::Io(io) => Failure::Io(io),
            other => Failure::Corrupt(other.to_string()),
        }
    }
}

impl From<DatabaseError> for Failure {
    fn from(e: DatabaseError) -> Failure {
        Failure::from_redb(e.into())
    }
}

/// One attempt to open (or create) the store. On failure, the file still locked by
/// this attempt, if it got that far (so that a corrupt file is replaced under the lock).
fn attempt(path: &Path) -> Result<Database, (Failure, Option<File>)> {
    if let Some(found) = newer_schema(path) {
        return Err((Failure::Newer(found), None));
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| (Failure::Io(e), None))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Err((Failure::Locked, None)),
        Err(std::fs::TryLockError::Error(e)) if e.kind() == io::ErrorKind::Unsupported => {}
        Err(std::fs::TryLockError::Error(e)) => return Err((Failure::Io(e), None)),
    }
    // The same open file description: its lock lasts while either descriptor is open.
    let guard = file.try_clone().map_err(|e| (Failure::Io(e), None))?;
    let opened = catch_unwind(AssertUnwindSafe(|| -> Result<Database, Failure> {
        let mut db = Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create_file(file)?;
        db.check_integrity()?;
        check_schema(&db)?;
        Ok(db)
    }))
    .unwrap_or_else(|_| Err(Failure::Corrupt("the store reader panicked on it".into())));
    opened.map_err(|f| (f, Some(guard)))
}

/// The schema version of an existing store, if it is higher than this build's. Read
/// through a read-only open, before the store is opened for writing (which writes
/// redb's header), so that a newer build's store is refused without a byte written.
/// Anything else (no file, locked, unreadable) is left to the open that follows.
fn newer_schema(path: &Path) -> Option<u64> {
    if std::fs::metadata(path).map_or(true, |m| m.len() == 0) {
        return None;
    }
    catch_unwind(|| {
        let db = Builder::new()
            .set_cache_size(1 << 20)
            .open_read_only(path)
            .ok()?;
        let txn = db.begin_read().ok()?;
        let meta = txn.open_table(META).ok()?;
        let found = meta.get(SCHEMA_KEY).ok()??.value();
        (found > SCHEMA_VERSION).then_some(found)
    })
    .ok()
    .flatten()
}

/// Checks the schema version, stamping a new store and emptying an older one.
fn check_schema(db: &Database) -> Result<(), Failure> {
    let e = |e: redb::Error| Failure::from_redb(e);
    let txn = db.begin_write().map_err(|x| e(x.into()))?;
    let names: Vec<String> = txn
        .list_tables()
        .map_err(|x| e(x.into()))?
        .map(|t| t.name().to_owned())
        .collect();
    let has_meta = names.iter().any(|n| n == META.name());
    if !has_meta && !names.is_empty() {
        return Err(Failure::Corrupt(format!(
            "a redb file but not a rocket-mmap tag store (tables {names:?})"
        )));
    }
    {
        let mut meta = txn.open_table(META).map_err(|x| e(x.into()))?;
        let found = meta
            .get(SCHEMA_KEY)
            .map_err(|x| e(x.into()))?
            .map(|v| v.value());
        match found {
            Some(v) if v > SCHEMA_VERSION => {
                drop(meta);
                let _ = txn.abort();
                return Err(Failure::Newer(v));
            }
            Some(SCHEMA_VERSION) => {}
            None if has_meta => {
                return Err(Failure::Corrupt("no schema version in the store".into()));
            }
            older => {
                if older.is_some() {
                    for name in names.iter().filter(|n| *n != META.name()) {
                        let old: TableDefinition<&[u8], &[u8]> = TableDefinition::new(name);
                        txn.delete_table(old).map_err(|x| e(x.into()))?;
                    }
                }
                meta.insert(SCHEMA_KEY, SCHEMA_VERSION)
                    .map_err(|x| e(x.into()))?;
            }
        }
    }
    txn.open_table(TAGS).map_err(|x| e(x.into()))?;
    txn.commit().map_err(|x| e(x.into()))?;
    Ok(())
}

/// Where a corrupt store is moved: `PATH.corrupt-<unix seconds>`.
fn aside_path(path: &Path) -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".corrupt-{secs}"));
    PathBuf::from(name)
}

/// The fingerprint as 56 big-endian bytes: device and inode first, so that the
/// versions of one inode are neighbours.
fn encode_key(fp: &Fingerprint) -> Key {
    let mut k = [0u8; KEY_LEN];
    k[0..8].copy_from_slice(&fp.dev.to_be_bytes());
    k[8..16].copy_from_slice(&fp.ino.to_be_bytes());
    k[16..24].copy_from_slice(&fp.size.to_be_bytes());
    k[24..40].copy_from_slice(&fp.mtime_ns.to_be_bytes());
    k[40..56].copy_from_slice(&fp.ctime_ns.to_be_bytes());
    k
}

/// The first and last keys with the device and inode of `key`.
fn inode_range(key: &Key) -> (Key, Key) {
    let (mut lo, mut hi) = ([0u8; KEY_LEN], [0xffu8; KEY_LEN]);
    lo[..16].copy_from_slice(&key[..16]);
    hi[..16].copy_from_slice(&key[..16]);
    (lo, hi)
}

/// The algorithm's byte in an encoded record.
fn algorithm_id(a: DigestAlgorithm) -> u8 {
    match a {
        DigestAlgorithm::Sha256 => 1,
        DigestAlgorithm::Sha512 => 2,
    }
}

impl Record {
    /// Schema 1: `flags` (bit 0: weak), tag length (1 byte), the tag; the number of
    /// digests (1 byte), each as an algorithm byte (1: SHA-256, 2: SHA-512) and its
    /// 32 or 64 bytes; then the path's bytes to the end.
    fn encode(&self) -> Vec<u8> {
        let tag = self.etag.tag().as_bytes();
        let path = path_bytes(&self.path);
        let mut v = Vec::with_capacity(3 + tag.len() + 1 + 2 * 65 + path.len());
        v.push(u8::from(self.etag.is_weak()));
        v.push(tag.len() as u8); // At most 255: longer tags are not recorded.
        v.extend_from_slice(tag);
        v.push(self.digests.len() as u8);
        for (a, bytes) in &self.digests {
            v.push(algorithm_id(*a));
            v.extend_from_slice(bytes);
        }
        v.extend_from_slice(&path);
        v
    }

    /// `None` for anything [`Record::encode`] would not have written.
    fn decode(v: &[u8]) -> Option<Record> {
        let (&flags, rest) = v.split_first()?;
        if flags > 1 {
            return None;
        }
        let (&len, rest) = rest.split_first()?;
        let (tag, rest) = rest.split_at_checked(usize::from(len))?;
        let etag = EntityTag::new(flags == 1, std::str::from_utf8(tag).ok()?).ok()?;
        let (&count, mut rest) = rest.split_first()?;
        let mut digests = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let (&id, r) = rest.split_first()?;
            let a = DigestAlgorithm::ALL
                .into_iter()
                .find(|&a| algorithm_id(a) == id)?;
            let (bytes, r) = r.split_at_checked(a.output_len())?;
            if digests.iter().any(|(b, _)| *b == a) {
                return None;
            }
            digests.push((a, Box::from(bytes)));
            rest = r;
        }
        Some(Record {
            etag,
            digests,
            path: path_from_bytes(rest),
        })
    }

    /// A newer record of the same version: its tag and path win; digests add up.
    fn absorb(&mut self, newer: Record) {
        let older = std::mem::replace(self, newer);
        self.keep_digests_of(older);
    }

    /// Adds the digests of `older` that this record lacks, if both have one tag.
    fn keep_digests_of(&mut self, older: Record) {
        if older.etag != self.etag {
            return;
        }
        for (a, bytes) in older.digests {
            if !self.digests.iter().any(|(b, _)| *b == a) {
                self.digests.push((a, bytes));
            }
        }
    }

    fn tags(&self) -> Option<StoredTags> {
        let digests = self
            .digests
            .iter()
            .map(|(a, bytes)| ReprDigest::from_stored(*a, bytes))
            .collect::<Option<Vec<_>>>()?;
        Some(StoredTags {
            etag: self.etag.clone(),
            digests,
        })
    }
}

#[cfg(unix)]
fn path_bytes(path: &Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str().as_bytes().to_vec()
}

#[cfg(unix)]
fn path_from_bytes(bytes: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    PathBuf::from(std::ffi::OsStr::from_bytes(bytes))
}

#[cfg(not(unix))]
fn path_bytes(path: &Path) -> Vec<u8> {
    path.to_string_lossy().into_owned().into_bytes()
}

#[cfg(not(unix))]
fn path_from_bytes(bytes: &[u8]) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(bytes).into_owned())
}

/// A warning from the engine, which has no logger of its own: through `log` (Rocket's
/// logger, when it is installed and takes warnings), else on stderr, so that it is
/// never lost.
pub(crate) fn warn(message: &str) {
    if log::log_enabled!(log::Level::Warn) {
        log::warn!("{message}");
    } else {
        eprintln!("warning: {message}");
    }
}

/// The cache's view of the store (see [`Remember`]): a load asks it before it would
/// hash, and tags and digests are recorded as they are computed.
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

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    use crate::engine::test_support::TempDir;

    impl TempDir {
        fn store(&self) -> PathBuf {
            self.0.join("state/tags.redb")
        }
    }

    fn fingerprint(path: &Path) -> Fingerprint {
        Fingerprint::of(&std::fs::metadata(path).unwrap())
    }

    fn sha256(fill: u8) -> ReprDigest {
        ReprDigest::from_stored(DigestAlgorithm::Sha256, &[fill; 32]).unwrap()
    }

    fn sha512(fill: u8) -> ReprDigest {
        ReprDigest::from_stored(DigestAlgorithm::Sha512, &[fill; 64]).unwrap()
    }

    /// Records `path` as it is now, with its content tag.
    fn record(store: &TagStore, path: &Path, digests: &[&ReprDigest]) -> (Fingerprint, EntityTag) {
        let fp = fingerprint(path);
        let etag = EntityTag::from_content(&std::fs::read(path).unwrap());
        store.record(&fp, path, &etag, digests);
        (fp, etag)
    }

    /// The files in `dir` whose name starts with `prefix`.
    fn siblings(dir: &Path, prefix: &str) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_restart_reuses_tags() {
        let d = TempDir::new("restart");
        let a = d.write("a.bin", b"the content of a");
        let (s256, s512) = (sha256(1), sha512(2));
        let store = TagStore::open(&d.store()).unwrap();
        assert!(store.moved_aside().is_none());
        let (fp, etag) = record(&store, &a, &[&s256, &s512]);
        let want = StoredTags {
            etag: etag.clone(),
            digests: vec![s256.clone(), s512.clone()],
        };
        // Seen while still queued, and after the commit.
        assert_eq!(store.lookup(&fp), Some(want.clone()));
        store.flush();
        assert_eq!(store.lookup(&fp), Some(want.clone()));
        assert_eq!(store.stats().written, 1);
        drop(store);

        let store = TagStore::open(&d.store()).unwrap();
        store.flush();
        let got = store.lookup(&fp).unwrap();
        assert_eq!(got, want);
        assert!(got.etag.strong_eq(&etag) && got.etag.to_string() == etag.to_string());
        assert_eq!(got.digests[0].repr_digest_value(), s256.repr_digest_value());
        assert_eq!(got.digests[1].digest_value(), s512.digest_value());
        let stats = store.stats();
        assert_eq!(
            (stats.hits, stats.misses, stats.errors, stats.pruned),
            (1, 0, 0, 0)
        );
    }

    /// An entry's tag and the digests it has computed, as the load would record them.
    #[cfg(feature = "digest")]
    #[test]
    fn an_entry_is_recorded_with_its_digests() {
        let d = TempDir::new("entry");
        let a = d.write("a.bin", b"entry content");
        let entry = Entry::from_bytes(std::fs::read(&a).unwrap(), "application/octet-stream");
        let sha = entry
            .digest_blocking(DigestAlgorithm::Sha512)
            .unwrap()
            .clone();
        let store = TagStore::open(&d.store()).unwrap();
        store.record_entry(&fingerprint(&a), &a, &entry);
        drop(store);
        let store = TagStore::open(&d.store()).unwrap();
        let got = store.lookup(&fingerprint(&a)).unwrap();
        assert_eq!(Some(&got.etag), entry.etag());
        assert_eq!(got.digests, [sha]);
    }

    #[test]
    fn digests_recorded_later_add_up() {
        let d = TempDir::new("merge");
        let a = d.write("a.bin", b"aaaa");
        let store = TagStore::open(&d.store()).unwrap();
        let (fp, etag) = record(&store, &a, &[]);
        store.flush();
        record(&store, &a, &[&sha512(9)]);
        record(&store, &a, &[&sha256(8)]); // Queued together with the SHA-512 one.
        store.flush();
        record(&store, &a, &[]); // A later record without digests loses none.
        drop(store);
        let store = TagStore::open(&d.store()).unwrap();
        let got = store.lookup(&fp).unwrap();
        assert_eq!(got.etag, etag);
        let mut algorithms: Vec<_> = got.digests.iter().map(|d| d.algorithm()).collect();
        algorithms.sort_by_key(|a| a.index());
        assert_eq!(algorithms, DigestAlgorithm::ALL);
    }

    #[test]
    fn a_rewrite_that_restores_size_and_mtime_misses() {
        let d = TempDir::new("rewrite");
        let a = d.write("a.bin", b"version one");
        let store = TagStore::open(&d.store()).unwrap();
        let (old_fp, old_tag) = record(&store, &a, &[&sha256(1)]);
        store.flush();
        let mtime = std::fs::metadata(&a).unwrap().modified().unwrap();
        std::thread::sleep(Duration::from_millis(20)); // Past a coarse clock tick.
        std::fs::write(&a, b"version two").unwrap(); // Same size.
        std::fs::File::options()
            .write(true)
            .open(&a)
            .unwrap()
            .set_modified(mtime) // `touch -d` with the old time.
            .unwrap();
        let new_fp = fingerprint(&a);
        assert_eq!(
            (new_fp.ino, new_fp.size, new_fp.mtime_ns),
            (old_fp.ino, old_fp.size, old_fp.mtime_ns)
        );
        assert_ne!(new_fp.ctime_ns, old_fp.ctime_ns);
        assert_eq!(store.lookup(&new_fp), None);
        assert_eq!(store.lookup(&old_fp).unwrap().etag, old_tag);

        // The new version replaces the old one: one entry per inode.
        let (_, new_tag) = record(&store, &a, &[]);
        assert_ne!(new_tag, old_tag);
        store.flush();
        assert_eq!(store.lookup(&old_fp), None);
        assert_eq!(store.lookup(&new_fp).unwrap().etag, new_tag);
    }

    #[test]
    fn entries_of_gone_or_changed_files_are_pruned_at_open() {
        let d = TempDir::new("prune");
        let kept = d.write("kept", b"kept");
        let gone = d.write("gone", b"gone");
        let changed = d.write("changed", b"changed");
        let store = TagStore::open(&d.store()).unwrap();
        let (kept_fp, _) = record(&store, &kept, &[]);
        let (gone_fp, _) = record(&store, &gone, &[]);
        let (changed_fp, _) = record(&store, &changed, &[]);
        drop(store);
        std::fs::remove_file(&gone).unwrap();
        // Replaced by rename: a new inode, so recording it would not remove the old one.
        let tmp = d.write("changed.tmp", b"CHANGED");
        std::fs::rename(tmp, &changed).unwrap();

        let store = TagStore::open(&d.store()).unwrap();
        store.flush();
        assert_eq!(store.stats().pruned, 2);
        assert!(store.lookup(&kept_fp).is_some());
        assert_eq!(store.lookup(&gone_fp), None);
        assert_eq!(store.lookup(&changed_fp), None);
    }

    #[test]
    fn a_corrupt_or_foreign_store_is_moved_aside_and_rebuilt() {
        let d = TempDir::new("corrupt");
        let a = d.write("a.bin", b"aaaa");
        let path = d.store();
        let valid = {
            let store = TagStore::open(&path).unwrap();
            record(&store, &a, &[&sha256(3)]);
            drop(store);
            std::fs::read(&path).unwrap()
        };
        let foreign = {
            let other = d.0.join("other.redb");
            let db = Database::create(&other).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(TableDefinition::<u64, u64>::new("other"))
                .unwrap()
                .insert(1, 2)
                .unwrap();
            txn.commit().unwrap();
            drop(db);
            std::fs::read(&other).unwrap()
        };
        let garbage: Vec<u8> = (0..20_000u32).map(|i| (i * 7 + 13) as u8).collect();
        let cases: [(&str, &[u8]); 5] = [
            ("garbage", &garbage),
            ("truncated to half", &valid[..valid.len() / 2]),
            ("truncated to 5 bytes", &valid[..5]),
            (
                "its header torn",
                &[&valid[..256], &[0xA5; 256][..], &valid[512..]].concat(),
            ),
            ("another program's redb file", &foreign),
        ];
        for (what, bytes) in cases {
            std::fs::write(&path, bytes).unwrap();
            let store = TagStore::open(&path).unwrap_or_else(|e| panic!("{what}: {e}"));
            let (aside, why) = store
                .moved_aside()
                .unwrap_or_else(|| panic!("{what}: trusted"));
            // Kept for a look, never deleted (redb may have stamped its header first).
            let kept = std::fs::read(aside).unwrap();
            assert_eq!(kept.len(), bytes.len(), "{what}: {why}");
            if what == "garbage" {
                assert!(kept == bytes, "{what}: changed");
            }
            std::fs::remove_file(aside).unwrap();
            assert_eq!(store.lookup(&fingerprint(&a)), None, "{what}");
            // The new store works.
            let (fp, etag) = record(&store, &a, &[]);
            drop(store);
            let store = TagStore::open(&path).unwrap();
            assert!(store.moved_aside().is_none(), "{what}");
            assert_eq!(store.lookup(&fp).unwrap().etag, etag, "{what}");
        }
        assert!(siblings(&d.0.join("state"), "tags.redb.corrupt").is_empty());
    }

    /// Whatever byte of the file is damaged, a lookup answers the recorded tags or
    /// nothing: never other tags.
    #[test]
    fn a_damaged_byte_never_yields_other_tags() {
        let d = TempDir::new("flip");
        let files: Vec<PathBuf> = (0..40)
            .map(|i| d.write(&format!("f{i}"), format!("content {i}").as_bytes()))
            .collect();
        let path = d.store();
        let recorded: Vec<(Fingerprint, EntityTag)> = {
            let store = TagStore::open(&path).unwrap();
            let r = files
                .iter()
                .map(|f| record(&store, f, &[&sha256(5)]))
                .collect();
            drop(store);
            r
        };
        let valid = std::fs::read(&path).unwrap();
        // Where the data is: the file's non-zero bytes (redb preallocates zeros).
        let used: Vec<usize> = (0..valid.len()).filter(|&i| valid[i] != 0).collect();
        let step = (used.len() / 60).max(1);
        let (mut served, mut refused) = (0, 0);
        for &at in used.iter().step_by(step) {
            let mut damaged = valid.clone();
            damaged[at] ^= 0x5A;
            std::fs::write(&path, &damaged).unwrap();
            let store = TagStore::open(&path).unwrap();
            if let Some((aside, _)) = store.moved_aside() {
                std::fs::remove_file(aside).unwrap();
            }
            for (fp, etag) in &recorded {
                match store.lookup(fp) {
                    Some(t) => {
                        assert_eq!(&t.etag, etag, "byte {at} damaged");
                        assert_eq!(t.digests, [sha256(5)], "byte {at} damaged");
                        served += 1;
                    }
                    None => refused += 1,
                }
            }
        }
        assert!(refused > 0, "no damage was ever detected ({served} served)");
    }

    #[test]
    fn a_second_writer_is_refused_with_locked() {
        let d = TempDir::new("locked");
        let first = TagStore::open(&d.store()).unwrap();
        let e = TagStore::open(&d.store()).unwrap_err();
        assert!(matches!(e, TagStoreError::Locked { .. }), "{e:?}");
        assert_eq!(e.path(), d.store());
        assert!(e.to_string().contains("open in another process"), "{e}");
        // The refused open changed nothing; once the first is closed, it opens.
        drop(first);
        let again = TagStore::open(&d.store()).unwrap();
        assert!(again.moved_aside().is_none());
    }

    /// Across processes: util-linux's `flock` (Debian's essential util-linux) sees
    /// the store's lock, and a store locked by another process is refused.
    #[test]
    fn another_process_sees_the_lock_and_is_seen() {
        let d = TempDir::new("locked-process");
        let flock = |args: &[&str]| {
            std::process::Command::new("flock")
                .args(["--nonblock", "--conflict-exit-code", "75"])
                .arg(d.store())
                .args(args)
                .spawn()
                .expect("flock (util-linux)")
        };
        let store = TagStore::open(&d.store()).unwrap();
        assert_eq!(flock(&["true"]).wait().unwrap().code(), Some(75));
        drop(store);
        assert_eq!(flock(&["true"]).wait().unwrap().code(), Some(0));

        // The lock is taken on a descriptor of `sh`, which says so once `flock` (its
        // child, which shares the descriptor) has exited, and then becomes `sleep`:
        // from that line on, the lock lives and dies with this one process.
        let mut holder = std::process::Command::new("sh")
            .args([
                "-c",
                "exec 9<>\"$0\" && flock 9 && echo locked && exec sleep 30",
            ])
            .arg(d.store())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        io::BufRead::read_line(
            &mut io::BufReader::new(holder.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line, "locked\n");
        let e = TagStore::open(&d.store()).unwrap_err();
        assert!(matches!(e, TagStoreError::Locked { .. }), "{e:?}");
        holder.kill().unwrap();
        holder.wait().unwrap();
        if let Err(e) = TagStore::open(&d.store()) {
            panic!("after the holder's death: {e:?}");
        }
    }

    fn set_schema(path: &Path, version: u64) {
        let db = Database::open(path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META)
            .unwrap()
            .insert(SCHEMA_KEY, version)
            .unwrap();
        txn.commit().unwrap();
    }

    fn schema_and_entries(path: &Path) -> (Option<u64>, u64) {
        use redb::ReadableTableMetadata;
        let db = Database::open(path).unwrap();
        let txn = db.begin_read().unwrap();
        let schema = txn
            .open_table(META)
            .unwrap()
            .get(SCHEMA_KEY)
            .unwrap()
            .map(|v| v.value());
        let entries = match txn.open_table(TAGS) {
            Ok(t) => t.len().unwrap(),
            Err(TableError::TableDoesNotExist(_)) => 0,
            Err(e) => panic!("{e}"),
        };
        (schema, entries)
    }

    #[test]
    fn a_store_of_a_newer_schema_is_refused_and_left_alone() {
        let d = TempDir::new("newer");
        let a = d.write("a.bin", b"aaaa");
        drop({
            let store = TagStore::open(&d.store()).unwrap();
            record(&store, &a, &[]);
            store
        });
        let newer = SCHEMA_VERSION + 1;
        set_schema(&d.store(), newer);
        let before = std::fs::read(d.store()).unwrap();
        let e = TagStore::open(&d.store()).unwrap_err();
        assert!(
            std::fs::read(d.store()).unwrap() == before,
            "the file was written to"
        );
        match &e {
            TagStoreError::NewerVersion {
                found, supported, ..
            } => assert_eq!((*found, *supported), (newer, SCHEMA_VERSION)),
            other => panic!("{other:?}"),
        }
        assert!(e.to_string().contains("newer rocket-mmap"), "{e}");
        assert_eq!(schema_and_entries(&d.store()), (Some(newer), 1));
        assert!(siblings(&d.0.join("state"), "tags.redb.corrupt").is_empty());

        // An older schema is only a cache: emptied and stamped anew.
        set_schema(&d.store(), 0);
        let store = TagStore::open(&d.store()).unwrap();
        assert_eq!(store.lookup(&fingerprint(&a)), None);
        drop(store);
        assert_eq!(schema_and_entries(&d.store()), (Some(SCHEMA_VERSION), 0));
    }

    #[test]
    fn an_unusable_path_is_an_io_error() {
        let d = TempDir::new("io");
        let file = d.write("plain", b"not a directory");
        for path in [
            file.join("tags.redb"),
            file.join("sub/tags.redb"),
            d.0.clone(),
        ] {
            let e = TagStore::open(&path).unwrap_err();
            assert!(
                matches!(e, TagStoreError::Io { .. }),
                "{}: {e:?}",
                path.display()
            );
            assert!(e.to_string().contains(&*path.to_string_lossy()), "{e}");
        }
    }

    /// A tmpfs of `size` mounted at a new directory, unmounted on drop.
    struct SmallDisk(TempDir);

    impl SmallDisk {
        fn mount(name: &str, size: &str) -> SmallDisk {
            let d = TempDir::new(name);
            let ok = std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
                .arg(&d.0)
                .status()
                .unwrap()
                .success();
            assert!(ok, "mount tmpfs (needs root)");
            SmallDisk(d)
        }

        /// Writes a file until the disk is full.
        fn fill(&self) {
            use std::io::Write;
            let mut f = File::create(self.0 .0.join("filler")).unwrap();
            let block = [0x55u8; 4096];
            loop {
                if let Err(e) = f.write_all(&block) {
                    assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
                    return;
                }
            }
        }
    }

    impl Drop for SmallDisk {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg(&self.0 .0)
                .status();
        }
    }

    /// A full disk: opening fails with a clear error; a store whose disk fills up
    /// while it runs stops recording, and lookups go on answering.
    #[test]
    #[ignore = "needs root (mounts a small tmpfs)"]
    fn a_full_disk_is_a_clear_error_and_never_a_failure_to_serve() {
        let disk = SmallDisk::mount("full", "4m");
        let dir = &disk.0 .0;
        let a = dir.join("a.bin");
        std::fs::write(&a, b"aaaa").unwrap();
        let store = TagStore::open(&dir.join("tags.redb")).unwrap();
        let (fp, etag) = record(&store, &a, &[]);
        store.flush();
        assert_eq!(store.stats().written, 1);
        disk.fill();

        let e = TagStore::open(&dir.join("other.redb")).unwrap_err();
        assert!(
            matches!(&e, TagStoreError::Io { source, .. } if source.raw_os_error() == Some(libc::ENOSPC)),
            "{e:?}"
        );
        assert!(e.to_string().contains("the disk is full"), "{e}");

        let long = dir.join("x".repeat(200));
        for i in 0..20_000u64 {
            let fp = Fingerprint {
                dev: 7,
                ino: i,
                size: i,
                mtime_ns: 1,
                ctime_ns: 1,
            };
            store.record(&fp, &long, &etag, &[&sha512(1)]);
        }
        store.flush();
        let stats = store.stats();
        assert!(stats.dropped > 0, "{stats:?}");
        // What was committed before is still answered (or, if redb refuses to read
        // after the failed write, nothing): never an error to the caller.
        if let Some(t) = store.lookup(&fp) {
            assert_eq!(t.etag, etag);
        }
        // Later records are dropped at once.
        let before = store.stats().dropped;
        store.record(&fp, &a, &etag, &[]);
        assert_eq!(store.stats().dropped, before + 1);
        drop(store);
    }

    #[test]
    fn records_round_trip_and_bad_bytes_do_not_decode() {
        let r = Record {
            etag: EntityTag::from_content(b"x"),
            digests: vec![
                (DigestAlgorithm::Sha512, Box::from(&[1u8; 64][..])),
                (DigestAlgorithm::Sha256, Box::from(&[2u8; 32][..])),
            ],
            path: PathBuf::from("/srv/a b/ü.iso"),
        };
        let bytes = r.encode();
        assert_eq!(Record::decode(&bytes), Some(r.clone()));
        let weak = Record {
            etag: EntityTag::new(true, "w").unwrap(),
            digests: vec![],
            path: PathBuf::new(),
        };
        assert_eq!(Record::decode(&weak.encode()), Some(weak));
        let tag_len = r.etag.tag().len();
        let mut two_sha512 = bytes.clone();
        two_sha512[3 + tag_len + 65] = 2;
        for (what, bad) in [
            ("empty", vec![]),
            ("flags", [&[2u8][..], &bytes[1..]].concat()),
            ("tag cut", bytes[..4].to_vec()),
            ("quote in tag", [&[0, 1, b'"'][..], &bytes[3..]].concat()),
            ("digest cut", bytes[..3 + tag_len + 1 + 30].to_vec()),
            ("unknown algorithm", {
                let mut b = bytes.clone();
                b[3 + tag_len] = 7;
                b
            }),
            ("algorithm twice", two_sha512),
        ] {
            assert_eq!(Record::decode(&bad), None, "{what}");
        }
    }

    #[test]
    fn keys_hold_the_whole_fingerprint() {
        let base = Fingerprint {
            dev: 1,
            ino: 2,
            size: 3,
            mtime_ns: -4,
            ctime_ns: 5,
        };
        let variants = [
            Fingerprint { dev: 9, ..base },
            Fingerprint { ino: 9, ..base },
            Fingerprint { size: 9, ..base },
            Fingerprint {
                mtime_ns: 4,
                ..base
            },
            Fingerprint {
                ctime_ns: 6,
                ..base
            },
        ];
        let (lo, hi) = inode_range(&encode_key(&base));
        for v in variants {
            assert_ne!(encode_key(&v), encode_key(&base), "{v:?}");
            let same_inode = (v.dev, v.ino) == (base.dev, base.ino);
            let k = encode_key(&v);
            assert_eq!(lo <= k && k <= hi, same_inode, "{v:?}");
        }
    }
}
