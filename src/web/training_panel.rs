//! The training panels: data and settings with start/pause/stop and progress, live curves,
//! the validation grid, before/after confusion matrices and ROC curves, and the fine-tuned
//! model's download and upload.

use leptos::{ev, html, prelude::*};

use super::{
    AppState, ModelState,
    backend::Backend,
    browser::{self, files_of},
    chart::{LineChart, Series},
    training::{self, DataStatus, Evaluation, Phase, TrainState},
};
use crate::ml::{class::Class, finetune::Mode};

/// A labelled number input bound to a setting: the typed value is parsed and kept when
/// `accept` turns it into one (clamping or refusing it); otherwise the setting stays.
#[component]
fn NumberInput<T>(
    label: &'static str,
    testid: &'static str,
    min: &'static str,
    max: &'static str,
    #[prop(optional)] step: Option<&'static str>,
    value: RwSignal<T>,
    accept: fn(f64) -> Option<T>,
) -> impl IntoView
where
    T: Clone + std::fmt::Display + Send + Sync + 'static,
{
    view! {
        <label>
            {label}
            " "
            <input
                type="number"
                min=min
                max=max
                step=step
                data-testid=testid
                prop:value=move || value.get().to_string()
                on:change=move |ev| {
                    if let Some(v) = event_target_value(&ev).trim().parse::<f64>().ok().and_then(accept) {
                        value.set(v);
                    }
                }
            />
        </label>
    }
}

fn fmt_eta(s: Option<f64>) -> String {
    match s {
        Some(s) if s >= 60.0 => format!("{:.0} min {:02.0} s", (s / 60.0).floor(), s % 60.0),
        Some(s) => format!("{s:.0} s"),
        None => "–".into(),
    }
}

/// Where the training images come from.
#[component]
fn DataChooser() -> impl IntoView {
    let ts = expect_context::<TrainState>();
    let app = expect_context::<AppState>();
    let size = move || app.card.get_untracked().map_or(128, |c| c.model.input_size);
    let busy =
        move || ts.status.get().phase.active() || matches!(ts.data.get(), DataStatus::Loading(..));
    let folder_ref = NodeRef::<html::Input>::new();
    let on_folder = move |_| {
        if let Some(input) = folder_ref.get() {
            let files = files_of(input.files())
                .into_iter()
                .map(|f| (f, None))
                .collect();
            input.set_value("");
            leptos::task::spawn_local(training::load_user_files(ts, files, size()));
        }
    };
    let labelled = move |pneumonia: bool| {
        move |ev: ev::Event| {
            let input: web_sys::HtmlInputElement = event_target(&ev);
            let files = files_of(input.files())
                .into_iter()
                .map(|f| (f, Some(pneumonia)))
                .collect();
            input.set_value("");
            leptos::task::spawn_local(training::load_user_files(ts, files, size()));
        }
    };
    let dropped = move |pneumonia: bool| {
        move |ev: ev::DragEvent| {
            ev.prevent_default();
            let files = files_of(ev.data_transfer().and_then(|d| d.files()))
                .into_iter()
                .map(|f| (f, Some(pneumonia)))
                .collect();
            leptos::task::spawn_local(training::load_user_files(ts, files, size()));
        }
    };
    let status = move || {
        match ts.data.get() {
        DataStatus::Empty => view! {
            <p class="muted">"The bundled X-rays are downloaded (1.2 MB) when you start, or now:"</p>
        }
        .into_any(),
        DataStatus::Loading(what, f) => view! {
            <p>
                {format!("{what}… ")}
                <progress max="1" value=f aria-label="training data progress"></progress>
            </p>
        }
        .into_any(),
        DataStatus::Ready(what) => view! { <p data-testid="train-data" data-state="ready">{what}</p> }.into_any(),
        DataStatus::Error(e) => view! { <p class="error" role="alert">{format!("Training data: {e}")}</p> }.into_any(),
    }
    };
    view! {
        <fieldset class="data" disabled=busy>
            <legend>"Training images"</legend>
            {status}
            <div class="row">
                <button
                    data-testid="train-load-bundled"
                    on:click=move |_| {
                        training::clear_data(ts);
                        leptos::task::spawn_local(async move {
                            // A failure is shown in the data status.
                            let _ = training::load_bundled(ts, size()).await;
                        });
                    }
                >
                    "Use the bundled 300 X-rays"
                </button>
                <label class="picker">
                    "Your folder (with NORMAL and PNEUMONIA subfolders): "
                    <input
                        type="file"
                        data-testid="train-folder"
                        prop:webkitdirectory=true
                        multiple=true
                        node_ref=folder_ref
                        on:change=on_folder
                    />
                </label>
            </div>
            <div class="row">
                <label
                    class="labelled-drop"
                    on:dragover=|ev: ev::DragEvent| ev.prevent_default()
                    on:drop=dropped(false)
                >
                    "NORMAL images (choose or drop): "
                    <input type="file" multiple=true data-testid="train-normal" on:change=labelled(false) />
                </label>
                <label
                    class="labelled-drop"
                    on:dragover=|ev: ev::DragEvent| ev.prevent_default()
                    on:drop=dropped(true)
                >
                    "PNEUMONIA images (choose or drop): "
                    <input type="file" multiple=true data-testid="train-pneumonia" on:change=labelled(true) />
                </label>
            </div>
            <p class="muted">"Your images are decoded in this tab and never uploaded; 20 % of each class is held out for validation."</p>
            <ul class="skipped">
                {move || ts.skipped.get().into_iter().map(|s| view! { <li>{s}</li> }).collect_view()}
            </ul>
        </fieldset>
    }
}

