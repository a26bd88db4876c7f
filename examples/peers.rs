//! The peers of the load comparison (`benches/load/run.py`), each a plain Rocket
//! application configured exactly like the crate's server (workers, logging, default
//! fairings), so that ratios compare the file serving and nothing else:
//!
//! * `hello DIR`: a hello-world route at every path — the floor every Rocket server pays;
//! * `headers DIR`: a fixed 1 KiB body at every path with the headers a file response
//!   carries (`ETag`, `Last-Modified`, `Accept-Ranges`, `Content-Type`) and nothing
//!   else: no lookup, no `stat`, no conditionals. The floor for a *file* response on
//!   Rocket, to tell the crate's own cost from Rocket's cost per header;
//! * `fileserver DIR`: Rocket 0.5.2's own `rocket::fs::FileServer` (no ranges, no ETag);
//! * `vec DIR`: the "read the requested range into a `Vec`" responder of the article this
//!   crate started from, with its bugs fixed (ranges parsed by RFC 9110 rules — here
//!   with this crate's parser — `-N` suffixes, clamping, 416 with `bytes */LEN`, and no
//!   panic on bad input). It reads the range with a seek and `read_exact` on every
//!   request and allocates a buffer of the range's size; several ranges are answered
//!   with the whole file.
//!
//! * `ideal DIR`: the ceiling for any file response on Rocket. Every file under `DIR`
//!   (subdirectories included) is read into memory at start; `GET /FILE` answers with
//!   the same four headers a file response carries (values made once), a single
//!   `Range` (206 with `Content-Range`), an exact-match `If-None-Match` (304), and
//!   64 KiB body chunks. No `stat`, no conditionals beyond that, no checks: what is
//!   left is Rocket's own cost.
//!
//! `cargo run --release --example peers -- MODE DIR` (port from `ROCKET_PORT`).

use std::collections::HashMap;
use std::io::SeekFrom;
use std::path::PathBuf;

use bytes::Bytes;

use rocket::fs::FileServer;
use rocket::http::{Header, Status};
use rocket::request::{FromRequest, Outcome, Request};
use rocket::response::{self, Responder, Response};
use rocket::{get, routes, State};
use rocket_mmap::semantics::range::{plan, RangeLimits, RangePlan};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

#[get("/<_path..>")]
fn hello(_path: PathBuf) -> &'static str {
    "Hello, world!"
}

/// The body and headers of `headers` mode.
struct FixedFile;

static FIXED_BODY: [u8; 1024] = [b'x'; 1024];

impl<'r> Responder<'r, 'static> for FixedFile {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        Response::build()
            .raw_header("ETag", "\"ff6bb9d3e7087593-400\"".to_owned())
            .raw_header("Last-Modified", "Sat, 21 Nov 2026 18:40:56 GMT".to_owned())
            .raw_header("Accept-Ranges", "bytes")
            .raw_header("Content-Type", "application/octet-stream")
            .sized_body(FIXED_BODY.len(), std::io::Cursor::new(&FIXED_BODY[..]))
            .ok()
    }
}

#[get("/<_path..>")]
fn headers(_path: PathBuf) -> FixedFile {
    FixedFile
}

struct Root(PathBuf);

/// The `Range` header, if any.
struct RangeHeader(Option<String>);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for RangeHeader {
    type Error = ();

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, ()> {
        Outcome::Success(RangeHeader(
            req.headers().get_one("Range").map(str::to_owned),
        ))
    }
}

/// 200 or 206 with the bytes read into a `Vec`, or 416.
struct VecReply {
    status: Status,
    content_range: Option<String>,
    body: Vec<u8>,
}

impl<'r> Responder<'r, 'static> for VecReply {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        let mut b = Response::build();
        b.status(self.status)
            .header(Header::new("Accept-Ranges", "bytes"))
            .header(Header::new("Content-Type", "application/octet-stream"));
        if let Some(cr) = self.content_range {
            b.header(Header::new("Content-Range", cr));
        }
        b.sized_body(self.body.len(), std::io::Cursor::new(self.body));
        Ok(b.finalize())
    }
}

#[get("/<path..>")]
async fn vec_range(
    path: PathBuf,
    range: RangeHeader,
    root: &State<Root>,
) -> Result<VecReply, Status> {
    let full = root.0.join(path);
    let mut file = tokio::fs::File::open(&full)
        .await
        .map_err(|_| Status::NotFound)?;
    let len = file.metadata().await.map_err(|_| Status::NotFound)?.len();
    let limits = RangeLimits {
        max_parts: 1,
        ..RangeLimits::default()
    };
    let (first, last, status) = match plan(range.0.as_deref(), len, &limits, 0) {
        RangePlan::Single(r) => (r.first, r.last, Status::PartialContent),
        RangePlan::Unsatisfiable => {
            return Ok(VecReply {
                status: Status::RangeNotSatisfiable,
                content_range: Some(format!("bytes */{len}")),
                body: Vec::new(),
            })
        }
        RangePlan::Full(_) | RangePlan::Multi(_) if len == 0 => (0, 0, Status::Ok),
        RangePlan::Full(_) | RangePlan::Multi(_) => (0, len - 1, Status::Ok),
    };
    let n = if len == 0 { 0 } else { last - first + 1 };
    file.seek(SeekFrom::Start(first))
        .await
        .map_err(|_| Status::InternalServerError)?;
    let mut body = vec![0u8; n as usize];
    file.read_exact(&mut body)
        .await
        .map_err(|_| Status::InternalServerError)?;
    let content_range =
        (status == Status::PartialContent).then(|| format!("bytes {first}-{last}/{len}"));
    Ok(VecReply {
        status,
        content_range,
        body,
    })
}

