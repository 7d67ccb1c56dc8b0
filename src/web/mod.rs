//! The browser app: drop an X-ray, get a prediction computed in this tab; train a model in a
//! worker and watch it learn. See `docs/architecture.md` for the map.
//!
//! Compiled natively too, for what holds no browser type (the backend names, the errors, the
//! worker protocol's messages, the training panels' reducer, the results' triage and the
//! viewer's model), so that their tests run with `cargo test`; everything else is wasm only.
//!
//! - [`app`]: the page's state, the queue of images, the `App` component and [`start`].
//! - [`inference`]: the shipped model and the page's side of the inference worker;
//!   [`infer_worker`]: the worker, which reads, decodes and classifies the files with
//!   [`engine`] (a classifier per backend); [`browser`]: files, fetches, object URLs, timers.
//! - Panels: `dropzone`, `gallery`, `results` (its order and filter in [`triage`]),
//!   `viewer` (a result at full resolution; its state and pixels in [`viewing`]),
//!   `model_panel`, `training_panel`, `chart`.
//! - [`training`]: demo training (data, the run's view and its reducer, the worker's lifecycle,
//!   the tuned model); [`train_worker`]: the training worker's entry point; [`protocol`]: the
//!   messages between the page and its workers.

pub mod backend;
pub mod error;
pub mod protocol;
pub mod training;
pub mod triage;
pub mod viewing;

#[cfg(target_arch = "wasm32")]
pub mod app;
#[cfg(target_arch = "wasm32")]
pub mod browser;
#[cfg(target_arch = "wasm32")]
mod chart;
#[cfg(target_arch = "wasm32")]
mod dropzone;
#[cfg(target_arch = "wasm32")]
pub mod engine;
#[cfg(target_arch = "wasm32")]
mod gallery;
#[cfg(target_arch = "wasm32")]
pub mod infer_worker;
#[cfg(target_arch = "wasm32")]
pub mod inference;
#[cfg(target_arch = "wasm32")]
mod model_panel;
#[cfg(target_arch = "wasm32")]
pub mod results;
#[cfg(target_arch = "wasm32")]
pub mod train_worker;
#[cfg(target_arch = "wasm32")]
pub mod training_panel;
#[cfg(target_arch = "wasm32")]
pub mod viewer;

#[cfg(target_arch = "wasm32")]
pub use app::{App, AppState, ErrorRow, Input, ModelState, ResultRow, Source, start};
