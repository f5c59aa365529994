//! Blobs that no job names are collected once older than the retention
//! period, and nothing a job names is, however old: over QUIC on loopback,
//! with the task database in a SQLite file and the blobs in a local folder,
//! as `inferix manager` runs.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use inferix_core::account::{AccountRecord, NodeStanding};
use inferix_core::blob::{BlobError, BlobMeta, BlobReader, BlobStore, BlobStoreExt};
use inferix_core::ids::{JobId, TaskId};
use inferix_core::job::{FrameRange, Job, JobSpec};
use inferix_core::ledger::Transaction;
use inferix_core::por::key::ManagerSecret;
use inferix_core::por::prepare::PorConfig;
use inferix_core::renderer::stand_in::StandInRenderer;
use inferix_core::renderer::Renderer;
use inferix_core::store::{Change, StoreError, TaskStore};
use inferix_core::task::{Task, TaskStatus};
use inferix_core::ContentHash;
use inferix_node::manager::blob_sweep::{collect_garbage, BlobSweepError};
use inferix_node::{
    Client, ManagerBuilder, ManagerConfig, ManagerHandle, VerifierConfig, VerifierNode,
    WorkerConfig, WorkerNode,
};
use inferix_storage::{ObjectBlobStore, SqliteTaskStore};
use inferix_tests::{submit_stand_in_job, until_completed};
use inferix_transport::{NodeIdentity, QuicConfig, QuicTransport};
use tokio::sync::watch;

const DAY: Duration = Duration::from_secs(24 * 3600);
const RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

fn quic() -> QuicTransport {
    QuicTransport::new(NodeIdentity::generate(), QuicConfig::default()).unwrap()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A manager over QUIC with its tasks in `dir/tasks.sqlite` and its blobs
/// in `dir/blobs`, one verifier, and a client.
struct Network {
    dir: tempfile::TempDir,
    store: Arc<dyn TaskStore>,
    blobs: Arc<ObjectBlobStore>,
    manager: ManagerHandle,
    client: Client,
    /// The client's transport, which its connection lives on.
    _client_transport: QuicTransport,
    stop: watch::Sender<bool>,
    stopped: watch::Receiver<bool>,
}

/// A manager's settings with a blob sweep every `blob_sweep`.
fn sweeping_every(blob_sweep: Duration) -> ManagerConfig {
    ManagerConfig {
        blob_sweep,
        ..ManagerConfig::default()
    }
}

impl Network {
    /// Runs a stand-in job of two 8×8 frames to completion.
    async fn stand_in_job(&self) -> inferix_core::ids::JobId {
        let job = submit_stand_in_job(&self.client, 2, 8, 1).await;
        let mut events = self.client.watch(job).await.unwrap();
        until_completed(&mut events, Duration::from_secs(120)).await;
        job
    }

    /// With `tracer`, Proof of Render is on: leases get watermarked scene
    /// copies, the verifier re-renders crops with it, and customers get
    /// clean frames of their own.
    async fn start(config: ManagerConfig, tracer: Option<Arc<dyn Renderer>>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn TaskStore> =
            Arc::new(SqliteTaskStore::open(dir.path().join("tasks.sqlite")).unwrap());
        let blobs = Arc::new(ObjectBlobStore::local(dir.path().join("blobs")).unwrap());
        let mut builder = ManagerBuilder::new(Arc::new(quic()), store.clone(), blobs.clone())
            .config(ManagerConfig {
                listen: "127.0.0.1:0".into(),
                quorum: 1,
                tick: Duration::from_millis(50),
                forced_error_rate: 0.0,
                ..config
            })
            .scratch_dir(dir.path().join("manager"));
        if tracer.is_some() {
            builder = builder
                .proof_of_render(PorConfig::new(ManagerSecret(b"blob collection".to_vec())))
                .watermarker(Arc::new(inferix_gpu::GltfWatermarker));
        }
        let manager = builder.build().start().await.unwrap();
        let addr = manager.addr().to_string();
        let (stop, stopped) = watch::channel(false);
        let mut verifier = VerifierNode::new(
            Arc::new(quic()),
            VerifierConfig {
                manager: addr.clone(),
                work_dir: dir.path().join("verifier"),
                ..VerifierConfig::default()
            },
        );
        if let Some(r) = &tracer {
            verifier = verifier.with_renderer(r.clone());
        }
        tokio::spawn(verifier.run(stopped.clone()));
        let renderer = tracer.unwrap_or_else(|| Arc::new(StandInRenderer::instant()));
        let worker = WorkerNode::new(
            Arc::new(quic()),
            renderer,
            WorkerConfig {
                manager: addr.clone(),
                work_dir: dir.path().join("worker"),
                ..WorkerConfig::default()
            },
        );
        tokio::spawn(worker.run(stopped.clone()));
        let client_transport = quic();
        let client = Client::connect(&client_transport, &addr, None)
            .await
            .unwrap();
        Self {
            dir,
            store,
            blobs,
            manager,
            client,
            _client_transport: client_transport,
            stop,
            stopped,
        }
    }

    /// Runs `spec` to completion.
    async fn run(&self, spec: &JobSpec) -> JobId {
        let (job, _) = self.client.submit(spec).await.unwrap();
        let mut events = self.client.watch(job).await.unwrap();
        until_completed(&mut events, Duration::from_secs(300)).await;
        job
    }

    /// Stores `bytes` as a client would, through the manager.
    async fn upload(&self, bytes: &[u8]) -> BlobMeta {
        self.client
            .blob_store()
            .put_bytes(bytes.to_vec())
            .await
            .unwrap()
    }

    /// Makes every stored blob's file `age` old, as if stored then.
    fn age_all(&self, age: Duration) {
        let at = SystemTime::now() - age;
        let mut folders = vec![self.dir.path().join("blobs").join("blobs")];
        while let Some(folder) = folders.pop() {
            for entry in std::fs::read_dir(&folder).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    folders.push(path);
                } else {
                    age_file(&path, at);
                }
            }
        }
    }

    /// Makes the file of blob `hash` `age` old.
    fn age(&self, hash: ContentHash, age: Duration) {
        age_file(&self.blob_file(hash), SystemTime::now() - age);
    }

    fn blob_file(&self, hash: ContentHash) -> PathBuf {
        let hex = hash.to_hex();
        self.dir
            .path()
            .join("blobs")
            .join("blobs")
            .join(&hex[..2])
            .join(hex)
    }

    async fn shut(self) {
        let _ = self.stop.send(true);
        drop(self.stopped);
        self.manager.shutdown().await;
    }
}

