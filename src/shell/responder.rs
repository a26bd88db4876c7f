//! The Rocket responder: reads `Range` and the `If-*` headers from the request, runs
//! the engine's [`respond`](crate::cache::respond), and writes the status, the headers and a sized body.
//!
//! Headers, by status (RFC 9110 §15):
//!
//! * 200 and 206: `ETag` (see "Validators and digests" below), `Last-Modified`,
//!   `Accept-Ranges: bytes`, `Content-Type` (the file's; `multipart/byteranges;
//!   boundary=…` for several ranges, each part carrying the file's), `Cache-Control`
//!   and `Content-Disposition` when configured, an exact `Content-Length` (the body is
//!   sized: never chunked), and `Content-Range` for a single range.
//! * 304: what a 200 would carry to let caches update (`ETag`, `Last-Modified`,
//!   `Cache-Control`, `Vary`; §15.4.5), no body and no `Content-Length`.
//! * 416: `Content-Range: bytes */LEN` (§15.5.17), `Accept-Ranges`, an empty body.
//! * 412: an empty body.
//! * Integrity digests, when the request asks (`Want-Repr-Digest` → `Repr-Digest`,
//!   `Want-Digest` → `Digest`; see [`crate::semantics::digest`]) or the server sends
//!   them unsolicited: on 200 and 206 (single and multipart: the digest of the whole
//!   representation, RFC 9530 §3), GET and HEAD. Never on 412 or 416 (no
//!   representation is sent), nor on 304: RFC 9110 §15.4.5 limits a 304 to the fields
//!   that update a cache, and the client's copy, matched by the strong ETag, already
//!   has the bytes the digest would describe.
//!
//! ## Validators and digests: one policy, decided once per request
//!
//! A file's strong ETag is computed after the file is first served, in the background
//! (see [`crate::cache::CacheConfig::max_background_hashes`]). Every file response — the file
//! server's fast path and its ordinary path, an `MmapFile` returned from your own
//! route, a listing — goes through [`ValidatorPolicy`], decided once per request from
//! its method and headers:
//!
//! * [`ValidatorPolicy::IfReady`] for a GET or HEAD with none of `Range`, `If-Match`,
//!   `If-None-Match` and `If-Range`: the answer goes out at once. If the tag is not
//!   known yet, the response carries **no `ETag`** (RFC 9110 §8.8.3 makes it a SHOULD)
//!   and no digest; `Last-Modified` is sent as always, and `If-Modified-Since` /
//!   `If-Unmodified-Since`, which compare dates, are answered as always.
//! * [`ValidatorPolicy::Await`] for everything else: the response waits for the
//!   strong tag. So every 206 (single or multipart) carries the strong tag, which lets
//!   a client or a slicing cache check that parts belong together, `If-Range` is
//!   compared strongly (§13.1.5: a tag of another version never gets a 206), and
//!   `If-Match` / `If-None-Match` compare against the real tag. A tag that cannot be
//!   computed because the file changed while it was hashed is never sent: the file
//!   server maps the file afresh and tries again (503 after three tries, as a load that
//!   kept changing); a route's `MmapFile` answers 503.
//!
//! No tag is ever sent that could describe another version: an entry's tag is set
//! once, and only after its hash proved the file unchanged (see `engine::tag`).
//!
//! A digest is computed once per entry ([`Entry::digest`]) and sent only with the
//! `ETag`. No response ever waits for one: a response sends the digests already
//! computed, and starts the missing ones in the background (on tokio's blocking pool)
//! for the responses after it — except that content of at most 256 KiB (under ~0.2 ms)
//! is hashed inline, and only when the response carries the tag. So a client that asks
//! for a digest of a large file by default (aria2 sends `Want-Digest`) gets its first
//! byte at once, and the digest from a later response on. Set `digest_at_load = true`
//! to have every digest (and the tag) from the first response, at the price of hashing
//! while loading.
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
use std::time::SystemTime;

use rocket::http::Status as RocketStatus;
use rocket::request::Request;
use rocket::response::{self, Responder, Response};

