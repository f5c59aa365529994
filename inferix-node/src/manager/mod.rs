//! The manager node: admits workers, verifiers and clients, quotes and
//! splits jobs, leases tasks, routes results to verifiers, credits accepted
//! frames and tells watchers.
//!
//! One actor task owns all in-memory state (who is connected, who is busy);
//! the [`TaskStore`] owns the truth. Every change of a task is a
//! compare-and-set on the store, so a crashed manager loses nothing and
//! several managers on one store never hand one task to two workers.
//!
//! The rules that are already free of I/O live in `inferix-manager`'s
//! engine (verification rounds, claims, admission, ledger rules, the worker
//! pool, finish-time estimates); this module drives it: it feeds it events,
//! carries out its commands against the store, the blob store and the
//! transport, and keeps the rest of the manager, one concern per child
//! module. Each peer's messages go through a bounded queue of its own
//! (`outbound`), so the loop never waits on a peer.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use inferix_core::account::AccountRecord;
use inferix_core::blob::{BlobStore, BlobStoreExt};
use inferix_core::ids::{JobId, NodeId, TaskId};
use inferix_core::job::SceneRef;
use inferix_core::job::{Job, JobSpec, JobState};
use inferix_core::ledger::{Account, Transaction};
use inferix_core::por::plan::{
    patches_for_lease, patches_for_lease_in, plan_checks, plan_verification,
};
use inferix_core::por::prepare::{PorConfig, SceneWatermarker};
use inferix_core::protocol::{
    Envelope, ErrorCode, FailureCause, Hello, JobEvent, JobStatus, Message, Quote, Role,
    TaskAssignment, Verdict, VerificationAssignment, PROTOCOL_VERSION,
};
use inferix_core::renderer::{
    RenderError, RenderRequest, RenderSettings, RenderWarning, Renderer, SceneInspector,
};
use inferix_core::scheduler::{
    is_eligible, Scheduler, TaskDemand, WeightedRandomScheduler, WorkerInfo,
};
use inferix_core::store::{StatusCount, StoreError, TaskStore};
use inferix_core::task::{Fault, Lease, Task, TaskStatus};
use inferix_core::time::{SharedClock, SystemClock};
use inferix_core::ContentHash;
use inferix_manager::admission::{check_hello, AdmissionConfig};
use inferix_manager::claims::{claim_checks, ClaimCheck, ClaimVerdict};
use inferix_manager::dispatch::excluded_workers;
use inferix_manager::economy::{self, EconomyConfig, StakeDecision};
use inferix_manager::estimates::{Estimates, MAX_BUSY_COMPARED};
use inferix_manager::results::FailureCounts;
use inferix_manager::workers::WorkerPool;
use inferix_manager::{Command as EngineCommand, Engine, Event as EngineEvent, RoundConfig};
use inferix_transport::{Connection, Listener, MessageSender, Transport, TransportError};
use tokio::sync::{broadcast, mpsc, watch};
use tracing::{debug, info, warn};

use crate::blob_access::BlobAccess;
use crate::blob_service::BlobService;
use crate::outbound::{Outbound, Refused, OUTBOUND_CAPACITY};
use crate::NodeError;

mod accept;
mod admission;
mod arbitration;
pub mod blob_sweep;
mod builder;
mod claims;
mod collect;
mod config;
mod delivery;
mod dispatch;
mod forced;
mod gauges;
mod group_commit;
mod housekeeping;
mod journal;
mod ledger;
mod listings;
mod metered_store;
pub mod metrics;
mod operators;
mod outputs;
mod peers;
mod prepare;
mod probe;
mod quote;
mod recall;
mod reconcile;
mod requests;
mod results;
mod stitch;
mod storage;
mod verification;

use accept::accept_loop;
pub use builder::{ManagerBuilder, ManagerHandle, ManagerNode};
pub use config::ManagerConfig;
use quote::{quote, Prober, WatermarkTrial};

/// Inputs waiting for the manager loop. When it is full, each connection's
/// reader waits its turn (tokio's channel serves waiting senders in
/// order) and stops reading meanwhile, so QUIC flow control slows a
/// flooding peer down at its own end instead of the queue growing.
const INPUT_CAPACITY: usize = 4_096;

