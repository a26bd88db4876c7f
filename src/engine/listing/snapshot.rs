//! The names of a directory in the listing's default order, read once per version of
//! the directory, so that any page of its listing is a slice: found by a binary search
//! for its cursor, whatever its number, and `stat`ed alone.
//!
//! A snapshot holds only what a `readdir` pass gives (kinds and names), not sizes or
//! times, so it is exact for as long as the directory is unchanged: entries are added,
//! removed and renamed only through the directory, which that changes (the listing
//! cache compares the directory's `stat`). What a symbolic link points to may change
//! without it; the cache keeps a snapshot that met a link for a short time only.
//!
//! Compact: the names one after the other in one buffer, and 8 bytes per entry saying
//! where its name is and what it is. 200 000 names of 26 bytes take 6.8 MB. Reading
//! stops, and gives no snapshot, once the names would take more than the bound the
//! cache sets; such a directory is listed a page at a time (`scan::scan_window`).
//!
//! Sorting compares each name's lower case ([`fold`]) from a buffer made before the
//! sort (names that are ASCII, most of them, lowered without an allocation), with its
//! first 16 bytes as an integer that settles most comparisons without reading the
//! buffer. 200 000 names sort in 22 ms on a 2-core VM, against 37 ms with an 8-byte
//! integer and 40–70 ms with a folded `String` per name.

use std::cmp::Ordering;
use std::ops::ControlFlow;
use std::path::Path;

use crate::engine::error::CacheError;
use crate::engine::listing::entries::{fold, Kind, NameKey};
use crate::engine::listing::scan::{each_listed, ScanOptions};
use crate::engine::listing::window::Window;

/// Where one name is in a snapshot's buffer, and what it names.
#[derive(Clone, Copy, Debug)]
struct Name {
    start: u32,
    len: u16,
    kind: Kind,
}

/// The names of a directory, sorted (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    /// Every name, one after the other.
    buffer: Vec<u8>,
    /// Each entry, in the default order.
    index: Vec<Name>,
}

/// A snapshot read, and whether the pass met a symbolic link.
#[derive(Debug)]
pub(crate) struct Read {
    /// The names, or `None` when they would take more than the bound.
    pub(crate) snapshot: Option<Snapshot>,
    /// Whether the directory holds a symbolic link (listed or not).
    pub(crate) links: bool,
}

