//! DICOM input, read with the pure-Rust dicom-rs crates (which build for wasm32): the first
//! frame of the pixel data as 16-bit gray, after the modality LUT (rescale slope/intercept), the
//! VOI window (centre/width; without one, the 0.1–99.9 % range of the values) and MONOCHROME1
//! inversion, plus the few attributes that say what the image is. Patient identifiers are never
//! read out of the object.
//!
//! Transfer syntaxes: implicit and explicit VR little endian, explicit VR big endian, deflated,
//! RLE lossless and JPEG baseline, extended and lossless. JPEG 2000 and JPEG-LS
//! need C libraries and are refused with a message.

use std::io::Cursor;

use dicom_dictionary_std::tags;
use dicom_object::{OpenFileOptions, file::ReadPreamble};
use dicom_pixeldata::PixelDecoder;
use serde::{Deserialize, Serialize};

use super::input::{Gray16, InputError, check_size};

/// What a DICOM file says about its image; nothing that identifies a patient.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DicomInfo {
    /// Modality (CR, DX, CT, …).
    pub modality: Option<String>,
    /// Body part examined (CHEST, …).
    pub body_part: Option<String>,
    /// View position (PA, AP, LL, …).
    pub view_position: Option<String>,
    /// MONOCHROME1, MONOCHROME2, RGB, …
    pub photometric: String,
    /// Bits stored per sample.
    pub bits_stored: u16,
    /// Frames in the file (only the first is used).
    pub frames: u32,
    /// Name of the transfer syntax.
    pub transfer_syntax: String,
    /// Whether a window centre/width from the file was applied.
    pub windowed: bool,
}

impl DicomInfo {
    /// A one-line summary for the page and the CLI.
    pub fn summary(&self) -> String {
        let or = |v: &Option<String>| v.clone().unwrap_or_else(|| "?".into());
        format!(
            "DICOM: modality {}, body part {}, view {}, {} {}-bit{}{}",
            or(&self.modality),
            or(&self.body_part),
            or(&self.view_position),
            self.photometric,
            self.bits_stored,
            if self.frames > 1 {
                format!(", first of {} frames", self.frames)
            } else {
                String::new()
            },
            if self.windowed {
                ", window from the file"
            } else {
                ""
            }
        )
    }
}

/// Whether `bytes` start like a DICOM file: `DICM` after the 128-byte preamble, or at the start
/// when the preamble was stripped.
pub fn is_dicom(bytes: &[u8]) -> bool {
    bytes.get(128..132) == Some(b"DICM") || bytes.get(0..4) == Some(b"DICM")
}

fn damaged(e: impl std::fmt::Display) -> InputError {
    InputError::DicomDamaged(e.to_string())
}

/// The file from its `DICM` magic on: after the 128-byte preamble, or from the start when the
/// preamble was stripped (the reader expects the magic first).
fn body(bytes: &[u8]) -> Result<&[u8], InputError> {
    if bytes.get(0..4) == Some(b"DICM") {
        Ok(bytes)
    } else {
        bytes
            .get(128..)
            .ok_or(InputError::DicomDamaged("too short".into()))
    }
}

