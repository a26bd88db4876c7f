//! The `FileServer` handler through Rocket's local client: full GET and HEAD (RFC 9110
//! §8, §9.3.1, §9.3.2), content types and validators, Cache-Control, paths (index,
//! redirects, dot-files, traversal, symlinks, special files), content changing on
//! disk, and the `Mmap` fairing's configuration. Fixtures in `common::local`.

mod common;

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use common::local::*;
use common::{find, set_mtime};
use rocket::http::Method;
use rocket::local::asynchronous::Client;
use rocket::{get, routes};
use rocket_mmap::cache::Entry;
use rocket_mmap::{FileServer, Symlinks};

/// IMF-fixdate (RFC 9110 §5.6.7): `Sun, 06 Nov 1994 08:49:37 GMT`.
fn assert_imf_fixdate(v: &str) {
    assert_eq!(v.len(), 29, "not IMF-fixdate: {v:?}");
    assert!(v.ends_with(" GMT"), "not IMF-fixdate: {v:?}");
    let t = httpdate::parse_http_date(v).unwrap_or_else(|_| panic!("bad date {v:?}"));
    assert_eq!(httpdate::fmt_http_date(t), v, "not IMF-fixdate: {v:?}");
}

fn assert_no_secret(r: &Resp) {
    assert!(
        find(&r.body, SECRET, 0).is_none(),
        "content from outside the root was served: {r:?}"
    );
}

// ---------------------------------------------------------------------------
// Full GET and HEAD (RFC 9110 §8, §9.3.1, §9.3.2)
// ---------------------------------------------------------------------------

#[rocket::async_test]
async fn full_get_is_200_with_exact_length_validators_and_type() {
    let t = Site::new("full-get");
    let html = b"<!doctype html><h1>hello</h1>\n";
    let bin = pattern(5000);
    let html_path = t.file("page.html", html);
    t.file("data.qqzzunknown", &bin);
    t.file("noext", b"plain bytes");
    let c = serve(&t.root()).await;

    let r = get(&c, "/page.html", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.content_length(), Some(html.len()));
    assert_eq!(r.body, html);
    assert_eq!(r.h("Accept-Ranges"), "bytes");
    assert_eq!(r.h("Content-Type"), "text/html; charset=utf-8");
    assert_strong_quoted_etag(r.etag());
    assert_imf_fixdate(r.h("Last-Modified"));
    let mtime = std::fs::metadata(&html_path).unwrap().modified().unwrap();
    assert_eq!(r.h("Last-Modified"), httpdate::fmt_http_date(mtime));
    assert!(r.header("Content-Range").is_none());

    let r = get(&c, "/data.qqzzunknown", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.content_length(), Some(bin.len()));
    assert_eq!(r.body, bin);
    assert_eq!(r.h("Content-Type"), "application/octet-stream");
    assert_strong_quoted_etag(r.etag());

    let r = get(&c, "/noext", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.h("Content-Type"), "application/octet-stream");
    assert_eq!(r.body, b"plain bytes");
}

#[rocket::async_test]
async fn etag_is_derived_from_content_so_identical_files_agree() {
    let t = Site::new("etag-content");
    t.file("a.txt", b"same bytes");
    t.file("b.txt", b"same bytes");
    t.file("c.txt", b"other bytes");
    let c = serve(&t.root()).await;
    let a = get(&c, "/a.txt", &[]).await;
    let b = get(&c, "/b.txt", &[]).await;
    let other = get(&c, "/c.txt", &[]).await;
    assert_eq!(a.etag(), b.etag());
    assert_ne!(a.etag(), other.etag());
    // The same bytes as an in-memory blob carry the same tag.
    let blob = Entry::from_bytes(b"same bytes".to_vec(), "text/plain");
    assert_eq!(blob.etag_header(), Some(a.etag()));
}

