//! Byte ranges: parsing the `Range` header field and planning what to send.
//!
//! This module implements RFC 9110 §14.1–§14.3 and the multipart planning rules of
//! §14.6 / §15.3.7.2. It knows nothing of any web framework: a header value goes in,
//! a [`RangePlan`] comes out.
//!
//! # Decisions
//!
//! * **Invalid syntax is ignored** (→ `200` with the whole content). RFC 9110 §14.2
//!   lets a server "ignore or reject" an invalid ranges-specifier; ignoring is always a
//!   correct answer for the client (it gets every byte, with a status that says so),
//!   while a `416` for a header the client thought valid stalls some downloaders.
//!   A range-spec whose `last-pos` is less than its `first-pos` makes the whole
//!   header invalid (§14.1.1).
//! * **Unknown units are ignored** (§14.2: "An origin server MUST ignore a Range header
//!   field that contains a range unit it does not understand"). The unit is compared
//!   case-insensitively (§14.1: "range units are compared case-insensitively").
//! * **Numbers never overflow**: a position with more digits than fit a `u64`
//!   saturates at `u64::MAX`, which is "past the end" for every representation.
//! * **Zero-length representations never get a 206**: there is no byte to address, and
//!   `Content-Range` cannot name an empty range, so the header is ignored and the
//!   (empty) content is sent with `200`. This is what Apache does; nginx answers 416.
//! * **Part bound**: after merging, a plan with more than
//!   [`RangeLimits::max_parts`] parts (default 64) is served
//!   as the whole content (`200`). 64 is well above what real clients send (browsers
//!   and download managers send one range per request; PDF byte serving sends a few
//!   dozen) and small enough that a hostile header costs at most 64 part headers.
//! * **Byte bound**: overlapping, adjacent and nearly adjacent ranges (gap smaller
//!   than what a multipart part header costs) are merged, so the parts are disjoint
//!   and the bytes sent never exceed the length of the representation. If the
//!   multipart body would still be larger than the whole representation, the whole
//!   representation is sent instead (§14.2 allows ignoring such a header; the
//!   "Apache Killer" request `bytes=0-,5-0,5-1,…` is answered with at most the file).

use std::fmt;

/// The default bound on the number of parts of a multipart/byteranges response.
pub(crate) const DEFAULT_MAX_PARTS: usize = 64;

/// The default merge distance: ranges separated by at most this many bytes are sent
/// as one part, because a part header costs about this much (boundary,
/// `Content-Type`, `Content-Range`, CRLFs).
pub(crate) const DEFAULT_MERGE_GAP: u64 = 80;

/// An inclusive byte range `first..=last`, resolved against a representation length.
///
/// Invariant: `first <= last < length` of the representation it was resolved for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ByteRange {
    /// Offset of the first byte.
    pub first: u64,
    /// Offset of the last byte (inclusive).
    pub last: u64,
}

impl ByteRange {
    /// The number of bytes in the range (`last - first + 1`).
    #[inline]
    pub fn len(&self) -> u64 {
        self.last - self.first + 1
    }

    /// Always `false`: a resolved range holds at least one byte. Present for clippy's
    /// `len_without_is_empty` and for symmetry with slices.
    #[inline]
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The range as a half-open `usize` range for slicing in-memory content.
    ///
    /// # Panics
    /// Never on 64-bit targets for ranges resolved against an in-memory length.
    #[inline]
    pub fn to_usize_range(&self) -> std::ops::Range<usize> {
        self.first as usize..(self.last as usize + 1)
    }
}

/// One `range-spec` as written in the request (RFC 9110 §14.1.1), before resolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeSpec {
    /// `first-last` (`last` present) or `first-` (`last` absent).
    Int {
        /// `first-pos`.
        first: u64,
        /// `last-pos`, if present.
        last: Option<u64>,
    },
    /// `-suffix`: the last `suffix` bytes.
    Suffix(u64),
}

