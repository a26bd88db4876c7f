//! Listings in pages (`FileServer::browse`, `browse_max_entries` entries a page),
//! through Rocket's local client: every entry reached once and in order by the HTML
//! `next` links, the `previous` links retracing the walk, the JSON cursor and the
//! `Link` field, each page a response of its own (validators, 304, ranges), cursors
//! that name removed or impossible entries, walking while the directory changes, and
//! a directory of 200 000 entries walked to the end three ways.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::time::Instant;

use rocket::http::Method;
use rocket::local::asynchronous::Client;

use common::local::{client, figment, get, rocket_with, send, Resp, Site};
use rocket_mmap::setup::DEFAULT_BROWSE_MAX_ENTRIES;
use rocket_mmap::FileServer;

// ---------------------------------------------------------------------------
// Reading pages
// ---------------------------------------------------------------------------

/// A browsing file server over `root`, with pages of `page` entries.
async fn browse(root: &Path, page: usize) -> Client {
    let server = FileServer::from(root).browse(true).browse_max_entries(page);
    client(rocket_with(figment()).mount("/", server)).await
}

/// An HTML page: its entries' links and the links to the pages around it.
struct Html {
    entries: Vec<String>,
    previous: Option<String>,
    next: Option<String>,
    text: String,
}

fn html(r: &Resp) -> Html {
    assert_eq!(r.status, 200);
    assert_eq!(r.h("Content-Type"), "text/html; charset=utf-8");
    let text = String::from_utf8(r.body.clone()).unwrap();
    let attr = |after: &str| {
        text.split(after)
            .nth(1)
            .map(|s| s.split('"').next().unwrap().replace("&amp;", "&"))
    };
    let entries = text
        .split("<td class=\"n\"><a href=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap().replace("&amp;", "&"))
        .filter(|h| h != "../" && h != "./")
        .collect();
    Html {
        entries,
        previous: attr("<a rel=\"prev\" href=\""),
        next: attr("<a rel=\"next\" href=\""),
        text,
    }
}

/// The rows of a JSON page.
fn rows(r: &Resp) -> Vec<serde_json::Value> {
    assert_eq!(r.status, 200);
    match serde_json::from_slice(&r.body).expect("JSON") {
        serde_json::Value::Array(rows) => rows,
        other => panic!("not an array: {other}"),
    }
}

fn field(rows: &[serde_json::Value], name: &str) -> Vec<String> {
    rows.iter()
        .map(|r| r[name].as_str().unwrap().to_owned())
        .collect()
}

/// The targets of a `Link` field by relation.
fn link(r: &Resp, rel: &str) -> Option<String> {
    r.header("Link")?.split(", ").find_map(|l| {
        let (target, params) = l.split_once(">; ")?;
        (params == format!("rel=\"{rel}\"")).then(|| target.trim_start_matches('<').to_owned())
    })
}

/// `href` resolved against the request target `from` (RFC 3986 §5.2), for the
/// references a listing makes: a query, `./`, or a segment.
fn resolve(from: &str, href: &str) -> String {
    let path = from.split('?').next().unwrap();
    if href.starts_with('?') {
        return format!("{path}{href}");
    }
    let dir = &path[..=path.rfind('/').unwrap()];
    format!("{dir}{}", href.trim_start_matches("./"))
}

/// Follows `next` links from `start` to the last page; returns each page's URL and
/// entries.
async fn walk_forward(c: &Client, start: &str) -> Vec<(String, Vec<String>)> {
    let mut pages = Vec::new();
    let mut url = Some(start.to_owned());
    while let Some(at) = url {
        let r = get(c, &at, &[]).await;
        let page = html(&r);
        assert_eq!(
            link(&r, "next"),
            page.next,
            "the Link field names the HTML's pages"
        );
        assert_eq!(link(&r, "prev"), page.previous);
        url = page.next.as_deref().map(|h| resolve(&at, h));
        pages.push((at, page.entries));
    }
    pages
}

/// Follows `previous` links from `start` to the first page; returns the pages met, in
/// the order met.
async fn walk_back(c: &Client, start: &str) -> Vec<(String, Vec<String>)> {
    let mut pages = Vec::new();
    let mut url = Some(start.to_owned());
    while let Some(at) = url {
        let page = html(&get(c, &at, &[]).await);
        url = page.previous.as_deref().map(|h| resolve(&at, h));
        pages.push((at, page.entries));
    }
    pages
}

/// Walks the JSON pages of `dir` (`/…/`) by the last entry's `cursor`, until an empty
/// page; checks that the `Link` field says the same; returns the names met.
async fn walk_json(c: &Client, dir: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut url = format!("{dir}?format=json");
    loop {
        let r = get(c, &url, &[]).await;
        let page = rows(&r);
        let Some(last) = page.last() else {
            assert_eq!(link(&r, "next"), None);
            return names;
        };
        let cursor = last["cursor"].as_str().unwrap();
        match link(&r, "next") {
            Some(next) => assert_eq!(next, format!("?format=json&after={cursor}")),
            // The last page: its cursor leads to an empty page.
            None => assert_eq!(
                names.len() + page.len(),
                r.h("X-Total-Count").parse::<usize>().unwrap()
            ),
        }
        names.extend(field(&page, "name"));
        url = format!("{dir}?format=json&after={cursor}");
    }
}

// ---------------------------------------------------------------------------
// Small directories
// ---------------------------------------------------------------------------

/// 3 directories and 20 files, in pages of 5: `dir-0/ dir-1/ dir-2/ f00 f01 | …`.
fn small_site(name: &str) -> (Site, Vec<String>) {
    let site = Site::new(name);
    let mut expected = Vec::new();
    for i in 0..3 {
        site.dir(&format!("dir-{i}"));
        expected.push(format!("dir-{i}/"));
    }
    for i in 0..20 {
        site.file(&format!("f{i:02}.txt"), &vec![b'x'; 20 - i]);
        expected.push(format!("f{i:02}.txt"));
    }
    (site, expected)
}

#[tokio::test]
async fn html_pages_reach_every_entry_once_and_previous_links_go_back() {
    let (site, expected) = small_site("pages-html");
    let c = browse(&site.root(), 5).await;

    let first = get(&c, "/", &[]).await;
    assert_eq!(first.h("X-Total-Count"), "23");
    let page = html(&first);
    assert!(page
        .text
        .contains("<span>Entries 1\u{2013}5 of 23, by name, directories first.</span>"));
    assert_eq!(page.next.as_deref(), Some("?after=f01.txt"));
    assert_eq!(page.previous, None);
    assert!(page
        .text
        .contains("<footer>3 directories, 2 files on this page</footer>"));

    let forward = walk_forward(&c, "/").await;
    assert_eq!(forward.len(), 5);
    let all: Vec<String> = forward.iter().flat_map(|(_, e)| e.clone()).collect();
    assert_eq!(all, expected, "every entry once, in order");
    assert!(forward.iter().all(|(_, e)| e.len() <= 5));
    // A page ending on a directory continues after it: the cursor marks directories.
    let c3 = browse(&site.root(), 3).await;
    assert_eq!(
        html(&get(&c3, "/", &[]).await).next.as_deref(),
        Some("?after=dir-2/")
    );
    assert_eq!(
        html(&get(&c3, "/?after=dir-2/", &[]).await).entries,
        ["f00.txt", "f01.txt", "f02.txt"]
    );

    let (last_url, _) = forward.last().unwrap();
    let last = html(&get(&c, last_url, &[]).await);
    assert!(last.text.contains("Entries 21\u{2013}23 of 23"));
    assert_eq!(last.next, None);
    let mut back = walk_back(&c, last_url).await;
    back.reverse();
    let back_entries: Vec<_> = back.iter().map(|(_, e)| e).collect();
    let forward_entries: Vec<_> = forward.iter().map(|(_, e)| e).collect();
    assert_eq!(back_entries, forward_entries, "back through the same pages");
    assert_eq!(back[0].0, "/", "the first page is the listing's own URL");
}

#[tokio::test]
async fn sorting_orders_a_page_and_keeps_it() {
    let (site, _) = small_site("pages-sort");
    let c = browse(&site.root(), 5).await;
    // Page 2 is f02 … f06 by name; by size, descending, the same five.
    let page = html(&get(&c, "/?sort=size&order=desc&after=f01.txt", &[]).await);
    assert_eq!(
        page.entries,
        ["f02.txt", "f03.txt", "f04.txt", "f05.txt", "f06.txt"]
    );
    let asc = html(&get(&c, "/?sort=size&after=f01.txt", &[]).await);
    assert_eq!(
        asc.entries,
        ["f06.txt", "f05.txt", "f04.txt", "f03.txt", "f02.txt"]
    );
    assert!(page
        .text
        .contains("This page is sorted by size, descending."));
    // Its links keep the order, and the column headers keep the page.
    assert_eq!(
        page.next.as_deref(),
        Some("?sort=size&order=desc&after=f06.txt")
    );
    assert_eq!(page.previous.as_deref(), Some("?sort=size&order=desc"));
    assert!(page
        .text
        .contains("<a href=\"?sort=size&amp;order=asc&amp;after=f01.txt\">Size \u{25BC}</a>"));
    // Walking in that order reaches everything too.
    let forward = walk_forward(&c, "/?sort=mtime&order=desc").await;
    let mut all: Vec<String> = forward.iter().flat_map(|(_, e)| e.clone()).collect();
    assert_eq!(all.len(), 23);
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 23);
}

