//! Integrity digests through Rocket (local client): which statuses carry `Repr-Digest`
//! (RFC 9530) and `Digest` (RFC 3230), their values against SHA-256 / SHA-512 of the
//! content, negotiation, configuration, precompressed variants, in-memory entries, a
//! changed file, and one hash for 32 concurrent first requests.

mod common;

use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use rocket::http::{Header, Status};
use rocket::local::asynchronous::Client;
use rocket::{get, routes, State};
use rocket_mmap::cache::{CacheConfig, Entry};
use rocket_mmap::semantics::digest::DigestAlgorithm;
use rocket_mmap::{FileServer, Mmap, MmapFile, ResponseOptions};
use sha2::{Digest, Sha256, Sha512};

use common::{etag_of, pseudo_random, TempDir};

const WANT_SHA256: (&str, &str) = ("Want-Repr-Digest", "sha-256=1");
const ARIA2: (&str, &str) = ("Want-Digest", "SHA-512;q=1, SHA-256;q=1, SHA;q=0.1");

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn repr_sha256(content: &[u8]) -> String {
    format!("sha-256=:{}:", b64(&Sha256::digest(content)))
}

fn repr_sha512(content: &[u8]) -> String {
    format!("sha-512=:{}:", b64(&Sha512::digest(content)))
}

fn legacy_sha256(content: &[u8]) -> String {
    format!("SHA-256={}", b64(&Sha256::digest(content)))
}

async fn client_with(root: &Path, mmap: Option<Mmap>) -> Client {
    let config = rocket::Config {
        log_level: rocket::config::LogLevel::Off,
        ..rocket::Config::debug_default()
    };
    let mut rocket = rocket::custom(config);
    if let Some(m) = mmap {
        rocket = rocket.manage(m);
    }
    let rocket = rocket
        .attach(Mmap::fairing())
        .mount("/", FileServer::from(root));
    Client::untracked(rocket).await.unwrap()
}

async fn client(root: &Path) -> Client {
    client_with(root, None).await
}

fn with_options(options: ResponseOptions) -> Mmap {
    Mmap::new(CacheConfig::default(), options)
}

/// The status, the named response headers (lower-case names) and the body.
struct Got {
    status: Status,
    repr: Option<String>,
    legacy: Option<String>,
    etag: Option<String>,
    body: Vec<u8>,
}

async fn request(c: &Client, head: bool, path: &str, headers: &[(&str, &str)]) -> Got {
    let mut req = if head {
        c.head(path.to_owned())
    } else {
        c.get(path.to_owned())
    };
    for (k, v) in headers {
        req = req.header(Header::new(k.to_string(), v.to_string()));
    }
    let r = req.dispatch().await;
    let one = |n: &str| r.headers().get_one(n).map(str::to_owned);
    let (repr, legacy, etag) = (one("Repr-Digest"), one("Digest"), one("ETag"));
    assert!(
        r.headers().get("Repr-Digest").count() <= 1 && r.headers().get("Digest").count() <= 1,
        "one field line each"
    );
    Got {
        status: r.status(),
        repr,
        legacy,
        etag,
        body: r.into_bytes().await.unwrap_or_default(),
    }
}

async fn get(c: &Client, path: &str, headers: &[(&str, &str)]) -> Got {
    request(c, false, path, headers).await
}

/// GETs `path` until a response carries the digest `field` picks (its tag's hash and
/// the digest's run in the background: no response waits for them), bounded; every
/// digest seen must be `want`, and a response with a digest carries an ETag.
async fn until_digest(
    c: &Client,
    path: &str,
    headers: &[(&str, &str)],
    field: fn(&Got) -> Option<&String>,
    want: &str,
) -> Got {
    for _ in 0..400 {
        let g = get(c, path, headers).await;
        match field(&g) {
            Some(d) => {
                assert_eq!(d, want, "never another version's digest");
                assert!(g.etag.is_some(), "a digest comes with the ETag");
                return g;
            }
            None => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
        }
    }
    panic!("no digest on {path} after 400 requests");
}

fn repr(g: &Got) -> Option<&String> {
    g.repr.as_ref()
}

