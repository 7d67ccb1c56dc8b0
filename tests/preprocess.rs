//! Preprocessing: formats sniffed from bytes, EXIF orientation, 16-bit depth, resizing, and
//! clear errors for what is not a usable image.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test
#![cfg(not(target_arch = "wasm32"))]

mod corpus;
mod support;

use std::io::Cursor;

use image::{DynamicImage, ImageBuffer, ImageFormat, Luma, Rgb, Rgba};
use xray_web::ml::{
    input::InputError,
    preprocess::{self, Normalization},
};

use support::shipped;

fn sample_bytes() -> Vec<u8> {
    shipped::bytes(&shipped::samples()[0])
}

fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn every_format_decodes_to_the_same_input() {
    let jpeg = sample_bytes();
    let reference = preprocess::decode_gray16(&jpeg).unwrap();
    let img = DynamicImage::ImageLuma16(reference.clone());
    let base = preprocess::to_square_unit(&reference, 64);
    for format in [
        ImageFormat::Png,
        ImageFormat::Bmp,
        ImageFormat::Tiff,
        ImageFormat::Gif,
        ImageFormat::WebP,
    ] {
        // 8-bit formats get the 8-bit image; PNG and TIFF keep 16 bits.
        let source = match format {
            ImageFormat::Png | ImageFormat::Tiff => img.clone(),
            ImageFormat::Gif | ImageFormat::WebP => DynamicImage::ImageRgba8(img.to_rgba8()),
            _ => DynamicImage::ImageRgb8(img.to_rgb8()),
        };
        let bytes = encode(&source, format);
        let decoded =
            preprocess::decode_gray16(&bytes).unwrap_or_else(|e| panic!("{format:?}: {e}"));
        let x = preprocess::to_square_unit(&decoded, 64);
        let diff = max_abs_diff(&x, &base);
        assert!(diff < 0.01, "{format:?} differs by {diff}");
    }
}

#[test]
fn format_is_sniffed_not_taken_from_the_name() {
    // The CLI and page never look at the extension: bytes alone decide.
    let png = encode(
        &DynamicImage::ImageLuma8(ImageBuffer::from_pixel(80, 80, Luma([9]))),
        ImageFormat::Png,
    );
    assert!(preprocess::decode_gray16(&png).is_ok());
    let text = b"this is a text file named scan.png, not an image".to_vec();
    assert_eq!(
        preprocess::decode_gray16(&text),
        Err(InputError::UnknownFormat)
    );
}

#[test]
fn sixteen_bit_depth_survives_until_normalisation() {
    // Two levels 1/65535 apart: an 8-bit path would merge them.
    let img = ImageBuffer::from_fn(64, 64, |x, _| {
        Luma([if x < 32 { 30_000u16 } else { 30_001 }])
    });
    let bytes = encode(&DynamicImage::ImageLuma16(img), ImageFormat::Png);
    let x = preprocess::to_square_unit(&preprocess::decode_gray16(&bytes).unwrap(), 64);
    assert_eq!(x[0], 30_000.0 / 65_535.0);
    assert_eq!(x[63], 30_001.0 / 65_535.0);
}

#[test]
fn colour_and_alpha_are_flattened() {
    let rgb = ImageBuffer::from_pixel(70, 70, Rgb([200u8, 200, 200]));
    let rgba = ImageBuffer::from_pixel(70, 70, Rgba([200u8, 200, 200, 255]));
    let a = preprocess::decode_gray16(&encode(&DynamicImage::ImageRgb8(rgb), ImageFormat::Png))
        .unwrap();
    let b = preprocess::decode_gray16(&encode(&DynamicImage::ImageRgba8(rgba), ImageFormat::Png))
        .unwrap();
    assert_eq!(a.get_pixel(5, 5), b.get_pixel(5, 5));
    let half = ImageBuffer::from_pixel(70, 70, Rgba([255u8, 255, 255, 0]));
    let c = preprocess::decode_gray16(&encode(&DynamicImage::ImageRgba8(half), ImageFormat::Png))
        .unwrap();
    assert_eq!(c.get_pixel(0, 0).0[0], 0, "transparent composites on black");
}

