//! A corpus of unusual and hostile inputs, generated from one real X-ray (the gallery's
//! `pneumonia-01.jpeg`) rather than checked in: every encoding a clinician may have, DICOM
//! variants written by a small independent encoder below, and files that must be refused.
//! Shared by the native, CLI and page tests.

#![allow(dead_code)]

use std::io::Cursor;

use image::{
    DynamicImage, GrayImage, ImageBuffer, ImageFormat, Luma, Rgb, RgbImage, Rgba, RgbaImage,
    codecs::jpeg::JpegEncoder,
};

/// The X-ray everything is derived from.
pub const SOURCE: &str = "public/samples/pneumonia-01.jpeg";

/// What must happen to a file.
#[derive(Debug, Clone, PartialEq)]
pub enum Expect {
    /// Classified, with P(pneumonia) within 0.05 of the plain JPEG's; `ood` as given.
    Same,
    /// Classified and flagged as not looking like a chest X-ray.
    Ood,
    /// Refused with a message containing this text.
    Refused(&'static str),
}

/// One file of the corpus.
pub struct Case {
    /// File name (its extension may lie, on purpose).
    pub name: &'static str,
    /// Contents.
    pub bytes: Vec<u8>,
    /// Expected outcome.
    pub expect: Expect,
}

fn root() -> &'static str {
    env!("CARGO_MANIFEST_DIR")
}

/// The source X-ray's bytes.
pub fn source_bytes() -> Vec<u8> {
    std::fs::read(format!("{}/{SOURCE}", root())).expect("the gallery sample")
}

fn gray8() -> GrayImage {
    image::load_from_memory(&source_bytes())
        .expect("decodes")
        .to_luma8()
}

fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("encodes");
    out.into_inner()
}

fn jpeg(img: &GrayImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(img)
        .expect("jpeg");
    out
}

fn gray16(img: &GrayImage) -> ImageBuffer<Luma<u16>, Vec<u16>> {
    ImageBuffer::from_fn(img.width(), img.height(), |x, y| {
        Luma([u16::from(img.get_pixel(x, y).0[0]) * 257])
    })
}

/// A PNG whose header declares `w`×`h` but which carries almost no data.
fn lying_png(w: u32, h: u32) -> Vec<u8> {
    let mut small = encode(
        &DynamicImage::ImageLuma8(GrayImage::new(64, 64)),
        ImageFormat::Png,
    );
    // IHDR data starts at byte 16: width, height (big endian); fix its CRC.
    small[16..20].copy_from_slice(&w.to_be_bytes());
    small[20..24].copy_from_slice(&h.to_be_bytes());
    let crc = crc32(&small[12..29]);
    small[29..33].copy_from_slice(&crc.to_be_bytes());
    small
}

/// CRC-32 as PNG chunks use it.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A JPEG with an EXIF orientation tag (6: rotate 90° clockwise to display) whose pixels are
/// stored rotated 90° counter-clockwise, so the displayed image is the original.
fn exif_rotated(img: &GrayImage) -> Vec<u8> {
    let stored = image::imageops::rotate270(img);
    let plain = jpeg(&stored, 95);
    // APP1 "Exif\0\0" + little-endian TIFF with one IFD entry: Orientation (0x0112) = 6.
    let mut tiff = Vec::new();
    tiff.extend_from_slice(b"II*\0");
    tiff.extend_from_slice(&8u32.to_le_bytes());
    tiff.extend_from_slice(&1u16.to_le_bytes());
    tiff.extend_from_slice(&0x0112u16.to_le_bytes());
    tiff.extend_from_slice(&3u16.to_le_bytes());
    tiff.extend_from_slice(&1u32.to_le_bytes());
    tiff.extend_from_slice(&6u16.to_le_bytes());
    tiff.extend_from_slice(&0u16.to_le_bytes());
    tiff.extend_from_slice(&0u32.to_le_bytes());
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    let mut out = vec![0xFF, 0xD8, 0xFF, 0xE1];
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&plain[2..]);
    out
}

