//! `rocket-mmap`: serve a directory (or, with no argument, an embedded demo) with
//! rocket-mmap. `rocket-mmap --help` lists the options; `ROCKET_*` variables and
//! `Rocket.toml` configure Rocket and the `mmap` section as usual.
//!
//! TLS: `--tls-cert FILE --tls-key FILE` (PEM), or `[default.tls]` in `Rocket.toml`,
//! or `ROCKET_TLS`; the flags win. The pair is checked before launch
//! ([`rocket_mmap::setup::check_tls`]), so a missing file or a key of another certificate is
//! one clear line and exit code 2, not a failure to bind. With TLS, Rocket offers
//! HTTP/2 by ALPN; without it, HTTP/1.1 and HTTP/2 with prior knowledge (h2c).
//!
//! At start it raises its open-files soft limit to the hard limit ([`raise_open_files`]),
//! as Go's runtime and nginx's `worker_rlimit_nofile` do: every connection holds a
//! descriptor, and a soft limit of 1024 (what many systems give services) is reached by
//! 1024 idle clients. The limit is printed under the banner, with a warning below
//! [`LOW_OPEN_FILES`].
//!
//! Signals ([`reopen_on_signals`]): `SIGUSR1` and `SIGHUP` reopen the access log at its
//! path (for logrotate: rename, then signal; no line is lost or split); `SIGTERM` and
//! Ctrl-C are Rocket's graceful shutdown.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use rocket::fairing::AdHoc;
use rocket::{get, routes, State};
use rocket_mmap::cache::Entry;
use rocket_mmap::setup::{parse_size, SizeSetting};
use rocket_mmap::{AccessLog, ConfigError, FileServer, Metrics, Mmap, MmapConfig, MmapFile};

/// Serve files over HTTP with byte ranges, strong ETags and conditional requests,
/// from memory-mapped files.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Directory to serve at `/`. Without it, an embedded demo is served.
    dir: Option<PathBuf>,
    /// Port to listen on (default: Rocket's, 8000, or ROCKET_PORT).
    #[arg(long, short)]
    port: Option<u16>,
    /// Address to listen on (default: Rocket's, 127.0.0.1, or ROCKET_ADDRESS).
    #[arg(long, short)]
    address: Option<IpAddr>,
    /// Map and hash every file under DIR before listening (with
    /// ROCKET_MMAP_DIGEST_AT_LOAD=true, their integrity digests too).
    #[arg(long, requires = "dir")]
    warm: bool,
    /// Pace every download at this many bytes per second: 512k, 2m, 1g (KiB, MiB,
    /// GiB) or bytes; 0 for no limit. Overrides `limit_rate` of the configuration.
    #[arg(long, value_name = "SIZE", value_parser = size_arg)]
    limit_rate: Option<u64>,
    /// Send this many bytes of every download at full speed before --limit-rate
    /// applies (same units). Overrides `limit_rate_after` of the configuration.
    #[arg(long, value_name = "SIZE", value_parser = size_arg)]
    limit_rate_after: Option<u64>,
    /// Serve HTTPS (and HTTP/2 by ALPN) with this PEM certificate chain; needs
    /// --tls-key. Overrides `[default.tls]` in Rocket.toml and ROCKET_TLS.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key (PKCS#8, PKCS#1 or SEC1) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Write an access log (combined log format) to PATH, `-` for the standard
    /// output. Quiets Rocket's own per-request lines unless ROCKET_LOG_LEVEL or
    /// Rocket.toml sets a log level.
    #[arg(long, value_name = "PATH")]
    access_log: Option<PathBuf>,
    /// Add the request time in ms, the Range header and the part list served to each
    /// access log line.
    #[arg(long, requires = "access_log")]
    access_log_extended: bool,
    /// Serve Prometheus metrics at /metrics.
    #[arg(long)]
    metrics: bool,
    /// Answer directories without an index file with 404 instead of a listing.
    #[arg(long, requires = "dir")]
    no_browse: bool,
    /// Keep ETags and digests in this file (created if missing) across restarts, so
    /// that a restart does not read unchanged files again to answer with their tags.
    /// Default: a file for DIR under the user's cache directory
    /// ($XDG_CACHE_HOME/rocket-mmap/, else ~/.cache/rocket-mmap/), unless the
    /// configuration's `tag_store` names one. One server at a time may write a given
    /// file; a store that cannot be opened is a warning, and tags are then remembered
    /// in memory only.
    #[arg(long, value_name = "PATH", conflicts_with = "no_tag_store")]
    tag_store: Option<PathBuf>,
    /// Keep no tag store: tags are remembered in memory only, for this run (e.g. for
    /// benchmarks that must not depend on an earlier run).
    #[arg(long)]
    no_tag_store: bool,
    /// Make every Range request wait for the file's strong ETag, as origins behind a
    /// slicing cache with several origins need (nginx `slice`). Default: a Range is
    /// answered at once, with the ETag only once it is known. Sets `ranges_await_tag`.
    #[arg(long)]
    ranges_await_tag: bool,
}

