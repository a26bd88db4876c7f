use super::*;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

fn body() -> SegmentBody {
    SegmentBody::new(vec![
        Bytes::from_static(b"abc"),
        Bytes::new(),
        Bytes::from_static(b"defg"),
        Bytes::from_static(b"h"),
    ])
}

#[tokio::test]
async fn reads_all_segments_in_order() {
    let mut b = body();
    assert_eq!(b.len(), 8);
    let mut out = Vec::new();
    b.read_to_end(&mut out).await.unwrap();
    assert_eq!(out, b"abcdefgh");
    assert_eq!(b.remaining(), 0);
}

#[tokio::test]
async fn small_reads_cross_segment_boundaries() {
    let mut b = body();
    let mut out = Vec::new();
    let mut chunk = [0u8; 3];
    loop {
        let n = b.read(&mut chunk).await.unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(out, b"abcdefgh");
}

#[tokio::test]
async fn seek_start_end_current() {
    let mut b = body();
    assert_eq!(b.seek(SeekFrom::End(0)).await.unwrap(), 8);
    assert_eq!(b.seek(SeekFrom::Start(4)).await.unwrap(), 4);
    let mut s = String::new();
    b.read_to_string(&mut s).await.unwrap();
    assert_eq!(s, "efgh");
    b.seek(SeekFrom::Start(2)).await.unwrap();
    assert_eq!(b.seek(SeekFrom::Current(1)).await.unwrap(), 3);
    let mut s = String::new();
    b.read_to_string(&mut s).await.unwrap();
    assert_eq!(s, "defgh");
    assert!(b.seek(SeekFrom::Current(-100)).await.is_err());
    assert_eq!(b.seek(SeekFrom::Start(100)).await.unwrap(), 8);
}

#[tokio::test]
async fn poisoned_body_fails_instead_of_returning_bytes() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let flag = Arc::new(AtomicBool::new(false));
    let whole = Bytes::from_static(b"abcdefgh");
    let watch = Arc::new(MappingWatch::new(whole.clone(), flag.clone()));
    let mut b = SegmentBody::new(vec![whole.slice(0..3), whole.slice(3..)]).with_watch(Some(watch));
    let mut chunk = [0u8; 4];
    assert_eq!(b.read(&mut chunk).await.unwrap(), 4);
    flag.store(true, Ordering::SeqCst);
    let err = b.read(&mut chunk).await.unwrap_err();
    assert!(err.get_ref().unwrap().is::<ContentChanged>());
    // read_to_end's contract: a failed read fills nothing (debug-asserted by tokio).
    let mut rest = Vec::new();
    assert!(b.read_to_end(&mut rest).await.is_err());
    assert!(rest.is_empty());
    // And stays failed: a later `Ok(0)` would look like a clean end of body.
    assert!(b.read(&mut chunk).await.is_err());
}

#[tokio::test]
async fn a_counted_body_reports_its_bytes_and_how_it_ended() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let cache = Cache::default();
    // Read to the end: completed.
    let mut out = Vec::new();
    body()
        .counted_in(&cache)
        .read_to_end(&mut out)
        .await
        .unwrap();
    let s = cache.stats();
    assert_eq!((s.body_bytes_sent, s.bodies_completed), (8, 1));
    assert_eq!(s.bodies_in_flight, 0);
    // Dropped after a read: the client went away.
    let mut b = body().counted_in(&cache);
    let mut chunk = [0u8; 3];
    assert_eq!(b.read(&mut chunk).await.unwrap(), 3);
    assert_eq!(cache.stats().bodies_in_flight, 1);
    drop(b);
    // Never read (a HEAD): nothing.
    drop(body().counted_in(&cache));
    // The mapping found truncated: cut, and the bytes of the failed read are not
    // counted as sent.
    let flag = Arc::new(AtomicBool::new(false));
    let whole = Bytes::from_static(b"abcdefgh");
    let watch = Arc::new(MappingWatch::new(whole.clone(), flag.clone()));
    let mut b = SegmentBody::single(whole)
        .with_watch(Some(watch))
        .counted_in(&cache);
    let mut chunk = [0u8; 4];
    assert_eq!(b.read(&mut chunk).await.unwrap(), 4);
    flag.store(true, Ordering::SeqCst);
    assert!(b.read(&mut chunk).await.is_err());
    drop(b);
    let s = cache.stats();
    assert_eq!(
        (s.cut_client_gone, s.cut_truncated, s.cut_file_changed),
        (1, 1, 0)
    );
    assert_eq!(s.bodies_completed, 1);
    assert_eq!(s.body_bytes_sent, 8 + 3 + 4);
    assert_eq!(s.bodies_in_flight, 0);
}

