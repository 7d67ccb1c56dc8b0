//! A run's training worker: starting it with the data and settings, pause, resume and stop,
//! following its reports through [`RunView::apply`], and letting it go.

use std::{cell::RefCell, rc::Rc};

use leptos::prelude::*;
use wasm_bindgen::{JsCast, JsValue, prelude::Closure};

use super::{
    data,
    state::TrainState,
    tuned,
    view::{Effect, Phase, RunView, Status},
};
use crate::{
    ml::finetune::Settings,
    web::{
        AppState,
        backend::Backend,
        browser,
        error::WebError,
        protocol::{Control, FromWorker, StartRun, ToWorker, decode, encode, f32_bytes},
    },
};

/// The training worker of the current run and its handlers.
pub struct Runner {
    worker: web_sys::Worker,
    /// Whether it has said [`FromWorker::Ready`] (messages sent before are lost).
    ready: bool,
    /// The start message, until the worker is ready for it.
    start: Option<(JsValue, js_sys::Array)>,
    _on_message: Closure<dyn FnMut(web_sys::MessageEvent)>,
    _on_error: Closure<dyn FnMut(web_sys::Event)>,
}

/// Starts a run with the current settings (loading the bundled data first if needed).
pub fn start(ts: TrainState, app: AppState) {
    if ts.status.get_untracked().phase.active() {
        return;
    }
    ts.handles.update_value(|h| h.control = None);
    ts.status.set(Status::starting());
    leptos::task::spawn_local(async move {
        if let Err(e) = launch(ts, app).await {
            ts.fail(e.to_string());
            release_worker(ts);
        }
    });
}

/// Pauses a running run, or resumes a paused one.
pub fn toggle_pause(ts: TrainState) {
    let phase = ts.status.get_untracked().phase;
    let current = ts.handles.with_value(|h| h.control).unwrap_or(Control::Run);
    let control = match (phase, current) {
        (Phase::Paused, _) => Control::Run,
        (Phase::Running, Control::Run) => Control::Pause,
        (_, c) => c,
    };
    ts.handles.update_value(|h| h.control = Some(control));
    send_control(ts, control);
}

/// Stops the run after the current step; the model so far is kept.
pub fn stop(ts: TrainState) {
    ts.handles.update_value(|h| h.control = Some(Control::Stop));
    send_control(ts, Control::Stop);
}

fn send_control(ts: TrainState, control: Control) {
    ts.handles.with_value(|h| {
        if let Some(r) = h.runner.as_ref().filter(|r| r.ready) {
            post(&r.worker, &ToWorker::Control(control));
        }
    });
}

fn post(worker: &web_sys::Worker, msg: &ToWorker) {
    let sent = encode(msg, &[]).and_then(|(value, transfer)| {
        worker
            .post_message_with_transfer(&value, &transfer)
            .map_err(|e| WebError::Browser(browser::error_text(e)))
    });
    if let Err(e) = sent {
        web_sys::console::error_1(&e.to_string().into());
    }
}

/// Terminates the worker (freeing its memory and its GPU device). Its handlers are dropped
/// later, as this may run inside one of them.
fn release_worker(ts: TrainState) {
    let mut runner = None;
    ts.handles.update_value(|h| runner = h.runner.take());
    if let Some(runner) = runner {
        runner.worker.terminate();
        leptos::task::spawn_local(async move {
            browser::yield_now().await;
            drop(runner);
        });
    }
}

