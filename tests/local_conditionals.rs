//! Conditional requests through Rocket's local client (RFC 9110 §13): If-Match,
//! If-None-Match, If-Modified-Since, If-Unmodified-Since and If-Range, their order of
//! evaluation, 304 and 412. Fixtures in `common::local`.

mod common;

use std::time::{Duration, SystemTime};

use common::local::*;
use common::set_mtime;
use rocket::local::asynchronous::Client;
use rocket_mmap::FileServer;

fn weak(tag: &str) -> String {
    format!("W/{tag}")
}

// ---------------------------------------------------------------------------
// Conditional requests (RFC 9110 §13)
// ---------------------------------------------------------------------------

/// A file server with `cache_control` configured, and the file's ETag and
/// Last-Modified.
async fn conditional_fixture(t: &Site, content: &[u8]) -> (Client, String, String) {
    t.file("f.bin", content);
    let fig = figment().merge(("mmap.cache_control", "public, max-age=60"));
    let c = client(rocket_with(fig).mount("/", FileServer::from(t.root()))).await;
    let r = get(&c, "/f.bin", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.h("Cache-Control"), "public, max-age=60");
    let (etag, lm) = (r.etag().to_owned(), r.h("Last-Modified").to_owned());
    (c, etag, lm)
}

fn assert_304(r: &Resp, etag: &str, lm: &str) {
    // §15.4.5: a 304 carries what a 200 would among ETag, Cache-Control, … and no body.
    assert_eq!(r.status, 304, "{r:?}");
    assert_eq!(r.etag(), etag);
    assert_eq!(r.h("Last-Modified"), lm);
    assert_eq!(r.h("Cache-Control"), "public, max-age=60");
    assert!(r.body.is_empty());
    assert!(r.header("Content-Range").is_none());
}

#[rocket::async_test]
async fn if_none_match_with_current_etag_is_304_with_validators() {
    let t = Site::new("inm");
    let (c, etag, lm) = conditional_fixture(&t, &pattern(2000)).await;
    let r = get(&c, "/f.bin", &[("If-None-Match", &etag)]).await;
    assert_304(&r, &etag, &lm);
    // Also for HEAD, and in a list, and split over two field lines (§5.3).
    let r = head(&c, "/f.bin", &[("If-None-Match", &etag)]).await;
    assert_304(&r, &etag, &lm);
    let list = format!("\"a\", {etag}, \"b\"");
    let r = get(&c, "/f.bin", &[("If-None-Match", &list)]).await;
    assert_304(&r, &etag, &lm);
    let r = get(
        &c,
        "/f.bin",
        &[("If-None-Match", "\"other\""), ("If-None-Match", &etag)],
    )
    .await;
    assert_304(&r, &etag, &lm);
    // A stale tag: 200.
    let r = get(&c, "/f.bin", &[("If-None-Match", "\"stale\"")]).await;
    assert_eq!(r.status, 200);
}

#[rocket::async_test]
async fn if_none_match_uses_weak_comparison() {
    // §13.1.2: "A recipient MUST use the weak comparison function".
    let t = Site::new("inm-weak");
    let (c, etag, lm) = conditional_fixture(&t, &pattern(2000)).await;
    let r = get(&c, "/f.bin", &[("If-None-Match", &weak(&etag))]).await;
    assert_304(&r, &etag, &lm);
}

#[rocket::async_test]
async fn if_none_match_star_is_304_for_an_existing_file() {
    let t = Site::new("inm-star");
    let (c, etag, lm) = conditional_fixture(&t, &pattern(2000)).await;
    let r = get(&c, "/f.bin", &[("If-None-Match", "*")]).await;
    assert_304(&r, &etag, &lm);
}

#[rocket::async_test]
async fn if_none_match_empty_list_matches_nothing() {
    let t = Site::new("inm-comma");
    let content = pattern(2000);
    let (c, _, _) = conditional_fixture(&t, &content).await;
    for v in [",", " , ,"] {
        let r = get(&c, "/f.bin", &[("If-None-Match", v)]).await;
        assert_eq!(r.status, 200, "{v:?}");
        assert_eq!(r.body, content);
    }
}

