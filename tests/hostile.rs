//! Hostile requests over a real socket (raw bytes, no client that normalises them):
//!
//! * range abuse on a 3 MiB file (the "Apache Killer", hundreds of overlapping,
//!   repeated or scattered ranges, a 16 KiB `Range`): every answer costs at most the
//!   file plus part headers, comes within seconds, and other clients keep being served;
//! * paths that try to leave the root (raw and encoded `..`, encoded separators,
//!   double encoding, backslashes, NUL, invalid UTF-8, overlong UTF-8, very long
//!   paths, symlinks out of the root, dot-files, directories without an index): a
//!   secret file next to the root never appears in any answer;
//! * malformed conditional headers, duplicate `Range` lines and methods other than GET
//!   with a `Range`: never a 5xx, never a hang, never a 206 where the RFC rules one out.
//!
//! Each request gets a response (never a dropped connection); a routed answer keeps the
//! connection usable for the next request. Every test ends by checking that the server
//! still serves a normal GET with the right bytes. Run with `--nocapture` to see the
//! table of statuses, sizes and timings each test records.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{etag_of, pseudo_random, Conn, HttpResponse, Prober, Server, TempDir};

const MIB: usize = 1024 * 1024;

/// The 3 MiB file of the range abuse test.
const BIG_LEN: usize = 3 * MIB;

/// What a multipart answer may cost beyond the content: 64 parts of at most 200 bytes
/// of part headers (boundary, Content-Type, Content-Range, CRLFs).
const PART_HEADERS_BOUND: usize = 64 * 200;

/// The longest any single hostile request may take to be answered in full. Generous:
/// the suite runs on a loaded 2-core machine; a pathological server takes minutes.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// Statuses an HTTP parser may answer to a request it refuses before routing.
const PARSER_REFUSALS: &[u16] = &[400, 414, 431];

// ---------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------

/// The bytes of a raw request: `METHOD TARGET HTTP/1.1`, `Host`, the given header
/// lines (raw bytes, each without CRLF), `Connection: close` if `close`, and `body`
/// (with its `Content-Length`) if not empty.
fn raw_request(
    method: &str,
    target: &[u8],
    header_lines: &[Vec<u8>],
    body: &[u8],
    close: bool,
) -> Vec<u8> {
    let mut r = Vec::with_capacity(target.len() + 256);
    r.extend_from_slice(method.as_bytes());
    r.push(b' ');
    r.extend_from_slice(target);
    r.extend_from_slice(b" HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for line in header_lines {
        r.extend_from_slice(line);
        r.extend_from_slice(b"\r\n");
    }
    if !body.is_empty() {
        r.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    if close {
        r.extend_from_slice(b"Connection: close\r\n");
    }
    r.extend_from_slice(b"\r\n");
    r.extend_from_slice(body);
    r
}

/// A header line from its name and raw value bytes.
fn line(name: &str, value: &[u8]) -> Vec<u8> {
    let mut l = format!("{name}: ").into_bytes();
    l.extend_from_slice(value);
    l
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// The parts of a `multipart/byteranges` body as `(first, last, bytes)`, checking the
/// framing of RFC 9110 §14.6 and that every part names the complete length `total`.
fn parse_byteranges_of(body: &[u8], boundary: &str, total: u64) -> Vec<(u64, u64, Vec<u8>)> {
    common::parse_byteranges(body, boundary)
        .into_iter()
        .map(|(first, last, len, bytes)| {
            assert_eq!(len, total, "complete length in part {first}-{last}");
            (first, last, bytes)
        })
        .collect()
}

/// What a response should be, as far as the content goes.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Want {
    /// `200` with the whole file.
    Whole,
    /// `206` with one range `first..=last`.
    Single(u64, u64),
    /// `206 multipart/byteranges` with exactly these parts, in this order.
    Multi(Vec<(u64, u64)>),
}

/// Checks that `r` is a correct answer of kind `want` for `data`: status, framing,
/// `Content-Range`, and every byte.
fn check_content(what: &str, r: &HttpResponse, data: &[u8], want: &Want) {
    let len = data.len() as u64;
    match want {
        Want::Whole => {
            assert_eq!(r.status, 200, "{what}: {:?}", r.headers);
            assert_eq!(r.header("Content-Range"), None, "{what}");
            assert!(r.body == data, "{what}: 200 body is not the file");
        }
        Want::Single(first, last) => {
            assert_eq!(r.status, 206, "{what}: {:?}", r.headers);
            assert_eq!(
                r.header("Content-Range"),
                Some(format!("bytes {first}-{last}/{len}").as_str()),
                "{what}"
            );
            assert!(
                r.body == data[*first as usize..=*last as usize],
                "{what}: 206 body is not bytes {first}-{last}"
            );
        }
        Want::Multi(ranges) => {
            assert_eq!(r.status, 206, "{what}: {:?}", r.headers);
            let ct = r.header("Content-Type").unwrap_or_default();
            let boundary = ct
                .strip_prefix("multipart/byteranges; boundary=")
                .unwrap_or_else(|| panic!("{what}: Content-Type {ct:?}"));
            let parts = parse_byteranges_of(&r.body, boundary, len);
            let got: Vec<(u64, u64)> = parts.iter().map(|(a, b, _)| (*a, *b)).collect();
            assert_eq!(&got, ranges, "{what}: parts");
            for (first, last, bytes) in &parts {
                assert!(
                    bytes.as_slice() == &data[*first as usize..=*last as usize],
                    "{what}: part {first}-{last} has wrong bytes"
                );
            }
        }
    }
}

/// One request on a new connection with `Connection: close`: the response, the bytes
/// received in all (head, body and anything after it), and how long it took.
fn exchange(addr: SocketAddr, raw: &[u8]) -> (HttpResponse, u64, Duration) {
    let t = Instant::now();
    let mut conn = Conn::open(addr);
    conn.send(raw).expect("send the request");
    let r = conn.response(false).expect("a complete response");
    let extra = conn.read_to_end().unwrap_or_default();
    assert!(
        extra.is_empty(),
        "{} bytes after a Content-Length-framed response",
        extra.len()
    );
    (r, conn.received(), t.elapsed())
}

/// What happened to a keep-alive connection after a hostile request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    /// It served the next request (`GET /<probe>`) correctly.
    Reused,
    /// The server answered, then closed it (allowed only after a parser refusal).
    Closed,
}

