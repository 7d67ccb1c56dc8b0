//! A stand-in for a new hospital: acquisition changes that training never applies in this
//! form, used to re-score validation (`xray eval --stress`, `xray train`, `xray cv`).
//!
//! Each condition changes the decoded image at its own resolution, before the shared resize:
//! gamma, contrast, blur, JPEG re-compression, zoom, shift and exposure. All are deterministic.

use image::{ExtendedColorType, ImageBuffer, codecs::jpeg::JpegEncoder};

use serde::{Deserialize, Serialize};

use super::{
    input::Gray16,
    metrics::Metrics,
    train::{bilinear, gaussian_blur_rect},
};

/// The metrics under one condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StressResult {
    /// Its name in [`CONDITIONS`].
    pub condition: String,
    /// Metrics at the card's threshold.
    pub metrics: Metrics,
}

/// Five headline metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Accuracy at the threshold.
    pub accuracy: f64,
    /// Area under the ROC curve.
    pub auc: f64,
    /// Recall of PNEUMONIA.
    pub sensitivity: f64,
    /// Recall of NORMAL.
    pub specificity: f64,
    /// Expected calibration error.
    pub ece: f64,
}

/// Validation under every condition, with their mean and the worst of each metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StressReport {
    /// One entry per condition.
    pub conditions: Vec<StressResult>,
    /// Mean over the conditions.
    pub mean: Summary,
    /// Worst over the conditions (lowest, highest for ECE).
    pub worst: Summary,
}

impl StressReport {
    /// Summarises the per-condition results.
    pub fn new(conditions: Vec<StressResult>) -> Self {
        let n = conditions.len().max(1) as f64;
        let all = |f: fn(&Metrics) -> f64| conditions.iter().map(move |c| f(&c.metrics));
        let mean = |f: fn(&Metrics) -> f64| all(f).sum::<f64>() / n;
        let min = |f: fn(&Metrics) -> f64| all(f).fold(f64::INFINITY, f64::min);
        let summary_mean = Summary {
            accuracy: mean(|m| m.accuracy),
            auc: mean(|m| m.auc),
            sensitivity: mean(|m| m.sensitivity),
            specificity: mean(|m| m.specificity),
            ece: mean(|m| m.ece),
        };
        let worst = Summary {
            accuracy: min(|m| m.accuracy),
            auc: min(|m| m.auc),
            sensitivity: min(|m| m.sensitivity),
            specificity: min(|m| m.specificity),
            ece: all(|m| m.ece).fold(0.0, f64::max),
        };
        Self {
            conditions,
            mean: summary_mean,
            worst,
        }
    }
}

/// One change of acquisition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Condition {
    /// `v^g`.
    Gamma(f32),
    /// Contrast around mid-grey by this factor.
    Contrast(f32),
    /// Gaussian blur, standard deviation as a fraction of the shorter side.
    Blur(f32),
    /// Re-encoded as 8-bit JPEG at this quality.
    Jpeg(u8),
    /// Zoom by this factor about the centre (above 1: in; below 1: out, the border repeated).
    Zoom(f32),
    /// Shift right and down by this fraction of each side (the border repeated).
    Shift(f32),
    /// Exposure: `v · f` for a darker image (f < 1), `1 − (1 − v) · f` for a brighter one
    /// (encoded as −f).
    Exposure(f32),
}

/// The conditions of the stress test, with their names.
pub const CONDITIONS: [(&str, Condition); 11] = [
    ("gamma 0.6", Condition::Gamma(0.6)),
    ("gamma 1.6", Condition::Gamma(1.6)),
    ("contrast -35%", Condition::Contrast(0.65)),
    ("contrast +35%", Condition::Contrast(1.35)),
    ("blur", Condition::Blur(0.006)),
    ("JPEG q25", Condition::Jpeg(25)),
    ("zoom in 10%", Condition::Zoom(1.1)),
    ("zoom out 10%", Condition::Zoom(1.0 / 1.1)),
    ("shift 6%", Condition::Shift(0.06)),
    ("darker", Condition::Exposure(0.7)),
    ("brighter", Condition::Exposure(-0.7)),
];

fn to_unit(gray: &Gray16) -> Vec<f32> {
    gray.as_raw()
        .iter()
        .map(|&v| f32::from(v) / 65_535.0)
        .collect()
}