#[tokio::test]
async fn empty_body() {
    let mut b = SegmentBody::empty();
    assert!(b.is_empty());
    let mut out = Vec::new();
    assert_eq!(b.read_to_end(&mut out).await.unwrap(), 0);
}

/// Bodies over mappings whose pages are not in memory (`engine::fault_in`): faulted in
/// off the worker, part by part, and cut when a pending fault-in meets a truncation.
#[cfg(all(test, target_os = "linux"))]
mod fault_in_tests {
    use std::path::PathBuf;
    use std::sync::atomic::Ordering::Relaxed;
    use std::time::{Duration, Instant};

    use bytes::Bytes;
    use tokio::io::AsyncReadExt;

    use crate::engine::body::{ContentChanged, SegmentBody};
    use crate::engine::cache::Cache;
    use crate::engine::entry::Entry;
    use crate::engine::fault_in::WINDOW;

    const LEN: usize = 4 * WINDOW;

    /// A file of `LEN` patterned bytes in a directory of its own, removed on drop.
    struct File(PathBuf);

    impl File {
        fn new(name: &str) -> File {
            let dir = std::env::temp_dir().join(format!(
                "rocket-mmap-fault-in-{name}-{}",
                std::process::id()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join("f");
            std::fs::write(&path, pattern(LEN)).unwrap();
            // Clean pages only can be paged out.
            std::fs::File::open(&path).unwrap().sync_all().unwrap();
            File(path)
        }
    }

    impl Drop for File {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(self.0.parent().unwrap());
        }
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8 + 1).collect()
    }

    /// The file's entry, with its pages paged out as memory pressure would.
    async fn cold_entry(cache: &Cache, file: &File) -> std::sync::Arc<Entry> {
        let entry = cache.get(&file.0).await.unwrap();
        // Its background hash reads the whole file: let it end before paging out.
        assert!(entry.strong_etag().await.is_some());
        entry.watch().unwrap().page_out(&file.0);
        entry
    }

    fn body_of(cache: &Cache, entry: &Entry) -> SegmentBody {
        SegmentBody::single(entry.content().clone())
            .with_watch(entry.watch().cloned())
            .counted_in(cache)
    }

    /// The only worker is never blocked by a disk read: while a paged-out body waits for
    /// a (deliberately slow) fault-in, another task on the same single-threaded runtime
    /// reads an in-memory body and finishes; only then does the first fault-in end.
    #[tokio::test(flavor = "current_thread")]
    async fn a_paged_out_mapping_is_faulted_back_in_off_the_only_worker() {
        let file = File::new("worker");
        let cache = Cache::default();
        let entry = cold_entry(&cache, &file).await;
        *cache.pager().delay.lock().unwrap() = Duration::from_secs(1);
        let cold = tokio::spawn({
            let mut body = body_of(&cache, &entry);
            async move {
                let mut out = Vec::new();
                body.read_to_end(&mut out).await.map(|_| out)
            }
        });
        let hot = tokio::spawn(async {
            let mut out = Vec::new();
            SegmentBody::single(Bytes::from_static(b"hot"))
                .read_to_end(&mut out)
                .await
                .unwrap();
            out
        });
        assert_eq!(hot.await.unwrap(), b"hot");
        let counters = cache.counters();
        assert_eq!(
            counters.fault_ins.load(Relaxed),
            0,
            "the hot body waited for a fault-in"
        );
        let out = cold.await.unwrap().unwrap();
        assert!(out == pattern(LEN), "the faulted-in bytes are the file's");
        let stats = cache.stats();
        // The kernel's own readahead may have brought later windows in with the first.
        assert!(stats.fault_ins >= 1, "faulted in: {stats:?}");
        assert_eq!((stats.fault_ins_queued, stats.fault_ins_running), (0, 0));
        assert_eq!(stats.fault_in_wait.count, stats.fault_ins);
        assert_eq!(stats.bodies_completed, 1);
    }

