//! `xray`: classify X-rays, evaluate and train the model from the command line.

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    native::main()
}

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::{path::PathBuf, process::ExitCode};

    use clap::{Parser, Subcommand};
    use xray_web::{
        cli::{self, CliError, PredictLine, explain::ExplainLine},
        ml::class::Class,
    };

    #[derive(Parser)]
    #[command(
        name = "xray",
        version,
        about = "Pneumonia vs normal on chest X-rays (research tool, not a medical device)"
    )]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    #[derive(Subcommand)]
    enum Command {
        /// Classify image files: one line per file (exit 1 if any file was refused).
        Predict {
            /// One JSON object per line: {"file","label","p_pneumonia"} or {"file","error"}.
            #[arg(long)]
            json: bool,
            #[command(flatten)]
            model: cli::ModelArgs,
            /// Image files.
            #[arg(required = true)]
            paths: Vec<PathBuf>,
        },
        /// Where the model looked: a heatmap per file (Grad-CAM of the PNEUMONIA score on an
        /// 8×8 grid over the whole image), as text, JSON lines and/or blended PNGs (exit 1 if
        /// any file was refused).
        Explain {
            /// One JSON object per line: {"file","label","p_pneumonia","heatmap":{"width",
            /// "height","values"}} or {"file","error"}.
            #[arg(long)]
            json: bool,
            /// Write OUT/<name>.heatmap.png for each file: the heatmap over the X-ray at its
            /// own resolution.
            #[arg(long)]
            out: Option<PathBuf>,
            #[command(flatten)]
            model: cli::ModelArgs,
            /// Image files.
            #[arg(required = true)]
            paths: Vec<PathBuf>,
        },
        /// Evaluate on DIR/{NORMAL,PNEUMONIA}/ (or a Kaggle root with --split).
        Eval {
            /// Print one JSON object.
            #[arg(long)]
            json: bool,
            #[command(flatten)]
            model: cli::ModelArgs,
            /// Split folder of a Kaggle root: train, val or test.
            #[arg(long)]
            split: Option<String>,
            /// Also re-score under acquisition changes (gamma, contrast, blur, JPEG, zoom,
            /// shift, exposure).
            #[arg(long)]
            stress: bool,
            /// Seed of the bootstrap intervals.
            #[arg(long, default_value_t = 42)]
            seed: u64,
            /// Data folder.
            dir: PathBuf,
        },
        /// Train a model (see README: Training).
        Train(cli::train::TrainArgs),
        /// K-fold cross-validation by patient with train's options (resumable with --resume).
        Cv(cli::cv::CvArgs),
        /// Score ensembles of finished `cv` runs' models on the same folds (trains nothing).
        CvEnsemble(cli::cv::EnsembleArgs),
        /// Write the bundle of real X-rays the page fine-tunes on (public/train).
        Subset(cli::subset::SubsetArgs),
        /// Write the page's gallery (public/samples): held-out X-rays, one per patient.
        Gallery(cli::subset::GalleryArgs),
        /// Fit the "does not look like a chest X-ray" criteria and store them in the card.
        OodFit(cli::ood::OodFitArgs),
        /// Count how many images in a folder of non-X-rays are flagged (catch rate).
        OodEval {
            /// Folder with card.json and the weights (default: public/model).
            #[arg(long)]
            model: Option<PathBuf>,
            /// Folder of images (searched recursively).
            dir: PathBuf,
        },
        /// Measure inference speed: median latency at batch 1 and throughput at batch 16.
        Bench {
            #[command(flatten)]
            model: cli::ModelArgs,
            /// Timed runs at batch 1.
            #[arg(long, default_value_t = 40)]
            runs: usize,
        },
        /// Print the held-out validation files of `train`'s patient-level split, a line each:
        /// part, label, patient id, path.
        Split {
            /// List the training files too.
            #[arg(long)]
            all: bool,
            /// Data folder, as for train.
            #[arg(long)]
            data: PathBuf,
            /// Fraction of each class's images held out (whole patients).
            #[arg(long, default_value_t = 0.15)]
            val_fraction: f64,
            /// Seed, as for train.
            #[arg(long, default_value_t = 42)]
            seed: u64,
        },
    }

    pub fn main() -> ExitCode {
        let args = Cli::parse();
        match run(args) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        }
    }

    /// Prints one line per file, as JSON or as `text` says (which also says whether the file
    /// was refused); the exit status is 1 if any was.
    fn print_lines<L: serde::Serialize>(
        lines: &[L],
        json: bool,
        text: impl Fn(&L) -> (String, bool),
    ) -> Result<ExitCode, CliError> {
        let mut refused = false;
        for line in lines {
            let (words, refused_here) = text(line);
            refused |= refused_here;
            if json {
                let json = serde_json::to_string(line).map_err(|e| CliError::Io(e.to_string()))?;
                println!("{json}");
            } else {
                println!("{words}");
            }
        }
        Ok(if refused {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        })
    }

    fn run(args: Cli) -> Result<ExitCode, CliError> {
        match args.command {
            Command::Predict { json, model, paths } => {
                let classifier = model.load()?;
                let lines = cli::predict(&classifier, &paths);
                print_lines(&lines, json, |line| match line {
                    PredictLine::Ok {
                        file,
                        label,
                        p_pneumonia,
                        uncertain,
                        ood_reason,
                        dicom,
                        ..
                    } => {
                        let mut line = format!("{file}\t{label}\tP(pneumonia) = {p_pneumonia:.4}");
                        if *uncertain {
                            line.push_str("\tuncertain: needs a reader");
                        }
                        if let Some(d) = dicom {
                            line.push_str(&format!("\t{}", d.summary()));
                        }
                        if let Some(why) = ood_reason {
                            line.push_str(&format!(
                                "\twarning: this does not look like a chest X-ray: {why}"
                            ));
                        }
                        (line, false)
                    }
                    PredictLine::Err { file, error } => (format!("{file}\terror: {error}"), true),
                })
            }
            Command::Explain {
                json,
                out,
                model,
                paths,
            } => {
                let classifier = model.load()?;
                let lines = cli::explain::explain(&classifier, &paths, out.as_deref())?;
                print_lines(&lines, json, |line| match line {
                    ExplainLine::Ok {
                        file,
                        label,
                        p_pneumonia,
                        peak,
                        heatmap,
                        png,
                    } => {
                        let mut line = format!(
                            "{file}\t{label}\tP(pneumonia) = {p_pneumonia:.4}\theatmap peak: row {} col {} of {}×{}",
                            peak[0], peak[1], heatmap.height, heatmap.width
                        );
                        if let Some(png) = png {
                            line.push_str(&format!("\t{png}"));
                        }
                        (line, false)
                    }
                    ExplainLine::Err { file, error } => (format!("{file}\terror: {error}"), true),
                })
            }
            Command::Eval {
                json,
                model,
                split,
                stress,
                seed,
                dir,
            } => {
                let classifier = model.load()?;
                let dir = cli::dataset::split_dir(&dir, split.as_deref())?;
                let (e, skipped) = cli::evaluate(&classifier, &dir, stress, seed)?;
                for s in &skipped {
                    eprintln!("skipped {s}");
                }
                if json {
                    println!(
                        "{}",
                        serde_json::to_string(&e).map_err(|e| CliError::Io(e.to_string()))?
                    );
                } else {
                    for line in cli::report::lines(&e) {
                        println!("{line}");
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            Command::Bench { model, runs } => {
                let classifier = model.load()?;
                let device = model.device;
                let (ms, per_sec) = cli::bench(&classifier, runs.max(1))?;
                println!(
                    "{} on {device}: {ms:.1} ms/image (median, batch 1), {per_sec:.1} images/s (batch 16), weights {:.2} MB ({}), peak memory {:.0} MB",
                    classifier.card.name,
                    classifier.card.weights_bytes as f64 / 1e6,
                    classifier.card.weights_dtype,
                    cli::peak_rss_mb()
                );
                Ok(ExitCode::SUCCESS)
            }
            Command::Split {
                all,
                data,
                val_fraction,
                seed,
            } => {
                let layout = cli::dataset::layout(&data)?;
                let samples = cli::dataset::list(&layout.train)?;
                let (train, val) = cli::dataset::split_by_patient(&samples, val_fraction, seed);
                let parts = [("val", &val), ("train", &train)];
                for (part, samples) in parts.into_iter().filter(|(p, _)| all || *p == "val") {
                    for s in samples {
                        println!(
                            "{part}\t{}\t{}\t{}",
                            Class::from_pneumonia(s.pneumonia),
                            cli::dataset::patient(s),
                            s.path.display()
                        );
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            Command::Subset(args) => {
                let m = cli::subset::run(&args)?;
                println!(
                    "{} images, {:.2} MB, in {}",
                    m.images.len(),
                    m.bytes as f64 / 1e6,
                    args.out.display()
                );
                Ok(ExitCode::SUCCESS)
            }
            Command::Gallery(args) => {
                let items = cli::subset::gallery(&args)?;
                println!("{} images in {}", items.len(), args.out.display());
                Ok(ExitCode::SUCCESS)
            }
            Command::OodFit(args) => {
                let m = cli::ood::fit(&args)?;
                println!("{}", m.fitted);
                println!(
                    "false alarms on held-out X-rays: {:.2} % ({} images)",
                    100.0 * m.val_false_alarm_rate,
                    m.val_images
                );
                Ok(ExitCode::SUCCESS)
            }
            Command::OodEval { model, dir } => {
                let classifier = cli::load_classifier(
                    &cli::model_dir(model.as_deref()),
                    burn::prelude::Device::flex(),
                )?;
                let r = cli::ood::eval(&classifier, &dir)?;
                for (file, what) in &r.lines {
                    println!("{file}\t{what}");
                }
                println!(
                    "flagged {} of {} images ({:.1} %)",
                    r.flagged,
                    r.images,
                    100.0 * r.flagged as f64 / r.images.max(1) as f64
                );
                Ok(ExitCode::SUCCESS)
            }
            Command::Train(args) => {
                cli::train::run(&args)?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Cv(args) => {
                let report = cli::cv::run(&args)?;
                for line in cli::cv::lines(&report) {
                    println!("{line}");
                }
                Ok(ExitCode::SUCCESS)
            }
            Command::CvEnsemble(args) => {
                let report = cli::cv::ensemble(&args)?;
                for line in cli::cv::lines(&report) {
                    println!("{line}");
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}
