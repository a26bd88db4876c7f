//! How responses are shaped, apart from the cache: range bounds, body chunk size,
//! `Cache-Control`, integrity digests and rate limits.

use std::collections::HashMap;
use std::path::Path;

use crate::engine::digest::DIGESTS_AVAILABLE;
use crate::engine::pace::RateLimit;
use crate::semantics::digest::DigestAlgorithm;
use crate::semantics::range::RangeLimits;

/// The default body chunk size for bodies larger than it (smaller bodies use their own
/// length). Each chunk is one copy into Rocket's buffer and one write; a client that
/// stops reading holds about 16 of them (see docs/operating.md, "Slow and idle clients").
pub const DEFAULT_CHUNK_SIZE: usize = 64 * 1024;

/// How responses are shaped (everything but the cache).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseOptions {
    /// Range planning bounds.
    pub limits: RangeLimits,
    /// Rocket body chunk size for bodies larger than it.
    pub chunk_size: usize,
    /// Default `Cache-Control`.
    pub cache_control: Option<String>,
    /// `Cache-Control` by lower-case extension.
    pub cache_control_by_extension: HashMap<String, String>,
    /// The digest algorithms offered, in the server's order of preference (which
    /// breaks ties between equally weighted `Want-*` members). Default: SHA-256, then
    /// SHA-512 (none without the `digest` feature); empty: no digests.
    pub digests: Vec<DigestAlgorithm>,
    /// Send `Repr-Digest` (first algorithm of [`ResponseOptions::digests`]) on every
    /// 200 and 206, also when the request has no `Want-Repr-Digest` (default: no).
    pub digest_unsolicited: bool,
    /// The pace of 200 and 206 bodies (default: [`RateLimit::OFF`]).
    pub rate_limit: RateLimit,
    /// Make every `Range` request wait for the file's strong `ETag` (default: no).
    ///
    /// By default a `Range` without `If-Range`, `If-Match` or `If-None-Match` is
    /// answered at once: if the file has not been hashed yet (and its hash would not
    /// end within a few milliseconds), the `206` carries `Last-Modified` but no `ETag`.
    /// One server never takes a tag back once it sent it, so a client or a slicing
    /// cache that compares the tags of the parts it fetches is safe. Origins that
    /// serve one file side by side behind a cache that assembles a download from
    /// slices fetched from different origins (nginx `slice`) should turn this on:
    /// otherwise one origin may answer a slice with the tag and the next without it,
    /// which nginx refuses ("etag mismatch in slice response"). The price is that the
    /// first `Range` on a file not hashed yet waits for the whole file to be read.
    pub ranges_await_tag: bool,
}

impl Default for ResponseOptions {
    fn default() -> Self {
        ResponseOptions {
            limits: RangeLimits::default(),
            chunk_size: DEFAULT_CHUNK_SIZE,
            cache_control: None,
            cache_control_by_extension: HashMap::new(),
            digests: default_digests(),
            digest_unsolicited: false,
            rate_limit: RateLimit::OFF,
            ranges_await_tag: false,
        }
    }
}

impl ResponseOptions {
    /// The `Cache-Control` value for a file at `path`.
    pub fn cache_control_for(&self, path: Option<&Path>) -> Option<&str> {
        if !self.cache_control_by_extension.is_empty() {
            let ext = path
                .and_then(Path::extension)
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase);
            if let Some(v) = ext.and_then(|e| self.cache_control_by_extension.get(&e)) {
                return Some(v);
            }
        }
        self.cache_control.as_deref()
    }
}

/// The default digest algorithms: all supported ones when the build can compute them.
pub(crate) fn default_digests() -> Vec<DigestAlgorithm> {
    if DIGESTS_AVAILABLE {
        DigestAlgorithm::ALL.to_vec()
    } else {
        Vec::new()
    }
}
