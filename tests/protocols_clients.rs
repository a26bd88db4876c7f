//! Real clients over TLS and HTTP/2, against `rocket_mmap::FileServer` with a
//! self-signed certificate made by the test (`rcgen`):
//!
//! * `curl --http2 -k`: a whole file and a range, and the version curl reports is 2;
//! * `curl --http2 -k -C -`: a resumed download (206 on h2);
//! * `curl --http2-prior-knowledge`: the same on plain TCP (h2c);
//! * `aria2c -x8` over https (`--check-certificate=false`; aria2 speaks HTTP/1.1 over
//!   TLS, with eight connections);
//! * headless Chromium over https (`--ignore-certificate-errors`) seeking in a WAV:
//!   its net log shows the seek as a `Range` request answered 206 on an HTTP/2
//!   session, and the server saw that request.
//!
//! SHA-256 of every download is checked. The tests are `#[ignore]`d (run by `.ci/run`
//! with `--ignored`) and fail, never pass, when the tool is missing.

mod common;
#[path = "common/tls_server.rs"]
mod tls_server;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{
    pseudo_random, read_text_from, require_program, require_tool, run_ok, sha256_file, sha256_hex,
    wav, Spawned, TempDir,
};
use rocket::fairing::AdHoc;
use tls_server::{SelfSigned, Served};

const MIB: usize = 1024 * 1024;

fn assert_same_file(downloaded: &Path, expected: &[u8], what: &str) {
    let len = std::fs::metadata(downloaded)
        .unwrap_or_else(|e| panic!("{what}: no file {}: {e}", downloaded.display()))
        .len();
    assert_eq!(len, expected.len() as u64, "{what}: size");
    assert_eq!(
        sha256_file(downloaded),
        sha256_hex(expected),
        "{what}: SHA-256 of the download"
    );
}

/// `curl -w '%{http_version} %{http_code}'` output: (version, status).
fn curl_out(out: &std::process::Output) -> (String, u16) {
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.split_whitespace();
    let v = it.next().unwrap_or_default().to_owned();
    let s = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    (v, s)
}

fn served_over_tls(name: &str, data: &[u8]) -> (TempDir, Served) {
    let dir = TempDir::new(name);
    dir.write("f.bin", data);
    let server = Served::start(dir.path(), Some(&SelfSigned::generate()));
    (dir, server)
}

#[test]
#[ignore = "needs curl; run by .ci/run with --ignored"]
fn curl_http2_over_tls_whole_file_and_range() {
    require_tool("curl");
    let data = pseudo_random(0xC1, 5 * MIB + 123);
    let (_dir, server) = served_over_tls("curl-h2", &data);
    let out = TempDir::new("curl-h2-out");
    let whole = out.join("whole");
    let r = run_ok(
        Command::new("curl")
            .args([
                "-sS",
                "-f",
                "-k",
                "--http2",
                "-w",
                "%{http_version} %{http_code}",
            ])
            .arg("-o")
            .arg(&whole)
            .arg(server.url("/f.bin")),
    );
    assert_eq!(curl_out(&r), ("2".into(), 200), "curl --http2 over TLS");
    assert_same_file(&whole, &data, "curl --http2 whole file");

    let part = out.join("part");
    let r = run_ok(
        Command::new("curl")
            .args(["-sS", "-f", "-k", "--http2", "-r", "1000000-1999999"])
            .args(["-w", "%{http_version} %{http_code}", "-o"])
            .arg(&part)
            .arg(server.url("/f.bin")),
    );
    assert_eq!(curl_out(&r), ("2".into(), 206), "curl --http2 -r");
    assert_same_file(&part, &data[1_000_000..2_000_000], "curl --http2 -r");
}

#[test]
#[ignore = "needs curl; run by .ci/run with --ignored"]
fn curl_resume_over_h2() {
    require_tool("curl");
    let data = pseudo_random(0xC2, 8 * MIB + 7);
    let (_dir, server) = served_over_tls("curl-resume-h2", &data);
    let out = TempDir::new("curl-resume-h2-out");
    let file = out.join("f.bin");
    // An interrupted earlier download: the first 3 MiB + 5 bytes.
    std::fs::write(&file, &data[..3 * MIB + 5]).unwrap();
    let r = run_ok(
        Command::new("curl")
            .args(["-sS", "-f", "-k", "--http2", "-C", "-"])
            .args(["-w", "%{http_version} %{http_code}", "-o"])
            .arg(&file)
            .arg(server.url("/f.bin")),
    );
    assert_eq!(curl_out(&r), ("2".into(), 206), "curl -C - over h2");
    assert_same_file(&file, &data, "curl -C - over h2");
}

