//! The SQLite task store against the shared suite, in memory and on disk.

use inferix_core::ids::NodeId;
use inferix_core::store::conformance::{sample_job, test_all};
use inferix_core::store::TaskStore;
use inferix_core::task::{Lease, Task, TaskStatus};
use inferix_storage::SqliteTaskStore;

#[tokio::test]
async fn in_memory_store_passes_the_conformance_suite() {
    test_all(|| async { SqliteTaskStore::open_in_memory().unwrap() }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn file_store_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let n = std::sync::atomic::AtomicUsize::new(0);
    test_all(|| {
        let path = dir.path().join(format!(
            "store-{}.db",
            n.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        async move { SqliteTaskStore::open(path).unwrap() }
    })
    .await;
}

#[tokio::test]
async fn everything_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inferix.db");
    let (job, tasks) = sample_job(1, 10, 6);
    let mut leased = tasks[1].clone();
    let tx = inferix_core::ledger::Transaction::transfer(
        "fund-1",
        11,
        "escrow",
        inferix_core::ledger::Account::User("alice".into()),
        inferix_core::ledger::Account::Job(job.id),
        1234,
    );
    {
        let store = SqliteTaskStore::open(&path).unwrap();
        store.insert_job(&job, &tasks).await.unwrap();
        leased
            .lease(
                Lease {
                    worker: NodeId(7),
                    manager: NodeId(1),
                    deadline_ms: 100,
                    scene: None,
                },
                12,
            )
            .unwrap();
        store.update_task(&mut leased).await.unwrap();
        store.append_transaction(&tx).await.unwrap();
    }
    let store = SqliteTaskStore::open(&path).unwrap();
    assert_eq!(store.jobs().await.unwrap(), vec![job.clone()]);
    assert_eq!(store.task(leased.id).await.unwrap(), Some(leased.clone()));
    assert_eq!(store.tasks_of_job(job.id).await.unwrap().len(), 3);
    assert_eq!(
        store.tasks_in_status(TaskStatus::Leased, 10).await.unwrap(),
        vec![leased.clone()]
    );
    assert_eq!(
        store
            .tasks_in_status(TaskStatus::Queued, 10)
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        store.expired_leases(100, 10).await.unwrap(),
        vec![leased.clone()]
    );
    assert_eq!(store.transactions().await.unwrap(), vec![tx]);
    // So do the maintained balances and the per-status counts.
    assert_eq!(
        store
            .balance(&inferix_core::ledger::Account::Job(job.id))
            .await
            .unwrap(),
        1234
    );
    assert_eq!(
        store.status_counts(job.id).await.unwrap(),
        inferix_core::store::StatusCount::tally(&store.tasks_of_job(job.id).await.unwrap())
    );
    // The version survives too, so a stale pre-restart copy still conflicts.
    let mut stale = tasks[1].clone();
    stale
        .lease(
            Lease {
                worker: NodeId(8),
                manager: NodeId(2),
                deadline_ms: 200,
                scene: None,
            },
            13,
        )
        .unwrap();
    assert!(store.update_task(&mut stale).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_handles_on_one_file_have_one_claim_winner() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let a = SqliteTaskStore::open(&path).unwrap();
    let b = SqliteTaskStore::open(&path).unwrap();
    let (job, tasks) = sample_job(0, 1, 2);
    a.insert_job(&job, &tasks).await.unwrap();
    let id = tasks[0].id;
    // Both read the queued task before either writes: the race is on
    // the write.
    let read_a = a.task(id).await.unwrap().unwrap();
    let read_b = b.task(id).await.unwrap().unwrap();
    let claim = move |store: SqliteTaskStore, mut t: Task, w: u128| async move {
        t.lease(
            Lease {
                worker: NodeId(w),
                manager: NodeId(w),
                deadline_ms: 50,
                scene: None,
            },
            2,
        )
        .unwrap();
        store.update_task(&mut t).await.is_ok()
    };
    let (ra, rb) = tokio::join!(
        tokio::spawn(claim(a.clone(), read_a, 1)),
        tokio::spawn(claim(b.clone(), read_b, 2))
    );
    let wins = ra.unwrap() as u32 + rb.unwrap() as u32;
    assert_eq!(wins, 1, "exactly one of two connections claims the task");
}
