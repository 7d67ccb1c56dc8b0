//! What the training panels show, as plain data, and the one function that turns the worker's
//! reports into it: [`RunView::apply`]. No browser types here, so the curves, the ETA and the
//! epoch means are unit-tested natively; the page writes the result to its signals in one
//! place ([`super::TrainState::show`]).

use crate::ml::{
    class::Class,
    finetune::Mode,
    metrics::{self, Confusion},
};

use super::super::{
    backend::Backend,
    protocol::{FromWorker, Pass},
};

/// Where the training images come from and whether they are ready.
#[derive(Debug, Clone, PartialEq)]
pub enum DataStatus {
    /// Nothing loaded yet.
    Empty,
    /// Fetching or decoding; fraction done.
    Loading(String, f64),
    /// Ready: a description.
    Ready(String),
    /// Could not be loaded.
    Error(String),
}

/// Phase of a run, mirrored in `[data-testid=train-status] data-state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, strum::IntoStaticStr)]
#[strum(serialize_all = "lowercase")]
pub enum Phase {
    /// No run yet.
    #[default]
    Idle,
    /// Training or evaluating.
    Running,
    /// Paused between steps.
    Paused,
    /// Finished (all epochs, or stopped early).
    Done,
    /// Failed; see the message.
    Error,
}

impl Phase {
    /// The contract's name.
    pub fn id(self) -> &'static str {
        self.into()
    }

    /// Whether a run is under way (running or paused).
    pub fn active(self) -> bool {
        matches!(self, Phase::Running | Phase::Paused)
    }
}

/// Progress of the current run.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Status {
    /// Phase.
    pub phase: Phase,
    /// What is happening, in words.
    pub message: String,
    /// Epochs completed.
    pub epoch: usize,
    /// Epochs asked for.
    pub epochs: usize,
    /// Steps completed.
    pub step: usize,
    /// Steps in the run.
    pub total_steps: usize,
    /// Latest training loss.
    pub loss: Option<f32>,
    /// Latest validation accuracy.
    pub val_accuracy: Option<f64>,
    /// Training throughput (evaluation excluded).
    pub images_per_sec: f64,
    /// Seconds left, estimated from the steps so far.
    pub eta_s: Option<f64>,
    /// The training worker's wasm memory, MB.
    pub wasm_mb: f64,
    /// GPU memory held by the training run, MB (WebGPU only).
    pub gpu_mb: Option<f64>,
    /// Backend of the run, once the worker has said.
    pub backend: Option<Backend>,
}

impl Status {
    /// A run that is starting.
    pub fn starting() -> Self {
        Status {
            phase: Phase::Running,
            message: "starting".into(),
            ..Status::default()
        }
    }

    /// Ends the run with `message`.
    pub fn fail(&mut self, message: String) {
        self.phase = Phase::Error;
        self.message = message;
    }
}

/// How a model does on the validation part.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Images.
    pub n: usize,
    /// Accuracy at the threshold.
    pub accuracy: f64,
    /// ROC AUC.
    pub auc: f64,
    /// Mean cross-entropy.
    pub loss: f64,
    /// Confusion matrix.
    pub confusion: Confusion,
    /// ROC curve points.
    pub roc: Vec<(f64, f64)>,
    /// After how many steps.
    pub step: usize,
}

impl Evaluation {
    /// Scores P(pneumonia) against the truth at `threshold`.
    pub fn new(probs: &[f32], truth: &[bool], threshold: f32, step: usize) -> Self {
        let m = metrics::evaluate(probs, truth, threshold);
        Self {
            n: m.n,
            accuracy: m.accuracy,
            auc: m.auc,
            loss: metrics::log_loss(probs, truth),
            confusion: m.confusion,
            roc: metrics::roc_curve(probs, truth),
            step,
        }
    }
}

/// The curves, x in epochs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Curves {
    /// Training loss of each step.
    pub step_loss: Vec<(f64, f64)>,
    /// Mean training loss of each epoch.
    pub train_loss: Vec<(f64, f64)>,
    /// Training accuracy of each epoch (on augmented images, before each update).
    pub train_accuracy: Vec<(f64, f64)>,
    /// Validation loss after each epoch (and before training, at 0).
    pub val_loss: Vec<(f64, f64)>,
    /// Validation accuracy after each epoch (and before training, at 0).
    pub val_accuracy: Vec<(f64, f64)>,
}

