//! A drop-in for `rocket::fs::FileServer` that answers ranges, ETags and every
//! conditional request.
//!
//! ```rust,no_run
//! # #[macro_use] extern crate rocket;
//! use rocket_mmap::{FileServer, Mmap};
//!
//! #[launch]
//! fn rocket() -> _ {
//!     rocket::build()
//!         .attach(Mmap::fairing())
//!         .mount("/static", FileServer::from("static").rank(10))
//! }
//! ```
//!
//! Path handling (safe defaults):
//!
//! * Segments are percent-decoded by Rocket and checked by [`sanitize`](crate::semantics::path::sanitize):
//!   `.`/`..`, decoded `/` `\` NUL and control characters, and (by default) names
//!   starting with `.` are refused with 404, before the file system is touched.
//! * Symbolic links are followed only while their target stays inside the root
//!   ([`Symlinks::WithinRoot`], the default); [`Symlinks::Never`] refuses any link,
//!   [`Symlinks::Follow`] follows all (for roots that link to shared assets).
//! * A directory is answered with its `index.html`; a directory URL without a trailing
//!   slash is redirected (308) to the one with it, so relative links in the index work.
//!   A directory without an index is 404, or, with [`FileServer::browse`] (feature
//!   `browse`, off by default), answered with a listing of what the server would serve
//!   there: HTML or JSON, sortable, in pages of [`FileServer::browse_max_entries`]
//!   (see [`crate::semantics::listing`] for the format and the escaping).
//! * Segments are percent-decoded to bytes when they are not UTF-8 (`/caf%E9.txt`): on
//!   Unix a file name is any bytes, and such a name is served under exactly those
//!   bytes, as a listing links it.
//! * GET and HEAD are routed (HEAD explicitly, so it is never treated as a ranged GET);
//!   other methods are not matched and fall through to other routes / 404.
//! * Precompressed siblings (`FILE.br`, `FILE.gz`) are served to clients that accept
//!   them, with `Content-Encoding` and `Vary: Accept-Encoding`
//!   ([`FileServer::precompressed`], on by default; negotiation in [`crate::semantics::encoding`]).
//! * A missing file forwards with 404 (so lower-ranked routes may answer);
//!   permission errors give 403, files that keep changing 503.
//! * Validators: a file is served as soon as it is mapped; its strong ETag is hashed
//!   in the background. A plain GET or HEAD does not wait for it (the first responses
//!   may come without `ETag`); a request with `Range`, `If-Match`, `If-None-Match` or
//!   `If-Range` waits for it (see [`MmapFile`]'s "Validators and digests"). If the file
//!   changes while it is hashed, it is mapped afresh and the request tries again.
//! * Integrity digests: a request with `Want-Repr-Digest` or `Want-Digest` gets
//!   `Repr-Digest` / `Digest` once the file's digest is computed (once per version, on
//!   the blocking pool, started by the first request that asks); no response waits for
//!   one (see [`crate::semantics::digest`]).
//! * Rate limits: [`FileServer::limit_rate`] and [`FileServer::limit_rate_after`]
//!   override the configured `limit_rate` / `limit_rate_after` for this server's files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocket::http::{Method as RocketMethod, Status};
use rocket::response::Redirect;
use rocket::route::{Handler, Outcome, Route};
use rocket::{Data, Request};

use crate::engine::cache::CacheError;
use crate::engine::entry::Entry;
use crate::engine::links::Symlinks;
#[cfg(feature = "browse")]
use crate::engine::listing::ScanOptions;
#[cfg(feature = "browse")]
use crate::engine::listing_cache::ListingCache;
use crate::semantics::path::{sanitize_bytes, sanitize_under, PathRejection};
#[cfg(feature = "browse")]
use crate::shell::listing::{listing, Listing};
use crate::shell::plan::{BodyPolicy, Plan};
use crate::shell::render::render;
use crate::shell::request::RequestHeaders;
use crate::shell::responder::MmapFile;
use crate::shell::state::Mmap;

/// The default rank of file server routes, as Rocket's own `FileServer`.
pub const DEFAULT_RANK: isize = 10;

