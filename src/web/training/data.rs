//! The training images: the bundled subset (fetched and decoded once) or the visitor's own
//! files, split by patient into fine-tuning and validation parts.

use std::rc::Rc;

use leptos::prelude::*;

use super::{
    state::TrainState,
    view::{DataStatus, ValMeta},
};
use crate::{
    ml::{
        finetune::Example,
        folder::{self, FolderFile},
        preprocess,
        subset::{Part, SubsetManifest, label_from_path},
    },
    web::{browser, error::WebError},
};

/// A validation image with its picture.
#[derive(Clone)]
pub struct ValImage {
    /// The pixels and label.
    pub example: Example,
    /// Name and picture, as the grid shows them.
    pub meta: ValMeta,
}

/// Training data held outside the reactive graph (it is large).
pub struct Dataset {
    /// Fine-tuning part.
    pub tune: Vec<Example>,
    /// Validation part.
    pub val: Vec<ValImage>,
}

impl Dataset {
    /// At most `per_class` fine-tuning and half as many validation images of each class.
    pub fn limited(&self, per_class: usize) -> (Vec<Example>, Vec<ValImage>) {
        let per_val = per_class.div_ceil(2).max(1);
        let mut tune = Vec::new();
        let mut val = Vec::new();
        for class in [false, true] {
            tune.extend(
                self.tune
                    .iter()
                    .filter(|e| e.pneumonia == class)
                    .take(per_class)
                    .cloned(),
            );
            val.extend(
                self.val
                    .iter()
                    .filter(|v| v.example.pneumonia == class)
                    .take(per_val)
                    .cloned(),
            );
        }
        (tune, val)
    }
}

fn describe(tune: &[Example], val: &[ValImage], what: &str) -> String {
    let pn = |it: &mut dyn Iterator<Item = bool>| {
        let v: Vec<bool> = it.collect();
        let p = v.iter().filter(|&&b| b).count();
        format!("{} NORMAL + {} PNEUMONIA", v.len() - p, p)
    };
    format!(
        "{}: fine-tuning {}, validation {}.",
        what,
        pn(&mut tune.iter().map(|e| e.pneumonia)),
        pn(&mut val.iter().map(|v| v.example.pneumonia))
    )
}

fn keep(ts: TrainState, data: Dataset) {
    ts.handles.update_value(|h| h.data = Some(Rc::new(data)));
}

/// The loaded data, if any.
pub fn loaded(ts: TrainState) -> Option<Rc<Dataset>> {
    ts.handles.with_value(|h| h.data.clone())
}

/// Fetches and decodes the bundled subset.
pub async fn load_bundled(ts: TrainState, size: usize) -> Result<(), WebError> {
    ts.data.set(DataStatus::Loading(
        "downloading the bundled X-rays".into(),
        0.0,
    ));
    match fetch_bundled(ts, size).await {
        Ok((tune, val, license)) => {
            ts.data.set(DataStatus::Ready(describe(
                &tune,
                &val,
                &format!("bundled real X-rays ({license})"),
            )));
            keep(ts, Dataset { tune, val });
            ts.skipped.set(Vec::new());
            Ok(())
        }
        Err(e) => {
            ts.data.set(DataStatus::Error(e.to_string()));
            Err(e)
        }
    }
}

