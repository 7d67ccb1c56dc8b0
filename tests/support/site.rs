//! The site under test: a static server for `dist/` under a sub-path that logs every request,
//! and headless Chromium driven through chromedriver, one per test binary, shared by its tests.

use std::{
    io::{BufRead, BufReader, Write},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc, LazyLock, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};

pub use super::shipped::ROOT;
pub const PREFIX: &str = "/some/sub/dir/";

/// While set, the server drops every connection without answering, as if the network were gone.
pub static OFFLINE: AtomicBool = AtomicBool::new(false);

/// Takes the network away until dropped (even when the test fails on the way).
pub struct Offline;

impl Offline {
    pub fn now() -> Self {
        OFFLINE.store(true, Ordering::SeqCst);
        Offline
    }
}

impl Drop for Offline {
    fn drop(&mut self) {
        OFFLINE.store(false, Ordering::SeqCst);
    }
}

/// A static file server for `dist/` under [`PREFIX`], recording every path asked for.
pub fn serve(dist: PathBuf) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let log = Arc::new(Mutex::new(Vec::new()));
    let log2 = log.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let dist = dist.clone();
            let log = log2.clone();
            std::thread::spawn(move || handle(stream, &dist, &log));
        }
    });
    (port, log)
}

fn handle(mut stream: TcpStream, dist: &Path, log: &Mutex<Vec<String>>) {
    if OFFLINE.load(Ordering::SeqCst) {
        let _ = stream.shutdown(std::net::Shutdown::Both);
        return;
    }
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut header = String::new();
    while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
        header.clear();
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    log.lock().unwrap().push(path.clone());
    let path = path.split('?').next().unwrap_or("");
    let file = path
        .strip_prefix(PREFIX)
        .map(|p| if p.is_empty() { "index.html" } else { p })
        .filter(|p| !p.contains(".."))
        .map(|p| dist.join(p));
    let (status, body, mime) = match file.and_then(|f| std::fs::read(&f).ok().map(|b| (f, b))) {
        Some((f, body)) => {
            let mime = match f.extension().and_then(|e| e.to_str()).unwrap_or("") {
                "html" => "text/html; charset=utf-8",
                "js" => "text/javascript",
                "wasm" => "application/wasm",
                "css" => "text/css",
                "json" => "application/json",
                "webmanifest" => "application/manifest+json",
                "jpeg" | "jpg" => "image/jpeg",
                "png" => "image/png",
                _ => "application/octet-stream",
            };
            ("200 OK", body, mime)
        }
        None => ("404 Not Found", b"not found".to_vec(), "text/plain"),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {mime}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&body);
}

/// chromedriver and the Chromium it started (found by its own profile folder).
pub struct Driver(Child, PathBuf);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        // Chromium outlives a killed chromedriver (its processes are re-parented): end every
        // process that uses this browser's profile, or a page still training would keep a core
        // busy for the rest of the run.
        let _ = Command::new("pkill")
            .args(["-KILL", "-f", &self.1.display().to_string()])
            .status();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

/// The runtime every shared-browser test runs on: the browser's connection lives on it, so it
/// outlives each test.
static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
});

/// The test binary's one browser, started by the first test that asks for it.
static SHARED: Mutex<Option<(Client, Driver)>> = Mutex::new(None);

/// Ends the shared browser when the test binary exits.
extern "C" fn end_shared_browser() {
    // A failed test poisons the lock; the browser must end all the same.
    let mut shared = match SHARED.try_lock() {
        Ok(shared) => shared,
        Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
        Err(std::sync::TryLockError::WouldBlock) => return,
    };
    shared.take();
}

