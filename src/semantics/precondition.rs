//! Conditional requests: RFC 9110 §13.1 (the headers) and §13.2.2 (their order).
//!
//! In the style of Go's `net/http/fs.go`: one small function per header (`check_if_*`,
//! crate-private) returning `Cond::None` (header absent or to be ignored),
//! `Cond::True` or `Cond::False`, composed in [`evaluate`] in the order of §13.2.2, so
//! the code reads like the RFC.

use crate::semantics::date::HttpDate;
use crate::semantics::etag::{list_matches, Comparison, EntityTag};
use crate::semantics::range::IgnoredBecause;

/// The request method, as far as preconditions and ranges care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `GET`: the only method with range handling (§14.2).
    Get,
    /// `HEAD`: like GET for conditionals (304), never ranges.
    Head,
    /// Any other method.
    Other,
}

/// The raw conditional header values of a request, borrowed from it.
///
/// For the list-valued `If-Match` and `If-None-Match`, a request carrying several
/// field lines should pass them joined with `", "` (§5.3). For the singleton fields,
/// pass `None` when the request carried more than one line: such a field is invalid
/// and is ignored (§13.1.3, §13.1.4: "has more than one member").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Conditionals<'a> {
    /// `If-Match` (§13.1.1).
    pub if_match: Option<&'a str>,
    /// `If-None-Match` (§13.1.2).
    pub if_none_match: Option<&'a str>,
    /// `If-Modified-Since` (§13.1.3).
    pub if_modified_since: Option<&'a str>,
    /// `If-Unmodified-Since` (§13.1.4).
    pub if_unmodified_since: Option<&'a str>,
    /// `If-Range` (§13.1.5).
    pub if_range: Option<&'a str>,
    /// Whether the request carries a `Range` header (If-Range is ignored without one).
    pub has_range: bool,
}

/// The current validators of the selected representation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Validators<'a> {
    /// The current entity tag, if the representation has one.
    pub etag: Option<&'a EntityTag>,
    /// The current modification date, if known.
    pub last_modified: Option<HttpDate>,
}

/// The result of one precondition (Go's `condResult`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cond {
    /// The header is absent or must be ignored.
    None,
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
}

/// What the preconditions decided (§13.2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Go on to serve the representation. `Ok(())`: apply the Range header;
    /// `Err(reason)`: ignore it and send the whole content.
    Proceed(Result<(), IgnoredBecause>),
    /// `304 Not Modified` (§15.4.5).
    NotModified,
    /// `412 Precondition Failed` (§15.5.13).
    PreconditionFailed,
}

/// §13.1.1 If-Match: true if the field is `*` and a current representation exists, or
/// if one listed tag matches the current tag by **strong** comparison.
pub(crate) fn check_if_match(c: &Conditionals<'_>, v: &Validators<'_>) -> Cond {
    match c.if_match {
        None => Cond::None,
        Some(list) => bool_cond(list_matches(list, v.etag, Comparison::Strong)),
    }
}

/// §13.1.4 If-Unmodified-Since: ignored when If-Match is present, when the value is not
/// a valid HTTP-date, or when no modification date is known; otherwise true if the
/// representation was not modified after the given date.
pub(crate) fn check_if_unmodified_since(c: &Conditionals<'_>, v: &Validators<'_>) -> Cond {
    if c.if_match.is_some() {
        return Cond::None;
    }
    let (Some(value), Some(last_modified)) = (c.if_unmodified_since, v.last_modified) else {
        return Cond::None;
    };
    match HttpDate::parse(value) {
        None => Cond::None,
        Some(date) => bool_cond(last_modified <= date),
    }
}

/// §13.1.2 If-None-Match: false if the field is `*` and a current representation exists,
/// or if one listed tag matches the current tag by **weak** comparison; true otherwise.
pub(crate) fn check_if_none_match(c: &Conditionals<'_>, v: &Validators<'_>) -> Cond {
    match c.if_none_match {
        None => Cond::None,
        Some(list) => bool_cond(!list_matches(list, v.etag, Comparison::Weak)),
    }
}

