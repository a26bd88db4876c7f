//! Real HTTP clients against a real server: curl (ranges, multipart, `-C -`, HEAD),
//! wget `-c`, aria2c with eight connections and aria2c `-c`; every download checked by
//! SHA-256 against the served file. Plus HTTP/1.1 pipelining over a raw socket.
//!
//! The tests that need external tools are `#[ignore]`d (so a plain `cargo test` runs
//! anywhere) and run by `.ci/run` with `--ignored`; run them locally with
//! `cargo test --test real_clients -- --include-ignored`. They fail, never pass, when
//! the tool is missing.

mod common;

use std::io::{BufReader, Read, Write};
use std::path::Path;
use std::process::Command;

use common::{
    etag_of, parse_byteranges, pseudo_random, read_head, read_response, request_bytes,
    require_tool, run_ok, sha256_file, sha256_hex, ResponseHead, Server, TempDir,
};

/// The last response head in a header dump (`curl -D`, `wget -S`), which may hold
/// several (e.g. a `100 Continue`); only HTTP/1.x status lines are expected.
fn last_head(dump: &str) -> ResponseHead {
    let start = dump
        .rfind("HTTP/1.")
        .unwrap_or_else(|| panic!("no status line in header dump:\n{dump}"));
    let mut text = dump[start..].replace("\r\n", "\n");
    if !text.ends_with("\n\n") {
        text.push('\n');
    }
    read_head(&mut text.as_bytes()).unwrap_or_else(|e| panic!("bad header dump ({e}):\n{dump}"))
}

/// A client's log as text. Lossy: aria2c's debug log holds raw bytes once it verifies
/// a download against the `Digest` the server sent.
fn read_text(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    String::from_utf8_lossy(&bytes).into_owned()
}

fn assert_same_file(downloaded: &Path, expected: &[u8], what: &str) {
    let got = std::fs::metadata(downloaded)
        .unwrap_or_else(|e| panic!("{what}: no output file {}: {e}", downloaded.display()))
        .len();
    assert_eq!(got, expected.len() as u64, "{what}: downloaded size");
    assert_eq!(
        sha256_file(downloaded),
        sha256_hex(expected),
        "{what}: SHA-256 of the download differs from the served file"
    );
}

#[test]
#[ignore = "needs curl/wget/aria2c; run by .ci/run with --include-ignored"]
fn curl_single_range_gets_exact_bytes() {
    require_tool("curl");
    let server = Server::start("curl-range");
    let data = pseudo_random(1, 300_000);
    server.dir().write("r.bin", &data);
    let out = TempDir::new("curl-range-out");
    let (body, hdr) = (out.join("body"), out.join("headers"));
    run_ok(
        Command::new("curl")
            .args(["-sS", "-f", "-r", "1000-1999", "-D"])
            .args([
                hdr.as_os_str(),
                "-o".as_ref(),
                body.as_os_str(),
                server.url("r.bin").as_ref(),
            ]),
    );
    let head = last_head(&read_text(&hdr));
    assert_eq!(head.status, 206, "{:?}", head.headers);
    assert_eq!(head.header("Content-Range"), Some("bytes 1000-1999/300000"));
    assert_eq!(head.content_length(), Some(1000));
    assert_same_file(&body, &data[1000..2000], "curl -r 1000-1999");
}

#[test]
#[ignore = "needs curl/wget/aria2c; run by .ci/run with --include-ignored"]
fn curl_two_ranges_get_multipart_byteranges() {
    require_tool("curl");
    let server = Server::start("curl-multi");
    let data = pseudo_random(2, 50_000);
    server.dir().write("m.bin", &data);
    let out = TempDir::new("curl-multi-out");
    let (body, hdr) = (out.join("body"), out.join("headers"));
    run_ok(
        Command::new("curl")
            .args(["-sS", "-f", "-r", "0-9,100-109", "-D"])
            .args([
                hdr.as_os_str(),
                "-o".as_ref(),
                body.as_os_str(),
                server.url("m.bin").as_ref(),
            ]),
    );
    let head = last_head(&read_text(&hdr));
    assert_eq!(head.status, 206, "{:?}", head.headers);
    let ct = head.header("Content-Type").expect("Content-Type");
    let boundary = ct
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap_or_else(|| panic!("Content-Type {ct:?} is not multipart/byteranges"));
    assert!(head.header("Content-Range").is_none());
    let bytes = std::fs::read(&body).unwrap();
    assert_eq!(head.content_length(), Some(bytes.len() as u64));
    let parts = parse_byteranges(&bytes, boundary.trim_matches('"'));
    let want = [(0u64, 9u64), (100, 109)];
    assert_eq!(parts.len(), want.len(), "two parts, in request order");
    for ((first, last, total, got), (a, b)) in parts.iter().zip(want) {
        assert_eq!((*first, *last, *total), (a, b, data.len() as u64));
        assert_eq!(
            sha256_hex(got),
            sha256_hex(&data[a as usize..=b as usize]),
            "part {a}-{b}"
        );
    }
}