/// Runs `test` in the test binary's one headless Chromium, started on first use and ended when
/// the process exits; tests take turns (each opens the page it needs, on its own server, so no
/// origin's state carries over). A failed test leaves the browser to the next.
pub fn with_browser<F, Fut>(test: F)
where
    F: FnOnce(Client) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut shared = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
    RUNTIME.block_on(async {
        if shared.is_none() {
            *shared = Some(browser().await);
            // SAFETY: registers a plain `extern "C" fn` with no captured state, as atexit asks.
            unsafe { libc::atexit(end_shared_browser) };
        }
        let client = shared.as_ref().map(|(c, _)| c.clone()).unwrap();
        test(client).await;
    });
}

/// A headless Chromium of one's own (the benchmarks, which measure a fresh browser).
pub async fn browser() -> (Client, Driver) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let driver = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
    let child = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver (apt-get install chromium-driver)");
    let profile =
        std::env::temp_dir().join(format!("xray-e2e-profile-{}-{port}", std::process::id()));
    let driver = Driver(child, profile.clone());
    let caps = json!({
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--enable-unsafe-webgpu", "--use-webgpu-adapter=swiftshader", "--enable-unsafe-swiftshader",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--window-size=1280,1600",
                format!("--user-data-dir={}", profile.display()),
            ]
        }
    });
    let caps = match caps {
        Value::Object(m) => m,
        _ => unreachable!(),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(c) => return (c, driver),
            Err(e) if Instant::now() > deadline => panic!("chromedriver did not answer: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
}

/// A Chrome DevTools Protocol command, sent through chromedriver's `goog/cdp/execute`.
#[derive(Debug)]
struct Cdp {
    cmd: &'static str,
    params: Value,
}

impl fantoccini::wd::WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        let body = json!({ "cmd": self.cmd, "params": self.params });
        (http::Method::POST, Some(body.to_string()))
    }
}

/// Runs the DevTools command `cmd` (for example `Memory.simulatePressureNotification`) in the
/// page and returns its result.
pub async fn cdp(c: &Client, cmd: &'static str, params: Value) -> Value {
    c.issue_cmd(Cdp { cmd, params })
        .await
        .unwrap_or_else(|e| panic!("{cmd}: {e}"))
}

pub async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, vec![]).await.unwrap()
}

/// Polls `script` until it returns something truthy, or fails after `secs`.
pub async fn wait_for(c: &Client, script: &str, secs: u64, what: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let v = js(c, script).await;
        if !(v.is_null() || v == json!(false)) {
            return v;
        }
        if Instant::now() > deadline {
            let status = js(c, "const s = document.querySelector('[data-testid=model-status]'); return s && s.textContent").await;
            panic!("timed out waiting for {what}; model status: {status}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Serves `dist/` (which must have been built) and returns (origin, request log).
pub fn serve_dist() -> (String, Arc<Mutex<Vec<String>>>) {
    let dist = Path::new(ROOT).join("dist");
    assert!(
        dist.join("index.html").is_file(),
        "build the site first: trunk build --release"
    );
    let (port, log) = serve(dist);
    (format!("http://127.0.0.1:{port}"), log)
}

/// Opens `url` and waits until the model is ready; returns the milliseconds that took.
pub async fn open_until_ready(c: &Client, url: &str) -> f64 {
    let t0 = Instant::now();
    c.goto(url).await.unwrap();
    wait_for(c, "const s = document.querySelector('[data-testid=model-status]'); return s && s.dataset.state === 'ready'", 600, "model ready").await;
    t0.elapsed().as_secs_f64() * 1000.0
}

/// Runs axe-core (WCAG 2.0/2.1 A and AA rules) on the page and returns its violations.
pub async fn axe_violations(c: &Client) -> Value {
    let path =
        std::env::var("AXE_JS").expect("AXE_JS (set by .ci/env.sh; .ci/setup downloads axe-core)");
    let source = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    c.execute(&source, vec![]).await.unwrap();
    c.execute_async(
        "const done = arguments[arguments.length - 1]; axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}}).then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 5).map(n => n.target.join(' '))}))), e => done([{id: 'axe failed', help: String(e)}]));",
        vec![],
    )
    .await
    .unwrap()
}
