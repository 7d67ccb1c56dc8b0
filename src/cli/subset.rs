//! `xray subset`: writes the bundle of real X-rays the page fine-tunes on.
//!
//! Fine-tuning images come from the training patients of `xray train`'s patient-level split,
//! validation images from its held-out patients (minus any file already shown in the page's
//! gallery), so the shipped model's "before" figures on the bundle are honest held-out figures.
//! `xray gallery` writes the page's gallery from held-out patients, one image each.

use std::path::{Path, PathBuf};

use image::codecs::jpeg::JpegEncoder;

use super::{CliError, dataset};
use crate::ml::{
    class::Class,
    preprocess,
    subset::{GalleryItem, Part, SubsetImage, SubsetManifest},
    train::Rng,
};

/// What `xray subset` was asked for.
#[derive(Debug, Clone, clap::Args)]
pub struct SubsetArgs {
    /// Data folder, as for train.
    #[arg(long)]
    pub data: PathBuf,
    /// Output folder (subset.json and subset.bin).
    #[arg(long, default_value = "public/train")]
    pub out: PathBuf,
    /// Fine-tuning images per class.
    #[arg(long, default_value_t = 100)]
    pub train_per_class: usize,
    /// Validation images per class.
    #[arg(long, default_value_t = 50)]
    pub val_per_class: usize,
    /// Side of the stored square images (the model's input size).
    #[arg(long, default_value_t = 128)]
    pub size: usize,
    /// JPEG quality.
    #[arg(long, default_value_t = 90)]
    pub quality: u8,
    /// Held-out fraction and seed of `xray train`'s split.
    #[arg(long, default_value_t = 0.15)]
    pub val_fraction: f64,
    /// Seed of `xray train`'s split (and of the choice of images).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// A gallery manifest (JSON list with "source" fields) whose files are left out.
    #[arg(long)]
    pub exclude: Option<PathBuf>,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> CliError + '_ {
    move |e| CliError::Io(format!("{}: {e}", path.display()))
}

/// Where a file is, relative to the folder above the data root (as the gallery credits it).
fn source_of(path: &Path, data: &Path) -> String {
    let base = data.parent().unwrap_or(data);
    path.strip_prefix(base)
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}

fn pick(
    samples: Vec<dataset::Sample>,
    per_class: usize,
    seed: u64,
    excluded: &[String],
    data: &Path,
) -> Vec<dataset::Sample> {
    let mut out = Vec::new();
    for class in [false, true] {
        let mut of_class: Vec<dataset::Sample> = samples
            .iter()
            .filter(|s| s.pneumonia == class)
            .filter(|s| {
                let src = source_of(&s.path, data);
                !excluded
                    .iter()
                    .any(|e| src.ends_with(e.as_str()) || e.ends_with(&src))
            })
            .cloned()
            .collect();
        Rng::new(seed ^ 0x5B5E7 ^ u64::from(class)).shuffle(&mut of_class);
        of_class.truncate(per_class);
        out.extend(of_class);
    }
    out
}

