//! `Range` parsing and planning (RFC 9110 §14) and the multipart/byteranges layout.
//! Input encoding: see `fuzz_invariants::check_range`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fuzz_invariants::check_range(data);
});
