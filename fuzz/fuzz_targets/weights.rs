//! Fuzzes "Load weights": a burnpack file, optionally preceded by its `card.json` and
//! `\0PART\0`, loaded exactly as the page loads a visitor's files
//! ([`Classifier::load_user`], with the shipped card as the fallback). It must load or refuse
//! within the budget (a card's architecture is bounded, every tensor's name, type, shape and
//! byte range is checked before it is read), never panic.

#![no_main]

#[path = "common.rs"]
mod common;

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use burn::prelude::Device;
use xray_web::ml::{card::ModelCard, classifier::Classifier};

static SHIPPED: LazyLock<ModelCard> = LazyLock::new(|| {
    ModelCard::from_json(include_bytes!("../../public/model/card.json")).expect("shipped card")
});

fuzz_target!(|data: &[u8]| {
    let parts = common::split(data, common::PART);
    let (card, weights) = match parts.as_slice() {
        [weights] => (None, *weights),
        [card, weights, ..] => (Some(*card), *weights),
        [] => return,
    };
    if let Ok(c) = Classifier::load_user(card, weights.to_vec(), &SHIPPED, Device::flex()) {
        // A model that loads must also run, on an input of its own size.
        let size = c.card.model.input_size;
        if size <= 64 {
            let x = vec![0.5f32; size * size];
            let p = c.classify(&[x]).expect("a loaded model classifies");
            assert_eq!(p.len(), 1);
        }
    }
});
