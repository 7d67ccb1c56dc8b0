//! From file bytes to the model's input: one path shared by the page, the CLI and training.
//!
//! The format is sniffed from the bytes (never the file name); PNG, JPEG, WebP, BMP, TIFF and
//! GIF decode through the `image` crate; EXIF orientation is applied; colour is collapsed to
//! 16-bit luminance so 16-bit X-rays keep their depth until normalisation; the image is resized
//! to the model's square input with one fixed filter (triangle, antialiased) regardless of its
//! aspect ratio, so neither size nor shape can become a feature; finally intensities in [0, 1]
//! are mapped per image as the model card says (as they are, per-image standardised or
//! histogram-equalised) and standardised with the mean and standard deviation saved with the
//! weights.

use std::io::Cursor;

use burn::prelude::*;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};
use serde::{Deserialize, Serialize};

use super::input::{Gray16, InputError, MAX_PIXELS, MAX_SIDE, check_size, decode_budget};

/// How the [0, 1] intensities of the resized image are mapped before standardisation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum Intensity {
    /// As decoded.
    #[default]
    Linear,
    /// Each image standardised by its own mean and standard deviation, which removes global
    /// exposure and contrast (the card's mean and std then apply to the result).
    PerImage,
    /// Histogram equalisation: each pixel replaced by its mid-rank in its own image, in [0, 1].
    /// Invariant to every increasing change of intensity (exposure, contrast, gamma).
    Equalize,
}

/// Intensity standardisation, fitted on the training images and saved with the weights.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    /// Mean of the (mapped) intensities.
    pub mean: f32,
    /// Standard deviation of the (mapped) intensities.
    pub std: f32,
    /// The per-image mapping applied first (cards without one: linear).
    #[serde(default)]
    pub intensity: Intensity,
}

impl Default for Normalization {
    fn default() -> Self {
        Self {
            mean: 0.5,
            std: 0.25,
            intensity: Intensity::Linear,
        }
    }
}

/// Applies the per-image intensity mapping in place.
pub fn map_intensity(pixels: &mut [f32], intensity: Intensity) {
    match intensity {
        Intensity::Linear => {}
        Intensity::PerImage => {
            let n = pixels.len().max(1) as f64;
            let mean = pixels.iter().map(|&p| f64::from(p)).sum::<f64>() / n;
            let var = pixels
                .iter()
                .map(|&p| (f64::from(p) - mean).powi(2))
                .sum::<f64>()
                / n;
            let inv = 1.0 / var.sqrt().max(1e-3);
            for p in pixels {
                *p = ((f64::from(*p) - mean) * inv) as f32;
            }
        }
        Intensity::Equalize => equalize(pixels),
    }
}

/// Replaces each value by its mid-rank among all values, scaled to [0, 1]: ties share the mean
/// of their ranks, so a flat image becomes 0.5 everywhere.
fn equalize(pixels: &mut [f32]) {
    let n = pixels.len();
    if n < 2 {
        pixels.iter_mut().for_each(|p| *p = 0.5);
        return;
    }
    let mut order: Vec<u32> = (0..n as u32).collect();
    order.sort_unstable_by(|&a, &b| pixels[a as usize].total_cmp(&pixels[b as usize]));
    let scale = 1.0 / (n - 1) as f64;
    let mut ranks = vec![0.0f32; n];
    let mut i = 0;
    while i < n {
        let v = pixels[order[i] as usize];
        let mut j = i;
        while j + 1 < n && pixels[order[j + 1] as usize] == v {
            j += 1;
        }
        let r = ((i + j) as f64 / 2.0 * scale) as f32;
        for &k in &order[i..=j] {
            ranks[k as usize] = r;
        }
        i = j + 1;
    }
    pixels.copy_from_slice(&ranks);
}

fn format_name(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Png => "PNG",
        ImageFormat::Jpeg => "JPEG",
        ImageFormat::WebP => "WebP",
        ImageFormat::Bmp => "BMP",
        ImageFormat::Tiff => "TIFF",
        ImageFormat::Gif => "GIF",
        _ => "image",
    }
}

/// A decoded input, before resizing.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// The image as 16-bit gray (white = dense).
    pub gray: Gray16,
    /// Mean colourfulness in [0, 1]: (max − min of R, G, B) averaged over the pixels; 0 for
    /// gray images, whatever their encoding.
    pub colour: f32,
    /// The format read.
    pub format: &'static str,
    /// Width and height as stored.
    pub dimensions: (u32, u32),
    /// What a DICOM file says about the image.
    pub dicom: Option<super::dicom::DicomInfo>,
}

/// Decodes any supported image into 16-bit grayscale, with EXIF orientation applied.
pub fn decode_gray16(bytes: &[u8]) -> Result<Gray16, InputError> {
    decode(bytes).map(|d| d.gray)
}

