//! Integrity digests with real clients over real sockets (`#[ignore]`d: they need
//! aria2c, curl and sha256sum; `.ci/run` runs them with `cargo test -- --ignored`).
//!
//! * aria2c (`-x4`, its default `Want-Digest`) downloads a 64 MiB file at once (no
//!   response waits for a digest), and, once the digest has been computed in the
//!   background, downloads it again, adopts our `Digest: SHA-256=…` and verifies the
//!   whole file with it; the negative control — the same server with a test-only
//!   fairing that rewrites `Digest` to a wrong value — makes aria2c fail the download,
//!   so the positive run really was a verification.
//! * curl with `Want-Repr-Digest: sha-256=1` on 200, 206, multipart 206 and HEAD gets
//!   `Repr-Digest` equal to `sha256sum` of the file, and the new one after the file
//!   changes.

mod common;

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use rocket::fairing::AdHoc;

use common::{pseudo_random, require_tool, Server, TempDir};

const MIB: usize = 1024 * 1024;

/// `sha256sum FILE`, as the base64 of the digest (the form `Repr-Digest` uses).
fn sha256sum_b64(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let hex = text.split_whitespace().next().unwrap();
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Runs aria2c on `url` into `out/f.bin`; its exit status and its log.
fn aria2c(url: &str, out: &Path) -> (std::process::ExitStatus, String) {
    let log = out.join("aria2.log");
    let o = Command::new("aria2c")
        .args(["-x4", "-s4", "--min-split-size=1M", "--max-tries=1"])
        .args(["--allow-overwrite=true", "--auto-file-renaming=false"])
        .args([
            "--summary-interval=0",
            "--console-log-level=error",
            "--log-level=info",
        ])
        .arg(format!("--log={}", log.display()))
        .arg("-d")
        .arg(out)
        .args(["-o", "f.bin", url])
        .output()
        .expect("aria2c");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    (o.status, text)
}

/// Asks for the file at `url` (one byte of it, with `want_header`) until the response
/// carries the digest field `field` — digests are computed in the background after the
/// first responses, which no digest holds up — bounded; every value seen must be `want`.
fn until_digest(url: &str, want_header: &str, field: &str, want: &str) {
    for _ in 0..500 {
        let o = Command::new("curl")
            .args(["-sS", "--fail", "-o", "/dev/null", "-D", "-", "-r", "0-0"])
            .args(["-H", want_header, url])
            .output()
            .expect("curl");
        assert!(o.status.success(), "curl {url}");
        let head = String::from_utf8_lossy(&o.stdout).to_string();
        let got = head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(field))
            .map(|(_, v)| v.trim().to_owned());
        if let Some(got) = got {
            assert_eq!(got, want, "never another version's digest");
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("{url}: no {field} after 500 requests");
}

/// aria2c downloads `f.bin` into a directory of its own, succeeds, and gets the
/// bytes of `served`; its log.
fn aria2c_downloads_it(server: &Server, served: &Path, out: &str) -> String {
    let out = TempDir::new(out);
    let (status, log) = aria2c(&server.url("f.bin"), out.path());
    assert!(status.success(), "aria2c failed: {status}\n{log}");
    assert_eq!(
        sha256sum_b64(&out.join("f.bin")),
        sha256sum_b64(served),
        "the download differs"
    );
    log
}

const ARIA2_WANT_DIGEST: &str = "Want-Digest: SHA-512;q=1, SHA-256;q=1, SHA;q=0.1";

#[test]
#[ignore = "needs aria2c and sha256sum"]
fn aria2c_x4_verifies_the_whole_download_with_our_digest() {
    require_tool("aria2c");
    require_tool("sha256sum");
    let server = Server::start("digest-aria2");
    let data = pseudo_random(21, 64 * MIB);
    let served = server.dir().write("f.bin", &data);
    let want = format!("SHA-256={}", sha256sum_b64(&served));
    // The first download starts at once: no response waits for the SHA-256 of the
    // whole file. A digest it was given (if the hashes were quick) is ours and checked.
    let log = aria2c_downloads_it(&server, &served, "digest-aria2-first");
    if log.contains("Valid hash found in Digest header field") {
        assert!(log.contains("Verification finished successfully"), "{log}");
    }
    // Once computed, every response carries it: the next download verifies with it.
    until_digest(&server.url("f.bin"), ARIA2_WANT_DIGEST, "digest", &want);
    let log = aria2c_downloads_it(&server, &served, "digest-aria2-out");
    assert!(
        log.to_ascii_lowercase()
            .contains(&format!("digest: {}", want.to_ascii_lowercase())),
        "aria2 was not answered with {want}:\n{log}"
    );
    assert!(
        log.contains("Valid hash found in Digest header field"),
        "{log}"
    );
    assert!(
        log.contains("Verification finished successfully"),
        "aria2 did not verify the download:\n{log}"
    );
    // Several connections really were used (ranges), each answered with the digest.
    let ranged = log.matches("Range: bytes=").count();
    assert!(ranged >= 2, "aria2 used {ranged} ranged requests:\n{log}");
}

#[test]
#[ignore = "needs aria2c"]
fn aria2c_fails_a_download_whose_digest_is_wrong_negative_control() {
    require_tool("aria2c");
    // The same server, with a test-only fairing that replaces our Digest by the
    // digest of other bytes: aria2 must reject the download.
    let wrong = {
        use sha2::Digest as _;
        let other = sha2::Sha256::digest(b"not the file");
        format!(
            "SHA-256={}",
            base64::engine::general_purpose::STANDARD.encode(other)
        )
    };
    let wrong_value = wrong.clone();
    let dir = TempDir::new("digest-aria2-wrong");
    let data = pseudo_random(22, 64 * MIB);
    dir.write("f.bin", &data);
    let server = Server::start_in_with(dir, move |rocket| {
        rocket.attach(AdHoc::on_response(
            "wrong digest (test only)",
            move |_, res| {
                let wrong = wrong.clone();
                Box::pin(async move {
                    if res.headers().contains("Digest") {
                        res.set_raw_header("Digest", wrong);
                    }
                })
            },
        ))
    });
    // The digest computed (in the background, after the first responses).
    until_digest(
        &server.url("f.bin"),
        ARIA2_WANT_DIGEST,
        "digest",
        &wrong_value,
    );
    let out = TempDir::new("digest-aria2-wrong-out");
    let (status, log) = aria2c(&server.url("f.bin"), out.path());
    assert!(
        !status.success(),
        "aria2c accepted a download whose digest was wrong:\n{log}"
    );
    assert!(
        log.contains("Valid hash found in Digest header field"),
        "aria2 did not adopt the (wrong) digest, so this control shows nothing:\n{log}"
    );
    assert!(!log.contains("Verification finished successfully"), "{log}");
}

/// `curl -sS -D - URL ARGS…`: the status line, the response header lines (lower-case
/// names) and the body.
fn curl(url: &str, args: &[&str]) -> (String, Vec<(String, String)>, Vec<u8>) {
    let o = Command::new("curl")
        .args([
            "-sS",
            "--fail",
            "-D",
            "/dev/stderr",
            "-H",
            "Want-Repr-Digest: sha-256=1",
        ])
        .args(args)
        .arg(url)
        .output()
        .expect("curl");
    assert!(
        o.status.success(),
        "curl {url} {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let head = String::from_utf8_lossy(&o.stderr);
    let status = head.lines().next().unwrap_or_default().trim().to_owned();
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, o.stdout)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[test]
#[ignore = "needs curl and sha256sum"]
fn curl_gets_repr_digest_equal_to_sha256sum_on_200_206_multipart_and_head() {
    require_tool("curl");
    require_tool("sha256sum");
    let server = Server::start("digest-curl");
    let data = pseudo_random(23, 3 * MIB);
    let path = server.dir().write("f.bin", &data);
    let want = format!("sha-256=:{}:", sha256sum_b64(&path));
    let url = server.url("f.bin");
    // Computed in the background after the first responses (none waits for it).
    until_digest(&url, "Want-Repr-Digest: sha-256=1", "repr-digest", &want);
    for (name, args, status) in [
        ("200", vec![], "200"),
        ("206", vec!["-r", "1000-1999"], "206"),
        ("multipart 206", vec!["-r", "0-99,2000000-2000099"], "206"),
        ("HEAD", vec!["-I"], "200"),
    ] {
        let (status_line, headers, body) = curl(&url, &args);
        assert!(
            status_line.starts_with("HTTP/") && status_line.contains(&format!(" {status}")),
            "{name}: {status_line}"
        );
        assert_eq!(
            header(&headers, "repr-digest"),
            Some(want.as_str()),
            "{name}"
        );
        match name {
            "200" => assert_eq!(body, data),
            "206" => assert_eq!(body, &data[1000..2000]),
            "multipart 206" => assert!(header(&headers, "content-type")
                .unwrap()
                .starts_with("multipart/byteranges")),
            // curl -I prints the head as its output; the length is the file's.
            _ => assert_eq!(
                header(&headers, "content-length"),
                Some(data.len().to_string().as_str())
            ),
        }
    }

    // The file changes (replaced by rename, as deployments do): the new digest.
    let new = pseudo_random(24, 2 * MIB);
    let tmp = server.dir().write("f.tmp", &new);
    std::fs::rename(&tmp, &path).unwrap();
    let (_, headers, body) = curl(&url, &[]);
    assert_eq!(body, new);
    let new_want = format!("sha-256=:{}:", sha256sum_b64(&path));
    // None yet, or the new version's; never the old one.
    let got = header(&headers, "repr-digest");
    assert!(got.is_none() || got == Some(new_want.as_str()), "{got:?}");
    until_digest(
        &url,
        "Want-Repr-Digest: sha-256=1",
        "repr-digest",
        &new_want,
    );
}
