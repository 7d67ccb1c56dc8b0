//! Binary classification metrics (PNEUMONIA is the positive class), the decision threshold and
//! the calibration temperature fitted on validation predictions.

use serde::{Deserialize, Serialize};

/// Counts of the confusion matrix.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confusion {
    /// Pneumonia predicted, pneumonia true.
    pub tp: usize,
    /// Pneumonia predicted, normal true.
    pub fp: usize,
    /// Normal predicted, normal true.
    pub tn: usize,
    /// Normal predicted, pneumonia true.
    #[serde(rename = "fn")]
    pub fn_: usize,
}

/// The evaluation summary `xray eval --json` prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Number of images.
    pub n: usize,
    /// Fraction classified correctly at `threshold`.
    pub accuracy: f64,
    /// Area under the ROC curve (threshold-free).
    pub auc: f64,
    /// Recall of PNEUMONIA: tp / (tp + fn).
    pub sensitivity: f64,
    /// Recall of NORMAL: tn / (tn + fp).
    pub specificity: f64,
    /// tp / (tp + fp).
    pub precision: f64,
    /// Harmonic mean of precision and sensitivity.
    pub f1: f64,
    /// Expected calibration error, 10 equal-width bins of the predicted class's confidence.
    pub ece: f64,
    /// P(pneumonia) at or above which PNEUMONIA is predicted.
    pub threshold: f64,
    /// The confusion matrix at `threshold`.
    pub confusion: Confusion,
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Area under the ROC curve by the Mann–Whitney statistic, ties counted as one half.
/// Returns 0.5 when one class is absent.
pub fn auc(probs: &[f32], positive: &[bool]) -> f64 {
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&a, &b| probs[a].total_cmp(&probs[b]));
    // Average ranks (1-based) over runs of equal scores.
    let mut ranks = vec![0.0f64; probs.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && probs[order[j + 1]] == probs[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            ranks[k] = rank;
        }
        i = j + 1;
    }
    let n_pos = positive.iter().filter(|&&p| p).count();
    let n_neg = positive.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return 0.5;
    }
    let rank_sum: f64 = ranks
        .iter()
        .zip(positive)
        .filter(|(_, p)| **p)
        .map(|(r, _)| r)
        .sum();
    (rank_sum - (n_pos * (n_pos + 1)) as f64 / 2.0) / (n_pos * n_neg) as f64
}

/// Expected calibration error over `bins` equal-width bins of confidence, where confidence is
/// the probability of the class the model would pick at 0.5.
pub fn ece(probs: &[f32], positive: &[bool], bins: usize) -> f64 {
    if probs.is_empty() {
        return 0.0;
    }
    let mut count = vec![0usize; bins];
    let mut conf_sum = vec![0.0f64; bins];
    let mut correct = vec![0usize; bins];
    for (&p, &y) in probs.iter().zip(positive) {
        let pred = p >= 0.5;
        let conf = f64::from(if pred { p } else { 1.0 - p });
        let b = ((conf * bins as f64) as usize).min(bins - 1);
        count[b] += 1;
        conf_sum[b] += conf;
        correct[b] += usize::from(pred == y);
    }
    let n = probs.len() as f64;
    (0..bins)
        .filter(|&b| count[b] > 0)
        .map(|b| {
            let c = count[b] as f64;
            (count[b] as f64 / n) * (conf_sum[b] / c - correct[b] as f64 / c).abs()
        })
        .sum()
}

/// Confusion matrix of `probs >= threshold` against the truth.
pub fn confusion(probs: &[f32], positive: &[bool], threshold: f32) -> Confusion {
    let mut c = Confusion::default();
    for (&p, &y) in probs.iter().zip(positive) {
        match (p >= threshold, y) {
            (true, true) => c.tp += 1,
            (true, false) => c.fp += 1,
            (false, false) => c.tn += 1,
            (false, true) => c.fn_ += 1,
        }
    }
    c
}

