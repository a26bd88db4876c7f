//! Resource bounds: 3000 distinct files requested one after another leave open file
//! descriptors and mappings under the configured bound.

use rocket_mmap::cache::{Cache, CacheConfig};

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

/// Mappings of this process, from /proc/self/maps, that point into `dir`.
fn mappings_under(dir: &std::path::Path) -> usize {
    let maps = std::fs::read_to_string("/proc/self/maps").expect("/proc/self/maps");
    let needle = dir.to_string_lossy().into_owned();
    maps.lines().filter(|l| l.contains(&needle)).count()
}

#[tokio::test]
async fn three_thousand_files_stay_under_the_bounds() {
    let dir = std::env::temp_dir().join(format!("rocket-mmap-bounds-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..3000 {
        std::fs::write(
            dir.join(format!("f{i:04}.txt")),
            format!("file number {i}\n"),
        )
        .unwrap();
    }
    let bound = 256;
    let cache = Cache::new(CacheConfig {
        max_entries: bound,
        ..CacheConfig::default()
    });
    let fds_before = open_fds();
    for i in 0..3000 {
        let e = cache.get(&dir.join(format!("f{i:04}.txt"))).await.unwrap();
        assert_eq!(
            e.content().as_ref(),
            format!("file number {i}\n").as_bytes()
        );
        assert!(cache.stats().entries <= bound);
    }
    let stats = cache.stats();
    println!("{stats:?}; fds before {fds_before}, after {}", open_fds());
    assert_eq!(stats.loads, 3000);
    assert!(stats.evictions >= 3000 - bound as u64);
    // No descriptor is kept once a file is mapped.
    assert!(
        open_fds() <= fds_before + 2,
        "fds grew: {fds_before} → {}",
        open_fds()
    );
    // Mappings: the live entries only (evicted ones are unmapped at once).
    let maps = mappings_under(&dir);
    assert!(maps <= bound, "{maps} mappings of {bound} allowed");
    drop(cache);
    assert_eq!(
        mappings_under(&dir),
        0,
        "dropping the cache unmaps everything"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
