//! Runs the Proof-of-Render adversarial suite and prints its table.
//!
//! `cargo run --release -p inferix-tests --bin por-adversarial -- [--tasks N]
//! [--size WxH] [--samples S] [--seed N]`

use std::sync::Arc;

use inferix_tests::adversarial::{run_suite, SuiteOptions};

fn main() -> anyhow::Result<()> {
    let mut opts = SuiteOptions::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| anyhow::anyhow!("{a} needs a value"))
        };
        match a.as_str() {
            "--tasks" => opts.tasks = value()?.parse()?,
            "--samples" => opts.settings.samples = value()?.parse()?,
            "--seed" => opts.seed = value()?.parse()?,
            "--size" => {
                let v = value()?;
                let (w, h) = v
                    .split_once('x')
                    .ok_or_else(|| anyhow::anyhow!("--size takes WxH, got {v}"))?;
                opts.settings.width = w.parse()?;
                opts.settings.height = h.parse()?;
            }
            "-h" | "--help" => {
                println!(
                    "por-adversarial [--tasks N] [--size WxH] [--samples S] [--seed N]\n\
                     Runs honest and cheating workers on seeded tasks with the path tracer and\n\
                     prints detection and false-rejection rates and verification cost."
                );
                return Ok(());
            }
            other => anyhow::bail!("unknown argument {other} (see --help)"),
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let tracer = Arc::new(inferix_gpu::PathTracer::new()?);
    let s = &opts.settings;
    println!(
        "Proof-of-Render adversarial suite: {} tasks per strategy, {} frames each, {}x{} at {} samples, seed {}",
        opts.tasks, opts.frames_per_task, s.width, s.height, s.samples, opts.seed
    );
    let report = rt.block_on(run_suite(tracer, opts))?;
    println!("{report}");
    for (s, r) in &report.strategies {
        if let Some(reason) = &r.sample_reason {
            println!("{s}: e.g. {reason}");
        }
    }
    Ok(())
}
