//! Reading the request: the method the client sent (before Rocket's HEAD → GET
//! routing), and the `Range`, `If-*` and `Want-*Digest` headers, borrowed from the
//! request, with list headers sent in several lines joined (RFC 9110 §5.3).

use std::borrow::Cow;

use rocket::http::Method as RocketMethod;
use rocket::request::Request;

use crate::semantics::decide::ServeRequest;
use crate::semantics::digest::{negotiate_digests, DigestAlgorithm, DigestChoice};
use crate::semantics::precondition::{Conditionals, Method};

/// The headers of a request that the core needs, with list headers that came in
/// several lines joined (§5.3).
pub(crate) struct RequestHeaders<'r> {
    method: Method,
    if_match: Option<Cow<'r, str>>,
    if_none_match: Option<Cow<'r, str>>,
    if_modified_since: Option<&'r str>,
    if_unmodified_since: Option<&'r str>,
    if_range: Option<&'r str>,
    range: Option<&'r str>,
    want_repr_digest: Option<Cow<'r, str>>,
    want_digest: Option<Cow<'r, str>>,
}

impl<'r> RequestHeaders<'r> {
    /// Reads the headers. `routed` says the route was registered for the request's own
    /// method (the file server registers GET and HEAD routes), so `req.method()` is the
    /// method the client sent; otherwise a GET may be a HEAD that Rocket re-routed.
    pub(crate) fn read(req: &'r Request<'_>, routed: bool) -> RequestHeaders<'r> {
        let method = if routed {
            req.method()
        } else {
            original_method(req)
        };
        let method = match method {
            RocketMethod::Get => Method::Get,
            RocketMethod::Head => Method::Head,
            _ => Method::Other,
        };
        // One pass over the names finds which of our headers are present; the keyed
        // lookups (each hashes the name) then run only for those — none on a plain GET.
        let found = first_values(req, &WANTED);
        let has = |i: usize| found[i].is_some();
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
            // Dictionaries and lists: several lines are one field (§5.3, RFC 8941 §4.2).
            want_repr_digest: has(6).then(|| list_header(req, WANTED[6])).flatten(),
            want_digest: has(7).then(|| list_header(req, WANTED[7])).flatten(),
        }
    }

    /// The digest fields to send, by the request's `Want-Repr-Digest` and `Want-Digest`.
    pub(crate) fn digest_choice(
        &self,
        enabled: &[DigestAlgorithm],
        unsolicited: bool,
    ) -> DigestChoice {
        negotiate_digests(
            self.want_repr_digest.as_deref(),
            self.want_digest.as_deref(),
            enabled,
            unsolicited,
        )
    }

    /// The method the client sent.
    pub(crate) fn method(&self) -> Method {
        self.method
    }

    /// Whether the request has a `Range` field.
    pub(crate) fn has_range(&self) -> bool {
        self.range.is_some()
    }

    /// Whether the request has a condition on entity tags: `If-Match`,
    /// `If-None-Match`, or an `If-Range` that holds an entity tag. An `If-Range` date
    /// is compared with `Last-Modified` alone (RFC 9110 §13.1.5: it matches only a
    /// date that is a strong validator, §8.8.2.2), and a value that is neither never
    /// matches: neither needs the tag.
    pub(crate) fn has_tag_conditional(&self) -> bool {
        let if_range_tag = self.if_range.is_some_and(|v| {
            let v = v.trim_start_matches([' ', '\t']);
            v.starts_with('"') || v.starts_with("W/")
        });
        self.if_match.is_some() || self.if_none_match.is_some() || if_range_tag
    }

    pub(crate) fn serve_request(&self) -> ServeRequest<'_> {
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
    match req.method() {
        // Only a GET can be a re-routed HEAD; the fairing recorded those.
        RocketMethod::Get => req.local_cache(|| OriginalMethod(RocketMethod::Get)).0,
        other => other,
    }
}

/// The request's method before routing, recorded by the `Mmap` fairing.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OriginalMethod(pub(crate) RocketMethod);

/// The request headers the core reads, in the order of `RequestHeaders::read`'s bits.
const WANTED: [&str; 8] = [
    "If-Match",
    "If-None-Match",
    "If-Modified-Since",
    "If-Unmodified-Since",
    "If-Range",
    "Range",
    "Want-Repr-Digest",
    "Want-Digest",
];

/// The first value of each of the fields `names`, found in one pass over the
/// request's headers (a keyed lookup hashes the name each time; a request has a
/// handful of headers): `None` for a field not sent. For the fields this module
/// reads, and for the access log's line.
pub(crate) fn first_values<'r, const N: usize>(
    req: &'r Request<'_>,
    names: &[&str; N],
) -> [Option<&'r str>; N] {
    let mut found = [None; N];
    for h in req.headers().iter() {
        let name = h.name.as_str();
        for (slot, wanted) in found.iter_mut().zip(names) {
            if slot.is_none() && name.len() == wanted.len() && name.eq_ignore_ascii_case(wanted) {
                *slot = match h.value {
                    // `iter` lends the map's own strings (always `Borrowed`).
                    Cow::Borrowed(value) => Some(value),
                    Cow::Owned(_) => req.headers().get_one(wanted),
                };
            }
        }
    }
    found
}

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
