//! The plan of a file response: a request turned once into a value, which
//! [`render`](crate::shell::render::render) turns into a `Response` without side
//! effects. Every file response is planned here — the file server's one-`stat` path
//! and its ordinary path, an [`MmapFile`](crate::MmapFile) returned from a route, a
//! listing — from the request's headers read once ([`RequestHeaders`]), the entry, how
//! it is presented ([`Presentation`]), the options, and an explicit policy for
//! validators and for the body:
//!
//! * the RFC 9110 [`Decision`] of [`decide`] (preconditions §13.2.2, then ranges §14);
//! * whether the `ETag` is sent, by the [`ValidatorPolicy`] (below);
//! * the digest fields (below), resolved here: the renderer only writes them;
//! * the body, laid out as slices of the entry's content (one slice, or the
//!   `multipart/byteranges` segments, §14.6), or copied out of the mapping when the
//!   [`BodyPolicy`] says so;
//! * extra header fields (a listing's).
//!
//! ## Validators and digests: one policy, decided once per request
//!
//! A file's strong ETag is computed after the file is first served, in the background
//! (see [`crate::engine::cache::CacheConfig::max_background_hashes`]), and remembered
//! by file version beyond its entry (`engine::tag_memo`, and the tag store when there
//! is one). A tag is needed only where a rule compares it, so every plan follows the
//! [`ValidatorPolicy`] decided from the request's method and headers:
//!
//! * [`ValidatorPolicy::IfReady`] for a GET or HEAD with none of `Range`, `If-Match`,
//!   `If-None-Match` and an `If-Range` entity tag: the answer goes out at once. If the
//!   tag is not known yet, the response carries **no `ETag`** (RFC 9110 §8.8.3 makes
//!   it a SHOULD) and no digest; `Last-Modified` is sent as always, and
//!   `If-Modified-Since`, `If-Unmodified-Since` and an `If-Range` date, which compare
//!   dates, are answered as always.
//! * [`ValidatorPolicy::Brief`] for a GET with `Range` and no tag condition (what
//!   `curl -C -`, `wget -c`, `aria2c -x8` and a media element seeking send): answered
//!   at once as `IfReady` is, single part or multipart, except that a tag whose hash
//!   will end soon is waited for, at most [`BRIEF_TAG_WAIT`]. "Soon" is decided
//!   without touching the content: the file is at most [`BRIEF_HASH_MAX`] bytes and
//!   every page of it is in memory (`mincore`), so the hash runs at memory speed
//!   (CRC-64 at about 4 GB/s here: 16 ms for 64 MiB). So the ranges of a file in
//!   memory carry the strong tag from the first one on, and a cold file, or a large
//!   one, is never read whole before its first range is sent. With
//!   [`ResponseOptions::ranges_await_tag`] a `Range` waits for the tag as `Await`
//!   does (for origins behind a slicing cache, see there).
//! * [`ValidatorPolicy::Await`] for everything else: `If-Match`, `If-None-Match`, an
//!   `If-Range` entity tag, and methods other than GET and HEAD. The response waits
//!   for the strong tag (found at once when the memo or the store knows the file's
//!   version), so `If-Range` is compared strongly (§13.1.5: a tag of another version
//!   never gets a 206), and `If-Match` / `If-None-Match` compare against the real
//!   tag. A tag that cannot be computed because the file changed while it was hashed
//!   is never sent: the file server maps the file afresh and tries again (503 after
//!   three tries, as a load that kept changing); a route's `MmapFile` answers 503.
//!
//! A file changed less than [`SETTLE`](crate::cache::SETTLE) ago whose tag is not
//! known is the exception to the first two: on coarse timestamps a writer may still be
//! writing it without `stat` showing it, so such a response waits for the tag, as
//! `Await` does (the tag's hash runs twice across the settle time and must agree).
//! Bodies sent without a tag keep every guarantee of the others: they are slices of
//! one mapping, and a body whose file changes while it is sent is cut, never
//! completed with bytes of another version (`engine::body`).
//!
//! No tag is ever sent that could describe another version: an entry's tag is set
//! once, and only after its hash proved the file unchanged (see `engine::tag`).
//!
//! A digest is computed once per entry ([`Entry::digest_blocking`]) and sent only with
//! the `ETag`. No response ever waits for one: a response sends the digests already
//! computed, and starts the missing ones in the background (on tokio's blocking pool)
//! for the responses after it — except that content of at most 256 KiB (under ~0.2 ms)
//! is hashed inline, and only when the response carries the tag. So a client that asks
//! for a digest of a large file by default (aria2 sends `Want-Digest`) gets its first
//! byte at once, and the digest from a later response on. Set `digest_at_load = true`
//! to have every digest (and the tag) from the first response, at the price of hashing
//! while loading.
//!
//! HEAD is planned as GET without a `Range` (§14.2: range handling is defined for GET
//! only); Rocket drops the body but keeps the exact `Content-Length`.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::engine::body::SegmentBody;
use crate::engine::digest::ReprDigest;
use crate::engine::entry::Entry;
use crate::engine::pace::RateLimit;
use crate::engine::respond::{answer, Answer};
use crate::semantics::date::HttpDate;
use crate::semantics::decide::{Decision, Status};
use crate::semantics::digest::DigestAlgorithm;
use crate::semantics::precondition::Method;
use crate::shell::options::ResponseOptions;
use crate::shell::request::RequestHeaders;

