//! The cache's bounds and policies: [`CacheConfig`] and [`Revalidate`].

use std::time::Duration;

use crate::engine::fault_in::DEFAULT_MAX_FAULT_INS;
use crate::engine::tag_memo::DEFAULT_MAX_REMEMBERED_VERSIONS;
use crate::semantics::digest::DigestAlgorithm;

/// When a cached file is compared with the file on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Revalidate {
    /// `stat` on every lookup (the default): a changed file is noticed at once.
    Always,
    /// `stat` at most once per interval per file: changes are noticed within it.
    Every(Duration),
    /// Never: for immutable deployments; a file is mapped once and served until
    /// evicted. (A truncated file is still noticed through the SIGBUS guard.)
    Never,
    /// On inotify's word (Linux, feature `watch`): a hit makes no system call, and a
    /// `stat` is taken only after the file's directory reported an event for it. A
    /// change is noticed once the watcher's thread has handled its event (tens of
    /// microseconds after the `write`; docs/operating.md gives the figure measured), not
    /// strictly on the next request, and changes inotify does not report (a write
    /// through a hard link in another directory, a shared writable `mmap`, a network
    /// file system changed elsewhere) are not noticed by hits. A response still never
    /// mixes two versions. Entries that cannot be watched are revalidated as under
    /// [`Revalidate::Always`]; so is every entry when inotify is not available
    /// ([`Cache::is_watching`](super::Cache::is_watching)). The whole contract is in the `engine::watch` module.
    Watch,
}

/// Bounds and policies of a [`Cache`](super::Cache).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    /// The most entries kept (default 65 536). Entries are also bounded by the
    /// memory they hold ([`CacheConfig::max_memory`]) and the mappings they keep
    /// ([`CacheConfig::max_mappings`]), whichever bound is reached first.
    pub max_entries: usize,
    /// The most mapped bytes kept (default 16 GiB; address space, not memory: pages
    /// are the kernel's page cache and are shared with every other reader).
    pub max_bytes: u64,
    /// The most memory the entries hold: the bytes of the small files read into
    /// memory (files of at most 64 KiB; see `engine::small`), plus about 1 KiB and
    /// twice the path's length per entry, mapped or not. Default: a sixteenth of the
    /// memory the process may use (its memory cgroup's limit, or the machine's memory
    /// if lower or if there is none), at most 256 MiB: the page cache keeps the rest
    /// of the library, and a server in a small container is not pushed out of it.
    pub max_memory: u64,
    /// The most mappings kept (default 16 384): one per mapped file, that is every
    /// file larger than 64 KiB. Whatever is asked, the
    /// cache keeps at most a quarter of the process's `vm.max_map_count` (65 530 by
    /// default on Linux, read at [`Cache::new`](super::Cache::new)), so that mappings
    /// of responses in flight, the allocator and the libraries always find room.
    pub max_mappings: usize,
    /// When to compare a cached file with the disk (default [`Revalidate::Always`]).
    pub revalidate: Revalidate,
    /// Integrity digests computed when a file is loaded, right after its ETag, on the
    /// same blocking thread (default none: each is computed by the first request that
    /// asks for it; see [`Entry::digest`](crate::engine::entry::Entry::digest)).
    pub digests_at_load: Vec<DigestAlgorithm>,
    /// The most fault-ins (mapped pages a body found not in memory, read in on tokio's
    /// blocking pool before the body copies them) in flight at once for the whole
    /// cache; more wait their turn (default 32, as many as nginx's default `aio
    /// threads` pool has threads; see `engine::fault_in`).
    pub max_fault_ins: usize,
    /// How many files are hashed at once, at most, in the background for their ETags
    /// and digests (default 2). A file is served as soon as it is mapped; its tag
    /// (CRC-64 of the whole content) is computed afterwards on a blocking pool of lower
    /// priority, and the responses that need it wait for it (see `engine::tag`, and the
    /// docs/design.md, "The first byte does not wait for the ETag"). The bound keeps background hashing from taking the disk from
    /// downloads. A response waiting for a tag whose hash has not started yet does not
    /// queue behind other files: such hashes have a lane of as many permits of their
    /// own. 0: no hashing in the background; a file is hashed only when a response
    /// needs its tag, one at a time.
    pub max_background_hashes: usize,
    /// How many file versions' tags and digests are remembered in memory after their
    /// entries are evicted, so that a file loaded again is never hashed again
    /// (default 65 536; a version takes about 240 bytes, 470 with both digests, so
    /// 16 MiB, at most 31 MiB; 0: none). See `engine::tag_memo`.
    pub max_remembered_versions: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            max_entries: 65_536,
            max_bytes: 16 << 30,
            max_memory: default_max_memory(),
            max_mappings: 16_384,
            revalidate: Revalidate::Always,
            digests_at_load: Vec::new(),
            max_fault_ins: DEFAULT_MAX_FAULT_INS,
            max_background_hashes: 2,
            max_remembered_versions: DEFAULT_MAX_REMEMBERED_VERSIONS,
        }
    }
}

/// The memory an entry holds besides its content, counted towards
/// [`CacheConfig::max_memory`] with the length of its path: the entry, its slot, its
/// tag, its header values and the map's key, as measured by
/// `engine::cache::tests::an_entry_holds_about_its_overhead` (rounded up).
pub(crate) const ENTRY_OVERHEAD: u64 = 1024;

/// The most mappings a cache keeps: `asked`, but at most a quarter of
/// `vm.max_map_count` where the system says it.
pub(crate) fn mappings_bound(asked: usize) -> u64 {
    let system = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    let asked = asked as u64;
    system.map_or(asked, |max| asked.min(max / 4).max(1))
}

/// The default [`CacheConfig::max_memory`]: a sixteenth of the memory the process may
/// use, at most 256 MiB, at least 1 MiB.
fn default_max_memory() -> u64 {
    memory_bound_for(memory_total(), cgroup_memory_limit())
}

/// [`default_max_memory`] for a machine of `total` bytes and a cgroup limit of
/// `limit` bytes.
pub(super) fn memory_bound_for(total: Option<u64>, limit: Option<u64>) -> u64 {
    let usable = [total, limit].into_iter().flatten().min();
    usable.map_or(256 << 20, |m| (m / 16).clamp(1 << 20, 256 << 20))
}

/// The machine's memory (`MemTotal`), on Linux.
fn memory_total() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The limit of the process's memory cgroup (v2 `memory.max`, or v1
/// `memory.limit_in_bytes`), if it has one.
fn cgroup_memory_limit() -> Option<u64> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    for line in cgroups.lines() {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        let file = if controllers.is_empty() {
            format!("/sys/fs/cgroup{path}/memory.max")
        } else if controllers.split(',').any(|c| c == "memory") {
            format!("/sys/fs/cgroup/memory{path}/memory.limit_in_bytes")
        } else {
            continue;
        };
        // "max" (v2) or a huge number (v1): no limit.
        if let Some(limit) = std::fs::read_to_string(file)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .filter(|&l| l < (1 << 60))
        {
            return Some(limit);
        }
    }
    None
}