/// The tag store the binary keeps for `dir` when none is configured: one file per
/// served directory (so that servers of different directories never contend for one
/// store's lock), under `$XDG_CACHE_HOME/rocket-mmap/`, else `~/.cache/rocket-mmap/`.
/// `None` when neither variable names an absolute directory.
fn default_tag_store(dir: &Path) -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .map(|home| home.join(".cache"))
        })?;
    let root = std::fs::canonicalize(dir).unwrap_or_else(|_| absolute(dir));
    let mut crc = crc64fast::Digest::new();
    crc.write(root.as_os_str().as_encoded_bytes());
    let name = root
        .file_name()
        .map(|n| {
            n.to_string_lossy().replace(
                |c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_',
                "_",
            )
        })
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "root".to_owned());
    Some(
        base.join("rocket-mmap")
            .join(format!("{name}-{:016x}.tags.redb", crc.sum64())),
    )
}

/// A size flag's value; clap's message names the flag and the value, so the error is
/// only what was expected.
fn size_arg(text: &str) -> Result<u64, String> {
    parse_size(text).map_err(|e| match e {
        ConfigError::InvalidSize {
            too_large: true, ..
        } => format!("more than {} bytes", u64::MAX),
        _ => "expected a number of bytes, optionally with k, m or g (e.g. 512k)".to_owned(),
    })
}

/// `path` made absolute against the current directory (Rocket would resolve a bare
/// relative path the same way; an absolute one reads better in errors).
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Below this many open files the binary warns at start.
const LOW_OPEN_FILES: u64 = 4096;

/// The open-files limit (`RLIMIT_NOFILE`) as start-up left it.
#[derive(Debug)]
struct OpenFiles {
    /// The soft limit found at start.
    before: u64,
    /// The soft limit now.
    now: u64,
    /// The hard limit.
    hard: u64,
    /// Why raising it failed, if it did.
    error: Option<std::io::Error>,
}

/// Raises the open-files soft limit to the hard limit (on macOS, to the kernel's
/// per-process maximum when the hard limit is unlimited: `rlimit` clamps it). `None` where
/// the platform has no such limit or it cannot be read.
fn raise_open_files() -> Option<OpenFiles> {
    let (before, hard) = rlimit::Resource::NOFILE.get().ok()?;
    let (now, error) = match rlimit::increase_nofile_limit(hard) {
        Ok(now) => (now, None),
        Err(e) => (before, Some(e)),
    };
    Some(OpenFiles {
        before,
        now,
        hard,
        error,
    })
}

impl OpenFiles {
    /// The line printed under the banner, and a warning for standard error, if any.
    fn report(&self) -> (String, Option<String>) {
        let shown = |n: u64| {
            if n == rlimit::INFINITY {
                "unlimited".to_owned()
            } else {
                n.to_string()
            }
        };
        let line = if self.now > self.before {
            format!(
                "open files: up to {} (soft limit raised from {}; hard limit {})",
                shown(self.now),
                shown(self.before),
                shown(self.hard)
            )
        } else {
            format!(
                "open files: up to {} (hard limit {})",
                shown(self.now),
                shown(self.hard)
            )
        };
        let warning = match &self.error {
            Some(e) => Some(format!(
                "warning: cannot raise the open-files limit from {} to {}: {e}",
                shown(self.before),
                shown(self.hard)
            )),
            None if self.now < LOW_OPEN_FILES => Some(format!(
                "warning: open files are limited to {}: every connection holds one, so about \
                 that many clients at once stop the server from accepting more; raise the hard \
                 limit (`ulimit -Hn` as root, `LimitNOFILE=` in a systemd unit) to {LOW_OPEN_FILES} \
                 or more",
                self.now
            )),
            None => None,
        };
        (line, warning)
    }
}

/// The demo's page.
const DEMO_PAGE: &str = include_str!("demo/index.html");

struct Demo {
    page: Arc<Entry>,
    tone: Arc<Entry>,
}

#[get("/")]
fn demo_page(demo: &State<Demo>) -> MmapFile {
    MmapFile::new(demo.page.clone()).cache_control("no-cache")
}

#[get("/tone.wav")]
fn demo_tone(demo: &State<Demo>) -> MmapFile {
    MmapFile::new(demo.tone.clone()).inline(Some("tone.wav"))
}

