//! Rate limits (`limit_rate`, `limit_rate_after`, as nginx names them) over real
//! sockets: the pace of a download through Rocket, per file server and per route,
//! statuses that are never delayed, and a paced download that is still cut by a
//! truncation, an in-place rewrite or a shutdown. The `#[ignore]`d group drives the
//! binary (`--limit-rate`, `--limit-rate-after`) with curl: 4 MiB at 1 MiB/s take 4 s,
//! a 2 MiB full-speed prefix halves that, and 16 paced downloads at once each keep
//! the pace while the server's CPU stays near idle.

#[path = "common/binary.rs"]
mod binary;
mod common;

use std::io::{BufReader, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rocket::{get, routes, State};
use rocket_mmap::{CacheError, FileServer, Mmap, MmapFile};

use binary::{Binary, BIN};
use common::{
    connect, etag_of, pseudo_random, read_head, request_at, request_bytes, require_tool,
    sha256_hex, Server, TempDir,
};

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// Asserts `took` is `expected` ± 5%.
fn assert_pace(what: &str, took: Duration, expected: f64) {
    assert_within(what, took, expected, 0.05);
}

/// Asserts `took` is `expected` ± `tolerance` (a fraction).
fn assert_within(what: &str, took: Duration, expected: f64, tolerance: f64) {
    let t = took.as_secs_f64();
    assert!(
        (expected * (1.0 - tolerance)..=expected * (1.0 + tolerance)).contains(&t),
        "{what}: took {t:.3} s, expected {expected:.3} s ± {:.0}%",
        tolerance * 100.0
    );
}

/// The first full-speed granule (50 ms of rate) leaves at once: `len` bytes paced at
/// `rate` take `(len - rate / 20) / rate` seconds.
fn paced_seconds(len: usize, rate: usize) -> f64 {
    (len - rate / 20) as f64 / rate as f64
}

#[get("/one/<name>")]
async fn one(name: &str, mmap: &State<Mmap>, dir: &State<PathBuf>) -> Result<MmapFile, CacheError> {
    Ok(mmap
        .open(dir.join(name))
        .await?
        .limit_rate(128 * KIB as u64))
}

/// A server over `dir`: the harness's unpaced file server at `/`, the same files paced
/// at `rate` (after `after` bytes) under `/paced`, and a route `/one/NAME` that paces
/// one download at 128 KiB/s with `MmapFile::limit_rate`.
fn paced_server(dir: TempDir, rate: u64, after: u64) -> Server {
    let root = dir.path().to_path_buf();
    Server::start_in_with(dir, move |rocket| {
        rocket
            .manage(root.clone())
            .mount(
                "/paced",
                FileServer::from(&root)
                    .rank(5)
                    .limit_rate(rate)
                    .limit_rate_after(after),
            )
            .mount("/", routes![one])
    })
}

/// GET on a new connection; the time from sending the request to the last byte.
fn timed_get(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (Duration, common::HttpResponse) {
    let start = Instant::now();
    let r = request_at(addr, "GET", path, headers);
    (start.elapsed(), r)
}

#[test]
fn a_paced_download_keeps_the_pace_through_rocket() {
    let dir = TempDir::new("rate-pace");
    let data = pseudo_random(1, 512 * KIB);
    dir.write("f.bin", &data);
    let server = paced_server(dir, 256 * KIB as u64, 0);
    let (took, r) = timed_get(server.addr(), "/paced/f.bin", &[]);
    assert_eq!((r.status, r.body.len()), (200, data.len()));
    assert_eq!(sha256_hex(&r.body), sha256_hex(&data));
    assert_pace(
        "512 KiB at 256 KiB/s",
        took,
        paced_seconds(512 * KIB, 256 * KIB),
    );
    // The same file without the limit: at once.
    let (fast, r) = timed_get(server.addr(), "/f.bin", &[]);
    assert_eq!(r.body.len(), data.len());
    assert!(fast < Duration::from_millis(500), "unpaced took {fast:?}");
    // A range is paced the same way.
    let (took, r) = timed_get(
        server.addr(),
        "/paced/f.bin",
        &[("Range", "bytes=0-262143")],
    );
    assert_eq!((r.status, r.body.as_slice()), (206, &data[..256 * KIB]));
    assert_pace("a 256 KiB range", took, paced_seconds(256 * KIB, 256 * KIB));
}

#[test]
fn limit_rate_after_sends_a_prefix_at_full_speed() {
    let dir = TempDir::new("rate-after");
    let data = pseudo_random(2, 768 * KIB);
    dir.write("f.bin", &data);
    let server = paced_server(dir, 256 * KIB as u64, 512 * KIB as u64);
    let (took, r) = timed_get(server.addr(), "/paced/f.bin", &[]);
    assert_eq!(r.body, data);
    assert_pace(
        "256 KiB paced after 512 KiB",
        took,
        paced_seconds(256 * KIB, 256 * KIB),
    );
}

#[test]
fn mmap_file_limit_rate_paces_one_route() {
    let dir = TempDir::new("rate-route");
    let data = pseudo_random(3, 256 * KIB);
    dir.write("f.bin", &data);
    let server = paced_server(dir, 0, 0);
    let (took, r) = timed_get(server.addr(), "/one/f.bin", &[]);
    assert_eq!(r.body, data);
    assert_pace(
        "256 KiB at 128 KiB/s",
        took,
        paced_seconds(256 * KIB, 128 * KIB),
    );
    // `limit_rate(0)` on the file server: off.
    let (fast, _) = timed_get(server.addr(), "/paced/f.bin", &[]);
    assert!(fast < Duration::from_millis(500), "took {fast:?}");
}

#[test]
fn head_304_412_416_are_never_delayed() {
    let dir = TempDir::new("rate-statuses");
    let data = pseudo_random(4, MIB);
    dir.write("f.bin", &data);
    // 1 KiB/s: the body would take 17 minutes.
    let server = paced_server(dir, 1024, 0);
    let etag = etag_of(&data);
    for (name, method, headers, status) in [
        ("HEAD", "HEAD", vec![], 200),
        ("304", "GET", vec![("If-None-Match", etag.as_str())], 304),
        ("412", "GET", vec![("If-Match", "\"other\"")], 412),
        ("416", "GET", vec![("Range", "bytes=5000000-")], 416),
    ] {
        let start = Instant::now();
        let r = request_at(server.addr(), method, "/paced/f.bin", &headers);
        let took = start.elapsed();
        assert_eq!(r.status, status, "{name}");
        assert!(took < Duration::from_millis(500), "{name} took {took:?}");
    }
    // And a paced 200 starts at once: the head and the first granule.
    let mut stream = connect(server.addr());
    let start = Instant::now();
    stream
        .write_all(request_bytes("GET", "/paced/f.bin", &[], true).as_bytes())
        .unwrap();
    let mut reader = BufReader::new(stream);
    let head = read_head(&mut reader).unwrap();
    let mut first = [0u8; 32];
    reader.read_exact(&mut first).unwrap();
    assert_eq!((head.status, &first[..]), (200, &data[..32]));
    assert!(start.elapsed() < Duration::from_millis(500));
}

/// Starts a paced GET of `path` and reads `prefix` bytes of its body.
fn start_download(
    addr: SocketAddr,
    path: &str,
    prefix: usize,
) -> (BufReader<std::net::TcpStream>, u64, Vec<u8>) {
    let mut stream = connect(addr);
    stream
        .write_all(request_bytes("GET", path, &[], true).as_bytes())
        .unwrap();
    let mut reader = BufReader::new(stream);
    let head = read_head(&mut reader).unwrap();
    assert_eq!(head.status, 200, "{:?}", head.headers);
    let len = head.content_length().unwrap();
    let mut received = vec![0u8; prefix];
    reader.read_exact(&mut received).unwrap();
    (reader, len, received)
}

/// Reads on until the server ends the response (EOF or reset); panics on a stall.
fn read_on(reader: &mut impl Read, received: &mut Vec<u8>) {
    let mut buf = vec![0u8; 16 * KIB];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("the paced response stalled at {} bytes", received.len())
            }
            Err(_) => return,
        }
    }
}

