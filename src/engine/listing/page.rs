//! A listing page: the entries of one window sorted as asked and rendered as HTML or
//! JSON, escaped by construction, with the links to the pages around it. The
//! decisions the page keeps are stated in `semantics::listing` (order, pages, JSON
//! fields, escaping, bounds); this module is where they are made.
//!
//! Links to other pages are relative references that keep the listing's path: a
//! query (`?after=…`, with `sort` and `order` when they are not the defaults), or for
//! the first page without them `./` (or the directory's own segment when the listing's
//! URL does not end with `/`). The column headers sort the page shown, so they keep its
//! cursor.

use std::borrow::Cow;
use std::fmt::Write as _;

use crate::engine::listing::entries::{sort_entries, Kind, Listed};
use crate::engine::listing::escape::{display_name, encode_segment, escape_html};
use crate::engine::listing::window::{PageLink, Window};
use crate::semantics::date::rfc3339;
use crate::semantics::listing::{Format, Order, SortKey};

/// How one listing page is rendered.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct PageSpec {
    /// HTML or JSON.
    pub(crate) format: Format,
    /// The sort column and order.
    pub(crate) sort: SortKey,
    /// Ascending or descending.
    pub(crate) order: Order,
    /// The directory's URL path as shown in the title (decoded, e.g. `/docs/`); it is
    /// escaped when rendered.
    pub(crate) path: String,
    /// `None` when the listing's URL ends with `/` (links are relative to it).
    /// Otherwise the raw bytes of the URL's last segment: links are then prefixed
    /// with it (encoded) and `/`, so that they resolve below the directory.
    pub(crate) base_segment: Option<Vec<u8>>,
    /// Whether to link the parent directory (every directory but the root).
    pub(crate) parent: bool,
}

/// Sorts the entries of `window` (`stat`ed: `entries`) as `spec` asks and renders the
/// page. When the window is not the whole directory, the HTML page says which entries
/// it holds and links the pages before and after it.
pub(crate) fn render(mut entries: Vec<Listed>, window: &Window, spec: &PageSpec) -> Vec<u8> {
    entries.retain(|e| is_segment(&e.name));
    sort_entries(&mut entries, spec.sort, spec.order);
    let prefix = spec
        .base_segment
        .as_deref()
        .map(|s| format!("{}/", encode_segment(s)))
        .unwrap_or_default();
    match spec.format {
        Format::Html => render_html(&entries, window, spec, &prefix).into_bytes(),
        Format::Json => render_json(&entries, &prefix),
    }
}

/// The `after` value of the page after the entry `name` of `kind` (see
/// [`Cursor`](crate::semantics::listing::Cursor)).
pub(crate) fn cursor_value(kind: Kind, name: &[u8]) -> String {
    let mut c = encode_segment(name);
    if kind == Kind::Directory {
        c.push('/');
    }
    c
}

/// The link to the page `link` of the listing `spec` describes, relative to the
/// listing's URL (see the module docs), not escaped for HTML. `format` is added to the
/// query when given (a `Link` field's target must name the format the request named).
pub(crate) fn page_href(spec: &PageSpec, link: &PageLink, format: Option<Format>) -> String {
    let mut query = Vec::new();
    if (spec.sort, spec.order) != (SortKey::default(), Order::default()) {
        query.push(format!("sort={}", spec.sort.as_str()));
        query.push(format!("order={}", spec.order.as_str()));
    }
    if let Some(format) = format {
        query.push(format!("format={}", format.as_str()));
    }
    if let PageLink::After(kind, name) = link {
        query.push(format!("after={}", cursor_value(*kind, name)));
    }
    if !query.is_empty() {
        return format!("?{}", query.join("&"));
    }
    match &spec.base_segment {
        Some(segment) => encode_segment(segment),
        None => "./".to_owned(),
    }
}

/// Whether `name` can be one path segment: not empty, not `.` or `..`, no `/`, no NUL.
fn is_segment(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0)
}

