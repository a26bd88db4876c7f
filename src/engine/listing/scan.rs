//! Reading a directory for a listing (feature `browse`), on a blocking thread.
//!
//! [`each_listed`] is one pass of `readdir` over the whole directory, keeping what the
//! file server would serve:
//!
//! * a name the file server would refuse ([`check_segment_bytes`]: hidden dot-files
//!   unless allowed, control characters, `\`) is skipped;
//! * a symbolic link is listed as what it points to only if the file server's policy
//!   would follow it ([`Symlinks`]); a dangling link is skipped;
//! * anything but a regular file or a directory (FIFOs, sockets, devices) is skipped,
//!   as the file server never serves them.
//!
//! Entries are read with their `d_type`, so a pass over M plain files is one
//! `getdents` pass (an `lstat` each where the file system gives no type); each
//! symbolic link costs a `realpath` and a `stat` more. A pass feeds either a snapshot
//! of the directory's names (`snapshot`, what the listing cache keeps) or
//! [`scan_window`], which picks one page in the pass itself with memory for two pages
//! whatever the size of the directory, for directories with more names than a
//! snapshot may hold. Either way only the entries of the page shown are `stat`ed
//! (size, modification time: [`stat_window`]).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::ffi::OsStr;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::engine::error::CacheError;
use crate::engine::fingerprint::Fingerprint;
use crate::engine::links::Symlinks;
use crate::engine::listing::entries::{Kind, Listed, NameKey};
use crate::engine::listing::window::Window;
use crate::semantics::path::check_segment_bytes;

/// What a listing lists, and how many entries a page shows.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ScanOptions {
    /// Whether names starting with `.` are listed.
    pub(crate) dotfiles: bool,
    /// The symbolic link policy.
    pub(crate) links: Symlinks,
    /// The canonical root the policy keeps links within.
    pub(crate) root: PathBuf,
    /// The most entries a page shows (`browse_max_entries`).
    pub(crate) max_entries: usize,
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

/// Calls `f` with the kind and the name of every entry of `dir` that would be listed
/// (see the module docs), in the order the disk returns them, until `f` breaks.
/// Returns whether the pass met a symbolic link (listed or not): what a link points to
/// can change while the directory does not. Blocking.
///
/// An error in the middle of the directory (it was removed, an I/O error) ends the
/// pass: the listing shows what was read.
pub(crate) fn each_listed(
    dir: &Path,
    options: &ScanOptions,
    mut f: impl FnMut(Kind, &[u8]) -> ControlFlow<()>,
) -> Result<bool, CacheError> {
    let mut links = false;
    each_entry(dir, |name, dtype| {
        if check_segment_bytes(name, options.dotfiles).is_err() {
            return ControlFlow::Continue(());
        }
        let (kind, link) = kind_of(dir, name, dtype, options);
        links |= link;
        match kind {
            Some(kind) => f(kind, name),
            None => ControlFlow::Continue(()),
        }
    })?;
    Ok(links)
}

/// What `readdir` says an entry is (its `d_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dtype {
    Directory,
    File,
    Link,
    /// A FIFO, socket or device.
    Other,
    /// The file system does not say (`DT_UNKNOWN`): an `lstat` will.
    Unknown,
}

/// The bytes of directory entries read per `getdents64` call.
#[cfg(target_os = "linux")]
const DIRENT_BUFFER: usize = 32 << 10;

/// Calls `f` with the name and the type of every entry of `dir` but `.` and `..`, until
/// `f` breaks; an error in the middle ends the pass. On Linux, `getdents64` into one
/// buffer: no allocation per entry, where `std::fs::read_dir` makes two (200 000
/// entries read in 40–45 ms instead of 50–60 on a 2-core VM).
#[cfg(target_os = "linux")]
fn each_entry(
    dir: &Path,
    mut f: impl FnMut(&[u8], Dtype) -> ControlFlow<()>,
) -> Result<(), CacheError> {
    use rustix::fs::{open, FileType, Mode, OFlags, RawDir};
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let fd = open(dir, flags, Mode::empty()).map_err(|e| CacheError::from_io(e.into()))?;
    let mut buffer = Vec::with_capacity(DIRENT_BUFFER);
    let mut entries = RawDir::new(fd, buffer.spare_capacity_mut());
    while let Some(Ok(entry)) = entries.next() {
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let dtype = match entry.file_type() {
            FileType::Directory => Dtype::Directory,
            FileType::RegularFile => Dtype::File,
            FileType::Symlink => Dtype::Link,
            FileType::Unknown => Dtype::Unknown,
            _ => Dtype::Other,
        };
        if f(name, dtype).is_break() {
            break;
        }
    }
    Ok(())
}

