//! Shared harness of the socket-level integration tests: a real Rocket server with
//! [`rocket_mmap::FileServer`] on an ephemeral loopback port in a background thread, a
//! tiny blocking HTTP/1.1 client over `std::net::TcpStream`, deterministic test data,
//! SHA-256 and helpers to run external clients.
//!
//! Each test binary uses a different subset of it.
#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rocket::config::LogLevel;
use rocket::fairing::AdHoc;
use rocket::Shutdown;
use rocket_mmap::{FileServer, Mmap};
use sha2::{Digest, Sha256};

/// How long a client socket waits for the server before a test fails (never hangs).
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the server may take to start or to stop.
const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// The file the harness fetches to prove the reported port is really our server.
const PROBE_NAME: &str = "harness-probe.txt";

// ---------------------------------------------------------------------------------
// Temporary directories
// ---------------------------------------------------------------------------------

/// A fresh directory under the system temp dir, removed (with its files) on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// A new, empty directory whose name contains `name`, the process id and a counter.
    pub fn new(name: &str) -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("rocket-mmap-it-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TempDir { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `self.path()/name`.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Writes `bytes` to `name` (created or truncated) and returns the path.
    pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.join(name);
        std::fs::write(&p, bytes).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

// ---------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------

/// A Rocket server serving a temporary directory with `rocket_mmap::FileServer` mounted
/// at `/` and `Mmap::fairing()` attached, on `127.0.0.1:<ephemeral port>`, in its own
/// thread and tokio runtime. Shut down (Rocket's `Shutdown` handle) by [`Server::stop`]
/// or on drop.
pub struct Server {
    port: u16,
    dir: TempDir,
    shutdown: Option<Shutdown>,
    done: mpsc::Receiver<Result<(), String>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Starts a server over a new empty temporary directory (named after `name`). Files
    /// may be added to [`Server::dir`] before or after the start.
    pub fn start(name: &str) -> Server {
        Server::start_in(TempDir::new(name))
    }

    /// Starts a server over `dir`, waits until it accepts connections on the port
    /// Rocket reports at liftoff, and checks by a request that the port is really ours.
    pub fn start_in(dir: TempDir) -> Server {
        Server::start_in_with(dir, |rocket| rocket)
    }

    fn wait_until_accepting(&self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match TcpStream::connect_timeout(&self.addr(), Duration::from_secs(1)) {
                Ok(_) => return,
                Err(e) if Instant::now() > deadline => {
                    panic!("the test server on port {} never accepted: {e}", self.port)
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The served directory.
    pub fn dir(&self) -> &TempDir {
        &self.dir
    }

    /// The URL of a file below the root (`name` without leading slash).
    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}", self.port)
    }

    /// A new connection to the server, with read and write timeouts.
    pub fn connect(&self) -> TcpStream {
        connect(self.addr())
    }

    /// `GET path` on a new connection (`Connection: close`).
    pub fn get(&self, path: &str) -> HttpResponse {
        self.request("GET", path, &[])
    }

    /// One request on a new connection (`Connection: close`), the response read in full.
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
        request_at(self.addr(), method, path, headers)
    }

    /// Shuts the server down and waits for its thread (panics if it does not stop).
    pub fn stop(mut self) {
        self.stop_inner(true);
    }

    fn stop_inner(&mut self, strict: bool) {
        let Some(shutdown) = self.shutdown.take() else {
            return;
        };
        shutdown.notify();
        match self.done.recv_timeout(STOP_TIMEOUT) {
            // An unclean shutdown (e.g. a connection a test left open) is not a failure
            // of the crate under test.
            Ok(Ok(())) | Ok(Err(_)) => {
                if let Some(t) = self.thread.take() {
                    let _ = t.join();
                }
            }
            Err(e) => {
                let msg = format!("the test server did not stop within {STOP_TIMEOUT:?}: {e}");
                if strict {
                    panic!("{msg}");
                }
                eprintln!("{msg}");
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Never panic here: drop may run while a failed test unwinds.
        self.stop_inner(false);
    }
}

// ---------------------------------------------------------------------------------
// A tiny blocking HTTP/1.1 client
// ---------------------------------------------------------------------------------

/// A connection to `addr` with [`IO_TIMEOUT`] for reads and writes.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
        .unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"));
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// One request to `addr` on a new connection (`Connection: close`), the response read
/// in full (usable from any thread: it needs only the address).
pub fn request_at(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> HttpResponse {
    let mut stream = connect(addr);
    stream
        .write_all(request_bytes(method, path, headers, true).as_bytes())
        .unwrap_or_else(|e| panic!("{method} {path}: cannot send: {e}"));
    let mut reader = BufReader::new(stream);
    read_response(&mut reader, method == "HEAD")
        .unwrap_or_else(|e| panic!("{method} {path}: bad or missing response: {e}"))
}

/// The bytes of one request; `close` adds `Connection: close`.
pub fn request_bytes(method: &str, path: &str, headers: &[(&str, &str)], close: bool) -> String {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    if close {
        r.push_str("Connection: close\r\n");
    }
    r.push_str("\r\n");
    r
}

/// A parsed response: its head (status, headers; reached through `Deref`) and body.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status line and header fields.
    pub head: ResponseHead,
    /// The body (empty for HEAD, 304, 204, 1xx).
    pub body: Vec<u8>,
}

impl std::ops::Deref for HttpResponse {
    type Target = ResponseHead;

    fn deref(&self) -> &ResponseHead {
        &self.head
    }
}

/// The status line and header fields of a response.
#[derive(Debug, Clone)]
pub struct ResponseHead {
    /// The status code.
    pub status: u16,
    /// Header fields in order, names as sent.
    pub headers: Vec<(String, String)>,
}

impl ResponseHead {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `Content-Length`, parsed.
    pub fn content_length(&self) -> Option<u64> {
        self.header("Content-Length").map(|v| {
            v.trim()
                .parse()
                .unwrap_or_else(|_| panic!("bad Content-Length {v:?}"))
        })
    }
}

/// Reads a status line and the header fields (up to the empty line).
pub fn read_head(r: &mut impl BufRead) -> io::Result<ResponseHead> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed before a status line",
        ));
    }
    let mut parts = line.trim_end().splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad status line {line:?}"),
        ));
    }
    let status: u16 = parts.next().and_then(|s| s.parse().ok()).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad status line {line:?}"),
        )
    })?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed inside the header section",
            ));
        }
        let l = line.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':').ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, format!("bad header line {l:?}"))
        })?;
        headers.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    Ok(ResponseHead { status, headers })
}