use crate::engine::body::SegmentBody;
use crate::engine::cache::CacheError;
use crate::engine::entry::Entry;
use crate::engine::pace::RateLimit;
use crate::engine::respond::{respond_typed, Reply};
use crate::semantics::decide::Status;
use crate::semantics::digest::DigestChoice;
use crate::semantics::disposition::{content_disposition, DispositionType};
use crate::semantics::precondition::Method;
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
    /// Set by the file server, whose routes are registered per method: the request's
    /// method is then the client's (see `RequestHeaders::read`).
    routed_method: bool,
    /// Set by the file server's one-`stat` path: copy a small body out of the mapping
    /// now (see [`PREFETCH_MAX`]).
    prefetch: bool,
    limit_rate: Option<u64>,
    limit_rate_after: Option<u64>,
}

/// The largest content whose digest an `MmapFile` computes inline, on the async worker,
/// when no one computed it before (SHA-512 of 256 KiB: ~0.4 ms here).
const INLINE_DIGEST_MAX: u64 = 256 << 10;

/// Whether a response waits for its entry's strong ETag. Decided once per request, by
/// [`ValidatorPolicy::for_request`], and nowhere else; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ValidatorPolicy {
    /// Wait for the strong tag before answering: requests whose answer depends on it
    /// (`Range`, `If-Match`, `If-None-Match`, `If-Range`), and methods other than GET
    /// and HEAD.
    Await,
    /// Answer now: with `ETag` (and digests) if the tag is known, without both if not.
    IfReady,
}

impl ValidatorPolicy {
    /// `IfReady` for a GET or HEAD with none of `Range`, `If-Match`, `If-None-Match`
    /// and `If-Range`; `Await` otherwise. The dates (`If-Modified-Since`,
    /// `If-Unmodified-Since`) need no tag.
    pub(crate) fn for_request(headers: &RequestHeaders<'_>) -> ValidatorPolicy {
        let plain = matches!(headers.method(), Method::Get | Method::Head)
            && !headers.has_range()
            && !headers.has_tag_conditional();
        if plain {
            ValidatorPolicy::IfReady
        } else {
            ValidatorPolicy::Await
        }
    }
}

/// The policy is [`ValidatorPolicy::Await`] and the entry's tag is not computed yet:
/// wait for it ([`Entry::strong_etag`]) and prepare again.
#[derive(Debug)]
pub(crate) struct TagPending;

/// A response decided but not yet built: the reply, whether it carries the ETag, and
/// the digest fields it carries (none without the ETag).
pub(crate) struct Prepared {
    reply: Reply,
    digests: DigestChoice,
    /// The entry's tag was known when the answer was decided: it is sent.
    etag: bool,
}

/// The largest body the file server copies out of the mapping while it builds the
/// response, so that one `stat` taken afterwards both revalidates the entry and
/// proves the copied bytes belong to it (instead of one `stat` before and one at the
/// end of the body). A copy of this size costs far less than a `stat` here (the
/// README's performance section has the figures); larger bodies keep both checks.
pub(crate) const PREFETCH_MAX: u64 = 8 * 1024;

impl MmapFile {
    /// Serves an entry (from [`crate::cache::Cache::get`] or [`Entry::from_bytes`]).
    pub fn new(entry: Arc<Entry>) -> MmapFile {
        MmapFile {
            entry,
            path: None,
            disposition: None,
            cache_control: None,
            vary: None,
            content_type: None,
            content_encoding: None,
            routed_method: false,
            prefetch: false,
            limit_rate: None,
            limit_rate_after: None,
        }
    }

    /// Paces this response's body at `bytes_per_second` (0: no limit), overriding the
    /// configured `limit_rate` (nginx's directive of the same name). See
    /// [`RateLimit`](crate::RateLimit).
    pub fn limit_rate(mut self, bytes_per_second: u64) -> MmapFile {
        self.limit_rate = Some(bytes_per_second);
        self
    }

    /// Sends the first `bytes` of the body at full speed before the rate limit applies,
    /// overriding the configured `limit_rate_after`.
    pub fn limit_rate_after(mut self, bytes: u64) -> MmapFile {
        self.limit_rate_after = Some(bytes);
        self
    }

