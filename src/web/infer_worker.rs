//! The inference worker: reads, decodes, prepares and classifies the visitor's files (and
//! decodes them again for the viewer) in a dedicated Web Worker, so that a 30-megapixel PNG or
//! a batch of 200 never holds up the page.
//!
//! `public/infer-worker.js` starts the app's own wasm module, which the page compiled and
//! sends as the worker's first message, and calls [`infer_worker`]. The worker says
//! [`FromInference::Ready`], then answers each [`ToInference`] request in turn, with the
//! request's id. The page's side is [`super::inference`]. A panic is reported as
//! [`FromInference::Crashed`] before the worker dies; the page starts another.

use std::{cell::RefCell, collections::VecDeque, rc::Rc};

use wasm_bindgen::{JsCast, JsValue, prelude::Closure};

use super::{
    backend::Backend,
    browser,
    engine::{self, Engine},
    error::WebError,
    protocol::{Classified, FromInference, ToInference, decode, f32_bytes, u16_bytes},
    viewing,
};
use crate::ml::{
    classifier::{AnalyseError, Analysis, Classifier},
    explain, preprocess,
    weights::WeightsError,
};

/// Longest side, in pixels, of a result row's thumbnail: twice the 72 CSS pixels it is shown at,
/// for high-density screens.
const THUMB_SIDE: u32 = 144;

fn post(msg: &FromInference, parts: &[&[u8]]) {
    super::protocol::post_to_page(msg, parts);
}

/// A request with what came beside it.
struct Request {
    msg: ToInference,
    parts: Vec<Vec<u8>>,
    /// The visitor's `File`, for a request without a URL.
    file: JsValue,
}

/// What answers the requests: the models and the backend in use. The worker holds one; so
/// does the page where no worker can start ([`super::inference`] falls back to it).
#[derive(Default)]
pub struct Core {
    engine: Engine,
    backend: RefCell<Backend>,
}

/// An answer and its parts.
pub type Answer = (FromInference, Vec<Vec<u8>>);

impl Core {
    /// Nothing loaded yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Answers one request (`file`: the visitor's `File` for a request without a URL).
    pub async fn answer(&self, msg: ToInference, parts: Vec<Vec<u8>>, file: &JsValue) -> Answer {
        answer(self, msg, parts, file).await
    }
}

/// The worker: its core and the requests waiting.
#[derive(Default)]
struct Worker {
    core: Core,
    waiting: RefCell<VecDeque<Request>>,
    busy: RefCell<bool>,
}

/// The worker's entry point, called by `public/infer-worker.js` (it does nothing outside a
/// dedicated worker).
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn infer_worker() {
    let Ok(scope) = js_sys::global().dyn_into::<web_sys::DedicatedWorkerGlobalScope>() else {
        return;
    };
    crate::run_constructors();
    std::panic::set_hook(Box::new(|info| {
        console_error_panic_hook::hook(info);
        post(
            &FromInference::Crashed {
                message: info.to_string(),
            },
            &[],
        );
    }));
    let worker = Rc::new(Worker::default());
    let on_message =
        Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |event: web_sys::MessageEvent| {
            let data = event.data();
            match decode::<ToInference>(&data) {
                Ok((msg, parts)) => {
                    let file = js_sys::Reflect::get(&data, &"file".into()).unwrap_or_default();
                    worker
                        .waiting
                        .borrow_mut()
                        .push_back(Request { msg, parts, file });
                    if !worker.busy.replace(true) {
                        wasm_bindgen_futures::spawn_local(work(worker.clone()));
                    }
                }
                // Without a readable id there is nobody to answer.
                Err(e) => web_sys::console::error_1(&e.to_string().into()),
            }
        });
    scope.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    // The worker lives as long as its handler.
    on_message.forget();
    post(&FromInference::Ready, &[]);
}

/// Answers the requests waiting, one at a time.
async fn work(worker: Rc<Worker>) {
    loop {
        let next = worker.waiting.borrow_mut().pop_front();
        let Some(Request { msg, parts, file }) = next else {
            break;
        };
        let (msg, parts) = answer(&worker.core, msg, parts, &file).await;
        let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        post(&msg, &parts);
        // Lets the next messages in.
        browser::yield_now().await;
    }
    *worker.busy.borrow_mut() = false;
}

