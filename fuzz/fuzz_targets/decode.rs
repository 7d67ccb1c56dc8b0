//! Fuzzes the bytes -> image -> model input path shared by the page and the CLI (every image
//! format and DICOM): it must return an image or an error, never panic, hang or allocate
//! without bound. Crashes found are kept as regression tests in tests/fuzz_regressions.rs.
//!
//! `cargo +nightly fuzz run decode -- -max_total_time=300` (see README: Fuzzing).

#![no_main]

use libfuzzer_sys::fuzz_target;
use xray_web::ml::preprocess;

fuzz_target!(|data: &[u8]| {
    if let Ok(decoded) = preprocess::decode(data) {
        let x = preprocess::to_square_unit(&decoded.gray, 32);
        assert_eq!(x.len(), 32 * 32);
        assert!(x.iter().all(|v| (0.0..=1.0).contains(v)));
    }
});
