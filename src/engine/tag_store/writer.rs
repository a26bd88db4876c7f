//! The writer thread: the queue [`TagStore::record`](super::TagStore::record) fills,
//! committed in batches; prune passes run between batches, one short step at a time.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redb::{Database, ReadableTable};

use super::record::{inode_range, Key, Record, TAGS};
use super::{guarded, Counters, Tuning, BATCH_MAX, FLUSH_DELAY, PENDING_MAX};
use crate::engine::warn::warn;

/// What the [`TagStore`](super::TagStore) handle shares with its writer thread.
pub(super) struct Inner {
    pub(super) path: PathBuf,
    /// Readers and the writer's transactions hold the read lock; only a compaction
    /// takes the write lock (redb compacts through `&mut Database`).
    pub(super) db: RwLock<Database>,
    queue: Mutex<Queue>,
    /// Wakes the writer thread.
    wake: Condvar,
    /// Wakes [`Inner::flush`] callers when a flush is done.
    flushed: Condvar,
    /// A write failed: nothing more is recorded.
    pub(super) write_failed: AtomicBool,
    /// The store is being dropped: a prune pass under way stops checking files.
    pub(super) stopping: AtomicBool,
    pub(super) read_warned: AtomicBool,
    pub(super) counters: Counters,
    pub(super) tuning: Tuning,
}

/// A prune pass under way (see `prune`): the entries are checked in key order, a
/// step at a time.
#[derive(Debug, Default)]
pub(super) struct Pass {
    /// The last key checked.
    pub(super) after: Option<Key>,
}

#[derive(Default)]
struct Queue {
    records: HashMap<Key, Record>,
    /// When the oldest of `records` was queued.
    since: Option<Instant>,
    closing: bool,
    /// Flushes asked for, and how many of them are done.
    flush_asked: u64,
    flush_done: u64,
}

