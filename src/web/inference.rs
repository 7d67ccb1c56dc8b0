//! The page's side of inference: the shipped model (card and weights, fetched once) and the
//! inference worker ([`super::infer_worker`]) that classifies with it. Requests are awaited
//! like any async call; each one's answer is matched to it by its id. A worker that dies (its
//! runtime panicked) fails the requests it held, and the next request starts another, loaded
//! with the same model on the same backend. Where no worker can start at all (its script
//! blocked or missing), the same [`Core`] answers in the page, and [`Inference::where_`] says
//! so.

use std::{cell::RefCell, collections::HashMap, rc::Rc};

use wasm_bindgen::{JsCast, JsValue, prelude::Closure};
use wasm_bindgen_futures::JsFuture;

use super::{
    Source,
    backend::Backend,
    browser,
    error::WebError,
    infer_worker::{Answer, Core},
    protocol::{Classified, FromInference, ToInference, decode, encode, gray_from_bytes},
};
use crate::ml::card::ModelCard;

/// The id the worker's [`FromInference::Ready`] is awaited under (requests count from 1).
const READY: u64 = 0;

/// Where a model runs, as the worker loaded it.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The backend in use.
    pub backend: Backend,
    /// Why that is not the backend asked for, if it is not.
    pub fallback: Option<String>,
}

/// The worker's answer to a file.
#[derive(Debug)]
pub enum Reply {
    /// Classified, with its parts (see [`Classified`]): the row's thumbnail and the heatmap's
    /// (PNG, empty when none), and the model input.
    Classified(Box<Classified>, Pictures),
    /// The file was refused (unreadable, not an image the model takes): why, in words.
    Refused(String),
    /// The model failed on it or is not available: why, in words.
    Failed(String),
}

/// What comes with a [`Reply::Classified`].
#[derive(Debug)]
pub struct Pictures {
    /// The row's thumbnail (PNG), if one could be made.
    pub thumb: Option<Vec<u8>>,
    /// The same with the heatmap over it (PNG).
    pub heat_thumb: Option<Vec<u8>>,
    /// The model input, for the fine-tuned model.
    pub input: Vec<f32>,
}

/// A file decoded for the viewer.
pub struct Decoded {
    /// 16-bit gray, row-major, `width · height` values.
    pub gray: Vec<u16>,
    /// Width kept.
    pub width: u32,
    /// Height kept.
    pub height: u32,
    /// The file's own size.
    pub original: (u32, u32),
}

/// Resolvers of the requests a worker holds, by id.
type Pending = Rc<RefCell<HashMap<u64, (js_sys::Function, js_sys::Function)>>>;

/// A running worker and its handlers.
struct Connection {
    worker: web_sys::Worker,
    /// Whether it runs the WebGPU module (`xray-web-gpu`) rather than the page's, which has
    /// no WebGPU.
    webgpu: bool,
    pending: Pending,
    /// Why it died, once it has.
    dead: Rc<RefCell<Option<String>>>,
    _on_message: Closure<dyn FnMut(web_sys::MessageEvent)>,
    _on_error: Closure<dyn FnMut(web_sys::Event)>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.worker.terminate();
    }
}

/// Where the requests are answered.
#[derive(Clone)]
enum Transport {
    /// The inference worker.
    Worker(Rc<Connection>),
    /// The page itself: no worker could start.
    InPage(Rc<Core>),
}

/// Where inference runs, for the page to say.
#[derive(Debug, Clone, PartialEq)]
pub enum Where {
    /// In the inference worker.
    Worker,
    /// In the page, because no worker could start (why).
    InPage(String),
}

#[derive(Default)]
struct Inner {
    card: Option<ModelCard>,
    weights: Option<Rc<Vec<u8>>>,
    /// The backend the worker is to use (a new worker is loaded on it).
    backend: Backend,
    transport: Option<Transport>,
    /// Why no worker could start, once that has happened: from then on the page answers.
    in_page: Option<String>,
    /// Whether a worker has started (one that dies later is started again, not replaced by
    /// the page).
    started: bool,
    /// Whether a move to WebGPU in the background ([`Inference::upgrade_to_webgpu`]) may still
    /// take over (a backend chosen since then cancels it).
    upgrade: bool,
    next_id: u64,
}

/// The shipped model and the worker that runs it: a cheap handle, cloned into whoever needs it
/// (the page keeps one in its [`AppState`](super::AppState)).
#[derive(Clone, Default)]
pub struct Inference {
    inner: Rc<RefCell<Inner>>,
}

