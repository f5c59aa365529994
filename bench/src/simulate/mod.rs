//! A deterministic, seeded discrete-event simulation of a whole network at
//! a scale no process could run as real nodes, running the manager's own
//! rules.
//!
//! What is real: every manager decision comes from `inferix-manager`, the
//! engine the manager node runs: dispatch passes ([`dispatch::plan`] over a
//! [`WorkerPool`] with the seeded [`WeightedRandomScheduler`] and
//! finish-time [`Estimates`]), verification rounds ([`Engine`]: quorum,
//! majority, one more vote on a tie, deadlines, lost verifiers), and the
//! ledger rules ([`economy`]: stake grants and refusals, payments written
//! with the acceptance in one batch, slashes, verifier rewards, refunds).
//! The task store ([`MemoryTaskStore`], shared by every manager, every
//! change a compare-and-set), the task state machine and job splitting are
//! the core crate's.
//!
//! What is modelled: workers, verifiers and managers are a few bytes of
//! state each in one event loop over a virtual clock; messages are events
//! with a random delay, some lost and a few delayed for minutes; rendering
//! takes `frames × work ÷ IB`; verifiers check one result after another,
//! a few seconds each, and catch a cheater's fake result with a fixed
//! probability. Managers learn of queued tasks from one shared notification
//! queue (what PostgreSQL's NOTIFY gives several managers); each dispatch
//! pass offers the scheduler the [`SAMPLE`] longest-idle workers.
//! Faults: message loss and delay, workers crashing mid-task (noticed after a
//! heartbeat timeout) and rejoining later, managers crashing with their
//! engine's state (their workers and verifiers reconnect elsewhere; their
//! leases expire; their open verification rounds are adopted by another
//! manager), cheating workers, and two managers racing for one task (the
//! store's compare-and-set must refuse one).
//!
//! [`dispatch::plan`]: inferix_manager::dispatch::plan
//! [`WorkerPool`]: inferix_manager::workers::WorkerPool
//! [`WeightedRandomScheduler`]: inferix_core::scheduler::WeightedRandomScheduler
//! [`Estimates`]: inferix_manager::estimates::Estimates
//! [`Engine`]: inferix_manager::Engine
//! [`economy`]: inferix_manager::economy
//! [`MemoryTaskStore`]: inferix_core::store::MemoryTaskStore

mod attack_rows;
mod checks;
mod network;

use std::time::Instant;

use inferix_core::store::TaskStore;
use inferix_core::task::TaskStatus;

use crate::common::quantile;
use crate::report::{fmt_num, Row};
use crate::{BenchError, Report};
use network::Sim;

