//! "This does not look like a chest X-ray": three measured criteria, fitted by `xray ood-fit`
//! on the training part of the split and stored in the model card.
//!
//! 1. Colour: X-rays are gray, so a mean colourfulness above `max_colour` is flagged.
//! 2. Contrast: a (nearly) uniform image has a tiny standard deviation at the model's input.
//! 3. Layout: chest X-rays share a layout (lungs either side of the mediastinum). The image
//!    shrunk to 16×16 is compared with the training images' mean and spread at each of those
//!    pixels (root mean square z-score); above a high quantile of the training images' own
//!    scores, it is flagged.
//! 4. Content: the network's pooled features, standardised, are projected on the main axes of
//!    variation of the training images' features; what the projection leaves out (the residual,
//!    root mean square) measures how far the image is from anything seen in training, and is
//!    flagged above a high quantile of the training images' own residuals.

use serde::{Deserialize, Serialize};

/// The fitted criteria, stored in the model card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OodModel {
    /// Mean of each pooled feature over the training images.
    pub feature_mean: Vec<f32>,
    /// Standard deviation of each pooled feature.
    pub feature_std: Vec<f32>,
    /// Main axes of the standardised features (unit vectors).
    pub feature_axes: Vec<Vec<f32>>,
    /// Feature residuals above this are flagged.
    pub max_distance: f32,
    /// Mean of each of the 16×16 layout pixels over the training images.
    pub layout_mean: Vec<f32>,
    /// Their standard deviation.
    pub layout_std: Vec<f32>,
    /// Layout scores above this are flagged.
    pub max_layout: f32,
    /// Colourfulness above this is flagged.
    pub max_colour: f32,
    /// Standard deviation of the [0, 1] input below this is flagged.
    pub min_contrast: f32,
    /// How it was fitted and how it does, for the model card.
    pub fitted: String,
    /// Fraction of validation X-rays flagged (false alarms).
    pub val_false_alarm_rate: f64,
    /// Validation images it was measured on.
    pub val_images: usize,
}

/// Defaults when the card has no fitted model: only colour and blank images are caught.
pub const DEFAULT_MAX_COLOUR: f32 = 0.08;
/// Default contrast floor.
pub const DEFAULT_MIN_CONTRAST: f32 = 0.02;

/// Standard deviation of `pixels`.
pub fn contrast(pixels: &[f32]) -> f32 {
    let n = pixels.len().max(1) as f32;
    let mean = pixels.iter().sum::<f32>() / n;
    (pixels.iter().map(|p| (p - mean) * (p - mean)).sum::<f32>() / n).sqrt()
}

/// Side of the layout thumbnail.
pub const LAYOUT: usize = 16;

/// The [0, 1] input (`size`×`size`) averaged down to 16×16.
pub fn layout(unit: &[f32]) -> Vec<f32> {
    let size = (unit.len() as f64).sqrt() as usize;
    let cell = (size / LAYOUT).max(1);
    let mut out = vec![0.0; LAYOUT * LAYOUT];
    for (i, o) in out.iter_mut().enumerate() {
        let (cy, cx) = (i / LAYOUT, i % LAYOUT);
        let mut sum = 0.0;
        let mut n = 0;
        for y in cy * cell..((cy + 1) * cell).min(size) {
            for x in cx * cell..((cx + 1) * cell).min(size) {
                sum += unit[y * size + x];
                n += 1;
            }
        }
        *o = sum / n.max(1) as f32;
    }
    out
}

/// Root mean square z-score of `values` against per-entry means and spreads.
pub fn z_rms(values: &[f32], mean: &[f32], std: &[f32]) -> f32 {
    let n = values.len().min(mean.len()).max(1);
    let sum: f32 = values
        .iter()
        .zip(mean)
        .zip(std)
        .map(|((v, m), s)| {
            let z = (v - m) / s.max(1e-6);
            z * z
        })
        .sum();
    (sum / n as f32).sqrt()
}

