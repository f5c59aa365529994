//! The `Scheduler` trait: which worker gets a queued task.
//!
//! Eligibility (connected and idle, meeting the job's minimum IB and tags,
//! not excluded from the task) is decided here once, by [`is_eligible`], so
//! a custom scheduler only chooses among workers that may render.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::ids::{NodeId, TaskId};
use crate::renderer::SceneFormat;

/// What the scheduler knows of a worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// The worker.
    pub id: NodeId,
    /// Inferix Bench index (1.0 = reference machine).
    pub ib: f64,
    /// 0..=1, cut when the worker misbehaves.
    pub reputation: f64,
    /// Capabilities, e.g. `"gpu"`, `"blender-4.2"`.
    pub tags: Vec<String>,
    /// Scene formats it renders.
    #[serde(default)]
    pub formats: Vec<SceneFormat>,
}

/// What the scheduler knows of a task.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskDemand<'a> {
    /// The task.
    pub task: TaskId,
    /// Minimum IB of its job.
    pub min_ib: f64,
    /// Tags its job requires.
    pub tags: &'a [String],
    /// Workers that must not get it again.
    pub excluded: &'a [NodeId],
    /// The scene format its worker must render (`None`: any worker).
    pub format: Option<SceneFormat>,
}

/// Whether `worker` may render `demand`.
pub fn is_eligible(demand: &TaskDemand<'_>, worker: &WorkerInfo) -> bool {
    worker.ib >= demand.min_ib
        && worker.reputation > 0.0
        && demand.tags.iter().all(|t| worker.tags.contains(t))
        && !demand.excluded.contains(&worker.id)
        && demand.format.is_none_or(|f| worker.formats.contains(&f))
}

/// Picks a worker for a task among idle workers.
pub trait Scheduler: Send + Sync {
    /// Chooses one of `idle` (all idle and connected) for `demand`, or none.
    /// Implementations must only return an eligible worker.
    fn choose(&mut self, demand: &TaskDemand<'_>, idle: &[WorkerInfo]) -> Option<NodeId>;
}

/// The default: among eligible workers, a random pick weighted by
/// IB × reputation, from a seeded generator so runs are reproducible.
pub struct WeightedRandomScheduler {
    rng: ChaCha8Rng,
}

impl WeightedRandomScheduler {
    /// A scheduler whose choices are fixed by `seed`.
    pub fn seeded(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }
}

impl Default for WeightedRandomScheduler {
    fn default() -> Self {
        Self {
            rng: ChaCha8Rng::from_entropy(),
        }
    }
}

impl Scheduler for WeightedRandomScheduler {
    fn choose(&mut self, demand: &TaskDemand<'_>, idle: &[WorkerInfo]) -> Option<NodeId> {
        let eligible: Vec<&WorkerInfo> = idle.iter().filter(|w| is_eligible(demand, w)).collect();
        let weight = |w: &WorkerInfo| (w.ib * w.reputation).max(1e-9);
        let total: f64 = eligible.iter().map(|w| weight(w)).sum();
        if eligible.is_empty() {
            return None;
        }
        let mut x = self.rng.gen_range(0.0..total);
        for w in &eligible {
            x -= weight(w);
            if x < 0.0 {
                return Some(w.id);
            }
        }
        eligible.last().map(|w| w.id)
    }
}

/// First eligible worker in the order given (longest idle first).
#[derive(Debug, Default)]
pub struct FifoScheduler;

impl Scheduler for FifoScheduler {
    fn choose(&mut self, demand: &TaskDemand<'_>, idle: &[WorkerInfo]) -> Option<NodeId> {
        idle.iter().find(|w| is_eligible(demand, w)).map(|w| w.id)
    }
}

/// Conformance cases every scheduler must pass.
#[cfg(any(test, feature = "testing"))]
pub mod conformance {
    use super::*;
    use crate::ids::JobId;

    fn workers() -> Vec<WorkerInfo> {
        (0..6)
            .map(|i| WorkerInfo {
                id: NodeId(i),
                ib: i as f64,
                reputation: if i == 5 { 0.0 } else { 1.0 },
                tags: if i % 2 == 0 {
                    vec!["gpu".into()]
                } else {
                    vec![]
                },
                // Worker 4 renders glTF only; the others both formats.
                formats: if i == 4 {
                    vec![SceneFormat::Gltf]
                } else {
                    vec![SceneFormat::Gltf, SceneFormat::Blend]
                },
            })
            .collect()
    }

