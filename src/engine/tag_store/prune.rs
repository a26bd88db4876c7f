//! What keeps the file bounded once recording has: prune passes that remove the
//! entries of files gone or changed, and the compaction after a pass that left most
//! of the file free. Both run on the writer thread (see [`Inner::run_writer`]).

use std::io;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::PoisonError;

use redb::ReadableDatabase;

use super::record::{encode_key, Key, Record, TAGS};
use super::writer::{Inner, Pass};
use super::{guarded, Counters};
use crate::engine::fingerprint::Fingerprint;

impl Inner {
    /// One step of `pass`; whether the pass is over. A step reads the next
    /// [`Tuning::prune_batch`](super::Tuning::prune_batch) entries in a read
    /// transaction, checks their files with no transaction open, and removes the stale
    /// ones in a write transaction of its own (none if all are current), so that
    /// queued records wait for at most one step. The store closing ends the pass,
    /// the entries not checked yet kept; an error ends it too, as a write error.
    /// Compacts the file after a pass that checked every entry, if worth it.
    pub(super) fn prune_step(&self, pass: &mut Pass) -> bool {
        if self.write_failed.load(Ordering::Relaxed) {
            return true;
        }
        match guarded(|| self.prune_some(pass)) {
            Ok(false) => false,
            Ok(true) => {
                if !self.stopping.load(Ordering::Relaxed) {
                    if let Err(e) = self.compact_if_worth_it() {
                        self.write_failed(&e);
                    }
                }
                true
            }
            Err(e) => {
                self.write_failed(&e);
                true
            }
        }
    }

    fn prune_some(&self, pass: &mut Pass) -> Result<bool, redb::Error> {
        let batch = self.tuning.prune_batch.max(1);
        let entries: Vec<(Key, Option<PathBuf>)> = {
            let db = self.db();
            let txn = db.begin_read()?;
            let table = txn.open_table(TAGS)?;
            let range = match &pass.after {
                Some(after) => table.range::<&Key>((Bound::Excluded(after), Bound::Unbounded))?,
                None => table.range::<&Key>(..)?,
            };
            range
                .take(batch)
                .map(|e| {
                    let (k, v) = e?;
                    Ok((*k.value(), Record::decode(v.value()).map(|r| r.path)))
                })
                .collect::<Result<_, redb::StorageError>>()?
        };
        let Some((last, _)) = entries.last() else {
            return Ok(true);
        };
        pass.after = Some(*last);
        let mut stale = Vec::new();
        for (key, path) in &entries {
            if self.stopping.load(Ordering::Relaxed) {
                return Ok(true);
            }
            // An entry that does not decode is stale too.
            if !path.as_deref().is_some_and(|p| still_current(key, p)) {
                stale.push(*key);
            }
        }
        if !stale.is_empty() {
            let db = self.db();
            let txn = db.begin_write()?;
            {
                let mut table = txn.open_table(TAGS)?;
                for key in &stale {
                    table.remove(key)?;
                }
            }
            txn.commit()?;
            Counters::add(&self.counters.pruned, stale.len() as u64);
        }
        Ok(entries.len() < batch)
    }

    /// Compacts the file if at least half of it, and at least
    /// [`Tuning::compact_min_free`](super::Tuning::compact_min_free) bytes, are free
    /// pages. Lookups made meanwhile answer nothing (see `Lookup::Compacting`).
    fn compact_if_worth_it(&self) -> Result<(), redb::Error> {
        let free = self.free_bytes()?;
        if free < self.tuning.compact_min_free || free < self.file_len()? / 2 {
            return Ok(());
        }
        let mut db = self.db.write().unwrap_or_else(PoisonError::into_inner);
        guarded(|| Ok(db.compact()?))?;
        Counters::add(&self.counters.compactions, 1);
        Ok(())
    }

    /// The bytes of the file that hold no page in use.
    fn free_bytes(&self) -> Result<u64, redb::Error> {
        let used = {
            let db = self.db();
            let txn = db.begin_write()?;
            let stats = txn.stats()?;
            txn.abort()?;
            stats.allocated_pages() * stats.page_size() as u64
        };
        Ok(self.file_len()?.saturating_sub(used))
    }

    fn file_len(&self) -> Result<u64, redb::Error> {
        Ok(std::fs::metadata(&self.path)?.len())
    }
}

/// Whether `path` still holds the version `key` describes (an error other than "no
/// such file" keeps the entry: a permission problem does not prove a change).
fn still_current(key: &Key, path: &Path) -> bool {
    match std::fs::metadata(path) {
        Ok(meta) => encode_key(&Fingerprint::of(&meta)) == *key,
        Err(e) => !matches!(
            e.kind(),
            io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
        ),
    }
}
