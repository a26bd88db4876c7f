//! The Rocket responder for an entry, [`MmapFile`]: what a route returns. It only
//! builds a [plan](crate::shell::plan) (headers read once, the RFC decision, the
//! validator policy: see "Validators and digests" there) and hands it to the one
//! [renderer](crate::shell::render), as the file server and listings do.
//!
//! Rate limits ([`MmapFile::limit_rate`], `limit_rate` in the configuration) pace the
//! bodies of 200 and 206; the other statuses have no body to pace.
//!
//! HEAD answers as GET without a `Range` (§14.2: range handling is defined for GET
//! only), and Rocket drops the body but keeps the exact `Content-Length`. Note that
//! Rocket's automatic HEAD handling turns the method into GET before a `#[get]` route
//! runs; [`crate::FileServer`] registers its own HEAD route, and [`crate::Mmap::fairing`]
//! records the original method before routing, so both see the real method.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocket::http::Status as RocketStatus;
use rocket::request::Request;
use rocket::response::{self, Responder, Response};
use rocket::{Ignite, Rocket, Sentinel};

use crate::engine::cache::CacheError;
use crate::engine::entry::Entry;
use crate::semantics::disposition::{content_disposition, DispositionType};
use crate::shell::options::ResponseOptions;
use crate::shell::plan::{Plan, Presentation};
use crate::shell::render::render;
use crate::shell::request::RequestHeaders;
use crate::shell::state::{missing_fairing, Mmap};

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
    presentation: Presentation,
}

impl MmapFile {
    /// Serves an entry (from [`Cache::get`](crate::cache::Cache::get) or [`Entry::from_bytes`]).
    pub fn new(entry: Arc<Entry>) -> MmapFile {
        MmapFile {
            entry,
            presentation: Presentation::default(),
        }
    }

    /// Paces this response's body at `bytes_per_second` (0: no limit), overriding the
    /// configured `limit_rate` (nginx's directive of the same name). See
    /// [`RateLimit`](crate::RateLimit).
    pub fn limit_rate(mut self, bytes_per_second: u64) -> MmapFile {
        self.presentation.limit_rate = Some(bytes_per_second);
        self
    }

    /// Sends the first `bytes` of the body at full speed before the rate limit applies,
    /// overriding the configured `limit_rate_after`.
    pub fn limit_rate_after(mut self, bytes: u64) -> MmapFile {
        self.presentation.limit_rate_after = Some(bytes);
        self
    }

    /// Overrides the entry's `Content-Type` (e.g. the type of `FILE` for `FILE.gz`).
    pub fn content_type(mut self, value: impl Into<Cow<'static, str>>) -> MmapFile {
        self.presentation.content_type = Some(value.into());
        self
    }

    /// Sends `Content-Encoding` with 200 and 206 (the entry holds encoded bytes; ranges
    /// and the ETag apply to them, RFC 9110 §8.4, §8.8.3).
    pub fn content_encoding(mut self, token: &'static str) -> MmapFile {
        self.presentation.content_encoding = Some(token);
        self
    }

    /// Serves `'static` bytes (e.g. `include_bytes!`) without copying them. The ETag
    /// is computed on every call; keep an `Arc<Entry>` to compute it once.
    pub fn from_static(content: &'static [u8], content_type: &'static str) -> MmapFile {
        MmapFile::new(Arc::new(Entry::from_static(content, content_type)))
    }

    /// The file's path, used to pick a `Cache-Control` by extension.
    pub fn path_hint(mut self, path: impl Into<PathBuf>) -> MmapFile {
        self.presentation.path = Some(path.into());
        self
    }

    /// Sends `Content-Disposition: attachment` (save as), with a UTF-8 file name
    /// (RFC 6266, RFC 8187).
    pub fn attachment(mut self, file_name: Option<&str>) -> MmapFile {
        self.presentation.disposition =
            Some(content_disposition(DispositionType::Attachment, file_name));
        self
    }

    /// Sends `Content-Disposition: inline`, with an optional UTF-8 file name.
    pub fn inline(mut self, file_name: Option<&str>) -> MmapFile {
        self.presentation.disposition =
            Some(content_disposition(DispositionType::Inline, file_name));
        self
    }

    /// Overrides the configured `Cache-Control`.
    pub fn cache_control(mut self, value: impl Into<String>) -> MmapFile {
        self.presentation.cache_control = Some(value.into());
        self
    }

    /// Adds a `Vary` header to every response of this representation.
    pub fn vary(mut self, value: &'static str) -> MmapFile {
        self.presentation.vary = Some(value);
        self
    }

    /// The entry.
    pub fn entry(&self) -> &Arc<Entry> {
        &self.entry
    }

    /// How the entry is presented (type, encoding, disposition, cache control, rate).
    pub(crate) fn presentation(&self) -> &Presentation {
        &self.presentation
    }

    /// Builds the response for `req` with `options`. The body reports to the counters
    /// of the [`Mmap`] state Rocket manages (bytes sent, bodies in flight, cuts).
    ///
    /// A request that needs the file's strong ETag (see the module docs) waits for its
    /// hash here, without holding up the async worker (`block_in_place` on Rocket's
    /// multi-threaded runtime; on a current-thread runtime the hash runs on the calling
    /// thread). If the file changed while it was hashed, the answer is a 503.
    pub fn to_response<'r>(&self, req: &Request<'_>, options: &ResponseOptions) -> Response<'r> {
        let headers = RequestHeaders::read(req, false);
        match Plan::in_place(&self.entry, &self.presentation, &headers, options) {
            Some(plan) => match Mmap::of(req.rocket()) {
                Some(mmap) => render(plan, mmap.cache()).send(req),
                None => no_state(),
            },
            None => Response::build()
                .status(RocketStatus::ServiceUnavailable)
                .finalize(),
        }
    }
}

impl<'r> Responder<'r, 'static> for MmapFile {
    /// See [`MmapFile::to_response`]; a file that changed while its tag was hashed is
    /// answered 503 through Rocket's catchers.
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        let Some(mmap) = Mmap::of(req.rocket()) else {
            return Ok(no_state());
        };
        let headers = RequestHeaders::read(req, false);
        match Plan::in_place(&self.entry, &self.presentation, &headers, mmap.options()) {
            Some(plan) => Ok(render(plan, mmap.cache()).send(req)),
            None => Err(RocketStatus::ServiceUnavailable),
        }
    }
}

/// Refuses to launch a Rocket that has a route returning an `MmapFile` without
/// [`Mmap::fairing`] (and so without the state it finds the cache and options in).
impl Sentinel for MmapFile {
    fn abort(rocket: &Rocket<Ignite>) -> bool {
        missing_fairing(rocket, "MmapFile")
    }
}

/// The answer when no [`Mmap`] state is managed (a `FileServer` mounted without the
/// fairing, or a responder built outside a route): 500, and an error logged that says
/// what to attach.
pub(crate) fn no_state<'r>() -> Response<'r> {
    rocket::error!(
        "rocket-mmap: no `Mmap` state is managed: attach `Mmap::fairing()` (or manage an \
         `Mmap` beside it)"
    );
    Response::build()
        .status(RocketStatus::InternalServerError)
        .finalize()
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
