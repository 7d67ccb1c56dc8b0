//! End to end: the built `dist/` served under a sub-path on 127.0.0.1, driven in headless
//! Chromium through chromedriver. Run by `.ci/test` after `trunk build --release`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test
#![cfg(not(target_arch = "wasm32"))]

mod corpus;
mod support;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use fantoccini::{Client, Locator};
use serde_json::{Value, json};
use support::{PREFIX, ROOT, js, open_until_ready, samples, serve_dist, wait_for};

const PREDICTIONS: &str = "return [...document.querySelectorAll('[data-testid=prediction]')].map(e => ({file: e.dataset.file, label: e.dataset.label, p: e.dataset.pPneumonia, backend: e.dataset.backend, ms: e.dataset.ms}))";

/// Opens the app with `?backend=`, drops two X-rays and a non-image, and returns P(pneumonia)
/// for the X-rays by file name.
async fn run_backend(
    c: &Client,
    base: &str,
    backend: &str,
    files: &[PathBuf],
) -> Vec<(String, f64)> {
    open_until_ready(c, &format!("{base}?backend={backend}")).await;
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
    let (origin, log) = serve_dist();
    let base = format!("{origin}{PREFIX}");
    let (c, _driver) = support::browser().await;

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
        // The uploaded files may share the sample's name: wait for the row with a true label.
        &format!("const r = document.querySelector('[data-testid=prediction]'); return r && r.dataset.file === '{sample_file}' && !!r.querySelector('.truth')"),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs dist/ (trunk build --release) and chromedriver; run by .ci/test"]
async fn the_page_handles_the_whole_hostile_corpus() {
    let (origin, _log) = serve_dist();
    let (c, _driver) = support::browser().await;
    let dir = std::env::temp_dir().join(format!("xray-e2e-corpus-{}", std::process::id()));
    let cases = corpus::cases();
    let paths = corpus::write(&cases.iter().collect::<Vec<_>>(), &dir);
    open_until_ready(&c, &format!("{origin}{PREFIX}?backend=cpu")).await;
    let input = c.find(Locator::Css("input[type=file]")).await.unwrap();
    input.send_keys(&paths.join("\n")).await.unwrap();
    let n = cases.len();
    wait_for(
        &c,
        &format!("return document.querySelectorAll('[data-testid=prediction]').length + document.querySelectorAll('[data-testid=error]').length === {n}"),
        600,
        "every file answered",
    )
    .await;
    let rows = js(&c, "return [...document.querySelectorAll('[data-testid=prediction]')].map(e => [e.dataset.file, +e.dataset.pPneumonia, e.dataset.ood, !!e.querySelector('[data-testid=ood-warning]')])").await;
    let errors = js(&c, "return [...document.querySelectorAll('[data-testid=error]')].map(e => [e.dataset.file, e.textContent])").await;
    let row = |name: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r[0] == name)
            .cloned()
    };
    let plain = row("plain.jpeg").expect("plain.jpeg classified")[1]
        .as_f64()
        .unwrap();
    for case in &cases {
        match &case.expect {
            corpus::Expect::Same => {
                let r = row(case.name)
                    .unwrap_or_else(|| panic!("{} not classified: {errors}", case.name));
                let p = r[1].as_f64().unwrap();
                assert!((p - plain).abs() < 0.05, "{}: {p} vs {plain}", case.name);
                assert_eq!(r[2], "false", "{}: {r}", case.name);
            }
            corpus::Expect::Ood => {
                let r = row(case.name).unwrap_or_else(|| panic!("{} not classified", case.name));
                assert_eq!(r[2], "true", "{}: {r}", case.name);
                assert_eq!(r[3], true, "{}: the warning is shown", case.name);
            }
            corpus::Expect::Refused(text) => {
                let e = errors
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|e| e[0] == case.name)
                    .unwrap_or_else(|| panic!("{} not refused", case.name));
                let msg = e[1].as_str().unwrap();
                assert!(
                    msg.contains(case.name) && msg.contains(text),
                    "{}: {msg}",
                    case.name
                );
            }
        }
    }
    // DICOM attributes are shown, patient identifiers never.
    let meta = js(
        &c,
        "return [...document.querySelectorAll('[data-testid=dicom-info]')].map(e => e.textContent)",
    )
    .await;
    assert!(meta.as_array().unwrap().len() >= 8, "{meta}");
    assert!(meta.to_string().contains("CHEST"), "{meta}");
    let text = js(&c, "return document.body.innerText").await;
    assert!(
        !text.as_str().unwrap().contains("DOE") && !text.as_str().unwrap().contains("PATIENT-ID")
    );
    // The page is still usable.
    assert_eq!(
        js(
            &c,
            "return document.querySelector('[data-testid=model-status]').dataset.state"
        )
        .await,
        "ready"
    );
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs dist/ (trunk build --release) and chromedriver; run by .ci/test"]
async fn after_one_visit_the_app_works_offline() {
    use std::sync::atomic::Ordering;
    let (origin, _log) = serve_dist();
    let base = format!("{origin}{PREFIX}");
    let (c, _driver) = support::browser().await;
    open_until_ready(&c, &format!("{base}?backend=cpu")).await;
    wait_for(
        &c,
        "return !!navigator.serviceWorker.controller",
        180,
        "the service worker to take control",
    )
    .await;
    let files = js(&c, "return fetch('sw.js').then(r => r.text()).then(t => t.match(/const FILES = (\\[.*\\]);/)[1])").await;
    let n = serde_json::from_str::<Vec<String>>(files.as_str().unwrap())
        .unwrap()
        .len();
    let cached = c
        .execute_async(
            "const done = arguments[arguments.length - 1]; const poll = () => caches.keys().then(ks => Promise.all(ks.map(k => caches.open(k).then(c => c.keys())))).then(ls => { const m = Math.max(0, ...ls.map(l => l.length)); if (m >= arguments[0]) done(m); else setTimeout(poll, 250); }); poll();",
            vec![json!(n)],
        )
        .await
        .unwrap();
    assert!(
        cached.as_u64().unwrap() >= n as u64,
        "{cached} of {n} files cached"
    );

    support::OFFLINE.store(true, Ordering::SeqCst);
    let probe = c
        .execute_async(
            "const done = arguments[arguments.length - 1]; fetch('not-cached-' + Date.now()).then(() => done('online'), () => done('offline'));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(probe, "offline", "the server must be unreachable now");
    open_until_ready(&c, &format!("{base}?backend=cpu")).await;
    let sample = c.find(Locator::Css("[data-testid=sample]")).await.unwrap();
    sample.click().await.unwrap();
    wait_for(
        &c,
        "return document.querySelectorAll('[data-testid=prediction]').length === 1",
        120,
        "a prediction while offline",
    )
    .await;
    support::OFFLINE.store(false, Ordering::SeqCst);
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs dist/ (trunk build --release), chromedriver and axe-core; run by .ci/test"]
async fn axe_finds_no_accessibility_violations_with_results_and_errors_shown() {
    let (origin, _log) = serve_dist();
    let (c, _driver) = support::browser().await;
    open_until_ready(&c, &format!("{origin}{PREFIX}?backend=cpu")).await;
    let empty = support::axe_violations(&c).await;
    assert_eq!(empty, json!([]), "empty page: {empty:#}");

    let dir = std::env::temp_dir().join(format!("xray-e2e-axe-{}", std::process::id()));
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
    let paths = corpus::write(&picked, &dir);
    let input = c.find(Locator::Css("input[type=file]")).await.unwrap();
    input.send_keys(&paths.join("\n")).await.unwrap();
    wait_for(
        &c,
        "return document.querySelectorAll('[data-testid=prediction]').length === 3 && document.querySelectorAll('[data-testid=error]').length === 1",
        300,
        "results and an error",
    )
    .await;
    let shown = support::axe_violations(&c).await;
    assert_eq!(shown, json!([]), "with results and an error: {shown:#}");
    // Results are announced: the results and the errors are live regions.
    let live = js(&c, "return [!!document.querySelector('[aria-live] [data-testid=prediction]'), !!document.querySelector('[role=alert] [data-testid=error]')]").await;
    assert_eq!(live, json!([true, true]));
    c.close().await.unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs dist/ (trunk build --release) and chromedriver; run by .ci/test"]
async fn a_new_deployment_replaces_the_offline_cache() {
    let site = std::env::temp_dir().join(format!("xray-e2e-deploy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&site);
    copy_tree(&Path::new(ROOT).join("dist"), &site);
    let (port, _log) = support::serve(site.clone());
    let base = format!("http://127.0.0.1:{port}{PREFIX}");
    let (c, _driver) = support::browser().await;
    open_until_ready(&c, &format!("{base}?backend=cpu")).await;
    wait_for(
        &c,
        "return !!navigator.serviceWorker.controller",
        180,
        "the service worker",
    )
    .await;
    let first = wait_for(
        &c,
        "return caches.keys().then(k => k.length === 1 && k[0])",
        120,
        "one cache",
    )
    .await;

    // Deploy a new version: a changed page, and the worker the build would write for it.
    let index = site.join("index.html");
    let html = std::fs::read_to_string(&index).unwrap();
    std::fs::write(
        &index,
        html.replace(
            "<title>",
            "<meta name=\"build\" content=\"second\" /><title>",
        ),
    )
    .unwrap();
    let sw = site.join("sw.js");
    let old = first
        .as_str()
        .unwrap()
        .trim_start_matches("xray-web-")
        .to_string();
    let text = std::fs::read_to_string(&sw).unwrap();
    std::fs::write(&sw, text.replace(&old, "second-deployment")).unwrap();

    js(
        &c,
        "return navigator.serviceWorker.getRegistration().then(r => r.update()).then(() => true)",
    )
    .await;
    wait_for(
        &c,
        "return caches.keys().then(k => k.length === 1 && k[0] === 'xray-web-second-deployment')",
        180,
        "the new cache to replace the old one",
    )
    .await;
    open_until_ready(&c, &format!("{base}?backend=cpu")).await;
    let build = js(
        &c,
        "const m = document.querySelector('meta[name=build]'); return m && m.content",
    )
    .await;
    assert_eq!(build, "second", "the page comes from the new deployment");
    c.close().await.unwrap();
    let _ = std::fs::remove_dir_all(&site);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs dist/ (trunk build --release) and chromedriver; run by .ci/test"]
async fn the_card_shows_intervals_stress_band_and_scope_and_rows_say_uncertain_as_the_cli_does() {
    let (origin, _log) = serve_dist();
    let base = format!("{origin}{PREFIX}");
    let (c, _driver) = support::browser().await;
    open_until_ready(&c, &format!("{base}?backend=cpu")).await;

    // The card: patient-level validation with intervals, the stress figures, the band, the scope.
    let text = |id: &str| {
        format!(
            "const e = document.querySelector('[data-testid={id}]'); return e ? e.textContent : ''"
        )
    };
    let validation = wait_for(&c, &text("card-validation"), 60, "the card's validation").await;
    let validation = validation.as_str().unwrap();
    assert!(
        validation.contains("patients") && validation.contains("whole patients held out"),
        "{validation}"
    );
    assert!(
        validation.contains(" [") && validation.contains("bootstrap"),
        "{validation}"
    );
    let stress = js(&c, &text("card-stress")).await;
    assert!(
        stress.as_str().unwrap().contains("acquisition changes"),
        "{stress}"
    );
    let band = js(&c, &text("card-band")).await;
    assert!(band.as_str().unwrap().contains("needs a reader"), "{band}");
    let scope = js(&c, &text("card-scope")).await;
    assert!(scope.as_str().unwrap().contains("one hospital"), "{scope}");

    // Every gallery X-ray: the page's "uncertain" agrees with the CLI's, in attribute and words.
    let files: Vec<PathBuf> = samples()
        .iter()
        .map(|(f, _)| Path::new(ROOT).join("public/samples").join(f))
        .collect();
    let input = c.find(Locator::Css("input[type=file]")).await.unwrap();
    let paths: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    input.send_keys(&paths.join("\n")).await.unwrap();
    let n = files.len();
    wait_for(
        &c,
        &format!("return document.querySelectorAll('[data-testid=prediction]').length === {n}"),
        300,
        "every gallery X-ray classified",
    )
    .await;
    let rows = js(
        &c,
        "return [...document.querySelectorAll('[data-testid=prediction]')].map(e => ({file: e.dataset.file, label: e.dataset.label, uncertain: e.dataset.uncertain, note: !!e.querySelector('[data-testid=uncertain-note]')}))",
    )
    .await;
    let out = Command::new(env!("CARGO_BIN_EXE_xray"))
        .args(["predict", "--json"])
        .args(&files)
        .current_dir(ROOT)
        .output()
        .unwrap();
    let cli: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for row in rows.as_array().unwrap() {
        let file = row["file"].as_str().unwrap();
        let label = row["label"].as_str().unwrap();
        assert!(label == "NORMAL" || label == "PNEUMONIA", "{row}");
        let uncertain = row["uncertain"].as_str().unwrap();
        assert!(uncertain == "true" || uncertain == "false", "{row}");
        assert_eq!(row["note"].as_bool().unwrap(), uncertain == "true", "{row}");
        let line = cli
            .iter()
            .find(|v| v["file"].as_str().unwrap().ends_with(&format!("/{file}")))
            .unwrap();
        assert_eq!(
            line["uncertain"].as_bool().unwrap().to_string(),
            uncertain,
            "{file}"
        );
    }
    c.close().await.unwrap();
}
