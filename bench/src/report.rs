//! Results: one row per figure, printed, written as Markdown
//! (`results.md`) and drawn as a PNG chart (`chart.png`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::BenchError;

/// Which way a target points.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// The figure should be at least this.
    AtLeast(f64),
    /// The figure should be at most this.
    AtMost(f64),
}

impl Target {
    /// How far the figure is from missing: ≥ 1 means met.
    pub fn score(self, value: f64) -> f64 {
        match self {
            Target::AtLeast(t) => value / t,
            Target::AtMost(t) if value > 0.0 => t / value,
            Target::AtMost(_) => f64::INFINITY,
        }
    }
    fn describe(self) -> String {
        match self {
            Target::AtLeast(t) => format!("≥ {}", fmt_num(t)),
            Target::AtMost(t) => format!("≤ {}", fmt_num(t)),
        }
    }
}

/// One measured figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Group (benchmark) it belongs to.
    pub group: String,
    /// What was measured.
    pub name: String,
    /// The figure.
    pub value: f64,
    /// Its unit.
    pub unit: String,
    /// The baseline measured in the same run, with its description.
    pub baseline: Option<(f64, String)>,
    /// The target the figure is held against.
    pub target: Option<Target>,
    /// What the figure includes, or why it stopped where it did.
    pub note: String,
}

impl Row {
    /// A row without baseline or target.
    pub fn new(group: &str, name: &str, value: f64, unit: &str) -> Self {
        Self {
            group: group.into(),
            name: name.into(),
            value,
            unit: unit.into(),
            baseline: None,
            target: None,
            note: String::new(),
        }
    }
    /// Adds the baseline.
    pub fn baseline(mut self, value: f64, what: impl Into<String>) -> Self {
        self.baseline = Some((value, what.into()));
        self
    }
    /// Adds the target.
    pub fn target(mut self, t: Target) -> Self {
        self.target = Some(t);
        self
    }
    /// Adds a note.
    pub fn note(mut self, n: impl Into<String>) -> Self {
        self.note = n.into();
        self
    }
    /// Figure over baseline.
    pub fn ratio(&self) -> Option<f64> {
        self.baseline
            .as_ref()
            .filter(|(b, _)| *b != 0.0)
            .map(|(b, _)| self.value / b)
    }
    /// Whether the target is met (`None` without one).
    pub fn met(&self) -> Option<bool> {
        self.target.map(|t| t.score(self.value) >= 1.0)
    }
}

/// A pass/fail check (simulation invariants).
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// Whether it held.
    pub passed: bool,
    /// Evidence.
    pub detail: String,
}

/// Everything one run measured.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Heading.
    pub title: String,
    /// Figures.
    pub rows: Vec<Row>,
    /// Invariant checks.
    pub checks: Vec<Check>,
    /// Lines of context (skipped parts, machine, raw tool output).
    pub notes: Vec<String>,
    /// A time series to draw: name, x label, (x, y) points.
    pub series: Vec<(String, Vec<(f64, f64)>)>,
}

/// Numbers with a sensible number of digits.
pub fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if !v.is_finite() {
        format!("{v}")
    } else if a >= 1000.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 0.1 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

