//! The engine's counters: facts of the cache and of the bodies, kept as relaxed
//! atomics so that the request path pays one atomic add per event — no lock, no
//! allocation — and readers (the `Metrics` exporter, [`Cache::stats`]) load them when
//! they are asked.
//!
//! * The [`Cache`] owns one [`Counters`] behind an `Arc`; a response body made for a
//!   cache's state carries a [`Meter`] holding a clone of that `Arc`, so bodies reach
//!   the counters without a lock or a lookup.
//! * Cache events: hits, misses, loads, evictions, single-flight waits, and the time
//!   each load took (mapping and hashing, on the blocking pool) in a histogram of
//!   fixed buckets ([`LOAD_TIME_BUCKETS`]), one atomic per bucket.
//! * Body events ([`Meter`]): a body is *in flight* from its first read until it ends;
//!   it ends *completed* (its last byte handed out), *cut* because the file was found
//!   truncated under the mapping (SIGBUS guard or sentinel) or rewritten in place
//!   (end-of-body check), or *cut* because it was dropped before its end — the
//!   client went away (or the server shut down). A body that is never read (HEAD,
//!   304: the framework drops it unread) is none of these. Bytes are counted as the
//!   body hands them out.
//!
//! # Adding a counter
//!
//! Every monotonic counter is one line of the `counter_list!` macro below: its field
//! name, the metric family it is exported as (with an optional label), and its help
//! text. That line adds the atomic to [`Counters`] and the field to the [`CacheStats`]
//! snapshot (the `counters!` macro here), and the series to the Prometheus exporter's
//! table (`shell::metrics`, which hands the same list to a macro of its own), from which
//! it writes every counter without naming it. The event itself is one
//! `counters.FIELD.fetch_add(1, Ordering::Relaxed)` where it happens (digests
//! computed and paced responses were added this way).
//!
//! [`Cache`]: crate::cache::Cache
//! [`Cache::stats`]: crate::cache::Cache::stats

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

