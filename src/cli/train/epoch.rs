//! One epoch of `xray train`: shuffled, augmented batches through the shared training step,
//! with a progress bar, then a validation pass that becomes the epoch's line in the log.

use std::time::Instant;

use burn::prelude::*;
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;

use super::{TrainArgs, checkpoint::Optimizer};
use crate::cli::{CliError, dataset::Loaded, peak_rss_mb};
use crate::ml::{
    card::EpochLog,
    eval, metrics,
    model::ResNet,
    preprocess::{self, Normalization},
    train::{self, Augment, Rng},
    weights,
};

/// What stays the same for every epoch of a run.
pub struct Plan<'a> {
    /// The options.
    pub args: &'a TrainArgs,
    /// Training images and labels.
    pub train: &'a Loaded,
    /// Validation images and labels.
    pub val: &'a Loaded,
    /// Fitted when the run started.
    pub norm: Normalization,
    /// The augmentation.
    pub augment: Augment,
    /// Loss weights of NORMAL and PNEUMONIA.
    pub class_weights: [f32; 2],
    /// Steps in the whole run.
    pub total_steps: usize,
    /// Steps of learning-rate warm-up.
    pub warmup: usize,
}

/// Trains epoch `epoch` (1-based) from step `step` and validates; returns the model, the
/// steps completed and the epoch's log line.
pub fn run(
    plan: &Plan,
    epoch: usize,
    mut step: usize,
    mut model: ResNet,
    optim: &mut Optimizer,
    device: &Device,
) -> Result<(ResNet, usize, EpochLog), CliError> {
    let Plan { args, train, .. } = plan;
    let ad = device.clone().autodiff();
    let t0 = Instant::now();
    let mut order: Vec<usize> = (0..train.images.len()).collect();
    Rng::new(args.seed.wrapping_mul(1000).wrapping_add(epoch as u64)).shuffle(&mut order);
    let bar = progress_bar(order.len(), epoch, args.epochs);
    let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
    let mut lr = args.lr;
    for chunk in order.chunks(args.batch) {
        if args.max_steps.is_some_and(|m| step >= m) {
            break;
        }
        let batch: Vec<Vec<f32>> = chunk
            .par_iter()
            .map(|&i| {
                let mut rng = Rng::new(
                    args.seed ^ ((epoch as u64) << 40) ^ (i as u64).wrapping_mul(0x9E37_79B9),
                );
                let mut x = if args.no_augment {
                    train.images[i].clone()
                } else {
                    plan.augment.apply(&train.images[i], args.size, &mut rng)
                };
                preprocess::normalize(&mut x, plan.norm);
                x
            })
            .collect();
        let labels: Vec<bool> = chunk.iter().map(|&i| train.labels[i]).collect();
        let targets: Vec<i64> = labels.iter().map(|&y| i64::from(y)).collect();
        let x = preprocess::batch_tensor(&batch, args.size, &ad);
        let y = Tensor::<1, Int>::from_data(TensorData::new(targets, [labels.len()]), &ad);
        lr = train::lr_at(step, plan.total_steps, plan.warmup, args.lr);
        let out = train::train_step(
            model,
            optim,
            x,
            y,
            plan.class_weights,
            args.label_smoothing,
            lr,
        );
        model = out.model;
        let loss: f32 = out.loss.into_scalar();
        correct += eval::correct(&weights::read(out.logits)?, labels);
        loss_sum += f64::from(loss) * chunk.len() as f64;
        seen += chunk.len();
        step += 1;
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
    let margins = eval::margins(&valid, &plan.val.images, plan.norm, args.size, device)?;
    let m = metrics::evaluate(
        &metrics::probabilities(&margins, 1.0),
        &plan.val.labels,
        0.5,
    );
    let log = EpochLog {
        epoch,
        train_loss: loss_sum / seen.max(1) as f64,
        train_accuracy: correct as f64 / seen.max(1) as f64,
        val_loss: metrics::margin_log_loss(&margins, &plan.val.labels, 1.0),
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
    Ok((model, step, log))
}

fn progress_bar(images: usize, epoch: usize, epochs: usize) -> ProgressBar {
    let bar = ProgressBar::new(images as u64);
    bar.set_style(
        ProgressStyle::with_template("epoch {prefix} [{bar:28}] {pos}/{len} img  {msg}  ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("{epoch}/{epochs}"));
    bar
}
