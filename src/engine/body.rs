//! The response body: a sized, seekable reader over a few [`Bytes`] segments.
//!
//! A full response is one segment (the mapping), a single range is one slice of it, a
//! multipart response alternates part headers and slices. Reading copies from the
//! segments straight into the caller's buffer (Rocket's chunk buffer): no buffer the
//! size of the content is ever allocated, and the per-response allocation is the
//! segment list only.
//!
//! A body may carry the [`MappingWatch`] of the memory mapping its segments point into
//! (see the engine's `mapping` module). After every copy out of the mapping the body asks the
//! watch to verify the copied bytes, then checks the poison flag; if the file was
//! truncated under the mapping, the read fails instead of returning the copied bytes,
//! so a client sees a cut connection (fewer bytes than `Content-Length`) after a
//! prefix of correct bytes, never a complete response with wrong bytes. Before the
//! last bytes are returned, the watch also checks that the file was not rewritten in
//! place since it was loaded ([`MappingWatch::verify_unmodified`]), so a response
//! that completes holds exactly one version of the file.
//!
//! A body may also be paced ([`SegmentBody::limit_rate`], see the engine's `pace`
//! module): reads are then sized by a token bucket on tokio's timer, and every check
//! above runs on them unchanged.
//! A body made for a cache's state may also carry a [`Meter`] (see `engine::stats`):
//! it counts the body in flight, the bytes it hands out and how it ended.
//!
//! Read through [`AsyncRead`], a body never copies mapped bytes whose pages are not
//! in memory: it tests their residency first and, when pages are missing, has them
//! faulted in on the background pool (`engine::background`) and returns `Pending`
//! meanwhile, reading ahead of a sequential reader (see `engine::fault_in`). The
//! synchronous [`SegmentBody::read_into`] does not: it is for blocking threads.

use std::io::{self, SeekFrom};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncSeek, ReadBuf};

use crate::engine::cache::Cache;
use crate::engine::fault_in::{copyable, Residency};
use crate::engine::mapping::MappingWatch;
use crate::engine::pace::{Pace, RateLimit};
use crate::engine::stats::{Cut, Meter};

/// The error a [`SegmentBody`] read returns once its mapping was found truncated or
/// its file rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentChanged;

impl std::fmt::Display for ContentChanged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the file was truncated or rewritten while it was being sent")
    }
}

impl std::error::Error for ContentChanged {}

/// A sized `AsyncRead + AsyncSeek` over a list of `Bytes` segments.
///
/// ```rust
/// use bytes::Bytes;
/// use rocket_mmap::cache::SegmentBody;
/// use tokio::io::AsyncReadExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// // Two slices of one buffer, as a multipart body's parts are slices of a mapping.
/// let content = Bytes::from_static(b"Hello, world!\n");
/// let mut body = SegmentBody::new(vec![content.slice(0..5), content.slice(7..12)]);
/// assert_eq!(body.len(), 10);
/// let mut sent = Vec::new();
/// body.read_to_end(&mut sent).await?;
/// assert_eq!(sent, b"Helloworld");
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct SegmentBody {
    segments: Vec<Bytes>,
    len: u64,
    /// Absolute position in the body.
    pos: u64,
    /// Index of the segment holding `pos` and the offset in it.
    idx: usize,
    off: usize,
    watch: Option<Arc<MappingWatch>>,
    /// Whether the last read checks the file against the watch's origin (one `stat`).
    verify_origin: bool,
    /// Boxed: an unpaced body pays one pointer, a paced one one allocation.
    pace: Option<Box<Pace>>,
    /// The counters this body reports to, if any.
    meter: Option<Meter>,
    /// Which pages of the mapping are in memory, and the fault-ins that bring in the
    /// others (`engine::fault_in`).
    residency: Residency,
}

impl Clone for SegmentBody {
    /// An independent body at the same position; a fault-in in flight stays with the
    /// original.
    fn clone(&self) -> SegmentBody {
        SegmentBody {
            segments: self.segments.clone(),
            len: self.len,
            pos: self.pos,
            idx: self.idx,
            off: self.off,
            watch: self.watch.clone(),
            verify_origin: self.verify_origin,
            pace: self.pace.clone(),
            meter: self.meter.clone(),
            residency: self.residency.clone(),
        }
    }
}

impl SegmentBody {
    /// A body made of `segments`, in order.
    pub fn new(segments: Vec<Bytes>) -> SegmentBody {
        let len = segments.iter().map(|s| s.len() as u64).sum();
        SegmentBody {
            segments,
            len,
            pos: 0,
            idx: 0,
            off: 0,
            watch: None,
            verify_origin: true,
            pace: None,
            meter: None,
            residency: Residency::default(),
        }
    }