#[test]
fn a_truncation_during_a_paced_download_cuts_it() {
    let dir = TempDir::new("rate-truncate");
    let data = pseudo_random(5, 4 * MIB);
    let path = dir.write("f.bin", &data);
    let server = paced_server(dir, MIB as u64, 0);
    let (mut reader, len, mut received) = start_download(server.addr(), "/paced/f.bin", 256 * KIB);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(MIB as u64 / 2)
        .unwrap();
    read_on(&mut reader, &mut received);
    assert!(
        (received.len() as u64) < len,
        "completed {} bytes although the file shrank",
        received.len()
    );
    assert!(
        received.len() <= MIB / 2,
        "{} bytes: past the new end",
        received.len()
    );
    assert_eq!(
        received[..],
        data[..received.len()],
        "a true prefix, no zeros"
    );
    // The server goes on: the file as it is now.
    let r = server.get("/f.bin");
    assert_eq!(r.body, &data[..MIB / 2]);
}

#[test]
fn an_in_place_rewrite_during_a_paced_download_cuts_it() {
    use std::os::unix::fs::FileExt;
    let dir = TempDir::new("rate-rewrite");
    let data = pseudo_random(6, MIB);
    let path = dir.write("f.bin", &data);
    let server = paced_server(dir, 512 * KIB as u64, 0);
    let (mut reader, len, mut received) = start_download(server.addr(), "/paced/f.bin", 64 * KIB);
    // The first half rewritten in place: no truncation, only the end-of-body check tells.
    let new_half = pseudo_random(7, MIB / 2);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .write_all_at(&new_half, 0)
        .unwrap();
    read_on(&mut reader, &mut received);
    assert!(
        (received.len() as u64) < len,
        "a paced download completed with bytes of two versions"
    );
}

