//! Request paths to file paths: `rocket_mmap::path::sanitize` after percent-decoding.
//! Input encoding: see `rocket_mmap::fuzzing::check_path`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rocket_mmap::fuzzing::check_path(data);
});
