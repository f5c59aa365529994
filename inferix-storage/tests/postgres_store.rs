//! The PostgreSQL task store against the shared suite and a real server.
//!
//! The server comes from `INFERIX_TEST_PG_URL` (`bash scripts/services.sh`
//! starts one and writes the variable to `target/services/env`). Every test
//! works in a schema of its own, so tests run in parallel on one database.
#![cfg(feature = "postgres")]

use std::collections::HashSet;
use std::time::Duration;

use inferix_core::ids::{NodeId, TaskId};
use inferix_core::store::conformance::{sample_job, test_all};
use inferix_core::store::{StatusCount, StoreError, TaskStore};
use inferix_core::task::{Fault, Task, TaskStatus};
use inferix_storage::postgres::schema_version;
use inferix_storage::{Backoff, PostgresError, PostgresOptions, PostgresTaskStore};

mod postgres_support;
use postgres_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn store_passes_the_conformance_suite() {
    let Some(url) = pg_url() else { return };
    let schemas = std::sync::Mutex::new(Vec::new());
    test_all(|| {
        let schema = fresh_schema("conf");
        schemas.lock().unwrap().push(schema.clone());
        let url = url.clone();
        async move { open(&url, &schema).await }
    })
    .await;
    let schemas = schemas.into_inner().unwrap();
    assert_eq!(schemas.len(), 18, "one fresh schema per case");
    drop_schemas(&url, &schemas).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn managers_on_separate_stores_have_one_claim_winner_per_task() {
    let Some(url) = pg_url() else { return };
    let schema = fresh_schema("race");
    let stores = [
        open(&url, &schema).await,
        open(&url, &schema).await,
        open(&url, &schema).await,
        open(&url, &schema).await,
    ];
    let (job, tasks) = sample_job(0, 1, 16);
    stores[0].insert_job(&job, &tasks).await.unwrap();
    // Every manager tries every task, as managers reading the same queue
    // head do; each task must end up with exactly one lease.
    let mut handles = Vec::new();
    for (m, store) in stores.iter().enumerate() {
        let store = store.clone();
        let ids: Vec<TaskId> = tasks.iter().map(|t| t.id).collect();
        handles.push(tokio::spawn(async move {
            let mut won = Vec::new();
            for id in ids {
                let mut t = store.task(id).await.unwrap().unwrap();
                if t.lease(lease(100 + m as u128, m as u128, 1_000), 2)
                    .is_err()
                {
                    continue;
                }
                match store.update_task(&mut t).await {
                    Ok(()) => won.push(id),
                    Err(StoreError::Conflict { .. }) => {}
                    Err(e) => panic!("claim failed: {e}"),
                }
            }
            (m, won)
        }));
    }
    let mut owner = std::collections::HashMap::new();
    for h in handles {
        let (m, won) = h.await.unwrap();
        for id in won {
            assert!(owner.insert(id, m).is_none(), "{id:?} claimed twice");
        }
    }
    assert_eq!(owner.len(), tasks.len(), "every task claimed once");
    for t in stores[1].tasks_of_job(job.id).await.unwrap() {
        assert_eq!(t.status, TaskStatus::Leased);
        assert_eq!(t.version, 1);
        let m = owner[&t.id];
        assert_eq!(
            t.lease.unwrap().manager,
            NodeId(m as u128),
            "stored lease is the winner's"
        );
    }
    // The lease owner and deadline are columns too, for queries by owner.
    let client = raw(&url).await;
    let rows = client
        .query(
            &format!(
                "SELECT lease_manager, lease_deadline_ms, count(*) FROM \"{schema}\".tasks
                 GROUP BY 1, 2 ORDER BY 1"
            ),
            &[],
        )
        .await
        .unwrap();
    let total: i64 = rows.iter().map(|r| r.get::<_, i64>(2)).sum();
    assert_eq!(total, tasks.len() as i64);
    for r in &rows {
        let manager: String = r.get(0);
        assert!(owner
            .values()
            .any(|&m| NodeId(m as u128).to_string() == manager));
        assert_eq!(r.get::<_, i64>(1), 1_000);
    }
    drop_schemas(&url, &[schema]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_store_is_notified_of_the_first_ones_changes() {
    let Some(url) = pg_url() else { return };
    let schema = fresh_schema("notify");
    let other_schema = fresh_schema("notify_other");
    let writer = open(&url, &schema).await;
    let reader = open(&url, &schema).await;
    let other = open(&url, &other_schema).await;
    let mut rx = reader.subscribe().await.unwrap();
    let mut other_rx = other.subscribe().await.unwrap();

    let (job, tasks) = sample_job(0, 1, 6);
    writer.insert_job(&job, &tasks).await.unwrap();
    let mut seen = HashSet::new();
    while seen.len() < tasks.len() {
        seen.insert(next_id(&mut rx).await);
    }
    assert_eq!(seen, tasks.iter().map(|t| t.id).collect::<HashSet<_>>());

    let mut claimed = tasks[2].clone();
    claimed.lease(lease(7, 1, 500), 2).unwrap();
    writer.update_task(&mut claimed).await.unwrap();
    assert_eq!(next_id(&mut rx).await, claimed.id);
    // A second subscription of the same store shares the listener.
    let mut rx2 = reader.subscribe().await.unwrap();
    claimed
        .requeue(3, Fault::Manager, 5, "lease expired")
        .unwrap();
    writer.update_task(&mut claimed).await.unwrap();
    assert_eq!(next_id(&mut rx).await, claimed.id);
    assert_eq!(next_id(&mut rx2).await, claimed.id);

    // The other schema heard none of this: the first id it gets is its own.
    let (other_job, other_tasks) = sample_job(0, 1, 2);
    other.insert_job(&other_job, &other_tasks).await.unwrap();
    assert_eq!(next_id(&mut other_rx).await, other_tasks[0].id);
    drop_schemas(&url, &[schema, other_schema]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_resume_after_the_listening_connection_is_lost() {
    let Some(url) = pg_url() else { return };
    let schema = fresh_schema("relisten");
    let writer = open(&url, &schema).await;
    let reader = open(&url, &schema).await;
    let mut rx = reader.subscribe().await.unwrap();
    let (job, tasks) = sample_job(0, 1, 2);
    writer.insert_job(&job, &tasks).await.unwrap();
    assert_eq!(next_id(&mut rx).await, tasks[0].id);

    // The server drops the listening connection (restart, failover).
    let killed: i64 = raw(&url)
        .await
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE application_name = 'inferix-listen' AND query = $1",
            &[&format!("LISTEN \"inferix_tasks_{schema}\"")],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(killed, 1, "one listening connection for the schema");

    // Changes made before the listener is back are lost by design, so keep
    // changing the task until a change is heard again: each wait is for a
    // notification, and the number of tries is bounded.
    let mut t = writer.task(tasks[0].id).await.unwrap().unwrap();
    let mut resumed = false;
    for attempt in 0..60u128 {
        t.excluded.push(NodeId(attempt));
        writer.update_task(&mut t).await.unwrap();
        match tokio::time::timeout(Duration::from_millis(500), rx.recv()).await {
            Ok(Ok(id)) if id == t.id => {
                resumed = true;
                break;
            }
            Ok(Ok(id)) if id == tasks[1].id => {}
            Ok(other) => panic!("unexpected notification {other:?}"),
            Err(_) => {}
        }
    }
    assert!(resumed, "no notification after the listener reconnected");
    drop_schemas(&url, &[schema]).await;
}

#[tokio::test]
async fn everything_survives_a_reopen_and_retry_opens_a_live_server_at_once() {
    let Some(url) = pg_url() else { return };
    let schema = fresh_schema("reopen");
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
        let store = open(&url, &schema).await;
        store.insert_job(&job, &tasks).await.unwrap();
        leased.lease(lease(7, 1, 100), 12).unwrap();
        store.update_task(&mut leased).await.unwrap();
        store.append_transaction(&tx).await.unwrap();
    }
    let store = PostgresTaskStore::open_with_retry(
        PostgresOptions::new(&url)
            .with_schema(&schema)
            .with_pool_size(2),
        Backoff::default(),
    )
    .await
    .unwrap();
    assert_eq!(store.schema(), schema);
    assert_eq!(store.jobs().await.unwrap(), vec![job.clone()]);
    assert_eq!(store.task(leased.id).await.unwrap(), Some(leased.clone()));
    assert_eq!(
        store.tasks_in_status(TaskStatus::Leased, 10).await.unwrap(),
        vec![leased.clone()]
    );
    assert_eq!(store.transactions().await.unwrap(), vec![tx]);
    drop_schemas(&url, &[schema]).await;
}

#[tokio::test]
async fn a_job_reusing_task_ids_is_refused_whole() {
    let Some(url) = pg_url() else { return };
    let schema = fresh_schema("dup");
    let store = open(&url, &schema).await;
    let (job, tasks) = sample_job(0, 1, 4);
    store.insert_job(&job, &tasks).await.unwrap();
    let err = store.insert_job(&job, &tasks).await.unwrap_err();
    assert!(
        matches!(err, StoreError::AlreadyExists { ref what } if what == &format!("job {}", job.id)),
        "got {err:?}"
    );
    // A new job whose tasks collide with stored ones: neither the job nor
    // any of its tasks is kept.
    let (other, _) = sample_job(0, 2, 4);
    let err = store.insert_job(&other, &tasks).await.unwrap_err();
    assert!(
        matches!(err, StoreError::AlreadyExists { ref what } if what.contains("task")),
        "got {err:?}"
    );
    assert_eq!(store.job(other.id).await.unwrap(), None);
    assert_eq!(store.jobs().await.unwrap(), vec![job]);
    drop_schemas(&url, &[schema]).await;
}

#[tokio::test]
async fn without_a_schema_the_store_uses_the_databases_default_one() {
    let Some(url) = pg_url() else { return };
    // A database of its own, so its `public` schema starts empty.
    let db = fresh_schema("db");
    let admin = raw(&url).await;
    admin
        .batch_execute(&format!("CREATE DATABASE \"{db}\""))
        .await
        .unwrap();
    let (base, _) = url.rsplit_once('/').unwrap();
    let db_url = format!("{base}/{db}");
    {
        let store = PostgresTaskStore::open(PostgresOptions::new(&db_url))
            .await
            .unwrap();
        assert_eq!(store.schema(), "public");
        assert_eq!(
            store.stored_schema_version().await.unwrap(),
            schema_version()
        );
        let mut rx = store.subscribe().await.unwrap();
        let (job, tasks) = sample_job(0, 1, 2);
        store.insert_job(&job, &tasks).await.unwrap();
        assert_eq!(next_id(&mut rx).await, tasks[0].id);
        let tables: i64 = raw(&db_url)
            .await
            .query_one(
                "SELECT count(*) FROM information_schema.tables
                 WHERE table_schema = 'public' AND table_name IN ('jobs', 'tasks', 'transactions')",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(tables, 3);
    }
    admin
        .batch_execute(&format!("DROP DATABASE \"{db}\" WITH (FORCE)"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn skip_locked_claims_give_concurrent_managers_disjoint_tasks() {
    let Some(url) = pg_url() else { return };
    let schema = fresh_schema("skip");
    let setup = open(&url, &schema).await;
    let (low, low_tasks) = sample_job(0, 1, 40);
    let (high, high_tasks) = sample_job(5, 2, 40);
    setup.insert_job(&low, &low_tasks).await.unwrap();
    setup.insert_job(&high, &high_tasks).await.unwrap();

    // The first claim follows queue order and leaves declined tasks queued.
    let first = setup
        .claim_queued(4, |t| {
            t.id.index % 2 == 0 && t.lease(lease(1, 9, 500), 3).is_ok()
        })
        .await
        .unwrap();
    assert_eq!(
        first.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![high_tasks[0].id, high_tasks[2].id]
    );
    for t in &first {
        assert_eq!(setup.task(t.id).await.unwrap().as_ref(), Some(t));
        assert_eq!(t.version, 1);
    }
    assert_eq!(
        setup.task(high_tasks[1].id).await.unwrap().unwrap().status,
        TaskStatus::Queued
    );

    let mut handles = Vec::new();
    for m in 0..4u128 {
        let store = open(&url, &schema).await;
        handles.push(tokio::spawn(async move {
            let mut won = Vec::new();
            loop {
                let got = store
                    .claim_queued(3, |t| t.lease(lease(100 + m, m, 1_000), 4).is_ok())
                    .await
                    .unwrap();
                if got.is_empty() {
                    return won;
                }
                won.extend(got.into_iter().map(|t| t.id));
            }
        }));
    }
    let mut all = HashSet::new();
    for h in handles {
        for id in h.await.unwrap() {
            assert!(all.insert(id), "{id:?} claimed twice");
        }
    }
    assert_eq!(all.len() + first.len(), low_tasks.len() + high_tasks.len());
    assert!(setup
        .tasks_in_status(TaskStatus::Queued, 100)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        setup
            .tasks_in_status(TaskStatus::Leased, 100)
            .await
            .unwrap()
            .len(),
        40
    );
    drop_schemas(&url, &[schema]).await;
}

/// Moves `t` from the queue to accepted through `store`, with a requeue
/// on the way for every third task.
async fn accept(store: &PostgresTaskStore, mut t: Task, worker: u128) -> Task {
    if t.status == TaskStatus::Queued {
        t.lease(lease(worker, 1, 900), 10).unwrap();
        store.update_task(&mut t).await.unwrap();
    }
    if t.id.index % 3 == 0 {
        t.requeue(11, Fault::Manager, 5, "lease expired").unwrap();
        store.update_task(&mut t).await.unwrap();
        t.lease(lease(worker, 1, 900), 12).unwrap();
        store.update_task(&mut t).await.unwrap();
    }
    for status in [
        TaskStatus::Rendered,
        TaskStatus::Verifying,
        TaskStatus::Accepted,
    ] {
        t.transition(status, 13, "checked").unwrap();
        store.update_task(&mut t).await.unwrap();
    }
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn status_counts_follow_every_write_of_a_task() {
    let Some(url) = pg_url() else { return };
    let schema = fresh_schema("counts");
    let a = open(&url, &schema).await;
    let b = open(&url, &schema).await;
    // 101 tasks: 100 of two frames and a last one of one.
    let (job, tasks) = sample_job(0, 1, 201);
    let (other, other_tasks) = sample_job(0, 2, 9);
    a.insert_job(&job, &tasks).await.unwrap();
    b.insert_job(&other, &other_tasks).await.unwrap();
    assert_eq!(
        b.status_counts(job.id).await.unwrap(),
        vec![StatusCount {
            status: TaskStatus::Queued,
            tasks: 101,
            frames: 201
        }]
    );

    // One task through lease, requeue, lease, render, a failed check and
    // acceptance, counted after every step.
    let mut t = tasks[0].clone();
    t.lease(lease(1, 1, 100), 2).unwrap();
    a.update_task(&mut t).await.unwrap();
    assert_eq!(
        StatusCount::frames_in(&a.status_counts(job.id).await.unwrap(), TaskStatus::Leased),
        (2, 201)
    );
    t.requeue(3, Fault::Worker(NodeId(1)), 5, "lease expired")
        .unwrap();
    a.update_task(&mut t).await.unwrap();
    assert_counts_match(&b, job.id, "after requeue").await;
    t.lease(lease(2, 1, 200), 4).unwrap();
    b.update_task(&mut t).await.unwrap();
    assert_counts_match(&a, job.id, "after second lease").await;
    // A write that changes no status (a renewed lease) moves no count,
    // and a stale write is refused without moving one.
    t.lease.as_mut().unwrap().deadline_ms = 300;
    a.update_task(&mut t).await.unwrap();
    let mut stale = t.clone();
    stale.version -= 1;
    stale.transition(TaskStatus::Queued, 5, "stale").unwrap();
    assert!(matches!(
        b.update_task(&mut stale).await,
        Err(StoreError::Conflict { .. })
    ));
    assert_counts_match(&a, job.id, "after renewal and stale write").await;
    for status in [
        TaskStatus::Rendered,
        TaskStatus::Verifying,
        TaskStatus::Rejected,
        TaskStatus::Queued,
    ] {
        t.transition(status, 6, "checked").unwrap();
        a.update_task(&mut t).await.unwrap();
        assert_counts_match(&b, job.id, status.as_str()).await;
    }

    // A batch claim moves several tasks in one statement.
    let claimed = b
        .claim_queued(7, |t| t.lease(lease(3, 2, 500), 7).is_ok())
        .await
        .unwrap();
    assert_eq!(claimed.len(), 7);
    assert_counts_match(&a, job.id, "after a batch claim").await;

    // Two managers accept disjoint halves of the job at the same time.
    let current = a.tasks_of_job(job.id).await.unwrap();
    let (first, second) = current.split_at(50);
    let (first, second) = (first.to_vec(), second.to_vec());
    let run = |store: PostgresTaskStore, tasks: Vec<Task>, worker: u128| async move {
        let mut done = Vec::new();
        for t in tasks {
            done.push(accept(&store, t, worker).await);
        }
        done
    };
    let (done_a, done_b) = tokio::join!(run(a.clone(), first, 10), run(b.clone(), second, 11));
    assert_eq!(done_a.len() + done_b.len(), 101);
    assert_counts_match(&a, job.id, "after concurrent acceptance").await;
    let counts = b.status_counts(job.id).await.unwrap();
    assert!(StatusCount::all_accepted(&counts), "{counts:?}");
    assert_eq!(
        StatusCount::frames_in(&counts, TaskStatus::Accepted),
        (201, 201)
    );
    assert_eq!(
        a.status_counts(other.id).await.unwrap(),
        StatusCount::tally(&other_tasks)
    );

    // Rows written or removed by hand, from a connection whose search path
    // is not the store's schema, are counted in the store's schema.
    let client = raw(&url).await;
    client
        .execute(
            &format!("DELETE FROM \"{schema}\".tasks WHERE job_id = $1 AND idx < 30"),
            &[&job.id.to_string()],
        )
        .await
        .unwrap();
    client
        .execute(
            &format!(
                "UPDATE \"{schema}\".tasks SET status = 'failed', frames = 1
                 WHERE job_id = $1 AND idx >= 90"
            ),
            &[&job.id.to_string()],
        )
        .await
        .unwrap();
    let counts = a.status_counts(job.id).await.unwrap();
    assert_eq!(
        counts,
        vec![
            StatusCount {
                status: TaskStatus::Accepted,
                tasks: 60,
                frames: 120
            },
            StatusCount {
                status: TaskStatus::Failed,
                tasks: 11,
                frames: 11
            },
        ]
    );
    drop_schemas(&url, &[schema]).await;
}

#[tokio::test]
async fn a_missing_database_is_refused_at_once_not_retried() {
    let Some(url) = pg_url() else { return };
    let (base, _) = url.rsplit_once('/').unwrap();
    let missing = format!("{base}/no_such_db_{:08x}", rand::random::<u32>());
    let started = std::time::Instant::now();
    let err = PostgresTaskStore::open_with_retry(
        PostgresOptions::new(&missing),
        Backoff {
            initial: Duration::from_secs(30),
            max: Duration::from_secs(30),
            max_elapsed: Duration::from_secs(60),
        },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, PostgresError::Refused { ref reason, .. } if reason.contains("3D000")),
        "got {err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "a refusal is not worth a retry"
    );
}

#[tokio::test]
async fn a_store_drops_its_own_schema_and_never_the_public_one() {
    let Some(url) = pg_url() else { return };
    let schema = fresh_schema("drop");
    let store = open(&url, &schema).await;
    let exists = |schema: String| {
        let url = url.clone();
        async move {
            raw(&url)
                .await
                .query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&schema])
                .await
                .unwrap()
                .is_some()
        }
    };
    assert!(exists(schema.clone()).await);
    store.drop_schema().await.unwrap();
    assert!(!exists(schema).await, "the schema and its tables are gone");
    let public = PostgresTaskStore::open(PostgresOptions::new(&url))
        .await
        .unwrap();
    assert!(public.drop_schema().await.is_err());
    assert!(exists("public".into()).await);
}
