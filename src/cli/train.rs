//! `xray train`: trains the shipped model on a labelled folder, with checkpoints, resume,
//! early stopping on validation AUC, a fitted threshold and temperature, and an f16 export.

use std::{
    path::{Path, PathBuf},
    time::Instant,
};

use burn::{optim::AdamWConfig, prelude::*};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{CliError, dataset, device_named, git_commit, hardware, peak_rss_mb, report};
use crate::ml::{
    band,
    card::{DataCounts, EpochLog, ModelCard, TrainingInfo},
    class::CLASSES,
    metrics,
    model::{Depth, ResNet, ResNetConfig},
    preprocess::{self, Intensity, Normalization},
    train::{self, Augment, Rng},
    weights::{self, Precision},
};

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
    /// resnet18, resnet34 or resnet50.
    #[arg(long, default_value = "resnet18")]
    pub arch: String,
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
    /// cpu (Burn flex, default) or wgpu (GPU through Vulkan/Metal/DX12).
    #[arg(long, default_value = "cpu")]
    pub device: String,
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
    #[arg(long, value_enum, default_value_t = IntensityArg::Linear)]
    pub intensity: IntensityArg,
    /// Label smoothing of the training loss (0 = none).
    #[arg(long, default_value_t = 0.0)]
    pub label_smoothing: f32,
}

/// `--augment`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
pub enum AugmentLevel {
    /// [`Augment::default`].
    Default,
    /// [`Augment::strong`].
    Strong,
}

/// `--intensity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IntensityArg {
    /// [`Intensity::Linear`].
    Linear,
    /// [`Intensity::PerImage`].
    PerImage,
    /// [`Intensity::Equalize`].
    Equalize,
}

impl From<IntensityArg> for Intensity {
    fn from(a: IntensityArg) -> Self {
        match a {
            IntensityArg::Linear => Intensity::Linear,
            IntensityArg::PerImage => Intensity::PerImage,
            IntensityArg::Equalize => Intensity::Equalize,
        }
    }
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

/// What a checkpoint remembers besides the weights and optimizer.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    config: ResNetConfig,
    normalization: Normalization,
    epoch: usize,
    step: usize,
    best_auc: f64,
    best_epoch: usize,
    seconds: f64,
    history: Vec<EpochLog>,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> CliError + '_ {
    move |e| CliError::Io(format!("{}: {e}", path.display()))
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| CliError::Io(e.to_string()))?;
    std::fs::write(path, text).map_err(io(path))
}

fn write_history(out: &Path, history: &[EpochLog]) -> Result<(), CliError> {
    let mut csv = String::from(
        "epoch,train_loss,train_accuracy,val_loss,val_accuracy,val_auc,lr,images_per_sec,seconds\n",
    );
    for h in history {
        csv.push_str(&format!(
            "{},{:.5},{:.4},{:.5},{:.4},{:.5},{:.3e},{:.2},{:.1}\n",
            h.epoch,
            h.train_loss,
            h.train_accuracy,
            h.val_loss,
            h.val_accuracy,
            h.val_auc,
            h.lr,
            h.images_per_sec,
            h.seconds
        ));
    }
    let path = out.join("history.csv");
    std::fs::write(&path, csv).map_err(io(&path))?;
    write_json(&out.join("history.json"), &history)
}

/// Mean and standard deviation of all training pixels after the per-image mapping.
fn fit_normalization(images: &[Vec<f32>], intensity: Intensity) -> Normalization {
    let (sum, sum_sq, n) = images
        .par_iter()
        .map(|img| {
            let mut img = img.clone();
            preprocess::map_intensity(&mut img, intensity);
            let s: f64 = img.iter().map(|&v| f64::from(v)).sum();
            let s2: f64 = img.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
            (s, s2, img.len())
        })
        .reduce(|| (0.0, 0.0, 0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2));
    let mean = sum / n.max(1) as f64;
    let var = (sum_sq / n.max(1) as f64 - mean * mean).max(1e-8);
    Normalization {
        mean: mean as f32,
        std: var.sqrt() as f32,
        intensity,
    }
}

