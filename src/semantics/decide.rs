//! The whole of RFC 9110's decision for a GET or HEAD of one representation, as data:
//! from the request's headers and the representation's validators and length to a
//! [`Decision`] — 304, 412, 200, 206 (one part or several) or 416 — with nothing
//! written and no body built (the engine builds the body from the decision).
//!
//! Order (§13.2.2, then §14): preconditions decide 412 / 304 / go on; If-Range and the
//! method decide whether Range applies; the range plan decides 200 / 206 / 416.

use crate::semantics::date::HttpDate;
use crate::semantics::precondition::{evaluate, Conditionals, Method, Outcome, Validators};
use crate::semantics::range::{plan, ByteRange, IgnoredBecause, RangeLimits, RangePlan};

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

/// The status of an answer (the numeric codes this crate decides between).
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

impl Decision {
    /// The status this decision is answered with.
    pub fn status(&self) -> Status {
        match self {
            Decision::NotModified => Status::NotModified,
            Decision::PreconditionFailed => Status::PreconditionFailed,
            Decision::Unsatisfiable => Status::RangeNotSatisfiable,
            Decision::Full(_) => Status::Ok,
            Decision::Single(_) | Decision::Multi(_) => Status::PartialContent,
        }
    }
}

impl Decision {
    /// The `Content-Range` field value of this decision (§14.4), for a representation
    /// of `len` bytes: `bytes FIRST-LAST/LEN` for one range, `bytes */LEN` for 416
    /// (§15.5.17); none for the others (each part of a multipart body carries its
    /// own, §14.6). The one writer of the field.
    pub fn content_range(&self, len: u64) -> Option<String> {
        match self {
            Decision::Single(r) => Some(format!("bytes {}-{}/{len}", r.first, r.last)),
            Decision::Unsatisfiable => Some(format!("bytes */{len}")),
            _ => None,
        }
    }
}

/// A [`Decision`] with the `Last-Modified` it was decided with (see [`decide_at`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Decided {
    pub(crate) decision: Decision,
    /// The Last-Modified compared and sent: the representation's, or `now` when that
    /// lies in the future (§8.8.2.1).
    pub(crate) last_modified: Option<HttpDate>,
    /// The field value of that replacement, when one was made.
    pub(crate) last_modified_override: Option<String>,
}

/// The decision as every responder of the crate makes it (files, the public
/// `cache::respond`, streamed content): the effective Last-Modified at `now`
/// ([`effective_last_modified`]), then [`decide`] with it and `etag`.
pub(crate) fn decide_at(
    req: &ServeRequest<'_>,
    etag: Option<&crate::semantics::etag::EntityTag>,
    last_modified: Option<HttpDate>,
    length: Option<u64>,
    part_overhead: u64,
    limits: &RangeLimits,
    now: HttpDate,
) -> Decided {
    let (last_modified, last_modified_override) = effective_last_modified(last_modified, now);
    let validators = Validators {
        etag,
        last_modified,
    };
    Decided {
        decision: decide(req, &validators, length, part_overhead, limits, now),
        last_modified,
        last_modified_override,
    }
}

/// The Last-Modified to use at `now`: a date in the future is replaced by `now`
/// (§8.8.2.1); the second value is the replacement's field value, if one was made.
pub(crate) fn effective_last_modified(
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
/// `part_overhead` is [`crate::semantics::multipart::part_overhead`] for its content type.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_only_for_one_range_and_416() {
        let r = ByteRange {
            first: 10,
            last: 15,
        };
        assert_eq!(
            Decision::Single(r).content_range(36).as_deref(),
            Some("bytes 10-15/36")
        );
        assert_eq!(
            Decision::Unsatisfiable.content_range(36).as_deref(),
            Some("bytes */36")
        );
        for d in [
            Decision::NotModified,
            Decision::PreconditionFailed,
            Decision::Full(IgnoredBecause::NoHeader),
            Decision::Multi(vec![r, r]),
        ] {
            assert_eq!(d.content_range(36), None, "{d:?}");
        }
    }

    #[test]
    fn each_decision_has_its_status() {
        let r = ByteRange { first: 0, last: 1 };
        let cases = [
            (Decision::NotModified, 304),
            (Decision::PreconditionFailed, 412),
            (Decision::Unsatisfiable, 416),
            (Decision::Full(IgnoredBecause::NoHeader), 200),
            (Decision::Single(r), 206),
            (Decision::Multi(vec![r, r]), 206),
        ];
        for (decision, code) in cases {
            assert_eq!(decision.status().code(), code, "{decision:?}");
        }
    }
}
