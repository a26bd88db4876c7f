//! The tag store across real restarts of the binary, measured with the kernel's own
//! count of what the process read from storage (`read_bytes` of `/proc/PID/io`), with
//! the page cache dropped before each start (issue 21, "Tags that survive restarts").
//!
//! One test, four steps over one 64 MiB file of pseudo-random bytes:
//!
//! 1. The binary runs with `--tag-store STORE`; a GET loads the file and its tag is
//!    hashed in the background (a plain response carries no `ETag` until then), so
//!    HEAD is polled until one appears. The binary is stopped with SIGTERM (Rocket's
//!    graceful shutdown; dropping the store commits what is queued).
//! 2. Caches dropped, restart with the same store: the first HEAD of the file carries
//!    the same `ETag`, and the process read at most 1 MiB while answering it. A plain
//!    HEAD does not wait for a hash, so a tag on it came from the store. Only the HEAD
//!    is measured: a GET's body would read the file (that is serving, not tagging).
//!    Then `Range: bytes=0-99` gets 206 with the same tag and the right bytes, and an
//!    `If-Range` with the stored tag is honoured.
//! 3. `--warm` over the library, caches dropped: with the store that knows the file the
//!    start reads less than 4 MiB, and at most 1 MiB more than the start of step 2
//!    without `--warm`; with an empty store it reads the whole file (at least 64 MiB).
//!    That second start is the baseline that shows the first one's figure is not an
//!    artefact of the measurement (a file system that `drop_caches` does not evict).
//! 4. Negative control: the file rewritten with other bytes of the same size and its
//!    mtime restored (`touch -d`). Only the ctime tells, and the store must miss: the
//!    first HEAD carries no tag or another one, a range never carries the old tag (the
//!    new one once hashed), and an `If-Range` with the old tag gets the whole new file
//!    (200), never a 206.
//!
//! What `read_bytes` counts: every byte the process caused to be read from storage,
//! page faults included — of the served file, of the store, and of the binary's own
//! executable and libraries (dropping the caches evicts those too, and the debug binary
//! is about 140 MB). Each start is preceded by a read of the binary and of the shared
//! libraries it maps (as listed in `/proc/PID/maps` of the first start) into the page
//! cache, so that the figures count the library and the store, not code pages; the
//! figures of one start without that step are printed too (`--nocapture`). Measured
//! here (debug build): the first HEAD read 4-12 KiB; `--warm` over the known library
//! 1.3-1.5 MiB (a start without it 1.1-1.5 MiB; the store file is 1 MiB), 65.3 MiB with
//! an empty store; with the code evicted too, 27 MiB more at start and 7 MiB more on
//! the first HEAD, all of it the binary's own pages.
//!
//! Ignored by default: dropping the page cache needs root (`cargo test --test
//! tag_store_restart -- --ignored`). Run as another user it fails, never passes.

#[path = "common/binary.rs"]
mod binary;
mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use binary::Binary;
use common::{etag_of, pseudo_random, request_at, set_mtime, HttpResponse, TempDir};

/// The library's one file.
const SIZE: usize = 64 << 20;
const NAME: &str = "library.bin";
const MIB: u64 = 1 << 20;

/// The most the process may read to answer the first HEAD of a known file (issue 21).
const HEAD_READ_MAX: u64 = MIB;
/// The most a `--warm` start over a known library may read (the store and the
/// metadata of the library; the file's last page is read with `pread` at load).
const WARM_KNOWN_READ_MAX: u64 = 4 * MIB;

/// Held by each test for its whole run: they drop the machine's page cache and count
/// what their binaries read, so one must not drop the caches under the other.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn require_root() {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        panic!(
            "tag_store_restart needs root (it writes /proc/sys/vm/drop_caches); \
             run it as root: cargo test --test tag_store_restart -- --ignored"
        );
    }
}

/// Panics unless `dir` is on a file system backed by storage: tmpfs and ramfs keep
/// their pages through `drop_caches` and read nothing, so every figure would be 0.
fn require_storage(dir: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).expect("no NUL in a path");
    // SAFETY: statfs(2) with a NUL-terminated path and a zeroed struct it fills.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above; `c` and `fs` outlive the call.
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut fs) };
    assert_eq!(rc, 0, "statfs {}", dir.display());
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    const RAMFS_MAGIC: i64 = 0x8584_58f6;
    let kind = fs.f_type as i64;
    assert!(
        kind != TMPFS_MAGIC && kind != RAMFS_MAGIC,
        "{} is on tmpfs or ramfs, which drop_caches does not evict: set TMPDIR to a \
         directory on a disk",
        dir.display()
    );
}

