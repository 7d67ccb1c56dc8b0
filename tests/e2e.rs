//! End to end: the built `dist/` served under a sub-path on 127.0.0.1, driven in headless
//! Chromium through chromedriver. Run by `.ci/test` after `trunk build --release`.

#![cfg(not(target_arch = "wasm32"))]

use std::{
    io::{BufRead, BufReader, Write},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const PREFIX: &str = "/some/sub/dir/";

/// A static file server for `dist/` under [`PREFIX`], recording every path asked for.
fn serve(dist: PathBuf) -> (u16, Arc<Mutex<Vec<String>>>) {
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

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        // Chromium outlives a killed chromedriver: end its children too.
        let _ = Command::new("pkill")
            .args(["-P", &self.0.id().to_string()])
            .status();
    }
}

async fn browser() -> (Client, Driver) {
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
    let driver = Driver(child);
    let profile =
        std::env::temp_dir().join(format!("xray-e2e-profile-{}-{port}", std::process::id()));
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

async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, vec![]).await.unwrap()
}

/// Polls `script` until it returns something truthy, or fails after `secs`.
async fn wait_for(c: &Client, script: &str, secs: u64, what: &str) -> Value {
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

const PREDICTIONS: &str = "return [...document.querySelectorAll('[data-testid=prediction]')].map(e => ({file: e.dataset.file, label: e.dataset.label, p: e.dataset.pPneumonia, backend: e.dataset.backend, ms: e.dataset.ms}))";

fn samples() -> Vec<(String, String)> {
    let manifest: Vec<Value> = serde_json::from_slice(
        &std::fs::read(format!("{ROOT}/public/samples/manifest.json")).unwrap(),
    )
    .unwrap();
    manifest
        .iter()
        .map(|s| {
            (
                s["file"].as_str().unwrap().to_string(),
                s["label"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Opens the app with `?backend=`, drops two X-rays and a non-image, and returns P(pneumonia)
/// for the X-rays by file name.
async fn run_backend(
    c: &Client,
    base: &str,
    backend: &str,
    files: &[PathBuf],
) -> Vec<(String, f64)> {
    c.goto(&format!("{base}?backend={backend}")).await.unwrap();
    wait_for(c, "const s = document.querySelector('[data-testid=model-status]'); return s && s.dataset.state === 'ready'", 600, "model ready").await;
    let input = c.find(Locator::Css("input[type=file]")).await.unwrap();
    let paths: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    input.send_keys(&paths.join("\n")).await.unwrap();
    wait_for(
        c,
        "return document.querySelectorAll('[data-testid=prediction]').length === 2 && document.querySelectorAll('[data-testid=error]').length === 1",
        300,
        "two predictions and one error",
    )
    .await;
    let error = js(
        c,
        "return document.querySelector('[data-testid=error]').textContent",
    )
    .await;
    assert!(
        error.as_str().unwrap().contains("notes.png"),
        "error names the file: {error}"
    );
    let preds = js(c, PREDICTIONS).await;
    preds
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert_eq!(p["backend"], backend, "{p}");
            let label = p["label"].as_str().unwrap();
            assert!(label == "NORMAL" || label == "PNEUMONIA");
            let text = p["p"].as_str().unwrap();
            assert!(
                text.split('.').nth(1).is_some_and(|d| d.len() >= 4),
                "4 decimals: {text}"
            );
            let prob: f64 = text.parse().unwrap();
            assert!((0.0..=1.0).contains(&prob));
            assert!(p["ms"].as_str().unwrap().parse::<f64>().unwrap() > 0.0);
            (p["file"].as_str().unwrap().to_string(), prob)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs dist/ (trunk build --release) and chromedriver; run by .ci/test"]
async fn the_built_site_classifies_on_webgpu_and_cpu_and_stays_on_its_origin() {
    let dist = Path::new(ROOT).join("dist");
    assert!(
        dist.join("index.html").is_file(),
        "build the site first: trunk build --release"
    );
    let (port, log) = serve(dist);
    let origin = format!("http://127.0.0.1:{port}");
    let base = format!("{origin}{PREFIX}");
    let (c, _driver) = browser().await;

    let tmp = std::env::temp_dir().join(format!("xray-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let s = samples();
    let picks = [&s[0], s.iter().find(|x| x.1 == "PNEUMONIA").unwrap()];
    let mut files: Vec<PathBuf> = picks
        .iter()
        .map(|(f, _)| Path::new(ROOT).join("public/samples").join(f))
        .collect();
    let bad = tmp.join("notes.png");
    std::fs::write(&bad, "this is not an image").unwrap();
    files.insert(1, bad);

    let cpu = run_backend(&c, &base, "cpu", &files).await;
    let gpu = run_backend(&c, &base, "webgpu", &files).await;
    for (file, p) in &cpu {
        let q = gpu.iter().find(|g| &g.0 == file).unwrap().1;
        assert!((p - q).abs() < 1e-3, "{file}: CPU {p} vs WebGPU {q}");
    }

    // The native CLI gives the same probabilities.
    let out = Command::new(env!("CARGO_BIN_EXE_xray"))
        .args(["predict", "--json"])
        .args(&files)
        .current_dir(ROOT)
        .output()
        .unwrap();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        if let Some(p) = v["p_pneumonia"].as_f64() {
            let name = Path::new(v["file"].as_str().unwrap())
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            let page = cpu.iter().find(|c| c.0 == name).unwrap().1;
            assert!((p - page).abs() < 1e-3, "{name}: CLI {p} vs page {page}");
        }
    }

    // A gallery sample shows its true label next to the prediction.
    let sample = c.find(Locator::Css("[data-testid=sample]")).await.unwrap();
    let sample_file = sample.attr("data-file").await.unwrap().unwrap();
    sample.click().await.unwrap();
    wait_for(
        &c,
        &format!("return [...document.querySelectorAll('[data-testid=prediction]')].some(e => e.dataset.file === '{sample_file}')"),
        120,
        "the sample's prediction",
    )
    .await;
    let truth = js(
        &c,
        "return document.querySelector('[data-testid=prediction] .truth').textContent",
    )
    .await;
    assert!(truth.as_str().unwrap().starts_with("true: "));
    assert!(
        js(
            &c,
            "return !!document.querySelector('[data-testid=model-card] svg polyline')"
        )
        .await
            == json!(true)
    );

    // Nothing left the origin: every resource the page loaded is ours.
    let urls = js(
        &c,
        "return [location.href, ...performance.getEntriesByType('resource').map(e => e.name)]",
    )
    .await;
    for url in urls.as_array().unwrap() {
        let url = url.as_str().unwrap();
        assert!(
            url.starts_with(&origin) || url.starts_with("blob:") || url.starts_with("data:"),
            "off-origin request: {url}"
        );
    }
    let served = log.lock().unwrap().clone();
    assert!(
        served.iter().all(|p| p.starts_with(PREFIX)),
        "requests outside the sub-path: {served:?}"
    );
    assert!(served.iter().any(|p| p.ends_with("model.bpk")));
    c.close().await.unwrap();
}
