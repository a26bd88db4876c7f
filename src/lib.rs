//! # rocket-mmap
//!
//! Memory-mapped file serving for [Rocket](https://rocket.rs) with everything a
//! download needs: byte ranges (single and `multipart/byteranges`), strong
//! content-derived ETags and every conditional request of RFC 9110.
//!
#![cfg_attr(feature = "rocket", doc = "```rust,no_run")]
#![cfg_attr(not(feature = "rocket"), doc = "```rust,ignore")]
//! # #[macro_use] extern crate rocket;
//! use rocket_mmap::{FileServer, Mmap};
//!
//! #[launch]
//! fn rocket() -> _ {
//!     rocket::build()
//!         .attach(Mmap::fairing()) // the `mmap` section of Rocket.toml
//!         .mount("/", FileServer::from("static"))
//! }
//! ```
//!
//! ## The public API
//!
//! The root holds what a Rocket application names; everything else is one module
//! away, grouped by what it is for.
//!
//! | path | what | why it is here |
//! |---|---|---|
//! | [`FileServer`], [`Symlinks`] | a handler serving a directory, and which links it follows | the drop-in for `rocket::fs::FileServer`: what most applications use and nothing else |
//! | [`MmapFile`] | the responder for one cached file or in-memory blob | what a route returns |
//! | [`StreamedFile`] | the same rules over an `AsyncRead` | what a route returns for content that is not a file |
//! | [`Mmap`] | the managed state: the cache and the response options | what a route takes as `&State<Mmap>` |
//! | [`MmapConfig`], [`ConfigError`] | the `mmap` section of `Rocket.toml`, and what can be wrong in it | configuration in code, and the error to match |
//! | [`ResponseOptions`] | range bounds, chunk size, `Cache-Control`, digests, pace | the second half of [`Mmap::new`] |
//! | [`RateLimit`] | a response's pace (nginx's `limit_rate`) | the field of [`ResponseOptions`] that [`MmapFile::limit_rate`] and [`FileServer::limit_rate`] override |
//! | [`CacheError`] | why a path could not be served | what a route returns beside [`MmapFile`] |
//! | [`EntityTag`] | a strong or weak entity tag (RFC 9110 §8.8.3) | what a route gives [`StreamedFile`] |
//! | [`AccessLog`] | the access log fairing (combined log format) | attached by applications that log |
//! | `Metrics` | the Prometheus endpoint (feature `metrics`) | mounted by applications that export metrics |
//! | [`setup`] | the fairings' types, the values of configuration keys, defaults, the access log's flusher, the TLS check | named while setting a server up, rarely in a route |
//! | [`cache`] | the engine without Rocket: [`Cache`](cache::Cache), [`Entry`](cache::Entry), [`respond`](cache::respond), the body, the counters, the tag store | for serving from another framework, for tests, benchmarks and monitoring |
//! | [`semantics`] | RFC 9110 as plain values in, decisions out: ranges, entity tags, dates, preconditions, the decision for a request, multipart layout, digests, paths | a framework-free HTTP library of its own |
//!
//! That is 16 items at the root (13 types, 3 modules) with the default features or
//! every feature, 15 for a library that asks for `features = ["rocket"]` alone (no
//! `Metrics`); `default-features = false` (no Rocket) leaves [`cache`],
//! [`semantics`], [`CacheError`], [`EntityTag`] and [`RateLimit`]. Nothing of the
//! memory mapping itself (its SIGBUS guard, its poison flag) is public, and every
//! type a public signature names can be named by its user.
//!
//! Items behind a feature are marked as such on docs.rs.
//!
//! ## The map
//!
//! Three layers, a folder each; arrows only run downwards (shell → engine →
//! semantics), never back:
//!
//! | folder | layer | holds |
//! |---|---|---|
//! | `semantics/` | RFC 9110, pure ([`semantics`]) | ranges, entity tags, dates, preconditions, the decision for a request, multipart layout, content types and codings, `Content-Disposition`, request paths, `Want-Repr-Digest` / `Want-Digest` negotiation, directory listings (feature `browse`). No file system, no mapping, no Rocket. |
//! | `engine/` | the mmap engine ([`cache`]) | file fingerprints, mappings and the SIGBUS guard (the only `unsafe`), entries, loading and hashing, integrity digests (SHA-256 / SHA-512 once per entry), the bounded [`Cache`](cache::Cache), its counters ([`CacheStats`](cache::CacheStats)), the segment [`SegmentBody`](cache::SegmentBody) (which never copies a page that is not in memory on an async worker: it is faulted in on the blocking pool first) and its pace ([`RateLimit`]), [`respond`](cache::respond) (a decision turned into a body), directory reading and the cache of listings (feature `browse`), and the tag store that keeps ETags and digests across restarts (feature `tag-store`). No Rocket. |
//! | `shell/` | Rocket (feature `rocket`; the root and [`setup`]) | [`ResponseOptions`], [`Mmap`] state, [`MmapConfig`] and its fairing, request-header reading, the [`MmapFile`] and [`StreamedFile`] responders, the [`FileServer`] handler and its listings, the [`AccessLog`] fairing, (feature `metrics`) the `Metrics` endpoint; with feature `tls`, `check_tls` (the certificate and key checked before launch). |
//! | `main.rs`, `demo/` | the binary (feature `cli`) | the `rocket-mmap` command and its embedded demo. |
//!
//! `default-features = false` builds the semantics and the engine alone.
#![cfg_attr(docsrs, feature(doc_cfg))]
// The crate docs link the Rocket types, which a build without `rocket` does not have.
#![cfg_attr(not(feature = "rocket"), allow(rustdoc::broken_intra_doc_links))]
#![deny(unsafe_code)]
#![forbid(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]
// Every public type a signature hands out can be named by its user.
#![warn(unnameable_types)]

