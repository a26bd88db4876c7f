//! Loading one version of a file on a blocking thread: open, `fstat`, and either read
//! (a file of at most 64 KiB, see `engine::small`, which also loads such files on the
//! async worker when nothing can block) or map. Never on an async worker.
//!
//! A mapped file's load reads no content: the entry is served at once, and its strong
//! ETag (the CRC-64 of the whole content) is computed afterwards, in the background
//! (see `engine::tag`, which also holds the checks that make the tag describe exactly
//! one version). Two loads hash before they return, on the loading thread, with the
//! same checks (a file changed while it was hashed is loaded again; see
//! [`SETTLE`](crate::cache::SETTLE)):
//!
//! * start-up warming and other synchronous callers ([`Hash::AtLoad`], through
//!   [`Cache::get_blocking`](crate::cache::Cache::get_blocking), which the binary's `--warm`
//!   uses);
//! * a cache with [`CacheConfig::digests_at_load`](crate::cache::CacheConfig::digests_at_load),
//!   whose digests are computed here too, with the same guarantee.
//!
//! A small file read into memory is hashed from the bytes read, always at load.

use std::borrow::Cow;
use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use crate::engine::digest::{ReprDigest, DIGESTS_AVAILABLE};
use crate::engine::entry::Entry;
use crate::engine::error::CacheError;
use crate::engine::fingerprint::Fingerprint;
use crate::engine::mapping::{MapError, MappedFile, MappingWatch};
use crate::engine::small::read_small;
use crate::engine::tag::{hash_at_load, hash_one_version, HashLimit, PendingTag, TagCell};
use crate::semantics::content_type::content_type_for;
use crate::semantics::digest::DigestAlgorithm;
use crate::semantics::etag::EntityTag;

/// `stat`s `path` and checks that it is a regular file.
pub(crate) fn stat(path: &Path) -> Result<Fingerprint, CacheError> {
    let meta = std::fs::metadata(path).map_err(CacheError::from_io)?;
    check_kind(&meta)?;
    Ok(Fingerprint::of(&meta))
}

pub(crate) fn check_kind(meta: &std::fs::Metadata) -> Result<(), CacheError> {
    if meta.is_dir() {
        Err(CacheError::IsDirectory)
    } else if !meta.is_file() {
        Err(CacheError::NotAFile)
    } else {
        Ok(())
    }
}

/// How often a load that hashes is retried when the file changes while being hashed.
const LOAD_ATTEMPTS: usize = 3;

/// Whether a load hashes the file before it returns (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hash {
    /// Hash now, on the calling (blocking) thread: start-up warming
    /// ([`Cache::get_blocking`](crate::cache::Cache::get_blocking)) and
    /// [`CacheConfig::digests_at_load`](crate::cache::CacheConfig::digests_at_load).
    AtLoad,
    /// Leave the tag of a mapped file pending, for the background (a small file read
    /// into memory is hashed from its bytes all the same).
    Later,
}

