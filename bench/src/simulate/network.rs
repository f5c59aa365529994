//! The simulated network: workers, verifiers and managers as a few bytes
//! of state each, one event queue over a virtual clock, and in every
//! manager the rules the manager node runs.
//!
//! Each manager holds the engine's state ([`Engine`] for verification
//! rounds, [`WorkerPool`] and [`Estimates`] for dispatch) and carries out
//! what the engine decides: [`dispatch::plan`] picks who leases what,
//! [`Engine::handle`] opens, escalates, times out and settles rounds, and
//! [`economy`] writes stakes, payments, slashes, rewards and refunds. What
//! this file adds is only what a driver adds: messages (delayed, lost),
//! rendering and verifying (modelled durations), crashes, and the store
//! writes the commands ask for.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet, VecDeque};

use inferix_core::ids::{JobId, NodeId, TaskId};
use inferix_core::job::{FrameRange, Job, JobSpec, JobState, SceneRef};
use inferix_core::ledger::{Account, Transaction};
use inferix_core::protocol::Verdict;
use inferix_core::renderer::SceneFormat;
use inferix_core::scheduler::{WeightedRandomScheduler, WorkerInfo};
use inferix_core::store::{Change, MemoryTaskStore, StoreError, TaskStore};
use inferix_core::task::{Fault, FrameOutput, Lease, Task, TaskResult, TaskStatus};
use inferix_core::ContentHash;
use inferix_manager::dispatch::{self, Decision, DispatchConfig};
use inferix_manager::economy::{self, EconomyConfig, StakeDecision};
use inferix_manager::estimates::Estimates;
use inferix_manager::workers::WorkerPool;
use inferix_manager::{Command, Engine, Event, RoundConfig, Settlement};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{SimConfig, SimCounters, SAMPLE};
use crate::BenchError;

/// Micro-credits of escrow per task of a job.
pub(super) const PRICE_PER_TASK: i64 = 10_000;
/// Simulated epoch start (ms since the Unix epoch).
const EPOCH_MS: u64 = 1_700_000_000_000;
/// How often each manager's engine checks its deadlines (ms).
const TICK_MS: u64 = 10_000;
/// Queued tasks one dispatch pass of one manager considers at most.
const MAX_PASS: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Ev {
    JobArrival,
    Offer {
        w: u32,
        task: TaskId,
        attempt: u32,
        gen: u32,
        frames: u32,
    },
    RenderDone {
        w: u32,
        task: TaskId,
        attempt: u32,
        gen: u32,
        m: usize,
        epoch: u32,
    },
    Result {
        w: u32,
        task: TaskId,
        attempt: u32,
        m: usize,
        epoch: u32,
        fake: bool,
    },
    Verdict {
        v: u32,
        m: usize,
        epoch: u32,
        verification: u64,
        task: TaskId,
        pass: bool,
    },
    Tick {
        m: usize,
        epoch: u32,
    },
    LeaseExpiry {
        task: TaskId,
        attempt: u32,
    },
    WorkerCrash {
        w: u32,
    },
    WorkerGone {
        w: u32,
        m: usize,
        epoch: u32,
    },
    WorkerJoin {
        w: u32,
    },
    VerifierJoin {
        v: u32,
    },
    ManagerCrash,
    ManagerRestart {
        m: usize,
    },
    Adopt {
        task: TaskId,
    },
}

struct WorkerState {
    ib: f64,
    cheater: bool,
    alive: bool,
    gen: u32,
    reputation: f64,
    manager: Option<usize>,
    job: Option<(TaskId, u32)>,
}

struct VerifierState {
    manager: Option<usize>,
    /// When it finishes the checks it already holds (it checks one result
    /// after another).
    busy_until: u64,
}

/// One manager: the engine's state and nothing of its own rules.
struct ManagerState {
    id: NodeId,
    alive: bool,
    epoch: u32,
    engine: Engine,
    pool: WorkerPool,
    estimates: Estimates,
    scheduler: WeightedRandomScheduler,
}

/// A round as the simulation tracks it: which manager's engine holds it,
/// and the truth the verifiers are to find.
pub(super) struct SimRound {
    manager: usize,
    attempt: u32,
    worker: u32,
    fake: bool,
}

pub(super) struct JobInfo {
    pub(super) work_per_frame_s: f64,
    pub(super) remaining: usize,
    pub(super) failed: usize,
}

pub(super) struct Sim {
    pub(super) cfg: SimConfig,
    rng: ChaCha8Rng,
    now: u64,
    seq: u64,
    heap: BinaryHeap<Reverse<(u64, u64, Ev)>>,
    pub(super) store: MemoryTaskStore,
    workers: Vec<WorkerState>,
    verifiers: Vec<VerifierState>,
    managers: Vec<ManagerState>,
    rounds: BTreeMap<TaskId, SimRound>,
    /// Queued tasks, as the store's notifications announce them to every
    /// manager.
    ready: VecDeque<TaskId>,
    pub(super) jobs: BTreeMap<JobId, JobInfo>,
    /// The job records dispatch reads (what a manager's job cache holds).
    pub(super) job_records: HashMap<JobId, Job>,
    /// Passing verdicts behind each accepted task.
    pub(super) pass_votes: HashMap<TaskId, usize>,
    next_manager: usize,
    next_conn: u64,
    round_cfg: RoundConfig,
    dispatch_cfg: DispatchConfig,
    pub(super) economy: EconomyConfig,
    pub(super) c: SimCounters,
    pub(super) accepted_at: Vec<u64>,
}

