//! The binary lists directories by default, and `--no-browse` turns it off.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_rocket-mmap");

/// Kills the child on drop, so a failing test leaves no server behind.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// Starts the binary on `dir` with `args`; returns it, its port, and the answer to
/// `GET path`.
fn serve_and_get(dir: &std::path::Path, args: &[&str], path: &str) -> (Running, u16, String) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = Running(
        Command::new(BIN)
            .arg(dir)
            .args(["--port", &port.to_string(), "--address", "127.0.0.1"])
            .args(args)
            .env("ROCKET_LOG_LEVEL", "off")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(r) = get(port, path) {
            return (server, port, r);
        }
        assert!(Instant::now() < deadline, "server did not start on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_binary_lists_directories_unless_told_not_to() {
    let dir = std::env::temp_dir().join(format!("rocket-mmap-cli-browse-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("hello.txt"), b"hello").unwrap();
    std::fs::write(dir.join(".secret"), b"hidden").unwrap();

    let (server, _, page) = serve_and_get(&dir, &[], "/");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("<title>Index of /</title>"), "{page}");
    assert!(page.contains("<a href=\"sub/\">sub/</a>"));
    assert!(page.contains("<a href=\"hello.txt\">hello.txt</a>"));
    assert!(!page.contains(".secret"));
    drop(server);

    let (_server, port, page) = serve_and_get(&dir, &["--no-browse"], "/");
    assert!(page.starts_with("HTTP/1.1 404"), "{page}");
    let file = get(port, "/hello.txt").unwrap();
    assert!(
        file.starts_with("HTTP/1.1 200") && file.ends_with("hello"),
        "{file}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
