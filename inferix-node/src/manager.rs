//! The manager node: admits workers, verifiers and clients, quotes and
//! splits jobs, leases tasks, routes results to verifiers, credits accepted
//! frames and tells watchers.
//!
//! One actor task owns all in-memory state (who is connected, who is busy);
//! the [`TaskStore`] owns the truth. Every change of a task is a
//! compare-and-set on the store, so a crashed manager loses nothing and
//! several managers on one store never hand one task to two workers.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use inferix_core::blob::{BlobStore, BlobStoreExt};
use inferix_core::ids::{JobId, NodeId, TaskId};
use inferix_core::job::SceneRef;
use inferix_core::job::{Job, JobSpec, JobState};
use inferix_core::ledger::{Account, Transaction};
use inferix_core::por::plan::{patches_for_lease, plan_verification};
use inferix_core::por::prepare::{PorConfig, SceneWatermarker};
use inferix_core::protocol::{
    Envelope, ErrorCode, Hello, JobEvent, JobStatus, Message, Quote, Role, TaskAssignment, Verdict,
    VerificationAssignment, PROTOCOL_VERSION,
};
use inferix_core::renderer::{RenderRequest, RenderSettings, Renderer};
use inferix_core::scheduler::{
    is_eligible, Scheduler, TaskDemand, WeightedRandomScheduler, WorkerInfo,
};
use inferix_core::store::{StatusCount, StoreError, TaskStore};
use inferix_core::task::{Lease, Task, TaskStatus};
use inferix_core::time::{SharedClock, SystemClock};
use inferix_core::ContentHash;
use inferix_manager::admission::{check_hello, AdmissionConfig};
use inferix_manager::claims::{claim_checks, ClaimCheck, ClaimVerdict};
use inferix_manager::economy::{self, EconomyConfig, StakeDecision};
use inferix_manager::estimates::{Estimates, MAX_BUSY_COMPARED};
use inferix_manager::workers::WorkerPool;
use inferix_manager::{Command as EngineCommand, Engine, Event as EngineEvent, RoundConfig};
use inferix_transport::{Connection, Listener, MessageSender, Transport, TransportError};
use tokio::sync::{broadcast, mpsc, watch};
use tracing::{debug, info, warn};

use crate::blob_service::BlobService;
use crate::outbound::{Outbound, Refused, OUTBOUND_CAPACITY};
use crate::verifier::RENDER_TAG;
use crate::NodeError;

/// Manager settings; `Default` gives a working single-machine setup.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// Address to listen on.
    pub listen: String,
    /// How long a worker holds a task before it is re-queued.
    pub lease: Duration,
    /// Leases per task before it fails.
    pub max_attempts: u32,
    /// Verifiers that must agree on each result (different nodes, so one
    /// colluding verifier cannot pass a bad result alone).
    pub quorum: usize,
    /// Micro-credits per IB-minute.
    pub price_per_ibm: u64,
    /// A worker silent for this long is dropped and its task re-queued.
    pub heartbeat_timeout: Duration,
    /// A verifier silent on a verification for this long is replaced.
    pub verification_timeout: Duration,
    /// Period of housekeeping (expiry, timeouts, dispatch).
    pub tick: Duration,
    /// Token workers and verifiers must present; `None` admits anyone.
    pub node_token: Option<String>,
    /// Token clients must present; `None` admits anyone.
    pub client_token: Option<String>,
    /// Reputation multiplier applied to a worker whose result is rejected.
    pub reputation_penalty: f64,
    /// Epoch E in minutes of the stake rule S = 2 · E · IB · P: a worker
    /// must hold S in its stake account to take tasks. `0` disables stakes.
    pub stake_epoch_minutes: f64,
    /// Whether this manager's operator posts the minimum stake for the
    /// workers it admits (once per worker). Otherwise a worker without
    /// enough stake on record is refused.
    pub grant_stake: bool,
    /// Micro-credits paid from the penalty pool to each verifier whose
    /// verdict agrees with the final one, while the pool has funds.
    pub verifier_reward: i64,
    /// How long after a frame is accepted its user may claim it is bad.
    pub claim_window: Duration,
    /// A worker that reports no progress on its task for this long is
    /// taken to be hung: the task is revoked and leased elsewhere.
    pub progress_timeout: Duration,
    /// Failures (errors, hangs, rejections) after which a worker is
    /// blocklisted for the job.
    pub failures_before_blocklist: u32,
    /// Idle workers (longest idle first) the scheduler chooses among per
    /// task. Bounds the cost of one decision on a large network; when none
    /// of them is eligible, every idle worker is considered.
    pub scheduler_candidates: usize,
    /// Holds a queued task back from a slow idle worker when a busy worker
    /// is expected to finish it sooner (from the job's measured work per
    /// frame), so the last tasks of a job do not end up on the slowest
    /// machines.
    pub finish_time_aware: bool,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        Self {
            listen: "manager".into(),
            lease: Duration::from_secs(600),
            max_attempts: 5,
            quorum: 2,
            price_per_ibm: 100_000,
            heartbeat_timeout: Duration::from_secs(30),
            verification_timeout: Duration::from_secs(300),
            tick: Duration::from_millis(500),
            node_token: None,
            client_token: None,
            reputation_penalty: 0.5,
            stake_epoch_minutes: 60.0,
            grant_stake: true,
            verifier_reward: 1_000,
            claim_window: Duration::from_secs(72 * 3600),
            progress_timeout: Duration::from_secs(300),
            failures_before_blocklist: 3,
            scheduler_candidates: 128,
            finish_time_aware: true,
        }
    }
}

/// Builds a [`ManagerNode`] from its parts.
pub struct ManagerBuilder {
    transport: Arc<dyn Transport>,
    store: Arc<dyn TaskStore>,
    blobs: Arc<dyn BlobStore>,
    scheduler: Box<dyn Scheduler>,
    clock: SharedClock,
    config: ManagerConfig,
    prober: Option<(Arc<dyn Renderer>, f64)>,
    scratch: PathBuf,
    por: Option<PorConfig>,
    watermarkers: Vec<Arc<dyn SceneWatermarker>>,
}

