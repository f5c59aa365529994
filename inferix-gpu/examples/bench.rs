//! Runs the Inferix Bench on the best available device and prints the report.
//!
//! `cargo run --release -p inferix-gpu --example bench`

use inferix_gpu::{bench, PathTracer};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tracer = PathTracer::new()?;
    let report = bench::run_bench(&tracer).await?;
    println!("{report:#?}");
    Ok(())
}
