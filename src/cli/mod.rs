//! The native command-line tool `xray`: `predict`, `explain`, `eval`, `train`, `cv`, `split`, `subset`,
//! `gallery`, `ood-fit`, `ood-eval` and `bench`; each has its module here (`train`, `cv`,
//! `subset`, `ood`), with `dataset` (folders, splits by patient) and `report` (scoring,
//! intervals, the stress test) shared by them.

pub mod cv;
pub mod dataset;
pub mod explain;
pub mod ood;
pub mod report;
pub mod subset;
pub mod train;

use std::path::{Path, PathBuf};

use burn::prelude::*;
use serde::Serialize;

use crate::ml::{card::ModelCard, classifier::Classifier, weights::WeightsError};

/// Everything that ends a command with an error message and a non-zero status.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad arguments.
    #[error("{0}")]
    Usage(String),
    /// File system or serialisation trouble.
    #[error("{0}")]
    Io(String),
    /// A data folder that cannot be used.
    #[error(transparent)]
    Data(#[from] dataset::DataError),
    /// Weights that cannot be loaded or saved.
    #[error(transparent)]
    Weights(#[from] WeightsError),
}

/// `--device`: where a command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, strum::Display)]
#[strum(serialize_all = "lowercase")]
pub enum DeviceArg {
    /// Burn's flex CPU backend.
    #[value(alias = "flex")]
    Cpu,
    /// A GPU through wgpu (Vulkan, Metal or DX12).
    #[value(alias = "gpu")]
    Wgpu,
}

impl DeviceArg {
    /// The Burn device.
    pub fn device(self) -> Device {
        match self {
            DeviceArg::Cpu => Device::flex(),
            DeviceArg::Wgpu => Device::wgpu(burn::tensor::DeviceKind::DefaultDevice),
        }
    }
}

/// CPU model and core count, for the model card.
pub fn hardware() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("{cpu}, {cores} cores")
}

/// The short commit of the working tree, with `-dirty` when tracked files changed.
pub fn git_commit() -> String {
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match run(&["rev-parse", "--short=12", "HEAD"]) {
        Some(commit) => {
            let dirty = run(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{commit}-dirty")
            } else {
                commit
            }
        }
        None => "unknown".into(),
    }
}

