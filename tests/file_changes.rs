//! Files changing under a running server, over real sockets: truncation during a
//! download (the SIGBUS guard), replacement by rename under concurrent downloads,
//! in-place rewrites, deletion and permission changes.

mod common;

use std::fs::OpenOptions;
use std::io::{BufReader, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{
    connect, etag_of, pseudo_random, read_head, request_at, request_bytes, sha256_hex, Server,
};

const MIB: usize = 1024 * 1024;

/// GETs `path` until a response carries an `ETag`, bounded, and returns it. A file
/// over 64 KiB is served before its tag is hashed (in the background): the plain
/// GETs before carry none. Every response must be 200 with the body `want`, and the
/// tag, once sent, `want`'s.
fn get_tagged(server: &Server, path: &str, want: &[u8]) -> common::HttpResponse {
    for _ in 0..500 {
        let r = server.get(path);
        assert_eq!(r.status, 200, "{:?}", r.headers);
        assert_eq!(
            sha256_hex(&r.body),
            sha256_hex(want),
            "the expected version"
        );
        if let Some(tag) = r.header("ETag") {
            assert_eq!(tag, etag_of(want), "that version's tag");
            return r;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("{path} never carried an ETag");
}

/// The first index where `got` differs from `want`'s prefix.
fn first_difference(got: &[u8], want: &[u8]) -> Option<usize> {
    got.iter().zip(want).position(|(a, b)| a != b)
}

/// A 64 MiB file truncated to 1 MiB in place while a slow client downloads it: the
/// process survives, the client gets a short body (fewer bytes than Content-Length)
/// that is a true prefix of the original (no zeros substituted for the lost pages), and
/// the next request gets the new 1 MiB file.
#[test]
fn truncation_during_a_download_cuts_the_response_and_the_server_survives() {
    let server = Server::start("truncate");
    let data = pseudo_random(11, 64 * MIB);
    let path = server.dir().write("big.bin", &data);

    let mut stream = connect(server.addr());
    stream
        .write_all(request_bytes("GET", "/big.bin", &[], true).as_bytes())
        .unwrap();
    let mut reader = BufReader::new(stream);
    let head = read_head(&mut reader).expect("response head");
    assert_eq!(head.status, 200, "{:?}", head.headers);
    assert_eq!(head.content_length(), Some(data.len() as u64));

    // A slow client: small reads with pauses, until it holds about 2 MiB.
    let mut received = Vec::with_capacity(data.len());
    let mut buf = vec![0u8; 16 * 1024];
    while received.len() < 2 * MIB {
        let n = reader.read(&mut buf).expect("slow read before truncation");
        assert!(n > 0, "the response ended after {} bytes", received.len());
        received.extend_from_slice(&buf[..n]);
        std::thread::sleep(Duration::from_millis(1));
    }

    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(MIB as u64)
        .unwrap();

    let end = read_on(&mut reader, &mut received, data.len() as u64);
    eprintln!(
        "truncation: client received {} of {} bytes, then {end}",
        received.len(),
        data.len()
    );
    assert!(
        received.len() < data.len(),
        "the body was completed ({} bytes) although the file shrank to 1 MiB",
        received.len()
    );
    if let Some(i) = first_difference(&received, &data) {
        panic!(
            "byte {i} of the cut body differs from the original (got {:#04x}, want {:#04x}; \
             {} of the following 4096 received bytes are zero): wrong bytes were sent",
            received[i],
            data[i],
            received[i..].iter().take(4096).filter(|&&b| b == 0).count()
        );
    }

    // Still alive, and serving the new 1 MiB file (with its tag once hashed).
    let after = get_tagged(&server, "/big.bin", &data[..MIB]);
    assert_eq!(after.content_length(), Some(MIB as u64));
}

/// Caps the kernel receive buffer of `stream` (and turns off its autotuning), so that
/// the server cannot run ahead of a slow reader by more than its own send buffer.
fn set_receive_buffer(stream: &std::net::TcpStream, bytes: libc::c_int) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid socket descriptor (borrowed from `stream` for the call), and a
    // pointer to a live c_int with its exact size.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(
        rc,
        0,
        "setsockopt(SO_RCVBUF): {}",
        std::io::Error::last_os_error()
    );
}

/// A file truncated to a size that is not a multiple of the page size keeps its last
/// page mapped: the bytes of that page past the new end read as zeros *without*
/// SIGBUS. The mapping's sentinel (its last non-zero byte, see
/// `MappingWatch` in `src/engine/mapping.rs`, crate-internal) notices, so the response in flight is cut
/// rather than completed with zeros (DESIGN.md: "never completed with wrong bytes").
///
/// Steps: a file of 64 MiB + 3000 bytes; a client starts a GET and reads slowly (its
/// receive buffer capped, so the server cannot have sent the tail yet); the file is
/// truncated in place to 64 MiB + 1000 bytes; the client reads on. Expected: fewer
/// bytes than Content-Length, all of them the original's prefix.
#[test]
fn truncation_inside_the_last_page_cuts_the_response() {
    let server = Server::start("truncate-tail");
    let old_len = 64 * MIB + 3000;
    let new_len = 64 * MIB + 1000;
    let data = pseudo_random(12, old_len);
    let path = server.dir().write("tail.bin", &data);

    let (status, content_length, received) = download_around(server.addr(), "/tail.bin", || {
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(new_len as u64)
            .unwrap()
    });
    assert_eq!(status, 200);
    assert_eq!(content_length, old_len as u64);
    // The server was far from the tail when the file shrank (at most its send buffer
    // and our 64 KiB ahead of the 512 KiB read), so the tail was read after it.
    if let Some(i) = first_difference(&received, &data) {
        panic!(
            "BUG: the response for a file truncated from {old_len} to {new_len} bytes \
             carried wrong bytes from offset {i} (received {} of Content-Length {old_len}; \
             {} zero bytes from there on) instead of being cut",
            received.len(),
            received[i..].iter().filter(|&&b| b == 0).count()
        );
    }
    assert!(
        received.len() < old_len,
        "the body was completed although the file shrank"
    );

    let after = server.get("/tail.bin");
    assert_eq!(after.status, 200);
    assert_eq!(sha256_hex(&after.body), sha256_hex(&data[..new_len]));
}

/// One download by a churn client: status, ETag, Content-Length, and the body bytes
/// actually received (fewer than Content-Length if the response was cut).
struct Download {
    status: u16,
    etag: Option<String>,
    content_length: u64,
    body: Vec<u8>,
    /// How the body's reading ended, if not by EOF (a reset, a read timeout): a short
    /// body says which.
    ended_by: Option<std::io::Error>,
    /// From connecting to the end of the body.
    took: Duration,
}

fn download(addr: SocketAddr, path: &str) -> Download {
    try_download(addr, path).expect("response head")
}

/// Like [`download`], but a connection closed before the status line is an `Err`: a
/// response whose body failed at its first read (its file found changed by then) is
/// aborted before hyper wrote the head.
fn try_download(addr: SocketAddr, path: &str) -> std::io::Result<Download> {
    let started = Instant::now();
    let mut stream = connect(addr);
    stream
        .write_all(request_bytes("GET", path, &[], true).as_bytes())
        .unwrap();
    let mut reader = BufReader::new(stream);
    let head = read_head(&mut reader)?;
    let content_length = head.content_length().expect("Content-Length");
    let mut body = Vec::with_capacity(content_length as usize);
    // Read to EOF (Connection: close): a cut shows as a short body, extra bytes as a
    // long one.
    let ended_by = reader.read_to_end(&mut body).err();
    Ok(Download {
        status: head.status,
        etag: head.header("ETag").map(str::to_owned),
        content_length,
        body,
        ended_by,
        took: started.elapsed(),
    })
}

/// A file replaced by rename 20 times while 8 clients download it in a loop: every
/// response is one whole version with that version's ETag (rename never truncates, so
/// no response may be cut either), and afterwards the last version is served.
#[test]
fn replace_by_rename_under_concurrent_downloads() {
    const REPLACEMENTS: usize = 20;
    const CLIENTS: usize = 8;
    let server = Server::start("rename");
    let versions: Vec<Vec<u8>> = (0..=REPLACEMENTS)
        .map(|i| pseudo_random(100 + i as u64, 256 * 1024 + i * 4099))
        .collect();
    let hashes: Vec<String> = versions.iter().map(|v| sha256_hex(v)).collect();
    let etags: Vec<String> = versions.iter().map(|v| etag_of(v)).collect();
    let target = server.dir().write("churn.bin", &versions[0]);
    // Written beforehand, so the churn itself is only renames.
    let staged: Vec<_> = (1..=REPLACEMENTS)
        .map(|i| server.dir().write(&format!("staged-{i}.tmp"), &versions[i]))
        .collect();

    let addr = server.addr();
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let tagged = std::sync::atomic::AtomicUsize::new(0);
    let seen: Vec<Vec<usize>> = std::thread::scope(|s| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let (stop, hashes, etags, tagged) = (&stop, &hashes, &etags, &tagged);
                s.spawn(move || {
                    let mut seen = Vec::new();
                    while !stop.load(Ordering::Relaxed) || seen.is_empty() {
                        let d = download(addr, "/churn.bin");
                        let n = seen.len();
                        assert_eq!(d.status, 200, "client {c}, download {n}");
                        assert_eq!(
                            d.body.len() as u64,
                            d.content_length,
                            "client {c}, download {n}: body of {} bytes for Content-Length {} \
                             (a rename must never cut a response), ended by {:?} after {:?}",
                            d.body.len(),
                            d.content_length,
                            d.ended_by
                                .as_ref()
                                .map_or("EOF".to_owned(), ToString::to_string),
                            d.took
                        );
                        let h = sha256_hex(&d.body);
                        let v = hashes.iter().position(|x| *x == h).unwrap_or_else(|| {
                            panic!(
                                "client {c}, download {n}: {} bytes that are none of the \
                                 versions (ETag {:?})",
                                d.body.len(),
                                d.etag
                            )
                        });
                        // None before the version's background hash ran.
                        if let Some(etag) = &d.etag {
                            assert_eq!(
                                etag, &etags[v],
                                "client {c}, download {n}: body of version {v} with another \
                                 version's ETag"
                            );
                            tagged.fetch_add(1, Ordering::Relaxed);
                        }
                        seen.push(v);
                    }
                    seen
                })
            })
            .collect();
        for (i, staged) in staged.iter().enumerate() {
            std::thread::sleep(Duration::from_millis(20));
            std::fs::rename(staged, &target)
                .unwrap_or_else(|e| panic!("rename number {}: {e}", i + 1));
        }
        // The last version's tag is published once its rename has settled and its
        // background hash ran: keep downloading until one response carried a tag (so the
        // tag check above ran), however loaded the machine.
        let deadline = Instant::now() + Duration::from_secs(20);
        std::thread::sleep(Duration::from_millis(50));
        while tagged.load(Ordering::Relaxed) == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        stop.store(true, Ordering::Relaxed);
        clients
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let total: usize = seen.iter().map(Vec::len).sum();
    let mut distinct: Vec<usize> = seen.iter().flatten().copied().collect();
    distinct.sort_unstable();
    distinct.dedup();
    eprintln!(
        "rename churn: {total} complete downloads by {CLIENTS} clients in {:?}, {} distinct \
         versions seen",
        started.elapsed(),
        distinct.len()
    );
    assert!(
        distinct.len() >= 2,
        "the clients saw only versions {distinct:?}: the churn did not overlap the downloads"
    );
    assert!(
        tagged.into_inner() > 0,
        "no download carried a tag, 20 s after the last rename"
    );

    get_tagged(&server, "/churn.bin", &versions[REPLACEMENTS]);
}

