//! Deterministic test data and its digests: pseudo-random bytes, SHA-256, the crate's
//! ETag of some content.

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

/// `len` deterministic pseudo-random bytes (SplitMix64 from `seed`): incompressible,
/// without long runs of zeros, so a substituted zero page or a misplaced range shows.
pub fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed ^ 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        out.extend_from_slice(&z.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// SHA-256 of `bytes`, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// SHA-256 of the file at `path`, lower-case hex.
pub fn sha256_file(path: &Path) -> String {
    let mut f =
        std::fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    hex(&h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The strong ETag field value the crate gives `content`.
pub fn etag_of(content: &[u8]) -> String {
    rocket_mmap::EntityTag::from_content(content).to_string()
}

/// A 16-bit PCM mono WAV: a 440 Hz tone of `seconds` at `rate` (the media the browser
/// tests seek in).
pub fn wav(rate: u32, seconds: u32) -> Vec<u8> {
    let second: Vec<u8> = (0..rate)
        .flat_map(|i| {
            let t = f64::from(i) / f64::from(rate);
            let s = (12_000.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()) as i16;
            s.to_le_bytes()
        })
        .collect();
    let data_len = second.len() as u32 * seconds;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes()); // fmt chunk size
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes()); // bytes per second
    out.extend_from_slice(&2u16.to_le_bytes()); // block align
    out.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for _ in 0..seconds {
        out.extend_from_slice(&second);
    }
    out
}