#[rocket::async_test]
async fn if_none_match_takes_precedence_over_range() {
    // §13.2.2: preconditions before Range.
    let t = Site::new("inm-range");
    let (c, etag, lm) = conditional_fixture(&t, &pattern(2000)).await;
    let r = get(
        &c,
        "/f.bin",
        &[("If-None-Match", &etag), ("Range", "bytes=0-9")],
    )
    .await;
    assert_304(&r, &etag, &lm);
}

#[rocket::async_test]
async fn if_match_mismatch_is_412() {
    let t = Site::new("im");
    let content = pattern(2000);
    let (c, etag, _) = conditional_fixture(&t, &content).await;
    let r = get(&c, "/f.bin", &[("If-Match", "\"nope\"")]).await;
    assert_eq!(r.status, 412);
    assert!(r.body.is_empty());
    assert!(r.header("Content-Range").is_none());
    // Matching tag, and `*`: proceed.
    let r = get(&c, "/f.bin", &[("If-Match", &etag)]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, content);
    let r = get(&c, "/f.bin", &[("If-Match", "*")]).await;
    assert_eq!(r.status, 200);
    // With a range, a matching If-Match keeps the 206.
    let r = get(&c, "/f.bin", &[("If-Match", &etag), ("Range", "bytes=0-9")]).await;
    assert_eq!(r.status, 206);
}

#[rocket::async_test]
async fn if_match_uses_strong_comparison_so_weak_tag_is_412() {
    // §13.1.1: "An origin server MUST use the strong comparison function".
    let t = Site::new("im-weak");
    let (c, etag, _) = conditional_fixture(&t, &pattern(2000)).await;
    let r = get(&c, "/f.bin", &[("If-Match", &weak(&etag))]).await;
    assert_eq!(r.status, 412);
}

#[rocket::async_test]
async fn if_modified_since_equal_to_last_modified_is_304() {
    let t = Site::new("ims");
    let content = pattern(2000);
    let (c, etag, lm) = conditional_fixture(&t, &content).await;
    let r = get(&c, "/f.bin", &[("If-Modified-Since", &lm)]).await;
    assert_304(&r, &etag, &lm);
    // Earlier than Last-Modified: 200.
    let r = get(
        &c,
        "/f.bin",
        &[("If-Modified-Since", "Sun, 06 Nov 1994 08:49:37 GMT")],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, content);
}

#[rocket::async_test]
async fn if_modified_since_is_ignored_when_if_none_match_is_present() {
    // §13.1.3: "A recipient MUST ignore If-Modified-Since if the request contains an
    // If-None-Match header field".
    let t = Site::new("ims-inm");
    let (c, _, lm) = conditional_fixture(&t, &pattern(2000)).await;
    let r = get(
        &c,
        "/f.bin",
        &[("If-None-Match", "\"other\""), ("If-Modified-Since", &lm)],
    )
    .await;
    assert_eq!(r.status, 200);
}

