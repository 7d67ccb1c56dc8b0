//! The X-ray viewer: a result opened in a modal dialog, the file decoded again at its own
//! resolution (not the model's input), with zoom, pan, window/level, invert and the heatmap
//! over it, what the model said beside it, and previous / next in the table's order. Its model
//! (the state, the keys, the pixels) is [`super::viewing`]; this is the view and the canvas.

use leptos::{ev, html, prelude::*};
use wasm_bindgen::{Clamped, JsCast};
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement, ImageData};

use super::{
    AppState, ResultRow, Source, browser,
    results::{ProbabilityBar, label_class, ood_warning},
    viewing::{self, Command, ViewState, Window},
};

/// The image on show, decoded from the row's file.
struct Picture {
    /// 16-bit gray, row-major, `width · height` values.
    gray: Vec<u16>,
    width: u32,
    height: u32,
}

/// Where the viewer's image stands.
#[derive(Debug, Clone, PartialEq)]
enum Load {
    /// Reading and decoding the file.
    Loading,
    /// On show: the size kept and the file's own.
    Ready {
        kept: (u32, u32),
        original: (u32, u32),
    },
    /// The file could not be read again (for example a file that was moved since).
    Failed(String),
}

/// Reads and decodes a row's file for the viewer, downscaled to [`viewing::MAX_SIDE`], in the
/// inference worker (a large file decodes there without holding up the page).
async fn load(
    inference: super::inference::Inference,
    source: Source,
) -> Result<(Picture, (u32, u32)), String> {
    let d = inference.decode(&source, viewing::MAX_SIDE).await?;
    Ok((
        Picture {
            gray: d.gray,
            width: d.width,
            height: d.height,
        },
        d.original,
    ))
}

fn context(canvas: &HtmlCanvasElement) -> Option<CanvasRenderingContext2d> {
    canvas.get_context("2d").ok()??.dyn_into().ok()
}

/// Paints `picture` as `view` shows it (window, invert, overlay) into `target`, at the
/// picture's own size, a band of rows at a time.
fn paint(
    target: &HtmlCanvasElement,
    picture: &Picture,
    view: &ViewState,
    heatmap: Option<&crate::ml::explain::Heatmap>,
) -> Option<()> {
    if target.width() != picture.width || target.height() != picture.height {
        target.set_width(picture.width);
        target.set_height(picture.height);
    }
    let ctx = context(target)?;
    let painter = viewing::Painter::new(view, heatmap);
    let (w, h) = (picture.width as usize, picture.height as usize);
    for y in (0..h).step_by(BAND) {
        let rgba = painter.rows(&picture.gray, w, y..(y + BAND).min(h));
        let rows = (rgba.len() / (4 * w.max(1))) as u32;
        let data = ImageData::new_with_u8_clamped_array_and_sh(Clamped(&rgba), picture.width, rows)
            .ok()?;
        ctx.put_image_data(&data, 0.0, y as f64).ok()?;
    }
    Some(())
}

/// Rows painted at a time: a 4,096-px-wide band is 4 MB of RGBA.
const BAND: usize = 256;

/// Draws the painted picture `source` onto the visible `canvas` where `view` puts it.
fn draw(canvas: &HtmlCanvasElement, source: &HtmlCanvasElement, view: &ViewState) -> Option<()> {
    let dpr = web_sys::window()?.device_pixel_ratio().max(1.0);
    let (cw, ch) = (
        f64::from(canvas.client_width().max(1)),
        f64::from(canvas.client_height().max(1)),
    );
    let (pw, ph) = ((cw * dpr).round() as u32, (ch * dpr).round() as u32);
    if canvas.width() != pw || canvas.height() != ph {
        canvas.set_width(pw);
        canvas.set_height(ph);
    }
    let ctx = context(canvas)?;
    ctx.set_transform(dpr, 0.0, 0.0, dpr, 0.0, 0.0).ok()?;
    ctx.set_fill_style_str("#000");
    ctx.fill_rect(0.0, 0.0, cw, ch);
    let (scale, left, top) = viewing::placement(view, (source.width(), source.height()), (cw, ch));
    // Past 2 screen pixels per image pixel, show the pixels as they are.
    ctx.set_image_smoothing_enabled(scale * dpr < 2.0);
    ctx.draw_image_with_html_canvas_element_and_dw_and_dh(
        source,
        left,
        top,
        f64::from(source.width()) * scale,
        f64::from(source.height()) * scale,
    )
    .ok()?;
    // A count the end-to-end tests wait on: drawn again since they last looked.
    let draws = canvas
        .get_attribute("data-draws")
        .and_then(|d| d.parse::<u64>().ok())
        .unwrap_or(0);
    canvas
        .set_attribute("data-draws", &(draws + 1).to_string())
        .ok()
}

