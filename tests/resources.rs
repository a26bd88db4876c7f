//! Bounded resources over real sockets, against the real binary
//! (`CARGO_BIN_EXE_rocket-mmap`, so this test needs the `cli` feature) run as a child
//! process, whose memory is read from `/proc/<pid>/status`:
//!
//! * 1000 idle keep-alive connections (each served once, then left open) do not delay
//!   a new client, and cost the server a bounded amount of memory each;
//! * 64 clients that start a 100 MiB download and stop reading: the server's anonymous
//!   memory grows by less than 64 MiB, it does not spin, and a small GET still answers
//!   at once;
//! * a graceful shutdown (SIGTERM to the binary; Rocket's `Shutdown` handle in-process)
//!   during downloads: no panic, exit within the grace period, every download either
//!   complete and correct or cut after a correct prefix — never a hang.
//!
//! Why a child process: the harness runs the server inside the test process, where
//! RSS mixes the server's memory with the test clients' buffers (and with other tests
//! running in parallel). A child's `/proc/<pid>/status` is the server's alone, and it
//! separates `RssAnon` (heap, stacks: what connections and responses cost) from
//! `RssFile` (pages of the memory-mapped files — page cache shared with the kernel,
//! bounded by the size of the files served, reclaimable) and `RssShmem`.
//!
//! Run with `--nocapture` to see the figures each test measures.

#[path = "common/binary.rs"]
mod binary;
mod common;

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use binary::Binary;
use common::{request_bytes, try_request_at, Conn, HttpResponse, Server, TempDir};

/// The binary under test (built by cargo for this test: needs the `cli` feature).
const BIN: &str = env!("CARGO_BIN_EXE_rocket-mmap");

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// A small file: what "another client" fetches while the server is under pressure.
const SMALL: &[u8] = b"small file: the answer another client is waiting for\n";

/// How fast a new client must be answered while the server is under pressure.
const PROMPT: Duration = Duration::from_secs(2);

// ---------------------------------------------------------------------------------
// Test data: large files without holding them in memory
// ---------------------------------------------------------------------------------

/// A large file made of a 1 MiB pseudo-random block repeated, each copy stamped with
/// its index in its first 8 bytes (so a misplaced block shows). Any byte can be
/// checked without keeping the file in memory.
struct BigFile {
    block: Vec<u8>,
    len: u64,
}

impl BigFile {
    /// Writes `mib` MiB to `path`.
    fn write(path: &Path, mib: usize) -> BigFile {
        use std::io::Write;
        let mut block = common::pseudo_random(0xB16, MIB);
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
        );
        for i in 0..mib as u64 {
            block[..8].copy_from_slice(&i.to_le_bytes());
            f.write_all(&block).unwrap();
        }
        f.into_inner().unwrap().sync_all().unwrap();
        BigFile {
            block,
            len: (mib * MIB) as u64,
        }
    }

    /// Whether `bytes` are the file's bytes at `offset`.
    fn matches(&self, offset: u64, bytes: &[u8]) -> bool {
        let mut pos = offset as usize;
        let mut rest = bytes;
        while !rest.is_empty() {
            let (index, within) = (pos / MIB, pos % MIB);
            let n = rest.len().min(MIB - within);
            let want = &self.block[within..within + n];
            let stamp = (index as u64).to_le_bytes();
            for (k, (&got, &w)) in rest[..n].iter().zip(want).enumerate() {
                let w = if within + k < 8 { stamp[within + k] } else { w };
                if got != w {
                    return false;
                }
            }
            rest = &rest[n..];
            pos += n;
        }
        true
    }
}

// ---------------------------------------------------------------------------------
// The binary as a child process
// ---------------------------------------------------------------------------------

/// Memory of a process, from `/proc/<pid>/status` (KiB).
#[derive(Clone, Copy, Debug, Default)]
struct Memory {
    rss: u64,
    anon: u64,
    file: u64,
    shmem: u64,
    threads: u64,
}

