//! The strong ETag of a file entry: the CRC-64 of its whole content, computed once per
//! version, **after** the entry is already being served.
//!
//! Loading a file is open, `fstat`, map, fingerprint: no byte of content is read
//! (small files excepted: see [`HASH_AT_LOAD_MAX`]). The entry is
//! served at once; its tag is a once-set value ([`TagCell`]) that the shell reads
//! under a validator policy (a response that does not need the tag goes out without
//! `ETag`; one that needs it waits for it: see `shell::plan::ValidatorPolicy`).
//!
//! * **In the background, bounded.** A file's hash runs on a blocking pool. At
//!   most [`CacheConfig::max_background_hashes`](crate::cache::CacheConfig::max_background_hashes)
//!   files are hashed at once in the background for the whole cache (a semaphore,
//!   [`HashLimit`]); the others queue. The digests of file entries (`engine::digest`)
//!   take their permits from the same semaphore. A response that waits for a tag
//!   whose hash has not started does not queue behind other files: its hash takes a
//!   second lane of as many permits (so at most twice the bound hash at once). With 0,
//!   no file is hashed unless a response needs its tag (those hashes then run one at a
//!   time).
//! * **Single flight.** One hash per entry, however many responses wait for it; a
//!   response that stops waiting (client gone) does not cancel it.
//! * **Only for entries still alive.** A queued hash holds no strong reference to its
//!   entry: an entry evicted (and no longer served) before its turn is never hashed.
//! * **No tag may ever describe another version.** The same checks a load made
//!   before the tag was published when loads hashed: the SIGBUS guard's poison flag,
//!   the file's fingerprint (`fstat` of the file opened at load, kept open until the
//!   hash ran) unchanged by the hash, and, for a file changed less than [`SETTLE`]
//!   ago, a second hash once the change has settled, which must agree with the first.
//!   If any check fails, the tag is never published and the entry is poisoned, so the
//!   cache maps the file afresh: the new version gets its own hash.
//! * **A file descriptor** stays open only while an entry's tag is pending (from the
//!   load to the end of its hash), so that the check above is the same `fstat` of the
//!   same open file a load made.
//!
//! * **At low priority, giving way.** Background hashes run on the background pool
//!   (`engine::background`, at nice 19) and pause between 2 MiB windows
//!   while the cache's fault-ins are queued or running ([`HashLimit::give_way`]), so a
//!   hash never takes the disk or the CPU from a download that waits.
//!
//! Not done: feeding the hash from a download that reads a file in order, so that the
//! disk reads those bytes once. The hash reads through the same page cache, so a
//! window a download brought in moments before costs it no disk read; what the feed
//! would save is the second read of a file whose pages left memory before its hash
//! got its turn (a library larger than memory, downloaded while it is being hashed).
//! It would tie the body, which must stay cheap and has no order to keep, to the
//! hash's sequential state and to its version checks above (the fingerprint around
//! the whole hash, the settle double-hash); we judged that not worth the risk to the
//! one rule that matters most here: no tag describes another version.
//!
//! In-memory entries ([`Entry::from_bytes`](crate::cache::Entry::from_bytes) and friends) are
//! hashed when they are made: their bytes are in memory.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{Notify, Semaphore};

use crate::engine::background;
use crate::engine::fingerprint::Fingerprint;
use crate::engine::mapping::MappingWatch;
use crate::semantics::digest::DigestAlgorithm;
use crate::semantics::etag::EntityTag;

/// Files of at most this many bytes are hashed while they are loaded, on the same
/// blocking thread, with the same checks: their first response carries the tag.
/// Reading them is one small read the body makes anyway (the hash leaves the pages in
/// the page cache), and hashing 64 KiB takes microseconds, so their first byte does
/// not wait for the disk longer than it would anyway. (A small file changed within
/// [`SETTLE`] is hashed twice, the second time once the change has settled: its first
/// response waits up to [`SETTLE`], as every load did before hashing moved to the
/// background.)
pub const HASH_AT_LOAD_MAX: u64 = 64 << 10;

