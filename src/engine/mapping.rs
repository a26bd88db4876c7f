//! Memory mappings of files, and surviving files truncated under them (SIGBUS).
//!
//! All of the crate's `unsafe` code lives in this module: mapping a file
//! ([`MappedFile::map`]) and the SIGBUS guard.
//!
//! Reading a mapped page that lies past the end of a file truncated after it was
//! mapped raises `SIGBUS`, whose default action kills the process. Every body byte is
//! copied in user space (by [`SegmentBody`](crate::engine::body::SegmentBody), into Rocket's chunk buffer),
//! so without this module anyone able to truncate a served file could kill the server.
//!
//! # Design
//!
//! * A process-wide `SIGBUS` handler (`sigaction`, `SA_SIGINFO`) is installed once,
//!   the first time a file is mapped.
//! * Every mapping the cache makes is recorded in a fixed-size, lock-free registry of
//!   `(start, length, poison flag)` slots, each with a sequence counter ([`register`]);
//!   the record is removed before the mapping is unmapped ([`Registration`]'s `Drop`).
//! * On a fault, the handler looks the faulting address (`si_addr`) up in the registry
//!   using only atomic loads. If it lies inside one of our mappings, the handler first
//!   sets that mapping's poison flag, then maps an anonymous zero page over the faulting
//!   page (`mmap` with `MAP_FIXED`, a plain system call) and returns: the interrupted
//!   copy resumes and reads zeros.
//! * The reader ([`SegmentBody`](crate::engine::body::SegmentBody), and the hashing in the cache) checks the
//!   poison flag after each copy and throws the copied bytes away if it is set: the
//!   response is cut short (the client sees fewer bytes than `Content-Length`), never
//!   completed with zeros. The cache drops a poisoned entry and maps the file afresh.
//! * A fault outside our mappings is not ours to handle: the previous handler is called
//!   if there was one; otherwise the default action is restored and the handler
//!   returns, so the faulting instruction faults again and the process dies exactly as
//!   it would have without us.
//!
//! # Why it is sound
//!
//! * The handler calls no allocator, lock or non-reentrant function: atomic loads and
//!   stores, `mmap` and `sigaction` (both plain system calls on Linux).
//! * A slot is written only by whoever holds its claim ([`register`], then the
//!   [`Registration`] until its `Drop` gives the claim up), and every write (publish or
//!   retract) makes the slot's sequence counter odd first and even again after. The
//!   handler reads the counter, the fields, then the counter again, and trusts the
//!   fields only if both reads gave the same even value: it never pairs one
//!   mapping's `start` with another's `len` or flag, even when a slot is released and
//!   taken again while it is read. A slot being written, or rewritten while it is
//!   read, is skipped, not waited for (the handler may have interrupted its writer).
//! * The mapping a slot describes, and the poison flag (kept alive by the
//!   [`Registration`]), outlive the slot. A fault inside a mapping can only come from
//!   a thread that holds a reference to that mapping, so that mapping's slot is
//!   published and unchanging while the handler runs, and is never skipped. Any other
//!   record the handler reads consistently was registered, so mapped, at that moment,
//!   beside the faulting one; mappings do not overlap, so no other record holds the
//!   faulting address, and only the faulting mapping's flag is ever set.
//! * The zero page replaces only pages that no longer have file data behind them; the
//!   mapping is later unmapped as a whole by `munmap`, which removes the zero pages too.
//! * The flag is set before the zero page exists, so any reader that obtains zeros from
//!   it sees the flag when it checks after its copy.
//!
//! If the registry is full (more than [`SLOTS`] live mappings, which the cache's entry
//! bound prevents in practice), [`register`] returns `None` and the cache refuses to
//! map the file rather than serve it unprotected.

use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Arc, Once};

use crate::engine::fingerprint::Fingerprint;

