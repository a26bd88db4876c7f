//! The tags of file entries (`engine::tag`) through the cache: served before their
//! hash, hashed in the background, bounded, and never published for another version.

use super::*;
use crate::engine::tag::{HASH_AT_LOAD_MAX, SETTLE};
use crate::engine::test_support::TempDir;
use crate::semantics::etag::EntityTag;
use std::os::unix::fs::FileExt;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// Larger than [`HASH_AT_LOAD_MAX`]: not hashed while loaded.
const LARGE: usize = 1 << 20;

fn content(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Holds every hash permit of `cache`, in both lanes: hashes queue until the guard
/// is dropped.
async fn hold_hashes(cache: &Cache) -> Vec<tokio::sync::OwnedSemaphorePermit> {
    let n = cache.config().max_background_hashes.max(1) as u32;
    let mut held = Vec::new();
    for lane in cache.hash_limit().lanes() {
        held.push(lane.clone().acquire_many_owned(n).await.unwrap());
    }
    held
}

/// Holds the background lane only.
async fn hold_background(cache: &Cache) -> tokio::sync::OwnedSemaphorePermit {
    let n = cache.config().max_background_hashes.max(1) as u32;
    let [background, _] = cache.hash_limit().lanes();
    background.clone().acquire_many_owned(n).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_file_is_served_before_its_hash_and_tagged_after() {
    assert!(LARGE as u64 > HASH_AT_LOAD_MAX);
    let d = TempDir::new("tag-later");
    let bytes = content(LARGE, 1);
    let p = d.write("f.bin", &bytes);
    let cache = Cache::default();
    let held = hold_hashes(&cache).await;
    let e = cache.get(&p).await.unwrap();
    assert_eq!(e.etag(), None, "served before its hash");
    assert_eq!(e.etag_header(), None);
    assert_eq!(e.content().as_ref(), &bytes[..], "the content is there");
    assert!(Arc::ptr_eq(&e, &cache.get(&p).await.unwrap()), "a hit");
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(e.etag(), None, "queued behind the bound");
    drop(held);
    let want = EntityTag::from_content(&bytes);
    assert_eq!(e.strong_etag().await, Some(&want));
    assert_eq!(e.etag(), Some(&want));
    assert_eq!(e.etag_header(), Some(want.to_string().as_str()));
    assert!(!e.is_poisoned());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_hash_runs_without_anyone_waiting() {
    let d = TempDir::new("tag-background");
    let bytes = content(LARGE, 2);
    let p = d.write("f.bin", &bytes);
    let cache = Cache::default();
    let e = cache.get(&p).await.unwrap();
    let start = Instant::now();
    while e.etag().is_none() {
        assert!(start.elapsed() < Duration::from_secs(10), "never hashed");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(e.etag(), Some(&EntityTag::from_content(&bytes)));
}

#[tokio::test]
async fn small_files_are_hashed_while_loaded() {
    let d = TempDir::new("tag-small");
    let bytes = content(HASH_AT_LOAD_MAX as usize, 3);
    let p = d.write("f.bin", &bytes);
    let cache = Cache::default();
    let _held = hold_hashes(&cache).await;
    let e = cache.get(&p).await.unwrap();
    assert_eq!(e.etag(), Some(&EntityTag::from_content(&bytes)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_background_hashes_a_file_is_hashed_only_when_asked() {
    let d = TempDir::new("tag-lazy");
    let bytes = content(LARGE, 4);
    let p = d.write("f.bin", &bytes);
    let cache = Cache::new(CacheConfig {
        max_background_hashes: 0,
        ..CacheConfig::default()
    });
    let e = cache.get(&p).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(e.etag(), None, "nobody asked");
    // Many waiters, one hash, one tag.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let e = e.clone();
        tasks.push(tokio::spawn(async move { e.strong_etag().await.cloned() }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), Some(EntityTag::from_content(&bytes)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewritten_before_its_hash_gets_no_tag_and_the_new_version_its_own() {
    let d = TempDir::new("tag-rewrite");
    let (v1, v2) = (content(LARGE, 5), content(LARGE, 6));
    let p = d.write("f.bin", &v1);
    let cache = Cache::default();
    let held = hold_hashes(&cache).await;
    let e1 = cache.get(&p).await.unwrap();
    // In place: same inode, same size; the mapping shows v2 from now on.
    std::fs::File::options()
        .write(true)
        .open(&p)
        .unwrap()
        .write_all_at(&v2, 0)
        .unwrap();
    drop(held);
    assert_eq!(e1.strong_etag().await, None, "no tag of v1 over v2's bytes");
    assert_eq!(e1.etag(), None);
    assert!(e1.etag_failed());
    assert!(e1.is_poisoned(), "the cache maps the file afresh");
    let e2 = cache.get(&p).await.unwrap();
    assert!(!Arc::ptr_eq(&e1, &e2));
    assert_eq!(e2.strong_etag().await, Some(&EntityTag::from_content(&v2)));
}

/// A writer alternates two versions in place while files are loaded and hashed:
/// every tag published is the tag of one whole version, never of a mix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewritten_while_hashed_never_gets_a_tag_of_mixed_content() {
    let d = TempDir::new("tag-race");
    let (v1, v2) = (content(4 * LARGE, 7), content(4 * LARGE, 8));
    let good = [EntityTag::from_content(&v1), EntityTag::from_content(&v2)];
    let p = d.write("f.bin", &v1);
    let stop = Arc::new(AtomicBool::new(false));
    // Mixed content that stood on disk unchanged for longer than `SETTLE` is, to any
    // server, a version like another (nothing tells it from one a writer meant): the
    // writer counts the times it was descheduled that long between its two halves, which
    // a machine under heavy load does, and only those excuse a tag of mixed content.
    let stalls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let writer = {
        let (p, stop, stalls) = (p.clone(), stop.clone(), stalls.clone());
        let (v1, v2) = (v1.clone(), v2.clone());
        std::thread::spawn(move || {
            let f = std::fs::File::options().write(true).open(&p).unwrap();
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                // Half of each version at a time: mixed content exists on disk.
                let v = if i.is_multiple_of(2) { &v2 } else { &v1 };
                let half = v.len() / 2;
                let first_half = Instant::now();
                f.write_all_at(&v[..half], 0).unwrap();
                std::thread::sleep(Duration::from_millis(1));
                if first_half.elapsed() > crate::engine::tag::SETTLE * 4 / 5 {
                    stalls.fetch_add(1, Ordering::Relaxed);
                }
                f.write_all_at(&v[half..], half as u64).unwrap();
                std::thread::sleep(Duration::from_millis(3));
                i += 1;
            }
        })
    };
    let cache = Cache::default();
    let (mut tagged, mut refused) = (0, 0);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        let Ok(e) = cache.get(&p).await else { continue };
        match e.strong_etag().await {
            Some(t) => {
                assert!(
                    good.contains(t) || stalls.load(Ordering::Relaxed) > 0,
                    "a tag of mixed content ({t}), though the writer never left mixed \
                     content standing for as long as SETTLE"
                );
                tagged += 1;
            }
            None => {
                assert!(e.is_poisoned());
                refused += 1;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(refused > 0, "the writer never hit a hash ({tagged} tagged)");
    // Once the writes stop, the file gets its tag.
    let e = cache.get(&p).await.unwrap();
    let t = e.strong_etag().await.cloned();
    let t = match t {
        Some(t) => t,
        None => cache
            .get(&p)
            .await
            .unwrap()
            .strong_etag()
            .await
            .cloned()
            .unwrap(),
    };
    assert!(good.contains(&t));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_blocking_hashes_an_entry_whose_hash_is_queued() {
    let d = TempDir::new("tag-blocking");
    let bytes = content(LARGE, 9);
    let p = d.write("f.bin", &bytes);
    let cache = Arc::new(Cache::default());
    let _held = hold_hashes(&cache).await;
    let e = cache.get(&p).await.unwrap();
    assert_eq!(e.etag(), None);
    let c = cache.clone();
    let q = p.clone();
    let warmed = tokio::task::spawn_blocking(move || c.get_blocking(&q).unwrap())
        .await
        .unwrap();
    assert!(Arc::ptr_eq(&e, &warmed), "the same entry, hashed in place");
    assert_eq!(e.etag(), Some(&EntityTag::from_content(&bytes)));
}

/// A response waiting for a tag does not queue behind the background hashes of
/// other files: with the background lane full, its hash runs in the awaited lane.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_awaited_tag_does_not_queue_behind_background_hashes() {
    let d = TempDir::new("tag-lanes");
    let bytes = content(LARGE, 12);
    let p = d.write("f.bin", &bytes);
    let cache = Cache::default();
    let held = hold_background(&cache).await;
    let e = cache.get(&p).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(e.etag(), None, "queued in the background lane");
    let tag = tokio::time::timeout(Duration::from_secs(10), e.strong_etag())
        .await
        .expect("hashed past the full background lane");
    assert_eq!(tag, Some(&EntityTag::from_content(&bytes)));
    // The background job, when its turn comes, finds nothing left to hash.
    drop(held);
    assert_eq!(e.etag(), Some(&EntityTag::from_content(&bytes)));
}

/// Truncated before its background hash: the hash reads pages past the new end (the
/// SIGBUS guard maps zeros there and sets the poison flag), so no tag of zeros is
/// published, the process lives, and the file as it is now gets its own tag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_before_its_hash_gets_no_tag_of_zeros() {
    let d = TempDir::new("tag-truncate");
    let bytes = content(LARGE, 13);
    let p = d.write("f.bin", &bytes);
    let cache = Cache::new(CacheConfig {
        // No end-of-body `stat`: only the guard and the hash's own checks can tell.
        revalidate: Revalidate::Never,
        ..CacheConfig::default()
    });
    let held = hold_hashes(&cache).await;
    let e = cache.get(&p).await.unwrap();
    std::fs::File::options()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(4096)
        .unwrap();
    drop(held);
    assert_eq!(e.strong_etag().await, None, "no tag over zeros");
    assert!(e.is_poisoned());
    let e2 = cache.get(&p).await.unwrap();
    assert_eq!(e2.len(), 4096);
    assert_eq!(
        e2.strong_etag().await,
        Some(&EntityTag::from_content(&bytes[..4096]))
    );
}

/// The tag memo (`engine::tag_memo`): a file evicted after its hash and loaded again
/// has its tag at load, with every hash permit held (nothing could hash it); a file
/// changed since gets no remembered tag; with `max_remembered_versions = 0` nothing is
/// remembered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evicted_file_loaded_again_keeps_its_tag_without_a_second_hash() {
    let d = TempDir::new("tag-memo");
    let bytes = content(LARGE, 9);
    let p = d.write("f.bin", &bytes);
    // Settled: a version changed moments ago is hashed twice, across the settle time.
    std::thread::sleep(SETTLE + Duration::from_millis(10));
    let want = EntityTag::from_content(&bytes);
    for (bound, remembered) in [
        (CacheConfig::default().max_remembered_versions, true),
        (0, false),
    ] {
        let cache = Cache::new(CacheConfig {
            max_remembered_versions: bound,
            ..CacheConfig::default()
        });
        let e = cache.get(&p).await.unwrap();
        assert_eq!(e.strong_etag().await, Some(&want));
        cache.invalidate(&p);
        let held = hold_hashes(&cache).await;
        let again = cache.get(&p).await.unwrap();
        assert!(!Arc::ptr_eq(&e, &again), "loaded anew");
        assert_eq!(again.etag().is_some(), remembered, "bound {bound}");
        if remembered {
            assert_eq!(again.etag(), Some(&want));
        }
        drop(held);
    }
    // Another version of the file: not the remembered tag.
    let cache = Cache::default();
    let e = cache.get(&p).await.unwrap();
    assert_eq!(e.strong_etag().await, Some(&want));
    let other = content(LARGE, 10);
    d.write("f.bin", &other);
    let held = hold_hashes(&cache).await;
    let changed = cache.get(&p).await.unwrap();
    assert_eq!(changed.etag(), None, "another version is not recalled");
    drop(held);
    assert_eq!(
        changed.strong_etag().await,
        Some(&EntityTag::from_content(&other))
    );
}
