//! The tag memo: a bounded map in memory from a file version (its [`Fingerprint`]:
//! device, inode, size, mtime and ctime in ns) to its strong ETag and the digests
//! computed for it, so that tags outlive cache entries.
//!
//! Every cache has one, whatever its features. A load consults it before it would
//! hash: an entry evicted from the cache (or dropped when a listing or a burst of
//! other files pushed it out) and loaded again starts with its tag, and a `Range` or
//! an `If-Range`, `If-Match` or `If-None-Match` on it never waits for a second read of
//! the whole file. Behind the memo sits the optional persistent tag store (feature
//! `tag-store`): a version the memo does not hold is looked up there, and whatever
//! is remembered goes to both.
//!
//! * **What it may hold** is what [`Remember`] allows: only tags published by the
//!   version checks of `engine::tag` (the version had settled, or a second hash after
//!   [`SETTLE`](crate::cache::SETTLE) agreed), keyed by every fingerprint field. Any
//!   later write moves the ctime, so a changed file never finds the old record.
//! * **Bounded** by [`CacheConfig::max_remembered_versions`] records (default
//!   [`DEFAULT_MAX_REMEMBERED_VERSIONS`]), evicted by `quick_cache`'s policy (records
//!   read again stay, records seen once go first). Measured here (release build,
//!   65 536 records, resident memory before and after): 243 bytes a version, 474
//!   with both digests (SHA-256 and SHA-512), so the default bound holds 16 MiB at
//!   most, 31 MiB if every file's digests were asked for.
//! * **Cheap**: consulted once per load and written once per hash, never per request.
//! * Only on Unix, like the store: elsewhere a fingerprint has no inode and no ctime,
//!   so it could not tell a rewrite that restored the mtime, and nothing is kept.
//!
//! [`CacheConfig::max_remembered_versions`]: crate::cache::CacheConfig::max_remembered_versions

use std::path::Path;
use std::sync::Arc;

use crate::engine::fingerprint::Fingerprint;
use crate::engine::tag::{Recalled, Remember};
use crate::semantics::digest::DigestAlgorithm;
use crate::semantics::etag::EntityTag;

/// The default bound of the memo, in file versions.
pub(crate) const DEFAULT_MAX_REMEMBERED_VERSIONS: usize = 65_536;

/// What the memo keeps of one version.
#[derive(Debug)]
struct Record {
    etag: EntityTag,
    digests: Vec<(DigestAlgorithm, Box<[u8]>)>,
}

/// See the module docs.
pub(crate) struct TagMemo {
    records: quick_cache::sync::Cache<Fingerprint, Arc<Record>>,
    /// The persistent store behind the memo, if any.
    behind: Option<Arc<dyn Remember>>,
    /// Whether anything is kept in memory (a bound above 0, on Unix).
    keep: bool,
}

impl std::fmt::Debug for TagMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TagMemo")
            .field("records", &self.records.len())
            .field("capacity", &self.records.capacity())
            .field("behind", &self.behind)
            .finish()
    }
}

impl TagMemo {
    /// A memo of at most `max` versions (0: nothing is kept in memory), in front of
    /// `behind`.
    pub(crate) fn new(max: usize, behind: Option<Arc<dyn Remember>>) -> TagMemo {
        TagMemo {
            records: quick_cache::sync::Cache::new(max.max(1)),
            behind,
            keep: cfg!(unix) && max > 0,
        }
    }

    /// How many versions it holds now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    fn keeps(&self) -> bool {
        self.keep
    }
}

impl Remember for TagMemo {
    fn recall(&self, fp: &Fingerprint) -> Option<Recalled> {
        if self.keeps() {
            if let Some(r) = self.records.get(fp) {
                return Some(Recalled {
                    etag: r.etag.clone(),
                    digests: r.digests.iter().map(|(a, d)| (*a, d.to_vec())).collect(),
                });
            }
        }
        let found = self.behind.as_ref()?.recall(fp)?;
        if self.keeps() {
            let digests = found
                .digests
                .iter()
                .map(|(a, d)| (*a, d.clone().into_boxed_slice()))
                .collect();
            self.records.insert(
                *fp,
                Arc::new(Record {
                    etag: found.etag.clone(),
                    digests,
                }),
            );
        }
        Some(found)
    }