/// A read-only shared mapping of a whole file, registered with the SIGBUS guard.
///
/// Hand it to `Bytes::from_owner`: every slice keeps the mapping alive, and the
/// mapping is unregistered, then unmapped, when the last one is dropped. No file
/// descriptor is kept open.
#[derive(Debug)]
pub struct MappedFile {
    // Field order matters only for documentation: `Drop` retracts the registration
    // explicitly before `map` is unmapped.
    registration: Option<Registration>,
    map: memmap2::Mmap,
    poison: Arc<AtomicBool>,
}

/// Why a file could not be mapped.
#[derive(Debug)]
pub enum MapError {
    /// `mmap` failed.
    Io(io::Error),
    /// The SIGBUS guard could not protect the mapping (registry full, or the platform
    /// has no guard); mapping it unprotected would risk the whole process.
    Unprotected,
}

impl MappedFile {
    /// Maps `len` bytes of `file` (its whole length at the time of the call; `len`
    /// must be non-zero) and registers the mapping with the SIGBUS guard.
    ///
    /// # Errors
    /// [`MapError::Io`] if `mmap` fails, [`MapError::Unprotected`] if the mapping
    /// cannot be guarded.
    pub fn map(file: &File, len: usize) -> Result<MappedFile, MapError> {
        // SAFETY: the mapping is read-only. Its bytes can change under us when the
        // file is written, which Rust's aliasing rules do not expect; we only ever
        // copy out of it (into response buffers and the hasher), never hand out
        // references whose contents the program relies on being stable, and a
        // truncation (SIGBUS on access) is caught by the guard below and surfaces as
        // the poison flag. This is the standard caveat of memmap2.
        let map =
            unsafe { memmap2::MmapOptions::new().len(len).map(file) }.map_err(MapError::Io)?;
        // No read-around on a fault: every range the crate reads is brought in
        // explicitly first (`MappingWatch::populate`, `read_in`), in large requests.
        // A stray fault (a page evicted between that and the copy) then reads one page,
        // not `read_ahead_kb` around it (8 MiB on some disks: 125 ms at 64 MB/s, on an
        // async worker). Unlike `MADV_SEQUENTIAL`, this drops no page other readers use.
        #[cfg(unix)]
        let _ = map.advise(memmap2::Advice::Random);
        let poison = Arc::new(AtomicBool::new(false));
        // SAFETY: `map` is a live read-only file mapping of `map.len()` bytes, and the
        // registration is stored beside it and dropped first (see `Drop`), before the
        // mapping is unmapped.
        let registration =
            unsafe { register(map.as_ptr(), map.len(), &poison) }.ok_or(MapError::Unprotected)?;
        Ok(MappedFile {
            registration: Some(registration),
            map,
            poison,
        })
    }

    /// The flag the SIGBUS guard sets when a page of this mapping had to be replaced
    /// by zeros because the file shrank.
    pub fn poison_flag(&self) -> &Arc<AtomicBool> {
        &self.poison
    }
}

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
    use std::os::fd::AsRawFd;
    // SAFETY: `lseek` on a descriptor this function borrows open for its whole call; it
    // moves only the descriptor's own offset, which no reader of the crate uses (reads
    // go through the mapping, or `pread` at explicit offsets).
    unsafe { libc::lseek(file.as_raw_fd(), 0, libc::SEEK_DATA) };
}

/// Elsewhere the settle rule is the only guard against a write under way.
#[cfg(not(target_os = "linux"))]
pub(crate) fn wait_for_writes(_file: &File) {}

/// The calling thread's nice value (Linux keeps it per thread; 0 elsewhere).
#[cfg(target_os = "linux")]
pub(crate) fn this_threads_nice() -> i32 {
    // SAFETY: `getpriority(PRIO_PROCESS, 0)` reads the calling thread's nice value and
    // touches no memory of ours. Its -1 on error is also a valid value; the callers
    // only derive a lower priority from it.
    unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }
}

/// Elsewhere: 0.
#[cfg(not(target_os = "linux"))]
pub(crate) fn this_threads_nice() -> i32 {
    0
}

