//! `xray explain`: each file's prediction with its heatmap, as JSON lines and/or as PNGs of the
//! heatmap blended over the X-ray at its own resolution.

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
};

use serde::Serialize;

use super::CliError;
use crate::ml::{
    classifier::Classifier,
    explain::{self, Heatmap},
    preprocess,
};

/// The heatmap as `xray explain --json` writes it.
#[derive(Debug, Serialize)]
pub struct HeatmapJson {
    /// Cells across.
    pub width: usize,
    /// Cells down.
    pub height: usize,
    /// Row-major, normalised to [0, 1] per image.
    pub values: Vec<f32>,
}

impl From<Heatmap> for HeatmapJson {
    fn from(h: Heatmap) -> Self {
        Self {
            width: h.width,
            height: h.height,
            values: h.values,
        }
    }
}

/// One line of `xray explain --json`.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum ExplainLine {
    /// An explained file.
    Ok {
        /// As given.
        file: String,
        /// NORMAL or PNEUMONIA.
        label: crate::ml::class::Class,
        /// Calibrated probability.
        p_pneumonia: f32,
        /// The heatmap's highest cell: [row, col].
        peak: [usize; 2],
        /// Where the model looked.
        heatmap: HeatmapJson,
        /// The blended PNG written, with `--out`.
        #[serde(skip_serializing_if = "Option::is_none")]
        png: Option<String>,
    },
    /// A refused file.
    Err {
        /// As given.
        file: String,
        /// Why.
        error: String,
    },
}

/// Explains each file, in order; with `out`, writes `OUT/<stem>.heatmap.png` for each (`-2`,
/// `-3`, … appended when two files share a stem). Only a folder that cannot be created is an
/// error for the whole run; a file that cannot be read, decoded or written gets its own line.
pub fn explain(
    classifier: &Classifier,
    files: &[PathBuf],
    out: Option<&Path>,
) -> Result<Vec<ExplainLine>, CliError> {
    if let Some(dir) = out {
        std::fs::create_dir_all(dir)
            .map_err(|e| CliError::Io(format!("{}: {e}", dir.display())))?;
    }
    let mut names = HashSet::new();
    Ok(files
        .iter()
        .map(|path| {
            let file = path.display().to_string();
            match explain_one(classifier, path, out, &mut names) {
                Ok((a, png)) => ExplainLine::Ok {
                    file,
                    label: a.0,
                    p_pneumonia: a.1,
                    peak: {
                        let (r, c) = a.2.peak();
                        [r, c]
                    },
                    heatmap: a.2.into(),
                    png,
                },
                Err(error) => ExplainLine::Err { file, error },
            }
        })
        .collect())
}

type Explained = (crate::ml::class::Class, f32, Heatmap);

fn explain_one(
    classifier: &Classifier,
    path: &Path,
    out: Option<&Path>,
    names: &mut HashSet<String>,
) -> Result<(Explained, Option<String>), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("could not be read: {e}"))?;
    let decoded = preprocess::decode(&bytes).map_err(|e| e.to_string())?;
    let analysis = classifier
        .explain_prepared(&classifier.prepare_decoded(&decoded))
        .map_err(|e| e.to_string())?;
    let heatmap = analysis
        .heatmap
        .ok_or_else(|| "the model gave no heatmap".to_string())?;
    let png = match out {
        None => None,
        Some(dir) => {
            let bytes = explain::overlay_png(&decoded.gray, &heatmap, explain::OVERLAY_OPACITY)
                .map_err(|e| format!("could not encode its heatmap: {e}"))?;
            let target = dir.join(unique_name(path, names));
            std::fs::write(&target, bytes)
                .map_err(|e| format!("{}: could not be written: {e}", target.display()))?;
            Some(target.display().to_string())
        }
    };
    let p = analysis.prediction;
    Ok(((p.label, p.p_pneumonia, heatmap), png))
}

fn unique_name(path: &Path, names: &mut HashSet<String>) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into());
    let mut name = format!("{stem}.heatmap.png");
    let mut n = 2;
    while !names.insert(name.clone()) {
        name = format!("{stem}-{n}.heatmap.png");
        n += 1;
    }
    name
}
