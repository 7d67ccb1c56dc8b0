//! Triage of a batch: the results table's order and filter, apart from the view (compiled
//! natively too, for its tests). The table, its CSV and its count all go through
//! [`TableView::apply`].

use crate::ml::class::Class;

/// What a row is sorted and filtered by.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Keys<'a> {
    /// Order of arrival (higher is newer).
    pub id: usize,
    /// File name.
    pub file: &'a str,
    /// The label at the threshold.
    pub label: Class,
    /// P(pneumonia).
    pub p: f32,
    /// Inference time, ms.
    pub ms: f64,
    /// In the "uncertain" band.
    pub uncertain: bool,
    /// Flagged as not looking like a chest X-ray.
    pub flagged: bool,
}

/// A row of the results table.
pub trait Triaged {
    /// Its keys.
    fn keys(&self) -> Keys<'_>;
}

/// A column the table sorts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// Order of arrival.
    Added,
    /// P(pneumonia).
    Probability,
    /// NORMAL, PNEUMONIA.
    Label,
    /// File name.
    File,
    /// Inference time.
    Time,
}

impl SortKey {
    /// The column's `data-sort` name.
    pub fn id(self) -> &'static str {
        match self {
            SortKey::Added => "added",
            SortKey::Probability => "p",
            SortKey::Label => "label",
            SortKey::File => "file",
            SortKey::Time => "ms",
        }
    }

    /// The direction a first click on the column sorts in: the most urgent or the newest
    /// first for numbers, alphabetical for names (PNEUMONIA before NORMAL for labels).
    fn first_direction(self) -> Direction {
        match self {
            SortKey::File => Direction::Ascending,
            _ => Direction::Descending,
        }
    }
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Smallest first.
    Ascending,
    /// Largest first.
    Descending,
}

/// Which rows the table shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Filter {
    /// Every row.
    #[default]
    All,
    /// PNEUMONIA at the threshold only.
    Pneumonia,
    /// In the "uncertain" band only.
    Uncertain,
    /// Flagged as not a chest X-ray only.
    Flagged,
}

impl Filter {
    /// Every filter, in the menu's order.
    pub const ALL: [Filter; 4] = [
        Filter::All,
        Filter::Pneumonia,
        Filter::Uncertain,
        Filter::Flagged,
    ];

    /// The menu value (`data-testid=results-filter`'s option values).
    pub fn id(self) -> &'static str {
        match self {
            Filter::All => "all",
            Filter::Pneumonia => "pneumonia",
            Filter::Uncertain => "uncertain",
            Filter::Flagged => "ood",
        }
    }

    /// The menu text.
    pub fn label(self) -> &'static str {
        match self {
            Filter::All => "all results",
            Filter::Pneumonia => "PNEUMONIA only",
            Filter::Uncertain => "uncertain only",
            Filter::Flagged => "flagged (not a chest X-ray) only",
        }
    }

    /// The filter with menu value `id`; every row for anything else.
    pub fn from_id(id: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|f| f.id() == id)
            .unwrap_or_default()
    }

    fn keeps(self, k: &Keys<'_>) -> bool {
        match self {
            Filter::All => true,
            Filter::Pneumonia => k.label == Class::Pneumonia,
            Filter::Uncertain => k.uncertain,
            Filter::Flagged => k.flagged,
        }
    }
}

/// The table's order and filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableView {
    /// The column sorted by.
    pub sort: SortKey,
    /// Its direction.
    pub direction: Direction,
    /// The rows shown.
    pub filter: Filter,
}

impl Default for TableView {
    /// Newest first, every row.
    fn default() -> Self {
        Self {
            sort: SortKey::Added,
            direction: Direction::Descending,
            filter: Filter::All,
        }
    }
}

impl TableView {
    /// A click on `key`'s header: the same column again reverses it, another starts in its
    /// first direction.
    pub fn click(self, key: SortKey) -> Self {
        let direction = if self.sort == key {
            match self.direction {
                Direction::Ascending => Direction::Descending,
                Direction::Descending => Direction::Ascending,
            }
        } else {
            key.first_direction()
        };
        Self {
            sort: key,
            direction,
            ..self
        }
    }

