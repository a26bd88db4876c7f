//! Opening the store: its directory, the exclusive lock, redb's integrity check, the
//! schema version, and a corrupt or foreign file moved aside and replaced.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use redb::{
    Builder, Database, DatabaseError, ReadableDatabase, ReadableTable, TableDefinition, TableHandle,
};

use super::record::{META, SCHEMA_KEY, SCHEMA_VERSION, TAGS};
use super::{TagStoreError, CACHE_BYTES};

/// An open, checked store, and what was moved aside to open it.
pub(super) struct Opened {
    pub(super) db: Database,
    /// Where a corrupt or foreign file went (empty if it was deleted), and why.
    pub(super) moved_aside: Option<(PathBuf, String)>,
}

/// Opens (or creates) the store at `path`, replacing a file that is not a readable
/// store of this schema or an older one.
pub(super) fn open(path: &Path) -> Result<Opened, TagStoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| TagStoreError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    }
    match attempt(path) {
        Ok(db) => Ok(Opened {
            db,
            moved_aside: None,
        }),
        Err((Failure::Corrupt(reason), guard)) => {
            // Still holding the lock, so no other opener sees the file half-replaced.
            let aside = aside_path(path);
            let moved = match std::fs::rename(path, &aside) {
                Ok(()) => aside,
                Err(_) => {
                    std::fs::remove_file(path).map_err(|e| TagStoreError::Corrupt {
                        path: path.to_path_buf(),
                        reason: format!("{reason}; it could not be moved aside or removed: {e}"),
                    })?;
                    PathBuf::new()
                }
            };
            drop(guard);
            let db = attempt(path).map_err(|(f, _)| f.into_error(path))?;
            Ok(Opened {
                db,
                moved_aside: Some((moved, reason)),
            })
        }
        Err((f, _)) => Err(f.into_error(path)),
    }
}

/// Why one attempt to open failed.
#[derive(Debug)]
enum Failure {
    Locked,
    LockUnsupported(io::Error),
    Io(io::Error),
    Corrupt(String),
    Newer(u64),
}

impl Failure {
    fn into_error(self, path: &Path) -> TagStoreError {
        let path = path.to_path_buf();
        match self {
            Failure::Locked => TagStoreError::Locked { path },
            Failure::LockUnsupported(source) => TagStoreError::LockUnsupported { path, source },
            Failure::Io(source) => TagStoreError::Io { path, source },
            Failure::Corrupt(reason) => TagStoreError::Corrupt { path, reason },
            Failure::Newer(found) => TagStoreError::NewerVersion {
                path,
                found,
                supported: SCHEMA_VERSION,
            },
        }
    }

    fn from_redb(e: redb::Error) -> Failure {
        match e {
            redb::Error::DatabaseAlreadyOpen => Failure::Locked,
            // redb reports a file without its magic number as InvalidData, and a file
            // cut short as an early end.
            redb::Error::Io(io)
                if matches!(
                    io.kind(),
                    io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
                ) =>
            {
                Failure::Corrupt(format!("not a redb file, or cut short ({io})"))
            }
            redb::Error::Io(io) => Failure::Io(io),
            other => Failure::Corrupt(other.to_string()),
        }
    }
}

impl From<DatabaseError> for Failure {
    fn from(e: DatabaseError) -> Failure {
        Failure::from_redb(e.into())
    }
}

/// The exclusive lock's outcome. A file system without `flock` is refused rather
/// than opened unlocked (redb would open it unlocked): two writers of one redb file
/// corrupt it, and the store is an optimisation, never worth that risk.
fn lock_failure(e: TryLockError) -> Failure {
    match e {
        TryLockError::WouldBlock => Failure::Locked,
        TryLockError::Error(e) if e.kind() == io::ErrorKind::Unsupported => {
            Failure::LockUnsupported(e)
        }
        TryLockError::Error(e) => Failure::Io(e),
    }
}

