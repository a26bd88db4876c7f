//! Directory listings, pure: which format a client gets, the order of the entries, and
//! the HTML and JSON bytes, escaped by construction. The file system is read elsewhere
//! (the engine); this module only turns a list of [`Listed`] entries into a page.
//!
//! Decisions (the README's "Directory listings" section says the same):
//!
//! * **Format.** `?format=json` or `?format=html` decides; otherwise the `Accept`
//!   field does ([`negotiate`], RFC 9110 §12.5.1), and the response then carries
//!   `Vary: Accept` (§12.5.5). HTML is the default, also for `Accept: */*` and for
//!   types we do not offer (§12.5.1 allows disregarding `Accept` rather than 406).
//! * **Order.** Directories first, always; then by `?sort=name|size|mtime` (default
//!   `name`) in `?order=asc|desc` (default `asc`); ties by name. Names compare
//!   case-insensitively (Unicode lower case), then by their bytes, so the order is total
//!   and the same on every replica. Unknown values fall back to the defaults.
//! * **JSON** is an array, `[{"name", "type", "size", "mtime", "href"}]`: `type` is
//!   `"directory"` or `"file"`; `size` is bytes (`null` for directories); `mtime` is
//!   RFC 3339 UTC with second precision, e.g. `"2024-05-01T12:34:56Z"` (`null` when
//!   unknown or outside years 0000–9999); `href` is the entry's URL relative to the
//!   listing (percent-encoded, `/`-terminated for directories). `name` is the file name
//!   read as UTF-8, with bytes that are not UTF-8 replaced by U+FFFD: `href` is the
//!   exact name and the way to fetch the entry.
//! * **Escaping.** Every name and path shown in HTML goes through [`escape_html`]
//!   (`&`, `<`, `>`, `"`, `'`; attribute values are always double-quoted), and every
//!   link is built by [`encode_segment`], which percent-encodes each byte of the raw
//!   name except RFC 3986's unreserved characters (§2.3): a link is plain ASCII, never
//!   starts a scheme (`:` is encoded, §4.2), and names the file's exact bytes, UTF-8 or
//!   not. Control and bidirectional-formatting characters are shown as U+FFFD, so a
//!   name cannot reorder the text around it. Entries whose name cannot be a path
//!   segment (empty, `.`, `..`, containing `/` or NUL) are never rendered.
//! * **Bounds.** The caller passes at most the configured number of entries and the
//!   total it counted; when they differ, the page says "Showing N of M entries: the
//!   first N by name, directories first" (and the HTTP layer sends the total in a
//!   header). The page has no script, no external resource and inline CSS only.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt::Write as _;

use crate::semantics::date::rfc3339;
use crate::semantics::encoding::parse_q;
use crate::semantics::escape::{display_name, encode_segment, escape_html};

/// What a directory entry is, as the file server would serve it (a symbolic link is
/// listed as what it points to, if it is listed at all).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A directory: listed first, linked with a trailing `/`.
    Directory,
    /// A regular file.
    File,
}

impl Kind {
    /// The JSON `type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Directory => "directory",
            Kind::File => "file",
        }
    }
}

/// One directory entry to list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// The file name's bytes (on Unix any bytes but `/` and NUL; not necessarily UTF-8).
    pub name: Vec<u8>,
    /// Directory or file.
    pub kind: Kind,
    /// The size in bytes (files; `None` for directories).
    pub size: Option<u64>,
    /// The modification time, seconds since the Unix epoch (negative before 1970).
    pub mtime: Option<i64>,
}

/// The column a listing is sorted by (`?sort=`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SortKey {
    /// By name (the default).
    #[default]
    Name,
    /// By size (directories, which have none, by name).
    Size,
    /// By modification time.
    Mtime,
}

impl SortKey {
    /// The query value.
    pub fn as_str(self) -> &'static str {
        match self {
            SortKey::Name => "name",
            SortKey::Size => "size",
            SortKey::Mtime => "mtime",
        }
    }
}

