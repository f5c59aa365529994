//! Forced errors (Truebit's idea): known-bad results slipped in among real
//! ones, so that a verifier that does not really check is caught.
//!
//! Each time a verifier is seated on a round, a keyed draw decides, at
//! [`ForcedErrorConfig::rate`], whether it also gets a known-bad result to
//! check. The driver builds it from results the network has seen (another
//! task's frames offered as this one's), so it arrives as an ordinary
//! verification offer, counts in the verifier's load like one, and only the
//! manager knows it is bad. A verifier that passes it is caught: its
//! reputation goes to zero, it is seated on nothing any more (reconnecting
//! with the same key included), and the driver forfeits its earnings and
//! disconnects it. One that fails it earns a bounty. An inconclusive or
//! missing answer changes nothing (the other rules deal with those).
//!
//! At the default rate of 5 %, an always-pass verifier survives 100
//! verifications with probability 0.95¹⁰⁰ ≈ 0.6 %, and 20 on average.

use std::collections::HashMap;

use inferix_core::ids::NodeId;
use inferix_core::protocol::Verdict;

use crate::verifiers::VerifierPool;
use crate::Command;

/// How often known-bad results are slipped in.
#[derive(Debug, Clone, PartialEq)]
pub struct ForcedErrorConfig {
    /// Chance, per seat given to a verifier, that it also gets a known-bad
    /// result (0 turns forced errors off).
    pub rate: f64,
}

impl Default for ForcedErrorConfig {
    fn default() -> Self {
        Self { rate: 0.05 }
    }
}

/// Known-bad offers in flight, and the rules they follow.
#[derive(Debug)]
pub(crate) struct ForcedErrors {
    cfg: ForcedErrorConfig,
    draw_key: [u8; 32],
    timeout_ms: u64,
    /// Verification id → (verifier, deadline).
    open: HashMap<u64, (NodeId, u64)>,
}

/// What a forced-error handler may touch besides its offers.
pub(crate) struct ForcedCtx<'a> {
    pub(crate) verifiers: &'a mut VerifierPool,
    pub(crate) next_id: &'a mut u64,
    pub(crate) now: u64,
}

impl ForcedErrors {
    /// Offers drawn at `cfg`'s rate with `draw_key`, answered within
    /// `timeout_ms`.
    pub(crate) fn new(cfg: ForcedErrorConfig, draw_key: [u8; 32], timeout_ms: u64) -> Self {
        Self {
            cfg,
            draw_key,
            timeout_ms,
            open: HashMap::new(),
        }
    }

    /// For each seat just given (`OfferVerification` among `out`), draws
    /// whether its verifier also gets a known-bad result, and asks the
    /// driver for one.
    pub(crate) fn after_offers(&mut self, ctx: &mut ForcedCtx<'_>, out: &mut Vec<Command>) {
        if self.cfg.rate <= 0.0 {
            return;
        }
        let seated: Vec<(NodeId, u64)> = out
            .iter()
            .filter_map(|c| match c {
                Command::OfferVerification {
                    verifier,
                    verification,
                    ..
                } => Some((*verifier, *verification)),
                _ => None,
            })
            .collect();
        for (verifier, real) in seated {
            if unit_draw(&self.draw_key, real) >= self.cfg.rate {
                continue;
            }
            let verification = *ctx.next_id;
            *ctx.next_id += 1;
            ctx.verifiers.assign(verifier);
            self.open
                .insert(verification, (verifier, ctx.now + self.timeout_ms));
            out.push(Command::OfferForcedError {
                verifier,
                verification,
            });
        }
    }

    /// Whether `verification` is a known-bad offer in flight.
    pub(crate) fn knows(&self, verification: u64) -> bool {
        self.open.contains_key(&verification)
    }

    /// Judges a verifier by its answer to a known-bad offer; false when the
    /// verdict answers no such offer (of this verifier).
    pub(crate) fn verdict(
        &mut self,
        ctx: &mut ForcedCtx<'_>,
        verifier: NodeId,
        v: &Verdict,
        out: &mut Vec<Command>,
    ) -> bool {
        if self.open.get(&v.verification).map(|(n, _)| *n) != Some(verifier) {
            return false;
        }
        self.open.remove(&v.verification);
        ctx.verifiers.release(verifier);
        if v.inconclusive.is_some() {
            return true;
        }
        if v.passed {
            ctx.verifiers.ban(verifier);
            out.push(Command::VerifierCaught {
                verifier,
                verification: v.verification,
            });
        } else {
            out.push(Command::ForcedErrorCaught {
                verifier,
                verification: v.verification,
            });
        }
        true
    }

    /// The driver could not build a known-bad result: the offer is
    /// forgotten.
    pub(crate) fn dropped(&mut self, ctx: &mut ForcedCtx<'_>, verification: u64) {
        if let Some((verifier, _)) = self.open.remove(&verification) {
            ctx.verifiers.release(verifier);
        }
    }

    /// Forgets offers past their deadline, and those of a verifier that
    /// left: silence is dealt with by the round rules, not here.
    pub(crate) fn tick(&mut self, ctx: &mut ForcedCtx<'_>) {
        let gone: Vec<u64> = self
            .open
            .iter()
            .filter(|(_, (v, deadline))| *deadline <= ctx.now || !ctx.verifiers.contains(v))
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            self.dropped(ctx, id);
        }
    }
}

/// A number in [0, 1) from the key and a verification id: the same for the
/// same seat, unpredictable without the key.
fn unit_draw(key: &[u8; 32], verification: u64) -> f64 {
    let x = crate::draw::keyed_u64(key, &[b"forced", &verification.to_le_bytes()]);
    x as f64 / (u64::MAX as f64 + 1.0)
}