/// Reads one whole response framed by `Content-Length` (HTTP/1.1 §6.3): no body for a
/// response to HEAD, 1xx, 204 and 304. Chunked bodies are refused: every response of
/// this server must be sized.
pub fn read_response(r: &mut impl BufRead, head_request: bool) -> io::Result<HttpResponse> {
    let head = read_head(r)?;
    let bodiless = head_request || head.status == 204 || head.status == 304 || head.status < 200;
    let mut body = Vec::new();
    if !bodiless {
        if head.header("Transfer-Encoding").is_some() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unexpected Transfer-Encoding in {:?}", head.headers),
            ));
        }
        let len = head.content_length().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("no Content-Length in {:?}", head.headers),
            )
        })?;
        body = vec![0; len as usize];
        r.read_exact(&mut body)?;
    }
    Ok(HttpResponse { head, body })
}

// ---------------------------------------------------------------------------------
// Data and hashing
// ---------------------------------------------------------------------------------

/// `len` deterministic pseudo-random bytes (SplitMix64 from `seed`): incompressible,
/// without long runs of zeros, so a substituted zero page or a misplaced range shows.
pub fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed ^ 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        out.extend_from_slice(&z.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// SHA-256 of `bytes`, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// SHA-256 of the file at `path`, lower-case hex.
pub fn sha256_file(path: &Path) -> String {
    let mut f =
        std::fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    hex(&h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The strong ETag field value the crate gives `content`.
pub fn etag_of(content: &[u8]) -> String {
    rocket_mmap::EntityTag::from_content(content).to_string()
}

// ---------------------------------------------------------------------------------
// External tools
// ---------------------------------------------------------------------------------

/// Panics with a clear message unless `tool` runs (`tool --version`): tests that need a
/// real client must fail, never pass, when it is missing.
pub fn require_tool(tool: &str) {
    match Command::new(tool).arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "required tool `{tool}` does not work (`{tool} --version` exited with {}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!(
            "required tool `{tool}` is not available ({e}); install it (.ci/run installs \
             curl, wget and aria2) — this test must not pass without it"
        ),
    }
}

/// Runs `cmd`, panicking with its output unless it succeeds.
pub fn run_ok(cmd: &mut Command) -> Output {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    assert!(
        out.status.success(),
        "{shown} failed with {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

// ---------------------------------------------------------------------------------
// Raw connections and background probes (hostile-request and resource tests)
// ---------------------------------------------------------------------------------

impl TempDir {
    /// A new, empty subdirectory `name` of this one, itself a [`TempDir`] (removed on
    /// drop). Used to serve a directory that has siblings (a "secret" next to the
    /// root) without touching anything outside the test's own directory.
    pub fn child(&self, name: &str) -> TempDir {
        let path = self.join(name);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TempDir { path }
    }
}

/// A reader that counts the bytes read through it.
pub struct Counting<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

/// One client connection kept open across requests: raw request bytes out (anything,
/// including bytes a normalising client would refuse to send), responses in, and every
/// byte received from the socket counted.
pub struct Conn {
    reader: BufReader<Counting<TcpStream>>,
}

impl Conn {
    /// A new connection to `addr` ([`IO_TIMEOUT`] on reads and writes).
    pub fn open(addr: SocketAddr) -> Conn {
        Conn {
            reader: BufReader::new(Counting {
                inner: connect(addr),
                count: 0,
            }),
        }
    }

    /// The socket.
    pub fn stream(&self) -> &TcpStream {
        &self.reader.get_ref().inner
    }

    /// Writes `raw` as is.
    pub fn send(&mut self, raw: &[u8]) -> io::Result<()> {
        let s = &mut self.reader.get_mut().inner;
        s.write_all(raw)?;
        s.flush()
    }

    /// Reads one response framed by `Content-Length` (see [`read_response`]).
    pub fn response(&mut self, head_request: bool) -> io::Result<HttpResponse> {
        read_response(&mut self.reader, head_request)
    }

    /// Reads one response head, leaving the body on the socket.
    pub fn head(&mut self) -> io::Result<ResponseHead> {
        read_head(&mut self.reader)
    }

    /// Reads up to `buf.len()` body bytes (0 at the end of the stream).
    pub fn read_some(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reader.read(buf)
    }

    /// Reads until the peer closes, returning what came (e.g. bytes after a response
    /// that should have been the last on a `Connection: close` exchange).
    pub fn read_to_end(&mut self) -> io::Result<Vec<u8>> {
        let mut rest = Vec::new();
        self.reader.read_to_end(&mut rest)?;
        Ok(rest)
    }

    /// Bytes received from the socket so far (heads, bodies, anything).
    pub fn received(&self) -> u64 {
        self.reader.get_ref().count
    }

    /// Whether the peer has closed the connection (end of stream or reset) within
    /// `wait`; `false` if it is still open and silent.
    pub fn closed_by_peer(&mut self, wait: Duration) -> bool {
        let _ = self.stream().set_read_timeout(Some(wait));
        let closed = match self.reader.fill_buf() {
            Ok(buf) => buf.is_empty(),
            Err(e) => !matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ),
        };
        let _ = self.stream().set_read_timeout(Some(IO_TIMEOUT));
        closed
    }
}

/// Like [`request_at`], but returns connection and protocol errors instead of
/// panicking (for background threads and for requests that may legitimately fail).
pub fn try_request_at(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> io::Result<HttpResponse> {
    let mut conn = Conn::open(addr);
    conn.send(request_bytes(method, path, headers, true).as_bytes())?;
    conn.response(method == "HEAD")
}

/// What a [`Prober`] saw.
#[derive(Debug, Clone)]
pub struct ProbeReport {
    /// Requests that got the expected 200 and bytes.
    pub ok: usize,
    /// Requests that failed, with why.
    pub failures: Vec<String>,
    /// The slowest successful request.
    pub max: Duration,
    /// The median successful request.
    pub median: Duration,
}

/// A background client that keeps fetching one small file on fresh connections, to
/// show the server still answers others while a test abuses it.
pub struct Prober {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: JoinHandle<ProbeReport>,
}

impl Prober {
    /// Starts fetching `GET path` (which must answer 200 with `expected`) every
    /// `pause`, until [`Prober::finish`].
    pub fn start(addr: SocketAddr, path: &str, expected: Vec<u8>, pause: Duration) -> Prober {
        use std::sync::atomic::AtomicBool;
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let path = path.to_owned();
        let thread = std::thread::Builder::new()
            .name("prober".into())
            .spawn(move || {
                let (mut times, mut failures) = (Vec::new(), Vec::new());
                // At least one probe, even if the test finishes at once.
                while times.len() + failures.len() == 0 || !flag.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    match try_request_at(addr, "GET", &path, &[]) {
                        Ok(r) if r.status == 200 && r.body == expected => times.push(t.elapsed()),
                        Ok(r) => failures.push(format!(
                            "status {} with {} bytes after {:?}",
                            r.status,
                            r.body.len(),
                            t.elapsed()
                        )),
                        Err(e) => failures.push(format!("{e} after {:?}", t.elapsed())),
                    }
                    std::thread::sleep(pause);
                }
                times.sort();
                ProbeReport {
                    ok: times.len(),
                    failures,
                    max: times.last().copied().unwrap_or_default(),
                    median: times.get(times.len() / 2).copied().unwrap_or_default(),
                }
            })
            .expect("spawn the prober");
        Prober { stop, thread }
    }

    /// Stops the probes and returns what they saw.
    pub fn finish(self) -> ProbeReport {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the prober panicked")
    }
}

// ---------------------------------------------------------------------------------
// Customised servers, free ports and external processes (nginx and browser tests)
// ---------------------------------------------------------------------------------

impl Server {
    /// Like [`Server::start_in`], with `customize` applied to the Rocket instance
    /// (already carrying `Mmap::fairing()`, the harness's liftoff fairing and the file
    /// server at `/`) before launch: attach a recording fairing, mount more routes.
    pub fn start_in_with<F>(dir: TempDir, customize: F) -> Server
    where
        F: FnOnce(rocket::Rocket<rocket::Build>) -> rocket::Rocket<rocket::Build> + Send + 'static,
    {
        let token = format!(
            "probe {} {:?} {}",
            std::process::id(),
            Instant::now(),
            dir.path().display()
        );
        dir.write(PROBE_NAME, token.as_bytes());

        let mut config = rocket::Config::debug_default();
        config.address = Ipv4Addr::LOCALHOST.into();
        config.port = 0;
        config.log_level = LogLevel::Off;
        config.cli_colors = false;
        config.shutdown.ctrlc = false;
        #[cfg(unix)]
        config.shutdown.signals.clear();
        config.shutdown.grace = 0;
        config.shutdown.mercy = 0;

        let (ready_tx, ready_rx) = mpsc::channel::<(u16, Shutdown)>();
        let (done_tx, done_rx) = mpsc::channel::<Result<(), String>>();
        let root = dir.path().to_path_buf();
        let thread = std::thread::Builder::new()
            .name("rocket-test-server".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(4)
                    .thread_name("rocket-worker-thread")
                    .enable_all()
                    .build()
                    .expect("tokio runtime for the test server");
                let result = rt.block_on(async move {
                    let liftoff = AdHoc::on_liftoff("test harness: report port", move |r| {
                        let tx = ready_tx.clone();
                        Box::pin(async move {
                            let _ = tx.send((r.config().port, r.shutdown()));
                        })
                    });
                    let rocket = rocket::custom(config)
                        .attach(Mmap::fairing())
                        .attach(liftoff)
                        .mount("/", FileServer::from(&root));
                    customize(rocket)
                        .launch()
                        .await
                        .map(|_| ())
                        .map_err(|e| format!("{e}"))
                });
                rt.shutdown_timeout(Duration::from_secs(2));
                let _ = done_tx.send(result);
            })
            .expect("spawn the server thread");

        let (port, shutdown) = match ready_rx.recv_timeout(START_TIMEOUT) {
            Ok(v) => v,
            Err(e) => {
                let why = done_rx
                    .recv_timeout(Duration::from_secs(1))
                    .map(|r| format!("{r:?}"))
                    .unwrap_or_else(|_| "no result".into());
                panic!("the test server did not lift off ({e}): {why}");
            }
        };
        assert_ne!(
            port, 0,
            "Rocket reported port 0 at liftoff: not the bound port"
        );
        let server = Server {
            port,
            dir,
            shutdown: Some(shutdown),
            done: done_rx,
            thread: Some(thread),
        };
        server.wait_until_accepting();
        let probe = server.get(&format!("/{PROBE_NAME}"));
        assert_eq!(
            (probe.status, probe.body.as_slice()),
            (200, token.as_bytes()),
            "port {port} reported by Rocket at liftoff does not answer as our server"
        );
        server
    }
}

/// Sets the modification time of the file at `path`.
pub fn set_mtime(path: &Path, mtime: std::time::SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(mtime))
        .unwrap_or_else(|e| panic!("set the mtime of {}: {e}", path.display()));
}