/// The entries a directory listing page shows by default (see
/// [`FileServer::browse_max_entries`]).
#[cfg(feature = "browse")]
pub const DEFAULT_BROWSE_MAX_ENTRIES: usize = 10_000;

/// A handler serving the files below a directory. See the module docs.
///
/// ```rust,no_run
/// # #[macro_use] extern crate rocket;
/// use rocket_mmap::{FileServer, Mmap, Symlinks};
///
/// #[launch]
/// fn rocket() -> _ {
///     rocket::build()
///         .attach(Mmap::fairing())
///         .mount("/", FileServer::from("static").symlinks(Symlinks::Never))
/// }
/// ```
#[derive(Clone, Debug)]
pub struct FileServer {
    root: PathBuf,
    rank: isize,
    index: Option<String>,
    dotfiles: bool,
    redirect_dirs: bool,
    symlinks: Symlinks,
    precompressed: bool,
    limit_rate: Option<u64>,
    limit_rate_after: Option<u64>,
    #[cfg(feature = "browse")]
    browse: bool,
    #[cfg(feature = "browse")]
    browse_max_entries: usize,
    /// Shared by the clones the routes hold.
    #[cfg(feature = "browse")]
    listings: std::sync::Arc<ListingCache>,
}

impl FileServer {
    /// A file server for the directory `root`.
    ///
    /// # Errors
    /// If `root` is not an existing directory.
    pub fn new(root: impl AsRef<Path>) -> std::io::Result<FileServer> {
        let root = root.as_ref();
        let canonical = std::fs::canonicalize(root)?;
        if !canonical.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                format!("{} is not a directory", root.display()),
            ));
        }
        Ok(FileServer::from_canonical(canonical))
    }

    /// The defaults, over a root that is already canonical.
    fn from_canonical(root: PathBuf) -> FileServer {
        FileServer {
            root,
            rank: DEFAULT_RANK,
            index: Some("index.html".into()),
            dotfiles: false,
            redirect_dirs: true,
            symlinks: Symlinks::WithinRoot,
            precompressed: true,
            limit_rate: None,
            limit_rate_after: None,
            #[cfg(feature = "browse")]
            browse: false,
            #[cfg(feature = "browse")]
            browse_max_entries: DEFAULT_BROWSE_MAX_ENTRIES,
            #[cfg(feature = "browse")]
            listings: std::sync::Arc::default(),
        }
    }

    /// Like [`FileServer::new`], as Rocket's `FileServer::from`.
    ///
    /// # Panics
    /// If `root` is not an existing directory (with the path in the message), as
    /// Rocket's own `FileServer::from` does: a missing static directory is a
    /// deployment error best caught at start-up.
    #[track_caller]
    #[allow(clippy::should_implement_trait)]
    pub fn from(root: impl AsRef<Path>) -> FileServer {
        let root = root.as_ref();
        match FileServer::new(root) {
            Ok(s) => s,
            Err(e) => panic!("FileServer: cannot serve {}: {e}", root.display()),
        }
    }

    /// Like Rocket's `FileServer::new(path, options)`: the same flags, mapped onto
    /// this server's options, so a `rocket::fs::FileServer::new(..)` line can switch
    /// by changing the type alone.
    ///
    /// | Rocket's flag | here |
    /// |---|---|
    /// | `Options::Index` | [`index(Some("index.html"))`](FileServer::index); without it, no index |
    /// | `Options::DotFiles` | [`dotfiles(true)`](FileServer::dotfiles) |
    /// | `Options::NormalizeDirs` | [`redirect_directories(true)`](FileServer::redirect_directories); without it, no redirect (Rocket's default) |
    /// | `Options::Missing` | a missing root is not an error: every request is a 404 until it exists |
    /// | `Options::IndexFile` | not supported (panics): return an [`MmapFile`] from a route instead |
    ///
    /// ```rust,no_run
    /// # #[macro_use] extern crate rocket;
    /// use rocket::fs::Options;
    /// use rocket_mmap::FileServer;
    ///
    /// #[launch]
    /// fn rocket() -> _ {
    ///     let options = Options::Index | Options::NormalizeDirs;
    ///     rocket::build().mount("/", FileServer::with_options("static", options))
    /// }
    /// ```
    ///
    /// # Panics
    /// If `root` is not a directory and `Options::Missing` is not set, or if
    /// `Options::IndexFile` is set.
    #[track_caller]
    pub fn with_options(root: impl AsRef<Path>, options: rocket::fs::Options) -> FileServer {
        use rocket::fs::Options;
        let root = root.as_ref();
        assert!(
            !options.contains(Options::IndexFile),
            "FileServer: Options::IndexFile is not supported; serve {} from a route with MmapFile",
            root.display()
        );
        let server = match FileServer::new(root) {
            Ok(s) => s,
            Err(_) if options.contains(Options::Missing) => FileServer {
                root: std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf()),
                ..FileServer::from_canonical(PathBuf::new())
            },
            Err(e) => panic!("FileServer: cannot serve {}: {e}", root.display()),
        };
        server
            .index(options.contains(Options::Index).then_some("index.html"))
            .dotfiles(options.contains(Options::DotFiles))
            .redirect_directories(options.contains(Options::NormalizeDirs))
    }

    /// The route rank (default 10).
    pub fn rank(mut self, rank: isize) -> FileServer {
        self.rank = rank;
        self
    }

    /// The index file for directories (default `index.html`); `None` for none.
    pub fn index(mut self, name: Option<&str>) -> FileServer {
        self.index = name.map(str::to_owned);
        self
    }

    /// Whether names starting with `.` are served (default: no).
    pub fn dotfiles(mut self, allow: bool) -> FileServer {
        self.dotfiles = allow;
        self
    }

    /// Whether `/dir` is redirected to `/dir/` (default: yes).
    pub fn redirect_directories(mut self, redirect: bool) -> FileServer {
        self.redirect_dirs = redirect;
        self
    }

    /// The symbolic link policy (default [`Symlinks::WithinRoot`]).
    pub fn symlinks(mut self, policy: Symlinks) -> FileServer {
        self.symlinks = policy;
        self
    }

    /// Whether precompressed siblings are served (default: yes): for a request of
    /// `FILE` from a client whose `Accept-Encoding` allows it, `FILE.br` or `FILE.gz`
    /// is sent with `Content-Encoding`, the type of `FILE`, its own ETag, and ranges
    /// and conditionals over its (encoded) bytes; every response of a file that has
    /// such siblings carries `Vary: Accept-Encoding`. See `semantics::encoding` (crate-private).
    pub fn precompressed(mut self, serve: bool) -> FileServer {
        self.precompressed = serve;
        self
    }

    /// Paces every response body of this server at `bytes_per_second` (0: no limit),
    /// overriding the configured `limit_rate` (nginx's directive of the same name).
    /// See [`RateLimit`](crate::RateLimit).
    pub fn limit_rate(mut self, bytes_per_second: u64) -> FileServer {
        self.limit_rate = Some(bytes_per_second);
        self
    }

    /// Sends the first `bytes` of every body at full speed before the rate limit
    /// applies, overriding the configured `limit_rate_after`.
    pub fn limit_rate_after(mut self, bytes: u64) -> FileServer {
        self.limit_rate_after = Some(bytes);
        self
    }

    /// Whether a directory without an index file is answered with a listing of its
    /// entries (default: no, as nginx's `autoindex`; the `rocket-mmap` binary turns it
    /// on). Feature `browse`.
    ///
    /// The listing shows what this server would serve: no hidden names unless
    /// [`dotfiles(true)`](FileServer::dotfiles), symbolic links only as the
    /// [`symlinks`](FileServer::symlinks) policy follows them, no FIFOs, sockets or
    /// devices. Directories first, then by name; `?sort=name|size|mtime` and
    /// `?order=asc|desc` choose another order. `Accept: application/json` or
    /// `?format=json` gives JSON, `[{"name", "type", "size", "mtime", "href"}]`. The
    /// page is an entry like a file's: content ETag, `Last-Modified`, conditionals,
    /// ranges, HEAD; it is cached, and rebuilt when the directory changes. See
    /// `semantics::listing` and `engine::listing` (crate-private) for the format and the escaping.
    ///
    /// ```rust,no_run
    /// # #[macro_use] extern crate rocket;
    /// use rocket_mmap::{FileServer, Mmap};
    ///
    /// #[launch]
    /// fn rocket() -> _ {
    ///     rocket::build()
    ///         .attach(Mmap::fairing())
    ///         .mount("/files", FileServer::from("/srv/files").browse(true))
    /// }
    /// ```
    #[cfg(feature = "browse")]
    pub fn browse(mut self, list: bool) -> FileServer {
        self.browse = list;
        self
    }

    /// The entries a listing page shows (default [`DEFAULT_BROWSE_MAX_ENTRIES`],
    /// 10 000). A directory with more is listed in pages of `max` (directories first,
    /// then by name), each naming the entries it holds and linking the pages before and
    /// after it (`?after=` the last entry of the page before; a `Link` field too), and
    /// every listing response carries the count in `X-Total-Count`. `0` lists no entry.
    #[cfg(feature = "browse")]
    pub fn browse_max_entries(mut self, max: usize) -> FileServer {
        self.browse_max_entries = max;
        self
    }

    /// The canonical root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn allowed(&self, path: &Path, canonical: Option<&Path>) -> bool {
        self.symlinks.allows(path, canonical, &self.root)
    }

    async fn open(&self, mmap: &Mmap, path: &Path) -> Result<MmapFile, CacheError> {
        let entry = mmap.cache().get(path).await?;
        if !self.allowed(path, entry.canonical_path()) {
            return Err(CacheError::NotFound);
        }
        Ok(self.file_for(mmap, entry, path))
    }

    /// The responder for `entry`, with this server's options.
    fn file_for(&self, mmap: &Mmap, entry: Arc<Entry>, path: &Path) -> MmapFile {
        let mut file = with_path_hint(mmap, MmapFile::new(entry), path);
        if let Some(rate) = self.limit_rate {
            file = file.limit_rate(rate);
        }
        if let Some(after) = self.limit_rate_after {
            file = file.limit_rate_after(after);
        }
        file
    }
}