#[test]
#[ignore = "needs curl; run by .ci/run with --ignored"]
fn curl_h2c_with_prior_knowledge() {
    require_tool("curl");
    let data = pseudo_random(0xC3, 3 * MIB);
    let dir = TempDir::new("curl-h2c");
    dir.write("f.bin", &data);
    let server = Served::start(dir.path(), None);
    let out = TempDir::new("curl-h2c-out");
    let file = out.join("f.bin");
    std::fs::write(&file, &data[..MIB]).unwrap();
    let r = run_ok(
        Command::new("curl")
            .args(["-sS", "-f", "--http2-prior-knowledge", "-C", "-"])
            .args(["-w", "%{http_version} %{http_code}", "-o"])
            .arg(&file)
            .arg(server.url("/f.bin")),
    );
    assert_eq!(curl_out(&r), ("2".into(), 206), "curl h2c -C -");
    assert_same_file(&file, &data, "curl h2c -C -");
}

#[test]
#[ignore = "needs aria2c; run by .ci/run with --ignored"]
fn aria2c_eight_connections_over_https() {
    require_tool("aria2c");
    let data = pseudo_random(0xA2, 24 * MIB + 999);
    let (_dir, server) = served_over_tls("aria2c-https", &data);
    let out = TempDir::new("aria2c-https-out");
    run_ok(
        Command::new("aria2c")
            .args(["-x8", "-s8", "-k1M", "--check-certificate=false"])
            .args(["--allow-overwrite=true", "--auto-file-renaming=false"])
            .args(["--console-log-level=warn", "--summary-interval=0"])
            .arg("-d")
            .arg(out.path())
            .args(["-o", "f.bin"])
            .arg(server.url("/f.bin")),
    );
    assert_same_file(&out.join("f.bin"), &data, "aria2c -x8 over https");
}

// ---------------------------------------------------------------------------------
// Chromium over https: the seek is a 206 on h2
// ---------------------------------------------------------------------------------

/// 16-bit mono PCM at 8 kHz: 16 000 bytes a second.
const RATE: u32 = 8_000;
/// Long enough that Chromium's first `Range: bytes=0-` response does not hold the
/// middle (tests/browser.rs measured ~12 MB read ahead): 41.6 MB.
const SECONDS: u32 = 2_600;
const BROWSER_LIMIT: Duration = Duration::from_secs(90);

/// Seeks to the middle once the duration is known; reports `seeked` in the title.
const INDEX: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>loading</title></head>
<body style="font: 24px sans-serif">
<h1>rocket-mmap: seek over https (h2)</h1>
<audio id="a" src="/tone.wav" preload="auto" controls muted></audio>
<pre id="log"></pre>
<script>
const a = document.getElementById('a');
const log = (m) => { document.getElementById('log').textContent += m + '\n'; };
a.addEventListener('loadedmetadata', () => {
  log('loadedmetadata duration=' + a.duration);
  a.currentTime = a.duration / 2;
});
a.addEventListener('seeked', () => {
  log('seeked currentTime=' + a.currentTime);
  document.title = 'seeked';
});
a.addEventListener('error', () => { log('error ' + (a.error && a.error.code)); document.title = 'error'; });
</script>
</body></html>
"#;

/// One HTTP/2 exchange from Chromium's net log: the request's `range` and the
/// response's `:status` and `content-range`.
#[derive(Debug, Clone, Default)]
struct H2Exchange {
    path: String,
    range: Option<String>,
    status: Option<u16>,
    content_range: Option<String>,
}