/// Same size, same inode, rewritten in place: the next response has the new bytes and
/// the new ETag.
#[test]
fn in_place_rewrite_of_the_same_size_is_served_with_a_new_etag() {
    let server = Server::start("rewrite");
    let old = pseudo_random(21, 200_000);
    let new = pseudo_random(22, 200_000);
    let path = server.dir().write("same.bin", &old);

    let first = get_tagged(&server, "/same.bin", &old);
    let old_etag = first.header("ETag").expect("ETag").to_owned();

    // No pause is needed: the load hashed the file again once its last change had
    // settled, and any write after that gets a new mtime and ctime.
    let mut f = OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all(&new).unwrap();
    drop(f);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), new.len() as u64);

    // The next request has the new bytes (and the new tag once it is hashed).
    let second = get_tagged(&server, "/same.bin", &new);
    let new_etag = second.header("ETag").expect("ETag");
    assert_ne!(new_etag, old_etag, "a new ETag");
    assert_eq!(new_etag, etag_of(&new));
}

/// The same for a small file, which the file server answers with one `stat` taken
/// after its bytes are copied: every rewrite in place is seen by the next request, for
/// GET, a conditional GET with the old tag, and HEAD.
#[test]
fn in_place_rewrite_of_a_small_file_is_seen_by_the_next_request() {
    let server = Server::start("rewrite-small");
    let path = server.dir().write("small.bin", &pseudo_random(30, 2048));
    let mut previous = server.get("/small.bin");
    assert_eq!(previous.status, 200);
    for seed in 31..39 {
        let new = pseudo_random(seed, 2048);
        let mut f = OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all(&new).unwrap();
        drop(f);
        let old_etag = previous.header("ETag").expect("ETag").to_owned();
        let conditional = server.request("GET", "/small.bin", &[("If-None-Match", &old_etag)]);
        assert_eq!(
            conditional.status, 200,
            "the old tag no longer matches ({seed})"
        );
        assert_eq!(conditional.body, new, "new bytes ({seed})");
        let head = server.request("HEAD", "/small.bin", &[]);
        assert_eq!(
            head.header("ETag"),
            Some(etag_of(&new).as_str()),
            "HEAD ({seed})"
        );
        let current = server.get("/small.bin");
        assert_eq!(current.body, new, "new bytes ({seed})");
        assert_eq!(current.header("ETag"), Some(etag_of(&new).as_str()));
        previous = current;
    }
}