/// Ascending or descending (`?order=`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Order {
    /// Ascending (the default).
    #[default]
    Asc,
    /// Descending.
    Desc,
}

impl Order {
    /// The query value.
    pub fn as_str(self) -> &'static str {
        match self {
            Order::Asc => "asc",
            Order::Desc => "desc",
        }
    }
}

/// The representation of a listing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Format {
    /// `text/html; charset=utf-8` (the default).
    #[default]
    Html,
    /// `application/json`.
    Json,
}

impl Format {
    /// The `Content-Type` field value.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Html => "text/html; charset=utf-8",
            Format::Json => "application/json",
        }
    }
}

/// What the query string asks of a listing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ListingQuery {
    /// `sort=name|size|mtime`.
    pub sort: SortKey,
    /// `order=asc|desc`.
    pub order: Order,
    /// `format=html|json`, if given (otherwise the format is negotiated by `Accept`).
    pub format: Option<Format>,
}

impl ListingQuery {
    /// Reads `sort`, `order` and `format` from a raw query string (`a=b&c=d`). Values
    /// are matched ASCII case-insensitively; unknown keys and values are ignored (the
    /// defaults apply); a repeated key counts by its last value.
    pub fn parse(query: Option<&str>) -> ListingQuery {
        let mut q = ListingQuery::default();
        for pair in query.unwrap_or("").split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let is = |v: &str| value.eq_ignore_ascii_case(v);
            match key {
                "sort" if is("name") => q.sort = SortKey::Name,
                "sort" if is("size") => q.sort = SortKey::Size,
                "sort" if is("mtime") => q.sort = SortKey::Mtime,
                "order" if is("asc") => q.order = Order::Asc,
                "order" if is("desc") => q.order = Order::Desc,
                "format" if is("html") => q.format = Some(Format::Html),
                "format" if is("json") => q.format = Some(Format::Json),
                _ => {}
            }
        }
        q
    }
}

/// Chooses HTML or JSON by an `Accept` field value (RFC 9110 §12.5.1).
///
/// Each format gets the weight (`q`) of the most specific media range that matches it
/// (`application/json` over `application/*` over `*/*`; likewise `text/html`).
/// JSON is chosen when its weight is higher than HTML's, or equal and named more
/// specifically (so `application/json, */*` gives JSON, while a browser's
/// `text/html, …, */*;q=0.8` gives HTML); everything else, including no `Accept` at
/// all, gives HTML. Elements with an invalid `q` are ignored.
pub fn negotiate(accept: Option<&str>) -> Format {
    let Some(accept) = accept else {
        return Format::Html;
    };
    // (specificity, q in thousandths) of the best match so far, per format.
    let (mut json, mut html) = ((0u8, 0u16), (0u8, 0u16));
    for element in accept.split(',') {
        let mut parts = element.split(';');
        let range = parts.next().unwrap_or("").trim();
        let Some((ty, sub)) = range.split_once('/') else {
            continue;
        };
        let mut q = Some(1000);
        for param in parts {
            let Some((name, value)) = param.split_once('=') else {
                continue;
            };
            if name.trim().eq_ignore_ascii_case("q") {
                q = parse_q(value);
            }
        }
        let Some(q) = q else {
            continue;
        };
        for (best, (want_ty, want_sub)) in [
            (&mut json, ("application", "json")),
            (&mut html, ("text", "html")),
        ] {
            let specificity = if ty.eq_ignore_ascii_case(want_ty) {
                if sub.eq_ignore_ascii_case(want_sub) {
                    3
                } else if sub == "*" {
                    2
                } else {
                    0
                }
            } else if ty == "*" && sub == "*" {
                1
            } else {
                0
            };
            // The most specific range decides the weight (§12.5.1).
            if specificity > best.0 {
                *best = (specificity, q);
            }
        }
    }
    let (json_q, html_q) = (json.1, html.1);
    let json_wins =
        json.0 > 0 && json_q > 0 && (json_q > html_q || (json_q == html_q && json.0 > html.0));
    if json_wins {
        Format::Json
    } else {
        Format::Html
    }
}