    /// Runs every case on schedulers from `build`.
    pub fn test_all(build: impl Fn() -> Box<dyn Scheduler>) {
        only_eligible_workers_are_chosen(build());
        only_workers_that_render_the_format_are_chosen(build());
        none_when_nobody_qualifies(build());
        someone_when_anybody_qualifies(build());
    }

    /// Never picks a worker under min IB, without a tag, excluded, or with
    /// zero reputation.
    pub fn only_eligible_workers_are_chosen(mut s: Box<dyn Scheduler>) {
        let ws = workers();
        let tags = vec!["gpu".to_string()];
        let excluded = vec![NodeId(2)];
        let d = TaskDemand {
            task: TaskId::new(JobId(1), 0),
            min_ib: 2.0,
            tags: &tags,
            excluded: &excluded,
            format: Some(SceneFormat::Gltf),
        };
        for _ in 0..200 {
            let id = s.choose(&d, &ws).expect("worker 4 qualifies");
            assert_eq!(
                id,
                NodeId(4),
                "only worker 4 has ib>=2, gpu, is not excluded and has reputation"
            );
        }
    }

    /// Never leases a scene to a worker that does not render its format:
    /// a `.blend` task waits rather than go to a glTF-only worker.
    pub fn only_workers_that_render_the_format_are_chosen(mut s: Box<dyn Scheduler>) {
        let ws = workers();
        let tags = vec!["gpu".to_string()];
        let d = TaskDemand {
            task: TaskId::new(JobId(1), 0),
            min_ib: 2.0,
            tags: &tags,
            excluded: &[],
            format: Some(SceneFormat::Blend),
        };
        for _ in 0..200 {
            // Workers 2 and 4 have the IB and the tag; 4 renders no .blend.
            assert_eq!(s.choose(&d, &ws), Some(NodeId(2)));
        }
        let gltf_only: Vec<WorkerInfo> = ws.into_iter().filter(|w| w.id == NodeId(4)).collect();
        assert_eq!(s.choose(&d, &gltf_only), None);
    }

    /// Returns `None` rather than a wrong worker.
    pub fn none_when_nobody_qualifies(mut s: Box<dyn Scheduler>) {
        let d = TaskDemand {
            task: TaskId::new(JobId(1), 0),
            min_ib: 100.0,
            tags: &[],
            excluded: &[],
            format: None,
        };
        assert_eq!(s.choose(&d, &workers()), None);
        assert_eq!(s.choose(&d, &[]), None);
    }

    /// Returns a worker whenever one qualifies.
    pub fn someone_when_anybody_qualifies(mut s: Box<dyn Scheduler>) {
        let ws = workers();
        let d = TaskDemand {
            task: TaskId::new(JobId(1), 0),
            min_ib: 0.0,
            tags: &[],
            excluded: &[],
            format: None,
        };
        for _ in 0..50 {
            let id = s.choose(&d, &ws).unwrap();
            assert!(is_eligible(&d, ws.iter().find(|w| w.id == id).unwrap()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::JobId;

    #[test]
    fn schedulers_pass_conformance() {
        conformance::test_all(|| Box::new(WeightedRandomScheduler::seeded(1)));
        conformance::test_all(|| Box::new(FifoScheduler));
    }

    #[test]
    fn weighted_choice_is_seeded_and_favours_fast_workers() {
        let ws: Vec<WorkerInfo> = [1.0, 3.0]
            .iter()
            .enumerate()
            .map(|(i, &ib)| WorkerInfo {
                id: NodeId(i as u128),
                ib,
                reputation: 1.0,
                tags: vec![],
                formats: vec![],
            })
            .collect();
        let d = TaskDemand {
            task: TaskId::new(JobId(1), 0),
            min_ib: 0.0,
            tags: &[],
            excluded: &[],
            format: None,
        };
        let run = |seed| {
            let mut s = WeightedRandomScheduler::seeded(seed);
            (0..4000)
                .map(|_| s.choose(&d, &ws).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7), "same seed, same choices");
        let fast = run(7).iter().filter(|&&id| id == NodeId(1)).count() as f64 / 4000.0;
        assert!(
            (fast - 0.75).abs() < 0.03,
            "IB 3 vs 1 should win ~75%, got {fast}"
        );
    }
}
