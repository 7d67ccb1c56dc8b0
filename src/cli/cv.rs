//! `xray cv`: k-fold cross-validation by patient. Each fold trains with `xray train`'s options
//! on the other folds and is scored (clean and stressed) on its own; the report gives the mean
//! and standard deviation over the folds. Resumable: a finished fold is read back, an
//! unfinished one continues from its checkpoint.
//!
//! `xray cv-ensemble` scores ensembles on the same folds without training anything: for each
//! fold, the models that two to five finished `xray cv` runs left in it are averaged (their
//! margins, each model with its own card's input size and standardisation), and the average
//! is calibrated and scored on the fold's held-out part as `xray train` calibrates and scores
//! one model.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::{
    CliError, dataset, load_classifier,
    report::{self, Evaluation, Scorer},
    train,
};
use crate::ml::metrics;

/// Options of `xray cv`.
#[derive(Debug, Clone, clap::Args)]
pub struct CvArgs {
    /// Number of folds.
    #[arg(long, default_value_t = 5)]
    pub folds: usize,
    /// Everything `xray train` takes; `--out` is the folder of the folds (fold-1, …), and
    /// `--val-fraction` is not used.
    #[command(flatten)]
    pub train: train::TrainArgs,
}

/// Mean and standard deviation (over folds) of one metric.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (0 for one fold).
    pub sd: f64,
}

impl Spread {
    fn of(values: &[f64]) -> Self {
        let n = values.len().max(1) as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = if values.len() > 1 {
            values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
        } else {
            0.0
        };
        Self {
            mean,
            sd: var.sqrt(),
        }
    }
}

/// The five headline metrics over the folds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spreads {
    /// Accuracy.
    pub accuracy: Spread,
    /// AUC.
    pub auc: Spread,
    /// Sensitivity.
    pub sensitivity: Spread,
    /// Specificity.
    pub specificity: Spread,
    /// ECE.
    pub ece: Spread,
}

impl Spreads {
    fn of(rows: &[[f64; 5]]) -> Self {
        let col = |k: usize| Spread::of(&rows.iter().map(|r| r[k]).collect::<Vec<_>>());
        Self {
            accuracy: col(0),
            auc: col(1),
            sensitivity: col(2),
            specificity: col(3),
            ece: col(4),
        }
    }
}

/// `cv.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CvReport {
    /// Folds.
    pub k: usize,
    /// Each fold's held-out evaluation (its own threshold and temperature).
    pub folds: Vec<Evaluation>,
    /// Clean metrics over the folds.
    pub clean: Spreads,
    /// The stress test's mean over conditions, over the folds.
    pub stressed: Spreads,
    /// The command that made it.
    pub command: String,
}

fn fold_dir(root: &Path, k: usize) -> PathBuf {
    root.join(format!("fold-{}", k + 1))
}

