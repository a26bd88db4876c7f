//! The access log: the library fairing (`AccessLog::fairing(writer)`) in process, and
//! the binary's `--access-log` flag on the real binary.
//!
//! * the part list is that of the response sent, also when the file server built an
//!   answer for a cached version and threw it away because the file had changed;
//! * every response gives exactly one line in the combined log format, with the
//!   status and the body bytes the client got (HEAD and 304: 0; multipart: the
//!   multipart body), the extended suffix (time, `Range`, part list), and every
//!   client-controlled field escaped;
//! * a burst of requests on keep-alive connections from several threads gives exactly
//!   one line per request;
//! * a download the client abandons, and one cut because the file was truncated under
//!   it, log the bytes that went out: fewer than `Content-Length`, at least what the
//!   client received;
//! * `--access-log -` writes the lines to stdout and quiets Rocket's own lines; a
//!   path that cannot be opened is a clear error;
//! * HTTP/2 requests are logged `HTTP/2.0` (ignored by default: needs curl);
//! * the binary reopens its log on `SIGUSR1` and `SIGHUP`: rotated twice under load
//!   (renamed, then signalled), every response has exactly one whole line across the
//!   three files, and each client's lines move from file to file in order.

#[path = "common/binary.rs"]
mod binary;
mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use binary::{small_buffer_conn, wait_for_lines, Binary, LogLine};
use common::{etag_of, pseudo_random, request_bytes, Conn, Server, TempDir};
use rocket_mmap::AccessLog;

const MIB: usize = 1 << 20;

/// A writer into shared memory, for the library fairing.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn lines(&self) -> Vec<String> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .expect("the log is ASCII")
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Waits (at most 10 s) for at least `n` lines.
    fn wait_for(&self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let lines = self.lines();
            if lines.len() >= n || Instant::now() > deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn logged_server(name: &str, extended: bool) -> (Server, Shared) {
    let dir = TempDir::new(name);
    dir.write("a.txt", &pseudo_random(1, 1000));
    let out = Shared::default();
    let log = AccessLog::fairing(out.clone()).extended(extended);
    let server = Server::start_in_with(dir, move |rocket| rocket.attach(log));
    (server, out)
}

/// The lines for requests other than the harness's start-up probe.
fn ours(lines: &[String]) -> Vec<LogLine> {
    lines
        .iter()
        .map(|l| LogLine::parse(l))
        .filter(|l| !l.target.contains("harness-probe"))
        .collect()
}

#[test]
fn one_combined_line_per_response_with_the_bytes_the_client_got() {
    let (server, out) = logged_server("access-lines", true);
    let etag = etag_of(&pseudo_random(1, 1000));
    // method, path, headers, status, part list served
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], u16, &'a str);
    let cases: &[Case] = &[
        ("GET", "/a.txt", &[], 200, "-"),
        ("GET", "/a.txt", &[("Range", "bytes=0-9")], 206, "0-9"),
        (
            "GET",
            "/a.txt",
            &[("Range", "bytes=500-599,0-1")],
            206,
            "500-599,0-1",
        ),
        ("GET", "/a.txt", &[("If-None-Match", &etag)], 304, "-"),
        ("HEAD", "/a.txt", &[], 200, "-"),
        ("GET", "/a.txt", &[("Range", "bytes=5000-")], 416, "-"),
        ("GET", "/missing", &[], 404, "-"),
    ];
    let mut got = Vec::new();
    for (method, path, headers, status, _) in cases {
        let r = server.request(method, path, headers);
        assert_eq!(r.status, *status, "{method} {path} {headers:?}");
        got.push(r.body.len() as u64);
    }
    let lines = ours(&out.wait_for(cases.len() + 1));
    assert_eq!(
        lines.len(),
        cases.len(),
        "one line per response: {lines:#?}"
    );
    for ((line, (method, path, headers, status, served)), body) in lines.iter().zip(cases).zip(&got)
    {
        assert_eq!(line.remote, "127.0.0.1");
        assert_eq!(
            (line.method.as_str(), line.target.as_str()),
            (*method, *path)
        );
        assert_eq!(line.protocol, "HTTP/1.1");
        assert_eq!(line.status, *status);
        assert_eq!(line.bytes, *body, "{line:?}: the bytes the client got");
        assert_eq!(
            (line.referer.as_str(), line.user_agent.as_str()),
            ("-", "-")
        );
        let (ms, range, part_list) = line.extended.clone().expect("extended suffix");
        assert!((0.0..10_000.0).contains(&ms), "{ms}");
        let sent_range = headers
            .iter()
            .find(|(k, _)| *k == "Range")
            .map_or("-", |(_, v)| *v);
        assert_eq!(range, sent_range);
        assert_eq!(part_list, *served, "{line:?}");
        // [10/Oct/2000:13:55:36 +0000]
        assert_eq!(line.time.len(), 26, "{}", line.time);
        assert!(line.time.ends_with(" +0000"), "{}", line.time);
    }
    // HEAD and 304 send no body bytes, whatever the Content-Length.
    assert_eq!(lines[3].bytes, 0);
    assert_eq!(lines[4].bytes, 0);
    assert!(lines[2].bytes > 102, "a multipart body is logged whole");
}