/// The path is only needed to pick a `Cache-Control` by extension: no copy of it per
/// response otherwise.
fn with_path_hint(mmap: &Mmap, file: MmapFile, path: &Path) -> MmapFile {
    if mmap.options().cache_control_by_extension.is_empty() {
        file
    } else {
        file.path_hint(path)
    }
}

impl FileServer {
    /// Picks a precompressed sibling of `path` for the request's `Accept-Encoding`,
    /// or `file` itself (with `Vary` if siblings exist).
    async fn pick_precompressed(
        &self,
        mmap: &Mmap,
        req: &Request<'_>,
        path: &Path,
        file: MmapFile,
    ) -> MmapFile {
        let accept = req.headers().get_one("Accept-Encoding");
        let (vary, variant) = mmap
            .cache()
            .precompressed_variant(path, file.entry(), accept)
            .await;
        if !vary {
            return file;
        }
        if let Some((coding, sibling)) = variant {
            if let Ok(variant) = self.open(mmap, &sibling).await {
                let content_type = file.entry().content_type().to_owned();
                return with_path_hint(mmap, variant, path)
                    .content_type(content_type)
                    .content_encoding(coding)
                    .vary("Accept-Encoding");
            }
        }
        file.vary("Accept-Encoding")
    }
}

impl From<FileServer> for Vec<Route> {
    fn from(server: FileServer) -> Vec<Route> {
        let rank = server.rank;
        let mut get = Route::ranked(rank, RocketMethod::Get, "/<path..>", server.clone());
        get.name = Some("rocket_mmap::FileServer (GET)".into());
        let mut head = Route::ranked(rank, RocketMethod::Head, "/<path..>", server);
        head.name = Some("rocket_mmap::FileServer (HEAD)".into());
        vec![get, head]
    }
}

