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
