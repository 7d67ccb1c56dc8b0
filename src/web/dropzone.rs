//! The drop zone: drag and drop, click or Enter/Space for the file picker, and paste.

use leptos::{ev, html, prelude::*};
use wasm_bindgen::JsCast;

use super::{AppState, Input, Source, browser};

fn inputs_from(files: Option<web_sys::FileList>) -> Vec<Input> {
    browser::files_of(files)
        .into_iter()
        .map(|f| Input {
            name: f.name(),
            source: Source::File(f),
            truth: None,
        })
        .collect()
}

/// Where files go in.
#[component]
pub fn DropZone() -> impl IntoView {
    let state = expect_context::<AppState>();
    let input_ref = NodeRef::<html::Input>::new();
    let hover = RwSignal::new(false);

    let open_picker = move || {
        if let Some(input) = input_ref.get() {
            input.click();
        }
    };
    let on_change = move |_| {
        if let Some(input) = input_ref.get() {
            state.submit(inputs_from(input.files()));
            // Allow choosing the same file again.
            input.set_value("");
        }
    };
    let on_drop = move |ev: ev::DragEvent| {
        ev.prevent_default();
        hover.set(false);
        state.submit(inputs_from(ev.data_transfer().and_then(|d| d.files())));
    };
    let on_keydown = move |ev: ev::KeyboardEvent| {
        if ev.key() == "Enter" || ev.key() == " " {
            ev.prevent_default();
            open_picker();
        }
    };
    let paste = window_event_listener(ev::paste, move |ev: ev::ClipboardEvent| {
        let inputs = inputs_from(ev.clipboard_data().and_then(|d| d.files()));
        if !inputs.is_empty() {
            ev.prevent_default();
            state.submit(inputs);
        }
    });
    on_cleanup(move || paste.remove());

    view! {
        <section class="panel">
            <h2>"Your X-rays"</h2>
            <div
                class="dropzone"
                class:hover=move || hover.get()
                data-testid="dropzone"
                role="button"
                tabindex="0"
                aria-label="Drop chest X-ray images here, or press Enter to choose files"
                on:click=move |ev: ev::MouseEvent| {
                    let on_input = ev
                        .target()
                        .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
                        .is_some();
                    if !on_input {
                        open_picker();
                    }
                }
                on:keydown=on_keydown
                on:dragover=move |ev: ev::DragEvent| {
                    ev.prevent_default();
                    hover.set(true);
                }
                on:dragleave=move |_| hover.set(false)
                on:drop=on_drop
            >
                <p class="big">"Drop chest X-rays here"</p>
                <p>"or click, press Enter, or paste an image. DICOM, PNG (also 16-bit), JPEG, WebP, BMP, TIFF, GIF, with or without an extension; several at once."</p>
            </div>
            <p class="row">
                <label>
                    "Or choose files: "
                    <input type="file" multiple node_ref=input_ref on:change=on_change />
                </label>
            </p>
            <p class="pending" role="status" data-testid="batch-progress">
                {move || {
                    let (total, done, elapsed) = state.batch.get();
                    super::triage::progress_line(total, done, elapsed)
                }}
            </p>
        </section>
    }
}
