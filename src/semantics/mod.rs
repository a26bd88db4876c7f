//! RFC 9110 semantics with no file system, no mapping and no web framework: plain
//! values in, decisions out. Each rule's doc comment cites the section it implements.
//!
//! | module | what it decides |
//! |---|---|
//! | [`range`] | `Range` parsing and planning (§14): full, one part, several, 416 |
//! | [`multipart`] | the `multipart/byteranges` layout and its exact length (§14.6) |
//! | [`etag`] | entity tags, strong and weak comparison (§8.8.3) |
//! | [`date`] | HTTP dates (§5.6.7); RFC 3339 timestamps |
//! | [`precondition`] | `If-Match`, `If-Unmodified-Since`, `If-None-Match`, `If-Modified-Since`, `If-Range` (§13) |
//! | [`decide`] | the whole answer for a GET or HEAD, in §13.2.2's order, as a [`decide::Decision`] |
//! | `content_type` | the media type by extension (§8.3) (crate-private, as the three below: they shape the Rocket shell's responses) |
//! | `encoding` | choosing a precompressed variant by `Accept-Encoding` (§12.5.3) |
//! | [`digest`] | `Want-Repr-Digest` / `Want-Digest` and the `Repr-Digest` / `Digest` values (RFC 9530, RFC 3230) |
//! | `disposition` | `Content-Disposition` (RFC 6266, RFC 8187) |
//! | [`path`] | which request paths may name a file under the root |
//! | `listing` | directory listings (feature `browse`): the format by `Accept` (§12.5.1) and the query; the page is the engine's |

pub(crate) mod content_type;
pub mod date;
pub mod decide;
pub mod digest;
pub(crate) mod disposition;
pub(crate) mod encoding;
pub mod etag;
#[cfg(feature = "browse")]
pub(crate) mod listing;
pub mod multipart;
pub mod path;
pub mod precondition;
pub mod range;
