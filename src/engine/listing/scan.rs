//! Reading a directory for a listing (feature `browse`), on a blocking thread.
//!
//! One pass of `readdir` over the whole directory, keeping what the file server would
//! serve and no more than [`ScanOptions::max_entries`] of it:
//!
//! * a name the file server would refuse ([`check_segment_bytes`]: hidden dot-files
//!   unless allowed, control characters, `\`) is skipped;
//! * a symbolic link is listed as what it points to only if the file server's policy
//!   would follow it ([`Symlinks`]); a dangling link is skipped;
//! * anything but a regular file or a directory (FIFOs, sockets, devices) is skipped,
//!   as the file server never serves them;
//! * every entry that passes counts towards [`Scan::total`], and a bounded heap keeps
//!   the first `max_entries` in the listing's default order (directories first, then
//!   by name): memory is O(`max_entries`) whatever the size of the directory, and the
//!   kept set does not depend on the order in which the disk returns names.
//!
//! Only the kept entries are `stat`ed (size, modification time). Entries are read with
//! their `d_type`, so a directory of M plain files costs one `getdents` pass plus
//! `max_entries` `stat`s; each symbolic link costs a `realpath` and a `stat` more.

use std::collections::BinaryHeap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::engine::error::CacheError;
use crate::engine::fingerprint::Fingerprint;
use crate::engine::links::Symlinks;
use crate::engine::listing::entries::{Kind, Listed, NameKey};
use crate::semantics::path::check_segment_bytes;

/// What a scan keeps.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ScanOptions {
    /// Whether names starting with `.` are listed.
    pub(crate) dotfiles: bool,
    /// The symbolic link policy.
    pub(crate) links: Symlinks,
    /// The canonical root the policy keeps links within.
    pub(crate) root: PathBuf,
    /// The most entries kept.
    pub(crate) max_entries: usize,
}

/// One directory, read.
#[derive(Debug)]
pub(crate) struct Scan {
    /// At most `max_entries` entries, in the default order.
    pub(crate) entries: Vec<Listed>,
    /// How many entries the directory has that would be listed.
    pub(crate) total: usize,
    /// The latest modification time of the directory and of the kept entries: when
    /// this listing last changed, as far as a `stat` can tell.
    pub(crate) modified: Option<SystemTime>,
}

/// `stat`s `dir` and checks that it is a directory.
pub(crate) fn stat_dir(dir: &Path) -> Result<Fingerprint, CacheError> {
    let meta = std::fs::metadata(dir).map_err(CacheError::from_io)?;
    if meta.is_dir() {
        Ok(Fingerprint::of(&meta))
    } else {
        Err(CacheError::NotFound)
    }
}

/// The heap of the names a scan keeps (at most `cap`). A max-heap: its top is the
/// last of the kept entries, the first to give way. Room for a few names only: it
/// grows with the directory. Reserving `max_entries` (up to 4096) names up front
/// allocated 229 KiB for every listing built, however small the directory: the only
/// block over glibc's 128 KiB mmap threshold in the soak's traffic.
fn kept_heap(cap: usize) -> BinaryHeap<NameKey> {
    BinaryHeap::with_capacity(cap.min(64) + 1)
}

/// Reads `dir` (see the module docs). Blocking: call it on a blocking thread.
pub(crate) fn scan(dir: &Path, options: &ScanOptions) -> Result<Scan, CacheError> {
    let meta = std::fs::metadata(dir).map_err(CacheError::from_io)?;
    if !meta.is_dir() {
        return Err(CacheError::NotFound);
    }
    let mut modified = meta.modified().ok();
    let read = std::fs::read_dir(dir).map_err(CacheError::from_io)?;
    let cap = options.max_entries;
    let mut kept = kept_heap(cap);
    let mut total = 0usize;
    for item in read {
        // An error in the middle of a directory (it was removed, an I/O error) ends
        // the pass: the listing shows what was read.
        let Ok(item) = item else { break };
        let name = item.file_name();
        let bytes = name_bytes(&name);
        if check_segment_bytes(bytes, options.dotfiles).is_err() {
            continue;
        }
        let Some(kind) = kind_of(&item, options) else {
            continue;
        };
        total += 1;
        if cap == 0 {
            continue;
        }
        let key = NameKey::new(kind, bytes.to_vec());
        if kept.len() < cap {
            kept.push(key);
        } else if kept.peek().is_some_and(|last| key < *last) {
            kept.pop();
            kept.push(key);
        }
    }
    let mut entries = Vec::with_capacity(kept.len());
    for key in kept.into_sorted_vec() {
        let (_, name) = key.into_parts();
        // Follows links: a listed link shows its target's size and time.
        let Ok(meta) = std::fs::metadata(dir.join(os_str(&name))) else {
            continue; // removed since it was read
        };
        let kind = if meta.is_dir() {
            Kind::Directory
        } else if meta.is_file() {
            Kind::File
        } else {
            continue;
        };
        let mtime = meta.modified().ok();
        if let Some(t) = mtime {
            modified = modified.max(Some(t));
        }
        entries.push(Listed {
            name,
            kind,
            size: (kind == Kind::File).then_some(meta.len()),
            mtime: mtime.map(unix_secs),
        });
    }
    Ok(Scan {
        entries,
        total,
        modified,
    })
}