/// The ROC curve as (false-positive rate, true-positive rate) points from (0, 0) to (1, 1),
/// one point per distinct score (tied scores move diagonally), so its trapezoid area is
/// [`auc`].
pub fn roc_curve(probs: &[f32], positive: &[bool]) -> Vec<(f64, f64)> {
    let pos = positive.iter().filter(|&&y| y).count();
    let neg = positive.len() - pos;
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
    let mut points = vec![(0.0, 0.0)];
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut i = 0;
    while i < order.len() {
        let score = probs[order[i]];
        while i < order.len() && probs[order[i]] == score {
            if positive[order[i]] {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        points.push((ratio(fp, neg), ratio(tp, pos)));
    }
    if points.last() != Some(&(1.0, 1.0)) && pos > 0 && neg > 0 {
        points.push((1.0, 1.0));
    }
    points
}

/// All metrics at `threshold`.
pub fn evaluate(probs: &[f32], positive: &[bool], threshold: f32) -> Metrics {
    let c = confusion(probs, positive, threshold);
    let sensitivity = ratio(c.tp, c.tp + c.fn_);
    let precision = ratio(c.tp, c.tp + c.fp);
    let f1 = if precision + sensitivity > 0.0 {
        2.0 * precision * sensitivity / (precision + sensitivity)
    } else {
        0.0
    };
    Metrics {
        n: probs.len(),
        accuracy: ratio(c.tp + c.tn, probs.len()),
        auc: auc(probs, positive),
        sensitivity,
        specificity: ratio(c.tn, c.tn + c.fp),
        precision,
        f1,
        ece: ece(probs, positive, 10),
        threshold: f64::from(threshold),
        confusion: c,
    }
}

/// The threshold that maximises balanced accuracy (Youden's J) on these predictions; among
/// equally good ones, the one closest to 0.5. Candidates are midpoints between sorted scores.
pub fn fit_threshold(probs: &[f32], positive: &[bool]) -> f32 {
    let mut sorted: Vec<f32> = probs.to_vec();
    sorted.sort_by(f32::total_cmp);
    sorted.dedup();
    let mut candidates = vec![0.5f32];
    candidates.extend(sorted.windows(2).map(|w| (w[0] + w[1]) / 2.0));
    let score = |t: f32| {
        let c = confusion(probs, positive, t);
        ratio(c.tp, c.tp + c.fn_) + ratio(c.tn, c.tn + c.fp)
    };
    let mut best = (f64::MIN, 0.5f32);
    for t in candidates {
        let s = score(t);
        let better = s > best.0 + 1e-12
            || ((s - best.0).abs() <= 1e-12 && (t - 0.5).abs() < (best.1 - 0.5).abs());
        if better {
            best = (s, t);
        }
    }
    best.1
}

/// Numerically stable logistic function.
pub fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// Calibrated P(pneumonia) of each margin (logit PNEUMONIA − logit NORMAL): `sigmoid(m / t)`.
pub fn probabilities(margins: &[f32], temperature: f32) -> Vec<f32> {
    margins.iter().map(|&m| sigmoid(m / temperature)).collect()
}

/// Mean negative log-likelihood (log-loss) of the labels given P(positive), each clamped to
/// at least 1e-7.
pub fn log_loss(probs: &[f32], positive: &[bool]) -> f64 {
    probs
        .iter()
        .zip(positive)
        .map(|(&p, &y)| -f64::from(if y { p } else { 1.0 - p }).max(1e-7).ln())
        .sum::<f64>()
        / probs.len().max(1) as f64
}

/// Mean negative log-likelihood of the labels under `sigmoid(margin / t)`, computed stably from
/// the margins.
pub fn margin_log_loss(margins: &[f32], positive: &[bool], t: f64) -> f64 {
    margins
        .iter()
        .zip(positive)
        .map(|(&m, &y)| {
            let z = f64::from(m) / t;
            // -log sigmoid(z) = softplus(-z), -log(1 - sigmoid(z)) = softplus(z)
            let s = if y { -z } else { z };
            s.max(0.0) + (-s.abs()).exp().ln_1p()
        })
        .sum::<f64>()
        / margins.len().max(1) as f64
}

/// The temperature T minimising the validation NLL of `sigmoid(margin / T)`, where
/// margin = logit(PNEUMONIA) − logit(NORMAL). Golden-section search on log T in [0.05, 20].
pub fn fit_temperature(margins: &[f32], positive: &[bool]) -> f32 {
    let (mut a, mut b) = (0.05f64.ln(), 20f64.ln());
    let g = (5f64.sqrt() - 1.0) / 2.0;
    let f = |lt: f64| margin_log_loss(margins, positive, lt.exp());
    let mut c = b - g * (b - a);
    let mut d = a + g * (b - a);
    for _ in 0..80 {
        if f(c) < f(d) {
            b = d;
        } else {
            a = c;
        }
        c = b - g * (b - a);
        d = a + g * (b - a);
    }
    ((a + b) / 2.0).exp() as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_is_exact_with_ties() {
        // Pairs (pos, neg): (0.9 vs 0.1, 0.5) = 1 + 1; (0.5 vs 0.1) = 1, (0.5 vs 0.5) = 0.5.
        let probs = [0.9, 0.5, 0.5, 0.1];
        let pos = [true, true, false, false];
        assert!((auc(&probs, &pos) - 3.5 / 4.0).abs() < 1e-12);
        assert_eq!(auc(&[0.2, 0.8], &[false, true]), 1.0);
        assert_eq!(auc(&[0.8, 0.2], &[false, true]), 0.0);
        assert_eq!(auc(&[0.3, 0.4], &[true, true]), 0.5);
    }

    #[test]
    fn confusion_and_rates_are_exact() {
        let probs = [0.9, 0.8, 0.3, 0.6, 0.2, 0.1];
        let pos = [true, true, true, false, false, false];
        let m = evaluate(&probs, &pos, 0.5);
        assert_eq!(
            m.confusion,
            Confusion {
                tp: 2,
                fp: 1,
                tn: 2,
                fn_: 1
            }
        );
        assert!((m.accuracy - 4.0 / 6.0).abs() < 1e-12);
        assert!((m.sensitivity - 2.0 / 3.0).abs() < 1e-12);
        assert!((m.specificity - 2.0 / 3.0).abs() < 1e-12);
        assert!((m.precision - 2.0 / 3.0).abs() < 1e-12);
        assert!((m.f1 - 2.0 / 3.0).abs() < 1e-12);
        assert!((m.auc - 8.0 / 9.0).abs() < 1e-12);
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["confusion"]["fn"], 1);
    }

    #[test]
    fn ece_is_exact() {
        // Bin [0.9, 1.0): confidences 0.95, 0.95, one right one wrong -> |0.95 - 0.5| = 0.45.
        // Bin [0.6, 0.7): confidence 0.6 (p = 0.4 predicts NORMAL), right -> |0.6 - 1| = 0.4.
        let probs = [0.95, 0.95, 0.4];
        let pos = [true, false, false];
        let expected = 2.0 / 3.0 * 0.45 + 1.0 / 3.0 * 0.4;
        assert!((ece(&probs, &pos, 10) - expected).abs() < 1e-6);
        assert_eq!(ece(&[1.0, 0.0], &[true, false], 10), 0.0);
    }

    #[test]
    fn threshold_separates_separable_scores() {
        let probs = [0.1, 0.2, 0.25, 0.3, 0.9];
        let pos = [false, false, false, true, true];
        let t = fit_threshold(&probs, &pos);
        assert!(t > 0.25 && t <= 0.3, "{t}");
        assert_eq!(evaluate(&probs, &pos, t).accuracy, 1.0);
    }

    #[test]
    fn temperature_undoes_overconfidence() {
        // Margins drawn as true margin × 4: the fitted temperature should be near 4.
        let mut margins = Vec::new();
        let mut pos = Vec::new();
        for i in 0..2000 {
            let true_margin = (i as f32 / 2000.0 - 0.5) * 8.0;
            let p = sigmoid(true_margin);
            // Deterministic labels with frequency p within each small group.
            let y = ((i * 7919) % 1000) as f32 / 1000.0 < p;
            margins.push(true_margin * 4.0);
            pos.push(y);
        }
        let t = fit_temperature(&margins, &pos);
        assert!((3.0..5.5).contains(&t), "{t}");
    }

    #[test]
    fn roc_area_matches_auc() {
        let probs = [0.1, 0.4, 0.35, 0.8, 0.4, 0.9, 0.2];
        let truth = [false, false, true, true, true, true, false];
        let roc = roc_curve(&probs, &truth);
        assert_eq!(roc.first(), Some(&(0.0, 0.0)));
        assert_eq!(roc.last(), Some(&(1.0, 1.0)));
        let area: f64 = roc
            .windows(2)
            .map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0)
            .sum();
        assert!((area - auc(&probs, &truth)).abs() < 1e-12, "{area}");
    }
}
