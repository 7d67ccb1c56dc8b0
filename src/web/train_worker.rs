//! The training worker: runs a fine-tuning [`Session`] in a dedicated Web Worker, so that
//! neither the GPU's work nor the CPU backend's arithmetic can hold up the page.
//!
//! `public/train-worker.js` loads the app's own wasm in the worker and calls [`train_worker`]. The worker
//! says [`FromWorker::Ready`], receives one [`ToWorker::Start`], and reports every step, every
//! validation pass and finally the weights; [`ToWorker::Control`] messages pause, resume or
//! stop it between steps. A panic (how a lost GPU device or a failed allocation surfaces in the
//! runtime) is reported as [`FromWorker::Failed`] before the worker dies; the page is unharmed.

use std::{cell::Cell, rc::Rc};

use wasm_bindgen::{JsCast, prelude::Closure};

use super::{
    backend::Backend,
    browser, engine,
    error::WebError,
    protocol::{Control, Failure, FromWorker, Pass, RunInputs, StartRun, ToWorker, decode},
};
use crate::ml::finetune::{self, Session};

/// Validation images per forward pass.
const EVAL_CHUNK: usize = 8;

fn post(msg: &FromWorker, parts: &[&[u8]]) {
    super::protocol::post_to_page(msg, parts);
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
                kind: Failure::Runtime,
                message: format!(
                    "the training runtime failed, so the run ended; the page and the shipped model still work. A lost GPU device or running out of GPU memory does this: a smaller batch or the CPU backend (?backend=cpu) avoids it. Detail: {info}"
                ),
            },
            &[],
        );
    }));
    // What the page last asked for; read by the run between steps.
    let control = Rc::new(Cell::new(Control::Run));
    let busy = Cell::new(false);
    let on_message =
        Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |event: web_sys::MessageEvent| {
            match decode::<ToWorker>(&event.data()) {
                Ok((ToWorker::Control(c), _)) => control.set(c),
                Ok((ToWorker::Start(start), parts)) => {
                    if busy.replace(true) {
                        let e = WebError::Protocol("this worker is already training".into());
                        post(&FromWorker::failed(&e), &[]);
                        return;
                    }
                    let control = control.clone();
                    wasm_bindgen_futures::spawn_local(async move {
                        if let Err(e) = train(*start, parts, &control).await {
                            post(&FromWorker::failed(&e), &[]);
                        }
                    });
                }
                Err(e) => post(&FromWorker::failed(&e), &[]),
            }
        });
    scope.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    // The worker lives as long as its handler.
    on_message.forget();
    post(&FromWorker::Ready, &[]);
}

/// What the GPU runtime holds on `device`, MB (`None` on the CPU backend).
fn gpu_mb(backend: Backend, device: &burn::prelude::Device) -> Option<f64> {
    (backend == Backend::WebGpu)
        .then(|| device.memory_pool_usage())
        .flatten()
        .map(|u| u.bytes_reserved as f64 / 1e6)
}

async fn train(
    start: StartRun,
    parts: Vec<Vec<u8>>,
    control: &Cell<Control>,
) -> Result<(), WebError> {
    let RunInputs {
        card,
        settings,
        backend,
        base,
        tune,
        val,
    } = start.inputs(parts)?;
    let asked = backend;
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
    let mut session = Session::new(
        &card.model,
        base,
        card.normalization,
        settings,
        tune,
        &device,
    )?;
    post(
        &FromWorker::Started {
            backend,
            fallback,
            steps_per_epoch: session.steps_per_epoch(),
            total_steps: session.total_steps(),
            wasm_mb: browser::wasm_memory_mb(),
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
                .await?;
                probs.extend(p);
                post(
                    &FromWorker::Evaluating {
                        done: probs.len(),
                        total: val.len(),
                    },
                    &[],
                );
                browser::yield_now().await;
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
            Ok::<_, WebError>(())
        }
    };

    evaluate(&session, Pass::Before).await?;
    let mut evaluated_at = 0;
    let mut stopped = false;
    while !session.finished() {
        match control.get() {
            Control::Stop => {
                stopped = true;
                break;
            }
            Control::Pause => {
                post(&FromWorker::Paused, &[]);
                while control.get() == Control::Pause {
                    browser::sleep_ms(100).await;
                }
                post(&FromWorker::Resumed, &[]);
                continue;
            }
            Control::Run => {}
        }
        let t0 = browser::now_ms();
        let r = session.train_step().await?;
        post(
            &FromWorker::Step {
                step: session.step(),
                epoch: session.epoch(),
                loss: r.loss,
                correct: r.correct,
                seen: r.seen,
                epoch_finished: r.epoch_finished,
                ms: browser::now_ms() - t0,
                wasm_mb: browser::wasm_memory_mb(),
                gpu_mb: gpu_mb(backend, &device),
            },
            &[],
        );
        if r.epoch_finished {
            evaluate(&session, Pass::Epoch).await?;
            evaluated_at = session.step();
        }
        // Lets the pause and stop messages in.
        browser::yield_now().await;
    }
    if evaluated_at != session.step() {
        evaluate(&session, Pass::Final).await?;
    }
    let weights = session.weights().await?;
    post(
        &FromWorker::Done {
            stopped,
            step: session.step(),
            epoch: session.epoch(),
            wasm_mb: browser::wasm_memory_mb(),
        },
        &[&weights],
    );
    Ok(())
}
