//! The binary, run as a user would: the embedded demo with no arguments, a directory
//! with `--warm`, `ROCKET_*` variables, clear errors, and the open-files limit it
//! raises at start.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_rocket-mmap");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills the child on drop, so a failing test leaves no server behind.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn get(port: u16, path: &str, extra: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n"
    )
    .ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    Some(String::from_utf8_lossy(&out).into_owned())
}

fn wait_for(port: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(r) = get(port, "/", "") {
            return r;
        }
        assert!(Instant::now() < deadline, "server did not start on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rocket-mmap-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn no_arguments_serve_the_embedded_demo() {
    let port = free_port();
    let _server = Running(
        Command::new(BIN)
            .env("ROCKET_PORT", port.to_string())
            .env("ROCKET_LOG_LEVEL", "off")
            .current_dir(std::env::temp_dir()) // embedded: works from any directory
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let page = wait_for(port);
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("rocket-mmap") && page.contains("/tone.wav"));
    let tone = get(port, "/tone.wav", "Range: bytes=100000-100099\r\n").unwrap();
    assert!(tone.starts_with("HTTP/1.1 206"), "{tone}");
    assert!(tone
        .to_ascii_lowercase()
        .contains("content-range: bytes 100000-100099/"));
    assert!(tone
        .to_ascii_lowercase()
        .contains("content-type: audio/wav"));
}

#[test]
fn serves_a_directory_with_warm_and_prints_a_summary() {
    let dir = temp_dir("warm");
    std::fs::write(dir.join("a.txt"), b"hello").unwrap();
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("sub/b.bin"), vec![1u8; 100_000]).unwrap();
    let port = free_port();
    let mut child = Command::new(BIN)
        .arg(&dir)
        .args([
            "--port",
            &port.to_string(),
            "--address",
            "127.0.0.1",
            "--warm",
        ])
        .env("ROCKET_LOG_LEVEL", "off")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let _server = Running(child);
    wait_for(port);
    let r = get(port, "/sub/b.bin", "").unwrap();
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(r.to_ascii_lowercase().contains("content-length: 100000"));
    let r = get(port, "/a.txt", "").unwrap();
    assert!(r.ends_with("hello"));
    drop(_server);
    let mut out = String::new();
    stdout.read_to_string(&mut out).unwrap();
    assert!(out.contains("warmed 2 files"), "{out}");
    assert!(out.contains(&format!("http://127.0.0.1:{port}/")), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn missing_directory_is_a_clear_error() {
    let out = Command::new(BIN)
        .arg("/definitely/not/here")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot serve /definitely/not/here"), "{err}");
}

#[test]
fn port_in_use_is_a_clear_error() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = temp_dir("busy");
    let out = Command::new(BIN)
        .arg(&dir)
        .args(["--port", &port.to_string()])
        .env("ROCKET_LOG_LEVEL", "off")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot listen"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_mmap_configuration_is_a_clear_error() {
    let out = Command::new(BIN)
        .env("ROCKET_MMAP", "{revalidate=\"sometimes\"}")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("revalidate"), "{err}");
}

/// The soft and hard open-files limits of a running process, from `/proc/PID/limits`.
#[cfg(target_os = "linux")]
fn open_files_limits(pid: u32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap_or_else(|| panic!("no open files line in {limits}"));
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (numbers[0], numbers[1])
}

