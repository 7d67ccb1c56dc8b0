//! Inputs the fuzzer (fuzz/, `cargo fuzz run decode`) found to misbehave, kept so they stay
//! fixed, and variations of them generated here. Each must be refused (or decoded) quickly and
//! without a large allocation: a counting allocator measures the peak.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test
#![cfg(not(target_arch = "wasm32"))]

mod corpus;
mod support;

use support::fuzz_input::{PART, split};

use std::{
    alloc::{GlobalAlloc, Layout, System},
    sync::atomic::{AtomicUsize, Ordering},
};

use xray_web::ml::preprocess;

struct Counting;

static NOW: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = NOW.fetch_add(layout.size(), Ordering::SeqCst) + layout.size();
        PEAK.fetch_max(now, Ordering::SeqCst);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        NOW.fetch_sub(layout.size(), Ordering::SeqCst);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` and returns (its result, the peak of new allocations in bytes).
fn measured<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = NOW.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    let result = f();
    (result, PEAK.load(Ordering::SeqCst) - base)
}

/// Decodes `bytes` and returns (the result as text, the peak of new allocations in bytes).
fn decode_measured(bytes: &[u8]) -> (String, usize) {
    measured(|| match preprocess::decode(bytes) {
        Ok(d) => format!("ok {:?}", d.gray.dimensions()),
        Err(e) => e.to_string(),
    })
}

const LIMIT: usize = 64 << 20;

/// The counters are global: tests take turns.
static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn fuzzer_crashes_stay_fixed() {
    let _turn = turn();
    // A mutated DICOM whose corrupted element lengths made the parser reserve and fill 4 GB
    // (libFuzzer: out-of-memory) before failing.
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fuzz/oom-bc631a1d.dcm"
    ))
    .unwrap();
    let (result, peak) = decode_measured(&bytes);
    assert!(result.contains("DICOM file is damaged"), "{result}");
    assert!(peak < LIMIT, "{peak} bytes allocated");

    // 534 bytes: an element of undefined length whose sequence delimiter declares a length;
    // the parser claimed 4 GB (fourth fuzzing run).
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fuzz/oom-delimiter.dcm"
    ))
    .unwrap();
    let (result, peak) = decode_measured(&bytes);
    assert!(result.contains("delimiter"), "{result}");
    assert!(peak < LIMIT, "{peak} bytes allocated");
}

#[test]
fn a_short_rle_segment_is_refused_not_a_panic() {
    let _turn = turn();
    // A mutated RLE DICOM whose first segment decodes to fewer bytes than the image has; the
    // RLE decoder of dicom-transfer-syntax-registry 0.10.1 indexed past its end and panicked
    // (which in the browser would kill the page).
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fuzz/crash-4c1161bd.dcm"
    ))
    .unwrap();
    let (result, peak) = decode_measured(&bytes);
    // Since the header walk also checks item lengths, this file is refused even earlier.
    assert!(result.contains("DICOM file is damaged"), "{result}");
    assert!(peak < LIMIT, "{peak} bytes allocated");

    // The same fault made from the corpus: the RLE file cut inside its last segment, then
    // re-wrapped so that the DICOM structure itself is intact.
    let img: Vec<u16> = (0..64 * 64).map(|i| (i % 4096) as u16).collect();
    let mut frame = corpus::rle(&img, 2);
    frame.truncate(frame.len() - 300);
    let bytes = rle_dicom(frame);
    let (result, _) = decode_measured(&bytes);
    assert!(result.contains("RLE data"), "{result}");
    // Offsets past the end of the fragment (found by the third fuzzing run, in the check itself).
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fuzz/crash-rle-offsets.dcm"
    ))
    .unwrap();
    let (result, _) = decode_measured(&bytes);
    assert!(result.contains("DICOM file is damaged"), "{result}");
    // The same fault, made: a segment offset past the end of an intact fragment.
    let mut frame = corpus::rle(&img, 2);
    frame[8..12].copy_from_slice(&1_000_000u32.to_le_bytes());
    let (result, _) = decode_measured(&rle_dicom(frame));
    assert!(
        result.contains("RLE data: a segment lies outside"),
        "{result}"
    );
    // And a header claiming 4 billion segments.
    let mut frame = corpus::rle(&img, 2);
    frame[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
    let bytes = rle_dicom(frame);
    let (result, peak) = decode_measured(&bytes);
    assert!(result.contains("RLE data"), "{result}");
    assert!(peak < LIMIT, "{peak} bytes allocated");
}

/// A 64×64 12-bit RLE DICOM around `frame`.
fn rle_dicom(frame: Vec<u8>) -> Vec<u8> {
    corpus::dicom(&corpus::Dicom {
        transfer_syntax: "1.2.840.10008.1.2.5",
        photometric: "MONOCHROME2",
        rows: 64,
        cols: 64,
        bits_allocated: 16,
        bits_stored: 12,
        frames: 1,
        window: None,
        rescale: None,
        pixels: corpus::Pixels::Encapsulated(vec![frame]),
        preamble: true,
    })
}

fn mono2() -> Vec<u8> {
    corpus::cases()
        .into_iter()
        .find(|c| c.name == "mono2-12bit.dcm")
        .unwrap()
        .bytes
}

/// Overwrites the 2-byte length of the element whose header starts with `tag_vr`.
fn set_length(bytes: &mut [u8], tag_vr: &[u8], len: u16) {
    let at = bytes
        .windows(tag_vr.len())
        .position(|w| w == tag_vr)
        .expect("element present");
    bytes[at + 6..at + 8].copy_from_slice(&len.to_le_bytes());
}

#[test]
fn lying_dicom_lengths_are_refused_without_allocating() {
    let _turn = turn();
    // The patient-name element claims more bytes than the file has.
    let mut bytes = mono2();
    let keep = 2000;
    set_length(&mut bytes, &[0x10, 0x00, 0x10, 0x00, b'P', b'N'], 0xFFF0);
    bytes.truncate(keep);
    let (result, peak) = decode_measured(&bytes);
    assert!(result.contains("declares"), "{result}");
    assert!(peak < LIMIT, "{peak} bytes allocated");

    // The pixel data claims 4 GB.
    let mut bytes = mono2();
    let at = bytes
        .windows(6)
        .position(|w| w == [0xE0, 0x7F, 0x10, 0x00, b'O', b'W'])
        .unwrap();
    bytes[at + 8..at + 12].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    let (result, peak) = decode_measured(&bytes);
    assert!(result.contains("damaged"), "{result}");
    assert!(peak < LIMIT, "{peak} bytes allocated");
}

#[test]
fn a_frame_count_claim_does_not_decode_every_frame() {
    let _turn = turn();
    let mut bytes = mono2();
    // Insert (0028,0008) IS "99999" after the photometric interpretation element.
    let at = bytes
        .windows(6)
        .position(|w| w == [0x28, 0x00, 0x10, 0x00, b'U', b'S'])
        .unwrap();
    let mut el = vec![0x28, 0x00, 0x08, 0x00, b'I', b'S', 6, 0];
    el.extend_from_slice(b"99999 ");
    bytes.splice(at..at, el);
    let (result, peak) = decode_measured(&bytes);
    // The file holds one frame, not 99999: refused or read, never 99999 frames decoded.
    assert!(peak < LIMIT, "{result}: {peak} bytes allocated");
}

#[test]
fn lengths_inside_sequences_and_unknown_vrs_are_checked_as_the_parser_reads_them() {
    let _turn = turn();
    let cases = corpus::cases();
    for name in [
        "sequence-item-2gb.dcm",
        "unknown-vr-2gb.dcm",
        "implicit-sequence-2gb.dcm",
    ] {
        let case = cases.iter().find(|c| c.name == name).unwrap();
        let (result, peak) = decode_measured(&case.bytes);
        assert!(result.contains("damaged"), "{name}: {result}");
        assert!(peak < LIMIT, "{name}: {peak} bytes allocated");
    }
    // A sequence whose item holds ordinary elements still decodes.
    let fine = cases
        .iter()
        .find(|c| c.name == "with-a-sequence.dcm")
        .unwrap();
    let (result, _) = decode_measured(&fine.bytes);
    assert!(result.starts_with("ok"), "{result}");
}

/// Loads a visitor's model as the page does; returns (the result as text, the peak).
fn load_measured(card: Option<&[u8]>, weights: Vec<u8>) -> (String, usize) {
    use burn::prelude::Device;
    use xray_web::ml::classifier::Classifier;
    let shipped = support::shipped::card();
    measured(
        || match Classifier::load_user(card, weights, &shipped, Device::flex()) {
            Ok(c) => format!("ok {}", c.card.model.name()),
            Err(e) => e.to_string(),
        },
    )
}

#[test]
fn weights_load_within_the_budget_and_hostile_ones_are_refused_before_allocating() {
    use xray_web::ml::model::Depth;
    let _turn = turn();
    let weights = support::shipped::weights();
    let n = weights.len();
    // The shipped weights (f16), loaded into f32: about 2.5 times the file.
    let (result, peak) = load_measured(Some(support::shipped::CARD), weights.clone());
    assert!(result.starts_with("ok"), "{result}");
    println!("loading the shipped weights ({n} bytes) allocated {peak} bytes at the peak");
    assert!(peak < LIMIT + 4 * n, "{peak} bytes allocated");

    // A card that claims the largest architecture it may (a ResNet-50 of width 128 at 512 px:
    // 94 M parameters, 376 MB in f32) with the small file: refused at the first tensor whose
    // shape differs, and the model's own parameters are never allocated.
    let mut card = support::shipped::card();
    card.model.depth = Depth::Resnet50;
    card.model.width = 128;
    card.model.input_size = 512;
    card.ood = None;
    let json = serde_json::to_vec(&card).unwrap();
    let (result, peak) = load_measured(Some(&json), weights.clone());
    assert!(
        result.contains("do not fit the model resnet50-w128-512px"),
        "{result}"
    );
    assert!(peak < LIMIT, "{peak} bytes allocated");

    // Beyond that, the card itself is refused.
    card.model.width = 100_000;
    let json = serde_json::to_vec(&card).unwrap();
    let (result, peak) = load_measured(Some(&json), weights.clone());
    assert!(result.contains("width 100000 is outside"), "{result}");
    assert!(peak < LIMIT, "{peak} bytes allocated");

    // A file cut short: its tensors' byte ranges lie past its end.
    let (result, peak) = load_measured(None, weights[..n / 3].to_vec());
    assert!(result.contains("not readable"), "{result}");
    assert!(peak < LIMIT, "{peak} bytes allocated");
}

/// A `w`×`h` smooth gradient (compresses well, so the files stay small).
fn gradient(w: u32, h: u32) -> image::ImageBuffer<image::Luma<u16>, Vec<u16>> {
    image::ImageBuffer::from_fn(w, h, |x, y| image::Luma([((x + y) % 4096 * 16) as u16]))
}

fn encoded(img: image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

#[test]
#[ignore = "measures large images (slow); prints each peak"]
fn large_images_decode_within_the_budget() {
    use image::{DynamicImage, ImageFormat};
    let _turn = turn();
    let (w, h) = (6000u32, 5000u32);
    let budget = xray_web::ml::input::decode_budget(w, h);
    let g16 = gradient(w, h);
    let g8 = DynamicImage::ImageLuma16(g16.clone()).into_luma8();
    let rgb = DynamicImage::ImageLuma8(g8.clone()).into_rgb8();
    let files = [
        (
            "png 16-bit",
            encoded(DynamicImage::ImageLuma16(g16.clone()), ImageFormat::Png),
        ),
        (
            "png 8-bit",
            encoded(DynamicImage::ImageLuma8(g8.clone()), ImageFormat::Png),
        ),
        (
            "tiff 16-bit",
            encoded(DynamicImage::ImageLuma16(g16.clone()), ImageFormat::Tiff),
        ),
        (
            "jpeg 8-bit",
            encoded(DynamicImage::ImageLuma8(g8.clone()), ImageFormat::Jpeg),
        ),
        (
            "png rgb",
            encoded(DynamicImage::ImageRgb8(rgb), ImageFormat::Png),
        ),
        (
            "dicom 16-bit",
            corpus::dicom(&corpus::Dicom {
                transfer_syntax: "1.2.840.10008.1.2.1",
                photometric: "MONOCHROME2",
                rows: h as u16,
                cols: w as u16,
                bits_allocated: 16,
                bits_stored: 16,
                frames: 1,
                window: None,
                rescale: None,
                pixels: corpus::Pixels::Native(
                    g16.as_raw().iter().flat_map(|v| v.to_le_bytes()).collect(),
                ),
                preamble: true,
            }),
        ),
    ];
    drop((g16, g8));
    let mut over = Vec::new();
    for (name, bytes) in &files {
        let (result, peak) = decode_measured(bytes);
        println!(
            "{name}: {} MB file, {result}, peak {:.0} MB (budget {:.0} MB)",
            bytes.len() >> 20,
            peak as f64 / 1e6,
            budget as f64 / 1e6
        );
        if peak > budget {
            over.push(*name);
        }
    }
    assert!(over.is_empty(), "over the budget: {over:?}");
}

#[test]
fn dicoms_mapped_in_place_give_what_dicom_pixeldata_gives() {
    use xray_web::ml::dicom;
    let _turn = turn();
    let mut compared = 0;
    for case in corpus::cases() {
        if !dicom::is_dicom(&case.bytes) {
            continue;
        }
        let fast = dicom::decode(&case.bytes).map(|(g, _)| g);
        let reference = dicom::decode_with_pixeldata(&case.bytes);
        match (fast, reference) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a.dimensions(), b.dimensions(), "{}", case.name);
                assert!(a.as_raw() == b.as_raw(), "{}: pixels differ", case.name);
                compared += 1;
            }
            (Err(_), Err(_)) => {}
            (a, b) => panic!("{}: {:?} vs {:?}", case.name, a.err(), b.err()),
        }
    }
    println!("{compared} DICOMs compared");
    assert!(compared >= 8, "only {compared} DICOMs compared");
}

/// Every file kept under `tests/fuzz/` goes through the path its fuzz target exercises (the
/// name's first word says which: `weights-`, `card-`, `protocol-`, `dataset-`; anything else is
/// `decode`) and stays within the budget: 64 MB for these small files, whatever they claim.
#[test]
fn every_kept_fuzz_finding_stays_within_the_budget() {
    let _turn = turn();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fuzz");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).unwrap();
        let peak = if name.starts_with("weights-") {
            let parts = split(&bytes, PART);
            let (card, w) = match parts.as_slice() {
                [w] => (None, *w),
                [c, w, ..] => (Some(*c), *w),
                [] => unreachable!(),
            };
            load_measured(card, w.to_vec()).1
        } else if name.starts_with("card-") {
            measured(|| xray_web::ml::card::ModelCard::from_json(&bytes).is_ok()).1
        } else if name.starts_with("protocol-") {
            measured(|| {
                use xray_web::web::protocol::{ToWorker, decode_text};
                let parts = split(&bytes, PART);
                let text = String::from_utf8_lossy(parts[0]);
                if let Ok(ToWorker::Start(s)) = decode_text::<ToWorker>(&text) {
                    let _ = s.inputs(parts[1..].iter().map(|p| p.to_vec()).collect());
                }
            })
            .1
        } else if name.starts_with("dataset-") {
            measured(|| {
                for file in split(&bytes, PART) {
                    let at = file.iter().position(|&b| b == b'\n').unwrap_or(file.len());
                    let path = String::from_utf8_lossy(&file[..at]);
                    let f = xray_web::ml::folder::FolderFile {
                        path: &path,
                        label: None,
                        bytes: file.get(at + 1..).unwrap_or_default(),
                    };
                    let _ = xray_web::ml::folder::example(f, 32);
                }
            })
            .1
        } else {
            decode_measured(&bytes).1
        };
        assert!(peak < LIMIT, "{name}: {peak} bytes allocated");
        n += 1;
    }
    assert!(n >= 4, "only {n} files in tests/fuzz");
}