    /// A body of one segment.
    pub fn single(bytes: Bytes) -> SegmentBody {
        SegmentBody::new(vec![bytes])
    }

    /// An empty body.
    pub fn empty() -> SegmentBody {
        SegmentBody::new(Vec::new())
    }

    /// Attaches the watch of the mapping the segments point into.
    pub(crate) fn with_watch(mut self, watch: Option<Arc<MappingWatch>>) -> SegmentBody {
        self.watch = watch;
        self
    }

    /// Paces reads by `limit` (nginx's `limit_rate` / `limit_rate_after`) when it is
    /// not [`RateLimit::OFF`]. Reads through [`AsyncRead`] wait on tokio's timer (the
    /// body must be polled within a runtime); [`SegmentBody::read_into`] is not paced.
    pub fn limit_rate(mut self, limit: RateLimit) -> SegmentBody {
        self.pace = (!limit.is_off()).then(|| Box::new(Pace::new(limit)));
        if let (Some(_), Some(meter)) = (&self.pace, &mut self.meter) {
            meter.set_paced();
        }
        self
    }

    /// Counts this body in `cache`'s counters ([`Cache::stats`]): bytes handed out,
    /// in flight from its first read to its end, and whether it completed or was cut
    /// (and why). The responders do this for every body they send; call it when you
    /// build responses from the engine yourself.
    pub fn counted_in(mut self, cache: &Cache) -> SegmentBody {
        let mut meter = Meter::new(cache.counters().clone());
        if self.pace.is_some() {
            meter.set_paced();
        }
        self.meter = Some(meter);
        self.residency.faulted_in_by(cache.pager().clone());
        self
    }

