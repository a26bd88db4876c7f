//! Content codings for precompressed variants: `Accept-Encoding` negotiation
//! (RFC 9110 §12.5.3) between the identity file and its `.br` / `.gz` siblings.
//!
//! Decisions:
//! * **No `Accept-Encoding` → identity.** §12.5.3 says any coding is then acceptable,
//!   but a client that sends none (curl without `--compressed`, many scripts) would
//!   store compressed bytes as if they were the file; every major server sends
//!   identity here too.
//! * The highest `q` wins among the available codings; a coding with `q=0` is never
//!   chosen; `*` stands for every coding the field does not name. Identity competes
//!   only when the field weighs it (`identity;q=…` or `*;q=…`): §12.5.3 makes an
//!   unnamed identity acceptable, not preferred, so `gzip;q=0.8` alone gets gzip (as
//!   nginx's `gzip_static` does). On a tie an encoded variant beats identity (it is
//!   smaller), and Brotli beats gzip.
//! * Codings and `q` are case-insensitive; malformed elements are skipped; a `q` value
//!   that does not parse makes its element unacceptable.
// Used by the Rocket shell only.
#![cfg_attr(not(feature = "rocket"), allow(dead_code))]

/// A content coding we can serve from a precompressed sibling file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coding {
    /// Brotli, from `FILE.br`.
    Br,
    /// gzip, from `FILE.gz`.
    Gzip,
}

impl Coding {
    /// The `Content-Encoding` token.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Br => "br",
            Coding::Gzip => "gzip",
        }
    }

    /// The extension of the sibling file, with its dot.
    pub fn extension(self) -> &'static str {
        match self {
            Coding::Br => ".br",
            Coding::Gzip => ".gz",
        }
    }

    /// Preference on equal `q`: Brotli first.
    fn rank(self) -> u8 {
        match self {
            Coding::Br => 2,
            Coding::Gzip => 1,
        }
    }
}

/// Which precompressed siblings a file has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Siblings {
    /// `FILE.br` exists.
    pub br: bool,
    /// `FILE.gz` exists.
    pub gzip: bool,
}

impl Siblings {
    /// Whether any sibling exists (then every response varies on Accept-Encoding).
    pub fn any(self) -> bool {
        self.br || self.gzip
    }

    fn has(self, c: Coding) -> bool {
        match c {
            Coding::Br => self.br,
            Coding::Gzip => self.gzip,
        }
    }
}

/// A `q` value (§12.4.2) in thousandths; `None` if malformed. (Also RFC 3230's
/// `Want-Digest` weights, in [`crate::semantics::digest`].)
pub(crate) fn parse_q(s: &str) -> Option<u16> {
    let s = s.trim();
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths: u16 = 0;
    for (i, b) in frac.bytes().enumerate() {
        thousandths += u16::from(b - b'0') * [100, 10, 1][i];
    }
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// The `q` of each coding in the field: (br, gzip, identity, `*`), in thousandths,
/// `None` where the field does not name it.
fn weights(field: &str) -> [Option<u16>; 4] {
    let mut w = [None; 4];
    for element in field.split(',') {
        let mut parts = element.split(';');
        let name = parts.next().unwrap_or("").trim();
        if name.is_empty() {
            continue;
        }
        let mut q = Some(1000);
        for param in parts {
            if let Some((k, v)) = param.split_once('=') {
                if k.trim().eq_ignore_ascii_case("q") {
                    q = parse_q(v);
                }
            }
        }
        let q = q.unwrap_or(0);
        let slot = if name.eq_ignore_ascii_case("br") {
            0
        } else if name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip") {
            1
        } else if name.eq_ignore_ascii_case("identity") {
            2
        } else if name == "*" {
            3
        } else {
            continue;
        };
        // A coding named twice: keep the higher q.
        w[slot] = Some(w[slot].map_or(q, |old: u16| old.max(q)));
    }
    w
}

