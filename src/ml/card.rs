//! The model card: everything the page and the CLI need besides the weights, and everything a
//! reader needs to judge them. Written by `xray train`, shipped as `public/model/card.json`.

use serde::{Deserialize, Serialize};

use super::{
    band::UncertainBand,
    class::{CLASSES, Class},
    intervals::Intervals,
    metrics::Metrics,
    model::ResNetConfig,
    preprocess::Normalization,
    stress::StressReport,
};

/// One epoch of the training log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss (class-weighted cross-entropy).
    pub train_loss: f64,
    /// Training accuracy at 0.5 on augmented batches.
    pub train_accuracy: f64,
    /// Validation loss (unweighted cross-entropy).
    pub val_loss: f64,
    /// Validation accuracy at 0.5.
    pub val_accuracy: f64,
    /// Validation AUC.
    pub val_auc: f64,
    /// Learning rate at the end of the epoch.
    pub lr: f64,
    /// Training images per second.
    pub images_per_sec: f64,
    /// Wall-clock seconds for the epoch, validation included.
    pub seconds: f64,
    /// Peak resident memory of the training process so far, MB (0 where not measured).
    #[serde(default)]
    pub peak_rss_mb: f64,
}

/// Image counts of the data the model saw.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DataCounts {
    /// NORMAL images used for training.
    pub train_normal: usize,
    /// PNEUMONIA images used for training.
    pub train_pneumonia: usize,
    /// NORMAL images in the held-out validation split.
    pub val_normal: usize,
    /// PNEUMONIA images in the held-out validation split.
    pub val_pneumonia: usize,
}

/// How the weights were made.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingInfo {
    /// Where the data came from.
    pub dataset: String,
    /// Image counts.
    pub data: DataCounts,
    /// Fraction of each class of the training folder held out for validation.
    pub val_fraction: f64,
    /// Epochs run.
    pub epochs: usize,
    /// Epoch whose weights were kept (best validation AUC).
    pub best_epoch: usize,
    /// Batch size.
    pub batch_size: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Seed of every random choice.
    pub seed: u64,
    /// Total training time in seconds (all resumed runs together).
    pub seconds: f64,
    /// Backend and machine.
    pub hardware: String,
    /// Git commit of the training code.
    pub git_commit: String,
    /// Command that produced the weights.
    pub command: String,
}

/// Model card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    /// Short name.
    pub name: String,
    /// Architecture.
    pub model: ResNetConfig,
    /// Class names in logit order.
    pub classes: Vec<Class>,
    /// Input standardisation.
    pub normalization: Normalization,
    /// P(pneumonia) threshold fitted on validation.
    pub threshold: f32,
    /// Temperature for calibrated probabilities: P = softmax(logits / T).
    pub temperature: f32,
    /// Weights file name, relative to the card.
    pub weights: String,
    /// Storage precision of the weights file.
    pub weights_dtype: String,
    /// Size of the weights file in bytes.
    pub weights_bytes: usize,
    /// Validation metrics of the shipped (stored-precision) weights.
    pub validation: Option<Metrics>,
    /// Metrics on the dataset's own tiny `val/` folder, reported apart.
    pub kaggle_val: Option<Metrics>,
    /// Training details.
    pub training: TrainingInfo,
    /// Per-epoch log.
    pub history: Vec<EpochLog>,
    /// The fitted "does not look like a chest X-ray" criteria (`xray ood-fit`).
    #[serde(default)]
    pub ood: Option<super::ood::OodModel>,
    /// 95 % bootstrap intervals of `validation`, resampling patients.
    #[serde(default)]
    pub validation_ci: Option<Intervals>,
    /// Validation re-scored under acquisition changes (the stand-in for a new hospital).
    #[serde(default)]
    pub stress: Option<StressReport>,
    /// The "uncertain, needs a reader" band around the threshold.
    #[serde(default)]
    pub uncertain: Option<UncertainBand>,
    /// What the figures do and do not cover, in plain words.
    #[serde(default)]
    pub scope: String,
}

