//! Makespan of a 1000-frame job (200 tasks) over 100 in-process workers of
//! mixed IB in virtual time, with 10 % of the workers leaving mid-task,
//! against the ideal (total work ÷ total IB).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use inferix_core::blob::BlobStore;
use inferix_core::ids::NodeId;
use inferix_core::protocol::JobEvent;
use inferix_core::scheduler::WeightedRandomScheduler;
use inferix_core::store::MemoryTaskStore;
use inferix_core::time::TokioClock;
use inferix_node::{
    Client, ManagerBuilder, ManagerConfig, VerifierConfig, VerifierNode, WorkerConfig, WorkerNode,
};
use inferix_storage::ObjectBlobStore;
use inferix_transport::InProcNetwork;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::watch;

use inferix_core::renderer::stand_in::{StandInBehaviour, StandInRenderer};

use crate::common::{bench_scene, bench_spec, identity, SessionCounter};
use crate::report::{Row, Target};
use crate::{BenchError, Options, Report};

/// Modelled work of one frame: seconds on a device of IB 1.
pub const FRAME_WORK_S: f64 = 10.0;

/// What the makespan run measured (virtual seconds).
#[derive(Debug, Clone)]
pub struct MakespanFigures {
    /// Submit → completion.
    pub makespan_s: f64,
    /// Total work ÷ total IB of all workers.
    pub ideal_s: f64,
    /// Total work ÷ IB of the workers that stayed.
    pub ideal_survivors_s: f64,
    /// Workers that left mid-task.
    pub killed: usize,
    /// Makespan of a clairvoyant greedy schedule of the same tasks on the
    /// same workers with nobody leaving: each task, in turn, to the worker
    /// that would finish it first. What task granularity alone costs.
    pub greedy_s: f64,
    /// The best any schedule could do given who left when: the time at
    /// which all workers, each working until it left, would have done the
    /// job's work if it could be split without limit and none of it were
    /// lost with a departing worker.
    pub fluid_s: f64,
}

