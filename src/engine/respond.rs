//! From an [`Entry`] and a request to a [`Reply`]: runs the pure
//! [`decide`](crate::semantics::decide::decide) and lays out the body as slices of the
//! entry's content (one slice, or multipart/byteranges segments, RFC 9110 §14.6).

use std::time::SystemTime;

use crate::engine::body::SegmentBody;
use crate::engine::entry::Entry;
use crate::semantics::date::HttpDate;
use crate::semantics::decide::{decide_at, Decision, ServeRequest, Status};
use crate::semantics::etag::EntityTag;
use crate::semantics::multipart::{new_boundary, part_overhead, MultipartLayout};
use crate::semantics::range::{ByteRange, IgnoredBecause, RangeLimits};

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
    /// The parts of a `multipart/byteranges` body, in the order sent (empty for every
    /// other reply; a single range is in `content_range`). For access logs.
    pub parts: Vec<ByteRange>,
}

/// Decides the answer to `req` for `entry`, at time `now` (which decides whether
/// Last-Modified is a strong validator for If-Range, and replaces a Last-Modified in
/// the future), and lays out the body.
///
/// The decision uses the entry's tag as it is now ([`Entry::etag`]). A file entry
/// whose background hash has not run has none: a request with `Range`, `If-Match`,
/// `If-None-Match` or `If-Range` would then be decided as for a representation without
/// a tag, so wait for it first ([`Entry::strong_etag`]), as the Rocket shell does
/// (its validator policy); a plain GET or HEAD needs no tag.
///
/// ```rust
/// use std::time::SystemTime;
/// use rocket_mmap::cache::{respond, Entry};
/// use rocket_mmap::semantics::decide::{ServeRequest, Status};
/// use rocket_mmap::semantics::precondition::Method;
/// use rocket_mmap::semantics::range::RangeLimits;
///
/// let entry = Entry::from_static(b"Hello, world!\n", "text/plain");
/// let request = ServeRequest::new(Method::Get).range("bytes=7-11");
/// let reply = respond(&entry, &request, &RangeLimits::default(), SystemTime::now());
/// assert_eq!(reply.status, Status::PartialContent);
/// assert_eq!(reply.content_range.as_deref(), Some("bytes 7-11/14"));
/// assert_eq!(reply.body.segments(), [&b"world"[..]]);
/// ```
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
    let Answer {
        decision,
        last_modified_override,
        body,
        multipart_type: multipart_content_type,
    } = answer(entry, content_type, entry.etag(), req, limits, now);
    let status = decision.status();
    let content_range = decision.content_range(entry.len());
    let (range_ignored, parts) = match decision {
        Decision::Full(why) => (Some(why), Vec::new()),
        Decision::Multi(parts) => (None, parts),
        _ => (None, Vec::new()),
    };
    Reply {
        status,
        content_range,
        multipart_content_type,
        body,
        range_ignored,
        last_modified_override,
        parts,
    }
}

/// An entry's answer, decided and laid out: what [`respond_typed`] returns as a
/// [`Reply`] and the Rocket shell's plans render, made by one function ([`answer`]) so
/// that the two never differ.
pub(crate) struct Answer {
    pub(crate) decision: Decision,
    /// The `Last-Modified` to send instead of the entry's, which lies in the future.
    pub(crate) last_modified_override: Option<String>,
    /// The body of a 200 or 206 (empty for the others), see [`lay_out`].
    pub(crate) body: SegmentBody,
    /// `multipart/byteranges; boundary=…` for several ranges.
    pub(crate) multipart_type: Option<String>,
}

/// Decides the answer to `req` for `entry` presented as `content_type`, with `etag`
/// as its tag (the entry's, read once by the caller), at `now`, and lays out the body.
pub(crate) fn answer(
    entry: &Entry,
    content_type: &str,
    etag: Option<&EntityTag>,
    req: &ServeRequest<'_>,
    limits: &RangeLimits,
    now: HttpDate,
) -> Answer {
    let len = entry.len();
    let overhead = part_overhead(content_type.len(), len);
    let decided = decide_at(
        req,
        etag,
        entry.last_modified(),
        Some(len),
        overhead,
        limits,
        now,
    );
    let (body, multipart_type) = lay_out(entry, content_type, &decided.decision);
    Answer {
        decision: decided.decision,
        last_modified_override: decided.last_modified_override,
        body,
        multipart_type,
    }
}

/// The body of a 200 or 206 as slices of the entry's content (one slice, or the
/// `multipart/byteranges` segments, RFC 9110 §14.6), and the multipart `Content-Type`
/// replacing the entry's; an empty body for the other decisions. The one body layout,
/// through [`answer`].
pub(crate) fn lay_out(
    entry: &Entry,
    content_type: &str,
    decision: &Decision,
) -> (SegmentBody, Option<String>) {
    let content = entry.content();
    let (segments, multipart) = match decision {
        Decision::Full(_) => (vec![content.clone()], None),
        Decision::Single(r) => (vec![content.slice(r.to_usize_range())], None),
        Decision::Multi(parts) => {
            let ct = (!content_type.is_empty()).then_some(content_type);
            let layout = MultipartLayout::new(parts, entry.len(), ct, &new_boundary());
            (layout.segments(content), Some(layout.content_type()))
        }
        Decision::NotModified | Decision::PreconditionFailed | Decision::Unsatisfiable => {
            return (SegmentBody::empty(), None)
        }
    };
    let body = SegmentBody::new(segments).with_watch(entry.watch().cloned());
    (body, multipart)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::semantics::precondition::{Conditionals, Method};
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
    fn multipart_reply_lists_its_parts_in_request_order() {
        let e = Entry::from_bytes(vec![b'x'; 10_000], "application/octet-stream");
        let req = ServeRequest::new(Method::Get).range("bytes=9000-9001,0-1");
        let r = respond(&e, &req, &RangeLimits::default(), now());
        let parts: Vec<(u64, u64)> = r.parts.iter().map(|p| (p.first, p.last)).collect();
        assert_eq!(parts, vec![(9000, 9001), (0, 1)]);
        let single = respond(
            &e,
            &ServeRequest::new(Method::Get).range("bytes=0-1"),
            &RangeLimits::default(),
            now(),
        );
        assert!(
            single.parts.is_empty(),
            "a single range is in Content-Range"
        );
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
        let tag = e.etag_header().unwrap().to_owned();
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
        let tag = e.etag_header().unwrap().to_owned();
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
