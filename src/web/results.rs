//! Results table with CSV download, and the list of refused files.

use leptos::prelude::*;

use super::{
    AppState, ResultRow, browser,
    triage::{Filter, SortKey},
};
use crate::ml::class::Class;

/// The CSS class of a label.
pub(super) fn label_class(label: Class) -> &'static str {
    match label {
        Class::Normal => "label normal",
        Class::Pneumonia => "label pneumonia",
    }
}

/// What a row and the viewer say of an image that does not look like a chest X-ray.
pub(super) fn ood_warning(why: &crate::ml::ood::OodReason) -> String {
    format!("⚠ This does not look like a chest X-ray: {why}. The result is meaningless for it.")
}

/// The rows as CSV, in the order given (the table's current order and filter).
fn csv(rows: &[ResultRow]) -> String {
    let mut out = String::from(
        "file,label,p_pneumonia,threshold,uncertain,backend,ms,true_label,finetuned_label,finetuned_p_pneumonia,ood,heatmap_peak_row,heatmap_peak_col\n",
    );
    for r in rows {
        let file = r.file.replace('"', "\"\"");
        let peak = r.heatmap.as_ref().map(|h| h.peak());
        out.push_str(&format!(
            "\"{file}\",{},{:.6},{:.4},{},{},{:.1},{},{},{},{},{},{}\n",
            r.label,
            r.p_pneumonia,
            r.threshold,
            r.uncertain,
            r.backend,
            r.ms,
            r.truth.map_or("", Class::name),
            r.tuned.as_ref().map_or("", |t| t.label.name()),
            r.tuned
                .as_ref()
                .map_or(String::new(), |t| format!("{:.6}", t.p_pneumonia)),
            r.ood.is_some(),
            peak.map_or(String::new(), |p| p.0.to_string()),
            peak.map_or(String::new(), |p| p.1.to_string()),
        ));
    }
    out
}

