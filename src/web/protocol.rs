//! The messages between the page and its two workers: the training worker ([`ToWorker`],
//! [`FromWorker`]) and the inference worker ([`ToInference`], [`FromInference`]).
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
    classifier::Prediction,
    dicom::DicomInfo,
    explain::Heatmap,
    finetune::{Example, Settings},
    ood::OodReason,
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

/// Page → inference worker. Each request has an id, which its answer repeats; the worker
/// answers them one at a time, in the order they came.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ToInference {
    /// Load the model of `card` on `backend` (the CPU where the worker has no WebGPU), and run
    /// one blank image through it. Parts: `[weights (burnpack)]`.
    Load {
        /// The request's id.
        id: u64,
        /// The model's card.
        card: Box<ModelCard>,
        /// Where to run it.
        backend: Backend,
    },
    /// Classify a file: the sample at `url`, or else the `File` sent beside the message (the
    /// worker reads it; its bytes never pass through the page).
    Classify {
        /// The request's id.
        id: u64,
        /// A sample's URL.
        url: Option<String>,
    },
    /// Decode a file (as [`ToInference::Classify`] names it) for the viewer, at its own
    /// resolution, downscaled to at most `max_side` pixels a side.
    Decode {
        /// The request's id.
        id: u64,
        /// A sample's URL.
        url: Option<String>,
        /// Longest side kept.
        max_side: u32,
    },
}

impl ToInference {
    /// The request's id.
    pub fn id(&self) -> u64 {
        match self {
            ToInference::Load { id, .. }
            | ToInference::Classify { id, .. }
            | ToInference::Decode { id, .. } => *id,
        }
    }
}

/// What the inference worker says of one classified file. Parts: `[thumbnail (PNG, may be
/// empty), the same with the heatmap over it (PNG, may be empty), the model input (f32 LE)]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Classified {
    /// The prediction.
    pub prediction: Prediction,
    /// Why it does not look like a chest X-ray, if it does not.
    pub ood: Option<OodReason>,
    /// What a DICOM file says about its image.
    pub dicom: Option<DicomInfo>,
    /// The format read.
    pub format: String,
    /// Where the model looked.
    pub heatmap: Option<Heatmap>,
    /// The prediction's time (and its out-of-distribution check), ms.
    pub ms: f64,
    /// The heatmap's time after it, ms.
    pub heatmap_ms: f64,
    /// Where it ran.
    pub backend: Backend,
    /// Set when the GPU stopped answering on this file: the worker then classified it again
    /// on the CPU, where it stays. The device's message.
    pub gpu_lost: Option<String>,
}

/// Inference worker → page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FromInference {
    /// The worker's script runs and waits for its first message (the module to run): the page
    /// sends it only then, since a module worker can lose a message that arrives while its
    /// script still loads (seen in headless Chromium).
    Listening,
    /// The worker's wasm is running and takes requests.
    Ready,
    /// The model is loaded and warmed up.
    Loaded {
        /// The request's id.
        id: u64,
        /// Where it runs.
        backend: Backend,
        /// Why that is not the backend asked for, if it is not.
        fallback: Option<String>,
    },
    /// A file classified (see [`Classified`] for its parts).
    Classified {
        /// The request's id.
        id: u64,
        /// What the model said.
        result: Box<Classified>,
    },
    /// A file decoded for the viewer. Parts: `[gray (u16 LE), width · height values]`.
    Decoded {
        /// The request's id.
        id: u64,
        /// Width kept.
        width: u32,
        /// Height kept.
        height: u32,
        /// The file's own size.
        original: (u32, u32),
    },
    /// The file could not be read, or is not an image the model takes; the message says why.
    Refused {
        /// The request's id.
        id: u64,
        /// Why, for the visitor.
        message: String,
    },
    /// The model is not available, or failed on the file.
    Failed {
        /// The request's id.
        id: u64,
        /// Why, for the visitor.
        message: String,
    },
    /// The worker's runtime panicked (a failed allocation, a bug): the worker is dead, and
    /// every request it held is lost.
    Crashed {
        /// The panic's message.
        message: String,
    },
}

impl FromInference {
    /// The id of the request this answers (`None` for [`FromInference::Listening`],
    /// [`FromInference::Ready`] and [`FromInference::Crashed`], which answer none).
    pub fn id(&self) -> Option<u64> {
        match self {
            FromInference::Listening | FromInference::Ready | FromInference::Crashed { .. } => None,
            FromInference::Loaded { id, .. }
            | FromInference::Classified { id, .. }
            | FromInference::Decoded { id, .. }
            | FromInference::Refused { id, .. }
            | FromInference::Failed { id, .. } => Some(*id),
        }
    }
}

