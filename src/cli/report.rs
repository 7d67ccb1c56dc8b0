//! Scoring a labelled set the way the model card reports it: metrics at the card's threshold,
//! 95 % bootstrap intervals by patient, and (optionally) the stress test. Shared by `xray eval`,
//! `xray train` and `xray cv`.

use burn::prelude::*;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{CliError, dataset};
use crate::ml::{
    eval, input,
    intervals::{self, Intervals},
    metrics::{self, Metrics},
    model::ResNet,
    preprocess::{self, Normalization},
    stress::{self, StressReport, StressResult},
};

/// Bootstrap resamples for every interval the tools print.
pub const RESAMPLES: usize = 1000;

/// What `xray eval --json` prints: the metrics, their intervals and, with `--stress`, the
/// stressed metrics.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Evaluation {
    /// The metrics at the card's threshold.
    #[serde(flatten)]
    pub metrics: Metrics,
    /// 95 % intervals, resampling patients.
    pub ci: Intervals,
    /// Distinct patients among the images.
    pub patients: usize,
    /// The same images under acquisition changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stress: Option<StressReport>,
}

/// Margins of a set under each stress condition, with the condition's name.
pub type StressMargins = Vec<(&'static str, Vec<f32>)>;

/// A model with what turns its logits into a decision.
pub struct Scorer<'a> {
    /// Inference-mode model.
    pub model: &'a ResNet,
    /// Input standardisation.
    pub norm: Normalization,
    /// Input side.
    pub size: usize,
    /// Calibration temperature.
    pub temperature: f32,
    /// Decision threshold on P(pneumonia).
    pub threshold: f32,
    /// Where it runs.
    pub device: &'a Device,
    /// Test-time augmentation views (1: none; see [`eval::TTA_VIEWS`]).
    pub tta: usize,
}

impl Scorer<'_> {
    /// Margins of square [0, 1] images, averaged over the scorer's test-time views.
    pub fn margins(&self, images: &[Vec<f32>]) -> Result<Vec<f32>, CliError> {
        Ok(eval::margins_tta(
            self.model,
            images,
            self.norm,
            self.size,
            self.device,
            self.tta,
        )?)
    }

    /// Calibrated P(pneumonia) of square [0, 1] images.
    pub fn probs(&self, images: &[Vec<f32>]) -> Result<Vec<f32>, CliError> {
        Ok(metrics::probabilities(
            &self.margins(images)?,
            self.temperature,
        ))
    }

    /// Metrics and intervals of predictions at the scorer's threshold.
    pub fn evaluation(
        &self,
        probs: &[f32],
        labels: &[bool],
        patients: &[String],
        seed: u64,
    ) -> Evaluation {
        evaluation(probs, labels, patients, self.threshold, seed)
    }

    /// The labels of the usable `samples` and, for every stress condition, their margins
    /// (logit PNEUMONIA − logit NORMAL, uncalibrated).
    pub fn stress_margins(
        &self,
        samples: &[dataset::Sample],
    ) -> Result<(Vec<bool>, StressMargins), CliError> {
        let decoded: Vec<(input::Gray16, bool)> = samples
            .par_iter()
            .filter_map(|s| {
                let bytes = std::fs::read(&s.path).ok()?;
                let gray = preprocess::decode_gray16(&bytes).ok()?;
                Some((gray, s.pneumonia))
            })
            .collect();
        let labels: Vec<bool> = decoded.iter().map(|d| d.1).collect();
        let mut out = Vec::with_capacity(stress::CONDITIONS.len());
        for (name, condition) in stress::CONDITIONS {
            let images: Vec<Vec<f32>> = decoded
                .par_iter()
                .map(|(g, _)| preprocess::to_square_unit(&stress::apply(g, condition), self.size))
                .collect();
            out.push((name, self.margins(&images)?));
        }
        Ok((labels, out))
    }

    /// Re-scores `samples` under every stress condition.
    pub fn stress(&self, samples: &[dataset::Sample]) -> Result<StressReport, CliError> {
        let (labels, margins) = self.stress_margins(samples)?;
        Ok(stress_report(
            &margins,
            &labels,
            self.temperature,
            self.threshold,
        ))
    }
}

/// Metrics of calibrated predictions at `threshold`, with 95 % intervals resampling patients.
pub fn evaluation(
    probs: &[f32],
    labels: &[bool],
    patients: &[String],
    threshold: f32,
    seed: u64,
) -> Evaluation {
    let ci = intervals::bootstrap(probs, labels, patients, threshold, RESAMPLES, seed);
    Evaluation {
        metrics: metrics::evaluate(probs, labels, threshold),
        patients: ci.patients,
        ci,
        stress: None,
    }
}

/// The stress test's report from the margins under each condition.
pub fn stress_report(
    margins: &StressMargins,
    labels: &[bool],
    temperature: f32,
    threshold: f32,
) -> StressReport {
    let results = margins
        .iter()
        .map(|(name, m)| StressResult {
            condition: name.to_string(),
            metrics: metrics::evaluate(&metrics::probabilities(m, temperature), labels, threshold),
        })
        .collect();
    StressReport::new(results)
}

/// The patient of each sample.
pub fn patients(samples: &[dataset::Sample]) -> Vec<String> {
    samples.iter().map(dataset::patient).collect()
}

fn pct(v: f64) -> String {
    format!("{:.1} %", 100.0 * v)
}

/// The human-readable lines of an evaluation.
pub fn lines(e: &Evaluation) -> Vec<String> {
    let m = &e.metrics;
    let ci = &e.ci;
    let iv = |v: f64, r: [f64; 2]| format!("{}  [{}, {}]", pct(v), pct(r[0]), pct(r[1]));
    let mut out = vec![
        format!("images       {} ({} patients)", m.n, e.patients),
        format!("accuracy     {}", iv(m.accuracy, ci.accuracy)),
        format!(
            "AUC          {:.4}  [{:.4}, {:.4}]",
            m.auc, ci.auc[0], ci.auc[1]
        ),
        format!("sensitivity  {}", iv(m.sensitivity, ci.sensitivity)),
        format!("specificity  {}", iv(m.specificity, ci.specificity)),
        format!("precision    {:.4}", m.precision),
        format!("F1           {:.4}", m.f1),
        format!(
            "ECE          {:.4}  [{:.4}, {:.4}]",
            m.ece, ci.ece[0], ci.ece[1]
        ),
        format!("threshold    {:.4}", m.threshold),
        format!(
            "confusion    tp {} fp {} tn {} fn {}",
            m.confusion.tp, m.confusion.fp, m.confusion.tn, m.confusion.fn_
        ),
        format!(
            "(95 % bootstrap intervals, {} resamples of patients)",
            ci.resamples
        ),
    ];
    if let Some(s) = &e.stress {
        out.push("stress test (accuracy, AUC, sensitivity, specificity, ECE):".into());
        for c in &s.conditions {
            let m = &c.metrics;
            out.push(format!(
                "  {:<14} {}  {:.4}  {}  {}  {:.4}",
                c.condition,
                pct(m.accuracy),
                m.auc,
                pct(m.sensitivity),
                pct(m.specificity),
                m.ece
            ));
        }
        for (name, x) in [("mean", &s.mean), ("worst", &s.worst)] {
            out.push(format!(
                "  {:<14} {}  {:.4}  {}  {}  {:.4}",
                name,
                pct(x.accuracy),
                x.auc,
                pct(x.sensitivity),
                pct(x.specificity),
                x.ece
            ));
        }
    }
    out
}
