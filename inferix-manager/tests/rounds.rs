//! Verification rounds driven through the engine: events in, commands out.

mod support;

use inferix_core::ids::{NodeId, TaskId};
use inferix_core::protocol::Verdict;
use inferix_core::renderer::SceneFormat;
use inferix_manager::{Command, Engine, Event, ForcedErrorConfig, RoundConfig};
use support::*;

#[test]
fn agreeing_quorum_settles_and_pays_both() {
    let mut e = engine(2, &[1, 2, 3]);
    let first = offers(&open(&mut e, task(0), 0));
    assert_eq!(first.len(), 2, "quorum two asks two verifiers");
    assert!(first.iter().all(|o| o.0 != WORKER));
    assert!(settlements(&vote(&mut e, first[0], true, 10)).is_empty());
    let s = settlements(&vote(&mut e, first[1], true, 20));
    assert_eq!(s.len(), 1);
    assert!(s[0].passed);
    assert_eq!(s[0].agreeing.len(), 2);
    assert!(s[0].dissenting.is_empty());
    assert!(!e.has_round(task(0)));
    assert!(e.verifiers().iter().all(|(_, v)| v.busy == 0));
}

#[test]
fn a_late_verifier_is_replaced_and_its_vote_drawn_again() {
    let mut e = engine(2, &[1, 2, 3]);
    let first = offers(&open(&mut e, task(0), 0));
    let (fast, slow) = (first[0], first[1]);
    vote(&mut e, fast, true, 10);
    assert!(
        e.handle(Event::Tick, TIMEOUT - 1).is_empty(),
        "not late yet"
    );
    let out = e.handle(Event::Tick, TIMEOUT);
    let again = offers(&out);
    assert_eq!(again.len(), 1, "the late vote is drawn again");
    assert!(![fast.0, slow.0].contains(&again[0].0));
    assert_eq!(
        e.verifiers().get(&slow.0).unwrap().busy,
        0,
        "the replaced verifier is no longer counted busy"
    );
    // Its late answer changes nothing; the replacement's decides.
    assert!(vote(&mut e, slow, false, TIMEOUT + 1).is_empty());
    let s = settlements(&vote(&mut e, again[0], true, TIMEOUT + 2));
    assert_eq!(s.len(), 1);
    assert!(s[0].passed);
    assert!(!s[0].agreeing.contains(&slow.0));
}

#[test]
fn a_verifier_that_disconnects_mid_round_is_replaced() {
    let mut e = engine(2, &[1, 2, 3]);
    let first = offers(&open(&mut e, task(0), 0));
    vote(&mut e, first[0], true, 1);
    let out = e.handle(
        Event::VerifierLeft {
            verifier: first[1].0,
        },
        2,
    );
    let again = offers(&out);
    assert_eq!(again.len(), 1);
    assert!(![first[0].0, first[1].0].contains(&again[0].0));
    assert!(settlements(&vote(&mut e, again[0], true, 3))[0].passed);
}

#[test]
fn with_the_last_other_verifier_gone_a_replaced_one_is_asked_again() {
    let mut e = engine(2, &[1, 2, 3]);
    let first = offers(&open(&mut e, task(0), 0));
    let (fast, slow) = (first[0], first[1]);
    vote(&mut e, fast, true, 1);
    let stand_in = offers(&e.handle(Event::Tick, TIMEOUT))[0];
    let out = e.handle(
        Event::VerifierLeft {
            verifier: stand_in.0,
        },
        TIMEOUT + 1,
    );
    let again = offers(&out);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].0, slow.0, "only the slow verifier is left to ask");
    assert!(settlements(&vote(&mut e, again[0], true, TIMEOUT + 2))[0].passed);
}

