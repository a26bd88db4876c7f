//! Faulting mapped pages in off the async workers.
//!
//! A body copies its bytes out of the mapping on an async worker thread. When a page
//! it copies is not in memory, the copy takes a *major* page fault: the worker stops
//! for a disk read, and every task queued on that worker waits with it (the I/O stall
//! of "Are You Sure You Want to Use MMAP in Your DBMS?", CIDR 2022, and the reason
//! nginx has `aio threads`). On a library larger than memory that is most copies.
//!
//! So a body never copies a window of the mapping before it knows that the window's
//! pages are resident (`SegmentBody`'s `poll_read`, in `engine::body`):
//!
//! * **The residency test is `mincore`** on the part of the mapping the body is about
//!   to copy ([`MappingWatch::resident_until`]), one system call per [`WINDOW`] of
//!   content at most, and one per response for small ones. A resident window is copied
//!   at once; a missing page sends the window to a *fault-in*.
//!   Chosen over the alternatives by what each costs and tells:
//!   - `preadv2(RWF_NOWAIT)` tells as much, but only by copying (the design keeps the
//!     body's bytes as slices of the mapping, to be handed to the kernel by a later
//!     zero-copy path), and it needs a descriptor the cache does not keep open.
//!   - A per-entry hint ("this file was resident a moment ago") costs nothing but is
//!     wrong exactly when it matters: under memory pressure pages leave at any time.
//!   - `mincore` costs one system call and reads no page: measured here (a C loop
//!     over a resident mapping, 10^6 calls) 1.1 µs for one page and 2.2 µs for a
//!     1 MiB window, where a null system call took 0.3 µs; callgrind counts 0.4 to
//!     1.2% more user-space instructions per request for the whole change
//!     (docs/performance.md). Since Linux 5.2
//!     it reports the page cache only for files the process could open for writing
//!     (root, or the file's owner); otherwise it reports the pages mapped in *this*
//!     process. A page in the page cache but not yet mapped here then reads as missing
//!     and costs a fault-in that finds it at once (a minor fault on a blocking thread),
//!     never a stall on a worker. A page this process has mapped is reported resident,
//!     so a hot file pays the one check and nothing else.
//! * **The fault-in** runs on a blocking pool of lower-priority threads
//!   (`engine::background`: the async worker keeps the CPU it needs for answers from
//!   memory while a burst of fault-ins allocates and reclaims page cache):
//!   `madvise(MADV_WILLNEED)` over the window, so the kernel reads it ahead in large
//!   requests, then `madvise(MADV_POPULATE_READ)` (Linux 5.14), which waits for the
//!   pages and maps them ([`MappingWatch::populate`]). The body returns `Pending` until it completes.
//!   A body has at most one fault-in in flight.
//! * **Read ahead**: a body that is within a window of the end of what it knows to be
//!   resident checks the next window and, when part of it is missing, starts its
//!   fault-in while it goes on copying; a sequential download keeps one window in
//!   flight ahead of its reader.
//!   `MADV_SEQUENTIAL` is not used: it applies to the shared mapping and would make the
//!   kernel drop pages that other readers of the file still use.
//! * **Bounded**: at most [`CacheConfig::max_fault_ins`](crate::cache::CacheConfig) fault-ins
//!   run at once for a whole cache (a semaphore); the others wait, counted as queued.
//!   Done, queued and running fault-ins and the time they waited are in the cache's
//!   counters (`engine::stats`) and the metrics.
//! * **Truncation**: `MADV_POPULATE_READ` over pages past a new end of file fails with
//!   `EFAULT` instead of raising SIGBUS: the mapping is poisoned and the body is cut
//!   exactly as a copy that met the SIGBUS guard would be.
//!
//! Pages can still leave memory between a fault-in and the copy (memory pressure
//! within microseconds); the copy then faults on the worker, as every copy did before.
//! The window is large enough that this is rare and small enough that a few downloads'
//! windows fit in any memory limit worth serving from.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::sync::Semaphore;

use crate::engine::background;
use crate::engine::mapping::{MappingWatch, Truncated};
use crate::engine::stats::Counters;