impl FileServer {
    /// The common case with one `stat` instead of two: a cached file (under
    /// `revalidate = "always"` or `"watch"`) whose answer is planned and rendered first
    /// — a small body copied out of the mapping — and checked afterwards (under
    /// `"watch"`, an answer without copied bytes needs no `stat` at all): plan, render,
    /// confirm. If the file changed, the answer is thrown away (`None`, never recorded)
    /// and the request takes the ordinary path, which loads the new version and plans
    /// again: what the client gets is the same as on that path.
    ///
    /// Not taken for files with precompressed siblings, for directories, when the
    /// entry was never served through the ordinary path (its siblings are unknown), or
    /// when the request must wait for a tag not computed yet.
    fn answer_with_one_stat<'r>(
        &self,
        mmap: &Mmap,
        req: &Request<'_>,
        headers: &RequestHeaders<'_>,
        path: &Path,
    ) -> Option<rocket::Response<'r>> {
        let peeked = mmap.cache().peek(path)?;
        let entry = &peeked.entry;
        let plain = !self.precompressed || entry.known_siblings().is_some_and(|s| !s.any());
        if !plain || !self.allowed(path, entry.canonical_path()) {
            return None;
        }
        let file = self.file_for(mmap, entry.clone(), path);
        // The ordinary path waits for the tag.
        let plan = Plan::new(
            file.entry(),
            file.presentation(),
            headers,
            mmap.options(),
            BodyPolicy::CopySmall,
        )
        .ok()?;
        let rendered = render(plan, mmap.cache());
        // Only the response that is sent is recorded: a discarded one leaves no trace.
        if mmap.cache().confirm(path, &peeked, rendered.copied) {
            Some(rendered.send(req))
        } else {
            None
        }
    }
}