/// The demo: two verifiers, quorum two, each result takes longer to check
/// than the deadline. Nobody can replace anybody, so the late verdicts
/// count and every round settles; nothing is offered twice.
#[test]
fn two_verifiers_slower_than_the_deadline_still_settle_every_round() {
    let mut e = engine(2, &[1, 2]);
    let mut pending = Vec::new();
    for i in 0..12 {
        pending.extend(offers(&open(&mut e, task(i), 0)));
    }
    // Four offers at a time per verifier.
    assert_eq!(pending.len(), 8);
    let mut now = 0;
    let mut settled = Vec::new();
    let mut reported_late = 0;
    while let Some(offer) = (!pending.is_empty()).then(|| pending.remove(0)) {
        now += 3 * TIMEOUT;
        let out = e.handle(Event::Tick, now);
        assert!(offers(&out).is_empty(), "nobody else can take a vote");
        reported_late += waiting(&out).iter().filter(|w| w.1.is_some()).count();
        let out = vote(&mut e, offer, true, now);
        pending.extend(offers(&out));
        settled.extend(settlements(&out));
    }
    assert!(reported_late > 0, "late rounds are reported");
    let mut tasks: Vec<TaskId> = settled.iter().map(|s| s.task).collect();
    tasks.sort();
    assert_eq!(tasks, (0..12).map(task).collect::<Vec<_>>());
    assert!(settled.iter().all(|s| s.passed && s.agreeing.len() == 2));
    assert_eq!(e.open_rounds(), 0);
    assert!(e.verifiers().iter().all(|(_, v)| v.busy == 0));
}

#[test]
fn a_round_with_no_verifier_connected_is_reported_and_served_when_one_joins() {
    let mut e = engine(1, &[]);
    let out = open(&mut e, task(0), 0);
    assert!(offers(&out).is_empty());
    assert_eq!(waiting(&out).len(), 1);
    let out = e.handle(
        Event::VerifierJoined {
            verifier: node(5),
            formats: vec![],
            standing: Default::default(),
        },
        1,
    );
    let o = offers(&out);
    assert_eq!(o.len(), 1);
    assert_eq!(waiting(&out), vec![(task(0), None)], "no longer waiting");
    assert!(settlements(&vote(&mut e, o[0], true, 2))[0].passed);
}

#[test]
fn the_worker_never_verifies_its_own_result() {
    let mut e = engine(1, &[]);
    e.handle(
        Event::VerifierJoined {
            verifier: WORKER,
            formats: vec![SceneFormat::Gltf],
            standing: Default::default(),
        },
        0,
    );
    let out = open(&mut e, task(0), 0);
    assert!(offers(&out).is_empty());
    assert_eq!(waiting(&out).len(), 1);
}

#[test]
fn a_verdict_from_another_verifier_or_for_another_task_is_ignored() {
    let mut e = engine(1, &[1, 2]);
    let o = offers(&open(&mut e, task(0), 0))[0];
    let other = if o.0 == node(1) { node(2) } else { node(1) };
    assert!(vote(&mut e, (other, o.1, o.2), false, 1).is_empty());
    assert!(vote(&mut e, (o.0, o.1, task(5)), false, 1).is_empty());
    assert!(e.has_round(task(0)));
    assert!(settlements(&vote(&mut e, o, true, 2))[0].passed);
}

fn join(e: &mut Engine, id: u128, formats: Vec<SceneFormat>, now: u64) -> Vec<Command> {
    e.handle(
        Event::VerifierJoined {
            verifier: node(id),
            formats,
            standing: Default::default(),
        },
        now,
    )
}

fn open_needing(e: &mut Engine, t: TaskId, format: SceneFormat, now: u64) -> Vec<Command> {
    e.handle(
        Event::RoundOpened {
            task: t,
            worker: WORKER,
            operator: None,
            needs: Some(format),
            quorum: None,
        },
        now,
    )
}

fn inconclusive(e: &mut Engine, offer: (NodeId, u64, TaskId), now: u64) -> Vec<Command> {
    e.handle(
        Event::VerdictReceived {
            verifier: offer.0,
            verdict: Verdict {
                verification: offer.1,
                task: offer.2,
                passed: true,
                reasons: vec![],
                clean: vec![],
                inconclusive: Some("cannot render this scene".into()),
            },
        },
        now,
    )
}

#[test]
fn only_verifiers_that_render_the_format_sit_rounds_with_re_renders() {
    let mut e = engine(1, &[]);
    join(&mut e, 1, vec![], 0);
    join(&mut e, 2, vec![SceneFormat::Gltf], 0);
    // Every glTF round with crop challenges goes to the glTF renderer, never
    // to the verifier that cannot re-render (it would only say "could not
    // check").
    for i in 0..8 {
        let out = open_needing(&mut e, task(i), SceneFormat::Gltf, 0);
        assert_eq!(offers(&out)[0].0, node(2), "round {i}");
        assert!(settlements(&vote(&mut e, offers(&out)[0], true, 1))[0].passed);
    }
    // A .blend round waits, naming what it waits for, until a verifier
    // with Blender joins; it is then that verifier's.
    let out = open_needing(&mut e, task(20), SceneFormat::Blend, 2);
    assert!(offers(&out).is_empty(), "{out:?}");
    let why = waiting(&out)[0].1.clone().unwrap();
    assert!(why.contains("renders .blend scenes"), "{why}");
    let out = join(&mut e, 3, vec![SceneFormat::Gltf, SceneFormat::Blend], 3);
    assert_eq!(offers(&out)[0].0, node(3));
    // Rounds that only check the files take any verifier.
    let mut seated = std::collections::BTreeSet::new();
    for i in 30..60 {
        let o = offers(&open(&mut e, task(i), 4))[0];
        seated.insert(o.0);
        vote(&mut e, o, true, 5);
    }
    assert!(seated.contains(&node(1)), "{seated:?}");
}

