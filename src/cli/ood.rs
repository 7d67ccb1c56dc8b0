//! `xray ood-fit`: fits the "does not look like a chest X-ray" criteria on the training part of
//! the split and measures their false-alarm rate on the held-out part; `xray ood-eval`: their
//! catch rate on a folder of images that are not chest X-rays.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use rayon::prelude::*;

use super::{CliError, dataset, load_classifier};
use crate::ml::{
    classifier::Classifier,
    ood::{self, OodModel},
    preprocess, weights,
};

/// What `xray ood-fit` was asked for.
#[derive(Debug, Clone, clap::Args)]
pub struct OodFitArgs {
    /// Data folder, as for train.
    #[arg(long)]
    pub data: PathBuf,
    /// Folder with card.json and the weights; the card is updated in place.
    #[arg(long, default_value = "public/model")]
    pub model: PathBuf,
    /// Held-out fraction of `xray train`'s split.
    #[arg(long, default_value_t = 0.15)]
    pub val_fraction: f64,
    /// Seed of `xray train`'s split.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Quantile of the training images' own scores used as each limit.
    #[arg(long, default_value_t = 0.999)]
    pub quantile: f64,
    /// Main axes of the features kept (the rest is the residual).
    #[arg(long, default_value_t = 16)]
    pub axes: usize,
}

/// Per image: colourfulness, contrast and pooled features.
struct Measured {
    colour: Vec<f32>,
    contrast: Vec<f32>,
    layout: Vec<Vec<f32>>,
    features: Vec<Vec<f32>>,
    skipped: usize,
}

fn measure(classifier: &Classifier, files: &[PathBuf]) -> Result<Measured, CliError> {
    let size = classifier.card.model.input_size;
    let mut m = Measured {
        colour: Vec::new(),
        contrast: Vec::new(),
        layout: Vec::new(),
        features: Vec::new(),
        skipped: 0,
    };
    for chunk in files.chunks(128) {
        let decoded: Vec<Option<(f32, Vec<f32>)>> = chunk
            .par_iter()
            .map(|path| {
                let bytes = std::fs::read(path).ok()?;
                let d = preprocess::decode(&bytes).ok()?;
                Some((d.colour, preprocess::to_square_unit(&d.gray, size)))
            })
            .collect();
        let ok: Vec<(f32, Vec<f32>)> = decoded.into_iter().flatten().collect();
        m.skipped += chunk.len() - ok.len();
        if ok.is_empty() {
            continue;
        }
        let inputs: Vec<Vec<f32>> = ok
            .iter()
            .map(|(_, unit)| {
                let mut x = unit.clone();
                preprocess::normalize(&mut x, classifier.card.normalization);
                x
            })
            .collect();
        let x = preprocess::batch_tensor(&inputs, size, &classifier.device);
        let f = classifier.model.features(x);
        let [_, dim] = f.dims();
        let values = weights::f32_values(f.into_data())?;
        for ((colour, unit), feat) in ok.iter().zip(values.chunks_exact(dim)) {
            m.colour.push(*colour);
            m.contrast.push(ood::contrast(unit));
            m.layout.push(ood::layout(unit));
            m.features.push(feat.to_vec());
        }
    }
    Ok(m)
}

fn flagged(model: &OodModel, m: &Measured, i: usize) -> bool {
    m.colour[i] > model.max_colour
        || m.contrast[i] < model.min_contrast
        || ood::z_rms(&m.layout[i], &model.layout_mean, &model.layout_std) > model.max_layout
        || model.distance(&m.features[i]) > model.max_distance
}

/// Per-entry mean and standard deviation of `rows`.
fn moments(rows: &[Vec<f32>]) -> (Vec<f32>, Vec<f32>) {
    let dim = rows.first().map_or(0, Vec::len);
    let n = rows.len().max(1) as f32;
    let mean: Vec<f32> = (0..dim)
        .map(|k| rows.iter().map(|f| f[k]).sum::<f32>() / n)
        .collect();
    let std: Vec<f32> = (0..dim)
        .map(|k| (rows.iter().map(|f| (f[k] - mean[k]).powi(2)).sum::<f32>() / n).sqrt())
        .collect();
    (mean, std)
}

