//! HTTP dates (RFC 9110 §5.6.7), at the one-second resolution HTTP uses.
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
}
