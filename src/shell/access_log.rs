//! An access log in the combined log format, written off the async workers, with the
//! body bytes that were actually sent.
//!
//! ```rust,no_run
//! # #[macro_use] extern crate rocket;
//! use rocket_mmap::{AccessLog, FileServer, Mmap};
//!
//! #[launch]
//! fn rocket() -> _ {
//!     let log = AccessLog::to_file("access.log").expect("open the access log");
//!     rocket::build()
//!         .attach(Mmap::fairing())
//!         .mount("/", FileServer::from("static"))
//!         .attach(log)   // attach it last: it wraps the body the other fairings left
//! }
//! ```
//!
//! # The line
//!
//! One line per response, in the combined log format that nginx and Apache write and
//! every log tool reads:
//!
//! ```text
//! 127.0.0.1 - - [21/Nov/2026:10:04:31 +0000] "GET /music/a.mp3 HTTP/1.1" 206 1048576 "https://example.com/player" "Mozilla/5.0"
//! ```
//!
//! remote address, `-` (identity), `-` (user), the time the request arrived (UTC),
//! the request line, the status, the body bytes sent, `Referer` and `User-Agent` (`-`
//! when absent). With [`AccessLog::extended`] three fields follow: the time from the
//! request's arrival to the end of its body in milliseconds, the `Range` header as
//! sent, and the part list it was answered with (`0-499` for a single range,
//! `0-99,1000-1099` for `multipart/byteranges`, `-` when no range was applied):
//!
//! ```text
//! … "Mozilla/5.0" 12.408 "bytes=0-99,1000-1099" "0-99,1000-1099"
//! ```
//!
//! Decisions:
//!
//! * **Bytes are measured at the body**, not taken from `Content-Length`: the fairing
//!   wraps each response's body (whatever produced it: the file server, a route, a
//!   catcher) in a counting reader, and writes the line when the body ends — its
//!   last byte read, a read failing (a file truncated or rewritten under a download),
//!   or the body dropped (the client went away, or a `HEAD`/`304` whose body Rocket
//!   never reads: 0 bytes). So a cut download logs what went out. "Sent" means handed
//!   to Rocket, which passes it to hyper: for a download the client abandons, the
//!   figure can exceed what reached the client by the chunks queued in hyper and the
//!   socket buffers (a few hundred KiB at most).
//! * **Exactly one line per response**, written by whichever comes first of the end of
//!   the body and its drop. Requests hyper rejects before Rocket sees them (a
//!   malformed request line) have no Rocket response and no line.
//! * **Never blocking a worker**: a line is formatted on the worker (one `String`) and
//!   handed to a writer thread through a bounded channel; the writer batches lines
//!   (it wakes at most every 5 ms while lines keep coming, so senders rarely pay a
//!   wake-up) into a buffered writer it flushes after each batch. If the writer
//!   falls behind by more than 65 536 lines or 32 MiB, lines are dropped and counted
//!   (`rocket_mmap_access_log_lines_dropped_total` with the `metrics` feature;
//!   [`AccessLog::counts`]) rather than stalling requests.
//! * **Escaping**: `"`, `\`, control characters and every byte outside printable
//!   ASCII in the request line, `Referer`, `User-Agent` and `Range` are written as
//!   `\xHH` (as nginx does), so no client can forge a line or a field.
//! * **The remote address** is the connection's peer (nginx's `$remote_addr`), not
//!   `X-Real-IP`, which any client can send; behind a proxy, use
//!   [`AccessLog::client_ip_from_header`] to log Rocket's `client_ip()` instead (the
//!   header named by Rocket's `ip_header` setting).
//! * **The protocol**: Rocket 0.5 does not tell a request's HTTP version. A request
//!   that named its host by `:authority` without a `Host` header is HTTP/2 and is
//!   logged `HTTP/2.0`; every other request is logged `HTTP/1.1` (an HTTP/1.0
//!   request too).
//! * **Attach it last**: a response fairing attached after it that replaces the body
//!   or the status is not seen.
//! * **Rotation**: a log opened with [`AccessLog::to_file`] can be reopened at its
//!   path ([`AccessLogFlusher::reopen`]; the binary does it on `SIGUSR1` and `SIGHUP`),
//!   so logrotate can rename the file and have the server start a new one instead of
//!   `copytruncate`, which loses the lines written between its copy and its truncate.
//!   The reopen travels through the same queue as the lines: every line queued before
//!   it is written, whole, and flushed to the old file, every line after it goes to the
//!   new one; none is lost or split. If the path cannot be opened, the old file is
//!   kept (as nginx does) and the error returned.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt::Write as _;
use std::future::Future;
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rocket::fairing::{Fairing, Info, Kind};
use rocket::http::Method;
use rocket::response::{Body, Response};
use rocket::{Build, Data, Orbit, Request, Rocket};
use tokio::io::{AsyncRead, AsyncSeek, ReadBuf};

