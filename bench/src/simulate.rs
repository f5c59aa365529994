//! A deterministic, seeded discrete-event simulation of a whole network at
//! a scale no process could run as real nodes.
//!
//! What is real: the task store ([`MemoryTaskStore`], shared by every
//! manager, every change a compare-and-set), the task state machine
//! ([`Task::lease`], [`Task::complete`], [`Task::transition`],
//! [`Task::requeue`]), job splitting ([`JobSpec::split`]), the scheduler
//! ([`WeightedRandomScheduler`], seeded) and the double-entry ledger
//! ([`Transaction`], appended to the store, duplicates refused).
//!
//! What is modelled: workers, verifiers and managers are a few bytes of
//! state each in one event loop over a virtual clock; messages are events
//! with a random delay, some lost and a few delayed for minutes; rendering
//! takes `frames × work ÷ IB`; verifiers take a few seconds and catch a
//! cheater's fake result with a fixed probability. Managers learn of queued
//! tasks from one shared notification queue (what PostgreSQL's NOTIFY gives
//! several managers) and offer each to a random sample of at most
//! [`SAMPLE`] of their idle workers, from which the real scheduler chooses.
//! Faults: message loss and delay, workers crashing mid-task (noticed after a
//! heartbeat timeout) and rejoining later, managers crashing (their workers
//! reconnect elsewhere; their leases expire; their open verification rounds
//! are adopted by another manager), cheating workers, and two managers
//! racing for one task (the store's compare-and-set must refuse one).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::time::Instant;

use inferix_core::ids::{JobId, NodeId, TaskId};
use inferix_core::job::{FrameRange, Job, JobSpec, JobState, SceneRef};
use inferix_core::ledger::{Account, Posting, Transaction};
use inferix_core::renderer::SceneFormat;
use inferix_core::scheduler::{Scheduler, TaskDemand, WeightedRandomScheduler, WorkerInfo};
use inferix_core::store::{MemoryTaskStore, StoreError, TaskStore};
use inferix_core::task::{FrameOutput, Lease, Task, TaskResult, TaskStatus};
use inferix_core::ContentHash;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::common::quantile;
use crate::report::{fmt_num, Row};
use crate::{BenchError, Report};

/// Idle workers sampled per dispatch decision.
pub const SAMPLE: usize = 32;
/// Micro-credits paid per accepted task.
const PRICE_PER_TASK: i64 = 10_000;
/// Stake posted for each worker at its first hello.
const STAKE: i64 = 50_000;
/// Slashed from a worker whose result is rejected.
const SLASH: i64 = 20_000;
/// Paid from the penalty pool to each verifier of a decided round.
const VERIFIER_REWARD: i64 = 500;
/// Simulated epoch start (ms since the Unix epoch).
const EPOCH_MS: u64 = 1_700_000_000_000;

/// Size and fault rates of a simulation.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Seed of every random choice.
    pub seed: u64,
    /// Modelled workers.
    pub workers: usize,
    /// Modelled verifiers.
    pub verifiers: usize,
    /// Managers sharing the store.
    pub managers: usize,
    /// Simulated seconds of job arrivals (a day in a full run).
    pub day_s: u64,
    /// Jobs arriving over `day_s` (Poisson).
    pub jobs: usize,
    /// Frames per job, uniform in this range.
    pub frames: (u32, u32),
    /// Seconds of work per frame at IB 1, uniform in this range.
    pub frame_work_s: (f64, f64),
    /// Verifiers that must pass each result.
    pub quorum: usize,
    /// Leases per task before it fails.
    pub max_attempts: u32,
    /// Probability that a message is lost.
    pub loss: f64,
    /// Probability that a message is delayed by minutes.
    pub long_delay: f64,
    /// Probability that a worker crashes during a task it starts.
    pub worker_crash: f64,
    /// Manager crashes over the day.
    pub manager_crashes: usize,
    /// Fraction of workers that return fake results.
    pub cheaters: f64,
    /// Probability that one verifier catches a fake result.
    pub detect: f64,
    /// Probability that a second manager races for a task being claimed.
    pub race: f64,
}

