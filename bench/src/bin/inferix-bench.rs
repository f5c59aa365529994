//! `inferix-bench`: the benchmark suite, or (`simulate`) the seeded scale
//! simulation. Results go to `--out` as `results.md` and PNG charts.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use inferix_bench::{dispatch, latency, makespan, run_benchmarks, simulate, Options, Report};

/// Inferix benchmarks: every figure next to a baseline measured in the
/// same run, and the ratio.
#[derive(Parser)]
#[command(name = "inferix-bench", version)]
struct Cli {
    /// Small sizes that finish in seconds (a smoke test, as CI runs it).
    #[arg(long, global = true)]
    quick: bool,
    /// Folder for results.md and the charts.
    #[arg(long, global = true, default_value = "target/bench-results")]
    out: PathBuf,
    /// PostgreSQL URL for the PostgreSQL store benchmark.
    #[arg(long, env = "INFERIX_TEST_PG_URL")]
    pg_url: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Deterministic discrete-event simulation of a large network.
    Simulate {
        /// Seed of every random choice: the same seed gives the same run.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Play the protocol-level attacks instead (colluding and
        /// always-pass verifiers beside cheating workers).
        #[arg(long)]
        adversarial: bool,
    },
    /// One dispatch run (the first benchmark) at a chosen size, printed.
    Dispatch {
        /// Task store: memory, sqlite or postgres (`--pg-url`).
        #[arg(long, default_value = "memory")]
        store: String,
        /// Managers sharing the store (several only make sense on
        /// PostgreSQL or one SQLite file); workers and verifiers are
        /// spread over them in turn.
        #[arg(long, default_value_t = 1)]
        managers: usize,
        /// In-process workers.
        #[arg(long, default_value_t = 1000)]
        workers: usize,
        /// One-frame tasks of the job.
        #[arg(long, default_value_t = 2000)]
        tasks: u32,
        /// Verifiers (quorum 1).
        #[arg(long, default_value_t = 32)]
        verifiers: usize,
    },
    /// The makespan run (the fifth benchmark) alone, printed.
    Makespan {
        /// Workers of IB 0.5–3.0.
        #[arg(long, default_value_t = 100)]
        workers: usize,
        /// Frames of the job.
        #[arg(long, default_value_t = 1000)]
        frames: u32,
        /// Frames per task.
        #[arg(long, default_value_t = 5)]
        chunk: u32,
        /// Seed of the workers' IBs and departures.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// The manager-memory run alone (workers in a child process), printed.
    #[command(hide = true)]
    ManagerMemory {
        /// Idle QUIC workers to connect.
        #[arg(long, default_value_t = 1000)]
        workers: usize,
    },
    /// Keeps QUIC workers connected to a manager until standard input
    /// closes (used by the manager-memory benchmark).
    #[command(hide = true)]
    Swarm {
        /// Manager address (`<id>@host:port`).
        #[arg(long)]
        manager: String,
        /// Workers to connect.
        #[arg(long)]
        workers: usize,
    },
}

fn finish(report: &Report, out: &std::path::Path) -> ExitCode {
    match report.write(out) {
        Ok(files) => {
            for f in files {
                println!("wrote {}", f.display());
            }
            if report.all_checks_pass() {
                ExitCode::SUCCESS
            } else {
                eprintln!("an invariant failed");
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// A multi-threaded runtime, or `None` after saying why there is none.
fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            None
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Simulate { seed, adversarial }) => {
            let mut report = Report::new(&format!(
                "Inferix {}simulation, seed {seed}{}",
                if adversarial { "adversarial " } else { "" },
                if cli.quick { " (--quick)" } else { "" }
            ));
            let ran = if adversarial {
                simulate::run_adversarial(seed, cli.quick, &mut report).map(|_| ())
            } else {
                simulate::run(seed, cli.quick, &mut report).map(|_| ())
            };
            if let Err(e) = ran {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
            finish(&report, &cli.out)
        }
        Some(Command::Dispatch {
            store,
            managers,
            workers,
            tasks,
            verifiers,
        }) => {
            let kind = match store.as_str() {
                "memory" => dispatch::StoreKind::Memory,
                "sqlite" => dispatch::StoreKind::Sqlite,
                "postgres" => dispatch::StoreKind::Postgres,
                other => {
                    eprintln!("unknown store {other:?}: memory, sqlite or postgres");
                    return ExitCode::FAILURE;
                }
            };
            let Some(rt) = runtime() else {
                return ExitCode::FAILURE;
            };
            let run = async {
                let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
                let store = dispatch::open_store(kind, dir.path(), cli.pg_url.as_deref())
                    .await
                    .map_err(|e| e.to_string())?;
                let figures = dispatch::dispatch_run(
                    store,
                    managers,
                    workers,
                    verifiers,
                    tasks,
                    std::time::Duration::from_secs(600),
                    1_000,
                )
                .await
                .map_err(|e| e.to_string());
                dispatch::drop_bench_schemas().await;
                figures
            };
            match rt.block_on(run) {
                Ok(f) => {
                    println!(
                        "{store}, {managers} manager(s): {} of {workers} workers connected in {:.1} s ({:.0} hellos/s); \
                         {} tasks in {:.2} s = {:.0} dispatches/s; \
                         store calls per task: {:.1} reads, {:.1} writes ({}); \
                         manager loop busy {:.0} µs, manager CPU {} µs per task",
                        f.connected,
                        f.connect_s,
                        f.connected as f64 / f.connect_s.max(1e-9),
                        f.tasks,
                        f.seconds,
                        f.per_second(),
                        f.store_calls_per_task.0,
                        f.store_calls_per_task.1,
                        f.store_calls_by_method
                            .iter()
                            .map(|(m, n)| format!("{m} {n:.2}"))
                            .collect::<Vec<_>>()
                            .join(", "),
                        f.manager_busy_us_per_task,
                        f.manager_cpu_us_per_task
                            .map_or_else(|| "n/a".to_string(), |c| format!("{c:.0}"))
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
        Some(Command::Makespan {
            workers,
            frames,
            chunk,
            seed,
        }) => match makespan::makespan(workers, frames, chunk, 0.1, seed) {
            Ok(f) => {
                println!(
                    "makespan {:.1} s, ideal {:.1} s: {:.3}× ideal; clairvoyant greedy {:.3}×; \
                     {} workers left mid-task; best possible given the departures {:.1} s \
                     ({:.3}× ideal), so {:.3}× the best possible",
                    f.makespan_s,
                    f.ideal_s,
                    f.makespan_s / f.ideal_s,
                    f.greedy_s / f.ideal_s,
                    f.killed,
                    f.fluid_s,
                    f.fluid_s / f.ideal_s,
                    f.makespan_s / f.fluid_s
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
        Some(Command::ManagerMemory { workers }) => {
            let Some(rt) = runtime() else {
                return ExitCode::FAILURE;
            };
            let Ok(exe) = std::env::current_exe() else {
                eprintln!("cannot find this program's executable");
                return ExitCode::FAILURE;
            };
            match rt.block_on(latency::quic_manager_memory(&exe, workers)) {
                Ok((bytes, n)) => {
                    println!(
                        "QUIC manager: {:.1} KiB per idle worker ({n} workers connected)",
                        bytes / 1024.0
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
        Some(Command::Swarm { manager, workers }) => {
            let Some(rt) = runtime() else {
                return ExitCode::FAILURE;
            };
            match rt.block_on(latency::swarm(&manager, workers)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
        None => {
            let opts = Options {
                quick: cli.quick,
                out: cli.out.clone(),
                pg_url: cli.pg_url,
                swarm_exe: std::env::current_exe().ok(),
            };
            let Some(rt) = runtime() else {
                return ExitCode::FAILURE;
            };
            match rt.block_on(run_benchmarks(&opts)) {
                Ok(report) => finish(&report, &cli.out),
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
