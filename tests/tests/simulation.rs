//! Seeded simulation: 1 manager, 50 workers, 5 verifiers over the in-process
//! transport in virtual time. Workers vanish mid-task, hang, or cheat; the
//! checkers prove no frame is lost, none is accepted twice, and no task is
//! ever leased to two workers at once.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use inferix_core::blob::{BlobStore, BlobStoreExt};
use inferix_core::ids::{JobId, NodeId};
use inferix_core::job::{FrameRange, JobSpec, JobState, SceneRef};
use inferix_core::ledger::{balance, Account};
use inferix_core::protocol::JobEvent;
use inferix_core::renderer::stand_in::{StandInBehaviour, StandInRenderer};
use inferix_core::renderer::SceneFormat;
use inferix_core::scheduler::WeightedRandomScheduler;
use inferix_core::store::{MemoryTaskStore, TaskStore};
use inferix_core::task::{Task, TaskStatus};
use inferix_core::time::TokioClock;
use inferix_node::{
    Client, ManagerBuilder, ManagerConfig, VerifierConfig, VerifierNode, WorkerConfig, WorkerNode,
};
use inferix_storage::ObjectBlobStore;
use inferix_transport::InProcNetwork;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::watch;

struct Outcome {
    tasks: Vec<Task>,
    events: Vec<JobEvent>,
    state: JobState,
    store: Arc<MemoryTaskStore>,
    job: JobId,
    frames: u32,
}

async fn simulate(seed: u64) -> Outcome {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let net = InProcNetwork::new();
    let store = Arc::new(MemoryTaskStore::new());
    let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::in_memory());
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(TokioClock::starting_at(1_700_000_000_000));
    let config = ManagerConfig {
        lease: Duration::from_secs(60),
        heartbeat_timeout: Duration::from_secs(20),
        verification_timeout: Duration::from_secs(30),
        tick: Duration::from_secs(1),
        quorum: 2,
        // The default budget: vanished and hung workers are charged to
        // themselves, not to the task, so it is enough.
        ..ManagerConfig::default()
    };
    let manager = ManagerBuilder::new(
        Arc::new(net.transport(NodeId(1))),
        store.clone(),
        blobs.clone(),
    )
    .scheduler(WeightedRandomScheduler::seeded(seed))
    .clock(clock)
    .config(config)
    .build()
    .start()
    .await
    .unwrap();
    let addr = manager.addr().to_string();
    let (stop, stopped) = watch::channel(false);

    let mut workers = Vec::new();
    for i in 0..50u128 {
        let behaviour = match i % 25 {
            0 => StandInBehaviour::Hang,
            1 => StandInBehaviour::Blank,
            _ => StandInBehaviour::Honest,
        };
        let per_frame = Duration::from_millis(rng.gen_range(500..3000));
        let cfg = WorkerConfig {
            manager: addr.clone(),
            ib: rng.gen_range(0.5..3.0),
            work_dir: dir.path().join(format!("w{i}")),
            ..WorkerConfig::default()
        };
        let w = WorkerNode::new(
            Arc::new(net.node(inferix_tests::seeded_identity(100 + i))),
            Arc::new(StandInRenderer::new(behaviour, per_frame)),
            cfg,
        );
        workers.push(Some(tokio::spawn(w.run(stopped.clone()))));
    }
    let mut verifiers = Vec::new();
    for i in 0..5u128 {
        let cfg = VerifierConfig {
            manager: addr.clone(),
            ..VerifierConfig::default()
        };
        // Verifiers render the scene: a blank frame is judged by what the
        // scene renders to, never passed unchecked.
        let renderer = StandInRenderer::new(StandInBehaviour::Honest, Duration::from_millis(200));
        verifiers.push(tokio::spawn(
            VerifierNode::new(Arc::new(net.transport(NodeId(200 + i))), cfg)
                .with_renderer(Arc::new(renderer))
                .run(stopped.clone()),
        ));
    }

    let client = Client::connect(&net.transport(NodeId(300)), &addr, None)
        .await
        .unwrap();
    let scene = blobs
        .put_bytes(inferix_gpu::demo_scene_glb())
        .await
        .unwrap();
    let frames = 240;
    let mut spec = JobSpec::new(
        SceneRef {
            blob: scene.hash,
            format: SceneFormat::Gltf,
            file_name: "sim.glb".into(),
        },
        FrameRange::new(1, frames),
    );
    spec.settings.width = 16;
    spec.settings.height = 8;
    spec.chunk_size = 3;
    let (job, _) = client.submit(&spec).await.unwrap();
    let mut events_rx = client.watch(job).await.unwrap();

    // Kill a few workers at seeded moments while they render.
    let mut events = Vec::new();
    let mut kills = 0;
    loop {
        let ev = tokio::select! {
            ev = events_rx.recv() => ev,
            _ = tokio::time::sleep(Duration::from_millis(rng.gen_range(200..2000))) => {
                if kills < 8 {
                    let i = rng.gen_range(0..workers.len());
                    if let Some(h) = workers[i].take() {
                        h.abort();
                        kills += 1;
                    }
                }
                continue;
            }
        };
        let Some(ev) = ev else { break };
        let done = matches!(
            ev,
            JobEvent::Completed { .. } | JobEvent::Failed { .. } | JobEvent::Cancelled
        );
        events.push(ev);
        if done {
            break;
        }
    }
    let state = client.status(job).await.unwrap().job.state;
    let tasks = store.tasks_of_job(job).await.unwrap();
    drop(client);
    let _ = stop.send(true);
    manager.shutdown().await;
    Outcome {
        tasks,
        events,
        state,
        store,
        job,
        frames,
    }
}