#[tokio::test]
async fn json_pages_follow_the_cursor_and_the_link_field() {
    let (site, expected) = small_site("pages-json");
    let c = browse(&site.root(), 5).await;
    let names = walk_json(&c, "/").await;
    let expected: Vec<String> = expected
        .iter()
        .map(|e| e.trim_end_matches('/').to_owned())
        .collect();
    assert_eq!(names, expected);

    // By Accept, the links carry no format (the client's Accept chooses it again).
    let r = get(&c, "/?after=f01.txt", &[("Accept", "application/json")]).await;
    assert_eq!(r.h("Content-Type"), "application/json");
    assert_eq!(
        r.h("Link"),
        "<./>; rel=\"prev\", <?after=f06.txt>; rel=\"next\""
    );
    let page = rows(&r);
    assert_eq!(field(&page, "cursor"), field(&page, "href"));
    assert_eq!(page[0]["name"], "f02.txt");
    // An unpaged listing has no Link field, and its JSON is the same array as ever.
    let c = browse(&site.root(), 100).await;
    let r = get(&c, "/?format=json", &[]).await;
    assert_eq!(r.header("Link"), None);
    assert_eq!(rows(&r).len(), 23);
    assert_eq!(rows(&r)[0]["cursor"], "dir-0/");
}

