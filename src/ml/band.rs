//! "Uncertain, needs a reader": a band of P(pneumonia) around the decision threshold, chosen on
//! validation so that outside it the error rate is at most a stated target.
//!
//! The band is symmetric around the threshold in log-odds, so one number (its half-width)
//! is fitted: the smallest half-width for which the images outside the band are wrong at most
//! `max_error` of the time. `xray train` fits it on validation as it is and under the stress
//! conditions at once, so the target holds for both.

use serde::{Deserialize, Serialize};

/// The fitted band, stored in the model card.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct UncertainBand {
    /// Lowest P(pneumonia) inside the band.
    pub low: f32,
    /// Highest P(pneumonia) inside the band.
    pub high: f32,
    /// The error rate outside the band that was asked for.
    pub max_error: f64,
    /// Share of the validation images inside the band.
    pub coverage: f64,
    /// Error rate of the validation images outside the band.
    pub error_outside: f64,
    /// Validation images the band was fitted on.
    pub n: usize,
}

impl UncertainBand {
    /// Whether a prediction falls inside the band.
    pub fn contains(&self, p_pneumonia: f32) -> bool {
        (self.low..=self.high).contains(&p_pneumonia)
    }

    /// The same band with its coverage and error rate outside measured on other predictions
    /// (e.g. fitted on stressed and clean validation together, reported on clean validation).
    pub fn measured_on(self, probs: &[f32], positive: &[bool], threshold: f32) -> Self {
        let outside: Vec<bool> = probs
            .iter()
            .zip(positive)
            .filter(|(p, _)| !self.contains(**p))
            .map(|(&p, &y)| (p >= threshold) != y)
            .collect();
        let wrong = outside.iter().filter(|&&w| w).count();
        Self {
            coverage: (probs.len() - outside.len()) as f64 / probs.len().max(1) as f64,
            error_outside: wrong as f64 / outside.len().max(1) as f64,
            n: probs.len(),
            ..self
        }
    }
}

fn logit(p: f32) -> f64 {
    let p = f64::from(p).clamp(1e-9, 1.0 - 1e-9);
    (p / (1.0 - p)).ln()
}

fn sigmoid(x: f64) -> f32 {
    (1.0 / (1.0 + (-x).exp())) as f32
}

/// Fits the band on validation predictions, labelled at `threshold`.
pub fn fit(probs: &[f32], positive: &[bool], threshold: f32, max_error: f64) -> UncertainBand {
    fit_all(&[(probs, positive)], threshold, max_error)
}

/// One set of predictions from the most to the least certain: (distance from the threshold in
/// log-odds, running count of errors up to and including it).
struct Ranked {
    distance: Vec<f64>,
    errors: Vec<usize>,
}

impl Ranked {
    fn new(probs: &[f32], positive: &[bool], threshold: f32) -> Self {
        let t = logit(threshold);
        let mut order: Vec<(f64, bool)> = probs
            .iter()
            .zip(positive)
            .map(|(&p, &y)| ((logit(p) - t).abs(), (p >= threshold) != y))
            .collect();
        order.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut errors = Vec::with_capacity(order.len());
        let mut e = 0;
        for o in &order {
            e += usize::from(o.1);
            errors.push(e);
        }
        Self {
            distance: order.into_iter().map(|o| o.0).collect(),
            errors,
        }
    }

    /// (images outside, errors outside) for a band of half-width `h` (inside: distance ≤ h).
    fn outside(&self, h: f64) -> (usize, usize) {
        let n = self.distance.partition_point(|&d| d > h);
        (n, if n == 0 { 0 } else { self.errors[n - 1] })
    }
}

