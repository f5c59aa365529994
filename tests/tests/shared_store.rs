//! Two managers share one task store, each with its own workers and
//! verifiers, and lease from the same queue head. Each writes the leases
//! of a pass in one batch; when the other manager took some of those
//! tasks first, the task it names is left out or the pass is given up
//! and the queue read again. Whatever the interleaving, the job
//! completes, every task is leased once, accepted once and paid once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use inferix_core::blob::BlobStore;
use inferix_core::ids::NodeId;
use inferix_core::ledger::Account;
use inferix_core::protocol::JobEvent;
use inferix_core::renderer::stand_in::{StandInBehaviour, StandInRenderer};
use inferix_core::store::{MemoryTaskStore, TaskStore};
use inferix_core::task::TaskStatus;
use inferix_node::{Client, ManagerBuilder, ManagerConfig, VerifierConfig, VerifierNode};
use inferix_storage::ObjectBlobStore;
use inferix_tests::{numbered_worker, start_manager, submit_stand_in_job};
use inferix_transport::InProcNetwork;
use tokio::sync::watch;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_managers_on_one_store_lease_each_task_once() {
    let net = InProcNetwork::new();
    let store = Arc::new(MemoryTaskStore::new());
    let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::in_memory());
    let first = start_manager(&net, store.clone(), blobs.clone(), ManagerConfig::default()).await;
    let second = ManagerBuilder::new(
        Arc::new(net.transport(NodeId(2))),
        store.clone(),
        blobs.clone(),
    )
    .config(ManagerConfig {
        listen: "second-manager".into(),
        ..ManagerConfig::default()
    })
    .scratch_dir(std::env::temp_dir().join(format!(
        "inferix-test-second-manager-{}",
        std::process::id()
    )))
    .inspector(Arc::new(inferix_gpu::GltfInspector))
    .build()
    .start()
    .await
    .unwrap();
    let (stop, stopped) = watch::channel(false);
    let work = tempfile::tempdir().unwrap();
    let renderer = Arc::new(StandInRenderer::new(
        StandInBehaviour::Honest,
        Duration::from_millis(20),
    ));
    let mut watchers = Vec::new();
    // Each worker's manager.
    let mut manager_of: HashMap<NodeId, u128> = HashMap::new();
    for (m, manager) in [&first, &second].into_iter().enumerate() {
        let m = m as u128;
        // Three verifiers each: a new worker's result needs two votes.
        for v in 0..3 {
            let verifier = VerifierNode::new(
                Arc::new(net.transport(NodeId(400 + 10 * m + v))),
                VerifierConfig {
                    manager: manager.addr().into(),
                    work_dir: work.path().join(format!("v{m}-{v}")),
                    ..VerifierConfig::default()
                },
            )
            .with_blob_store(blobs.clone());
            tokio::spawn(verifier.run(stopped.clone()));
        }
        for w in 0..4 {
            let worker = numbered_worker(&net, 100 + 10 * m + w, manager.addr(), renderer.clone());
            manager_of.insert(worker.id(), m);
            tokio::spawn(worker.run(stopped.clone()));
        }
        let client = Client::connect(&net.transport(NodeId(300 + m)), manager.addr(), None)
            .await
            .unwrap();
        watchers.push(client);
    }
    let job = submit_stand_in_job(&watchers[0], 40, 8, 1).await;

    // Whichever manager accepts the last task completes the job.
    let (done_tx, mut done) = tokio::sync::mpsc::unbounded_channel();
    for client in &watchers {
        let mut events = client.watch(job).await.unwrap();
        let done_tx = done_tx.clone();
        tokio::spawn(async move {
            while let Some(e) = events.recv().await {
                if matches!(e, JobEvent::Completed { .. } | JobEvent::Failed { .. }) {
                    let _ = done_tx.send(e);
                }
            }
        });
    }
    let end = tokio::time::timeout(Duration::from_secs(120), done.recv())
        .await
        .expect("the job ends in time")
        .unwrap();
    assert!(matches!(end, JobEvent::Completed { .. }), "{end:?}");

    let tasks = store.tasks_of_job(job).await.unwrap();
    assert_eq!(tasks.len(), 40);
    let mut by_manager: HashMap<u128, usize> = HashMap::new();
    for t in &tasks {
        assert_eq!(t.status, TaskStatus::Accepted, "{:?}", t.history);
        assert_eq!(t.attempts, 1, "leased once: {:?}", t.history);
        let leases = t
            .history
            .iter()
            .filter(|c| c.status == TaskStatus::Leased)
            .count();
        assert_eq!(leases, 1, "{:?}", t.history);
        let worker = t.result.as_ref().map(|r| r.worker).unwrap();
        *by_manager.entry(manager_of[&worker]).or_default() += 1;
    }
    // Each manager's workers rendered part of it: both leased from the
    // one queue (the renders take long enough for every worker to join).
    assert_eq!(by_manager.len(), 2, "{by_manager:?}");
    // Paid once each: one payment per task out of the job's escrow.
    let payments: Vec<_> = store
        .transactions()
        .await
        .unwrap()
        .into_iter()
        .filter(|tx| tx.id.starts_with("pay:"))
        .collect();
    assert_eq!(payments.len(), 40, "{by_manager:?}");
    assert!(
        payments.iter().all(|tx| tx
            .postings
            .iter()
            .any(|p| p.account == Account::Job(job) && p.amount < 0)
            && tx
                .postings
                .iter()
                .any(|p| matches!(p.account, Account::Worker(_)) && p.amount > 0)),
        "each out of the job's escrow to a worker"
    );
    let _ = stop.send(true);
    first.shutdown().await;
    second.shutdown().await;
}