/// Sets the calling thread's nice value (Linux keeps it per thread; the kernel clamps
/// it to -20..=19, and raising a priority needs privilege). Failure is ignored: the
/// thread keeps the priority it had. See `engine::background` for why.
#[cfg(target_os = "linux")]
pub(crate) fn set_this_threads_nice(nice: i32) {
    // SAFETY: `setpriority(PRIO_PROCESS, 0, ..)` changes only the calling thread's nice
    // value and touches no memory of ours.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
}

/// Elsewhere threads keep their priority.
#[cfg(not(target_os = "linux"))]
pub(crate) fn set_this_threads_nice(_nice: i32) {}

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
                // copy as if resident, which is what every copy did before this test.
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

impl AsRef<[u8]> for MappedFile {
    fn as_ref(&self) -> &[u8] {
        &self.map
    }
}

impl Drop for MappedFile {
    fn drop(&mut self) {
        // Retract the registration before `map` is unmapped (fields drop after this),
        // so the handler never attributes a fault at a reused address to us.
        self.registration.take();
    }
}

/// The number of mappings that can be protected at once.
pub(crate) const SLOTS: usize = 16_384;

/// One registry record. `start == 0` marks an empty slot.
struct GuardSlot {
    /// Odd while the slot's writer changes the fields below, even otherwise; it only
    /// grows, so a reader that sees the same even value before and after reading the
    /// fields read one record whole.
    seq: AtomicUsize,
    start: AtomicUsize,
    len: AtomicUsize,
    flag: AtomicPtr<AtomicBool>,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: GuardSlot = GuardSlot {
    seq: AtomicUsize::new(0),
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    flag: AtomicPtr::new(std::ptr::null_mut()),
};

impl GuardSlot {
    /// Records a mapping in this slot. Only the holder of the slot's claim writes it.
    fn publish(&self, start: usize, len: usize, flag: *const AtomicBool) {
        self.write(start, len, flag.cast_mut());
    }

    /// Empties this slot. Only the holder of the slot's claim writes it.
    fn retract(&self) {
        self.write(0, 0, std::ptr::null_mut());
    }

    /// Replaces the record between two increments of `seq` (odd while it changes).
    /// Every access is `SeqCst`: a reader whose two loads of `seq` read the same
    /// even value read the fields between this write's closing increment and the
    /// next write's opening one, so all from one record.
    fn write(&self, start: usize, len: usize, flag: *mut AtomicBool) {
        self.seq.fetch_add(1, Ordering::SeqCst);
        self.start.store(start, Ordering::SeqCst);
        self.len.store(len, Ordering::SeqCst);
        self.flag.store(flag, Ordering::SeqCst);
        self.seq.fetch_add(1, Ordering::SeqCst);
    }
}

static REGISTRY: [GuardSlot; SLOTS] = [EMPTY; SLOTS];
/// Where the next free-slot search starts: after the slot claimed last, or at the
/// lowest slot released since. A release moves it back, so the slots in use stay at
/// the low end of the registry and only the pages those slots are on are ever written.
/// (Searching on from the last claim alone wrote every slot in turn: the registry's
/// 512 KiB, of `.bss`, became resident page by page over the first ~16 000 mappings,
/// anonymous memory that grew for the first minutes of a soak.)
static HINT: AtomicUsize = AtomicUsize::new(0);
/// Slots that are claimed (registered or being registered).
static CLAIMED: [AtomicBool; SLOTS] = [const { AtomicBool::new(false) }; SLOTS];
static PAGE_SIZE: AtomicUsize = AtomicUsize::new(4096);
static INSTALL: Once = Once::new();
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// A registered mapping; dropping it removes the record (do so before unmapping).
#[derive(Debug)]
pub(crate) struct Registration {
    slot: usize,
    _flag: Arc<AtomicBool>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        // Retract first: from here on the handler ignores this slot.
        REGISTRY[self.slot].retract();
        CLAIMED[self.slot].store(false, Ordering::Release);
        HINT.fetch_min(self.slot, Ordering::Relaxed);
    }
}

