//! No silent default state (issue 29): a route returning an `MmapFile` or a
//! `StreamedFile` refuses to launch without `Mmap::fairing()` (a Rocket sentinel),
//! whether or not an `Mmap` is managed; with the fairing it launches; a `FileServer`
//! mounted without any state answers 500.

mod common;

use rocket::error::ErrorKind;
use rocket::local::asynchronous::Client;
use rocket::{get, routes, Build, Rocket};
use rocket_mmap::cache::Entry;
use rocket_mmap::{FileServer, Mmap, MmapFile, StreamedFile};

use common::local::{figment, get as get_req, Site};

#[get("/file")]
fn file() -> MmapFile {
    MmapFile::new(std::sync::Arc::new(Entry::from_static(
        b"hello",
        "text/plain",
    )))
}

#[get("/maybe")]
fn maybe() -> Option<MmapFile> {
    None
}

#[get("/stream")]
fn stream() -> StreamedFile<&'static [u8]> {
    StreamedFile::new(&b"hello"[..], "text/plain").size(5)
}

/// Whether igniting `rocket` failed on its sentinels, naming `type_name`.
async fn aborted_by_sentinel(rocket: Rocket<Build>, type_name: &str) -> bool {
    match Client::tracked(rocket).await {
        Ok(_) => false,
        Err(e) => match e.kind() {
            ErrorKind::SentinelAborts(sentries) => {
                sentries.iter().any(|s| s.type_name.contains(type_name))
            }
            other => panic!("ignition failed, but not by a sentinel: {other:?}"),
        },
    }
}

#[rocket::async_test]
async fn responders_refuse_to_launch_without_the_fairing() {
    for (routes, name) in [
        (routes![file], "MmapFile"),
        (routes![maybe], "MmapFile"),
        (routes![stream], "StreamedFile"),
    ] {
        let bare = rocket::custom(figment()).mount("/", routes.clone());
        assert!(
            aborted_by_sentinel(bare, name).await,
            "{name}, nothing attached"
        );
        // Managed state alone does not do: HEAD is recorded by the fairing.
        let managed = rocket::custom(figment())
            .manage(Mmap::default())
            .mount("/", routes.clone());
        assert!(
            aborted_by_sentinel(managed, name).await,
            "{name}, state only"
        );
        let attached = rocket::custom(figment())
            .attach(Mmap::fairing())
            .mount("/", routes);
        assert!(Client::tracked(attached).await.is_ok(), "{name}, fairing");
    }
}

#[rocket::async_test]
async fn a_file_server_without_state_answers_500() {
    let site = Site::new("sentinel-file-server");
    site.file("a.txt", b"hello");
    let c = Client::tracked(rocket::custom(figment()).mount("/", FileServer::from(site.root())))
        .await
        .expect("a file server has no sentinel");
    assert_eq!(get_req(&c, "/a.txt", &[]).await.status, 500);
    let with = Client::tracked(
        rocket::custom(figment())
            .attach(Mmap::fairing())
            .mount("/", FileServer::from(site.root())),
    )
    .await
    .unwrap();
    let r = get_req(&with, "/a.txt", &[]).await;
    assert_eq!((r.status, &r.body[..]), (200, &b"hello"[..]));
}
