//! The store's format: its tables, the key of a file version and the encoding of
//! what is recorded for it (schema [`SCHEMA_VERSION`]).

use std::path::{Path, PathBuf};

use redb::TableDefinition;

use super::StoredTags;
use crate::engine::digest::ReprDigest;
use crate::engine::fingerprint::Fingerprint;
use crate::semantics::digest::DigestAlgorithm;
use crate::semantics::etag::EntityTag;

/// The schema version this build writes and reads. A store with a higher one is
/// refused ([`TagStoreError::NewerVersion`](super::TagStoreError::NewerVersion)); one
/// with a lower one is emptied.
pub(crate) const SCHEMA_VERSION: u64 = 1;

/// `schema` → the schema version.
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("rocket-mmap meta");
pub(super) const SCHEMA_KEY: &str = "schema";
/// Fingerprint (56 bytes) → the encoded [`Record`].
pub(super) const TAGS: TableDefinition<&[u8; KEY_LEN], &[u8]> =
    TableDefinition::new("rocket-mmap tags");

/// Bytes of an encoded [`Fingerprint`]: dev, ino, size (8 each), mtime, ctime (16 each).
pub(super) const KEY_LEN: usize = 56;
pub(super) type Key = [u8; KEY_LEN];

/// The value of one entry, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Record {
    pub(super) etag: EntityTag,
    pub(super) digests: Vec<(DigestAlgorithm, Box<[u8]>)>,
    /// The path the version was loaded from, for pruning.
    pub(super) path: PathBuf,
}

/// The fingerprint as 56 big-endian bytes: device and inode first, so that the
/// versions of one inode are neighbours.
pub(super) fn encode_key(fp: &Fingerprint) -> Key {
    let mut k = [0u8; KEY_LEN];
    k[0..8].copy_from_slice(&fp.dev.to_be_bytes());
    k[8..16].copy_from_slice(&fp.ino.to_be_bytes());
    k[16..24].copy_from_slice(&fp.size.to_be_bytes());
    k[24..40].copy_from_slice(&fp.mtime_ns.to_be_bytes());
    k[40..56].copy_from_slice(&fp.ctime_ns.to_be_bytes());
    k
}

/// The first and last keys with the device and inode of `key`.
pub(super) fn inode_range(key: &Key) -> (Key, Key) {
    let (mut lo, mut hi) = ([0u8; KEY_LEN], [0xffu8; KEY_LEN]);
    lo[..16].copy_from_slice(&key[..16]);
    hi[..16].copy_from_slice(&key[..16]);
    (lo, hi)
}

/// The algorithm's byte in an encoded record.
fn algorithm_id(a: DigestAlgorithm) -> u8 {
    match a {
        DigestAlgorithm::Sha256 => 1,
        DigestAlgorithm::Sha512 => 2,
    }
}

impl Record {
    /// What [`TagStore::record`](super::TagStore::record) was given.
    pub(super) fn new(etag: &EntityTag, digests: &[&ReprDigest], path: &Path) -> Record {
        Record {
            etag: etag.clone(),
            digests: digests
                .iter()
                .map(|d| (d.algorithm(), Box::from(d.bytes())))
                .collect(),
            path: path.to_path_buf(),
        }
    }

    /// Schema 1: `flags` (bit 0: weak), tag length (1 byte), the tag; the number of
    /// digests (1 byte), each as an algorithm byte (1: SHA-256, 2: SHA-512) and its
    /// 32 or 64 bytes; then the path's bytes to the end.
    pub(super) fn encode(&self) -> Vec<u8> {
        let tag = self.etag.tag().as_bytes();
        let path = path_bytes(&self.path);
        let mut v = Vec::with_capacity(3 + tag.len() + 1 + 2 * 65 + path.len());
        v.push(u8::from(self.etag.is_weak()));
        v.push(tag.len() as u8); // At most 255: longer tags are not recorded.
        v.extend_from_slice(tag);
        v.push(self.digests.len() as u8);
        for (a, bytes) in &self.digests {
            v.push(algorithm_id(*a));
            v.extend_from_slice(bytes);
        }
        v.extend_from_slice(&path);
        v
    }

