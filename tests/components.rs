//! Component tests (wasm-bindgen-test in headless Chromium): the results table, the refused
//! files and the training panel mounted alone on a fake state, no model and no worker, and
//! read back from the DOM they render.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test
#![cfg(target_arch = "wasm32")]

use std::{cell::Cell, rc::Rc};

use leptos::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;
use web_sys::{Element, HtmlElement, HtmlInputElement};
use xray_web::{
    ml::{class::Class, classifier::Prediction, explain::Heatmap, finetune::Mode, ood::OodReason},
    web::{
        AppState, ErrorRow, ModelState, ResultRow, Source,
        backend::Backend,
        browser,
        protocol::FromWorker,
        results::{ErrorList, ResultsTable},
        training::view::{RunView, ValMeta},
        training_panel::{TrainingCurves, TrainingPanel},
        viewer::Viewer,
    },
};

wasm_bindgen_test_configure!(run_in_browser);

/// A fresh element in the document to mount into.
fn host() -> HtmlElement {
    let document = web_sys::window().unwrap().document().unwrap();
    let host: HtmlElement = document.create_element("div").unwrap().dyn_into().unwrap();
    document.body().unwrap().append_child(&host).unwrap();
    host
}

/// Mounts `view` on a fresh [`AppState`] (given to the view as context, the training state
/// too) and returns the state and the element it rendered into.
fn mount<V: IntoView + 'static>(view: fn() -> V) -> (AppState, HtmlElement) {
    let host = host();
    let made = Rc::new(Cell::new(None));
    let out = made.clone();
    let handle = leptos::mount::mount_to(host.clone(), move || {
        let state = AppState::new();
        provide_context(state);
        provide_context(state.training);
        out.set(Some(state));
        view()
    });
    handle.forget();
    (made.take().unwrap(), host)
}

/// Lets the page's effects run.
async fn settle() {
    browser::sleep_ms(20).await;
}

fn all(host: &HtmlElement, selector: &str) -> Vec<Element> {
    let list = host.query_selector_all(selector).unwrap();
    (0..list.length())
        .filter_map(|i| list.item(i))
        .filter_map(|n| n.dyn_into::<Element>().ok())
        .collect()
}

fn one(host: &HtmlElement, selector: &str) -> Element {
    host.query_selector(selector)
        .unwrap()
        .unwrap_or_else(|| panic!("{selector} not rendered"))
}

fn text(e: &Element) -> String {
    e.text_content().unwrap_or_default()
}

fn row(id: usize, file: &str, label: Class, p: f32) -> ResultRow {
    ResultRow {
        id,
        file: file.into(),
        thumb: None,
        heat_thumb: None,
        heatmap: None,
        label,
        p_pneumonia: p,
        threshold: 0.36,
        band: Some((0.32, 0.40)),
        uncertain: (0.32..=0.40).contains(&p),
        ms: 4.2,
        heatmap_ms: 1.5,
        backend: "cpu",
        truth: None,
        tuned: None,
        ood: None,
        dicom: None,
        format: "JPEG".into(),
    }
}

