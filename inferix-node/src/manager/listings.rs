//! Listings for clients: an account's jobs, and for operators every job
//! and the connected nodes.

use inferix_core::account::AccountRecord;
use inferix_core::protocol::{JobSummary, LedgerTotals, NodeAction, NodeSummary, LEDGER_RECENT};

use super::*;

/// Most jobs one listing returns (the newest).
const MAX_LISTED_JOBS: usize = 1_000;

impl State {
    /// The jobs `account` may list, newest first: its own, or with `all`
    /// (operators only) everyone's.
    pub(super) async fn list_jobs(
        &mut self,
        account: &AccountRecord,
        all: bool,
    ) -> Result<Vec<JobSummary>, (ErrorCode, String)> {
        if all && !account.operator {
            return Err(forbidden("listing every account's jobs"));
        }
        let mut jobs: Vec<Job> = self
            .store
            .jobs()
            .await
            .map_err(store_err)?
            .into_iter()
            .filter(|j| all || j.owner.as_deref() == Some(account.name.as_str()))
            .collect();
        jobs.reverse();
        jobs.truncate(MAX_LISTED_JOBS);
        let mut out = Vec::with_capacity(jobs.len());
        for job in jobs {
            let counts = self.store.status_counts(job.id).await.map_err(store_err)?;
            let (accepted_frames, _) = StatusCount::frames_in(&counts, TaskStatus::Accepted);
            out.push(JobSummary {
                id: job.id,
                owner: job.owner,
                state: job.state,
                priority: job.spec.priority,
                tags: job.spec.tags.clone(),
                frames: job.spec.frames.len(),
                accepted_frames,
                quoted_price: job.quoted_price,
                created_ms: job.created_ms,
                waiting_reason: job.waiting_reason,
            });
        }
        Ok(out)
    }

    /// The connected workers and verifiers (operators only).
    pub(super) async fn list_nodes(
        &mut self,
        account: &AccountRecord,
    ) -> Result<Vec<NodeSummary>, (ErrorCode, String)> {
        if !account.operator {
            return Err(forbidden("listing the network's nodes"));
        }
        let mut out = Vec::new();
        let workers: Vec<_> = self
            .workers
            .values()
            .map(|w| {
                let declared = w.declared_ib;
                (
                    w.info.clone(),
                    (declared, self.workers.measured_ib(&w.info.id)),
                    w.task(),
                    w.last_seen,
                    w.state().as_str(),
                )
            })
            .collect();
        for (info, (declared_ib, measured_ib), task, last_seen, state) in workers {
            // A node run by an account shows its account's stake.
            let holder = self.stake_holder_of(info.id);
            let stake = self
                .store
                .balance(&holder.account())
                .await
                .map_err(store_err)?;
            out.push(NodeSummary {
                node: info.id,
                role: Role::Worker,
                declared_ib,
                measured_ib,
                reputation: info.reputation,
                stake,
                task,
                pending_verifications: 0,
                last_seen_ms: last_seen,
                state: state.into(),
                tags: info.tags,
                formats: info.formats,
            });
        }
        let verifiers: Vec<(NodeId, u64)> = self
            .verifiers
            .iter()
            .map(|(id, c)| (*id, c.last_seen))
            .collect();
        for (id, last_seen) in verifiers {
            let holder = self.stake_holder_of(id);
            let stake = self
                .store
                .balance(&holder.account())
                .await
                .map_err(store_err)?;
            let pool = self.engine.verifiers().get(&id);
            let busy = pool.map_or(0, |v| v.busy) as u64;
            out.push(NodeSummary {
                node: id,
                role: Role::Verifier,
                declared_ib: 0.0,
                measured_ib: None,
                reputation: pool.map_or(1.0, |v| v.reputation),
                stake,
                task: None,
                pending_verifications: busy,
                last_seen_ms: last_seen,
                state: if busy > 0 { "busy" } else { "idle" }.into(),
                tags: Vec::new(),
                formats: pool.map(|v| v.formats.clone()).unwrap_or_default(),
            });
        }
        Ok(out)
    }
}

impl State {
    /// An operator's drain, undrain, disable or enable of a node.
    pub(super) async fn node_control(
        &mut self,
        account: &AccountRecord,
        node: NodeId,
        action: NodeAction,
    ) -> Result<(), (ErrorCode, String)> {
        if !account.operator {
            return Err(forbidden("controlling nodes"));
        }
        let now = self.now();
        let not_connected = || {
            (
                ErrorCode::NotFound,
                format!("no worker {node} is connected"),
            )
        };
        match action {
            NodeAction::Drain => self
                .workers
                .drain(node)
                .then_some(())
                .ok_or_else(not_connected),
            NodeAction::Undrain => self
                .workers
                .undrain(node, now)
                .then_some(())
                .ok_or_else(not_connected),
            NodeAction::Disable => {
                self.disabled.insert(node);
                let conns: Vec<ConnId> = self
                    .peers
                    .iter()
                    .filter(|(_, p)| p.node == node && p.role != Some(Role::Client))
                    .map(|(c, _)| *c)
                    .collect();
                for conn in conns {
                    self.drop_peer(conn, "disabled by an operator").await;
                }
                info!(?node, by = %account.name, "node disabled");
                Ok(())
            }
            NodeAction::Enable => {
                self.disabled.remove(&node);
                Ok(())
            }
        }
    }

    /// The ledger's totals (operators only).
    pub(super) async fn ledger_totals(
        &mut self,
        account: &AccountRecord,
    ) -> Result<LedgerTotals, (ErrorCode, String)> {
        if !account.operator {
            return Err(forbidden("reading the ledger"));
        }
        let (deposited, escrow, penalty_pool) = self.network_balances().await.map_err(store_err)?;
        let mut account_balances = 0;
        let mut accounts = Vec::new();
        for a in self.store.accounts().await.map_err(store_err)? {
            let balance = self
                .store
                .balance(&a.ledger_account())
                .await
                .map_err(store_err)?;
            account_balances += balance;
            accounts.push((a.name, balance));
        }
        let mut recent = self.store.transactions().await.map_err(store_err)?;
        recent.sort_by_key(|t| std::cmp::Reverse(t.at_ms));
        recent.truncate(LEDGER_RECENT);
        Ok(LedgerTotals {
            deposited,
            account_balances,
            escrow,
            penalty_pool,
            accounts,
            recent,
        })
    }
}

impl State {
    /// What was deposited, what the unfinished jobs this manager has in
    /// hand hold in escrow, and the penalty pool: the ledger totals the
    /// gauges show too.
    pub(super) async fn network_balances(&self) -> Result<(i64, i64, i64), StoreError> {
        let deposited = -self.store.balance(&Account::External).await?;
        let mut escrow = 0;
        for job in self.jobs.keys() {
            escrow += self.store.balance(&Account::Job(*job)).await?;
        }
        let pool = self.store.balance(&Account::PenaltyPool).await?;
        Ok((deposited, escrow, pool))
    }
}

fn forbidden(what: &str) -> (ErrorCode, String) {
    (
        ErrorCode::Forbidden,
        format!("{what} needs an operator's account"),
    )
}
