//! [`Revalidate::Watch`](super::Revalidate::Watch) against real files and real inotify events.

use super::*;
use crate::engine::test_support::TempDir;
use crate::semantics::etag::EntityTag;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

fn watching() -> Cache {
    let cache = Cache::new(CacheConfig {
        revalidate: Revalidate::Watch,
        ..CacheConfig::default()
    });
    assert!(cache.is_watching(), "no inotify watcher on Linux");
    cache
}

/// A directory whose path is canonical (the watcher trusts canonical paths only).
fn dir(name: &str) -> TempDir {
    TempDir::canonical(name)
}

fn tag(cache: &Cache, p: &Path) -> EntityTag {
    cache.get_blocking(p).unwrap().etag().cloned().unwrap()
}

/// Asks until the entry's tag is no longer `old`; how long that took.
fn until_changed(cache: &Cache, p: &Path, old: &EntityTag) -> Duration {
    let start = Instant::now();
    while tag(cache, p) == *old {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "change not noticed in 5 s"
        );
        std::thread::yield_now();
    }
    start.elapsed()
}

/// Writes `bytes` over the start of the file at `p`, in place (same inode).
fn write_in_place(p: &Path, bytes: &[u8]) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
    f.write_all(bytes).unwrap();
}

#[test]
fn hits_trust_the_watch_and_events_bring_changes() {
    let d = dir("watch-hits");
    let other = dir("watch-hits-elsewhere");
    let p = d.write("f.bin", b"version one");
    let link = other.0.join("link.bin");
    std::fs::hard_link(&p, &link).unwrap();
    let cache = watching();
    let one = tag(&cache, &p);
    // The first hit after a load takes a stat; after it, hits trust the watch.
    assert_eq!(tag(&cache, &p), one);
    assert!(cache.watched_dirs() >= 2, "{}", cache.watched_dirs());
    assert_eq!(cache.stats().watched_dirs, cache.watched_dirs());
    // A write through a hard link in an unwatched directory reports no event
    // to the file's directory: a hit that made a `stat` would see it, and does
    // not (the limit the module documents; it proves hits make no system call).
    write_in_place(&link, b"VERSION");
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(tag(&cache, &p), one);
    // A write through the file's own path is reported and noticed.
    write_in_place(&p, b"v");
    until_changed(&cache, &p, &one);
    assert_eq!(
        cache.get_blocking(&p).unwrap().content().as_ref(),
        b"vERSION one"
    );
}

#[test]
fn notices_replacement_deletion_and_moved_directories() {
    let d = dir("watch-moves");
    std::fs::create_dir(d.0.join("sub")).unwrap();
    let p = d.write("sub/f.bin", b"first");
    let cache = watching();
    let first = tag(&cache, &p);
    // Replaced by rename (a new inode), as deployments do.
    d.replace("sub/f.bin", b"second");
    until_changed(&cache, &p, &first);
    let second = tag(&cache, &p);
    assert_eq!(
        cache.get_blocking(&p).unwrap().content().as_ref(),
        b"second"
    );
    // The directory moved away and another one put at its path.
    std::fs::rename(d.0.join("sub"), d.0.join("old")).unwrap();
    std::fs::create_dir(d.0.join("sub")).unwrap();
    d.write("sub/f.bin", b"third");
    until_changed(&cache, &p, &second);
    assert_eq!(cache.get_blocking(&p).unwrap().content().as_ref(), b"third");
    // The new directory is watched again: an in-place write there is noticed.
    let third = tag(&cache, &p);
    assert_eq!(tag(&cache, &p), third);
    write_in_place(&p, b"T");
    until_changed(&cache, &p, &third);
    // Truncated (IN_MODIFY).
    let fourth = tag(&cache, &p);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(2)
        .unwrap();
    until_changed(&cache, &p, &fourth);
    assert_eq!(cache.get_blocking(&p).unwrap().content().as_ref(), b"Th");
    // `chmod` (IN_ATTRIB): same bytes, so the same tag, but a new version is
    // loaded (its ctime moved).
    let before = *cache.get_blocking(&p).unwrap().fingerprint().unwrap();
    assert_eq!(tag(&cache, &p), tag(&cache, &p));
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let start = Instant::now();
    while *cache.get_blocking(&p).unwrap().fingerprint().unwrap() == before {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "chmod not noticed"
        );
        std::thread::yield_now();
    }
    // Deleted: answered as missing once the event is handled.
    std::fs::remove_file(&p).unwrap();
    let start = Instant::now();
    while cache.get_blocking(&p).is_ok() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "deletion not noticed"
        );
        std::thread::yield_now();
    }
    assert!(matches!(cache.get_blocking(&p), Err(CacheError::NotFound)));
}

#[test]
fn entries_that_cannot_be_watched_are_revalidated_by_stat() {
    // No room for watches: every hit takes a `stat`, and a write no watch could
    // report (through a hard link elsewhere) is noticed on the next request.
    let d = dir("watch-limit");
    let other = dir("watch-limit-elsewhere");
    let p = d.write("f.bin", b"version one");
    let link = other.0.join("link.bin");
    std::fs::hard_link(&p, &link).unwrap();
    let cache = Cache::with_watch_limit(
        CacheConfig {
            revalidate: Revalidate::Watch,
            ..CacheConfig::default()
        },
        0,
    );
    let one = tag(&cache, &p);
    assert_eq!(tag(&cache, &p), one);
    write_in_place(&link, b"VERSION");
    assert_ne!(tag(&cache, &p), one);

    // A path through a symbolic link: the target changes in another directory.
    let cache = watching();
    let via = d.0.join("via.bin");
    std::os::unix::fs::symlink(&link, &via).unwrap();
    let before = tag(&cache, &via);
    assert_eq!(tag(&cache, &via), before);
    write_in_place(&link, b"version");
    assert_ne!(tag(&cache, &via), before);
}

/// The delay from a `write` returning to the watcher marking the entry, and to
/// the cache serving the new version (which includes the load's wait for the
/// change to settle, as under "always"). Bounded (a correctness check); the
/// figures are printed for the README:
/// `cargo test --lib watch_delay -- --nocapture`.
#[test]
fn watch_delay_from_write_to_new_tag() {
    let d = dir("watch-delay");
    let p = d.write("f.bin", &[0u8; 4096]);
    let cache = watching();
    let mut old = tag(&cache, &p);
    let (mut marked, mut served) = (Vec::new(), Vec::new());
    for i in 1..=100u32 {
        let events = cache
            .slots
            .get(&p)
            .unwrap()
            .state
            .events
            .load(Ordering::Acquire);
        let start = Instant::now();
        write_in_place(&p, &i.to_le_bytes());
        while cache
            .slots
            .get(&p)
            .unwrap()
            .state
            .events
            .load(Ordering::Acquire)
            == events
        {
            assert!(start.elapsed() < Duration::from_secs(5), "no event in 5 s");
            std::hint::spin_loop();
        }
        marked.push(start.elapsed());
        until_changed(&cache, &p, &old);
        served.push(start.elapsed());
        old = tag(&cache, &p);
    }
    for (what, v) in [
        ("event handled", &mut marked),
        ("new tag served", &mut served),
    ] {
        v.sort();
        eprintln!(
            "watch: write -> {what} over {} writes: median {:?}, p90 {:?}, max {:?}",
            v.len(),
            v[v.len() / 2],
            v[v.len() * 9 / 10],
            v[v.len() - 1]
        );
    }
}
