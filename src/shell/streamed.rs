//! A responder for content that is not in memory (generated, fetched, decompressed):
//! the same conditional and single-range rules over an `AsyncRead`.

use std::borrow::Cow;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::SystemTime;

use rocket::http::Status as RocketStatus;
use rocket::request::Request;
use rocket::response::{self, Responder, Response};
use rocket::{Ignite, Rocket, Sentinel};
use tokio::io::{AsyncRead, AsyncSeek, ReadBuf};

use crate::engine::body::SegmentBody;
use crate::semantics::date::HttpDate;
use crate::semantics::decide::{decide_at, Decided, Decision};
use crate::semantics::etag::EntityTag;
use crate::semantics::range::{IgnoredBecause, RangeLimits};
use crate::shell::render::{range_headers, validator_headers};
use crate::shell::request::RequestHeaders;
use crate::shell::responder::no_state;
use crate::shell::served::Served;
use crate::shell::state::{missing_fairing, Mmap};

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
/// use rocket_mmap::{EntityTag, StreamedFile};
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
        let Some(mmap) = Mmap::of(req.rocket()) else {
            return Ok(no_state());
        };
        let options = mmap.options();
        let headers = RequestHeaders::read(req, false);
        let sreq = headers.serve_request();
        let now = HttpDate::from_system_time(SystemTime::now()).unwrap_or(HttpDate::UNIX_EPOCH);
        // One part at most: a stream cannot go back for a second range.
        let limits = RangeLimits {
            max_parts: 1,
            ..options.limits
        };
        let Decided {
            decision,
            last_modified: lm,
            ..
        } = decide_at(
            &sreq,
            self.etag.as_ref(),
            self.last_modified.and_then(HttpDate::from_system_time),
            self.size,
            0,
            &limits,
            now,
        );
        // `max_parts = 1` never plans several parts; should it, send the whole.
        let decision = match decision {
            Decision::Multi(_) => Decision::Full(IgnoredBecause::TooManyParts),
            d => d,
        };
        let status = decision.status();
        if Served::wanted(req) {
            Served::of_decision(&decision).record(req);
        }
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
                range_headers(&mut b, &decision, self.size.unwrap_or(0));
                b.sized_body(0, SegmentBody::empty());
            }
            Decision::Full(_) => {
                if let Some(len) = self.size {
                    range_headers(&mut b, &decision, len);
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
                range_headers(&mut b, &decision, self.size.unwrap_or(0));
                b.raw_header("Content-Type", self.content_type.into_owned());
                b.sized_body(r.len() as usize, Window::new(self.reader, r.first, r.len()));
                b.max_chunk_size(chunk);
            }
            Decision::Multi(_) => {}
        }
        Ok(b.finalize())
    }
}

/// Refuses to launch a Rocket that has a route returning a `StreamedFile` without
/// [`Mmap::fairing`].
impl<R> Sentinel for StreamedFile<R> {
    fn abort(rocket: &Rocket<Ignite>) -> bool {
        missing_fairing(rocket, "StreamedFile")
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
