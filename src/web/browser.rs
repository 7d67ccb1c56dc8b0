//! The few browser services the app uses, the same in the page and in its workers:
//! the site's own files (fetched with progress), the visitor's files, object URLs and downloads,
//! timers, the clock and memory. Files, blobs, object URLs and timers are gloo's.

use gloo_file::{Blob, ObjectUrl};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use super::error::WebError;

/// The message of a JavaScript error value.
pub fn error_text(e: JsValue) -> String {
    e.as_string()
        .or_else(|| {
            e.dyn_ref::<js_sys::Error>()
                .map(|e| String::from(e.message()))
        })
        .unwrap_or_else(|| "an unknown browser error".to_string())
}

/// The message of a worker's `error` event: an `ErrorEvent`'s, or empty for the plain `Event`
/// a script that did not load gives.
pub fn event_message(event: &web_sys::Event) -> String {
    js_sys::Reflect::get(event, &"message".into())
        .ok()
        .and_then(|m| m.as_string())
        .unwrap_or_default()
}

/// The name this build of the app's module has on the site (`NAME.js`, `NAME_bg.wasm`): the
/// page's with relaxed SIMD (`xray-web-fma`, the `relaxed-simd` feature) or without
/// (`xray-web`), or the WebGPU workers' (`xray-web-gpu`, the `webgpu` feature). A worker the
/// page starts on the CPU loads the page's own.
pub const MODULE: &str = if cfg!(feature = "webgpu") {
    GPU_MODULE
} else if cfg!(feature = "relaxed-simd") {
    "xray-web-fma"
} else {
    "xray-web"
};

/// The WebGPU workers' module (see [`MODULE`]).
pub const GPU_MODULE: &str = "xray-web-gpu";

fn browser_error(e: JsValue) -> WebError {
    WebError::Browser(error_text(e))
}

/// The page's URL parameter `key` (`?key=value`), if it has one (never in a worker).
pub fn page_param(key: &str) -> Option<String> {
    let search = web_sys::window()?.location().search().ok()?;
    web_sys::UrlSearchParams::new_with_str(&search)
        .ok()?
        .get(key)
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

/// Fetches `url` (one of the site's own files), reporting (bytes loaded, total if known) as
/// chunks arrive.
pub async fn fetch_bytes(
    url: &str,
    on_progress: impl Fn(f64, Option<f64>),
) -> Result<Vec<u8>, WebError> {
    let fetch_error = |e: JsValue| WebError::Fetch {
        url: url.to_string(),
        detail: error_text(e),
    };
    let resp: web_sys::Response = JsFuture::from(fetch_promise(url)?)
        .await
        .map_err(fetch_error)?
        .dyn_into()
        .map_err(fetch_error)?;
    if !resp.ok() {
        return Err(WebError::Http {
            url: url.to_string(),
            status: resp.status(),
        });
    }
    let total = resp
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|s| s.parse::<f64>().ok());
    let Some(body) = resp.body() else {
        let buf = JsFuture::from(resp.array_buffer().map_err(fetch_error)?)
            .await
            .map_err(fetch_error)?;
        return Ok(js_sys::Uint8Array::new(&buf).to_vec());
    };
    let reader: web_sys::ReadableStreamDefaultReader = body.get_reader().unchecked_into();
    let mut out = Vec::with_capacity(total.unwrap_or(0.0) as usize);
    loop {
        let chunk = JsFuture::from(reader.read()).await.map_err(fetch_error)?;
        let done = js_sys::Reflect::get(&chunk, &"done".into()).map_err(fetch_error)?;
        if done.as_bool().unwrap_or(true) {
            break;
        }
        let value = js_sys::Reflect::get(&chunk, &"value".into()).map_err(fetch_error)?;
        out.extend(js_sys::Uint8Array::new(&value).to_vec());
        on_progress(out.len() as f64, total);
    }
    on_progress(out.len() as f64, Some(out.len() as f64));
    Ok(out)
}

/// `fetch(url)` of the page's window or of the worker this runs in.
fn fetch_promise(url: &str) -> Result<js_sys::Promise, WebError> {
    if let Some(window) = web_sys::window() {
        return Ok(window.fetch_with_str(url));
    }
    js_sys::global()
        .dyn_into::<web_sys::WorkerGlobalScope>()
        .map(|scope| scope.fetch_with_str(url))
        .map_err(|_| WebError::Browser("neither a page nor a worker".into()))
}

/// Reads a file the visitor chose into memory.
pub async fn read_file(file: &web_sys::File) -> Result<Vec<u8>, WebError> {
    gloo_file::futures::read_as_bytes(&Blob::from(file.clone()))
        .await
        .map_err(|e| WebError::FileRead(e.to_string()))
}

/// An object URL for a file the visitor chose (revoked when the last clone is dropped).
pub fn file_url(file: &web_sys::File) -> ObjectUrl {
    ObjectUrl::from(Blob::from(file.clone()))
}

