//! `xray cv`: k-fold cross-validation by patient. Each fold trains with `xray train`'s options
//! on the other folds and is scored (clean and stressed) on its own; the report gives the mean
//! and standard deviation over the folds. Resumable: a finished fold is read back, an
//! unfinished one continues from its checkpoint.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{CliError, dataset, report::Evaluation, train};

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
    let report = CvReport {
        k: args.folds,
        clean: Spreads::of(&clean),
        stressed: Spreads::of(&stressed),
        folds: evaluations,
        command: std::iter::once("xray".to_string())
            .chain(std::env::args().skip(1))
            .collect::<Vec<_>>()
            .join(" "),
    };
    let path = args.train.out.join("cv.json");
    let json = serde_json::to_string_pretty(&report).map_err(|e| CliError::Io(e.to_string()))?;
    std::fs::write(&path, json).map_err(|e| CliError::Io(format!("{}: {e}", path.display())))?;
    Ok(report)
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
