//! The Rocket responder: reads `Range` and the `If-*` headers from the request, runs
//! [`crate::serve::respond`], and writes the status, the headers and a sized body.
//!
//! Headers, by status (RFC 9110 §15):
//!
//! * 200 and 206: `ETag`, `Last-Modified`, `Accept-Ranges: bytes`, `Content-Type` (the
//!   file's; `multipart/byteranges; boundary=…` for several ranges, each part carrying
//!   the file's), `Cache-Control` and `Content-Disposition` when configured, an exact
//!   `Content-Length` (the body is sized: never chunked), and `Content-Range` for a
//!   single range.
//! * 304: what a 200 would carry to let caches update (`ETag`, `Last-Modified`,
//!   `Cache-Control`, `Vary`; §15.4.5), no body and no `Content-Length`.
//! * 416: `Content-Range: bytes */LEN` (§15.5.17), `Accept-Ranges`, an empty body.
//! * 412: an empty body.
//!
//! HEAD answers as GET without a `Range` (§14.2: range handling is defined for GET
//! only), and Rocket drops the body but keeps the exact `Content-Length`. Note that
//! Rocket's automatic HEAD handling turns the method into GET before a `#[get]` route
//! runs; [`crate::FileServer`] registers its own HEAD route, and [`crate::Mmap::fairing`]
//! records the original method before routing, so both see the real method.

use std::borrow::Cow;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::io::{AsyncRead, AsyncSeek, ReadBuf};

use rocket::http::{Method as RocketMethod, Status as RocketStatus};
use rocket::request::Request;
use rocket::response::{self, Responder, Response};

use crate::body::SegmentBody;
use crate::cache::CacheError;
use crate::config::{Mmap, ResponseOptions};
use crate::date::HttpDate;
use crate::disposition::{content_disposition, DispositionType};
use crate::entry::Entry;
use crate::etag::EntityTag;
use crate::precondition::{Conditionals, Method, Validators};
use crate::range::{IgnoredBecause, RangeLimits};
use crate::serve::{
    decide, effective_last_modified, respond_typed, Decision, ServeRequest, Status,
};

/// A cached file or in-memory blob, ready to be answered with every range and
/// conditional rule. Return it from a route.
///
/// ```rust,no_run
/// # #[macro_use] extern crate rocket;
/// use rocket::State;
/// use rocket_mmap::{CacheError, Mmap, MmapFile};
/// use std::path::PathBuf;
///
/// #[get("/music/<file..>")]
/// async fn music(file: PathBuf, mmap: &State<Mmap>) -> Result<MmapFile, CacheError> {
///     mmap.open(PathBuf::from("music").join(file)).await
/// }
///
/// #[get("/hello.txt")]
/// fn hello() -> MmapFile {
///     MmapFile::from_static(b"Hello, world!\n", "text/plain; charset=utf-8")
/// }
///
/// #[launch]
/// fn rocket() -> _ {
///     rocket::build().attach(Mmap::fairing()).mount("/", routes![music, hello])
/// }
/// ```
#[derive(Debug, Clone)]
pub struct MmapFile {
    entry: Arc<Entry>,
    path: Option<PathBuf>,
    disposition: Option<String>,
    cache_control: Option<String>,
    vary: Option<&'static str>,
    content_type: Option<Cow<'static, str>>,
    content_encoding: Option<&'static str>,
}

impl MmapFile {
    /// Serves an entry (from [`crate::Cache::get`] or [`Entry::from_bytes`]).
    pub fn new(entry: Arc<Entry>) -> MmapFile {
        MmapFile {
            entry,
            path: None,
            disposition: None,
            cache_control: None,
            vary: None,
            content_type: None,
            content_encoding: None,
        }
    }

    /// Overrides the entry's `Content-Type` (e.g. the type of `FILE` for `FILE.gz`).
    pub fn content_type(mut self, value: impl Into<Cow<'static, str>>) -> MmapFile {
        self.content_type = Some(value.into());
        self
    }

    /// Sends `Content-Encoding` with 200 and 206 (the entry holds encoded bytes; ranges
    /// and the ETag apply to them, RFC 9110 §8.4, §8.8.3).
    pub fn content_encoding(mut self, token: &'static str) -> MmapFile {
        self.content_encoding = Some(token);
        self
    }