/// The part list logged is that of the response sent. The file server's one-`stat`
/// path builds an answer from the cached version before it checks the file; here the
/// file was rewritten shorter, so that answer (two parts of the old 1000 bytes) is
/// thrown away and the ordinary path answers from the new version (one part: the
/// second range lies past its end). The line shows the one part sent.
#[test]
fn the_logged_parts_are_those_of_the_response_sent_when_the_fast_path_falls_through() {
    let (server, out) = logged_server("access-parts-sent", true);
    // Cached, with its tag (a Range request waits for it) and its siblings known:
    // from now on the one-`stat` path answers first.
    let r = server.request("GET", "/a.txt", &[("Range", "bytes=0-99,900-999")]);
    assert_eq!(r.status, 206);
    assert!(
        r.header("Content-Type")
            .is_some_and(|ct| ct.starts_with("multipart/byteranges")),
        "two parts of the cached version"
    );
    let new = pseudo_random(7, 500);
    server.dir().write("a.txt", &new);
    let r = server.request("GET", "/a.txt", &[("Range", "bytes=0-99,900-999")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.header("Content-Range"), Some("bytes 0-99/500"));
    assert_eq!(r.body, &new[..100]);
    // And a plain range on the new version, through the one-`stat` path this time.
    let r = server.request("GET", "/a.txt", &[("Range", "bytes=10-19,400-409")]);
    assert_eq!(r.status, 206);
    let lines = ours(&out.wait_for(4));
    let parts: Vec<&str> = lines
        .iter()
        .map(|l| l.extended.as_ref().expect("extended suffix").2.as_str())
        .collect();
    assert_eq!(
        parts,
        ["0-99,900-999", "0-99", "10-19,400-409"],
        "{lines:#?}"
    );
}

#[test]
fn client_controlled_fields_are_escaped() {
    let (server, out) = logged_server("access-escape", false);
    let mut conn = Conn::open(server.addr());
    // A backslash in the target (hyper refuses a raw quote there), a quoted fake
    // field in the user agent, a backslash and non-ASCII text in the referer.
    conn.send(
        b"GET /a.txt?q=\\x HTTP/1.1\r\nHost: 127.0.0.1\r\n\
          User-Agent: evil\" 200 1 \"-\" \"forged\r\n\
          Referer: http://x/\\caf\xc3\xa9\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let r = conn.response(false).unwrap();
    assert_eq!(r.status, 200);
    let lines = out.wait_for(2);
    let line = lines
        .iter()
        .find(|l| l.contains("/a.txt?q="))
        .expect("the request's line");
    assert!(line.contains("\"GET /a.txt?q=\\x5Cx HTTP/1.1\""), "{line}");
    assert!(
        line.ends_with(
            "\"http://x/\\x5Ccaf\\xC3\\xA9\" \"evil\\x22 200 1 \\x22-\\x22 \\x22forged\""
        ),
        "{line}"
    );
    let parsed = LogLine::parse(line);
    assert_eq!(parsed.user_agent, "evil\\x22 200 1 \\x22-\\x22 \\x22forged");
    assert!(parsed.extended.is_none());
}

#[test]
fn a_burst_of_keep_alive_requests_gives_exactly_one_line_each() {
    let (server, out) = logged_server("access-burst", false);
    let etag = etag_of(&pseudo_random(1, 1000));
    const THREADS: usize = 8;
    const PER_THREAD: usize = 50;
    let addr = server.addr();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let etag = etag.clone();
            std::thread::spawn(move || {
                let mut conn = Conn::open(addr);
                let mut statuses = Vec::new();
                for i in 0..PER_THREAD {
                    let (method, path, headers): (&str, String, Vec<(&str, &str)>) = match i % 5 {
                        0 => ("GET", format!("/a.txt?t={t}&i={i}"), vec![]),
                        1 => (
                            "GET",
                            format!("/a.txt?t={t}&i={i}"),
                            vec![("Range", "bytes=1-2")],
                        ),
                        2 => (
                            "GET",
                            format!("/a.txt?t={t}&i={i}"),
                            vec![("If-None-Match", etag.as_str())],
                        ),
                        3 => ("HEAD", format!("/a.txt?t={t}&i={i}"), vec![]),
                        _ => ("GET", format!("/none?t={t}&i={i}"), vec![]),
                    };
                    conn.send(request_bytes(method, &path, &headers, false).as_bytes())
                        .unwrap();
                    let r = conn.response(method == "HEAD").unwrap();
                    statuses.push((path, r.status, r.body.len() as u64));
                }
                statuses
            })
        })
        .collect();
    let mut sent: Vec<(String, u16, u64)> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let n = THREADS * PER_THREAD;
    let lines = ours(&out.wait_for(n + 1));
    // Nothing more comes later.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(ours(&out.lines()).len(), n, "exactly one line per request");
    assert_eq!(lines.len(), n);
    let mut logged: Vec<(String, u16, u64)> = lines
        .into_iter()
        .map(|l| (l.target, l.status, l.bytes))
        .collect();
    sent.sort();
    logged.sort();
    assert_eq!(
        logged, sent,
        "each request's line, with its status and bytes"
    );
}

