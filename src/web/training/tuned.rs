//! The model a run leaves behind, or one the visitor loads: classifying with it next to the
//! shipped model, exporting it (weights and card), and loading weights from files.

use std::rc::Rc;

use leptos::prelude::*;

use super::state::{Export, TrainState, Tuned};
use crate::{
    ml::{
        card::ModelCard,
        classifier::{Classifier, Prediction},
    },
    web::{AppState, browser, engine, error::WebError},
};

/// The fine-tuned (or loaded) model, if any.
fn tuned(ts: TrainState) -> Option<Rc<Tuned>> {
    ts.handles.with_value(|h| h.tuned.clone())
}

/// Classifies with the fine-tuned model too, for the side-by-side column.
pub async fn classify_tuned(ts: TrainState, x: &[f32]) -> Option<Result<Prediction, WebError>> {
    let t = tuned(ts)?;
    Some(
        t.classifier
            .classify_async(&[x.to_vec()])
            .await
            .map_err(WebError::from)
            .and_then(|p| {
                p.into_iter()
                    .next()
                    .ok_or_else(|| WebError::Model("the model gave no output".into()))
            }),
    )
}

/// Loads weights trained by the worker as the tuned model, on the page's backend.
pub async fn load_trained(
    ts: TrainState,
    app: AppState,
    card: Option<ModelCard>,
    weights: Vec<u8>,
    description: String,
) -> Result<(), WebError> {
    let shipped = card.ok_or(WebError::ModelNotLoaded)?;
    let mut card = shipped.uncalibrated();
    card.name = format!("{} ({description})", shipped.name);
    card.weights = "xray-finetuned.bpk".into();
    card.weights_dtype = "f32".into();
    let device = engine::device(engine::page_backend(app.backend.get_untracked())).await?;
    let classifier = Classifier::load(card, weights.clone(), device)?;
    ts.handles.update_value(|h| {
        h.tuned = Some(Rc::new(Tuned {
            classifier,
            weights,
        }))
    });
    ts.tuned.set(Some(description));
    Ok(())
}

/// Exports the fine-tuned model: weights (f32 burnpack) and its card, as object URLs.
pub async fn export(ts: TrainState) -> Result<Export, WebError> {
    let t =
        tuned(ts).ok_or_else(|| WebError::Refused("there is no fine-tuned model yet".into()))?;
    let bytes = t.weights.clone();
    let mut card = t.classifier.card.clone();
    card.weights_bytes = bytes.len();
    let json = serde_json::to_vec_pretty(&card).map_err(|e| WebError::Json {
        what: "the model card".into(),
        detail: e.to_string(),
    })?;
    let export = Export {
        weights_url: browser::bytes_url(&bytes, "application/octet-stream"),
        card_url: browser::bytes_url(&json, "application/json"),
        bytes: bytes.len(),
    };
    // The previous export's URLs are revoked when it is dropped here.
    ts.export.set(Some(export.clone()));
    Ok(export)
}

/// Loads weights chosen by the visitor (a `.bpk`, optionally with its `card.json`) as the
/// fine-tuned model. Without a card the shipped model's architecture and normalisation are
/// assumed, with threshold 0.5 and no temperature.
pub async fn load_weights(ts: TrainState, app: AppState, files: Vec<web_sys::File>) {
    ts.weights_error.set(None);
    match weights_from(app, files).await {
        Ok((tuned, name)) => {
            ts.handles.update_value(|h| h.tuned = Some(Rc::new(tuned)));
            ts.tuned.set(Some(format!(
                "loaded from {name} on {}",
                engine::page_backend(app.backend.get_untracked()).label()
            )));
        }
        Err(e) => ts.weights_error.set(Some(e.to_string())),
    }
}

async fn weights_from(
    app: AppState,
    files: Vec<web_sys::File>,
) -> Result<(Tuned, String), WebError> {
    let shipped = app.card.get_untracked().ok_or(WebError::ModelNotLoaded)?;
    let (cards, others): (Vec<_>, Vec<_>) = files
        .into_iter()
        .partition(|f| f.name().to_ascii_lowercase().ends_with(".json"));
    let weights_file = others.into_iter().next().ok_or_else(|| {
        WebError::Refused("choose a weights file (.bpk), optionally with its card.json".into())
    })?;
    let card = match cards.first() {
        Some(f) => Some(browser::read_file(f).await?),
        None => None,
    };
    let bytes = browser::read_file(&weights_file).await?;
    let device = engine::device(engine::page_backend(app.backend.get_untracked())).await?;
    let name = weights_file.name();
    let mut classifier = Classifier::load_user(card.as_deref(), bytes.clone(), &shipped, device)
        .map_err(|e| WebError::Model(format!("{name}: {e}")))?;
    classifier.card.name = format!("loaded from {name}");
    Ok((
        Tuned {
            classifier,
            weights: bytes,
        },
        name,
    ))
}
