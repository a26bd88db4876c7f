//! Loading one version of a file: open without blocking, `stat`, map, hash (CRC-64
//! ETag), and make sure the tag describes exactly one version of the content (a file
//! changed while it was hashed is hashed again; see [`SETTLE`]). With
//! [`CacheConfig::digests_at_load`](crate::CacheConfig::digests_at_load), the integrity
//! digests are computed here too, with the same guarantee. Runs on a blocking thread,
//! never on an async worker.

use std::borrow::Cow;
use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::engine::digest::DIGESTS_AVAILABLE;
use crate::engine::entry::Entry;
use crate::engine::error::CacheError;
use crate::engine::fingerprint::Fingerprint;
use crate::engine::mapping::{MapError, MappedFile, MappingWatch};
use crate::semantics::content_type::content_type_for;
use crate::semantics::digest::DigestAlgorithm;
use crate::semantics::etag::EntityTag;

/// `stat`s `path` and checks that it is a regular file.
pub(crate) fn stat(path: &Path) -> Result<Fingerprint, CacheError> {
    let meta = std::fs::metadata(path).map_err(CacheError::from_io)?;
    check_kind(&meta)?;
    Ok(Fingerprint::of(&meta))
}

fn check_kind(meta: &std::fs::Metadata) -> Result<(), CacheError> {
    if meta.is_dir() {
        Err(CacheError::IsDirectory)
    } else if !meta.is_file() {
        Err(CacheError::NotAFile)
    } else {
        Ok(())
    }
}

/// How often a load is retried when the file is truncated while being hashed.
const LOAD_ATTEMPTS: usize = 3;

/// Opens, maps and hashes a file, and computes the `digests` given. Runs on a blocking
/// thread. With `origin`, the mapping's watch checks at the end of every body that the
/// file was not modified.
pub(crate) fn load_file(
    path: &Path,
    origin: bool,
    digests: &[DigestAlgorithm],
) -> Result<Entry, CacheError> {
    for _ in 0..LOAD_ATTEMPTS {
        let Some(entry) = load_once(path, origin)? else {
            continue;
        };
        // A digest is refused when the file changed while it was hashed (the entry is
        // then poisoned): load again, as for the ETag.
        if DIGESTS_AVAILABLE && !digests.iter().all(|&a| entry.digest_blocking(a).is_some()) {
            continue;
        }
        return Ok(entry);
    }
    Err(CacheError::Unstable)
}

/// One attempt; `Ok(None)` if the file was truncated or modified while being hashed.
fn load_once(path: &Path, origin: bool) -> Result<Option<Entry>, CacheError> {
    let file = open_nonblocking(path)?;
    let meta = file.metadata().map_err(CacheError::from_io)?;
    check_kind(&meta)?;
    let fingerprint = Fingerprint::of(&meta);
    let content_type: Cow<'static, str> = content_type_for(path);
    let canonical = std::fs::canonicalize(path).ok();
    let modified = meta.modified().ok();
    let len = usize::try_from(meta.len())
        .map_err(|_| CacheError::Io(io::Error::other("file too large to map")))?;
    if len == 0 {
        let etag = EntityTag::from_content(&[]);
        return Ok(Some(
            Entry::with_parts(
                Bytes::new(),
                etag,
                modified,
                content_type,
                None,
                Some(fingerprint),
            )
            .with_canonical_path(canonical),
        ));
    }
    let mapped = match MappedFile::map(&file, len) {
        Ok(m) => m,
        Err(MapError::Io(e)) => return Err(CacheError::from_io(e)),
        Err(MapError::Unprotected) => return Err(CacheError::Unprotected),
    };
    let poison = mapped.poison_flag().clone();
    let etag = EntityTag::from_content(mapped.as_ref());
    let content = Bytes::from_owner(mapped);
    // Truncated while hashing (a fault, or a shrink inside the last page that reads as
    // zeros without one), or written to (the kernel updates the mtime before it copies
    // a write's data)? The tag might cover zeros or a mix of versions: `None`, try
    // again. Otherwise the file's fingerprint now.
    let unchanged = || -> Result<Option<Fingerprint>, CacheError> {
        let now = Fingerprint::of(&file.metadata().map_err(CacheError::from_io)?);
        let intact = !poison.load(Ordering::SeqCst) && same_content_version(&now, &fingerprint);
        Ok(intact.then_some(now))
    };
    let Some(still) = unchanged()? else {
        return Ok(None);
    };
    // Changed moments ago, or its ctime moved while hashing? A `write` already under
    // way when the fingerprint was taken updated the times before it began, so nothing
    // above would see it finish; on kernels with coarse timestamps a second write in
    // the same tick leaves the fingerprint unchanged; and a writer may have restored
    // the mtime. Hash again once the change has settled: the tags and the versions
    // must agree. (The ctime alone is not compared: unlinking or renaming the file, or
    // a chmod, moves it without touching the content.)
    let mut settled = still;
    let wait = settle_wait(&still).or((still != fingerprint).then_some(Duration::ZERO));
    if let Some(wait) = wait {
        std::thread::sleep(wait);
        let again = EntityTag::from_content(content.as_ref());
        match unchanged()? {
            Some(after) if again == etag => settled = after,
            _ => return Ok(None),
        }
    }
    let fingerprint = settled;
    let mut watch = MappingWatch::new(content.clone(), poison);
    if origin {
        watch = watch.with_origin(path.to_path_buf(), fingerprint);
    }
    drop(file); // No descriptor is kept once the file is mapped.
    Ok(Some(
        Entry::with_parts(
            content,
            etag,
            modified,
            content_type,
            Some(Arc::new(watch)),
            Some(fingerprint),
        )
        .with_canonical_path(canonical),
    ))
}

/// How long after its last change (ctime) a file is taken to be settled: a load of a
/// file changed more recently than this hashes it twice, the second time once this
/// much time has passed since the change (at most this long a wait, paid once per
/// version of a file by the first request after a change).
pub const SETTLE: Duration = Duration::from_millis(50);

/// Whether two fingerprints of one open file describe the same content version: same
/// inode, size and mtime (the ctime also moves on chmod, link and unlink).
fn same_content_version(a: &Fingerprint, b: &Fingerprint) -> bool {
    (a.dev, a.ino, a.size, a.mtime_ns) == (b.dev, b.ino, b.size, b.mtime_ns)
}

/// How long to wait before the second hash, if the file changed within [`SETTLE`].
fn settle_wait(fingerprint: &Fingerprint) -> Option<Duration> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128);
    let settled_at = fingerprint.ctime_ns + SETTLE.as_nanos() as i128;
    (fingerprint.ctime_ns != 0 && settled_at > now)
        .then(|| Duration::from_nanos((settled_at - now).min(SETTLE.as_nanos() as i128) as u64))
}

/// Opens for reading without blocking on FIFOs (which `stat` may have missed if the
/// path was replaced in between).
fn open_nonblocking(path: &Path) -> Result<File, CacheError> {
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
    }
    opts.open(path).map_err(CacheError::from_io)
}
