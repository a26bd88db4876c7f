//! Every response rule over HTTP/1.1, h2c (HTTP/2 with prior knowledge on plain TCP),
//! h2 over TLS (by ALPN) and HTTP/1.1 over TLS: one table of requests, run by `reqwest`
//! (hyper's client) over real loopback sockets against `rocket_mmap::FileServer`.
//!
//! For each protocol and each row: the negotiated version is the one asked for (h2
//! really is HTTP/2), the status, the named headers and the body are what the row
//! says, and then the whole response — status, every header but `Date`, the body (a
//! multipart body as its parsed parts, since each response has a fresh boundary) — is
//! the same as over HTTP/1.1. HTTP/2 responses carry no connection-specific header
//! (RFC 9113 §8.2.2), 304 and HEAD carry no body, and 304 has no `Content-Length`.
//!
//! Needs the `tls` feature (on with the default features, through `cli`).

mod common;
#[path = "common/tls_server.rs"]
mod tls_server;

use std::collections::BTreeMap;

use common::{etag_of, parse_byteranges, pseudo_random, TempDir};
use tls_server::{client, Pair, Proto, SelfSigned, Served};

/// What a row expects of the body.
#[derive(Debug, Clone)]
enum Body {
    /// Exactly these bytes.
    Bytes(Vec<u8>),
    /// Nothing (HEAD, 304, 412, 416, redirects).
    Empty,
    /// A `multipart/byteranges` body with these parts `(first, last, bytes)`.
    Parts(Vec<(u64, u64, Vec<u8>)>),
}

