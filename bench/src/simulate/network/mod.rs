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
use inferix_manager::results::{FailureCounts, FAILURE_REPUTATION_FACTOR};
use inferix_manager::workers::WorkerPool;
use inferix_manager::{Command, Engine, Event, RoundConfig, Settlement};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

mod claims;
mod jobs;
mod leasing;
mod managers;
mod verification;
mod workers;

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
/// Leases a worker may lose on one job before it is blocklisted for it
/// (the manager's default `failures_before_blocklist`).
const FAILURES_BEFORE_BLOCKLIST: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Ev {
    JobArrival,
    /// The owner of a finished job looks at its frames and may claim.
    Review {
        job: JobId,
    },
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
    VerifierRemoved {
        v: u32,
        m: usize,
        epoch: u32,
    },
    ManagerCrash,
    ManagerRestart {
        m: usize,
    },
    Adopt {
        task: TaskId,
    },
    HandBack {
        w: u32,
        task: TaskId,
        attempt: u32,
        gen: u32,
    },
}

struct WorkerState {
    /// Real speed.
    ib: f64,
    /// Speed it announces (an IB liar's is 50 times `ib`).
    declared_ib: f64,
    cheater: bool,
    /// Hands back every task it is offered.
    griefer: bool,
    /// A fresh key of the Sybil flood.
    sybil: bool,
    /// Admitted once (counted for the Sybil flood).
    admitted: bool,
    alive: bool,
    gen: u32,
    reputation: f64,
    /// Results of its accepted so far: fewer than the probation count
    /// get twice the verifiers.
    accepted: u64,
    manager: Option<usize>,
    job: Option<(TaskId, u32)>,
}

/// How a modelled verifier answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VerifierKind {
    Honest,
    /// Passes its partners' fake results; honest otherwise.
    Colluder,
    /// Passes everything, at once.
    RubberStamp,
}

struct VerifierState {
    kind: VerifierKind,
    /// Caught or slashed: never comes back.
    removed: bool,
    /// Offers it answered.
    answered: u64,
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
    /// Leases lost through each worker per job (blocklisting).
    failures: FailureCounts,
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
    /// Whether the task's challenges land on the pixels the fake got
    /// wrong: every verifier that checks (and the manager) is sent the
    /// same challenges and re-renders deterministically, so all of them
    /// see the same thing.
    detectable: bool,
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
    /// Accepted tasks whose result was fake (a claim on them is right),
    /// and whether a check that looks finds it (the manager's does).
    fakes_accepted: HashMap<TaskId, bool>,
    next_claim: u64,
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
    /// Verifications answered by each colluding or always-pass verifier
    /// not removed.
    pub(super) fn surviving_bad_answered(&self) -> Vec<u64> {
        self.verifiers
            .iter()
            .filter(|v| v.kind != VerifierKind::Honest && !v.removed)
            .map(|v| v.answered)
            .collect()
    }

    pub(super) fn new(cfg: SimConfig) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let workers: Vec<WorkerState> = (0..cfg.workers)
            .map(|_| {
                let ib = rng.gen_range(0.5..3.0);
                let cheater = rng.gen_bool(cfg.cheaters);
                // Drawn only when asked for, so other runs keep their streams.
                let mut draw = |p: f64| !cheater && p > 0.0 && rng.gen_bool(p);
                let griefer = draw(cfg.griefers);
                let liar = !griefer && draw(cfg.ib_liars);
                (ib, cheater, griefer, liar)
            })
            .map(|(ib, cheater, griefer, liar)| WorkerState {
                ib,
                declared_ib: if liar { ib * 50.0 } else { ib },
                cheater,
                griefer,
                sybil: false,
                admitted: false,
                alive: true,
                gen: 0,
                reputation: 1.0,
                accepted: 0,
                manager: None,
                job: None,
            })
            .collect();
        let mut workers = workers;
        for _ in 0..cfg.sybils {
            let ib = rng.gen_range(0.5..3.0);
            workers.push(WorkerState {
                ib,
                declared_ib: ib,
                cheater: true,
                griefer: false,
                sybil: true,
                admitted: false,
                alive: true,
                gen: 0,
                reputation: 1.0,
                accepted: 0,
                manager: None,
                job: None,
            });
        }
        let round_cfg = RoundConfig {
            quorum: cfg.quorum,
            vote_timeout_ms: 120_000,
            draw_key: rng.gen(),
            forced_errors: inferix_manager::ForcedErrorConfig {
                rate: cfg.forced_error_rate,
            },
            ..RoundConfig::default()
        };
        let managers = (0..cfg.managers)
            .map(|m| ManagerState {
                id: NodeId(10 + m as u128),
                alive: true,
                epoch: 0,
                engine: Engine::new(round_cfg.clone()),
                failures: FailureCounts::default(),
                pool: WorkerPool::default(),
                estimates: Estimates::default(),
                scheduler: WeightedRandomScheduler::seeded(cfg.seed ^ (m as u64 + 1)),
            })
            .collect();
        let verifiers: Vec<VerifierState> = (0..cfg.verifiers)
            .map(|_| {
                let x: f64 = rng.gen();
                let kind = if x < cfg.colluders {
                    VerifierKind::Colluder
                } else if x < cfg.colluders + cfg.rubber_stamps {
                    VerifierKind::RubberStamp
                } else {
                    VerifierKind::Honest
                };
                VerifierState {
                    kind,
                    removed: false,
                    answered: 0,
                    manager: None,
                    busy_until: 0,
                }
            })
            .collect();
        let bad = verifiers
            .iter()
            .filter(|v| v.kind != VerifierKind::Honest)
            .count() as u64;
        let total: f64 = workers.iter().map(|w| w.ib).sum();
        let lying: f64 = workers
            .iter()
            .filter(|w| w.declared_ib > w.ib)
            .map(|w| w.ib)
            .sum();
        let liar_speed_ppm = (lying / total.max(f64::MIN_POSITIVE) * 1e6) as u64;
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
            c: SimCounters {
                bad_verifiers: bad,
                liar_speed_ppm,
                ..SimCounters::default()
            },
            accepted_at: Vec::new(),
            fakes_accepted: HashMap::new(),
            next_claim: 1,
        }
    }

    /// Queues the first events: workers and verifiers join over the first
    /// minute, jobs start arriving, crashes are drawn, engines tick.
    pub(super) fn start(&mut self) {
        let half_day = self.cfg.day_s * 500;
        for w in 0..self.workers.len() as u32 {
            let d = self.rng.gen_range(0..60_000);
            let at = if self.workers[w as usize].sybil {
                half_day + d
            } else {
                d
            };
            self.at(at, Ev::WorkerJoin { w });
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

    pub(super) fn at(&mut self, delay_ms: u64, ev: Ev) {
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
            Ev::Review { job } => self.maybe_claim(job).await?,
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
                    self.verifiers[v as usize].answered += 1;
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
                        inconclusive: None,
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
            Ev::VerifierRemoved { v, m, epoch } => {
                if self.managers[m].alive && self.managers[m].epoch == epoch {
                    let ev = Event::VerifierLeft {
                        verifier: node_of_verifier(v),
                    };
                    self.engine_event(m, ev).await?;
                }
            }
            Ev::ManagerCrash => self.manager_crash(),
            Ev::ManagerRestart { m } => self.manager_restart(m).await?,
            Ev::Adopt { task } => self.adopt(task).await?,
            Ev::HandBack {
                w,
                task,
                attempt,
                gen,
            } => self.hand_back(w, task, attempt, gen).await?,
        }
        self.dispatch().await
    }
}