macro_rules! counters {
    (
        $(
            $(#[doc = $doc:literal])+
            $field:ident => $family:literal $([$label:literal = $value:literal])?, $help:literal;
        )+
    ) => {
        /// The engine's counters: one relaxed atomic per monotonic counter, the
        /// in-flight gauge and the load-time histogram. See the module docs.
        #[derive(Debug, Default)]
        pub(crate) struct Counters {
            $( $(#[doc = $doc])+ pub(crate) $field: AtomicU64, )+
            /// Bodies between their first read and their end.
            pub(crate) bodies_in_flight: AtomicU64,
            /// How long loads took.
            pub(crate) load_time: LoadTimeHistogram,
            /// Fault-ins waiting for a permit (see `engine::fault_in`).
            pub(crate) fault_ins_queued: AtomicU64,
            /// Fault-ins running on the blocking pool.
            pub(crate) fault_ins_running: AtomicU64,
            /// How long fault-ins waited for a permit.
            pub(crate) fault_in_wait: LoadTimeHistogram,
        }

        /// A snapshot of a [`Cache`](crate::cache::Cache)'s state and counters (see
        /// [`Cache::stats`](crate::cache::Cache::stats)): for tests, benchmarks and monitoring.
        /// Counters only grow; `entries`, `bytes` and `bodies_in_flight` are levels.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct CacheStats {
            /// Entries now cached.
            pub entries: usize,
            /// Mapped bytes now cached.
            pub bytes: u64,
            /// Memory the cached entries hold: small files read into memory, and each
            /// entry's own (bounded by `max_memory`).
            pub memory: u64,
            /// Mappings now cached (bounded by `max_mappings`).
            pub mappings: u64,
            /// Bodies now being sent (between their first read and their end).
            pub bodies_in_flight: u64,
            /// Directories the `revalidate = "watch"` watcher watches (0 without one).
            pub watched_dirs: usize,
            /// How long loads (map and hash, on the blocking pool) took.
            pub load_time: LoadTimes,
            /// Fault-ins of mapped pages waiting for one of the cache's
            /// `max_fault_ins` permits now.
            pub fault_ins_queued: u64,
            /// Fault-ins running now (each on a blocking-pool thread, waiting for the disk).
            pub fault_ins_running: u64,
            /// How long fault-ins waited for a permit (the same buckets as `load_time`).
            pub fault_in_wait: LoadTimes,
            $( $(#[doc = $doc])+ pub $field: u64, )+
        }

        impl Counters {
            /// The snapshot, with the levels the cache itself keeps.
            pub(crate) fn snapshot(&self, entries: usize, bytes: u64) -> CacheStats {
                CacheStats {
                    entries,
                    bytes,
                    memory: 0,
                    mappings: 0,
                    bodies_in_flight: self.bodies_in_flight.load(Relaxed),
                    watched_dirs: 0,
                    load_time: self.load_time.snapshot(),
                    fault_ins_queued: self.fault_ins_queued.load(Relaxed),
                    fault_ins_running: self.fault_ins_running.load(Relaxed),
                    fault_in_wait: self.fault_in_wait.snapshot(),
                    $( $field: self.$field.load(Relaxed), )+
                }
            }
        }
    };
}

/// The engine's monotonic counters, one line each: the field of [`Counters`] and
/// [`CacheStats`], then how it is exported: the metric family (without the exporter's
/// prefix and the `_total` suffix), an optional `[label = value]` that tells the members
/// of a family apart, and the help text (the first member's is the family's).
/// `counter_list!(m)` hands the list to the macro `m`: `counters!` (above) makes the
/// engine's types of it, and the Prometheus exporter (`shell::metrics`) its table of series.
macro_rules! counter_list {
    ($then:ident) => {
        $then! {
            /// Files loaded (mapped and hashed) since the cache was made.
            loads => "cache_loads", "File versions mapped and hashed.";
            /// Entries evicted by the bounds.
            evictions => "cache_evictions", "Entries evicted by the max_entries, max_memory, max_mappings and max_bytes bounds.";
            /// Lookups answered by a cached, current entry.
            hits => "cache_hits", "Lookups answered from the cache.";
            /// Lookups of an existing file that had to wait for a load (their own or
            /// another's). A lookup of a missing file is neither a hit nor a miss.
            misses => "cache_misses", "Lookups that waited for a load (their own or another's).";
            /// Misses that waited for a load another lookup had started (single flight).
            single_flight_waits => "cache_single_flight_waits", "Misses that shared a load another lookup had started.";
            /// Body bytes handed out by bodies (to Rocket, which writes them to the socket).
            body_bytes_sent => "body_bytes_sent", "Body bytes handed to the server for sending.";
            /// Bodies whose last byte was handed out.
            bodies_completed => "bodies_completed", "Bodies sent to their last byte.";
            /// Bodies dropped before their end: the client went away (or the server stopped).
            cut_client_gone => "responses_cut" ["cause" = "client_gone"], "Bodies cut short, by cause.";
            /// Bodies cut because the file was rewritten in place (the end-of-body check).
            cut_file_changed => "responses_cut" ["cause" = "file_changed"], "Bodies cut short, by cause.";
            /// Bodies cut because the file was truncated under the mapping.
            cut_truncated => "responses_cut" ["cause" = "truncated"], "Bodies cut short, by cause.";
            /// Digests (SHA-256, SHA-512) computed over the content of this cache's entries.
            digests_computed => "digests_computed", "Integrity digests computed over an entry's content.";
            /// Bodies sent under a rate limit (`limit_rate`), counted at their first read.
            paced_responses => "paced_responses", "Bodies sent under a rate limit (limit_rate).";
            /// Windows of mapped pages that bodies found not resident and faulted in on the
            /// blocking pool before copying them (see `engine::fault_in`).
            fault_ins => "fault_ins", "Windows of mapped pages faulted in on the blocking pool before a body copied them.";
            /// Loads run on the blocking pool because the path was not all in the dentry
            /// cache (see `engine::small`).
            blocking_loads_cold_path => "cache_blocking_loads" ["reason" = "cold_path"], "Loads run on the blocking pool rather than on the worker, by reason.";
            /// Loads run on the blocking pool because a symbolic link was on the way.
            blocking_loads_link => "cache_blocking_loads" ["reason" = "link"], "Loads run on the blocking pool rather than on the worker, by reason.";
            /// Loads of small files run on the blocking pool because their pages were not
            /// in memory.
            blocking_loads_cold_data => "cache_blocking_loads" ["reason" = "cold_data"], "Loads run on the blocking pool rather than on the worker, by reason.";
            /// Loads run on the blocking pool because the file is mapped (larger than 64
            /// KiB) or changed moments ago.
            blocking_loads_mapped => "cache_blocking_loads" ["reason" = "mapped"], "Loads run on the blocking pool rather than on the worker, by reason.";
        }
    };
}
pub(crate) use counter_list;

// By the path the exporter takes too (the `use` above), in every build.
self::counter_list!(counters);

/// Upper bounds, in seconds, of the load-time histogram's buckets (the last bucket,
/// `+Inf`, is implied). From a small file's open-map-hash (~50 µs) to hashing
/// gigabytes; a load that waited for a recent change to settle takes at least 50 ms.
pub(crate) const LOAD_TIME_BUCKETS: [f64; 16] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// The same bounds in nanoseconds, for the comparison on the load path.
const LOAD_TIME_BUCKETS_NS: [u64; 16] = {
    let mut out = [0u64; 16];
    let mut i = 0;
    while i < 16 {
        out[i] = (LOAD_TIME_BUCKETS[i] * 1e9) as u64;
        i += 1;
    }
    out
};

/// A histogram of load times: one atomic per bucket (not cumulative), the count and
/// the sum in nanoseconds.
#[derive(Debug, Default)]
pub(crate) struct LoadTimeHistogram {
    /// `buckets[i]` counts loads in `(bound[i-1], bound[i]]`; the last one above all.
    buckets: [AtomicU64; LOAD_TIME_BUCKETS.len() + 1],
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl LoadTimeHistogram {
    /// Records one load that took `took`.
    pub(crate) fn observe(&self, took: Duration) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let i = LOAD_TIME_BUCKETS_NS
            .iter()
            .position(|&bound| ns <= bound)
            .unwrap_or(LOAD_TIME_BUCKETS_NS.len());
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_ns.fetch_add(ns, Relaxed);
        self.count.fetch_add(1, Relaxed);
    }

    fn snapshot(&self) -> LoadTimes {
        LoadTimes {
            buckets: std::array::from_fn(|i| self.buckets[i].load(Relaxed)),
            count: self.count.load(Relaxed),
            sum_nanos: self.sum_ns.load(Relaxed),
        }
    }
}

/// A snapshot of the load-time histogram.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadTimes {
    /// Loads per bucket, *not* cumulative: `buckets[i]` counts loads that took more
    /// than the bound of bucket `i - 1` and at most that of bucket `i` (the bounds, in
    /// seconds, are those [`LoadTimes::cumulative`] pairs with its counts); the last
    /// counts the rest.
    pub buckets: [u64; LOAD_TIME_BUCKETS.len() + 1],
    /// Loads observed (successful loads only).
    pub count: u64,
    /// Their total time, in nanoseconds.
    pub sum_nanos: u64,
}

impl LoadTimes {
    /// `(upper bound in seconds, loads at most that long)` per bucket, cumulative, as
    /// Prometheus histograms are written, ending with `(+Inf, count)`.
    pub fn cumulative(&self) -> [(f64, u64); LOAD_TIME_BUCKETS.len() + 1] {
        let mut total = 0;
        std::array::from_fn(|i| {
            total += self.buckets[i];
            (
                LOAD_TIME_BUCKETS.get(i).copied().unwrap_or(f64::INFINITY),
                total,
            )
        })
    }
}

/// Why a body was cut short by the engine (a body dropped early is counted by its
/// [`Meter`]'s `Drop`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cut {
    /// The end-of-body check found the file rewritten in place.
    FileChanged,
    /// The file was truncated under the mapping.
    Truncated,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Idle,
    Streaming,
    Done,
}

/// A body's tie to its cache's [`Counters`]: counts the body in flight from its first
/// read, the bytes it hands out, and how it ended (exactly once; see the module docs).
/// A clone is a fresh, unread meter over the same counters.
#[derive(Debug)]
pub(crate) struct Meter {
    counters: Arc<Counters>,
    phase: Phase,
    /// The body is paced: its first read counts a paced response.
    paced: bool,
}

impl Meter {
    pub(crate) fn new(counters: Arc<Counters>) -> Meter {
        Meter {
            counters,
            phase: Phase::Idle,
            paced: false,
        }
    }

    /// Marks the body as paced (see `paced_responses`).
    pub(crate) fn set_paced(&mut self) {
        self.paced = true;
    }

    /// The first read: the body is in flight (and, if paced, a paced response).
    fn start(&mut self) {
        self.counters.bodies_in_flight.fetch_add(1, Relaxed);
        if self.paced {
            self.counters.paced_responses.fetch_add(1, Relaxed);
        }
        self.phase = Phase::Streaming;
    }

    /// A read handed out `n` bytes; `at_end` if the body has now handed out all it has.
    #[inline]
    pub(crate) fn read(&mut self, n: usize, at_end: bool) {
        match self.phase {
            Phase::Done => return,
            Phase::Idle => self.start(),
            Phase::Streaming => {}
        }
        if n > 0 {
            self.counters.body_bytes_sent.fetch_add(n as u64, Relaxed);
        }
        if at_end {
            self.end(|c| &c.bodies_completed);
        }
    }

    /// The body failed: the mapping was found truncated or the file rewritten.
    pub(crate) fn cut(&mut self, why: Cut) {
        if self.phase == Phase::Idle {
            // Failed on its first read: it was in flight for that read.
            self.start();
        }
        if self.phase == Phase::Streaming {
            self.end(match why {
                Cut::FileChanged => |c| &c.cut_file_changed,
                Cut::Truncated => |c| &c.cut_truncated,
            });
        }
    }

    fn end(&mut self, outcome: fn(&Counters) -> &AtomicU64) {
        outcome(&self.counters).fetch_add(1, Relaxed);
        self.counters.bodies_in_flight.fetch_sub(1, Relaxed);
        self.phase = Phase::Done;
    }
}

impl Clone for Meter {
    fn clone(&self) -> Meter {
        let mut meter = Meter::new(self.counters.clone());
        meter.paced = self.paced;
        meter
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        if self.phase == Phase::Streaming {
            self.end(|c| &c.cut_client_gone);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_by_upper_bound() {
        let h = LoadTimeHistogram::default();
        h.observe(Duration::from_micros(100)); // exactly the first bound: first bucket
        h.observe(Duration::from_micros(101)); // second bucket
        h.observe(Duration::from_secs(60)); // above every bound
        let s = h.snapshot();
        assert_eq!(s.count, 3);
        assert_eq!(s.buckets[0], 1);
        assert_eq!(s.buckets[1], 1);
        assert_eq!(s.buckets[16], 1);
        assert_eq!(s.sum_nanos, 100_000 + 101_000 + 60_000_000_000);
        let cum = s.cumulative();
        assert_eq!(cum[0], (0.0001, 1));
        assert_eq!(cum[1], (0.00025, 2));
        assert_eq!(cum[15], (10.0, 2));
        assert_eq!(cum[16].1, 3);
        assert!(cum[16].0.is_infinite());
    }

    #[test]
    fn a_meter_ends_exactly_once() {
        let c = Arc::new(Counters::default());
        // Read to the end: completed, bytes counted, not in flight.
        let mut m = Meter::new(c.clone());
        m.read(10, false);
        assert_eq!(c.bodies_in_flight.load(Relaxed), 1);
        m.read(5, true);
        m.read(0, true); // a read after the end changes nothing
        drop(m);
        let s = c.snapshot(0, 0);
        assert_eq!((s.body_bytes_sent, s.bodies_completed), (15, 1));
        assert_eq!((s.bodies_in_flight, s.cut_client_gone), (0, 0));
        // Dropped mid-body: the client went away.
        let mut m = Meter::new(c.clone());
        m.read(3, false);
        let unread = m.clone();
        drop(m);
        drop(unread); // a clone that was never read is never counted
                      // Failed: counted once, by cause; the drop after it adds nothing.
        let mut m = Meter::new(c.clone());
        m.cut(Cut::Truncated);
        m.cut(Cut::FileChanged);
        drop(m);
        let s = c.snapshot(0, 0);
        assert_eq!(s.cut_client_gone, 1);
        assert_eq!((s.cut_truncated, s.cut_file_changed), (1, 0));
        assert_eq!(s.bodies_in_flight, 0);
        assert_eq!(s.body_bytes_sent, 18);
    }
}
