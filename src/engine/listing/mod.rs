//! Directory listings (feature `browse`): a directory read as the file server would
//! serve it, cut into pages, and each page rendered as an HTML or JSON page. Which
//! format a request gets and what its query asks are decided in
//! [`semantics::listing`](crate::semantics::listing); snapshots and pages are cached by
//! `engine::listing_cache`.
//!
//! | module | what it holds |
//! |---|---|
//! | `scan` | one `readdir` pass keeping what the file server would serve; one page read in a pass; a page's `stat`s |
//! | `snapshot` | a directory's names in the listing's order, compact, from which any page is a slice |
//! | `window` | which entries a page shows, and the links to the pages around it |
//! | `entries` | a listed entry, and the listing's default order |
//! | `page` | the page: entries sorted as asked, HTML or JSON, escaped by construction |
//! | `escape` | HTML escaping, URL path-segment encoding, names as shown |

pub(crate) mod entries;
pub(crate) mod escape;
pub(crate) mod page;
pub(crate) mod scan;
pub(crate) mod snapshot;
pub(crate) mod window;

// The shell's view: what a file server passes in.
pub(crate) use page::PageSpec;
pub(crate) use scan::ScanOptions;