/// Sends `raw` (keep-alive) on a new connection, reads the answer (which must come:
/// never a dropped connection), then sends a normal `GET probe_path` on the same
/// connection. Returns the answer, how long it took, and what became of the connection.
/// A closed connection is accepted only after a parser refusal ([`PARSER_REFUSALS`]),
/// and then a new connection must be served at once.
fn hostile_then_normal(
    addr: SocketAddr,
    what: &str,
    raw: &[u8],
    head_request: bool,
    probe_path: &str,
    probe_body: &[u8],
) -> (HttpResponse, Duration, After) {
    let mut conn = Conn::open(addr);
    let t = Instant::now();
    conn.send(raw)
        .unwrap_or_else(|e| panic!("{what}: cannot send: {e}"));
    let r = conn
        .response(head_request)
        .unwrap_or_else(|e| panic!("{what}: no complete response (dropped connection?): {e}"));
    let elapsed = t.elapsed();
    assert!(
        elapsed < ANSWER_WITHIN,
        "{what}: answered only after {elapsed:?}"
    );
    let next = raw_request("GET", probe_path.as_bytes(), &[], b"", false);
    let reused = conn.send(&next).and_then(|()| conn.response(false));
    let after = match reused {
        Ok(p) => {
            assert_eq!(
                (p.status, p.body.as_slice()),
                (200, probe_body),
                "{what}: the next request on the same connection"
            );
            After::Reused
        }
        Err(e) => {
            assert!(
                PARSER_REFUSALS.contains(&r.status),
                "{what}: answered {} but the connection was dropped before the next \
                 request ({e})",
                r.status
            );
            let p = common::try_request_at(addr, "GET", probe_path, &[])
                .unwrap_or_else(|e| panic!("{what}: a new connection afterwards: {e}"));
            assert_eq!((p.status, p.body.as_slice()), (200, probe_body), "{what}");
            After::Closed
        }
    };
    (r, elapsed, after)
}

/// The final check of every test: a normal GET of `name` answers 200 with `data`.
fn assert_healthy(server: &Server, name: &str, data: &[u8]) {
    let r = server.get(&format!("/{name}"));
    assert_eq!(r.status, 200, "health check: {:?}", r.headers);
    assert!(r.body == data, "health check: wrong bytes for /{name}");
}

// ---------------------------------------------------------------------------------
// Range abuse
// ---------------------------------------------------------------------------------

/// The length of the range abuse file, as range positions are.
const LEN: u64 = BIG_LEN as u64;

/// `bytes=` followed by the given range-specs joined by commas.
fn ranges_header(specs: impl IntoIterator<Item = String>) -> String {
    format!("bytes={}", specs.into_iter().collect::<Vec<_>>().join(","))
}

/// One abusive Range header of issue 6 (`what` names it) on a 3 MiB file, on 4
/// concurrent connections, while a prober fetches a small file every 5 ms on other
/// connections. For each answer: correct content (the status, Content-Range and every
/// byte), body ≤ file + 64 × 200 bytes, total bytes on the wire ≤ that plus 1 KiB of
/// response head, and the whole answer within [`ANSWER_WITHIN`]. The prober never
/// fails and its slowest answer is also within [`ANSWER_WITHIN`].
fn range_abuse(what: &str, range: String, want: Want) {
    let server = Server::start("hostile-ranges");
    let data = pseudo_random(6, BIG_LEN);
    server.dir().write("big.bin", &data);
    let small = b"a small file fetched concurrently by another client\n".to_vec();
    server.dir().write("small.txt", &small);
    // Map and hash the file first, so timings are those of range handling.
    assert_healthy(&server, "big.bin", &data);

    let prober = Prober::start(
        server.addr(),
        "/small.txt",
        small.clone(),
        Duration::from_millis(5),
    );
    const CONCURRENT: usize = 4;
    let addr = server.addr();
    let raw = raw_request(
        "GET",
        b"/big.bin",
        &[line("Range", range.as_bytes())],
        b"",
        true,
    );
    let answers: Vec<(HttpResponse, u64, Duration)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..CONCURRENT)
            .map(|_| s.spawn(|| exchange(addr, &raw)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a client thread panicked"))
            .collect()
    });
    let mut slowest = Duration::ZERO;
    for (r, wire, elapsed) in &answers {
        check_content(what, r, &data, &want);
        assert!(
            r.body.len() <= BIG_LEN + PART_HEADERS_BOUND,
            "{what}: body of {} bytes for a {BIG_LEN}-byte file",
            r.body.len()
        );
        assert!(
            *wire <= (BIG_LEN + PART_HEADERS_BOUND + 1024) as u64,
            "{what}: {wire} bytes on the wire for a {BIG_LEN}-byte file"
        );
        assert!(*elapsed < ANSWER_WITHIN, "{what}: answered in {elapsed:?}");
        slowest = slowest.max(*elapsed);
    }
    let (r, wire, _) = &answers[0];
    let row = format!(
        "{what:<55} header {:>6} B → {} body {:>8} B, wire {:>8} B, slowest of {CONCURRENT} {:>6.1} ms",
        range.len(),
        r.status,
        r.body.len(),
        wire,
        slowest.as_secs_f64() * 1e3
    );
    let report = prober.finish();
    eprintln!("range abuse on a {BIG_LEN}-byte file:");
    eprintln!("  {row}");
    eprintln!(
        "  concurrent small GETs: {} ok, {} failed, median {:?}, slowest {:?}",
        report.ok,
        report.failures.len(),
        report.median,
        report.max
    );
    assert!(
        report.failures.is_empty(),
        "{what}: concurrent small GETs failed: {:?}",
        report.failures
    );
    assert!(report.ok > 0, "{what}");
    assert!(
        report.max < ANSWER_WITHIN,
        "{what}: a concurrent small GET took {:?}",
        report.max
    );
    assert_healthy(&server, "big.bin", &data);
}

