//! What a body checks of a mapping while it copies out of it ([`MappingWatch`]: the
//! poison flag, the truncation probes, the origin's `stat`), and the residency of its
//! pages (`mincore`, `madvise`) that `engine::fault_in` schedules. Part of the mapping
//! module: its `unsafe` blocks rely on the mapping being kept alive by the watch.

use super::*;

/// What a body needs to tell whether bytes it copied out of a mapping were real file
/// data: the poison flag, and a probe for truncations the SIGBUS guard cannot see.
///
/// When a file shrinks to a length inside a page, that page stays mapped and reads
/// past the new end return zeros *without* a fault. Such zeros are wrong bytes only
/// if the cut-off part held a non-zero byte. So:
///
/// * after copying bytes that end inside a page that is not the mapping's last, the
///   body reads one byte of the next page ([`MappingWatch::verify_through`]): if the
///   file now ends before that page, the read faults and the guard poisons the
///   mapping;
/// * after copying bytes that end in the mapping's last page, it compares the last
///   non-zero byte of that page (the *sentinel*, recorded when the file was loaded)
///   with its recorded value: if the file was cut before it, it reads as zero (or
///   faults). If the file was cut after it, every cut-off byte was zero, and the
///   zeros that were copied are exactly the file's bytes.
///
/// No system call is made; the cost is one byte read per copied chunk.
///
/// Writes that keep the file's length (a rewrite in place) fault nowhere and leave
/// no zeros: the shared mapping simply shows the new bytes. For those the watch can
/// carry the file's *origin* (its path and [`Fingerprint`] when it was loaded), and
/// a body that has copied its last byte asks [`MappingWatch::verify_unmodified`]
/// before it hands that byte over: one `stat`.
#[derive(Debug)]
pub struct MappingWatch {
    /// The whole mapping; keeps it alive for probes outside the body's segments.
    whole: bytes::Bytes,
    poison: Arc<AtomicBool>,
    /// Offset and value of the last non-zero byte in the mapping's last page.
    sentinel: Option<(usize, u8)>,
    /// The path the file was loaded from and its fingerprint then.
    origin: Option<(PathBuf, Fingerprint)>,
    /// Set (before the poison flag) when [`MappingWatch::verify_unmodified`] found the
    /// file rewritten, so that a cut body can tell a rewrite from a truncation.
    rewritten: AtomicBool,
}

impl MappingWatch {
    /// A watch over `whole` (the `Bytes` made from a [`MappedFile`]) with its poison
    /// flag. Reads the last page to find the sentinel.
    pub fn new(whole: bytes::Bytes, poison: Arc<AtomicBool>) -> MappingWatch {
        let last_page = Self::last_page(whole.len());
        let tail = whole.slice(last_page..);
        MappingWatch::with_last_page(whole, poison, &tail)
    }

    /// Where the last page of a mapping of `len` bytes starts.
    pub(crate) fn last_page(len: usize) -> usize {
        let page = PAGE_SIZE.load(Ordering::Relaxed);
        len.saturating_sub(1) / page * page
    }

    /// [`MappingWatch::new`] with the mapping's last page as the caller read it from
    /// the file (`pread`): finding the sentinel then touches no page of the mapping,
    /// so no page fault makes the kernel read around it (as much as the disk's
    /// `read_ahead_kb`, megabytes on some disks) before the first response. `tail`
    /// must be the bytes from [`MappingWatch::last_page`] to the end.
    pub(crate) fn with_last_page(
        whole: bytes::Bytes,
        poison: Arc<AtomicBool>,
        tail: &[u8],
    ) -> MappingWatch {
        let last_page = Self::last_page(whole.len());
        let sentinel = tail
            .iter()
            .rposition(|&b| b != 0)
            .map(|i| (last_page + i, tail[i]));
        MappingWatch {
            whole,
            poison,
            sentinel,
            origin: None,
            rewritten: AtomicBool::new(false),
        }
    }

    /// The same watch, also checking at the end of every body that the file at `path`
    /// is still the version `fingerprint` describes (see
    /// [`MappingWatch::verify_unmodified`]).
    pub fn with_origin(mut self, path: PathBuf, fingerprint: Fingerprint) -> MappingWatch {
        self.origin = Some((path, fingerprint));
        self
    }