    /// The rate limit of this response: its own settings over `options`'.
    fn rate_limit(&self, options: &ResponseOptions) -> RateLimit {
        RateLimit {
            bytes_per_second: self
                .limit_rate
                .unwrap_or(options.rate_limit.bytes_per_second),
            after: self.limit_rate_after.unwrap_or(options.rate_limit.after),
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

    /// Marks the request's method as the client's own (see `RequestHeaders::read`).
    pub(crate) fn routed_method(mut self) -> MmapFile {
        self.routed_method = true;
        self
    }

    /// Copies a body of at most [`PREFETCH_MAX`] bytes out of the mapping when the
    /// response is built, without the end-of-body check: the caller checks the file
    /// once, afterwards (see `Cache::confirm`).
    pub(crate) fn prefetch(mut self) -> MmapFile {
        self.prefetch = true;
        self
    }

    /// The entry.
    pub fn entry(&self) -> &Arc<Entry> {
        &self.entry
    }

    /// Builds the response for `req` with `options`. The body reports to the counters
    /// of the [`Mmap`] state Rocket manages (bytes sent, bodies in flight, cuts).
    ///
    /// A request that needs the file's strong ETag (see the module docs) waits for its
    /// hash here, without holding up the async worker (`block_in_place` on Rocket's
    /// multi-threaded runtime; on a current-thread runtime the hash runs on the calling
    /// thread). If the file changed while it was hashed, the answer is a 503.
    pub fn to_response<'r>(&self, req: &Request<'_>, options: &ResponseOptions) -> Response<'r> {
        match self.prepare_in_place(req, options) {
            Some(prepared) => self.build(req, prepared, options),
            None => Response::build()
                .status(RocketStatus::ServiceUnavailable)
                .finalize(),
        }
    }

    /// [`MmapFile::prepare`], waiting on this thread for a tag the policy needs;
    /// `None` if it cannot be computed (the file changed while it was hashed).
    fn prepare_in_place(&self, req: &Request<'_>, options: &ResponseOptions) -> Option<Prepared> {
        match self.prepare(req, options) {
            Ok(prepared) => Some(prepared),
            Err(TagPending) => {
                wait_in_place(&self.entry)?;
                self.prepare(req, options).ok()
            }
        }
    }

    /// [`MmapFile::prepare`], waiting for a tag the policy needs (hashed on the
    /// blocking pool, once per entry). `None` if it cannot be computed: the file changed
    /// while it was hashed, and the entry is poisoned (open the file again).
    pub(crate) async fn prepare_awaiting(
        &self,
        req: &Request<'_>,
        options: &ResponseOptions,
    ) -> Option<Prepared> {
        loop {
            match self.prepare(req, options) {
                Ok(prepared) => return Some(prepared),
                Err(TagPending) => {
                    self.entry.strong_etag().await?;
                }
            }
        }
    }

    /// Decides the answer to `req`: status, body, whether it carries the ETag, and
    /// which digests it carries. [`TagPending`] if the request's
    /// [`ValidatorPolicy`] is `Await` and the tag is not computed yet.
    pub(crate) fn prepare(
        &self,
        req: &Request<'_>,
        options: &ResponseOptions,
    ) -> Result<Prepared, TagPending> {
        let headers = RequestHeaders::read(req, self.routed_method);
        let policy = ValidatorPolicy::for_request(&headers);
        // Read once: the decision, the `ETag` header and the digests all follow it.
        let etag = self.entry.etag().is_some();
        if policy == ValidatorPolicy::Await && !etag {
            return Err(TagPending);
        }
        let sreq = headers.serve_request();
        let reply = respond_typed(
            &self.entry,
            self.content_type_value(),
            &sreq,
            &options.limits,
            SystemTime::now(),
        );
        // A response without the ETag sends no digest either.
        let digests = match reply.status {
            Status::Ok | Status::PartialContent if etag && !options.digests.is_empty() => {
                headers.digest_choice(&options.digests, options.digest_unsolicited)
            }
            _ => DigestChoice::default(),
        };
        Ok(Prepared {
            reply,
            digests,
            etag,
        })
    }