/// Records `[start, start + len)` as one of our mappings whose faults set `flag`.
/// Installs the handler on first use. Returns `None` if the handler could not be
/// installed or the registry is full.
///
/// # Safety
/// While the returned [`Registration`] lives, a SIGBUS at an address in the range makes
/// the handler map an anonymous zero page over that page (`MAP_FIXED`). The caller
/// promises that `[start, start + len)` is a live, read-only file mapping that stays
/// mapped until the registration is dropped (drop it before unmapping), so that the
/// only pages ever replaced are pages of that mapping whose file data is gone.
unsafe fn register(start: *const u8, len: usize, flag: &Arc<AtomicBool>) -> Option<Registration> {
    if !install() || len == 0 {
        return None;
    }
    let hint = HINT.load(Ordering::Relaxed);
    for i in 0..SLOTS {
        let idx = (hint + i) % SLOTS;
        if CLAIMED[idx]
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            REGISTRY[idx].publish(start as usize, len, Arc::as_ptr(flag));
            HINT.store(idx + 1, Ordering::Relaxed);
            return Some(Registration {
                slot: idx,
                _flag: Arc::clone(flag),
            });
        }
    }
    None
}

/// How many mappings are registered now (for tests and statistics).
pub(crate) fn registered() -> usize {
    CLAIMED.iter().filter(|c| c.load(Ordering::Relaxed)).count()
}

/// Installs the process-wide handler once; returns whether it is installed.
pub(crate) fn install() -> bool {
    INSTALL.call_once(|| {
        INSTALLED.store(imp::install(), Ordering::SeqCst);
    });
    INSTALLED.load(Ordering::SeqCst)
}

/// Where a test can release and reuse slot `slot` while [`lookup`] reads it (after
/// `start`, before the rest); nothing outside tests.
#[cfg(not(test))]
#[inline(always)]
fn between_reads(_slot: usize) {}

#[cfg(test)]
use tests::between_reads;

/// Finds the poison flag of the registered mapping holding `addr`. Only atomic loads,
/// no waiting: callable from the signal handler.
///
/// A slot counts only if its sequence counter read the same even value before and
/// after its fields (see [`GuardSlot::write`]); a slot being written, or rewritten
/// while it was read, is skipped. The faulting mapping's own slot is never skipped:
/// it stays published and unwritten while the faulting thread holds the mapping.
fn lookup(addr: usize) -> Option<&'static AtomicBool> {
    for (i, s) in REGISTRY.iter().enumerate() {
        let seq = s.seq.load(Ordering::SeqCst);
        if seq % 2 == 1 {
            continue;
        }
        let start = s.start.load(Ordering::SeqCst);
        if start == 0 || addr < start {
            continue;
        }
        between_reads(i);
        let len = s.len.load(Ordering::SeqCst);
        if addr - start >= len {
            continue;
        }
        let flag = s.flag.load(Ordering::SeqCst);
        if s.seq.load(Ordering::SeqCst) != seq || flag.is_null() {
            continue;
        }
        // SAFETY: `start`, `len` and `flag` are one published record (the counter did
        // not move while they were read), and its range holds `addr`: it is the record
        // of the mapping the faulting thread is reading (see the module's soundness
        // notes), whose `Registration` keeps the `Arc<AtomicBool>` that `flag` points
        // into alive for as long as the faulting thread holds the mapping.
        return Some(unsafe { &*flag });
    }
    None
}

#[cfg(unix)]
mod imp {
    use super::{lookup, PAGE_SIZE};
    use std::sync::atomic::Ordering;
    use std::sync::OnceLock;

    /// The handler that was installed before ours.
    static PREVIOUS: OnceLock<libc::sigaction> = OnceLock::new();

