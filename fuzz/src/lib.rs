//! Invariant checks shared by the cargo-fuzz targets and the corpus replay test.
//! Not part of the public API.
//!
//! Each function decodes an arbitrary byte string into calls of the core and panics
//! (through `assert!`) when a result breaks one of the rules the core documents. The
//! fuzz targets in `fuzz/fuzz_targets/` call them with libFuzzer's input, and
//! `tests/fuzz_corpus.rs` replays the committed corpus through them, so every seed is
//! also a regression test.
//!
//! # Input encodings
//!
//! [`check_range`]: a 12-byte prefix, then the `Range` field value (UTF-8):
//!
//! | byte  | meaning |
//! |-------|---------|
//! | 0     | length mode (`& 7`): 0–4 small (`raw % 301`), 5 medium (`raw % 65_537`), 6 `raw`, 7 `u64::MAX - raw % 256` |
//! | 1..9  | `raw`, a big-endian `u64` |
//! | 9     | `max_parts = 1 + b % 80` |
//! | 10    | `merge_gap = b % 201` |
//! | 11    | content-type length `b % 64` (0: no `Content-Type` in the parts) |
//! | 12..  | the `Range` header value |
//!
//! [`check_conditionals`]: fields separated by `0xFF` bytes, in this order:
//! `If-Match`, `If-None-Match`, `If-Modified-Since`, `If-Unmodified-Since`, `If-Range`,
//! the current entity tag (`"x"`, `W/"x"` or a bare opaque tag; empty: none), the method
//! (first byte `% 3`: GET, HEAD, other; missing: GET), `has_range` (first byte `& 1`;
//! missing: true), the current Last-Modified (an HTTP date; missing or invalid: none)
//! and the response time `now` (an HTTP date; missing or invalid: 2033-05-18).
//! A missing or empty header field is an absent header; the evaluation is repeated with
//! empty fields as present-but-empty headers. Fields that are not UTF-8 are decoded
//! lossily (U+FFFD), as a shell that accepted such a header would.
//!
//! [`check_want_digest`]: a flags byte, then fields separated by `0xFF` bytes:
//! `Want-Repr-Digest`, `Want-Digest`, and raw digest bytes to format.
//!
//! | flags bits | meaning |
//! |---|---|
//! | 0–2 | the enabled algorithms: 0 none, 1 sha-256, 2 sha-512, 3 sha-256 then sha-512, 4 sha-512 then sha-256, 5–7 as 3 |
//! | 3 | unsolicited `Repr-Digest` |
//! | 4 | `Want-Repr-Digest` absent |
//! | 5 | `Want-Digest` absent |

use std::borrow::Cow;

use bytes::Bytes;
use tokio::io::ReadBuf;

use rocket_mmap::cache::SegmentBody;
use rocket_mmap::semantics::date::HttpDate;
use rocket_mmap::semantics::etag::{list_matches, Comparison, EntityTag};
use rocket_mmap::semantics::multipart::{self, MultipartLayout};
use rocket_mmap::semantics::precondition::{self, Conditionals, Method, Outcome, Validators};
use rocket_mmap::semantics::range::{
    self, ByteRange, IgnoredBecause, ParseError, RangeLimits, RangePlan,
};

/// Length of the binary prefix [`check_range`] reads before the header value.
pub const RANGE_PREFIX_LEN: usize = 12;

/// The largest representation for which [`check_range`] builds the multipart body.
const MAX_BODY_CHECK: u64 = 1 << 16;

/// Decodes the representation length from the mode byte and the raw `u64`.
fn decode_length(mode: u8, raw: u64) -> u64 {
    match mode & 7 {
        0..=4 => raw % 301,
        5 => raw % 65_537,
        6 => raw,
        _ => u64::MAX - raw % 256,
    }
}

