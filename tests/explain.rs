//! Heatmaps: computed from the prediction's own pass without changing it, shaped and normalised
//! as documented, and faithful: hiding what they point at lowers P(pneumonia) much more than
//! hiding the same shape elsewhere, on real X-rays of the validation patients.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test
#![cfg(not(target_arch = "wasm32"))]

mod support;

use std::path::Path;

use support::shipped;
use xray_web::{
    cli::dataset,
    ml::{
        classifier::Classifier,
        explain::{self, Heatmap},
    },
};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn classifier() -> Classifier {
    Classifier::load(
        shipped::card(),
        shipped::weights(),
        burn::prelude::Device::flex(),
    )
    .unwrap()
}

#[test]
fn the_heatmap_leaves_the_prediction_as_it_is_and_is_an_8x8_map_in_0_1() {
    let c = classifier();
    for s in shipped::samples() {
        let bytes = shipped::bytes(&s);
        let plain = c.analyse(&bytes).unwrap();
        let explained = c.explain(&bytes).unwrap();
        assert!(plain.heatmap.is_none());
        assert_eq!(plain.prediction, explained.prediction, "{}", s.file);
        assert_eq!(plain.ood, explained.ood);
        let h = explained.heatmap.unwrap();
        assert_eq!(
            (h.width, h.height, h.values.len()),
            (8, 8, 64),
            "{}",
            s.file
        );
        assert!(h.values.iter().all(|v| (0.0..=1.0).contains(v)));
        assert!(h.values.contains(&1.0), "{}: {h:?}", s.file);
        assert!(h.values.contains(&0.0), "{}: {h:?}", s.file);
    }
}

#[test]
fn heatmaps_upsample_smoothly_and_name_their_peak() {
    // Relative: the lowest cell is 0 and the highest 1, negative or not.
    let h = Heatmap::from_raw(2, 2, &[-1.0, 5.0, -1.0, 2.0]);
    assert_eq!(h.values, vec![0.0, 1.0, 0.0, 0.5]);
    assert_eq!(h.peak(), (0, 1));
    let up = h.upsample(4, 4);
    // Cell centres keep their values; between them values are interpolated.
    assert_eq!(up[0], 0.0);
    assert_eq!(up[3], 1.0);
    assert!(up[1] > 0.0 && up[1] < up[2] && up[2] < 1.0, "{up:?}");
    let flat = Heatmap::from_raw(2, 2, &[-1.0, f32::NAN, -1.0, -1.0]);
    assert!(flat.values.iter().all(|&v| v == 0.0));
    // Masks: the top fraction of pixels, and moved copies of the same area.
    let mask = explain::top_mask(&h, 4, 0.25);
    assert_eq!(mask.iter().filter(|m| **m).count(), 4);
    assert!(mask[3], "the peak cell's corner is in the mask");
    let moved = explain::shifted(&mask, 4, 3, 1);
    assert_eq!(moved.iter().filter(|m| **m).count(), 4);
    assert_ne!(moved, mask);
}

#[test]
fn hiding_what_the_heatmap_points_at_lowers_p_pneumonia_twice_as_much_as_hiding_it_elsewhere() {
    let data = Path::new(ROOT).join("../shared/data/chest_xray");
    let Ok(layout) = dataset::layout(&data) else {
        eprintln!("skipped: {} not found", data.display());
        return;
    };
    // The shipped model's own validation patients (its card: fraction 0.15, seed 42), the first
    // PNEUMONIA image of each of the first 24 of them.
    let all = dataset::list(&layout.train).unwrap();
    let (_, val) = dataset::split_by_patient(&all, 0.15, 42);
    let mut seen = std::collections::HashSet::new();
    let files: Vec<Vec<u8>> = val
        .iter()
        .filter(|s| s.pneumonia && seen.insert(dataset::patient(s)))
        .take(24)
        .map(|s| std::fs::read(&s.path).unwrap())
        .collect();
    assert_eq!(files.len(), 24);
    let f = explain::faithfulness(&classifier(), &files, 0.2, 8, 7).unwrap();
    println!(
        "faithfulness on {} PNEUMONIA X-rays of validation patients, {:.0} % of the input hidden: \
         P(pneumonia) drops by {:.3} where the heatmap points, by {:.3} with the same mask at \
         random places ({} draws each); ratio {:.1}",
        f.images,
        f.fraction * 100.0,
        f.top_drop,
        f.random_drop,
        f.draws,
        f.top_drop / f.random_drop.max(1e-9)
    );
    assert!(f.top_drop > 0.0, "{f:?}");
    assert!(f.top_drop >= 2.0 * f.random_drop, "{f:?}");
}