#[wasm_bindgen_test]
async fn the_results_table_shows_each_row_as_its_state_says() {
    let (state, host) = mount(|| view! { <ResultsTable /> });
    settle().await;
    assert!(text(&host).contains("No X-ray classified yet."));

    let sure = ResultRow {
        truth: Some(Class::Normal),
        tuned: Some(Prediction {
            label: Class::Pneumonia,
            p_pneumonia: 0.75,
        }),
        ..row(1, "a.jpeg", Class::Normal, 0.02)
    };
    let unsure = ResultRow {
        ood: Some(OodReason::Colour {
            colourfulness: 0.31,
            limit: 0.08,
        }),
        dicom: Some("CR · CHEST".into()),
        ..row(2, "b.dcm", Class::Pneumonia, 0.37)
    };
    state.results.set(vec![unsure, sure]);
    let thumb = browser::bytes_url(b"not shown", "image/png");
    state.thumbs.update_value(|t| t.push((1, thumb)));
    settle().await;

    let rows = all(&host, "[data-testid=prediction]");
    assert_eq!(rows.len(), 2);
    let attr = |e: &Element, name: &str| e.get_attribute(name).unwrap_or_default();
    // Newest first, as the state orders them.
    assert_eq!(attr(&rows[0], "data-file"), "b.dcm");
    assert_eq!(attr(&rows[0], "data-label"), "PNEUMONIA");
    assert_eq!(attr(&rows[0], "data-p-pneumonia"), "0.370000");
    assert_eq!(attr(&rows[0], "data-uncertain"), "true");
    assert_eq!(attr(&rows[0], "data-ood"), "true");
    assert_eq!(attr(&rows[0], "data-ood-kind"), "colour");
    let unsure_text = text(&rows[0]);
    assert!(unsure_text.contains("needs a reader"), "{unsure_text}");
    assert!(
        unsure_text.contains(
            "does not look like a chest X-ray: it is a colour image (colourfulness 0.31)"
        ),
        "{unsure_text}"
    );
    assert!(unsure_text.contains("CR · CHEST"), "{unsure_text}");
    let meter = rows[0].query_selector("[role=meter]").unwrap().unwrap();
    assert_eq!(attr(&meter, "aria-valuenow"), "37.0");

    assert_eq!(attr(&rows[1], "data-uncertain"), "false");
    assert_eq!(attr(&rows[1], "data-ood"), "false");
    assert!(rows[1].get_attribute("data-ood-kind").is_none());
    assert_eq!(attr(&rows[1], "data-tuned-label"), "PNEUMONIA");
    let sure_text = text(&rows[1]);
    assert!(sure_text.contains("true: NORMAL ✓"), "{sure_text}");
    assert!(!sure_text.contains("needs a reader"), "{sure_text}");
    assert!(sure_text.contains("75.0 %"), "{sure_text}");

    // Heatmaps: the row carries its map and peak, and its picture follows the toggle.
    let mut values = vec![0.0; 64];
    values[2 * 8 + 5] = 1.0;
    let heated = ResultRow {
        thumb: Some("plain.png".into()),
        heat_thumb: Some("heat.png".into()),
        heatmap: Some(Heatmap {
            width: 8,
            height: 8,
            values,
        }),
        ..row(3, "c.png", Class::Pneumonia, 0.9)
    };
    state.results.update(|r| r.insert(0, heated));
    settle().await;
    let rows = all(&host, "[data-testid=prediction]");
    assert_eq!(attr(&rows[0], "data-heatmap-size"), "8x8");
    assert_eq!(attr(&rows[0], "data-heatmap-peak"), "2,5");
    assert_eq!(attr(&rows[0], "data-heatmap").split(',').count(), 64);
    let img = || one(&host, "[data-testid=prediction] td.thumb img");
    assert!(
        attr(&img(), "src").ends_with("heat.png"),
        "heatmaps are on by default"
    );
    assert!(rows[1].get_attribute("data-heatmap").is_none());
    let toggle = one(&host, "[data-testid=heatmap-toggle]");
    toggle.dyn_ref::<HtmlElement>().unwrap().click();
    settle().await;
    assert!(!state.show_heatmaps.get_untracked());
    assert!(attr(&img(), "src").ends_with("plain.png"));
    assert_eq!(attr(&img(), "data-heatmap-shown"), "false");

    // "Clear" empties the state, frees the thumbnails and the table says so.
    let clear = all(&host, "button")
        .into_iter()
        .find(|b| text(b) == "Clear")
        .unwrap();
    clear.dyn_into::<HtmlElement>().unwrap().click();
    settle().await;
    assert!(state.results.get_untracked().is_empty());
    assert!(
        state.thumbs.with_value(Vec::is_empty),
        "the thumbnails' URLs go too"
    );
    assert!(text(&host).contains("No X-ray classified yet."));
}

