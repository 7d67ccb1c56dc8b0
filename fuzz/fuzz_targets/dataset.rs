//! Fuzzes "train on your own images": a folder of files (path and bytes) turned into
//! labelled examples and split by patient, exactly as the page does it ([`folder::example`],
//! [`folder::split`]). One input is a list of files cut at `\0PART\0`, each `path\nbytes`.

#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use xray_web::ml::folder::{self, FolderFile};

const SIZE: usize = 32;

fuzz_target!(|data: &[u8]| {
    let mut named = Vec::new();
    for file in common::split(data, common::PART).into_iter().take(64) {
        let (path, bytes) = match file.iter().position(|&b| b == b'\n') {
            Some(at) => (&file[..at], &file[at + 1..]),
            None => (file, &[][..]),
        };
        let path = String::from_utf8_lossy(path);
        let file = FolderFile {
            path: &path,
            label: None,
            bytes,
        };
        match folder::example(file, SIZE) {
            Ok(e) => {
                assert_eq!(e.pixels.len(), SIZE * SIZE);
                named.push((folder::file_name(&path).to_string(), e.pneumonia));
            }
            Err(message) => assert!(message.starts_with(&*path), "{message}"),
        }
    }
    if let Ok(held) = folder::split(&named) {
        assert_eq!(held.len(), named.len());
        // No patient on both sides.
        for (i, (a, _)) in named.iter().enumerate() {
            for (j, (b, _)) in named.iter().enumerate() {
                if xray_web::ml::split::patient_id(a) == xray_web::ml::split::patient_id(b) {
                    assert_eq!(held[i], held[j], "{a} and {b}");
                }
            }
        }
    }
});
