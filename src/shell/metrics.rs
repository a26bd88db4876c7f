//! Prometheus metrics (feature `metrics`): a handler that writes the crate's counters
//! in the Prometheus text exposition format (version 0.0.4), and a fairing that counts
//! responses by status code, and range requests by what was served.
//!
//! ```rust,no_run
//! # #[macro_use] extern crate rocket;
//! use rocket_mmap::{FileServer, Metrics, Mmap};
//!
//! #[launch]
//! fn rocket() -> _ {
//!     rocket::build()
//!         .attach(Mmap::fairing())
//!         .attach(Metrics::fairing())           // responses by status code
//!         .mount("/metrics", Metrics::new())    // GET /metrics
//!         .mount("/", FileServer::from("static"))
//! }
//! ```
//!
//! To put guards in front of it, return [`Metrics`] from a route of your own instead
//! of mounting it (it is a responder too):
//!
//! ```rust,no_run
//! # #[macro_use] extern crate rocket;
//! # struct Admin;
//! # #[rocket::async_trait]
//! # impl<'r> rocket::request::FromRequest<'r> for Admin {
//! #     type Error = ();
//! #     async fn from_request(_: &'r rocket::Request<'_>) -> rocket::request::Outcome<Self, ()> {
//! #         rocket::request::Outcome::Success(Admin)
//! #     }
//! # }
//! use rocket_mmap::Metrics;
//!
//! #[get("/internal/metrics")]
//! fn metrics(_admin: Admin) -> Metrics {
//!     Metrics::new()
//! }
//! ```
//!
//! # What is measured, and where
//!
//! Every value is read when the endpoint is scraped: the request path only adds to
//! relaxed atomics (no lock, no allocation). The cache and body counters live in the
//! engine (`engine::stats`; [`crate::cache::Cache::stats`] reads the same values), the
//! counts by status in [`MetricsFairing`] (one atomic per status code, indexed by the
//! code; the range requests read from the record of what was served), and the access log's line counts in [`crate::AccessLog`]. The names, with the
//! `rocket_mmap_` prefix:
//!
//! | metric | type | what |
//! |---|---|---|
//! | `responses_total{code}` | counter | responses by status code (needs [`Metrics::fairing`]) |
//! | `range_requests_total{served}` | counter | requests with a `Range` field answered by the file server, an [`crate::MmapFile`] or a [`crate::StreamedFile`], by what was served: `single` (one part), `multipart`, `whole` (the range ignored: 200), `none` (304, 412, 416) (needs [`Metrics::fairing`]) |
//! | `body_bytes_sent_total` | counter | body bytes handed to Rocket by file bodies |
//! | `bodies_completed_total` | counter | file bodies sent to their last byte |
//! | `responses_cut_total{cause}` | counter | file bodies cut short: `client_gone`, `file_changed`, `truncated` |
//! | `bodies_in_flight` | gauge | file bodies between their first read and their end |
//! | `cache_hits_total`, `cache_misses_total` | counter | lookups answered from the cache / that waited for a load |
//! | `cache_loads_total`, `cache_evictions_total` | counter | file versions mapped and hashed / entries evicted |
//! | `cache_single_flight_waits_total` | counter | misses that shared a load another lookup had started |
//! | `cache_entries`, `cache_mapped_bytes` | gauge | entries and mapped bytes now cached |
//! | `cache_memory_bytes`, `cache_mappings` | gauge | memory the entries hold (`max_memory`) and mappings kept (`max_mappings`) |
//! | `cache_blocking_loads_total{reason}` | counter | loads run on the blocking pool rather than on the worker: `cold_path`, `link`, `cold_data`, `mapped` |
//! | `cache_watched_directories` | gauge | directories inotify watches under `revalidate = "watch"` (0 without a watcher) |
//! | `cache_load_duration_seconds` | histogram | time to map and hash one file version |
//! | `fault_ins_total` | counter | windows of mapped pages faulted in on the blocking pool before a body copied them |
//! | `fault_ins_queued`, `fault_ins_running` | gauge | fault-ins waiting for a `max_fault_ins` permit / running now |
//! | `fault_in_wait_seconds` | histogram | how long fault-ins waited for a permit |
//! | `access_log_lines_total`, `access_log_lines_dropped_total` | counter | access log lines written / dropped because the writer fell behind (with [`crate::AccessLog`]) |
//!
//! On Linux, Prometheus' standard process metrics come first, unprefixed, as the Go and
//! Python clients write them: `process_open_fds`, `process_max_fds`,
//! `process_resident_memory_bytes`, `process_virtual_memory_bytes` (mapped files count
//! here: it grows with `cache_mapped_bytes`), `process_cpu_seconds_total` and
//! `process_start_time_seconds`, read from `/proc/self` at each scrape (see the
//! `process` submodule for why no crate reads them).
//!
//! "File bodies" are the bodies of [`crate::MmapFile`] responses (the file server's, and
//! your routes'); other routes' bodies are counted by status only. Counters added to
//! the engine's list appear here without any change to this module.
//!
//! # Why `prometheus-client`
//!
//! The format is written by [`prometheus-client`](https://docs.rs/prometheus-client),
//! the Prometheus project's own Rust client: it escapes help texts and label values,
//! names counters `_total`, writes histograms as cumulative `_bucket`/`_sum`/`_count`
//! series, and is small (no runtime, no global registry). Its [`Collector`] trait lets
//! each scrape read the atomics directly, so none of its own metric types (which
//! would duplicate the engine's counters) is on the request path. The `metrics` +
//! `metrics-exporter-prometheus` pair was not chosen: it routes every increment
//! through a global recorder (a lookup per event) and brings an HTTP listener of its
//! own, where this crate already has Rocket.