/// The sort key of "directories first, then by name": kind, the name in lower case,
/// then the raw bytes. Its order is the listing's default order, and the order by which
/// a directory with too many entries keeps its first ones.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct NameKey {
    kind: Kind,
    folded: String,
    name: Vec<u8>,
}

impl NameKey {
    /// The key of an entry named `name`.
    pub fn new(kind: Kind, name: Vec<u8>) -> NameKey {
        NameKey {
            kind,
            folded: fold(&name),
            name,
        }
    }

    /// The kind and the name back.
    pub fn into_parts(self) -> (Kind, Vec<u8>) {
        (self.kind, self.name)
    }
}

fn fold(name: &[u8]) -> String {
    String::from_utf8_lossy(name).to_lowercase()
}

/// Sorts `entries`: directories first, then by `sort` in `order`, ties by name
/// (ascending, except when sorting by name descending).
pub fn sort_entries(entries: &mut Vec<Listed>, sort: SortKey, order: Order) {
    let mut keyed: Vec<(String, Listed)> = entries.drain(..).map(|e| (fold(&e.name), e)).collect();
    keyed.sort_by(|(fa, a), (fb, b)| {
        let by_name = fa.cmp(fb).then_with(|| a.name.cmp(&b.name));
        let primary = match sort {
            SortKey::Name => by_name,
            SortKey::Size => a.size.cmp(&b.size),
            SortKey::Mtime => a.mtime.cmp(&b.mtime),
        };
        let primary = match order {
            Order::Asc => primary,
            Order::Desc => primary.reverse(),
        };
        a.kind.cmp(&b.kind).then(primary).then_with(|| match sort {
            SortKey::Name => Ordering::Equal,
            _ => by_name,
        })
    });
    entries.extend(keyed.into_iter().map(|(_, e)| e));
}

/// How one listing page is rendered.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PageSpec {
    /// HTML or JSON.
    pub format: Format,
    /// The sort column and order.
    pub sort: SortKey,
    /// Ascending or descending.
    pub order: Order,
    /// The directory's URL path as shown in the title (decoded, e.g. `/docs/`); it is
    /// escaped when rendered.
    pub path: String,
    /// `None` when the listing's URL ends with `/` (links are relative to it).
    /// Otherwise the raw bytes of the URL's last segment: links are then prefixed
    /// with it (encoded) and `/`, so that they resolve below the directory.
    pub base_segment: Option<Vec<u8>>,
    /// Whether to link the parent directory (every directory but the root).
    pub parent: bool,
}

/// Sorts `entries` as `spec` asks and renders the page. `total` is how many entries the
/// directory has that could be listed; when it exceeds `entries.len()`, the HTML page
/// says so.
pub fn render(mut entries: Vec<Listed>, total: usize, spec: &PageSpec) -> Vec<u8> {
    entries.retain(|e| is_segment(&e.name));
    sort_entries(&mut entries, spec.sort, spec.order);
    let prefix = spec
        .base_segment
        .as_deref()
        .map(|s| format!("{}/", encode_segment(s)))
        .unwrap_or_default();
    match spec.format {
        Format::Html => render_html(&entries, total, spec, &prefix).into_bytes(),
        Format::Json => render_json(&entries, &prefix),
    }
}

/// Whether `name` can be one path segment: not empty, not `.` or `..`, no `/`, no NUL.
fn is_segment(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0)
}

/// The link to an entry, relative to the listing (see [`PageSpec::base_segment`]).
fn href(prefix: &str, e: &Listed) -> String {
    let mut h = format!("{prefix}{}", encode_segment(&e.name));
    if e.kind == Kind::Directory {
        h.push('/');
    }
    h
}

/// A size for people: `512 B`, `1.5 KiB`, `23 MiB` (binary multiples, one decimal
/// below 10).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value < 10.0 {
        format!("{value:.1} {}", UNITS[unit])
    } else {
        format!("{value:.0} {}", UNITS[unit])
    }
}

