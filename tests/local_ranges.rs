//! Byte ranges through Rocket's local client: single ranges and 206, ignored and
//! invalid `Range` fields, 416, and `multipart/byteranges` (RFC 9110 §14, §15.3.7,
//! §15.5.17). Fixtures in `common::local`.

mod common;

use common::find;
use common::local::*;
use rocket_mmap::FileServer;

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

// ---------------------------------------------------------------------------
// Single ranges (RFC 9110 §14.1, §14.2, §14.4, §15.3.7, §15.5.17)
// ---------------------------------------------------------------------------

#[rocket::async_test]
async fn single_range_is_206_with_content_range_and_exact_length() {
    let t = Site::new("single");
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
    let t = Site::new("unit");
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
    let t = Site::new("invalid");
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
    let t = Site::new("416");
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
    let t = Site::new("huge");
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
    let t = Site::new("two-ranges");
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
    let t = Site::new("seed");
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
    let t = Site::new("multi");
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
    let t = Site::new("multi-order");
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
    let t = Site::new("multi-merge");
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
    let t = Site::new("killer");
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
    let t = Site::new("too-many");
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

#[rocket::async_test]
async fn max_parts_configuration_bounds_multipart_responses() {
    let t = Site::new("max-parts");
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