#[test]
fn an_abandoned_download_logs_the_bytes_that_went_out() {
    let dir = TempDir::new("access-cut");
    let big = pseudo_random(7, 64 * MIB);
    dir.write("big.bin", &big);
    dir.write("small.bin", &big[..2 * MIB]);
    let log = dir.join("access.log");
    let server = Binary::start(dir.path(), &["--access-log", log.to_str().unwrap()], &[]);
    // A complete download logs its whole length ...
    let r = common::request_at(server.addr(), "GET", "/small.bin", &[]);
    assert_eq!(r.body.len(), 2 * MIB);
    // ... an abandoned one what went out before the client left.
    let mut conn = small_buffer_conn(server.addr());
    conn.send(request_bytes("GET", "/big.bin", &[], false).as_bytes())
        .unwrap();
    let head = conn.head().unwrap();
    assert_eq!(head.content_length(), Some(64 * MIB as u64));
    let mut buf = vec![0u8; 64 * 1024];
    let mut received = 0usize;
    while received < 256 * 1024 {
        let n = conn.read_some(&mut buf).unwrap();
        assert!(n > 0, "the server closed early");
        received += n;
    }
    drop(conn);
    let lines = wait_for_lines(&log, 2, Duration::from_secs(10));
    assert_eq!(lines.len(), 2, "{lines:?}");
    let small = LogLine::parse(&lines[0]);
    assert_eq!((small.target.as_str(), small.status), ("/small.bin", 200));
    assert_eq!(small.bytes, 2 * MIB as u64);
    let cut = LogLine::parse(&lines[1]);
    assert_eq!((cut.target.as_str(), cut.status), ("/big.bin", 200));
    assert!(
        cut.bytes >= received as u64 && cut.bytes < 64 * MIB as u64,
        "logged {} bytes; the client got {received} of {}",
        cut.bytes,
        64 * MIB
    );
    println!(
        "abandoned after {} KiB received: {} KiB logged",
        received / 1024,
        cut.bytes / 1024
    );
}

