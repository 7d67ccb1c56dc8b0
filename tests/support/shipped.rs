//! What the project ships and the tests read: the model card, the weights and the gallery's
//! X-rays with their labels. Compiled for both targets (the browser tests embed the files).

use burn::prelude::*;
use xray_web::ml::{card::ModelCard, class::Class, model::ResNet, subset::GalleryItem, weights};

/// The shipped model card.
pub const CARD: &[u8] = include_bytes!("../../public/model/card.json");
/// The gallery's manifest.
pub const GALLERY: &[u8] = include_bytes!("../../public/samples/manifest.json");
/// The repository root.
pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The shipped model card, parsed.
pub fn card() -> ModelCard {
    ModelCard::from_json(CARD).expect("public/model/card.json parses and is valid")
}

/// The shipped weights.
#[cfg(not(target_arch = "wasm32"))]
pub fn weights() -> Vec<u8> {
    let path = format!("{ROOT}/public/model/{}", card().weights);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The shipped weights (embedded: a browser test has no file system).
#[cfg(target_arch = "wasm32")]
pub fn weights() -> Vec<u8> {
    include_bytes!("../../public/model/model.bpk").to_vec()
}

/// The shipped model on `device`, in inference mode, as trained (not fused).
pub fn model(device: &Device) -> ResNet {
    weights::from_bytes(weights(), &card().model, device)
        .expect("the shipped weights load")
        .valid()
}

/// One gallery X-ray.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Its path on disk.
    pub path: String,
    /// Its file name in the gallery.
    pub file: String,
    /// Its true class.
    pub label: Class,
    /// Where it came from in the data set (its name carries the patient).
    pub source: String,
}

/// The gallery's X-rays, in the manifest's order.
pub fn samples() -> Vec<Sample> {
    let items: Vec<GalleryItem> =
        serde_json::from_slice(GALLERY).expect("public/samples/manifest.json parses");
    items
        .into_iter()
        .map(|i| Sample {
            path: format!("{ROOT}/public/samples/{}", i.file),
            file: i.file,
            label: i.label,
            source: i.source,
        })
        .collect()
}

/// The first gallery X-ray of `class`.
pub fn first_of(class: Class) -> Sample {
    samples()
        .into_iter()
        .find(|s| s.label == class)
        .expect("the gallery has both classes")
}

/// A sample's bytes (native: a browser test has no file system and embeds what it needs).
pub fn bytes(sample: &Sample) -> Vec<u8> {
    std::fs::read(&sample.path).unwrap_or_else(|e| panic!("{}: {e}", sample.path))
}