#[test]
fn an_inconclusive_answer_is_not_a_pass_and_its_seat_is_drawn_again() {
    let mut e = engine(1, &[1, 2]);
    let first = offers(&open_needing(&mut e, task(0), SceneFormat::Gltf, 0))[0];
    let out = inconclusive(&mut e, first, 1);
    assert!(settlements(&out).is_empty(), "nothing decided: {out:?}");
    assert!(out.iter().any(|c| matches!(
        c,
        Command::VerifierInconclusive { verifier, task: t, revoked: None, .. }
            if *verifier == first.0 && *t == task(0)
    )));
    let second = offers(&out);
    assert_eq!(second.len(), 1, "{out:?}");
    assert_ne!(second[0].0, first.0, "the seat goes to the other verifier");
    assert_eq!(e.verifiers().get(&first.0).unwrap().busy, 0);
    let settled = settlements(&vote(&mut e, second[0], false, 2));
    assert!(!settled[0].passed);
    assert_eq!(settled[0].agreeing, vec![second[0].0]);
    assert!(
        settled[0].dissenting.is_empty(),
        "an inconclusive vote is no vote"
    );
}

#[test]
fn with_nobody_else_left_an_inconclusive_verifier_is_asked_again_after_a_deadline() {
    let mut e = engine(1, &[1]);
    let first = offers(&open_needing(&mut e, task(0), SceneFormat::Gltf, 0))[0];
    let out = inconclusive(&mut e, first, 10);
    assert!(offers(&out).is_empty(), "not at once: {out:?}");
    assert!(waiting(&out).iter().any(|(_, why)| why.is_some()));
    assert!(offers(&e.handle(Event::Tick, 10 + TIMEOUT / 2)).is_empty());
    let again = offers(&e.handle(Event::Tick, 10 + TIMEOUT));
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].0, node(1));
    assert!(settlements(&vote(&mut e, again[0], true, 20 + TIMEOUT))[0].passed);
}

#[test]
fn a_verifier_that_keeps_answering_inconclusive_loses_the_format_even_across_reconnects() {
    let mut e = engine(1, &[1, 2]);
    let mut lost = None;
    for i in 0..16 {
        let out = open_needing(&mut e, task(i), SceneFormat::Gltf, 0);
        let mut o = offers(&out);
        // Verifier 1 claims glTF but never renders it; 2 does.
        while let Some(offer) = o.pop() {
            let out = if offer.0 == node(1) {
                inconclusive(&mut e, offer, 1)
            } else {
                vote(&mut e, offer, true, 1)
            };
            for c in &out {
                if let Command::VerifierInconclusive {
                    revoked: Some(f), ..
                } = c
                {
                    lost = Some((i, *f));
                }
            }
            o.extend(offers(&out));
        }
        assert!(!e.has_round(task(i)), "round {i} settled by verifier 2");
    }
    let (when, format) = lost.expect("verifier 1 lost glTF");
    assert_eq!(format, SceneFormat::Gltf);
    assert!(when < 16);
    assert!(!e
        .verifiers()
        .get(&node(1))
        .unwrap()
        .renders(SceneFormat::Gltf));
    e.handle(Event::VerifierLeft { verifier: node(1) }, 2);
    join(&mut e, 1, vec![SceneFormat::Gltf], 3);
    assert!(
        !e.verifiers()
            .get(&node(1))
            .unwrap()
            .renders(SceneFormat::Gltf),
        "reconnecting does not restore a format it failed"
    );
    for i in 100..110 {
        let o = offers(&open_needing(&mut e, task(i), SceneFormat::Gltf, 4))[0];
        assert_eq!(o.0, node(2));
        vote(&mut e, o, true, 5);
    }
}