    /// The header's `aria-sort`.
    pub fn aria_sort(self, key: SortKey) -> &'static str {
        match (self.sort == key, self.direction) {
            (false, _) => "none",
            (true, Direction::Ascending) => "ascending",
            (true, Direction::Descending) => "descending",
        }
    }

    /// The rows to show, in order: filtered, then sorted (ties newest first).
    pub fn apply<T: Triaged + Clone>(self, rows: &[T]) -> Vec<T> {
        let mut out: Vec<T> = rows
            .iter()
            .filter(|r| self.filter.keeps(&r.keys()))
            .cloned()
            .collect();
        out.sort_by(|a, b| {
            let (a, b) = (a.keys(), b.keys());
            let primary = match self.sort {
                SortKey::Added => a.id.cmp(&b.id),
                SortKey::Probability => a.p.total_cmp(&b.p),
                SortKey::Label => a.label.name().cmp(b.label.name()),
                SortKey::File => a.file.to_lowercase().cmp(&b.file.to_lowercase()),
                SortKey::Time => a.ms.total_cmp(&b.ms),
            };
            let primary = match self.direction {
                Direction::Ascending => primary,
                Direction::Descending => primary.reverse(),
            };
            primary.then(b.id.cmp(&a.id))
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug)]
    struct Row(usize, &'static str, Class, f32, f64, bool, bool);

    impl Triaged for Row {
        fn keys(&self) -> Keys<'_> {
            Keys {
                id: self.0,
                file: self.1,
                label: self.2,
                p: self.3,
                ms: self.4,
                uncertain: self.5,
                flagged: self.6,
            }
        }
    }

    fn rows() -> Vec<Row> {
        vec![
            Row(3, "c.png", Class::Pneumonia, 0.9, 5.0, false, false),
            Row(2, "B.dcm", Class::Normal, 0.38, 9.0, true, false),
            Row(1, "a.jpeg", Class::Pneumonia, 0.99, 7.0, false, true),
            Row(0, "d.png", Class::Normal, 0.1, 7.0, false, false),
        ]
    }

    fn ids(v: TableView) -> Vec<usize> {
        v.apply(&rows()).iter().map(|r| r.0).collect()
    }

    #[test]
    fn sorts_by_each_column_both_ways_with_ties_newest_first() {
        let v = TableView::default();
        assert_eq!(ids(v), [3, 2, 1, 0]);
        let p = v.click(SortKey::Probability);
        assert_eq!(p.direction, Direction::Descending);
        assert_eq!(ids(p), [1, 3, 2, 0]);
        assert_eq!(ids(p.click(SortKey::Probability)), [0, 2, 3, 1]);
        assert_eq!(
            ids(v.click(SortKey::File)),
            [1, 2, 3, 0],
            "case-insensitive"
        );
        assert_eq!(
            ids(v.click(SortKey::Label)),
            [3, 1, 2, 0],
            "PNEUMONIA first"
        );
        assert_eq!(
            ids(v.click(SortKey::Time)),
            [2, 1, 0, 3],
            "ties newest first"
        );
        assert_eq!(p.aria_sort(SortKey::Probability), "descending");
        assert_eq!(p.aria_sort(SortKey::File), "none");
    }

    #[test]
    fn filters_keep_their_rows_in_the_current_order() {
        let v = TableView::default().click(SortKey::Probability);
        let with = |f| TableView { filter: f, ..v };
        assert_eq!(ids(with(Filter::Pneumonia)), [1, 3]);
        assert_eq!(ids(with(Filter::Uncertain)), [2]);
        assert_eq!(ids(with(Filter::Flagged)), [1]);
        for f in Filter::ALL {
            assert_eq!(Filter::from_id(f.id()), f);
        }
        assert_eq!(Filter::from_id("nonsense"), Filter::All);
    }
}

/// The batch's progress line: `done` of `total` finished after `elapsed_ms`; the time left is
/// extrapolated from the mean so far (none before the first is done). Empty when idle.
pub fn progress_line(total: usize, done: usize, elapsed_ms: f64) -> String {
    if total == 0 || done >= total {
        return String::new();
    }
    if done == 0 {
        return format!("0 of {total} done…");
    }
    let left_s = elapsed_ms / done as f64 * (total - done) as f64 / 1000.0;
    let left = if left_s < 1.0 {
        "under a second".to_string()
    } else if left_s < 90.0 {
        format!("{left_s:.0} s")
    } else {
        format!("{:.0} min", left_s / 60.0)
    };
    format!("{done} of {total} done, about {left} left")
}

#[cfg(test)]
mod progress_tests {
    use super::progress_line;

    #[test]
    fn the_progress_line_says_how_many_and_how_long() {
        assert_eq!(progress_line(0, 0, 0.0), "");
        assert_eq!(progress_line(200, 200, 9000.0), "");
        assert_eq!(progress_line(200, 0, 10.0), "0 of 200 done…");
        assert_eq!(
            progress_line(200, 50, 5000.0),
            "50 of 200 done, about 15 s left"
        );
        assert_eq!(
            progress_line(200, 10, 10_000.0),
            "10 of 200 done, about 3 min left"
        );
        assert_eq!(
            progress_line(3, 2, 100.0),
            "2 of 3 done, about under a second left"
        );
    }
}