/// Mean colourfulness of an image, on at most about 65 000 pixels (read in place: no copy of
/// the image).
fn colourfulness(img: &DynamicImage) -> f32 {
    use image::GenericImageView;
    if !img.color().has_color() {
        return 0.0;
    }
    let (w, h) = img.dimensions();
    let n = u64::from(w) * u64::from(h);
    let step = (n / 65_536).max(1);
    let (sum, count) = (0..n)
        .step_by(step as usize)
        .fold((0u64, 0u64), |(s, c), i| {
            let [r, g, b, _] = img
                .get_pixel((i % u64::from(w)) as u32, (i / u64::from(w)) as u32)
                .0;
            (s + u64::from(r.max(g).max(b) - r.min(g).min(b)), c + 1)
        });
    sum as f32 / (255.0 * count.max(1) as f32)
}

/// The orientations that need a second buffer (the rest are done in place).
fn rotates(orientation: image::metadata::Orientation) -> bool {
    use image::metadata::Orientation::{Rotate90, Rotate90FlipH, Rotate270, Rotate270FlipH};
    matches!(
        orientation,
        Rotate90 | Rotate270 | Rotate90FlipH | Rotate270FlipH
    )
}

/// What decoding needs at its peak, in bytes: the decoder's own buffer (`native`), a rotated
/// copy of it where the orientation asks for one, and the 16-bit grayscale result (none for a
/// 16-bit grayscale file, which becomes the result).
fn decode_need(color: image::ColorType, pixels: u64, rotated: bool) -> u64 {
    use image::ColorType;
    let native = pixels * u64::from(color.bytes_per_pixel());
    let out = if color == ColorType::L16 {
        0
    } else {
        pixels * 2
    };
    // Float images with alpha are flattened through a 16-bit RGBA copy.
    let staging = if color == ColorType::Rgba32F {
        pixels * 8
    } else {
        0
    };
    let orient = if rotated { 2 * native } else { native };
    orient.max(native + out + staging)
}

fn color_name(color: image::ColorType) -> String {
    use image::ColorType;
    let bits = color.bits_per_pixel() / u16::from(color.channel_count());
    let kind = match color {
        ColorType::L8 | ColorType::L16 => "grayscale",
        ColorType::La8 | ColorType::La16 => "grayscale with alpha",
        ColorType::Rgb8 | ColorType::Rgb16 | ColorType::Rgb32F => "RGB",
        _ => "RGBA",
    };
    format!("{bits}-bit {kind}")
}

/// Decodes any supported image or DICOM file (the format is sniffed from the bytes).
pub fn decode(bytes: &[u8]) -> Result<Decoded, InputError> {
    if bytes.is_empty() {
        return Err(InputError::Empty);
    }
    if bytes.starts_with(b"%PDF") {
        return Err(InputError::Pdf);
    }
    if super::dicom::is_dicom(bytes) {
        // Size-checked from its header by the DICOM decoder.
        let (gray, info) = super::dicom::decode(bytes)?;
        let (w, h) = gray.dimensions();
        return Ok(Decoded {
            gray,
            colour: 0.0,
            format: "DICOM",
            dimensions: (w, h),
            dicom: Some(info),
        });
    }
    let format = image::guess_format(bytes).map_err(|_| InputError::UnknownFormat)?;
    let name = format_name(format);
    if name == "image" {
        return Err(InputError::UnknownFormat);
    }
    let corrupt = |e: image::ImageError| InputError::Corrupt {
        format: name,
        detail: e.to_string(),
    };
    if format == ImageFormat::Jpeg && !jpeg_is_complete(bytes) {
        // The JPEG decoder fills a cut-off scan with grey instead of failing.
        return Err(InputError::Corrupt {
            format: name,
            detail: "the file ends before the end of the image data".into(),
        });
    }
    // Every length the container declares, against the bytes present.
    super::containers::check(format, bytes).map_err(|detail| InputError::Lying {
        format: name,
        detail,
    })?;
    // The header alone first: a lying or hostile header is refused before any allocation.
    let mut header = ImageReader::with_format(Cursor::new(bytes), format);
    header.no_limits();
    // A size the decoder refuses before telling it (e.g. on 32-bit wasm) is still too large.
    let refused = |e: image::ImageError| match e {
        image::ImageError::Limits(_) => InputError::TooLarge {
            width: 0,
            height: 0,
            max_mp: MAX_PIXELS / 1_000_000,
            max_side: MAX_SIDE,
        },
        e => corrupt(e),
    };
    let header = header.into_dimensions().map_err(refused)?;
    check_size(header.0, header.1)?;
    let budget = decode_budget(header.0, header.1);
    if format == ImageFormat::Tiff
        && let Some(gray) = tiff_gray(bytes, budget).map_err(corrupt)?
    {
        let dimensions = gray.dimensions();
        return Ok(Decoded {
            gray,
            colour: 0.0,
            format: name,
            dimensions,
            dicom: None,
        });
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(budget as u64);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(refused)?;
    let (width, height) = decoder.dimensions();
    check_size(width, height)?;
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let color = decoder.color_type();
    let pixels = u64::from(width) * u64::from(height);
    // image's TIFF decoder decodes into a buffer of its own, then copies.
    let staging = if format == ImageFormat::Tiff {
        pixels * u64::from(color.bytes_per_pixel())
    } else {
        0
    };
    let need = decode_need(color, pixels, rotates(orientation)) + staging;
    let budget = decode_budget(width, height);
    if need > budget as u64 {
        return Err(InputError::OverBudget {
            kind: color_name(color),
            width,
            height,
            need_mb: (need / 1_000_000) as usize,
            budget_mb: budget / 1_000_000,
        });
    }
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| match e {
        image::ImageError::Limits(_) => InputError::OverBudget {
            kind: color_name(color),
            width,
            height,
            need_mb: (need / 1_000_000) as usize,
            budget_mb: budget / 1_000_000,
        },
        e => corrupt(e),
    })?;
    img.apply_orientation(orientation);
    let colour = colourfulness(&img);
    Ok(Decoded {
        gray: flatten_to_gray16(img),
        colour,
        format: name,
        dimensions: (width, height),
        dicom: None,
    })
}