impl Inner {
    pub(super) fn new(path: PathBuf, db: Database, tuning: Tuning) -> Inner {
        Inner {
            path,
            db: RwLock::new(db),
            queue: Mutex::default(),
            wake: Condvar::new(),
            flushed: Condvar::new(),
            write_failed: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            read_warned: AtomicBool::new(false),
            counters: Counters::default(),
            tuning,
        }
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The database, for a transaction of the writer thread.
    pub(super) fn db(&self) -> RwLockReadGuard<'_, Database> {
        self.db.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The queued record of `key`, if any.
    pub(super) fn queued(&self, key: &Key) -> Option<Record> {
        self.queue().records.get(key).cloned()
    }

    /// Queues `record` for the writer, merged with one queued for the same version.
    /// Past [`PENDING_MAX`] queued versions it is dropped (and counted).
    pub(super) fn enqueue(&self, key: Key, record: Record) {
        let mut q = self.queue();
        if q.closing {
            return;
        }
        let len = q.records.len();
        match q.records.get_mut(&key) {
            Some(queued) => queued.absorb(record),
            None if len >= PENDING_MAX => {
                drop(q);
                Counters::add(&self.counters.dropped, 1);
                return;
            }
            None => {
                q.records.insert(key, record);
                q.since.get_or_insert_with(Instant::now);
            }
        }
        if len == 0 || len + 1 >= BATCH_MAX {
            self.wake.notify_one();
        }
    }

    /// Waits until every record queued before the call is committed (or dropped by a
    /// write error) and no prune pass is under way, or until `writer` has ended.
    pub(super) fn flush(&self, writer: Option<&JoinHandle<()>>) {
        let mut q = self.queue();
        q.flush_asked += 1;
        let want = q.flush_asked;
        self.wake.notify_one();
        while q.flush_done < want && writer.is_some_and(|w| !w.is_finished()) {
            q = self
                .flushed
                .wait_timeout(q, Duration::from_millis(100))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Asks the writer to commit what is queued and end; a prune pass under way stops.
    pub(super) fn close(&self) {
        self.stopping.store(true, Ordering::Relaxed);
        self.queue().closing = true;
        self.wake.notify_one();
    }

    /// The writer thread, until the store is closed. Each turn does one thing, in
    /// this order: commit the queued records once they are due (a second after the
    /// oldest, [`BATCH_MAX`] of them, a flush or the close asks for them); end, when
    /// closing; run one step of the prune pass under way; complete the flushes asked
    /// for; or wait for the next record, flush, close or pass. A pass starts at open
    /// and every [`Tuning::prune_every`] after the end of the previous one.
    pub(super) fn run_writer(&self) {
        let mut pass = Some(Pass::default());
        let mut next_pass = far_future();
        loop {
            let mut q = self.queue();
            let now = Instant::now();
            let flush_waiting = q.flush_asked > q.flush_done;
            let due = q.closing
                || flush_waiting
                || q.records.len() >= BATCH_MAX
                || q.since.is_some_and(|t| now >= t + FLUSH_DELAY);
            if due && !q.records.is_empty() {
                let batch = std::mem::take(&mut q.records);
                q.since = None;
                drop(q);
                self.commit(batch);
                continue;
            }
            if q.closing {
                q.flush_done = q.flush_asked;
                self.flushed.notify_all();
                return;
            }
            if let Some(p) = &mut pass {
                drop(q);
                if self.prune_step(p) {
                    pass = None;
                    next_pass = Instant::now()
                        .checked_add(self.tuning.prune_every)
                        .unwrap_or_else(far_future);
                }
                continue;
            }
            if flush_waiting {
                q.flush_done = q.flush_asked;
                self.flushed.notify_all();
                continue;
            }
            if now >= next_pass {
                drop(q);
                if !self.write_failed.load(Ordering::Relaxed) {
                    pass = Some(Pass::default());
                }
                next_pass = far_future();
                continue;
            }
            let until = q
                .since
                .map_or(next_pass, |t| next_pass.min(t + FLUSH_DELAY));
            let left = until.saturating_duration_since(now);
            drop(
                self.wake
                    .wait_timeout(q, left)
                    .unwrap_or_else(PoisonError::into_inner),
            );
        }
    }

    /// Commits one batch, or counts it dropped after a write error.
    fn commit(&self, batch: HashMap<Key, Record>) {
        let n = batch.len() as u64;
        if self.write_failed.load(Ordering::Relaxed) {
            Counters::add(&self.counters.dropped, n);
            return;
        }
        match guarded(|| self.write(batch)) {
            Ok(()) => Counters::add(&self.counters.written, n),
            Err(e) => {
                Counters::add(&self.counters.dropped, n);
                self.write_failed(&e);
            }
        }
    }

    /// Writes one batch in one durable transaction: each record merged with the
    /// digests already stored for its version, the other versions of its inode removed.
    fn write(&self, batch: HashMap<Key, Record>) -> Result<(), redb::Error> {
        let db = self.db();
        let txn = db.begin_write()?;
        {
            let mut table = txn.open_table(TAGS)?;
            for (key, mut record) in batch {
                let stored = table.get(&key)?.and_then(|v| Record::decode(v.value()));
                if let Some(stored) = stored {
                    record.keep_digests_of(stored);
                }
                let (lo, hi) = inode_range(&key);
                table.retain_in::<&Key, _>(&lo..=&hi, |k, _| k == &key)?;
                table.insert(&key, record.encode().as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// The first write error: logged once; nothing is written after it (redb refuses
    /// writes after a failed commit until the file is reopened).
    pub(super) fn write_failed(&self, e: &redb::Error) {
        if self.write_failed.swap(true, Ordering::Relaxed) {
            return;
        }
        let full = matches!(e, redb::Error::Io(io) if io.raw_os_error() == Some(libc::ENOSPC));
        warn(&format!(
            "rocket-mmap: cannot write the tag store {} ({e}{}); tags are not recorded for \
             the rest of this run, files are hashed as without a store",
            self.path.display(),
            if full { ": the disk is full" } else { "" }
        ));
    }
}

/// An instant no timer reaches.
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600)
}