/// `sync`, then drop the page cache, dentries and inodes.
fn drop_caches() {
    // SAFETY: sync(2) has no preconditions.
    unsafe { libc::sync() };
    std::fs::write("/proc/sys/vm/drop_caches", "3\n")
        .unwrap_or_else(|e| panic!("cannot write /proc/sys/vm/drop_caches: {e}"));
}

/// `read_bytes` of `/proc/PID/io`: bytes this process (all its threads, live or gone)
/// caused to be read from storage.
fn read_bytes(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io"))
        .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/io: {e}"));
    io.lines()
        .find_map(|l| l.strip_prefix("read_bytes:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no read_bytes in /proc/{pid}/io: {io}"))
}

/// The files the process maps from storage (its executable and shared libraries),
/// from `/proc/PID/maps`.
fn mapped_files(pid: u32) -> Vec<PathBuf> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/maps: {e}"));
    let mut files: Vec<PathBuf> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| p.starts_with('/'))
        .map(PathBuf::from)
        .collect();
    files.sort();
    files.dedup();
    files
}

/// Reads `files` (whole) into the page cache.
fn cache_files(files: &[PathBuf]) {
    for f in files {
        // A library mapped but since replaced, or the library file itself, may fail;
        // only the code matters here.
        let _ = std::fs::read(f);
    }
}

fn head(b: &Binary) -> HttpResponse {
    let r = request_at(b.addr(), "HEAD", &format!("/{NAME}"), &[]);
    assert_eq!(r.status, 200, "HEAD /{NAME}: {r:?}\n{}", b.output());
    r
}

fn range(b: &Binary, range: &str) -> HttpResponse {
    request_at(b.addr(), "GET", &format!("/{NAME}"), &[("Range", range)])
}