/// A single-plane 8- or 16-bit grayscale TIFF, decoded by the tiff crate straight into the
/// result (16-bit samples are the result; 8-bit ones are widened as image widens them), with
/// its orientation applied. `None` for any other kind of TIFF, which image decodes.
fn tiff_gray(bytes: &[u8], budget: usize) -> Result<Option<Gray16>, image::ImageError> {
    use tiff::{
        ColorType,
        decoder::{Decoder, DecodingResult, Limits},
        tags::{PlanarConfiguration, Tag},
    };
    let err = |e: tiff::TiffError| {
        image::ImageError::Decoding(image::error::DecodingError::new(
            image::error::ImageFormatHint::Exact(ImageFormat::Tiff),
            e,
        ))
    };
    let mut limits = Limits::default();
    limits.decoding_buffer_size = budget;
    limits.intermediate_buffer_size = budget;
    let mut d = Decoder::new(Cursor::new(bytes))
        .map_err(err)?
        .with_limits(limits);
    let planar = d
        .find_tag_unsigned::<u16>(Tag::PlanarConfiguration)
        .map_err(err)?
        .and_then(PlanarConfiguration::from_u16);
    let color = match d.colortype().map_err(err)? {
        ColorType::Gray(8) => image::ColorType::L8,
        ColorType::Gray(16) => image::ColorType::L16,
        _ => return Ok(None),
    };
    if planar == Some(PlanarConfiguration::Planar) {
        return Ok(None);
    }
    let (w, h) = d.dimensions().map_err(err)?;
    let orientation = d
        .find_tag_unsigned::<u16>(Tag::Orientation)
        .map_err(err)?
        .and_then(|v| image::metadata::Orientation::from_exif(v.min(255) as u8))
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let need = decode_need(color, u64::from(w) * u64::from(h), rotates(orientation));
    if need > budget as u64 {
        return Err(image::ImageError::Limits(
            image::error::LimitError::from_kind(image::error::LimitErrorKind::InsufficientMemory),
        ));
    }
    let img = match d.read_image().map_err(err)? {
        DecodingResult::U16(v) => Gray16::from_raw(w, h, v).map(DynamicImage::ImageLuma16),
        DecodingResult::U8(v) => image::GrayImage::from_raw(w, h, v).map(DynamicImage::ImageLuma8),
        _ => None,
    };
    let Some(mut img) = img else {
        return Ok(None);
    };
    img.apply_orientation(orientation);
    Ok(Some(img.into_luma16()))
}

/// Whether a JPEG has an end-of-image marker after its last scan. Scan data cannot contain
/// `FF D9` (a literal `FF` is stuffed as `FF 00`), so a file cut inside its image data has none
/// after the last start-of-scan; an EOI inside an embedded thumbnail comes before it.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last = |marker: u8| {
        bytes
            .windows(2)
            .rposition(|w| w[0] == 0xFF && w[1] == marker)
    };
    match (last(0xDA), last(0xD9)) {
        (Some(sos), Some(eoi)) => eoi > sos,
        _ => false,
    }
}

