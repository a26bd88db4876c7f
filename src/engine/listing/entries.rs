//! A directory entry as a listing shows it, and the listing's default order
//! (directories first, then by name), by which a directory is cut into pages.

use std::cmp::Ordering;

use crate::semantics::listing::{Cursor, Order, SortKey};

/// What a directory entry is, as the file server would serve it (a symbolic link is
/// listed as what it points to, if it is listed at all).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Kind {
    /// A directory: listed first, linked with a trailing `/`.
    Directory,
    /// A regular file.
    File,
}

impl Kind {
    /// The JSON `type` value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Directory => "directory",
            Kind::File => "file",
        }
    }
}

/// One directory entry to list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Listed {
    /// The file name's bytes (on Unix any bytes but `/` and NUL; not necessarily UTF-8).
    pub(crate) name: Vec<u8>,
    /// Directory or file.
    pub(crate) kind: Kind,
    /// The size in bytes (files; `None` for directories).
    pub(crate) size: Option<u64>,
    /// The modification time, seconds since the Unix epoch (negative before 1970).
    pub(crate) mtime: Option<i64>,
}

/// The sort key of "directories first, then by name": kind, the name in lower case,
/// then the raw bytes. Its order is the listing's default order, the order in which a
/// directory is cut into pages.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct NameKey {
    kind: Kind,
    folded: String,
    name: Vec<u8>,
}

impl NameKey {
    /// The key of an entry named `name`.
    pub(crate) fn new(kind: Kind, name: Vec<u8>) -> NameKey {
        NameKey {
            kind,
            folded: fold(&name),
            name,
        }
    }

    /// The key of the position a cursor names.
    pub(crate) fn of_cursor(cursor: &Cursor) -> NameKey {
        let kind = if cursor.directory {
            Kind::Directory
        } else {
            Kind::File
        };
        NameKey::new(kind, cursor.name.clone())
    }

    /// The kind and the name back.
    pub(crate) fn into_parts(self) -> (Kind, Vec<u8>) {
        (self.kind, self.name)
    }

    /// How this key compares with the entry `name` of `kind`, in the default order.
    pub(crate) fn cmp_entry(&self, kind: Kind, name: &[u8]) -> Ordering {
        self.kind
            .cmp(&kind)
            .then_with(|| self.folded.as_bytes().cmp(fold(name).as_bytes()))
            .then_with(|| self.name.as_slice().cmp(name))
    }
}

/// A name in lower case, the second part of the default order's key (after the kind).
pub(crate) fn fold(name: &[u8]) -> String {
    String::from_utf8_lossy(name).to_lowercase()
}

/// Sorts `entries`: directories first, then by `sort` in `order`, ties by name
/// (ascending, except when sorting by name descending).
pub(crate) fn sort_entries(entries: &mut Vec<Listed>, sort: SortKey, order: Order) {
    let mut keyed: Vec<(String, Listed)> = entries.drain(..).map(|e| (fold(&e.name), e)).collect();
    keyed.sort_by(|(fa, a), (fb, b)| {
        let by_name = fa.cmp(fb).then_with(|| a.name.cmp(&b.name));
        let primary = match sort {
            SortKey::Name => by_name,
            SortKey::Size => a.size.cmp(&b.size),
            SortKey::Mtime => a.mtime.cmp(&b.mtime),
        };
        let primary = match order {
            Order::Asc => primary,
            Order::Desc => primary.reverse(),
        };
        a.kind.cmp(&b.kind).then(primary).then_with(|| match sort {
            SortKey::Name => Ordering::Equal,
            _ => by_name,
        })
    });
    entries.extend(keyed.into_iter().map(|(_, e)| e));
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A listed file, for the listing's tests.
    pub(crate) fn file(name: &[u8], size: u64, mtime: i64) -> Listed {
        Listed {
            name: name.to_vec(),
            kind: Kind::File,
            size: Some(size),
            mtime: Some(mtime),
        }
    }

    /// A listed directory, for the listing's tests.
    pub(crate) fn dir(name: &[u8], mtime: i64) -> Listed {
        Listed {
            name: name.to_vec(),
            kind: Kind::Directory,
            size: None,
            mtime: Some(mtime),
        }
    }

    fn names(entries: &[Listed]) -> Vec<String> {
        entries
            .iter()
            .map(|e| String::from_utf8_lossy(&e.name).into_owned())
            .collect()
    }

    #[test]
    fn directories_come_first_in_every_order() {
        let entries = || {
            vec![
                file(b"b.txt", 30, 100),
                dir(b"Zeta", 50),
                file(b"A.txt", 10, 300),
                dir(b"alpha", 60),
                file(b"c.txt", 20, 200),
                file(b"a.txt", 10, 300),
            ]
        };
        let sorted = |sort, order| {
            let mut e = entries();
            sort_entries(&mut e, sort, order);
            names(&e)
        };
        assert_eq!(
            sorted(SortKey::Name, Order::Asc),
            ["alpha", "Zeta", "A.txt", "a.txt", "b.txt", "c.txt"]
        );
        assert_eq!(
            sorted(SortKey::Name, Order::Desc),
            ["Zeta", "alpha", "c.txt", "b.txt", "a.txt", "A.txt"]
        );
        assert_eq!(
            sorted(SortKey::Size, Order::Asc),
            ["alpha", "Zeta", "A.txt", "a.txt", "c.txt", "b.txt"]
        );
        assert_eq!(
            sorted(SortKey::Size, Order::Desc),
            ["alpha", "Zeta", "b.txt", "c.txt", "A.txt", "a.txt"]
        );
        assert_eq!(
            sorted(SortKey::Mtime, Order::Asc),
            ["Zeta", "alpha", "b.txt", "c.txt", "A.txt", "a.txt"]
        );
        assert_eq!(
            sorted(SortKey::Mtime, Order::Desc),
            ["alpha", "Zeta", "A.txt", "a.txt", "c.txt", "b.txt"]
        );
    }

    #[test]
    fn name_key_order_is_the_default_listing_order() {
        let mut entries = vec![
            file(b"b", 1, 1),
            dir(b"B", 1),
            file(b"\xff", 1, 1),
            file(b"A", 1, 1),
            dir(b"a", 1),
            file(b"a", 1, 1),
        ];
        let mut keys: Vec<NameKey> = entries
            .iter()
            .map(|e| NameKey::new(e.kind, e.name.clone()))
            .collect();
        keys.sort();
        sort_entries(&mut entries, SortKey::Name, Order::Asc);
        let from_keys: Vec<(Kind, Vec<u8>)> = keys.into_iter().map(NameKey::into_parts).collect();
        let from_sort: Vec<(Kind, Vec<u8>)> =
            entries.into_iter().map(|e| (e.kind, e.name)).collect();
        assert_eq!(from_keys, from_sort);
    }
}