/// If the focus is on the dialog's last focusable element (its first, `backwards`), moves it to
/// the first (last) and says so.
fn wrap_focus(dialog: &web_sys::HtmlDialogElement, backwards: bool) -> bool {
    let Ok(list) = dialog.query_selector_all(
        "button:not([disabled]), input:not([disabled]), select, [tabindex=\"0\"]",
    ) else {
        return false;
    };
    let items: Vec<web_sys::HtmlElement> = (0..list.length())
        .filter_map(|i| list.item(i))
        .filter_map(|n| n.dyn_into().ok())
        .collect();
    let active = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.active_element());
    let (Some(first), Some(last), Some(active)) = (items.first(), items.last(), active) else {
        return false;
    };
    let (from, to) = if backwards {
        (first, last)
    } else {
        (last, first)
    };
    if active == **from {
        let _ = to.focus();
        true
    } else {
        false
    }
}

/// A pointer on the canvas: its id and last position (canvas CSS pixels from the centre).
type Pointer = (i32, f64, f64);

/// The viewer, mounted while a result is open (`AppState::viewer`).
#[component]
pub fn Viewer() -> impl IntoView {
    let state = expect_context::<AppState>();
    view! {
        <Show when=move || state.viewer.get().is_some()>
            <ViewerDialog />
        </Show>
    }
}