/// How much content a hash reads between two calls to [`HashLimit::give_way`].
pub(crate) const HASH_WINDOW: usize = 2 << 20;

/// How long a background hash sleeps before it looks again whether downloads still
/// wait for the disk.
const GIVE_WAY_PAUSE: Duration = Duration::from_millis(5);

/// How long after its last change (ctime) a file is taken to be settled: a hash of a
/// file changed more recently than this is made twice, the second time once this much
/// time has passed since the change (at most this long a wait, paid once per version
/// of a file, by its hash).
pub const SETTLE: Duration = Duration::from_millis(50);

/// The tag and its `ETag` field value, made once.
#[derive(Debug)]
pub(crate) struct Tag {
    pub(crate) etag: EntityTag,
    pub(crate) header: String,
}

impl Tag {
    fn new(etag: EntityTag) -> Tag {
        Tag {
            header: etag.to_string(),
            etag,
        }
    }
}

/// How many files may be hashed at once (the whole cache shares one), in two lanes,
/// and whether hashes start in the background when files are loaded.
///
/// * The **background** lane: tags hashed because files were loaded, and digests.
/// * The **awaited** lane: the hash of a tag a response is waiting for, when it has
///   not started in the background yet. So a request that needs a tag never queues
///   behind the background hashes of other files (a crawler's plain GETs can load
///   hundreds); whichever lane gets to an entry first hashes it, once.
#[derive(Clone, Debug)]
pub(crate) struct HashLimit {
    permits: Arc<Semaphore>,
    awaited: Arc<Semaphore>,
    background: bool,
    /// Where tags are remembered (the tag memo, and the store behind it), and looked
    /// up before hashing.
    memory: Option<Arc<dyn Remember>>,
    /// Whether bodies are waiting for the disk now (fault-ins queued or running):
    /// background hashes give way to them (see [`HashLimit::give_way`]).
    readers_waiting: Option<ReadersWaiting>,
}

/// The test [`HashLimit::give_way`] asks: whether bodies wait for the disk now.
#[derive(Clone)]
struct ReadersWaiting(Arc<dyn Fn() -> bool + Send + Sync>);

impl std::fmt::Debug for ReadersWaiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReadersWaiting")
    }
}

/// What a cache remembers of file versions beyond their entries (the tag memo,
/// `engine::tag_memo`, and behind it the persistent tag store, `engine::tag_store`,
/// feature `tag-store`), keyed by a version's stat data: a load
/// asks it before it would hash, and every tag and digest is handed to it once
/// computed. Digests travel as `(algorithm, raw bytes)`.
///
/// The contract of [`Remember::remember`], git's "racy" rule: it is called only for
/// versions whose tag was published by [`hash_one_version`], that is, versions whose
/// change time was at least [`SETTLE`] old, or which a second hash after [`SETTLE`]
/// confirmed. Any later change to the file moves its change time past the recorded
/// one, so a recalled tag always describes the bytes the fingerprint now names.
pub(crate) trait Remember: Send + Sync + std::fmt::Debug {
    /// The tag and digests recorded for exactly this version (every fingerprint field
    /// equal), if any.
    fn recall(&self, fp: &Fingerprint) -> Option<Recalled>;
    /// Records a version's tag and the digests known so far (merged with those
    /// recorded before for the same tag). Must not block on I/O.
    fn remember(
        &self,
        fp: &Fingerprint,
        path: &Path,
        etag: &EntityTag,
        digests: &[(DigestAlgorithm, &[u8])],
    );
}

/// What [`Remember::recall`] found for a version.
#[derive(Debug)]
pub(crate) struct Recalled {
    /// The strong content tag.
    pub(crate) etag: EntityTag,
    /// The digests recorded: algorithm and raw bytes.
    pub(crate) digests: Vec<(DigestAlgorithm, Vec<u8>)>,
}

/// A lane of [`HashLimit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lane {
    Background,
    Awaited,
}