/// The narrowest band (symmetric in log-odds around `threshold`) outside which every one of
/// `sets` is wrong at most `max_error` of the time; its coverage and error rate outside are
/// those of the first set.
pub fn fit_all(sets: &[(&[f32], &[bool])], threshold: f32, max_error: f64) -> UncertainBand {
    let ranked: Vec<Ranked> = sets
        .iter()
        .map(|(p, y)| Ranked::new(p, y, threshold))
        .collect();
    let mut candidates: Vec<f64> = ranked
        .iter()
        .flat_map(|r| r.distance.iter().copied())
        .collect();
    candidates.push(0.0);
    candidates.sort_by(f64::total_cmp);
    candidates.dedup();
    let ok = |h: f64| {
        ranked.iter().all(|r| {
            let (n, e) = r.outside(h);
            e as f64 <= max_error * n as f64
        })
    };
    // The largest distance leaves nothing outside, which always passes. The band's edge is put
    // halfway (in log-odds) to the next distance, so that rounding cannot move an image across.
    let i = candidates
        .iter()
        .position(|&h| ok(h))
        .unwrap_or(candidates.len() - 1);
    let everything = i + 1 >= candidates.len();
    let half_width = if everything {
        f64::INFINITY
    } else if i == 0 && candidates[0] == 0.0 && !ranked.iter().any(|r| r.distance.contains(&0.0)) {
        0.0
    } else {
        (candidates[i] + candidates[i + 1]) / 2.0
    };
    let t = logit(threshold);
    let (low, high) = if everything {
        (0.0, 1.0)
    } else {
        (sigmoid(t - half_width), sigmoid(t + half_width))
    };
    let first = ranked.first();
    let n = first.map_or(0, |r| r.distance.len());
    let (out, wrong) = if everything {
        (0, 0)
    } else {
        first.map_or((0, 0), |r| r.outside(half_width))
    };
    UncertainBand {
        low,
        high,
        max_error,
        coverage: (n - out) as f64 / n.max(1) as f64,
        error_outside: wrong as f64 / out.max(1) as f64,
        n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1,000 images: those far from the threshold are right, 10 % of those near it are wrong.
    #[test]
    fn error_outside_the_band_is_as_stated() {
        let mut probs = Vec::new();
        let mut positive = Vec::new();
        for i in 0..1000 {
            let p = (i as f32 + 0.5) / 1000.0;
            let near = (0.3..0.7).contains(&p);
            let truth = p >= 0.5;
            // Every 10th image near the threshold, and every 100th far from it, is wrong.
            let wrong = if near { i % 10 == 0 } else { i % 100 == 7 };
            probs.push(p);
            positive.push(truth != wrong);
        }
        let band = fit(&probs, &positive, 0.5, 0.02);
        assert!(band.low < 0.5 && band.high > 0.5);
        // Recount outside the band from the predictions themselves.
        let outside: Vec<usize> = (0..1000).filter(|&i| !band.contains(probs[i])).collect();
        let wrong = outside
            .iter()
            .filter(|&&i| (probs[i] >= 0.5) != positive[i])
            .count();
        let rate = wrong as f64 / outside.len() as f64;
        assert!(rate <= 0.02, "{rate}");
        assert!((rate - band.error_outside).abs() < 1e-12);
        assert!((band.coverage - (1000 - outside.len()) as f64 / 1000.0).abs() < 1e-12);
        // A coarse band would also pass; the fitted one is tight: it leaves the far images out.
        assert!(band.coverage < 0.6, "{}", band.coverage);
    }

    #[test]
    fn measuring_elsewhere_recounts_coverage_and_errors() {
        let band = fit(
            &[0.1, 0.45, 0.55, 0.9],
            &[false, true, false, true],
            0.5,
            0.0,
        );
        assert!(band.contains(0.45) && band.contains(0.55) && !band.contains(0.9));
        let m = band.measured_on(&[0.5, 0.95, 0.05, 0.02], &[true, true, true, false], 0.5);
        assert_eq!(m.n, 4);
        assert_eq!(m.coverage, 0.25);
        assert!((m.error_outside - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!((m.low, m.high), (band.low, band.high));
    }

    #[test]
    fn a_band_fitted_on_two_sets_holds_for_both() {
        let clean = [0.05, 0.2, 0.45, 0.6, 0.8, 0.95];
        let clean_y = [false, false, true, true, true, true];
        // The stressed set has a confident error at 0.8: only a band reaching it can help.
        let stressed = [0.05, 0.3, 0.8, 0.9, 0.97, 0.99, 0.99, 0.99];
        let stressed_y = [false, false, false, true, true, true, true, true];
        let one = fit(&clean, &clean_y, 0.5, 0.0);
        let both = fit_all(&[(&clean, &clean_y), (&stressed, &stressed_y)], 0.5, 0.0);
        assert!(both.high >= 0.8 && one.high < 0.8, "{one:?} {both:?}");
        for (p, y) in [(&clean[..], &clean_y[..]), (&stressed[..], &stressed_y[..])] {
            let m = both.measured_on(p, y, 0.5);
            assert_eq!(m.error_outside, 0.0, "{m:?}");
        }
        assert_eq!(both.n, clean.len());
    }

    #[test]
    fn perfect_predictions_need_no_band_and_hopeless_ones_a_full_band() {
        let probs = [0.1, 0.2, 0.8, 0.9];
        let band = fit(&probs, &[false, false, true, true], 0.5, 0.02);
        assert_eq!(band.coverage, 0.0);
        assert!(!band.contains(0.2) && !band.contains(0.8));
        let band = fit(&probs, &[true, true, false, false], 0.5, 0.02);
        assert_eq!(band.coverage, 1.0);
        assert!(band.contains(0.0) && band.contains(1.0));
    }
}
