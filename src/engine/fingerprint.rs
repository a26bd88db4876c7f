//! Which version of a file is on disk, from one `stat`.

/// The identity of one version of a file on disk, from one `stat`: device, inode,
/// size, and modification and change times in nanoseconds. Any write, truncation,
/// replacement by rename or `touch` changes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Fingerprint {
    /// Device id.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, ns since the epoch (may be negative).
    pub mtime_ns: i128,
    /// Status change time, ns since the epoch; changes on every write, even when the
    /// writer restores the mtime.
    pub ctime_ns: i128,
}

impl Fingerprint {
    /// The fingerprint of `meta`.
    #[cfg(unix)]
    pub fn of(meta: &std::fs::Metadata) -> Fingerprint {
        use std::os::unix::fs::MetadataExt;
        Fingerprint {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        }
    }

    /// The fingerprint of `meta` (size and modification time only on this platform).
    #[cfg(not(unix))]
    pub fn of(meta: &std::fs::Metadata) -> Fingerprint {
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as i128);
        Fingerprint {
            size: meta.len(),
            mtime_ns,
            ..Fingerprint::default()
        }
    }
}