#[test]
fn a_download_cut_by_truncation_logs_what_went_out() {
    let dir = TempDir::new("access-trunc");
    let len = 32 * MIB;
    let path = dir.write("t.bin", &pseudo_random(9, len));
    let log = dir.join("access.log");
    let server = Binary::start(dir.path(), &["--access-log", log.to_str().unwrap()], &[]);
    let mut conn = small_buffer_conn(server.addr());
    conn.send(request_bytes("GET", "/t.bin", &[], true).as_bytes())
        .unwrap();
    let head = conn.head().unwrap();
    assert_eq!(head.content_length(), Some(len as u64));
    let mut buf = vec![0u8; 64 * 1024];
    let mut received = 0usize;
    while received < MIB {
        let n = conn.read_some(&mut buf).unwrap();
        assert!(n > 0, "the server closed early");
        received += n;
    }
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(4096)
        .unwrap();
    // Read on until the server cuts the response.
    loop {
        match conn.read_some(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => received += n,
        }
    }
    assert!(received < len, "the response was cut");
    let lines = wait_for_lines(&log, 1, Duration::from_secs(10));
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = LogLine::parse(&lines[0]);
    assert_eq!((line.target.as_str(), line.status), ("/t.bin", 200));
    assert!(
        line.bytes >= received as u64 && line.bytes < len as u64,
        "logged {} bytes; the client got {received} of {len}",
        line.bytes
    );
}

