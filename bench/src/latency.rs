//! Task-ready → worker-starts latency over real QUIC on loopback, with many
//! worker connections (each worker its own `QuicTransport` and key), and the
//! resident memory each idle QUIC worker connection costs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use inferix_core::blob::BlobStore;
use inferix_core::protocol::JobEvent;
use inferix_core::store::MemoryTaskStore;
use inferix_node::{
    Client, ManagerBuilder, ManagerConfig, VerifierConfig, VerifierNode, WorkerConfig, WorkerNode,
};
use inferix_storage::ObjectBlobStore;
use inferix_transport::{install_crypto_provider, QuicConfig, QuicTransport};
use tokio::sync::{mpsc, watch};

use inferix_core::renderer::stand_in::StandInRenderer;

use crate::common::{bench_scene, bench_spec, identity, quantile, rss_bytes, SessionCounter};
use crate::report::{Row, Target};
use crate::{BenchError, Options, Report};

/// What the latency run measured.
#[derive(Debug, Clone)]
pub struct LatencyFigures {
    /// Worker connections that came up.
    pub connected: usize,
    /// Submit → render start, milliseconds, sorted.
    pub ready_to_start_ms: Vec<f64>,
    /// Round trip of a status request on the same client connection, ms,
    /// sorted: the baseline.
    pub round_trip_ms: Vec<f64>,
    /// Resident-set growth per connected worker, bytes (both ends).
    pub rss_per_worker: Option<f64>,
}

fn quic(n: u64) -> Result<QuicTransport, BenchError> {
    QuicTransport::new(identity(n), QuicConfig::default())
        .map_err(|e| BenchError::Setup(format!("QUIC endpoint: {e}")))
}

/// Starts a manager on QUIC loopback, connects `workers` QUIC workers, then
/// submits `samples` one-frame jobs one after another and times each from
/// the submit call to the moment a worker's renderer starts.
pub async fn quic_latency(workers: usize, samples: usize) -> Result<LatencyFigures, BenchError> {
    let fail = |reason: String| BenchError::Run {
        name: "QUIC latency".into(),
        reason,
    };
    install_crypto_provider();
    let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::in_memory());
    let dir = tempfile::tempdir().map_err(|e| BenchError::Setup(e.to_string()))?;
    let scene = bench_scene(&*blobs, dir.path()).await?;
    let config = ManagerConfig {
        listen: "127.0.0.1:0".into(),
        quorum: 1,
        stake_epoch_minutes: 0.0,
        ..ManagerConfig::default()
    };
    let manager = ManagerBuilder::new(
        Arc::new(quic(1)?),
        Arc::new(MemoryTaskStore::new()),
        blobs.clone(),
    )
    .config(config)
    .scratch_dir(dir.path().join("manager"))
    .build()
    .start()
    .await
    .map_err(|e| fail(e.to_string()))?;
    let addr = manager.addr().to_string();
    let (stop, stopped) = watch::channel(false);
    let (start_tx, mut starts) = mpsc::unbounded_channel();
    let renderer = Arc::new(StandInRenderer::instant().reporting_starts(start_tx));
    let rss0 = rss_bytes();
    let counter = SessionCounter::new();
    let mut handles = Vec::new();
    for i in 0..workers {
        let cfg = WorkerConfig {
            manager: addr.clone(),
            work_dir: dir.path().to_path_buf(),
            ..WorkerConfig::default()
        };
        let t = counter.wrap(quic(100 + i as u64)?);
        let w = WorkerNode::new(Arc::new(t), renderer.clone(), cfg);
        handles.push(tokio::spawn(w.run(stopped.clone())));
    }
    // Every worker has its welcome, so the manager has finished with each
    // handshake before memory is read.
    let connected = counter.wait_for(workers, Duration::from_secs(120)).await;
    let rss1 = rss_bytes();
    let vcount = SessionCounter::new();
    for i in 0..4u64 {
        let cfg = VerifierConfig {
            manager: addr.clone(),
            work_dir: dir.path().join("verifier"),
            ..VerifierConfig::default()
        };
        let t = vcount.wrap(quic(50 + i)?);
        handles.push(tokio::spawn(
            VerifierNode::new(Arc::new(t), cfg).run(stopped.clone()),
        ));
    }
    vcount.wait_for(4, Duration::from_secs(30)).await;
    let client_transport = quic(2)?;
    let client = Client::connect(&client_transport, &addr, None)
        .await
        .map_err(|e| fail(format!("client: {e}")))?;
    let mut events = manager.subscribe();
    let mut lat = Vec::with_capacity(samples);
    let mut rtt = Vec::with_capacity(samples);
    for _ in 0..samples {
        let t0 = tokio::time::Instant::now();
        let (job, _) = client
            .submit(&bench_spec(scene.clone(), 1, 1))
            .await
            .map_err(|e| fail(format!("submit: {e}")))?;
        let started = tokio::time::timeout(Duration::from_secs(30), starts.recv())
            .await
            .map_err(|_| fail("no worker started within 30 s".into()))?
            .ok_or_else(|| fail("renderers gone".into()))?;
        lat.push(started.saturating_duration_since(t0).as_secs_f64() * 1e3);
        loop {
            match tokio::time::timeout(Duration::from_secs(30), events.recv()).await {
                Ok(Ok((j, JobEvent::Completed { .. }))) if j == job => break,
                Ok(Ok((j, JobEvent::Failed { reason }))) if j == job => {
                    return Err(fail(format!("job failed: {reason}")))
                }
                Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
                Ok(Err(e)) => return Err(fail(e.to_string())),
                Err(_) => return Err(fail("job did not complete within 30 s".into())),
            }
        }
        let r0 = Instant::now();
        client
            .status(job)
            .await
            .map_err(|e| fail(format!("status: {e}")))?;
        rtt.push(r0.elapsed().as_secs_f64() * 1e3);
    }
    drop(client);
    let _ = stop.send(true);
    manager.shutdown().await;
    for h in handles {
        h.abort();
    }
    lat.sort_by(f64::total_cmp);
    rtt.sort_by(f64::total_cmp);
    Ok(LatencyFigures {
        connected,
        ready_to_start_ms: lat,
        round_trip_ms: rtt,
        rss_per_worker: match (rss0, rss1) {
            // No growth means freed memory was reused: nothing measured.
            (Some(a), Some(b)) if connected > 0 && b > a => Some((b - a) as f64 / connected as f64),
            _ => None,
        },
    })
}