/// A download of `path` that reads 512 KiB (its receive buffer capped, so the server
/// cannot run far ahead), runs `change`, then reads on until the server ends the
/// response: the response head and every body byte received.
fn download_around(addr: SocketAddr, path: &str, change: impl FnOnce()) -> (u16, u64, Vec<u8>) {
    let stream = connect(addr);
    set_receive_buffer(&stream, 64 * 1024);
    let mut reader = BufReader::new(stream);
    reader
        .get_mut()
        .write_all(request_bytes("GET", path, &[], true).as_bytes())
        .unwrap();
    let head = read_head(&mut reader).expect("response head");
    let content_length = head.content_length().expect("Content-Length");
    let mut received = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    while received.len() < 512 * 1024 {
        let n = reader.read(&mut buf).expect("read before the change");
        assert!(n > 0, "the response ended after {} bytes", received.len());
        received.extend_from_slice(&buf[..n]);
    }
    change();
    read_on(&mut reader, &mut received, content_length);
    (head.status, content_length, received)
}

/// After a file changed under a response: reads on until the server ends it, by EOF
/// (finished or cut) or by a reset (cut), appending to `received`; how it ended. A
/// read that times out means the response neither finished nor was cut: a failure.
fn read_on(reader: &mut impl Read, received: &mut Vec<u8>, content_length: u64) -> String {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return "EOF".to_owned(),
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!(
                    "after the change the response neither finished nor was cut: stalled at \
                     {} of {content_length} bytes",
                    received.len()
                )
            }
            Err(e) => return format!("error: {e}"),
        }
    }
}

