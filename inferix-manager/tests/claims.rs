//! Bad-result claims: which frames may be claimed, who re-renders them, and
//! what happens when that verifier is late or leaves.

use inferix_core::ids::{JobId, NodeId, TaskId};
use inferix_core::protocol::{ErrorCode, Verdict};
use inferix_core::renderer::SceneFormat;
use inferix_core::task::{FrameOutput, Lease, Task, TaskResult, TaskStatus};
use inferix_core::ContentHash;
use inferix_manager::claims::{claim_checks, ClaimCheck};
use inferix_manager::{Command, Engine, Event, ForcedErrorConfig, RoundConfig};

const TIMEOUT: u64 = 1_000;
const WINDOW: u64 = 10_000;
const WORKER: NodeId = NodeId(99);

/// Task `index` of job 7 with `frames`, accepted at `accepted_at`.
fn accepted(index: u32, frames: Vec<u32>, accepted_at: u64) -> Task {
    let mut t = Task::new(TaskId::new(JobId(7), index), frames.clone(), 0);
    t.lease(
        Lease {
            worker: WORKER,
            manager: NodeId(1),
            deadline_ms: 100_000,
            scene: None,
        },
        0,
    )
    .unwrap();
    let result = TaskResult {
        worker: WORKER,
        frames: frames
            .iter()
            .map(|&frame| FrameOutput {
                frame,
                pixel_hash: ContentHash::of(&[frame as u8]),
                blob: ContentHash::of(&[frame as u8]),
                width: 4,
                height: 4,
                tile_root: ContentHash::of(b"root"),
            })
            .collect(),
        render_ms: 5,
        attempt: 1,
        scene: ContentHash::of(b"scene"),
        device_class: String::new(),
        public_key: vec![],
        signature: vec![],
    };
    t.complete(result, 1).unwrap();
    t.transition(TaskStatus::Verifying, 2, "sent").unwrap();
    t.transition(TaskStatus::Accepted, accepted_at, "verified")
        .unwrap();
    t
}

fn engine(renderers: &[u128]) -> Engine {
    engine_with_quorum(1, renderers)
}

