//! Browser tests (wasm-bindgen-test in headless Chromium): loading the shipped model from bytes,
//! WebGPU agreeing with the CPU backend, and preprocessing giving the same tensor as natively.

#![cfg(target_arch = "wasm32")]

use burn::prelude::*;
use wasm_bindgen_test::*;
use xray_web::{
    ml::{
        card::ModelCard,
        classifier::Classifier,
        preprocess::{self, Normalization},
    },
    web::engine,
};

wasm_bindgen_test_configure!(run_in_browser);

const CARD: &[u8] = include_bytes!("../public/model/card.json");
const WEIGHTS: &[u8] = include_bytes!("../public/model/model.bpk");
const NORMAL: &[u8] = include_bytes!("../public/samples/normal-01.jpeg");
const PNEUMONIA: &[u8] = include_bytes!("../public/samples/pneumonia-01.jpeg");

fn card() -> ModelCard {
    serde_json::from_slice(CARD).expect("card.json")
}

async fn probabilities(device: Device) -> Vec<f32> {
    let classifier = Classifier::load(card(), WEIGHTS.to_vec(), device).expect("weights load");
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

#[wasm_bindgen_test]
async fn webgpu_agrees_with_cpu() {
    assert!(
        engine::has_navigator_gpu(),
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