/// Writes `bytes` over the start of the file at `path`, in place: same inode, no
/// truncation.
fn overwrite_in_place(path: &std::path::Path, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = OpenOptions::new().write(true).open(path).unwrap();
    for (i, chunk) in bytes.chunks(MIB).enumerate() {
        f.write_all_at(chunk, (i * MIB) as u64).unwrap();
    }
}

/// The first half of `old` replaced by other bytes: an in-place update that leaves the
/// last page alone (so the mapping's last-page sentinel, a truncation check, cannot
/// notice it).
fn half_rewritten(old: &[u8], seed: u64) -> Vec<u8> {
    let mut new = pseudo_random(seed, old.len() / 2);
    new.extend_from_slice(&old[old.len() / 2..]);
    new
}

/// Serves a 16 MiB file (`seed`), and rewrites its first half in place while a client
/// is part-way through downloading it: both versions, and what the client got.
#[allow(clippy::type_complexity)]
fn rewrite_during_a_download(
    server: &Server,
    seed: u64,
) -> (Vec<u8>, Vec<u8>, (u16, u64, Vec<u8>)) {
    let old = pseudo_random(seed, 16 * MIB);
    let new = half_rewritten(&old, seed + 1);
    let path = server.dir().write("media.bin", &old);
    // Once the tag is hashed, as when loads hashed: a hash running during the rewrite
    // would refuse the version and poison the entry, cutting the body by itself.
    get_tagged(server, "/media.bin", &old);
    let got = download_around(server.addr(), "/media.bin", || {
        overwrite_in_place(&path, &new)
    });
    (old, new, got)
}