    /// Called by a body after it copied its last bytes, before it returns them: if the
    /// file the mapping shows (same device and inode at the origin path) was modified
    /// since it was loaded — any change of size, mtime or ctime — sets the poison flag,
    /// so this body fails instead of completing with bytes that may mix two versions,
    /// and the cache loads the file afresh.
    ///
    /// Sound because the kernel updates a file's mtime and ctime *before* it copies a
    /// `write`'s data into the page cache: if any byte this body copied came from a
    /// write, the change is visible to this later `stat`. A path that now names
    /// another inode (replaced by rename) or nothing (deleted) is no evidence against
    /// the mapped inode, whose pages such deployments leave untouched: the body
    /// completes. Without an origin (in-memory entries, `revalidate = "never"`) this
    /// does nothing.
    pub fn verify_unmodified(&self) {
        let Some((path, loaded)) = &self.origin else {
            return;
        };
        let Ok(meta) = std::fs::metadata(path) else {
            return;
        };
        let now = Fingerprint::of(&meta);
        if (now.dev, now.ino) == (loaded.dev, loaded.ino) && now != *loaded {
            self.rewritten.store(true, Ordering::SeqCst);
            self.poison.store(true, Ordering::SeqCst);
        }
    }

    /// Poisons the mapping because its file was found modified (by the tag's hash,
    /// which compares the file's fingerprint before and after): as
    /// [`MappingWatch::verify_unmodified`] does, so a body cut by it counts as cut by a
    /// changed file, not by a truncation.
    pub(crate) fn poison_rewritten(&self) {
        self.rewritten.store(true, Ordering::SeqCst);
        self.poison.store(true, Ordering::SeqCst);
    }

    /// Whether the poison flag was set because [`MappingWatch::verify_unmodified`]
    /// found the file modified (rather than by the SIGBUS guard or the truncation
    /// probe): for counting why bodies were cut.
    pub fn found_rewritten(&self) -> bool {
        self.rewritten.load(Ordering::SeqCst)
    }

    /// Whether the mapping was found truncated.
    pub fn is_poisoned(&self) -> bool {
        self.poison.load(Ordering::SeqCst)
    }

    /// The offset of `ptr` in the mapping, if it points into it.
    pub fn offset_of(&self, ptr: *const u8) -> Option<usize> {
        let start = self.whole.as_ptr() as usize;
        let p = ptr as usize;
        (p >= start && p < start + self.whole.len()).then(|| p - start)
    }

    /// Checks, after bytes `..end` of the mapping were copied, that the file still
    /// held them; sets the poison flag otherwise (see the type's docs).
    pub fn verify_through(&self, end: usize) {
        if end == 0 || end > self.whole.len() {
            return;
        }
        let page = PAGE_SIZE.load(Ordering::Relaxed);
        let next_page = (end - 1) / page * page + page;
        if next_page < self.whole.len() {
            // SAFETY: `next_page` lies inside the mapping, which `self.whole` keeps
            // mapped. The read faults if the file now ends before that page; the
            // SIGBUS guard then maps a zero page there and sets the poison flag.
            unsafe { std::ptr::read_volatile(self.whole.as_ptr().add(next_page)) };
        } else if let Some((offset, value)) = self.sentinel {
            // SAFETY: as above; `offset < self.whole.len()` by construction.
            let now = unsafe { std::ptr::read_volatile(self.whole.as_ptr().add(offset)) };
            if now != value {
                self.poison.store(true, Ordering::SeqCst);
            }
        }
    }
}

/// A fault-in found pages past the end of the file: the file was truncated under the
/// mapping. The mapping's poison flag is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Truncated;

/// Brings the pages under `bytes` (a slice of a mapping, or of any memory) into
/// memory before a hash reads them on a blocking thread: `MADV_WILLNEED`, so the disk
/// reads the range in large requests, then `MADV_POPULATE_READ`. Errors are ignored: a
/// page past a truncated end then faults into the SIGBUS guard when it is read, as it
/// would have.
#[cfg(target_os = "linux")]
pub(crate) fn read_in(bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    let page = page_size();
    let start = bytes.as_ptr() as usize / page * page;
    let len = bytes.as_ptr() as usize + bytes.len() - start;
    for advice in [libc::MADV_WILLNEED, libc::MADV_POPULATE_READ] {
        // SAFETY: `[start, start + len)` covers only pages that hold bytes of `bytes`,
        // memory the caller holds a reference to and so is mapped. Both advices only
        // read pages in and map them; neither changes what the memory holds.
        unsafe { libc::madvise(start as *mut libc::c_void, len, advice) };
    }
}

