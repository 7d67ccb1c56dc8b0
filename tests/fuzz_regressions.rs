//! Inputs the fuzzer (fuzz/, `cargo fuzz run decode`) found to misbehave, kept so they stay
//! fixed, and variations of them generated here. Each must be refused (or decoded) quickly and
//! without a large allocation: a counting allocator measures the peak.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test
#![cfg(not(target_arch = "wasm32"))]

mod corpus;

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

/// Decodes `bytes` and returns (the result as text, the peak of new allocations in bytes).
fn decode_measured(bytes: &[u8]) -> (String, usize) {
    let base = NOW.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    let result = match preprocess::decode(bytes) {
        Ok(d) => format!("ok {:?}", d.gray.dimensions()),
        Err(e) => e.to_string(),
    };
    (result, PEAK.load(Ordering::SeqCst) - base)
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