/// Decodes the first frame of a DICOM file to 16-bit gray (white = dense, as in MONOCHROME2).
pub fn decode(bytes: &[u8]) -> Result<(Gray16, DicomInfo), InputError> {
    let body = body(bytes)?;
    let native = check_lengths(body)?;
    // An uncompressed file is read up to its pixel data only: the samples are read from
    // `bytes` in place (see `native_gray`), not copied into the object first.
    let mut options = OpenFileOptions::new().read_preamble(ReadPreamble::Never);
    if native.is_some() {
        options = options.read_until(tags::PIXEL_DATA);
    }
    let obj = options.from_reader(Cursor::new(body)).map_err(damaged)?;
    let text = |tag| {
        obj.element(tag)
            .ok()
            .and_then(|e| e.to_str().ok())
            .map(|s| s.trim().trim_end_matches('\0').to_string())
            .filter(|s| !s.is_empty())
    };
    let int = |tag| obj.element(tag).ok().and_then(|e| e.to_int::<u32>().ok());
    let ts_uid = obj
        .meta()
        .transfer_syntax()
        .trim_end_matches('\0')
        .to_string();
    let transfer_syntax = transfer_syntax_name(&ts_uid);
    if native.is_none() && obj.element(tags::PIXEL_DATA).is_err() {
        return Err(InputError::DicomNoImage);
    }
    let (rows, cols) = (
        int(tags::ROWS).unwrap_or(0),
        int(tags::COLUMNS).unwrap_or(0),
    );
    if rows == 0 || cols == 0 {
        return Err(damaged("no Rows or Columns"));
    }
    check_size(cols, rows)?;
    let mut info = DicomInfo {
        modality: text(tags::MODALITY),
        body_part: text(tags::BODY_PART_EXAMINED),
        view_position: text(tags::VIEW_POSITION),
        photometric: text(tags::PHOTOMETRIC_INTERPRETATION).unwrap_or_default(),
        bits_stored: int(tags::BITS_STORED).unwrap_or(0) as u16,
        frames: int(tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1),
        transfer_syntax,
        windowed: false,
    };
    if let Some(at) = native {
        let data = &body[at.start..at.start + at.len];
        if let Some(image) = native_gray(&obj, data, (rows, cols), &mut info)? {
            return Ok((image, info));
        }
        // Another kind of uncompressed image (colour, 32-bit, per-frame functional groups):
        // read the whole file, pixel data included, and let dicom-pixeldata decode it.
        let whole = OpenFileOptions::new()
            .read_preamble(ReadPreamble::Never)
            .from_reader(Cursor::new(body))
            .map_err(damaged)?;
        return pixeldata_gray(&whole, &ts_uid, (rows, cols), info, true);
    }
    pixeldata_gray(&obj, &ts_uid, (rows, cols), info, true)
}

/// The same decoding with dicom-pixeldata's own conversion for every file (the whole file is
/// parsed into memory first, and every sample converted to f32): what `decode` did before it
/// mapped samples in place, kept so that the tests can check the two agree.
#[doc(hidden)]
pub fn decode_with_pixeldata(bytes: &[u8]) -> Result<Gray16, InputError> {
    let body = body(bytes)?;
    check_lengths(body)?;
    let obj = OpenFileOptions::new()
        .read_preamble(ReadPreamble::Never)
        .from_reader(Cursor::new(body))
        .map_err(damaged)?;
    let int = |tag| obj.element(tag).ok().and_then(|e| e.to_int::<u32>().ok());
    let (rows, cols) = (
        int(tags::ROWS).unwrap_or(0),
        int(tags::COLUMNS).unwrap_or(0),
    );
    let info = DicomInfo {
        photometric: obj
            .element(tags::PHOTOMETRIC_INTERPRETATION)
            .ok()
            .and_then(|e| e.to_str().ok())
            .map(|s| s.trim().trim_end_matches('\0').to_string())
            .unwrap_or_default(),
        ..DicomInfo::default()
    };
    let ts = obj
        .meta()
        .transfer_syntax()
        .trim_end_matches('\0')
        .to_string();
    pixeldata_gray(&obj, &ts, (rows, cols), info, false).map(|(g, _)| g)
}

type Object = dicom_object::FileDicomObject<dicom_object::InMemDicomObject>;