impl RangeSpec {
    /// Resolves the spec against a representation of `length` bytes (§14.1.1 / §14.1.2).
    ///
    /// Returns `None` when the spec is unsatisfiable: `first-pos` at or past the end,
    /// or a suffix of zero bytes (`-0`). `last-pos` past the end is clamped to the end;
    /// a suffix longer than the content selects the whole content.
    pub fn resolve(self, length: u64) -> Option<ByteRange> {
        if length == 0 {
            return None;
        }
        match self {
            RangeSpec::Int { first, last } => {
                if first >= length {
                    return None;
                }
                let last = last.map_or(length - 1, |l| l.min(length - 1));
                Some(ByteRange { first, last })
            }
            RangeSpec::Suffix(0) => None,
            RangeSpec::Suffix(n) => Some(ByteRange {
                first: length.saturating_sub(n),
                last: length - 1,
            }),
        }
    }
}

/// Why a `Range` header did not lead to a partial response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IgnoredBecause {
    /// The request had no `Range` header field.
    NoHeader,
    /// The range unit is not `bytes` (§14.2: MUST ignore).
    UnknownUnit,
    /// The ranges-specifier does not follow the grammar of §14.1.1.
    Invalid,
    /// More parts than [`RangeLimits::max_parts`] remained after merging (§14.2, §17.15).
    TooManyParts,
    /// The multipart body would be larger than the whole representation.
    LargerThanWhole,
    /// The representation is empty: no range can be expressed.
    EmptyRepresentation,
    /// The method is not GET (§14.2: range handling is defined for GET only).
    NotGet,
    /// An `If-Range` condition was false (§13.1.5).
    IfRangeFailed,
    /// The representation's length is not known in advance (a stream), so no range
    /// can be served.
    UnknownLength,
}

impl fmt::Display for IgnoredBecause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IgnoredBecause::NoHeader => "no Range header",
            IgnoredBecause::UnknownUnit => "unknown range unit",
            IgnoredBecause::Invalid => "invalid Range syntax",
            IgnoredBecause::TooManyParts => "too many ranges",
            IgnoredBecause::LargerThanWhole => "ranges cost more than the whole content",
            IgnoredBecause::EmptyRepresentation => "empty representation",
            IgnoredBecause::NotGet => "Range applies to GET only",
            IgnoredBecause::IfRangeFailed => "If-Range did not match",
            IgnoredBecause::UnknownLength => "length unknown",
        })
    }
}

/// Bounds applied while planning a multi-range response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RangeLimits {
    /// The most parts a multipart/byteranges response may have after merging.
    pub max_parts: usize,
    /// Ranges separated by at most this many bytes are merged into one part.
    pub merge_gap: u64,
}

impl Default for RangeLimits {
    fn default() -> Self {
        RangeLimits {
            max_parts: DEFAULT_MAX_PARTS,
            merge_gap: DEFAULT_MERGE_GAP,
        }
    }
}

/// What to send for a request, as far as the `Range` header is concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RangePlan {
    /// Send the whole representation with `200 OK`.
    Full(IgnoredBecause),
    /// Send one range with `206 Partial Content` and `Content-Range`.
    Single(ByteRange),
    /// Send `multipart/byteranges` with `206`; the parts are disjoint, not adjacent,
    /// in the order the request first named them, and there are at least two.
    Multi(Vec<ByteRange>),
    /// `416 Range Not Satisfiable` with `Content-Range: bytes */LEN` (§15.5.17).
    Unsatisfiable,
}

/// The error of [`parse`]: why a `Range` value is not used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// The unit is not `bytes`; the header must be ignored (§14.2).
    UnknownUnit,
    /// The value does not follow the grammar of §14.1.1.
    Invalid,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::UnknownUnit => f.write_str("unknown range unit"),
            ParseError::Invalid => f.write_str("invalid ranges-specifier"),
        }
    }
}

impl std::error::Error for ParseError {}

/// Parses a decimal digit string, saturating at `u64::MAX` instead of overflowing.
/// Returns `None` when `s` is empty or holds a non-digit.
fn parse_pos(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.saturating_mul(10).saturating_add(u64::from(b - b'0'));
    }
    Some(n)
}

