//! A `Range` never waits for a whole-file hash (issue 27): a `Range` without
//! `If-Range`, `If-Match` or `If-None-Match` is answered at once, with `ETag` once the
//! file's tag is known and without it before; a file in memory small enough to hash in
//! milliseconds is waited for briefly, so its ranges carry the tag from the first one;
//! an `If-Range` date needs no tag; `ranges_await_tag` restores the wait (RFC 9110 §14,
//! §13.1.5, §8.8.3). Every test turns background hashing off
//! (`max_background_hashes = 0`), so a tag exists only if a response made it.

mod common;

use std::path::Path;
use std::time::{Duration, SystemTime};

use common::local::*;
use common::{etag_of, pseudo_random};
use rocket_mmap::cache::SETTLE;
use rocket_mmap::FileServer;

/// Larger than the largest file whose tag a `Range` waits for (64 MiB).
const LARGE: usize = (64 << 20) + 4096;

/// A file server on `root` with no background hashing, and `extra` settings.
async fn server(root: &Path, extra: &[(&str, bool)]) -> rocket::local::asynchronous::Client {
    let mut f = figment().merge(("mmap.max_background_hashes", 0));
    for (key, value) in extra {
        f = f.merge((*key, *value));
    }
    client(rocket_with(f).mount("/", FileServer::from(root))).await
}

/// Writes `content` at `name` below the site's root and waits until the change has
/// settled (a file changed within `SETTLE` waits for its tag whatever the request).
fn settled_file(site: &Site, name: &str, content: &[u8]) -> std::path::PathBuf {
    let p = site.file(name, content);
    std::thread::sleep(SETTLE + Duration::from_millis(20));
    p
}

#[rocket::async_test]
async fn a_range_on_a_large_file_not_hashed_is_answered_at_once_without_an_etag() {
    let site = Site::new("ranges-at-once-large");
    let content = pseudo_random(1, LARGE);
    settled_file(&site, "big.bin", &content);
    let c = server(&site.root(), &[]).await;

    let r = get(&c, "/big.bin", &[("Range", "bytes=1000-1999")]).await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body, content[1000..2000]);
    assert_eq!(r.h("Content-Range"), format!("bytes 1000-1999/{LARGE}"));
    assert!(r.header("Last-Modified").is_some());
    assert_eq!(r.header("ETag"), None, "no tag before the hash: {r:?}");

    // Several ranges: multipart/byteranges, also without a tag.
    let r = get(&c, "/big.bin", &[("Range", "bytes=0-9,40000000-40000009")]).await;
    assert_eq!(r.status, 206);
    assert!(r.h("Content-Type").starts_with("multipart/byteranges"));
    assert_eq!(r.header("ETag"), None);
    let body = String::from_utf8_lossy(&r.body);
    assert!(body.contains(&format!("bytes 40000000-40000009/{LARGE}")));

    // A tag condition waits for the tag; from then on every range carries it.
    let want = etag_of(&content);
    let r = head(&c, "/big.bin", &[("If-None-Match", "\"other\"")]).await;
    assert_eq!((r.status, r.header("ETag")), (200, Some(want.as_str())));
    let r = get(&c, "/big.bin", &[("Range", "bytes=-10")]).await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body, content[LARGE - 10..]);
    assert_eq!(
        r.header("ETag"),
        Some(want.as_str()),
        "the strong tag once known"
    );
    let r = get(
        &c,
        "/big.bin",
        &[("Range", "bytes=10-19"), ("If-Range", want.as_str())],
    )
    .await;
    assert_eq!((r.status, &r.body[..]), (206, &content[10..20]));
}

#[rocket::async_test]
async fn a_range_on_a_file_in_memory_waits_briefly_for_its_tag() {
    let site = Site::new("ranges-at-once-memory");
    let content = pseudo_random(2, 4 << 20);
    settled_file(&site, "small.bin", &content);
    let c = server(&site.root(), &[]).await;
    // Just written: all of it is in the page cache, and 4 MiB hash in about a
    // millisecond, so the first range carries the tag.
    let r = get(&c, "/small.bin", &[("Range", "bytes=100-199")]).await;
    assert_eq!((r.status, &r.body[..]), (206, &content[100..200]));
    assert_eq!(r.header("ETag"), Some(etag_of(&content).as_str()));
}

