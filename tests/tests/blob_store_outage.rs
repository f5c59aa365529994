//! The manager's blob store fills up mid-job: uploads fail, but that is the
//! manager's failure, not the workers'. No worker is charged, blocklisted
//! or slashed, leasing pauses with the reason in the job's status and event
//! stream, and once the store accepts writes again the job completes by
//! itself, each task paid once. The same holds for workers that write to
//! the store directly (an S3 bucket shared with the manager): their report
//! of a storage failure is believed when the manager's own write fails
//! too, and charged to them when it does not.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use inferix_core::blob::{BlobError, BlobMeta, BlobReader, BlobStore};
use inferix_core::ids::NodeId;
use inferix_core::job::JobState;
use inferix_core::protocol::JobEvent;
use inferix_core::renderer::stand_in::{StandInBehaviour, StandInRenderer};
use inferix_core::store::{MemoryTaskStore, TaskStore};
use inferix_core::ContentHash;
use inferix_node::{Client, ManagerConfig, WorkerConfig, WorkerNode};
use inferix_storage::ObjectBlobStore;
use inferix_tests::{
    seeded_identity, spawn_honest_workers, spawn_verifiers, start_manager, submit_stand_in_job,
    until_completed,
};
use inferix_transport::InProcNetwork;
use tokio::sync::watch;

/// A blob store whose disk can fill up: writes fail while it is full.
struct FillingDisk {
    inner: ObjectBlobStore,
    full: AtomicBool,
    /// Writes refused so far (uploads and the manager's probes).
    refused: watch::Sender<usize>,
}

#[async_trait]
impl BlobStore for FillingDisk {
    async fn put(&self, reader: BlobReader) -> Result<BlobMeta, BlobError> {
        if self.full.load(Ordering::SeqCst) {
            self.refused.send_modify(|n| *n += 1);
            return Err(BlobError::Io(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                "No space left on device",
            )));
        }
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
}

#[tokio::test(start_paused = true)]
async fn a_full_blob_store_pauses_the_job_and_blames_no_worker() {
    let net = InProcNetwork::new();
    let store = Arc::new(MemoryTaskStore::new());
    let disk = Arc::new(FillingDisk {
        inner: ObjectBlobStore::in_memory(),
        full: AtomicBool::new(false),
        refused: watch::channel(0).0,
    });
    let blobs: Arc<dyn BlobStore> = disk.clone();
    let manager = start_manager(
        &net,
        store.clone(),
        blobs,
        ManagerConfig {
            quorum: 1,
            tick: Duration::from_secs(1),
            ..ManagerConfig::default()
        },
    )
    .await;
    let addr = manager.addr().to_string();
    let (stop, stopped) = watch::channel(false);
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = spawn_verifiers(&net, &addr, 1, None, None, dir.path(), &stopped);
    nodes.extend(spawn_honest_workers(
        &net,
        &addr,
        3,
        Duration::from_secs(1),
        dir.path(),
        &stopped,
    ));
    let client = Client::connect(&net.transport(NodeId(50)), &addr, None)
        .await
        .unwrap();
    let job = submit_stand_in_job(&client, 6, 8, 1).await;
    let mut events = client.watch(job).await.unwrap();
    // The disk fills up before any frame is stored.
    disk.full.store(true, Ordering::SeqCst);

    let reason = tokio::time::timeout(Duration::from_secs(600), async {
        loop {
            match events.recv().await.expect("events flow") {
                JobEvent::Waiting { reason } if reason.contains("blob store") => return reason,
                JobEvent::Failed { reason } => panic!("job failed: {reason}"),
                _ => {}
            }
        }
    })
    .await
    .expect("the job says it waits for the blob store");
    assert!(reason.contains("No space left"), "{reason}");

    // Full through the workers' uploads and several of the manager's
    // backed-off probes: nothing is charged to anyone meanwhile.
    let mut refused = disk.refused.subscribe();
    tokio::time::timeout(Duration::from_secs(3_600), refused.wait_for(|n| *n >= 8))
        .await
        .expect("the manager keeps probing the store")
        .unwrap();
    let during = client.status(job).await.unwrap();
    assert_eq!(during.job.state, JobState::Active, "{:?}", during.job);
    assert!(
        during
            .job
            .waiting_reason
            .as_deref()
            .is_some_and(|r| r.contains("blob store")),
        "{:?}",
        during.job.waiting_reason
    );
    assert!(during.job.blocklist.is_empty(), "{:?}", during.job);

    // Space is freed: rendering resumes by itself and the job completes.
    disk.full.store(false, Ordering::SeqCst);
    let done = tokio::time::timeout(Duration::from_secs(900), async {
        loop {
            match events.recv().await.expect("events flow") {
                JobEvent::Completed { .. } => return,
                JobEvent::Failed { reason } => panic!("job failed: {reason}"),
                _ => {}
            }
        }
    })
    .await;
    assert!(done.is_ok(), "the job completes once writes succeed again");
    let status = client.status(job).await.unwrap();
    assert_eq!(status.frames.len(), 6);
    assert!(status.job.blocklist.is_empty(), "{:?}", status.job);
    for t in store.tasks_of_job(job).await.unwrap() {
        assert_eq!(t.failures, 0, "{:?}: {:?}", t.id, t.history);
        assert!(t.excluded.is_empty(), "{:?}: {:?}", t.id, t.history);
    }
    let txs = store.transactions().await.unwrap();
    let pays = txs.iter().filter(|t| t.id.starts_with("pay:")).count();
    let slashes = txs.iter().filter(|t| t.id.starts_with("slash:")).count();
    assert_eq!(
        (pays, slashes),
        (6, 0),
        "each task paid once, nobody slashed"
    );
    let _ = stop.send(true);
    for n in nodes {
        n.await.unwrap().unwrap();
    }
    manager.shutdown().await;
}