fn xray(args: &[&str]) -> std::process::Output {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xray"))
        .args(args)
        .current_dir(ROOT)
        .output()
        .expect("run xray");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "xray panicked: {stderr}");
    out
}

fn json_lines(out: &std::process::Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn xray_explain_writes_json_lines_and_blended_pngs_at_the_image_resolution() {
    let dir = std::env::temp_dir().join(format!("xray-explain-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let other = dir.join("other");
    std::fs::create_dir_all(&other).unwrap();
    let samples = shipped::samples();
    // A second file with the first one's name, from another folder.
    let twin = other.join(&samples[0].file);
    std::fs::copy(&samples[0].path, &twin).unwrap();
    let bad = dir.join("notes.png");
    std::fs::write(&bad, "not an image").unwrap();
    let out_dir = dir.join("out");
    let files = [
        samples[0].path.as_str(),
        samples[samples.len() - 1].path.as_str(),
        twin.to_str().unwrap(),
        bad.to_str().unwrap(),
    ];
    let mut args = vec!["explain", "--json", "--out", out_dir.to_str().unwrap()];
    args.extend(files);
    let out = xray(&args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a refused file makes the status 1"
    );
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 4);
    let predicted = json_lines(&xray(&["predict", "--json", files[0], files[1]]));
    let mut pngs = Vec::new();
    for (i, line) in lines.iter().take(3).enumerate() {
        assert_eq!(line["file"], files[i]);
        let h = &line["heatmap"];
        assert_eq!(
            (h["width"].as_u64(), h["height"].as_u64()),
            (Some(8), Some(8))
        );
        let values: Vec<f64> = serde_json::from_value(h["values"].clone()).unwrap();
        assert_eq!(values.len(), 64);
        assert!(values.iter().all(|v| (0.0..=1.0).contains(v)));
        let (r, c) = (
            line["peak"][0].as_u64().unwrap(),
            line["peak"][1].as_u64().unwrap(),
        );
        assert_eq!(values[(r * 8 + c) as usize], 1.0);
        if i < 2 {
            let p = line["p_pneumonia"].as_f64().unwrap();
            let q = predicted[i]["p_pneumonia"].as_f64().unwrap();
            assert!((p - q).abs() < 1e-6, "explain {p} vs predict {q}");
        }
        let png = line["png"].as_str().unwrap().to_string();
        let written = image::open(&png).unwrap();
        let source = image::open(files[i]).unwrap();
        assert_eq!(
            (written.width(), written.height()),
            (source.width(), source.height()),
            "{png} is at the X-ray's own resolution"
        );
        assert!(written.color().has_color(), "the heatmap is in colour");
        pngs.push(png);
    }
    assert_ne!(
        pngs[0], pngs[2],
        "files with the same name get their own PNGs"
    );
    assert!(
        lines[3]["error"]
            .as_str()
            .unwrap()
            .contains("not a supported image")
    );
    // Without --json: a line per file, the refused one says why.
    let out = xray(&["explain", files[0], files[3]]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("heatmap peak: row"), "{text}");
    assert!(text.contains("error: not a supported image"), "{text}");
}