/// A 16 MiB file whose first 8 MiB are rewritten in place (same size, same inode)
/// while a client is part-way through downloading it. The shared mapping shows the new bytes at once, so the rest
/// of the body would come from the new version: the end-of-body check (one `stat`
/// before the last bytes go out) sees the new mtime and cuts the response instead of
/// completing it with a mix. The next request gets the new version and its ETag.
#[test]
fn in_place_rewrite_during_a_download_cuts_it_instead_of_mixing() {
    let server = Server::start("rewrite-during");
    let (old, new, (status, content_length, received)) = rewrite_during_a_download(&server, 23);
    assert_eq!(status, 200);
    assert_eq!(content_length, old.len() as u64);
    eprintln!(
        "in-place rewrite: client received {} of {content_length} bytes",
        received.len()
    );
    assert!(
        (received.len() as u64) < content_length,
        "a response spanning an in-place rewrite was completed ({} bytes): old, new or a mix, \
         it must be cut",
        received.len()
    );
    assert_eq!(
        first_difference(&received[..512 * 1024], &old),
        None,
        "the bytes before the rewrite are the old version"
    );

    get_tagged(&server, "/media.bin", &new);
}

/// The negative control of the test above: the same rewrite under
/// `revalidate = "never"` (no end-of-body check, by design: the operator promised
/// immutable files) completes the response, and its body is neither version. This is
/// the hazard the check removes, shown to be real in this very scenario.
#[test]
fn in_place_rewrite_without_the_check_mixes_versions_negative_control() {
    let server = Server::start_in_with(common::TempDir::new("rewrite-never"), |rocket| {
        let figment = rocket.figment().clone().merge(("mmap.revalidate", "never"));
        rocket.configure(figment)
    });
    let (old, new, (status, content_length, received)) = rewrite_during_a_download(&server, 25);
    assert_eq!(status, 200);
    assert_eq!(
        received.len() as u64,
        content_length,
        "without the check nothing cuts the response"
    );
    let split = first_difference(&received, &old).expect("some bytes are the new version's");
    assert!(
        split >= 512 * 1024,
        "the first 512 KiB were read before the rewrite"
    );
    assert_ne!(received, new, "not the new version either");
    // Which of the later bytes are the new version's depends on how far the server had
    // read ahead of the writer (up to hyper's queue and the socket buffers): the
    // point is that the completed body mixes the two versions.
    let new_bytes = received[split..]
        .iter()
        .zip(&new[split..])
        .filter(|(r, n)| r == n)
        .count();
    eprintln!(
        "negative control: old bytes up to {split}, then {new_bytes} of {} bytes of the new version: a mixed body",
        received.len() - split
    );
}