#[test]
#[ignore = "needs curl/wget/aria2c; run by .ci/run with --include-ignored"]
fn curl_continue_finishes_a_half_written_file() {
    require_tool("curl");
    let server = Server::start("curl-resume");
    let data = pseudo_random(3, 3 * 1024 * 1024 + 12_345);
    server.dir().write("c.bin", &data);
    let out = TempDir::new("curl-resume-out");
    let half = data.len() / 2;
    let part = out.write("part", &data[..half]);
    let hdr = out.join("headers");
    run_ok(
        Command::new("curl")
            .args(["-sS", "-f", "-C", "-", "-D"])
            .args([
                hdr.as_os_str(),
                "-o".as_ref(),
                part.as_os_str(),
                server.url("c.bin").as_ref(),
            ]),
    );
    let head = last_head(&read_text(&hdr));
    assert_eq!(head.status, 206, "curl resumed with a range");
    assert_eq!(
        head.header("Content-Range").map(str::to_owned),
        Some(format!("bytes {half}-{}/{}", data.len() - 1, data.len()))
    );
    assert_same_file(&part, &data, "curl -C -");
}

#[test]
#[ignore = "needs curl/wget/aria2c; run by .ci/run with --include-ignored"]
fn wget_continue_finishes_a_partial_file() {
    require_tool("wget");
    let server = Server::start("wget");
    let data = pseudo_random(4, 2 * 1024 * 1024 + 777);
    server.dir().write("w.bin", &data);
    let out = TempDir::new("wget-out");
    let cut = data.len() * 2 / 5;
    let part = out.write("w.bin", &data[..cut]);
    // -S prints the response headers (to stderr): they show that wget resumed.
    let run = run_ok(
        Command::new("wget")
            .args(["-nv", "-S", "-c", "--tries=1"])
            .arg(server.url("w.bin"))
            .current_dir(out.path()),
    );
    let log = String::from_utf8_lossy(&run.stderr).replace("\n  ", "\n");
    let head = last_head(&log);
    assert_eq!(head.status, 206, "wget -c resumed with a range:\n{log}");
    assert_eq!(
        head.header("Content-Range").map(str::to_owned),
        Some(format!("bytes {cut}-{}/{}", data.len() - 1, data.len()))
    );
    assert_same_file(&part, &data, "wget -c");
}

#[test]
#[ignore = "needs curl/wget/aria2c; run by .ci/run with --include-ignored"]
fn aria2c_eight_connections_over_100_mib() {
    require_tool("aria2c");
    let server = Server::start("aria2-x8");
    let data = pseudo_random(5, 100 * 1024 * 1024);
    server.dir().write("big.bin", &data);
    let out = TempDir::new("aria2-x8-out");
    let log = out.join("aria2.log");
    run_ok(
        Command::new("aria2c")
            .args([
                "-q",
                "-x8",
                "-s8",
                "-k1M",
                "--allow-overwrite=true",
                "--auto-file-renaming=false",
                "--file-allocation=none",
                "--log-level=info",
            ])
            .arg(format!("--log={}", log.display()))
            .arg("-d")
            .arg(out.path())
            .args(["-o", "big.bin"])
            .arg(server.url("big.bin")),
    );
    assert_same_file(&out.join("big.bin"), &data, "aria2c -x8 -s8 -k1M");
    // Several connections really took part (each logs its own ranged request).
    let text = read_text(&log);
    let ranged = text.matches("Range: bytes=").count();
    assert!(
        ranged >= 2,
        "aria2c made {ranged} ranged requests; expected a split download"
    );
}