#[rocket::async_test]
async fn head_has_the_headers_of_get_and_an_empty_body() {
    let t = Site::new("head");
    let content = pattern(12_345);
    t.file("f.txt", &content);
    let c = serve(&t.root()).await;
    let g = get(&c, "/f.txt", &[]).await;
    let h = head(&c, "/f.txt", &[]).await;
    assert_eq!(h.status, 200);
    assert_eq!(g.status, h.status);
    assert!(h.body.is_empty());
    assert_eq!(h.content_length(), Some(content.len()));
    assert_eq!(g.content_length(), h.content_length());
    let mut gh = g.headers.clone();
    let mut hh = h.headers.clone();
    gh.sort();
    hh.sort();
    assert_eq!(gh, hh);
}

#[rocket::async_test]
async fn head_with_range_is_200_full_because_range_is_get_only() {
    // RFC 9110 §14.2: a server MUST ignore Range for methods where range handling is
    // not defined; it is defined for GET only.
    let t = Site::new("head-range");
    let content = pattern(4000);
    t.file("f.bin", &content);
    let c = serve(&t.root()).await;
    let h = head(&c, "/f.bin", &[("Range", "bytes=0-9")]).await;
    assert_eq!(h.status, 200);
    assert!(h.header("Content-Range").is_none());
    assert_eq!(h.content_length(), Some(content.len()));
    assert!(h.body.is_empty());
    // And GET with the same header is 206.
    let g = get(&c, "/f.bin", &[("Range", "bytes=0-9")]).await;
    assert_eq!(g.status, 206);
}

// ---------------------------------------------------------------------------
// Configuration: Cache-Control
// ---------------------------------------------------------------------------

#[rocket::async_test]
async fn cache_control_by_extension_overrides_the_default() {
    let t = Site::new("cc-ext");
    t.file("index.html", b"<p>x</p>");
    t.file("style.css", b"p{}");
    let fig = figment()
        .merge(("mmap.cache_control", "public, max-age=60"))
        .merge(("mmap.cache_control_by_extension.html", "no-cache"));
    let c = client(rocket_with(fig).mount("/", FileServer::from(t.root()))).await;
    let r = get(&c, "/index.html", &[]).await;
    assert_eq!(r.h("Cache-Control"), "no-cache");
    // The index of a directory too (by the index file's extension).
    let r = get(&c, "/", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.h("Cache-Control"), "no-cache");
    let r = get(&c, "/style.css", &[]).await;
    assert_eq!(r.h("Cache-Control"), "public, max-age=60");
    // 304 carries the same Cache-Control as the 200 would.
    let etag = r.etag().to_owned();
    let r = get(&c, "/style.css", &[("If-None-Match", &etag)]).await;
    assert_eq!(r.status, 304);
    assert_eq!(r.h("Cache-Control"), "public, max-age=60");
}

// ---------------------------------------------------------------------------
// FileServer path handling
// ---------------------------------------------------------------------------

#[rocket::async_test]
async fn directory_is_answered_with_its_index_html() {
    let t = Site::new("index");
    t.file("index.html", b"root index");
    t.file("dir/index.html", b"dir index");
    let c = serve(&t.root()).await;
    let r = get(&c, "/", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"root index");
    assert_eq!(r.h("Content-Type"), "text/html; charset=utf-8");
    let r = get(&c, "/dir/", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"dir index");
    let r = head(&c, "/dir/", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.content_length(), Some(9));
}

#[rocket::async_test]
async fn directory_without_trailing_slash_is_308_to_slash() {
    let t = Site::new("redirect");
    t.file("dir/index.html", b"dir index");
    let c = serve(&t.root()).await;
    let r = get(&c, "/dir", &[]).await;
    assert_eq!(r.status, 308);
    assert_eq!(r.h("Location"), "/dir/");
    let r = get(&c, "/dir?x=1&y=2", &[]).await;
    assert_eq!(r.status, 308);
    assert_eq!(r.h("Location"), "/dir/?x=1&y=2");
    // Mounted below a prefix, the Location keeps the prefix.
    let c = client(rocket_with(figment()).mount("/static", FileServer::from(t.root()))).await;
    let r = get(&c, "/static/dir", &[]).await;
    assert_eq!(r.status, 308);
    assert_eq!(r.h("Location"), "/static/dir/");
    let r = get(&c, "/static/dir/", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"dir index");
}

