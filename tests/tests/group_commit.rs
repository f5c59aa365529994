//! The manager writes a worker's result from the task as it leased it,
//! without reading it again, together with the other results of the same
//! batch of inputs. That copy may be stale: another path or another
//! manager may have written the task since. The write is a compare-and-set
//! on the task's version, so a stale copy must send the result down the
//! one-at-a-time path, which reads the task from the store, and never
//! lose it or record it twice.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use inferix_core::blob::BlobStore;
use inferix_core::ids::NodeId;
use inferix_core::ledger::Account;
use inferix_core::renderer::stand_in::{StandInBehaviour, StandInRenderer};
use inferix_core::renderer::{RenderError, RenderRequest, RenderedFrame, Renderer, SceneFormat};
use inferix_core::store::{MemoryTaskStore, TaskStore};
use inferix_core::task::TaskStatus;
use inferix_node::{Client, ManagerConfig};
use inferix_storage::ObjectBlobStore;
use inferix_tests::{
    numbered_worker, spawn_verifiers, start_manager, submit_stand_in_job, until_completed,
};
use inferix_transport::InProcNetwork;
use tokio::sync::{mpsc, watch, Semaphore};

/// A renderer that says when a render starts and finishes it only once
/// the test lets it.
struct HeldRenderer {
    inner: StandInRenderer,
    started: mpsc::UnboundedSender<()>,
    release: Arc<Semaphore>,
}

#[async_trait]
impl Renderer for HeldRenderer {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn formats(&self) -> &[SceneFormat] {
        self.inner.formats()
    }
    fn device_class(&self) -> String {
        self.inner.device_class()
    }
    async fn render(&self, request: RenderRequest) -> Result<Vec<RenderedFrame>, RenderError> {
        let _ = self.started.send(());
        self.release
            .acquire()
            .await
            .map_err(|e| RenderError::Backend(e.to_string()))?
            .forget();
        self.inner.render(request).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_whose_task_changed_after_its_lease_is_recorded_from_the_store() {
    let net = InProcNetwork::new();
    let store = Arc::new(MemoryTaskStore::new());
    let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::in_memory());
    let manager = start_manager(&net, store.clone(), blobs.clone(), ManagerConfig::default()).await;
    let work = tempfile::tempdir().unwrap();
    let (stop, stopped) = watch::channel(false);
    let _verifiers = spawn_verifiers(
        &net,
        manager.addr(),
        // A new worker's result is on probation: two votes.
        3,
        Some(blobs.clone()),
        None,
        work.path(),
        &stopped,
    );
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let release = Arc::new(Semaphore::new(0));
    let renderer = Arc::new(HeldRenderer {
        inner: StandInRenderer::new(StandInBehaviour::Honest, Duration::ZERO),
        started: started_tx,
        release: release.clone(),
    });
    let worker = numbered_worker(&net, 100, manager.addr(), renderer);
    let worker_id = worker.id();
    let _worker = tokio::spawn(worker.run(stopped.clone()));

    let client = Client::connect(&net.transport(NodeId(300)), manager.addr(), None)
        .await
        .unwrap();
    let job = submit_stand_in_job(&client, 1, 8, 1).await;
    let mut events = client.watch(job).await.unwrap();
    tokio::time::timeout(Duration::from_secs(60), started.recv())
        .await
        .expect("the worker starts rendering")
        .unwrap();

    // While the worker renders, the task is written again (as a lease
    // renewal by another path would): the manager's copy of the lease is
    // now one version behind.
    let id = store.tasks_of_job(job).await.unwrap()[0].id;
    let mut task = store.task(id).await.unwrap().unwrap();
    assert_eq!(task.status, TaskStatus::Leased);
    let leased_version = task.version;
    store.update_task(&mut task).await.unwrap();
    assert_eq!(task.version, leased_version + 1);

    release.add_permits(1);
    until_completed(&mut events, Duration::from_secs(60)).await;

    let task = store.task(id).await.unwrap().unwrap();
    assert_eq!(task.status, TaskStatus::Accepted);
    assert_eq!(
        task.result.as_ref().map(|r| r.worker),
        Some(worker_id),
        "the worker's result is the task's"
    );
    assert_eq!(task.attempts, 1, "rendered once");
    // A task's payment is named after it (as every payment test reads it).
    let payments: Vec<_> = store
        .transactions()
        .await
        .unwrap()
        .into_iter()
        .filter(|tx| tx.id.starts_with("pay:"))
        .collect();
    assert_eq!(payments.len(), 1, "paid once: {payments:?}");
    assert!(
        payments[0]
            .postings
            .iter()
            .any(|p| p.account == Account::Worker(worker_id) && p.amount > 0),
        "to its worker: {payments:?}"
    );
    let _ = stop.send(true);
    manager.shutdown().await;
}