    fn remember(
        &self,
        fp: &Fingerprint,
        path: &Path,
        etag: &EntityTag,
        digests: &[(DigestAlgorithm, &[u8])],
    ) {
        if self.keeps() {
            // Merged with the digests known before for the same tag.
            let mut merged: Vec<(DigestAlgorithm, Box<[u8]>)> = match self.records.get(fp) {
                Some(old) if old.etag == *etag => old.digests.clone(),
                _ => Vec::new(),
            };
            for (a, d) in digests {
                merged.retain(|(b, _)| b != a);
                merged.push((*a, Box::from(*d)));
            }
            self.records.insert(
                *fp,
                Arc::new(Record {
                    etag: etag.clone(),
                    digests: merged,
                }),
            );
        }
        if let Some(behind) = &self.behind {
            behind.remember(fp, path, etag, digests);
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn fp(ino: u64) -> Fingerprint {
        Fingerprint {
            dev: 1,
            ino,
            size: 10,
            mtime_ns: 5,
            ctime_ns: 6,
        }
    }

    /// A store stand-in that counts what reaches it.
    #[derive(Debug, Default)]
    struct Behind {
        recalls: Mutex<Vec<Fingerprint>>,
        remembered: Mutex<Vec<(Fingerprint, usize)>>,
        knows: Mutex<Option<(Fingerprint, EntityTag)>>,
    }

    impl Remember for Behind {
        fn recall(&self, fp: &Fingerprint) -> Option<Recalled> {
            self.recalls.lock().unwrap().push(*fp);
            let knows = self.knows.lock().unwrap();
            let (k, tag) = knows.as_ref()?;
            (k == fp).then(|| Recalled {
                etag: tag.clone(),
                digests: vec![(DigestAlgorithm::Sha256, vec![7; 32])],
            })
        }
        fn remember(
            &self,
            fp: &Fingerprint,
            _: &Path,
            _: &EntityTag,
            digests: &[(DigestAlgorithm, &[u8])],
        ) {
            self.remembered.lock().unwrap().push((*fp, digests.len()));
        }
    }

    #[test]
    fn remembers_exact_versions_and_merges_digests() {
        let memo = TagMemo::new(16, None);
        let tag = EntityTag::from_content(b"0123456789");
        assert!(memo.recall(&fp(1)).is_none());
        memo.remember(&fp(1), Path::new("a"), &tag, &[]);
        memo.remember(
            &fp(1),
            Path::new("a"),
            &tag,
            &[(DigestAlgorithm::Sha256, &[1; 32])],
        );
        memo.remember(
            &fp(1),
            Path::new("a"),
            &tag,
            &[(DigestAlgorithm::Sha512, &[2; 64])],
        );
        let r = memo.recall(&fp(1)).unwrap();
        assert_eq!(r.etag, tag);
        assert_eq!(r.digests.len(), 2, "{:?}", r.digests);
        // Any other field of the fingerprint is another version.
        for other in [
            Fingerprint {
                ctime_ns: 7,
                ..fp(1)
            },
            Fingerprint {
                mtime_ns: 4,
                ..fp(1)
            },
            Fingerprint { size: 11, ..fp(1) },
            Fingerprint { dev: 2, ..fp(1) },
            fp(2),
        ] {
            assert!(memo.recall(&other).is_none(), "{other:?}");
        }
    }

    #[test]
    fn is_bounded() {
        let memo = TagMemo::new(100, None);
        let tag = EntityTag::from_content(b"x");
        for i in 0..10_000 {
            memo.remember(&fp(i), Path::new("a"), &tag, &[]);
        }
        assert!(memo.len() <= 100, "{} records", memo.len());
    }

    #[test]
    fn asks_the_store_behind_once_and_writes_through() {
        let behind = Arc::new(Behind::default());
        let tag = EntityTag::from_content(b"stored");
        *behind.knows.lock().unwrap() = Some((fp(3), tag.clone()));
        let memo = TagMemo::new(16, Some(behind.clone() as Arc<dyn Remember>));
        for _ in 0..3 {
            let r = memo.recall(&fp(3)).unwrap();
            assert_eq!((r.etag, r.digests.len()), (tag.clone(), 1));
        }
        assert_eq!(behind.recalls.lock().unwrap().len(), 1, "then from memory");
        memo.remember(&fp(4), Path::new("b"), &tag, &[]);
        assert_eq!(*behind.remembered.lock().unwrap(), vec![(fp(4), 0)]);
        assert!(memo.recall(&fp(4)).is_some());
        assert_eq!(behind.recalls.lock().unwrap().len(), 1);
    }

    #[test]
    fn a_zero_bound_keeps_nothing_but_still_asks_the_store() {
        let behind = Arc::new(Behind::default());
        let memo = TagMemo::new(0, Some(behind.clone() as Arc<dyn Remember>));
        let tag = EntityTag::from_content(b"x");
        memo.remember(&fp(1), Path::new("a"), &tag, &[]);
        assert!(memo.recall(&fp(1)).is_none());
        assert_eq!(behind.recalls.lock().unwrap().len(), 1);
        assert_eq!(behind.remembered.lock().unwrap().len(), 1);
    }
}