#[test]
fn range_abuse_200_open_ranges_are_one_range() {
    range_abuse(
        "200 × `0-`",
        ranges_header(std::iter::repeat_n("0-".to_owned(), 200)),
        Want::Single(0, LEN - 1),
    );
}

#[test]
fn range_abuse_apache_killer_with_an_invalid_range_is_ignored() {
    range_abuse(
        // `5-0` has last < first: the whole header is invalid and ignored (§14.1.1).
        "Apache Killer bytes=0-,5-0,5-1,…,5-1299",
        format!(
            "bytes=0-,{}",
            (0..1300)
                .map(|i| format!("5-{i}"))
                .collect::<Vec<_>>()
                .join(",")
        ),
        Want::Whole,
    );
}

#[test]
fn range_abuse_apache_killer_all_valid_is_one_range() {
    range_abuse(
        "Apache Killer, all valid: bytes=0-,5-5,5-6,…,5-1304",
        format!(
            "bytes=0-,{}",
            (5..1305)
                .map(|i| format!("5-{i}"))
                .collect::<Vec<_>>()
                .join(",")
        ),
        Want::Single(0, LEN - 1),
    );
}

#[test]
fn range_abuse_overlapping_sliding_ranges_are_merged() {
    range_abuse(
        "1300 overlapping sliding ranges (i·1000)-(i·1000+1999)",
        ranges_header((0..1300u64).map(|i| format!("{}-{}", i * 1000, i * 1000 + 1999))),
        Want::Single(0, 1299 * 1000 + 1999),
    );
}

#[test]
fn range_abuse_nested_ranges_are_merged() {
    range_abuse(
        "1300 nested ranges i-(len-1-i)",
        ranges_header((0..1300u64).map(|i| format!("{i}-{}", LEN - 1 - i))),
        Want::Single(0, LEN - 1),
    );
}

#[test]
fn range_abuse_adjacent_one_byte_ranges_are_merged() {
    range_abuse(
        "1000 one-byte ranges, descending, adjacent",
        ranges_header((0..1000u64).rev().map(|i| format!("{i}-{i}"))),
        Want::Single(0, 999),
    );
}

#[test]
fn range_abuse_far_apart_one_byte_ranges_get_the_whole_file() {
    let far_apart_desc: Vec<u64> = (0..1000u64).rev().map(|i| i * 3000).collect();
    assert!(far_apart_desc[0] < LEN);
    range_abuse(
        "1000 one-byte ranges, descending, 3000 bytes apart",
        ranges_header(far_apart_desc.iter().map(|p| format!("{p}-{p}"))),
        Want::Whole,
    );
}

#[test]
fn range_abuse_16_kib_range_header_gets_the_whole_file() {
    let sixteen_kib = {
        let mut specs = Vec::new();
        let mut size = "bytes=".len();
        let mut i = 0u64;
        while size < 16 * 1024 {
            let p = (i * 2_713 + 7) % LEN;
            let s = format!("{p}-{}", p + 1);
            size += s.len() + 1;
            specs.push(s);
            i += 1;
        }
        ranges_header(specs)
    };
    range_abuse("~16 KiB Range header (scattered)", sixteen_kib, Want::Whole);
}

/// `n` far-apart 100-byte ranges, in descending order: parts follow the request's
/// order. 64 is the most a multipart answer may have; 65 is answered with the whole
/// file.
fn far_apart_ranges(n: u64) -> Vec<(u64, u64)> {
    (0..n)
        .rev()
        .map(|i| (i * 40_000, i * 40_000 + 99))
        .collect()
}

/// The Range header asking for `ranges`.
fn spec(ranges: &[(u64, u64)]) -> String {
    ranges_header(ranges.iter().map(|(a, b)| format!("{a}-{b}")))
}

#[test]
fn range_abuse_64_far_apart_ranges_are_64_parts() {
    let parts_64 = far_apart_ranges(64);
    range_abuse(
        "64 far-apart ranges (the part bound)",
        spec(&parts_64),
        Want::Multi(parts_64),
    );
}

#[test]
fn range_abuse_65_far_apart_ranges_get_the_whole_file() {
    let parts_65 = far_apart_ranges(65);
    range_abuse(
        "65 far-apart ranges (one too many)",
        spec(&parts_65),
        Want::Whole,
    );
}

// ---------------------------------------------------------------------------------
// Paths
// ---------------------------------------------------------------------------------

