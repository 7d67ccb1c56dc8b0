//! Seeds for the fuzz targets that take more than one image (`fuzz/fuzz_targets/`: `weights`,
//! `card`, `protocol`, `dataset`), each checked here against the outcome it should have, so
//! that a seed that stops exercising what it was made for fails a test. The `decode` seeds
//! are the input corpus (`tests/inputs.rs`).
//!
//! `cargo test --release --test fuzz_seeds -- --ignored write_fuzz_seeds` writes them under
//! `fuzz/corpus/` (not committed); `scripts/fuzz.sh` does that first.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test
#![cfg(not(target_arch = "wasm32"))]

mod support;

use burn::prelude::*;
use support::shipped;
use xray_web::{
    ml::{
        card::ModelCard,
        classifier::{Classifier, LoadError},
        finetune::{Mode, Settings},
        folder::{self, FolderFile},
        model::{Depth, ResNetConfig},
        weights::{self, Precision},
    },
    web::{
        backend::Backend,
        protocol::{self, Failure, FromWorker, Pass, StartRun, ToWorker},
        training::view::{Effect, RunView},
    },
};

use support::fuzz_input::{MESSAGE, PART, split, val_meta};

fn join(parts: &[&[u8]], sep: &[u8]) -> Vec<u8> {
    parts.join(sep)
}

/// A model small enough for the fuzzer to load thousands of times a second.
fn tiny_card() -> ModelCard {
    let mut card = shipped::card().uncalibrated();
    card.name = "tiny".into();
    card.model = ResNetConfig::new(Depth::Resnet18, 2, 32);
    card.ood = None;
    card.weights = "tiny.bpk".into();
    card
}

fn tiny_weights(precision: Precision) -> Vec<u8> {
    weights::to_bytes(&tiny_card().model.init(&Device::flex()), precision).unwrap()
}

fn json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap()
}

/// Seeds of `weights`, with whether each should load.
fn weights_seeds() -> Vec<(&'static str, Vec<u8>, bool)> {
    let card = json(&tiny_card());
    let mut wide = tiny_card();
    wide.model.width = 128;
    let f16 = tiny_weights(Precision::F16);
    let f32 = tiny_weights(Precision::F32);
    vec![
        ("tiny-f16", join(&[&card, &f16], PART), true),
        ("tiny-f32", join(&[&card, &f32], PART), true),
        ("tiny-without-card", f16.clone(), false),
        ("tiny-as-wide", join(&[&json(&wide), &f16], PART), false),
        (
            "shipped-card-tiny-weights",
            join(&[shipped::CARD, &f16], PART),
            false,
        ),
        (
            "tiny-truncated",
            join(&[&card, &f16[..f16.len() / 2]], PART),
            false,
        ),
    ]
}

/// Seeds of `card`, with whether each should be accepted.
fn card_seeds() -> Vec<(&'static str, Vec<u8>, bool)> {
    let mut bad_classes = tiny_card();
    bad_classes.classes.reverse();
    let mut huge = tiny_card();
    huge.model.input_size = 100_000;
    let mut escape = tiny_card();
    escape.weights = "../../secret".into();
    vec![
        ("shipped", shipped::CARD.to_vec(), true),
        ("tiny", json(&tiny_card()), true),
        ("classes-reversed", json(&bad_classes), false),
        ("huge-input", json(&huge), false),
        ("weights-outside", json(&escape), false),
        ("not-json", b"{\"name\": ".to_vec(), false),
    ]
}

fn settings() -> Settings {
    Settings {
        mode: Mode::Head,
        epochs: 2,
        batch: 4,
        lr: 1e-3,
        augment: true,
        seed: 1,
    }
}

fn start(card: ModelCard, settings: Settings, n_tune: usize, n_val: usize) -> Vec<u8> {
    json(&ToWorker::Start(Box::new(StartRun {
        card,
        settings,
        backend: Backend::Cpu,
        tune_labels: (0..n_tune).map(|i| i % 2 == 0).collect(),
        n_val,
    })))
}

fn pixels(n: usize) -> Vec<u8> {
    protocol::f32_bytes((0..n * 32 * 32).map(|i| (i % 97) as f32 / 97.0))
}