    /// Serves `'static` bytes (e.g. `include_bytes!`) without copying them. The ETag
    /// is computed on every call; keep an `Arc<Entry>` to compute it once.
    pub fn from_static(content: &'static [u8], content_type: &'static str) -> MmapFile {
        MmapFile::new(Arc::new(Entry::from_static(content, content_type)))
    }

    /// The file's path, used to pick a `Cache-Control` by extension.
    pub fn path_hint(mut self, path: impl Into<PathBuf>) -> MmapFile {
        self.path = Some(path.into());
        self
    }

    /// Sends `Content-Disposition: attachment` (save as), with a UTF-8 file name
    /// (RFC 6266, RFC 8187).
    pub fn attachment(mut self, file_name: Option<&str>) -> MmapFile {
        self.disposition = Some(content_disposition(DispositionType::Attachment, file_name));
        self
    }

    /// Sends `Content-Disposition: inline`, with an optional UTF-8 file name.
    pub fn inline(mut self, file_name: Option<&str>) -> MmapFile {
        self.disposition = Some(content_disposition(DispositionType::Inline, file_name));
        self
    }

    /// Overrides the configured `Cache-Control`.
    pub fn cache_control(mut self, value: impl Into<String>) -> MmapFile {
        self.cache_control = Some(value.into());
        self
    }

    /// Adds a `Vary` header to every response of this representation.
    pub fn vary(mut self, value: &'static str) -> MmapFile {
        self.vary = Some(value);
        self
    }

    /// The entry.
    pub fn entry(&self) -> &Arc<Entry> {
        &self.entry
    }

    /// Builds the response for `req` with `options`.
    pub fn to_response<'r>(&self, req: &Request<'_>, options: &ResponseOptions) -> Response<'r> {
        let headers = RequestHeaders::read(req);
        let sreq = headers.serve_request();
        let entry = &*self.entry;
        let content_type = self
            .content_type
            .as_ref()
            .unwrap_or(entry.content_type_value());
        let reply = respond_typed(
            entry,
            content_type,
            &sreq,
            &options.limits,
            SystemTime::now(),
        );

        let mut b = Response::build();
        b.status(RocketStatus::new(reply.status.code()));
        if reply.status.carries_validators() {
            let lm = reply
                .last_modified_override
                .or_else(|| entry.last_modified_header().map(str::to_owned));
            let cc = self
                .cache_control
                .as_deref()
                .or_else(|| options.cache_control_for(self.path.as_deref()));
            validator_headers(&mut b, Some(entry.etag_header()), lm, cc, self.vary);
        }
        match reply.status {
            Status::Ok | Status::PartialContent => {
                b.raw_header("Accept-Ranges", "bytes");
                let ct: Cow<'static, str> = match reply.multipart_content_type {
                    Some(multipart) => multipart.into(),
                    // No copy for the common, interned types.
                    None => content_type.clone(),
                };
                b.raw_header("Content-Type", ct);
                if let Some(enc) = self.content_encoding {
                    b.raw_header("Content-Encoding", enc);
                }
                if let Some(cr) = reply.content_range {
                    b.raw_header("Content-Range", cr);
                }
                if let Some(d) = &self.disposition {
                    b.raw_header("Content-Disposition", d.clone());
                }
                let len = reply.body.len();
                let chunk = (len as usize).clamp(1, options.chunk_size);
                b.sized_body(len as usize, reply.body);
                // After the body: setting a body resets the chunk size.
                b.max_chunk_size(chunk);
            }
            Status::RangeNotSatisfiable => {
                b.raw_header("Accept-Ranges", "bytes");
                if let Some(cr) = reply.content_range {
                    b.raw_header("Content-Range", cr);
                }
                b.sized_body(0, reply.body);
            }
            Status::PreconditionFailed => {
                b.sized_body(0, reply.body);
            }
            Status::NotModified => {}
        }
        b.finalize()
    }
}

impl<'r> Responder<'r, 'static> for MmapFile {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        let mmap = Mmap::of(req.rocket());
        Ok(self.to_response(req, mmap.options()))
    }
}

