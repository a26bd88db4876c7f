//! Engine benches: the cache hit path, ETag (CRC-64) and digest (SHA-256, SHA-512)
//! throughput beside a plain memcpy of the same bytes, and reading bodies out of the
//! mapping through a chunk buffer.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rocket_mmap::SegmentBody;
use rocket_mmap::{Cache, CacheConfig, EntityTag, Entry, Revalidate};
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

criterion_group!(benches, cache_hit, etag_vs_memcpy, body_reads);
criterion_main!(benches);