    /// `None` for anything [`Record::encode`] would not have written.
    pub(super) fn decode(v: &[u8]) -> Option<Record> {
        let (&flags, rest) = v.split_first()?;
        if flags > 1 {
            return None;
        }
        let (&len, rest) = rest.split_first()?;
        let (tag, rest) = rest.split_at_checked(usize::from(len))?;
        let etag = EntityTag::new(flags == 1, std::str::from_utf8(tag).ok()?).ok()?;
        let (&count, mut rest) = rest.split_first()?;
        let mut digests = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let (&id, r) = rest.split_first()?;
            let a = DigestAlgorithm::ALL
                .into_iter()
                .find(|&a| algorithm_id(a) == id)?;
            let (bytes, r) = r.split_at_checked(a.output_len())?;
            if digests.iter().any(|(b, _)| *b == a) {
                return None;
            }
            digests.push((a, Box::from(bytes)));
            rest = r;
        }
        Some(Record {
            etag,
            digests,
            path: path_from_bytes(rest),
        })
    }

    /// A newer record of the same version: its tag and path win; digests add up.
    pub(super) fn absorb(&mut self, newer: Record) {
        let older = std::mem::replace(self, newer);
        self.keep_digests_of(older);
    }

    /// Adds the digests of `older` that this record lacks, if both have one tag.
    pub(super) fn keep_digests_of(&mut self, older: Record) {
        if older.etag != self.etag {
            return;
        }
        for (a, bytes) in older.digests {
            if !self.digests.iter().any(|(b, _)| *b == a) {
                self.digests.push((a, bytes));
            }
        }
    }

    /// The tags as the API hands them out; `None` if a digest does not fit its
    /// algorithm.
    pub(super) fn tags(&self) -> Option<StoredTags> {
        let digests = self
            .digests
            .iter()
            .map(|(a, bytes)| ReprDigest::from_stored(*a, bytes))
            .collect::<Option<Vec<_>>>()?;
        Some(StoredTags {
            etag: self.etag.clone(),
            digests,
        })
    }
}

#[cfg(unix)]
fn path_bytes(path: &Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str().as_bytes().to_vec()
}

#[cfg(unix)]
fn path_from_bytes(bytes: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    PathBuf::from(std::ffi::OsStr::from_bytes(bytes))
}

#[cfg(not(unix))]
fn path_bytes(path: &Path) -> Vec<u8> {
    path.to_string_lossy().into_owned().into_bytes()
}

#[cfg(not(unix))]
fn path_from_bytes(bytes: &[u8]) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_bad_bytes_do_not_decode() {
        let r = Record {
            etag: EntityTag::from_content(b"x"),
            digests: vec![
                (DigestAlgorithm::Sha512, Box::from(&[1u8; 64][..])),
                (DigestAlgorithm::Sha256, Box::from(&[2u8; 32][..])),
            ],
            path: PathBuf::from("/srv/a b/ü.iso"),
        };
        let bytes = r.encode();
        assert_eq!(Record::decode(&bytes), Some(r.clone()));
        let weak = Record {
            etag: EntityTag::new(true, "w").unwrap(),
            digests: vec![],
            path: PathBuf::new(),
        };
        assert_eq!(Record::decode(&weak.encode()), Some(weak));
        let tag_len = r.etag.tag().len();
        let mut two_sha512 = bytes.clone();
        two_sha512[3 + tag_len + 65] = 2;
        for (what, bad) in [
            ("empty", vec![]),
            ("flags", [&[2u8][..], &bytes[1..]].concat()),
            ("tag cut", bytes[..4].to_vec()),
            ("quote in tag", [&[0, 1, b'"'][..], &bytes[3..]].concat()),
            ("digest cut", bytes[..3 + tag_len + 1 + 30].to_vec()),
            ("unknown algorithm", {
                let mut b = bytes.clone();
                b[3 + tag_len] = 7;
                b
            }),
            ("algorithm twice", two_sha512),
        ] {
            assert_eq!(Record::decode(&bad), None, "{what}");
        }
    }

    #[test]
    fn keys_hold_the_whole_fingerprint() {
        let base = Fingerprint {
            dev: 1,
            ino: 2,
            size: 3,
            mtime_ns: -4,
            ctime_ns: 5,
        };
        let variants = [
            Fingerprint { dev: 9, ..base },
            Fingerprint { ino: 9, ..base },
            Fingerprint { size: 9, ..base },
            Fingerprint {
                mtime_ns: 4,
                ..base
            },
            Fingerprint {
                ctime_ns: 6,
                ..base
            },
        ];
        let (lo, hi) = inode_range(&encode_key(&base));
        for v in variants {
            assert_ne!(encode_key(&v), encode_key(&base), "{v:?}");
            let same_inode = (v.dev, v.ino) == (base.dev, base.ino);
            let k = encode_key(&v);
            assert_eq!(lo <= k && k <= hi, same_inode, "{v:?}");
        }
    }
}
