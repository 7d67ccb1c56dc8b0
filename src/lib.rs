//! xray-web: pneumonia vs normal on chest X-rays, entirely in the browser.
//!
//! - [`ml`]: the model, preprocessing, weights, metrics, splits, calibration and the training
//!   step (native and wasm).
//! - [`web`]: the Leptos single-page app and its training worker (wasm; the parts without
//!   browser types also compile natively, for their tests).
//! - `cli` (native only): the `xray` command-line tool (`predict`, `eval`, `train`, `cv`,
//!   `split`, `subset`, `gallery`, `ood-fit`, `ood-eval`, `bench`).
//!
//! `docs/architecture.md` maps the modules, the data flow and where each kind of change goes.

pub mod ml;

#[cfg(not(target_arch = "wasm32"))]
pub mod cli;

pub mod web;

#[cfg(target_arch = "wasm32")]
unsafe extern "C" {
    /// Synthesised by the wasm linker: runs every static constructor.
    fn __wasm_call_ctors();
}

/// Runs the static constructors (the kernel registries of Burn's GPU runtime are built by them)
/// once per instance of the module: wasm-bindgen calls it when the module is instantiated in the
/// page or the training worker, and [`web::engine::webgpu_device`] calls it too, for hosts such
/// as the test runner that do not run the start function.
///
/// Without an explicit call the linker treats the module as a one-shot "command" and runs every
/// constructor again at the start of each call from JavaScript into the wasm: each event
/// handler, each resolved promise. That cost hundreds of milliseconds of the page's main thread
/// whenever a panel appeared, and halved training throughput on WebGPU.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen(start)]
pub fn run_constructors() {
    static DONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !DONE.swap(true, std::sync::atomic::Ordering::SeqCst) {
        // SAFETY: the linker's constructor function, run once (guarded above), before the
        // registries it fills are used.
        unsafe { __wasm_call_ctors() }
    }
}
