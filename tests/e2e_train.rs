//! End to end, demo training: in headless Chromium on the CPU backend and on WebGPU
//! (SwiftShader), a short fine-tune on the bundled X-rays runs to `done`, the curves and the
//! validation grid update, pause/resume/stop work, the fine-tuned model predicts next to the
//! shipped one, and its weights downloaded and loaded back give the same predictions. One
//! behaviour per test, sharing one browser; the page objects in `support::page` hold every
//! selector. Run by `.ci/test` after `trunk build --release`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test
#![cfg(not(target_arch = "wasm32"))]

mod support;

use std::path::{Path, PathBuf};

use serde_json::json;
use support::{
    PREFIX,
    page::{Page, Settings},
    serve_dist, shipped, with_browser,
};
use xray_web::ml::class::Class;

/// A gallery X-ray to classify with the fine-tuned model.
fn an_xray() -> PathBuf {
    shipped::first_of(Class::Normal).path.into()
}

/// A 1-epoch run of `mode` on 4 + 4 images, batch 4: two steps.
fn short(mode: &'static str) -> Settings {
    Settings {
        mode: Some(mode),
        epochs: Some(1),
        batch: Some(4),
        per_class: Some(4),
    }
}

/// A one-step run: 1 epoch, batch 8, 4 + 4 images.
const ONE_STEP: Settings = Settings {
    mode: None,
    epochs: Some(1),
    batch: Some(8),
    per_class: Some(4),
};

/// Runs [`short`] of `mode` and checks every panel it fills: status, curves, grid, evaluations.
async fn short_run_fills_every_panel(page: &Page, mode: &'static str) {
    let training = page.training();
    assert_eq!(training.status().await.state, "idle");
    let s = training.run(&short(mode), 900).await;
    assert_eq!((s.epoch, s.step), (1, 2), "{s:?}");
    let loss: f64 = s.loss.as_deref().unwrap().parse().unwrap();
    assert!(loss.is_finite() && loss >= 0.0, "{s:?}");
    let acc: f64 = s.acc.as_deref().unwrap().parse().unwrap();
    assert!((0.0..=1.0).contains(&acc), "{s:?}");
    assert!(s.ips > 0.0, "{s:?}");
    // Curves: two step losses and the validation points before and after.
    let (points, lines) = training.curves().await;
    assert_eq!(points, 2);
    assert!(lines >= 3, "{lines} polylines");
    // The grid shows the 4 validation images after the last step.
    let (step, grid) = training.grid().await;
    assert_eq!(step, "2");
    assert_eq!(grid.len(), 4, "{grid:?}");
    for item in &grid {
        assert_eq!(item.wrong, item.truth != item.predicted, "{item:?}");
    }
    for e in training.evaluations().await {
        let e = e.expect("an evaluation before and after");
        assert_eq!((e.n, e.cells), (4, 4), "{e:?}");
        assert!((0.0..=1.0).contains(&e.auc), "{e:?}");
    }
    assert!(training.tuned_loaded().await);
}

#[test]
#[ignore = "needs dist/ (trunk build --release) and chromedriver; run by .ci/test"]
fn a_whole_network_run_on_the_cpu_fills_every_panel_and_predicts_beside_the_shipped_model() {
    with_browser(|c| async move {
        let (origin, _log) = serve_dist();
        let page = Page::open(&c, &format!("{origin}{PREFIX}?backend=cpu")).await;
        short_run_fills_every_panel(&page, "whole").await;
        let row = page.classify(&an_xray()).await;
        let tuned = row
            .tuned_p
            .expect("a fine-tuned prediction next to the shipped one");
        assert!((0.0..=1.0).contains(&tuned));
        // Every training panel is on screen now: none may break accessibility.
        let violations = page.accessibility_violations().await;
        assert_eq!(violations, json!([]), "training panels: {violations:#}");
    });
}

#[test]
#[ignore = "needs dist/ (trunk build --release) and chromedriver; run by .ci/test"]
fn a_run_pauses_without_stepping_resumes_and_stops_early() {
    with_browser(|c| async move {
        let (origin, _log) = serve_dist();
        let page = Page::open(&c, &format!("{origin}{PREFIX}?backend=cpu")).await;
        let training = page.training();
        training
            .configure(&Settings {
                mode: Some("whole"),
                epochs: Some(20),
                batch: Some(4),
                per_class: Some(20),
            })
            .await;
        training.start().await;
        training.wait_past_step(0, 300).await;
        training.pause_or_resume().await;
        let paused = training.wait_for_state(&["paused"], 120).await;
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        let still = training.status().await;
        assert_eq!(still.state, "paused");
        assert_eq!(still.step, paused.step, "no step while paused");
        training.pause_or_resume().await;
        training.wait_past_step(paused.step, 300).await;
        training.stop().await;
        let stopped = training.wait_for_state(&["done"], 300).await;
        assert!(stopped.epoch < 20, "{stopped:?}");
        assert!(stopped.text.contains("stopped"), "{}", stopped.text);
    });
}

