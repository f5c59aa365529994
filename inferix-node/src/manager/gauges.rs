//! Refreshing the metrics that describe the present: connected nodes on
//! every tick and whenever an operator lists the nodes, and what needs the store (tasks by state, jobs, ledger
//! totals) every `METRICS_REFRESH`, over the unfinished jobs this manager
//! has in hand.

use super::metrics::{ManagerMetrics, NodeState, Role as NodeRole, METRICS_REFRESH};
use inferix_manager::workers::WorkerState;

use super::*;

impl State {
    pub(super) async fn refresh_gauges(&mut self) {
        self.count_nodes();
        let kind = ManagerMetrics::kind;
        let now = self.now();
        if now < self.next_metrics_refresh {
            return;
        }
        self.next_metrics_refresh = now + METRICS_REFRESH.as_millis() as u64;
        let mut tasks = [0i64; TaskStatus::ALL.len()];
        let mut jobs: HashMap<&'static str, i64> = HashMap::new();
        let running: Vec<(JobId, JobState)> = self.jobs.values().map(|j| (j.id, j.state)).collect();
        for (job, state) in running {
            *jobs.entry(state.as_str()).or_default() += 1;
            if let Ok(counts) = self.store.status_counts(job).await {
                for c in counts {
                    if let Some(i) = TaskStatus::ALL.iter().position(|s| *s == c.status) {
                        tasks[i] += c.tasks as i64;
                    }
                }
            }
        }
        for (i, status) in TaskStatus::ALL.iter().enumerate() {
            self.metrics
                .tasks
                .get_or_create(&kind(status.as_str()))
                .set(tasks[i]);
        }
        for state in [JobState::Active, JobState::Paused] {
            let n = jobs.get(state.as_str()).copied().unwrap_or(0);
            self.metrics
                .jobs
                .get_or_create(&kind(state.as_str()))
                .set(n);
        }
        // A store that cannot be read shows zeros until it can.
        let (deposited, escrow, pool) = self.network_balances().await.unwrap_or_default();
        for (name, value) in [
            ("deposited", deposited),
            ("escrow", escrow),
            ("penalty_pool", pool),
        ] {
            self.metrics.ledger.get_or_create(&kind(name)).set(value);
        }
    }

    /// Connected workers and verifiers by state: on every tick, and before
    /// an operator's node list is answered, which `/metrics` asks for
    /// first, so a scrape counts the nodes as they are.
    pub(super) fn count_nodes(&mut self) {
        let (mut idle, mut busy, mut silent, mut drained) = (0, 0, 0, 0);
        for w in self.workers.values() {
            match w.state() {
                WorkerState::Idle => idle += 1,
                // A draining worker still holds a task.
                WorkerState::Busy | WorkerState::Draining => busy += 1,
                WorkerState::Silent => silent += 1,
                WorkerState::Drained => drained += 1,
            }
        }
        let verifying = self
            .verifiers
            .keys()
            .filter(|v| self.engine.verifiers().get(v).is_some_and(|i| i.busy > 0))
            .count() as i64;
        let verifiers = self.verifiers.len() as i64;
        for (role, state, n) in [
            (NodeRole::Worker, "idle", idle),
            (NodeRole::Worker, "busy", busy),
            (NodeRole::Worker, "silent", silent),
            (NodeRole::Worker, "drained", drained),
            (NodeRole::Verifier, "idle", verifiers - verifying),
            (NodeRole::Verifier, "busy", verifying),
        ] {
            let labels = NodeState {
                role,
                state: state.into(),
            };
            self.metrics.nodes.get_or_create(&labels).set(n);
        }
    }
}