fn filling_disk() -> Arc<FillingDisk> {
    Arc::new(FillingDisk {
        inner: ObjectBlobStore::in_memory(),
        full: AtomicBool::new(false),
        refused: watch::channel(0).0,
    })
}

/// A stand-in worker (seeded identity `n`) that reads and writes `blobs`
/// directly instead of through the manager.
fn direct_worker(
    net: &InProcNetwork,
    n: u128,
    addr: &str,
    blobs: Arc<dyn BlobStore>,
    dir: &std::path::Path,
    stopped: &watch::Receiver<bool>,
) -> tokio::task::JoinHandle<Result<(), inferix_node::NodeError>> {
    let w = WorkerNode::new(
        Arc::new(net.node(seeded_identity(n))),
        Arc::new(StandInRenderer::new(
            StandInBehaviour::Honest,
            Duration::from_secs(1),
        )),
        WorkerConfig {
            manager: addr.into(),
            work_dir: dir.join(format!("direct{n}")),
            ..WorkerConfig::default()
        },
    )
    .with_blob_store(blobs);
    tokio::spawn(w.run(stopped.clone()))
}

#[tokio::test(start_paused = true)]
async fn a_shared_bucket_failing_blames_no_direct_worker_but_a_worker_alone_with_failures_is_charged(
) {
    let net = InProcNetwork::new();
    let store = Arc::new(MemoryTaskStore::new());
    let bucket = filling_disk();
    let manager = start_manager(
        &net,
        store.clone(),
        bucket.clone(),
        ManagerConfig {
            quorum: 1,
            tick: Duration::from_secs(1),
            ..ManagerConfig::default()
        },
    )
    .await;
    let addr = manager.addr().to_string();
    let (stop, stopped) = watch::channel(false);
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = spawn_verifiers(
        &net,
        &addr,
        1,
        Some(bucket.clone()),
        None,
        dir.path(),
        &stopped,
    );
    // Two workers on the shared bucket, one whose own path to the store
    // always fails (a full local cache, bad credentials) while the
    // manager's writes succeed.
    for n in [100, 101] {
        nodes.push(direct_worker(
            &net,
            n,
            &addr,
            bucket.clone(),
            dir.path(),
            &stopped,
        ));
    }
    let broken = filling_disk();
    broken.full.store(true, Ordering::SeqCst);
    nodes.push(direct_worker(
        &net,
        102,
        &addr,
        broken,
        dir.path(),
        &stopped,
    ));
    let broken_id = seeded_identity(102).node_id();
    let client = Client::connect(&net.transport(NodeId(50)), &addr, None)
        .await
        .unwrap();
    let job = submit_stand_in_job(&client, 6, 8, 1).await;
    let mut events = client.watch(job).await.unwrap();
    bucket.full.store(true, Ordering::SeqCst);

    let reason = tokio::time::timeout(Duration::from_secs(600), async {
        loop {
            match events.recv().await.expect("events flow") {
                JobEvent::Waiting { reason } if reason.contains("blob store") => return reason,
                JobEvent::Failed { reason } => panic!("job failed: {reason}"),
                _ => {}
            }
        }
    })
    .await
    .expect("the job says it waits for the blob store");
    assert!(reason.contains("No space left"), "{reason}");
    bucket.full.store(false, Ordering::SeqCst);
    until_completed(&mut events, Duration::from_secs(900)).await;

    // Every failure charged went to the worker that alone could not write;
    // the bucket's outage was charged to nobody.
    let mut charged = Vec::new();
    for t in store.tasks_of_job(job).await.unwrap() {
        charged.extend(t.excluded.iter().copied());
        let blamed_others = t.excluded.iter().any(|w| *w != broken_id);
        assert!(!blamed_others, "{:?}: {:?}", t.id, t.history);
    }
    assert!(
        charged.contains(&broken_id),
        "the worker whose own writes failed is charged for its failures"
    );
    let _ = stop.send(true);
    for n in nodes {
        let _ = n.await;
    }
    manager.shutdown().await;
}
