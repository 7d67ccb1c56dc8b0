//! Page objects: the page as a person uses it (open it, drop files, click a sample, read the
//! results, train with settings, wait for a state), so the end-to-end tests say what they do
//! and hold no selectors. Every `data-testid` the tests rely on is named here, once.

use std::path::Path;

use fantoccini::{Client, Locator};
use serde::Deserialize;
use serde_json::{Value, json};

use super::site::{js, wait_for};

/// One result row, as the page shows it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Prediction {
    /// The file's name.
    pub file: String,
    /// NORMAL or PNEUMONIA.
    pub label: String,
    /// P(pneumonia) as printed in the row's attribute.
    pub p_text: String,
    /// The backend that classified it.
    pub backend: String,
    /// Inference time.
    pub ms: f64,
    /// In the "uncertain, needs a reader" band.
    pub uncertain: bool,
    /// The row says so in words.
    pub uncertain_note: bool,
    /// Flagged as not a chest X-ray.
    pub ood: bool,
    /// The row shows the warning.
    pub ood_warning: bool,
    /// The true label's text, for gallery samples.
    pub truth: Option<String>,
    /// The fine-tuned model's P(pneumonia), when one is loaded.
    pub tuned_p: Option<f64>,
    /// The heatmap's cells, row-major (`data-heatmap`), when the row has one.
    pub heatmap: Option<String>,
    /// Its grid, `WxH`.
    pub heatmap_size: Option<String>,
}

impl Prediction {
    /// P(pneumonia).
    pub fn p(&self) -> f64 {
        self.p_text.parse().unwrap_or(f64::NAN)
    }

    /// The heatmap's cells (empty when the row has none).
    pub fn heatmap(&self) -> Vec<f64> {
        self.heatmap
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .filter_map(|v| v.parse().ok())
            .collect()
    }
}

/// One refused file.
#[derive(Debug, Clone, Deserialize)]
pub struct Refusal {
    /// The file's name.
    pub file: String,
    /// The message shown.
    pub text: String,
}

const PREDICTIONS: &str = "return [...document.querySelectorAll('[data-testid=prediction]')].map(e => { const d = e.dataset; const t = e.querySelector('.truth'); return {file: d.file, label: d.label, pText: d.pPneumonia, backend: d.backend, ms: +d.ms, uncertain: d.uncertain === 'true', uncertainNote: !!e.querySelector('[data-testid=uncertain-note]'), ood: d.ood === 'true', oodWarning: !!e.querySelector('[data-testid=ood-warning]'), truth: t ? t.textContent : null, tunedP: d.tunedPPneumonia ? +d.tunedPPneumonia : null, heatmap: d.heatmap || null, heatmapSize: d.heatmapSize || null}; })";
const REFUSALS: &str = "return [...document.querySelectorAll('[data-testid=error]')].map(e => ({file: e.dataset.file, text: e.textContent}))";
const COUNTS: &str = "return [document.querySelectorAll('[data-testid=prediction]').length, document.querySelectorAll('[data-testid=error]').length]";

/// The app in a browser tab.
#[derive(Clone)]
pub struct Page {
    c: Client,
}

impl Page {
    /// Opens `url` and waits until the model is ready.
    pub async fn open(c: &Client, url: &str) -> Page {
        super::site::open_until_ready(c, url).await;
        Page { c: c.clone() }
    }

    /// The WebDriver client, for what no page object covers (service workers, caches).
    pub fn client(&self) -> &Client {
        &self.c
    }

    /// The model's state: `loading`, `ready` or `error`.
    pub async fn model_state(&self) -> String {
        let v = js(
            &self.c,
            "const s = document.querySelector('[data-testid=model-status]'); return s && s.dataset.state",
        )
        .await;
        v.as_str().unwrap_or_default().to_string()
    }

    /// The page's wasm memory in MB, as the page reports it after each answered file.
    pub async fn wasm_memory_mb(&self) -> f64 {
        js(
            &self.c,
            "return +document.querySelector('[data-testid=model-status]').dataset.wasmMb",
        )
        .await
        .as_f64()
        .unwrap_or(f64::NAN)
    }