/// A heatmap's values as the row's `data-heatmap` carries them: row-major, comma-separated.
fn heatmap_attr(h: &crate::ml::explain::Heatmap) -> String {
    h.values
        .iter()
        .map(|v| format!("{v:.4}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The row's picture: the thumbnail, or the thumbnail with its heatmap while heatmaps are on.
#[component]
fn Thumb(row: ResultRow) -> impl IntoView {
    let state = expect_context::<AppState>();
    let plain = row.thumb.clone();
    let heat = row.heat_thumb.clone();
    let file = row.file.clone();
    move || {
        let with_heat = state.show_heatmaps.get() && heat.is_some();
        let src = if with_heat {
            heat.clone()
        } else {
            plain.clone()
        };
        let alt = if with_heat {
            format!("X-ray {file} with the heatmap of where the model looked")
        } else {
            format!("X-ray {file}")
        };
        src.map(|src| view! { <img src=src alt=alt data-heatmap-shown=with_heat.to_string() /> })
    }
}

/// P(pneumonia) as a bar, with the decision threshold and the uncertain band on it.
#[component]
pub(super) fn ProbabilityBar(p: f32, threshold: f32, band: Option<(f32, f32)>) -> impl IntoView {
    let pct = p * 100.0;
    view! {
        <div
            class="bar"
            role="meter"
            aria-valuemin="0"
            aria-valuemax="100"
            aria-valuenow=format!("{pct:.1}")
            aria-label="probability of pneumonia"
        >
            <div class="fill" style=format!("width: {pct:.1}%")></div>
            {band.map(|(lo, hi)| view! {
                <div
                    class="band"
                    style=format!("left: {:.1}%; width: {:.1}%", lo * 100.0, (hi - lo) * 100.0)
                    title="uncertain band"
                ></div>
            })}
            <div class="threshold" style=format!("left: {:.1}%", threshold * 100.0) title="decision threshold"></div>
        </div>
    }
}

/// One result.
#[component]
fn ResultItem(row: ResultRow) -> impl IntoView {
    let pct = row.p_pneumonia * 100.0;
    let class = label_class(row.label);
    let truth = row.truth.map(|t| {
        let ok = t == row.label;
        view! {
            <span class=if ok { "truth ok" } else { "truth wrong" }>
                {format!("true: {t} {}", if ok { "✓" } else { "✗" })}
            </span>
        }
    });
    let state = expect_context::<AppState>();
    let id = row.id;
    view! {
        <tr
            data-testid="prediction"
            data-row=id.to_string()
            on:click=move |_| state.viewer.set(Some(id))
            data-file=row.file.clone()
            data-label=row.label.name()
            data-p-pneumonia=format!("{:.6}", row.p_pneumonia)
            data-uncertain=row.uncertain.to_string()
            data-backend=row.backend
            data-ms=format!("{:.2}", row.ms)
            data-ood=row.ood.is_some().to_string()
            data-ood-kind=row.ood.map(|r| r.kind())
            data-format=row.format
            data-tuned-label=row.tuned.as_ref().map(|t| t.label.name())
            data-tuned-p-pneumonia=row.tuned.as_ref().map(|t| format!("{:.6}", t.p_pneumonia))
            data-heatmap=row.heatmap.as_ref().map(heatmap_attr)
            data-heatmap-ms=format!("{:.2}", row.heatmap_ms)
            data-heatmap-size=row.heatmap.as_ref().map(|h| format!("{}x{}", h.width, h.height))
            data-heatmap-peak=row.heatmap.as_ref().map(|h| {
                let (r, c) = h.peak();
                format!("{r},{c}")
            })
        >
            <td class="thumb">
                <button
                    class="open"
                    data-testid="open-viewer"
                    aria-label=format!("open {} in the viewer", row.file)
                    on:click=move |ev| {
                        // The row's own click opens it too; once is enough.
                        ev.stop_propagation();
                        state.viewer.set(Some(id));
                    }
                >
                    <Thumb row=row.clone() />
                </button>
            </td>
            <td class="file">
                {row.file.clone()}
                {row.dicom.clone().map(|d| view! { <span class="meta" data-testid="dicom-info">{d}</span> })}
            </td>
            <td>
                <span class=class>{row.label.name()}</span>
                " "
                {truth}
                {row.uncertain.then(|| view! {
                    <span class="uncertain" role="note" data-testid="uncertain-note">
                        "Uncertain: too close to the threshold to call; needs a reader."
                    </span>
                })}
                {row.ood.map(|why| view! {
                    <span class="ood" role="note" data-testid="ood-warning">
                        {ood_warning(&why)}
                    </span>
                })}
            </td>
            <td class="prob">
                <ProbabilityBar p=row.p_pneumonia threshold=row.threshold band=row.band />
                <span>{format!("P(pneumonia) {pct:.1} %")}</span>
            </td>
            <td class="ms" title="the prediction; then the heatmap">
                {format!("{:.0} ms", row.ms)}
                <span class="meta">{format!("+ {:.0} ms heatmap", row.heatmap_ms)}</span>
            </td>
            <td>{row.backend}</td>
            <td class="tuned">
                {row.tuned.clone().map(|t| {
                    view! {
                        <span class=label_class(t.label)>{t.label.name()}</span>
                        <span>{format!(" {:.1} %", t.p_pneumonia * 100.0)}</span>
                    }
                })}
            </td>
        </tr>
    }
}

/// A sortable column's header: a button that sorts by it, `aria-sort` saying how it is sorted.
#[component]
fn SortHeader(key: SortKey, title: &'static str, testid: &'static str) -> impl IntoView {
    let state = expect_context::<AppState>();
    let view = state.table_view;
    view! {
        <th aria-sort=move || view.get().aria_sort(key)>
            <button
                class="sort"
                data-testid=testid
                data-sort=key.id()
                on:click=move |_| view.update(|v| *v = v.click(key))
            >
                {title}
                <span aria-hidden="true">
                    {move || match view.get().aria_sort(key) {
                        "ascending" => " ▲",
                        "descending" => " ▼",
                        _ => "",
                    }}
                </span>
            </button>
        </th>
    }
}

/// The filter menu and how many rows it shows.
#[component]
fn FilterBar() -> impl IntoView {
    let state = expect_context::<AppState>();
    let view = state.table_view;
    view! {
        <p class="legend">
            <label>
                "Show "
                <select
                    data-testid="results-filter"
                    on:change=move |ev| {
                        let f = Filter::from_id(&event_target_value(&ev));
                        view.update(|v| v.filter = f);
                    }
                    prop:value=move || view.get().filter.id()
                >
                    {Filter::ALL
                        .into_iter()
                        .map(|f| view! { <option value=f.id()>{f.label()}</option> })
                        .collect_view()}
                </select>
            </label>
            " "
            <span data-testid="results-count" role="status">
                {move || {
                    let all = state.results.with(Vec::len);
                    let shown = view.get().apply(&state.results.get()).len();
                    format!("{shown} of {all} shown")
                }}
            </span>
        </p>
    }
}

/// All results, newest first unless the visitor sorts or filters them.
#[component]
pub fn ResultsTable() -> impl IntoView {
    let state = expect_context::<AppState>();
    let download_error = RwSignal::new(None::<String>);
    let shown = move || state.table_view.get().apply(&state.results.get());
    view! {
        <section class="panel" aria-live="polite">
            <h2>"Predictions"</h2>
            <Show
                when=move || !state.results.get().is_empty()
                fallback=|| view! { <p class="muted">"No X-ray classified yet."</p> }
            >
                <p class="legend">
                    "The bar shows P(pneumonia); the dark mark is the decision threshold and the hatched span around it the band where the model is uncertain and a reader should decide. "
                    <button
                        data-testid="download-csv"
                        on:click=move |_| {
                            let csv = csv(
                                &state.table_view.get_untracked().apply(&state.results.get_untracked()),
                            );
                            download_error.set(
                                browser::download_text("xray-predictions.csv", &csv, "text/csv")
                                    .err()
                                    .map(|e| format!("The CSV could not be saved: {e}")),
                            );
                        }
                    >
                        "Download CSV"
                    </button>
                    " "
                    <button on:click=move |_| state.clear_results()>"Clear"</button>
                </p>
                <p class="legend heat-legend">
                    <label>
                        <input
                            type="checkbox"
                            data-testid="heatmap-toggle"
                            prop:checked=move || state.show_heatmaps.get()
                            on:change=move |ev| state.show_heatmaps.set(event_target_checked(&ev))
                        />
                        " Show where the model looked"
                    </label>
                    " "
                    <span class="ramp" role="img" aria-label="heatmap colours: blue for the least PNEUMONIA evidence in the image, through cyan and yellow, to red for the most"></span>
                    " least → most evidence for PNEUMONIA, relative within each image (Grad-CAM, 8×8 cells over the whole image)"
                </p>
                {move || download_error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
                <FilterBar />
                <table class="results">
                    <thead>
                        <tr>
                            <th>"Image"</th>
                            <SortHeader key=SortKey::File title="File" testid="sort-file" />
                            <SortHeader key=SortKey::Label title="Result" testid="sort-label" />
                            <SortHeader key=SortKey::Probability title="Probability" testid="sort-p" />
                            <SortHeader key=SortKey::Time title="Time" testid="sort-time" />
                            <th>"Backend"</th>
                            <th>"Your model"</th>
                        </tr>
                    </thead>
                    <tbody>
                        <For
                            each=shown
                            key=|r| r.id
                            children=|row| view! { <ResultItem row=row /> }
                        />
                    </tbody>
                </table>
            </Show>
        </section>
    }
}

/// Files that could not be classified, each with its reason.
#[component]
pub fn ErrorList() -> impl IntoView {
    let state = expect_context::<AppState>();
    view! {
        <div role="alert" class="errors">
            <For
                each=move || state.errors.get()
                key=|e| e.id
                children=move |e| {
                    let id = e.id;
                    view! {
                        <p class="error" data-testid="error" data-file=e.file.clone()>
                            <strong>{e.file.clone()}</strong>
                            {format!(": {}", e.reason)}
                            " "
                            <button
                                aria-label="dismiss"
                                on:click=move |_| state.errors.update(|v| v.retain(|x| x.id != id))
                            >
                                "×"
                            </button>
                        </p>
                    }
                }
            />
        </div>
    }
}
