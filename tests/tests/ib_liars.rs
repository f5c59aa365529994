//! A worker that announces a hundred thousand times its speed. Its first
//! task, timed by the manager against the work the job was priced at,
//! shows what it really does; from then on it is taken for at most twice
//! that, so the scheduler's draw among idle workers, weighted by speed,
//! no longer hands it nearly every task.

use std::sync::Arc;
use std::time::Duration;

use inferix_core::ids::NodeId;
use inferix_core::job::{FrameRange, JobSpec};
use inferix_core::renderer::stand_in::{StandInBehaviour, StandInRenderer};
use inferix_core::store::{MemoryTaskStore, TaskStore};
use inferix_node::{Client, ManagerConfig, WorkerConfig, WorkerNode};
use inferix_storage::ObjectBlobStore;
use inferix_tests::{seeded_identity, start_manager, until_completed};
use inferix_transport::InProcNetwork;
use tokio::sync::watch;

/// How long every worker takes over a frame.
const FRAME: Duration = Duration::from_millis(500);

fn worker(net: &InProcNetwork, n: u128, addr: &str, ib: f64, dir: &std::path::Path) -> WorkerNode {
    WorkerNode::new(
        Arc::new(net.node(seeded_identity(n))),
        Arc::new(StandInRenderer::new(StandInBehaviour::Honest, FRAME)),
        WorkerConfig {
            manager: addr.into(),
            work_dir: dir.join(format!("w{n}")),
            ib,
            ..WorkerConfig::default()
        },
    )
}

#[tokio::test(start_paused = true)]
async fn a_worker_that_overstates_its_speed_gets_no_more_than_its_share() {
    let net = InProcNetwork::new();
    let store: Arc<dyn TaskStore> = Arc::new(MemoryTaskStore::new());
    let m = start_manager(
        &net,
        store.clone(),
        Arc::new(ObjectBlobStore::in_memory()),
        ManagerConfig {
            quorum: 1,
            // Stakes are not what this test is about: the liar could pay
            // for any index.
            stake_epoch_minutes: 0.0,
            ..ManagerConfig::default()
        },
    )
    .await;
    let addr = m.addr().to_string();
    let (stop, stopped) = watch::channel(false);
    let dir = tempfile::tempdir().unwrap();
    let _verifiers =
        inferix_tests::spawn_verifiers(&net, &addr, 1, None, None, dir.path(), &stopped);
    let client = Client::connect(&net.transport(NodeId(300)), &addr, None)
        .await
        .unwrap();
    let scene = client
        .upload_scene_bytes(inferix_gpu::demo_scene_glb(), "s.glb")
        .await
        .unwrap();
    let mut spec = JobSpec::new(scene, FrameRange::new(1, 1));
    spec.settings.width = 8;
    spec.settings.height = 8;
    // Honest workers announce the index their speed shows against the
    // quote (one frame's work in one frame's time); the liar announces the
    // largest index the manager accepts. All render at the same speed.
    let work = client.quote(&spec).await.unwrap().estimated_ibm;
    let true_ib = work / (FRAME.as_secs_f64() / 60.0);
    let liar = worker(&net, 1, &addr, 100_000.0, dir.path());
    let liar_id = liar.id();
    let mut runs = vec![tokio::spawn(liar.run(stopped.clone()))];
    for n in 2..5 {
        runs.push(tokio::spawn(
            worker(&net, n, &addr, true_ib, dir.path()).run(stopped.clone()),
        ));
    }
    // One-task jobs, one after another: each goes to one of four idle
    // workers, drawn by announced speed.
    let mut by_liar = 0;
    const JOBS: usize = 20;
    for _ in 0..JOBS {
        let (job, _) = client.submit(&spec).await.unwrap();
        let mut events = client.watch(job).await.unwrap();
        until_completed(&mut events, Duration::from_secs(600)).await;
        let t = &store.tasks_of_job(job).await.unwrap()[0];
        if t.result.as_ref().unwrap().worker == liar_id {
            by_liar += 1;
        }
    }
    // Believed, it would take nearly all (100,000 against 3 × ~1). Capped
    // at twice its measured speed it weighs 2 against 3: about 40 %.
    assert!(
        by_liar <= 14,
        "the liar rendered {by_liar} of {JOBS} one-task jobs beside three honest workers"
    );
    let _ = stop.send(true);
    for r in runs {
        let _ = r.await;
    }
    m.shutdown().await;
}