impl Snapshot {
    /// Reads the names of `dir` that would be listed and sorts them; no snapshot when
    /// they would take more than `max_bytes` ([`Snapshot::bytes`]). Blocking; while
    /// sorting, it takes about three times the snapshot's size.
    pub(crate) fn read(
        dir: &Path,
        options: &ScanOptions,
        max_bytes: u64,
    ) -> Result<Read, CacheError> {
        let max_bytes = max_bytes.min(u64::from(u32::MAX));
        let mut s = Snapshot::default();
        let mut too_many = false;
        let links = each_listed(dir, options, |kind, name| {
            let (Ok(start), Ok(len)) = (u32::try_from(s.buffer.len()), u16::try_from(name.len()))
            else {
                too_many = true;
                return ControlFlow::Break(());
            };
            s.index.push(Name { start, len, kind });
            s.buffer.extend_from_slice(name);
            if s.len_bytes() > max_bytes {
                too_many = true;
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        })?;
        if too_many {
            return Ok(Read {
                snapshot: None,
                links,
            });
        }
        s.sort();
        s.buffer.shrink_to_fit();
        s.index.shrink_to_fit();
        Ok(Read {
            snapshot: Some(s),
            links,
        })
    }

    /// How many entries the directory has that would be listed.
    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    /// The memory the snapshot takes (its buffers' capacities).
    pub(crate) fn bytes(&self) -> u64 {
        (self.buffer.capacity() + self.index.capacity() * std::mem::size_of::<Name>()) as u64
    }

    /// The memory the snapshot's names and index take, whatever their buffers' room to
    /// grow: the bound a read stops at does not depend on how the buffers grew.
    fn len_bytes(&self) -> u64 {
        (self.buffer.len() + self.index.len() * std::mem::size_of::<Name>()) as u64
    }

    fn name(&self, n: Name) -> &[u8] {
        let start = n.start as usize;
        &self.buffer[start..start + usize::from(n.len)]
    }

    fn owned(&self, i: usize) -> (Kind, Vec<u8>) {
        let n = self.index[i];
        (n.kind, self.name(n).to_vec())
    }

    /// How many entries are at or before `cursor` in the default order: the position of
    /// the first entry after it. A binary search, folding `log2(len)` names.
    pub(crate) fn position_after(&self, cursor: &NameKey) -> usize {
        self.index
            .partition_point(|&n| cursor.cmp_entry(n.kind, self.name(n)) != Ordering::Less)
    }

    /// The page of `n` entries from the position `first` (see [`position_after`]).
    ///
    /// [`position_after`]: Snapshot::position_after
    pub(crate) fn window_at(&self, first: usize, n: usize) -> Window {
        let total = self.len();
        let first = first.min(total);
        let end = first.saturating_add(n).min(total);
        let names = (first..end).map(|i| self.owned(i)).collect();
        let at = first.checked_sub(1).map(|i| self.owned(i));
        let before = || first.checked_sub(n + 1).map(|i| self.owned(i));
        Window::new(names, first, at, total, n, before)
    }

    /// Puts the index in the default order: kind, lower case, raw bytes (the order of
    /// [`NameKey`]).
    fn sort(&mut self) {
        struct Key {
            kind: Kind,
            prefix: u128,
            start: u32,
            len: u32,
            at: u32,
        }
        let mut lowered = Vec::with_capacity(self.buffer.len());
        let mut keys = Vec::with_capacity(self.index.len());
        for (at, &n) in self.index.iter().enumerate() {
            let name = self.name(n);
            let start = lowered.len();
            if name.is_ascii() {
                lowered.extend(name.iter().map(u8::to_ascii_lowercase));
            } else {
                lowered.extend_from_slice(fold(name).as_bytes());
            }
            let folded = &lowered[start..];
            // Zero-padded: no name holds a NUL, so a shorter name that is the start of
            // a longer one still sorts first.
            let mut prefix = [0u8; 16];
            let k = folded.len().min(16);
            prefix[..k].copy_from_slice(&folded[..k]);
            keys.push(Key {
                kind: n.kind,
                prefix: u128::from_be_bytes(prefix),
                start: start as u32,
                len: folded.len() as u32,
                at: at as u32,
            });
        }
        let folded = |k: &Key| &lowered[k.start as usize..(k.start + k.len) as usize];
        keys.sort_unstable_by(|a, b| {
            a.kind
                .cmp(&b.kind)
                .then(a.prefix.cmp(&b.prefix))
                .then_with(|| folded(a).cmp(folded(b)))
                .then_with(|| {
                    let (x, y) = (self.index[a.at as usize], self.index[b.at as usize]);
                    self.name(x).cmp(self.name(y))
                })
        });
        self.index = keys.iter().map(|k| self.index[k.at as usize]).collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    use crate::engine::links::Symlinks;
    use crate::engine::listing::scan::scan_window;
    use crate::engine::test_support::TempDir;

    fn options() -> ScanOptions {
        ScanOptions {
            dotfiles: false,
            links: Symlinks::Never,
            root: PathBuf::from("/"),
            max_entries: 3,
        }
    }

    fn read(dir: &Path) -> Snapshot {
        Snapshot::read(dir, &options(), u64::MAX)
            .unwrap()
            .snapshot
            .unwrap()
    }

    #[cfg(unix)]
    fn write(dir: &Path, name: &[u8]) {
        use std::os::unix::ffi::OsStrExt;
        std::fs::write(dir.join(std::ffi::OsStr::from_bytes(name)), b"x").unwrap();
    }

    /// Names whose order tests the key: case, non-ASCII lower case (`É` sorts as `é`),
    /// bytes that are not UTF-8, a shared 16-byte prefix, a name that starts another.
    #[cfg(unix)]
    const NAMES: [&[u8]; 14] = [
        b"b",
        b"B",
        b"a",
        b"A.txt",
        "\u{c9}t\u{e9}".as_bytes(),
        "\u{e9}t\u{e9}".as_bytes(),
        b"e",
        b"caf\xe9",
        b"caf\xc3",
        b"prefix-long-name-1",
        b"prefix-long-name-10",
        b"PREFIX-long-name-2",
        b"prefix-l",
        b"z",
    ];

    #[cfg(unix)]
    #[test]
    fn sorted_as_name_keys_are() {
        let d = TempDir::canonical("snapshot-order");
        for name in NAMES {
            write(&d.0, name);
        }
        std::fs::create_dir(d.0.join("Zdir")).unwrap();
        std::fs::create_dir(d.0.join("adir")).unwrap();
        let s = read(&d.0);
        let listed: Vec<(Kind, Vec<u8>)> = (0..s.len()).map(|i| s.owned(i)).collect();
        let mut keys: Vec<NameKey> = listed
            .iter()
            .map(|(kind, name)| NameKey::new(*kind, name.clone()))
            .collect();
        keys.sort();
        let sorted: Vec<(Kind, Vec<u8>)> = keys.into_iter().map(NameKey::into_parts).collect();
        assert_eq!(listed, sorted);
        assert_eq!(s.len(), NAMES.len() + 2);
        assert_eq!(listed[0], (Kind::Directory, b"adir".to_vec()));
    }

    /// Both ways of reading a page give the same page, for every cursor: each name of
    /// each kind, and positions between and around them.
    #[cfg(unix)]
    #[test]
    fn a_window_is_the_same_read_from_a_snapshot_or_in_one_pass() {
        let d = TempDir::canonical("snapshot-window");
        for name in NAMES {
            write(&d.0, name);
        }
        std::fs::create_dir(d.0.join("sub")).unwrap();
        let s = read(&d.0);
        let mut cursors: Vec<Option<NameKey>> = vec![None];
        for kind in [Kind::Directory, Kind::File] {
            for name in NAMES.iter().copied().chain([&b""[..], b"sub", b"c", b"zz"]) {
                cursors.push(Some(NameKey::new(kind, name.to_vec())));
            }
        }
        for n in [0, 1, 3, 4, 20] {
            for cursor in &cursors {
                let first = cursor.as_ref().map_or(0, |c| s.position_after(c));
                let from_snapshot = s.window_at(first, n);
                let in_one_pass = scan_window(&d.0, &options(), cursor.as_ref(), n).unwrap();
                assert_eq!(from_snapshot, in_one_pass, "{cursor:?}, {n}");
            }
        }
    }

    #[test]
    fn too_many_names_give_no_snapshot() {
        let d = TempDir::canonical("snapshot-bound");
        for i in 0..100 {
            std::fs::write(d.0.join(format!("name-{i:03}")), b"").unwrap();
        }
        let whole = read(&d.0);
        assert_eq!(whole.len(), 100);
        assert!(whole.bytes() >= 100 * (8 + 8), "{}", whole.bytes());
        let cut = Snapshot::read(&d.0, &options(), 1000).unwrap();
        assert!(cut.snapshot.is_none());
        assert!(!cut.links);
    }

    #[cfg(unix)]
    #[test]
    fn links_are_noticed_even_when_not_listed() {
        let d = TempDir::canonical("snapshot-links");
        std::fs::write(d.0.join("f"), b"").unwrap();
        let plain = Snapshot::read(&d.0, &options(), u64::MAX).unwrap();
        assert!(!plain.links);
        std::os::unix::fs::symlink(d.0.join("f"), d.0.join("l")).unwrap();
        let linked = Snapshot::read(&d.0, &options(), u64::MAX).unwrap();
        assert!(linked.links, "a link the policy does not follow");
        assert_eq!(linked.snapshot.unwrap().len(), 1);
    }
}
