//! End-to-end behaviour of the Rocket shell through Rocket's local client: the
//! `FileServer` handler, the `MmapFile` responder (files and in-memory blobs), the
//! `Mmap` fairing and its configuration. Each test is named for the rule it checks
//! (RFC 9110 sections in the comments).
//!
//! The local client does not write a `Content-Length` header (Rocket's hyper layer
//! does, from the body's preset size); [`Resp::content_length`] reads that size, which
//! is exactly what the server would send.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rocket::config::LogLevel;
use rocket::figment::Figment;
use rocket::http::{Header, Method};
use rocket::local::asynchronous::Client;
use rocket::{get, routes, Build, Rocket, State};

use rocket_mmap::{CacheError, Entry, FileServer, Mmap, MmapFile, Symlinks};

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

/// A fresh directory under the system temp dir, removed on drop. Layout used by the
/// file server tests: `<base>/root` is served, `<base>/secret.txt` lies next to it and
/// must never be reachable.
struct TempDir {
    base: PathBuf,
}

const SECRET: &[u8] = b"TOP-SECRET-outside-the-root-7f3a9c";

impl TempDir {
    fn new(name: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let base = std::env::temp_dir().join(format!(
            "rocket-mmap-local-{name}-{}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("root")).unwrap();
        std::fs::write(base.join("secret.txt"), SECRET).unwrap();
        TempDir { base }
    }

    fn root(&self) -> PathBuf {
        self.base.join("root")
    }

    /// Writes `content` at `rel` below the root (parents created).
    fn file(&self, rel: &str, content: &[u8]) -> PathBuf {
        let p = self.root().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        p
    }

    fn dir(&self, rel: &str) -> PathBuf {
        let p = self.root().join(rel);
        std::fs::create_dir_all(&p).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

/// Deterministic, non-repeating-looking content.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 7 + i / 251) % 251) as u8).collect()
}

/// Rocket's debug config with logging off; Rocket.toml and `ROCKET_*` are not read.
fn figment() -> Figment {
    Figment::from(rocket::Config {
        log_level: LogLevel::Off,
        ..rocket::Config::debug_default()
    })
}

fn rocket_with(figment: Figment) -> Rocket<Build> {
    rocket::custom(figment).attach(Mmap::fairing())
}

async fn client(rocket: Rocket<Build>) -> Client {
    Client::tracked(rocket).await.expect("valid rocket")
}

/// A client for a file server on `root`, mounted at `/`.
async fn serve(root: &Path) -> Client {
    client(rocket_with(figment()).mount("/", FileServer::from(root))).await
}

/// A response with everything read out of it.
#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    /// The body's preset size: what the server sends as `Content-Length`.
    size: Option<usize>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn h(&self, name: &str) -> &str {
        self.header(name)
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
    }

    fn content_length(&self) -> Option<usize> {
        match self.header("Content-Length") {
            Some(v) => Some(v.parse().unwrap()),
            None => self.size,
        }
    }

    fn etag(&self) -> &str {
        self.h("ETag")
    }
}

async fn send(client: &Client, method: Method, uri: &str, headers: &[(&str, &str)]) -> Resp {
    let mut req = client.req(method, uri);
    for (n, v) in headers {
        req.add_header(Header::new(n.to_string(), v.to_string()));
    }
    let resp = req.dispatch().await;
    let status = resp.status().code;
    let headers = resp
        .headers()
        .iter()
        .map(|h| (h.name().to_string(), h.value().to_string()))
        .collect();
    let size = resp.body().preset_size();
    let body = resp.into_bytes().await.unwrap_or_default();
    Resp {
        status,
        headers,
        size,
        body,
    }
}

async fn get(client: &Client, uri: &str, headers: &[(&str, &str)]) -> Resp {
    send(client, Method::Get, uri, headers).await
}

async fn head(client: &Client, uri: &str, headers: &[(&str, &str)]) -> Resp {
    send(client, Method::Head, uri, headers).await
}

fn assert_strong_quoted_etag(tag: &str) {
    assert!(
        tag.len() > 2 && tag.starts_with('"') && tag.ends_with('"'),
        "ETag not a quoted strong tag: {tag:?}"
    );
    assert!(
        !tag[1..tag.len() - 1].contains('"'),
        "ETag has inner quotes: {tag:?}"
    );
}

/// IMF-fixdate (RFC 9110 §5.6.7): `Sun, 06 Nov 1994 08:49:37 GMT`.
fn assert_imf_fixdate(v: &str) {
    assert_eq!(v.len(), 29, "not IMF-fixdate: {v:?}");
    assert!(v.ends_with(" GMT"), "not IMF-fixdate: {v:?}");
    let t = httpdate::parse_http_date(v).unwrap_or_else(|_| panic!("bad date {v:?}"));
    assert_eq!(httpdate::fmt_http_date(t), v, "not IMF-fixdate: {v:?}");
}

fn weak(tag: &str) -> String {
    format!("W/{tag}")
}

/// A part of a multipart/byteranges body.
#[derive(Debug)]
struct Part {
    headers: Vec<(String, String)>,
    data: Vec<u8>,
}

impl Part {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// Parses a multipart body (RFC 2046 §5.1.1; RFC 9110 §14.6) given the response's
/// Content-Type, strictly: every delimiter is CRLF-framed and the close delimiter is
/// present.
fn parse_multipart(content_type: &str, body: &[u8]) -> Vec<Part> {
    let (kind, boundary) = content_type
        .split_once("; boundary=")
        .unwrap_or_else(|| panic!("no boundary in {content_type:?}"));
    assert_eq!(kind, "multipart/byteranges");
    let boundary = boundary.trim_matches('"');
    assert!(!boundary.is_empty() && boundary.len() <= 70);
    let delim = format!("--{boundary}");
    let delim = delim.as_bytes();
    let mut at = find(body, delim, 0).expect("first delimiter");
    assert!(at == 0 || body[..at].ends_with(b"\r\n"));
    let mut parts = Vec::new();
    loop {
        at += delim.len();
        if body[at..].starts_with(b"--") {
            // Close delimiter; only an optional CRLF (epilogue) may follow.
            let rest = &body[at + 2..];
            assert!(rest.is_empty() || rest == b"\r\n", "epilogue {rest:?}");
            break;
        }
        assert!(
            body[at..].starts_with(b"\r\n"),
            "delimiter not followed by CRLF"
        );
        at += 2;
        let head_end = find(body, b"\r\n\r\n", at).expect("end of part headers");
        let head = std::str::from_utf8(&body[at..head_end]).expect("ASCII part headers");
        let headers = head
            .split("\r\n")
            .map(|l| {
                let (n, v) = l.split_once(':').expect("header line");
                (n.trim().to_string(), v.trim().to_string())
            })
            .collect();
        let data_start = head_end + 4;
        let mut next_delim = b"\r\n".to_vec();
        next_delim.extend_from_slice(delim);
        let data_end = find(body, &next_delim, data_start).expect("next delimiter");
        parts.push(Part {
            headers,
            data: body[data_start..data_end].to_vec(),
        });
        at = data_end + 2;
    }
    parts
}

/// `bytes FIRST-LAST/LEN` → (FIRST, LAST, LEN).
fn content_range_of(v: &str) -> (usize, usize, usize) {
    let rest = v.strip_prefix("bytes ").expect("bytes unit");
    let (range, len) = rest.split_once('/').unwrap();
    let (a, b) = range.split_once('-').unwrap();
    (a.parse().unwrap(), b.parse().unwrap(), len.parse().unwrap())
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
    let t = TempDir::new("full-get");
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
    let t = TempDir::new("etag-content");
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
    assert_eq!(blob.etag_header(), a.etag());
}

#[rocket::async_test]
async fn head_has_the_headers_of_get_and_an_empty_body() {
    let t = TempDir::new("head");
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
    let t = TempDir::new("head-range");
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
// Single ranges (RFC 9110 §14.1, §14.2, §14.4, §15.3.7, §15.5.17)
// ---------------------------------------------------------------------------

#[rocket::async_test]
async fn single_range_is_206_with_content_range_and_exact_length() {
    let t = TempDir::new("single");
    let content = pattern(1000);
    t.file("f.bin", &content);
    let c = serve(&t.root()).await;
    let cases: &[(&str, usize, usize)] = &[
        ("bytes=0-9", 0, 9),
        ("bytes=10-19", 10, 19),
        ("bytes=-100", 900, 999),     // suffix
        ("bytes=990-", 990, 999),     // open-ended
        ("bytes=995-5000", 995, 999), // last clamped to the end
        ("bytes=0-0", 0, 0),          // one byte
        ("bytes=-5000", 0, 999),      // suffix longer than the file: all of it
        ("Bytes=0-9", 0, 9),          // unit case-insensitive (§14.1)
        ("BYTES=0-9", 0, 9),          //
        ("bytes=0-9,", 0, 9),         // empty list elements are allowed (§5.6.1)
        ("bytes=,0-9", 0, 9),         //
        ("bytes=0-9 , 5-12", 0, 12),  // OWS around commas; merged overlap
        ("bytes=999-999", 999, 999),  // last byte
    ];
    for &(range, first, last) in cases {
        let r = get(&c, "/f.bin", &[("Range", range)]).await;
        assert_eq!(r.status, 206, "{range}");
        assert_eq!(
            r.h("Content-Range"),
            format!("bytes {first}-{last}/1000"),
            "{range}"
        );
        assert_eq!(r.content_length(), Some(last - first + 1), "{range}");
        assert_eq!(r.body, &content[first..=last], "{range}");
        assert_eq!(r.h("Accept-Ranges"), "bytes");
        assert_strong_quoted_etag(r.etag());
        assert!(r.header("Last-Modified").is_some());
        assert_eq!(r.h("Content-Type"), "application/octet-stream");
    }
}

#[rocket::async_test]
async fn unknown_range_unit_is_ignored_with_200() {
    // §14.2: "A server MUST ignore a Range header field received with ... a range
    // unit it does not understand".
    let t = TempDir::new("unit");
    let content = pattern(300);
    t.file("f.bin", &content);
    let c = serve(&t.root()).await;
    for range in ["items=0-5", "none", "lines=1-2"] {
        let r = get(&c, "/f.bin", &[("Range", range)]).await;
        assert_eq!(r.status, 200, "{range}");
        assert_eq!(r.body, content, "{range}");
        assert!(r.header("Content-Range").is_none());
    }
}

#[rocket::async_test]
async fn invalid_range_syntax_is_ignored_with_200() {
    // §14.2: a server MAY ignore an invalid Range; it must not fail the request.
    let t = TempDir::new("invalid");
    let content = pattern(300);
    t.file("f.bin", &content);
    let c = serve(&t.root()).await;
    for range in [
        "bytes=abc",
        "bytes=",
        "bytes",
        "bytes 0-9",
        "bytes=5-2", // last < first: invalid (§14.1.1)
        "bytes=-",
        "bytes=0-9;x",
        "bytes=--5",
        "bytes=0x1-0x2",
        "bytes=+1-2",
        "bytes=1-2-3",
        "",
    ] {
        let r = get(&c, "/f.bin", &[("Range", range)]).await;
        assert_eq!(r.status, 200, "{range:?}");
        assert_eq!(r.body, content, "{range:?}");
        assert_eq!(r.content_length(), Some(content.len()), "{range:?}");
    }
}

#[rocket::async_test]
async fn unsatisfiable_range_is_416_with_star_content_range() {
    // §15.5.17, §14.4: 416 carries `Content-Range: bytes */LEN`.
    let t = TempDir::new("416");
    t.file("f.bin", &pattern(1000));
    let c = serve(&t.root()).await;
    for range in [
        "bytes=-0",
        "bytes=1000-",
        "bytes=5000-6000",
        "bytes=1000-1000,2000-",
    ] {
        let r = get(&c, "/f.bin", &[("Range", range)]).await;
        assert_eq!(r.status, 416, "{range}");
        assert_eq!(r.h("Content-Range"), "bytes */1000", "{range}");
        assert!(r.body.is_empty(), "{range}");
        assert_eq!(r.content_length(), Some(0), "{range}");
    }
}

#[rocket::async_test]
async fn huge_range_numbers_are_clamped_or_unsatisfiable_never_an_error() {
    // Numbers beyond u64 never panic or fail the request: a huge last-pos is clamped
    // to the end (§14.1.2), a huge first-pos is unsatisfiable (§14.1.1), a huge suffix
    // is the whole representation.
    let t = TempDir::new("huge");
    let content = pattern(1000);
    t.file("f.bin", &content);
    let c = serve(&t.root()).await;
    for (range, status, content_range) in [
        (
            "bytes=0-99999999999999999999999999",
            206,
            "bytes 0-999/1000",
        ),
        ("bytes=99999999999999999999999999-", 416, "bytes */1000"),
        ("bytes=-99999999999999999999999999", 206, "bytes 0-999/1000"),
        (
            "bytes=18446744073709551615-18446744073709551615",
            416,
            "bytes */1000",
        ),
        ("bytes=18446744073709551616-", 416, "bytes */1000"),
        ("bytes=990-18446744073709551615", 206, "bytes 990-999/1000"),
    ] {
        let r = get(&c, "/f.bin", &[("Range", range)]).await;
        assert_eq!(r.status, status, "{range}");
        assert_eq!(r.h("Content-Range"), content_range, "{range}");
        if status == 206 {
            let (a, b, _) = content_range_of(content_range);
            assert_eq!(r.body, &content[a..=b], "{range}");
        }
    }
}

#[rocket::async_test]
async fn two_range_header_lines_are_an_invalid_field_and_ignored() {
    // Range is a singleton field; two lines make it invalid (§5.3, §14.2).
    let t = TempDir::new("two-ranges");
    let content = pattern(1000);
    t.file("f.bin", &content);
    let c = serve(&t.root()).await;
    let r = get(
        &c,
        "/f.bin",
        &[("Range", "bytes=0-9"), ("Range", "bytes=500-509")],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, content);
}

#[rocket::async_test]
async fn seed_example_range_in_44_mb_file_is_206_with_10001_bytes() {
    let t = TempDir::new("seed");
    let p = t.root().join("big.mp3");
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::File::create(&p).unwrap();
        f.set_len(44_012_654).unwrap();
        // Real bytes around the requested range so the slice is checked.
        f.seek(SeekFrom::Start(435_000)).unwrap();
        f.write_all(&pattern(20_000)).unwrap();
    }
    let c = serve(&t.root()).await;
    let r = get(&c, "/big.mp3", &[("Range", "bytes=440000-450000")]).await;
    assert_eq!(r.status, 206);
    assert_eq!(r.h("Content-Range"), "bytes 440000-450000/44012654");
    assert_eq!(r.content_length(), Some(10_001));
    assert_eq!(r.h("Accept-Ranges"), "bytes");
    assert_eq!(r.body.len(), 10_001);
    assert_eq!(r.body, &pattern(20_000)[5_000..=15_000]);
}

// ---------------------------------------------------------------------------
// multipart/byteranges (RFC 9110 §14.6, §15.3.7.2, §17.15)
// ---------------------------------------------------------------------------

#[rocket::async_test]
async fn multiple_ranges_are_multipart_byteranges_with_typed_parts() {
    let t = TempDir::new("multi");
    let content = pattern(10_000);
    t.file("f.txt", &content);
    let c = serve(&t.root()).await;
    let r = get(&c, "/f.txt", &[("Range", "bytes=0-9,1000-1009")]).await;
    assert_eq!(r.status, 206);
    let ct = r.h("Content-Type");
    assert!(ct.starts_with("multipart/byteranges; boundary="), "{ct}");
    assert!(r.header("Content-Range").is_none());
    assert_eq!(r.content_length(), Some(r.body.len()));
    assert_eq!(r.h("Accept-Ranges"), "bytes");
    assert_strong_quoted_etag(r.etag());
    let parts = parse_multipart(ct, &r.body);
    assert_eq!(parts.len(), 2);
    for (part, (a, b)) in parts.iter().zip([(0usize, 9usize), (1000, 1009)]) {
        assert_eq!(
            part.header("Content-Type"),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(
            part.header("Content-Range"),
            Some(format!("bytes {a}-{b}/10000").as_str())
        );
        assert_eq!(part.data, &content[a..=b]);
    }
}

#[rocket::async_test]
async fn multipart_part_order_follows_the_request() {
    let t = TempDir::new("multi-order");
    let content = pattern(10_000);
    t.file("f.bin", &content);
    let c = serve(&t.root()).await;
    let r = get(&c, "/f.bin", &[("Range", "bytes=9000-9009,0-9,5000-5009")]).await;
    assert_eq!(r.status, 206);
    let parts = parse_multipart(r.h("Content-Type"), &r.body);
    let got: Vec<_> = parts
        .iter()
        .map(|p| content_range_of(p.header("Content-Range").unwrap()))
        .collect();
    assert_eq!(
        got,
        vec![(9000, 9009, 10_000), (0, 9, 10_000), (5000, 5009, 10_000)]
    );
    for (p, (a, b, _)) in parts.iter().zip(got) {
        assert_eq!(p.data, &content[a..=b]);
    }
}

#[rocket::async_test]
async fn overlapping_ranges_are_merged() {
    let t = TempDir::new("multi-merge");
    let content = pattern(10_000);
    t.file("f.bin", &content);
    let c = serve(&t.root()).await;
    // Two overlapping ranges and one far away: two parts.
    let r = get(&c, "/f.bin", &[("Range", "bytes=0-99,50-149,5000-5009")]).await;
    assert_eq!(r.status, 206);
    let parts = parse_multipart(r.h("Content-Type"), &r.body);
    let got: Vec<_> = parts
        .iter()
        .map(|p| content_range_of(p.header("Content-Range").unwrap()))
        .collect();
    assert_eq!(got, vec![(0, 149, 10_000), (5000, 5009, 10_000)]);
    assert_eq!(parts[0].data, &content[0..=149]);
    // Overlapping only: one range, sent as a single part (no multipart).
    let r = get(&c, "/f.bin", &[("Range", "bytes=100-199,150-249")]).await;
    assert_eq!(r.status, 206);
    assert_eq!(r.h("Content-Range"), "bytes 100-249/10000");
    assert_eq!(r.body, &content[100..=249]);
}

#[rocket::async_test]
async fn many_whole_file_ranges_never_send_more_than_the_file() {
    // The "Apache Killer": 200 × `0-` on a 3 MiB file must not become 600 MiB.
    let t = TempDir::new("killer");
    let len = 3 << 20;
    let content = pattern(len);
    t.file("f.bin", &content);
    let c = serve(&t.root()).await;
    let range = format!("bytes={}", vec!["0-"; 200].join(","));
    let r = get(&c, "/f.bin", &[("Range", &range)]).await;
    assert!(matches!(r.status, 200 | 206), "{}", r.status);
    assert!(r.body.len() <= len, "{} > {len}", r.body.len());
    assert_eq!(r.content_length(), Some(r.body.len()));
    assert_eq!(r.body, content);
}

#[rocket::async_test]
async fn too_many_parts_are_answered_with_the_whole_file() {
    // 1000 one-byte ranges, descending, far apart: more parts than allowed → 200.
    let t = TempDir::new("too-many");
    let content = pattern(1_000_000);
    t.file("f.bin", &content);
    let c = serve(&t.root()).await;
    let specs: Vec<String> = (0..1000)
        .rev()
        .map(|i| format!("{0}-{0}", i * 1000))
        .collect();
    let range = format!("bytes={}", specs.join(","));
    let r = get(&c, "/f.bin", &[("Range", &range)]).await;
    assert_eq!(r.status, 200);
    assert!(r.header("Content-Range").is_none());
    assert_eq!(r.h("Content-Type"), "application/octet-stream");
    assert_eq!(r.content_length(), Some(content.len()));
    assert_eq!(r.body, content);
}

// ---------------------------------------------------------------------------
// Conditional requests (RFC 9110 §13)
// ---------------------------------------------------------------------------

/// A file server with `cache_control` configured, and the file's ETag and
/// Last-Modified.
async fn conditional_fixture(t: &TempDir, content: &[u8]) -> (Client, String, String) {
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
    let t = TempDir::new("inm");
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
    let t = TempDir::new("inm-weak");
    let (c, etag, lm) = conditional_fixture(&t, &pattern(2000)).await;
    let r = get(&c, "/f.bin", &[("If-None-Match", &weak(&etag))]).await;
    assert_304(&r, &etag, &lm);
}

#[rocket::async_test]
async fn if_none_match_star_is_304_for_an_existing_file() {
    let t = TempDir::new("inm-star");
    let (c, etag, lm) = conditional_fixture(&t, &pattern(2000)).await;
    let r = get(&c, "/f.bin", &[("If-None-Match", "*")]).await;
    assert_304(&r, &etag, &lm);
}

#[rocket::async_test]
async fn if_none_match_empty_list_matches_nothing() {
    let t = TempDir::new("inm-comma");
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
    let t = TempDir::new("inm-range");
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
    let t = TempDir::new("im");
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
    let t = TempDir::new("im-weak");
    let (c, etag, _) = conditional_fixture(&t, &pattern(2000)).await;
    let r = get(&c, "/f.bin", &[("If-Match", &weak(&etag))]).await;
    assert_eq!(r.status, 412);
}

#[rocket::async_test]
async fn if_modified_since_equal_to_last_modified_is_304() {
    let t = TempDir::new("ims");
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
    let t = TempDir::new("ims-inm");
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
    let t = TempDir::new("ius");
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
    let t = TempDir::new("ir");
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
    let t = TempDir::new("ir-stale");
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
    let t = TempDir::new("ir-weak");
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
    let t = TempDir::new("ir-date");
    let content = pattern(2000);
    let p = t.file("old.bin", &content);
    let old = SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&p)
        .unwrap()
        .set_modified(old)
        .unwrap();
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
    let t = TempDir::new("bad-dates");
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

// ---------------------------------------------------------------------------
// Configuration: Cache-Control, Content-Disposition
// ---------------------------------------------------------------------------

#[rocket::async_test]
async fn cache_control_by_extension_overrides_the_default() {
    let t = TempDir::new("cc-ext");
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
// A user route picking its own file through `&State<Mmap>`
// ---------------------------------------------------------------------------

struct Root(PathBuf);

#[get("/pick/<name>")]
async fn pick(name: &str, mmap: &State<Mmap>, root: &State<Root>) -> Result<MmapFile, CacheError> {
    mmap.open(root.0.join(name)).await
}

#[rocket::async_test]
async fn user_route_with_state_mmap_serves_files_and_404s_missing_ones() {
    let t = TempDir::new("user-route");
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

// ---------------------------------------------------------------------------
// FileServer path handling
// ---------------------------------------------------------------------------

#[rocket::async_test]
async fn directory_is_answered_with_its_index_html() {
    let t = TempDir::new("index");
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
    let t = TempDir::new("redirect");
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
    let t = TempDir::new("open-redirect");
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
    let t = TempDir::new("dotfiles");
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
    let t = TempDir::new("traversal");
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
    let t = TempDir::new("symlink-out");
    t.file("index.html", b"index");
    std::fs::create_dir_all(t.base.join("outside")).unwrap();
    std::fs::write(t.base.join("outside/file.txt"), SECRET).unwrap();
    std::os::unix::fs::symlink(t.base.join("secret.txt"), t.root().join("link.txt")).unwrap();
    std::os::unix::fs::symlink("../secret.txt", t.root().join("rel-link.txt")).unwrap();
    std::os::unix::fs::symlink(t.base.join("outside"), t.root().join("outdir")).unwrap();
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
    let t = TempDir::new("symlink-in");
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
    let t = TempDir::new("no-index");
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
    let t = TempDir::new("methods");
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
    let t = TempDir::new("empty");
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
    let t = TempDir::new("rename");
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
    let t = TempDir::new("touch");
    let p = t.file("f.txt", b"unchanged");
    let c = serve(&t.root()).await;
    let r1 = get(&c, "/f.txt", &[]).await;
    let earlier = SystemTime::now() - Duration::from_secs(100);
    std::fs::File::options()
        .write(true)
        .open(&p)
        .unwrap()
        .set_modified(earlier)
        .unwrap();
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
    let t = TempDir::new("truncate");
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
    let t = TempDir::new("truncate-rte");
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
    let t = TempDir::new("future-mtime");
    let p = t.file("f.txt", b"from the future");
    let future = SystemTime::now() + Duration::from_secs(86_400);
    std::fs::File::options()
        .write(true)
        .open(&p)
        .unwrap()
        .set_modified(future)
        .unwrap();
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
// More FileServer behaviour and configuration
// ---------------------------------------------------------------------------

#[rocket::async_test]
async fn fifo_and_device_files_are_404_and_never_block() {
    // Opening a FIFO for reading blocks until a writer appears; a device like
    // /dev/zero has no end. Neither may be served as a file.
    let t = TempDir::new("special");
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
    let t = TempDir::new("forward");
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
    let t = TempDir::new("names");
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
    let t = TempDir::new("dotfiles-on");
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
    let t = TempDir::new("options");
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
async fn max_parts_configuration_bounds_multipart_responses() {
    let t = TempDir::new("max-parts");
    let content = pattern(10_000);
    t.file("f.bin", &content);
    let fig = figment().merge(("mmap.max_parts", 2));
    let c = client(rocket_with(fig).mount("/", FileServer::from(t.root()))).await;
    let r = get(&c, "/f.bin", &[("Range", "bytes=0-9,5000-5009")]).await;
    assert_eq!(r.status, 206);
    assert_eq!(parse_multipart(r.h("Content-Type"), &r.body).len(), 2);
    let r = get(&c, "/f.bin", &[("Range", "bytes=0-9,3000-3009,6000-6009")]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, content);
}

#[rocket::async_test]
async fn revalidate_never_keeps_serving_the_mapped_version() {
    // For immutable deployments: no `stat` per request; a replaced file is not seen.
    let t = TempDir::new("never");
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
    let t = TempDir::new("max-bytes");
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

#[rocket::async_test]
async fn repeated_if_modified_since_is_ignored() {
    // §13.1.3: ignore If-Modified-Since if "the field value has more than one member".
    let t = TempDir::new("ims-twice");
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
    let t = TempDir::new("im-inm");
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
    let t = TempDir::new("ir-416");
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
