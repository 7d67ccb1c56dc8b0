//! End to end: the built `dist/` served under a sub-path on 127.0.0.1, driven in headless
//! Chromium through chromedriver, one behaviour per test, the tests sharing one browser. The
//! page objects in `support::page` hold every selector. Run by `.ci/test` after
//! `trunk build --release`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test
#![cfg(not(target_arch = "wasm32"))]

mod corpus;
mod support;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::{Value, json};
use support::{
    PREFIX, ROOT,
    page::{Page, Prediction},
    serve_dist, shipped, wait_for, with_browser,
};
use xray_web::ml::class::Class;

/// A scratch folder of this test's own.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xray-e2e-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A NORMAL X-ray, a file that is not an image, and a PNEUMONIA X-ray.
fn two_xrays_and_a_non_image() -> Vec<PathBuf> {
    let bad = scratch("mixed").join("notes.png");
    std::fs::write(&bad, "this is not an image").unwrap();
    vec![
        shipped::first_of(Class::Normal).path.into(),
        bad,
        shipped::first_of(Class::Pneumonia).path.into(),
    ]
}

/// Opens the page on `backend`, drops [`two_xrays_and_a_non_image`] and returns the two rows.
async fn classify_on(c: &fantoccini::Client, base: &str, backend: &str) -> Vec<Prediction> {
    let page = Page::open(c, &format!("{base}?backend={backend}")).await;
    assert_eq!(page.inference_runs_in().await.0, "worker");
    page.drop_files(&two_xrays_and_a_non_image()).await;
    page.wait_for_results(2, 1, 300).await;
    let refusals = page.refusals().await;
    assert!(
        refusals[0].text.contains("notes.png"),
        "the message names the file: {refusals:?}"
    );
    let rows = page.predictions().await;
    for row in &rows {
        assert_eq!(row.backend, backend, "{row:?}");
        assert!(row.label == "NORMAL" || row.label == "PNEUMONIA", "{row:?}");
        assert!(
            row.p_text.split('.').nth(1).is_some_and(|d| d.len() >= 4),
            "4 decimals: {row:?}"
        );
        assert!((0.0..=1.0).contains(&row.p()), "{row:?}");
        assert!(row.ms > 0.0, "{row:?}");
    }
    rows
}

/// `xray predict --json` on `files`: (file name, P(pneumonia), the whole line).
fn cli_predict(files: &[PathBuf]) -> Vec<(String, Value)> {
    let out = Command::new(env!("CARGO_BIN_EXE_xray"))
        .args(["predict", "--json"])
        .args(files)
        .current_dir(ROOT)
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let name = Path::new(v["file"].as_str().unwrap())
                .file_name()
                .unwrap()
                .to_string_lossy()
                .to_string();
            (name, v)
        })
        .collect()
}

#[test]
#[ignore = "needs dist/ (trunk build --release) and chromedriver; run by .ci/test"]
fn webgpu_and_cpu_give_the_same_probabilities_and_a_non_image_is_refused_by_name() {
    with_browser(|c| async move {
        let (origin, _log) = serve_dist();
        let base = format!("{origin}{PREFIX}");
        let cpu = classify_on(&c, &base, "cpu").await;
        let gpu = classify_on(&c, &base, "webgpu").await;
        for row in &cpu {
            let other = gpu.iter().find(|g| g.file == row.file).unwrap();
            assert!(
                (row.p() - other.p()).abs() < 1e-3,
                "{}: CPU {} vs WebGPU {}",
                row.file,
                row.p(),
                other.p()
            );
            // The same heatmap on both backends, cell by cell.
            assert_eq!(row.heatmap_size.as_deref(), Some("8x8"), "{row:?}");
            let (a, b) = (row.heatmap(), other.heatmap());
            assert_eq!((a.len(), b.len()), (64, 64), "{}", row.file);
            let worst = a
                .iter()
                .zip(&b)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f64::max);
            println!("{}: heatmaps differ by at most {worst:.4}", row.file);
            assert!(worst <= 0.02, "{}: heatmaps differ by {worst}", row.file);
        }
    });
}

#[test]
#[ignore = "needs dist/ (trunk build --release) and chromedriver; run by .ci/test"]
fn the_command_line_gives_the_page_s_probabilities_and_heatmaps() {
    with_browser(|c| async move {
        let (origin, _log) = serve_dist();
        let page = classify_on(&c, &format!("{origin}{PREFIX}"), "cpu").await;
        let files = two_xrays_and_a_non_image();
        let out = Command::new(env!("CARGO_BIN_EXE_xray"))
            .args(["explain", "--json"])
            .args(&files)
            .current_dir(ROOT)
            .output()
            .unwrap();
        for line in String::from_utf8(out.stdout).unwrap().lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            let Some(values) = v["heatmap"]["values"].as_array() else {
                continue;
            };
            let name = Path::new(v["file"].as_str().unwrap())
                .file_name()
                .unwrap()
                .to_string_lossy()
                .to_string();
            let row = page.iter().find(|r| r.file == name).unwrap();
            let shown = row.heatmap();
            assert_eq!(shown.len(), values.len());
            for (a, b) in shown.iter().zip(values) {
                assert!(
                    (a - b.as_f64().unwrap()).abs() <= 0.02,
                    "{name:?}: {a} vs {b}"
                );
            }
        }
        let cli = cli_predict(&files);
        for (name, line) in &cli {
            if let Some(p) = line["p_pneumonia"].as_f64() {
                let row = page.iter().find(|r| &r.file == name).unwrap();
                assert!(
                    (p - row.p()).abs() < 1e-3,
                    "{name}: CLI {p} vs page {}",
                    row.p()
                );
            }
        }
        assert_eq!(
            cli.iter().filter(|(_, l)| l["error"].is_string()).count(),
            1
        );
    });
}

#[test]
#[ignore = "needs dist/ (trunk build --release) and chromedriver; run by .ci/test"]
fn a_gallery_sample_shows_its_true_label_and_the_card_its_training_curve() {
    with_browser(|c| async move {
        let (origin, _log) = serve_dist();
        let page = Page::open(&c, &format!("{origin}{PREFIX}?backend=cpu")).await;
        let row = page.classify_first_sample().await;
        assert!(
            row.truth
                .as_deref()
                .is_some_and(|t| t.starts_with("true: ")),
            "{row:?}"
        );
        assert!(page.card_has_curve().await);
    });
}

