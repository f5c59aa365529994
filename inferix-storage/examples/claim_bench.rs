//! Task claims per second on the SQLite and PostgreSQL task stores, with
//! 1, 2 and 4 concurrent managers, against each store's raw insert rate
//! measured in the same run.
//!
//! A claim is what a manager does to hand out work: read the head of the
//! queue (`tasks_in_status(Queued, 16)`), lease a task and write it with
//! `update_task`, whose version check refuses a task another manager
//! leased first (counted as a conflict, then the next task is tried).
//! Every manager has its own store handle: its own SQLite connection to
//! one file, or its own PostgreSQL pool on one schema. Two pick orders
//! are measured: `head`, trying the queue head in order as the manager
//! does, and `shuffled`, trying it in random order, which spreads
//! concurrent managers over different tasks. PostgreSQL also runs
//! `skip-lock`: `PostgresTaskStore::claim_queued`, which locks the rows it
//! claims with `FOR UPDATE SKIP LOCKED` so concurrent managers never
//! collide (16 tasks a transaction).
//!
//! The baseline is the rate of single-task job inserts from one handle
//! (one write transaction each), so the ratio says what the read and the
//! version check cost on top of a write.
//!
//! ```text
//! bash scripts/services.sh && source target/services/env
//! cargo run -p inferix-storage --example claim_bench -- [--tasks N] [--pg-url URL]
//! ```
//! Without `--pg-url` the URL comes from `INFERIX_TEST_PG_URL`; with
//! neither, only SQLite runs.

use std::error::Error;
use std::future::Future;
use std::time::{Duration, Instant};

use inferix_core::ids::NodeId;
use inferix_core::store::conformance::sample_job;
use inferix_core::store::{StoreError, TaskStore};
use inferix_core::task::{Lease, TaskStatus};
use inferix_storage::{PostgresOptions, PostgresTaskStore, SqliteTaskStore};
use rand::seq::SliceRandom;
use rand::RngCore;

type BoxError = Box<dyn Error + Send + Sync>;

/// Tasks per job when filling the queue (`sample_job` splits 2 frames a task).
const TASKS_PER_JOB: u32 = 100;
/// Single-task jobs inserted for the baseline.
const BASELINE_INSERTS: usize = 1000;
/// Queue head a manager reads per round, as the manager does.
const QUEUE_READ: usize = 16;
const MANAGER_COUNTS: [usize; 3] = [1, 2, 4];

struct Args {
    tasks: usize,
    pg_url: Option<String>,
}

fn parse_args() -> Result<Args, BoxError> {
    let mut args = Args {
        tasks: 2000,
        pg_url: std::env::var("INFERIX_TEST_PG_URL")
            .ok()
            .filter(|u| !u.is_empty()),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--tasks" => {
                args.tasks = it.next().ok_or("--tasks needs a number")?.parse()?;
            }
            "--pg-url" => args.pg_url = Some(it.next().ok_or("--pg-url needs a URL")?),
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    if args.tasks == 0 {
        return Err("--tasks must be positive".into());
    }
    Ok(args)
}

