//! Disputed rounds: votes that disagree go to the manager's own check,
//! which decides them whatever the number on each side; without it, fresh
//! verifiers join and the majority decides. Accounts on probation get more
//! seats, asked only of verifiers that exist.

mod support;

use inferix_core::ids::TaskId;
use inferix_core::renderer::SceneFormat;
use inferix_manager::{Command, Engine, Event};
use support::*;

fn arbitrations(out: &[Command]) -> Vec<TaskId> {
    out.iter()
        .filter_map(|c| match c {
            Command::Arbitrate {
                task,
                worker,
                audit,
            } => {
                assert_eq!(*worker, WORKER);
                assert!(!audit, "a dispute, not an audit");
                Some(*task)
            }
            _ => None,
        })
        .collect()
}

fn arbitrated(e: &mut Engine, t: TaskId, outcome: Option<bool>, now: u64) -> Vec<Command> {
    e.handle(
        Event::Arbitrated {
            task: t,
            outcome: outcome.map(|p| (p, vec!["the manager's re-render differs".to_string()])),
        },
        now,
    )
}

#[test]
fn a_split_goes_to_the_managers_check_which_outvotes_either_side() {
    for manager_passes in [false, true] {
        let mut e = engine(2, &[1, 2, 3, 4]);
        let first = offers(&open(&mut e, task(0), 0));
        assert_eq!(first.len(), 2);
        assert!(offers(&vote(&mut e, first[0], true, 1)).is_empty());
        let out = vote(&mut e, first[1], false, 2);
        assert!(settlements(&out).is_empty(), "a split decides nothing");
        assert!(
            offers(&out).is_empty(),
            "no verifier is asked while the manager checks"
        );
        assert_eq!(arbitrations(&out), vec![task(0)]);
        // Waiting for the manager is not a deadline any verifier misses.
        let out = e.handle(Event::Tick, 10 * TIMEOUT);
        assert!(
            offers(&out).is_empty() && arbitrations(&out).is_empty(),
            "{out:?}"
        );
        assert!(e.has_round(task(0)));
        let s = settlements(&arbitrated(&mut e, task(0), Some(manager_passes), 3));
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].passed, manager_passes);
        assert!(s[0].arbitrated);
        let (winner, loser) = if manager_passes {
            (first[0].0, first[1].0)
        } else {
            (first[1].0, first[0].0)
        };
        assert_eq!(s[0].agreeing, vec![winner]);
        assert_eq!(s[0].dissenting, vec![loser]);
        assert!(e.verifiers().get(&loser).unwrap().reputation < 1.0);
        if !manager_passes {
            assert!(
                s[0].reasons.iter().any(|r| r.contains("manager")),
                "the manager's reasons are kept: {:?}",
                s[0].reasons
            );
        }
        // A second answer for the same round changes nothing.
        assert!(arbitrated(&mut e, task(0), Some(!manager_passes), 4).is_empty());
    }
}

#[test]
fn the_managers_check_outvotes_a_colluding_majority() {
    // Three of four seats pass a bad result; the manager's check fails it
    // and all three lose.
    let mut e = engine(2, &[1, 2, 3, 4, 5]);
    let seats = offers(&e.handle(
        Event::RoundOpened {
            task: task(0),
            worker: WORKER,
            operator: None,
            needs: None,
            quorum: Some(4),
        },
        0,
    ));
    assert_eq!(seats.len(), 4, "a worker on probation gets four seats");
    for (i, seat) in seats.iter().enumerate() {
        let out = vote(&mut e, *seat, i != 0, 1 + i as u64);
        assert!(settlements(&out).is_empty());
    }
    let s = settlements(&arbitrated(&mut e, task(0), Some(false), 10));
    assert!(!s[0].passed);
    assert_eq!(s[0].dissenting.len(), 3);
    assert_eq!(s[0].agreeing, vec![seats[0].0]);
}

#[test]
fn probation_seats_are_asked_only_of_verifiers_that_exist() {
    // Three verifiers: a worker on probation asks for four seats and gets
    // three, and the round settles when those three agree.
    let mut e = engine(2, &[1, 2, 3]);
    let seats = offers(&e.handle(
        Event::RoundOpened {
            task: task(0),
            worker: WORKER,
            operator: None,
            needs: None,
            quorum: Some(4),
        },
        0,
    ));
    assert_eq!(seats.len(), 3);
    let a = vote(&mut e, seats[0], true, 1);
    let b = vote(&mut e, seats[1], true, 2);
    let c = vote(&mut e, seats[2], true, 3);
    let s = settlements(&c);
    assert_eq!(s.len(), 1, "{a:?} {b:?} {c:?}");
    assert!(s[0].passed);
    assert_eq!(s[0].agreeing.len(), 3);
}

