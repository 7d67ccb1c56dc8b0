//! How the multi-part targets cut one fuzzer input into parts: at every `\0PART\0`.
//! A separator is easier for the fuzzer to keep intact than a length prefix, and the seeds
//! (written by `cargo test --release --test fuzz_seeds -- --ignored`) stay readable. The tests
//! use this file too (`tests/support/mod.rs`), so that seeds and findings are cut the same way.

/// Separates the parts of one input.
pub const PART: &[u8] = b"\0PART\0";
/// Separates the messages of one `protocol` input.
#[allow(dead_code)]
pub const MESSAGE: &[u8] = b"\0MSG\0";

/// `data` cut at every `sep`.
pub fn split<'a>(data: &'a [u8], sep: &[u8]) -> Vec<&'a [u8]> {
    let mut parts = Vec::new();
    let mut rest = data;
    while let Some(at) = rest.windows(sep.len()).position(|w| w == sep) {
        parts.push(&rest[..at]);
        rest = &rest[at + sep.len()..];
    }
    parts.push(rest);
    parts
}

/// The validation images a `protocol` input's reports are applied to: four, alternating
/// NORMAL and PNEUMONIA.
#[allow(dead_code)]
pub fn val_meta() -> Vec<xray_web::web::training::view::ValMeta> {
    (0..4)
        .map(|i| xray_web::web::training::view::ValMeta {
            name: format!("v{i}.png"),
            thumb: String::new(),
            pneumonia: i % 2 == 1,
        })
        .collect()
}
