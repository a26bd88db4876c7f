//! Turning request path segments into a relative file path that cannot leave the root.
//!
//! The segments are the percent-decoded path segments after the mount point (what
//! Rocket's `Request::routed_segments` yields). A segment is refused, and the request
//! answered 404, if it is `.` or `..`, is empty after decoding a separator, contains
//! `/`, `\` or NUL or another control character (encoded separators and NUL bytes
//! never reach the file system), or — unless dot-files are allowed — starts with `.`
//! (hidden files such as `.env` or `.git/` are not served by default). The depth and
//! the total length are bounded, so a very long path costs nothing.
//!
//! Symbolic links are a property of the file system, not of the path; the file server
//! checks them after resolution (see `FileServer`'s `Symlinks` option).

use std::path::{Path, PathBuf};

/// The longest relative path accepted, in bytes (Linux's `PATH_MAX` is 4096).
pub const MAX_PATH_LEN: usize = 4096;
/// The most segments accepted.
pub const MAX_DEPTH: usize = 64;

/// Why a request path was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathRejection {
    /// A `.` or `..` segment.
    DotSegment,
    /// A segment starting with `.` while dot-files are hidden.
    DotFile,
    /// A separator, NUL or control character inside a segment.
    BadChar,
    /// Too long or too deep.
    TooLong,
}

impl std::fmt::Display for PathRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PathRejection::DotSegment => "dot segment in path",
            PathRejection::DotFile => "hidden file",
            PathRejection::BadChar => "forbidden character in path segment",
            PathRejection::TooLong => "path too long",
        })
    }
}

impl std::error::Error for PathRejection {}

/// Checks one decoded, non-empty path segment: refuses `.` and `..`, a `/`, `\`, NUL or
/// other control character inside it, and (unless `allow_dotfiles`) a name starting
/// with `.`. The file server applies it to request paths and, for listings, to every
/// directory entry, so that a listing never shows a name that would not be served.
///
/// # Errors
/// The [`PathRejection`] that applies.
pub(crate) fn check_segment(seg: &str, allow_dotfiles: bool) -> Result<(), PathRejection> {
    if seg == "." || seg == ".." {
        return Err(PathRejection::DotSegment);
    }
    if seg.chars().any(|c| c == '/' || c == '\\' || c.is_control()) {
        return Err(PathRejection::BadChar);
    }
    if !allow_dotfiles && seg.starts_with('.') {
        return Err(PathRejection::DotFile);
    }
    Ok(())
}

/// [`check_segment`] for a segment given as bytes, which need not be UTF-8 (a file
/// name on Unix is any bytes but `/` and NUL). Bytes that are not UTF-8 are neither
/// separators, dots nor control characters, so the rule is applied to the lossy UTF-8
/// reading of the bytes, where every ASCII byte keeps its place.
///
/// # Errors
/// The [`PathRejection`] that applies.
pub(crate) fn check_segment_bytes(seg: &[u8], allow_dotfiles: bool) -> Result<(), PathRejection> {
    check_segment(&String::from_utf8_lossy(seg), allow_dotfiles)
}

/// Joins decoded `segments` into a relative path, refusing anything that could name a
/// file outside the root or a hidden file (see the module docs). Empty segments
/// (`a//b`) are skipped.
///
/// # Errors
/// The first [`PathRejection`] found.
pub fn sanitize<'a>(
    segments: impl IntoIterator<Item = &'a str>,
    allow_dotfiles: bool,
) -> Result<PathBuf, PathRejection> {
    sanitize_under(Path::new(""), segments, allow_dotfiles)
}

/// [`sanitize`], joined onto `base` in the same allocation: `base` followed by the
/// accepted segments. The bounds apply to the segments alone.
///
/// # Errors
/// The first [`PathRejection`] found.
#[cfg_attr(not(feature = "rocket"), allow(dead_code))]
pub(crate) fn sanitize_under<'a>(
    base: &Path,
    segments: impl IntoIterator<Item = &'a str>,
    allow_dotfiles: bool,
) -> Result<PathBuf, PathRejection> {
    let mut out = PathBuf::with_capacity(base.as_os_str().len() + 64);
    out.push(base);
    let (mut len, mut depth) = (0usize, 0usize);
    for seg in segments {
        if seg.is_empty() {
            continue;
        }
        check_segment(seg, allow_dotfiles)?;
        len += seg.len() + 1;
        depth += 1;
        if len > MAX_PATH_LEN || depth > MAX_DEPTH {
            return Err(PathRejection::TooLong);
        }
        out.push(seg);
    }
    Ok(out)
}

/// [`sanitize`] for segments percent-decoded to bytes rather than to UTF-8: the same
/// rules, and on Unix a segment that is not UTF-8 names the file with exactly those
/// bytes (percent-encoded in the URL, as a directory listing links it). Elsewhere
/// file names are Unicode, and such a segment is refused as [`PathRejection::BadChar`].
///
/// # Errors
/// The first [`PathRejection`] found.
pub fn sanitize_bytes<'a>(
    segments: impl IntoIterator<Item = &'a [u8]>,
    allow_dotfiles: bool,
) -> Result<PathBuf, PathRejection> {
    let mut out = PathBuf::new();
    let (mut len, mut depth) = (0usize, 0usize);
    for seg in segments {
        if seg.is_empty() {
            continue;
        }
        check_segment_bytes(seg, allow_dotfiles)?;
        len += seg.len() + 1;
        depth += 1;
        if len > MAX_PATH_LEN || depth > MAX_DEPTH {
            return Err(PathRejection::TooLong);
        }
        out.push(os_str_from_bytes(seg)?);
    }
    Ok(out)
}

