//! Patient-level splits: the hold-out of `xray train` (and of everything that must agree with
//! it: `split`, `ood-fit`, `subset`, the gallery) and the folds of `xray cv`.
//!
//! The dataset holds several X-rays of many patients, and the patient is in the file name
//! (see [`patient_id`]). A split drawn per image puts near-twins on both sides and makes every
//! choice made on the held-out part optimistic, so every split here keeps each patient's images
//! together, is stratified by class at the patient level and is seeded. The code sees only
//! names and labels, so the page (a visitor's folder) and the native tools share it.

use std::collections::BTreeMap;

use super::train::Rng;

/// The patient a file belongs to, from its name (any folders before it are ignored):
///
/// - `person123_bacteria_456.jpeg`, `person7_virus_13_2.jpeg` → `person123`, `person7`;
/// - `IM-0115-0001.jpeg`, `IM-0115-0001-0002.jpeg` → `IM-0115`;
/// - `NORMAL2-IM-0588-0001.jpeg` → `NORMAL2-IM-0588`.
///
/// Any other name is its own patient: its file name without the extension.
pub fn patient_id(file: &str) -> &str {
    let name = file.rsplit(['/', '\\']).next().unwrap_or(file);
    let stem = name.rsplit_once('.').map_or(name, |(s, _)| s);
    if let Some(rest) = stem.strip_prefix("person") {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && rest[digits..].starts_with('_') {
            return &stem[.."person".len() + digits];
        }
    }
    let prefix = if stem.starts_with("NORMAL2-IM-") {
        "NORMAL2-IM-".len()
    } else if stem.starts_with("IM-") {
        "IM-".len()
    } else {
        return stem;
    };
    let digits = stem[prefix..]
        .bytes()
        .take_while(u8::is_ascii_digit)
        .count();
    if digits > 0 && stem[prefix + digits..].starts_with('-') {
        &stem[..prefix + digits]
    } else {
        stem
    }
}

/// The patients of one class stratum, each with the indices of its images, in a seeded random
/// order. A patient whose images carry both labels counts as PNEUMONIA.
fn strata<S: AsRef<str>>(items: &[(S, bool)], seed: u64) -> [Vec<Vec<usize>>; 2] {
    let mut patients: BTreeMap<&str, (bool, Vec<usize>)> = BTreeMap::new();
    for (i, (name, pneumonia)) in items.iter().enumerate() {
        let entry = patients
            .entry(patient_id(name.as_ref()))
            .or_insert((false, Vec::new()));
        entry.0 |= *pneumonia;
        entry.1.push(i);
    }
    let mut out: [Vec<Vec<usize>>; 2] = [Vec::new(), Vec::new()];
    for (pneumonia, indices) in patients.into_values() {
        out[usize::from(pneumonia)].push(indices);
    }
    for (class, groups) in out.iter_mut().enumerate() {
        Rng::new(seed ^ 0x5EED_0000 ^ class as u64).shuffle(groups);
    }
    out
}

/// Which items are held out: whole patients, drawn per class (seeded) until the held-out
/// images of each class reach `fraction` of that class (at least one patient where the class
/// has two or more, and never all of them).
///
/// Returns one flag per item, `true` for the held-out (validation) part.
pub fn holdout<S: AsRef<str>>(items: &[(S, bool)], fraction: f64, seed: u64) -> Vec<bool> {
    let mut held = vec![false; items.len()];
    for groups in strata(items, seed) {
        let images: usize = groups.iter().map(Vec::len).sum();
        let target = (images as f64 * fraction.clamp(0.0, 1.0)).round() as usize;
        let target = if groups.len() >= 2 { target.max(1) } else { 0 };
        let mut taken = 0;
        for group in groups.iter().take(groups.len().saturating_sub(1)) {
            if taken >= target {
                break;
            }
            taken += group.len();
            for &i in group {
                held[i] = true;
            }
        }
    }
    held
}