#[rocket::async_test]
async fn if_unmodified_since_before_last_modified_is_412() {
    let t = Site::new("ius");
    let content = pattern(2000);
    let (c, etag, lm) = conditional_fixture(&t, &content).await;
    let r = get(
        &c,
        "/f.bin",
        &[("If-Unmodified-Since", "Sun, 06 Nov 1994 08:49:37 GMT")],
    )
    .await;
    assert_eq!(r.status, 412);
    assert!(r.body.is_empty());
    // Equal: proceed.
    let r = get(&c, "/f.bin", &[("If-Unmodified-Since", &lm)]).await;
    assert_eq!(r.status, 200);
    // §13.2.2 step 2: only evaluated when If-Match is absent.
    let r = get(
        &c,
        "/f.bin",
        &[
            ("If-Match", &etag),
            ("If-Unmodified-Since", "Sun, 06 Nov 1994 08:49:37 GMT"),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, content);
}

#[rocket::async_test]
async fn if_range_with_current_etag_is_206() {
    let t = Site::new("ir");
    let content = pattern(2000);
    let (c, etag, _) = conditional_fixture(&t, &content).await;
    let r = get(&c, "/f.bin", &[("If-Range", &etag), ("Range", "bytes=0-9")]).await;
    assert_eq!(r.status, 206);
    assert_eq!(r.h("Content-Range"), "bytes 0-9/2000");
    assert_eq!(r.body, &content[..10]);
}

#[rocket::async_test]
async fn if_range_with_stale_etag_is_200_full() {
    // §13.1.5: the condition is false → send the whole representation.
    let t = Site::new("ir-stale");
    let content = pattern(2000);
    let (c, _, _) = conditional_fixture(&t, &content).await;
    let r = get(
        &c,
        "/f.bin",
        &[("If-Range", "\"stale\""), ("Range", "bytes=0-9")],
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.header("Content-Range").is_none());
    assert_eq!(r.body, content);
}

#[rocket::async_test]
async fn if_range_with_weak_tag_is_200_full() {
    // §13.1.5: strong comparison; a weak tag never matches.
    let t = Site::new("ir-weak");
    let content = pattern(2000);
    let (c, etag, _) = conditional_fixture(&t, &content).await;
    let r = get(
        &c,
        "/f.bin",
        &[("If-Range", &weak(&etag)), ("Range", "bytes=0-9")],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, content);
}

#[rocket::async_test]
async fn if_range_with_strong_last_modified_date_is_206() {
    // §13.1.5: a date matches only an exactly equal, strong Last-Modified (§8.8.2.2:
    // at least one second before the response's Date). Backdate the file.
    let t = Site::new("ir-date");
    let content = pattern(2000);
    let p = t.file("old.bin", &content);
    let old = SystemTime::now() - Duration::from_secs(3600);
    set_mtime(&p, old);
    let c = serve(&t.root()).await;
    let lm = get(&c, "/old.bin", &[]).await.h("Last-Modified").to_owned();
    assert_eq!(lm, httpdate::fmt_http_date(old));
    let r = get(&c, "/old.bin", &[("If-Range", &lm), ("Range", "bytes=0-9")]).await;
    assert_eq!(r.status, 206);
    let other = httpdate::fmt_http_date(old - Duration::from_secs(10));
    let r = get(
        &c,
        "/old.bin",
        &[("If-Range", &other), ("Range", "bytes=0-9")],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, content);
}

#[rocket::async_test]
async fn malformed_dates_are_ignored() {
    // §13.1.3, §13.1.4: an invalid date makes the condition absent.
    let t = Site::new("bad-dates");
    let content = pattern(2000);
    let (c, _, _) = conditional_fixture(&t, &content).await;
    for bad in [
        "yesterday",
        "",
        "Sun, 06 Nov 1994 08:49:37",
        "Sun, 32 Foo 1994 25:61:61 GMT",
        "99999999999999999999",
    ] {
        let r = get(&c, "/f.bin", &[("If-Modified-Since", bad)]).await;
        assert_eq!(r.status, 200, "IMS {bad:?}");
        assert_eq!(r.body, content);
        let r = get(&c, "/f.bin", &[("If-Unmodified-Since", bad)]).await;
        assert_eq!(r.status, 200, "IUS {bad:?}");
        assert_eq!(r.body, content);
        // An unparsable If-Range is false: the whole representation (§13.1.5).
        let r = get(&c, "/f.bin", &[("If-Range", bad), ("Range", "bytes=0-9")]).await;
        assert_eq!(r.status, 200, "If-Range {bad:?}");
        assert_eq!(r.body, content);
    }
}

#[rocket::async_test]
async fn repeated_if_modified_since_is_ignored() {
    // §13.1.3: ignore If-Modified-Since if "the field value has more than one member".
    let t = Site::new("ims-twice");
    let (c, _, lm) = conditional_fixture(&t, &pattern(100)).await;
    let r = get(
        &c,
        "/f.bin",
        &[("If-Modified-Since", &lm), ("If-Modified-Since", &lm)],
    )
    .await;
    assert_eq!(r.status, 200);
}

#[rocket::async_test]
async fn if_match_failure_wins_over_if_none_match() {
    // §13.2.2: If-Match (step 1) before If-None-Match (step 3).
    let t = Site::new("im-inm");
    let (c, etag, _) = conditional_fixture(&t, &pattern(100)).await;
    let r = get(
        &c,
        "/f.bin",
        &[("If-Match", "\"nope\""), ("If-None-Match", &etag)],
    )
    .await;
    assert_eq!(r.status, 412);
}

#[rocket::async_test]
async fn failed_if_range_ignores_even_an_unsatisfiable_range() {
    // §13.1.5: If-Range false → the Range is ignored entirely → 200, not 416.
    let t = Site::new("ir-416");
    let content = pattern(100);
    let (c, _, _) = conditional_fixture(&t, &content).await;
    let r = get(
        &c,
        "/f.bin",
        &[("If-Range", "\"stale\""), ("Range", "bytes=500-")],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, content);
}

// ---------------------------------------------------------------------------
// Early responses: a file is served before its strong tag is hashed
// ---------------------------------------------------------------------------

/// Larger than what the cache hashes while loading (64 KiB).
const LARGE: usize = 1 << 20;

/// A file server over `t` that hashes no file in the background: a file's tag is
/// computed only when a response needs it, so every entry is fresh (unhashed) until
/// then, whatever the timing.
async fn lazy_server(t: &Site) -> Client {
    let fig = figment().merge(("mmap.max_background_hashes", 0));
    client(rocket_with(fig).mount("/", FileServer::from(t.root()))).await
}

#[rocket::async_test]
async fn a_plain_get_of_an_unhashed_file_is_answered_at_once_without_etag() {
    let t = Site::new("early-plain");
    let content = pattern(LARGE);
    t.file("f.bin", &content);
    // Settled, as a deployed file is: a file changed moments ago waits for its tag.
    std::thread::sleep(rocket_mmap::cache::SETTLE * 2);
    let c = lazy_server(&t).await;
    for r in [get(&c, "/f.bin", &[]).await, head(&c, "/f.bin", &[]).await] {
        assert_eq!(r.status, 200);
        assert_eq!(r.header("ETag"), None, "no tag yet: none sent (§8.8.3)");
        assert_eq!(r.content_length(), Some(LARGE));
        assert!(r.header("Last-Modified").is_some(), "the date is sent");
    }
    assert_eq!(get(&c, "/f.bin", &[]).await.body, content);
    // The dates work without the tag: a 304 carries what a 200 would (no ETag yet).
    let lm = get(&c, "/f.bin", &[]).await.h("Last-Modified").to_owned();
    let r = get(&c, "/f.bin", &[("If-Modified-Since", &lm)]).await;
    assert_eq!(r.status, 304);
    assert_eq!(r.header("ETag"), None);
    let r = get(&c, "/f.bin", &[("If-Unmodified-Since", &lm)]).await;
    assert_eq!((r.status, r.header("ETag")), (200, None));
    // A request that needs the tag waits for it; from then on every answer has it.
    let tag = common::etag_of(&content);
    let r = get(&c, "/f.bin", &[("Range", "bytes=0-9")]).await;
    assert_eq!((r.status, r.etag()), (206, tag.as_str()));
    assert_eq!(get(&c, "/f.bin", &[]).await.etag(), tag);
    assert_eq!(head(&c, "/f.bin", &[]).await.etag(), tag);
}

#[rocket::async_test]
async fn the_tag_hashed_in_the_background_appears_on_a_later_plain_get() {
    let t = Site::new("early-background");
    let content = pattern(4 * LARGE);
    t.file("f.bin", &content);
    let c = serve(&t.root()).await;
    let tag = common::etag_of(&content);
    let mut polls = 0;
    loop {
        let r = get(&c, "/f.bin", &[]).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body.len(), content.len());
        match r.header("ETag") {
            // Only ever the strong tag of this content.
            Some(got) => {
                assert_eq!(got, tag);
                break;
            }
            None => {
                polls += 1;
                assert!(polls < 500, "no ETag after {polls} requests");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Each request that depends on the tag, sent first to a fresh entry: it waits for
/// the hash and carries the strong tag; an If-Range with another version's tag never
/// gets a 206.
#[rocket::async_test]
async fn requests_that_need_the_tag_wait_for_it_on_a_fresh_entry() {
    let t = Site::new("early-await");
    let content = pattern(LARGE);
    let tag = common::etag_of(&content);
    let other = common::etag_of(&content[1..]);
    let weak_tag = weak(&tag);
    let c = lazy_server(&t).await;
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, u16, &'a [u8]);
    let cases: [Case; 8] = [
        (
            "range",
            vec![("Range", "bytes=10-19")],
            206,
            &content[10..20],
        ),
        (
            "if-range with the tag",
            vec![("Range", "bytes=10-19"), ("If-Range", &tag)],
            206,
            &content[10..20],
        ),
        (
            "if-range with another version's tag",
            vec![("Range", "bytes=10-19"), ("If-Range", &other)],
            200,
            &content,
        ),
        (
            "if-range with a weak tag",
            vec![("Range", "bytes=10-19"), ("If-Range", &weak_tag)],
            200,
            &content,
        ),
        ("if-none-match", vec![("If-None-Match", &tag)], 304, b""),
        (
            "if-none-match other",
            vec![("If-None-Match", &other)],
            200,
            &content,
        ),
        ("if-match", vec![("If-Match", &tag)], 200, &content),
        ("if-match other", vec![("If-Match", &other)], 412, b""),
    ];
    for (i, (name, headers, status, body)) in cases.into_iter().enumerate() {
        // A file of its own per case: each request is the first for its entry.
        let path = format!("/f{i}.bin");
        t.file(&path[1..], &content);
        let r = get(&c, &path, &headers).await;
        assert_eq!(r.status, status, "{name}");
        assert_eq!(r.body, body, "{name}");
        if status != 412 {
            assert_eq!(r.etag(), tag, "{name}: the strong tag, waited for");
        }
    }
    // Several ranges: a multipart 206, with the tag.
    t.file("multi.bin", &content);
    let r = get(&c, "/multi.bin", &[("Range", "bytes=0-0,500-500")]).await;
    assert_eq!(r.status, 206);
    assert_eq!(r.etag(), tag);
}

/// The file is rewritten in place between its first (untagged) response and the
/// request that needs its tag, under `revalidate = "never"` (the cache keeps serving
/// the entry it mapped, whose pages now show the new bytes): the hash refuses that
/// entry, the file server maps the file afresh, and the answer is the new version's,
/// with the new version's tag — never the old tag, nor one over a mix.
#[rocket::async_test]
async fn a_file_rewritten_before_its_hash_is_answered_with_the_new_versions_tag() {
    use std::os::unix::fs::FileExt;
    let t = Site::new("early-rewrite");
    let (v1, v2) = (pattern(LARGE), pattern(LARGE + 1)[1..].to_vec());
    assert_ne!(v1, v2);
    let path = t.file("f.bin", &v1);
    // Settled, as a deployed file is: a file changed moments ago waits for its tag.
    std::thread::sleep(rocket_mmap::cache::SETTLE * 2);
    let fig = figment()
        .merge(("mmap.max_background_hashes", 0))
        .merge(("mmap.revalidate", "never"));
    let c = client(rocket_with(fig).mount("/", FileServer::from(t.root()))).await;
    let r = get(&c, "/f.bin", &[]).await;
    assert_eq!((r.status, r.header("ETag")), (200, None));
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .write_all_at(&v2, 0)
        .unwrap();
    let r = get(
        &c,
        "/f.bin",
        &[("Range", "bytes=0-99"), ("If-Range", &common::etag_of(&v1))],
    )
    .await;
    // v1's tag no longer matches: the whole of v2, under v2's tag.
    assert_eq!(r.status, 200);
    assert_eq!(r.etag(), common::etag_of(&v2));
    assert_eq!(r.body, v2);
    // The new entry is kept: a range of it with its tag is a 206.
    let r = get(
        &c,
        "/f.bin",
        &[("Range", "bytes=0-9"), ("If-Range", &common::etag_of(&v2))],
    )
    .await;
    assert_eq!((r.status, r.body.as_slice()), (206, &v2[..10]));
}
