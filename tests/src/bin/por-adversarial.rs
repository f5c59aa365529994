//! Runs the Proof-of-Render adversarial suite and prints its table.
//!
//! `cargo run --release -p inferix-tests --bin por-adversarial -- [--tasks N]
//! [--size WxH] [--samples S] [--seed N] [--crops KxAREA] [--work-scale N]`

use std::sync::Arc;

use inferix_tests::adversarial::{run_suite, SuiteOptions};
use inferix_tests::cheat_economics::{small_cheat_economics, CheatTable};

fn main() -> anyhow::Result<()> {
    let mut opts = SuiteOptions {
        progress: true,
        work_scale: Some(4),
        ..SuiteOptions::default()
    };
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
            "--work-scale" => opts.work_scale = Some(value()?.parse::<u32>()?).filter(|n| *n > 0),
            "--crops" => {
                let v = value()?;
                let (k, area) = v
                    .split_once('x')
                    .ok_or_else(|| anyhow::anyhow!("--crops takes KxAREA, got {v}"))?;
                opts.crops = Some((k.parse()?, area.parse()?));
            }
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
                    "por-adversarial [--tasks N] [--size WxH] [--samples S] [--seed N] [--crops KxAREA] [--work-scale N]\n\
                     Runs honest and cheating workers on seeded tasks with the path tracer and\n\
                     prints detection and false-rejection rates and verification cost.\n\
                     --crops 8x0.01 draws 8 crops of 1 % of the frame per task instead of the defaults.\n\
                     --work-scale 4 (the default) times renders at 4x the width and height to measure\n\
                     the work each partial-frame cheat saves; 0 takes the cheap pixels' share of the area."
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
    let (crops, area) = opts.crops.unwrap_or((
        inferix_core::por::prepare::DEFAULT_CHALLENGES_PER_TASK,
        inferix_core::por::challenge::CHALLENGE_AREA,
    ));
    println!(
        "Proof-of-Render adversarial suite: {} tasks per strategy, {} frames each, {}x{} at {} samples, \
         {crops} crops of {:.2} % of the frame per task, seed {}",
        opts.tasks, opts.frames_per_task, s.width, s.height, s.samples, area * 100.0, opts.seed
    );
    let started = std::time::Instant::now();
    let report = rt.block_on(run_suite(tracer, opts))?;
    println!("{report}");
    let defaults = inferix_node::manager::ManagerConfig::default();
    let economy = inferix_manager::economy::EconomyConfig {
        price_per_ibm: defaults.price_per_ibm,
        stake_epoch_minutes: defaults.stake_epoch_minutes,
        grant_stake: defaults.grant_stake,
        verifier_reward: defaults.verifier_reward,
    };
    println!(
        "Small cheats at the default price and stake (a worker of index 1):\n{}",
        CheatTable(&small_cheat_economics(&report, &economy, crops))
    );
    println!("Ran in {:.0} s.", started.elapsed().as_secs_f64());
    for (s, r) in &report.strategies {
        if let Some(reason) = &r.sample_reason {
            println!("{s}: e.g. {reason}");
        }
    }
    Ok(())
}
