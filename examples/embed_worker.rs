//! A render worker embedded in another tokio service, sharing its runtime.
//!
//! The "service" here is a tiny TCP status endpoint; the worker runs beside
//! it as one more task, connects out to a manager over QUIC and renders
//! whatever the manager assigns. Pass a manager address (`<id>@host:port`,
//! as printed by `inferix manager`) to join a real network; without one the
//! program starts a local manager with a verifier and no worker of its own,
//! submits a short job and waits until the embedded worker has rendered it.
//!
//! `cargo run -p inferix-examples --bin embed_worker [MANAGER]`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use inferix_core::job::{FrameRange, JobSpec};
use inferix_core::protocol::JobEvent;
use inferix_local::{LocalNetwork, LocalTransport};
use inferix_node::{WorkerConfig, WorkerNode};
use inferix_transport::{NodeIdentity, QuicConfig, QuicTransport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The host service: answers every TCP connection with its status.
    let frames = Arc::new(AtomicU64::new(0));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let status_addr = listener.local_addr()?;
    let seen = frames.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let line = format!("ok, {} frames rendered\n", seen.load(Ordering::Relaxed));
            let _ = conn.write_all(line.as_bytes()).await;
        }
    });

    // The network to join: an address from the command line, or a local one.
    let (local, manager) = match std::env::args().nth(1) {
        Some(addr) => (None, addr),
        None => {
            let net = LocalNetwork::builder()
                .workers(0)
                .verifiers(1)
                .transport(LocalTransport::Quic)
                .start()
                .await?;
            let addr = net.address().to_string();
            (Some(net), addr)
        }
    };

    // The embedded worker: one more task on this runtime.
    let renderer = Arc::new(inferix_gpu::PathTracer::new()?);
    let transport = Arc::new(QuicTransport::new(
        NodeIdentity::generate(),
        QuicConfig::default(),
    )?);
    let config = WorkerConfig {
        manager,
        ib: 1.0,
        work_dir: std::env::temp_dir().join("inferix-embedded-worker"),
        ..WorkerConfig::default()
    };
    let worker = WorkerNode::new(transport, renderer, config);
    println!("embedded worker {}", worker.id());
    let (stop, stopped) = watch::channel(false);
    let worker_task = tokio::spawn(worker.run(stopped));

    if let Some(net) = local {
        // Demonstration: a short job that only the embedded worker can take.
        let client = net.client().await?;
        let scene = client
            .upload_scene_bytes(inferix_gpu::demo_scene_glb(), "demo.glb")
            .await?;
        let mut spec = JobSpec::new(scene, FrameRange::new(1, 4));
        (spec.settings.width, spec.settings.height) = (96, 54);
        spec.settings.samples = 4;
        spec.chunk_size = 2;
        let (job, _) = client.submit(&spec).await?;
        let status = client
            .wait(job, |ev| {
                if let JobEvent::TaskAccepted {
                    accepted_frames, ..
                } = ev
                {
                    frames.store(*accepted_frames, Ordering::Relaxed);
                }
            })
            .await?;
        println!("job {job} {}", status.job.state.as_str());
        let mut reply = String::new();
        TcpStream::connect(status_addr)
            .await?
            .read_to_string(&mut reply)
            .await?;
        println!("status endpoint: {}", reply.trim());
        drop(client);
        let _ = stop.send(true);
        worker_task.await??;
        net.shutdown().await;
    } else {
        println!("status endpoint on {status_addr}; Ctrl-C to stop");
        tokio::signal::ctrl_c().await?;
        let _ = stop.send(true);
        worker_task.await??;
    }
    Ok(())
}