#[rocket::async_trait]
impl Handler for FileServer {
    async fn handle<'r>(&self, req: &'r Request<'_>, data: Data<'r>) -> Outcome<'r> {
        let Ok(path) = request_path(req, &self.root, self.dotfiles) else {
            return Outcome::forward(data, Status::NotFound);
        };
        let Some(mmap) = Mmap::of(req.rocket()) else {
            return Outcome::Success(crate::shell::responder::no_state());
        };
        // Read once, for every plan of this request. The routes are registered per
        // method, so the request's method is the client's.
        let headers = RequestHeaders::read(req, true);
        if let Some(response) = self.answer_with_one_stat(mmap, req, &headers, &path) {
            return Outcome::Success(response);
        }
        let (path, file) = match self.open(mmap, &path).await {
            Err(CacheError::IsDirectory) => {
                // `realpath` asks the file system per component: not on the worker.
                let dir = path.clone();
                let canonical =
                    tokio::task::spawn_blocking(move || std::fs::canonicalize(dir).ok())
                        .await
                        .ok()
                        .flatten();
                if !self.allowed(&path, canonical.as_deref()) {
                    return Outcome::forward(data, Status::NotFound);
                }
                if self.redirect_dirs && !req.uri().path().ends_with('/') {
                    return redirect_to_slash(req, data);
                }
                let index = match &self.index {
                    Some(index) => {
                        let index = path.join(index);
                        let file = self.open(mmap, &index).await;
                        Some((index, file))
                    }
                    None => None,
                };
                match index {
                    // No index file: a listing, if enabled.
                    Some((_, Err(e))) if e.status() == 404 => {
                        return self.list_or_404(req, &headers, data, mmap, &path).await
                    }
                    None => return self.list_or_404(req, &headers, data, mmap, &path).await,
                    Some(found) => found,
                }
            }
            other => (path, other),
        };
        let file = match file {
            Ok(file) if self.precompressed => {
                Ok(self.pick_precompressed(mmap, req, &path, file).await)
            }
            other => other,
        };
        let mut file = match file {
            Ok(file) => file,
            Err(e) => return self.fail(data, &path, e),
        };
        let options = mmap.options();
        for _ in 0..TAG_ATTEMPTS {
            let (entry, presentation) = (file.entry(), file.presentation());
            if let Some(plan) =
                Plan::awaiting(entry, presentation, &headers, options, BodyPolicy::Stream).await
            {
                return Outcome::Success(render(plan, mmap.cache()).send(req));
            }
            // The file changed while its tag was hashed: the entry is poisoned, and the
            // cache maps the file afresh.
            file = match self.reopen(mmap, req, &path).await {
                Ok(file) => file,
                Err(e) => return self.fail(data, &path, e),
            };
        }
        self.fail(data, &path, CacheError::Unstable)
    }
}