    /// The total length in bytes (the `Content-Length`).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the body has no bytes at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The segments.
    pub fn segments(&self) -> &[Bytes] {
        &self.segments
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> u64 {
        self.len - self.pos
    }

    #[inline]
    fn poisoned(&self) -> bool {
        self.watch.as_ref().is_some_and(|w| w.is_poisoned())
    }

    /// Copies as much as fits into `dst` from the current position; returns the count.
    /// Neither paced nor faulted in ahead: a page that is not in memory is read from
    /// disk by the copy itself, so call it on a blocking thread, not an async worker.
    pub fn read_into(&mut self, dst: &mut ReadBuf<'_>) -> io::Result<usize> {
        self.read_limited(dst, usize::MAX)
    }

    /// Copies at most `limit` bytes into `dst`. This is the only place where content
    /// bytes are read.
    fn read_limited(&mut self, dst: &mut ReadBuf<'_>, limit: usize) -> io::Result<usize> {
        let filled_before = dst.filled().len();
        let mut copied = 0;
        // End offset, in the mapping, of the last bytes copied out of it.
        let mut mapped_end = None;
        while dst.remaining() > 0 && copied < limit && self.idx < self.segments.len() {
            let seg = &self.segments[self.idx];
            let avail = &seg[self.off..];
            let n = avail.len().min(dst.remaining()).min(limit - copied);
            dst.put_slice(&avail[..n]);
            if n > 0 {
                if let Some(w) = &self.watch {
                    if let Some(offset) = w.offset_of(avail.as_ptr()) {
                        mapped_end = Some(offset + n);
                    }
                }
            }
            copied += n;
            self.off += n;
            if self.off == seg.len() {
                self.idx += 1;
                self.off = 0;
            }
        }
        if let Some(w) = &self.watch {
            if let Some(end) = mapped_end {
                w.verify_through(end);
            }
            if self.verify_origin && copied > 0 && self.pos + copied as u64 == self.len {
                // The last bytes: make sure no write reached the mapping meanwhile.
                w.verify_unmodified();
            }
        }
        // Checked after the copy: a fault during the copy set the flag before the
        // zero page it mapped could be read (see `crate::engine::mapping`).
        if self.poisoned() {
            // Take back what was copied (callers such as tokio's `read_to_end` require
            // a failed read to fill nothing), and leave the body exhausted; every later
            // read fails too (the flag is sticky).
            dst.set_filled(filled_before);
            self.idx = self.segments.len();
            self.pos = self.len;
            if let Some(m) = &mut self.meter {
                let rewritten = self.watch.as_ref().is_some_and(|w| w.found_rewritten());
                m.cut(if rewritten {
                    Cut::FileChanged
                } else {
                    Cut::Truncated
                });
            }
            return Err(io::Error::other(ContentChanged));
        }
        self.pos += copied as u64;
        if let Some(m) = &mut self.meter {
            m.read(copied, self.pos == self.len);
        }
        Ok(copied)
    }

    /// The remaining bytes, copied into one buffer (as the file server sends a small
    /// body whose pages are in memory: see [`SegmentBody::is_resident`]).
    ///
    /// The copy is checked for truncation (the SIGBUS guard, the last page's
    /// sentinel), but **not against the file**: a body read to its end makes one
    /// `stat` before its last bytes, so that a response never holds bytes of two
    /// versions of a file rewritten in place; this copy leaves that check to its
    /// caller, after the copy, and the bytes must be dropped if it fails. Under
    /// [`Revalidate::Always`](crate::cache::Revalidate::Always), looking the path up
    /// again is that check: [`Cache::get`] compares a `stat` with the entry, and a
    /// file's times move before a `write` changes its bytes, so the same entry again
    /// ([`Arc::ptr_eq`]) proves the bytes copied before are that version's. (The file
    /// server makes that one `stat` for the lookup and the copy at once.)
    ///
    /// ```rust
    /// use std::sync::Arc;
    /// use std::time::SystemTime;
    /// use rocket_mmap::cache::{respond, Cache, CacheConfig, Revalidate};
    /// use rocket_mmap::semantics::decide::ServeRequest;
    /// use rocket_mmap::semantics::precondition::Method;
    /// use rocket_mmap::semantics::range::RangeLimits;
    ///
    /// # let dir = std::env::temp_dir().join(format!("rocket-mmap-doc-copy-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir).unwrap();
    /// # let path = dir.join("small.txt");
    /// # std::fs::write(&path, "Hello, world!\n").unwrap();
    /// let cache = Cache::new(CacheConfig {
    ///     revalidate: Revalidate::Always,
    ///     ..CacheConfig::default()
    /// });
    /// let entry = cache.get_blocking(&path)?;
    /// let request = ServeRequest::new(Method::Get);
    /// let reply = respond(&entry, &request, &RangeLimits::default(), SystemTime::now());
    /// if reply.body.is_resident() {
    ///     let bytes = reply.body.copy_out()?;
    ///     // The check the copy left out: is the file still the version copied from?
    ///     let unchanged = Arc::ptr_eq(&cache.get_blocking(&path)?, &entry);
    ///     assert!(unchanged); // otherwise drop `bytes`, and answer from the new entry
    ///     assert_eq!(bytes, "Hello, world!\n");
    /// }
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`ContentChanged`] if the mapping was found truncated.
    pub fn copy_out(mut self) -> io::Result<Bytes> {
        self.verify_origin = false;
        let mut out = vec![0u8; self.remaining() as usize];
        let mut buf = ReadBuf::new(&mut out);
        while self.remaining() > 0 {
            if self.read_into(&mut buf)? == 0 {
                break;
            }
        }
        let n = buf.filled().len();
        out.truncate(n);
        Ok(Bytes::from(out))
    }

    /// The mapping offset of the current position and the end of its segment there,
    /// if the current segment is a slice of the watched mapping.
    fn mapped_at(&self) -> Option<(usize, usize)> {
        let watch = self.watch.as_ref()?;
        let seg = self.segments.get(self.idx)?;
        let rest = seg.get(self.off..).filter(|r| !r.is_empty())?;
        let at = watch.offset_of(rest.as_ptr())?;
        Some((at, at + rest.len()))
    }

    /// Whether every mapped byte left to read is in memory now, with the page each
    /// copy's truncation probe reads (one `mincore` per segment; nothing is read):
    /// copying the rest with [`SegmentBody::read_into`] or [`SegmentBody::copy_out`]
    /// then waits for no disk, so a caller may do it on an async worker. Always `true`
    /// for a body that points into no mapping.
    pub fn is_resident(&self) -> bool {
        let Some(watch) = &self.watch else {
            return true;
        };
        self.segments[self.idx.min(self.segments.len())..]
            .iter()
            .enumerate()
            .all(|(i, seg)| {
                let rest = if i == 0 {
                    &seg[self.off.min(seg.len())..]
                } else {
                    &seg[..]
                };
                match watch.offset_of(rest.as_ptr()) {
                    Some(at) if !rest.is_empty() => {
                        let end = at + rest.len();
                        copyable(
                            watch,
                            (at, watch.resident_until(at, watch.needed_through(end))),
                            at,
                            end,
                        ) == rest.len()
                    }
                    _ => true,
                }
            })
    }