/// Calls `f` with the name and the type of every entry of `dir`, until `f` breaks; an
/// error in the middle ends the pass.
#[cfg(not(target_os = "linux"))]
fn each_entry(
    dir: &Path,
    mut f: impl FnMut(&[u8], Dtype) -> ControlFlow<()>,
) -> Result<(), CacheError> {
    let read = std::fs::read_dir(dir).map_err(CacheError::from_io)?;
    for item in read {
        let Ok(item) = item else { break };
        let dtype = match item.file_type() {
            Ok(t) if t.is_dir() => Dtype::Directory,
            Ok(t) if t.is_file() => Dtype::File,
            Ok(t) if t.is_symlink() => Dtype::Link,
            Ok(_) => Dtype::Other,
            Err(_) => Dtype::Unknown,
        };
        if f(name_bytes(&item.file_name()), dtype).is_break() {
            break;
        }
    }
    Ok(())
}

/// The heap of the names a scan keeps (at most `cap`). A max-heap: its top is the
/// last of the kept entries, the first to give way. Room for a few names only: it
/// grows with the directory. Reserving `max_entries` (up to 4096) names up front
/// allocated 229 KiB for every listing built, however small the directory: the only
/// block over glibc's 128 KiB mmap threshold in the soak's traffic.
fn kept_heap(cap: usize) -> BinaryHeap<NameKey> {
    BinaryHeap::with_capacity(cap.min(64) + 1)
}

/// The page of `n` entries after `after` (from the start without it), read in one
/// pass with memory for `2n + 1` names: the entries after the cursor compete for the
/// page in a bounded heap, those at or before it are counted (the page's position)
/// and the `n + 1` last of them kept for the link to the previous page. Blocking.
pub(crate) fn scan_window(
    dir: &Path,
    options: &ScanOptions,
    after: Option<&NameKey>,
    n: usize,
) -> Result<Window, CacheError> {
    let mut kept = kept_heap(n);
    // A min-heap of the n + 1 greatest entries at or before the cursor, and the
    // greatest of them.
    let mut before: BinaryHeap<Reverse<NameKey>> = BinaryHeap::new();
    let mut at: Option<NameKey> = None;
    let (mut total, mut first) = (0usize, 0usize);
    each_listed(dir, options, |kind, name| {
        total += 1;
        if n == 0 && after.is_none() {
            return ControlFlow::Continue(());
        }
        let key = NameKey::new(kind, name.to_vec());
        if after.is_some_and(|after| key <= *after) {
            first += 1;
            if at.as_ref().is_none_or(|at| key > *at) {
                at = Some(key.clone());
            }
            if n > 0 {
                if before.len() <= n {
                    before.push(Reverse(key));
                } else if before.peek().is_some_and(|Reverse(least)| key > *least) {
                    before.pop();
                    before.push(Reverse(key));
                }
            }
        } else if kept.len() < n {
            kept.push(key);
        } else if kept.peek().is_some_and(|last| key < *last) {
            kept.pop();
            kept.push(key);
        }
        ControlFlow::Continue(())
    })?;
    let names = kept.into_sorted_vec().into_iter().map(NameKey::into_parts);
    let anchor = before.peek().map(|Reverse(k)| k.clone().into_parts());
    let at = at.map(NameKey::into_parts);
    Ok(Window::new(names.collect(), first, at, total, n, || anchor))
}

/// The entries of `window`, `stat`ed (following links: a listed link shows its
/// target's size and time), and the latest of `modified` (the directory's) and their
/// modification times: when this page last changed, as far as a `stat` can tell. An
/// entry removed since it was read, or no longer a file or a directory, is left out.
/// Blocking.
pub(crate) fn stat_window(
    dir: &Path,
    window: &Window,
    mut modified: Option<SystemTime>,
) -> (Vec<Listed>, Option<SystemTime>) {
    let mut entries = Vec::with_capacity(window.names.len());
    let mut stat = entry_stat(dir);
    for (_, name) in &window.names {
        let Some((kind, size, mtime)) = stat(name) else {
            continue;
        };
        if let Some(t) = mtime {
            modified = modified.max(Some(t));
        }
        entries.push(Listed {
            name: name.clone(),
            kind,
            size: (kind == Kind::File).then_some(size),
            mtime: mtime.map(unix_secs),
        });
    }
    (entries, modified)
}

/// What `stat` of an entry gives a listing: its kind (`None` for what is neither a
/// file nor a directory), size and modification time.
type EntryStat = Option<(Kind, u64, Option<SystemTime>)>;

