//! Fixtures of the end-to-end tests of the Rocket shell through Rocket's local client
//! (`tests/local_*.rs`): a served directory with a secret next to it, a Rocket with the
//! `Mmap` fairing and logging off, and requests whose response is read out in full.
//!
//! The local client does not write a `Content-Length` header (Rocket's hyper layer
//! does, from the body's preset size); [`Resp::content_length`] reads that size, which
//! is exactly what the server would send.

use std::path::{Path, PathBuf};

use rocket::config::LogLevel;
use rocket::figment::Figment;
use rocket::http::{Header, Method};
use rocket::local::asynchronous::Client;
use rocket::{Build, Rocket};

use rocket_mmap::{FileServer, Mmap};

use super::tempdir::TempDir;

/// What lies next to every [`Site`]'s root and must never be reachable.
pub const SECRET: &[u8] = b"TOP-SECRET-outside-the-root-7f3a9c";

/// The layout used by the file server tests, in a fresh [`TempDir`] (removed on drop):
/// `<base>/root` is served, `<base>/secret.txt` lies next to it and must never be
/// reachable.
pub struct Site {
    base: TempDir,
}

impl Site {
    /// A new site whose directory name contains `name`.
    pub fn new(name: &str) -> Site {
        let base = TempDir::new(&format!("local-{name}"));
        std::fs::create_dir_all(base.join("root")).unwrap();
        std::fs::write(base.join("secret.txt"), SECRET).unwrap();
        Site { base }
    }

    /// The directory holding the root and the secret.
    pub fn base(&self) -> &Path {
        self.base.path()
    }

    /// The served directory.
    pub fn root(&self) -> PathBuf {
        self.base.join("root")
    }

    /// Writes `content` at `rel` below the root (parents created).
    pub fn file(&self, rel: &str, content: &[u8]) -> PathBuf {
        let p = self.root().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        p
    }

    /// Creates the directory `rel` below the root (parents created).
    pub fn dir(&self, rel: &str) -> PathBuf {
        let p = self.root().join(rel);
        std::fs::create_dir_all(&p).unwrap();
        p
    }
}

/// Deterministic, non-repeating-looking content.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 7 + i / 251) % 251) as u8).collect()
}

/// Rocket's debug config with logging off; Rocket.toml and `ROCKET_*` are not read.
pub fn figment() -> Figment {
    Figment::from(rocket::Config {
        log_level: LogLevel::Off,
        ..rocket::Config::debug_default()
    })
}

/// A Rocket on `figment` with the `Mmap` fairing attached.
pub fn rocket_with(figment: Figment) -> Rocket<Build> {
    rocket::custom(figment).attach(Mmap::fairing())
}

/// A tracked local client of `rocket`.
pub async fn client(rocket: Rocket<Build>) -> Client {
    Client::tracked(rocket).await.expect("valid rocket")
}

/// A client for a file server on `root`, mounted at `/`.
pub async fn serve(root: &Path) -> Client {
    client(rocket_with(figment()).mount("/", FileServer::from(root))).await
}

/// A response with everything read out of it.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// The body's preset size: what the server sends as `Content-Length`.
    pub size: Option<usize>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn h(&self, name: &str) -> &str {
        self.header(name)
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
    }

    pub fn content_length(&self) -> Option<usize> {
        match self.header("Content-Length") {
            Some(v) => Some(v.parse().unwrap()),
            None => self.size,
        }
    }

    pub fn etag(&self) -> &str {
        self.h("ETag")
    }
}

pub async fn send(client: &Client, method: Method, uri: &str, headers: &[(&str, &str)]) -> Resp {
    let mut req = client.req(method, uri);
    for (n, v) in headers {
        req.add_header(Header::new(n.to_string(), v.to_string()));
    }
    let resp = req.dispatch().await;
    let status = resp.status().code;
    let headers = resp
        .headers()
        .iter()
        .map(|h| (h.name().to_string(), h.value().to_string()))
        .collect();
    let size = resp.body().preset_size();
    let body = resp.into_bytes().await.unwrap_or_default();
    Resp {
        status,
        headers,
        size,
        body,
    }
}

pub async fn get(client: &Client, uri: &str, headers: &[(&str, &str)]) -> Resp {
    send(client, Method::Get, uri, headers).await
}

pub async fn head(client: &Client, uri: &str, headers: &[(&str, &str)]) -> Resp {
    send(client, Method::Head, uri, headers).await
}

pub fn assert_strong_quoted_etag(tag: &str) {
    assert!(
        tag.len() > 2 && tag.starts_with('"') && tag.ends_with('"'),
        "ETag not a quoted strong tag: {tag:?}"
    );
    assert!(
        !tag[1..tag.len() - 1].contains('"'),
        "ETag has inner quotes: {tag:?}"
    );
}