impl OodModel {
    /// Standardised features minus their projection on the main axes: root mean square.
    pub fn distance(&self, features: &[f32]) -> f32 {
        let mut z: Vec<f32> = features
            .iter()
            .zip(&self.feature_mean)
            .zip(&self.feature_std)
            .map(|((f, m), s)| (f - m) / s.max(1e-6))
            .collect();
        for axis in &self.feature_axes {
            let dot: f32 = z.iter().zip(axis).map(|(a, b)| a * b).sum();
            for (v, a) in z.iter_mut().zip(axis) {
                *v -= dot * a;
            }
        }
        (z.iter().map(|v| v * v).sum::<f32>() / z.len().max(1) as f32).sqrt()
    }

    /// How unlike a chest X-ray's layout the image is.
    pub fn layout_score(&self, unit: &[f32]) -> f32 {
        z_rms(&layout(unit), &self.layout_mean, &self.layout_std)
    }
}

/// The `k` main axes of `rows` (already standardised), by power iteration with deflation on
/// their covariance matrix.
pub fn main_axes(rows: &[Vec<f32>], k: usize) -> Vec<Vec<f32>> {
    let dim = rows.first().map_or(0, Vec::len);
    let n = rows.len().max(1) as f64;
    let mut cov = vec![vec![0.0f64; dim]; dim];
    for r in rows {
        for i in 0..dim {
            for j in 0..dim {
                cov[i][j] += f64::from(r[i]) * f64::from(r[j]) / n;
            }
        }
    }
    let mut axes = Vec::new();
    for a in 0..k.min(dim) {
        let mut v: Vec<f64> = (0..dim)
            .map(|i| 1.0 + ((i * 7 + a * 13) % 5) as f64)
            .collect();
        let mut lambda = 0.0;
        for _ in 0..200 {
            let w: Vec<f64> = (0..dim)
                .map(|i| (0..dim).map(|j| cov[i][j] * v[j]).sum())
                .collect();
            let norm = w.iter().map(|x| x * x).sum::<f64>().sqrt();
            if norm < 1e-12 {
                break;
            }
            lambda = norm;
            v = w.iter().map(|x| x / norm).collect();
        }
        for i in 0..dim {
            for j in 0..dim {
                cov[i][j] -= lambda * v[i] * v[j];
            }
        }
        axes.push(v.iter().map(|&x| x as f32).collect());
    }
    axes
}

/// Why an image does not look like a chest X-ray: the criterion that tripped, with the value
/// measured and the limit it crossed. `Display` gives the sentence the page and the CLI show.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OodReason {
    /// Mean colourfulness above the limit: X-rays are grayscale.
    Colour {
        /// Measured colourfulness.
        colourfulness: f32,
        /// The card's `max_colour`.
        limit: f32,
    },
    /// Standard deviation of the model input below the floor.
    Uniform {
        /// Measured contrast.
        contrast: f32,
        /// The card's `min_contrast`.
        limit: f32,
    },
    /// The 16×16 layout is far from the training images'.
    Layout {
        /// Root mean square z-score.
        score: f32,
        /// The card's `max_layout`.
        limit: f32,
    },
    /// The pooled features are far from anything seen in training.
    Content {
        /// Residual off the main axes.
        distance: f32,
        /// The card's `max_distance`.
        limit: f32,
    },
}

impl OodReason {
    /// The criterion's short name: `colour`, `uniform`, `layout` or `content`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Colour { .. } => "colour",
            Self::Uniform { .. } => "uniform",
            Self::Layout { .. } => "layout",
            Self::Content { .. } => "content",
        }
    }
}

impl std::fmt::Display for OodReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Self::Colour { colourfulness, .. } => write!(
                f,
                "it is a colour image (colourfulness {colourfulness:.2}); X-rays are grayscale"
            ),
            Self::Uniform { contrast, .. } => {
                write!(f, "it is almost uniform (contrast {contrast:.3})")
            }
            Self::Layout { score, limit } => write!(
                f,
                "its layout is unlike a frontal chest X-ray (score {score:.2}, limit {limit:.2})"
            ),
            Self::Content { distance, limit } => write!(
                f,
                "its content is unlike the chest X-rays the model was trained on (distance {distance:.2}, limit {limit:.2})"
            ),
        }
    }
}