/// Settings, controls, status and progress.
#[component]
pub fn TrainingPanel() -> impl IntoView {
    let ts = expect_context::<TrainState>();
    let app = expect_context::<AppState>();
    let running = move || ts.status.get().phase.active();
    let status = move || ts.status.get();
    let fraction = move || {
        let s = status();
        if s.total_steps == 0 {
            0.0
        } else {
            s.step as f64 / s.total_steps as f64
        }
    };
    view! {
        <section class="panel training" aria-labelledby="train-h">
            <h2 id="train-h">"Train it yourself, in this tab"</h2>
            <p>
                "Fine-tune the shipped network on real X-rays, or train one from scratch, and watch it learn. "
                "Everything runs here with Burn on "
                {move || app.backend.get().label()}
                "; nothing is uploaded."
            </p>
            {move || {
                (app.backend.get() == Backend::Cpu)
                    .then(|| {
                        view! {
                            <p class="warning" role="note">
                                "Training runs on the CPU (no WebGPU here): expect it to be several times slower, and the page to pause briefly at each step."
                            </p>
                        }
                    })
            }}
            <DataChooser />
            <fieldset class="settings" disabled=running>
                <legend>"Settings"</legend>
                <label>
                    "Mode "
                    <select
                        data-testid="train-mode"
                        prop:value=move || ts.mode.get().id()
                        on:change=move |ev| {
                            if let Ok(m) = event_target_value(&ev).parse::<Mode>() {
                                ts.mode.set(m);
                                ts.lr.set(m.default_lr());
                            }
                        }
                    >
                        <option value="head">"Fine-tune the head only (fast)"</option>
                        <option value="whole">"Fine-tune the whole network"</option>
                        <option value="scratch">"Train from scratch"</option>
                    </select>
                </label>
                <NumberInput
                    label="Epochs"
                    testid="train-epochs"
                    min="1"
                    max="50"
                    value=ts.epochs
                    accept=|v| Some((v as usize).clamp(1, 50))
                />
                <NumberInput
                    label="Batch size"
                    testid="train-batch"
                    min="1"
                    max="64"
                    value=ts.batch
                    accept=|v| Some((v as usize).clamp(1, 64))
                />
                <NumberInput
                    label="Learning rate"
                    testid="train-lr"
                    min="0.000001"
                    max="0.1"
                    step="any"
                    value=ts.lr
                    accept=|v| (v > 0.0 && v < 1.0).then_some(v)
                />
                <NumberInput
                    label="Images per class"
                    testid="train-per-class"
                    min="1"
                    max="100000"
                    value=ts.per_class
                    accept=|v| Some((v as usize).max(1))
                />
                <label>
                    <input
                        type="checkbox"
                        data-testid="train-augment"
                        prop:checked=move || ts.augment.get()
                        on:change=move |ev| ts.augment.set(event_target_checked(&ev))
                    />
                    " Augmentation (rotation, scale, shift, brightness, contrast, noise)"
                </label>
            </fieldset>
            <div class="row controls">
                <button
                    data-testid="train-start"
                    disabled=move || running() || app.model.get() != ModelState::Ready
                    on:click=move |_| training::start(ts, app)
                >
                    "Train"
                </button>
                <button
                    data-testid="train-pause"
                    disabled=move || !running()
                    on:click=move |_| training::toggle_pause(ts)
                >
                    {move || if status().phase == Phase::Paused { "Resume" } else { "Pause" }}
                </button>
                <button data-testid="train-stop" disabled=move || !running() on:click=move |_| training::stop(ts)>
                    "Stop"
                </button>
            </div>
            <div
                data-testid="train-status"
                role="status"
                aria-live="polite"
                data-state=move || status().phase.id()
                data-epoch=move || status().epoch.to_string()
                data-step=move || status().step.to_string()
                data-loss=move || status().loss.map(|l| format!("{l:.6}")).unwrap_or_default()
                data-val-accuracy=move || status().val_accuracy.map(|a| format!("{a:.6}")).unwrap_or_default()
                data-images-per-sec=move || format!("{:.3}", status().images_per_sec)
                data-wasm-mb=move || format!("{:.1}", status().wasm_mb)
                data-gpu-mb=move || status().gpu_mb.map(|m| format!("{m:.1}")).unwrap_or_default()
                data-backend=move || status().backend.map_or("", Backend::id)
            >
                <progress max="1" value=fraction aria-label="training progress"></progress>
                <p>
                    {move || {
                        let s = status();
                        match s.phase {
                            Phase::Idle => "Not started.".to_string(),
                            Phase::Error => format!("Training stopped: {}", s.message),
                            _ => format!(
                                "{} · epoch {}/{} · step {}/{} · loss {} · validation accuracy {} · {:.1} images/s · ETA {} · memory {:.0} MB{}",
                                s.message,
                                s.epoch,
                                s.epochs,
                                s.step,
                                s.total_steps,
                                s.loss.map_or("–".into(), |l| format!("{l:.4}")),
                                s.val_accuracy.map_or("–".into(), |a| format!("{:.1} %", a * 100.0)),
                                s.images_per_sec,
                                fmt_eta(s.eta_s),
                                s.wasm_mb,
                                s.gpu_mb.map_or(String::new(), |m| format!(" + GPU {m:.0} MB")),
                            ),
                        }
                    }}
                </p>
            </div>
        </section>
    }
}

