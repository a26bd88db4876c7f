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
//!
//! # Where it lives
//!
//! This file is the fairing: it notes when a request arrived and wraps each response's
//! body. `body.rs` is the counting body, `line.rs` the line (format and escaping),
//! `queue.rs` the bounded queue and the writer thread (and its reopening).
mod body;
mod line;
mod queue;

use std::future::Future;
use std::io::{self, Write};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use rocket::fairing::{Fairing, Info, Kind};
use rocket::response::Response;
use rocket::{Build, Data, Orbit, Request, Rocket};

use crate::shell::access_log::body::Logged;
use crate::shell::access_log::line::{Pending, Started};
pub(crate) use crate::shell::access_log::queue::AccessLogCounts;
pub use crate::shell::access_log::queue::AccessLogLines;
use crate::shell::access_log::queue::{Reopen, Sink};
use crate::shell::done::Done;
use crate::shell::served::Served;

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
        AccessLog {
            sink: Sink::start(writer, reopen),
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
        // The extended line shows the parts served: it reads the records of what was
        // served.
        Ok(if self.extended {
            Served::observed_by(rocket)
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
        let logged = Logged::new(body, pending);
        match size {
            Some(size) => res.set_sized_body(size, logged),
            None => res.set_streamed_body(logged),
        }
        res.set_max_chunk_size(max_chunk);
    }
}
