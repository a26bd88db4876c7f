//! Integrity digests: which algorithm a client asks for and the field values that
//! carry a digest.
//!
//! * **RFC 9530** (2024): `Want-Repr-Digest` (§4, a Structured Fields Dictionary whose
//!   keys are algorithms and whose values are Integers 0–10, 0 meaning "not
//!   acceptable") is answered with `Repr-Digest` (§3: `sha-256=:BASE64:`), the digest
//!   of the whole selected representation, so it is the same on a 200, a 206 and every
//!   part of a multipart/byteranges response.
//! * **RFC 3230** (obsoleted by RFC 9530, still what aria2 speaks): `Want-Digest`
//!   (§4.3.1, `SHA-512;q=1, SHA-256;q=0.5`, names case-insensitive, `q` 0–1, 0 meaning
//!   "not acceptable") is answered with `Digest` (§4.3.2: `SHA-256=BASE64`), the
//!   digest of the whole instance.
//!
//! Algorithms are the two of the RFC 9530 registry (§5, §7.2) that are not marked
//! insecure: `sha-256` and `sha-512`. Everything else a client names (`md5`, `sha`,
//! `unixsum`, `id-sha-256`, …) is ignored.
//!
//! Decisions (RFC 9530 §4: preferences are only a hint):
//! * The highest weight wins among the algorithms the server has enabled; weight 0
//!   excludes an algorithm. **On a tie the server's order decides**: the first in the
//!   enabled list (by default `sha-256`, then `sha-512`). aria2 sends
//!   `SHA-512;q=1, SHA-256;q=1` and so gets SHA-256, which SHA-NI computes about three
//!   times faster than SHA-512 here and which is just as unforgeable for this purpose.
//! * An algorithm named twice counts with its **last** weight, in both fields (RFC 8941
//!   §4.2.2 says so for dictionaries; RFC 3230 is silent, and one rule is simpler).
//! * Garbage is ignored element by element, never the whole field: a member whose value
//!   is not an Integer in 0..=10 (`Want-Repr-Digest`) or whose `q` is not a qvalue
//!   (`Want-Digest`) is skipped. Keys are matched case-insensitively in both fields
//!   (RFC 8941 keys are lower case; a client that upper-cases them still means them).
//!   Commas inside quoted strings and inner lists do not split `Want-Repr-Digest`.
//! * Each field is answered on its own: a request with both gets both, each with its
//!   own choice. Without `Want-Repr-Digest`, an *unsolicited* `Repr-Digest` with the
//!   first enabled algorithm is sent only when the server is configured to
//!   ([`negotiate_digests`]'s `unsolicited`; off by default, RFC 9530 Appendix C).
//! * Only one digest per field is sent (RFC 9530 §3 allows several): the one chosen.
//! * Responses do not carry `Vary: Want-Repr-Digest`: a digest field is metadata about
//!   the same bytes, harmless to a client that did not ask, and varying on it would
//!   split shared caches for nothing.

use base64::Engine as _;

/// A digest algorithm this crate can compute (RFC 9530 §5, the registry of §7.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DigestAlgorithm {
    /// SHA-256 (FIPS 180-4): key `sha-256`, RFC 3230 name `SHA-256` (RFC 5843).
    Sha256,
    /// SHA-512 (FIPS 180-4): key `sha-512`, RFC 3230 name `SHA-512` (RFC 5843).
    Sha512,
}

impl DigestAlgorithm {
    /// Every supported algorithm, in the default order of preference.
    pub const ALL: [DigestAlgorithm; 2] = [DigestAlgorithm::Sha256, DigestAlgorithm::Sha512];

    /// The RFC 9530 key (`sha-256`), as used in `Repr-Digest` and in configuration.
    pub fn key(self) -> &'static str {
        match self {
            DigestAlgorithm::Sha256 => "sha-256",
            DigestAlgorithm::Sha512 => "sha-512",
        }
    }

    /// The RFC 3230 name (`SHA-256`), as used in `Digest`.
    pub fn legacy_name(self) -> &'static str {
        match self {
            DigestAlgorithm::Sha256 => "SHA-256",
            DigestAlgorithm::Sha512 => "SHA-512",
        }
    }

    /// The algorithm named `name` (`sha-256`, `SHA-512`, …; ASCII case-insensitive).
    pub fn from_name(name: &str) -> Option<DigestAlgorithm> {
        DigestAlgorithm::ALL
            .into_iter()
            .find(|a| a.key().eq_ignore_ascii_case(name))
    }

    /// The digest length in bytes (32 or 64).
    pub fn output_len(self) -> usize {
        match self {
            DigestAlgorithm::Sha256 => 32,
            DigestAlgorithm::Sha512 => 64,
        }
    }

    /// A dense index (0 or 1), for tables with a slot per algorithm.
    pub fn index(self) -> usize {
        match self {
            DigestAlgorithm::Sha256 => 0,
            DigestAlgorithm::Sha512 => 1,
        }
    }
}