/// A validation image, as the grid shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ValMeta {
    /// File name.
    pub name: String,
    /// Picture URL.
    pub thumb: String,
    /// True for PNEUMONIA.
    pub pneumonia: bool,
}

/// One validation image in the grid.
#[derive(Debug, Clone, PartialEq)]
pub struct GridItem {
    /// Name.
    pub name: String,
    /// Picture URL.
    pub thumb: String,
    /// True label.
    pub truth: Class,
    /// Predicted label (at 0.5).
    pub predicted: Class,
    /// P(pneumonia).
    pub p: f32,
}

/// What [`RunView::apply`] asks the page to do besides showing the new state.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Nothing.
    None,
    /// The worker is ready: send it the start message (and any pause or stop pressed since).
    SendStart,
    /// The run is over: load these weights as the tuned model, then call [`RunView::finish`].
    Load {
        /// Burnpack, f32.
        weights: Vec<u8>,
        /// What the model is, in words.
        description: String,
        /// Whether it was stopped early.
        stopped: bool,
    },
    /// The run failed: let the worker go.
    Release,
}

/// A run as the panels show it, and what is needed to follow the worker's reports.
#[derive(Debug, Clone, PartialEq)]
pub struct RunView {
    /// Progress.
    pub status: Status,
    /// Curves.
    pub curves: Curves,
    /// Validation grid.
    pub grid: Vec<GridItem>,
    /// The starting model on the validation part.
    pub before: Option<Evaluation>,
    /// The trained model on the validation part.
    pub after: Option<Evaluation>,
    mode: Mode,
    epochs: usize,
    n_tune: usize,
    val: Vec<ValMeta>,
    truth: Vec<bool>,
    steps_per_epoch: usize,
    train_ms: f64,
    images: usize,
    epoch_loss: f64,
    epoch_correct: usize,
    epoch_seen: usize,
    last: Option<Evaluation>,
}

impl RunView {
    /// A run of `epochs` epochs in `mode` on `n_tune` images, validated on `val`.
    pub fn new(mode: Mode, epochs: usize, n_tune: usize, val: Vec<ValMeta>) -> Self {
        Self {
            status: Status::starting(),
            curves: Curves::default(),
            grid: Vec::new(),
            before: None,
            after: None,
            mode,
            epochs,
            n_tune,
            truth: val.iter().map(|v| v.pneumonia).collect(),
            val,
            steps_per_epoch: 1,
            train_ms: 0.0,
            images: 0,
            epoch_loss: 0.0,
            epoch_correct: 0,
            epoch_seen: 0,
            last: None,
        }
    }