/// The dialog itself.
#[component]
fn ViewerDialog() -> impl IntoView {
    let state = expect_context::<AppState>();
    let dialog_ref = NodeRef::<html::Dialog>::new();
    let canvas_ref = NodeRef::<html::Canvas>::new();
    let open = state.viewer;
    // The table's order, for previous / next.
    let order = Memo::new(move |_| {
        state
            .table_view
            .get()
            .apply(&state.results.get())
            .iter()
            .map(|r| r.id)
            .collect::<Vec<_>>()
    });
    let row = Memo::new(move |_| {
        let id = open.get()?;
        state
            .results
            .with(|rows| rows.iter().find(|r| r.id == id).cloned())
    });
    let view = RwSignal::new(ViewState::new(state.show_heatmaps.get_untracked()));
    let loaded = RwSignal::new(Load::Loading);
    let picture = StoredValue::new_local(None::<Picture>);
    let painted = StoredValue::new_local(None::<(usize, (Window, bool, bool, f32))>);
    let offscreen = StoredValue::new_local(None::<HtmlCanvasElement>);
    let pointers = StoredValue::new(Vec::<Pointer>::new());
    let resized = RwSignal::new(0u32);

    let go = move |target: Option<usize>| {
        if let Some(id) = target {
            open.set(Some(id));
        }
    };
    let neighbours = move || {
        open.get().map_or((None, None, None), |id| {
            order.with(|o| viewing::neighbours(o, id))
        })
    };

    // A modal dialog from the moment it is in the page.
    Effect::new(move |_| {
        if let Some(d) = dialog_ref.get()
            && !d.open()
        {
            let _ = d.show_modal();
        }
    });
    // The row gone (the results cleared): close.
    Effect::new(move |_| {
        if open.get().is_some() && row.get().is_none() {
            open.set(None);
        }
    });
    // Each image opened: read and decode its file again.
    Effect::new(move |_| {
        let Some(id) = open.get() else { return };
        let source = state
            .sources
            .with_value(|s| s.iter().find(|(i, _)| *i == id).map(|(_, s)| s.clone()));
        loaded.set(Load::Loading);
        picture.set_value(None);
        painted.set_value(None);
        view.update(|v| *v = v.reset());
        leptos::task::spawn_local(async move {
            let result = match source {
                Some(s) => load(state.inference(), s).await,
                None => Err("its file is no longer available".into()),
            };
            if open.get_untracked() != Some(id) {
                return; // another image was chosen meanwhile
            }
            match result {
                Ok((p, original)) => {
                    let kept = (p.width, p.height);
                    picture.set_value(Some(p));
                    loaded.set(Load::Ready { kept, original });
                }
                Err(e) => loaded.set(Load::Failed(e)),
            }
        });
    });
    let resize = window_event_listener(ev::resize, move |_| resized.update(|n| *n += 1));
    on_cleanup(move || resize.remove());
    // Paint (when the look changed) and draw (always) whatever the view or the image does.
    Effect::new(move |_| {
        resized.track();
        let v = view.get();
        let ready = matches!(loaded.get(), Load::Ready { .. });
        let Some(canvas) = canvas_ref.get() else {
            return;
        };
        let Some(id) = open.get_untracked() else {
            return;
        };
        if !ready {
            if let Some(ctx) = context(&canvas) {
                ctx.clear_rect(
                    0.0,
                    0.0,
                    f64::from(canvas.width()),
                    f64::from(canvas.height()),
                );
            }
            return;
        }
        let target = offscreen.with_value(Clone::clone).or_else(|| {
            let c: HtmlCanvasElement = web_sys::window()?
                .document()?
                .create_element("canvas")
                .ok()?
                .dyn_into()
                .ok()?;
            offscreen.set_value(Some(c.clone()));
            Some(c)
        });
        let Some(target) = target else { return };
        let key = (id, v.look());
        if painted.with_value(|p| *p != Some(key)) {
            let heatmap = row.with_untracked(|r| r.as_ref().and_then(|r| r.heatmap.clone()));
            picture.with_value(|p| {
                if let Some(p) = p {
                    paint(&target, p, &v, heatmap.as_ref());
                }
            });
            painted.set_value(Some(key));
        }
        draw(&canvas, &target, &v);
    });
    on_cleanup(move || {
        // The decoded image and its painted copy go with the dialog.
        picture.set_value(None);
        if let Some(c) = offscreen.with_value(Clone::clone) {
            c.set_width(0);
            c.set_height(0);
        }
    });

    let run = move |command: Command| match command {
        Command::Next => go(neighbours().2),
        Command::Previous => go(neighbours().1),
        c => view.update(|v| *v = v.apply(c)),
    };
    let on_key = move |ev: ev::KeyboardEvent| {
        if ev.ctrl_key() || ev.meta_key() || ev.alt_key() {
            return;
        }
        let key = ev.key();
        if key == "Tab" {
            // The focus goes round inside the dialog instead of leaving for the browser's own
            // controls after the last one.
            if let Some(d) = dialog_ref.get_untracked()
                && wrap_focus(&d, ev.shift_key())
            {
                ev.prevent_default();
            }
            return;
        }
        // A slider keeps its own arrow and page keys.
        let in_slider = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
            .is_some_and(|i| i.type_() == "range");
        if in_slider && (key.starts_with("Arrow") || key.starts_with("Page")) {
            return;
        }
        if let Some(c) = viewing::command_for_key(&key) {
            ev.prevent_default();
            run(c);
        }
    };
    let close = move || {
        if let Some(d) = dialog_ref.get_untracked() {
            d.close();
        }
    };
    // After closing (the button, Escape): back to the row that was open.
    let on_close = move |_| {
        let id = open.get_untracked();
        open.set(None);
        if let Some(id) = id {
            browser::focus(&format!("[data-row=\"{id}\"] button.open"));
        }
    };

    // Pointer gestures: drag pans (with Shift, or the right button, it sets window/level), two
    // pointers pinch to zoom, the wheel zooms where the pointer is.
    let from_centre = move |x: f64, y: f64| {
        canvas_ref.get_untracked().map_or((0.0, 0.0), |c| {
            (
                x - f64::from(c.client_width()) / 2.0,
                y - f64::from(c.client_height()) / 2.0,
            )
        })
    };
    let on_pointer_down = move |ev: ev::PointerEvent| {
        if let Some(c) = canvas_ref.get_untracked() {
            let _ = c.set_pointer_capture(ev.pointer_id());
            let _ = c.focus();
        }
        let (x, y) = from_centre(f64::from(ev.offset_x()), f64::from(ev.offset_y()));
        pointers.update_value(|p| {
            p.retain(|q| q.0 != ev.pointer_id());
            p.push((ev.pointer_id(), x, y));
        });
    };
    let on_pointer_move = move |ev: ev::PointerEvent| {
        let id = ev.pointer_id();
        let (x, y) = from_centre(f64::from(ev.offset_x()), f64::from(ev.offset_y()));
        let mut before = None;
        let mut others = Vec::new();
        pointers.update_value(|p| {
            for q in p.iter_mut() {
                if q.0 == id {
                    before = Some((q.1, q.2));
                    (q.1, q.2) = (x, y);
                } else {
                    others.push((q.1, q.2));
                }
            }
        });
        let Some((bx, by)) = before else { return };
        match others.as_slice() {
            [] if ev.shift_key() || ev.buttons() & 2 != 0 => view.update(|v| {
                v.window = v.window.dragged(x - bx, y - by);
            }),
            [] => view.update(|v| *v = v.pan_by(x - bx, y - by)),
            [(ox, oy), ..] => {
                let d0 = (bx - ox).hypot(by - oy);
                let d1 = (x - ox).hypot(y - oy);
                if d0 > 1.0 {
                    let mid = ((x + ox) / 2.0, (y + oy) / 2.0);
                    view.update(|v| *v = v.zoom_at(d1 / d0, mid));
                }
            }
        }
    };
    let on_pointer_up = move |ev: ev::PointerEvent| {
        pointers.update_value(|p| p.retain(|q| q.0 != ev.pointer_id()));
    };
    let on_wheel = move |ev: ev::WheelEvent| {
        ev.prevent_default();
        let unit = match ev.delta_mode() {
            1 => 16.0,  // lines
            2 => 400.0, // pages
            _ => 1.0,
        };
        let factor = (-ev.delta_y() * unit * 0.002).exp();
        let at = from_centre(f64::from(ev.offset_x()), f64::from(ev.offset_y()));
        view.update(|v| *v = v.zoom_at(factor, at));
    };

    let file = move || row.with(|r| r.as_ref().map(|r| r.file.clone()).unwrap_or_default());
    let status = move || match loaded.get() {
        Load::Loading => "Decoding the image…".to_string(),
        Load::Ready { kept, original } if kept == original => {
            format!("{} × {} pixels, shown at full resolution", kept.0, kept.1)
        }
        Load::Ready { kept, original } => format!(
            "{} × {} pixels, shown downscaled to {} × {} (the viewer keeps at most {} pixels a side)",
            original.0,
            original.1,
            kept.0,
            kept.1,
            viewing::MAX_SIDE
        ),
        Load::Failed(e) => format!("The image could not be shown: {e}"),
    };
    let state_attr = move || match loaded.get() {
        Load::Loading => "loading",
        Load::Ready { .. } => "ready",
        Load::Failed(_) => "error",
    };
    let canvas_label = move || {
        let v = view.get();
        format!(
            "X-ray {}, zoom {:.0} %, window level {:.0} % width {:.0} %{}{}",
            file(),
            v.zoom * 100.0,
            v.window.level * 100.0,
            v.window.width * 100.0,
            if v.invert { ", inverted" } else { "" },
            if v.overlay && row.with(|r| r.as_ref().is_some_and(|r| r.heatmap.is_some())) {
                ", heatmap shown"
            } else {
                ""
            }
        )
    };

    view! {
        <dialog
            node_ref=dialog_ref
            class="viewer"
            data-testid="viewer"
            data-file=file
            aria-labelledby="viewer-title"
            aria-describedby="viewer-help"
            on:keydown=on_key
            on:close=on_close
        >
            <header class="viewer-head">
                <h2 id="viewer-title">{file}</h2>
                <span class="meta" data-testid="viewer-position">
                    {move || {
                        let (at, _, _) = neighbours();
                        let n = order.with(Vec::len);
                        at.map_or_else(
                            || "not in the table's current filter".to_string(),
                            |k| format!("{k} of {n}"),
                        )
                    }}
                </span>
                <button
                    data-testid="viewer-prev"
                    disabled=move || neighbours().1.is_none()
                    on:click=move |_| run(Command::Previous)
                >
                    "◀ Previous"
                </button>
                <button
                    data-testid="viewer-next"
                    disabled=move || neighbours().2.is_none()
                    on:click=move |_| run(Command::Next)
                >
                    "Next ▶"
                </button>
                <button data-testid="viewer-close" on:click=move |_| close()>
                    "Close"
                </button>
            </header>
            <div class="viewer-body">
                <div class="viewer-stage">
                    <canvas
                        node_ref=canvas_ref
                        data-testid="viewer-canvas"
                        data-state=state_attr
                        tabindex="0"
                        autofocus
                        role="img"
                        aria-label=canvas_label
                        on:pointerdown=on_pointer_down
                        on:pointermove=on_pointer_move
                        on:pointerup=on_pointer_up
                        on:pointercancel=on_pointer_up
                        on:contextmenu=|ev: ev::MouseEvent| ev.prevent_default()
                        on:wheel=on_wheel
                    ></canvas>
                    <p class="meta" role="status" data-testid="viewer-status">{status}</p>
                    <p class="meta" id="viewer-help">
                        "Drag to pan (arrow keys); wheel, pinch, + and − to zoom; Shift-drag or right-drag, or the sliders, for window/level; I inverts, H switches the heatmap, 0 resets; N / P or Page Down / Up for the next and previous result; Escape closes."
                    </p>
                </div>
                <aside class="viewer-side">
                    {move || row.get().map(|r| view! { <Reading row=r /> })}
                    <ViewControls view=view row=row />
                </aside>
            </div>
        </dialog>
    }
}

