//! Reading labelled X-ray folders: the Kaggle layout `ROOT/{train,val,test}/{NORMAL,PNEUMONIA}/`
//! or a single `DIR/{NORMAL,PNEUMONIA}/`, and the patient-level validation split and folds.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::ml::{class::CLASSES, preprocess, split};

/// Why a data folder cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// Neither layout found.
    #[error(
        "{0}: expected NORMAL/ and PNEUMONIA/ sub-folders, or a Kaggle root with train/NORMAL/ and train/PNEUMONIA/"
    )]
    Layout(PathBuf),
    /// One class folder is missing.
    #[error("{0}: the class folder is missing")]
    MissingClass(PathBuf),
    /// A class folder without files.
    #[error("{0}: the class folder holds no images")]
    EmptyClass(PathBuf),
    /// A folder that cannot be listed.
    #[error("{path}: {source}")]
    Io {
        /// The folder or file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Files that are not usable images.
    #[error(
        "{count} file(s) are not usable images, e.g. {examples}; remove them or pass --skip-bad"
    )]
    BadImages {
        /// How many.
        count: usize,
        /// A few names with reasons.
        examples: String,
    },
}

/// Why one file of a data folder cannot be used.
#[derive(Debug, thiserror::Error)]
enum Unusable {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Image {
        path: PathBuf,
        source: crate::ml::input::InputError,
    },
}

/// A labelled image file.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Where it is.
    pub path: PathBuf,
    /// True for PNEUMONIA.
    pub pneumonia: bool,
}

/// The folders found under a data root.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The folder training reads (`train/` of a Kaggle root, or the root itself).
    pub train: PathBuf,
    /// The Kaggle `val/` folder if there is one, reported apart.
    pub kaggle_val: Option<PathBuf>,
}

fn is_class_dir(dir: &Path) -> bool {
    CLASSES.iter().any(|c| dir.join(c.name()).is_dir())
}

/// Recognises the layout of `root`.
pub fn layout(root: &Path) -> Result<Layout, DataError> {
    if is_class_dir(root) {
        return Ok(Layout {
            train: root.to_path_buf(),
            kaggle_val: None,
        });
    }
    let train = root.join("train");
    if is_class_dir(&train) {
        let val = root.join("val");
        return Ok(Layout {
            train,
            kaggle_val: is_class_dir(&val).then_some(val),
        });
    }
    Err(DataError::Layout(root.to_path_buf()))
}

/// The folder for `split` of a Kaggle root, or `dir` itself when it holds the class folders.
pub fn split_dir(dir: &Path, split: Option<&str>) -> Result<PathBuf, DataError> {
    match split {
        Some(s) if is_class_dir(&dir.join(s)) => Ok(dir.join(s)),
        Some(_) => Err(DataError::Layout(dir.to_path_buf())),
        None if is_class_dir(dir) => Ok(dir.to_path_buf()),
        None => Err(DataError::Layout(dir.to_path_buf())),
    }
}

/// Lists the files of both class folders, sorted by name within each class.
pub fn list(dir: &Path) -> Result<Vec<Sample>, DataError> {
    let mut out = Vec::new();
    for class in CLASSES {
        let pneumonia = class.is_pneumonia();
        let class_dir = dir.join(class.name());
        if !class_dir.is_dir() {
            return Err(DataError::MissingClass(class_dir));
        }
        let entries = std::fs::read_dir(&class_dir).map_err(|source| DataError::Io {
            path: class_dir.clone(),
            source,
        })?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.is_file()
                    && !p
                        .file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with('.'))
            })
            .collect();
        if files.is_empty() {
            return Err(DataError::EmptyClass(class_dir));
        }
        files.sort();
        out.extend(files.into_iter().map(|path| Sample { path, pneumonia }));
    }
    Ok(out)
}

/// Keeps at most `n` samples of each class (the first ones by name), for quick runs.
pub fn limit_per_class(samples: Vec<Sample>, n: usize) -> Vec<Sample> {
    let (mut normal, mut pneumonia) = (0, 0);
    samples
        .into_iter()
        .filter(|s| {
            let count = if s.pneumonia {
                &mut pneumonia
            } else {
                &mut normal
            };
            *count += 1;
            *count <= n
        })
        .collect()
}

/// The name the patient id is read from.
fn file_name(sample: &Sample) -> String {
    sample
        .path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}

fn named(samples: &[Sample]) -> Vec<(String, bool)> {
    samples
        .iter()
        .map(|s| (file_name(s), s.pneumonia))
        .collect()
}

/// The patient of a sample, from its file name ([`split::patient_id`]).
pub fn patient(sample: &Sample) -> String {
    split::patient_id(&file_name(sample)).to_string()
}