    /// Follows one report of the worker (`parts`: its binary parts).
    pub fn apply(&mut self, msg: FromWorker, parts: Vec<Vec<u8>>) -> Effect {
        match msg {
            FromWorker::Ready => return Effect::SendStart,
            FromWorker::Started {
                backend,
                fallback,
                steps_per_epoch,
                total_steps,
                wasm_mb,
            } => {
                self.steps_per_epoch = steps_per_epoch.max(1);
                let s = &mut self.status;
                s.message = format!(
                    "{}evaluating the starting model on {} validation images",
                    fallback.map_or(String::new(), |f| format!("{f}; ")),
                    self.val.len()
                );
                s.epochs = self.epochs;
                s.total_steps = total_steps;
                s.wasm_mb = wasm_mb;
                s.backend = Some(backend);
            }
            FromWorker::Evaluating { done, total } => {
                self.status.message = format!("evaluating on validation images: {done}/{total}");
            }
            FromWorker::Probabilities {
                pass,
                step,
                epoch,
                probs,
            } => self.probabilities(pass, step, epoch, &probs),
            FromWorker::Step {
                step,
                epoch,
                loss,
                correct,
                seen,
                epoch_finished: _,
                ms,
                wasm_mb,
                gpu_mb,
            } => {
                self.train_ms += ms;
                self.images += seen;
                self.epoch_loss += f64::from(loss) * seen as f64;
                self.epoch_correct += correct;
                self.epoch_seen += seen;
                let x = step as f64 / self.steps_per_epoch as f64;
                self.curves.step_loss.push((x, f64::from(loss)));
                let per_step_ms = self.train_ms / step.max(1) as f64;
                let s = &mut self.status;
                s.step = step;
                s.epoch = epoch;
                s.loss = Some(loss);
                s.images_per_sec = self.images as f64 / (self.train_ms / 1000.0).max(1e-9);
                s.eta_s = Some(s.total_steps.saturating_sub(step) as f64 * per_step_ms / 1000.0);
                s.wasm_mb = wasm_mb;
                s.gpu_mb = gpu_mb;
                s.message = format!(
                    "epoch {} of {}, step {step} of {}",
                    (epoch + 1).min(self.epochs),
                    self.epochs,
                    s.total_steps
                );
            }
            FromWorker::Paused => {
                self.status.phase = Phase::Paused;
                self.status.message = "paused".into();
            }
            FromWorker::Resumed => self.status.phase = Phase::Running,
            FromWorker::Done {
                stopped,
                step,
                epoch,
                wasm_mb,
            } => {
                self.status.wasm_mb = wasm_mb;
                let Some(weights) = parts.into_iter().next() else {
                    self.status
                        .fail("the training worker sent no weights".into());
                    return Effect::Release;
                };
                self.after = self.last.clone();
                return Effect::Load {
                    weights,
                    description: self.describe(step, epoch, stopped),
                    stopped,
                };
            }
            FromWorker::Failed { message, .. } => {
                self.status.fail(message);
                return Effect::Release;
            }
        }
        Effect::None
    }

    fn probabilities(&mut self, pass: Pass, step: usize, epoch: usize, probs: &[f32]) {
        let ev = Evaluation::new(probs, &self.truth, 0.5, step);
        self.grid = self
            .val
            .iter()
            .zip(probs)
            .map(|(v, &p)| GridItem {
                name: v.name.clone(),
                thumb: v.thumb.clone(),
                truth: Class::from_pneumonia(v.pneumonia),
                predicted: Class::from_pneumonia(p >= 0.5),
                p,
            })
            .collect();
        let x = epoch as f64;
        match pass {
            Pass::Before => {
                self.curves.val_loss.push((0.0, ev.loss));
                self.curves.val_accuracy.push((0.0, ev.accuracy));
                self.before = Some(ev.clone());
            }
            Pass::Epoch => {
                let seen = self.epoch_seen.max(1) as f64;
                self.curves.train_loss.push((x, self.epoch_loss / seen));
                self.curves
                    .train_accuracy
                    .push((x, self.epoch_correct as f64 / seen));
                self.curves.val_loss.push((x, ev.loss));
                self.curves.val_accuracy.push((x, ev.accuracy));
                (self.epoch_loss, self.epoch_correct, self.epoch_seen) = (0.0, 0, 0);
                self.status.val_accuracy = Some(ev.accuracy);
            }
            Pass::Final => self.status.val_accuracy = Some(ev.accuracy),
        }
        self.last = Some(ev);
    }

    fn describe(&self, step: usize, epoch: usize, stopped: bool) -> String {
        format!(
            "{} on {} images for {step} step{} ({epoch} epoch{}{}) on {}",
            match self.mode {
                Mode::Head => "head fine-tuned",
                Mode::Whole => "whole network fine-tuned",
                Mode::Scratch => "trained from scratch",
            },
            self.n_tune,
            if step == 1 { "" } else { "s" },
            if epoch == 1 { "" } else { "s" },
            if stopped { ", stopped early" } else { "" },
            self.status.backend.unwrap_or_default().label()
        )
    }

    /// The tuned model is loaded: the run is done.
    pub fn finish(&mut self, stopped: bool) {
        let s = &mut self.status;
        s.phase = Phase::Done;
        s.eta_s = Some(0.0);
        s.message = if stopped {
            "stopped; the model as it was is kept".into()
        } else {
            "done".into()
        };
    }
}

#[cfg(test)]
#[path = "view_tests.rs"]
mod tests;