#[rocket::async_test]
async fn statuses_200_206_multipart_and_head_carry_the_whole_representations_digest() {
    let dir = TempDir::new("digest-statuses");
    let data = pseudo_random(1, 300_000);
    dir.write("f.bin", &data);
    let c = client(dir.path()).await;
    let want = repr_sha256(&data);
    let legacy = legacy_sha256(&data);
    // Larger than what is hashed inline: computed in the background after the first
    // responses, then sent by every status that carries a representation.
    until_digest(&c, "/f.bin", &[WANT_SHA256, ARIA2], repr, &want).await;
    until_digest(&c, "/f.bin", &[ARIA2], |g| g.legacy.as_ref(), &legacy).await;
    for (name, head, range) in [
        ("200", false, None),
        ("206", false, Some("bytes=100-199")),
        ("multipart 206", false, Some("bytes=0-9,200000-200009")),
        ("HEAD", true, None),
        ("HEAD with Range (ignored)", true, Some("bytes=0-9")),
    ] {
        let mut hs = vec![WANT_SHA256, ARIA2];
        if let Some(r) = range {
            hs.push(("Range", r));
        }
        let g = request(&c, head, "/f.bin", &hs).await;
        let expect = if range.is_some() && !head {
            Status::PartialContent
        } else {
            Status::Ok
        };
        assert_eq!(g.status, expect, "{name}");
        assert_eq!(g.repr.as_deref(), Some(want.as_str()), "{name}");
        assert_eq!(g.legacy.as_deref(), Some(legacy.as_str()), "{name}");
        if name == "206" {
            assert_eq!(g.body, &data[100..200]);
        }
    }
}

#[rocket::async_test]
async fn statuses_304_412_416_never_carry_one() {
    let dir = TempDir::new("digest-none");
    let data = pseudo_random(2, 50_000);
    dir.write("f.bin", &data);
    let c = client(dir.path()).await;
    let etag = etag_of(&data);
    for (name, extra, status) in [
        ("304", ("If-None-Match", etag.as_str()), Status::NotModified),
        ("412", ("If-Match", "\"other\""), Status::PreconditionFailed),
        (
            "416",
            ("Range", "bytes=999999-"),
            Status::RangeNotSatisfiable,
        ),
    ] {
        let g = get(&c, "/f.bin", &[WANT_SHA256, ARIA2, extra]).await;
        assert_eq!(g.status, status, "{name}");
        assert_eq!((g.repr, g.legacy), (None, None), "{name}");
    }
    // And a 304 asked for nothing computes nothing.
    let mmap = c.rocket().state::<Mmap>().unwrap();
    let entry = mmap.cache().get(&dir.join("f.bin")).await.unwrap();
    assert_eq!(entry.digest_computations(), 0);
}

#[rocket::async_test]
async fn negotiation_follows_the_clients_weights_then_the_servers_order() {
    let dir = TempDir::new("digest-negotiate");
    let data = pseudo_random(3, 10_000);
    dir.write("f.bin", &data);
    let c = client(dir.path()).await;
    let g = get(
        &c,
        "/f.bin",
        &[("Want-Repr-Digest", "sha-512=10, sha-256=1")],
    )
    .await;
    assert_eq!(g.repr, Some(repr_sha512(&data)));
    assert_eq!(g.legacy, None, "Digest only when Want-Digest asks");
    // aria2's default header: a tie, the server's first (SHA-256).
    let g = get(&c, "/f.bin", &[ARIA2]).await;
    assert_eq!((g.repr, g.legacy), (None, Some(legacy_sha256(&data))));
    let g = get(
        &c,
        "/f.bin",
        &[("Want-Digest", "sha-256;q=0.2, SHA-512;q=0.9")],
    )
    .await;
    assert_eq!(
        g.legacy,
        Some(format!("SHA-512={}", b64(&Sha512::digest(&data))))
    );
    for none in [
        vec![],
        vec![("Want-Repr-Digest", "sha-256=0")],
        vec![("Want-Repr-Digest", "md5=10, unixsum=3")],
        vec![("Want-Repr-Digest", "\u{1}\"(,;=garbage")],
        vec![("Want-Digest", "SHA;q=1, MD5")],
        vec![("Want-Digest", "SHA-256;q=2")],
    ] {
        let g = get(&c, "/f.bin", &none).await;
        assert_eq!(g.status, Status::Ok, "{none:?}");
        assert_eq!((g.repr, g.legacy), (None, None), "{none:?}");
        assert_eq!(g.body, data);
    }
    // A field sent in two lines is one dictionary (RFC 9110 §5.3): the later member wins.
    let g = get(
        &c,
        "/f.bin",
        &[
            ("Want-Repr-Digest", "sha-256=9"),
            ("Want-Repr-Digest", "sha-256=0, sha-512=1"),
        ],
    )
    .await;
    assert_eq!(g.repr, Some(repr_sha512(&data)));
}