#[wasm_bindgen_test]
async fn the_results_sort_by_header_and_filter_and_say_how_many_they_show() {
    let (state, host) = mount(|| view! { <ResultsTable /> });
    let flagged = ResultRow {
        ood: Some(OodReason::Colour {
            colourfulness: 0.31,
            limit: 0.08,
        }),
        ..row(3, "c.png", Class::Pneumonia, 0.95)
    };
    state.results.set(vec![
        flagged,
        row(2, "b.png", Class::Normal, 0.38),
        row(1, "a.png", Class::Pneumonia, 0.80),
    ]);
    settle().await;
    let files = || {
        all(&host, "[data-testid=prediction]")
            .iter()
            .map(|r| r.get_attribute("data-file").unwrap_or_default())
            .collect::<Vec<_>>()
    };
    let click = |id: &str| {
        one(&host, &format!("[data-testid={id}]"))
            .dyn_into::<HtmlElement>()
            .unwrap()
            .click()
    };
    let aria = |id: &str| {
        one(&host, &format!("[data-testid={id}]"))
            .closest("th")
            .unwrap()
            .unwrap()
            .get_attribute("aria-sort")
            .unwrap_or_default()
    };
    assert_eq!(files(), ["c.png", "b.png", "a.png"], "newest first");
    assert_eq!(aria("sort-p"), "none");
    click("sort-p");
    settle().await;
    assert_eq!(files(), ["c.png", "a.png", "b.png"]);
    assert_eq!(aria("sort-p"), "descending");
    click("sort-p");
    settle().await;
    assert_eq!(files(), ["b.png", "a.png", "c.png"]);
    assert_eq!(aria("sort-p"), "ascending");
    click("sort-file");
    settle().await;
    assert_eq!(files(), ["a.png", "b.png", "c.png"]);
    assert_eq!(
        (aria("sort-file"), aria("sort-p")),
        ("ascending".into(), "none".into())
    );
    // Filters, in the current order; the count follows.
    let select = one(&host, "[data-testid=results-filter]")
        .dyn_into::<web_sys::HtmlSelectElement>()
        .unwrap();
    for (filter, expect) in [
        ("pneumonia", vec!["a.png", "c.png"]),
        ("uncertain", vec!["b.png"]),
        ("ood", vec!["c.png"]),
        ("all", vec!["a.png", "b.png", "c.png"]),
    ] {
        select.set_value(filter);
        select
            .dispatch_event(&web_sys::Event::new("change").unwrap())
            .unwrap();
        settle().await;
        assert_eq!(files(), expect, "{filter}");
        let count = text(&one(&host, "[data-testid=results-count]"));
        assert_eq!(count, format!("{} of 3 shown", expect.len()));
    }
}

/// Polls `check` for up to 10 s.
async fn until(what: &str, check: impl Fn() -> bool) {
    for _ in 0..500 {
        if check() {
            return;
        }
        browser::sleep_ms(20).await;
    }
    panic!("timed out waiting for {what}");
}

