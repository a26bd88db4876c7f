//! A servable representation: content as [`Bytes`], plus every validator and header
//! value computed once.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

use crate::engine::digest::{Digests, ReprDigest, Source};
use crate::engine::fingerprint::Fingerprint;
use crate::engine::mapping::MappingWatch;
use crate::engine::tag::TagCell;
use crate::semantics::date::HttpDate;
use crate::semantics::digest::DigestAlgorithm;
use crate::semantics::encoding::Siblings;
use crate::semantics::etag::EntityTag;

/// A representation ready to serve: a file's mapping or an in-memory blob, with its
/// strong ETag, Last-Modified and content type, and their header values formatted once.
///
/// Cheap to share: the cache hands out `Arc<Entry>`, and every response body is a
/// slice of [`Entry::content`].
///
/// The ETag is a once-set value: in-memory entries have it from the start; a file
/// loaded by the cache is served before it is hashed, and gets its tag when its
/// background hash ends ([`Entry::etag`] is `None` until then; [`Entry::strong_etag`]
/// waits for it). The tag is published only if the hash proved it describes this
/// entry's version; no tag ever describes another version.
///
/// ```rust
/// use rocket_mmap::cache::Entry;
/// use rocket_mmap::EntityTag;
///
/// let entry = Entry::from_static(b"Hello, world!\n", "text/plain; charset=utf-8");
/// assert_eq!(entry.len(), 14);
/// assert_eq!(entry.content_type(), "text/plain; charset=utf-8");
/// // In-memory content is hashed at once: its strong ETag is known.
/// let tag = EntityTag::from_content(b"Hello, world!\n");
/// assert_eq!(entry.etag(), Some(&tag));
/// assert_eq!(entry.etag_header(), Some(tag.to_string().as_str()));
/// ```
#[derive(Debug)]
pub struct Entry {
    content: Bytes,
    watch: Option<Arc<MappingWatch>>,
    tag: Arc<TagCell>,
    last_modified: Option<HttpDate>,
    last_modified_header: Option<String>,
    content_type: Cow<'static, str>,
    fingerprint: Option<Fingerprint>,
    canonical_path: Option<std::path::PathBuf>,
    siblings: std::sync::OnceLock<Siblings>,
    digests: Arc<Digests>,
}

impl Entry {
    /// An entry for in-memory content, hashed now (CRC-64 runs at several GB/s; hash
    /// large blobs off the async threads). `content_type` is the full field value,
    /// e.g. `text/html; charset=utf-8`.
    pub fn from_bytes(
        content: impl Into<Bytes>,
        content_type: impl Into<Cow<'static, str>>,
    ) -> Entry {
        let content = content.into();
        let etag = EntityTag::from_content(&content);
        Entry::with_etag(content, etag, content_type)
    }

    /// An entry for a `'static` byte string (e.g. `include_bytes!`), without copying it.
    pub fn from_static(content: &'static [u8], content_type: &'static str) -> Entry {
        Entry::from_bytes(Bytes::from_static(content), content_type)
    }

    /// An entry whose ETag the caller already knows (for example a build-time hash).
    pub fn with_etag(
        content: impl Into<Bytes>,
        etag: EntityTag,
        content_type: impl Into<Cow<'static, str>>,
    ) -> Entry {
        Entry::with_parts(
            content.into(),
            TagCell::ready(etag),
            None,
            content_type.into(),
            None,
            None,
        )
    }

    pub(crate) fn with_parts(
        content: Bytes,
        tag: TagCell,
        last_modified: Option<SystemTime>,
        content_type: Cow<'static, str>,
        watch: Option<Arc<MappingWatch>>,
        fingerprint: Option<Fingerprint>,
    ) -> Entry {
        let last_modified = last_modified.and_then(HttpDate::from_system_time);
        Entry {
            last_modified_header: last_modified.map(HttpDate::to_imf_fixdate),
            last_modified,
            content,
            watch,
            tag: Arc::new(tag),
            content_type,
            fingerprint,
            canonical_path: None,
            siblings: std::sync::OnceLock::new(),
            digests: Arc::default(),
        }
    }

    /// Which precompressed siblings (`.br`, `.gz`) this file version has: `probe` runs
    /// once per entry, so the file system is asked once per version of the file, not
    /// on every request (see [`Cache::siblings`](crate::engine::cache::Cache::siblings)).
    pub(crate) fn siblings_with(&self, probe: impl FnOnce() -> Siblings) -> Siblings {
        *self.siblings.get_or_init(probe)
    }

    /// The siblings, if a probe already ran for this version.
    pub(crate) fn known_siblings(&self) -> Option<Siblings> {
        self.siblings.get().copied()
    }

    pub(crate) fn with_canonical_path(mut self, p: Option<std::path::PathBuf>) -> Entry {
        self.canonical_path = p;
        self
    }