async fn fetch_bundled(
    ts: TrainState,
    size: usize,
) -> Result<(Vec<Example>, Vec<ValImage>, String), WebError> {
    let url = browser::asset_url("public/train/subset.json");
    let bytes = browser::fetch_bytes(&url, |_, _| {}).await?;
    let manifest: SubsetManifest = serde_json::from_slice(&bytes).map_err(|e| WebError::Json {
        what: "subset.json".into(),
        detail: e.to_string(),
    })?;
    let expected = manifest.bytes as f64;
    let data = browser::fetch_bytes(
        &browser::asset_url(&format!("public/train/{}", manifest.data)),
        |loaded, total| {
            let total = total.unwrap_or(expected);
            ts.data.set(DataStatus::Loading(
                format!(
                    "downloading the bundled X-rays: {:.2} / {:.2} MB",
                    loaded / 1e6,
                    total / 1e6
                ),
                0.5 * loaded / total.max(1.0),
            ))
        },
    )
    .await?;
    let mut tune = Vec::new();
    let mut val = Vec::new();
    let n = manifest.images.len();
    for (i, img) in manifest.images.iter().enumerate() {
        let jpeg = manifest.bytes_of(img, &data).map_err(|e| WebError::Json {
            what: "subset.json".into(),
            detail: e.to_string(),
        })?;
        let gray = preprocess::decode_gray16(jpeg)
            .map_err(|e| WebError::Refused(format!("{}: {e}", img.name)))?;
        let example = Example {
            pixels: preprocess::to_square_unit(&gray, size),
            pneumonia: img.pneumonia(),
        };
        match img.part {
            Part::Train => tune.push(example),
            Part::Val => {
                let url = browser::bytes_url(jpeg, "image/jpeg");
                let thumb = url.to_string();
                ts.handles.update_value(|h| h.urls.push(url));
                val.push(ValImage {
                    meta: ValMeta {
                        name: img.name.clone(),
                        thumb,
                        pneumonia: example.pneumonia,
                    },
                    example,
                });
            }
        }
        if i % 25 == 24 {
            ts.data.set(DataStatus::Loading(
                format!("decoding the bundled X-rays: {}/{n}", i + 1),
                0.5 + 0.5 * (i + 1) as f64 / n as f64,
            ));
            browser::yield_now().await;
        }
    }
    Ok((tune, val, manifest.license))
}

/// Decodes the visitor's files (each with its label, or `None` to take it from the folder
/// name) and splits them by patient, stratified and seeded, 80 % fine-tuning / 20 % validation.
pub async fn load_user_files(
    ts: TrainState,
    files: Vec<(web_sys::File, Option<bool>)>,
    size: usize,
) {
    let n = files.len();
    let mut skipped = Vec::new();
    let mut items: Vec<ValImage> = Vec::new();
    for (i, (file, label)) in files.into_iter().enumerate() {
        ts.data.set(DataStatus::Loading(
            format!("reading your images: {}/{n}", i + 1),
            i as f64 / n.max(1) as f64,
        ));
        let path = browser::relative_path(&file);
        let read = if label.is_some() || label_from_path(&path).is_some() {
            browser::read_file(&file)
                .await
                .map_err(|e| format!("{path}: {e}"))
        } else {
            // Unlabelled: refused by `folder::example` without reading the file.
            Ok(Vec::new())
        };
        let example = read.and_then(|bytes| {
            folder::example(
                FolderFile {
                    path: &path,
                    label,
                    bytes: &bytes,
                },
                size,
            )
        });
        match example {
            Ok(example) => {
                let url = browser::file_url(&file);
                let thumb = url.to_string();
                ts.handles.update_value(|h| h.urls.push(url));
                let pneumonia = example.pneumonia;
                items.push(ValImage {
                    example,
                    meta: ValMeta {
                        name: file.name(),
                        thumb,
                        pneumonia,
                    },
                });
            }
            Err(e) => skipped.push(e),
        }
        browser::yield_now().await;
    }
    // 20 % held out by patient where the file names carry one (split::patient_id), else by file.
    let named: Vec<(&str, bool)> = items
        .iter()
        .map(|v| (v.meta.name.as_str(), v.example.pneumonia))
        .collect();
    ts.skipped.set(skipped);
    let held = match folder::split(&named) {
        Ok(held) => held,
        Err(e) => {
            ts.data.set(DataStatus::Error(e));
            return;
        }
    };
    let mut tune = Vec::new();
    let mut val = Vec::new();
    for (item, held) in items.iter().zip(held) {
        if held {
            val.push(item.clone());
        } else {
            tune.push(item.example.clone());
        }
    }
    ts.data.set(DataStatus::Ready(describe(
        &tune,
        &val,
        "your images (they stay in this tab)",
    )));
    keep(ts, Dataset { tune, val });
}

/// Forgets the data (and revokes the object URLs of its pictures).
pub fn clear_data(ts: TrainState) {
    ts.handles.update_value(|h| {
        h.data = None;
        h.urls.clear();
    });
    ts.grid.set(Vec::new());
    ts.data.set(DataStatus::Empty);
    ts.skipped.set(Vec::new());
}
