//! The two classes, named once. The whole project assumes exactly these two, in this order: the
//! model has two logits (NORMAL, PNEUMONIA), data folders are named after them, and every
//! probability it reports is P(PNEUMONIA).

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// A chest X-ray's class.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum Class {
    /// No pneumonia.
    #[default]
    Normal,
    /// Pneumonia (bacterial or viral).
    Pneumonia,
}

/// Both classes in logit order.
pub const CLASSES: [Class; 2] = [Class::Normal, Class::Pneumonia];

impl Class {
    /// The name used in folder names, JSON, CSV and the page: `NORMAL` or `PNEUMONIA`.
    pub fn name(self) -> &'static str {
        match self {
            Class::Normal => "NORMAL",
            Class::Pneumonia => "PNEUMONIA",
        }
    }

    /// PNEUMONIA for `true`.
    pub fn from_pneumonia(pneumonia: bool) -> Self {
        if pneumonia {
            Class::Pneumonia
        } else {
            Class::Normal
        }
    }

    /// Whether this is PNEUMONIA.
    pub fn is_pneumonia(self) -> bool {
        self == Class::Pneumonia
    }

    /// Its logit's index.
    pub fn index(self) -> usize {
        usize::from(self.is_pneumonia())
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is neither `NORMAL` nor `PNEUMONIA` (case-sensitive, as the folders are).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a class (NORMAL or PNEUMONIA)")]
pub struct UnknownClass(pub String);

impl FromStr for Class {
    type Err = UnknownClass;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CLASSES
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| UnknownClass(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_display_and_serialise_alike() {
        for c in CLASSES {
            assert_eq!(c.name().parse::<Class>(), Ok(c));
            assert_eq!(c.to_string(), c.name());
            assert_eq!(
                serde_json::to_string(&c).unwrap(),
                format!("\"{}\"", c.name())
            );
            assert_eq!(CLASSES[c.index()], c);
            assert_eq!(Class::from_pneumonia(c.is_pneumonia()), c);
        }
        assert!("normal".parse::<Class>().is_err());
    }
}