/// Elsewhere than Linux pages are read as the hash touches them.
#[cfg(not(target_os = "linux"))]
pub(crate) fn read_in(_bytes: &[u8]) {}

/// The system's page size (4096 until the SIGBUS guard is installed and asks).
pub(crate) fn page_size() -> usize {
    PAGE_SIZE.load(Ordering::Relaxed)
}

impl MappingWatch {
    /// The mapping's length in bytes.
    pub(crate) fn mapped_len(&self) -> usize {
        self.whole.len()
    }

    /// Where the pages a copy ending at mapping offset `end` needs resident end: its
    /// own, and the next page, which [`MappingWatch::verify_through`] reads after it
    /// (the mapping's end at most). A page boundary or the mapping's end.
    pub(crate) fn needed_through(&self, end: usize) -> usize {
        let page = page_size();
        (end.div_ceil(page) * page)
            .saturating_add(page)
            .min(self.whole.len())
    }

    /// How far the pages of `[from, to)` are resident, without touching them: the
    /// offset where the first page that `mincore` reports missing starts (`from`
    /// itself when the page holding `from` is missing), or `to` when every page is
    /// there. One system call per 2 MiB of range (see `engine::fault_in` for what
    /// "resident" means to `mincore` and why that is enough).
    #[cfg(target_os = "linux")]
    pub(crate) fn resident_until(&self, from: usize, to: usize) -> usize {
        let to = to.min(self.whole.len());
        if from >= to {
            return to;
        }
        let page = PAGE_SIZE.load(Ordering::Relaxed);
        let mut first = from / page; // page index
        let last = (to - 1) / page; // inclusive
        let mut vec = [0u8; 512];
        while first <= last {
            let n = (last - first + 1).min(vec.len());
            // SAFETY: `first * page .. (first + n) * page` lies inside the mapping,
            // which `self.whole` keeps mapped (its start is page-aligned, as every
            // `mmap` result is, and the last page is partly inside it); `vec` has room
            // for `n` entries. `mincore` only reports, it changes no memory of ours.
            let rc = unsafe {
                libc::mincore(
                    self.whole.as_ptr().add(first * page) as *mut libc::c_void,
                    n * page,
                    vec.as_mut_ptr(),
                )
            };
            if rc != 0 {
                // Cannot tell (a range that is not a page-aligned mapping, which a
                // watch over plain memory in tests is; or a sandbox refusing the call):
                // copy as if resident (the copy then faults the pages itself).
                return to;
            }
            if let Some(i) = vec[..n].iter().position(|&v| v & 1 == 0) {
                return ((first + i) * page).max(from);
            }
            first += n;
        }
        to
    }

    /// Brings the pages of `[from, to)` into memory, blocking the calling thread for
    /// the disk reads: `madvise(MADV_WILLNEED)` first, so the kernel reads the range
    /// ahead in large requests, then `madvise(MADV_POPULATE_READ)` (Linux 5.14), which
    /// waits until every page is in and maps it here. Run on the blocking pool only.
    ///
    /// A page past the end of a file truncated since it was mapped makes
    /// `MADV_POPULATE_READ` fail with `EFAULT` instead of raising SIGBUS: the poison
    /// flag is set and [`Truncated`] returned. On a kernel without
    /// `MADV_POPULATE_READ` (`EINVAL`), one byte per page is read instead; a truncated
    /// page then faults into the SIGBUS guard, which poisons the mapping the same way.
    #[cfg(target_os = "linux")]
    pub(crate) fn populate(&self, from: usize, to: usize) -> Result<(), Truncated> {
        let to = to.min(self.whole.len());
        if from >= to {
            return Ok(());
        }
        let page = PAGE_SIZE.load(Ordering::Relaxed);
        let start = from / page * page;
        let len = to - start;
        // SAFETY: `[start, start + len)` lies inside the mapping, which `self.whole`
        // keeps mapped, and `start` is page-aligned. Both advices only read the file
        // into the page cache and map its pages; neither changes the mapping's
        // contents or drops pages (unlike `MADV_DONTNEED`).
        let base = unsafe { self.whole.as_ptr().add(start) } as *mut libc::c_void;
        // SAFETY: as above.
        unsafe { libc::madvise(base, len, libc::MADV_WILLNEED) };
        // SAFETY: as above.
        let rc = unsafe { libc::madvise(base, len, libc::MADV_POPULATE_READ) };
        if rc == 0 {
            return Ok(());
        }
        match io::Error::last_os_error().raw_os_error() {
            Some(libc::EFAULT) => {
                self.poison.store(true, Ordering::SeqCst);
                Err(Truncated)
            }
            Some(libc::EINVAL) => {
                let mut at = start;
                while at < to {
                    // SAFETY: `at` lies inside the mapping (see above). A read past the
                    // end of a truncated file faults into the SIGBUS guard, which maps
                    // a zero page there and sets the poison flag.
                    unsafe { std::ptr::read_volatile(self.whole.as_ptr().add(at)) };
                    at += page;
                }
                if self.is_poisoned() {
                    Err(Truncated)
                } else {
                    Ok(())
                }
            }
            // EINTR, EAGAIN, ENOMEM: not faulted in; the copy will fault as it would
            // have without this, and the SIGBUS guard still covers truncation.
            _ => Ok(()),
        }
    }

