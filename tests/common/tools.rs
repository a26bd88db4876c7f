//! External tools: requiring a program (tests that need one fail, never pass, without
//! it), running a command that must succeed, and reading what a log file gained.

use std::io::{self, Read};
use std::path::Path;
use std::process::{Command, Output};

/// Panics with a clear message unless `tool` runs (`tool --version`): tests that need a
/// real client must fail, never pass, when it is missing.
pub fn require_tool(tool: &str) {
    match Command::new(tool).arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "required tool `{tool}` does not work (`{tool} --version` exited with {}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!(
            "required tool `{tool}` is not available ({e}); install it (.ci/run installs \
             curl, wget and aria2) — this test must not pass without it"
        ),
    }
}

/// Runs `cmd`, panicking with its output unless it succeeds.
pub fn run_ok(cmd: &mut Command) -> Output {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    assert!(
        out.status.success(),
        "{shown} failed with {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Panics with a clear message unless `tool args…` runs and succeeds (for tools whose
/// version flag is not `--version`, e.g. `nginx -V`); returns its stdout and stderr.
/// `install` says how to get the tool. Tests that need it must fail, never pass, when
/// it is missing.
pub fn require_program(tool: &str, args: &[&str], install: &str) -> String {
    match Command::new(tool).args(args).output() {
        Ok(out) if out.status.success() => format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Ok(out) => panic!(
            "required tool `{tool}` does not work (`{tool} {}` exited with {}): {}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!(
            "required tool `{tool}` is not available ({e}); {install} \
             — this test must not pass without it"
        ),
    }
}

/// The text of the file at `path` from byte `from` on (empty if it does not exist), and
/// the offset of its end: for reading what a log gained during one step of a test.
pub fn read_text_from(path: &Path, from: u64) -> (String, u64) {
    use std::io::Seek;
    let Ok(mut f) = std::fs::File::open(path) else {
        return (String::new(), from);
    };
    let mut bytes = Vec::new();
    let _ = f.seek(io::SeekFrom::Start(from));
    let _ = f.read_to_end(&mut bytes);
    let end = from + bytes.len() as u64;
    (String::from_utf8_lossy(&bytes).into_owned(), end)
}
