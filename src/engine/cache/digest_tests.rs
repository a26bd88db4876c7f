//! The digests of entries (`engine::digest`), tested through the entries and the cache
//! that hold them: kept here so that `digest.rs` imports neither (no import cycle).

use crate::engine::entry::Entry;
use crate::engine::test_support::TempDir;
use crate::semantics::digest::DigestAlgorithm;
use std::sync::Arc;
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
fn sha256(bytes: &[u8]) -> Vec<u8> {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).to_vec()
}

#[tokio::test]
async fn truncated_under_the_mapping_gives_no_digest_of_zeros() {
    use crate::engine::cache::{Cache, CacheConfig, Revalidate};
    let d = TempDir::new("digest-trunc");
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
    let d = TempDir::new("digest-trunc-last");
    // Mapped: over 64 KiB (a smaller file is read into memory, and nothing can
    // change its bytes).
    let p = d.write("f.bin", &[9u8; 66_000]);
    let cache = Cache::new(CacheConfig {
        revalidate: Revalidate::Never,
        ..CacheConfig::default()
    });
    let e = cache.get(&p).await.unwrap();
    // No fault: the rest of the last page reads as zeros. The sentinel tells.
    std::fs::File::options()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(65_600)
        .unwrap();
    assert!(e.digest(Sha256).await.is_none());
    assert!(e.is_poisoned());
}

#[tokio::test]
async fn rewritten_in_place_gives_no_digest_and_the_new_version_its_own() {
    use crate::engine::cache::Cache;
    use std::os::unix::fs::FileExt;
    let d = TempDir::new("digest-rewrite");
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
    let d = TempDir::new("digest-rename");
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
    let d = TempDir::new("digest-at-load");
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
    assert_eq!(
        cache.stats().digests_computed,
        2,
        "counted in the cache's stats"
    );
}

#[tokio::test]
async fn digests_computed_are_counted_once_per_hash() {
    use crate::engine::cache::Cache;
    let d = TempDir::new("digest-count-digests");
    let p = d.write("f.bin", b"count me");
    let cache = Cache::default();
    let e = cache.get(&p).await.unwrap();
    assert_eq!(cache.stats().digests_computed, 0);
    e.digest(Sha256).await.expect("a digest");
    e.digest(Sha256).await.expect("the same digest");
    assert_eq!(cache.stats().digests_computed, 1);
    cache.get(&p).await.unwrap().digest(Sha512).await.unwrap();
    assert_eq!(cache.stats().digests_computed, 2);
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
