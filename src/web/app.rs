//! The page: its state (the model, the results, the queue of images waiting), the queue's
//! worker loop, and the `App` component that lays out the panels.

use std::collections::VecDeque;

use leptos::prelude::*;

use super::{
    backend::Backend,
    browser, dropzone,
    error::WebError,
    gallery,
    inference::{Inference, Reply},
    model_panel, results, training, training_panel, viewer,
};
use crate::ml::{card::ModelCard, class::Class};

/// Loading state of the model, mirrored in `[data-testid=model-status]`.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelState {
    /// Fetching weights (bytes loaded, total) or preparing a backend.
    Loading {
        /// What is happening.
        what: String,
        /// Fraction done, when known.
        fraction: Option<f64>,
    },
    /// Ready to classify.
    Ready,
    /// Failed; the message says why.
    Error(String),
}

/// A classified image.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultRow {
    /// Unique id.
    pub id: usize,
    /// File name.
    pub file: String,
    /// Where the picture can be shown from (a small PNG the page made).
    pub thumb: Option<String>,
    /// The same picture with the heatmap over it.
    pub heat_thumb: Option<String>,
    /// Where the model looked (Grad-CAM of the PNEUMONIA score).
    pub heatmap: Option<crate::ml::explain::Heatmap>,
    /// The class at the model's threshold.
    pub label: Class,
    /// Calibrated probability of pneumonia.
    pub p_pneumonia: f32,
    /// Decision threshold used.
    pub threshold: f32,
    /// The model's "uncertain, needs a reader" band, `(low, high)`, when its card has one.
    pub band: Option<(f32, f32)>,
    /// Whether P(pneumonia) falls in that band.
    pub uncertain: bool,
    /// Inference time in milliseconds (the prediction and its out-of-distribution check).
    pub ms: f64,
    /// The heatmap's time after it, in milliseconds.
    pub heatmap_ms: f64,
    /// `webgpu` or `cpu`.
    pub backend: &'static str,
    /// The true label, for gallery samples.
    pub truth: Option<Class>,
    /// The fine-tuned model's prediction on the same image, when there is one.
    pub tuned: Option<crate::ml::classifier::Prediction>,
    /// Why it does not look like a chest X-ray, if it does not.
    pub ood: Option<crate::ml::ood::OodReason>,
    /// Non-identifying DICOM attributes, for DICOM files.
    pub dicom: Option<String>,
    /// Format read.
    pub format: String,
}

impl super::triage::Triaged for ResultRow {
    fn keys(&self) -> super::triage::Keys<'_> {
        super::triage::Keys {
            id: self.id,
            file: &self.file,
            label: self.label,
            p: self.p_pneumonia,
            ms: self.ms,
            uncertain: self.uncertain,
            flagged: self.ood.is_some(),
        }
    }
}

/// A refused file.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorRow {
    /// Unique id.
    pub id: usize,
    /// File name.
    pub file: String,
    /// Why it was refused.
    pub reason: String,
}

/// The app's reactive state, shared through context.
#[derive(Clone, Copy)]
pub struct AppState {
    /// Model loading state.
    pub model: RwSignal<ModelState>,
    /// The model card, once loaded.
    pub card: RwSignal<Option<ModelCard>>,
    /// The backend in use.
    pub backend: RwSignal<Backend>,
    /// Why the backend is what it is (e.g. no WebGPU).
    pub backend_note: RwSignal<String>,
    /// Why the page classifies in its own thread, when no inference worker could start.
    pub in_page: RwSignal<Option<String>>,
    /// Classified images, newest first.
    pub results: RwSignal<Vec<ResultRow>>,
    /// Refused files, newest first.
    pub errors: RwSignal<Vec<ErrorRow>>,
    /// Images waiting or running, as last shown (see [`SHOW_EVERY_MS`]).
    pub pending: RwSignal<usize>,
    /// The batch being worked through, as last shown: (images in it, done, ms since it
    /// started).
    pub batch: RwSignal<(usize, usize, f64)>,
    /// The shipped model and the inference worker that runs it.
    pub inference: StoredValue<Inference, LocalStorage>,
    /// Images waiting to be classified, and the ids handed out.
    pub queue: StoredValue<Queue, LocalStorage>,
    /// The object URLs behind the result rows' thumbnails, by row id: each is revoked when its
    /// row goes (a refused file's at once).
    pub thumbs: StoredValue<Vec<(usize, gloo_file::ObjectUrl)>, LocalStorage>,
    /// Where each result row's file can be read again, by row id, for the viewer (a file
    /// reference or a sample's URL: the bytes themselves are not kept).
    pub sources: StoredValue<Vec<(usize, Source)>, LocalStorage>,
    /// The result open in the viewer, by row id.
    pub viewer: RwSignal<Option<usize>>,
    /// Whether the result rows show their heatmaps over the thumbnails.
    pub show_heatmaps: RwSignal<bool>,
    /// The results table's order and filter.
    pub table_view: RwSignal<super::triage::TableView>,
    /// The training panels' state.
    pub training: training::TrainState,
}