/// The time `T` at which workers of `ibs` (IB 1 does one second of work a
/// second), each working until its departure time (`None`: stays), have
/// done `work_s` seconds of work.
pub fn fluid_makespan(ibs: &[(f64, Option<f64>)], work_s: f64) -> f64 {
    let done_by = |t: f64| -> f64 {
        ibs.iter()
            .map(|(ib, left)| ib * left.map_or(t, |l| t.min(l)))
            .sum()
    };
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    while done_by(hi) < work_s {
        hi *= 2.0;
        if hi > 1e12 {
            return f64::INFINITY;
        }
    }
    for _ in 0..100 {
        let mid = (lo + hi) / 2.0;
        if done_by(mid) < work_s {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

/// Makespan of giving `tasks` tasks of `task_work_s` (at IB 1), one by one,
/// each to the worker that would finish it earliest.
pub fn greedy_makespan(ibs: &[f64], tasks: usize, task_work_s: f64) -> f64 {
    let mut free_at = vec![0.0f64; ibs.len()];
    for _ in 0..tasks {
        let (i, end) = free_at
            .iter()
            .zip(ibs)
            .map(|(f, ib)| f + task_work_s / ib)
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or((0, 0.0));
        if let Some(f) = free_at.get_mut(i) {
            *f = end;
        }
    }
    free_at.into_iter().fold(0.0, f64::max)
}

/// Runs the job in a paused-clock runtime of its own.
pub fn makespan(
    workers: usize,
    frames: u32,
    chunk: u32,
    leave_fraction: f64,
    seed: u64,
) -> Result<MakespanFigures, BenchError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    std::thread::spawn(move || {
        rt.block_on(makespan_inner(workers, frames, chunk, leave_fraction, seed))
    })
    .join()
    .map_err(|_| BenchError::Run {
        name: "makespan".into(),
        reason: "the run panicked".into(),
    })?
}

async fn makespan_inner(
    workers: usize,
    frames: u32,
    chunk: u32,
    leave_fraction: f64,
    seed: u64,
) -> Result<MakespanFigures, BenchError> {
    let fail = |reason: String| BenchError::Run {
        name: "makespan".into(),
        reason,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let net = InProcNetwork::new();
    let store = Arc::new(MemoryTaskStore::new());
    let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::in_memory());
    let dir = tempfile::tempdir().map_err(|e| BenchError::Setup(e.to_string()))?;
    let scene = bench_scene(&*blobs, dir.path()).await?;
    let config = ManagerConfig {
        lease: Duration::from_secs(3600),
        heartbeat_timeout: Duration::from_secs(20),
        verification_timeout: Duration::from_secs(60),
        tick: Duration::from_secs(1),
        quorum: 1,
        max_attempts: 20,
        stake_epoch_minutes: 0.0,
        ..ManagerConfig::default()
    };
    let manager = ManagerBuilder::new(
        Arc::new(net.transport(NodeId(1))),
        store.clone(),
        blobs.clone(),
    )
    .scheduler(WeightedRandomScheduler::seeded(seed))
    .clock(Arc::new(TokioClock::starting_at(1_700_000_000_000)))
    .config(config)
    .scratch_dir(dir.path().join("manager"))
    .build()
    .start()
    .await
    .map_err(|e| fail(e.to_string()))?;
    let addr = manager.addr().to_string();
    let (stop, stopped) = watch::channel(false);
    let mut nodes = Vec::new();
    let mut total_ib = 0.0;
    let mut ibs = Vec::new();
    let hellos = SessionCounter::new();
    for i in 0..workers {
        let ib: f64 = rng.gen_range(0.5..3.0);
        total_ib += ib;
        ibs.push(ib);
        let renderer = Arc::new(StandInRenderer::new(
            StandInBehaviour::Honest,
            Duration::from_secs_f64(FRAME_WORK_S / ib),
        ));
        let busy = renderer.busy_flag();
        let cfg = WorkerConfig {
            manager: addr.clone(),
            ib,
            work_dir: dir.path().to_path_buf(),
            ..WorkerConfig::default()
        };
        let t = hellos.wrap(net.node(identity(5000 + i as u64)));
        let w = WorkerNode::new(Arc::new(t), renderer, cfg);
        nodes.push((Some(tokio::spawn(w.run(stopped.clone()))), busy, ib));
    }
    for i in 0..8u128 {
        let cfg = VerifierConfig {
            manager: addr.clone(),
            work_dir: dir.path().join("verifier"),
            ..VerifierConfig::default()
        };
        tokio::spawn(
            VerifierNode::new(Arc::new(net.transport(NodeId(900 + i))), cfg).run(stopped.clone()),
        );
    }
    let client = Client::connect(&net.transport(NodeId(2)), &addr, None)
        .await
        .map_err(|e| fail(format!("client: {e}")))?;
    // Every worker has been welcomed before the job arrives.
    let welcomed = hellos.wait_for(workers, Duration::from_secs(60)).await;
    if welcomed < workers {
        return Err(fail(format!(
            "only {welcomed} of {workers} workers connected"
        )));
    }
    let ideal_s = frames as f64 * FRAME_WORK_S / total_ib;
    let mut kill_at: Vec<f64> = (0..((workers as f64 * leave_fraction).round() as usize))
        .map(|_| rng.gen_range(0.1..0.6) * ideal_s)
        .collect();
    kill_at.sort_by(f64::total_cmp);
    let t0 = tokio::time::Instant::now();
    let (job, _) = client
        .submit(&bench_spec(scene, frames, chunk))
        .await
        .map_err(|e| fail(format!("submit: {e}")))?;
    let mut events = client
        .watch(job)
        .await
        .map_err(|e| fail(format!("watch: {e}")))?;
    let mut killed_ib = 0.0;
    let mut killed = 0;
    let mut departures: Vec<Option<f64>> = vec![None; nodes.len()];
    let mut next_kill = kill_at.into_iter().peekable();
    loop {
        let wait = match next_kill.peek() {
            Some(&at) => Duration::from_secs_f64((at - t0.elapsed().as_secs_f64()).max(0.0)),
            None => Duration::from_secs(365 * 86_400),
        };
        tokio::select! {
            ev = events.recv() => match ev {
                Some(JobEvent::Completed { .. }) => break,
                Some(JobEvent::Failed { reason }) => return Err(fail(format!("job failed: {reason}"))),
                Some(_) => {}
                None => return Err(fail("event stream ended".into())),
            },
            _ = tokio::time::sleep(wait) => {
                next_kill.next();
                let busy: Vec<usize> = nodes
                    .iter()
                    .enumerate()
                    .filter(|(_, (h, b, _))| h.is_some() && b.load(Ordering::SeqCst))
                    .map(|(i, _)| i)
                    .collect();
                if !busy.is_empty() {
                    let i = busy[rng.gen_range(0..busy.len())];
                    if let Some(h) = nodes[i].0.take() {
                        h.abort();
                        killed += 1;
                        killed_ib += nodes[i].2;
                        departures[i] = Some(t0.elapsed().as_secs_f64());
                    }
                }
            }
        }
    }
    let makespan_s = t0.elapsed().as_secs_f64();
    drop(client);
    let _ = stop.send(true);
    manager.shutdown().await;
    Ok(MakespanFigures {
        makespan_s,
        ideal_s,
        ideal_survivors_s: frames as f64 * FRAME_WORK_S / (total_ib - killed_ib).max(1e-9),
        killed,
        greedy_s: greedy_makespan(
            &ibs,
            frames.div_ceil(chunk) as usize,
            chunk as f64 * FRAME_WORK_S,
        ),
        fluid_s: fluid_makespan(
            &ibs.iter().copied().zip(departures).collect::<Vec<_>>(),
            frames as f64 * FRAME_WORK_S,
        ),
    })
}

/// Runs the makespan benchmark and adds its rows to `report`: the job as
/// the issue sets it (5 frames per task), and the same job in one-frame
/// tasks, which shows what the scheduler does once task size stops
/// bounding the result.
pub fn run(opts: &Options, report: &mut Report) -> Result<(), BenchError> {
    let (workers, frames) = if opts.quick { (20, 200) } else { (100, 1000) };
    for chunk in [5, 1] {
        let f = makespan(workers, frames, chunk, 0.1, 1)?;
        report.push(
            Row::new(
                "makespan",
                &format!(
                    "{frames}-frame job in {} tasks, {workers} workers, makespan ÷ ideal",
                    frames.div_ceil(chunk)
                ),
                f.makespan_s / f.ideal_s,
                "×",
            )
            .baseline(
                f.greedy_s / f.ideal_s,
                "clairvoyant greedy schedule, nobody leaving, ÷ ideal",
            )
            .target(Target::AtMost(1.05))
            .note(format!(
                "virtual time; makespan {:.0} s, ideal {:.0} s (work ÷ IB of all workers); \
                 {} workers left mid-task, after which no schedule can beat {:.0} s = {:.2}× \
                 ideal (each worker busy until it left, work split without limit, none lost), \
                 so this run is {:.2}× that bound; IB 0.5–3.0, {FRAME_WORK_S} s per frame at \
                 IB 1, {chunk} frame(s) per task",
                f.makespan_s,
                f.ideal_s,
                f.killed,
                f.fluid_s,
                f.fluid_s / f.ideal_s,
                f.makespan_s / f.fluid_s
            )),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fluid_bound_counts_each_worker_until_it_leaves() {
        let close = |a: f64, b: f64| (a - b).abs() < 1e-6;
        assert!(close(
            fluid_makespan(&[(1.0, None), (1.0, None)], 10.0),
            5.0
        ));
        // The second worker does 2 s of work before leaving.
        assert!(close(
            fluid_makespan(&[(1.0, None), (1.0, Some(2.0))], 10.0),
            8.0
        ));
        // A worker leaving after the end changes nothing.
        assert!(close(
            fluid_makespan(&[(2.0, None), (1.0, Some(50.0))], 9.0),
            3.0
        ));
        assert!(fluid_makespan(&[(1.0, Some(1.0))], 5.0).is_infinite());
    }

    #[test]
    fn greedy_gives_each_task_to_the_earliest_finisher() {
        // Two tasks of 6 s: one each on IB 3 and IB 1 would end at 6 s;
        // both on IB 3 end at 4 s.
        assert!((greedy_makespan(&[3.0, 1.0], 2, 6.0) - 4.0).abs() < 1e-9);
    }
}
