//! The manager's metrics, in the Prometheus (OpenMetrics) text format: what
//! an operator scrapes to see the network work.
//!
//! Counters move as things happen (dispatches, verdicts, re-queues, blob
//! bytes, store calls); gauges that need the store (tasks by state, ledger
//! totals) are refreshed by the manager every `METRICS_REFRESH`, and the
//! node gauges on every tick.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// How often the gauges that read the store are refreshed.
pub(crate) const METRICS_REFRESH: Duration = Duration::from_secs(5);

/// A label of one value.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Kind {
    pub(crate) kind: String,
}

/// Role and state of connected nodes.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct NodeState {
    pub(crate) role: Role,
    pub(crate) state: String,
}

/// A node's role, as a label value.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub(crate) enum Role {
    /// Renders.
    Worker,
    /// Checks.
    Verifier,
}

/// Every metric of one manager.
pub struct ManagerMetrics {
    registry: Registry,
    pub(crate) dispatches: Counter,
    pub(crate) ready_to_start: Histogram,
    pub(crate) events: Family<Kind, Counter>,
    pub(crate) rounds: Family<Kind, Counter>,
    pub(crate) escalated: Counter,
    pub(crate) inconclusive: Counter,
    pub(crate) caught_verifiers: Counter,
    pub(crate) store_seconds: Family<Kind, Histogram>,
    pub(crate) blob_bytes: Family<Kind, Counter>,
    pub(crate) nodes: Family<NodeState, Gauge>,
    pub(crate) tasks: Family<Kind, Gauge>,
    pub(crate) ledger: Family<Kind, Gauge>,
    pub(crate) jobs: Family<Kind, Gauge>,
}

impl std::fmt::Debug for ManagerMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ManagerMetrics")
    }
}

impl Default for ManagerMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("inferix");
        let dispatches = Counter::default();
        registry.register("dispatches", "Tasks leased to workers", dispatches.clone());
        // 10 ms to about 45 minutes.
        let ready_to_start = Histogram::new(exponential_buckets(0.01, 2.0, 18));
        registry.register(
            "ready_to_start_seconds",
            "Time from a task being queued to its lease",
            ready_to_start.clone(),
        );
        let events = Family::<Kind, Counter>::default();
        registry.register(
            "job_events",
            "Job events by kind (task_accepted, task_rejected, task_requeued, completed, failed, cancelled, claim_settled)",
            events.clone(),
        );
        let rounds = Family::<Kind, Counter>::default();
        registry.register(
            "verification_rounds",
            "Verification rounds settled, by outcome (passed, failed)",
            rounds.clone(),
        );
        let escalated = Counter::default();
        registry.register(
            "verification_rounds_escalated",
            "Rounds whose verifiers disagreed, settled by a majority of more votes",
            escalated.clone(),
        );
        let inconclusive = Counter::default();
        registry.register(
            "verifications_inconclusive",
            "Verification answers that could not check (the seat was drawn again)",
            inconclusive.clone(),
        );
        let caught_verifiers = Counter::default();
        registry.register(
            "verifiers_caught",
            "Verifiers that passed a known-bad result (forced error) and were removed",
            caught_verifiers.clone(),
        );
        let store_seconds = Family::<Kind, Histogram>::new_with_constructor(|| {
            // 50 µs to about 1.6 s.
            Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
        });
        registry.register(
            "store_operation_seconds",
            "Task store calls by operation",
            store_seconds.clone(),
        );
        let blob_bytes = Family::<Kind, Counter>::default();
        registry.register(
            "blob_bytes",
            "Blob bytes moved through manager connections (in: uploads, out: downloads)",
            blob_bytes.clone(),
        );
        let nodes = Family::<NodeState, Gauge>::default();
        registry.register(
            "connected_nodes",
            "Connected workers and verifiers by state",
            nodes.clone(),
        );
        let tasks = Family::<Kind, Gauge>::default();
        registry.register("tasks", "Tasks of unfinished jobs by state", tasks.clone());
        let jobs = Family::<Kind, Gauge>::default();
        registry.register("jobs", "Unfinished jobs by state", jobs.clone());
        let ledger = Family::<Kind, Gauge>::default();
        registry.register(
            "ledger_micro_credits",
            "Ledger totals: deposited, held in escrow by unfinished jobs, in the penalty pool",
            ledger.clone(),
        );
        Self {
            registry,
            dispatches,
            ready_to_start,
            events,
            rounds,
            escalated,
            inconclusive,
            caught_verifiers,
            store_seconds,
            blob_bytes,
            nodes,
            tasks,
            ledger,
            jobs,
        }
    }
}

impl ManagerMetrics {
    /// Every metric in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    pub(crate) fn kind(name: &str) -> Kind {
        Kind { kind: name.into() }
    }

    /// Counts `bytes` moved in `direction` (`in` or `out`).
    pub(crate) fn blob(&self, direction: &str, bytes: u64) {
        self.blob_bytes
            .get_or_create(&Self::kind(direction))
            .inc_by(bytes);
    }
}

/// Shared handle.
pub type SharedMetrics = Arc<ManagerMetrics>;