/// The reports of a whole run, as the worker sends them.
fn reports() -> Vec<Vec<u8>> {
    let probs = |pass| {
        json(&FromWorker::Probabilities {
            pass,
            step: 0,
            epoch: 0,
            probs: vec![0.2, 0.7, 0.4, 0.9],
        })
    };
    let step = |step, epoch_finished| {
        json(&FromWorker::Step {
            step,
            epoch: step / 2,
            loss: 0.5,
            correct: 3,
            seen: 4,
            epoch_finished,
            ms: 12.0,
            wasm_mb: 40.0,
            gpu_mb: None,
        })
    };
    let done = json(&FromWorker::Done {
        stopped: false,
        step: 4,
        epoch: 2,
        wasm_mb: 41.0,
    });
    vec![
        json(&FromWorker::Ready),
        json(&FromWorker::Started {
            backend: Backend::Cpu,
            fallback: None,
            steps_per_epoch: 2,
            total_steps: 4,
            wasm_mb: 40.0,
        }),
        probs(Pass::Before),
        step(1, false),
        step(2, true),
        json(&FromWorker::Evaluating { done: 2, total: 4 }),
        probs(Pass::Epoch),
        json(&FromWorker::Paused),
        json(&FromWorker::Resumed),
        step(3, false),
        step(4, true),
        probs(Pass::Epoch),
        join(&[&done, &tiny_weights(Precision::F32)], PART),
    ]
}

/// Seeds of `protocol`, with whether the start message should be accepted.
fn protocol_seeds() -> Vec<(&'static str, Vec<u8>, bool)> {
    let ok = start(tiny_card(), settings(), 4, 2);
    let message = |start: &[u8], parts: &[&[u8]]| {
        let mut all = vec![start];
        all.extend_from_slice(parts);
        join(&all, PART)
    };
    let run = |first: Vec<u8>| {
        let mut all = vec![first];
        all.extend(reports());
        let refs: Vec<&[u8]> = all.iter().map(Vec::as_slice).collect();
        join(&refs, MESSAGE)
    };
    let base = tiny_weights(Precision::F16);
    let mut huge = settings();
    huge.epochs = usize::MAX;
    let failed = json(&FromWorker::Failed {
        kind: Failure::DeviceLost,
        message: "gone".into(),
    });
    vec![
        (
            "run",
            run(message(&ok, &[&base, &pixels(4), &pixels(2)])),
            true,
        ),
        (
            "run-from-scratch",
            run(message(&ok, &[b"", &pixels(4), &pixels(2)])),
            true,
        ),
        (
            "labels-off-by-one",
            message(&ok, &[b"", &pixels(3), &pixels(2)]),
            false,
        ),
        ("no-parts", message(&ok, &[]), false),
        (
            "endless",
            message(
                &start(tiny_card(), huge, 4, 2),
                &[b"", &pixels(4), &pixels(2)],
            ),
            false,
        ),
        (
            "failed",
            join(
                &[&json(&ToWorker::Control(protocol::Control::Pause)), &failed],
                MESSAGE,
            ),
            false,
        ),
    ]
}

