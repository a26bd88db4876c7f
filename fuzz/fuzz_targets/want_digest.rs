//! `Want-Repr-Digest` (RFC 9530 §4) and `Want-Digest` (RFC 3230 §4.3.1): parsing, the
//! choice of an algorithm, and the `Repr-Digest` / `Digest` field values.
//! Input encoding: see `fuzz_invariants::check_want_digest`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fuzz_invariants::check_want_digest(data);
});