#[rocket::async_test]
async fn redirect_never_yields_a_protocol_relative_location() {
    // An open redirect: `Location: //evil.example/dir/` would send the browser to
    // another host (RFC 3986 §4.2 network-path reference).
    let t = Site::new("open-redirect");
    t.file("evil.example/dir/index.html", b"x");
    t.file("dir/index.html", b"y");
    let c = serve(&t.root()).await;
    for (uri, expected) in [
        ("//evil.example/dir", "/evil.example/dir/"),
        ("///evil.example/dir", "/evil.example/dir/"),
        ("//dir", "/dir/"),
        ("//evil.example//dir", "/evil.example//dir/"),
    ] {
        let r = get(&c, uri, &[]).await;
        assert_eq!(r.status, 308, "{uri}");
        assert_eq!(r.h("Location"), expected, "{uri}");
    }
    for uri in [
        "//evil.example/dir",
        "///evil.example/dir",
        "//dir",
        "/\\evil.example/dir",
        "/%2fevil.example/dir",
        "/%2F%2Fevil.example/dir",
        "//evil.example//dir",
    ] {
        let r = get(&c, uri, &[]).await;
        assert_ne!(r.status, 200, "{uri}: directory served without redirect");
        if let Some(loc) = r.header("Location") {
            assert!(!loc.starts_with("//"), "{uri} → Location {loc}");
            assert!(!loc.starts_with("/\\"), "{uri} → Location {loc}");
            assert!(loc.starts_with('/'), "{uri} → Location {loc}");
        }
    }
}

#[rocket::async_test]
async fn dotfiles_are_hidden() {
    let t = Site::new("dotfiles");
    t.file(".env", b"SECRET=1");
    t.file(".git/config", b"[core]");
    t.file("ok.txt", b"ok");
    let c = serve(&t.root()).await;
    for uri in ["/.env", "/.git/config", "/.git/", "/.git", "/%2eenv"] {
        let r = get(&c, uri, &[]).await;
        assert_eq!(r.status, 404, "{uri}");
        let r = head(&c, uri, &[]).await;
        assert_eq!(r.status, 404, "HEAD {uri}");
    }
    assert_eq!(get(&c, "/ok.txt", &[]).await.status, 200);
}

