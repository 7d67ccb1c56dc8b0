//! A run's folder: the checkpoint a run resumes from (weights, optimizer state, progress) and
//! the training log beside it (`history.csv`, `history.json`).

use std::path::{Path, PathBuf};

use burn::{
    optim::{AdamWConfig, ModuleOptimizer},
    prelude::*,
};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::super::CliError;
use crate::ml::{
    card::EpochLog,
    model::{ResNet, ResNetConfig},
    preprocess::{self, Intensity, Normalization},
    weights::{self, Precision},
};

/// The optimizer of a run.
pub type Optimizer = ModuleOptimizer;

/// What a checkpoint remembers besides the weights and optimizer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    /// The architecture.
    pub config: ResNetConfig,
    /// Fitted on the training images when the run started.
    pub normalization: Normalization,
    /// Epochs completed.
    pub epoch: usize,
    /// Steps completed.
    pub step: usize,
    /// Best validation AUC so far.
    pub best_auc: f64,
    /// Its epoch.
    pub best_epoch: usize,
    /// Training seconds so far.
    pub seconds: f64,
    /// One line per epoch.
    pub history: Vec<EpochLog>,
}

/// Maps an I/O error to a message naming `path`.
pub fn io(path: &Path) -> impl Fn(std::io::Error) -> CliError + '_ {
    move |e| CliError::Io(format!("{}: {e}", path.display()))
}

/// Writes `value` as pretty JSON.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| CliError::Io(e.to_string()))?;
    std::fs::write(path, text).map_err(io(path))
}

/// The checkpoint folder of a run (`OUT/checkpoint`).
pub struct Checkpoint {
    dir: PathBuf,
}

impl Checkpoint {
    /// The checkpoint of the run in `out`, created if needed.
    pub fn create(out: &Path) -> Result<Self, CliError> {
        let dir = out.join("checkpoint");
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        Ok(Self { dir })
    }

    fn state_path(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    /// The saved run, when `resume` is set and there is one: its model, optimizer and state.
    /// Refuses a checkpoint of another architecture or intensity mapping.
    pub fn resume(
        &self,
        config: &ResNetConfig,
        intensity: Intensity,
        optim: Optimizer,
        device: &Device,
    ) -> Result<Option<(ResNet, Optimizer, State)>, CliError> {
        let state_path = self.state_path();
        if !state_path.is_file() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&state_path).map_err(io(&state_path))?;
        let state: State = serde_json::from_str(&text)
            .map_err(|e| CliError::Io(format!("{}: {e}", state_path.display())))?;
        if state.config != *config {
            return Err(CliError::Usage(format!(
                "the checkpoint in {} is for {}, not {}",
                self.dir.display(),
                state.config.name(),
                config.name()
            )));
        }
        if state.normalization.intensity != intensity {
            return Err(CliError::Usage(format!(
                "the checkpoint in {} was trained with --intensity {:?}",
                self.dir.display(),
                state.normalization.intensity
            )));
        }
        let bytes = std::fs::read(self.dir.join("model.bpk")).map_err(io(&self.dir))?;
        let model = weights::from_bytes(bytes, config, device)?;
        let optim = optim
            .load(self.dir.join("optim.bpk"))
            .map_err(|e| CliError::Io(format!("optimizer state: {e}")))?;
        eprintln!(
            "resuming after epoch {} (best AUC {:.4} at epoch {})",
            state.epoch, state.best_auc, state.best_epoch
        );
        Ok(Some((model, optim, state)))
    }

    /// Saves the model after an epoch (and as the best one when `best`), the optimizer, the
    /// state and the training log in `out`.
    pub fn save(
        &self,
        out: &Path,
        model: &ResNet,
        optim: &Optimizer,
        state: &State,
        best: bool,
    ) -> Result<(), CliError> {
        let bytes = weights::to_bytes(model, Precision::F32)?;
        if best {
            let path = self.best_path();
            std::fs::write(&path, &bytes).map_err(io(&path))?;
        }
        let model_path = self.dir.join("model.bpk");
        std::fs::write(&model_path, bytes).map_err(io(&model_path))?;
        optim
            .save(self.dir.join("optim.bpk"))
            .map_err(|e| CliError::Io(format!("optimizer state: {e}")))?;
        write_json(&self.state_path(), state)?;
        write_history(out, &state.history)
    }

    /// The weights of the epoch with the best validation AUC.
    pub fn best_path(&self) -> PathBuf {
        self.dir.join("best.bpk")
    }
}

/// A fresh AdamW optimizer.
pub fn optimizer(weight_decay: f64) -> Optimizer {
    AdamWConfig::new()
        .with_weight_decay(weight_decay as f32)
        .init()
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
pub fn fit_normalization(images: &[Vec<f32>], intensity: Intensity) -> Normalization {
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