/// The reference plan: what RFC 9110 §14 and the documented rules of
/// [`range::plan`] ask for, computed independently of the core's merging code.
fn reference_plan(
    specs: &[range::RangeSpec],
    length: u64,
    limits: &RangeLimits,
    overhead: u64,
) -> RangePlan {
    if length == 0 {
        return RangePlan::Full(IgnoredBecause::EmptyRepresentation);
    }
    let mut resolved: Vec<(ByteRange, usize)> = specs
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.resolve(length).map(|r| (r, i)))
        .collect();
    if resolved.is_empty() {
        return RangePlan::Unsatisfiable;
    }
    // Connected components of "overlaps, touches or lies within `merge_gap` bytes".
    resolved.sort_by_key(|&(r, _)| r.first);
    let mut groups: Vec<(ByteRange, usize)> = Vec::new();
    for (r, i) in resolved {
        match groups.last_mut() {
            Some((g, gi))
                if u128::from(r.first) <= u128::from(g.last) + 1 + u128::from(limits.merge_gap) =>
            {
                g.last = g.last.max(r.last);
                *gi = (*gi).min(i);
            }
            _ => groups.push((r, i)),
        }
    }
    groups.sort_by_key(|&(_, i)| i);
    let parts: Vec<ByteRange> = groups.into_iter().map(|(r, _)| r).collect();
    if parts.len() == 1 {
        return RangePlan::Single(parts[0]);
    }
    if parts.len() > limits.max_parts {
        return RangePlan::Full(IgnoredBecause::TooManyParts);
    }
    let content: u128 = parts.iter().map(|r| u128::from(r.len())).sum();
    if content + u128::from(overhead) * parts.len() as u128 >= u128::from(length) {
        return RangePlan::Full(IgnoredBecause::LargerThanWhole);
    }
    RangePlan::Multi(parts)
}

/// Writes specs back as a canonical `Range` value.
fn render_specs(specs: &[range::RangeSpec]) -> String {
    let mut out = String::from("bytes=");
    for (i, spec) in specs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match *spec {
            range::RangeSpec::Int { first, last } => {
                out.push_str(&format!("{first}-"));
                if let Some(last) = last {
                    out.push_str(&last.to_string());
                }
            }
            range::RangeSpec::Suffix(n) => out.push_str(&format!("-{n}")),
        }
    }
    out
}

fn assert_in_bounds(r: &ByteRange, length: u64, header: &str) {
    assert!(
        r.first <= r.last && r.last < length,
        "range {r:?} outside 0..{length} for {header:?}"
    );
}

/// Fuzz entry point for `Range` parsing and planning (RFC 9110 §14) and the
/// multipart/byteranges layout (§14.6). See the module docs for the input encoding.
///
/// # Panics
/// When the core breaks one of its documented invariants.
pub fn check_range(data: &[u8]) {
    if data.len() < RANGE_PREFIX_LEN {
        return;
    }
    let (prefix, header) = data.split_at(RANGE_PREFIX_LEN);
    let Ok(header) = std::str::from_utf8(header) else {
        return;
    };
    let raw = u64::from_be_bytes(prefix[1..9].try_into().expect("8 bytes"));
    let length = decode_length(prefix[0], raw);
    let limits = RangeLimits {
        max_parts: 1 + usize::from(prefix[9] % 80),
        merge_gap: u64::from(prefix[10] % 201),
    };
    let ct_len = usize::from(prefix[11] % 64);
    let overhead = multipart::part_overhead(ct_len, length);

    let parsed = range::parse(header);
    let plan = range::plan(Some(header), length, &limits, overhead);

    // The plan without a header is always the whole content.
    assert_eq!(
        range::plan(None, length, &limits, overhead),
        RangePlan::Full(IgnoredBecause::NoHeader)
    );

    let specs = match parsed {
        // §14.2: an unknown unit MUST be ignored; checked before the length.
        Err(ParseError::UnknownUnit) => {
            assert_eq!(
                plan,
                RangePlan::Full(IgnoredBecause::UnknownUnit),
                "{header:?}"
            );
            return;
        }
        // Invalid syntax is ignored, also for an empty representation.
        Err(ParseError::Invalid) => {
            assert_eq!(plan, RangePlan::Full(IgnoredBecause::Invalid), "{header:?}");
            return;
        }
        Ok(specs) => specs,
    };
    assert!(!specs.is_empty(), "parse gave no spec for {header:?}");
    assert!(
        !matches!(
            plan,
            RangePlan::Full(IgnoredBecause::UnknownUnit | IgnoredBecause::Invalid)
        ),
        "parse accepted {header:?} but plan said {plan:?}"
    );
    // The specs, written back in canonical form, parse to the same specs.
    assert_eq!(
        range::parse(&render_specs(&specs)).as_ref(),
        Ok(&specs),
        "{header:?}"
    );
    // The unit is case-insensitive and parsing is stable under a case change of it.
    let eq = header.find('=').expect("a parsed header has '='");
    let upper = format!("{}{}", header[..eq].to_ascii_uppercase(), &header[eq..]);
    assert_eq!(range::parse(&upper).as_ref(), Ok(&specs), "{header:?}");

    match &plan {
        RangePlan::Full(IgnoredBecause::EmptyRepresentation) => {
            assert_eq!(length, 0, "{header:?}");
        }
        RangePlan::Full(IgnoredBecause::TooManyParts | IgnoredBecause::LargerThanWhole) => {
            assert!(length > 0);
        }
        RangePlan::Full(other) => panic!("plan gave Full({other:?}) for {header:?}"),
        RangePlan::Unsatisfiable => {
            assert!(length > 0, "416 for an empty representation");
            assert!(
                specs.iter().all(|s| s.resolve(length).is_none()),
                "416 although a spec of {header:?} resolves against {length}"
            );
        }
        RangePlan::Single(r) => assert_in_bounds(r, length, header),
        RangePlan::Multi(parts) => {
            assert!(
                (2..=limits.max_parts).contains(&parts.len()),
                "{} parts, limit {}",
                parts.len(),
                limits.max_parts
            );
            for r in parts {
                assert_in_bounds(r, length, header);
            }
            let mut sorted = parts.clone();
            sorted.sort_by_key(|r| r.first);
            for w in sorted.windows(2) {
                // Disjoint and more than `merge_gap` bytes apart.
                assert!(
                    u128::from(w[1].first)
                        > u128::from(w[0].last) + 1 + u128::from(limits.merge_gap),
                    "parts {:?} and {:?} should have been merged (gap {})",
                    w[0],
                    w[1],
                    limits.merge_gap
                );
            }
            let content: u128 = parts.iter().map(|r| u128::from(r.len())).sum();
            assert!(
                content < u128::from(length),
                "parts cover {content} of {length} bytes"
            );
        }
    }
    if length > 0 {
        // Every spec that resolves lies inside one part of a partial response.
        if let RangePlan::Single(_) | RangePlan::Multi(_) = &plan {
            let parts: &[ByteRange] = match &plan {
                RangePlan::Single(r) => std::slice::from_ref(r),
                RangePlan::Multi(v) => v,
                _ => unreachable!(),
            };
            for s in &specs {
                if let Some(r) = s.resolve(length) {
                    assert!(
                        parts.iter().any(|p| p.first <= r.first && r.last <= p.last),
                        "{r:?} of {header:?} is in no part of {parts:?}"
                    );
                }
            }
        }
    }
    let expected = reference_plan(&specs, length, &limits, overhead);
    assert_eq!(
        plan, expected,
        "plan of {header:?} for {length} bytes, {limits:?}"
    );

    if let RangePlan::Multi(parts) = &plan {
        if length <= MAX_BODY_CHECK {
            check_multipart_body(parts, length, ct_len, prefix[11]);
        }
    }
}

