//! Benchmarks and a deterministic scale simulation of an Inferix network.
//!
//! Every figure is printed next to a baseline measured in the same run and
//! the ratio between the two, because absolute numbers depend on the machine
//! while ratios travel. [`run_benchmarks`] runs the benchmark suite,
//! [`simulate::run`] the seeded discrete-event simulation; both fill a
//! [`Report`] that [`report`] writes as Markdown and a PNG chart.

mod common;
pub mod counted_store;
pub mod dispatch;
pub mod latency;
pub mod makespan;
pub mod quic_bench;
pub mod report;
pub mod simulate;
pub mod stores;

use std::path::PathBuf;

pub use report::{Report, Row};

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// Building the network under test failed.
    #[error("setting up the benchmark failed: {0}")]
    Setup(String),
    /// A file or folder could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The measured run did not finish correctly.
    #[error("benchmark {name} failed: {reason}")]
    Run {
        /// Which benchmark.
        name: String,
        /// What went wrong.
        reason: String,
    },
    /// Drawing the chart failed.
    #[error("cannot draw the chart: {0}")]
    Chart(String),
}

/// What to run, and how big.
#[derive(Debug, Clone)]
pub struct Options {
    /// Small sizes that finish in seconds (CI); figures are then only a
    /// smoke test.
    pub quick: bool,
    /// Folder the results are written to.
    pub out: PathBuf,
    /// PostgreSQL URL for the PostgreSQL store (none: that store is skipped
    /// and the report says so).
    pub pg_url: Option<String>,
    /// This program's executable, which can run `swarm` in a child process
    /// (manager-only memory figures); `None` skips those figures.
    pub swarm_exe: Option<PathBuf>,
}

/// Runs every benchmark and returns the report.
pub async fn run_benchmarks(opts: &Options) -> Result<Report, BenchError> {
    let mut report = Report::new(if opts.quick {
        "Inferix benchmarks (--quick: smoke-test sizes)"
    } else {
        "Inferix benchmarks"
    });
    latency::run_manager_memory(opts, &mut report).await?;
    dispatch::run(opts, &mut report).await?;
    latency::run(opts, &mut report).await?;
    quic_bench::run(opts, &mut report).await;
    makespan::run(opts, &mut report)?;
    Ok(report)
}
