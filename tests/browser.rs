//! Issue 7, "A real browser": headless Chromium plays a WAV served by
//! `rocket_mmap::FileServer`, seeking to the middle as soon as it knows the duration.
//! A response fairing records every exchange; the test asserts from the server's side
//! that the seek became a `Range` request starting past 0 that was answered 206 with
//! the right `Content-Range`, and from the page's side (Chromium's `--dump-dom`) that
//! the `seeked` event fired. A screenshot is kept under the target directory.
//!
//! Needs Debian's `chromium`: run by `.ci/run` with `--ignored`, and fails (never
//! passes) without it.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use rocket::fairing::AdHoc;

/// Samples per second: 16-bit mono at 8 kHz is 16 000 bytes a second.
const RATE: u32 = 8_000;
/// The length of the tone. Chromium's first request is `Range: bytes=0-` and it reads
/// (and the sockets hold) some megabytes of it before the seek: measured here, a
/// 345 KiB or a 2.6 MB WAV arrived whole with that first response, so the seek never
/// reached the server, and about 12 MB of a longer file did. 2 600 s (41.6 MB) puts
/// the middle well past that.
const SECONDS: u32 = 2_600;
/// How long Chromium may run before the test kills it and fails.
const BROWSER_LIMIT: Duration = Duration::from_secs(60);

/// The page: seeks to the middle on `loadedmetadata`, then on `seeked` sets the title
/// and plays; every event is also written into the page (and so into the DOM dump and
/// the screenshot).
const INDEX: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>loading</title></head>
<body style="font: 24px sans-serif">
<h1>rocket-mmap: seek in a real browser</h1>
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
  a.play().then(() => log('playing'), (e) => log('play failed: ' + e));
});
a.addEventListener('error', () => {
  log('error ' + (a.error && a.error.code) + ' ' + (a.error && a.error.message));
  document.title = 'error';
});
</script>
</body></html>
"#;

/// One exchange as the server saw it.
#[derive(Debug, Clone)]
struct Exchange {
    method: String,
    uri: String,
    range: Option<String>,
    status: u16,
    content_range: Option<String>,
    /// Conditional headers the browser sent, if any (for the report).
    conditionals: Vec<String>,
}

/// The first position of a `bytes=FIRST-…` range.
fn range_start(range: &str) -> Option<u64> {
    range
        .trim()
        .strip_prefix("bytes=")?
        .split(['-', ','])
        .next()?
        .trim()
        .parse()
        .ok()
}