#[test]
fn access_log_to_stdout_quiets_rockets_own_lines() {
    let dir = TempDir::new("access-stdout");
    dir.write("a.txt", b"hello");
    let quiet = Binary::start(dir.path(), &["--access-log", "-"], &[]);
    let loud = Binary::start(dir.path(), &[], &[]);
    for server in [&quiet, &loud] {
        assert_eq!(
            common::request_at(server.addr(), "GET", "/a.txt", &[]).status,
            200
        );
        assert_eq!(
            common::request_at(server.addr(), "GET", "/nope", &[]).status,
            404
        );
    }
    let wanted = [
        "\"GET /a.txt HTTP/1.1\" 200 5 ",
        "\"GET /nope HTTP/1.1\" 404 ",
    ];
    let deadline = Instant::now() + Duration::from_secs(10);
    while !wanted.iter().all(|w| quiet.output().contains(w)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = quiet.output();
    for w in wanted {
        assert_eq!(out.matches(w).count(), 1, "{w:?} once in:\n{out}");
    }
    assert!(out.starts_with("rocket-mmap serving"), "{out}");
    // Rocket's own lines: its launch line and its per-request lines.
    let rockets = [
        "Rocket has launched",
        "No matching routes",
        "Matched:",
        ">> ",
    ];
    for r in rockets {
        assert!(!out.contains(r), "{r:?} in:\n{out}");
    }
    // Without the flag, Rocket does print them: the check above can fail.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !loud.output().contains("No matching routes") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = loud.output();
    assert!(
        out.contains("Rocket has launched") && out.contains("No matching routes"),
        "{out}"
    );
    assert!(!out.contains("\"GET /a.txt HTTP/1.1\""), "{out}");
}

#[test]
fn an_access_log_that_cannot_be_opened_is_a_clear_error() {
    let dir = TempDir::new("access-bad-path");
    let out = std::process::Command::new(binary::BIN)
        .arg(dir.path())
        .args(["--access-log", "/nonexistent-dir/for/the/access.log"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot open the access log"), "{err}");
}

#[test]
#[ignore = "needs curl; .ci/run runs it"]
fn http2_requests_are_logged_as_http2() {
    common::require_tool("curl");
    let (server, out) = logged_server("access-h2", false);
    for flag in ["--http2-prior-knowledge", "--http1.1"] {
        common::run_ok(
            std::process::Command::new("curl")
                .args(["-sS", "-o", "/dev/null", flag])
                .arg(server.url(&format!("a.txt?{}", flag.trim_start_matches('-')))),
        );
    }
    let lines = ours(&out.wait_for(3));
    let protocols: Vec<(&str, &str)> = lines
        .iter()
        .map(|l| (l.target.as_str(), l.protocol.as_str()))
        .collect();
    assert_eq!(
        protocols,
        vec![
            ("/a.txt?http2-prior-knowledge", "HTTP/2.0"),
            ("/a.txt?http1.1", "HTTP/1.1")
        ]
    );
    assert!(lines.iter().all(|l| l.status == 200 && l.bytes == 1000));
}

#[test]
#[cfg(unix)]
fn rotation_under_load_loses_and_splits_no_line() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = TempDir::new("access-rotate");
    dir.write("a.txt", &pseudo_random(1, 1000));
    let log = dir.join("access.log");
    let server = Binary::start(dir.path(), &["--access-log", log.to_str().unwrap()], &[]);
    let addr = server.addr();
    let stop = Arc::new(AtomicBool::new(false));
    const CLIENTS: usize = 4;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|t| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut conn = Conn::open(addr);
                let mut sent = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let path = format!("/a.txt?t={t}&n={}", sent.len());
                    conn.send(request_bytes("GET", &path, &[], false).as_bytes())
                        .unwrap();
                    let r = conn.response(false).unwrap();
                    assert_eq!(r.status, 200);
                    sent.push(path);
                }
                sent
            })
        })
        .collect();
    let wait_for_file = |path: &std::path::Path| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !path.exists() {
            assert!(
                Instant::now() < deadline,
                "{} never appeared",
                path.display()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    let files = [
        dir.join("access.log.1"),
        dir.join("access.log.2"),
        log.clone(),
    ];
    for (rotated, signal) in files[..2].iter().zip([libc::SIGUSR1, libc::SIGHUP]) {
        std::thread::sleep(Duration::from_millis(300));
        std::fs::rename(&log, rotated).unwrap();
        // Lines keep going to the renamed file until the signal is handled.
        std::thread::sleep(Duration::from_millis(50));
        // SAFETY: kill(2) on the child we started; no memory involved.
        assert_eq!(
            unsafe { libc::kill(server.pid() as libc::pid_t, signal) },
            0
        );
        wait_for_file(&log);
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let sent: Vec<Vec<String>> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let total: usize = sent.iter().map(Vec::len).sum();
    assert!(total >= 100, "only {total} requests under load");

    // Every response's line, whole, in exactly one of the three files.
    let deadline = Instant::now() + Duration::from_secs(10);
    let read_all = || -> Vec<Vec<String>> {
        files
            .iter()
            .map(|f| {
                std::fs::read_to_string(f)
                    .unwrap()
                    .lines()
                    .map(str::to_owned)
                    .collect()
            })
            .collect()
    };
    let mut lines = read_all();
    while lines.iter().map(Vec::len).sum::<usize>() < total && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        lines = read_all();
    }
    std::thread::sleep(Duration::from_millis(100));
    let lines = read_all();
    eprintln!(
        "{total} responses; lines per file: {:?}",
        lines.iter().map(Vec::len).collect::<Vec<_>>()
    );
    for (file, l) in files.iter().zip(&lines) {
        assert!(!l.is_empty(), "no line in {}", file.display());
        // A split line would not parse (or would end without its newline).
        let text = std::fs::read_to_string(file).unwrap();
        assert!(text.ends_with('\n'), "{} ends mid-line", file.display());
    }
    let mut logged: Vec<(String, usize)> = lines
        .iter()
        .enumerate()
        .flat_map(|(i, ls)| ls.iter().map(move |l| (LogLine::parse(l).target, i)))
        .collect();
    let mut all_sent: Vec<String> = sent.iter().flatten().cloned().collect();
    all_sent.sort();
    let mut targets: Vec<String> = logged.iter().map(|(t, _)| t.clone()).collect();
    targets.sort();
    assert_eq!(
        targets.len(),
        all_sent.len(),
        "lines across the files against responses"
    );
    assert_eq!(targets, all_sent, "one line per response, none lost");
    // Each client's requests were sequential: their lines never go back to an older
    // file.
    logged.sort_by_key(|(t, _)| {
        let (client, n) = t["/a.txt?t=".len()..].split_once("&n=").unwrap();
        (client.to_owned(), n.parse::<usize>().unwrap())
    });
    for pair in logged.windows(2) {
        let same_client = pair[0].0.split("&n=").next() == pair[1].0.split("&n=").next();
        assert!(
            !same_client || pair[0].1 <= pair[1].1,
            "{:?} went back to an older file",
            pair
        );
    }
    let out = server.output();
    assert!(out.contains("access log reopened (SIGUSR1)"), "{out}");
    assert!(out.contains("access log reopened (SIGHUP)"), "{out}");
    assert!(!out.contains("warning"), "{out}");
}
