//! Integrity digests (SHA-256, SHA-512) of an entry's content: facts of one version of
//! a file, like its ETag.
//!
//! * **Once per entry and algorithm**, kept in the [`Entry`](crate::cache::Entry) (a cell per
//!   algorithm). A changed file is a new entry (the cache's change detection), so a
//!   digest can never outlive the version it describes.
//! * **Off the async workers**: hashing runs on a blocking pool (a file entry's on the
//!   background pool, at low priority: `engine::background`). It is a detached task: a
//!   request that stops waiting (client gone) does not waste it; the result is kept
//!   for the next request. A file entry's digests wait for a permit of the cache's
//!   bound on hashes, which they share with the ETags' hashes
//!   ([`CacheConfig::max_background_hashes`](crate::cache::CacheConfig::max_background_hashes)).
//! * **Single flight**: however many requests ask at once, one task hashes; the others
//!   wait for its notification ([`Entry::digest_computations`](crate::cache::Entry::digest_computations)
//!   counts the hashes, for tests and monitoring).
//! * **Never a digest of zeros or of a mix of versions**: after hashing a mapping, the
//!   task checks the SIGBUS guard's poison flag, the last page's sentinel, and (unless
//!   `revalidate = "never"`) that the file was not modified in place since the entry
//!   was loaded — as the load does for the ETag and a body does before its last bytes.
//!   If any check fails the digest is dropped and the entry is poisoned, so the cache
//!   loads the file afresh.
//! * Without the `digest` cargo feature nothing is ever hashed: every digest is `None`.
//!
//! The SHA code is the `sha2` crate's (0.10): on x86-64 it detects SHA-NI at run time
//! (`cpufeatures`) and uses the `sha256rnds2` instructions for SHA-256 (1.75 GB/s of
//! CPU here); SHA-512 has no such instructions and uses AVX2 where the CPU has it
//! (0.59 GB/s). Its `asm` feature would only replace the fallback for CPUs without
//! SHA-NI, at the price of a C toolchain at build time, so it is not enabled. The
//! engine bench reports both beside CRC-64 and `memcpy`.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use tokio::sync::Notify;

use crate::engine::mapping::MappingWatch;
use crate::engine::stats::Counters;
use crate::engine::tag::{HashLimit, Lane};
use crate::semantics::digest::{digest_value, repr_digest_value, DigestAlgorithm};

/// Whether this build can compute digests (the `digest` cargo feature).
pub const DIGESTS_AVAILABLE: bool = cfg!(feature = "digest");

/// Content up to this size is hashed where the digest is asked for, on the async task
/// (SHA-512 of 64 KiB: ~0.1 ms); larger content on the blocking pool.
pub(crate) const INLINE_MAX: usize = 64 << 10;

/// One digest of an entry's content, with its field values formatted once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReprDigest {
    algorithm: DigestAlgorithm,
    bytes: Box<[u8]>,
    repr_digest: String,
    digest: String,
}

impl ReprDigest {
    fn new(algorithm: DigestAlgorithm, bytes: Box<[u8]>) -> ReprDigest {
        ReprDigest {
            repr_digest: repr_digest_value(algorithm, &bytes),
            digest: digest_value(algorithm, &bytes),
            algorithm,
            bytes,
        }
    }

    /// A digest computed earlier (kept in the tag memo or the tag store), from its
    /// algorithm and raw bytes; `None` unless `bytes` has the algorithm's length.
    pub(crate) fn from_stored(algorithm: DigestAlgorithm, bytes: &[u8]) -> Option<ReprDigest> {
        (bytes.len() == algorithm.output_len()).then(|| ReprDigest::new(algorithm, bytes.into()))
    }

    /// The algorithm.
    pub fn algorithm(&self) -> DigestAlgorithm {
        self.algorithm
    }

    /// The raw digest (32 or 64 bytes).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The `Repr-Digest` field value (RFC 9530 §3), e.g. `sha-256=:…:`.
    pub fn repr_digest_value(&self) -> &str {
        &self.repr_digest
    }

    /// The `Digest` field value (RFC 3230 §4.3.2), e.g. `SHA-256=…`.
    pub fn digest_value(&self) -> &str {
        &self.digest
    }
}

