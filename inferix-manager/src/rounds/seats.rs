//! Who may sit on a round, and who is asked for its next vote.

use inferix_core::ids::{NodeId, TaskId};
use inferix_core::renderer::SceneFormat;

use super::Round;
use crate::draw::weighted_pick;
use crate::verifiers::{independent, VerifierInfo, VerifierPool};

/// Whether verifier `id` may sit on a round of `worker`'s result at all:
/// not the worker nor one of its operator's, not reputation-less, and able
/// to re-render the format the round `needs`.
pub(super) fn may_sit(
    id: NodeId,
    v: &VerifierInfo,
    worker: NodeId,
    operator: &Option<String>,
    needs: Option<SceneFormat>,
) -> bool {
    id != worker
        && independent(&v.operator, operator)
        && v.reputation > 0.0
        && needs.is_none_or(|f| v.renders(f))
}

/// The verifier to ask for `round`'s next vote: not the worker nor one
/// of its operator's, not one already asked, with fewer than `cap` offers,
/// able to re-render the round's format when it needs one; drawn with
/// probability proportional to reputation by one keyed draw per seat
/// ([`weighted_pick`]). With `again` (`Some(t)`), one replaced earlier, or
/// one that answered inconclusive at or before `t`, may be asked when
/// nobody else can: those not replaced and not inconclusive come first,
/// then those replaced, then the inconclusive ones.
pub(super) fn pick(
    key: &[u8; 32],
    task: TaskId,
    round: &Round,
    pool: &VerifierPool,
    cap: usize,
    again: Option<u64>,
) -> Option<NodeId> {
    let seat = round.votes.len() + round.replaced.len() + round.unable.len();
    let allowed = |id: &NodeId, v: &VerifierInfo| {
        let unable = round.unable.get(id);
        may_sit(*id, v, round.worker, &round.operator, round.needs)
            && !round.votes.contains_key(id)
            && v.busy < cap
            && (again.is_some() || !round.replaced.contains(id))
            && unable.is_none_or(|at| again.is_some_and(|t| *at <= t))
    };
    let tier = |id: &NodeId| (round.unable.contains_key(id), round.replaced.contains(id));
    let first = pool
        .iter()
        .filter(|(id, v)| allowed(id, v))
        .map(|(id, _)| tier(id))
        .min()?;
    let candidates = || {
        pool.iter()
            .filter(move |(id, v)| allowed(id, v) && tier(id) == first)
            .map(|(id, v)| (*id, v.reputation))
    };
    weighted_pick(key, task, seat, candidates)
}
