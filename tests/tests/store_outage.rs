//! The task database goes away mid-run: the manager hands out no work while
//! it is gone, keeps the result a worker delivers meanwhile (on its disk as
//! well, so a manager that crashes during the outage still has it after a
//! restart), records it once the database is back, and the job completes
//! with every task rendered once and accepted once.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use inferix_core::account::{AccountRecord, NodeStanding};
use inferix_core::blob::BlobStore;
use inferix_core::ids::{JobId, NodeId, TaskId};
use inferix_core::job::Job;
use inferix_core::ledger::Transaction;
use inferix_core::renderer::stand_in::{StandInBehaviour, StandInRenderer};
use inferix_core::store::{Change, MemoryTaskStore, StoreError, TaskStore};
use inferix_core::task::{Task, TaskStatus};
use inferix_core::time::TokioClock;
use inferix_node::{Client, ManagerBuilder, ManagerConfig, WorkerConfig, WorkerNode};
use inferix_storage::ObjectBlobStore;
use inferix_tests::{
    manager_scratch, seeded_identity, spawn_honest_workers, spawn_verifiers, start_manager,
    submit_stand_in_job, until_completed,
};
use inferix_transport::InProcNetwork;
use tokio::sync::watch;

/// A store that can be switched off, as a database server going away, and
/// that records every task state it writes.
struct OutageStore {
    inner: MemoryTaskStore,
    down: AtomicBool,
    refused: AtomicUsize,
    written: watch::Sender<Vec<(TaskId, TaskStatus)>>,
}

impl OutageStore {
    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return Err(StoreError::Unavailable("connection refused".into()));
        }
        Ok(())
    }
}

#[async_trait]
impl TaskStore for OutageStore {
    async fn insert_account(&self, a: &AccountRecord) -> Result<(), StoreError> {
        self.check()?;
        self.inner.insert_account(a).await
    }
    async fn update_account(&self, a: &AccountRecord) -> Result<(), StoreError> {
        self.check()?;
        self.inner.update_account(a).await
    }
    async fn account(&self, name: &str) -> Result<Option<AccountRecord>, StoreError> {
        self.check()?;
        self.inner.account(name).await
    }
    async fn accounts(&self) -> Result<Vec<AccountRecord>, StoreError> {
        self.check()?;
        self.inner.accounts().await
    }
    async fn standing(&self, name: &str) -> Result<Option<NodeStanding>, StoreError> {
        self.check()?;
        self.inner.standing(name).await
    }
    async fn put_standing(
        &self,
        name: &str,
        standing: &mut NodeStanding,
    ) -> Result<(), StoreError> {
        self.check()?;
        self.inner.put_standing(name, standing).await
    }
    async fn insert_job(&self, job: &Job, tasks: &[Task]) -> Result<(), StoreError> {
        self.check()?;
        self.inner.insert_job(job, tasks).await
    }
    async fn update_job(&self, job: &Job) -> Result<(), StoreError> {
        self.check()?;
        self.inner.update_job(job).await
    }
    async fn job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        self.check()?;
        self.inner.job(id).await
    }
    async fn jobs(&self) -> Result<Vec<Job>, StoreError> {
        self.check()?;
        self.inner.jobs().await
    }
    async fn task(&self, id: TaskId) -> Result<Option<Task>, StoreError> {
        self.check()?;
        self.inner.task(id).await
    }
    async fn tasks_of_job(&self, job: JobId) -> Result<Vec<Task>, StoreError> {
        self.check()?;
        self.inner.tasks_of_job(job).await
    }
    async fn tasks_in_status(
        &self,
        status: TaskStatus,
        limit: usize,
    ) -> Result<Vec<Task>, StoreError> {
        self.check()?;
        self.inner.tasks_in_status(status, limit).await
    }
    async fn update_task(&self, task: &mut Task) -> Result<(), StoreError> {
        self.check()?;
        self.inner.update_task(task).await?;
        self.written.send_modify(|w| w.push((task.id, task.status)));
        Ok(())
    }
    async fn expired_leases(&self, now_ms: u64, limit: usize) -> Result<Vec<Task>, StoreError> {
        self.check()?;
        self.inner.expired_leases(now_ms, limit).await
    }
    async fn append_transaction(&self, tx: &Transaction) -> Result<(), StoreError> {
        self.check()?;
        self.inner.append_transaction(tx).await
    }
    async fn apply(&self, changes: &mut [Change]) -> Result<(), StoreError> {
        self.check()?;
        self.inner.apply(changes).await?;
        self.written.send_modify(|w| {
            w.extend(changes.iter().filter_map(|c| match c {
                Change::Task(t) => Some((t.id, t.status)),
                _ => None,
            }))
        });
        Ok(())
    }
    async fn transactions(&self) -> Result<Vec<Transaction>, StoreError> {
        self.check()?;
        self.inner.transactions().await
    }
}

