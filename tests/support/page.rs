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
