//! The result table: each figure with its baseline, the ratio and the
//! target, rendered as markdown.

use std::fmt::Write as _;

/// Whether a figure meets its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Miss,
    /// No target: the figure is there to show the cost or the growth.
    Info,
    /// The measurement could not be made (the note says why).
    Failed,
}

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Row {
    /// Which benchmark (1-5, as in bench/README.md).
    pub section: &'static str,
    pub figure: String,
    pub value: String,
    pub baseline: String,
    pub ratio: String,
    pub target: String,
    pub verdict: Verdict,
}

impl Row {
    /// A figure without baseline or target.
    pub fn info(section: &'static str, figure: impl Into<String>, value: impl Into<String>) -> Row {
        Row {
            section,
            figure: figure.into(),
            value: value.into(),
            baseline: "—".into(),
            ratio: "—".into(),
            target: "—".into(),
            verdict: Verdict::Info,
        }
    }

    /// A measurement that could not be made.
    pub fn failed(section: &'static str, figure: impl Into<String>, why: impl Into<String>) -> Row {
        Row {
            value: format!("failed: {}", why.into()),
            verdict: Verdict::Failed,
            ..Row::info(section, figure, "")
        }
    }

    pub fn baseline(mut self, what: impl Into<String>, ratio: Option<f64>) -> Row {
        self.baseline = what.into();
        if let Some(r) = ratio {
            self.ratio = ratio_text(r);
        }
        self
    }

    /// Set the target and judge the figure against it.
    pub fn target(mut self, what: impl Into<String>, met: bool) -> Row {
        self.target = what.into();
        self.verdict = if met { Verdict::Pass } else { Verdict::Miss };
        self
    }
}

/// `0.0018×`, `0.42×`, `3.1×`, `120×`.
pub fn ratio_text(r: f64) -> String {
    if !r.is_finite() {
        return "—".into();
    }
    if r > 0.0 && r < 0.1 {
        // Two significant digits, however small.
        let places = (-r.log10().floor()) as usize + 1;
        format!("{r:.places$}×")
    } else if r >= 100.0 {
        format!("{r:.0}×")
    } else if r >= 10.0 {
        format!("{r:.1}×")
    } else {
        format!("{r:.2}×")
    }
}

/// A count with thousands separators.
pub fn count(n: f64) -> String {
    let n = n.round() as i64;
    let s = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// A duration in the most readable unit.
pub fn secs(s: f64) -> String {
    if s >= 10.0 {
        format!("{s:.1} s")
    } else if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 0.001 {
        format!("{:.2} ms", s * 1e3)
    } else if s >= 1e-6 {
        format!("{:.2} µs", s * 1e6)
    } else {
        format!("{:.1} ns", s * 1e9)
    }
}

/// Bytes in B, KiB or MiB.
pub fn bytes(b: f64) -> String {
    if b.abs() >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / 1024.0 / 1024.0)
    } else if b.abs() >= 1024.0 {
        format!("{:.2} KiB", b / 1024.0)
    } else {
        format!("{b:.0} B")
    }
}

/// The whole report.
pub struct Report {
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
}

impl Report {
    pub fn new() -> Report {
        Report {
            rows: Vec::new(),
            notes: Vec::new(),
        }
    }

    pub fn push(&mut self, row: Row) {
        // Printed as they come, so a long run shows progress.
        eprintln!(
            "  [{}] {}: {} | baseline {} | ratio {} | target {} | {:?}",
            row.section, row.figure, row.value, row.baseline, row.ratio, row.target, row.verdict
        );
        self.rows.push(row);
    }

    pub fn note(&mut self, note: impl Into<String>) {
        let n = note.into();
        eprintln!("  note: {n}");
        self.notes.push(n);
    }

    /// The table and the notes as markdown, under `header` lines.
    pub fn markdown(&self, header: &[String]) -> String {
        let mut s = String::new();
        for h in header {
            let _ = writeln!(s, "{h}");
        }
        s.push('\n');
        s.push_str("| # | figure | value | baseline (same run) | ratio | target | result |\n");
        s.push_str("|---|---|---|---|---|---|---|\n");
        for r in &self.rows {
            let verdict = match r.verdict {
                Verdict::Pass => "PASS",
                Verdict::Miss => "**MISS**",
                Verdict::Info => "—",
                Verdict::Failed => "**FAILED**",
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} |",
                r.section,
                cell(&r.figure),
                cell(&r.value),
                cell(&r.baseline),
                cell(&r.ratio),
                cell(&r.target),
                verdict
            );
        }
        if !self.notes.is_empty() {
            s.push_str("\nNotes from this run:\n\n");
            for n in &self.notes {
                let _ = writeln!(s, "- {n}");
            }
        }
        s
    }
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_ratios_keep_two_significant_digits() {
        assert_eq!(ratio_text(0.0018), "0.0018×");
        assert_eq!(ratio_text(0.042), "0.042×");
        assert_eq!(ratio_text(0.42), "0.42×");
        assert_eq!(ratio_text(84.4), "84.4×");
        assert_eq!(ratio_text(120.0), "120×");
        assert_eq!(secs(4e-9), "4.0 ns");
    }
}