#[test]
fn a_round_never_has_fewer_seats_than_the_quorum() {
    let mut e = engine(2, &[1, 2, 3]);
    let seats = offers(&e.handle(
        Event::RoundOpened {
            task: task(0),
            worker: WORKER,
            operator: None,
            needs: None,
            quorum: Some(1),
        },
        0,
    ));
    assert_eq!(seats.len(), 2);
}

#[test]
fn unanimous_votes_settle_without_the_managers_check() {
    let mut e = engine(2, &[1, 2, 3]);
    let first = offers(&open(&mut e, task(0), 0));
    vote(&mut e, first[0], false, 1);
    let out = vote(&mut e, first[1], false, 2);
    assert!(arbitrations(&out).is_empty());
    let s = settlements(&out);
    assert!(!s[0].passed && !s[0].arbitrated);
    assert_eq!(s[0].reasons.len(), 2, "reasons of both verifiers");
}

#[test]
fn without_the_managers_check_fresh_verifiers_join_and_the_majority_decides() {
    let mut e = engine(2, &[1, 2, 3, 4, 5, 6]);
    let first = offers(&open(&mut e, task(0), 0));
    vote(&mut e, first[0], true, 1);
    assert_eq!(
        arbitrations(&vote(&mut e, first[1], false, 2)),
        vec![task(0)]
    );
    let fresh = offers(&arbitrated(&mut e, task(0), None, 3));
    assert_eq!(fresh.len(), 3, "quorum + 1 fresh verifiers");
    assert!(fresh
        .iter()
        .all(|f| ![first[0].0, first[1].0, WORKER].contains(&f.0)));
    vote(&mut e, fresh[0], false, 4);
    vote(&mut e, fresh[1], true, 5);
    let out = vote(&mut e, fresh[2], false, 6);
    assert!(arbitrations(&out).is_empty(), "the manager is asked once");
    let s = settlements(&out);
    assert_eq!(s.len(), 1, "3-2 settles");
    assert!(!s[0].passed && !s[0].arbitrated);
    assert_eq!(s[0].dissenting.len(), 2);
    assert_eq!(s[0].reasons.len(), 3, "reasons of the three that failed it");
}

#[test]
fn a_split_with_no_fresh_verifier_waits_and_says_so_then_settles_when_one_joins() {
    let mut e = engine(2, &[1, 2]);
    let first = offers(&open(&mut e, task(0), 0));
    vote(&mut e, first[0], true, 1);
    vote(&mut e, first[1], false, 2);
    let out = arbitrated(&mut e, task(0), None, 2);
    assert!(offers(&out).is_empty());
    let w = waiting(&out);
    assert_eq!(w.len(), 1);
    assert!(w[0].1.as_deref().unwrap().contains("no other verifier"));
    // Repeated ticks do not repeat the report.
    assert!(e.handle(Event::Tick, 3).is_empty());
    let out = e.handle(
        Event::VerifierJoined {
            verifier: node(3),
            formats: vec![SceneFormat::Gltf],
            standing: Default::default(),
        },
        4,
    );
    let third = offers(&out);
    assert_eq!(third, vec![(node(3), third[0].1, task(0))]);
    let s = settlements(&vote(&mut e, third[0], true, 5));
    assert!(s[0].passed, "2-1 for the result");
    assert_eq!(s[0].dissenting, vec![first[1].0]);
}

#[test]
fn with_fewer_fresh_verifiers_than_asked_those_connected_decide() {
    // Quorum 2 asks three fresh verifiers; only one other is connected.
    let mut e = engine(2, &[1, 2, 3]);
    let first = offers(&open(&mut e, task(0), 0));
    vote(&mut e, first[0], false, 1);
    vote(&mut e, first[1], true, 2);
    let fresh = offers(&arbitrated(&mut e, task(0), None, 3));
    assert_eq!(fresh.len(), 1);
    let s = settlements(&vote(&mut e, fresh[0], true, 4));
    assert!(
        s[0].passed,
        "2-1 settles without waiting for verifiers that do not exist"
    );
}