/// A loopback port that was free a moment ago (bound to port 0, then released), for
/// external servers that need a port in their configuration. Another process may take
/// it in between: callers retry on "address in use".
pub fn free_port() -> u16 {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// Panics with a clear message unless `tool args…` runs and succeeds (for tools whose
/// version flag is not `--version`, e.g. `nginx -V`); returns its stdout and stderr.
/// `install` says how to get the tool. Tests that need it must fail, never pass, when
/// it is missing.
pub fn require_program(tool: &str, args: &[&str], install: &str) -> String {
    match Command::new(tool).args(args).output() {
        Ok(out) if out.status.success() => format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Ok(out) => panic!(
            "required tool `{tool}` does not work (`{tool} {}` exited with {}): {}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!(
            "required tool `{tool}` is not available ({e}); {install} \
             — this test must not pass without it"
        ),
    }
}

/// An external process started by a test, in its own process group, killed (the whole
/// group: a browser's helpers too) and reaped on drop, so a failing test leaves
/// nothing running.
pub struct Spawned {
    name: String,
    child: std::process::Child,
}

impl Spawned {
    /// Spawns `cmd` (stdin closed) as the leader of a new process group.
    pub fn spawn(name: &str, cmd: &mut Command) -> Spawned {
        use std::os::unix::process::CommandExt;
        let shown = format!("{cmd:?}");
        // If the test process dies without unwinding (killed on a CI timeout), Linux
        // kills the child too, so nothing outlives the test.
        #[cfg(target_os = "linux")]
        // SAFETY: between fork and exec only prctl(2) runs, which is async-signal-safe
        // and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .stdin(std::process::Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({shown}): {e}"));
        Spawned {
            name: name.to_owned(),
            child,
        }
    }

    /// The process id (also the process group id).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if the process has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .try_wait()
            .unwrap_or_else(|e| panic!("wait for {}: {e}", self.name))
    }

    /// Waits up to `limit` for the process to exit; `None` if it is still running.
    pub fn wait_timeout(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `addr` accepts connections; `Err` (with why) if the process exits
    /// first or `limit` passes.
    pub fn wait_accepting(&mut self, addr: SocketAddr, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.exited() {
                return Err(format!(
                    "{} exited with {status} before listening",
                    self.name
                ));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} did not listen on {addr} within {limit:?}",
                    self.name
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process group and reaps the leader.
    pub fn kill(&mut self) {
        // The group id is the leader's pid; while any member lives it cannot be reused,
        // so this reaches only what this test started (or nothing: ESRCH).
        let pgid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) with a negative pid signals a process group; no memory involved.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The text of the file at `path` from byte `from` on (empty if it does not exist), and
/// the offset of its end: for reading what a log gained during one step of a test.
pub fn read_text_from(path: &Path, from: u64) -> (String, u64) {
    use std::io::Seek;
    let Ok(mut f) = std::fs::File::open(path) else {
        return (String::new(), from);
    };
    let mut bytes = Vec::new();
    let _ = f.seek(io::SeekFrom::Start(from));
    let _ = f.read_to_end(&mut bytes);
    let end = from + bytes.len() as u64;
    (String::from_utf8_lossy(&bytes).into_owned(), end)
}

// ---------------------------------------------------------------------------------
// multipart/byteranges
// ---------------------------------------------------------------------------------

/// Splits a `multipart/byteranges` body into `(first, last, total, bytes)` parts, using
/// each part's `Content-Range` for its length (RFC 9110 §14.6), and checks the framing.
pub fn parse_byteranges(body: &[u8], boundary: &str) -> Vec<(u64, u64, u64, Vec<u8>)> {
    let delim = format!("--{boundary}");
    let mut pos = find(body, delim.as_bytes(), 0)
        .unwrap_or_else(|| panic!("no boundary {delim:?} in the multipart body"));
    let mut parts = Vec::new();
    loop {
        pos += delim.len();
        if body[pos..].starts_with(b"--") {
            break;
        }
        assert!(
            body[pos..].starts_with(b"\r\n"),
            "CRLF expected after a boundary"
        );
        let head_end = find(body, b"\r\n\r\n", pos).expect("end of part headers");
        let head = std::str::from_utf8(&body[pos + 2..head_end]).expect("ASCII part headers");
        let range = head
            .lines()
            .find_map(|l| {
                l.split_once(':')
                    .filter(|(k, _)| k.eq_ignore_ascii_case("Content-Range"))
            })
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_else(|| panic!("part without Content-Range: {head:?}"));
        let (first, last, total) = parse_content_range(&range);
        let start = head_end + 4;
        let end = start + (last - first + 1) as usize;
        parts.push((first, last, total, body[start..end].to_vec()));
        assert!(
            body[end..].starts_with(format!("\r\n{delim}").as_bytes()),
            "part of {range} not followed by CRLF and the boundary"
        );
        pos = end + 2;
    }
    parts
}

/// `bytes FIRST-LAST/TOTAL`.
pub fn parse_content_range(v: &str) -> (u64, u64, u64) {
    let rest = v.strip_prefix("bytes ").expect("bytes unit");
    let (range, total) = rest.split_once('/').expect("complete length");
    let (a, b) = range.split_once('-').expect("first-last");
    (
        a.parse().unwrap(),
        b.parse().unwrap(),
        total.parse().unwrap(),
    )
}

/// The first position of `needle` in `hay` at or after `from`.
pub fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}
