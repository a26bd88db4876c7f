//! The README's change table and stalled clients over TLS, on h2 and on HTTP/1.1.
//!
//! Over TLS, Rocket's chunk goes through hyper into rustls, which encrypts (copies)
//! it; the copy out of the mapping is still ours, into Rocket's chunk, inside the
//! SIGBUS guard. These tests show that nothing about the guarantees changes:
//!
//! * a file truncated during a TLS download: the response is cut after a true prefix,
//!   the process lives, and on h2 only that stream ends — another download on the same
//!   connection completes;
//! * a file rewritten in place during a TLS download: cut, never completed with a mix;
//! * clients that stop reading TLS downloads (h2 streams and HTTP/1.1 connections):
//!   the server's memory stays bounded, it does not spin, and a small GET over TLS
//!   answers at once. This one runs the real binary with `--tls-cert`/`--tls-key`.
//!
//! Needs the `cli` feature (the binary; it includes `tls`).

#[path = "common/binary.rs"]
mod binary;
mod common;
#[path = "common/tls_server.rs"]
mod tls_server;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use binary::Binary;
use common::{etag_of, pseudo_random, sha256_hex, TempDir};
use tls_server::{client, client_builder, Proto, SelfSigned, Served};

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// A client for the TLS downloads that read slowly: on h2, small flow-control windows,
/// so that the server cannot run far ahead of what the test has read (hyper's client
/// gives window back only as the body is read). HTTP/1.1 is bounded by the sockets'
/// buffers (a few MiB), far less than the files below.
fn slow_reader(proto: Proto) -> reqwest::Client {
    client_builder(proto)
        .http2_initial_stream_window_size(256 * KIB as u32)
        .http2_initial_connection_window_size(MIB as u32)
        .build()
        .unwrap()
}

