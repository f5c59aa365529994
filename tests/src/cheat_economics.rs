//! What cheating on part of each frame is worth, at the odds the
//! adversarial suite measured: a cheat that is not caught for certain must
//! still lose more, in expectation, than it saves.

use std::fmt;

use inferix_manager::economy::{cheat_odds, EconomyConfig};

use crate::adversarial::{wilson_interval, SuiteReport};

/// One cheat on tasks of one length.
#[derive(Debug, Clone, PartialEq)]
pub struct CheatRow {
    /// The cheat, and whether its detection was measured or modelled.
    pub cheat: String,
    /// Minutes of work of the task, for a worker of index 1.
    pub task_minutes: f64,
    /// Chance that a task's crop challenges catch it.
    pub detection: f64,
    /// The work it saves, valued at the network's price (micro-credits).
    pub expected_gain: f64,
    /// The stake and payment lost when caught, times `detection`.
    pub expected_loss: f64,
}

/// The rows of the table, on tasks of 10 and 100 minutes: first each
/// small cheat the suite ran (see [`SuiteReport::small_cheats`]), gaining
/// the work it saves, at the lower 95 % bound of its measured detection;
/// then cheat fractions it did not run, at the
/// detection `crops` challenges give when each lands on the cheap pixels
/// with the cheat's share of the area (saving 90 % of the work there).
pub fn small_cheat_economics(
    report: &SuiteReport,
    economy: &EconomyConfig,
    crops: usize,
) -> Vec<CheatRow> {
    let row = |cheat: String, minutes: f64, area: f64, saving: f64, measured: Option<f64>| {
        let modelled = cheat_odds(economy, 1.0, minutes, crops, area, saving);
        let detection = measured.unwrap_or(modelled.detection);
        // The loss when caught is the same whichever the odds.
        let loss_when_caught = modelled.expected_loss / modelled.detection.max(f64::MIN_POSITIVE);
        CheatRow {
            cheat,
            task_minutes: minutes,
            detection,
            expected_gain: modelled.expected_gain,
            expected_loss: loss_when_caught * detection,
        }
    };
    let mut rows = Vec::new();
    for (s, saved) in report.small_cheats() {
        let r = &report.strategies[&s];
        let (lower, _) = wilson_interval(r.rejected, r.tasks);
        for minutes in [10.0, 100.0] {
            rows.push(row(
                format!("{s}, measured (≥)"),
                minutes,
                saved,
                1.0,
                Some(lower),
            ));
        }
    }
    for area in [0.005, 0.01, 0.02, 0.05, 0.1, 0.25] {
        for minutes in [10.0, 100.0] {
            let name = format!("{:.1} % of each frame, modelled", area * 100.0);
            rows.push(row(name, minutes, area, 0.9, None));
        }
    }
    rows
}

/// The rows as a Markdown table.
pub struct CheatTable<'a>(pub &'a [CheatRow]);

impl fmt::Display for CheatTable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "| cheat | task | detection per task | expected gain | expected loss | loss / gain |"
        )?;
        writeln!(f, "|---|---:|---:|---:|---:|---:|")?;
        for r in self.0 {
            writeln!(
                f,
                "| {} | {} min | {:.1} % | {:.0} | {:.0} | {:.1} |",
                r.cheat,
                r.task_minutes,
                r.detection * 100.0,
                r.expected_gain,
                r.expected_loss,
                r.expected_loss / r.expected_gain
            )?;
        }
        Ok(())
    }
}
