//! Opening one version of a file: the checks every load makes, whether it reads,
//! maps, or runs on the async worker (`engine::small`) or the blocking pool
//! (`engine::load`): a regular file, its canonical path without `realpath` when no
//! link is on the way, and the write barrier before its fingerprint is trusted.

use std::fs::File;
use std::path::Path;

use crate::engine::error::CacheError;
use crate::engine::fingerprint::Fingerprint;

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

/// Opens `path` for reading, with its canonical path: the path itself when it
/// resolves without following a symbolic link (`openat2` with `RESOLVE_NO_SYMLINKS`,
/// Linux 5.6), otherwise what `realpath` makes of it.
pub(crate) fn open_resolved(path: &Path) -> Result<(File, Option<std::path::PathBuf>), CacheError> {
    #[cfg(target_os = "linux")]
    if is_plain_absolute(path) {
        use rustix::io::Errno;
        match open_without_links(path, false) {
            Ok(fd) => return Ok((File::from(fd), Some(path.to_path_buf()))),
            // A link on the way (or no `openat2`): the ordinary open below.
            Err(Errno::LOOP | Errno::NOSYS | Errno::INVAL | Errno::PERM | Errno::AGAIN) => {}
            Err(e) => return Err(CacheError::from_io(e.into())),
        }
    }
    let file = open_nonblocking(path)?;
    Ok((file, std::fs::canonicalize(path).ok()))
}

/// `openat2` of `path` for reading, without blocking on FIFOs, refusing any symbolic
/// link on the way (`RESOLVE_NO_SYMLINKS`: `ELOOP`), and with `cached`, resolving it
/// from the dentry cache alone (`RESOLVE_CACHED`, Linux 5.12: `EAGAIN` when it would
/// have to ask the disk). The one place both loads spell these flags.
#[cfg(target_os = "linux")]
pub(crate) fn open_without_links(
    path: &Path,
    cached: bool,
) -> rustix::io::Result<rustix::fd::OwnedFd> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let mut resolve = ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    if cached {
        resolve |= ResolveFlags::CACHED;
    }
    rustix::fs::openat2(rustix::fs::CWD, path, flags, Mode::empty(), resolve)
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

/// Whether `path` is absolute and in normal form (no `.` or `..` component, no
/// repeated or trailing separator): a path that resolves without following a link
/// is then its own canonical form.
pub(crate) fn is_plain_absolute(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let bytes = path.as_os_str().as_bytes();
        bytes.first() == Some(&b'/')
            && (bytes.len() == 1 || !bytes.ends_with(b"/"))
            && bytes[1..]
                .split(|&b| b == b'/')
                .all(|c| !c.is_empty() && c != b"." && c != b"..")
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        false
    }
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