impl SimConfig {
    /// A simulated day: 100,000 workers, 1,000 verifiers, 4 managers.
    pub fn full(seed: u64) -> Self {
        Self {
            seed,
            workers: 100_000,
            verifiers: 1_000,
            managers: 4,
            day_s: 86_400,
            jobs: 4_000,
            frames: (20, 1_000),
            frame_work_s: (600.0, 7_200.0),
            quorum: 2,
            max_attempts: 10,
            loss: 0.005,
            long_delay: 0.002,
            worker_crash: 0.005,
            manager_crashes: 6,
            cheaters: 0.02,
            detect: 0.9,
            race: 0.02,
        }
    }
    /// Two simulated hours of a smaller network (CI).
    pub fn quick(seed: u64) -> Self {
        Self {
            workers: 2_000,
            verifiers: 50,
            managers: 3,
            day_s: 7_200,
            jobs: 40,
            frames: (10, 200),
            manager_crashes: 2,
            worker_crash: 0.02,
            cheaters: 0.05,
            race: 0.05,
            ..Self::full(seed)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
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
        task: TaskId,
        attempt: u32,
        pass: bool,
        delivered: bool,
    },
    VerifyTimeout {
        v: u32,
        task: TaskId,
        attempt: u32,
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
    staked: bool,
    gen: u32,
    reputation: f64,
    manager: Option<usize>,
    idle_pos: Option<usize>,
    job: Option<(TaskId, u32)>,
}

struct ManagerState {
    id: NodeId,
    alive: bool,
    epoch: u32,
    idle: Vec<u32>,
    scheduler: WeightedRandomScheduler,
}

struct Round {
    manager: usize,
    attempt: u32,
    worker: u32,
    fake: bool,
    votes: Vec<(u32, Option<bool>)>,
    asked: Vec<u32>,
}

struct JobInfo {
    min_ib: f64,
    work_per_frame_s: f64,
    remaining: usize,
    failed: usize,
    paid: i64,
    price: i64,
}

/// Counters of what happened.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct SimCounters {
    /// Events processed.
    pub events: u64,
    /// Jobs submitted.
    pub jobs: u64,
    /// Tasks created.
    pub tasks: u64,
    /// Tasks accepted.
    pub accepted: u64,
    /// Tasks failed after too many attempts.
    pub failed: u64,
    /// Leases granted.
    pub leases: u64,
    /// Claims a racing manager lost to the store's compare-and-set.
    pub cas_conflicts: u64,
    /// Claims by a racing manager that the store wrongly allowed.
    pub double_claims: u64,
    /// Results refused because their lease was gone.
    pub stale_results: u64,
    /// Messages lost.
    pub lost: u64,
    /// Leases that expired.
    pub expired: u64,
    /// Workers that crashed mid-task.
    pub worker_crashes: u64,
    /// Manager crashes.
    pub manager_crashes: u64,
    /// Verification rounds adopted from a crashed manager.
    pub adopted: u64,
    /// Fake results rejected.
    pub cheats_caught: u64,
    /// Fake results accepted (every verifier missed).
    pub cheats_missed: u64,
    /// Verifiers replaced after a timeout.
    pub verifier_timeouts: u64,
    /// Virtual ms at which the last job finished.
    pub end_ms: u64,
    /// Modelled render time started, summed over workers, ms.
    pub busy_ms: u64,
}

/// What a simulation produced.
pub struct SimOutcome {
    /// Counters.
    pub counters: SimCounters,
    /// Queued → leased waits, ms, sorted.
    pub queue_ms: Vec<f64>,
    /// Tasks accepted per simulated hour.
    pub per_hour: Vec<u64>,
    /// Wall-clock seconds the simulation took.
    pub wall_s: f64,
    /// Invariant name, passed, detail.
    pub checks: Vec<(String, bool, String)>,
}

struct Sim {
    cfg: SimConfig,
    rng: ChaCha8Rng,
    now: u64,
    seq: u64,
    heap: BinaryHeap<Reverse<(u64, u64, Ev)>>,
    store: MemoryTaskStore,
    workers: Vec<WorkerState>,
    managers: Vec<ManagerState>,
    free_verifiers: Vec<u32>,
    rounds: BTreeMap<TaskId, Round>,
    pending_verifications: VecDeque<TaskId>,
    ready: VecDeque<TaskId>,
    jobs: BTreeMap<JobId, JobInfo>,
    pass_votes: HashMap<TaskId, usize>,
    pool: i64,
    next_manager: usize,
    c: SimCounters,
    accepted_at: Vec<u64>,
}

fn node_of_worker(w: u32) -> NodeId {
    NodeId(1_000_000 + w as u128)
}
fn node_of_verifier(v: u32) -> NodeId {
    NodeId(2_000_000 + v as u128)
}

fn store_err(e: StoreError) -> BenchError {
    BenchError::Run {
        name: "simulation".into(),
        reason: e.to_string(),
    }
}

impl Sim {
    fn new(cfg: SimConfig) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let workers = (0..cfg.workers)
            .map(|_| WorkerState {
                ib: rng.gen_range(0.5..3.0),
                cheater: rng.gen_bool(cfg.cheaters),
                alive: true,
                staked: false,
                gen: 0,
                reputation: 1.0,
                manager: None,
                idle_pos: None,
                job: None,
            })
            .collect();
        let managers = (0..cfg.managers)
            .map(|m| ManagerState {
                id: NodeId(10 + m as u128),
                alive: true,
                epoch: 0,
                idle: Vec::new(),
                scheduler: WeightedRandomScheduler::seeded(cfg.seed ^ (m as u64 + 1)),
            })
            .collect();
        Self {
            free_verifiers: (0..cfg.verifiers as u32).collect(),
            cfg,
            rng,
            now: 0,
            seq: 0,
            heap: BinaryHeap::new(),
            store: MemoryTaskStore::new(),
            workers,
            managers,
            rounds: BTreeMap::new(),
            pending_verifications: VecDeque::new(),
            ready: VecDeque::new(),
            jobs: BTreeMap::new(),
            pass_votes: HashMap::new(),
            pool: 0,
            next_manager: 0,
            c: SimCounters::default(),
            accepted_at: Vec::new(),
        }
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