fn read_evaluation(dir: &Path) -> Option<Evaluation> {
    let text = std::fs::read_to_string(dir.join("evaluation.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// Runs (or resumes) every fold and writes `cv.json` under `--out`.
pub fn run(args: &CvArgs) -> Result<CvReport, CliError> {
    if args.folds < 2 {
        return Err(CliError::Usage("--folds must be at least 2".into()));
    }
    let layout = dataset::layout(&args.train.data)?;
    let mut samples = dataset::list(&layout.train)?;
    if let Some(n) = args.train.limit {
        samples = dataset::limit_per_class(samples, n);
    }
    let fold = dataset::folds(&samples, args.folds, args.train.seed);
    let mut evaluations = Vec::with_capacity(args.folds);
    for k in 0..args.folds {
        let dir = fold_dir(&args.train.out, k);
        let done = dir.join("card.json").is_file();
        let evaluation = match read_evaluation(&dir).filter(|_| done && args.train.resume) {
            Some(e) => {
                eprintln!(
                    "fold {}/{}: done, read from {}",
                    k + 1,
                    args.folds,
                    dir.display()
                );
                e
            }
            None => {
                let (val, train_part): (Vec<_>, Vec<_>) =
                    samples.iter().zip(&fold).partition(|(_, f)| **f == k);
                let val: Vec<dataset::Sample> = val.into_iter().map(|(s, _)| s.clone()).collect();
                let train_part: Vec<dataset::Sample> =
                    train_part.into_iter().map(|(s, _)| s.clone()).collect();
                eprintln!(
                    "fold {}/{}: {} training and {} held-out images",
                    k + 1,
                    args.folds,
                    train_part.len(),
                    val.len()
                );
                train::train_on(&args.train, &dir, &train_part, &val, None)?;
                read_evaluation(&dir)
                    .ok_or_else(|| CliError::Io(format!("{}: no evaluation.json", dir.display())))?
            }
        };
        evaluations.push(evaluation);
    }
    let report = CvReport::of(args.folds, evaluations);
    report.write(&args.train.out)?;
    Ok(report)
}

impl CvReport {
    /// The report of `k` folds' evaluations, with the command that made them.
    fn of(k: usize, evaluations: Vec<Evaluation>) -> Self {
        let clean: Vec<[f64; 5]> = evaluations
            .iter()
            .map(|e| {
                let m = &e.metrics;
                [m.accuracy, m.auc, m.sensitivity, m.specificity, m.ece]
            })
            .collect();
        let stressed: Vec<[f64; 5]> = evaluations
            .iter()
            .filter_map(|e| e.stress.as_ref())
            .map(|s| {
                let m = &s.mean;
                [m.accuracy, m.auc, m.sensitivity, m.specificity, m.ece]
            })
            .collect();
        Self {
            k,
            clean: Spreads::of(&clean),
            stressed: Spreads::of(&stressed),
            folds: evaluations,
            command: std::iter::once("xray".to_string())
                .chain(std::env::args().skip(1))
                .collect::<Vec<_>>()
                .join(" "),
        }
    }

    /// Writes `cv.json` under `out`.
    fn write(&self, out: &Path) -> Result<(), CliError> {
        let path = out.join("cv.json");
        let json = serde_json::to_string_pretty(self).map_err(|e| CliError::Io(e.to_string()))?;
        std::fs::create_dir_all(out)
            .map_err(|e| CliError::Io(format!("{}: {e}", out.display())))?;
        std::fs::write(&path, json).map_err(|e| CliError::Io(format!("{}: {e}", path.display())))
    }
}

/// Options of `xray cv-ensemble`.
#[derive(Debug, Clone, clap::Args)]
pub struct EnsembleArgs {
    /// The folders of two to five finished `xray cv` runs (each holding fold-1, …), made with
    /// the same --data, --folds, --seed and --limit as given here.
    #[arg(long, num_args = 2..=5, required = true)]
    pub members: Vec<PathBuf>,
    /// The data folder the runs were trained on.
    #[arg(long)]
    pub data: PathBuf,
    /// Number of folds the runs used.
    #[arg(long, default_value_t = 5)]
    pub folds: usize,
    /// The runs' seed (it made their folds), and the seed of the bootstrap intervals.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// The runs' --limit, if they had one.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Folder for each fold's evaluation.json and the ensemble's cv.json.
    #[arg(long)]
    pub out: PathBuf,
}

/// What `cv-ensemble` keeps of a fold besides its evaluation: the calibration it fitted.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct EnsembleFold {
    members: Vec<String>,
    temperature: f32,
    threshold: f32,
    band: crate::ml::band::UncertainBand,
}

/// Scores the ensemble of `args.members` on every fold and writes `cv.json` under `--out`.
pub fn ensemble(args: &EnsembleArgs) -> Result<CvReport, CliError> {
    if args.folds < 2 {
        return Err(CliError::Usage("--folds must be at least 2".into()));
    }
    let layout = dataset::layout(&args.data)?;
    let mut samples = dataset::list(&layout.train)?;
    if let Some(n) = args.limit {
        samples = dataset::limit_per_class(samples, n);
    }
    let fold = dataset::folds(&samples, args.folds, args.seed);
    let mut evaluations = Vec::with_capacity(args.folds);
    for k in 0..args.folds {
        let held_out: Vec<dataset::Sample> = samples
            .iter()
            .zip(&fold)
            .filter(|(_, f)| **f == k)
            .map(|(s, _)| s.clone())
            .collect();
        eprintln!(
            "fold {}/{}: {} held-out images, {} models",
            k + 1,
            args.folds,
            held_out.len(),
            args.members.len()
        );
        let (evaluation, calibration, predictions) = ensemble_fold(args, k, &held_out)?;
        let dir = fold_dir(&args.out, k);
        std::fs::create_dir_all(&dir)
            .map_err(|e| CliError::Io(format!("{}: {e}", dir.display())))?;
        for (name, json) in [
            ("evaluation.json", serde_json::to_string_pretty(&evaluation)),
            ("ensemble.json", serde_json::to_string_pretty(&calibration)),
            (
                "val_predictions.json",
                serde_json::to_string_pretty(&predictions),
            ),
        ] {
            let path = dir.join(name);
            let json = json.map_err(|e| CliError::Io(e.to_string()))?;
            std::fs::write(&path, json)
                .map_err(|e| CliError::Io(format!("{}: {e}", path.display())))?;
        }
        evaluations.push(evaluation);
    }
    let report = CvReport::of(args.folds, evaluations);
    report.write(&args.out)?;
    Ok(report)
}

/// The files a finished fold of a `cv` run held out.
fn held_out_files(dir: &Path) -> Result<std::collections::BTreeSet<String>, CliError> {
    let path = dir.join("val_predictions.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| CliError::Io(format!("{}: {e} (is the run finished?)", path.display())))?;
    let predictions: Vec<train::Prediction> = serde_json::from_str(&text)
        .map_err(|e| CliError::Io(format!("{}: {e}", path.display())))?;
    Ok(predictions.into_iter().map(|p| p.file).collect())
}

fn ensemble_fold(
    args: &EnsembleArgs,
    k: usize,
    held_out: &[dataset::Sample],
) -> Result<(Evaluation, EnsembleFold, Vec<train::Prediction>), CliError> {
    let files: std::collections::BTreeSet<String> = held_out
        .iter()
        .map(|s| s.path.display().to_string())
        .collect();
    let mut clean: Option<(Vec<f32>, Vec<bool>, Vec<dataset::Sample>)> = None;
    let mut stressed: Option<(Vec<bool>, report::StressMargins)> = None;
    for member in &args.members {
        let dir = fold_dir(member, k);
        if held_out_files(&dir)? != files {
            return Err(CliError::Usage(format!(
                "{} held out other files than fold {} of --data with --folds {} --seed {}: \
                 every member must come from `xray cv` with the same options",
                dir.display(),
                k + 1,
                args.folds,
                args.seed
            )));
        }
        let classifier = load_classifier(&dir, Device::flex())?;
        let size = classifier.card.model.input_size;
        let set = dataset::load(held_out, size, true)?;
        let scorer = Scorer {
            model: &classifier.model,
            norm: classifier.card.normalization,
            size,
            temperature: 1.0,
            threshold: 0.5,
            device: &classifier.device,
            tta: 1,
        };
        let kept: Vec<dataset::Sample> = set.indices.iter().map(|&i| held_out[i].clone()).collect();
        let margins = scorer.margins(&set.images)?;
        let (stress_labels, stress_margins) = scorer.stress_margins(&kept)?;
        eprintln!("  {}: {} images scored", dir.display(), margins.len());
        clean = Some(match clean {
            None => (margins, set.labels, kept),
            Some((sum, labels, files)) => {
                if files != kept {
                    return Err(CliError::Io(format!(
                        "{}: the members read different images of fold {}",
                        dir.display(),
                        k + 1
                    )));
                }
                (add(sum, &margins), labels, files)
            }
        });
        stressed = Some(match stressed {
            None => (stress_labels, stress_margins),
            Some((labels, sums)) => (
                labels,
                sums.into_iter()
                    .zip(stress_margins)
                    .map(|((name, sum), (_, m))| (name, add(sum, &m)))
                    .collect(),
            ),
        });
    }
    let n = args.members.len() as f32;
    let mean = |v: Vec<f32>| v.into_iter().map(|m| m / n).collect::<Vec<f32>>();
    let (Some((clean_sum, labels, kept)), Some((stress_labels, stress_sums))) = (clean, stressed)
    else {
        return Err(CliError::Usage("cv-ensemble needs members".into()));
    };
    let margins = mean(clean_sum);
    let stress_margins: report::StressMargins = stress_sums
        .into_iter()
        .map(|(name, m)| (name, mean(m)))
        .collect();
    let cal = train::calibrate(&margins, &labels, &stress_labels, &stress_margins);
    let probs = metrics::probabilities(&margins, cal.temperature);
    let patients = report::patients(&kept);
    let mut evaluation = report::evaluation(&probs, &labels, &patients, cal.threshold, args.seed);
    evaluation.stress = Some(report::stress_report(
        &stress_margins,
        &stress_labels,
        cal.temperature,
        cal.threshold,
    ));
    let fold = EnsembleFold {
        members: args
            .members
            .iter()
            .map(|m| m.display().to_string())
            .collect(),
        temperature: cal.temperature,
        threshold: cal.threshold,
        band: cal.band.measured_on(&probs, &labels, cal.threshold),
    };
    let predictions = kept
        .iter()
        .zip(patients)
        .zip(probs.iter().zip(&margins))
        .map(|((s, patient), (&p, &margin))| train::Prediction {
            file: s.path.display().to_string(),
            patient,
            pneumonia: s.pneumonia,
            p_pneumonia: p,
            margin,
        })
        .collect();
    Ok((evaluation, fold, predictions))
}

/// `sum` plus `more`, element by element.
fn add(sum: Vec<f32>, more: &[f32]) -> Vec<f32> {
    sum.into_iter().zip(more).map(|(a, b)| a + b).collect()
}

/// The report's table, a line each.
pub fn lines(r: &CvReport) -> Vec<String> {
    let pct = |s: Spread| format!("{:.1} ± {:.1} %", 100.0 * s.mean, 100.0 * s.sd);
    let row = |name: &str, s: &Spreads| {
        format!(
            "{name:<9} accuracy {}  AUC {:.4} ± {:.4}  sensitivity {}  specificity {}  ECE {:.3} ± {:.3}",
            pct(s.accuracy),
            s.auc.mean,
            s.auc.sd,
            pct(s.sensitivity),
            pct(s.specificity),
            s.ece.mean,
            s.ece.sd
        )
    };
    vec![
        format!(
            "{}-fold cross-validation by patient (mean ± sd over folds)",
            r.k
        ),
        row("clean", &r.clean),
        row("stressed", &r.stressed),
    ]
}
