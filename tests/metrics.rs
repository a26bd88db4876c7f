//! The Prometheus endpoint: `--metrics` on the real binary, and `Metrics` as a
//! responder behind an application's own guard.
//!
//! * A scrape before and after a known sequence of requests (200, 206, 304, 416, 404,
//!   an abandoned download, a download cut by truncation, one cut by a rewrite in
//!   place, and evictions under `max_entries = 3`) moves every counter by exactly
//!   what the sequence implies; the bytes sent agree with the access log's.
//! * Counting responses by status costs no allocation per request.
//! * The standard process metrics (Linux) are the binary's own: open descriptors follow
//!   its connections up to its limit, a mapped file shows in its virtual memory, its
//!   CPU time and start time agree with `/proc`.
//! * `promtool check metrics` (Debian's `prometheus` package) accepts the exposition
//!   (ignored by default: it needs promtool; `.ci/run` runs it).

#[path = "common/binary.rs"]
mod binary;
mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use binary::{small_buffer_conn, wait_for_lines, Binary, LogLine};
use common::{etag_of, pseudo_random, request_at, request_bytes, TempDir};

const MIB: usize = 1 << 20;

// ---------------------------------------------------------------------------------
// A per-thread allocation counter (other tests run on other threads meanwhile)
// ---------------------------------------------------------------------------------

struct PerThread;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged; only counts, in a
// const-initialised thread local without a destructor (never allocates itself).
unsafe impl GlobalAlloc for PerThread {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: PerThread = PerThread;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

// ---------------------------------------------------------------------------------
// Scrapes
// ---------------------------------------------------------------------------------

/// `series → value` of one scrape (HELP and TYPE lines skipped).
#[derive(Debug)]
struct Scrape(BTreeMap<String, f64>);

impl Scrape {
    fn of(addr: SocketAddr) -> (Scrape, String) {
        let r = request_at(addr, "GET", "/metrics", &[]);
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("Content-Type"),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        let text = String::from_utf8(r.body).expect("the exposition is UTF-8");
        (Scrape::parse(&text), text)
    }

    fn parse(text: &str) -> Scrape {
        let series = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| {
                let (name, value) = l.rsplit_once(' ').expect("series and value");
                (name.to_owned(), value.parse().expect("a number"))
            })
            .collect();
        Scrape(series)
    }

    fn get(&self, series: &str) -> f64 {
        self.0.get(series).copied().unwrap_or(0.0)
    }
}

/// Reads `conn`'s response head and `at_least` body bytes.
fn read_some(conn: &mut common::Conn, at_least: usize) -> usize {
    let mut buf = vec![0u8; 64 * 1024];
    let mut received = 0;
    while received < at_least {
        let n = conn.read_some(&mut buf).expect("body bytes");
        assert!(n > 0, "the server closed early");
        received += n;
    }
    received
}

/// Reads until the server closes the connection (or cuts it).
fn read_to_close(conn: &mut common::Conn) -> usize {
    let mut buf = vec![0u8; 64 * 1024];
    let mut received = 0;
    loop {
        match conn.read_some(&mut buf) {
            Ok(0) | Err(_) => return received,
            Ok(n) => received += n,
        }
    }
}

