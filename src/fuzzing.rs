//! Invariant checks shared by the cargo-fuzz targets and the corpus replay test.
//! Not part of the public API.