use crate::semantics::date::civil_from_days;
use crate::semantics::range::ByteRange;

/// Most lines waiting for the writer thread.
const MAX_QUEUED_LINES: usize = 65_536;
/// Most bytes of lines waiting for the writer thread.
const MAX_QUEUED_BYTES: usize = 32 << 20;
/// How long the writer lets lines gather once it was woken.
const BATCH_PAUSE: Duration = Duration::from_millis(5);

/// The access log fairing. See the module docs for the format and the decisions.
///
/// One per Rocket instance (a second one attached replaces the first); to write the
/// lines to several places, give it a writer that does.
///
/// ```rust,no_run
/// # #[macro_use] extern crate rocket;
/// use rocket_mmap::{AccessLog, FileServer, Mmap};
///
/// #[launch]
/// fn rocket() -> _ {
///     rocket::build()
///         .attach(Mmap::fairing())
///         .mount("/", FileServer::from("static"))
///         .attach(AccessLog::stdout().extended(true)) // last: it wraps the final body
/// }
/// ```
#[derive(Debug)]
pub struct AccessLog {
    sink: Arc<Sink>,
    extended: bool,
    client_ip_from_header: bool,
}

/// Lines written and dropped so far by an [`AccessLog`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AccessLogLines {
    /// Lines handed to the writer's output.
    pub written: u64,
    /// Lines dropped: the writer fell behind, or the output failed.
    pub dropped: u64,
}

/// Opens the log's output again (at its path), for [`AccessLogFlusher::reopen`].
type Reopen<W> = Box<dyn FnMut() -> io::Result<W> + Send>;

impl AccessLog {
    /// A log written to `writer` by a thread of its own (the writer may block: only
    /// that thread waits for it). It cannot be reopened ([`AccessLogFlusher::reopen`]
    /// answers `Unsupported`); a writer that rotates by itself needs no reopening.
    ///
    /// # Panics
    /// If the operating system refuses to start a thread.
    pub fn fairing<W: Write + Send + 'static>(writer: W) -> AccessLog {
        AccessLog::start(writer, None)
    }

    fn start<W: Write + Send + 'static>(writer: W, reopen: Option<Reopen<W>>) -> AccessLog {
        let (tx, rx) = mpsc::sync_channel(MAX_QUEUED_LINES);
        let sink = Arc::new(Sink {
            tx,
            counts: Arc::new(LineCounts::default()),
        });
        let counts = sink.counts.clone();
        std::thread::Builder::new()
            .name("rocket-mmap-access-log".into())
            .spawn(move || write_lines(rx, writer, reopen, &counts))
            .expect("start the access log writer thread");
        AccessLog {
            sink,
            extended: false,
            client_ip_from_header: false,
        }
    }

    /// A log appended to the file at `path` (created if missing). It can be reopened at
    /// the same path after the file was renamed ([`AccessLogFlusher::reopen`]); a
    /// relative path is resolved against the current directory now, once.
    ///
    /// # Errors
    /// If the file cannot be opened for appending.
    pub fn to_file(path: impl AsRef<Path>) -> io::Result<AccessLog> {
        let path = std::path::absolute(path.as_ref())?;
        let open = move || {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
        };
        let file = open()?;
        Ok(AccessLog::start(file, Some(Box::new(open))))
    }

    /// A log written to the standard output.
    pub fn stdout() -> AccessLog {
        AccessLog::fairing(io::stdout())
    }

    /// Adds the request time in milliseconds, the `Range` header and the part list
    /// served to each line (default: off).
    pub fn extended(mut self, on: bool) -> AccessLog {
        self.extended = on;
        self
    }

    /// Logs Rocket's `client_ip()` (from the header Rocket's `ip_header` setting
    /// names, `X-Real-IP` by default) instead of the connection's peer address. Only
    /// for servers behind a proxy that sets that header (default: off).
    pub fn client_ip_from_header(mut self, on: bool) -> AccessLog {
        self.client_ip_from_header = on;
        self
    }

    /// Lines written and dropped so far.
    pub fn counts(&self) -> AccessLogLines {
        self.sink.counts.read()
    }

    /// A handle to flush this log from elsewhere (e.g. after `launch()` returns).
    pub fn flusher(&self) -> AccessLogFlusher {
        AccessLogFlusher {
            sink: self.sink.clone(),
        }
    }
}