/// What the file server would serve at this entry, or `None` if nothing.
fn kind_of(item: &std::fs::DirEntry, options: &ScanOptions) -> Option<Kind> {
    let file_type = item.file_type().ok()?;
    if file_type.is_dir() {
        return Some(Kind::Directory);
    }
    if file_type.is_file() {
        return Some(Kind::File);
    }
    if !file_type.is_symlink() {
        return None;
    }
    let path = item.path();
    let canonical = if options.links.needs_canonical() {
        std::fs::canonicalize(&path).ok()
    } else {
        None
    };
    let allowed = options
        .links
        .allows(&path, canonical.as_deref(), &options.root);
    if !allowed {
        return None;
    }
    let meta = std::fs::metadata(&path).ok()?;
    if meta.is_dir() {
        Some(Kind::Directory)
    } else if meta.is_file() {
        Some(Kind::File)
    } else {
        None
    }
}

/// Seconds since the Unix epoch, negative before it.
fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => {
            let d = e.duration();
            // Round towards the past, so that 0.5 s before the epoch is -1.
            let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            if d.subsec_nanos() > 0 {
                -secs - 1
            } else {
                -secs
            }
        }
    }
}

#[cfg(unix)]
fn name_bytes(name: &OsStr) -> &[u8] {
    use std::os::unix::ffi::OsStrExt;
    name.as_bytes()
}

#[cfg(not(unix))]
fn name_bytes(name: &OsStr) -> &[u8] {
    // Names that are not Unicode cannot be requested there: an empty name is skipped.
    name.to_str().map(str::as_bytes).unwrap_or(b"")
}

#[cfg(unix)]
fn os_str(name: &[u8]) -> &OsStr {
    use std::os::unix::ffi::OsStrExt;
    OsStr::from_bytes(name)
}

