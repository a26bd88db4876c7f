//! Directory listings, the part that is HTTP semantics (feature `browse`): which
//! representation a client gets, and what the query string asks of the page. Reading
//! the directory and rendering the page are the engine's (`engine::listing`).
//!
//! * **Format.** `?format=json` or `?format=html` decides; otherwise the `Accept`
//!   field does ([`negotiate_format`], RFC 9110 §12.5.1), and the response then
//!   carries `Vary: Accept` (§12.5.5). HTML is the default, also for `Accept: */*` and
//!   for types we do not offer (§12.5.1 allows disregarding `Accept` rather than 406).
//! * **Query** ([`ListingQuery::parse`]). `?sort=name|size|mtime` (default `name`) in
//!   `?order=asc|desc` (default `asc`); unknown values fall back to the defaults.
//!   `?after=CURSOR` asks for the page that starts after a position ([`Cursor`]).
//!
//! What the page holds (docs/operating.md, "Directory listings", says the same):
//!
//! * **Order.** Directories first, always; then by the sort column in the order asked;
//!   ties by name. Names compare case-insensitively (Unicode lower case), then by their
//!   bytes, so the order is total and the same on every replica.
//! * **Pages.** A directory is listed in pages of at most the configured number of
//!   entries (`browse_max_entries`), cut in the default order (directories first, then
//!   by name, ascending). A page is named by the entry it starts after, not by a
//!   number: `?after=CURSOR`, the cursor being the last entry of the page before (its
//!   name percent-encoded, `/`-terminated for a directory). So page N is found without
//!   reading pages 0..N-1, and walking the pages while the directory changes lists
//!   every entry that stays in it exactly once. `?sort` and `?order` order the entries
//!   of a page, not the cut: ordering the whole directory by size or date would take a
//!   `stat` of every entry for each version of the directory (0.3 s for 200 000), where
//!   a page takes one `stat` per entry shown. Any cursor is a position, whether an entry
//!   of that name exists or not (it may have been removed since the page before was
//!   read): a cursor past the last entry gives an empty page, never an error.
//! * **JSON** is an array, `[{"name", "type", "size", "mtime", "href", "cursor"}]`:
//!   `type` is `"directory"` or `"file"`; `size` is bytes (`null` for directories);
//!   `mtime` is RFC 3339 UTC with second precision, e.g. `"2024-05-01T12:34:56Z"`
//!   (`null` when unknown or outside years 0000–9999); `href` is the entry's URL
//!   relative to the listing (percent-encoded, `/`-terminated for directories);
//!   `cursor` is the `?after=` value of the page that starts after the entry. `name`
//!   is the file name read as UTF-8, with bytes that are not UTF-8 replaced by U+FFFD:
//!   `href` is the exact name and the way to fetch the entry. The array stays an array
//!   (the shape clients of unpaged listings parse): the links to the next and the
//!   previous page travel in a `Link` field (RFC 8288 §3), and the last entry's
//!   `cursor` is the next page's; an empty array is the end.
//! * **Escaping.** Every name and path shown in HTML is escaped (`&`, `<`, `>`, `"`,
//!   `'`; attribute values are always double-quoted), and every link percent-encodes
//!   each byte of the raw name except RFC 3986's unreserved characters (§2.3): a link
//!   is plain ASCII, never starts a scheme (`:` is encoded, §4.2), and names the file's
//!   exact bytes, UTF-8 or not. Control and bidirectional-formatting characters are
//!   shown as U+FFFD, so a name cannot reorder the text around it. Entries whose name
//!   cannot be a path segment (empty, `.`, `..`, containing `/` or NUL) are never
//!   rendered.
//! * **Bounds.** A page holds at most the configured number of entries; when the
//!   directory has more, the HTML page says which ("Entries 10001–20000 of 200000")
//!   and links the previous and the next page (`rel="prev"`, `rel="next"`), and the
//!   HTTP layer sends the total in a header. The page has no script, no external
//!   resource and inline CSS only.

use crate::semantics::encoding::parse_q;

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
    /// The query value.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Html => "html",
            Format::Json => "json",
        }
    }

    /// The `Content-Type` field value.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Html => "text/html; charset=utf-8",
            Format::Json => "application/json",
        }
    }
}

/// A position in a listing's default order (directories first, then by name): the
/// page asked by `?after=` starts with the first entry after it.
///
/// The query value is the name percent-encoded (RFC 3986 §2.1; a `+` is a plus), with
/// a `/` at the end for a directory: the form of an entry's link in a listing whose URL
/// ends with `/`. A name cannot contain `/`, so the mark is unambiguous. Every value is
/// a position, whether an entry of that name exists or not, so parsing cannot fail:
/// bytes a name could not hold (a `/` inside, NUL) only place the position somewhere
/// between the names that exist.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Cursor {
    /// Whether the position is among the directories (which all come before files).
    pub directory: bool,
    /// The name's raw bytes.
    pub name: Vec<u8>,
}

impl Cursor {
    /// The cursor of a raw (still percent-encoded) query value; `None` for an empty
    /// value, which asks for the first page.
    pub fn parse(value: &str) -> Option<Cursor> {
        if value.is_empty() {
            return None;
        }
        let mut name: Vec<u8> = percent_encoding::percent_decode_str(value).collect();
        let directory = name.last() == Some(&b'/');
        if directory {
            name.pop();
        }
        Some(Cursor { directory, name })
    }
}

/// What the query string asks of a listing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ListingQuery {
    /// `sort=name|size|mtime`.
    pub sort: SortKey,
    /// `order=asc|desc`.
    pub order: Order,
    /// `format=html|json`, if given (otherwise the format is negotiated by `Accept`).
    pub format: Option<Format>,
    /// `after=CURSOR`: the page starting after this position; `None` for the first.
    pub after: Option<Cursor>,
}

impl ListingQuery {
    /// Reads `sort`, `order`, `format` and `after` from a raw query string
    /// (`a=b&c=d`). Values of the first three are matched ASCII case-insensitively;
    /// unknown keys and values are ignored (the defaults apply); a repeated key counts
    /// by its last value. `after` is a [`Cursor`].
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
                "after" => q.after = Cursor::parse(value),
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
pub fn negotiate_format(accept: Option<&str>) -> Format {
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(q.after, None);
    }

    #[test]
    fn cursors_are_names_percent_decoded_with_a_slash_for_directories() {
        let after = |q: &str| ListingQuery::parse(Some(q)).after;
        let file = |name: &[u8]| {
            Some(Cursor {
                directory: false,
                name: name.to_vec(),
            })
        };
        let dir = |name: &[u8]| {
            Some(Cursor {
                directory: true,
                name: name.to_vec(),
            })
        };
        let cases = [
            ("after=file-009999.dat", file(b"file-009999.dat")),
            ("after=sub/", dir(b"sub")),
            ("after=sub%2F", dir(b"sub")),
            ("after=a%20b+c", file(b"a b+c")),
            ("after=caf%E9", file(b"caf\xe9")),
            ("after=100%", file(b"100%")),
            ("after=%zz", file(b"%zz")),
            ("after=/", dir(b"")),
            ("after=a/b", file(b"a/b")),
            ("after=a%00b//", dir(b"a\0b/")),
            ("after=", None),
            ("after", None),
            ("after=x&after=", None),
            ("after=&after=y", file(b"y")),
            ("sort=size&after=x&order=desc", file(b"x")),
        ];
        for (query, want) in cases {
            assert_eq!(after(query), want, "{query}");
        }
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
            assert_eq!(negotiate_format(accept), want, "{accept:?}");
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
}
