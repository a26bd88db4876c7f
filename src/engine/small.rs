//! Small files, loaded on the async worker when that cannot block: read into memory
//! with one `pread`, instead of mapped on the blocking pool.
//!
//! A mirror of many small files misses the cache on most requests. Mapping a 30 KiB
//! file costs four system calls and a TLB flush when it is unmapped, and the load's
//! hop to the blocking pool and back costs two context switches: several times what
//! a hit costs. A file of at most [`SMALL_MAX`] bytes whose path and pages are in
//! memory is loaded here instead, on the calling thread, in six system calls that
//! cannot wait for the disk:
//!
//! 1. `openat2` with `RESOLVE_CACHED` (Linux 5.12): the path is resolved from the
//!    dentry cache alone, or the call fails with `EAGAIN` at once. With
//!    `RESOLVE_NO_SYMLINKS` too, a path that opens names the file itself, so it is its
//!    own canonical path (no `realpath`).
//! 2. `fstat` on the descriptor: the version's [`Fingerprint`].
//! 3. the write barrier (`open::wait_for_writes`, `lseek(SEEK_DATA)`).
//! 4. `preadv2` with `RWF_NOWAIT`: the whole content from the page cache, or `EAGAIN`
//!    (or a short read) when a page is not in memory.
//! 5. `fstat` again: the bytes read belong to the version of step 2 only if nothing
//!    moved. The content is then hashed from the buffer: the tag describes exactly
//!    the bytes every response sends.
//! 6. `close`.
//!
//! Anything else gives the load to the blocking pool ([`Quick::Blocking`], with the
//! reason): a path not in the dentry cache, a symbolic link on the way, pages not in
//! memory, a file larger than [`SMALL_MAX`], a file changed less than
//! [`SETTLE`](crate::cache::SETTLE) ago (whose tag needs the settled second hash),
//! or a kernel without `openat2` or `RWF_NOWAIT`. There, the same small file is read
//! the same way after a blocking `open`, and read twice, [`SETTLE`](crate::cache::SETTLE)
//! apart, if it changed less than that ago: the two readings must agree.
//!
//! An entry read into memory holds a copy of its bytes: no mapping, no descriptor,
//! nothing a later write to the file can change. Each response sends bytes of one
//! version, the one its `ETag` and `Last-Modified` name; a changed file is noticed
//! by the cache's revalidation as for mapped entries. Such entries are bounded by the
//! memory they hold ([`CacheConfig::max_memory`](crate::engine::cache::CacheConfig::max_memory)),
//! mapped ones by their number of mappings and mapped bytes.

use std::borrow::Cow;
use std::fs::File;
use std::io;
use std::path::Path;

use bytes::Bytes;

use crate::engine::entry::Entry;
use crate::engine::error::CacheError;
use crate::engine::fingerprint::Fingerprint;
#[cfg(target_os = "linux")]
use crate::engine::open::open_without_links;
use crate::engine::open::{check_kind, is_plain_absolute, wait_for_writes};
use crate::engine::tag::{changed_within_settle, HashLimit, TagCell, HASH_AT_LOAD_MAX};
use crate::semantics::content_type::content_type_for;
use crate::semantics::etag::EntityTag;

/// The largest file read into memory rather than mapped: 64 KiB, the size up to which
/// a file is hashed while it is loaded
/// ([`HASH_AT_LOAD_MAX`](crate::engine::tag::HASH_AT_LOAD_MAX)).
pub(crate) const SMALL_MAX: u64 = HASH_AT_LOAD_MAX;

/// What [`load_now`] did.
pub(crate) enum Quick {
    /// Loaded without blocking.
    Loaded(Entry),
    /// Not done here: it might have blocked, or the file is not a small one. The load
    /// goes to the blocking pool, with the file's fingerprint if it was taken.
    Blocking(Why, Option<Fingerprint>),
}