    fn content_type_value(&self) -> &Cow<'static, str> {
        self.content_type
            .as_ref()
            .unwrap_or(self.entry.content_type_value())
    }

    /// Whether [`MmapFile::build`] copies a body of `len` bytes out of the mapping
    /// (see [`MmapFile::prefetch`]).
    fn copies_out(&self, len: u64) -> bool {
        self.prefetch && len <= PREFETCH_MAX
    }

    /// Whether the response built from `prepared` holds content copied out of the
    /// mapping: a 200 or 206 with a non-empty body [`MmapFile::build`] copies out.
    /// Only a `stat` taken after that copy proves the bytes are one version (see
    /// `Cache::confirm`); other answers carry no content, and larger bodies check at
    /// their end.
    pub(crate) fn copies_content(&self, prepared: &Prepared) -> bool {
        let reply = &prepared.reply;
        matches!(reply.status, Status::Ok | Status::PartialContent)
            && !reply.body.is_empty()
            && self.copies_out(reply.body.len())
    }

    /// Builds the response of a prepared answer.
    pub(crate) fn build<'r>(
        &self,
        req: &Request<'_>,
        prepared: Prepared,
        options: &ResponseOptions,
    ) -> Response<'r> {
        let Prepared {
            reply,
            digests,
            etag,
        } = prepared;
        let entry = &*self.entry;
        let cache = Mmap::of(req.rocket()).cache();
        if !reply.parts.is_empty() {
            crate::shell::access_log::note_parts(req, &reply.parts);
        }
        let body = reply.body;
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
            let etag = entry.etag_header().filter(|_| etag);
            validator_headers(&mut b, etag, lm, cc, self.vary);
        }
        match reply.status {
            Status::Ok | Status::PartialContent => {
                b.raw_header("Accept-Ranges", "bytes");
                let ct: Cow<'static, str> = match reply.multipart_content_type {
                    Some(multipart) => multipart.into(),
                    // No copy for the common, interned types.
                    None => self.content_type_value().clone(),
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
                if !digests.is_empty() {
                    self.digest_headers(&mut b, digests);
                }
                let len = body.len();
                let chunk = (len as usize).clamp(1, options.chunk_size);
                // Copied here, on the worker, only when its pages are in memory;
                // otherwise streamed, and faulted in off the worker (`engine::fault_in`).
                let body = if self.copies_out(len) && body.is_resident() {
                    // A failed copy poisons the entry: the caller's check then
                    // discards this response.
                    body.copy_out()
                        .map_or_else(|_| SegmentBody::empty(), SegmentBody::single)
                } else {
                    body
                };
                let body = body.counted_in(cache).limit_rate(self.rate_limit(options));
                b.sized_body(len as usize, body);
                // After the body: setting a body resets the chunk size.
                b.max_chunk_size(chunk);
            }
            Status::RangeNotSatisfiable => {
                b.raw_header("Accept-Ranges", "bytes");
                if let Some(cr) = reply.content_range {
                    b.raw_header("Content-Range", cr);
                }
                b.sized_body(0, body.counted_in(cache));
            }
            Status::PreconditionFailed => {
                b.sized_body(0, body.counted_in(cache));
            }
            Status::NotModified => {}
        }
        b.finalize()
    }

    /// `Repr-Digest` and `Digest` with the digests that are known; an unknown one is
    /// computed inline for small content, otherwise started in the background for the
    /// next response (see the module docs). Called only for a response that carries
    /// the ETag.
    fn digest_headers(&self, b: &mut rocket::response::Builder<'_>, digests: DigestChoice) {
        let entry = &*self.entry;
        let value = |a| {
            let known = entry.ready_digest(a);
            if known.is_some() {
                known
            } else if entry.len() <= INLINE_DIGEST_MAX {
                entry.digest_blocking(a)
            } else {
                entry.start_digest(a);
                None
            }
        };
        if let Some(d) = digests.repr.and_then(value) {
            b.raw_header("Repr-Digest", d.repr_digest_value().to_owned());
        }
        if let Some(d) = digests.legacy.and_then(value) {
            b.raw_header("Digest", d.digest_value().to_owned());
        }
    }
}

impl<'r> Responder<'r, 'static> for MmapFile {
    /// See [`MmapFile::to_response`]; a file that changed while its tag was hashed is
    /// answered 503 through Rocket's catchers.
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        let options = Mmap::of(req.rocket()).options();
        match self.prepare_in_place(req, options) {
            Some(prepared) => Ok(self.build(req, prepared, options)),
            None => Err(RocketStatus::ServiceUnavailable),
        }
    }
}

/// Waits for `entry`'s strong tag from synchronous code on an async worker (Rocket's
/// responders): on a multi-threaded runtime, the worker hands its other tasks over
/// (`block_in_place`) and waits for the background hash; elsewhere, hashes on this
/// thread. `None` if the file changed while it was hashed.
fn wait_in_place(entry: &Entry) -> Option<&crate::semantics::etag::EntityTag> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| handle.block_on(entry.strong_etag()))
        }
        _ => entry.etag_blocking(),
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