/// Inserts `n` single-task jobs one after another; returns inserts/s.
async fn insert_rate<S: TaskStore>(store: &S, n: usize) -> Result<f64, BoxError> {
    let jobs: Vec<_> = (0..n).map(|i| sample_job(0, i as u64, 2)).collect();
    let start = Instant::now();
    for (job, tasks) in &jobs {
        store.insert_job(job, tasks).await?;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// Fills `store` with at least `n` queued tasks; returns how many.
async fn fill<S: TaskStore>(store: &S, n: usize) -> Result<usize, BoxError> {
    let mut total = 0;
    let mut created = 0;
    while total < n {
        let (job, tasks) = sample_job(0, created, TASKS_PER_JOB * 2);
        store.insert_job(&job, &tasks).await?;
        total += tasks.len();
        created += 1;
    }
    Ok(total)
}

#[derive(Default)]
struct Tally {
    claims: usize,
    conflicts: usize,
}

/// One manager: claims from the queue head until the queue is empty.
async fn manager<S: TaskStore>(store: S, id: u128, shuffle: bool) -> Result<Tally, StoreError> {
    let mut tally = Tally::default();
    loop {
        let mut queue = store
            .tasks_in_status(TaskStatus::Queued, QUEUE_READ)
            .await?;
        if queue.is_empty() {
            return Ok(tally);
        }
        if shuffle {
            queue.shuffle(&mut rand::thread_rng());
        }
        for mut task in queue {
            let lease = Lease {
                worker: NodeId(1000 + tally.claims as u128),
                manager: NodeId(id),
                deadline_ms: 60_000,
                scene: None,
            };
            if task.lease(lease, 1).is_err() {
                continue;
            }
            match store.update_task(&mut task).await {
                Ok(()) => tally.claims += 1,
                Err(StoreError::Conflict { .. }) => tally.conflicts += 1,
                Err(e) => return Err(e),
            }
        }
    }
}

/// PostgreSQL's conflict-free claims with 1, 2 and 4 managers; `open`
/// opens a handle on fresh database `db`.
async fn skip_locked_series<F, Fut>(
    tasks: usize,
    baseline: f64,
    first_db: usize,
    open: F,
) -> Result<Vec<Row>, BoxError>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<PostgresTaskStore, BoxError>>,
{
    let mut rows = Vec::new();
    for (i, managers) in MANAGER_COUNTS.into_iter().enumerate() {
        let mut handles = Vec::new();
        for _ in 0..managers {
            handles.push(open(first_db + i).await?);
        }
        let queued = fill(&handles[0], tasks).await?;
        let start = Instant::now();
        let runs: Vec<_> = handles
            .iter()
            .cloned()
            .enumerate()
            .map(|(m, store)| {
                tokio::spawn(async move {
                    let mut claims = 0;
                    loop {
                        let got = store
                            .claim_queued(QUEUE_READ, |t| {
                                let lease = Lease {
                                    worker: NodeId(1000 + claims as u128),
                                    manager: NodeId(m as u128 + 1),
                                    deadline_ms: 60_000,
                                    scene: None,
                                };
                                t.lease(lease, 1).is_ok()
                            })
                            .await?;
                        if got.is_empty() {
                            return Ok::<usize, StoreError>(claims);
                        }
                        claims += got.len();
                    }
                })
            })
            .collect();
        let mut claims = 0;
        for r in runs {
            claims += r.await??;
        }
        let elapsed = start.elapsed();
        if claims != queued {
            return Err(format!("skip-lock: {queued} tasks queued but {claims} claims").into());
        }
        rows.push(Row {
            store: "postgres",
            order: "skip-lock",
            managers,
            claims,
            conflicts: 0,
            elapsed,
            baseline,
        });
    }
    Ok(rows)
}

struct Row {
    store: &'static str,
    order: &'static str,
    managers: usize,
    claims: usize,
    conflicts: usize,
    elapsed: Duration,
    baseline: f64,
}

/// Runs the whole series on one backend; `open` opens handle `i` of
/// fresh database `db` (a new file or schema per manager count).
async fn series<S, F, Fut>(name: &'static str, tasks: usize, open: F) -> Result<Vec<Row>, BoxError>
where
    S: TaskStore + Clone,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<S, BoxError>>,
{
    let baseline = insert_rate(&open(0).await?, BASELINE_INSERTS).await?;
    let mut rows = Vec::new();
    let runs = [false, true]
        .into_iter()
        .flat_map(|shuffle| MANAGER_COUNTS.map(|m| (shuffle, m)));
    for (db, (shuffle, managers)) in runs.enumerate() {
        let mut handles = Vec::new();
        for _ in 0..managers {
            handles.push(open(db + 1).await?);
        }
        let queued = fill(&handles[0], tasks).await?;
        let start = Instant::now();
        let runs: Vec<_> = handles
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, s)| tokio::spawn(manager(s, i as u128 + 1, shuffle)))
            .collect();
        let mut tally = Tally::default();
        for r in runs {
            let t = r.await??;
            tally.claims += t.claims;
            tally.conflicts += t.conflicts;
        }
        let elapsed = start.elapsed();
        // Every task leased exactly once, whoever won it.
        let leased = handles[0]
            .tasks_in_status(TaskStatus::Leased, usize::MAX)
            .await?
            .len();
        if tally.claims != queued || leased != queued {
            return Err(format!(
                "{name}: {queued} tasks queued but {} claims and {leased} leased",
                tally.claims
            )
            .into());
        }
        rows.push(Row {
            store: name,
            order: if shuffle { "shuffled" } else { "head" },
            managers,
            claims: tally.claims,
            conflicts: tally.conflicts,
            elapsed,
            baseline,
        });
    }
    Ok(rows)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> Result<(), BoxError> {
    let args = parse_args()?;
    let mut rows = Vec::new();

    let dir = tempfile::tempdir()?;
    let sqlite = series("sqlite", args.tasks, |db| {
        let path = dir.path().join(format!("bench-{db}.db"));
        async move { Ok(SqliteTaskStore::open(path)?) }
    })
    .await?;
    rows.extend(sqlite);

    if let Some(url) = &args.pg_url {
        let run = format!("bench_{:012x}", rand::thread_rng().next_u64() >> 16);
        let open = |db: usize| {
            let options = PostgresOptions::new(url.clone())
                .with_schema(format!("{run}_{db}"))
                .with_pool_size(2);
            async move { Ok(PostgresTaskStore::open(options).await?) }
        };
        let first_skip_db = 2 * MANAGER_COUNTS.len() + 1;
        let pg = match series("postgres", args.tasks, open).await {
            Ok(rows) => {
                let baseline = rows[0].baseline;
                skip_locked_series(args.tasks, baseline, first_skip_db, open)
                    .await
                    .map(|more| rows.into_iter().chain(more).collect::<Vec<_>>())
            }
            Err(e) => Err(e),
        };
        // Drop the benchmark's schemas whatever happened.
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        let conn = tokio::spawn(connection);
        for db in 0..first_skip_db + MANAGER_COUNTS.len() {
            client
                .batch_execute(&format!("DROP SCHEMA IF EXISTS {run}_{db} CASCADE"))
                .await?;
        }
        drop(client);
        let _ = conn.await;
        rows.extend(pg?);
    } else {
        eprintln!("no PostgreSQL URL (--pg-url or INFERIX_TEST_PG_URL): SQLite only");
    }

    println!(
        "{:<9} {:<9} {:>8} {:>7} {:>9} {:>10} {:>17} {:>6}",
        "store",
        "order",
        "managers",
        "claims",
        "conflicts",
        "claims/s",
        "baseline insert/s",
        "ratio"
    );
    for r in rows {
        let rate = r.claims as f64 / r.elapsed.as_secs_f64();
        println!(
            "{:<9} {:<9} {:>8} {:>7} {:>9} {:>10.0} {:>17.0} {:>6.2}",
            r.store,
            r.order,
            r.managers,
            r.claims,
            r.conflicts,
            rate,
            r.baseline,
            rate / r.baseline
        );
    }
    Ok(())
}