impl Inference {
    /// Nothing loaded yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Loads the model card and weights (once), reporting the weights' download.
    pub async fn load_shipped(
        &self,
        on_progress: impl Fn(f64, Option<f64>),
    ) -> Result<ModelCard, WebError> {
        if let Some(card) = self.inner.borrow().card.clone() {
            return Ok(card);
        }
        let card_url = browser::asset_url("public/model/card.json");
        let card_bytes = browser::fetch_bytes(&card_url, |_, _| {}).await?;
        browser::mark("card");
        let card = ModelCard::from_json(&card_bytes).map_err(|e| WebError::Json {
            what: "the model card".into(),
            detail: e.to_string(),
        })?;
        let weights = browser::fetch_bytes(
            &browser::asset_url(&format!("public/model/{}", card.weights)),
            on_progress,
        )
        .await?;
        browser::mark("weights");
        let mut inner = self.inner.borrow_mut();
        inner.card = Some(card.clone());
        inner.weights = Some(Rc::new(weights));
        Ok(card)
    }

    /// The shipped weights, once loaded.
    pub fn shipped_weights(&self) -> Option<Rc<Vec<u8>>> {
        self.inner.borrow().weights.clone()
    }

    /// Loads the model on `backend` in the worker (starting it if needed) and warms it up. A
    /// worker running the page's module is replaced by one running the WebGPU module when
    /// `backend` is WebGPU.
    pub async fn activate(&self, backend: Backend) -> Result<Loaded, WebError> {
        {
            let mut inner = self.inner.borrow_mut();
            inner.backend = backend;
            inner.upgrade = false;
            if backend == Backend::WebGpu
                && let Some(Transport::Worker(c)) = &inner.transport
                && !c.webgpu
            {
                inner.transport = None;
            }
        }
        match self.live() {
            Some(transport) => self.load(&transport, backend).await,
            None => self.connect().await?.1.ok_or(WebError::ModelNotLoaded),
        }
    }

    /// Where the requests are answered (the worker until one could not start).
    pub fn where_(&self) -> Where {
        match &self.inner.borrow().in_page {
            Some(why) => Where::InPage(why.clone()),
            None => Where::Worker,
        }
    }

    /// Classifies a file in the worker.
    pub async fn classify(&self, source: &Source) -> Result<Reply, WebError> {
        let transport = self.transport().await?;
        let id = self.next_id();
        let (url, file) = parts_of(source);
        let (answer, parts) = request(
            &transport,
            ToInference::Classify { id, url },
            Vec::new(),
            file,
        )
        .await?;
        match answer {
            FromInference::Classified { result, .. } => {
                let [thumb, heat_thumb, input]: [Vec<u8>; 3] = parts.try_into().map_err(|_| {
                    WebError::Protocol("a classified file without its pictures".into())
                })?;
                let pixels = self
                    .inner
                    .borrow()
                    .card
                    .as_ref()
                    .map_or(0, |c| c.model.input_size.pow(2));
                let input = super::protocol::images_from_bytes(&input, pixels)?
                    .into_iter()
                    .next()
                    .unwrap_or_default();
                // Where it ran is where the next worker starts (the CPU after a lost GPU).
                self.inner.borrow_mut().backend = result.backend;
                let some = |png: Vec<u8>| (!png.is_empty()).then_some(png);
                Ok(Reply::Classified(
                    result,
                    Pictures {
                        thumb: some(thumb),
                        heat_thumb: some(heat_thumb),
                        input,
                    },
                ))
            }
            FromInference::Refused { message, .. } => Ok(Reply::Refused(message)),
            FromInference::Failed { message, .. } => Ok(Reply::Failed(message)),
            other => Err(unexpected(&other)),
        }
    }

    /// Decodes a file in the worker for the viewer, downscaled to at most `max_side` pixels
    /// a side; `Err` says why it could not be, in words.
    pub async fn decode(&self, source: &Source, max_side: u32) -> Result<Decoded, String> {
        let transport = self.transport().await.map_err(|e| e.to_string())?;
        let id = self.next_id();
        let (url, file) = parts_of(source);
        let (answer, parts) = request(
            &transport,
            ToInference::Decode { id, url, max_side },
            Vec::new(),
            file,
        )
        .await
        .map_err(|e| e.to_string())?;
        match answer {
            FromInference::Decoded {
                width,
                height,
                original,
                ..
            } => {
                let bytes = parts.into_iter().next().unwrap_or_default();
                let gray = gray_from_bytes(&bytes, width, height).map_err(|e| e.to_string())?;
                Ok(Decoded {
                    gray,
                    width,
                    height,
                    original,
                })
            }
            FromInference::Refused { message, .. } | FromInference::Failed { message, .. } => {
                Err(message)
            }
            other => Err(unexpected(&other).to_string()),
        }
    }