type ConnId = u64;

enum Input {
    Connected(ConnId, NodeId, Arc<dyn MessageSender>),
    /// Boxed: envelopes (job specs with their render settings) are far
    /// larger than the other inputs.
    Received(ConnId, Box<Envelope>),
    Disconnected(ConnId),
    /// The blob store failed an upload (see `storage.rs`).
    StorageFailed(String),
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
    /// The manager's own render of a node's admission probe.
    ProbeExpected {
        conn: ConnId,
        image: Result<inferix_core::image::Rgb8Image, String>,
        /// How long the manager's renderer took (ms).
        elapsed_ms: u64,
    },
    /// A lease's watermarked scene copy is ready (or could not be made).
    Prepared {
        task: TaskId,
        attempt: u32,
        worker: NodeId,
        scene: Result<ContentHash, String>,
    },
    /// The manager's own check of a disputed or recalled result (see
    /// `arbitration.rs`).
    OwnCheck {
        task: TaskId,
        kind: arbitration::OwnCheck,
        outcome: Option<(bool, Vec<String>)>,
    },
    /// One output of a completed job was made and stored, or could not
    /// be (see `outputs.rs`).
    OutputMade {
        job: JobId,
        request: inferix_core::outputs::OutputRequest,
        result: Result<(ContentHash, u64), String>,
    },
}

struct Peer {
    node: NodeId,
    role: Option<Role>,
    /// The account a client acts as, once admitted.
    account: Option<AccountRecord>,
    /// The public id of the API key it presented (none for the guest).
    key_id: Option<String>,
    /// When its account was last read from the store.
    account_read: u64,
    /// The account that runs this worker or verifier, when it joined with
    /// one of the account's API keys.
    operator: Option<String>,
    /// The index its stake is sized by (workers: their IB; verifiers: 1).
    stake_ib: f64,
    /// Its hello, held while it renders its admission probe.
    probing: Option<Box<probe::PendingProbe>>,
    out: Outbound,
    /// Jobs this connection watches.
    watching: usize,
}

/// A verifier's connection; its load and reputation are the engine's.
struct VerifierConn {
    conn: ConnId,
    last_seen: u64,
    /// Its renderer's device class (clean pixels compare exactly within
    /// one class).
    device_class: String,
}