use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use rocket::fairing::{Fairing, Info, Kind};
use rocket::http::{ContentType, Method};
use rocket::response::{self, Responder, Response};
use rocket::route::{Handler, Outcome, Route};
use rocket::{Build, Data, Orbit, Request, Rocket};

use crate::engine::stats::{counter_list, CacheStats, LOAD_TIME_BUCKETS};
use crate::shell::access_log::AccessLogCounts;
use crate::shell::done::Done;
use crate::shell::served::Served;
use crate::shell::state::Mmap;

#[cfg(target_os = "linux")]
mod process;

/// The metric name prefix.
pub const PREFIX: &str = "rocket_mmap";

/// The Prometheus text exposition format's media type (version 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The metrics endpoint: a handler to mount (it answers `GET` at its mount point) and a
/// responder to return from a route of your own. See the module docs.
///
/// ```rust,no_run
/// # #[macro_use] extern crate rocket;
/// use rocket_mmap::{FileServer, Metrics, Mmap};
///
/// #[launch]
/// fn rocket() -> _ {
///     rocket::build()
///         .attach(Mmap::fairing())
///         .attach(Metrics::fairing()) // responses by status code
///         .mount("/metrics", Metrics::new())
///         .mount("/", FileServer::from("static"))
/// }
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Metrics;

impl Metrics {
    /// The endpoint.
    pub fn new() -> Metrics {
        Metrics
    }

    /// The fairing that counts responses by status code (`rocket_mmap_responses_total`)
    /// and range requests by what was served (`rocket_mmap_range_requests_total`).
    pub fn fairing() -> MetricsFairing {
        MetricsFairing {
            statuses: Arc::new(StatusCounts::new()),
            ranges: Arc::default(),
        }
    }