/// Builds the multipart body of `parts` and checks it byte by byte against the layout
/// the module documents, its announced length, and the `SegmentBody` reading it.
fn check_multipart_body(parts: &[ByteRange], length: u64, ct_len: usize, seed: u8) {
    let content: Bytes = (0..length)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect::<Vec<u8>>()
        .into();
    let content_type = "application/octet-stream; charset=binary; x=yyyyyyyyyyyyyyyyyyyyyyyy";
    let content_type = (ct_len > 0).then(|| &content_type[..ct_len]);
    let boundary = multipart::new_boundary();
    let layout = MultipartLayout::new(parts, length, content_type, &boundary);
    assert_eq!(layout.part_count(), parts.len());
    assert_eq!(layout.boundary(), boundary);
    // The plan's promise: the multipart body is never larger than the whole.
    assert!(
        layout.content_length() < length,
        "multipart body of {} bytes for a {length}-byte representation",
        layout.content_length()
    );
    let segments = layout.segments(&content);
    assert_eq!(segments.len(), 2 * parts.len() + 1);
    let body: Vec<u8> = segments.concat();
    assert_eq!(body.len() as u64, layout.content_length());

    // Walk the body along the documented wire format.
    let mut pos = 0usize;
    for r in parts {
        let mut header = format!("\r\n--{boundary}\r\n");
        if let Some(ct) = content_type {
            header.push_str(&format!("Content-Type: {ct}\r\n"));
        }
        header.push_str(&format!(
            "Content-Range: bytes {}-{}/{length}\r\n\r\n",
            r.first, r.last
        ));
        assert!(
            body[pos..].starts_with(header.as_bytes()),
            "part header for {r:?} not found at {pos}"
        );
        pos += header.len();
        let slice = &content[r.to_usize_range()];
        assert_eq!(&body[pos..pos + slice.len()], slice, "content of {r:?}");
        pos += slice.len();
    }
    assert_eq!(&body[pos..], format!("\r\n--{boundary}--\r\n").as_bytes());

    // The body reader yields exactly the same bytes, in chunks of an odd size.
    let mut reader = SegmentBody::new(segments);
    assert_eq!(reader.len(), layout.content_length());
    let chunk = 1 + usize::from(seed % 97);
    let mut out = Vec::with_capacity(body.len());
    let mut buf = vec![0u8; chunk];
    loop {
        let mut rb = ReadBuf::new(&mut buf);
        let n = reader.read_into(&mut rb).expect("no poison flag");
        assert_eq!(n, rb.filled().len());
        if n == 0 {
            break;
        }
        out.extend_from_slice(rb.filled());
    }
    assert_eq!(out, body);
    assert_eq!(reader.remaining(), 0);
}