/// What the model said about the open image.
#[component]
fn Reading(row: ResultRow) -> impl IntoView {
    let pct = row.p_pneumonia * 100.0;
    let band = row.band.map(|(lo, hi)| {
        format!(
            "Uncertain band {:.1}–{:.1} %: {}",
            lo * 100.0,
            hi * 100.0,
            if row.uncertain {
                "this image is inside it; too close to call, a reader should decide."
            } else {
                "this image is outside it."
            }
        )
    });
    view! {
        <section class="reading" aria-label="the model's reading">
            <p>
                <span class=label_class(row.label) data-testid="viewer-label">{row.label.name()}</span>
                {row.truth.map(|t| view! { <span class="meta">{format!("true label: {t}")}</span> })}
            </p>
            <ProbabilityBar p=row.p_pneumonia threshold=row.threshold band=row.band />
            <p>{format!("P(pneumonia) {pct:.1} %, decision threshold {:.1} %", row.threshold * 100.0)}</p>
            {band.map(|b| view! { <p class=if row.uncertain { "uncertain" } else { "meta" }>{b}</p> })}
            {row.ood.map(|why| view! {
                <p class="ood" role="note">
                    {ood_warning(&why)}
                </p>
            })}
            <p class="meta">
                {format!(
                    "{} on {}: {:.0} ms, heatmap {:.0} ms more",
                    row.format,
                    row.backend,
                    row.ms,
                    row.heatmap_ms
                )}
            </p>
            {row.dicom.map(|d| view! { <p class="meta" data-testid="viewer-dicom">{d}</p> })}
            {row.tuned.map(|t| view! {
                <p>
                    "Your fine-tuned model: "
                    <span class=label_class(t.label)>{t.label.name()}</span>
                    {format!(" {:.1} %", t.p_pneumonia * 100.0)}
                </p>
            })}
        </section>
    }
}

