//! The Rocket responder: reads `Range` and the `If-*` headers from the request, runs
//! the engine's [`respond`](crate::respond), and writes the status, the headers and a sized body.
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
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use rocket::http::Status as RocketStatus;
use rocket::request::Request;
use rocket::response::{self, Responder, Response};

use crate::engine::cache::CacheError;
use crate::engine::entry::Entry;
use crate::engine::respond::respond_typed;
use crate::semantics::decide::Status;
use crate::semantics::disposition::{content_disposition, DispositionType};
use crate::shell::options::ResponseOptions;
use crate::shell::request::RequestHeaders;
use crate::shell::state::Mmap;

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

    /// Builds the response for `req` with `options`. The body reports to the counters
    /// of the [`Mmap`] state Rocket manages (bytes sent, bodies in flight, cuts).
    pub fn to_response<'r>(&self, req: &Request<'_>, options: &ResponseOptions) -> Response<'r> {
        self.build(req, options, Mmap::of(req.rocket()))
    }

    fn build<'r>(&self, req: &Request<'_>, options: &ResponseOptions, mmap: &Mmap) -> Response<'r> {
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

        let body = reply.body.counted_in(mmap.cache());
        if !reply.parts.is_empty() {
            crate::shell::access_log::note_parts(req, &reply.parts);
        }
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
                let len = body.len();
                let chunk = (len as usize).clamp(1, options.chunk_size);
                b.sized_body(len as usize, body);
                // After the body: setting a body resets the chunk size.
                b.max_chunk_size(chunk);
            }
            Status::RangeNotSatisfiable => {
                b.raw_header("Accept-Ranges", "bytes");
                if let Some(cr) = reply.content_range {
                    b.raw_header("Content-Range", cr);
                }
                b.sized_body(0, body);
            }
            Status::PreconditionFailed => {
                b.sized_body(0, body);
            }
            Status::NotModified => {}
        }
        b.finalize()
    }
}

impl<'r> Responder<'r, 'static> for MmapFile {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        let mmap = Mmap::of(req.rocket());
        Ok(self.build(req, mmap.options(), mmap))
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
pub(crate) fn validator_headers(
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

impl Mmap {
    /// Opens `path` through the cache, for a route that picks its own file.
    ///
    /// # Errors
    /// [`CacheError`] (which is itself a responder giving the matching status).
    pub async fn open(&self, path: impl AsRef<Path>) -> Result<MmapFile, CacheError> {
        let path = path.as_ref();
        let entry = self.cache().get(path).await?;
        Ok(MmapFile::new(entry).path_hint(path))
    }
}