/// Checks one header value as an entity tag, an HTTP date and an entity-tag list.
fn check_field(s: &str, current: Option<&EntityTag>) {
    if let Ok(tag) = EntityTag::parse(s) {
        let text = tag.to_string();
        assert_eq!(EntityTag::parse(&text).as_ref(), Ok(&tag), "{s:?}");
        assert_eq!(text, s, "a parsed tag prints as it was written");
        assert_eq!(tag.strong_eq(&tag), !tag.is_weak());
        assert!(tag.weak_eq(&tag));
        assert_eq!(EntityTag::new(tag.is_weak(), tag.tag()).as_ref(), Ok(&tag));
        // A one-element list holding the tag matches it (weakly always, strongly
        // exactly when the tag is strong), also surrounded by garbage.
        assert!(list_matches(s, Some(&tag), Comparison::Weak));
        assert_eq!(
            list_matches(s, Some(&tag), Comparison::Strong),
            !tag.is_weak()
        );
        let list = format!(" , junk\"  ,{s} ,");
        assert!(
            list_matches(&list, Some(&tag), Comparison::Weak),
            "{list:?}"
        );
        if let Some(cur) = current {
            assert_eq!(
                list_matches(s, Some(cur), Comparison::Weak),
                tag.weak_eq(cur)
            );
            assert_eq!(
                list_matches(s, Some(cur), Comparison::Strong),
                tag.strong_eq(cur)
            );
        }
    }
    if let Some(d) = HttpDate::parse(s) {
        let text = d.to_imf_fixdate();
        assert_eq!(text.len(), 29, "{text:?}");
        assert_eq!(HttpDate::parse(&text), Some(d), "{s:?} -> {text:?}");
        assert_eq!(HttpDate::from_unix_secs(d.unix_secs()), Some(d));
        assert_eq!(HttpDate::from_system_time(d.to_system_time()), Some(d));
    }
    for cur in [current, None] {
        let strong = list_matches(s, cur, Comparison::Strong);
        let weak = list_matches(s, cur, Comparison::Weak);
        assert!(
            !strong || weak,
            "strong match without weak match: {s:?} {cur:?}"
        );
        if cur.is_none() {
            assert!(!weak, "{s:?} matched no representation");
        }
    }
    if let Some(cur) = current {
        // `*` matches any current representation; the tag itself in a list matches it.
        assert!(list_matches(" * ", Some(cur), Comparison::Strong));
        let list = format!("{s}, {cur}");
        if !s.contains('"') {
            // Without a quote, no element of `s` is a tag: only `cur` can match.
            assert!(list_matches(&list, Some(cur), Comparison::Weak), "{list:?}");
            assert_eq!(
                list_matches(&list, Some(cur), Comparison::Strong),
                !cur.is_weak(),
                "{list:?}"
            );
        }
    }
}

/// RFC 9110 §13.2.2 restated from the RFC, header by header, as the oracle of
/// [`precondition::evaluate`].
fn reference_evaluate(
    method: Method,
    c: &Conditionals<'_>,
    v: &Validators<'_>,
    now: HttpDate,
) -> Outcome {
    let date = |s: Option<&str>| s.and_then(HttpDate::parse);
    // 1. If-Match (strong); 2. else If-Unmodified-Since (valid date, known Last-Modified).
    if let Some(list) = c.if_match {
        if !list_matches(list, v.etag, Comparison::Strong) {
            return Outcome::PreconditionFailed;
        }
    } else if let (Some(d), Some(lm)) = (date(c.if_unmodified_since), v.last_modified) {
        if lm > d {
            return Outcome::PreconditionFailed;
        }
    }
    // 3. If-None-Match (weak); 4. else If-Modified-Since, GET and HEAD only.
    if let Some(list) = c.if_none_match {
        if list_matches(list, v.etag, Comparison::Weak) {
            return match method {
                Method::Get | Method::Head => Outcome::NotModified,
                Method::Other => Outcome::PreconditionFailed,
            };
        }
    } else if method != Method::Other {
        if let (Some(d), Some(lm)) = (date(c.if_modified_since), v.last_modified) {
            if lm <= d {
                return Outcome::NotModified;
            }
        }
    }
    // 5. Range: GET only; If-Range, when present, must hold (strong tag, or a date
    // equal to a Last-Modified that is a strong validator).
    if !c.has_range {
        return Outcome::Proceed(Err(IgnoredBecause::NoHeader));
    }
    if method != Method::Get {
        return Outcome::Proceed(Err(IgnoredBecause::NotGet));
    }
    if let Some(value) = c.if_range {
        let value = value.trim_matches([' ', '\t']);
        let holds = if value.starts_with('"') || value.starts_with("W/") {
            matches!((EntityTag::parse(value), v.etag), (Ok(t), Some(cur)) if t.strong_eq(cur))
        } else {
            matches!((HttpDate::parse(value), v.last_modified), (Some(d), Some(lm)) if d == lm && lm < now)
        };
        if !holds {
            return Outcome::Proceed(Err(IgnoredBecause::IfRangeFailed));
        }
    }
    Outcome::Proceed(Ok(()))
}

