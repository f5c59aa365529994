//! Task dispatches per second through a real manager (split → assign →
//! lease → result → verify → accept) with many in-process workers that
//! answer at once, on each task store, next to the store's raw rate for
//! the same record changes; and the resident memory each idle connected
//! worker costs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use inferix_core::blob::BlobStore;
use inferix_core::ids::{JobId, NodeId, TaskId};
use inferix_core::job::{FrameRange, Job, JobSpec, JobState};
use inferix_core::ledger::{Account, Transaction};
use inferix_core::protocol::JobEvent;
use inferix_core::store::TaskStore;
use inferix_core::task::{FrameOutput, Lease, Task, TaskResult, TaskStatus};
use inferix_core::ContentHash;
use inferix_node::{
    Client, ManagerBuilder, ManagerConfig, VerifierConfig, VerifierNode, WorkerConfig, WorkerNode,
};
use inferix_storage::ObjectBlobStore;
use inferix_transport::InProcNetwork;
use tokio::sync::watch;

use inferix_core::renderer::stand_in::StandInRenderer;

use crate::common::{bench_scene, bench_spec, identity, rss_bytes, SessionCounter};
use crate::counted_store::CountedStore;
use crate::report::{Row, Target};
pub use crate::stores::{drop_bench_schemas, open_store, StoreKind};
use crate::{BenchError, Options, Report};

