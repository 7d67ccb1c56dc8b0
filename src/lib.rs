//! xray-web: pneumonia vs normal on chest X-rays, entirely in the browser.
//!
//! - [`ml`]: the model, preprocessing, weights, metrics and training step (native and wasm).
//! - `web` (wasm only): the Leptos single-page app.
//! - `cli` (native only): the `xray` command-line tool (predict, eval, train).

pub mod ml;

#[cfg(not(target_arch = "wasm32"))]
pub mod cli;

#[cfg(target_arch = "wasm32")]
pub mod web;
