//! The Rocket side of directory listings (feature `browse`): reads the query string
//! (sort, order, format, the page's cursor) and `Accept`, asks the file server's
//! [listing cache](crate::engine) for the page, and gives it to the file server as an
//! [`MmapFile`] with extra header fields, which the file server plans and renders as
//! any file, so that ETag, `Last-Modified`, conditionals, ranges and HEAD behave as
//! for any file, page by page.
//!
//! Headers a listing adds to those of a file:
//!
//! * `Cache-Control: no-cache` (caches revalidate every time; the answer is a 304
//!   while the listing is unchanged), whatever `cache_control` is configured for files;
//! * `Vary: Accept` when the format was chosen by `Accept` (no `?format=`),
//!   RFC 9110 §12.5.5;
//! * `X-Total-Count: M`, the number of entries the directory has that would be listed
//!   (a page holds at most `browse_max_entries` of them);
//! * `Link` (RFC 8288 §3) to the previous and the next page, `rel="prev"` and
//!   `rel="next"`, when there are such pages: relative references, resolved against
//!   the request's URL (§3.1), that keep `sort` and `order`, and `format` when the
//!   request named it. The HTML page links the same pages; for JSON, whose body stays
//!   an array, this is where the links are;
//! * for HTML, `Content-Security-Policy` allowing nothing but the page's inline style
//!   (the page has no script; should a name ever slip through escaping, nothing in it
//!   could run or load).

use std::borrow::Cow;
use std::path::Path;

use rocket::request::Request;

use crate::engine::cache::CacheError;
use crate::engine::listing::page::page_href;
use crate::engine::listing::{PageSpec, ScanOptions};
use crate::engine::listing_cache::ListingCache;
use crate::semantics::listing::{negotiate_format, Format, ListingQuery};
use crate::shell::responder::MmapFile;
use crate::shell::state::Mmap;

/// The policy of listing pages: no script, no request of any kind, the inline style.
pub(crate) const LISTING_CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; base-uri 'none'; form-action 'none'";

/// A listing page: a file, and the fields it adds to a file's (see the module docs).
pub(crate) struct Listing {
    pub(crate) file: MmapFile,
    pub(crate) extra_headers: Vec<(&'static str, Cow<'static, str>)>,
}

/// The listing of `dir` for `req`. `is_root` says whether `dir` is the file server's
/// root (no parent link).
pub(crate) async fn listing(
    cache: &ListingCache,
    mmap: &Mmap,
    req: &Request<'_>,
    dir: &Path,
    is_root: bool,
    options: ScanOptions,
) -> Result<Listing, CacheError> {
    let query = ListingQuery::parse(req.uri().query().map(|q| q.as_str()));
    let format = match query.format {
        Some(f) => f,
        None => negotiate_format(accept(req).as_deref()),
    };
    let raw_path = req.uri().path();
    // The title: the decoded, non-empty segments, so that `/a//b/` and `/a/%62/` are
    // the page of `/a/b/` (and one cache entry), not pages of their own.
    let segments: Vec<&str> = raw_path.segments().collect();
    let mut path = format!("/{}", segments.join("/"));
    if !segments.is_empty() && raw_path.as_str().ends_with('/') {
        path.push('/');
    }
    let base_segment = if raw_path.as_str().ends_with('/') {
        None
    } else {
        raw_path
            .raw_segments()
            .filter(|s| !s.is_empty())
            .last()
            .map(|s| percent_encoding::percent_decode(s.as_bytes()).collect())
    };
    let page = PageSpec {
        format,
        sort: query.sort,
        order: query.order,
        path,
        base_segment,
        parent: !is_root,
    };
    let revalidate = mmap.cache().config().revalidate;
    let built = cache
        .get(dir, page.clone(), query.after, options, revalidate)
        .await?;
    let mut file = MmapFile::new(built.entry.clone()).cache_control("no-cache");
    if query.format.is_none() {
        file = file.vary("Accept");
    }
    let mut extra_headers = vec![("X-Total-Count", built.total.to_string().into())];
    let links: Vec<String> = [("prev", &built.previous), ("next", &built.next)]
        .into_iter()
        .filter_map(|(rel, to)| {
            let href = page_href(&page, to.as_ref()?, query.format);
            Some(format!("<{href}>; rel=\"{rel}\""))
        })
        .collect();
    if !links.is_empty() {
        extra_headers.push(("Link", links.join(", ").into()));
    }
    if format == Format::Html {
        extra_headers.push(("Content-Security-Policy", LISTING_CSP.into()));
    }
    Ok(Listing {
        file,
        extra_headers,
    })
}

/// The `Accept` field, lines joined (RFC 9110 §5.3).
fn accept(req: &Request<'_>) -> Option<String> {
    let mut values = req.headers().get("Accept");
    let first = values.next()?;
    let mut joined = first.to_owned();
    for v in values {
        joined.push_str(", ");
        joined.push_str(v);
    }
    Some(joined)
}