/// Decodes the first frame with dicom-pixeldata (every transfer syntax it has a pure-Rust
/// decoder for).
fn pixeldata_gray(
    obj: &Object,
    ts_uid: &str,
    (rows, cols): (u32, u32),
    mut info: DicomInfo,
    in_place: bool,
) -> Result<(Gray16, DicomInfo), InputError> {
    let int = |tag| obj.element(tag).ok().and_then(|e| e.to_int::<u32>().ok());
    if obj.element(tags::PIXEL_DATA).is_err() {
        return Err(InputError::DicomNoImage);
    }
    let bits_stored = int(tags::BITS_STORED).unwrap_or(0);
    let bits_allocated = int(tags::BITS_ALLOCATED).unwrap_or(0);
    // dicom-pixeldata asserts (panics) on these.
    if bits_stored == 0 || bits_stored > bits_allocated.max(1) || bits_allocated > 32 {
        return Err(damaged(format!(
            "{bits_stored} bits stored in {bits_allocated} allocated"
        )));
    }
    if ts_uid == "1.2.840.10008.1.2.5" {
        let fragment = obj
            .element(tags::PIXEL_DATA)
            .ok()
            .and_then(|e| e.value().fragments().and_then(|f| f.first().cloned()))
            .ok_or_else(|| damaged("RLE pixel data without fragments"))?;
        let bytes_per_sample = int(tags::BITS_ALLOCATED).unwrap_or(0).div_ceil(8);
        let spp = int(tags::SAMPLES_PER_PIXEL).unwrap_or(1);
        check_rle(
            &fragment,
            bytes_per_sample * spp,
            rows as usize * cols as usize,
        )?;
    }
    // The decoded frame and the result, at the most (the samples are mapped in place).
    let spp_bytes =
        u64::from(bits_allocated.div_ceil(8) * int(tags::SAMPLES_PER_PIXEL).unwrap_or(1));
    let pixels = u64::from(rows) * u64::from(cols);
    let need = pixels * spp_bytes + pixels * 2;
    let budget = super::input::decode_budget(cols, rows) as u64;
    if need > budget {
        return Err(InputError::OverBudget {
            kind: format!("{} DICOM", info.transfer_syntax),
            width: cols,
            height: rows,
            need_mb: (need / 1_000_000) as usize,
            budget_mb: (budget / 1_000_000) as usize,
        });
    }
    // Only the first frame is decoded, whatever the number of frames claims.
    let decoded = obj.decode_pixel_data_frame(0).map_err(|e| {
        let msg = e.to_string();
        if msg.to_ascii_lowercase().contains("unsupported")
            || msg.to_ascii_lowercase().contains("not supported")
            || msg.to_ascii_lowercase().contains("missing")
                && msg.to_ascii_lowercase().contains("decoder")
        {
            InputError::DicomCompression(info.transfer_syntax.clone())
        } else {
            damaged(msg)
        }
    })?;
    let (w, h) = (decoded.columns(), decoded.rows());
    if in_place
        && (w, h) == (cols, rows)
        && let Ok(frame) = decoded.frame_data(0)
        && let Some(image) = native_gray(obj, frame, (rows, cols), &mut info)?
    {
        return Ok((image, info));
    }
    let spp = usize::from(decoded.samples_per_pixel().max(1));
    let values: Vec<f32> = decoded.to_vec_frame::<f32>(0).map_err(damaged)?;
    let n = (w as usize) * (h as usize);
    if w == 0 || h == 0 || values.len() < n * spp {
        return Err(damaged("the pixel data is shorter than the image size"));
    }
    let gray: Vec<f32> = if spp == 1 {
        let mut values = values;
        values.truncate(n);
        values
    } else {
        values
            .chunks_exact(spp)
            .take(n)
            .map(|p| p.iter().take(3).sum::<f32>() / spp.min(3) as f32)
            .collect()
    };
    let window = decoded
        .window()
        .ok()
        .flatten()
        .and_then(|w| w.first().copied())
        .filter(|w| w.width > 1.0);
    let (lo, hi) = match window {
        Some(win) if spp == 1 => {
            info.windowed = true;
            let half = (win.width - 1.0) / 2.0;
            (
                (win.center - 0.5 - half) as f32,
                (win.center - 0.5 + half) as f32,
            )
        }
        _ => percentiles(&gray, 0.001, 0.999),
    };
    let to_u16 = to_u16(lo, hi, info.photometric == "MONOCHROME1");
    let pixels: Vec<u16> = gray.iter().map(|&v| to_u16(v)).collect();
    let image = Gray16::from_raw(w, h, pixels).ok_or_else(|| damaged("bad image size"))?;
    Ok((image, info))
}