impl std::fmt::Display for DigestAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.key())
    }
}

/// The weights a `Want-*` field gives the supported algorithms, in thousandths
/// (`Want-Digest`'s `q=0.5` is 500, `Want-Repr-Digest`'s `5` is 500); `None` where
/// the field does not name the algorithm; `Some(0)`: not acceptable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Preferences {
    weights: [Option<u16>; 2],
}

impl Preferences {
    /// The weight of `algorithm`, if the field names it.
    pub fn weight(&self, algorithm: DigestAlgorithm) -> Option<u16> {
        self.weights[algorithm.index()]
    }

    fn set(&mut self, algorithm: DigestAlgorithm, weight: u16) {
        self.weights[algorithm.index()] = Some(weight);
    }

    /// The most preferred of `enabled` (weight above 0); on a tie the earliest in
    /// `enabled`. `None` if the field names none of them acceptably.
    pub fn choose(&self, enabled: &[DigestAlgorithm]) -> Option<DigestAlgorithm> {
        let mut best: Option<(DigestAlgorithm, u16)> = None;
        for &a in enabled {
            match self.weight(a) {
                Some(w) if w > 0 && best.is_none_or(|(_, b)| w > b) => best = Some((a, w)),
                _ => {}
            }
        }
        best.map(|(a, _)| a)
    }
}

/// Parses `Want-Repr-Digest` (RFC 9530 §4): a Dictionary (RFC 8941 §3.2) of
/// `algorithm=weight` members, weight an Integer from 0 to 10. See the module docs for
/// how malformed members are treated. Never fails; never panics.
pub fn parse_want_repr_digest(field: &str) -> Preferences {
    let mut prefs = Preferences::default();
    for member in sf_members(field) {
        // Parameters (`;p=v`) follow the value and are ignored.
        let member = member.split(';').next().unwrap_or("");
        let Some((key, value)) = member.split_once('=') else {
            continue; // A bare key is Boolean true, not an Integer.
        };
        let Some(algorithm) = DigestAlgorithm::from_name(key.trim()) else {
            continue;
        };
        if let Some(w) = sf_weight(value.trim()) {
            prefs.set(algorithm, u16::from(w) * 100);
        }
    }
    prefs
}

/// Parses `Want-Digest` (RFC 3230 §4.3.1): `#( digest-algorithm [ ";" "q" "=" qvalue ] )`.
/// Names and the `q` parameter are case-insensitive; an element with a malformed `q`
/// is skipped. Never fails; never panics.
pub fn parse_want_digest(field: &str) -> Preferences {
    let mut prefs = Preferences::default();
    'elements: for element in field.split(',') {
        let mut parts = element.split(';');
        let Some(algorithm) = DigestAlgorithm::from_name(parts.next().unwrap_or("").trim()) else {
            continue;
        };
        let mut q = 1000;
        for param in parts {
            let Some((k, v)) = param.split_once('=') else {
                continue;
            };
            if k.trim().eq_ignore_ascii_case("q") {
                match crate::semantics::encoding::parse_q(v) {
                    Some(parsed) => q = parsed,
                    None => continue 'elements,
                }
            }
        }
        prefs.set(algorithm, q);
    }
    prefs
}