/// The HTTP/2 exchanges in a net log (`--log-net-log`): `HTTP2_SESSION_SEND_HEADERS`
/// and `HTTP2_SESSION_RECV_HEADERS` events, paired by session and stream id. Only
/// HTTP/2 sessions log these events.
fn h2_exchanges(netlog: &str) -> Vec<H2Exchange> {
    let log: serde_json::Value = serde_json::from_str(netlog).unwrap_or_else(|e| {
        panic!("the net log is not JSON ({e}); Chromium did not exit cleanly?")
    });
    let types = &log["constants"]["logEventTypes"];
    let id = |name: &str| types[name].as_u64().unwrap_or_else(|| panic!("no {name}"));
    let (send, recv) = (
        id("HTTP2_SESSION_SEND_HEADERS"),
        id("HTTP2_SESSION_RECV_HEADERS"),
    );
    let mut out: Vec<((u64, u64), H2Exchange)> = Vec::new();
    for e in log["events"].as_array().expect("events") {
        let t = e["type"].as_u64().unwrap_or(0);
        if t != send && t != recv {
            continue;
        }
        let key = (
            e["source"]["id"].as_u64().unwrap_or(0),
            e["params"]["stream_id"].as_u64().unwrap_or(0),
        );
        let headers: Vec<(String, String)> = e["params"]["headers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|h| h.as_str())
            .filter(|h| h.len() > 1)
            .filter_map(|h| {
                // ":status: 206" and "range: bytes=…": split after the name.
                let at = h[1..].find(": ")? + 1;
                Some((h[..at].to_ascii_lowercase(), h[at + 2..].to_owned()))
            })
            .collect();
        let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        if t == send {
            out.push((
                key,
                H2Exchange {
                    path: get(":path").unwrap_or_default(),
                    range: get("range"),
                    ..H2Exchange::default()
                },
            ));
        } else if let Some((_, x)) = out.iter_mut().rev().find(|(k, _)| *k == key) {
            x.status = get(":status").and_then(|s| s.parse().ok());
            x.content_range = get("content-range");
        }
    }
    out.into_iter().map(|(_, x)| x).collect()
}

fn range_start(range: &str) -> Option<u64> {
    range
        .strip_prefix("bytes=")?
        .split('-')
        .next()?
        .parse()
        .ok()
}

#[test]
#[ignore = "needs chromium; run by .ci/run with --ignored"]
fn chromium_seeks_over_https_with_a_206_on_h2() {
    let version = require_program(
        "chromium",
        &["--version"],
        "install it with `apt-get install chromium` (.ci/run does)",
    );
    println!("browser: {}", version.trim());
    let dir = TempDir::new("browser-h2");
    let tone = wav(RATE, SECONDS);
    dir.write("tone.wav", &tone);
    dir.write("index.html", INDEX.as_bytes());

    // The server's side: every Range request to tone.wav and its status.
    let seen: Arc<Mutex<Vec<(String, u16)>>> = Arc::default();
    let record = seen.clone();
    let server = Served::start_with(dir.path(), Some(&SelfSigned::generate()), move |r| {
        r.attach(AdHoc::on_response("record ranges", move |req, res| {
            let record = record.clone();
            Box::pin(async move {
                if let Some(range) = req.headers().get_one("Range") {
                    record
                        .lock()
                        .unwrap()
                        .push((range.to_owned(), res.status().code));
                }
            })
        }))
    });

    let profile = TempDir::new("chromium-h2-profile");
    let out_dir = TempDir::new("chromium-h2-out");
    let (dom_path, err_path, netlog) = (
        out_dir.join("dom.html"),
        out_dir.join("stderr.txt"),
        out_dir.join("netlog.json"),
    );
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-seek-h2.png");
    let _ = std::fs::remove_file(&shot);
    let started = Instant::now();
    let mut chromium = Spawned::spawn(
        "chromium",
        Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--ignore-certificate-errors",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--autoplay-policy=no-user-gesture-required",
                "--virtual-time-budget=10000",
                "--window-size=800,600",
                "--dump-dom",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(format!("--log-net-log={}", netlog.display()))
            .arg(format!("--screenshot={}", shot.display()))
            .arg(server.url("/"))
            .stdout(Stdio::from(std::fs::File::create(&dom_path).unwrap()))
            .stderr(Stdio::from(std::fs::File::create(&err_path).unwrap())),
    );
    let status = chromium.wait_timeout(BROWSER_LIMIT);
    let Some(status) = status else {
        chromium.kill();
        panic!(
            "chromium did not finish within {BROWSER_LIMIT:?}; stderr:\n{}",
            read_text_from(&err_path, 0).0
        );
    };
    drop(chromium);
    let dom = read_text_from(&dom_path, 0).0;
    assert!(
        status.success(),
        "chromium failed ({status}): {}",
        read_text_from(&err_path, 0).0
    );
    let exchanges = h2_exchanges(&read_text_from(&netlog, 0).0);
    println!("chromium took {:?}; HTTP/2 exchanges:", started.elapsed());
    for x in &exchanges {
        println!("  {x:?}");
    }
    println!("server saw Range requests: {:?}", seen.lock().unwrap());
    println!("screenshot: {}", shot.display());

    assert!(
        exchanges
            .iter()
            .any(|x| x.path == "/" && x.status == Some(200)),
        "the page itself did not come over HTTP/2: {exchanges:#?}"
    );
    let seeks: Vec<&H2Exchange> = exchanges
        .iter()
        .filter(|x| {
            x.path == "/tone.wav"
                && x.range
                    .as_deref()
                    .and_then(range_start)
                    .is_some_and(|s| s > 0)
        })
        .collect();
    assert!(
        !seeks.is_empty(),
        "no Range request past byte 0 on an HTTP/2 session: {exchanges:#?}\nDOM:\n{dom}"
    );
    for x in &seeks {
        let first = range_start(x.range.as_deref().unwrap()).unwrap();
        assert_eq!(x.status, Some(206), "the seek {x:?} on h2");
        let cr = x.content_range.as_deref().unwrap_or("");
        assert!(
            cr.starts_with(&format!("bytes {first}-")) && cr.ends_with(&format!("/{}", tone.len())),
            "Content-Range of the seek: {x:?}"
        );
        assert!(
            seen.lock()
                .unwrap()
                .iter()
                .any(|(r, s)| r == x.range.as_deref().unwrap() && *s == 206),
            "the server did not answer {x:?} with 206"
        );
    }
    assert!(
        dom.contains("<title>seeked</title>"),
        "the page did not report 'seeked':\n{dom}"
    );
    let png = std::fs::read(&shot).unwrap_or_default();
    assert!(
        png.starts_with(b"\x89PNG"),
        "no screenshot at {}",
        shot.display()
    );
}