async fn answer(core: &Core, msg: ToInference, parts: Vec<Vec<u8>>, file: &JsValue) -> Answer {
    let id = msg.id();
    match msg {
        ToInference::Load { card, backend, .. } => {
            let Some(weights) = parts.into_iter().next() else {
                let message = "the load message lacks its weights".to_string();
                return (FromInference::Failed { id, message }, Vec::new());
            };
            core.engine.set_model(*card, weights);
            let answer = match load(core, backend).await {
                Ok(fallback) => FromInference::Loaded {
                    id,
                    backend: *core.backend.borrow(),
                    fallback,
                },
                Err(e) => FromInference::Failed {
                    id,
                    message: e.to_string(),
                },
            };
            (answer, Vec::new())
        }
        ToInference::Classify { url, .. } => match read(url.as_deref(), file).await {
            Ok(bytes) => classify(core, id, &bytes).await,
            Err(message) => (FromInference::Refused { id, message }, Vec::new()),
        },
        ToInference::Decode { url, max_side, .. } => {
            let decoded = match read(url.as_deref(), file).await {
                Ok(bytes) => decode_for_viewer(&bytes, max_side),
                Err(message) => Err(message),
            };
            match decoded {
                Ok(v) => (
                    FromInference::Decoded {
                        id,
                        width: v.width,
                        height: v.height,
                        original: v.original,
                    },
                    vec![u16_bytes(&v.gray)],
                ),
                Err(message) => (FromInference::Refused { id, message }, Vec::new()),
            }
        }
    }
}

/// Makes the classifier on `backend` the one in use, or the CPU's where this worker has no
/// WebGPU; `Some(why)` in that case.
async fn load(core: &Core, backend: Backend) -> Result<Option<String>, WebError> {
    match core.engine.classifier(backend).await {
        Ok(_) => {
            *core.backend.borrow_mut() = backend;
            Ok(None)
        }
        Err(e) if backend == Backend::WebGpu => {
            core.engine.classifier(Backend::Cpu).await?;
            *core.backend.borrow_mut() = Backend::Cpu;
            Ok(Some(format!("{e}; using the CPU instead (slower).")))
        }
        Err(e) => Err(e),
    }
}

/// The file's bytes: the sample fetched, or the visitor's file read; `Err` is the message for
/// the visitor.
async fn read(url: Option<&str>, file: &JsValue) -> Result<Vec<u8>, String> {
    let read = match url {
        Some(url) => browser::fetch_bytes(url, |_, _| {}).await,
        None => match file.dyn_ref::<web_sys::File>() {
            Some(f) => browser::read_file(f).await,
            None => Err(WebError::Protocol("a request without its file".into())),
        },
    };
    read.map_err(|e| match e {
        WebError::FileRead(_) => e.to_string(),
        e => format!("could not be read: {e}"),
    })
}

/// Classifies `bytes` on the backend in use; on a GPU that stops answering, moves to the CPU
/// and classifies them again there.
async fn classify(core: &Core, id: u64, bytes: &[u8]) -> Answer {
    let backend = *core.backend.borrow();
    let mut run = match analyse_on(core, backend, bytes).await {
        Ok(run) => run,
        Err(no) => return (no.into_message(id), Vec::new()),
    };
    let mut gpu_lost = None;
    if backend == Backend::WebGpu {
        match &run.analysis {
            Err(AnalyseError::Model(WeightsError::Read(detail))) => {
                let detail = detail.lines().next().unwrap_or_default().to_string();
                core.engine.forget(Backend::WebGpu);
                engine::webgpu_lost(WebError::GpuLostWhileClassifying(detail.clone()));
                *core.backend.borrow_mut() = Backend::Cpu;
                gpu_lost = Some(detail);
                run = match analyse_on(core, Backend::Cpu, bytes).await {
                    Ok(run) => run,
                    Err(no) => return (no.into_message(id), Vec::new()),
                };
            }
            Ok(_) => browser::drill_image_on_gpu(),
            Err(_) => {}
        }
    }
    let Run {
        input,
        thumb,
        heat_thumb,
        analysis,
        ms,
        heatmap_ms,
    } = run;
    match analysis {
        Ok(a) => (
            FromInference::Classified {
                id,
                result: Box::new(Classified {
                    prediction: a.prediction,
                    ood: a.ood,
                    dicom: a.dicom,
                    format: a.format.to_string(),
                    heatmap: a.heatmap,
                    ms,
                    heatmap_ms,
                    backend: *core.backend.borrow(),
                    gpu_lost,
                }),
            },
            vec![
                thumb.unwrap_or_default(),
                heat_thumb.unwrap_or_default(),
                f32_bytes(input),
            ],
        ),
        Err(e) => (
            FromInference::Failed {
                id,
                message: format!("inference failed: {e}"),
            },
            Vec::new(),
        ),
    }
}

