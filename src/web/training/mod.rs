//! Demo training in the page.
//!
//! - [`view`]: what the panels show, as plain data, and the reducer that follows the worker.
//! - `state`: the panels' signals and the run's handles (wasm).
//! - `data`: the training images, bundled or the visitor's, split by patient (wasm).
//! - `run`: the training worker's lifecycle: start, pause, stop, its reports (wasm).
//! - `tuned`: the model a run leaves behind: classify with it, export it, load one (wasm).

pub mod view;

#[cfg(target_arch = "wasm32")]
mod data;
#[cfg(target_arch = "wasm32")]
mod run;
#[cfg(target_arch = "wasm32")]
mod state;
#[cfg(target_arch = "wasm32")]
mod tuned;

pub use view::{DataStatus, Evaluation, GridItem, Phase, Status};
#[cfg(target_arch = "wasm32")]
pub use {
    data::{clear_data, load_bundled, load_user_files},
    run::{start, stop, toggle_pause},
    state::{Export, TrainState},
    tuned::{classify_tuned, export, load_weights},
};
