//! The tag store (`engine::tag_store`) through the cache: a known version is answered
//! with its tag and digests without being read, and a changed one is hashed anew.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::engine::cache::{Cache, CacheConfig};
use crate::engine::tag_store::{TagStore, TagStoreError};
use crate::engine::test_support::TempDir;
use crate::semantics::digest::DigestAlgorithm;
use crate::semantics::etag::EntityTag;

/// A cache over the store, with no background hashing: a tag it knows at once can
/// only have come from the store. Retries while the previous store's writer
/// thread still holds the file (it is joined when its last user drops it).
fn cache_over(store: &Path) -> Cache {
    let deadline = Instant::now() + Duration::from_secs(5);
    let store = loop {
        match TagStore::open(store) {
            Ok(s) => break s,
            Err(TagStoreError::Locked { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("{e}"),
        }
    };
    Cache::new(CacheConfig {
        max_background_hashes: 0,
        ..CacheConfig::default()
    })
    .with_tag_store(store)
}

/// The store wired into the cache: after a restart an unchanged file is answered
/// with its tag and digests at once, and nothing is hashed; a rewrite that keeps
/// the size and restores the mtime (`touch -d`) moved the ctime, so it is hashed
/// anew and never gets the old tag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_with_a_store_reuses_tags_after_a_restart() {
    let d = TempDir::new("store-restart");
    // Larger than HASH_AT_LOAD_MAX, so its load does not hash it.
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 241) as u8).collect();
    let a = d.write("a.bin", &big);
    let (tag, sha) = {
        let cache = cache_over(&d.0.join("state/tags.redb"));
        let e = cache.get(&a).await.unwrap();
        assert!(
            e.etag().is_none(),
            "hashed only when a response needs the tag"
        );
        let tag = e.strong_etag().await.unwrap().clone();
        let sha = if crate::engine::digest::DIGESTS_AVAILABLE {
            e.digest(DigestAlgorithm::Sha256).await.cloned()
        } else {
            None
        };
        (tag, sha)
    };
    let cache = cache_over(&d.0.join("state/tags.redb"));
    let e = cache.get(&a).await.unwrap();
    assert_eq!(e.etag(), Some(&tag), "the tag comes from the store");
    assert_eq!(e.ready_digest(DigestAlgorithm::Sha256).cloned(), sha);
    assert_eq!(e.digest_computations(), 0);
    drop(e);
    drop(cache);

    let mtime = std::fs::metadata(&a).unwrap().modified().unwrap();
    let mut other = big.clone();
    other[100_000] ^= 0xff;
    std::fs::write(&a, &other).unwrap();
    File::options()
        .write(true)
        .open(&a)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    assert_eq!(std::fs::metadata(&a).unwrap().modified().unwrap(), mtime);
    let cache = cache_over(&d.0.join("state/tags.redb"));
    let e = cache.get(&a).await.unwrap();
    assert!(e.etag().is_none(), "another version is not recalled");
    assert_eq!(
        e.strong_etag().await,
        Some(&EntityTag::from_content(&other))
    );
}

/// Warming (`get_blocking`, as `--warm` does) over files the store knows reads
/// none of their content: with their pages evicted first, only the last page (the
/// truncation sentinel) is back in memory afterwards.
#[cfg(target_os = "linux")]
#[test]
fn warming_a_known_library_reads_no_content() {
    let d = TempDir::new("store-warm");
    let files: Vec<PathBuf> = (0..4)
        .map(|i| d.write(&format!("f{i}.bin"), &vec![i as u8 + 1; 300_000]))
        .collect();
    let tags: Vec<EntityTag> = {
        let cache = cache_over(&d.0.join("state/tags.redb"));
        files
            .iter()
            .map(|f| {
                let e = cache.get_blocking(f).unwrap();
                e.watch().unwrap().page_out(f);
                e.etag().unwrap().clone()
            })
            .collect()
    };
    let cache = cache_over(&d.0.join("state/tags.redb"));
    for (f, tag) in files.iter().zip(&tags) {
        let e = cache.get_blocking(f).unwrap();
        assert_eq!(e.etag(), Some(tag));
        let watch = e.watch().unwrap();
        assert_eq!(
            watch.resident_until(0, 300_000),
            0,
            "{f:?} was read to be hashed"
        );
    }
}