#[test]
#[ignore = "needs dist/ (trunk build --release) and chromedriver; run by .ci/test"]
fn no_request_leaves_the_origin_or_the_sub_path() {
    with_browser(|c| async move {
        let (origin, log) = serve_dist();
        let base = format!("{origin}{PREFIX}");
        for backend in ["webgpu", "cpu"] {
            let page = Page::open(&c, &format!("{base}?backend={backend}")).await;
            page.drop_files(&two_xrays_and_a_non_image()).await;
            page.wait_for_results(2, 1, 300).await;
            page.classify_first_sample().await;
            for url in page.requested_urls().await {
                assert!(
                    url.starts_with(&origin)
                        || url.starts_with("blob:")
                        || url.starts_with("data:"),
                    "off-origin request: {url}"
                );
            }
        }
        let served = log.lock().unwrap().clone();
        assert!(
            served.iter().all(|p| p.starts_with(PREFIX)),
            "requests outside the sub-path: {served:?}"
        );
        assert!(served.iter().any(|p| p.ends_with("model.bpk")));
    });
}

#[test]
#[ignore = "needs dist/ (trunk build --release) and chromedriver; run by .ci/test"]
fn every_hostile_file_is_classified_flagged_or_refused_and_the_page_goes_on() {
    with_browser(|c| async move {
        let (origin, _log) = serve_dist();
        let cases = corpus::cases();
        let paths = corpus::write(&cases.iter().collect::<Vec<_>>(), &scratch("corpus"));
        let page = Page::open(&c, &format!("{origin}{PREFIX}?backend=cpu")).await;
        page.drop_files(&paths).await;
        page.wait_for_answers(cases.len(), 600).await;
        let rows = page.predictions().await;
        let refusals = page.refusals().await;
        let row = |name: &str| rows.iter().find(|r| r.file == name);
        let plain = row("plain.jpeg").expect("plain.jpeg classified").p();
        for case in &cases {
            match &case.expect {
                corpus::Expect::Same => {
                    let r = row(case.name)
                        .unwrap_or_else(|| panic!("{} not classified: {refusals:?}", case.name));
                    assert!(
                        (r.p() - plain).abs() < 0.05,
                        "{}: {r:?} vs {plain}",
                        case.name
                    );
                    assert!(!r.ood, "{}: {r:?}", case.name);
                }
                corpus::Expect::Ood => {
                    let r =
                        row(case.name).unwrap_or_else(|| panic!("{} not classified", case.name));
                    assert!(
                        r.ood && r.ood_warning,
                        "{}: flagged and warned: {r:?}",
                        case.name
                    );
                }
                corpus::Expect::Refused(text) => {
                    let e = refusals
                        .iter()
                        .find(|e| e.file == case.name)
                        .unwrap_or_else(|| panic!("{} not refused", case.name));
                    assert!(
                        e.text.contains(case.name) && e.text.contains(text),
                        "{}: {e:?}",
                        case.name
                    );
                }
            }
        }
        assert_eq!(page.model_state().await, "ready");
    });
}

#[test]
#[ignore = "needs dist/ (trunk build --release) and chromedriver; run by .ci/test"]
fn refusing_every_hostile_file_costs_the_page_at_most_64_mb_and_the_next_x_ray_classifies() {
    with_browser(|c| async move {
        let (origin, _log) = serve_dist();
        let page = Page::open(&c, &format!("{origin}{PREFIX}?backend=cpu")).await;
        let xray: PathBuf = shipped::first_of(Class::Pneumonia).path.into();
        page.classify(&xray).await;
        let before = page.wasm_memory_mb().await;
        let cases = corpus::cases();
        let refused: Vec<&corpus::Case> = cases
            .iter()
            .filter(|c| matches!(c.expect, corpus::Expect::Refused(_)))
            .collect();
        let mut files = corpus::write(&refused, &scratch("budget"));
        let found = Path::new(ROOT).join("tests/fuzz");
        for entry in std::fs::read_dir(&found).unwrap().flatten() {
            files.push(entry.path().display().to_string());
        }
        page.drop_files(&files).await;
        page.wait_for_answers(files.len() + 1, 600).await;
        assert_eq!(
            page.refusals().await.len(),
            files.len(),
            "every file got its message"
        );
        let after = page.wasm_memory_mb().await;
        eprintln!(
            "page wasm memory: {before:.1} MB before, {after:.1} MB after {} refused files",
            files.len()
        );
        assert!(
            after - before <= 64.0,
            "wasm memory grew from {before} MB to {after} MB"
        );
        let row = page.classify(&xray).await;
        assert!((0.0..=1.0).contains(&row.p()), "{row:?}");
    });
}

#[test]
#[ignore = "needs dist/ (trunk build --release) and chromedriver; run by .ci/test"]
fn a_gpu_lost_while_classifying_moves_the_page_to_the_cpu_and_every_image_gets_its_result() {
    with_browser(|c| async move {
        let (origin, _log) = serve_dist();
        // The drill destroys the page's WebGPU device once two images are classified on it.
        let page = Page::open(
            &c,
            &format!("{origin}{PREFIX}?backend=webgpu&lose-gpu-at-image=2"),
        )
        .await;
        assert_eq!(page.backend().await, "webgpu");
        let files: Vec<PathBuf> = shipped::samples()
            .into_iter()
            .take(6)
            .map(|s| s.path.into())
            .collect();
        page.drop_files(&files).await;
        page.wait_for_results(files.len(), 0, 300).await;
        let mut rows = page.predictions().await;
        rows.reverse(); // in the order dropped
        let backends: Vec<&str> = rows.iter().map(|r| r.backend.as_str()).collect();
        assert_eq!(
            backends,
            ["webgpu", "webgpu", "cpu", "cpu", "cpu", "cpu"],
            "{rows:?}"
        );
        for (row, file) in rows.iter().zip(&files) {
            assert!(file.ends_with(&row.file), "{row:?}");
            assert!((0.0..=1.0).contains(&row.p()), "{row:?}");
        }
        let note = page.backend_note().await;
        assert!(
            note.contains("GPU stopped answering") && note.contains("switched to the CPU"),
            "{note}"
        );
        assert_eq!(page.backend().await, "cpu");
        assert_eq!(page.model_state().await, "ready");
        assert!(!page.fatal_banner_shown().await);
        // The CPU's answers are the CPU's: the re-run image agrees with the CLI.
        let cli = cli_predict(&files[2..3]);
        let p = cli[0].1["p_pneumonia"].as_f64().unwrap();
        assert!(
            (p - rows[2].p()).abs() < 1e-3,
            "CLI {p} vs page {:?}",
            rows[2]
        );
    });
}

