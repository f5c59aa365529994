//! A peer that never reads what the manager sends it cannot hold up anyone
//! else: the manager queues each peer's messages apart, and disconnects a
//! peer whose queue fills up.

use std::sync::Arc;
use std::time::Duration;

use inferix_core::blob::BlobStore;
use inferix_core::ids::{JobId, NodeId};
use inferix_core::job::{FrameRange, JobSpec, JobState};
use inferix_core::protocol::{Envelope, Hello, Message, Role};
use inferix_core::renderer::stand_in::{StandInBehaviour, StandInRenderer};
use inferix_core::store::MemoryTaskStore;
use inferix_node::{Client, ManagerConfig, WorkerConfig, WorkerNode};
use inferix_storage::ObjectBlobStore;
use inferix_tests::{seeded_identity, spawn_verifiers, start_manager};
use inferix_transport::{InProcNetwork, Transport};
use tokio::sync::watch;

/// More replies than the transport's window and the manager's queue for
/// one peer hold together.
const UNREAD_REPLIES: u64 = 6_000;

#[tokio::test(start_paused = true)]
async fn a_client_that_never_reads_does_not_delay_a_job() {
    let net = InProcNetwork::new();
    let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::in_memory());
    let manager = start_manager(
        &net,
        Arc::new(MemoryTaskStore::new()),
        blobs.clone(),
        ManagerConfig {
            quorum: 1,
            ..ManagerConfig::default()
        },
    )
    .await;
    let addr = manager.addr().to_string();

    // The slow client says hello, then asks for status over and over and
    // never reads a reply.
    let slow = net.transport(NodeId(60)).connect(&addr).await.unwrap();
    let hello = Hello {
        role: Role::Client,
        node: NodeId(60),
        ib: 0.0,
        tags: vec![],
        device_class: String::new(),
        token: None,
        formats: vec![],
    };
    slow.sender
        .send(Envelope::with_id(1, Message::Hello(hello)))
        .await
        .unwrap();
    for id in 2..UNREAD_REPLIES {
        let ask = Message::StatusRequest {
            job: JobId(5),
            from_task: 0,
        };
        if slow.sender.send(Envelope::with_id(id, ask)).await.is_err() {
            break; // already disconnected
        }
    }

    // Everyone else works as usual meanwhile.
    let (stop, stopped) = watch::channel(false);
    let worker = WorkerNode::new(
        Arc::new(net.node(seeded_identity(100))),
        Arc::new(StandInRenderer::new(
            StandInBehaviour::Honest,
            Duration::from_millis(100),
        )),
        WorkerConfig {
            manager: addr.clone(),
            work_dir: std::env::temp_dir().join("inferix-slow-reader-w"),
            ..WorkerConfig::default()
        },
    );
    let worker = tokio::spawn(worker.run(stopped.clone()));
    let dir = tempfile::tempdir().unwrap();
    let verifiers = spawn_verifiers(&net, &addr, 1, None, None, dir.path(), &stopped);
    let run_job = async {
        let client = Client::connect(&net.transport(NodeId(50)), &addr, None)
            .await
            .unwrap();
        let scene = client
            .upload_scene_bytes(inferix_gpu::demo_scene_glb(), "s.glb")
            .await
            .unwrap();
        let mut spec = JobSpec::new(scene, FrameRange::new(1, 6));
        spec.settings.width = 8;
        spec.settings.height = 8;
        let (job, _) = client.submit(&spec).await.unwrap();
        client.wait(job, |_| {}).await.unwrap()
    };
    // A manager stuck on the slow client would answer nobody: the
    // connection, the submission and the job all fall under the limit.
    let done = tokio::time::timeout(Duration::from_secs(600), run_job)
        .await
        .expect("the job completes while the slow client does not read");
    assert_eq!(done.job.state, JobState::Completed);
    assert_eq!(done.frames.len(), 6);

    // The slow client was disconnected: what reached it ends with a close.
    let mut slow_rx = slow.receiver;
    let mut received = 0u64;
    let closed = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(_)) = slow_rx.recv().await {
            received += 1;
        }
    })
    .await;
    assert!(closed.is_ok(), "the slow client's connection was closed");
    assert!(
        received < UNREAD_REPLIES - 1,
        "it was dropped before every reply was queued ({received} received)"
    );

    let _ = stop.send(true);
    worker.await.unwrap().unwrap();
    for v in verifiers {
        v.await.unwrap().unwrap();
    }
    manager.shutdown().await;
}