#[test]
#[ignore = "needs curl/wget/aria2c; run by .ci/run with --include-ignored"]
fn aria2c_continue_finishes_a_partial_file() {
    require_tool("aria2c");
    let server = Server::start("aria2-c");
    let data = pseudo_random(6, 4 * 1024 * 1024 + 4321);
    server.dir().write("a.bin", &data);
    let out = TempDir::new("aria2-c-out");
    let half = data.len() / 2;
    let part = out.write("a.bin", &data[..half]);
    let log = out.join("aria2.log");
    // No --allow-overwrite here: with it, aria2c restarts from scratch when there is no
    // control file, which is exactly the case of a file another program began.
    run_ok(
        Command::new("aria2c")
            .args([
                "-q",
                "-c",
                "--auto-file-renaming=false",
                "--file-allocation=none",
                "--log-level=debug",
            ])
            .arg(format!("--log={}", log.display()))
            .arg("-d")
            .arg(out.path())
            .args(["-o", "a.bin"])
            .arg(server.url("a.bin")),
    );
    assert_same_file(&part, &data, "aria2c -c");
    let text = read_text(&log);
    // aria2c resumes at the start of the piece holding the first missing byte (1 MiB
    // pieces by default), so the request starts at or a little before `half`.
    let starts: Vec<u64> = text
        .match_indices("Range: bytes=")
        .filter_map(|(i, m)| {
            let rest = &text[i + m.len()..];
            rest[..rest.find('-')?].parse().ok()
        })
        .collect();
    assert!(
        starts.iter().any(|&s| s > 0 && s <= half as u64),
        "aria2c -c did not resume from the partial file (kept {half} bytes); ranged \
         requests started at {starts:?}"
    );
}

#[test]
#[ignore = "needs curl/wget/aria2c; run by .ci/run with --include-ignored"]
fn curl_head_gives_exact_content_length_and_no_body() {
    require_tool("curl");
    let server = Server::start("curl-head");
    let data = pseudo_random(7, 123_457);
    server.dir().write("h.bin", &data);
    let run = run_ok(
        Command::new("curl")
            .args(["-sS", "-f", "-I"])
            .arg(server.url("h.bin")),
    );
    let head = last_head(&String::from_utf8_lossy(&run.stdout));
    assert_eq!(head.status, 200);
    assert_eq!(head.content_length(), Some(data.len() as u64));
    // The first response of a file over 64 KiB does not wait for its tag: none yet,
    // or the file's.
    let etag = etag_of(&data);
    assert!(
        head.header("ETag").is_none_or(|t| t == etag),
        "{:?}",
        head.headers
    );
    assert_eq!(head.header("Accept-Ranges"), Some("bytes"));

    // curl -I never reads a body; check on the wire that none is sent.
    let mut stream = server.connect();
    stream
        .write_all(request_bytes("HEAD", "/h.bin", &[], true).as_bytes())
        .unwrap();
    let mut reader = BufReader::new(stream);
    let head = read_head(&mut reader).unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(head.content_length(), Some(data.len() as u64));
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).unwrap();
    assert!(
        rest.is_empty(),
        "HEAD response carried {} body bytes",
        rest.len()
    );
}

