//! `multipart/byteranges` bodies (RFC 9110 §14.6) and `Content-Range` values.

/// Splits a `multipart/byteranges` body into `(first, last, total, bytes)` parts, using
/// each part's `Content-Range` for its length (RFC 9110 §14.6), and checks the framing.
pub fn parse_byteranges(body: &[u8], boundary: &str) -> Vec<(u64, u64, u64, Vec<u8>)> {
    let delim = format!("--{boundary}");
    let mut pos = find(body, delim.as_bytes(), 0)
        .unwrap_or_else(|| panic!("no boundary {delim:?} in the multipart body"));
    let mut parts = Vec::new();
    loop {
        pos += delim.len();
        if body[pos..].starts_with(b"--") {
            break;
        }
        assert!(
            body[pos..].starts_with(b"\r\n"),
            "CRLF expected after a boundary"
        );
        let head_end = find(body, b"\r\n\r\n", pos).expect("end of part headers");
        let head = std::str::from_utf8(&body[pos + 2..head_end]).expect("ASCII part headers");
        let range = head
            .lines()
            .find_map(|l| {
                l.split_once(':')
                    .filter(|(k, _)| k.eq_ignore_ascii_case("Content-Range"))
            })
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_else(|| panic!("part without Content-Range: {head:?}"));
        let (first, last, total) = parse_content_range(&range);
        let start = head_end + 4;
        let end = start + (last - first + 1) as usize;
        parts.push((first, last, total, body[start..end].to_vec()));
        assert!(
            body[end..].starts_with(format!("\r\n{delim}").as_bytes()),
            "part of {range} not followed by CRLF and the boundary"
        );
        pos = end + 2;
    }
    parts
}

/// `bytes FIRST-LAST/TOTAL`.
pub fn parse_content_range(v: &str) -> (u64, u64, u64) {
    let rest = v.strip_prefix("bytes ").expect("bytes unit");
    let (range, total) = rest.split_once('/').expect("complete length");
    let (a, b) = range.split_once('-').expect("first-last");
    (
        a.parse().unwrap(),
        b.parse().unwrap(),
        total.parse().unwrap(),
    )
}

/// The first position of `needle` in `hay` at or after `from`.
pub fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}