fn cmyk_jpeg(img: &GrayImage) -> Vec<u8> {
    // Gray as CMYK: only the K channel carries the image (inverted).
    let data: Vec<u8> = img.pixels().flat_map(|p| [0, 0, 0, 255 - p.0[0]]).collect();
    let mut out = Vec::new();
    let enc = jpeg_encoder::Encoder::new(&mut out, 95);
    enc.encode(
        &data,
        img.width() as u16,
        img.height() as u16,
        jpeg_encoder::ColorType::Cmyk,
    )
    .expect("cmyk jpeg");
    out
}

fn progressive_jpeg(img: &GrayImage) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut out, 95);
    enc.set_progressive(true);
    enc.encode(
        img.as_raw(),
        img.width() as u16,
        img.height() as u16,
        jpeg_encoder::ColorType::Luma,
    )
    .expect("progressive jpeg");
    out
}

fn palette_png(img: &GrayImage) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, img.width(), img.height());
        enc.set_color(png::ColorType::Indexed);
        enc.set_depth(png::BitDepth::Eight);
        // A shuffled palette, so that index != intensity.
        let palette: Vec<u8> = (0..=255u8)
            .flat_map(|i| {
                let v = 255 - i;
                [v, v, v]
            })
            .collect();
        enc.set_palette(palette);
        let mut w = enc.write_header().expect("png header");
        let idx: Vec<u8> = img.pixels().map(|p| 255 - p.0[0]).collect();
        w.write_image_data(&idx).expect("png data");
    }
    out
}

// --- A minimal DICOM writer (explicit or implicit VR little endian), independent of the reader.

struct Element {
    group: u16,
    element: u16,
    vr: &'static str,
    value: Vec<u8>,
    undefined_length: bool,
}

fn el(group: u16, element: u16, vr: &'static str, value: &[u8]) -> Element {
    let mut value = value.to_vec();
    if value.len() % 2 == 1 {
        value.push(if vr == "UI" || vr == "OB" { 0 } else { b' ' });
    }
    Element {
        group,
        element,
        vr,
        value,
        undefined_length: false,
    }
}

fn us(group: u16, element: u16, v: u16) -> Element {
    el(group, element, "US", &v.to_le_bytes())
}

fn write_elements(out: &mut Vec<u8>, elements: &[Element], explicit: bool) {
    for e in elements {
        out.extend_from_slice(&e.group.to_le_bytes());
        out.extend_from_slice(&e.element.to_le_bytes());
        let len = if e.undefined_length {
            0xFFFF_FFFF
        } else {
            e.value.len() as u32
        };
        if explicit {
            out.extend_from_slice(e.vr.as_bytes());
            if matches!(e.vr, "OB" | "OW" | "SQ" | "UN" | "UT") {
                out.extend_from_slice(&[0, 0]);
                out.extend_from_slice(&len.to_le_bytes());
            } else {
                out.extend_from_slice(&(len as u16).to_le_bytes());
            }
        } else {
            out.extend_from_slice(&len.to_le_bytes());
        }
        out.extend_from_slice(&e.value);
    }
}

/// Pixel data of a DICOM test file.
pub enum Pixels {
    /// Native, 8 or 16 bits allocated.
    Native(Vec<u8>),
    /// Encapsulated fragments (one frame each).
    Encapsulated(Vec<Vec<u8>>),
}

/// Options of a DICOM test file.
pub struct Dicom {
    pub transfer_syntax: &'static str,
    pub photometric: &'static str,
    pub rows: u16,
    pub cols: u16,
    pub bits_allocated: u16,
    pub bits_stored: u16,
    pub frames: u32,
    pub window: Option<(f64, f64)>,
    pub rescale: Option<(f64, f64)>,
    pub pixels: Pixels,
    pub preamble: bool,
}

