//! The Rocket shell (feature `rocket`): thin glue from Rocket's requests to the
//! [engine](crate::engine) and back.
//!
//! | module | what it holds |
//! |---|---|
//! | `options` | [`ResponseOptions`](crate::ResponseOptions): range bounds, chunk size, `Cache-Control` |
//! | `state` | [`Mmap`](crate::Mmap): the managed cache and options |
//! | `config` | [`MmapConfig`](crate::MmapConfig) from `Rocket.toml` / `ROCKET_MMAP_*`, and the fairing |
//! | `request` | reading the method and the `Range` / `If-*` headers from a request, once |
//! | `plan` | a file response planned once: the entry, the RFC `Decision`, the validator and body policies, digests, extra headers |
//! | `render` | the one side-effect-free function that turns a plan into a `Response`; the one `Content-Range` writer |
//! | `served` | the neutral record of what was served (status, parts, why a range was ignored), read by the access log and the metrics |
//! | `done` | the end of a response as the access log and the metrics see it |
//! | `responder` | [`MmapFile`](crate::MmapFile): the responder for an entry (it builds a plan) |
//! | `streamed` | [`StreamedFile`](crate::StreamedFile): the same rules over an `AsyncRead` |
//! | `listing` | directory listings of the file server: query, `Accept`, the page as an `MmapFile` (feature `browse`) |
//! | `file_server` | [`FileServer`](crate::FileServer): a drop-in for `rocket::fs::FileServer` |
//! | `tls` | [`check_tls`](crate::setup::check_tls) (feature `tls`): the certificate and key checked before launch |
//! | `access_log` | [`AccessLog`](crate::AccessLog): the combined log format, bytes measured at the body, written off the workers |
//! | `tag_store` | opening the tag store at ignition: each failure one warning, the server serving on (feature `tag-store`) |
//! | `metrics` | `Metrics` (feature `metrics`): responses by status and the engine's counters in the Prometheus text format |

pub(crate) mod access_log;
pub(crate) mod config;
mod done;
pub(crate) mod file_server;
#[cfg(feature = "browse")]
pub(crate) mod listing;
#[cfg(feature = "metrics")]
pub(crate) mod metrics;
pub(crate) mod options;
mod plan;
mod render;
pub(crate) mod request;
pub(crate) mod responder;
mod served;
pub(crate) mod state;
pub(crate) mod streamed;
#[cfg(feature = "tag-store")]
pub(crate) mod tag_store;
#[cfg(feature = "tls")]
pub(crate) mod tls;
