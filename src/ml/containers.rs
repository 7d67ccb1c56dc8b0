//! Every length an image container declares, checked against the bytes actually present
//! before a decoder sees the file: PNG chunks, TIFF directory entries (their values, strips
//! and tiles, ICC profiles and EXIF directories among them), and WebP's RIFF chunks (ICC and
//! EXIF included). A decoder that sizes a buffer from a declared length then never sizes it
//! beyond the file. DICOM has its own walk (`dicom::check_lengths`); JPEG segments carry
//! 16-bit lengths and need none.
//!
//! Each check returns, on failure, what was wrong in words (shown after "the PNG file is
//! damaged or truncated").

use image::ImageFormat;

/// The most TIFF directories followed (a chain that loops is cut here).
const MAX_IFDS: usize = 64;

/// Checks the container of `bytes`, already sniffed as `format`.
pub fn check(format: ImageFormat, bytes: &[u8]) -> Result<(), String> {
    match format {
        ImageFormat::Png => png(bytes),
        ImageFormat::Tiff => tiff(bytes),
        ImageFormat::WebP => webp(bytes),
        _ => Ok(()),
    }
}

fn fits(what: &str, at: u64, len: u64, total: usize) -> Result<(), String> {
    match at.checked_add(len) {
        Some(end) if end <= total as u64 => Ok(()),
        _ => Err(format!(
            "{what} declares {len} bytes at offset {at}; the file has {total}"
        )),
    }
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// PNG: every chunk's length within the file, up to `IEND`.
fn png(bytes: &[u8]) -> Result<(), String> {
    let mut at = 8;
    while let (Some(len), Some(kind)) = (be32(bytes, at), bytes.get(at + 4..at + 8)) {
        let name = String::from_utf8_lossy(kind);
        // Its data, and the CRC after it.
        if (at + 12) as u64 + u64::from(len) > bytes.len() as u64 {
            return Err(format!(
                "the {name} chunk declares {len} bytes at offset {}; the file has {}",
                at + 8,
                bytes.len()
            ));
        }
        if kind == b"IEND" {
            break;
        }
        at += 12 + len as usize;
    }
    Ok(())
}

/// Little- or big-endian reads for TIFF.
struct Tiff<'a> {
    b: &'a [u8],
    le: bool,
}

impl Tiff<'_> {
    fn bytes<const N: usize>(&self, at: u64) -> Option<[u8; N]> {
        self.b
            .get(usize::try_from(at).ok()?..)?
            .get(..N)?
            .try_into()
            .ok()
    }
    fn u16(&self, at: u64) -> Option<u64> {
        let s = self.bytes(at)?;
        Some(u64::from(if self.le {
            u16::from_le_bytes(s)
        } else {
            u16::from_be_bytes(s)
        }))
    }
    fn u32(&self, at: u64) -> Option<u64> {
        let s = self.bytes(at)?;
        Some(u64::from(if self.le {
            u32::from_le_bytes(s)
        } else {
            u32::from_be_bytes(s)
        }))
    }
    fn u64(&self, at: u64) -> Option<u64> {
        let s = self.bytes(at)?;
        Some(if self.le {
            u64::from_le_bytes(s)
        } else {
            u64::from_be_bytes(s)
        })
    }
    /// Reads an unsigned value of TIFF type `kind` (SHORT, LONG or LONG8) at `at`.
    fn value(&self, kind: u64, at: u64) -> Option<u64> {
        match kind {
            3 => self.u16(at),
            4 | 13 => self.u32(at),
            16 | 18 => self.u64(at),
            _ => None,
        }
    }
}

/// Bytes per value of each TIFF field type (unknown types: 1).
fn type_size(kind: u64) -> u64 {
    match kind {
        3 | 8 => 2,
        4 | 9 | 11 | 13 => 4,
        5 | 10 | 12 | 16 | 17 | 18 => 8,
        _ => 1,
    }
}

/// One directory entry, as read.
struct Entry {
    tag: u64,
    kind: u64,
    count: u64,
    /// Where the values are: inline in the entry, or at the offset it holds.
    values_at: u64,
}