/// Opens and maps a file, and, as `hash` says, hashes it and computes the `digests`
/// given. Runs on a blocking thread. With `origin`, the mapping's watch checks at the
/// end of every body that the file was not modified. `limit` bounds the hashes of the
/// tags left pending.
pub(crate) fn load_file(
    path: &Path,
    origin: bool,
    hash: Hash,
    digests: &[DigestAlgorithm],
    limit: &HashLimit,
) -> Result<Entry, CacheError> {
    for _ in 0..LOAD_ATTEMPTS {
        let Some(entry) = load_once(path, origin, hash, limit)? else {
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
fn load_once(
    path: &Path,
    origin: bool,
    hash: Hash,
    limit: &HashLimit,
) -> Result<Option<Entry>, CacheError> {
    let (file, canonical) = open_resolved(path)?;
    let meta = file.metadata().map_err(CacheError::from_io)?;
    check_kind(&meta)?;
    let fingerprint = Fingerprint::of(&meta);
    // A write under way already moved the times this fingerprint holds: wait until its
    // data is in the page cache too, before anything is mapped, served or hashed
    // under this fingerprint (see `wait_for_writes`).
    wait_for_writes(&file);
    // A small file is read into memory (`engine::small`).
    if hash_at_load(&fingerprint) {
        return read_small(path, &file, &meta, fingerprint, canonical, limit);
    }
    let content_type: Cow<'static, str> = content_type_for(path);
    let modified = meta.modified().ok();
    let len = usize::try_from(meta.len())
        .map_err(|_| CacheError::Io(io::Error::other("file too large to map")))?;
    if len == 0 {
        let tag = TagCell::ready(EntityTag::from_content(&[]));
        return Ok(Some(
            Entry::with_parts(
                Bytes::new(),
                tag,
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
    let content = Bytes::from_owner(mapped);
    let mut hashed = None;
    let mut fingerprint = fingerprint;
    // A version the tag store knows needs no hash: its tag and digests are what they
    // were when recorded (see `engine::tag::Remember` for why that holds).
    let recalled = limit.memory().and_then(|m| m.recall(&fingerprint));
    if let Some(r) = &recalled {
        hashed = Some(r.etag.clone());
    } else if hash == Hash::AtLoad {
        let Some((etag, settled)) =
            hash_one_version(&file, &fingerprint, &content, &poison, &|| {})
                .map_err(CacheError::from_io)?
        else {
            return Ok(None);
        };
        if let Some(memory) = limit.memory() {
            memory.remember(&settled, path, &etag, &[]);
        }
        hashed = Some(etag);
        fingerprint = settled;
    }
    let mut watch = last_page_of(&file, len).map_or_else(
        || MappingWatch::new(content.clone(), poison.clone()),
        |tail| MappingWatch::with_last_page(content.clone(), poison.clone(), &tail),
    );
    if origin {
        watch = watch.with_origin(path.to_path_buf(), fingerprint);
    }
    let watch = Arc::new(watch);
    let tag = match hashed {
        Some(etag) => {
            drop(file); // No descriptor is kept once the file is mapped and hashed.
            TagCell::ready(etag).with_limit(limit)
        }
        // The tag's hash keeps the file open until it ran (see `engine::tag`).
        None => TagCell::pending(PendingTag {
            file,
            fingerprint,
            content: content.clone(),
            poison,
            watch: watch.clone(),
            limit: limit.clone(),
            path: path.to_path_buf(),
        }),
    };
    let entry = Entry::with_parts(
        content,
        tag,
        modified,
        content_type,
        Some(watch),
        Some(fingerprint),
    )
    .with_canonical_path(canonical);
    if let Some(memory) = limit.memory() {
        if let Some(r) = recalled {
            entry.restore_digests(
                r.digests
                    .iter()
                    .filter_map(|(a, bytes)| ReprDigest::from_stored(*a, bytes)),
            );
        }
        // Digests computed later are recorded too, under the tag (known by then: a
        // digest is only sent beside it).
        let (memory, path, tag) = (Arc::clone(memory), path.to_path_buf(), entry.tag_cell());
        entry.on_digest(move |d| {
            if let Some(t) = tag.get() {
                memory.remember(&fingerprint, &path, &t.etag, &[(d.algorithm(), d.bytes())]);
            }
        });
    }
    Ok(Some(entry))
}

/// The file's last page, read with `pread` rather than through the mapping (see
/// `MappingWatch::with_last_page`); `None` if it reads short (the file changed: the
/// mapping is then read instead, under the SIGBUS guard, and the tag's checks see the
/// change).
fn last_page_of(file: &File, len: usize) -> Option<Vec<u8>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        let from = MappingWatch::last_page(len);
        let mut tail = vec![0u8; len - from];
        file.read_exact_at(&mut tail, from as u64).ok()?;
        Some(tail)
    }
    #[cfg(not(unix))]
    {
        let _ = (file, len);
        None
    }
}

/// Opens `path` for reading, with its canonical path: the path itself when it
/// resolves without following a symbolic link (`openat2` with `RESOLVE_NO_SYMLINKS`,
/// Linux 5.6), otherwise what `realpath` makes of it.
fn open_resolved(path: &Path) -> Result<(File, Option<std::path::PathBuf>), CacheError> {
    #[cfg(target_os = "linux")]
    if crate::engine::small::is_plain_absolute(path) {
        use rustix::fs::{Mode, OFlags, ResolveFlags};
        let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
        let resolve = ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        match rustix::fs::openat2(rustix::fs::CWD, path, flags, Mode::empty(), resolve) {
            Ok(fd) => return Ok((File::from(fd), Some(path.to_path_buf()))),
            // A link on the way (or no `openat2`): the ordinary open below.
            Err(
                rustix::io::Errno::LOOP
                | rustix::io::Errno::NOSYS
                | rustix::io::Errno::INVAL
                | rustix::io::Errno::PERM
                | rustix::io::Errno::AGAIN,
            ) => {}
            Err(e) => return Err(CacheError::from_io(e.into())),
        }
    }
    let file = open_nonblocking(path)?;
    Ok((file, std::fs::canonicalize(path).ok()))
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

/// Waits until no `write` to `file` is under way (as far as the file system lets us
/// know), so that the fingerprint taken just before this call describes bytes already
/// in the page cache.
///
/// A `write(2)` updates the file's mtime and ctime **before** it copies its data. A
/// `fstat` taken while a write is under way therefore already shows the new times, and
/// nothing later shows that the copy ended: a load (and the background hash of its
/// tag, and every body served under that fingerprint) would read the old bytes or a
/// mix under a fingerprint that names the new version. The settle rule
/// ([`SETTLE`](crate::cache::SETTLE): hash again 50 ms after a recent change, the two must
/// agree) closes that window only for writers that are not stalled longer than that
/// between the two steps, and the soak (docs/performance.md, "Soak") once saw a writer that was.
///
/// `lseek(SEEK_DATA)` takes the inode lock (shared) on ext4, btrfs and tmpfs, and
/// buffered writes hold it (exclusive) from the time update to the end of the copy, so
/// the call returns only once every write that had begun has copied its data. A write
/// that begins after the `fstat` moves the times after it, which the fingerprint
/// comparisons see (on kernels with multigrain timestamps, 6.13 and later, even in the
/// same clock tick, because the `fstat` asked for them; before that, the settle rule
/// covers same-tick writes). On file systems whose `SEEK_DATA` takes no lock (XFS, for
/// one), the call does nothing more than a seek, and the settle rule is the guard, as
/// before. Errors (`ENXIO` past the end, `EINVAL` where `SEEK_DATA` is not supported)
/// are ignored: they mean the same thing.
#[cfg(target_os = "linux")]
pub(crate) fn wait_for_writes(file: &File) {
    // It moves only the descriptor's own offset, which no reader of the crate uses
    // (reads go through the mapping, or `pread` at explicit offsets).
    let _ = rustix::fs::seek(file, rustix::fs::SeekFrom::Data(0));
}

/// Elsewhere the settle rule is the only guard against a write under way.
#[cfg(not(target_os = "linux"))]
pub(crate) fn wait_for_writes(_file: &File) {}

#[cfg(all(test, target_os = "linux"))]
mod write_barrier_tests {
    use super::*;
    use std::os::unix::fs::FileExt;
    use std::time::{Duration, Instant};

    /// A `fstat` taken while one large `pwrite` is under way already shows the new
    /// mtime, though the copy has not reached the end of the file; after
    /// [`wait_for_writes`], the whole write is in the page cache. (The race is real: the
    /// test also checks it saw the old last byte before the barrier at least once.)
    #[test]
    fn the_barrier_waits_for_a_write_under_way() {
        const LEN: usize = 128 << 20;
        let dir = std::env::temp_dir().join(format!("rocket-mmap-barrier-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        let mut raced = 0;
        for attempt in 0..8u8 {
            let old = vec![attempt; LEN];
            let new = vec![attempt.wrapping_add(100); LEN];
            std::fs::write(&path, &old).unwrap();
            let reader = File::open(&path).unwrap();
            std::thread::sleep(Duration::from_millis(20));
            let before = reader.metadata().unwrap().modified().unwrap();
            let writer = std::thread::spawn({
                let path = path.clone();
                move || {
                    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
                    f.write_all_at(&new, 0).unwrap();
                }
            });
            let deadline = Instant::now() + Duration::from_secs(10);
            while reader.metadata().unwrap().modified().unwrap() == before {
                assert!(Instant::now() < deadline, "the write never moved the mtime");
                std::hint::spin_loop();
            }
            let mut last = [0u8];
            reader.read_exact_at(&mut last, LEN as u64 - 1).unwrap();
            if last[0] == attempt {
                raced += 1;
            }
            wait_for_writes(&reader);
            reader.read_exact_at(&mut last, LEN as u64 - 1).unwrap();
            assert_eq!(
                last[0],
                attempt.wrapping_add(100),
                "attempt {attempt}: the barrier returned before the write under way ended"
            );
            writer.join().unwrap();
        }
        std::fs::remove_dir_all(&dir).ok();
        assert!(
            raced > 0,
            "no attempt caught a write under way: the test proved nothing"
        );
    }
}
