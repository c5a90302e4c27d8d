//! What a command prints: a table for people, or one JSON document for scripts.

use serde_json::Value;

/// A command's result, in both shapes.
pub struct Output {
    /// The JSON document (`--json`).
    pub json: Value,
    /// The column headers of the table.
    pub headers: Vec<&'static str>,
    /// The table's rows.
    pub rows: Vec<Vec<String>>,
    /// A line printed under the table (a summary, the next page).
    pub footer: Option<String>,
}

impl Output {
    /// A result that is one sentence for people.
    pub fn message(json: Value, line: String) -> Self {
        Self {
            json,
            headers: Vec::new(),
            rows: Vec::new(),
            footer: Some(line),
        }
    }

    /// Prints it, as JSON or as a table.
    pub fn print(&self, as_json: bool) {
        if as_json {
            println!("{}", self.json);
            return;
        }
        if !self.headers.is_empty() {
            let mut widths: Vec<usize> = self.headers.iter().map(|h| h.len()).collect();
            for row in &self.rows {
                for (width, cell) in widths.iter_mut().zip(row) {
                    *width = (*width).max(cell.chars().count());
                }
            }
            let line = |cells: Vec<&str>| {
                let padded: Vec<String> = cells
                    .iter()
                    .zip(&widths)
                    .map(|(cell, width)| format!("{cell:<width$}"))
                    .collect();
                println!("{}", padded.join("  ").trim_end());
            };
            // A key-value list has no headings to print.
            if self.headers.iter().any(|h| !h.is_empty()) {
                line(self.headers.clone());
            }
            for row in &self.rows {
                line(row.iter().map(String::as_str).collect());
            }
        }
        if let Some(footer) = &self.footer {
            println!("{footer}");
        }
    }
}
