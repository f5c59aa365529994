//! Render-farm task handling: pause and resume, hung-task detection from
//! progress, a per-job blocklist after repeated failures, and the job's
//! state history with timestamps. Simulated renderers, paused time.

use std::sync::Arc;
use std::time::Duration;

use inferix_core::blob::BlobStore;
use inferix_core::ids::{JobId, NodeId};
use inferix_core::job::JobState;
use inferix_core::protocol::JobEvent;
use inferix_core::renderer::stand_in::{StandInBehaviour, StandInRenderer};
use inferix_core::store::{MemoryTaskStore, TaskStore};
use inferix_node::{Client, ManagerConfig, ManagerHandle, WorkerConfig, WorkerNode};
use inferix_storage::ObjectBlobStore;
use inferix_tests::{seeded_identity, spawn_verifiers, start_manager, submit_stand_in_job};
use inferix_transport::InProcNetwork;
use tokio::sync::{mpsc, watch};

struct Farm {
    net: InProcNetwork,
    store: Arc<dyn TaskStore>,
    manager: ManagerHandle,
    client: Client,
    stopped: watch::Receiver<bool>,
    _stop: watch::Sender<bool>,
}

async fn farm(config: ManagerConfig) -> Farm {
    let net = InProcNetwork::new();
    let store: Arc<dyn TaskStore> = Arc::new(MemoryTaskStore::new());
    let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::in_memory());
    let manager = start_manager(&net, store.clone(), blobs, config).await;
    let (stop, stopped) = watch::channel(false);
    // Two verifiers: the default quorum.
    spawn_verifiers(
        &net,
        manager.addr(),
        2,
        None,
        None,
        &std::env::temp_dir(),
        &stopped,
    );
    let client = Client::connect(&net.transport(NodeId(300)), manager.addr(), None)
        .await
        .unwrap();
    Farm {
        net,
        store,
        manager,
        client,
        stopped,
        _stop: stop,
    }
}

impl Farm {
    fn worker(&self, n: u128, behaviour: StandInBehaviour) -> NodeId {
        self.worker_following(n, behaviour, self.manager.addr())
    }

    /// A worker given `managers` (one address, or several with commas).
    fn worker_following(&self, n: u128, behaviour: StandInBehaviour, managers: &str) -> NodeId {
        let w = WorkerNode::new(
            Arc::new(self.net.node(seeded_identity(n))),
            Arc::new(StandInRenderer::new(behaviour, Duration::from_secs(2))),
            WorkerConfig {
                manager: managers.into(),
                work_dir: std::env::temp_dir()
                    .join(format!("inferix-farm-{}-{n}", std::process::id())),
                ..WorkerConfig::default()
            },
        );
        let id = w.id();
        tokio::spawn(w.run(self.stopped.clone()));
        id
    }

    async fn submit(&self, frames: u32) -> (JobId, mpsc::UnboundedReceiver<JobEvent>) {
        let job = submit_stand_in_job(&self.client, frames, 16, 1).await;
        let events = self.client.watch(job).await.unwrap();
        (job, events)
    }
}

