//! Shared harness of the socket-level integration tests: a real Rocket server with
//! [`rocket_mmap::FileServer`] on an ephemeral loopback port in a background thread, a
//! tiny blocking HTTP/1.1 client over `std::net::TcpStream`, deterministic test data,
//! SHA-256 and helpers to run external clients; and the fixtures of the tests that go
//! through Rocket's local client ([`local`]).
//!
//! Each test binary uses a different subset of it. One file per concern; everything
//! but [`local`] is re-exported here, so tests name it `common::name`. What needs the
//! Rocket shell is compiled only with the `rocket` feature.
#![allow(dead_code)]

mod content;
mod http;
mod multipart;
mod probe;
mod process;
#[cfg(feature = "rocket")]
mod server;
mod tempdir;
mod tools;

/// Fixtures of the tests through Rocket's local client (`tests/local_*.rs`).
#[cfg(feature = "rocket")]
pub mod local;

// Each test binary uses a different subset of these.
#[cfg(feature = "rocket")]
#[allow(unused_imports)]
pub use server::*;
#[allow(unused_imports)]
pub use {content::*, http::*, multipart::*, probe::*, process::*, tempdir::*, tools::*};
