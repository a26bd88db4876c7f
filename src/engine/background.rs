//! The threads of work that must not run on an async worker and may yield the CPU to
//! it: fault-ins ([`engine::fault_in`](crate::engine::fault_in)) and background hashes
//! ([`engine::tag`](crate::engine::tag)'s background lane, digests started for later).
//!
//! They run on a blocking pool of their own (a tokio runtime that is never driven,
//! only its `spawn_blocking` pool is used; threads named `rocket-mmap-bg`, started on
//! demand and ended after ten idle seconds as in any tokio pool), whose threads run
//! [`NICE_STEPS`] nice levels below the thread that first used the pool (an async
//! worker, in a server).
//!
//! # Why the lowest priority
//!
//! Measured with the cold-library scenario (`benches/load/cold.py`: one CPU, four
//! downloads of cold files through a 64 MB/s throttle, a 1 KiB GET every 20 ms): the
//! throttle releases reads in bursts, and each burst wakes up to a dozen fault-ins at
//! once. Each spends 0.2–0.5 ms of CPU in the kernel (allocating page-cache pages,
//! charging and reclaiming memory) on the same CPU as the async worker, which then
//! waits its turn with a small GET in hand (`perf record`: in the small GETs' slowest
//! windows, fault-in threads at normal priority took about as much CPU as the worker,
//! 89 samples against its 134). A nice value is a weight, not a ban, and a dozen
//! threads add their weights: at nice 10 (weight 110 each, against the worker's 1024)
//! a burst still outweighs the worker; at nice 19 (weight 15) it gets about a sixth
//! of the CPU beside it. Ranged downloads, five rounds of one run with the threads at
//! nice 19 and at nice 10 (`benches/load/cold_nice_before_after.json`): the small
//! GETs' p99 0.93–1.15 ms against 0.65–4.51 ms, Rocket `FileServer`'s 0.73–1.37 ms;
//! downloads 66.2 MB/s either way, since the disk, not the CPU, bounds them. So the
//! pool runs [`NICE_STEPS`] = 19 levels down, the lowest priority there is: beside a
//! worker that keeps the CPU busy, cold downloads slow down but go on.
//!
//! Work a response waits for at normal priority stays on the caller's runtime: a load
//! (a first byte waits for its mapping) and the awaited hash lane.

use std::sync::OnceLock;

use tokio::runtime::{Builder, Handle, Runtime};
use tokio::task::JoinHandle;

/// How many nice levels the background threads run below the thread that first used
/// the pool (nice 19, the lowest, under a server at 0; at most 19).
pub(crate) const NICE_STEPS: i32 = 19;

/// The name of the background threads (`top -H`, `/proc/PID/task/*/comm`).
pub(crate) const THREAD_NAME: &str = "rocket-mmap-bg";

/// Runs `job` on a background thread; its handle may be awaited from any runtime.
/// Without the background pool (its runtime could not be built), on the blocking pool
/// of `fallback`, at the caller's priority.
pub(crate) fn spawn_blocking<F, R>(fallback: &Handle, job: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    match pool() {
        Some(runtime) => runtime.spawn_blocking(job),
        None => fallback.spawn_blocking(job),
    }
}

/// The background pool's runtime, built on first use and kept for the process's life.
fn pool() -> Option<&'static Runtime> {
    static POOL: OnceLock<Option<Runtime>> = OnceLock::new();
    POOL.get_or_init(|| {
        // One value for every thread, whichever thread happens to start it.
        let nice = (this_threads_nice() + NICE_STEPS).min(19);
        Builder::new_current_thread()
            .thread_name(THREAD_NAME)
            .on_thread_start(move || set_this_threads_nice(nice))
            .build()
            .ok()
    })
    .as_ref()
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The calling thread's nice value (read as the priority tests of `mapping` check
    /// it against /proc) and name.
    fn nice_and_name() -> (i32, String) {
        let name = std::fs::read_to_string("/proc/thread-self/comm").unwrap();
        (this_threads_nice(), name.trim().to_owned())
    }

    #[tokio::test]
    async fn jobs_run_on_named_threads_below_the_callers_priority() {
        let caller = nice_and_name().0;
        let (nice, name) = spawn_blocking(&Handle::current(), nice_and_name)
            .await
            .unwrap();
        assert_eq!(name, THREAD_NAME);
        // The pool took its value from the first thread that used it; in this test
        // binary every test thread has the same.
        assert_eq!(nice, (caller + NICE_STEPS).min(19));
    }
}

/// The calling thread's nice value (Linux keeps it per thread; 0 elsewhere).
#[cfg(target_os = "linux")]
pub(crate) fn this_threads_nice() -> i32 {
    // `PRIO_PROCESS` with no pid is the calling thread on Linux. On an error (none is
    // expected for oneself) 0: callers only derive a lower priority from it.
    rustix::process::getpriority_process(None).unwrap_or(0)
}

/// Elsewhere: 0.
#[cfg(not(target_os = "linux"))]
pub(crate) fn this_threads_nice() -> i32 {
    0
}

/// Sets the calling thread's nice value (Linux keeps it per thread; the kernel clamps
/// it to -20..=19, and raising a priority needs privilege). Failure is ignored: the
/// thread keeps the priority it had. See `engine::background` for why.
#[cfg(target_os = "linux")]
pub(crate) fn set_this_threads_nice(nice: i32) {
    let _ = rustix::process::setpriority_process(None, nice);
}

/// Elsewhere threads keep their priority.
#[cfg(not(target_os = "linux"))]
pub(crate) fn set_this_threads_nice(_nice: i32) {}

#[cfg(all(test, target_os = "linux"))]
mod priority_tests {
    /// The nice value of the calling thread, from /proc/thread-self/stat.
    fn nice() -> i64 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        fields[16].parse().unwrap() // field 19 of stat(5), counted after "(comm)"
    }

    #[test]
    fn sets_only_the_calling_thread() {
        let (before, after, started_by_it) = std::thread::spawn(|| {
            let before = super::this_threads_nice();
            assert_eq!(i64::from(before), nice());
            super::set_this_threads_nice((before + 10).min(19));
            let started_by_it = std::thread::spawn(nice).join().unwrap();
            (before, nice(), started_by_it)
        })
        .join()
        .unwrap();
        assert_eq!(after, i64::from((before + 10).min(19)));
        // A thread started by the lowered one inherits its value; the test thread
        // kept its own.
        assert_eq!(started_by_it, after);
        assert_eq!(nice(), i64::from(before));
    }
}
