//! A whole network embedded in the current tokio runtime: a manager,
//! workers and verifiers that an application (or a test, or the Python
//! package) starts with one call and talks to through a [`Client`]. It
//! renders with the GPU path tracer unless given another renderer; the
//! node runtimes it composes (`inferix-node`) depend on no renderer.
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! use inferix_local::LocalNetwork;
//! let net = LocalNetwork::builder().workers(2).verifiers(1).start().await?;
//! let client = net.client().await?;
//! // … quote, submit, wait, download with `client` …
//! # drop(client);
//! net.shutdown().await;
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use inferix_core::blob::BlobStore;
use inferix_core::ids::NodeId;
use inferix_core::por::key::ManagerSecret;
use inferix_core::por::prepare::PorConfig;
use inferix_core::renderer::{RenderError, Renderer};
use inferix_core::scheduler::{Scheduler, WeightedRandomScheduler};
use inferix_core::store::{StoreError, TaskStore};
use inferix_storage::{ObjectBlobStore, SqliteTaskStore};
use inferix_transport::{
    InProcNetwork, NodeIdentity, QuicConfig, QuicTransport, Transport, TransportError,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use inferix_node::{
    Client, ClientError, ManagerBuilder, ManagerConfig, ManagerHandle, NodeError, VerifierConfig,
    VerifierNode, WorkerConfig, WorkerNode,
};

pub mod demo;

/// Why a local network could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocalNetworkError {
    /// The data folder could not be created.
    #[error("cannot create {path}: {source}")]
    Io {
        /// Folder involved.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The task database could not be opened.
    #[error("task store in {path}: {source}")]
    Store {
        /// Database file.
        path: PathBuf,
        /// Cause.
        source: StoreError,
    },
    /// The blob folder could not be opened.
    #[error("blob store in {path}: {source}")]
    Blob {
        /// Blob folder.
        path: PathBuf,
        /// Cause.
        source: inferix_core::blob::BlobError,
    },
    /// No renderer was given and the built-in one found no device.
    #[error("no renderer: {0}")]
    Renderer(#[from] RenderError),
    /// A node transport could not be opened.
    #[error("transport: {0}")]
    Transport(#[from] TransportError),
    /// The manager did not start.
    #[error("manager: {0}")]
    Manager(#[from] NodeError),
    /// The configuration cannot work.
    #[error("invalid local network: {0}")]
    Invalid(String),
}

/// How the nodes of a [`LocalNetwork`] talk to each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LocalTransport {
    /// In-process channels: fastest, reachable only from this process.
    #[default]
    InProcess,
    /// QUIC on 127.0.0.1 with a free port: [`LocalNetwork::address`] can be
    /// given to `inferix` commands or clients in other processes.
    Quic,
}

/// Settings of a [`LocalNetwork`]; build one with [`LocalNetwork::builder`].
pub struct LocalNetworkBuilder {
    workers: usize,
    verifiers: usize,
    ib: f64,
    quorum: usize,
    data_dir: Option<PathBuf>,
    transport: LocalTransport,
    renderer: Option<Arc<dyn Renderer>>,
    scheduler: Option<Box<dyn Scheduler>>,
    guest_account: bool,
    worker_ibs: Option<Vec<f64>>,
    proof_of_render: Option<PorConfig>,
}

impl Default for LocalNetworkBuilder {
    fn default() -> Self {
        Self {
            workers: 3,
            verifiers: 2,
            ib: 1.0,
            quorum: 1,
            data_dir: None,
            transport: LocalTransport::default(),
            renderer: None,
            scheduler: None,
            guest_account: true,
            worker_ibs: None,
            // On, with a secret of this network's own: verification
            // without it only checks that frames decode and are not flat.
            proof_of_render: Some(PorConfig::new(ManagerSecret(
                rand::random::<[u8; 32]>().to_vec(),
            ))),
        }
    }
}

impl std::fmt::Debug for LocalNetworkBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalNetworkBuilder")
            .field("workers", &self.workers)
            .field("verifiers", &self.verifiers)
            .field("ib", &self.ib)
            .field("quorum", &self.quorum)
            .field("data_dir", &self.data_dir)
            .field("transport", &self.transport)
            .field("renderer", &self.renderer.as_ref().map(|r| r.name()))
            .field("worker_ibs", &self.worker_ibs)
            .field("proof_of_render", &self.proof_of_render.is_some())
            .finish_non_exhaustive()
    }
}

impl LocalNetworkBuilder {
    /// Number of workers (default 3).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }
    /// Number of verifiers (default 2).
    pub fn verifiers(mut self, n: usize) -> Self {
        self.verifiers = n;
        self
    }
    /// Inferix Bench index every worker announces (default 1.0), so no
    /// benchmark delays the start.
    pub fn ib(mut self, ib: f64) -> Self {
        self.ib = ib;
        self
    }
    /// Verifiers that must agree on each result (default 1).
    pub fn quorum(mut self, quorum: usize) -> Self {
        self.quorum = quorum;
        self
    }
    /// Keeps the SQLite database, blobs and worker folders here; without
    /// one, a fresh temporary folder is used and removed on shutdown.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }
    /// How nodes are connected (default in-process).
    pub fn transport(mut self, transport: LocalTransport) -> Self {
        self.transport = transport;
        self
    }
    /// Renderer shared by workers and quote probes; default: the built-in
    /// cubecl path tracer on the best device found.
    pub fn renderer(mut self, renderer: Arc<dyn Renderer>) -> Self {
        self.renderer = Some(renderer);
        self
    }
    /// Scheduler of the manager; default weighted random.
    pub fn scheduler(mut self, scheduler: impl Scheduler + 'static) -> Self {
        self.scheduler = Some(Box::new(scheduler));
        self
    }
    /// One worker per entry, each announcing that Inferix Bench index (so
    /// the scheduler's weighting shows); replaces [`Self::workers`] and
    /// [`Self::ib`]. The first is also the quote probe's IB.
    pub fn worker_ibs(mut self, ibs: impl IntoIterator<Item = f64>) -> Self {
        self.worker_ibs = Some(ibs.into_iter().collect());
        self
    }
    /// Proof of Render (on by default, with a random secret): glTF scenes
    /// are leased as watermarked copies and verifiers check the patches and
    /// re-render crop challenges with the network's renderer (which must
    /// then be deterministic). This sets its configuration.
    pub fn proof_of_render(mut self, config: PorConfig) -> Self {
        self.proof_of_render = Some(config);
        self
    }
    /// Turns Proof of Render off: verifiers then check only that frames
    /// decode, have the asked size and are not flat (for a network whose
    /// renderer is not deterministic).
    pub fn without_proof_of_render(mut self) -> Self {
        self.proof_of_render = None;
        self
    }
    /// Admits only clients with an API key of an account in the network's
    /// store (made with [`inferix_core::store::accounts::Accounts`] on
    /// [`LocalNetwork::store`]). By default a client without a key acts as
    /// the account `guest`, which has no credit limit.
    pub fn without_guest(mut self) -> Self {
        self.guest_account = false;
        self
    }

    /// Starts every node in the current tokio runtime.
    pub async fn start(self) -> Result<LocalNetwork, LocalNetworkError> {
        let ibs = self
            .worker_ibs
            .clone()
            .unwrap_or_else(|| vec![self.ib; self.workers]);
        if !ibs.is_empty() && self.verifiers < self.quorum {
            return Err(LocalNetworkError::Invalid(format!(
                "quorum {} needs at least as many verifiers, got {}",
                self.quorum, self.verifiers
            )));
        }
        if let Some(bad) = ibs
            .iter()
            .chain([&self.ib])
            .find(|ib| !(ib.is_finite() && **ib > 0.0))
        {
            return Err(LocalNetworkError::Invalid(format!(
                "worker IB {bad} must be positive"
            )));
        }
        let (dir, temporary) = match self.data_dir {
            Some(d) => (d, false),
            None => (fresh_temp_dir(), true),
        };
        create_dir(&dir)?;
        let renderer = match self.renderer {
            Some(r) => r,
            None => Arc::new(inferix_gpu::PathTracer::new()?),
        };
        let db = dir.join("tasks.sqlite");
        let store: Arc<dyn TaskStore> =
            Arc::new(
                SqliteTaskStore::open(&db).map_err(|source| LocalNetworkError::Store {
                    path: db.clone(),
                    source,
                })?,
            );
        let blob_dir = dir.join("blobs");
        let blobs: Arc<dyn BlobStore> =
            Arc::new(ObjectBlobStore::local(&blob_dir).map_err(|source| {
                LocalNetworkError::Blob {
                    path: blob_dir.clone(),
                    source,
                }
            })?);
        let nodes = Nodes::new(self.transport);
        let mut builder = ManagerBuilder::new(nodes.transport()?, store.clone(), blobs.clone())
            .config(ManagerConfig {
                listen: nodes.listen().into(),
                quorum: self.quorum,
                guest_account: self.guest_account.then(|| "guest".to_string()),
                ..ManagerConfig::default()
            })
            .probe_renderer(renderer.clone(), ibs.first().copied().unwrap_or(self.ib))
            .admission_probe(inferix_gpu::demo_scene_glb())
            .inspector(Arc::new(inferix_gpu::GltfInspector))
            .scratch_dir(dir.join("manager"));
        if let Some(por) = self.proof_of_render {
            builder = builder
                .proof_of_render(por)
                .watermarker(Arc::new(inferix_gpu::GltfWatermarker));
        }
        builder = match self.scheduler {
            Some(s) => builder.scheduler(BoxedScheduler(s)),
            None => builder.scheduler(WeightedRandomScheduler::default()),
        };
        let manager = builder.build().start().await?;
        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        let mut workers = Vec::with_capacity(ibs.len());
        for (i, &ib) in ibs.iter().enumerate() {
            let cfg = WorkerConfig {
                manager: manager.addr().into(),
                ib,
                work_dir: dir.join(format!("worker-{i}")),
                ..WorkerConfig::default()
            };
            let worker = WorkerNode::new(nodes.transport()?, renderer.clone(), cfg)
                .with_blob_store(blobs.clone());
            workers.push((worker.id(), ib));
            tasks.push(tokio::spawn(worker.run(stopped.clone())));
        }
        for i in 0..self.verifiers {
            let cfg = VerifierConfig {
                manager: manager.addr().into(),
                work_dir: dir.join(format!("verifier-{i}")),
                ..VerifierConfig::default()
            };
            // The network's renderer re-renders crop challenges (there are
            // none without Proof of Render).
            let verifier = VerifierNode::new(nodes.transport()?, cfg)
                .with_blob_store(blobs.clone())
                .with_renderer(renderer.clone());
            tasks.push(tokio::spawn(verifier.run(stopped.clone())));
        }
        Ok(LocalNetwork {
            address: manager.addr().to_string(),
            manager,
            nodes,
            blobs,
            store,
            stop,
            tasks: NodeTasks(tasks),
            dir: DataDir {
                path: dir,
                temporary,
            },
            device: renderer.device_class(),
            workers,
        })
    }
}

/// A running embedded network. Call [`LocalNetwork::shutdown`] to stop it
/// cleanly; dropping it aborts the workers and verifiers without waiting.
pub struct LocalNetwork {
    manager: ManagerHandle,
    address: String,
    nodes: Nodes,
    blobs: Arc<dyn BlobStore>,
    store: Arc<dyn TaskStore>,
    stop: watch::Sender<bool>,
    tasks: NodeTasks,
    dir: DataDir,
    device: String,
    workers: Vec<(NodeId, f64)>,
}

impl std::fmt::Debug for LocalNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalNetwork")
            .field("address", &self.address)
            .field("dir", &self.dir.path)
            .field("nodes", &self.tasks.0.len())
            .finish_non_exhaustive()
    }
}