fn tail(path: &Path, lines: usize) -> String {
    let text = read_text_from(path, 0).0;
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[test]
#[ignore = "needs nginx/chromium; run by .ci/run with --ignored"]
fn chromium_seeks_audio_with_a_range_request() {
    let version = require_program(
        "chromium",
        &["--version"],
        "install it with `apt-get install chromium` (.ci/run does)",
    );
    // (Debian's wrapper script may print a warning line of its own.)
    let version = version
        .lines()
        .find(|l| l.contains("Chromium") || l.contains("Chrome"))
        .unwrap_or(version.trim());
    println!("browser: {}", version.trim());
    let started = Instant::now();

    let dir = TempDir::new("browser");
    let tone = wav(RATE, SECONDS);
    dir.write("tone.wav", &tone);
    dir.write("index.html", INDEX.as_bytes());
    // Byte offset of the middle sample: where the seek must read.
    let middle = 44 + u64::from(RATE * 2) * u64::from(SECONDS) / 2;

    let seen: Arc<Mutex<Vec<Exchange>>> = Arc::default();
    let record = seen.clone();
    let server = Server::start_in_with(dir, move |rocket| {
        rocket.attach(AdHoc::on_response("record exchanges", move |req, res| {
            let record = record.clone();
            Box::pin(async move {
                let h = req.headers();
                let conditionals = ["If-Range", "If-None-Match", "If-Modified-Since"]
                    .iter()
                    .filter_map(|n| h.get_one(n).map(|v| format!("{n}: {v}")))
                    .collect();
                record.lock().unwrap().push(Exchange {
                    method: req.method().to_string(),
                    uri: req.uri().to_string(),
                    range: h.get_one("Range").map(str::to_owned),
                    status: res.status().code,
                    content_range: res.headers().get_one("Content-Range").map(str::to_owned),
                    conditionals,
                });
            })
        }))
    });

    let profile = TempDir::new("chromium-profile");
    let out_dir = TempDir::new("chromium-out");
    let (dom_path, err_path) = (out_dir.join("dom.html"), out_dir.join("stderr.txt"));
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-seek.png");
    let _ = std::fs::remove_file(&shot);
    let url = format!("http://127.0.0.1:{}/", server.port());
    let mut chromium = Spawned::spawn(
        "chromium",
        Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
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
            .arg(format!("--screenshot={}", shot.display()))
            .arg(&url)
            .stdout(Stdio::from(std::fs::File::create(&dom_path).unwrap()))
            .stderr(Stdio::from(std::fs::File::create(&err_path).unwrap())),
    );
    let status = chromium.wait_timeout(BROWSER_LIMIT);
    let took = started.elapsed();
    let Some(status) = status else {
        chromium.kill();
        panic!(
            "chromium did not finish within {BROWSER_LIMIT:?}; stderr:\n{}",
            tail(&err_path, 30)
        );
    };
    drop(chromium); // kills any helper process left in its group
    let dom = read_text_from(&dom_path, 0).0;
    let exchanges = seen.lock().unwrap().clone();

    println!(
        "chromium exited with {status} after {took:?}; tone.wav is {} bytes, middle at byte {middle}",
        tone.len()
    );
    for e in &exchanges {
        println!(
            "  {} {} Range: {:?} -> {} Content-Range: {:?} {:?}",
            e.method, e.uri, e.range, e.status, e.content_range, e.conditionals
        );
    }
    let page_log = dom
        .split("<pre id=\"log\">")
        .nth(1)
        .and_then(|s| s.split("</pre>").next())
        .unwrap_or("(no log in the DOM)");
    println!("page log:\n{}", page_log.trim_end());
    println!("screenshot: {}", shot.display());

    assert!(
        status.success(),
        "chromium failed ({status}); stderr:\n{}",
        tail(&err_path, 30)
    );
    let seeks: Vec<&Exchange> = exchanges
        .iter()
        .filter(|e| {
            e.method == "GET"
                && e.uri == "/tone.wav"
                && e.range
                    .as_deref()
                    .and_then(range_start)
                    .is_some_and(|s| s > 0)
        })
        .collect();
    let answered: Vec<&&Exchange> = seeks.iter().filter(|e| e.status == 206).collect();
    assert!(
        !answered.is_empty(),
        "no GET /tone.wav with a Range starting past 0 was answered 206: {exchanges:#?}\n\
         DOM:\n{dom}\nstderr:\n{}",
        tail(&err_path, 30)
    );
    for e in &answered {
        let first = range_start(e.range.as_deref().unwrap()).unwrap();
        let cr = e.content_range.as_deref().unwrap_or("");
        assert!(
            cr.starts_with(&format!("bytes {first}-")) && cr.ends_with(&format!("/{}", tone.len())),
            "206 for {:?} with Content-Range {cr:?}",
            e.range
        );
    }
    println!(
        "seek request(s): {:?}",
        answered
            .iter()
            .map(|e| format!(
                "{} -> {} {}",
                e.range.as_deref().unwrap(),
                e.status,
                e.content_range.as_deref().unwrap_or("")
            ))
            .collect::<Vec<_>>()
    );
    assert!(
        dom.contains("<title>seeked</title>"),
        "the page did not report 'seeked' (DOM dump):\n{dom}\nstderr:\n{}",
        tail(&err_path, 30)
    );
    let png = std::fs::read(&shot).unwrap_or_default();
    assert!(
        png.starts_with(b"\x89PNG"),
        "no screenshot at {} ({} bytes)",
        shot.display(),
        png.len()
    );
    println!("browser test took {:?}", started.elapsed());
}
