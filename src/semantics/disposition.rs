//! `Content-Disposition` values (RFC 6266) with UTF-8 file names (RFC 8187).
// Used by the Rocket shell only.
#![cfg_attr(not(feature = "rocket"), allow(dead_code))]

use std::fmt::Write as _;

/// Whether a browser should display the content or save it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DispositionType {
    /// Display in the browser (`inline`).
    Inline,
    /// Save as a file (`attachment`).
    Attachment,
}

/// `attr-char` of RFC 8187 §3.2.1: characters that need no percent-encoding in an
/// extended parameter value.
fn is_attr_char(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#' | b'$' | b'&' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~'
        )
}

/// The field value for `kind` and an optional file name.
///
/// The name is sent twice, as RFC 6266 §4.3 recommends: `filename="…"` with an ASCII
/// fallback (non-ASCII characters, quotes, backslashes and controls replaced by `_`)
/// for old clients, and `filename*=UTF-8''…` (RFC 8187, percent-encoded UTF-8) which
/// every current client prefers. Path separators in `name` are replaced too, so a
/// name can never point a client at another directory.
pub fn content_disposition(kind: DispositionType, name: Option<&str>) -> String {
    let mut out = String::from(match kind {
        DispositionType::Inline => "inline",
        DispositionType::Attachment => "attachment",
    });
    let Some(name) = name else {
        return out;
    };
    let name: String = name
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    out.push_str("; filename=\"");
    for c in name.chars() {
        out.push(if c.is_ascii() && c != '"' && c != '\\' {
            c
        } else {
            '_'
        });
    }
    out.push('"');
    if !name.is_ascii() || name.contains(['"', '\\']) {
        out.push_str("; filename*=UTF-8''");
        for b in name.bytes() {
            if is_attr_char(b) {
                out.push(b as char);
            } else {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_name_is_plain() {
        assert_eq!(
            content_disposition(DispositionType::Attachment, Some("report.pdf")),
            "attachment; filename=\"report.pdf\""
        );
        assert_eq!(content_disposition(DispositionType::Inline, None), "inline");
    }

    #[test]
    fn utf8_name_gets_rfc8187_parameter() {
        assert_eq!(
            content_disposition(DispositionType::Attachment, Some("€ rates.txt")),
            "attachment; filename=\"_ rates.txt\"; filename*=UTF-8''%E2%82%AC%20rates.txt"
        );
    }

    #[test]
    fn quotes_separators_and_controls_are_neutralised() {
        let v = content_disposition(DispositionType::Inline, Some("a\"b\\c/../d\r\n.txt"));
        assert_eq!(
            v,
            "inline; filename=\"a_b_c_.._d__.txt\"; filename*=UTF-8''a%22b_c_.._d__.txt"
        );
        assert!(!v.contains('\r') && !v.contains('\n'));
    }
}
