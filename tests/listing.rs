//! Directory listings (`FileServer::browse`) through Rocket's local client: the HTML
//! and JSON pages, the listing as a real response (ETag, 304, ranges, HEAD), rebuilding
//! when the directory changes, what is never listed (dot-files, links out of the root,
//! names the server would refuse), hostile names, and the page size. Walking pages,
//! and a directory of 200 000 entries, are `tests/listing_pages.rs`'s.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rocket::http::Method;
use rocket::local::asynchronous::Client;

use common::local::{client, figment, get, rocket_with, send, Resp};
use common::TempDir;
use rocket_mmap::{FileServer, Symlinks};

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

/// `<base>/root` is served; `<base>/outside.txt` lies next to it and must never be
/// listed or reachable. Both directories are removed on drop.
struct Site {
    root: TempDir,
    base: TempDir,
}

impl Site {
    fn new(name: &str) -> Site {
        let base = TempDir::new(&format!("listing-{name}"));
        base.write("outside.txt", b"outside the root");
        Site {
            root: base.child("root"),
            base,
        }
    }

    fn root(&self) -> PathBuf {
        self.root.path().to_path_buf()
    }

    /// Writes `content` at `rel` below the root (parents created).
    fn file(&self, rel: &str, content: &[u8]) -> PathBuf {
        let p = self.root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        p
    }

    fn dir(&self, rel: &str) -> PathBuf {
        let p = self.root.join(rel);
        std::fs::create_dir_all(&p).unwrap();
        p
    }
}

async fn client_for(server: FileServer) -> Client {
    client(rocket_with(figment()).mount("/", server)).await
}

/// A browsing file server over `root`.
async fn browse(root: &Path) -> Client {
    client_for(FileServer::from(root).browse(true)).await
}

/// What these tests read of a listing response, beside `common::local::Resp`'s own.
impl Resp {
    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("a UTF-8 page")
    }

    fn json(&self) -> Vec<serde_json::Value> {
        match serde_json::from_slice(&self.body).expect("JSON") {
            serde_json::Value::Array(rows) => rows,
            other => panic!("not an array: {other}"),
        }
    }
}

