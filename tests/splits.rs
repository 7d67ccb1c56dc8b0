//! The shipped bundles keep patients apart: the gallery and the in-page training bundle's
//! validation images come from held-out patients of `xray train`'s split, its fine-tuning images
//! from training patients, on the real file names.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test
#![cfg(not(target_arch = "wasm32"))]

mod support;

use std::{collections::HashSet, path::Path};

use support::shipped;

use xray_web::{
    cli::dataset,
    ml::{
        split::patient_id,
        subset::{Part, SubsetManifest},
    },
};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn gallery_sources() -> Vec<String> {
    shipped::samples().into_iter().map(|s| s.source).collect()
}

fn subset() -> SubsetManifest {
    serde_json::from_slice(&std::fs::read(format!("{ROOT}/public/train/subset.json")).unwrap())
        .unwrap()
}

fn patients<'a>(sources: impl Iterator<Item = &'a str>) -> HashSet<String> {
    sources.map(|s| patient_id(s).to_string()).collect()
}

#[test]
fn no_patient_is_both_in_the_fine_tuning_images_and_the_held_out_ones() {
    let subset = subset();
    let part = |p: Part| {
        patients(
            subset
                .images
                .iter()
                .filter(move |i| i.part == p)
                .map(|i| i.source.as_str()),
        )
    };
    let tune = part(Part::Train);
    let val = part(Part::Val);
    let gallery_sources = gallery_sources();
    let gallery = patients(gallery_sources.iter().map(String::as_str));
    assert!(
        tune.is_disjoint(&val),
        "{:?}",
        tune.intersection(&val).collect::<Vec<_>>()
    );
    assert!(
        tune.is_disjoint(&gallery),
        "{:?}",
        tune.intersection(&gallery).collect::<Vec<_>>()
    );
    assert_eq!(
        gallery.len(),
        gallery_sources.len(),
        "one gallery image per patient"
    );
}

#[test]
fn the_gallery_and_bundle_follow_the_training_split() {
    let data = Path::new(ROOT).join("../shared/data/chest_xray");
    let Ok(layout) = dataset::layout(&data) else {
        eprintln!("skipped: {} not found", data.display());
        return;
    };
    let all = dataset::list(&layout.train).unwrap();
    let (train, val) = dataset::split_by_patient(&all, 0.15, 42);
    let held: HashSet<String> = val.iter().map(dataset::patient).collect();
    let trained: HashSet<String> = train.iter().map(dataset::patient).collect();
    for source in gallery_sources() {
        assert!(
            held.contains(patient_id(&source)),
            "gallery image {source} is from a training patient"
        );
    }
    for image in subset().images {
        let p = patient_id(&image.source).to_string();
        match image.part {
            Part::Train => assert!(
                trained.contains(&p),
                "{} should be a training patient",
                image.source
            ),
            Part::Val => assert!(
                held.contains(&p),
                "{} should be a held-out patient",
                image.source
            ),
        }
    }
}
