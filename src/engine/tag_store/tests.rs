//! The store's tests: restarts, merges, rewrites, pruning and compaction, damaged and
//! foreign files, locks, versions, full disks.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use redb::{Database, ReadableDatabase, TableDefinition, TableError};

use super::record::{META, SCHEMA_KEY, SCHEMA_VERSION, TAGS};
use super::*;
#[cfg(feature = "digest")]
use crate::engine::entry::Entry;
use crate::engine::test_support::TempDir;

impl TempDir {
    fn store(&self) -> PathBuf {
        self.0.join("state/tags.redb")
    }
}

/// The fingerprint of a version no file has (inode `ino` of device 7): for filling a
/// store with entries.
fn made_up(ino: u64) -> Fingerprint {
    Fingerprint {
        dev: 7,
        ino,
        size: ino,
        mtime_ns: 1,
        ctime_ns: 1,
    }
}

fn fingerprint(path: &Path) -> Fingerprint {
    Fingerprint::of(&std::fs::metadata(path).unwrap())
}

fn sha256(fill: u8) -> ReprDigest {
    ReprDigest::from_stored(DigestAlgorithm::Sha256, &[fill; 32]).unwrap()
}

fn sha512(fill: u8) -> ReprDigest {
    ReprDigest::from_stored(DigestAlgorithm::Sha512, &[fill; 64]).unwrap()
}

/// Records `path` as it is now, with its content tag.
fn record(store: &TagStore, path: &Path, digests: &[&ReprDigest]) -> (Fingerprint, EntityTag) {
    let fp = fingerprint(path);
    let etag = EntityTag::from_content(&std::fs::read(path).unwrap());
    store.record(&fp, path, &etag, digests);
    (fp, etag)
}

/// Records what `entry` knows of its version, as the load does through the tag memo:
/// its ETag and every digest computed so far.
#[cfg(feature = "digest")]
fn record_entry(store: &TagStore, fp: &Fingerprint, path: &Path, entry: &Entry) {
    let etag = entry.etag().expect("a tag");
    let digests: Vec<&ReprDigest> = DigestAlgorithm::ALL
        .into_iter()
        .filter_map(|a| entry.ready_digest(a))
        .collect();
    store.record(fp, path, etag, &digests);
}