/// The largest content whose digest a plan computes inline, on the async worker, when
/// no one computed it before (SHA-512 of 256 KiB: ~0.4 ms here).
const INLINE_DIGEST_MAX: u64 = 256 << 10;

/// The largest body [`BodyPolicy::CopySmall`] copies out of the mapping while the
/// response is planned, so that one `stat` taken afterwards both revalidates the entry
/// and proves the copied bytes belong to it (instead of one `stat` before and one at
/// the end of the body). A copy of this size costs far less than a `stat` here (the
/// docs/performance.md has the figures); larger bodies keep both checks.
const PREFETCH_MAX: u64 = 8 * 1024;

/// How long a `Range` without a tag condition waits, at most, for a tag whose hash
/// will end soon (see the module docs). Measured here (release build, one worker, the
/// files in the page cache and never hashed, `curl -r 1000-1999`): the first byte of
/// a 206 with `ETag` came after 2.8 ms for 8 MiB, 7.7 ms for 48 MiB and 12.5 ms for
/// [`BRIEF_HASH_MAX`] = 64 MiB; of a 256 MiB file, without `ETag`, after 0.4 ms. The
/// bound leaves room for a busy CPU; a response that reaches it goes out without
/// `ETag`.
pub(crate) const BRIEF_TAG_WAIT: Duration = Duration::from_millis(50);

/// The largest file whose tag a `Range` waits for (when all of it is in memory): see
/// [`BRIEF_TAG_WAIT`].
pub(crate) const BRIEF_HASH_MAX: u64 = 64 << 20;

/// Whether a response waits for its entry's strong ETag. Decided once per request, by
/// [`ValidatorPolicy::for_request`], and nowhere else; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ValidatorPolicy {
    /// Wait for the strong tag before answering: requests whose answer depends on it
    /// (`If-Match`, `If-None-Match`, an `If-Range` entity tag), and methods other than
    /// GET and HEAD.
    Await,
    /// Answer now, but wait up to [`BRIEF_TAG_WAIT`] for a tag whose hash will end
    /// soon: a GET with `Range` and no tag condition.
    Brief,
    /// Answer now: with `ETag` (and digests) if the tag is known, without both if not.
    IfReady,
}