#[rocket::async_test]
async fn configuration_turns_digests_off_restricts_them_or_sends_them_unasked() {
    let dir = TempDir::new("digest-config");
    let data = pseudo_random(4, 10_000);
    dir.write("f.bin", &data);

    let off = with_options(ResponseOptions {
        digests: vec![],
        ..ResponseOptions::default()
    });
    let c = client_with(dir.path(), Some(off)).await;
    let g = get(&c, "/f.bin", &[WANT_SHA256, ARIA2]).await;
    assert_eq!((g.repr, g.legacy), (None, None));

    let only512 = with_options(ResponseOptions {
        digests: vec![DigestAlgorithm::Sha512],
        ..ResponseOptions::default()
    });
    let c = client_with(dir.path(), Some(only512)).await;
    let g = get(&c, "/f.bin", &[WANT_SHA256, ARIA2]).await;
    assert_eq!(g.repr, None, "sha-256 is not offered");
    assert_eq!(
        g.legacy,
        Some(format!("SHA-512={}", b64(&Sha512::digest(&data))))
    );

    let unsolicited = with_options(ResponseOptions {
        digest_unsolicited: true,
        ..ResponseOptions::default()
    });
    let c = client_with(dir.path(), Some(unsolicited)).await;
    let g = get(&c, "/f.bin", &[]).await;
    assert_eq!((g.repr, g.legacy), (Some(repr_sha256(&data)), None));
    let g = get(&c, "/f.bin", &[("Range", "bytes=0-0")]).await;
    assert_eq!(g.repr, Some(repr_sha256(&data)));
    let g = get(&c, "/f.bin", &[("Want-Repr-Digest", "sha-256=0")]).await;
    assert_eq!(g.repr, None, "the client's 0 still excludes it");
}

#[rocket::async_test]
async fn a_precompressed_variant_has_the_digest_of_its_encoded_bytes() {
    let dir = TempDir::new("digest-gzip");
    let plain = b"the identity bytes of app.js".repeat(100);
    let gz = b"pretend-gzip-bytes".to_vec();
    dir.write("app.js", &plain);
    dir.write("app.js.gz", &gz);
    let c = client(dir.path()).await;
    let g = get(&c, "/app.js", &[WANT_SHA256, ("Accept-Encoding", "gzip")]).await;
    assert_eq!(g.body, gz);
    assert_eq!(g.repr, Some(repr_sha256(&gz)));
    let g = get(&c, "/app.js", &[WANT_SHA256]).await;
    assert_eq!(g.body, plain);
    assert_eq!(g.repr, Some(repr_sha256(&plain)));
}

#[rocket::async_test]
async fn a_changed_file_gets_its_new_digest_never_the_old_one() {
    let dir = TempDir::new("digest-change");
    let v1 = pseudo_random(5, 200_000);
    let v2 = pseudo_random(6, 200_000);
    let path = dir.write("f.bin", &v1);
    let c = client(dir.path()).await;
    let g = until_digest(&c, "/f.bin", &[WANT_SHA256], repr, &repr_sha256(&v1)).await;
    assert_eq!(g.body, v1);
    // Replaced by rename (a new inode): never v1's digest again.
    let tmp = dir.write("f.tmp", &v2);
    std::fs::rename(tmp, &path).unwrap();
    let g = until_digest(&c, "/f.bin", &[WANT_SHA256], repr, &repr_sha256(&v2)).await;
    assert_eq!(g.body, v2);
    // Rewritten in place (same inode, same size): only the fingerprint tells.
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&path, &v1).unwrap();
    let g = until_digest(&c, "/f.bin", &[WANT_SHA256], repr, &repr_sha256(&v1)).await;
    assert_eq!(g.body, v1);
    assert_eq!(g.etag, Some(etag_of(&v1)));
}

#[rocket::async_test]
async fn thirty_two_concurrent_first_requests_do_not_wait_and_hash_once() {
    let dir = TempDir::new("digest-flight");
    let data = pseudo_random(7, 8 << 20);
    dir.write("big.bin", &data);
    let c = client(dir.path()).await;
    let tag = etag_of(&data);
    let reqs = (0..32).map(|i| {
        let range = format!("bytes={}-{}", i * 1000, i * 1000 + 9);
        let (c, tag) = (&c, &tag);
        async move {
            let g = get(c, "/big.bin", &[WANT_SHA256, ("Range", range.as_str())]).await;
            assert_eq!(g.status, Status::PartialContent);
            // A range waits for the strong tag, never for the digest.
            assert_eq!(g.etag.as_ref(), Some(tag));
            g.repr
        }
    });
    let got = rocket::futures::future::join_all(reqs).await;
    let want = repr_sha256(&data);
    assert!(
        got.iter()
            .all(|r| r.is_none() || r.as_deref() == Some(want.as_str())),
        "{got:?}"
    );
    until_digest(&c, "/big.bin", &[WANT_SHA256], repr, &want).await;
    let mmap = c.rocket().state::<Mmap>().unwrap();
    let entry = mmap.cache().get(&dir.join("big.bin")).await.unwrap();
    assert_eq!(entry.digest_computations(), 1, "one hash for 32 requests");
    assert_eq!(mmap.cache().stats().loads, 1);
}