#[test]
fn counters_move_exactly_with_a_known_sequence() {
    let dir = TempDir::new("metrics-exact");
    let a = pseudo_random(1, 1000);
    dir.write("a.txt", &a);
    dir.write("b.txt", &pseudo_random(2, 500));
    dir.write("c.txt", &pseudo_random(3, 300));
    dir.write("big.bin", &pseudo_random(4, 64 * MIB));
    let t = dir.write("t.bin", &pseudo_random(5, 32 * MIB));
    let w = dir.write("w.bin", &pseudo_random(6, 32 * MIB));
    let log = dir.join("access.log");
    let server = Binary::start(
        dir.path(),
        &["--metrics", "--access-log", log.to_str().unwrap()],
        &[("ROCKET_MMAP_MAX_ENTRIES", "3")],
    );
    let addr = server.addr();
    let mut lines = 0;
    let mut settle = |what: &str| {
        lines += 1;
        let got = wait_for_lines(&log, lines, Duration::from_secs(10));
        assert_eq!(got.len(), lines, "the log line of {what}: {got:#?}");
        LogLine::parse(&got[lines - 1])
    };

    let (before, _) = Scrape::of(addr);
    settle("the first scrape");

    // 1-4: a.txt: miss and load; then three hits.
    assert_eq!(request_at(addr, "GET", "/a.txt", &[]).status, 200);
    settle("200");
    let r = request_at(addr, "GET", "/a.txt", &[("Range", "bytes=0-99")]);
    assert_eq!((r.status, r.body.len()), (206, 100));
    settle("206");
    let etag = etag_of(&a);
    assert_eq!(
        request_at(addr, "GET", "/a.txt", &[("If-None-Match", &etag)]).status,
        304
    );
    settle("304");
    let r = request_at(addr, "GET", "/a.txt", &[("Range", "bytes=5000-")]);
    assert_eq!(r.status, 416);
    settle("416");
    // 5: a missing file: neither hit nor miss.
    assert_eq!(request_at(addr, "GET", "/missing", &[]).status, 404);
    settle("404");
    // 6: big.bin, abandoned after 256 KiB: miss, load, cut (client gone).
    let mut conn = small_buffer_conn(addr);
    conn.send(request_bytes("GET", "/big.bin", &[], false).as_bytes())
        .unwrap();
    assert_eq!(conn.head().unwrap().status, 200);
    read_some(&mut conn, 256 * 1024);
    drop(conn);
    let abandoned = settle("the abandoned download").bytes;
    // 7-8: b.txt and c.txt: two more entries; the fourth evicts big.bin (CLOCK:
    // a.txt, used again since its load, is passed over once).
    assert_eq!(request_at(addr, "GET", "/b.txt", &[]).status, 200);
    settle("b.txt");
    assert_eq!(request_at(addr, "GET", "/c.txt", &[]).status, 200);
    settle("c.txt");
    // 9: t.bin (evicts b.txt), truncated under the download: cut (truncated).
    let mut conn = small_buffer_conn(addr);
    conn.send(request_bytes("GET", "/t.bin", &[], true).as_bytes())
        .unwrap();
    assert_eq!(conn.head().unwrap().status, 200);
    let mut received = read_some(&mut conn, 512 * 1024);
    std::fs::File::options()
        .write(true)
        .open(&t)
        .unwrap()
        .set_len(4096)
        .unwrap();
    received += read_to_close(&mut conn);
    assert!(received < 32 * MIB);
    let truncated = settle("the truncated download").bytes;
    // 10: w.bin (evicts a.txt), rewritten in place under the download: its last
    // bytes are never sent (cut: file changed).
    let mut conn = small_buffer_conn(addr);
    conn.send(request_bytes("GET", "/w.bin", &[], true).as_bytes())
        .unwrap();
    assert_eq!(conn.head().unwrap().status, 200);
    let mut received = read_some(&mut conn, 512 * 1024);
    std::fs::File::options()
        .write(true)
        .open(&w)
        .unwrap()
        .write_all_at(&[0xAB; 4096], 0)
        .unwrap();
    received += read_to_close(&mut conn);
    assert!(received < 32 * MIB);
    let rewritten = settle("the rewritten download").bytes;

    let (after, text) = Scrape::of(addr);
    let delta = |series: &str| after.get(series) - before.get(series);
    let expected: &[(&str, f64)] = &[
        // The first scrape is counted in the second.
        ("rocket_mmap_responses_total{code=\"200\"}", 7.0),
        ("rocket_mmap_responses_total{code=\"206\"}", 1.0),
        ("rocket_mmap_responses_total{code=\"304\"}", 1.0),
        ("rocket_mmap_responses_total{code=\"404\"}", 1.0),
        ("rocket_mmap_responses_total{code=\"416\"}", 1.0),
        // From the record of what was served: the 206 and the 416.
        ("rocket_mmap_range_requests_total{served=\"single\"}", 1.0),
        ("rocket_mmap_range_requests_total{served=\"none\"}", 1.0),
        ("rocket_mmap_cache_hits_total", 3.0),
        ("rocket_mmap_cache_misses_total", 6.0),
        ("rocket_mmap_cache_loads_total", 6.0),
        ("rocket_mmap_cache_evictions_total", 3.0),
        ("rocket_mmap_cache_single_flight_waits_total", 0.0),
        ("rocket_mmap_cache_load_duration_seconds_count", 6.0),
        // 200 a.txt, 206, 416 (an empty body, read), b.txt, c.txt; not the 304,
        // whose body is never read.
        ("rocket_mmap_bodies_completed_total", 5.0),
        (
            "rocket_mmap_responses_cut_total{cause=\"client_gone\"}",
            1.0,
        ),
        ("rocket_mmap_responses_cut_total{cause=\"truncated\"}", 1.0),
        (
            "rocket_mmap_responses_cut_total{cause=\"file_changed\"}",
            1.0,
        ),
        (
            "rocket_mmap_body_bytes_sent_total",
            (1000 + 100 + 500 + 300) as f64 + (abandoned + truncated + rewritten) as f64,
        ),
        // Lines written by the time of the second scrape: the first scrape's and the
        // ten requests'.
        ("rocket_mmap_access_log_lines_total", 11.0),
        ("rocket_mmap_access_log_lines_dropped_total", 0.0),
    ];
    let mut wrong = Vec::new();
    for &(series, want) in expected {
        if delta(series) != want {
            wrong.push(format!(
                "{series}: moved by {}, expected {want}",
                delta(series)
            ));
        }
    }
    // Levels: nothing in flight; c.txt (in memory), t.bin and w.bin are cached.
    let levels: &[(&str, f64)] = &[
        ("rocket_mmap_bodies_in_flight", 0.0),
        ("rocket_mmap_cache_entries", 3.0),
        ("rocket_mmap_cache_mapped_bytes", (64 * MIB) as f64),
    ];
    for &(series, want) in levels {
        if after.get(series) != want {
            wrong.push(format!("{series} = {}, expected {want}", after.get(series)));
        }
    }
    assert!(wrong.is_empty(), "{}\n\n{text}", wrong.join("\n"));
    assert!(abandoned >= 256 * 1024 && abandoned < 64 * MIB as u64);
    assert!(truncated >= 512 * 1024 && truncated < 32 * MIB as u64);
    assert!(rewritten >= 512 * 1024 && rewritten < 32 * MIB as u64);
    // The histogram's buckets are cumulative and end with every load.
    let buckets: Vec<f64> = after
        .0
        .iter()
        .filter(|(k, _)| k.starts_with("rocket_mmap_cache_load_duration_seconds_bucket"))
        .map(|(_, v)| *v)
        .collect();
    assert_eq!(buckets.len(), 17);
    assert_eq!(
        after.get("rocket_mmap_cache_load_duration_seconds_bucket{le=\"+Inf\"}"),
        after.get("rocket_mmap_cache_load_duration_seconds_count")
    );
}