fn engine_with_quorum(quorum: usize, renderers: &[u128]) -> Engine {
    let mut e = Engine::new(RoundConfig {
        quorum,
        vote_timeout_ms: TIMEOUT,
        // Known-bad offers have their own tests (forced_errors.rs).
        forced_errors: ForcedErrorConfig { rate: 0.0 },
        ..RoundConfig::default()
    });
    for v in renderers {
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

fn offers(out: &[Command]) -> Vec<(NodeId, u64, ClaimCheck)> {
    out.iter()
        .filter_map(|c| match c {
            Command::OfferClaimCheck {
                verifier,
                verification,
                check,
            } => Some((*verifier, *verification, check.clone())),
            _ => None,
        })
        .collect()
}

fn check(frames: Vec<u32>) -> ClaimCheck {
    ClaimCheck {
        claim: 1,
        task: TaskId::new(JobId(7), 0),
        frames,
        worker: WORKER,
        operator: None,
        reason: "grainy".into(),
        format: SceneFormat::Gltf,
    }
}

#[test]
fn a_claim_is_split_per_task_and_refused_for_frames_it_may_not_name() {
    let tasks = vec![accepted(0, vec![1, 2], 100), accepted(1, vec![3, 4], 100)];
    let checks =
        claim_checks(4, SceneFormat::Gltf, &tasks, &[3, 1, 1], "bad", 200, WINDOW).unwrap();
    assert_eq!(checks.len(), 2);
    assert_eq!(checks[0].frames, vec![1], "duplicates are named once");
    assert_eq!(checks[1].frames, vec![3]);
    assert!(checks.iter().all(|c| c.worker == WORKER && c.claim == 4));

    let err = |frames: &[u32], now| {
        claim_checks(4, SceneFormat::Gltf, &tasks, frames, "bad", now, WINDOW).unwrap_err()
    };
    assert_eq!(
        err(&[], 200),
        (
            ErrorCode::InvalidRequest,
            "a claim names at least one frame".into()
        )
    );
    assert!(err(&[9], 200).1.contains("not part of"));
    assert!(err(&[1], 100 + WINDOW + 1)
        .1
        .contains("confirmation window"));
    let mut rendering = vec![Task::new(TaskId::new(JobId(7), 0), vec![1], 0)];
    rendering[0].status = TaskStatus::Queued;
    let e = claim_checks(4, SceneFormat::Gltf, &rendering, &[1], "bad", 200, WINDOW).unwrap_err();
    assert!(e.1.contains("has not been accepted"), "{}", e.1);
}

#[test]
fn a_check_goes_to_a_renderer_other_than_the_worker_and_its_verdict_settles_it() {
    let mut e = engine(&[]);
    e.handle(
        Event::VerifierJoined {
            verifier: NodeId(1),
            formats: vec![],
            standing: Default::default(),
        },
        0,
    );
    e.handle(
        Event::VerifierJoined {
            verifier: WORKER,
            formats: vec![SceneFormat::Gltf],
            standing: Default::default(),
        },
        0,
    );
    let out = e.handle(
        Event::ClaimFiled {
            checks: vec![check(vec![2])],
        },
        0,
    );
    assert!(
        matches!(&out[..], [Command::ClaimRefused { claim: 1, .. }]),
        "no renderer but the worker itself: {out:?}"
    );
    e.handle(
        Event::VerifierJoined {
            verifier: NodeId(2),
            formats: vec![SceneFormat::Gltf],
            standing: Default::default(),
        },
        0,
    );
    let o = offers(&e.handle(
        Event::ClaimFiled {
            checks: vec![check(vec![2])],
        },
        0,
    ));
    assert_eq!(o.len(), 1);
    assert_eq!(o[0].0, NodeId(2));
    assert_eq!(e.verifiers().get(&NodeId(2)).unwrap().busy, 1);
    let out = e.handle(
        Event::VerdictReceived {
            verifier: NodeId(2),
            verdict: Verdict {
                verification: o[0].1,
                task: o[0].2.task,
                passed: false,
                reasons: vec!["frame 2 differs".into()],
                clean: vec![],
                inconclusive: None,
            },
        },
        5,
    );
    let Some(Command::SettleClaim(v)) = out.first() else {
        panic!("settled: {out:?}");
    };
    assert!(
        v.upheld,
        "frames that differ from the re-render uphold the claim"
    );
    assert_eq!(v.verifiers, [NodeId(2)]);
    assert!(v.dissenting.is_empty());
    assert_eq!(v.reasons, vec!["frame 2 differs".to_string()]);
    assert_eq!(e.verifiers().get(&NodeId(2)).unwrap().busy, 0);
    assert!(!e.is_awaited_verification(o[0].1));
}

#[test]
fn a_late_or_departed_verifier_is_replaced_and_a_lone_one_asked_again() {
    let mut e = engine(&[1, 2]);
    let first = offers(&e.handle(
        Event::ClaimFiled {
            checks: vec![check(vec![1])],
        },
        0,
    ));
    assert_eq!(first.len(), 1);
    assert!(offers(&e.handle(Event::Tick, TIMEOUT - 1)).is_empty());
    let second = offers(&e.handle(Event::Tick, TIMEOUT));
    assert_eq!(second.len(), 1, "late: drawn again");
    assert_ne!(second[0].0, first[0].0);
    assert_eq!(e.verifiers().get(&first[0].0).unwrap().busy, 0);
    // The replacement leaves: the first is the only renderer left.
    let third = offers(&e.handle(
        Event::VerifierLeft {
            verifier: second[0].0,
        },
        TIMEOUT + 1,
    ));
    assert_eq!(third.len(), 1);
    assert_eq!(third[0].0, first[0].0);
    // The first answer was dropped: its verdict is no longer awaited.
    assert!(!e.is_awaited_verification(first[0].1));
    assert!(e.is_awaited_verification(third[0].1));
}

#[test]
fn a_check_whose_renderer_left_waits_and_resumes_when_one_joins() {
    let mut e = engine(&[1]);
    let first = offers(&e.handle(
        Event::ClaimFiled {
            checks: vec![check(vec![1])],
        },
        0,
    ));
    let out = e.handle(
        Event::VerifierLeft {
            verifier: first[0].0,
        },
        1,
    );
    assert!(out
        .iter()
        .any(|c| matches!(c, Command::ClaimWaiting { claim: 1, .. })));
    assert!(offers(&out).is_empty());
    assert!(
        e.handle(Event::Tick, 2).is_empty(),
        "a waiting check is not reported again at every tick"
    );
    e.handle(
        Event::VerifierJoined {
            verifier: NodeId(3),
            formats: vec![SceneFormat::Gltf],
            standing: Default::default(),
        },
        2,
    );
    let again = offers(&e.handle(Event::Tick, 3));
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].0, NodeId(3));
}