impl ValidatorPolicy {
    /// `Await` for a tag condition or a method other than GET and HEAD; `Brief` for a
    /// GET with `Range` (`Await` with [`ResponseOptions::ranges_await_tag`]);
    /// `IfReady` otherwise. The dates (`If-Modified-Since`, `If-Unmodified-Since`, an
    /// `If-Range` date) need no tag, and a HEAD ignores `Range` (§14.2).
    pub(crate) fn for_request(
        headers: &RequestHeaders<'_>,
        options: &ResponseOptions,
    ) -> ValidatorPolicy {
        let method = headers.method();
        if !matches!(method, Method::Get | Method::Head) || headers.has_tag_conditional() {
            ValidatorPolicy::Await
        } else if method == Method::Get && headers.has_range() {
            if options.ranges_await_tag {
                ValidatorPolicy::Await
            } else {
                ValidatorPolicy::Brief
            }
        } else {
            ValidatorPolicy::IfReady
        }
    }
}

/// How the body of a 200 or 206 is held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyPolicy {
    /// As slices of the mapping, read while the body is sent and checked at its end.
    Stream,
    /// A body of at most 8 KiB is copied out of the mapping now, when its pages are in
    /// memory, without the end-of-body check: the caller checks the file once,
    /// afterwards (the file server's one-`stat` path, see `Cache::confirm`).
    CopySmall,
}

/// The policy needs the entry's tag and it is not computed yet: wait for it
/// ([`Entry::strong_etag`]) and plan again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TagPending {
    /// Until it is computed ([`ValidatorPolicy::Await`]).
    Await,
    /// At most this long ([`ValidatorPolicy::Brief`]); then plan without it.
    AtMost(Duration),
}

impl TagPending {
    /// Waits as `self` says for `entry`'s tag. `None` if it cannot be computed (the
    /// file changed while it was hashed; the entry is poisoned). Reaching the bound of
    /// [`TagPending::AtMost`] is no failure: the caller plans without the tag.
    async fn wait(self, entry: &Entry) -> Option<()> {
        match self {
            TagPending::Await => entry.strong_etag().await.map(drop),
            TagPending::AtMost(bound) => tokio::time::timeout(bound, entry.strong_etag())
                .await
                .map_or(Some(()), |tag| tag.map(drop)),
        }
    }
}

/// How an entry is presented: everything an [`MmapFile`](crate::MmapFile) adds to its
/// entry. Set by the `MmapFile` builders.
#[derive(Clone, Debug, Default)]
pub(crate) struct Presentation {
    /// The file's path, to pick a `Cache-Control` by extension.
    pub(crate) path: Option<PathBuf>,
    pub(crate) disposition: Option<String>,
    pub(crate) cache_control: Option<String>,
    pub(crate) vary: Option<&'static str>,
    /// Overrides the entry's `Content-Type`.
    pub(crate) content_type: Option<Cow<'static, str>>,
    pub(crate) content_encoding: Option<&'static str>,
    pub(crate) limit_rate: Option<u64>,
    pub(crate) limit_rate_after: Option<u64>,
}

/// A file response, decided: what [`render`](crate::shell::render::render) writes.
/// Everything that waits, hashes or copies happened while planning.
pub(crate) struct Plan<'a> {
    pub(crate) entry: &'a Entry,
    pub(crate) presentation: &'a Presentation,
    pub(crate) decision: Decision,
    /// The `Last-Modified` to send instead of the entry's, which lies in the future
    /// (the response date, §8.8.2.1).
    pub(crate) last_modified_override: Option<String>,
    /// `ETag`: the entry's tag was known when the answer was decided.
    pub(crate) etag: Option<&'a str>,
    /// `Cache-Control`: the presentation's, or the options' for the path.
    pub(crate) cache_control: Option<&'a str>,
    /// `Repr-Digest` (RFC 9530) and `Digest` (RFC 3230), when sent.
    pub(crate) repr_digest: Option<&'a ReprDigest>,
    pub(crate) legacy_digest: Option<&'a ReprDigest>,
    /// The body of a 200 or 206 (empty for the others).
    pub(crate) body: SegmentBody,
    /// `multipart/byteranges; boundary=…`, replacing the entry's type, for several
    /// ranges.
    pub(crate) multipart_type: Option<String>,
    /// The body holds content copied out of the mapping ([`BodyPolicy::CopySmall`]):
    /// only a `stat` taken after the copy proves the bytes are one version (see
    /// `Cache::confirm`); other answers carry no content, and larger bodies check at
    /// their end.
    pub(crate) copied: bool,
    pub(crate) rate_limit: RateLimit,
    pub(crate) chunk_size: usize,
    /// Fields added to every status (a listing's).
    pub(crate) extra_headers: Vec<(&'static str, Cow<'static, str>)>,
}