/// Flushes an [`AccessLog`], and reopens it after a rotation: see [`AccessLog::flusher`].
#[derive(Debug, Clone)]
pub struct AccessLogFlusher {
    sink: Arc<Sink>,
}

impl AccessLogFlusher {
    /// Waits up to `timeout` until every line queued before the call is written and
    /// the output flushed; `false` if that did not happen in time.
    pub fn flush(&self, timeout: Duration) -> bool {
        self.sink.flush(timeout)
    }

    /// Reopens the log at its path, for log rotation: lines queued before the call
    /// are written and flushed to the file open until now, lines queued after it to
    /// the file now at the path (created if missing). Waits up to `timeout` for the
    /// writer thread to do it. Blocking: from async code, call it through
    /// `tokio::task::spawn_blocking`.
    ///
    /// ```rust,no_run
    /// # fn main() -> std::io::Result<()> {
    /// use std::time::Duration;
    /// let log = rocket_mmap::AccessLog::to_file("/var/log/files/access.log")?;
    /// let handle = log.flusher();
    /// // … attach `log`; later, after logrotate renamed the file:
    /// handle.reopen(Duration::from_secs(5))?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// `Unsupported` for a log not made by [`AccessLog::to_file`]; `TimedOut` if the
    /// writer thread did not answer within `timeout` (the reopen may still happen);
    /// the error of opening the path, in which case the old file stays in use.
    pub fn reopen(&self, timeout: Duration) -> io::Result<()> {
        self.sink.reopen(timeout)
    }

    /// Lines written and dropped so far.
    pub fn counts(&self) -> AccessLogLines {
        self.sink.counts.read()
    }
}

/// The line counts, shared with the writer thread and (managed in Rocket's state) with
/// the metrics exporter.
#[derive(Debug, Default)]
pub(crate) struct LineCounts {
    written: AtomicU64,
    dropped: AtomicU64,
    /// Bytes of lines queued and not yet written (the bound on the queue's memory).
    queued_bytes: AtomicUsize,
}

impl LineCounts {
    fn read(&self) -> AccessLogLines {
        AccessLogLines {
            written: self.written.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

/// What the metrics exporter finds in Rocket's state when an access log is attached.
#[derive(Debug, Clone)]
pub(crate) struct AccessLogCounts(Arc<LineCounts>);

impl AccessLogCounts {
    /// `(written, dropped)`.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn read(&self) -> (u64, u64) {
        let c = self.0.read();
        (c.written, c.dropped)
    }
}

enum Msg {
    Line(String),
    Flush(SyncSender<()>),
    Reopen(SyncSender<io::Result<()>>),
}

#[derive(Debug)]
struct Sink {
    tx: SyncSender<Msg>,
    counts: Arc<LineCounts>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Msg::Line(l) => write!(f, "Line({l:?})"),
            Msg::Flush(_) => f.write_str("Flush"),
            Msg::Reopen(_) => f.write_str("Reopen"),
        }
    }
}