/// Polls HEAD (at most 30 s) until it carries an `ETag`.
fn wait_for_etag(b: &Binary) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(tag) = head(b).header("ETag") {
            return tag.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no ETag on HEAD /{NAME} within 30 s\n{}",
            b.output()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Drops the caches, puts the binary's code back in the page cache (when `code` is
/// given), and starts the binary on `dir` with `args`.
fn cold_start(dir: &Path, args: &[&str], code: Option<&[PathBuf]>) -> Binary {
    cold_start_env(dir, args, code, &[])
}

/// [`cold_start`] with extra environment variables.
fn cold_start_env(
    dir: &Path,
    args: &[&str],
    code: Option<&[PathBuf]>,
    env: &[(&str, &str)],
) -> Binary {
    drop_caches();
    if let Some(files) = code {
        cache_files(files);
    }
    let mut env = env.to_vec();
    env.push(("ROCKET_LOG_LEVEL", "off"));
    Binary::start(dir, args, &env)
}

/// Stops the binary with SIGTERM (Rocket's graceful shutdown) and checks it exited
/// cleanly, so that its tag store was dropped and committed.
fn stop(mut b: Binary) -> String {
    let status = b.terminate(Duration::from_secs(15));
    let out = b.output();
    assert!(status.success(), "exit {status}\n{out}");
    out
}

#[test]
#[ignore = "needs root: drops the page cache"]
fn a_restart_with_the_tag_store_tags_a_known_file_without_reading_it() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    require_root();
    let t0 = Instant::now();
    let lib = TempDir::new("tag-store-lib");
    let state = TempDir::new("tag-store-state");
    require_storage(lib.path());
    let store = state.join("tags.redb");
    let store_arg = store.to_str().expect("a UTF-8 temp path");
    let content = pseudo_random(21, SIZE);
    let file = lib.write(NAME, &content);
    let expected = etag_of(&content);
    let with_store = ["--tag-store", store_arg];

    // 1. Hash once, with the store.
    let b = Binary::start(lib.path(), &with_store, &[("ROCKET_LOG_LEVEL", "off")]);
    let code = mapped_files(b.pid());
    assert!(
        code.iter().any(|f| f.ends_with("rocket-mmap")),
        "the binary's own image is not among its mappings: {code:?}"
    );
    let first = request_at(b.addr(), "GET", &format!("/{NAME}"), &[]);
    assert_eq!(first.status, 200);
    assert_eq!(first.body.len(), SIZE);
    let tag = wait_for_etag(&b);
    assert_eq!(
        tag, expected,
        "the hashed tag is the CRC-64 tag of the content"
    );
    let out = stop(b);
    assert!(!out.contains("warning"), "{out}");
    let store_len = std::fs::metadata(&store)
        .unwrap_or_else(|e| panic!("the store was not created ({e}): {out}"))
        .len();
    eprintln!(
        "step 1: hashed and recorded {tag}, store {} KiB ({:?})",
        store_len / 1024,
        t0.elapsed()
    );

    // 2. Restart, caches dropped: the first HEAD carries the tag, reading <= 1 MiB.
    // Once without the binary's code in the page cache, for the figures only.
    let b = cold_start(lib.path(), &with_store, None);
    let before = read_bytes(b.pid());
    let r = head(&b);
    let head_uncached_code = read_bytes(b.pid()) - before;
    assert_eq!(
        r.header("ETag"),
        Some(tag.as_str()),
        "{r:?}\n{}",
        b.output()
    );
    eprintln!(
        "step 2 (code not cached): start read {} KiB, the first HEAD {} KiB",
        before / 1024,
        head_uncached_code / 1024
    );
    stop(b);
    // Then with the code cached: this one is asserted.
    let b = cold_start(lib.path(), &with_store, Some(&code));
    let start_read = read_bytes(b.pid());
    let r = head(&b);
    let head_read = read_bytes(b.pid()) - start_read;
    assert_eq!(
        r.header("ETag"),
        Some(tag.as_str()),
        "the first HEAD after a restart lacks the stored tag: {r:?}\n{}",
        b.output()
    );
    assert!(
        head_read <= HEAD_READ_MAX,
        "the first HEAD of a known file read {head_read} bytes (at most {HEAD_READ_MAX})"
    );
    let part = range(&b, "bytes=0-99");
    assert_eq!(part.status, 206, "{part:?}");
    assert_eq!(part.header("ETag"), Some(tag.as_str()));
    assert_eq!(part.body, content[..100]);
    let known = request_at(
        b.addr(),
        "GET",
        &format!("/{NAME}"),
        &[("Range", "bytes=100-199"), ("If-Range", &tag)],
    );
    assert_eq!(known.status, 206, "If-Range with the stored tag: {known:?}");
    assert_eq!(known.body, content[100..200]);
    eprintln!(
        "step 2: start read {} KiB, the first HEAD {} KiB ({:?})",
        start_read / 1024,
        head_read / 1024,
        t0.elapsed()
    );
    stop(b);

    // 3. `--warm` over the known library, then over the same library with an empty store.
    let warm_known = ["--warm", "--tag-store", store_arg];
    let b = cold_start(lib.path(), &warm_known, Some(&code));
    let known_read = read_bytes(b.pid());
    assert!(b.output().contains("warmed 1 files"), "{}", b.output());
    assert_eq!(head(&b).header("ETag"), Some(tag.as_str()));
    stop(b);
    let empty = state.join("empty.redb");
    let empty_arg = empty.to_str().expect("a UTF-8 temp path");
    let b = cold_start(
        lib.path(),
        &["--warm", "--tag-store", empty_arg],
        Some(&code),
    );
    let unknown_read = read_bytes(b.pid());
    assert!(b.output().contains("warmed 1 files"), "{}", b.output());
    assert_eq!(head(&b).header("ETag"), Some(tag.as_str()));
    stop(b);
    eprintln!(
        "step 3: --warm read {} KiB with the store that knows the file, {} KiB with an \
         empty one ({:?})",
        known_read / 1024,
        unknown_read / 1024,
        t0.elapsed()
    );
    assert!(
        unknown_read >= SIZE as u64,
        "--warm with an empty store read {unknown_read} bytes, less than the file: \
         the measurement does not see the file's reads"
    );
    // What a start without --warm read (the store, configuration, data pages of the
    // binary) is the floor; warming a known library adds at most the file's last page.
    assert!(
        known_read <= start_read + HEAD_READ_MAX,
        "--warm over a known library read {known_read} bytes, a start without --warm \
         {start_read}: warming read file content"
    );
    assert!(
        known_read < WARM_KNOWN_READ_MAX,
        "--warm over a known library read {known_read} bytes (less than \
         {WARM_KNOWN_READ_MAX} expected)"
    );

    // 4. A rewrite with the size and mtime restored: the store must miss.
    let mtime = std::fs::metadata(&file).unwrap().modified().unwrap();
    let rewritten = pseudo_random(22, SIZE);
    std::fs::write(&file, &rewritten).unwrap();
    set_mtime(&file, mtime);
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!((meta.len(), meta.modified().unwrap()), (SIZE as u64, mtime));
    let new_tag = etag_of(&rewritten);
    assert_ne!(new_tag, tag);
    std::thread::sleep(rocket_mmap::cache::SETTLE); // As a deployment would: settled.
    let b = cold_start(lib.path(), &with_store, Some(&code));
    let r = head(&b);
    assert_ne!(
        r.header("ETag"),
        Some(tag.as_str()),
        "a rewrite with size and mtime restored got the old version's tag: {r:?}"
    );
    // The rewrite is cold (caches dropped): its first range is answered at once,
    // without the tag (never with the old one); its hash then brings the new tag.
    let part = range(&b, "bytes=0-99");
    assert_eq!(part.status, 206, "{part:?}");
    assert_ne!(part.header("ETag"), Some(tag.as_str()), "{part:?}");
    assert_eq!(part.body, rewritten[..100]);
    assert_eq!(wait_for_etag(&b), new_tag);
    let stale = request_at(
        b.addr(),
        "GET",
        &format!("/{NAME}"),
        &[("Range", "bytes=0-99"), ("If-Range", &tag)],
    );
    assert_eq!(
        stale.status, 200,
        "If-Range with the old tag must not get a 206"
    );
    assert_eq!(stale.body.len(), SIZE);
    stop(b);
    eprintln!(
        "step 4: the rewrite got {:?} on its first HEAD, then {new_tag} ({:?})",
        r.header("ETag"),
        t0.elapsed()
    );
}

