//! Integrity digests (SHA-256, SHA-512) of an entry's content: facts of one version of
//! a file, like its ETag.
//!
//! * **Once per entry and algorithm**, kept in the [`Entry`](crate::Entry) (a cell per
//!   algorithm). A changed file is a new entry (the cache's change detection), so a
//!   digest can never outlive the version it describes.
//! * **Off the async workers**: hashing runs on tokio's blocking pool
//!   (`spawn_blocking`). It is a detached task: a request that stops waiting (client
//!   gone) does not waste it; the result is kept for the next request.
//! * **Single flight**: however many requests ask at once, one task hashes; the others
//!   wait for its notification ([`Entry::digest_computations`](crate::Entry::digest_computations)
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
    slots: [Slot; 2],
    computations: AtomicU32,
}

#[derive(Debug, Default)]
struct Slot {
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
}

impl Digests {
    /// The digest, if it is computed.
    pub(crate) fn ready(&self, algorithm: DigestAlgorithm) -> Option<&ReprDigest> {
        self.slots[algorithm.index()].value.get()
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
        let job = move || me.run(algorithm, &content, watch.as_deref());
        match tokio::runtime::Handle::try_current() {
            // Detached: the digest is kept even if every waiter has gone.
            Ok(handle) => drop(handle.spawn_blocking(job)),
            Err(_) => job(),
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
            self.run(algorithm, src.content, src.watch.map(|w| &**w));
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
            self.run(algorithm, src.content, watch);
        } else {
            self.computations.fetch_add(1, Ordering::Relaxed);
            if let Some(d) = compute(algorithm, src.content, watch) {
                let _ = slot.value.set(d);
            }
        }
        slot.value.get()
    }

    fn run(&self, algorithm: DigestAlgorithm, content: &Bytes, watch: Option<&MappingWatch>) {
        let slot = &self.slots[algorithm.index()];
        self.computations.fetch_add(1, Ordering::Relaxed);
        if let Some(d) = compute(algorithm, content, watch) {
            let _ = slot.value.set(d);
        }
        slot.running.store(false, Ordering::Release);
        slot.done.notify_waiters();
    }
}

/// Hashes `content`; `None` if the bytes hashed may not be the file's version the
/// entry describes (see the module docs), or without the `digest` feature.
fn compute(
    algorithm: DigestAlgorithm,
    content: &[u8],
    watch: Option<&MappingWatch>,
) -> Option<ReprDigest> {
    if watch.is_some_and(MappingWatch::is_poisoned) {
        return None;
    }
    let bytes = hash(algorithm, content)?;
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

#[cfg(feature = "digest")]
fn hash(algorithm: DigestAlgorithm, content: &[u8]) -> Option<Box<[u8]>> {
    use sha2::Digest as _;
    Some(match algorithm {
        DigestAlgorithm::Sha256 => Box::from(sha2::Sha256::digest(content).as_slice()),
        DigestAlgorithm::Sha512 => Box::from(sha2::Sha512::digest(content).as_slice()),
    })
}

#[cfg(not(feature = "digest"))]
fn hash(_: DigestAlgorithm, _: &[u8]) -> Option<Box<[u8]>> {
    None
}

#[cfg(all(test, feature = "digest"))]
mod tests {
    use super::*;
    use crate::engine::entry::Entry;
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
    struct Dir(std::path::PathBuf);

    impl Dir {
        fn new(name: &str) -> Dir {
            let p = std::env::temp_dir()
                .join(format!("rocket-mmap-digest-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
        fn write(&self, name: &str, bytes: &[u8]) -> std::path::PathBuf {
            let p = self.0.join(name);
            std::fs::write(&p, bytes).unwrap();
            p
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn sha256(bytes: &[u8]) -> Vec<u8> {
        use sha2::Digest as _;
        sha2::Sha256::digest(bytes).to_vec()
    }

    #[tokio::test]
    async fn truncated_under_the_mapping_gives_no_digest_of_zeros() {
        use crate::engine::cache::{Cache, CacheConfig, Revalidate};
        let d = Dir::new("trunc");
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
        let d = Dir::new("trunc-last");
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
        let d = Dir::new("rewrite");
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
        let d = Dir::new("rename");
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
        let d = Dir::new("at-load");
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