/// Starts the binary through `sh` after `ulimit ULIMIT_ARGS`, and waits (at most 30 s)
/// until it printed its open-files line: the process (sh `exec`s it, so the pid is the
/// binary's) and everything it printed, stdout and stderr.
#[cfg(target_os = "linux")]
fn start_under_ulimit(ulimit: &str, name: &str) -> (Running, String) {
    use std::io::BufRead;
    use std::sync::{Arc, Mutex};
    let dir = temp_dir(name);
    let child = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit {ulimit} && exec \"$0\" \"$@\""))
        .arg(BIN)
        .arg(&dir)
        .args(["--port", "0", "--address", "127.0.0.1"])
        .env("ROCKET_LOG_LEVEL", "off")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut running = Running(child);
    let out = Arc::new(Mutex::new(String::new()));
    let streams: [Box<dyn Read + Send>; 2] = [
        Box::new(running.0.stdout.take().unwrap()),
        Box::new(running.0.stderr.take().unwrap()),
    ];
    for stream in streams {
        let out = out.clone();
        std::thread::spawn(move || {
            for l in std::io::BufReader::new(stream)
                .lines()
                .map_while(Result::ok)
            {
                out.lock().unwrap().push_str(&format!("{l}\n"));
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = out.lock().unwrap().clone();
        // The warning (stderr) may come just after the line (stdout): wait a moment.
        if text.contains("open files: ") {
            std::thread::sleep(Duration::from_millis(200));
            let _ = std::fs::remove_dir_all(&dir);
            return (running, out.lock().unwrap().clone());
        }
        assert!(
            Instant::now() < deadline,
            "no open-files line within 30 s: {text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
#[cfg(target_os = "linux")]
fn the_open_files_soft_limit_is_raised_to_the_hard_limit_at_start() {
    let (_, hard) = open_files_limits(std::process::id());
    assert!(
        hard > 256,
        "this test needs a hard limit above 256, not {hard}"
    );
    let (server, out) = start_under_ulimit("-S -n 256", "nofile-raise");
    // The limit the process runs under, as the kernel sees it.
    assert_eq!(open_files_limits(server.0.id()), (hard, hard), "{out}");
    let line = format!("open files: up to {hard} (soft limit raised from 256; hard limit {hard})");
    assert!(out.lines().any(|l| l == line), "no {line:?} in:\n{out}");
    if hard >= 4096 {
        assert!(!out.contains("warning"), "{out}");
    }
}

#[test]
#[cfg(target_os = "linux")]
fn a_low_hard_limit_is_kept_and_warned_about() {
    // `ulimit -n` sets both limits: nothing to raise.
    let (server, out) = start_under_ulimit("-n 300", "nofile-low");
    assert_eq!(open_files_limits(server.0.id()), (300, 300), "{out}");
    assert!(
        out.lines()
            .any(|l| l == "open files: up to 300 (hard limit 300)"),
        "{out}"
    );
    assert!(
        out.contains("warning: open files are limited to 300") && out.contains("LimitNOFILE="),
        "{out}"
    );
}

/// The port in the binary's banner ("rocket-mmap serving … at http://127.0.0.1:PORT/").
fn banner_port(out: &str) -> u16 {
    let line = out
        .lines()
        .find(|l| l.starts_with("rocket-mmap serving"))
        .unwrap_or_else(|| panic!("no banner in {out}"));
    line.rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .parse()
        .unwrap()
}

/// A connection to `port`, or `None` if it cannot be made within `limit`.
fn connect(port: u16, limit: Duration) -> Option<TcpStream> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, limit).ok()
}

/// The figures of issue 22's targets, at a 1024 soft limit: 2000 idle keep-alive
/// connections (each answered once) and 900 slowloris connections (a request head
/// never finished) are open, and a fresh client asks for a page. With the soft limit
/// raised at start, the fresh client is answered within a second; under a hard limit
/// of 1024 (nothing to raise: the control) it is not, because Rocket 0.5.2 closes
/// neither kind of connection and sleeps 250 ms after each failed `accept`.
#[test]
#[ignore = "opens 5,800 connections and needs an open-files hard limit of 8192; .ci/run runs it"]
#[cfg(target_os = "linux")]
fn a_fresh_client_is_answered_while_2000_idle_and_900_slowloris_connections_are_open() {
    // This process holds the client ends.
    let hard = rlimit::Resource::NOFILE.get().unwrap().1;
    assert!(
        hard >= 8192,
        "needs an open-files hard limit of 8192, not {hard}"
    );
    rlimit::increase_nofile_limit(8192).unwrap();
    for (ulimit, raised) in [("-S -n 1024", true), ("-n 1024", false)] {
        let (server, out) = start_under_ulimit(ulimit, "nofile-flood");
        let pid = server.0.id();
        let port = banner_port(&out);
        let rss = || {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
            let kib: u64 = status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap();
            kib * 1024
        };
        let rss_before = rss();
        let mut held = Vec::new();
        // Idle keep-alive: one request (a 404: the directory is gone), then nothing.
        // Slowloris: a request head that never ends. Once the server stops accepting
        // and its backlog is full, connecting hangs: stop after 20 failures in a row.
        let idle: &[u8] = b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n";
        let slow: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\nX-a: b\r\n";
        let mut failures = 0;
        for request in std::iter::repeat_n(idle, 2000).chain(std::iter::repeat_n(slow, 900)) {
            match connect(port, Duration::from_millis(200)) {
                Some(mut s) => {
                    failures = 0;
                    let _ = s.write_all(request);
                    held.push(s);
                }
                None if failures >= 20 => break,
                None => failures += 1,
            }
        }
        // Let the server accept what it can.
        std::thread::sleep(Duration::from_millis(500));
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count();
        let started = Instant::now();
        let answer = connect(port, Duration::from_secs(1)).and_then(|mut s| {
            s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
            s.write_all(b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .ok()?;
            let mut head = [0u8; 12];
            s.read_exact(&mut head).ok()?;
            Some(String::from_utf8_lossy(&head).into_owned())
        });
        let took = started.elapsed();
        eprintln!(
            "ulimit {ulimit}: {} connections held, server {fds} descriptors, RSS {:.1} MiB \
             -> {:.1} MiB; fresh GET: {answer:?} in {took:?}",
            held.len(),
            rss_before as f64 / 1048576.0,
            rss() as f64 / 1048576.0
        );
        if raised {
            assert!(held.len() >= 2850, "{} connections made", held.len());
            assert!(fds >= held.len(), "the server holds {fds} descriptors");
            assert_eq!(answer.as_deref(), Some("HTTP/1.1 404"), "after {took:?}");
            assert!(took < Duration::from_secs(1), "{took:?}");
        } else {
            assert!(fds <= 1024);
            assert_eq!(answer, None, "answered at a hard limit of 1024 in {took:?}");
        }
        drop(held);
    }
}