/// Inserts an EXIF APP1 segment with the given orientation right after the JPEG SOI marker.
fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut tiff = Vec::new();
    tiff.extend_from_slice(b"II*\0");
    tiff.extend_from_slice(&8u32.to_le_bytes());
    tiff.extend_from_slice(&1u16.to_le_bytes()); // one entry
    tiff.extend_from_slice(&0x0112u16.to_le_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_le_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_le_bytes());
    tiff.extend_from_slice(&orientation.to_le_bytes());
    tiff.extend_from_slice(&[0, 0]);
    tiff.extend_from_slice(&0u32.to_le_bytes()); // no next IFD
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

#[test]
fn exif_orientation_is_applied() {
    // 120 wide, 80 high, bright on the left.
    let img = ImageBuffer::from_fn(120, 80, |x, _| Luma([if x < 60 { 250u8 } else { 5 }]));
    let jpeg = encode(&DynamicImage::ImageLuma8(img), ImageFormat::Jpeg);
    let plain = preprocess::decode_gray16(&jpeg).unwrap();
    assert_eq!(plain.dimensions(), (120, 80));
    let rotated = preprocess::decode_gray16(&with_exif_orientation(&jpeg, 6)).unwrap();
    // Orientation 6: rotate 90° clockwise, so the bright left side ends up on top.
    assert_eq!(rotated.dimensions(), (80, 120));
    assert!(rotated.get_pixel(40, 10).0[0] > 50_000);
    assert!(rotated.get_pixel(40, 110).0[0] < 10_000);
}

#[test]
fn resize_is_square_and_keeps_flat_images_flat() {
    let img = ImageBuffer::from_pixel(300, 200, Luma([32_768u16]));
    let x = preprocess::to_square_unit(&img, 48);
    assert_eq!(x.len(), 48 * 48);
    assert!(x.iter().all(|&v| (v - 32_768.0 / 65_535.0).abs() < 1e-6));
    let mut y = x.clone();
    preprocess::normalize(
        &mut y,
        Normalization {
            mean: 0.5,
            std: 0.25,
            ..Normalization::default()
        },
    );
    assert!(y.iter().all(|v| v.abs() < 1e-3));
}

