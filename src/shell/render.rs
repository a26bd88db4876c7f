//! The one renderer of file responses: [`render`] turns a [`Plan`] into a Rocket
//! `Response`, without side effects (everything that waits, hashes or copies happened
//! while planning), and returns with it the record of what it serves.
//!
//! Headers, by status (RFC 9110 §15):
//!
//! * 200 and 206: `ETag` (see `shell::plan`, "Validators and digests"),
//!   `Last-Modified`, `Accept-Ranges: bytes`, `Content-Type` (the file's;
//!   `multipart/byteranges; boundary=…` for several ranges, each part carrying the
//!   file's), `Cache-Control` and `Content-Disposition` when configured, an exact
//!   `Content-Length` (the body is sized: never chunked), and `Content-Range` for a
//!   single range.
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
//! * Whatever the status: the plan's extra fields (a listing's).
//!
//! Rate limits pace the bodies of 200 and 206; the other statuses have no body to pace.

use std::borrow::Cow;

use rocket::http::Status as RocketStatus;
use rocket::request::Request;
use rocket::response::{Builder, Response};

use crate::engine::body::SegmentBody;
use crate::engine::cache::Cache;
use crate::semantics::decide::Decision;
use crate::shell::plan::Plan;
use crate::shell::served::Served;

/// A response rendered, and the record of what it serves. Hand it to Rocket through
/// [`Rendered::send`], which records it; a response thrown away is never recorded.
pub(crate) struct Rendered<'r> {
    response: Response<'r>,
    served: Served,
    /// The body holds content copied out of the mapping: see [`Plan::copied`].
    pub(crate) copied: bool,
}

impl<'r> Rendered<'r> {
    /// The response, with its record written: call it for the response that is sent.
    pub(crate) fn send(self, req: &Request<'_>) -> Response<'r> {
        self.served.record(req);
        self.response
    }
}

/// The response of `plan`; its body reports to `cache`'s counters (bytes sent, bodies
/// in flight, cuts).
pub(crate) fn render<'r>(plan: Plan<'_>, cache: &Cache) -> Rendered<'r> {
    let Plan {
        entry,
        presentation,
        decision,
        last_modified_override,
        etag,
        cache_control,
        repr_digest,
        legacy_digest,
        body,
        multipart_type,
        copied,
        rate_limit,
        chunk_size,
        extra_headers,
    } = plan;
    let served = Served::of_decision(&decision);
    let status = decision.status();
    let mut b = Response::build();
    b.status(RocketStatus::new(status.code()));
    if status.carries_validators() {
        let lm = last_modified_override.or_else(|| entry.last_modified_header().map(str::to_owned));
        validator_headers(&mut b, etag, lm, cache_control, presentation.vary);
    }
    match &decision {
        Decision::Full(_) | Decision::Single(_) | Decision::Multi(_) => {
            range_headers(&mut b, &decision, entry.len());
            let ct: Cow<'static, str> = match multipart_type {
                Some(multipart) => multipart.into(),
                // No copy for the common, interned types.
                None => presentation.content_type_of(entry).clone(),
            };
            b.raw_header("Content-Type", ct);
            if let Some(enc) = presentation.content_encoding {
                b.raw_header("Content-Encoding", enc);
            }
            if let Some(d) = &presentation.disposition {
                b.raw_header("Content-Disposition", d.clone());
            }
            if let Some(d) = repr_digest {
                b.raw_header("Repr-Digest", d.repr_digest_value().to_owned());
            }
            if let Some(d) = legacy_digest {
                b.raw_header("Digest", d.digest_value().to_owned());
            }
            let len = body.len();
            let chunk = (len as usize).clamp(1, chunk_size);
            let body = body.counted_in(cache).limit_rate(rate_limit);
            b.sized_body(len as usize, body);
            // After the body: setting a body resets the chunk size.
            b.max_chunk_size(chunk);
        }
        Decision::Unsatisfiable => {
            range_headers(&mut b, &decision, entry.len());
            b.sized_body(0, SegmentBody::empty().counted_in(cache));
        }
        Decision::PreconditionFailed => {
            b.sized_body(0, SegmentBody::empty().counted_in(cache));
        }
        Decision::NotModified => {}
    }
    for (name, value) in extra_headers {
        b.raw_header(name, value);
    }
    Rendered {
        response: b.finalize(),
        served,
        copied,
    }
}

/// `ETag`, `Last-Modified`, `Cache-Control` and `Vary`: what 200, 206 and 304 carry.
pub(crate) fn validator_headers(
    b: &mut Builder<'_>,
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

/// `Accept-Ranges: bytes` (RFC 9110 §14.3), and `Content-Range` (§14.4) where the
/// decision has one: `bytes FIRST-LAST/LEN` for a single range, `bytes */LEN` for 416.
/// `len` is the representation's length ([`Decision::content_range`] writes the
/// value). For file responses and [`crate::StreamedFile`].
pub(crate) fn range_headers(b: &mut Builder<'_>, decision: &Decision, len: u64) {
    b.raw_header("Accept-Ranges", "bytes");
    if let Some(value) = decision.content_range(len) {
        b.raw_header("Content-Range", value);
    }
}
