//! The adversarial suite at a size CI affords: honest workers are never
//! rejected and every cheating strategy that saves a quarter of the work or
//! more is caught on every task (small cheats are caught as often as a
//! crop lands on them; the full run measures that rate).

use std::sync::Arc;

use inferix_core::por::prepare::DEFAULT_CHALLENGES_PER_TASK;
use inferix_core::renderer::RenderSettings;
use inferix_manager::economy::EconomyConfig;
use inferix_tests::adversarial::{run_suite, Strategy, SuiteOptions, SMALL_CHEAT};
use inferix_tests::cheat_economics::{small_cheat_economics, CheatTable};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_cheat_is_caught_and_no_honest_worker_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SuiteOptions {
        tasks: 3,
        frames_per_task: 2,
        settings: RenderSettings {
            width: 96,
            height: 64,
            samples: 16,
            ..RenderSettings::default()
        },
        seed: 11,
        work_dir: dir.path().to_path_buf(),
        crops: None,
        progress: false,
        // Savings by area: timing renders has no place in a pass/fail
        // test (the full run times them).
        work_scale: None,
    };
    let tracer = Arc::new(inferix_gpu::PathTracer::new().unwrap());
    let report = run_suite(tracer, opts).await.unwrap();
    println!("{report}");
    assert_eq!(report.strategies.len(), Strategy::ALL.len());
    for (s, r) in &report.strategies {
        assert_eq!(r.tasks, 3);
        assert_eq!(
            r.inconclusive, 0,
            "{s}: the rendering verifier could not check"
        );
        if *s == Strategy::Honest {
            assert_eq!(r.rejected, 0, "honest work rejected: {:?}", r.sample_reason);
            assert_eq!(r.rejected_frames_only, 0);
        } else if report.work_saved[s] >= SMALL_CHEAT {
            assert_eq!(r.rejected, r.tasks, "{s} escaped: {r:?}");
        }
        assert!(r.verify_time > std::time::Duration::ZERO);
    }
    // Frames alone cannot tell a cheap render with painted patches from an
    // honest one; only the crop challenges can.
    let painted = &report.strategies[&Strategy::PaintedWatermark];
    assert!(painted.rejected_frames_only < painted.rejected);

    // A small cheat is not caught every time, but at the default price
    // and stake it loses more than it saves, at the detection measured
    // here (even its lower bound on three tasks) and at every modelled
    // fraction.
    let defaults = inferix_node::ManagerConfig::default();
    let economy = EconomyConfig {
        price_per_ibm: defaults.price_per_ibm,
        stake_epoch_minutes: defaults.stake_epoch_minutes,
        grant_stake: defaults.grant_stake,
        verifier_reward: defaults.verifier_reward,
    };
    let rows = small_cheat_economics(&report, &economy, DEFAULT_CHALLENGES_PER_TASK);
    println!("{}", CheatTable(&rows));
    let small: Vec<Strategy> = report.small_cheats().map(|(s, _)| s).collect();
    assert!(small.contains(&Strategy::CheapBorder), "{small:?}");
    let measured = rows.iter().filter(|r| r.cheat.contains("measured")).count();
    assert_eq!(
        measured,
        2 * small.len(),
        "each small cheat, two task lengths"
    );
    for r in &rows {
        assert!(r.expected_loss > r.expected_gain, "{r:?} pays");
    }
}
