//! Samples, their statistics, and the one table the benchmark prints.

use std::fmt::Write as _;

/// What a row measures, and which way is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Commands per second (more is better).
    CommandsPerSec,
    /// Events per second (more is better).
    EventsPerSec,
    /// Microseconds per command (less is better).
    MicrosPerCommand,
    /// Microseconds per event, a latency (less is better).
    MicrosPerEvent,
    /// Bytes per stored event (less is better).
    BytesPerEvent,
    /// Mebibytes (less is better).
    MiB,
}

impl Unit {
    fn label(self) -> &'static str {
        match self {
            Unit::CommandsPerSec => "cmd/s",
            Unit::EventsPerSec => "events/s",
            Unit::MicrosPerCommand => "us/cmd",
            Unit::MicrosPerEvent => "us/event",
            Unit::BytesPerEvent => "B/event",
            Unit::MiB => "MiB",
        }
    }

    /// Whether a larger figure is better (a rate) or worse (a cost).
    fn higher_is_better(self) -> bool {
        matches!(self, Unit::CommandsPerSec | Unit::EventsPerSec)
    }
}

/// The figures of several runs of one measurement.
#[derive(Debug, Clone, Default)]
pub struct Samples(Vec<f64>);

impl Samples {
    /// Adds one run's figure.
    pub fn push(&mut self, value: f64) {
        self.0.push(value);
    }

    /// The median (the mean of the two middle figures for an even count).
    pub fn median(&self) -> f64 {
        let mut sorted = self.0.clone();
        sorted.sort_by(f64::total_cmp);
        match sorted.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => sorted[n / 2],
            n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
        }
    }

    fn min(&self) -> f64 {
        self.0.iter().copied().fold(f64::NAN, f64::min)
    }

    fn max(&self) -> f64 {
        self.0.iter().copied().fold(f64::NAN, f64::max)
    }
}

/// What a row must reach.
#[derive(Debug, Clone)]
pub enum Target {
    /// The framework's speed must be at least this fraction of the raw database's.
    RawRatio(f64),
    /// The median must be at least this (a rate).
    AtLeast(f64),
    /// The median cost must be at most `times` the median of another row, `base`.
    AtMostTimes {
        /// What the base row is, for the table.
        label: &'static str,
        /// The base row's median.
        base: f64,
        /// The allowed factor.
        times: f64,
    },
}

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Row {
    /// Workload number and short description.
    pub workload: String,
    /// `memory` or `postgres`.
    pub backend: &'static str,
    /// Engine set-up or operation, e.g. `image`, `snapshots/100`, `store.append`.
    pub variant: String,
    /// The unit of every figure of the row.
    pub unit: Unit,
    /// The framework's figures.
    pub framework: Samples,
    /// The raw database doing the same writes or reads, measured in the same run.
    pub raw: Option<Samples>,
    /// The target, if the issue sets one for this row.
    pub target: Option<Target>,
}

impl Row {
    /// A row with no raw baseline and no target.
    pub fn new(
        workload: impl Into<String>,
        backend: &'static str,
        variant: impl Into<String>,
        unit: Unit,
        framework: Samples,
    ) -> Self {
        Self {
            workload: workload.into(),
            backend,
            variant: variant.into(),
            unit,
            framework,
            raw: None,
            target: None,
        }
    }

    /// Sets the raw baseline.
    pub fn with_raw(mut self, raw: Samples) -> Self {
        self.raw = Some(raw);
        self
    }

    /// Sets the target.
    pub fn with_target(mut self, target: Target) -> Self {
        self.target = Some(target);
        self
    }

    /// Framework speed / raw speed, from the medians: for a rate that is
    /// framework / raw, for a cost raw / framework. Above 1: faster than raw.
    pub fn ratio(&self) -> Option<f64> {
        let raw = self.raw.as_ref()?.median();
        let framework = self.framework.median();
        Some(if self.unit.higher_is_better() {
            framework / raw
        } else {
            raw / framework
        })
    }