impl Default for AppState {
    fn default() -> Self {
        Self::new()
    }
}

/// How often, at most, a batch's new rows, its progress line and the memory figure are shown
/// while it runs (ms); a batch's last rows are shown as soon as it ends. Each change to the page
/// costs a frame (style, layout, paint and compositing: on the CPU in a browser without a GPU,
/// on the cores the worker classifies on), so a batch shows its rows in groups rather than one
/// frame per X-ray.
pub const SHOW_EVERY_MS: f64 = 250.0;

/// Images waiting to be classified, and the batch's results not yet shown.
#[derive(Default)]
pub struct Queue {
    waiting: VecDeque<Input>,
    running: bool,
    next_id: usize,
    /// Images submitted and not yet answered.
    outstanding: usize,
    /// The batch: (images in it, done, ms since it started).
    batch: (usize, usize, f64),
    /// When the batch started ([`browser::now_ms`]).
    batch_start: f64,
    /// Rows classified since the table was last updated, oldest first.
    unshown: Vec<ResultRow>,
    /// When the table was last updated ([`browser::now_ms`]).
    shown_at: f64,
}

/// Where the bytes of an input come from.
#[derive(Clone)]
pub enum Source {
    /// A file the user gave.
    File(web_sys::File),
    /// A bundled sample, by URL.
    Url(String),
}

/// An image waiting to be classified.
pub struct Input {
    /// Display name.
    pub name: String,
    /// Its bytes.
    pub source: Source,
    /// True label, for samples.
    pub truth: Option<Class>,
}

impl AppState {
    /// The state of a page just opened: the model loading, no results, training idle.
    pub fn new() -> Self {
        AppState {
            model: RwSignal::new(ModelState::Loading {
                what: "loading the model".into(),
                fraction: Some(0.0),
            }),
            card: RwSignal::new(None),
            backend: RwSignal::new(Backend::Cpu),
            backend_note: RwSignal::new(String::new()),
            in_page: RwSignal::new(None),
            results: RwSignal::new(Vec::new()),
            errors: RwSignal::new(Vec::new()),
            pending: RwSignal::new(0),
            batch: RwSignal::new((0, 0, 0.0)),
            inference: StoredValue::new_local(Inference::new()),
            queue: StoredValue::new_local(Queue::default()),
            thumbs: StoredValue::new_local(Vec::new()),
            sources: StoredValue::new_local(Vec::new()),
            viewer: RwSignal::new(None),
            show_heatmaps: RwSignal::new(true),
            table_view: RwSignal::new(super::triage::TableView::default()),
            training: training::TrainState::new(),
        }
    }

    /// Removes every result, and frees their thumbnails.
    pub fn clear_results(self) {
        self.queue.update_value(|q| q.unshown.clear());
        self.viewer.set(None);
        self.results.set(Vec::new());
        self.thumbs.set_value(Vec::new());
        self.sources.set_value(Vec::new());
    }

    fn next_id(self) -> usize {
        let mut id = 0;
        self.queue.update_value(|q| {
            q.next_id += 1;
            id = q.next_id;
        });
        id
    }

    /// A clone of the inference handle.
    pub fn inference(self) -> Inference {
        self.inference.get_value()
    }

    /// Queues inputs and starts working through them when the model is ready.
    pub fn submit(self, inputs: Vec<Input>) {
        let n = inputs.len();
        self.queue.update_value(|q| {
            q.waiting.extend(inputs);
            if q.outstanding == 0 {
                q.batch = (n, 0, 0.0);
                q.batch_start = browser::now_ms();
            } else {
                q.batch.0 += n;
            }
            q.outstanding += n;
        });
        self.show();
        self.pump();
    }

    /// Shows what the queue holds: the new rows at the top of the table, the progress line and
    /// the count of images pending.
    fn show(self) {
        let mut rows = Vec::new();
        let (mut batch, mut pending) = ((0, 0, 0.0), 0);
        self.queue.update_value(|q| {
            rows = std::mem::take(&mut q.unshown);
            (batch, pending) = (q.batch, q.outstanding);
            q.shown_at = browser::now_ms();
        });
        if !rows.is_empty() {
            self.results.update(|r| {
                rows.reverse();
                r.splice(0..0, rows);
            });
        }
        self.batch.set(batch);
        self.pending.set(pending);
    }

