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
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use rocket::http::{Method as RocketMethod, Status as RocketStatus};
use rocket::request::Request;
use rocket::response::{self, Responder, Response};

use crate::cache::CacheError;
use crate::config::{Mmap, ResponseOptions};
use crate::disposition::{content_disposition, DispositionType};
use crate::entry::Entry;
use crate::precondition::{Conditionals, Method};
use crate::serve::{respond, ServeRequest, Status};

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
        }
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
        let reply = respond(&self.entry, &sreq, &options.limits, SystemTime::now());
        let entry = &*self.entry;

        let mut b = Response::build();
        b.status(RocketStatus::new(reply.status.code()));
        if reply.status.carries_validators() {
            b.raw_header("ETag", entry.etag_header().to_owned());
            match reply.last_modified_override {
                Some(lm) => {
                    b.raw_header("Last-Modified", lm);
                }
                None => {
                    if let Some(lm) = entry.last_modified_header() {
                        b.raw_header("Last-Modified", lm.to_owned());
                    }
                }
            }
            let cc = self
                .cache_control
                .as_deref()
                .or_else(|| options.cache_control_for(self.path.as_deref()));
            if let Some(cc) = cc {
                b.raw_header("Cache-Control", cc.to_owned());
            }
            if let Some(v) = self.vary {
                b.raw_header("Vary", v);
            }
        }
        match reply.status {
            Status::Ok | Status::PartialContent => {
                b.raw_header("Accept-Ranges", "bytes");
                let ct = reply
                    .multipart_content_type
                    .unwrap_or_else(|| entry.content_type().to_owned());
                b.raw_header("Content-Type", ct);
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
        RequestHeaders {
            method,
            if_match: list_header(req, "If-Match"),
            if_none_match: list_header(req, "If-None-Match"),
            if_modified_since: singleton(req, "If-Modified-Since"),
            if_unmodified_since: singleton(req, "If-Unmodified-Since"),
            if_range: singleton(req, "If-Range"),
            range: match count(req, "Range") {
                0 => None,
                1 => req.headers().get_one("Range"),
                // Several Range lines: an invalid field, ignored (§14.2).
                _ => Some(""),
            },
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

fn count(req: &Request<'_>, name: &str) -> usize {
    req.headers().get(name).take(2).count()
}

/// A singleton field: its value if sent once, `None` if absent. A repeated date field
/// is invalid and ignored (§13.1.3, §13.1.4: "more than one member"). A repeated
/// If-Range cannot be trusted either; it is passed as an unparsable value, which
/// evaluates false, so the whole content is sent — always a correct answer.
fn singleton<'r>(req: &'r Request<'_>, name: &str) -> Option<&'r str> {
    match count(req, name) {
        0 => None,
        1 => req.headers().get_one(name),
        _ if name.eq_ignore_ascii_case("If-Range") => Some(""),
        _ => None,
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
