//! The end of `xray train`: from the best epoch's weights to what ships. Temperature,
//! threshold and the "uncertain" band are fitted on clean and stressed validation; the
//! weights are stored as f16 where that holds accuracy; the evaluation with intervals, the
//! stress test, the validation predictions and the model card are written.

use std::path::Path;

use burn::prelude::*;

use super::{
    MAX_ERROR_OUTSIDE_BAND, Prediction, SCOPE, TrainArgs,
    checkpoint::{State, write_json},
};
use crate::cli::{CliError, dataset, hardware, report};
use crate::ml::{
    band::{self, UncertainBand},
    card::{DataCounts, ModelCard, TrainingInfo},
    class::CLASSES,
    metrics::{self, Metrics},
    model::{ResNet, ResNetConfig},
    stress,
    weights::{self, Precision},
};

/// The validation part, as loaded, with the files behind it.
pub struct Validation<'a> {
    /// Images and labels.
    pub set: &'a dataset::Loaded,
    /// The file of each loaded image.
    pub files: Vec<dataset::Sample>,
}

/// Temperature, threshold and band, fitted on a model's validation margins clean and under
/// every stress condition together: a choice that suits only the clean images of one site is
/// what fails first elsewhere.
pub struct Calibration {
    /// Temperature (minimum NLL on the pooled margins).
    pub temperature: f32,
    /// Threshold on P(pneumonia) (maximum balanced accuracy on the pooled set).
    pub threshold: f32,
    /// The "uncertain" band.
    pub band: UncertainBand,
}

/// Fits the [`Calibration`] to the clean margins and labels of a validation set and to its
/// margins under each stress condition (labels `stress_labels`).
pub fn calibrate(
    clean_margins: &[f32],
    clean_labels: &[bool],
    stress_labels: &[bool],
    stress_margins: &report::StressMargins,
) -> Calibration {
    let mut pooled_margins = clean_margins.to_vec();
    let mut pooled_labels = clean_labels.to_vec();
    for (_, m) in stress_margins {
        pooled_margins.extend_from_slice(m);
        pooled_labels.extend_from_slice(stress_labels);
    }
    let temperature = metrics::fit_temperature(&pooled_margins, &pooled_labels);
    let pooled_probs = metrics::probabilities(&pooled_margins, temperature);
    let threshold = metrics::fit_threshold(&pooled_probs, &pooled_labels);
    let clean_probs = metrics::probabilities(clean_margins, temperature);
    let band = band::fit_all(
        &[
            (&clean_probs, clean_labels),
            (&pooled_probs, &pooled_labels),
        ],
        threshold,
        MAX_ERROR_OUTSIDE_BAND,
    );
    Calibration {
        temperature,
        threshold,
        band,
    }
}

/// The weights as stored: f16 unless that loses more than 0.1 point of accuracy or AUC.
struct Stored {
    bytes: Vec<u8>,
    dtype: &'static str,
    model: ResNet,
    margins: Vec<f32>,
    metrics: Metrics,
}

fn store(
    raw: &report::Scorer<'_>,
    best_margins: &[f32],
    config: &ResNetConfig,
    val: &Validation,
    cal: &Calibration,
) -> Result<Stored, CliError> {
    let (best, device) = (raw.model, raw.device);
    let score = |m: &[f32]| {
        metrics::evaluate(
            &metrics::probabilities(m, cal.temperature),
            &val.set.labels,
            cal.threshold,
        )
    };
    let f32_metrics = score(best_margins);
    let f16_bytes = weights::to_bytes(best, Precision::F16)?;
    let f16_model = weights::from_bytes(f16_bytes.clone(), config, device)?.valid();
    let f16_margins = report::Scorer {
        model: &f16_model,
        ..*raw
    }
    .margins(&val.set.images)?;
    let f16_metrics = score(&f16_margins);
    let drop = (f32_metrics.accuracy - f16_metrics.accuracy).max(f32_metrics.auc - f16_metrics.auc);
    let stored = if drop <= 0.001 {
        Stored {
            bytes: f16_bytes,
            dtype: "f16",
            model: f16_model,
            margins: f16_margins,
            metrics: f16_metrics,
        }
    } else {
        eprintln!("f16 loses {:.2} points; shipping f32", drop * 100.0);
        Stored {
            bytes: weights::to_bytes(best, Precision::F32)?,
            dtype: "f32",
            model: best.clone(),
            margins: best_margins.to_vec(),
            metrics: f32_metrics.clone(),
        }
    };
    eprintln!(
        "validation f32 vs stored {}: accuracy {:.4} / {:.4}, AUC {:.5} / {:.5}",
        stored.dtype,
        f32_metrics.accuracy,
        stored.metrics.accuracy,
        f32_metrics.auc,
        stored.metrics.auc
    );
    Ok(stored)
}

