//! A resumable, step-at-a-time training session for the in-browser demo (and its native tests).
//!
//! `burn-train`'s `Learner` does not run on wasm, so this is a hand-written loop built on the
//! same [`train_step`](super::train::train_step), loss, schedule and augmentation as the native
//! `xray train`. The caller drives it one step at a time, which is what lets the page yield to
//! the browser between steps, pause, resume and stop. Every read of a tensor is asynchronous,
//! as WebGPU requires; natively the futures resolve at once.

use burn::{
    optim::{AdamWConfig, GradientsParams, ModuleOptimizer},
    prelude::*,
};

use super::{
    eval, metrics,
    model::{ResNet, ResNetConfig},
    preprocess::{self, Normalization},
    train::{self, Augment, Rng},
    weights::{self, WeightsError},
};

/// What is trained.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    strum::EnumString,
    strum::IntoStaticStr,
)]
#[strum(serialize_all = "lowercase")]
pub enum Mode {
    /// Start from the given weights and train only the final linear layer (the backbone and its
    /// batch-norm statistics stay frozen). Fast, and cannot damage the features.
    Head,
    /// Start from the given weights and train every layer.
    Whole,
    /// Start from random weights and train every layer.
    Scratch,
}

impl Mode {
    /// The id used in the page (`head`, `whole`, `scratch`; `str::parse` reads it back).
    pub fn id(self) -> &'static str {
        self.into()
    }

    /// A learning rate that works for this mode with AdamW.
    pub fn default_lr(self) -> f64 {
        match self {
            Mode::Head => 1e-3,
            Mode::Whole => 1e-4,
            Mode::Scratch => 1e-3,
        }
    }
}

/// The settings a visitor chooses.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Settings {
    /// What is trained.
    pub mode: Mode,
    /// Passes over the fine-tuning images.
    pub epochs: usize,
    /// Images per step.
    pub batch: usize,
    /// Peak learning rate (warm-up, then cosine decay).
    pub lr: f64,
    /// Random rotation, scale, shift and intensity changes.
    pub augment: bool,
    /// Seed for shuffling and augmentation.
    pub seed: u64,
}

/// The most epochs a run may ask for.
pub const MAX_EPOCHS: usize = 1000;
/// The largest batch a run may ask for.
pub const MAX_BATCH: usize = 256;

impl Settings {
    /// Checks that the settings describe a run that can be made: 1..=[`MAX_EPOCHS`] epochs,
    /// batches of 1..=[`MAX_BATCH`] images, a learning rate in (0, 1).
    pub fn validate(&self) -> Result<(), FineTuneError> {
        if !(1..=MAX_EPOCHS).contains(&self.epochs) || !(1..=MAX_BATCH).contains(&self.batch) {
            return Err(FineTuneError::Setting(format!(
                "epochs must be 1 to {MAX_EPOCHS} and the batch size 1 to {MAX_BATCH} (got {} and {})",
                self.epochs, self.batch
            )));
        }
        if !(self.lr.is_finite() && self.lr > 0.0 && self.lr < 1.0) {
            return Err(FineTuneError::Setting(
                "the learning rate must be between 0 and 1".into(),
            ));
        }
        Ok(())
    }
}

/// One labelled image, `size`×`size` intensities in [0, 1] (not yet standardised).
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// Row-major pixels.
    pub pixels: Vec<f32>,
    /// True for PNEUMONIA.
    pub pneumonia: bool,
}