/// The coding to send for an `Accept-Encoding` field, given the available siblings;
/// `None` means identity (the file itself). See the module docs for the rules.
pub fn negotiate_coding(accept_encoding: Option<&str>, siblings: Siblings) -> Option<Coding> {
    let field = accept_encoding?;
    if !siblings.any() {
        return None;
    }
    let [br, gzip, identity, star] = weights(field);
    let q_of = |c: Coding| {
        let named = match c {
            Coding::Br => br,
            Coding::Gzip => gzip,
        };
        named.or(star).unwrap_or(0)
    };
    let identity_q = identity.or(star).unwrap_or(0);
    [Coding::Br, Coding::Gzip]
        .into_iter()
        .filter(|&c| siblings.has(c) && q_of(c) > 0)
        .max_by_key(|&c| (q_of(c), c.rank()))
        .filter(|&c| q_of(c) >= identity_q)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTH: Siblings = Siblings {
        br: true,
        gzip: true,
    };
    const GZ: Siblings = Siblings {
        br: false,
        gzip: true,
    };

    #[test]
    fn no_header_means_identity() {
        assert_eq!(negotiate_coding(None, BOTH), None);
    }

    #[test]
    fn browsers_get_brotli() {
        assert_eq!(
            negotiate_coding(Some("gzip, deflate, br, zstd"), BOTH),
            Some(Coding::Br)
        );
        assert_eq!(
            negotiate_coding(Some("gzip, deflate, br"), GZ),
            Some(Coding::Gzip)
        );
    }

    #[test]
    fn q_values_decide() {
        assert_eq!(
            negotiate_coding(Some("br;q=0.5, gzip;q=0.8"), BOTH),
            Some(Coding::Gzip)
        );
        assert_eq!(
            negotiate_coding(Some("br;q=0, gzip"), BOTH),
            Some(Coding::Gzip)
        );
        assert_eq!(negotiate_coding(Some("br;q=0, gzip;q=0"), BOTH), None);
        assert_eq!(negotiate_coding(Some("BR;Q=1.000"), BOTH), Some(Coding::Br));
        assert_eq!(
            negotiate_coding(Some("gzip;q=1.5"), GZ),
            None,
            "malformed q is unacceptable"
        );
        assert_eq!(negotiate_coding(Some("gzip;q=0.1234"), GZ), None);
    }

    #[test]
    fn identity_preferred_when_it_weighs_more() {
        assert_eq!(negotiate_coding(Some("gzip;q=0.5, identity"), GZ), None);
        assert_eq!(
            negotiate_coding(Some("gzip;q=0.5, identity;q=0.5"), GZ),
            Some(Coding::Gzip)
        );
        assert_eq!(
            negotiate_coding(Some("identity;q=0, gzip;q=0.1"), GZ),
            Some(Coding::Gzip)
        );
    }

    #[test]
    fn star_covers_unnamed_codings() {
        assert_eq!(negotiate_coding(Some("*"), BOTH), Some(Coding::Br));
        assert_eq!(negotiate_coding(Some("*;q=0"), BOTH), None);
        assert_eq!(
            negotiate_coding(Some("br;q=0, *"), BOTH),
            Some(Coding::Gzip)
        );
    }

    #[test]
    fn identity_only_or_unknown_codings() {
        assert_eq!(negotiate_coding(Some("identity"), BOTH), None);
        assert_eq!(negotiate_coding(Some("deflate, zstd"), BOTH), None);
        assert_eq!(negotiate_coding(Some(""), BOTH), None);
        assert_eq!(negotiate_coding(Some(",,;;=,"), BOTH), None);
        assert_eq!(negotiate_coding(Some("x-gzip"), GZ), Some(Coding::Gzip));
    }

    #[test]
    fn no_siblings_means_identity() {
        assert_eq!(
            negotiate_coding(Some("br, gzip"), Siblings::default()),
            None
        );
    }
}
