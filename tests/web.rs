//! Browser tests (wasm-bindgen-test in headless Chromium): loading the shipped model from bytes,
//! WebGPU agreeing with the CPU backend, preprocessing giving the same tensor as natively, and
//! the training session lowering the loss on a fixed batch on WebGPU and on the CPU, and the
//! page-to-training-worker messages surviving the trip with their binary parts.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test
#![cfg(target_arch = "wasm32")]

mod support;

use burn::prelude::*;
use support::shipped::{self, card};
use wasm_bindgen_test::*;
use xray_web::{
    ml::{
        classifier::Classifier,
        finetune::{Example, Mode, Session, Settings},
        model::{Depth, ResNetConfig},
        preprocess::{self, Normalization},
    },
    web::{
        backend::Backend,
        browser, engine,
        protocol::{
            Control, Failure, FromWorker, Pass, StartRun, ToWorker, decode, encode, f32_bytes,
            images_from_bytes,
        },
    },
};

wasm_bindgen_test_configure!(run_in_browser);

const NORMAL: &[u8] = include_bytes!("../public/samples/normal-01.jpeg");
const PNEUMONIA: &[u8] = include_bytes!("../public/samples/pneumonia-01.jpeg");

async fn probabilities(device: Device) -> Vec<f32> {
    let classifier = Classifier::load(card(), shipped::weights(), device).expect("weights load");
    let inputs = vec![
        classifier.preprocess(NORMAL).unwrap(),
        classifier.preprocess(PNEUMONIA).unwrap(),
    ];
    classifier
        .classify_async(&inputs)
        .await
        .unwrap()
        .iter()
        .map(|p| p.p_pneumonia)
        .collect()
}

#[wasm_bindgen_test]
async fn model_loads_from_bytes_and_classifies_on_cpu() {
    let p = probabilities(Device::flex()).await;
    assert_eq!(p.len(), 2);
    assert!(p.iter().all(|v| (0.0..=1.0).contains(v)), "{p:?}");
    assert!(
        p[0] < p[1],
        "the pneumonia sample should score higher: {p:?}"
    );
}

// WebGPU is only in the WebGPU workers' module (`--features webgpu`, as .ci/test runs this file);
// the page's module has none (the next test).
#[wasm_bindgen_test]
#[cfg(feature = "webgpu")]
async fn webgpu_agrees_with_cpu() {
    assert!(
        browser::has_navigator_gpu(),
        "headless Chromium must run with --enable-unsafe-webgpu"
    );
    let gpu = engine::webgpu_device()
        .await
        .expect("a WebGPU adapter (SwiftShader)");
    let a = probabilities(Device::flex()).await;
    let b = probabilities(gpu).await;
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-3, "CPU {a:?} vs WebGPU {b:?}");
    }
}

/// The page's module (built without `webgpu`) answers a request for WebGPU with its own error,
/// whatever the browser offers, and runs the page's own models on the CPU.
#[wasm_bindgen_test]
#[cfg(not(feature = "webgpu"))]
async fn the_pages_module_has_no_webgpu_and_says_so() {
    assert!(
        browser::has_navigator_gpu(),
        "headless Chromium offers WebGPU"
    );
    assert_eq!(
        engine::webgpu_device().await.err(),
        Some(xray_web::web::error::WebError::NotInThisModule)
    );
    assert_eq!(engine::page_backend(Backend::WebGpu), Backend::Cpu);
    assert_eq!(engine::page_backend(Backend::Cpu), Backend::Cpu);
}

#[wasm_bindgen_test]
fn bad_weights_are_an_error_not_a_panic() {
    assert!(Classifier::load(card(), b"garbage".to_vec(), Device::flex()).is_err());
}

/// Same fixture as the native test `preprocessing_matches_the_shared_fixture`.
#[wasm_bindgen_test]
fn preprocessing_matches_the_native_fixture() {
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/preprocess.json")).unwrap();
    assert_eq!(fixture["file"], "normal-01.jpeg");
    let size = fixture["size"].as_u64().unwrap() as usize;
    let x = preprocess::preprocess(NORMAL, size, Normalization::default()).unwrap();
    let sum: f64 = x.iter().map(|&v| f64::from(v)).sum();
    assert!(
        (sum - fixture["sum"].as_f64().unwrap()).abs() < 1e-3,
        "sum {sum}"
    );
    for (i, v) in fixture["first"].as_array().unwrap().iter().enumerate() {
        assert!((x[i] - v.as_f64().unwrap() as f32).abs() < 1e-6);
    }
}