impl LocalNetwork {
    /// Default settings: 3 workers, 2 verifiers, quorum 1, in-process.
    pub fn builder() -> LocalNetworkBuilder {
        LocalNetworkBuilder::default()
    }

    /// The manager's address: `<id>@127.0.0.1:<port>` with
    /// [`LocalTransport::Quic`], an in-process name otherwise.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Folder holding the database, blobs and worker scratch space.
    pub fn data_dir(&self) -> &Path {
        &self.dir.path
    }

    /// Device class of the renderer the workers use.
    pub fn device(&self) -> &str {
        &self.device
    }

    /// Each worker's node id and the Inferix Bench index it announces.
    pub fn workers(&self) -> &[(NodeId, f64)] {
        &self.workers
    }

    /// The manager's task store, for embedders that inspect jobs directly.
    pub fn store(&self) -> Arc<dyn TaskStore> {
        self.store.clone()
    }

    /// The manager, e.g. to subscribe to every job event.
    pub fn manager(&self) -> &ManagerHandle {
        &self.manager
    }

    /// A client connected to the manager; it shares the network's blob
    /// store, so uploads and downloads skip the wire.
    pub async fn client(&self) -> Result<Client, ClientError> {
        self.client_with_token(None).await
    }

    /// A transport for one more client of this network, such as an HTTP
    /// API in front of its manager ([`LocalNetwork::address`]).
    pub fn client_transport(&self) -> Result<Arc<dyn Transport>, TransportError> {
        self.nodes.transport()
    }