/// Parses one `range-spec` (§14.1.1): `int-range` or `suffix-range`.
fn parse_spec(s: &[u8]) -> Option<RangeSpec> {
    let dash = s.iter().position(|&b| b == b'-')?;
    let (first, last) = (&s[..dash], &s[dash + 1..]);
    if first.is_empty() {
        return parse_pos(last).map(RangeSpec::Suffix);
    }
    let first = parse_pos(first)?;
    if last.is_empty() {
        return Some(RangeSpec::Int { first, last: None });
    }
    let last = parse_pos(last)?;
    // §14.1.1: "A byte-range-spec is invalid if the last-pos value is present and
    // less than the first-pos."
    if last < first {
        return None;
    }
    Some(RangeSpec::Int {
        first,
        last: Some(last),
    })
}

#[inline]
fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_ows(*first) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !is_ows(*last) {
            break;
        }
        s = rest;
    }
    s
}

/// Parses a `Range` field value (RFC 9110 §14.2) into its range-specs, in request order.
///
/// Accepts the list syntax of §5.6.1: optional whitespace around commas and empty list
/// elements (`bytes=0-4,,6-9`). The unit is case-insensitive. At least one range-spec
/// must be present.
///
/// # Errors
/// [`ParseError::UnknownUnit`] for a unit other than `bytes`, [`ParseError::Invalid`]
/// for anything that does not follow the grammar.
pub fn parse(value: &str) -> Result<Vec<RangeSpec>, ParseError> {
    let mut specs = Vec::new();
    for_each_spec(value, |spec| specs.push(spec))?;
    Ok(specs)
}

/// Like [`parse`], but hands each spec to `f` instead of collecting them.
fn for_each_spec(value: &str, mut f: impl FnMut(RangeSpec)) -> Result<(), ParseError> {
    let value = trim_ows(value.as_bytes());
    let eq = value
        .iter()
        .position(|&b| b == b'=')
        .ok_or(ParseError::Invalid)?;
    let (unit, set) = (&value[..eq], &value[eq + 1..]);
    if !unit.eq_ignore_ascii_case(b"bytes") {
        // A unit must be a token (§5.6.2); an empty or malformed one is invalid, any
        // other token is a unit we do not understand.
        if unit.is_empty() || !unit.iter().all(|&b| is_tchar(b)) {
            return Err(ParseError::Invalid);
        }
        return Err(ParseError::UnknownUnit);
    }
    let mut any = false;
    for element in set.split(|&b| b == b',') {
        let element = trim_ows(element);
        if element.is_empty() {
            continue;
        }
        f(parse_spec(element).ok_or(ParseError::Invalid)?);
        any = true;
    }
    if any {
        Ok(())
    } else {
        Err(ParseError::Invalid)
    }
}

/// `tchar` of RFC 9110 §5.6.2.
#[inline]
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// Parses a `Range` value and plans the response for a representation of `length` bytes.
///
/// `part_overhead` is what one multipart part costs beyond its content (see
/// [`crate::semantics::multipart::part_overhead`]); it is used to decide whether a multipart
/// body would be larger than the whole representation. Pass `None` for the header to
/// get `Full(NoHeader)`.
///
/// Rules, in order:
/// 1. no header → full; unknown unit → full (§14.2 MUST ignore); invalid → full
///    (§14.2 MAY ignore);
/// 2. empty representation → full (no range can be expressed; see the module docs);
/// 3. unsatisfiable specs are dropped; none left → `Unsatisfiable` (§14.1.1, §15.5.17);
/// 4. overlapping, adjacent and close ranges are merged, request order kept for the
///    rest (§14.6, §15.3.7.2: "a server MAY coalesce any of the ranges that overlap,
///    or that are separated by a gap that is smaller than the overhead of sending
///    multiple parts");
/// 5. one part → `Single`; more than `limits.max_parts` → full (§17.15); a multipart
///    body larger than the whole → full; otherwise `Multi`.
pub fn plan(
    header: Option<&str>,
    length: u64,
    limits: &RangeLimits,
    part_overhead: u64,
) -> RangePlan {
    let Some(value) = header else {
        return RangePlan::Full(IgnoredBecause::NoHeader);
    };
    // Resolve while parsing: unsatisfiable specs never need storing, and the common
    // single-range request allocates nothing.
    let mut first_range: Option<ByteRange> = None;
    let mut more: Vec<(ByteRange, usize)> = Vec::new();
    let mut index = 0usize;
    let parsed = for_each_spec(value, |spec| {
        if let Some(r) = spec.resolve(length) {
            match first_range {
                None => first_range = Some(r),
                Some(first) => {
                    if more.is_empty() {
                        more.push((first, 0));
                    }
                    more.push((r, index));
                }
            }
        }
        index += 1;
    });
    match parsed {
        Err(ParseError::UnknownUnit) => return RangePlan::Full(IgnoredBecause::UnknownUnit),
        Err(ParseError::Invalid) => return RangePlan::Full(IgnoredBecause::Invalid),
        Ok(()) => {}
    }
    if length == 0 {
        return RangePlan::Full(IgnoredBecause::EmptyRepresentation);
    }
    if more.is_empty() {
        return match first_range {
            Some(r) => RangePlan::Single(r),
            None => RangePlan::Unsatisfiable,
        };
    }
    let parts = coalesce(more, limits.merge_gap);
    if parts.len() == 1 {
        return RangePlan::Single(parts[0]);
    }
    if parts.len() > limits.max_parts {
        return RangePlan::Full(IgnoredBecause::TooManyParts);
    }
    let content: u64 = parts.iter().map(ByteRange::len).sum();
    let overhead = part_overhead.saturating_mul(parts.len() as u64);
    if content.saturating_add(overhead) >= length {
        return RangePlan::Full(IgnoredBecause::LargerThanWhole);
    }
    RangePlan::Multi(parts)
}