/// Four requests written at once on one keep-alive connection; the four responses must
/// come back in order, each framed exactly (Content-Length; no body on the 304).
#[test]
fn pipelined_keep_alive_requests_are_answered_in_order() {
    let server = Server::start("pipeline");
    let data = pseudo_random(8, 100_000);
    server.dir().write("p.bin", &data);
    let etag = etag_of(&data);
    let len = data.len();
    let unsatisfiable = format!("bytes={}-", len + 1000);
    let mut wire = String::new();
    wire += &request_bytes("GET", "/p.bin", &[], false);
    wire += &request_bytes("GET", "/p.bin", &[("If-None-Match", &etag)], false);
    wire += &request_bytes("GET", "/p.bin", &[("Range", "bytes=100-199")], false);
    // The last one closes, so that anything sent after its response would show.
    wire += &request_bytes("GET", "/p.bin", &[("Range", &unsatisfiable)], true);

    let mut stream = server.connect();
    stream.write_all(wire.as_bytes()).unwrap();
    let mut reader = BufReader::new(stream);
    let mut next = |what: &str| {
        read_response(&mut reader, false)
            .unwrap_or_else(|e| panic!("pipelined response {what}: {e}"))
    };

    let ok = next("1 (200)");
    assert_eq!(ok.status, 200, "{:?}", ok.headers);
    assert_eq!(ok.content_length(), Some(len as u64));
    // The first response of a file over 64 KiB does not wait for its tag: none yet,
    // or the file's; the requests below need it, and wait for it.
    assert!(
        ok.header("ETag").is_none_or(|t| t == etag),
        "{:?}",
        ok.headers
    );
    assert_eq!(sha256_hex(&ok.body), sha256_hex(&data));

    let not_modified = next("2 (304)");
    assert_eq!(not_modified.status, 304, "{:?}", not_modified.headers);
    assert_eq!(not_modified.header("ETag"), Some(etag.as_str()));
    assert!(not_modified.body.is_empty());

    let partial = next("3 (206)");
    assert_eq!(partial.status, 206, "{:?}", partial.headers);
    assert_eq!(
        partial.header("Content-Range").map(str::to_owned),
        Some(format!("bytes 100-199/{len}"))
    );
    assert_eq!(partial.body, &data[100..200]);
    assert_eq!(
        partial.header("ETag"),
        Some(etag.as_str()),
        "a 206 has the tag"
    );

    let unsat = next("4 (416)");
    assert_eq!(unsat.status, 416, "{:?}", unsat.headers);
    assert_eq!(
        unsat.header("Content-Range").map(str::to_owned),
        Some(format!("bytes */{len}"))
    );
    assert!(unsat.body.is_empty());

    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).unwrap();
    assert!(
        rest.is_empty(),
        "{} stray bytes after the last response: {:?}",
        rest.len(),
        String::from_utf8_lossy(&rest[..rest.len().min(200)])
    );
}

/// `curl --compressed` against a file with a real gzip sibling (made by `gzip`): curl
/// asks for gzip, gets the `.gz` bytes with `Content-Encoding: gzip` and
/// `Vary: Accept-Encoding`, and decodes them back to the original, byte for byte.
/// Without `--compressed` it gets the identity file.
#[test]
#[ignore = "needs curl and gzip; run by .ci/run with --ignored"]
fn curl_compressed_gets_the_gzip_sibling_and_decodes_it() {
    require_tool("curl");
    require_tool("gzip");
    let server = Server::start("compressed");
    let text: Vec<u8> = (0..20_000)
        .flat_map(|i| format!("line {i} of a text that compresses well\n").into_bytes())
        .collect();
    let plain = server.dir().write("page.txt", &text);
    run_ok(Command::new("gzip").args(["-k", "-9"]).arg(&plain));
    let gz_len = std::fs::metadata(server.dir().join("page.txt.gz"))
        .unwrap()
        .len();
    assert!(gz_len < text.len() as u64 / 4);

    let out = server.dir().join("out-compressed");
    let dump = server.dir().join("dump-compressed");
    run_ok(
        Command::new("curl")
            .args(["-sS", "--compressed", "-o"])
            .arg(&out)
            .arg("-D")
            .arg(&dump)
            .arg(server.url("page.txt")),
    );
    let head = last_head(&std::fs::read_to_string(&dump).unwrap());
    assert_eq!(head.status, 200);
    assert_eq!(head.header("Content-Encoding"), Some("gzip"));
    assert_eq!(head.header("Vary"), Some("Accept-Encoding"));
    assert_eq!(
        head.content_length(),
        Some(gz_len),
        "the encoded bytes were sent"
    );
    assert_eq!(
        sha256_file(&out),
        sha256_hex(&text),
        "curl decoded the original"
    );

    let out = server.dir().join("out-identity");
    let dump = server.dir().join("dump-identity");
    run_ok(
        Command::new("curl")
            .args(["-sS", "-o"])
            .arg(&out)
            .arg("-D")
            .arg(&dump)
            .arg(server.url("page.txt")),
    );
    let head = last_head(&std::fs::read_to_string(&dump).unwrap());
    assert_eq!(head.header("Content-Encoding"), None);
    assert_eq!(sha256_file(&out), sha256_hex(&text));
}