/// What one dispatch run measured.
#[derive(Debug, Clone)]
pub struct DispatchFigures {
    /// Workers asked for.
    pub workers: usize,
    /// Workers whose session came up within the connect limit.
    pub connected: usize,
    /// Seconds until they were all connected.
    pub connect_s: f64,
    /// Tasks dispatched and accepted.
    pub tasks: u32,
    /// Seconds from submit to the job's completion.
    pub seconds: f64,
    /// Resident-set growth per connected worker (both ends of each
    /// in-process connection live in this process), bytes.
    pub rss_per_worker: Option<f64>,
    /// Store reads and writes per accepted task, from submit to completion.
    pub store_calls_per_task: (f64, f64),
    /// The same calls by store method, per accepted task, most first.
    pub store_calls_by_method: Vec<(&'static str, f64)>,
    /// Wall time the manager loop was busy per accepted task,
    /// microseconds (includes waiting for the store and for a core).
    pub manager_busy_us_per_task: f64,
    /// CPU time of the manager's threads per accepted task, microseconds:
    /// its own cost, apart from the workers and verifiers sharing the
    /// process (`None` where the kernel does not report it).
    pub manager_cpu_us_per_task: Option<f64>,
}

/// Name of the manager runtime's threads.
const MANAGER_THREADS: &str = "inferix-manager";

/// Threads that work for the manager outside its runtime: the SQLite
/// store's checkpoints.
const MANAGER_HELPER_THREADS: &str = "inferix-sqlite";

/// Shuts a runtime down without blocking, as dropping one inside another
/// runtime may not block.
struct ShutdownOnDrop(Option<tokio::runtime::Runtime>);

impl Drop for ShutdownOnDrop {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// CPU time, in nanoseconds, of the manager's threads and its helpers.
fn manager_cpu_ns() -> Option<u64> {
    let own = threads_cpu_ns(MANAGER_THREADS)?;
    Some(own + threads_cpu_ns(MANAGER_HELPER_THREADS).unwrap_or(0))
}

/// CPU time, in nanoseconds, of this process's threads whose name starts
/// with `prefix` (from `/proc/self/task/*/schedstat`).
fn threads_cpu_ns(prefix: &str) -> Option<u64> {
    let mut total = 0u64;
    let mut found = false;
    for entry in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let dir = entry.path();
        let Ok(comm) = std::fs::read_to_string(dir.join("comm")) else {
            continue;
        };
        // Thread names are cut to 15 bytes.
        let shown = &prefix[..prefix.len().min(15)];
        if !comm.trim_end().starts_with(shown) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(dir.join("schedstat")) else {
            continue;
        };
        if let Some(ns) = stat
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
        {
            total += ns;
            found = true;
        }
    }
    found.then_some(total)
}

impl DispatchFigures {
    /// Accepted tasks per second.
    pub fn per_second(&self) -> f64 {
        self.tasks as f64 / self.seconds.max(1e-9)
    }
}

/// An active job of `tasks` one-frame tasks, as the store sees it.
fn one_frame_job(tasks: u32) -> (Job, Vec<Task>) {
    let scene = inferix_core::job::SceneRef {
        blob: ContentHash::of(b"baseline"),
        format: inferix_core::renderer::SceneFormat::Gltf,
        file_name: "s.glb".into(),
    };
    let job = Job {
        id: JobId::random(),
        spec: JobSpec::new(scene, FrameRange::new(1, tasks)),
        state: JobState::Active,
        created_ms: 1,
        quoted_price: 0,
        waiting_reason: None,
        blocklist: Vec::new(),
        history: Vec::new(),
        warnings: Vec::new(),
        lease_copies_removed: false,
        owner: None,
        outputs: Vec::new(),
    };
    let tasks = (0..tasks)
        .map(|i| Task::new(TaskId::new(job.id, i), vec![i + 1], 1))
        .collect();
    (job, tasks)
}

/// The store's raw rate: tasks per second through exactly the record
/// changes the manager makes per accepted task (lease; result, sent to
/// verifiers in the same write; accepted: three compare-and-set updates,
/// plus one payment record), made back to back by one caller with no
/// network in between. Also returns the insert rate of `insert_job` in
/// tasks per second.
pub async fn store_baseline(store: &dyn TaskStore, tasks: u32) -> Result<(f64, f64), BenchError> {
    let err = |e: inferix_core::store::StoreError| BenchError::Run {
        name: "store baseline".into(),
        reason: e.to_string(),
    };
    let (job, all) = one_frame_job(tasks);
    let job_id = job.id;
    let t0 = Instant::now();
    store.insert_job(&job, &all).await.map_err(err)?;
    let insert_rate = tasks as f64 / t0.elapsed().as_secs_f64().max(1e-9);
    let worker = NodeId(7);
    let t0 = Instant::now();
    for mut t in all {
        let now = 2;
        t.lease(
            Lease {
                worker,
                manager: NodeId(1),
                deadline_ms: u64::MAX / 2,
                scene: None,
            },
            now,
        )
        .map_err(|e| BenchError::Setup(e.to_string()))?;
        store.update_task(&mut t).await.map_err(err)?;
        let result = TaskResult {
            worker,
            frames: t
                .frames
                .iter()
                .map(|&f| FrameOutput {
                    frame: f,
                    pixel_hash: ContentHash::of(&f.to_le_bytes()),
                    blob: ContentHash::of(&f.to_be_bytes()),
                    width: 16,
                    height: 8,
                    tile_root: ContentHash::of(b"t"),
                })
                .collect(),
            render_ms: 1,
            attempt: t.attempts,
            scene: ContentHash::of(b"baseline"),
            device_class: "bench".into(),
            public_key: vec![0; 32],
            signature: vec![0; 64],
        };
        t.complete(result, now)
            .map_err(|e| BenchError::Setup(e.to_string()))?;
        t.transition(TaskStatus::Verifying, now, "baseline")
            .map_err(|e| BenchError::Setup(e.to_string()))?;
        store.update_task(&mut t).await.map_err(err)?;
        t.transition(TaskStatus::Accepted, now, "baseline")
            .map_err(|e| BenchError::Setup(e.to_string()))?;
        store.update_task(&mut t).await.map_err(err)?;
        store
            .append_transaction(&Transaction::transfer(
                format!("pay:{}", t.id),
                now,
                "baseline",
                Account::Job(job_id),
                Account::Worker(worker),
                1,
            ))
            .await
            .map_err(err)?;
    }
    let lifecycle_rate = tasks as f64 / t0.elapsed().as_secs_f64().max(1e-9);
    Ok((insert_rate, lifecycle_rate))
}

/// Microseconds per `tasks_in_status(Queued, limit)` call (what the
/// manager runs once per batch of inputs) and per single `task()` read, on a
/// store holding one job of `tasks` queued tasks.
pub async fn scan_cost(
    store: &dyn TaskStore,
    tasks: u32,
    limit: usize,
) -> Result<(f64, f64), BenchError> {
    let err = |e: inferix_core::store::StoreError| BenchError::Run {
        name: "scan cost".into(),
        reason: e.to_string(),
    };
    let (job, all) = one_frame_job(tasks);
    let job_id = job.id;
    store.insert_job(&job, &all).await.map_err(err)?;
    let rounds = 50;
    let t0 = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(
            store
                .tasks_in_status(TaskStatus::Queued, limit)
                .await
                .map_err(err)?,
        );
    }
    let scan = t0.elapsed().as_secs_f64() * 1e6 / rounds as f64;
    let t0 = Instant::now();
    for i in 0..rounds * 20 {
        std::hint::black_box(
            store
                .task(TaskId::new(job_id, i % tasks))
                .await
                .map_err(err)?,
        );
    }
    let one = t0.elapsed().as_secs_f64() * 1e6 / (rounds * 20) as f64;
    Ok((scan, one))
}

