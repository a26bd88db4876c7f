//! A real Rocket server with [`rocket_mmap::FileServer`] mounted at `/` and
//! `Mmap::fairing()` attached, on an ephemeral loopback port in a background thread.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rocket::config::LogLevel;
use rocket::fairing::AdHoc;
use rocket::Shutdown;
use rocket_mmap::{FileServer, Mmap};

use super::http::{connect, request_at, HttpResponse};
use super::tempdir::TempDir;

/// How long the server may take to start or to stop.
const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// The file the harness fetches to prove the reported port is really our server.
const PROBE_NAME: &str = "harness-probe.txt";

/// A Rocket server serving a temporary directory with `rocket_mmap::FileServer` mounted
/// at `/` and `Mmap::fairing()` attached, on `127.0.0.1:<ephemeral port>`, in its own
/// thread and tokio runtime. Shut down (Rocket's `Shutdown` handle) by [`Server::stop`]
/// or on drop.
pub struct Server {
    port: u16,
    dir: TempDir,
    shutdown: Option<Shutdown>,
    done: mpsc::Receiver<Result<(), String>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Starts a server over a new empty temporary directory (named after `name`). Files
    /// may be added to [`Server::dir`] before or after the start.
    pub fn start(name: &str) -> Server {
        Server::start_in(TempDir::new(name))
    }

    /// Starts a server over `dir`, waits until it accepts connections on the port
    /// Rocket reports at liftoff, and checks by a request that the port is really ours.
    pub fn start_in(dir: TempDir) -> Server {
        Server::start_in_with(dir, |rocket| rocket)
    }

    /// Like [`Server::start_in`], with `customize` applied to the Rocket instance
    /// (already carrying `Mmap::fairing()`, the harness's liftoff fairing and the file
    /// server at `/`) before launch: attach a recording fairing, mount more routes.
    pub fn start_in_with<F>(dir: TempDir, customize: F) -> Server
    where
        F: FnOnce(rocket::Rocket<rocket::Build>) -> rocket::Rocket<rocket::Build> + Send + 'static,
    {
        let token = format!(
            "probe {} {:?} {}",
            std::process::id(),
            Instant::now(),
            dir.path().display()
        );
        dir.write(PROBE_NAME, token.as_bytes());

        let Launched {
            port,
            shutdown,
            done: done_rx,
            thread,
        } = launch_in_thread(
            test_config(),
            dir.path().to_path_buf(),
            "rocket-test-server",
            customize,
        );
        assert_ne!(
            port, 0,
            "Rocket reported port 0 at liftoff: not the bound port"
        );
        let server = Server {
            port,
            dir,
            shutdown: Some(shutdown),
            done: done_rx,
            thread: Some(thread),
        };
        server.wait_until_accepting();
        let probe = server.get(&format!("/{PROBE_NAME}"));
        assert_eq!(
            (probe.status, probe.body.as_slice()),
            (200, token.as_bytes()),
            "port {port} reported by Rocket at liftoff does not answer as our server"
        );
        server
    }

    fn wait_until_accepting(&self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match TcpStream::connect_timeout(&self.addr(), Duration::from_secs(1)) {
                Ok(_) => return,
                Err(e) if Instant::now() > deadline => {
                    panic!("the test server on port {} never accepted: {e}", self.port)
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The served directory.
    pub fn dir(&self) -> &TempDir {
        &self.dir
    }

    /// The URL of a file below the root (`name` without leading slash).
    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}", self.port)
    }

    /// A new connection to the server, with read and write timeouts.
    pub fn connect(&self) -> TcpStream {
        connect(self.addr())
    }

    /// `GET path` on a new connection (`Connection: close`).
    pub fn get(&self, path: &str) -> HttpResponse {
        self.request("GET", path, &[])
    }

    /// One request on a new connection (`Connection: close`), the response read in full.
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
        request_at(self.addr(), method, path, headers)
    }