/// Checks the §13.2.2 outcome for one method against the rules that hold whatever the
/// header values.
fn check_outcome(method: Method, c: &Conditionals<'_>, v: &Validators<'_>, out: Outcome) {
    let ctx = || format!("{method:?} {c:?} {v:?} -> {out:?}");
    match out {
        Outcome::NotModified => {
            assert_ne!(method, Method::Other, "{}", ctx());
            assert!(
                c.if_none_match.is_some() || c.if_modified_since.is_some(),
                "304 without If-None-Match or If-Modified-Since: {}",
                ctx()
            );
        }
        Outcome::PreconditionFailed => {
            assert!(
                c.if_match.is_some()
                    || c.if_unmodified_since.is_some()
                    || (method == Method::Other && c.if_none_match.is_some()),
                "412 without a header that may fail: {}",
                ctx()
            );
        }
        Outcome::Proceed(Ok(())) => {
            assert!(method == Method::Get && c.has_range, "{}", ctx());
        }
        Outcome::Proceed(Err(reason)) => {
            let allowed: &[IgnoredBecause] = if !c.has_range {
                &[IgnoredBecause::NoHeader]
            } else if method != Method::Get {
                &[IgnoredBecause::NotGet]
            } else {
                &[IgnoredBecause::IfRangeFailed]
            };
            assert!(allowed.contains(&reason), "{}", ctx());
            if reason == IgnoredBecause::IfRangeFailed {
                assert!(c.if_range.is_some(), "{}", ctx());
            }
        }
    }
    // If-Match with no current representation can never hold (§13.1.1).
    if c.if_match.is_some() && v.etag.is_none() {
        assert_eq!(out, Outcome::PreconditionFailed, "{}", ctx());
    }
    // No conditional header at all: always go on.
    if c.if_match.is_none()
        && c.if_none_match.is_none()
        && c.if_modified_since.is_none()
        && c.if_unmodified_since.is_none()
    {
        assert!(matches!(out, Outcome::Proceed(_)), "{}", ctx());
    }
}