/// Why training could not start or go on.
#[derive(Debug, thiserror::Error)]
pub enum FineTuneError {
    /// Nothing to train on, or one class missing.
    #[error("training needs images of both classes (got {normal} NORMAL, {pneumonia} PNEUMONIA)")]
    Classes {
        /// NORMAL images.
        normal: usize,
        /// PNEUMONIA images.
        pneumonia: usize,
    },
    /// A setting out of range.
    #[error("{0}")]
    Setting(String),
    /// The starting weights could not be loaded, or the trained ones saved.
    #[error(transparent)]
    Weights(WeightsError),
    /// Reading a result back from the device failed (for example a lost GPU): the one variant
    /// for it, whether a loss, a prediction or the final weights were being read.
    #[error("reading from the device failed: {0}")]
    Read(String),
    /// The loss is no longer a number: the learning rate is too high.
    #[error("the loss became {0} (not a number): lower the learning rate and start again")]
    Diverged(f32),
}

impl From<WeightsError> for FineTuneError {
    fn from(e: WeightsError) -> Self {
        match e {
            WeightsError::Read(detail) => FineTuneError::Read(detail),
            e => FineTuneError::Weights(e),
        }
    }
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepReport {
    /// Mean weighted loss of the batch before the update.
    pub loss: f32,
    /// Images of the batch the model got right before the update.
    pub correct: usize,
    /// Images in the batch.
    pub seen: usize,
    /// Whether this step finished an epoch.
    pub epoch_finished: bool,
}

/// A training run in progress.
pub struct Session {
    model: ResNet,
    optim: ModuleOptimizer,
    settings: Settings,
    size: usize,
    norm: Normalization,
    examples: Vec<Example>,
    class_weights: [f32; 2],
    order: Vec<usize>,
    cursor: usize,
    epoch: usize,
    step: usize,
    rng: Rng,
    device: Device,
    ad: Device,
    augment: Augment,
}

impl Session {
    /// Prepares a run on `device` (autodiff is added here). `base` holds the weights to start
    /// from in burnpack format; it is ignored in [`Mode::Scratch`].
    pub fn new(
        config: &ResNetConfig,
        base: Option<Vec<u8>>,
        norm: Normalization,
        settings: Settings,
        examples: Vec<Example>,
        device: &Device,
    ) -> Result<Self, FineTuneError> {
        let pneumonia = examples.iter().filter(|e| e.pneumonia).count();
        let normal = examples.len() - pneumonia;
        if normal == 0 || pneumonia == 0 {
            return Err(FineTuneError::Classes { normal, pneumonia });
        }
        settings.validate()?;
        let size = config.input_size;
        if let Some(bad) = examples.iter().find(|e| e.pixels.len() != size * size) {
            return Err(FineTuneError::Setting(format!(
                "an image has {} pixels, the model takes {}",
                bad.pixels.len(),
                size * size
            )));
        }
        let ad = device.clone().autodiff();
        let model = match (settings.mode, base) {
            (Mode::Scratch, _) | (_, None) => config.init(&ad),
            (_, Some(bytes)) => weights::from_bytes(bytes, config, &ad)?,
        };
        let mut session = Self {
            model,
            optim: AdamWConfig::new().with_weight_decay(1e-4).init(),
            settings,
            size,
            norm,
            class_weights: train::balanced_class_weights(normal, pneumonia),
            order: (0..examples.len()).collect(),
            examples,
            cursor: 0,
            epoch: 0,
            step: 0,
            rng: Rng::new(settings.seed),
            device: device.clone(),
            ad,
            augment: Augment::default(),
        };
        session.rng.shuffle(&mut session.order);
        Ok(session)
    }

    /// Steps in one epoch.
    pub fn steps_per_epoch(&self) -> usize {
        self.examples.len().div_ceil(self.settings.batch)
    }

    /// Steps in the whole run.
    pub fn total_steps(&self) -> usize {
        self.steps_per_epoch() * self.settings.epochs
    }

    /// Epochs completed.
    pub fn epoch(&self) -> usize {
        self.epoch
    }

    /// Steps completed.
    pub fn step(&self) -> usize {
        self.step
    }

    /// Whether every epoch has run.
    pub fn finished(&self) -> bool {
        self.epoch >= self.settings.epochs
    }

    /// The settings of this run.
    pub fn settings(&self) -> Settings {
        self.settings
    }

