//! The listing cache's tests: single flight, rebuilding, pages from one snapshot, the
//! same pages without one, the freshness of names, the bounds.

use super::*;
use crate::engine::links::Symlinks;
use crate::engine::listing::entries::Kind;
use crate::semantics::listing::Format;

use crate::engine::test_support::TempDir;

fn opts() -> ScanOptions {
    ScanOptions {
        dotfiles: false,
        links: Symlinks::Never,
        root: std::path::PathBuf::from("/"),
        max_entries: 100,
    }
}

fn json() -> PageSpec {
    PageSpec {
        format: Format::Json,
        ..PageSpec::default()
    }
}

#[tokio::test]
async fn built_once_and_rebuilt_when_the_directory_changes() {
    let d = TempDir::new("rebuild");
    std::fs::write(d.0.join("a"), "1").unwrap();
    let cache = ListingCache::default();
    let get = || cache.get(&d.0, json(), None, opts(), Revalidate::Always);
    let first = get().await.unwrap();
    let again = get().await.unwrap();
    assert!(Arc::ptr_eq(&first, &again));
    assert_eq!(cache.builds(), 1);
    assert_eq!(first.entry.content_type(), "application/json");
    assert!(first.entry.last_modified().is_some());

    std::fs::write(d.0.join("b"), "2").unwrap();
    let changed = get().await.unwrap();
    assert_eq!(cache.builds(), 2);
    assert_ne!(changed.entry.etag(), first.entry.etag());
    assert_eq!(changed.total, 2);

    // HTML is another key, built once.
    let html = cache
        .get(&d.0, PageSpec::default(), None, opts(), Revalidate::Always)
        .await
        .unwrap();
    assert_eq!(html.entry.content_type(), "text/html; charset=utf-8");
    assert_eq!(cache.builds(), 3);
    assert_eq!(cache.usage().0, 2);
}