    /// The exposition for `rocket`: the counters of the [`Mmap`] state it manages
    /// (zeros without one), the counts by status if [`Metrics::fairing`] is
    /// attached, and the access log's line counts if an access log is attached.
    pub fn render(rocket: &Rocket<Orbit>) -> String {
        let scrape = Scrape {
            stats: Mmap::of(rocket)
                .map(|m| m.cache().stats())
                .unwrap_or_default(),
            statuses: rocket
                .state::<Arc<StatusCounts>>()
                .map(|s| s.nonzero())
                .unwrap_or_default(),
            has_statuses: rocket.state::<Arc<StatusCounts>>().is_some(),
            ranges: rocket.state::<Arc<RangeCounts>>().map(|r| r.read()),
            access_log: rocket.state::<AccessLogCounts>().map(|c| c.read()),
        };
        let mut registry = Registry::default();
        #[cfg(target_os = "linux")]
        registry.register_collector(Box::new(process::ProcessStats::read()));
        registry
            .sub_registry_with_prefix(PREFIX)
            .register_collector(Box::new(scrape));
        let mut out = String::with_capacity(4096);
        // Writing into a `String` cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
        out
    }
}

impl From<Metrics> for Vec<Route> {
    fn from(metrics: Metrics) -> Vec<Route> {
        let mut route = Route::new(Method::Get, "/", metrics);
        route.name = Some("rocket_mmap::Metrics".into());
        vec![route]
    }
}

#[rocket::async_trait]
impl Handler for Metrics {
    async fn handle<'r>(&self, req: &'r Request<'_>, _data: Data<'r>) -> Outcome<'r> {
        Outcome::from(req, *self)
    }
}

impl<'r> Responder<'r, 'static> for Metrics {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        let text = Metrics::render(req.rocket());
        let content_type = ContentType::parse_flexible(CONTENT_TYPE).unwrap_or(ContentType::Plain);
        Response::build()
            .header(content_type)
            .raw_header("Cache-Control", "no-store")
            .sized_body(text.len(), std::io::Cursor::new(text))
            .ok()
    }
}

/// Responses by status code: one relaxed atomic per code from 100 to 599.
#[derive(Debug)]
pub(crate) struct StatusCounts {
    codes: Box<[AtomicU64]>,
}

const FIRST_CODE: u16 = 100;
const LAST_CODE: u16 = 599;

impl StatusCounts {
    fn new() -> StatusCounts {
        StatusCounts {
            codes: (FIRST_CODE..=LAST_CODE)
                .map(|_| AtomicU64::new(0))
                .collect(),
        }
    }