/// Why a load went to the blocking pool (the counters say how often, per reason).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Why {
    /// The path's dentries were not all in memory, or the kernel cannot say.
    ColdPath,
    /// A symbolic link on the way (its target is resolved on the blocking pool).
    Link,
    /// A page of the content was not in memory.
    ColdData,
    /// Larger than [`SMALL_MAX`], changed less than `SETTLE` ago, changed while read,
    /// or digests are computed at load: the ordinary load.
    NotSmall,
}

/// Tries to load the file at `path` on the calling thread without blocking (see the
/// module docs); `after_open` runs once the file is open, before its fingerprint is
/// taken (the watcher's directories are covered there). `Err` only for answers the
/// file system gave at once (no such file, a directory, not a regular file,
/// permission denied).
#[cfg(target_os = "linux")]
pub(crate) fn load_now(
    path: &Path,
    limit: &HashLimit,
    after_open: impl FnOnce(),
) -> Result<Quick, CacheError> {
    use rustix::io::Errno;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Set once `openat2` or `RWF_NOWAIT` turned out to be missing: every load then
    /// goes to the blocking pool without asking again.
    static UNSUPPORTED: AtomicBool = AtomicBool::new(false);

    if UNSUPPORTED.load(Ordering::Relaxed) {
        return Ok(Quick::Blocking(Why::ColdPath, None));
    }
    if !is_plain_absolute(path) {
        // Its canonical form is not itself: resolved on the blocking pool.
        return Ok(Quick::Blocking(Why::Link, None));
    }
    let fd = match open_without_links(path, true) {
        Ok(fd) => fd,
        Err(Errno::AGAIN) => return Ok(Quick::Blocking(Why::ColdPath, None)),
        Err(Errno::LOOP) => return Ok(Quick::Blocking(Why::Link, None)),
        Err(Errno::NOSYS | Errno::INVAL | Errno::PERM) => {
            // No `openat2`, no `RESOLVE_CACHED` (before 5.12), or a seccomp filter
            // that refuses it.
            UNSUPPORTED.store(true, Ordering::Relaxed);
            return Ok(Quick::Blocking(Why::ColdPath, None));
        }
        Err(e) => return Err(CacheError::from_io(e.into())),
    };
    let file = File::from(fd);
    after_open();
    let meta = file.metadata().map_err(CacheError::from_io)?;
    check_kind(&meta)?;
    let fingerprint = Fingerprint::of(&meta);
    if fingerprint.size > SMALL_MAX || changed_within_settle(&fingerprint) {
        return Ok(Quick::Blocking(Why::NotSmall, Some(fingerprint)));
    }
    wait_for_writes(&file);
    let mut content = vec![0u8; fingerprint.size as usize];
    let mut read = 0;
    while read < content.len() {
        let slice = &mut [io::IoSliceMut::new(&mut content[read..])];
        match rustix::io::preadv2(
            &file,
            slice,
            read as u64,
            rustix::io::ReadWriteFlags::NOWAIT,
        ) {
            Ok(0) => return Ok(Quick::Blocking(Why::NotSmall, None)), // Shrunk: changed.
            Ok(n) => read += n,
            Err(Errno::AGAIN) => return Ok(Quick::Blocking(Why::ColdData, Some(fingerprint))),
            Err(Errno::INTR) => {}
            Err(Errno::OPNOTSUPP | Errno::NOSYS | Errno::INVAL) => {
                UNSUPPORTED.store(true, Ordering::Relaxed);
                return Ok(Quick::Blocking(Why::ColdData, Some(fingerprint)));
            }
            Err(e) => return Err(CacheError::from_io(e.into())),
        }
    }
    let after = Fingerprint::of(&file.metadata().map_err(CacheError::from_io)?);
    if after != fingerprint {
        return Ok(Quick::Blocking(Why::NotSmall, Some(after)));
    }
    drop(file);
    // Opened without following a link: the path is its own canonical form.
    let canonical = Some(path.to_path_buf());
    Ok(Quick::Loaded(in_memory(
        path,
        canonical,
        content,
        fingerprint,
        &meta,
        limit,
    )))
}

