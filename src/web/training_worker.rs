//! The training worker: runs a fine-tuning [`Session`] in a dedicated Web Worker, so that
//! neither the GPU's work nor the CPU backend's arithmetic can hold up the page.
//!
//! `public/train-worker.js` loads the app's own wasm in the worker and calls [`train_worker`]. The worker
//! says [`FromWorker::Ready`], receives one [`ToWorker::Start`], and reports every step, every
//! validation pass and finally the weights; [`ToWorker::Control`] messages pause, resume or
//! stop it between steps. A panic (how a lost GPU device or a failed allocation surfaces in the
//! runtime) is reported as [`FromWorker::Failed`] before the worker dies; the page is unharmed.

use std::cell::Cell;

use wasm_bindgen::{JsCast, prelude::Closure};

use super::{
    engine::{self, Backend},
    training_protocol::{
        Control, FromWorker, Pass, StartRun, ToWorker, decode, encode, images_from_bytes,
    },
};
use crate::ml::finetune::{self, Example, FineTuneError, Session};

thread_local! {
    static CONTROL: Cell<Control> = const { Cell::new(Control::Run) };
    static BUSY: Cell<bool> = const { Cell::new(false) };
}

/// Validation images per forward pass.
const EVAL_CHUNK: usize = 8;

fn post(msg: &FromWorker, parts: &[&[u8]]) {
    let Ok(scope) = js_sys::global().dyn_into::<web_sys::DedicatedWorkerGlobalScope>() else {
        return;
    };
    match encode(msg, parts) {
        Ok((value, transfer)) => {
            if let Err(e) = scope.post_message_with_transfer(&value, &transfer) {
                web_sys::console::error_1(&e);
            }
        }
        Err(e) => web_sys::console::error_1(&e.into()),
    }
}

/// The worker's entry point, called by `public/train-worker.js` (it does nothing outside a
/// dedicated worker).
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn train_worker() {
    let Ok(scope) = js_sys::global().dyn_into::<web_sys::DedicatedWorkerGlobalScope>() else {
        return;
    };
    std::panic::set_hook(Box::new(|info| {
        console_error_panic_hook::hook(info);
        post(
            &FromWorker::Failed {
                message: format!(
                    "the training runtime failed, so the run ended; the page and the shipped model still work. A lost GPU device or running out of GPU memory does this: a smaller batch or the CPU backend (?backend=cpu) avoids it. Detail: {info}"
                ),
            },
            &[],
        );
    }));
    let on_message = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(
        |event: web_sys::MessageEvent| match decode::<ToWorker>(&event.data()) {
            Ok((ToWorker::Control(c), _)) => CONTROL.set(c),
            Ok((ToWorker::Start(start), parts)) => {
                if BUSY.replace(true) {
                    post(
                        &FromWorker::Failed {
                            message: "this worker is already training".into(),
                        },
                        &[],
                    );
                    return;
                }
                wasm_bindgen_futures::spawn_local(async move {
                    if let Err(message) = train(*start, parts).await {
                        post(&FromWorker::Failed { message }, &[]);
                    }
                });
            }
            Err(message) => post(&FromWorker::Failed { message }, &[]),
        },
    );
    scope.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    // The worker lives as long as its handler.
    on_message.forget();
    post(&FromWorker::Ready, &[]);
}

/// A failure in words. A failed read is how a lost GPU device, or one out of memory, shows.
fn explain(e: FineTuneError) -> String {
    match e {
        FineTuneError::Read(detail) => format!(
            "the GPU stopped answering (it was lost, reset or out of memory), so the run ended; the page and the shipped model still work. Train again, with a smaller batch, or on the CPU (?backend=cpu). Detail: {}",
            detail.lines().next().unwrap_or_default()
        ),
        e => e.to_string(),
    }
}

/// What the GPU runtime holds on `device`, MB (`None` on the CPU backend).
fn gpu_mb(backend: Backend, device: &burn::prelude::Device) -> Option<f64> {
    (backend == Backend::WebGpu)
        .then(|| device.memory_pool_usage())
        .flatten()
        .map(|u| u.bytes_reserved as f64 / 1e6)
}

