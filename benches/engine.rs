//! Engine benches: the cache hit path, ETag (CRC-64) and digest (SHA-256, SHA-512)
//! throughput beside a plain memcpy of the same bytes, reading bodies out of the
//! mapping through a chunk buffer, and what the residency test (`mincore`, issue 21)
//! costs a resident file: its body read through `AsyncRead` beside the same bytes
//! from the heap, which take no test.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rocket_mmap::cache::SegmentBody;
use rocket_mmap::cache::{Cache, CacheConfig, Entry, Revalidate};
use rocket_mmap::EntityTag;
use tokio::io::ReadBuf;

fn temp_file(name: &str, len: usize) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rocket-mmap-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(&p, data).unwrap();
    p
}

fn cache_hit(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let path = temp_file("hit.bin", 1024);
    let mut g = c.benchmark_group("cache/hit");
    for (name, revalidate) in [
        ("revalidate_always", Revalidate::Always),
        (
            "revalidate_every_1s",
            Revalidate::Every(Duration::from_secs(1)),
        ),
        ("revalidate_never", Revalidate::Never),
    ] {
        let cache = Cache::new(CacheConfig {
            revalidate,
            ..CacheConfig::default()
        });
        rt.block_on(cache.get(&path)).unwrap();
        g.bench_function(name, |b| {
            b.iter(|| rt.block_on(cache.get(black_box(&path))).unwrap())
        });
    }
    g.finish();
}

fn etag_vs_memcpy(c: &mut Criterion) {
    let len = 64 << 20;
    let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
    let mut dst = vec![0u8; len];
    let mut g = c.benchmark_group("etag_vs_memcpy_64MiB");
    g.throughput(Throughput::Bytes(len as u64));
    g.sample_size(20);
    g.bench_function("crc64_etag", |b| {
        b.iter(|| EntityTag::from_content(black_box(&data)))
    });
    // The digests' code: `sha2`, which picks SHA-NI at run time for SHA-256.
    g.bench_function("sha256_digest", |b| {
        b.iter(|| <sha2::Sha256 as sha2::Digest>::digest(black_box(&data)))
    });
    g.bench_function("sha512_digest", |b| {
        b.iter(|| <sha2::Sha512 as sha2::Digest>::digest(black_box(&data)))
    });
    g.bench_function("memcpy", |b| {
        b.iter(|| {
            dst.copy_from_slice(black_box(&data));
            black_box(&dst);
        })
    });
    g.finish();
}

fn body_reads(c: &mut Criterion) {
    let entry = Entry::from_bytes(vec![5u8; 1 << 20], "application/octet-stream");
    let mut g = c.benchmark_group("body/read_1MiB");
    g.throughput(Throughput::Bytes(1 << 20));
    for chunk in [4096usize, 65536, 262144] {
        let mut buf = vec![0u8; chunk];
        g.bench_function(format!("chunk_{chunk}"), |b| {
            b.iter(|| {
                let mut body = SegmentBody::single(entry.content().clone());
                loop {
                    let mut rb = ReadBuf::new(&mut buf);
                    if body.read_into(&mut rb).unwrap() == 0 {
                        break;
                    }
                }
            })
        });
    }
    g.finish();
}

/// A whole body read through `AsyncRead` (as Rocket reads it) in 64 KiB chunks,
/// polled by hand: no runtime in the measurement.
fn drain(mut body: SegmentBody, buf: &mut [u8]) -> usize {
    use std::task::{Context, Poll, Waker};
    use tokio::io::AsyncRead;
    let mut cx = Context::from_waker(Waker::noop());
    let mut total = 0;
    loop {
        let mut rb = ReadBuf::new(buf);
        match std::pin::Pin::new(&mut body).poll_read(&mut cx, &mut rb) {
            Poll::Ready(Ok(())) if rb.filled().is_empty() => return total,
            Poll::Ready(Ok(())) => total += rb.filled().len(),
            other => panic!("a resident body must not wait or fail: {other:?}"),
        }
    }
}

fn resident_bodies(c: &mut Criterion) {
    use rocket_mmap::semantics::decide::ServeRequest;
    use rocket_mmap::semantics::precondition::Method;
    use rocket_mmap::semantics::range::RangeLimits;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // "never": no end-of-body `stat`, so the two differ by the residency test (and the
    // truncation probe) only.
    let cache = Cache::new(CacheConfig {
        revalidate: Revalidate::Never,
        ..CacheConfig::default()
    });
    let mut buf = vec![0u8; 64 << 10];
    let now = std::time::SystemTime::now();
    let get = ServeRequest::new(Method::Get);
    for (name, len) in [
        ("1KiB", 1usize << 10),
        ("64KiB", 64 << 10),
        ("1MiB", 1 << 20),
    ] {
        let mapped = rt
            .block_on(cache.get(&temp_file(&format!("resident-{name}.bin"), len)))
            .unwrap();
        let heap = Entry::from_bytes(mapped.content().to_vec(), "application/octet-stream");
        let mut g = c.benchmark_group(format!("body/poll_read_{name}"));
        g.throughput(Throughput::Bytes(len as u64));
        for (who, entry) in [("mapped_resident", &*mapped), ("heap", &heap)] {
            g.bench_function(who, |b| {
                b.iter(|| {
                    let reply =
                        rocket_mmap::cache::respond(entry, &get, &RangeLimits::default(), now);
                    black_box(drain(reply.body, &mut buf))
                })
            });
        }
        g.finish();
    }
}

criterion_group!(
    benches,
    cache_hit,
    etag_vs_memcpy,
    body_reads,
    resident_bodies
);
criterion_main!(benches);
