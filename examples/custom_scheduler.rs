//! A user-defined scheduler plugged into a manager.
//!
//! The manager asks its [`Scheduler`] which idle worker gets each queued
//! task; eligibility (minimum IB, tags, exclusions) is already decided by
//! [`is_eligible`]. This one hands each task to the eligible worker that has
//! received the fewest so far, spreading a job evenly, and records its
//! choices so the program can print them.
//!
//! `cargo run -p inferix-examples --bin custom_scheduler`

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use inferix_core::ids::NodeId;
use inferix_core::job::{FrameRange, JobSpec};
use inferix_core::scheduler::{is_eligible, Scheduler, TaskDemand, WorkerInfo};
use inferix_local::LocalNetwork;

/// Tasks handed to each worker so far.
type Tally = Arc<Mutex<BTreeMap<NodeId, usize>>>;

/// Picks the eligible worker with the fewest tasks so far.
struct LeastLoaded {
    given: Tally,
}

impl Scheduler for LeastLoaded {
    fn choose(&mut self, demand: &TaskDemand<'_>, idle: &[WorkerInfo]) -> Option<NodeId> {
        let mut given = self.given.lock().unwrap_or_else(|e| e.into_inner());
        let pick = idle
            .iter()
            .filter(|w| is_eligible(demand, w))
            .min_by_key(|w| given.get(&w.id).copied().unwrap_or(0))?
            .id;
        *given.entry(pick).or_default() += 1;
        Some(pick)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let given = Tally::default();
    let net = LocalNetwork::builder()
        .workers(3)
        .verifiers(1)
        .scheduler(LeastLoaded {
            given: given.clone(),
        })
        .start()
        .await?;
    let client = net.client().await?;
    let scene = client
        .upload_scene_bytes(inferix_gpu::demo_scene_glb(), "demo.glb")
        .await?;
    let mut spec = JobSpec::new(scene, FrameRange::new(1, 6));
    (spec.settings.width, spec.settings.height) = (64, 36);
    spec.settings.samples = 2;
    spec.chunk_size = 1;
    let (job, _) = client.submit(&spec).await?;
    let status = client.wait(job, |_| {}).await?;
    println!("job {job} {}", status.job.state.as_str());
    let tally = given.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for (worker, tasks) in &tally {
        println!("worker {worker}: {tasks} tasks");
    }
    println!(
        "{} tasks over {} workers",
        tally.values().sum::<usize>(),
        tally.len()
    );
    drop(client);
    net.shutdown().await;
    Ok(())
}