#[test]
fn an_occasional_inconclusive_answer_costs_nothing() {
    let mut e = engine(1, &[1]);
    for i in 0..10 {
        let o = offers(&open_needing(&mut e, task(i), SceneFormat::Gltf, 0))[0];
        let now = 1 + u64::from(i) * 10 * TIMEOUT;
        if i % 2 == 0 {
            inconclusive(&mut e, o, now);
            let again = offers(&e.handle(Event::Tick, now + TIMEOUT));
            assert!(settlements(&vote(&mut e, again[0], true, now + TIMEOUT))[0].passed);
        } else {
            vote(&mut e, o, true, now);
        }
    }
    assert!(e
        .verifiers()
        .get(&node(1))
        .unwrap()
        .renders(SceneFormat::Gltf));
}

#[test]
fn a_vote_already_cast_survives_its_verifiers_disconnect() {
    let mut e = engine(2, &[1, 2, 3]);
    let o = offers(&open(&mut e, task(0), 0));
    assert_eq!(o.len(), 2);
    assert!(vote(&mut e, o[0], true, 1).is_empty());
    let out = e.handle(Event::VerifierLeft { verifier: o[0].0 }, 2);
    assert!(
        offers(&out).is_empty(),
        "its seat is not drawn again: {out:?}"
    );
    let settled = settlements(&vote(&mut e, o[1], true, 3));
    assert!(settled[0].passed);
    let mut agreeing = settled[0].agreeing.clone();
    agreeing.sort();
    let mut both = vec![o[0].0, o[1].0];
    both.sort();
    assert_eq!(agreeing, both, "the departed verifier's vote counted");
}

#[test]
fn an_abandoned_round_frees_its_verifiers() {
    let mut e = engine(2, &[1, 2]);
    open(&mut e, task(0), 0);
    assert!(e.verifiers().iter().all(|(_, v)| v.busy == 1));
    e.handle(Event::RoundAbandoned { task: task(0) }, 1);
    assert!(!e.has_round(task(0)));
    assert!(e.verifiers().iter().all(|(_, v)| v.busy == 0));
}

#[test]
fn a_backlog_of_rounds_is_served_oldest_first_as_seats_free() {
    // Two verifiers holding one offer each: one round at a time.
    let mut e = Engine::new(RoundConfig {
        quorum: 2,
        vote_timeout_ms: TIMEOUT,
        reputation_penalty: 0.5,
        max_offers_per_verifier: 1,
        // Known-bad offers have their own tests (forced_errors.rs).
        forced_errors: ForcedErrorConfig { rate: 0.0 },
        ..RoundConfig::default()
    });
    for v in [1, 2] {
        e.handle(
            Event::VerifierJoined {
                verifier: node(v),
                formats: vec![SceneFormat::Gltf],
                standing: Default::default(),
            },
            0,
        );
    }
    let first = offers(&open(&mut e, task(0), 0));
    assert_eq!(first.len(), 2);
    for i in 1..50 {
        let out = open(&mut e, task(i), i as u64);
        assert!(offers(&out).is_empty(), "every seat is taken: {out:?}");
    }
    // Each settled round hands both freed seats to the oldest waiting one.
    let mut current = first;
    for i in 0..50 {
        assert!(current.iter().all(|o| o.2 == task(i)), "{current:?}");
        let mut next = offers(&vote(&mut e, current[0], true, 100));
        let waiting = usize::from(i < 49);
        assert_eq!(next.len(), waiting, "the freed seat goes to task {}", i + 1);
        let out = vote(&mut e, current[1], true, 100);
        assert_eq!(settlements(&out).len(), 1);
        next.extend(offers(&out));
        current = next;
        if i == 49 {
            assert!(current.is_empty());
        } else {
            assert_eq!(current.len(), 2);
        }
    }
    assert_eq!(e.open_rounds(), 0);
}

/// Seats of `rounds` quorum-two rounds among verifiers `ids`, each round
/// answered at once (so every verifier is free at every draw).
fn seatings(key: [u8; 32], ids: &[u128], rounds: u32) -> Vec<Vec<NodeId>> {
    let mut e = Engine::new(RoundConfig {
        quorum: 2,
        draw_key: key,
        // Known-bad offers have their own tests (forced_errors.rs).
        forced_errors: ForcedErrorConfig { rate: 0.0 },
        ..RoundConfig::default()
    });
    for v in ids {
        e.handle(
            Event::VerifierJoined {
                verifier: node(*v),
                formats: vec![SceneFormat::Gltf],
                standing: Default::default(),
            },
            0,
        );
    }
    (0..rounds)
        .map(|i| {
            let o = offers(&open(&mut e, task(i), 0));
            assert_eq!(o.len(), 2);
            for x in &o {
                vote(&mut e, *x, true, 1);
            }
            o.iter().map(|x| x.0).collect()
        })
        .collect()
}