#[tokio::test(start_paused = true)]
async fn a_result_delivered_during_a_database_outage_is_kept_and_recorded() {
    let net = InProcNetwork::new();
    let store = Arc::new(OutageStore {
        inner: MemoryTaskStore::new(),
        down: AtomicBool::new(false),
        refused: AtomicUsize::new(0),
        written: watch::channel(Vec::new()).0,
    });
    let mut written = store.written.subscribe();
    let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::in_memory());
    let manager = start_manager(&net, store.clone(), blobs, ManagerConfig::default()).await;
    let (_stop, stopped) = watch::channel(false);
    // Two verifiers: the default quorum.
    spawn_verifiers(
        &net,
        manager.addr(),
        2,
        None,
        None,
        &std::env::temp_dir(),
        &stopped,
    );
    let worker = WorkerNode::new(
        Arc::new(net.node(seeded_identity(100))),
        Arc::new(StandInRenderer::new(
            StandInBehaviour::Honest,
            Duration::from_secs(10),
        )),
        WorkerConfig {
            manager: manager.addr().into(),
            work_dir: std::env::temp_dir().join(format!("inferix-outage-{}", std::process::id())),
            ..WorkerConfig::default()
        },
    );
    tokio::spawn(worker.run(stopped));
    let client = Client::connect(&net.transport(NodeId(300)), manager.addr(), None)
        .await
        .unwrap();
    let job = submit_stand_in_job(&client, 3, 16, 1).await;
    let mut events = client.watch(job).await.unwrap();

    // Wait until the second task is being rendered, then take the database
    // away for longer than the render takes.
    tokio::time::timeout(
        Duration::from_secs(600),
        written.wait_for(|w| {
            w.iter()
                .any(|(t, st)| t.index == 1 && *st == TaskStatus::Leased)
        }),
    )
    .await
    .expect("the second task is leased")
    .unwrap();
    store.down.store(true, Ordering::SeqCst);
    // The outage lasts a minute of virtual time, several renders long.
    tokio::time::sleep(Duration::from_secs(60)).await;
    let during = store.inner.tasks_of_job(job).await.unwrap();
    assert!(
        store.refused.load(Ordering::SeqCst) > 0,
        "the manager kept trying the database"
    );
    assert_eq!(
        during
            .iter()
            .filter(|t| t.status == TaskStatus::Queued)
            .count(),
        1,
        "no task was leased while the database was away: {during:?}"
    );
    store.down.store(false, Ordering::SeqCst);

    until_completed(&mut events, Duration::from_secs(300)).await;
    for t in store.inner.tasks_of_job(job).await.unwrap() {
        assert_eq!(t.status, TaskStatus::Accepted);
        assert_eq!(
            t.attempts, 1,
            "task {} rendered once, its result kept through the outage: {:?}",
            t.id, t.history
        );
    }
    let pays = store
        .inner
        .transactions()
        .await
        .unwrap()
        .iter()
        .filter(|t| t.id.starts_with("pay:"))
        .count();
    assert_eq!(pays, 3, "each task paid once");
    manager.shutdown().await;
}