impl Memory {
    fn of(pid: u32) -> Memory {
        let text = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
        let field = |name: &str| -> u64 {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
        };
        Memory {
            rss: field("VmRSS:"),
            anon: field("RssAnon:"),
            file: field("RssFile:"),
            shmem: field("RssShmem:"),
            threads: field("Threads:"),
        }
    }
}

impl std::fmt::Display for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "VmRSS {:.1} MiB (RssAnon {:.1}, RssFile {:.1}, RssShmem {:.1}), {} threads",
            self.rss as f64 / 1024.0,
            self.anon as f64 / 1024.0,
            self.file as f64 / 1024.0,
            self.shmem as f64 / 1024.0,
            self.threads
        )
    }
}

/// Rocket's own log lines kept to errors: these tests read the binary's output only
/// for its banner and its shutdown.
const QUIET: &[(&str, &str)] = &[("ROCKET_LOG_LEVEL", "critical")];

/// `GET path` on a new connection to `bin`: the response and how long it took.
fn timed_get(bin: &Binary, path: &str) -> (HttpResponse, Duration) {
    let t = Instant::now();
    let r =
        try_request_at(bin.addr(), "GET", path, &[]).unwrap_or_else(|e| panic!("GET {path}: {e}"));
    (r, t.elapsed())
}

/// Samples `memory` every 100 ms until VmRSS has moved by less than 256 KiB over the
/// last 600 ms, or `limit` passes; returns the last sample and the time it took.
fn settle(bin: &Binary, limit: Duration) -> (Memory, Duration) {
    let t = Instant::now();
    let mut history = vec![Memory::of(bin.pid())];
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let m = Memory::of(bin.pid());
        history.push(m);
        let window = &history[history.len().saturating_sub(7)..];
        let (lo, hi) = window
            .iter()
            .fold((u64::MAX, 0), |(lo, hi), m| (lo.min(m.rss), hi.max(m.rss)));
        if (window.len() == 7 && hi - lo < 256) || t.elapsed() > limit {
            return (m, t.elapsed());
        }
    }
}

/// Five GETs of the small file, each checked: their latencies.
fn small_get_latencies(bin: &Binary) -> Vec<Duration> {
    (0..5)
        .map(|_| {
            let (r, took) = timed_get(bin, "/small.txt");
            assert_eq!((r.status, r.body.as_slice()), (200, SMALL));
            took
        })
        .collect()
}

/// Raises this process's soft `RLIMIT_NOFILE` to at least `want` if the hard limit
/// allows (children inherit it). Returns the soft limit before and after, and the
/// hard limit.
fn raise_open_files(want: libc::rlim_t) -> (libc::rlim_t, libc::rlim_t, libc::rlim_t) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) },
        0,
        "getrlimit"
    );
    let before = lim.rlim_cur;
    if lim.rlim_cur < want {
        lim.rlim_cur = want.min(lim.rlim_max);
        // SAFETY: `lim` is a valid rlimit with rlim_cur <= rlim_max.
        assert_eq!(
            unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) },
            0,
            "setrlimit"
        );
    }
    (before, lim.rlim_cur, lim.rlim_max)
}

/// Bytes waiting in a socket's receive queue (`FIONREAD`).
fn queued(stream: &TcpStream) -> usize {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int through the pointer, which is valid.
    let rc = unsafe { libc::ioctl(stream.as_raw_fd(), libc::FIONREAD, &mut n) };
    if rc == 0 {
        n.max(0) as usize
    } else {
        0
    }
}

fn mib(kib: i64) -> f64 {
    kib as f64 / 1024.0
}

// ---------------------------------------------------------------------------------
// Idle connections
// ---------------------------------------------------------------------------------