    pub(super) fn install() -> bool {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if page > 0 {
            PAGE_SIZE.store(page as usize, Ordering::SeqCst);
        }
        // SAFETY: `sigaction` is plain data; all-zero is a valid starting value.
        let mut new: libc::sigaction = unsafe { std::mem::zeroed() };
        new.sa_sigaction = handler as *const () as usize;
        new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        // SAFETY: `new.sa_mask` is a valid sigset_t to initialise.
        unsafe { libc::sigemptyset(&mut new.sa_mask) };
        // SAFETY: as above.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: both pointers are valid for the call; the handler is an
        // `extern "C" fn(c_int, *mut siginfo_t, *mut c_void)` as SA_SIGINFO requires.
        let rc = unsafe { libc::sigaction(libc::SIGBUS, &new, &mut old) };
        if rc != 0 {
            return false;
        }
        let _ = PREVIOUS.set(old);
        true
    }

    extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
        // SAFETY: the kernel passes a valid siginfo_t for SA_SIGINFO handlers.
        let addr = unsafe { (*info).si_addr() } as usize;
        if let Some(flag) = lookup(addr) {
            // Flag first: a reader that sees the zero page must see the flag.
            flag.store(true, Ordering::SeqCst);
            let page = PAGE_SIZE.load(Ordering::Relaxed);
            let base = addr & !(page - 1);
            // SAFETY: `base..base + page` lies inside one of our live mappings
            // (registered, so not yet unmapped); replacing that page with an anonymous
            // zero page is what makes the faulting copy able to finish. `mmap` is a
            // plain system call, safe in a signal handler.
            let p = unsafe {
                libc::mmap(
                    base as *mut libc::c_void,
                    page,
                    libc::PROT_READ,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                )
            };
            if p != libc::MAP_FAILED {
                return;
            }
        }
        chain(sig, info, ctx);
    }

    /// Not our fault: hand it to the previous handler, or die as we would have.
    fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
        match PREVIOUS.get() {
            Some(old) if old.sa_sigaction != libc::SIG_DFL && old.sa_sigaction != libc::SIG_IGN => {
                if old.sa_flags & libc::SA_SIGINFO != 0 {
                    // SAFETY: the previous handler was installed with SA_SIGINFO, so it
                    // has this signature.
                    let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                        unsafe { std::mem::transmute(old.sa_sigaction) };
                    f(sig, info, ctx);
                } else {
                    // SAFETY: without SA_SIGINFO the handler takes only the signal.
                    let f: extern "C" fn(libc::c_int) =
                        unsafe { std::mem::transmute(old.sa_sigaction) };
                    f(sig);
                }
            }
            _ => {
                // SAFETY: restoring the default action is a plain system call; on
                // return the faulting instruction faults again and the process
                // terminates with SIGBUS, as it would have without this handler.
                unsafe {
                    let mut dfl: libc::sigaction = std::mem::zeroed();
                    dfl.sa_sigaction = libc::SIG_DFL;
                    libc::sigaction(libc::SIGBUS, &dfl, std::ptr::null_mut());
                }
            }
        }
    }
}

#[cfg(not(unix))]
mod imp {
    pub(super) fn install() -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    thread_local! {
        /// Called by [`lookup`] on this thread after it has read a candidate slot's
        /// `start` and before it reads the rest, with the slot's index: where a slot
        /// released and taken again by another thread would change under it. A plain
        /// reference in a const-initialised cell, so reading it in the SIGBUS handler
        /// (other tests' real faults) neither allocates nor registers a destructor.
        static BETWEEN_READS: Cell<Option<&'static dyn Fn(usize)>> = const { Cell::new(None) };
    }

    pub(super) fn between_reads(slot: usize) {
        if let Some(hook) = BETWEEN_READS.with(Cell::get) {
            hook(slot);
        }
    }