/// The most a restarted binary may read to answer its first request, a 1000-byte
/// `Range` with `If-Range` and a known tag: the part's page and the fault-in's
/// read-ahead window (1 MiB), never the whole file a hash would read.
const IF_RANGE_READ_MAX: u64 = 2 * MIB;

/// Issue 27: the binary keeps tags across restarts by default (a store under
/// `$XDG_CACHE_HOME/rocket-mmap/`), and a restarted binary answers an `If-Range` with
/// the tag an earlier process sent with a 206 at once, without reading the file to
/// hash it (`read_bytes`, caches dropped).
#[test]
#[ignore = "needs root: drops the page cache"]
fn a_restarted_binary_answers_if_range_from_its_default_store_without_reading_the_file() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    require_root();
    let lib = TempDir::new("tag-store-default-lib");
    let state = TempDir::new("tag-store-default-xdg");
    require_storage(lib.path());
    let content = pseudo_random(27, SIZE);
    lib.write(NAME, &content);
    let xdg = state.path().to_str().expect("a UTF-8 temp path");
    let env = [("XDG_CACHE_HOME", xdg)];
    let b = Binary::start(
        lib.path(),
        &[],
        &[("XDG_CACHE_HOME", xdg), ("ROCKET_LOG_LEVEL", "off")],
    );
    let code = mapped_files(b.pid());
    // Printed right after the banner line `Binary::start` waits for.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !b.output().contains("tag store: ") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = b.output();
    let line = out
        .lines()
        .find(|l| l.starts_with("tag store: "))
        .unwrap_or_else(|| panic!("no tag store line in the banner: {out}"));
    assert!(
        line.contains(&format!("{xdg}/rocket-mmap/")),
        "the default store is not under XDG_CACHE_HOME: {line}"
    );
    // An entity-tag condition waits for the tag: this HEAD hashes the file.
    let r = request_at(
        b.addr(),
        "HEAD",
        &format!("/{NAME}"),
        &[("If-None-Match", "\"other\"")],
    );
    assert_eq!(r.status, 200, "{r:?}");
    let tag = r
        .header("ETag")
        .expect("a tag after waiting for it")
        .to_owned();
    assert_eq!(tag, etag_of(&content));
    let out = stop(b);
    assert!(!out.contains("warning"), "{out}");

    let b = cold_start_env(lib.path(), &[], Some(&code), &env);
    let before = read_bytes(b.pid());
    let r = request_at(
        b.addr(),
        "GET",
        &format!("/{NAME}"),
        &[("Range", "bytes=5000000-5000999"), ("If-Range", &tag)],
    );
    let read = read_bytes(b.pid()) - before;
    assert_eq!(
        r.status, 206,
        "If-Range with the earlier process's tag: {r:?}"
    );
    assert_eq!(r.header("ETag"), Some(tag.as_str()));
    assert_eq!(r.body, content[5_000_000..5_001_000]);
    eprintln!(
        "the restarted binary read {} KiB to answer If-Range",
        read / 1024
    );
    assert!(
        read <= IF_RANGE_READ_MAX,
        "the first If-Range after a restart read {read} bytes (at most \
         {IF_RANGE_READ_MAX}): the file was hashed again"
    );
    stop(b);
}
