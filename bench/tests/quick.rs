//! The short (`--quick`) versions of every benchmark and of the simulation,
//! as CI runs them: figures must be positive and finite, results must be
//! written, and every simulation invariant must hold. No timing thresholds:
//! a shared CI machine's speed says nothing about the code.

use inferix_bench::simulate::{self, SimConfig};
use inferix_bench::{run_benchmarks, Options, Report};

#[test]
fn quick_simulation_keeps_every_invariant_and_is_deterministic() {
    let mut report = Report::new("quick simulation");
    let first = simulate::run(7, true, &mut report).unwrap();
    assert!(
        report.all_checks_pass(),
        "invariants failed: {:?}",
        report.checks
    );
    assert_eq!(report.checks.len(), 6, "every invariant is checked");
    let c = &first.counters;
    assert!(c.accepted > 0 && c.accepted + c.failed == c.tasks, "{c:?}");
    assert!(c.worker_crashes > 0, "worker crashes were injected: {c:?}");
    assert!(
        c.manager_crashes > 0,
        "manager crashes were injected: {c:?}"
    );
    assert!(c.cheats_caught > 0, "cheaters were caught: {c:?}");
    assert!(
        c.split_rounds == 0 && c.arbitrations == 0,
        "honest verifiers re-render deterministically and never disagree: {c:?}"
    );
    assert!(
        c.verification_offers >= 2 * c.accepted,
        "every accepted task had a quorum of offers: {c:?}"
    );
    assert!(c.lost > 0, "messages were lost: {c:?}");
    assert!(
        c.cas_conflicts > 0,
        "racing managers met the store's compare-and-set: {c:?}"
    );
    for r in &report.rows {
        assert!(r.value.is_finite() && r.value >= 0.0, "{r:?}");
    }

    // Same seed, same run; another seed, another run that also holds.
    let again = simulate::simulate(SimConfig::quick(7)).unwrap();
    assert_eq!(again.counters, first.counters);
    assert_eq!(again.queue_ms, first.queue_ms);
    let other = simulate::simulate(SimConfig::quick(8)).unwrap();
    assert_ne!(other.counters, first.counters);
    assert!(
        other.checks.iter().all(|(_, ok, _)| *ok),
        "{:?}",
        other.checks
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_benchmarks_measure_positive_figures_and_write_results() {
    let out = tempfile::tempdir().unwrap();
    let opts = Options {
        quick: true,
        out: out.path().to_path_buf(),
        pg_url: std::env::var("INFERIX_TEST_PG_URL").ok(),
        swarm_exe: Some(env!("CARGO_BIN_EXE_inferix-bench").into()),
    };
    let report = run_benchmarks(&opts).await.unwrap();
    for r in &report.rows {
        assert!(r.value.is_finite() && r.value > 0.0, "{r:?}");
        if let Some((b, _)) = &r.baseline {
            assert!(b.is_finite() && *b > 0.0, "{r:?}");
        }
    }
    let must = [
        "in-memory store raw rate",
        "SQLite store raw rate",
        "QUIC ready→start p99",
    ];
    for name in must {
        assert!(
            report.row(name).is_some(),
            "missing {name}: {:?}",
            report.rows
        );
    }
    let dispatch_rows = report
        .rows
        .iter()
        .filter(|r| r.unit == "dispatches/s")
        .count();
    let stores = if opts.pg_url.is_some() { 3 } else { 2 };
    // Two sizes per store, each an end-to-end row and a capacity row.
    assert_eq!(dispatch_rows, 4 * stores, "{:?}", report.rows);
    assert!(report
        .rows
        .iter()
        .any(|r| r.name.ends_with("one manager's capacity on 2 cores")));
    assert!(report
        .rows
        .iter()
        .any(|r| r.name.starts_with("QUIC manager, per idle worker")));
    assert!(report.rows.iter().any(|r| r.group == "memory"));
    assert!(report.rows.iter().any(|r| r.group == "makespan"));
    assert!(
        report.rows.iter().any(|r| r.group == "streaming")
            || report.notes.iter().any(|n| n.contains("not measured")),
        "the streaming comparison ran or says why not"
    );
    let files = report.write(out.path()).unwrap();
    let md = std::fs::read_to_string(out.path().join("results.md")).unwrap();
    assert!(md.contains("dispatches/s") && md.contains("| ratio |"));
    let png = std::fs::read(out.path().join("chart.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(files.len() >= 2);
}

#[test]
fn quick_adversarial_runs_keep_honest_participants_whole_and_remove_rubber_stamps() {
    let mut report = Report::new("quick adversarial simulation");
    let runs = simulate::run_adversarial(7, true, &mut report).unwrap();
    assert!(
        report.all_checks_pass(),
        "targets missed: {:?}",
        report.checks
    );
    assert_eq!(runs.len(), simulate::ATTACKS.len());
    for (attack, o) in &runs {
        let c = &o.counters;
        assert!(
            c.cheats_caught + c.cheats_missed > 0,
            "{}: fakes were sent",
            attack.name
        );
        assert!(
            c.forced_offers > 0,
            "{}: known-bad results were offered",
            attack.name
        );
        if attack.colluders > 0.0 {
            assert!(
                c.arbitrations > 0 && c.split_rounds > 0,
                "{}: colluders split rounds and the manager's check settled them: {c:?}",
                attack.name
            );
            assert_eq!(
                c.honest_verifiers_slashed, 0,
                "{}: the manager's check never outvotes an honest verifier",
                attack.name
            );
        }
        if attack.colluders > 0.0 || attack.rubber_stamps > 0.0 {
            assert!(c.bad_verifiers > 0, "{}: {c:?}", attack.name);
            assert!(
                c.bad_verifiers_removed > 0,
                "{}: some bad verifier was removed: {c:?}",
                attack.name
            );
        } else {
            assert_eq!(
                c.cheats_missed, 0,
                "without bad verifiers every fake is caught"
            );
        }
    }
    // Colluders get fakes through only when they hold every seat of a
    // round, so the share paid grows with their share of stake.
    let paid = |name: &str| {
        runs.iter()
            .find(|(a, _)| a.name == name)
            .map(|(_, o)| o.counters.cheats_missed)
            .unwrap()
    };
    assert!(paid("colluders 49 %") >= paid("colluders 10 %"));
    // Griefers handed tasks back and failed none; liars were kept near
    // their real share (both checked above); here, that the attacks ran.
    let counters = |name: &str| {
        runs.iter()
            .find(|(a, _)| a.name.starts_with(name))
            .map(|(_, o)| o.counters.clone())
            .unwrap()
    };
    let griefed = counters("hand-back griefers");
    assert!(griefed.hand_backs > 0, "{griefed:?}");
    assert_eq!(griefed.failed, 0);
    let lied = counters("IB liars");
    assert!(
        lied.liar_speed_ppm > 0 && lied.liar_accepted > 0,
        "{lied:?}"
    );
    assert_eq!(counters("no attack").hand_backs, 0);
    let flooded = counters("Sybil flood");
    assert!(
        flooded.sybils_admitted > 0 && flooded.sybils_slashed > 0,
        "{flooded:?}"
    );
}
