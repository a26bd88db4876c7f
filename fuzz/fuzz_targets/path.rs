//! Request paths to file paths: `rocket_mmap::semantics::path::sanitize` after percent-decoding.
//! Input encoding: see `fuzz_invariants::check_path`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fuzz_invariants::check_path(data);
});