/// Writes a DICOM file (a computed radiograph with a made-up patient name, which the app must
/// never show).
pub fn dicom(d: &Dicom) -> Vec<u8> {
    let explicit = d.transfer_syntax != "1.2.840.10008.1.2";
    let sop_class = b"1.2.840.10008.5.1.4.1.1.1";
    let instance = b"2.25.1234567890";
    let mut meta_body = Vec::new();
    write_elements(
        &mut meta_body,
        &[
            el(0x0002, 0x0001, "OB", &[0, 1]),
            el(0x0002, 0x0002, "UI", sop_class),
            el(0x0002, 0x0003, "UI", instance),
            el(0x0002, 0x0010, "UI", d.transfer_syntax.as_bytes()),
        ],
        true,
    );
    let mut out = Vec::new();
    if d.preamble {
        out.extend_from_slice(&[0u8; 128]);
    }
    out.extend_from_slice(b"DICM");
    write_elements(
        &mut out,
        &[el(
            0x0002,
            0x0000,
            "UL",
            &(meta_body.len() as u32).to_le_bytes(),
        )],
        true,
    );
    out.extend_from_slice(&meta_body);

    let mut elements = vec![
        el(0x0008, 0x0016, "UI", sop_class),
        el(0x0008, 0x0018, "UI", instance),
        el(0x0008, 0x0060, "CS", b"CR"),
        el(0x0010, 0x0010, "PN", b"DOE^JANE"),
        el(0x0010, 0x0020, "LO", b"PATIENT-ID-42"),
        el(0x0018, 0x0015, "CS", b"CHEST"),
        el(0x0018, 0x5101, "CS", b"PA"),
        us(0x0028, 0x0002, 1),
        el(0x0028, 0x0004, "CS", d.photometric.as_bytes()),
    ];
    if d.frames > 1 {
        elements.push(el(0x0028, 0x0008, "IS", d.frames.to_string().as_bytes()));
    }
    elements.extend([
        us(0x0028, 0x0010, d.rows),
        us(0x0028, 0x0011, d.cols),
        us(0x0028, 0x0100, d.bits_allocated),
        us(0x0028, 0x0101, d.bits_stored),
        us(0x0028, 0x0102, d.bits_stored - 1),
        us(0x0028, 0x0103, 0),
    ]);
    if let Some((c, w)) = d.window {
        elements.push(el(0x0028, 0x1050, "DS", c.to_string().as_bytes()));
        elements.push(el(0x0028, 0x1051, "DS", w.to_string().as_bytes()));
    }
    if let Some((intercept, slope)) = d.rescale {
        elements.push(el(0x0028, 0x1052, "DS", intercept.to_string().as_bytes()));
        elements.push(el(0x0028, 0x1053, "DS", slope.to_string().as_bytes()));
    }
    match &d.pixels {
        Pixels::Native(bytes) => elements.push(el(
            0x7FE0,
            0x0010,
            if d.bits_allocated > 8 { "OW" } else { "OB" },
            bytes,
        )),
        Pixels::Encapsulated(frames) => {
            let mut value = Vec::new();
            // Empty basic offset table, then one item per frame, then the delimiter.
            value.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0, 0, 0, 0]);
            for f in frames {
                let mut f = f.clone();
                if f.len() % 2 == 1 {
                    f.push(0);
                }
                value.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0]);
                value.extend_from_slice(&(f.len() as u32).to_le_bytes());
                value.extend_from_slice(&f);
            }
            value.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
            elements.push(Element {
                group: 0x7FE0,
                element: 0x0010,
                vr: "OB",
                value,
                undefined_length: true,
            });
        }
    }
    write_elements(&mut out, &elements, explicit);
    out
}

/// RLE lossless encoding of one frame (byte planes, most significant first, as literal runs).
pub fn rle(samples: &[u16], bytes_per_sample: usize) -> Vec<u8> {
    let planes: Vec<Vec<u8>> = (0..bytes_per_sample)
        .rev()
        .map(|b| samples.iter().map(|&s| (s >> (8 * b)) as u8).collect())
        .collect();
    let mut segments = Vec::new();
    for plane in planes {
        let mut seg = Vec::new();
        for chunk in plane.chunks(128) {
            seg.push((chunk.len() - 1) as u8);
            seg.extend_from_slice(chunk);
        }
        if seg.len() % 2 == 1 {
            seg.push(0);
        }
        segments.push(seg);
    }
    let mut header = vec![0u8; 64];
    header[0..4].copy_from_slice(&(segments.len() as u32).to_le_bytes());
    let mut offset = 64u32;
    for (i, s) in segments.iter().enumerate() {
        header[4 + 4 * i..8 + 4 * i].copy_from_slice(&offset.to_le_bytes());
        offset += s.len() as u32;
    }
    let mut out = header;
    for s in segments {
        out.extend(s);
    }
    out
}