/// 1000 keep-alive connections, each served once (`GET /small.txt`, read in full) and
/// then left idle: a new client is still answered within [`PROMPT`] (5 fresh
/// requests), a sample of the idle connections still works, and the server's
/// anonymous memory grows by less than 64 KiB per idle connection.
///
/// File descriptors: this process holds the 1000 client ends and the child the 1000
/// server ends. The soft `RLIMIT_NOFILE` is raised (with `setrlimit`, up to the hard
/// limit) to 1000 + 512 before the child starts, so the child inherits it too; the test
/// fails with a clear message if the hard limit does not allow it.
///
/// Rocket 0.5.2 sets no idle timeout on HTTP/1 keep-alive connections (its
/// `keep_alive` setting only switches keep-alive on or off with hyper 1), so the
/// connections stay open for the whole test.
#[test]
fn a_thousand_idle_keep_alive_connections_do_not_delay_a_new_client() {
    const IDLE: usize = 1000;
    let want = (IDLE + 512) as libc::rlim_t;
    let (before, soft, hard) = raise_open_files(want);
    eprintln!("RLIMIT_NOFILE: soft {before} → {soft} (hard {hard}), need {want}");
    assert!(
        soft >= want,
        "RLIMIT_NOFILE hard limit {hard} is below the {want} this test needs"
    );

    let dir = TempDir::new("idle");
    dir.write("small.txt", SMALL);
    let bin = Binary::start(dir.path(), &[], QUIET);
    let (r, _) = timed_get(&bin, "/small.txt");
    assert_eq!((r.status, r.body.as_slice()), (200, SMALL));
    let (base, _) = settle(&bin, Duration::from_secs(3));

    let request = request_bytes("GET", "/small.txt", &[], false);
    let t = Instant::now();
    let mut idle = Vec::with_capacity(IDLE);
    for i in 0..IDLE {
        let mut c = Conn::open(bin.addr());
        c.send(request.as_bytes())
            .unwrap_or_else(|e| panic!("idle connection {i}: send: {e}"));
        let r = c
            .response(false)
            .unwrap_or_else(|e| panic!("idle connection {i}: {e}"));
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, SMALL),
            "connection {i}"
        );
        assert_ne!(r.header("Connection"), Some("close"), "connection {i}");
        idle.push(c);
    }
    let opened = t.elapsed();
    let (loaded, _) = settle(&bin, Duration::from_secs(3));

    let latencies = small_get_latencies(&bin);
    let slowest = latencies.iter().max().copied().unwrap();

    // The idle connections are still open and usable: every 50th serves a second request.
    let closed = idle
        .iter_mut()
        .map(|c| c.closed_by_peer(Duration::from_millis(1)))
        .filter(|&closed| closed)
        .count();
    for (i, c) in idle.iter_mut().enumerate().step_by(50) {
        c.send(request.as_bytes()).unwrap();
        let r = c
            .response(false)
            .unwrap_or_else(|e| panic!("idle connection {i}, second request: {e}"));
        assert_eq!((r.status, r.body.as_slice()), (200, SMALL));
    }

    let growth = loaded.anon as i64 - base.anon as i64;
    eprintln!(
        "{IDLE} idle keep-alive connections opened and served in {opened:?}; \
         closed by the server meanwhile: {closed}"
    );
    eprintln!("  server before: {base}");
    eprintln!("  server with {IDLE} idle: {loaded}");
    eprintln!(
        "  RssAnon growth {:.1} MiB = {:.1} KiB per idle connection",
        mib(growth),
        growth as f64 / IDLE as f64
    );
    eprintln!("  new clients meanwhile: {latencies:?}");
    assert_eq!(closed, 0, "idle connections were closed by the server");
    assert!(
        slowest < PROMPT,
        "a new client waited {slowest:?} with {IDLE} idle connections"
    );
    assert!(
        growth < (64 * IDLE) as i64,
        "{IDLE} idle connections cost {growth} KiB of anonymous memory"
    );
    drop(idle);
    let (r, _) = timed_get(&bin, "/small.txt");
    assert_eq!(r.status, 200);
}

// ---------------------------------------------------------------------------------
// Stalled downloads
// ---------------------------------------------------------------------------------