/// Why an image does not look like a chest X-ray, or `None` when it does. The criteria are
/// tried in the order of the module doc; the first that trips is the reason.
///
/// - `colour`: the decoded image's colourfulness
/// - `unit`: the model input in [0, 1], before standardisation
/// - `features`: the network's pooled features for it
pub fn check(
    model: Option<&OodModel>,
    colour: f32,
    unit: &[f32],
    features: &[f32],
) -> Option<OodReason> {
    let max_colour = model.map_or(DEFAULT_MAX_COLOUR, |m| m.max_colour);
    let min_contrast = model.map_or(DEFAULT_MIN_CONTRAST, |m| m.min_contrast);
    if colour > max_colour {
        return Some(OodReason::Colour {
            colourfulness: colour,
            limit: max_colour,
        });
    }
    let c = contrast(unit);
    if c < min_contrast {
        return Some(OodReason::Uniform {
            contrast: c,
            limit: min_contrast,
        });
    }
    let m = model?;
    let l = m.layout_score(unit);
    if l > m.max_layout {
        return Some(OodReason::Layout {
            score: l,
            limit: m.max_layout,
        });
    }
    let d = m.distance(features);
    (d > m.max_distance).then_some(OodReason::Content {
        distance: d,
        limit: m.max_distance,
    })
}

/// The `q` quantile of `values` (nearest rank).
pub fn quantile(values: &[f32], q: f64) -> f32 {
    let mut v: Vec<f32> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f32::NAN;
    }
    v.sort_by(f32::total_cmp);
    v[(((v.len() - 1) as f64) * q).round() as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> OodModel {
        OodModel {
            feature_mean: vec![0.0, 1.0],
            feature_std: vec![1.0, 2.0],
            feature_axes: vec![vec![1.0, 0.0]],
            max_distance: 3.0,
            layout_mean: vec![0.45; LAYOUT * LAYOUT],
            layout_std: vec![0.3; LAYOUT * LAYOUT],
            max_layout: 3.0,
            max_colour: 0.05,
            min_contrast: 0.02,
            fitted: String::new(),
            val_false_alarm_rate: 0.0,
            val_images: 0,
        }
    }

    #[test]
    fn each_criterion_flags_what_it_should() {
        let m = model();
        let textured: Vec<f32> = (0..100).map(|i| (i % 10) as f32 / 10.0).collect();
        assert_eq!(check(Some(&m), 0.0, &textured, &[0.5, 1.0]), None);
        assert_eq!(
            check(Some(&m), 0.3, &textured, &[0.5, 1.0]),
            Some(OodReason::Colour {
                colourfulness: 0.3,
                limit: 0.05
            })
        );
        assert!(matches!(
            check(Some(&m), 0.0, &[0.5; 100], &[0.5, 1.0]),
            Some(OodReason::Uniform { contrast, .. }) if contrast == 0.0
        ));
        // Along the main axis: not flagged; across it: flagged.
        assert_eq!(check(Some(&m), 0.0, &textured, &[10.0, 1.0]), None);
        assert!(matches!(
            check(Some(&m), 0.0, &textured, &[0.0, 21.0]),
            Some(OodReason::Content { distance, limit: 3.0 }) if distance > 3.0
        ));
        // Without a fitted model the feature and layout tests are skipped.
        assert_eq!(check(None, 0.0, &textured, &[0.0, 21.0]), None);
        assert!((m.distance(&[5.0, 3.0]) - (0.5f32).sqrt()).abs() < 1e-6);
        let axes = main_axes(&[vec![1.0, 0.1], vec![-1.0, -0.1], vec![2.0, 0.2]], 1);
        assert!((axes[0][0].abs() - 0.995).abs() < 0.01, "{axes:?}");
        assert_eq!(quantile(&[3.0, 1.0, 2.0], 0.5), 2.0);
    }

    #[test]
    fn reasons_read_as_sentences_and_round_trip() {
        let r = OodReason::Layout {
            score: 4.25,
            limit: 3.5,
        };
        assert_eq!(
            r.to_string(),
            "its layout is unlike a frontal chest X-ray (score 4.25, limit 3.50)"
        );
        assert_eq!(r.kind(), "layout");
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, r#"{"kind":"layout","score":4.25,"limit":3.5}"#);
        assert_eq!(serde_json::from_str::<OodReason>(&json).unwrap(), r);
        let colour = OodReason::Colour {
            colourfulness: 0.31,
            limit: 0.08,
        };
        assert!(
            colour
                .to_string()
                .contains("colour image (colourfulness 0.31)")
        );
    }
}