/// The fold (0..k) of each item for k-fold cross-validation by patient: each class's patients,
/// in a seeded order, go to the fold that has the fewest images of that class so far.
pub fn folds<S: AsRef<str>>(items: &[(S, bool)], k: usize, seed: u64) -> Vec<usize> {
    let k = k.max(1);
    let mut fold = vec![0; items.len()];
    for groups in strata(items, seed) {
        let mut sizes = vec![0usize; k];
        for group in groups {
            let (f, _) = sizes
                .iter()
                .enumerate()
                .min_by_key(|&(f, &n)| (n, f))
                .unwrap_or((0, &0));
            sizes[f] += group.len();
            for i in group {
                fold[i] = f;
            }
        }
    }
    fold
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patient_ids_follow_the_dataset_names() {
        assert_eq!(patient_id("person123_bacteria_456.jpeg"), "person123");
        assert_eq!(
            patient_id("train/PNEUMONIA/person7_virus_13.jpeg"),
            "person7"
        );
        assert_eq!(patient_id("person1_virus_12_2.jpeg"), "person1");
        assert_eq!(patient_id("IM-0115-0001.jpeg"), "IM-0115");
        assert_eq!(patient_id("IM-0115-0001-0002.jpeg"), "IM-0115");
        assert_eq!(patient_id("NORMAL2-IM-0588-0001.jpeg"), "NORMAL2-IM-0588");
        assert_eq!(
            patient_id("C:\\x\\NORMAL2-IM-1152-0001-0001.jpeg"),
            "NORMAL2-IM-1152"
        );
        // Anything else is its own patient.
        assert_eq!(patient_id("scan.png"), "scan");
        assert_eq!(patient_id("personal.png"), "personal");
        assert_eq!(patient_id("IM-x.png"), "IM-x");
        assert_eq!(patient_id("noext"), "noext");
    }

    fn items() -> Vec<(String, bool)> {
        let mut v = Vec::new();
        for p in 0..40 {
            for i in 0..(1 + p % 4) {
                v.push((format!("person{p}_bacteria_{i}.jpeg"), true));
            }
        }
        for p in 0..30 {
            for i in 0..(1 + p % 2) {
                v.push((format!("IM-{p:04}-{i:04}.jpeg"), false));
            }
        }
        v
    }

    #[test]
    fn holdout_keeps_patients_whole_stratified_and_seeded() {
        let items = items();
        let held = holdout(&items, 0.2, 42);
        for (a, ha) in items.iter().zip(&held) {
            for (b, hb) in items.iter().zip(&held) {
                if patient_id(&a.0) == patient_id(&b.0) {
                    assert_eq!(ha, hb, "{} and {} split apart", a.0, b.0);
                }
            }
        }
        for class in [false, true] {
            let n = items.iter().filter(|i| i.1 == class).count();
            let h = items
                .iter()
                .zip(&held)
                .filter(|(i, h)| i.1 == class && **h)
                .count();
            let share = h as f64 / n as f64;
            assert!((0.15..0.35).contains(&share), "{class}: {share}");
        }
        assert_eq!(held, holdout(&items, 0.2, 42));
        assert_ne!(held, holdout(&items, 0.2, 43));
    }

    #[test]
    fn holdout_of_tiny_classes() {
        let two = [("a.png", true), ("b.png", true), ("c.png", false)];
        let held = holdout(&two, 0.2, 1);
        // Two PNEUMONIA patients: one held out; one NORMAL patient: kept for training.
        assert_eq!(held.iter().filter(|&&h| h).count(), 1);
        assert!(!held[2]);
        assert!(holdout::<&str>(&[], 0.2, 1).is_empty());
    }

    #[test]
    fn folds_partition_patients_evenly() {
        let items = items();
        let fold = folds(&items, 5, 7);
        for (a, fa) in items.iter().zip(&fold) {
            for (b, fb) in items.iter().zip(&fold) {
                if patient_id(&a.0) == patient_id(&b.0) {
                    assert_eq!(fa, fb);
                }
            }
        }
        for f in 0..5 {
            for class in [false, true] {
                let n = items
                    .iter()
                    .zip(&fold)
                    .filter(|(i, k)| i.1 == class && **k == f)
                    .count();
                let total = items.iter().filter(|i| i.1 == class).count();
                let even = total as f64 / 5.0;
                assert!((n as f64 - even).abs() <= 4.0, "fold {f} {class}: {n}");
            }
        }
        assert_eq!(fold, folds(&items, 5, 7));
    }
}