fn tiny_png(value: u8) -> Vec<u8> {
    let img =
        image::GrayImage::from_fn(64, 72, |x, y| image::Luma([value ^ (x * 5 + y * 3) as u8]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// Seeds of `dataset`, with whether each should split.
fn dataset_seeds() -> Vec<(&'static str, Vec<u8>, bool)> {
    let file = |path: &str, value: u8| [path.as_bytes(), b"\n", &tiny_png(value)].concat();
    let mut folder = Vec::new();
    for p in 0..5 {
        folder.push(file(
            &format!("mine/NORMAL/IM-{p:04}-0001.png"),
            p as u8 * 10,
        ));
        folder.push(file(
            &format!("mine/PNEUMONIA/person{p}_bacteria_1.png"),
            p as u8 * 20,
        ));
        folder.push(file(
            &format!("mine/PNEUMONIA/person{p}_bacteria_2.png"),
            p as u8 * 30,
        ));
    }
    folder.push(file("mine/other/unlabelled.png", 1));
    folder.push([b"mine/NORMAL/not-an-image.png\n".as_slice(), b"hello"].concat());
    let refs: Vec<&[u8]> = folder.iter().map(Vec::as_slice).collect();
    vec![
        ("folder", join(&refs, PART), true),
        ("one-class", join(&refs[..1], PART), false),
    ]
}

/// Runs a `weights` seed as the target does: `Ok` if it loads.
fn load(seed: &[u8]) -> Result<Classifier, LoadError> {
    let parts: Vec<&[u8]> = split(seed, PART);
    let (card, w) = match parts.as_slice() {
        [w] => (None, *w),
        [card, w, ..] => (Some(*card), *w),
        [] => unreachable!(),
    };
    Classifier::load_user(card, w.to_vec(), &shipped::card(), Device::flex())
}

#[test]
fn weights_seeds_load_or_are_refused_as_meant() {
    for (name, seed, loads) in weights_seeds() {
        match load(&seed) {
            Ok(c) => {
                assert!(loads, "{name} loaded");
                let p = c.classify(&[vec![0.5; 32 * 32]]).unwrap();
                assert!((0.0..=1.0).contains(&p[0].p_pneumonia), "{name}");
            }
            Err(e) => assert!(!loads, "{name}: {e}"),
        }
    }
}

#[test]
fn card_seeds_are_accepted_or_refused_as_meant() {
    for (name, seed, ok) in card_seeds() {
        assert_eq!(ModelCard::from_json(&seed).is_ok(), ok, "{name}");
    }
}

#[test]
fn protocol_seeds_start_or_are_refused_as_meant_and_a_whole_run_reaches_done() {
    for (name, seed, ok) in protocol_seeds() {
        let messages = split(&seed, MESSAGE);
        let parts = split(messages[0], PART);
        let msg: ToWorker = protocol::decode_text(std::str::from_utf8(parts[0]).unwrap()).unwrap();
        let accepted = match msg {
            ToWorker::Start(s) => s
                .inputs(parts[1..].iter().map(|p| p.to_vec()).collect())
                .is_ok(),
            ToWorker::Control(_) => false,
        };
        assert_eq!(accepted, ok, "{name}");
        if messages.len() > 2 {
            let mut view = RunView::new(Mode::Head, 2, 8, val_meta());
            let mut last = Effect::None;
            for m in &messages[1..] {
                let parts = split(m, PART);
                let msg = protocol::decode_text(std::str::from_utf8(parts[0]).unwrap()).unwrap();
                last = view.apply(msg, parts[1..].iter().map(|p| p.to_vec()).collect());
            }
            // The run's weights reach the page, which loads them.
            assert!(
                matches!(last, Effect::Load { stopped: false, .. }),
                "{name}"
            );
            assert_eq!(view.curves.step_loss.len(), 4, "{name}");
        }
    }
}

#[test]
fn dataset_seeds_split_or_are_refused_as_meant() {
    for (name, seed, ok) in dataset_seeds() {
        let mut named = Vec::new();
        let mut skipped = 0;
        for file in split(&seed, PART) {
            let at = file.iter().position(|&b| b == b'\n').unwrap();
            let path = std::str::from_utf8(&file[..at]).unwrap();
            let f = FolderFile {
                path,
                label: None,
                bytes: &file[at + 1..],
            };
            match folder::example(f, 32) {
                Ok(e) => named.push((folder::file_name(path).to_string(), e.pneumonia)),
                Err(_) => skipped += 1,
            }
        }
        assert_eq!(folder::split(&named).is_ok(), ok, "{name}");
        if ok {
            assert_eq!(skipped, 2, "{name}");
        }
    }
}

/// Writes every target's seeds under `fuzz/corpus/<target>/`.
#[test]
#[ignore = "writes files for cargo fuzz"]
fn write_fuzz_seeds() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for (target, seeds) in [
        ("weights", weights_seeds()),
        ("card", card_seeds()),
        ("protocol", protocol_seeds()),
        ("dataset", dataset_seeds()),
    ] {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes, _) in seeds {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
}