/// Events until `stop` says so, within `limit` of virtual time.
async fn until(
    events: &mut mpsc::UnboundedReceiver<JobEvent>,
    limit: Duration,
    mut stop: impl FnMut(&JobEvent) -> bool,
) -> Vec<JobEvent> {
    let mut seen = Vec::new();
    tokio::time::timeout(limit, async {
        loop {
            let e = events.recv().await.expect("events flow");
            let done = stop(&e);
            seen.push(e);
            if done {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no matching event within {limit:?}; saw {seen:?}"));
    seen
}

#[tokio::test(start_paused = true)]
async fn a_worker_given_several_managers_moves_past_an_unreachable_one() {
    let f = farm(ManagerConfig::default()).await;
    let managers = format!("gone-manager, {}", f.manager.addr());
    let worker = f.worker_following(100, StandInBehaviour::Honest, &managers);
    let (job, mut events) = f.submit(3).await;
    until(&mut events, Duration::from_secs(120), |e| {
        matches!(e, JobEvent::Completed { .. })
    })
    .await;
    let tasks = f.store.tasks_of_job(job).await.unwrap();
    assert!(tasks
        .iter()
        .all(|t| t.result.as_ref().is_some_and(|r| r.worker == worker)));
    f.manager.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn paused_jobs_lease_nothing_until_resumed_and_history_records_it() {
    let f = farm(ManagerConfig::default()).await;
    f.worker(100, StandInBehaviour::Honest);
    let (job, mut events) = f.submit(6).await;
    until(&mut events, Duration::from_secs(60), |e| {
        matches!(e, JobEvent::TaskAccepted { .. })
    })
    .await;
    f.client.pause(job).await.unwrap();
    f.client.pause(job).await.unwrap(); // idempotent
    let accepted_at_pause = f
        .store
        .tasks_of_job(job)
        .await
        .unwrap()
        .iter()
        .filter(|t| t.status != inferix_core::task::TaskStatus::Queued)
        .count();
    // A long quiet stretch: the running task may finish, nothing new starts.
    tokio::time::sleep(Duration::from_secs(120)).await;
    let tasks = f.store.tasks_of_job(job).await.unwrap();
    let started = tasks
        .iter()
        .filter(|t| t.status != inferix_core::task::TaskStatus::Queued)
        .count();
    assert_eq!(started, accepted_at_pause, "no task leased while paused");
    assert!(started < 6);
    assert_eq!(
        f.client.status(job).await.unwrap().job.state,
        JobState::Paused
    );

    f.client.resume(job).await.unwrap();
    until(&mut events, Duration::from_secs(120), |e| {
        matches!(e, JobEvent::Completed { .. })
    })
    .await;
    let status = f.client.status(job).await.unwrap();
    let states: Vec<JobState> = status.job.history.iter().map(|h| h.state).collect();
    assert_eq!(
        states,
        vec![
            JobState::Active,
            JobState::Paused,
            JobState::Active,
            JobState::Completed
        ]
    );
    assert!(status
        .job
        .history
        .windows(2)
        .all(|w| w[0].at_ms <= w[1].at_ms));
    assert!(status.job.history[1].at_ms < status.job.history[2].at_ms);
    // Resuming an active job or pausing a finished one is refused.
    let e = f.client.pause(job).await.unwrap_err();
    assert!(e.to_string().contains("completed"), "{e}");
    assert!(f
        .client
        .pause(JobId(404))
        .await
        .unwrap_err()
        .to_string()
        .contains("not found"));
    // Every task keeps its own timestamped history.
    for t in f.store.tasks_of_job(job).await.unwrap() {
        assert!(t.history.len() >= 4, "{:?}", t.history);
        assert!(t.history.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
    }
    f.manager.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn hung_and_failing_workers_lose_their_tasks_and_get_blocklisted() {
    let f = farm(ManagerConfig {
        progress_timeout: Duration::from_secs(30),
        failures_before_blocklist: 2,
        ..ManagerConfig::default()
    })
    .await;
    let hung = f.worker(100, StandInBehaviour::Hang);
    let broken = f.worker(101, StandInBehaviour::Fail);
    let (job, mut events) = f.submit(4).await;
    let mut hangs = 0;
    let mut faults = 0;
    // The lease lasts ten minutes; a hang is noticed from progress alone.
    until(&mut events, Duration::from_secs(400), |e| {
        if let JobEvent::TaskRequeued { reason, .. } = e {
            hangs += usize::from(reason.contains("no progress"));
            faults += usize::from(reason.contains("simulated device fault"));
        }
        hangs >= 2 && faults >= 2
    })
    .await;
    let blocklist = f.store.job(job).await.unwrap().unwrap().blocklist;
    assert!(blocklist.contains(&hung), "{blocklist:?}");
    assert!(blocklist.contains(&broken), "{blocklist:?}");
    // Neither gets another task of the job; a healthy worker finishes it.
    f.worker(102, StandInBehaviour::Honest);
    let seen = until(&mut events, Duration::from_secs(300), |e| {
        matches!(e, JobEvent::Completed { .. } | JobEvent::Failed { .. })
    })
    .await;
    assert!(
        matches!(seen.last(), Some(JobEvent::Completed { .. })),
        "{seen:?}"
    );
    for t in f.store.tasks_of_job(job).await.unwrap() {
        let by = t.result.as_ref().map(|r| r.worker);
        assert!(by != Some(hung) && by != Some(broken));
    }
    f.manager.shutdown().await;
}