/// A file of `ideal` mode: its bytes and header values, made once at start.
struct IdealFile {
    content: Bytes,
    etag: String,
    last_modified: String,
    content_type: &'static str,
}

/// Every file of the root, by request path (`/name`).
struct IdealFiles(HashMap<String, IdealFile>);

impl IdealFiles {
    /// Every file under `dir`, subdirectories included (a mirror's library is a tree),
    /// keyed by its request path (`/sub/name`).
    fn load(dir: &std::path::Path) -> IdealFiles {
        let mut files = HashMap::new();
        let mut dirs = vec![(dir.to_path_buf(), String::new())];
        while let Some((dir, prefix)) = dirs.pop() {
            for entry in std::fs::read_dir(&dir)
                .expect("readable directory")
                .flatten()
            {
                let path = entry.path();
                let key = format!("{prefix}/{}", entry.file_name().to_string_lossy());
                let Ok(meta) = entry.metadata() else { continue };
                if meta.is_dir() {
                    dirs.push((path, key));
                    continue;
                }
                if !meta.is_file() {
                    continue;
                }
                let content = Bytes::from(std::fs::read(&path).expect("readable file"));
                let etag = rocket_mmap::EntityTag::from_content(&content).to_string();
                let modified = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
                files.insert(
                    key,
                    IdealFile {
                        content,
                        etag,
                        last_modified: httpdate::fmt_http_date(modified),
                        content_type: "application/octet-stream",
                    },
                );
            }
        }
        IdealFiles(files)
    }
}

/// The request headers `ideal` mode reads.
struct IdealRequest<'r> {
    path: &'r str,
    range: Option<&'r str>,
    if_none_match: Option<&'r str>,
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for IdealRequest<'r> {
    type Error = ();

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, ()> {
        Outcome::Success(IdealRequest {
            path: req.uri().path().as_str(),
            range: req.headers().get_one("Range"),
            if_none_match: req.headers().get_one("If-None-Match"),
        })
    }
}

/// 200, 206 or 304 for a file in memory.
struct IdealReply {
    file: &'static IdealFile,
    status: Status,
    range: Option<(u64, u64)>,
}

impl<'r> Responder<'r, 'static> for IdealReply {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        let f = self.file;
        let mut b = Response::build();
        b.status(self.status)
            .raw_header("ETag", f.etag.as_str())
            .raw_header("Last-Modified", f.last_modified.as_str());
        if self.status == Status::NotModified {
            return Ok(b.finalize());
        }
        b.raw_header("Accept-Ranges", "bytes")
            .raw_header("Content-Type", f.content_type);
        let body = match self.range {
            Some((first, last)) => {
                let len = f.content.len();
                b.raw_header("Content-Range", format!("bytes {first}-{last}/{len}"));
                f.content.slice(first as usize..=last as usize)
            }
            None => f.content.clone(),
        };
        let n = body.len();
        b.sized_body(n, std::io::Cursor::new(body));
        b.max_chunk_size(n.clamp(1, 64 * 1024));
        Ok(b.finalize())
    }
}

#[get("/<_path..>")]
fn ideal(
    _path: PathBuf,
    req: IdealRequest<'_>,
    files: &State<&'static IdealFiles>,
) -> Result<IdealReply, Status> {
    let file = files.0.get(req.path).ok_or(Status::NotFound)?;
    if req.if_none_match == Some(file.etag.as_str()) {
        return Ok(IdealReply {
            file,
            status: Status::NotModified,
            range: None,
        });
    }
    let limits = RangeLimits {
        max_parts: 1,
        ..RangeLimits::default()
    };
    let len = file.content.len() as u64;
    Ok(match plan(req.range, len, &limits, 0) {
        RangePlan::Single(r) => IdealReply {
            file,
            status: Status::PartialContent,
            range: Some((r.first, r.last)),
        },
        RangePlan::Unsatisfiable => return Err(Status::RangeNotSatisfiable),
        RangePlan::Full(_) | RangePlan::Multi(_) => IdealReply {
            file,
            status: Status::Ok,
            range: None,
        },
    })
}

#[rocket::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mode, dir] = args.as_slice() else {
        eprintln!("usage: peers hello|headers|fileserver|vec|ideal DIR");
        std::process::exit(2);
    };
    let dir = PathBuf::from(dir);
    let mode = mode.as_str();
    let rocket = rocket::build();
    let rocket = match mode {
        "hello" => rocket.mount("/", routes![hello]),
        "headers" => rocket.mount("/", routes![headers]),
        "fileserver" => rocket.mount("/", FileServer::from(&dir)),
        "vec" => rocket.manage(Root(dir)).mount("/", routes![vec_range]),
        "ideal" => {
            let files: &'static IdealFiles = Box::leak(Box::new(IdealFiles::load(&dir)));
            rocket.manage(files).mount("/", routes![ideal])
        }
        other => {
            eprintln!("unknown mode {other:?}: hello, headers, fileserver, vec or ideal");
            std::process::exit(2);
        }
    };
    if let Err(e) = rocket.launch().await {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