#[test]
#[ignore = "needs dist/ (trunk build --release) and chromedriver; run by .ci/test"]
fn the_inference_worker_reads_a_30_megapixel_png_and_a_dicom_and_the_viewer_shows_them() {
    with_browser(|c| async move {
        let (origin, _log) = serve_dist();
        let dir = scratch("worker");
        // A 6000 × 5000 PNG: the first PNEUMONIA sample, scaled up.
        let big =
            corpus::write_thirty_megapixel_png(shipped::first_of(Class::Pneumonia).path, &dir);
        let dicom = corpus::write_classified_dicom(&dir);
        let sample: PathBuf = shipped::first_of(Class::Normal).path.into();
        let page = Page::open(&c, &format!("{origin}{PREFIX}?backend=cpu")).await;
        assert_eq!(
            page.inference_runs_in().await,
            ("worker".into(), String::new())
        );
        let files = [big.clone(), dicom.clone(), sample.clone()];
        page.drop_files(&files).await;
        page.wait_for_results(3, 0, 300).await;
        // The worker's answers are the CLI's.
        let cli = cli_predict(&files);
        let rows = page.predictions().await;
        for (name, line) in &cli {
            let row = rows.iter().find(|r| &r.file == name).unwrap();
            let p = line["p_pneumonia"].as_f64().unwrap();
            assert!((p - row.p()).abs() < 1e-3, "CLI {p} vs page {row:?}");
        }
        // The viewer's decode runs in the worker too, at the file's own size.
        let viewer = page.viewer();
        viewer.open("thirty-megapixels.png").await;
        let status = viewer.text_of("viewer-status").await;
        assert!(
            status.contains("6000 × 5000 pixels, shown downscaled to 4096 × 3413"),
            "{status}"
        );
        assert!(!page.fatal_banner_shown().await);
    });
}

#[test]
#[ignore = "needs dist/ (trunk build --release) and chromedriver; run by .ci/test"]
fn without_an_inference_worker_the_page_classifies_in_its_own_thread_and_says_so() {
    with_browser(|c| async move {
        let (origin, _log) = serve_dist();
        // The drill points the page at a worker script that is not there.
        let page = Page::open(
            &c,
            &format!("{origin}{PREFIX}?backend=cpu&infer-worker=missing"),
        )
        .await;
        let (runs_in, note) = page.inference_runs_in().await;
        assert_eq!(runs_in, "page");
        assert!(
            note.contains("No inference worker could start") && note.contains("may pause"),
            "{note}"
        );
        let files = two_xrays_and_a_non_image();
        page.drop_files(&files).await;
        page.wait_for_results(2, 1, 300).await;
        let cli = cli_predict(&[files[0].clone(), files[2].clone()]);
        let rows = page.predictions().await;
        for (name, line) in &cli {
            let row = rows.iter().find(|r| &r.file == name).unwrap();
            let p = line["p_pneumonia"].as_f64().unwrap();
            assert!((p - row.p()).abs() < 1e-3, "CLI {p} vs page {row:?}");
        }
    });
}

#[test]
#[ignore = "needs dist/ (trunk build --release) and chromedriver; run by .ci/test"]
fn a_worker_that_dies_costs_only_the_file_it_held_and_a_new_one_takes_the_rest() {
    with_browser(|c| async move {
        let (origin, _log) = serve_dist();
        // The drill kills each worker on the second file it is asked to classify.
        let page = Page::open(
            &c,
            &format!("{origin}{PREFIX}?backend=cpu&crash-worker-at-image=2"),
        )
        .await;
        let files: Vec<PathBuf> = shipped::samples()
            .into_iter()
            .take(3)
            .map(|s| s.path.into())
            .collect();
        page.drop_files(&files).await;
        page.wait_for_results(2, 1, 300).await;
        let refusals = page.refusals().await;
        let second = files[1].file_name().unwrap().to_string_lossy().to_string();
        assert!(
            refusals[0].text.contains(&second)
                && refusals[0]
                    .text
                    .contains("the inference worker stopped (the crash drill)"),
            "{refusals:?}"
        );
        let mut rows = page.predictions().await;
        rows.reverse();
        let cli = cli_predict(&[files[0].clone(), files[2].clone()]);
        for (row, (name, line)) in rows.iter().zip(&cli) {
            assert_eq!(&row.file, name);
            let p = line["p_pneumonia"].as_f64().unwrap();
            assert!((p - row.p()).abs() < 1e-3, "CLI {p} vs page {row:?}");
        }
        assert_eq!(page.inference_runs_in().await.0, "worker");
        assert_eq!(page.model_state().await, "ready");
        assert!(!page.fatal_banner_shown().await);
    });
}

#[test]
#[ignore = "needs dist/ (trunk build --release) and chromedriver; run by .ci/test"]
fn an_inference_worker_without_webgpu_classifies_on_the_cpu_and_says_so() {
    with_browser(|c| async move {
        let (origin, _log) = serve_dist();
        // A browser that offers WebGPU to the page but not to workers.
        let page = Page::open(
            &c,
            &format!("{origin}{PREFIX}?backend=webgpu&infer-worker-webgpu=off"),
        )
        .await;
        assert_eq!(page.backend().await, "cpu");
        let note = page.backend_note().await;
        assert!(
            note.contains("does not offer WebGPU") && note.contains("using the CPU instead"),
            "{note}"
        );
        page.click_first_sample().await;
        assert_eq!(page.predictions().await[0].backend, "cpu");
    });
}