    /// A slot released and taken by another mapping while `lookup` reads it: the
    /// lookup must not pair the old mapping's `start` with the new one's `len` and
    /// flag. Here the old record `[base, base + 100)` sits in a lower slot than the
    /// mapping that faulted, `[base + 200, base + 300)`; after `start` is read, the
    /// slot is retracted and republished for a 300-byte mapping elsewhere, whose
    /// length read against the old start covers the faulting address. The lookup must
    /// still find the faulting mapping's own flag.
    #[test]
    fn lookup_ignores_a_slot_reused_while_it_is_read() {
        let memory = vec![0u8; 300];
        let other = vec![0u8; 300];
        let base = memory.as_ptr() as usize;
        let dummy = Arc::new(AtomicBool::new(false));
        let old_flag = Arc::new(AtomicBool::new(false));
        let faulted_flag = Arc::new(AtomicBool::new(false));
        let new_flag = Arc::new(AtomicBool::new(false));
        // Two claimed slots, so that no other test writes them; the lower one gets the
        // record that is reused, the higher one the faulting mapping.
        // SAFETY: as in `register_and_lookup`; the records these registrations publish
        // are replaced below by records of `memory` and `other`, which outlive them and
        // are not file mappings either.
        let a = unsafe { register(memory.as_ptr(), 1, &dummy) }.expect("registered");
        // SAFETY: as above.
        let b = unsafe { register(memory.as_ptr(), 1, &dummy) }.expect("registered");
        let (low, high) = (a.slot.min(b.slot), a.slot.max(b.slot));
        REGISTRY[low].publish(base, 100, Arc::as_ptr(&old_flag));
        REGISTRY[high].publish(base + 200, 100, Arc::as_ptr(&faulted_flag));

        let reused = Arc::new(AtomicBool::new(false));
        let hook: &'static dyn Fn(usize) = Box::leak(Box::new({
            let reused = Arc::clone(&reused);
            let new_start = other.as_ptr() as usize;
            let new_flag = Arc::as_ptr(&new_flag);
            move |slot: usize| {
                if slot == low && !reused.swap(true, Ordering::SeqCst) {
                    REGISTRY[low].retract();
                    REGISTRY[low].publish(new_start, 300, new_flag);
                }
            }
        }));
        BETWEEN_READS.with(|h| h.set(Some(hook)));
        let found = lookup(base + 250);
        BETWEEN_READS.with(|h| h.set(None));

        assert!(
            reused.load(Ordering::SeqCst),
            "the slot was never reused mid-read"
        );
        let found = found.map(|f| f as *const AtomicBool);
        assert_eq!(
            found,
            Some(Arc::as_ptr(&faulted_flag)),
            "found {found:?}: the faulting mapping's flag is {:?}, the reused slot's new \
             mapping's {:?}",
            Arc::as_ptr(&faulted_flag),
            Arc::as_ptr(&new_flag),
        );
        // Declared after the flags and buffers, the registrations retract both slots
        // before those go, on unwinding too.
        drop((a, b));
    }

    #[test]
    fn register_and_lookup() {
        let flag = Arc::new(AtomicBool::new(false));
        let buf = [0u8; 100];
        // SAFETY: the buffer outlives the registration (dropped below) and is never
        // the site of a SIGBUS (it is not a file mapping), so no page of it is replaced.
        let reg = unsafe { register(buf.as_ptr(), buf.len(), &flag) }.expect("registered");
        let addr = buf.as_ptr() as usize;
        assert!(std::ptr::eq(lookup(addr + 99).unwrap(), &*flag));
        assert!(lookup(addr + 100).is_none_or(|f| !std::ptr::eq(f, &*flag)));
        drop(reg);
        assert!(lookup(addr).is_none());
    }

    /// Released slots are taken again: registering and dropping mappings one after
    /// another, many more than the registry has slots, uses a few slots at its low
    /// end (other tests register mappings meanwhile), not every slot in turn, whose
    /// pages would all become resident.
    #[test]
    fn released_slots_are_reused() {
        let flag = Arc::new(AtomicBool::new(false));
        let buf = [0u8; 100];
        let mut highest = 0;
        for _ in 0..2 * SLOTS {
            // SAFETY: as in `register_and_lookup`.
            let reg = unsafe { register(buf.as_ptr(), buf.len(), &flag) }.expect("registered");
            highest = highest.max(reg.slot);
            drop(reg);
        }
        assert!(highest < SLOTS / 8, "slot {highest} was used");
    }
}