#[tokio::test]
async fn each_page_is_a_response_of_its_own() {
    let (site, _) = small_site("pages-validators");
    let c = browse(&site.root(), 5).await;
    let one = get(&c, "/", &[]).await;
    let two = get(&c, "/?after=f01.txt", &[]).await;
    assert_ne!(one.etag(), two.etag());
    assert_eq!(get(&c, "/?after=f01.txt", &[]).await.etag(), two.etag());
    // A cursor naming the same place is the same page: the same tag.
    assert_eq!(get(&c, "/?after=f01.txt%00", &[]).await.etag(), two.etag());

    let not_modified = get(&c, "/?after=f01.txt", &[("If-None-Match", two.etag())]).await;
    assert_eq!(not_modified.status, 304);
    assert_eq!(not_modified.h("ETag"), two.etag());
    assert_eq!(
        get(&c, "/", &[("If-None-Match", two.etag())]).await.status,
        200,
        "another page's tag does not match"
    );
    let lm = two.h("Last-Modified").to_owned();
    let since = get(&c, "/?after=f01.txt", &[("If-Modified-Since", &lm)]).await;
    assert_eq!(since.status, 304);
    let range = get(&c, "/?after=f01.txt", &[("Range", "bytes=0-14")]).await;
    assert_eq!(
        (range.status, range.body.as_slice()),
        (206, &b"<!doctype html>"[..])
    );
    let head = send(&c, Method::Head, "/?after=f01.txt", &[]).await;
    assert_eq!(head.size, Some(two.body.len()));
    assert_eq!(head.h("Link"), two.h("Link"));
    assert_eq!(head.h("X-Total-Count"), "23");
}

