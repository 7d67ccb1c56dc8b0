//! Shared by the tests and the benchmarks:
//! - `shipped`: the model card, the weights and the gallery's X-rays (both targets);
//! - `site`: the built site on a local server and the shared headless Chromium (native);
//! - `page`: page objects, the page as a person uses it, so tests hold no selectors (native);
//! - `fuzz_input`: how the fuzz targets cut their inputs into parts (`fuzz/fuzz_targets/common.rs`).

#![allow(dead_code, unused_imports)]

pub mod shipped;

#[path = "../../fuzz/fuzz_targets/common.rs"]
pub mod fuzz_input;

#[cfg(not(target_arch = "wasm32"))]
pub mod page;
#[cfg(not(target_arch = "wasm32"))]
pub mod site;

#[cfg(not(target_arch = "wasm32"))]
pub use site::*;