fn node_of_worker(w: u32) -> NodeId {
    NodeId(1_000_000 + w as u128)
}
fn worker_of_node(id: NodeId) -> u32 {
    (id.0 - 1_000_000) as u32
}
fn node_of_verifier(v: u32) -> NodeId {
    NodeId(2_000_000 + v as u128)
}
fn verifier_of_node(id: NodeId) -> u32 {
    (id.0 - 2_000_000) as u32
}

fn store_err(e: StoreError) -> BenchError {
    run_err(e)
}

fn run_err(e: impl std::fmt::Display) -> BenchError {
    BenchError::Run {
        name: "simulation".into(),
        reason: e.to_string(),
    }
}

impl Sim {
    pub(super) fn new(cfg: SimConfig) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let workers = (0..cfg.workers)
            .map(|_| WorkerState {
                ib: rng.gen_range(0.5..3.0),
                cheater: rng.gen_bool(cfg.cheaters),
                alive: true,
                gen: 0,
                reputation: 1.0,
                manager: None,
                job: None,
            })
            .collect();
        let round_cfg = RoundConfig {
            quorum: cfg.quorum,
            vote_timeout_ms: 120_000,
            ..RoundConfig::default()
        };
        let managers = (0..cfg.managers)
            .map(|m| ManagerState {
                id: NodeId(10 + m as u128),
                alive: true,
                epoch: 0,
                engine: Engine::new(round_cfg.clone()),
                pool: WorkerPool::default(),
                estimates: Estimates::default(),
                scheduler: WeightedRandomScheduler::seeded(cfg.seed ^ (m as u64 + 1)),
            })
            .collect();
        let verifiers = (0..cfg.verifiers)
            .map(|_| VerifierState {
                manager: None,
                busy_until: 0,
            })
            .collect();
        Self {
            cfg,
            rng,
            now: 0,
            seq: 0,
            heap: BinaryHeap::new(),
            store: MemoryTaskStore::new(),
            workers,
            verifiers,
            managers,
            rounds: BTreeMap::new(),
            ready: VecDeque::new(),
            jobs: BTreeMap::new(),
            job_records: HashMap::new(),
            pass_votes: HashMap::new(),
            next_manager: 0,
            next_conn: 0,
            round_cfg,
            dispatch_cfg: DispatchConfig {
                scheduler_candidates: SAMPLE,
                finish_time_aware: true,
                tick_ms: TICK_MS,
            },
            economy: EconomyConfig {
                price_per_ibm: 100,
                stake_epoch_minutes: 100.0,
                grant_stake: true,
                verifier_reward: 500,
            },
            c: SimCounters::default(),
            accepted_at: Vec::new(),
        }
    }

    /// Queues the first events: workers and verifiers join over the first
    /// minute, jobs start arriving, crashes are drawn, engines tick.
    pub(super) fn start(&mut self) {
        for w in 0..self.workers.len() as u32 {
            let d = self.rng.gen_range(0..60_000);
            self.at(d, Ev::WorkerJoin { w });
        }
        for v in 0..self.verifiers.len() as u32 {
            let d = self.rng.gen_range(0..60_000);
            self.at(d, Ev::VerifierJoin { v });
        }
        for m in 0..self.managers.len() {
            self.at(TICK_MS, Ev::Tick { m, epoch: 0 });
        }
        self.at(60_000, Ev::JobArrival);
        for _ in 0..self.cfg.manager_crashes {
            let at = self.rng.gen_range(0..self.cfg.day_s * 1000);
            self.at(at, Ev::ManagerCrash);
        }
    }

    /// The next event, with the clock moved to it.
    pub(super) fn next_event(&mut self, limit: u64) -> Option<Ev> {
        let Reverse((t, _, ev)) = self.heap.pop()?;
        if t > limit {
            return None;
        }
        self.now = t;
        self.c.events += 1;
        Some(ev)
    }

    pub(super) fn now(&self) -> u64 {
        self.now
    }

    fn at(&mut self, delay_ms: u64, ev: Ev) {
        self.seq += 1;
        self.heap.push(Reverse((self.now + delay_ms, self.seq, ev)));
    }

    /// Sends a message: `None` when lost, else its delivery delay.
    fn message_delay(&mut self) -> Option<u64> {
        if self.rng.gen_bool(self.cfg.loss) {
            self.c.lost += 1;
            return None;
        }
        Some(if self.rng.gen_bool(self.cfg.long_delay) {
            self.rng.gen_range(60_000..1_800_000)
        } else {
            self.rng.gen_range(1..200)
        })
    }

    fn abs_ms(&self) -> u64 {
        EPOCH_MS + self.now
    }

    fn random_alive_manager(&mut self) -> Option<usize> {
        let alive: Vec<usize> = (0..self.managers.len())
            .filter(|&m| self.managers[m].alive)
            .collect();
        if alive.is_empty() {
            None
        } else {
            Some(alive[self.rng.gen_range(0..alive.len())])
        }
    }

    pub(super) async fn step(&mut self, ev: Ev) -> Result<(), BenchError> {
        match ev {
            Ev::JobArrival => self.job_arrival().await?,
            Ev::Offer {
                w,
                task,
                attempt,
                gen,
                frames,
            } => self.offer(w, task, attempt, gen, frames),
            Ev::RenderDone {
                w,
                task,
                attempt,
                gen,
                m,
                epoch,
            } => self.render_done(w, task, attempt, gen, m, epoch),
            Ev::Result {
                w,
                task,
                attempt,
                m,
                epoch,
                fake,
            } => self.result(w, task, attempt, m, epoch, fake).await?,
            Ev::Verdict {
                v,
                m,
                epoch,
                verification,
                task,
                pass,
            } => {
                let current = self.managers[m].alive
                    && self.managers[m].epoch == epoch
                    && self.verifiers[v as usize].manager == Some(m);
                if current {
                    let verdict = Verdict {
                        verification,
                        task,
                        passed: pass,
                        reasons: if pass {
                            Vec::new()
                        } else {
                            vec!["watermark patches missing".into()]
                        },
                        clean: Vec::new(),
                    };
                    let ev = Event::VerdictReceived {
                        verifier: node_of_verifier(v),
                        verdict,
                    };
                    self.engine_event(m, ev).await?;
                }
            }
            Ev::Tick { m, epoch } => {
                if self.managers[m].alive && self.managers[m].epoch == epoch {
                    self.engine_event(m, Event::Tick).await?;
                    self.at(TICK_MS, Ev::Tick { m, epoch });
                }
            }
            Ev::LeaseExpiry { task, attempt } => {
                self.requeue_lease(task, attempt, true, "lease expired")
                    .await?;
            }
            Ev::WorkerCrash { w } => self.worker_crash(w),
            Ev::WorkerGone { w, m, epoch } => self.worker_gone(w, m, epoch).await?,
            Ev::WorkerJoin { w } => self.worker_join(w).await?,
            Ev::VerifierJoin { v } => self.verifier_join(v).await?,
            Ev::ManagerCrash => self.manager_crash(),
            Ev::ManagerRestart { m } => self.manager_restart(m).await?,
            Ev::Adopt { task } => self.adopt(task).await?,
        }
        self.dispatch().await
    }

    // ----- the engine's commands -------------------------------------------

    /// Hands `event` to manager `m`'s engine and carries out its commands.
    async fn engine_event(&mut self, m: usize, event: Event) -> Result<(), BenchError> {
        let now = self.abs_ms();
        let mut commands: VecDeque<Command> = self.managers[m].engine.handle(event, now).into();
        while let Some(command) = commands.pop_front() {
            match command {
                Command::OfferVerification {
                    verifier,
                    verification,
                    task,
                } => {
                    if !self.offer_verification(m, verifier, verification, task) {
                        // The driver cannot go on with this round.
                        let more = self.managers[m]
                            .engine
                            .handle(Event::RoundAbandoned { task }, now);
                        commands.extend(more);
                    }
                }
                Command::SettleRound(s) => self.settle(m, s).await?,
                Command::RoundWaiting {
                    reason: Some(_), ..
                } => self.c.round_waits += 1,
                Command::RoundWaiting { reason: None, .. }
                | Command::OfferClaimCheck { .. }
                | Command::SettleClaim(_)
                | Command::ClaimRefused { .. }
                | Command::ClaimWaiting { .. } => {}
            }
        }
        Ok(())
    }

    /// Sends a verification offer; the verifier checks it after the ones
    /// it holds and answers (unless a message is lost: the engine's
    /// deadline then draws the vote again).
    fn offer_verification(
        &mut self,
        m: usize,
        verifier: NodeId,
        verification: u64,
        task: TaskId,
    ) -> bool {
        let Some(fake) = self.rounds.get(&task).map(|r| r.fake) else {
            return false;
        };
        self.c.verification_offers += 1;
        let v = verifier_of_node(verifier);
        let epoch = self.managers[m].epoch;
        let Some(there) = self.message_delay() else {
            return true;
        };
        let work = self.rng.gen_range(2_000..20_000);
        let vs = &mut self.verifiers[v as usize];
        vs.busy_until = vs.busy_until.max(self.now + there) + work;
        let done = vs.busy_until - self.now;
        let pass = !(fake && self.rng.gen_bool(self.cfg.detect));
        if let Some(back) = self.message_delay() {
            self.at(
                done + back,
                Ev::Verdict {
                    v,
                    m,
                    epoch,
                    verification,
                    task,
                    pass,
                },
            );
        }
        true
    }

    /// Writes a settled round: acceptance with its payment in one batch, or
    /// rejection, slash and requeue; the agreeing verifiers are rewarded.
    async fn settle(&mut self, m: usize, s: Settlement) -> Result<(), BenchError> {
        let Some(r) = self.rounds.remove(&s.task) else {
            return Ok(());
        };
        if r.manager != m {
            self.rounds.insert(s.task, r);
            return Ok(());
        }
        let tid = s.task;
        let Some(mut task) = self.store.task(tid).await.map_err(store_err)? else {
            return Ok(());
        };
        if task.status != TaskStatus::Verifying || task.attempts != r.attempt {
            return Ok(());
        }
        if !s.dissenting.is_empty() {
            self.c.split_rounds += 1;
        }
        let now = self.abs_ms();
        let worker = node_of_worker(r.worker);
        if s.passed {
            let Some(job) = self.job_records.get(&tid.job) else {
                return Ok(());
            };
            task.transition(TaskStatus::Accepted, now, "verified")
                .map_err(run_err)?;
            let pay = economy::task_payment(
                tid,
                task.frames.len(),
                job.quoted_price,
                job.spec.frames.len(),
                worker,
                None,
                now,
            );
            let mut batch = [Change::Task(Box::new(task)), Change::Transaction(pay)];
            self.store.apply(&mut batch).await.map_err(store_err)?;
            self.pass_votes.insert(tid, s.agreeing.len());
            if r.fake {
                self.c.cheats_missed += 1;
            }
            self.c.accepted += 1;
            self.accepted_at.push(self.now);
            self.task_done(tid.job).await?;
        } else {
            task.transition(TaskStatus::Rejected, now, s.reasons.join("; "))
                .map_err(run_err)?;
            self.store.update_task(&mut task).await.map_err(store_err)?;
            let to = task
                .requeue(
                    now,
                    Fault::Attempt(worker),
                    self.cfg.max_attempts,
                    "rejected",
                )
                .map_err(run_err)?;
            self.store.update_task(&mut task).await.map_err(store_err)?;
            if r.fake {
                self.c.cheats_caught += 1;
            } else {
                self.c.honest_rejected += 1;
            }
            let penalty = self.round_cfg.reputation_penalty;
            self.workers[r.worker as usize].reputation *= penalty;
            if let Some(slot) = self.managers[m].pool.get_mut(&worker) {
                slot.info.reputation *= penalty;
            }
            let stake = self
                .store
                .balance(&Account::Stake(worker))
                .await
                .map_err(store_err)?;
            if let Some(tx) = economy::slash(tid, worker, stake, now) {
                self.append(&tx).await?;
            }
            self.after_requeue(tid, to).await?;
        }
        let pool = self
            .store
            .balance(&Account::PenaltyPool)
            .await
            .map_err(store_err)?;
        for tx in economy::verifier_rewards(&self.economy, tid, &s.agreeing, pool, now) {
            self.append(&tx).await?;
        }
        Ok(())
    }

    async fn append(&mut self, tx: &Transaction) -> Result<(), BenchError> {
        match self.store.append_transaction(tx).await {
            Ok(()) | Err(StoreError::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(store_err(e)),
        }
    }

    // ----- dispatch ----------------------------------------------------------

    /// Each manager with idle workers runs a dispatch pass over the head of
    /// the queue; the first manager rotates so none is always first.
    async fn dispatch(&mut self) -> Result<(), BenchError> {
        let n = self.managers.len();
        for i in 0..n {
            if self.ready.is_empty() {
                break;
            }
            let m = (self.next_manager + i) % n;
            if self.managers[m].alive && self.managers[m].pool.idle_count() > 0 {
                self.dispatch_on(m).await?;
            }
        }
        self.next_manager = (self.next_manager + 1) % n;
        Ok(())
    }

    async fn dispatch_on(&mut self, m: usize) -> Result<(), BenchError> {
        let batch = self.managers[m].pool.idle_count().min(MAX_PASS);
        let mut queued = Vec::new();
        while queued.len() < batch {
            let Some(tid) = self.ready.pop_front() else {
                break;
            };
            if let Some(t) = self.store.task(tid).await.map_err(store_err)? {
                if t.status == TaskStatus::Queued {
                    queued.push(t);
                }
            }
        }
        let now = self.abs_ms();
        let ms = &mut self.managers[m];
        let decisions = dispatch::plan(
            &queued,
            &self.job_records,
            &ms.pool,
            &mut ms.scheduler,
            &ms.estimates,
            &self.dispatch_cfg,
            now,
        );
        let mut leased = HashSet::new();
        let mut by_id: HashMap<TaskId, Task> = queued.iter().map(|t| (t.id, t.clone())).collect();
        for d in decisions {
            match d {
                Decision::Lease { task, worker } => {
                    if let Some(t) = by_id.remove(&task) {
                        if self.lease(m, t, worker).await? {
                            leased.insert(task);
                        }
                    }
                }
                Decision::Waiting { .. } => self.c.dispatch_waits += 1,
            }
        }
        // What was not leased keeps its place at the head of the queue.
        for t in queued.iter().rev() {
            if !leased.contains(&t.id) {
                self.ready.push_front(t.id);
            }
        }
        Ok(())
    }

    /// Manager `m` leases `task` to `worker`, as the plan decided; another
    /// manager that read the same version may race it for the task.
    async fn lease(
        &mut self,
        m: usize,
        mut task: Task,
        worker: NodeId,
    ) -> Result<bool, BenchError> {
        let Some(work) = self.jobs.get(&task.id.job).map(|j| j.work_per_frame_s) else {
            return Ok(false);
        };
        let w = worker_of_node(worker);
        let racer = if self.rng.gen_bool(self.cfg.race) {
            let other = (m + 1) % self.managers.len();
            let theirs = self.managers[other].pool.idle().next().map(|s| s.info.id);
            match theirs {
                Some(w2) if other != m && self.managers[other].alive => {
                    Some((other, w2, task.clone()))
                }
                _ => None,
            }
        } else {
            None
        };
        let frames = task.frames.len();
        let est_ms = frames as f64 * work / self.workers[w as usize].ib * 1000.0;
        let lease_ms = (2.0 * est_ms) as u64 + 600_000;
        let now = self.abs_ms();
        let lease = Lease {
            worker,
            manager: self.managers[m].id,
            deadline_ms: now + lease_ms,
            scene: None,
        };
        task.lease(lease, now).map_err(run_err)?;
        match self.store.update_task(&mut task).await {
            Ok(()) => {}
            Err(StoreError::Conflict { .. }) => return Ok(false),
            Err(e) => return Err(store_err(e)),
        }
        self.c.leases += 1;
        self.managers[m].pool.assign(worker, task.id, frames, now);
        self.workers[w as usize].job = Some((task.id, task.attempts));
        if let Some((other, w2, mut stale)) = racer {
            let lease = Lease {
                worker: w2,
                manager: self.managers[other].id,
                deadline_ms: now + lease_ms,
                scene: None,
            };
            if stale.lease(lease, now).is_ok() {
                match self.store.update_task(&mut stale).await {
                    Err(StoreError::Conflict { .. }) => self.c.cas_conflicts += 1,
                    Ok(()) => self.c.double_claims += 1,
                    Err(e) => return Err(store_err(e)),
                }
            }
        }
        let gen = self.workers[w as usize].gen;
        if let Some(d) = self.message_delay() {
            self.at(
                d,
                Ev::Offer {
                    w,
                    task: task.id,
                    attempt: task.attempts,
                    gen,
                    frames: frames as u32,
                },
            );
        }
        self.at(
            lease_ms,
            Ev::LeaseExpiry {
                task: task.id,
                attempt: task.attempts,
            },
        );
        Ok(true)
    }

    // ----- jobs --------------------------------------------------------------

    async fn job_arrival(&mut self) -> Result<(), BenchError> {
        let mean_gap = self.cfg.day_s as f64 * 1000.0 / self.cfg.jobs as f64;
        let gap = (-(1.0 - self.rng.gen::<f64>()).ln() * mean_gap) as u64;
        if self.now + gap < self.cfg.day_s * 1000 {
            self.at(gap, Ev::JobArrival);
        }
        if self.random_alive_manager().is_none() {
            self.at(60_000, Ev::JobArrival);
            return Ok(());
        }
        let id = JobId::from_rng(&mut self.rng);
        let frames = self.rng.gen_range(self.cfg.frames.0..=self.cfg.frames.1);
        let mut spec = JobSpec::new(
            SceneRef {
                blob: ContentHash::of(b"simulated scene"),
                format: SceneFormat::Gltf,
                file_name: "scene.glb".into(),
            },
            FrameRange::new(1, frames),
        );
        spec.min_ib = if self.rng.gen_bool(0.1) { 1.5 } else { 0.0 };
        let now = self.abs_ms();
        let tasks: Vec<Task> = spec
            .split(id)
            .map_err(|e| BenchError::Setup(e.to_string()))?
            .into_iter()
            .map(|t| Task::new(t.id, t.frames, now))
            .collect();
        let price = tasks.len() as i64 * PRICE_PER_TASK;
        let job = Job {
            id,
            spec,
            state: JobState::Active,
            created_ms: now,
            quoted_price: price as u64,
            waiting_reason: None,
            blocklist: Vec::new(),
            history: Vec::new(),
            warnings: Vec::new(),
        };
        self.store
            .insert_job(&job, &tasks)
            .await
            .map_err(store_err)?;
        self.append(&Transaction::transfer(
            format!("escrow:{id}"),
            now,
            "escrow at submission",
            Account::User("client".into()),
            Account::Job(id),
            price,
        ))
        .await?;
        self.c.jobs += 1;
        self.c.tasks += tasks.len() as u64;
        let work_per_frame_s = self
            .rng
            .gen_range(self.cfg.frame_work_s.0..self.cfg.frame_work_s.1);
        self.jobs.insert(
            id,
            JobInfo {
                work_per_frame_s,
                remaining: tasks.len(),
                failed: 0,
            },
        );
        self.job_records.insert(id, job);
        self.ready.extend(tasks.iter().map(|t| t.id));
        Ok(())
    }

    async fn after_requeue(&mut self, tid: TaskId, to: TaskStatus) -> Result<(), BenchError> {
        if to == TaskStatus::Queued {
            self.ready.push_back(tid);
        } else {
            self.c.failed += 1;
            if let Some(j) = self.jobs.get_mut(&tid.job) {
                j.failed += 1;
            }
            self.task_done(tid.job).await?;
        }
        Ok(())
    }

    /// One more of the job's tasks is final; the last one completes (or
    /// fails) the job and refunds what is left of its escrow.
    async fn task_done(&mut self, job_id: JobId) -> Result<(), BenchError> {
        let Some(j) = self.jobs.get_mut(&job_id) else {
            return Ok(());
        };
        j.remaining -= 1;
        if j.remaining > 0 {
            return Ok(());
        }
        let failed = j.failed;
        let now = self.abs_ms();
        if let Some(job) = self.job_records.get_mut(&job_id) {
            let state = if failed > 0 {
                JobState::Failed
            } else {
                JobState::Completed
            };
            job.set_state(state, now, "all tasks finished");
            self.store.update_job(job).await.map_err(store_err)?;
        }
        let left = self
            .store
            .balance(&Account::Job(job_id))
            .await
            .map_err(store_err)?;
        let payer = Account::User("client".into());
        if let Some(tx) = economy::escrow_refund(job_id, left, payer, "unspent escrow", now) {
            self.append(&tx).await?;
        }
        self.c.end_ms = self.now;
        Ok(())
    }

    pub(super) fn all_jobs_done(&self) -> bool {
        self.jobs.values().all(|j| j.remaining == 0)
    }

    // ----- workers -----------------------------------------------------------

    fn offer(&mut self, w: u32, task: TaskId, attempt: u32, gen: u32, frames: u32) {
        let ws = &self.workers[w as usize];
        if !ws.alive || ws.gen != gen || ws.job != Some((task, attempt)) {
            return;
        }
        let Some(m) = ws.manager else { return };
        let epoch = self.managers[m].epoch;
        let Some(job) = self.jobs.get(&task.job) else {
            return;
        };
        let mut ms = frames as f64 * job.work_per_frame_s / ws.ib * 1000.0;
        if ws.cheater {
            ms *= 0.1;
        }
        let ms = ms as u64;
        self.c.busy_ms += ms;
        if self.rng.gen_bool(self.cfg.worker_crash) {
            let at = self.rng.gen_range(0..ms.max(1));
            self.at(at, Ev::WorkerCrash { w });
        }
        self.at(
            ms,
            Ev::RenderDone {
                w,
                task,
                attempt,
                gen,
                m,
                epoch,
            },
        );
    }

    fn render_done(&mut self, w: u32, task: TaskId, attempt: u32, gen: u32, m: usize, epoch: u32) {
        let ws = &self.workers[w as usize];
        if !ws.alive || ws.gen != gen || ws.job != Some((task, attempt)) {
            return;
        }
        let fake = ws.cheater;
        if let Some(d) = self.message_delay() {
            self.at(
                d,
                Ev::Result {
                    w,
                    task,
                    attempt,
                    m,
                    epoch,
                    fake,
                },
            );
        }
    }

    /// The worker no longer holds `task`: its manager sees it idle again.
    fn release(&mut self, w: u32, task: TaskId, attempt: u32) {
        if self.workers[w as usize].job != Some((task, attempt)) {
            return;
        }
        self.workers[w as usize].job = None;
        if let Some(m) = self.workers[w as usize].manager {
            let now = self.abs_ms();
            self.managers[m].pool.release(node_of_worker(w), task, now);
        }
    }

    async fn result(
        &mut self,
        w: u32,
        tid: TaskId,
        attempt: u32,
        m: usize,
        epoch: u32,
        fake: bool,
    ) -> Result<(), BenchError> {
        if !self.managers[m].alive || self.managers[m].epoch != epoch {
            self.c.stale_results += 1;
            return Ok(());
        }
        let Some(mut task) = self.store.task(tid).await.map_err(store_err)? else {
            return Ok(());
        };
        let worker = node_of_worker(w);
        let holds = task.status == TaskStatus::Leased
            && task.attempts == attempt
            && task.lease.as_ref().is_some_and(|l| l.worker == worker);
        if !holds {
            self.c.stale_results += 1;
            self.release(w, tid, attempt);
            return Ok(());
        }
        let result = TaskResult {
            worker,
            frames: task
                .frames
                .iter()
                .map(|&f| FrameOutput {
                    frame: f,
                    pixel_hash: ContentHash::of(&[f.to_le_bytes(), [fake as u8; 4]].concat()),
                    blob: ContentHash::of(&f.to_be_bytes()),
                    width: 16,
                    height: 8,
                    tile_root: ContentHash::of(b"tiles"),
                })
                .collect(),
            render_ms: 1,
            attempt,
            scene: ContentHash::of(b"simulated scene"),
            device_class: "sim".into(),
            public_key: Vec::new(),
            signature: Vec::new(),
        };
        let now = self.abs_ms();
        task.complete(result, now).map_err(run_err)?;
        self.store.update_task(&mut task).await.map_err(store_err)?;
        let ms = &mut self.managers[m];
        if let Some(slot) = ms.pool.get(&worker) {
            ms.estimates.finished(slot, tid.job, now);
        }
        self.release(w, tid, attempt);
        self.start_round(m, task, w, fake).await
    }

    /// Writes `task` as `Verifying` and opens its round on `m`'s engine.
    async fn start_round(
        &mut self,
        m: usize,
        mut task: Task,
        w: u32,
        fake: bool,
    ) -> Result<(), BenchError> {
        let now = self.abs_ms();
        if task
            .transition(TaskStatus::Verifying, now, "sent to verifiers")
            .is_err()
        {
            return Ok(());
        }
        self.store.update_task(&mut task).await.map_err(store_err)?;
        self.rounds.insert(
            task.id,
            SimRound {
                manager: m,
                attempt: task.attempts,
                worker: w,
                fake,
            },
        );
        let ev = Event::RoundOpened {
            task: task.id,
            worker: node_of_worker(w),
            needs_renderer: false,
        };
        self.engine_event(m, ev).await
    }

    async fn requeue_lease(
        &mut self,
        tid: TaskId,
        attempt: u32,
        only_if_expired: bool,
        why: &str,
    ) -> Result<(), BenchError> {
        let Some(mut task) = self.store.task(tid).await.map_err(store_err)? else {
            return Ok(());
        };
        let now = self.abs_ms();
        if task.status != TaskStatus::Leased || task.attempts != attempt {
            return Ok(());
        }
        if only_if_expired {
            if !task.lease_expired(now) {
                return Ok(());
            }
            self.c.expired += 1;
        }
        let Some(worker) = task.lease.as_ref().map(|l| l.worker) else {
            return Ok(());
        };
        let to = task
            .requeue(now, Fault::Worker(worker), self.cfg.max_attempts, why)
            .map_err(run_err)?;
        self.store.update_task(&mut task).await.map_err(store_err)?;
        self.release(worker_of_node(worker), tid, attempt);
        self.after_requeue(tid, to).await
    }

    /// The worker dies; its manager notices after the heartbeat timeout
    /// and, until then, may still lease it a task.
    fn worker_crash(&mut self, w: u32) {
        if !self.workers[w as usize].alive {
            return;
        }
        self.c.worker_crashes += 1;
        let ws = &mut self.workers[w as usize];
        ws.alive = false;
        ws.gen += 1;
        if let Some(m) = ws.manager {
            let epoch = self.managers[m].epoch;
            self.at(30_000, Ev::WorkerGone { w, m, epoch });
        }
        if self.now < self.cfg.day_s * 1000 {
            let back = self.rng.gen_range(600_000..7_200_000);
            self.at(back, Ev::WorkerJoin { w });
        }
    }

    async fn worker_gone(&mut self, w: u32, m: usize, epoch: u32) -> Result<(), BenchError> {
        if self.managers[m].epoch != epoch || self.workers[w as usize].manager != Some(m) {
            return Ok(());
        }
        self.managers[m].pool.leave(node_of_worker(w));
        self.workers[w as usize].manager = None;
        if let Some((tid, attempt)) = self.workers[w as usize].job.take() {
            self.requeue_lease(tid, attempt, false, "worker vanished")
                .await?;
        }
        Ok(())
    }

    /// A worker says hello to a manager, which applies the stake rule.
    async fn worker_join(&mut self, w: u32) -> Result<(), BenchError> {
        let ws = &mut self.workers[w as usize];
        ws.alive = true;
        if ws.manager.is_some() {
            return Ok(());
        }
        let Some(m) = self.random_alive_manager() else {
            self.at(30_000, Ev::WorkerJoin { w });
            return Ok(());
        };
        let node = node_of_worker(w);
        let ib = self.workers[w as usize].ib;
        let have = self
            .store
            .balance(&Account::Stake(node))
            .await
            .map_err(store_err)?;
        let granted = self
            .store
            .transaction(&economy::stake_grant_id(node))
            .await
            .map_err(store_err)?
            .is_some();
        let now = self.abs_ms();
        match economy::stake_decision(&self.economy, node, ib, have, granted, now) {
            StakeDecision::Enough => {}
            StakeDecision::Grant(tx) => self.append(&tx).await?,
            StakeDecision::Refuse(_) => {
                self.c.refused_joins += 1;
                return Ok(());
            }
        }
        self.next_conn += 1;
        let info = WorkerInfo {
            id: node,
            ib,
            reputation: self.workers[w as usize].reputation,
            tags: Vec::new(),
        };
        self.managers[m].pool.join(self.next_conn, info, now);
        self.workers[w as usize].manager = Some(m);
        Ok(())
    }

    // ----- verifiers and managers ---------------------------------------------

    async fn verifier_join(&mut self, v: u32) -> Result<(), BenchError> {
        if self.verifiers[v as usize].manager.is_some() {
            return Ok(());
        }
        let Some(m) = self.random_alive_manager() else {
            self.at(30_000, Ev::VerifierJoin { v });
            return Ok(());
        };
        self.attach_verifier(v, m).await
    }

    async fn attach_verifier(&mut self, v: u32, m: usize) -> Result<(), BenchError> {
        self.verifiers[v as usize].manager = Some(m);
        let ev = Event::VerifierJoined {
            verifier: node_of_verifier(v),
            renders: true,
        };
        self.engine_event(m, ev).await
    }

    /// A manager dies with its engine's state; its workers and verifiers
    /// reconnect elsewhere and its open rounds are adopted later.
    fn manager_crash(&mut self) {
        let alive: Vec<usize> = (0..self.managers.len())
            .filter(|&m| self.managers[m].alive)
            .collect();
        if alive.len() < 2 {
            return;
        }
        let m = alive[self.rng.gen_range(0..alive.len())];
        self.c.manager_crashes += 1;
        let ms = &mut self.managers[m];
        ms.alive = false;
        ms.epoch += 1;
        ms.engine = Engine::new(self.round_cfg.clone());
        ms.pool = WorkerPool::default();
        ms.estimates = Estimates::default();
        for w in 0..self.workers.len() as u32 {
            let ws = &mut self.workers[w as usize];
            if ws.manager == Some(m) {
                ws.manager = None;
                // The session ends: a render in progress is abandoned and
                // its lease left to expire.
                ws.job = None;
                ws.gen += 1;
                if ws.alive {
                    let d = self.rng.gen_range(1_000..30_000);
                    self.at(d, Ev::WorkerJoin { w });
                }
            }
        }
        for v in 0..self.verifiers.len() as u32 {
            if self.verifiers[v as usize].manager == Some(m) {
                self.verifiers[v as usize].manager = None;
                let d = self.rng.gen_range(1_000..30_000);
                self.at(d, Ev::VerifierJoin { v });
            }
        }
        let orphans: Vec<TaskId> = self
            .rounds
            .iter()
            .filter(|(_, r)| r.manager == m)
            .map(|(t, _)| *t)
            .collect();
        // Another manager presumes a round lost after twice the vote
        // timeout, as the manager node's housekeeping does.
        let lost_after = 2 * self.round_cfg.vote_timeout_ms;
        for t in orphans {
            self.rounds.remove(&t);
            self.at(lost_after, Ev::Adopt { task: t });
        }
        let back = self.rng.gen_range(60_000..600_000);
        self.at(back, Ev::ManagerRestart { m });
    }

    /// A manager comes back empty; verifiers rebalance onto it (each moves
    /// with the chance that it would have picked it).
    async fn manager_restart(&mut self, m: usize) -> Result<(), BenchError> {
        self.managers[m].alive = true;
        let epoch = self.managers[m].epoch;
        self.at(TICK_MS, Ev::Tick { m, epoch });
        let alive = self.managers.iter().filter(|ms| ms.alive).count() as f64;
        for v in 0..self.verifiers.len() as u32 {
            let Some(old) = self.verifiers[v as usize].manager else {
                continue;
            };
            if old != m && self.rng.gen_bool(1.0 / alive) {
                let left = Event::VerifierLeft {
                    verifier: node_of_verifier(v),
                };
                self.verifiers[v as usize].manager = None;
                self.engine_event(old, left).await?;
                self.attach_verifier(v, m).await?;
            }
        }
        Ok(())
    }

    async fn adopt(&mut self, tid: TaskId) -> Result<(), BenchError> {
        let Some(m) = self.random_alive_manager() else {
            self.at(60_000, Ev::Adopt { task: tid });
            return Ok(());
        };
        if self.rounds.contains_key(&tid) {
            return Ok(());
        }
        let Some(mut task) = self.store.task(tid).await.map_err(store_err)? else {
            return Ok(());
        };
        if task.status != TaskStatus::Verifying {
            return Ok(());
        }
        let Some(result) = task.result.clone() else {
            return Ok(());
        };
        task.transition(
            TaskStatus::Rendered,
            self.abs_ms(),
            "verification round lost with its manager",
        )
        .map_err(run_err)?;
        self.store.update_task(&mut task).await.map_err(store_err)?;
        self.c.adopted += 1;
        let w = worker_of_node(result.worker);
        let fake = result.frames.first().is_some_and(|f| {
            f.pixel_hash != ContentHash::of(&[f.frame.to_le_bytes(), [0; 4]].concat())
        });
        self.start_round(m, task, w, fake).await
    }
}
