//! From an [`Entry`] and a request's headers to a status, the headers that depend on
//! the request, and a body — the whole of RFC 9110's decision for a GET or HEAD,
//! with no web framework involved.
//!
//! Order (§13.2.2, then §14): preconditions decide 412 / 304 / go on; If-Range and the
//! method decide whether Range applies; the range plan decides 200 / 206 / 416.

use std::time::SystemTime;

use crate::body::SegmentBody;
use crate::date::HttpDate;
use crate::entry::Entry;
use crate::multipart::{new_boundary, part_overhead, MultipartLayout};
use crate::precondition::{evaluate, Conditionals, Method, Outcome, Validators};
use crate::range::{plan, ByteRange, IgnoredBecause, RangeLimits, RangePlan};

/// The request headers that matter, borrowed from the request.
#[derive(Clone, Copy, Debug, Default)]
pub struct ServeRequest<'a> {
    /// The method (only GET and HEAD are served by the file server).
    pub method: Option<Method>,
    /// `If-*` headers. `conditionals.has_range` must be `range.is_some()`.
    pub conditionals: Conditionals<'a>,
    /// The `Range` field value. A request with several `Range` lines carries an
    /// invalid field: pass `Some("")`, which is ignored as invalid (§14.2).
    pub range: Option<&'a str>,
}

impl<'a> ServeRequest<'a> {
    /// A request with the given method and no conditional or range headers.
    pub fn new(method: Method) -> ServeRequest<'a> {
        ServeRequest {
            method: Some(method),
            ..ServeRequest::default()
        }
    }

    /// Sets the Range header (and `conditionals.has_range`).
    pub fn range(mut self, value: &'a str) -> Self {
        self.range = Some(value);
        self.conditionals.has_range = true;
        self
    }
}

/// The status of a [`Reply`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// 200: the whole content.
    Ok,
    /// 206: one range or `multipart/byteranges`.
    PartialContent,
    /// 304: the client's copy is current; no body (§15.4.5).
    NotModified,
    /// 412: a precondition failed (§15.5.13).
    PreconditionFailed,
    /// 416: no requested range is satisfiable (§15.5.17).
    RangeNotSatisfiable,
}

impl Status {
    /// The numeric code.
    pub fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::PartialContent => 206,
            Status::NotModified => 304,
            Status::PreconditionFailed => 412,
            Status::RangeNotSatisfiable => 416,
        }
    }

    /// Whether the response carries the representation's validators and caching
    /// headers (`ETag`, `Last-Modified`, `Cache-Control`, …): 200, 206 and 304
    /// (§15.4.5: a 304 sends what a 200 would).
    pub fn carries_validators(self) -> bool {
        matches!(
            self,
            Status::Ok | Status::PartialContent | Status::NotModified
        )
    }
}

/// The answer to one request for an entry.
#[derive(Debug)]
pub struct Reply {
    /// The status.
    pub status: Status,
    /// `Content-Range` for 206 single-part (`bytes FIRST-LAST/LEN`) and 416
    /// (`bytes */LEN`).
    pub content_range: Option<String>,
    /// For multipart responses, the `Content-Type` replacing the entry's
    /// (`multipart/byteranges; boundary=…`).
    pub multipart_content_type: Option<String>,
    /// The body; its length is the exact `Content-Length`. Empty for 304/412/416.
    /// For HEAD it is what GET would send; the framework drops the bytes.
    pub body: SegmentBody,
    /// Why a Range header was not applied (`None` when it was, or for 304/412).
    pub range_ignored: Option<IgnoredBecause>,
    /// Set when the entry's modification time lies in the future: the
    /// `Last-Modified` value to send instead of the entry's (the response date,
    /// §8.8.2.1).
    pub last_modified_override: Option<String>,
}

/// What to answer, decided before any body exists (see [`decide`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// 304 Not Modified.
    NotModified,
    /// 412 Precondition Failed.
    PreconditionFailed,
    /// 200 with the whole representation; the reason the Range (if any) was not used.
    Full(IgnoredBecause),
    /// 206 with one range.
    Single(ByteRange),
    /// 206 multipart/byteranges.
    Multi(Vec<ByteRange>),
    /// 416 Range Not Satisfiable.
    Unsatisfiable,
}

/// The Last-Modified to use at `now`: a date in the future is replaced by `now`
/// (§8.8.2.1); the second value is the replacement's field value, if one was made.
pub fn effective_last_modified(
    last_modified: Option<HttpDate>,
    now: HttpDate,
) -> (Option<HttpDate>, Option<String>) {
    match last_modified {
        Some(lm) if lm > now => (Some(now), Some(now.to_imf_fixdate())),
        lm => (lm, None),
    }
}