const STYLE: &str = "\
:root{color-scheme:light dark;font:15px/1.45 system-ui,-apple-system,\"Segoe UI\",sans-serif}\
body{max-width:64rem;margin:1.5rem auto;padding:0 1rem}\
h1{font-size:1.25rem;font-weight:600;overflow-wrap:anywhere}\
p.note{padding:.5rem .75rem;border-left:4px solid #d9a400;background:#d9a4001a}\
table{width:100%;border-collapse:collapse}\
th,td{padding:.3rem .6rem;text-align:left;vertical-align:top}\
th{border-bottom:2px solid #8886;white-space:nowrap}\
th a{color:inherit}\
tbody tr:nth-child(even){background:#8881}\
tbody tr:hover{background:#8883}\
td.n{overflow-wrap:anywhere;unicode-bidi:isolate}\
td.n a{text-decoration:none}td.n a:hover{text-decoration:underline}\
tr.d td.n a{font-weight:600}\
.s,.m{width:1%;white-space:nowrap;font-variant-numeric:tabular-nums}\
.s{text-align:right}\
footer{margin-top:.75rem;color:#888;font-size:.85rem}";

fn render_html(entries: &[Listed], total: usize, spec: &PageSpec, prefix: &str) -> String {
    let title = escape_html(
        &spec
            .path
            .chars()
            .map(|c| {
                if c.is_control() {
                    char::REPLACEMENT_CHARACTER
                } else {
                    c
                }
            })
            .collect::<String>(),
    )
    .into_owned();
    let mut out = String::with_capacity(1024 + entries.len() * 256);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Index of {title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <h1>Index of {title}</h1>\n"
    );
    if total > entries.len() {
        let _ = writeln!(
            out,
            "<p class=\"note\">Showing {} of {total} entries: the first {} by name, \
             directories first. The rest are not listed.</p>",
            entries.len(),
            entries.len()
        );
    }
    out.push_str("<table>\n<thead><tr>");
    for (key, label, class) in [
        (SortKey::Name, "Name", ""),
        (SortKey::Size, "Size", " class=\"s\""),
        (SortKey::Mtime, "Modified (UTC)", " class=\"m\""),
    ] {
        let (next, arrow) = match (spec.sort == key, spec.order) {
            (true, Order::Asc) => (Order::Desc, " \u{25B2}"),
            (true, Order::Desc) => (Order::Asc, " \u{25BC}"),
            (false, _) => (Order::Asc, ""),
        };
        let _ = write!(
            out,
            "<th{class}><a href=\"?sort={}&amp;order={}\">{label}{arrow}</a></th>",
            key.as_str(),
            next.as_str()
        );
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    if spec.parent {
        let up = if spec.base_segment.is_some() {
            "./"
        } else {
            "../"
        };
        let _ = writeln!(
            out,
            "<tr class=\"d\"><td class=\"n\"><a href=\"{up}\">../</a></td><td class=\"s\">\u{2014}</td><td class=\"m\"></td></tr>"
        );
    }
    let (mut dirs, mut files) = (0usize, 0usize);
    for e in entries {
        let link = escape_html(&href(prefix, e)).into_owned();
        let name = display_name(&e.name);
        let name = escape_html(&name);
        let slash = if e.kind == Kind::Directory { "/" } else { "" };
        let class = if e.kind == Kind::Directory {
            " class=\"d\""
        } else {
            ""
        };
        let _ = write!(
            out,
            "<tr{class}><td class=\"n\"><a href=\"{link}\">{name}{slash}</a></td>"
        );
        match (e.kind, e.size) {
            (Kind::File, Some(size)) => {
                files += 1;
                let _ = write!(
                    out,
                    "<td class=\"s\" title=\"{size} bytes\">{}</td>",
                    human_size(size)
                );
            }
            (kind, _) => {
                if kind == Kind::Directory {
                    dirs += 1;
                } else {
                    files += 1;
                }
                out.push_str("<td class=\"s\">\u{2014}</td>");
            }
        }
        match e.mtime.and_then(rfc3339) {
            Some(t) => {
                // "2024-05-01T12:34:56Z" shown as "2024-05-01 12:34".
                let _ = writeln!(
                    out,
                    "<td class=\"m\"><time datetime=\"{t}\">{} {}</time></td></tr>",
                    &t[..10],
                    &t[11..16]
                );
            }
            None => out.push_str("<td class=\"m\"></td></tr>\n"),
        }
    }
    if entries.is_empty() && total == 0 {
        out.push_str("<tr><td colspan=\"3\"><em>This directory is empty.</em></td></tr>\n");
    }
    let plural = |n: usize, one: &'static str, many: &'static str| if n == 1 { one } else { many };
    let _ = write!(
        out,
        "</tbody>\n</table>\n<footer>{dirs} {}, {files} {}</footer>\n</body>\n</html>\n",
        plural(dirs, "directory", "directories"),
        plural(files, "file", "files")
    );
    out
}

#[derive(serde::Serialize)]
struct JsonEntry<'a> {
    name: Cow<'a, str>,
    #[serde(rename = "type")]
    kind: &'static str,
    size: Option<u64>,
    mtime: Option<String>,
    href: String,
}