#[cfg(not(unix))]
fn os_str(name: &[u8]) -> &OsStr {
    OsStr::new(std::str::from_utf8(name).unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use crate::engine::test_support::TempDir;

    fn options(max_entries: usize) -> ScanOptions {
        ScanOptions {
            dotfiles: false,
            links: Symlinks::Never,
            root: PathBuf::from("/"),
            max_entries,
        }
    }

    /// A listing reserves room for a few names, not for `max_entries` of them: 4096
    /// reserved names were a 229 KiB block per listing built (see `kept_heap`).
    #[test]
    fn a_scan_reserves_little_up_front() {
        let reserved = kept_heap(10_000).capacity() * std::mem::size_of::<NameKey>();
        assert!(reserved <= 8 << 10, "{reserved} bytes reserved");
        assert!(kept_heap(0).capacity() >= 1);
    }

    fn names(scan: &Scan) -> Vec<String> {
        scan.entries
            .iter()
            .map(|e| String::from_utf8_lossy(&e.name).into_owned())
            .collect()
    }

    #[test]
    fn keeps_the_first_entries_by_name_directories_first() {
        let d = TempDir::canonical("first");
        for n in ["e", "B", "a", "d", "c"] {
            std::fs::write(d.0.join(n), n).unwrap();
        }
        std::fs::create_dir(d.0.join("z-dir")).unwrap();
        std::fs::write(d.0.join(".hidden"), "h").unwrap();
        let all = scan(&d.0, &options(100)).unwrap();
        assert_eq!(names(&all), ["z-dir", "a", "B", "c", "d", "e"]);
        assert_eq!(all.total, 6);
        let cut = scan(&d.0, &options(3)).unwrap();
        assert_eq!(names(&cut), ["z-dir", "a", "B"]);
        assert_eq!(cut.total, 6);
        let none = scan(&d.0, &options(0)).unwrap();
        assert!(none.entries.is_empty());
        assert_eq!(none.total, 6);
        let e = &all.entries[1];
        assert_eq!((e.kind, e.size), (Kind::File, Some(1)));
        assert_eq!(all.entries[0].size, None);
        let dotted = scan(
            &d.0,
            &ScanOptions {
                dotfiles: true,
                ..options(100)
            },
        )
        .unwrap();
        assert_eq!(dotted.total, 7);
    }

    #[test]
    fn modified_is_the_latest_of_the_directory_and_its_entries() {
        let d = TempDir::canonical("modified");
        let f = d.0.join("f");
        std::fs::write(&f, "x").unwrap();
        let future = SystemTime::now() + Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(future)
            .unwrap();
        let s = scan(&d.0, &options(10)).unwrap();
        assert_eq!(
            s.modified.map(unix_secs),
            Some(unix_secs(future)),
            "a file changed in place changes the listing's date"
        );
    }

    #[cfg(unix)]
    #[test]
    fn links_follow_the_policy_and_special_files_are_skipped() {
        let d = TempDir::canonical("links");
        let root = d.0.join("root");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(d.0.join("outside.txt"), "secret").unwrap();
        std::fs::write(root.join("inside.txt"), "ok").unwrap();
        std::os::unix::fs::symlink(d.0.join("outside.txt"), root.join("out-link")).unwrap();
        std::os::unix::fs::symlink(root.join("inside.txt"), root.join("in-link")).unwrap();
        std::os::unix::fs::symlink(root.join("nowhere"), root.join("dangling")).unwrap();
        let fifo = root.join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo {}", fifo.display());
        let with = |links| {
            let s = scan(
                &root,
                &ScanOptions {
                    links,
                    root: root.clone(),
                    ..options(10)
                },
            )
            .unwrap();
            names(&s)
        };
        assert_eq!(with(Symlinks::Never), ["inside.txt"]);
        assert_eq!(with(Symlinks::WithinRoot), ["in-link", "inside.txt"]);
        assert_eq!(
            with(Symlinks::Follow),
            ["in-link", "inside.txt", "out-link"]
        );
    }

    #[cfg(unix)]
    #[test]
    fn names_that_would_not_be_served_are_not_listed() {
        use std::os::unix::ffi::OsStrExt;
        let d = TempDir::canonical("names");
        for n in [&b"a\nb"[..], b"back\\slash", b"caf\xe9", b"ok"] {
            std::fs::write(d.0.join(OsStr::from_bytes(n)), "x").unwrap();
        }
        let s = scan(&d.0, &options(10)).unwrap();
        let listed: Vec<&[u8]> = s.entries.iter().map(|e| e.name.as_slice()).collect();
        assert_eq!(listed, [&b"caf\xe9"[..], b"ok"]);
        assert_eq!(s.total, 2);
    }

    #[test]
    fn a_file_is_not_a_directory() {
        let d = TempDir::canonical("notdir");
        std::fs::write(d.0.join("f"), "x").unwrap();
        assert!(matches!(
            scan(&d.0.join("f"), &options(1)),
            Err(CacheError::NotFound)
        ));
        assert!(matches!(
            stat_dir(&d.0.join("missing")),
            Err(CacheError::NotFound)
        ));
        assert!(stat_dir(&d.0).is_ok());
    }

    #[test]
    fn times_before_the_epoch_round_down() {
        assert_eq!(unix_secs(UNIX_EPOCH), 0);
        assert_eq!(unix_secs(UNIX_EPOCH + Duration::from_millis(1500)), 1);
        assert_eq!(unix_secs(UNIX_EPOCH - Duration::from_millis(500)), -1);
        assert_eq!(unix_secs(UNIX_EPOCH - Duration::from_secs(2)), -2);
    }
}