    /// Why the backend is not the one asked for, or what happened to it (empty when nothing).
    /// Where the page's inference runs: `worker` (the inference worker) or `page` (no worker
    /// could start), with the page's note saying why in the second case.
    pub async fn inference_runs_in(&self) -> (String, String) {
        let v = js(
            &self.c,
            "const n = document.querySelector('[data-testid=inference-note]'); \
             return [document.querySelector('[data-testid=model-status]').dataset.inference, n ? n.textContent : '']",
        )
        .await;
        (
            v[0].as_str().unwrap_or_default().to_string(),
            v[1].as_str().unwrap_or_default().to_string(),
        )
    }

    pub async fn backend_note(&self) -> String {
        js(
            &self.c,
            "return document.querySelector('[data-testid=backend-note]').textContent",
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// The backend in use, as the backend menu shows it: `webgpu` or `cpu`.
    pub async fn backend(&self) -> String {
        js(
            &self.c,
            "return document.querySelector('[data-testid=backend-select]').value",
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// Drops files on the page (through the dropzone's file input).
    pub async fn drop_files<P: AsRef<Path>>(&self, files: &[P]) {
        let paths: Vec<String> = files
            .iter()
            .map(|p| p.as_ref().display().to_string())
            .collect();
        self.c
            .find(Locator::Css(
                "[data-testid=dropzone] input[type=file], input[type=file]",
            ))
            .await
            .unwrap()
            .send_keys(&paths.join("\n"))
            .await
            .unwrap();
    }

    /// (result rows, refused files) on the page now.
    pub async fn counts(&self) -> (u64, u64) {
        let v = js(&self.c, COUNTS).await;
        (v[0].as_u64().unwrap_or(0), v[1].as_u64().unwrap_or(0))
    }

    /// Waits until the page shows exactly `predictions` results and `refusals` refused files.
    pub async fn wait_for_results(&self, predictions: usize, refusals: usize, secs: u64) {
        wait_for(
            &self.c,
            &format!("return document.querySelectorAll('[data-testid=prediction]').length === {predictions} && document.querySelectorAll('[data-testid=error]').length === {refusals}"),
            secs,
            &format!("{predictions} results and {refusals} refused files"),
        )
        .await;
    }

    /// Waits until `n` files have been answered, one way or the other.
    pub async fn wait_for_answers(&self, n: usize, secs: u64) {
        wait_for(
            &self.c,
            &format!("return document.querySelectorAll('[data-testid=prediction]').length + document.querySelectorAll('[data-testid=error]').length === {n}"),
            secs,
            &format!("{n} files answered"),
        )
        .await;
    }

    /// Drops one file and waits for its row; returns it (the newest row is first).
    pub async fn classify(&self, file: &Path) -> Prediction {
        let (before, _) = self.counts().await;
        self.drop_files(&[file]).await;
        wait_for(
            &self.c,
            &format!(
                "return document.querySelectorAll('[data-testid=prediction]').length > {before}"
            ),
            300,
            "a prediction",
        )
        .await;
        self.predictions().await.remove(0)
    }

    /// Every result row, newest first.
    pub async fn predictions(&self) -> Vec<Prediction> {
        serde_json::from_value(js(&self.c, PREDICTIONS).await).unwrap()
    }

    /// Every refused file, newest first.
    pub async fn refusals(&self) -> Vec<Refusal> {
        serde_json::from_value(js(&self.c, REFUSALS).await).unwrap()
    }

    /// Clicks the gallery's first sample and waits for its row (the one with a true label);
    /// returns that row.
    pub async fn classify_first_sample(&self) -> Prediction {
        let sample = self
            .c
            .find(Locator::Css("[data-testid=sample]"))
            .await
            .unwrap();
        let file = sample.attr("data-file").await.unwrap().unwrap();
        sample.click().await.unwrap();
        wait_for(
            &self.c,
            &format!("const r = document.querySelector('[data-testid=prediction]'); return r && r.dataset.file === '{file}' && !!r.querySelector('.truth')"),
            120,
            "the sample's prediction",
        )
        .await;
        self.predictions().await.remove(0)
    }

    /// Clicks the gallery's first sample and waits for any row (e.g. offline, no truth needed).
    pub async fn click_first_sample(&self) {
        let (before, _) = self.counts().await;
        self.c
            .find(Locator::Css("[data-testid=sample]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_for(
            &self.c,
            &format!(
                "return document.querySelectorAll('[data-testid=prediction]').length > {before}"
            ),
            120,
            "the sample's prediction",
        )
        .await;
    }

    /// The text of a section of the model card: `validation`, `stress`, `band` or `scope`;
    /// waits for it to be shown.
    pub async fn card_section(&self, section: &str) -> String {
        let v = wait_for(
            &self.c,
            &format!("const e = document.querySelector('[data-testid=card-{section}]'); return e && e.textContent"),
            60,
            &format!("the card's {section}"),
        )
        .await;
        v.as_str().unwrap_or_default().to_string()
    }

    /// Whether the model card plots its training curve.
    pub async fn card_has_curve(&self) -> bool {
        js(
            &self.c,
            "return !!document.querySelector('[data-testid=model-card] svg polyline')",
        )
        .await
            == json!(true)
    }

    /// The DICOM attributes shown, one text per DICOM row.
    pub async fn dicom_info(&self) -> Vec<String> {
        serde_json::from_value(
            js(
                &self.c,
                "return [...document.querySelectorAll('[data-testid=dicom-info]')].map(e => e.textContent)",
            )
            .await,
        )
        .unwrap()
    }

    /// Each result row's thumbnail as the browser decoded it (natural width and height), once
    /// every one has loaded; `None` for a row without one.
    pub async fn thumbnails(&self) -> Vec<Option<(u32, u32)>> {
        wait_for(
            &self.c,
            "return [...document.querySelectorAll('[data-testid=prediction] td.thumb img')].every(i => i.complete)",
            60,
            "the thumbnails",
        )
        .await;
        serde_json::from_value(
            js(
                &self.c,
                "return [...document.querySelectorAll('[data-testid=prediction]')].map(r => { const i = r.querySelector('td.thumb img'); return i && i.naturalWidth ? [i.naturalWidth, i.naturalHeight] : null })",
            )
            .await,
        )
        .unwrap()
    }

    /// Waits until the service worker controls the page (it has precached the build).
    pub async fn wait_for_service_worker(&self) {
        wait_for(
            &self.c,
            "return !!navigator.serviceWorker.controller",
            180,
            "the service worker to take control",
        )
        .await;
    }

    /// Everything the page says, as text.
    pub async fn text(&self) -> String {
        js(&self.c, "return document.body.innerText")
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The page's own address and every resource it loaded.
    pub async fn requested_urls(&self) -> Vec<String> {
        serde_json::from_value(
            js(
                &self.c,
                "return [location.href, ...performance.getEntriesByType('resource').map(e => e.name)]",
            )
            .await,
        )
        .unwrap()
    }

    /// Whether the page-wide "something broke" banner is shown.
    pub async fn fatal_banner_shown(&self) -> bool {
        js(&self.c, "return !document.querySelector('#fatal').hidden").await == json!(true)
    }

    /// Whether results are in a live region and refusals in an alert.
    pub async fn results_are_announced(&self) -> bool {
        js(&self.c, "return !!document.querySelector('[aria-live] [data-testid=prediction]') && !!document.querySelector('[role=alert] [data-testid=error]')").await == json!(true)
    }

    /// axe-core's WCAG 2.0/2.1 A and AA violations on the page as it is.
    pub async fn accessibility_violations(&self) -> Value {
        super::site::axe_violations(&self.c).await
    }

    /// The training panel.
    pub fn training(&self) -> Training<'_> {
        Training(self)
    }

    /// The X-ray viewer.
    pub fn viewer(&self) -> Viewer<'_> {
        Viewer(self)
    }

    /// The results table's file names, top to bottom, as shown now.
    pub async fn table_order(&self) -> Vec<String> {
        serde_json::from_value(
            js(
                &self.c,
                "return [...document.querySelectorAll('[data-testid=prediction]')].map(r => r.dataset.file)",
            )
            .await,
        )
        .unwrap()
    }

    /// Clicks the header that sorts by `key` (`p`, `label`, `file` or `ms`) and returns its
    /// `aria-sort` after the click.
    pub async fn sort_by(&self, key: &str) -> String {
        self.c
            .find(Locator::Css(&format!("th button[data-sort={key}]")))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        js(
            &self.c,
            &format!("return document.querySelector('th button[data-sort={key}]').closest('th').getAttribute('aria-sort')"),
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// Puts the keyboard focus on the header that sorts by `key`.
    pub async fn focus_sort_header(&self, key: &str) {
        js(
            &self.c,
            &format!("document.querySelector('th button[data-sort={key}]').focus(); return 1"),
        )
        .await;
    }

    /// Chooses `value` in the results filter (`all`, `pneumonia`, `uncertain` or `ood`).
    pub async fn filter(&self, value: &str) {
        self.c
            .execute(
                "const el = document.querySelector('[data-testid=results-filter]'); el.value = arguments[0]; el.dispatchEvent(new Event('change', {bubbles: true}));",
                vec![json!(value)],
            )
            .await
            .unwrap();
    }

    /// Clicks "Download CSV" and returns the file it saves, as text.
    pub async fn download_csv(&self) -> String {
        // The page hands the CSV to an object URL and revokes it at once: keep the blob.
        js(
            &self.c,
            "if (!window.__blobs) { window.__blobs = []; const make = URL.createObjectURL; URL.createObjectURL = b => { window.__blobs.push(b); return make(b); }; } window.__blobs.length = 0; return true",
        )
        .await;
        self.c
            .find(Locator::Css("[data-testid=download-csv]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let text = self
            .c
            .execute_async(
                "const done = arguments[arguments.length - 1]; const b = window.__blobs.find(b => b.type.startsWith('text/csv')); b ? b.text().then(done) : done(null);",
                vec![],
            )
            .await
            .unwrap();
        text.as_str().expect("a CSV was saved").to_string()
    }
}

/// What the viewer's canvas shows, summed up from its pixels.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
pub struct Pixels {
    /// The canvas' size in its own pixels.
    pub width: u32,
    /// Its height.
    pub height: u32,
    /// A hash of every pixel.
    pub hash: u64,
    /// Share of pixels that are pure black (outside the image, or black in it).
    pub black: f64,
    /// Share of pixels with a colour (red and blue more than 24 apart): the heatmap.
    pub colour: f64,
    /// Mean green level of the other pixels.
    pub mean: f64,
    /// Their standard deviation: contrast.
    pub sd: f64,
}

const PIXELS: &str = "const c = document.querySelector('[data-testid=viewer-canvas]'); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let h = 0, n = 0, sum = 0, sq = 0, colour = 0, black = 0; for (let i = 0; i < d.length; i += 4) { const r = d[i], g = d[i + 1], b = d[i + 2]; h = (h * 31 + r * 3 + g * 5 + b * 7) % 2147483647; if (r === 0 && g === 0 && b === 0) black++; else { n++; sum += g; sq += g * g; } if (Math.abs(r - b) > 24) colour++; } const all = d.length / 4; const mean = n ? sum / n : 0; return {width: c.width, height: c.height, hash: h, black: black / all, colour: colour / all, mean, sd: n ? Math.sqrt(Math.max(0, sq / n - mean * mean)) : 0};";

/// The X-ray viewer of a [`Page`].
pub struct Viewer<'a>(&'a Page);

impl Viewer<'_> {
    fn c(&self) -> &Client {
        &self.0.c
    }

    /// Clicks the open button of the result for `file`, then waits until the viewer shows it.
    pub async fn open(&self, file: &str) {
        self.c()
            .find(Locator::Css(&format!(
                "[data-testid=prediction][data-file='{file}'] [data-testid=open-viewer]"
            )))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        self.wait_showing(file).await;
    }

    /// Waits until the viewer shows `file`, decoded and drawn.
    pub async fn wait_showing(&self, file: &str) {
        wait_for(
            self.c(),
            &format!("const v = document.querySelector('[data-testid=viewer]'); return !!v && v.open && v.dataset.file === '{file}' && v.querySelector('[data-testid=viewer-canvas]').dataset.state === 'ready' && +v.querySelector('[data-testid=viewer-canvas]').dataset.draws > 0"),
            60,
            &format!("the viewer showing {file}"),
        )
        .await;
    }

    /// The file open in the viewer, if it is open.
    pub async fn file(&self) -> Option<String> {
        js(
            self.c(),
            "const v = document.querySelector('[data-testid=viewer]'); return v && v.open ? v.dataset.file : null",
        )
        .await
        .as_str()
        .map(str::to_string)
    }

    /// The viewer's `data-testid` element's text.
    pub async fn text_of(&self, testid: &str) -> String {
        js(
            self.c(),
            &format!("const e = document.querySelector('[data-testid=viewer] [data-testid={testid}]'); return e ? e.textContent : null"),
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// Puts the keyboard focus on the image.
    pub async fn focus_image(&self) {
        js(
            self.c(),
            "document.querySelector('[data-testid=viewer-canvas]').focus(); return 1",
        )
        .await;
    }

    /// The canvas' pixels as they are now.
    pub async fn pixels(&self) -> Pixels {
        serde_json::from_value(js(self.c(), PIXELS).await).unwrap()
    }

    /// The mean red level of a 5×5 block of canvas pixels centred `(dx, dy)` CSS pixels from
    /// the canvas' centre.
    pub async fn probe(&self, dx: f64, dy: f64) -> f64 {
        js(
            self.c(),
            &format!("const c = document.querySelector('[data-testid=viewer-canvas]'); const k = c.width / c.clientWidth; const x = Math.round(c.width / 2 + {dx} * k), y = Math.round(c.height / 2 + {dy} * k); const d = c.getContext('2d').getImageData(x - 2, y - 2, 5, 5).data; let s = 0; for (let i = 0; i < d.length; i += 4) s += d[i]; return s / 25;"),
        )
        .await
        .as_f64()
        .unwrap()
    }

    async fn draws(&self) -> u64 {
        js(
            self.c(),
            "const c = document.querySelector('[data-testid=viewer-canvas]'); return c ? +c.dataset.draws : 0",
        )
        .await
        .as_u64()
        .unwrap_or(0)
    }

    /// Waits until the canvas has been drawn more often than `before` times.
    async fn redrawn(&self, before: u64, what: &str) {
        wait_for(
            self.c(),
            &format!("return +document.querySelector('[data-testid=viewer-canvas]').dataset.draws > {before}"),
            20,
            what,
        )
        .await;
    }

    /// Clicks the viewer's `testid` button (or checkbox) and waits for the redraw.
    pub async fn click(&self, testid: &str) {
        let before = self.draws().await;
        self.c()
            .find(Locator::Css(&format!(
                "[data-testid=viewer] [data-testid={testid}]"
            )))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        self.redrawn(before, testid).await;
    }

    /// Sets the viewer's `testid` slider to `value`, as dragging it does, and waits for the
    /// redraw.
    pub async fn slide(&self, testid: &str, value: u32) {
        let before = self.draws().await;
        self.c()
            .execute(
                "const el = document.querySelector(`[data-testid=viewer] [data-testid=${arguments[0]}]`); el.value = arguments[1]; el.dispatchEvent(new Event('input', {bubbles: true}));",
                vec![json!(testid), json!(value.to_string())],
            )
            .await
            .unwrap();
        self.redrawn(before, testid).await;
    }

    /// A slider's value.
    pub async fn slider(&self, testid: &str) -> f64 {
        js(
            self.c(),
            &format!("return +document.querySelector('[data-testid=viewer] [data-testid={testid}]').value"),
        )
        .await
        .as_f64()
        .unwrap()
    }

    /// Presses `keys` on whatever has the focus, and waits for a redraw if `redraws`.
    pub async fn press(&self, keys: &str, redraws: bool) {
        let before = self.draws().await;
        self.c()
            .active_element()
            .await
            .unwrap()
            .send_keys(keys)
            .await
            .unwrap();
        if redraws {
            self.redrawn(before, &format!("a redraw after {keys:?}"))
                .await;
        }
    }

    /// Drags on the canvas from its centre by `(dx, dy)` CSS pixels, with Shift held if
    /// `shift`; with `pinch`, a second finger rests `pinch` pixels left of the centre (so the
    /// drag spreads or closes two fingers).
    pub async fn drag(&self, dx: f64, dy: f64, shift: bool, pinch: Option<f64>) {
        let before = self.draws().await;
        self.c()
            .execute(
                "const [dx, dy, shift, pinch] = arguments; const c = document.querySelector('[data-testid=viewer-canvas]'); const r = c.getBoundingClientRect(); const x = r.left + r.width / 2, y = r.top + r.height / 2; const fire = (type, id, px, py) => c.dispatchEvent(new PointerEvent(type, {pointerId: id, pointerType: pinch === null ? 'mouse' : 'touch', isPrimary: id === 1, bubbles: true, clientX: px, clientY: py, shiftKey: shift, buttons: type === 'pointerup' ? 0 : 1})); if (pinch !== null) fire('pointerdown', 2, x - pinch, y); fire('pointerdown', 1, x, y); for (let k = 1; k <= 4; k++) fire('pointermove', 1, x + dx * k / 4, y + dy * k / 4); fire('pointerup', 1, x + dx, y + dy); if (pinch !== null) fire('pointerup', 2, x - pinch, y);",
                vec![json!(dx), json!(dy), json!(shift), json!(pinch)],
            )
            .await
            .unwrap();
        self.redrawn(before, "a redraw after dragging").await;
    }

    /// Turns the mouse wheel over the canvas' centre by `delta_y` pixels.
    pub async fn wheel(&self, delta_y: f64) {
        let before = self.draws().await;
        self.c()
            .execute(
                "const c = document.querySelector('[data-testid=viewer-canvas]'); const r = c.getBoundingClientRect(); c.dispatchEvent(new WheelEvent('wheel', {deltaY: arguments[0], clientX: r.left + r.width / 2, clientY: r.top + r.height / 2, bubbles: true, cancelable: true}));",
                vec![json!(delta_y)],
            )
            .await
            .unwrap();
        self.redrawn(before, "a redraw after the wheel").await;
    }

    /// The heatmap the viewer shows: its grid (`WxH`) and values.
    pub async fn heatmap(&self) -> (String, Vec<f64>) {
        let v = js(
            self.c(),
            "const e = document.querySelector('[data-testid=viewer] [data-testid=heatmap]'); return e && [e.dataset.grid, e.dataset.values]",
        )
        .await;
        let grid = v[0].as_str().unwrap_or_default().to_string();
        let values = v[1]
            .as_str()
            .unwrap_or_default()
            .split(',')
            .filter_map(|x| x.parse().ok())
            .collect();
        (grid, values)
    }

    /// Whether a viewer button is disabled.
    pub async fn disabled(&self, testid: &str) -> bool {
        js(
            self.c(),
            &format!("return document.querySelector('[data-testid=viewer] [data-testid={testid}]').disabled"),
        )
        .await
            == json!(true)
    }

    /// What has the keyboard focus: `(tag name, data-testid, inside the viewer, its row id)`.
    pub async fn focus(&self) -> Value {
        js(
            self.c(),
            "const a = document.activeElement; const r = a.closest('[data-row]'); return [a.tagName, a.dataset.testid || null, !!a.closest('[data-testid=viewer]'), r ? r.dataset.file : null]",
        )
        .await
    }
}

/// What a person sets before a run; `None` leaves the panel's default.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// `head`, `last-stage` or `whole`.
    pub mode: Option<&'static str>,
    /// Epochs.
    pub epochs: Option<u32>,
    /// Batch size.
    pub batch: Option<u32>,
    /// Images per class.
    pub per_class: Option<u32>,
}

/// The training status, as the panel shows it.
#[derive(Debug, Clone, Deserialize)]
pub struct Status {
    /// `idle`, `loading`, `running`, `paused`, `done` or `error`.
    pub state: String,
    /// Epochs done.
    pub epoch: u64,
    /// Steps done.
    pub step: u64,
    /// Last loss, as printed.
    pub loss: Option<String>,
    /// Last validation accuracy, as printed.
    pub acc: Option<String>,
    /// Images per second.
    pub ips: f64,
    /// The backend the worker trains on.
    pub backend: Option<String>,
    /// The status line's words.
    pub text: String,
}

/// One of the before / after evaluations.
#[derive(Debug, Clone, Deserialize)]
pub struct Evaluation {
    /// Images evaluated.
    pub n: u64,
    /// AUC.
    pub auc: f64,
    /// Cells of the confusion table.
    pub cells: u64,
}

/// One image of the validation grid.
#[derive(Debug, Clone, Deserialize)]
pub struct GridItem {
    /// True label.
    pub truth: String,
    /// Predicted label.
    pub predicted: String,
    /// Whether it is marked wrong.
    pub wrong: bool,
}

const STATUS: &str = "const e = document.querySelector('[data-testid=train-status]'); const s = e.dataset; return {state: s.state, epoch: +s.epoch, step: +s.step, loss: s.loss || null, acc: s.valAccuracy || null, ips: +s.imagesPerSec, backend: s.backend || null, text: e.textContent}";

/// The demo fine-tuning panel of a [`Page`].
pub struct Training<'a>(&'a Page);

impl Training<'_> {
    async fn set(&self, testid: &str, value: &str) {
        self.0
            .c
            .execute(
                "const el = document.querySelector(`[data-testid=${arguments[0]}]`); el.value = arguments[1]; el.dispatchEvent(new Event('change', {bubbles: true}));",
                vec![json!(testid), json!(value)],
            )
            .await
            .unwrap();
    }

    async fn click(&self, testid: &str) {
        self.0
            .c
            .find(Locator::Css(&format!("[data-testid={testid}]")))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    /// Sets what `settings` names, as a person would (each input fires `change`).
    pub async fn configure(&self, settings: &Settings) {
        if let Some(mode) = settings.mode {
            self.set("train-mode", mode).await;
        }
        for (testid, value) in [
            ("train-epochs", settings.epochs),
            ("train-batch", settings.batch),
            ("train-per-class", settings.per_class),
        ] {
            if let Some(v) = value {
                self.set(testid, &v.to_string()).await;
            }
        }
    }

    /// Starts a run.
    pub async fn start(&self) {
        self.click("train-start").await;
    }

    /// Pauses a running run, or resumes a paused one.
    pub async fn pause_or_resume(&self) {
        self.click("train-pause").await;
    }

    /// Stops the run.
    pub async fn stop(&self) {
        self.click("train-stop").await;
    }

    /// The status now.
    pub async fn status(&self) -> Status {
        serde_json::from_value(js(&self.0.c, STATUS).await).unwrap()
    }

    /// Waits until the state is one of `states` and returns the status; fails on `error`
    /// unless `error` is one of `states`.
    pub async fn wait_for_state(&self, states: &[&str], secs: u64) -> Status {
        let list = serde_json::to_string(states).unwrap();
        wait_for(
            &self.0.c,
            &format!("const s = document.querySelector('[data-testid=train-status]'); return {list}.includes(s.dataset.state) && s.dataset.state"),
            secs,
            &format!("training state in {list}"),
        )
        .await;
        let status = self.status().await;
        assert!(
            status.state != "error" || states.contains(&"error"),
            "training failed: {}",
            status.text
        );
        status
    }

    /// Waits until a run is past step `step`.
    pub async fn wait_past_step(&self, step: u64, secs: u64) {
        wait_for(
            &self.0.c,
            &format!("const s = document.querySelector('[data-testid=train-status]').dataset; return (s.state === 'running' || s.state === 'done') && +s.step > {step}"),
            secs,
            &format!("a step past {step}"),
        )
        .await;
    }

    /// Configures, starts and waits for the run to end (`done` or `error`).
    pub async fn run(&self, settings: &Settings, secs: u64) -> Status {
        self.configure(settings).await;
        self.start().await;
        self.wait_for_state(&["done", "error"], secs).await
    }

    /// (points, polylines) of the training curves.
    pub async fn curves(&self) -> (u64, u64) {
        let v = js(&self.0.c, "const e = document.querySelector('[data-testid=train-curves]'); return e ? [+e.dataset.points, e.querySelectorAll('polyline').length] : [0, 0]").await;
        (v[0].as_u64().unwrap_or(0), v[1].as_u64().unwrap_or(0))
    }

    /// The validation grid: the step it shows and its images.
    pub async fn grid(&self) -> (String, Vec<GridItem>) {
        let v = js(&self.0.c, "const g = document.querySelector('[data-testid=val-grid]'); return [g.dataset.step, [...g.querySelectorAll('[data-testid=val-sample]')].map(e => ({truth: e.dataset.truth, predicted: e.dataset.predicted, wrong: e.dataset.wrong === 'true'}))]").await;
        (
            v[0].as_str().unwrap_or_default().to_string(),
            serde_json::from_value(v[1].clone()).unwrap(),
        )
    }

    /// The evaluations before and after the run.
    pub async fn evaluations(&self) -> Vec<Option<Evaluation>> {
        serde_json::from_value(js(&self.0.c, "return ['eval-before', 'eval-after'].map(t => { const e = document.querySelector(`[data-testid=${t}]`); return e && {n: +e.dataset.n, auc: +e.dataset.auc, cells: e.querySelectorAll('table.confusion td').length} })").await).unwrap()
    }

    /// Whether a fine-tuned model is in use.
    pub async fn tuned_loaded(&self) -> bool {
        js(
            &self.0.c,
            "return document.querySelector('[data-testid=tuned-info]').dataset.loaded",
        )
        .await
            == "true"
    }

    /// What the page says about the fine-tuned model.
    pub async fn tuned_info(&self) -> String {
        js(
            &self.0.c,
            "return document.querySelector('[data-testid=tuned-info]').textContent",
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// Asks for the tuned weights and returns the downloaded file's bytes.
    pub async fn download_weights(&self) -> Vec<u8> {
        self.click("train-download").await;
        wait_for(
            &self.0.c,
            "return !!document.querySelector('[data-testid=weights-link]')",
            120,
            "the weights link",
        )
        .await;
        let b64 = self.0.c
            .execute_async(
                "const done = arguments[arguments.length - 1]; fetch(document.querySelector('[data-testid=weights-link]').href).then(r => r.arrayBuffer()).then(b => { const u = new Uint8Array(b); let s = ''; for (let i = 0; i < u.length; i += 8192) s += String.fromCharCode.apply(null, u.subarray(i, i + 8192)); done(btoa(s)); }).catch(e => done('ERROR ' + e));",
                vec![],
            )
            .await
            .unwrap();
        let b64 = b64.as_str().unwrap();
        assert!(!b64.starts_with("ERROR"), "{b64}");
        base64(b64)
    }

    async fn choose_weights(&self, file: &Path) {
        self.0
            .c
            .find(Locator::Css("[data-testid=weights-upload]"))
            .await
            .unwrap()
            .send_keys(&file.display().to_string())
            .await
            .unwrap();
    }

    /// Loads weights from a file, as the "Load weights" input does, and waits until they are
    /// in use; fails with the page's message if they are refused.
    pub async fn load_weights(&self, file: &Path) {
        self.choose_weights(file).await;
        let error = wait_for(
            &self.0.c,
            "const e = document.querySelector('[data-testid=weights-error]'); return (e && e.textContent) || (document.querySelector('[data-testid=tuned-info]').dataset.loaded === 'true' && 'loaded')",
            120,
            "the weights to load",
        )
        .await;
        assert_eq!(error, "loaded", "the weights were refused");
    }

    /// Chooses a file that is not weights and returns the message the page shows for it.
    pub async fn refused_weights(&self, file: &Path) -> String {
        self.choose_weights(file).await;
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let v = wait_for(
            &self.0.c,
            &format!("const e = document.querySelector('[data-testid=weights-error]'); return e && e.textContent.includes({name:?}) && e.textContent"),
            60,
            "the weights error",
        )
        .await;
        v.as_str().unwrap_or_default().to_string()
    }
}

/// Decodes standard base64.
fn base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let clean: Vec<u8> = text.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let v: Vec<u32> = chunk.iter().map(|&c| u32::from(value(c))).collect();
        let n = v.iter().fold(0u32, |acc, &x| (acc << 6) | x) << (6 * (4 - v.len()));
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..v.len() - 1]);
    }
    out
}