impl<'r> Responder<'r, 'static> for CacheError {
    /// 404 for missing files, directories and non-files, 403 for permission errors,
    /// 503 for files that keep changing, 500 otherwise; through Rocket's catchers.
    fn respond_to(self, _req: &'r Request<'_>) -> response::Result<'static> {
        if let CacheError::Io(e) = &self {
            rocket::warn!("rocket-mmap: {e}");
        }
        Err(RocketStatus::new(self.status()))
    }
}

/// `ETag`, `Last-Modified`, `Cache-Control` and `Vary`: what 200, 206 and 304 carry.
fn validator_headers(
    b: &mut rocket::response::Builder<'_>,
    etag: Option<&str>,
    last_modified: Option<String>,
    cache_control: Option<&str>,
    vary: Option<&'static str>,
) {
    if let Some(etag) = etag {
        b.raw_header("ETag", etag.to_owned());
    }
    if let Some(lm) = last_modified {
        b.raw_header("Last-Modified", lm);
    }
    if let Some(cc) = cache_control {
        b.raw_header("Cache-Control", cc.to_owned());
    }
    if let Some(v) = vary {
        b.raw_header("Vary", v);
    }
}

/// Content that is not in memory — generated, fetched, decompressed — streamed from an
/// `AsyncRead`, with validators the caller supplies. Conditional requests work as for
/// files (304, 412). A single range is served when the size is known (the reader is
/// read and discarded up to the range's start); several ranges, or any range on a
/// stream of unknown length, are answered with the whole content (200). With a known
/// size the response has an exact `Content-Length`; a reader that ends early cuts the
/// response instead of completing it.
///
/// ```rust,no_run
/// # #[macro_use] extern crate rocket;
/// use rocket_mmap::responder::StreamedFile;
/// use rocket_mmap::EntityTag;
///
/// #[get("/report.csv")]
/// async fn report() -> std::io::Result<StreamedFile<tokio::fs::File>> {
///     let file = tokio::fs::File::open("report.csv").await?;
///     let size = file.metadata().await?.len();
///     Ok(StreamedFile::new(file, "text/csv")
///         .etag(EntityTag::new(false, "report-v42").unwrap())
///         .size(size))
/// }
/// ```
#[derive(Debug)]
pub struct StreamedFile<R> {
    reader: R,
    content_type: Cow<'static, str>,
    etag: Option<EntityTag>,
    last_modified: Option<SystemTime>,
    size: Option<u64>,
    cache_control: Option<String>,
}

impl<R: AsyncRead + Send + Unpin> StreamedFile<R> {
    /// A stream of unknown size, no validators.
    pub fn new(reader: R, content_type: impl Into<Cow<'static, str>>) -> StreamedFile<R> {
        StreamedFile {
            reader,
            content_type: content_type.into(),
            etag: None,
            last_modified: None,
            size: None,
            cache_control: None,
        }
    }

    /// The entity tag of the content (strong, unless the content may vary in ways the
    /// tag does not capture).
    pub fn etag(mut self, tag: EntityTag) -> Self {
        self.etag = Some(tag);
        self
    }

    /// The modification time.
    pub fn last_modified(mut self, t: SystemTime) -> Self {
        self.last_modified = Some(t);
        self
    }

    /// The exact size in bytes: enables `Content-Length` and single ranges.
    pub fn size(mut self, size: u64) -> Self {
        self.size = Some(size);
        self
    }

    /// `Cache-Control` for this response.
    pub fn cache_control(mut self, value: impl Into<String>) -> Self {
        self.cache_control = Some(value.into());
        self
    }
}

