//! Loading one version of a file on a blocking thread: open, `fstat`, and either read
//! (a file of at most 64 KiB, see `engine::small`, which also loads such files on the
//! async worker when nothing can block) or map. Never on an async worker.
//!
//! A mapped file's load reads no content: the entry is served at once, and its strong
//! ETag (the CRC-64 of the whole content) is computed afterwards, in the background
//! (see `engine::tag`, which also holds the checks that make the tag describe exactly
//! one version). Two loads hash before they return, on the loading thread, with the
//! same checks (a file changed while it was hashed is loaded again; see
//! [`SETTLE`](crate::cache::SETTLE)):
//!
//! * start-up warming and other synchronous callers ([`Hash::AtLoad`], through
//!   [`Cache::get_blocking`](crate::cache::Cache::get_blocking), which the binary's `--warm`
//!   uses);
//! * a cache with [`CacheConfig::digests_at_load`](crate::cache::CacheConfig::digests_at_load),
//!   whose digests are computed here too, with the same guarantee.
//!
//! A small file read into memory is hashed from the bytes read, always at load.

use std::borrow::Cow;
use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use crate::engine::digest::{ReprDigest, DIGESTS_AVAILABLE};
use crate::engine::entry::Entry;
use crate::engine::error::CacheError;
use crate::engine::fingerprint::Fingerprint;
use crate::engine::mapping::{MapError, MappedFile, MappingWatch};
use crate::engine::open::{check_kind, open_resolved, wait_for_writes};
use crate::engine::small::read_small;
use crate::engine::tag::{hash_at_load, hash_one_version, HashLimit, PendingTag, TagCell};
use crate::semantics::content_type::content_type_for;
use crate::semantics::digest::DigestAlgorithm;
use crate::semantics::etag::EntityTag;

/// How often a load that hashes is retried when the file changes while being hashed.
const LOAD_ATTEMPTS: usize = 3;

/// Whether a load hashes the file before it returns (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hash {
    /// Hash now, on the calling (blocking) thread: start-up warming
    /// ([`Cache::get_blocking`](crate::cache::Cache::get_blocking)) and
    /// [`CacheConfig::digests_at_load`](crate::cache::CacheConfig::digests_at_load).
    AtLoad,
    /// Leave the tag of a mapped file pending, for the background (a small file read
    /// into memory is hashed from its bytes all the same).
    Later,
}

/// Opens and maps a file, and, as `hash` says, hashes it and computes the `digests`
/// given. Runs on a blocking thread. With `origin`, the mapping's watch checks at the
/// end of every body that the file was not modified. `limit` bounds the hashes of the
/// tags left pending.
pub(crate) fn load_file(
    path: &Path,
    origin: bool,
    hash: Hash,
    digests: &[DigestAlgorithm],
    limit: &HashLimit,
) -> Result<Entry, CacheError> {
    for _ in 0..LOAD_ATTEMPTS {
        let Some(entry) = load_once(path, origin, hash, limit)? else {
            continue;
        };
        // A digest is refused when the file changed while it was hashed (the entry is
        // then poisoned): load again, as for the ETag.
        if DIGESTS_AVAILABLE && !digests.iter().all(|&a| entry.digest_blocking(a).is_some()) {
            continue;
        }
        return Ok(entry);
    }
    Err(CacheError::Unstable)
}