#[test]
fn a_shutdown_during_a_paced_download_cuts_it_and_the_server_stops() {
    let dir = TempDir::new("rate-shutdown");
    dir.write("f.bin", &pseudo_random(8, 4 * MIB));
    let server = paced_server(dir, 256 * KIB as u64, 0);
    let (mut reader, len, mut received) = start_download(server.addr(), "/paced/f.bin", 64 * KIB);
    let start = Instant::now();
    server.stop(); // Panics if the server does not stop.
    read_on(&mut reader, &mut received);
    assert!((received.len() as u64) < len);
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn the_binary_refuses_a_bad_size() {
    let out = Command::new(BIN)
        .args(["--limit-rate", "fast", "."])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--limit-rate") && err.contains("512k"),
        "{err}"
    );
    let out = Command::new(BIN)
        .env("ROCKET_MMAP_LIMIT_RATE", "1x")
        .arg(".")
        .args(["--port", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("limit_rate = \"1x\""), "{err}");
}

// ---------------------------------------------------------------------------------
// The binary and curl (#[ignore]d: real clients)
// ---------------------------------------------------------------------------------

/// The binary serving `dir` with `args` (Rocket's own lines kept to errors).
fn start_binary(dir: &Path, args: &[&str]) -> Binary {
    Binary::start(dir, args, &[("ROCKET_LOG_LEVEL", "critical")])
}

/// The URL of `name` (a path below the root, no leading slash) on `server`.
fn url(server: &Binary, name: &str) -> String {
    format!("http://{}/{name}", server.addr())
}

/// `curl URL -o OUT`; the transfer time curl reports, and the file it wrote.
fn curl(url: &str, out: &Path) -> Duration {
    let o = Command::new("curl")
        .args(["-sS", "--fail", "-o"])
        .arg(out)
        .args(["-w", "%{time_total}", url])
        .output()
        .expect("curl");
    assert!(
        o.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let secs: f64 = String::from_utf8_lossy(&o.stdout).trim().parse().unwrap();
    Duration::from_secs_f64(secs)
}

#[test]
#[ignore = "needs curl"]
fn curl_4_mib_at_limit_rate_1m_take_4_seconds() {
    require_tool("curl");
    let dir = TempDir::new("rate-curl-4m");
    let data = pseudo_random(9, 4 * MIB);
    dir.write("f.bin", &data);
    let out = TempDir::new("rate-curl-4m-out");
    let server = start_binary(dir.path(), &["--limit-rate", "1m"]);
    let took = curl(&url(&server, "f.bin"), &out.join("f.bin"));
    eprintln!(
        "curl: 4 MiB at limit_rate = 1m in {:.3} s",
        took.as_secs_f64()
    );
    assert_pace("4 MiB at 1 MiB/s", took, 4.0);
    assert_eq!(
        sha256_hex(&std::fs::read(out.join("f.bin")).unwrap()),
        sha256_hex(&data)
    );
}

#[test]
#[ignore = "needs curl"]
fn curl_with_limit_rate_after_2m_takes_about_2_seconds() {
    require_tool("curl");
    let dir = TempDir::new("rate-curl-after");
    let data = pseudo_random(10, 4 * MIB);
    dir.write("f.bin", &data);
    let out = TempDir::new("rate-curl-after-out");
    let server = start_binary(
        dir.path(),
        &["--limit-rate", "1m", "--limit-rate-after", "2m"],
    );
    let took = curl(&url(&server, "f.bin"), &out.join("f.bin"));
    eprintln!(
        "curl: 4 MiB, 2 MiB at full speed then 1m, in {:.3} s",
        took.as_secs_f64()
    );
    assert_pace("2 MiB free then 2 MiB at 1 MiB/s", took, 2.0);
    assert_eq!(
        sha256_hex(&std::fs::read(out.join("f.bin")).unwrap()),
        sha256_hex(&data)
    );
}

#[test]
#[ignore = "needs curl"]
fn sixteen_paced_downloads_at_once_keep_the_pace_and_the_server_idles() {
    require_tool("curl");
    let dir = TempDir::new("rate-curl-16");
    let data = pseudo_random(11, 2 * MIB);
    dir.write("f.bin", &data);
    let out = TempDir::new("rate-curl-16-out");
    let server = start_binary(dir.path(), &["--limit-rate", "1m"]);
    // Map the file first, so the CPU measured is the sending alone.
    curl(&url(&server, "f.bin?warm"), &out.join("warm"));
    let cpu_before = server.cpu_time();
    let wall = Instant::now();
    let handles: Vec<_> = (0..16)
        .map(|i| {
            let url = url(&server, "f.bin");
            let target = out.join(&format!("{i}.bin"));
            std::thread::spawn(move || (curl(&url, &target), target))
        })
        .collect();
    let results: Vec<(Duration, PathBuf)> =
        handles.into_iter().map(|h| h.join().unwrap()).collect();
    let wall = wall.elapsed();
    let cpu = server.cpu_time() - cpu_before;
    let times: Vec<f64> = results.iter().map(|(t, _)| t.as_secs_f64()).collect();
    eprintln!(
        "16 × 2 MiB at 1 MiB/s: {times:.2?} s each, {:.2} s in all; server CPU {:?} ({:.1}% of one core)",
        wall.as_secs_f64(),
        cpu,
        cpu.as_secs_f64() / wall.as_secs_f64() * 100.0
    );
    // 16 curl processes and the server share two cores: each download within 10%,
    // their mean within 5%.
    for (took, file) in &results {
        assert_within("each of 16 paced downloads", *took, 2.0, 0.10);
        assert_eq!(std::fs::read(file).unwrap(), data);
    }
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    assert_pace(
        "the mean of 16 paced downloads",
        Duration::from_secs_f64(mean),
        2.0,
    );
    // 32 MiB sent in ~2 s by a debug build: ~0.2 s of CPU (mostly copying the bytes);
    // a busy loop would cost the whole wall time on each worker, and a blocked worker
    // would serialise the downloads and break the pace above.
    assert!(
        cpu < wall / 4,
        "the server used {cpu:?} of CPU over {wall:?}: not idle while pacing"
    );
}
