//! A background client that keeps fetching one small file while a test abuses the
//! server, and what it saw.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::http::try_request_at;

/// What a [`Prober`] saw.
#[derive(Debug, Clone)]
pub struct ProbeReport {
    /// Requests that got the expected 200 and bytes.
    pub ok: usize,
    /// Requests that failed, with why.
    pub failures: Vec<String>,
    /// The slowest successful request.
    pub max: Duration,
    /// The median successful request.
    pub median: Duration,
}

/// A background client that keeps fetching one small file on fresh connections, to
/// show the server still answers others while a test abuses it.
pub struct Prober {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: JoinHandle<ProbeReport>,
}

impl Prober {
    /// Starts fetching `GET path` (which must answer 200 with `expected`) every
    /// `pause`, until [`Prober::finish`].
    pub fn start(addr: SocketAddr, path: &str, expected: Vec<u8>, pause: Duration) -> Prober {
        use std::sync::atomic::AtomicBool;
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let path = path.to_owned();
        let thread = std::thread::Builder::new()
            .name("prober".into())
            .spawn(move || {
                let (mut times, mut failures) = (Vec::new(), Vec::new());
                // At least one probe, even if the test finishes at once.
                while times.len() + failures.len() == 0 || !flag.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    match try_request_at(addr, "GET", &path, &[]) {
                        Ok(r) if r.status == 200 && r.body == expected => times.push(t.elapsed()),
                        Ok(r) => failures.push(format!(
                            "status {} with {} bytes after {:?}",
                            r.status,
                            r.body.len(),
                            t.elapsed()
                        )),
                        Err(e) => failures.push(format!("{e} after {:?}", t.elapsed())),
                    }
                    std::thread::sleep(pause);
                }
                times.sort();
                ProbeReport {
                    ok: times.len(),
                    failures,
                    max: times.last().copied().unwrap_or_default(),
                    median: times.get(times.len() / 2).copied().unwrap_or_default(),
                }
            })
            .expect("spawn the prober");
        Prober { stop, thread }
    }

    /// Stops the probes and returns what they saw.
    pub fn finish(self) -> ProbeReport {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the prober panicked")
    }
}