const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";

/// 12-bit samples (0..4095) of the source, stored as `value = (pixel − intercept) / slope`.
fn twelve_bit(img: &GrayImage) -> Vec<u16> {
    img.pixels()
        .map(|p| (u32::from(p.0[0]) * 4095 / 255) as u16)
        .collect()
}

fn le16(samples: &[u16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

fn base_dicom(img: &GrayImage) -> Dicom {
    let samples = twelve_bit(img);
    Dicom {
        transfer_syntax: EXPLICIT_LE,
        photometric: "MONOCHROME2",
        rows: img.height() as u16,
        cols: img.width() as u16,
        bits_allocated: 16,
        bits_stored: 12,
        frames: 1,
        window: Some((2047.5, 4096.0)),
        rescale: None,
        pixels: Pixels::Native(le16(&samples)),
        preamble: true,
    }
}

/// Writes `cases` into `dir` (created if needed); returns their paths, in order.
/// Writes the corpus' first DICOM that classifies into `dir`; returns its path.
pub fn write_classified_dicom(dir: &std::path::Path) -> std::path::PathBuf {
    let cases = cases();
    let dicom = cases
        .iter()
        .find(|c| {
            c.bytes.get(128..132) == Some(b"DICM".as_slice()) && matches!(c.expect, Expect::Same)
        })
        .expect("the corpus has a DICOM that classifies");
    write(&[dicom], dir)[0].clone().into()
}

/// Writes `xray` scaled up to 6000 × 5000 (30 megapixels, 8-bit gray) as
/// `dir/thirty-megapixels.png`, unless it is there; returns its path.
pub fn write_thirty_megapixel_png(
    xray: impl AsRef<std::path::Path>,
    dir: &std::path::Path,
) -> std::path::PathBuf {
    let path = dir.join("thirty-megapixels.png");
    if !path.exists() {
        let gray = image::open(xray).unwrap().into_luma8();
        image::imageops::resize(&gray, 6000, 5000, image::imageops::FilterType::Triangle)
            .save(&path)
            .unwrap();
    }
    path
}

pub fn write(cases: &[&Case], dir: &std::path::Path) -> Vec<String> {
    std::fs::create_dir_all(dir).expect("corpus folder");
    cases
        .iter()
        .map(|c| {
            let p = dir.join(c.name);
            std::fs::write(&p, &c.bytes).expect("corpus file");
            p.display().to_string()
        })
        .collect()
}

/// Every case, in a stable order.
pub fn cases() -> Vec<Case> {
    let img = gray8();
    let dynamic = DynamicImage::ImageLuma8(img.clone());
    let (w, h) = img.dimensions();
    let samples = twelve_bit(&img);
    let mut cases = vec![
        Case {
            name: "plain.jpeg",
            bytes: source_bytes(),
            expect: Expect::Same,
        },
        Case {
            name: "gray16.png",
            bytes: encode(&DynamicImage::ImageLuma16(gray16(&img)), ImageFormat::Png),
            expect: Expect::Same,
        },
        Case {
            name: "rgba.png",
            bytes: encode(
                &DynamicImage::ImageRgba8(RgbaImage::from_fn(w, h, |x, y| {
                    let v = img.get_pixel(x, y).0[0];
                    Rgba([v, v, v, 255])
                })),
                ImageFormat::Png,
            ),
            expect: Expect::Same,
        },
        Case {
            name: "palette.png",
            bytes: palette_png(&img),
            expect: Expect::Same,
        },
        Case {
            name: "cmyk.jpg",
            bytes: cmyk_jpeg(&img),
            expect: Expect::Same,
        },
        Case {
            name: "progressive.jpg",
            bytes: progressive_jpeg(&img),
            expect: Expect::Same,
        },
        Case {
            name: "lossless.webp",
            bytes: encode(&DynamicImage::ImageRgb8(dynamic.to_rgb8()), ImageFormat::WebP),
            expect: Expect::Same,
        },
        Case {
            name: "image.bmp",
            bytes: encode(&dynamic, ImageFormat::Bmp),
            expect: Expect::Same,
        },
        Case {
            name: "gray16.tiff",
            bytes: encode(&DynamicImage::ImageLuma16(gray16(&img)), ImageFormat::Tiff),
            expect: Expect::Same,
        },
        Case {
            name: "image.gif",
            bytes: encode(&DynamicImage::ImageRgba8(dynamic.to_rgba8()), ImageFormat::Gif),
            expect: Expect::Same,
        },
        Case {
            name: "jpeg-named.png",
            bytes: source_bytes(),
            expect: Expect::Same,
        },
        Case {
            name: "no-extension",
            bytes: encode(&dynamic, ImageFormat::Png),
            expect: Expect::Same,
        },
        Case {
            name: "exif-rotated.jpg",
            bytes: exif_rotated(&img),
            expect: Expect::Same,
        },
        Case {
            name: "mono2-12bit.dcm",
            bytes: dicom(&base_dicom(&img)),
            expect: Expect::Same,
        },
        Case {
            name: "mono1-12bit.dcm",
            bytes: dicom(&Dicom {
                photometric: "MONOCHROME1",
                pixels: Pixels::Native(le16(
                    &samples.iter().map(|&s| 4095 - s).collect::<Vec<_>>(),
                )),
                ..base_dicom(&img)
            }),
            expect: Expect::Same,
        },
        Case {
            name: "mono2-8bit-implicit.dcm",
            bytes: dicom(&Dicom {
                transfer_syntax: "1.2.840.10008.1.2",
                bits_allocated: 8,
                bits_stored: 8,
                window: None,
                pixels: Pixels::Native(img.as_raw().clone()),
                ..base_dicom(&img)
            }),
            expect: Expect::Same,
        },
        Case {
            name: "rescaled-windowed.dcm",
            // Stored values v map to 2·v − 1000 (CT-like units); the window covers the image.
            bytes: dicom(&Dicom {
                rescale: Some((-1000.0, 2.0)),
                window: Some((3095.0, 8191.0)),
                ..base_dicom(&img)
            }),
            expect: Expect::Same,
        },
        Case {
            name: "rle.dcm",
            bytes: dicom(&Dicom {
                transfer_syntax: "1.2.840.10008.1.2.5",
                pixels: Pixels::Encapsulated(vec![rle(&samples, 2)]),
                ..base_dicom(&img)
            }),
            expect: Expect::Same,
        },
        Case {
            name: "jpeg-baseline.dcm",
            bytes: dicom(&Dicom {
                transfer_syntax: "1.2.840.10008.1.2.4.50",
                bits_allocated: 8,
                bits_stored: 8,
                window: None,
                pixels: Pixels::Encapsulated(vec![jpeg(&img, 95)]),
                ..base_dicom(&img)
            }),
            expect: Expect::Same,
        },
        Case {
            name: "multiframe.dcm",
            bytes: dicom(&Dicom {
                frames: 2,
                pixels: Pixels::Native({
                    let mut two = le16(&samples);
                    two.extend(vec![0u8; samples.len() * 2]);
                    two
                }),
                ..base_dicom(&img)
            }),
            expect: Expect::Same,
        },
        Case {
            name: "dicom-without-extension",
            bytes: dicom(&base_dicom(&img)),
            expect: Expect::Same,
        },
        Case {
            name: "colour-photo.png",
            bytes: encode(
                &DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| {
                    let v = img.get_pixel(x, y).0[0];
                    Rgb([v, (x * 255 / w) as u8, (y * 255 / h) as u8])
                })),
                ImageFormat::Png,
            ),
            expect: Expect::Ood,
        },
        Case {
            name: "blank.png",
            bytes: encode(
                &DynamicImage::ImageLuma8(GrayImage::from_pixel(512, 512, Luma([128]))),
                ImageFormat::Png,
            ),
            expect: Expect::Ood,
        },
        Case {
            name: "noise.png",
            bytes: {
                let mut state = 12345u32;
                encode(
                    &DynamicImage::ImageLuma8(GrayImage::from_fn(512, 512, |_, _| {
                        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                        Luma([(state >> 24) as u8])
                    })),
                    ImageFormat::Png,
                )
            },
            expect: Expect::Ood,
        },
        // Refusals.
        Case {
            name: "empty.png",
            bytes: Vec::new(),
            expect: Expect::Refused("empty"),
        },
        Case {
            name: "truncated.jpeg",
            bytes: {
                let b = source_bytes();
                b[..b.len() / 2].to_vec()
            },
            expect: Expect::Refused("damaged or truncated"),
        },
        // Containers whose declared lengths exceed the file (checked before a decoder sizes a
        // buffer by them).
        Case {
            name: "webp-exif-1gb.webp",
            bytes: {
                let mut b = encode(&dynamic, ImageFormat::WebP);
                b.extend_from_slice(b"EXIF");
                b.extend_from_slice(&0x4000_0000u32.to_le_bytes());
                let riff = (b.len() - 8) as u32;
                b[4..8].copy_from_slice(&riff.to_le_bytes());
                b
            },
            expect: Expect::Refused("the EXIF chunk declares 1073741824 bytes"),
        },
        Case {
            name: "png-iccp-2gb.png",
            bytes: {
                let b = encode(&dynamic, ImageFormat::Png);
                // An iCCP chunk claiming 2 GB, right after IHDR.
                let at = 8 + 12 + 13;
                let mut out = b[..at].to_vec();
                out.extend_from_slice(&0x7FFF_FFF0u32.to_be_bytes());
                out.extend_from_slice(b"iCCP");
                out.extend_from_slice(b"icc\0\0");
                out.extend_from_slice(&b[at..]);
                out
            },
            expect: Expect::Refused("the iCCP chunk declares"),
        },
        Case {
            name: "tiff-tag-4g-values.tiff",
            bytes: {
                let mut b = encode(&dynamic, ImageFormat::Tiff);
                // The first directory entry's count: 4 G values, at an offset inside the file.
                let le = b[0] == b'I';
                let word = |b: &[u8], at: usize| {
                    let w = [b[at], b[at + 1], b[at + 2], b[at + 3]];
                    if le { u32::from_le_bytes(w) } else { u32::from_be_bytes(w) }
                };
                let ifd = word(&b, 4) as usize;
                let count = ifd + 2 + 4;
                let many = if le { u32::MAX.to_le_bytes() } else { u32::MAX.to_be_bytes() };
                b[count..count + 4].copy_from_slice(&many);
                b
            },
            expect: Expect::Refused("declares"),
        },
        Case {
            name: "truncated.png",
            bytes: {
                let b = encode(&dynamic, ImageFormat::Png);
                b[..b.len() / 2].to_vec()
            },
            expect: Expect::Refused("damaged or truncated"),
        },
        Case {
            name: "truncated.dcm",
            bytes: {
                let b = dicom(&base_dicom(&img));
                b[..b.len() / 2].to_vec()
            },
            expect: Expect::Refused("DICOM file is damaged or truncated"),
        },
        Case {
            name: "random.bin",
            bytes: (0..4096u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect(),
            expect: Expect::Refused("not a supported image"),
        },
        Case {
            name: "notes.png",
            bytes: b"These are my notes, not an image.".to_vec(),
            expect: Expect::Refused("not a supported image"),
        },
        Case {
            name: "report.pdf",
            bytes: b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n".to_vec(),
            expect: Expect::Refused("PDF"),
        },
        Case {
            name: "drawing.svg",
            bytes: br#"<svg xmlns="http://www.w3.org/2000/svg" width="512" height="512"><rect width="512" height="512"/></svg>"#.to_vec(),
            expect: Expect::Refused("not a supported image"),
        },
        Case {
            name: "lying-header.png",
            bytes: lying_png(100_000, 100_000),
            expect: Expect::Refused("too large"),
        },
        Case {
            name: "bomb.png",
            // 64 megapixels of zeros: a few tens of kB that would decode to 64 MB.
            bytes: encode(
                &DynamicImage::ImageLuma8(GrayImage::new(8000, 8000)),
                ImageFormat::Png,
            ),
            expect: Expect::Refused("too large"),
        },
        Case {
            name: "one-pixel.png",
            bytes: encode(
                &DynamicImage::ImageLuma8(GrayImage::new(1, 1)),
                ImageFormat::Png,
            ),
            expect: Expect::Refused("too small"),
        },
        Case {
            name: "jpeg2000.dcm",
            bytes: dicom(&Dicom {
                transfer_syntax: "1.2.840.10008.1.2.4.90",
                pixels: Pixels::Encapsulated(vec![vec![0xFF, 0x4F, 0xFF, 0x51, 0, 0]]),
                ..base_dicom(&img)
            }),
            expect: Expect::Refused("JPEG 2000"),
        },
    ];
    cases.extend(nested_length_lies(&cases));
    cases.sort_by_key(|c| matches!(c.expect, Expect::Refused(_)));
    cases
}

/// Where a DICOM's data set starts: the first element after the meta group (group 0002).
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

/// `bytes` with `element` inserted at the start of the data set.
fn with_inserted(mut bytes: Vec<u8>, element: &[u8]) -> Vec<u8> {
    let at = data_set_start(&bytes);
    bytes.splice(at..at, element.iter().copied());
    bytes
}

/// A sequence (0008,1140) of defined length holding one item of defined length around
/// `inner`; explicit VR (`SQ`) or implicit.
pub fn sequence(inner: &[u8], explicit: bool) -> Vec<u8> {
    let item_len = inner.len() as u32;
    let mut el = vec![0x08, 0x00, 0x40, 0x11];
    if explicit {
        el.extend_from_slice(&[b'S', b'Q', 0, 0]);
    }
    el.extend_from_slice(&(item_len + 8).to_le_bytes());
    el.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0]);
    el.extend_from_slice(&item_len.to_le_bytes());
    el.extend_from_slice(inner);
    el
}