/// One run: `managers` managers sharing `store`, `workers` in-process
/// workers answering at once and `verifiers` verifiers (quorum 1), spread
/// over the managers in turn, and one job of `tasks` one-frame tasks,
/// submitted to the first manager. Workers that are not connected within
/// `connect_limit` are left out (the figures say how many made it).
/// With several managers the loop and CPU figures are their sums.
pub async fn dispatch_run(
    store: Arc<dyn TaskStore>,
    managers: usize,
    workers: usize,
    verifiers: usize,
    tasks: u32,
    connect_limit: Duration,
    verifier_reward: i64,
) -> Result<DispatchFigures, BenchError> {
    let fail = |reason: String| BenchError::Run {
        name: format!("dispatch with {workers} workers"),
        reason,
    };
    let net = InProcNetwork::new();
    let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::in_memory());
    let dir = tempfile::tempdir().map_err(|e| BenchError::Setup(e.to_string()))?;
    let scene = bench_scene(&*blobs, dir.path()).await?;
    let (counted, calls) = CountedStore::new(store.clone());
    let counted: Arc<dyn TaskStore> = Arc::new(counted);
    let config = ManagerConfig {
        lease: Duration::from_secs(3600),
        heartbeat_timeout: Duration::from_secs(3600),
        verification_timeout: Duration::from_secs(3600),
        progress_timeout: Duration::from_secs(3600),
        tick: Duration::from_secs(1),
        quorum: 1,
        // Stakes cost one ledger record per worker at hello; the dispatch
        // figure is about tasks.
        stake_epoch_minutes: 0.0,
        verifier_reward,
        ..ManagerConfig::default()
    };
    // Each manager runs on a runtime of its own, two threads as on a
    // 2-core manager machine, so that its CPU time can be told apart from
    // the workers' and verifiers' sharing this process.
    let mut started = Vec::with_capacity(managers.max(1));
    let mut runtimes = Vec::with_capacity(managers.max(1));
    for m in 0..managers.max(1) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(MANAGER_THREADS)
            .enable_all()
            .build()
            .map_err(|e| BenchError::Setup(e.to_string()))?;
        let manager_rt = rt.handle().clone();
        // Dropped without blocking however this function returns.
        runtimes.push(ShutdownOnDrop(Some(rt)));
        let id = if m == 0 {
            NodeId(1)
        } else {
            NodeId(20_000_000 + m as u128)
        };
        let node = ManagerBuilder::new(Arc::new(net.transport(id)), counted.clone(), blobs.clone())
            .config(ManagerConfig {
                listen: format!("manager-{m}"),
                ..config.clone()
            })
            .scratch_dir(dir.path().join(format!("manager-{m}")))
            .build();
        let manager = manager_rt
            .spawn(node.start())
            .await
            .map_err(|e| fail(e.to_string()))?
            .map_err(|e| fail(e.to_string()))?;
        started.push(manager);
    }
    let addrs: Vec<String> = started.iter().map(|m| m.addr().to_string()).collect();
    let addr = addrs[0].clone();
    let busy_time =
        |ms: &[inferix_node::ManagerHandle]| -> Duration { ms.iter().map(|m| m.busy_time()).sum() };
    let (stop, stopped) = watch::channel(false);
    let rss0 = rss_bytes();
    let counter = SessionCounter::new();
    let t_connect = Instant::now();
    let renderer = Arc::new(StandInRenderer::instant());
    let mut handles = Vec::with_capacity(workers + verifiers);
    for i in 0..workers {
        let cfg = WorkerConfig {
            manager: addrs[i % addrs.len()].clone(),
            work_dir: dir.path().to_path_buf(),
            heartbeat: Duration::from_secs(600),
            ..WorkerConfig::default()
        };
        let t = counter.wrap(net.node(identity(1000 + i as u64)));
        let w = WorkerNode::new(Arc::new(t), renderer.clone(), cfg);
        handles.push(tokio::spawn(w.run(stopped.clone())));
    }
    let connected = counter.wait_for(workers, connect_limit).await;
    let connect_s = t_connect.elapsed().as_secs_f64();
    let rss1 = rss_bytes();
    if connected < workers {
        // The manager is still working through hellos; a job now would
        // queue behind them and measure the backlog, not dispatch.
        let _ = stop.send(true);
        for h in handles {
            h.abort();
        }
        for m in started {
            m.abort();
        }
        return Ok(DispatchFigures {
            workers,
            connected,
            connect_s,
            tasks: 0,
            seconds: 0.0,
            rss_per_worker: None,
            store_calls_per_task: (0.0, 0.0),
            store_calls_by_method: Vec::new(),
            manager_busy_us_per_task: 0.0,
            manager_cpu_us_per_task: None,
        });
    }
    let verifier_counter = SessionCounter::new();
    for i in 0..verifiers {
        let cfg = VerifierConfig {
            manager: addrs[i % addrs.len()].clone(),
            heartbeat: Duration::from_secs(600),
            work_dir: dir.path().join("verifier"),
            ..VerifierConfig::default()
        };
        let t = verifier_counter.wrap(net.transport(NodeId(10_000_000 + i as u128)));
        handles.push(tokio::spawn(
            VerifierNode::new(Arc::new(t), cfg).run(stopped.clone()),
        ));
    }
    verifier_counter
        .wait_for(verifiers, Duration::from_secs(600))
        .await;
    let rss_per_worker = match (rss0, rss1) {
        // No growth means freed memory was reused: nothing measured.
        (Some(a), Some(b)) if connected > 0 && b > a => Some((b - a) as f64 / connected as f64),
        _ => None,
    };

    let client = Client::connect(&net.transport(NodeId(2)), &addr, None)
        .await
        .map_err(|e| fail(format!("client: {e}")))?;
    // Whichever manager accepts the last task completes the job.
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    for m in &started {
        let mut rx = m.subscribe();
        let tx = events_tx.clone();
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(e) => {
                        if tx.send(e).is_err() {
                            return;
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => return,
                }
            }
        });
    }
    drop(events_tx);
    let spec = bench_spec(scene, tasks, 1);
    let t0 = Instant::now();
    let calls0 = calls.get();
    let methods0 = calls.by_method();
    let busy0 = busy_time(&started);
    let cpu0 = manager_cpu_ns();
    let (job, _) = client
        .submit(&spec)
        .await
        .map_err(|e| fail(format!("submit: {e}")))?;
    let outcome = loop {
        match events.recv().await {
            Some((j, JobEvent::Completed { .. })) if j == job => break Ok(()),
            Some((j, JobEvent::Failed { reason, .. })) if j == job => break Err(reason),
            Some(_) => {}
            None => break Err("every manager stopped".to_string()),
        }
    };
    let seconds = t0.elapsed().as_secs_f64();
    let calls1 = calls.get();
    let mut store_calls_by_method: Vec<(&'static str, f64)> = calls
        .by_method()
        .into_iter()
        .map(|(m, n)| {
            let before = methods0.get(m).copied().unwrap_or(0);
            (m, (n - before) as f64 / tasks.max(1) as f64)
        })
        .filter(|(_, n)| *n > 0.0)
        .collect();
    store_calls_by_method.sort_by(|a, b| b.1.total_cmp(&a.1));
    let manager_busy_us_per_task =
        (busy_time(&started) - busy0).as_secs_f64() * 1e6 / tasks.max(1) as f64;
    let manager_cpu_us_per_task = match (cpu0, manager_cpu_ns()) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / 1e3 / tasks.max(1) as f64),
        _ => None,
    };
    let per_task = |a: u64, b: u64| (b - a) as f64 / tasks.max(1) as f64;
    let store_calls_per_task = (per_task(calls0.0, calls1.0), per_task(calls0.1, calls1.1));
    let accepted = store
        .tasks_of_job(job)
        .await
        .map_err(|e| fail(e.to_string()))?
        .iter()
        .filter(|t| t.status == TaskStatus::Accepted)
        .count();
    drop(client);
    let _ = stop.send(true);
    for m in started {
        m.shutdown().await;
    }
    drop(runtimes);
    for h in handles {
        h.abort();
    }
    outcome.map_err(|r| fail(format!("job failed: {r}")))?;
    if accepted != tasks as usize {
        return Err(fail(format!("{accepted} of {tasks} tasks accepted")));
    }
    Ok(DispatchFigures {
        workers,
        connected,
        connect_s,
        tasks,
        seconds,
        rss_per_worker,
        store_calls_per_task,
        store_calls_by_method,
        manager_busy_us_per_task,
        manager_cpu_us_per_task,
    })
}