#[rocket::async_test]
async fn traversal_and_encoded_paths_are_404_and_never_leave_the_root() {
    let t = Site::new("traversal");
    t.file("index.html", b"index");
    t.file("sub/file.txt", b"in sub");
    // If `a%2fb` were decoded into a path, this file would be served.
    t.file("a/b", b"nested a/b");
    // If `%252e%252e` were decoded twice this would be `..`; as a literal name it
    // must simply not exist.
    let c = serve(&t.root()).await;
    let long = format!("/{}", "a".repeat(10_000));
    let deep = format!("/{}", vec!["a"; 200].join("/"));
    for uri in [
        "/../secret.txt",
        "/sub/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/sub/%2e%2e/%2e%2e/secret.txt",
        "/%2E%2e%2Fsecret.txt",
        "/sub/%2e%2e%2f%2e%2e%2fsecret.txt",
        "/%252e%252e/secret.txt",
        "/%252e%252e%252fsecret.txt",
        "/..%2fsecret.txt",
        "/..%5csecret.txt",
        "/a%2fb",
        "/a%5cb",
        "/%00",
        "/index.html%00",
        "/index.html%00.txt",
        "/%ff",
        "/%c0%ae%c0%ae/secret.txt",
        "/sub/file.txt%0a",
        long.as_str(),
        deep.as_str(),
    ] {
        let r = get(&c, uri, &[]).await;
        assert_no_secret(&r);
        assert!(
            r.status == 404 || r.status == 400,
            "{uri}: {} {:?}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
        let r = head(&c, uri, &[]).await;
        assert!(
            r.status == 404 || r.status == 400,
            "HEAD {uri}: {}",
            r.status
        );
    }
    // The plain names still work.
    assert_eq!(get(&c, "/a/b", &[]).await.body, b"nested a/b");
    assert_eq!(get(&c, "/sub/file.txt", &[]).await.body, b"in sub");
}

#[rocket::async_test]
async fn symlink_pointing_outside_the_root_is_404_by_default() {
    let t = Site::new("symlink-out");
    t.file("index.html", b"index");
    std::fs::create_dir_all(t.base().join("outside")).unwrap();
    std::fs::write(t.base().join("outside/file.txt"), SECRET).unwrap();
    std::os::unix::fs::symlink(t.base().join("secret.txt"), t.root().join("link.txt")).unwrap();
    std::os::unix::fs::symlink("../secret.txt", t.root().join("rel-link.txt")).unwrap();
    std::os::unix::fs::symlink(t.base().join("outside"), t.root().join("outdir")).unwrap();
    let c = serve(&t.root()).await;
    for uri in [
        "/link.txt",
        "/rel-link.txt",
        "/outdir/file.txt",
        "/outdir/",
        "/outdir",
    ] {
        let r = get(&c, uri, &[]).await;
        assert_no_secret(&r);
        assert_eq!(r.status, 404, "{uri}");
    }
    // Explicitly allowed: served.
    let c = client(
        rocket_with(figment()).mount("/", FileServer::from(t.root()).symlinks(Symlinks::Follow)),
    )
    .await;
    for uri in ["/link.txt", "/rel-link.txt", "/outdir/file.txt"] {
        let r = get(&c, uri, &[]).await;
        assert_eq!(r.status, 200, "{uri}");
        assert_eq!(r.body, SECRET);
    }
}

#[rocket::async_test]
async fn symlink_pointing_inside_the_root_is_served() {
    let t = Site::new("symlink-in");
    t.file("real/target.txt", b"target content");
    std::os::unix::fs::symlink("real/target.txt", t.root().join("alias.txt")).unwrap();
    std::os::unix::fs::symlink(t.root().join("real"), t.root().join("aliasdir")).unwrap();
    let c = serve(&t.root()).await;
    let r = get(&c, "/alias.txt", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"target content");
    let r = get(&c, "/aliasdir/target.txt", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"target content");
    // Symlinks::Never refuses both.
    let c = client(
        rocket_with(figment()).mount("/", FileServer::from(t.root()).symlinks(Symlinks::Never)),
    )
    .await;
    assert_eq!(get(&c, "/alias.txt", &[]).await.status, 404);
    assert_eq!(get(&c, "/aliasdir/target.txt", &[]).await.status, 404);
    assert_eq!(get(&c, "/real/target.txt", &[]).await.status, 200);
}

#[rocket::async_test]
async fn directory_without_index_is_404() {
    let t = Site::new("no-index");
    t.file("sub/file.txt", b"x");
    let c = serve(&t.root()).await;
    let r = get(&c, "/sub/", &[]).await;
    assert_eq!(r.status, 404);
    assert!(!String::from_utf8_lossy(&r.body).contains("file.txt"));
    let r = get(&c, "/", &[]).await;
    assert_eq!(r.status, 404);
}

#[rocket::async_test]
async fn methods_other_than_get_and_head_are_not_served() {
    let t = Site::new("methods");
    t.file("f.txt", b"content");
    let c = serve(&t.root()).await;
    for m in [Method::Post, Method::Put, Method::Delete, Method::Patch] {
        let r = send(&c, m, "/f.txt", &[]).await;
        assert!(r.status == 404 || r.status == 405, "{m}: {}", r.status);
        assert_ne!(r.body, b"content");
    }
}

#[rocket::async_test]
async fn zero_length_file_is_200_empty_even_with_range() {
    let t = Site::new("empty");
    t.file("empty.txt", b"");
    let c = serve(&t.root()).await;
    let r = get(&c, "/empty.txt", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.content_length(), Some(0));
    assert!(r.body.is_empty());
    assert_strong_quoted_etag(r.etag());
    for range in ["bytes=0-", "bytes=0-0", "bytes=-1", "bytes=5-"] {
        let r = get(&c, "/empty.txt", &[("Range", range)]).await;
        assert_eq!(r.status, 200, "{range}");
        assert_eq!(r.content_length(), Some(0), "{range}");
        assert!(r.body.is_empty());
        assert!(r.header("Content-Range").is_none());
    }
    let r = head(&c, "/empty.txt", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.content_length(), Some(0));
}

// ---------------------------------------------------------------------------
// Content changes on disk
// ---------------------------------------------------------------------------

#[rocket::async_test]
async fn file_replaced_by_rename_is_served_with_new_body_and_etag() {
    let t = Site::new("rename");
    let p = t.file("f.txt", b"version one");
    let c = serve(&t.root()).await;
    let r1 = get(&c, "/f.txt", &[]).await;
    assert_eq!(r1.body, b"version one");
    let tmp = t.root().join("f.txt.tmp-new");
    std::fs::write(&tmp, b"version two").unwrap(); // same length
    std::fs::rename(&tmp, &p).unwrap();
    let r2 = get(&c, "/f.txt", &[]).await;
    assert_eq!(r2.status, 200);
    assert_eq!(r2.body, b"version two");
    assert_ne!(r1.etag(), r2.etag());
    // The old tag is now stale for If-None-Match and If-Range.
    let r = get(&c, "/f.txt", &[("If-None-Match", r1.etag())]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"version two");
    let r = get(
        &c,
        "/f.txt",
        &[("If-Range", r1.etag()), ("Range", "bytes=0-6")],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"version two");
}

#[rocket::async_test]
async fn touch_without_content_change_keeps_the_etag() {
    // The ETag is derived from the bytes: a `touch` must not invalidate caches.
    let t = Site::new("touch");
    let p = t.file("f.txt", b"unchanged");
    let c = serve(&t.root()).await;
    let r1 = get(&c, "/f.txt", &[]).await;
    let earlier = SystemTime::now() - Duration::from_secs(100);
    set_mtime(&p, earlier);
    let r2 = get(&c, "/f.txt", &[]).await;
    assert_eq!(r2.status, 200);
    assert_eq!(r2.body, b"unchanged");
    assert_eq!(r1.etag(), r2.etag());
    // Last-Modified follows the file.
    assert_eq!(r2.h("Last-Modified"), httpdate::fmt_http_date(earlier));
    let r = get(&c, "/f.txt", &[("If-None-Match", r1.etag())]).await;
    assert_eq!(r.status, 304);
}

#[rocket::async_test]
async fn truncated_file_cuts_the_response_and_the_next_request_sees_the_new_file() {
    // DESIGN "Truncation under a mapping": the process survives the SIGBUS, the
    // response in flight is cut (never completed with wrong bytes), and the next
    // request sees the new file.
    use tokio::io::AsyncReadExt;
    let t = Site::new("truncate");
    let content = pattern(1 << 20);
    let p = t.file("big.bin", &content);
    let c = serve(&t.root()).await;
    let mut resp = c.get("/big.bin").dispatch().await;
    assert_eq!(resp.status().code, 200);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(0)
        .unwrap();
    // Read chunk by chunk (as Rocket's server does), checking each chunk.
    let mut got = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    let failed = loop {
        match resp.read(&mut buf).await {
            Ok(0) => break false,
            Ok(n) => {
                assert_eq!(&buf[..n], &content[got..got + n], "wrong bytes sent");
                got += n;
            }
            Err(_) => break true,
        }
    };
    assert!(failed, "a truncated file's response must be cut");
    assert!(got < content.len());
    drop(resp);
    let r = get(&c, "/big.bin", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.content_length(), Some(0));
    assert!(r.body.is_empty());
    // And new content is served in full.
    std::fs::write(&p, b"new").unwrap();
    assert_eq!(get(&c, "/big.bin", &[]).await.body, b"new");
}

/// BUG (src/body.rs `SegmentBody::read_into`): when the poison flag is found set, the
/// read returns `Err` after having already put the copied (zero) bytes into the
/// caller's `ReadBuf`. tokio's `AsyncReadExt::read_to_end` debug-asserts that an
/// erroring `poll_read` filled nothing (tokio-1.54 src/io/util/read_to_end.rs:126), so
/// Rocket's `LocalResponse::into_bytes()` / `Body::to_bytes()` (which use
/// `read_to_end`) panic in debug builds instead of returning an error. Fix: restore
/// `dst.set_filled(filled_before)` before returning the error.
#[rocket::async_test]
async fn truncated_file_body_read_to_end_errors_without_panicking() {
    let t = Site::new("truncate-rte");
    let p = t.file("big.bin", &pattern(1 << 20));
    let c = serve(&t.root()).await;
    let resp = c.get("/big.bin").dispatch().await;
    assert_eq!(resp.status().code, 200);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(0)
        .unwrap();
    // Rocket maps the read error to `None`.
    assert_eq!(resp.into_bytes().await, None);
}

// ---------------------------------------------------------------------------
// Last-Modified in the future (RFC 9110 §8.8.2.1)
// ---------------------------------------------------------------------------

/// BUG (src/responder.rs / src/entry.rs): Last-Modified is the file's mtime even when
/// it lies in the future. RFC 9110 §8.8.2.1: "An origin server with a clock MUST NOT
/// generate a Last-Modified date that is later than the server's time of message
/// origination (Date). If the last modification time is derived from
/// implementation-specific metadata that evaluates to some time in the future,
/// according to the origin server's clock, then the origin server MUST replace that
/// value with the message origination date."
#[rocket::async_test]
async fn last_modified_is_never_later_than_the_response_date() {
    let t = Site::new("future-mtime");
    let p = t.file("f.txt", b"from the future");
    let future = SystemTime::now() + Duration::from_secs(86_400);
    set_mtime(&p, future);
    let c = serve(&t.root()).await;
    let r = get(&c, "/f.txt", &[]).await;
    assert_eq!(r.status, 200);
    let lm = httpdate::parse_http_date(r.h("Last-Modified")).unwrap();
    assert!(
        lm <= SystemTime::now(),
        "Last-Modified {} is in the future",
        r.h("Last-Modified")
    );
}

// ---------------------------------------------------------------------------
// More FileServer behaviour and configuration
// ---------------------------------------------------------------------------

#[rocket::async_test]
async fn fifo_and_device_files_are_404_and_never_block() {
    // Opening a FIFO for reading blocks until a writer appears; a device like
    // /dev/zero has no end. Neither may be served as a file.
    let t = Site::new("special");
    let fifo = t.root().join("fifo");
    let path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: `path` is a valid NUL-terminated string.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o644) }, 0);
    std::os::unix::fs::symlink("/dev/zero", t.root().join("zero")).unwrap();
    let c = client(
        rocket_with(figment()).mount("/", FileServer::from(t.root()).symlinks(Symlinks::Follow)),
    )
    .await;
    for uri in ["/fifo", "/zero"] {
        let r = tokio::time::timeout(Duration::from_secs(5), get(&c, uri, &[]))
            .await
            .unwrap_or_else(|_| panic!("{uri}: request hangs"));
        assert_eq!(r.status, 404, "{uri}");
    }
}