#[cfg(unix)]
#[tokio::test]
async fn any_cursor_is_a_position() {
    let (site, _) = small_site("pages-cursors");
    let c = browse(&site.root(), 5).await;
    let entries = |r: Resp| html(&r).entries;
    // Between two names, or naming a removed entry: the page after that place.
    let page = entries(get(&c, "/?after=f01.txt", &[]).await);
    assert_eq!(entries(get(&c, "/?after=f01.tx", &[]).await)[0], "f01.txt");
    std::fs::remove_file(site.root().join("f01.txt")).unwrap();
    assert_eq!(entries(get(&c, "/?after=f01.txt", &[]).await), page);
    // Past the end: an empty page, linked back to the last one.
    let past = html(&get(&c, "/?after=zzz", &[]).await);
    assert!(past.entries.is_empty());
    assert!(past.text.contains("No entries here; 22 in all."));
    assert_eq!(past.next, None);
    let last = html(&get(&c, &resolve("/", past.previous.as_deref().unwrap()), &[]).await);
    assert_eq!(
        last.entries,
        ["f15.txt", "f16.txt", "f17.txt", "f18.txt", "f19.txt"]
    );
    // Bytes no name holds, percent signs, a very long cursor, an empty one: pages.
    for odd in [
        "%00",
        "a/b",
        "%2F%2F",
        "%FF%FE",
        "100%",
        "%zz",
        "+",
        "..",
        "",
        &"x".repeat(4000),
    ] {
        let r = get(&c, &format!("/?after={odd}"), &[]).await;
        assert_eq!(r.status, 200, "{odd}");
    }
    assert_eq!(
        entries(get(&c, "/?after=", &[]).await),
        entries(get(&c, "/", &[]).await)
    );
    assert_eq!(
        entries(get(&c, "/?after=%2F", &[]).await)[0],
        "dir-0/",
        "before every directory"
    );
}