/// Holds out whole patients, `fraction` of each class's images, chosen by a seeded shuffle of
/// the patients ([`split::holdout`]): (train, validation).
pub fn split_by_patient(
    samples: &[Sample],
    fraction: f64,
    seed: u64,
) -> (Vec<Sample>, Vec<Sample>) {
    let held = split::holdout(&named(samples), fraction, seed);
    let (val, train): (Vec<_>, Vec<_>) = samples.iter().zip(held).partition(|(_, h)| *h);
    (
        train.into_iter().map(|(s, _)| s.clone()).collect(),
        val.into_iter().map(|(s, _)| s.clone()).collect(),
    )
}

/// The cross-validation fold of each sample, by patient ([`split::folds`]).
pub fn folds(samples: &[Sample], k: usize, seed: u64) -> Vec<usize> {
    split::folds(&named(samples), k, seed)
}

/// Decoded images, each `size`×`size` in [0, 1], with labels.
pub struct Loaded {
    /// Pixels, one vector an image.
    pub images: Vec<Vec<f32>>,
    /// True for PNEUMONIA.
    pub labels: Vec<bool>,
    /// The index in the given samples of each loaded image.
    pub indices: Vec<usize>,
    /// Files skipped as unusable, with reasons.
    pub skipped: Vec<String>,
}

/// Decodes every sample through the shared preprocessing, in parallel.
pub fn load(samples: &[Sample], size: usize, skip_bad: bool) -> Result<Loaded, DataError> {
    let decoded: Vec<Result<Vec<f32>, Unusable>> = samples
        .par_iter()
        .map(|s| {
            let bytes = std::fs::read(&s.path).map_err(|source| Unusable::Read {
                path: s.path.clone(),
                source,
            })?;
            preprocess::decode_gray16(&bytes)
                .map(|g| preprocess::to_square_unit(&g, size))
                .map_err(|source| Unusable::Image {
                    path: s.path.clone(),
                    source,
                })
        })
        .collect();
    let mut loaded = Loaded {
        images: Vec::with_capacity(samples.len()),
        labels: Vec::with_capacity(samples.len()),
        indices: Vec::with_capacity(samples.len()),
        skipped: Vec::new(),
    };
    for (i, (sample, result)) in samples.iter().zip(decoded).enumerate() {
        match result {
            Ok(img) => {
                loaded.images.push(img);
                loaded.labels.push(sample.pneumonia);
                loaded.indices.push(i);
            }
            Err(reason) => loaded.skipped.push(reason.to_string()),
        }
    }
    if !loaded.skipped.is_empty() && !skip_bad {
        return Err(DataError::BadImages {
            count: loaded.skipped.len(),
            examples: loaded
                .skipped
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join("; "),
        });
    }
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(n_normal: usize, n_pneumonia: usize) -> Vec<Sample> {
        (0..n_normal)
            .map(|i| (i, false))
            .chain((0..n_pneumonia).map(|i| (i, true)))
            .map(|(i, pneumonia)| Sample {
                path: PathBuf::from(format!("{pneumonia}-{i}")),
                pneumonia,
            })
            .collect()
    }

    #[test]
    fn split_is_by_patient_stratified_seeded_and_disjoint() {
        let all = samples(100, 300);
        let (train, val) = split_by_patient(&all, 0.15, 42);
        assert_eq!(val.iter().filter(|s| !s.pneumonia).count(), 15);
        assert_eq!(val.iter().filter(|s| s.pneumonia).count(), 45);
        assert_eq!(train.len() + val.len(), 400);
        assert!(val.iter().all(|v| !train.contains(v)));
        let (_, val2) = split_by_patient(&all, 0.15, 42);
        assert_eq!(val, val2);
        let (_, val3) = split_by_patient(&all, 0.15, 43);
        assert_ne!(val, val3);
    }

    /// The real file names: no patient on both sides of the split, nor in two folds.
    #[test]
    fn no_patient_on_both_sides_of_the_real_split() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/chest_xray");
        let Ok(layout) = layout(&root) else {
            eprintln!("skipped: {} not found", root.display());
            return;
        };
        let all = list(&layout.train).unwrap();
        let (train, val) = split_by_patient(&all, 0.15, 42);
        let train_patients: std::collections::HashSet<String> = train.iter().map(patient).collect();
        assert!(val.iter().all(|s| !train_patients.contains(&patient(s))));
        let share = val.len() as f64 / all.len() as f64;
        assert!((0.13..0.17).contains(&share), "{share}");
        let fold = folds(&all, 5, 42);
        let mut fold_of = std::collections::HashMap::new();
        for (s, f) in all.iter().zip(&fold) {
            assert_eq!(*fold_of.entry(patient(s)).or_insert(*f), *f);
        }
    }

    #[test]
    fn limit_keeps_first_of_each_class() {
        let kept = limit_per_class(samples(5, 5), 2);
        assert_eq!(kept.len(), 4);
    }
}