fn age_file(path: &Path, at: SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(at)
        .unwrap();
}

/// Every blob the job's records name, gathered from the records by hand:
/// its scene, and per task the scene copy its result was rendered from,
/// the worker's frames and the delivered (clean) frames.
async fn named_by(store: &dyn TaskStore, job: JobId) -> (HashSet<ContentHash>, usize) {
    let record = store.job(job).await.unwrap().unwrap();
    let mut names: HashSet<ContentHash> = [record.spec.scene.blob].into();
    let mut delivered = 0;
    for t in store.tasks_of_job(job).await.unwrap() {
        assert_eq!(t.status, TaskStatus::Accepted);
        let result = t.result.expect("an accepted task has its result");
        names.insert(result.scene);
        names.extend(result.frames.iter().map(|f| f.blob));
        names.extend(t.delivered.iter().map(|d| d.blob));
        delivered += t.delivered.len();
    }
    (names, delivered)
}

/// Every named blob is still stored whole.
async fn assert_readable(blobs: &ObjectBlobStore, names: &HashSet<ContentHash>) {
    for hash in names {
        blobs
            .get_bytes(*hash)
            .await
            .unwrap_or_else(|e| panic!("named blob {hash} is gone: {e}"));
    }
}

fn tiny_job(scene: inferix_core::job::SceneRef) -> JobSpec {
    let mut spec = JobSpec::new(scene, FrameRange::new(1, 2));
    spec.settings.width = 32;
    spec.settings.height = 24;
    spec.settings.samples = 4;
    spec.chunk_size = 1;
    spec
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unnamed_blobs_older_than_the_retention_go_and_named_ones_stay() {
    let tracer: Arc<dyn Renderer> = Arc::new(inferix_gpu::PathTracer::new().unwrap());
    // Only the sweep at start runs by itself (on an empty store): the
    // collector is called by hand below.
    let n = Network::start(sweeping_every(365 * DAY), Some(tracer)).await;
    let scene = n
        .client
        .upload_scene_bytes(inferix_gpu::demo_scene_glb(), "demo.glb")
        .await
        .unwrap();
    let job = n.run(&tiny_job(scene.clone())).await;
    let (names, delivered) = named_by(&*n.store, job).await;
    assert_eq!(delivered, 2, "Proof of Render delivers clean frames");
    // Scene, two lease copies, two worker frames, two clean frames.
    assert_eq!(names.len(), 7, "{names:?}");

    // Everything is eight days old, a day past the retention period; an
    // upload nobody submitted among it, and one made just now.
    let unused = n.upload(b"uploaded, never submitted").await;
    n.age_all(8 * DAY);
    let fresh = n.upload(b"uploaded a moment ago").await;
    let listed = n.blobs.list().await.unwrap();
    let listed_hashes: HashSet<ContentHash> = listed.iter().map(|b| b.hash).collect();
    assert!(names.is_subset(&listed_hashes));
    assert!(listed_hashes.contains(&unused.hash) && listed_hashes.contains(&fresh.hash));
    // Whatever else is there (frames of a lease lost on the way, say) is
    // garbage like the unused upload.
    let garbage: Vec<_> = listed
        .iter()
        .filter(|b| !names.contains(&b.hash) && b.hash != fresh.hash)
        .collect();

    let cutoff = now_ms() - RETENTION.as_millis() as u64;
    let report = collect_garbage(&*n.store, &*n.blobs, cutoff, &HashSet::new())
        .await
        .unwrap();
    assert_eq!(report.seen, listed.len());
    assert_eq!(report.removed, garbage.len());
    assert_eq!(
        report.bytes_freed,
        garbage.iter().map(|b| b.size).sum::<u64>()
    );
    assert_eq!(report.failed, 0);
    assert!(!n.blobs.contains(unused.hash).await.unwrap());
    assert!(
        n.blobs.contains(fresh.hash).await.unwrap(),
        "a blob newer than the cutoff stays"
    );
    assert_readable(&n.blobs, &names).await;
    let files = n
        .client
        .download(job, &n.dir.path().join("out"))
        .await
        .unwrap();
    assert_eq!(files.len(), 2, "the job's frames still download");

    // A cutoff that makes every blob old: only the unnamed one goes.
    let everything_old = now_ms() + 3_600_000;
    let report = collect_garbage(&*n.store, &*n.blobs, everything_old, &HashSet::new())
        .await
        .unwrap();
    assert_eq!((report.removed, report.bytes_freed), (1, fresh.size));
    assert!(!n.blobs.contains(fresh.hash).await.unwrap());
    assert_readable(&n.blobs, &names).await;
    // Blobs held elsewhere (results the manager keeps in memory) are
    // spared.
    let held = n.upload(b"a frame of a result held in memory").await;
    let report = collect_garbage(&*n.store, &*n.blobs, everything_old, &[held.hash].into())
        .await
        .unwrap();
    assert_eq!(report.removed, 0);
    assert!(n.blobs.contains(held.hash).await.unwrap());
    n.blobs.delete(held.hash).await.unwrap();

    // Nothing left to collect.
    let report = collect_garbage(&*n.store, &*n.blobs, everything_old, &HashSet::new())
        .await
        .unwrap();
    assert_eq!(report.seen, names.len());
    assert_eq!((report.removed, report.bytes_freed), (0, 0));
    assert_readable(&n.blobs, &names).await;

    // An old upload found again is young again: a client that uploads a
    // scene it uploaded long ago is about to submit it.
    let again = n.upload(b"uploaded, never submitted").await;
    assert_eq!(again.hash, unused.hash);
    n.age(again.hash, 8 * DAY);
    n.upload(b"uploaded, never submitted").await;
    let report = collect_garbage(&*n.store, &*n.blobs, cutoff, &HashSet::new())
        .await
        .unwrap();
    assert_eq!(report.removed, 0);
    assert!(n.blobs.contains(again.hash).await.unwrap());
    n.shut().await;
}

/// Blobs with a listing that cannot be had, or names that cannot all be
/// read, are left alone: the sweep fails and deletes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_that_cannot_see_everything_deletes_nothing() {
    let n = Network::start(sweeping_every(365 * DAY), None).await;
    n.stand_in_job().await;
    let unused = n.upload(b"uploaded, never submitted").await;
    n.age_all(8 * DAY);
    let everything_old = now_ms() + 3_600_000;

    let unreadable = Unreadable(n.store.clone());
    match collect_garbage(&unreadable, &*n.blobs, everything_old, &HashSet::new()).await {
        Err(BlobSweepError::Store(StoreError::Unavailable(_))) => {}
        other => panic!("expected a store failure, got {other:?}"),
    }
    let unlisted = Unlisted(n.blobs.clone());
    match collect_garbage(&*n.store, &unlisted, everything_old, &HashSet::new()).await {
        Err(BlobSweepError::List(BlobError::Unsupported(_))) => {}
        other => panic!("expected listing to be unsupported, got {other:?}"),
    }
    assert!(n.blobs.contains(unused.hash).await.unwrap());
    n.shut().await;
}

