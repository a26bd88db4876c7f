//! How responses are shaped, apart from the cache: range bounds, body chunk size and
//! `Cache-Control`.

use std::collections::HashMap;
use std::path::Path;

use crate::semantics::range::RangeLimits;

/// The default body chunk size for bodies larger than it (smaller bodies use their own
/// length). Each chunk is one copy into Rocket's buffer and one write; a client that
/// stops reading holds about 16 of them (see the README's security section).
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
}

impl Default for ResponseOptions {
    fn default() -> Self {
        ResponseOptions {
            limits: RangeLimits::default(),
            chunk_size: DEFAULT_CHUNK_SIZE,
            cache_control: None,
            cache_control_by_extension: HashMap::new(),
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