/// A decoded image's gray values from the little-endian bytes of [`FromInference::Decoded`],
/// checked against its size.
pub fn gray_from_bytes(bytes: &[u8], width: u32, height: u32) -> Result<Vec<u16>, WebError> {
    let n = width as usize * height as usize;
    if width == 0 || height == 0 || bytes.len() != 2 * n {
        return Err(WebError::Protocol(format!(
            "{} bytes are not a {width} × {height} 16-bit image",
            bytes.len()
        )));
    }
    Ok(bytes
        .chunks_exact(2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .collect())
}

/// Little-endian bytes of 16-bit values.
pub fn u16_bytes(values: &[u16]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
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

/// Posts `msg` and its parts (transferred) from the worker this runs in to its page; logs what
/// cannot be posted (there is nobody else to tell).
#[cfg(target_arch = "wasm32")]
pub fn post_to_page<T: Serialize>(msg: &T, parts: &[&[u8]]) {
    let Ok(scope) = js_sys::global().dyn_into::<web_sys::DedicatedWorkerGlobalScope>() else {
        return;
    };
    match encode(msg, parts) {
        Ok((value, transfer)) => {
            if let Err(e) = scope.post_message_with_transfer(&value, &transfer) {
                web_sys::console::error_1(&e);
            }
        }
        Err(e) => web_sys::console::error_1(&e.to_string().into()),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ml::class::Class;

    #[test]
    fn inference_messages_survive_the_trip_and_name_their_request() {
        let classified = FromInference::Classified {
            id: 7,
            result: Box::new(Classified {
                prediction: Prediction {
                    label: Class::Pneumonia,
                    p_pneumonia: 0.8125,
                },
                ood: None,
                dicom: Some(DicomInfo::default()),
                format: "DICOM".into(),
                heatmap: Some(Heatmap {
                    width: 2,
                    height: 1,
                    values: vec![0.0, 1.0],
                }),
                ms: 12.5,
                heatmap_ms: 4.0,
                backend: Backend::Cpu,
                gpu_lost: Some("Device was destroyed".into()),
            }),
        };
        let answers = [
            (FromInference::Listening, None),
            (FromInference::Ready, None),
            (
                FromInference::Crashed {
                    message: "unreachable".into(),
                },
                None,
            ),
            (classified, Some(7)),
            (
                FromInference::Decoded {
                    id: 8,
                    width: 3,
                    height: 2,
                    original: (6, 4),
                },
                Some(8),
            ),
            (
                FromInference::Refused {
                    id: 9,
                    message: "not an image".into(),
                },
                Some(9),
            ),
        ];
        for (msg, id) in answers {
            assert_eq!(msg.id(), id, "{msg:?}");
            let text = serde_json::to_string(&msg).unwrap();
            assert_eq!(decode_text::<FromInference>(&text).unwrap(), msg);
        }
        let asks = [
            ToInference::Classify { id: 1, url: None },
            ToInference::Decode {
                id: 2,
                url: Some("http://127.0.0.1/public/samples/a.jpeg".into()),
                max_side: 4096,
            },
        ];
        for (msg, id) in asks.into_iter().zip([1, 2]) {
            assert_eq!(msg.id(), id);
            let text = serde_json::to_string(&msg).unwrap();
            assert_eq!(decode_text::<ToInference>(&text).unwrap(), msg);
        }
        assert!(decode_text::<FromInference>(r#"{"Classified":{"id":1}}"#).is_err());
    }

    #[test]
    fn decoded_gray_must_fill_its_size_exactly() {
        let gray = [0u16, 1, 256, 65535, 7, 4095];
        let bytes = u16_bytes(&gray);
        assert_eq!(gray_from_bytes(&bytes, 3, 2).unwrap(), gray);
        assert_eq!(gray_from_bytes(&bytes, 2, 3).unwrap(), gray);
        for (w, h) in [(3, 3), (0, 2), (6, 0), (2, 2)] {
            assert!(
                matches!(gray_from_bytes(&bytes, w, h), Err(WebError::Protocol(_))),
                "{w} × {h}"
            );
        }
        assert!(gray_from_bytes(&bytes[..11], 3, 2).is_err());
    }
}