/// One attempt; `Ok(None)` if the file was truncated or modified while being hashed.
fn load_once(
    path: &Path,
    origin: bool,
    hash: Hash,
    limit: &HashLimit,
) -> Result<Option<Entry>, CacheError> {
    let (file, canonical) = open_resolved(path)?;
    let meta = file.metadata().map_err(CacheError::from_io)?;
    check_kind(&meta)?;
    let fingerprint = Fingerprint::of(&meta);
    // A write under way already moved the times this fingerprint holds: wait until its
    // data is in the page cache too, before anything is mapped, served or hashed
    // under this fingerprint (see `wait_for_writes`).
    wait_for_writes(&file);
    // A small file is read into memory (`engine::small`).
    if hash_at_load(&fingerprint) {
        return read_small(path, &file, &meta, fingerprint, canonical, limit);
    }
    let content_type: Cow<'static, str> = content_type_for(path);
    let modified = meta.modified().ok();
    let len = usize::try_from(meta.len())
        .map_err(|_| CacheError::Io(io::Error::other("file too large to map")))?;
    if len == 0 {
        let tag = TagCell::ready(EntityTag::from_content(&[]));
        return Ok(Some(
            Entry::with_parts(
                Bytes::new(),
                tag,
                modified,
                content_type,
                None,
                Some(fingerprint),
            )
            .with_canonical_path(canonical),
        ));
    }
    let mapped = match MappedFile::map(&file, len) {
        Ok(m) => m,
        Err(MapError::Io(e)) => return Err(CacheError::from_io(e)),
        Err(MapError::Unprotected) => return Err(CacheError::Unprotected),
    };
    let poison = mapped.poison_flag().clone();
    let content = Bytes::from_owner(mapped);
    let mut hashed = None;
    let mut fingerprint = fingerprint;
    // A version the tag store knows needs no hash: its tag and digests are what they
    // were when recorded (see `engine::tag::Remember` for why that holds).
    let recalled = limit.memory().and_then(|m| m.recall(&fingerprint));
    if let Some(r) = &recalled {
        hashed = Some(r.etag.clone());
    } else if hash == Hash::AtLoad {
        let Some((etag, settled)) =
            hash_one_version(&file, &fingerprint, &content, &poison, &|| {})
                .map_err(CacheError::from_io)?
        else {
            return Ok(None);
        };
        if let Some(memory) = limit.memory() {
            memory.remember(&settled, path, &etag, &[]);
        }
        hashed = Some(etag);
        fingerprint = settled;
    }
    let mut watch = last_page_of(&file, len).map_or_else(
        || MappingWatch::new(content.clone(), poison.clone()),
        |tail| MappingWatch::with_last_page(content.clone(), poison.clone(), &tail),
    );
    if origin {
        watch = watch.with_origin(path.to_path_buf(), fingerprint);
    }
    let watch = Arc::new(watch);
    let tag = match hashed {
        Some(etag) => {
            drop(file); // No descriptor is kept once the file is mapped and hashed.
            TagCell::ready(etag).with_limit(limit)
        }
        // The tag's hash keeps the file open until it ran (see `engine::tag`).
        None => TagCell::pending(PendingTag {
            file,
            fingerprint,
            content: content.clone(),
            poison,
            watch: watch.clone(),
            limit: limit.clone(),
            path: path.to_path_buf(),
        }),
    };
    let entry = Entry::with_parts(
        content,
        tag,
        modified,
        content_type,
        Some(watch),
        Some(fingerprint),
    )
    .with_canonical_path(canonical);
    if let Some(memory) = limit.memory() {
        if let Some(r) = recalled {
            entry.restore_digests(
                r.digests
                    .iter()
                    .filter_map(|(a, bytes)| ReprDigest::from_stored(*a, bytes)),
            );
        }
        // Digests computed later are recorded too, under the tag (known by then: a
        // digest is only sent beside it).
        let (memory, path, tag) = (Arc::clone(memory), path.to_path_buf(), entry.tag_cell());
        entry.on_digest(move |d| {
            if let Some(t) = tag.get() {
                memory.remember(&fingerprint, &path, &t.etag, &[(d.algorithm(), d.bytes())]);
            }
        });
    }
    Ok(Some(entry))
}

/// The file's last page, read with `pread` rather than through the mapping (see
/// `MappingWatch::with_last_page`); `None` if it reads short (the file changed: the
/// mapping is then read instead, under the SIGBUS guard, and the tag's checks see the
/// change).
fn last_page_of(file: &File, len: usize) -> Option<Vec<u8>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        let from = MappingWatch::last_page(len);
        let mut tail = vec![0u8; len - from];
        file.read_exact_at(&mut tail, from as u64).ok()?;
        Some(tail)
    }
    #[cfg(not(unix))]
    {
        let _ = (file, len);
        None
    }
}