    /// How many bytes from the current position can be copied without a disk read
    /// (looking no further than `want` bytes ahead): `usize::MAX` outside the
    /// mapping; otherwise the resident run from here, after waiting (`Pending`) for a
    /// fault-in when the page here (or the page its truncation probe reads) is
    /// missing. Starts the fault-in of the next window while the reader copies the one
    /// it knows (see `engine::fault_in`). `Ready(0)` only when a fault-in found the
    /// mapping truncated (it is then poisoned, and the read fails).
    fn poll_resident(&mut self, cx: &mut Context<'_>, want: usize) -> Poll<usize> {
        let Some(watch) = self.watch.clone() else {
            return Poll::Ready(usize::MAX);
        };
        loop {
            let Some((at, seg_end)) = self.mapped_at() else {
                // A part header (or the end): free to copy, and so is what follows it
                // as far as it is resident.
                let Some(seg) = self.segments.get(self.idx) else {
                    return Poll::Ready(usize::MAX);
                };
                let run = seg.len() - self.off;
                if run == 0 {
                    // An empty segment: step over it (the position does not move), so
                    // that an empty run never reads as the end of the body.
                    self.idx += 1;
                    self.off = 0;
                    continue;
                }
                return Poll::Ready(run + self.resident_after(want.saturating_sub(run)));
            };
            let run = ready!(self.residency.poll_run(cx, &watch, at, seg_end));
            if run == usize::MAX || at + run < seg_end || run >= want {
                return Poll::Ready(run);
            }
            return Poll::Ready(run + self.resident_after(want - run));
        }
    }

    /// How many bytes of the segments after the current one can be copied without a
    /// disk read, looking no further than `want` bytes: part headers (not mapped)
    /// always, mapped slices as far as they are resident now. No fault-in is started
    /// here; the next read starts one where this run ends.
    fn resident_after(&self, want: usize) -> usize {
        let mut run = 0;
        for seg in self.segments.iter().skip(self.idx + 1) {
            if run >= want {
                break;
            }
            let mapped = self
                .watch
                .as_ref()
                .and_then(|w| Some((w, w.offset_of(seg.as_ptr())?)));
            match mapped {
                Some((watch, at)) if !seg.is_empty() => {
                    let end = at + seg.len().min(want - run);
                    let ready = watch.resident_until(at, watch.needed_through(end));
                    let n = copyable(watch, (at, ready), at, end);
                    run += n;
                    if at + n < end {
                        break;
                    }
                }
                _ => run += seg.len(),
            }
        }
        run
    }

    fn seek_to(&mut self, pos: u64) {
        self.pos = pos.min(self.len);
        let mut left = self.pos;
        self.idx = 0;
        self.off = 0;
        while self.idx < self.segments.len() {
            let l = self.segments[self.idx].len() as u64;
            if left < l {
                self.off = left as usize;
                return;
            }
            left -= l;
            self.idx += 1;
        }
    }
}

impl AsyncRead for SegmentBody {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // Bytes from here on whose pages are in memory: copying them takes no disk
        // read on this worker.
        let resident = ready!(this.poll_resident(cx, buf.remaining()));
        let (pos, mut limit) = (this.pos, resident);
        if let Some(pace) = &mut this.pace {
            let want = (buf.remaining() as u64).min(this.len - this.pos);
            limit = limit.min(ready!(pace.poll_allowance(cx, pos, want)));
        }
        // The bytes `read_limited` put into `buf` before failing are not returned: the
        // caller (tokio-util's `poll_read_buf`, used by Rocket) only commits them on Ok.
        let read = this.read_limited(buf, limit);
        if let (Some(pace), Ok(n)) = (&mut this.pace, &read) {
            pace.consumed(pos, *n as u64);
        }
        Poll::Ready(read.map(|_| ()))
    }
}

impl AsyncSeek for SegmentBody {
    fn start_seek(self: Pin<&mut Self>, position: SeekFrom) -> io::Result<()> {
        let this = self.get_mut();
        let target = match position {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => this.len.checked_add_signed(d),
            SeekFrom::Current(d) => this.pos.checked_add_signed(d),
        };
        match target {
            Some(t) => {
                this.seek_to(t);
                Ok(())
            }
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek to a negative or overflowing position",
            )),
        }
    }

    fn poll_complete(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        Poll::Ready(Ok(self.pos))
    }
}

#[cfg(test)]
mod tests;