    fn next_id(&self) -> u64 {
        let mut inner = self.inner.borrow_mut();
        inner.next_id += 1;
        inner.next_id
    }

    /// The worker, if it is running (or the page, once no worker could start).
    fn live(&self) -> Option<Transport> {
        let mut inner = self.inner.borrow_mut();
        if let Some(Transport::Worker(c)) = &inner.transport
            && c.dead.borrow().is_some()
        {
            inner.transport = None;
        }
        inner.transport.clone()
    }

    /// The running worker, or a new one loaded with the model.
    async fn transport(&self) -> Result<Transport, WebError> {
        match self.live() {
            Some(t) => Ok(t),
            None => self.connect().await.map(|(t, _)| t),
        }
    }

    /// Starts the worker for `backend` (or, where none can start, readies the page to answer),
    /// before the model is there: the page calls it while the weights download.
    pub async fn start(&self, backend: Backend) {
        self.inner.borrow_mut().backend = backend;
        if self.live().is_none()
            && let Err(e) = self.open().await
        {
            web_sys::console::warn_1(&format!("the inference worker: {e}").into());
        }
    }

    /// Starts a worker on the module the backend needs ([`Inference::start_worker`]); where no
    /// worker starts, the page answers instead.
    async fn open(&self) -> Result<Transport, WebError> {
        let webgpu = self.inner.borrow().backend == Backend::WebGpu;
        let transport = match self.start_worker(webgpu).await {
            Ok(connection) => {
                self.inner.borrow_mut().started = true;
                Transport::Worker(Rc::new(connection))
            }
            // A worker that started once and died is started again (above); one that cannot
            // start at all leaves the page to do the work.
            Err(e) if !self.inner.borrow().started => {
                web_sys::console::warn_1(&format!("no inference worker: {e}").into());
                self.inner.borrow_mut().in_page = Some(e.to_string());
                Transport::InPage(Rc::new(Core::new()))
            }
            Err(e) => return Err(e),
        };
        self.inner.borrow_mut().transport = Some(transport.clone());
        Ok(transport)
    }

    /// [`Inference::open`], then the model loaded (if the page has it) on the backend asked
    /// for.
    async fn connect(&self) -> Result<(Transport, Option<Loaded>), WebError> {
        let transport = self.open().await?;
        // Decoding for the viewer needs no model; classifying does.
        let (backend, model) = {
            let inner = self.inner.borrow();
            (inner.backend, inner.card.is_some())
        };
        let loaded = match model {
            true => Some(self.load(&transport, backend).await?),
            false => None,
        };
        Ok((transport, loaded))
    }

    /// The worker on the page's module (the CPU), if that is where requests go now: what
    /// [`Inference::upgrade_to_webgpu`] moves from.
    fn cpu_worker(&self) -> Option<Rc<Connection>> {
        match self.live() {
            Some(Transport::Worker(c)) if !c.webgpu => Some(c),
            _ => None,
        }
    }

    /// Whether requests go to a worker on the page's module, which
    /// [`Inference::upgrade_to_webgpu`] can move to WebGPU.
    pub fn on_cpu_worker(&self) -> bool {
        self.cpu_worker().is_some()
    }

    /// On the CPU now (the page's module, ready at once), WebGPU in the background: a second
    /// worker starts on the WebGPU module, loads the model on WebGPU and warms it up, and only
    /// then takes over; the CPU worker finishes what it holds and closes. `Ok(None)` when it
    /// did not take over because there was no CPU worker to move from or a backend was chosen
    /// meanwhile; `Err` when the WebGPU worker could not run on WebGPU. Either way the CPU
    /// worker goes on.
    pub async fn upgrade_to_webgpu(&self) -> Result<Option<Loaded>, WebError> {
        let Some(cpu) = self.cpu_worker() else {
            return Ok(None);
        };
        self.inner.borrow_mut().upgrade = true;
        let gpu = Transport::Worker(Rc::new(self.start_worker(true).await?));
        let loaded = self.load_on(&gpu, Backend::WebGpu).await?;
        if loaded.backend != Backend::WebGpu {
            return Err(WebError::WebGpuUnavailable(
                loaded
                    .fallback
                    .unwrap_or_else(|| "the worker stayed on the CPU".into()),
            ));
        }
        let mut inner = self.inner.borrow_mut();
        let still = matches!(&inner.transport, Some(Transport::Worker(c)) if Rc::ptr_eq(c, &cpu));
        if !inner.upgrade || !still {
            return Ok(None);
        }
        inner.upgrade = false;
        inner.backend = Backend::WebGpu;
        inner.transport = Some(gpu);
        Ok(Some(loaded))
    }