    /// Images being trained on.
    pub fn len(&self) -> usize {
        self.examples.len()
    }

    /// Whether there are no images (never true for a session that was created).
    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }

    /// An inference copy of the model as it is now.
    pub fn model(&self) -> ResNet {
        self.model.valid()
    }

    /// The learning rate of the next step.
    pub fn lr(&self) -> f64 {
        let total = self.total_steps();
        let warmup = self.steps_per_epoch().min(total / 10 + 1);
        train::lr_at(self.step, total, warmup, self.settings.lr)
    }

    /// Runs one optimisation step on the next batch.
    pub async fn train_step(&mut self) -> Result<StepReport, FineTuneError> {
        let end = (self.cursor + self.settings.batch).min(self.order.len());
        let chunk: Vec<usize> = self.order[self.cursor..end].to_vec();
        let mut images = Vec::with_capacity(chunk.len());
        let mut labels = Vec::with_capacity(chunk.len());
        for &i in &chunk {
            let ex = &self.examples[i];
            let mut x = if self.settings.augment {
                self.augment.apply(&ex.pixels, self.size, &mut self.rng)
            } else {
                ex.pixels.clone()
            };
            preprocess::normalize(&mut x, self.norm);
            images.push(x);
            labels.push(i64::from(ex.pneumonia));
        }
        let lr = self.lr();
        let ad = &self.ad;
        let targets =
            Tensor::<1, Int>::from_data(TensorData::new(labels.clone(), [labels.len()]), ad);
        let model = self.model.clone();
        let (model, loss, logits) = if self.settings.mode == Mode::Head {
            // Frozen backbone in inference mode (running batch-norm statistics), trainable head.
            let x = preprocess::batch_tensor(&images, self.size, &self.device);
            let features = model.valid().features(x).autodiff();
            let logits = model.head(features);
            let loss =
                train::weighted_cross_entropy(logits.clone(), targets, self.class_weights, 0.0);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            let model = self.optim.step(lr, model, grads);
            (model, loss.detach(), logits.detach())
        } else {
            let x = preprocess::batch_tensor(&images, self.size, ad);
            let out = train::train_step(
                model,
                &mut self.optim,
                x,
                targets,
                self.class_weights,
                0.0,
                lr,
            );
            (out.model, out.loss, out.logits)
        };
        self.model = model;
        let loss = read(loss).await?;
        let loss = loss.first().copied().unwrap_or(f32::NAN);
        if !loss.is_finite() {
            return Err(FineTuneError::Diverged(loss));
        }
        let logits = read(logits).await?;
        let correct = eval::correct(&logits, labels.iter().map(|&y| y == 1));

        self.step += 1;
        self.cursor = end;
        let epoch_finished = self.cursor >= self.order.len();
        if epoch_finished {
            self.cursor = 0;
            self.epoch += 1;
            self.rng.shuffle(&mut self.order);
        }
        Ok(StepReport {
            loss,
            correct,
            seen: chunk.len(),
            epoch_finished,
        })
    }

    /// The weights as they are now, in burnpack format (f32, exact).
    pub async fn weights(&self) -> Result<Vec<u8>, FineTuneError> {
        Ok(weights::to_bytes_async(&self.model.valid(), weights::Precision::F32).await?)
    }
}

async fn read<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, FineTuneError> {
    Ok(weights::read_async(t).await?)
}

/// P(pneumonia) at temperature 1 for images in [0, 1] (standardised here), read back
/// asynchronously. Call it on small slices and yield in between to keep a page responsive.
pub async fn probabilities(
    model: &ResNet,
    images: &[&[f32]],
    norm: Normalization,
    size: usize,
    device: &Device,
) -> Result<Vec<f32>, FineTuneError> {
    let margins = eval::margins_async(model, images, norm, size, device).await?;
    Ok(metrics::probabilities(&margins, 1.0))
}