    /// Works through the queue unless already doing so or the model is not ready.
    pub fn pump(self) {
        if self.model.get_untracked() != ModelState::Ready || self.queue.with_value(|q| q.running) {
            return;
        }
        self.queue.update_value(|q| q.running = true);
        leptos::task::spawn_local(async move {
            loop {
                if self.model.get_untracked() != ModelState::Ready {
                    break;
                }
                let mut next = None;
                self.queue.update_value(|q| next = q.waiting.pop_front());
                let Some(input) = next else {
                    break;
                };
                self.classify(input).await;
                let now = browser::now_ms();
                let mut due = false;
                self.queue.update_value(|q| {
                    q.outstanding = q.outstanding.saturating_sub(1);
                    q.batch.1 += 1;
                    q.batch.2 = now - q.batch_start;
                    due = q.waiting.is_empty() || now - q.shown_at >= SHOW_EVERY_MS;
                });
                if due {
                    self.show();
                }
                browser::yield_now().await;
            }
            self.queue.update_value(|q| q.running = false);
            self.show();
        });
    }

    fn refuse(self, file: String, reason: String) {
        self.errors.update(|e| {
            e.insert(
                0,
                ErrorRow {
                    id: self.next_id(),
                    file,
                    reason,
                },
            )
        });
    }

    async fn classify(self, input: Input) {
        // Read, decoded and classified in the inference worker.
        let (result, pictures) = match self.inference().classify(&input.source).await {
            Ok(Reply::Classified(result, pictures)) => (result, pictures),
            Ok(Reply::Refused(message) | Reply::Failed(message)) => {
                return self.refuse(input.name, message);
            }
            Err(e) => return self.refuse(input.name, e.to_string()),
        };
        if let Some(detail) = &result.gpu_lost {
            self.gpu_lost(detail);
        }
        let tuned = match training::classify_tuned(self.training, &pictures.input).await {
            Some(Ok(p)) => Some(p),
            Some(Err(e)) => {
                self.refuse(input.name.clone(), format!("your model failed on it: {e}"));
                None
            }
            None => None,
        };
        let Some(card) = self.card.get_untracked() else {
            return self.refuse(input.name, WebError::ModelNotLoaded.to_string());
        };
        let id = self.next_id();
        // The row's thumbnails: their object URLs live as long as the row.
        let keep = |png: Vec<u8>| {
            let url = browser::bytes_url(&png, "image/png");
            let src = url.to_string();
            self.thumbs.update_value(|t| t.push((id, url)));
            src
        };
        let thumb = pictures.thumb.map(keep);
        let heat_thumb = pictures.heat_thumb.map(keep);
        self.sources
            .update_value(|s| s.push((id, input.source.clone())));
        let p = result.prediction.p_pneumonia;
        let result = *result;
        self.queue.update_value(|q| {
            q.unshown.push(ResultRow {
                id,
                file: input.name,
                thumb,
                heat_thumb,
                heatmap: result.heatmap,
                label: result.prediction.label,
                p_pneumonia: p,
                threshold: card.threshold,
                band: card.uncertain.map(|b| (b.low, b.high)),
                uncertain: card.uncertain(p),
                ms: result.ms,
                heatmap_ms: result.heatmap_ms,
                backend: result.backend.id(),
                truth: input.truth,
                tuned,
                ood: result.ood,
                dicom: result.dicom.map(|d| d.summary()),
                format: result.format,
            })
        });
    }

    /// The WebGPU device stopped answering while classifying: says so, and goes on on the CPU
    /// (the worker has classified the image again there; the queue follows).
    fn gpu_lost(self, detail: &str) {
        let why = WebError::GpuLostWhileClassifying(detail.to_string());
        self.backend_note.set(why.to_string());
        super::engine::webgpu_lost(why);
        self.backend.set(Backend::Cpu);
    }

    /// Moves to WebGPU in the background while the CPU answers ([`Inference::upgrade_to_webgpu`]),
    /// saying so beside the backend switch.
    pub async fn upgrade_to_webgpu(self) {
        let inference = self.inference();
        if !inference.on_cpu_worker() {
            return;
        }
        self.backend_note
            .set("Classifying on the CPU while WebGPU gets ready.".into());
        match inference.upgrade_to_webgpu().await {
            Ok(Some(_)) => {
                self.backend.set(Backend::WebGpu);
                self.backend_note.set(String::new());
                browser::mark("webgpu");
            }
            // A backend chosen meanwhile has said what it needed to.
            Ok(None) => {}
            Err(e) => self.backend_note.set(format!("{e}; staying on the CPU.")),
        }
    }