#[test]
fn metrics_answer_behind_an_applications_guard_and_cost_no_allocation_per_request() {
    use rocket::http::{Header, Status};
    use rocket::local::blocking::Client;
    use rocket::request::{FromRequest, Outcome, Request};
    use rocket_mmap::{FileServer, Metrics, Mmap};

    struct Admin;

    #[rocket::async_trait]
    impl<'r> FromRequest<'r> for Admin {
        type Error = ();
        async fn from_request(req: &'r Request<'_>) -> Outcome<Admin, ()> {
            match req.headers().get_one("X-Admin") {
                Some("yes") => Outcome::Success(Admin),
                _ => Outcome::Error((Status::Unauthorized, ())),
            }
        }
    }

    #[rocket::get("/internal/metrics")]
    fn guarded(_admin: Admin) -> Metrics {
        Metrics::new()
    }

    let dir = TempDir::new("metrics-guard");
    dir.write("a.txt", &pseudo_random(1, 1000));
    let build = |metrics: bool| {
        let mut config = rocket::Config::debug_default();
        config.log_level = rocket::config::LogLevel::Off;
        let mut rocket = rocket::custom(config)
            .attach(Mmap::fairing())
            .mount("/", FileServer::from(dir.path()))
            .mount("/", rocket::routes![guarded]);
        if metrics {
            rocket = rocket.attach(Metrics::fairing());
        }
        Client::untracked(rocket).expect("a valid rocket")
    };
    let with = build(true);
    let without = build(false);

    // The guard decides.
    assert_eq!(
        with.get("/internal/metrics").dispatch().status(),
        Status::Unauthorized
    );
    let r = with
        .get("/internal/metrics")
        .header(Header::new("X-Admin", "yes"))
        .dispatch();
    assert_eq!(r.status(), Status::Ok);
    let text = r.into_string().unwrap();
    assert!(
        text.contains("rocket_mmap_responses_total{code=\"401\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE rocket_mmap_cache_hits_total counter\n"),
        "{text}"
    );

    // Allocations per request, with and without the status-counting fairing, after
    // a warm-up (the first request maps the file on another thread).
    let per_thousand = |client: &Client| {
        for _ in 0..20 {
            assert_eq!(
                client.get("/a.txt").dispatch().into_bytes().unwrap().len(),
                1000
            );
        }
        let before = allocations();
        for _ in 0..1000 {
            let r = client.get("/a.txt").dispatch();
            assert_eq!(r.status(), Status::Ok);
            drop(r.into_bytes());
        }
        allocations() - before
    };
    let counted = per_thousand(&with);
    let plain = per_thousand(&without);
    println!("allocations per 1000 requests: {counted} with Metrics::fairing, {plain} without");
    assert!(
        counted < plain + 10,
        "counting responses allocates: {counted} vs {plain} per 1000 requests"
    );
    let text = with
        .get("/internal/metrics")
        .header(Header::new("X-Admin", "yes"))
        .dispatch()
        .into_string()
        .unwrap();
    let scrape = Scrape::parse(&text);
    assert_eq!(
        scrape.get("rocket_mmap_responses_total{code=\"200\"}"),
        1021.0
    );
    assert_eq!(scrape.get("rocket_mmap_bodies_completed_total"), 1020.0);
    assert_eq!(scrape.get("rocket_mmap_body_bytes_sent_total"), 1_020_000.0);
}