#[test]
fn an_inconclusive_re_render_decides_nothing_and_goes_to_another_renderer() {
    let mut e = engine(&[1, 2]);
    let first = offers(&e.handle(
        Event::ClaimFiled {
            checks: vec![check(vec![1])],
        },
        0,
    ));
    let out = e.handle(
        Event::VerdictReceived {
            verifier: first[0].0,
            verdict: Verdict {
                verification: first[0].1,
                task: first[0].2.task,
                passed: false,
                reasons: vec![],
                clean: vec![],
                inconclusive: Some("render failed".into()),
            },
        },
        5,
    );
    assert!(
        !out.iter().any(|c| matches!(c, Command::SettleClaim(_))),
        "could not check is neither upheld nor dismissed: {out:?}"
    );
    let second = offers(&out);
    assert_eq!(second.len(), 1, "{out:?}");
    assert_ne!(second[0].0, first[0].0);
    assert_eq!(e.verifiers().get(&first[0].0).unwrap().busy, 0);
}

#[test]
fn a_blend_claim_goes_only_to_a_blender_verifier() {
    let mut e = engine(&[1]);
    let blend = ClaimCheck {
        format: SceneFormat::Blend,
        ..check(vec![1])
    };
    let out = e.handle(
        Event::ClaimFiled {
            checks: vec![blend.clone()],
        },
        0,
    );
    assert!(
        matches!(&out[..], [Command::ClaimRefused { reason, .. }] if reason.contains(".blend")),
        "{out:?}"
    );
    e.handle(
        Event::VerifierJoined {
            verifier: NodeId(2),
            formats: vec![SceneFormat::Blend],
            standing: Default::default(),
        },
        1,
    );
    let o = offers(&e.handle(
        Event::ClaimFiled {
            checks: vec![blend],
        },
        2,
    ));
    assert_eq!(o[0].0, NodeId(2));
}

#[test]
fn a_frame_is_claimed_once() {
    let mut t = accepted(0, vec![1, 2, 3], 100);
    t.claims.push(inferix_core::task::TaskClaim {
        frames: vec![2],
        reason: "grainy".into(),
        filed_ms: 150,
        bond: 10,
        payer: inferix_core::ledger::Account::User("ana".into()),
        upheld: Some(true),
    });
    let tasks = vec![t];
    let e = claim_checks(5, SceneFormat::Gltf, &tasks, &[1, 2], "again", 200, WINDOW).unwrap_err();
    assert_eq!(e.0, ErrorCode::InvalidRequest);
    assert!(
        e.1.contains("frame 2 was claimed already (upheld)"),
        "{}",
        e.1
    );
    let ok = claim_checks(
        5,
        SceneFormat::Gltf,
        &tasks,
        &[1, 3],
        "other frames",
        200,
        WINDOW,
    );
    assert_eq!(ok.unwrap()[0].frames, vec![1, 3]);
}

#[test]
fn claims_resumed_after_a_restart_wait_for_a_renderer_instead_of_being_refused() {
    let mut e = engine(&[]);
    let out = e.handle(
        Event::ClaimResumed {
            checks: vec![check(vec![1])],
        },
        0,
    );
    assert!(
        matches!(&out[..], [Command::ClaimWaiting { claim: 1, .. }]),
        "{out:?}"
    );
    e.handle(
        Event::VerifierJoined {
            verifier: NodeId(3),
            formats: vec![SceneFormat::Gltf],
            standing: Default::default(),
        },
        1,
    );
    let o = offers(&e.handle(Event::Tick, 2));
    assert_eq!(o.len(), 1);
    assert_eq!(o[0].0, NodeId(3));
}

#[test]
fn the_renderer_of_a_claim_is_drawn_not_the_lowest_id_or_least_busy() {
    let mut chosen = std::collections::BTreeMap::new();
    for claim in 0..200u64 {
        let mut e = engine(&[1, 2, 3, 4]);
        let c = ClaimCheck {
            claim,
            ..check(vec![1])
        };
        let o = offers(&e.handle(Event::ClaimFiled { checks: vec![c] }, 0));
        *chosen.entry(o[0].0).or_insert(0u32) += 1;
    }
    assert_eq!(chosen.len(), 4, "{chosen:?}");
    assert!(chosen.values().all(|n| *n > 20), "{chosen:?}");
}

#[test]
fn a_banned_renderer_cannot_take_a_claim() {
    use inferix_manager::claims::can_check;
    let mut e = engine(&[1]);
    assert!(can_check(e.verifiers(), SceneFormat::Gltf, WORKER, &None));
    e.verifiers_mut().ban(NodeId(1));
    assert!(!can_check(e.verifiers(), SceneFormat::Gltf, WORKER, &None));
    let out = e.handle(
        Event::ClaimFiled {
            checks: vec![check(vec![1])],
        },
        0,
    );
    assert!(
        matches!(&out[..], [Command::ClaimRefused { .. }]),
        "{out:?}"
    );
}

