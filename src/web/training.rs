//! Demo training in the page: the data (the bundled subset or the visitor's own images), the
//! settings, the run (handed to a training worker, see [`super::training_worker`], so that the
//! page never waits for the GPU or the CPU backend), the panels' state it feeds from the
//! worker's reports, and the fine-tuned model it leaves behind.

use std::{cell::RefCell, rc::Rc};

use leptos::prelude::*;
use wasm_bindgen::{JsCast, JsValue, prelude::Closure};

use super::{
    AppState,
    engine::{self, Backend},
    training_protocol::{Control, FromWorker, Pass, StartRun, ToWorker, decode, encode, f32_bytes},
};
use crate::ml::{
    card::ModelCard,
    class::Class,
    classifier::{Classifier, Prediction},
    finetune::{Example, Mode, Settings},
    metrics::{self, Confusion},
    preprocess, split,
    subset::{Part, SubsetManifest, label_from_path},
    weights,
};

/// Where the training images come from and whether they are ready.
#[derive(Debug, Clone, PartialEq)]
pub enum DataStatus {
    /// Nothing loaded yet.
    Empty,
    /// Fetching or decoding; fraction done.
    Loading(String, f64),
    /// Ready: a description.
    Ready(String),
    /// Could not be loaded.
    Error(String),
}

/// Phase of a run, mirrored in `[data-testid=train-status] data-state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Phase {
    /// No run yet.
    #[default]
    Idle,
    /// Training or evaluating.
    Running,
    /// Paused between steps.
    Paused,
    /// Finished (all epochs, or stopped early).
    Done,
    /// Failed; see the message.
    Error,
}

impl Phase {
    /// The contract's name.
    pub fn id(self) -> &'static str {
        match self {
            Phase::Idle => "idle",
            Phase::Running => "running",
            Phase::Paused => "paused",
            Phase::Done => "done",
            Phase::Error => "error",
        }
    }
}

/// Progress of the current run.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Status {
    /// Phase.
    pub phase: Phase,
    /// What is happening, in words.
    pub message: String,
    /// Epochs completed.
    pub epoch: usize,
    /// Epochs asked for.
    pub epochs: usize,
    /// Steps completed.
    pub step: usize,
    /// Steps in the run.
    pub total_steps: usize,
    /// Latest training loss.
    pub loss: Option<f32>,
    /// Latest validation accuracy.
    pub val_accuracy: Option<f64>,
    /// Training throughput (evaluation excluded).
    pub images_per_sec: f64,
    /// Seconds left, estimated from the steps so far.
    pub eta_s: Option<f64>,
    /// The training worker's wasm memory, MB.
    pub wasm_mb: f64,
    /// GPU memory held by the training run, MB (WebGPU only).
    pub gpu_mb: Option<f64>,
    /// Backend of the run.
    pub backend: &'static str,
}

/// How a model does on the validation part.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Images.
    pub n: usize,
    /// Accuracy at the model's threshold.
    pub accuracy: f64,
    /// ROC AUC.
    pub auc: f64,
    /// Mean cross-entropy.
    pub loss: f64,
    /// Confusion matrix.
    pub confusion: Confusion,
    /// ROC curve points.
    pub roc: Vec<(f64, f64)>,
    /// After how many steps.
    pub step: usize,
}

impl Evaluation {
    fn new(probs: &[f32], truth: &[bool], threshold: f32, step: usize) -> Self {
        let m = metrics::evaluate(probs, truth, threshold);
        let loss = probs
            .iter()
            .zip(truth)
            .map(|(&p, &y)| {
                let p = f64::from(if y { p } else { 1.0 - p });
                -p.max(1e-7).ln()
            })
            .sum::<f64>()
            / probs.len().max(1) as f64;
        Self {
            n: m.n,
            accuracy: m.accuracy,
            auc: m.auc,
            loss,
            confusion: m.confusion,
            roc: metrics::roc_curve(probs, truth),
            step,
        }
    }
}

/// The curves, x in epochs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Curves {
    /// Training loss of each step.
    pub step_loss: Vec<(f64, f64)>,
    /// Mean training loss of each epoch.
    pub train_loss: Vec<(f64, f64)>,
    /// Training accuracy of each epoch (on augmented images, before each update).
    pub train_accuracy: Vec<(f64, f64)>,
    /// Validation loss after each epoch (and before training, at 0).
    pub val_loss: Vec<(f64, f64)>,
    /// Validation accuracy after each epoch (and before training, at 0).
    pub val_accuracy: Vec<(f64, f64)>,
}