/// Fuzz entry point for entity tags, HTTP dates and precondition evaluation
/// (RFC 9110 §8.8.3, §5.6.7, §13). See the module docs for the input encoding.
///
/// # Panics
/// When the core breaks one of its documented invariants.
pub fn check_conditionals(data: &[u8]) {
    let fields: Vec<Cow<'_, str>> = data
        .split(|&b| b == 0xFF)
        .map(String::from_utf8_lossy)
        .collect();
    let field = |i: usize| fields.get(i).map(|f| &**f);
    let header = |i: usize| field(i).filter(|f| !f.is_empty());

    let current = field(5).filter(|f| !f.is_empty()).and_then(|f| {
        EntityTag::parse(f)
            .or_else(|_| EntityTag::new(false, f))
            .ok()
    });
    let method_byte = field(6).and_then(|f| f.bytes().next());
    let has_range = field(7)
        .and_then(|f| f.bytes().next())
        .is_none_or(|b| b & 1 == 1);
    let last_modified = field(8).and_then(HttpDate::parse);
    let now = field(9)
        .and_then(HttpDate::parse)
        .unwrap_or_else(|| HttpDate::from_unix_secs(2_000_000_000).expect("in range"));

    for f in &fields {
        check_field(f, current.as_ref());
    }

    let validators = Validators {
        etag: current.as_ref(),
        last_modified,
    };
    let absent_empty = Conditionals {
        if_match: header(0),
        if_none_match: header(1),
        if_modified_since: header(2),
        if_unmodified_since: header(3),
        if_range: header(4),
        has_range,
    };
    let present_empty = Conditionals {
        if_match: field(0),
        if_none_match: field(1),
        if_modified_since: field(2),
        if_unmodified_since: field(3),
        if_range: field(4),
        has_range,
    };
    for c in [absent_empty, present_empty] {
        let eval = |m| precondition::evaluate(m, &c, &validators, now);
        let (get, head, other) = (eval(Method::Get), eval(Method::Head), eval(Method::Other));
        check_outcome(Method::Get, &c, &validators, get);
        check_outcome(Method::Head, &c, &validators, head);
        check_outcome(Method::Other, &c, &validators, other);
        for (m, out) in [
            (Method::Get, get),
            (Method::Head, head),
            (Method::Other, other),
        ] {
            assert_eq!(
                out,
                reference_evaluate(m, &c, &validators, now),
                "{m:?} {c:?} {validators:?}"
            );
        }
        // GET and HEAD agree on 304 and 412; only range handling differs.
        match (get, head) {
            (Outcome::Proceed(_), Outcome::Proceed(_)) => {}
            (g, h) => assert_eq!(g, h, "{c:?}"),
        }
        // Other methods: every GET 412 is a 412; a GET 304 from If-None-Match is a 412,
        // one from If-Modified-Since (ignored for other methods) is not a failure.
        match get {
            Outcome::PreconditionFailed => assert_eq!(other, Outcome::PreconditionFailed),
            Outcome::NotModified if c.if_none_match.is_some() => {
                assert_eq!(other, Outcome::PreconditionFailed, "{c:?}")
            }
            Outcome::NotModified => {
                assert!(matches!(other, Outcome::Proceed(_)), "{c:?}")
            }
            Outcome::Proceed(_) => {
                assert!(!matches!(other, Outcome::NotModified));
            }
        }
        // The method byte picks which evaluation a server would use.
        let method = match method_byte.map(|b| b % 3) {
            None | Some(0) => Method::Get,
            Some(1) => Method::Head,
            _ => Method::Other,
        };
        let chosen = eval(method);
        assert_eq!(chosen, [get, head, other][method as usize]);
        // Without a Range header, If-Range changes nothing (§13.1.5).
        let no_range = Conditionals {
            has_range: false,
            ..c
        };
        let plain = precondition::evaluate(method, &no_range, &validators, now);
        let no_if_range = Conditionals {
            if_range: None,
            ..no_range
        };
        assert_eq!(
            plain,
            precondition::evaluate(method, &no_if_range, &validators, now)
        );
    }
}

/// Percent-decodes one path segment as Rocket does before routing (`%XX` → byte, the
/// result read as UTF-8 with invalid sequences replaced). Malformed escapes stay as
/// they are.
fn percent_decode(seg: &[u8]) -> String {
    String::from_utf8_lossy(&percent_decode_bytes(seg)).into_owned()
}

