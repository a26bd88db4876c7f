//! A listing page: the entries sorted as asked and rendered as HTML or JSON, escaped
//! by construction. The decisions the page keeps are stated in `semantics::listing`
//! (order, JSON fields, escaping, bounds); this module is where they are made.

use std::borrow::Cow;
use std::fmt::Write as _;

use crate::engine::listing::entries::{sort_entries, Kind, Listed};
use crate::engine::listing::escape::{display_name, encode_segment, escape_html};
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

/// Sorts `entries` as `spec` asks and renders the page. `total` is how many entries the
/// directory has that could be listed; when it exceeds `entries.len()`, the HTML page
/// says so.
pub(crate) fn render(mut entries: Vec<Listed>, total: usize, spec: &PageSpec) -> Vec<u8> {
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
    use crate::engine::listing::entries::tests::{dir, file};
    use proptest::prelude::*;

    fn html(entries: Vec<Listed>, total: usize, spec: &PageSpec) -> String {
        String::from_utf8(render(entries, total, spec)).unwrap()
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