/// The map from a value to the 16-bit result: `lo`..`hi` stretched over the range, inverted
/// for MONOCHROME1.
fn to_u16(lo: f32, hi: f32, invert: bool) -> impl Fn(f32) -> u16 {
    let span = (hi - lo).max(f32::EPSILON);
    move |v| {
        let u = ((v - lo) / span).clamp(0.0, 1.0);
        let u = if invert { 1.0 - u } else { u };
        (u * 65_535.0).round() as u16
    }
}

/// Decodes an uncompressed little-endian monochrome frame of 8- or 16-bit samples straight
/// from the file's bytes, as dicom-pixeldata would (its modality LUT over the stored bits,
/// then the file's window or the 0.1–99.9 % percentiles), with one allocation: the result.
/// `None` for an image of another kind.
fn native_gray(
    obj: &Object,
    data: &[u8],
    (rows, cols): (u32, u32),
    info: &mut DicomInfo,
) -> Result<Option<Gray16>, InputError> {
    use dicom_pixeldata::{Lut, Rescale};
    let int = |tag| obj.element(tag).ok().and_then(|e| e.to_int::<u32>().ok());
    let float = |tag| {
        obj.element(tag)
            .ok()
            .and_then(|e| e.to_float64().ok())
            .filter(|v| v.is_finite())
    };
    let bits_allocated = int(tags::BITS_ALLOCATED).unwrap_or(0);
    let spp = int(tags::SAMPLES_PER_PIXEL).unwrap_or(1);
    let monochrome = matches!(info.photometric.as_str(), "MONOCHROME1" | "MONOCHROME2");
    let functional_groups = obj.element(tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE).is_ok()
        || obj
            .element(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE)
            .is_ok();
    if spp != 1 || !monochrome || functional_groups || !matches!(bits_allocated, 8 | 16) {
        return Ok(None);
    }
    let bits_stored = int(tags::BITS_STORED).unwrap_or(bits_allocated);
    if bits_stored == 0 || bits_stored > bits_allocated {
        return Err(damaged(format!(
            "{bits_stored} bits stored in {bits_allocated} allocated"
        )));
    }
    let n = rows as usize * cols as usize;
    let bytes = bits_allocated as usize / 8;
    let data = data
        .get(..n * bytes)
        .ok_or_else(|| damaged("the pixel data is shorter than the image size"))?;
    let signed = int(tags::PIXEL_REPRESENTATION) == Some(1);
    let rescale = Rescale::new(
        float(tags::RESCALE_SLOPE).unwrap_or(1.0),
        float(tags::RESCALE_INTERCEPT).unwrap_or(0.0),
    );
    // As dicom-pixeldata builds it: over 8 bits for 8-bit samples, the stored bits for 16.
    let lut_bits = if bits_allocated == 8 { 8 } else { bits_stored };
    let lut: Lut<f32> = Lut::new_rescale(lut_bits as u16, signed, rescale).map_err(damaged)?;
    let mask = (1u32 << lut_bits) - 1;
    let sample = |i: usize| -> u32 {
        if bytes == 1 {
            u32::from(data[i])
        } else {
            u32::from(u16::from_le_bytes([data[2 * i], data[2 * i + 1]]))
        }
    };
    let value = |s: u32| lut.get(s);
    let window = float(tags::WINDOW_CENTER)
        .zip(float(tags::WINDOW_WIDTH))
        .filter(|&(_, width)| width > 1.0);
    let (lo, hi) = match window {
        Some((center, width)) => {
            info.windowed = true;
            let half = (width - 1.0) / 2.0;
            ((center - 0.5 - half) as f32, (center - 0.5 + half) as f32)
        }
        None => {
            // The exact percentiles of the values, from a histogram of the samples (at most
            // 2^16 of them distinct).
            let mut counts = vec![0u32; mask as usize + 1];
            for i in 0..n {
                counts[(sample(i) & mask) as usize] += 1;
            }
            let mut present: Vec<(f32, u32)> = counts
                .iter()
                .enumerate()
                .filter(|&(_, &c)| c > 0)
                .map(|(s, &c)| (value(s as u32), c))
                .filter(|(v, _)| v.is_finite())
                .collect();
            present.sort_by(|a, b| a.0.total_cmp(&b.0));
            let total: u64 = present.iter().map(|&(_, c)| u64::from(c)).sum();
            if total == 0 {
                (0.0, 1.0)
            } else {
                let at = |q: f64| {
                    let rank = ((total - 1) as f64 * q).round() as u64;
                    let mut seen = 0u64;
                    for &(v, c) in &present {
                        seen += u64::from(c);
                        if seen > rank {
                            return v;
                        }
                    }
                    present[present.len() - 1].0
                };
                (at(0.001), at(0.999))
            }
        }
    };
    let to_u16 = to_u16(lo, hi, info.photometric == "MONOCHROME1");
    let table: Vec<u16> = (0..=mask).map(|s| to_u16(value(s))).collect();
    let pixels: Vec<u16> = (0..n).map(|i| table[(sample(i) & mask) as usize]).collect();
    Gray16::from_raw(cols, rows, pixels)
        .map(Some)
        .ok_or_else(|| damaged("bad image size"))
}