/// The manager sweeps by itself every `blob_sweep`: an unnamed upload past
/// the retention period disappears, while the job's blobs, as old, stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manager_sweeps_by_itself() {
    let n = Network::start(sweeping_every(Duration::from_millis(100)), None).await;
    let job = n.stand_in_job().await;
    let (names, _) = named_by(&*n.store, job).await;
    assert_eq!(names.len(), 3, "the scene and two frames: {names:?}");
    let unused = n.upload(b"uploaded, never submitted").await;
    let fresh = n.upload(b"uploaded a moment ago").await;
    // Sweeps have been running all along; blobs of the job stayed while
    // young, and stay old.
    assert_readable(&n.blobs, &names).await;
    let mut collected = n.manager.blobs_collected();
    assert_eq!(*collected.borrow(), 0, "nothing was old enough before");
    // The job's blobs and the unnamed upload grow old; the fresh one not.
    for hash in names.iter().chain([&unused.hash]) {
        n.age(*hash, 8 * DAY);
    }
    tokio::time::timeout(Duration::from_secs(30), collected.wait_for(|&k| k >= 1))
        .await
        .expect("a periodic sweep removes something")
        .unwrap();
    assert_eq!(*collected.borrow(), 1, "the unnamed upload, and only it");
    assert!(!n.blobs.contains(unused.hash).await.unwrap());
    assert_readable(&n.blobs, &names).await;
    assert!(n.blobs.contains(fresh.hash).await.unwrap());
    let files = n
        .client
        .download(job, &n.dir.path().join("out"))
        .await
        .unwrap();
    assert_eq!(files.len(), 2);
    n.shut().await;
}

