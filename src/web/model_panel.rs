//! Model status (with the test contract's `data-state`), backend switch and the model card.

use leptos::prelude::*;

use crate::ml::intervals::Intervals;

use super::{
    AppState, ModelState,
    backend::Backend,
    chart::{LineChart, Series},
};

/// Loading progress, errors and the backend switch.
#[component]
pub fn ModelStatus() -> impl IntoView {
    let state = expect_context::<AppState>();
    let data_state = move || match state.model.get() {
        ModelState::Loading { .. } => "loading",
        ModelState::Ready => "ready",
        ModelState::Error(_) => "error",
    };
    let text = move || match state.model.get() {
        ModelState::Loading { what, .. } => format!("{what}…"),
        ModelState::Ready => format!("Model ready on {}.", state.backend.get().label()),
        ModelState::Error(e) => format!("Error: {e}"),
    };
    let fraction = move || match state.model.get() {
        ModelState::Loading {
            fraction: Some(f), ..
        } => Some(f),
        _ => None,
    };
    // The page's wasm memory (it never shrinks, so this is its peak), read again whenever a
    // file is answered: what the memory-budget test watches.
    let wasm_mb = move || {
        state.pending.track();
        state.results.track();
        state.errors.track();
        format!("{:.1}", super::browser::wasm_memory_mb())
    };
    let switch = move |ev| {
        if let Ok(b) = event_target_value(&ev).parse::<Backend>() {
            state.backend_note.set(String::new());
            leptos::task::spawn_local(state.activate(b));
        }
    };
    view! {
        <section class="panel status">
            <p
                data-testid="model-status"
                data-state=data_state
                data-inference=move || if state.in_page.get().is_some() { "page" } else { "worker" }
                data-wasm-mb=wasm_mb
                role="status"
                aria-live="polite"
            >
                {text}
            </p>
            {move || {
                fraction()
                    .map(|f| {
                        view! {
                            <progress max="1" value=f aria-label="model download progress"></progress>
                        }
                    })
            }}
            <label>
                "Backend: "
                <select
                    data-testid="backend-select"
                    on:change=switch
                    prop:value=move || state.backend.get().id()
                    disabled=move || matches!(state.model.get(), ModelState::Loading { .. })
                >
                    <option value="webgpu">{Backend::WebGpu.label()}</option>
                    <option value="cpu">{Backend::Cpu.label()}</option>
                </select>
            </label>
            <span class="note" data-testid="backend-note">{move || state.backend_note.get()}</span>
            {move || {
                state
                    .in_page
                    .get()
                    .map(|why| {
                        view! {
                            <p class="note" data-testid="inference-note">
                                {format!(
                                    "No inference worker could start ({why}), so this page classifies in its own thread and may pause while it works."
                                )}
                            </p>
                        }
                    })
            }}
        </section>
    }
}

fn pct(x: f64) -> String {
    format!("{:.1} %", x * 100.0)
}

