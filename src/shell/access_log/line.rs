//! The line: one response in the combined log format (and the extended suffix), built
//! in one `String` on the worker, with every client-controlled field escaped.

use std::cell::Cell;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rocket::http::Method;
use rocket::Request;

use crate::semantics::date::civil_from_days;
use crate::semantics::range::ByteRange;
use crate::shell::access_log::queue::Sink;
use crate::shell::request::first_values;
use crate::shell::served::Served;

/// The request fields a line shows, besides the request line: `Referer`,
/// `User-Agent`, `Range`, and whether `Host` was sent (HTTP/2 sends `:authority`).
const LINE_FIELDS: [&str; 4] = ["Referer", "User-Agent", "Range", "Host"];

/// What the log remembers of a request from its arrival (request-local).
#[derive(Debug)]
pub(super) struct Started {
    at: Instant,
    wall: SystemTime,
    method: Method,
}

impl Started {
    pub(super) fn now(method: Method) -> Started {
        Started {
            at: Instant::now(),
            wall: SystemTime::now(),
            method,
        }
    }
}

/// `0-99,1000-1099`: the parts in the order sent.
fn part_list(parts: &[ByteRange]) -> String {
    let mut out = String::with_capacity(parts.len() * 16);
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{}-{}", p.first, p.last);
    }
    out
}

/// Everything a line needs, kept until the body ends.
pub(super) struct Pending<'r, 'c> {
    pub(super) req: &'r Request<'c>,
    pub(super) started: &'r Started,
    pub(super) status: u16,
    pub(super) content_range: Option<String>,
    pub(super) sink: Arc<Sink>,
    pub(super) extended: bool,
    pub(super) client_ip_from_header: bool,
}

impl Pending<'_, '_> {
    /// Formats the line with the `sent` body bytes and queues it.
    pub(super) fn send(self, sent: u64) {
        let line = self.format(sent);
        self.sink.send(line);
    }

    fn format(&self, sent: u64) -> String {
        let req = self.req;
        let [referer, user_agent, range, host] = first_values(req, &LINE_FIELDS);
        let mut line = String::with_capacity(256);
        let ip: Option<IpAddr> = if self.client_ip_from_header {
            req.client_ip()
        } else {
            req.remote().map(|a| a.ip())
        };
        match ip {
            Some(ip) => push_ip(&mut line, ip),
            None => line.push('-'),
        }
        line.push_str(" - - [");
        push_clf_time(&mut line, self.started.wall);
        line.push_str("] \"");
        push_escaped(&mut line, self.started.method.as_str());
        line.push(' ');
        // The target as it came: path and query, raw (percent-encoded), escaped.
        push_escaped(&mut line, req.uri().path().as_str());
        if let Some(query) = req.uri().query() {
            line.push('?');
            push_escaped(&mut line, query.as_str());
        }
        // Rocket 0.5 does not expose the HTTP version; an HTTP/2 request carries its
        // host in `:authority` (which Rocket reads into `host()`) and, from conforming
        // clients, no `Host` header (RFC 9113 §8.3.1).
        let http2 = req.host().is_some() && host.is_none();
        line.push_str(if http2 {
            " HTTP/2.0\" "
        } else {
            " HTTP/1.1\" "
        });
        push_u64(&mut line, u64::from(self.status));
        line.push(' ');
        push_u64(&mut line, sent);
        line.push(' ');
        push_quoted(&mut line, referer);
        line.push(' ');
        push_quoted(&mut line, user_agent);
        if self.extended {
            let ms = self.started.at.elapsed().as_secs_f64() * 1000.0;
            let _ = write!(line, " {ms:.3} ");
            push_quoted(&mut line, range);
            line.push_str(" \"");
            self.push_served(&mut line);
            line.push('"');
        }
        line.push('\n');
        line
    }

    /// The part list a 206 was answered with; `-` for every other status. The record
    /// of what was served tells it; a 206 built by other code (a route's own response)
    /// has none, and its `Content-Range` is shown as it was sent.
    fn push_served(&self, line: &mut String) {
        if self.status != 206 {
            line.push('-');
        } else if let Some(served) =
            Served::read(self.req).filter(|s| s.status.code() == self.status)
        {
            line.push_str(&part_list(&served.parts));
        } else if let Some(range) = self
            .content_range
            .as_deref()
            .and_then(|v| v.strip_prefix("bytes "))
            .and_then(|v| v.split_once('/'))
            .map(|(range, _)| range)
        {
            push_escaped(line, range);
        } else {
            line.push_str("multipart");
        }
    }
}

/// Decimal digits of `n`, without the formatting machinery.
fn push_u64(line: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    line.extend(digits[i..].iter().map(|&d| char::from(d)));
}

