//! The binary with TLS, run as a user would: `--tls-cert`/`--tls-key`, `ROCKET_TLS`,
//! `[default.tls]` in `Rocket.toml` (paths relative to the file), the `https://`
//! banner, HTTP/2 by ALPN, and one clear line with exit code 2 for a missing file, a
//! file without a certificate or key, a key of another certificate; a port in use.
//!
//! Needs the `cli` feature (which includes `tls`).

mod common;
#[path = "common/tls_server.rs"]
mod tls_server;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{pseudo_random, TempDir};
use tls_server::{client, Proto, SelfSigned};

const BIN: &str = env!("CARGO_BIN_EXE_rocket-mmap");

/// Kills the child on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cmd` (with `--port 0` added by the caller) and returns it with the banner
/// line it printed.
fn start(cmd: &mut Command) -> (Running, String) {
    let mut child = cmd
        .env("ROCKET_LOG_LEVEL", "off")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let running = Running(child);
    let banner = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("a banner within 30 s (the binary's stderr is above)");
    (running, banner)
}

/// The port in a banner `… at https://127.0.0.1:PORT/`; panics unless it says https.
fn https_port(banner: &str) -> u16 {
    banner
        .split(" at https://127.0.0.1:")
        .nth(1)
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("the banner does not show an https:// URL: {banner:?}"))
}

/// A ranged GET over h2 by ALPN: 206 with the right bytes.
async fn check_h2(port: u16, data: &[u8]) {
    let r = client(Proto::H2Tls)
        .get(format!("https://127.0.0.1:{port}/f.bin"))
        .header("range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 206);
    assert_eq!(&r.bytes().await.unwrap()[..], &data[100..200]);
}

fn fixture(name: &str) -> (TempDir, Vec<u8>, TempDir, SelfSigned) {
    let www = TempDir::new(name);
    let data = pseudo_random(0xC11, 10_000);
    www.write("f.bin", &data);
    let conf = TempDir::new(&format!("{name}-conf"));
    let cert = SelfSigned::generate();
    cert.write_to(conf.path());
    (www, data, conf, cert)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_flags_serve_https_with_h2_and_an_https_banner() {
    let (www, data, conf, _) = fixture("cli-tls-flags");
    let (_server, banner) = start(
        Command::new(BIN)
            .arg(www.path())
            .args(["--port", "0", "--address", "127.0.0.1"])
            .arg("--tls-cert")
            .arg(conf.join("cert.pem"))
            .arg("--tls-key")
            .arg(conf.join("key.pem")),
    );
    check_h2(https_port(&banner), &data).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rocket_tls_environment_variable_keeps_working() {
    let (www, data, conf, _) = fixture("cli-tls-env");
    let (_server, banner) = start(
        Command::new(BIN)
            .arg(www.path())
            .args(["--port", "0", "--address", "127.0.0.1"])
            .env(
                "ROCKET_TLS",
                format!(
                    "{{certs=\"{}\",key=\"{}\"}}",
                    conf.join("cert.pem").display(),
                    conf.join("key.pem").display()
                ),
            ),
    );
    check_h2(https_port(&banner), &data).await;
}

/// `[default.tls]` with paths relative to the `Rocket.toml` (Rocket resolves them
/// against the file's directory), the binary started from another directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rocket_toml_default_tls_keeps_working() {
    let (www, data, conf, _) = fixture("cli-tls-toml");
    conf.write(
        "Rocket.toml",
        b"[default]\naddress = \"127.0.0.1\"\nport = 0\n\n[default.tls]\ncerts = \"cert.pem\"\nkey = \"key.pem\"\n",
    );
    let (_server, banner) = start(
        Command::new(BIN)
            .arg(www.path())
            .current_dir(www.path())
            .env("ROCKET_CONFIG", conf.join("Rocket.toml")),
    );
    check_h2(https_port(&banner), &data).await;
}

/// Runs the binary to its end (it must fail before listening).
fn fails(args: &[&std::ffi::OsStr], port: u16) -> (Output, String) {
    let out = Command::new(BIN)
        .args(args)
        .args(["--port", &port.to_string(), "--address", "127.0.0.1"])
        .env("ROCKET_LOG_LEVEL", "off")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).trim_end().to_owned();
    (out, err)
}

fn os(p: &Path) -> &std::ffi::OsStr {
    p.as_os_str()
}

#[test]
fn tls_mistakes_are_one_clear_line_and_exit_code_2() {
    let (www, _, conf, _) = fixture("cli-tls-errors");
    let other = SelfSigned::generate();
    conf.write("other-key.pem", other.key_pem.as_bytes());
    conf.write("garbage.pem", b"not PEM at all\n");
    let (cert, key) = (conf.join("cert.pem"), conf.join("key.pem"));
    let missing = conf.join("missing.pem");
    let other_key = conf.join("other-key.pem");
    let garbage = conf.join("garbage.pem");
    let dir = os(www.path());
    let flag_cert = std::ffi::OsStr::new("--tls-cert");
    let flag_key = std::ffi::OsStr::new("--tls-key");
    let cases: [(&str, [&std::ffi::OsStr; 5], &Path, &str); 5] = [
        (
            "missing certificate",
            [dir, flag_cert, os(&missing), flag_key, os(&key)],
            &missing,
            "No such file",
        ),
        (
            "missing key",
            [dir, flag_cert, os(&cert), flag_key, os(&missing)],
            &missing,
            "No such file",
        ),
        (
            "key of another certificate",
            [dir, flag_cert, os(&cert), flag_key, os(&other_key)],
            &other_key,
            "does not match the certificate",
        ),
        (
            "no certificate in the file",
            [dir, flag_cert, os(&garbage), flag_key, os(&key)],
            &garbage,
            "no PEM certificate",
        ),
        (
            "no key in the file",
            [dir, flag_cert, os(&cert), flag_key, os(&cert)],
            &cert,
            "bad TLS private key file",
        ),
    ];
    // A port that is free: these must fail before listening, whatever the port.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for (what, args, names, says) in cases {
        let (out, err) = fails(&args, port);
        eprintln!("{what}: {err}");
        assert_eq!(out.status.code(), Some(2), "{what}: exit code; {err}");
        assert_eq!(err.lines().count(), 1, "{what}: one line: {err}");
        assert!(err.starts_with("error: "), "{what}: {err}");
        assert!(
            err.contains(&names.display().to_string()),
            "{what}: names {}: {err}",
            names.display()
        );
        assert!(err.contains(says), "{what}: says {says:?}: {err}");
    }

    // --tls-cert without --tls-key: a usage error from the argument parser.
    let out = Command::new(BIN)
        .arg(www.path())
        .arg("--tls-cert")
        .arg(&cert)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tls-key"));
}

#[test]
fn tls_on_a_port_in_use_is_a_clear_error() {
    let (www, _, conf, _) = fixture("cli-tls-busy");
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let (out, err) = fails(
        &[
            os(www.path()),
            std::ffi::OsStr::new("--tls-cert"),
            os(&conf.join("cert.pem")),
            std::ffi::OsStr::new("--tls-key"),
            os(&conf.join("key.pem")),
        ],
        port,
    );
    assert!(!out.status.success());
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{port}"))
            && err.contains("already in use"),
        "{err}"
    );
}