/// TIFF and BigTIFF: every directory within the file, every entry's values within it, and
/// every strip and tile (offsets with their byte counts) within it. EXIF directories inside a
/// TIFF are directories like the rest.
fn tiff(bytes: &[u8]) -> Result<(), String> {
    let le = match bytes.get(..2) {
        Some(b"II") => true,
        Some(b"MM") => false,
        _ => return Err("no TIFF byte order mark".into()),
    };
    let t = Tiff { b: bytes, le };
    let total = bytes.len();
    let short = || "the TIFF header is cut short".to_string();
    let big = match t.u16(2).ok_or_else(short)? {
        42 => false,
        43 => true,
        v => return Err(format!("TIFF version {v} is not 42 or 43")),
    };
    let (count_size, entry_size, inline, mut next) = if big {
        (8, 20, 8, t.u64(8).ok_or_else(short)?)
    } else {
        (2, 12, 4, t.u32(4).ok_or_else(short)?)
    };
    let mut pending = Vec::new();
    let mut seen = Vec::new();
    for _ in 0..MAX_IFDS {
        if next == 0 {
            match pending.pop() {
                Some(p) => next = p,
                None => return Ok(()),
            }
        }
        if seen.contains(&next) {
            next = 0;
            continue;
        }
        seen.push(next);
        let n = if big { t.u64(next) } else { t.u16(next) }
            .ok_or_else(|| format!("a directory at offset {next} lies outside the file"))?;
        fits("a directory", next, count_size + n * entry_size, total)?;
        let mut entries = Vec::new();
        for i in 0..n {
            let e = next + count_size + i * entry_size;
            let tag = t.u16(e).unwrap_or(0);
            let kind = t.u16(e + 2).unwrap_or(0);
            let (count, field) = if big {
                (t.u64(e + 4).unwrap_or(0), e + 12)
            } else {
                (t.u32(e + 4).unwrap_or(0), e + 8)
            };
            let len = count.saturating_mul(type_size(kind));
            let values_at = if len <= inline {
                field
            } else {
                let at = if big { t.u64(field) } else { t.u32(field) }.unwrap_or(u64::MAX);
                fits(&format!("TIFF tag {tag}"), at, len, total)?;
                at
            };
            entries.push(Entry {
                tag,
                kind,
                count,
                values_at,
            });
        }
        // Strips (273 with 279) and tiles (324 with 325): each piece within the file.
        for (offsets, counts) in [(273, 279), (324, 325)] {
            let find = |tag| entries.iter().find(|e| e.tag == tag);
            if let (Some(o), Some(c)) = (find(offsets), find(counts)) {
                for i in 0..o.count.min(c.count) {
                    let at = t.value(o.kind, o.values_at + i * type_size(o.kind));
                    let len = t.value(c.kind, c.values_at + i * type_size(c.kind));
                    if let (Some(at), Some(len)) = (at, len) {
                        fits(&format!("image piece {i}"), at, len, total)?;
                    }
                }
            }
        }
        // EXIF (34665), GPS (34853) and interoperability (40965) directories.
        for e in entries
            .iter()
            .filter(|e| [34665, 34853, 40965].contains(&e.tag))
        {
            if let Some(at) = t.value(e.kind, e.values_at) {
                pending.push(at);
            }
        }
        let after = next + count_size + n * entry_size;
        next = if big { t.u64(after) } else { t.u32(after) }.unwrap_or(0);
    }
    Err(format!("more than {MAX_IFDS} TIFF directories"))
}