/// Checker: the job completed and every frame is in exactly one accepted task.
fn every_frame_accepted_exactly_once(o: &Outcome) {
    assert_eq!(o.state, JobState::Completed, "job must complete");
    let mut seen: BTreeMap<u32, usize> = BTreeMap::new();
    for t in &o.tasks {
        assert_eq!(
            t.status,
            TaskStatus::Accepted,
            "task {:?} not accepted: {:?}",
            t.id,
            t.history
        );
        let r = t.result.as_ref().expect("accepted task has a result");
        for f in &r.frames {
            *seen.entry(f.frame).or_default() += 1;
        }
    }
    assert_eq!(seen.len() as u32, o.frames, "no frame lost");
    assert!(seen.values().all(|&n| n == 1), "no frame accepted twice");
    let mut accepted_events: HashMap<_, usize> = HashMap::new();
    for e in &o.events {
        if let JobEvent::TaskAccepted { task, .. } = e {
            *accepted_events.entry(*task).or_default() += 1;
        }
    }
    assert!(
        accepted_events.values().all(|&n| n == 1),
        "each task accepted once"
    );
    assert_eq!(accepted_events.len(), o.tasks.len());
}

/// Checker: between two leases of a task there is always a return to the
/// queue, so no two workers ever hold it at once.
fn never_leased_twice_at_once(o: &Outcome) {
    for t in &o.tasks {
        let mut leased = false;
        for c in &t.history {
            match c.status {
                TaskStatus::Leased => {
                    assert!(
                        !leased,
                        "task {:?} leased while leased: {:?}",
                        t.id, t.history
                    );
                    leased = true;
                }
                _ => leased = false,
            }
        }
    }
}

/// Checker: only rejected results were charged to a task, not leases lost
/// through vanished and hung workers (and a rejection only when its worker
/// had accepted work behind it, so fewer than the rejections).
fn only_failed_attempts_are_charged(o: &Outcome) {
    for t in &o.tasks {
        let rejected = t
            .history
            .iter()
            .filter(|c| c.status == TaskStatus::Rejected)
            .count() as u32;
        assert!(t.failures <= rejected, "task {:?}: {:?}", t.id, t.history);
    }
}

/// Checker: cheaters' results were rejected and never paid; each task paid
/// once; escrow fully spent or refunded.
async fn ledger_balances(o: &Outcome) {
    let txs = o.store.transactions().await.unwrap();
    let pays: Vec<_> = txs.iter().filter(|t| t.id.starts_with("pay:")).collect();
    assert_eq!(pays.len(), o.tasks.len(), "one payment per task");
    assert_eq!(
        balance(&txs, &Account::Job(o.job)),
        0,
        "escrow spent or refunded"
    );
    let total: i64 = txs.iter().flat_map(|t| &t.postings).map(|p| p.amount).sum();
    assert_eq!(total, 0, "double entry");
}

#[tokio::test(start_paused = true)]
async fn fifty_workers_with_failures_render_every_frame_once() {
    let o = simulate(42).await;
    every_frame_accepted_exactly_once(&o);
    never_leased_twice_at_once(&o);
    only_failed_attempts_are_charged(&o);
    ledger_balances(&o).await;
    let rejected = o
        .events
        .iter()
        .filter(|e| matches!(e, JobEvent::TaskRejected { .. }))
        .count();
    let requeued = o
        .events
        .iter()
        .filter(|e| matches!(e, JobEvent::TaskRequeued { .. }))
        .count();
    assert!(
        rejected > 0,
        "blank frames from cheating workers must be rejected"
    );
    assert!(
        requeued > rejected,
        "vanished and hung workers' tasks must be re-queued"
    );
}

#[tokio::test(start_paused = true)]
async fn another_seed_also_keeps_every_invariant() {
    let o = simulate(7).await;
    every_frame_accepted_exactly_once(&o);
    never_leased_twice_at_once(&o);
    only_failed_attempts_are_charged(&o);
    ledger_balances(&o).await;
}