/// Elsewhere every load runs on the blocking pool.
#[cfg(not(target_os = "linux"))]
pub(crate) fn load_now(
    _path: &Path,
    _limit: &HashLimit,
    _after_open: impl FnOnce(),
) -> Result<Quick, CacheError> {
    Ok(Quick::Blocking(Why::ColdPath, None))
}

/// Reads a small file whose descriptor `file` is open (on the blocking pool: the
/// reads may wait for the disk), checking as [`load_now`] does that the bytes are
/// those of the version `fingerprint`, and, for a file changed less than
/// [`SETTLE`](crate::cache::SETTLE) ago, reading it again once the change has settled;
/// `None` if the file changed while it was read.
pub(crate) fn read_small(
    path: &Path,
    file: &File,
    meta: &std::fs::Metadata,
    fingerprint: Fingerprint,
    canonical: Option<std::path::PathBuf>,
    limit: &HashLimit,
) -> Result<Option<Entry>, CacheError> {
    let Some(content) = read_version(file, &fingerprint)? else {
        return Ok(None);
    };
    // Changed moments ago: a writer may still be writing this version within the same
    // clock tick, unseen by `stat`. Read it again once the change has settled; the two
    // readings must agree (as the two hashes of a mapped file's tag must).
    if changed_within_settle(&fingerprint) {
        std::thread::sleep(crate::engine::tag::SETTLE);
        if read_version(file, &fingerprint)?.as_ref() != Some(&content) {
            return Ok(None);
        }
    }
    Ok(Some(in_memory(
        path,
        canonical,
        content,
        fingerprint,
        meta,
        limit,
    )))
}

/// The whole content of `file`, if it is still the version `fingerprint` after it was
/// read (same size, no write moved its times).
#[cfg(unix)]
fn read_version(file: &File, fingerprint: &Fingerprint) -> Result<Option<Vec<u8>>, CacheError> {
    use std::os::unix::fs::FileExt;
    let mut content = vec![0u8; fingerprint.size as usize];
    // One byte more than the size: a file that grew is a changed file.
    let mut past_end = [0u8; 1];
    let read = file
        .read_exact_at(&mut content, 0)
        .and_then(|()| file.read_at(&mut past_end, fingerprint.size));
    let grown = match read {
        Ok(n) => n > 0,
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(CacheError::from_io(e)),
    };
    let after = Fingerprint::of(&file.metadata().map_err(CacheError::from_io)?);
    Ok((!grown && after == *fingerprint).then_some(content))
}

/// Elsewhere: from the start, through the descriptor's offset.
#[cfg(not(unix))]
fn read_version(file: &File, fingerprint: &Fingerprint) -> Result<Option<Vec<u8>>, CacheError> {
    use std::io::{Read, Seek};
    let mut file = file;
    file.seek(io::SeekFrom::Start(0))
        .map_err(CacheError::from_io)?;
    let mut content = Vec::with_capacity(fingerprint.size as usize + 1);
    file.take(fingerprint.size + 1)
        .read_to_end(&mut content)
        .map_err(CacheError::from_io)?;
    let after = Fingerprint::of(&file.metadata().map_err(CacheError::from_io)?);
    Ok((content.len() as u64 == fingerprint.size && after == *fingerprint).then_some(content))
}

/// The entry of a small file's `content`, read from the version `fingerprint` (whose
/// metadata is `meta`) of the file at `path`, whose resolved form is `canonical`.
fn in_memory(
    path: &Path,
    canonical: Option<std::path::PathBuf>,
    content: Vec<u8>,
    fingerprint: Fingerprint,
    meta: &std::fs::Metadata,
    limit: &HashLimit,
) -> Entry {
    let etag = EntityTag::from_content(&content);
    let content_type: Cow<'static, str> = content_type_for(path);
    Entry::with_parts(
        Bytes::from(content),
        TagCell::ready(etag).with_limit(limit),
        meta.modified().ok(),
        content_type,
        None,
        Some(fingerprint),
    )
    .with_canonical_path(canonical)
}

#[cfg(test)]
mod tests;