/// Validation margins (logit PNEUMONIA − logit NORMAL) of `images`, in batches.
pub fn margins(
    model: &ResNet,
    images: &[Vec<f32>],
    norm: Normalization,
    size: usize,
    device: &Device,
) -> Result<Vec<f32>, CliError> {
    let mut out = Vec::with_capacity(images.len());
    for chunk in images.chunks(64) {
        let batch: Vec<Vec<f32>> = chunk
            .iter()
            .map(|img| {
                let mut x = img.clone();
                preprocess::normalize(&mut x, norm);
                x
            })
            .collect();
        let logits = model.forward(preprocess::batch_tensor(&batch, size, device));
        let values = weights::f32_values(logits.into_data())?;
        out.extend(values.chunks_exact(2).map(|l| l[1] - l[0]));
    }
    Ok(out)
}

fn mean_nll(margins: &[f32], labels: &[bool]) -> f64 {
    margins
        .iter()
        .zip(labels)
        .map(|(&m, &y)| {
            let p = f64::from(metrics::sigmoid(m)).clamp(1e-7, 1.0 - 1e-7);
            if y { -p.ln() } else { -(1.0 - p).ln() }
        })
        .sum::<f64>()
        / margins.len().max(1) as f64
}

fn probs(margins: &[f32], temperature: f32) -> Vec<f32> {
    margins
        .iter()
        .map(|&m| metrics::sigmoid(m / temperature))
        .collect()
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
    let depth = Depth::parse(&args.arch).ok_or_else(|| {
        CliError::Usage(format!(
            "unknown --arch {}; use resnet18, resnet34 or resnet50",
            args.arch
        ))
    })?;
    if args.size < 32 || args.batch == 0 || args.epochs == 0 || args.width == 0 {
        return Err(CliError::Usage(
            "--size must be at least 32; --batch, --epochs and --width above 0".into(),
        ));
    }
    let device = device_named(&args.device)?;
    device.seed(args.seed);
    // Recorded before training starts: the code that runs is the code of this commit.
    let commit = git_commit();
    let config = ResNetConfig::new(depth, args.width, args.size);
    let ckpt = out.join("checkpoint");
    std::fs::create_dir_all(&ckpt).map_err(io(&ckpt))?;

    let t_load = Instant::now();
    let train_set = dataset::load(train_samples, args.size, args.skip_bad)?;
    let val_set = dataset::load(val_samples, args.size, args.skip_bad)?;
    for s in train_set.skipped.iter().chain(&val_set.skipped) {
        eprintln!("skipped {s}");
    }
    eprintln!("decoded in {:.1} s", t_load.elapsed().as_secs_f64());
    let n_pneu = train_set.labels.iter().filter(|&&y| y).count();
    let n_norm = train_set.labels.len() - n_pneu;
    let val_pneu = val_set.labels.iter().filter(|&&y| y).count();
    let counts = DataCounts {
        train_normal: n_norm,
        train_pneumonia: n_pneu,
        val_normal: val_set.labels.len() - val_pneu,
        val_pneumonia: val_pneu,
    };
    if n_norm == 0 || n_pneu == 0 || val_set.images.is_empty() {
        return Err(CliError::Usage(
            "both classes need training images and the validation split must not be empty".into(),
        ));
    }
    let class_weights = train::balanced_class_weights(n_norm, n_pneu);

    // Model, optimizer and state (fresh or resumed).
    let ad = device.clone().autodiff();
    let mut optim = AdamWConfig::new()
        .with_weight_decay(args.weight_decay as f32)
        .init();
    let state_path = ckpt.join("state.json");
    let (mut model, mut state) = if args.resume && state_path.is_file() {
        let text = std::fs::read_to_string(&state_path).map_err(io(&state_path))?;
        let state: State = serde_json::from_str(&text)
            .map_err(|e| CliError::Io(format!("{}: {e}", state_path.display())))?;
        if state.config != config {
            return Err(CliError::Usage(format!(
                "the checkpoint in {} is for {}, not {}",
                ckpt.display(),
                state.config.name(),
                config.name()
            )));
        }
        let bytes = std::fs::read(ckpt.join("model.bpk")).map_err(io(&ckpt))?;
        let model = weights::from_bytes(bytes, &config, &ad)?;
        optim = optim
            .load(ckpt.join("optim.bpk"))
            .map_err(|e| CliError::Io(format!("optimizer state: {e}")))?;
        eprintln!(
            "resuming after epoch {} (best AUC {:.4} at epoch {})",
            state.epoch, state.best_auc, state.best_epoch
        );
        (model, state)
    } else {
        let normalization = fit_normalization(&train_set.images, args.intensity.into());
        (
            config.init(&ad),
            State {
                config: config.clone(),
                normalization,
                epoch: 0,
                step: 0,
                best_auc: -1.0,
                best_epoch: 0,
                seconds: 0.0,
                history: Vec::new(),
            },
        )
    };
    let norm = state.normalization;
    let steps_per_epoch = train_set.images.len().div_ceil(args.batch);
    let total_steps = steps_per_epoch * args.epochs;
    let warmup = steps_per_epoch.min(total_steps / 10 + 1);
    let augment = match args.augment {
        AugmentLevel::Default => Augment::default(),
        AugmentLevel::Strong => Augment::strong(),
    };
    if state.normalization.intensity != Intensity::from(args.intensity) {
        return Err(CliError::Usage(format!(
            "the checkpoint in {} was trained with --intensity {:?}",
            ckpt.display(),
            state.normalization.intensity
        )));
    }
    eprintln!(
        "model: {} ({} parameters), {} steps per epoch, class weights {:.2}/{:.2}, device {}",
        config.name(),
        model.num_params(),
        steps_per_epoch,
        class_weights[0],
        class_weights[1],
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
        let epoch = state.epoch + 1;
        let t0 = Instant::now();
        let mut order: Vec<usize> = (0..train_set.images.len()).collect();
        Rng::new(args.seed.wrapping_mul(1000).wrapping_add(epoch as u64)).shuffle(&mut order);
        let bar = ProgressBar::new(order.len() as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "epoch {prefix} [{bar:28}] {pos}/{len} img  {msg}  ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix(format!("{epoch}/{}", args.epochs));
        let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
        let mut lr = args.lr;
        for chunk in order.chunks(args.batch) {
            if args.max_steps.is_some_and(|m| state.step >= m) {
                break;
            }
            let batch: Vec<Vec<f32>> = chunk
                .par_iter()
                .map(|&i| {
                    let mut rng = Rng::new(
                        args.seed ^ ((epoch as u64) << 40) ^ (i as u64).wrapping_mul(0x9E37_79B9),
                    );
                    let mut x = if args.no_augment {
                        train_set.images[i].clone()
                    } else {
                        augment.apply(&train_set.images[i], args.size, &mut rng)
                    };
                    preprocess::normalize(&mut x, norm);
                    x
                })
                .collect();
            let labels: Vec<i64> = chunk
                .iter()
                .map(|&i| i64::from(train_set.labels[i]))
                .collect();
            let x = preprocess::batch_tensor(&batch, args.size, &ad);
            let y =
                Tensor::<1, Int>::from_data(TensorData::new(labels.clone(), [labels.len()]), &ad);
            lr = train::lr_at(state.step, total_steps, warmup, args.lr);
            let step = train::train_step(
                model,
                &mut optim,
                x,
                y,
                class_weights,
                args.label_smoothing,
                lr,
            );
            model = step.model;
            let loss: f32 = step.loss.into_scalar();
            let logits = weights::f32_values(step.logits.into_data())?;
            correct += logits
                .chunks_exact(2)
                .zip(&labels)
                .filter(|(l, y)| (l[1] > l[0]) == (**y == 1))
                .count();
            loss_sum += f64::from(loss) * chunk.len() as f64;
            seen += chunk.len();
            state.step += 1;
            bar.inc(chunk.len() as u64);
            let rate = seen as f64 / t0.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!(
                "loss {:.4}  {rate:.1} img/s",
                loss_sum / seen as f64
            ));
        }
        bar.finish_and_clear();
        let train_secs = t0.elapsed().as_secs_f64();

        let valid = model.valid();
        let val_margins = margins(&valid, &val_set.images, norm, args.size, &device)?;
        let val_probs = probs(&val_margins, 1.0);
        let m = metrics::evaluate(&val_probs, &val_set.labels, 0.5);
        let log = EpochLog {
            epoch,
            train_loss: loss_sum / seen.max(1) as f64,
            train_accuracy: correct as f64 / seen.max(1) as f64,
            val_loss: mean_nll(&val_margins, &val_set.labels),
            val_accuracy: m.accuracy,
            val_auc: m.auc,
            lr,
            images_per_sec: seen as f64 / train_secs.max(1e-9),
            seconds: t0.elapsed().as_secs_f64(),
            peak_rss_mb: peak_rss_mb(),
        };
        eprintln!(
            "epoch {epoch}: train loss {:.4} acc {:.3} | val loss {:.4} acc {:.3} AUC {:.4} | {:.1} img/s, {:.0} s, peak memory {:.0} MB",
            log.train_loss,
            log.train_accuracy,
            log.val_loss,
            log.val_accuracy,
            log.val_auc,
            log.images_per_sec,
            log.seconds,
            log.peak_rss_mb
        );
        state.seconds += log.seconds;
        state.history.push(log);
        state.epoch = epoch;
        let bytes = weights::to_bytes(&model, Precision::F32)?;
        if m.auc > state.best_auc {
            state.best_auc = m.auc;
            state.best_epoch = epoch;
            let best = ckpt.join("best.bpk");
            std::fs::write(&best, &bytes).map_err(io(&best))?;
        }
        let model_path = ckpt.join("model.bpk");
        std::fs::write(&model_path, bytes).map_err(io(&model_path))?;
        optim
            .save(ckpt.join("optim.bpk"))
            .map_err(|e| CliError::Io(format!("optimizer state: {e}")))?;
        write_json(&state_path, &state)?;
        write_history(out, &state.history)?;
    }

    // Best weights -> temperature, threshold, export, final validation at stored precision.
    let best_path = ckpt.join("best.bpk");
    let best_bytes = std::fs::read(&best_path).map_err(io(&best_path))?;
    let best = weights::from_bytes(best_bytes, &config, &device)?.valid();
    let val_margins = margins(&best, &val_set.images, norm, args.size, &device)?;
    // Temperature, threshold and band are fitted on validation as it is and under every stress
    // condition together: a choice that suits only the clean images of one site is what fails
    // first elsewhere.
    let val_files: Vec<&dataset::Sample> =
        val_set.indices.iter().map(|&i| &val_samples[i]).collect();
    let kept: Vec<dataset::Sample> = val_files.iter().map(|s| (*s).clone()).collect();
    eprintln!(
        "calibrating on {} validation images, clean and under {} stress conditions",
        kept.len(),
        crate::ml::stress::CONDITIONS.len()
    );
    let raw = report::Scorer {
        model: &best,
        norm,
        size: args.size,
        temperature: 1.0,
        threshold: 0.5,
        device: &device,
    };
    let (stress_labels, stress_margins) = raw.stress_margins(&kept)?;
    let mut pooled_margins = val_margins.clone();
    let mut pooled_labels = val_set.labels.clone();
    for (_, m) in &stress_margins {
        pooled_margins.extend_from_slice(m);
        pooled_labels.extend_from_slice(&stress_labels);
    }
    let temperature = metrics::fit_temperature(&pooled_margins, &pooled_labels);
    let pooled_probs = probs(&pooled_margins, temperature);
    let threshold = metrics::fit_threshold(&pooled_probs, &pooled_labels);
    let clean_probs = probs(&val_margins, temperature);
    let uncertain = band::fit_all(
        &[
            (&clean_probs, &val_set.labels),
            (&pooled_probs, &pooled_labels),
        ],
        threshold,
        MAX_ERROR_OUTSIDE_BAND,
    );
    let f32_metrics = metrics::evaluate(
        &probs(&val_margins, temperature),
        &val_set.labels,
        threshold,
    );

    let f16_bytes = weights::to_bytes(&best, Precision::F16)?;
    let f16_model = weights::from_bytes(f16_bytes.clone(), &config, &device)?.valid();
    let f16_margins = margins(&f16_model, &val_set.images, norm, args.size, &device)?;
    let f16_metrics = metrics::evaluate(
        &probs(&f16_margins, temperature),
        &val_set.labels,
        threshold,
    );
    let drop = (f32_metrics.accuracy - f16_metrics.accuracy).max(f32_metrics.auc - f16_metrics.auc);
    let (weights_bytes, dtype, val_metrics) = if drop <= 0.001 {
        (f16_bytes, "f16", f16_metrics)
    } else {
        eprintln!("f16 loses {:.2} points; shipping f32", drop * 100.0);
        (
            weights::to_bytes(&best, Precision::F32)?,
            "f32",
            f32_metrics.clone(),
        )
    };
    eprintln!(
        "validation f32 vs stored {dtype}: accuracy {:.4} / {:.4}, AUC {:.5} / {:.5}",
        f32_metrics.accuracy, val_metrics.accuracy, f32_metrics.auc, val_metrics.auc
    );
    let (shipped, shipped_margins) = if dtype == "f16" {
        (&f16_model, &f16_margins)
    } else {
        (&best, &val_margins)
    };
    let shipped_probs = probs(shipped_margins, temperature);
    let uncertain = uncertain.measured_on(&shipped_probs, &val_set.labels, threshold);
    let val_patients: Vec<String> = val_files.iter().map(|s| dataset::patient(s)).collect();
    let scorer = report::Scorer {
        model: shipped,
        norm,
        size: args.size,
        temperature,
        threshold,
        device: &device,
    };
    let mut evaluation =
        scorer.evaluation(&shipped_probs, &val_set.labels, &val_patients, args.seed);
    eprintln!("stress test on {} validation images", val_files.len());
    evaluation.stress = Some(scorer.stress(&kept)?);
    let predictions: Vec<Prediction> = val_files
        .iter()
        .zip(&val_patients)
        .zip(shipped_probs.iter().zip(&shipped_margins[..]))
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
            let m = margins(&best, &set.images, norm, args.size, &device)?;
            Some(metrics::evaluate(
                &probs(&m, temperature),
                &set.labels,
                threshold,
            ))
        }
        _ => None,
    };

    let weights_path = out.join("model.bpk");
    std::fs::write(&weights_path, &weights_bytes).map_err(io(&weights_path))?;
    let card = ModelCard {
        name: config.name(),
        model: config.clone(),
        classes: CLASSES.to_vec(),
        normalization: norm,
        threshold,
        temperature,
        weights: "model.bpk".into(),
        weights_dtype: dtype.into(),
        weights_bytes: weights_bytes.len(),
        validation: Some(val_metrics.clone()),
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
        "wrote {} ({} bytes, {dtype}) and {}",
        weights_path.display(),
        weights_bytes.len(),
        out.join("card.json").display()
    );
    Ok(card)
}
