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

/// How many mappings are registered now.
#[cfg(test)]
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

mod watch;
pub use watch::MappingWatch;
pub(crate) use watch::{page_size, read_in, Truncated};

#[cfg(test)]
mod tests;
