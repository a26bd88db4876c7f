//! The `multipart/byteranges` layout (RFC 9110 §14.6).
//!
//! A layout is computed before any byte is sent: the boundary, every part header, the
//! closing delimiter and the exact total length (for `Content-Length`). It is then
//! turned into a short list of [`Bytes`] segments — header text, content slice, header
//! text, content slice, …, trailer — so content is never copied into a new buffer.
//!
//! Wire format of each part (the body starts with a CRLF, an empty preamble, as nginx
//! does; every part then has the same shape):
//!
//! ```text
//! \r\n--BOUNDARY\r\n
//! Content-Type: TYPE\r\n          (omitted if the representation has no type)
//! Content-Range: bytes FIRST-LAST/LENGTH\r\n
//! \r\n
//! <content bytes FIRST..=LAST>
//! ```
//!
//! and after the last part: `\r\n--BOUNDARY--\r\n`.

use std::fmt::Write as _;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use crate::semantics::range::ByteRange;

/// The length of the boundaries [`new_boundary`] makes.
pub(crate) const BOUNDARY_LEN: usize = 32;

/// Makes a fresh boundary: 32 hex digits, 64 unpredictable bits and a process-wide
/// counter, so that no two responses share one and content cannot be crafted to
/// contain the boundary of a future response.
pub fn new_boundary() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // `RandomState::new()` is seeded from the OS once per thread and varies per call.
    let r = std::collections::hash_map::RandomState::new().hash_one(n);
    let mut s = String::with_capacity(BOUNDARY_LEN);
    let _ = write!(s, "{r:016x}{n:016x}");
    s
}

fn digits(mut n: u64) -> u64 {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

/// An upper bound of what one part costs beyond its content, for a boundary of
/// `BOUNDARY_LEN` (32), a `Content-Type` of `content_type_len` bytes (0 for none) and a
/// representation of `length` bytes. Used by [`crate::semantics::range::plan`] to decide whether
/// a multipart body would be larger than the whole representation.
pub fn part_overhead(content_type_len: usize, length: u64) -> u64 {
    let ct = if content_type_len == 0 {
        0
    } else {
        "Content-Type: ".len() + content_type_len + 2
    };
    let d = digits(length);
    (2 + 2 + BOUNDARY_LEN + 2 + ct + "Content-Range: bytes ".len() + 4) as u64 + 3 * d + 2
        // Plus the share of the closing delimiter.
        + (2 + 2 + BOUNDARY_LEN + 2 + 2) as u64
}

/// One part: where its header lies in the shared header text, and its content range.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Part {
    header: std::ops::Range<usize>,
    content: ByteRange,
}

/// A complete multipart/byteranges layout.
#[derive(Clone, Debug)]
pub struct MultipartLayout {
    boundary: String,
    /// Every part header and the trailer, concatenated in one allocation.
    text: Bytes,
    parts: Vec<Part>,
    trailer: std::ops::Range<usize>,
    total: u64,
}

impl MultipartLayout {
    /// Lays out `ranges` (resolved against `length`) with the given part
    /// `content_type` and `boundary`. The boundary should come from [`new_boundary`];
    /// it must be 1 to 70 characters from the set of RFC 2046 §5.1.1 and not occur in
    /// the content.
    pub fn new(
        ranges: &[ByteRange],
        length: u64,
        content_type: Option<&str>,
        boundary: &str,
    ) -> MultipartLayout {
        let mut text = String::with_capacity(ranges.len() * 120 + boundary.len() + 8);
        let mut parts = Vec::with_capacity(ranges.len());
        let mut total: u64 = 0;
        for r in ranges {
            let start = text.len();
            text.push_str("\r\n--");
            text.push_str(boundary);
            text.push_str("\r\n");
            if let Some(ct) = content_type {
                text.push_str("Content-Type: ");
                text.push_str(ct);
                text.push_str("\r\n");
            }
            let _ = write!(
                text,
                "Content-Range: bytes {}-{}/{}\r\n\r\n",
                r.first, r.last, length
            );
            total += (text.len() - start) as u64 + r.len();
            parts.push(Part {
                header: start..text.len(),
                content: *r,
            });
        }
        let start = text.len();
        text.push_str("\r\n--");
        text.push_str(boundary);
        text.push_str("--\r\n");
        total += (text.len() - start) as u64;
        MultipartLayout {
            boundary: boundary.to_owned(),
            text: Bytes::from(text),
            trailer: start..start + boundary.len() + 8,
            parts,
            total,
        }
    }