#[wasm_bindgen_test]
async fn a_row_opens_in_the_viewer_which_reads_its_file_again_and_steps_through_the_table() {
    let (state, host) = mount(|| view! { <ResultsTable /> <Viewer /> });
    const JPEG: &[u8] = include_bytes!("../public/samples/pneumonia-01.jpeg");
    let (w, h) = image::load_from_memory(JPEG)
        .unwrap()
        .into_luma8()
        .dimensions();
    let parts = js_sys::Array::of1(&js_sys::Uint8Array::from(JPEG));
    let file = web_sys::File::new_with_u8_array_sequence(&parts, "pneumonia-01.jpeg").unwrap();
    let cells: Vec<f32> = (0..64).map(|i| i as f32 / 63.0).collect();
    state.results.set(vec![
        ResultRow {
            heatmap: Some(Heatmap::from_raw(8, 8, &cells)),
            ..row(2, "pneumonia-01.jpeg", Class::Pneumonia, 0.93)
        },
        row(1, "moved-away.png", Class::Normal, 0.10),
    ]);
    state
        .sources
        .update_value(|s| s.push((2, Source::File(file))));
    settle().await;
    assert!(
        all(&host, "[data-testid=viewer]").is_empty(),
        "closed at first"
    );

    // A click anywhere on the row opens it.
    one(
        &host,
        "[data-testid=prediction][data-file='pneumonia-01.jpeg'] td.file",
    )
    .dyn_into::<HtmlElement>()
    .unwrap()
    .click();
    settle().await;
    let viewer = one(&host, "[data-testid=viewer]");
    assert_eq!(
        viewer.get_attribute("data-file").unwrap(),
        "pneumonia-01.jpeg"
    );
    assert!(
        viewer
            .dyn_ref::<web_sys::HtmlDialogElement>()
            .unwrap()
            .open()
    );
    let canvas_state = || {
        host.query_selector("[data-testid=viewer-canvas]")
            .unwrap()
            .and_then(|c| c.get_attribute("data-state"))
            .unwrap_or_default()
    };
    until("the image", || canvas_state() == "ready").await;
    let status = text(&one(&host, "[data-testid=viewer-status]"));
    assert_eq!(
        status,
        format!("{w} × {h} pixels, shown at full resolution")
    );
    let heat = one(&host, "[data-testid=viewer] [data-testid=heatmap]");
    assert_eq!(heat.get_attribute("data-grid").unwrap(), "8x8");
    let values = heat.get_attribute("data-values").unwrap();
    let values: Vec<&str> = values.split(',').collect();
    assert_eq!(values.len(), 64);
    assert_eq!(
        (values[0], values[63], values[21]),
        ("0.000", "1.000", "0.333")
    );
    assert_eq!(text(&one(&host, "[data-testid=viewer-position]")), "1 of 2");
    assert_eq!(text(&one(&host, "[data-testid=viewer-label]")), "PNEUMONIA");

    // Next: a row whose file is gone says so, and there is nothing after it.
    let button = |id: &str| {
        one(&host, &format!("[data-testid=viewer] [data-testid={id}]"))
            .dyn_into::<web_sys::HtmlButtonElement>()
            .unwrap()
    };
    assert!(button("viewer-prev").disabled());
    button("viewer-next").click();
    settle().await;
    assert_eq!(
        one(&host, "[data-testid=viewer]")
            .get_attribute("data-file")
            .unwrap(),
        "moved-away.png"
    );
    until("the refusal", || canvas_state() == "error").await;
    let status = text(&one(&host, "[data-testid=viewer-status]"));
    assert!(
        status.contains("its file is no longer available"),
        "{status}"
    );
    assert!(all(&host, "[data-testid=viewer] [data-testid=heatmap]").is_empty());
    assert!(button("viewer-next").disabled() && !button("viewer-prev").disabled());

    // Close, and the state says so; open again and clear the results: it closes too.
    button("viewer-close").click();
    settle().await;
    assert!(all(&host, "[data-testid=viewer]").is_empty());
    assert_eq!(state.viewer.get_untracked(), None);
    state.viewer.set(Some(2));
    settle().await;
    assert_eq!(all(&host, "[data-testid=viewer]").len(), 1);
    state.clear_results();
    settle().await;
    assert!(all(&host, "[data-testid=viewer]").is_empty());
}

#[wasm_bindgen_test]
async fn a_refused_file_is_named_with_its_reason_and_can_be_dismissed() {
    let (state, host) = mount(|| view! { <ErrorList /> });
    state.errors.set(vec![
        ErrorRow {
            id: 2,
            file: "notes.png".into(),
            reason: "not a supported image".into(),
        },
        ErrorRow {
            id: 1,
            file: "huge.png".into(),
            reason: "too large".into(),
        },
    ]);
    settle().await;
    let errors = all(&host, "[data-testid=error]");
    assert_eq!(errors.len(), 2);
    assert_eq!(
        errors[0].get_attribute("data-file").as_deref(),
        Some("notes.png")
    );
    assert!(text(&errors[0]).starts_with("notes.png: not a supported image"));
    assert!(host.query_selector("[role=alert]").unwrap().is_some());
    let dismiss = errors[0]
        .query_selector("button[aria-label=dismiss]")
        .unwrap()
        .unwrap();
    dismiss.dyn_into::<HtmlElement>().unwrap().click();
    settle().await;
    let left: Vec<String> = state
        .errors
        .get_untracked()
        .into_iter()
        .map(|e| e.file)
        .collect();
    assert_eq!(left, vec!["huge.png".to_string()]);
    assert_eq!(all(&host, "[data-testid=error]").len(), 1);
}

fn validation_images() -> Vec<ValMeta> {
    [false, true]
        .into_iter()
        .enumerate()
        .map(|(i, pneumonia)| ValMeta {
            name: format!("v{i}.jpeg"),
            thumb: String::new(),
            pneumonia,
        })
        .collect()
}