#[test]
#[ignore = "needs dist/ (trunk build --release) and chromedriver; run by .ci/test"]
fn a_head_run_on_webgpu_downloads_weights_that_predict_the_same_when_loaded_back() {
    with_browser(|c| async move {
        let (origin, log) = serve_dist();
        let url = format!("{origin}{PREFIX}?backend=webgpu");
        let page = Page::open(&c, &url).await;
        short_run_fills_every_panel(&page, "head").await;
        let tuned = page.classify(&an_xray()).await.tuned_p.unwrap();
        let bytes = page.training().download_weights().await;
        assert!(bytes.len() > 1_000_000, "{} bytes", bytes.len());
        let file = std::env::temp_dir().join(format!("xray-e2e-tuned-{}.bpk", std::process::id()));
        std::fs::write(&file, &bytes).unwrap();

        // A fresh page: the shipped model only, then the downloaded weights loaded from disk.
        let page = Page::open(&c, &url).await;
        assert!(!page.training().tuned_loaded().await);
        page.training().load_weights(&file).await;
        let reloaded = page.classify(&an_xray()).await.tuned_p.unwrap();
        assert!(
            (tuned - reloaded).abs() < 1e-5,
            "fine-tuned {tuned} vs reloaded {reloaded}"
        );

        let served = log.lock().unwrap().clone();
        assert!(served.iter().all(|p| p.starts_with(PREFIX)), "{served:?}");
        assert!(served.iter().any(|p| p.ends_with("subset.bin")));
    });
}

#[test]
#[ignore = "needs dist/ (trunk build --release) and chromedriver; run by .ci/test"]
fn a_file_that_is_not_weights_gets_a_message_naming_it() {
    with_browser(|c| async move {
        let (origin, _log) = serve_dist();
        let page = Page::open(&c, &format!("{origin}{PREFIX}?backend=cpu")).await;
        let junk =
            Path::new(&std::env::temp_dir()).join(format!("junk-{}.bpk", std::process::id()));
        std::fs::write(&junk, "not weights").unwrap();
        let message = page.training().refused_weights(&junk).await;
        assert!(
            message.contains(&*junk.file_name().unwrap().to_string_lossy()),
            "{message}"
        );
        assert!(!page.training().tuned_loaded().await);
        assert!((0.0..=1.0).contains(&page.classify(&an_xray()).await.p()));
    });
}

#[test]
#[ignore = "needs dist/ (trunk build --release) and chromedriver; run by .ci/test"]
fn a_lost_gpu_ends_the_run_with_its_remedy_and_the_page_goes_on() {
    with_browser(|c| async move {
        let (origin, _log) = serve_dist();
        // The failure drill destroys the training worker's WebGPU device after step 2.
        let page = Page::open(
            &c,
            &format!("{origin}{PREFIX}?backend=webgpu&lose-gpu-at-step=2"),
        )
        .await;
        let training = page.training();
        let settings = Settings {
            mode: Some("head"),
            epochs: Some(2),
            batch: Some(4),
            per_class: Some(8),
        };
        training.configure(&settings).await;
        training.start().await;
        let status = training.wait_for_state(&["error", "done"], 600).await;
        assert_eq!(status.state, "error", "{status:?}");
        assert_eq!(
            status.step, 2,
            "the steps before the loss are kept: {status:?}"
        );
        assert!(
            status.text.contains("GPU stopped answering"),
            "{}",
            status.text
        );
        assert!(status.text.contains("smaller batch"), "{}", status.text);
        // Only the worker died: no fatal banner, and the shipped model still classifies.
        assert!(!page.fatal_banner_shown().await);
        let row = page.classify(&an_xray()).await;
        assert!(
            (0.0..=1.0).contains(&row.p()) && row.tuned_p.is_none(),
            "{row:?}"
        );
        // And a new run (one step, before the drill's step) trains to the end on a new worker.
        let s = training.run(&ONE_STEP, 600).await;
        assert_eq!(s.step, 1, "{s:?}");
        assert!(training.tuned_loaded().await);
    });
}

#[test]
#[ignore = "needs dist/ (trunk build --release) and chromedriver; run by .ci/test"]
fn a_worker_without_webgpu_trains_on_the_cpu_and_says_so() {
    with_browser(|c| async move {
        let (origin, _log) = serve_dist();
        // A browser that offers WebGPU to the page but not to workers.
        let page = Page::open(
            &c,
            &format!("{origin}{PREFIX}?backend=webgpu&train-worker-webgpu=off"),
        )
        .await;
        let s = page.training().run(&ONE_STEP, 600).await;
        assert_eq!(s.step, 1, "{s:?}");
        assert_eq!(s.backend.as_deref(), Some("cpu"), "{s:?}");
        assert!(page.training().tuned_info().await.contains("CPU"));
    });
}