    /// The boundary.
    pub fn boundary(&self) -> &str {
        &self.boundary
    }

    /// The exact length of the body, for `Content-Length`.
    pub fn content_length(&self) -> u64 {
        self.total
    }

    /// The `Content-Type` field value of the whole response.
    pub fn content_type(&self) -> String {
        format!("multipart/byteranges; boundary={}", self.boundary)
    }

    /// The number of parts.
    pub fn part_count(&self) -> usize {
        self.parts.len()
    }

    /// The body as segments over `content` (the whole representation): header text and
    /// content slices alternating, then the trailer. Every segment is a cheap
    /// reference-counted slice; nothing is copied.
    ///
    /// # Panics
    /// If `content` is shorter than the length the layout was made for.
    pub fn segments(&self, content: &Bytes) -> Vec<Bytes> {
        let mut out = Vec::with_capacity(self.parts.len() * 2 + 1);
        for part in &self.parts {
            out.push(self.text.slice(part.header.clone()));
            out.push(content.slice(part.content.to_usize_range()));
        }
        out.push(self.text.slice(self.trailer.clone()));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(first: u64, last: u64) -> ByteRange {
        ByteRange { first, last }
    }

    #[test]
    fn layout_wire_format() {
        let content = Bytes::from_static(b"0123456789abcdefghij");
        let layout = MultipartLayout::new(&[r(0, 2), r(10, 11)], 20, Some("text/plain"), "BOUND");
        let body: Vec<u8> = layout.segments(&content).concat();
        let expected = "\r\n--BOUND\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-2/20\r\n\r\n012\
                        \r\n--BOUND\r\nContent-Type: text/plain\r\nContent-Range: bytes 10-11/20\r\n\r\nab\
                        \r\n--BOUND--\r\n";
        assert_eq!(String::from_utf8(body.clone()).unwrap(), expected);
        assert_eq!(layout.content_length(), body.len() as u64);
        assert_eq!(layout.part_count(), 2);
        assert_eq!(
            layout.content_type(),
            "multipart/byteranges; boundary=BOUND"
        );
    }

    #[test]
    fn layout_without_content_type() {
        let content = Bytes::from_static(b"abcdef");
        let layout = MultipartLayout::new(&[r(0, 0), r(5, 5)], 6, None, "B");
        let body = layout.segments(&content).concat();
        assert_eq!(
            body,
            b"\r\n--B\r\nContent-Range: bytes 0-0/6\r\n\r\na\r\n--B\r\nContent-Range: bytes 5-5/6\r\n\r\nf\r\n--B--\r\n"
        );
        assert_eq!(layout.content_length(), body.len() as u64);
    }

    #[test]
    fn boundaries_are_unique_and_fixed_length() {
        let a = new_boundary();
        let b = new_boundary();
        assert_ne!(a, b);
        assert_eq!(a.len(), BOUNDARY_LEN);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn part_overhead_bounds_the_real_overhead() {
        let length = 123_456_789u64;
        let ct = "application/octet-stream";
        let ranges = [
            r(0, 0),
            r(length - 1, length - 1),
            r(99_999_999, 100_000_000),
        ];
        let layout = MultipartLayout::new(&ranges, length, Some(ct), &new_boundary());
        let content_bytes: u64 = ranges.iter().map(ByteRange::len).sum();
        let overhead = layout.content_length() - content_bytes;
        assert!(overhead <= part_overhead(ct.len(), length) * ranges.len() as u64);
        // And it is not absurdly pessimistic.
        assert!(overhead * 2 >= part_overhead(ct.len(), length) * ranges.len() as u64);
    }
}