/// 64 clients each request a 100 MiB file, read the head and the first 16 KiB, then
/// stop reading while keeping the connection open. Once the server has filled every
/// socket buffer it can (its RSS stops moving), its memory is compared with a baseline
/// taken after a warm-up (HEAD, which maps and hashes the file, and one full download,
/// which sets up Rocket's chunk buffers and faults in the whole mapping).
///
/// What is asserted, and why:
/// * `RssAnon` growth < 64 MiB: this is what the stalled responses cost the server
///   (Rocket's body chunk of `chunk_size` = 64 KiB, hyper's write buffer and the
///   connection state). No buffer of the response's size may exist.
/// * `RssFile + RssShmem` growth ≤ the file's size: pages of the mapping are page
///   cache, shared and reclaimable; they may legitimately count once in full (here they
///   already do, after the warm-up), never more.
/// * `VmRSS` growth < 64 MiB + the file's size (the sum of the two).
/// * The server does not spin on the stalled sockets: it uses < 0.3 s of CPU over a
///   1 s window while all 64 are stalled.
/// * A small GET from another client answers within [`PROMPT`].
///
/// The bytes the server pushed are in the kernel's socket buffers (the client's receive
/// queue is reported), which RSS does not count and this crate does not control.
///
/// Measured on a 2-core VM: about 630 KiB of `RssAnon` per stalled client with the
/// default 64 KiB `chunk_size` (39 MiB for 64). It is hyper's write queue (it accepts
/// body chunks until ~400 KiB or 16 buffers are queued) plus Rocket's one-chunk body
/// channel and the chunk being read, so it scales with `chunk_size`: about 107 KiB per
/// client with 4 KiB chunks, 1.1 MiB with 256 KiB chunks (where 64 stalled clients
/// exceed this test's 64 MiB bound).
#[test]
fn stalled_downloads_of_a_100_mib_file_keep_server_memory_bounded() {
    const CLIENTS: usize = 64;
    const FILE_MIB: usize = 100;
    raise_open_files(1024);
    let dir = TempDir::new("stalled");
    let big = BigFile::write(&dir.join("big.bin"), FILE_MIB);
    dir.write("small.txt", SMALL);
    let bin = Binary::start(dir.path(), &[], QUIET);

    // Warm-up: map + hash (HEAD), then one full download read to the end.
    let head = try_request_at(bin.addr(), "HEAD", "/big.bin", &[]).unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(head.content_length(), Some(big.len));
    {
        let mut c = Conn::open(bin.addr());
        c.send(request_bytes("GET", "/big.bin", &[], true).as_bytes())
            .unwrap();
        let h = c.head().unwrap();
        assert_eq!(h.status, 200);
        let mut buf = vec![0u8; 256 * KIB];
        let mut got = 0u64;
        loop {
            let n = c.read_some(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got += n as u64;
        }
        assert_eq!(got, big.len, "warm-up download");
    }
    for _ in 0..3 {
        assert_eq!(timed_get(&bin, "/small.txt").0.status, 200);
    }
    let (base, _) = settle(&bin, Duration::from_secs(3));

    let t = Instant::now();
    let mut stalled = Vec::with_capacity(CLIENTS);
    for i in 0..CLIENTS {
        let mut c = Conn::open(bin.addr());
        c.send(request_bytes("GET", "/big.bin", &[], false).as_bytes())
            .unwrap();
        let h = c
            .head()
            .unwrap_or_else(|e| panic!("stalled client {i}: {e}"));
        assert_eq!(h.status, 200, "stalled client {i}");
        assert_eq!(h.content_length(), Some(big.len), "stalled client {i}");
        let mut first = vec![0u8; 16 * KIB];
        let mut n = 0;
        while n < first.len() {
            let k = c.read_some(&mut first[n..]).unwrap();
            assert!(k > 0, "stalled client {i}: the response ended");
            n += k;
        }
        assert!(big.matches(0, &first), "stalled client {i}: wrong bytes");
        stalled.push(c);
    }
    let started = t.elapsed();
    let (during, settled_in) = settle(&bin, Duration::from_secs(8));

    let cpu0 = bin.cpu_time();
    std::thread::sleep(Duration::from_secs(1));
    let cpu_idle = bin.cpu_time().saturating_sub(cpu0);

    let latencies = small_get_latencies(&bin);
    let slowest = latencies.iter().max().copied().unwrap();
    let after = Memory::of(bin.pid());
    let in_kernel: usize = stalled.iter().map(|c| queued(c.stream())).sum();

    let anon = after.anon as i64 - base.anon as i64;
    let mapped = (after.file + after.shmem) as i64 - (base.file + base.shmem) as i64;
    let total = after.rss as i64 - base.rss as i64;
    let file_kib = (big.len / 1024) as i64;
    eprintln!(
        "{CLIENTS} stalled downloads of {FILE_MIB} MiB started in {started:?}, \
         server settled in {settled_in:?}"
    );
    eprintln!("  server at baseline (after warm-up): {base}");
    eprintln!("  server with {CLIENTS} stalled:       {during}");
    eprintln!("  server after probes:                {after}");
    eprintln!(
        "  growth: RssAnon {:+.1} MiB ({:.0} KiB per stalled client), RssFile+RssShmem \
         {:+.1} MiB, VmRSS {:+.1} MiB",
        mib(anon),
        anon as f64 / CLIENTS as f64,
        mib(mapped),
        mib(total)
    );
    eprintln!(
        "  bytes queued in the clients' receive buffers (kernel): {:.1} MiB",
        in_kernel as f64 / MIB as f64
    );
    eprintln!("  server CPU over 1 s with all stalled: {cpu_idle:?}");
    eprintln!("  small GETs meanwhile: {latencies:?}");

    assert!(
        anon < 64 * 1024,
        "RssAnon grew by {:.1} MiB for {CLIENTS} stalled downloads",
        mib(anon)
    );
    assert!(
        mapped <= file_kib,
        "mapped pages grew by {:.1} MiB, more than the {FILE_MIB} MiB file",
        mib(mapped)
    );
    assert!(
        total < 64 * 1024 + file_kib,
        "VmRSS grew by {:.1} MiB",
        mib(total)
    );
    assert!(
        cpu_idle < Duration::from_millis(300),
        "the server used {cpu_idle:?} of CPU in 1 s with only stalled clients"
    );
    assert!(
        slowest < PROMPT,
        "a small GET took {slowest:?} beside {CLIENTS} stalled downloads"
    );
    drop(stalled);
    assert_eq!(timed_get(&bin, "/small.txt").0.status, 200);
}

// ---------------------------------------------------------------------------------
// Graceful shutdown
// ---------------------------------------------------------------------------------

/// How a download in flight ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ended {
    /// Every byte of Content-Length, all correct.
    Complete,
    /// Cut after this many bytes, all correct (end of stream or a reset).
    Cut(u64),
}