/// The `lo` and `hi` quantiles of `values` (finite ones).
fn percentiles(values: &[f32], lo: f64, hi: f64) -> (f32, f32) {
    let mut v: Vec<f32> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return (0.0, 1.0);
    }
    v.sort_by(f32::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (at(lo), at(hi))
}

/// A readable name for the common transfer syntaxes.
fn transfer_syntax_name(uid: &str) -> String {
    match uid {
        "1.2.840.10008.1.2" => "implicit VR little endian",
        "1.2.840.10008.1.2.1" => "explicit VR little endian",
        "1.2.840.10008.1.2.1.99" => "deflated explicit VR little endian",
        "1.2.840.10008.1.2.2" => "explicit VR big endian",
        "1.2.840.10008.1.2.5" => "RLE lossless",
        "1.2.840.10008.1.2.4.50" => "JPEG baseline",
        "1.2.840.10008.1.2.4.51" => "JPEG extended",
        "1.2.840.10008.1.2.4.57" | "1.2.840.10008.1.2.4.70" => "JPEG lossless",
        "1.2.840.10008.1.2.4.80" | "1.2.840.10008.1.2.4.81" => "JPEG-LS",
        "1.2.840.10008.1.2.4.90" | "1.2.840.10008.1.2.4.91" => "JPEG 2000",
        other => return other.to_string(),
    }
    .to_string()
}

/// Whether explicit VR `vr` has a 2-byte length. The rule is the parser's (dicom-encoding's
/// explicit VR decoders): these 21 VRs do, every other one (an unknown VR, read as UN,
/// included) has 2 reserved bytes and a 4-byte length.
fn short_length(vr: &[u8]) -> bool {
    matches!(
        vr,
        b"AE"
            | b"AS"
            | b"AT"
            | b"CS"
            | b"DA"
            | b"DS"
            | b"DT"
            | b"FL"
            | b"FD"
            | b"IS"
            | b"LO"
            | b"LT"
            | b"PN"
            | b"SH"
            | b"SL"
            | b"SS"
            | b"ST"
            | b"TM"
            | b"UI"
            | b"UL"
            | b"US"
    )
}