impl ManagerBuilder {
    /// A manager over these parts with the default scheduler and config.
    pub fn new(
        transport: Arc<dyn Transport>,
        store: Arc<dyn TaskStore>,
        blobs: Arc<dyn BlobStore>,
    ) -> Self {
        Self {
            transport,
            store,
            blobs,
            scheduler: Box::new(WeightedRandomScheduler::default()),
            clock: Arc::new(SystemClock),
            config: ManagerConfig::default(),
            prober: None,
            scratch: std::env::temp_dir().join("inferix-manager"),
            por: None,
            watermarkers: Vec::new(),
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
    /// Folder for scene copies used by probe renders.
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
    /// Finishes the node.
    pub fn build(self) -> ManagerNode {
        ManagerNode { b: self }
    }
}

/// A manager, ready to start.
pub struct ManagerNode {
    b: ManagerBuilder,
}

/// A running manager.
pub struct ManagerHandle {
    addr: String,
    id: NodeId,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    events: broadcast::Sender<(JobId, JobEvent)>,
    busy_ns: Arc<AtomicU64>,
}

impl ManagerHandle {
    /// Time the manager's loop has spent handling messages, dispatching
    /// and housekeeping since it started (not waiting for input). One
    /// loop serves the whole manager, so busy time per task bounds the
    /// rate one manager can sustain, whatever else shares its machine.
    pub fn busy_time(&self) -> Duration {
        Duration::from_nanos(self.busy_ns.load(Ordering::Relaxed))
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
    /// Stops accepting, closes connections and waits for the loop to end.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
    /// Kills the manager without any cleanup, as a crash would.
    pub fn abort(self) {
        self.task.abort();
    }
}

type ConnId = u64;

enum Input {
    Connected(ConnId, NodeId, Arc<dyn MessageSender>),
    Received(ConnId, Envelope),
    Disconnected(ConnId),
    Quoted {
        conn: ConnId,
        id: u64,
        spec: Box<JobSpec>,
        submit: bool,
        result: Result<Quote, (ErrorCode, String)>,
    },
    /// A result's signature was checked off the manager loop.
    ResultSigned {
        conn: ConnId,
        id: u64,
        worker: NodeId,
        task: TaskId,
        result: Box<inferix_core::task::TaskResult>,
        /// Why the signature is not the worker's, if it is not.
        signature: Result<(), String>,
    },
    /// A lease's watermarked scene copy is ready (or could not be made).
    Prepared {
        task: TaskId,
        attempt: u32,
        worker: NodeId,
        scene: Result<ContentHash, String>,
    },
}

struct Peer {
    node: NodeId,
    role: Option<Role>,
    out: Outbound,
}

/// A verifier's connection; its load and reputation are the engine's.
struct VerifierConn {
    conn: ConnId,
    last_seen: u64,
}

impl ManagerNode {
    /// Listens and spawns the manager loop.
    pub async fn start(self) -> Result<ManagerHandle, NodeError> {
        let b = self.b;
        let mut listener = b.transport.listen(&b.config.listen).await?;
        let addr = listener.local_addr();
        let id = b.transport.local_id();
        let (in_tx, in_rx) = mpsc::unbounded_channel();
        let (sd_tx, sd_rx) = watch::channel(false);
        let (events, _) = broadcast::channel(4096);
        let busy_ns = Arc::new(AtomicU64::new(0));
        let acceptor_tx = in_tx.clone();
        let admitted: Admitted = Arc::default();
        let (acc_blobs, acc_admitted) = (b.blobs.clone(), admitted.clone());
        let acceptor = tokio::spawn(async move {
            accept_loop(&mut *listener, acceptor_tx, acc_blobs, acc_admitted).await
        });
        let engine = Engine::new(RoundConfig {
            quorum: b.config.quorum.max(1),
            vote_timeout_ms: b.config.verification_timeout.as_millis() as u64,
            reputation_penalty: b.config.reputation_penalty,
            ..RoundConfig::default()
        });
        let mut state = State {
            id,
            cfg: b.config,
            store: b.store,
            blobs: b.blobs,
            scheduler: b.scheduler,
            clock: b.clock,
            por: b.por,
            watermarkers: b.watermarkers,
            prep_dir: b.scratch.join("prepared"),
            prober: b.prober.map(|(r, ib)| {
                Arc::new(Prober {
                    renderer: r,
                    ib,
                    scratch: b.scratch,
                    cache: Mutex::default(),
                })
            }),
            inputs: in_tx,
            admitted,
            peers: HashMap::new(),
            workers: WorkerPool::default(),
            estimates: Estimates::default(),
            verifiers: BTreeMap::new(),
            watchers: HashMap::new(),
            engine,
            round_tasks: HashMap::new(),
            round_waiting: HashMap::new(),
            engine_commands: Default::default(),
            next_claim: 1,
            failures: HashMap::new(),
            buffered: Vec::new(),
            jobs: HashMap::new(),
            waiting: HashSet::new(),
            events: events.clone(),
            busy_ns: busy_ns.clone(),
        };
        info!(%addr, manager = ?id, "manager listening");
        let task = tokio::spawn(async move {
            state.recover().await;
            state.run(in_rx, sd_rx).await;
            acceptor.abort();
        });
        Ok(ManagerHandle {
            addr,
            id,
            shutdown: sd_tx,
            task,
            events,
            busy_ns,
        })
    }
}

/// Connections that completed the hello; only they may move blobs.
type Admitted = Arc<Mutex<HashSet<ConnId>>>;

async fn accept_loop(
    listener: &mut dyn Listener,
    tx: mpsc::UnboundedSender<Input>,
    blobs: Arc<dyn BlobStore>,
    admitted: Admitted,
) {
    let mut next: ConnId = 1;
    loop {
        let conn = match listener.accept().await {
            Ok(c) => c,
            Err(TransportError::Closed(_)) => return,
            Err(e) => {
                warn!(error = %e, "accept failed");
                continue;
            }
        };
        let id = next;
        next += 1;
        let Connection {
            peer,
            sender,
            mut receiver,
            ..
        } = conn;
        let mut blob_service = BlobService::new(blobs.clone(), sender.clone());
        if tx.send(Input::Connected(id, peer, sender.clone())).is_err() {
            return;
        }
        let tx = tx.clone();
        let admitted = admitted.clone();
        tokio::spawn(async move {
            loop {
                match receiver.recv().await {
                    Ok(Some(env)) if BlobService::handles(&env.body) => {
                        if admitted
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .contains(&id)
                        {
                            // Boxed: the handler's state is then allocated only while a blob
                            // moves, not kept inline in every idle reader task.
                            Box::pin(blob_service.handle(env)).await;
                        } else {
                            let refusal = Message::error(
                                ErrorCode::Unauthorized,
                                "say hello before moving blobs",
                            );
                            let _ = sender.send(Envelope::with_id(env.id, refusal)).await;
                        }
                    }
                    Ok(Some(env)) => {
                        if tx.send(Input::Received(id, env)).is_err() {
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        debug!(conn = id, error = %e, "connection error");
                        break;
                    }
                }
            }
            let _ = tx.send(Input::Disconnected(id));
        });
    }
}

struct Prober {
    renderer: Arc<dyn Renderer>,
    ib: f64,
    scratch: PathBuf,
    cache: Mutex<HashMap<String, f64>>,
}

impl Prober {
    /// Seconds per full frame on an IB 1.0 machine, from a small render.
    async fn seconds_per_frame(
        &self,
        spec: &JobSpec,
        blobs: &dyn BlobStore,
    ) -> Result<f64, String> {
        let key = format!("{}:{:?}", spec.scene.blob, spec.settings);
        if let Some(v) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(*v);
        }
        let dir = self.scratch.join(spec.scene.blob.to_hex());
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| e.to_string())?;
        let path = dir.join(crate::safe_file_name(&spec.scene.file_name));
        if !path.exists() {
            blobs
                .get_to_file(spec.scene.blob, &path)
                .await
                .map_err(|e| e.to_string())?;
        }
        // Two probes at different sample counts, after a warm-up that pays
        // for scene loading and kernel compilation: time = fixed + per-sample
        // cost, so launch overhead is not multiplied up to full size.
        let s = &spec.settings;
        let (w, h) = ((s.width / 8).max(16), (s.height / 8).max(16));
        let low = (s.samples / 16).max(1);
        let high = low * 4;
        let mut timed = Vec::new();
        for samples in [low, low, high] {
            let settings = RenderSettings {
                width: w,
                height: h,
                samples,
                ..s.clone()
            };
            let req = RenderRequest {
                scene: path.clone(),
                format: spec.scene.format,
                frames: vec![spec.frames.start],
                settings,
                crop: None,
                progress: None,
            };
            let t = Instant::now();
            self.renderer.render(req).await.map_err(|e| e.to_string())?;
            timed.push(t.elapsed().as_secs_f64());
        }
        let (t_low, t_high) = (timed[1], timed[2]);
        let per_sample = ((t_high - t_low) / (w as f64 * h as f64 * (high - low) as f64)).max(0.0);
        let fixed = (t_low - per_sample * w as f64 * h as f64 * low as f64).max(0.0);
        let full = s.width as f64 * s.height as f64 * s.samples as f64;
        let secs = (fixed + per_sample * full) * self.ib;
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, secs);
        Ok(secs)
    }
}

/// Most inputs handled between two dispatches, so that a flood of
/// messages cannot delay dispatching indefinitely.
const MAX_INPUTS_PER_DISPATCH: usize = 256;

/// How long a refused connection stays open for its refusal to arrive.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// Cost model used without a probe renderer: seconds per frame at IB 1.0
/// per pixel-sample.
const SECONDS_PER_PIXEL_SAMPLE: f64 = 1.0 / 2.0e6;

struct State {
    id: NodeId,
    cfg: ManagerConfig,
    store: Arc<dyn TaskStore>,
    blobs: Arc<dyn BlobStore>,
    scheduler: Box<dyn Scheduler>,
    clock: SharedClock,
    prober: Option<Arc<Prober>>,
    por: Option<PorConfig>,
    watermarkers: Vec<Arc<dyn SceneWatermarker>>,
    prep_dir: PathBuf,
    inputs: mpsc::UnboundedSender<Input>,
    admitted: Admitted,
    peers: HashMap<ConnId, Peer>,
    workers: WorkerPool,
    verifiers: BTreeMap<NodeId, VerifierConn>,
    watchers: HashMap<JobId, Vec<ConnId>>,
    /// The rules already moved out of this driver: verifiers' load and
    /// verification rounds.
    engine: Engine,
    /// The task of each open round as this manager wrote it when the round
    /// opened, so that offering and settling it need no read unless
    /// someone changed it since.
    round_tasks: HashMap<TaskId, Task>,
    /// Why open rounds wait, for the job's status.
    round_waiting: HashMap<TaskId, String>,
    /// Engine commands not carried out yet.
    engine_commands: std::collections::VecDeque<EngineCommand>,
    /// Claim re-renders in flight, by verification id.
    next_claim: u64,
    /// Failures per job and worker, for the job blocklist.
    failures: HashMap<(JobId, NodeId), u32>,
    /// Results that arrived while the task database was unavailable.
    buffered: Vec<(TaskId, NodeId, inferix_core::task::TaskResult)>,
    jobs: HashMap<JobId, Job>,
    /// Measured work per frame of each job: milliseconds at IB 1.0.
    estimates: Estimates,
    waiting: HashSet<JobId>,
    events: broadcast::Sender<(JobId, JobEvent)>,
    /// See [`ManagerHandle::busy_time`].
    busy_ns: Arc<AtomicU64>,
}

/// Workers that may not take `task`: those it excludes and the job's
/// blocklist.
fn excluded_workers(task: &Task, job: &Job) -> Vec<NodeId> {
    task.excluded
        .iter()
        .chain(&job.blocklist)
        .copied()
        .collect()
}

fn store_err(e: StoreError) -> (ErrorCode, String) {
    match e {
        StoreError::Unavailable(m) => (ErrorCode::Unavailable, m),
        StoreError::NotFound { what } => (ErrorCode::NotFound, format!("{what} not found")),
        other => (ErrorCode::Internal, other.to_string()),
    }
}

impl State {
    fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    /// After a restart: verifications in flight were lost with the old
    /// process, so their tasks go back to `Rendered` to be verified again.
    async fn recover(&mut self) {
        let Ok(verifying) = self
            .store
            .tasks_in_status(TaskStatus::Verifying, usize::MAX)
            .await
        else {
            return;
        };
        let now = self.now();
        for mut t in verifying {
            let stale = t
                .entered(TaskStatus::Verifying)
                .is_none_or(|at| at + self.cfg.verification_timeout.as_millis() as u64 <= now);
            if stale
                && t.transition(
                    TaskStatus::Rendered,
                    now,
                    "verification lost; verifying again",
                )
                .is_ok()
            {
                let _ = self.store.update_task(&mut t).await;
            }
        }
    }

    async fn run(
        &mut self,
        mut inputs: mpsc::UnboundedReceiver<Input>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(self.cfg.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.changed() => break,
                input = inputs.recv() => {
                    let Some(input) = input else { break };
                    let started = Instant::now();
                    let mut reschedule = self.on_input(input).await;
                    // Inputs that are already waiting are handled before one
                    // dispatch for all of them: a dispatch reads the queue,
                    // so doing one per message would make every message cost
                    // as much as the queue is long.
                    for _ in 0..MAX_INPUTS_PER_DISPATCH {
                        match inputs.try_recv() {
                            Ok(input) => reschedule |= self.on_input(input).await,
                            Err(_) => break,
                        }
                    }
                    self.run_engine_commands().await;
                    if reschedule {
                        self.dispatch().await;
                    }
                    self.count_busy(started);
                }
                _ = tick.tick() => {
                    let started = Instant::now();
                    self.housekeeping().await;
                    self.run_engine_commands().await;
                    self.dispatch().await;
                    self.count_busy(started);
                }
            }
        }
        for p in self.peers.values() {
            p.out.close("manager shutting down");
        }
        info!("manager stopped");
    }