/// The fault-in window: how much of the mapping one residency check covers, one
/// fault-in brings in, and a sequential reader keeps faulted in ahead of itself.
/// 1 MiB, chosen with the cold-library benchmark (docs/performance.md, "Serving
/// libraries larger than memory": four downloads from a 64 MB/s disk into 256 MiB of memory), one round
/// each: 512 KiB and 1 MiB gave ~60 MB/s with no hot GET slower than 25 ms; 2 MiB
/// gave 58 MB/s with a hot GET held 275 ms; 4 MiB, 59 MB/s and 520 ms. Larger windows
/// pin more memory per download, and under a memory limit pages faulted in early are
/// evicted before the copy reaches them, which then faults on the worker. Even 512
/// KiB is read in large requests (`MADV_WILLNEED` submits the whole range).
pub const WINDOW: usize = 1 << 20;

/// The default bound on fault-ins in flight for one cache
/// ([`CacheConfig::max_fault_ins`](crate::cache::CacheConfig)): as many as nginx's default
/// `aio threads` pool has threads. Each one is a blocking-pool thread waiting for the
/// disk, so the bound is on the disk's queue, not on CPU.
pub const DEFAULT_MAX_FAULT_INS: usize = 32;

/// Runs fault-ins for the bodies of one cache, at most `limit` at once.
#[derive(Debug)]
pub(crate) struct Pager {
    permits: Arc<Semaphore>,
    counters: Arc<Counters>,
    /// A test's hold on the next fault-in: it sleeps this long first (on the
    /// blocking thread), so that a test can act while one is pending.
    #[cfg(test)]
    pub(crate) delay: std::sync::Mutex<std::time::Duration>,
}

impl Pager {
    /// A pager allowing `limit` fault-ins at once (at least one), counting in `counters`.
    pub(crate) fn new(limit: usize, counters: Arc<Counters>) -> Pager {
        Pager {
            permits: Arc::new(Semaphore::new(limit.clamp(1, Semaphore::MAX_PERMITS))),
            counters,
            #[cfg(test)]
            delay: std::sync::Mutex::new(std::time::Duration::ZERO),
        }
    }

    /// The pager of bodies that belong to no cache (built by hand, not through
    /// `SegmentBody::counted_in`): the default bound, uncounted.
    pub(crate) fn global() -> &'static Arc<Pager> {
        static GLOBAL: OnceLock<Arc<Pager>> = OnceLock::new();
        GLOBAL.get_or_init(|| Arc::new(Pager::new(DEFAULT_MAX_FAULT_INS, Arc::default())))
    }

    /// Starts faulting in `[from, to)` of `watch`'s mapping: waits for a permit, then
    /// runs [`MappingWatch::populate`] on the background pool. `None` outside a tokio
    /// runtime (the copy then faults on the calling thread, as it would have anyway).
    pub(crate) fn fault_in(
        self: &Arc<Pager>,
        watch: &Arc<MappingWatch>,
        from: usize,
        to: usize,
    ) -> Option<FaultIn> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let (pager, watch) = (Arc::clone(self), Arc::clone(watch));
        let work = async move {
            let queued = Queued::new(&pager.counters);
            let Ok(permit) = Arc::clone(&pager.permits).acquire_owned().await else {
                return Ok(()); // Never closed; if it were, the copy faults the pages itself.
            };
            drop(queued);
            let counters = Arc::clone(&pager.counters);
            let job = background::spawn_blocking(&runtime, move || {
                let _permit = permit;
                counters.fault_ins_running.fetch_add(1, Relaxed);
                #[cfg(test)]
                {
                    // The next fault-in only: the test holds one pending.
                    let delay = std::mem::take(&mut *pager.delay.lock().unwrap());
                    std::thread::sleep(delay);
                }
                let done = watch.populate(from, to);
                counters.fault_ins_running.fetch_sub(1, Relaxed);
                counters.fault_ins.fetch_add(1, Relaxed);
                done
            });
            // A refused or panicked job faulted nothing in: the copy faults the pages itself,
            // and the SIGBUS guard still covers truncation.
            job.await.unwrap_or(Ok(()))
        };
        Some(FaultIn {
            from,
            to,
            work: Box::pin(work),
        })
    }
}