impl<'r, R: AsyncRead + Send + Unpin + 'static> Responder<'r, 'static> for StreamedFile<R> {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        let options = Mmap::of(req.rocket()).options();
        let headers = RequestHeaders::read(req);
        let sreq = headers.serve_request();
        let now = HttpDate::from_system_time(SystemTime::now()).unwrap_or(HttpDate::UNIX_EPOCH);
        let lm = self.last_modified.and_then(HttpDate::from_system_time);
        let (lm, _) = effective_last_modified(lm, now);
        let validators = Validators {
            etag: self.etag.as_ref(),
            last_modified: lm,
        };
        // One part at most: a stream cannot go back for a second range.
        let limits = RangeLimits {
            max_parts: 1,
            ..options.limits
        };
        let decision = match decide(&sreq, &validators, self.size, 0, &limits, now) {
            // `max_parts = 1` never plans several parts; should it, send the whole.
            Decision::Multi(_) => Decision::Full(IgnoredBecause::TooManyParts),
            d => d,
        };
        let status = match &decision {
            Decision::NotModified => Status::NotModified,
            Decision::PreconditionFailed => Status::PreconditionFailed,
            Decision::Unsatisfiable => Status::RangeNotSatisfiable,
            Decision::Full(_) => Status::Ok,
            Decision::Single(_) | Decision::Multi(_) => Status::PartialContent,
        };
        let mut b = Response::build();
        b.status(RocketStatus::new(status.code()));
        if status.carries_validators() {
            let etag = self.etag.as_ref().map(|t| t.to_string());
            validator_headers(
                &mut b,
                etag.as_deref(),
                lm.map(HttpDate::to_imf_fixdate),
                self.cache_control.as_deref(),
                None,
            );
        }
        let chunk = options.chunk_size;
        match decision {
            Decision::NotModified => {}
            Decision::PreconditionFailed => {
                b.sized_body(0, SegmentBody::empty());
            }
            Decision::Unsatisfiable => {
                b.raw_header("Accept-Ranges", "bytes");
                let len = self.size.unwrap_or(0);
                b.raw_header("Content-Range", format!("bytes */{len}"));
                b.sized_body(0, SegmentBody::empty());
            }
            Decision::Full(_) => {
                if self.size.is_some() {
                    b.raw_header("Accept-Ranges", "bytes");
                }
                b.raw_header("Content-Type", self.content_type.into_owned());
                match self.size {
                    Some(len) => {
                        b.sized_body(len as usize, Window::new(self.reader, 0, len));
                    }
                    None => {
                        b.streamed_body(self.reader);
                    }
                }
                b.max_chunk_size(chunk);
            }
            Decision::Single(r) => {
                let len = self.size.unwrap_or(0);
                b.raw_header("Accept-Ranges", "bytes");
                b.raw_header("Content-Type", self.content_type.into_owned());
                b.raw_header(
                    "Content-Range",
                    format!("bytes {}-{}/{len}", r.first, r.last),
                );
                b.sized_body(r.len() as usize, Window::new(self.reader, r.first, r.len()));
                b.max_chunk_size(chunk);
            }
            Decision::Multi(_) => {}
        }
        Ok(b.finalize())
    }
}

/// A reader over bytes `skip..skip + len` of `inner`: discards the first `skip` bytes,
/// stops after `len`, and fails (rather than ending cleanly) if `inner` ends early, so
/// the response is cut instead of being short and complete-looking. Sized bodies with
/// a preset size are never seeked by Rocket; seeking is refused.
struct Window<R> {
    inner: R,
    skip: u64,
    remaining: u64,
}

impl<R> Window<R> {
    fn new(inner: R, skip: u64, len: u64) -> Window<R> {
        Window {
            inner,
            skip,
            remaining: len,
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Window<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        while this.skip > 0 {
            let mut scratch = [0u8; 8192];
            let want = scratch.len().min(this.skip as usize);
            let mut rb = ReadBuf::new(&mut scratch[..want]);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut rb))?;
            if rb.filled().is_empty() {
                return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
            }
            this.skip -= rb.filled().len() as u64;
        }
        if this.remaining == 0 {
            return Poll::Ready(Ok(()));
        }
        let max = buf.remaining().min(this.remaining as usize);
        let mut limited = ReadBuf::new(buf.initialize_unfilled_to(max));
        ready!(Pin::new(&mut this.inner).poll_read(cx, &mut limited))?;
        let n = limited.filled().len();
        if n == 0 {
            return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
        }
        buf.advance(n);
        this.remaining -= n as u64;
        Poll::Ready(Ok(()))
    }
}

impl<R> AsyncSeek for Window<R> {
    fn start_seek(self: Pin<&mut Self>, _: io::SeekFrom) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "streamed bodies do not seek",
        ))
    }

    fn poll_complete(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<u64>> {
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "streamed bodies do not seek",
        )))
    }
}