    /// Elsewhere than Linux residency is not known: every page counts as resident.
    #[cfg(not(target_os = "linux"))]
    pub(crate) fn resident_until(&self, _from: usize, to: usize) -> usize {
        to.min(self.whole.len())
    }

    /// Elsewhere than Linux nothing is faulted in ahead; copies fault as they go.
    #[cfg(not(target_os = "linux"))]
    pub(crate) fn populate(&self, _from: usize, _to: usize) -> Result<(), Truncated> {
        Ok(())
    }

    /// Drops this process's page-table entries for the whole pages inside
    /// `[from, to)` (`MADV_DONTNEED`), once a body has copied them from a cold file.
    /// For a shared file mapping this keeps the page cache: a later read maps the same
    /// (unchanged) data again with a minor fault; reclaim no longer has to unmap them.
    #[cfg(target_os = "linux")]
    pub(crate) fn release(&self, from: usize, to: usize) {
        let page = page_size();
        let start = from.div_ceil(page) * page;
        let end = to.min(self.whole.len()) / page * page;
        if start >= end {
            return;
        }
        // SAFETY: `[start, end)` is page-aligned and inside the mapping, which
        // `self.whole` keeps mapped. On a read-only shared file mapping `MADV_DONTNEED`
        // only removes page-table entries: the file's pages stay in the page cache and
        // any later read (by any body) faults the same data back in.
        unsafe {
            libc::madvise(
                self.whole.as_ptr().add(start) as *mut libc::c_void,
                end - start,
                libc::MADV_DONTNEED,
            )
        };
    }

    /// Elsewhere than Linux nothing is released.
    #[cfg(not(target_os = "linux"))]
    pub(crate) fn release(&self, _from: usize, _to: usize) {}

    /// Pages the whole mapping out of memory, as memory pressure would, for tests of
    /// the fault-in path: drops this process's page-table entries for it
    /// (`MADV_DONTNEED`, which for a shared file mapping keeps the file's data) and then
    /// the file's clean pages from the page cache (`POSIX_FADV_DONTNEED` on `file`),
    /// until `mincore` reports no page of it resident (a few tries: pages the kernel
    /// is busy with are skipped by one pass). Panics if they stay.
    #[cfg(all(test, target_os = "linux"))]
    pub(crate) fn page_out(&self, file: &std::path::Path) {
        use std::os::fd::AsRawFd;
        let f = File::open(file).unwrap();
        f.sync_all().unwrap();
        for _ in 0..50 {
            // SAFETY: the whole mapping, kept mapped by `self.whole`. For a read-only
            // shared file mapping `MADV_DONTNEED` only drops page-table entries: the
            // next read faults the file's (unchanged) data back in.
            unsafe {
                libc::madvise(
                    self.whole.as_ptr() as *mut libc::c_void,
                    self.whole.len(),
                    libc::MADV_DONTNEED,
                )
            };
            // SAFETY: a plain system call on a descriptor we own; it only drops clean
            // page-cache pages of the file.
            unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
            let len = self.whole.len();
            let mut at = 0;
            let mut resident = false;
            while at < len {
                let ready = self.resident_until(at, len);
                if ready > at {
                    resident = true;
                    break;
                }
                at += PAGE_SIZE.load(Ordering::Relaxed);
            }
            if !resident {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("the mapping's pages stayed resident");
    }
}
