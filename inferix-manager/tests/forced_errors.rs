//! Forced errors driven through the engine: known-bad results go out beside
//! real seats, a verifier that passes one is caught and seated on nothing
//! again, one that fails it earns a bounty, and at the default rate an
//! always-pass verifier does not last long.

use inferix_core::ids::{JobId, NodeId, TaskId};
use inferix_core::protocol::Verdict;
use inferix_core::renderer::SceneFormat;
use inferix_manager::{Command, Engine, Event, ForcedErrorConfig, RoundConfig};

const TIMEOUT: u64 = 1_000;
const WORKER: NodeId = NodeId(99);

fn engine(rate: f64, key: u8, verifiers: &[u128]) -> Engine {
    let mut e = Engine::new(RoundConfig {
        quorum: 1,
        vote_timeout_ms: TIMEOUT,
        draw_key: [key; 32],
        forced_errors: ForcedErrorConfig { rate },
        ..RoundConfig::default()
    });
    for v in verifiers {
        e.handle(
            Event::VerifierJoined {
                verifier: NodeId(*v),
                formats: vec![SceneFormat::Gltf],
                standing: Default::default(),
            },
            0,
        );
    }
    e
}

fn task(i: u32) -> TaskId {
    TaskId::new(JobId(7), i)
}

fn open(e: &mut Engine, i: u32, now: u64) -> Vec<Command> {
    e.handle(
        Event::RoundOpened {
            task: task(i),
            worker: WORKER,
            operator: None,
            needs: Some(SceneFormat::Gltf),
            quorum: None,
        },
        now,
    )
}

fn real_offers(out: &[Command]) -> Vec<(NodeId, u64, TaskId)> {
    out.iter()
        .filter_map(|c| match c {
            Command::OfferVerification {
                verifier,
                verification,
                task,
            } => Some((*verifier, *verification, *task)),
            _ => None,
        })
        .collect()
}

fn forced_offers(out: &[Command]) -> Vec<(NodeId, u64)> {
    out.iter()
        .filter_map(|c| match c {
            Command::OfferForcedError {
                verifier,
                verification,
            } => Some((*verifier, *verification)),
            _ => None,
        })
        .collect()
}

fn answer(
    e: &mut Engine,
    verifier: NodeId,
    verification: u64,
    task: TaskId,
    passed: bool,
    inconclusive: bool,
) -> Vec<Command> {
    e.handle(
        Event::VerdictReceived {
            verifier,
            verdict: Verdict {
                verification,
                task,
                passed,
                reasons: vec![],
                clean: vec![],
                inconclusive: inconclusive.then(|| "render failed".to_string()),
            },
        },
        1,
    )
}

#[test]
fn a_verifier_that_passes_a_known_bad_result_is_caught_and_never_seated_again() {
    let mut e = engine(1.0, 1, &[1, 2]);
    let out = open(&mut e, 0, 0);
    let (real, forced) = (real_offers(&out)[0], forced_offers(&out));
    assert_eq!(forced.len(), 1, "every seat gets one at rate 1: {out:?}");
    let (stamp, bad) = forced[0];
    assert_eq!(
        stamp, real.0,
        "the known-bad result goes to the seated verifier"
    );
    assert!(e.is_awaited_verification(bad));
    assert_eq!(
        e.verifiers().get(&stamp).unwrap().busy,
        2,
        "it looks like load"
    );
    let out = answer(&mut e, stamp, bad, task(0), true, false);
    assert_eq!(
        out,
        vec![Command::VerifierCaught {
            verifier: stamp,
            verification: bad
        }]
    );
    assert_eq!(e.verifiers().get(&stamp).unwrap().reputation, 0.0);
    assert!(e.verifiers().is_banned(&stamp));
    // Reconnecting with the same key restores nothing.
    e.handle(Event::VerifierLeft { verifier: stamp }, 2);
    e.handle(
        Event::VerifierJoined {
            verifier: stamp,
            formats: vec![SceneFormat::Gltf],
            standing: Default::default(),
        },
        3,
    );
    for i in 1..20 {
        let seated = real_offers(&open(&mut e, i, 4));
        assert!(seated.iter().all(|o| o.0 != stamp), "round {i}: {seated:?}");
    }
}

