//! Prometheus' standard process metrics, read from `/proc/self` at each scrape (Linux
//! only; elsewhere none is written).
//!
//! The names and meanings are those of the Go and Python clients, unprefixed, so that
//! dashboards and alerts written for any Prometheus-instrumented service work here:
//!
//! | metric | type | from |
//! |---|---|---|
//! | `process_open_fds` | gauge | entries of `/proc/self/fd` |
//! | `process_max_fds` | gauge | the soft "Max open files" of `/proc/self/limits` |
//! | `process_resident_memory_bytes` | gauge | `rss` of `/proc/self/stat` × page size |
//! | `process_virtual_memory_bytes` | gauge | `vsize` of `/proc/self/stat` (mapped files count here) |
//! | `process_cpu_seconds_total` | counter | `utime` + `stime` of `/proc/self/stat` ÷ clock ticks per second |
//! | `process_start_time_seconds` | gauge | `starttime` of `/proc/self/stat` ÷ clock ticks + `btime` of `/proc/stat` |
//!
//! Why no crate: the `procfs` crate reads the same files, but brings `procfs-core`,
//! `bitflags`, `hex` and (by default) `chrono` and `flate2`, and enables `rustix`
//! features that Rocket's dependencies do not, for six numbers; the Python client
//! reads these files itself in about as many lines as this module. The clock-tick
//! rate and the page size come from the auxiliary vector (`/proc/self/auxv`,
//! `AT_CLKTCK` and `AT_PAGESZ`, which is where the C library's `sysconf` finds them),
//! so no `unsafe` call is needed.
//!
//! A value that cannot be read (a file missing from a restricted `/proc`) is left
//! out of the scrape rather than written as 0.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

/// One reading of the process's figures; `None` where a value could not be read.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct ProcessStats {
    pub(super) open_fds: Option<u64>,
    pub(super) max_fds: Option<u64>,
    pub(super) resident_bytes: Option<u64>,
    pub(super) virtual_bytes: Option<u64>,
    pub(super) cpu_seconds: Option<f64>,
    pub(super) start_time_seconds: Option<f64>,
}

impl ProcessStats {
    /// Reads the figures of this process now.
    pub(super) fn read() -> ProcessStats {
        use std::sync::OnceLock;
        // Neither changes while the process runs.
        static AUXV: OnceLock<Auxv> = OnceLock::new();
        static BOOT_TIME: OnceLock<Option<u64>> = OnceLock::new();
        let auxv = AUXV.get_or_init(|| {
            std::fs::read("/proc/self/auxv")
                .map(|bytes| Auxv::parse(&bytes))
                .unwrap_or_default()
        });
        let boot_time = *BOOT_TIME.get_or_init(|| {
            std::fs::read_to_string("/proc/stat")
                .ok()
                .and_then(|s| boot_time(&s))
        });
        let stat = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| Stat::parse(&s));
        let ticks = auxv.clock_ticks.map(|t| t as f64);
        ProcessStats {
            open_fds: std::fs::read_dir("/proc/self/fd")
                .ok()
                .map(|entries| entries.count() as u64),
            max_fds: std::fs::read_to_string("/proc/self/limits")
                .ok()
                .and_then(|s| max_open_files(&s)),
            resident_bytes: stat
                .zip(auxv.page_size)
                .map(|(s, page)| s.rss_pages.saturating_mul(page)),
            virtual_bytes: stat.map(|s| s.vsize),
            cpu_seconds: stat.zip(ticks).map(|(s, t)| (s.utime + s.stime) as f64 / t),
            start_time_seconds: stat
                .zip(ticks)
                .zip(boot_time)
                .map(|((s, t), boot)| boot as f64 + s.starttime as f64 / t),
        }
    }
}

impl Collector for ProcessStats {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let gauges = [
            (
                "process_open_fds",
                "Number of open file descriptors.",
                None,
                self.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors.",
                None,
                self.max_fds,
            ),
            (
                "process_resident_memory",
                "Resident memory size in bytes.",
                Some(Unit::Bytes),
                self.resident_bytes,
            ),
            (
                "process_virtual_memory",
                "Virtual memory size in bytes.",
                Some(Unit::Bytes),
                self.virtual_bytes,
            ),
        ];
        for (name, help, unit, value) in gauges {
            if let Some(value) = value {
                encoder
                    .encode_descriptor(name, help, unit.as_ref(), MetricType::Gauge)?
                    .encode_gauge(&value)?;
            }
        }
        if let Some(start) = self.start_time_seconds {
            encoder
                .encode_descriptor(
                    "process_start_time",
                    "Start time of the process since unix epoch in seconds.",
                    Some(&Unit::Seconds),
                    MetricType::Gauge,
                )?
                .encode_gauge(&start)?;
        }
        if let Some(cpu) = self.cpu_seconds {
            encoder
                .encode_descriptor(
                    "process_cpu",
                    "Total user and system CPU time spent in seconds.",
                    Some(&Unit::Seconds),
                    MetricType::Counter,
                )?
                .encode_counter::<NoLabelSet, _, u64>(&cpu, None)?;
        }
        Ok(())
    }
}

/// The fields of `/proc/PID/stat` used here (proc(5): fields 14, 15, 22, 23, 24).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Stat {
    utime: u64,
    stime: u64,
    starttime: u64,
    vsize: u64,
    rss_pages: u64,
}