    /// A client presenting API key `token` (or none: the guest account).
    pub async fn client_with_token(&self, token: Option<String>) -> Result<Client, ClientError> {
        let transport = self.nodes.transport()?;
        Client::connect_with_blobs(&*transport, &self.address, token, self.blobs.clone()).await
    }

    /// Stops every node, waits for them and removes a temporary data folder.
    pub async fn shutdown(self) {
        let LocalNetwork {
            manager,
            stop,
            mut tasks,
            dir,
            ..
        } = self;
        let _ = stop.send(true);
        for t in std::mem::take(&mut tasks.0) {
            let _ = t.await;
        }
        manager.shutdown().await;
        drop(dir);
    }
}

/// Node tasks, aborted when dropped without a shutdown.
struct NodeTasks(Vec<JoinHandle<Result<(), NodeError>>>);

impl Drop for NodeTasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// The data folder, removed when dropped if it was made for this network.
struct DataDir {
    path: PathBuf,
    temporary: bool,
}

impl Drop for DataDir {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Makes node transports of one kind.
enum Nodes {
    InProcess(InProcNetwork),
    Quic,
}

impl Nodes {
    fn new(kind: LocalTransport) -> Self {
        match kind {
            LocalTransport::InProcess => Self::InProcess(InProcNetwork::new()),
            LocalTransport::Quic => Self::Quic,
        }
    }