/// How many versions of a file a request tries to get a tag for, when each changed
/// while it was hashed (as a load that hashed tried), before it answers 503.
const TAG_ATTEMPTS: usize = 3;

impl FileServer {
    /// The file at `path` (a file, or a directory's index) through the cache again,
    /// with the same negotiation as the first time.
    async fn reopen(
        &self,
        mmap: &Mmap,
        req: &Request<'_>,
        path: &Path,
    ) -> Result<MmapFile, CacheError> {
        let file = self.open(mmap, path).await?;
        Ok(if self.precompressed {
            self.pick_precompressed(mmap, req, path, file).await
        } else {
            file
        })
    }
}

impl FileServer {
    /// A missing file forwards (404); other errors are answered with their status.
    fn fail<'r>(&self, data: Data<'r>, path: &Path, e: CacheError) -> Outcome<'r> {
        if e.status() == 404 {
            return Outcome::forward(data, Status::NotFound);
        }
        if let CacheError::Io(io) = &e {
            rocket::warn!("rocket-mmap: {}: {io}", path.display());
        }
        Outcome::Error(Status::new(e.status()))
    }

    /// The listing of the directory `dir` (at `rel` below the root) when browsing is
    /// on; otherwise, as without an index, a forward with 404.
    #[cfg(feature = "browse")]
    async fn list_or_404<'r>(
        &self,
        req: &'r Request<'_>,
        headers: &RequestHeaders<'_>,
        data: Data<'r>,
        mmap: &Mmap,
        dir: &Path,
    ) -> Outcome<'r> {
        if !self.browse {
            return Outcome::forward(data, Status::NotFound);
        }
        let rel = dir.strip_prefix(&self.root).unwrap_or(Path::new(""));
        let options = ScanOptions {
            dotfiles: self.dotfiles,
            links: self.symlinks,
            root: self.root.clone(),
            max_entries: self.browse_max_entries,
        };
        let is_root = rel.as_os_str().is_empty();
        let Listing {
            file,
            extra_headers,
        } = match listing(&self.listings, mmap, req, dir, is_root, options).await {
            Ok(page) => page,
            Err(e) => return self.fail(data, dir, e),
        };
        let (entry, presentation) = (file.entry(), file.presentation());
        match Plan::awaiting(
            entry,
            presentation,
            headers,
            mmap.options(),
            BodyPolicy::Stream,
        )
        .await
        {
            Some(plan) => {
                let plan = plan.with_headers(extra_headers);
                Outcome::Success(render(plan, mmap.cache()).send(req))
            }
            // The page changed while its tag was hashed (it is rebuilt on the next
            // request): as a route's `MmapFile`, 503.
            None => Outcome::Error(Status::ServiceUnavailable),
        }
    }

    #[cfg(not(feature = "browse"))]
    async fn list_or_404<'r>(
        &self,
        _req: &'r Request<'_>,
        _headers: &RequestHeaders<'_>,
        data: Data<'r>,
        _mmap: &Mmap,
        _dir: &Path,
    ) -> Outcome<'r> {
        Outcome::forward(data, Status::NotFound)
    }
}

/// The file the request names: the root joined with the request's path below the
/// mount point, checked by [`sanitize_under`]. Rocket decodes
/// segments to UTF-8, replacing invalid bytes with U+FFFD; when a segment holds one,
/// the raw segments are decoded again to bytes ([`sanitize_bytes`]), so that a file
/// whose name is not UTF-8 is found by its percent-encoded bytes.
fn request_path(req: &Request<'_>, root: &Path, dotfiles: bool) -> Result<PathBuf, PathRejection> {
    let segments = req.routed_segments(0..);
    if !segments
        .clone()
        .any(|s| s.contains(char::REPLACEMENT_CHARACTER))
    {
        return sanitize_under(root, segments, dotfiles);
    }
    // Rocket's decoded segments are the non-empty raw ones, decoded one by one; the
    // routed ones are the last of them.
    let raw: Vec<&str> = req
        .uri()
        .path()
        .raw_segments()
        .map(|s| s.as_str())
        .filter(|s| !s.is_empty())
        .collect();
    let skip = raw.len().saturating_sub(segments.len());
    let decoded: Vec<Vec<u8>> = raw[skip..]
        .iter()
        .map(|s| percent_encoding::percent_decode(s.as_bytes()).collect())
        .collect();
    sanitize_bytes(decoded.iter().map(Vec::as_slice), dotfiles).map(|rel| root.join(rel))
}

