//! The engine's error: why a path could not be served, and the HTTP status for it.

use std::io;

/// Why a file could not be served from the cache.
#[derive(Debug)]
#[non_exhaustive]
pub enum CacheError {
    /// No such file (HTTP 404).
    NotFound,
    /// The file exists but may not be read (HTTP 403).
    PermissionDenied,
    /// The path is a directory (a file server may look for an index or redirect).
    IsDirectory,
    /// The path is a socket, FIFO, device or other non-regular file (HTTP 404: never
    /// served as a file).
    NotAFile,
    /// The file kept changing while it was being mapped and hashed (HTTP 503).
    Unstable,
    /// The mapping could not be protected against truncation (HTTP 503).
    Unprotected,
    /// Any other I/O error (HTTP 500).
    Io(io::Error),
}

impl CacheError {
    /// The HTTP status this error should be answered with.
    pub fn status(&self) -> u16 {
        match self {
            CacheError::NotFound | CacheError::NotAFile | CacheError::IsDirectory => 404,
            CacheError::PermissionDenied => 403,
            CacheError::Unstable | CacheError::Unprotected => 503,
            CacheError::Io(_) => 500,
        }
    }

    pub(crate) fn from_io(e: io::Error) -> CacheError {
        match e.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => CacheError::NotFound,
            io::ErrorKind::PermissionDenied => CacheError::PermissionDenied,
            io::ErrorKind::InvalidFilename | io::ErrorKind::InvalidInput => CacheError::NotFound,
            _ if e.raw_os_error() == Some(libc::ELOOP)
                || e.raw_os_error() == Some(libc::ENAMETOOLONG) =>
            {
                CacheError::NotFound
            }
            _ => CacheError::Io(e),
        }
    }
}

impl std::fmt::Display for CacheError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CacheError::NotFound => f.write_str("file not found"),
            CacheError::PermissionDenied => f.write_str("permission denied"),
            CacheError::IsDirectory => f.write_str("is a directory"),
            CacheError::NotAFile => f.write_str("not a regular file"),
            CacheError::Unstable => f.write_str("file kept changing while being loaded"),
            CacheError::Unprotected => {
                f.write_str("mapping could not be guarded against truncation")
            }
            CacheError::Io(e) => write!(f, "I/O error: {e}"),
        }
    }
}

impl std::error::Error for CacheError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CacheError::Io(e) => Some(e),
            _ => None,
        }
    }
}
