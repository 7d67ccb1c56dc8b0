//! The model card: everything the page and the CLI need besides the weights, and everything a
//! reader needs to judge them. Written by `xray train`, shipped as `public/model/card.json`.

use serde::{Deserialize, Serialize};

use super::{
    band::UncertainBand, class::Class, intervals::Intervals, metrics::Metrics, model::ResNetConfig,
    preprocess::Normalization, stress::StressReport,
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

impl ModelCard {
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