/// Longest-idle workers a dispatch pass offers the scheduler per task.
pub const SAMPLE: usize = 32;

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
    /// Fraction of verifiers that collude with the cheating workers: they
    /// pass every fake result and judge the rest honestly (known-bad
    /// results included, which they tell from their partners' work).
    pub colluders: f64,
    /// Fraction of verifiers that pass whatever they are offered, at once.
    pub rubber_stamps: f64,
    /// Chance per seat of a known-bad result besides (the engine's forced
    /// errors; 0 turns them off).
    pub forced_error_rate: f64,
    /// Fraction of honest workers that hand every task they are offered
    /// back a few seconds later, unrendered.
    pub griefers: f64,
    /// Fraction of honest workers that announce 50 times their real
    /// speed.
    pub ib_liars: f64,
    /// Fresh keys of cheating workers, each with its stake, that join
    /// half-way through the day besides `workers`.
    pub sybils: usize,
    /// Fraction of finished jobs whose owner claims every frame, then
    /// claims the same frames again.
    pub claim_abusers: f64,
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
            colluders: 0.0,
            rubber_stamps: 0.0,
            forced_error_rate: 0.0,
            griefers: 0.0,
            ib_liars: 0.0,
            claim_abusers: 0.0,
            sybils: 0,
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
    /// Passed results checked again because their worker was caught.
    pub recalls: u64,
    /// Of those, fakes found and refunded (their passers slashed).
    pub fakes_recalled: u64,
    /// Honest verifiers slashed by a recall (must stay 0).
    pub honest_recall_slashed: u64,
    /// Verification offers the engines sent (a quorum per round, plus
    /// tie-breaking votes and votes drawn again after a deadline or a lost
    /// verifier).
    pub verification_offers: u64,
    /// Rounds whose verifiers disagreed (settled by the manager's own
    /// check).
    pub split_rounds: u64,
    /// Disputed rounds the manager checked itself.
    pub arbitrations: u64,
    /// Unanimous passes of workers on probation the manager checked
    /// itself before they were paid (audits).
    pub audits: u64,
    /// Times a round said it waits for a verifier.
    pub round_waits: u64,
    /// Times a dispatch pass reported a job no connected worker may take.
    pub dispatch_waits: u64,
    /// Honest results rejected (must stay 0).
    pub honest_rejected: u64,
    /// Hellos refused by the stake rule (slashed workers coming back).
    pub refused_joins: u64,
    /// Workers disconnected after a slash.
    pub slashed_disconnects: u64,
    /// Tasks handed back unrendered by griefers.
    pub hand_backs: u64,
    /// Times a worker was blocklisted for a job after losing its leases.
    pub blocklisted: u64,
    /// Tasks accepted from workers that announce more than their speed.
    pub liar_accepted: u64,
    /// The liars' share of the network's real speed, in millionths.
    pub liar_speed_ppm: u64,
    /// Sybil keys admitted, and of those slashed and disconnected.
    pub sybils_admitted: u64,
    /// Sybil keys slashed and disconnected.
    pub sybils_slashed: u64,
    /// Fake results of Sybil keys that were paid.
    pub sybil_fakes_paid: u64,
    /// Jobs whose owner claimed every frame.
    pub claimed_jobs: u64,
    /// Claim checks filed (one per claimed task).
    pub claims_filed: u64,
    /// Claims refused when filed (the same frames again, or no renderer).
    pub claims_refused: u64,
    /// Claim checks upheld on an accepted fake result.
    pub claims_upheld_on_fakes: u64,
    /// Claim checks upheld on honest work (must stay 0).
    pub claims_upheld_on_honest: u64,
    /// Claim checks dismissed.
    pub claims_dismissed: u64,
    /// Bonds taken from claimants, micro-credits.
    pub claim_bonds: i64,
    /// Bonds forfeited by dismissed claims, micro-credits.
    pub claim_bonds_forfeited: i64,
    /// Refunds paid on upheld claims, micro-credits.
    pub claim_refunds: i64,
    /// Colluding or rubber-stamp verifiers in the network.
    pub bad_verifiers: u64,
    /// Of those, removed (caught passing a known-bad result, or slashed
    /// for a losing vote).
    pub bad_verifiers_removed: u64,
    /// Verifications each removed bad verifier answered before removal.
    pub removed_after: Vec<u64>,
    /// Verifications answered by each bad verifier still in the network
    /// at the end.
    pub surviving_bad_answered: Vec<u64>,
    /// Honest verifiers caught by a known-bad result (must stay 0).
    pub honest_verifiers_removed: u64,
    /// Honest verifiers outvoted (a losing vote is slashed).
    pub honest_verifiers_slashed: u64,
    /// Known-bad results offered.
    pub forced_offers: u64,
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