    #[inline]
    fn count(&self, code: u16) {
        // Rocket's `Status` holds any u16; codes outside 100..=599 are not HTTP
        // status codes and cannot be sent, so they are not counted.
        if let Some(c) = code
            .checked_sub(FIRST_CODE)
            .and_then(|i| self.codes.get(usize::from(i)))
        {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn nonzero(&self) -> Vec<(u16, u64)> {
        (FIRST_CODE..=LAST_CODE)
            .zip(self.codes.iter())
            .map(|(code, n)| (code, n.load(Ordering::Relaxed)))
            .filter(|&(_, n)| n > 0)
            .collect()
    }
}

/// Responses to requests with a `Range` field, by what was served (see
/// `shell::served`), in the order of [`RANGE_SERVED`].
#[derive(Debug, Default)]
pub(crate) struct RangeCounts([AtomicU64; 4]);

/// The `served` label of `range_requests_total`, by index in [`RangeCounts`].
const RANGE_SERVED: [&str; 4] = ["single", "multipart", "whole", "none"];

impl RangeCounts {
    fn count(&self, served: &Served) {
        let i = match served.parts.len() {
            1 => 0,
            n if n > 1 => 1,
            _ if served.range_ignored.is_some() => 2,
            _ => 3,
        };
        self.0[i].fetch_add(1, Ordering::Relaxed);
    }

    fn read(&self) -> [u64; 4] {
        self.0.each_ref().map(|n| n.load(Ordering::Relaxed))
    }
}

/// Counts every response by its status code, and range requests by what was served;
/// see [`Metrics::fairing`]. Attach it once (a second one replaces the first).
#[derive(Debug, Clone)]
pub struct MetricsFairing {
    statuses: Arc<StatusCounts>,
    ranges: Arc<RangeCounts>,
}

#[rocket::async_trait]
impl Fairing for MetricsFairing {
    fn info(&self) -> Info {
        Info {
            name: "rocket-mmap metrics",
            kind: Kind::Ignite | Kind::Response | Kind::Singleton,
        }
    }

    async fn on_ignite(&self, rocket: Rocket<Build>) -> rocket::fairing::Result {
        let rocket = rocket
            .manage(self.statuses.clone())
            .manage(self.ranges.clone());
        Ok(Served::observed_by(rocket))
    }

    // Written out rather than as an `async fn`: the `async_trait` expansion would box
    // a future holding the references (an allocation per response); this one counts
    // synchronously and boxes the zero-sized `Done`.
    fn on_response<'r, 'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        req: &'r Request<'life1>,
        res: &'life2 mut Response<'r>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'async_trait>>
    where
        'r: 'async_trait,
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        // Rocket strips bodies after the response fairings, but never changes the
        // status: this is the status sent.
        self.statuses.count(res.status().code);
        if let Some(served) = Served::read(req) {
            self.ranges.count(served);
        }
        Box::pin(Done)
    }
}

/// How one of the engine's counters is exported: the metric family (without
/// [`PREFIX`] and the `_total` suffix), an optional `(label, value)` that tells the
/// members of a family apart, the help text, and how to read it from a [`CacheStats`].
#[derive(Clone, Copy, Debug)]
struct CounterInfo {
    /// The family name, e.g. `cache_hits` or `responses_cut`.
    family: &'static str,
    /// The label of this member of the family, if the family has several.
    label: Option<(&'static str, &'static str)>,
    /// The help text (the first member's text is the family's).
    help: &'static str,
    /// Reads this counter from a snapshot.
    value: fn(&CacheStats) -> u64,
}

/// Makes [`COUNTERS`] of the engine's list of counters (`engine::stats`, whose
/// `counter_list!` hands each line to this macro).
macro_rules! exported {
    (
        $(
            $(#[doc = $doc:literal])+
            $field:ident => $family:literal $([$label:literal = $value:literal])?, $help:literal;
        )+
    ) => {
        /// Every monotonic counter of [`CacheStats`], in the engine's order, with how
        /// it is exported.
        const COUNTERS: &[CounterInfo] = &[
            $( CounterInfo {
                family: $family,
                label: exported!(@label $($label, $value)?),
                help: $help,
                value: |s: &CacheStats| s.$field,
            }, )+
        ];
    };
    (@label) => { None };
    (@label $label:literal, $value:literal) => { Some(($label, $value)) };
}

counter_list!(exported);

/// One scrape: the values read at the start of the scrape, written by
/// `prometheus-client`.
#[derive(Debug)]
struct Scrape {
    stats: CacheStats,
    statuses: Vec<(u16, u64)>,
    has_statuses: bool,
    /// By [`RANGE_SERVED`], when the fairing is attached.
    ranges: Option<[u64; 4]>,
    access_log: Option<(u64, u64)>,
}

fn counter(encoder: &mut MetricEncoder<'_>, value: u64) -> Result<(), std::fmt::Error> {
    encoder.encode_counter::<NoLabelSet, _, u64>(&value, None)
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        if self.has_statuses {
            let mut family = encoder.encode_descriptor(
                "responses",
                "Responses by status code.",
                None,
                MetricType::Counter,
            )?;
            let mut code = String::with_capacity(3);
            for &(c, n) in &self.statuses {
                code.clear();
                let _ = write!(code, "{c}");
                counter(&mut family.encode_family(&[("code", code.as_str())])?, n)?;
            }
        }
        if let Some(ranges) = self.ranges {
            let mut family = encoder.encode_descriptor(
                "range_requests",
                "Requests with a Range field, by what was served.",
                None,
                MetricType::Counter,
            )?;
            for (served, n) in RANGE_SERVED.into_iter().zip(ranges) {
                counter(&mut family.encode_family(&[("served", served)])?, n)?;
            }
        }
        // The engine's counters, grouped by family in list order.
        let mut i = 0;
        while i < COUNTERS.len() {
            let first = &COUNTERS[i];
            let members = COUNTERS[i..]
                .iter()
                .take_while(|c| c.family == first.family)
                .count();
            let mut family =
                encoder.encode_descriptor(first.family, first.help, None, MetricType::Counter)?;
            for c in &COUNTERS[i..i + members] {
                let value = (c.value)(&self.stats);
                match c.label {
                    Some(label) => counter(&mut family.encode_family(&[label])?, value)?,
                    None => counter(&mut family, value)?,
                }
            }
            i += members;
        }
        let gauges = [
            (
                "bodies_in_flight",
                "File bodies between their first read and their end.",
                self.stats.bodies_in_flight,
            ),
            (
                "cache_entries",
                "Entries now cached.",
                self.stats.entries as u64,
            ),
            (
                "cache_mapped_bytes",
                "Mapped bytes now cached (address space, not memory).",
                self.stats.bytes,
            ),
            (
                "cache_memory_bytes",
                "Memory the cached entries hold: small files read into memory and each entry's own (max_memory).",
                self.stats.memory,
            ),
            (
                "cache_mappings",
                "Mappings now cached, one per file over 64 KiB (max_mappings).",
                self.stats.mappings,
            ),
            (
                "cache_watched_directories",
                "Directories watched by inotify under revalidate = \"watch\" (0 without a watcher).",
                self.stats.watched_dirs as u64,
            ),
            (
                "fault_ins_queued",
                "Fault-ins of mapped pages waiting for a max_fault_ins permit.",
                self.stats.fault_ins_queued,
            ),
            (
                "fault_ins_running",
                "Fault-ins of mapped pages running on the blocking pool.",
                self.stats.fault_ins_running,
            ),
        ];
        for (name, help, value) in gauges {
            encoder
                .encode_descriptor(name, help, None, MetricType::Gauge)?
                .encode_gauge(&value)?;
        }
        let histograms = [
            (
                "cache_load_duration",
                "Time to map and hash one file version.",
                &self.stats.load_time,
            ),
            (
                "fault_in_wait",
                "Time fault-ins of mapped pages waited for a max_fault_ins permit.",
                &self.stats.fault_in_wait,
            ),
        ];
        for (name, help, times) in histograms {
            let buckets: Vec<(f64, u64)> = LOAD_TIME_BUCKETS
                .iter()
                .copied()
                .chain([f64::INFINITY])
                .zip(times.buckets)
                .collect();
            encoder
                .encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Histogram)?
                .encode_histogram::<NoLabelSet>(
                    times.sum_nanos as f64 / 1e9,
                    times.count,
                    &buckets,
                    None,
                )?;
        }
        if let Some((written, dropped)) = self.access_log {
            counter(
                &mut encoder.encode_descriptor(
                    "access_log_lines",
                    "Access log lines written.",
                    None,
                    MetricType::Counter,
                )?,
                written,
            )?;
            counter(
                &mut encoder.encode_descriptor(
                    "access_log_lines_dropped",
                    "Access log lines dropped because the writer fell behind.",
                    None,
                    MetricType::Counter,
                )?,
                dropped,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_is_listed_once_and_reads_its_own_field() {
        // Give every counter a distinct value through the list itself.
        let mut stats = CacheStats::default();
        assert!(COUNTERS.iter().all(|i| (i.value)(&stats) == 0));
        stats.loads = 1;
        stats.cut_truncated = 7;
        let read: Vec<u64> = COUNTERS.iter().map(|i| (i.value)(&stats)).collect();
        assert_eq!(read.iter().sum::<u64>(), 8);
        let mut names: Vec<_> = COUNTERS.iter().map(|i| (i.family, i.label)).collect();
        names.sort();
        names.dedup();
        assert_eq!(
            names.len(),
            COUNTERS.len(),
            "no two counters export the same series"
        );
    }

    #[test]
    fn status_counts_ignore_impossible_codes() {
        let s = StatusCounts::new();
        s.count(200);
        s.count(200);
        s.count(599);
        s.count(100);
        s.count(99);
        s.count(600);
        s.count(0);
        assert_eq!(s.nonzero(), vec![(100, 1), (200, 2), (599, 1)]);
    }

    #[test]
    fn exposition_has_every_counter_and_the_histogram() {
        let mut stats = CacheStats {
            entries: 3,
            bytes: 4096,
            bodies_in_flight: 2,
            cut_file_changed: 5,
            hits: 11,
            ..CacheStats::default()
        };
        stats.load_time.buckets[0] = 2;
        stats.load_time.buckets[16] = 1;
        stats.load_time.count = 3;
        stats.load_time.sum_nanos = 20_000_200_000;
        stats.fault_ins = 4;
        stats.fault_ins_queued = 1;
        stats.fault_in_wait.buckets[3] = 4;
        stats.fault_in_wait.count = 4;
        let scrape = Scrape {
            stats,
            statuses: vec![(200, 7), (404, 1)],
            has_statuses: true,
            ranges: Some([3, 1, 2, 0]),
            access_log: Some((8, 0)),
        };
        let mut registry = Registry::with_prefix(PREFIX);
        registry.register_collector(Box::new(scrape));
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry).unwrap();
        for line in [
            "# TYPE rocket_mmap_responses_total counter",
            "rocket_mmap_responses_total{code=\"200\"} 7",
            "rocket_mmap_responses_total{code=\"404\"} 1",
            "rocket_mmap_range_requests_total{served=\"single\"} 3",
            "rocket_mmap_range_requests_total{served=\"multipart\"} 1",
            "rocket_mmap_range_requests_total{served=\"whole\"} 2",
            "rocket_mmap_range_requests_total{served=\"none\"} 0",
            "rocket_mmap_cache_hits_total 11",
            "rocket_mmap_responses_cut_total{cause=\"file_changed\"} 5",
            "rocket_mmap_responses_cut_total{cause=\"client_gone\"} 0",
            "rocket_mmap_bodies_in_flight 2",
            "rocket_mmap_cache_entries 3",
            "rocket_mmap_cache_mapped_bytes 4096",
            "rocket_mmap_cache_watched_directories 0",
            "rocket_mmap_fault_ins_total 4",
            "rocket_mmap_fault_ins_queued 1",
            "rocket_mmap_fault_ins_running 0",
            "rocket_mmap_fault_in_wait_seconds_bucket{le=\"0.0005\"} 0",
            "rocket_mmap_fault_in_wait_seconds_bucket{le=\"0.001\"} 4",
            "rocket_mmap_fault_in_wait_seconds_count 4",
            "# TYPE rocket_mmap_cache_load_duration_seconds histogram",
            "rocket_mmap_cache_load_duration_seconds_bucket{le=\"0.0001\"} 2",
            "rocket_mmap_cache_load_duration_seconds_bucket{le=\"10\"} 2",
            "rocket_mmap_cache_load_duration_seconds_bucket{le=\"+Inf\"} 3",
            "rocket_mmap_cache_load_duration_seconds_count 3",
            "rocket_mmap_cache_load_duration_seconds_sum 20.0002",
            "rocket_mmap_access_log_lines_total 8",
            "rocket_mmap_access_log_lines_dropped_total 0",
        ] {
            assert!(out.lines().any(|l| l == line), "missing {line:?} in\n{out}");
        }
        // One HELP and one TYPE per family, however many members it has.
        assert_eq!(
            out.matches("# TYPE rocket_mmap_responses_cut_total ")
                .count(),
            1
        );
        for c in COUNTERS {
            let name = format!("rocket_mmap_{}_total", c.family);
            assert!(out.contains(&format!("# TYPE {name} counter\n")), "{name}");
        }
    }
}
