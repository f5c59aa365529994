//! Jobs too large for one message or for the manager:
//! - a job that would split into more tasks than the manager takes is
//!   refused by name (`LimitExceeded`) when quoted and when submitted, and
//!   nothing of it is stored;
//! - a status of a job with more frames than one reply carries comes in
//!   pages that, joined, list every accepted frame once, in order.

use std::sync::Arc;
use std::time::Duration;

use inferix_core::ids::NodeId;
use inferix_core::job::{FrameRange, JobSpec, JobState};
use inferix_core::protocol::ErrorCode;
use inferix_core::store::{MemoryTaskStore, TaskStore};
use inferix_node::{Client, ManagerConfig};
use inferix_storage::ObjectBlobStore;
use inferix_tests::{
    refusal_code, spawn_honest_workers, spawn_verifiers, start_manager, submit_stand_in_job,
};
use inferix_transport::InProcNetwork;
use tokio::sync::watch;

/// A manager with `config` on a network of its own, its tasks in memory.
async fn in_memory_manager(
    config: ManagerConfig,
) -> (
    InProcNetwork,
    Arc<MemoryTaskStore>,
    inferix_node::ManagerHandle,
) {
    let net = InProcNetwork::new();
    let store = Arc::new(MemoryTaskStore::new());
    let blobs = Arc::new(ObjectBlobStore::in_memory());
    let manager = start_manager(&net, store.clone(), blobs, config).await;
    (net, store, manager)
}

#[tokio::test(start_paused = true)]
async fn a_job_of_too_many_tasks_is_refused_and_leaves_nothing() {
    let (net, store, manager) = in_memory_manager(ManagerConfig {
        max_tasks_per_job: 10,
        ..ManagerConfig::default()
    })
    .await;
    let client = Client::connect(&net.transport(NodeId(50)), manager.addr(), None)
        .await
        .unwrap();
    let scene = client
        .upload_scene_bytes(inferix_gpu::demo_scene_glb(), "s.glb")
        .await
        .unwrap();
    let mut spec = JobSpec::new(scene, FrameRange::new(1, 11));
    spec.chunk_size = 1;

    for refused in [
        client.quote(&spec).await.map(|_| ()),
        client.submit(&spec).await.map(|_| ()),
    ] {
        let message = match &refused {
            Err(inferix_node::ClientError::Refused { message, .. }) => message.clone(),
            other => panic!("expected a refusal, got {other:?}"),
        };
        assert!(message.contains("11 tasks"), "{message}");
        assert!(message.contains("at most 10"), "{message}");
        assert!(message.contains("chunk size to at least 2"), "{message}");
        assert_eq!(refusal_code(refused), ErrorCode::LimitExceeded);
    }
    assert!(store.jobs().await.unwrap().is_empty(), "nothing stored");

    // Ten tasks, or the same frames in larger chunks, are taken.
    spec.chunk_size = 2;
    let (job, _) = client.submit(&spec).await.unwrap();
    assert_eq!(store.tasks_of_job(job).await.unwrap().len(), 6);
}

#[tokio::test(start_paused = true)]
async fn a_large_status_comes_in_pages_that_join_into_every_frame() {
    let (net, store, manager) = in_memory_manager(ManagerConfig {
        quorum: 1,
        // Two tasks of two frames per page.
        status_page_frames: 4,
        ..ManagerConfig::default()
    })
    .await;
    let addr = manager.addr().to_string();
    let dir = tempfile::tempdir().unwrap();
    let (_stop, stopped) = watch::channel(false);
    let _workers = spawn_honest_workers(
        &net,
        &addr,
        3,
        Duration::from_millis(20),
        dir.path(),
        &stopped,
    );
    let _verifiers = spawn_verifiers(&net, &addr, 1, None, None, dir.path(), &stopped);
    let client = Client::connect(&net.transport(NodeId(50)), &addr, None)
        .await
        .unwrap();
    // 11 frames in 6 tasks (the last of one frame): three pages.
    let job = submit_stand_in_job(&client, 11, 8, 2).await;
    let mut events = client.watch(job).await.unwrap();
    inferix_tests::until_completed(&mut events, Duration::from_secs(600)).await;

    let first = client.status_page(job, 0).await.unwrap();
    assert_eq!(first.job.state, JobState::Completed);
    assert_eq!(
        first.frames.iter().map(|f| f.frame).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    assert_eq!(first.next_task, Some(2));
    let second = client.status_page(job, 2).await.unwrap();
    assert_eq!(
        second.frames.iter().map(|f| f.frame).collect::<Vec<_>>(),
        [5, 6, 7, 8]
    );
    assert_eq!(second.next_task, Some(4));
    let last = client.status_page(job, 4).await.unwrap();
    assert_eq!(
        last.frames.iter().map(|f| f.frame).collect::<Vec<_>>(),
        [9, 10, 11]
    );
    assert_eq!(last.next_task, None);
    // Every page carries the whole job's counts.
    assert_eq!(first.counts, last.counts);

    // Joined, they are every frame once, in order, as the store has them.
    let whole = client.status(job).await.unwrap();
    assert_eq!(
        whole.frames.iter().map(|f| f.frame).collect::<Vec<_>>(),
        (1..=11).collect::<Vec<_>>()
    );
    assert_eq!(whole.next_task, None);
    let stored: Vec<_> = store
        .tasks_of_job(job)
        .await
        .unwrap()
        .iter()
        .flat_map(|t| t.delivered_frames())
        .collect();
    assert_eq!(whole.frames, stored);

    // A page past the end is empty, not an error.
    let beyond = client.status_page(job, 99).await.unwrap();
    assert!(beyond.frames.is_empty());
    assert_eq!(beyond.next_task, None);
}