fn step(step: usize, loss: f32) -> FromWorker {
    FromWorker::Step {
        step,
        epoch: 0,
        loss,
        correct: 3,
        seen: 4,
        epoch_finished: false,
        ms: 1000.0,
        wasm_mb: 30.0,
        gpu_mb: None,
    }
}

#[wasm_bindgen_test]
async fn the_training_panel_follows_a_run_as_the_reducer_reports_it() {
    let (state, host) = mount(|| view! { <TrainingPanel /> <TrainingCurves /> });
    state.model.set(ModelState::Ready);
    settle().await;
    let status = one(&host, "[data-testid=train-status]");
    assert_eq!(status.get_attribute("data-state").as_deref(), Some("idle"));
    assert!(text(&status).contains("Not started."));
    let disabled =
        |testid: &str| one(&host, &format!("[data-testid={testid}]")).has_attribute("disabled");
    assert!(!disabled("train-start") && disabled("train-pause") && disabled("train-stop"));

    // A run of 2 epochs × 2 steps, reported by a (fake) worker.
    let ts = state.training;
    let mut run = RunView::new(Mode::Whole, 2, 8, validation_images());
    run.apply(
        FromWorker::Started {
            backend: Backend::Cpu,
            fallback: None,
            steps_per_epoch: 2,
            total_steps: 4,
            wasm_mb: 20.0,
        },
        vec![],
    );
    run.apply(step(1, 0.7), vec![]);
    run.apply(step(2, 0.5), vec![]);
    ts.show(&run);
    settle().await;
    let status = one(&host, "[data-testid=train-status]");
    assert_eq!(
        status.get_attribute("data-state").as_deref(),
        Some("running")
    );
    assert_eq!(status.get_attribute("data-step").as_deref(), Some("2"));
    assert_eq!(status.get_attribute("data-backend").as_deref(), Some("cpu"));
    let words = text(&status);
    assert!(
        words.contains("step 2/4") && words.contains("loss 0.5000"),
        "{words}"
    );
    assert!(
        words.contains("ETA 2 s"),
        "two steps left at 1 s each: {words}"
    );
    assert!(disabled("train-start") && !disabled("train-pause") && !disabled("train-stop"));
    assert!(one(&host, "fieldset.settings").has_attribute("disabled"));
    assert_eq!(text(&one(&host, "[data-testid=train-pause]")), "Pause");
    let curves = one(&host, "[data-testid=train-curves]");
    assert_eq!(curves.get_attribute("data-points").as_deref(), Some("2"));

    // Paused, the button offers to resume; failed, the panel says why and may start again.
    ts.status
        .update(|s| s.phase = xray_web::web::training::Phase::Paused);
    settle().await;
    assert_eq!(text(&one(&host, "[data-testid=train-pause]")), "Resume");
    ts.fail("the GPU stopped answering".into());
    settle().await;
    let status = one(&host, "[data-testid=train-status]");
    assert_eq!(status.get_attribute("data-state").as_deref(), Some("error"));
    assert!(text(&status).contains("Training stopped: the GPU stopped answering"));
    assert!(!disabled("train-start"));
}

#[wasm_bindgen_test]
async fn a_number_setting_keeps_its_value_when_typed_wrong_and_clamps_when_out_of_range() {
    let (state, host) = mount(|| view! { <TrainingPanel /> });
    settle().await;
    let epochs: HtmlInputElement = one(&host, "[data-testid=train-epochs]").dyn_into().unwrap();
    let before = state.training.epochs.get_untracked();
    let type_in = |value: &str| {
        epochs.set_value(value);
        let event = web_sys::Event::new("change").unwrap();
        epochs.dispatch_event(&event).unwrap();
    };
    type_in("many");
    settle().await;
    assert_eq!(state.training.epochs.get_untracked(), before);
    type_in("500");
    settle().await;
    assert_eq!(state.training.epochs.get_untracked(), 50);
    assert_eq!(epochs.value(), "50");
    type_in("7");
    settle().await;
    assert_eq!(state.training.epochs.get_untracked(), 7);
}