impl HashLimit {
    /// At most `max` hashes at once in each lane, started in the background; with 0,
    /// none in the background, and one at a time when a response needs a tag.
    pub(crate) fn new(max: usize) -> HashLimit {
        HashLimit {
            permits: Arc::new(Semaphore::new(max.max(1))),
            awaited: Arc::new(Semaphore::new(max.max(1))),
            background: max > 0,
            memory: None,
            readers_waiting: None,
        }
    }

    /// The same bound, whose background hashes give way while `readers_waiting()`
    /// (the cache's fault-ins are queued or running).
    pub(crate) fn giving_way_to(
        mut self,
        readers_waiting: impl Fn() -> bool + Send + Sync + 'static,
    ) -> HashLimit {
        self.readers_waiting = Some(ReadersWaiting(Arc::new(readers_waiting)));
        self
    }

    /// Called by a background hash between two windows of content: sleeps while bodies
    /// wait for the disk and no response waits for this hash (`awaited`), so that
    /// hashing never takes the disk from a download. A hash that a response waits for
    /// goes on at once.
    pub(crate) fn give_way(&self, awaited: &AtomicBool) {
        let Some(readers_waiting) = &self.readers_waiting else {
            return;
        };
        while !awaited.load(Ordering::Acquire) && (readers_waiting.0)() {
            std::thread::sleep(GIVE_WAY_PAUSE);
        }
    }

    /// The same bound, remembering tags in `memory` (see [`Remember`]).
    pub(crate) fn remembering(mut self, memory: Arc<dyn Remember>) -> HashLimit {
        self.memory = Some(memory);
        self
    }

    /// Where tags are remembered, if anywhere.
    pub(crate) fn memory(&self) -> Option<&Arc<dyn Remember>> {
        self.memory.as_ref()
    }

    /// Runs `job` once a permit of `lane` is free: a background hash on the background
    /// pool (`engine::background`), an awaited one on the blocking pool of `handle`'s
    /// runtime (detached: it runs even if no one waits for it any more).
    pub(crate) fn spawn(
        &self,
        lane: Lane,
        handle: &tokio::runtime::Handle,
        job: impl FnOnce() + Send + 'static,
    ) {
        let permits = match lane {
            Lane::Background => self.permits.clone(),
            Lane::Awaited => self.awaited.clone(),
        };
        let runtime = handle.clone();
        drop(handle.spawn(async move {
            let Ok(permit) = permits.acquire_owned().await else {
                return;
            };
            let job = move || {
                job();
                drop(permit);
            };
            // Background hashes yield the CPU (`engine::background`); a hash that a
            // response waits for runs at the caller's priority.
            let _ = match lane {
                Lane::Background => background::spawn_blocking(&runtime, job),
                Lane::Awaited => tokio::task::spawn_blocking(job),
            }
            .await;
        }));
    }

    /// The semaphores of the background and the awaited lanes (tests hold their
    /// permits to keep hashes queued).
    #[cfg(test)]
    pub(crate) fn lanes(&self) -> [&Arc<Semaphore>; 2] {
        [&self.permits, &self.awaited]
    }
}

/// What the hash of one file version needs, kept from its load until it ran.
#[derive(Debug)]
pub(crate) struct PendingTag {
    /// The file opened by the load (`fstat` before and after hashing).
    pub(crate) file: File,
    /// Its fingerprint at the load.
    pub(crate) fingerprint: Fingerprint,
    /// The whole mapping.
    pub(crate) content: Bytes,
    /// The SIGBUS guard's flag for the mapping.
    pub(crate) poison: Arc<AtomicBool>,
    /// The mapping's watch: a hash that finds the file modified poisons it as
    /// rewritten (a body cut by it counts as cut by a changed file).
    pub(crate) watch: Arc<MappingWatch>,
    /// The cache's bound on hashes (kept by the cell for the entry's digests too).
    pub(crate) limit: HashLimit,
    /// The path it was loaded from, for the tag store's record.
    pub(crate) path: PathBuf,
}

