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

/// Where the data set starts: the first element after the meta group (group 0002).
fn data_set_start(bytes: &[u8]) -> usize {
    let mut pos = 132;
    while u16::from_le_bytes([bytes[pos], bytes[pos + 1]]) == 0x0002 {
        let vr = &bytes[pos + 4..pos + 6];
        pos += if matches!(vr, b"OB" | b"OW" | b"UN" | b"SQ" | b"UT") {
            12 + u32::from_le_bytes(bytes[pos + 8..pos + 12].try_into().unwrap()) as usize
        } else {
            8 + usize::from(u16::from_le_bytes([bytes[pos + 6], bytes[pos + 7]]))
        };
    }
    pos
}

fn with_inserted(mut bytes: Vec<u8>, element: &[u8]) -> Vec<u8> {
    let at = data_set_start(&bytes);
    bytes.splice(at..at, element.iter().copied());
    bytes
}

/// An explicit-VR sequence (0008,1140) of defined length holding one item of defined length
/// around `inner`.
fn explicit_sequence(inner: &[u8]) -> Vec<u8> {
    let item_len = inner.len() as u32;
    let mut el = vec![0x08, 0x00, 0x40, 0x11, b'S', b'Q', 0, 0];
    el.extend_from_slice(&(item_len + 8).to_le_bytes());
    el.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0]);
    el.extend_from_slice(&item_len.to_le_bytes());
    el.extend_from_slice(inner);
    el
}

#[test]
fn lengths_inside_sequences_and_unknown_vrs_are_checked_as_the_parser_reads_them() {
    let _turn = turn();
    let huge = 0x7FF0_0000u32.to_le_bytes();
    // An OB inside an item of a sequence, both of defined length, claiming 2 GB: the lengths
    // of the sequence and the item fit the file, the one inside does not.
    let mut ob = vec![0x09, 0x00, 0x10, 0x10, b'O', b'B', 0, 0];
    ob.extend_from_slice(&huge);
    ob.extend_from_slice(&[0; 16]);
    let bytes = with_inserted(mono2(), &explicit_sequence(&ob));
    let (result, peak) = decode_measured(&bytes);
    assert!(result.contains("damaged"), "{result}");
    assert!(peak < LIMIT, "inside a sequence: {peak} bytes allocated");

    // A VR the standard does not know: the parser reads it as UN, with a 4-byte length.
    let mut unknown = vec![0x09, 0x00, 0x10, 0x10, b'X', b'X', 0, 0];
    unknown.extend_from_slice(&huge);
    unknown.extend_from_slice(&[0; 16]);
    let bytes = with_inserted(mono2(), &unknown);
    let (result, peak) = decode_measured(&bytes);
    assert!(result.contains("damaged"), "{result}");
    assert!(peak < LIMIT, "unknown VR: {peak} bytes allocated");

    // Implicit VR: the parser knows (0008,1140) is a sequence from the dictionary.
    let implicit = corpus::cases()
        .into_iter()
        .find(|c| c.name == "mono2-8bit-implicit.dcm")
        .unwrap()
        .bytes;
    let mut inner = vec![0x09, 0x00, 0x10, 0x10];
    inner.extend_from_slice(&huge);
    inner.extend_from_slice(&[0; 16]);
    let mut seq = vec![0x08, 0x00, 0x40, 0x11];
    seq.extend_from_slice(&(inner.len() as u32 + 8).to_le_bytes());
    seq.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0]);
    seq.extend_from_slice(&(inner.len() as u32).to_le_bytes());
    seq.extend_from_slice(&inner);
    let bytes = with_inserted(implicit, &seq);
    let (result, peak) = decode_measured(&bytes);
    assert!(result.contains("damaged"), "{result}");
    assert!(peak < LIMIT, "implicit VR sequence: {peak} bytes allocated");

    // And a sequence whose item holds ordinary elements still decodes.
    let mut fine = vec![0x08, 0x00, 0x50, 0x11, b'U', b'I', 4, 0];
    fine.extend_from_slice(b"1.2\0");
    let bytes = with_inserted(mono2(), &explicit_sequence(&fine));
    let (result, _) = decode_measured(&bytes);
    assert!(result.starts_with("ok"), "{result}");
}