impl ManagerNode {
    /// Listens and spawns the manager loop.
    pub async fn start(self) -> Result<ManagerHandle, NodeError> {
        let b = self.b;
        let mut listener = b.transport.listen(&b.config.listen).await?;
        let addr = listener.local_addr();
        let id = b.transport.local_id();
        let (in_tx, in_rx) = mpsc::channel(INPUT_CAPACITY);
        let (sd_tx, sd_rx) = watch::channel(false);
        let (events, _) = broadcast::channel(4096);
        let (collected_tx, blobs_collected) = watch::channel(0u64);
        let busy_ns = Arc::new(AtomicU64::new(0));
        let acceptor_tx = in_tx.clone();
        let access = BlobAccess::default();
        let metrics: metrics::SharedMetrics = Arc::default();
        let handle_metrics = metrics.clone();
        let (acc_blobs, acc_access, acc_metrics) =
            (b.blobs.clone(), access.clone(), metrics.clone());
        let hello_timeout = b.config.hello_timeout;
        let acceptor = tokio::spawn(async move {
            accept_loop(
                &mut *listener,
                acceptor_tx,
                acc_blobs,
                acc_access,
                acc_metrics,
                hello_timeout,
            )
            .await
        });
        let engine = Engine::new(RoundConfig {
            quorum: b.config.quorum.max(1),
            vote_timeout_ms: b.config.verification_timeout.as_millis() as u64,
            reputation_penalty: b.config.reputation_penalty,
            // Fresh for each run: who verifies what cannot be predicted
            // from outside, nor ground by choosing node ids.
            draw_key: rand::random(),
            // Known-bad results are built from Proof-of-Render leases.
            forced_errors: inferix_manager::ForcedErrorConfig {
                rate: if b.por.is_some() {
                    b.config.forced_error_rate
                } else {
                    0.0
                },
            },
            // A caught worker's passed results are checked again while
            // their frames may still be claimed.
            recall: inferix_manager::RecallConfig {
                window_ms: b.config.claim_window.as_millis() as u64,
                ..Default::default()
            },
            // Only a manager with a renderer of its own can audit, and
            // only Proof of Render gives it crops to check.
            audit: inferix_manager::AuditConfig {
                rate: if b.prober.is_some() && b.por.is_some() {
                    b.config.probation_audit
                } else {
                    0.0
                },
                ..Default::default()
            },
            ..RoundConfig::default()
        });
        let mut state = State {
            id,
            cfg: b.config,
            store: Arc::new(metered_store::MeteredStore::new(b.store, metrics.clone())),
            metrics: metrics.clone(),
            disabled: HashSet::new(),
            next_metrics_refresh: 0,
            blobs: b.blobs,
            scheduler: b.scheduler,
            clock: b.clock,
            por: b.por,
            watermarkers: b.watermarkers,
            inspectors: b.inspectors,
            prep_dir: b.scratch.join("prepared"),
            next_copy_sweep: 0,
            sweeping: None,
            next_blob_sweep: 0,
            blob_sweeping: None,
            blobs_collected: collected_tx,
            journal: journal::ResultJournal::new(b.scratch.join("results-journal")),
            prober: b.prober.map(|(r, ib)| {
                Arc::new(Prober {
                    renderer: r,
                    ib,
                    scratch: b.scratch,
                    cache: Mutex::default(),
                })
            }),
            probe_scene: b.probe_scene,
            observed_classes: HashMap::new(),
            inputs: in_tx,
            access,
            peers: HashMap::new(),
            workers: WorkerPool::default(),
            estimates: Estimates::default(),
            verifiers: BTreeMap::new(),
            watchers: HashMap::new(),
            engine,
            round_tasks: HashMap::new(),
            batch: group_commit::Batched::default(),
            check_levels: HashMap::new(),
            recently_accepted: std::collections::VecDeque::new(),
            round_waiting: HashMap::new(),
            clean_votes: HashMap::new(),
            watermark_trials: Arc::default(),
            engine_commands: Default::default(),
            next_claim: 1,
            failures: FailureCounts::default(),
            leases_before_restart: HashMap::new(),
            unfinished: HashSet::new(),
            storage_outage: None,
            buffered: Vec::new(),
            jobs: HashMap::new(),
            waiting: HashSet::new(),
            events: events.clone(),
            busy_ns: busy_ns.clone(),
        };
        info!(%addr, manager = ?id, "manager listening");
        let stop_accepting = acceptor.abort_handle();
        let task = tokio::spawn(async move {
            state.recover().await;
            state.run(in_rx, sd_rx).await;
            stop_accepting.abort();
        });
        Ok(ManagerHandle {
            addr,
            id,
            metrics: handle_metrics,
            shutdown: sd_tx,
            task,
            accepting: acceptor,
            events,
            busy_ns,
            blobs_collected,
        })
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
    /// The admission probe's scene, when nodes are probed.
    probe_scene: Option<Arc<Vec<u8>>>,
    /// The device class each probed node's pixels matched: its results
    /// are compared as that class, not the one it claims.
    observed_classes: HashMap<NodeId, String>,
    por: Option<PorConfig>,
    watermarkers: Vec<Arc<dyn SceneWatermarker>>,
    inspectors: Vec<Arc<dyn SceneInspector>>,
    prep_dir: PathBuf,
    /// When finished jobs are next looked at for lease copies to remove,
    /// and the sweep under way.
    next_copy_sweep: u64,
    sweeping: Option<tokio::task::JoinHandle<()>>,
    /// When blobs no job names are next swept, and the sweep under way.
    next_blob_sweep: u64,
    blob_sweeping: Option<tokio::task::JoinHandle<()>>,
    /// Blobs removed by those sweeps so far.
    blobs_collected: watch::Sender<u64>,
    inputs: mpsc::Sender<Input>,
    /// Admitted connections and the blobs each may read.
    access: BlobAccess,
    metrics: metrics::SharedMetrics,
    /// Nodes an operator disabled: refused at hello until enabled.
    disabled: HashSet<NodeId>,
    /// When the gauges that read the store are next refreshed.
    next_metrics_refresh: u64,
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
    /// Writes held for the end of the batch of inputs.
    batch: group_commit::Batched,
    /// How hard each open round's result is checked, fixed when the round
    /// opens so that every verifier of it gets the same plan.
    check_levels: HashMap<TaskId, inferix_manager::operators::CheckLevel>,
    /// The latest accepted tasks, newest last, with the verifiers that
    /// voted on them: the material known-bad results are built from (see
    /// `forced.rs`).
    recently_accepted: std::collections::VecDeque<(TaskId, Vec<NodeId>)>,
    /// Why open rounds wait, for the job's status.
    round_waiting: HashMap<TaskId, String>,
    /// Clean pixels sent with passing verdicts of open rounds (clean
    /// delivery), until the round settles.
    clean_votes: HashMap<TaskId, Vec<(NodeId, Vec<inferix_core::protocol::CleanCrop>)>>,
    /// Scenes and frame sizes whose trial watermark at submission passed.
    watermark_trials: Arc<Mutex<HashSet<(ContentHash, u32, u32)>>>,
    /// Engine commands not carried out yet.
    engine_commands: std::collections::VecDeque<EngineCommand>,
    /// Claim re-renders in flight, by verification id.
    next_claim: u64,
    /// Failures per job and worker, for the job blocklist.
    failures: FailureCounts,
    /// Leases this manager granted before it restarted, by worker, until
    /// the worker says hello again (see `reconcile.rs`).
    leases_before_restart: HashMap<NodeId, Vec<TaskId>>,
    /// Jobs whose every task may be accepted but which are not completed:
    /// a tile job whose stitching failed, or found so after a restart.
    /// Housekeeping finishes them (see `stitch.rs`).
    unfinished: HashSet<JobId>,
    /// Set while the blob store refuses writes (see `storage.rs`).
    storage_outage: Option<storage::StorageOutage>,
    /// Results that arrived while the task database was unavailable.
    buffered: Vec<(TaskId, NodeId, inferix_core::task::TaskResult)>,
    /// The same results on disk, until the database records them.
    journal: journal::ResultJournal,
    jobs: HashMap<JobId, Job>,
    /// Measured work per frame of each job: milliseconds at IB 1.0.
    estimates: Estimates,
    waiting: HashSet<JobId>,
    events: broadcast::Sender<(JobId, JobEvent)>,
    /// See [`ManagerHandle::busy_time`].
    busy_ns: Arc<AtomicU64>,
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

    async fn run(
        &mut self,
        mut inputs: mpsc::Receiver<Input>,
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
                    self.check_signatures();
                    self.flush_results().await;
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
        // What the manager hands a peer (a lease's scene, a verification's
        // frames, a job's accepted frames) it may then read.
        self.access.grant_named_in(conn, &env.body);
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
        self.metrics
            .events
            .get_or_create(&metrics::ManagerMetrics::kind(event.kind()))
            .inc();
        let _ = self.events.send((job, event.clone()));
        // Nothing follows a failure or a cancellation: its watchers are
        // let go (a completed job may still see claims settled).
        let last = matches!(event, JobEvent::Failed { .. } | JobEvent::Cancelled);
        let conns = if last {
            let conns = self.watchers.remove(&job).unwrap_or_default();
            for c in &conns {
                if let Some(p) = self.peers.get_mut(c) {
                    p.watching = p.watching.saturating_sub(1);
                }
            }
            conns
        } else {
            self.watchers.get(&job).cloned().unwrap_or_default()
        };
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
        // Finished jobs are read from the store when asked for: keeping
        // them would grow the cache with every job the manager ever ran.
        if !j.state.is_terminal() {
            self.jobs.insert(id, j.clone());
        }
        Some(j)
    }

    async fn save_job(&mut self, job: Job) {
        match self.store.update_job(&job).await {
            Ok(()) if job.state.is_terminal() => {
                // The store has it; what was kept for running it goes.
                self.jobs.remove(&job.id);
                self.failures.forget_job(job.id);
            }
            Ok(()) => {
                self.jobs.insert(job.id, job);
            }
            Err(e) => {
                warn!(job = ?job.id, error = %e, "cannot save job");
                self.jobs.insert(job.id, job);
            }
        }
    }
}