    /// A new worker, once it says it is ready: on the page's module, which the page hands it
    /// compiled, or (`webgpu`) on the WebGPU module, which it loads itself.
    async fn start_worker(&self, webgpu: bool) -> Result<Connection, WebError> {
        let connection = spawn(webgpu)?;
        let listening = waiter(&connection, READY);
        let data = JsFuture::from(listening).await.map_err(stopped)?;
        match decode::<FromInference>(&data)?.0 {
            FromInference::Listening => {}
            other => return Err(unexpected(&other)),
        }
        let ready = waiter(&connection, READY);
        let start = js_sys::Object::new();
        let fields: &[(&str, JsValue)] = match webgpu {
            true => &[("gpu", JsValue::TRUE)],
            false => &[
                ("module", wasm_bindgen::module()),
                ("name", browser::MODULE.into()),
            ],
        };
        for (key, value) in fields {
            js_sys::Reflect::set(&start, &(*key).into(), value)
                .map_err(|e| WebError::Browser(browser::error_text(e)))?;
        }
        connection
            .worker
            .post_message(&start)
            .map_err(|e| WebError::Browser(browser::error_text(e)))?;
        let data = JsFuture::from(ready).await.map_err(stopped)?;
        match decode::<FromInference>(&data)?.0 {
            FromInference::Ready => Ok(connection),
            other => Err(unexpected(&other)),
        }
    }

    async fn load(&self, transport: &Transport, backend: Backend) -> Result<Loaded, WebError> {
        let loaded = self.load_on(transport, backend).await?;
        self.inner.borrow_mut().backend = loaded.backend;
        Ok(loaded)
    }

    /// The model loaded on `backend` in `transport` (which says where it ended up).
    async fn load_on(&self, transport: &Transport, backend: Backend) -> Result<Loaded, WebError> {
        let (card, weights) = {
            let inner = self.inner.borrow();
            inner
                .card
                .clone()
                .zip(inner.weights.clone())
                .ok_or(WebError::ModelNotLoaded)?
        };
        let id = self.next_id();
        let (answer, _) = request(
            transport,
            ToInference::Load {
                id,
                card: Box::new(card),
                backend,
            },
            vec![weights.as_ref().clone()],
            None,
        )
        .await?;
        match answer {
            FromInference::Loaded {
                backend, fallback, ..
            } => Ok(Loaded { backend, fallback }),
            FromInference::Failed { message, .. } | FromInference::Refused { message, .. } => {
                Err(WebError::Model(message))
            }
            other => Err(unexpected(&other)),
        }
    }
}

fn unexpected(answer: &FromInference) -> WebError {
    WebError::Protocol(format!(
        "the inference worker answered out of turn: {answer:?}"
    ))
}

fn stopped(e: JsValue) -> WebError {
    WebError::InferenceWorker(browser::error_text(e))
}

/// A sample's URL, or the visitor's file to send beside the message.
fn parts_of(source: &Source) -> (Option<String>, Option<&web_sys::File>) {
    match source {
        Source::Url(u) => (Some(u.clone()), None),
        Source::File(f) => (None, Some(f)),
    }
}

/// A promise for the answer to request `id`.
fn waiter(connection: &Connection, id: u64) -> js_sys::Promise {
    js_sys::Promise::new(&mut |resolve, reject| {
        connection
            .pending
            .borrow_mut()
            .insert(id, (resolve, reject));
    })
}

