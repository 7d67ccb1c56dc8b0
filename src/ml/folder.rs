//! A visitor's training folder: file names and bytes → labelled examples, split by patient.
//!
//! The page's "train on your own images" reads the files one at a time (so that it can report
//! progress and yield to the browser) and hands each to [`example`]; once all are read,
//! [`split`] holds 20 % out by patient. Both are pure, so that the fuzzer and the native tests
//! run exactly what the page runs.

use super::{finetune::Example, preprocess, split, subset::label_from_path};

/// Share of the images held out for validation.
pub const HOLDOUT: f64 = 0.2;
/// Seed of the hold-out draw.
pub const SEED: u64 = 7;

/// One file of the folder, as the browser gives it.
#[derive(Debug, Clone, Copy)]
pub struct FolderFile<'a> {
    /// Its path inside the chosen folder (`mine/NORMAL/IM-0001-0001.jpeg`).
    pub path: &'a str,
    /// The label the visitor gave it, or `None` to take it from a folder named NORMAL or
    /// PNEUMONIA in its path.
    pub label: Option<bool>,
    /// Its bytes.
    pub bytes: &'a [u8],
}

/// The file's labelled example at `size`×`size`, or why it is skipped (a sentence that starts
/// with the file's path).
pub fn example(file: FolderFile<'_>, size: usize) -> Result<Example, String> {
    let Some(pneumonia) = file.label.or_else(|| label_from_path(file.path)) else {
        return Err(format!(
            "{}: not inside a folder named NORMAL or PNEUMONIA, so its label is unknown",
            file.path
        ));
    };
    let gray = preprocess::decode_gray16(file.bytes).map_err(|e| format!("{}: {e}", file.path))?;
    Ok(Example {
        pixels: preprocess::to_square_unit(&gray, size),
        pneumonia,
    })
}

/// The file name a path ends in (what the patient id is read from).
pub fn file_name(path: &str) -> &str {
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

/// Which of the usable files (`(file name, pneumonia)`) are held out for validation: 20 % of
/// each class, by patient where the names carry one ([`split::patient_id`]), seeded. Refused
/// unless both parts hold both classes.
pub fn split<S: AsRef<str>>(items: &[(S, bool)]) -> Result<Vec<bool>, String> {
    let held = split::holdout(items, HOLDOUT, SEED);
    let has = |val: bool, class: bool| {
        items
            .iter()
            .zip(&held)
            .any(|((_, p), &h)| h == val && *p == class)
    };
    if [(false, false), (false, true), (true, false), (true, true)]
        .iter()
        .all(|&(val, class)| has(val, class))
    {
        Ok(held)
    } else {
        Err(format!(
            "your images need at least 2 usable images of each class (NORMAL and PNEUMONIA); {} were usable",
            items.len()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_come_from_the_visitor_or_the_folder_and_unlabelled_files_are_named() {
        let junk = FolderFile {
            path: "mine/other/a.png",
            label: None,
            bytes: b"x",
        };
        assert!(
            example(junk, 32)
                .unwrap_err()
                .contains("mine/other/a.png: not inside")
        );
        let labelled = FolderFile {
            label: Some(true),
            ..junk
        };
        let e = example(labelled, 32).unwrap_err();
        assert!(
            e.starts_with("mine/other/a.png: ") && !e.contains("label"),
            "{e}"
        );
        assert_eq!(file_name("a/b\\c.png"), "c.png");
    }

    #[test]
    fn a_split_needs_both_classes_on_both_sides_and_keeps_patients_whole() {
        let items: Vec<(String, bool)> = (0..20)
            .flat_map(|p| {
                [
                    (format!("person{p}_bacteria_1.jpeg"), true),
                    (format!("person{p}_bacteria_2.jpeg"), true),
                    (format!("IM-{p:04}-0001.jpeg"), false),
                ]
            })
            .collect();
        let held = split(&items).unwrap();
        for p in 0..20 {
            assert_eq!(held[3 * p], held[3 * p + 1], "patient {p} split");
        }
        assert!(split(&items[..3]).is_err());
        assert!(split(&[("a.png", true), ("b.png", true)]).is_err());
    }
}
