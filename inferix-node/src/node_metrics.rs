//! A worker's or verifier's own metrics, in the Prometheus text format:
//! what it did (tasks rendered, failed and revoked; verifications passed
//! and failed) and how long each took. `inferix worker --metrics ADDR`
//! serves them.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// An outcome label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: String,
}

/// Metrics of one worker or verifier node.
pub struct NodeMetrics {
    registry: Registry,
    done: Family<Outcome, Counter>,
    seconds: Histogram,
    sessions: Counter,
}

impl std::fmt::Debug for NodeMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeMetrics")
    }
}

impl NodeMetrics {
    /// Metrics named for `role` (`worker` or `verifier`): `{role}_work`
    /// ("tasks" or "verifications") counted by outcome, and its seconds.
    fn new(role: &str, work: &str) -> Self {
        let mut registry = Registry::with_prefix(format!("inferix_{role}"));
        let done = Family::<Outcome, Counter>::default();
        registry.register(work, format!("{work} by outcome"), done.clone());
        // 50 ms to about 7 hours.
        let seconds = Histogram::new(exponential_buckets(0.05, 2.0, 20));
        registry.register(
            format!("{work}_seconds"),
            format!("Time each of its {work} took"),
            seconds.clone(),
        );
        let sessions = Counter::default();
        registry.register(
            "manager_sessions",
            "Sessions with a manager (1 plus reconnections)",
            sessions.clone(),
        );
        Self {
            registry,
            done,
            seconds,
            sessions,
        }
    }

    /// A worker's: `inferix_worker_tasks_total{outcome=done|failed|revoked}`.
    pub fn worker() -> Arc<Self> {
        Arc::new(Self::new("worker", "tasks"))
    }

    /// A verifier's: `inferix_verifier_verifications_total{outcome=passed|failed}`.
    pub fn verifier() -> Arc<Self> {
        Arc::new(Self::new("verifier", "verifications"))
    }

    pub(crate) fn finished(&self, outcome: &str, seconds: Option<f64>) {
        self.done
            .get_or_create(&Outcome {
                outcome: outcome.into(),
            })
            .inc();
        if let Some(s) = seconds {
            self.seconds.observe(s);
        }
    }

    pub(crate) fn session(&self) {
        self.sessions.inc();
    }

    /// Every metric in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