/// Calibrates and stores `best`, writes the weights, the evaluation, the predictions and the
/// card to `out`, and prints the summary; returns the card.
#[allow(clippy::too_many_arguments)]
pub fn finish(
    args: &TrainArgs,
    out: &Path,
    best: &ResNet,
    val: &Validation,
    state: &State,
    counts: DataCounts,
    kaggle_val: Option<&Path>,
    commit: String,
    device: &Device,
) -> Result<ModelCard, CliError> {
    let config = &state.config;
    let norm = state.normalization;
    let raw = report::Scorer {
        model: best,
        norm,
        size: args.size,
        temperature: 1.0,
        threshold: 0.5,
        device,
        tta: usize::from(args.tta),
    };
    let best_margins = raw.margins(&val.set.images)?;
    eprintln!(
        "calibrating on {} validation images, clean and under {} stress conditions",
        val.files.len(),
        stress::CONDITIONS.len()
    );
    let (stress_labels, stress_margins) = raw.stress_margins(&val.files)?;
    let cal = calibrate(
        &best_margins,
        &val.set.labels,
        &stress_labels,
        &stress_margins,
    );
    let stored = store(&raw, &best_margins, config, val, &cal)?;
    let (temperature, threshold) = (cal.temperature, cal.threshold);
    let probs = metrics::probabilities(&stored.margins, temperature);
    let uncertain = cal.band.measured_on(&probs, &val.set.labels, threshold);
    let patients: Vec<String> = val.files.iter().map(dataset::patient).collect();
    let scorer = report::Scorer {
        model: &stored.model,
        temperature,
        threshold,
        ..raw
    };
    let mut evaluation = scorer.evaluation(&probs, &val.set.labels, &patients, args.seed);
    eprintln!("stress test on {} validation images", val.files.len());
    evaluation.stress = Some(scorer.stress(&val.files)?);
    let predictions: Vec<Prediction> = val
        .files
        .iter()
        .zip(&patients)
        .zip(probs.iter().zip(&stored.margins))
        .map(|((s, patient), (&p, &margin))| Prediction {
            file: s.path.display().to_string(),
            patient: patient.clone(),
            pneumonia: s.pneumonia,
            p_pneumonia: p,
            margin,
        })
        .collect();
    write_json(&out.join("val_predictions.json"), &predictions)?;
    write_json(&out.join("evaluation.json"), &evaluation)?;

    let kaggle_val = match kaggle_val {
        Some(dir) => {
            let set = dataset::load(&dataset::list(dir)?, args.size, true)?;
            let m = raw.margins(&set.images)?;
            Some(metrics::evaluate(
                &metrics::probabilities(&m, temperature),
                &set.labels,
                threshold,
            ))
        }
        _ => None,
    };

    let weights_path = out.join("model.bpk");
    std::fs::write(&weights_path, &stored.bytes).map_err(super::checkpoint::io(&weights_path))?;
    let card = ModelCard {
        name: config.name(),
        model: config.clone(),
        classes: CLASSES.to_vec(),
        normalization: norm,
        threshold,
        temperature,
        weights: "model.bpk".into(),
        weights_dtype: stored.dtype.into(),
        weights_bytes: stored.bytes.len(),
        validation: Some(stored.metrics.clone()),
        kaggle_val,
        training: TrainingInfo {
            dataset: "Kermany et al. 2018, chest-xray-pneumonia (CC BY 4.0), train split; whole patients held out for validation (seeded, stratified by class at the patient level)".into(),
            data: counts,
            val_fraction: args.val_fraction,
            epochs: state.epoch,
            best_epoch: state.best_epoch,
            batch_size: args.batch,
            lr: args.lr,
            seed: args.seed,
            seconds: state.seconds,
            hardware: format!("{} on {}", args.device, hardware()),
            git_commit: commit,
            command: std::iter::once("xray".to_string())
                .chain(std::env::args().skip(1))
                .collect::<Vec<_>>()
                .join(" "),
        },
        history: state.history.clone(),
        ood: None,
        validation_ci: Some(evaluation.ci),
        stress: evaluation.stress.clone(),
        uncertain: Some(uncertain),
        scope: SCOPE.into(),
    };
    write_json(&out.join("card.json"), &card)?;
    for line in report::lines(&evaluation) {
        println!("{line}");
    }
    println!(
        "temperature {temperature:.3}; uncertain band {:.3}..{:.3} holds {:.1} % of validation, {:.2} % wrong outside it",
        uncertain.low,
        uncertain.high,
        100.0 * uncertain.coverage,
        100.0 * uncertain.error_outside
    );
    println!(
        "wrote {} ({} bytes, {}) and {}",
        weights_path.display(),
        stored.bytes.len(),
        stored.dtype,
        out.join("card.json").display()
    );
    Ok(card)
}
