//! Every input in the generated corpus (tests/corpus) through the shared preprocessing and the
//! shipped model: each encoding of the same X-ray gives P(pneumonia) within 0.05 of the plain
//! JPEG, DICOM metadata is read without patient identifiers, hostile files are refused with the
//! expected reason, and nothing panics. The CLI and the page run the same corpus
//! (tests/cli.rs, tests/e2e.rs).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test
#![cfg(not(target_arch = "wasm32"))]

mod corpus;
mod support;

use burn::prelude::*;
use corpus::Expect;
use support::shipped;
use xray_web::ml::{classifier::Classifier, preprocess};

fn classifier() -> Classifier {
    Classifier::load(shipped::card(), shipped::weights(), Device::flex()).unwrap()
}

#[test]
fn every_encoding_agrees_and_every_hostile_file_is_refused() {
    let c = classifier();
    let cases = corpus::cases();
    let plain = c
        .classify(&[c.preprocess(&cases[0].bytes).unwrap()])
        .unwrap()[0]
        .p_pneumonia;
    let mut report = Vec::new();
    for case in &cases {
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.analyse(&case.bytes)));
        let outcome = outcome.unwrap_or_else(|_| panic!("{} panicked", case.name));
        match (&case.expect, outcome) {
            (Expect::Same, Ok(a)) => {
                let p = a.prediction.p_pneumonia;
                assert!(
                    (p - plain).abs() < 0.05,
                    "{}: P {p} vs plain JPEG {plain}",
                    case.name
                );
                assert!(a.ood.is_none(), "{}: flagged {:?}", case.name, a.ood);
                report.push(format!("{}: {p:.4}", case.name));
            }
            (Expect::Ood, Ok(a)) => {
                assert!(a.ood.is_some(), "{}: not flagged", case.name);
                report.push(format!(
                    "{}: ood ({})",
                    case.name,
                    a.ood.map(|r| r.to_string()).unwrap_or_default()
                ));
            }
            (Expect::Refused(text), Err(e)) => {
                let msg = e.to_string();
                assert!(msg.contains(text), "{}: {msg:?} lacks {text:?}", case.name);
                report.push(format!("{}: refused ({msg})", case.name));
            }
            (expect, other) => panic!("{}: expected {expect:?}, got {other:?}", case.name),
        }
    }
    println!("{}", report.join("\n"));
}

#[test]
fn dicom_metadata_is_read_and_identifiers_are_not() {
    let cases = corpus::cases();
    let case = cases.iter().find(|c| c.name == "mono1-12bit.dcm").unwrap();
    let decoded = preprocess::decode(&case.bytes).unwrap();
    let info = decoded.dicom.expect("DICOM info");
    assert_eq!(info.modality.as_deref(), Some("CR"));
    assert_eq!(info.body_part.as_deref(), Some("CHEST"));
    assert_eq!(info.view_position.as_deref(), Some("PA"));
    assert_eq!(info.photometric, "MONOCHROME1");
    assert_eq!(info.bits_stored, 12);
    assert!(info.windowed);
    let shown = format!("{} {:?}", info.summary(), info);
    assert!(
        !shown.contains("DOE") && !shown.contains("PATIENT-ID"),
        "{shown}"
    );
    let multi = cases.iter().find(|c| c.name == "multiframe.dcm").unwrap();
    let info = preprocess::decode(&multi.bytes).unwrap().dicom.unwrap();
    assert_eq!(info.frames, 2);
    assert!(info.summary().contains("first of 2 frames"));
}

#[test]
fn a_30_megapixel_image_is_downscaled() {
    let (w, h) = (6000u32, 5000u32);
    let img =
        image::GrayImage::from_fn(w, h, |x, y| image::Luma([((x / 20 + y / 20) % 256) as u8]));
    let mut png = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageLuma8(img)
        .write_to(&mut png, image::ImageFormat::Png)
        .unwrap();
    let d = preprocess::decode(png.get_ref()).unwrap();
    assert_eq!(d.dimensions, (w, h));
    let x = preprocess::to_square_unit(&d.gray, 128);
    assert_eq!(x.len(), 128 * 128);
}

/// Writes the corpus as seeds for the fuzzer (`fuzz/corpus/decode`, not committed):
/// `cargo test --release --test inputs -- --ignored write_fuzz_seeds`.
#[test]
#[ignore = "writes files for cargo fuzz"]
fn write_fuzz_seeds() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/decode");
    let cases = corpus::cases();
    corpus::write(&cases.iter().collect::<Vec<_>>(), &dir);
}