/// The widest first stage a card may declare (torchvision's ResNets use 64).
pub const MAX_WIDTH: usize = 128;
/// The smallest input side a card may declare (five halvings leave one cell).
pub const MIN_INPUT: usize = 32;
/// The largest input side a card may declare.
pub const MAX_INPUT: usize = 512;

/// Why a model card cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CardError {
    /// Not JSON, or not a card.
    #[error("not a model card: {0}")]
    Json(String),
    /// A card whose values cannot describe a working model.
    #[error("the model card is not usable: {0}")]
    Invalid(String),
}

fn check(ok: bool, what: impl FnOnce() -> String) -> Result<(), CardError> {
    if ok {
        Ok(())
    } else {
        Err(CardError::Invalid(what()))
    }
}

fn all_finite(values: &[f32]) -> bool {
    values.iter().all(|v| v.is_finite())
}

impl ModelCard {
    /// Parses and [validates](Self::validate) a card (`card.json`, as `xray train` writes it).
    pub fn from_json(bytes: &[u8]) -> Result<Self, CardError> {
        let card: Self =
            serde_json::from_slice(bytes).map_err(|e| CardError::Json(e.to_string()))?;
        card.validate()?;
        Ok(card)
    }

    /// Checks everything the page and the CLI rely on: the two classes in order, an
    /// architecture within [`MAX_WIDTH`] and [`MIN_INPUT`]..=[`MAX_INPUT`] on one channel,
    /// finite normalisation with a positive spread, a threshold in [0, 1], a positive
    /// temperature, an uncertain band inside [0, 1], an OOD model whose vectors fit the
    /// architecture, and a weights file name without a directory in it.
    pub fn validate(&self) -> Result<(), CardError> {
        check(self.classes == CLASSES, || {
            format!(
                "its classes are {:?}; this app knows NORMAL and PNEUMONIA, in that order",
                self.classes
            )
        })?;
        let m = &self.model;
        check((1..=MAX_WIDTH).contains(&m.width), || {
            format!("width {} is outside 1..={MAX_WIDTH}", m.width)
        })?;
        check(m.in_channels == 1, || {
            format!("{} input channels; X-rays have one", m.in_channels)
        })?;
        check((MIN_INPUT..=MAX_INPUT).contains(&m.input_size), || {
            format!(
                "input size {} is outside {MIN_INPUT}..={MAX_INPUT}",
                m.input_size
            )
        })?;
        let n = &self.normalization;
        check(
            n.mean.is_finite() && n.std.is_finite() && n.std > 0.0,
            || {
                format!(
                    "normalisation mean {} and std {} (a finite mean and a positive std needed)",
                    n.mean, n.std
                )
            },
        )?;
        check((0.0..=1.0).contains(&self.threshold), || {
            format!("threshold {} is outside [0, 1]", self.threshold)
        })?;
        check(
            self.temperature.is_finite() && self.temperature > 0.0,
            || format!("temperature {} is not positive", self.temperature),
        )?;
        if let Some(b) = &self.uncertain {
            check(
                (0.0..=1.0).contains(&b.low) && (0.0..=1.0).contains(&b.high) && b.low <= b.high,
                || format!("uncertain band {}..{} is not inside [0, 1]", b.low, b.high),
            )?;
        }
        if let Some(o) = &self.ood {
            let features = m.features();
            let layout = super::ood::LAYOUT * super::ood::LAYOUT;
            check(
                o.feature_mean.len() == features
                    && o.feature_std.len() == features
                    && o.feature_axes.iter().all(|a| a.len() == features)
                    && o.feature_axes.len() <= features,
                || format!("its OOD model does not fit {features} features"),
            )?;
            check(
                o.layout_mean.len() == layout && o.layout_std.len() == layout,
                || format!("its OOD layout is not {layout} values"),
            )?;
            check(
                all_finite(&o.feature_mean)
                    && all_finite(&o.feature_std)
                    && o.feature_axes.iter().all(|a| all_finite(a))
                    && all_finite(&o.layout_mean)
                    && all_finite(&o.layout_std)
                    && !o.max_distance.is_nan()
                    && !o.max_layout.is_nan()
                    && !o.max_colour.is_nan()
                    && !o.min_contrast.is_nan(),
                || "its OOD model holds values that are not numbers".into(),
            )?;
        }
        check(
            !self.weights.is_empty()
                && !self.weights.contains(['/', '\\'])
                && self.weights != ".."
                && self.weights != ".",
            || {
                format!(
                    "weights file {:?} is not a plain file name next to the card",
                    self.weights
                )
            },
        )?;
        Ok(())
    }
}