/// Sends `msg` (with its parts and file) and waits for its answer.
async fn request(
    transport: &Transport,
    msg: ToInference,
    parts: Vec<Vec<u8>>,
    file: Option<&web_sys::File>,
) -> Result<Answer, WebError> {
    let connection = match transport {
        Transport::InPage(core) => {
            let file = file.map_or(JsValue::UNDEFINED, |f| f.clone().into());
            return Ok(core.answer(msg, parts, &file).await);
        }
        Transport::Worker(c) => c,
    };
    if let Some(why) = connection.dead.borrow().clone() {
        return Err(WebError::InferenceWorker(why));
    }
    let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    let (value, transfer) = encode(&msg, &parts)?;
    if let Some(file) = file {
        js_sys::Reflect::set(&value, &"file".into(), file)
            .map_err(|e| WebError::Browser(browser::error_text(e)))?;
    }
    let answer = waiter(connection, msg.id());
    if let Err(e) = connection
        .worker
        .post_message_with_transfer(&value, &transfer)
    {
        connection.pending.borrow_mut().remove(&msg.id());
        return Err(WebError::Browser(browser::error_text(e)));
    }
    let data = JsFuture::from(answer).await.map_err(stopped)?;
    decode(&data)
}

/// Fails every request `pending` holds with `why`.
fn fail_all(pending: &Pending, why: &str) {
    let held: Vec<_> = pending.borrow_mut().drain().collect();
    for (_, (_, reject)) in held {
        let _ = reject.call1(&JsValue::NULL, &JsValue::from_str(why));
    }
}

/// Starts the worker script (to run the WebGPU module if `webgpu`) and wires its answers to
/// the requests waiting for them.
fn spawn(webgpu: bool) -> Result<Connection, WebError> {
    let options = web_sys::WorkerOptions::new();
    options.set_type(web_sys::WorkerType::Module);
    options.set_name(&worker_name());
    let worker = web_sys::Worker::new_with_options(&browser::asset_url(worker_script()), &options)
        .map_err(|e| {
            WebError::Browser(format!(
                "this browser could not start a worker: {}",
                browser::error_text(e)
            ))
        })?;
    let pending: Pending = Rc::default();
    let dead: Rc<RefCell<Option<String>>> = Rc::default();
    let on_message = {
        let (pending, dead) = (pending.clone(), dead.clone());
        Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |event: web_sys::MessageEvent| {
            let data = event.data();
            let id = match decode::<FromInference>(&data) {
                Ok((FromInference::Crashed { message }, _)) => {
                    *dead.borrow_mut() = Some(message.clone());
                    return fail_all(&pending, &message);
                }
                Ok((answer, _)) => answer.id().unwrap_or(READY),
                Err(e) => return web_sys::console::error_1(&e.to_string().into()),
            };
            let resolver = pending.borrow_mut().remove(&id);
            if let Some((resolve, _)) = resolver {
                let _ = resolve.call1(&JsValue::NULL, &data);
            }
        })
    };
    let on_error = {
        let (pending, dead) = (pending.clone(), dead.clone());
        Closure::<dyn FnMut(web_sys::Event)>::new(move |event: web_sys::Event| {
            event.prevent_default();
            // A script that did not load reports no message.
            let why = match browser::event_message(&event) {
                m if m.is_empty() => "its script or the model code did not load".to_string(),
                m => m,
            };
            *dead.borrow_mut() = Some(why.clone());
            fail_all(&pending, &why);
        })
    };
    worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    Ok(Connection {
        worker,
        webgpu,
        pending,
        dead,
        _on_message: on_message,
        _on_error: on_error,
    })
}

/// The worker's script: `public/infer-worker.js`, or a missing one under the failure drill
/// `?infer-worker=missing` (a worker that cannot start, as where a script is blocked).
fn worker_script() -> &'static str {
    if browser::page_param("infer-worker").as_deref() == Some("missing") {
        "public/no-such-worker.js"
    } else {
        "public/infer-worker.js"
    }
}

/// The worker's name, carrying the page's failure drills if any (`lose-gpu-at-image=N`,
/// `infer-worker-webgpu=off`, `crash-worker-at-image=N`; see `public/infer-worker.js`). A query on the script's URL would
/// not survive the service worker's cache.
fn worker_name() -> String {
    let mut name = "xray-web inference".to_string();
    let number = |key| browser::page_param(key).and_then(|n| n.parse::<u32>().ok());
    if let Some(n) = number("lose-gpu-at-image") {
        name.push_str(&format!("; lose-gpu-at-image={n}"));
    }
    if browser::page_param("infer-worker-webgpu").as_deref() == Some("off") {
        name.push_str("; infer-worker-webgpu=off");
    }
    if let Some(n) = number("crash-worker-at-image") {
        name.push_str(&format!("; crash-worker-at-image={n}"));
    }
    name
}
