//! Entity tags, HTTP dates and precondition evaluation (RFC 9110 §8.8.3, §5.6.7, §13).
//! Input encoding: see `fuzz_invariants::check_conditionals`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fuzz_invariants::check_conditionals(data);
});