    fn listen(&self) -> &'static str {
        match self {
            Self::InProcess(_) => "manager",
            Self::Quic => "127.0.0.1:0",
        }
    }

    /// A transport with a fresh signing identity (workers must sign).
    fn transport(&self) -> Result<Arc<dyn Transport>, TransportError> {
        Ok(match self {
            Self::InProcess(net) => Arc::new(net.node(NodeIdentity::generate())),
            Self::Quic => Arc::new(QuicTransport::new(
                NodeIdentity::generate(),
                QuicConfig::default(),
            )?),
        })
    }
}

/// Lets a boxed scheduler be handed to [`ManagerBuilder::scheduler`].
struct BoxedScheduler(Box<dyn Scheduler>);

impl Scheduler for BoxedScheduler {
    fn choose(
        &mut self,
        demand: &inferix_core::scheduler::TaskDemand<'_>,
        idle: &[inferix_core::scheduler::WorkerInfo],
    ) -> Option<inferix_core::ids::NodeId> {
        self.0.choose(demand, idle)
    }
}

fn create_dir(dir: &Path) -> Result<(), LocalNetworkError> {
    inferix_core::fs::create_private_dir(dir).map_err(|source| LocalNetworkError::Io {
        path: dir.to_path_buf(),
        source,
    })
}

fn fresh_temp_dir() -> PathBuf {
    use rand::Rng;
    let tag: u64 = rand::thread_rng().gen();
    std::env::temp_dir().join(format!("inferix-local-{}-{tag:016x}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use inferix_core::protocol::ErrorCode;
    use inferix_core::renderer::stand_in::StandInRenderer;

    /// Networks without workers: the stand-in avoids opening a GPU device.
    fn builder() -> LocalNetworkBuilder {
        LocalNetwork::builder()
            .workers(0)
            .verifiers(0)
            .renderer(Arc::new(StandInRenderer::instant()))
    }

    #[tokio::test]
    async fn without_a_guest_account_a_client_needs_a_key() {
        let net = builder().without_guest().start().await.unwrap();
        let store = net.store();
        let accounts = inferix_core::store::accounts::Accounts::new(&*store);
        let (_, key) = accounts.create("ana", false, 1).await.unwrap();
        for token in [None, Some("t0ken".to_string()), Some(format!("{key}0"))] {
            match net.client_with_token(token.clone()).await {
                Err(ClientError::Refused { code, .. }) => {
                    assert_eq!(code, ErrorCode::Unauthorized)
                }
                Err(e) => panic!("expected a refusal, got {e}"),
                Ok(_) => panic!("a client with {token:?} was admitted"),
            }
        }
        assert!(net.client_with_token(Some(key)).await.is_ok());
        net.shutdown().await;
    }

    #[tokio::test]
    async fn temporary_folder_is_removed_and_a_given_one_kept() {
        let net = builder().start().await.unwrap();
        let temp = net.data_dir().to_path_buf();
        assert!(temp.join("tasks.sqlite").is_file());
        net.shutdown().await;
        assert!(!temp.exists());

        let dir = tempfile::tempdir().unwrap();
        let kept = dir.path().join("net");
        let net = builder().data_dir(&kept).start().await.unwrap();
        assert_eq!(net.data_dir(), kept);
        net.shutdown().await;
        assert!(kept.join("tasks.sqlite").is_file());
    }

    #[tokio::test]
    async fn impossible_settings_are_refused() {
        let quorum = LocalNetwork::builder().workers(1).verifiers(1).quorum(2);
        assert!(matches!(
            quorum.start().await,
            Err(LocalNetworkError::Invalid(m)) if m.contains("quorum 2")
        ));
        let ib = builder().ib(f64::NAN).start().await;
        assert!(matches!(ib, Err(LocalNetworkError::Invalid(m)) if m.contains("IB")));
    }

    #[tokio::test]
    async fn quic_network_listens_on_loopback() {
        let net = builder()
            .transport(LocalTransport::Quic)
            .start()
            .await
            .unwrap();
        assert!(net.address().contains("@127.0.0.1:"), "{}", net.address());
        assert!(net.client().await.is_ok());
        net.shutdown().await;
    }
}