    /// Prepares `backend` (falling back to the CPU when WebGPU is unavailable) and marks the
    /// model ready.
    pub async fn activate(self, wanted: Backend) {
        self.model.set(ModelState::Loading {
            what: format!("preparing {}", wanted.label()),
            fraction: None,
        });
        let inference = self.inference();
        match inference.activate(wanted).await {
            Ok(loaded) => {
                if let Some(why) = loaded.fallback {
                    self.backend_note.set(why);
                }
                if let super::inference::Where::InPage(why) = inference.where_() {
                    self.in_page.set(Some(why));
                }
                self.backend.set(loaded.backend);
                self.model.set(ModelState::Ready);
                browser::mark("ready");
                self.pump();
            }
            Err(e) => self.model.set(ModelState::Error(e.to_string())),
        }
    }
}

/// The backend asked for in `?backend=`, if any.
fn backend_from_url() -> Option<Backend> {
    browser::page_param("backend")?.parse().ok()
}

/// The whole page.
#[component]
pub fn App() -> impl IntoView {
    let state = AppState::new();
    provide_context(state);
    provide_context(state.training);

    leptos::task::spawn_local(async move {
        let progress = move |loaded: f64, total: Option<f64>| {
            state.model.set(ModelState::Loading {
                what: format!(
                    "downloading weights: {:.1} / {} MB",
                    loaded / 1e6,
                    total.map_or("?".into(), |t| format!("{:.1}", t / 1e6))
                ),
                fraction: total.map(|t| loaded / t.max(1.0)),
            })
        };
        // The worker (on the module the backend needs) starts while the weights download.
        // Without `?backend=`, a browser with WebGPU starts on the CPU too (the page's module,
        // already compiled) and moves to WebGPU once its module is loaded and warm.
        let inference = state.inference();
        let asked = backend_from_url();
        let upgrade = asked.is_none() && browser::has_navigator_gpu();
        let wanted = asked.unwrap_or(Backend::Cpu);
        let worker = async {
            inference.start(wanted).await;
            browser::mark("worker");
        };
        let (shipped, ()) = futures::future::join(inference.load_shipped(progress), worker).await;
        match shipped {
            Ok(card) => {
                state.card.set(Some(card));
                if wanted == Backend::Cpu && !browser::has_navigator_gpu() {
                    state
                        .backend_note
                        .set("This browser does not offer WebGPU; running on the CPU.".into());
                }
                state.activate(wanted).await;
                if upgrade && state.model.get_untracked() == ModelState::Ready {
                    state.upgrade_to_webgpu().await;
                }
            }
            Err(e) => state.model.set(ModelState::Error(format!(
                "the model could not be loaded: {e}"
            ))),
        }
    });

    view! {
        <header class="top">
            <h1>"Chest X-ray: pneumonia or normal?"</h1>
            <p class="tagline">
                "A ResNet runs in this tab with Burn on WebGPU (or the CPU). Your X-ray never leaves your computer."
            </p>
            <p class="notice" role="note">
                <strong>"Not a medical device. "</strong>
                "A research and teaching demo: do not use it to diagnose or treat anyone."
            </p>
        </header>
        <main>
            <model_panel::ModelStatus />
            <dropzone::DropZone />
            <results::ErrorList />
            <results::ResultsTable />
            <viewer::Viewer />
            <gallery::Gallery />
            <training_panel::TrainingPanel />
            <training_panel::TrainingCurves />
            <training_panel::ValidationGrid />
            <training_panel::BeforeAfter />
            <training_panel::TunedModel />
            <model_panel::ModelCardPanel />
        </main>
        <footer>
            <p>
                "Sample images: Kermany, Zhang, Goldbaum (2018), Labeled Optical Coherence Tomography (OCT) and Chest X-Ray Images for Classification, Mendeley Data, CC BY 4.0."
            </p>
        </footer>
    }
}

/// Mounts the app on `<body>`. Called by `public/boot.js` once the wasm is loaded.
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn start() {
    std::panic::set_hook(Box::new(|info| {
        console_error_panic_hook::hook(info);
        show_fatal(&info.to_string());
    }));
    leptos::mount::mount_to_body(App);
    browser::mark("mounted");
}

/// Shows an unrecoverable failure (for example a lost GPU device or an allocation that failed)
/// in `#fatal`, outside the reactive graph, which may no longer run.
fn show_fatal(detail: &str) {
    let Some(doc) = web_sys::window().and_then(|w| w.document()) else {
        return;
    };
    if let Some(el) = doc.get_element_by_id("fatal") {
        el.set_text_content(Some(&format!(
            "The model runtime failed and this page must be reloaded (your files stay on your computer). A lost GPU device or running out of GPU memory does this; choosing the CPU backend (?backend=cpu) or a smaller batch avoids it. Detail: {detail}"
        )));
        let _ = el.remove_attribute("hidden");
    }
    if let Ok(Some(status)) = doc.query_selector("[data-testid=train-status]") {
        let _ = status.set_attribute("data-state", "error");
    }
}
