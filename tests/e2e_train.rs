//! End to end, demo training: in headless Chromium on the CPU backend and on WebGPU
//! (SwiftShader), a short fine-tune on the bundled X-rays runs to `done`, the curves and the
//! validation grid update, pause/resume/stop work, the fine-tuned model predicts next to the
//! shipped one, and its weights downloaded and loaded back give the same predictions.
//! Run by `.ci/test` after `trunk build --release`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test
#![cfg(not(target_arch = "wasm32"))]

mod support;

use std::path::Path;

use fantoccini::{Client, Locator};
use serde_json::{Value, json};
use support::{PREFIX, ROOT, js, open_until_ready, samples, serve_dist, wait_for};

const STATUS: &str = "const s = document.querySelector('[data-testid=train-status]').dataset; return {state: s.state, epoch: +s.epoch, step: +s.step, loss: s.loss, acc: s.valAccuracy, ips: +s.imagesPerSec, mb: +s.wasmMb}";

/// Sets an input's value as a person would, firing `change`.
async fn set(c: &Client, testid: &str, value: &str) {
    c.execute(
        "const el = document.querySelector(`[data-testid=${arguments[0]}]`); el.value = arguments[1]; el.dispatchEvent(new Event('change', {bubbles: true}));",
        vec![json!(testid), json!(value)],
    )
    .await
    .unwrap();
}