/// Writes the bundle; returns the manifest.
pub fn run(args: &SubsetArgs) -> Result<SubsetManifest, CliError> {
    let layout = dataset::layout(&args.data)?;
    let samples = dataset::list(&layout.train)?;
    let (train, val) = dataset::split_by_patient(&samples, args.val_fraction, args.seed);
    let excluded: Vec<String> = match &args.exclude {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(io(path))?;
            let items: Vec<serde_json::Value> = serde_json::from_str(&text)
                .map_err(|e| CliError::Io(format!("{}: {e}", path.display())))?;
            items
                .iter()
                .filter_map(|v| v.get("source")?.as_str().map(str::to_string))
                .collect()
        }
        None => Vec::new(),
    };
    let chosen = [
        (
            Part::Train,
            pick(
                train,
                args.train_per_class,
                args.seed,
                &excluded,
                &args.data,
            ),
        ),
        (
            Part::Val,
            pick(val, args.val_per_class, args.seed, &excluded, &args.data),
        ),
    ];
    let mut data = Vec::new();
    let mut images = Vec::new();
    for (part, samples) in chosen {
        for (i, s) in samples.iter().enumerate() {
            let bytes = std::fs::read(&s.path).map_err(io(&s.path))?;
            let gray = preprocess::decode_gray16(&bytes)
                .map_err(|e| CliError::Io(format!("{}: {e}", s.path.display())))?;
            let unit = preprocess::to_square_unit(&gray, args.size);
            let pixels: Vec<u8> = unit
                .iter()
                .map(|v| (v * 255.0).round().clamp(0.0, 255.0) as u8)
                .collect();
            let offset = data.len();
            JpegEncoder::new_with_quality(&mut data, args.quality)
                .encode(
                    &pixels,
                    args.size as u32,
                    args.size as u32,
                    image::ExtendedColorType::L8,
                )
                .map_err(|e| CliError::Io(format!("encoding {}: {e}", s.path.display())))?;
            let label = Class::from_pneumonia(s.pneumonia);
            images.push(SubsetImage {
                name: format!(
                    "{}-{}-{:03}",
                    match part {
                        Part::Train => "tune",
                        Part::Val => "val",
                    },
                    label.name().to_ascii_lowercase(),
                    i + 1
                ),
                source: source_of(&s.path, &args.data),
                label,
                part,
                offset,
                len: data.len() - offset,
            });
        }
    }
    let manifest = SubsetManifest {
        about: format!(
            "{} fine-tuning images from the training patients and {} validation images from the held-out patients of `xray train`'s patient-level split (val fraction {}, seed {}), {} per class each, gallery images excluded; grayscale JPEG (quality {}) at {}×{} px. Written by `xray subset`.",
            images.iter().filter(|i| i.part == Part::Train).count(),
            images.iter().filter(|i| i.part == Part::Val).count(),
            args.val_fraction,
            args.seed,
            format_args!("{}/{}", args.train_per_class, args.val_per_class),
            args.quality,
            args.size,
            args.size
        ),
        license: "Kermany, Zhang, Goldbaum (2018), Labeled Optical Coherence Tomography (OCT) and Chest X-Ray Images for Classification, Mendeley Data, v2, doi:10.17632/rscbjbr9sj.2, CC BY 4.0. Resized and re-encoded.".into(),
        size: args.size,
        data: "subset.bin".into(),
        bytes: data.len(),
        images,
    };
    std::fs::create_dir_all(&args.out).map_err(io(&args.out))?;
    let bin = args.out.join(&manifest.data);
    std::fs::write(&bin, &data).map_err(io(&bin))?;
    let json_path = args.out.join("subset.json");
    let json = serde_json::to_string_pretty(&manifest)
        .map_err(|e| CliError::Io(format!("subset.json: {e}")))?;
    std::fs::write(&json_path, json).map_err(io(&json_path))?;
    Ok(manifest)
}

/// What `xray gallery` was asked for.
#[derive(Debug, Clone, clap::Args)]
pub struct GalleryArgs {
    /// Data folder, as for train.
    #[arg(long)]
    pub data: PathBuf,
    /// Output folder (the images and manifest.json).
    #[arg(long, default_value = "public/samples")]
    pub out: PathBuf,
    /// Images per class, each from a different held-out patient.
    #[arg(long, default_value_t = 12)]
    pub per_class: usize,
    /// Held-out fraction of `xray train`'s split.
    #[arg(long, default_value_t = 0.15)]
    pub val_fraction: f64,
    /// Seed of `xray train`'s split (and of the choice of images).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// Copies `per_class` held-out X-rays of each class, one per patient, into the gallery folder
/// and writes its manifest; returns the manifest.
pub fn gallery(args: &GalleryArgs) -> Result<Vec<GalleryItem>, CliError> {
    let layout = dataset::layout(&args.data)?;
    let samples = dataset::list(&layout.train)?;
    let (_, val) = dataset::split_by_patient(&samples, args.val_fraction, args.seed);
    std::fs::create_dir_all(&args.out).map_err(io(&args.out))?;
    let mut items = Vec::new();
    for class in [false, true] {
        let mut of_class: Vec<&dataset::Sample> =
            val.iter().filter(|s| s.pneumonia == class).collect();
        Rng::new(args.seed ^ 0x006A_11E4 ^ u64::from(class)).shuffle(&mut of_class);
        let mut patients = std::collections::HashSet::new();
        let label = Class::from_pneumonia(class);
        for s in of_class {
            if patients.len() == args.per_class {
                break;
            }
            if !patients.insert(dataset::patient(s)) {
                continue;
            }
            let file = format!(
                "{}-{:02}.jpeg",
                label.name().to_ascii_lowercase(),
                patients.len()
            );
            let dest = args.out.join(&file);
            std::fs::copy(&s.path, &dest).map_err(io(&dest))?;
            items.push(GalleryItem {
                file,
                label,
                source: source_of(&s.path, &args.data),
            });
        }
    }
    let path = args.out.join("manifest.json");
    let json = serde_json::to_string_pretty(&items)
        .map_err(|e| CliError::Io(format!("{}: {e}", path.display())))?;
    std::fs::write(&path, json + "\n").map_err(io(&path))?;
    Ok(items)
}