/// One validation image in the grid.
#[derive(Debug, Clone, PartialEq)]
pub struct GridItem {
    /// Name.
    pub name: String,
    /// Picture URL.
    pub thumb: String,
    /// True label.
    pub truth: Class,
    /// Predicted label (at 0.5).
    pub predicted: Class,
    /// P(pneumonia).
    pub p: f32,
}

/// Links to the exported fine-tuned model.
#[derive(Debug, Clone, PartialEq)]
pub struct Export {
    /// Object URL of the weights (burnpack, f32).
    pub weights_url: String,
    /// Object URL of its model card.
    pub card_url: String,
    /// Size of the weights.
    pub bytes: usize,
}

/// What the page shows about training.
#[derive(Clone, Copy)]
pub struct TrainState {
    /// The data.
    pub data: RwSignal<DataStatus>,
    /// Files of the visitor's that could not be used.
    pub skipped: RwSignal<Vec<String>>,
    /// Setting: mode.
    pub mode: RwSignal<Mode>,
    /// Setting: epochs.
    pub epochs: RwSignal<usize>,
    /// Setting: batch size.
    pub batch: RwSignal<usize>,
    /// Setting: learning rate.
    pub lr: RwSignal<f64>,
    /// Setting: augmentation.
    pub augment: RwSignal<bool>,
    /// Setting: fine-tuning images per class (validation gets half as many).
    pub per_class: RwSignal<usize>,
    /// Progress.
    pub status: RwSignal<Status>,
    /// Curves.
    pub curves: RwSignal<Curves>,
    /// Validation grid.
    pub grid: RwSignal<Vec<GridItem>>,
    /// The starting model on the validation part.
    pub before: RwSignal<Option<Evaluation>>,
    /// The trained model on the validation part.
    pub after: RwSignal<Option<Evaluation>>,
    /// The fine-tuned model in use, described.
    pub tuned: RwSignal<Option<String>>,
    /// Problems with loading weights from a file.
    pub weights_error: RwSignal<Option<String>>,
    /// Exported weights.
    pub export: RwSignal<Option<Export>>,
}

impl TrainState {
    /// Fresh state with default settings.
    pub fn new() -> Self {
        Self {
            data: RwSignal::new(DataStatus::Empty),
            skipped: RwSignal::new(Vec::new()),
            mode: RwSignal::new(Mode::Head),
            epochs: RwSignal::new(3),
            batch: RwSignal::new(8),
            lr: RwSignal::new(Mode::Head.default_lr()),
            augment: RwSignal::new(true),
            per_class: RwSignal::new(100),
            status: RwSignal::new(Status::default()),
            curves: RwSignal::new(Curves::default()),
            grid: RwSignal::new(Vec::new()),
            before: RwSignal::new(None),
            after: RwSignal::new(None),
            tuned: RwSignal::new(None),
            weights_error: RwSignal::new(None),
            export: RwSignal::new(None),
        }
    }
}

impl Default for TrainState {
    fn default() -> Self {
        Self::new()
    }
}

/// A validation image with its picture.
#[derive(Clone)]
struct ValImage {
    example: Example,
    name: String,
    thumb: String,
}

/// Training data held outside the reactive graph (it is large).
struct Dataset {
    tune: Vec<Example>,
    val: Vec<ValImage>,
}