/// An address as `Display` writes it (IPv4 without the formatting machinery).
fn push_ip(line: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    line.push('.');
                }
                push_u64(line, u64::from(octet));
            }
        }
        IpAddr::V6(v6) => {
            let _ = write!(line, "{v6}");
        }
    }
}

/// `"value"`, escaped, or `"-"`.
fn push_quoted(line: &mut String, value: Option<&str>) {
    line.push('"');
    match value {
        Some(v) => push_escaped(line, v),
        None => line.push('-'),
    }
    line.push('"');
}

/// Appends `s` with `"`, `\`, control characters and bytes outside printable ASCII
/// written as `\xHH`: a logged field can never end early or start a new line.
fn push_escaped(line: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s.as_bytes() {
        if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
            line.push_str("\\x");
            line.push(char::from(HEX[usize::from(b >> 4)]));
            line.push(char::from(HEX[usize::from(b & 0xf)]));
        } else {
            line.push(char::from(b));
        }
    }
}

/// `10/Oct/2000:13:55:36 +0000` (UTC). Formatted once per second and thread: the
/// lines of one second share it.
fn push_clf_time(line: &mut String, t: SystemTime) {
    const LEN: usize = "10/Oct/2000:13:55:36 +0000".len();
    thread_local! {
        static LAST: Cell<(u64, [u8; LEN])> = const { Cell::new((u64::MAX, [0; LEN])) };
    }
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (cached, text) = LAST.with(Cell::get);
    if cached == secs {
        line.extend(text.iter().map(|&b| char::from(b)));
        return;
    }
    let start = line.len();
    format_clf_time(line, secs);
    if let Ok(text) = <[u8; LEN]>::try_from(&line.as_bytes()[start..]) {
        LAST.with(|c| c.set((secs, text)));
    }
}

fn format_clf_time(line: &mut String, secs: u64) {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    let _ = write!(
        line,
        "{day:02}/{}/{year:04}:{:02}:{:02}:{:02} +0000",
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn escapes_quotes_backslashes_controls_and_non_ascii() {
        let mut s = String::new();
        push_escaped(&mut s, "a\"b\\c\nd\re\tf\u{7f}é ok");
        assert_eq!(s, "a\\x22b\\x5Cc\\x0Ad\\x0De\\x09f\\x7F\\xC3\\xA9 ok");
        let mut q = String::new();
        push_quoted(&mut q, None);
        assert_eq!(q, "\"-\"");
    }

    #[test]
    fn clf_time_is_utc_with_month_names() {
        let mut s = String::new();
        push_clf_time(&mut s, UNIX_EPOCH + Duration::from_secs(971_186_136));
        assert_eq!(s, "10/Oct/2000:13:55:36 +0000");
        let mut s = String::new();
        push_clf_time(&mut s, UNIX_EPOCH);
        assert_eq!(s, "01/Jan/1970:00:00:00 +0000");
        // A leap day, and the day after.
        let mut s = String::new();
        push_clf_time(&mut s, UNIX_EPOCH + Duration::from_secs(951_782_400));
        assert_eq!(s, "29/Feb/2000:00:00:00 +0000");
        let mut s = String::new();
        push_clf_time(&mut s, UNIX_EPOCH + Duration::from_secs(951_955_199));
        assert_eq!(s, "01/Mar/2000:23:59:59 +0000");
    }

    #[test]
    fn numbers_and_addresses_as_display_writes_them() {
        for n in [0, 7, 10, 206, 65_535, u64::MAX] {
            let mut s = String::new();
            push_u64(&mut s, n);
            assert_eq!(s, n.to_string());
        }
        for ip in [
            "127.0.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "10.20.3.4",
            "::1",
            "2001:db8::8a2e:370:7334",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let mut s = String::new();
            push_ip(&mut s, ip);
            assert_eq!(s, ip.to_string());
        }
    }

    #[test]
    fn the_cached_time_is_the_time_of_its_second() {
        let t = UNIX_EPOCH + Duration::from_secs(971_186_136);
        let (mut a, mut b, mut c) = (String::new(), String::new(), String::new());
        push_clf_time(&mut a, t);
        push_clf_time(&mut b, t + Duration::from_millis(999));
        push_clf_time(&mut c, t + Duration::from_secs(1));
        assert_eq!(a, "10/Oct/2000:13:55:36 +0000");
        assert_eq!(b, a);
        assert_eq!(c, "10/Oct/2000:13:55:37 +0000");
    }

    #[test]
    fn part_lists() {
        let r = |first, last| ByteRange { first, last };
        assert_eq!(part_list(&[r(0, 99)]), "0-99");
        assert_eq!(part_list(&[r(500, 599), r(0, 9)]), "500-599,0-9");
    }
}