/// One request and what must come back.
struct Case {
    name: &'static str,
    method: reqwest::Method,
    path: &'static str,
    headers: Vec<(&'static str, String)>,
    status: u16,
    /// Header values that must be present (exact value) or, with `None`, absent.
    expect: Vec<(&'static str, Option<String>)>,
    body: Body,
}

fn get(name: &'static str, path: &'static str) -> Case {
    Case {
        name,
        method: reqwest::Method::GET,
        path,
        headers: Vec::new(),
        status: 200,
        expect: Vec::new(),
        body: Body::Empty,
    }
}

impl Case {
    fn head(mut self) -> Case {
        self.method = reqwest::Method::HEAD;
        self
    }
    fn header(mut self, name: &'static str, value: impl Into<String>) -> Case {
        self.headers.push((name, value.into()));
        self
    }
    fn status(mut self, status: u16) -> Case {
        self.status = status;
        self
    }
    fn has(mut self, name: &'static str, value: impl Into<String>) -> Case {
        self.expect.push((name, Some(value.into())));
        self
    }
    fn lacks(mut self, name: &'static str) -> Case {
        self.expect.push((name, None));
        self
    }
    fn body(mut self, body: Body) -> Case {
        self.body = body;
        self
    }
}

/// A response as compared across protocols.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    status: u16,
    /// Every header but `Date`, names lower-case, values in order; the multipart
    /// boundary replaced by `BOUNDARY`.
    headers: BTreeMap<String, Vec<String>>,
    /// The body, or its parts for multipart.
    body: Body,
}

impl PartialEq for Body {
    fn eq(&self, other: &Body) -> bool {
        match (self, other) {
            (Body::Bytes(a), Body::Bytes(b)) => a == b,
            (Body::Empty, Body::Empty) => true,
            (Body::Parts(a), Body::Parts(b)) => a == b,
            _ => false,
        }
    }
}

const DATA_LEN: usize = 300_000;
const PLAIN: &[u8] = b"plain text, also available precompressed\n";
/// What `page.txt.gz` holds: the server never looks inside, and the client must not
/// either (no automatic decompression), so the bytes come back as stored.
const GZ: &[u8] = b"\x1f\x8b\x08\x00 stand-in gzip bytes of page.txt";
const INDEX: &[u8] = b"<!doctype html><title>sub</title>\n";

fn table(data: &[u8]) -> Vec<Case> {
    let etag = etag_of(data);
    let len = data.len();
    let gz_etag = etag_of(GZ);
    vec![
        get("200 whole file", "/data.bin")
            .has("content-length", len.to_string())
            .has("etag", etag.clone())
            .has("accept-ranges", "bytes")
            .has("content-type", "application/octet-stream")
            .lacks("content-range")
            .body(Body::Bytes(data.to_vec())),
        get("206 one range", "/data.bin")
            .header("range", "bytes=1000-1999")
            .status(206)
            .has("content-range", format!("bytes 1000-1999/{len}"))
            .has("content-length", "1000")
            .has("etag", etag.clone())
            .body(Body::Bytes(data[1000..2000].to_vec())),
        get("206 suffix range", "/data.bin")
            .header("range", "bytes=-100")
            .status(206)
            .has(
                "content-range",
                format!("bytes {}-{}/{len}", len - 100, len - 1),
            )
            .body(Body::Bytes(data[len - 100..].to_vec())),
        get("206 multipart/byteranges", "/data.bin")
            .header("range", "bytes=0-99, 200000-200099, -50")
            .status(206)
            .lacks("content-range")
            .body(Body::Parts(vec![
                (0, 99, data[..100].to_vec()),
                (200_000, 200_099, data[200_000..200_100].to_vec()),
                (len as u64 - 50, len as u64 - 1, data[len - 50..].to_vec()),
            ])),
        get("304 If-None-Match", "/data.bin")
            .header("if-none-match", etag.clone())
            .status(304)
            .has("etag", etag.clone())
            .lacks("content-length")
            .lacks("content-type")
            .lacks("content-range"),
        get("412 If-Match", "/data.bin")
            .header("if-match", "\"not-this-one\"")
            .status(412)
            .has("content-length", "0"),
        get("416 unsatisfiable", "/data.bin")
            .header("range", format!("bytes={}-", len + 1))
            .status(416)
            .has("content-range", format!("bytes */{len}"))
            .has("content-length", "0"),
        get("If-Range with the ETag: 206", "/data.bin")
            .header("range", "bytes=10-19")
            .header("if-range", etag.clone())
            .status(206)
            .body(Body::Bytes(data[10..20].to_vec())),
        get("If-Range with another ETag: 200", "/data.bin")
            .header("range", "bytes=10-19")
            .header("if-range", "\"other\"")
            .has("content-length", len.to_string())
            .body(Body::Bytes(data.to_vec())),
        get("HEAD", "/data.bin")
            .head()
            .has("content-length", len.to_string())
            .has("etag", etag.clone()),
        get("HEAD ignores Range", "/data.bin")
            .head()
            .header("range", "bytes=0-9")
            .has("content-length", len.to_string())
            .lacks("content-range"),
        get("precompressed gzip", "/page.txt")
            .header("accept-encoding", "gzip")
            .has("content-encoding", "gzip")
            .has("vary", "Accept-Encoding")
            .has("content-type", "text/plain; charset=utf-8")
            .has("etag", gz_etag.clone())
            .has("content-length", GZ.len().to_string())
            .body(Body::Bytes(GZ.to_vec())),
        get("precompressed gzip, ranged", "/page.txt")
            .header("accept-encoding", "gzip")
            .header("range", "bytes=0-3")
            .status(206)
            .has("content-encoding", "gzip")
            .has("content-range", format!("bytes 0-3/{}", GZ.len()))
            .body(Body::Bytes(GZ[..4].to_vec())),
        get("identity when gzip is not accepted", "/page.txt")
            .has("vary", "Accept-Encoding")
            .lacks("content-encoding")
            .has("etag", etag_of(PLAIN))
            .body(Body::Bytes(PLAIN.to_vec())),
        get("308 directory redirect", "/sub")
            .status(308)
            .has("location", "/sub/"),
        get("index of the directory", "/sub/")
            .has("content-type", "text/html; charset=utf-8")
            .body(Body::Bytes(INDEX.to_vec())),
        get("404", "/not-here.bin").status(404),
    ]
}

/// Connection-specific header fields, which HTTP/2 forbids (RFC 9113 §8.2.2).
const CONNECTION_SPECIFIC: [&str; 5] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

async fn run(client: &reqwest::Client, url: &str, case: &Case, proto: Proto) -> Seen {
    let what = format!("{proto:?} {} {} ({})", case.method, case.path, case.name);
    let mut req = client.request(case.method.clone(), url);
    for (k, v) in &case.headers {
        req = req.header(*k, v);
    }
    let resp = req.send().await.unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(
        resp.version(),
        proto.version(),
        "{what}: negotiated version"
    );
    let status = resp.status().as_u16();
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in resp.headers() {
        let v = v
            .to_str()
            .unwrap_or_else(|_| panic!("{what}: non-ASCII {k}"));
        headers
            .entry(k.as_str().to_owned())
            .or_default()
            .push(v.to_owned());
    }
    let raw_ct = headers.get("content-type").and_then(|v| v.first()).cloned();
    let bytes = resp
        .bytes()
        .await
        .unwrap_or_else(|e| panic!("{what}: body: {e}"));
    headers.remove("date");
    let body = match raw_ct.as_deref() {
        Some(ct) if ct.starts_with("multipart/byteranges; boundary=") => {
            let boundary = &ct["multipart/byteranges; boundary=".len()..];
            headers.insert(
                "content-type".into(),
                vec!["multipart/byteranges; boundary=BOUNDARY".into()],
            );
            Body::Parts(
                parse_byteranges(&bytes, boundary)
                    .into_iter()
                    .map(|(first, last, _, b)| (first, last, b))
                    .collect(),
            )
        }
        _ if bytes.is_empty() => Body::Empty,
        _ => Body::Bytes(bytes.to_vec()),
    };

    // The row's own expectations.
    assert_eq!(status, case.status, "{what}: status; headers {headers:?}");
    for (name, want) in &case.expect {
        let got = headers.get(*name).map(|v| v.join(", "));
        assert_eq!(got.as_ref(), want.as_ref(), "{what}: header {name}");
    }
    let body_ok = match (&case.body, &body) {
        // A 404 page is Rocket's catcher: any body.
        _ if case.status == 404 => true,
        (want, got) => want == got,
    };
    assert!(
        body_ok,
        "{what}: body {} (want {})",
        describe(&body),
        describe(&case.body)
    );
    // Framing: Content-Length, when sent, is the length of what came.
    if let Some(cl) = headers.get("content-length") {
        let cl: usize = cl[0].parse().expect("numeric Content-Length");
        if case.method != reqwest::Method::HEAD && status != 304 {
            assert_eq!(cl, bytes.len(), "{what}: Content-Length vs body");
        }
    }
    if matches!(status, 304) || case.method == reqwest::Method::HEAD {
        assert!(bytes.is_empty(), "{what}: a body on HEAD/304");
    }
    if proto.version() == reqwest::Version::HTTP_2 {
        for h in CONNECTION_SPECIFIC {
            assert!(!headers.contains_key(h), "{what}: `{h}` on HTTP/2");
        }
    }
    Seen {
        status,
        headers,
        body,
    }
}

fn describe(b: &Body) -> String {
    match b {
        Body::Bytes(v) => format!("{} bytes", v.len()),
        Body::Empty => "empty".into(),
        Body::Parts(p) => format!(
            "parts {:?}",
            p.iter().map(|(a, b, _)| (a, b)).collect::<Vec<_>>()
        ),
    }
}

fn fixture() -> (TempDir, Vec<u8>) {
    let dir = TempDir::new("protocols");
    let data = pseudo_random(0x13, DATA_LEN);
    dir.write("data.bin", &data);
    dir.write("page.txt", PLAIN);
    dir.write("page.txt.gz", GZ);
    std::fs::create_dir(dir.join("sub")).unwrap();
    dir.write("sub/index.html", INDEX);
    (dir, data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rule_is_the_same_over_http1_h2c_h2_and_http1_over_tls() {
    let (dir, data) = fixture();
    let servers = Pair::start(dir.path());
    let cases = table(&data);
    // The file's tag is hashed after its first responses (a plain GET does not wait
    // for it); a range request waits for it, so every row below sees it.
    for proto in Proto::ALL {
        let r = client(proto)
            .get(servers.url(proto, "/data.bin"))
            .header("Range", "bytes=0-0")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 206, "{proto:?}");
        assert!(
            r.headers().contains_key("etag"),
            "{proto:?}: a 206 has the tag"
        );
    }
    // One client (one connection, reused) per protocol: on HTTP/2 every row after the
    // first is another stream of the same connection.
    let mut by_proto: Vec<(Proto, Vec<Seen>)> = Vec::new();
    for proto in Proto::ALL {
        let c = client(proto);
        let mut seen = Vec::new();
        for case in &cases {
            seen.push(run(&c, &servers.url(proto, case.path), case, proto).await);
        }
        by_proto.push((proto, seen));
    }
    let (_, reference) = &by_proto[0];
    for (proto, seen) in &by_proto[1..] {
        for ((case, want), got) in cases.iter().zip(reference).zip(seen) {
            if case.status == 404 {
                assert_eq!(got.status, want.status, "{proto:?} {}", case.name);
                continue;
            }
            assert_eq!(
                got, want,
                "{proto:?} differs from HTTP/1.1 for {} {} ({})",
                case.method, case.path, case.name
            );
        }
    }
    eprintln!(
        "{} rows, identical over {:?}",
        cases.len(),
        Proto::ALL.map(|p| format!("{p:?}"))
    );
}

/// Many streams at once on one HTTP/2 connection (over TLS and h2c): 32 concurrent
/// ranged requests multiplexed on a single connection, each with its own exact bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_ranges_multiplexed_on_one_h2_connection() {
    let (dir, data) = fixture();
    let servers = Pair::start(dir.path());
    for proto in [Proto::H2c, Proto::H2Tls] {
        let c = client(proto);
        let url = servers.url(proto, "/data.bin");
        let tasks: Vec<_> = (0..32usize)
            .map(|i| {
                let (c, url) = (c.clone(), url.clone());
                let first = i * 9_000;
                let last = first + 8_999;
                tokio::spawn(async move {
                    let r = c
                        .get(&url)
                        .header("range", format!("bytes={first}-{last}"))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.version(), reqwest::Version::HTTP_2);
                    assert_eq!(r.status(), 206);
                    (first, last, r.bytes().await.unwrap())
                })
            })
            .collect();
        for t in tasks {
            let (first, last, body) = t.await.unwrap();
            assert_eq!(&body[..], &data[first..=last], "{proto:?} {first}-{last}");
        }
    }
}

/// h2c needs prior knowledge: an HTTP/1.1 client on the same plain port is answered
/// in HTTP/1.1 (no upgrade dance), and the TLS port refuses plain text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_port_speaks_both_and_the_tls_port_only_tls() {
    let (dir, data) = fixture();
    let plain = Served::start(dir.path(), None);
    let tls = Served::start(dir.path(), Some(&SelfSigned::generate()));
    let r = client(Proto::Http1)
        .get(plain.url("/data.bin"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_11);
    assert_eq!(r.bytes().await.unwrap().len(), data.len());
    let plain_to_tls = client(Proto::Http1)
        .get(format!("http://127.0.0.1:{}/data.bin", tls.port()))
        .send()
        .await;
    assert!(
        plain_to_tls.is_err(),
        "plain HTTP to the TLS port: {plain_to_tls:?}"
    );
    // And the TLS server still serves TLS clients afterwards.
    let r = client(Proto::H2Tls)
        .get(tls.url("/data.bin"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.bytes().await.unwrap(), data);
}