/// Peak resident memory of this process in MB (Linux `VmHWM`), 0 where unknown.
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Inference speed of a classifier on random inputs: (median ms at batch 1, images/s at
/// batch 16).
pub fn bench(classifier: &Classifier, runs: usize) -> Result<(f64, f64), CliError> {
    let size = classifier.card.model.input_size;
    let mut rng = crate::ml::train::Rng::new(1);
    let image = |rng: &mut crate::ml::train::Rng| {
        (0..size * size).map(|_| rng.normal()).collect::<Vec<f32>>()
    };
    let one = vec![image(&mut rng)];
    classifier.classify(&one)?;
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t0 = std::time::Instant::now();
        classifier.classify(&one)?;
        times.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    let batch: Vec<Vec<f32>> = (0..16).map(|_| image(&mut rng)).collect();
    classifier.classify(&batch)?;
    let t0 = std::time::Instant::now();
    let rounds = runs.div_ceil(4).max(1);
    for _ in 0..rounds {
        classifier.classify(&batch)?;
    }
    let per_sec = (16 * rounds) as f64 / t0.elapsed().as_secs_f64();
    Ok((times[times.len() / 2], per_sec))
}

/// The folder holding `card.json` and the weights: `dir` if given, else `public/model` of the
/// current directory, else the one in this crate's source tree.
pub fn model_dir(dir: Option<&Path>) -> PathBuf {
    if let Some(d) = dir {
        return d.to_path_buf();
    }
    let local = PathBuf::from("public/model");
    if local.join("card.json").is_file() {
        local
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("public/model")
    }
}

/// `--model` and `--device`: the model a command loads and where it runs.
#[derive(Debug, clap::Args)]
pub struct ModelArgs {
    /// Folder with card.json and the weights (default: public/model).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// cpu or wgpu.
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    pub device: DeviceArg,
}

impl ModelArgs {
    /// Loads the classifier from [`model_dir`] on the device.
    pub fn load(&self) -> Result<Classifier, CliError> {
        load_classifier(&model_dir(self.model.as_deref()), self.device.device())
    }
}

/// Loads the model card and weights from `dir`.
pub fn load_classifier(dir: &Path, device: Device) -> Result<Classifier, CliError> {
    let card_path = dir.join("card.json");
    let text = std::fs::read(&card_path)
        .map_err(|e| CliError::Io(format!("{}: {e}", card_path.display())))?;
    let card = ModelCard::from_json(&text)
        .map_err(|e| CliError::Io(format!("{}: {e}", card_path.display())))?;
    let weights_path = dir.join(&card.weights);
    let bytes = std::fs::read(&weights_path)
        .map_err(|e| CliError::Io(format!("{}: {e}", weights_path.display())))?;
    Ok(Classifier::load(card, bytes, device)?)
}

/// One line of `xray predict --json`.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum PredictLine {
    /// A classified file.
    Ok {
        /// As given.
        file: String,
        /// NORMAL or PNEUMONIA.
        label: crate::ml::class::Class,
        /// Calibrated probability.
        p_pneumonia: f32,
        /// Whether P(pneumonia) is in the card's "uncertain, needs a reader" band.
        uncertain: bool,
        /// Whether it does not look like a chest X-ray.
        ood: bool,
        /// Why, when `ood`, in words.
        #[serde(skip_serializing_if = "Option::is_none")]
        ood_reason: Option<String>,
        /// Which criterion tripped, when `ood`: `colour`, `uniform`, `layout` or `content`.
        #[serde(skip_serializing_if = "Option::is_none")]
        ood_kind: Option<&'static str>,
        /// The format read (sniffed from the bytes).
        format: &'static str,
        /// Non-identifying DICOM attributes, for DICOM files.
        #[serde(skip_serializing_if = "Option::is_none")]
        dicom: Option<crate::ml::dicom::DicomInfo>,
    },
    /// A refused file.
    Err {
        /// As given.
        file: String,
        /// Why.
        error: String,
    },
}

/// Classifies each file; returns one line per file, in order.
pub fn predict(classifier: &Classifier, files: &[PathBuf]) -> Vec<PredictLine> {
    files
        .iter()
        .map(|path| {
            let file = path.display().to_string();
            let analysis = std::fs::read(path)
                .map_err(|e| format!("could not be read: {e}"))
                .and_then(|bytes| classifier.analyse(&bytes).map_err(|e| e.to_string()));
            match analysis {
                Ok(a) => PredictLine::Ok {
                    file,
                    label: a.prediction.label,
                    p_pneumonia: a.prediction.p_pneumonia,
                    uncertain: classifier.card.uncertain(a.prediction.p_pneumonia),
                    ood: a.ood.is_some(),
                    ood_reason: a.ood.map(|r| r.to_string()),
                    ood_kind: a.ood.map(|r| r.kind()),
                    format: a.format,
                    dicom: a.dicom,
                },
                Err(error) => PredictLine::Err { file, error },
            }
        })
        .collect()
}

/// Evaluates the classifier on `DIR/{NORMAL,PNEUMONIA}` at the card's threshold, with 95 %
/// bootstrap intervals by patient and, when `stress`, the stress test. Returns the evaluation
/// and the files skipped.
pub fn evaluate(
    classifier: &Classifier,
    dir: &Path,
    stress: bool,
    seed: u64,
) -> Result<(report::Evaluation, Vec<String>), CliError> {
    let samples = dataset::list(dir)?;
    let size = classifier.card.model.input_size;
    let set = dataset::load(&samples, size, true)?;
    let scorer = report::Scorer {
        model: &classifier.model,
        norm: classifier.card.normalization,
        size,
        temperature: classifier.card.temperature,
        threshold: classifier.card.threshold,
        device: &classifier.device,
        tta: 1,
    };
    let kept: Vec<dataset::Sample> = set.indices.iter().map(|&i| samples[i].clone()).collect();
    let probs = scorer.probs(&set.images)?;
    let mut evaluation = scorer.evaluation(&probs, &set.labels, &report::patients(&kept), seed);
    if stress {
        evaluation.stress = Some(scorer.stress(&kept)?);
    }
    Ok((evaluation, set.skipped))
}