/// Two colluding verifiers with the lowest node ids (cheap to grind) that
/// answer at once, beside two honest ones: they hold both seats of a
/// quorum-two round about as often as chance has it (one round in six),
/// not in every round as when ties went to the lowest id.
#[test]
fn low_node_ids_and_instant_answers_win_no_more_than_their_share_of_seats() {
    let colluders = [node(1), node(2)];
    let seats = seatings([7; 32], &[1, 2, 1_000, 1_001], 600);
    let both = seats
        .iter()
        .filter(|s| s.iter().all(|v| colluders.contains(v)))
        .count() as f64
        / seats.len() as f64;
    assert!(
        (0.08..0.26).contains(&both),
        "colluders held both seats in {both:.3} of rounds"
    );
    let mut per_verifier = std::collections::BTreeMap::new();
    for v in seats.iter().flatten() {
        *per_verifier.entry(*v).or_insert(0usize) += 1;
    }
    for (v, n) in &per_verifier {
        assert!((240..360).contains(n), "{v:?} sat {n} times of 1,200 seats");
    }
}

/// The draw is the manager's: the same key seats the same verifiers, another
/// key others, so nobody outside can predict it.
#[test]
fn the_draw_follows_the_key() {
    let ids = [1, 2, 3, 4, 5];
    assert_eq!(seatings([1; 32], &ids, 50), seatings([1; 32], &ids, 50));
    assert_ne!(seatings([1; 32], &ids, 50), seatings([2; 32], &ids, 50));
}

fn join_run_by(e: &mut Engine, id: u128, operator: &str, reputation: f64) -> Vec<Command> {
    e.handle(
        Event::VerifierJoined {
            verifier: node(id),
            formats: vec![SceneFormat::Gltf],
            standing: inferix_manager::VerifierStanding {
                operator: Some(operator.into()),
                reputation,
            },
        },
        0,
    )
}

fn open_run_by(e: &mut Engine, t: TaskId, operator: &str) -> Vec<Command> {
    e.handle(
        Event::RoundOpened {
            task: t,
            worker: WORKER,
            operator: Some(operator.into()),
            needs: None,
            quorum: None,
        },
        0,
    )
}

#[test]
fn no_verifier_of_the_workers_own_account_sits_on_its_round() {
    // Three verifiers run by the worker's operator, under any keys, and
    // one run by somebody else: every round of that worker's results
    // seats the stranger only, and waits for a second stranger.
    let mut e = engine(2, &[]);
    for id in [1, 2, 3] {
        join_run_by(&mut e, id, "mallory", 1.0);
    }
    join_run_by(&mut e, 4, "honest", 1.0);
    for i in 0..20 {
        let out = open_run_by(&mut e, task(i), "mallory");
        let seated: Vec<NodeId> = offers(&out).iter().map(|o| o.0).collect();
        assert_eq!(seated, [node(4)], "round {i}: {out:?}");
        let why = waiting(&out);
        assert!(
            why.iter()
                .any(|(_, r)| r.as_deref().is_some_and(|r| r.contains("its operator's"))),
            "the round says why it waits: {why:?}"
        );
        e.handle(Event::RoundAbandoned { task: task(i) }, 0);
    }
    // Another account's worker is judged by mallory's verifiers as by
    // anyone's.
    let out = open_run_by(&mut e, task(99), "carol");
    assert_eq!(offers(&out).len(), 2);
}

#[test]
fn a_verifier_rejoins_with_its_accounts_lowered_reputation() {
    // Reputation 0 (an account whose verifiers were caught) seats nothing,
    // and neither a reconnection nor another key of the account helps.
    let mut e = engine(1, &[]);
    join_run_by(&mut e, 1, "caught", 0.0);
    join_run_by(&mut e, 2, "caught", 0.0);
    let out = open(&mut e, task(1), 0);
    assert!(offers(&out).is_empty(), "{out:?}");
    let out = join_run_by(&mut e, 3, "fine", 1.0);
    assert_eq!(
        offers(&out).iter().map(|o| o.0).collect::<Vec<_>>(),
        [node(3)]
    );
}
