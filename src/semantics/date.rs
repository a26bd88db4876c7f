//! HTTP dates (RFC 9110 §5.6.7), at the one-second resolution HTTP uses, and the
//! RFC 3339 timestamps of directory listings (`rfc3339`, crate-private).
//!
//! Parsing and formatting use the maintained `httpdate` crate, which accepts all three
//! formats a recipient must accept (IMF-fixdate, RFC 850 and asctime). This module
//! adds what a server needs around it: a small `Copy` type holding whole seconds, and
//! guards for times `httpdate` cannot represent (it panics on times before 1970 or
//! after 9999 — a file `touch`ed to 1960 must not crash the server; such a file simply
//! has no `Last-Modified`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the epoch of the first instant of the year 10000, the end of what
/// an HTTP date (four-digit year) can express.
const YEAR_10000: u64 = 253_402_300_800;

/// A point in time with HTTP's resolution of one second, between 1970 and 9999.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HttpDate(u64);

impl HttpDate {
    /// 1970-01-01 00:00:00 GMT.
    pub const UNIX_EPOCH: HttpDate = HttpDate(0);

    /// Truncates a `SystemTime` to whole seconds; `None` if it lies before 1970 or
    /// after 9999, where an HTTP date cannot express it.
    pub fn from_system_time(t: SystemTime) -> Option<HttpDate> {
        let secs = t.duration_since(UNIX_EPOCH).ok()?.as_secs();
        (secs < YEAR_10000).then_some(HttpDate(secs))
    }

    /// From seconds since the Unix epoch; `None` past the year 9999.
    pub fn from_unix_secs(secs: u64) -> Option<HttpDate> {
        (secs < YEAR_10000).then_some(HttpDate(secs))
    }

    /// Seconds since the Unix epoch.
    pub fn unix_secs(self) -> u64 {
        self.0
    }

    /// As a `SystemTime`.
    pub fn to_system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.0)
    }

    /// Parses a field value in any of the three formats of §5.6.7. Surrounding
    /// whitespace is allowed; anything else that is not a valid date gives `None`
    /// (and the header that held it is ignored, §13.1.3, §13.1.4).
    pub fn parse(s: &str) -> Option<HttpDate> {
        let s = s.trim_matches(|c| c == ' ' || c == '\t');
        // httpdate only looks at ASCII; anything longer than the longest format
        // (RFC 850 with a long weekday, 33 bytes) is not a date.
        if s.len() > 40 {
            return None;
        }
        let t = httpdate::parse_http_date(s).ok()?;
        HttpDate::from_system_time(t)
    }

    /// The IMF-fixdate form, e.g. `Sun, 06 Nov 1994 08:49:37 GMT` (§5.6.7: senders
    /// MUST generate this format).
    pub fn to_imf_fixdate(self) -> String {
        // In range by construction, so `httpdate` cannot panic.
        httpdate::fmt_http_date(self.to_system_time())
    }
}

impl std::fmt::Display for HttpDate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_imf_fixdate())
    }
}

/// Seconds since the Unix epoch as an RFC 3339 UTC timestamp (`2024-05-01T12:34:56Z`,
/// RFC 3339 §5.6); `None` outside the years 0000–9999, which it cannot express.
#[cfg_attr(not(feature = "browse"), allow(dead_code))]
pub(crate) fn rfc3339(secs: i64) -> Option<String> {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // 0000-01-01 is day -719 528, 9999-12-31 is day 2 932 896.
    if !(-719_528..=2_932_896).contains(&days) {
        return None;
    }
    let (y, m, d) = civil_from_days(days);
    Some(format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    ))
}

/// The proleptic Gregorian date (year, month, day) of a day count since 1970-01-01
/// (H. Hinnant's `civil_from_days`). No arithmetic overflows for a count below 2^50
/// in magnitude (any `u64` or `i64` of seconds, divided into days).
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 784_111_777; // Sun, 06 Nov 1994 08:49:37 GMT

    #[test]
    fn parses_all_three_formats() {
        for s in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "  Sun, 06 Nov 1994 08:49:37 GMT\t",
        ] {
            assert_eq!(HttpDate::parse(s), Some(HttpDate(T)), "{s:?}");
        }
    }

    #[test]
    fn invalid_dates_are_none() {
        for s in [
            "",
            "yesterday",
            "Sun, 06 Nov 1994 08:49:37",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMT, Mon, 07 Nov 1994 08:49:37 GMT",
            "\u{1F600}\u{1F600}\u{1F600}\u{1F600}\u{1F600}\u{1F600}\u{1F600}",
        ] {
            assert_eq!(HttpDate::parse(s), None, "{s:?}");
        }
    }

    #[test]
    fn formats_imf_fixdate() {
        assert_eq!(
            HttpDate(T).to_imf_fixdate(),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
    }

    #[test]
    fn truncates_to_seconds() {
        let t = UNIX_EPOCH + Duration::new(T, 999_999_999);
        assert_eq!(HttpDate::from_system_time(t), Some(HttpDate(T)));
    }

    #[test]
    fn times_outside_1970_to_9999_are_none_not_panics() {
        let before = UNIX_EPOCH - Duration::from_secs(10 * 365 * 86_400);
        assert_eq!(HttpDate::from_system_time(before), None);
        let after = UNIX_EPOCH + Duration::from_secs(YEAR_10000);
        assert_eq!(HttpDate::from_system_time(after), None);
        assert_eq!(
            HttpDate::from_unix_secs(YEAR_10000 - 1)
                .unwrap()
                .to_string(),
            "Fri, 31 Dec 9999 23:59:59 GMT"
        );
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(0).as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(
            rfc3339(784_111_777).as_deref(),
            Some("1994-11-06T08:49:37Z")
        );
        assert_eq!(
            rfc3339(951_782_400).as_deref(),
            Some("2000-02-29T00:00:00Z")
        );
        assert_eq!(rfc3339(-1).as_deref(), Some("1969-12-31T23:59:59Z"));
        assert_eq!(
            rfc3339(253_402_300_799).as_deref(),
            Some("9999-12-31T23:59:59Z")
        );
        assert_eq!(
            rfc3339(-62_167_219_200).as_deref(),
            Some("0000-01-01T00:00:00Z")
        );
        assert_eq!(rfc3339(253_402_300_800), None);
        assert_eq!(rfc3339(-62_167_219_201), None);
        assert_eq!(rfc3339(i64::MAX), None);
        assert_eq!(rfc3339(i64::MIN), None);
    }
}