/// A 16-bit mono PCM WAV: `seconds` of a slow sweep with a tick every second, so that a
/// seek is audible. Made at start-up: nothing to download, works from any directory.
fn tone_wav(seconds: u32) -> Vec<u8> {
    const RATE: u32 = 22_050;
    let samples = RATE * seconds;
    let data_len = samples * 2;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&RATE.to_le_bytes());
    out.extend_from_slice(&(RATE * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    let mut phase = 0f64;
    for i in 0..samples {
        let t = f64::from(i) / f64::from(RATE);
        let freq = 220.0 + 220.0 * t / f64::from(seconds);
        phase += std::f64::consts::TAU * freq / f64::from(RATE);
        let tick = if (i % RATE) < 400 { 0.5 } else { 0.0 };
        let v = (phase.sin() * 0.3 + tick * (phase * 8.0).sin()) * f64::from(i16::MAX);
        out.extend_from_slice(&(v as i16).to_le_bytes());
    }
    out
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => out.push(e.path()),
                _ => {}
            }
        }
    }
    out
}

fn warm(mmap: &Mmap, dir: &Path) {
    let files = files_under(dir);
    let total: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "warming {bar:40} {bytes}/{total_bytes} {bytes_per_sec} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let start = Instant::now();
    let (mut ok, mut bytes, mut failed) = (0usize, 0u64, 0usize);
    for f in &files {
        match mmap.cache().get_blocking(f) {
            Ok(e) => {
                ok += 1;
                bytes += e.len();
                bar.inc(e.len());
            }
            Err(e) => {
                failed += 1;
                bar.println(format!("skipped {}: {e}", f.display()));
            }
        }
    }
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "warmed {ok} files, {:.1} MiB in {secs:.2} s ({:.0} MiB/s){}; {} kept in cache",
        bytes as f64 / 1_048_576.0,
        bytes as f64 / 1_048_576.0 / secs.max(1e-9),
        if failed > 0 {
            format!(", {failed} skipped")
        } else {
            String::new()
        },
        mmap.cache().stats().entries,
    );
}

/// Reopens the access log when `SIGUSR1` or `SIGHUP` arrives, on a task of its own,
/// so that logrotate can rename the file and signal (`postrotate kill -USR1`) instead of
/// `copytruncate`, which loses lines. The reopen goes through the log's queue (see
/// [`rocket_mmap::setup::AccessLogFlusher::reopen`]): lines before it end in the renamed file, lines after
/// it in the new one.
///
/// `SIGUSR1` is nginx's signal for this. `SIGHUP` does the same rather than ending the
/// process (its default): it is the signal many logrotate configurations send, and a
/// server that dies of an operator's habit is the worse surprise. nginx's `HUP`
/// reloads its configuration, which reopens its logs too; this binary reads its
/// configuration once, so a reopen is all there is to do. Without an access log (or
/// with `--access-log -`), the signals are noted on standard error and ignored.
#[cfg(unix)]
fn reopen_on_signals(log: Option<rocket_mmap::setup::AccessLogFlusher>) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut usr1 = signal(SignalKind::user_defined1())?;
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        loop {
            let name = tokio::select! {
                Some(()) = usr1.recv() => "SIGUSR1",
                Some(()) = hup.recv() => "SIGHUP",
                else => break,
            };
            let Some(log) = log.clone() else {
                eprintln!("{name}: there is no access log to reopen");
                continue;
            };
            let reopened =
                tokio::task::spawn_blocking(move || log.reopen(Duration::from_secs(5))).await;
            match reopened {
                Ok(Ok(())) => println!("access log reopened ({name})"),
                Ok(Err(e)) => eprintln!("warning: {name}: cannot reopen the access log: {e}"),
                Err(e) => eprintln!("warning: {name}: cannot reopen the access log: {e}"),
            }
        }
    });
    Ok(())
}

/// Whether the operator chose a log level (environment or Rocket.toml) rather than
/// leaving Rocket's default.
fn log_level_configured(figment: &rocket::figment::Figment) -> bool {
    figment
        .find_metadata("log_level")
        .is_some_and(|m| m.name != "rocket::Config::default()")
}