/// Connects `workers` QUIC workers (each its own endpoint and key) to the
/// manager at `manager`, prints `connected N` once they are up (or after
/// two minutes), then keeps them connected until standard input closes.
/// The manager-memory benchmark runs this in a child process so that only
/// the manager's side of each connection lives in the measured process.
pub async fn swarm(manager: &str, workers: usize) -> Result<(), BenchError> {
    install_crypto_provider();
    let dir = tempfile::tempdir().map_err(|e| BenchError::Setup(e.to_string()))?;
    let (_stop, stopped) = watch::channel(false);
    let counter = SessionCounter::new();
    let renderer = Arc::new(StandInRenderer::instant());
    let mut handles = Vec::new();
    for i in 0..workers {
        let cfg = WorkerConfig {
            manager: manager.to_string(),
            work_dir: dir.path().to_path_buf(),
            ..WorkerConfig::default()
        };
        let t = counter.wrap(quic(1_000_000 + i as u64)?);
        let w = WorkerNode::new(Arc::new(t), renderer.clone(), cfg);
        handles.push(tokio::spawn(w.run(stopped.clone())));
    }
    let n = counter.wait_for(workers, Duration::from_secs(120)).await;
    println!("connected {n}");
    let _ = tokio::task::spawn_blocking(|| {
        let mut sink = String::new();
        while std::io::stdin().read_line(&mut sink).is_ok_and(|r| r > 0) {}
    })
    .await;
    for h in handles {
        h.abort();
    }
    Ok(())
}