/// Loss and accuracy as training goes.
#[component]
pub fn TrainingCurves() -> impl IntoView {
    let ts = expect_context::<TrainState>();
    move || {
        let c = ts.curves.get();
        let points = c.step_loss.len();
        (points > 0 || !c.val_loss.is_empty()).then(|| {
            let loss = vec![
                Series {
                    name: "training loss (each step)".into(),
                    color: "#e59866",
                    points: c.step_loss.clone(),
                },
                Series {
                    name: "training loss (epoch mean)".into(),
                    color: "#c0392b",
                    points: c.train_loss.clone(),
                },
                Series {
                    name: "validation loss".into(),
                    color: "#2c6fbb",
                    points: c.val_loss.clone(),
                },
            ];
            let accuracy = vec![
                Series {
                    name: "training accuracy".into(),
                    color: "#c0392b",
                    points: c.train_accuracy.clone(),
                },
                Series {
                    name: "validation accuracy".into(),
                    color: "#2c6fbb",
                    points: c.val_accuracy.clone(),
                },
            ];
            view! {
                <section class="panel" data-testid="train-curves" data-points=points.to_string()>
                    <h2>"Learning curves"</h2>
                    <div class="charts">
                        <LineChart series=loss title="Loss (cross-entropy)".into() x_label="epoch".into() />
                        <LineChart series=accuracy title="Accuracy".into() x_label="epoch".into() />
                    </div>
                </section>
            }
        })
    }
}

/// Validation images with their true and predicted labels.
#[component]
pub fn ValidationGrid() -> impl IntoView {
    let ts = expect_context::<TrainState>();
    move || {
        let items = ts.grid.get();
        let step = ts.status.get_untracked().step;
        (!items.is_empty()).then(|| {
            let wrong = items.iter().filter(|i| i.truth != i.predicted).count();
            view! {
                <section class="panel" data-testid="val-grid" data-step=step.to_string()>
                    <h2>"Validation images"</h2>
                    <p>
                        {format!(
                            "{} images, {} misclassified (outlined in red), after {} training step{}. Threshold 0.5.",
                            items.len(), wrong, step, if step == 1 { "" } else { "s" }
                        )}
                    </p>
                    <ul class="val-grid">
                        {items
                            .into_iter()
                            .map(|i| {
                                let is_wrong = i.truth != i.predicted;
                                view! {
                                    <li
                                        data-testid="val-sample"
                                        data-truth=i.truth.name()
                                        data-predicted=i.predicted.name()
                                        data-p-pneumonia=format!("{:.6}", i.p)
                                        data-wrong=is_wrong.to_string()
                                        class=if is_wrong { "wrong" } else { "" }
                                    >
                                        <img src=i.thumb alt=format!("validation X-ray {}", i.name) />
                                        <span>{format!("true {}", i.truth)}</span>
                                        <span>
                                            {format!("pred {} {:.0} %", i.predicted, i.p * 100.0)}
                                            {if is_wrong { " ✗" } else { "" }}
                                        </span>
                                    </li>
                                }
                            })
                            .collect_view()}
                    </ul>
                </section>
            }
        })
    }
}