impl Sink {
    /// Queues a line without ever blocking; drops (and counts) it if the writer is
    /// too far behind.
    fn send(&self, line: String) {
        let len = line.len();
        let queued = &self.counts.queued_bytes;
        if queued.fetch_add(len, Ordering::Relaxed) + len > MAX_QUEUED_BYTES {
            queued.fetch_sub(len, Ordering::Relaxed);
            self.counts.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match self.tx.try_send(Msg::Line(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                queued.fetch_sub(len, Ordering::Relaxed);
                self.counts.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn flush(&self, timeout: Duration) -> bool {
        let (ack, done) = mpsc::sync_channel(1);
        let deadline = Instant::now() + timeout;
        self.send_control(Msg::Flush(ack), deadline)
            && done
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .is_ok()
    }

    fn reopen(&self, timeout: Duration) -> io::Result<()> {
        let (ack, done) = mpsc::sync_channel(1);
        let deadline = Instant::now() + timeout;
        let timed_out = || {
            io::Error::new(
                io::ErrorKind::TimedOut,
                "the access log writer did not answer in time",
            )
        };
        if !self.send_control(Msg::Reopen(ack), deadline) {
            return Err(timed_out());
        }
        done.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .map_err(|_| timed_out())?
    }

    /// Queues a message that must not be dropped, behind the lines already queued: the
    /// queue may be full for a moment, so it retries until `deadline`. `false` if it
    /// could not be queued (deadline, or the writer thread is gone).
    fn send_control(&self, mut msg: Msg, deadline: Instant) -> bool {
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => return true,
                Err(TrySendError::Full(m)) if Instant::now() < deadline => {
                    msg = m;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(_) => return false,
            }
        }
    }
}

/// The writer thread: blocks while idle; once woken, lets lines gather for
/// [`BATCH_PAUSE`], writes them all and flushes, until a pause brings none. A reopen
/// is handled between two lines: the old output is flushed, then replaced.
fn write_lines<W: Write>(
    rx: Receiver<Msg>,
    writer: W,
    mut reopen: Option<Reopen<W>>,
    counts: &LineCounts,
) {
    let mut out = io::BufWriter::with_capacity(64 << 10, writer);
    let mut failed = false;
    let mut handle = |msg: Msg, out: &mut io::BufWriter<W>| match msg {
        Msg::Line(line) => {
            if !failed && out.write_all(line.as_bytes()).is_ok() {
                counts.written.fetch_add(1, Ordering::Relaxed);
            } else {
                if !failed {
                    eprintln!("rocket-mmap: the access log cannot be written; lines are dropped");
                }
                failed = true;
                counts.dropped.fetch_add(1, Ordering::Relaxed);
            }
            counts.queued_bytes.fetch_sub(line.len(), Ordering::Relaxed);
        }
        Msg::Flush(ack) => {
            let _ = out.flush();
            let _ = ack.try_send(());
        }
        Msg::Reopen(ack) => {
            let result = match &mut reopen {
                None => Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "this access log was not opened from a path",
                )),
                Some(open) => {
                    // Every line before the reopen belongs to the old file.
                    let _ = out.flush();
                    open().map(|writer| {
                        *out = io::BufWriter::with_capacity(64 << 10, writer);
                        // A new file: writing may work again (after a full disk).
                        failed = false;
                    })
                }
            };
            let _ = ack.try_send(result);
        }
    };
    while let Ok(first) = rx.recv() {
        handle(first, &mut out);
        loop {
            std::thread::sleep(BATCH_PAUSE);
            let mut got = false;
            while let Ok(msg) = rx.try_recv() {
                got = true;
                handle(msg, &mut out);
            }
            let _ = out.flush();
            if !got {
                break;
            }
        }
    }
    let _ = out.flush();
}

/// What the log remembers of a request from its arrival (request-local).
#[derive(Debug)]
struct Started {
    at: Instant,
    wall: SystemTime,
    method: Method,
    /// The part list of a `multipart/byteranges` answer (noted by the responder).
    parts: OnceLock<Box<str>>,
}

impl Started {
    fn now(method: Method) -> Started {
        Started {
            at: Instant::now(),
            wall: SystemTime::now(),
            method,
            parts: OnceLock::new(),
        }
    }
}

/// Managed when the log is extended: tells the responder to note multipart part lists.
#[derive(Debug)]
struct WantsParts;

/// Called by the [`MmapFile`](crate::MmapFile) responder for a `multipart/byteranges`
/// answer: notes its part list for the extended log (nothing without one).
pub(crate) fn note_parts(req: &Request<'_>, parts: &[ByteRange]) {
    if req.rocket().state::<WantsParts>().is_none() {
        return;
    }
    let started = req.local_cache(|| Started::now(req.method()));
    let _ = started.parts.set(part_list(parts).into_boxed_str());
}

fn part_list(parts: &[ByteRange]) -> String {
    let mut out = String::with_capacity(parts.len() * 16);
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{}-{}", p.first, p.last);
    }
    out
}