/// Reads the rest of a 200 response to `GET /big.bin` (head already read), checking
/// every byte, pausing `pause` after each 64 KiB read. `Err` if a byte is wrong, more
/// bytes than Content-Length arrive, or a read times out (a hang).
fn finish_download(
    mut c: Conn,
    big: &BigFile,
    mut offset: u64,
    pause: Duration,
) -> Result<Ended, String> {
    c.stream()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = vec![0u8; 64 * KIB];
    loop {
        let n = match c.read_some(&mut buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(format!("hung after {offset} bytes: {e}"))
            }
            Err(_) => return Ok(Ended::Cut(offset)), // reset: cut
        };
        if n == 0 {
            return Ok(if offset == big.len {
                Ended::Complete
            } else {
                Ended::Cut(offset)
            });
        }
        if offset + n as u64 > big.len {
            return Err(format!("more than Content-Length: {}", offset + n as u64));
        }
        if !big.matches(offset, &buf[..n]) {
            return Err(format!("wrong bytes at {offset}"));
        }
        offset += n as u64;
        if offset == big.len {
            // `Connection: close` was sent: the server closes after the body.
            return Ok(Ended::Complete);
        }
        std::thread::sleep(pause);
    }
}

/// Opens `GET /big.bin` (Connection: close) and reads the head and `first` body bytes.
/// `n` downloads of `/big.bin` read slowly to the end on their own threads, and `n`
/// more that stall after their first 16 KiB (the connections are returned, open).
#[allow(clippy::type_complexity)]
fn readers_and_stalled(
    addr: SocketAddr,
    big: &Arc<BigFile>,
    n: usize,
) -> (
    Vec<std::thread::JoinHandle<Result<Ended, String>>>,
    Vec<Conn>,
) {
    let readers = (0..n)
        .map(|_| {
            let c = start_download(addr, big, 16 * KIB);
            let big = big.clone();
            std::thread::spawn(move || {
                finish_download(c, &big, 16 * KIB as u64, Duration::from_millis(10))
            })
        })
        .collect();
    let stalled = (0..n)
        .map(|_| start_download(addr, big, 16 * KIB))
        .collect();
    (readers, stalled)
}