/// §13.1.3 If-Modified-Since: ignored when If-None-Match is present, for methods other
/// than GET and HEAD, for an invalid date, or when no modification date is known;
/// otherwise false (→ 304) if the representation was not modified after the date.
pub(crate) fn check_if_modified_since(
    method: Method,
    c: &Conditionals<'_>,
    v: &Validators<'_>,
) -> Cond {
    if c.if_none_match.is_some() || method == Method::Other {
        return Cond::None;
    }
    let (Some(value), Some(last_modified)) = (c.if_modified_since, v.last_modified) else {
        return Cond::None;
    };
    match HttpDate::parse(value) {
        None => Cond::None,
        Some(date) => bool_cond(last_modified > date),
    }
}

/// §13.1.5 If-Range: ignored without a Range header. An entity tag matches only by
/// **strong** comparison (a weak tag is never a match); a date matches only if it
/// equals the Last-Modified exactly and that date is a strong validator, which by
/// §8.8.2.2 means the whole second it names lies before `now`. Anything else — an
/// unparsable value included — is false, so the whole content is sent, which is
/// always correct.
pub(crate) fn check_if_range(c: &Conditionals<'_>, v: &Validators<'_>, now: HttpDate) -> Cond {
    let Some(value) = c.if_range else {
        return Cond::None;
    };
    if !c.has_range {
        return Cond::None;
    }
    let value = value.trim_matches(|ch| ch == ' ' || ch == '\t');
    if value.starts_with('"') || value.starts_with("W/") {
        return match (EntityTag::parse(value), v.etag) {
            (Ok(tag), Some(current)) => bool_cond(tag.strong_eq(current)),
            _ => Cond::False,
        };
    }
    match (HttpDate::parse(value), v.last_modified) {
        (Some(date), Some(lm)) => bool_cond(date == lm && lm < now),
        _ => Cond::False,
    }
}

#[inline]
fn bool_cond(b: bool) -> Cond {
    if b {
        Cond::True
    } else {
        Cond::False
    }
}

