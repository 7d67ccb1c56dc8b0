//! `xray train`: trains the shipped model on a labelled folder, with checkpoints, resume,
//! early stopping on validation AUC, a fitted threshold and temperature, and an f16 export.

mod checkpoint;
mod epoch;
mod finish;

use std::{
    path::{Path, PathBuf},
    time::Instant,
};

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::{CliError, DeviceArg, dataset, git_commit};
use crate::ml::{
    card::{DataCounts, ModelCard},
    model::{Depth, ResNetConfig},
    preprocess::Intensity,
    train::{self, Augment},
    weights,
};
use checkpoint::{Checkpoint, State};
pub use finish::{Calibration, calibrate};

/// Options of `xray train`.
#[derive(Debug, Clone, clap::Args)]
pub struct TrainArgs {
    /// Data folder: a Kaggle root (uses train/, reports val/ apart) or DIR/{NORMAL,PNEUMONIA}/.
    #[arg(long)]
    pub data: PathBuf,
    /// Output folder for checkpoints, logs, weights and the model card.
    #[arg(long, default_value = "runs/latest")]
    pub out: PathBuf,
    /// Epochs at most (early stopping may end sooner).
    #[arg(long, default_value_t = 12)]
    pub epochs: usize,
    /// The depth.
    #[arg(long, value_enum, default_value_t = Depth::Resnet18)]
    pub arch: Depth,
    /// Channels of the first stage (64 = torchvision, 32 = half width).
    #[arg(long, default_value_t = 32)]
    pub width: usize,
    /// Square input size in pixels.
    #[arg(long, default_value_t = 128)]
    pub size: usize,
    /// Batch size.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Peak learning rate (AdamW, warm-up then cosine).
    #[arg(long, default_value_t = 2e-3)]
    pub lr: f64,
    /// AdamW weight decay.
    #[arg(long, default_value_t = 1e-4)]
    pub weight_decay: f64,
    /// Fraction of each class held out for validation.
    #[arg(long, default_value_t = 0.15)]
    pub val_fraction: f64,
    /// Seed of the split, the initialisation, the shuffles and the augmentation.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Epochs without a better validation AUC before stopping.
    #[arg(long, default_value_t = 4)]
    pub patience: usize,
    /// Continue from the checkpoint in --out.
    #[arg(long)]
    pub resume: bool,
    /// cpu (Burn flex) or wgpu (GPU through Vulkan/Metal/DX12).
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    pub device: DeviceArg,
    /// Use at most N images of each class (quick runs and tests).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Stop after N optimisation steps in total (quick runs and tests).
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// Skip files that are not usable images instead of refusing the folder.
    #[arg(long)]
    pub skip_bad: bool,
    /// Turn augmentation off.
    #[arg(long)]
    pub no_augment: bool,
    /// Augmentation strength: default (the page's) or strong (wider intensity changes, blur,
    /// random resized crops).
    #[arg(long, value_enum, default_value_t = AugmentLevel::Default)]
    pub augment: AugmentLevel,
    /// Per-image intensity mapping before standardisation, stored in the card: linear,
    /// per-image or equalize.
    #[arg(long, value_enum, default_value_t = Intensity::Linear)]
    pub intensity: Intensity,
    /// Label smoothing of the training loss (0 = none).
    #[arg(long, default_value_t = 0.0)]
    pub label_smoothing: f32,
    /// Test-time augmentation in the final evaluation and calibration: average the margins of
    /// the first N views (the image, zoomed in and out 8 %, shifted 4 % left and right; 1 =
    /// none). Epoch selection stays on the plain image. For measuring (`xray cv`): the page and
    /// `predict` do not apply it, so a card fitted with it is not one to ship.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=5))]
    pub tta: u8,
}

/// `--augment`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
pub enum AugmentLevel {
    /// [`Augment::default`].
    Default,
    /// [`Augment::strong`].
    Strong,
}

/// The error rate allowed outside the "uncertain" band.
pub const MAX_ERROR_OUTSIDE_BAND: f64 = 0.02;

/// The card's statement of scope.
pub const SCOPE: &str = "Trained and validated on one hospital's paediatric chest X-rays (Guangzhou Women and Children's Medical Center; children aged one to five; frontal views). The validation figures hold out whole patients of the same source, so they do not cover other hospitals, scanners, adults or lateral views, and they were also used to choose the threshold, the temperature and the band: expect lower accuracy elsewhere. The stress figures re-score the same images under exposure, contrast, blur, compression and framing changes as a stand-in for a new site; they are a guide, not a guarantee.";

/// One validation prediction, kept with the run (`val_predictions.json`) for pooling across
/// folds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Prediction {
    /// The file.
    pub file: String,
    /// Its patient.
    pub patient: String,
    /// True label.
    pub pneumonia: bool,
    /// Calibrated P(pneumonia).
    pub p_pneumonia: f32,
    /// Logit(PNEUMONIA) − logit(NORMAL), before calibration.
    pub margin: f32,
}

/// Runs `xray train`.
pub fn run(args: &TrainArgs) -> Result<(), CliError> {
    let layout = dataset::layout(&args.data)?;
    let mut samples = dataset::list(&layout.train)?;
    if let Some(n) = args.limit {
        samples = dataset::limit_per_class(samples, n);
    }
    let (train_samples, val_samples) =
        dataset::split_by_patient(&samples, args.val_fraction, args.seed);
    eprintln!(
        "data: {} training and {} validation images from {} (whole patients, {} of each class held out)",
        train_samples.len(),
        val_samples.len(),
        layout.train.display(),
        args.val_fraction
    );
    let kaggle_val = layout.kaggle_val.filter(|_| args.limit.is_none());
    train_on(
        args,
        &args.out,
        &train_samples,
        &val_samples,
        kaggle_val.as_deref(),
    )
    .map(|_| ())
}