    fn count_busy(&self, since: Instant) {
        let ns = u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.busy_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Queues `env` for `conn` without waiting on the peer. A peer whose
    /// queue is full does not read: its connection is closed, and its
    /// state goes when the disconnection comes back as an input.
    async fn send(&self, conn: ConnId, env: Envelope) {
        let Some(p) = self.peers.get(&conn) else {
            return;
        };
        match p.out.push(env) {
            Ok(()) => {}
            Err(Refused::Full) => {
                warn!(conn, node = ?p.node, "peer does not read its messages; disconnected");
                p.out.close("outbound queue full: the peer does not read");
            }
            Err(Refused::Closed) => debug!(conn, "send to a closed connection"),
        }
    }

    async fn reply(&self, conn: ConnId, id: u64, body: Message) {
        self.send(conn, Envelope::with_id(id, body)).await;
    }

    async fn emit(&mut self, job: JobId, event: JobEvent) {
        let _ = self.events.send((job, event.clone()));
        let conns = self.watchers.get(&job).cloned().unwrap_or_default();
        for c in conns {
            self.send(
                c,
                Envelope::push(Message::Event {
                    job,
                    event: event.clone(),
                }),
            )
            .await;
        }
    }

    async fn job(&mut self, id: JobId) -> Option<Job> {
        if let Some(j) = self.jobs.get(&id) {
            return Some(j.clone());
        }
        let j = self.store.job(id).await.ok().flatten()?;
        self.jobs.insert(id, j.clone());
        Some(j)
    }

    async fn save_job(&mut self, job: Job) {
        if let Err(e) = self.store.update_job(&job).await {
            warn!(job = ?job.id, error = %e, "cannot save job");
        }
        self.jobs.insert(job.id, job);
    }

    /// Returns whether scheduling may have changed.
    async fn on_input(&mut self, input: Input) -> bool {
        match input {
            Input::Connected(conn, node, sender) => {
                self.peers.insert(
                    conn,
                    Peer {
                        node,
                        role: None,
                        out: Outbound::spawn(sender, OUTBOUND_CAPACITY),
                    },
                );
                false
            }
            Input::Disconnected(conn) => {
                self.drop_peer(conn, "connection closed").await;
                true
            }
            Input::Received(conn, env) => self.on_message(conn, env).await,
            Input::Quoted {
                conn,
                id,
                spec,
                submit,
                result,
            } => {
                match result {
                    Err((code, msg)) => self.reply(conn, id, Message::error(code, msg)).await,
                    Ok(q) if !submit => self.reply(conn, id, Message::QuoteReply(q)).await,
                    Ok(q) => {
                        let body = match self.create_job(conn, *spec, q.clone()).await {
                            Ok(job) => Message::Submitted { job, quote: q },
                            Err((code, msg)) => Message::error(code, msg),
                        };
                        self.reply(conn, id, body).await;
                    }
                }
                true
            }
            Input::Prepared {
                task,
                attempt,
                worker,
                scene,
            } => {
                self.on_prepared(task, attempt, worker, scene).await;
                true
            }
            Input::ResultSigned {
                conn,
                id,
                worker,
                task,
                result,
                signature,
            } => {
                self.on_result_signed(conn, id, worker, task, *result, signature)
                    .await;
                true
            }
        }
    }

    /// Drops a refused peer's state at once but closes its connection only
    /// after a short linger, so the refusal it was just sent reaches it
    /// (closing a QUIC connection discards unsent data).
    async fn refuse(&mut self, conn: ConnId, why: &str) {
        let Some(p) = self.peers.get(&conn) else {
            return;
        };
        p.out.close_after(REFUSAL_LINGER, why.to_string());
        self.drop_peer_keeping_connection(conn, why).await;
    }

    async fn drop_peer(&mut self, conn: ConnId, why: &str) {
        if let Some(p) = self.peers.get(&conn) {
            p.out.close(why);
        }
        self.drop_peer_keeping_connection(conn, why).await;
    }

    async fn drop_peer_keeping_connection(&mut self, conn: ConnId, why: &str) {
        let Some(peer) = self.peers.remove(&conn) else {
            return;
        };
        self.admitted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&conn);
        for list in self.watchers.values_mut() {
            list.retain(|c| *c != conn);
        }
        if self.workers.get(&peer.node).is_some_and(|w| w.conn == conn) {
            let slot = self.workers.leave(peer.node);
            info!(worker = ?peer.node, why, "worker left");
            if let Some(task) = slot.and_then(|s| s.task()) {
                self.requeue(
                    task,
                    peer.node,
                    false,
                    &format!("worker {:?} left: {why}", peer.node),
                )
                .await;
            }
        }
        if self
            .verifiers
            .get(&peer.node)
            .is_some_and(|v| v.conn == conn)
        {
            self.verifiers.remove(&peer.node);
            info!(verifier = ?peer.node, why, "verifier left");
            // Carried out by the caller's loop: dropping a peer happens
            // while commands are being carried out (a slashed worker).
            self.engine_defer(EngineEvent::VerifierLeft {
                verifier: peer.node,
            });
        }
    }

    async fn on_message(&mut self, conn: ConnId, env: Envelope) -> bool {
        let Some(peer) = self.peers.get(&conn) else {
            return false;
        };
        let (node, role) = (peer.node, peer.role);
        if env.version != PROTOCOL_VERSION {
            warn!(
                conn,
                version = env.version,
                "peer speaks another protocol version"
            );
            let msg = format!(
                "protocol version {} not supported; this manager speaks {PROTOCOL_VERSION}",
                env.version
            );
            self.reply(
                conn,
                env.id,
                Message::error(ErrorCode::VersionMismatch, msg),
            )
            .await;
            self.refuse(conn, "protocol version mismatch").await;
            return true;
        }
        let now = self.now();
        if let Some(w) = self.workers.get_mut(&node) {
            w.last_seen = now;
        }
        if let Some(v) = self.verifiers.get_mut(&node) {
            v.last_seen = now;
        }
        let id = env.id;
        match (role, env.body) {
            (None, Message::Hello(h)) => self.on_hello(conn, id, node, h).await,
            (None, other) => {
                let m = format!("expected hello, got {}", other.kind());
                self.reply(conn, id, Message::error(ErrorCode::UnexpectedMessage, m))
                    .await;
                false
            }
            (Some(_), Message::Heartbeat) => false,
            (Some(Role::Worker), Message::TaskDone(result)) => {
                let task_id = self.workers.get(&node).and_then(|w| w.task());
                self.on_task_done(conn, id, node, task_id, result).await;
                true
            }
            (Some(Role::Worker), Message::TaskFailed { task, error }) => {
                self.count_failure(task.job, node).await;
                self.release_worker(node, task);
                self.requeue(task, node, true, &format!("worker failed: {error}"))
                    .await;
                true
            }
            (Some(Role::Worker), Message::TaskReleased { task }) => {
                self.release_worker(node, task);
                self.requeue(task, node, false, "handed back by worker")
                    .await;
                true
            }
            (Some(Role::Worker), Message::TaskProgress { task, .. }) => {
                let now = self.now();
                if let Some(w) = self
                    .workers
                    .get_mut(&node)
                    .filter(|w| w.task() == Some(task))
                {
                    w.last_progress = now;
                }
                false
            }
            (Some(Role::Verifier), Message::VerifyDone(v)) => {
                self.on_verdict(node, v).await;
                true
            }
            (Some(Role::Client), body) => {
                self.on_client(conn, id, node, body).await;
                true
            }
            (Some(r), other) => {
                let m = format!("{} is not a message a {r:?} may send", other.kind());
                warn!(conn, ?node, "{m}");
                self.reply(conn, id, Message::error(ErrorCode::UnexpectedMessage, m))
                    .await;
                false
            }
        }
    }

    async fn on_hello(&mut self, conn: ConnId, id: u64, node: NodeId, h: Hello) -> bool {
        let admission = AdmissionConfig {
            node_token: self.cfg.node_token.clone(),
            client_token: self.cfg.client_token.clone(),
        };
        if let Err(refusal) = check_hello(&admission, &h) {
            warn!(?node, role = ?h.role, why = refusal.close, "refused");
            self.reply(conn, id, Message::error(refusal.code, refusal.message))
                .await;
            self.refuse(conn, refusal.close).await;
            return false;
        }
        let now = self.now();
        if let Some(p) = self.peers.get_mut(&conn) {
            p.role = Some(h.role);
        }
        self.admitted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(conn);
        match h.role {
            Role::Worker => {
                if let Err(why) = self.ensure_stake(node, h.ib).await {
                    warn!(worker = ?node, %why, "refused: stake");
                    self.reply(conn, id, Message::error(ErrorCode::Unauthorized, why))
                        .await;
                    self.refuse(conn, "insufficient stake").await;
                    return false;
                }
                // A worker reconnecting replaces its old connection.
                if let Some(old) = self.workers.get(&node).map(|w| w.conn) {
                    self.drop_peer(old, "replaced by a new connection").await;
                }
                let info = WorkerInfo {
                    id: node,
                    ib: h.ib,
                    reputation: 1.0,
                    tags: h.tags,
                };
                info!(worker = ?node, ib = info.ib, "worker joined");
                self.workers.join(conn, info, now);
            }
            Role::Verifier => {
                if let Some(old) = self.verifiers.get(&node).map(|v| v.conn) {
                    self.drop_peer(old, "replaced by a new connection").await;
                }
                info!(verifier = ?node, "verifier joined");
                self.verifiers.insert(
                    node,
                    VerifierConn {
                        conn,
                        last_seen: now,
                    },
                );
                self.engine_event(EngineEvent::VerifierJoined {
                    verifier: node,
                    renders: h.tags.iter().any(|t| t == RENDER_TAG),
                })
                .await;
            }
            _ => {}
        }
        self.reply(conn, id, Message::Welcome { manager: self.id })
            .await;
        true
    }

    /// Tells a connected worker to stop a task it no longer holds.
    async fn revoke(&mut self, worker: NodeId, task: TaskId) {
        let conn = self
            .workers
            .get(&worker)
            .filter(|w| w.task() == Some(task))
            .map(|w| w.conn);
        self.release_worker(worker, task);
        if let Some(conn) = conn {
            self.send(conn, Envelope::push(Message::TaskRevoked { task }))
                .await;
        }
    }

    fn release_worker(&mut self, worker: NodeId, task: TaskId) {
        let now = self.now();
        self.workers.release(worker, task, now);
    }