/// Fits the criteria, writes them into the card and returns them.
pub fn fit(args: &OodFitArgs) -> Result<OodModel, CliError> {
    let mut classifier = load_classifier(&args.model, Device::flex())?;
    let layout = dataset::layout(&args.data)?;
    let samples = dataset::list(&layout.train)?;
    let (train, val) = dataset::split_by_patient(&samples, args.val_fraction, args.seed);
    let paths = |s: &[dataset::Sample]| s.iter().map(|s| s.path.clone()).collect::<Vec<_>>();
    eprintln!("measuring {} training images", train.len());
    let t = measure(&classifier, &paths(&train))?;
    let (mean, std) = moments(&t.features);
    let standardised: Vec<Vec<f32>> = t
        .features
        .iter()
        .map(|f| {
            f.iter()
                .zip(&mean)
                .zip(&std)
                .map(|((v, m), s)| (v - m) / s.max(1e-6))
                .collect()
        })
        .collect();
    let (layout_mean, layout_std) = moments(&t.layout);
    let mut model = OodModel {
        feature_axes: ood::main_axes(&standardised, args.axes),
        feature_mean: mean,
        feature_std: std,
        max_distance: 0.0,
        layout_mean,
        layout_std,
        max_layout: 0.0,
        max_colour: 0.0,
        min_contrast: 0.0,
        fitted: String::new(),
        val_false_alarm_rate: 0.0,
        val_images: 0,
    };
    let distances: Vec<f32> = t.features.iter().map(|f| model.distance(f)).collect();
    model.max_distance = ood::quantile(&distances, args.quantile);
    let layouts: Vec<f32> = t
        .layout
        .iter()
        .map(|l| ood::z_rms(l, &model.layout_mean, &model.layout_std))
        .collect();
    model.max_layout = ood::quantile(&layouts, args.quantile);
    model.max_colour = ood::DEFAULT_MAX_COLOUR.max(2.0 * ood::quantile(&t.colour, 0.999));
    let lowest = t.contrast.iter().copied().fold(f32::MAX, f32::min);
    model.min_contrast = ood::DEFAULT_MIN_CONTRAST.min(0.5 * lowest);

    eprintln!("measuring {} held-out images", val.len());
    let v = measure(&classifier, &paths(&val))?;
    let alarms = (0..v.features.len())
        .filter(|&i| flagged(&model, &v, i))
        .count();
    model.val_images = v.features.len();
    model.val_false_alarm_rate = alarms as f64 / v.features.len().max(1) as f64;
    model.fitted = format!(
        "fitted by `xray ood-fit` on the {} training images of the split (val fraction {}, seed {}): feature residual beyond {} main axes, limit = {} quantile ({:.3}); layout limit = same quantile ({:.3}); colourfulness limit {:.3} (highest training value {:.3}), contrast floor {:.4} (lowest training value {:.4}); {} of {} held-out X-rays flagged",
        t.features.len(),
        args.val_fraction,
        args.seed,
        args.axes,
        args.quantile,
        model.max_distance,
        model.max_layout,
        model.max_colour,
        t.colour.iter().copied().fold(0.0, f32::max),
        model.min_contrast,
        lowest,
        alarms,
        v.features.len()
    );
    classifier.card.ood = Some(model.clone());
    let card_path = args.model.join("card.json");
    let json = serde_json::to_string_pretty(&classifier.card)
        .map_err(|e| CliError::Io(format!("{}: {e}", card_path.display())))?;
    std::fs::write(&card_path, json + "\n")
        .map_err(|e| CliError::Io(format!("{}: {e}", card_path.display())))?;
    Ok(model)
}

fn image_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), CliError> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| CliError::Io(format!("{}: {e}", dir.display())))?;
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            image_files(&p, out)?;
        } else {
            out.push(p);
        }
    }
    Ok(())
}

/// The result of `xray ood-eval`.
pub struct OodEval {
    /// Images analysed.
    pub images: usize,
    /// Images flagged.
    pub flagged: usize,
    /// (file, reason or "not flagged" / the refusal).
    pub lines: Vec<(String, String)>,
}

/// Analyses every file under `dir` and counts those flagged (refused files are listed apart).
pub fn eval(classifier: &Classifier, dir: &Path) -> Result<OodEval, CliError> {
    let mut files = Vec::new();
    image_files(dir, &mut files)?;
    let mut out = OodEval {
        images: 0,
        flagged: 0,
        lines: Vec::new(),
    };
    for f in files {
        let name = f.display().to_string();
        let result = std::fs::read(&f)
            .map_err(|e| e.to_string())
            .and_then(|b| classifier.analyse(&b).map_err(|e| e.to_string()));
        match result {
            Ok(a) => {
                out.images += 1;
                if let Some(why) = a.ood {
                    out.flagged += 1;
                    out.lines.push((name, format!("flagged: {why}")));
                } else {
                    out.lines.push((
                        name,
                        format!(
                            "NOT flagged ({} {:.3})",
                            a.prediction.label, a.prediction.p_pneumonia
                        ),
                    ));
                }
            }
            Err(e) => out.lines.push((name, format!("refused: {e}"))),
        }
    }
    Ok(out)
}