    fn attach(&mut self, w: u32, m: usize) {
        self.workers[w as usize].manager = Some(m);
        self.make_idle(w);
    }

    fn make_idle(&mut self, w: u32) {
        let ws = &self.workers[w as usize];
        if !ws.alive || ws.idle_pos.is_some() || ws.job.is_some() {
            return;
        }
        let Some(m) = ws.manager else { return };
        if !self.managers[m].alive {
            return;
        }
        let idle = &mut self.managers[m].idle;
        self.workers[w as usize].idle_pos = Some(idle.len());
        idle.push(w);
    }

    fn take_idle(&mut self, w: u32) {
        let Some(pos) = self.workers[w as usize].idle_pos.take() else {
            return;
        };
        let Some(m) = self.workers[w as usize].manager else {
            return;
        };
        let idle = &mut self.managers[m].idle;
        idle.swap_remove(pos);
        if let Some(&moved) = idle.get(pos) {
            self.workers[moved as usize].idle_pos = Some(pos);
        }
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

    /// Hands queued tasks to managers with idle workers, round robin.
    async fn dispatch(&mut self) -> Result<(), BenchError> {
        let mut parked = Vec::new();
        while let Some(tid) = self.ready.pop_front() {
            let n = self.managers.len();
            let Some(m) = (0..n)
                .map(|i| (self.next_manager + i) % n)
                .find(|&m| self.managers[m].alive && !self.managers[m].idle.is_empty())
            else {
                self.ready.push_front(tid);
                break;
            };
            self.next_manager = (m + 1) % n;
            if !self.claim(m, tid).await? {
                parked.push(tid);
            }
        }
        self.ready.extend(parked);
        Ok(())
    }

    /// A sample of `m`'s idle workers, as the scheduler sees them.
    fn sample(&mut self, m: usize) -> Vec<WorkerInfo> {
        let idle_len = self.managers[m].idle.len();
        let picks: Vec<u32> = if idle_len <= SAMPLE {
            self.managers[m].idle.clone()
        } else {
            (0..SAMPLE)
                .map(|_| self.managers[m].idle[self.rng.gen_range(0..idle_len)])
                .collect()
        };
        picks
            .into_iter()
            .map(|w| WorkerInfo {
                id: node_of_worker(w),
                ib: self.workers[w as usize].ib,
                reputation: self.workers[w as usize].reputation,
                tags: Vec::new(),
            })
            .collect()
    }

    /// Manager `m` claims `tid` for one of its idle workers. Returns false
    /// when no sampled worker may take it (the task waits).
    async fn claim(&mut self, m: usize, tid: TaskId) -> Result<bool, BenchError> {
        let Some(mut task) = self.store.task(tid).await.map_err(store_err)? else {
            return Ok(true);
        };
        if task.status != TaskStatus::Queued {
            return Ok(true);
        }
        let (min_ib, work) = match self.jobs.get(&tid.job) {
            Some(j) => (j.min_ib, j.work_per_frame_s),
            None => return Ok(true),
        };
        let Some(chosen) = self.choose(m, &task, min_ib) else {
            return Ok(false);
        };
        // Another manager read the same version and races for it.
        let racer = if self.rng.gen_bool(self.cfg.race) {
            let other = (m + 1) % self.managers.len();
            (other != m && self.managers[other].alive && !self.managers[other].idle.is_empty())
                .then(|| (other, task.clone()))
        } else {
            None
        };
        let w = chosen;
        let est_ms = task.frames.len() as f64 * work / self.workers[w as usize].ib * 1000.0;
        let lease_ms = (2.0 * est_ms) as u64 + 600_000;
        let now = self.abs_ms();
        let lease = Lease {
            worker: node_of_worker(w),
            manager: self.managers[m].id,
            deadline_ms: now + lease_ms,
            scene: None,
        };
        task.lease(lease, now).map_err(|e| BenchError::Run {
            name: "simulation".into(),
            reason: e.to_string(),
        })?;
        self.store.update_task(&mut task).await.map_err(store_err)?;
        self.c.leases += 1;
        self.take_idle(w);
        self.workers[w as usize].job = Some((tid, task.attempts));
        if let Some((other, mut stale)) = racer {
            if let Some(w2) = self.choose(other, &stale, min_ib) {
                let lease = Lease {
                    worker: node_of_worker(w2),
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
        }
        let gen = self.workers[w as usize].gen;
        if let Some(d) = self.message_delay() {
            self.at(
                d,
                Ev::Offer {
                    w,
                    task: tid,
                    attempt: task.attempts,
                    gen,
                    frames: task.frames.len() as u32,
                },
            );
        }
        self.at(
            lease_ms,
            Ev::LeaseExpiry {
                task: tid,
                attempt: task.attempts,
            },
        );
        Ok(true)
    }

    fn choose(&mut self, m: usize, task: &Task, min_ib: f64) -> Option<u32> {
        let sample = self.sample(m);
        let demand = TaskDemand {
            task: task.id,
            min_ib,
            tags: &[],
            excluded: &task.excluded,
        };
        let id = self.managers[m].scheduler.choose(&demand, &sample)?;
        let w = (id.0 - 1_000_000) as u32;
        (self.workers[w as usize].idle_pos.is_some()).then_some(w)
    }

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
            spec: spec.clone(),
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
        self.store
            .append_transaction(&Transaction::transfer(
                format!("escrow:{id}"),
                now,
                "escrow at submission",
                Account::User("client".into()),
                Account::Job(id),
                price,
            ))
            .await
            .map_err(store_err)?;
        self.c.jobs += 1;
        self.c.tasks += tasks.len() as u64;
        let work_per_frame_s = self
            .rng
            .gen_range(self.cfg.frame_work_s.0..self.cfg.frame_work_s.1);
        self.jobs.insert(
            id,
            JobInfo {
                min_ib: spec.min_ib,
                work_per_frame_s,
                remaining: tasks.len(),
                failed: 0,
                paid: 0,
                price,
            },
        );
        self.ready.extend(tasks.iter().map(|t| t.id));
        Ok(())
    }

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

    fn release(&mut self, w: u32, task: TaskId, attempt: u32) {
        if self.workers[w as usize].job == Some((task, attempt)) {
            self.workers[w as usize].job = None;
            self.make_idle(w);
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
        task.complete(result, now).map_err(|e| BenchError::Run {
            name: "simulation".into(),
            reason: e.to_string(),
        })?;
        self.store.update_task(&mut task).await.map_err(store_err)?;
        self.release(w, tid, attempt);
        self.start_round(m, task, w, fake).await
    }

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
            Round {
                manager: m,
                attempt: task.attempts,
                worker: w,
                fake,
                votes: Vec::new(),
                asked: Vec::new(),
            },
        );
        self.assign_verifiers(task.id);
        Ok(())
    }

    fn assign_verifiers(&mut self, tid: TaskId) {
        let quorum = self.cfg.quorum;
        loop {
            let Some(round) = self.rounds.get(&tid) else {
                return;
            };
            if round.votes.len() >= quorum {
                return;
            }
            let candidates: Vec<usize> = (0..self.free_verifiers.len())
                .filter(|&i| !round.asked.contains(&self.free_verifiers[i]))
                .take(8)
                .collect();
            if candidates.is_empty() {
                self.pending_verifications.push_back(tid);
                return;
            }
            let i = candidates[self.rng.gen_range(0..candidates.len())];
            let v = self.free_verifiers.swap_remove(i);
            let (attempt, fake) = {
                let r = self.rounds.get_mut(&tid).expect("round present");
                r.votes.push((v, None));
                r.asked.push(v);
                (r.attempt, r.fake)
            };
            let pass = !(fake && self.rng.gen_bool(self.cfg.detect));
            let work = self.rng.gen_range(2_000..20_000);
            let delivered = match self.message_delay() {
                Some(d) => {
                    self.at(
                        work + d,
                        Ev::Verdict {
                            v,
                            task: tid,
                            attempt,
                            pass,
                            delivered: true,
                        },
                    );
                    true
                }
                None => false,
            };
            if !delivered {
                self.at(
                    work,
                    Ev::Verdict {
                        v,
                        task: tid,
                        attempt,
                        pass,
                        delivered: false,
                    },
                );
            }
            self.at(
                120_000,
                Ev::VerifyTimeout {
                    v,
                    task: tid,
                    attempt,
                },
            );
        }
    }

    fn free_verifier(&mut self, v: u32) {
        self.free_verifiers.push(v);
        let waiting = self.pending_verifications.len();
        for _ in 0..waiting {
            let Some(t) = self.pending_verifications.pop_front() else {
                break;
            };
            self.assign_verifiers(t);
            if self.free_verifiers.is_empty() {
                break;
            }
        }
    }

    async fn verdict(
        &mut self,
        v: u32,
        tid: TaskId,
        attempt: u32,
        pass: bool,
        delivered: bool,
    ) -> Result<(), BenchError> {
        self.free_verifier(v);
        if !delivered {
            return Ok(());
        }
        let Some(r) = self.rounds.get_mut(&tid) else {
            return Ok(());
        };
        if r.attempt != attempt {
            return Ok(());
        }
        let Some(slot) = r
            .votes
            .iter_mut()
            .find(|(x, vote)| *x == v && vote.is_none())
        else {
            return Ok(());
        };
        slot.1 = Some(pass);
        if r.votes.len() < self.cfg.quorum || r.votes.iter().any(|(_, vote)| vote.is_none()) {
            return Ok(());
        }
        let r = self.rounds.remove(&tid).expect("round present");
        self.decide(tid, r).await
    }

    async fn decide(&mut self, tid: TaskId, r: Round) -> Result<(), BenchError> {
        let Some(mut task) = self.store.task(tid).await.map_err(store_err)? else {
            return Ok(());
        };
        if task.status != TaskStatus::Verifying || task.attempts != r.attempt {
            return Ok(());
        }
        let now = self.abs_ms();
        let passes = r.votes.iter().filter(|(_, v)| *v == Some(true)).count();
        let verifiers: Vec<u32> = r.votes.iter().map(|(v, _)| *v).collect();
        let accepted = passes >= self.cfg.quorum && passes == r.votes.len();
        if accepted {
            task.transition(TaskStatus::Accepted, now, "verified")
                .map_err(|e| BenchError::Setup(e.to_string()))?;
            self.store.update_task(&mut task).await.map_err(store_err)?;
            self.pass_votes.insert(tid, passes);
            self.store
                .append_transaction(&Transaction::transfer(
                    format!("pay:{tid}"),
                    now,
                    "accepted",
                    Account::Job(tid.job),
                    Account::Worker(node_of_worker(r.worker)),
                    PRICE_PER_TASK,
                ))
                .await
                .map_err(store_err)?;
            if r.fake {
                self.c.cheats_missed += 1;
            }
            self.c.accepted += 1;
            self.accepted_at.push(self.now);
            if let Some(j) = self.jobs.get_mut(&tid.job) {
                j.paid += PRICE_PER_TASK;
            }
            self.task_done(tid.job).await?;
        } else {
            task.transition(TaskStatus::Rejected, now, "verification failed")
                .map_err(|e| BenchError::Setup(e.to_string()))?;
            self.store.update_task(&mut task).await.map_err(store_err)?;
            let to = task
                .requeue(
                    now,
                    Some(node_of_worker(r.worker)),
                    self.cfg.max_attempts,
                    "rejected",
                )
                .map_err(|e| BenchError::Setup(e.to_string()))?;
            self.store.update_task(&mut task).await.map_err(store_err)?;
            if r.fake {
                self.c.cheats_caught += 1;
            }
            let ws = &mut self.workers[r.worker as usize];
            ws.reputation *= 0.5;
            self.store
                .append_transaction(&Transaction::transfer(
                    format!("slash:{tid}:{}", r.attempt),
                    now,
                    "rejected result",
                    Account::Stake(node_of_worker(r.worker)),
                    Account::PenaltyPool,
                    SLASH,
                ))
                .await
                .map_err(store_err)?;
            self.pool += SLASH;
            self.after_requeue(tid, to).await?;
        }
        // Verifiers of a decided round are paid from the penalty pool.
        let total = VERIFIER_REWARD * verifiers.len() as i64;
        if self.pool >= total && !verifiers.is_empty() {
            let mut postings = vec![Posting {
                account: Account::PenaltyPool,
                amount: -total,
            }];
            postings.extend(verifiers.iter().map(|&v| Posting {
                account: Account::Verifier(node_of_verifier(v)),
                amount: VERIFIER_REWARD,
            }));
            self.store
                .append_transaction(&Transaction {
                    id: format!("verifiers:{tid}:{}", r.attempt),
                    at_ms: now,
                    memo: "verification reward".into(),
                    postings,
                })
                .await
                .map_err(store_err)?;
            self.pool -= total;
        }
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

    async fn task_done(&mut self, job_id: JobId) -> Result<(), BenchError> {
        let Some(j) = self.jobs.get_mut(&job_id) else {
            return Ok(());
        };
        j.remaining -= 1;
        if j.remaining > 0 {
            return Ok(());
        }
        let (failed, refund) = (j.failed, j.price - j.paid);
        let now = self.abs_ms();
        if let Some(mut job) = self.store.job(job_id).await.map_err(store_err)? {
            let state = if failed > 0 {
                JobState::Failed
            } else {
                JobState::Completed
            };
            job.set_state(state, now, "all tasks finished");
            self.store.update_job(&job).await.map_err(store_err)?;
        }
        if refund > 0 {
            self.store
                .append_transaction(&Transaction::transfer(
                    format!("refund:{job_id}"),
                    now,
                    "unspent escrow",
                    Account::Job(job_id),
                    Account::User("client".into()),
                    refund,
                ))
                .await
                .map_err(store_err)?;
        }
        self.c.end_ms = self.now;
        Ok(())
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
        if only_if_expired && !task.lease_expired(now) {
            return Ok(());
        }
        let worker = task.lease.as_ref().map(|l| l.worker);
        let to = task
            .requeue(now, None, self.cfg.max_attempts, why)
            .map_err(|e| BenchError::Setup(e.to_string()))?;
        self.store.update_task(&mut task).await.map_err(store_err)?;
        if let Some(wid) = worker {
            let w = (wid.0 - 1_000_000) as u32;
            self.release(w, tid, attempt);
        }
        self.after_requeue(tid, to).await
    }

    fn worker_crash(&mut self, w: u32) {
        if !self.workers[w as usize].alive {
            return;
        }
        self.c.worker_crashes += 1;
        self.take_idle(w);
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
        self.take_idle(w);
        self.workers[w as usize].manager = None;
        if let Some((tid, attempt)) = self.workers[w as usize].job.take() {
            self.requeue_lease(tid, attempt, false, "worker vanished")
                .await?;
        }
        Ok(())
    }

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
        if !self.workers[w as usize].staked {
            self.workers[w as usize].staked = true;
            self.store
                .append_transaction(&Transaction::transfer(
                    format!("stake:{}", node_of_worker(w)),
                    self.abs_ms(),
                    "stake posted",
                    Account::User("operator".into()),
                    Account::Stake(node_of_worker(w)),
                    STAKE,
                ))
                .await
                .map_err(store_err)?;
        }
        self.attach(w, m);
        Ok(())
    }

    fn manager_crash(&mut self) {
        let alive: Vec<usize> = (0..self.managers.len())
            .filter(|&m| self.managers[m].alive)
            .collect();
        if alive.len() < 2 {
            return;
        }
        let m = alive[self.rng.gen_range(0..alive.len())];
        self.c.manager_crashes += 1;
        let idle = std::mem::take(&mut self.managers[m].idle);
        for w in idle {
            self.workers[w as usize].idle_pos = None;
        }
        self.managers[m].alive = false;
        self.managers[m].epoch += 1;
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
        let orphans: Vec<TaskId> = self
            .rounds
            .iter()
            .filter(|(_, r)| r.manager == m)
            .map(|(t, _)| *t)
            .collect();
        for t in orphans {
            self.rounds.remove(&t);
            self.at(120_000, Ev::Adopt { task: t });
        }
        let back = self.rng.gen_range(60_000..600_000);
        self.at(back, Ev::ManagerRestart { m });
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
        .map_err(|e| BenchError::Setup(e.to_string()))?;
        self.store.update_task(&mut task).await.map_err(store_err)?;
        self.c.adopted += 1;
        let w = (result.worker.0 - 1_000_000) as u32;
        let fake = result.frames.first().is_some_and(|f| {
            f.pixel_hash != ContentHash::of(&[f.frame.to_le_bytes(), [0; 4]].concat())
        });
        self.start_round(m, task, w, fake).await
    }

    async fn step(&mut self, ev: Ev) -> Result<(), BenchError> {
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
                task,
                attempt,
                pass,
                delivered,
            } => self.verdict(v, task, attempt, pass, delivered).await?,
            Ev::VerifyTimeout { v, task, attempt } => {
                let missing = self.rounds.get(&task).is_some_and(|r| {
                    r.attempt == attempt
                        && r.votes.iter().any(|(x, vote)| *x == v && vote.is_none())
                });
                if missing {
                    self.c.verifier_timeouts += 1;
                    if let Some(r) = self.rounds.get_mut(&task) {
                        r.votes.retain(|(x, _)| *x != v);
                    }
                    self.assign_verifiers(task);
                }
            }
            Ev::LeaseExpiry { task, attempt } => {
                if let Some(t) = self.store.task(task).await.map_err(store_err)? {
                    if t.status == TaskStatus::Leased && t.attempts == attempt {
                        self.c.expired += 1;
                    }
                }
                self.requeue_lease(task, attempt, true, "lease expired")
                    .await?;
            }
            Ev::WorkerCrash { w } => self.worker_crash(w),
            Ev::WorkerGone { w, m, epoch } => self.worker_gone(w, m, epoch).await?,
            Ev::WorkerJoin { w } => self.worker_join(w).await?,
            Ev::ManagerCrash => self.manager_crash(),
            Ev::ManagerRestart { m } => {
                self.managers[m].alive = true;
            }
            Ev::Adopt { task } => self.adopt(task).await?,
        }
        self.dispatch().await
    }