#[cfg(all(test, unix))]
mod truncation_tests {
    use super::*;
    use std::io::Write;

    /// The guard in action: a 1 MiB mapping of a file truncated to 4 KiB is read in
    /// full without the process dying; the bytes past the new end read as zeros and
    /// the poison flag is set.
    #[test]
    fn read_past_truncated_end_survives_and_poisons() {
        let dir = std::env::temp_dir().join(format!("rocket-mmap-sigbus-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        let mut f = File::create(&path).unwrap();
        f.write_all(&vec![7u8; 1 << 20]).unwrap();
        drop(f);
        let f = File::open(&path).unwrap();
        let m = MappedFile::map(&f, 1 << 20).unwrap();
        assert!(!m.poison_flag().load(Ordering::SeqCst));
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(4096)
            .unwrap();
        let mut copy = vec![0u8; 1 << 20];
        copy.copy_from_slice(m.as_ref());
        assert!(m.poison_flag().load(Ordering::SeqCst));
        assert!(copy[..4096].iter().all(|&b| b == 7));
        assert!(copy[4096..].iter().all(|&b| b == 0));
        drop(m);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Truncation inside the last page raises no SIGBUS: the sentinel notices it.
    #[test]
    fn truncation_inside_last_page_is_seen_by_the_sentinel() {
        let dir = std::env::temp_dir().join(format!("rocket-mmap-sentinel-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        std::fs::write(&path, vec![9u8; 10_000]).unwrap();
        let f = File::open(&path).unwrap();
        let m = MappedFile::map(&f, 10_000).unwrap();
        let poison = m.poison_flag().clone();
        let whole = bytes::Bytes::from_owner(m);
        let watch = MappingWatch::new(whole.clone(), poison);
        watch.verify_through(10_000);
        assert!(!watch.is_poisoned());
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(9_000)
            .unwrap();
        let tail = whole[8_192..].to_vec();
        assert!(
            tail[9_000 - 8_192..].iter().all(|&b| b == 0),
            "zeros, no fault"
        );
        watch.verify_through(10_000);
        assert!(watch.is_poisoned());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A chunk ending in the page that now holds the end of file: the next-page probe
    /// faults, so the zeros copied from that page are never sent as good bytes.
    #[test]
    fn next_page_probe_catches_truncation_mid_file() {
        let dir = std::env::temp_dir().join(format!("rocket-mmap-probe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        std::fs::write(&path, vec![1u8; 1 << 20]).unwrap();
        let f = File::open(&path).unwrap();
        let m = MappedFile::map(&f, 1 << 20).unwrap();
        let poison = m.poison_flag().clone();
        let watch = MappingWatch::new(bytes::Bytes::from_owner(m), poison);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(5_000)
            .unwrap();
        watch.verify_through(4_096 + 2_000); // a chunk ending at 6000, in page 1
        assert!(watch.is_poisoned());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

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

#[cfg(all(test, target_os = "linux"))]
mod priority_tests {
    /// The nice value of the calling thread, from /proc/thread-self/stat.
    fn nice() -> i64 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        fields[16].parse().unwrap() // field 19 of stat(5), counted after "(comm)"
    }

    #[test]
    fn sets_only_the_calling_thread() {
        let (before, after, started_by_it) = std::thread::spawn(|| {
            let before = super::this_threads_nice();
            assert_eq!(i64::from(before), nice());
            super::set_this_threads_nice((before + 10).min(19));
            let started_by_it = std::thread::spawn(nice).join().unwrap();
            (before, nice(), started_by_it)
        })
        .join()
        .unwrap();
        assert_eq!(after, i64::from((before + 10).min(19)));
        // A thread started by the lowered one inherits its value; the test thread
        // kept its own.
        assert_eq!(started_by_it, after);
        assert_eq!(nice(), i64::from(before));
    }
}