/// Whether the parser reads the value of `(group, element)` as a sequence of items. In
/// explicit VR the file says (SQ; UN of undefined length is one too); in implicit VR the
/// parser asks the standard dictionary, as this does.
fn is_sequence(group: u16, element: u16, vr: Option<&[u8]>, undefined: bool) -> bool {
    use dicom_core::{
        Tag,
        dictionary::{DataDictionary, DataDictionaryEntry},
    };
    match vr {
        Some(vr) => vr == b"SQ" || (vr == b"UN" && undefined),
        None => {
            (group, element) != (0x7FE0, 0x0010)
                && dicom_dictionary_std::StandardDataDictionary
                    .by_tag(Tag(group, element))
                    .is_some_and(|e| e.vr().relaxed() == dicom_core::VR::SQ)
        }
    }
}

/// Walks every element and item header from the start (`DICM`) the way the parser will read
/// them, and refuses the file if one declares more bytes than the file has left or a
/// delimiter declares any. The parser reserves memory for a declared length before reading
/// it, so a few corrupted bytes could otherwise make it claim gigabytes (found by fuzzing).
///
/// It goes inside what the parser goes inside: sequences and their items, of defined length
/// or not, so an element nested in an item is checked like one at the top (a 2 GB OB inside a
/// sequence item got past a walk that skipped items whole). Only the fragments of
/// encapsulated pixel data are skipped unread, as the parser keeps them as bytes.
/// Where the pixel data of an uncompressed little-endian file lies in `body`: the last
/// element (7FE0,0010) of defined length (an icon's, inside a sequence, comes before it).
#[derive(Debug, Clone, Copy, PartialEq)]
struct NativePixels {
    start: usize,
    len: usize,
}

fn check_lengths(body: &[u8]) -> Result<Option<NativePixels>, InputError> {
    let mut native = None;
    let mut pos = 4; // "DICM"
    let mut explicit = true;
    let mut big_endian = false;
    let mut in_meta = true;
    let mut in_fragments = false;
    let mut syntax = String::new();
    while pos + 8 <= body.len() {
        let group_le = u16::from_le_bytes([body[pos], body[pos + 1]]);
        if in_meta && group_le != 0x0002 {
            in_meta = false;
            let ts = syntax.trim_end_matches(['\0', ' ']);
            if ts == "1.2.840.10008.1.2.1.99" {
                return Ok(None); // deflated: the rest is compressed
            }
            explicit = ts != "1.2.840.10008.1.2";
            big_endian = ts == "1.2.840.10008.1.2.2";
        }
        let u16_at = |i: usize| {
            let b = [body[i], body[i + 1]];
            if big_endian && !in_meta {
                u16::from_be_bytes(b)
            } else {
                u16::from_le_bytes(b)
            }
        };
        let u32_at = |i: usize| -> Option<u32> {
            let b: [u8; 4] = body.get(i..i + 4)?.try_into().ok()?;
            Some(if big_endian && !in_meta {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            })
        };
        let (group, element) = (u16_at(pos), u16_at(pos + 2));
        let (len, header, vr) = if group == 0xFFFE {
            (u32_at(pos + 4).unwrap_or(0), 8, None)
        } else if explicit {
            let vr = &body[pos + 4..pos + 6];
            if short_length(vr) {
                (u32::from(u16_at(pos + 6)), 8, Some(vr))
            } else {
                (
                    u32_at(pos + 8).ok_or_else(|| damaged("the file ends inside a header"))?,
                    12,
                    Some(vr),
                )
            }
        } else {
            (u32_at(pos + 4).unwrap_or(0), 8, None)
        };
        let start = pos + header;
        let undefined = len == u32::MAX;
        let fits = |len: u32| undefined || start.saturating_add(len as usize) <= body.len();
        if group == 0xFFFE && element == 0xE000 && (undefined || !in_fragments) {
            // An item of a sequence: its elements follow.
            if !fits(len) {
                return Err(damaged(format!(
                    "an item declares {len} bytes but only {} remain",
                    body.len().saturating_sub(start)
                )));
            }
            pos = start;
            continue;
        } else if group == 0xFFFE && element != 0xE000 {
            // A delimiter.
            if len != 0 {
                return Err(damaged(format!(
                    "a delimiter (FFFE,{element:04X}) declares {len} bytes"
                )));
            }
            if element == 0xE0DD {
                in_fragments = false;
            }
            pos = start;
            continue;
        } else if group != 0xFFFE && is_sequence(group, element, vr, undefined) {
            // Go inside: the items and their elements follow.
            if !fits(len) {
                return Err(damaged(format!(
                    "sequence ({group:04X},{element:04X}) declares {len} bytes but only {} remain",
                    body.len().saturating_sub(start)
                )));
            }
            pos = start;
            continue;
        } else if group != 0xFFFE && undefined {
            // Encapsulated pixel data: fragments until the sequence delimiter.
            in_fragments = true;
            pos = start;
            continue;
        }
        let end = start.saturating_add(len as usize);
        if end > body.len() {
            return Err(damaged(format!(
                "element ({group:04X},{element:04X}) declares {len} bytes but only {} remain",
                body.len().saturating_sub(start)
            )));
        }
        if in_meta && (group, element) == (0x0002, 0x0010) {
            syntax = String::from_utf8_lossy(&body[start..end]).into_owned();
        }
        if !in_meta && (group, element) == (0x7FE0, 0x0010) {
            native = Some(NativePixels {
                start,
                len: len as usize,
            });
        }
        pos = end;
    }
    let ts = syntax.trim_end_matches(['\0', ' ']);
    let uncompressed_le = ts == "1.2.840.10008.1.2" || ts == "1.2.840.10008.1.2.1";
    Ok(native.filter(|_| uncompressed_le))
}