#[rocket::async_trait]
impl Fairing for AccessLog {
    fn info(&self) -> Info {
        Info {
            name: "rocket-mmap access log",
            kind: Kind::Ignite | Kind::Request | Kind::Response | Kind::Shutdown | Kind::Singleton,
        }
    }

    async fn on_ignite(&self, rocket: Rocket<Build>) -> rocket::fairing::Result {
        let rocket = rocket.manage(AccessLogCounts(self.sink.counts.clone()));
        Ok(if self.extended {
            rocket.manage(WantsParts)
        } else {
            rocket
        })
    }

    // `on_request` and `on_response` are written out rather than as `async fn`s: the
    // `async_trait` expansion would box a future holding the references (an
    // allocation per call); these do their work synchronously and box the
    // zero-sized `Done` (no allocation), except for a body whose size Rocket must
    // find by seeking.
    fn on_request<'life0, 'life1, 'life2, 'life3, 'life4, 'async_trait>(
        &'life0 self,
        req: &'life1 mut Request<'life2>,
        _data: &'life3 mut Data<'life4>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        'life3: 'async_trait,
        'life4: 'async_trait,
        Self: 'async_trait,
    {
        let method = req.method();
        req.local_cache(|| Started::now(method));
        Box::pin(Done)
    }

    fn on_response<'r, 'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        req: &'r Request<'life1>,
        res: &'life2 mut Response<'r>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'async_trait>>
    where
        'r: 'async_trait,
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        let preset = res.body().preset_size();
        if preset.is_some() || res.body().is_none() {
            self.wrap(req, res, preset);
            Box::pin(Done)
        } else {
            Box::pin(async move {
                let size = res.body_mut().size().await;
                self.wrap(req, res, size);
            })
        }
    }

    async fn on_shutdown(&self, _rocket: &Rocket<Orbit>) {
        let sink = self.sink.clone();
        let _ = tokio::task::spawn_blocking(move || sink.flush(Duration::from_secs(5))).await;
    }
}

impl AccessLog {
    /// Replaces the response's body with a [`Logged`] wrapper around it (or sends the
    /// line at once if there is no body to read).
    fn wrap<'r>(&self, req: &'r Request<'_>, res: &mut Response<'r>, size: Option<usize>) {
        let body = res.body_mut().take();
        let max_chunk = body.max_chunk_size();
        let pending = Pending {
            req,
            started: req.local_cache(|| Started::now(req.method())),
            status: res.status().code,
            content_range: if self.extended {
                res.headers().get_one("Content-Range").map(str::to_owned)
            } else {
                None
            },
            sink: self.sink.clone(),
            extended: self.extended,
            client_ip_from_header: self.client_ip_from_header,
        };
        if body.is_none() {
            // Nothing will be read: the line is complete now.
            pending.send(0);
            return;
        }
        let logged = Logged {
            inner: body,
            sent: 0,
            pending: Some(pending),
        };
        match size {
            Some(size) => res.set_sized_body(size, logged),
            None => res.set_streamed_body(logged),
        }
        res.set_max_chunk_size(max_chunk);
    }
}

/// The future of the fairing callbacks that did their work before returning: it is
/// zero-sized, so boxing it (as Rocket's `Fairing` trait requires) allocates nothing.
pub(crate) struct Done;

impl Future for Done {
    type Output = ();

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        Poll::Ready(())
    }
}

/// Everything a line needs, kept until the body ends.
struct Pending<'r, 'c> {
    req: &'r Request<'c>,
    started: &'r Started,
    status: u16,
    content_range: Option<String>,
    sink: Arc<Sink>,
    extended: bool,
    client_ip_from_header: bool,
}