/// The members of a Structured Fields Dictionary, split at the commas that are not
/// inside a String (with its `\` escapes) or an Inner List. Lenient: an unterminated
/// string or list runs to the end of the field.
fn sf_members(field: &str) -> impl Iterator<Item = &str> {
    let bytes = field.as_bytes();
    let mut start = 0;
    let mut i = 0;
    let (mut in_string, mut escaped, mut depth) = (false, false, 0u32);
    std::iter::from_fn(move || {
        if start > bytes.len() {
            return None;
        }
        while i < bytes.len() {
            let b = bytes[i];
            i += 1;
            if in_string {
                match (escaped, b) {
                    (true, _) => escaped = false,
                    (false, b'\\') => escaped = true,
                    (false, b'"') => in_string = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => in_string = true,
                b'(' => depth = depth.saturating_add(1),
                b')' => depth = depth.saturating_sub(1),
                b',' if depth == 0 => {
                    let member = &field[start..i - 1];
                    start = i;
                    return Some(member);
                }
                _ => {}
            }
        }
        let member = &field[start..];
        start = bytes.len() + 1;
        Some(member)
    })
}

/// An RFC 8941 §3.3.1 Integer (`-`? 1 to 15 digits) in 0..=10, the range RFC 9530 §4
/// allows; `None` otherwise.
fn sf_weight(value: &str) -> Option<u8> {
    if value.is_empty() || value.len() > 15 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Leading zeros are valid Integer syntax ("007").
    let v = value.trim_start_matches('0');
    match v.len() {
        0 => Some(0),
        1 | 2 => v.parse::<u8>().ok().filter(|&w| w <= 10),
        _ => None,
    }
}

/// Which digest fields a response carries, and with which algorithm.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DigestChoice {
    /// `Repr-Digest` (RFC 9530 §3) with this algorithm.
    pub repr: Option<DigestAlgorithm>,
    /// `Digest` (RFC 3230 §4.3.2) with this algorithm.
    pub legacy: Option<DigestAlgorithm>,
}

impl DigestChoice {
    /// Whether no digest field is to be sent.
    pub fn is_empty(&self) -> bool {
        self.repr.is_none() && self.legacy.is_none()
    }

    /// The algorithms whose digests the response needs (one or two, or none).
    pub fn algorithms(&self) -> impl Iterator<Item = DigestAlgorithm> {
        let second = self.legacy.filter(|l| Some(*l) != self.repr);
        self.repr.into_iter().chain(second)
    }
}

/// The digest fields to send for a request with these `Want-Repr-Digest` and
/// `Want-Digest` values, given the enabled algorithms (in the server's order of
/// preference). With `unsolicited`, a request without `Want-Repr-Digest` still gets
/// `Repr-Digest` with the first enabled algorithm. Nothing is sent when `enabled` is
/// empty. Which statuses carry the fields is the caller's business (this crate: 200
/// and 206, GET and HEAD).
pub fn negotiate_digests(
    want_repr_digest: Option<&str>,
    want_digest: Option<&str>,
    enabled: &[DigestAlgorithm],
    unsolicited: bool,
) -> DigestChoice {
    let repr = match want_repr_digest {
        Some(f) => parse_want_repr_digest(f).choose(enabled),
        None if unsolicited => enabled.first().copied(),
        None => None,
    };
    let legacy = want_digest.and_then(|f| parse_want_digest(f).choose(enabled));
    DigestChoice { repr, legacy }
}

/// The `Repr-Digest` field value for one digest (RFC 9530 §3): a Dictionary member
/// whose value is a Byte Sequence, `sha-256=:BASE64:` (RFC 8941 §3.3.5: standard
/// alphabet, padded).
pub fn repr_digest_value(algorithm: DigestAlgorithm, digest: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(digest);
    format!("{}=:{b64}:", algorithm.key())
}

/// The `Digest` field value for one digest (RFC 3230 §4.3.2, RFC 5843):
/// `SHA-256=BASE64` (RFC 4648 base64, padded).
pub fn digest_value(algorithm: DigestAlgorithm, digest: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(digest);
    format!("{}={b64}", algorithm.legacy_name())
}

#[cfg(test)]
mod tests {
    use super::*;
    use DigestAlgorithm::{Sha256, Sha512};

    const BOTH: &[DigestAlgorithm] = &[Sha256, Sha512];

    #[test]
    fn rfc9530_examples() {
        // RFC 9530 §4's examples.
        let p = parse_want_repr_digest("sha-256=1");
        assert_eq!(p.weight(Sha256), Some(100));
        assert_eq!(p.choose(BOTH), Some(Sha256));
        let p = parse_want_repr_digest("sha-512=3, sha-256=10, unixsum=0");
        assert_eq!(
            (p.weight(Sha512), p.weight(Sha256)),
            (Some(300), Some(1000))
        );
        assert_eq!(p.choose(BOTH), Some(Sha256));
        assert_eq!(p.choose(&[Sha512]), Some(Sha512));
    }