fn start_download(addr: SocketAddr, big: &BigFile, first: usize) -> Conn {
    let mut c = Conn::open(addr);
    c.send(request_bytes("GET", "/big.bin", &[], true).as_bytes())
        .unwrap();
    let h = c.head().unwrap();
    assert_eq!(h.status, 200);
    assert_eq!(h.content_length(), Some(big.len));
    let mut buf = vec![0u8; first];
    let mut n = 0;
    while n < first {
        let k = c.read_some(&mut buf[n..]).unwrap();
        assert!(k > 0);
        n += k;
    }
    assert!(big.matches(0, &buf));
    c
}

/// SIGTERM to the binary while downloads of a 64 MiB file are in flight: 3 slow readers
/// (64 KiB every 10 ms, ~6 MiB/s: they cannot finish before the signal), 3 stalled
/// clients, and one fast reader started just before the signal. Rocket's grace and
/// mercy are set to 1 s each (`ROCKET_SHUTDOWN={grace=1,mercy=1}`; defaults 2 s + 3 s).
///
/// Asserted: the process exits by itself within grace + mercy + 1 s (Rocket's own
/// bound) plus 3 s of slack for a loaded machine; it exits with status 0 (a graceful
/// shutdown, not death by the signal); nothing in its output says "panicked"; every
/// download ends (no read waits 10 s), either complete with every byte right or cut
/// after a correct prefix; new connections are refused afterwards.
#[test]
fn sigterm_during_downloads_exits_within_the_grace_period() {
    let dir = TempDir::new("sigterm");
    let big = Arc::new(BigFile::write(&dir.join("big.bin"), 64));
    dir.write("small.txt", SMALL);
    let mut bin = Binary::start(
        dir.path(),
        &[],
        &[
            ("ROCKET_SHUTDOWN", "{grace=1,mercy=1}"),
            // Rocket's shutdown messages are warnings: keep them in the output.
            ("ROCKET_LOG_LEVEL", "normal"),
        ],
    );
    let addr = bin.addr();
    assert_eq!(timed_get(&bin, "/small.txt").0.status, 200);

    let (mut readers, stalled) = readers_and_stalled(addr, &big, 3);
    std::thread::sleep(Duration::from_millis(500));
    let fast = start_download(addr, &big, 16 * KIB);
    {
        let big = big.clone();
        readers.push(std::thread::spawn(move || {
            finish_download(fast, &big, 16 * KIB as u64, Duration::ZERO)
        }));
    }

    let t = Instant::now();
    // SAFETY: kill(2) with a valid pid and signal number has no memory effects.
    let rc = unsafe { libc::kill(bin.pid() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0, "kill(SIGTERM)");
    let bound = Duration::from_secs(1 + 1 + 1 + 3);
    let exited = bin.wait_exit(bound + Duration::from_secs(5));
    let outcomes: Vec<Result<Ended, String>> = readers
        .into_iter()
        .map(|h| h.join().expect("a reader panicked"))
        .collect();
    let readers_done = t.elapsed();
    let stalled_outcomes: Vec<Result<Ended, String>> = stalled
        .into_iter()
        .map(|c| finish_download(c, &big, 16 * KIB as u64, Duration::ZERO))
        .collect();
    let output = bin.output();
    let refused = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err();

    eprintln!(
        "SIGTERM with 4 downloads reading and 3 stalled (64 MiB file, grace 1 s + mercy 1 s):"
    );
    eprintln!("  exit: {exited:?}");
    eprintln!("  readers ended within {readers_done:?}: {outcomes:?}");
    eprintln!("  stalled: {stalled_outcomes:?}");
    eprintln!("  new connection refused afterwards: {refused}");
    let (status, took) = exited.unwrap_or_else(|| {
        panic!("the binary did not exit within {bound:?} of SIGTERM; output:\n{output}")
    });
    assert!(
        took <= bound,
        "exit took {took:?} (bound {bound:?}); output:\n{output}"
    );
    assert!(
        status.success(),
        "exit status {status:?} after SIGTERM; output:\n{output}"
    );
    assert!(
        !output.contains("panicked"),
        "a panic during shutdown:\n{output}"
    );
    for (i, o) in outcomes.iter().chain(&stalled_outcomes).enumerate() {
        assert!(o.is_ok(), "download {i}: {o:?}");
    }
    assert!(refused, "the port still accepts connections after exit");
}

/// The same through Rocket's `Shutdown` handle with the in-process harness (grace 0,
/// mercy 0): `Server::stop` returns within 5 s while 2 slow readers and 2 stalled
/// clients hold downloads of a 64 MiB file; every download ends, complete or cut after
/// a correct prefix.
#[test]
fn shutdown_handle_during_downloads_stops_promptly() {
    let server = Server::start("shutdown-handle");
    let big = Arc::new(BigFile::write(&server.dir().join("big.bin"), 64));
    let addr = server.addr();
    let (readers, stalled) = readers_and_stalled(addr, &big, 2);
    std::thread::sleep(Duration::from_millis(300));

    let t = Instant::now();
    server.stop();
    let stopped = t.elapsed();
    let outcomes: Vec<Result<Ended, String>> = readers
        .into_iter()
        .map(|h| h.join().expect("a reader panicked"))
        .chain(
            stalled
                .into_iter()
                .map(|c| finish_download(c, &big, 16 * KIB as u64, Duration::ZERO)),
        )
        .collect();
    eprintln!(
        "Shutdown::notify with 2 readers and 2 stalled: stopped in {stopped:?}; {outcomes:?}"
    );
    assert!(stopped < Duration::from_secs(5), "stop took {stopped:?}");
    for (i, o) in outcomes.iter().enumerate() {
        assert!(o.is_ok(), "download {i}: {o:?}");
    }
}

// ---------------------------------------------------------------------------------
// Configuring the bounds from the environment
// ---------------------------------------------------------------------------------

/// Runs the binary with `env` until it exits (at most 10 s; then it is killed and
/// `None` is returned): the exit status and its output.
fn run_until_exit(dir: &Path, env: &[(&str, &str)]) -> Option<(ExitStatus, String)> {
    let mut child = Command::new(BIN)
        .arg(dir)
        .args(["--port", "0"])
        .env("ROCKET_LOG_LEVEL", "off")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut err);
            return Some((status, err));
        }
        if t.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One environment variable per key of the `mmap` section (`ROCKET_MMAP_<KEY>`), as