async fn click(c: &Client, testid: &str) {
    c.find(Locator::Css(&format!("[data-testid={testid}]")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// The training status line's text.
async fn status_text(c: &Client) -> String {
    js(
        c,
        "return document.querySelector('[data-testid=train-status]').textContent",
    )
    .await
    .as_str()
    .unwrap_or_default()
    .to_string()
}

async fn wait_state(c: &Client, states: &[&str], secs: u64) -> Value {
    let list = serde_json::to_string(states).unwrap();
    wait_for(
        c,
        &format!("const s = document.querySelector('[data-testid=train-status]'); return {list}.includes(s.dataset.state) && s.dataset.state"),
        secs,
        &format!("training state in {list}"),
    )
    .await;
    let status = js(c, STATUS).await;
    assert_ne!(
        status["state"],
        "error",
        "training failed: {}",
        status_text(c).await
    );
    status
}

/// Classifies `file` with the dropzone's input; returns (shipped P, fine-tuned P if a fine-tuned
/// model is in use).
async fn classify(c: &Client, file: &Path) -> (f64, Option<f64>) {
    let before = js(
        c,
        "return document.querySelectorAll('[data-testid=prediction]').length",
    )
    .await;
    let input = c.find(Locator::Css("input[type=file]")).await.unwrap();
    input.send_keys(&file.display().to_string()).await.unwrap();
    wait_for(
        c,
        &format!("return document.querySelectorAll('[data-testid=prediction]').length > {before}"),
        300,
        "a prediction",
    )
    .await;
    let row = js(c, "const d = document.querySelector('[data-testid=prediction]').dataset; return [d.pPneumonia, d.tunedPPneumonia || null]").await;
    let p: f64 = row[0].as_str().unwrap().parse().unwrap();
    let tuned = row[1].as_str().map(|t| t.parse().unwrap());
    (p, tuned)
}

/// Runs a one-step fine-tune (1 epoch, batch 8, 4 + 4 images) to its end; returns the status.
async fn one_step_run(c: &Client) -> Value {
    set(c, "train-epochs", "1").await;
    set(c, "train-batch", "8").await;
    set(c, "train-per-class", "4").await;
    click(c, "train-start").await;
    let s = wait_state(c, &["done", "error"], 600).await;
    assert_eq!(s["step"], 1, "{s}");
    s
}

/// Runs a 1-epoch fine-tune of `mode` on 4 + 4 images and checks every panel.
async fn short_run(c: &Client, mode: &str) {
    set(c, "train-mode", mode).await;
    set(c, "train-epochs", "1").await;
    set(c, "train-batch", "4").await;
    set(c, "train-per-class", "4").await;
    assert_eq!(js(c, STATUS).await["state"], "idle");
    click(c, "train-start").await;
    let s = wait_state(c, &["done", "error"], 900).await;
    assert_eq!(s["epoch"], 1, "{s}");
    assert_eq!(s["step"], 2, "{s}");
    let loss: f64 = s["loss"].as_str().unwrap().parse().unwrap();
    assert!(loss.is_finite() && loss >= 0.0, "{s}");
    let acc: f64 = s["acc"].as_str().unwrap().parse().unwrap();
    assert!((0.0..=1.0).contains(&acc), "{s}");
    assert!(s["ips"].as_f64().unwrap() > 0.0, "{s}");
    // Curves: two step losses and the validation points before and after.
    let curves = js(c, "const e = document.querySelector('[data-testid=train-curves]'); return e && [+e.dataset.points, e.querySelectorAll('polyline').length]").await;
    assert_eq!(curves[0], 2, "{curves}");
    assert!(curves[1].as_u64().unwrap() >= 3, "{curves}");
    // The grid shows the 4 validation images after the last step.
    let grid = js(c, "const g = document.querySelector('[data-testid=val-grid]'); return [g.dataset.step, [...g.querySelectorAll('[data-testid=val-sample]')].map(e => [e.dataset.truth, e.dataset.predicted, +e.dataset.pPneumonia, e.dataset.wrong])]").await;
    assert_eq!(grid[0], "2", "{grid}");
    let items = grid[1].as_array().unwrap();
    assert_eq!(items.len(), 4, "{grid}");
    for it in items {
        let wrong = it[0] != it[1];
        assert_eq!(it[3], json!(wrong.to_string()), "{it}");
    }
    let evals = js(c, "return ['eval-before', 'eval-after'].map(t => { const e = document.querySelector(`[data-testid=${t}]`); return e && [+e.dataset.n, +e.dataset.auc, e.querySelectorAll('table.confusion td').length] })").await;
    for e in evals.as_array().unwrap() {
        assert_eq!(e[0], 4, "{evals}");
        assert_eq!(e[2], 4, "{evals}");
    }
    assert_eq!(
        js(
            c,
            "return document.querySelector('[data-testid=tuned-info]').dataset.loaded"
        )
        .await,
        "true"
    );
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs dist/ (trunk build --release) and chromedriver; run by .ci/test"]
async fn demo_training_runs_on_cpu_and_webgpu_and_its_weights_round_trip() {
    let (origin, log) = serve_dist();
    let base = format!("{origin}{PREFIX}");
    let (c, _driver) = support::browser().await;
    let tmp = std::env::temp_dir().join(format!("xray-e2e-train-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let s = samples();
    let sample = Path::new(ROOT).join("public/samples").join(&s[0].0);

    // CPU: the whole network, then pause, resume and stop a longer run.
    open_until_ready(&c, &format!("{base}?backend=cpu")).await;
    short_run(&c, "whole").await;
    let (_, tuned_cpu) = classify(&c, &sample).await;
    let tuned_cpu = tuned_cpu.expect("a fine-tuned prediction next to the shipped one");
    assert!((0.0..=1.0).contains(&tuned_cpu));
    // Every training panel is on screen now: none may break accessibility.
    let violations = support::axe_violations(&c).await;
    assert_eq!(violations, json!([]), "training panels: {violations:#}");

    set(&c, "train-epochs", "20").await;
    set(&c, "train-per-class", "20").await;
    click(&c, "train-start").await;
    wait_for(
        &c,
        "const s = document.querySelector('[data-testid=train-status]').dataset; return s.state === 'running' && +s.step >= 1",
        300,
        "a step of the long run",
    )
    .await;
    click(&c, "train-pause").await;
    let paused = wait_state(&c, &["paused"], 120).await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let still = js(&c, STATUS).await;
    assert_eq!(still["state"], "paused");
    assert_eq!(still["step"], paused["step"], "no step while paused");
    click(&c, "train-pause").await;
    wait_for(
        &c,
        &format!(
            "return +document.querySelector('[data-testid=train-status]').dataset.step > {}",
            paused["step"]
        ),
        300,
        "training to resume",
    )
    .await;
    click(&c, "train-stop").await;
    let stopped = wait_state(&c, &["done"], 300).await;
    assert!(stopped["epoch"].as_u64().unwrap() < 20, "{stopped}");
    let text = status_text(&c).await;
    assert!(text.contains("stopped"), "{text}");

    // WebGPU: the head, then download and reload the weights.
    open_until_ready(&c, &format!("{base}?backend=webgpu")).await;
    short_run(&c, "head").await;
    let tuned = classify(&c, &sample)
        .await
        .1
        .expect("a fine-tuned prediction next to the shipped one");
    click(&c, "train-download").await;
    wait_for(
        &c,
        "return !!document.querySelector('[data-testid=weights-link]')",
        120,
        "the weights link",
    )
    .await;
    let b64 = c
        .execute_async(
            "const done = arguments[arguments.length - 1]; fetch(document.querySelector('[data-testid=weights-link]').href).then(r => r.arrayBuffer()).then(b => { const u = new Uint8Array(b); let s = ''; for (let i = 0; i < u.length; i += 8192) s += String.fromCharCode.apply(null, u.subarray(i, i + 8192)); done(btoa(s)); }).catch(e => done('ERROR ' + e));",
            vec![],
        )
        .await
        .unwrap();
    let b64 = b64.as_str().unwrap();
    assert!(!b64.starts_with("ERROR"), "{b64}");
    let bytes = base64(b64);
    assert!(bytes.len() > 1_000_000, "{} bytes", bytes.len());
    let file = tmp.join("xray-finetuned.bpk");
    std::fs::write(&file, &bytes).unwrap();
    // A fresh page: the shipped model only, then the downloaded weights loaded from disk.
    open_until_ready(&c, &format!("{base}?backend=webgpu")).await;
    assert_eq!(
        js(
            &c,
            "return document.querySelector('[data-testid=tuned-info]').dataset.loaded"
        )
        .await,
        "false"
    );
    c.find(Locator::Css("[data-testid=weights-upload]"))
        .await
        .unwrap()
        .send_keys(&file.display().to_string())
        .await
        .unwrap();
    wait_for(&c, "return document.querySelector('[data-testid=tuned-info]').dataset.loaded === 'true' || document.querySelector('[data-testid=weights-error]')", 120, "the weights to load").await;
    let reloaded = classify(&c, &sample)
        .await
        .1
        .expect("the loaded model's prediction next to the shipped one");
    assert!(
        (tuned - reloaded).abs() < 1e-5,
        "fine-tuned {tuned} vs reloaded {reloaded}"
    );

    // A file that is not weights gets a message, and the page goes on.
    let junk = tmp.join("junk.bpk");
    std::fs::write(&junk, "not weights").unwrap();
    c.find(Locator::Css("[data-testid=weights-upload]"))
        .await
        .unwrap()
        .send_keys(&junk.display().to_string())
        .await
        .unwrap();
    let err = wait_for(&c, "const e = document.querySelector('[data-testid=weights-error]'); return e && e.textContent", 60, "the weights error").await;
    assert!(err.as_str().unwrap().contains("junk.bpk"), "{err}");

    let served = log.lock().unwrap().clone();
    assert!(served.iter().all(|p| p.starts_with(PREFIX)), "{served:?}");
    assert!(served.iter().any(|p| p.ends_with("subset.bin")));
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs dist/ (trunk build --release) and chromedriver; run by .ci/test"]
async fn a_lost_gpu_ends_the_run_with_a_message_and_the_page_goes_on_and_a_worker_without_webgpu_trains_on_the_cpu()
 {
    let (origin, _log) = serve_dist();
    let (c, _driver) = support::browser().await;
    // The failure drill destroys the training worker's WebGPU device after step 2.
    open_until_ready(
        &c,
        &format!("{origin}{PREFIX}?backend=webgpu&lose-gpu-at-step=2"),
    )
    .await;
    set(&c, "train-mode", "head").await;
    set(&c, "train-epochs", "2").await;
    set(&c, "train-batch", "4").await;
    set(&c, "train-per-class", "8").await;
    click(&c, "train-start").await;
    wait_for(
        &c,
        "const s = document.querySelector('[data-testid=train-status]').dataset.state; return s === 'error' || s === 'done'",
        600,
        "the run to end",
    )
    .await;
    let status = js(&c, STATUS).await;
    let text = status_text(&c).await;
    assert_eq!(status["state"], "error", "{status} {text}");
    assert_eq!(
        status["step"], 2,
        "the steps before the loss are kept: {status}"
    );
    assert!(text.contains("GPU stopped answering"), "{text}");
    assert!(text.contains("smaller batch"), "{text}");
    // Only the worker died: no fatal banner, and the shipped model still classifies.
    assert_eq!(
        js(&c, "return document.querySelector('#fatal').hidden").await,
        true
    );
    let sample = Path::new(ROOT).join("public/samples").join(&samples()[0].0);
    let (p, tuned) = classify(&c, &sample).await;
    assert!((0.0..=1.0).contains(&p) && tuned.is_none(), "{p} {tuned:?}");
    // And a new run (one step, before the drill's step) trains to the end on a new worker.
    one_step_run(&c).await;
    assert_eq!(
        js(
            &c,
            "return document.querySelector('[data-testid=tuned-info]').dataset.loaded"
        )
        .await,
        "true"
    );

    // A browser that offers WebGPU to the page but not to workers: the worker trains on the CPU.
    open_until_ready(
        &c,
        &format!("{origin}{PREFIX}?backend=webgpu&worker-webgpu=off"),
    )
    .await;
    one_step_run(&c).await;
    let backend = js(
        &c,
        "return document.querySelector('[data-testid=train-status]').dataset.backend",
    )
    .await;
    assert_eq!(backend, "cpu");
    let info = js(
        &c,
        "return document.querySelector('[data-testid=tuned-info]').textContent",
    )
    .await;
    assert!(info.as_str().unwrap().contains("CPU"), "{info}");
    c.close().await.unwrap();
}
