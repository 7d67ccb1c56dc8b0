//! The small set of real X-rays bundled for the in-browser demo training.
//!
//! It is stored as two files: `subset.json` (this [`SubsetManifest`]: credits and, for every
//! image, its label, its part and where its bytes are) and one binary file holding the images
//! as grayscale JPEGs already at the model's input size, back to back. One fetch with a
//! progress bar brings them all; `xray subset` writes them.
//!
//! The gallery's `public/samples/manifest.json` is a list of [`GalleryItem`]s (`xray gallery`
//! writes it, the page's gallery and the tests read it).

use serde::{Deserialize, Serialize};

use super::class::Class;

/// One entry of the gallery's `manifest.json`: a held-out X-ray shown in the page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GalleryItem {
    /// File name in the gallery folder.
    pub file: String,
    /// True label.
    pub label: Class,
    /// Where it came from, relative to the folder above the data root.
    pub source: String,
}

/// Which part of the subset an image belongs to. The two never mix: fine-tuning reads only
/// `train`, every reported figure comes from `val`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Part {
    /// Fine-tuning images.
    Train,
    /// Validation images.
    Val,
}

/// One image in the bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubsetImage {
    /// Short display name.
    pub name: String,
    /// Where it comes from in the original data set.
    pub source: String,
    /// Its class.
    pub label: Class,
    /// Fine-tuning or validation.
    pub part: Part,
    /// First byte in the data file.
    pub offset: usize,
    /// Length in bytes.
    pub len: usize,
}

impl SubsetImage {
    /// True for PNEUMONIA.
    pub fn pneumonia(&self) -> bool {
        self.label.is_pneumonia()
    }
}

/// The manifest, `subset.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubsetManifest {
    /// Where the images come from and how they were chosen.
    pub about: String,
    /// Credit and licence.
    pub license: String,
    /// Side of every (square) image in pixels.
    pub size: usize,
    /// File name of the data file, next to the manifest.
    pub data: String,
    /// Its length in bytes.
    pub bytes: usize,
    /// The images.
    pub images: Vec<SubsetImage>,
}

/// Why the bundle cannot be used.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SubsetError {
    /// The data file does not match the manifest.
    #[error("the training images are damaged: {0}")]
    Damaged(String),
}

impl SubsetManifest {
    /// The bytes of `image` inside `data`, checked against the manifest.
    pub fn bytes_of<'a>(
        &self,
        image: &SubsetImage,
        data: &'a [u8],
    ) -> Result<&'a [u8], SubsetError> {
        if data.len() != self.bytes {
            return Err(SubsetError::Damaged(format!(
                "{} bytes received, {} expected",
                data.len(),
                self.bytes
            )));
        }
        image
            .offset
            .checked_add(image.len)
            .and_then(|end| data.get(image.offset..end))
            .ok_or_else(|| SubsetError::Damaged(format!("{} lies outside the file", image.name)))
    }
}

/// The label a file's path implies: `Some(true)` inside a folder named `PNEUMONIA`,
/// `Some(false)` inside `NORMAL` (any case), `None` when neither or both.
pub fn label_from_path(path: &str) -> Option<bool> {
    let parts: Vec<String> = path
        .split(['/', '\\'])
        .map(str::to_ascii_uppercase)
        .collect();
    let dirs = &parts[..parts.len().saturating_sub(1)];
    let normal = dirs.iter().any(|p| p == Class::Normal.name());
    let pneumonia = dirs.iter().any(|p| p == Class::Pneumonia.name());
    match (normal, pneumonia) {
        (true, false) => Some(false),
        (false, true) => Some(true),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_come_from_folder_names() {
        assert_eq!(label_from_path("mine/NORMAL/a.png"), Some(false));
        assert_eq!(label_from_path("mine\\pneumonia\\b.jpeg"), Some(true));
        assert_eq!(label_from_path("mine/other/NORMAL.png"), None);
        assert_eq!(label_from_path("NORMAL/PNEUMONIA/x.png"), None);
        assert_eq!(label_from_path("x.png"), None);
    }

    #[test]
    fn slices_are_checked() {
        let img = SubsetImage {
            name: "a".into(),
            source: "s".into(),
            label: Class::Pneumonia,
            part: Part::Val,
            offset: 2,
            len: 3,
        };
        let m = SubsetManifest {
            about: String::new(),
            license: String::new(),
            size: 8,
            data: "d".into(),
            bytes: 6,
            images: vec![img.clone()],
        };
        assert_eq!(m.bytes_of(&img, &[0, 1, 2, 3, 4, 5]), Ok(&[2u8, 3, 4][..]));
        assert!(m.bytes_of(&img, &[0, 1, 2]).is_err());
        let far = SubsetImage {
            offset: 5,
            ..img.clone()
        };
        assert!(m.bytes_of(&far, &[0, 1, 2, 3, 4, 5]).is_err());
        assert!(img.pneumonia());
        let json = serde_json::to_string(&m).unwrap_or_default();
        assert!(json.contains("\"part\":\"val\""), "{json}");
    }
}