#[test]
#[ignore = "needs dist/ (trunk build --release) and chromedriver; run by .ci/test"]
fn dicom_attributes_are_shown_and_patient_identifiers_never() {
    with_browser(|c| async move {
        let (origin, _log) = serve_dist();
        let cases = corpus::cases();
        let dicoms: Vec<&corpus::Case> = cases
            .iter()
            .filter(|c| {
                c.bytes.get(128..132) == Some(b"DICM".as_slice())
                    && !matches!(c.expect, corpus::Expect::Refused(_))
            })
            .collect();
        let paths = corpus::write(&dicoms, &scratch("dicom"));
        let page = Page::open(&c, &format!("{origin}{PREFIX}?backend=cpu")).await;
        page.drop_files(&paths).await;
        page.wait_for_answers(dicoms.len(), 600).await;
        let meta = page.dicom_info().await;
        assert!(meta.len() >= 8, "{meta:?}");
        assert!(meta.iter().any(|m| m.contains("CHEST")), "{meta:?}");
        // Browsers cannot show DICOM; the page's own small PNG thumbnails can.
        let thumbs = page.thumbnails().await;
        assert_eq!(thumbs.len(), dicoms.len());
        for t in &thumbs {
            let (w, h) = t.expect("every DICOM row has a thumbnail");
            assert!(w.max(h) == 144 && w.min(h) >= 1, "{thumbs:?}");
        }
        let text = page.text().await;
        assert!(
            !text.contains("DOE") && !text.contains("PATIENT-ID"),
            "{text}"
        );
    });
}