/// the README and `src/config.rs` promise. Rocket 0.5.2's own provider reads
/// `ROCKET_MMAP_CHUNK_SIZE` as a top-level `mmap_chunk_size`; `MmapConfig::from_figment`
/// adds a provider that nests them (this test failed before it did). A 0 in any bound
/// is refused at start (exit status 2), as it is through `ROCKET_MMAP={…}` (the
/// control below).
#[test]
fn rocket_mmap_key_variables_configure_the_bounds() {
    let dir = TempDir::new("env-config");
    let (status, err) = run_until_exit(dir.path(), &[("ROCKET_MMAP", "{chunk_size=0}")])
        .expect("control: ROCKET_MMAP={chunk_size=0} must be refused at start");
    assert_eq!(status.code(), Some(2), "control: {err}");
    assert!(err.contains("chunk_size"), "control: {err}");
    for var in [
        "ROCKET_MMAP_CHUNK_SIZE",
        "ROCKET_MMAP_MAX_ENTRIES",
        "ROCKET_MMAP_MAX_BYTES",
        "ROCKET_MMAP_MAX_PARTS",
    ] {
        let outcome = run_until_exit(dir.path(), &[(var, "0")]);
        assert!(
            matches!(&outcome, Some((s, _)) if s.code() == Some(2)),
            "{var}=0 was not refused at start (ignored?): {outcome:?}"
        );
    }
}
