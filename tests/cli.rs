//! The `xray` command line on good and bad files and folders, and on the whole generated
//! corpus of unusual and hostile inputs.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test
#![cfg(not(target_arch = "wasm32"))]

mod corpus;
mod support;

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use support::shipped;

fn xray(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_xray"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run xray");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "xray panicked: {stderr}");
    out
}

/// The gallery's X-rays: (path, label).
fn samples() -> Vec<(String, String)> {
    shipped::samples()
        .into_iter()
        .map(|s| (s.path, s.label.to_string()))
        .collect()
}

/// Asserts that a run of the CLI exited 0, showing what it printed on stderr otherwise.
fn assert_success(out: &Output) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A JSON file the CLI wrote.
fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> T {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xray-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// DIR/{NORMAL,PNEUMONIA}/ with `n` bundled samples of each class.
fn class_folder(name: &str, n: usize) -> PathBuf {
    let dir = tmp(name);
    for class in ["NORMAL", "PNEUMONIA"] {
        std::fs::create_dir_all(dir.join(class)).unwrap();
        for (path, _) in samples().iter().filter(|(_, l)| l == class).take(n) {
            let file = Path::new(path).file_name().unwrap();
            std::fs::copy(path, dir.join(class).join(file)).unwrap();
        }
    }
    dir
}

#[test]
fn predict_json_classifies_good_files_and_refuses_bad_ones() {
    let dir = tmp("predict");
    let text = dir.join("notes.png");
    std::fs::write(&text, "not an image").unwrap();
    let empty = dir.join("empty.jpeg");
    std::fs::write(&empty, "").unwrap();
    let s = samples();
    let out = xray(&[
        "predict",
        "--json",
        &s[0].0,
        text.to_str().unwrap(),
        &s[1].0,
        empty.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a refused file makes the exit status 1"
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    for i in [0, 2] {
        let label = lines[i]["label"].as_str().unwrap();
        assert!(label == "NORMAL" || label == "PNEUMONIA");
        let p = lines[i]["p_pneumonia"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&p));
        assert!(lines[i].get("error").is_none());
    }
    assert_eq!(lines[1]["file"], text.to_str().unwrap());
    assert!(
        lines[1]["error"]
            .as_str()
            .unwrap()
            .contains("not a supported image")
    );
    assert!(lines[3]["error"].as_str().unwrap().contains("empty"));
}

#[test]
fn predict_exits_zero_when_every_file_is_classified() {
    let s = samples();
    let out = xray(&["predict", &s[0].0, &s[5].0]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 2);
    assert!(text.contains("P(pneumonia)"));
}

#[test]
fn the_shipped_model_gets_the_held_out_samples_mostly_right() {
    let s = samples();
    let mut args = vec!["predict", "--json"];
    args.extend(s.iter().map(|(p, _)| p.as_str()));
    let out = xray(&args);
    assert_eq!(out.status.code(), Some(0));
    let correct = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .zip(&s)
        .filter(|(l, (_, truth))| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["label"] == truth.as_str()
        })
        .count();
    assert!(
        correct * 10 >= s.len() * 8,
        "only {correct}/{} right",
        s.len()
    );
}

#[test]
fn eval_json_reports_every_metric() {
    let dir = class_folder("eval", 4);
    let out = xray(&["eval", "--json", dir.to_str().unwrap()]);
    assert_success(&out);
    let text = String::from_utf8(out.stdout).unwrap();
    let m: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(m["n"], 8);
    for key in [
        "accuracy",
        "auc",
        "sensitivity",
        "specificity",
        "precision",
        "f1",
        "ece",
        "threshold",
    ] {
        assert!(m[key].is_number(), "{key} missing");
    }
    let c = &m["confusion"];
    let total: u64 = ["tp", "fp", "tn", "fn"]
        .iter()
        .map(|k| c[k].as_u64().unwrap())
        .sum();
    assert_eq!(total, 8);
}

/// Runs `command` (e.g. `["train"]`) on a tiny model (64 px, width 8, batch 4) for `epochs`,
/// with `extra` options.
fn tiny(command: &[&str], data: &Path, out_dir: &Path, epochs: &str, extra: &[&str]) -> Output {
    let mut args = command.to_vec();
    args.extend([
        "--data",
        data.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
        "--epochs",
        epochs,
        "--size",
        "64",
        "--width",
        "8",
        "--batch",
        "4",
    ]);
    args.extend_from_slice(extra);
    xray(&args)
}

/// Runs a tiny `xray train` (2 epochs, 64 px, width 8, batch 4) with `extra` options.
fn train_tiny(data: &Path, out_dir: &Path, extra: &[&str]) -> Output {
    tiny(&["train"], data, out_dir, "2", extra)
}

#[test]
fn train_tiny_run_writes_a_loadable_model() {
    let data = class_folder("train-data", 6);
    let out_dir = tmp("train-out");
    let out = train_tiny(&data, &out_dir, &["--val-fraction", "0.34"]);
    assert_success(&out);
    let card: serde_json::Value = read_json(&out_dir.join("card.json"));
    assert_eq!(card["history"].as_array().unwrap().len(), 2);
    assert_eq!(card["training"]["data"]["val_normal"], 2);
    assert!(out_dir.join("history.csv").is_file());
    // --resume with all epochs done only re-exports.
    let again = train_tiny(&data, &out_dir, &["--val-fraction", "0.34", "--resume"]);
    assert_eq!(again.status.code(), Some(0));
    let s = samples();
    let pred = xray(&["predict", "--model", out_dir.to_str().unwrap(), &s[0].0]);
    assert_eq!(pred.status.code(), Some(0));
}

#[test]
fn training_is_deterministic_for_a_seed() {
    let data = class_folder("det-data", 5);
    let run = |name: &str, seed: &str| {
        let out_dir = tmp(name);
        let out = train_tiny(&data, &out_dir, &["--val-fraction", "0.4", "--seed", seed]);
        assert_success(&out);
        let history: Vec<serde_json::Value> = read_json(&out_dir.join("history.json"));
        let losses: Vec<f64> = history
            .iter()
            .map(|h| h["train_loss"].as_f64().unwrap())
            .collect();
        // Parameter ids in the file are random; the values are what must match.
        let s = samples();
        let pred = xray(&[
            "predict",
            "--json",
            "--model",
            out_dir.to_str().unwrap(),
            &s[0].0,
            &s[20].0,
        ]);
        (losses, String::from_utf8(pred.stdout).unwrap())
    };
    let (a, wa) = run("det-a", "7");
    let (b, wb) = run("det-b", "7");
    let (c, _) = run("det-c", "8");
    assert_eq!(a, b, "same seed, same losses");
    assert_eq!(wa, wb, "same seed, same predictions");
    assert_ne!(a, c, "another seed, another run");
}

#[test]
fn bad_data_folders_give_clear_errors() {
    let missing = tmp("missing-class");
    std::fs::create_dir_all(missing.join("NORMAL")).unwrap();
    std::fs::copy(&samples()[0].0, missing.join("NORMAL/a.jpeg")).unwrap();
    let out = xray(&[
        "train",
        "--data",
        missing.to_str().unwrap(),
        "--out",
        tmp("o1").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("PNEUMONIA: the class folder is missing")
    );

    let empty = tmp("empty-class");
    std::fs::create_dir_all(empty.join("NORMAL")).unwrap();
    std::fs::create_dir_all(empty.join("PNEUMONIA")).unwrap();
    let out = xray(&["eval", empty.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("holds no images"));

    let junk = class_folder("junk", 2);
    std::fs::write(junk.join("PNEUMONIA/readme.txt"), "hello").unwrap();
    let out = xray(&[
        "train",
        "--data",
        junk.to_str().unwrap(),
        "--out",
        tmp("o2").to_str().unwrap(),
        "--size",
        "64",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not usable images") && err.contains("readme.txt"),
        "{err}"
    );

    let nothing = tmp("no-layout");
    let out = xray(&["train", "--data", nothing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected NORMAL/ and PNEUMONIA/"));
}

#[test]
fn predict_json_handles_the_whole_hostile_corpus() {
    let dir = tmp("corpus");
    let cases = corpus::cases();
    let paths = corpus::write(&cases.iter().collect::<Vec<_>>(), &dir);
    let mut args = vec!["predict", "--json"];
    args.extend(paths.iter().map(String::as_str));
    let out = xray(&args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "refused files make the exit code 1"
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), cases.len(), "one line per file");
    let plain = lines[0]["p_pneumonia"].as_f64().unwrap();
    for (case, line) in cases.iter().zip(&lines) {
        assert!(
            line["file"].as_str().unwrap().ends_with(case.name),
            "{line}"
        );
        match &case.expect {
            corpus::Expect::Same => {
                let p = line["p_pneumonia"].as_f64().unwrap_or(f64::NAN);
                assert!((p - plain).abs() < 0.05, "{}: {line}", case.name);
                assert_eq!(line["ood"], false, "{}: {line}", case.name);
            }
            corpus::Expect::Ood => {
                assert_eq!(line["ood"], true, "{}: {line}", case.name);
                assert!(line["ood_reason"].is_string(), "{line}");
                let kind = line["ood_kind"].as_str().unwrap_or_default();
                assert!(
                    ["colour", "uniform", "layout", "content"].contains(&kind),
                    "{line}"
                );
            }
            corpus::Expect::Refused(text) => {
                let error = line["error"].as_str().unwrap_or_default();
                assert!(error.contains(text), "{}: {line}", case.name);
            }
        }
    }
    // DICOM attributes are reported, patient identifiers are not.
    let dcm = lines
        .iter()
        .find(|l| l["file"].as_str().unwrap().ends_with("mono1-12bit.dcm"))
        .unwrap();
    assert_eq!(dcm["format"], "DICOM");
    assert_eq!(dcm["dicom"]["body_part"], "CHEST");
    assert_eq!(dcm["dicom"]["photometric"], "MONOCHROME1");
    let all = lines.iter().map(|l| l.to_string()).collect::<String>();
    assert!(!all.contains("DOE") && !all.contains("PATIENT-ID"));
}

#[test]
fn eval_json_adds_patient_bootstrap_intervals_and_the_stress_test() {
    let dir = class_folder("eval-ci", 4);
    let out = xray(&["eval", "--json", "--stress", dir.to_str().unwrap()]);
    assert_success(&out);
    let text = String::from_utf8(out.stdout).unwrap();
    let m: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(m["patients"], 8);
    assert!(m["ci"]["resamples"].as_u64().unwrap() >= 1000);
    for key in ["accuracy", "auc", "sensitivity", "specificity", "ece"] {
        let point = m[key].as_f64().unwrap();
        let ci = m["ci"][key].as_array().unwrap();
        let (lo, hi) = (ci[0].as_f64().unwrap(), ci[1].as_f64().unwrap());
        assert!(
            lo <= hi && (0.0..=1.0).contains(&lo) && hi <= 1.0,
            "{key}: {lo}..{hi}"
        );
        assert!(
            lo <= point + 1e-9 && point <= hi + 1e-9,
            "{key}: {point} outside {lo}..{hi}"
        );
    }
    let conditions = m["stress"]["conditions"].as_array().unwrap();
    assert_eq!(conditions.len(), 11);
    assert!(conditions.iter().all(|c| c["metrics"]["n"] == 8));
    assert!(
        m["stress"]["worst"]["accuracy"].as_f64().unwrap()
            <= m["stress"]["mean"]["accuracy"].as_f64().unwrap()
    );
    // The same seed gives the same intervals.
    let again = xray(&["eval", "--json", dir.to_str().unwrap()]);
    let m2: serde_json::Value = serde_json::from_str(
        String::from_utf8(again.stdout)
            .unwrap()
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(m["ci"], m2["ci"]);
}

#[test]
fn a_trained_card_carries_intervals_stress_band_and_scope_and_predict_says_uncertain() {
    let data = class_folder("band-data", 6);
    let out_dir = tmp("band-out");
    let out = train_tiny(&data, &out_dir, &["--val-fraction", "0.34"]);
    assert_success(&out);
    let card: serde_json::Value = read_json(&out_dir.join("card.json"));
    assert!(card["validation_ci"]["accuracy"].is_array());
    assert_eq!(card["stress"]["conditions"].as_array().unwrap().len(), 11);
    assert!(card["scope"].as_str().unwrap().contains("one hospital"));
    let band = &card["uncertain"];
    let (lo, hi) = (
        band["low"].as_f64().unwrap(),
        band["high"].as_f64().unwrap(),
    );
    assert!(lo <= hi);
    assert!(band["error_outside"].as_f64().unwrap() <= 0.02 + 1e-12);
    let predictions: Vec<serde_json::Value> = read_json(&out_dir.join("val_predictions.json"));
    assert_eq!(predictions.len(), 4);
    let s = samples();
    let files: Vec<&str> = s.iter().map(|(f, _)| f.as_str()).collect();
    let mut args = vec!["predict", "--json", "--model", out_dir.to_str().unwrap()];
    args.extend(&files);
    let pred = xray(&args);
    for line in String::from_utf8(pred.stdout).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let p = v["p_pneumonia"].as_f64().unwrap();
        let inside = (lo..=hi).contains(&p);
        assert_eq!(v["uncertain"].as_bool().unwrap(), inside, "{line}");
    }
}

#[test]
fn cv_trains_every_fold_by_patient_and_resumes() {
    let data = tmp("cv-data");
    // Three patients with two images each per class, named as in the dataset.
    let s = samples();
    for (class, prefix) in [("NORMAL", "IM-"), ("PNEUMONIA", "person")] {
        std::fs::create_dir_all(data.join(class)).unwrap();
        let files: Vec<&String> = s
            .iter()
            .filter(|(_, l)| l == class)
            .map(|(f, _)| f)
            .collect();
        for (i, file) in files.iter().take(6).enumerate() {
            let name = if prefix == "IM-" {
                format!("IM-{:04}-{:04}.jpeg", i / 2, i % 2)
            } else {
                format!("person{}_bacteria_{}.jpeg", i / 2, i)
            };
            std::fs::copy(file, data.join(class).join(name)).unwrap();
        }
    }
    let out_dir = tmp("cv-out");
    let cv = |extra: &[&str]| tiny(&["cv", "--folds", "3"], &data, &out_dir, "1", extra);
    let out = cv(&[]);
    assert_success(&out);
    let report: serde_json::Value = read_json(&out_dir.join("cv.json"));
    let folds = report["folds"].as_array().unwrap();
    assert_eq!(folds.len(), 3);
    // Each fold holds out one patient of each class: 2 + 2 images.
    assert!(folds.iter().all(|f| f["n"] == 4 && f["patients"] == 2));
    for key in ["accuracy", "auc", "sensitivity", "specificity", "ece"] {
        assert!(report["clean"][key]["mean"].is_number());
        assert!(report["stressed"][key]["sd"].is_number());
    }
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("3-fold cross-validation by patient"),
        "{stdout}"
    );
    // Resumed, finished folds are read back, not trained again.
    let again = cv(&["--resume"]);
    assert_eq!(again.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert_eq!(stderr.matches("done, read from").count(), 3, "{stderr}");

    // A second run on the same folds (label smoothing), then the ensemble of both: each
    // held-out image's margin is the mean of the two models' margins.
    let ls_dir = tmp("cv-out-ls");
    let ls = tiny(
        &["cv", "--folds", "3"],
        &data,
        &ls_dir,
        "1",
        &["--label-smoothing", "0.1"],
    );
    assert_success(&ls);
    let ens_dir = tmp("cv-ensemble");
    let ensemble = |members: [&Path; 2], seed: &str| {
        xray(&[
            "cv-ensemble",
            "--members",
            members[0].to_str().unwrap(),
            members[1].to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--folds",
            "3",
            "--seed",
            seed,
            "--out",
            ens_dir.to_str().unwrap(),
        ])
    };
    let out = ensemble([&out_dir, &ls_dir], "42");
    assert_success(&out);
    let report: serde_json::Value = read_json(&ens_dir.join("cv.json"));
    let folds = report["folds"].as_array().unwrap();
    assert!(
        folds
            .iter()
            .all(|f| f["n"] == 4 && f["patients"] == 2 && f["stress"].is_object())
    );
    let margins = |dir: &Path, k: usize| -> Vec<(String, f64)> {
        let p: Vec<serde_json::Value> =
            read_json(&dir.join(format!("fold-{k}/val_predictions.json")));
        let mut m: Vec<(String, f64)> = p
            .iter()
            .map(|v| {
                (
                    v["file"].as_str().unwrap().to_string(),
                    v["margin"].as_f64().unwrap(),
                )
            })
            .collect();
        m.sort_by(|a, b| a.0.cmp(&b.0));
        m
    };
    for k in 1..=3 {
        let (a, b, e) = (
            margins(&out_dir, k),
            margins(&ls_dir, k),
            margins(&ens_dir, k),
        );
        assert_eq!(e.len(), 4);
        for ((fa, ma), ((fb, mb), (fe, me))) in a.iter().zip(b.iter().zip(&e)) {
            assert!(fa == fb && fb == fe, "fold {k}: {fa} {fb} {fe}");
            assert!(
                (me - (ma + mb) / 2.0).abs() < 1e-3,
                "fold {k}, {fe}: {me} vs {ma}, {mb}"
            );
        }
        let cal: serde_json::Value = read_json(&ens_dir.join(format!("fold-{k}/ensemble.json")));
        assert!(cal["threshold"].as_f64().unwrap() > 0.0 && cal["band"].is_object());
    }
    // Runs whose folds differ (another seed) are refused, with the reason.
    let other = ensemble([&out_dir, &ls_dir], "7");
    assert_eq!(
        other.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&other.stderr)
    );
    assert!(
        String::from_utf8_lossy(&other.stderr).contains("held out other files"),
        "{}",
        String::from_utf8_lossy(&other.stderr)
    );
}

#[test]
fn split_prints_each_file_with_its_patient_and_keeps_patients_whole() {
    let data = tmp("split-data");
    let s = samples();
    for (class, names) in [
        (
            "NORMAL",
            [
                "IM-0001-0001.jpeg",
                "IM-0001-0002.jpeg",
                "NORMAL2-IM-0002-0001.jpeg",
                "IM-0003-0001.jpeg",
            ],
        ),
        (
            "PNEUMONIA",
            [
                "person1_virus_1.jpeg",
                "person1_virus_2.jpeg",
                "person2_bacteria_3.jpeg",
                "person3_bacteria_4.jpeg",
            ],
        ),
    ] {
        std::fs::create_dir_all(data.join(class)).unwrap();
        let file = &s.iter().find(|(_, l)| l == class).unwrap().0;
        for n in names {
            std::fs::copy(file, data.join(class).join(n)).unwrap();
        }
    }
    let out = xray(&[
        "split",
        "--all",
        "--val-fraction",
        "0.3",
        "--data",
        data.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(rows.len(), 8);
    let mut part_of = std::collections::HashMap::new();
    for r in &rows {
        assert_eq!(r.len(), 4, "{r:?}");
        let expected = if r[3].contains("person1_") {
            "person1"
        } else if r[3].contains("IM-0001-") {
            "IM-0001"
        } else if r[3].contains("NORMAL2-IM-0002") {
            "NORMAL2-IM-0002"
        } else {
            r[2]
        };
        assert_eq!(r[2], expected);
        assert_eq!(
            *part_of.entry(r[2]).or_insert(r[0]),
            r[0],
            "{} split apart",
            r[2]
        );
    }
    assert!(rows.iter().any(|r| r[0] == "val" && r[1] == "NORMAL"));
    assert!(rows.iter().any(|r| r[0] == "val" && r[1] == "PNEUMONIA"));
}