thread_local! {
    static DATA: RefCell<Option<Rc<Dataset>>> = const { RefCell::new(None) };
    static TUNED: RefCell<Option<Rc<Classifier>>> = const { RefCell::new(None) };
    static CONTROL: RefCell<Control> = const { RefCell::new(Control::Run) };
    static RUNNER: RefCell<Option<Runner>> = const { RefCell::new(None) };
    static URLS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

fn forget_urls() {
    for url in URLS.with_borrow_mut(std::mem::take) {
        let _ = web_sys::Url::revoke_object_url(&url);
    }
}

/// The fine-tuned (or loaded) model, if any.
pub fn tuned() -> Option<Rc<Classifier>> {
    TUNED.with_borrow(|t| t.clone())
}

/// Classifies with the fine-tuned model too, for the side-by-side column.
pub async fn classify_tuned(x: &[f32]) -> Option<Result<Prediction, String>> {
    let t = tuned()?;
    Some(
        t.classify_async(&[x.to_vec()])
            .await
            .map_err(|e| e.to_string())
            .and_then(|p| p.into_iter().next().ok_or_else(|| "no output".into())),
    )
}

/// Fetches and decodes the bundled subset (once).
pub async fn load_bundled(ts: TrainState, size: usize) -> Result<(), String> {
    ts.data.set(DataStatus::Loading(
        "downloading the bundled X-rays".into(),
        0.0,
    ));
    let result = async {
        let bytes =
            engine::fetch_bytes(&engine::asset_url("public/train/subset.json"), |_, _| {}).await?;
        let manifest: SubsetManifest =
            serde_json::from_slice(&bytes).map_err(|e| format!("subset.json: {e}"))?;
        let data = engine::fetch_bytes(
            &engine::asset_url(&format!("public/train/{}", manifest.data)),
            |loaded, total| {
                ts.data.set(DataStatus::Loading(
                    format!(
                        "downloading the bundled X-rays: {:.2} / {:.2} MB",
                        loaded / 1e6,
                        total.unwrap_or(manifest.bytes as f64) / 1e6
                    ),
                    0.5 * loaded / total.unwrap_or(manifest.bytes as f64).max(1.0),
                ))
            },
        )
        .await?;
        let mut tune = Vec::new();
        let mut val = Vec::new();
        let n = manifest.images.len();
        for (i, img) in manifest.images.iter().enumerate() {
            let jpeg = manifest.bytes_of(img, &data).map_err(|e| e.to_string())?;
            let gray = preprocess::decode_gray16(jpeg).map_err(|e| format!("{}: {e}", img.name))?;
            let example = Example {
                pixels: preprocess::to_square_unit(&gray, size),
                pneumonia: img.pneumonia(),
            };
            match img.part {
                Part::Train => tune.push(example),
                Part::Val => {
                    let thumb = engine::blob_url(jpeg, "image/jpeg").unwrap_or_default();
                    URLS.with_borrow_mut(|u| u.push(thumb.clone()));
                    val.push(ValImage {
                        example,
                        name: img.name.clone(),
                        thumb,
                    });
                }
            }
            if i % 25 == 24 {
                ts.data.set(DataStatus::Loading(
                    format!("decoding the bundled X-rays: {}/{n}", i + 1),
                    0.5 + 0.5 * (i + 1) as f64 / n as f64,
                ));
                engine::yield_now().await;
            }
        }
        Ok::<_, String>((tune, val, manifest.license))
    }
    .await;
    match result {
        Ok((tune, val, license)) => {
            ts.data.set(DataStatus::Ready(describe(
                &tune,
                &val,
                &format!("bundled real X-rays ({license})"),
            )));
            DATA.with_borrow_mut(|d| *d = Some(Rc::new(Dataset { tune, val })));
            ts.skipped.set(Vec::new());
            Ok(())
        }
        Err(e) => {
            ts.data.set(DataStatus::Error(e.clone()));
            Err(e)
        }
    }
}

fn describe(tune: &[Example], val: &[ValImage], what: &str) -> String {
    let pn = |it: &mut dyn Iterator<Item = bool>| {
        let v: Vec<bool> = it.collect();
        let p = v.iter().filter(|&&b| b).count();
        format!("{} NORMAL + {} PNEUMONIA", v.len() - p, p)
    };
    format!(
        "{}: fine-tuning {}, validation {}.",
        what,
        pn(&mut tune.iter().map(|e| e.pneumonia)),
        pn(&mut val.iter().map(|v| v.example.pneumonia))
    )
}

/// Decodes the visitor's files (each with its label, or `None` to take it from the folder
/// name) and splits them by patient, stratified and seeded, 80 % fine-tuning / 20 % validation.
pub async fn load_user_files(
    ts: TrainState,
    files: Vec<(web_sys::File, Option<bool>)>,
    size: usize,
) {
    let n = files.len();
    let mut skipped = Vec::new();
    let mut items: Vec<(Example, String, String)> = Vec::new();
    for (i, (file, label)) in files.into_iter().enumerate() {
        ts.data.set(DataStatus::Loading(
            format!("reading your images: {}/{n}", i + 1),
            i as f64 / n.max(1) as f64,
        ));
        let path = engine::relative_path(&file);
        let Some(pneumonia) = label.or_else(|| label_from_path(&path)) else {
            skipped.push(format!(
                "{path}: not inside a folder named NORMAL or PNEUMONIA, so its label is unknown"
            ));
            continue;
        };
        let decoded = match engine::file_bytes(&file).await {
            Ok(bytes) => preprocess::decode_gray16(&bytes).map_err(|e| e.to_string()),
            Err(e) => Err(format!("could not be read: {e}")),
        };
        match decoded {
            Ok(gray) => {
                let thumb = web_sys::Url::create_object_url_with_blob(&file).unwrap_or_default();
                URLS.with_borrow_mut(|u| u.push(thumb.clone()));
                items.push((
                    Example {
                        pixels: preprocess::to_square_unit(&gray, size),
                        pneumonia,
                    },
                    file.name(),
                    thumb,
                ));
            }
            Err(e) => skipped.push(format!("{path}: {e}")),
        }
        engine::yield_now().await;
    }
    // 20 % held out by patient where the file names carry one (split::patient_id), else by file.
    let named: Vec<(&str, bool)> = items
        .iter()
        .map(|(e, name, _)| (name.as_str(), e.pneumonia))
        .collect();
    let held = split::holdout(&named, 0.2, 7);
    let mut tune = Vec::new();
    let mut val = Vec::new();
    for ((example, name, thumb), held) in items.iter().zip(held) {
        if held {
            val.push(ValImage {
                example: example.clone(),
                name: name.clone(),
                thumb: thumb.clone(),
            });
        } else {
            tune.push(example.clone());
        }
    }
    ts.skipped.set(skipped);
    let classes = |v: &mut dyn Iterator<Item = bool>| {
        let v: Vec<bool> = v.collect();
        v.contains(&true) && v.contains(&false)
    };
    if !classes(&mut tune.iter().map(|e| e.pneumonia))
        || !classes(&mut val.iter().map(|v| v.example.pneumonia))
    {
        ts.data.set(DataStatus::Error(format!(
            "your images need at least 2 usable images of each class (NORMAL and PNEUMONIA); {} were usable",
            items.len()
        )));
        return;
    }
    ts.data.set(DataStatus::Ready(describe(
        &tune,
        &val,
        "your images (they stay in this tab)",
    )));
    DATA.with_borrow_mut(|d| *d = Some(Rc::new(Dataset { tune, val })));
}

/// Starts a run with the current settings (loading the bundled data first if needed).
pub fn start(ts: TrainState, app: AppState) {
    if matches!(
        ts.status.get_untracked().phase,
        Phase::Running | Phase::Paused
    ) {
        return;
    }
    CONTROL.with_borrow_mut(|c| *c = Control::Run);
    ts.status.set(Status {
        phase: Phase::Running,
        message: "starting".into(),
        ..Status::default()
    });
    leptos::task::spawn_local(async move {
        if let Err(e) = launch(ts, app).await {
            fail(ts, e);
        }
    });
}

/// Pauses a running run, or resumes a paused one.
pub fn toggle_pause(ts: TrainState) {
    let phase = ts.status.get_untracked().phase;
    let control = CONTROL.with_borrow_mut(|c| {
        *c = match (phase, *c) {
            (Phase::Paused, _) => Control::Run,
            (Phase::Running, Control::Run) => Control::Pause,
            (_, c) => c,
        };
        *c
    });
    send_control(control);
}

/// Stops the run after the current step; the model so far is kept.
pub fn stop() {
    CONTROL.with_borrow_mut(|c| *c = Control::Stop);
    send_control(Control::Stop);
}

fn send_control(control: Control) {
    RUNNER.with_borrow(|r| {
        if let Some(r) = r.as_ref().filter(|r| r.ready) {
            post(&r.worker, &ToWorker::Control(control), &[]);
        }
    });
}

fn post(worker: &web_sys::Worker, msg: &ToWorker, parts: &[&[u8]]) {
    let sent = encode(msg, parts).and_then(|(value, transfer)| {
        worker
            .post_message_with_transfer(&value, &transfer)
            .map_err(engine::error_text)
    });
    if let Err(e) = sent {
        web_sys::console::error_1(&e.into());
    }
}

fn set_message(ts: TrainState, message: String) {
    ts.status.update(|s| s.message = message);
}

/// Ends the run with `message` and lets the worker go.
fn fail(ts: TrainState, message: String) {
    ts.status.update(|s| {
        s.phase = Phase::Error;
        s.message = message;
    });
    release_worker();
}

/// Terminates the worker (freeing its memory and its GPU device). Its handlers are dropped
/// later, as this may run inside one of them.
fn release_worker() {
    if let Some(runner) = RUNNER.with_borrow_mut(Option::take) {
        runner.worker.terminate();
        leptos::task::spawn_local(async move {
            engine::yield_now().await;
            drop(runner);
        });
    }
}

fn grid(val: &[ValImage], probs: &[f32]) -> Vec<GridItem> {
    val.iter()
        .zip(probs)
        .map(|(v, &p)| GridItem {
            name: v.name.clone(),
            thumb: v.thumb.clone(),
            truth: Class::from_pneumonia(v.example.pneumonia),
            predicted: Class::from_pneumonia(p >= 0.5),
            p,
        })
        .collect()
}

fn limited(data: &Dataset, per_class: usize) -> (Vec<Example>, Vec<ValImage>) {
    let per_val = per_class.div_ceil(2).max(1);
    let mut tune = Vec::new();
    let mut val = Vec::new();
    for class in [false, true] {
        tune.extend(
            data.tune
                .iter()
                .filter(|e| e.pneumonia == class)
                .take(per_class)
                .cloned(),
        );
        val.extend(
            data.val
                .iter()
                .filter(|v| v.example.pneumonia == class)
                .take(per_val)
                .cloned(),
        );
    }
    (tune, val)
}

/// The training worker of the current run and its handlers.
struct Runner {
    worker: web_sys::Worker,
    /// Whether it has said [`FromWorker::Ready`] (messages sent before are lost).
    ready: bool,
    _on_message: Closure<dyn FnMut(web_sys::MessageEvent)>,
    _on_error: Closure<dyn FnMut(web_sys::ErrorEvent)>,
}

/// What the page keeps about a run while the worker trains.
struct Run {
    ts: TrainState,
    card: ModelCard,
    /// The backend it trains on (the worker may fall back to the CPU).
    backend: Backend,
    /// The page's backend, where the trained model will run.
    page_backend: Backend,
    settings: Settings,
    n_tune: usize,
    val: Vec<ValImage>,
    truth: Vec<bool>,
    /// The start message, until the worker is ready for it.
    start: Option<(JsValue, js_sys::Array)>,
    steps_per_epoch: usize,
    train_ms: f64,
    images: usize,
    epoch_loss: f64,
    epoch_correct: usize,
    epoch_seen: usize,
    last: Option<Evaluation>,
}

/// Prepares the data and settings and hands them to a new training worker.
async fn launch(ts: TrainState, app: AppState) -> Result<(), String> {
    let card = app
        .card
        .get_untracked()
        .ok_or("the model is not loaded yet")?;
    if DATA.with_borrow(Option::is_none) {
        set_message(ts, "loading the bundled X-rays".into());
        load_bundled(ts, card.model.input_size).await?;
    }
    let data = DATA
        .with_borrow(Clone::clone)
        .ok_or("no training images are loaded")?;
    let (tune, val) = limited(&data, ts.per_class.get_untracked().max(1));
    let backend = app.backend.get_untracked();
    let settings = Settings {
        mode: ts.mode.get_untracked(),
        epochs: ts.epochs.get_untracked(),
        batch: ts.batch.get_untracked(),
        lr: ts.lr.get_untracked(),
        augment: ts.augment.get_untracked(),
        seed: 42,
    };
    let base = engine::shipped_weights().map(|w| w.as_ref().clone());
    let start = ToWorker::Start(Box::new(StartRun {
        card: card.clone(),
        settings,
        backend: backend.id().into(),
        tune_labels: tune.iter().map(|e| e.pneumonia).collect(),
        n_val: val.len(),
    }));
    let start = encode(
        &start,
        &[
            base.as_deref().unwrap_or_default(),
            &f32_bytes(tune.iter().flat_map(|e| e.pixels.iter().copied())),
            &f32_bytes(val.iter().flat_map(|v| v.example.pixels.iter().copied())),
        ],
    )?;
    ts.curves.set(Curves::default());
    ts.after.set(None);
    ts.export.set(None);
    set_message(
        ts,
        "starting the training worker (it loads its own copy of the model code)".into(),
    );

    let run = Rc::new(RefCell::new(Run {
        ts,
        card,
        backend,
        page_backend: backend,
        settings,
        n_tune: tune.len(),
        truth: val.iter().map(|v| v.example.pneumonia).collect(),
        val,
        start: Some(start),
        steps_per_epoch: 1,
        train_ms: 0.0,
        images: 0,
        epoch_loss: 0.0,
        epoch_correct: 0,
        epoch_seen: 0,
        last: None,
    }));
    let options = web_sys::WorkerOptions::new();
    options.set_type(web_sys::WorkerType::Module);
    options.set_name(&worker_name());
    let worker =
        web_sys::Worker::new_with_options(&engine::asset_url("public/train-worker.js"), &options)
            .map_err(|e| {
            format!(
                "this browser could not start a worker: {}",
                engine::error_text(e)
            )
        })?;
    let on_message =
        Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |event: web_sys::MessageEvent| {
            match decode::<FromWorker>(&event.data()) {
                Ok((msg, parts)) => on_message(&run, msg, parts),
                Err(e) => fail(ts, format!("the training worker sent {e}")),
            }
        });
    let on_error =
        Closure::<dyn FnMut(web_sys::ErrorEvent)>::new(move |event: web_sys::ErrorEvent| {
            event.prevent_default();
            // A script that did not load reports no message.
            let what = match event.message() {
                m if m.is_empty() => {
                    "could not start (its script or the model code did not load)".to_string()
                }
                m => format!("failed: {m}"),
            };
            fail(
                ts,
                format!("the training worker {what}; the page and the shipped model still work"),
            );
        });
    worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    RUNNER.with_borrow_mut(|r| {
        *r = Some(Runner {
            worker,
            ready: false,
            _on_message: on_message,
            _on_error: on_error,
        })
    });
    Ok(())
}