/// Runs the simulation to its end (every job finished after the day, or a
/// month of draining) and collects what it saw.
async fn run_sim(mut sim: Sim) -> Result<SimOutcome, BenchError> {
    let wall = Instant::now();
    sim.start();
    // Arrivals stop at the end of the day; the rest drains (bounded).
    let day_ms = sim.cfg.day_s * 1000;
    let limit = day_ms + 30 * 86_400_000;
    while let Some(ev) = sim.next_event(limit) {
        sim.step(ev).await?;
        if sim.c.jobs >= 1 && sim.all_jobs_done() && sim.now() > day_ms {
            break;
        }
    }
    let wall_s = wall.elapsed().as_secs_f64();
    let checks = sim.check().await?;
    sim.c.surviving_bad_answered = sim.surviving_bad_answered();
    let mut queue_ms = Vec::new();
    for id in sim.jobs.keys() {
        let tasks = sim
            .store
            .tasks_of_job(*id)
            .await
            .map_err(|e| BenchError::Run {
                name: "simulation".into(),
                reason: e.to_string(),
            })?;
        for t in tasks {
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
    let hours = (sim.c.end_ms / 3_600_000 + 1) as usize;
    let mut per_hour = vec![0u64; hours];
    for &t in &sim.accepted_at {
        per_hour[((t / 3_600_000) as usize).min(hours - 1)] += 1;
    }
    Ok(SimOutcome {
        counters: sim.c.clone(),
        queue_ms,
        per_hour,
        wall_s,
        checks,
    })
}

/// Runs one seeded simulation to the end and returns what it saw.
pub fn simulate(cfg: SimConfig) -> Result<SimOutcome, BenchError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    rt.block_on(run_sim(Sim::new(cfg)))
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
         p = {}; every manager runs the engine's rules (dispatch passes offer the scheduler the \
         {SAMPLE} longest-idle workers; rounds, stakes and payments as the manager node)",
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
             verification offers for {} accepted tasks, {} split rounds settled by the \
             manager's own check, {} cheats caught, {} missed, {} racing claims refused, {} slashed \
             workers refused at their next hello",
            c.events,
            o.wall_s,
            c.lost,
            c.expired,
            c.stale_results,
            c.worker_crashes,
            c.manager_crashes,
            c.adopted,
            c.verification_offers,
            c.accepted,
            c.split_rounds,
            c.cheats_caught,
            c.cheats_missed,
            c.cas_conflicts,
            c.refused_joins
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

/// One protocol-level attack the adversarial run plays.
#[derive(Debug, Clone, Copy)]
pub struct Attack {
    /// Its name in the report.
    pub name: &'static str,
    /// Fraction of verifiers (each holding one verifier's stake) that
    /// collude with the cheating workers.
    pub colluders: f64,
    /// Fraction of verifiers that pass everything.
    pub rubber_stamps: f64,
    /// Fraction of honest workers that hand every task back.
    pub griefers: f64,
    /// Fraction of honest workers that announce 50 times their speed.
    pub ib_liars: f64,
    /// Fresh cheating keys joining half-way through the day.
    pub sybils: usize,
    /// Fraction of finished jobs whose owner claims every frame.
    pub claim_abusers: f64,
    /// Share of the base network's workers that run (1.0: all). Fewer
    /// workers render more results each, so a cheater whose fake passed
    /// renders again: what a recall needs to catch it.
    pub worker_share: f64,
}

/// The attacks of the adversarial run: colluding verifiers holding 10 %,
/// 30 % and 49 % of verifier stake beside cheating workers, always-pass
/// verifiers, workers that hand every task back, and workers that lie
/// about their speed.
pub const ATTACKS: [Attack; 10] = [
    Attack {
        name: "no attack (cheating workers only)",
        colluders: 0.0,
        rubber_stamps: 0.0,
        ..NO_ATTACK
    },
    Attack {
        name: "colluders 10 %",
        colluders: 0.10,
        rubber_stamps: 0.0,
        ..NO_ATTACK
    },
    Attack {
        name: "colluders 30 %",
        colluders: 0.30,
        rubber_stamps: 0.0,
        ..NO_ATTACK
    },
    Attack {
        name: "colluders 49 %",
        colluders: 0.49,
        rubber_stamps: 0.0,
        ..NO_ATTACK
    },
    Attack {
        name: "colluders 49 %, cheaters who keep working (a tenth of the workers)",
        colluders: 0.49,
        rubber_stamps: 0.0,
        worker_share: 0.1,
        ..NO_ATTACK
    },
    Attack {
        name: "always-pass verifiers 10 %",
        colluders: 0.0,
        rubber_stamps: 0.10,
        ..NO_ATTACK
    },
    Attack {
        name: "hand-back griefers 10 %",
        griefers: 0.10,
        ..NO_ATTACK
    },
    Attack {
        name: "IB liars 10 % (announce 50x)",
        ib_liars: 0.10,
        ..NO_ATTACK
    },
    Attack {
        name: "Sybil flood (fresh cheating keys, a quarter of the workers)",
        sybils: usize::MAX,
        ..NO_ATTACK
    },
    Attack {
        name: "claim abusers (a quarter of the jobs' owners)",
        claim_abusers: 0.25,
        ..NO_ATTACK
    },
];

const NO_ATTACK: Attack = Attack {
    name: "",
    colluders: 0.0,
    rubber_stamps: 0.0,
    griefers: 0.0,
    ib_liars: 0.0,
    sybils: 0,
    claim_abusers: 0.0,
    worker_share: 1.0,
};

/// The simulation of `attack` on the network of `base`: forced errors on
/// at the product's 5 %, and every fake caught by an honest verifier (the
/// image-level checks catch the cheats that pay; what is measured here is
/// what the protocol lets through around them).
pub fn attack_config(base: &SimConfig, attack: Attack) -> SimConfig {
    SimConfig {
        colluders: attack.colluders,
        rubber_stamps: attack.rubber_stamps,
        griefers: attack.griefers,
        ib_liars: attack.ib_liars,
        claim_abusers: attack.claim_abusers,
        // usize::MAX: a quarter of the network's workers.
        sybils: if attack.sybils == usize::MAX {
            base.workers / 4
        } else {
            attack.sybils
        },
        forced_error_rate: 0.05,
        detect: 1.0,
        workers: ((base.workers as f64 * attack.worker_share) as usize).max(1),
        ..base.clone()
    }
}

/// Plays every attack of [`ATTACKS`] on the quick (or full) network of
/// `seed` and reports, for each: fake results paid, honest results
/// rejected, honest verifiers slashed, and how fast bad verifiers are
/// removed. Checks the targets the protocol meets at any colluding share:
/// no honest result rejected, no honest verifier caught by a known-bad
/// result, and every always-pass verifier removed within 100 verifications.
pub fn run_adversarial(
    seed: u64,
    quick: bool,
    report: &mut Report,
) -> Result<Vec<(Attack, SimOutcome)>, BenchError> {
    let base = if quick {
        SimConfig::quick(seed)
    } else {
        SimConfig::full(seed)
    };
    report.note(format!(
        "adversarial runs, seed {seed}: {} workers ({:.0} % cheating, each fake caught by an \
         honest verifier with p = {}), {} verifiers, quorum {} (twice that for a worker's first {} results), forced \
         errors at 5 % of seats; colluders pass their partners' fakes and judge the rest \
         honestly (they tell known-bad results from their partners' work), always-pass \
         verifiers pass everything at once; a round whose votes disagree is settled by the \
         manager's own check; a losing vote or a passed known-bad result removes a verifier",
        base.workers,
        base.cheaters * 100.0,
        base.detect,
        base.verifiers,
        base.quorum,
        inferix_manager::operators::PROBATION_TASKS
    ));
    let g = "adversarial";
    let mut out = Vec::new();
    for attack in ATTACKS {
        let o = simulate(attack_config(&base, attack))?;
        let c = &o.counters;
        let fakes = c.cheats_caught + c.cheats_missed;
        let honest = c.accepted.saturating_sub(c.cheats_missed) + c.honest_rejected;
        let mut removed = c.removed_after.clone();
        removed.sort_unstable();
        let mean = if removed.is_empty() {
            0.0
        } else {
            removed.iter().sum::<u64>() as f64 / removed.len() as f64
        };
        let survivor_max = c.surviving_bad_answered.iter().max().copied().unwrap_or(0);
        // A fake that passed and was recalled was paid back.
        let kept = c.cheats_missed - c.fakes_recalled;
        report.push(
            Row::new(
                g,
                &format!("{}: fake results paid", attack.name),
                kept as f64,
                "results",
            )
            .note(format!(
                "of {fakes} fake results ({:.2} %), after {} that passed were recalled and \
                 refunded once their worker was caught ({} recalls checked); {} passes of \
                 workers on probation audited by the manager before payment; honest results \
                 rejected {} of {honest}; honest verifiers slashed (outvoted {}, by a recall {}); \
                 bad verifiers removed {} of {} after \
                 {mean:.1} verifications on average (max {}), the others answered at most \
                 {survivor_max}; {} known-bad offers",
                100.0 * kept as f64 / fakes.max(1) as f64,
                c.fakes_recalled,
                c.recalls,
                c.audits,
                c.honest_rejected,
                c.honest_verifiers_slashed,
                c.honest_recall_slashed,
                c.bad_verifiers_removed,
                c.bad_verifiers,
                removed.last().copied().unwrap_or(0),
                c.forced_offers
            )),
        );
        report.check(
            &format!("{}: no honest result rejected", attack.name),
            c.honest_rejected == 0,
            format!("{} of {honest}", c.honest_rejected),
        );
        report.check(
            &format!("{}: no honest verifier slashed by a recall", attack.name),
            c.honest_recall_slashed == 0,
            format!(
                "{} of the passers of {} recalled fakes",
                c.honest_recall_slashed, c.fakes_recalled
            ),
        );
        report.check(
            &format!(
                "{}: no honest verifier caught by a known-bad result",
                attack.name
            ),
            c.honest_verifiers_removed == 0,
            format!("{}", c.honest_verifiers_removed),
        );
        if attack.griefers > 0.0 {
            griefer_rows(report, attack.name, c);
        }
        if attack.ib_liars > 0.0 {
            liar_rows(report, attack.name, c);
        }
        if attack.sybils > 0 {
            sybil_rows(report, attack.name, c);
        }
        if attack.claim_abusers > 0.0 {
            attack_rows::claim_rows(report, attack.name, c);
        }
        if attack.rubber_stamps > 0.0 {
            report.check(
                &format!(
                    "{}: every always-pass verifier is removed within 100 verifications",
                    attack.name
                ),
                removed.iter().all(|n| *n <= 100) && survivor_max <= 100,
                format!("removed after {removed:?}; survivors answered at most {survivor_max}"),
            );
        }
        out.push((attack, o));
    }
    Ok(out)
}

/// What hand-back griefers cost: tasks failed (none may), hand-backs, and
/// how often the blocklist rule stopped a griefer on a job.
fn griefer_rows(report: &mut Report, name: &str, c: &SimCounters) {
    report.push(
        Row::new(
            "adversarial",
            &format!("{name}: tasks failed"),
            c.failed as f64,
            "tasks",
        )
        .note(format!(
            "{} tasks handed back unrendered; a griefer was blocklisted for a job {} times \
                 (after 3 lost leases on it); {} tasks accepted",
            c.hand_backs, c.blocklisted, c.accepted
        )),
    );
    report.check(
        &format!("{name}: no task fails, however many are handed back"),
        c.failed == 0,
        format!("{} failed, {} hand-backs", c.failed, c.hand_backs),
    );
}

/// What workers announcing 50 times their speed win: their share of the
/// accepted tasks against their share of the network's real speed.
fn liar_rows(report: &mut Report, name: &str, c: &SimCounters) {
    let share = c.liar_accepted as f64 / c.accepted.max(1) as f64;
    let fair = c.liar_speed_ppm as f64 / 1e6;
    let ratio = share / fair.max(f64::MIN_POSITIVE);
    report.push(
        Row::new(
            "adversarial",
            &format!("{name}: their share of accepted tasks"),
            100.0 * share,
            "%",
        )
        .baseline(100.0 * fair, "their share of the real speed, %")
        .note(format!(
            "{} of {} tasks; the manager caps an announced index at twice the speed it measured",
            c.liar_accepted, c.accepted
        )),
    );
    report.check(
        &format!("{name}: they win at most twice their share of the real speed"),
        ratio <= 2.0,
        format!("{ratio:.2}x"),
    );
}

/// What a flood of fresh cheating keys achieves: each must bring its own
/// stake, and each fake it returns is checked like any other.
fn sybil_rows(report: &mut Report, name: &str, c: &SimCounters) {
    report.push(
        Row::new(
            "adversarial",
            &format!("{name}: their fake results paid"),
            c.sybil_fakes_paid as f64,
            "results",
        )
        .note(format!(
            "{} keys admitted with a stake each; {} slashed and disconnected",
            c.sybils_admitted, c.sybils_slashed
        )),
    );
    report.check(
        &format!("{name}: no fake result of theirs is paid without colluding verifiers"),
        c.sybil_fakes_paid == 0,
        format!(
            "{} paid; {} of {} keys slashed",
            c.sybil_fakes_paid, c.sybils_slashed, c.sybils_admitted
        ),
    );
}
