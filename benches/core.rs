//! criterion benches of the pure HTTP core: what one request costs before the first
//! body byte, for typical and for hostile headers.
//!
//! Run with `cargo bench --no-default-features --bench core` (add `-- --quick` for a
//! fast pass). Names read `area/operation/case`.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use rocket_mmap::semantics::date::HttpDate;
use rocket_mmap::semantics::etag::EntityTag;
use rocket_mmap::semantics::multipart::{self, MultipartLayout};
use rocket_mmap::semantics::precondition::{self, Conditionals, Method, Validators};
use rocket_mmap::semantics::range::{self, ByteRange, RangeLimits, RangePlan};

/// A 3 MiB file: the size of the "Apache Killer" reports.
const LENGTH: u64 = 3 << 20;
const CONTENT_TYPE: &str = "application/octet-stream";

/// A bench case: its name, the `Range` value, and what its plan must be.
type RangeCase<'a> = (&'static str, &'a str, fn(&RangePlan) -> bool);

fn ranges(c: &mut Criterion) {
    let limits = RangeLimits::default();
    let overhead = multipart::part_overhead(CONTENT_TYPE.len(), LENGTH);

    // 64 disjoint ranges, far apart: the largest multipart response we agree to send.
    let sixty_four = format!(
        "bytes={}",
        (0..64)
            .map(|i| format!("{}-{}", i * 40_000, i * 40_000 + 99))
            .collect::<Vec<_>>()
            .join(",")
    );
    // 1000 one-byte ranges, descending and far apart: too many parts, whole content.
    let descending = format!(
        "bytes={}",
        (0..1000u64)
            .rev()
            .map(|i| format!("{}-{}", i * 3000, i * 3000))
            .collect::<Vec<_>>()
            .join(",")
    );
    // The Apache Killer (CVE-2011-3192): `bytes=0-,5-1,5-2,...`. `5-1` is invalid, so
    // the header is ignored after the first invalid spec.
    let apache_killer = format!(
        "bytes=0-{}",
        (1..1300).map(|i| format!(",5-{i}")).collect::<String>()
    );
    // Its valid variant: 1300 overlapping ranges that all merge into one.
    let overlapping = format!(
        "bytes=0-{}",
        (0..1300)
            .map(|i| format!(",5-{}", 5 + i))
            .collect::<String>()
    );

    let cases: [RangeCase<'_>; 6] = [
        ("typical", "bytes=0-1023", |p| {
            matches!(p, RangePlan::Single(_))
        }),
        ("resume", "bytes=1048576-", |p| {
            matches!(p, RangePlan::Single(_))
        }),
        (
            "64_ranges",
            &sixty_four,
            |p| matches!(p, RangePlan::Multi(v) if v.len() == 64),
        ),
        ("1000_descending", &descending, |p| {
            matches!(p, RangePlan::Full(_))
        }),
        ("apache_killer", &apache_killer, |p| {
            matches!(p, RangePlan::Full(_))
        }),
        ("1300_overlapping", &overlapping, |p| {
            matches!(p, RangePlan::Single(_))
        }),
    ];

    let mut group = c.benchmark_group("range/plan");
    for (name, header, expect) in &cases {
        let plan = range::plan(Some(header), LENGTH, &limits, overhead);
        assert!(expect(&plan), "{name}: unexpected plan {plan:?}");
        group.throughput(Throughput::Bytes(header.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), header, |b, h| {
            b.iter(|| range::plan(black_box(Some(*h)), black_box(LENGTH), &limits, overhead))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("range/parse");
    for (name, header, _) in &cases[..3] {
        group.bench_with_input(BenchmarkId::from_parameter(name), header, |b, h| {
            b.iter(|| range::parse(black_box(h)))
        });
    }
    group.finish();
}

fn preconditions(c: &mut Criterion) {
    let etag = EntityTag::from_crc(0x995d_c9bb_df19_39fa, LENGTH);
    let etag_text = etag.to_string();
    let last_modified = HttpDate::parse("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
    let now = HttpDate::from_unix_secs(2_000_000_000).unwrap();
    let v = Validators {
        etag: Some(&etag),
        last_modified: Some(last_modified),
    };
    let inm_list = format!("\"aaaa\", W/\"bbbb\", {etag_text}");

    let cases: [(&str, Conditionals<'_>, precondition::Outcome); 4] = [
        (
            "none",
            Conditionals::default(),
            precondition::Outcome::Proceed(Err(range::IgnoredBecause::NoHeader)),
        ),
        (
            "if_none_match_hit",
            Conditionals {
                if_none_match: Some(&inm_list),
                ..Default::default()
            },
            precondition::Outcome::NotModified,
        ),
        (
            "if_modified_since",
            Conditionals {
                if_modified_since: Some("Sun, 06 Nov 1994 08:49:37 GMT"),
                ..Default::default()
            },
            precondition::Outcome::NotModified,
        ),
        (
            "if_range_and_range",
            Conditionals {
                if_range: Some(&etag_text),
                has_range: true,
                ..Default::default()
            },
            precondition::Outcome::Proceed(Ok(())),
        ),
    ];

    let mut group = c.benchmark_group("precondition/evaluate");
    for (name, cond, expected) in &cases {
        assert_eq!(
            precondition::evaluate(Method::Get, cond, &v, now),
            *expected,
            "{name}"
        );
        group.bench_with_input(BenchmarkId::from_parameter(name), cond, |b, cond| {
            b.iter(|| precondition::evaluate(black_box(Method::Get), black_box(cond), &v, now))
        });
    }
    group.finish();

    // The If-Range + Range path as a server runs it: preconditions, then the plan.
    let limits = RangeLimits::default();
    let overhead = multipart::part_overhead(CONTENT_TYPE.len(), LENGTH);
    let cond = cases[3].1;
    c.bench_function("precondition/if_range_then_plan/typical", |b| {
        b.iter(|| {
            let out = precondition::evaluate(Method::Get, black_box(&cond), &v, now);
            match out {
                precondition::Outcome::Proceed(Ok(())) => Some(range::plan(
                    black_box(Some("bytes=0-1023")),
                    LENGTH,
                    &limits,
                    overhead,
                )),
                _ => None,
            }
        })
    });

    c.bench_function("date/parse/imf_fixdate", |b| {
        b.iter(|| HttpDate::parse(black_box("Sun, 06 Nov 1994 08:49:37 GMT")))
    });
    c.bench_function("date/format/imf_fixdate", |b| {
        b.iter(|| black_box(last_modified).to_imf_fixdate())
    });
}

fn multipart_layout(c: &mut Criterion) {
    let content = Bytes::from(vec![0x5au8; LENGTH as usize]);
    let parts = [
        ByteRange {
            first: 0,
            last: 499,
        },
        ByteRange {
            first: 1_000_000,
            last: 1_000_999,
        },
        ByteRange {
            first: LENGTH - 500,
            last: LENGTH - 1,
        },
    ];
    let boundary = multipart::new_boundary();
    let layout = MultipartLayout::new(&parts, LENGTH, Some(CONTENT_TYPE), &boundary);
    assert_eq!(
        layout
            .segments(&content)
            .iter()
            .map(|s| s.len() as u64)
            .sum::<u64>(),
        layout.content_length()
    );

    c.bench_function("multipart/layout/3_parts", |b| {
        b.iter(|| {
            MultipartLayout::new(
                black_box(&parts),
                LENGTH,
                Some(CONTENT_TYPE),
                black_box(&boundary),
            )
        })
    });
    c.bench_function("multipart/layout_and_segments/3_parts", |b| {
        b.iter(|| {
            let layout =
                MultipartLayout::new(black_box(&parts), LENGTH, Some(CONTENT_TYPE), &boundary);
            layout.segments(black_box(&content))
        })
    });
    c.bench_function("multipart/new_boundary", |b| {
        b.iter(multipart::new_boundary)
    });
}

criterion_group!(benches, ranges, preconditions, multipart_layout);
criterion_main!(benches);
