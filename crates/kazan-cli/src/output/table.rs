//! Aligned columns, as kubectl's tab writer lays them out: each column as wide as its widest cell
//! (and at least six with the gap), three spaces between columns, no padding after the last.
//!
//! A stream cannot know its future rows, so a watch fixes the widths once, from the header, the
//! first batch of rows and a floor per column; a later, longer cell pushes only its own line.

/// Spaces between columns.
const GAP: usize = 3;
/// The narrowest a column is, gap included (cli-runtime's `tabwriterMinWidth`).
const MIN_WIDTH: usize = 6;

/// Fixed column widths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    widths: Vec<usize>,
}

impl Layout {
    /// Widths that fit the headers, every row and the floors (`floor(header)`).
    pub fn fit<R: AsRef<[String]>>(headers: &[&str], rows: &[R], floor: impl Fn(&str) -> usize) -> Layout {
        let mut widths: Vec<usize> = headers
            .iter()
            .map(|h| h.chars().count().max(floor(h)).max(MIN_WIDTH - GAP))
            .collect();
        for row in rows {
            for (width, cell) in widths.iter_mut().zip(row.as_ref()) {
                *width = (*width).max(cell.chars().count());
            }
        }
        Layout { widths }
    }

    /// One line (without the newline).
    pub fn line<S: AsRef<str>>(&self, cells: &[S]) -> String {
        let mut out = String::new();
        let last = cells.len().saturating_sub(1);
        for (i, cell) in cells.iter().enumerate() {
            let cell = cell.as_ref();
            out.push_str(cell);
            if i < last {
                let width = self.widths.get(i).copied().unwrap_or(0);
                let pad = width.saturating_sub(cell.chars().count()) + GAP;
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out
    }

    /// The width of the first column plus the gap: where the second column starts.
    pub fn first_column_end(&self) -> usize {
        self.widths.first().copied().unwrap_or(0) + GAP
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_fit_the_widest_cell_with_three_spaces_between() {
        let rows = vec![
            vec!["a".to_string(), "1".to_string(), "5s".to_string()],
            vec!["longer-name".to_string(), "22".to_string(), "7s".to_string()],
        ];
        let layout = Layout::fit(&["NAME", "DATA", "AGE"], &rows, |_| 0);
        assert_eq!(layout.line(&["NAME", "DATA", "AGE"]), "NAME          DATA   AGE");
        assert_eq!(layout.line(&rows[0]), "a             1      5s");
        assert_eq!(layout.line(&rows[1]), "longer-name   22     7s");
    }

    #[test]
    fn floors_widen_columns_and_long_cells_push_only_their_line() {
        let layout =
            Layout::fit::<Vec<String>>(
                &["EVENT", "NAME", "AGE"],
                &[],
                |h| {
                    if h == "NAME" { 6 } else { 0 }
                },
            );
        assert_eq!(layout.line(&["EVENT", "NAME", "AGE"]), "EVENT   NAME     AGE");
        assert_eq!(layout.line(&["ADDED", "x", "1s"]), "ADDED   x        1s");
        assert_eq!(
            layout.line(&["ADDED", "much-longer", "1s"]),
            "ADDED   much-longer   1s"
        );
        assert_eq!(layout.first_column_end(), 8);
    }
}