fn from_unit(w: u32, h: u32, values: &[f32]) -> Gray16 {
    let raw = values
        .iter()
        .map(|v| (v.clamp(0.0, 1.0) * 65_535.0).round() as u16)
        .collect();
    ImageBuffer::from_raw(w, h, raw).unwrap_or_else(|| ImageBuffer::new(w, h))
}

/// Resamples with `src(x, y) = map(x, y)` (bilinear, border repeated).
fn warp(w: usize, h: usize, v: &[f32], map: impl Fn(f32, f32) -> (f32, f32)) -> Vec<f32> {
    let mut out = Vec::with_capacity(w * h);
    for y in 0..h {
        for x in 0..w {
            let (sx, sy) = map(x as f32, y as f32);
            out.push(bilinear(v, w, h, sx, sy));
        }
    }
    out
}

/// The image under `condition`.
pub fn apply(gray: &Gray16, condition: Condition) -> Gray16 {
    let (w, h) = gray.dimensions();
    let (wu, hu) = (w as usize, h as usize);
    if wu == 0 || hu == 0 {
        return gray.clone();
    }
    let v = to_unit(gray);
    let out: Vec<f32> = match condition {
        Condition::Gamma(g) => v.iter().map(|x| x.powf(g)).collect(),
        Condition::Contrast(c) => v.iter().map(|x| (x - 0.5) * c + 0.5).collect(),
        Condition::Exposure(f) if f >= 0.0 => v.iter().map(|x| x * f).collect(),
        Condition::Exposure(f) => v.iter().map(|x| 1.0 - (1.0 - x) * -f).collect(),
        Condition::Blur(fraction) => {
            let mut b = v;
            gaussian_blur_rect(&mut b, wu, hu, fraction * w.min(h) as f32);
            b
        }
        Condition::Jpeg(quality) => {
            let bytes: Vec<u8> = v
                .iter()
                .map(|x| (x.clamp(0.0, 1.0) * 255.0).round() as u8)
                .collect();
            let mut jpeg = Vec::new();
            let encoded = JpegEncoder::new_with_quality(&mut jpeg, quality).encode(
                &bytes,
                w,
                h,
                ExtendedColorType::L8,
            );
            match encoded
                .ok()
                .and_then(|()| image::load_from_memory(&jpeg).ok())
            {
                Some(img) => img
                    .to_luma8()
                    .as_raw()
                    .iter()
                    .map(|&b| f32::from(b) / 255.0)
                    .collect(),
                None => v,
            }
        }
        Condition::Zoom(z) => {
            let (cx, cy) = ((w as f32 - 1.0) / 2.0, (h as f32 - 1.0) / 2.0);
            warp(wu, hu, &v, |x, y| (cx + (x - cx) / z, cy + (y - cy) / z))
        }
        Condition::Shift(f) => {
            let (dx, dy) = (f * w as f32, f * h as f32);
            warp(wu, hu, &v, |x, y| (x - dx, y - dy))
        }
    };
    let out: Vec<f32> = out.into_iter().map(|x| x.clamp(0.0, 1.0)).collect();
    from_unit(w, h, &out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Luma;

    fn pixel(gray: &Gray16, x: u32, y: u32) -> u16 {
        let Luma([v]) = *gray.get_pixel(x, y);
        v
    }

    fn ramp() -> Gray16 {
        ImageBuffer::from_fn(120, 90, |x, y| Luma([((x * 500 + y * 30) % 65_535) as u16]))
    }

    #[test]
    fn every_condition_is_deterministic_keeps_the_size_and_changes_the_image() {
        let img = ramp();
        for (name, c) in CONDITIONS {
            let a = apply(&img, c);
            assert_eq!(a, apply(&img, c), "{name}");
            assert_eq!(a.dimensions(), img.dimensions(), "{name}");
            assert_ne!(a, img, "{name} changed nothing");
        }
    }

    #[test]
    fn intensity_conditions_move_the_mean_the_right_way() {
        let img = ramp();
        let mean = |g: &Gray16| g.as_raw().iter().map(|&v| f64::from(v)).sum::<f64>();
        let m = mean(&img);
        assert!(mean(&apply(&img, Condition::Gamma(0.6))) > m);
        assert!(mean(&apply(&img, Condition::Gamma(1.6))) < m);
        assert!(mean(&apply(&img, Condition::Exposure(0.7))) < m);
        assert!(mean(&apply(&img, Condition::Exposure(-0.7))) > m);
        let shifted = apply(&img, Condition::Shift(0.1));
        assert_eq!(pixel(&shifted, 50, 40), pixel(&img, 38, 31));
    }
}
