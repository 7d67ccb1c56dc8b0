//! The messages between the page and its training worker.
//!
//! A message travels as a plain object `{json, parts}`: `json` is the message itself and `parts`
//! its large binary payloads (pixels, weights) as `Uint8Array`s, whose buffers are transferred
//! rather than copied.

use serde::{Deserialize, Serialize};

use serde::de::DeserializeOwned;
#[cfg(target_arch = "wasm32")]
use {
    super::browser,
    wasm_bindgen::{JsCast, JsValue},
};

use super::{backend::Backend, error::WebError};
use crate::ml::{
    card::ModelCard,
    finetune::{Example, Settings},
};

/// What the page asks of a running session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Control {
    /// Go on (or resume).
    Run,
    /// Hold between steps.
    Pause,
    /// Finish after the current step, keeping the model so far.
    Stop,
}

/// A run to start. Its parts: `[base weights (burnpack, may be empty), fine-tuning pixels
/// (f32 LE), validation pixels (f32 LE)]`, images of `card.model.input_size`² pixels each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartRun {
    /// The starting model's card (architecture, normalisation).
    pub card: ModelCard,
    /// Settings of the run.
    pub settings: Settings,
    /// Where to train.
    pub backend: Backend,
    /// Labels of the fine-tuning images (true for PNEUMONIA), in pixel order.
    pub tune_labels: Vec<bool>,
    /// Validation images.
    pub n_val: usize,
}

/// A start message's data, checked against its card and settings.
#[derive(Debug)]
pub struct RunInputs {
    /// The starting model's card (validated).
    pub card: ModelCard,
    /// Settings of the run (validated).
    pub settings: Settings,
    /// Where to train.
    pub backend: Backend,
    /// Weights to start from, if any.
    pub base: Option<Vec<u8>>,
    /// The fine-tuning images with their labels.
    pub tune: Vec<Example>,
    /// The validation images.
    pub val: Vec<Vec<f32>>,
}

impl StartRun {
    /// Unpacks the run's parts and checks them before anything is allocated for them: the
    /// card and settings are validated, there are exactly three parts, the pixel parts hold
    /// whole images of the card's size, one label per fine-tuning image and `n_val`
    /// validation images.
    pub fn inputs(self, parts: Vec<Vec<u8>>) -> Result<RunInputs, WebError> {
        let StartRun {
            card,
            settings,
            backend,
            tune_labels,
            n_val,
        } = self;
        card.validate()
            .map_err(|e| WebError::Protocol(format!("the start message's card: {e}")))?;
        settings
            .validate()
            .map_err(|e| WebError::Training(e.to_string()))?;
        let [base, tune, val]: [Vec<u8>; 3] = parts
            .try_into()
            .map_err(|_| WebError::Protocol("the start message lacks its data".into()))?;
        let pixels = card.model.input_size * card.model.input_size;
        if tune.len() != tune_labels.len() * 4 * pixels || val.len() != n_val * 4 * pixels {
            return Err(WebError::Protocol(
                "the start message's images and labels do not match".into(),
            ));
        }
        let tune = images_from_bytes(&tune, pixels)?
            .into_iter()
            .zip(tune_labels)
            .map(|(pixels, pneumonia)| Example { pixels, pneumonia })
            .collect();
        let val = images_from_bytes(&val, pixels)?;
        Ok(RunInputs {
            card,
            settings,
            backend,
            base: (!base.is_empty()).then_some(base),
            tune,
            val,
        })
    }
}

/// Page → worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ToWorker {
    /// Start a run (see [`StartRun`] for its parts).
    Start(Box<StartRun>),
    /// Pause, resume or stop.
    Control(Control),
}

/// Which validation pass a set of probabilities comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pass {
    /// The starting model, before any step.
    Before,
    /// After an epoch.
    Epoch,
    /// After a run that stopped in the middle of an epoch.
    Final,
}