/// The link to an entry, relative to the listing (see [`PageSpec::base_segment`]).
fn href(prefix: &str, e: &Listed) -> String {
    format!("{prefix}{}", cursor_value(e.kind, &e.name))
}

/// A size for people: `512 B`, `1.5 KiB`, `23 MiB` (binary multiples, one decimal
/// below 10).
pub(crate) fn human_size(bytes: u64) -> String {
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
footer{margin-top:.75rem;color:#888;font-size:.85rem}\
nav.pages{display:flex;gap:1rem;align-items:baseline;margin:.75rem 0;padding:.5rem .75rem;background:#8881}\
nav.pages span{flex:1;text-align:center}\
nav.pages a{white-space:nowrap}";

/// Whether `window` holds less than the whole directory.
fn is_paged(window: &Window) -> bool {
    window.first > 0 || window.names.len() < window.total
}

/// The links to the pages around a paged window and which entries it holds; for the
/// top and the bottom of the page.
fn pages_nav(window: &Window, spec: &PageSpec) -> String {
    let link = |rel: &str, label: &str, to: &Option<PageLink>| match to {
        Some(to) => format!(
            "<a rel=\"{rel}\" href=\"{}\">{label}</a>",
            escape_html(&page_href(spec, to, None))
        ),
        None => String::new(),
    };
    let shown = window.names.len();
    let mut text = if shown > 0 {
        format!(
            "Entries {}\u{2013}{} of {}, by name, directories first.",
            window.first + 1,
            window.first + shown,
            window.total
        )
    } else {
        format!("No entries here; {} in all.", window.total)
    };
    if (spec.sort, spec.order) != (SortKey::default(), Order::default()) && shown > 0 {
        let column = match spec.sort {
            SortKey::Name => "name",
            SortKey::Size => "size",
            SortKey::Mtime => "modification time",
        };
        let order = match spec.order {
            Order::Asc => "ascending",
            Order::Desc => "descending",
        };
        let _ = write!(text, " This page is sorted by {column}, {order}.");
    }
    format!(
        "<nav class=\"pages\">{}<span>{text}</span>{}</nav>\n",
        link("prev", "\u{2190} Previous", &window.previous),
        link("next", "Next \u{2192}", &window.next)
    )
}

fn render_html(entries: &[Listed], window: &Window, spec: &PageSpec, prefix: &str) -> String {
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
    let nav = is_paged(window).then(|| pages_nav(window, spec));
    if let Some(nav) = &nav {
        out.push_str(nav);
    }
    // The column headers sort this page: they keep its cursor.
    let this_page = window
        .after
        .as_ref()
        .map(|(kind, name)| format!("&amp;after={}", cursor_value(*kind, name)))
        .unwrap_or_default();
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
            "<th{class}><a href=\"?sort={}&amp;order={}{this_page}\">{label}{arrow}</a></th>",
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
    if entries.is_empty() && window.total == 0 {
        out.push_str("<tr><td colspan=\"3\"><em>This directory is empty.</em></td></tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
    if let Some(nav) = &nav {
        out.push_str(nav);
    }
    let plural = |n: usize, one: &'static str, many: &'static str| if n == 1 { one } else { many };
    let _ = write!(
        out,
        "<footer>{dirs} {}, {files} {}{}</footer>\n</body>\n</html>\n",
        plural(dirs, "directory", "directories"),
        plural(files, "file", "files"),
        if nav.is_some() { " on this page" } else { "" }
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
    cursor: String,
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
            cursor: cursor_value(e.kind, &e.name),
        })
        .collect();
    // Serialising plain strings and numbers cannot fail.
    serde_json::to_vec(&rows).unwrap_or_else(|_| b"[]".to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::listing::entries::tests::{dir, file};
    use proptest::prelude::*;

    /// The window of a directory that is `entries`, all on one page.
    fn whole(entries: &[Listed]) -> Window {
        let names = entries.iter().map(|e| (e.kind, e.name.clone())).collect();
        Window::new(names, 0, None, entries.len(), entries.len(), || None)
    }

    /// The HTML page of a directory that is `entries`.
    fn html(entries: Vec<Listed>, spec: &PageSpec) -> String {
        let window = whole(&entries);
        String::from_utf8(render(entries, &window, spec)).unwrap()
    }

    /// A window of `names` at `first` of `total`, in pages of `names.len()`, `after`
    /// the entry before it; the page before starts after `before`.
    fn window(names: &[&str], first: usize, total: usize, before: Option<&str>) -> Window {
        let key = |n: &str| (Kind::File, n.as_bytes().to_vec());
        let after = (first > 0).then(|| key("previous-entry"));
        let names: Vec<_> = names.iter().map(|n| key(n)).collect();
        let n = names.len();
        Window::new(names, first, after, total, n, || before.map(key))
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
        assert!(!page.contains("<nav") && !page.contains("Entries"));
        assert!(!page.contains("<script") && !page.contains("src=") && !page.contains("http"));
        // The current column links to the other order.
        assert!(page.contains("<a href=\"?sort=name&amp;order=desc\">Name \u{25B2}</a>"));
        assert!(page.contains("<a href=\"?sort=size&amp;order=asc\">Size</a>"));
    }

    #[test]
    fn root_has_no_parent_and_empty_directories_say_so() {
        let page = html(
            vec![],
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
        let page = html(vec![file(b"f", 1, 0)], &spec);
        assert!(page.contains("<a href=\"a%20b/f\">f</a>"));
        assert!(page.contains("<a href=\"./\">../</a>"));
        let entries = vec![file(b"f", 1, 0), dir(b"d", 0)];
        let json = render(
            entries.clone(),
            &whole(&entries),
            &PageSpec {
                format: Format::Json,
                ..spec.clone()
            },
        );
        assert_eq!(
            String::from_utf8(json).unwrap(),
            r#"[{"name":"d","type":"directory","size":null,"mtime":"1970-01-01T00:00:00Z","href":"a%20b/d/","cursor":"d/"},{"name":"f","type":"file","size":1,"mtime":"1970-01-01T00:00:00Z","href":"a%20b/f","cursor":"f"}]"#
        );
        // The first page is the directory's own segment.
        assert_eq!(page_href(&spec, &PageLink::First, None), "a%20b");
    }

    #[test]
    fn a_page_of_a_larger_directory_says_which_and_links_its_neighbours() {
        let page = |w: &Window, spec: &PageSpec| {
            let entries = w.names.iter().map(|(_, n)| file(n, 1, 0)).collect();
            String::from_utf8(render(entries, w, spec)).unwrap()
        };
        let nav = |page: &str| page.matches("<nav class=\"pages\">").count();
        let spec = PageSpec::default();
        let first = page(&window(&["a", "b"], 0, 100_000, None), &spec);
        assert!(first
            .contains("<span>Entries 1\u{2013}2 of 100000, by name, directories first.</span>"));
        assert!(first.contains("<a rel=\"next\" href=\"?after=b\">Next \u{2192}</a>"));
        assert!(!first.contains("rel=\"prev\""));
        assert_eq!(nav(&first), 2, "above and below the table");
        assert!(first.contains("<footer>0 directories, 2 files on this page</footer>"));
        assert!(first.contains("<a href=\"?sort=size&amp;order=asc\">Size</a>"));

        let second = page(&window(&["c", "d"], 2, 100_000, None), &spec);
        assert!(second.contains("Entries 3\u{2013}4 of 100000"));
        assert!(second.contains("<a rel=\"prev\" href=\"./\">\u{2190} Previous</a>"));
        // Sorting keeps the page.
        assert!(second
            .contains("<a href=\"?sort=size&amp;order=asc&amp;after=previous-entry\">Size</a>"));

        let sorted = PageSpec {
            sort: SortKey::Size,
            order: Order::Desc,
            ..PageSpec::default()
        };
        let last = page(&window(&["y", "z"], 99_998, 100_000, Some("w")), &sorted);
        assert!(last.contains("Entries 99999\u{2013}100000 of 100000, by name, directories first. This page is sorted by size, descending."));
        assert!(last.contains("<a rel=\"prev\" href=\"?sort=size&amp;order=desc&amp;after=w\">"));
        assert!(!last.contains("rel=\"next\""));

        let x = (Kind::File, b"x".to_vec());
        let past = Window::new(vec![], 100_000, Some(x.clone()), 100_000, 2, || Some(x));
        let past = page(&past, &spec);
        assert!(past.contains("No entries here; 100000 in all."));
        assert!(past.contains("<a rel=\"prev\" href=\"?after=x\">"));
        assert!(!past.contains("This directory is empty."));
    }

    #[test]
    fn page_links_keep_the_query_and_mark_directories() {
        let sorted = PageSpec {
            sort: SortKey::Mtime,
            ..PageSpec::default()
        };
        let dir_link = PageLink::After(Kind::Directory, b"a b".to_vec());
        let cases = [
            (PageSpec::default(), PageLink::First, None, "./"),
            (PageSpec::default(), dir_link.clone(), None, "?after=a%20b/"),
            (
                PageSpec::default(),
                PageLink::After(Kind::File, b"caf\xe9&x".to_vec()),
                Some(Format::Json),
                "?format=json&after=caf%E9%26x",
            ),
            (
                sorted.clone(),
                PageLink::First,
                None,
                "?sort=mtime&order=asc",
            ),
            (
                sorted,
                dir_link,
                Some(Format::Html),
                "?sort=mtime&order=asc&format=html&after=a%20b/",
            ),
        ];
        for (spec, link, format, want) in cases {
            assert_eq!(page_href(&spec, &link, format), want, "{link:?}");
        }
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
        let page = html(entries.clone(), &PageSpec::default());
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
        let window = whole(&entries);
        let json: serde_json::Value =
            serde_json::from_slice(&render(entries, &window, &spec)).unwrap();
        let rows = json.as_array().unwrap();
        assert_eq!(rows.len(), 7);
        for row in rows {
            let name = row["name"].as_str().unwrap();
            let href = row["href"].as_str().unwrap();
            let raw: Vec<u8> = percent_encoding::percent_decode_str(href).collect();
            assert!(hostile.contains(&raw.as_slice()), "{href}");
            assert_eq!(name, String::from_utf8_lossy(&raw));
            assert_eq!(row["type"], "file");
            assert_eq!(row["cursor"], href);
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
        let page = html(entries.clone(), &PageSpec::default());
        assert_eq!(
            page.matches("<a href=\"").count(),
            3 + 1,
            "three column links and one entry"
        );
        let window = whole(&entries);
        let json = render(
            entries,
            &window,
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
            let page = html(entries.clone(), &spec);
            prop_assert_eq!(structure(&page), structure(&html(harmless.clone(), &calm)));
            // In a page of a larger directory, the names are in the links to the pages
            // around it and in the column links too.
            let paged = |entries: &[Listed]| {
                let names: Vec<_> = entries.iter().map(|e| (e.kind, e.name.clone())).collect();
                let around = names.first().cloned();
                let window = Window::new(names, 50, around.clone(), 1000, 10, || around);
                (entries.to_vec(), window)
            };
            let ((hostile, w), (calm_entries, calm_w)) = (paged(&entries), paged(&harmless));
            let page = String::from_utf8(render(hostile, &w, &spec)).unwrap();
            let calm_page = String::from_utf8(render(calm_entries, &calm_w, &calm)).unwrap();
            prop_assert_eq!(structure(&page), structure(&calm_page));
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
