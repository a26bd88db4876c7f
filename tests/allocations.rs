//! The zero-copy claim, measured: a counting global allocator shows that answering a
//! request — planning it and reading the whole body out through a reused chunk buffer,
//! as Rocket does — allocates a small number of bytes that does not grow with the
//! number of bytes sent.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

use rocket_mmap::cache::{respond, Entry, SegmentBody};
use rocket_mmap::semantics::decide::ServeRequest;
use rocket_mmap::semantics::precondition::Method;
use rocket_mmap::semantics::range::RangeLimits;
use tokio::io::ReadBuf;

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static BYTES: AtomicU64 = AtomicU64::new(0);
static CALLS: AtomicU64 = AtomicU64::new(0);
/// Tests in this file run one at a time: the counters are process-wide.
static SERIAL: Mutex<()> = Mutex::new(());

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
            CALLS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
            CALLS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Reads `body` to the end through one reused 64 KiB buffer (Rocket's chunk buffer is
/// allocated by Rocket, outside our code, so it is allocated before counting here).
fn drain(mut body: SegmentBody, chunk: &mut [u8]) -> u64 {
    let mut total = 0;
    loop {
        let mut buf = ReadBuf::new(chunk);
        let n = body.read_into(&mut buf).expect("read");
        if n == 0 {
            return total;
        }
        total += n as u64;
    }
}

/// (bytes allocated, allocation calls, body bytes) for one request.
fn measure(entry: &Entry, range: Option<&str>, chunk: &mut [u8]) -> (u64, u64, u64) {
    let mut req = ServeRequest::new(Method::Get);
    if let Some(r) = range {
        req = req.range(r);
    }
    let limits = RangeLimits::default();
    let now = SystemTime::now();
    BYTES.store(0, Ordering::SeqCst);
    CALLS.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    let reply = respond(entry, &req, &limits, now);
    let sent = drain(reply.body, chunk);
    COUNTING.store(false, Ordering::SeqCst);
    (
        BYTES.load(Ordering::SeqCst),
        CALLS.load(Ordering::SeqCst),
        sent,
    )
}

#[test]
fn single_range_allocation_is_independent_of_its_size() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let entry = Entry::from_bytes(vec![7u8; 64 << 20], "application/octet-stream");
    let mut chunk = vec![0u8; 64 << 10];
    let small = measure(&entry, Some("bytes=0-1023"), &mut chunk);
    let large = measure(
        &entry,
        Some(&format!("bytes=0-{}", (64 << 20) - 1)),
        &mut chunk,
    );
    let full = measure(&entry, None, &mut chunk);
    println!("1 KiB range: {small:?}; 64 MiB range: {large:?}; full 64 MiB: {full:?}");
    assert_eq!(small.2, 1024);
    assert_eq!(large.2, 64 << 20);
    assert_eq!(full.2, 64 << 20);
    // The segment list and the Content-Range string, whatever the size (the string's
    // growth depends on how many digits the numbers have, not on the bytes sent).
    for (what, (bytes, calls, _)) in [("1 KiB", small), ("64 MiB", large)] {
        assert!(bytes < 256, "{what} range allocated {bytes} bytes");
        assert!(calls <= 4, "{what} range made {calls} allocations");
    }
    assert!(
        large.0 <= small.0 + 64,
        "64× more content must not cost more allocation"
    );
    assert!(full.0 < 512, "full 64 MiB body allocated {} bytes", full.0);
}

#[test]
fn multipart_allocation_is_independent_of_part_sizes() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let entry = Entry::from_bytes(vec![9u8; 64 << 20], "application/octet-stream");
    let mut chunk = vec![0u8; 64 << 10];
    let small = measure(
        &entry,
        Some("bytes=0-9,1000000-1000009,2000000-2000009"),
        &mut chunk,
    );
    let large = measure(
        &entry,
        Some("bytes=0-9999999,20000000-29999999,40000000-49999999"),
        &mut chunk,
    );
    println!("3 tiny parts: {small:?}; 3 × 10 MB parts: {large:?}");
    assert!(large.2 > 30_000_000 && large.2 < 30_001_000);
    for (what, (bytes, calls, _)) in [("tiny", small), ("10 MB", large)] {
        assert!(bytes < 4096, "3 {what} parts allocated {bytes} bytes");
        assert!(calls <= 16, "3 {what} parts made {calls} allocations");
    }
    assert!(
        large.0 <= small.0 + 64,
        "larger parts must not cost more allocation"
    );
}