/// Merges ranges that overlap, touch, or are at most `gap` bytes apart; each merged
/// range takes the request position of its earliest member, and the result is in
/// request order. O(n log n).
fn coalesce(mut ranges: Vec<(ByteRange, usize)>, gap: u64) -> Vec<ByteRange> {
    ranges.sort_unstable_by_key(|(r, _)| (r.first, r.last));
    let mut merged: Vec<(ByteRange, usize)> = Vec::with_capacity(ranges.len().min(64));
    for (r, idx) in ranges {
        if let Some((cur, cur_idx)) = merged.last_mut() {
            // `cur.last + 1 + gap` may overflow only for absurd lengths; saturate.
            if r.first <= cur.last.saturating_add(1).saturating_add(gap) {
                cur.last = cur.last.max(r.last);
                *cur_idx = (*cur_idx).min(idx);
                continue;
            }
        }
        merged.push((r, idx));
    }
    merged.sort_unstable_by_key(|&(_, idx)| idx);
    merged.into_iter().map(|(r, _)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: RangeLimits = RangeLimits {
        max_parts: DEFAULT_MAX_PARTS,
        merge_gap: DEFAULT_MERGE_GAP,
    };

    fn p(h: &str, len: u64) -> RangePlan {
        plan(Some(h), len, &L, 100)
    }

    fn r(first: u64, last: u64) -> ByteRange {
        ByteRange { first, last }
    }

    #[test]
    fn no_header_is_full() {
        assert_eq!(
            plan(None, 10, &L, 100),
            RangePlan::Full(IgnoredBecause::NoHeader)
        );
    }

    #[test]
    fn unit_is_case_insensitive() {
        assert_eq!(p("Bytes=0-9", 100), RangePlan::Single(r(0, 9)));
        assert_eq!(p("BYTES=0-9", 100), RangePlan::Single(r(0, 9)));
    }

    #[test]
    fn unknown_unit_is_ignored() {
        assert_eq!(
            p("items=0-5", 100),
            RangePlan::Full(IgnoredBecause::UnknownUnit)
        );
        assert_eq!(parse("items=0-5"), Err(ParseError::UnknownUnit));
    }

    #[test]
    fn malformed_unit_is_invalid() {
        assert_eq!(p("=0-5", 100), RangePlan::Full(IgnoredBecause::Invalid));
        assert_eq!(
            p("by tes=0-5", 100),
            RangePlan::Full(IgnoredBecause::Invalid)
        );
        assert_eq!(
            p("bytes 0-5", 100),
            RangePlan::Full(IgnoredBecause::Invalid)
        );
    }

    #[test]
    fn first_last_clamps_last_to_end() {
        assert_eq!(p("bytes=0-9", 100), RangePlan::Single(r(0, 9)));
        assert_eq!(p("bytes=90-200", 100), RangePlan::Single(r(90, 99)));
    }

    #[test]
    fn open_ended_range_runs_to_end() {
        assert_eq!(p("bytes=10-", 100), RangePlan::Single(r(10, 99)));
    }

    #[test]
    fn suffix_range_selects_tail_and_whole_when_longer() {
        assert_eq!(p("bytes=-10", 100), RangePlan::Single(r(90, 99)));
        assert_eq!(p("bytes=-1000", 100), RangePlan::Single(r(0, 99)));
    }

    #[test]
    fn suffix_zero_is_unsatisfiable() {
        assert_eq!(p("bytes=-0", 100), RangePlan::Unsatisfiable);
    }

    #[test]
    fn first_past_end_is_unsatisfiable() {
        assert_eq!(p("bytes=100-", 100), RangePlan::Unsatisfiable);
        assert_eq!(p("bytes=100-200,300-", 100), RangePlan::Unsatisfiable);
    }

    #[test]
    fn unsatisfiable_specs_are_dropped_when_others_remain() {
        assert_eq!(p("bytes=500-600,0-4", 100), RangePlan::Single(r(0, 4)));
    }

    #[test]
    fn last_before_first_is_invalid() {
        assert_eq!(
            p("bytes=5-0", 100),
            RangePlan::Full(IgnoredBecause::Invalid)
        );
    }

    #[test]
    fn empty_list_elements_and_spaces_are_accepted() {
        assert_eq!(
            p("bytes=0-4,,6-9", 1000),
            RangePlan::Single(r(0, 9)) // gap of 1 byte: merged
        );
        assert_eq!(
            p("bytes= 0-1 , ,\t500-501 ,", 1000),
            RangePlan::Multi(vec![r(0, 1), r(500, 501)])
        );
        assert_eq!(p("bytes=,", 100), RangePlan::Full(IgnoredBecause::Invalid));
        assert_eq!(p("bytes=", 100), RangePlan::Full(IgnoredBecause::Invalid));
    }

    #[test]
    fn spaces_inside_a_spec_are_invalid() {
        assert_eq!(
            p("bytes=0 - 5", 100),
            RangePlan::Full(IgnoredBecause::Invalid)
        );
        assert_eq!(
            p("bytes=+0-5", 100),
            RangePlan::Full(IgnoredBecause::Invalid)
        );
        assert_eq!(
            p("bytes=0x1-5", 100),
            RangePlan::Full(IgnoredBecause::Invalid)
        );
        assert_eq!(
            p("bytes=1-2-3", 100),
            RangePlan::Full(IgnoredBecause::Invalid)
        );
        assert_eq!(p("bytes=-", 100), RangePlan::Full(IgnoredBecause::Invalid));
    }

    #[test]
    fn numbers_past_u64_saturate_without_panic() {
        assert_eq!(
            p("bytes=0-18446744073709551616", 100),
            RangePlan::Single(r(0, 99))
        );
        assert_eq!(
            p("bytes=18446744073709551616-", 100),
            RangePlan::Unsatisfiable
        );
        assert_eq!(
            p("bytes=-99999999999999999999999999999", 100),
            RangePlan::Single(r(0, 99))
        );
        assert_eq!(
            p(&format!("bytes=0-{}", "9".repeat(5000)), 100),
            RangePlan::Single(r(0, 99))
        );
    }

    #[test]
    fn zero_length_representation_never_gets_206() {
        for h in [
            "bytes=0-",
            "bytes=-5",
            "bytes=0-0",
            "bytes=-0",
            "bytes=0-1,3-4",
        ] {
            assert_eq!(
                p(h, 0),
                RangePlan::Full(IgnoredBecause::EmptyRepresentation),
                "{h}"
            );
        }
        // Invalid stays invalid.
        assert_eq!(p("bytes=x", 0), RangePlan::Full(IgnoredBecause::Invalid));
    }

    #[test]
    fn overlapping_and_adjacent_ranges_are_merged() {
        assert_eq!(p("bytes=0-10,5-20", 1000), RangePlan::Single(r(0, 20)));
        assert_eq!(p("bytes=0-9,10-19", 1000), RangePlan::Single(r(0, 19)));
    }

    #[test]
    fn close_ranges_merge_within_gap() {
        let gap = DEFAULT_MERGE_GAP;
        let h = format!("bytes=0-9,{}-{}", 10 + gap, 20 + gap);
        assert_eq!(p(&h, 10_000), RangePlan::Single(r(0, 20 + gap)));
        let h = format!("bytes=0-9,{}-{}", 11 + gap, 20 + gap);
        assert_eq!(
            p(&h, 10_000),
            RangePlan::Multi(vec![r(0, 9), r(11 + gap, 20 + gap)])
        );
    }

    #[test]
    fn multi_keeps_request_order() {
        assert_eq!(
            p("bytes=5000-5009,0-9,2000-2009", 10_000),
            RangePlan::Multi(vec![r(5000, 5009), r(0, 9), r(2000, 2009)])
        );
    }

    #[test]
    fn merged_part_takes_earliest_request_position() {
        assert_eq!(
            p("bytes=5000-5009,0-9,5005-5020", 10_000),
            RangePlan::Multi(vec![r(5000, 5020), r(0, 9)])
        );
        assert_eq!(
            p("bytes=5000-5009,0-9,2000-2009,5-8000", 10_000),
            RangePlan::Single(r(0, 8000))
        );
    }

    #[test]
    fn two_hundred_open_ranges_become_one() {
        let h = format!("bytes={}", vec!["0-"; 200].join(","));
        assert_eq!(p(&h, 3 << 20), RangePlan::Single(r(0, (3 << 20) - 1)));
    }

    #[test]
    fn apache_killer_is_bounded() {
        // `bytes=0-,5-0,5-1,...`: `5-0` is invalid, so the header is ignored.
        let mut h = String::from("bytes=0-");
        for i in 0..1300 {
            h.push_str(&format!(",5-{i}"));
        }
        assert_eq!(p(&h, 3 << 20), RangePlan::Full(IgnoredBecause::Invalid));
        // The valid variant: 1300 overlapping ranges merge into one part.
        let mut h = String::from("bytes=0-");
        for i in 0..1300 {
            h.push_str(&format!(",5-{}", 5 + i));
        }
        assert_eq!(p(&h, 3 << 20), RangePlan::Single(r(0, (3 << 20) - 1)));
    }

    #[test]
    fn tiny_descending_ranges_are_merged_or_refused() {
        // 1000 one-byte ranges, descending, adjacent: one part.
        let specs: Vec<String> = (0..1000).rev().map(|i| format!("{i}-{i}")).collect();
        let h = format!("bytes={}", specs.join(","));
        assert_eq!(p(&h, 1 << 20), RangePlan::Single(r(0, 999)));
        // 1000 one-byte ranges, descending, far apart: too many parts, whole content.
        let specs: Vec<String> = (0..1000)
            .rev()
            .map(|i| format!("{}-{}", i * 1000, i * 1000))
            .collect();
        let h = format!("bytes={}", specs.join(","));
        assert_eq!(
            p(&h, 1 << 20),
            RangePlan::Full(IgnoredBecause::TooManyParts)
        );
    }

    #[test]
    fn part_bound_is_configurable() {
        let limits = RangeLimits {
            max_parts: 2,
            merge_gap: 0,
        };
        let h = "bytes=0-0,100-100,200-200";
        assert_eq!(
            plan(Some(h), 10_000, &limits, 10),
            RangePlan::Full(IgnoredBecause::TooManyParts)
        );
        assert_eq!(
            plan(Some("bytes=0-0,100-100"), 10_000, &limits, 10),
            RangePlan::Multi(vec![r(0, 0), r(100, 100)])
        );
    }

    #[test]
    fn multipart_larger_than_whole_sends_whole() {
        // 2 parts of 1 byte with 100 bytes of overhead each on a 150-byte file.
        assert_eq!(
            p("bytes=0-0,149-149", 150),
            RangePlan::Full(IgnoredBecause::LargerThanWhole)
        );
    }

    #[test]
    fn parse_returns_specs_in_order() {
        assert_eq!(
            parse("bytes=1-2, -3 ,4-"),
            Ok(vec![
                RangeSpec::Int {
                    first: 1,
                    last: Some(2)
                },
                RangeSpec::Suffix(3),
                RangeSpec::Int {
                    first: 4,
                    last: None
                },
            ])
        );
    }
}