/// Counts a fault-in as queued until it gets its permit (or is dropped waiting), and
/// records how long it waited.
struct Queued {
    counters: Arc<Counters>,
    since: Instant,
}

impl Queued {
    fn new(counters: &Arc<Counters>) -> Queued {
        counters.fault_ins_queued.fetch_add(1, Relaxed);
        Queued {
            counters: Arc::clone(counters),
            since: Instant::now(),
        }
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        self.counters.fault_ins_queued.fetch_sub(1, Relaxed);
        self.counters.fault_in_wait.observe(self.since.elapsed());
    }
}

/// One fault-in of `[from, to)` of a mapping, in flight. Dropping it before its job
/// started gives its place in the queue up; a job already running finishes on its
/// blocking thread (the pages it brings in serve the next reader).
pub(crate) struct FaultIn {
    /// The mapping offsets it covers.
    pub(crate) from: usize,
    pub(crate) to: usize,
    work: Pin<Box<dyn Future<Output = Result<(), Truncated>> + Send + Sync>>,
}

impl FaultIn {
    /// Whether it covers mapping offset `at`.
    pub(crate) fn covers(&self, at: usize) -> bool {
        self.from <= at && at < self.to
    }

    /// Polls it: `Ready(Err(Truncated))` if it found the file truncated (the mapping
    /// is then poisoned).
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Truncated>> {
        self.work.as_mut().poll(cx)
    }
}

impl std::fmt::Debug for FaultIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultIn")
            .field("from", &self.from)
            .field("to", &self.to)
            .finish_non_exhaustive()
    }
}

/// A body's view of the residency of its mapping: which mapping offsets are known to
/// be in memory, the one fault-in in flight, and what it has released behind itself.
/// A body asks [`Residency::poll_run`] how much it may copy at an offset; this type
/// schedules the fault-ins (one at a time, one window ahead of the reader) and the
/// releases of windows already read from a cold file.
#[derive(Debug, Default)]
pub(crate) struct Residency {
    /// Who faults missing pages in: the body's cache's pager, or the global one.
    pager: Option<Arc<Pager>>,
    /// Mapping offsets `[start, end)` known to be resident (tested, or just faulted in).
    resident: (usize, usize),
    /// The fault-in in flight, if any (at most one per body).
    fault: Option<FaultIn>,
    /// Set once the body had to fault pages in (its file was cold): it then unmaps
    /// what it has read behind it, up to `released`.
    cold: bool,
    released: usize,
}

impl Clone for Residency {
    /// The same knowledge; a fault-in in flight stays with the original.
    fn clone(&self) -> Residency {
        Residency {
            pager: self.pager.clone(),
            resident: self.resident,
            fault: None,
            cold: self.cold,
            released: self.released,
        }
    }
}

impl Residency {
    /// Fault-ins go through `pager` (the body's cache's) rather than the global one.
    pub(crate) fn faulted_in_by(&mut self, pager: Arc<Pager>) {
        self.pager = Some(pager);
    }

