//! Audits: when every seat passes the result of a worker on probation, the
//! manager checks it itself before the round is settled, and its check
//! decides the round; a limited number run at a time, the others wait.

mod support;

use inferix_core::ids::{NodeId, TaskId};
use inferix_manager::{AuditConfig, Command, Engine, Event, RoundConfig};
use support::*;

/// The audits among `out`.
fn audits(out: &[Command]) -> Vec<TaskId> {
    out.iter()
        .filter_map(|c| match c {
            Command::Arbitrate {
                task, audit: true, ..
            } => Some(*task),
            _ => None,
        })
        .collect()
}

/// Quorum two, audits at `rate` with `in_flight` at a time, drawn with
/// `key`.
fn config(rate: f64, in_flight: usize, key: u8) -> RoundConfig {
    RoundConfig {
        quorum: 2,
        vote_timeout_ms: TIMEOUT,
        draw_key: [key; 32],
        audit: AuditConfig { rate, in_flight },
        forced_errors: inferix_manager::ForcedErrorConfig { rate: 0.0 },
        ..RoundConfig::default()
    }
}

/// An engine with `cfg` and six verifiers.
fn engine_of(cfg: RoundConfig) -> Engine {
    let mut e = Engine::new(cfg);
    for v in 1..=6 {
        e.handle(
            Event::VerifierJoined {
                verifier: node(v),
                formats: vec![],
                standing: Default::default(),
            },
            0,
        );
    }
    e
}

fn audit_engine(rate: f64, in_flight: usize) -> Engine {
    engine_of(config(rate, in_flight, 0))
}

/// Opens a round of `t` for `quorum` voters (`Some(4)`: a worker on
/// probation) and has every seat vote `passed`; returns the last vote's
/// commands and who sat.
fn voted(
    e: &mut Engine,
    t: TaskId,
    quorum: Option<usize>,
    passed: bool,
    now: u64,
) -> (Vec<Command>, Vec<NodeId>) {
    let out = e.handle(
        Event::RoundOpened {
            task: t,
            worker: WORKER,
            operator: None,
            needs: None,
            quorum,
        },
        now,
    );
    let seats = offers(&out);
    let mut out = Vec::new();
    for s in &seats {
        out = vote(e, *s, passed, now);
    }
    (out, seats.iter().map(|s| s.0).collect())
}

fn audited(e: &mut Engine, t: TaskId, outcome: Option<bool>) -> Vec<Command> {
    e.handle(
        Event::Arbitrated {
            task: t,
            outcome: outcome.map(|p| (p, vec!["the manager's re-render differs".to_string()])),
        },
        0,
    )
}

#[test]
fn a_unanimous_pass_on_probation_waits_for_the_managers_check_which_decides_it() {
    let mut e = audit_engine(1.0, 8);
    // Out of probation, a unanimous pass settles at once.
    let (out, _) = voted(&mut e, task(0), None, true, 1);
    assert!(audits(&out).is_empty());
    assert!(settlements(&out)[0].passed);

    // On probation: four seats pass, nothing is settled until the audit.
    let (out, passers) = voted(&mut e, task(1), Some(4), true, 2);
    assert_eq!(passers.len(), 4);
    assert_eq!(audits(&out), vec![task(1)]);
    assert!(settlements(&out).is_empty(), "{out:?}");
    // The manager finds it bad: rejected, every passer outvoted.
    let out = audited(&mut e, task(1), Some(false));
    let s = settlements(&out);
    assert_eq!(s.len(), 1, "{out:?}");
    assert!(!s[0].passed);
    assert!(s[0].arbitrated);
    assert!(s[0].agreeing.is_empty());
    let mut dissenting = s[0].dissenting.clone();
    dissenting.sort();
    let mut want = passers.clone();
    want.sort();
    assert_eq!(dissenting, want);
    assert!(s[0].reasons.iter().any(|r| r.contains("re-render")));
    assert!(audited(&mut e, task(1), Some(false)).is_empty(), "once");

    // Found good, it passes with its voters; unchecked, the votes stand.
    let (_, passers) = voted(&mut e, task(2), Some(4), true, 3);
    let s = settlements(&audited(&mut e, task(2), Some(true)));
    assert!(s[0].passed && s[0].arbitrated);
    assert_eq!(s[0].agreeing.len(), passers.len());
    voted(&mut e, task(3), Some(4), true, 4);
    let s = settlements(&audited(&mut e, task(3), None));
    assert!(s[0].passed && !s[0].arbitrated);
    assert!(s[0].dissenting.is_empty());
}

#[test]
fn a_failed_result_or_a_rate_of_zero_is_not_audited() {
    let mut e = audit_engine(1.0, 8);
    let (out, _) = voted(&mut e, task(0), Some(4), false, 1);
    assert!(audits(&out).is_empty());
    assert!(!settlements(&out)[0].passed);

    let mut e = audit_engine(0.0, 8);
    let (out, _) = voted(&mut e, task(0), Some(4), true, 1);
    assert!(audits(&out).is_empty());
    assert!(settlements(&out)[0].passed);
}

#[test]
fn audits_beyond_the_limit_wait_their_turn_saying_so() {
    let mut e = audit_engine(1.0, 1);
    let (out, _) = voted(&mut e, task(0), Some(4), true, 1);
    assert_eq!(audits(&out), vec![task(0)]);
    let (out, _) = voted(&mut e, task(1), Some(4), true, 2);
    assert!(audits(&out).is_empty() && settlements(&out).is_empty());
    let why = waiting(&out);
    assert_eq!(why.len(), 1);
    assert!(why[0].1.as_deref().is_some_and(|w| w.contains("audit")));
    voted(&mut e, task(2), Some(4), true, 3);

    // The first ends: the second starts and no longer waits.
    let out = audited(&mut e, task(0), Some(true));
    assert_eq!(settlements(&out).len(), 1);
    assert_eq!(audits(&out), vec![task(1)]);
    assert!(waiting(&out).contains(&(task(1), None)));
    // A round that is abandoned frees its turn for the next.
    let out = e.handle(Event::RoundAbandoned { task: task(1) }, 4);
    assert_eq!(audits(&out), vec![task(2)]);
    let s = settlements(&audited(&mut e, task(2), Some(false)));
    assert!(!s[0].passed);
}

#[test]
fn the_draw_follows_the_rate_and_the_key() {
    let drawn = |key: u8| -> Vec<TaskId> {
        let mut e = engine_of(config(0.25, 8, key));
        let mut got = Vec::new();
        for i in 0..400 {
            let (out, _) = voted(&mut e, task(i), Some(4), true, u64::from(i));
            for t in audits(&out) {
                audited(&mut e, t, Some(true));
                got.push(t);
            }
        }
        got
    };
    let first = drawn(1);
    assert!((70..=130).contains(&first.len()), "{} of 400", first.len());
    assert_eq!(first, drawn(1), "the same key draws the same passes");
    assert_ne!(first, drawn(2), "another key draws others");
}