impl Report {
    /// An empty report.
    pub fn new(title: &str) -> Self {
        Self {
            title: title.into(),
            ..Self::default()
        }
    }
    /// Adds a row and prints it at once (long runs show progress).
    pub fn push(&mut self, row: Row) {
        let mut line = format!(
            "[{}] {}: {} {}",
            row.group,
            row.name,
            fmt_num(row.value),
            row.unit
        );
        if let (Some((b, what)), Some(r)) = (&row.baseline, row.ratio()) {
            let _ = write!(
                line,
                " | baseline {} ({what}) | ratio {:.3}",
                fmt_num(*b),
                r
            );
        }
        if let (Some(t), Some(m)) = (row.target, row.met()) {
            let _ = write!(
                line,
                " | target {} {}",
                t.describe(),
                if m { "met" } else { "MISSED" }
            );
        }
        println!("{line}");
        if !row.note.is_empty() {
            println!("    {}", row.note);
        }
        self.rows.push(row);
    }
    /// Adds a note and prints it.
    pub fn note(&mut self, n: impl Into<String>) {
        let n = n.into();
        println!("note: {n}");
        self.notes.push(n);
    }
    /// Adds an invariant check and prints it.
    pub fn check(&mut self, name: &str, passed: bool, detail: impl Into<String>) {
        let detail = detail.into();
        println!(
            "invariant {name}: {} ({detail})",
            if passed { "PASS" } else { "FAIL" }
        );
        self.checks.push(Check {
            name: name.into(),
            passed,
            detail,
        });
    }
    /// Whether every invariant check passed.
    pub fn all_checks_pass(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }
    /// The first row named `name`.
    pub fn row(&self, name: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.name == name)
    }

    /// The report as Markdown.
    pub fn markdown(&self) -> String {
        let mut s = format!("# {}\n\n", self.title);
        if !self.rows.is_empty() {
            s.push_str(
                "| group | figure | value | baseline (same run) | ratio | target | met | notes |\n",
            );
            s.push_str("|---|---|---|---|---|---|---|---|\n");
            for r in &self.rows {
                let base = r
                    .baseline
                    .as_ref()
                    .map(|(b, w)| format!("{} ({w})", fmt_num(*b)))
                    .unwrap_or_default();
                let ratio = r.ratio().map(|x| format!("{x:.3}")).unwrap_or_default();
                let target = r.target.map(Target::describe).unwrap_or_default();
                let met = match r.met() {
                    Some(true) => "yes",
                    Some(false) => "**no**",
                    None => "",
                };
                let _ = writeln!(
                    s,
                    "| {} | {} | {} {} | {} | {} | {} | {} | {} |",
                    r.group,
                    r.name,
                    fmt_num(r.value),
                    r.unit,
                    base,
                    ratio,
                    target,
                    met,
                    r.note.replace('|', "/")
                );
            }
        }
        if !self.checks.is_empty() {
            s.push_str("\n## Invariants\n\n| invariant | result | detail |\n|---|---|---|\n");
            for c in &self.checks {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} |",
                    c.name,
                    if c.passed { "PASS" } else { "**FAIL**" },
                    c.detail.replace('|', "/")
                );
            }
        }
        let targeted: Vec<&Row> = self.rows.iter().filter(|r| r.target.is_some()).collect();
        if !targeted.is_empty() {
            s.push_str("\n## Chart\n\n`chart.png`: one bar per figure with a target, left to right, height = figure ÷ target (for “at most” targets target ÷ figure; capped at 3), so a bar above the line at 1.0 meets its target:\n\n");
            for (i, r) in targeted.iter().enumerate() {
                let _ = writeln!(s, "{}. {} — {}", i + 1, r.group, r.name);
            }
        }
        for (name, _) in &self.series {
            let _ = writeln!(s, "\n`series.png`: {name}.");
        }
        if !self.notes.is_empty() {
            s.push_str("\n## Notes\n\n");
            for n in &self.notes {
                if n.contains('\n') {
                    let _ = writeln!(s, "```\n{}\n```", n.trim_end());
                } else {
                    let _ = writeln!(s, "- {n}");
                }
            }
        }
        s
    }

    /// Writes `results.md`, `chart.png` and (when there is a series)
    /// `series.png` into `dir`; returns the files written.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>, BenchError> {
        std::fs::create_dir_all(dir).map_err(|e| BenchError::Io {
            path: dir.into(),
            source: e,
        })?;
        let md = dir.join("results.md");
        std::fs::write(&md, self.markdown()).map_err(|e| BenchError::Io {
            path: md.clone(),
            source: e,
        })?;
        let mut files = vec![md];
        let scores: Vec<f64> = self
            .rows
            .iter()
            .filter_map(|r| r.target.map(|t| t.score(r.value).min(3.0)))
            .collect();
        if !scores.is_empty() {
            let path = dir.join("chart.png");
            write_png(&path, &bar_chart(&scores)?)?;
            files.push(path);
        }
        if let Some((_, points)) = self.series.first() {
            let path = dir.join("series.png");
            write_png(&path, &line_chart(points)?)?;
            files.push(path);
        }
        Ok(files)
    }
}

const W: u32 = 800;
const H: u32 = 400;

fn chart_err(e: impl std::fmt::Display) -> BenchError {
    BenchError::Chart(e.to_string())
}

/// Bars of `scores` with a red line at 1.0 (the target), as RGB pixels.
fn bar_chart(scores: &[f64]) -> Result<Vec<u8>, BenchError> {
    let mut buf = vec![0u8; (W * H * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_err)?;
        let top = scores.iter().copied().fold(1.5, f64::max) * 1.1;
        let mut chart = ChartBuilder::on(&root)
            .margin(20)
            .build_cartesian_2d(0.0..scores.len() as f64, 0.0..top)
            .map_err(chart_err)?;
        chart
            .draw_series(scores.iter().enumerate().map(|(i, &s)| {
                let colour = if s >= 1.0 { GREEN } else { RED };
                Rectangle::new(
                    [(i as f64 + 0.15, 0.0), (i as f64 + 0.85, s)],
                    colour.filled(),
                )
            }))
            .map_err(chart_err)?;
        chart
            .draw_series(LineSeries::new(
                [(0.0, 1.0), (scores.len() as f64, 1.0)],
                BLACK.stroke_width(2),
            ))
            .map_err(chart_err)?;
        root.present().map_err(chart_err)?;
    }
    Ok(buf)
}

/// A line through `points`, as RGB pixels.
fn line_chart(points: &[(f64, f64)]) -> Result<Vec<u8>, BenchError> {
    let mut buf = vec![0u8; (W * H * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_err)?;
        let x_max = points.iter().map(|p| p.0).fold(1.0, f64::max);
        let y_max = points.iter().map(|p| p.1).fold(1.0, f64::max) * 1.1;
        let mut chart = ChartBuilder::on(&root)
            .margin(20)
            .build_cartesian_2d(0.0..x_max, 0.0..y_max)
            .map_err(chart_err)?;
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                BLUE.stroke_width(2),
            ))
            .map_err(chart_err)?;
        root.present().map_err(chart_err)?;
    }
    Ok(buf)
}

fn write_png(path: &Path, rgb: &[u8]) -> Result<(), BenchError> {
    let io = |e: std::io::Error| BenchError::Io {
        path: path.into(),
        source: e,
    };
    let file = std::fs::File::create(path).map_err(io)?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), W, H);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut w = enc.write_header().map_err(chart_err)?;
    w.write_image_data(rgb).map_err(chart_err)?;
    w.finish().map_err(chart_err)?;
    Ok(())
}
