//! Property tests of the pure HTTP core: range planning (RFC 9110 §14), the
//! multipart/byteranges layout (§14.6), the parsers' robustness on arbitrary input,
//! and the segment body reader.

use std::io::SeekFrom;

use bytes::Bytes;
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// The fuzz targets' invariants (fuzz/src/lib.rs), compiled only for the tests.
#[path = "../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod fuzzing;

use rocket_mmap::cache::SegmentBody;
use rocket_mmap::semantics::date::HttpDate;
use rocket_mmap::semantics::etag::{list_matches, Comparison, EntityTag};
use rocket_mmap::semantics::multipart::{self, MultipartLayout};
use rocket_mmap::semantics::range::{self, ByteRange, RangeLimits, RangePlan, RangeSpec};

/// A range-spec as a client might write it, kept valid (`first <= last`).
fn spec() -> impl Strategy<Value = RangeSpec> {
    prop_oneof![
        12 => (0u64..12_000, prop_oneof![6 => 0u64..50, 1 => 0u64..2_000]).prop_map(|(first, n)| RangeSpec::Int {
            first,
            last: Some(first + n),
        }),
        1 => (0u64..12_000).prop_map(|first| RangeSpec::Int { first, last: None }),
        1 => (0u64..12_000).prop_map(RangeSpec::Suffix),
    ]
}

fn render(specs: &[RangeSpec]) -> String {
    let list: Vec<String> = specs
        .iter()
        .map(|s| match *s {
            RangeSpec::Int {
                first,
                last: Some(last),
            } => format!("{first}-{last}"),
            RangeSpec::Int { first, last: None } => format!("{first}-"),
            RangeSpec::Suffix(n) => format!("-{n}"),
        })
        .collect();
    format!("bytes={}", list.join(","))
}

fn limits() -> impl Strategy<Value = RangeLimits> {
    (1usize..=80, 0u64..=200).prop_map(|(max_parts, merge_gap)| RangeLimits {
        max_parts,
        merge_gap,
    })
}

fn parts_of(plan: &RangePlan) -> &[ByteRange] {
    match plan {
        RangePlan::Single(r) => std::slice::from_ref(r),
        RangePlan::Multi(v) => v,
        _ => &[],
    }
}