impl Stat {
    fn parse(text: &str) -> Option<Stat> {
        // The command name (field 2) is in parentheses and may hold spaces and ')':
        // the fields after it start after the last ')'. `rest[0]` is field 3.
        let rest = &text[text.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
        Some(Stat {
            utime: field(14)?,
            stime: field(15)?,
            starttime: field(22)?,
            vsize: field(23)?,
            rss_pages: field(24)?,
        })
    }
}

/// The soft limit of the "Max open files" line of `/proc/PID/limits` ("unlimited":
/// `u64::MAX`).
fn max_open_files(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line["Max open files".len()..].split_whitespace().next()?;
    if soft == "unlimited" {
        Some(u64::MAX)
    } else {
        soft.parse().ok()
    }
}

/// `btime` of `/proc/stat`: the boot time in seconds since the epoch.
fn boot_time(stat: &str) -> Option<u64> {
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// The entries of the auxiliary vector used here.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Auxv {
    /// `AT_CLKTCK`: the unit of the times in `/proc/PID/stat`, per second.
    clock_ticks: Option<u64>,
    /// `AT_PAGESZ`: the unit of `rss` in `/proc/PID/stat`, in bytes.
    page_size: Option<u64>,
}

impl Auxv {
    const AT_NULL: usize = 0;
    const AT_PAGESZ: usize = 6;
    const AT_CLKTCK: usize = 17;

    /// Parses `/proc/self/auxv`: pairs of native-endian words (key, value), ended by
    /// `AT_NULL`.
    fn parse(bytes: &[u8]) -> Auxv {
        const WORD: usize = std::mem::size_of::<usize>();
        let mut out = Auxv::default();
        let word = |chunk: &[u8]| usize::from_ne_bytes(chunk.try_into().unwrap_or([0; WORD]));
        for pair in bytes.chunks_exact(2 * WORD) {
            let (key, value) = (word(&pair[..WORD]), word(&pair[WORD..]) as u64);
            match key {
                Self::AT_NULL => break,
                Self::AT_PAGESZ if value > 0 => out.page_size = Some(value),
                Self::AT_CLKTCK if value > 0 => out.clock_ticks = Some(value),
                _ => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_found_after_a_command_name_with_spaces_and_parentheses() {
        // A real line of this shape, with the command name made hostile.
        let line = "4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 1234 0 5 0 250 75 0 0 20 0 \
                    9 0 123456 987654321 2048 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 \
                    0 17 1 0 0 0 0 0";
        assert_eq!(
            Stat::parse(line),
            Some(Stat {
                utime: 250,
                stime: 75,
                starttime: 123456,
                vsize: 987654321,
                rss_pages: 2048,
            })
        );
        assert_eq!(Stat::parse("4242 (x) S 1 2"), None);
        assert_eq!(Stat::parse("no parenthesis"), None);
    }

    #[test]
    fn the_soft_open_files_limit_is_read_from_limits() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max processes             63383                63383                processes \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(max_open_files(limits), Some(1024));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(max_open_files(unlimited), Some(u64::MAX));
        assert_eq!(max_open_files("Max processes 1 1 processes\n"), None);
    }

    #[test]
    fn boot_time_is_the_btime_line() {
        let stat = "cpu  1 2 3 4\ncpu0 1 2 3 4\nintr 5\nctxt 6\nbtime 1764800000\nprocesses 7\n";
        assert_eq!(boot_time(stat), Some(1_764_800_000));
        assert_eq!(boot_time("cpu 1 2\n"), None);
    }

    #[test]
    fn auxv_pairs_give_the_clock_ticks_and_page_size_until_at_null() {
        let mut bytes = Vec::new();
        for (k, v) in [(33usize, 7usize), (6, 4096), (17, 100), (0, 0), (17, 250)] {
            bytes.extend_from_slice(&k.to_ne_bytes());
            bytes.extend_from_slice(&v.to_ne_bytes());
        }
        assert_eq!(
            Auxv::parse(&bytes),
            Auxv {
                clock_ticks: Some(100),
                page_size: Some(4096),
            }
        );
        assert_eq!(Auxv::parse(&[1, 2, 3]), Auxv::default());
    }

    #[test]
    fn this_process_reads_plausibly() {
        let s = ProcessStats::read();
        let open = s.open_fds.expect("open fds");
        assert!(open >= 3 && open <= s.max_fds.expect("max fds"), "{s:?}");
        let rss = s.resident_bytes.expect("rss");
        assert!(
            rss > 1 << 20 && rss <= s.virtual_bytes.expect("vsize"),
            "{s:?}"
        );
        assert!(s.cpu_seconds.expect("cpu") >= 0.0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let start = s.start_time_seconds.expect("start time");
        // The test binary started within the last hour, and not in the future (the
        // boot time is whole seconds: allow one).
        assert!(
            start <= now + 1.0 && start > now - 3600.0,
            "{start} vs {now}"
        );
    }

    #[test]
    fn missing_values_are_left_out_and_the_rest_use_the_standard_names() {
        let stats = ProcessStats {
            open_fds: Some(12),
            max_fds: Some(1024),
            resident_bytes: None,
            virtual_bytes: Some(1 << 30),
            cpu_seconds: Some(1.5),
            start_time_seconds: Some(1_764_800_000.25),
        };
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(stats));
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry).unwrap();
        for line in [
            "# TYPE process_open_fds gauge",
            "process_open_fds 12",
            "process_max_fds 1024",
            "process_virtual_memory_bytes 1073741824",
            "# TYPE process_cpu_seconds_total counter",
            "process_cpu_seconds_total 1.5",
            "# TYPE process_start_time_seconds gauge",
            "process_start_time_seconds 1764800000.25",
        ] {
            assert!(out.lines().any(|l| l == line), "missing {line:?} in\n{out}");
        }
        assert!(!out.contains("process_resident_memory_bytes"), "{out}");
    }
}
