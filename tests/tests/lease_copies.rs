//! Watermarked lease copies do not pile up in blob storage: the copy of a
//! lease that failed goes at once, and the copies behind accepted results
//! go once the job's claim window has closed; the customer's own scene
//! stays.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use inferix_core::blob::{BlobError, BlobMeta, BlobReader, BlobStore, BlobStoreExt};
use inferix_core::ids::NodeId;
use inferix_core::job::{FrameRange, JobSpec};
use inferix_core::por::key::ManagerSecret;
use inferix_core::por::prepare::PorConfig;
use inferix_core::renderer::stand_in::{StandInBehaviour, StandInRenderer};
use inferix_core::renderer::Renderer;
use inferix_core::store::{MemoryTaskStore, TaskStore};
use inferix_core::ContentHash;
use inferix_node::{Client, ManagerBuilder, ManagerConfig};
use inferix_storage::ObjectBlobStore;
use inferix_tests::{numbered_worker, spawn_verifiers, until_completed};
use inferix_transport::InProcNetwork;
use tokio::sync::{mpsc, watch};

/// Blobs in memory that report each deletion.
struct Deletions {
    inner: ObjectBlobStore,
    deleted: mpsc::UnboundedSender<ContentHash>,
}

#[async_trait]
impl BlobStore for Deletions {
    async fn put(&self, reader: BlobReader) -> Result<BlobMeta, BlobError> {
        self.inner.put(reader).await
    }
    async fn get(&self, hash: ContentHash) -> Result<BlobReader, BlobError> {
        self.inner.get(hash).await
    }
    async fn size(&self, hash: ContentHash) -> Result<Option<u64>, BlobError> {
        self.inner.size(hash).await
    }
    fn max_blob_size(&self) -> u64 {
        self.inner.max_blob_size()
    }
    async fn delete(&self, hash: ContentHash) -> Result<(), BlobError> {
        let r = self.inner.delete(hash).await;
        let _ = self.deleted.send(hash);
        r
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_leases_lose_their_copy_at_once_and_accepted_ones_after_the_claim_window() {
    let net = InProcNetwork::new();
    let store: Arc<dyn TaskStore> = Arc::new(MemoryTaskStore::new());
    let (deleted_tx, mut deleted) = mpsc::unbounded_channel();
    let blobs: Arc<dyn BlobStore> = Arc::new(Deletions {
        inner: ObjectBlobStore::in_memory(),
        deleted: deleted_tx,
    });
    let tracer: Arc<dyn Renderer> = Arc::new(inferix_gpu::PathTracer::new().unwrap());
    let scratch = tempfile::tempdir().unwrap();
    let manager = ManagerBuilder::new(
        Arc::new(net.transport(NodeId(1))),
        store.clone(),
        blobs.clone(),
    )
    .config(ManagerConfig {
        quorum: 1,
        tick: Duration::from_millis(50),
        claim_window: Duration::ZERO,
        lease_copy_sweep: Duration::from_millis(100),
        ..ManagerConfig::default()
    })
    .scratch_dir(scratch.path())
    .proof_of_render(PorConfig::new(ManagerSecret(b"lease copies".to_vec())))
    .watermarker(Arc::new(inferix_gpu::GltfWatermarker))
    .build()
    .start()
    .await
    .unwrap();
    let addr = manager.addr().to_string();
    let (stop, stopped) = watch::channel(false);
    let client =
        Client::connect_with_blobs(&net.transport(NodeId(300)), &addr, None, blobs.clone())
            .await
            .unwrap();
    let scene = client
        .upload_scene_bytes(inferix_gpu::demo_scene_glb(), "demo.glb")
        .await
        .unwrap();
    let mut spec = JobSpec::new(scene.clone(), FrameRange::new(1, 2));
    spec.settings.width = 32;
    spec.settings.height = 24;
    spec.settings.samples = 4;
    spec.chunk_size = 1;
    let (job, _) = client.submit(&spec).await.unwrap();
    let mut events = client.watch(job).await.unwrap();

    // A broken worker takes a lease and fails it: that copy goes.
    let broken = StandInRenderer::new(StandInBehaviour::Fail, Duration::from_millis(10));
    let broken_run = tokio::spawn(
        numbered_worker(&net, 100, &addr, Arc::new(broken))
            .with_blob_store(blobs.clone())
            .run(stopped.clone()),
    );
    let failed_copy = tokio::time::timeout(Duration::from_secs(120), deleted.recv())
        .await
        .expect("the failed lease's copy is removed")
        .unwrap();
    assert_ne!(failed_copy, scene.blob);
    assert!(!blobs.contains(failed_copy).await.unwrap());
    broken_run.abort();

    // An honest worker and a verifier finish the job.
    let _verifiers = spawn_verifiers(
        &net,
        &addr,
        1,
        Some(blobs.clone()),
        Some(tracer.clone()),
        scratch.path(),
        &stopped,
    );
    let _honest = tokio::spawn(
        numbered_worker(&net, 101, &addr, tracer.clone())
            .with_blob_store(blobs.clone())
            .run(stopped.clone()),
    );
    until_completed(&mut events, Duration::from_secs(300)).await;

    // The claim window is zero: the sweep removes each accepted result's
    // copy, and records that it did.
    let accepted: Vec<ContentHash> = store
        .tasks_of_job(job)
        .await
        .unwrap()
        .iter()
        .map(|t| t.result.as_ref().expect("accepted").scene)
        .collect();
    assert_eq!(accepted.len(), 2);
    let mut removed = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), async {
        while !accepted.iter().all(|c| removed.contains(c)) {
            removed.push(deleted.recv().await.unwrap());
        }
    })
    .await
    .expect("the accepted copies are removed after the claim window");
    for c in &accepted {
        assert_ne!(*c, scene.blob);
        assert!(!blobs.contains(*c).await.unwrap());
    }
    assert!(
        blobs.contains(scene.blob).await.unwrap(),
        "the customer's scene stays"
    );
    // The job's frames are still there to download.
    let files = client
        .download(job, &scratch.path().join("out"))
        .await
        .unwrap();
    assert_eq!(files.len(), 2);
    let _ = stop.send(true);
    manager.shutdown().await;
}
