//! 95 % bootstrap intervals of the evaluation metrics, resampling patients (not images): the
//! images of one patient are not independent, so resampling them one by one would give
//! intervals that are too narrow.

use serde::{Deserialize, Serialize};

use super::{metrics, train::Rng};

/// Percentile intervals `[low, high]` of each metric.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Intervals {
    /// Accuracy at the threshold.
    pub accuracy: [f64; 2],
    /// Area under the ROC curve.
    pub auc: [f64; 2],
    /// Recall of PNEUMONIA.
    pub sensitivity: [f64; 2],
    /// Recall of NORMAL.
    pub specificity: [f64; 2],
    /// Expected calibration error.
    pub ece: [f64; 2],
    /// Confidence level (0.95).
    pub level: f64,
    /// Bootstrap resamples drawn.
    pub resamples: usize,
    /// Patients resampled (the unit of the bootstrap).
    pub patients: usize,
}

/// The `q` quantile of sorted values, by linear interpolation.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Bootstrap intervals of the metrics of `probs` against `positive` at `threshold`, drawing
/// `resamples` sets of patients with replacement (seeded). `patient` gives each image's patient
/// (any labels; equal strings are one patient).
pub fn bootstrap<S: AsRef<str>>(
    probs: &[f32],
    positive: &[bool],
    patient: &[S],
    threshold: f32,
    resamples: usize,
    seed: u64,
) -> Intervals {
    let mut groups: std::collections::BTreeMap<&str, Vec<usize>> = Default::default();
    for (i, p) in patient.iter().enumerate().take(probs.len()) {
        groups.entry(p.as_ref()).or_default().push(i);
    }
    let groups: Vec<Vec<usize>> = groups.into_values().collect();
    let mut rng = Rng::new(seed ^ 0xB007_5747);
    let mut draws: [Vec<f64>; 5] = Default::default();
    let (mut p, mut y) = (Vec::new(), Vec::new());
    for _ in 0..resamples {
        p.clear();
        y.clear();
        for _ in 0..groups.len() {
            for &i in &groups[rng.below(groups.len())] {
                p.push(probs[i]);
                y.push(positive[i]);
            }
        }
        let m = metrics::evaluate(&p, &y, threshold);
        for (d, v) in draws
            .iter_mut()
            .zip([m.accuracy, m.auc, m.sensitivity, m.specificity, m.ece])
        {
            d.push(v);
        }
    }
    let level = 0.95;
    let interval = |d: &mut Vec<f64>| {
        d.sort_by(f64::total_cmp);
        [
            quantile(d, (1.0 - level) / 2.0),
            quantile(d, (1.0 + level) / 2.0),
        ]
    };
    let [a, auc, sens, spec, ece] = &mut draws;
    Intervals {
        accuracy: interval(a),
        auc: interval(auc),
        sensitivity: interval(sens),
        specificity: interval(spec),
        ece: interval(ece),
        level,
        resamples,
        patients: groups.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 400 patients of one image each, 80 % classified right: the accuracy interval must have
    /// the binomial width, 2 · 1.96 · sqrt(0.8 · 0.2 / 400) ≈ 0.078.
    #[test]
    fn width_matches_the_binomial_for_independent_images() {
        let n = 400;
        let positive: Vec<bool> = (0..n).map(|i| i % 2 == 0).collect();
        let probs: Vec<f32> = (0..n)
            .map(|i| {
                let right = i % 5 != 0;
                if positive[i] == right { 0.9 } else { 0.1 }
            })
            .collect();
        let patients: Vec<String> = (0..n).map(|i| format!("p{i}")).collect();
        let ci = bootstrap(&probs, &positive, &patients, 0.5, 2000, 1);
        let width = ci.accuracy[1] - ci.accuracy[0];
        assert!((width - 0.078).abs() < 0.012, "{width}");
        assert!(ci.accuracy[0] < 0.8 && 0.8 < ci.accuracy[1]);
        assert_eq!(ci.patients, n);
        assert_eq!(ci, bootstrap(&probs, &positive, &patients, 0.5, 2000, 1));
        assert_ne!(ci, bootstrap(&probs, &positive, &patients, 0.5, 2000, 2));
    }

    /// The same predictions as 100 patients of four identical images each: resampling patients
    /// must give an interval twice as wide as resampling the 400 images would.
    #[test]
    fn patients_are_resampled_as_groups() {
        let n = 400;
        let positive: Vec<bool> = (0..n).map(|i| (i / 4) % 2 == 0).collect();
        let probs: Vec<f32> = (0..n)
            .map(|i| {
                let right = (i / 4) % 5 != 0;
                if positive[i] == right { 0.9 } else { 0.1 }
            })
            .collect();
        let grouped: Vec<String> = (0..n).map(|i| format!("p{}", i / 4)).collect();
        let single: Vec<String> = (0..n).map(|i| format!("p{i}")).collect();
        let g = bootstrap(&probs, &positive, &grouped, 0.5, 2000, 3);
        let s = bootstrap(&probs, &positive, &single, 0.5, 2000, 3);
        let ratio = (g.accuracy[1] - g.accuracy[0]) / (s.accuracy[1] - s.accuracy[0]);
        assert!((1.7..2.3).contains(&ratio), "{ratio}");
        assert_eq!(g.patients, 100);
    }
}