    async fn run(mut self) -> Result<SimOutcome, BenchError> {
        let wall = Instant::now();
        for w in 0..self.workers.len() as u32 {
            let d = self.rng.gen_range(0..60_000);
            self.at(d, Ev::WorkerJoin { w });
        }
        self.at(60_000, Ev::JobArrival);
        for _ in 0..self.cfg.manager_crashes {
            let at = self.rng.gen_range(0..self.cfg.day_s * 1000);
            self.at(at, Ev::ManagerCrash);
        }
        // Arrivals stop at the end of the day; the rest drains (bounded).
        let limit = self.cfg.day_s * 1000 + 30 * 86_400_000;
        while let Some(Reverse((t, _, ev))) = self.heap.pop() {
            if t > limit {
                break;
            }
            self.now = t;
            self.c.events += 1;
            self.step(ev).await?;
            if self.c.jobs as usize >= 1 && self.all_jobs_done() && t > self.cfg.day_s * 1000 {
                break;
            }
        }
        let wall_s = wall.elapsed().as_secs_f64();
        let checks = self.check().await?;
        let mut queue_ms = Vec::new();
        for id in self.jobs.keys() {
            for t in self.store.tasks_of_job(*id).await.map_err(store_err)? {
                let mut queued_at = None;
                for c in &t.history {
                    match c.status {
                        TaskStatus::Queued => queued_at = Some(c.at_ms),
                        TaskStatus::Leased => {
                            if let Some(q) = queued_at.take() {
                                queue_ms.push((c.at_ms - q) as f64);
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        queue_ms.sort_by(f64::total_cmp);
        let hours = (self.c.end_ms / 3_600_000 + 1) as usize;
        let mut per_hour = vec![0u64; hours];
        for &t in &self.accepted_at {
            per_hour[((t / 3_600_000) as usize).min(hours - 1)] += 1;
        }
        Ok(SimOutcome {
            counters: self.c.clone(),
            queue_ms,
            per_hour,
            wall_s,
            checks,
        })
    }

    fn all_jobs_done(&self) -> bool {
        self.jobs.values().all(|j| j.remaining == 0)
    }

    /// The invariants, checked against the store's records.
    async fn check(&self) -> Result<Vec<(String, bool, String)>, BenchError> {
        let mut checks = Vec::new();
        let mut lost = 0u64;
        let mut twice = 0u64;
        let mut without_quorum = 0u64;
        let mut overlapping_leases = 0u64;
        let mut unfinished_jobs = 0u64;
        let mut accepted_tasks = 0u64;
        for (id, info) in &self.jobs {
            let tasks = self.store.tasks_of_job(*id).await.map_err(store_err)?;
            let job = self.store.job(*id).await.map_err(store_err)?;
            if info.remaining > 0 || job.is_none_or(|j| j.state == JobState::Active) {
                unfinished_jobs += 1;
            }
            let mut seen: HashMap<u32, u32> = HashMap::new();
            for t in &tasks {
                let accepts = t
                    .history
                    .iter()
                    .filter(|c| c.status == TaskStatus::Accepted)
                    .count();
                if accepts > 1 {
                    twice += 1;
                }
                let mut leased = false;
                for c in &t.history {
                    if c.status == TaskStatus::Leased {
                        if leased {
                            overlapping_leases += 1;
                        }
                        leased = true;
                    } else {
                        leased = false;
                    }
                }
                match t.status {
                    TaskStatus::Accepted => {
                        accepted_tasks += 1;
                        let n = t.history.len();
                        let via_verifying =
                            n >= 2 && t.history[n - 2].status == TaskStatus::Verifying;
                        let votes = self.pass_votes.get(&t.id).copied().unwrap_or(0);
                        if !via_verifying || votes < self.cfg.quorum {
                            without_quorum += 1;
                        }
                        for f in &t.frames {
                            *seen.entry(*f).or_default() += 1;
                        }
                    }
                    TaskStatus::Failed => {}
                    _ => lost += t.frames.len() as u64,
                }
            }
            if seen.values().any(|&n| n > 1) {
                twice += 1;
            }
        }
        checks.push((
            "no frame lost".to_string(),
            lost == 0 && unfinished_jobs == 0,
            format!(
                "{lost} frames neither accepted nor in a failed task; {unfinished_jobs} jobs unfinished; {} tasks failed after {} attempts",
                self.c.failed, self.cfg.max_attempts
            ),
        ));
        checks.push((
            "no frame accepted twice".to_string(),
            twice == 0,
            format!("{twice} tasks or frames accepted more than once"),
        ));
        checks.push((
            "none accepted without quorum".to_string(),
            without_quorum == 0,
            format!(
                "{without_quorum} of {accepted_tasks} accepted tasks lacked {} passing verdicts",
                self.cfg.quorum
            ),
        ));
        checks.push((
            "never leased to two workers at once".to_string(),
            overlapping_leases == 0 && self.c.double_claims == 0,
            format!(
                "{overlapping_leases} overlapping leases; {} racing claims refused by compare-and-set, {} wrongly allowed",
                self.c.cas_conflicts, self.c.double_claims
            ),
        ));
        let txs = self.store.transactions().await.map_err(store_err)?;
        let mut balances: HashMap<Account, i64> = HashMap::new();
        let mut total = 0i64;
        let mut pays = 0u64;
        for tx in &txs {
            if tx.id.starts_with("pay:") {
                pays += 1;
            }
            for p in &tx.postings {
                *balances.entry(p.account.clone()).or_default() += p.amount;
                total += p.amount;
            }
        }
        let open_escrow: i64 = self
            .jobs
            .keys()
            .map(|j| balances.get(&Account::Job(*j)).copied().unwrap_or(0))
            .filter(|b| *b != 0)
            .count() as i64;
        let earned: i64 = balances
            .iter()
            .filter(|(a, _)| matches!(a, Account::Worker(_)))
            .map(|(_, b)| *b)
            .sum();
        let pool = balances.get(&Account::PenaltyPool).copied().unwrap_or(0);
        let ok = total == 0
            && open_escrow == 0
            && pays == accepted_tasks
            && earned == accepted_tasks as i64 * PRICE_PER_TASK
            && pool >= 0;
        checks.push((
            "ledger balances".to_string(),
            ok,
            format!(
                "{} transactions sum to {total}; {open_escrow} jobs with escrow left; {pays} payments for {accepted_tasks} accepted tasks; workers earned {earned}; penalty pool {pool}",
                txs.len()
            ),
        ));
        Ok(checks)
    }
}

/// Runs one seeded simulation to the end and returns what it saw.
pub fn simulate(cfg: SimConfig) -> Result<SimOutcome, BenchError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    rt.block_on(Sim::new(cfg).run())
}

/// Runs the simulation for `seed` and adds its figures and invariant checks
/// to `report`.
pub fn run(seed: u64, quick: bool, report: &mut Report) -> Result<SimOutcome, BenchError> {
    let cfg = if quick {
        SimConfig::quick(seed)
    } else {
        SimConfig::full(seed)
    };
    let o = simulate(cfg.clone())?;
    let c = &o.counters;
    let g = "simulate";
    let sim_s = c.end_ms as f64 / 1000.0;
    report.note(format!(
        "seed {seed}: {} workers, {} verifiers, {} managers sharing one MemoryTaskStore, {} s of \
         arrivals, quorum {}, loss {}, long delays {}, worker crash per task {}, {} manager \
         crashes, {:.0} % cheating workers (caught by each verifier with p = {}), racing claims \
         p = {}; scheduler sees {SAMPLE} sampled idle workers per decision",
        cfg.workers,
        cfg.verifiers,
        cfg.managers,
        cfg.day_s,
        cfg.quorum,
        cfg.loss,
        cfg.long_delay,
        cfg.worker_crash,
        cfg.manager_crashes,
        cfg.cheaters * 100.0,
        cfg.detect,
        cfg.race
    ));
    report.push(
        Row::new(g, "tasks accepted", c.accepted as f64, "tasks").note(format!(
            "{} jobs, {} tasks, {} failed, {} leases, last job done at {:.1} h simulated",
            c.jobs,
            c.tasks,
            c.failed,
            c.leases,
            sim_s / 3600.0
        )),
    );
    let day_h = (cfg.day_s / 3600).max(1) as usize;
    let in_day: u64 = o.per_hour.iter().take(day_h).sum();
    report.push(
        Row::new(
            g,
            "throughput while jobs arrive",
            in_day as f64 / day_h as f64,
            "tasks/h",
        )
        .note(format!(
            "{} frames/s; over the whole run until the last job finished: {:.0} tasks/h; \
             workers busy {:.0} % of the run",
            fmt_num(in_day as f64 * 5.0 / (day_h as f64 * 3600.0)),
            c.accepted as f64 / sim_s.max(1.0) * 3600.0,
            100.0 * c.busy_ms as f64 / (cfg.workers as f64 * c.end_ms.max(1) as f64)
        )),
    );
    report.push(Row::new(
        g,
        "queue latency p50 (queued → leased)",
        quantile(&o.queue_ms, 0.5) / 1000.0,
        "s",
    ));
    report.push(Row::new(
        g,
        "queue latency p99 (queued → leased)",
        quantile(&o.queue_ms, 0.99) / 1000.0,
        "s",
    ));
    report.push(
        Row::new(
            g,
            "simulation speed",
            c.events as f64 / o.wall_s.max(1e-9),
            "events/s",
        )
        .note(format!(
            "{} events in {:.1} s wall; faults: {} messages lost, {} leases expired, {} stale \
             results refused, {} worker crashes, {} manager crashes, {} rounds adopted, {} \
             verifier timeouts, {} cheats caught, {} missed, {} racing claims refused",
            c.events,
            o.wall_s,
            c.lost,
            c.expired,
            c.stale_results,
            c.worker_crashes,
            c.manager_crashes,
            c.adopted,
            c.verifier_timeouts,
            c.cheats_caught,
            c.cheats_missed,
            c.cas_conflicts
        )),
    );
    for (name, passed, detail) in &o.checks {
        report.check(name, *passed, detail.clone());
    }
    report.series.push((
        "tasks accepted per simulated hour".into(),
        o.per_hour
            .iter()
            .enumerate()
            .map(|(h, n)| (h as f64, *n as f64))
            .collect(),
    ));
    Ok(o)
}