/// Evaluates the preconditions of a request in the order of RFC 9110 §13.2.2:
///
/// 1. If-Match false → 412;
/// 2. otherwise (no If-Match) If-Unmodified-Since false → 412;
/// 3. If-None-Match false → 304 for GET/HEAD, 412 for other methods;
/// 4. otherwise (no If-None-Match) for GET/HEAD, If-Modified-Since false → 304;
/// 5. for GET with a Range header, If-Range false → ignore the Range (send 200);
///    Range with any other method is ignored (§14.2);
/// 6. otherwise go on.
///
/// `now` is the time of the response, used only to decide whether Last-Modified is a
/// strong validator for If-Range.
pub fn evaluate(
    method: Method,
    c: &Conditionals<'_>,
    v: &Validators<'_>,
    now: HttpDate,
) -> Outcome {
    let mut cond = check_if_match(c, v);
    if cond == Cond::None {
        cond = check_if_unmodified_since(c, v);
    }
    if cond == Cond::False {
        return Outcome::PreconditionFailed;
    }
    match check_if_none_match(c, v) {
        Cond::False => {
            return if method == Method::Other {
                Outcome::PreconditionFailed
            } else {
                Outcome::NotModified
            };
        }
        Cond::None => {
            if check_if_modified_since(method, c, v) == Cond::False {
                return Outcome::NotModified;
            }
        }
        Cond::True => {}
    }
    if !c.has_range {
        return Outcome::Proceed(Err(IgnoredBecause::NoHeader));
    }
    if method != Method::Get {
        return Outcome::Proceed(Err(IgnoredBecause::NotGet));
    }
    if check_if_range(c, v, now) == Cond::False {
        return Outcome::Proceed(Err(IgnoredBecause::IfRangeFailed));
    }
    Outcome::Proceed(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LM: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
    const BEFORE: &str = "Sun, 06 Nov 1994 08:49:36 GMT";
    const AFTER: &str = "Sun, 06 Nov 1994 08:49:38 GMT";

    fn tag() -> EntityTag {
        EntityTag::new(false, "abc").unwrap()
    }

    fn lm() -> HttpDate {
        HttpDate::parse(LM).unwrap()
    }

    fn now() -> HttpDate {
        HttpDate::from_unix_secs(2_000_000_000).unwrap()
    }

    fn eval(method: Method, c: Conditionals<'_>) -> Outcome {
        let t = tag();
        let v = Validators {
            etag: Some(&t),
            last_modified: Some(lm()),
        };
        evaluate(method, &c, &v, now())
    }

    const GO: Outcome = Outcome::Proceed(Err(IgnoredBecause::NoHeader));
    const RANGE: Outcome = Outcome::Proceed(Ok(()));

    #[test]
    fn no_conditionals_proceed() {
        assert_eq!(eval(Method::Get, Conditionals::default()), GO);
    }

    #[test]
    fn if_match_strong_match_proceeds_and_mismatch_is_412() {
        let c = |v| Conditionals {
            if_match: Some(v),
            ..Default::default()
        };
        assert_eq!(eval(Method::Get, c("\"abc\"")), GO);
        assert_eq!(eval(Method::Get, c("\"x\", \"abc\"")), GO);
        assert_eq!(eval(Method::Get, c("*")), GO);
        assert_eq!(eval(Method::Get, c("\"x\"")), Outcome::PreconditionFailed);
    }

    #[test]
    fn if_match_weak_tag_is_412() {
        let c = Conditionals {
            if_match: Some("W/\"abc\""),
            ..Default::default()
        };
        assert_eq!(eval(Method::Get, c), Outcome::PreconditionFailed);
    }

    #[test]
    fn if_match_star_without_representation_is_412() {
        let c = Conditionals {
            if_match: Some("*"),
            ..Default::default()
        };
        let v = Validators::default();
        assert_eq!(
            evaluate(Method::Get, &c, &v, now()),
            Outcome::PreconditionFailed
        );
    }

    #[test]
    fn if_unmodified_since_rules() {
        let c = |v| Conditionals {
            if_unmodified_since: Some(v),
            ..Default::default()
        };
        assert_eq!(eval(Method::Get, c(LM)), GO);
        assert_eq!(eval(Method::Get, c(AFTER)), GO);
        assert_eq!(eval(Method::Get, c(BEFORE)), Outcome::PreconditionFailed);
        // Invalid date: ignored.
        assert_eq!(eval(Method::Get, c("garbage")), GO);
    }

    #[test]
    fn if_unmodified_since_ignored_when_if_match_present() {
        let c = Conditionals {
            if_match: Some("\"abc\""),
            if_unmodified_since: Some(BEFORE),
            ..Default::default()
        };
        assert_eq!(eval(Method::Get, c), GO);
    }

    #[test]
    fn if_none_match_weak_comparison_gives_304() {
        let c = |v| Conditionals {
            if_none_match: Some(v),
            ..Default::default()
        };
        assert_eq!(eval(Method::Get, c("\"abc\"")), Outcome::NotModified);
        assert_eq!(eval(Method::Head, c("W/\"abc\"")), Outcome::NotModified);
        assert_eq!(eval(Method::Get, c("*")), Outcome::NotModified);
        assert_eq!(eval(Method::Get, c("\"x\"")), GO);
    }

    #[test]
    fn if_none_match_false_for_other_methods_is_412() {
        let c = Conditionals {
            if_none_match: Some("\"abc\""),
            ..Default::default()
        };
        assert_eq!(eval(Method::Other, c), Outcome::PreconditionFailed);
    }

    #[test]
    fn if_none_match_lone_comma_is_no_match() {
        let c = Conditionals {
            if_none_match: Some(","),
            ..Default::default()
        };
        assert_eq!(eval(Method::Get, c), GO);
    }

    #[test]
    fn if_modified_since_rules() {
        let c = |v| Conditionals {
            if_modified_since: Some(v),
            ..Default::default()
        };
        assert_eq!(eval(Method::Get, c(LM)), Outcome::NotModified);
        assert_eq!(eval(Method::Head, c(AFTER)), Outcome::NotModified);
        assert_eq!(eval(Method::Get, c(BEFORE)), GO);
        assert_eq!(eval(Method::Get, c("not a date")), GO);
        // Ignored for other methods.
        assert_eq!(eval(Method::Other, c(LM)), GO);
    }

    #[test]
    fn if_modified_since_ignored_when_if_none_match_present() {
        let c = Conditionals {
            if_none_match: Some("\"other\""),
            if_modified_since: Some(LM),
            ..Default::default()
        };
        assert_eq!(eval(Method::Get, c), GO);
    }

    #[test]
    fn if_match_failure_wins_over_if_none_match() {
        let c = Conditionals {
            if_match: Some("\"x\""),
            if_none_match: Some("\"abc\""),
            ..Default::default()
        };
        assert_eq!(eval(Method::Get, c), Outcome::PreconditionFailed);
    }

    #[test]
    fn range_applies_to_get_only() {
        let c = Conditionals {
            has_range: true,
            ..Default::default()
        };
        assert_eq!(eval(Method::Get, c), RANGE);
        assert_eq!(
            eval(Method::Head, c),
            Outcome::Proceed(Err(IgnoredBecause::NotGet))
        );
        assert_eq!(
            eval(Method::Other, c),
            Outcome::Proceed(Err(IgnoredBecause::NotGet))
        );
    }

    #[test]
    fn if_range_strong_etag() {
        let c = |v| Conditionals {
            if_range: Some(v),
            has_range: true,
            ..Default::default()
        };
        let failed = Outcome::Proceed(Err(IgnoredBecause::IfRangeFailed));
        assert_eq!(eval(Method::Get, c("\"abc\"")), RANGE);
        assert_eq!(eval(Method::Get, c("\"xyz\"")), failed);
        // A weak tag never matches (§13.1.5 uses strong comparison).
        assert_eq!(eval(Method::Get, c("W/\"abc\"")), failed);
        assert_eq!(eval(Method::Get, c("\"abc")), failed);
    }

    #[test]
    fn if_range_date_must_equal_last_modified() {
        let c = |v| Conditionals {
            if_range: Some(v),
            has_range: true,
            ..Default::default()
        };
        let failed = Outcome::Proceed(Err(IgnoredBecause::IfRangeFailed));
        assert_eq!(eval(Method::Get, c(LM)), RANGE);
        assert_eq!(eval(Method::Get, c(AFTER)), failed);
        assert_eq!(eval(Method::Get, c(BEFORE)), failed);
        assert_eq!(eval(Method::Get, c("garbage")), failed);
    }

    #[test]
    fn if_range_date_within_current_second_is_weak() {
        let c = Conditionals {
            if_range: Some(LM),
            has_range: true,
            ..Default::default()
        };
        let t = tag();
        let v = Validators {
            etag: Some(&t),
            last_modified: Some(lm()),
        };
        assert_eq!(
            evaluate(Method::Get, &c, &v, lm()),
            Outcome::Proceed(Err(IgnoredBecause::IfRangeFailed))
        );
    }

    #[test]
    fn if_range_ignored_without_range() {
        let c = Conditionals {
            if_range: Some("\"xyz\""),
            ..Default::default()
        };
        assert_eq!(eval(Method::Get, c), GO);
        assert_eq!(
            check_if_range(&c, &Validators::default(), now()),
            Cond::None
        );
    }
}
