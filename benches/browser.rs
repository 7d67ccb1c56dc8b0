//! Browser benchmark (not a test): in headless Chromium, for WebGPU and the CPU backend, the
//! cold start (fresh profile, page open to model ready), the median per-image inference time
//! over the 24 gallery samples and the median time of the heatmap after it, and the sizes of
//! the wasm and the weights; then the gallery again until 240 images are done, for the batch's
//! wall time and the longest stall of the page's main thread over the whole run (a 20 ms timer
//! records the largest gap between its ticks, as `--bench train` does while training).
//!
//! Then, on a fresh page per backend, the performance issue's mixed batch: 50 files dropped at
//! once (48 gallery X-rays, a 30-megapixel PNG and a DICOM), with the same stall timer.
//!
//! `trunk build --release && cargo bench --bench browser [-- --rounds N]` (N gallery rounds
//! after the first, 9 by default)

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

#[path = "../tests/corpus/mod.rs"]
mod corpus;
#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;

use fantoccini::Locator;
use support::{PREFIX, ROOT, js, open_until_ready, page::Page, serve_dist, wait_for};

fn gzip_size(path: &Path) -> Option<u64> {
    let out = std::process::Command::new("gzip")
        .arg("-9c")
        .arg(path)
        .output()
        .ok()?;
    Some(out.stdout.len() as u64)
}

/// A 20 ms timer on the page's main thread: `__stall` is the largest gap between its ticks
/// beyond the 20 ms, `__gaps` every gap over 100 ms with the number of rows when it ended.
const STALL_TIMER: &str = "window.__stall = 0; window.__gaps = []; let last = performance.now(); setInterval(() => { const now = performance.now(); const gap = now - last - 20; window.__stall = Math.max(window.__stall, gap); if (gap > 100) window.__gaps.push([Math.round(gap), document.querySelectorAll('[data-testid=prediction]').length]); last = now; }, 20); return 1";

/// What [`STALL_TIMER`] recorded: the longest stall (ms) and how many were over 100 ms, each of
/// which is printed with `what`.
async fn read_stalls(c: &fantoccini::Client, what: &str) -> (f64, u64) {
    let v = js(c, "return [window.__stall, window.__gaps]").await;
    let gaps = v[1].as_array().cloned().unwrap_or_default();
    for g in &gaps {
        eprintln!(
            "{what}: a {} ms stall, ending with {} rows shown",
            g[0], g[1]
        );
    }
    (v[0].as_f64().unwrap_or(f64::NAN), gaps.len() as u64)
}

