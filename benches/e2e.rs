//! End to end through `rocket::local::asynchronous::Client`: the file server answering
//! 1 KiB 200, 304, a 64 KiB range, a 3-part multipart and 1 MiB 200, beside a
//! hello-world route in the same group, so the crate's own cost per request shows as a
//! ratio to what Rocket charges for any request.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion};
use rocket::config::LogLevel;
use rocket::http::Header;
use rocket::local::asynchronous::Client;
use rocket::{get, routes};
use rocket_mmap::{FileServer, Mmap};

#[get("/hello")]
fn hello() -> &'static str {
    "Hello, world!"
}

fn fixture() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rocket-mmap-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let data = |n: usize| (0..n).map(|i| (i * 131 % 251) as u8).collect::<Vec<u8>>();
    std::fs::write(dir.join("1k.bin"), data(1024)).unwrap();
    std::fs::write(dir.join("1m.bin"), data(1 << 20)).unwrap();
    std::fs::write(dir.join("16m.bin"), data(16 << 20)).unwrap();
    dir
}

fn e2e(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = fixture();
    let client = rt.block_on(async {
        let config = rocket::Config {
            log_level: LogLevel::Off,
            ..rocket::Config::release_default()
        };
        let rocket = rocket::custom(config)
            .attach(Mmap::fairing())
            .mount("/", routes![hello])
            .mount("/files", FileServer::from(&dir));
        Client::untracked(rocket).await.unwrap()
    });
    let etag = rt.block_on(async {
        let r = client.get("/files/1k.bin").dispatch().await;
        r.headers().get_one("ETag").unwrap().to_owned()
    });

    let mut g = c.benchmark_group("e2e");
    g.bench_function("hello_world", |b| {
        b.to_async(&rt).iter(|| async {
            let r = client.get("/hello").dispatch().await;
            black_box(r.into_bytes().await.unwrap());
        })
    });
    g.bench_function("get_1KiB_200", |b| {
        b.to_async(&rt).iter(|| async {
            let r = client.get("/files/1k.bin").dispatch().await;
            black_box(r.into_bytes().await.unwrap());
        })
    });
    g.bench_function("get_1KiB_304", |b| {
        b.to_async(&rt).iter(|| async {
            let r = client
                .get("/files/1k.bin")
                .header(Header::new("If-None-Match", etag.clone()))
                .dispatch()
                .await;
            assert_eq!(r.status().code, 304);
        })
    });
    let mut offset = 0u64;
    g.bench_function("range_64KiB", |b| {
        b.to_async(&rt).iter(|| {
            offset = (offset + 7_919 * 65_536) % ((16 << 20) - 65_536);
            let range = format!("bytes={}-{}", offset, offset + 65_535);
            let client = &client;
            async move {
                let r = client
                    .get("/files/16m.bin")
                    .header(Header::new("Range", range))
                    .dispatch()
                    .await;
                black_box(r.into_bytes().await.unwrap());
            }
        })
    });
    g.bench_function("multipart_3_parts", |b| {
        b.to_async(&rt).iter(|| async {
            let r = client
                .get("/files/1m.bin")
                .header(Header::new(
                    "Range",
                    "bytes=0-999,400000-400999,900000-900999",
                ))
                .dispatch()
                .await;
            black_box(r.into_bytes().await.unwrap());
        })
    });
    g.bench_function("get_1MiB_200", |b| {
        b.to_async(&rt).iter(|| async {
            let r = client.get("/files/1m.bin").dispatch().await;
            black_box(r.into_bytes().await.unwrap());
        })
    });
    g.finish();
}

criterion_group!(benches, e2e);
criterion_main!(benches);