/// An object URL for `bytes` (revoked when the last clone is dropped).
pub fn bytes_url(bytes: &[u8], mime: &str) -> ObjectUrl {
    ObjectUrl::from(Blob::new_with_options(bytes, Some(mime)))
}

/// Asks the browser to save `url` as `name`.
pub fn download_url(url: &str, name: &str) -> Result<(), WebError> {
    let doc = web_sys::window()
        .and_then(|w| w.document())
        .ok_or_else(|| WebError::Browser("no document".into()))?;
    let a: web_sys::HtmlAnchorElement = doc
        .create_element("a")
        .map_err(browser_error)?
        .dyn_into()
        .map_err(|_| WebError::Browser("could not make a link".into()))?;
    a.set_href(url);
    a.set_download(name);
    a.click();
    Ok(())
}

/// Asks the browser to save `text` as `name`.
pub fn download_text(name: &str, text: &str, mime: &str) -> Result<(), WebError> {
    let url = ObjectUrl::from(Blob::new_with_options(text, Some(mime)));
    // The click starts the download synchronously; the URL may go when this returns.
    download_url(&url, name)
}

/// Whether the browser exposes `navigator.gpu` at all (in the page or in a worker).
pub fn has_navigator_gpu() -> bool {
    js_sys::Reflect::get(&js_sys::global(), &"navigator".into())
        .and_then(|n| js_sys::Reflect::get(&n, &"gpu".into()))
        .is_ok_and(|g| !g.is_undefined() && !g.is_null())
}

#[wasm_bindgen::prelude::wasm_bindgen]
extern "C" {
    // The global function, so that the same code runs in the page and in a worker.
    #[wasm_bindgen(js_namespace = performance, js_name = now)]
    fn performance_now() -> f64;
    #[wasm_bindgen(js_namespace = performance, js_name = mark, catch)]
    fn performance_mark(name: &str) -> Result<JsValue, JsValue>;
}

/// Records a step of the page's start in the browser's User Timing timeline (`xray:` and
/// `name`), where `cargo bench --bench browser` and the browser's profiler read it.
pub fn mark(name: &str) {
    let _ = performance_mark(&format!("xray:{name}"));
}

/// Milliseconds since the page (or worker) started.
pub fn now_ms() -> f64 {
    performance_now()
}

/// Lets the browser paint and handle input (or a worker its messages) before the next piece
/// of work: a message to itself on a `MessageChannel`, which goes behind the tasks already
/// waiting without the 4 ms a chain of zero timeouts is held to (a timeout where there is no
/// channel).
pub async fn yield_now() {
    let Ok(channel) = web_sys::MessageChannel::new() else {
        return gloo_timers::future::TimeoutFuture::new(0).await;
    };
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        channel.port1().set_onmessage(Some(&resolve));
    });
    if channel.port2().post_message(&JsValue::NULL).is_err() {
        return gloo_timers::future::TimeoutFuture::new(0).await;
    }
    let _ = JsFuture::from(promise).await;
    channel.port1().set_onmessage(None);
}

/// Waits `ms` milliseconds without blocking the page.
pub async fn sleep_ms(ms: u32) {
    gloo_timers::future::TimeoutFuture::new(ms).await;
}

/// Size of the wasm linear memory in MB (it only grows; a flat value means no leak).
pub fn wasm_memory_mb() -> f64 {
    wasm_bindgen::memory()
        .dyn_into::<js_sys::WebAssembly::Memory>()
        .ok()
        .and_then(|m| m.buffer().dyn_into::<js_sys::ArrayBuffer>().ok())
        .map_or(0.0, |b| f64::from(b.byte_length()) / 1e6)
}

/// The path of a file inside a chosen folder (`webkitRelativePath`), or its name.
pub fn relative_path(file: &web_sys::File) -> String {
    js_sys::Reflect::get(file, &"webkitRelativePath".into())
        .ok()
        .and_then(|v| v.as_string())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| file.name())
}

/// The files of a file input or a drop.
pub fn files_of(list: Option<web_sys::FileList>) -> Vec<web_sys::File> {
    list.map(|l| {
        gloo_file::FileList::from(l)
            .iter()
            .map(|f| AsRef::<web_sys::File>::as_ref(f).clone())
            .collect()
    })
    .unwrap_or_default()
}

/// Tells the inference worker's failure drill (`public/infer-worker.js`,
/// `?lose-gpu-at-image=N`) that an image was classified on WebGPU; nothing happens without the
/// drill.
pub fn drill_image_on_gpu() {
    let global = js_sys::global();
    if let Ok(f) = js_sys::Reflect::get(&global, &"xrayDrillImageOnGpu".into())
        && let Ok(f) = f.dyn_into::<js_sys::Function>()
    {
        let _ = f.call0(&global);
    }
}

/// Moves the keyboard focus to the first element matching `selector`, if there is one.
pub fn focus(selector: &str) {
    use wasm_bindgen::JsCast;
    if let Some(el) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.query_selector(selector).ok().flatten())
        .and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok())
    {
        let _ = el.focus();
    }
}