#[cfg(unix)]
fn os_str_from_bytes(seg: &[u8]) -> Result<&std::ffi::OsStr, PathRejection> {
    use std::os::unix::ffi::OsStrExt;
    Ok(std::ffi::OsStr::from_bytes(seg))
}

#[cfg(not(unix))]
fn os_str_from_bytes(seg: &[u8]) -> Result<&std::ffi::OsStr, PathRejection> {
    std::str::from_utf8(seg)
        .map(std::ffi::OsStr::new)
        .map_err(|_| PathRejection::BadChar)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_pass() {
        assert_eq!(
            sanitize(["a", "b.txt"], false),
            Ok(PathBuf::from("a/b.txt"))
        );
        assert_eq!(
            sanitize(["", "a", "", "b"], false),
            Ok(PathBuf::from("a/b"))
        );
        assert_eq!(
            sanitize(["ünï cødé.txt"], false),
            Ok(PathBuf::from("ünï cødé.txt"))
        );
        assert_eq!(sanitize([], false), Ok(PathBuf::new()));
    }

    #[test]
    fn dot_segments_are_refused() {
        assert_eq!(
            sanitize(["..", "etc"], false),
            Err(PathRejection::DotSegment)
        );
        assert_eq!(sanitize(["a", "."], true), Err(PathRejection::DotSegment));
        assert_eq!(sanitize(["a", ".."], true), Err(PathRejection::DotSegment));
    }

    #[test]
    fn decoded_separators_and_nul_are_refused() {
        assert_eq!(sanitize(["x%2fy"], false), Ok(PathBuf::from("x%2fy"))); // still encoded: a plain name
        assert_eq!(sanitize(["../etc"], false), Err(PathRejection::BadChar));
        assert_eq!(sanitize(["a\\..\\b"], false), Err(PathRejection::BadChar));
        assert_eq!(sanitize(["a\0b"], false), Err(PathRejection::BadChar));
        assert_eq!(sanitize(["a\nb"], false), Err(PathRejection::BadChar));
    }

    #[test]
    fn dotfiles_hidden_by_default() {
        assert_eq!(sanitize([".env"], false), Err(PathRejection::DotFile));
        assert_eq!(
            sanitize([".git", "config"], false),
            Err(PathRejection::DotFile)
        );
        assert_eq!(
            sanitize([".well-known", "x"], true),
            Ok(PathBuf::from(".well-known/x"))
        );
    }

    #[test]
    fn byte_segments_follow_the_same_rules() {
        let same: [&[&str]; 6] = [
            &["a", "b.txt"],
            &["..", "etc"],
            &["a\\b"],
            &["a\u{85}b"],
            &[".env"],
            &["", "x", ""],
        ];
        for segs in same {
            for dots in [false, true] {
                assert_eq!(
                    sanitize_bytes(segs.iter().map(|s| s.as_bytes()), dots),
                    sanitize(segs.iter().copied(), dots),
                    "{segs:?}"
                );
            }
        }
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_segments_name_their_bytes() {
        use std::os::unix::ffi::OsStrExt;
        let rel = sanitize_bytes([&b"caf\xe9"[..], b"x\xff.txt"], false).unwrap();
        assert_eq!(rel.as_os_str().as_bytes(), b"caf\xe9/x\xff.txt");
        assert_eq!(
            sanitize_bytes([&b".\xff"[..]], false),
            Err(PathRejection::DotFile)
        );
        assert_eq!(
            sanitize_bytes([&b"\xff/x"[..]], false),
            Err(PathRejection::BadChar)
        );
        assert_eq!(
            sanitize_bytes([&b"\xff\nx"[..]], false),
            Err(PathRejection::BadChar)
        );
    }

    #[test]
    fn long_and_deep_paths_are_refused() {
        let long = "a".repeat(5000);
        assert_eq!(
            sanitize([long.as_str()], false),
            Err(PathRejection::TooLong)
        );
        let deep = vec!["a"; 65];
        assert_eq!(sanitize(deep, false), Err(PathRejection::TooLong));
    }

    #[test]
    fn sanitize_under_joins_onto_the_base() {
        let under = sanitize_under(Path::new("/srv/www"), ["a", "", "b.txt"], false).unwrap();
        assert_eq!(under, Path::new("/srv/www/a/b.txt"));
        let rel = sanitize(["a", "", "b.txt"], false).unwrap();
        assert_eq!(under, Path::new("/srv/www").join(rel));
        assert_eq!(
            sanitize_under(Path::new("/srv/www"), [".."], false),
            Err(PathRejection::DotSegment)
        );
    }
}