/// 308 to the same path with a trailing slash (query kept). Leading slashes are
/// collapsed so that `//evil.example/dir` can never become a protocol-relative URL.
fn redirect_to_slash<'r>(req: &'r Request<'_>, data: Data<'r>) -> Outcome<'r> {
    let path = req.uri().path().as_str();
    let mut location = String::with_capacity(path.len() + 2);
    location.push('/');
    location.push_str(path.trim_start_matches('/'));
    location.push('/');
    if let Some(q) = req.uri().query() {
        location.push('?');
        location.push_str(q.as_str());
    }
    match Outcome::from(req, Redirect::permanent(location)) {
        Outcome::Success(r) => Outcome::Success(r),
        _ => Outcome::forward(data, Status::NotFound),
    }
}

/// Issue 21: a download whose pages are not in memory never holds up the worker that
/// serves it. Real Rocket dispatch on one thread: the paged-out body waits for a
/// deliberately slow fault-in while a small GET on the same thread is answered.
#[cfg(all(test, target_os = "linux"))]
mod fault_in_tests {
    use std::sync::atomic::Ordering::Relaxed;
    use std::time::Duration;

    use rocket::local::asynchronous::Client;

    use super::FileServer;
    use crate::shell::state::Mmap;

    #[tokio::test(flavor = "current_thread")]
    async fn a_slow_fault_in_does_not_hold_up_a_small_get_on_the_only_worker() {
        let dir =
            std::env::temp_dir().join(format!("rocket-mmap-slow-fault-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let big: Vec<u8> = (0..8 << 20).map(|i: u32| (i % 253) as u8).collect();
        std::fs::write(dir.join("big.bin"), &big).unwrap();
        std::fs::File::open(dir.join("big.bin"))
            .unwrap()
            .sync_all()
            .unwrap();
        std::fs::write(dir.join("small.txt"), b"small").unwrap();
        let rocket = rocket::build()
            .manage(Mmap::default())
            .mount("/", FileServer::from(&dir));
        let client = Client::tracked(rocket).await.unwrap();
        let mmap = client.rocket().state::<Mmap>().unwrap();
        // Loaded (and hashed) by a first request, then paged out as memory pressure would.
        let first = client.get("/big.bin").dispatch().await;
        assert_eq!(first.into_bytes().await.unwrap().len(), big.len());
        let entry = mmap.cache().get(&dir.join("big.bin")).await.unwrap();
        // Its background hash reads the whole file: let it end before paging out.
        assert!(entry.strong_etag().await.is_some());
        entry.watch().unwrap().page_out(&dir.join("big.bin"));
        let small = client.get("/small.txt").dispatch().await;
        assert_eq!(small.into_string().await.unwrap(), "small");
        *mmap.cache().pager().delay.lock().unwrap() = Duration::from_millis(1500);

        let counters = mmap.cache().counters().clone();
        let download = async {
            let response = client.get("/big.bin").dispatch().await;
            response.into_bytes().await.unwrap()
        };
        let meanwhile = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let response = client.get("/small.txt").dispatch().await;
            let body = response.into_string().await.unwrap();
            (
                body,
                counters.fault_ins.load(Relaxed),
                counters.fault_ins_running.load(Relaxed),
            )
        };
        let (got, (small, done, running)) = tokio::join!(download, meanwhile);
        assert_eq!(small, "small");
        assert_eq!(done, 0, "the small GET waited for a fault-in to end");
        assert_eq!(running, 1, "a fault-in was pending while it was answered");
        assert!(got == big, "the download is the file");
        assert!(mmap.cache().stats().fault_ins >= 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