/// Decides the answer to `req` for a representation with `validators` and `length`
/// (`None` for a stream of unknown length, which never gets a range): preconditions
/// (§13.2.2), then whether Range applies, then the range plan (§14).
/// `part_overhead` is [`crate::multipart::part_overhead`] for its content type.
pub fn decide(
    req: &ServeRequest<'_>,
    validators: &Validators<'_>,
    length: Option<u64>,
    part_overhead: u64,
    limits: &RangeLimits,
    now: HttpDate,
) -> Decision {
    let method = req.method.unwrap_or(Method::Get);
    match evaluate(method, &req.conditionals, validators, now) {
        Outcome::PreconditionFailed => Decision::PreconditionFailed,
        Outcome::NotModified => Decision::NotModified,
        Outcome::Proceed(Err(why)) => Decision::Full(why),
        Outcome::Proceed(Ok(())) => {
            let Some(len) = length else {
                return Decision::Full(IgnoredBecause::UnknownLength);
            };
            match plan(req.range, len, limits, part_overhead) {
                RangePlan::Full(why) => Decision::Full(why),
                RangePlan::Unsatisfiable => Decision::Unsatisfiable,
                RangePlan::Single(r) => Decision::Single(r),
                RangePlan::Multi(parts) => Decision::Multi(parts),
            }
        }
    }
}

/// Decides the answer to `req` for `entry`, at time `now` (which decides whether
/// Last-Modified is a strong validator for If-Range, and replaces a Last-Modified in
/// the future), and lays out the body.
pub fn respond(
    entry: &Entry,
    req: &ServeRequest<'_>,
    limits: &RangeLimits,
    now: SystemTime,
) -> Reply {
    respond_typed(entry, entry.content_type(), req, limits, now)
}

/// [`respond`] with the media type of the representation given explicitly: a
/// precompressed variant (`FILE.gz`) carries the type of `FILE`, in multipart parts too.
pub fn respond_typed(
    entry: &Entry,
    content_type: &str,
    req: &ServeRequest<'_>,
    limits: &RangeLimits,
    now: SystemTime,
) -> Reply {
    let now = HttpDate::from_system_time(now).unwrap_or(HttpDate::UNIX_EPOCH);
    let (last_modified, last_modified_override) =
        effective_last_modified(entry.last_modified(), now);
    let validators = Validators {
        etag: Some(entry.etag()),
        last_modified,
    };
    let len = entry.len();
    let overhead = part_overhead(content_type.len(), len);
    let reply = |status, content_range, multipart_content_type, body, range_ignored| Reply {
        status,
        content_range,
        multipart_content_type,
        body,
        range_ignored,
        last_modified_override: last_modified_override.clone(),
    };
    match decide(req, &validators, Some(len), overhead, limits, now) {
        Decision::PreconditionFailed => reply(
            Status::PreconditionFailed,
            None,
            None,
            SegmentBody::empty(),
            None,
        ),
        Decision::NotModified => reply(Status::NotModified, None, None, SegmentBody::empty(), None),
        Decision::Full(why) => reply(
            Status::Ok,
            None,
            None,
            body_of(entry, vec![entry.content().clone()]),
            Some(why),
        ),
        Decision::Unsatisfiable => reply(
            Status::RangeNotSatisfiable,
            Some(format!("bytes */{len}")),
            None,
            SegmentBody::empty(),
            None,
        ),
        Decision::Single(r) => reply(
            Status::PartialContent,
            Some(format!("bytes {}-{}/{len}", r.first, r.last)),
            None,
            body_of(entry, vec![entry.content().slice(r.to_usize_range())]),
            None,
        ),
        Decision::Multi(parts) => {
            let ct = (!content_type.is_empty()).then_some(content_type);
            let layout = MultipartLayout::new(&parts, len, ct, &new_boundary());
            reply(
                Status::PartialContent,
                None,
                Some(layout.content_type()),
                body_of(entry, layout.segments(entry.content())),
                None,
            )
        }
    }
}