/// Checks an RLE lossless frame before the decoder sees it (the decoder indexes past the end
/// of short segments, found by fuzzing): a header with `segments` increasing offsets inside
/// the fragment, and segments that each decode to at least `plane` bytes.
fn check_rle(fragment: &[u8], segments: u32, plane: usize) -> Result<(), InputError> {
    let bad = |what: &str| damaged(format!("RLE data: {what}"));
    let word = |i: usize| -> Option<usize> {
        Some(u32::from_le_bytes(fragment.get(i..i + 4)?.try_into().ok()?) as usize)
    };
    let n = word(0).ok_or_else(|| bad("no header"))?;
    if n != segments as usize || !(1..=15).contains(&n) {
        return Err(bad("wrong number of segments"));
    }
    let mut offsets: Vec<usize> = (0..n)
        .map(|k| word(4 + 4 * k).ok_or_else(|| bad("no header")))
        .collect::<Result<_, _>>()?;
    offsets.push(fragment.len());
    for w in offsets.windows(2) {
        if w[0] < 64 || w[0] > w[1] {
            return Err(bad("segment offsets out of order"));
        }
        let seg = fragment
            .get(w[0]..w[1])
            .ok_or_else(|| bad("a segment lies outside the fragment"))?;
        let (mut i, mut out) = (0usize, 0usize);
        while i < seg.len() && out < plane {
            let c = seg[i] as i8;
            i += 1;
            if c >= 0 {
                let run = c as usize + 1;
                if i + run > seg.len() {
                    return Err(bad("a segment ends inside a run"));
                }
                i += run;
                out += run;
            } else if c != -128 {
                if i >= seg.len() {
                    return Err(bad("a segment ends inside a run"));
                }
                i += 1;
                out += (1 - c as isize) as usize;
            }
        }
        if out < plane {
            return Err(bad("a segment is shorter than the image"));
        }
    }
    Ok(())
}