/// WebP: the RIFF size and every chunk's size within the file.
fn webp(bytes: &[u8]) -> Result<(), String> {
    let le32 = |at: usize| {
        bytes
            .get(at..at + 4)
            .map(|s| u64::from(u32::from_le_bytes([s[0], s[1], s[2], s[3]])))
    };
    let riff = le32(4).ok_or("the RIFF header is cut short")?;
    fits("the RIFF container", 8, riff, bytes.len())?;
    let end = 8 + riff as usize;
    let mut at = 12;
    while at + 8 <= end {
        let name = String::from_utf8_lossy(&bytes[at..at + 4]).into_owned();
        let len = le32(at + 4).unwrap_or(0);
        fits(
            &format!("the {} chunk", name.trim_end()),
            (at + 8) as u64,
            len,
            end,
        )?;
        at += 8 + len as usize + (len as usize & 1);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(format: ImageFormat) -> Vec<u8> {
        let img = image::GrayImage::from_fn(80, 70, |x, y| image::Luma([(x * 3 + y) as u8]));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    #[test]
    fn ordinary_files_pass() {
        for f in [ImageFormat::Png, ImageFormat::Tiff, ImageFormat::WebP] {
            check(f, &encoded(f)).unwrap_or_else(|e| panic!("{f:?}: {e}"));
        }
    }

    #[test]
    fn a_png_chunk_longer_than_the_file_is_named() {
        let mut png = encoded(ImageFormat::Png);
        // The first chunk after the signature is IHDR; make the next one claim 2 GB.
        let next = 8 + 12 + 13;
        png[next..next + 4].copy_from_slice(&0x7FFF_0000u32.to_be_bytes());
        let e = check(ImageFormat::Png, &png).unwrap_err();
        assert!(e.contains("declares 2147418112 bytes"), "{e}");
    }

    #[test]
    fn a_tiff_strip_or_tag_past_the_end_is_named() {
        let tiff = encoded(ImageFormat::Tiff);
        let t = Tiff {
            b: &tiff,
            le: tiff[0] == b'I',
        };
        let ifd = t.u32(4).unwrap();
        let n = t.u16(ifd).unwrap();
        let entry = |tag| {
            (0..n)
                .map(|i| ifd + 2 + i * 12)
                .find(|&e| t.u16(e) == Some(tag))
                .unwrap() as usize
        };
        // The strip byte counts' first value (LONG, inline when one strip) says 1 GB.
        let mut lying = tiff.clone();
        let counts = entry(279);
        let big = if t.le {
            0x4000_0000u32.to_le_bytes()
        } else {
            0x4000_0000u32.to_be_bytes()
        };
        if t.u32(counts as u64 + 4) == Some(1) && t.u16(counts as u64 + 2) == Some(4) {
            lying[counts + 8..counts + 12].copy_from_slice(&big);
            let e = check(ImageFormat::Tiff, &lying).unwrap_err();
            assert!(e.contains("image piece 0 declares 1073741824 bytes"), "{e}");
        }
        // A tag whose values claim 4 G entries.
        let mut lying = tiff.clone();
        let width = entry(256);
        let many = if t.le {
            u32::MAX.to_le_bytes()
        } else {
            u32::MAX.to_be_bytes()
        };
        lying[width + 4..width + 8].copy_from_slice(&many);
        let e = check(ImageFormat::Tiff, &lying).unwrap_err();
        assert!(e.contains("TIFF tag 256 declares"), "{e}");
        // A directory chain that loops back on itself ends.
        let mut looping = tiff.clone();
        let after = ifd as usize + 2 + n as usize * 12;
        let back = if t.le {
            (ifd as u32).to_le_bytes()
        } else {
            (ifd as u32).to_be_bytes()
        };
        looping[after..after + 4].copy_from_slice(&back);
        assert!(check(ImageFormat::Tiff, &looping).is_ok());
    }

    #[test]
    fn a_webp_chunk_longer_than_its_riff_is_named() {
        let mut webp = encoded(ImageFormat::WebP);
        // Append an EXIF chunk that claims 1 GB, and grow the RIFF size to cover its header.
        webp.extend_from_slice(b"EXIF");
        webp.extend_from_slice(&0x4000_0000u32.to_le_bytes());
        let riff = (webp.len() - 8) as u32;
        webp[4..8].copy_from_slice(&riff.to_le_bytes());
        let e = check(ImageFormat::WebP, &webp).unwrap_err();
        assert!(
            e.contains("the EXIF chunk declares 1073741824 bytes"),
            "{e}"
        );
        webp[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        let e = check(ImageFormat::WebP, &webp).unwrap_err();
        assert!(e.contains("the RIFF container declares"), "{e}");
    }
}