/// The headers of a request that the core needs, with list headers that came in
/// several lines joined (§5.3).
struct RequestHeaders<'r> {
    method: Method,
    if_match: Option<Cow<'r, str>>,
    if_none_match: Option<Cow<'r, str>>,
    if_modified_since: Option<&'r str>,
    if_unmodified_since: Option<&'r str>,
    if_range: Option<&'r str>,
    range: Option<&'r str>,
}

impl<'r> RequestHeaders<'r> {
    fn read(req: &'r Request<'_>) -> RequestHeaders<'r> {
        let method = match original_method(req) {
            RocketMethod::Get => Method::Get,
            RocketMethod::Head => Method::Head,
            _ => Method::Other,
        };
        // One pass over the names finds which of our headers are present; the keyed
        // lookups (each hashes the name) then run only for those — none on a plain GET.
        let mut present = 0u8;
        for h in req.headers().iter() {
            let name = h.name.as_str();
            for (bit, wanted) in WANTED.iter().enumerate() {
                if name.len() == wanted.len() && name.eq_ignore_ascii_case(wanted) {
                    present |= 1 << bit;
                }
            }
        }
        let has = |i: usize| present & (1 << i) != 0;
        RequestHeaders {
            method,
            if_match: has(0).then(|| list_header(req, WANTED[0])).flatten(),
            if_none_match: has(1).then(|| list_header(req, WANTED[1])).flatten(),
            // A repeated date is ignored (§13.1.3, §13.1.4: "more than one member").
            if_modified_since: has(2).then(|| singleton(req, WANTED[2], None)).flatten(),
            if_unmodified_since: has(3).then(|| singleton(req, WANTED[3], None)).flatten(),
            // A repeated If-Range cannot be trusted: unparsable, it evaluates false and
            // the whole content is sent — always a correct answer (§13.1.5).
            if_range: has(4)
                .then(|| singleton(req, WANTED[4], Some(UNPARSABLE)))
                .flatten(),
            // Several Range lines: an invalid field, ignored (§14.2).
            range: has(5)
                .then(|| singleton(req, WANTED[5], Some(UNPARSABLE)))
                .flatten(),
        }
    }

    fn serve_request(&self) -> ServeRequest<'_> {
        ServeRequest {
            method: Some(self.method),
            conditionals: Conditionals {
                if_match: self.if_match.as_deref(),
                if_none_match: self.if_none_match.as_deref(),
                if_modified_since: self.if_modified_since,
                if_unmodified_since: self.if_unmodified_since,
                if_range: self.if_range,
                has_range: self.range.is_some(),
            },
            range: self.range,
        }
    }
}

/// The method the client sent. Rocket presents an automatically handled HEAD to GET
/// routes as GET; [`crate::Mmap::fairing`] records the original method before routing.
fn original_method(req: &Request<'_>) -> RocketMethod {
    req.local_cache(|| OriginalMethod(req.method())).0
}

/// The request's method before routing, recorded by the `Mmap` fairing.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OriginalMethod(pub(crate) RocketMethod);

/// The request headers the core reads, in the order of `RequestHeaders::read`'s bits.
const WANTED: [&str; 6] = [
    "If-Match",
    "If-None-Match",
    "If-Modified-Since",
    "If-Unmodified-Since",
    "If-Range",
    "Range",
];

/// What a repeated singleton field is passed as when it must count as present but
/// invalid: a value no parser accepts.
const UNPARSABLE: &str = "";

/// A singleton field: its value if sent once, `None` if absent, and `repeated` if sent
/// more than once (such a field is invalid; the caller says how it counts).
fn singleton<'r>(
    req: &'r Request<'_>,
    name: &str,
    repeated: Option<&'static str>,
) -> Option<&'r str> {
    let mut values = req.headers().get(name);
    let first = values.next()?;
    match values.next() {
        None => Some(first),
        Some(_) => repeated,
    }
}

fn list_header<'r>(req: &'r Request<'_>, name: &str) -> Option<Cow<'r, str>> {
    let mut values = req.headers().get(name);
    let first = values.next()?;
    match values.next() {
        None => Some(Cow::Borrowed(first)),
        Some(second) => {
            let mut joined = format!("{first}, {second}");
            for v in values {
                joined.push_str(", ");
                joined.push_str(v);
            }
            Some(Cow::Owned(joined))
        }
    }
}