#[get("/<_path..>", rank = 20)]
fn fallback(_path: PathBuf) -> &'static str {
    "fallback"
}

#[get("/f.txt")]
fn shadowing() -> &'static str {
    "user route"
}

#[rocket::async_test]
async fn missing_files_forward_to_lower_ranked_routes() {
    // Like Rocket's FileServer: a missing file forwards, so other routes may answer;
    // routes with a better rank than the file server (default 10) win.
    let t = Site::new("forward");
    t.file("f.txt", b"file");
    t.file("g.txt", b"g file");
    let c = client(
        rocket_with(figment())
            .mount("/", FileServer::from(t.root()))
            .mount("/", routes![fallback, shadowing]),
    )
    .await;
    assert_eq!(get(&c, "/missing.txt", &[]).await.body, b"fallback");
    assert_eq!(get(&c, "/no/such/dir.txt", &[]).await.body, b"fallback");
    assert_eq!(get(&c, "/g.txt", &[]).await.body, b"g file");
    assert_eq!(get(&c, "/f.txt", &[]).await.body, b"user route");
}

#[rocket::async_test]
async fn percent_encoded_and_unicode_names_are_served() {
    let t = Site::new("names");
    t.file("a b.txt", b"space");
    t.file("ünï cødé.txt", b"unicode");
    t.file("100%.txt", b"percent");
    let c = serve(&t.root()).await;
    assert_eq!(get(&c, "/a%20b.txt", &[]).await.body, b"space");
    let r = get(&c, "/%C3%BCn%C3%AF%20c%C3%B8d%C3%A9.txt", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"unicode");
    assert_eq!(get(&c, "/100%25.txt", &[]).await.body, b"percent");
    // A query string does not change the file.
    assert_eq!(get(&c, "/a%20b.txt?v=2", &[]).await.body, b"space");
}