/// An entry's strong tag: set at most once, by the one hash of its version.
#[derive(Debug)]
pub(crate) struct TagCell {
    value: OnceLock<Tag>,
    /// The hash found the content changed: this entry never gets a tag.
    failed: AtomicBool,
    /// A hash was queued in the background lane.
    started: AtomicBool,
    /// A hash was queued in the awaited lane.
    awaited: AtomicBool,
    /// A response waits for this tag: its hash no longer gives way to downloads.
    waited_for: AtomicBool,
    /// Notified (all waiters) when the hash ends, with or without a tag.
    done: Notify,
    /// What the hash needs; taken by the one hash that runs.
    pending: Mutex<Option<PendingTag>>,
    /// The cache's bound on hashes (file entries).
    limit: Option<HashLimit>,
}

impl TagCell {
    /// A tag known already (in-memory content, or hashed at load).
    pub(crate) fn ready(etag: EntityTag) -> TagCell {
        let cell = TagCell::empty(None);
        let _ = cell.value.set(Tag::new(etag));
        cell
    }

    /// The cell of a file entry hashed already: its digests still take `limit`'s
    /// permits.
    pub(crate) fn with_limit(mut self, limit: &HashLimit) -> TagCell {
        self.limit = Some(limit.clone());
        self
    }

    /// A tag to be computed from `pending`.
    pub(crate) fn pending(pending: PendingTag) -> TagCell {
        TagCell::empty(Some(pending))
    }

    fn empty(pending: Option<PendingTag>) -> TagCell {
        TagCell {
            limit: pending.as_ref().map(|p| p.limit.clone()),
            value: OnceLock::new(),
            failed: AtomicBool::new(false),
            started: AtomicBool::new(false),
            awaited: AtomicBool::new(false),
            waited_for: AtomicBool::new(false),
            done: Notify::new(),
            pending: Mutex::new(pending),
        }
    }

    /// The tag, if it is computed (never waits).
    pub(crate) fn get(&self) -> Option<&Tag> {
        self.value.get()
    }

    /// Whether the hash found the content changed (no tag will ever be set).
    pub(crate) fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// Starts the hash in the background if the cache hashes in the background
    /// (see [`HashLimit::new`]).
    pub(crate) fn start_background(self: &Arc<Self>) {
        if self.limit.as_ref().is_some_and(|l| l.background) {
            self.start(Lane::Background);
        }
    }

    /// Queues the hash in `lane` (at most once per lane): it waits for a permit of that
    /// lane of the cache's [`HashLimit`], then runs on the blocking pool, unless the
    /// other lane's got to it first. Outside a tokio runtime, hashes on the calling
    /// thread.
    pub(crate) fn start(self: &Arc<Self>, lane: Lane) {
        let queued = match lane {
            Lane::Background => &self.started,
            Lane::Awaited => &self.awaited,
        };
        if self.value.get().is_some() || self.failed() || queued.swap(true, Ordering::AcqRel) {
            return;
        }
        let Some(limit) = &self.limit else {
            return;
        };
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            self.run();
            return;
        };
        let cell: Weak<TagCell> = Arc::downgrade(self);
        // Detached: the tag is kept even if every waiter has gone.
        limit.spawn(lane, &handle, move || {
            // Evicted and no longer served while it queued: nothing to hash for.
            if let Some(cell) = cell.upgrade() {
                cell.run();
            }
        });
    }

    /// The cache's bound on hashes, for the digests of the same entry (`None` for
    /// in-memory entries).
    pub(crate) fn hash_limit(&self) -> Option<&HashLimit> {
        self.limit.as_ref()
    }

    /// Waits for the tag, starting its hash if needed. `None` if the content changed
    /// while it was hashed (the entry is then poisoned).
    pub(crate) async fn wait(self: &Arc<Self>) -> Option<&Tag> {
        if let Some(t) = self.value.get() {
            return Some(t);
        }
        let notified = self.done.notified();
        tokio::pin!(notified);
        // Registered before the checks below, so a hash ending in between still wakes us.
        notified.as_mut().enable();
        if self.value.get().is_none() && !self.failed() {
            // A response waits: past the background queue (see `HashLimit`). A hash
            // already running keeps running, without giving way any more; this lane's
            // job then finds nothing to do.
            self.waited_for.store(true, Ordering::Release);
            let running = self.pending_taken();
            if !running {
                self.start(Lane::Awaited);
            }
            notified.await;
        }
        self.value.get()
    }

    /// Computes the tag on the calling thread unless it is known, or waits for the
    /// hash another thread is running. For start-up warming and synchronous callers,
    /// never on an async worker.
    pub(crate) fn compute_blocking(&self) -> Option<&Tag> {
        self.waited_for.store(true, Ordering::Release);
        self.run();
        // Another thread took the pending state and is hashing: wait for it.
        while self.value.get().is_none() && !self.failed() {
            std::thread::sleep(Duration::from_millis(1));
        }
        self.value.get()
    }

    /// Whether a hash has taken the pending state (is running, or has run).
    fn pending_taken(&self) -> bool {
        let pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.is_none()
    }

    /// The hash, if no one ran it yet: publishes the tag, or poisons the mapping.
    fn run(&self) {
        let taken = {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            pending.take()
        };
        let Some(p) = taken else {
            return;
        };
        let give_way = || p.limit.give_way(&self.waited_for);
        match hash_one_version(&p.file, &p.fingerprint, &p.content, &p.poison, &give_way) {
            Ok(Some((etag, settled))) => {
                if let Some(memory) = p.limit.memory() {
                    memory.remember(&settled, &p.path, &etag, &[]);
                }
                let _ = self.value.set(Tag::new(etag));
            }
            // Changed while hashed, or `fstat` failed: no tag for this entry, ever; the
            // cache maps the file afresh. Unless the SIGBUS guard poisoned the mapping
            // already (a truncation), the file was modified.
            Ok(None) | Err(_) => {
                if !p.poison.load(Ordering::SeqCst) {
                    p.watch.poison_rewritten();
                }
                self.failed.store(true, Ordering::Release);
            }
        }
        drop(p); // Closes the file.
        self.done.notify_waiters();
    }
}

