//! Entity tags, HTTP dates and precondition evaluation (RFC 9110 §8.8.3, §5.6.7, §13).
//! Input encoding: see `rocket_mmap::fuzzing::check_conditionals`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rocket_mmap::fuzzing::check_conditionals(data);
});