/// What the model is, how it was trained and how well it does on held-out validation images.
#[component]
pub fn ModelCardPanel() -> impl IntoView {
    let state = expect_context::<AppState>();
    move || {
        state.card.get().map(|card| {
            let t = &card.training;
            let metrics = card.validation.clone().map(|m| {
                let interval = |r: [f64; 2]| format!(" [{}, {}]", pct(r[0]), pct(r[1]));
                let ci = card.validation_ci;
                let ci_of = |f: fn(&Intervals) -> [f64; 2]| ci.as_ref().map(f).map(interval).unwrap_or_default();
                let patients = ci.map(|c| format!(" from {} patients", c.patients)).unwrap_or_default();
                view! {
                    <p data-testid="card-validation">
                        {format!(
                            "Validation on {} held-out images{patients} (whole patients held out): accuracy {}{}, AUC {:.3}{}, sensitivity {}{}, specificity {}{}, ECE {:.3}.",
                            m.n,
                            pct(m.accuracy), ci_of(|c| c.accuracy),
                            m.auc, ci.map(|c| format!(" [{:.3}, {:.3}]", c.auc[0], c.auc[1])).unwrap_or_default(),
                            pct(m.sensitivity), ci_of(|c| c.sensitivity),
                            pct(m.specificity), ci_of(|c| c.specificity),
                            m.ece
                        )}
                        {ci.map(|c| format!(" Brackets: {:.0} % bootstrap intervals ({} resamples of patients).", c.level * 100.0, c.resamples))}
                    </p>
                }
            });
            let stress = card.stress.clone().map(|s| {
                let worst = s
                    .conditions
                    .iter()
                    .min_by(|a, b| a.metrics.accuracy.total_cmp(&b.metrics.accuracy))
                    .map(|c| format!(" The hardest was {} (accuracy {}).", c.condition, pct(c.metrics.accuracy)))
                    .unwrap_or_default();
                view! {
                    <p data-testid="card-stress">
                        {format!(
                            "Under {} acquisition changes (exposure, contrast, gamma, blur, JPEG compression, zoom, shift), the same images average accuracy {}, AUC {:.3}, sensitivity {}, specificity {}, ECE {:.3}.{worst}",
                            s.conditions.len(), pct(s.mean.accuracy), s.mean.auc, pct(s.mean.sensitivity), pct(s.mean.specificity), s.mean.ece
                        )}
                    </p>
                }
            });
            let band = card.uncertain.map(|b| {
                view! {
                    <p data-testid="card-band">
                        {format!(
                            "Uncertain band: P(pneumonia) from {:.2} to {:.2} is reported as \"uncertain, needs a reader\". It holds {} of the validation images; outside it {} were wrong (target at most {}).",
                            b.low, b.high, pct(b.coverage), pct(b.error_outside), pct(b.max_error)
                        )}
                    </p>
                }
            });
            let scope = (!card.scope.is_empty()).then(|| {
                view! { <p class="scope" data-testid="card-scope"><strong>"Scope. "</strong>{card.scope.clone()}</p> }
            });
            let epochs: Vec<f64> = card.history.iter().map(|h| h.epoch as f64).collect();
            let line = |name: &str, color, f: fn(&crate::ml::card::EpochLog) -> f64| Series {
                name: name.into(),
                color,
                points: epochs.iter().copied().zip(card.history.iter().map(f)).collect(),
            };
            let loss = vec![
                line("training loss", "#c0392b", |h| h.train_loss),
                line("validation loss", "#2c6fbb", |h| h.val_loss),
            ];
            let quality = vec![
                line("validation accuracy", "#2c6fbb", |h| h.val_accuracy),
                line("validation AUC", "#1e8449", |h| h.val_auc),
                line("training accuracy", "#c0392b", |h| h.train_accuracy),
            ];
            view! {
                <section class="panel card" data-testid="model-card">
                    <h2>"About the model"</h2>
                    <p>
                        {format!(
                            "{}: {} with first-stage width {}, {}×{} grayscale input, weights stored as {} ({:.1} MB). Decision threshold {:.3}, calibration temperature {:.2}.",
                            card.name,
                            card.model.depth.name(),
                            card.model.width,
                            card.model.input_size,
                            card.model.input_size,
                            card.weights_dtype,
                            card.weights_bytes as f64 / 1e6,
                            card.threshold,
                            card.temperature
                        )}
                    </p>
                    {metrics}
                    {stress}
                    {band}
                    {scope}
                    <p>
                        {format!(
                            "Trained by this project's `xray train` on {} NORMAL and {} PNEUMONIA images ({} + {} held out), {} epochs (best: {}), {:.0} min on {}, seed {}, code {}.",
                            t.data.train_normal, t.data.train_pneumonia, t.data.val_normal, t.data.val_pneumonia,
                            t.epochs, t.best_epoch, t.seconds / 60.0, t.hardware, t.seed, t.git_commit
                        )}
                    </p>
                    <p class="muted">{t.dataset.clone()}</p>
                    <div class="charts" data-testid="training-curves">
                        <LineChart series=loss title="Loss per epoch".into() x_label="epoch".into() />
                        <LineChart series=quality title="Accuracy and AUC per epoch".into() x_label="epoch".into() />
                    </div>
                </section>
            }
        })
    }
}