/// A slider over a fraction of the view, shown in percent: `get` reads it, `set` writes it.
#[component]
fn PercentSlider(
    label: &'static str,
    testid: &'static str,
    min: u32,
    max: u32,
    view: RwSignal<ViewState>,
    get: fn(&ViewState) -> f32,
    set: fn(&mut ViewState, f32),
) -> impl IntoView {
    view! {
        <label class="slider">
            {label}
            " "
            <input
                type="range"
                min=min.to_string()
                max=max.to_string()
                step="1"
                data-testid=testid
                prop:value=move || format!("{:.0}", get(&view.get()) * 100.0)
                on:input=move |ev| {
                    if let Ok(v) = event_target_value(&ev).parse::<f32>() {
                        view.update(|s| set(s, v / 100.0));
                    }
                }
            />
        </label>
    }
}

/// The viewer's controls: zoom, window/level, invert, reset, and the heatmap's switch,
/// opacity and legend.
#[component]
fn ViewControls(view: RwSignal<ViewState>, row: Memo<Option<ResultRow>>) -> impl IntoView {
    let heatmap = move || row.with(|r| r.as_ref().and_then(|r| r.heatmap.clone()));
    view! {
        <fieldset>
            <legend>"Zoom"</legend>
            <button
                data-testid="zoom-out"
                aria-label="zoom out"
                on:click=move |_| view.update(|v| *v = v.apply(Command::ZoomOut))
            >
                "−"
            </button>
            <span data-testid="zoom-level">{move || format!(" {:.0} % ", view.get().zoom * 100.0)}</span>
            <button
                data-testid="zoom-in"
                aria-label="zoom in"
                on:click=move |_| view.update(|v| *v = v.apply(Command::ZoomIn))
            >
                "+"
            </button>
            " "
            <button
                data-testid="reset"
                disabled=move || view.get().is_reset()
                on:click=move |_| view.update(|v| *v = v.reset())
            >
                "Reset"
            </button>
        </fieldset>
        <fieldset>
            <legend>"Window / level"</legend>
            <PercentSlider label="Level" testid="window-level" min=0 max=100 view=view get=|s| s.window.level set=|s, v| s.window = Window { level: v, ..s.window }.clamped() />
            <PercentSlider label="Width" testid="window-width" min=1 max=200 view=view get=|s| s.window.width set=|s, v| s.window = Window { width: v, ..s.window }.clamped() />
            <button
                data-testid="invert"
                aria-pressed=move || view.get().invert.to_string()
                on:click=move |_| view.update(|v| *v = v.apply(Command::Invert))
            >
                "Invert"
            </button>
        </fieldset>
        {move || heatmap().map(|h| {
            let values = h.values.iter().map(|v| format!("{v:.3}")).collect::<Vec<_>>().join(",");
            view! {
                <fieldset
                    data-testid="heatmap"
                    data-grid=format!("{}x{}", h.width, h.height)
                    data-values=values
                >
                    <legend>"Where the model looked"</legend>
                    <label>
                        <input
                            type="checkbox"
                            data-testid="heatmap-toggle"
                            prop:checked=move || view.get().overlay
                            on:change=move |ev| {
                                let on = event_target_checked(&ev);
                                view.update(|v| v.overlay = on);
                            }
                        />
                        " Heatmap over the image"
                    </label>
                    <PercentSlider label="Opacity" testid="heatmap-opacity" min=0 max=100 view=view get=|s| s.opacity set=|s, v| s.opacity = v.clamp(0.0, 1.0) />
                    <p class="heat-legend">
                        <span class="ramp" role="img" aria-label="heatmap colours: blue for the least PNEUMONIA evidence in the image, through cyan and yellow, to red for the most"></span>
                        " least → most evidence for PNEUMONIA, relative within this image (Grad-CAM, "
                        {format!("{}×{}", h.width, h.height)}
                        " cells over the whole image)"
                    </p>
                </fieldset>
            }
        })}
    }
}