    #[test]
    fn aria2_default_header_gets_the_servers_first_choice() {
        let f = "SHA-512;q=1, SHA-256;q=1, SHA;q=0.1";
        assert_eq!(parse_want_digest(f).choose(BOTH), Some(Sha256));
        assert_eq!(parse_want_digest(f).choose(&[Sha512, Sha256]), Some(Sha512));
        assert_eq!(
            parse_want_digest("sha-512;q=0.9, sha-256;q=0.3").choose(BOTH),
            Some(Sha512)
        );
    }

    #[test]
    fn zero_means_not_acceptable() {
        assert_eq!(parse_want_repr_digest("sha-256=0").choose(BOTH), None);
        assert_eq!(
            parse_want_repr_digest("sha-256=0, sha-512=1").choose(BOTH),
            Some(Sha512)
        );
        assert_eq!(parse_want_digest("SHA-256;q=0").choose(BOTH), None);
        assert_eq!(
            parse_want_digest("SHA-256;q=0.000, sha-512;q=0.001").choose(BOTH),
            Some(Sha512)
        );
    }

    #[test]
    fn unsupported_or_disabled_algorithms_give_nothing() {
        assert_eq!(
            parse_want_repr_digest("md5=10, sha=5, unixsum=1").choose(BOTH),
            None
        );
        assert_eq!(parse_want_digest("MD5, SHA, id-sha-256").choose(BOTH), None);
        assert_eq!(parse_want_repr_digest("sha-512=10").choose(&[Sha256]), None);
        assert_eq!(parse_want_repr_digest("sha-256=10").choose(&[]), None);
    }

    #[test]
    fn malformed_members_are_skipped_not_the_field() {
        for f in [
            "sha-256=11, sha-512=2",
            "sha-256=-1, sha-512=2",
            "sha-256, sha-512=2",
            "sha-256=1.5, sha-512=2",
            "sha-256=\"10\", sha-512=2",
            "sha-256=?1, sha-512=2",
            "sha-256=, sha-512=2",
            "sha-256=1234567890123456, sha-512=2",
            ",,, sha-512=2,,",
            "\"a,b\", sha-512=2",
            "x=(a, b, sha-256=9), sha-512=2",
        ] {
            let p = parse_want_repr_digest(f);
            assert_eq!(p.weight(Sha256), None, "{f}");
            assert_eq!(p.choose(BOTH), Some(Sha512), "{f}");
        }
        let p = parse_want_repr_digest("sha-256=010;foo=bar, sha-512=0009");
        assert_eq!(
            (p.weight(Sha256), p.weight(Sha512)),
            (Some(1000), Some(900))
        );
        for f in [
            "SHA-256;q=2, SHA-512;q=0.5",
            "SHA-256;q=x, SHA-512;q=0.5",
            "SHA-256;q=0.5000, SHA-512;q=0.5",
        ] {
            let p = parse_want_digest(f);
            assert_eq!(p.weight(Sha256), None, "{f}");
            assert_eq!(p.choose(BOTH), Some(Sha512), "{f}");
        }
    }