    /// A multipart-like body (part headers, empty segments and slices far apart) over
    /// a paged-out mapping: every slice is faulted in before it is copied, and the body
    /// is exactly its segments.
    #[tokio::test(flavor = "current_thread")]
    async fn parts_of_a_paged_out_mapping_are_each_faulted_in() {
        let file = File::new("parts");
        let cache = Cache::default();
        let entry = cold_entry(&cache, &file).await;
        let content = entry.content();
        let segments = vec![
            Bytes::from_static(b"--head 1--"),
            content.slice(100..WINDOW + 100),
            Bytes::new(),
            Bytes::from_static(b"--head 2--"),
            content.slice(3 * WINDOW + 7..3 * WINDOW + 9_000),
        ];
        // From the pattern, not the segments: reading those would fault them in.
        let whole = pattern(LEN);
        let expected = [
            &b"--head 1--"[..],
            &whole[100..WINDOW + 100],
            b"--head 2--",
            &whole[3 * WINDOW + 7..3 * WINDOW + 9_000],
        ]
        .concat();
        let mut body = SegmentBody::new(segments)
            .with_watch(entry.watch().cloned())
            .counted_in(&cache);
        let mut out = Vec::new();
        body.read_to_end(&mut out).await.unwrap();
        assert!(out == expected);
        // The first slice at least; the kernel's readahead (the disk's read_ahead_kb,
        // 8 MiB on this machine's) may have brought the second in with it.
        assert!(cache.stats().fault_ins >= 1, "{:?}", cache.stats());
    }

    /// A resident mapping is copied at once: no fault-in, one residency test per
    /// window.
    #[tokio::test]
    async fn a_resident_mapping_needs_no_fault_in() {
        let file = File::new("resident");
        let cache = Cache::default();
        let entry = cache.get(&file.0).await.unwrap();
        let mut out = Vec::new();
        body_of(&cache, &entry).read_to_end(&mut out).await.unwrap();
        assert!(out == pattern(LEN));
        assert!(body_of(&cache, &entry).is_resident());
        assert_eq!(cache.stats().fault_ins, 0);
    }

    /// Truncation while a fault-in is pending: the fault-in meets the new end of file
    /// (an error, not SIGBUS), the body is cut after a prefix of correct bytes, and the
    /// cache maps the new, shorter file.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn truncation_while_a_fault_in_is_pending_cuts_the_body() {
        let file = File::new("truncate");
        let cache = Cache::default();
        let entry = cold_entry(&cache, &file).await;
        *cache.pager().delay.lock().unwrap() = Duration::from_secs(1);
        let mut body = body_of(&cache, &entry);
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut chunk = vec![0u8; 64 << 10];
            loop {
                match body.read(&mut chunk).await {
                    Ok(0) => return (got, None),
                    Ok(n) => got.extend_from_slice(&chunk[..n]),
                    Err(e) => return (got, Some(e)),
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        while cache.counters().fault_ins_running.load(Relaxed) == 0 {
            assert!(Instant::now() < deadline, "no fault-in started");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        std::fs::OpenOptions::new()
            .write(true)
            .open(&file.0)
            .unwrap()
            .set_len(4096)
            .unwrap();
        let (got, err) = reader.await.unwrap();
        let err = err.expect("the body was cut");
        assert!(err.get_ref().unwrap().is::<ContentChanged>());
        assert!(got.len() < LEN);
        assert!(
            got == pattern(LEN)[..got.len()],
            "a prefix of correct bytes"
        );
        assert!(entry.is_poisoned());
        assert_eq!(cache.stats().cut_truncated, 1);
        let again = cache.get(&file.0).await.unwrap();
        assert_eq!(again.len(), 4096);
    }
}