    /// The target and whether it is met, e.g. `>=0.80 raw: met`.
    fn verdict(&self) -> String {
        let Some(target) = &self.target else {
            return String::new();
        };
        let median = self.framework.median();
        let (text, met) = match target {
            Target::RawRatio(min) => (
                format!(">={min:.2} raw"),
                self.ratio().is_some_and(|r| r >= *min),
            ),
            Target::AtLeast(min) => (format!(">={}", thousands(*min)), median >= *min),
            Target::AtMostTimes { label, base, times } => (
                format!("<={times}x {label} ({:.2}x)", median / base),
                median <= base * times,
            ),
        };
        format!("{text}: {}", if met { "met" } else { "MISSED" })
    }
}

/// `1234567.8` as `1,234,568`; figures below 100 keep two decimals.
pub fn thousands(value: f64) -> String {
    if !value.is_finite() {
        return "-".to_owned();
    }
    if value.abs() < 100.0 {
        return format!("{value:.2}");
    }
    count(value)
}

/// A count with thousands separators and no decimals: `10000.0` as `10,000`.
pub fn count(value: f64) -> String {
    let digits = format!("{:.0}", value.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if value < 0.0 {
        out.insert(0, '-');
    }
    out
}

/// Renders the rows as one fixed-width table (also valid Markdown).
pub fn render(rows: &[Row]) -> String {
    let header = [
        "workload",
        "backend",
        "variant",
        "unit",
        "median",
        "min",
        "max",
        "raw median",
        "ratio",
        "target",
    ];
    let cells: Vec<[String; 10]> = rows
        .iter()
        .map(|row| {
            [
                row.workload.clone(),
                row.backend.to_owned(),
                row.variant.clone(),
                row.unit.label().to_owned(),
                thousands(row.framework.median()),
                thousands(row.framework.min()),
                thousands(row.framework.max()),
                row.raw
                    .as_ref()
                    .map_or_else(String::new, |raw| thousands(raw.median())),
                // Rounded down, so that a ratio shown as 0.80 meets a 0.80 target.
                row.ratio().map_or_else(String::new, |r| {
                    format!("{:.2}", (r * 100.0).floor() / 100.0)
                }),
                row.verdict(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for line in &cells {
        for (width, cell) in widths.iter_mut().zip(line) {
            *width = (*width).max(cell.chars().count());
        }
    }
    // Text columns left-aligned, figures right-aligned.
    let numeric = [
        false, false, false, false, true, true, true, true, true, false,
    ];
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        out.push('|');
        for ((cell, width), right) in cells.iter().zip(widths).zip(numeric) {
            let pad = width - cell.chars().count();
            if right {
                let _ = write!(out, " {}{cell} |", " ".repeat(pad));
            } else {
                let _ = write!(out, " {cell}{} |", " ".repeat(pad));
            }
        }
        out.push('\n');
    };
    line(&header.map(str::to_owned));
    let rule: Vec<String> = widths
        .iter()
        .zip(numeric)
        .map(|(w, right)| {
            if right {
                format!("{}:", "-".repeat(w.saturating_sub(1)))
            } else {
                "-".repeat(*w)
            }
        })
        .collect();
    line(&rule);
    for cells in &cells {
        line(cells);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_thousands() {
        let mut s = Samples::default();
        for v in [3.0, 1.0, 2.0, 10.0] {
            s.push(v);
        }
        assert_eq!(s.median(), 2.5);
        assert_eq!(s.min(), 1.0);
        assert_eq!(s.max(), 10.0);
        assert_eq!(thousands(1_234_567.8), "1,234,568");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(12.345), "12.35");
        assert_eq!(count(10.0), "10");
    }

    #[test]
    fn ratios_follow_the_unit() {
        let one = |v| {
            let mut s = Samples::default();
            s.push(v);
            s
        };
        let rate = Row::new("w", "postgres", "v", Unit::CommandsPerSec, one(80.0))
            .with_raw(one(100.0))
            .with_target(Target::RawRatio(0.8));
        assert_eq!(rate.ratio(), Some(0.8));
        assert!(rate.verdict().ends_with("met"));
        let cost = Row::new("w", "postgres", "v", Unit::MicrosPerCommand, one(200.0))
            .with_raw(one(100.0))
            .with_target(Target::RawRatio(0.8));
        assert_eq!(cost.ratio(), Some(0.5));
        assert!(cost.verdict().ends_with("MISSED"));
    }
}