#[test]
fn a_verifier_that_fails_a_known_bad_result_earns_a_bounty_and_keeps_its_seat() {
    let mut e = engine(1.0, 1, &[1]);
    let out = open(&mut e, 0, 0);
    let (v, bad) = forced_offers(&out)[0];
    let out = answer(&mut e, v, bad, task(0), false, false);
    assert_eq!(
        out,
        vec![Command::ForcedErrorCaught {
            verifier: v,
            verification: bad
        }]
    );
    assert_eq!(e.verifiers().get(&v).unwrap().reputation, 1.0);
    assert_eq!(e.verifiers().get(&v).unwrap().busy, 1, "only the real seat");
}

#[test]
fn an_inconclusive_late_or_undeliverable_known_bad_offer_costs_nothing() {
    let mut e = engine(1.0, 1, &[1]);
    let out = open(&mut e, 0, 0);
    let (v, bad) = forced_offers(&out)[0];
    assert!(answer(&mut e, v, bad, task(0), true, true).is_empty());
    assert!(!e.verifiers().is_banned(&v));

    let out = open(&mut e, 1, 0);
    let (_, late) = forced_offers(&out)[0];
    e.handle(Event::Tick, TIMEOUT + 1);
    assert!(!e.is_awaited_verification(late));
    let out = open(&mut e, 2, TIMEOUT + 2);
    let (_, undeliverable) = forced_offers(&out)[0];
    e.handle(
        Event::ForcedErrorDropped {
            verification: undeliverable,
        },
        TIMEOUT + 3,
    );
    assert!(!e.is_awaited_verification(undeliverable));
    assert_eq!(e.verifiers().get(&v).unwrap().reputation, 1.0);
}

#[test]
fn no_known_bad_results_when_the_rate_is_zero() {
    let mut e = engine(0.0, 1, &[1, 2]);
    for i in 0..200 {
        assert!(forced_offers(&open(&mut e, i, 0)).is_empty());
    }
}

/// The figure of the module documentation: an always-pass verifier beside
/// an honest one, at the default rate, over many keys. Prints how many
/// verifications it answered before it was caught.
#[test]
fn at_the_default_rate_an_always_pass_verifier_is_caught_within_a_hundred_verifications() {
    let rate = ForcedErrorConfig::default().rate;
    let mut survived = Vec::new();
    for key in 0..60u8 {
        let mut e = engine(rate, key, &[1, 2]);
        let stamp = NodeId(1);
        let mut answered = 0u32;
        let mut caught = false;
        for i in 0..2_000 {
            let out = open(&mut e, i, u64::from(i));
            let mut verdicts: Vec<(NodeId, u64, TaskId)> = real_offers(&out);
            verdicts.extend(
                forced_offers(&out)
                    .into_iter()
                    .map(|(v, id)| (v, id, task(i))),
            );
            for (v, id, t) in verdicts {
                // The stamp passes everything; the honest verifier passes
                // real (honest) results and fails known-bad ones.
                let known_bad = !real_offers(&out).iter().any(|o| o.1 == id);
                let passed = v == stamp || !known_bad;
                if v == stamp {
                    answered += 1;
                }
                let out = answer(&mut e, v, id, t, passed, false);
                if out.iter().any(
                    |c| matches!(c, Command::VerifierCaught { verifier, .. } if *verifier == stamp),
                ) {
                    caught = true;
                }
            }
            if caught {
                break;
            }
        }
        assert!(caught, "key {key}: never caught");
        survived.push(answered);
    }
    survived.sort_unstable();
    let mean = survived.iter().map(|n| f64::from(*n)).sum::<f64>() / survived.len() as f64;
    let within_100 = survived.iter().filter(|n| **n <= 100).count();
    println!(
        "always-pass verifier at rate {rate}: caught after {mean:.1} verifications on average \
         (median {}, worst {}); caught within 100 in {within_100} of {} runs",
        survived[survived.len() / 2],
        survived[survived.len() - 1],
        survived.len()
    );
    assert!(
        within_100 >= survived.len() * 9 / 10,
        "{within_100} of {}",
        survived.len()
    );
}
