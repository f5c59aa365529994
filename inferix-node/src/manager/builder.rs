//! The manager's public handles: the builder that assembles a manager from
//! its parts, the node it builds, and the handle of a started one.

use super::*;

/// Builds a [`ManagerNode`] from its parts.
pub struct ManagerBuilder {
    pub(super) transport: Arc<dyn Transport>,
    pub(super) store: Arc<dyn TaskStore>,
    pub(super) blobs: Arc<dyn BlobStore>,
    pub(super) scheduler: Box<dyn Scheduler>,
    pub(super) clock: SharedClock,
    pub(super) config: ManagerConfig,
    pub(super) prober: Option<(Arc<dyn Renderer>, f64)>,
    pub(super) probe_scene: Option<Arc<Vec<u8>>>,
    pub(super) scratch: PathBuf,
    pub(super) por: Option<PorConfig>,
    pub(super) watermarkers: Vec<Arc<dyn SceneWatermarker>>,
    pub(super) inspectors: Vec<Arc<dyn SceneInspector>>,
}

impl ManagerBuilder {
    /// A manager over these parts with the default scheduler and config.
    pub fn new(
        transport: Arc<dyn Transport>,
        store: Arc<dyn TaskStore>,
        blobs: Arc<dyn BlobStore>,
    ) -> Self {
        // Per identity: a restarted manager finds its own results journal,
        // and two managers on one host do not share one.
        let scratch =
            std::env::temp_dir().join(format!("inferix-manager-{}", transport.local_id()));
        Self {
            transport,
            store,
            blobs,
            scheduler: Box::new(WeightedRandomScheduler::default()),
            clock: Arc::new(SystemClock),
            config: ManagerConfig::default(),
            prober: None,
            probe_scene: None,
            scratch,
            por: None,
            watermarkers: Vec::new(),
            inspectors: Vec::new(),
        }
    }
    /// Replaces the scheduler.
    pub fn scheduler(mut self, s: impl Scheduler + 'static) -> Self {
        self.scheduler = Box::new(s);
        self
    }
    /// Replaces the clock (simulation, tests).
    pub fn clock(mut self, c: SharedClock) -> Self {
        self.clock = c;
        self
    }
    /// Replaces the configuration.
    pub fn config(mut self, c: ManagerConfig) -> Self {
        self.config = c;
        self
    }
    /// Quotes from a probe render on `renderer`, a device of index `ib`.
    /// Without one, quotes use a fixed cost model.
    pub fn probe_renderer(mut self, renderer: Arc<dyn Renderer>, ib: f64) -> Self {
        self.prober = Some((renderer, ib));
        self
    }
    /// Probes every worker and verifier that announces glTF before
    /// admitting it: it renders `scene_glb` (a small glTF) at a seed drawn
    /// for it, the probe renderer renders the same, and a node whose
    /// pixels differ beyond the crop tolerance is refused. Its results are
    /// then compared as the device class its pixels matched, not the one
    /// it claims. Needs [`ManagerBuilder::probe_renderer`].
    pub fn admission_probe(mut self, scene_glb: Vec<u8>) -> Self {
        self.probe_scene = Some(Arc::new(scene_glb));
        self
    }
    /// Folder for the manager's own files: scene copies used by probe
    /// renders and prepared leases, and the journal of results received
    /// while the task database was away (keep it on a disk that outlives
    /// the process for that journal to survive a crash). Defaults to a
    /// folder named after the manager's node id in the system's temporary
    /// folder.
    pub fn scratch_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.scratch = dir.into();
        self
    }
    /// Turns on Proof of Render: every lease gets its own key, verifiers
    /// check the watermark rectangles of that key and re-render crops drawn
    /// after the worker's signed commitment. Every manager of one network
    /// must use the same secret.
    pub fn proof_of_render(mut self, config: PorConfig) -> Self {
        self.por = Some(config);
        self
    }
    /// Adds a watermarker: scenes of its formats are leased as copies with
    /// the lease's noise patches (needs [`ManagerBuilder::proof_of_render`]).
    pub fn watermarker(mut self, w: Arc<dyn SceneWatermarker>) -> Self {
        self.watermarkers.push(w);
        self
    }
    /// Adds a scene inspector: submitted scenes of its formats (and their
    /// environment maps) are read at quote time, so one that cannot load
    /// is refused with the reason and what rendering will substitute
    /// reaches the quote. Without one, a scene is only checked to exist
    /// (a probe renderer, when set, also reads it).
    pub fn inspector(mut self, i: Arc<dyn SceneInspector>) -> Self {
        self.inspectors.push(i);
        self
    }
    /// Finishes the node.
    pub fn build(self) -> ManagerNode {
        ManagerNode { b: self }
    }
}

/// A manager, ready to start.
pub struct ManagerNode {
    pub(super) b: ManagerBuilder,
}

/// A running manager.
pub struct ManagerHandle {
    pub(super) addr: String,
    pub(super) id: NodeId,
    pub(super) metrics: metrics::SharedMetrics,
    pub(super) shutdown: watch::Sender<bool>,
    pub(super) task: tokio::task::JoinHandle<()>,
    pub(super) accepting: tokio::task::JoinHandle<()>,
    pub(super) events: broadcast::Sender<(JobId, JobEvent)>,
    pub(super) busy_ns: Arc<AtomicU64>,
    pub(super) blobs_collected: watch::Receiver<u64>,
}

impl ManagerHandle {
    /// Time the manager's loop has spent handling messages, dispatching
    /// and housekeeping since it started (not waiting for input). One
    /// loop serves the whole manager, so busy time per task bounds the
    /// rate one manager can sustain, whatever else shares its machine.
    pub fn busy_time(&self) -> Duration {
        Duration::from_nanos(self.busy_ns.load(Ordering::Relaxed))
    }
    /// The manager's metrics (`encode()` gives the Prometheus text).
    pub fn metrics(&self) -> metrics::SharedMetrics {
        self.metrics.clone()
    }
    /// Address clients and workers connect to.
    pub fn addr(&self) -> &str {
        &self.addr
    }
    /// The manager's node id.
    pub fn id(&self) -> NodeId {
        self.id
    }
    /// Every job event, for embedders that observe in-process.
    pub fn subscribe(&self) -> broadcast::Receiver<(JobId, JobEvent)> {
        self.events.subscribe()
    }
    /// Blobs the sweeps of unnamed blobs removed since start, updated after
    /// each sweep: an embedder (or a test) waits on it rather than polling
    /// the blob store.
    pub fn blobs_collected(&self) -> watch::Receiver<u64> {
        self.blobs_collected.clone()
    }
    /// Stops accepting, closes connections and waits for the loop to end.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
    /// Kills the manager without any cleanup, as a crash would. Its
    /// listening address is free once its tasks have ended (at once on a
    /// single-threaded runtime; [`ManagerHandle::kill`] waits for it).
    pub fn abort(self) {
        self.task.abort();
        self.accepting.abort();
    }
    /// As [`ManagerHandle::abort`], returning once the manager's tasks
    /// have ended and its listening address is free.
    pub async fn kill(self) {
        self.task.abort();
        self.accepting.abort();
        let _ = self.task.await;
        let _ = self.accepting.await;
    }
}