#[test]
fn no_verifier_of_the_workers_account_redraws_its_claimed_frames() {
    use inferix_manager::claims::can_check;
    let mut e = engine(&[]);
    for v in [1, 2] {
        e.handle(
            Event::VerifierJoined {
                verifier: NodeId(v),
                formats: vec![SceneFormat::Gltf],
                standing: inferix_manager::VerifierStanding {
                    operator: Some("farm".into()),
                    reputation: 1.0,
                },
            },
            0,
        );
    }
    let farm = Some("farm".to_string());
    assert!(!can_check(e.verifiers(), SceneFormat::Gltf, WORKER, &farm));
    assert!(can_check(e.verifiers(), SceneFormat::Gltf, WORKER, &None));
    e.handle(
        Event::VerifierJoined {
            verifier: NodeId(3),
            formats: vec![SceneFormat::Gltf],
            standing: Default::default(),
        },
        0,
    );
    for claim in 0..20 {
        let c = ClaimCheck {
            claim,
            operator: farm.clone(),
            ..check(vec![1])
        };
        let o = offers(&e.handle(Event::ClaimFiled { checks: vec![c] }, 0));
        assert_eq!(o[0].0, NodeId(3), "claim {claim}");
    }
}

fn answer(
    e: &mut Engine,
    offer: &(NodeId, u64, ClaimCheck),
    upheld: bool,
    now: u64,
) -> Vec<Command> {
    e.handle(
        Event::VerdictReceived {
            verifier: offer.0,
            verdict: Verdict {
                verification: offer.1,
                task: offer.2.task,
                passed: !upheld,
                reasons: if upheld {
                    vec![format!("{} sees a difference", offer.0)]
                } else {
                    vec![]
                },
                clean: vec![],
                inconclusive: None,
            },
        },
        now,
    )
}

fn settled(out: &[Command]) -> Option<inferix_manager::ClaimVerdict> {
    out.iter().find_map(|c| match c {
        Command::SettleClaim(v) => Some(v.clone()),
        _ => None,
    })
}

#[test]
fn a_claim_is_decided_by_a_quorum_of_renderers_and_a_split_asks_one_more() {
    let mut e = engine_with_quorum(2, &[1, 2, 3, 4]);
    let asked = offers(&e.handle(
        Event::ClaimFiled {
            checks: vec![check(vec![1])],
        },
        0,
    ));
    assert_eq!(asked.len(), 2, "two renderers redraw the frames");
    assert_ne!(asked[0].0, asked[1].0);
    // One renderer alone decides nothing.
    let out = answer(&mut e, &asked[0], true, 1);
    assert!(settled(&out).is_none(), "{out:?}");
    // 1–1: one more renderer, not yet asked.
    let out = answer(&mut e, &asked[1], false, 2);
    assert!(settled(&out).is_none(), "{out:?}");
    let third = offers(&out);
    assert_eq!(third.len(), 1, "{out:?}");
    assert!(!asked.iter().any(|a| a.0 == third[0].0));
    // 2–1 upholds it; the outvoted renderer loses reputation and pay.
    let out = answer(&mut e, &third[0], true, 3);
    let v = settled(&out).expect("settled");
    assert!(v.upheld);
    assert_eq!(v.verifiers.len(), 2);
    assert!(v.verifiers.contains(&asked[0].0) && v.verifiers.contains(&third[0].0));
    assert_eq!(v.dissenting, [asked[1].0]);
    assert_eq!(
        e.verifiers().get(&asked[1].0).unwrap().reputation,
        0.5,
        "outvoted"
    );
    for a in asked.iter().chain(&third) {
        assert_eq!(e.verifiers().get(&a.0).unwrap().busy, 0);
    }
}

#[test]
fn a_claim_waits_for_a_full_panel_rather_than_trusting_one_renderer() {
    let mut e = engine_with_quorum(2, &[1]);
    let out = e.handle(
        Event::ClaimFiled {
            checks: vec![check(vec![1])],
        },
        0,
    );
    let asked = offers(&out);
    assert_eq!(asked.len(), 1);
    assert!(out
        .iter()
        .any(|c| matches!(c, Command::ClaimWaiting { reason, .. } if reason.contains("2 of 2"))));
    let out = answer(&mut e, &asked[0], false, 1);
    assert!(settled(&out).is_none(), "{out:?}");
    let out = e.handle(
        Event::VerifierJoined {
            verifier: NodeId(2),
            formats: vec![SceneFormat::Gltf],
            standing: Default::default(),
        },
        2,
    );
    assert!(offers(&out).is_empty(), "joins are served at the tick");
    let second = offers(&e.handle(Event::Tick, 3));
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].0, NodeId(2));
    let v = settled(&answer(&mut e, &second[0], false, 4)).expect("settled");
    assert!(!v.upheld);
    assert_eq!(v.verifiers, [NodeId(1), NodeId(2)]);
}
