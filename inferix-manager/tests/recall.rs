//! Recall: a worker caught with a bad result has its results that passed
//! within the window checked again by the manager; a bad one is settled
//! and the verifiers that passed it are banned. Only recent results, at
//! most a few per worker, are remembered.

mod support;

use inferix_core::ids::{NodeId, TaskId};
use inferix_manager::{Command, Engine, Event, RecallConfig, Recalled, RoundConfig};
use support::*;

fn recalls(out: &[Command]) -> Vec<(TaskId, NodeId)> {
    out.iter()
        .filter_map(|c| match c {
            Command::Recall { task, worker } => Some((*task, *worker)),
            _ => None,
        })
        .collect()
}

fn settled_recalls(out: &[Command]) -> Vec<Recalled> {
    out.iter()
        .filter_map(|c| match c {
            Command::SettleRecall(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

fn open_for(e: &mut Engine, t: TaskId, worker: NodeId, now: u64) -> Vec<Command> {
    e.handle(
        Event::RoundOpened {
            task: t,
            worker,
            operator: None,
            needs: None,
            quorum: None,
        },
        now,
    )
}

/// Runs a round of `t` by `worker` at `now` to its end, every seat voting
/// `passed`; returns the commands of the last vote and who sat.
fn round(
    e: &mut Engine,
    t: TaskId,
    worker: NodeId,
    passed: bool,
    now: u64,
) -> (Vec<Command>, Vec<NodeId>) {
    let seats = offers(&open_for(e, t, worker, now));
    assert!(!seats.is_empty());
    let mut out = Vec::new();
    for s in &seats {
        out = vote(e, *s, passed, now);
    }
    let s = settlements(&out);
    assert_eq!(s.len(), 1, "{out:?}");
    assert_eq!(s[0].passed, passed);
    (out, seats.iter().map(|s| s.0).collect())
}

fn recalled(e: &mut Engine, t: TaskId, outcome: Option<bool>) -> Vec<Command> {
    e.handle(
        Event::Recalled {
            task: t,
            outcome: outcome.map(|p| (p, vec!["the manager's re-render differs".to_string()])),
        },
        0,
    )
}

#[test]
fn a_caught_workers_passed_results_are_recalled_and_a_bad_one_bans_its_passers() {
    let mut e = engine(2, &[1, 2, 3, 4, 5, 6]);
    let mut passers = Vec::new();
    for i in 0..3 {
        let (out, seats) = round(&mut e, task(i), WORKER, true, 10 + u64::from(i));
        assert!(recalls(&out).is_empty(), "passing recalls nothing");
        passers.push(seats);
    }
    // Another worker's rejection recalls nothing of this one.
    let (out, _) = round(&mut e, task(50), node(77), false, 20);
    assert!(recalls(&out).is_empty(), "{out:?}");

    let (out, _) = round(&mut e, task(3), WORKER, false, 30);
    let mut asked = recalls(&out);
    asked.sort();
    assert_eq!(
        asked,
        vec![(task(0), WORKER), (task(1), WORKER), (task(2), WORKER)]
    );
    assert_eq!(e.recall_memory(), 0, "the caught worker's list is spent");

    // Task 0 is bad: its passers are banned and the recall is settled.
    let out = recalled(&mut e, task(0), Some(false));
    let settled = settled_recalls(&out);
    assert_eq!(settled.len(), 1);
    assert_eq!(settled[0].task, task(0));
    assert_eq!(settled[0].worker, WORKER);
    let mut got = settled[0].passers.clone();
    got.sort();
    let mut want = passers[0].clone();
    want.sort();
    assert_eq!(got, want);
    for v in &want {
        assert!(e.verifiers().is_banned(v), "{v:?}");
    }
    // Answered twice, or good, or unchecked: nothing.
    assert!(recalled(&mut e, task(0), Some(false)).is_empty());
    assert!(recalled(&mut e, task(1), Some(true)).is_empty());
    assert!(recalled(&mut e, task(2), None).is_empty());
    assert!(
        recalled(&mut e, task(9), Some(false)).is_empty(),
        "never recalled"
    );
    // The banned verifiers sit on no round any more.
    let seats = offers(&open(&mut e, task(100), 40));
    assert!(!seats.is_empty());
    assert!(seats.iter().all(|s| !want.contains(&s.0)), "{seats:?}");
}

#[test]
fn a_result_that_passes_after_its_worker_was_caught_is_recalled_at_once() {
    let mut e = engine(1, &[1, 2, 3]);
    // Two rounds of the worker are open when one of them fails.
    let late = offers(&open(&mut e, task(0), 0));
    let (out, _) = round(&mut e, task(1), WORKER, false, 5);
    assert!(recalls(&out).is_empty(), "nothing passed yet");
    let out = vote(&mut e, late[0], true, 10);
    assert_eq!(settlements(&out).len(), 1);
    assert_eq!(recalls(&out), vec![(task(0), WORKER)]);
    assert_eq!(e.recall_memory(), 0, "not kept for a later recall");
    // Another worker's passes are remembered as usual.
    round(&mut e, task(2), node(77), true, 20);
    assert_eq!(e.recall_memory(), 1);
}

/// Quorum one, three verifiers, results remembered for a second, two per
/// worker.
fn short_memory_engine() -> Engine {
    let mut e = Engine::new(RoundConfig {
        quorum: 1,
        vote_timeout_ms: TIMEOUT,
        recall: RecallConfig {
            window_ms: 1_000,
            depth: 2,
        },
        forced_errors: inferix_manager::ForcedErrorConfig { rate: 0.0 },
        ..RoundConfig::default()
    });
    for v in [1, 2, 3] {
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

#[test]
fn only_results_within_the_window_and_the_depth_are_recalled() {
    let mut e = short_memory_engine();
    for (i, at) in [0, 10, 2_000, 2_010, 2_020].into_iter().enumerate() {
        round(&mut e, task(i as u32), WORKER, true, at);
    }
    assert_eq!(e.recall_memory(), 2, "the newest two");
    let (out, _) = round(&mut e, task(9), WORKER, false, 3_015);
    assert_eq!(
        recalls(&out),
        vec![(task(4), WORKER)],
        "task 3 is out of the window"
    );

    // A worker that leaves is forgotten once its window has passed.
    round(&mut e, task(20), node(88), true, 4_000);
    assert_eq!(e.recall_memory(), 1);
    e.handle(Event::Tick, 4_500);
    assert_eq!(e.recall_memory(), 1);
    e.handle(Event::Tick, 5_100);
    assert_eq!(e.recall_memory(), 0);
}

#[test]
fn results_read_back_after_a_restart_are_recalled_like_fresh_ones() {
    let mut e = short_memory_engine();
    // Read back in any order; one is already out of the window, and the
    // depth keeps the newest two of the rest.
    let now = 5_000;
    for (i, at) in [(0, 4_900), (1, 3_000), (2, 4_500), (3, 4_700)] {
        let out = e.handle(
            Event::Passed {
                task: task(i),
                worker: WORKER,
                passers: vec![node(1)],
                at,
            },
            now,
        );
        assert!(out.is_empty(), "{out:?}");
    }
    assert_eq!(e.recall_memory(), 2);
    // Newest first: an older one read back after them is not kept.
    let other = node(88);
    for (i, at) in [(20, 4_900), (21, 4_700), (22, 4_500)] {
        e.handle(
            Event::Passed {
                task: task(i),
                worker: other,
                passers: vec![node(2)],
                at,
            },
            now,
        );
    }
    let (out, _) = round(&mut e, task(30), other, false, now + 5);
    let mut asked = recalls(&out);
    asked.sort();
    assert_eq!(asked, vec![(task(20), other), (task(21), other)]);
    let (out, _) = round(&mut e, task(9), WORKER, false, now + 10);
    let mut asked = recalls(&out);
    asked.sort();
    assert_eq!(asked, vec![(task(0), WORKER), (task(3), WORKER)]);
    let settled = settled_recalls(&recalled(&mut e, task(0), Some(false)));
    assert_eq!(settled[0].passers, vec![node(1)]);
    assert!(e.verifiers().is_banned(&node(1)));
}