#[rocket::async_test]
async fn dotfiles_option_serves_hidden_files_but_never_dot_segments() {
    let t = Site::new("dotfiles-on");
    t.file(".well-known/security.txt", b"Contact: x");
    let c =
        client(rocket_with(figment()).mount("/", FileServer::from(t.root()).dotfiles(true))).await;
    let r = get(&c, "/.well-known/security.txt", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"Contact: x");
    for uri in [
        "/../secret.txt",
        "/.well-known/../../secret.txt",
        "/%2e%2e/secret.txt",
    ] {
        let r = get(&c, uri, &[]).await;
        assert_no_secret(&r);
        assert_eq!(r.status, 404, "{uri}");
    }
}

#[rocket::async_test]
async fn index_none_and_redirect_off_are_honoured() {
    let t = Site::new("options");
    t.file("dir/index.html", b"dir index");
    let c = client(
        rocket_with(figment()).mount(
            "/",
            FileServer::from(t.root())
                .index(None)
                .redirect_directories(false),
        ),
    )
    .await;
    assert_eq!(get(&c, "/dir/", &[]).await.status, 404);
    assert_eq!(get(&c, "/dir", &[]).await.status, 404);
    assert_eq!(get(&c, "/dir/index.html", &[]).await.body, b"dir index");
}