#[tokio::test]
async fn never_keeps_and_old_listings_are_rebuilt_to_the_same_tag() {
    let d = TempDir::new("never");
    std::fs::write(d.0.join("a"), "1").unwrap();
    let cache = ListingCache::default();
    let first = cache
        .get(&d.0, json(), None, opts(), Revalidate::Never)
        .await
        .unwrap();
    std::fs::write(d.0.join("b"), "2").unwrap();
    let kept = cache
        .get(&d.0, json(), None, opts(), Revalidate::Never)
        .await
        .unwrap();
    assert!(Arc::ptr_eq(&first, &kept), "never: not rebuilt");

    let cache = ListingCache::default();
    let first = cache
        .get(&d.0, json(), None, opts(), Revalidate::Always)
        .await
        .unwrap();
    tokio::time::sleep(MAX_AGE + Duration::from_millis(50)).await;
    let rebuilt = cache
        .get(&d.0, json(), None, opts(), Revalidate::Always)
        .await
        .unwrap();
    assert!(!Arc::ptr_eq(&first, &rebuilt));
    assert_eq!(cache.builds(), 2);
    assert_eq!(
        rebuilt.entry.etag(),
        first.entry.etag(),
        "same bytes, same tag"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_misses_share_one_build() {
    let d = TempDir::new("flight");
    for i in 0..200 {
        std::fs::write(d.0.join(format!("f{i}")), "x").unwrap();
    }
    let cache = Arc::new(ListingCache::default());
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (cache, dir) = (cache.clone(), d.0.clone());
            tokio::spawn(async move {
                cache
                    .get(&dir, json(), None, opts(), Revalidate::Always)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut tags = Vec::new();
    for t in tasks {
        tags.push(t.await.unwrap().entry.etag().cloned());
    }
    assert_eq!(cache.builds(), 1);
    assert!(tags.windows(2).all(|w| w[0] == w[1]));
}

#[tokio::test]
async fn bounded_by_count() {
    let d = TempDir::new("bound");
    let cache = ListingCache::default();
    for i in 0..(MAX_LISTINGS + 10) {
        let page = PageSpec {
            path: format!("/{i}/"),
            ..json()
        };
        cache
            .get(&d.0, page, None, opts(), Revalidate::Always)
            .await
            .unwrap();
    }
    let (listings, bytes) = cache.usage();
    assert!(listings <= MAX_LISTINGS, "{listings}");
    assert!(bytes > 0 && bytes <= MAX_BYTES);
}

fn cursor(name: &str) -> Option<Cursor> {
    Some(Cursor {
        directory: false,
        name: name.as_bytes().to_vec(),
    })
}

fn pages_of(n: usize) -> ScanOptions {
    ScanOptions {
        max_entries: n,
        ..opts()
    }
}

/// The names a JSON page lists.
fn listed(page: &Listing) -> Vec<String> {
    let rows: Vec<serde_json::Value> = serde_json::from_slice(page.entry.content()).unwrap();
    rows.iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn pages_are_slices_of_one_snapshot_and_cursors_to_one_place_share_a_page() {
    let d = TempDir::new("pages");
    for i in 0..10 {
        std::fs::write(d.0.join(format!("f{i}")), "x").unwrap();
    }
    let cache = ListingCache::default();
    let get = |after| cache.get(&d.0, json(), after, pages_of(4), Revalidate::Always);
    let first = get(None).await.unwrap();
    assert_eq!(listed(&first), ["f0", "f1", "f2", "f3"]);
    assert_eq!(first.total, 10);
    assert_eq!(first.previous, None);
    assert_eq!(
        first.next,
        Some(PageLink::After(Kind::File, b"f3".to_vec()))
    );
    let second = get(cursor("f3")).await.unwrap();
    assert_eq!(listed(&second), ["f4", "f5", "f6", "f7"]);
    assert_eq!(second.previous, Some(PageLink::First));
    // A cursor between f3 and f4 names the same position: the same page.
    let between = get(cursor("f35")).await.unwrap();
    assert!(Arc::ptr_eq(&second, &between));
    let last = get(cursor("f7")).await.unwrap();
    assert_eq!(listed(&last), ["f8", "f9"]);
    assert_eq!(last.next, None);
    assert_eq!(
        last.previous,
        Some(PageLink::After(Kind::File, b"f3".to_vec()))
    );
    assert_eq!(cache.snapshot_builds(), 1, "one read for every page");
    assert_eq!(cache.builds(), 3);

    // Removing the entry a cursor names moves no page.
    std::fs::remove_file(d.0.join("f3")).unwrap();
    let after_removal = get(cursor("f3")).await.unwrap();
    assert_eq!(listed(&after_removal), ["f4", "f5", "f6", "f7"]);
    assert_eq!(after_removal.total, 9);
    assert_eq!(cache.snapshot_builds(), 2);
}

/// A directory whose names are too many for a snapshot is read a page at a time,
/// into the same pages.
#[tokio::test]
async fn without_a_snapshot_pages_are_the_same() {
    let d = TempDir::new("no-snapshot");
    for i in 0..30 {
        std::fs::write(d.0.join(format!("n{i:02}")), "x").unwrap();
    }
    std::fs::create_dir(d.0.join("sub")).unwrap();
    let kept = ListingCache::default();
    let unkept = ListingCache::with_bounds(MAX_SNAPSHOTS, MAX_SNAPSHOT_BYTES, 64);
    for after in [None, cursor("n06"), cursor("n29"), cursor("zz")] {
        for spec in [json(), PageSpec::default()] {
            let (a, b) = tokio::join!(
                kept.get(
                    &d.0,
                    spec.clone(),
                    after.clone(),
                    pages_of(7),
                    Revalidate::Always
                ),
                unkept.get(
                    &d.0,
                    spec.clone(),
                    after.clone(),
                    pages_of(7),
                    Revalidate::Always
                ),
            );
            let (a, b) = (a.unwrap(), b.unwrap());
            assert_eq!(a.entry.content(), b.entry.content(), "{after:?}");
            assert_eq!(
                (a.total, &a.previous, &a.next),
                (b.total, &b.previous, &b.next)
            );
        }
    }
    assert!(kept.snapshots.bytes() > 0);
    assert_eq!(unkept.snapshots.bytes(), 0, "no snapshot kept");
}

#[test]
fn settled_names_stay_fresh_while_others_age() {
    let names = |settled| Names {
        snapshot: None,
        generation: 1,
        settled,
        build_ms: 5,
    };
    let slot = |settled| {
        let slot = VersionSlot::new(Fingerprint::default(), 0, SnapshotAge { created: 0 });
        slot.cell.set(Arc::new(names(settled))).unwrap();
        slot
    };
    let later = MAX_AGE.as_millis() as u64 * 10;
    assert!(SnapshotAge::is_fresh(
        &slot(true),
        later,
        Revalidate::Always
    ));
    assert!(!SnapshotAge::is_fresh(
        &slot(false),
        later,
        Revalidate::Always
    ));
    assert!(SnapshotAge::is_fresh(&slot(false), 10, Revalidate::Always));
    assert!(SnapshotAge::is_fresh(
        &slot(false),
        later,
        Revalidate::Never
    ));

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i128;
    let at = |ns: i128| Fingerprint {
        mtime_ns: ns,
        ctime_ns: ns,
        ..Fingerprint::default()
    };
    assert!(changed_lately(&at(now)));
    assert!(changed_lately(&at(now + 10_000_000_000)), "the future");
    assert!(!changed_lately(&at(now - 60_000_000_000)));
    assert!(!changed_lately(&at(-1)));
    assert_eq!(
        system_time(-1_500_000_000),
        UNIX_EPOCH.checked_sub(Duration::from_millis(1500))
    );
}

#[tokio::test]
async fn a_missing_directory_is_not_found() {
    let d = TempDir::new("missing");
    let cache = ListingCache::default();
    let r = cache
        .get(&d.0.join("nope"), json(), None, opts(), Revalidate::Always)
        .await;
    assert!(matches!(r, Err(CacheError::NotFound)));
}