/// Trains on `train_samples`, chooses the epoch, calibration and band on `val_samples`, and
/// writes checkpoints, the weights, the card and the validation predictions to `out`; returns
/// the card. Resumes from `out` with `--resume` (a finished run only re-does the final steps).
pub fn train_on(
    args: &TrainArgs,
    out: &Path,
    train_samples: &[dataset::Sample],
    val_samples: &[dataset::Sample],
    kaggle_val: Option<&Path>,
) -> Result<ModelCard, CliError> {
    if args.size < 32 || args.batch == 0 || args.epochs == 0 || args.width == 0 {
        return Err(CliError::Usage(
            "--size must be at least 32; --batch, --epochs and --width above 0".into(),
        ));
    }
    let device = args.device.device();
    device.seed(args.seed);
    // Recorded before training starts: the code that runs is the code of this commit.
    let commit = git_commit();
    let config = ResNetConfig::new(args.arch, args.width, args.size);
    let ckpt = Checkpoint::create(out)?;

    let t_load = Instant::now();
    let train_set = dataset::load(train_samples, args.size, args.skip_bad)?;
    let val_set = dataset::load(val_samples, args.size, args.skip_bad)?;
    for s in train_set.skipped.iter().chain(&val_set.skipped) {
        eprintln!("skipped {s}");
    }
    eprintln!("decoded in {:.1} s", t_load.elapsed().as_secs_f64());
    let counts = counts(&train_set, &val_set);
    if counts.train_normal == 0 || counts.train_pneumonia == 0 || val_set.images.is_empty() {
        return Err(CliError::Usage(
            "both classes need training images and the validation split must not be empty".into(),
        ));
    }

    // Model, optimizer and state (fresh or resumed).
    let ad = device.clone().autodiff();
    let optim = checkpoint::optimizer(args.weight_decay);
    let resumed = if args.resume {
        ckpt.resume(&config, args.intensity, optim, &ad)?
    } else {
        None
    };
    let (mut model, mut optim, mut state) = match resumed {
        Some(run) => run,
        None => (
            config.init(&ad),
            checkpoint::optimizer(args.weight_decay),
            State {
                config: config.clone(),
                normalization: checkpoint::fit_normalization(&train_set.images, args.intensity),
                epoch: 0,
                step: 0,
                best_auc: -1.0,
                best_epoch: 0,
                seconds: 0.0,
                history: Vec::new(),
            },
        ),
    };
    let steps_per_epoch = train_set.images.len().div_ceil(args.batch);
    let total_steps = steps_per_epoch * args.epochs;
    let plan = epoch::Plan {
        args,
        train: &train_set,
        val: &val_set,
        norm: state.normalization,
        augment: match args.augment {
            AugmentLevel::Default => Augment::default(),
            AugmentLevel::Strong => Augment::strong(),
        },
        class_weights: train::balanced_class_weights(counts.train_normal, counts.train_pneumonia),
        total_steps,
        warmup: steps_per_epoch.min(total_steps / 10 + 1),
    };
    eprintln!(
        "model: {} ({} parameters), {} steps per epoch, class weights {:.2}/{:.2}, device {}",
        config.name(),
        model.num_params(),
        steps_per_epoch,
        plan.class_weights[0],
        plan.class_weights[1],
        args.device
    );

    while state.epoch < args.epochs {
        if args.max_steps.is_some_and(|m| state.step >= m) {
            break;
        }
        if state.epoch - state.best_epoch >= args.patience && state.best_epoch > 0 {
            eprintln!(
                "early stop: no better validation AUC for {} epochs",
                args.patience
            );
            break;
        }
        let (trained, step, log) = epoch::run(
            &plan,
            state.epoch + 1,
            state.step,
            model,
            &mut optim,
            &device,
        )?;
        model = trained;
        let best = log.val_auc > state.best_auc;
        if best {
            state.best_auc = log.val_auc;
            state.best_epoch = log.epoch;
        }
        state.step = step;
        state.epoch = log.epoch;
        state.seconds += log.seconds;
        state.history.push(log);
        ckpt.save(out, &model, &optim, &state, best)?;
    }

    let best_path = ckpt.best_path();
    let best_bytes = std::fs::read(&best_path).map_err(checkpoint::io(&best_path))?;
    let best = weights::from_bytes(best_bytes, &config, &device)?.valid();
    let val = finish::Validation {
        set: &val_set,
        files: val_set
            .indices
            .iter()
            .map(|&i| val_samples[i].clone())
            .collect(),
    };
    finish::finish(
        args, out, &best, &val, &state, counts, kaggle_val, commit, &device,
    )
}

/// Image counts of both parts.
fn counts(train: &dataset::Loaded, val: &dataset::Loaded) -> DataCounts {
    let pneumonia = |l: &dataset::Loaded| l.labels.iter().filter(|&&y| y).count();
    DataCounts {
        train_normal: train.labels.len() - pneumonia(train),
        train_pneumonia: pneumonia(train),
        val_normal: val.labels.len() - pneumonia(val),
        val_pneumonia: pneumonia(val),
    }
}