async fn train(start: StartRun, parts: Vec<Vec<u8>>) -> Result<(), String> {
    let StartRun {
        card,
        settings,
        backend,
        tune_labels,
        n_val,
    } = start;
    let [base, tune, val]: [Vec<u8>; 3] = parts
        .try_into()
        .map_err(|_| "the start message lacks its data")?;
    let pixels = card.model.input_size * card.model.input_size;
    let tune = images_from_bytes(&tune, pixels)?;
    let val = images_from_bytes(&val, pixels)?;
    if tune.len() != tune_labels.len() || val.len() != n_val {
        return Err("the start message's images and labels do not match".into());
    }
    let asked = Backend::parse(&backend).ok_or("unknown backend")?;
    // A browser may offer WebGPU to pages but not to workers.
    let (backend, device, fallback) = match engine::device(asked).await {
        Ok(device) => (asked, device, None),
        Err(e) if asked == Backend::WebGpu => (
            Backend::Cpu,
            engine::device(Backend::Cpu).await?,
            Some(format!(
                "{e} in the training worker, so it trains on the CPU (slower)"
            )),
        ),
        Err(e) => return Err(e),
    };
    let examples = tune
        .into_iter()
        .zip(tune_labels)
        .map(|(pixels, pneumonia)| Example { pixels, pneumonia })
        .collect();
    let base = (!base.is_empty()).then_some(base);
    let mut session = Session::new(
        &card.model,
        base,
        card.normalization,
        settings,
        examples,
        &device,
    )
    .map_err(|e| e.to_string())?;
    post(
        &FromWorker::Started {
            backend: backend.id().into(),
            fallback,
            steps_per_epoch: session.steps_per_epoch(),
            total_steps: session.total_steps(),
            wasm_mb: engine::wasm_memory_mb(),
        },
        &[],
    );
    let evaluate = |session: &Session, pass: Pass| {
        let model = session.model();
        let (step, epoch) = (session.step(), session.epoch());
        let (val, card, device) = (&val, &card, &device);
        async move {
            let mut probs = Vec::with_capacity(val.len());
            for chunk in val.chunks(EVAL_CHUNK) {
                let imgs: Vec<&[f32]> = chunk.iter().map(Vec::as_slice).collect();
                let p = finetune::probabilities(
                    &model,
                    &imgs,
                    card.normalization,
                    card.model.input_size,
                    device,
                )
                .await
                .map_err(explain)?;
                probs.extend(p);
                post(
                    &FromWorker::Evaluating {
                        done: probs.len(),
                        total: val.len(),
                    },
                    &[],
                );
                engine::yield_now().await;
            }
            post(
                &FromWorker::Probabilities {
                    pass,
                    step,
                    epoch,
                    probs,
                },
                &[],
            );
            Ok::<_, String>(())
        }
    };

    evaluate(&session, Pass::Before).await?;
    let mut evaluated_at = 0;
    let mut stopped = false;
    while !session.finished() {
        match CONTROL.get() {
            Control::Stop => {
                stopped = true;
                break;
            }
            Control::Pause => {
                post(&FromWorker::Paused, &[]);
                while CONTROL.get() == Control::Pause {
                    engine::sleep_ms(100).await;
                }
                post(&FromWorker::Resumed, &[]);
                continue;
            }
            Control::Run => {}
        }
        let t0 = engine::now_ms();
        let r = session.train_step().await.map_err(explain)?;
        post(
            &FromWorker::Step {
                step: session.step(),
                epoch: session.epoch(),
                loss: r.loss,
                correct: r.correct,
                seen: r.seen,
                epoch_finished: r.epoch_finished,
                ms: engine::now_ms() - t0,
                wasm_mb: engine::wasm_memory_mb(),
                gpu_mb: gpu_mb(backend, &device),
            },
            &[],
        );
        if r.epoch_finished {
            evaluate(&session, Pass::Epoch).await?;
            evaluated_at = session.step();
        }
        // Lets the pause and stop messages in.
        engine::yield_now().await;
    }
    if evaluated_at != session.step() {
        evaluate(&session, Pass::Final).await?;
    }
    let weights = session.weights().await.map_err(explain)?;
    post(
        &FromWorker::Done {
            stopped,
            step: session.step(),
            epoch: session.epoch(),
            wasm_mb: engine::wasm_memory_mb(),
        },
        &[&weights],
    );
    Ok(())
}