/// Reads `resp` until `received` holds at least `until` bytes, with a pause between
/// chunks (a slow client).
async fn read_until(resp: &mut reqwest::Response, received: &mut Vec<u8>, until: usize) {
    while received.len() < until {
        let chunk = tokio::time::timeout(Duration::from_secs(30), resp.chunk())
            .await
            .expect("a chunk within 30 s")
            .expect("no error before the change");
        let chunk = chunk.unwrap_or_else(|| panic!("the body ended at {}", received.len()));
        received.extend_from_slice(&chunk);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// After the change: reads on until the body ends or fails; how it ended. A body that
/// neither ends nor fails within 30 s is a failure (a stalled response).
async fn read_on(resp: &mut reqwest::Response, received: &mut Vec<u8>) -> String {
    loop {
        match tokio::time::timeout(Duration::from_secs(30), resp.chunk()).await {
            Err(_) => panic!(
                "after the change the response neither finished nor was cut: stalled at {}",
                received.len()
            ),
            Ok(Ok(Some(c))) => received.extend_from_slice(&c),
            Ok(Ok(None)) => return "end of body".into(),
            Ok(Err(e)) => return format!("error: {e:?}"),
        }
    }
}

fn first_difference(got: &[u8], want: &[u8]) -> Option<usize> {
    got.iter().zip(want).position(|(a, b)| a != b)
}

/// A 64 MiB file truncated to 1 MiB while a slow TLS client is 2 MiB into it.
async fn truncation_over(proto: Proto) {
    let dir = TempDir::new("tls-truncate");
    let data = pseudo_random(0x7151, 64 * MIB);
    let other = pseudo_random(0x7152, 4 * MIB);
    let path = dir.write("big.bin", &data);
    dir.write("other.bin", &other);
    let server = Served::start(dir.path(), Some(&SelfSigned::generate()));
    let c = slow_reader(proto);

    let mut resp = c.get(server.url("/big.bin")).send().await.unwrap();
    assert_eq!(resp.version(), proto.version());
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.content_length(), Some(data.len() as u64));
    // On h2, a second stream of the same connection, left unread during the cut.
    let parallel = if proto == Proto::H2Tls {
        Some(c.get(server.url("/other.bin")).send().await.unwrap())
    } else {
        None
    };

    let mut received = Vec::new();
    read_until(&mut resp, &mut received, 2 * MIB).await;
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(MIB as u64)
        .unwrap();
    let end = read_on(&mut resp, &mut received).await;
    eprintln!(
        "{proto:?} truncation: received {} of {} bytes, then {end}",
        received.len(),
        data.len()
    );
    assert!(
        received.len() < data.len(),
        "{proto:?}: completed although the file shrank"
    );
    assert!(
        end.starts_with("error"),
        "{proto:?}: a cut body must be an error for the client, not a clean end: {end}"
    );
    if let Some(i) = first_difference(&received, &data) {
        panic!("{proto:?}: byte {i} of the cut body is not the original's");
    }

    if let Some(p) = parallel {
        // The cut reset one stream; the connection and its other stream live on.
        let body = tokio::time::timeout(Duration::from_secs(30), p.bytes())
            .await
            .expect("the parallel stream finished")
            .expect("the parallel stream on the same h2 connection completed");
        assert_eq!(
            sha256_hex(&body),
            sha256_hex(&other),
            "parallel stream bytes"
        );
    }

    // The process lives and serves the new 1 MiB file, on the same client.
    let after = c.get(server.url("/big.bin")).send().await.unwrap();
    assert_eq!(after.status(), 200);
    let tag = after
        .headers()
        .get("etag")
        .map(|t| t.to_str().unwrap().to_owned());
    let body = after.bytes().await.unwrap();
    assert_eq!(sha256_hex(&body), sha256_hex(&data[..MIB]));
    // No tag, or the new version's (a plain GET does not wait for the hash); a range
    // waits for it.
    let want = etag_of(&data[..MIB]);
    assert!(tag.is_none_or(|t| t == want), "{proto:?}");
    assert_eq!(tag_of(&c, server.url("/big.bin")).await, want);
}

/// The tag of the file at `url`: a range request waits for it (a plain GET may come
/// before the background hash, without one).
async fn tag_of(c: &reqwest::Client, url: String) -> String {
    let r = c
        .get(url)
        .header("Range", "bytes=0-0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    r.headers()["etag"].to_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncation_during_an_h2_tls_download_cuts_that_stream_only() {
    truncation_over(Proto::H2Tls).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncation_during_an_http1_tls_download_cuts_it() {
    truncation_over(Proto::Http1Tls).await;
}

/// A 32 MiB file whose first half is rewritten in place (same inode, same size)
/// while a slow TLS client is 512 KiB into it: the response is cut, never completed
/// with a mix of versions, and the next request gets the new version and ETag.
async fn rewrite_over(proto: Proto) {
    let dir = TempDir::new("tls-rewrite");
    let old = pseudo_random(0x7153, 32 * MIB);
    let mut new = pseudo_random(0x7154, old.len() / 2);
    new.extend_from_slice(&old[old.len() / 2..]);
    let path = dir.write("media.bin", &old);
    let server = Served::start(dir.path(), Some(&SelfSigned::generate()));
    let c = slow_reader(proto);

    let mut resp = c.get(server.url("/media.bin")).send().await.unwrap();
    assert_eq!(resp.version(), proto.version());
    assert_eq!(resp.status(), 200);
    let mut received = Vec::new();
    read_until(&mut resp, &mut received, 512 * KIB).await;
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    for (i, chunk) in new[..new.len() / 2].chunks(MIB).enumerate() {
        f.write_all_at(chunk, (i * MIB) as u64).unwrap();
    }
    drop(f);
    let end = read_on(&mut resp, &mut received).await;
    eprintln!(
        "{proto:?} in-place rewrite: received {} of {} bytes, then {end}",
        received.len(),
        old.len()
    );
    assert!(
        received.len() < old.len(),
        "{proto:?}: a response spanning an in-place rewrite was completed"
    );
    assert_eq!(
        first_difference(&received[..512 * KIB], &old),
        None,
        "{proto:?}: the bytes read before the rewrite are the old version's"
    );

    let after = c.get(server.url("/media.bin")).send().await.unwrap();
    assert_eq!(after.status(), 200);
    let tag = after
        .headers()
        .get("etag")
        .map(|t| t.to_str().unwrap().to_owned());
    assert!(tag.is_none_or(|t| t == etag_of(&new)), "{proto:?}");
    assert_eq!(
        sha256_hex(&after.bytes().await.unwrap()),
        sha256_hex(&new),
        "{proto:?}: the new version"
    );
    assert_eq!(tag_of(&c, server.url("/media.bin")).await, etag_of(&new));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_place_rewrite_during_an_h2_tls_download_cuts_instead_of_mixing() {
    rewrite_over(Proto::H2Tls).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_place_rewrite_during_an_http1_tls_download_cuts_instead_of_mixing() {
    rewrite_over(Proto::Http1Tls).await;
}

// ---------------------------------------------------------------------------------
// Stalled TLS clients against the binary
// ---------------------------------------------------------------------------------

/// `rocket-mmap DIR --port 0 --tls-cert … --tls-key …` as a child; its banner must
/// say `https://`.
fn start_tls(dir: &Path, cert: &Path, key: &Path) -> Binary {
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let bin = Binary::start(
        dir,
        &["--tls-cert", cert, "--tls-key", key],
        &[("ROCKET_LOG_LEVEL", "off")],
    );
    assert!(
        bin.output().contains(" at https://127.0.0.1:"),
        "no https:// URL in the banner: {}",
        bin.output()
    );
    bin
}

/// The URL of `path` (with its leading slash) on `bin`.
fn url(bin: &Binary, path: &str) -> String {
    format!("https://{}{path}", bin.addr())
}

/// RssAnon of the server, KiB (heap and stacks: what connections cost).
fn rss_anon(bin: &Binary) -> u64 {
    let pid = bin.pid();
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("RssAnon")
}

/// 24 h2 streams (each on its own TLS connection) and 24 HTTP/1.1-over-TLS
/// connections start a 64 MiB download, read its first chunk and stop reading. The
/// server's anonymous memory grows by less than 1 MiB per stalled client (h2 flow
/// control and rustls's bounded buffer hold the rest back), it uses under 0.3 s of
/// CPU in the second that follows (it does not spin), a small GET over h2 answers
/// within 2 s, and once the clients go, a whole download is still correct.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_tls_clients_keep_the_binary_bounded_and_responsive() {
    const PER_PROTO: usize = 24;
    let dir = TempDir::new("tls-stalled");
    let block = pseudo_random(0x7155, MIB);
    {
        let f = std::fs::File::create(dir.join("big.bin")).unwrap();
        for i in 0..64 {
            f.write_all_at(&block, (i * MIB) as u64).unwrap();
        }
    }
    dir.write("small.txt", b"small\n");
    let certs = TempDir::new("tls-stalled-cert");
    let (cert, key) = SelfSigned::generate().write_to(certs.path());
    let mut bin = start_tls(dir.path(), &cert, &key);

    // Warm up: the file mapped and hashed, one connection of each kind served.
    for proto in [Proto::H2Tls, Proto::Http1Tls] {
        let r = client(proto)
            .get(url(&bin, "/big.bin"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.version(), proto.version());
        assert_eq!(r.bytes().await.unwrap().len(), 64 * MIB);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_anon(&bin);

    let mut stalled = Vec::new();
    for proto in [Proto::H2Tls, Proto::Http1Tls] {
        for i in 0..PER_PROTO {
            // A client each: its own connection.
            let c = client(proto);
            let mut r = c.get(url(&bin, "/big.bin")).send().await.unwrap();
            assert_eq!((r.version(), r.status().as_u16()), (proto.version(), 200));
            let first = r.chunk().await.unwrap().expect("a first chunk");
            assert_eq!(&first[..], &block[..first.len()], "{proto:?} client {i}");
            stalled.push((c, r));
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = rss_anon(&bin);
    let cpu0 = bin.cpu_time();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_cpu = bin.cpu_time() - cpu0;
    let t = Instant::now();
    let small = client(Proto::H2Tls)
        .get(url(&bin, "/small.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(small.version(), reqwest::Version::HTTP_2);
    assert_eq!(&small.bytes().await.unwrap()[..], b"small\n");
    let small_took = t.elapsed();

    let n = stalled.len() as u64;
    let growth = during.saturating_sub(before);
    eprintln!(
        "{n} stalled TLS downloads ({PER_PROTO} h2, {PER_PROTO} HTTP/1.1): RssAnon {} -> {} KiB \
         (+{growth} KiB, {} KiB per client); server CPU in 1 s while stalled {idle_cpu:?}; \
         a small h2 GET took {small_took:?}",
        before,
        during,
        growth / n
    );
    assert!(
        growth < n * 1024,
        "RssAnon grew by {growth} KiB for {n} stalled TLS clients"
    );
    assert!(
        idle_cpu < Duration::from_millis(300),
        "the server used {idle_cpu:?} of CPU in 1 s with only stalled clients"
    );
    assert!(
        small_took < Duration::from_secs(2),
        "a small GET took {small_took:?}"
    );

    drop(stalled);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(bin.alive(), "the binary exited");
    let whole = client(Proto::H2Tls)
        .get(url(&bin, "/big.bin"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(whole.len(), 64 * MIB);
    for (i, b) in whole.chunks(MIB).enumerate() {
        assert_eq!(b, &block[..], "block {i} after the stalled clients left");
    }
}
