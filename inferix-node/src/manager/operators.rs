//! Nodes run by accounts: admitting them against their account, its stake
//! and its standing, and keeping that standing in the task store as their
//! results and votes are judged (rules in `inferix_manager::operators`).

use inferix_core::account::NodeStanding;
use inferix_manager::admission::Refusal;
use inferix_manager::economy::StakeHolder;
use inferix_manager::operators::{self as rules, CheckLevel};

use super::*;

/// Reads and writes of a standing before a manager gives up on one
/// judgement while other writers keep winning.
const STANDING_WRITE_TRIES: usize = 8;

impl State {
    /// Admits a worker or verifier that presented the API key `key_id`
    /// names: the account, its standing and its stake must allow one more
    /// node. Returns the account's name and standing.
    pub(super) async fn admit_operator(
        &mut self,
        key_id: &str,
        h: &Hello,
        node: NodeId,
    ) -> Result<(String, NodeStanding), Refusal> {
        let unavailable = |e: StoreError| Refusal {
            code: ErrorCode::Unavailable,
            message: format!("cannot read accounts: {e}"),
            close: "task database unavailable; try again",
        };
        let account = self
            .store
            .account_with_key(key_id)
            .await
            .map_err(unavailable)?;
        let name = account.as_ref().map(|a| a.name.clone()).unwrap_or_default();
        let standing = match &account {
            Some(_) => self
                .store
                .standing(&name)
                .await
                .map_err(unavailable)?
                .unwrap_or_default(),
            None => NodeStanding::default(),
        };
        rules::check_operator(
            account.as_ref(),
            h.token.as_deref().unwrap_or_default(),
            h.role,
            &standing,
        )?;
        let joining = rules::stake_ib(h.role, h.ib).unwrap_or(0.0);
        if self.minimum_stake(joining) > 0 {
            let have = self
                .store
                .balance(&Account::OperatorStake(name.clone()))
                .await
                .map_err(unavailable)?;
            // A reconnecting node replaces itself.
            let others: Vec<f64> = self
                .nodes_of(&name)
                .into_iter()
                .filter(|(n, _, _)| *n != node)
                .map(|(_, _, ib)| ib)
                .collect();
            rules::check_operator_stake(&self.economy(), &name, &others, joining, have)?;
        }
        Ok((name, standing))
    }

    /// The connected workers and verifiers run by account `name`: node,
    /// connection and stake index.
    pub(super) fn nodes_of(&self, name: &str) -> Vec<(NodeId, ConnId, f64)> {
        self.peers
            .iter()
            .filter(|(_, p)| p.operator.as_deref() == Some(name))
            .map(|(conn, p)| (p.node, *conn, p.stake_ib))
            .collect()
    }

    /// The account that runs connected node `node`, if it joined with one.
    pub(super) fn operator_of(&self, node: NodeId) -> Option<String> {
        let conn = self
            .workers
            .get(&node)
            .map(|w| w.conn)
            .or_else(|| self.verifiers.get(&node).map(|v| v.conn))?;
        self.peers.get(&conn)?.operator.clone()
    }

    /// Changes account `name`'s standing with `change` and records it;
    /// when another manager (or an operator) wrote it meanwhile, reads it
    /// again and applies `change` to that. A store that cannot be read or
    /// written leaves it as it was: the next judgement is recorded.
    pub(super) async fn update_standing(
        &mut self,
        name: &str,
        change: impl Fn(&mut NodeStanding),
    ) -> Option<NodeStanding> {
        for _ in 0..STANDING_WRITE_TRIES {
            let mut standing = match self.store.standing(name).await {
                Ok(s) => s.unwrap_or_default(),
                Err(e) => {
                    warn!(account = name, error = %e, "cannot read an operator's standing");
                    return None;
                }
            };
            change(&mut standing);
            match self.store.put_standing(name, &mut standing).await {
                Ok(()) => return Some(standing),
                Err(StoreError::StandingConflict { .. }) => continue,
                Err(e) => {
                    warn!(account = name, error = %e, "cannot record an operator's standing");
                    return None;
                }
            }
        }
        warn!(
            account = name,
            "an operator's standing kept changing under this manager; not recorded"
        );
        None
    }

    /// Records a settled result of a worker run by `operator`.
    pub(super) async fn judge_operator(&mut self, operator: Option<&str>, accepted: bool) {
        let Some(name) = operator else { return };
        self.judge_operator_results(name, accepted, 1).await;
    }

    /// Records `count` results of `name`'s workers, all accepted or all
    /// rejected, in one write of its standing.
    pub(super) async fn judge_operator_results(
        &mut self,
        name: &str,
        accepted: bool,
        count: usize,
    ) {
        let penalty = self.cfg.reputation_penalty;
        let Some(standing) = self
            .update_standing(name, |s| {
                for _ in 0..count {
                    rules::after_result(s, accepted, penalty);
                }
            })
            .await
        else {
            return;
        };
        // Every connected worker of the account works on with the
        // account's reputation.
        for (node, _, _) in self.nodes_of(name) {
            if let Some(w) = self.workers.get_mut(&node) {
                w.info.reputation = standing.worker_reputation;
            }
        }
    }

    /// Lowers the verifier reputation of the account running `verifier`
    /// after its vote lost.
    pub(super) async fn judge_verifier_operator(&mut self, verifier: NodeId) {
        let Some(name) = self.operator_of(verifier) else {
            return;
        };
        let penalty = self.cfg.reputation_penalty;
        self.update_standing(&name, |s| {
            s.verifier_reputation = (s.verifier_reputation * penalty).clamp(0.0, 1.0);
        })
        .await;
    }

    /// Bans account `name` (one of its verifiers passed a known-bad
    /// result): recorded, so its nodes are refused under any key and
    /// after a restart, and every node of it is disconnected now.
    pub(super) async fn ban_operator(&mut self, name: &str, why: &str) {
        let why = why.to_string();
        self.update_standing(name, |s| {
            s.banned = Some(why.clone());
            s.verifier_reputation = 0.0;
        })
        .await;
        warn!(account = name, %why, "operator banned");
        self.disconnect_operator(name, &format!("account {name} banned: {why}"))
            .await;
    }

    /// Disconnects every node run by account `name`, telling each why.
    pub(super) async fn disconnect_operator(&mut self, name: &str, why: &str) {
        for (_, conn, _) in self.nodes_of(name) {
            self.send(
                conn,
                Envelope::push(Message::error(ErrorCode::Unauthorized, why.to_string())),
            )
            .await;
            self.refuse(conn, "operator stake slashed or banned").await;
        }
    }

    /// Where the stake of connected node `node` is held: its account's,
    /// or its own.
    pub(super) fn stake_holder_of(&self, node: NodeId) -> StakeHolder {
        StakeHolder::of(node, self.operator_of(node).as_deref())
    }

    /// How hard the result of `task` is checked, and by how many
    /// verifiers: by its worker's account's history, or at the base rate
    /// for the operator's own nodes.
    pub(super) async fn check_level(&self, task: &Task) -> (Option<CheckLevel>, usize) {
        let standing = match &task.operator {
            Some(name) => Some(
                self.store
                    .standing(name)
                    .await
                    .ok()
                    .flatten()
                    .unwrap_or_default(),
            ),
            None => None,
        };
        let level = self
            .por
            .as_ref()
            .map(|p| rules::check_level(p.challenges_per_task, standing.as_ref()));
        let quorum = rules::round_quorum(self.cfg.quorum.max(1), standing.as_ref());
        (level, quorum)
    }
}
