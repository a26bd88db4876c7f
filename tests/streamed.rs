//! `StreamedFile`: content from an `AsyncRead` with caller-supplied validators.

use rocket::http::{Header, Status};
use rocket::local::asynchronous::Client;
use rocket::{get, routes};
use rocket_mmap::{EntityTag, StreamedFile};

const DATA: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

fn tag() -> EntityTag {
    EntityTag::new(false, "v1").unwrap()
}

#[get("/sized")]
fn sized() -> StreamedFile<&'static [u8]> {
    StreamedFile::new(DATA, "text/plain")
        .etag(tag())
        .size(DATA.len() as u64)
}

/// 1000 bytes: far-apart ranges stay separate parts.
#[get("/big")]
fn big() -> StreamedFile<&'static [u8]> {
    static BIG: [u8; 1000] = [b'z'; 1000];
    StreamedFile::new(&BIG[..], "text/plain").size(1000)
}

#[get("/unsized")]
fn unsized_() -> StreamedFile<&'static [u8]> {
    StreamedFile::new(DATA, "text/plain").etag(tag())
}

#[get("/short")]
fn short() -> StreamedFile<&'static [u8]> {
    // Claims more than it has: the response must be cut, not completed.
    StreamedFile::new(DATA, "text/plain").size(100)
}

async fn client() -> Client {
    let config = rocket::Config {
        log_level: rocket::config::LogLevel::Off,
        ..rocket::Config::debug_default()
    };
    let rocket = rocket::custom(config)
        .attach(rocket_mmap::Mmap::fairing())
        .mount("/", routes![sized, big, unsized_, short]);
    Client::tracked(rocket).await.unwrap()
}

#[rocket::async_test]
async fn sized_stream_has_length_etag_and_single_ranges() {
    let c = client().await;
    let r = c.get("/sized").dispatch().await;
    assert_eq!(r.status(), Status::Ok);
    assert_eq!(r.headers().get_one("ETag"), Some("\"v1\""));
    assert_eq!(r.headers().get_one("Accept-Ranges"), Some("bytes"));
    assert_eq!(r.into_bytes().await.unwrap(), DATA);

    let r = c
        .get("/sized")
        .header(Header::new("Range", "bytes=10-15"))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::PartialContent);
    assert_eq!(r.headers().get_one("Content-Range"), Some("bytes 10-15/36"));
    assert_eq!(r.into_bytes().await.unwrap(), b"abcdef");

    let r = c
        .get("/sized")
        .header(Header::new("Range", "bytes=-3"))
        .dispatch()
        .await;
    assert_eq!(r.into_bytes().await.unwrap(), b"xyz");

    // Close ranges merge into one part, which a stream can serve.
    let r = c
        .get("/sized")
        .header(Header::new("Range", "bytes=0-0,30-30"))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::PartialContent);
    assert_eq!(r.headers().get_one("Content-Range"), Some("bytes 0-30/36"));

    // Several parts: a stream cannot go back, so the whole content.
    let r = c
        .get("/big")
        .header(Header::new("Range", "bytes=0-0,900-900"))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Ok);
    assert_eq!(r.into_bytes().await.unwrap().len(), 1000);

    let r = c
        .get("/sized")
        .header(Header::new("Range", "bytes=50-"))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::RangeNotSatisfiable);
    assert_eq!(r.headers().get_one("Content-Range"), Some("bytes */36"));
}

#[rocket::async_test]
async fn conditionals_use_the_supplied_etag() {
    let c = client().await;
    let r = c
        .get("/sized")
        .header(Header::new("If-None-Match", "\"v1\""))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::NotModified);
    assert_eq!(r.headers().get_one("ETag"), Some("\"v1\""));
    let r = c
        .get("/unsized")
        .header(Header::new("If-Match", "\"v0\""))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::PreconditionFailed);
}

#[rocket::async_test]
async fn unsized_stream_ignores_range() {
    let c = client().await;
    let r = c
        .get("/unsized")
        .header(Header::new("Range", "bytes=0-1"))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Ok);
    assert_eq!(r.headers().get_one("Accept-Ranges"), None);
    assert_eq!(r.into_bytes().await.unwrap(), DATA);
}

#[rocket::async_test]
async fn stream_shorter_than_its_size_is_cut() {
    let c = client().await;
    let r = c.get("/short").dispatch().await;
    assert_eq!(r.status(), Status::Ok);
    // The body fails to read to the end instead of ending "complete" at 36 bytes.
    assert!(r.into_bytes().await.is_none());
}