/// A served root with things around and inside it that must never be served:
///
/// ```text
/// parent/
///   secret.txt                 SECRET (next to the root)
///   root/                      the served directory
///     public.txt               PUBLIC
///     sub/public.txt           PUBLIC
///     emptydir/                no index
///     .env, .git/config        HIDDEN (dot-files)
///     leak.txt -> ../secret.txt
///     abs-leak.txt -> /…/parent/secret.txt
///     up -> ..                 (directory link out of the root)
///     etc -> /etc
///     inside.txt -> public.txt (a link inside the root: served)
/// ```
struct Jail {
    server: Server,
    _parent: TempDir,
}

const PUBLIC: &[u8] = b"public content, fine to serve\n";
const SECRET: &[u8] = b"SECRET-7f3a9c1e-next-to-the-root\n";
const HIDDEN: &[u8] = b"HIDDEN-5b2d8e40-dotfile-content\n";

impl Jail {
    fn new(name: &str) -> Jail {
        use std::os::unix::fs::symlink;
        let parent = TempDir::new(name);
        let secret = parent.write("secret.txt", SECRET);
        let root = parent.child("root");
        root.write("public.txt", PUBLIC);
        std::fs::create_dir(root.join("sub")).unwrap();
        root.write("sub/public.txt", PUBLIC);
        std::fs::create_dir(root.join("emptydir")).unwrap();
        root.write(".env", HIDDEN);
        std::fs::create_dir(root.join(".git")).unwrap();
        root.write(".git/config", HIDDEN);
        symlink("../secret.txt", root.join("leak.txt")).unwrap();
        symlink(&secret, root.join("abs-leak.txt")).unwrap();
        symlink("..", root.join("up")).unwrap();
        symlink("/etc", root.join("etc")).unwrap();
        symlink("public.txt", root.join("inside.txt")).unwrap();
        let server = Server::start_in(root);
        Jail {
            server,
            _parent: parent,
        }
    }
}

const NOT_FOUND: &[u16] = &[404];
const REFUSED: &[u16] = &[400, 404];
const LONG: &[u16] = &[404, 414, 431, 400];

