//! Small files read into memory: on the worker when nothing can block, on the blocking
//! pool otherwise, and kept by the cache under their own bounds.

use super::*;
use crate::engine::cache::{Cache, CacheConfig};
use crate::engine::test_support::TempDir;
use std::sync::Arc;
use std::time::Duration;

/// Past [`SETTLE`](crate::engine::tag::SETTLE): a file written just now is left to the
/// ordinary load, whose tag waits for the change to settle.
fn settled() {
    std::thread::sleep(Duration::from_millis(60));
}

fn limit() -> HashLimit {
    HashLimit::new(2)
}

#[test]
fn a_small_file_in_memory_is_read_here_with_its_tag() {
    let d = TempDir::canonical("small-here");
    let p = d.write("a.txt", b"123456789");
    settled();
    let mut opened = false;
    let Quick::Loaded(entry) = load_now(&p, &limit(), || opened = true).unwrap() else {
        panic!("not loaded in place");
    };
    assert!(opened);
    assert_eq!(entry.content().as_ref(), b"123456789");
    assert_eq!(entry.etag_header(), Some("\"995dc9bbdf1939fa-9\""));
    assert_eq!(entry.canonical_path(), Some(p.as_path()));
    assert!(!entry.is_mapped());
    assert!(entry.last_modified().is_some());
    assert_eq!(entry.content_type(), "text/plain; charset=utf-8");
}

#[test]
fn what_could_block_or_is_not_small_goes_to_the_blocking_pool() {
    let d = TempDir::canonical("small-not-here");
    let big = d.write("big.bin", &vec![1u8; SMALL_MAX as usize + 1]);
    let small = d.write("small.bin", &[2u8; 100]);
    std::os::unix::fs::symlink(&small, d.0.join("link.bin")).unwrap();
    settled();
    let blocking = |p: &Path| match load_now(p, &limit(), || {}).unwrap() {
        Quick::Blocking(why, fp) => (why, fp.is_some()),
        Quick::Loaded(_) => panic!("{} loaded in place", p.display()),
    };
    assert_eq!(blocking(&big), (Why::NotSmall, true));
    assert_eq!(blocking(&d.0.join("link.bin")), (Why::Link, false));
    // Not in normal form: its canonical path is not itself.
    let dotted = d.0.join(".").join("small.bin");
    assert_eq!(blocking(&dotted), (Why::Link, false));
    assert_eq!(
        blocking(Path::new("relative/small.bin")),
        (Why::Link, false)
    );
    // Changed just now: the ordinary load waits for the change to settle.
    let fresh = d.write("fresh.bin", &[3u8; 10]);
    assert_eq!(blocking(&fresh), (Why::NotSmall, true));
}

#[test]
fn pages_not_in_memory_go_to_the_blocking_pool() {
    let d = TempDir::canonical("small-cold");
    let p = d.write("cold.bin", &[4u8; 40 << 10]);
    let file = File::open(&p).unwrap();
    file.sync_all().unwrap();
    settled();
    rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed).unwrap();
    match load_now(&p, &limit(), || {}).unwrap() {
        Quick::Blocking(why, fp) => {
            assert_eq!(why, Why::ColdData);
            assert_eq!(fp.map(|f| f.size), Some(40 << 10));
        }
        Quick::Loaded(_) => panic!("read pages that were not in memory on the worker"),
    }
}

#[test]
fn answers_the_file_system_gives_at_once_are_errors() {
    let d = TempDir::canonical("small-errors");
    // Looked up once: the dentry cache now knows it does not exist.
    assert!(std::fs::metadata(d.0.join("missing")).is_err());
    assert!(matches!(
        load_now(&d.0.join("missing"), &limit(), || {}),
        Err(CacheError::NotFound)
    ));
    assert!(matches!(
        load_now(&d.0, &limit(), || {}),
        Err(CacheError::IsDirectory)
    ));
}

#[test]
fn plain_absolute_paths() {
    for (path, plain) in [
        ("/a/b.txt", true),
        ("/a", true),
        ("/", false),
        ("a/b", false),
        ("/a//b", false),
        ("/a/./b", false),
        ("/a/../b", false),
        ("/a/b/", false),
        ("/a/.b", true),
        ("/a/..b", true),
    ] {
        assert_eq!(is_plain_absolute(Path::new(path)), plain, "{path}");
    }
}

#[tokio::test]
async fn the_cache_keeps_small_files_in_memory_and_bounds_them_by_memory() {
    let d = TempDir::canonical("small-cache");
    let names: Vec<String> = (0..8).map(|i| format!("f{i}.bin")).collect();
    for (i, n) in names.iter().enumerate() {
        d.write(n, &vec![i as u8; 32 << 10]);
    }
    let big = d.write("big.bin", &vec![9u8; 1 << 20]);
    settled();
    // Room for about four small files and their entries.
    let cache = Cache::new(CacheConfig {
        max_memory: 4 * ((32 << 10) + 1024 + 200),
        ..CacheConfig::default()
    });
    let first = cache.get(&d.0.join(&names[0])).await.unwrap();
    assert!(!first.is_mapped());
    assert_eq!(first.content().len(), 32 << 10);
    let again = cache.get(&d.0.join(&names[0])).await.unwrap();
    assert!(Arc::ptr_eq(&first, &again), "a hit");
    let s = cache.stats();
    assert_eq!(
        (s.loads, s.misses, s.hits, s.mappings, s.bytes),
        (1, 1, 1, 0, 0)
    );
    assert!(s.memory >= 32 << 10, "{s:?}");
    for n in &names {
        cache.get(&d.0.join(n)).await.unwrap();
    }
    let s = cache.stats();
    assert!(s.evictions > 0 && s.entries < names.len(), "{s:?}");
    assert!(s.memory <= 4 * ((32 << 10) + 1024 + 200), "{s:?}");
    let mapped = cache.get(&big).await.unwrap();
    assert!(mapped.is_mapped());
    let s = cache.stats();
    assert_eq!((s.mappings, s.bytes), (1, 1 << 20), "{s:?}");
    assert_eq!(s.blocking_loads_mapped, 1, "{s:?}");
}

#[tokio::test]
async fn a_changed_small_file_is_read_again() {
    let d = TempDir::canonical("small-changed");
    let p = d.write("a.txt", b"first version");
    settled();
    let cache = Cache::default();
    let old = cache.get(&p).await.unwrap();
    assert_eq!(old.content().as_ref(), b"first version");
    d.replace("a.txt", b"second version, longer");
    settled();
    let new = cache.get(&p).await.unwrap();
    assert_eq!(new.content().as_ref(), b"second version, longer");
    assert_ne!(old.etag(), new.etag());
    // The old entry's bytes are still the old version's: nothing can change them.
    assert_eq!(old.content().as_ref(), b"first version");
}

#[test]
fn the_mappings_bound_stays_under_the_systems_limit() {
    let bound = crate::engine::cache::mappings_bound(usize::MAX);
    if let Ok(max) = std::fs::read_to_string("/proc/sys/vm/max_map_count") {
        let max: u64 = max.trim().parse().unwrap();
        assert_eq!(bound, max / 4);
    }
    assert_eq!(crate::engine::cache::mappings_bound(100), 100);
}