/// One attempt to open (or create) the store. On failure, the file still locked by
/// this attempt, if it got that far (so that a corrupt file is replaced under the lock).
fn attempt(path: &Path) -> Result<Database, (Failure, Option<File>)> {
    if let Some(found) = newer_schema(path) {
        return Err((Failure::Newer(found), None));
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| (Failure::Io(e), None))?;
    file.try_lock().map_err(|e| (lock_failure(e), None))?;
    // The same open file description: its lock lasts while either descriptor is open.
    let guard = file.try_clone().map_err(|e| (Failure::Io(e), None))?;
    let opened = catch_unwind(AssertUnwindSafe(|| -> Result<Database, Failure> {
        let mut db = Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create_file(file)?;
        db.check_integrity()?;
        check_schema(&db)?;
        Ok(db)
    }))
    .unwrap_or_else(|_| Err(Failure::Corrupt("the store reader panicked on it".into())));
    opened.map_err(|f| (f, Some(guard)))
}

/// The schema version of an existing store, if it is higher than this build's. Read
/// through a read-only open, before the store is opened for writing (which writes
/// redb's header), so that a newer build's store is refused without a byte written.
/// Anything else (no file, locked, unreadable) is left to the open that follows.
fn newer_schema(path: &Path) -> Option<u64> {
    if std::fs::metadata(path).map_or(true, |m| m.len() == 0) {
        return None;
    }
    catch_unwind(|| {
        let db = Builder::new()
            .set_cache_size(1 << 20)
            .open_read_only(path)
            .ok()?;
        let txn = db.begin_read().ok()?;
        let meta = txn.open_table(META).ok()?;
        let found = meta.get(SCHEMA_KEY).ok()??.value();
        (found > SCHEMA_VERSION).then_some(found)
    })
    .ok()
    .flatten()
}

/// Checks the schema version, stamping a new store and emptying an older one.
fn check_schema(db: &Database) -> Result<(), Failure> {
    let e = |e: redb::Error| Failure::from_redb(e);
    let txn = db.begin_write().map_err(|x| e(x.into()))?;
    let names: Vec<String> = txn
        .list_tables()
        .map_err(|x| e(x.into()))?
        .map(|t| t.name().to_owned())
        .collect();
    let has_meta = names.iter().any(|n| n == META.name());
    if !has_meta && !names.is_empty() {
        return Err(Failure::Corrupt(format!(
            "a redb file but not a rocket-mmap tag store (tables {names:?})"
        )));
    }
    {
        let mut meta = txn.open_table(META).map_err(|x| e(x.into()))?;
        let found = meta
            .get(SCHEMA_KEY)
            .map_err(|x| e(x.into()))?
            .map(|v| v.value());
        match found {
            Some(v) if v > SCHEMA_VERSION => {
                drop(meta);
                let _ = txn.abort();
                return Err(Failure::Newer(v));
            }
            Some(SCHEMA_VERSION) => {}
            None if has_meta => {
                return Err(Failure::Corrupt("no schema version in the store".into()));
            }
            older => {
                if older.is_some() {
                    for name in names.iter().filter(|n| *n != META.name()) {
                        let old: TableDefinition<&[u8], &[u8]> = TableDefinition::new(name);
                        txn.delete_table(old).map_err(|x| e(x.into()))?;
                    }
                }
                meta.insert(SCHEMA_KEY, SCHEMA_VERSION)
                    .map_err(|x| e(x.into()))?;
            }
        }
    }
    txn.open_table(TAGS).map_err(|x| e(x.into()))?;
    txn.commit().map_err(|x| e(x.into()))?;
    Ok(())
}

/// Where a corrupt store is moved: `PATH.corrupt-<unix seconds>`.
fn aside_path(path: &Path) -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".corrupt-{secs}"));
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file system without `flock` refuses the store with its own error; a held
    /// lock is `Locked`, and any other lock error an I/O error.
    #[test]
    fn a_file_system_without_locks_is_refused() {
        let unsupported = io::Error::from(io::ErrorKind::Unsupported);
        let f = lock_failure(TryLockError::Error(unsupported));
        let e = f.into_error(Path::new("/nfs/tags.redb"));
        assert!(matches!(e, TagStoreError::LockUnsupported { .. }), "{e:?}");
        assert!(e.to_string().contains("does not support file locks"), "{e}");
        assert!(matches!(
            lock_failure(TryLockError::WouldBlock),
            Failure::Locked
        ));
        let nolck = io::Error::from_raw_os_error(libc::ENOLCK);
        assert!(matches!(
            lock_failure(TryLockError::Error(nolck)),
            Failure::Io(_)
        ));
    }
}