    /// The file's path with every symbolic link resolved, as found when it was loaded
    /// (files only). The file server checks it against its root.
    pub fn canonical_path(&self) -> Option<&std::path::Path> {
        self.canonical_path.as_deref()
    }

    /// Sets the Last-Modified date (truncated to seconds; dates before 1970 or after
    /// 9999 are dropped, as no HTTP date can express them).
    pub fn last_modified_at(mut self, t: SystemTime) -> Entry {
        self.last_modified = HttpDate::from_system_time(t);
        self.last_modified_header = self.last_modified.map(HttpDate::to_imf_fixdate);
        self
    }

    /// The whole content.
    pub fn content(&self) -> &Bytes {
        &self.content
    }

    /// The length in bytes.
    pub fn len(&self) -> u64 {
        self.content.len() as u64
    }

    /// Whether the content is empty.
    pub fn is_empty(&self) -> bool {
        self.content.is_empty()
    }

    /// The strong entity tag, if it is known: always for in-memory entries; for a file,
    /// once its hash has run (see [`Entry::strong_etag`]). Never waits.
    pub fn etag(&self) -> Option<&EntityTag> {
        self.tag.get().map(|t| &t.etag)
    }

    /// The `ETag` field value, quotes included, if the tag is known.
    pub fn etag_header(&self) -> Option<&str> {
        self.tag.get().map(|t| t.header.as_str())
    }

    /// The strong entity tag, waiting for the file's hash if it has not run yet (it
    /// runs on tokio's blocking pool, once per entry, however many callers wait; a
    /// caller that stops waiting does not cancel it). `None` if the file changed while
    /// it was hashed: the entry is then poisoned, and the cache maps the file afresh.
    /// Must be called within a tokio runtime.
    pub async fn strong_etag(&self) -> Option<&EntityTag> {
        self.tag.wait().await.map(|t| &t.etag)
    }

    /// [`Entry::strong_etag`] on the calling thread: hashes here unless the tag is
    /// known (or waits for the hash another thread runs). For start-up warming and
    /// other synchronous contexts; never on an async worker.
    pub fn etag_blocking(&self) -> Option<&EntityTag> {
        self.tag.compute_blocking().map(|t| &t.etag)
    }

    /// Starts the tag's hash in the background, if the cache that loaded the entry
    /// hashes in the background
    /// ([`CacheConfig::max_background_hashes`](crate::cache::CacheConfig::max_background_hashes)).
    pub(crate) fn start_etag(&self) {
        self.tag.start_background();
    }

    /// Whether the tag is known, or its hash would end within a few milliseconds if it
    /// ran now: the content is at most `max` bytes and every page of it is in memory
    /// (one `mincore` per 2 MiB; nothing is read), so hashing it reads no disk. For a
    /// responder deciding whether a short wait for the tag is worth it (the file
    /// server waits up to 50 ms for a file of at most 64 MiB before it answers a
    /// `Range` without one).
    ///
    /// ```rust
    /// use rocket_mmap::cache::Entry;
    ///
    /// let entry = Entry::from_static(b"in memory", "text/plain");
    /// assert!(entry.tag_soon(0), "an in-memory entry's tag is known");
    /// ```
    pub fn tag_soon(&self, max: u64) -> bool {
        if self.tag.get().is_some() {
            return true;
        }
        if self.tag.failed() || self.len() > max {
            return false;
        }
        let len = self.content.len();
        self.watch
            .as_ref()
            .is_some_and(|w| w.resident_until(0, len) == len)
    }

    /// Whether the entry will never have a tag: its file changed while it was hashed
    /// (the entry is then poisoned too).
    pub fn etag_failed(&self) -> bool {
        self.tag.failed()
    }

    /// The Last-Modified date, if known.
    pub fn last_modified(&self) -> Option<HttpDate> {
        self.last_modified
    }

    /// The `Last-Modified` field value, if known.
    pub fn last_modified_header(&self) -> Option<&str> {
        self.last_modified_header.as_deref()
    }

    /// The `Content-Type` field value.
    pub fn content_type(&self) -> &str {
        &self.content_type
    }

