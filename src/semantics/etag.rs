//! Entity tags (RFC 9110 §8.8.3): our strong content tags, and the `If-Match` /
//! `If-None-Match` lists that compare against them.
//!
//! Our tags are derived from the bytes alone: a CRC-64/XZ of the whole content
//! (crc64fast) followed by the length, `"<crc64 hex>-<length hex>"`. Two replicas
//! serving the same bytes agree, a `touch` changes nothing, and any change of content
//! or length changes the tag (a CRC detects every change of up to 64 consecutive bits
//! and, with the length alongside, an accidental collision needs two same-length
//! versions colliding in 64 bits). The tag is strong (§8.8.1): equal tags mean equal
//! bytes for all practical purposes, so byte ranges from different responses and
//! different replicas can be combined.

use std::fmt::{self, Write as _};

/// An entity tag: an opaque quoted string, weak or strong (RFC 9110 §8.8.3).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EntityTag {
    weak: bool,
    /// The `opaque-tag` without its quotes; only `etagc` characters.
    tag: Box<str>,
}

/// The error of [`EntityTag::new`] and [`EntityTag::parse`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidEntityTag;

impl fmt::Display for InvalidEntityTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid entity tag")
    }
}

impl std::error::Error for InvalidEntityTag {}

/// `etagc` of RFC 9110 §8.8.3: `%x21 / %x23-7E / obs-text`.
#[inline]
fn is_etagc(b: u8) -> bool {
    b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80
}

impl EntityTag {
    /// Makes a tag from its opaque part (without quotes).
    ///
    /// # Errors
    /// [`InvalidEntityTag`] if `tag` holds a character not allowed in an entity tag
    /// (a quote, a control character, a space).
    pub fn new(weak: bool, tag: &str) -> Result<EntityTag, InvalidEntityTag> {
        if tag.bytes().all(is_etagc) {
            Ok(EntityTag {
                weak,
                tag: tag.into(),
            })
        } else {
            Err(InvalidEntityTag)
        }
    }

    /// The strong tag of `content`: CRC-64/XZ of the bytes and the length.
    pub fn from_content(content: &[u8]) -> EntityTag {
        let mut digest = crc64fast::Digest::new();
        digest.write(content);
        EntityTag::from_crc(digest.sum64(), content.len() as u64)
    }

    /// The strong tag for a CRC-64 and a length, as [`EntityTag::from_content`] makes it.
    pub fn from_crc(crc: u64, length: u64) -> EntityTag {
        let mut s = String::with_capacity(34);
        let _ = write!(s, "{crc:016x}-{length:x}");
        EntityTag {
            weak: false,
            tag: s.into(),
        }
    }

    /// This tag with `suffix` appended to its opaque part (for example `"-br"` for a
    /// Brotli variant, so that each encoding has its own tag, RFC 9110 §8.8.3).
    ///
    /// # Errors
    /// [`InvalidEntityTag`] if `suffix` holds a character not allowed in a tag.
    pub fn with_suffix(&self, suffix: &str) -> Result<EntityTag, InvalidEntityTag> {
        let mut s = String::with_capacity(self.tag.len() + suffix.len());
        s.push_str(&self.tag);
        s.push_str(suffix);
        EntityTag::new(self.weak, &s)
    }

    /// Parses one `entity-tag` (`"xyz"` or `W/"xyz"`), with no surrounding whitespace.
    ///
    /// # Errors
    /// [`InvalidEntityTag`] for anything else.
    pub fn parse(s: &str) -> Result<EntityTag, InvalidEntityTag> {
        let (weak, opaque) = split_tag(s.as_bytes()).ok_or(InvalidEntityTag)?;
        // `opaque` is a sub-slice of `s` between ASCII quotes, hence valid UTF-8.
        let opaque = std::str::from_utf8(opaque).map_err(|_| InvalidEntityTag)?;
        Ok(EntityTag {
            weak,
            tag: opaque.into(),
        })
    }

    /// Whether the tag is weak (`W/` prefix).
    pub fn is_weak(&self) -> bool {
        self.weak
    }

