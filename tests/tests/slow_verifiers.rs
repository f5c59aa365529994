//! The demo's case: two verifiers, a quorum of two, and each verification
//! slower than the verification timeout. Nobody can replace a late
//! verifier, so its late verdict must still count: every round settles and
//! the job completes (it used to stay in Verifying forever).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use inferix_core::blob::{BlobError, BlobMeta, BlobReader, BlobStore};
use inferix_core::ids::NodeId;
use inferix_core::job::JobState;
use inferix_core::protocol::JobEvent;
use inferix_core::renderer::stand_in::{StandInBehaviour, StandInRenderer};
use inferix_core::store::MemoryTaskStore;
use inferix_core::ContentHash;
use inferix_node::{Client, ManagerConfig, WorkerConfig, WorkerNode};
use inferix_storage::ObjectBlobStore;
use inferix_tests::{seeded_identity, spawn_verifiers, start_manager, submit_stand_in_job};
use inferix_transport::InProcNetwork;
use tokio::sync::watch;

const TIMEOUT: Duration = Duration::from_secs(1);

/// A blob store whose reads take `delay`: verifiers reading frames through
/// it take longer than the verification timeout.
struct SlowReads {
    inner: Arc<dyn BlobStore>,
    delay: Duration,
}

#[async_trait]
impl BlobStore for SlowReads {
    async fn put(&self, reader: BlobReader) -> Result<BlobMeta, BlobError> {
        self.inner.put(reader).await
    }
    async fn get(&self, hash: ContentHash) -> Result<BlobReader, BlobError> {
        tokio::time::sleep(self.delay).await;
        self.inner.get(hash).await
    }
    async fn size(&self, hash: ContentHash) -> Result<Option<u64>, BlobError> {
        self.inner.size(hash).await
    }
    fn max_blob_size(&self) -> u64 {
        self.inner.max_blob_size()
    }
}

#[tokio::test(start_paused = true)]
async fn two_verifiers_slower_than_the_timeout_still_verify_every_task() {
    let net = InProcNetwork::new();
    let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::in_memory());
    let manager = start_manager(
        &net,
        Arc::new(MemoryTaskStore::new()),
        blobs.clone(),
        ManagerConfig {
            quorum: 2,
            verification_timeout: TIMEOUT,
            ..ManagerConfig::default()
        },
    )
    .await;
    let addr = manager.addr().to_string();
    let (stop, stopped) = watch::channel(false);
    let worker = WorkerNode::new(
        Arc::new(net.node(seeded_identity(100))),
        Arc::new(StandInRenderer::new(
            StandInBehaviour::Honest,
            Duration::from_millis(100),
        )),
        WorkerConfig {
            manager: addr.clone(),
            work_dir: std::env::temp_dir().join("inferix-slow-verifiers-w"),
            ..WorkerConfig::default()
        },
    )
    .with_blob_store(blobs.clone());
    let worker = tokio::spawn(worker.run(stopped.clone()));
    let slow: Arc<dyn BlobStore> = Arc::new(SlowReads {
        inner: blobs.clone(),
        delay: 3 * TIMEOUT,
    });
    let dir = tempfile::tempdir().unwrap();
    let verifiers = spawn_verifiers(&net, &addr, 2, Some(slow), None, dir.path(), &stopped);

    let client = Client::connect_with_blobs(&net.transport(NodeId(50)), &addr, None, blobs)
        .await
        .unwrap();
    let job = submit_stand_in_job(&client, 6, 8, 1).await;
    let mut events = client.watch(job).await.unwrap();
    let done = tokio::time::timeout(Duration::from_secs(3_600), client.wait(job, |_| {}))
        .await
        .expect("every round settles although every vote is late")
        .unwrap();
    assert_eq!(done.job.state, JobState::Completed);
    assert_eq!(done.frames.len(), 6);
    // The late verifiers were reported to the job's watchers meanwhile.
    let mut reported = Vec::new();
    while let Ok(e) = events.try_recv() {
        if let JobEvent::Waiting { reason } = e {
            reported.push(reason);
        }
    }
    assert!(
        reported.iter().any(|r| r.contains("past its deadline")),
        "late verifiers are reported: {reported:?}"
    );

    let _ = stop.send(true);
    worker.await.unwrap().unwrap();
    for v in verifiers {
        v.await.unwrap().unwrap();
    }
    manager.shutdown().await;
}
