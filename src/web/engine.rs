//! The browser side of inference: fetching the model with progress, choosing WebGPU or the CPU,
//! and classifying files. Everything here is async and never reads a tensor synchronously.

use std::{cell::RefCell, rc::Rc};

use burn::prelude::*;
use burn::tensor::wgpu::WgpuBackend;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use crate::ml::{card::ModelCard, classifier::Classifier};

/// Where the model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Burn on WebGPU.
    WebGpu,
    /// Burn's flex CPU backend in wasm.
    Cpu,
}

impl Backend {
    /// The name used in the URL and the test contract.
    pub fn id(self) -> &'static str {
        match self {
            Backend::WebGpu => "webgpu",
            Backend::Cpu => "cpu",
        }
    }

    /// Human label.
    pub fn label(self) -> &'static str {
        match self {
            Backend::WebGpu => "WebGPU (GPU)",
            Backend::Cpu => "CPU (wasm)",
        }
    }

    /// Parses `webgpu` or `cpu`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "webgpu" | "gpu" => Some(Backend::WebGpu),
            "cpu" => Some(Backend::Cpu),
            _ => None,
        }
    }
}

#[derive(Default)]
struct State {
    card: Option<ModelCard>,
    weights: Option<Rc<Vec<u8>>>,
    webgpu: Option<Result<Device, String>>,
    models: Vec<(Backend, Rc<Classifier>)>,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

fn js_err(e: JsValue) -> String {
    e.as_string()
        .or_else(|| {
            e.dyn_ref::<js_sys::Error>()
                .map(|e| String::from(e.message()))
        })
        .unwrap_or_else(|| format!("{e:?}"))
}

/// Resolves `path` against the page's own URL, so the app works under any sub-path.
pub fn asset_url(path: &str) -> String {
    let base = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.base_uri().ok().flatten())
        .unwrap_or_default();
    web_sys::Url::new_with_base(path, &base)
        .map(|u| u.href())
        .unwrap_or_else(|_| path.to_string())
}

/// Fetches `url`, reporting (bytes loaded, total if known) as chunks arrive.
pub async fn fetch_bytes(
    url: &str,
    on_progress: impl Fn(f64, Option<f64>),
) -> Result<Vec<u8>, String> {
    let window = web_sys::window().ok_or("no window")?;
    let resp: web_sys::Response = JsFuture::from(window.fetch_with_str(url))
        .await
        .map_err(|e| format!("{url}: {}", js_err(e)))?
        .dyn_into()
        .map_err(js_err)?;
    if !resp.ok() {
        return Err(format!("{url}: HTTP {}", resp.status()));
    }
    let total = resp
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|s| s.parse::<f64>().ok());
    let Some(body) = resp.body() else {
        let buf = JsFuture::from(resp.array_buffer().map_err(js_err)?)
            .await
            .map_err(js_err)?;
        return Ok(js_sys::Uint8Array::new(&buf).to_vec());
    };
    let reader: web_sys::ReadableStreamDefaultReader = body.get_reader().unchecked_into();
    let mut out = Vec::with_capacity(total.unwrap_or(0.0) as usize);
    loop {
        let chunk = JsFuture::from(reader.read()).await.map_err(js_err)?;
        let done = js_sys::Reflect::get(&chunk, &"done".into()).map_err(js_err)?;
        if done.as_bool().unwrap_or(true) {
            break;
        }
        let value = js_sys::Reflect::get(&chunk, &"value".into()).map_err(js_err)?;
        out.extend(js_sys::Uint8Array::new(&value).to_vec());
        on_progress(out.len() as f64, total);
    }
    on_progress(out.len() as f64, Some(out.len() as f64));
    Ok(out)
}

/// Loads the model card and weights (once).
pub async fn load_model(on_progress: impl Fn(f64, Option<f64>)) -> Result<ModelCard, String> {
    if let Some(card) = STATE.with_borrow(|s| s.card.clone()) {
        return Ok(card);
    }
    let card_bytes = fetch_bytes(&asset_url("public/model/card.json"), |_, _| {}).await?;
    let card: ModelCard =
        serde_json::from_slice(&card_bytes).map_err(|e| format!("model card: {e}"))?;
    let weights = fetch_bytes(
        &asset_url(&format!("public/model/{}", card.weights)),
        on_progress,
    )
    .await?;
    STATE.with_borrow_mut(|s| {
        s.card = Some(card.clone());
        s.weights = Some(Rc::new(weights));
    });
    Ok(card)
}

/// Whether the browser exposes `navigator.gpu` at all (in the page or in a worker).
pub fn has_navigator_gpu() -> bool {
    js_sys::Reflect::get(&js_sys::global(), &"navigator".into())
        .and_then(|n| js_sys::Reflect::get(&n, &"gpu".into()))
        .is_ok_and(|g| !g.is_undefined() && !g.is_null())
}