    /// Shuts the server down and waits for its thread (panics if it does not stop).
    pub fn stop(mut self) {
        self.stop_inner(true);
    }

    fn stop_inner(&mut self, strict: bool) {
        let Some(shutdown) = self.shutdown.take() else {
            return;
        };
        shutdown.notify();
        match self.done.recv_timeout(STOP_TIMEOUT) {
            // An unclean shutdown (e.g. a connection a test left open) is not a failure
            // of the crate under test.
            Ok(Ok(())) | Ok(Err(_)) => {
                if let Some(t) = self.thread.take() {
                    let _ = t.join();
                }
            }
            Err(e) => {
                let msg = format!("the test server did not stop within {STOP_TIMEOUT:?}: {e}");
                if strict {
                    panic!("{msg}");
                }
                eprintln!("{msg}");
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Never panic here: drop may run while a failed test unwinds.
        self.stop_inner(false);
    }
}

/// A Rocket configuration for a test server: loopback, an ephemeral port, no log, no
/// colours, no signal handling, and an immediate shutdown.
pub fn test_config() -> rocket::Config {
    let mut config = rocket::Config::debug_default();
    config.address = Ipv4Addr::LOCALHOST.into();
    config.port = 0;
    config.log_level = LogLevel::Off;
    config.cli_colors = false;
    config.shutdown.ctrlc = false;
    #[cfg(unix)]
    config.shutdown.signals.clear();
    config.shutdown.grace = 0;
    config.shutdown.mercy = 0;
    config
}

/// A server launched by [`launch_in_thread`]: the port Rocket reported at liftoff, its
/// shutdown handle, the launch's result (when it ends) and its thread.
pub struct Launched {
    pub port: u16,
    pub shutdown: Shutdown,
    pub done: mpsc::Receiver<Result<(), String>>,
    pub thread: JoinHandle<()>,
}

/// Launches Rocket on `config` with `Mmap::fairing()` and `FileServer::from(root)` at
/// `/` (then `customize`), in a thread of its own (`thread_name`) with its own tokio
/// runtime, and waits for liftoff; panics with the launch error if none comes within
/// the start timeout.
pub fn launch_in_thread<F>(
    config: rocket::Config,
    root: std::path::PathBuf,
    thread_name: &str,
    customize: F,
) -> Launched
where
    F: FnOnce(rocket::Rocket<rocket::Build>) -> rocket::Rocket<rocket::Build> + Send + 'static,
{
    let (ready_tx, ready_rx) = mpsc::channel::<(u16, Shutdown)>();
    let (done_tx, done_rx) = mpsc::channel::<Result<(), String>>();
    let thread = std::thread::Builder::new()
        .name(thread_name.into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(4)
                .thread_name("rocket-worker-thread")
                .enable_all()
                .build()
                .expect("tokio runtime for the test server");
            let result = rt.block_on(async move {
                let liftoff = AdHoc::on_liftoff("test harness: report port", move |r| {
                    let tx = ready_tx.clone();
                    Box::pin(async move {
                        let _ = tx.send((r.config().port, r.shutdown()));
                    })
                });
                let rocket = rocket::custom(config)
                    .attach(Mmap::fairing())
                    .attach(liftoff)
                    .mount("/", FileServer::from(&root));
                customize(rocket)
                    .launch()
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("{e}"))
            });
            rt.shutdown_timeout(Duration::from_secs(2));
            let _ = done_tx.send(result);
        })
        .expect("spawn the server thread");
    let (port, shutdown) = match ready_rx.recv_timeout(START_TIMEOUT) {
        Ok(v) => v,
        Err(e) => {
            let why = done_rx
                .recv_timeout(Duration::from_secs(1))
                .map(|r| format!("{r:?}"))
                .unwrap_or_else(|_| "no result".into());
            panic!("the test server did not lift off ({e}): {why}");
        }
    };
    Launched {
        port,
        shutdown,
        done: done_rx,
        thread,
    }
}
