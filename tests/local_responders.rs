//! The `MmapFile` responder on user routes through Rocket's local client: a download
//! with Content-Disposition, in-memory blobs (static and shared entries), HEAD on a
//! `#[get]` route, and a route opening its own file through `&State<Mmap>`. Fixtures
//! in `common::local`.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::local::*;
use rocket::local::asynchronous::Client;
use rocket::{get, routes, State};
use rocket_mmap::cache::Entry;
use rocket_mmap::{CacheError, Mmap, MmapFile};

// ---------------------------------------------------------------------------
// Content-Disposition
// ---------------------------------------------------------------------------

#[get("/download")]
fn download() -> MmapFile {
    MmapFile::from_static(b"EUR 1.00\n", "text/plain; charset=utf-8")
        .attachment(Some("€ rates.txt"))
}

#[rocket::async_test]
async fn content_disposition_attachment_has_rfc8187_filename() {
    let c = client(rocket_with(figment()).mount("/", routes![download])).await;
    let r = get(&c, "/download", &[]).await;
    assert_eq!(r.status, 200);
    let cd = r.h("Content-Disposition");
    assert!(cd.starts_with("attachment;"), "{cd}");
    assert!(
        cd.contains("filename*=UTF-8''%E2%82%AC%20rates.txt"),
        "{cd}"
    );
    // The plain fallback is ASCII only (RFC 6266 §4.3).
    let fallback = cd
        .split(';')
        .map(str::trim)
        .find(|p| p.starts_with("filename="))
        .expect("filename= fallback");
    assert!(fallback.is_ascii(), "{fallback}");
    assert_eq!(r.body, b"EUR 1.00\n");
    // Also on partial responses.
    let r = get(&c, "/download", &[("Range", "bytes=0-2")]).await;
    assert_eq!(r.status, 206);
    assert_eq!(r.h("Content-Disposition"), cd);
    assert_eq!(r.body, b"EUR");
}

// ---------------------------------------------------------------------------
// In-memory blobs through the responder
// ---------------------------------------------------------------------------

const BLOB: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

#[get("/static.txt")]
fn static_blob() -> MmapFile {
    MmapFile::from_static(BLOB, "text/plain; charset=utf-8")
}

struct SharedBlob(Arc<Entry>);

#[get("/shared.txt")]
fn shared_blob(blob: &State<SharedBlob>) -> MmapFile {
    MmapFile::new(blob.0.clone())
}

async fn blob_client() -> Client {
    let entry = Arc::new(Entry::from_bytes(
        BLOB.to_vec(),
        "text/plain; charset=utf-8",
    ));
    client(
        rocket_with(figment())
            .manage(SharedBlob(entry))
            .mount("/", routes![static_blob, shared_blob]),
    )
    .await
}

#[rocket::async_test]
async fn in_memory_blobs_answer_ranges_and_conditionals_like_files() {
    let c = blob_client().await;
    let mut tags = Vec::new();
    for uri in ["/static.txt", "/shared.txt"] {
        let r = get(&c, uri, &[]).await;
        assert_eq!(r.status, 200, "{uri}");
        assert_eq!(r.body, BLOB);
        assert_eq!(r.content_length(), Some(BLOB.len()));
        assert_eq!(r.h("Accept-Ranges"), "bytes");
        assert_eq!(r.h("Content-Type"), "text/plain; charset=utf-8");
        assert_strong_quoted_etag(r.etag());
        let etag = r.etag().to_owned();
        tags.push(etag.clone());

        let r = get(&c, uri, &[("Range", "bytes=10-15")]).await;
        assert_eq!(r.status, 206, "{uri}");
        assert_eq!(r.h("Content-Range"), "bytes 10-15/36");
        assert_eq!(r.content_length(), Some(6));
        assert_eq!(r.body, b"abcdef");

        let r = get(&c, uri, &[("If-None-Match", &etag)]).await;
        assert_eq!(r.status, 304, "{uri}");
        assert_eq!(r.etag(), etag);
        assert!(r.body.is_empty());

        let r = get(&c, uri, &[("Range", "bytes=36-")]).await;
        assert_eq!(r.status, 416, "{uri}");
        assert_eq!(r.h("Content-Range"), "bytes */36");

        let r = get(&c, uri, &[("If-Match", "\"nope\"")]).await;
        assert_eq!(r.status, 412, "{uri}");

        let r = get(&c, uri, &[("If-Range", &etag), ("Range", "bytes=0-1")]).await;
        assert_eq!(r.status, 206, "{uri}");
        assert_eq!(r.body, b"01");

        // Two ranges closer than a part header costs: merged into one (§15.3.7.2).
        let r = get(&c, uri, &[("Range", "bytes=0-1,30-31")]).await;
        assert_eq!(r.status, 206, "{uri}");
        assert_eq!(r.h("Content-Range"), "bytes 0-31/36");
        assert_eq!(r.body, &BLOB[..32]);
    }
    // The tag is derived from the bytes: both routes agree.
    assert_eq!(tags[0], tags[1]);
}