/// The WebGPU device, initialised once; an error when the browser offers no adapter.
pub async fn webgpu_device() -> Result<Device, String> {
    crate::run_constructors();
    if let Some(result) = STATE.with_borrow(|s| s.webgpu.clone()) {
        return result;
    }
    let result = if has_navigator_gpu() {
        Device::wgpu_options()
            .graphics_api(WgpuBackend::WebGpu)
            .init_async()
            .await
            .map_err(|e| format!("WebGPU is not available: {e}"))
    } else {
        Err("this browser does not offer WebGPU".to_string())
    };
    STATE.with_borrow_mut(|s| s.webgpu = Some(result.clone()));
    result
}

/// The classifier on `backend`, built (and warmed up) on first use.
pub async fn classifier(backend: Backend) -> Result<Rc<Classifier>, String> {
    if let Some(c) = STATE.with_borrow(|s| {
        s.models
            .iter()
            .find(|(b, _)| *b == backend)
            .map(|(_, c)| c.clone())
    }) {
        return Ok(c);
    }
    let (card, weights) = STATE
        .with_borrow(|s| s.card.clone().zip(s.weights.clone()))
        .ok_or("the model is not loaded yet")?;
    let device = match backend {
        Backend::WebGpu => webgpu_device().await?,
        Backend::Cpu => Device::flex(),
    };
    let size = card.model.input_size;
    let classifier =
        Classifier::load(card, weights.as_ref().clone(), device).map_err(|e| e.to_string())?;
    // One pass compiles the GPU pipelines so that the first real image is timed fairly.
    classifier
        .classify_async(&[vec![0.0; size * size]])
        .await
        .map_err(|e| e.to_string())?;
    let classifier = Rc::new(classifier);
    STATE.with_borrow_mut(|s| s.models.push((backend, classifier.clone())));
    Ok(classifier)
}

#[wasm_bindgen::prelude::wasm_bindgen]
extern "C" {
    // The global functions, so that the same code runs in the page and in a worker.
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(handler: &js_sys::Function, ms: i32) -> JsValue;
    #[wasm_bindgen(js_namespace = performance, js_name = now)]
    fn performance_now() -> f64;
}

/// Milliseconds since the page (or worker) started.
pub fn now_ms() -> f64 {
    performance_now()
}

/// Lets the browser paint and handle input (or a worker its messages) before the next piece
/// of work.
pub async fn yield_now() {
    sleep_ms(0).await;
}

/// Reads a `File` into memory.
pub async fn file_bytes(file: &web_sys::File) -> Result<Vec<u8>, String> {
    let buf = JsFuture::from(file.array_buffer()).await.map_err(js_err)?;
    Ok(js_sys::Uint8Array::new(&buf).to_vec())
}

/// The shipped weights, once loaded.
pub fn shipped_weights() -> Option<Rc<Vec<u8>>> {
    STATE.with_borrow(|s| s.weights.clone())
}

/// The device for `backend` (WebGPU initialised once).
pub async fn device(backend: Backend) -> Result<Device, String> {
    match backend {
        Backend::WebGpu => webgpu_device().await,
        Backend::Cpu => Ok(Device::flex()),
    }
}

/// Waits `ms` milliseconds without blocking the page.
pub async fn sleep_ms(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        set_timeout(&resolve, ms);
    });
    let _ = JsFuture::from(promise).await;
}

/// Size of the wasm linear memory in MB (it only grows; a flat value means no leak).
pub fn wasm_memory_mb() -> f64 {
    wasm_bindgen::memory()
        .dyn_into::<js_sys::WebAssembly::Memory>()
        .ok()
        .and_then(|m| m.buffer().dyn_into::<js_sys::ArrayBuffer>().ok())
        .map_or(0.0, |b| f64::from(b.byte_length()) / 1e6)
}

/// An object URL for `bytes` (revoke it when done).
pub fn blob_url(bytes: &[u8], mime: &str) -> Option<String> {
    let array = js_sys::Uint8Array::from(bytes);
    let parts = js_sys::Array::of1(&array);
    let opts = web_sys::BlobPropertyBag::new();
    opts.set_type(mime);
    let blob = web_sys::Blob::new_with_u8_array_sequence_and_options(&parts, &opts).ok()?;
    web_sys::Url::create_object_url_with_blob(&blob).ok()
}

/// The path of a file inside a chosen folder (`webkitRelativePath`), or its name.
pub fn relative_path(file: &web_sys::File) -> String {
    js_sys::Reflect::get(file, &"webkitRelativePath".into())
        .ok()
        .and_then(|v| v.as_string())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| file.name())
}

/// The message of a JavaScript error value.
pub fn error_text(e: JsValue) -> String {
    js_err(e)
}
