//! `Range` parsing and planning (RFC 9110 §14) and the multipart/byteranges layout.
//! Input encoding: see `rocket_mmap::fuzzing::check_range`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rocket_mmap::fuzzing::check_range(data);
});
