//! Which symbolic links below a root are followed: one policy, and one test of it, for
//! the files the file server serves and the entries its listings show.

use std::path::Path;

/// Which symbolic links the file server follows (and its listings show).
///
/// ```rust
/// use rocket_mmap::Symlinks;
/// use std::path::Path;
///
/// let root = Path::new("/srv/files");
/// let path = root.join("docs/a.txt");
/// // A link whose target lies outside the root:
/// let resolved = Path::new("/etc/passwd");
/// assert!(!Symlinks::WithinRoot.allows(&path, Some(resolved), root));
/// assert!(Symlinks::Follow.allows(&path, Some(resolved), root));
/// // No link on the way: the path resolves to itself.
/// assert!(Symlinks::Never.allows(&path, Some(&path), root));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Symlinks {
    /// Follow links whose target (fully resolved) lies inside the root. The default.
    WithinRoot,
    /// Follow every link.
    Follow,
    /// Serve no file reached through a link below the root.
    Never,
}

impl Symlinks {
    /// Whether `path`, a path below the canonical `root` (the root joined with a
    /// relative path), may be served or listed under this policy, given `canonical`,
    /// its fully resolved form: `None` if it could not be resolved, or was not because
    /// [`Symlinks::needs_canonical`] said so. A cached file's is
    /// [`Entry::canonical_path`](crate::cache::Entry::canonical_path).
    ///
    /// This is the file server's test before it serves or lists a path; a route (or
    /// another framework) that serves files of its own choosing applies the same
    /// policy with it.
    pub fn allows(self, path: &Path, canonical: Option<&Path>, root: &Path) -> bool {
        match (self, canonical) {
            (Symlinks::Follow, _) => true,
            (Symlinks::WithinRoot, Some(c)) => within(c, root),
            // Resolved to itself: no link on the way.
            (Symlinks::Never, Some(c)) => c == path,
            (_, None) => false,
        }
    }

    /// Whether [`Symlinks::allows`] needs the resolved form of a path known to be a
    /// link (a `realpath`, a system call per component) to decide: only
    /// [`Symlinks::WithinRoot`] does, to tell whether the link stays within the root.
    /// (The file server's listings ask it for every link they show; for the files it
    /// serves, the cache has resolved every entry's path already.)
    pub fn needs_canonical(self) -> bool {
        self == Symlinks::WithinRoot
    }
}

/// Whether the canonical path `c` is `root` or lies under it. Both are canonical (no
/// `.`, `..`, repeated or trailing separators), so a byte-prefix test that ends on a
/// separator boundary is exact, and it is several times cheaper per request than
/// `Path::starts_with`, which parses both paths into components.
fn within(c: &Path, root: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let (c, r) = (c.as_os_str().as_bytes(), root.as_os_str().as_bytes());
        c.starts_with(r) && (c.len() == r.len() || r.ends_with(b"/") || c[r.len()] == b'/')
    }
    #[cfg(not(unix))]
    {
        c.starts_with(root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within_agrees_with_path_starts_with_on_canonical_paths() {
        let cases = [
            ("/srv/www", "/srv/www", true),
            ("/srv/www/a.txt", "/srv/www", true),
            ("/srv/www/d/e/f", "/srv/www", true),
            ("/srv/wwwx/a.txt", "/srv/www", false),
            ("/srv/ww", "/srv/www", false),
            ("/srv", "/srv/www", false),
            ("/etc/passwd", "/srv/www", false),
            ("/etc/passwd", "/", true),
            ("/", "/", true),
        ];
        for (c, root) in cases.map(|(c, r, _)| (c, r)) {
            let (c, root) = (Path::new(c), Path::new(root));
            assert_eq!(within(c, root), c.starts_with(root), "{c:?} vs {root:?}");
        }
        for (c, root, want) in cases {
            assert_eq!(
                within(Path::new(c), Path::new(root)),
                want,
                "{c} within {root}"
            );
        }
    }

    #[test]
    fn the_policy_decides_on_the_resolved_path() {
        let (root, inside, outside) = (
            Path::new("/srv/www"),
            Path::new("/srv/www/a.txt"),
            Path::new("/etc/passwd"),
        );
        let link = Path::new("/srv/www/link");
        for (policy, canonical, want) in [
            (Symlinks::Follow, Some(outside), true),
            (Symlinks::Follow, None, true),
            (Symlinks::WithinRoot, Some(inside), true),
            (Symlinks::WithinRoot, Some(outside), false),
            (Symlinks::WithinRoot, None, false),
            (Symlinks::Never, Some(inside), false),
            (Symlinks::Never, None, false),
        ] {
            assert_eq!(
                policy.allows(link, canonical, root),
                want,
                "{policy:?} {canonical:?}"
            );
        }
        // Not a link: it resolves to itself.
        assert!(Symlinks::Never.allows(inside, Some(inside), root));
        assert!(Symlinks::WithinRoot.needs_canonical());
        assert!(!Symlinks::Never.needs_canonical() && !Symlinks::Follow.needs_canonical());
    }
}