#[rocket::async_test]
async fn in_memory_blob_has_no_last_modified_and_ignores_date_conditions() {
    // Without Last-Modified, date conditions cannot be evaluated and are ignored
    // (§13.1.3: "… if the resource does not have a modification date available").
    let c = blob_client().await;
    let r = get(&c, "/static.txt", &[]).await;
    assert!(r.header("Last-Modified").is_none());
    let r = get(
        &c,
        "/static.txt",
        &[("If-Modified-Since", "Sun, 06 Nov 2094 08:49:37 GMT")],
    )
    .await;
    assert_eq!(r.status, 200);
}

// ---------------------------------------------------------------------------
// HEAD on a user `#[get]` route (RFC 9110 §14.2)
// ---------------------------------------------------------------------------

/// BUG (src/responder.rs): Rocket answers HEAD on a `#[get]` route by re-routing the
/// request as GET (`request._set_method(Method::Get)`), so `MmapFile` sees GET and
/// applies `Range`: `HEAD /static.txt` with `Range: bytes=0-1` gets
/// `206`, `Content-Range: bytes 0-1/36`, `Content-Length: 2`. RFC 9110 §14.2: "A
/// server MUST ignore a Range header field received with a request method that is
/// unrecognized or for which range handling is not defined" (GET only). Expected:
/// `200`, `Content-Length: 36`, no Content-Range — as the crate's own FileServer
/// answers. A fix: the `Mmap` fairing (already attached) can also be a request
/// fairing that records the original method in `Request::local_cache`, which the
/// responder then reads.
#[rocket::async_test]
async fn head_with_range_on_a_user_get_route_is_200_full() {
    let c = blob_client().await;
    let r = head(&c, "/static.txt", &[("Range", "bytes=0-1")]).await;
    assert_eq!(r.status, 200);
    assert!(r.header("Content-Range").is_none());
    assert_eq!(r.content_length(), Some(BLOB.len()));
}

// ---------------------------------------------------------------------------
// A user route picking its own file through `&State<Mmap>`
// ---------------------------------------------------------------------------

struct Root(PathBuf);

#[get("/pick/<name>")]
async fn pick(name: &str, mmap: &State<Mmap>, root: &State<Root>) -> Result<MmapFile, CacheError> {
    mmap.open(root.0.join(name)).await
}

#[rocket::async_test]
async fn user_route_with_state_mmap_serves_files_and_404s_missing_ones() {
    let t = Site::new("user-route");
    let content = pattern(3000);
    t.file("there.bin", &content);
    t.dir("adir");
    let c = client(
        rocket_with(figment())
            .manage(Root(t.root()))
            .mount("/", routes![pick]),
    )
    .await;
    let r = get(&c, "/pick/there.bin", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, content);
    let r = get(&c, "/pick/there.bin", &[("Range", "bytes=-10")]).await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &content[2990..]);
    let r = get(&c, "/pick/missing.bin", &[]).await;
    assert_eq!(r.status, 404);
    assert!(r.header("ETag").is_none());
    // A directory is not a file.
    let r = get(&c, "/pick/adir", &[]).await;
    assert_eq!(r.status, 404);
}

/// A route's `MmapFile` follows the same validator policy as the file server: a plain
/// GET of a file not hashed yet goes out at once without `ETag`; a request that needs
/// the tag waits for it (the responder is synchronous: it waits without holding up
/// the worker) and carries it.
#[rocket::async_test]
async fn user_route_waits_for_the_tag_only_when_the_request_needs_it() {
    let t = Site::new("user-route-early");
    // Larger than what is hashed while loading.
    let content = pattern(1 << 20);
    t.file("big.bin", &content);
    t.file("other.bin", &content);
    // Settled, as a deployed file is: a file changed moments ago waits for its tag.
    std::thread::sleep(rocket_mmap::cache::SETTLE * 2);
    let fig = figment().merge(("mmap.max_background_hashes", 0));
    let c = client(
        rocket_with(fig)
            .manage(Root(t.root()))
            .mount("/", routes![pick]),
    )
    .await;
    let r = get(&c, "/pick/big.bin", &[]).await;
    assert_eq!((r.status, r.header("ETag")), (200, None));
    assert_eq!(r.body, content);
    let tag = common::etag_of(&content);
    let r = get(&c, "/pick/big.bin", &[("Range", "bytes=5-9")]).await;
    assert_eq!((r.status, r.etag()), (206, tag.as_str()));
    assert_eq!(r.body, &content[5..10]);
    assert_eq!(get(&c, "/pick/big.bin", &[]).await.etag(), tag);
    // The first request for this entry needs the tag.
    let r = get(&c, "/pick/other.bin", &[("If-None-Match", &tag)]).await;
    assert_eq!((r.status, r.etag()), (304, tag.as_str()));
}