/// A `stat` of the entries of `dir`, following links. On Linux, `statx` relative to
/// one descriptor of the directory: the kernel walks one name per entry, not the whole
/// path, and no path is built (a page of 10 000 entries of a 200 000-entry directory
/// answered in 20.0 ms instead of 21.6). Elsewhere, or if the directory cannot be
/// opened (it will then be listed empty), `std::fs::metadata` of the joined path.
fn entry_stat(dir: &Path) -> impl FnMut(&[u8]) -> EntryStat + '_ {
    #[cfg(target_os = "linux")]
    let fd = {
        use rustix::fs::{open, Mode, OFlags};
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        open(dir, flags, Mode::empty()).ok()
    };
    move |name: &[u8]| {
        #[cfg(target_os = "linux")]
        if let Some(fd) = &fd {
            use rustix::fs::{statx, AtFlags, FileType, StatxFlags};
            let c_name = std::ffi::CString::new(name).ok()?;
            let mask = StatxFlags::TYPE | StatxFlags::SIZE | StatxFlags::MTIME;
            let st = statx(fd, c_name.as_c_str(), AtFlags::empty(), mask).ok()?;
            let kind = match FileType::from_raw_mode(st.stx_mode.into()) {
                FileType::Directory => Kind::Directory,
                FileType::RegularFile => Kind::File,
                _ => return None,
            };
            let has_mtime = st.stx_mask & StatxFlags::MTIME.bits() != 0;
            let mtime = has_mtime.then(|| statx_time(st.stx_mtime.tv_sec, st.stx_mtime.tv_nsec));
            return Some((kind, st.stx_size, mtime));
        }
        let meta = std::fs::metadata(dir.join(os_str(name))).ok()?;
        Some((listed_kind(&meta)?, meta.len(), meta.modified().ok()))
    }
}

/// What a listing shows for an entry whose (followed) metadata is `meta`: a file or a
/// directory, nothing else.
fn listed_kind(meta: &std::fs::Metadata) -> Option<Kind> {
    if meta.is_dir() {
        Some(Kind::Directory)
    } else if meta.is_file() {
        Some(Kind::File)
    } else {
        None
    }
}

/// The time `secs` seconds and `nanos` nanoseconds after the epoch (`secs` negative
/// before it, `nanos` always forward), as `statx` gives it.
#[cfg(target_os = "linux")]
fn statx_time(secs: i64, nanos: u32) -> SystemTime {
    use std::time::Duration;
    let nanos = Duration::new(0, nanos);
    match u64::try_from(secs) {
        Ok(secs) => UNIX_EPOCH + Duration::from_secs(secs) + nanos,
        Err(_) => UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()) + nanos,
    }
}

