//! Escaping for the two places a file name goes in a listing page: HTML text and
//! attribute values, and a URL path segment. Used by the listing's `page`; pure and
//! total (any bytes in, safe text out).

use std::borrow::Cow;

use percent_encoding::{percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// The bytes kept as they are in a link: RFC 3986's unreserved characters (§2.3).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes a file name for use as one path segment of a relative reference
/// (RFC 3986 §2.1, §3.3): every byte but the unreserved ones becomes `%XX`, so the
/// result is ASCII, contains no `/`, `?`, `#`, `%` of its own or `:` (a first segment
/// with a colon would read as a scheme, §4.2), and decodes to exactly `name`.
pub(crate) fn encode_segment(name: &[u8]) -> String {
    percent_encode(name, SEGMENT).to_string()
}

/// Escapes text for HTML text content and double-quoted attribute values: `&`, `<`,
/// `>`, `"` and `'` become character references (HTML Living Standard §13.1.2.6,
/// §13.5 "escapingString").
pub(crate) fn escape_html(s: &str) -> Cow<'_, str> {
    if !s.contains(['&', '<', '>', '"', '\'']) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A name as shown: bytes that are not UTF-8 become U+FFFD, and so do control
/// characters and the bidirectional formatting characters (U+061C, U+200E, U+200F,
/// U+202A–U+202E, U+2066–U+2069), which could otherwise make a name look like another.
/// Not escaped: pass the result to [`escape_html`].
pub(crate) fn display_name(name: &[u8]) -> String {
    String::from_utf8_lossy(name)
        .chars()
        .map(|c| {
            let bidi = matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
            if c.is_control() || bidi {
                char::REPLACEMENT_CHARACTER
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_percent_encoded_to_their_exact_bytes() {
        assert_eq!(encode_segment(b"plain-name_1.txt~"), "plain-name_1.txt~");
        assert_eq!(encode_segment(b"a b"), "a%20b");
        assert_eq!(encode_segment(b"100%.txt"), "100%25.txt");
        assert_eq!(encode_segment(b"a#b?c"), "a%23b%3Fc");
        assert_eq!(
            encode_segment(b"javascript:alert(1)"),
            "javascript%3Aalert%281%29"
        );
        assert_eq!(encode_segment(b"caf\xe9"), "caf%E9");
        assert_eq!(encode_segment("ü".as_bytes()), "%C3%BC");
        assert_eq!(encode_segment(b"\"'<>&\\"), "%22%27%3C%3E%26%5C");
    }

    #[test]
    fn html_escaping_covers_text_and_attributes() {
        assert_eq!(escape_html("plain"), "plain");
        assert!(matches!(escape_html("plain"), Cow::Borrowed(_)));
        assert_eq!(
            escape_html(r#"<img src=x onerror="a('1')">&"#),
            "&lt;img src=x onerror=&quot;a(&#39;1&#39;)&quot;&gt;&amp;"
        );
    }

    #[test]
    fn display_names_neutralise_invisible_and_reordering_characters() {
        assert_eq!(display_name(b"caf\xe9.txt"), "caf\u{FFFD}.txt");
        assert_eq!(
            display_name("a\u{202E}txt.exe".as_bytes()),
            "a\u{FFFD}txt.exe"
        );
        assert_eq!(display_name(b"a\x1bb"), "a\u{FFFD}b");
        assert_eq!(display_name("ünï cødé".as_bytes()), "ünï cødé");
    }
}