/// Collapses colour and alpha to 16-bit luminance. Transparent pixels are composited on black,
/// the background of a radiograph.
///
/// Read in place: the only allocation is the result (none for a 16-bit grayscale image).
fn flatten_to_gray16(img: DynamicImage) -> Gray16 {
    fn composite(w: u32, h: u32, rgba: impl Iterator<Item = [u16; 4]>) -> Gray16 {
        let pixels = rgba
            .map(|[r, g, b, a]| {
                let luma =
                    (2126 * u64::from(r) + 7152 * u64::from(g) + 722 * u64::from(b)) / 10_000;
                (luma * u64::from(a) / 65_535) as u16
            })
            .collect();
        Gray16::from_raw(w, h, pixels).unwrap_or_else(|| Gray16::new(w, h))
    }
    let wide = |v: u8| u16::from(v) * 257;
    let (w, h) = (img.width(), img.height());
    match img {
        DynamicImage::ImageLumaA8(b) => composite(
            w,
            h,
            b.pixels().map(|p| {
                let [l, a] = p.0;
                [wide(l), wide(l), wide(l), wide(a)]
            }),
        ),
        DynamicImage::ImageRgba8(b) => composite(w, h, b.pixels().map(|p| p.0.map(wide))),
        DynamicImage::ImageLumaA16(b) => composite(
            w,
            h,
            b.pixels().map(|p| {
                let [l, a] = p.0;
                [l, l, l, a]
            }),
        ),
        DynamicImage::ImageRgba16(b) => composite(w, h, b.pixels().map(|p| p.0)),
        img if img.color().has_alpha() => {
            let rgba = img.to_rgba16();
            composite(w, h, rgba.pixels().map(|p| p.0))
        }
        img => img.into_luma16(),
    }
}

/// Resizes to `size`×`size` (ignoring aspect ratio) and maps intensities to [0, 1].
pub fn to_square_unit(gray: &Gray16, size: usize) -> Vec<f32> {
    let side = size as u32;
    let resized = if gray.dimensions() == (side, side) {
        gray.clone()
    } else {
        image::imageops::resize(gray, side, side, image::imageops::FilterType::Triangle)
    };
    resized
        .into_raw()
        .into_iter()
        .map(|v| f32::from(v) / 65_535.0)
        .collect()
}

/// A gray PNG of a square [`to_square_unit`] image stretched back to the aspect ratio of the
/// image it came from (`shape`, width × height), its longest side `max_side`.
///
/// # Shapes
/// - `unit`: `side · side` values in [0, 1], row-major
pub fn thumbnail_png(
    unit: &[f32],
    side: usize,
    shape: (u32, u32),
    max_side: u32,
) -> Result<Vec<u8>, image::ImageError> {
    encode_png(thumbnail(unit, side, shape, max_side)?.into())
}

/// `img` as PNG bytes.
pub fn encode_png(img: DynamicImage) -> Result<Vec<u8>, image::ImageError> {
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), ImageFormat::Png)?;
    Ok(out)
}

/// [`thumbnail_png`]'s image, before encoding.
pub fn thumbnail(
    unit: &[f32],
    side: usize,
    shape: (u32, u32),
    max_side: u32,
) -> Result<image::GrayImage, image::ImageError> {
    let side32 = side as u32;
    let bytes: Vec<u8> = unit
        .iter()
        .map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
        .collect();
    let square = image::GrayImage::from_raw(side32, side32, bytes).ok_or_else(|| {
        image::ImageError::Parameter(image::error::ParameterError::from_kind(
            image::error::ParameterErrorKind::DimensionMismatch,
        ))
    })?;
    let (w, h) = (shape.0.max(1) as f64, shape.1.max(1) as f64);
    let scale = f64::from(max_side.max(1)) / w.max(h);
    let tw = ((w * scale).round() as u32).max(1);
    let th = ((h * scale).round() as u32).max(1);
    Ok(image::imageops::resize(
        &square,
        tw,
        th,
        image::imageops::FilterType::Triangle,
    ))
}

/// Maps [0, 1] intensities ([`Intensity`]) and standardises them, in place.
pub fn normalize(pixels: &mut [f32], norm: Normalization) {
    map_intensity(pixels, norm.intensity);
    let inv = 1.0 / norm.std;
    for p in pixels {
        *p = (*p - norm.mean) * inv;
    }
}

/// File bytes to the model's standardised `size`×`size` input, row-major.
pub fn preprocess(bytes: &[u8], size: usize, norm: Normalization) -> Result<Vec<f32>, InputError> {
    let gray = decode_gray16(bytes)?;
    let mut pixels = to_square_unit(&gray, size);
    normalize(&mut pixels, norm);
    Ok(pixels)
}

/// Stacks standardised images into a batch.
///
/// # Shapes
/// - each image: `size · size` values, row-major
/// - output: `[images.len(), 1, size, size]`
pub fn batch_tensor(images: &[Vec<f32>], size: usize, device: &Device) -> Tensor<4> {
    let mut flat = Vec::with_capacity(images.len() * size * size);
    for img in images {
        flat.extend_from_slice(img);
    }
    Tensor::from_data(TensorData::new(flat, [images.len(), 1, size, size]), device)
}