    /// The `Content-Type` field value as stored: borrowed (no copy per response) for
    /// every type the crate's extension table (`semantics::content_type`) gives.
    pub fn content_type_value(&self) -> &Cow<'static, str> {
        &self.content_type
    }

    /// Whether this entry's file changed less than [`SETTLE`](crate::cache::SETTLE)
    /// ago: a writer may still be writing this version unseen, so its tag waits for
    /// the settled second hash, and an answer without the tag should wait for it too
    /// (the file server's does). Never for entries made from bytes in memory.
    pub fn settling(&self) -> bool {
        self.fingerprint()
            .is_some_and(crate::engine::tag::changed_within_settle)
    }

    /// The fingerprint of the file version this entry was made from (files only).
    pub(crate) fn fingerprint(&self) -> Option<&Fingerprint> {
        self.fingerprint.as_ref()
    }

    /// Whether the content is a mapping of a file (not bytes in memory).
    pub(crate) fn is_mapped(&self) -> bool {
        self.watch.is_some()
    }

    /// The mapping's watch (mapped files only): its poison flag and truncation probe.
    /// Crate-internal: the mapping's guard is no part of the public API.
    pub(crate) fn watch(&self) -> Option<&Arc<MappingWatch>> {
        self.watch.as_ref()
    }

    fn source(&self) -> Source<'_> {
        Source {
            content: &self.content,
            watch: self.watch.as_ref(),
            limit: self.tag.hash_limit(),
        }
    }

    /// The digest of the whole content with `algorithm` (RFC 9530's representation
    /// digest), computed once per entry on tokio's blocking pool: concurrent callers
    /// share one computation, and a caller that stops waiting does not cancel it.
    /// `None` if the content changed under the mapping while it was hashed (the entry
    /// is then poisoned, and the cache loads the file afresh), or without the `digest`
    /// feature. Must be called within a tokio runtime.
    pub async fn digest(&self, algorithm: DigestAlgorithm) -> Option<&ReprDigest> {
        self.digests.wait(algorithm, self.source()).await
    }

    /// The digest, if it is already computed (never waits).
    pub fn ready_digest(&self, algorithm: DigestAlgorithm) -> Option<&ReprDigest> {
        self.digests.ready(algorithm)
    }

    /// Starts computing the digest in the background (on a blocking pool) unless it
    /// is computed or being computed; outside a tokio runtime, computes it now.
    pub fn start_digest(&self, algorithm: DigestAlgorithm) {
        self.digests.start(algorithm, self.source());
    }

    /// Computes the digest on the calling thread unless it is already known; for
    /// start-up warming and other synchronous contexts (never on an async worker).
    pub fn digest_blocking(&self, algorithm: DigestAlgorithm) -> Option<&ReprDigest> {
        self.digests.compute_blocking(algorithm, self.source())
    }

    /// The entry's tag cell (shared), for hooks that need the tag once it is known.
    pub(crate) fn tag_cell(&self) -> Arc<TagCell> {
        Arc::clone(&self.tag)
    }

    /// Fills in digests known from an earlier run of this version (the tag store).
    pub(crate) fn restore_digests(&self, digests: impl IntoIterator<Item = ReprDigest>) {
        for d in digests {
            self.digests.restore(d);
        }
    }

    /// Hands every digest computed for this entry from now on to `f`.
    pub(crate) fn on_digest(&self, f: impl Fn(&ReprDigest) + Send + Sync + 'static) {
        self.digests
            .on_computed(crate::engine::digest::OnComputed(Box::new(f)));
    }

    /// Counts this entry's digest computations in `counters` (its cache's), those made
    /// so far included.
    pub(crate) fn count_digests_in(&self, counters: &Arc<crate::engine::stats::Counters>) {
        let so_far = u64::from(self.digests.computations());
        counters
            .digests_computed
            .fetch_add(so_far, std::sync::atomic::Ordering::Relaxed);
        self.digests.count_in(counters);
    }

    /// How many times this entry's content has been hashed for digests (all
    /// algorithms): one per algorithm used, however many requests asked at once.
    pub fn digest_computations(&self) -> u32 {
        self.digests.computations()
    }

    /// Whether the file was truncated under the mapping (a read past its new end was
    /// caught) or a body found it rewritten in place. A poisoned entry is never served
    /// again.
    pub fn is_poisoned(&self) -> bool {
        self.watch.as_ref().is_some_and(|w| w.is_poisoned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_entry_has_content_etag() {
        let e = Entry::from_static(b"123456789", "text/plain");
        assert_eq!(e.etag_header(), Some("\"995dc9bbdf1939fa-9\""));
        assert_eq!(e.len(), 9);
        assert!(e.last_modified().is_none());
        assert!(!e.is_poisoned());
        let owned = Entry::from_bytes(b"123456789".to_vec(), "text/plain");
        assert_eq!(owned.etag(), e.etag());
    }

    #[test]
    fn last_modified_formats_once_and_rejects_unrepresentable() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(784_111_777);
        let e = Entry::from_static(b"x", "text/plain").last_modified_at(t);
        assert_eq!(
            e.last_modified_header(),
            Some("Sun, 06 Nov 1994 08:49:37 GMT")
        );
        let old = std::time::UNIX_EPOCH - std::time::Duration::from_secs(1);
        let e = Entry::from_static(b"x", "text/plain").last_modified_at(old);
        assert_eq!(e.last_modified_header(), None);
    }
}