#[tokio::test]
async fn walking_while_the_directory_changes_meets_every_lasting_entry_once() {
    let (site, _) = small_site("pages-changing");
    let c = browse(&site.root(), 4).await;
    let mut url = Some("/".to_owned());
    let mut seen = Vec::new();
    let mut step = 0;
    while let Some(at) = url {
        let page = html(&get(&c, &at, &[]).await);
        seen.extend(page.entries.clone());
        url = page.next.as_deref().map(|h| resolve(&at, h));
        // Between pages: a name before the walk's place and one after it come, one of
        // the seen names and one of the unseen go.
        site.file(&format!("a-new-{step}.txt"), b"n");
        site.file(&format!("z-new-{step}.txt"), b"n");
        if let Some(gone) = page.entries.first().filter(|e| !e.ends_with('/')) {
            std::fs::remove_file(site.root().join(gone)).unwrap();
        }
        step += 1;
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no entry twice: {seen:?}");
    for i in 0..20 {
        let name = format!("f{i:02}.txt");
        assert!(seen.contains(&name), "{name} lasted and was not met");
    }
    let mut sorted = seen.clone();
    sorted.sort_by_key(|e| (!e.ends_with('/'), e.to_lowercase()));
    assert_eq!(seen, sorted, "in order");
}

#[tokio::test]
async fn without_a_trailing_slash_page_links_stay_on_the_directory() {
    let site = Site::new("pages-noslash");
    for i in 0..7 {
        site.file(&format!("sub dir/f{i}"), b"x");
    }
    let server = FileServer::from(site.root())
        .browse(true)
        .browse_max_entries(3)
        .redirect_directories(false);
    let c = client(rocket_with(figment()).mount("/", server)).await;
    let forward = walk_forward(&c, "/sub%20dir").await;
    let all: Vec<String> = forward.iter().flat_map(|(_, e)| e.clone()).collect();
    let expected: Vec<String> = (0..7).map(|i| format!("sub%20dir/f{i}")).collect();
    assert_eq!(all, expected);
    let back = walk_back(&c, &forward.last().unwrap().0).await;
    assert_eq!(
        back.last().unwrap().0,
        "/sub%20dir",
        "the first page by its segment"
    );
}

// ---------------------------------------------------------------------------
// 200 000 entries
// ---------------------------------------------------------------------------

/// 200 000 entries (20 directories, the rest empty files) in pages of the default
/// size: the first page is read off the async workers (a small file asked for at the
/// same time on the one worker thread is answered first), every entry is reached
/// exactly once and in order by the HTML `next` links and by the JSON cursor, and the
/// `previous` links walk back through the same pages. Times are printed, not checked
/// (run in release with `--nocapture` to read them).
#[tokio::test(flavor = "current_thread")]
async fn a_directory_of_200_000_entries_is_reached_page_by_page() {
    const ENTRIES: usize = 200_000;
    const DIRS: usize = 20;
    let site = Site::new("pages-huge");
    let huge = site.dir("huge");
    let made = Instant::now();
    let mut expected = Vec::with_capacity(ENTRIES);
    for i in 0..DIRS {
        std::fs::create_dir(huge.join(format!("dir-{i:02}"))).unwrap();
        expected.push(format!("dir-{i:02}/"));
    }
    for i in 0..ENTRIES - DIRS {
        let name = format!("file-{i:06}.dat");
        std::fs::File::create(huge.join(&name)).unwrap();
        expected.push(name);
    }
    println!("created {ENTRIES} entries in {:?}", made.elapsed());
    site.file("small.txt", b"small");
    let c =
        client(rocket_with(figment()).mount("/", FileServer::from(site.root()).browse(true))).await;

    let started = Instant::now();
    let ((first, first_done), (small, small_done)) = tokio::join!(
        async { (get(&c, "/huge/", &[]).await, Instant::now()) },
        async { (get(&c, "/small.txt", &[]).await, Instant::now()) },
    );
    assert_eq!(small.body, b"small");
    assert!(
        small_done < first_done,
        "the small file waited for the directory to be read"
    );
    assert_eq!(first.h("X-Total-Count"), ENTRIES.to_string());
    let page = html(&first);
    assert_eq!(page.entries.len(), DEFAULT_BROWSE_MAX_ENTRIES);
    assert!(page.text.contains(&format!(
        "Entries 1\u{2013}{DEFAULT_BROWSE_MAX_ENTRIES} of {ENTRIES}"
    )));
    println!(
        "first page, cold: {:?} ({} bytes)",
        first_done - started,
        first.body.len()
    );

    let started = Instant::now();
    let forward = walk_forward(&c, "/huge/").await;
    println!("{} HTML pages: {:?}", forward.len(), started.elapsed());
    assert_eq!(forward.len(), ENTRIES.div_ceil(DEFAULT_BROWSE_MAX_ENTRIES));
    assert!(forward
        .iter()
        .all(|(_, e)| e.len() <= DEFAULT_BROWSE_MAX_ENTRIES));
    let all: Vec<&String> = forward.iter().flat_map(|(_, e)| e).collect();
    assert_eq!(all.len(), ENTRIES);
    assert!(all.iter().zip(&expected).all(|(a, b)| *a == b), "in order");

    let started = Instant::now();
    let mut back = walk_back(&c, &forward.last().unwrap().0).await;
    println!("back through them: {:?}", started.elapsed());
    back.reverse();
    assert_eq!(back, forward);

    let started = Instant::now();
    let names = walk_json(&c, "/huge/").await;
    println!("JSON pages: {:?}", started.elapsed());
    assert_eq!(names.len(), ENTRIES);
    let bare = expected.iter().map(|e| e.trim_end_matches('/'));
    assert!(names.iter().map(String::as_str).eq(bare), "in order");
}