/// Prepares the data and settings and hands them to a new training worker.
async fn launch(ts: TrainState, app: AppState) -> Result<(), WebError> {
    let card = app.card.get_untracked().ok_or(WebError::ModelNotLoaded)?;
    if data::loaded(ts).is_none() {
        ts.status
            .update(|s| s.message = "loading the bundled X-rays".into());
        data::load_bundled(ts, card.model.input_size).await?;
    }
    let data = data::loaded(ts)
        .ok_or_else(|| WebError::Refused("no training images are loaded".into()))?;
    let (tune, val) = data.limited(ts.per_class.get_untracked().max(1));
    let backend = app.backend.get_untracked();
    let settings = Settings {
        mode: ts.mode.get_untracked(),
        epochs: ts.epochs.get_untracked(),
        batch: ts.batch.get_untracked(),
        lr: ts.lr.get_untracked(),
        augment: ts.augment.get_untracked(),
        seed: 42,
    };
    let base = app.inference.with_value(|i| i.shipped_weights());
    let start = ToWorker::Start(Box::new(StartRun {
        card: card.clone(),
        settings,
        backend,
        tune_labels: tune.iter().map(|e| e.pneumonia).collect(),
        n_val: val.len(),
    }));
    let start = encode(
        &start,
        &[
            base.as_deref().map(Vec::as_slice).unwrap_or_default(),
            &f32_bytes(tune.iter().flat_map(|e| e.pixels.iter().copied())),
            &f32_bytes(val.iter().flat_map(|v| v.example.pixels.iter().copied())),
        ],
    )?;
    let mut view = RunView::new(
        settings.mode,
        settings.epochs,
        tune.len(),
        val.into_iter().map(|v| v.meta).collect(),
    );
    view.status.message =
        "starting the training worker (it loads its own copy of the model code)".into();
    ts.show(&view);
    ts.export.set(None);
    let view = Rc::new(RefCell::new(view));

    let options = web_sys::WorkerOptions::new();
    options.set_type(web_sys::WorkerType::Module);
    options.set_name(&worker_name(backend));
    let worker =
        web_sys::Worker::new_with_options(&browser::asset_url("public/train-worker.js"), &options)
            .map_err(|e| {
                WebError::Browser(format!(
                    "this browser could not start a worker: {}",
                    browser::error_text(e)
                ))
            })?;
    let on_message =
        Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |event: web_sys::MessageEvent| {
            let effect = match decode::<FromWorker>(&event.data()) {
                Ok((msg, parts)) => view.borrow_mut().apply(msg, parts),
                Err(e) => {
                    view.borrow_mut()
                        .status
                        .fail(format!("the training worker sent {e}"));
                    Effect::Release
                }
            };
            ts.show(&view.borrow());
            follow(ts, app, &view, effect);
        });
    let on_error = Closure::<dyn FnMut(web_sys::Event)>::new(move |event: web_sys::Event| {
        event.prevent_default();
        // A script that did not load reports no message.
        let what = match browser::event_message(&event) {
            m if m.is_empty() => {
                "could not start (its script or the model code did not load)".to_string()
            }
            m => format!("failed: {m}"),
        };
        ts.fail(format!(
            "the training worker {what}; the page and the shipped model still work"
        ));
        release_worker(ts);
    });
    worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    ts.handles.update_value(|h| {
        h.runner = Some(Runner {
            worker,
            ready: false,
            start: Some(start),
            _on_message: on_message,
            _on_error: on_error,
        })
    });
    Ok(())
}

/// Does what the reducer asked.
fn follow(ts: TrainState, app: AppState, view: &Rc<RefCell<RunView>>, effect: Effect) {
    match effect {
        Effect::None => {}
        Effect::SendStart => {
            ts.handles.update_value(|h| {
                let Some(runner) = h.runner.as_mut() else {
                    return;
                };
                runner.ready = true;
                if let Some((value, transfer)) = runner.start.take()
                    && let Err(e) = runner.worker.post_message_with_transfer(&value, &transfer)
                {
                    web_sys::console::error_1(&e);
                }
            });
            // A pause or stop pressed while the worker was loading.
            if let Some(control) = ts.handles.with_value(|h| h.control)
                && control != Control::Run
            {
                send_control(ts, control);
            }
        }
        Effect::Release => release_worker(ts),
        Effect::Load {
            weights,
            description,
            stopped,
        } => {
            release_worker(ts);
            let view = view.clone();
            leptos::task::spawn_local(async move {
                let card = app.card.get_untracked();
                match tuned::load_trained(ts, app, card, weights, description).await {
                    Ok(()) => view.borrow_mut().finish(stopped),
                    Err(e) => view
                        .borrow_mut()
                        .status
                        .fail(format!("the trained weights could not be used: {e}")),
                }
                ts.show(&view.borrow());
            });
        }
    }
}

/// The worker's name: which module it loads (`module=xray-web-gpu`, the WebGPU workers' module,
/// when it is to train on WebGPU; the page's own otherwise, [`browser::MODULE`]) and the page's
/// failure drills if any (`lose-gpu-at-step=N`, `train-worker-webgpu=off`, passed on as
/// `worker-webgpu=off`; see `public/train-worker.js`). A query on the script's URL would not survive the service
/// worker's cache.
fn worker_name(backend: Backend) -> String {
    let module = match backend {
        Backend::WebGpu => browser::GPU_MODULE,
        Backend::Cpu => browser::MODULE,
    };
    let mut name = format!("xray-web training; module={module}");
    if let Some(n) = browser::page_param("lose-gpu-at-step").and_then(|n| n.parse::<u32>().ok()) {
        name.push_str(&format!("; lose-gpu-at-step={n}"));
    }
    if browser::page_param("train-worker-webgpu").as_deref() == Some("off") {
        name.push_str("; worker-webgpu=off");
    }
    name
}