#[cfg(target_os = "linux")]
#[rocket::async_test]
async fn a_range_on_a_cold_file_does_not_wait_for_its_hash() {
    use std::os::unix::io::AsRawFd;
    let site = Site::new("ranges-at-once-cold");
    let content = pseudo_random(3, 8 << 20);
    let path = settled_file(&site, "cold.bin", &content);
    // Out of the page cache: hashing it would read it from the disk.
    let f = std::fs::File::open(&path).unwrap();
    f.sync_all().unwrap();
    // SAFETY: posix_fadvise(2) on an open descriptor; it only advises the kernel.
    let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(rc, 0);
    let c = server(&site.root(), &[]).await;
    let r = get(&c, "/cold.bin", &[("Range", "bytes=4000000-4000099")]).await;
    assert_eq!(
        (r.status, &r.body[..]),
        (206, &content[4_000_000..4_000_100])
    );
    assert_eq!(
        r.header("ETag"),
        None,
        "a cold file is not hashed first: {r:?}"
    );
}

#[rocket::async_test]
async fn an_if_range_date_needs_no_tag() {
    let site = Site::new("ranges-at-once-date");
    let content = pseudo_random(4, LARGE);
    let path = site.file("dated.bin", &content);
    common::set_mtime(&path, SystemTime::now() - Duration::from_secs(3600));
    std::thread::sleep(SETTLE + Duration::from_millis(20));
    let c = server(&site.root(), &[]).await;
    let lm = get(&c, "/dated.bin", &[("Range", "bytes=0-0")])
        .await
        .h("Last-Modified")
        .to_owned();

    let r = get(
        &c,
        "/dated.bin",
        &[("Range", "bytes=500-599"), ("If-Range", lm.as_str())],
    )
    .await;
    assert_eq!((r.status, &r.body[..]), (206, &content[500..600]));
    assert_eq!(r.header("ETag"), None, "answered without hashing: {r:?}");

    // Another date: the whole file (§13.1.5), still without waiting.
    let r = get(
        &c,
        "/dated.bin",
        &[
            ("Range", "bytes=500-599"),
            ("If-Range", "Mon, 01 Jan 2001 00:00:00 GMT"),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.content_length(), Some(LARGE));
    assert_eq!(r.header("ETag"), None);
}

#[rocket::async_test]
async fn ranges_await_tag_makes_every_range_wait_for_the_tag() {
    let site = Site::new("ranges-await-tag");
    let content = pseudo_random(5, LARGE);
    settled_file(&site, "big.bin", &content);
    let c = server(&site.root(), &[("mmap.ranges_await_tag", true)]).await;
    let r = get(&c, "/big.bin", &[("Range", "bytes=7-8")]).await;
    assert_eq!((r.status, &r.body[..]), (206, &content[7..9]));
    assert_eq!(r.header("ETag"), Some(etag_of(&content).as_str()));
}

#[rocket::async_test]
async fn a_file_replaced_between_two_ranges_is_never_mixed() {
    let site = Site::new("ranges-at-once-replaced");
    let v1 = pseudo_random(6, LARGE);
    let path = settled_file(&site, "v.bin", &v1);
    let c = server(&site.root(), &[]).await;
    let ranges = "bytes=0-99,50000000-50000099";
    let r = get(&c, "/v.bin", &[("Range", ranges)]).await;
    assert_eq!(r.status, 206);
    assert!(r
        .body
        .windows(100)
        .any(|w| w == &v1[50_000_000..50_000_100]));

    // Replaced by rename with another version of the same size.
    let v2 = pseudo_random(7, LARGE);
    let tmp = site.root().join(".v.bin.new");
    std::fs::write(&tmp, &v2).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    std::thread::sleep(SETTLE + Duration::from_millis(20));
    let r = get(&c, "/v.bin", &[("Range", ranges)]).await;
    assert_eq!(r.status, 206);
    assert!(
        r.body.windows(100).any(|w| w == &v2[..100]),
        "v2's first part"
    );
    assert!(
        r.body
            .windows(100)
            .any(|w| w == &v2[50_000_000..50_000_100]),
        "v2's second part"
    );
    assert!(
        !r.body.windows(100).any(|w| w == &v1[..100]),
        "no part of v1"
    );
    if let Some(tag) = r.header("ETag") {
        assert_eq!(tag, etag_of(&v2));
    }
}