/// The page's start, step by step, in a fresh browser for each way of opening it: the User
/// Timing marks the page makes (`browser::mark`), in ms from navigation. "auto" is the page
/// without `?backend=`: ready on the CPU, then WebGPU when its module is warm (`webgpu`).
async fn start_up_steps(origin: &str) {
    const STEPS: [&str; 8] = [
        "boot", "wasm", "mounted", "card", "weights", "worker", "ready", "webgpu",
    ];
    println!("| opened with | {} |", STEPS.join(" | "));
    println!("|---|{}", "---|".repeat(STEPS.len()));
    for (label, query) in [
        ("`?backend=cpu`", "?backend=cpu"),
        ("`?backend=webgpu`", "?backend=webgpu"),
        ("no `?backend=` (auto)", ""),
    ] {
        let (c, _driver) = support::browser().await;
        open_until_ready(&c, &format!("{origin}{PREFIX}{query}")).await;
        if query.is_empty() {
            wait_for(
                &c,
                "return performance.getEntriesByName('xray:webgpu').length > 0",
                300,
                "the move to WebGPU",
            )
            .await;
        }
        let marks = js(
            &c,
            "return Object.fromEntries(performance.getEntriesByType('mark').filter(m => m.name.startsWith('xray:')).map(m => [m.name.slice(5), Math.round(m.startTime)]))",
        )
        .await;
        let cells: Vec<String> = STEPS
            .iter()
            .map(|s| marks[s].as_f64().map_or("–".into(), |v| format!("{v:.0}")))
            .collect();
        println!("| {label} | {} |", cells.join(" | "));
        c.close().await.unwrap();
    }
    println!();
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

/// The mixed batch's 50 files, written once into the target folder: the gallery twice, a
/// 6000 × 5000 PNG (a sample scaled up) and the corpus' first DICOM that classifies.
fn mixed_batch() -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-mixed");
    std::fs::create_dir_all(&dir).unwrap();
    let samples = support::shipped::samples();
    let mut files = Vec::new();
    for round in 0..2 {
        for s in &samples {
            let p = dir.join(format!("{round}-{}", s.file));
            std::fs::copy(&s.path, &p).unwrap();
            files.push(p);
        }
    }
    files.push(corpus::write_thirty_megapixel_png(&samples[0].path, &dir));
    files.push(corpus::write_classified_dicom(&dir));
    files
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let args: Vec<String> = std::env::args().collect();
    let screenshot = args
        .iter()
        .position(|a| a == "--screenshot")
        .and_then(|i| args.get(i + 1).cloned());
    let rounds: usize = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(9);
    let (origin, _log) = serve_dist();
    start_up_steps(&origin).await;
    let n = support::shipped::samples().len();
    let mixed = mixed_batch();
    let mut batches = Vec::new();
    let mut mixed_lines = Vec::new();
    println!(
        "| backend | cold start (ms) | median inference (ms/image, {n} samples) | min | max | median heatmap after it (ms) |"
    );
    println!("|---|---|---|---|---|---|");
    for backend in ["webgpu", "cpu"] {
        let (c, _driver) = support::browser().await;
        let cold = open_until_ready(&c, &format!("{origin}{PREFIX}?backend={backend}")).await;
        let button = loop {
            if let Ok(b) = c
                .find(Locator::Css("[data-testid=classify-all-samples]"))
                .await
            {
                break b;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        };
        js(&c, STALL_TIMER).await;
        button.click().await.unwrap();
        wait_for(
            &c,
            &format!("return document.querySelectorAll('[data-testid=prediction]').length === {n}"),
            900,
            "all samples classified",
        )
        .await;
        let timings = |attr: &'static str| {
            let c = c.clone();
            async move {
                js(&c, &format!("return [...document.querySelectorAll('[data-testid=prediction]')].map(e => parseFloat(e.dataset.{attr}))"))
                    .await
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|v| v.as_f64())
                    .collect::<Vec<f64>>()
            }
        };
        let ms = timings("ms").await;
        let heat = timings("heatmapMs").await;
        let used = js(
            &c,
            "return document.querySelector('[data-testid=prediction]').dataset.backend",
        )
        .await;
        assert_eq!(used, backend, "the page fell back to another backend");
        let min = ms.iter().copied().fold(f64::MAX, f64::min);
        let max = ms.iter().copied().fold(f64::MIN, f64::max);
        println!(
            "| {backend} | {cold:.0} | {:.1} | {min:.1} | {max:.1} | {:.1} |",
            median(ms),
            median(heat)
        );
        // The batch: the gallery `rounds` times more, queued at once.
        let t0 = std::time::Instant::now();
        for _ in 0..rounds {
            button.click().await.unwrap();
        }
        let total = n * (rounds + 1);
        wait_for(
            &c,
            &format!(
                "return document.querySelectorAll('[data-testid=prediction]').length === {total}"
            ),
            3600,
            "the batch",
        )
        .await;
        let wall = t0.elapsed().as_secs_f64();
        let (stall, stalls) = read_stalls(&c, backend).await;
        batches.push(format!(
            "| {backend} | {total} | {wall:.1} | {stall:.0} | {stalls} |"
        ));
        // `cargo bench --bench browser -- --screenshot docs/screenshot.png` saves the page.
        if let Some(path) = screenshot.as_ref().filter(|_| backend == "webgpu") {
            js(
                &c,
                "document.querySelector('[data-testid=dropzone]').scrollIntoView()",
            )
            .await;
            let png = c.screenshot().await.unwrap();
            std::fs::write(Path::new(ROOT).join(path), png).unwrap();
        }
        // The mixed batch, on a page of its own.
        let page = Page::open(&c, &format!("{origin}{PREFIX}?backend={backend}")).await;
        js(&c, STALL_TIMER).await;
        let t0 = std::time::Instant::now();
        page.drop_files(&mixed).await;
        page.wait_for_answers(mixed.len(), 3600).await;
        let wall = t0.elapsed().as_secs_f64();
        let (stall, stalls) = read_stalls(&c, &format!("{backend}, mixed batch")).await;
        let (rows, refused) = page.counts().await;
        mixed_lines.push(format!(
            "| {backend} | {} ({rows} classified, {refused} refused) | {wall:.1} | {stall:.0} | {stalls} |",
            mixed.len(),
        ));
        c.close().await.unwrap();
    }
    println!();
    println!(
        "| backend | mixed batch: files (48 X-rays, a 30-megapixel PNG, a DICOM) | wall time (s) | longest main-thread stall (ms) | stalls over 100 ms |"
    );
    println!("|---|---|---|---|---|");
    for line in mixed_lines {
        println!("{line}");
    }
    println!();
    println!(
        "| backend | images (the first {n} above, then the batch) | batch wall time (s) | longest main-thread stall over all of them (ms) | stalls over 100 ms |"
    );
    println!("|---|---|---|---|---|");
    for line in batches {
        println!("{line}");
    }
    let dist = Path::new(ROOT).join("dist");
    println!();
    for name in [
        "xray-web-fma_bg.wasm",
        "xray-web_bg.wasm",
        "xray-web-gpu_bg.wasm",
        "public/model/model.bpk",
    ] {
        let path = dist.join(name);
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        println!(
            "{name}: {:.2} MB ({:.2} MB gzip)",
            size as f64 / 1e6,
            gzip_size(&path).unwrap_or(0) as f64 / 1e6
        );
    }
    // What the page must fetch before its first prediction (the page, its scripts and style,
    // its module as this Chromium loads it (with relaxed SIMD), the inference worker's script,
    // the card and the weights; on WebGPU the worker's module too), as a static host sends it
    // gzip-compressed (the e2e tests check that a page on the CPU never fetches the WebGPU
    // module, nor the page module's other build).
    let page = [
        "index.html",
        "main.css",
        "public/boot.js",
        "public/wasm-variant.js",
        "xray-web-fma.js",
        "xray-web-fma_bg.wasm",
        "public/infer-worker.js",
        "public/gpu-drill.js",
        "public/model/card.json",
        "public/model/model.bpk",
    ];
    let gpu = ["xray-web-gpu.js", "xray-web-gpu_bg.wasm"];
    let gzip_total = |files: &[&str]| -> u64 {
        files
            .iter()
            .map(|f| gzip_size(&dist.join(f)).unwrap_or(0))
            .sum()
    };
    let cpu_bytes = gzip_total(&page);
    println!(
        "before the first prediction, gzip: CPU {:.2} MB, WebGPU {:.2} MB",
        cpu_bytes as f64 / 1e6,
        (cpu_bytes + gzip_total(&gpu)) as f64 / 1e6
    );
}