/// The digests of one entry: a cell per algorithm, filled at most once.
#[derive(Debug, Default)]
pub(crate) struct Digests {
    slots: [DigestSlot; 2],
    computations: AtomicU32,
    /// The counters of the cache that loaded the entry, if any (`digests_computed`).
    counters: OnceLock<Arc<Counters>>,
    /// Told of every digest computed (the tag store records it), if set.
    computed: OnceLock<OnComputed>,
}

/// What [`Digests::on_computed`] calls with each digest computed.
pub(crate) struct OnComputed(pub(crate) Box<dyn Fn(&ReprDigest) + Send + Sync>);

impl std::fmt::Debug for OnComputed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnComputed")
    }
}

#[derive(Debug, Default)]
struct DigestSlot {
    value: OnceLock<ReprDigest>,
    /// A hashing task is running for this slot.
    running: AtomicBool,
    /// Notified (all waiters) when a task ends, with or without a value.
    done: Notify,
}

/// The content an entry's digests are computed over, and its mapping's watch.
#[derive(Clone, Copy)]
pub(crate) struct Source<'a> {
    pub(crate) content: &'a Bytes,
    pub(crate) watch: Option<&'a Arc<MappingWatch>>,
    /// The cache's bound on hashes running at once (file entries), shared with the
    /// tags' hashes.
    pub(crate) limit: Option<&'a HashLimit>,
}

impl Digests {
    /// The digest, if it is computed.
    pub(crate) fn ready(&self, algorithm: DigestAlgorithm) -> Option<&ReprDigest> {
        self.slots[algorithm.index()].value.get()
    }

    /// Fills the cell with a digest known from an earlier run of this file version (the
    /// tag store), so that nothing is hashed for it; a cell already filled is kept.
    pub(crate) fn restore(&self, digest: ReprDigest) {
        let _ = self.slots[digest.algorithm.index()].value.set(digest);
    }

    /// Calls `f` with every digest computed from now on (once per algorithm).
    pub(crate) fn on_computed(&self, f: OnComputed) {
        let _ = self.computed.set(f);
    }

    /// Counts every later computation in `counters` too (the cache's).
    pub(crate) fn count_in(&self, counters: &Arc<Counters>) {
        let _ = self.counters.set(Arc::clone(counters));
    }