impl Pending<'_, '_> {
    fn send(self, sent: u64) {
        let line = self.format(sent);
        self.sink.send(line);
    }

    fn format(&self, sent: u64) -> String {
        let req = self.req;
        let fields = HeaderFields::of(req);
        let mut line = String::with_capacity(256);
        let ip: Option<IpAddr> = if self.client_ip_from_header {
            req.client_ip()
        } else {
            req.remote().map(|a| a.ip())
        };
        match ip {
            Some(ip) => push_ip(&mut line, ip),
            None => line.push('-'),
        }
        line.push_str(" - - [");
        push_clf_time(&mut line, self.started.wall);
        line.push_str("] \"");
        push_escaped(&mut line, self.started.method.as_str());
        line.push(' ');
        // The target as it came: path and query, raw (percent-encoded), escaped.
        push_escaped(&mut line, req.uri().path().as_str());
        if let Some(query) = req.uri().query() {
            line.push('?');
            push_escaped(&mut line, query.as_str());
        }
        // Rocket 0.5 does not expose the HTTP version; an HTTP/2 request carries its
        // host in `:authority` (which Rocket reads into `host()`) and, from conforming
        // clients, no `Host` header (RFC 9113 §8.3.1).
        let http2 = req.host().is_some() && !fields.host;
        line.push_str(if http2 {
            " HTTP/2.0\" "
        } else {
            " HTTP/1.1\" "
        });
        push_u64(&mut line, u64::from(self.status));
        line.push(' ');
        push_u64(&mut line, sent);
        line.push(' ');
        push_quoted(&mut line, fields.referer);
        line.push(' ');
        push_quoted(&mut line, fields.user_agent);
        if self.extended {
            let ms = self.started.at.elapsed().as_secs_f64() * 1000.0;
            let _ = write!(line, " {ms:.3} ");
            push_quoted(&mut line, fields.range);
            line.push_str(" \"");
            self.push_served(&mut line);
            line.push('"');
        }
        line.push('\n');
        line
    }

    /// The part list a 206 was answered with; `-` for every other status.
    fn push_served(&self, line: &mut String) {
        if self.status != 206 {
            line.push('-');
        } else if let Some(parts) = self.started.parts.get() {
            line.push_str(parts);
        } else if let Some(range) = self
            .content_range
            .as_deref()
            .and_then(|v| v.strip_prefix("bytes "))
            .and_then(|v| v.split_once('/'))
            .map(|(range, _)| range)
        {
            push_escaped(line, range);
        } else {
            line.push_str("multipart");
        }
    }
}

/// The request headers a line shows, found in one pass over the headers (a keyed
/// lookup hashes the name each time; a request has a handful of headers).
struct HeaderFields<'r> {
    referer: Option<&'r str>,
    user_agent: Option<&'r str>,
    range: Option<&'r str>,
    host: bool,
}

impl<'r> HeaderFields<'r> {
    fn of(req: &'r Request<'_>) -> HeaderFields<'r> {
        let mut f = HeaderFields {
            referer: None,
            user_agent: None,
            range: None,
            host: false,
        };
        for h in req.headers().iter() {
            let name = h.name.as_str();
            // The first of repeated fields, as `get_one` would.
            let slot = match name.len() {
                4 if name.eq_ignore_ascii_case("host") => {
                    f.host = true;
                    continue;
                }
                5 if name.eq_ignore_ascii_case("range") => &mut f.range,
                7 if name.eq_ignore_ascii_case("referer") => &mut f.referer,
                10 if name.eq_ignore_ascii_case("user-agent") => &mut f.user_agent,
                _ => continue,
            };
            // `iter` lends the map's own strings (always `Borrowed`).
            if let (None, Cow::Borrowed(value)) = (&slot, h.value) {
                *slot = Some(value);
            }
        }
        f
    }
}

/// A body that counts the bytes read through it and sends the log line when it ends
/// (end of stream or error) or is dropped, whichever comes first.
struct Logged<'r, 'c> {
    inner: Body<'r>,
    sent: u64,
    pending: Option<Pending<'r, 'c>>,
}

impl Logged<'_, '_> {
    fn finish(&mut self) {
        if let Some(p) = self.pending.take() {
            p.send(self.sent);
        }
    }
}