/// Percent-decodes one path segment to bytes, as the file server does for segments
/// that are not UTF-8. Malformed escapes stay as they are.
fn percent_decode_bytes(seg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(seg.len());
    let mut i = 0;
    while i < seg.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if seg[i] == b'%' && i + 2 < seg.len() {
            if let (Some(h), Some(l)) = (hex(seg[i + 1]), hex(seg[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(seg[i]);
        i += 1;
    }
    out
}

/// Request paths: the first byte chooses whether dot-files are allowed, the rest is a
/// raw (percent-encoded) URI path. It is split on `/`, each segment percent-decoded,
/// and [`rocket_mmap::semantics::path::sanitize`] must then either refuse it or give a relative path
/// that stays below any root: only normal components, no hidden ones unless allowed,
/// no separator, NUL or control character inside a component, within the length and
/// depth bounds, and made of exactly the non-empty decoded segments. The same holds
/// for `sanitize_bytes` over the segments decoded to bytes (names that are not UTF-8),
/// which agrees with `sanitize` whenever every segment is UTF-8.
pub fn check_path(data: &[u8]) {
    check_path_bytes(data);
    use rocket_mmap::semantics::path::{sanitize, MAX_DEPTH, MAX_PATH_LEN};
    use std::path::{Component, Path};

    let Some((&flags, raw)) = data.split_first() else {
        return;
    };
    let allow_dotfiles = flags & 1 == 1;
    let decoded: Vec<String> = raw.split(|&b| b == b'/').map(percent_decode).collect();
    let Ok(rel) = sanitize(decoded.iter().map(String::as_str), allow_dotfiles) else {
        return;
    };
    let segments: Vec<&str> = decoded
        .iter()
        .map(String::as_str)
        .filter(|s| !s.is_empty())
        .collect();
    assert!(rel.is_relative(), "{rel:?} is not relative");
    let comps: Vec<_> = rel.components().collect();
    assert_eq!(comps.len(), segments.len(), "{rel:?} vs {segments:?}");
    for (c, seg) in comps.iter().zip(&segments) {
        let Component::Normal(name) = c else {
            panic!("{rel:?} has a non-normal component {c:?}");
        };
        let name = name.to_str().expect("UTF-8 component");
        assert_eq!(name, *seg);
        assert!(!name.contains(['/', '\\']) && !name.chars().any(char::is_control));
        assert!(allow_dotfiles || !name.starts_with('.'), "hidden {name:?}");
        assert!(name != "." && name != "..");
    }
    assert!(comps.len() <= MAX_DEPTH);
    assert!(rel.as_os_str().len() <= MAX_PATH_LEN);
    let root = Path::new("/srv/www");
    assert!(root.join(&rel).starts_with(root));
}

/// Checks the `Want-Repr-Digest` / `Want-Digest` parsers, the choice of an algorithm
/// and the field values (see the module docs for the input encoding): never a panic; a
/// choice is enabled, weighted above 0, weighted highest, and the earliest enabled on a
/// tie; names are case-insensitive; a later `=0` member excludes an algorithm; the
/// field values decode back to the digest bytes.
pub fn check_want_digest(data: &[u8]) {
    use base64::Engine as _;
    use rocket_mmap::semantics::digest::{
        digest_value, negotiate_digests, parse_want_digest, parse_want_repr_digest,
        repr_digest_value, DigestAlgorithm, Preferences,
    };
    use DigestAlgorithm::{Sha256, Sha512};

    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let enabled: &[DigestAlgorithm] = match flags & 7 {
        0 => &[],
        1 => &[Sha256],
        2 => &[Sha512],
        4 => &[Sha512, Sha256],
        _ => &[Sha256, Sha512],
    };
    let unsolicited = flags & 8 != 0;
    let mut fields = rest.split(|&b| b == 0xFF);
    let repr_field = String::from_utf8_lossy(fields.next().unwrap_or_default()).into_owned();
    let legacy_field = String::from_utf8_lossy(fields.next().unwrap_or_default()).into_owned();
    let raw = fields.next().unwrap_or_default();

    let check_choice = |prefs: &Preferences, what: &str| {
        for a in DigestAlgorithm::ALL {
            if let Some(w) = prefs.weight(a) {
                assert!(w <= 1000, "{what}: weight {w} of {a}");
            }
        }
        let chosen = prefs.choose(enabled);
        match chosen {
            Some(c) => {
                let pos = enabled
                    .iter()
                    .position(|&a| a == c)
                    .expect("an enabled algorithm");
                let w = prefs.weight(c).expect("a named algorithm");
                assert!(w > 0, "{what}: chose {c} although its weight is 0");
                for (i, &o) in enabled.iter().enumerate() {
                    let ow = prefs.weight(o).unwrap_or(0);
                    assert!(ow <= w, "{what}: {o} weighs more than the chosen {c}");
                    assert!(
                        i >= pos || ow < w,
                        "{what}: the tie goes to the earlier {o}"
                    );
                }
            }
            None => {
                for &a in enabled {
                    assert!(
                        prefs.weight(a).unwrap_or(0) == 0,
                        "{what}: {a} is acceptable but nothing was chosen"
                    );
                }
            }
        }
        chosen
    };

    let repr = parse_want_repr_digest(&repr_field);
    for a in DigestAlgorithm::ALL {
        if let Some(w) = repr.weight(a) {
            assert_eq!(w % 100, 0, "Want-Repr-Digest weights are integers 0..=10");
        }
    }
    let repr_choice = check_choice(&repr, "Want-Repr-Digest");
    let legacy = parse_want_digest(&legacy_field);
    let legacy_choice = check_choice(&legacy, "Want-Digest");

    // Case does not matter, in names nor in `q`.
    for f in [&repr_field, &legacy_field] {
        assert_eq!(
            parse_want_repr_digest(&f.to_ascii_uppercase()),
            parse_want_repr_digest(f)
        );
        assert_eq!(
            parse_want_repr_digest(&f.to_ascii_lowercase()),
            parse_want_repr_digest(f)
        );
        assert_eq!(
            parse_want_digest(&f.to_ascii_uppercase()),
            parse_want_digest(f)
        );
        assert_eq!(
            parse_want_digest(&f.to_ascii_lowercase()),
            parse_want_digest(f)
        );
    }
    // A later member with weight 0 excludes an algorithm (outside strings and inner
    // lists, where a comma does not start a member).
    if !repr_field.contains(['"', '(', ')', '\\']) {
        let p = parse_want_repr_digest(&format!("{repr_field}, sha-256=0"));
        assert_eq!(p.weight(Sha256), Some(0));
        assert_eq!(p.weight(Sha512), repr.weight(Sha512));
    }
    let p = parse_want_digest(&format!("{legacy_field}, SHA-512;q=0"));
    assert_eq!(
        (p.weight(Sha512), p.weight(Sha256)),
        (Some(0), legacy.weight(Sha256))
    );

    // The response's choice is each field's own.
    let want_repr = (flags & 16 == 0).then_some(repr_field.as_str());
    let want_digest = (flags & 32 == 0).then_some(legacy_field.as_str());
    let c = negotiate_digests(want_repr, want_digest, enabled, unsolicited);
    let expected_repr = match want_repr {
        Some(_) => repr_choice,
        None if unsolicited => enabled.first().copied(),
        None => None,
    };
    assert_eq!(c.repr, expected_repr);
    assert_eq!(c.legacy, want_digest.and(legacy_choice));
    let algs: Vec<_> = c.algorithms().collect();
    assert!(algs.len() <= 2 && (algs.len() < 2 || algs[0] != algs[1]));
    assert!(algs
        .iter()
        .all(|a| Some(*a) == c.repr || Some(*a) == c.legacy));
    assert_eq!(algs.is_empty(), c.is_empty());

    // Field values decode back to the digest.
    let b64 = base64::engine::general_purpose::STANDARD;
    for a in DigestAlgorithm::ALL {
        let mut bytes = raw.to_vec();
        bytes.resize(a.output_len(), 0xA5);
        let v = repr_digest_value(a, &bytes);
        let inner = v
            .strip_prefix(&format!("{}=:", a.key()))
            .and_then(|r| r.strip_suffix(':'))
            .unwrap_or_else(|| panic!("Repr-Digest value {v:?}"));
        assert_eq!(b64.decode(inner).expect("base64"), bytes);
        let v = digest_value(a, &bytes);
        let inner = v
            .strip_prefix(&format!("{}=", a.legacy_name()))
            .unwrap_or_else(|| panic!("Digest value {v:?}"));
        assert_eq!(b64.decode(inner).expect("base64"), bytes);
        assert_eq!(DigestAlgorithm::from_name(a.legacy_name()), Some(a));
    }
}
/// `sanitize_bytes`' half of [`check_path`] (Unix: file names are bytes there).
#[cfg(unix)]
fn check_path_bytes(data: &[u8]) {
    use rocket_mmap::semantics::path::{sanitize, sanitize_bytes, MAX_DEPTH, MAX_PATH_LEN};
    use std::os::unix::ffi::OsStrExt;
    use std::path::{Component, Path};

    let Some((&flags, raw)) = data.split_first() else {
        return;
    };
    let allow_dotfiles = flags & 1 == 1;
    let decoded: Vec<Vec<u8>> = raw
        .split(|&b| b == b'/')
        .map(percent_decode_bytes)
        .collect();
    let result = sanitize_bytes(decoded.iter().map(Vec::as_slice), allow_dotfiles);
    if let Ok(texts) = decoded
        .iter()
        .map(|d| std::str::from_utf8(d))
        .collect::<Result<Vec<&str>, _>>()
    {
        assert_eq!(
            result,
            sanitize(texts, allow_dotfiles),
            "bytes and text disagree"
        );
    }
    let Ok(rel) = result else {
        return;
    };
    let segments: Vec<&[u8]> = decoded
        .iter()
        .map(Vec::as_slice)
        .filter(|s| !s.is_empty())
        .collect();
    let comps: Vec<_> = rel.components().collect();
    assert_eq!(comps.len(), segments.len(), "{rel:?} vs {segments:?}");
    for (c, seg) in comps.iter().zip(&segments) {
        let Component::Normal(name) = c else {
            panic!("{rel:?} has a non-normal component {c:?}");
        };
        let name = name.as_bytes();
        assert_eq!(name, *seg);
        assert!(!name.contains(&b'/') && !name.contains(&b'\\'));
        assert!(!String::from_utf8_lossy(name).chars().any(char::is_control));
        assert!(allow_dotfiles || !name.starts_with(b"."), "hidden {name:?}");
        assert!(name != b"." && name != b"..");
    }
    assert!(comps.len() <= MAX_DEPTH);
    assert!(rel.as_os_str().len() <= MAX_PATH_LEN);
    let root = Path::new("/srv/www");
    assert!(root.join(&rel).starts_with(root));
}

#[cfg(not(unix))]
fn check_path_bytes(_data: &[u8]) {}
