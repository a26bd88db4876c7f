//! The queue between the workers and the log's writer thread: lines are handed over
//! without ever blocking a worker (dropped and counted when the writer falls behind),
//! and the writer thread batches them into a buffered output, which it reopens at its
//! path on request (log rotation) between two lines.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most lines waiting for the writer thread.
const MAX_QUEUED_LINES: usize = 65_536;
/// Most bytes of lines waiting for the writer thread.
const MAX_QUEUED_BYTES: usize = 32 << 20;
/// How long the writer lets lines gather once it was woken.
const BATCH_PAUSE: Duration = Duration::from_millis(5);
/// Lines written and dropped so far by an [`AccessLog`](crate::AccessLog).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AccessLogLines {
    /// Lines handed to the writer's output.
    pub written: u64,
    /// Lines dropped: the writer fell behind, or the output failed.
    pub dropped: u64,
}

/// Opens the log's output again (at its path), for
/// [`AccessLogFlusher::reopen`](crate::AccessLogFlusher::reopen).
pub(super) type Reopen<W> = Box<dyn FnMut() -> io::Result<W> + Send>;

/// The line counts, shared with the writer thread and (managed in Rocket's state) with
/// the metrics exporter.
#[derive(Debug, Default)]
pub(crate) struct LineCounts {
    written: AtomicU64,
    dropped: AtomicU64,
    /// Bytes of lines queued and not yet written (the bound on the queue's memory).
    queued_bytes: AtomicUsize,
}

impl LineCounts {
    pub(super) fn read(&self) -> AccessLogLines {
        AccessLogLines {
            written: self.written.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

/// What the metrics exporter finds in Rocket's state when an access log is attached.
#[derive(Debug, Clone)]
pub(crate) struct AccessLogCounts(pub(super) Arc<LineCounts>);

impl AccessLogCounts {
    /// `(written, dropped)`.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn read(&self) -> (u64, u64) {
        let c = self.0.read();
        (c.written, c.dropped)
    }
}

enum Msg {
    Line(String),
    Flush(SyncSender<()>),
    Reopen(SyncSender<io::Result<()>>),
}

/// The workers' end of the queue. See the module docs.
#[derive(Debug)]
pub(super) struct Sink {
    tx: SyncSender<Msg>,
    pub(super) counts: Arc<LineCounts>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Msg::Line(l) => write!(f, "Line({l:?})"),
            Msg::Flush(_) => f.write_str("Flush"),
            Msg::Reopen(_) => f.write_str("Reopen"),
        }
    }
}