/// A blob store that cannot list (the default of [`BlobStore::list`]).
struct Unlisted(Arc<ObjectBlobStore>);

#[async_trait]
impl BlobStore for Unlisted {
    async fn put(&self, reader: BlobReader) -> Result<BlobMeta, BlobError> {
        self.0.put(reader).await
    }
    async fn get(&self, hash: ContentHash) -> Result<BlobReader, BlobError> {
        self.0.get(hash).await
    }
    async fn size(&self, hash: ContentHash) -> Result<Option<u64>, BlobError> {
        self.0.size(hash).await
    }
    fn max_blob_size(&self) -> u64 {
        self.0.max_blob_size()
    }
    async fn delete(&self, hash: ContentHash) -> Result<(), BlobError> {
        self.0.delete(hash).await
    }
}

/// A task store that lists its jobs but cannot read their tasks, as a
/// database going away in the middle of a sweep.
struct Unreadable(Arc<dyn TaskStore>);

fn gone<T>() -> Result<T, StoreError> {
    Err(StoreError::Unavailable("connection lost".into()))
}

#[async_trait]
impl TaskStore for Unreadable {
    async fn insert_job(&self, _: &Job, _: &[Task]) -> Result<(), StoreError> {
        gone()
    }
    async fn update_job(&self, _: &Job) -> Result<(), StoreError> {
        gone()
    }
    async fn job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        self.0.job(id).await
    }
    async fn jobs(&self) -> Result<Vec<Job>, StoreError> {
        self.0.jobs().await
    }
    async fn task(&self, _: TaskId) -> Result<Option<Task>, StoreError> {
        gone()
    }
    async fn tasks_of_job(&self, _: JobId) -> Result<Vec<Task>, StoreError> {
        gone()
    }
    async fn tasks_in_status(&self, _: TaskStatus, _: usize) -> Result<Vec<Task>, StoreError> {
        gone()
    }
    async fn update_task(&self, _: &mut Task) -> Result<(), StoreError> {
        gone()
    }
    async fn expired_leases(&self, _: u64, _: usize) -> Result<Vec<Task>, StoreError> {
        gone()
    }
    async fn append_transaction(&self, _: &Transaction) -> Result<(), StoreError> {
        gone()
    }
    async fn transactions(&self) -> Result<Vec<Transaction>, StoreError> {
        gone()
    }
    async fn apply(&self, _: &mut [Change]) -> Result<(), StoreError> {
        gone()
    }
    async fn insert_account(&self, _: &AccountRecord) -> Result<(), StoreError> {
        gone()
    }
    async fn update_account(&self, _: &AccountRecord) -> Result<(), StoreError> {
        gone()
    }
    async fn account(&self, _: &str) -> Result<Option<AccountRecord>, StoreError> {
        gone()
    }
    async fn accounts(&self) -> Result<Vec<AccountRecord>, StoreError> {
        gone()
    }
    async fn standing(&self, _: &str) -> Result<Option<NodeStanding>, StoreError> {
        gone()
    }
    async fn put_standing(&self, _: &str, _: &mut NodeStanding) -> Result<(), StoreError> {
        gone()
    }
}