/// The soft open-files limit of a process, from `/proc/PID/limits`.
#[cfg(target_os = "linux")]
fn soft_open_files_limit(pid: u32) -> f64 {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a Max open files line");
    line["Max open files".len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
#[cfg(target_os = "linux")]
fn process_metrics_are_the_binarys_own() {
    let dir = TempDir::new("metrics-process");
    dir.write("a.txt", b"hello");
    dir.write("big.bin", &pseudo_random(7, 64 * MIB));
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let server = Binary::start(dir.path(), &["--metrics"], &[]);
    let addr = server.addr();
    let (before, text) = Scrape::of(addr);
    for name in [
        "process_open_fds",
        "process_max_fds",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_cpu_seconds_total",
        "process_start_time_seconds",
    ] {
        assert!(before.0.contains_key(name), "no {name} in\n{text}");
    }
    let open = before.get("process_open_fds");
    assert!(open >= 3.0, "{text}");
    assert!(open <= before.get("process_max_fds"), "{text}");
    assert_eq!(
        before.get("process_max_fds"),
        soft_open_files_limit(server.pid()),
        "{text}"
    );
    let rss = before.get("process_resident_memory_bytes");
    assert!(rss > (1 << 20) as f64, "{text}");
    assert!(rss <= before.get("process_virtual_memory_bytes"), "{text}");
    let start = before.get("process_start_time_seconds");
    // Started after `started` (the boot time is whole seconds: allow one) and not
    // long after it.
    assert!(
        start >= started - 1.0 && start <= started + 30.0,
        "start {start}, test started at {started}"
    );
    // Start-up may take less than one clock tick (10 ms) of CPU: the figure is only
    // checked against what /proc says the process used.
    let cpu = before.get("process_cpu_seconds_total");
    assert!(
        cpu <= server.cpu_time().as_secs_f64() + 0.011,
        "{cpu} s of CPU reported, {:?} used",
        server.cpu_time()
    );

    // 20 more connections (each answered once, then idle) hold 20 more descriptors,
    // and a 64 MiB file, once mapped, adds 64 MiB of address space.
    let mut idle = Vec::new();
    for _ in 0..20 {
        let mut conn = common::Conn::open(addr);
        conn.send(request_bytes("GET", "/a.txt", &[], false).as_bytes())
            .unwrap();
        conn.head().unwrap();
        idle.push(conn);
    }
    let mut conn = small_buffer_conn(addr);
    conn.send(request_bytes("GET", "/big.bin", &[], false).as_bytes())
        .unwrap();
    conn.head().unwrap();
    read_some(&mut conn, 64 * 1024);
    // The server's CPU time moves in clock ticks (10 ms), and nothing above is sure to
    // cost one (its hashes run in the background, when they run): make it work until
    // /proc shows two ticks more than the first scrape reported, so that the second
    // scrape must report more, however fast or loaded the machine is.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while server.cpu_time().as_secs_f64() < cpu + 0.02 {
        assert!(
            std::time::Instant::now() < deadline,
            "the server used no CPU in 60 s of requests ({:?})",
            server.cpu_time()
        );
        for _ in 0..20 {
            assert_eq!(request_at(addr, "GET", "/a.txt", &[]).status, 200);
        }
    }
    let (after, text) = Scrape::of(addr);
    assert!(
        after.get("process_open_fds") >= open + 20.0,
        "{open} open before, then\n{text}"
    );
    assert!(
        after.get("process_virtual_memory_bytes")
            >= before.get("process_virtual_memory_bytes") + (64 * MIB) as f64,
        "{} before, then\n{text}",
        before.get("process_virtual_memory_bytes")
    );
    let cpu_after = after.get("process_cpu_seconds_total");
    assert!(cpu_after > cpu, "{text}");
    assert!(
        cpu_after <= server.cpu_time().as_secs_f64() + 0.011,
        "{cpu_after} s of CPU reported, {:?} used",
        server.cpu_time()
    );
    assert_eq!(after.get("process_start_time_seconds"), start);
    drop(idle);
    drop(conn);
}

#[test]
#[ignore = "needs promtool (Debian's prometheus package); .ci/run runs it"]
fn promtool_accepts_the_exposition() {
    common::require_tool("promtool");
    let dir = TempDir::new("metrics-promtool");
    dir.write("a.txt", &pseudo_random(1, 1000));
    dir.write("big.bin", &pseudo_random(2, 16 * MIB));
    let log = dir.join("access.log");
    let server = Binary::start(
        dir.path(),
        &["--metrics", "--access-log", log.to_str().unwrap()],
        &[],
    );
    let addr = server.addr();
    for range in ["bytes=0-9", "bytes=0-1,500-501", "bytes=9999-"] {
        request_at(addr, "GET", "/a.txt", &[("Range", range)]);
    }
    request_at(addr, "GET", "/nope", &[]);
    let mut conn = small_buffer_conn(addr);
    conn.send(request_bytes("GET", "/big.bin", &[], false).as_bytes())
        .unwrap();
    conn.head().unwrap();
    read_some(&mut conn, 64 * 1024);
    drop(conn);
    wait_for_lines(&log, 5, Duration::from_secs(10));
    let (_, text) = Scrape::of(addr);
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed ({}):\n{}{}\n--- exposition\n{text}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // And it did read something: the histogram, the status family, a process metric.
    #[cfg(target_os = "linux")]
    assert!(text.contains("\n# TYPE process_cpu_seconds_total counter\n"));
    assert!(text.contains("rocket_mmap_cache_load_duration_seconds_bucket{le=\"+Inf\"} 2\n"));
    assert!(
        text.contains("rocket_mmap_responses_total{code=\"206\"} 2\n"),
        "{text}"
    );
}
