//! A manager killed mid-job and restarted on the same store picks the job
//! up as its workers come back: the leases it granted before the crash are
//! released when their workers say hello again (they hold nothing after a
//! reconnect), so the job's tail resumes within seconds instead of waiting
//! for the leases to expire (600 s by default).

use std::sync::Arc;
use std::time::Duration;

use inferix_core::blob::BlobStore;
use inferix_core::ids::NodeId;
use inferix_core::job::JobState;
use inferix_core::store::{MemoryTaskStore, TaskStore};
use inferix_core::task::TaskStatus;
use inferix_core::time::TokioClock;
use inferix_node::{Client, ManagerBuilder, ManagerConfig};
use inferix_storage::ObjectBlobStore;
use inferix_tests::{spawn_honest_workers, spawn_verifiers, start_manager, submit_stand_in_job};
use inferix_transport::InProcNetwork;
use tokio::sync::watch;
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn a_restarted_manager_releases_its_old_leases_as_workers_return() {
    let net = InProcNetwork::new();
    let store = Arc::new(MemoryTaskStore::new());
    let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::in_memory());
    let config = ManagerConfig {
        quorum: 1,
        tick: Duration::from_secs(1),
        ..ManagerConfig::default()
    };
    let lease = config.lease;
    let started = Instant::now();
    let first = start_manager(&net, store.clone(), blobs.clone(), config.clone()).await;
    let addr = first.addr().to_string();

    let (stop, stopped) = watch::channel(false);
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = spawn_verifiers(&net, &addr, 1, None, None, dir.path(), &stopped);
    nodes.extend(spawn_honest_workers(
        &net,
        &addr,
        2,
        Duration::from_secs(30),
        dir.path(),
        &stopped,
    ));
    let client = Client::connect(&net.transport(NodeId(50)), &addr, None)
        .await
        .unwrap();
    let job = submit_stand_in_job(&client, 4, 8, 1).await;
    drop(client);

    // Both workers are mid-render when the manager dies.
    tokio::time::timeout(Duration::from_secs(600), async {
        loop {
            let tasks = store.tasks_of_job(job).await.unwrap();
            let leased = tasks
                .iter()
                .filter(|t| t.status == TaskStatus::Leased)
                .count();
            if leased == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
    .await
    .expect("both workers take a task");
    first.abort();
    // The process comes back a second later.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let restarted = Instant::now();
    let epoch = 1_000 + restarted.duration_since(started).as_millis() as u64;
    let second = ManagerBuilder::new(Arc::new(net.transport(NodeId(1))), store.clone(), blobs)
        .clock(Arc::new(TokioClock::starting_at(epoch)))
        .config(config)
        .build()
        .start()
        .await
        .expect("the manager restarts on its store");

    let client = Client::connect(&net.transport(NodeId(51)), second.addr(), None)
        .await
        .unwrap();
    let status = tokio::time::timeout(lease * 3, client.wait(job, |_| {}))
        .await
        .expect("the job ends")
        .unwrap();
    let took = restarted.elapsed();
    assert_eq!(status.job.state, JobState::Completed, "{:?}", status.job);
    assert_eq!(status.frames.len(), 4);
    println!("restart to the job's last frame: {took:?} (virtual time; lease {lease:?})");
    assert!(
        took < lease / 2,
        "the tail resumed as the workers returned, not at lease expiry: {took:?}"
    );
    for t in store.tasks_of_job(job).await.unwrap() {
        assert_eq!(t.status, TaskStatus::Accepted);
        assert_eq!(t.failures, 0, "{:?}", t.history);
        assert!(t.excluded.is_empty(), "nobody was blamed: {:?}", t.history);
    }
    let _ = stop.send(true);
    for n in nodes {
        n.await.unwrap().unwrap();
    }
    second.shutdown().await;
}
