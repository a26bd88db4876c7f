//! The real `rocket-mmap` binary as a child process (its port read from its banner),
//! access log lines parsed, and a client socket with a small receive buffer: for the
//! tests that run the binary (`tests/access_log.rs`, `tests/metrics.rs`,
//! `tests/resources.rs`, `tests/rate.rs`, `tests/tls_file_changes.rs`). Included by them with
//! `#[path = "common/binary.rs"] mod binary;` (it needs the `cli` feature).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_rocket-mmap");

/// `rocket-mmap DIR --port 0 ARGS…` as a child; the port is read from its banner.
/// Killed on drop.
pub struct Binary {
    child: Child,
    port: u16,
    output: Arc<Mutex<String>>,
    /// The binary's cache directory (`XDG_CACHE_HOME`, where it keeps its default tag
    /// store) unless the test gave one: beside `dir`, removed on drop, so that no test
    /// depends on an earlier run and none leaves a store behind.
    cache_home: Option<std::path::PathBuf>,
}

impl Binary {
    /// Starts the binary serving `dir` with `args` and extra environment variables,
    /// and waits (at most 30 s) for its banner.
    pub fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Binary {
        let cache_home = (!env.iter().any(|(k, _)| *k == "XDG_CACHE_HOME"))
            .then(|| std::path::PathBuf::from(format!("{}.xdg-cache", dir.display())));
        let mut command = Command::new(BIN);
        if let Some(home) = &cache_home {
            command.env("XDG_CACHE_HOME", home);
        }
        let mut child = command
            .arg(dir)
            .args(["--port", "0", "--address", "127.0.0.1"])
            .args(args)
            .env("ROCKET_CLI_COLORS", "false")
            .env_remove("ROCKET_LOG_LEVEL")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {BIN}: {e}"));
        let output = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel::<String>();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        for (stream, tx) in [
            (Box::new(stdout) as Box<dyn Read + Send>, Some(tx)),
            (Box::new(stderr), None),
        ] {
            let out = output.clone();
            std::thread::spawn(move || {
                for l in BufReader::new(stream).lines() {
                    let Ok(l) = l else { break };
                    out.lock().unwrap().push_str(&format!("{l}\n"));
                    if let Some(tx) = &tx {
                        let _ = tx.send(l);
                    }
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let port = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                // "rocket-mmap serving DIR at http://127.0.0.1:PORT/"
                Ok(l) if l.starts_with("rocket-mmap serving") => {
                    let p = l.rsplit(':').next().unwrap().trim_end_matches('/');
                    break p.parse::<u16>().unwrap_or_else(|_| panic!("port in {l:?}"));
                }
                Ok(_) => {}
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "{BIN} printed no banner within 30 s: {}",
                        output.lock().unwrap()
                    );
                }
            }
        };
        assert_ne!(port, 0, "the banner shows port 0");
        Binary {
            child,
            port,
            output,
            cache_home,
        }
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// User + system CPU time of the process so far.
    pub fn cpu_time(&self) -> Duration {
        cpu_time(self.child.id())
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Everything the binary printed so far (stdout and stderr, line by line).
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to `limit` for the process to exit: its status and how long it took.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<(std::process::ExitStatus, Duration)> {
        let t = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some((status, t.elapsed()));
            }
            if t.elapsed() > limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits up to `limit` for a clean exit.
    pub fn terminate(&mut self, limit: Duration) -> std::process::ExitStatus {
        // SAFETY: kill(2) on our own child's pid; no memory involved.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{BIN} did not exit within {limit:?} of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// User + system CPU time of a process, from `/proc/<pid>/stat`.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may contain spaces) closed by ')'.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(home) = &self.cache_home {
            let _ = std::fs::remove_dir_all(home);
        }
    }
}

/// Waits (at most `limit`) until the file at `path` holds at least `n` lines; returns
/// them (all of them, possibly more than `n`).
pub fn wait_for_lines(path: &Path, n: usize, limit: Duration) -> Vec<String> {
    let deadline = Instant::now() + limit;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        if lines.len() >= n || Instant::now() >= deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// One access log line, parsed (combined log format, optionally extended).
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub remote: String,
    pub time: String,
    pub method: String,
    pub target: String,
    pub protocol: String,
    pub status: u16,
    pub bytes: u64,
    pub referer: String,
    pub user_agent: String,
    /// `(milliseconds, Range header, part list served)` of the extended format.
    pub extended: Option<(f64, String, String)>,
}

impl LogLine {
    /// Parses a line; panics with the line if it is not in the format.
    pub fn parse(line: &str) -> LogLine {
        let fail = |why: &str| -> String { panic!("bad access log line ({why}): {line:?}") };
        let mut rest = line;
        let word = |rest: &mut &str| -> String {
            let s = rest.trim_start_matches(' ');
            let (w, r) = match s.as_bytes().first() {
                Some(b'"') => match s[1..].find('"') {
                    Some(end) => (&s[1..end + 1], &s[end + 2..]),
                    None => return fail("unclosed quote"),
                },
                Some(b'[') => match s.find(']') {
                    Some(end) => (&s[1..end], &s[end + 1..]),
                    None => return fail("unclosed bracket"),
                },
                Some(_) => {
                    let end = s.find(' ').unwrap_or(s.len());
                    (&s[..end], &s[end..])
                }
                None => return fail("missing field"),
            };
            *rest = r;
            w.to_owned()
        };
        let remote = word(&mut rest);
        if word(&mut rest) != "-" || word(&mut rest) != "-" {
            fail("identity and user must be -");
        }
        let time = word(&mut rest);
        let request = word(&mut rest);
        let mut parts = request.splitn(3, ' ');
        let (method, target, protocol) = match (parts.next(), parts.next(), parts.next()) {
            (Some(m), Some(t), Some(p)) => (m.to_owned(), t.to_owned(), p.to_owned()),
            _ => panic!("bad request line in {line:?}"),
        };
        let number = |w: String| -> u64 {
            w.parse()
                .unwrap_or_else(|_| panic!("bad number {w:?} in {line:?}"))
        };
        let status = number(word(&mut rest)) as u16;
        let bytes = number(word(&mut rest));
        let referer = word(&mut rest);
        let user_agent = word(&mut rest);
        let extended = if rest.trim().is_empty() {
            None
        } else {
            let ms = word(&mut rest);
            let ms: f64 = ms
                .parse()
                .unwrap_or_else(|_| panic!("bad milliseconds {ms:?} in {line:?}"));
            let range = word(&mut rest);
            let served = word(&mut rest);
            if !rest.trim().is_empty() {
                fail("trailing fields");
            }
            Some((ms, range, served))
        };
        LogLine {
            remote,
            time,
            method,
            target,
            protocol,
            status,
            bytes,
            referer,
            user_agent,
            extended,
        }
    }
}

/// A connection whose receive buffer is capped at 64 KiB (no autotuning), so that a
/// client that stops reading stops the server after a bounded amount.
pub fn small_buffer_conn(addr: SocketAddr) -> crate::common::Conn {
    use std::os::fd::AsRawFd;
    let conn = crate::common::Conn::open(addr);
    let size: libc::c_int = 64 * 1024;
    // SAFETY: setsockopt on a socket we own, with a pointer to a live c_int and its size.
    let rc = unsafe {
        libc::setsockopt(
            conn.stream().as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt SO_RCVBUF");
    conn
}
