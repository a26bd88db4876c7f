//! # rocket-mmap
//!
//! Memory-mapped, zero-copy file serving for [Rocket](https://rocket.rs) with
//! everything a download needs: byte ranges (single and `multipart/byteranges`),
//! strong content-derived ETags and every conditional request of RFC 9110.
//!
//! The crate has two layers:
//!
//! * **The core** knows HTTP semantics and nothing of Rocket: [`range`] (parsing and
//!   planning, RFC 9110 §14), [`etag`] (§8.8.3), [`date`] (§5.6.7), [`precondition`]
//!   (§13), [`multipart`] (§14.6) and [`body`] (a sized reader over `Bytes`
//!   segments). It builds with `default-features = false`.
//! * **The Rocket shell** (feature `rocket`, on by default).
#![deny(unsafe_code)]
#![forbid(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod body;
pub mod cache;
pub mod date;
pub mod disposition;
pub mod encoding;
pub mod entry;
pub mod etag;
#[allow(unsafe_code)]
pub mod mapping;
pub mod multipart;
pub mod path;
pub mod precondition;
pub mod range;
pub mod serve;

#[doc(hidden)]
pub mod fuzzing;

#[cfg(feature = "rocket")]
pub mod config;
#[cfg(feature = "rocket")]
pub mod file_server;
#[cfg(feature = "rocket")]
pub mod responder;

pub use cache::{Cache, CacheConfig, CacheError, Revalidate};
#[cfg(feature = "rocket")]
pub use config::{Mmap, MmapConfig};
pub use entry::Entry;
pub use etag::EntityTag;
#[cfg(feature = "rocket")]
pub use file_server::{FileServer, Symlinks};
#[cfg(feature = "rocket")]
pub use responder::MmapFile;

/// The README's examples, compiled as doc tests.
#[cfg(all(doctest, feature = "rocket"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