/// The 12-byte prefix `fuzzing::check_range` expects for a medium length.
fn range_prefix(length: u16, max_parts: u8, gap: u8, ct: u8) -> Vec<u8> {
    let mut v = vec![5u8];
    v.extend_from_slice(&u64::from(length).to_be_bytes());
    v.extend_from_slice(&[max_parts, gap, ct]);
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Parts lie inside the representation, never overlap, are further apart than the
    /// merge distance, cover every satisfiable spec, and come in the order of the
    /// earliest request position of the specs each covers (§14.6, §15.3.7.2).
    #[test]
    fn plan_is_bounded_disjoint_and_in_request_order(
        specs in prop::collection::vec(spec(), 1..40),
        length in 1u64..10_000,
        limits in limits(),
        ct_len in 0usize..40,
    ) {
        let header = render(&specs);
        prop_assert_eq!(range::parse(&header), Ok(specs.clone()));
        let overhead = multipart::part_overhead(ct_len, length);
        let plan = range::plan(Some(&header), length, &limits, overhead);
        let resolved: Vec<(usize, ByteRange)> = specs
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.resolve(length).map(|r| (i, r)))
            .collect();
        if resolved.is_empty() {
            prop_assert_eq!(plan, RangePlan::Unsatisfiable);
            return Ok(());
        }
        prop_assert!(plan != RangePlan::Unsatisfiable);
        let parts = parts_of(&plan);
        if let RangePlan::Multi(v) = &plan {
            prop_assert!(v.len() >= 2 && v.len() <= limits.max_parts);
        }
        let mut covered = 0u64;
        for p in parts {
            prop_assert!(p.first <= p.last && p.last < length, "{:?} of {}", p, length);
            covered += p.len();
        }
        prop_assert!(covered <= length);
        if let RangePlan::Multi(_) = &plan {
            prop_assert!(covered < length, "a multipart response costs more than the whole");
        }
        for (i, a) in parts.iter().enumerate() {
            for b in &parts[i + 1..] {
                let (lo, hi) = if a.first < b.first { (a, b) } else { (b, a) };
                prop_assert!(
                    hi.first > lo.last + 1 + limits.merge_gap,
                    "{:?} and {:?} overlap or lie within the merge gap {}",
                    lo, hi, limits.merge_gap
                );
            }
        }
        if !parts.is_empty() {
            // Each part's earliest request index, from the specs it covers.
            let mut earliest = vec![usize::MAX; parts.len()];
            for &(i, r) in &resolved {
                let holder = parts.iter().position(|p| p.first <= r.first && r.last <= p.last);
                prop_assert!(holder.is_some(), "{:?} (spec {}) is in no part", r, i);
                let h = holder.unwrap();
                earliest[h] = earliest[h].min(i);
            }
            for w in earliest.windows(2) {
                prop_assert!(w[0] < w[1], "parts out of request order: {:?}", earliest);
            }
            // A part starts and ends where some spec does: merging adds no bytes
            // outside the requested ones except the gaps between them.
            for p in parts {
                prop_assert!(resolved.iter().any(|(_, r)| r.first == p.first));
                prop_assert!(resolved.iter().any(|(_, r)| r.last == p.last));
            }
        }
    }

    /// The announced `Content-Length` of a multipart body is exactly what its
    /// segments hold, and the parts carry the right bytes in the right places.
    #[test]
    fn multipart_length_matches_the_bytes_produced(
        length in 1u64..5_000,
        raw in prop::collection::vec((0u64..5_000, 0u64..300), 1..20),
        content_type in prop::option::of("[a-z]{1,12}/[a-z0-9.+-]{1,20}"),
    ) {
        let ranges: Vec<ByteRange> = raw
            .iter()
            .map(|&(f, n)| {
                let first = f % length;
                ByteRange { first, last: (first + n).min(length - 1) }
            })
            .collect();
        let content: Bytes = (0..length).map(|i| (i % 251) as u8).collect::<Vec<u8>>().into();
        let boundary = multipart::new_boundary();
        let layout = MultipartLayout::new(&ranges, length, content_type.as_deref(), &boundary);
        let segments = layout.segments(&content);
        let body: Vec<u8> = segments.concat();
        prop_assert_eq!(body.len() as u64, layout.content_length());
        prop_assert_eq!(SegmentBody::new(segments).len(), layout.content_length());
        prop_assert_eq!(layout.part_count(), ranges.len());
        // The overhead stays within what `part_overhead` promised the planner.
        let ct_len = content_type.as_ref().map_or(0, String::len);
        let content_bytes: u64 = ranges.iter().map(ByteRange::len).sum();
        prop_assert!(
            layout.content_length() - content_bytes
                <= multipart::part_overhead(ct_len, length) * ranges.len() as u64
        );
        // Walk the body: header, then the part's bytes, for each part in order.
        let mut pos = 0usize;
        for r in &ranges {
            let mut header = format!("\r\n--{boundary}\r\n");
            if let Some(ct) = &content_type {
                header += &format!("Content-Type: {ct}\r\n");
            }
            header += &format!("Content-Range: bytes {}-{}/{}\r\n\r\n", r.first, r.last, length);
            prop_assert!(body[pos..].starts_with(header.as_bytes()));
            pos += header.len();
            let want = &content[r.to_usize_range()];
            prop_assert_eq!(&body[pos..pos + want.len()], want);
            pos += want.len();
        }
        let trailer = format!("\r\n--{boundary}--\r\n");
        prop_assert_eq!(&body[pos..], trailer.as_bytes());
    }

    /// Arbitrary unicode never panics the parser or the planner, whatever the length.
    #[test]
    fn parse_and_plan_never_panic_on_any_string(s in any::<String>(), length in any::<u64>()) {
        let _ = range::parse(&s);
        let _ = range::plan(Some(&s), length, &RangeLimits::default(), 100);
    }

    /// Strings over the range alphabet (the interesting ones) never panic, and parsing
    /// and planning agree on every one of them.
    #[test]
    fn range_alphabet_strings_hold_every_invariant(
        s in "[bytesBYTES=0123456789, \t-]{0,80}",
        length in 0u16..=u16::MAX,
        max_parts in any::<u8>(),
        gap in any::<u8>(),
        ct in any::<u8>(),
    ) {
        let _ = range::parse(&s);
        let _ = range::plan(Some(&s), u64::from(length), &RangeLimits::default(), 0);
        let mut data = range_prefix(length, max_parts, gap, ct);
        data.extend_from_slice(format!("bytes={s}").as_bytes());
        fuzzing::check_range(&data);
        let mut data = range_prefix(length, max_parts, gap, ct);
        data.extend_from_slice(s.as_bytes());
        fuzzing::check_range(&data);
    }

    /// Arbitrary bytes through both fuzz checks: a short in-test fuzzing run.
    #[test]
    fn fuzz_checks_hold_on_arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..200)) {
        fuzzing::check_range(&data);
        fuzzing::check_conditionals(&data);
        fuzzing::check_want_digest(&data);
    }

    /// Entity-tag lists and dates never panic on arbitrary strings, and a strong match
    /// always implies a weak one.
    #[test]
    fn list_matches_and_dates_never_panic(s in any::<String>(), t in "[ -~]{0,10}", weak in any::<bool>()) {
        let tag = EntityTag::new(weak, &t).ok();
        for cur in [tag.as_ref(), None] {
            let strong = list_matches(&s, cur, Comparison::Strong);
            let weak_match = list_matches(&s, cur, Comparison::Weak);
            prop_assert!(!strong || weak_match);
        }
        let _ = EntityTag::parse(&s);
        if let Some(d) = HttpDate::parse(&s) {
            prop_assert_eq!(HttpDate::parse(&d.to_imf_fixdate()), Some(d));
        }
    }

    /// Lists over the entity-tag alphabet, where matches actually happen.
    #[test]
    fn tag_alphabet_lists_are_consistent(s in "[W/\"ab, \t*]{0,40}", t in "[ab]{0,3}", weak in any::<bool>()) {
        let tag = EntityTag::new(weak, &t).unwrap();
        let strong = list_matches(&s, Some(&tag), Comparison::Strong);
        let weak_match = list_matches(&s, Some(&tag), Comparison::Weak);
        prop_assert!(!strong || weak_match);
        prop_assert!(!list_matches(&s, None, Comparison::Weak));
        // Appending the tag itself always makes the list match weakly.
        let list = format!("{s},{tag}");
        if !s.contains('"') {
            prop_assert!(list_matches(&list, Some(&tag), Comparison::Weak), "{:?}", list);
        }
    }

    /// Dates over the date alphabet never panic, and valid ones round-trip.
    #[test]
    fn date_alphabet_strings_round_trip(
        s in "(Sun|Mon|Tue|Wed|Thu|Fri|Sat), [0-3][0-9] (Jan|Feb|Mar|Nov|Dec) (19[0-9]{2}|20[0-9]{2}|9999) [0-2][0-9]:[0-6][0-9]:[0-6][0-9] GMT",
    ) {
        if let Some(d) = HttpDate::parse(&s) {
            let text = d.to_imf_fixdate();
            prop_assert_eq!(HttpDate::parse(&text), Some(d));
        }
    }

    /// Every date from 1970 to 9999 formats as an IMF-fixdate that parses back.
    #[test]
    fn every_representable_date_round_trips(secs in 0u64..253_402_300_800) {
        let d = HttpDate::from_unix_secs(secs).unwrap();
        let text = d.to_imf_fixdate();
        prop_assert_eq!(text.len(), 29);
        prop_assert_eq!(HttpDate::parse(&text), Some(d));
    }

    /// Reading a segment body in chunks of arbitrary sizes yields exactly the
    /// concatenation of its segments; seeking then reading yields the suffix.
    #[test]
    fn segment_body_reads_exactly_the_concatenation(
        segments in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..100), 0..12),
        chunks in prop::collection::vec(1usize..64, 1..16),
        seek in any::<u16>(),
    ) {
        let expected: Vec<u8> = segments.concat();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let (out, tail) = rt.block_on(async {
            let mut body = SegmentBody::new(segments.iter().cloned().map(Bytes::from).collect());
            assert_eq!(body.len(), expected.len() as u64);
            let mut out = Vec::new();
            let mut buf = [0u8; 64];
            for &n in chunks.iter().cycle() {
                let got = body.read(&mut buf[..n]).await.unwrap();
                if got == 0 {
                    break;
                }
                assert!(got <= n);
                out.extend_from_slice(&buf[..got]);
            }
            assert_eq!(body.remaining(), 0);
            let at = u64::from(seek) % (expected.len() as u64 + 2);
            let pos = body.seek(SeekFrom::Start(at)).await.unwrap();
            assert_eq!(pos, at.min(expected.len() as u64));
            let mut tail = Vec::new();
            body.read_to_end(&mut tail).await.unwrap();
            (out, tail)
        });
        prop_assert_eq!(&out, &expected);
        let at = (usize::from(seek) % (expected.len() + 2)).min(expected.len());
        prop_assert_eq!(&tail[..], &expected[at..]);
    }
}