impl Presentation {
    /// The `Content-Type` of the representation: the presentation's, or the entry's.
    pub(crate) fn content_type_of<'a>(&'a self, entry: &'a Entry) -> &'a Cow<'static, str> {
        self.content_type
            .as_ref()
            .unwrap_or(entry.content_type_value())
    }

    /// The rate limit: the presentation's settings over `options`'.
    fn rate_limit(&self, options: &ResponseOptions) -> RateLimit {
        RateLimit {
            bytes_per_second: self
                .limit_rate
                .unwrap_or(options.rate_limit.bytes_per_second),
            after: self.limit_rate_after.unwrap_or(options.rate_limit.after),
        }
    }
}

impl<'a> Plan<'a> {
    /// Plans the answer to a request with `headers` for `entry` presented as
    /// `presentation`. [`TagPending`] if the request's [`ValidatorPolicy`] is `Await`
    /// and the tag is not computed yet.
    pub(crate) fn new(
        entry: &'a Entry,
        presentation: &'a Presentation,
        headers: &RequestHeaders<'_>,
        options: &'a ResponseOptions,
        body_policy: BodyPolicy,
    ) -> Result<Plan<'a>, TagPending> {
        Plan::make(entry, presentation, headers, options, body_policy, false)
    }

    /// [`Plan::new`]; `waited_briefly`: the brief wait of [`ValidatorPolicy::Brief`]
    /// is spent, so plan without a tag not known by now.
    fn make(
        entry: &'a Entry,
        presentation: &'a Presentation,
        headers: &RequestHeaders<'_>,
        options: &'a ResponseOptions,
        body_policy: BodyPolicy,
        waited_briefly: bool,
    ) -> Result<Plan<'a>, TagPending> {
        let mut policy = ValidatorPolicy::for_request(headers, options);
        // Read once: the decision, the `ETag` field and the digests all follow it.
        let tag = entry.etag();
        if tag.is_none() {
            // A file changed within the settle time may still be being written
            // (several writes in one timestamp tick show no change to `stat`): its
            // bytes are served once its tag, hashed twice across the settle time, says
            // they hold still.
            if policy != ValidatorPolicy::Await && entry.settling() {
                policy = ValidatorPolicy::Await;
            }
            match policy {
                ValidatorPolicy::Await => return Err(TagPending::Await),
                ValidatorPolicy::Brief if !waited_briefly && entry.tag_soon(BRIEF_HASH_MAX) => {
                    return Err(TagPending::AtMost(BRIEF_TAG_WAIT))
                }
                _ => {}
            }
        }
        let now = HttpDate::from_system_time(SystemTime::now()).unwrap_or(HttpDate::UNIX_EPOCH);
        let content_type = presentation.content_type_of(entry);
        let Answer {
            decision,
            last_modified_override,
            body,
            multipart_type,
        } = answer(
            entry,
            content_type,
            tag,
            &headers.serve_request(),
            &options.limits,
            now,
        );
        let status = decision.status();
        let has_body = matches!(status, Status::Ok | Status::PartialContent);
        // A response without the ETag sends no digest either.
        let (repr_digest, legacy_digest) = if has_body && tag.is_some() {
            let choice = if options.digests.is_empty() {
                Default::default()
            } else {
                headers.digest_choice(&options.digests, options.digest_unsolicited)
            };
            (
                choice.repr.and_then(|a| digest_now(entry, a)),
                choice.legacy.and_then(|a| digest_now(entry, a)),
            )
        } else {
            (None, None)
        };
        // Bytes held in memory need no copy: nothing can change them.
        let copy =
            body_policy == BodyPolicy::CopySmall && entry.is_mapped() && body.len() <= PREFETCH_MAX;
        let copied = has_body && copy && !body.is_empty();
        // Copied here, on the worker, only when its pages are in memory; otherwise
        // streamed, and faulted in off the worker (`engine::fault_in`).
        let body = if has_body && copy && body.is_resident() {
            // A failed copy poisons the entry: the caller's check then discards this
            // response.
            body.copy_out()
                .map_or_else(|_| SegmentBody::empty(), SegmentBody::single)
        } else {
            body
        };
        let carries_validators = status.carries_validators();
        Ok(Plan {
            entry,
            presentation,
            decision,
            last_modified_override,
            etag: entry.etag_header().filter(|_| tag.is_some()),
            cache_control: carries_validators
                .then(|| {
                    presentation
                        .cache_control
                        .as_deref()
                        .or_else(|| options.cache_control_for(presentation.path.as_deref()))
                })
                .flatten(),
            repr_digest,
            legacy_digest,
            body,
            multipart_type,
            copied,
            rate_limit: presentation.rate_limit(options),
            chunk_size: options.chunk_size,
            extra_headers: Vec::new(),
        })
    }

    /// [`Plan::new`], waiting for a tag the policy needs (hashed on the blocking pool,
    /// once per entry). `None` if it cannot be computed: the file changed while it was
    /// hashed, and the entry is poisoned (open the file again).
    pub(crate) async fn awaiting(
        entry: &'a Arc<Entry>,
        presentation: &'a Presentation,
        headers: &RequestHeaders<'_>,
        options: &'a ResponseOptions,
        body_policy: BodyPolicy,
    ) -> Option<Plan<'a>> {
        let mut waited_briefly = false;
        loop {
            match Plan::make(
                entry,
                presentation,
                headers,
                options,
                body_policy,
                waited_briefly,
            ) {
                Ok(plan) => return Some(plan),
                Err(pending) => {
                    waited_briefly = true;
                    pending.wait(entry).await?;
                }
            }
        }
    }

    /// [`Plan::new`], waiting on this thread for a tag the policy needs, from
    /// synchronous code on an async worker (Rocket's responders): on a multi-threaded
    /// runtime, the worker hands its other tasks over (`block_in_place`) and waits for
    /// the background hash; elsewhere, hashes on this thread. `None` if the tag cannot
    /// be computed (the file changed while it was hashed).
    pub(crate) fn in_place(
        entry: &'a Entry,
        presentation: &'a Presentation,
        headers: &RequestHeaders<'_>,
        options: &'a ResponseOptions,
    ) -> Option<Plan<'a>> {
        use tokio::runtime::{Handle, RuntimeFlavor};
        let pending = match Plan::new(entry, presentation, headers, options, BodyPolicy::Stream) {
            Ok(plan) => return Some(plan),
            Err(pending) => pending,
        };
        match Handle::try_current() {
            Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| handle.block_on(pending.wait(entry)))?;
            }
            // No runtime to wait on: hash here (a `Brief` wait is for a file in
            // memory of at most `BRIEF_HASH_MAX` bytes).
            _ => {
                entry.etag_blocking()?;
            }
        }
        Plan::make(
            entry,
            presentation,
            headers,
            options,
            BodyPolicy::Stream,
            true,
        )
        .ok()
    }

    /// Adds `fields` to the response, whatever its status.
    #[cfg(feature = "browse")]
    pub(crate) fn with_headers(
        mut self,
        fields: impl IntoIterator<Item = (&'static str, Cow<'static, str>)>,
    ) -> Plan<'a> {
        self.extra_headers.extend(fields);
        self
    }
}

/// The digest of `entry` by `algorithm` to send now: the one known, else computed
/// inline for content of at most [`INLINE_DIGEST_MAX`], else started in the background
/// for the responses after this one (see the module docs).
fn digest_now(entry: &Entry, algorithm: DigestAlgorithm) -> Option<&ReprDigest> {
    let known = entry.ready_digest(algorithm);
    if known.is_some() {
        known
    } else if entry.len() <= INLINE_DIGEST_MAX {
        entry.digest_blocking(algorithm)
    } else {
        entry.start_digest(algorithm);
        None
    }
}