/// Worker → page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FromWorker {
    /// The worker's wasm is running and waits for [`ToWorker::Start`].
    Ready,
    /// The session is built.
    Started {
        /// The backend it trains on.
        backend: Backend,
        /// Why that is not the backend asked for, if it is not.
        fallback: Option<String>,
        /// Steps in one epoch.
        steps_per_epoch: usize,
        /// Steps in the run.
        total_steps: usize,
        /// The worker's wasm memory, MB.
        wasm_mb: f64,
    },
    /// Validation progress.
    Evaluating {
        /// Images done.
        done: usize,
        /// Images in all.
        total: usize,
    },
    /// P(pneumonia) for every validation image, in order.
    Probabilities {
        /// Which pass.
        pass: Pass,
        /// After how many steps.
        step: usize,
        /// Epochs completed.
        epoch: usize,
        /// P(pneumonia), one per validation image.
        probs: Vec<f32>,
    },
    /// One optimisation step is done.
    Step {
        /// Steps completed.
        step: usize,
        /// Epochs completed.
        epoch: usize,
        /// Training loss of the batch.
        loss: f32,
        /// Images of the batch right before the update.
        correct: usize,
        /// Images in the batch.
        seen: usize,
        /// Whether it finished an epoch.
        epoch_finished: bool,
        /// Time the step took, ms.
        ms: f64,
        /// The worker's wasm memory, MB.
        wasm_mb: f64,
        /// GPU memory the runtime holds (in use and pooled for reuse), MB; `None` on the CPU.
        gpu_mb: Option<f64>,
    },
    /// Holding between steps.
    Paused,
    /// Going on after a pause.
    Resumed,
    /// The run is over. Parts: `[weights (burnpack, f32)]`.
    Done {
        /// Whether it was stopped early.
        stopped: bool,
        /// Steps completed.
        step: usize,
        /// Epochs completed.
        epoch: usize,
        /// The worker's wasm memory, MB.
        wasm_mb: f64,
    },
    /// The run failed; the message says why in words.
    Failed {
        /// What kind of failure.
        kind: Failure,
        /// What went wrong, for the visitor.
        message: String,
    },
}

/// The kinds of [`FromWorker::Failed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Failure {
    /// A device read failed: the GPU was lost, reset or ran out of memory.
    DeviceLost,
    /// The runtime panicked (a failed allocation, a lost device inside a kernel launch).
    Runtime,
    /// The run could not start or go on (settings, data, a diverging loss).
    Training,
    /// A message that is not what the protocol says.
    Protocol,
}

impl FromWorker {
    /// The failure message for `e`.
    pub fn failed(e: &WebError) -> Self {
        FromWorker::Failed {
            kind: match e {
                WebError::DeviceLost(_) => Failure::DeviceLost,
                WebError::Protocol(_) => Failure::Protocol,
                _ => Failure::Training,
            },
            message: e.to_string(),
        }
    }
}

/// Little-endian bytes of `values`.
pub fn f32_bytes(values: impl IntoIterator<Item = f32>) -> Vec<u8> {
    values.into_iter().flat_map(f32::to_le_bytes).collect()
}

/// A message's text, decoded.
pub fn decode_text<T: DeserializeOwned>(json: &str) -> Result<T, WebError> {
    serde_json::from_str(json).map_err(|e| WebError::Protocol(format!("a garbled message: {e}")))
}

/// `values` from little-endian bytes, cut into images of `pixels` values.
pub fn images_from_bytes(bytes: &[u8], pixels: usize) -> Result<Vec<Vec<f32>>, WebError> {
    if pixels == 0 || !bytes.len().is_multiple_of(4 * pixels) {
        return Err(WebError::Protocol(format!(
            "{} bytes are not whole images of {pixels} pixels",
            bytes.len()
        )));
    }
    Ok(bytes
        .chunks_exact(4 * pixels)
        .map(|img| {
            img.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        })
        .collect())
}

/// Packs a message and its parts; returns it and the list of buffers to transfer.
#[cfg(target_arch = "wasm32")]
pub fn encode<T: Serialize>(
    msg: &T,
    parts: &[&[u8]],
) -> Result<(JsValue, js_sys::Array), WebError> {
    let json = serde_json::to_string(msg).map_err(|e| WebError::Protocol(e.to_string()))?;
    let obj = js_sys::Object::new();
    let arrays = js_sys::Array::new();
    let transfer = js_sys::Array::new();
    for part in parts {
        let a = js_sys::Uint8Array::from(*part);
        transfer.push(&a.buffer());
        arrays.push(&a);
    }
    js_sys::Reflect::set(&obj, &"json".into(), &json.into())
        .map_err(|e| WebError::Browser(browser::error_text(e)))?;
    js_sys::Reflect::set(&obj, &"parts".into(), &arrays)
        .map_err(|e| WebError::Browser(browser::error_text(e)))?;
    Ok((obj.into(), transfer))
}

/// Unpacks a message made by [`encode`].
#[cfg(target_arch = "wasm32")]
pub fn decode<T: DeserializeOwned>(data: &JsValue) -> Result<(T, Vec<Vec<u8>>), WebError> {
    let json = js_sys::Reflect::get(data, &"json".into())
        .ok()
        .and_then(|j| j.as_string())
        .ok_or_else(|| WebError::Protocol("a message without its text".into()))?;
    let msg = decode_text(&json)?;
    let parts = js_sys::Reflect::get(data, &"parts".into())
        .ok()
        .and_then(|p| p.dyn_into::<js_sys::Array>().ok())
        .map(|a| {
            a.iter()
                .map(|p| js_sys::Uint8Array::new(&p).to_vec())
                .collect()
        })
        .unwrap_or_default();
    Ok((msg, parts))
}