fn body_of(entry: &Entry, segments: Vec<bytes::Bytes>) -> SegmentBody {
    SegmentBody::new(segments).with_watch(entry.watch().cloned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::precondition::Conditionals;
    use std::time::{Duration, UNIX_EPOCH};
    use tokio::io::AsyncReadExt;

    fn entry() -> Entry {
        Entry::from_static(b"0123456789abcdefghijklmnopqrstuvwxyz", "text/plain")
            .last_modified_at(UNIX_EPOCH + Duration::from_secs(784_111_777))
    }

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(2_000_000_000)
    }

    async fn read(mut b: SegmentBody) -> Vec<u8> {
        let mut v = Vec::new();
        b.read_to_end(&mut v).await.unwrap();
        v
    }

    #[tokio::test]
    async fn plain_get_is_200_full() {
        let e = entry();
        let r = respond(
            &e,
            &ServeRequest::new(Method::Get),
            &RangeLimits::default(),
            now(),
        );
        assert_eq!(r.status, Status::Ok);
        assert_eq!(r.body.len(), 36);
        assert_eq!(r.range_ignored, Some(IgnoredBecause::NoHeader));
        assert_eq!(read(r.body).await, e.content().as_ref());
    }

    #[tokio::test]
    async fn single_range_is_206_with_content_range() {
        let e = entry();
        let req = ServeRequest::new(Method::Get).range("bytes=10-15");
        let r = respond(&e, &req, &RangeLimits::default(), now());
        assert_eq!(r.status, Status::PartialContent);
        assert_eq!(r.content_range.as_deref(), Some("bytes 10-15/36"));
        assert_eq!(read(r.body).await, b"abcdef");
    }

    #[tokio::test]
    async fn multi_range_is_multipart() {
        let e = Entry::from_bytes(vec![b'x'; 10_000], "application/octet-stream");
        let req = ServeRequest::new(Method::Get).range("bytes=0-1,9000-9001");
        let r = respond(&e, &req, &RangeLimits::default(), now());
        assert_eq!(r.status, Status::PartialContent);
        let ct = r.multipart_content_type.clone().unwrap();
        assert!(ct.starts_with("multipart/byteranges; boundary="));
        let len = r.body.len();
        let body = read(r.body).await;
        assert_eq!(body.len() as u64, len);
        let text = String::from_utf8(body).unwrap();
        assert!(text.contains("Content-Range: bytes 0-1/10000\r\n"));
        assert!(text.contains("Content-Range: bytes 9000-9001/10000\r\n"));
        assert!(text.contains("Content-Type: application/octet-stream\r\n"));
    }

    #[test]
    fn unsatisfiable_is_416_with_star_range() {
        let e = entry();
        let req = ServeRequest::new(Method::Get).range("bytes=100-");
        let r = respond(&e, &req, &RangeLimits::default(), now());
        assert_eq!(r.status, Status::RangeNotSatisfiable);
        assert_eq!(r.content_range.as_deref(), Some("bytes */36"));
        assert!(r.body.is_empty());
    }

    #[test]
    fn head_ignores_range() {
        let e = entry();
        let req = ServeRequest::new(Method::Head).range("bytes=0-1");
        let r = respond(&e, &req, &RangeLimits::default(), now());
        assert_eq!(r.status, Status::Ok);
        assert_eq!(r.body.len(), 36);
    }

    #[test]
    fn if_none_match_gives_304_and_if_match_412() {
        let e = entry();
        let tag = e.etag_header().to_owned();
        let mut req = ServeRequest::new(Method::Get);
        req.conditionals = Conditionals {
            if_none_match: Some(&tag),
            ..Conditionals::default()
        };
        let r = respond(&e, &req, &RangeLimits::default(), now());
        assert_eq!(r.status, Status::NotModified);
        assert!(r.body.is_empty());
        req.conditionals = Conditionals {
            if_match: Some("\"nope\""),
            ..Conditionals::default()
        };
        let r = respond(&e, &req, &RangeLimits::default(), now());
        assert_eq!(r.status, Status::PreconditionFailed);
    }

    #[test]
    fn if_range_mismatch_sends_whole() {
        let e = entry();
        let mut req = ServeRequest::new(Method::Get).range("bytes=0-1");
        req.conditionals.if_range = Some("\"old\"");
        let r = respond(&e, &req, &RangeLimits::default(), now());
        assert_eq!(r.status, Status::Ok);
        assert_eq!(r.range_ignored, Some(IgnoredBecause::IfRangeFailed));
        let tag = e.etag_header().to_owned();
        req.conditionals.if_range = Some(&tag);
        let r = respond(&e, &req, &RangeLimits::default(), now());
        assert_eq!(r.status, Status::PartialContent);
    }

    #[test]
    fn seed_article_example() {
        // Range: bytes=440000-450000 on a 44012654-byte file.
        let e = Entry::from_bytes(vec![0u8; 44_012_654], "audio/mpeg");
        let req = ServeRequest::new(Method::Get).range("bytes=440000-450000");
        let r = respond(&e, &req, &RangeLimits::default(), now());
        assert_eq!(r.status, Status::PartialContent);
        assert_eq!(
            r.content_range.as_deref(),
            Some("bytes 440000-450000/44012654")
        );
        assert_eq!(r.body.len(), 10_001);
    }

    #[test]
    fn future_last_modified_is_replaced_by_the_response_date() {
        let e = Entry::from_static(b"x", "text/plain")
            .last_modified_at(now() + Duration::from_secs(86_400));
        let r = respond(
            &e,
            &ServeRequest::new(Method::Get),
            &RangeLimits::default(),
            now(),
        );
        assert_eq!(
            r.last_modified_override.as_deref(),
            Some(
                HttpDate::from_system_time(now())
                    .unwrap()
                    .to_imf_fixdate()
                    .as_str()
            )
        );
        let past = entry();
        let r = respond(
            &past,
            &ServeRequest::new(Method::Get),
            &RangeLimits::default(),
            now(),
        );
        assert_eq!(r.last_modified_override, None);
    }

    #[test]
    fn empty_entry_with_range_is_200_empty() {
        let e = Entry::from_static(b"", "text/plain");
        let req = ServeRequest::new(Method::Get).range("bytes=0-");
        let r = respond(&e, &req, &RangeLimits::default(), now());
        assert_eq!(r.status, Status::Ok);
        assert!(r.body.is_empty());
        assert_eq!(r.range_ignored, Some(IgnoredBecause::EmptyRepresentation));
    }
}