fn render_json(entries: &[Listed], prefix: &str) -> Vec<u8> {
    let rows: Vec<JsonEntry<'_>> = entries
        .iter()
        .map(|e| JsonEntry {
            name: String::from_utf8_lossy(&e.name),
            kind: e.kind.as_str(),
            size: if e.kind == Kind::File { e.size } else { None },
            mtime: e.mtime.and_then(rfc3339),
            href: href(prefix, e),
        })
        .collect();
    // Serialising plain strings and numbers cannot fail.
    serde_json::to_vec(&rows).unwrap_or_else(|_| b"[]".to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn file(name: &[u8], size: u64, mtime: i64) -> Listed {
        Listed {
            name: name.to_vec(),
            kind: Kind::File,
            size: Some(size),
            mtime: Some(mtime),
        }
    }

    fn dir(name: &[u8], mtime: i64) -> Listed {
        Listed {
            name: name.to_vec(),
            kind: Kind::Directory,
            size: None,
            mtime: Some(mtime),
        }
    }

    fn names(entries: &[Listed]) -> Vec<String> {
        entries
            .iter()
            .map(|e| String::from_utf8_lossy(&e.name).into_owned())
            .collect()
    }

    fn html(entries: Vec<Listed>, total: usize, spec: &PageSpec) -> String {
        String::from_utf8(render(entries, total, spec)).unwrap()
    }

    #[test]
    fn query_reads_sort_order_and_format() {
        assert_eq!(ListingQuery::parse(None), ListingQuery::default());
        let q = ListingQuery::parse(Some("sort=size&order=desc&format=json"));
        assert_eq!(
            (q.sort, q.order, q.format),
            (SortKey::Size, Order::Desc, Some(Format::Json))
        );
        let q = ListingQuery::parse(Some("SORT=size&sort=MTime&order=sideways&x&&format="));
        assert_eq!(
            (q.sort, q.order, q.format),
            (SortKey::Mtime, Order::Asc, None)
        );
        let q = ListingQuery::parse(Some("format=HTML&sort=size&sort=name"));
        assert_eq!((q.sort, q.format), (SortKey::Name, Some(Format::Html)));
    }

    #[test]
    fn accept_negotiation_prefers_html_unless_json_is_asked_for() {
        let cases = [
            (None, Format::Html),
            (Some(""), Format::Html),
            (Some("*/*"), Format::Html),
            (Some("application/json"), Format::Json),
            (Some("Application/JSON; charset=utf-8"), Format::Json),
            (Some("application/json, text/plain, */*"), Format::Json), // axios
            (
                Some("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
                Format::Html,
            ), // browsers
            (Some("application/json, text/html"), Format::Html),
            (Some("text/html;q=0.5, application/json"), Format::Json),
            (Some("application/json;q=0.5, text/html"), Format::Html),
            (Some("application/json;q=0, */*"), Format::Html),
            (Some("application/*"), Format::Json),
            (Some("application/json;q=2"), Format::Html), // invalid q: element ignored
            (Some("application/json;q=0.0001"), Format::Html),
            (Some("image/png"), Format::Html),
            (Some("text/*;q=0.3, application/json;q=0.4"), Format::Json),
            (Some(",,;;,=,/"), Format::Html),
        ];
        for (accept, want) in cases {
            assert_eq!(negotiate(accept), want, "{accept:?}");
        }
    }

    #[test]
    fn qvalues_follow_the_grammar() {
        for (v, q) in [
            ("1", Some(1000)),
            ("1.000", Some(1000)),
            ("0.5", Some(500)),
            ("0.125", Some(125)),
            ("0", Some(0)),
            ("0.", Some(0)),
        ] {
            assert_eq!(parse_q(v), q, "{v}");
        }
        for v in ["1.001", "2", "0.1234", "-0", ".5", "x", "", "0.a"] {
            assert_eq!(parse_q(v), None, "{v}");
        }
    }

    #[test]
    fn directories_come_first_in_every_order() {
        let entries = || {
            vec![
                file(b"b.txt", 30, 100),
                dir(b"Zeta", 50),
                file(b"A.txt", 10, 300),
                dir(b"alpha", 60),
                file(b"c.txt", 20, 200),
                file(b"a.txt", 10, 300),
            ]
        };
        let sorted = |sort, order| {
            let mut e = entries();
            sort_entries(&mut e, sort, order);
            names(&e)
        };
        assert_eq!(
            sorted(SortKey::Name, Order::Asc),
            ["alpha", "Zeta", "A.txt", "a.txt", "b.txt", "c.txt"]
        );
        assert_eq!(
            sorted(SortKey::Name, Order::Desc),
            ["Zeta", "alpha", "c.txt", "b.txt", "a.txt", "A.txt"]
        );
        assert_eq!(
            sorted(SortKey::Size, Order::Asc),
            ["alpha", "Zeta", "A.txt", "a.txt", "c.txt", "b.txt"]
        );
        assert_eq!(
            sorted(SortKey::Size, Order::Desc),
            ["alpha", "Zeta", "b.txt", "c.txt", "A.txt", "a.txt"]
        );
        assert_eq!(
            sorted(SortKey::Mtime, Order::Asc),
            ["Zeta", "alpha", "b.txt", "c.txt", "A.txt", "a.txt"]
        );
        assert_eq!(
            sorted(SortKey::Mtime, Order::Desc),
            ["alpha", "Zeta", "A.txt", "a.txt", "c.txt", "b.txt"]
        );
    }

    #[test]
    fn name_key_order_is_the_default_listing_order() {
        let mut entries = vec![
            file(b"b", 1, 1),
            dir(b"B", 1),
            file(b"\xff", 1, 1),
            file(b"A", 1, 1),
            dir(b"a", 1),
            file(b"a", 1, 1),
        ];
        let mut keys: Vec<NameKey> = entries
            .iter()
            .map(|e| NameKey::new(e.kind, e.name.clone()))
            .collect();
        keys.sort();
        sort_entries(&mut entries, SortKey::Name, Order::Asc);
        let from_keys: Vec<(Kind, Vec<u8>)> = keys.into_iter().map(NameKey::into_parts).collect();
        let from_sort: Vec<(Kind, Vec<u8>)> =
            entries.into_iter().map(|e| (e.kind, e.name)).collect();
        assert_eq!(from_keys, from_sort);
    }

    #[test]
    fn sizes_read_as_binary_multiples() {
        let cases = [
            (0, "0 B"),
            (1023, "1023 B"),
            (1024, "1.0 KiB"),
            (1536, "1.5 KiB"),
            (10 * 1024, "10 KiB"),
            (5 << 30, "5.0 GiB"),
            (u64::MAX, "16 EiB"),
        ];
        for (bytes, want) in cases {
            assert_eq!(human_size(bytes), want);
        }
    }

    #[test]
    fn html_page_is_complete_and_links_each_entry() {
        let spec = PageSpec {
            path: "/docs/".into(),
            parent: true,
            ..PageSpec::default()
        };
        let page = html(
            vec![file(b"a b.txt", 2048, 784_111_777), dir(b"sub", 0)],
            2,
            &spec,
        );
        assert!(page.starts_with("<!doctype html>\n"));
        assert!(page.contains("<meta charset=\"utf-8\">"));
        assert!(page.contains("<title>Index of /docs/</title>"));
        assert!(page.contains("<a href=\"../\">../</a>"));
        assert!(page.contains("<a href=\"sub/\">sub/</a>"));
        assert!(page.contains(
            "<a href=\"a%20b.txt\">a b.txt</a></td><td class=\"s\" title=\"2048 bytes\">2.0 KiB</td>\
             <td class=\"m\"><time datetime=\"1994-11-06T08:49:37Z\">1994-11-06 08:49</time></td>"
        ));
        assert!(page.find("sub/").unwrap() < page.find("a%20b.txt").unwrap());
        assert!(page.contains("<footer>1 directory, 1 file</footer>"));
        assert!(!page.contains("Showing"));
        assert!(!page.contains("<script") && !page.contains("src=") && !page.contains("http"));
        // The current column links to the other order.
        assert!(page.contains("<a href=\"?sort=name&amp;order=desc\">Name \u{25B2}</a>"));
        assert!(page.contains("<a href=\"?sort=size&amp;order=asc\">Size</a>"));
    }

    #[test]
    fn root_has_no_parent_and_empty_directories_say_so() {
        let page = html(
            vec![],
            0,
            &PageSpec {
                path: "/".into(),
                ..PageSpec::default()
            },
        );
        assert!(!page.contains("../"));
        assert!(page.contains("This directory is empty."));
        assert!(page.contains("<footer>0 directories, 0 files</footer>"));
    }

    #[test]
    fn urls_without_a_trailing_slash_get_prefixed_links() {
        let spec = PageSpec {
            path: "/a b".into(),
            base_segment: Some(b"a b".to_vec()),
            parent: true,
            ..PageSpec::default()
        };
        let page = html(vec![file(b"f", 1, 0)], 1, &spec);
        assert!(page.contains("<a href=\"a%20b/f\">f</a>"));
        assert!(page.contains("<a href=\"./\">../</a>"));
        let json = render(
            vec![file(b"f", 1, 0)],
            1,
            &PageSpec {
                format: Format::Json,
                ..spec
            },
        );
        assert_eq!(
            String::from_utf8(json).unwrap(),
            r#"[{"name":"f","type":"file","size":1,"mtime":"1970-01-01T00:00:00Z","href":"a%20b/f"}]"#
        );
    }

    #[test]
    fn a_cut_listing_says_how_many_it_shows() {
        let page = html(
            vec![file(b"a", 1, 0), file(b"b", 1, 0)],
            100_000,
            &PageSpec::default(),
        );
        assert!(
            page.contains("Showing 2 of 100000 entries: the first 2 by name, directories first.")
        );
        let none = html(vec![], 3, &PageSpec::default());
        assert!(none.contains("Showing 0 of 3 entries"));
        assert!(!none.contains("This directory is empty."));
    }

    #[test]
    fn hostile_names_are_escaped_in_html_and_exact_in_json() {
        let hostile: [&[u8]; 7] = [
            b"<img src=x onerror=alert(1)>.txt",
            b"100%.txt",
            b"a#b.txt",
            b"what?.txt",
            b"with space.txt",
            b"\"quoted' name\".txt",
            b"caf\xe9.txt",
        ];
        let entries: Vec<Listed> = hostile.iter().map(|n| file(n, 1, 0)).collect();
        let page = html(entries.clone(), entries.len(), &PageSpec::default());
        assert!(!page.contains("<img"));
        assert!(page.contains(
            "<a href=\"%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E.txt\">&lt;img src=x onerror=alert(1)&gt;.txt</a>"
        ));
        assert!(page.contains("<a href=\"100%25.txt\">100%.txt</a>"));
        assert!(page.contains("<a href=\"a%23b.txt\">a#b.txt</a>"));
        assert!(page.contains("<a href=\"what%3F.txt\">what?.txt</a>"));
        assert!(page.contains("<a href=\"with%20space.txt\">with space.txt</a>"));
        assert!(page.contains(
            "<a href=\"%22quoted%27%20name%22.txt\">&quot;quoted&#39; name&quot;.txt</a>"
        ));
        assert!(page.contains("<a href=\"caf%E9.txt\">caf\u{FFFD}.txt</a>"));

        let spec = PageSpec {
            format: Format::Json,
            ..PageSpec::default()
        };
        let json: serde_json::Value = serde_json::from_slice(&render(entries, 7, &spec)).unwrap();
        let rows = json.as_array().unwrap();
        assert_eq!(rows.len(), 7);
        for row in rows {
            let name = row["name"].as_str().unwrap();
            let href = row["href"].as_str().unwrap();
            let raw: Vec<u8> = percent_encoding::percent_decode_str(href).collect();
            assert!(hostile.contains(&raw.as_slice()), "{href}");
            assert_eq!(name, String::from_utf8_lossy(&raw));
            assert_eq!(row["type"], "file");
        }
    }

    #[test]
    fn names_that_cannot_be_segments_are_never_rendered() {
        let entries = vec![
            file(b"..", 1, 0),
            file(b".", 1, 0),
            file(b"", 1, 0),
            file(b"a/b", 1, 0),
            file(b"a\0b", 1, 0),
            file(b"ok", 1, 0),
        ];
        let page = html(entries.clone(), 6, &PageSpec::default());
        assert_eq!(
            page.matches("<a href=\"").count(),
            3 + 1,
            "three column links and one entry"
        );
        let json = render(
            entries,
            6,
            &PageSpec {
                format: Format::Json,
                ..PageSpec::default()
            },
        );
        assert_eq!(
            String::from_utf8(json).unwrap().matches("\"name\"").count(),
            1
        );
    }

    /// The characters that carry HTML structure, counted in a page.
    fn structure(page: &str) -> [usize; 4] {
        ['<', '>', '"', '\''].map(|c| page.matches(c).count())
    }

    proptest! {
        /// Whatever the names, they add no markup: the page has exactly as many `<`, `>`,
        /// quotes as the same page with harmless names, and every link decodes to its
        /// name's bytes.
        #[test]
        fn any_names_add_no_markup(
            raw in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..24), 0..12),
            path in ".{0,20}",
        ) {
            let entries: Vec<Listed> = raw
                .iter()
                .filter(|n| is_segment(n))
                .enumerate()
                .map(|(i, n)| if i % 2 == 0 { file(n, i as u64, 0) } else { dir(n, 0) })
                .collect();
            let harmless: Vec<Listed> = entries
                .iter()
                .enumerate()
                .map(|(i, e)| Listed { name: format!("n{i}").into_bytes(), ..e.clone() })
                .collect();
            let spec = PageSpec { path: path.clone(), parent: true, ..PageSpec::default() };
            let calm = PageSpec { path: "p".into(), ..spec.clone() };
            let page = html(entries.clone(), entries.len(), &spec);
            prop_assert_eq!(structure(&page), structure(&html(harmless, entries.len(), &calm)));
            for e in &entries {
                let link = encode_segment(&e.name);
                prop_assert!(link.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)));
                let back: Vec<u8> = percent_encoding::percent_decode_str(&link).collect();
                prop_assert_eq!(&back, &e.name);
                let needle = format!("href=\"{link}");
                prop_assert!(page.contains(&needle));
            }
        }
    }
}