    /// The opaque part, without quotes.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// Strong comparison (§8.8.3.2): both tags strong and their opaque parts equal.
    pub fn strong_eq(&self, other: &EntityTag) -> bool {
        !self.weak && !other.weak && self.tag == other.tag
    }

    /// Weak comparison (§8.8.3.2): opaque parts equal, weakness ignored.
    pub fn weak_eq(&self, other: &EntityTag) -> bool {
        self.tag == other.tag
    }

    fn matches_raw(&self, weak: bool, opaque: &[u8], strong: bool) -> bool {
        if strong && (weak || self.weak) {
            return false;
        }
        self.tag.as_bytes() == opaque
    }
}

impl fmt::Display for EntityTag {
    /// The field-value form: `"tag"` or `W/"tag"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.weak {
            f.write_str("W/")?;
        }
        write!(f, "\"{}\"", self.tag)
    }
}

impl std::str::FromStr for EntityTag {
    type Err = InvalidEntityTag;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EntityTag::parse(s)
    }
}

/// Splits `W/"abc"` / `"abc"` into (weak, opaque) when the whole input is one tag.
fn split_tag(s: &[u8]) -> Option<(bool, &[u8])> {
    let (weak, rest) = match s {
        [b'W', b'/', rest @ ..] => (true, rest),
        _ => (false, s),
    };
    match rest {
        [b'"', opaque @ .., b'"'] if opaque.iter().all(|&b| is_etagc(b)) => Some((weak, opaque)),
        _ => None,
    }
}

/// How list elements are compared with the current tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Comparison {
    /// Strong comparison (`If-Match`, `If-Range`; §13.1.1, §13.1.5).
    Strong,
    /// Weak comparison (`If-None-Match`; §13.1.2).
    Weak,
}