/// A private element (0009,1010) whose header (explicit VR `vr`, or implicit) declares 2 GB,
/// followed by 16 bytes.
fn claims_2gb(vr: Option<&[u8; 2]>) -> Vec<u8> {
    let mut el = vec![0x09, 0x00, 0x10, 0x10];
    if let Some(vr) = vr {
        el.extend_from_slice(&[vr[0], vr[1], 0, 0]);
    }
    el.extend_from_slice(&0x7FF0_0000u32.to_le_bytes());
    el.extend_from_slice(&[0; 16]);
    el
}

/// DICOMs whose sequences, items and own lengths fit the file but an element inside, or one
/// with a VR the standard does not know, claims 2 GB: dicom-parser reserved it before failing
/// (2.1 GB for the first; the memory-budget issue's finding).
fn nested_length_lies(cases: &[Case]) -> Vec<Case> {
    let bytes_of = |name: &str| {
        cases
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.bytes.clone())
            .expect("a corpus DICOM")
    };
    let explicit = bytes_of("mono2-12bit.dcm");
    let implicit = bytes_of("mono2-8bit-implicit.dcm");
    vec![
        Case {
            name: "sequence-item-2gb.dcm",
            bytes: with_inserted(explicit.clone(), &sequence(&claims_2gb(Some(b"OB")), true)),
            expect: Expect::Refused("damaged"),
        },
        Case {
            name: "unknown-vr-2gb.dcm",
            bytes: with_inserted(explicit.clone(), &claims_2gb(Some(b"XX"))),
            expect: Expect::Refused("damaged"),
        },
        Case {
            name: "implicit-sequence-2gb.dcm",
            bytes: with_inserted(implicit, &sequence(&claims_2gb(None), false)),
            expect: Expect::Refused("damaged"),
        },
        Case {
            name: "with-a-sequence.dcm",
            bytes: with_inserted(
                explicit,
                &sequence(
                    &[
                        0x08, 0x00, 0x50, 0x11, b'U', b'I', 4, 0, b'1', b'.', b'2', 0,
                    ],
                    true,
                ),
            ),
            expect: Expect::Same,
        },
    ]
}