#[component]
fn EvaluationView(title: &'static str, testid: &'static str, ev: Evaluation) -> impl IntoView {
    let c = ev.confusion;
    let roc = vec![
        Series {
            name: format!("ROC, AUC {:.3}", ev.auc),
            color: "#2c6fbb",
            points: ev.roc.clone(),
        },
        Series {
            name: "chance".into(),
            color: "#9aa4ae",
            points: vec![(0.0, 0.0), (1.0, 1.0)],
        },
    ];
    view! {
        <div
            class="evaluation"
            data-testid=testid
            data-auc=format!("{:.6}", ev.auc)
            data-accuracy=format!("{:.6}", ev.accuracy)
            data-n=ev.n.to_string()
        >
            <h3>{title}</h3>
            <p>{format!("{} images · accuracy {:.1} % · AUC {:.3} · loss {:.3}", ev.n, ev.accuracy * 100.0, ev.auc, ev.loss)}</p>
            <table class="confusion">
                <caption>"Confusion matrix (rows: truth, columns: prediction)"</caption>
                <thead>
                    <tr><th scope="col"></th><th scope="col">{Class::Normal.name()}</th><th scope="col">{Class::Pneumonia.name()}</th></tr>
                </thead>
                <tbody>
                    <tr><th scope="row">{Class::Normal.name()}</th><td>{c.tn}</td><td class="off">{c.fp}</td></tr>
                    <tr><th scope="row">{Class::Pneumonia.name()}</th><td class="off">{c.fn_}</td><td>{c.tp}</td></tr>
                </tbody>
            </table>
            <LineChart series=roc title="ROC curve".into() x_label="false-positive rate".into() />
        </div>
    }
}

/// Confusion matrices and ROC curves before and after training.
#[component]
pub fn BeforeAfter() -> impl IntoView {
    let ts = expect_context::<TrainState>();
    move || {
        ts.before.get().map(|before| {
            let after = ts.after.get();
            view! {
                <section class="panel" data-testid="before-after">
                    <h2>"Validation: before and after training"</h2>
                    <div class="charts">
                        <EvaluationView title="Before (starting model)" testid="eval-before" ev=before />
                        {after.map(|a| view! { <EvaluationView title="After training" testid="eval-after" ev=a /> })}
                    </div>
                </section>
            }
        })
    }
}

/// The fine-tuned model: what it is, download, and loading weights from a file.
#[component]
pub fn TunedModel() -> impl IntoView {
    let ts = expect_context::<TrainState>();
    let app = expect_context::<AppState>();
    let error = RwSignal::new(None::<String>);
    let on_upload = move |ev: ev::Event| {
        let input: web_sys::HtmlInputElement = event_target(&ev);
        let files = files_of(input.files());
        input.set_value("");
        leptos::task::spawn_local(training::load_weights(ts, app, files));
    };
    let on_download = move |_| {
        leptos::task::spawn_local(async move {
            error.set(None);
            let saved = training::export(ts).await.and_then(|export| {
                browser::download_url(&export.weights_url, "xray-finetuned.bpk")
            });
            if let Err(e) = saved {
                error.set(Some(format!("The weights could not be saved: {e}")));
            }
        })
    };
    view! {
        <section class="panel" data-testid="tuned-model">
            <h2>"Your model"</h2>
            <p data-testid="tuned-info" data-loaded=move || ts.tuned.get().is_some().to_string()>
                {move || match ts.tuned.get() {
                    Some(d) => format!("In use next to the shipped model: {d}. New X-rays get both predictions, side by side."),
                    None => "No fine-tuned model yet: train one above, or load weights.".into(),
                }}
            </p>
            <div class="row">
                <button
                    data-testid="train-download"
                    disabled=move || ts.tuned.get().is_none()
                    on:click=on_download
                >
                    "Download weights"
                </button>
                {move || {
                    ts.export
                        .get()
                        .map(|e| {
                            view! {
                                <a data-testid="weights-link" href=e.weights_url.to_string() download="xray-finetuned.bpk">
                                    {format!("xray-finetuned.bpk ({:.1} MB)", e.bytes as f64 / 1e6)}
                                </a>
                                " "
                                <a data-testid="card-link" href=e.card_url.to_string() download="card.json">
                                    "card.json"
                                </a>
                            }
                        })
                }}
                <label class="picker">
                    "Load weights (.bpk, optionally with its card.json, e.g. from xray train): "
                    <input type="file" multiple=true accept=".bpk,.json" data-testid="weights-upload" on:change=on_upload />
                </label>
            </div>
            {move || {
                error
                    .get()
                    .or(ts.weights_error.get())
                    .map(|e| view! { <p class="error" role="alert" data-testid="weights-error">{e}</p> })
            }}
        </section>
    }
}