#[test]
fn unusable_inputs_get_clear_errors() {
    let jpeg = sample_bytes();
    assert_eq!(preprocess::decode_gray16(&[]), Err(InputError::Empty));
    assert_eq!(
        preprocess::decode_gray16(b"%PDF-1.7 ..."),
        Err(InputError::Pdf)
    );
    let svg = b"<svg xmlns='http://www.w3.org/2000/svg'></svg>";
    assert_eq!(
        preprocess::decode_gray16(svg),
        Err(InputError::UnknownFormat)
    );
    let noise: Vec<u8> = (0..5000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    assert!(preprocess::decode_gray16(&noise).is_err());
    let truncated = &jpeg[..jpeg.len() / 3];
    match preprocess::decode_gray16(truncated) {
        Err(InputError::Corrupt { format, .. }) => assert_eq!(format, "JPEG"),
        other => panic!("truncated JPEG gave {other:?}"),
    }
    let tiny = encode(
        &DynamicImage::ImageLuma8(ImageBuffer::from_pixel(1, 1, Luma([0]))),
        ImageFormat::Png,
    );
    assert!(matches!(
        preprocess::decode_gray16(&tiny),
        Err(InputError::TooSmall { .. })
    ));
    let mut dicom = vec![0u8; 128];
    dicom.extend_from_slice(b"DICM");
    assert!(matches!(
        preprocess::decode_gray16(&dicom),
        Err(InputError::DicomDamaged(_))
    ));
}

#[test]
fn a_header_that_claims_a_huge_image_is_refused_before_decoding() {
    // A valid PNG header claiming 100000 × 100000 pixels, followed by nothing.
    let small = encode(
        &DynamicImage::ImageLuma8(ImageBuffer::from_pixel(100, 100, Luma([0]))),
        ImageFormat::Png,
    );
    let mut lying = small.clone();
    lying[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    lying[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    // Fix the IHDR CRC so the header itself is well-formed.
    let crc = corpus::crc32(&lying[12..29]);
    lying[29..33].copy_from_slice(&crc.to_be_bytes());
    let err = preprocess::decode_gray16(&lying).unwrap_err();
    assert!(matches!(err, InputError::TooLarge { .. }), "{err:?}");
    assert!(err.to_string().contains("too large"));
}

/// The wasm test asserts the same numbers: the same file gives the same tensor natively and in
/// the browser. The fixture is a snapshot: when it is missing this test writes it and fails, so
/// that it is reviewed and committed.
#[test]
fn preprocessing_matches_the_shared_fixture() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/preprocess.json"
    );
    let (file, size) = ("normal-01.jpeg", 128usize);
    let bytes = std::fs::read(format!("{}/public/samples/{file}", shipped::ROOT)).unwrap();
    let x = preprocess::preprocess(&bytes, size, Normalization::default()).unwrap();
    let sum: f64 = x.iter().map(|&v| f64::from(v)).sum();
    let Ok(text) = std::fs::read_to_string(path) else {
        let fixture =
            serde_json::json!({"file": file, "size": size, "sum": sum, "first": &x[..64]});
        std::fs::write(path, serde_json::to_string_pretty(&fixture).unwrap()).unwrap();
        panic!("wrote the missing snapshot {path}; review and commit it");
    };
    let fixture: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(fixture["file"], file);
    assert_eq!(fixture["size"], size);
    assert!(
        (sum - fixture["sum"].as_f64().unwrap()).abs() < 1e-3,
        "sum {sum}"
    );
    for (i, v) in fixture["first"].as_array().unwrap().iter().enumerate() {
        assert!((x[i] - v.as_f64().unwrap() as f32).abs() < 1e-6);
    }
}

#[test]
fn equalisation_ranks_pixels_and_ignores_increasing_intensity_changes() {
    use xray_web::ml::preprocess::Intensity;
    let mut x = vec![0.1, 0.5, 0.3, 0.3, 0.9];
    preprocess::map_intensity(&mut x, Intensity::Equalize);
    // Ranks 0, 3, 1.5, 1.5, 4 of 4.
    assert_eq!(x, vec![0.0, 0.75, 0.375, 0.375, 1.0]);
    let mut flat = vec![0.2f32; 16];
    preprocess::map_intensity(&mut flat, Intensity::Equalize);
    assert!(flat.iter().all(|&v| v == 0.5));
    // A real X-ray: gamma and contrast changes leave the equalised input (almost) unchanged.
    let gray = preprocess::decode_gray16(&sample_bytes()).unwrap();
    let unit = preprocess::to_square_unit(&gray, 64);
    let norm = Normalization {
        mean: 0.5,
        std: 0.29,
        intensity: Intensity::Equalize,
    };
    let mut base = unit.clone();
    preprocess::normalize(&mut base, norm);
    let mut changed: Vec<f32> = unit.iter().map(|v| (v * 0.7 + 0.1).powf(1.6)).collect();
    preprocess::normalize(&mut changed, norm);
    let max_diff = base
        .iter()
        .zip(&changed)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(max_diff < 1e-3, "{max_diff}");
    // Per-image standardisation: zero mean, unit spread.
    let mut z = unit.clone();
    preprocess::map_intensity(&mut z, Intensity::PerImage);
    let mean = z.iter().sum::<f32>() / z.len() as f32;
    let var = z.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / z.len() as f32;
    assert!(
        mean.abs() < 1e-4 && (var - 1.0).abs() < 1e-3,
        "{mean} {var}"
    );
}

#[test]
fn thumbnails_keep_the_aspect_ratio_and_are_small_whatever_the_image() {
    // A 3000 × 1000 image with a white left third: the thumbnail is 144 × 48, and its left third
    // stays white.
    let img = ImageBuffer::from_fn(3000, 1000, |x, _| {
        Luma([if x < 1000 { 65_535u16 } else { 0 }])
    });
    let unit = preprocess::to_square_unit(&img, 128);
    let png = preprocess::thumbnail_png(&unit, 128, img.dimensions(), 144).unwrap();
    assert!(png.len() < 20_000, "{} bytes", png.len());
    let thumb = image::load_from_memory_with_format(&png, ImageFormat::Png)
        .unwrap()
        .into_luma8();
    assert_eq!(thumb.dimensions(), (144, 48));
    assert!(thumb.get_pixel(10, 24).0[0] > 250);
    assert!(thumb.get_pixel(130, 24).0[0] < 5);
    // Portrait.
    let png = preprocess::thumbnail_png(&unit, 128, (500, 2000), 144).unwrap();
    let thumb = image::load_from_memory(&png).unwrap();
    assert_eq!((thumb.width(), thumb.height()), (36, 144));
    // A square that does not hold side × side values is an error, not a panic.
    assert!(preprocess::thumbnail_png(&unit[..100], 128, (10, 10), 144).is_err());
}