/// The names of a JSON listing, in order.
fn names(rows: &[serde_json::Value]) -> Vec<String> {
    rows.iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Every `href="…"` of an HTML page, in order, with the three column-sort links left out.
fn hrefs(page: &str) -> Vec<String> {
    page.split("href=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap().replace("&amp;", "&"))
        .filter(|h| !h.starts_with("?sort="))
        .collect()
}

// ---------------------------------------------------------------------------
// The page
// ---------------------------------------------------------------------------

#[tokio::test]
async fn off_by_default_and_an_index_file_wins() {
    let d = Site::new("off");
    d.file("a.txt", b"a");
    d.file("site/index.html", b"<p>index</p>");
    d.file("site/other.txt", b"o");
    let plain = client_for(FileServer::from(d.root())).await;
    assert_eq!(get(&plain, "/", &[]).await.status, 404);

    let c = browse(&d.root()).await;
    let r = get(&c, "/site/", &[]).await;
    assert_eq!((r.status, r.body.as_slice()), (200, &b"<p>index</p>"[..]));
    assert!(r.header("X-Total-Count").is_none());
    // Without an index name configured, every directory is listed.
    let c = client_for(FileServer::from(d.root()).index(None).browse(true)).await;
    let r = get(&c, "/site/", &[]).await;
    assert_eq!(r.status, 200);
    assert!(r.text().contains(">index.html</a>"));
}

#[tokio::test]
async fn html_lists_directories_first_with_size_and_time() {
    let d = Site::new("html");
    d.file("b.txt", &[7u8; 2048]);
    d.file("A.txt", b"tiny");
    d.dir("zeta");
    d.file("alpha/inner.txt", b"inner");
    let c = browse(&d.root()).await;

    let r = get(&c, "/", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.h("Content-Type"), "text/html; charset=utf-8");
    assert_eq!(r.h("Cache-Control"), "no-cache");
    assert_eq!(r.h("Vary"), "Accept");
    assert_eq!(r.h("X-Total-Count"), "4");
    assert!(r
        .h("Content-Security-Policy")
        .starts_with("default-src 'none'"));
    let page = r.text();
    assert!(page.starts_with("<!doctype html>"));
    assert!(page.contains("<meta charset=\"utf-8\">"));
    assert!(page.contains("<title>Index of /</title>"));
    assert_eq!(
        hrefs(&page),
        ["alpha/", "zeta/", "A.txt", "b.txt"],
        "no parent at the root"
    );
    assert!(page.contains("title=\"2048 bytes\">2.0 KiB</td>"));
    assert!(page.contains("<time datetime=\"20"));
    assert!(!page.contains("<script"));

    let sub = get(&c, "/alpha/", &[]).await;
    assert_eq!(sub.status, 200);
    let page = sub.text();
    assert!(page.contains("<title>Index of /alpha/</title>"));
    assert_eq!(hrefs(&page), ["../", "inner.txt"]);
    // Each link works from the listing's URL.
    assert_eq!(get(&c, "/alpha/inner.txt", &[]).await.body, b"inner");
}

#[tokio::test]
async fn json_by_accept_or_by_query_and_sortable() {
    let d = Site::new("json");
    d.file("small.txt", b"12");
    d.file("big.txt", &[0u8; 300]);
    d.file("mid.txt", &[0u8; 30]);
    d.dir("sub");
    let old = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
    std::fs::File::options()
        .write(true)
        .open(d.root().join("big.txt"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    let c = browse(&d.root()).await;

    let r = get(&c, "/", &[("Accept", "application/json")]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.h("Content-Type"), "application/json");
    assert_eq!(r.h("Vary"), "Accept");
    assert!(r.header("Content-Security-Policy").is_none());
    let rows = r.json();
    assert_eq!(names(&rows), ["sub", "big.txt", "mid.txt", "small.txt"]);
    assert_eq!(rows[0]["type"], "directory");
    assert_eq!(rows[0]["size"], serde_json::Value::Null);
    assert_eq!(rows[0]["href"], "sub/");
    assert_eq!(rows[1]["type"], "file");
    assert_eq!(rows[1]["size"], 300);
    assert_eq!(rows[1]["mtime"], "1994-11-06T08:49:37Z");
    assert_eq!(rows[1]["href"], "big.txt");

    let q = get(&c, "/?format=json&sort=size&order=desc", &[]).await;
    assert_eq!(q.h("Content-Type"), "application/json");
    assert!(q.header("Vary").is_none(), "the query decided, not Accept");
    assert_eq!(names(&q.json()), ["sub", "big.txt", "mid.txt", "small.txt"]);
    let q = get(&c, "/?format=json&sort=size", &[]).await;
    assert_eq!(names(&q.json()), ["sub", "small.txt", "mid.txt", "big.txt"]);
    let q = get(&c, "/?format=json&sort=mtime", &[]).await;
    assert_eq!(names(&q.json())[1], "big.txt", "the oldest file first");
    let q = get(&c, "/?format=json&sort=name&order=desc", &[]).await;
    assert_eq!(names(&q.json()), ["sub", "small.txt", "mid.txt", "big.txt"]);
    // ?format=html wins over Accept.
    let h = get(&c, "/?format=html", &[("Accept", "application/json")]).await;
    assert_eq!(h.h("Content-Type"), "text/html; charset=utf-8");
    // A browser's Accept gets HTML; axios' gets JSON.
    let b = get(
        &c,
        "/",
        &[("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")],
    )
    .await;
    assert_eq!(b.h("Content-Type"), "text/html; charset=utf-8");
    let a = get(&c, "/", &[("Accept", "application/json, text/plain, */*")]).await;
    assert_eq!(a.h("Content-Type"), "application/json");
    // The HTML page's column links sort.
    let page = get(&c, "/?sort=size&order=desc", &[]).await.text();
    assert!(page.contains("<a href=\"?sort=size&amp;order=asc\">Size \u{25BC}</a>"));
    assert_eq!(hrefs(&page), ["sub/", "big.txt", "mid.txt", "small.txt"]);
}

// ---------------------------------------------------------------------------
// A real response: validators, conditionals, ranges, HEAD, rebuilding
// ---------------------------------------------------------------------------

#[tokio::test]
async fn listing_has_validators_conditionals_ranges_and_head() {
    let d = Site::new("validators");
    d.file("one.txt", b"1");
    d.file("two.txt", b"22");
    let c = browse(&d.root()).await;

    let full = get(&c, "/", &[]).await;
    let etag = full.h("ETag").to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    let lm = full.h("Last-Modified").to_owned();
    assert!(httpdate::parse_http_date(&lm).is_ok(), "{lm}");
    assert_eq!(full.h("Accept-Ranges"), "bytes");
    // The tag is the content's: the same request gives the same tag.
    assert_eq!(get(&c, "/", &[]).await.h("ETag"), etag);
    // JSON is another representation, with its own tag.
    let json = get(&c, "/?format=json", &[]).await;
    assert_ne!(json.h("ETag"), etag);

    let not_modified = get(&c, "/", &[("If-None-Match", &etag)]).await;
    assert_eq!(not_modified.status, 304);
    assert!(not_modified.body.is_empty());
    assert_eq!(not_modified.h("ETag"), etag);
    assert_eq!(not_modified.h("Vary"), "Accept");
    let since = get(&c, "/", &[("If-Modified-Since", &lm)]).await;
    assert_eq!(since.status, 304);
    let failed = get(&c, "/", &[("If-Match", "\"other\"")]).await;
    assert_eq!(failed.status, 412);

    let range = get(&c, "/", &[("Range", "bytes=0-14")]).await;
    assert_eq!(range.status, 206);
    assert_eq!(range.body, b"<!doctype html>");
    assert_eq!(
        range.h("Content-Range"),
        format!("bytes 0-14/{}", full.body.len())
    );
    let stale = get(&c, "/", &[("Range", "bytes=0-14"), ("If-Range", "\"old\"")]).await;
    assert_eq!((stale.status, stale.body.len()), (200, full.body.len()));

    let head = send(&c, Method::Head, "/", &[]).await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(head.size, Some(full.body.len()), "exact Content-Length");
    assert_eq!(head.h("ETag"), etag);
}

#[tokio::test]
async fn rebuilt_when_an_entry_is_added_and_when_a_file_changes_in_place() {
    let d = Site::new("rebuild");
    d.file("a.txt", b"a");
    let c = browse(&d.root()).await;
    let first = get(&c, "/?format=json", &[]).await;
    let etag = first.h("ETag").to_owned();
    assert_eq!(names(&first.json()), ["a.txt"]);

    d.file("b.txt", b"b");
    let second = get(&c, "/?format=json", &[("If-None-Match", &etag)]).await;
    assert_eq!(second.status, 200, "the old tag no longer matches");
    assert_eq!(names(&second.json()), ["a.txt", "b.txt"]);
    assert_ne!(second.h("ETag"), etag);
    assert_eq!(second.h("X-Total-Count"), "2");

    // Rewritten in place: the directory's own times do not change, so the new size
    // shows once the listing is older than its maximum age (1 s).
    std::fs::write(d.root().join("a.txt"), b"now longer").unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let third = get(&c, "/?format=json", &[]).await;
    assert_eq!(third.json()[0]["size"], 10);

    std::fs::remove_file(d.root().join("b.txt")).unwrap();
    let fourth = get(&c, "/?format=json", &[]).await;
    assert_eq!(names(&fourth.json()), ["a.txt"]);
}

// ---------------------------------------------------------------------------
// Never listed: what the server would not serve
// ---------------------------------------------------------------------------

#[tokio::test]
async fn dotfiles_are_listed_only_when_served() {
    let d = Site::new("dotfiles");
    d.file(".env", b"SECRET=1");
    d.file(".git/config", b"x");
    d.file("visible.txt", b"v");
    let c = browse(&d.root()).await;
    let r = get(&c, "/", &[]).await;
    assert_eq!(r.h("X-Total-Count"), "1");
    let page = r.text();
    assert!(!page.contains(".env") && !page.contains(".git"), "{page}");
    assert_eq!(get(&c, "/.git/", &[]).await.status, 404);

    let c = client_for(FileServer::from(d.root()).browse(true).dotfiles(true)).await;
    let rows = get(&c, "/?format=json", &[]).await.json();
    assert_eq!(names(&rows), [".git", ".env", "visible.txt"]);
    assert_eq!(get(&c, "/.env", &[]).await.body, b"SECRET=1");
}

#[cfg(unix)]
#[tokio::test]
async fn symlinks_are_listed_only_when_followed() {
    let d = Site::new("links");
    d.file("real.txt", b"real");
    d.file("docs/manual.txt", b"manual");
    std::os::unix::fs::symlink(d.base.join("outside.txt"), d.root().join("escape.txt")).unwrap();
    std::os::unix::fs::symlink(d.base.path(), d.root().join("escape-dir")).unwrap();
    std::os::unix::fs::symlink(d.root().join("real.txt"), d.root().join("alias.txt")).unwrap();
    std::os::unix::fs::symlink(d.root().join("docs"), d.root().join("docs-link")).unwrap();
    std::os::unix::fs::symlink(d.root().join("gone"), d.root().join("dangling")).unwrap();

    let c = browse(&d.root()).await; // Symlinks::WithinRoot
    let rows = get(&c, "/?format=json", &[]).await.json();
    assert_eq!(names(&rows), ["docs", "docs-link", "alias.txt", "real.txt"]);
    assert_eq!(
        rows[1]["type"], "directory",
        "a link is listed as its target"
    );
    for row in &rows {
        let href = row["href"].as_str().unwrap();
        assert_eq!(
            get(&c, &format!("/{href}"), &[]).await.status,
            200,
            "{href}"
        );
    }
    assert_eq!(get(&c, "/escape.txt", &[]).await.status, 404);
    assert_eq!(get(&c, "/escape-dir/", &[]).await.status, 404);

    let c = client_for(
        FileServer::from(d.root())
            .browse(true)
            .symlinks(Symlinks::Never),
    )
    .await;
    let rows = get(&c, "/?format=json", &[]).await.json();
    assert_eq!(names(&rows), ["docs", "real.txt"]);

    let c = client_for(
        FileServer::from(d.root())
            .browse(true)
            .symlinks(Symlinks::Follow),
    )
    .await;
    let rows = get(&c, "/?format=json", &[]).await.json();
    assert_eq!(
        names(&rows),
        [
            "docs",
            "docs-link",
            "escape-dir",
            "alias.txt",
            "escape.txt",
            "real.txt"
        ]
    );
}

// ---------------------------------------------------------------------------
// Hostile names
// ---------------------------------------------------------------------------

#[cfg(unix)]
#[tokio::test]
async fn hostile_names_are_escaped_and_their_links_serve_them() {
    use std::os::unix::ffi::OsStrExt;
    let d = Site::new("hostile");
    let names_and_bodies: [(&[u8], &[u8]); 9] = [
        (b"<img src=x onerror=alert(1)>.txt", b"img"),
        (b"100%.txt", b"percent"),
        (b"a#b.txt", b"hash"),
        (b"what?.txt", b"question"),
        (b"with space.txt", b"space"),
        (b"\"double\" 'single'.txt", b"quotes"),
        (b"caf\xe9-latin1.txt", b"latin-1"),
        (b"javascript:alert(1)", b"scheme"),
        ("\u{202E}txt.exe".as_bytes(), b"bidi"),
    ];
    for (name, body) in names_and_bodies {
        std::fs::write(d.root().join(std::ffi::OsStr::from_bytes(name)), body).unwrap();
    }
    let sub = d.root().join(std::ffi::OsStr::from_bytes(b"dir <b>&\xff"));
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(sub.join("inner.txt"), b"inner").unwrap();
    let c = browse(&d.root()).await;

    let page = get(&c, "/", &[]).await.text();
    assert!(!page.contains("<img") && !page.contains("<b>"), "{page}");
    assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;.txt</a>"));
    assert!(page.contains("&quot;double&quot; &#39;single&#39;.txt</a>"));
    assert!(page.contains("caf\u{FFFD}-latin1.txt</a>"));
    assert!(
        page.contains(">\u{FFFD}txt.exe</a>"),
        "bidi override neutralised"
    );
    assert!(page.contains("href=\"javascript%3Aalert%281%29\""));
    let links = hrefs(&page);
    assert_eq!(links.len(), names_and_bodies.len() + 1);
    // Every link, resolved against the listing's URL, serves that very file.
    for link in &links {
        let link: &str = link;
        assert!(
            link.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~%/".contains(&b)),
            "{link}"
        );
        let r = get(&c, &format!("/{link}"), &[]).await;
        assert_eq!(r.status, 200, "{link}");
        let raw: Vec<u8> =
            percent_encoding::percent_decode_str(link.trim_end_matches('/')).collect();
        if let Some((_, body)) = names_and_bodies.iter().find(|(n, _)| *n == raw.as_slice()) {
            assert_eq!(r.body, *body, "{link}");
        } else {
            assert_eq!(link, "dir%20%3Cb%3E%26%FF/");
            assert!(r
                .text()
                .contains("<title>Index of /dir &lt;b&gt;&amp;\u{FFFD}/</title>"));
            assert_eq!(hrefs(&r.text()), ["../", "inner.txt"]);
            let inner = get(&c, &format!("/{link}inner.txt"), &[]).await;
            assert_eq!(inner.body, b"inner");
        }
    }

    // JSON: names read as UTF-8 (lossy), hrefs exact.
    let rows = get(&c, "/?format=json", &[]).await.json();
    let row = rows
        .iter()
        .find(|r| r["href"] == "caf%E9-latin1.txt")
        .expect("the Latin-1 name is listed");
    assert_eq!(row["name"], "caf\u{FFFD}-latin1.txt");
    let row = rows
        .iter()
        .find(|r| r["href"] == "%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E.txt")
        .unwrap();
    assert_eq!(row["name"], "<img src=x onerror=alert(1)>.txt");
}

#[cfg(unix)]
#[tokio::test]
async fn names_the_server_refuses_are_not_listed() {
    use std::os::unix::ffi::OsStrExt;
    let d = Site::new("refused");
    for name in [
        &b"new\nline.txt"[..],
        b"back\\slash.txt",
        b"esc\x1b.txt",
        b"fine.txt",
    ] {
        std::fs::write(d.root().join(std::ffi::OsStr::from_bytes(name)), b"x").unwrap();
    }
    let c = browse(&d.root()).await;
    let r = get(&c, "/?format=json", &[]).await;
    assert_eq!(names(&r.json()), ["fine.txt"]);
    assert_eq!(r.h("X-Total-Count"), "1");
    for href in ["new%0Aline.txt", "back%5Cslash.txt", "esc%1B.txt"] {
        assert_eq!(
            get(&c, &format!("/{href}"), &[]).await.status,
            404,
            "{href}"
        );
    }
}

#[cfg(unix)]
#[tokio::test]
async fn non_utf8_names_are_served_without_browsing_too() {
    use std::os::unix::ffi::OsStrExt;
    let d = Site::new("bytes");
    std::fs::write(
        d.root().join(std::ffi::OsStr::from_bytes(b"\xff\xfe.bin")),
        b"raw",
    )
    .unwrap();
    std::fs::write(
        d.root().join(std::ffi::OsStr::from_bytes(b".\xff")),
        b"hidden",
    )
    .unwrap();
    let c = client_for(FileServer::from(d.root())).await;
    let r = get(&c, "/%FF%FE.bin", &[]).await;
    assert_eq!((r.status, r.body.as_slice()), (200, &b"raw"[..]));
    assert_eq!(get(&c, "/%FF%FF.bin", &[]).await.status, 404);
    assert_eq!(get(&c, "/.%FF", &[]).await.status, 404, "still a dot-file");
    assert_eq!(get(&c, "/%FF/..%2f..%2foutside.txt", &[]).await.status, 404);
    assert_eq!(get(&c, "/%FF%2F..", &[]).await.status, 404);
}

// ---------------------------------------------------------------------------
// URLs without a trailing slash, mount points
// ---------------------------------------------------------------------------

#[tokio::test]
async fn without_the_redirect_links_still_resolve_below_the_directory() {
    let d = Site::new("noslash");
    d.file("sub dir/f.txt", b"f");
    let c = client_for(
        FileServer::from(d.root())
            .browse(true)
            .redirect_directories(false),
    )
    .await;
    let page = get(&c, "/sub%20dir", &[]).await.text();
    assert!(page.contains("<title>Index of /sub dir</title>"));
    assert_eq!(hrefs(&page), ["./", "sub%20dir/f.txt"]);
    // The same directory with a slash is another page, with plain links.
    let page = get(&c, "/sub%20dir/", &[]).await.text();
    assert_eq!(hrefs(&page), ["../", "f.txt"]);
    // Spellings of the same URL give the same page (one cache entry, not one each).
    for spelling in ["//sub%20dir/", "/sub%20dir//", "/%73ub%20dir/"] {
        assert_eq!(get(&c, spelling, &[]).await.text(), page, "{spelling}");
    }

    // Mounted below the root of the site: the title shows the whole path, and the
    // mount point itself has no parent link.
    let c = client(rocket_with(figment()).mount("/files", FileServer::from(d.root()).browse(true)))
        .await;
    assert_eq!(get(&c, "/files", &[]).await.status, 308);
    let page = get(&c, "/files/", &[]).await.text();
    assert!(page.contains("<title>Index of /files/</title>"));
    assert_eq!(hrefs(&page), ["sub%20dir/"]);
    let page = get(&c, "/files/sub%20dir/", &[]).await.text();
    assert!(page.contains("<title>Index of /files/sub dir/</title>"));
    assert_eq!(hrefs(&page), ["../", "f.txt"]);
}

// ---------------------------------------------------------------------------
// Bounds
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_configured_page_size_cuts_the_listing_into_pages() {
    let d = Site::new("bound");
    for i in 0..30 {
        d.file(&format!("f{i:02}.txt"), &vec![b'x'; i]);
    }
    d.dir("zz-dir");
    let c = client_for(
        FileServer::from(d.root())
            .browse(true)
            .browse_max_entries(5),
    )
    .await;
    let r = get(&c, "/", &[]).await;
    assert_eq!(r.h("X-Total-Count"), "31");
    assert_eq!(r.h("Link"), "<?after=f03.txt>; rel=\"next\"");
    let page = r.text();
    assert!(page.contains("Entries 1\u{2013}5 of 31, by name, directories first."));
    assert_eq!(
        hrefs(&page),
        [
            "?after=f03.txt",
            "zz-dir/",
            "f00.txt",
            "f01.txt",
            "f02.txt",
            "f03.txt",
            "?after=f03.txt"
        ],
        "the entries, and the next page linked above and below them"
    );
    // Sorting applies to the entries of the page.
    let rows = get(&c, "/?format=json&sort=size&order=desc", &[])
        .await
        .json();
    assert_eq!(
        names(&rows),
        ["zz-dir", "f03.txt", "f02.txt", "f01.txt", "f00.txt"]
    );
    // tests/listing_pages.rs walks the pages.
}