/// Hashes `content`, the mapping of `file` made when its fingerprint was `loaded`,
/// and checks that the tag describes exactly that version: `Ok(None)` if the file was
/// truncated (a fault, or a shrink inside the last page that reads as zeros without
/// one) or written to while it was hashed (the kernel updates the mtime before it
/// copies a write's data). Otherwise the tag, and the file's fingerprint after it.
pub(crate) fn hash_one_version(
    file: &File,
    loaded: &Fingerprint,
    content: &[u8],
    poison: &AtomicBool,
    between: &dyn Fn(),
) -> std::io::Result<Option<(EntityTag, Fingerprint)>> {
    let etag = content_tag(content, between);
    let unchanged = || -> std::io::Result<Option<Fingerprint>> {
        let now = Fingerprint::of(&file.metadata()?);
        let intact = !poison.load(Ordering::SeqCst) && same_content_version(&now, loaded);
        Ok(intact.then_some(now))
    };
    let Some(still) = unchanged()? else {
        return Ok(None);
    };
    // Changed moments ago, or its ctime moved while hashing? A `write` already under
    // way when the fingerprint was taken updated the times before it began, so nothing
    // above would see it finish (the load waited for such writes with
    // `open::wait_for_writes`, on the file systems whose lock allows it); on kernels
    // with coarse timestamps a second write in the same tick leaves the fingerprint
    // unchanged; and a writer may have restored the mtime. Hash again once the change has settled: the tags and the versions
    // must agree. (The ctime alone is not compared: unlinking or renaming the file, or
    // a chmod, moves it without touching the content.)
    let wait = settle_wait(&still).or((still != *loaded).then_some(Duration::ZERO));
    let Some(wait) = wait else {
        return Ok(Some((etag, still)));
    };
    std::thread::sleep(wait);
    let again = content_tag(content, between);
    Ok(match unchanged()? {
        Some(after) if again == etag => Some((etag, after)),
        _ => None,
    })
}

/// [`EntityTag::from_content`], read [`HASH_WINDOW`] at a time with `between()` before
/// each window (a background hash gives way to downloads there); each window is read
/// in with one large request first (the mappings take no read-around on a fault).
fn content_tag(content: &[u8], between: &dyn Fn()) -> EntityTag {
    let mut digest = crc64fast::Digest::new();
    for window in content.chunks(HASH_WINDOW) {
        between();
        crate::engine::mapping::read_in(window);
        digest.write(window);
    }
    EntityTag::from_crc(digest.sum64(), content.len() as u64)
}

