//! What both decoders (images in [`super::preprocess`], DICOM in [`super::dicom`]) share: the
//! 16-bit grayscale image they produce, the errors a file can be refused with, and the size
//! limits with their one check, made from a file's header before anything is decoded.

use image::{ImageBuffer, Luma};

/// Largest image accepted, in pixels (checked from the header before decoding).
pub const MAX_PIXELS: u64 = 60_000_000;
/// Largest side accepted, in pixels.
pub const MAX_SIDE: u32 = 20_000;
/// Smallest side that can still be an X-ray worth classifying.
pub const MIN_SIDE: u32 = 64;

/// The least any file may allocate while it is decoded.
pub const MIN_BUDGET: usize = 64 << 20;

/// The most decoding one `width`×`height` image may allocate: the larger of 64 MB and 1.5
/// times its 16-bit grayscale pixels (at most 60 MP × 2 bytes × 1.5 = 180 MB), whatever the
/// file claims elsewhere.
pub fn decode_budget(width: u32, height: u32) -> usize {
    let pixels = u64::from(width) * u64::from(height);
    MIN_BUDGET.max(usize::try_from(pixels * 3).unwrap_or(usize::MAX))
}

/// A 16-bit grayscale image.
pub type Gray16 = ImageBuffer<Luma<u16>, Vec<u16>>;

/// Why a file could not be turned into a model input. Each message is meant to be shown to a
/// clinician as it is, after the file name.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum InputError {
    /// Zero bytes.
    #[error("the file is empty")]
    Empty,
    /// A PDF document.
    #[error("this is a PDF document, not an image; export the X-ray as PNG or JPEG")]
    Pdf,
    /// A DICOM file that cannot be parsed.
    #[error("the DICOM file is damaged or truncated ({0})")]
    DicomDamaged(String),
    /// A DICOM file without pixel data (a report, a structured document).
    #[error("this DICOM file holds no image (it may be a report or a structured document)")]
    DicomNoImage,
    /// A DICOM compression without a pure-Rust decoder.
    #[error(
        "this DICOM file is compressed as {0}, which cannot be read here; export it uncompressed, as RLE or JPEG, or as PNG"
    )]
    DicomCompression(String),
    /// Bytes that match no supported format.
    #[error("not a supported image (DICOM, PNG, JPEG, WebP, BMP, TIFF or GIF expected)")]
    UnknownFormat,
    /// The header claims more pixels than the budget.
    #[error("{}", too_large(*.width, *.height, *.max_mp, *.max_side))]
    TooLarge {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// Pixel budget in megapixels.
        max_mp: u64,
        /// Longest side allowed.
        max_side: u32,
    },
    /// Decoding would need more memory than the budget (a large colour image, usually).
    #[error(
        "decoding this {kind} image of {width}×{height} pixels would need {need_mb} MB, more than the {budget_mb} MB allowed for one file; X-rays are grayscale: save it as a grayscale image, or smaller"
    )]
    OverBudget {
        /// What kind of pixels the file holds (e.g. "8-bit RGB").
        kind: String,
        /// Width.
        width: u32,
        /// Height.
        height: u32,
        /// Memory its decoding needs, MB.
        need_mb: usize,
        /// The budget, MB.
        budget_mb: usize,
    },
    /// A length declared in the file that the file does not hold.
    #[error("the {format} file is damaged or truncated ({detail})")]
    Lying {
        /// Format name.
        format: &'static str,
        /// Which length.
        detail: String,
    },
    /// Too small to be a radiograph.
    #[error("the image is too small ({width}×{height} pixels; at least {min}×{min} expected)")]
    TooSmall {
        /// Width.
        width: u32,
        /// Height.
        height: u32,
        /// Smallest side allowed.
        min: u32,
    },
    /// The decoder failed: truncated or corrupt data.
    #[error("the {format} data is damaged or truncated ({detail})")]
    Corrupt {
        /// Format name.
        format: &'static str,
        /// Decoder message.
        detail: String,
    },
}

fn too_large(width: u32, height: u32, max_mp: u64, max_side: u32) -> String {
    let limits = format!("at most {max_mp} megapixels and {max_side} pixels a side");
    if width == 0 || height == 0 {
        format!("the image is too large ({limits})")
    } else {
        format!("the image is too large ({width}×{height} pixels; {limits})")
    }
}

/// Refuses a declared size outside the limits: too many pixels, too long a side, or too small
/// to be a radiograph.
pub fn check_size(width: u32, height: u32) -> Result<(), InputError> {
    if u64::from(width) * u64::from(height) > MAX_PIXELS || width > MAX_SIDE || height > MAX_SIDE {
        return Err(InputError::TooLarge {
            width,
            height,
            max_mp: MAX_PIXELS / 1_000_000,
            max_side: MAX_SIDE,
        });
    }
    if width < MIN_SIDE || height < MIN_SIDE {
        return Err(InputError::TooSmall {
            width,
            height,
            min: MIN_SIDE,
        });
    }
    Ok(())
}
