//! The in-browser training session, run natively on the bundled subset: the loss falls on a
//! fixed batch, head-only training leaves the backbone alone, the run ends after its epochs,
//! and exported weights reload to the same predictions. The page runs the same code on
//! WebGPU and the wasm CPU backend (tests/web.rs, tests/e2e.rs).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use std::{
    future::Future,
    pin::pin,
    task::{Context, Poll, Waker},
};

use burn::prelude::*;
use support::shipped::{self, card};
use xray_web::ml::{
    finetune::{self, Example, FineTuneError, Mode, Session, Settings},
    preprocess,
    subset::{Part, SubsetManifest},
    weights,
};

/// Runs a future whose reads resolve at once (native backends).
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

/// The bundled subset, decoded: (fine-tuning part, validation part).
fn bundle() -> (Vec<Example>, Vec<Example>, SubsetManifest) {
    let text = std::fs::read_to_string("public/train/subset.json").expect("subset manifest");
    let manifest: SubsetManifest = serde_json::from_str(&text).expect("manifest parses");
    let data = std::fs::read(format!("public/train/{}", manifest.data)).expect("subset data");
    let (mut tune, mut val) = (Vec::new(), Vec::new());
    for img in &manifest.images {
        let bytes = manifest.bytes_of(img, &data).expect("in bounds");
        let gray = preprocess::decode_gray16(bytes).expect("decodes");
        let ex = Example {
            pixels: preprocess::to_square_unit(&gray, manifest.size),
            pneumonia: img.pneumonia(),
        };
        match img.part {
            Part::Train => tune.push(ex),
            Part::Val => val.push(ex),
        }
    }
    (tune, val, manifest)
}

fn balanced(examples: &[Example], per_class: usize) -> Vec<Example> {
    let normal = examples.iter().filter(|e| !e.pneumonia).take(per_class);
    let pneumonia = examples.iter().filter(|e| e.pneumonia).take(per_class);
    normal.chain(pneumonia).cloned().collect()
}

#[test]
fn bundle_is_balanced_disjoint_and_outside_the_gallery() {
    let (tune, val, manifest) = bundle();
    assert_eq!(tune.len(), 200);
    assert_eq!(val.len(), 100);
    assert_eq!(tune.iter().filter(|e| e.pneumonia).count(), 100);
    assert_eq!(val.iter().filter(|e| e.pneumonia).count(), 50);
    let sources = |part| -> Vec<&str> {
        manifest
            .images
            .iter()
            .filter(|i| i.part == part)
            .map(|i| i.source.as_str())
            .collect()
    };
    let (t, v) = (sources(Part::Train), sources(Part::Val));
    assert!(t.iter().all(|s| !v.contains(s)), "a file is in both parts");
    let gallery: Vec<String> = shipped::samples().into_iter().map(|s| s.source).collect();
    assert!(
        manifest.images.iter().all(|i| !gallery.contains(&i.source)),
        "a gallery image is in the bundle"
    );
}

#[test]
fn loss_falls_on_a_fixed_batch() {
    let card = card();
    let (tune, _, _) = bundle();
    let batch = balanced(&tune, 4);
    let settings = Settings {
        mode: Mode::Scratch,
        epochs: 6,
        batch: 8,
        lr: 1e-3,
        augment: false,
        seed: 1,
    };
    let mut session = Session::new(
        &card.model,
        None,
        card.normalization,
        settings,
        batch,
        &Device::flex(),
    )
    .expect("session");
    assert_eq!(session.total_steps(), 6);
    let mut losses = Vec::new();
    while !session.finished() {
        let r = block_on(session.train_step()).expect("step");
        assert!(r.loss.is_finite());
        assert!(r.epoch_finished, "one step is one epoch here");
        losses.push(r.loss);
    }
    assert_eq!(session.epoch(), 6);
    assert!(losses[5] < 0.7 * losses[0], "loss did not fall: {losses:?}");
}