/// The files in `dir` whose name starts with `prefix`.
fn siblings(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn a_restart_reuses_tags() {
    let d = TempDir::new("restart");
    let a = d.write("a.bin", b"the content of a");
    let (s256, s512) = (sha256(1), sha512(2));
    let store = TagStore::open(&d.store()).unwrap();
    assert!(store.moved_aside().is_none());
    let (fp, etag) = record(&store, &a, &[&s256, &s512]);
    let want = StoredTags {
        etag: etag.clone(),
        digests: vec![s256.clone(), s512.clone()],
    };
    // Seen while still queued, and after the commit.
    assert_eq!(store.lookup(&fp), Some(want.clone()));
    store.flush();
    assert_eq!(store.lookup(&fp), Some(want.clone()));
    assert_eq!(store.stats().written, 1);
    drop(store);

    let store = TagStore::open(&d.store()).unwrap();
    store.flush();
    let got = store.lookup(&fp).unwrap();
    assert_eq!(got, want);
    assert!(got.etag.strong_eq(&etag) && got.etag.to_string() == etag.to_string());
    assert_eq!(got.digests[0].repr_digest_value(), s256.repr_digest_value());
    assert_eq!(got.digests[1].digest_value(), s512.digest_value());
    let stats = store.stats();
    assert_eq!(
        (stats.hits, stats.misses, stats.errors, stats.pruned),
        (1, 0, 0, 0)
    );
}

/// An entry's tag and the digests it has computed, as the load would record them.
#[cfg(feature = "digest")]
#[test]
fn an_entry_is_recorded_with_its_digests() {
    let d = TempDir::new("entry");
    let a = d.write("a.bin", b"entry content");
    let entry = Entry::from_bytes(std::fs::read(&a).unwrap(), "application/octet-stream");
    let sha = entry
        .digest_blocking(DigestAlgorithm::Sha512)
        .unwrap()
        .clone();
    let store = TagStore::open(&d.store()).unwrap();
    record_entry(&store, &fingerprint(&a), &a, &entry);
    drop(store);
    let store = TagStore::open(&d.store()).unwrap();
    let got = store.lookup(&fingerprint(&a)).unwrap();
    assert_eq!(Some(&got.etag), entry.etag());
    assert_eq!(got.digests, [sha]);
}

#[test]
fn digests_recorded_later_add_up() {
    let d = TempDir::new("merge");
    let a = d.write("a.bin", b"aaaa");
    let store = TagStore::open(&d.store()).unwrap();
    let (fp, etag) = record(&store, &a, &[]);
    store.flush();
    record(&store, &a, &[&sha512(9)]);
    record(&store, &a, &[&sha256(8)]); // Queued together with the SHA-512 one.
    store.flush();
    record(&store, &a, &[]); // A later record without digests loses none.
    drop(store);
    let store = TagStore::open(&d.store()).unwrap();
    let got = store.lookup(&fp).unwrap();
    assert_eq!(got.etag, etag);
    let mut algorithms: Vec<_> = got.digests.iter().map(|d| d.algorithm()).collect();
    algorithms.sort_by_key(|a| a.index());
    assert_eq!(algorithms, DigestAlgorithm::ALL);
}

#[test]
fn a_rewrite_that_restores_size_and_mtime_misses() {
    let d = TempDir::new("rewrite");
    let a = d.write("a.bin", b"version one");
    let store = TagStore::open(&d.store()).unwrap();
    let (old_fp, old_tag) = record(&store, &a, &[&sha256(1)]);
    store.flush();
    let mtime = std::fs::metadata(&a).unwrap().modified().unwrap();
    std::thread::sleep(Duration::from_millis(20)); // Past a coarse clock tick.
    std::fs::write(&a, b"version two").unwrap(); // Same size.
    std::fs::File::options()
        .write(true)
        .open(&a)
        .unwrap()
        .set_modified(mtime) // `touch -d` with the old time.
        .unwrap();
    let new_fp = fingerprint(&a);
    assert_eq!(
        (new_fp.ino, new_fp.size, new_fp.mtime_ns),
        (old_fp.ino, old_fp.size, old_fp.mtime_ns)
    );
    assert_ne!(new_fp.ctime_ns, old_fp.ctime_ns);
    assert_eq!(store.lookup(&new_fp), None);
    assert_eq!(store.lookup(&old_fp).unwrap().etag, old_tag);

    // The new version replaces the old one: one entry per inode.
    let (_, new_tag) = record(&store, &a, &[]);
    assert_ne!(new_tag, old_tag);
    store.flush();
    assert_eq!(store.lookup(&old_fp), None);
    assert_eq!(store.lookup(&new_fp).unwrap().etag, new_tag);
}

#[test]
fn entries_of_gone_or_changed_files_are_pruned_at_open() {
    let d = TempDir::new("prune");
    let kept = d.write("kept", b"kept");
    let gone = d.write("gone", b"gone");
    let changed = d.write("changed", b"changed");
    let store = TagStore::open(&d.store()).unwrap();
    let (kept_fp, _) = record(&store, &kept, &[]);
    let (gone_fp, _) = record(&store, &gone, &[]);
    let (changed_fp, _) = record(&store, &changed, &[]);
    drop(store);
    std::fs::remove_file(&gone).unwrap();
    // Replaced by rename: a new inode, so recording it would not remove the old one.
    let tmp = d.write("changed.tmp", b"CHANGED");
    std::fs::rename(tmp, &changed).unwrap();

    let store = TagStore::open(&d.store()).unwrap();
    store.flush();
    assert_eq!(store.stats().pruned, 2);
    assert!(store.lookup(&kept_fp).is_some());
    assert_eq!(store.lookup(&gone_fp), None);
    assert_eq!(store.lookup(&changed_fp), None);
}

/// Waits until `done` holds, for at most ten seconds.
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A store running for long: passes after the one at open prune what went stale
/// since, in steps (here of two entries), while records go on being committed.
#[test]
fn entries_are_pruned_while_the_store_runs() {
    let d = TempDir::new("prune-periodic");
    let files: Vec<PathBuf> = (0..5)
        .map(|i| d.write(&format!("f{i}"), format!("content {i}").as_bytes()))
        .collect();
    let tuning = Tuning {
        prune_every: Duration::from_millis(100),
        prune_batch: 2,
        ..Tuning::default()
    };
    let store = TagStore::open_tuned(&d.store(), tuning).unwrap();
    let fps: Vec<Fingerprint> = files.iter().map(|f| record(&store, f, &[]).0).collect();
    store.flush();
    assert_eq!(store.stats().pruned, 0);
    for f in &files[..3] {
        std::fs::remove_file(f).unwrap();
    }
    eventually("three entries pruned", || store.stats().pruned == 3);
    for (i, fp) in fps.iter().enumerate() {
        assert_eq!(store.lookup(fp).is_some(), i >= 3, "f{i}");
    }
    // Records made between passes are committed as usual.
    let late = d.write("late", b"late");
    let (late_fp, _) = record(&store, &late, &[]);
    store.flush();
    assert_eq!(store.stats().written, 6);
    std::fs::remove_file(&late).unwrap();
    eventually("the late entry pruned", || store.stats().pruned == 4);
    assert_eq!(store.lookup(&late_fp), None);
}

/// A pass that leaves most of the file free compacts it, and the entries kept are
/// still answered; a file mostly in use, or with little free, is left as it is.
#[test]
fn a_mostly_free_store_is_compacted_after_a_pass() {
    let d = TempDir::new("compact");
    let kept = d.write("kept", b"kept");
    let tuning = Tuning {
        compact_min_free: 2 << 20,
        ..Tuning::default()
    };
    let len = || std::fs::metadata(d.store()).unwrap().len();
    let store = TagStore::open_tuned(&d.store(), tuning).unwrap();
    store.flush();
    // A new store is a 1 MiB file with a few pages in use: not worth compacting.
    assert_eq!(store.stats().compactions, 0);
    let (kept_fp, kept_tag) = record(&store, &kept, &[&sha512(1)]);
    let (long, etag) = (
        d.0.join("gone-".repeat(40)),
        EntityTag::from_content(b"gone"),
    );
    for i in 0..20_000u64 {
        let fp = made_up(i);
        store.record(&fp, &long.join(i.to_string()), &etag, &[&sha512(2)]);
    }
    drop(store);
    let full = len();

    let store = TagStore::open_tuned(&d.store(), tuning).unwrap();
    store.flush();
    let stats = store.stats();
    assert_eq!((stats.pruned, stats.compactions), (20_000, 1), "{stats:?}");
    let compacted = len();
    assert!(compacted * 4 < full, "{full} bytes, {compacted} compacted");
    assert_eq!(store.lookup(&kept_fp).unwrap().etag, kept_tag);
    drop(store);

    let store = TagStore::open_tuned(&d.store(), tuning).unwrap();
    store.flush();
    assert_eq!(store.stats().compactions, 0);
    assert_eq!(store.lookup(&kept_fp).unwrap().etag, kept_tag);
    eprintln!("{full} bytes with 20,001 entries, {compacted} with one, compacted");
}

#[test]
fn a_corrupt_or_foreign_store_is_moved_aside_and_rebuilt() {
    let d = TempDir::new("corrupt");
    let a = d.write("a.bin", b"aaaa");
    let path = d.store();
    let valid = {
        let store = TagStore::open(&path).unwrap();
        record(&store, &a, &[&sha256(3)]);
        drop(store);
        std::fs::read(&path).unwrap()
    };
    let foreign = {
        let other = d.0.join("other.redb");
        let db = Database::create(&other).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(TableDefinition::<u64, u64>::new("other"))
            .unwrap()
            .insert(1, 2)
            .unwrap();
        txn.commit().unwrap();
        drop(db);
        std::fs::read(&other).unwrap()
    };
    let garbage: Vec<u8> = (0..20_000u32).map(|i| (i * 7 + 13) as u8).collect();
    let cases: [(&str, &[u8]); 5] = [
        ("garbage", &garbage),
        ("truncated to half", &valid[..valid.len() / 2]),
        ("truncated to 5 bytes", &valid[..5]),
        // Both commit slots (bytes 64 to 320 of redb's header): with one intact,
        // redb rightly opens the last commit it holds.
        (
            "its header torn",
            &[&valid[..64], &[0xA5; 256][..], &valid[320..]].concat(),
        ),
        ("another program's redb file", &foreign),
    ];
    for (what, bytes) in cases {
        std::fs::write(&path, bytes).unwrap();
        let store = TagStore::open(&path).unwrap_or_else(|e| panic!("{what}: {e}"));
        let (aside, why) = store
            .moved_aside()
            .unwrap_or_else(|| panic!("{what}: trusted"));
        // Kept for a look, never deleted (redb may have stamped its header first).
        let kept = std::fs::read(aside).unwrap();
        assert_eq!(kept.len(), bytes.len(), "{what}: {why}");
        if what == "garbage" {
            assert!(kept == bytes, "{what}: changed");
        }
        std::fs::remove_file(aside).unwrap();
        assert_eq!(store.lookup(&fingerprint(&a)), None, "{what}");
        // The new store works.
        let (fp, etag) = record(&store, &a, &[]);
        drop(store);
        let store = TagStore::open(&path).unwrap();
        assert!(store.moved_aside().is_none(), "{what}");
        assert_eq!(store.lookup(&fp).unwrap().etag, etag, "{what}");
    }
    assert!(siblings(&d.0.join("state"), "tags.redb.corrupt").is_empty());
}

/// Whatever byte of the file is damaged, a lookup answers the recorded tags or
/// nothing: never other tags.
#[test]
fn a_damaged_byte_never_yields_other_tags() {
    let d = TempDir::new("flip");
    let files: Vec<PathBuf> = (0..40)
        .map(|i| d.write(&format!("f{i}"), format!("content {i}").as_bytes()))
        .collect();
    let path = d.store();
    let recorded: Vec<(Fingerprint, EntityTag)> = {
        let store = TagStore::open(&path).unwrap();
        let r = files
            .iter()
            .map(|f| record(&store, f, &[&sha256(5)]))
            .collect();
        drop(store);
        r
    };
    let valid = std::fs::read(&path).unwrap();
    // Where the data is: the file's non-zero bytes (redb preallocates zeros).
    let used: Vec<usize> = (0..valid.len()).filter(|&i| valid[i] != 0).collect();
    let step = (used.len() / 60).max(1);
    let (mut served, mut refused) = (0, 0);
    for &at in used.iter().step_by(step) {
        let mut damaged = valid.clone();
        damaged[at] ^= 0x5A;
        std::fs::write(&path, &damaged).unwrap();
        let store = TagStore::open(&path).unwrap();
        if let Some((aside, _)) = store.moved_aside() {
            std::fs::remove_file(aside).unwrap();
        }
        for (fp, etag) in &recorded {
            match store.lookup(fp) {
                Some(t) => {
                    assert_eq!(&t.etag, etag, "byte {at} damaged");
                    assert_eq!(t.digests, [sha256(5)], "byte {at} damaged");
                    served += 1;
                }
                None => refused += 1,
            }
        }
    }
    assert!(refused > 0, "no damage was ever detected ({served} served)");
}

#[test]
fn a_second_writer_is_refused_with_locked() {
    let d = TempDir::new("locked");
    let first = TagStore::open(&d.store()).unwrap();
    let e = TagStore::open(&d.store()).unwrap_err();
    assert!(matches!(e, TagStoreError::Locked { .. }), "{e:?}");
    assert_eq!(e.path(), d.store());
    assert!(e.to_string().contains("open in another process"), "{e}");
    // The refused open changed nothing; once the first is closed, it opens.
    drop(first);
    let again = TagStore::open(&d.store()).unwrap();
    assert!(again.moved_aside().is_none());
}

/// Across processes: util-linux's `flock` (Debian's essential util-linux) sees
/// the store's lock, and a store locked by another process is refused.
#[test]
fn another_process_sees_the_lock_and_is_seen() {
    let d = TempDir::new("locked-process");
    let flock = |args: &[&str]| {
        std::process::Command::new("flock")
            .args(["--nonblock", "--conflict-exit-code", "75"])
            .arg(d.store())
            .args(args)
            .spawn()
            .expect("flock (util-linux)")
    };
    let store = TagStore::open(&d.store()).unwrap();
    assert_eq!(flock(&["true"]).wait().unwrap().code(), Some(75));
    drop(store);
    assert_eq!(flock(&["true"]).wait().unwrap().code(), Some(0));

    // The lock is taken on a descriptor of `sh`, which says so once `flock` (its
    // child, which shares the descriptor) has exited, and then becomes `sleep`:
    // from that line on, the lock lives and dies with this one process.
    let mut holder = std::process::Command::new("sh")
        .args([
            "-c",
            "exec 9<>\"$0\" && flock 9 && echo locked && exec sleep 30",
        ])
        .arg(d.store())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    io::BufRead::read_line(
        &mut io::BufReader::new(holder.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line, "locked\n");
    let e = TagStore::open(&d.store()).unwrap_err();
    assert!(matches!(e, TagStoreError::Locked { .. }), "{e:?}");
    holder.kill().unwrap();
    holder.wait().unwrap();
    if let Err(e) = TagStore::open(&d.store()) {
        panic!("after the holder's death: {e:?}");
    }
}

fn set_schema(path: &Path, version: u64) {
    let db = Database::open(path).unwrap();
    let txn = db.begin_write().unwrap();
    txn.open_table(META)
        .unwrap()
        .insert(SCHEMA_KEY, version)
        .unwrap();
    txn.commit().unwrap();
}

fn schema_and_entries(path: &Path) -> (Option<u64>, u64) {
    use redb::ReadableTableMetadata;
    let db = Database::open(path).unwrap();
    let txn = db.begin_read().unwrap();
    let schema = txn
        .open_table(META)
        .unwrap()
        .get(SCHEMA_KEY)
        .unwrap()
        .map(|v| v.value());
    let entries = match txn.open_table(TAGS) {
        Ok(t) => t.len().unwrap(),
        Err(TableError::TableDoesNotExist(_)) => 0,
        Err(e) => panic!("{e}"),
    };
    (schema, entries)
}

#[test]
fn a_store_of_a_newer_schema_is_refused_and_left_alone() {
    let d = TempDir::new("newer");
    let a = d.write("a.bin", b"aaaa");
    drop({
        let store = TagStore::open(&d.store()).unwrap();
        record(&store, &a, &[]);
        store
    });
    let newer = SCHEMA_VERSION + 1;
    set_schema(&d.store(), newer);
    let before = std::fs::read(d.store()).unwrap();
    let e = TagStore::open(&d.store()).unwrap_err();
    assert!(
        std::fs::read(d.store()).unwrap() == before,
        "the file was written to"
    );
    match &e {
        TagStoreError::NewerVersion {
            found, supported, ..
        } => assert_eq!((*found, *supported), (newer, SCHEMA_VERSION)),
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("newer rocket-mmap"), "{e}");
    assert_eq!(schema_and_entries(&d.store()), (Some(newer), 1));
    assert!(siblings(&d.0.join("state"), "tags.redb.corrupt").is_empty());

    // An older schema is only a cache: emptied and stamped anew.
    set_schema(&d.store(), 0);
    let store = TagStore::open(&d.store()).unwrap();
    assert_eq!(store.lookup(&fingerprint(&a)), None);
    drop(store);
    assert_eq!(schema_and_entries(&d.store()), (Some(SCHEMA_VERSION), 0));
}

#[test]
fn an_unusable_path_is_an_io_error() {
    let d = TempDir::new("io");
    let file = d.write("plain", b"not a directory");
    for path in [
        file.join("tags.redb"),
        file.join("sub/tags.redb"),
        d.0.clone(),
    ] {
        let e = TagStore::open(&path).unwrap_err();
        assert!(
            matches!(e, TagStoreError::Io { .. }),
            "{}: {e:?}",
            path.display()
        );
        assert!(e.to_string().contains(&*path.to_string_lossy()), "{e}");
    }
}

/// A tmpfs of `size` mounted at a new directory, unmounted on drop.
struct SmallDisk(TempDir);

impl SmallDisk {
    fn mount(name: &str, size: &str) -> SmallDisk {
        let d = TempDir::new(name);
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&d.0)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount tmpfs (needs root)");
        SmallDisk(d)
    }

    /// Writes a file until the disk is full.
    fn fill(&self) {
        use std::io::Write;
        let mut f = File::create(self.0 .0.join("filler")).unwrap();
        let block = [0x55u8; 4096];
        loop {
            if let Err(e) = f.write_all(&block) {
                assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
                return;
            }
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(&self.0 .0)
            .status();
    }
}

/// A full disk: opening fails with a clear error; a store whose disk fills up
/// while it runs stops recording, and lookups go on answering.
#[test]
#[ignore = "needs root (mounts a small tmpfs)"]
fn a_full_disk_is_a_clear_error_and_never_a_failure_to_serve() {
    let disk = SmallDisk::mount("full", "4m");
    let dir = &disk.0 .0;
    let a = dir.join("a.bin");
    std::fs::write(&a, b"aaaa").unwrap();
    let store = TagStore::open(&dir.join("tags.redb")).unwrap();
    let (fp, etag) = record(&store, &a, &[]);
    store.flush();
    assert_eq!(store.stats().written, 1);
    disk.fill();

    let e = TagStore::open(&dir.join("other.redb")).unwrap_err();
    assert!(
        matches!(&e, TagStoreError::Io { source, .. } if source.raw_os_error() == Some(libc::ENOSPC)),
        "{e:?}"
    );
    assert!(e.to_string().contains("the disk is full"), "{e}");

    let long = dir.join("x".repeat(200));
    for i in 0..20_000u64 {
        let fp = made_up(i);
        store.record(&fp, &long, &etag, &[&sha512(1)]);
    }
    store.flush();
    let stats = store.stats();
    assert!(stats.dropped > 0, "{stats:?}");
    // What was committed before is still answered (or, if redb refuses to read
    // after the failed write, nothing): never an error to the caller.
    if let Some(t) = store.lookup(&fp) {
        assert_eq!(t.etag, etag);
    }
    // Later records are dropped at once.
    let before = store.stats().dropped;
    store.record(&fp, &a, &etag, &[]);
    assert_eq!(store.stats().dropped, before + 1);
    drop(store);
}