#[rocket::async_test]
async fn invalid_mmap_configuration_fails_ignition() {
    // The fairing refuses values that make no sense, with a clear message.
    let figments = [
        figment().merge(("mmap.revalidate", "sometimes")),
        figment().merge(("mmap.max_parts", 0)),
        figment().merge(("mmap.chunk_size", 0)),
        figment().merge(("mmap.max_entries", 0)),
        figment().merge(("mmap.max_bytes", 0)),
        figment().merge(("mmap.max_parts", "many")),
    ];
    for fig in figments {
        match Client::tracked(rocket_with(fig)).await {
            Ok(_) => panic!("invalid configuration accepted"),
            // Rocket's `Error` panics on drop unless inspected.
            Err(e) => assert!(matches!(
                e.kind(),
                rocket::error::ErrorKind::FailedFairings(_)
            )),
        }
    }
}

#[rocket::async_test]
async fn revalidate_never_keeps_serving_the_mapped_version() {
    // For immutable deployments: no `stat` per request; a replaced file is not seen.
    let t = Site::new("never");
    let p = t.file("f.txt", b"version one");
    let fig = figment().merge(("mmap.revalidate", "never"));
    let c = client(rocket_with(fig).mount("/", FileServer::from(t.root()))).await;
    let r1 = get(&c, "/f.txt", &[]).await;
    let tmp = t.root().join("tmp");
    std::fs::write(&tmp, b"version two, longer").unwrap();
    std::fs::rename(&tmp, &p).unwrap();
    let r2 = get(&c, "/f.txt", &[]).await;
    assert_eq!(r2.body, b"version one");
    assert_eq!(r1.etag(), r2.etag());
}