impl Sink {
    /// Starts the writer thread over `writer` (reopened by `reopen`, if any).
    ///
    /// # Panics
    /// If the operating system refuses to start a thread.
    pub(super) fn start<W: Write + Send + 'static>(
        writer: W,
        reopen: Option<Reopen<W>>,
    ) -> Arc<Sink> {
        let (tx, rx) = mpsc::sync_channel(MAX_QUEUED_LINES);
        let sink = Arc::new(Sink {
            tx,
            counts: Arc::new(LineCounts::default()),
        });
        let counts = sink.counts.clone();
        std::thread::Builder::new()
            .name("rocket-mmap-access-log".into())
            .spawn(move || write_lines(rx, writer, reopen, &counts))
            .expect("start the access log writer thread");
        sink
    }

    /// Queues a line without ever blocking; drops (and counts) it if the writer is
    /// too far behind.
    pub(super) fn send(&self, line: String) {
        let len = line.len();
        let queued = &self.counts.queued_bytes;
        if queued.fetch_add(len, Ordering::Relaxed) + len > MAX_QUEUED_BYTES {
            queued.fetch_sub(len, Ordering::Relaxed);
            self.counts.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match self.tx.try_send(Msg::Line(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                queued.fetch_sub(len, Ordering::Relaxed);
                self.counts.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub(super) fn flush(&self, timeout: Duration) -> bool {
        let (ack, done) = mpsc::sync_channel(1);
        let deadline = Instant::now() + timeout;
        self.send_control(Msg::Flush(ack), deadline)
            && done
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .is_ok()
    }

    pub(super) fn reopen(&self, timeout: Duration) -> io::Result<()> {
        let (ack, done) = mpsc::sync_channel(1);
        let deadline = Instant::now() + timeout;
        let timed_out = || {
            io::Error::new(
                io::ErrorKind::TimedOut,
                "the access log writer did not answer in time",
            )
        };
        if !self.send_control(Msg::Reopen(ack), deadline) {
            return Err(timed_out());
        }
        done.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .map_err(|_| timed_out())?
    }

    /// Queues a message that must not be dropped, behind the lines already queued: the
    /// queue may be full for a moment, so it retries until `deadline`. `false` if it
    /// could not be queued (deadline, or the writer thread is gone).
    fn send_control(&self, mut msg: Msg, deadline: Instant) -> bool {
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => return true,
                Err(TrySendError::Full(m)) if Instant::now() < deadline => {
                    msg = m;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(_) => return false,
            }
        }
    }
}

/// The writer thread: blocks while idle; once woken, lets lines gather for
/// [`BATCH_PAUSE`], writes them all and flushes, until a pause brings none. A reopen
/// is handled between two lines: the old output is flushed, then replaced.
fn write_lines<W: Write>(
    rx: Receiver<Msg>,
    writer: W,
    mut reopen: Option<Reopen<W>>,
    counts: &LineCounts,
) {
    let mut out = io::BufWriter::with_capacity(64 << 10, writer);
    let mut failed = false;
    let mut handle = |msg: Msg, out: &mut io::BufWriter<W>| match msg {
        Msg::Line(line) => {
            if !failed && out.write_all(line.as_bytes()).is_ok() {
                counts.written.fetch_add(1, Ordering::Relaxed);
            } else {
                if !failed {
                    eprintln!("rocket-mmap: the access log cannot be written; lines are dropped");
                }
                failed = true;
                counts.dropped.fetch_add(1, Ordering::Relaxed);
            }
            counts.queued_bytes.fetch_sub(line.len(), Ordering::Relaxed);
        }
        Msg::Flush(ack) => {
            let _ = out.flush();
            let _ = ack.try_send(());
        }
        Msg::Reopen(ack) => {
            let result = match &mut reopen {
                None => Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "this access log was not opened from a path",
                )),
                Some(open) => {
                    // Every line before the reopen belongs to the old file.
                    let _ = out.flush();
                    open().map(|writer| {
                        *out = io::BufWriter::with_capacity(64 << 10, writer);
                        // A new file: writing may work again (after a full disk).
                        failed = false;
                    })
                }
            };
            let _ = ack.try_send(result);
        }
    };
    while let Ok(first) = rx.recv() {
        handle(first, &mut out);
        loop {
            std::thread::sleep(BATCH_PAUSE);
            let mut got = false;
            while let Ok(msg) = rx.try_recv() {
                got = true;
                handle(msg, &mut out);
            }
            let _ = out.flush();
            if !got {
                break;
            }
        }
    }
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_log_reopens_at_its_path_between_lines_and_keeps_its_file_on_failure() {
        let dir =
            std::env::temp_dir().join(format!("rocket-mmap-access-reopen-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("access.log");
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
        let open = {
            let path = path.clone();
            move || {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
            }
        };
        let log = Sink::start(open().unwrap(), Some(Box::new(open)));
        let wait = Duration::from_secs(5);
        log.send("one\n".into());
        std::fs::rename(&path, dir.join("access.log.1")).unwrap();
        // Queued before the reopen: still the old (renamed) file.
        log.send("two\n".into());
        log.reopen(wait).unwrap();
        log.send("three\n".into());
        assert!(log.flush(wait));
        assert_eq!(read("access.log.1"), "one\ntwo\n");
        assert_eq!(read("access.log"), "three\n");
        // The path cannot be opened (a directory is there): the error is returned and
        // the file open until now stays in use.
        std::fs::rename(&path, dir.join("access.log.2")).unwrap();
        std::fs::create_dir(&path).unwrap();
        let err = log.reopen(wait).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::IsADirectory, "{err}");
        log.send("four\n".into());
        assert!(log.flush(wait));
        assert_eq!(read("access.log.2"), "three\nfour\n");
        assert_eq!(log.counts.read().written, 4);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_writer_log_cannot_be_reopened() {
        let log = Sink::start(io::sink(), None);
        let err = log.reopen(Duration::from_secs(5)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Unsupported, "{err}");
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_blocking() {
        // A writer that never returns holds the thread; the queue fills and the rest
        // is dropped, each counted, without the sender ever waiting.
        struct Stuck(Arc<std::sync::Barrier>);
        impl Write for Stuck {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                self.0.wait();
                Err(io::Error::other("released"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let barrier = Arc::new(std::sync::Barrier::new(2));
        let log = Sink::start(Stuck(barrier.clone()), None);
        let line = "x".repeat(70 << 10); // fills the 64 KiB BufWriter: the writer calls write
        let started = Instant::now();
        let total = 1000;
        for _ in 0..total {
            log.send(line.clone());
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "sending never blocks"
        );
        // 32 MiB of 70 KiB lines fit in the queue; the rest was dropped.
        let counts = log.counts.read();
        let queued_max = MAX_QUEUED_BYTES / line.len();
        assert!(
            counts.dropped as usize >= total - queued_max - 1,
            "{counts:?}"
        );
        barrier.wait();
    }
}