    /// Puts a task back in the queue (or fails it at the retry limit).
    async fn requeue(&mut self, task: TaskId, worker: NodeId, exclude: bool, why: &str) {
        for _ in 0..3 {
            let Ok(Some(mut t)) = self.store.task(task).await else {
                return;
            };
            let holds = t.lease.as_ref().is_some_and(|l| l.worker == worker);
            if !(t.status == TaskStatus::Leased && holds) && t.status != TaskStatus::Rejected {
                return;
            }
            let now = self.now();
            let Ok(to) = t.requeue(now, exclude.then_some(worker), self.cfg.max_attempts, why)
            else {
                return;
            };
            match self.store.update_task(&mut t).await {
                Ok(()) => {
                    info!(?task, ?to, why, "task re-queued");
                    if to == TaskStatus::Failed {
                        self.fail_job(
                            task.job,
                            &format!("task {task} failed after {} attempts: {why}", t.attempts),
                        )
                        .await;
                    } else {
                        self.emit(
                            task.job,
                            JobEvent::TaskRequeued {
                                task,
                                reason: why.to_string(),
                            },
                        )
                        .await;
                    }
                    return;
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => {
                    warn!(?task, error = %e, "cannot re-queue");
                    return;
                }
            }
        }
    }

    async fn fail_job(&mut self, job: JobId, why: &str) {
        if let Some(mut j) = self.job(job).await {
            if !j.state.is_terminal() {
                j.set_state(JobState::Failed, self.clock.now_ms(), why);
                j.waiting_reason = Some(why.to_string());
                self.save_job(j).await;
                self.emit(
                    job,
                    JobEvent::Failed {
                        reason: why.to_string(),
                    },
                )
                .await;
            }
        }
    }

    async fn on_task_done(
        &mut self,
        conn: ConnId,
        id: u64,
        worker: NodeId,
        current: Option<TaskId>,
        result: inferix_core::task::TaskResult,
    ) {
        let Some(task_id) = current else {
            self.reply(
                conn,
                id,
                Message::error(ErrorCode::UnexpectedMessage, "no task is leased to you"),
            )
            .await;
            return;
        };
        // Timed by this manager, over the frames it leased: nothing the
        // (not yet checked) result says goes into the estimate.
        if let Some(w) = self.workers.get(&worker) {
            self.estimates.finished(w, task_id.job, self.clock.now_ms());
        }
        self.release_worker(worker, task_id);
        if result.worker != worker {
            warn!(?worker, claimed = ?result.worker, "result names another worker");
            self.reply(
                conn,
                id,
                Message::error(ErrorCode::Unauthorized, "result names another worker"),
            )
            .await;
            return;
        }
        // The signature check is most of a result's cost; it needs no
        // state, so it runs beside the loop and the result comes back as
        // an input.
        let inputs = self.inputs.clone();
        tokio::spawn(async move {
            let signature =
                inferix_transport::verify_result(task_id, &result).map_err(|e| e.to_string());
            let _ = inputs.send(Input::ResultSigned {
                conn,
                id,
                worker,
                task: task_id,
                result: Box::new(result),
                signature,
            });
        });
    }

    async fn on_result_signed(
        &mut self,
        conn: ConnId,
        id: u64,
        worker: NodeId,
        task_id: TaskId,
        result: inferix_core::task::TaskResult,
        signature: Result<(), String>,
    ) {
        if let Err(why) = signature {
            warn!(?task_id, ?worker, %why, "result refused");
            self.requeue(task_id, worker, true, &format!("refused result: {why}"))
                .await;
            self.reply(conn, id, Message::error(ErrorCode::Unauthorized, why))
                .await;
            return;
        }
        // With the database away, the result waits here (the lease in the
        // store still names this worker) and is recorded once it is back.
        let task = match self.store.task(task_id).await {
            Ok(Some(t)) => t,
            Ok(None) => {
                let why = format!("task {task_id} not found");
                self.reply(conn, id, Message::error(ErrorCode::NotFound, why))
                    .await;
                return;
            }
            Err(StoreError::Unavailable(why)) => {
                warn!(?task_id, ?worker, %why, "task database unavailable; result kept until it is back");
                self.buffered.push((task_id, worker, result));
                self.reply(conn, id, Message::Ok).await;
                return;
            }
            Err(e) => {
                let (code, why) = store_err(e);
                self.reply(conn, id, Message::error(code, why)).await;
                return;
            }
        };
        match self.record_result(task, worker, result).await {
            Ok(()) => self.reply(conn, id, Message::Ok).await,
            Err((code, why)) => {
                self.reply(conn, id, Message::error(code, why)).await;
            }
        }
    }

    /// Checks a result and stores it as the task's; a refused result puts
    /// the task back in the queue without its worker.
    async fn record_result(
        &mut self,
        mut t: Task,
        worker: NodeId,
        result: inferix_core::task::TaskResult,
    ) -> Result<(), (ErrorCode, String)> {
        let task_id = t.id;
        if let Err(why) = self.check_result(&t, &result).await {
            warn!(?task_id, ?worker, %why, "result refused");
            self.requeue(task_id, worker, true, &format!("refused result: {why}"))
                .await;
            return Err((ErrorCode::Unauthorized, why));
        }
        let now = self.now();
        // With verifiers connected the result goes to them in the same
        // write that records it, saving the store a write per task.
        let mut verifying = false;
        let outcome = match t.complete(result, now) {
            Ok(()) => {
                verifying = !self.verifiers.is_empty()
                    && t.transition(TaskStatus::Verifying, now, "sent to verifiers")
                        .is_ok();
                self.store
                    .update_task(&mut t)
                    .await
                    .map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        match outcome {
            Ok(()) => {
                debug!(?task_id, ?worker, "result recorded");
                if verifying {
                    self.start_round(worker, t).await;
                }
                Ok(())
            }
            Err(e) => {
                warn!(?task_id, ?worker, error = %e, "result refused");
                Err((ErrorCode::UnexpectedMessage, e))
            }
        }
    }

    /// Records results that arrived while the task database was away.
    async fn flush_buffered_results(&mut self) {
        for (task_id, worker, result) in std::mem::take(&mut self.buffered) {
            let task = match self.store.task(task_id).await {
                Ok(Some(t)) => t,
                Err(StoreError::Unavailable(_)) => {
                    self.buffered.push((task_id, worker, result));
                    continue;
                }
                Ok(None) | Err(_) => continue,
            };
            if self.record_result(task, worker, result).await.is_ok() {
                info!(?task_id, ?worker, "buffered result recorded");
            }
        }
    }

    /// Why a result with a valid signature must still be refused before
    /// it is verified: a replay of another lease (attempt), or a render of
    /// another scene than the one leased.
    async fn check_result(
        &mut self,
        t: &Task,
        result: &inferix_core::task::TaskResult,
    ) -> Result<(), String> {
        let task_id = t.id;
        let leased_scene = match t.lease.as_ref().and_then(|l| l.scene) {
            Some(s) => s,
            None => match self.job(task_id.job).await {
                Some(j) => j.spec.scene.blob,
                None => result.scene,
            },
        };
        if result.attempt != t.attempts {
            return Err(format!(
                "result answers attempt {} but the lease is attempt {}",
                result.attempt, t.attempts
            ));
        }
        if leased_scene != result.scene {
            return Err("result was rendered from another scene than the one leased".into());
        }
        Ok(())
    }

    async fn on_verdict(&mut self, verifier: NodeId, v: Verdict) {
        if !self.engine.is_awaited_verification(v.verification) {
            debug!(
                ?verifier,
                verification = v.verification,
                "late or unknown verdict ignored"
            );
            return;
        }
        self.engine_event(EngineEvent::VerdictReceived {
            verifier,
            verdict: v,
        })
        .await;
    }

    /// Hands one event to the engine and carries out what it answers.
    async fn engine_event(&mut self, event: EngineEvent) {
        self.engine_defer(event);
        self.run_engine_commands().await;
    }

    /// Hands one event to the engine; its commands wait in the queue for
    /// the next [`Self::run_engine_commands`].
    fn engine_defer(&mut self, event: EngineEvent) {
        let now = self.now();
        let commands = self.engine.handle(event, now);
        self.engine_commands.extend(commands);
    }

    /// Carries out the engine's queued commands, in order; a command that
    /// cannot be carried out comes back to the engine as an event (whose
    /// own commands are carried out after the rest).
    async fn run_engine_commands(&mut self) {
        while let Some(command) = self.engine_commands.pop_front() {
            match command {
                EngineCommand::OfferVerification {
                    verifier,
                    verification,
                    task,
                } => {
                    if !self.offer_verification(verifier, verification, task).await {
                        self.round_tasks.remove(&task);
                        self.round_waiting.remove(&task);
                        self.engine_defer(EngineEvent::RoundAbandoned { task });
                    }
                }
                EngineCommand::SettleRound(s) => {
                    self.round_waiting.remove(&s.task);
                    let known = self.round_tasks.remove(&s.task);
                    if !s.dissenting.is_empty() {
                        info!(task = ?s.task, dissenting = ?s.dissenting, passed = s.passed, "verifiers disagreed; the majority decided");
                    }
                    self.finish_verification(s.task, s.worker, known, s.passed, s.reasons)
                        .await;
                    self.pay_verifiers(s.task, &s.agreeing).await;
                }
                EngineCommand::OfferClaimCheck {
                    verifier,
                    verification,
                    check,
                } => {
                    if let Err(why) = self.offer_claim_check(verifier, verification, &check).await {
                        warn!(claim = check.claim, task = ?check.task, %why, "claim check dropped");
                        self.engine_defer(EngineEvent::ClaimCheckDropped { verification });
                    }
                }
                EngineCommand::SettleClaim(verdict) => self.settle_claim(verdict).await,
                EngineCommand::ClaimRefused { claim, reason } => {
                    warn!(claim, %reason, "claim refused");
                }
                EngineCommand::ClaimWaiting {
                    claim,
                    task,
                    reason,
                } => warn!(claim, ?task, %reason, "claim re-render waits for a verifier"),
                EngineCommand::RoundWaiting { task, reason } => match reason {
                    Some(why) => {
                        warn!(?task, %why, "verification waits");
                        // Watchers see it, as they see a job that waits
                        // for a worker.
                        let reason = format!("verification of task {task} waits: {why}");
                        self.emit(task.job, JobEvent::Waiting { reason }).await;
                        self.round_waiting.insert(task, why);
                    }
                    None => {
                        self.round_waiting.remove(&task);
                    }
                },
            }
        }
    }

    async fn finish_verification(
        &mut self,
        task_id: TaskId,
        worker: NodeId,
        known: Option<Task>,
        passed: bool,
        reasons: Vec<String>,
    ) {
        let now = self.now();
        if !passed {
            warn!(task = ?task_id, ?worker, ?reasons, "result rejected");
        }
        let (to, note) = if passed {
            (TaskStatus::Accepted, "verified".to_string())
        } else {
            (TaskStatus::Rejected, reasons.join("; "))
        };
        // The copy from the round's start saves a read; if the task has
        // changed since (the write conflicts), it is read once more.
        let mut cached = known;
        let mut written = None;
        for _ in 0..2 {
            let mut t = match cached.take() {
                Some(t) => t,
                None => match self.store.task(task_id).await {
                    Ok(Some(t)) => t,
                    _ => return,
                },
            };
            if t.status != TaskStatus::Verifying || t.transition(to, now, note.clone()).is_err() {
                return;
            }
            match self.store.update_task(&mut t).await {
                Ok(()) => {
                    written = Some(t);
                    break;
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(_) => return,
            }
        }
        let Some(t) = written else {
            return;
        };
        if passed {
            // The payment and the progress count are independent: one
            // round trip to a networked store instead of two.
            let store = self.store.clone();
            let (_, counts) = tokio::join!(self.credit(&t), store.status_counts(task_id.job));
            let counts = counts.unwrap_or_default();
            let (accepted, total) = StatusCount::frames_in(&counts, TaskStatus::Accepted);
            self.emit(
                task_id.job,
                JobEvent::TaskAccepted {
                    task: task_id,
                    worker,
                    accepted_frames: accepted,
                    total_frames: total,
                },
            )
            .await;
            if StatusCount::all_accepted(&counts) {
                self.complete_job(task_id.job).await;
            }
        } else {
            if let Some(w) = self.workers.get_mut(&worker) {
                w.info.reputation *= self.cfg.reputation_penalty;
            }
            self.punish(task_id, worker).await;
            self.emit(
                task_id.job,
                JobEvent::TaskRejected {
                    task: task_id,
                    worker,
                    reasons: reasons.clone(),
                },
            )
            .await;
            self.requeue(
                task_id,
                worker,
                true,
                &format!("rejected: {}", reasons.join("; ")),
            )
            .await;
        }
    }

    /// A verified bad result: the worker may not touch the job again and
    /// its stake goes to the penalty pool (and with it its admission).
    /// Counts a failure of `worker` on `job`; at the limit the worker is
    /// blocklisted for the job.
    async fn count_failure(&mut self, job: JobId, worker: NodeId) {
        let n = self.failures.entry((job, worker)).or_insert(0);
        *n += 1;
        if *n < self.cfg.failures_before_blocklist.max(1) {
            return;
        }
        if let Some(mut j) = self.job(job).await {
            if !j.blocklist.contains(&worker) {
                warn!(
                    ?job,
                    ?worker,
                    failures = *self.failures.get(&(job, worker)).unwrap_or(&0),
                    "worker blocklisted for the job after repeated failures"
                );
                j.blocklist.push(worker);
                self.save_job(j).await;
            }
        }
    }

    async fn punish(&mut self, task_id: TaskId, worker: NodeId) {
        if let Some(mut job) = self.job(task_id.job).await {
            if !job.blocklist.contains(&worker) {
                job.blocklist.push(worker);
                self.save_job(job).await;
            }
        }
        let Ok(stake) = self.store.balance(&Account::Stake(worker)).await else {
            return;
        };
        if let Some(tx) = economy::slash(task_id, worker, stake, self.now()) {
            match self.store.append_transaction(&tx).await {
                Ok(()) | Err(StoreError::AlreadyExists { .. }) => {
                    warn!(?worker, stake, "stake slashed");
                }
                Err(e) => warn!(?worker, error = %e, "cannot record the slash"),
            }
        }
        // Without stake the worker may not hold tasks any more.
        if self.minimum_stake(1.0) > 0 {
            if let Some(conn) = self.workers.get(&worker).map(|w| w.conn) {
                self.send(
                    conn,
                    Envelope::push(Message::error(
                        ErrorCode::Unauthorized,
                        "stake slashed after a rejected result",
                    )),
                )
                .await;
                self.refuse(conn, "stake slashed").await;
            }
        }
    }

    /// Pays verifiers that agreed with a verdict from the penalty pool,
    /// while it has funds.
    async fn pay_verifiers(&mut self, task: TaskId, verifiers: &[NodeId]) {
        if self.cfg.verifier_reward <= 0 || verifiers.is_empty() {
            return;
        }
        let Ok(pool) = self.store.balance(&Account::PenaltyPool).await else {
            return;
        };
        let rewards = economy::verifier_rewards(&self.economy(), task, verifiers, pool, self.now());
        for tx in rewards {
            if let Err(e) = self.store.append_transaction(&tx).await {
                warn!(?task, error = %e, "cannot record a verifier's reward");
            }
        }
    }

    fn economy(&self) -> EconomyConfig {
        EconomyConfig {
            price_per_ibm: self.cfg.price_per_ibm,
            stake_epoch_minutes: self.cfg.stake_epoch_minutes,
            grant_stake: self.cfg.grant_stake,
            verifier_reward: self.cfg.verifier_reward,
        }
    }

    /// Files a bad-result claim: checks the window, then sends each task's
    /// claimed frames to a verifier that re-renders them whole.
    async fn file_claim(
        &mut self,
        job_id: JobId,
        frames: Vec<u32>,
        reason: String,
    ) -> Result<u64, (ErrorCode, String)> {
        let Some(job) = self.job(job_id).await else {
            return Err((ErrorCode::NotFound, format!("job {job_id} not found")));
        };
        if frames.is_empty() {
            return Err((
                ErrorCode::InvalidRequest,
                "a claim names at least one frame".into(),
            ));
        }
        let tasks = self.store.tasks_of_job(job_id).await.map_err(store_err)?;
        let window = self.cfg.claim_window.as_millis() as u64;
        let claim = self.next_claim;
        let checks = claim_checks(claim, &tasks, &frames, &reason, self.now(), window)
            .map_err(|(code, m)| (code, format!("{m} (job {job_id})")))?;
        self.next_claim += 1;
        let now = self.now();
        let commands = self.engine.handle(EngineEvent::ClaimFiled { checks }, now);
        if let Some(why) = commands.iter().find_map(|c| match c {
            EngineCommand::ClaimRefused { reason, .. } => Some(reason.clone()),
            _ => None,
        }) {
            return Err((ErrorCode::Unavailable, why));
        }
        self.engine_commands.extend(commands);
        self.run_engine_commands().await;
        info!(claim, job = ?job.id, %reason, "bad-result claim filed");
        Ok(claim)
    }

    /// Sends a claim check to `verifier` (a renderer the engine chose) as
    /// verification `vid`.
    async fn offer_claim_check(
        &mut self,
        verifier: NodeId,
        vid: u64,
        check: &ClaimCheck,
    ) -> Result<(), String> {
        let Ok(Some(task)) = self.store.task(check.task).await else {
            return Err(format!("task {} not found", check.task));
        };
        let (Some(job), Some(result)) = (self.job(check.task.job).await, task.result.clone())
        else {
            return Err("claimed result not found".into());
        };
        let Some(conn) = self.verifiers.get(&verifier).map(|v| v.conn) else {
            return Err(format!("verifier {verifier:?} is not connected"));
        };
        let (w, h) = (job.spec.settings.width, job.spec.settings.height);
        let offer = VerificationAssignment {
            verification: vid,
            task: check.task,
            frames: result
                .frames
                .iter()
                .filter(|f| check.frames.contains(&f.frame))
                .cloned()
                .collect(),
            width: w,
            height: h,
            format: job.spec.format,
            watermark: Vec::new(),
            watermark_threshold: 0.0,
            challenges: check
                .frames
                .iter()
                .map(|&frame| inferix_core::protocol::CropChallenge {
                    frame,
                    rect: inferix_core::image::Rect::new(0, 0, w, h),
                })
                .collect(),
            scene: Some(SceneRef {
                blob: result.scene,
                ..job.spec.scene.clone()
            }),
            settings: job.spec.settings.clone(),
            worker_device_class: result.device_class.clone(),
            crop_tolerance: self.por.as_ref().map_or(2, |p| p.crop_tolerance),
        };
        self.send(conn, Envelope::push(Message::VerifyOffer(offer)))
            .await;
        Ok(())
    }

    /// Decides a claim from the re-render: upheld, the worker refunds the
    /// frames' price to the payer and is slashed; rejected, nothing moves.
    /// Either way the evidence is recorded in the ledger.
    async fn settle_claim(&mut self, v: ClaimVerdict) {
        let ClaimVerdict {
            check,
            verifier,
            upheld,
            reasons,
        } = v;
        let evidence = if upheld {
            reasons
        } else {
            vec![format!(
                "frames {:?} re-rendered by {verifier:?} match the delivered pixels",
                check.frames
            )]
        };
        let job_id = check.task.job;
        let payer = self.payer_of(job_id).await;
        let refund = match self.job(job_id).await {
            Some(job) if upheld => {
                economy::frames_share(job.quoted_price, check.frames.len(), job.spec.frames.len())
            }
            _ => 0,
        };
        let memo = format!(
            "claim {} on frames {:?} of {} ({}): {}; evidence: {}",
            check.claim,
            check.frames,
            check.task,
            check.reason,
            if upheld { "upheld" } else { "rejected" },
            evidence.join("; ")
        );
        let tx = Transaction::transfer(
            format!("claim:{}:{}", check.claim, check.task),
            self.now(),
            memo,
            Account::Worker(check.worker),
            payer.unwrap_or(Account::User("unknown".into())),
            refund,
        );
        if let Err(e) = self.store.append_transaction(&tx).await {
            warn!(claim = check.claim, error = %e, "cannot record the claim");
        }
        if upheld {
            warn!(claim = check.claim, worker = ?check.worker, "claim upheld");
            if let Some(w) = self.workers.get_mut(&check.worker) {
                w.info.reputation *= self.cfg.reputation_penalty;
            }
            self.punish(check.task, check.worker).await;
        }
        self.pay_verifiers(check.task, &[verifier]).await;
        self.emit(
            job_id,
            JobEvent::ClaimSettled {
                claim: check.claim,
                frames: check.frames,
                upheld,
                evidence,
            },
        )
        .await;
    }

    /// Pays the worker for an accepted task out of the job's escrow.
    async fn credit(&mut self, t: &Task) {
        let Some(job) = self.job(t.id.job).await else {
            return;
        };
        let Some(result) = &t.result else { return };
        let tx = economy::task_payment(
            t.id,
            t.frames.len(),
            job.quoted_price,
            job.spec.frames.len(),
            result.worker,
            self.now(),
        );
        match self.store.append_transaction(&tx).await {
            Ok(()) | Err(StoreError::AlreadyExists { .. }) => {}
            Err(e) => warn!(task = ?t.id, error = %e, "cannot record payment"),
        }
    }

    async fn complete_job(&mut self, job_id: JobId) {
        let Some(mut job) = self.job(job_id).await else {
            return;
        };
        if job.state.is_terminal() {
            return;
        }
        job.set_state(JobState::Completed, self.now(), "every frame accepted");
        job.waiting_reason = None;
        self.save_job(job).await;
        self.refund_escrow(job_id, "job completed: rounding remainder")
            .await;
        info!(job = ?job_id, "job completed");
        self.emit(job_id, JobEvent::Completed { job: job_id }).await;
    }

    /// Returns what is left in a job's escrow to its payer.
    async fn refund_escrow(&mut self, job: JobId, memo: &str) {
        let Ok(left) = self.store.balance(&Account::Job(job)).await else {
            return;
        };
        if left <= 0 {
            return;
        }
        if let Some(payer) = self.payer_of(job).await {
            if let Some(tx) = economy::escrow_refund(job, left, payer, memo, self.now()) {
                let _ = self.store.append_transaction(&tx).await;
            }
        }
    }

    /// The account that funded `job`'s escrow.
    async fn payer_of(&self, job: JobId) -> Option<Account> {
        let fund = self
            .store
            .transaction(&format!("fund:{job}"))
            .await
            .ok()??;
        fund.postings
            .into_iter()
            .find(|p| p.amount < 0)
            .map(|p| p.account)
    }

    async fn on_client(&mut self, conn: ConnId, id: u64, client: NodeId, body: Message) {
        let body_kind = body.kind();
        match body {
            Message::QuoteRequest { spec } => self.start_quote(conn, id, spec, false),
            Message::Submit { spec } => self.start_quote(conn, id, spec, true),
            Message::StatusRequest { job } => {
                let reply = match self.status(job).await {
                    Ok(s) => Message::StatusReply(Box::new(s)),
                    Err((c, m)) => Message::error(c, m),
                };
                self.reply(conn, id, reply).await;
            }
            Message::Watch { job } => match self.job(job).await {
                None => {
                    self.reply(
                        conn,
                        id,
                        Message::error(ErrorCode::NotFound, format!("job {job} not found")),
                    )
                    .await
                }
                Some(j) => {
                    self.watchers.entry(job).or_default().push(conn);
                    self.reply(conn, id, Message::Ok).await;
                    let ev = match j.state {
                        JobState::Completed => Some(JobEvent::Completed { job }),
                        JobState::Cancelled => Some(JobEvent::Cancelled),
                        JobState::Failed => Some(JobEvent::Failed {
                            reason: j.waiting_reason.unwrap_or_default(),
                        }),
                        _ => j.waiting_reason.map(|reason| JobEvent::Waiting { reason }),
                    };
                    if let Some(ev) = ev {
                        self.send(conn, Envelope::push(Message::Event { job, event: ev }))
                            .await;
                    }
                }
            },
            Message::Cancel { job } => {
                let reply = match self.cancel(job).await {
                    Ok(()) => Message::Ok,
                    Err((c, m)) => Message::error(c, m),
                };
                self.reply(conn, id, reply).await;
            }
            Message::Pause { job } | Message::Resume { job } => {
                let pause = matches!(body_kind, "pause");
                let reply = match self.pause(job, pause).await {
                    Ok(()) => Message::Ok,
                    Err((c, m)) => Message::error(c, m),
                };
                self.reply(conn, id, reply).await;
            }
            Message::Claim {
                job,
                frames,
                reason,
            } => {
                let reply = match self.file_claim(job, frames, reason).await {
                    Ok(claim) => Message::ClaimFiled { claim },
                    Err((c, m)) => Message::error(c, m),
                };
                self.reply(conn, id, reply).await;
            }
            other => {
                let m = format!("{} is not a client request", other.kind());
                self.reply(conn, id, Message::error(ErrorCode::UnexpectedMessage, m))
                    .await;
            }
        }
        let _ = client;
    }

    /// Quotes off the manager loop (a probe render takes a while); the
    /// answer comes back as an input.
    fn start_quote(&mut self, conn: ConnId, id: u64, spec: JobSpec, submit: bool) {
        let blobs = self.blobs.clone();
        let prober = self.prober.clone();
        let price = self.cfg.price_per_ibm;
        let inputs = self.inputs.clone();
        tokio::spawn(async move {
            let result = quote(&spec, &*blobs, prober.as_deref(), price).await;
            let _ = inputs.send(Input::Quoted {
                conn,
                id,
                spec: Box::new(spec),
                submit,
                result,
            });
        });
    }

    async fn create_job(
        &mut self,
        conn: ConnId,
        spec: JobSpec,
        quote: Quote,
    ) -> Result<JobId, (ErrorCode, String)> {
        let client = self.peers.get(&conn).map(|p| p.node).unwrap_or(NodeId(0));
        let job_id = JobId::random();
        let tasks = spec
            .split(job_id)
            .map_err(|e| (ErrorCode::InvalidRequest, e.to_string()))?;
        let now = self.now();
        let tasks: Vec<Task> = tasks
            .into_iter()
            .map(|t| Task::new(t.id, t.frames, now))
            .collect();
        let job = Job {
            id: job_id,
            spec,
            state: JobState::Active,
            created_ms: now,
            quoted_price: quote.total_price,
            waiting_reason: None,
            blocklist: Vec::new(),
            history: vec![inferix_core::job::JobStateChange {
                state: JobState::Active,
                at_ms: now,
                note: format!("submitted; quoted {}", quote.total_price),
            }],
        };
        self.store
            .insert_job(&job, &tasks)
            .await
            .map_err(store_err)?;
        let fund = Transaction::transfer(
            format!("fund:{job_id}"),
            now,
            "escrow at submission",
            Account::User(format!("{client}")),
            Account::Job(job_id),
            quote.total_price as i64,
        );
        if let Err(e) = self.store.append_transaction(&fund).await {
            warn!(job = ?job_id, error = %e, "cannot record escrow");
        }
        info!(job = ?job_id, tasks = tasks.len(), price = quote.total_price, "job submitted");
        self.jobs.insert(job_id, job);
        Ok(job_id)
    }

    async fn status(&mut self, job_id: JobId) -> Result<JobStatus, (ErrorCode, String)> {
        let mut job = self
            .store
            .job(job_id)
            .await
            .map_err(store_err)?
            .ok_or((ErrorCode::NotFound, format!("job {job_id} not found")))?;
        // A verification that cannot go on is the job's reason to wait
        // when it has no other.
        if job.waiting_reason.is_none() && !job.state.is_terminal() {
            let stuck = self.round_waiting.iter().filter(|(t, _)| t.job == job_id);
            if let Some((task, why)) = stuck.min_by_key(|(t, _)| **t) {
                job.waiting_reason = Some(format!("verification of task {task} waits: {why}"));
            }
        }
        let counts = self
            .store
            .status_counts(job_id)
            .await
            .map_err(store_err)?
            .into_iter()
            .map(|c| (c.status, c.tasks))
            .collect();
        let tasks = self.store.tasks_of_job(job_id).await.map_err(store_err)?;
        let mut frames: Vec<_> = tasks
            .iter()
            .filter(|t| t.status == TaskStatus::Accepted)
            .filter_map(|t| t.result.as_ref())
            .flat_map(|r| r.frames.clone())
            .collect();
        frames.sort_by_key(|f| f.frame);
        Ok(JobStatus {
            job,
            counts,
            frames,
        })
    }

    /// Pauses (no new leases; running tasks finish) or resumes a job.
    async fn pause(&mut self, job_id: JobId, pause: bool) -> Result<(), (ErrorCode, String)> {
        let mut job = self
            .store
            .job(job_id)
            .await
            .map_err(store_err)?
            .ok_or((ErrorCode::NotFound, format!("job {job_id} not found")))?;
        let (from, to, note) = if pause {
            (JobState::Active, JobState::Paused, "paused by the user")
        } else {
            (JobState::Paused, JobState::Active, "resumed by the user")
        };
        if job.state == to {
            return Ok(());
        }
        if job.state != from {
            return Err((
                ErrorCode::InvalidRequest,
                format!(
                    "job {job_id} is {} and cannot be {}",
                    job.state.as_str(),
                    if pause { "paused" } else { "resumed" }
                ),
            ));
        }
        job.set_state(to, self.now(), note);
        self.waiting.remove(&job_id);
        self.save_job(job).await;
        let reason = if pause {
            "paused by the user"
        } else {
            "resumed"
        };
        self.emit(
            job_id,
            JobEvent::Waiting {
                reason: reason.into(),
            },
        )
        .await;
        Ok(())
    }

    async fn cancel(&mut self, job_id: JobId) -> Result<(), (ErrorCode, String)> {
        let mut job = self
            .store
            .job(job_id)
            .await
            .map_err(store_err)?
            .ok_or((ErrorCode::NotFound, format!("job {job_id} not found")))?;
        if job.state.is_terminal() {
            return Err((
                ErrorCode::InvalidRequest,
                format!("job {job_id} is already {}", job.state.as_str()),
            ));
        }
        job.set_state(JobState::Cancelled, self.now(), "cancelled by the user");
        self.save_job(job).await;
        let now = self.now();
        for mut t in self.store.tasks_of_job(job_id).await.map_err(store_err)? {
            if let Some(l) = t.lease.clone() {
                self.revoke(l.worker, t.id).await;
            }
            if !t.status.is_terminal()
                && t.transition(TaskStatus::Cancelled, now, "job cancelled")
                    .is_ok()
            {
                let _ = self.store.update_task(&mut t).await;
            }
            if self.engine.has_round(t.id) {
                self.round_tasks.remove(&t.id);
                self.round_waiting.remove(&t.id);
                self.engine_defer(EngineEvent::RoundAbandoned { task: t.id });
            }
        }
        self.run_engine_commands().await;
        self.refund_escrow(job_id, "job cancelled: unspent escrow")
            .await;
        self.emit(job_id, JobEvent::Cancelled).await;
        Ok(())
    }

    async fn housekeeping(&mut self) {
        let now = self.now();
        if !self.buffered.is_empty() {
            self.flush_buffered_results().await;
        }
        // Workers that went silent.
        let silent: Vec<ConnId> = self
            .workers
            .values()
            .map(|w| (w.conn, w.last_seen))
            .chain(self.verifiers.values().map(|v| (v.conn, v.last_seen)))
            .filter(|(_, seen)| seen + (self.cfg.heartbeat_timeout.as_millis() as u64) < now)
            .map(|(c, _)| c)
            .collect();
        for c in silent {
            self.drop_peer(c, "heartbeat timeout").await;
        }
        // Leases that ran out (also those of workers attached elsewhere).
        self.adopt_orphaned_verifications(now).await;
        // Workers that stopped making progress on their task.
        let limit = self.cfg.progress_timeout.as_millis() as u64;
        let hung: Vec<(NodeId, TaskId)> = self
            .workers
            .iter()
            .filter_map(|(id, w)| {
                w.task()
                    .filter(|_| w.last_progress + limit <= now)
                    .map(|t| (*id, t))
            })
            .collect();
        for (worker, task) in hung {
            warn!(?worker, ?task, "no progress; task taken back");
            self.count_failure(task.job, worker).await;
            self.revoke(worker, task).await;
            self.requeue(
                task,
                worker,
                true,
                &format!("no progress for {} s", self.cfg.progress_timeout.as_secs()),
            )
            .await;
        }
        if let Ok(expired) = self.store.expired_leases(now, 1000).await {
            for t in expired {
                if let Some(l) = &t.lease {
                    let worker = l.worker;
                    self.revoke(worker, t.id).await;
                    self.requeue(t.id, worker, false, "lease expired").await;
                }
            }
        }
        // Verifiers that did not answer in time are replaced.
        self.engine_event(EngineEvent::Tick).await;
    }

    /// Verifications whose round no live manager holds (its manager
    /// crashed, or this one restarted) go back to `Rendered`, so that any
    /// manager of the store verifies them again. A round is presumed lost
    /// after twice the verification timeout; should its manager still
    /// settle it, the store's compare-and-set lets only one verdict land.
    async fn adopt_orphaned_verifications(&mut self, now: u64) {
        let Ok(verifying) = self
            .store
            .tasks_in_status(TaskStatus::Verifying, 1000)
            .await
        else {
            return;
        };
        let lost_after = 2 * self.cfg.verification_timeout.as_millis() as u64;
        for mut t in verifying {
            if self.engine.has_round(t.id) {
                continue;
            }
            let orphaned = t
                .entered(TaskStatus::Verifying)
                .is_none_or(|at| at + lost_after <= now);
            if orphaned
                && t.transition(
                    TaskStatus::Rendered,
                    now,
                    "verification round lost; verifying again",
                )
                .is_ok()
                && self.store.update_task(&mut t).await.is_ok()
            {
                info!(task = ?t.id, "orphaned verification adopted");
            }
        }
    }

    /// Offers queued tasks to idle workers and rendered results to verifiers.
    async fn dispatch(&mut self) {
        self.dispatch_renders().await;
        self.dispatch_verifications().await;
    }

    async fn dispatch_renders(&mut self) {
        // Each pass leases from one read of the queue head; a full read
        // that leased something may hide more work behind it.
        loop {
            let idle = self.workers.idle_count();
            if idle == 0 && !self.workers.is_empty() {
                return;
            }
            let limit = (idle * 2).clamp(16, 1024);
            let queued = match self.store.tasks_in_status(TaskStatus::Queued, limit).await {
                Ok(q) => q,
                Err(e) => {
                    warn!(error = %e, "cannot read the queue; not dispatching");
                    return;
                }
            };
            let full = queued.len() == limit;
            let drained = queued.is_empty();
            let leased = self.dispatch_batch(queued).await;
            if full && leased > 0 {
                continue;
            }
            // Moves are for the tail: nothing queued, workers left idle.
            if drained && self.cfg.finish_time_aware && self.workers.idle_count() > 0 {
                self.move_stragglers().await;
            }
            return;
        }
    }

    /// With workers idle and nothing queued for them, a task running on a
    /// much slower worker is moved to an idle faster one when that one is
    /// expected to finish it sooner from scratch: at the end of a job the
    /// slowest machines otherwise set its completion time. Only the job's
    /// measured work per frame is used, and only clear gains count.
    async fn move_stragglers(&mut self) {
        /// Idle workers considered per dispatch.
        const MAX_MOVES: usize = 16;
        let now = self.now();
        let busy_count = self.workers.busy_count();
        if busy_count == 0 || busy_count > MAX_BUSY_COMPARED {
            return;
        }
        // A move must win back more than a tick; frames that render in
        // less than that at IB 1 cannot pay for one.
        let longest_frame = self.estimates.longest_frame();
        if longest_frame < self.cfg.tick.as_millis() as f64 {
            return;
        }
        let mut idle: Vec<WorkerInfo> = self
            .workers
            .idle()
            .map(|w| w.info.clone())
            .take(MAX_MOVES * 4)
            .collect();
        // Fastest first: they gain the most.
        idle.sort_by(|a, b| b.ib.total_cmp(&a.ib));
        idle.truncate(MAX_MOVES);
        for fast in idle {
            let tick = self.cfg.tick.as_millis() as u64;
            let Some((slow, task_id)) =
                self.estimates
                    .straggler_for(&self.workers, &fast, now, tick)
            else {
                continue;
            };
            let Ok(Some(task)) = self.store.task(task_id).await else {
                continue;
            };
            let Some(job) = self.job(task_id.job).await else {
                continue;
            };
            let excluded = excluded_workers(&task, &job);
            let demand = TaskDemand {
                task: task_id,
                min_ib: job.spec.min_ib,
                tags: &job.spec.tags,
                excluded: &excluded,
            };
            // One attempt is kept in reserve so a move never fails a task.
            if job.state != JobState::Active
                || !is_eligible(&demand, &fast)
                || task.attempts + 1 >= self.cfg.max_attempts
            {
                continue;
            }
            info!(task = ?task_id, ?slow, fast = ?fast.id, "task moved to a faster idle worker");
            self.revoke(slow, task_id).await;
            self.requeue(task_id, slow, false, "moved to a faster idle worker")
                .await;
            match self.store.task(task_id).await {
                Ok(Some(t)) if t.status == TaskStatus::Queued => {
                    self.lease_to(t, &job, fast.id).await;
                }
                _ => {}
            }
        }
    }

    /// Leases what it can of `queued` (in queue order); returns how many.
    async fn dispatch_batch(&mut self, queued: Vec<Task>) -> usize {
        let window = self.cfg.scheduler_candidates.max(1);
        let mut candidates: Vec<WorkerInfo> = Vec::new();
        // Busy workers already promised a held task, with when they are
        // then expected to be free.
        let mut promised: HashMap<NodeId, u64> = HashMap::new();
        let mut leased = 0;
        // Queued tasks come grouped by job: look each job up once.
        let mut current: Option<Job> = None;
        for task in queued {
            if current.as_ref().map(|j| j.id) != Some(task.id.job) {
                current = self.job(task.id.job).await;
            }
            let Some(job) = current.as_ref() else {
                continue;
            };
            if job.state != JobState::Active {
                continue;
            }
            let excluded = excluded_workers(&task, job);
            let demand = TaskDemand {
                task: task.id,
                min_ib: job.spec.min_ib,
                tags: &job.spec.tags,
                excluded: &excluded,
            };
            if !self.workers.values().any(|w| is_eligible(&demand, &w.info)) {
                let reason = if self.workers.is_empty() {
                    "no worker connected".to_string()
                } else {
                    format!(
                        "no connected worker meets the job's requirements (minimum IB {}, tags {:?}); best IB is {:.2}",
                        job.spec.min_ib,
                        job.spec.tags,
                        self.workers.values().map(|w| w.info.ib).fold(0.0, f64::max)
                    )
                };
                let job = job.clone();
                self.mark_waiting(job, reason).await;
                // The job's record changed (its waiting reason).
                current = None;
                continue;
            }
            if self.workers.idle_count() == 0 {
                break;
            }
            if candidates.is_empty() {
                candidates = self
                    .workers
                    .idle()
                    .take(window)
                    .map(|w| w.info.clone())
                    .collect();
            }
            let mut choice = self.scheduler.choose(&demand, &candidates);
            if choice.is_none() && self.workers.idle_count() > candidates.len() {
                // None of the longest-idle workers may take it; others may.
                let wider: Vec<WorkerInfo> = self
                    .workers
                    .idle()
                    .filter(|w| is_eligible(&demand, &w.info))
                    .take(window)
                    .map(|w| w.info.clone())
                    .collect();
                choice = self.scheduler.choose(&demand, &wider);
            }
            let Some(worker) = choice else {
                continue;
            };
            let Some(info) = self
                .workers
                .get(&worker)
                .filter(|w| w.task().is_none() && is_eligible(&demand, &w.info))
                .map(|w| w.info.clone())
            else {
                warn!(?worker, "scheduler chose an ineligible worker; ignored");
                continue;
            };
            if self.cfg.finish_time_aware {
                if let Some((faster, free_at)) = self.estimates.sooner_busy_worker(
                    &self.workers,
                    &demand,
                    task.frames.len(),
                    &info,
                    &promised,
                    self.clock.now_ms(),
                    self.cfg.tick.as_millis() as u64,
                ) {
                    debug!(task = ?task.id, slow = ?worker, ?faster, "held for a faster worker");
                    promised.insert(faster, free_at);
                    continue;
                }
            }
            if self.lease_to(task, job, worker).await {
                leased += 1;
                candidates.retain(|w| w.id != worker);
                if self.waiting.remove(&job.id) {
                    let mut j = job.clone();
                    j.waiting_reason = None;
                    self.save_job(j).await;
                    current = None;
                }
            }
        }
        leased
    }

    /// A busy worker expected to finish a task of `frames` frames of
    /// `demand`'s job sooner than idle `chosen` would, counting the task it
    /// is on (and any task already held for it in `promised`), with when
    /// it would then be free. `None` when the job's work is not measured
    /// yet, when the difference is within the noise of the estimate, or
    /// when too many workers are busy to compare cheaply.
    async fn mark_waiting(&mut self, mut job: Job, reason: String) {
        if self.waiting.insert(job.id) || job.waiting_reason.as_deref() != Some(&reason) {
            job.waiting_reason = Some(reason.clone());
            let id = job.id;
            self.save_job(job).await;
            self.emit(id, JobEvent::Waiting { reason }).await;
        }
    }

    async fn lease_to(&mut self, mut task: Task, job: &Job, worker: NodeId) -> bool {
        let now = self.now();
        if self.workers.get(&worker).is_none_or(|w| w.task().is_some()) {
            return false;
        }
        let deadline_ms = now + self.cfg.lease.as_millis() as u64;
        if task
            .lease(
                Lease {
                    worker,
                    manager: self.id,
                    deadline_ms,
                    scene: None,
                },
                now,
            )
            .is_err()
        {
            return false;
        }
        match self.store.update_task(&mut task).await {
            Ok(()) => {}
            Err(StoreError::Conflict { .. }) => return false,
            Err(e) => {
                warn!(task = ?task.id, error = %e, "cannot lease");
                return false;
            }
        }
        if !self.workers.assign(worker, task.id, task.frames.len(), now) {
            return false;
        }
        if let Some(marker) = self.watermarker_for(job) {
            // The offer waits for the lease's watermarked copy; the worker
            // stays reserved meanwhile.
            self.spawn_preparation(marker, &task, job, worker);
            return true;
        }
        self.offer(&task, job, worker, job.spec.scene.clone()).await;
        true
    }

    fn watermarker_for(&self, job: &Job) -> Option<Arc<dyn SceneWatermarker>> {
        self.por.as_ref()?;
        self.watermarkers
            .iter()
            .find(|w| w.formats().contains(&job.spec.scene.format))
            .cloned()
    }

    async fn offer(&mut self, task: &Task, job: &Job, worker: NodeId, scene: SceneRef) {
        let now = self.now();
        let Some(conn) = self.workers.get_mut(&worker).map(|w| {
            w.last_progress = now;
            w.conn
        }) else {
            return;
        };
        let Some(lease) = &task.lease else { return };
        let offer = TaskAssignment {
            task: task.id,
            frames: task.frames.clone(),
            scene,
            settings: job.spec.settings.clone(),
            format: job.spec.format,
            deadline_ms: lease.deadline_ms,
            attempt: task.attempts,
        };
        debug!(task = ?task.id, ?worker, "leased");
        self.send(conn, Envelope::push(Message::TaskOffer(offer)))
            .await;
    }

    /// Makes the scene copy of one lease in the background: the lease's
    /// patches inserted by `marker`, uploaded as a blob of its own.
    fn spawn_preparation(
        &self,
        marker: Arc<dyn SceneWatermarker>,
        task: &Task,
        job: &Job,
        worker: NodeId,
    ) {
        let Some(por) = &self.por else { return };
        let settings = job.spec.settings.clone();
        let patches =
            patches_for_lease(por, task.id, task.attempts, settings.width, settings.height);
        let (task_id, attempt) = (task.id, task.attempts);
        let scene = job.spec.scene.clone();
        let blobs = self.blobs.clone();
        let dir = self.prep_dir.clone();
        let inputs = self.inputs.clone();
        tokio::spawn(async move {
            let prepared = async {
                let plain_dir = dir.join(scene.blob.to_hex());
                tokio::fs::create_dir_all(&plain_dir)
                    .await
                    .map_err(|e| format!("cannot create {}: {e}", plain_dir.display()))?;
                let plain = plain_dir.join(crate::safe_file_name(&scene.file_name));
                if !plain.exists() {
                    blobs
                        .get_to_file(scene.blob, &plain)
                        .await
                        .map_err(|e| format!("cannot fetch the scene: {e}"))?;
                }
                // Keep the extension: some tools read the format from it.
                let out = plain_dir.join(format!(
                    "lease-{task_id}-{attempt}-{}",
                    crate::safe_file_name(&scene.file_name)
                ));
                marker
                    .watermark(&plain, &patches, &settings, &out)
                    .await
                    .map_err(|e| format!("cannot watermark the scene: {e}"))?;
                let stored = blobs
                    .put_file(&out)
                    .await
                    .map_err(|e| format!("cannot store the watermarked scene: {e}"));
                let _ = tokio::fs::remove_file(&out).await;
                stored.map(|m| m.hash)
            }
            .await;
            let _ = inputs.send(Input::Prepared {
                task: task_id,
                attempt,
                worker,
                scene: prepared,
            });
        });
    }

    async fn on_prepared(
        &mut self,
        task_id: TaskId,
        attempt: u32,
        worker: NodeId,
        scene: Result<ContentHash, String>,
    ) {
        let Ok(Some(mut task)) = self.store.task(task_id).await else {
            return;
        };
        let current = task.status == TaskStatus::Leased
            && task.attempts == attempt
            && task.lease.as_ref().is_some_and(|l| l.worker == worker);
        if !current {
            debug!(task = ?task_id, attempt, "prepared scene of a lease that ended; dropped");
            return;
        }
        let blob = match scene {
            Ok(b) => b,
            Err(why) => {
                warn!(task = ?task_id, %why, "lease preparation failed");
                self.release_worker(worker, task_id);
                self.requeue(task_id, worker, false, &why).await;
                return;
            }
        };
        if let Some(l) = task.lease.as_mut() {
            l.scene = Some(blob);
        }
        if let Err(e) = self.store.update_task(&mut task).await {
            debug!(task = ?task_id, error = %e, "lease changed while preparing; dropped");
            return;
        }
        let Some(job) = self.job(task_id.job).await else {
            return;
        };
        let scene = SceneRef {
            blob,
            ..job.spec.scene.clone()
        };
        self.offer(&task, &job, worker, scene).await;
    }

    /// The minimum stake S = 2 · E · IB · P of a worker of index `ib`.
    fn minimum_stake(&self, ib: f64) -> i64 {
        economy::minimum_stake(&self.economy(), ib)
    }

    /// Checks (or, when the operator grants stakes, posts) a worker's stake.
    async fn ensure_stake(&mut self, worker: NodeId, ib: f64) -> Result<(), String> {
        if self.minimum_stake(ib) <= 0 {
            return Ok(());
        }
        let ledger = |e: StoreError| format!("cannot read the ledger: {e}");
        let have = self
            .store
            .balance(&Account::Stake(worker))
            .await
            .map_err(ledger)?;
        if have >= self.minimum_stake(ib) {
            return Ok(());
        }
        let granted = self
            .store
            .transaction(&economy::stake_grant_id(worker))
            .await
            .map_err(ledger)?
            .is_some();
        match economy::stake_decision(&self.economy(), worker, ib, have, granted, self.now()) {
            StakeDecision::Enough => Ok(()),
            StakeDecision::Refuse(why) => Err(why),
            StakeDecision::Grant(tx) => match self.store.append_transaction(&tx).await {
                Ok(()) | Err(StoreError::AlreadyExists { .. }) => Ok(()),
                Err(e) => Err(format!("cannot record the stake: {e}")),
            },
        }
    }

    async fn dispatch_verifications(&mut self) {
        if self.verifiers.is_empty() {
            return;
        }
        let rendered = match self.store.tasks_in_status(TaskStatus::Rendered, 64).await {
            Ok(r) => r,
            Err(_) => return,
        };
        for mut t in rendered {
            let Some(worker) = t.result.as_ref().map(|r| r.worker) else {
                continue;
            };
            if t.transition(TaskStatus::Verifying, self.now(), "sent to verifiers")
                .is_err()
            {
                continue;
            }
            if self.store.update_task(&mut t).await.is_err() {
                continue;
            }
            self.start_round(worker, t).await;
        }
    }

    /// Opens the verification round of `t` (just written as `Verifying`):
    /// the engine picks its verifiers.
    async fn start_round(&mut self, worker: NodeId, t: Task) {
        let id = t.id;
        let needs_renderer = match self.verification_plan(&t).await {
            Some((_, plan)) => plan.is_some_and(|p| !p.challenges.is_empty()),
            None => false,
        };
        self.round_tasks.insert(id, t);
        self.engine_event(EngineEvent::RoundOpened {
            task: id,
            worker,
            needs_renderer,
        })
        .await;
    }

    /// The job of `task` and the Proof-of-Render checks of its result.
    async fn verification_plan(
        &mut self,
        task: &Task,
    ) -> Option<(Job, Option<inferix_core::por::plan::VerificationPlan>)> {
        let job = self.job(task.id.job).await?;
        let result = task.result.as_ref()?;
        let (width, height) = (job.spec.settings.width, job.spec.settings.height);
        let watermarked =
            result.scene != job.spec.scene.blob && self.watermarker_for(&job).is_some();
        let plan = self
            .por
            .as_ref()
            .map(|por| plan_verification(por, task.id, result, width, height, watermarked));
        Some((job, plan))
    }

    /// Sends `task_id`'s result to `verifier` as verification
    /// `verification`; false when the task or its result is gone, or the
    /// verifier is no longer connected.
    async fn offer_verification(
        &mut self,
        verifier: NodeId,
        verification: u64,
        task_id: TaskId,
    ) -> bool {
        let task = match self.round_tasks.get(&task_id) {
            Some(t) => t.clone(),
            None => match self.store.task(task_id).await {
                Ok(Some(t)) => t,
                _ => return false,
            },
        };
        let Some(conn) = self.verifiers.get(&verifier).map(|v| v.conn) else {
            return false;
        };
        let Some((job, plan)) = self.verification_plan(&task).await else {
            return false;
        };
        let Some(result) = task.result else {
            return false;
        };
        let offer = VerificationAssignment {
            verification,
            task: task_id,
            frames: result.frames.clone(),
            width: job.spec.settings.width,
            height: job.spec.settings.height,
            format: job.spec.format,
            watermark: plan
                .as_ref()
                .map(|p| p.watermark.clone())
                .unwrap_or_default(),
            watermark_threshold: self.por.as_ref().map_or(0.0, |p| p.threshold),
            challenges: plan
                .as_ref()
                .map(|p| p.challenges.clone())
                .unwrap_or_default(),
            scene: plan.as_ref().map(|_| SceneRef {
                blob: result.scene,
                ..job.spec.scene.clone()
            }),
            settings: job.spec.settings.clone(),
            worker_device_class: result.device_class.clone(),
            crop_tolerance: self.por.as_ref().map_or(0, |p| p.crop_tolerance),
        };
        self.send(conn, Envelope::push(Message::VerifyOffer(offer)))
            .await;
        true
    }
}

/// Validates a spec, checks its scene exists, and prices it.
async fn quote(
    spec: &JobSpec,
    blobs: &dyn BlobStore,
    prober: Option<&Prober>,
    price_per_ibm: u64,
) -> Result<Quote, (ErrorCode, String)> {
    spec.validate()
        .map_err(|e| (ErrorCode::InvalidRequest, e.to_string()))?;
    match blobs.contains(spec.scene.blob).await {
        Ok(true) => {}
        Ok(false) => {
            return Err((
                ErrorCode::NotFound,
                format!(
                    "scene {} not found in blob storage; upload it first",
                    spec.scene.blob
                ),
            ))
        }
        Err(e) => return Err((ErrorCode::Unavailable, e.to_string())),
    }
    let s = &spec.settings;
    let seconds_per_frame = match prober {
        Some(p) => p.seconds_per_frame(spec, blobs).await.map_err(|e| {
            (
                ErrorCode::InvalidRequest,
                format!("probe render failed: {e}"),
            )
        })?,
        None => s.width as f64 * s.height as f64 * s.samples as f64 * SECONDS_PER_PIXEL_SAMPLE,
    };
    let frames = spec.frames.len();
    let estimated_ibm = seconds_per_frame * frames as f64 / 60.0;
    let tasks = frames.div_ceil(spec.chunk_size as u64);
    Ok(Quote {
        estimated_ibm,
        price_per_ibm,
        total_price: (estimated_ibm * price_per_ibm as f64).ceil() as u64,
        frames,
        tasks,
    })
}