impl ModelCard {
    /// This card without calibration of its own (threshold 0.5, no temperature, no band, no
    /// figures): for weights trained from it, or loaded without a card.
    pub fn uncalibrated(&self) -> ModelCard {
        let mut c = self.clone();
        c.threshold = 0.5;
        c.temperature = 1.0;
        c.validation = None;
        c.validation_ci = None;
        c.stress = None;
        c.uncertain = None;
        c.history = Vec::new();
        c
    }

    /// Calibrated P(pneumonia) from the two logits.
    pub fn p_pneumonia(&self, logits: [f32; 2]) -> f32 {
        super::metrics::sigmoid((logits[1] - logits[0]) / self.temperature)
    }

    /// Whether P(pneumonia) falls in the card's "uncertain, needs a reader" band (never, for a
    /// card without one).
    pub fn uncertain(&self, p_pneumonia: f32) -> bool {
        self.uncertain.is_some_and(|b| b.contains(p_pneumonia))
    }

    /// The label at this card's threshold.
    pub fn label(&self, p_pneumonia: f32) -> Class {
        Class::from_pneumonia(p_pneumonia >= self.threshold)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> ModelCard {
        ModelCard::from_json(include_bytes!("../../public/model/card.json")).unwrap()
    }

    #[test]
    fn the_shipped_card_is_valid_and_each_unusable_value_is_named() {
        let ok = shipped();
        let refused = |edit: &dyn Fn(&mut ModelCard), says: &str| {
            let mut c = ok.clone();
            edit(&mut c);
            let e = c
                .validate()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains(says), "{says:?} not in {e:?}");
        };
        refused(&|c| c.classes.reverse(), "classes");
        refused(&|c| c.classes.push(Class::Normal), "classes");
        refused(&|c| c.model.width = 0, "width 0");
        refused(&|c| c.model.width = MAX_WIDTH + 1, "width 129");
        refused(&|c| c.model.in_channels = 3, "3 input channels");
        refused(&|c| c.model.input_size = 16, "input size 16");
        refused(&|c| c.model.input_size = 100_000, "input size 100000");
        refused(&|c| c.normalization.std = 0.0, "normalisation");
        refused(&|c| c.normalization.mean = f32::NAN, "normalisation");
        refused(&|c| c.threshold = f32::NAN, "threshold");
        refused(&|c| c.threshold = 1.5, "threshold");
        refused(&|c| c.temperature = 0.0, "temperature");
        refused(&|c| c.temperature = f32::INFINITY, "temperature");
        refused(
            &|c| {
                if let Some(b) = &mut c.uncertain {
                    std::mem::swap(&mut b.low, &mut b.high);
                    b.high = -1.0;
                }
            },
            "uncertain band",
        );
        refused(&|c| c.model.width += 1, "OOD model does not fit");
        refused(
            &|c| {
                if let Some(o) = &mut c.ood {
                    o.layout_mean.pop();
                }
            },
            "OOD layout",
        );
        refused(
            &|c| {
                if let Some(o) = &mut c.ood {
                    o.feature_std[0] = f32::NAN;
                }
            },
            "not numbers",
        );
        refused(
            &|c| c.weights = "../model.bpk".into(),
            "not a plain file name",
        );
        refused(&|c| c.weights = String::new(), "not a plain file name");
        assert!(matches!(
            ModelCard::from_json(b"{}"),
            Err(CardError::Json(_))
        ));
    }
}