#[rocket::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    // First: Rocket's listener and the cache's loads both take descriptors.
    let open_files = raise_open_files().map(|o| o.report());
    let mut figment = rocket::Config::figment();
    if let Some(port) = args.port {
        figment = figment.merge(("port", port));
    }
    if let Some(address) = args.address {
        figment = figment.merge(("address", address));
    }
    if args.access_log.is_some() && !log_level_configured(&figment) {
        // The access log replaces Rocket's lines per request; the banner below stays.
        figment = figment.merge(("log_level", rocket::config::LogLevel::Off));
    }
    let access_log = match &args.access_log {
        None => None,
        Some(path) if path.as_os_str() == "-" => Some(AccessLog::stdout()),
        Some(path) => match AccessLog::to_file(path) {
            Ok(log) => Some(log),
            Err(e) => {
                eprintln!("error: cannot open the access log {}: {e}", path.display());
                return ExitCode::from(2);
            }
        },
    }
    .map(|log| log.extended(args.access_log_extended));
    let flusher = access_log.as_ref().map(AccessLog::flusher);
    #[cfg(unix)]
    if let Err(e) = reopen_on_signals(flusher.clone()) {
        eprintln!("warning: cannot listen for SIGUSR1/SIGHUP (access log reopening): {e}");
    }
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        figment = figment
            .merge(("tls.certs", absolute(cert)))
            .merge(("tls.key", absolute(key)));
    }
    let rocket_config: rocket::Config = match figment.extract() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: bad Rocket configuration: {e}");
            return ExitCode::from(2);
        }
    };
    let tls = match rocket_mmap::setup::check_tls(&rocket_config) {
        Ok(on) => on,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let mut config = match MmapConfig::from_figment(&figment) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(rate) = args.limit_rate {
        config.limit_rate = SizeSetting::Bytes(rate);
    }
    if let Some(after) = args.limit_rate_after {
        config.limit_rate_after = SizeSetting::Bytes(after);
    }
    if args.ranges_await_tag {
        config.ranges_await_tag = true;
    }
    if args.no_tag_store {
        config.tag_store = None;
    } else if let Some(path) = &args.tag_store {
        config.tag_store = Some(absolute(path));
    } else if let (None, Some(dir)) = (&config.tag_store, &args.dir) {
        config.tag_store = default_tag_store(dir);
        if config.tag_store.is_none() {
            eprintln!(
                "warning: no cache directory (neither XDG_CACHE_HOME nor HOME is set): tags \
                 are remembered in memory only; --tag-store PATH keeps them across restarts"
            );
        }
    }
    // In the banner (a store that cannot be opened is a warning before it).
    let tag_store_line = config
        .tag_store
        .as_ref()
        .map(|p| format!("tag store: {}", p.display()));
    let mmap = match Mmap::from_config(&config) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };

    let mut rocket = rocket::custom(figment);
    let what = match &args.dir {
        Some(dir) => {
            let server = match FileServer::new(dir) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: cannot serve {}: {e}", dir.display());
                    return ExitCode::from(2);
                }
            };
            if args.warm {
                let root = server.root().to_path_buf();
                let m = &mmap;
                // Warm on a blocking-capable thread; the runtime is idle until launch.
                tokio::task::block_in_place(|| warm(m, &root));
            }
            rocket = rocket.mount("/", server.browse(!args.no_browse));
            format!("serving {}", dir.display())
        }
        None => {
            let page = Entry::from_static(DEMO_PAGE.as_bytes(), "text/html; charset=utf-8");
            let tone = Entry::from_bytes(tone_wav(8), "audio/wav");
            rocket = rocket
                .manage(Demo {
                    page: Arc::new(page),
                    tone: Arc::new(tone),
                })
                .mount("/", routes![demo_page, demo_tone]);
            "serving the embedded demo".to_owned()
        }
    };
    let metrics = args.metrics;
    if metrics {
        // A file named `metrics` in DIR is shadowed (the route outranks the files).
        rocket = rocket
            .attach(Metrics::fairing())
            .mount("/metrics", Metrics::new());
    }
    let mut rocket = rocket
        .manage(mmap)
        .attach(Mmap::fairing())
        .attach(AdHoc::on_liftoff("rocket-mmap banner", move |r| {
            Box::pin(async move {
                let c = r.config();
                let scheme = if c.tls_enabled() { "https" } else { "http" };
                println!("rocket-mmap {what} at {scheme}://{}:{}/", c.address, c.port);
                if metrics {
                    println!("metrics at {scheme}://{}:{}/metrics", c.address, c.port);
                }
                if let Some(line) = &tag_store_line {
                    println!("{line}");
                }
                if let Some((line, warning)) = open_files {
                    println!("{line}");
                    if let Some(warning) = warning {
                        eprintln!("{warning}");
                    }
                }
            })
        }));
    if let Some(log) = access_log {
        // Last, so that it sees the body and status every other fairing left.
        rocket = rocket.attach(log);
    }
    let launched = rocket.launch().await;
    if let Some(flusher) = flusher {
        if !flusher.flush(Duration::from_secs(5)) {
            eprintln!("warning: the access log could not be flushed");
        }
    }
    match launched {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            match e.kind() {
                rocket::error::ErrorKind::Bind(io) => {
                    let at = format!("{}:{}", rocket_config.address, rocket_config.port);
                    if io.kind() == std::io::ErrorKind::AddrInUse {
                        eprintln!(
                            "error: cannot listen on {at}: the port is already in use (try --port)"
                        )
                    } else if tls {
                        eprintln!("error: cannot listen with TLS on {at}: {io}")
                    } else {
                        eprintln!("error: cannot listen on {at}: {io}")
                    }
                }
                other => eprintln!("error: {other}"),
            }
            ExitCode::FAILURE
        }
    }
}