#[rocket::async_test]
async fn file_larger_than_the_cache_bound_is_still_served() {
    let t = Site::new("max-bytes");
    let content = pattern(5000);
    t.file("f.bin", &content);
    let fig = figment().merge(("mmap.max_bytes", 100));
    let c = client(rocket_with(fig).mount("/", FileServer::from(t.root()))).await;
    for _ in 0..2 {
        let r = get(&c, "/f.bin", &[("Range", "bytes=4990-")]).await;
        assert_eq!(r.status, 206);
        assert_eq!(r.body, &content[4990..]);
    }
}

// ---------------------------------------------------------------------------
// Rocket's FileServer::new(path, Options), through FileServer::with_options
// ---------------------------------------------------------------------------

async fn serve_with(root: &std::path::Path, options: rocket::fs::Options) -> Client {
    client(rocket_with(figment()).mount("/", FileServer::with_options(root, options))).await
}

#[rocket::async_test]
async fn with_options_maps_rockets_flags() {
    use rocket::fs::Options;
    let t = Site::new("with-options");
    t.file("d/index.html", b"<p>index</p>");
    t.file(".hidden", b"secret-ish");
    // Rocket's default: Index, no NormalizeDirs, no DotFiles.
    let c = serve_with(&t.root(), Options::default()).await;
    assert_eq!(get(&c, "/d/", &[]).await.body, b"<p>index</p>");
    let r = get(&c, "/d", &[]).await;
    assert_eq!(r.status, 200, "no redirect without NormalizeDirs");
    assert_eq!(r.body, b"<p>index</p>");
    assert_eq!(get(&c, "/.hidden", &[]).await.status, 404);
    // NormalizeDirs redirects, DotFiles serves dot-files, no Index means no index.
    let c = serve_with(&t.root(), Options::NormalizeDirs | Options::DotFiles).await;
    let r = get(&c, "/d", &[]).await;
    assert_eq!(r.status, 308);
    assert_eq!(r.header("Location"), Some("/d/"));
    assert_eq!(get(&c, "/.hidden", &[]).await.body, b"secret-ish");
    assert_eq!(
        get(&c, "/d/", &[]).await.status,
        404,
        "no index without Options::Index"
    );
}

#[rocket::async_test]
async fn with_options_missing_root_is_404_not_a_panic() {
    use rocket::fs::Options;
    let t = Site::new("with-options-missing");
    let missing = t.root().join("not-there");
    let c = serve_with(&missing, Options::Index | Options::Missing).await;
    assert_eq!(get(&c, "/anything.txt", &[]).await.status, 404);
    let panicked = std::panic::catch_unwind(|| FileServer::with_options(&missing, Options::Index));
    assert!(
        panicked.is_err(),
        "a missing root without Options::Missing is a start-up error"
    );
    let index_file = std::panic::catch_unwind(|| {
        FileServer::with_options(t.root(), Options::Index | Options::IndexFile)
    });
    assert!(index_file.is_err(), "Options::IndexFile is refused");
}