impl AsyncRead for Logged<'_, '_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let wanted = buf.remaining() > 0;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let n = buf.filled().len() - before;
                this.sent += n as u64;
                if n == 0 && wanted {
                    this.finish(); // end of the body
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => {
                this.finish();
                Poll::Ready(Err(e))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The size is always preset when this body is sized, so Rocket never seeks it; a
/// seek is refused rather than forwarded (Rocket's `Body` cannot seek).
impl AsyncSeek for Logged<'_, '_> {
    fn start_seek(self: Pin<&mut Self>, _position: io::SeekFrom) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "an access-logged body cannot seek",
        ))
    }

    fn poll_complete(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        Poll::Ready(Ok(self.sent))
    }
}

impl Drop for Logged<'_, '_> {
    fn drop(&mut self) {
        // Drop the inner body first, so its own accounting (the engine's counters) is
        // done before the line is out.
        drop(self.inner.take());
        self.finish();
    }
}

/// Decimal digits of `n`, without the formatting machinery.
fn push_u64(line: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    line.extend(digits[i..].iter().map(|&d| char::from(d)));
}

/// An address as `Display` writes it (IPv4 without the formatting machinery).
fn push_ip(line: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    line.push('.');
                }
                push_u64(line, u64::from(octet));
            }
        }
        IpAddr::V6(v6) => {
            let _ = write!(line, "{v6}");
        }
    }
}

/// `"value"`, escaped, or `"-"`.
fn push_quoted(line: &mut String, value: Option<&str>) {
    line.push('"');
    match value {
        Some(v) => push_escaped(line, v),
        None => line.push('-'),
    }
    line.push('"');
}

/// Appends `s` with `"`, `\`, control characters and bytes outside printable ASCII
/// written as `\xHH`: a logged field can never end early or start a new line.
fn push_escaped(line: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s.as_bytes() {
        if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
            line.push_str("\\x");
            line.push(char::from(HEX[usize::from(b >> 4)]));
            line.push(char::from(HEX[usize::from(b & 0xf)]));
        } else {
            line.push(char::from(b));
        }
    }
}

/// `10/Oct/2000:13:55:36 +0000` (UTC). Formatted once per second and thread: the
/// lines of one second share it.
fn push_clf_time(line: &mut String, t: SystemTime) {
    const LEN: usize = "10/Oct/2000:13:55:36 +0000".len();
    thread_local! {
        static LAST: Cell<(u64, [u8; LEN])> = const { Cell::new((u64::MAX, [0; LEN])) };
    }
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (cached, text) = LAST.with(Cell::get);
    if cached == secs {
        line.extend(text.iter().map(|&b| char::from(b)));
        return;
    }
    let start = line.len();
    format_clf_time(line, secs);
    if let Ok(text) = <[u8; LEN]>::try_from(&line.as_bytes()[start..]) {
        LAST.with(|c| c.set((secs, text)));
    }
}