/// One file through a classifier: the model input, the row's pictures, the analysis and its
/// times.
struct Run {
    input: Vec<f32>,
    /// A small PNG of the image for its result row (none if it could not be encoded).
    thumb: Option<Vec<u8>>,
    /// The same with the heatmap blended over it.
    heat_thumb: Option<Vec<u8>>,
    analysis: Result<Analysis, AnalyseError>,
    ms: f64,
    heatmap_ms: f64,
}

/// Why a file got no [`Run`].
enum NoRun {
    /// The file is not an image the model takes.
    Refused(String),
    /// The model is not available.
    Unavailable(WebError),
}

impl NoRun {
    fn into_message(self, id: u64) -> FromInference {
        match self {
            NoRun::Refused(message) => FromInference::Refused { id, message },
            NoRun::Unavailable(e) => FromInference::Failed {
                id,
                message: format!("the model is not available: {e}"),
            },
        }
    }
}

/// Prepares `bytes` for the classifier on `backend` and analyses them, with the heatmap.
async fn analyse_on(core: &Core, backend: Backend, bytes: &[u8]) -> Result<Run, NoRun> {
    let classifier: Rc<Classifier> = core
        .engine
        .classifier(backend)
        .await
        .map_err(NoRun::Unavailable)?;
    let prepared = classifier
        .prepare(bytes)
        .map_err(|e| NoRun::Refused(e.to_string()))?;
    let input = prepared.input.clone();
    // One small picture for the row: shown as it is, and with the heatmap over it.
    let small = prepared.thumbnail(THUMB_SIDE).ok();
    let thumb = small
        .clone()
        .and_then(|g| preprocess::encode_png(g.into()).ok());
    // Where this runs in the page (no worker could start), the page paints between the
    // pieces; in the worker, the messages waiting come in.
    browser::yield_now().await;
    let t0 = browser::now_ms();
    let analysis = classifier.analyse_prepared_async(&prepared).await;
    let ms = browser::now_ms() - t0;
    browser::yield_now().await;
    // The heatmap right after, from the same pass's activations; a failed read here is the
    // device's failure as much as one in the prediction, and is handled the same way.
    let t1 = browser::now_ms();
    let analysis = match analysis {
        Ok((a, activations)) => classifier
            .heatmap_async(activations)
            .await
            .map(|h| Analysis {
                heatmap: Some(h),
                ..a
            }),
        Err(e) => Err(e),
    };
    let heatmap_ms = browser::now_ms() - t1;
    let heat_thumb = match (&analysis, &small) {
        (
            Ok(Analysis {
                heatmap: Some(h), ..
            }),
            Some(g),
        ) => explain::overlay_png8(g, h, explain::OVERLAY_OPACITY).ok(),
        _ => None,
    };
    Ok(Run {
        input,
        thumb,
        heat_thumb,
        analysis,
        ms,
        heatmap_ms,
    })
}

/// A file decoded for the viewer.
struct ForViewer {
    /// 16-bit gray, row-major.
    gray: Vec<u16>,
    width: u32,
    height: u32,
    /// The file's own size.
    original: (u32, u32),
}

/// The file decoded at its own resolution, downscaled to `max_side`.
fn decode_for_viewer(bytes: &[u8], max_side: u32) -> Result<ForViewer, String> {
    let decoded = preprocess::decode(bytes).map_err(|e| e.to_string())?;
    let original = decoded.gray.dimensions();
    let (width, height) = viewing::kept_size_within(original, max_side);
    let gray = if (width, height) == original {
        decoded.gray
    } else {
        image::imageops::resize(
            &decoded.gray,
            width,
            height,
            image::imageops::FilterType::Triangle,
        )
    };
    Ok(ForViewer {
        gray: gray.into_raw(),
        width,
        height,
        original,
    })
}