fn outage_store() -> Arc<OutageStore> {
    Arc::new(OutageStore {
        inner: MemoryTaskStore::new(),
        down: AtomicBool::new(false),
        refused: AtomicUsize::new(0),
        written: watch::channel(Vec::new()).0,
    })
}

/// The manager acknowledges a result while the database is away, then dies
/// (as with kill -9) before the database is back. The manager restarted on
/// the same folder reads the result back from its journal and records it:
/// the frame is not rendered again and the job completes.
#[tokio::test(start_paused = true)]
async fn a_result_journalled_during_an_outage_survives_a_manager_crash() {
    let net = InProcNetwork::new();
    let store = outage_store();
    let mut written = store.written.subscribe();
    let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::in_memory());
    let config = ManagerConfig {
        quorum: 1,
        ..ManagerConfig::default()
    };
    let started = tokio::time::Instant::now();
    let first = start_manager(&net, store.clone(), blobs.clone(), config.clone()).await;
    let addr = first.addr().to_string();
    let (stop, stopped) = watch::channel(false);
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = spawn_verifiers(&net, &addr, 1, None, None, dir.path(), &stopped);
    nodes.extend(spawn_honest_workers(
        &net,
        &addr,
        1,
        Duration::from_secs(10),
        dir.path(),
        &stopped,
    ));
    let client = Client::connect(&net.transport(NodeId(300)), &addr, None)
        .await
        .unwrap();
    let job = submit_stand_in_job(&client, 2, 16, 1).await;
    drop(client);

    tokio::time::timeout(
        Duration::from_secs(600),
        written.wait_for(|w| {
            w.iter()
                .any(|(t, st)| t.index == 0 && *st == TaskStatus::Leased)
        }),
    )
    .await
    .expect("the first task is leased")
    .unwrap();
    store.down.store(true, Ordering::SeqCst);
    let journal = manager_scratch().join("results-journal");
    tokio::time::timeout(Duration::from_secs(600), async {
        loop {
            let entries = std::fs::read_dir(&journal)
                .map(|d| {
                    d.flatten()
                        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                        .count()
                })
                .unwrap_or(0);
            if entries > 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
    .await
    .expect("the result delivered during the outage is journalled");
    first.abort();
    // The old manager's address is free on the runtime's next turn.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let epoch = 1_000 + started.elapsed().as_millis() as u64;
    let second = ManagerBuilder::new(Arc::new(net.transport(NodeId(1))), store.clone(), blobs)
        .clock(Arc::new(TokioClock::starting_at(epoch)))
        .config(config)
        .scratch_dir(manager_scratch())
        .build()
        .start()
        .await
        .expect("the manager restarts on its store");
    // The database comes back half a minute after the restart.
    tokio::time::sleep(Duration::from_secs(30)).await;
    store.down.store(false, Ordering::SeqCst);

    let client = Client::connect(&net.transport(NodeId(301)), second.addr(), None)
        .await
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(900), client.wait(job, |_| {}))
        .await
        .expect("the job ends")
        .unwrap();
    assert_eq!(status.job.state, inferix_core::job::JobState::Completed);
    for t in store.inner.tasks_of_job(job).await.unwrap() {
        assert_eq!(t.status, TaskStatus::Accepted);
        assert_eq!(
            t.attempts, 1,
            "task {} rendered once, its result kept through the crash: {:?}",
            t.id, t.history
        );
    }
    let pays = store
        .inner
        .transactions()
        .await
        .unwrap()
        .iter()
        .filter(|t| t.id.starts_with("pay:"))
        .count();
    assert_eq!(pays, 2, "each task paid once");
    let left = std::fs::read_dir(&journal)
        .map(|d| d.flatten().count())
        .unwrap_or(0);
    assert_eq!(
        left, 0,
        "the journal is emptied once the database has the result"
    );
    let _ = stop.send(true);
    for n in nodes {
        let _ = n.await;
    }
    second.shutdown().await;
}
