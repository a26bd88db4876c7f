//! # rocket-mmap
//!
//! Memory-mapped file serving for [Rocket](https://rocket.rs) with everything a
//! download needs: byte ranges (single and `multipart/byteranges`), strong
//! content-derived ETags and every conditional request of RFC 9110.
//!
//! ## The map
//!
//! Three layers, a folder each; arrows only run downwards (shell → engine →
//! semantics), never back:
//!
//! | folder | layer | holds |
//! |---|---|---|
//! | [`semantics`] | RFC 9110, pure | ranges, entity tags, dates, preconditions, the decision for a request, multipart layout, content types and codings, `Content-Disposition`, request paths, `Want-Repr-Digest` / `Want-Digest` negotiation, directory listings (feature `browse`). No file system, no mapping, no Rocket. |
//! | `engine/` | the mmap engine | file fingerprints, mappings and the SIGBUS guard (the only `unsafe`), entries, loading and hashing, integrity digests (SHA-256 / SHA-512 once per entry), the bounded [`Cache`], its counters ([`CacheStats`]), the segment [`SegmentBody`] (which never copies a page that is not in memory on an async worker: it is faulted in on the blocking pool first) and its pace ([`RateLimit`]), [`respond`] (a decision turned into a body), directory reading and the cache of listings (feature `browse`), and the tag store that keeps ETags and digests across restarts (feature `tag-store`). No Rocket. |
//! | `shell/` | Rocket (feature `rocket`) | [`ResponseOptions`], [`Mmap`] state, [`MmapConfig`] and its fairing, request-header reading, the [`MmapFile`] and [`StreamedFile`] responders, the [`FileServer`] handler and its listings, the [`AccessLog`] fairing, (feature `metrics`) the `Metrics` endpoint; with feature `tls`, [`check_tls`] (the certificate and key checked before launch). |
//! | `main.rs`, `demo/` | the binary (feature `cli`) | the `rocket-mmap` command and its embedded demo. |
//!
//! `default-features = false` builds the semantics and the engine alone.
//!
//! ## Public paths
//!
//! The semantics are public as modules ([`semantics::range`], [`semantics::etag`], …):
//! they are a framework-free HTTP library of their own. The engine and the shell are
//! private; what applications use is re-exported here. [`config`], [`responder`] and
//! [`serve`] keep the paths of earlier versions working.
#![deny(unsafe_code)]
#![forbid(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod semantics;

mod engine;

#[cfg(feature = "rocket")]
mod shell;

pub use engine::body::{ContentChanged, SegmentBody};
pub use engine::cache::{Cache, CacheConfig, CacheStats, Revalidate};
pub use engine::digest::{ReprDigest, DIGESTS_AVAILABLE};
pub use engine::entry::Entry;
pub use engine::error::CacheError;
pub use engine::pace::RateLimit;
pub use engine::respond::{respond, respond_typed, Reply};
pub use engine::stats::LoadTimes;
pub use engine::tag::SETTLE;
#[cfg(feature = "tag-store")]
pub use engine::tag_store::{StoredTags, TagStore, TagStoreError, TagStoreStats};
pub use semantics::digest::DigestAlgorithm;
pub use semantics::etag::EntityTag;

#[cfg(feature = "rocket")]
pub use shell::{
    access_log::{AccessLog, AccessLogFlusher, AccessLogLines},
    config::{parse_size, ConfigError, MmapConfig, MmapFairing, RevalidateSetting, SizeSetting},
    file_server::{FileServer, Symlinks},
    options::{ResponseOptions, DEFAULT_CHUNK_SIZE},
    responder::MmapFile,
    state::Mmap,
    streamed::StreamedFile,
};

#[cfg(feature = "metrics")]
pub use shell::metrics::{Metrics, MetricsFairing};
#[cfg(feature = "tls")]
pub use shell::tls::{check_tls, TlsError, TlsSource};

/// The metrics endpoint's constants (feature `metrics`).
#[cfg(feature = "metrics")]
pub mod metrics {
    pub use crate::shell::metrics::{Metrics, MetricsFairing, CONTENT_TYPE, PREFIX};
}
#[cfg(feature = "browse")]
pub use shell::file_server::DEFAULT_BROWSE_MAX_ENTRIES;

/// Configuration under its earlier path (`rocket_mmap::config::MmapConfig`); the same
/// items are re-exported at the crate root.
#[cfg(feature = "rocket")]
pub mod config {
    pub use crate::shell::config::{
        parse_size, ConfigError, MmapConfig, MmapFairing, RevalidateSetting, SizeSetting,
    };
    pub use crate::shell::options::{ResponseOptions, DEFAULT_CHUNK_SIZE};
    pub use crate::shell::state::Mmap;
}

/// The responders under their earlier path (`rocket_mmap::responder::StreamedFile`);
/// the same items are re-exported at the crate root.
#[cfg(feature = "rocket")]
pub mod responder {
    pub use crate::shell::responder::MmapFile;
    pub use crate::shell::streamed::StreamedFile;
}

/// The engine's counters as [`Cache::stats`] reports them, and how each is exported
/// (what the `Metrics` exporter iterates; an application feeding another metrics
/// system can iterate [`stats::COUNTERS`] the same way).
pub mod stats {
    pub use crate::engine::stats::{
        CacheStats, CounterInfo, LoadTimes, COUNTERS, LOAD_TIME_BUCKETS,
    };
}

/// The decision and the reply under their earlier path (`rocket_mmap::serve::respond`):
/// the pure decision lives in [`semantics::decide`], the reply with its body in the
/// engine ([`respond`]).
pub mod serve {
    pub use crate::engine::respond::{respond, respond_typed, Reply};
    pub use crate::semantics::decide::{
        decide, effective_last_modified, Decision, ServeRequest, Status,
    };
}

/// How many mappings the SIGBUS guard has registered now (for the bounds test).
#[doc(hidden)]
pub fn sigbus_registrations() -> usize {
    engine::mapping::registered()
}

/// The README's examples, compiled as doc tests.
#[cfg(all(doctest, feature = "rocket"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