/// (what, raw request-target, allowed statuses, Location wanted for a 308)
type PathCase = (&'static str, Vec<u8>, &'static [u16], Option<&'static str>);

/// Paths of issue 6 as raw request lines, on a keep-alive connection followed by a
/// normal request on the same connection, against a fresh [`Jail`] (`cases` may use
/// its server's port). Each answer has an allowed status (404 for what the file server
/// refuses; a parser refusal 400/414/431 for what never reaches it; 308 for a
/// directory without its slash; 200 only for the positive controls, with the public
/// bytes); neither the secret next to the root nor a dot-file's content appears in any
/// answer, head or body; nothing is 5xx; every answer comes within [`ANSWER_WITHIN`];
/// a routed answer leaves the connection usable.
fn hostile_paths(family: &str, cases: impl FnOnce(&Server) -> Vec<PathCase>) {
    let jail = Jail::new("hostile-paths");
    let server = &jail.server;
    let cases = cases(server);

    let mut table = Vec::new();
    for (what, target, allowed, location) in &cases {
        let raw = raw_request("GET", target, &[], b"", false);
        let (r, elapsed, after) =
            hostile_then_normal(server.addr(), what, &raw, false, "/public.txt", PUBLIC);
        let head_text = format!("{:?}", r.headers);
        for (name, marker) in [("secret", SECRET), ("dot-file", HIDDEN)] {
            let marker = &marker[..16];
            assert!(
                !contains(&r.body, marker) && !contains(head_text.as_bytes(), marker),
                "{what}: the {name} leaked"
            );
        }
        assert!(r.status < 500, "{what}: {} {:?}", r.status, r.headers);
        assert!(
            allowed.contains(&r.status),
            "{what}: status {} not in {allowed:?}; {:?}",
            r.status,
            r.headers
        );
        if r.status == 200 {
            assert_eq!(r.body, PUBLIC, "{what}");
        }
        if let Some(loc) = location {
            assert_eq!(r.header("Location"), Some(*loc), "{what}");
        }
        table.push(format!(
            "{what:<45} target {:>6} B → {} ({:?}) in {:>5.1} ms",
            target.len(),
            r.status,
            after,
            elapsed.as_secs_f64() * 1e3
        ));
    }
    eprintln!("hostile paths ({family}):");
    for l in &table {
        eprintln!("  {l}");
    }
    assert_healthy(server, "public.txt", PUBLIC);
}

#[test]
fn paths_controls_are_served_or_missing() {
    hostile_paths("controls", |_| {
        vec![
            (
                "control: /public.txt",
                b"/public.txt".to_vec(),
                &[200],
                None,
            ),
            (
                "control: link inside the root",
                b"/inside.txt".to_vec(),
                &[200],
                None,
            ),
            (
                "control: query is not a path",
                b"/public.txt?../../secret.txt".to_vec(),
                &[200],
                None,
            ),
            (
                "control: missing file",
                b"/nope.txt".to_vec(),
                NOT_FOUND,
                None,
            ),
        ]
    });
}

#[test]
fn paths_with_dot_segments_or_encoded_separators_never_leave_the_root() {
    hostile_paths("dot segments, encoded separators", |server| {
        let absolute_form = format!("http://127.0.0.1:{}/../secret.txt", server.port());
        vec![
            ("raw ..", b"/../secret.txt".to_vec(), REFUSED, None),
            (
                "raw .. inside",
                b"/sub/../../secret.txt".to_vec(),
                REFUSED,
                None,
            ),
            ("raw .", b"/./public.txt".to_vec(), REFUSED, None),
            ("%2e%2e", b"/%2e%2e/secret.txt".to_vec(), REFUSED, None),
            ("%2E%2e%2F", b"/%2E%2e%2Fsecret.txt".to_vec(), REFUSED, None),
            ("..%2f", b"/..%2fsecret.txt".to_vec(), REFUSED, None),
            (
                "%2f inside the root",
                b"/sub%2fpublic.txt".to_vec(),
                REFUSED,
                None,
            ),
            (
                "absolute-form with ..",
                absolute_form.into_bytes(),
                REFUSED,
                None,
            ),
            ("trailing /..", b"/public.txt/..".to_vec(), REFUSED, None),
        ]
    });
}

#[test]
fn paths_double_encoded_or_with_backslashes_never_leave_the_root() {
    hostile_paths("double encoding, backslashes", |_| {
        vec![
            (
                "double-encoded %252e%252e",
                b"/%252e%252e/secret.txt".to_vec(),
                REFUSED,
                None,
            ),
            (
                "double-encoded %252e%252e%252f",
                b"/%252e%252e%252fsecret.txt".to_vec(),
                REFUSED,
                None,
            ),
            ("..%5c", b"/..%5csecret.txt".to_vec(), REFUSED, None),
            ("raw backslash", b"/..\\secret.txt".to_vec(), REFUSED, None),
        ]
    });
}

#[test]
fn paths_with_nul_or_invalid_utf8_get_a_clear_status() {
    hostile_paths("NUL, invalid and overlong UTF-8", |_| {
        vec![
            ("NUL %00", b"/public.txt%00.png".to_vec(), REFUSED, None),
            ("lone %00", b"/%00".to_vec(), REFUSED, None),
            ("invalid UTF-8 %ff%fe", b"/%ff%fe".to_vec(), REFUSED, None),
            (
                "overlong UTF-8 dots %c0%ae%c0%ae",
                b"/%c0%ae%c0%ae/secret.txt".to_vec(),
                REFUSED,
                None,
            ),
            (
                "IIS %u002e%u002e",
                b"/%u002e%u002e/secret.txt".to_vec(),
                REFUSED,
                None,
            ),
            ("raw bytes 0xff 0xfe", b"/\xff\xfe".to_vec(), REFUSED, None),
        ]
    });
}

#[test]
fn very_long_paths_get_404_or_a_parser_refusal() {
    hostile_paths("long paths", |_| {
        let long_4000_segments = format!("/{}", "a/".repeat(2000));
        let long_4000_one = format!("/{}", "a".repeat(4000));
        let long_64k = format!("/{}", "b".repeat(64 * 1024));
        let long_64k_dots = format!("/{}secret.txt", "../".repeat(64 * 1024 / 3));
        vec![
            (
                "4000-char path, 2000 segments",
                long_4000_segments.into_bytes(),
                LONG,
                None,
            ),
            (
                "4000-char path, one segment",
                long_4000_one.into_bytes(),
                LONG,
                None,
            ),
            ("64 KiB path", long_64k.into_bytes(), LONG, None),
            ("64 KiB of ../", long_64k_dots.into_bytes(), LONG, None),
        ]
    });
}

#[test]
fn paths_through_symlinks_out_of_the_root_are_404() {
    hostile_paths("symlinks out of the root", |_| {
        vec![
            (
                "symlink to ../secret.txt",
                b"/leak.txt".to_vec(),
                NOT_FOUND,
                None,
            ),
            (
                "symlink to /abs/secret.txt",
                b"/abs-leak.txt".to_vec(),
                NOT_FOUND,
                None,
            ),
            (
                "directory symlink up -> ..",
                b"/up/secret.txt".to_vec(),
                NOT_FOUND,
                None,
            ),
            (
                "directory symlink etc -> /etc",
                b"/etc/passwd".to_vec(),
                NOT_FOUND,
                None,
            ),
            (
                "directory symlink itself (/up/)",
                b"/up/".to_vec(),
                NOT_FOUND,
                None,
            ),
        ]
    });
}

#[test]
fn directories_without_index_are_404_or_redirected_within_the_site() {
    hostile_paths("directories", |_| {
        vec![
            (
                "directory without index",
                b"/emptydir/".to_vec(),
                NOT_FOUND,
                None,
            ),
            (
                "directory without slash",
                b"/emptydir".to_vec(),
                &[308],
                Some("/emptydir/"),
            ),
            (
                "//directory (no protocol-relative redirect)",
                b"//emptydir".to_vec(),
                &[308],
                Some("/emptydir/"),
            ),
        ]
    });
}

#[test]
fn dot_files_are_404() {
    hostile_paths("dot-files", |_| {
        vec![
            ("dot-file /.env", b"/.env".to_vec(), NOT_FOUND, None),
            ("dot-file %2eenv", b"/%2eenv".to_vec(), NOT_FOUND, None),
            ("/.git/config", b"/.git/config".to_vec(), NOT_FOUND, None),
            ("/.git/", b"/.git/".to_vec(), NOT_FOUND, None),
        ]
    });
}

// ---------------------------------------------------------------------------------
// Headers and methods
// ---------------------------------------------------------------------------------

/// What a header case must get.
#[derive(Clone, Debug)]
enum Expect {
    /// This content (status included).
    Content(Want),
    /// This status and no content to check (304, 412, 416, 404, 400, 431).
    Status(u16),
    /// One of these: where Rocket, not this crate, decides (see the case).
    OneOf(&'static [u16]),
}

/// (what, method, header lines, expectation)
type HeaderCase = (&'static str, &'static str, Vec<Vec<u8>>, Expect);

/// The answer to `Range: bytes=100-199`.
fn partial() -> Expect {
    Expect::Content(Want::Single(100, 199))
}

/// The whole file.
fn whole() -> Expect {
    Expect::Content(Want::Whole)
}

/// A 60 KiB entity tag.
fn long_tag() -> Vec<u8> {
    format!("\"{}\"", "a".repeat(60_000)).into_bytes()
}

/// 60 KiB of garbage.
fn long_garbage() -> Vec<u8> {
    "x".repeat(60_000).into_bytes()
}

/// A date followed by 60 KiB of ` GMT`.
fn long_date() -> Vec<u8> {
    format!("Sun, 06 Nov 1994 08:49:37 GMT{}", " GMT".repeat(15_000)).into_bytes()
}

/// 5000 entity tags that match nothing.
fn many_tags() -> String {
    (0..5000)
        .map(|i| format!("\"{i:08x}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An entity tag in non-ASCII UTF-8.
const UTF8: &[u8] = "\"é☃\u{1F600}\"".as_bytes();
/// An entity tag that is not UTF-8 (obs-text).
const INVALID_UTF8: &[u8] = b"\"\xff\xfe\x80\"";
/// A date followed by a Latin-1 byte.
const LATIN1_DATE: &[u8] = b"Sun, 06 Nov 1994 08:49:37 GMT\xe9";

/// A server with a 100 000-byte file `/data.bin` for the header cases, and what they
/// need to know of it.
struct HeaderTarget {
    server: Server,
    data: Vec<u8>,
    etag: String,
    len: u64,
    range: Vec<u8>,
}

impl HeaderTarget {
    fn new(name: &str) -> HeaderTarget {
        let server = Server::start(name);
        let data = pseudo_random(66, 100_000);
        server.dir().write("data.bin", &data);
        let etag = etag_of(&data);
        let len = data.len() as u64;
        HeaderTarget {
            server,
            data,
            etag,
            len,
            range: line("Range", b"bytes=100-199"),
        }
    }

    /// `h` and `Range: bytes=100-199`.
    fn with_range(&self, h: Vec<u8>) -> Vec<Vec<u8>> {
        vec![h, self.range.clone()]
    }

    /// `W/` and the current tag.
    fn weak_real(&self) -> String {
        format!("W/{}", self.etag)
    }

    /// Sends each case (keep-alive, then a normal request on the same connection) and
    /// checks its answer: the expectation of the case, never a 5xx, never a hang, never
    /// a 206 for a method other than GET, a usable connection afterwards for any routed
    /// answer, the tag on a 304 and `bytes */len` on a 416. Ends with a health check.
    fn run(&self, family: &str, cases: Vec<HeaderCase>) {
        let (server, data, etag, len) = (&self.server, &self.data, &self.etag, self.len);
        let mut table = Vec::new();
        for (what, method, lines, expect) in &cases {
            let body: &[u8] = if matches!(*method, "POST" | "PUT" | "PATCH") {
                b"hello"
            } else {
                b""
            };
            let raw = raw_request(method, b"/data.bin", lines, body, false);
            let head_request = *method == "HEAD";
            let (r, elapsed, after) =
                hostile_then_normal(server.addr(), what, &raw, head_request, "/data.bin", data);
            assert!(r.status < 500, "{what}: {} {:?}", r.status, r.headers);
            if !matches!(*method, "GET" | "HEAD") || head_request {
                assert_ne!(r.status, 206, "{what}: a range for {method}");
            }
            match expect {
                Expect::Content(want) if head_request => {
                    assert_eq!(*want, Want::Whole, "{what}");
                    assert_eq!(r.status, 200, "{what}: {:?}", r.headers);
                    assert_eq!(r.content_length(), Some(len), "{what}");
                    assert_eq!(r.header("Content-Range"), None, "{what}");
                }
                Expect::Content(want) => check_content(what, &r, data, want),
                Expect::Status(s) => assert_eq!(r.status, *s, "{what}: {:?}", r.headers),
                Expect::OneOf(set) => {
                    assert!(
                        set.contains(&r.status),
                        "{what}: {} {:?}",
                        r.status,
                        r.headers
                    );
                    match r.status {
                        200 => check_content(what, &r, data, &Want::Whole),
                        206 => check_content(what, &r, data, &Want::Single(100, 199)),
                        _ => {}
                    }
                }
            }
            if r.status == 304 {
                assert_eq!(r.header("ETag"), Some(etag.as_str()), "{what}: 304 ETag");
            }
            if r.status == 416 {
                assert_eq!(
                    r.header("Content-Range"),
                    Some(format!("bytes */{len}").as_str()),
                    "{what}"
                );
            }
            let size: usize = lines.iter().map(Vec::len).sum();
            table.push(format!(
                "{what:<45} {method:<7} headers {size:>6} B → {} body {:>6} B ({after:?}) in {:>5.1} ms",
                r.status,
                r.body.len(),
                elapsed.as_secs_f64() * 1e3
            ));
        }
        eprintln!("hostile headers and methods ({family}):");
        for l in &table {
            eprintln!("  {l}");
        }
        assert_healthy(server, "data.bin", data);
    }
}

// The tests below send malformed conditionals (garbage, 60 KiB long, non-ASCII
// UTF-8, invalid UTF-8 bytes), duplicate Range lines, Range with every other method,
// and a few over-the-limit header sections, each with `Range: bytes=100-199` on a
// 100 000-byte file unless said otherwise. The expectations are the RFC's (cited per
// case); every case also gets the checks of `HeaderTarget::run`.
//
// Invalid-UTF-8 values are a case apart: Rocket 0.5.2 drops such header fields before
// any route sees them ("Rocket only supports UTF-8 header values. Dropping header."),
// so for If-Match and If-Range the request is served as if they were absent; see
// `invalid_utf8_conditionals_are_invisible_rocket_limitation` below.

/// §13.1.1: no listed tag matches (strong comparison) → false → 412.
#[test]
fn malformed_if_match_is_412() {
    let t = HeaderTarget::new("hostile-if-match");
    let many_tags_then_real = format!("{}, {}", many_tags(), t.etag);
    t.run(
        "If-Match",
        vec![
            (
                "If-Match garbage",
                "GET",
                t.with_range(line("If-Match", b"garbage, ,,")),
                Expect::Status(412),
            ),
            (
                "If-Match 60 KiB tag",
                "GET",
                t.with_range(line("If-Match", &long_tag())),
                Expect::Status(412),
            ),
            (
                "If-Match 5000 other tags",
                "GET",
                t.with_range(line("If-Match", many_tags().as_bytes())),
                Expect::Status(412),
            ),
            (
                "If-Match 5000 tags, then the current one",
                "GET",
                t.with_range(line("If-Match", many_tags_then_real.as_bytes())),
                partial(),
            ),
            (
                "If-Match non-ASCII UTF-8",
                "GET",
                t.with_range(line("If-Match", UTF8)),
                Expect::Status(412),
            ),
            (
                // Rocket drops the field: served as without If-Match (206). RFC: 412.
                "If-Match invalid UTF-8 (dropped by Rocket)",
                "GET",
                t.with_range(line("If-Match", INVALID_UTF8)),
                Expect::OneOf(&[206, 412]),
            ),
            (
                "If-Match weak form of the current tag",
                "GET",
                t.with_range(line("If-Match", t.weak_real().as_bytes())),
                Expect::Status(412),
            ),
        ],
    );
}

/// §13.1.2: nothing matches → true → go on (206).
#[test]
fn malformed_if_none_match_is_ignored() {
    let t = HeaderTarget::new("hostile-if-none-match");
    t.run(
        "If-None-Match",
        vec![
            (
                "If-None-Match garbage",
                "GET",
                t.with_range(line("If-None-Match", b"garbage")),
                partial(),
            ),
            (
                "If-None-Match 60 KiB",
                "GET",
                t.with_range(line("If-None-Match", &long_garbage())),
                partial(),
            ),
            (
                "If-None-Match 5000 other tags",
                "GET",
                t.with_range(line("If-None-Match", many_tags().as_bytes())),
                partial(),
            ),
            (
                "If-None-Match non-ASCII UTF-8",
                "GET",
                t.with_range(line("If-None-Match", UTF8)),
                partial(),
            ),
            (
                "If-None-Match invalid UTF-8",
                "GET",
                t.with_range(line("If-None-Match", INVALID_UTF8)),
                partial(),
            ),
            (
                "control: If-None-Match weak current tag",
                "GET",
                t.with_range(line("If-None-Match", t.weak_real().as_bytes())),
                Expect::Status(304),
            ),
        ],
    );
}

/// §13.1.3: an invalid HTTP-date MUST be ignored.
#[test]
fn malformed_if_modified_since_is_ignored() {
    let t = HeaderTarget::new("hostile-if-modified-since");
    t.run(
        "If-Modified-Since",
        vec![
            (
                "If-Modified-Since garbage",
                "GET",
                t.with_range(line("If-Modified-Since", b"yesterday-ish")),
                partial(),
            ),
            (
                "If-Modified-Since 60 KiB",
                "GET",
                t.with_range(line("If-Modified-Since", &long_date())),
                partial(),
            ),
            (
                "If-Modified-Since year 99999",
                "GET",
                t.with_range(line("If-Modified-Since", b"Fri, 31 Dec 99999 23:59:59 GMT")),
                partial(),
            ),
            (
                "If-Modified-Since non-ASCII UTF-8",
                "GET",
                t.with_range(line("If-Modified-Since", "Sön, 06 Növ 1994".as_bytes())),
                partial(),
            ),
            (
                "If-Modified-Since invalid UTF-8",
                "GET",
                t.with_range(line("If-Modified-Since", LATIN1_DATE)),
                partial(),
            ),
        ],
    );
}

/// §13.1.4: an invalid HTTP-date MUST be ignored.
#[test]
fn malformed_if_unmodified_since_is_ignored() {
    let t = HeaderTarget::new("hostile-if-unmodified-since");
    t.run(
        "If-Unmodified-Since",
        vec![
            (
                "If-Unmodified-Since garbage",
                "GET",
                t.with_range(line("If-Unmodified-Since", b"0")),
                partial(),
            ),
            (
                "If-Unmodified-Since 60 KiB",
                "GET",
                t.with_range(line("If-Unmodified-Since", &long_date())),
                partial(),
            ),
            (
                "If-Unmodified-Since non-ASCII UTF-8",
                "GET",
                t.with_range(line("If-Unmodified-Since", "Sön, 06 Növ 1994".as_bytes())),
                partial(),
            ),
            (
                "If-Unmodified-Since invalid UTF-8",
                "GET",
                t.with_range(line("If-Unmodified-Since", LATIN1_DATE)),
                partial(),
            ),
        ],
    );
}

/// §13.1.5: a validator that does not match → ignore Range → 200 whole.
#[test]
fn malformed_if_range_gives_the_whole_file() {
    let t = HeaderTarget::new("hostile-if-range");
    t.run(
        "If-Range",
        vec![
            (
                "If-Range garbage",
                "GET",
                t.with_range(line("If-Range", b"garbage")),
                whole(),
            ),
            (
                "If-Range 60 KiB tag",
                "GET",
                t.with_range(line("If-Range", &long_tag())),
                whole(),
            ),
            (
                "If-Range 60 KiB date",
                "GET",
                t.with_range(line("If-Range", &long_date())),
                whole(),
            ),
            (
                "If-Range weak current tag",
                "GET",
                t.with_range(line("If-Range", t.weak_real().as_bytes())),
                whole(),
            ),
            (
                "If-Range non-ASCII UTF-8",
                "GET",
                t.with_range(line("If-Range", UTF8)),
                whole(),
            ),
            (
                // Rocket drops the field: served as without If-Range (206). RFC: 200.
                "If-Range invalid UTF-8 (dropped by Rocket)",
                "GET",
                t.with_range(line("If-Range", INVALID_UTF8)),
                Expect::OneOf(&[200, 206]),
            ),
            (
                "control: If-Range current tag",
                "GET",
                t.with_range(line("If-Range", t.etag.as_bytes())),
                partial(),
            ),
            (
                "If-Range twice (current tag both times)",
                "GET",
                vec![
                    line("If-Range", t.etag.as_bytes()),
                    line("If-Range", t.etag.as_bytes()),
                    t.range.clone(),
                ],
                whole(),
            ),
        ],
    );
}

/// Range itself: invalid fields are ignored, numbers beyond u64 are clamped or
/// unsatisfiable.
#[test]
fn malformed_range_fields_are_ignored_or_clamped() {
    let t = HeaderTarget::new("hostile-range");
    let len = t.len;
    t.run(
        "Range",
        vec![
            (
                "duplicate Range lines",
                "GET",
                vec![t.range.clone(), line("Range", b"bytes=300-399")],
                whole(),
            ),
            (
                "Range non-ASCII UTF-8",
                "GET",
                vec![line("Range", "bytes=1é-2".as_bytes())],
                whole(),
            ),
            (
                "Range invalid UTF-8",
                "GET",
                vec![line("Range", b"bytes=1\xff-2")],
                whole(),
            ),
            (
                "Range 60 KiB garbage",
                "GET",
                vec![line(
                    "Range",
                    &[b"bytes=".as_slice(), &long_garbage()].concat(),
                )],
                whole(),
            ),
            (
                "Range first-pos beyond u64",
                "GET",
                vec![line("Range", b"bytes=99999999999999999999999999-")],
                Expect::Status(416),
            ),
            (
                "Range last-pos beyond u64",
                "GET",
                vec![line("Range", b"bytes=0-99999999999999999999999999")],
                Expect::Content(Want::Single(0, len - 1)),
            ),
            (
                "Range suffix beyond u64",
                "GET",
                vec![line("Range", b"bytes=-99999999999999999999999999")],
                Expect::Content(Want::Single(0, len - 1)),
            ),
        ],
    );
}

/// §14.2: Range is defined for GET only. HEAD answers as GET without Range; other
/// methods are not routed by the file server.
#[test]
fn range_with_other_methods_is_never_206() {
    let t = HeaderTarget::new("hostile-methods");
    let mut cases: Vec<HeaderCase> = vec![
        ("HEAD with Range", "HEAD", vec![t.range.clone()], whole()),
        // Routed methods only: an unknown method is refused by Rocket.
        (
            "unknown method FOO with Range",
            "FOO",
            vec![t.range.clone()],
            Expect::Status(400),
        ),
    ];
    for method in ["POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE"] {
        // Not routed by the file server: 404 (or 405), never a range.
        cases.push((
            method,
            method,
            vec![t.range.clone()],
            Expect::OneOf(&[404, 405]),
        ));
    }
    t.run("methods", cases);
}

/// hyper's limit on the number of header fields (100).
#[test]
fn too_many_header_fields_are_refused_by_the_parser() {
    let t = HeaderTarget::new("hostile-header-count");
    t.run(
        "header section limits",
        vec![(
            "150 header fields",
            "GET",
            (0..150)
                .map(|i| line(&format!("X-Junk-{i}"), b"v"))
                .chain([t.range.clone()])
                .collect(),
            Expect::OneOf(&[431, 400]),
        )],
    );
}

/// Conditionals whose value is not valid UTF-8 (entity tags may contain obs-text,
/// %x80-FF, §8.8.3). RFC 9110 wants an If-Match that matches nothing to give 412
/// (§13.1.1) and a non-matching If-Range to make the Range ignored, 200 (§13.1.5).
///
/// Rocket 0.5.2 (`Request::from_hyp`) drops every header field whose value is not
/// UTF-8, so the crate never sees them and serves the request as if they were absent:
/// 206 in both cases. This test pins that documented limitation (docs/design.md, "Limits, plainly"):
/// the answer is the requested range, correct bytes, no 5xx, no hang. Should a Rocket
/// upgrade start passing such values through, this test fails and the RFC answers
/// (412 and 200) become reachable — then assert those instead.
#[test]
fn invalid_utf8_conditionals_are_invisible_rocket_limitation() {
    let server = Server::start("hostile-utf8");
    let data = pseudo_random(67, 10_000);
    server.dir().write("data.bin", &data);
    let range = line("Range", b"bytes=100-199");
    for name in ["If-Match", "If-Range"] {
        let raw = raw_request(
            "GET",
            b"/data.bin",
            &[line(name, b"\"\xff\xfe\x80\""), range.clone()],
            b"",
            true,
        );
        let (r, _, _) = exchange(server.addr(), &raw);
        assert_eq!(r.status, 206, "{name} with invalid UTF-8: {:?}", r.headers);
        assert_eq!(r.body, &data[100..200]);
    }
}