#[test]
fn head_mode_trains_only_the_head_and_weights_round_trip() {
    let card = card();
    let device = Device::flex();
    let (tune, val, _) = bundle();
    let settings = Settings {
        mode: Mode::Head,
        epochs: 1,
        batch: 8,
        lr: 1e-2,
        augment: true,
        seed: 3,
    };
    let mut session = Session::new(
        &card.model,
        Some(shipped::weights()),
        card.normalization,
        settings,
        balanced(&tune, 8),
        &device,
    )
    .expect("session");
    let before = session.model();
    assert_eq!(session.steps_per_epoch(), 2);
    while !session.finished() {
        block_on(session.train_step()).expect("step");
    }
    let after = session.model();
    let x = preprocess::batch_tensor(
        &[val[0].pixels.clone(), val[60].pixels.clone()],
        card.model.input_size,
        &device,
    );
    let f0 = before.features(x.clone()).into_data();
    let f1 = after.features(x.clone()).into_data();
    f0.assert_approx_eq::<f32>(&f1, burn::tensor::Tolerance::absolute(1e-6));
    let l0: Vec<f32> = before
        .forward(x.clone())
        .into_data()
        .try_to_vec::<f32>()
        .expect("f32");
    let l1: Vec<f32> = after
        .forward(x)
        .into_data()
        .try_to_vec::<f32>()
        .expect("f32");
    assert!(
        l0.iter().zip(&l1).any(|(a, b)| (a - b).abs() > 1e-4),
        "the head did not change"
    );

    // Export, reload, same probabilities.
    let bytes = block_on(session.weights()).expect("export");
    let reloaded = weights::from_bytes(bytes, &card.model, &device)
        .expect("reload")
        .valid();
    let imgs: Vec<&[f32]> = val.iter().take(6).map(|e| e.pixels.as_slice()).collect();
    let size = card.model.input_size;
    let p_a = block_on(finetune::probabilities(
        &after,
        &imgs,
        card.normalization,
        size,
        &device,
    ))
    .expect("probs");
    let p_b = block_on(finetune::probabilities(
        &reloaded,
        &imgs,
        card.normalization,
        size,
        &device,
    ))
    .expect("probs");
    assert_eq!(p_a.len(), 6);
    for (a, b) in p_a.iter().zip(&p_b) {
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }
}

#[test]
fn shipped_model_is_strong_on_the_bundled_validation_part() {
    let card = card();
    let device = Device::flex();
    let (_, val, _) = bundle();
    let model = shipped::model(&device);
    let imgs: Vec<&[f32]> = val.iter().map(|e| e.pixels.as_slice()).collect();
    let probs = block_on(finetune::probabilities(
        &model,
        &imgs,
        card.normalization,
        card.model.input_size,
        &device,
    ))
    .expect("probs");
    let truth: Vec<bool> = val.iter().map(|e| e.pneumonia).collect();
    let auc = xray_web::ml::metrics::auc(&probs, &truth);
    assert!(auc > 0.95, "AUC {auc}");
}

#[test]
fn bad_settings_and_one_class_are_refused() {
    let card = card();
    let (tune, _, _) = bundle();
    let only_normal: Vec<Example> = tune.iter().filter(|e| !e.pneumonia).cloned().collect();
    let ok = Settings {
        mode: Mode::Whole,
        epochs: 1,
        batch: 4,
        lr: 1e-4,
        augment: false,
        seed: 0,
    };
    let new = |settings, examples| {
        Session::new(
            &card.model,
            None,
            card.normalization,
            settings,
            examples,
            &Device::flex(),
        )
    };
    assert!(matches!(
        new(ok, only_normal),
        Err(FineTuneError::Classes { pneumonia: 0, .. })
    ));
    let bad_lr = Settings { lr: f64::NAN, ..ok };
    assert!(matches!(
        new(bad_lr, balanced(&tune, 2)),
        Err(FineTuneError::Setting(_))
    ));
    let zero_epochs = Settings { epochs: 0, ..ok };
    assert!(matches!(
        new(zero_epochs, balanced(&tune, 2)),
        Err(FineTuneError::Setting(_))
    ));
    let wrong_size = vec![
        Example {
            pixels: vec![0.5; 10],
            pneumonia: false,
        },
        Example {
            pixels: vec![0.5; 10],
            pneumonia: true,
        },
    ];
    assert!(matches!(
        new(ok, wrong_size),
        Err(FineTuneError::Setting(_))
    ));
    let garbage = Session::new(
        &card.model,
        Some(b"not weights".to_vec()),
        card.normalization,
        ok,
        balanced(&tune, 2),
        &Device::flex(),
    );
    assert!(matches!(garbage, Err(FineTuneError::Weights(_))));
}