/// What the file server would serve at the entry `name` of `dir` (`None` if nothing),
/// and whether the entry is a symbolic link.
fn kind_of(dir: &Path, name: &[u8], dtype: Dtype, options: &ScanOptions) -> (Option<Kind>, bool) {
    let path = || dir.join(os_str(name));
    let dtype = match dtype {
        Dtype::Unknown => match std::fs::symlink_metadata(path()) {
            Ok(m) if m.is_dir() => Dtype::Directory,
            Ok(m) if m.is_file() => Dtype::File,
            Ok(m) if m.is_symlink() => Dtype::Link,
            _ => Dtype::Other,
        },
        known => known,
    };
    match dtype {
        Dtype::Directory => return (Some(Kind::Directory), false),
        Dtype::File => return (Some(Kind::File), false),
        Dtype::Link => {}
        Dtype::Other | Dtype::Unknown => return (None, false),
    }
    let path = path();
    let canonical = if options.links.needs_canonical() {
        std::fs::canonicalize(&path).ok()
    } else {
        None
    };
    let allowed = options
        .links
        .allows(&path, canonical.as_deref(), &options.root);
    if !allowed {
        return (None, true);
    }
    let kind = std::fs::metadata(&path).ok().and_then(|m| listed_kind(&m));
    (kind, true)
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

#[cfg(all(unix, not(target_os = "linux")))]
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

    /// A page read as the file server reads one: what the tests look at.
    struct Scan {
        entries: Vec<Listed>,
        total: usize,
        modified: Option<SystemTime>,
    }

    /// The first page of `dir`, `stat`ed.
    fn scan(dir: &Path, options: &ScanOptions) -> Result<Scan, CacheError> {
        let window = scan_window(dir, options, None, options.max_entries)?;
        let dir_time = std::fs::metadata(dir).ok().and_then(|m| m.modified().ok());
        let (entries, modified) = stat_window(dir, &window, dir_time);
        Ok(Scan {
            entries,
            total: window.total,
            modified,
        })
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
    fn a_window_starts_after_its_cursor_and_knows_its_neighbours() {
        use crate::engine::listing::window::PageLink;
        let d = TempDir::canonical("window");
        for n in ["a", "B", "c", "d", "e", "f", "g"] {
            std::fs::write(d.0.join(n), n).unwrap();
        }
        std::fs::create_dir(d.0.join("sub")).unwrap();
        let page = |after: Option<(Kind, &str)>, n| {
            let key = after.map(|(kind, name)| NameKey::new(kind, name.as_bytes().to_vec()));
            scan_window(&d.0, &options(n), key.as_ref(), n).unwrap()
        };
        let shown = |w: &Window| -> Vec<String> {
            w.names
                .iter()
                .map(|(_, n)| String::from_utf8_lossy(n).into_owned())
                .collect()
        };
        let after = |kind, name: &str| Some(PageLink::After(kind, name.as_bytes().to_vec()));
        // sub/ a B | c d e | f g
        let first = page(None, 3);
        assert_eq!(shown(&first), ["sub", "a", "B"]);
        assert_eq!((first.first, first.total), (0, 8));
        assert_eq!(
            (&first.previous, &first.next),
            (&None, &after(Kind::File, "B"))
        );
        let second = page(Some((Kind::File, "b")), 3);
        assert_eq!(shown(&second), ["c", "d", "e"]);
        assert_eq!(second.first, 3);
        assert_eq!(second.previous, Some(PageLink::First));
        let last = page(Some((Kind::File, "e")), 3);
        assert_eq!(shown(&last), ["f", "g"]);
        assert_eq!((last.first, last.next), (6, None));
        assert_eq!(last.previous, after(Kind::File, "B"), "back to c d e");
        // A cursor between names, or naming no entry, is a position all the same.
        assert_eq!(shown(&page(Some((Kind::File, "bb")), 3)), ["c", "d", "e"]);
        assert_eq!(
            shown(&page(Some((Kind::Directory, "zzz")), 3)),
            ["a", "B", "c"]
        );
        let past = page(Some((Kind::File, "zzz")), 3);
        assert!(past.names.is_empty());
        assert_eq!((past.first, past.next), (8, None));
        assert_eq!(
            past.previous,
            after(Kind::File, "d"),
            "back to the last three"
        );
        // Pages of 0 count, and show and link nothing.
        let none = page(Some((Kind::File, "c")), 0);
        assert_eq!((none.names.len(), none.first, none.total), (0, 4, 8));
        assert_eq!((none.previous, none.next), (None, None));
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

    /// A file system that gives no `d_type` (`DT_UNKNOWN`) is asked with an `lstat`.
    #[cfg(unix)]
    #[test]
    fn an_unknown_type_is_looked_up() {
        let d = TempDir::canonical("unknown");
        std::fs::write(d.0.join("f"), "x").unwrap();
        std::fs::create_dir(d.0.join("d")).unwrap();
        std::os::unix::fs::symlink(d.0.join("f"), d.0.join("l")).unwrap();
        let follow = ScanOptions {
            links: Symlinks::Follow,
            ..options(10)
        };
        let kind = |name: &str| kind_of(&d.0, name.as_bytes(), Dtype::Unknown, &follow);
        assert_eq!(kind("f"), (Some(Kind::File), false));
        assert_eq!(kind("d"), (Some(Kind::Directory), false));
        assert_eq!(kind("l"), (Some(Kind::File), true));
        assert_eq!(kind("gone"), (None, false));
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

    /// The `statx` relative to the directory gives what `std::fs::metadata` of the
    /// path gives: kind, size, the time to the nanosecond (before the epoch too), a
    /// link's target; nothing for what is neither a file nor a directory, or is gone.
    #[cfg(target_os = "linux")]
    #[test]
    fn an_entry_stat_is_the_paths_metadata() {
        let d = TempDir::canonical("scan-entry-stat");
        std::fs::write(d.0.join("f"), b"12345").unwrap();
        std::fs::create_dir(d.0.join("sub")).unwrap();
        std::os::unix::fs::symlink(d.0.join("f"), d.0.join("link")).unwrap();
        let old = std::fs::File::options()
            .write(true)
            .open(d.0.join("f"))
            .unwrap();
        old.set_modified(UNIX_EPOCH - Duration::new(99, 250_000_000))
            .unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(d.0.join("fifo"))
            .status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo");
        let mut stat = entry_stat(&d.0);
        for name in ["f", "sub", "link"] {
            let meta = std::fs::metadata(d.0.join(name)).unwrap();
            let kind = if meta.is_dir() {
                Kind::Directory
            } else {
                Kind::File
            };
            let want = Some((kind, meta.len(), Some(meta.modified().unwrap())));
            assert_eq!(stat(name.as_bytes()), want, "{name}");
        }
        assert_eq!(
            stat(b"f").unwrap().2,
            Some(UNIX_EPOCH - Duration::new(99, 250_000_000))
        );
        assert_eq!(stat(b"fifo"), None);
        assert_eq!(stat(b"gone"), None);
    }
}