#[test]
#[ignore = "needs dist/ (trunk build --release) and chromedriver; run by .ci/test"]
fn after_one_visit_the_app_works_offline() {
    with_browser(|c| async move {
        let (origin, _log) = serve_dist();
        let base = format!("{origin}{PREFIX}?backend=cpu");
        let page = Page::open(&c, &base).await;
        let c = page.client();
        page.wait_for_service_worker().await;
        let files = support::js(c, "return fetch('sw.js').then(r => r.text()).then(t => t.match(/const FILES = (\\[.*\\]);/)[1])").await;
        let files = serde_json::from_str::<Vec<String>>(files.as_str().unwrap()).unwrap();
        let n = files.len();
        // Every file at install but the WebGPU module's two, which are cached once a page on
        // WebGPU has loaded them, and the plain build of the page's module, which this
        // Chromium (it has relaxed SIMD) never loads.
        let gpu = files
            .iter()
            .filter(|f| f.starts_with("xray-web-gpu"))
            .count();
        assert_eq!(gpu, 2, "{files:?}");
        let plain = ["xray-web.js", "xray-web_bg.wasm"];
        assert!(
            plain.iter().all(|p| files.iter().any(|f| f == p)),
            "{files:?}"
        );
        let cached = |at_least: usize| async move {
            c.execute_async(
                "const done = arguments[arguments.length - 1]; const poll = () => caches.keys().then(ks => Promise.all(ks.map(k => caches.open(k).then(c => c.keys())))).then(ls => { const m = Math.max(0, ...ls.map(l => l.length)); if (m >= arguments[0]) done(m); else setTimeout(poll, 250); }); poll();",
                vec![json!(at_least)],
            )
            .await
            .unwrap()
            .as_u64()
            .unwrap() as usize
        };
        let at_install = n - gpu - plain.len();
        assert_eq!(cached(at_install).await, at_install, "precached at install");
        let on_webgpu = format!("{origin}{PREFIX}?backend=webgpu");
        Page::open(c, &on_webgpu).await;
        assert_eq!(
            cached(n - plain.len()).await,
            n - plain.len(),
            "the WebGPU module cached once used"
        );

        let _offline = support::Offline::now();
        let probe = c
            .execute_async(
                "const done = arguments[arguments.length - 1]; fetch('not-cached-' + Date.now()).then(() => done('online'), () => done('offline'));",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(probe, "offline", "the server must be unreachable now");
        let page = Page::open(c, &base).await;
        page.click_first_sample().await;
        assert_eq!(page.predictions().await.len(), 1);
        let page = Page::open(c, &on_webgpu).await;
        page.click_first_sample().await;
        assert_eq!(page.predictions().await[0].backend, "webgpu");
        // Installed, the app starts at its manifest's start URL: offline too.
        let start = support::js(
            c,
            "return fetch('public/manifest.webmanifest').then(r => r.json()).then(m => new URL(m.start_url, new URL('public/manifest.webmanifest', location.href)).href)",
        )
        .await;
        assert_eq!(start.as_str().unwrap(), format!("{origin}{PREFIX}"));
        Page::open(c, start.as_str().unwrap()).await;
    });
}

#[test]
#[ignore = "needs dist/ (trunk build --release) and chromedriver; run by .ci/test"]
fn chromium_finds_the_app_installable_under_a_sub_path() {
    with_browser(|c| async move {
        let (origin, _log) = serve_dist();
        let page = Page::open(&c, &format!("{origin}{PREFIX}?backend=cpu")).await;
        let c = page.client();
        page.wait_for_service_worker().await;
        let manifest = support::cdp(c, "Page.getAppManifest", json!({})).await;
        assert!(
            manifest["url"]
                .as_str()
                .unwrap()
                .ends_with(&format!("{PREFIX}public/manifest.webmanifest")),
            "{manifest}"
        );
        assert_eq!(manifest["errors"], json!([]), "{manifest}");
        let errors = support::cdp(c, "Page.getInstallabilityErrors", json!({})).await;
        assert_eq!(errors["installabilityErrors"], json!([]), "{errors}");
        // Its icons are the app's own, served from the build.
        for size in [192, 512] {
            let ok = support::js(
                c,
                &format!("return fetch('public/icons/icon-{size}.png').then(r => r.ok && r.headers.get('content-type'))"),
            )
            .await;
            assert_eq!(ok, json!("image/png"), "icon {size}");
        }
    });
}

#[test]
#[ignore = "needs dist/ (trunk build --release), chromedriver and axe-core; run by .ci/test"]
fn axe_finds_no_accessibility_violations_with_results_and_errors_shown() {
    with_browser(|c| async move {
        let (origin, _log) = serve_dist();
        let page = Page::open(&c, &format!("{origin}{PREFIX}?backend=cpu")).await;
        let empty = page.accessibility_violations().await;
        assert_eq!(empty, json!([]), "empty page: {empty:#}");

        let cases = corpus::cases();
        let picked: Vec<&corpus::Case> = [
            "plain.jpeg",
            "notes.png",
            "colour-photo.png",
            "mono1-12bit.dcm",
        ]
        .iter()
        .map(|name| cases.iter().find(|c| c.name == *name).unwrap())
        .collect();
        page.drop_files(&corpus::write(&picked, &scratch("axe")))
            .await;
        page.wait_for_results(3, 1, 300).await;
        let shown = page.accessibility_violations().await;
        assert_eq!(shown, json!([]), "with results and an error: {shown:#}");
        assert!(page.results_are_announced().await);
    });
}

/// Copies a directory tree.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Deploys a new version into `site`: a changed page, and the service worker the build would
/// write for it (its cache renamed from `old` to `second-deployment`).
fn deploy_second_version(site: &Path, old: &str) {
    let index = site.join("index.html");
    let html = std::fs::read_to_string(&index).unwrap();
    let html = html.replace(
        "<title>",
        "<meta name=\"build\" content=\"second\" /><title>",
    );
    std::fs::write(&index, html).unwrap();
    let sw = site.join("sw.js");
    let text = std::fs::read_to_string(&sw).unwrap();
    std::fs::write(&sw, text.replace(old, "second-deployment")).unwrap();
}

#[test]
#[ignore = "needs dist/ (trunk build --release) and chromedriver; run by .ci/test"]
fn a_new_deployment_replaces_the_offline_cache() {
    with_browser(|c| async move {
        let site = std::env::temp_dir().join(format!("xray-e2e-deploy-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&site);
        copy_tree(&Path::new(ROOT).join("dist"), &site);
        let (port, _log) = support::serve(site.clone());
        let base = format!("http://127.0.0.1:{port}{PREFIX}?backend=cpu");
        let page = Page::open(&c, &base).await;
        page.wait_for_service_worker().await;
        let first = wait_for(
            &c,
            "return caches.keys().then(k => k.length === 1 && k[0])",
            120,
            "one cache",
        )
        .await;

        deploy_second_version(
            &site,
            first.as_str().unwrap().trim_start_matches("xray-web-"),
        );
        support::js(&c, "return navigator.serviceWorker.getRegistration().then(r => r.update()).then(() => true)").await;
        wait_for(
            &c,
            "return caches.keys().then(k => k.length === 1 && k[0] === 'xray-web-second-deployment')",
            180,
            "the new cache to replace the old one",
        )
        .await;
        drop(page);
        Page::open(&c, &base).await;
        let build = support::js(
            &c,
            "const m = document.querySelector('meta[name=build]'); return m && m.content",
        )
        .await;
        assert_eq!(build, "second", "the page comes from the new deployment");
        let _ = std::fs::remove_dir_all(&site);
    });
}

#[test]
#[ignore = "needs dist/ (trunk build --release) and chromedriver; run by .ci/test"]
fn the_card_shows_intervals_stress_figures_the_band_and_its_scope() {
    with_browser(|c| async move {
        let (origin, _log) = serve_dist();
        let page = Page::open(&c, &format!("{origin}{PREFIX}?backend=cpu")).await;
        let validation = page.card_section("validation").await;
        assert!(
            validation.contains("patients") && validation.contains("whole patients held out"),
            "{validation}"
        );
        assert!(
            validation.contains(" [") && validation.contains("bootstrap"),
            "{validation}"
        );
        let stress = page.card_section("stress").await;
        assert!(stress.contains("acquisition changes"), "{stress}");
        let band = page.card_section("band").await;
        assert!(band.contains("needs a reader"), "{band}");
        let scope = page.card_section("scope").await;
        assert!(scope.contains("one hospital"), "{scope}");
    });
}

#[test]
#[ignore = "needs dist/ (trunk build --release) and chromedriver; run by .ci/test"]
fn rows_say_uncertain_in_attribute_and_words_as_the_command_line_does() {
    with_browser(|c| async move {
        let (origin, _log) = serve_dist();
        let page = Page::open(&c, &format!("{origin}{PREFIX}?backend=cpu")).await;
        let files: Vec<PathBuf> = shipped::samples()
            .into_iter()
            .map(|s| s.path.into())
            .collect();
        page.drop_files(&files).await;
        page.wait_for_results(files.len(), 0, 300).await;
        let cli = cli_predict(&files);
        for row in page.predictions().await {
            assert!(row.label == "NORMAL" || row.label == "PNEUMONIA", "{row:?}");
            assert_eq!(row.uncertain_note, row.uncertain, "{row:?}");
            let (_, line) = cli.iter().find(|(name, _)| name == &row.file).unwrap();
            assert_eq!(line["uncertain"].as_bool(), Some(row.uncertain), "{row:?}");
        }
    });
}

#[test]
#[ignore = "needs dist/ (trunk build --release) and chromedriver; run by .ci/test"]
fn a_batch_shows_its_progress_and_rows_appear_as_they_are_done() {
    with_browser(|c| async move {
        let (origin, _log) = serve_dist();
        let dir = scratch("batch");
        let mut paths = Vec::new();
        for round in 0..9 {
            for s in shipped::samples() {
                let p = dir.join(format!("{round}-{}", s.file));
                std::fs::copy(&s.path, &p).unwrap();
                paths.push(p);
            }
        }
        let n = paths.len();
        let page = Page::open(&c, &format!("{origin}{PREFIX}?backend=cpu")).await;
        page.drop_files(&paths).await;
        // Mid-batch: the line counts, estimates the time left, and some rows are already there.
        let seen = wait_for(
            page.client(),
            &format!(
                "const t = document.querySelector('[data-testid=batch-progress]').textContent; \
                 const rows = document.querySelectorAll('[data-testid=prediction]').length; \
                 return / of {n} done, about .* left/.test(t) && rows > 0 && rows < {n} ? [t, rows] : null"
            ),
            120,
            "the batch's progress line",
        )
        .await;
        let done: usize = seen[0]
            .as_str()
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(done >= 1 && done < n, "{seen}");
        page.wait_for_answers(n, 600).await;
        wait_for(
            page.client(),
            "return document.querySelector('[data-testid=batch-progress]').textContent === ''",
            10,
            "the progress line to clear",
        )
        .await;
    });
}

#[test]
#[ignore = "needs dist/ (trunk build --release) and chromedriver; run by .ci/test"]
fn the_built_modules_validate_only_with_simd_and_only_a_page_on_webgpu_fetches_the_webgpu_one() {
    use wasmparser::{Validator, WasmFeatures};
    let dist = Path::new(ROOT).join("dist");
    let mut modules: Vec<_> = std::fs::read_dir(&dist)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
        .collect();
    modules.sort();
    let names: Vec<_> = modules
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "xray-web-fma_bg.wasm",
            "xray-web-gpu_bg.wasm",
            "xray-web_bg.wasm"
        ]
    );
    let validates = |bytes: &[u8], features: WasmFeatures| {
        Validator::new_with_features(features).validate_all(bytes)
    };
    let plain_simd = WasmFeatures::default() - WasmFeatures::RELAXED_SIMD;
    let no_simd = plain_simd - WasmFeatures::SIMD;
    for (wasm, name) in modules.iter().zip(&names) {
        let bytes = std::fs::read(wasm).unwrap();
        validates(&bytes, WasmFeatures::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let Err(err) = validates(&bytes, no_simd) else {
            panic!("{name} must use SIMD instructions");
        };
        assert!(err.to_string().contains("SIMD"), "{name}: {err}");
        // Only the page's second build uses relaxed SIMD (its fused multiply-adds); the plain
        // one and the WebGPU one run where a browser has SIMD alone.
        if name.starts_with("xray-web-fma") {
            let Err(err) = validates(&bytes, plain_simd) else {
                panic!("{name} must use relaxed SIMD instructions");
            };
            assert!(err.to_string().contains("relaxed SIMD"), "{name}: {err}");
        } else {
            validates(&bytes, plain_simd).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
    // The service worker's list has them all (it caches the WebGPU module on first use, and
    // the page module a browser does not take only if it is ever loaded).
    let sw = std::fs::read_to_string(dist.join("sw.js")).unwrap();
    for name in [
        "xray-web-gpu_bg.wasm",
        "xray-web-gpu.js",
        "xray-web_bg.wasm",
        "xray-web.js",
        "xray-web-fma_bg.wasm",
        "xray-web-fma.js",
        "public/wasm-variant.js",
    ] {
        assert!(
            sw.contains(&format!("\"{name}\"")),
            "{name} not in sw.js's list"
        );
    }
    // The page's modules leave Burn's WebGPU backend out: they are much the smaller.
    let size = |p: &std::path::PathBuf| std::fs::metadata(p).unwrap().len();
    assert!(size(&modules[0]) * 2 < size(&modules[1]), "{names:?}");
    assert!(size(&modules[2]) * 2 < size(&modules[1]), "{names:?}");
    // And the browser runs them: this Chromium has relaxed SIMD, so on the CPU the page and its
    // worker run the page's relaxed-SIMD module, and neither the plain one nor the WebGPU one
    // is ever fetched (not even by the service worker); on WebGPU the worker fetches the WebGPU
    // module and classifies there.
    with_browser(|c| async move {
        let (origin, log) = serve_dist();
        let page = Page::open(&c, &format!("{origin}{PREFIX}?backend=cpu")).await;
        assert_eq!(page_module(&page).await, "xray-web-fma");
        page.wait_for_service_worker().await;
        let served = served_after_the_first_sample(&page, &log, "cpu").await;
        assert!(
            served.iter().any(|p| p.ends_with("/xray-web-fma_bg.wasm")),
            "{served:?}"
        );
        assert!(
            !served
                .iter()
                .any(|p| p.ends_with("/xray-web_bg.wasm") || p.ends_with("/xray-web.js")),
            "{served:?}"
        );
        assert!(
            !served.iter().any(|p| p.contains("xray-web-gpu")),
            "{served:?}"
        );

        let page = Page::open(&c, &format!("{origin}{PREFIX}?backend=webgpu")).await;
        let served = served_after_the_first_sample(&page, &log, "webgpu").await;
        assert!(
            served.iter().any(|p| p.ends_with("xray-web-gpu_bg.wasm")),
            "{served:?}"
        );
    });
}

/// Which build of the page's module the page loaded (`<html data-wasm>`, set by boot.js).
async fn page_module(page: &Page) -> String {
    let name = wait_for(
        page.client(),
        "return document.documentElement.dataset.wasm",
        60,
        "the page's module to load",
    )
    .await;
    name.as_str().unwrap().to_string()
}

#[test]
#[ignore = "needs dist/ (trunk build --release) and chromedriver; run by .ci/test"]
fn a_browser_without_relaxed_simd_loads_the_plain_module_and_gets_the_same_answers() {
    // A browser of this test's own: the script below stays with the browser it is given to,
    // and must not reach the shared one's other tests.
    with_browser(|_shared| async move {
        let (c, _driver) = support::browser().await;
        let (origin, _log) = serve_dist();
        // Before any script of the page runs, its WebAssembly refuses every module that holds
        // a relaxed SIMD instruction (opcodes 0xfd 0x100 to 0x113), as a browser without
        // relaxed SIMD does; everything else validates as before.
        let no_relaxed = "const validate = WebAssembly.validate; WebAssembly.validate = (bytes) => { const b = new Uint8Array(bytes.buffer ?? bytes, bytes.byteOffset ?? 0, bytes.byteLength); for (let i = 0; i + 2 < b.length; i++) if (b[i] === 0xfd && b[i + 1] >= 0x80 && b[i + 1] <= 0x93 && b[i + 2] === 0x02) return false; return validate(bytes); };";
        support::cdp(
            &c,
            "Page.addScriptToEvaluateOnNewDocument",
            json!({ "source": no_relaxed }),
        )
        .await;
        let page = Page::open(&c, &format!("{origin}{PREFIX}?backend=cpu")).await;
        assert_eq!(page_module(&page).await, "xray-web");
        assert_eq!(page.inference_runs_in().await.0, "worker");
        let files = two_xrays_and_a_non_image();
        page.drop_files(&files).await;
        page.wait_for_results(2, 1, 300).await;
        let loaded = page.requested_urls().await;
        assert!(
            loaded.iter().any(|u| u.ends_with("/xray-web_bg.wasm")),
            "{loaded:?}"
        );
        assert!(
            !loaded.iter().any(|u| u.contains("xray-web-fma")),
            "{loaded:?}"
        );
        // The plain build's answers are the CLI's, as the relaxed one's are.
        let cli = cli_predict(&[files[0].clone(), files[2].clone()]);
        let rows = page.predictions().await;
        for (name, line) in &cli {
            let row = rows.iter().find(|r| &r.file == name).unwrap();
            assert_eq!(row.backend, "cpu", "{row:?}");
            let p = line["p_pneumonia"].as_f64().unwrap();
            assert!((p - row.p()).abs() < 1e-3, "CLI {p} vs page {row:?}");
        }
        c.close().await.unwrap();
    });
}

/// Classifies the first gallery sample, checks that `backend` did, and gives every path the
/// server has sent so far.
async fn served_after_the_first_sample(
    page: &Page,
    log: &std::sync::Mutex<Vec<String>>,
    backend: &str,
) -> Vec<String> {
    page.click_first_sample().await;
    assert_eq!(page.predictions().await[0].backend, backend);
    log.lock().unwrap().clone()
}

#[test]
#[ignore = "needs dist/ (trunk build --release) and chromedriver; run by .ci/test"]
fn without_a_backend_asked_the_page_is_ready_on_the_cpu_and_moves_to_webgpu_once_it_is_warm() {
    with_browser(|c| async move {
        let (origin, log) = serve_dist();
        let page = Page::open(&c, &format!("{origin}{PREFIX}")).await;
        let mark = |name: &str| {
            format!("return performance.getEntriesByName('xray:{name}')[0]?.startTime ?? null")
        };
        let ready = wait_for(&c, &mark("ready"), 10, "the ready mark").await;
        let webgpu = wait_for(&c, &mark("webgpu"), 180, "the move to WebGPU").await;
        // Ready (on the CPU) before WebGPU took over, and what the page said meanwhile.
        assert!(
            ready.as_f64().unwrap() < webgpu.as_f64().unwrap(),
            "ready at {ready}, WebGPU at {webgpu}"
        );
        assert_eq!(page.backend().await, "webgpu");
        assert_eq!(page.backend_note().await, "");
        let served = served_after_the_first_sample(&page, &log, "webgpu").await;
        assert!(
            served.iter().any(|p| p.ends_with("xray-web-gpu_bg.wasm")),
            "{served:?}"
        );
    });
}

#[test]
#[ignore = "needs dist/ (trunk build --release), chromedriver and axe-core; run by .ci/test"]
fn the_viewer_shows_a_result_at_full_resolution_and_every_control_changes_what_is_drawn() {
    use fantoccini::key::Key;
    with_browser(|c| async move {
        let (origin, _log) = serve_dist();
        let page = Page::open(&c, &format!("{origin}{PREFIX}?backend=cpu")).await;
        let cases = corpus::cases();
        let dicom = cases.iter().find(|c| c.name == "mono1-12bit.dcm").unwrap();
        let mut files = corpus::write(&[dicom], &scratch("viewer"));
        files.push(shipped::first_of(Class::Normal).path);
        files.push(shipped::first_of(Class::Pneumonia).path);
        page.drop_files(&files).await;
        page.wait_for_results(3, 0, 300).await;
        let rows = page.predictions().await;
        let order = page.table_order().await;
        let viewer = page.viewer();

        // Keyboard only: from the last sortable header, Tab reaches the first row's open
        // button, and Enter opens it with the focus on the image.
        page.focus_sort_header("ms").await;
        viewer.press(&Key::Tab, false).await;
        assert_eq!(
            viewer.focus().await[3],
            json!(order[0]),
            "the first row's button has the focus"
        );
        page.client()
            .active_element()
            .await
            .unwrap()
            .send_keys(&Key::Enter)
            .await
            .unwrap();
        viewer.wait_showing(&order[0]).await;
        assert_eq!(viewer.focus().await[0], json!("CANVAS"));

        // The file at its own resolution, not the model's 128-px input.
        let first = &rows[0];
        let on_disk = files.iter().find(|p| p.ends_with(&first.file)).unwrap();
        let (w, h) = image::image_dimensions(on_disk).unwrap();
        assert!(w.max(h) > 128);
        let status = viewer.text_of("viewer-status").await;
        assert!(
            status.contains(&format!("{w} × {h} pixels, shown at full resolution")),
            "{status}"
        );
        // The row's heatmap, to 3 decimals, on a grid of at least 8×8.
        let (grid, values) = viewer.heatmap().await;
        assert_eq!(grid, "8x8");
        let row_map = first.heatmap();
        assert_eq!(values.len(), row_map.len());
        for (a, b) in values.iter().zip(&row_map) {
            assert!((a - b).abs() <= 6e-4, "{values:?} vs {row_map:?}");
        }
        // Beside the image: the label, the reading, and for a DICOM its attributes.
        assert_eq!(viewer.text_of("viewer-label").await, first.label);
        assert_eq!(viewer.text_of("viewer-position").await, "1 of 3");
        let axe = page.accessibility_violations().await;
        assert_eq!(axe, json!([]), "viewer open, overlay on: {axe:#}");

        // The overlay: coloured on, gray off, more colour at a higher opacity.
        let shown = viewer.pixels().await;
        assert!(shown.colour > 0.05, "{shown:?}");
        viewer.slide("heatmap-opacity", 100).await;
        let strong = viewer.pixels().await;
        assert!(strong.colour > shown.colour, "{shown:?} {strong:?}");
        viewer.click("heatmap-toggle").await;
        let gray = viewer.pixels().await;
        assert_eq!(gray.colour, 0.0, "{gray:?}");

        // Invert: every pixel of the image turns to its complement.
        let centre = viewer.probe(0.0, 0.0).await;
        viewer.click("invert").await;
        let inverted = viewer.probe(0.0, 0.0).await;
        assert!(
            (centre + inverted - 255.0).abs() <= 2.0,
            "{centre} {inverted}"
        );
        viewer.click("invert").await;
        assert_eq!(viewer.pixels().await, gray);

        // Window/level: a narrower window adds contrast, a lower level brightens.
        viewer.slide("window-width", 40).await;
        let narrow = viewer.pixels().await;
        assert!(narrow.sd > gray.sd + 5.0, "{gray:?} {narrow:?}");
        viewer.slide("window-level", 30).await;
        let brighter = viewer.pixels().await;
        assert!(
            brighter.mean > narrow.mean + 10.0,
            "{narrow:?} {brighter:?}"
        );
        // Shift-drag sets it too: rightwards widens the window.
        let width = viewer.slider("window-width").await;
        viewer.drag(150.0, 0.0, true, None).await;
        assert!(viewer.slider("window-width").await > width);
        viewer.click("reset").await;
        assert_eq!(
            viewer.pixels().await,
            gray,
            "reset: the view as opened (overlay off)"
        );

        // Zoom: buttons, keys, the wheel and a pinch; the image fills more of the canvas.
        viewer.click("zoom-in").await;
        let zoomed = viewer.pixels().await;
        assert!(zoomed.black < gray.black, "{gray:?} {zoomed:?}");
        assert_eq!(viewer.text_of("zoom-level").await.trim(), "125 %");
        viewer.press("+", true).await;
        assert_eq!(viewer.text_of("zoom-level").await.trim(), "156 %");
        viewer.press("-", true).await;
        viewer.click("zoom-out").await;
        assert_eq!(viewer.text_of("zoom-level").await.trim(), "100 %");
        assert_eq!(viewer.pixels().await, gray);
        viewer.wheel(-100.0).await;
        assert_eq!(viewer.text_of("zoom-level").await.trim(), "122 %");
        viewer.press("0", true).await;
        viewer.drag(100.0, 0.0, false, Some(100.0)).await;
        assert_eq!(
            viewer.text_of("zoom-level").await.trim(),
            "200 %",
            "a pinch from 100 to 200 px apart"
        );
        viewer.press("0", true).await;

        // Pan: an arrow key moves the picture 48 px, and so does a drag.
        let left_of_centre = viewer.probe(-48.0, 0.0).await;
        viewer.press(&Key::Right, true).await;
        assert!((viewer.probe(0.0, 0.0).await - left_of_centre).abs() <= 2.0);
        viewer.press("0", true).await;
        let above = viewer.probe(0.0, -30.0).await;
        viewer.drag(0.0, 30.0, false, None).await;
        assert!((viewer.probe(0.0, 0.0).await - above).abs() <= 2.0);
        assert_ne!(viewer.pixels().await.hash, gray.hash);

        // Tab stays inside the dialog.
        for _ in 0..12 {
            viewer.press(&Key::Tab, false).await;
            assert_eq!(
                viewer.focus().await[2],
                json!(true),
                "focus left the viewer"
            );
        }

        // Next / previous follow the table; the DICOM starts at its own window.
        assert!(viewer.disabled("viewer-prev").await);
        viewer.click("viewer-next").await;
        viewer.wait_showing(&order[1]).await;
        assert_eq!(viewer.text_of("viewer-position").await, "2 of 3");
        viewer.focus_image().await;
        viewer.press("n", false).await;
        viewer.wait_showing(&order[2]).await;
        assert!(viewer.disabled("viewer-next").await);
        assert_eq!(order[2], "mono1-12bit.dcm", "dropped first, shown last");
        viewer.press("p", false).await;
        viewer.wait_showing(&order[1]).await;
        viewer.press(&Key::PageDown, false).await;
        viewer.wait_showing(&order[2]).await;
        assert!(viewer.text_of("viewer-dicom").await.contains("MONOCHROME1"));
        assert!(viewer.pixels().await.sd > 5.0, "the DICOM is drawn");

        // Escape closes it and gives the focus back to the row it ended on.
        viewer.press(&Key::Escape, false).await;
        wait_for(
            page.client(),
            "return !document.querySelector('[data-testid=viewer]')",
            10,
            "the viewer to close",
        )
        .await;
        assert_eq!(viewer.focus().await[3], json!("mono1-12bit.dcm"));
        assert_eq!(viewer.file().await, None);
    });
}

#[test]
#[ignore = "needs dist/ (trunk build --release) and chromedriver; run by .ci/test"]
fn sorting_and_filtering_change_the_table_and_the_csv_alike() {
    with_browser(|c| async move {
        let (origin, _log) = serve_dist();
        let page = Page::open(&c, &format!("{origin}{PREFIX}?backend=cpu")).await;
        let samples = shipped::samples();
        let files: Vec<PathBuf> = [Class::Normal, Class::Pneumonia]
            .into_iter()
            .flat_map(|c| samples.iter().filter(move |s| s.label == c).take(4))
            .map(|s| s.path.clone().into())
            .collect();
        page.drop_files(&files).await;
        page.wait_for_results(files.len(), 0, 300).await;
        let csv_files = |csv: &str| -> Vec<String> {
            csv.lines()
                .skip(1)
                .map(|l| l.split(',').next().unwrap().trim_matches('"').to_string())
                .collect()
        };
        let p_of = |rows: &[Prediction], f: &str| rows.iter().find(|r| r.file == f).unwrap().p();

        assert_eq!(page.sort_by("p").await, "descending");
        let rows = page.predictions().await;
        let by_p = page.table_order().await;
        let ps: Vec<f64> = by_p.iter().map(|f| p_of(&rows, f)).collect();
        assert!(ps.windows(2).all(|w| w[0] >= w[1]), "{ps:?}");
        let csv = page.download_csv().await;
        assert!(csv.starts_with("file,label,p_pneumonia"), "{csv}");
        assert!(
            csv.lines()
                .next()
                .unwrap()
                .ends_with("heatmap_peak_row,heatmap_peak_col")
        );
        assert_eq!(csv_files(&csv), by_p, "the CSV follows the table's order");

        assert_eq!(page.sort_by("file").await, "ascending");
        let by_name = page.table_order().await;
        let mut sorted = by_name.clone();
        sorted.sort();
        assert_eq!(by_name, sorted);
        assert_eq!(csv_files(&page.download_csv().await), by_name);

        page.filter("pneumonia").await;
        let shown = page.table_order().await;
        let pneumonia: Vec<String> = by_name
            .iter()
            .filter(|f| rows.iter().any(|r| &r.file == *f && r.label == "PNEUMONIA"))
            .cloned()
            .collect();
        assert!(!pneumonia.is_empty() && pneumonia.len() < files.len());
        assert_eq!(shown, pneumonia, "only PNEUMONIA rows, still by name");
        assert_eq!(
            csv_files(&page.download_csv().await),
            pneumonia,
            "the CSV follows the filter"
        );
        page.filter("ood").await;
        assert!(
            page.table_order().await.is_empty(),
            "no X-ray here is flagged"
        );
        page.filter("all").await;
        assert_eq!(page.table_order().await.len(), files.len());
    });
}