/// The worker's name, carrying the page's failure drills if any (`lose-gpu-at-step=N`,
/// `worker-webgpu=off`; see `public/train-worker.js`). A query on the script's URL would not
/// survive the service worker's cache.
fn worker_name() -> String {
    let params = web_sys::window()
        .and_then(|w| w.location().search().ok())
        .and_then(|q| web_sys::UrlSearchParams::new_with_str(&q).ok());
    let mut name = "xray-web training".to_string();
    if let Some(p) = params {
        if let Some(n) = p
            .get("lose-gpu-at-step")
            .and_then(|n| n.parse::<u32>().ok())
        {
            name.push_str(&format!("; lose-gpu-at-step={n}"));
        }
        if p.get("worker-webgpu").as_deref() == Some("off") {
            name.push_str("; worker-webgpu=off");
        }
    }
    name
}

/// Follows the worker's reports.
fn on_message(run: &Rc<RefCell<Run>>, msg: FromWorker, parts: Vec<Vec<u8>>) {
    let mut r = run.borrow_mut();
    let ts = r.ts;
    match msg {
        FromWorker::Ready => {
            let start = r.start.take();
            RUNNER.with_borrow_mut(|runner| {
                let Some(runner) = runner.as_mut() else {
                    return;
                };
                runner.ready = true;
                if let Some((value, transfer)) = start
                    && let Err(e) = runner.worker.post_message_with_transfer(&value, &transfer)
                {
                    web_sys::console::error_1(&e);
                }
            });
            // A pause or stop pressed while the worker was loading.
            let control = CONTROL.with_borrow(|c| *c);
            if control != Control::Run {
                send_control(control);
            }
        }
        FromWorker::Started {
            backend,
            fallback,
            steps_per_epoch,
            total_steps,
            wasm_mb,
        } => {
            r.steps_per_epoch = steps_per_epoch.max(1);
            r.backend = Backend::parse(&backend).unwrap_or(r.backend);
            let (epochs, backend) = (r.settings.epochs, r.backend.id());
            let n_val = r.val.len();
            ts.status.update(|s| {
                s.message = format!(
                    "{}evaluating the starting model on {n_val} validation images",
                    fallback.map_or(String::new(), |f| format!("{f}; "))
                );
                s.epochs = epochs;
                s.total_steps = total_steps;
                s.wasm_mb = wasm_mb;
                s.backend = backend;
            });
        }
        FromWorker::Evaluating { done, total } => set_message(
            ts,
            format!("evaluating on validation images: {done}/{total}"),
        ),
        FromWorker::Probabilities {
            pass,
            step,
            epoch,
            probs,
        } => {
            let ev = Evaluation::new(&probs, &r.truth, 0.5, step);
            ts.grid.set(grid(&r.val, &probs));
            let epoch = epoch as f64;
            match pass {
                Pass::Before => {
                    ts.curves.update(|c| {
                        c.val_loss.push((0.0, ev.loss));
                        c.val_accuracy.push((0.0, ev.accuracy));
                    });
                    ts.before.set(Some(ev.clone()));
                }
                Pass::Epoch => {
                    let seen = r.epoch_seen.max(1) as f64;
                    let (loss, correct) = (r.epoch_loss / seen, r.epoch_correct as f64 / seen);
                    ts.curves.update(|c| {
                        c.train_loss.push((epoch, loss));
                        c.train_accuracy.push((epoch, correct));
                        c.val_loss.push((epoch, ev.loss));
                        c.val_accuracy.push((epoch, ev.accuracy));
                    });
                    (r.epoch_loss, r.epoch_correct, r.epoch_seen) = (0.0, 0, 0);
                    ts.status.update(|s| s.val_accuracy = Some(ev.accuracy));
                }
                Pass::Final => ts.status.update(|s| s.val_accuracy = Some(ev.accuracy)),
            }
            r.last = Some(ev);
        }
        FromWorker::Step {
            step,
            epoch,
            loss,
            correct,
            seen,
            epoch_finished: _,
            ms,
            wasm_mb,
            gpu_mb,
        } => {
            r.train_ms += ms;
            r.images += seen;
            r.epoch_loss += f64::from(loss) * seen as f64;
            r.epoch_correct += correct;
            r.epoch_seen += seen;
            let x = step as f64 / r.steps_per_epoch as f64;
            ts.curves.update(|c| c.step_loss.push((x, f64::from(loss))));
            let (train_ms, images, epochs) = (r.train_ms, r.images, r.settings.epochs);
            let per_step_ms = train_ms / step.max(1) as f64;
            ts.status.update(|s| {
                s.step = step;
                s.epoch = epoch;
                s.loss = Some(loss);
                s.images_per_sec = images as f64 / (train_ms / 1000.0).max(1e-9);
                s.eta_s = Some(s.total_steps.saturating_sub(step) as f64 * per_step_ms / 1000.0);
                s.wasm_mb = wasm_mb;
                s.gpu_mb = gpu_mb;
                s.message = format!(
                    "epoch {} of {epochs}, step {step} of {}",
                    (epoch + 1).min(epochs),
                    s.total_steps
                );
            });
        }
        FromWorker::Paused => ts.status.update(|s| {
            s.phase = Phase::Paused;
            s.message = "paused".into();
        }),
        FromWorker::Resumed => ts.status.update(|s| s.phase = Phase::Running),
        FromWorker::Done {
            stopped,
            step,
            epoch,
            wasm_mb,
        } => {
            release_worker();
            let Some(weights) = parts.into_iter().next() else {
                return fail(ts, "the training worker sent no weights".into());
            };
            ts.after.set(r.last.clone());
            ts.status.update(|s| s.wasm_mb = wasm_mb);
            let description = format!(
                "{} on {} images for {step} step{} ({epoch} epoch{}{}) on {}",
                match r.settings.mode {
                    Mode::Head => "head fine-tuned",
                    Mode::Whole => "whole network fine-tuned",
                    Mode::Scratch => "trained from scratch",
                },
                r.n_tune,
                if step == 1 { "" } else { "s" },
                if epoch == 1 { "" } else { "s" },
                if stopped { ", stopped early" } else { "" },
                r.backend.label()
            );
            let mut card = r.card.clone();
            card.name = format!("{} ({description})", r.card.name);
            card.threshold = 0.5;
            card.temperature = 1.0;
            card.weights = "xray-finetuned.bpk".into();
            card.weights_dtype = "f32".into();
            card.validation = None;
            card.history = Vec::new();
            let backend = r.page_backend;
            leptos::task::spawn_local(async move {
                let loaded = match engine::device(backend).await {
                    Ok(device) => {
                        Classifier::load(card, weights, device).map_err(|e| e.to_string())
                    }
                    Err(e) => Err(e),
                };
                match loaded {
                    Ok(classifier) => {
                        TUNED.with_borrow_mut(|t| *t = Some(Rc::new(classifier)));
                        ts.tuned.set(Some(description));
                        ts.status.update(|s| {
                            s.phase = Phase::Done;
                            s.eta_s = Some(0.0);
                            s.message = if stopped {
                                "stopped; the model as it was is kept".into()
                            } else {
                                "done".into()
                            };
                        });
                    }
                    Err(e) => fail(ts, format!("the trained weights could not be used: {e}")),
                }
            });
        }
        FromWorker::Failed { message } => fail(ts, message),
    }
}