/// Whether two fingerprints of one open file describe the same content version: same
/// inode, size and mtime (the ctime also moves on chmod, link and unlink).
fn same_content_version(a: &Fingerprint, b: &Fingerprint) -> bool {
    (a.dev, a.ino, a.size, a.mtime_ns) == (b.dev, b.ino, b.size, b.mtime_ns)
}

/// [`SETTLE`] in nanoseconds, the unit of a [`Fingerprint`]'s times.
pub(crate) const SETTLE_NS: i128 = SETTLE.as_nanos() as i128;

/// Now, in nanoseconds since the Unix epoch: the clock a [`Fingerprint`]'s times are
/// read on.
pub(crate) fn now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

/// How long to wait before the second hash, if the file changed within [`SETTLE`].
fn settle_wait(fingerprint: &Fingerprint) -> Option<Duration> {
    let now = now_ns();
    let settled_at = fingerprint.ctime_ns + SETTLE_NS;
    (fingerprint.ctime_ns != 0 && settled_at > now)
        .then(|| Duration::from_nanos((settled_at - now).min(SETTLE_NS) as u64))
}

/// Whether the version `fingerprint` describes changed less than [`SETTLE`] ago. On a
/// file system whose timestamps are coarse (a clock tick), a writer that writes a
/// version in several calls within one tick leaves no trace in `stat` between them:
/// bytes read from such a version may still be changing, which only the settled
/// second hash of its tag can rule out.
pub(crate) fn changed_within_settle(fingerprint: &Fingerprint) -> bool {
    settle_wait(fingerprint).is_some()
}

/// Whether a file is hashed while it is loaded (see [`HASH_AT_LOAD_MAX`]).
pub(crate) fn hash_at_load(fingerprint: &Fingerprint) -> bool {
    fingerprint.size <= HASH_AT_LOAD_MAX
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// A background hash sleeps between windows while readers wait for the disk, and
    /// goes on at once when a response starts waiting for its tag, or when the
    /// readers are done.
    #[test]
    fn a_background_hash_gives_way_to_waiting_readers_unless_a_response_waits() {
        let readers = Arc::new(AtomicBool::new(true));
        let limit = HashLimit::new(2).giving_way_to({
            let readers = readers.clone();
            move || readers.load(Ordering::SeqCst)
        });
        for release in ["a response waits", "the readers are done"] {
            readers.store(true, Ordering::SeqCst);
            let awaited = Arc::new(AtomicBool::new(false));
            let (tx, rx) = mpsc::channel();
            let hasher = std::thread::spawn({
                let (limit, awaited) = (limit.clone(), awaited.clone());
                move || {
                    limit.give_way(&awaited);
                    tx.send(()).unwrap();
                }
            });
            assert!(
                rx.recv_timeout(Duration::from_millis(100)).is_err(),
                "went on while readers waited"
            );
            match release {
                "a response waits" => awaited.store(true, Ordering::SeqCst),
                _ => readers.store(false, Ordering::SeqCst),
            }
            rx.recv_timeout(Duration::from_secs(5))
                .unwrap_or_else(|_| panic!("still waiting after {release}"));
            hasher.join().unwrap();
        }
        // Nobody reading: no wait at all.
        readers.store(false, Ordering::SeqCst);
        limit.give_way(&AtomicBool::new(false));
    }

    /// The tag read window by window is the tag of the whole content.
    #[test]
    fn the_windowed_tag_is_the_content_tag() {
        let content: Vec<u8> = (0..HASH_WINDOW * 2 + 12_345)
            .map(|i| (i % 253) as u8)
            .collect();
        let windows = std::cell::Cell::new(0);
        let tag = content_tag(&content, &|| windows.set(windows.get() + 1));
        assert_eq!(tag, EntityTag::from_content(&content));
        assert_eq!(windows.get(), 3);
    }
}
