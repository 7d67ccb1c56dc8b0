//! Training benchmark (not a test): in headless Chromium, for WebGPU and the CPU backend, the
//! demo fine-tuning's throughput; the training worker's wasm memory, the GPU memory its run
//! holds (WebGPU) and the page's JS heap after the first and the last epoch; and the longest
//! stall of the page's main thread while it trains (a 20 ms timer records the largest gap
//! between its ticks; every stall over 100 ms is listed on stderr).
//!
//! `trunk build --release && cargo bench --bench train [-- --mode whole --per-class 16 --epochs 3 --batch 8 --backend both|webgpu|cpu]`

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::{PREFIX, js, open_until_ready, serve_dist};

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

const STATUS: &str = "const s = document.querySelector('[data-testid=train-status]').dataset; return {state: s.state, epoch: +s.epoch, step: +s.step, ips: +s.imagesPerSec, mb: +s.wasmMb, gpu: s.gpuMb ? +s.gpuMb : null, heap: performance.memory ? performance.memory.usedJSHeapSize / 1e6 : 0, stall: window.__stall || 0}";

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let mode = arg(&args, "--mode", "whole");
    let per_class = arg(&args, "--per-class", "16");
    let epochs: u64 = arg(&args, "--epochs", "3").parse().unwrap_or(3);
    let batch = arg(&args, "--batch", "8");
    let (origin, _log) = serve_dist();
    println!(
        "mode {mode}, {per_class} images per class ({} fine-tuning), batch {batch}, {epochs} epochs",
        2 * per_class.parse::<u64>().unwrap_or(0)
    );
    println!(
        "| backend | images/s | wall time (s) | worker wasm MB after epoch 1 | after epoch {epochs} | GPU MB after epoch 1 | after epoch {epochs} | page JS heap MB after epoch 1 | after epoch {epochs} | longest main-thread stall (ms), epoch 1 | after epoch 1 |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let backends = match arg(&args, "--backend", "both").as_str() {
        "webgpu" => vec!["webgpu"],
        "cpu" => vec!["cpu"],
        _ => vec!["webgpu", "cpu"],
    };
    for backend in backends {
        let (c, _driver) = support::browser().await;
        open_until_ready(&c, &format!("{origin}{PREFIX}?backend={backend}")).await;
        for (id, value) in [
            ("train-mode", mode.as_str()),
            ("train-epochs", &epochs.to_string()),
            ("train-batch", batch.as_str()),
            ("train-per-class", per_class.as_str()),
        ] {
            c.execute(
                "const el = document.querySelector(`[data-testid=${arguments[0]}]`); el.value = arguments[1]; el.dispatchEvent(new Event('change', {bubbles: true}));",
                vec![json!(id), json!(value)],
            )
            .await
            .unwrap();
        }
        // Load the data first so that the stall measured is the training's.
        js(
            &c,
            "document.querySelector('[data-testid=train-load-bundled]').click()",
        )
        .await;
        support::wait_for(
            &c,
            "return !!document.querySelector('[data-testid=train-data]')",
            300,
            "data",
        )
        .await;
        js(&c, "window.__stall = 0; window.__gaps = []; let last = performance.now(); setInterval(() => { const now = performance.now(); const gap = now - last - 20; window.__stall = Math.max(window.__stall, gap); if (gap > 100) window.__gaps.push([Math.round(gap), document.querySelector('[data-testid=train-status]').textContent.slice(0, 60)]); last = now; }, 20); document.querySelector('[data-testid=train-start]').click()").await;
        let t0 = Instant::now();
        let mut first = None;
        let last = loop {
            let s = js(&c, STATUS).await;
            if s["epoch"].as_u64() >= Some(1) && first.is_none() {
                // From here on the stall is measured afresh: the first epoch includes compiling
                // every kernel of the forward and backward passes.
                js(&c, "window.__stall = 0").await;
                first = Some(s.clone());
            }
            match s["state"].as_str() {
                Some("done") => break s,
                Some("error") => panic!(
                    "{backend}: {}",
                    js(
                        &c,
                        "return document.querySelector('[data-testid=train-status]').textContent"
                    )
                    .await
                ),
                _ => {}
            }
            if t0.elapsed() > Duration::from_secs(3600) {
                panic!("{backend}: training did not finish in an hour");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let first = first.unwrap_or_else(|| last.clone());
        println!(
            "| {backend} | {:.2} | {:.0} | {:.1} | {:.1} | {} | {} | {:.1} | {:.1} | {:.0} | {:.0} |",
            last["ips"].as_f64().unwrap_or(0.0),
            t0.elapsed().as_secs_f64(),
            first["mb"].as_f64().unwrap_or(0.0),
            last["mb"].as_f64().unwrap_or(0.0),
            first["gpu"]
                .as_f64()
                .map_or("–".into(), |m| format!("{m:.1}")),
            last["gpu"]
                .as_f64()
                .map_or("–".into(), |m| format!("{m:.1}")),
            first["heap"].as_f64().unwrap_or(0.0),
            last["heap"].as_f64().unwrap_or(0.0),
            first["stall"].as_f64().unwrap_or(0.0),
            last["stall"].as_f64().unwrap_or(0.0),
        );
        // Each stall over 100 ms, with what the page said when it ended.
        let gaps = js(&c, "return window.__gaps").await;
        for g in gaps.as_array().into_iter().flatten() {
            eprintln!("{backend}: a {} ms stall, then: {}", g[0], g[1]);
        }
        c.close().await.unwrap();
    }
}