struct Blobs {
    small: Arc<Entry>,
    big: Arc<Entry>,
}

#[get("/small")]
fn small(b: &State<Blobs>) -> MmapFile {
    MmapFile::new(b.small.clone())
}

#[get("/big")]
fn big(b: &State<Blobs>) -> MmapFile {
    MmapFile::new(b.big.clone())
}

#[get("/static")]
fn from_static() -> MmapFile {
    MmapFile::from_static(b"static bytes", "text/plain")
}

#[rocket::async_test]
async fn in_memory_entries_in_routes_get_digests_too() {
    let big_data = pseudo_random(8, 4 << 20);
    let blobs = Blobs {
        small: Arc::new(Entry::from_bytes(b"small blob".to_vec(), "text/plain")),
        big: Arc::new(Entry::from_bytes(
            big_data.clone(),
            "application/octet-stream",
        )),
    };
    let config = rocket::Config {
        log_level: rocket::config::LogLevel::Off,
        ..rocket::Config::debug_default()
    };
    let rocket = rocket::custom(config)
        .attach(Mmap::fairing())
        .manage(blobs)
        .mount("/", routes![small, big, from_static]);
    let c = Client::untracked(rocket).await.unwrap();
    // Small content: hashed inline, on the first response.
    let g = get(&c, "/small", &[WANT_SHA256]).await;
    assert_eq!(g.repr, Some(repr_sha256(b"small blob")));
    let g = get(&c, "/static", &[ARIA2]).await;
    assert_eq!(g.legacy, Some(legacy_sha256(b"static bytes")));
    // Large content from a route: a responder cannot wait, so the first response goes
    // without while the blocking pool hashes; a later one carries it.
    let first = get(&c, "/big", &[WANT_SHA256]).await;
    assert_eq!((first.body == big_data, first.repr), (true, None));
    let mut later = None;
    for _ in 0..200 {
        later = get(
            &c,
            "/big",
            &[("Want-Repr-Digest", "sha-256=1"), ("Range", "bytes=0-0")],
        )
        .await
        .repr;
        if later.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(later, Some(repr_sha256(&big_data)));
    let blobs = c.rocket().state::<Blobs>().unwrap();
    assert_eq!(blobs.big.digest_computations(), 1);
}

/// The first byte never waits for a digest: the first responses to aria2's default
/// `Want-Digest` and to `Want-Repr-Digest` on a large file (with no background hashing,
/// so nothing has hashed it before) carry none, and no ETag either while the tag is
/// unknown; a range (the file is in memory, so it waits briefly for the tag) waits
/// for the tag only; a later response carries the digest.
#[rocket::async_test]
async fn a_large_files_first_responses_carry_no_digest_and_a_later_one_does() {
    let dir = TempDir::new("digest-first-byte");
    let data = pseudo_random(9, 3 << 20);
    dir.write("big.bin", &data);
    // Settled, as a deployed file is: a file changed moments ago waits for its tag.
    std::thread::sleep(rocket_mmap::cache::SETTLE * 2);
    let lazy = Mmap::new(
        CacheConfig {
            max_background_hashes: 0,
            ..CacheConfig::default()
        },
        ResponseOptions::default(),
    );
    let c = client_with(dir.path(), Some(lazy)).await;
    for headers in [[ARIA2], [WANT_SHA256]] {
        let g = get(&c, "/big.bin", &headers).await;
        assert_eq!(g.status, Status::Ok);
        assert_eq!(g.body, data);
        assert_eq!(
            (g.etag, g.repr, g.legacy),
            (None, None, None),
            "{headers:?}"
        );
    }
    let mmap = c.rocket().state::<Mmap>().unwrap();
    let entry = mmap.cache().get(&dir.join("big.bin")).await.unwrap();
    assert_eq!(entry.digest_computations(), 0, "nothing hashed for them");
    // A range of a file in memory waits briefly for its tag (hashed now, in about a
    // millisecond), not for the digest, which it starts.
    let g = get(&c, "/big.bin", &[ARIA2, ("Range", "bytes=0-99")]).await;
    assert_eq!(g.status, Status::PartialContent);
    assert_eq!(g.etag, Some(etag_of(&data)));
    assert_eq!(g.body, &data[..100]);
    let legacy = legacy_sha256(&data);
    if let Some(d) = &g.legacy {
        assert_eq!(d, &legacy);
    }
    // Plain GETs now carry the tag, and the digest once it is computed.
    until_digest(&c, "/big.bin", &[ARIA2], |g| g.legacy.as_ref(), &legacy).await;
    assert_eq!(entry.digest_computations(), 1);
}