fn format_clf_time(line: &mut String, secs: u64) {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    let _ = write!(
        line,
        "{day:02}/{}/{year:04}:{:02}:{:02}:{:02} +0000",
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_quotes_backslashes_controls_and_non_ascii() {
        let mut s = String::new();
        push_escaped(&mut s, "a\"b\\c\nd\re\tf\u{7f}é ok");
        assert_eq!(s, "a\\x22b\\x5Cc\\x0Ad\\x0De\\x09f\\x7F\\xC3\\xA9 ok");
        let mut q = String::new();
        push_quoted(&mut q, None);
        assert_eq!(q, "\"-\"");
    }

    #[test]
    fn clf_time_is_utc_with_month_names() {
        let mut s = String::new();
        push_clf_time(&mut s, UNIX_EPOCH + Duration::from_secs(971_186_136));
        assert_eq!(s, "10/Oct/2000:13:55:36 +0000");
        let mut s = String::new();
        push_clf_time(&mut s, UNIX_EPOCH);
        assert_eq!(s, "01/Jan/1970:00:00:00 +0000");
        // A leap day, and the day after.
        let mut s = String::new();
        push_clf_time(&mut s, UNIX_EPOCH + Duration::from_secs(951_782_400));
        assert_eq!(s, "29/Feb/2000:00:00:00 +0000");
        let mut s = String::new();
        push_clf_time(&mut s, UNIX_EPOCH + Duration::from_secs(951_955_199));
        assert_eq!(s, "01/Mar/2000:23:59:59 +0000");
    }

    #[test]
    fn numbers_and_addresses_as_display_writes_them() {
        for n in [0, 7, 10, 206, 65_535, u64::MAX] {
            let mut s = String::new();
            push_u64(&mut s, n);
            assert_eq!(s, n.to_string());
        }
        for ip in [
            "127.0.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "10.20.3.4",
            "::1",
            "2001:db8::8a2e:370:7334",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let mut s = String::new();
            push_ip(&mut s, ip);
            assert_eq!(s, ip.to_string());
        }
    }

    #[test]
    fn the_cached_time_is_the_time_of_its_second() {
        let t = UNIX_EPOCH + Duration::from_secs(971_186_136);
        let (mut a, mut b, mut c) = (String::new(), String::new(), String::new());
        push_clf_time(&mut a, t);
        push_clf_time(&mut b, t + Duration::from_millis(999));
        push_clf_time(&mut c, t + Duration::from_secs(1));
        assert_eq!(a, "10/Oct/2000:13:55:36 +0000");
        assert_eq!(b, a);
        assert_eq!(c, "10/Oct/2000:13:55:37 +0000");
    }

    #[test]
    fn part_lists() {
        let r = |first, last| ByteRange { first, last };
        assert_eq!(part_list(&[r(0, 99)]), "0-99");
        assert_eq!(part_list(&[r(500, 599), r(0, 9)]), "500-599,0-9");
    }

    #[test]
    fn a_file_log_reopens_at_its_path_between_lines_and_keeps_its_file_on_failure() {
        let dir =
            std::env::temp_dir().join(format!("rocket-mmap-access-reopen-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("access.log");
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
        let log = AccessLog::to_file(&path).unwrap();
        let handle = log.flusher();
        let wait = Duration::from_secs(5);
        log.sink.send("one\n".into());
        std::fs::rename(&path, dir.join("access.log.1")).unwrap();
        // Queued before the reopen: still the old (renamed) file.
        log.sink.send("two\n".into());
        handle.reopen(wait).unwrap();
        log.sink.send("three\n".into());
        assert!(handle.flush(wait));
        assert_eq!(read("access.log.1"), "one\ntwo\n");
        assert_eq!(read("access.log"), "three\n");
        // The path cannot be opened (a directory is there): the error is returned and
        // the file open until now stays in use.
        std::fs::rename(&path, dir.join("access.log.2")).unwrap();
        std::fs::create_dir(&path).unwrap();
        let err = handle.reopen(wait).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::IsADirectory, "{err}");
        log.sink.send("four\n".into());
        assert!(handle.flush(wait));
        assert_eq!(read("access.log.2"), "three\nfour\n");
        assert_eq!(log.counts().written, 4);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_writer_log_cannot_be_reopened() {
        let log = AccessLog::fairing(io::sink());
        let err = log.flusher().reopen(Duration::from_secs(5)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Unsupported, "{err}");
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_blocking() {
        // A writer that never returns holds the thread; the queue fills and the rest
        // is dropped, each counted, without the sender ever waiting.
        struct Stuck(Arc<std::sync::Barrier>);
        impl Write for Stuck {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                self.0.wait();
                Err(io::Error::other("released"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let barrier = Arc::new(std::sync::Barrier::new(2));
        let log = AccessLog::fairing(Stuck(barrier.clone()));
        let line = "x".repeat(70 << 10); // fills the 64 KiB BufWriter: the writer calls write
        let started = Instant::now();
        let total = 1000;
        for _ in 0..total {
            log.sink.send(line.clone());
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "sending never blocks"
        );
        // 32 MiB of 70 KiB lines fit in the queue; the rest was dropped.
        let counts = log.counts();
        let queued_max = MAX_QUEUED_BYTES / line.len();
        assert!(
            counts.dropped as usize >= total - queued_max - 1,
            "{counts:?}"
        );
        barrier.wait();
    }
}