/// Resident-set growth of a QUIC manager per idle connected worker, with
/// the workers in a child process (`exe swarm`). Returns (bytes per worker,
/// workers connected).
pub async fn quic_manager_memory(
    exe: &std::path::Path,
    workers: usize,
) -> Result<(f64, usize), BenchError> {
    let fail = |reason: String| BenchError::Run {
        name: "QUIC manager memory".into(),
        reason,
    };
    install_crypto_provider();
    let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::in_memory());
    let dir = tempfile::tempdir().map_err(|e| BenchError::Setup(e.to_string()))?;
    let config = ManagerConfig {
        listen: "127.0.0.1:0".into(),
        stake_epoch_minutes: 0.0,
        ..ManagerConfig::default()
    };
    let manager = ManagerBuilder::new(Arc::new(quic(3)?), Arc::new(MemoryTaskStore::new()), blobs)
        .config(config)
        .scratch_dir(dir.path().join("manager"))
        .build()
        .start()
        .await
        .map_err(|e| fail(e.to_string()))?;
    let rss0 = rss_bytes();
    let mut child = std::process::Command::new(exe)
        .args([
            "swarm",
            "--manager",
            manager.addr(),
            "--workers",
            &workers.to_string(),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot start {}: {e}", exe.display())))?;
    let stdout = child.stdout.take();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        if let Some(out) = stdout {
            let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line);
        }
        line
    })
    .await
    .map_err(|e| fail(e.to_string()))?;
    let connected: usize = line
        .trim()
        .strip_prefix("connected ")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    // The swarm reports only once every worker has its welcome, so the
    // manager has finished with each handshake before memory is read.
    let rss1 = rss_bytes();
    drop(child.stdin.take());
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
    manager.shutdown().await;
    match (rss0, rss1) {
        (Some(a), Some(b)) if connected > 0 => {
            Ok((b.saturating_sub(a) as f64 / connected as f64, connected))
        }
        _ => Err(fail(format!("no workers connected ({line:?})"))),
    }
}

/// Measures the QUIC manager's memory per idle worker (workers in a child
/// process) and adds the row. Runs first, in a fresh process: memory that
/// earlier benchmarks freed would be reused without growing the resident set.
pub async fn run_manager_memory(opts: &Options, report: &mut Report) -> Result<(), BenchError> {
    let workers = if opts.quick { 20 } else { 1_000 };
    if let Some(exe) = &opts.swarm_exe {
        let (b, n) = quic_manager_memory(exe, workers).await?;
        if b <= 0.0 {
            // Memory freed by earlier runs was reused: nothing measured.
            println!("[memory] QUIC manager: no RSS growth with {n} workers; no figure");
            return Ok(());
        }
        report.push(
            Row::new(
                "memory",
                &format!("QUIC manager, per idle worker ({n} workers)"),
                b / 1024.0,
                "KiB",
            )
            .target(Target::AtMost(20.0))
            .note(
                "manager's RSS growth ÷ workers, the workers in a child process (each its own \
                 QUIC endpoint and key); mostly quinn's own per-connection state (connection, \
                 event queue, send buffer sized by path MTU discovery) and TLS keys",
            ),
        );
    }
    Ok(())
}

/// Runs the latency benchmark and adds its rows to `report`.
pub async fn run(opts: &Options, report: &mut Report) -> Result<(), BenchError> {
    let (workers, samples) = if opts.quick { (20, 20) } else { (1_000, 300) };
    let f = quic_latency(workers, samples).await?;
    let rtt50 = quantile(&f.round_trip_ms, 0.5);
    let note = format!(
        "{} of {workers} QUIC worker connections (one endpoint and key each), {samples} one-frame \
         jobs submitted one after another; from the client's submit call (request, quote, store \
         insert, dispatch, offer) to the renderer's first instruction; scene cached",
        f.connected
    );
    report.push(
        Row::new(
            "latency",
            "QUIC ready→start p50",
            quantile(&f.ready_to_start_ms, 0.5),
            "ms",
        )
        .baseline(rtt50, "status round trip p50, ms")
        .note(note),
    );
    report.push(
        Row::new(
            "latency",
            "QUIC ready→start p99",
            quantile(&f.ready_to_start_ms, 0.99),
            "ms",
        )
        .baseline(
            quantile(&f.round_trip_ms, 0.99),
            "status round trip p99, ms",
        )
        .target(Target::AtMost(5.0)),
    );
    if let Some(b) = f.rss_per_worker {
        report.push(
            Row::new(
                "memory",
                &format!(
                    "QUIC, both ends in one process, per worker ({} workers)",
                    f.connected
                ),
                b / 1024.0,
                "KiB",
            )
            .note(
                "RSS growth ÷ workers; each worker's own QUIC endpoint (socket, buffers, driver \
                 task) lives in this process too, so the manager's share is smaller",
            ),
        );
    }
    Ok(())
}
