//! Model status (with the test contract's `data-state`), backend switch and the model card.

use leptos::prelude::*;

use super::{
    AppState, ModelState,
    chart::{LineChart, Series},
    engine::Backend,
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
    let switch = move |ev| {
        if let Some(b) = Backend::parse(&event_target_value(&ev)) {
            state.backend_note.set(String::new());
            leptos::task::spawn_local(state.activate(b));
        }
    };
    view! {
        <section class="panel status">
            <p data-testid="model-status" data-state=data_state role="status" aria-live="polite">
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
            <span class="note">{move || state.backend_note.get()}</span>
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
                view! {
                    <p>
                        {format!(
                            "Validation ({} held-out images): accuracy {}, AUC {:.3}, sensitivity {}, specificity {}, ECE {:.3}.",
                            m.n, pct(m.accuracy), m.auc, pct(m.sensitivity), pct(m.specificity), m.ece
                        )}
                    </p>
                }
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
