//! Precompressed variants: `FILE.br` / `FILE.gz` served for `FILE` by Accept-Encoding.

use std::path::{Path, PathBuf};

use rocket::http::{Header, Status};
use rocket::local::asynchronous::{Client, LocalResponse};
use rocket_mmap::{EntityTag, FileServer, Mmap};

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("rocket-mmap-pre-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
    fn write(&self, name: &str, bytes: &[u8]) {
        std::fs::write(self.0.join(name), bytes).unwrap();
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const PLAIN: &[u8] = b"console.log('the identity bytes of app.js, long enough to compress');\n";
const GZ: &[u8] = b"pretend-gzip-bytes-of-app.js";
const BR: &[u8] = b"pretend-brotli-bytes-of-app.js";

async fn client(root: &Path, server: FileServer) -> Client {
    let _ = root;
    let config = rocket::Config {
        log_level: rocket::config::LogLevel::Off,
        ..rocket::Config::debug_default()
    };
    let rocket = rocket::custom(config)
        .attach(Mmap::fairing())
        .mount("/", server);
    Client::untracked(rocket).await.unwrap()
}

fn fixture(name: &str) -> Dir {
    let d = Dir::new(name);
    d.write("app.js", PLAIN);
    d.write("app.js.gz", GZ);
    d.write("app.js.br", BR);
    d.write("plain.txt", b"no siblings here");
    d
}

async fn get(
    c: &Client,
    path: &str,
    headers: &[(&'static str, &'static str)],
) -> (Status, Vec<(String, String)>, Vec<u8>) {
    let mut req = c.get(path.to_owned());
    for (k, v) in headers {
        req = req.header(Header::new(*k, *v));
    }
    let r: LocalResponse<'_> = req.dispatch().await;
    let status = r.status();
    let hs = r
        .headers()
        .iter()
        .map(|h| {
            (
                h.name().to_string().to_ascii_lowercase(),
                h.value().to_owned(),
            )
        })
        .collect();
    (status, hs, r.into_bytes().await.unwrap_or_default())
}

fn h<'a>(hs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    hs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

#[rocket::async_test]
async fn brotli_is_preferred_and_typed_as_the_original() {
    let d = fixture("br");
    let c = client(&d.0, FileServer::from(&d.0)).await;
    let (s, hs, body) = get(&c, "/app.js", &[("Accept-Encoding", "gzip, deflate, br")]).await;
    assert_eq!(s, Status::Ok);
    assert_eq!(body, BR);
    assert_eq!(h(&hs, "content-encoding"), Some("br"));
    assert_eq!(h(&hs, "vary"), Some("Accept-Encoding"));
    assert!(
        h(&hs, "content-type")
            .unwrap()
            .starts_with("text/javascript")
            || h(&hs, "content-type")
                .unwrap()
                .starts_with("application/javascript")
    );
    // Each encoding has its own (content-derived) ETag.
    assert_eq!(
        h(&hs, "etag"),
        Some(EntityTag::from_content(BR).to_string().as_str())
    );
}

#[rocket::async_test]
async fn gzip_when_only_gzip_is_accepted_and_identity_without_header() {
    let d = fixture("gz");
    let c = client(&d.0, FileServer::from(&d.0)).await;
    let (_, hs, body) = get(&c, "/app.js", &[("Accept-Encoding", "gzip")]).await;
    assert_eq!(body, GZ);
    assert_eq!(h(&hs, "content-encoding"), Some("gzip"));
    let (_, hs, body) = get(&c, "/app.js", &[]).await;
    assert_eq!(body, PLAIN);
    assert_eq!(h(&hs, "content-encoding"), None);
    assert_eq!(
        h(&hs, "vary"),
        Some("Accept-Encoding"),
        "identity varies too"
    );
    assert_eq!(
        h(&hs, "etag"),
        Some(EntityTag::from_content(PLAIN).to_string().as_str())
    );
    let (_, hs, body) = get(&c, "/app.js", &[("Accept-Encoding", "br;q=0, gzip;q=0")]).await;
    assert_eq!(body, PLAIN);
    assert_eq!(h(&hs, "content-encoding"), None);
}

#[rocket::async_test]
async fn ranges_and_conditionals_apply_to_the_encoded_bytes() {
    let d = fixture("range");
    let c = client(&d.0, FileServer::from(&d.0)).await;
    let (s, hs, body) = get(
        &c,
        "/app.js",
        &[("Accept-Encoding", "br"), ("Range", "bytes=0-6")],
    )
    .await;
    assert_eq!(s, Status::PartialContent);
    assert_eq!(body, &BR[..7]);
    assert_eq!(
        h(&hs, "content-range"),
        Some(format!("bytes 0-6/{}", BR.len()).as_str())
    );
    assert_eq!(h(&hs, "content-encoding"), Some("br"));
    let br_tag: &'static str = Box::leak(EntityTag::from_content(BR).to_string().into_boxed_str());
    let (s, hs, _) = get(
        &c,
        "/app.js",
        &[("Accept-Encoding", "br"), ("If-None-Match", br_tag)],
    )
    .await;
    assert_eq!(s, Status::NotModified);
    assert_eq!(h(&hs, "vary"), Some("Accept-Encoding"));
    // The br tag does not validate the gzip variant.
    let (s, _, body) = get(
        &c,
        "/app.js",
        &[("Accept-Encoding", "gzip"), ("If-None-Match", br_tag)],
    )
    .await;
    assert_eq!(s, Status::Ok);
    assert_eq!(body, GZ);
}

#[rocket::async_test]
async fn files_without_siblings_do_not_vary_and_the_option_turns_it_off() {
    let d = fixture("off");
    let c = client(&d.0, FileServer::from(&d.0)).await;
    let (_, hs, _) = get(&c, "/plain.txt", &[("Accept-Encoding", "br, gzip")]).await;
    assert_eq!(h(&hs, "vary"), None);
    assert_eq!(h(&hs, "content-encoding"), None);
    let c = client(&d.0, FileServer::from(&d.0).precompressed(false)).await;
    let (_, hs, body) = get(&c, "/app.js", &[("Accept-Encoding", "br, gzip")]).await;
    assert_eq!(body, PLAIN);
    assert_eq!(h(&hs, "content-encoding"), None);
    assert_eq!(h(&hs, "vary"), None);
}

#[rocket::async_test]
async fn a_vanished_variant_falls_back_to_identity() {
    let d = fixture("vanish");
    let c = client(&d.0, FileServer::from(&d.0)).await;
    let (_, _, body) = get(&c, "/app.js", &[("Accept-Encoding", "br")]).await;
    assert_eq!(body, BR);
    std::fs::remove_file(d.0.join("app.js.br")).unwrap();
    let (s, hs, body) = get(&c, "/app.js", &[("Accept-Encoding", "br")]).await;
    assert_eq!(s, Status::Ok);
    assert_eq!(body, PLAIN);
    assert_eq!(h(&hs, "content-encoding"), None);
}
