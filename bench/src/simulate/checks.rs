//! The simulation's invariants, each checked against the store's records
//! after the run: what the rules promise whatever the faults.

use std::collections::HashMap;

use inferix_core::job::JobState;
use inferix_core::ledger::Account;
use inferix_core::store::{StoreError, TaskStore};
use inferix_core::task::TaskStatus;
use inferix_manager::economy;

use super::network::Sim;
use crate::BenchError;

fn store_err(e: StoreError) -> BenchError {
    BenchError::Run {
        name: "simulation".into(),
        reason: e.to_string(),
    }
}

impl Sim {
    /// The invariants, checked against the store's records.
    pub(super) async fn check(&self) -> Result<Vec<(String, bool, String)>, BenchError> {
        let mut checks = Vec::new();
        let mut lost = 0u64;
        let mut twice = 0u64;
        let mut without_quorum = 0u64;
        let mut overlapping_leases = 0u64;
        let mut unfinished_jobs = 0u64;
        let mut accepted_tasks = 0u64;
        // What the accepted tasks are worth, by the payment rule.
        let mut owed = 0i64;
        for (id, info) in &self.jobs {
            let tasks = self.store.tasks_of_job(*id).await.map_err(store_err)?;
            let job = self.store.job(*id).await.map_err(store_err)?;
            if info.remaining > 0 || job.as_ref().is_none_or(|j| j.state == JobState::Active) {
                unfinished_jobs += 1;
            }
            let mut seen: HashMap<u32, u32> = HashMap::new();
            for t in &tasks {
                let accepts = t
                    .history
                    .iter()
                    .filter(|c| c.status == TaskStatus::Accepted)
                    .count();
                if accepts > 1 {
                    twice += 1;
                }
                let mut leased = false;
                for c in &t.history {
                    if c.status == TaskStatus::Leased {
                        if leased {
                            overlapping_leases += 1;
                        }
                        leased = true;
                    } else {
                        leased = false;
                    }
                }
                match t.status {
                    TaskStatus::Accepted => {
                        accepted_tasks += 1;
                        if let Some(job) = &job {
                            owed += economy::frames_share(
                                job.quoted_price,
                                t.frames.len(),
                                job.spec.frames.len(),
                            );
                        }
                        let n = t.history.len();
                        let via_verifying =
                            n >= 2 && t.history[n - 2].status == TaskStatus::Verifying;
                        let votes = self.pass_votes.get(&t.id).copied().unwrap_or(0);
                        if !via_verifying || votes < self.cfg.quorum {
                            without_quorum += 1;
                        }
                        for f in &t.frames {
                            *seen.entry(*f).or_default() += 1;
                        }
                    }
                    TaskStatus::Failed => {}
                    _ => lost += t.frames.len() as u64,
                }
            }
            if seen.values().any(|&n| n > 1) {
                twice += 1;
            }
        }
        checks.push((
            "no frame lost".to_string(),
            lost == 0 && unfinished_jobs == 0,
            format!(
                "{lost} frames neither accepted nor in a failed task; {unfinished_jobs} jobs unfinished; {} tasks failed after {} attempts",
                self.c.failed, self.cfg.max_attempts
            ),
        ));
        checks.push((
            "no frame accepted twice".to_string(),
            twice == 0,
            format!("{twice} tasks or frames accepted more than once"),
        ));
        checks.push((
            "none accepted without quorum".to_string(),
            without_quorum == 0,
            format!(
                "{without_quorum} of {accepted_tasks} accepted tasks lacked {} passing verdicts",
                self.cfg.quorum
            ),
        ));
        checks.push((
            "never leased to two workers at once".to_string(),
            overlapping_leases == 0 && self.c.double_claims == 0,
            format!(
                "{overlapping_leases} overlapping leases; {} racing claims refused by compare-and-set, {} wrongly allowed",
                self.c.cas_conflicts, self.c.double_claims
            ),
        ));
        let txs = self.store.transactions().await.map_err(store_err)?;
        let mut balances: HashMap<Account, i64> = HashMap::new();
        let mut total = 0i64;
        let mut pays = 0u64;
        for tx in &txs {
            if tx.id.starts_with("pay:") {
                pays += 1;
            }
            for p in &tx.postings {
                *balances.entry(p.account.clone()).or_default() += p.amount;
                total += p.amount;
            }
        }
        let open_escrow: i64 = self
            .jobs
            .keys()
            .map(|j| balances.get(&Account::Job(*j)).copied().unwrap_or(0))
            .filter(|b| *b != 0)
            .count() as i64;
        let earned: i64 = balances
            .iter()
            .filter(|(a, _)| matches!(a, Account::Worker(_)))
            .map(|(_, b)| *b)
            .sum();
        // Upheld claims and recalls pay back what fakes earned.
        let refunded: i64 = txs
            .iter()
            .filter(|t| t.id.starts_with("claim:") || t.id.starts_with("recall:"))
            .flat_map(|t| &t.postings)
            .filter(|p| matches!(p.account, Account::Worker(_)))
            .map(|p| -p.amount)
            .sum();
        let pool = balances.get(&Account::PenaltyPool).copied().unwrap_or(0);
        let ok = total == 0
            && open_escrow == 0
            && pays == accepted_tasks
            && earned + refunded == owed
            && pool >= 0;
        checks.push((
            "ledger balances".to_string(),
            ok,
            format!(
                "{} transactions sum to {total}; {open_escrow} jobs with escrow left; {pays} payments for {accepted_tasks} accepted tasks; workers earned {earned} of {owed} owed, {refunded} refunded; penalty pool {pool}",
                txs.len()
            ),
        ));
        checks.push((
            "no honest result rejected".to_string(),
            self.c.honest_rejected == 0,
            format!(
                "{} honest results rejected; {} rounds split and settled by the manager's check",
                self.c.honest_rejected, self.c.split_rounds
            ),
        ));
        Ok(checks)
    }
}
