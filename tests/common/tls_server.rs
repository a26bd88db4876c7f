//! TLS and HTTP/2 harness, shared by the tests that need it (`protocols`,
//! `protocols_clients`, `tls_file_changes`), included with
//! `#[path = "common/tls_server.rs"] mod tls_server;`:
//!
//! * [`SelfSigned`]: a certificate for `localhost` and `127.0.0.1` and its key, made by
//!   `rcgen` for each test run (nothing committed, nothing that expires);
//! * [`Served`]: `rocket_mmap::FileServer` over a directory in its own thread and
//!   runtime, on an ephemeral loopback port, over plain TCP (HTTP/1.1 and h2c) or TLS
//!   (h2 and HTTP/1.1 by ALPN);
//! * [`Proto`] and [`client`]: a `reqwest` client pinned to one protocol.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rocket::config::TlsConfig;
use rocket::Shutdown;

/// A self-signed certificate (ECDSA P-256) for `localhost` and `127.0.0.1`, in PEM.
pub struct SelfSigned {
    /// The certificate.
    pub cert_pem: String,
    /// Its private key (PKCS#8).
    pub key_pem: String,
}

impl SelfSigned {
    /// A fresh certificate and key.
    pub fn generate() -> SelfSigned {
        let c = rcgen::generate_simple_self_signed(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
        ])
        .expect("rcgen: a self-signed certificate");
        SelfSigned {
            cert_pem: c.cert.pem(),
            key_pem: c.signing_key.serialize_pem(),
        }
    }

    /// Writes `cert.pem` and `key.pem` into `dir`; their paths.
    pub fn write_to(&self, dir: &Path) -> (PathBuf, PathBuf) {
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, &self.cert_pem).expect("write cert.pem");
        std::fs::write(&key, &self.key_pem).expect("write key.pem");
        (cert, key)
    }

    /// Rocket's TLS configuration for this pair.
    pub fn rocket_config(&self) -> TlsConfig {
        TlsConfig::from_bytes(self.cert_pem.as_bytes(), self.key_pem.as_bytes())
    }
}

/// A Rocket server with `Mmap::fairing()` and `FileServer::from(root)` at `/`, plain or
/// TLS, in its own thread and tokio runtime; shut down on drop.
pub struct Served {
    port: u16,
    tls: bool,
    shutdown: Option<Shutdown>,
    done: mpsc::Receiver<Result<(), String>>,
    thread: Option<JoinHandle<()>>,
}

impl Served {
    /// Serves `root` over plain TCP (HTTP/1.1 and h2c), or over TLS with `tls`.
    pub fn start(root: &Path, tls: Option<&SelfSigned>) -> Served {
        Served::start_with(root, tls, |r| r)
    }

    /// Like [`Served::start`], with `customize` applied to the Rocket instance before
    /// launch (a recording fairing, another `mmap` setting).
    pub fn start_with<F>(root: &Path, tls: Option<&SelfSigned>, customize: F) -> Served
    where
        F: FnOnce(rocket::Rocket<rocket::Build>) -> rocket::Rocket<rocket::Build> + Send + 'static,
    {
        let mut config = crate::common::test_config();
        config.tls = tls.map(SelfSigned::rocket_config);
        assert_eq!(
            rocket_mmap::setup::check_tls(&config).expect("a valid test certificate"),
            tls.is_some()
        );
        let crate::common::Launched {
            port,
            shutdown,
            done: done_rx,
            thread,
        } = crate::common::launch_in_thread(
            config,
            root.to_path_buf(),
            "rocket-tls-test-server",
            customize,
        );
        assert_ne!(port, 0, "Rocket reported port 0 at liftoff");
        let served = Served {
            port,
            tls: tls.is_some(),
            shutdown: Some(shutdown),
            done: done_rx,
            thread: Some(thread),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&served.addr(), Duration::from_secs(1)).is_err() {
            assert!(Instant::now() < deadline, "port {port} never accepted");
            std::thread::sleep(Duration::from_millis(10));
        }
        served
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// `https://127.0.0.1:port/path` with TLS, `http://…` without (`path` starts with
    /// `/`).
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(s) = self.shutdown.take() {
            s.notify();
            if self.done.recv_timeout(Duration::from_secs(15)).is_ok() {
                if let Some(t) = self.thread.take() {
                    let _ = t.join();
                }
            }
        }
    }
}

/// The protocols every response rule is checked over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// HTTP/1.1 over plain TCP.
    Http1,
    /// HTTP/2 over plain TCP with prior knowledge (h2c).
    H2c,
    /// HTTP/2 over TLS, negotiated by ALPN.
    H2Tls,
    /// HTTP/1.1 over TLS (a client that offers only `http/1.1` by ALPN).
    Http1Tls,
}

impl Proto {
    /// All four.
    pub const ALL: [Proto; 4] = [Proto::Http1, Proto::H2c, Proto::H2Tls, Proto::Http1Tls];

    /// Whether it runs over TLS.
    pub fn tls(self) -> bool {
        matches!(self, Proto::H2Tls | Proto::Http1Tls)
    }

    /// The HTTP version the response must have come with.
    pub fn version(self) -> reqwest::Version {
        match self {
            Proto::Http1 | Proto::Http1Tls => reqwest::Version::HTTP_11,
            Proto::H2c | Proto::H2Tls => reqwest::Version::HTTP_2,
        }
    }
}

/// A client that speaks only `proto`: no redirects followed, no proxy, no automatic
/// decompression (reqwest is built without its `gzip` feature), a certificate made
/// by the test accepted, a 30 s limit per request.
pub fn client(proto: Proto) -> reqwest::Client {
    client_builder(proto).build().expect("reqwest client")
}

/// The builder of [`client`], for tests that change flow-control windows and such.
pub fn client_builder(proto: Proto) -> reqwest::ClientBuilder {
    let b = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .danger_accept_invalid_certs(true);
    match proto {
        Proto::Http1 | Proto::Http1Tls => b.http1_only(),
        Proto::H2c => b.http2_prior_knowledge(),
        // ALPN offers h2 first; the test checks that h2 was chosen.
        Proto::H2Tls => b,
    }
}

/// A plain and a TLS server over one directory: every [`Proto`] reaches the same files.
pub struct Pair {
    /// HTTP/1.1 and h2c.
    pub plain: Served,
    /// h2 and HTTP/1.1 over TLS.
    pub tls: Served,
}

impl Pair {
    /// Starts both over `root` with a fresh certificate.
    pub fn start(root: &Path) -> Pair {
        let cert = SelfSigned::generate();
        Pair {
            plain: Served::start(root, None),
            tls: Served::start(root, Some(&cert)),
        }
    }

    /// The server `proto` talks to.
    pub fn server(&self, proto: Proto) -> &Served {
        if proto.tls() {
            &self.tls
        } else {
            &self.plain
        }
    }

    /// The URL of `path` for `proto`.
    pub fn url(&self, proto: Proto, path: &str) -> String {
        self.server(proto).url(path)
    }
}
