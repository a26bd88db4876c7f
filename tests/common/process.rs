//! External processes started by a test (nginx, browsers), killed with their whole
//! process group on drop, and free loopback ports for their configuration.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

/// A loopback port that was free a moment ago (bound to port 0, then released), for
/// external servers that need a port in their configuration. Another process may take
/// it in between: callers retry on "address in use".
pub fn free_port() -> u16 {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// An external process started by a test, in its own process group, killed (the whole
/// group: a browser's helpers too) and reaped on drop, so a failing test leaves
/// nothing running.
pub struct Spawned {
    name: String,
    child: std::process::Child,
}

impl Spawned {
    /// Spawns `cmd` (stdin closed) as the leader of a new process group.
    pub fn spawn(name: &str, cmd: &mut Command) -> Spawned {
        use std::os::unix::process::CommandExt;
        let shown = format!("{cmd:?}");
        // If the test process dies without unwinding (killed on a CI timeout), Linux
        // kills the child too, so nothing outlives the test.
        #[cfg(target_os = "linux")]
        // SAFETY: between fork and exec only prctl(2) runs, which is async-signal-safe
        // and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .stdin(std::process::Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({shown}): {e}"));
        Spawned {
            name: name.to_owned(),
            child,
        }
    }

    /// The process id (also the process group id).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if the process has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .try_wait()
            .unwrap_or_else(|e| panic!("wait for {}: {e}", self.name))
    }

    /// Waits up to `limit` for the process to exit; `None` if it is still running.
    pub fn wait_timeout(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `addr` accepts connections; `Err` (with why) if the process exits
    /// first or `limit` passes.
    pub fn wait_accepting(&mut self, addr: SocketAddr, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.exited() {
                return Err(format!(
                    "{} exited with {status} before listening",
                    self.name
                ));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} did not listen on {addr} within {limit:?}",
                    self.name
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process group and reaps the leader.
    pub fn kill(&mut self) {
        // The group id is the leader's pid; while any member lives it cannot be reused,
        // so this reaches only what this test started (or nothing: ESRCH).
        let pgid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) with a negative pid signals a process group; no memory involved.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.kill();
    }
}