/// `revalidate = "watch"` (inotify instead of a `stat` per hit) keeps the guarantee
/// that no response completes with two versions: the end-of-body `stat` stays, so the
/// rewrite cuts the download as under "always". Later requests get the new version
/// once the watcher has handled the event (bounded here at 5 s; docs/operating.md gives the
/// delay measured), and a revalidation with the new tag is a 304.
#[test]
fn watch_policy_cuts_a_rewritten_download_and_then_serves_the_new_version() {
    let server = Server::start_in_with(common::TempDir::new("rewrite-watch"), |rocket| {
        let figment = rocket.figment().clone().merge(("mmap.revalidate", "watch"));
        rocket.configure(figment)
    });
    let (old, new, (status, content_length, received)) = rewrite_during_a_download(&server, 27);
    assert_eq!(status, 200);
    assert!(
        (received.len() as u64) < content_length,
        "a response spanning an in-place rewrite was completed under \"watch\""
    );
    assert_eq!(first_difference(&received[..512 * 1024], &old), None);

    let want = etag_of(&new);
    let start = Instant::now();
    loop {
        let got = server.get("/media.bin");
        assert_eq!(got.status, 200);
        if got.header("ETag") == Some(want.as_str()) {
            assert_eq!(sha256_hex(&got.body), sha256_hex(&new), "the new version");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the rewrite was not noticed in 5 s"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let revalidated = server.request("GET", "/media.bin", &[("If-None-Match", want.as_str())]);
    assert_eq!(revalidated.status, 304);
}

/// Under `revalidate = "watch"`, a small file is held in memory, as a copy: a write the
/// watcher cannot see (through a hard link in an unwatched directory) changes nothing
/// a hit sends. Hits keep answering with the version they hold and its own tag (a 304
/// for that tag, the old bytes under the old tag: never new bytes under the old tag),
/// as the policy's contract says of changes inotify does not report; the first change
/// the watcher sees makes the next request load the file as it is.
#[test]
fn watch_policy_never_sends_unseen_bytes_under_the_old_tag() {
    let server = Server::start_in_with(common::TempDir::new("small-watch"), |rocket| {
        let figment = rocket.figment().clone().merge(("mmap.revalidate", "watch"));
        rocket.configure(figment)
    });
    let old = pseudo_random(31, 1024);
    let new = half_rewritten(&old, 32);
    let path = server.dir().write("small.bin", &old);
    let elsewhere = common::TempDir::new("small-watch-link");
    let link = elsewhere.join("link.bin");
    std::fs::hard_link(&path, &link).unwrap();
    let old_tag = etag_of(&old);
    // The load, then a hit that verifies the entry once (its first `stat`).
    for _ in 0..2 {
        let got = server.get("/small.bin");
        assert_eq!(got.header("ETag"), Some(old_tag.as_str()));
        assert_eq!(got.body, old);
    }
    overwrite_in_place(&link, &new);

    let revalidated = server.request("GET", "/small.bin", &[("If-None-Match", &old_tag)]);
    assert_eq!(
        revalidated.status, 304,
        "a 304 under \"watch\" makes no stat"
    );
    for _ in 0..3 {
        let got = server.get("/small.bin");
        assert_eq!(
            got.header("ETag"),
            Some(etag_of(&got.body).as_str()),
            "a response carries the tag of the bytes it holds"
        );
        assert_eq!(got.body, old, "the version the entry holds");
    }
    // A change in the watched directory (the file's times): seen, and loaded.
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(std::time::SystemTime::now())
        .unwrap();
    let start = Instant::now();
    loop {
        let after = server.get("/small.bin");
        assert_eq!(after.header("ETag"), Some(etag_of(&after.body).as_str()));
        if after.body == new {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the change was not noticed in 5 s"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Clients download a 4 MiB file in a loop while it is rewritten in place 16 times,
/// every 100 ms (longer than the cache's settle time, so each version gets served),
/// alternating two versions. Every response that completes is exactly one version and
/// carries that version's ETag; responses that overlapped a rewrite are cut (the test
/// also checks that some were, and that both versions were served whole, or it would
/// show nothing); the last version is served afterwards.
#[test]
fn in_place_rewrites_under_concurrent_downloads() {
    const REWRITES: usize = 16;
    const CLIENTS: usize = 6;
    let server = Server::start("rewrite-churn");
    let versions = [pseudo_random(27, 4 * MIB), pseudo_random(28, 4 * MIB)];
    let hashes = versions.each_ref().map(|v| sha256_hex(v));
    let etags = versions.each_ref().map(|v| etag_of(v));
    let path = server.dir().write("churn.bin", &versions[0]);

    let addr = server.addr();
    let stop = AtomicBool::new(false);
    let (complete, cut, seen) = std::thread::scope(|s| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let (stop, hashes, etags, versions) = (&stop, &hashes, &etags, &versions);
                s.spawn(move || {
                    let (mut complete, mut cut, mut seen) = (0usize, 0usize, [false; 2]);
                    while !stop.load(Ordering::Relaxed) {
                        let Ok(d) = try_download(addr, "/churn.bin") else {
                            cut += 1; // closed before the head: cut at the first read
                            continue;
                        };
                        if d.status == 503 {
                            continue; // still changing when loaded: no version to serve
                        }
                        assert_eq!(d.status, 200, "client {c}");
                        if (d.body.len() as u64) < d.content_length {
                            cut += 1;
                            continue;
                        }
                        assert_eq!(d.body.len() as u64, d.content_length, "client {c}");
                        let h = sha256_hex(&d.body);
                        let v = hashes.iter().position(|x| *x == h).unwrap_or_else(|| {
                            panic!(
                                "client {c}: a completed response that is neither version \
                                 (ETag {:?}; old bytes up to {:?})",
                                d.etag,
                                first_difference(&d.body, &versions[0])
                            )
                        });
                        // None before the version's background hash ran.
                        if let Some(etag) = &d.etag {
                            assert_eq!(
                                etag, &etags[v],
                                "client {c}: body of version {v} with another ETag"
                            );
                        }
                        complete += 1;
                        seen[v] = true;
                    }
                    (complete, cut, seen)
                })
            })
            .collect();
        for i in 1..=REWRITES {
            std::thread::sleep(Duration::from_millis(100));
            overwrite_in_place(&path, &versions[i % 2]);
        }
        std::thread::sleep(Duration::from_millis(50));
        stop.store(true, Ordering::Relaxed);
        clients
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .fold((0, 0, [false; 2]), |(a, b, x), (c, d, y)| {
                (a + c, b + d, [x[0] || y[0], x[1] || y[1]])
            })
    });
    eprintln!("in-place churn: {complete} complete responses, {cut} cut, versions seen {seen:?}");
    assert_eq!(seen, [true, true], "both versions were served whole");
    assert!(
        cut > 0,
        "no response overlapped a rewrite: the churn showed nothing"
    );

    get_tagged(&server, "/churn.bin", &versions[REWRITES % 2]);
}

/// Deleted while a client is part-way through: the mapping keeps the old inode, so the
/// download completes with the old version, intact; the next request is 404.
#[test]
fn deletion_during_a_download_lets_it_finish() {
    let server = Server::start("delete-during");
    let data = pseudo_random(29, 16 * MIB);
    let path = server.dir().write("gone.bin", &data);
    let (status, content_length, received) = download_around(server.addr(), "/gone.bin", || {
        std::fs::remove_file(&path).unwrap()
    });
    assert_eq!(status, 200);
    assert_eq!(received.len() as u64, content_length, "completed");
    assert_eq!(sha256_hex(&received), sha256_hex(&data), "the old version");
    assert_eq!(server.get("/gone.bin").status, 404);
}

/// Permissions removed while a client is part-way through. The change of the inode
/// (its ctime) cannot be told from a rewrite that restored the mtime, so the response
/// in flight is cut rather than completed; afterwards the file is 403 (or, as root,
/// whom permissions do not stop, served again intact with the same ETag).
#[test]
fn permission_removal_during_a_download_cuts_it() {
    let server = Server::start("chmod-during");
    let data = pseudo_random(30, 16 * MIB);
    let path = server.dir().write("locked.bin", &data);
    let (status, content_length, received) = download_around(server.addr(), "/locked.bin", || {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap()
    });
    assert_eq!(status, 200);
    assert!(
        (received.len() as u64) < content_length,
        "cut after {} bytes",
        received.len()
    );
    assert_eq!(first_difference(&received, &data), None, "a true prefix");
    let after = server.get("/locked.bin");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        assert_eq!(after.status, 200);
        assert_eq!(sha256_hex(&after.body), sha256_hex(&data));
        if let Some(etag) = after.header("ETag") {
            assert_eq!(etag, etag_of(&data));
        }
        get_tagged(&server, "/locked.bin", &data);
    } else {
        assert_eq!(after.status, 403);
    }
}

#[test]
fn deleted_file_is_404_and_the_server_still_answers() {
    let server = Server::start("delete");
    let doomed = pseudo_random(31, 70_000);
    let kept = pseudo_random(32, 50_000);
    let path = server.dir().write("doomed.bin", &doomed);
    server.dir().write("kept.bin", &kept);

    let before = server.get("/doomed.bin");
    assert_eq!(before.status, 200);
    assert_eq!(before.body, doomed);

    std::fs::remove_file(&path).unwrap();
    assert_eq!(server.get("/doomed.bin").status, 404);

    let other = server.get("/kept.bin");
    assert_eq!(other.status, 200);
    assert_eq!(sha256_hex(&other.body), sha256_hex(&kept));
}

#[test]
fn unreadable_file_is_403_unless_running_as_root() {
    let server = Server::start("chmod");
    let data = pseudo_random(41, 30_000);
    let path = server.dir().write("secret.bin", &data);

    let before = server.get("/secret.bin");
    assert_eq!(before.status, 200);

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
    let after = server.get("/secret.bin");
    // Restore first, so the directory can be cleaned up whatever the outcome.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();

    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if root {
        // Root bypasses file permission bits (CAP_DAC_OVERRIDE): `open` succeeds on a
        // mode-000 file, so the server can and does serve it. What is checked here is
        // that the permission change (a new ctime) is picked up without harm: the file
        // is served again, intact. The 403 path is checked when run as another user.
        assert_eq!(
            after.status, 200,
            "as root, a mode-000 file is still readable"
        );
        assert_eq!(sha256_hex(&after.body), sha256_hex(&data));
    } else {
        assert_eq!(after.status, 403, "mode 000 must give 403 Forbidden");
    }

    // And the server keeps serving it once readable again.
    let again = server.get("/secret.bin");
    assert_eq!(again.status, 200);
    assert_eq!(again.body, data);
}

/// Any other socket-level smoke: a request for a file that never existed is 404 and a
/// request right after it is served (the forward to Rocket's catcher works).
#[test]
fn missing_file_is_404() {
    let server = Server::start("missing");
    server.dir().write("here.txt", b"here\n");
    assert_eq!(
        request_at(server.addr(), "GET", "/not-here.txt", &[]).status,
        404
    );
    assert_eq!(server.get("/here.txt").body, b"here\n");
}
