//! Driving the engine's rounds in tests: an engine with verifiers joined,
//! and the commands of a kind among its answers.
#![allow(dead_code, unreachable_pub)]

use inferix_core::ids::{JobId, NodeId, TaskId};
use inferix_core::protocol::Verdict;
use inferix_core::renderer::SceneFormat;
use inferix_manager::{Command, Engine, Event, ForcedErrorConfig, RoundConfig, Settlement};

pub const TIMEOUT: u64 = 1_000;

pub fn node(n: u128) -> NodeId {
    NodeId(n)
}

pub fn task(i: u32) -> TaskId {
    TaskId::new(JobId(7), i)
}

pub const WORKER: NodeId = NodeId(99);

pub fn engine(quorum: usize, verifiers: &[u128]) -> Engine {
    let mut e = Engine::new(RoundConfig {
        quorum,
        vote_timeout_ms: TIMEOUT,
        reputation_penalty: 0.5,
        max_offers_per_verifier: 4,
        // Known-bad offers and audits have their own tests
        // (forced_errors.rs, audits.rs).
        forced_errors: ForcedErrorConfig { rate: 0.0 },
        audit: inferix_manager::AuditConfig {
            rate: 0.0,
            ..Default::default()
        },
        ..RoundConfig::default()
    });
    for v in verifiers {
        let out = e.handle(
            Event::VerifierJoined {
                verifier: node(*v),
                formats: vec![SceneFormat::Gltf],
                standing: Default::default(),
            },
            0,
        );
        assert!(out.is_empty(), "no round yet, nothing to offer: {out:?}");
    }
    e
}

/// The offers among `out`, as (verifier, verification id, task).
pub fn offers(out: &[Command]) -> Vec<(NodeId, u64, TaskId)> {
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

pub fn settlements(out: &[Command]) -> Vec<Settlement> {
    out.iter()
        .filter_map(|c| match c {
            Command::SettleRound(s) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

pub fn waiting(out: &[Command]) -> Vec<(TaskId, Option<String>)> {
    out.iter()
        .filter_map(|c| match c {
            Command::RoundWaiting { task, reason } => Some((*task, reason.clone())),
            _ => None,
        })
        .collect()
}

pub fn open(e: &mut Engine, t: TaskId, now: u64) -> Vec<Command> {
    e.handle(
        Event::RoundOpened {
            task: t,
            worker: WORKER,
            operator: None,
            needs: None,
            quorum: None,
        },
        now,
    )
}

pub fn vote(e: &mut Engine, offer: (NodeId, u64, TaskId), passed: bool, now: u64) -> Vec<Command> {
    e.handle(
        Event::VerdictReceived {
            verifier: offer.0,
            verdict: Verdict {
                verification: offer.1,
                task: offer.2,
                passed,
                reasons: if passed {
                    vec![]
                } else {
                    vec![format!("{:?} saw bad pixels", offer.0)]
                },
                clean: vec![],
                inconclusive: None,
            },
        },
        now,
    )
}
