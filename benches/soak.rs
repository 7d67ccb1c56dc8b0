//! Soak benchmark (not a test): 5,000 classifications in one page on the CPU backend and 1,000
//! on WebGPU, the gallery's 24 X-rays over and over (the results cleared after each round, as a
//! visitor clears them), with the page's wasm memory, the JS heap and the renderer's resident
//! memory every 500 classifications, and the renderer's once more after a (simulated) critical
//! memory-pressure signal, which makes Chromium drop what it only caches. Memory that keeps
//! growing after the first 500 and survives that signal is a leak.
//!
//! `trunk build --release && cargo bench --bench soak` (about 15 minutes on 2 cores;
//! `-- --cpu N --webgpu N --every N` for other counts and sampling). The renderer figure sums the resident memory of
//! this browser's renderer processes (read from /proc, so Linux only).

#![allow(clippy::unwrap_used, clippy::expect_used)] // bench code: a failed unwrap is a failed run

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Instant;

use serde_json::json;
use support::{PREFIX, cdp, js, open_until_ready, serve_dist, wait_for};

/// Resident memory of this run's renderer processes, in MB, summed: total, anonymous, file-backed
/// and shared (`/proc/PID/status`'s `VmRSS`, `RssAnon`, `RssFile`, `RssShmem`).
#[derive(Default, Clone, Copy)]
struct Resident {
    total: f64,
    anon: f64,
    file: f64,
    shmem: f64,
}

/// Resident memory of every renderer process descended from this run's browser.
fn renderer_mb() -> Resident {
    let procs: Vec<(u32, u32, String, Resident)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            let status = std::fs::read_to_string(e.path().join("status")).ok()?;
            let field = |name: &str| {
                status
                    .lines()
                    .find(|l| l.starts_with(name))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<f64>().ok())
            };
            let ppid = field("PPid:")? as u32;
            let mb = |name: &str| field(name).unwrap_or(0.0) / 1024.0;
            let r = Resident {
                total: mb("VmRSS:"),
                anon: mb("RssAnon:"),
                file: mb("RssFile:"),
                shmem: mb("RssShmem:"),
            };
            Some((pid, ppid, cmd, r))
        })
        .collect();
    let profile = format!("xray-e2e-profile-{}-", std::process::id());
    let mut ours: Vec<u32> = procs
        .iter()
        .filter(|p| p.2.contains(&profile) && !p.2.contains("--type="))
        .map(|p| p.0)
        .collect();
    // Descendants (renderers are forked by the zygote, a child of the browser).
    loop {
        let more: Vec<u32> = procs
            .iter()
            .filter(|p| ours.contains(&p.1) && !ours.contains(&p.0))
            .map(|p| p.0)
            .collect();
        if more.is_empty() {
            break;
        }
        ours.extend(more);
    }
    procs
        .iter()
        .filter(|p| ours.contains(&p.0) && p.2.contains("--type=renderer"))
        .fold(Resident::default(), |a, p| Resident {
            total: a.total + p.3.total,
            anon: a.anon + p.3.anon,
            file: a.file + p.3.file,
            shmem: a.shmem + p.3.shmem,
        })
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let (origin, _log) = serve_dist();
    let per_round = support::shipped::samples().len();
    for (backend, total) in [
        ("cpu", arg("--cpu", 5_000)),
        ("webgpu", arg("--webgpu", 1_000)),
    ] {
        if total == 0 {
            continue;
        }
        let (c, _driver) = support::browser().await;
        open_until_ready(&c, &format!("{origin}{PREFIX}?backend={backend}")).await;
        println!("\n{backend}: {total} classifications, {per_round} per round");
        println!(
            "| classifications | wasm memory (MB) | JS heap (MB) | renderer (MB) | of it anonymous / file / shared | DOM nodes / JS listeners | wall ms/image since the last line |"
        );
        println!("|---|---|---|---|---|---|---|");
        let sample = |done: usize, ms: f64| {
            let c = c.clone();
            async move {
                // Garbage first (detached rows and their listeners wait for it), so that what
                // is counted is what the page holds.
                cdp(&c, "HeapProfiler.collectGarbage", json!({})).await;
                let v = js(
                    &c,
                    "return [+document.querySelector('[data-testid=model-status]').dataset.wasmMb, performance.memory ? performance.memory.usedJSHeapSize / 1e6 : NaN]",
                )
                .await;
                let r = renderer_mb();
                let dom = cdp(&c, "Memory.getDOMCounters", json!({})).await;
                println!(
                    "| {done} | {:.1} | {:.1} | {:.0} | {:.0} / {:.0} / {:.0} | {} / {} | {ms:.1} |",
                    v[0].as_f64().unwrap_or(f64::NAN),
                    v[1].as_f64().unwrap_or(f64::NAN),
                    r.total,
                    r.anon,
                    r.file,
                    r.shmem,
                    dom["nodes"],
                    dom["jsEventListeners"]
                );
            }
        };
        sample(0, f64::NAN).await;
        let mut done = 0;
        let mut since = Instant::now();
        let every = arg("--every", 500);
        let mut next = every;
        let mut last = 0;
        let mut backend_used = String::new();
        while done < total {
            js(
                &c,
                "document.querySelector('[data-testid=classify-all-samples]').click()",
            )
            .await;
            wait_for(
                &c,
                &format!("return document.querySelectorAll('[data-testid=prediction]').length === {per_round}"),
                600,
                "a round of classifications",
            )
            .await;
            if backend_used.is_empty() {
                backend_used = js(
                    &c,
                    "return document.querySelector('[data-testid=prediction]').dataset.backend",
                )
                .await
                .as_str()
                .unwrap_or_default()
                .to_string();
                assert_eq!(
                    backend_used, backend,
                    "the page fell back to another backend"
                );
            }
            done += per_round;
            js(
                &c,
                "[...document.querySelectorAll('button')].find(b => b.textContent.trim() === 'Clear').click()",
            )
            .await;
            wait_for(
                &c,
                "return document.querySelectorAll('[data-testid=prediction]').length === 0",
                60,
                "the results cleared",
            )
            .await;
            if done >= next || done >= total {
                let ms = since.elapsed().as_secs_f64() * 1000.0 / (done - last) as f64;
                sample(done, ms).await;
                since = Instant::now();
                last = done;
                while next <= done {
                    next += every;
                }
            }
        }
        // What grows in the renderer is Chromium's own purgeable caches (decoded images, in
        // discardable shared memory) unless it survives a memory-pressure signal.
        cdp(
            &c,
            "Memory.simulatePressureNotification",
            json!({ "level": "critical" }),
        )
        .await;
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        let r = renderer_mb();
        println!(
            "| after a critical memory-pressure signal | | | {:.0} | {:.0} / {:.0} / {:.0} | | |",
            r.total, r.anon, r.file, r.shmem
        );
        c.close().await.unwrap();
    }
}