    /// How many bytes from mapping offset `at` (up to `seg_end`, the end of the slice
    /// being read) can be copied without a disk read: `Pending` while a fault-in
    /// brings the page at `at` in (or the page its truncation probe reads);
    /// `Ready(0)` when a fault-in found the mapping truncated (it is then poisoned);
    /// `Ready(usize::MAX)` when there is no runtime to fault in on (the copy faults,
    /// as a plain read of the mapping would). Starts the fault-in of the next window
    /// while the reader copies the one it knows, and releases the windows of a cold
    /// file the reader has passed.
    pub(crate) fn poll_run(
        &mut self,
        cx: &mut Context<'_>,
        watch: &Arc<MappingWatch>,
        at: usize,
        seg_end: usize,
    ) -> Poll<usize> {
        loop {
            if let Some(fault) = &mut self.fault {
                match fault.poll(cx) {
                    Poll::Ready(done) => {
                        let (from, to) = (fault.from, fault.to);
                        self.fault = None;
                        if done.is_err() {
                            return Poll::Ready(0);
                        }
                        // Just brought in: trusted without a second test.
                        if from <= at && at < to {
                            self.resident = (from, to);
                        } else if self.resident.0 <= from && from <= self.resident.1 {
                            self.resident.1 = self.resident.1.max(to);
                        }
                    }
                    Poll::Pending if fault.covers(at) => return Poll::Pending,
                    Poll::Pending => {}
                }
            }
            if copyable(watch, self.resident, at, seg_end) == 0 {
                // Test one window from here, and the page its last copy's probe reads.
                let to = watch.needed_through(seg_end.min(at.saturating_add(WINDOW)));
                let ready = watch.resident_until(at, to);
                self.resident = (at, ready);
                if copyable(watch, self.resident, at, seg_end) == 0 {
                    if self.fault.is_some() {
                        // At most one in flight: the read-ahead that is running wakes
                        // the body when it ends (it was polled above).
                        return Poll::Pending;
                    }
                    let pager = self.pager.get_or_insert_with(|| Pager::global().clone());
                    self.cold = true;
                    match pager.fault_in(watch, ready, to) {
                        Some(fault) => self.fault = Some(fault),
                        // No runtime to fault in on: the copy faults the pages itself.
                        None => return Poll::Ready(usize::MAX),
                    }
                    continue;
                }
            }
            self.read_ahead(cx, watch, at, seg_end);
            if self.cold && at >= self.released.saturating_add(WINDOW) {
                // Read from a cold file: unmap the windows already copied, so that
                // under memory pressure the kernel reclaims them as cheaply as the
                // page cache of a `read` (mapped pages must be unmapped first, by the
                // reclaiming thread, which may be this worker). The page cache keeps
                // them for other readers, who map them again with a minor fault.
                let from = self.released.max(self.resident.0.min(at));
                watch.release(from, at);
                self.released = at;
            }
            return Poll::Ready(copyable(watch, self.resident, at, seg_end));
        }
    }

    /// Once the reader is within a window of the end of what it knows to be resident,
    /// tests the next window and starts faulting its missing part in: a sequential
    /// reader copies one window while the next one is read from disk.
    fn read_ahead(
        &mut self,
        cx: &mut Context<'_>,
        watch: &Arc<MappingWatch>,
        at: usize,
        seg_end: usize,
    ) {
        let from = self.resident.1;
        let to = watch.needed_through(seg_end.min(from.saturating_add(WINDOW)));
        if self.fault.is_some() || from >= to || from.saturating_sub(at) > WINDOW {
            return;
        }
        let ready = watch.resident_until(from, to);
        self.resident.1 = ready;
        if ready < to {
            let pager = self.pager.get_or_insert_with(|| Pager::global().clone());
            if let Some(mut fault) = pager.fault_in(watch, ready, to) {
                // Polled once so that its end wakes the body.
                match fault.poll(cx) {
                    Poll::Ready(Ok(())) => self.resident.1 = to,
                    Poll::Ready(Err(_)) => {}
                    Poll::Pending => self.fault = Some(fault),
                }
            }
        }
    }
}

/// How many bytes from mapping offset `at` (up to `end`) can be copied when the pages
/// of `known` (a range whose end is a page boundary or the mapping's end) are
/// resident: the copy must also leave resident the page its truncation probe reads
/// after it (`MappingWatch::verify_through`), so it stops a page short of a known
/// range that ends before the mapping does.
pub(crate) fn copyable(
    watch: &MappingWatch,
    known: (usize, usize),
    at: usize,
    end: usize,
) -> usize {
    let (start, stop) = known;
    if !(start <= at && at < stop) {
        return 0;
    }
    let limit = if stop >= watch.mapped_len() {
        stop
    } else {
        stop.saturating_sub(crate::engine::mapping::page_size())
    };
    limit.min(end).saturating_sub(at)
}