    #[test]
    fn names_are_case_insensitive_and_last_wins() {
        assert_eq!(
            parse_want_repr_digest("SHA-256=4").weight(Sha256),
            Some(400)
        );
        assert_eq!(parse_want_digest("sha-256;Q=0.5").weight(Sha256), Some(500));
        assert_eq!(
            parse_want_repr_digest("sha-256=4, sha-256=0").choose(BOTH),
            None
        );
        assert_eq!(
            parse_want_digest("sha-256;q=0, sha-256").choose(BOTH),
            Some(Sha256)
        );
        // A quoted comma does not start a member; an escaped quote does not end the string.
        let p = parse_want_repr_digest(r#"x="a\", sha-256=9", sha-512=1"#);
        assert_eq!((p.weight(Sha256), p.choose(BOTH)), (None, Some(Sha512)));
    }

    #[test]
    fn ties_follow_the_server_order() {
        let p = parse_want_repr_digest("sha-512=5, sha-256=5");
        assert_eq!(p.choose(&[Sha256, Sha512]), Some(Sha256));
        assert_eq!(p.choose(&[Sha512, Sha256]), Some(Sha512));
    }

    #[test]
    fn negotiate_each_field_on_its_own() {
        let c = negotiate_digests(Some("sha-512=1"), Some("SHA-256"), BOTH, false);
        assert_eq!((c.repr, c.legacy), (Some(Sha512), Some(Sha256)));
        assert_eq!(c.algorithms().collect::<Vec<_>>(), vec![Sha512, Sha256]);
        let c = negotiate_digests(Some("sha-256=1"), Some("SHA-256"), BOTH, false);
        assert_eq!(c.algorithms().collect::<Vec<_>>(), vec![Sha256]);
        assert!(negotiate_digests(None, None, BOTH, false).is_empty());
        // Unsolicited: the first enabled algorithm, unless Want-Repr-Digest says otherwise.
        let c = negotiate_digests(None, None, &[Sha512, Sha256], true);
        assert_eq!((c.repr, c.legacy), (Some(Sha512), None));
        assert!(negotiate_digests(Some("sha-256=0"), None, BOTH, true).is_empty());
        assert!(negotiate_digests(None, None, &[], true).is_empty());
    }

    #[test]
    fn field_values() {
        // SHA-256 of "hello world", RFC 9530 Appendix B style.
        let d = [
            0xb9, 0x4d, 0x27, 0xb9, 0x93, 0x4d, 0x3e, 0x08, 0xa5, 0x2e, 0x52, 0xd7, 0xda, 0x7d,
            0xab, 0xfa, 0xc4, 0x84, 0xef, 0xe3, 0x7a, 0x53, 0x80, 0xee, 0x90, 0x88, 0xf7, 0xac,
            0xe2, 0xef, 0xcd, 0xe9,
        ];
        assert_eq!(
            repr_digest_value(Sha256, &d),
            "sha-256=:uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=:"
        );
        assert_eq!(
            digest_value(Sha256, &d),
            "SHA-256=uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek="
        );
        assert_eq!(DigestAlgorithm::from_name("Sha-512"), Some(Sha512));
        assert_eq!(DigestAlgorithm::from_name("sha512"), None);
        assert_eq!(Sha512.to_string(), "sha-512");
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn alg_name() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("sha-256".to_owned()),
                Just("SHA-512".to_owned()),
                Just("sha-512".to_owned()),
                Just("md5".to_owned()),
                "[a-zA-Z0-9*_.-]{0,10}",
            ]
        }

        proptest! {
            #[test]
            fn garbage_never_panics_and_choices_are_sound(
                f in "\\PC{0,80}",
                enabled in prop::sample::subsequence(vec![Sha256, Sha512], 0..=2),
            ) {
                for prefs in [parse_want_repr_digest(&f), parse_want_digest(&f)] {
                    if let Some(c) = prefs.choose(&enabled) {
                        prop_assert!(enabled.contains(&c));
                        let w = prefs.weight(c).unwrap();
                        prop_assert!(w > 0 && w <= 1000);
                        for &o in &enabled {
                            prop_assert!(prefs.weight(o).unwrap_or(0) <= w);
                        }
                    }
                    prop_assert_eq!(prefs, prefs);
                }
                prop_assert_eq!(parse_want_digest(&f), parse_want_digest(&f.to_ascii_uppercase()));
                prop_assert_eq!(parse_want_repr_digest(&f), parse_want_repr_digest(&f.to_ascii_lowercase()));
            }

            #[test]
            fn well_formed_dictionaries_are_read_exactly(
                members in prop::collection::vec((alg_name(), 0u8..=12), 0..6),
            ) {
                let field = members
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let p = parse_want_repr_digest(&field);
                for a in DigestAlgorithm::ALL {
                    // The last valid member for `a` decides.
                    let expected = members
                        .iter()
                        .rev()
                        .find(|(k, v)| k.eq_ignore_ascii_case(a.key()) && *v <= 10)
                        .map(|(_, v)| u16::from(*v) * 100);
                    prop_assert_eq!(p.weight(a), expected, "{}", field);
                }
            }

            #[test]
            fn well_formed_want_digest_is_read_exactly(
                members in prop::collection::vec((alg_name(), 0u16..=1000), 0..6),
            ) {
                let field = members
                    .iter()
                    .map(|(k, q)| format!("{k};q={}.{:03}", q / 1000, q % 1000))
                    .collect::<Vec<_>>()
                    .join(",");
                let p = parse_want_digest(&field);
                for a in DigestAlgorithm::ALL {
                    let expected = members
                        .iter()
                        .rev()
                        .find(|(k, _)| k.eq_ignore_ascii_case(a.key()))
                        .map(|(_, q)| *q);
                    prop_assert_eq!(p.weight(a), expected, "{}", field);
                }
            }
        }
    }
}