/// Runs the dispatch benchmark on every available store and adds its rows
/// (and the in-process memory per idle worker) to `report`.
pub async fn run(opts: &Options, report: &mut Report) -> Result<(), BenchError> {
    let outcome = run_all(opts, report).await;
    drop_bench_schemas().await;
    outcome
}

async fn run_all(opts: &Options, report: &mut Report) -> Result<(), BenchError> {
    let group = "dispatch";
    let dir = tempfile::tempdir().map_err(|e| BenchError::Setup(e.to_string()))?;
    // (workers, tasks, verifier reward); a ten times larger job on every
    // store shows what scales with the job's size (the queue it leases
    // from is ten times longer).
    let sizes: &[(usize, u32, i64)] = if opts.quick {
        &[(50, 100, 1_000), (200, 200, 1_000)]
    } else {
        &[
            (1_000, 2_000, 1_000),
            (10_000, 2_000, 1_000),
            (100_000, 2_000, 1_000),
            (1_000, 20_000, 1_000),
        ]
    };
    let verifiers = if opts.quick { 8 } else { 32 };
    let connect_limit = Duration::from_secs(if opts.quick { 60 } else { 120 });
    let mut stores = vec![StoreKind::Memory, StoreKind::Sqlite];
    match &opts.pg_url {
        Some(_) => stores.push(StoreKind::Postgres),
        None => report.note(
            "PostgreSQL store skipped: INFERIX_TEST_PG_URL is not set \
             (`bash scripts/services.sh && source target/services/env` starts one).",
        ),
    }
    let mut memory_row: Option<Row> = None;
    for kind in stores {
        let target = match kind {
            StoreKind::Postgres => 3_000.0,
            _ => 10_000.0,
        };
        let base_store = open_store(kind, dir.path(), opts.pg_url.as_deref()).await?;
        let base_tasks = match (opts.quick, kind) {
            (true, _) => 200,
            (false, StoreKind::Memory) => 20_000,
            (false, _) => 2_000,
        };
        let (insert_rate, lifecycle_rate) = store_baseline(&*base_store, base_tasks).await?;
        drop(base_store);
        if kind == StoreKind::Memory {
            let s = open_store(kind, dir.path(), None).await?;
            let n = if opts.quick { 1_000 } else { 5_000 };
            let (scan, one) = scan_cost(&*s, n, 4_000).await?;
            report.push(
                Row::new(
                    group,
                    &format!("in-memory tasks_in_status(Queued) with {n} queued tasks"),
                    scan,
                    "µs/call",
                )
                .baseline(one, "one task() read, µs")
                .note(
                    "the manager reads the queue head once per batch of inputs; the store keeps \
                     tasks per status in queue order, so a read costs what it returns (here \
                     4,000 tasks), not the size of the store",
                ),
            );
        }
        if kind == StoreKind::Sqlite && !opts.quick && std::path::Path::new("/dev/shm").is_dir() {
            // The same records on a RAM disk: what the disk's flushes cost.
            if let Ok(shm) = tempfile::tempdir_in("/dev/shm") {
                let s = open_store(kind, shm.path(), None).await?;
                let (_, ram_rate) = store_baseline(&*s, base_tasks).await?;
                report.push(
                    Row::new(group, "SQLite store raw rate on tmpfs", ram_rate, "tasks/s")
                        .baseline(lifecycle_rate, "same on disk, tasks/s")
                        .note("the same file store on /dev/shm: the gap is one fsync per committed update"),
                );
            }
        }
        report.push(
            Row::new(
                group,
                &format!("{} store raw rate", kind.name()),
                lifecycle_rate,
                "tasks/s",
            )
            .baseline(insert_rate, "insert_job tasks/s")
            .note(
                "3 compare-and-set updates + 1 payment per task, one caller, no network; \
                 baseline column = bulk insert rate",
            ),
        );
        for &(workers, tasks, reward) in sizes {
            let variant = tasks > 2_000 && !opts.quick;
            let store = open_store(kind, dir.path(), opts.pg_url.as_deref()).await?;
            let f =
                dispatch_run(store, 1, workers, verifiers, tasks, connect_limit, reward).await?;
            if f.tasks == 0 {
                report.push(
                    Row::new(
                        group,
                        &format!("{} store, {workers} workers: connect rate", kind.name()),
                        f.connected as f64 / f.connect_s.max(1e-9),
                        "hellos/s",
                    )
                    .note(format!(
                        "only {} of {workers} workers connected in {:.0} s, so no job was run",
                        f.connected, f.connect_s
                    )),
                );
                continue;
            }
            let name = format!(
                "{} store, {} workers, {} tasks",
                kind.name(),
                f.connected,
                f.tasks
            );
            report.push(
                Row::new(
                    group,
                    &format!("{name}: end to end"),
                    f.per_second(),
                    "dispatches/s",
                )
                .baseline(lifecycle_rate, "store raw tasks/s")
                .note(format!(
                    "submit to completion, {} tasks × 1 frame, quorum 1, {verifiers} verifiers; \
                         every worker and verifier runs in this process too (signing, image \
                         checks), sharing its cores with the manager; {} of {workers} workers \
                         connected in {:.1} s ({:.0} hellos/s)",
                    f.tasks,
                    f.connected,
                    f.connect_s,
                    f.connected as f64 / f.connect_s.max(1e-9)
                )),
            );
            // One manager on a 2-core machine: its loop handles one input
            // at a time, and its threads (loop, signature checks, blob
            // transfers, store calls) share two cores. Whichever runs out
            // first bounds its rate.
            let loop_rate = 1e6 / f.manager_busy_us_per_task.max(1e-9);
            let cpu_rate = f
                .manager_cpu_us_per_task
                .map_or(f64::INFINITY, |cpu| 2e6 / cpu.max(1e-9));
            let (capacity, bound) = if loop_rate <= cpu_rate {
                (loop_rate, "its loop's time per task")
            } else {
                (cpu_rate, "two cores' worth of its CPU time per task")
            };
            report.push(
                Row::new(
                    group,
                    &format!("{name}: one manager's capacity on 2 cores"),
                    capacity,
                    "dispatches/s",
                )
                .baseline(lifecycle_rate, "store raw tasks/s")
                .target(Target::AtLeast(target))
                .note(format!(
                    "bound by {bound}: the loop was busy {:.0} µs per task (store round trips \
                     included; it waits for a networked store) and the manager's threads used {} \
                     µs of CPU per task (signature checks and blob transfers included); {:.1} \
                     store reads + {:.1} writes per task; the workers' and verifiers' work is not \
                     counted",
                    f.manager_busy_us_per_task,
                    f.manager_cpu_us_per_task
                        .map_or_else(|| "n/a".to_string(), |c| format!("{c:.0}")),
                    f.store_calls_per_task.0,
                    f.store_calls_per_task.1
                )),
            );
            if kind == StoreKind::Memory && !variant {
                if let Some(b) = f.rss_per_worker {
                    memory_row = Some(
                        Row::new(
                            "memory",
                            &format!("in-process, per idle worker ({} workers)", f.connected),
                            b / 1024.0,
                            "KiB",
                        )
                        .target(Target::AtMost(20.0))
                        .note(
                            "RSS growth ÷ workers; manager and worker ends of every connection \
                             live in this process, so the manager's share is smaller; memory \
                             freed by earlier runs is reused first, so this can read low",
                        ),
                    );
                }
            }
        }
    }
    if let Some(r) = memory_row {
        report.push(r);
    }
    Ok(())
}