/// Does the `If-Match` / `If-None-Match` field value `list` match `current`?
///
/// The value is `*` or a comma-separated list of entity tags (§13.1.1, §13.1.2), with
/// optional whitespace and empty elements allowed (§5.6.1). `*` matches any current
/// representation (`current` is `Some`). Elements that are not valid entity tags never
/// match; a value made only of garbage therefore matches nothing. Allocates nothing.
pub fn list_matches(list: &str, current: Option<&EntityTag>, comparison: Comparison) -> bool {
    let bytes = list.as_bytes();
    let trimmed = trim(bytes);
    if trimmed == b"*" {
        return current.is_some();
    }
    let Some(current) = current else {
        return false;
    };
    let strong = comparison == Comparison::Strong;
    let mut i = 0;
    while i < bytes.len() {
        // Skip separators and whitespace between elements.
        while i < bytes.len() && matches!(bytes[i], b' ' | b'\t' | b',') {
            i += 1;
        }
        if i >= bytes.len() {
            break;
        }
        let start = i;
        let mut weak = false;
        if bytes[i..].starts_with(b"W/") {
            weak = true;
            i += 2;
        }
        if i < bytes.len() && bytes[i] == b'"' {
            let open = i + 1;
            let mut j = open;
            while j < bytes.len() && bytes[j] != b'"' && is_etagc(bytes[j]) {
                j += 1;
            }
            if j < bytes.len() && bytes[j] == b'"' {
                let next = j + 1;
                // A well-formed element ends at whitespace, a comma, or the end.
                let ends_cleanly =
                    next == bytes.len() || matches!(bytes[next], b' ' | b'\t' | b',');
                if ends_cleanly && current.matches_raw(weak, &bytes[open..j], strong) {
                    return true;
                }
                if ends_cleanly {
                    i = next;
                    continue;
                }
            }
        }
        // Garbage: skip to the next comma and go on (the element never matches).
        i = start;
        while i < bytes.len() && bytes[i] != b',' {
            i += 1;
        }
    }
    false
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |e| e + 1);
    &s[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strong(t: &str) -> EntityTag {
        EntityTag::new(false, t).unwrap()
    }

    #[test]
    fn crc64_check_value_is_crc64_xz() {
        // CRC-64/XZ check value of "123456789".
        let t = EntityTag::from_content(b"123456789");
        assert_eq!(t.tag(), "995dc9bbdf1939fa-9");
        assert!(!t.is_weak());
        assert_eq!(t.to_string(), "\"995dc9bbdf1939fa-9\"");
    }

    #[test]
    fn tag_depends_on_bytes_only() {
        assert_eq!(
            EntityTag::from_content(b"hello"),
            EntityTag::from_content(&b"xhello"[1..])
        );
        assert_ne!(
            EntityTag::from_content(b"hello"),
            EntityTag::from_content(b"hellp")
        );
        assert_eq!(EntityTag::from_content(b"").tag(), "0000000000000000-0");
    }

    #[test]
    fn parse_strong_and_weak() {
        assert_eq!(EntityTag::parse("\"xyz\""), Ok(strong("xyz")));
        let w = EntityTag::parse("W/\"xyz\"").unwrap();
        assert!(w.is_weak());
        assert_eq!(w.to_string(), "W/\"xyz\"");
        assert_eq!(EntityTag::parse("\"\"").unwrap().tag(), "");
    }

    #[test]
    fn parse_rejects_garbage() {
        for s in [
            "xyz", "\"x", "x\"", "w/\"x\"", "W/x", "\"a\"b\"", "\"a b\"", "",
        ] {
            assert_eq!(EntityTag::parse(s), Err(InvalidEntityTag), "{s:?}");
        }
        assert!(EntityTag::new(false, "a\"b").is_err());
    }

    #[test]
    fn strong_and_weak_comparison_table() {
        // The table of RFC 9110 §8.8.3.2.
        let w1 = EntityTag::parse("W/\"1\"").unwrap();
        let w2 = EntityTag::parse("W/\"2\"").unwrap();
        let s1 = EntityTag::parse("\"1\"").unwrap();
        assert!(!w1.strong_eq(&w1));
        assert!(w1.weak_eq(&w1));
        assert!(!w1.strong_eq(&w2));
        assert!(!w1.weak_eq(&w2));
        assert!(!w1.strong_eq(&s1));
        assert!(w1.weak_eq(&s1));
        assert!(s1.strong_eq(&s1));
        assert!(s1.weak_eq(&s1));
    }

    #[test]
    fn list_star_matches_any_current() {
        assert!(list_matches("*", Some(&strong("a")), Comparison::Strong));
        assert!(list_matches(" * ", Some(&strong("a")), Comparison::Weak));
        assert!(!list_matches("*", None, Comparison::Strong));
    }

    #[test]
    fn list_with_spaces_and_empty_elements() {
        let cur = strong("b");
        assert!(list_matches("\"a\", \"b\"", Some(&cur), Comparison::Strong));
        assert!(list_matches(
            ",,\"a\" ,, \"b\",",
            Some(&cur),
            Comparison::Strong
        ));
        assert!(!list_matches("\"a\",\"c\"", Some(&cur), Comparison::Strong));
    }

    #[test]
    fn if_match_weak_tag_never_matches_strongly() {
        let cur = strong("x");
        assert!(!list_matches("W/\"x\"", Some(&cur), Comparison::Strong));
        assert!(list_matches("W/\"x\"", Some(&cur), Comparison::Weak));
    }

    #[test]
    fn if_none_match_lone_comma_matches_nothing() {
        assert!(!list_matches(",", Some(&strong("x")), Comparison::Weak));
        assert!(!list_matches("", Some(&strong("x")), Comparison::Weak));
    }

    #[test]
    fn garbage_elements_never_match_but_valid_ones_do() {
        let cur = strong("x");
        assert!(!list_matches("x", Some(&cur), Comparison::Weak));
        assert!(!list_matches("\"x", Some(&cur), Comparison::Weak));
        assert!(!list_matches("\"x\"junk", Some(&cur), Comparison::Weak));
        assert!(!list_matches("W/ \"x\"", Some(&cur), Comparison::Weak));
        assert!(list_matches("garbage, \"x\"", Some(&cur), Comparison::Weak));
        assert!(list_matches("\"a b\", \"x\"", Some(&cur), Comparison::Weak));
        assert!(!list_matches("\u{1F600}", Some(&cur), Comparison::Weak));
    }

    #[test]
    fn suffix_variant_tag() {
        let t = strong("abc").with_suffix("-br").unwrap();
        assert_eq!(t.tag(), "abc-br");
        assert!(strong("abc").with_suffix("\"").is_err());
    }
}
