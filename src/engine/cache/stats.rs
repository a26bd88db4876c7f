//! The cache's counters as seen from outside: [`Cache::stats`], and the shared
//! counters and pager handed to the bodies made for this cache.

use std::sync::Arc;

use super::{Cache, CacheStats};
use crate::engine::fault_in::Pager;
use crate::engine::stats::Counters;
#[cfg(test)]
use crate::engine::tag::HashLimit;

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("config", &self.config)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Cache {
    /// Current levels and counters (each read with a relaxed load: a snapshot that
    /// may be a few events apart between fields while requests run).
    pub fn stats(&self) -> CacheStats {
        let (memory, mappings) = self.slots.memory_and_mappings();
        CacheStats {
            watched_dirs: self.watched_dirs(),
            memory,
            mappings,
            ..self.counters.snapshot(self.slots.len(), self.slots.bytes())
        }
    }

    /// The bound on tag hashes (tests hold its permits to keep hashes queued).
    #[cfg(test)]
    pub(crate) fn hash_limit(&self) -> &HashLimit {
        &self.hashes
    }

    /// The counters, for the bodies made for this cache.
    pub(crate) fn pager(&self) -> &Arc<Pager> {
        &self.pager
    }

    pub(crate) fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }
}