    fn counted(&self) {
        self.computations.fetch_add(1, Ordering::Relaxed);
        if let Some(c) = self.counters.get() {
            c.digests_computed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// How many times content was hashed for these digests.
    pub(crate) fn computations(&self) -> u32 {
        self.computations.load(Ordering::Relaxed)
    }

    /// Starts hashing on the blocking pool unless the digest is computed or being
    /// computed. Outside a tokio runtime, hashes on the calling thread.
    pub(crate) fn start(self: &Arc<Self>, algorithm: DigestAlgorithm, src: Source<'_>) {
        let slot = &self.slots[algorithm.index()];
        if !DIGESTS_AVAILABLE
            || slot.value.get().is_some()
            || slot.running.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let me = Arc::clone(self);
        let content = src.content.clone();
        let watch = src.watch.cloned();
        let limit = src.limit.cloned();
        let job = move || {
            // Nobody waits for a digest started here: it gives way to downloads.
            let give_way = || {
                if let Some(l) = &limit {
                    l.give_way(&AtomicBool::new(false));
                }
            };
            me.run(algorithm, &content, watch.as_deref(), &give_way)
        };
        match (tokio::runtime::Handle::try_current(), src.limit) {
            // Detached: the digest is kept even if every waiter has gone. A file's
            // waits for a permit of the cache's bound on hashes.
            (Ok(handle), Some(limit)) => limit.spawn(Lane::Background, &handle, job),
            (Ok(handle), None) => drop(handle.spawn_blocking(job)),
            (Err(_), _) => job(),
        }
    }

    /// Waits for the digest, starting its computation if needed (single flight).
    /// Content of at most [`INLINE_MAX`] bytes is hashed on the calling task (cheaper
    /// than a trip to the blocking pool). `None` if it cannot be computed: the content
    /// changed under the mapping, or the build has no `digest` feature.
    pub(crate) async fn wait(
        self: &Arc<Self>,
        algorithm: DigestAlgorithm,
        src: Source<'_>,
    ) -> Option<&ReprDigest> {
        let slot = &self.slots[algorithm.index()];
        if let Some(d) = slot.value.get() {
            return Some(d);
        }
        if !DIGESTS_AVAILABLE {
            return None;
        }
        if src.content.len() <= INLINE_MAX && !slot.running.swap(true, Ordering::AcqRel) {
            self.run(algorithm, src.content, src.watch.map(|w| &**w), &|| {});
            return slot.value.get();
        }
        let notified = slot.done.notified();
        tokio::pin!(notified);
        // Registered before the checks below, so a task ending in between still wakes us.
        notified.as_mut().enable();
        if slot.value.get().is_none() {
            self.start(algorithm, src);
            notified.await;
        }
        slot.value.get()
    }

    /// Computes the digest on the calling thread unless it is already known. If another
    /// thread is hashing it right now, hashes too rather than block on it (only start-up
    /// warming and loading call this, before the entry is shared).
    pub(crate) fn compute_blocking(
        &self,
        algorithm: DigestAlgorithm,
        src: Source<'_>,
    ) -> Option<&ReprDigest> {
        let slot = &self.slots[algorithm.index()];
        if let Some(d) = slot.value.get() {
            return Some(d);
        }
        if !DIGESTS_AVAILABLE {
            return None;
        }
        let watch = src.watch.map(|w| &**w);
        if !slot.running.swap(true, Ordering::AcqRel) {
            self.run(algorithm, src.content, watch, &|| {});
        } else {
            self.counted();
            if let Some(d) = compute(algorithm, src.content, watch, &|| {}) {
                self.publish(algorithm, d);
            }
        }
        slot.value.get()
    }

    /// Computes a digest (`between()` runs before each window of content: a
    /// background computation gives way to downloads there), publishes it, and wakes
    /// the waiters.
    fn run(
        &self,
        algorithm: DigestAlgorithm,
        content: &Bytes,
        watch: Option<&MappingWatch>,
        between: &dyn Fn(),
    ) {
        let slot = &self.slots[algorithm.index()];
        self.counted();
        if let Some(d) = compute(algorithm, content, watch, between) {
            self.publish(algorithm, d);
        }
        slot.running.store(false, Ordering::Release);
        slot.done.notify_waiters();
    }

    /// Sets the digest (once) and tells the `on_computed` hook.
    fn publish(&self, algorithm: DigestAlgorithm, digest: ReprDigest) {
        let slot = &self.slots[algorithm.index()];
        if slot.value.set(digest).is_ok() {
            if let (Some(f), Some(d)) = (self.computed.get(), slot.value.get()) {
                (f.0)(d);
            }
        }
    }
}

/// Hashes `content`; `None` if the bytes hashed may not be the file's version the
/// entry describes (see the module docs), or without the `digest` feature.
fn compute(
    algorithm: DigestAlgorithm,
    content: &[u8],
    watch: Option<&MappingWatch>,
    between: &dyn Fn(),
) -> Option<ReprDigest> {
    if watch.is_some_and(MappingWatch::is_poisoned) {
        return None;
    }
    let bytes = hash(algorithm, content, between)?;
    if let Some(w) = watch {
        // A shrink inside the last page reads as zeros without a fault: the sentinel.
        w.verify_through(content.len());
        // Rewritten in place since the load (the kernel moves the mtime before it
        // copies a write's data, so any byte hashed from a write shows here).
        w.verify_unmodified();
        // Checked last: a fault during hashing set it before the zero page was read.
        if w.is_poisoned() {
            return None;
        }
    }
    Some(ReprDigest::new(algorithm, bytes))
}

/// The digest of `content`, read `HASH_WINDOW` (`engine::tag`) at a time with `between()` before
/// each window.
#[cfg(feature = "digest")]
fn hash(algorithm: DigestAlgorithm, content: &[u8], between: &dyn Fn()) -> Option<Box<[u8]>> {
    fn windows<D: sha2::Digest>(content: &[u8], between: &dyn Fn()) -> Box<[u8]> {
        let mut d = D::new();
        for window in content.chunks(crate::engine::tag::HASH_WINDOW) {
            between();
            crate::engine::mapping::read_in(window);
            d.update(window);
        }
        Box::from(d.finalize().as_slice())
    }
    Some(match algorithm {
        DigestAlgorithm::Sha256 => windows::<sha2::Sha256>(content, between),
        DigestAlgorithm::Sha512 => windows::<sha2::Sha512>(content, between),
    })
}

#[cfg(not(feature = "digest"))]
fn hash(_: DigestAlgorithm, _: &[u8], _: &dyn Fn()) -> Option<Box<[u8]>> {
    None
}