/// A fixed batch of the two sample X-rays and their mirror images, at 32 px.
fn fixed_batch(size: usize) -> Vec<Example> {
    let mut out = Vec::new();
    for (bytes, pneumonia) in [(NORMAL, false), (PNEUMONIA, true)] {
        let gray = preprocess::decode_gray16(bytes).unwrap();
        let img = preprocess::to_square_unit(&gray, size);
        let mirrored: Vec<f32> = (0..size * size)
            .map(|i| img[(i / size) * size + (size - 1 - i % size)])
            .collect();
        out.push(Example {
            pixels: img,
            pneumonia,
        });
        out.push(Example {
            pixels: mirrored,
            pneumonia,
        });
    }
    out
}

/// Trains a small ResNet-18 from scratch on one fixed batch; returns the losses.
async fn fixed_batch_losses(device: Device) -> Vec<f32> {
    let config = ResNetConfig::new(Depth::Resnet18, 8, 32);
    let settings = Settings {
        mode: Mode::Scratch,
        epochs: 6,
        batch: 4,
        lr: 3e-3,
        augment: false,
        seed: 5,
    };
    let mut session = Session::new(
        &config,
        None,
        Normalization::default(),
        settings,
        fixed_batch(32),
        &device,
    )
    .unwrap();
    let mut losses = Vec::new();
    while !session.finished() {
        losses.push(session.train_step().await.unwrap().loss);
    }
    losses
}

#[wasm_bindgen_test]
async fn training_lowers_the_loss_on_cpu() {
    let losses = fixed_batch_losses(Device::flex()).await;
    assert_eq!(losses.len(), 6);
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    assert!(losses[5] < 0.7 * losses[0], "{losses:?}");
}

#[wasm_bindgen_test]
#[cfg(feature = "webgpu")]
async fn training_lowers_the_loss_on_webgpu() {
    let gpu = engine::webgpu_device()
        .await
        .expect("a WebGPU adapter (SwiftShader)");
    let losses = fixed_batch_losses(gpu).await;
    assert_eq!(losses.len(), 6);
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    assert!(losses[5] < 0.7 * losses[0], "{losses:?}");
}

#[wasm_bindgen_test]
fn worker_messages_round_trip_with_their_parts() {
    let images = vec![vec![0.25f32; 16], vec![1.0f32; 16], vec![-0.5f32; 16]];
    let pixels = f32_bytes(images.iter().flatten().copied());
    let start = ToWorker::Start(Box::new(StartRun {
        card: card(),
        settings: Settings {
            mode: Mode::Whole,
            epochs: 2,
            batch: 4,
            lr: 1e-4,
            augment: false,
            seed: 9,
        },
        backend: Backend::WebGpu,
        tune_labels: vec![false, true, true],
        n_val: 0,
    }));
    let weights = shipped::weights();
    let (value, transfer) = encode(&start, &[&weights, &pixels, &[]]).expect("encoded");
    assert_eq!(transfer.length(), 3, "every part's buffer is transferred");
    let (back, parts) = decode::<ToWorker>(&value).expect("decoded");
    assert_eq!(back, start);
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[0], weights);
    assert_eq!(images_from_bytes(&parts[1], 16).expect("images"), images);
    assert!(images_from_bytes(&parts[2], 16).expect("none").is_empty());
    // A part that is not whole images is refused, not cut.
    assert!(images_from_bytes(&parts[1][..pixels.len() - 4], 16).is_err());

    for msg in [
        FromWorker::Probabilities {
            pass: Pass::Epoch,
            step: 7,
            epoch: 1,
            probs: vec![0.1, 0.9],
        },
        FromWorker::Failed {
            kind: Failure::DeviceLost,
            message: "the GPU stopped answering".into(),
        },
    ] {
        let (value, _) = encode(&msg, &[]).expect("encoded");
        assert_eq!(decode::<FromWorker>(&value).expect("decoded").0, msg);
    }
    let (value, _) = encode(&ToWorker::Control(Control::Pause), &[]).expect("encoded");
    assert_eq!(
        decode::<ToWorker>(&value).expect("decoded").0,
        ToWorker::Control(Control::Pause)
    );
    // Something that is not one of these messages is an error, not a panic.
    assert!(decode::<FromWorker>(&wasm_bindgen::JsValue::from_str("junk")).is_err());
}
