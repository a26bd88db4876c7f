//! Replays the committed fuzz corpus (`fuzz/corpus/*`) through the same invariant
//! checks the cargo-fuzz targets run, so every seed and every reproducer added there
//! is a regression test of the normal test suite.

use std::fs;
use std::path::{Path, PathBuf};

/// The fuzz targets' invariants (fuzz/src/lib.rs), compiled only for the tests.
#[path = "../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod fuzzing;

use fuzzing::{check_conditionals, check_path, check_range, check_want_digest};

/// Fewer files than this means the corpus went missing, not that it passed.
const MIN_FILES: usize = 10;

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join("corpus")
        .join(target);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(
        files.len() >= MIN_FILES,
        "{} holds {} files, expected at least {MIN_FILES}",
        dir.display(),
        files.len()
    );
    files
}

fn replay(target: &str, check: fn(&[u8])) {
    let files = corpus(target);
    let mut failed = Vec::new();
    for path in &files {
        let data = fs::read(path).expect("readable corpus file");
        if std::panic::catch_unwind(|| check(&data)).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} {target} inputs broke an invariant:\n{}",
        failed.len(),
        files.len(),
        failed.join("\n")
    );
}

#[test]
fn range_corpus_holds_every_invariant() {
    replay("range", check_range);
}

#[test]
fn conditionals_corpus_holds_every_invariant() {
    replay("conditionals", check_conditionals);
}

#[test]
fn path_corpus_holds_every_invariant() {
    replay("path", check_path);
}

#[test]
fn want_digest_corpus_holds_every_invariant() {
    replay("want_digest", check_want_digest);
}