pub mod semantics;

mod engine;

#[cfg(feature = "rocket")]
mod shell;

pub use engine::error::CacheError;
pub use engine::pace::RateLimit;
pub use semantics::etag::EntityTag;

pub use engine::links::Symlinks;
#[cfg(feature = "rocket")]
#[cfg_attr(docsrs, doc(cfg(feature = "rocket")))]
pub use shell::{
    access_log::AccessLog,
    config::{ConfigError, MmapConfig},
    file_server::FileServer,
    options::ResponseOptions,
    responder::MmapFile,
    state::Mmap,
    streamed::StreamedFile,
};

#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub use shell::metrics::Metrics;

#[cfg(feature = "rocket")]
#[cfg_attr(docsrs, doc(cfg(feature = "rocket")))]
pub mod setup {
    //! What a server's setup names beside the root types: the fairings' types, the values
    //! of configuration keys and their defaults, the access log's flusher and counts, the
    //! metrics format and, with feature `tls`, the TLS check made before launch.

    pub use crate::shell::access_log::{AccessLogFlusher, AccessLogLines};
    pub use crate::shell::config::{parse_size, MmapFairing, RevalidateSetting, SizeSetting};
    pub use crate::shell::options::DEFAULT_CHUNK_SIZE;

    #[cfg(feature = "browse")]
    #[cfg_attr(docsrs, doc(cfg(feature = "browse")))]
    pub use crate::shell::file_server::DEFAULT_BROWSE_MAX_ENTRIES;

    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub use crate::shell::metrics::MetricsFairing;

    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub use crate::shell::tls::{check_tls, TlsError, TlsSource};
}

pub mod cache {
    //! The mmap engine, without Rocket: the bounded [`Cache`] of mapped files, its
    //! [`Entry`]s, [`respond`] (a request and an entry turned into a [`Reply`] with a
    //! [`SegmentBody`]), the counters ([`CacheStats`]) and, with feature
    //! `tag-store`, the `TagStore` that keeps ETags and digests across
    //! restarts.
    //!
    //! The Rocket side ([`Mmap`](crate::Mmap), [`FileServer`](crate::FileServer)) holds
    //! one [`Cache`]; an application serving from another framework uses this module
    //! with [`semantics`](crate::semantics) alone (`default-features = false`).
    //!
    //! ```rust
    //! use std::time::SystemTime;
    //! use rocket_mmap::cache::{respond, Cache, CacheConfig};
    //! use rocket_mmap::semantics::decide::{ServeRequest, Status};
    //! use rocket_mmap::semantics::precondition::Method;
    //! use rocket_mmap::semantics::range::RangeLimits;
    //!
    //! # let dir = std::env::temp_dir().join(format!("rocket-mmap-doc-cache-{}", std::process::id()));
    //! # std::fs::create_dir_all(&dir).unwrap();
    //! # let path = dir.join("hello.txt");
    //! # std::fs::write(&path, "Hello, world!\n").unwrap();
    //! let cache = Cache::new(CacheConfig::default());
    //! let entry = cache.get_blocking(&path).unwrap();
    //! let request = ServeRequest::new(Method::Get).range("bytes=0-4");
    //! let reply = respond(&entry, &request, &RangeLimits::default(), SystemTime::now());
    //! assert_eq!(reply.status, Status::PartialContent);
    //! assert_eq!(reply.body.segments()[0], &b"Hello"[..]);
    //! # std::fs::remove_dir_all(&dir).unwrap();
    //! ```

    pub use crate::engine::body::{ContentChanged, SegmentBody};
    pub use crate::engine::cache::{Cache, CacheConfig, Revalidate};
    pub use crate::engine::digest::ReprDigest;
    pub use crate::engine::entry::Entry;
    pub use crate::engine::respond::{respond, Reply};
    pub use crate::engine::stats::{CacheStats, LoadTimes};
    pub use crate::engine::tag::SETTLE;

    #[cfg(feature = "tag-store")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tag-store")))]
    pub use crate::engine::{
        fingerprint::Fingerprint,
        tag_store::{StoredTags, TagStore, TagStoreError, TagStoreStats},
    };
}

/// The README's examples, compiled as doc tests.
#[cfg(all(doctest, feature = "rocket"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The operating guide's examples (docs/operating.md), compiled as doc tests.
#[cfg(all(doctest, feature = "rocket"))]
#[doc = include_str!("../docs/operating.md")]
pub struct OperatingDoctests;

/// The configuration reference's examples (docs/configuration.md), compiled as doc tests.
#[cfg(all(doctest, feature = "rocket"))]
#[doc = include_str!("../docs/configuration.md")]
pub struct ConfigurationDoctests;