/// Exports the fine-tuned model: weights (f32 burnpack) and its card, as object URLs.
pub async fn export(ts: TrainState) -> Result<Export, String> {
    let t = tuned().ok_or("there is no fine-tuned model yet")?;
    let bytes = weights::to_bytes_async(&t.model, weights::Precision::F32)
        .await
        .map_err(|e| e.to_string())?;
    let mut card = t.card.clone();
    card.weights_bytes = bytes.len();
    let json = serde_json::to_vec_pretty(&card).map_err(|e| e.to_string())?;
    if let Some(old) = ts.export.get_untracked() {
        let _ = web_sys::Url::revoke_object_url(&old.weights_url);
        let _ = web_sys::Url::revoke_object_url(&old.card_url);
    }
    let export = Export {
        weights_url: engine::blob_url(&bytes, "application/octet-stream")
            .ok_or("the browser refused to create a download")?,
        card_url: engine::blob_url(&json, "application/json")
            .ok_or("the browser refused to create a download")?,
        bytes: bytes.len(),
    };
    ts.export.set(Some(export.clone()));
    Ok(export)
}

/// Loads weights chosen by the visitor (a `.bpk`, optionally with its `card.json`) as the
/// fine-tuned model. Without a card the shipped model's architecture and normalisation are
/// assumed, with threshold 0.5 and no temperature.
pub async fn load_weights(ts: TrainState, app: AppState, files: Vec<web_sys::File>) {
    ts.weights_error.set(None);
    let result = async {
        let shipped = app
            .card
            .get_untracked()
            .ok_or("the model is not loaded yet")?;
        let (cards, others): (Vec<_>, Vec<_>) = files
            .into_iter()
            .partition(|f| f.name().to_ascii_lowercase().ends_with(".json"));
        let weights_file = others
            .into_iter()
            .next()
            .ok_or("choose a weights file (.bpk), optionally with its card.json")?;
        let card = match cards.first() {
            Some(f) => {
                let bytes = engine::file_bytes(f).await?;
                serde_json::from_slice::<ModelCard>(&bytes)
                    .map_err(|e| format!("{} is not a model card: {e}", f.name()))?
            }
            None => {
                let mut c = shipped.clone();
                c.threshold = 0.5;
                c.temperature = 1.0;
                c.validation = None;
                c.history = Vec::new();
                c
            }
        };
        let bytes = engine::file_bytes(&weights_file).await?;
        let backend = app.backend.get_untracked();
        let device = engine::device(backend).await?;
        let name = weights_file.name();
        let mut card = card;
        card.name = format!("loaded from {name}");
        let classifier =
            Classifier::load(card, bytes, device).map_err(|e| format!("{name}: {e}"))?;
        Ok::<_, String>((classifier, name, backend))
    }
    .await;
    match result {
        Ok((classifier, name, backend)) => {
            TUNED.with_borrow_mut(|t| *t = Some(Rc::new(classifier)));
            ts.tuned
                .set(Some(format!("loaded from {name} on {}", backend.label())));
        }
        Err(e) => ts.weights_error.set(Some(e)),
    }
}

/// Forgets the data (and the object URLs of its pictures).
pub fn clear_data(ts: TrainState) {
    DATA.with_borrow_mut(|d| *d = None);
    forget_urls();
    ts.grid.set(Vec::new());
    ts.data.set(DataStatus::Empty);
    ts.skipped.set(Vec::new());
}
