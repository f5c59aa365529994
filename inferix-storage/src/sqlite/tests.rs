//! The SQLite store's own tests, beside the shared conformance suite.
use super::*;

fn version(conn: &Connection) -> i64 {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

fn index_names(conn: &Connection) -> Vec<String> {
    let mut s = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name",
        )
        .unwrap();
    s.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// A plain connection to a database the store created in `dir`, every
/// migration applied.
fn migrated_database(dir: &std::path::Path) -> Connection {
    let path = dir.join("store.db");
    drop(SqliteTaskStore::open(&path).unwrap());
    Connection::open(&path).unwrap()
}

#[test]
fn a_fresh_database_gets_every_migration() {
    let dir = tempfile::tempdir().unwrap();
    let conn = migrated_database(dir.path());
    assert_eq!(version(&conn), MIGRATIONS.len() as i64);
    assert_eq!(
        index_names(&conn),
        [
            "jobs_active_queue",
            "jobs_queue_order",
            "tasks_lease_deadline",
            "tasks_status"
        ]
    );
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for t in ["balances", "jobs", "tasks", "transactions"] {
        assert!(tables.iter().any(|n| n == t), "{t} in {tables:?}");
    }
    let frames: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM pragma_table_info('tasks') WHERE name = 'frames'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(frames, 1);
}

#[tokio::test]
async fn the_log_is_checkpointed_beside_the_writer_not_by_its_commits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wal.db");
    let store = SqliteTaskStore::open(&path).unwrap();
    let file_size = || std::fs::metadata(&path).unwrap().len();
    let before = file_size();
    // About 400 pages of tasks: well under the commits' own limit, so only
    // a checkpoint from another connection copies them into the file.
    let (job, tasks) = inferix_core::store::conformance::sample_job(0, 1, 1_500);
    store.insert_job(&job, &tasks).await.unwrap();
    let (done, ran) = std::sync::mpsc::channel();
    let _other = checkpoint::Checkpointer::spawn(&path, Some(done)).unwrap();
    ran.recv_timeout(std::time::Duration::from_secs(30))
        .expect("a checkpoint ran");
    assert!(
        file_size() > before + 256 * 1024,
        "{before} -> {}",
        file_size()
    );
    // The writer carries on, and reads what it wrote.
    assert_eq!(store.tasks_of_job(job.id).await.unwrap().len(), tasks.len());
    let mut t = store.tasks_of_job(job.id).await.unwrap().remove(0);
    t.lease(
        inferix_core::task::Lease {
            worker: inferix_core::ids::NodeId(1),
            manager: inferix_core::ids::NodeId(2),
            deadline_ms: 100,
            scene: None,
        },
        5,
    )
    .unwrap();
    store.update_task(&mut t).await.unwrap();
}

#[test]
fn the_queue_head_is_read_without_sorting_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let conn = migrated_database(dir.path());
    let plan: Vec<String> = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {QUEUE_HEAD}"))
        .unwrap()
        .query_map(params!["queued", 16], |r| r.get(3))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    // A temporary B-tree would sort every queued task on every read.
    assert!(!plan.iter().any(|l| l.contains("TEMP B-TREE")), "{plan:?}");
    assert!(plan[0].contains("jobs_active_queue"), "{plan:?}");
}

#[tokio::test]
async fn an_old_database_is_migrated_forward_keeping_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let (job, tasks) = inferix_core::store::conformance::sample_job(2, 7, 5);
    let mut leased = tasks[1].clone();
    leased
        .lease(
            inferix_core::task::Lease {
                worker: inferix_core::ids::NodeId(7),
                manager: inferix_core::ids::NodeId(1),
                deadline_ms: 900,
                scene: None,
            },
            8,
        )
        .unwrap();
    leased.version = 1;
    let stored = vec![tasks[0].clone(), leased.clone(), tasks[2].clone()];
    let accounts = inferix_core::store::conformance::tricky_accounts();
    let ledger = inferix_core::store::conformance::sample_ledger(&accounts);
    {
        // A database as the first release left it: migration 1 only,
        // with rows in that release's layout.
        let old = SqliteTaskStore::init(Connection::open(&path).unwrap(), 1).unwrap();
        let conn = old.conn.lock().unwrap();
        assert_eq!(version(&conn), 1);
        assert!(index_names(&conn).is_empty());
        conn.execute(
            "INSERT INTO jobs (id, priority, created_ms, state, record)
             VALUES (?1, ?2, ?3, 'active', ?4)",
            params![
                job.id.to_string(),
                job.spec.priority,
                int(job.created_ms),
                to_json(&job).unwrap()
            ],
        )
        .unwrap();
        for t in &stored {
            conn.execute(
                "INSERT INTO tasks (job_id, idx, status, lease_deadline_ms, version, record)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    t.id.job.to_string(),
                    t.id.index,
                    t.status.as_str(),
                    lease_deadline(t),
                    int(t.version),
                    to_json(t).unwrap()
                ],
            )
            .unwrap();
        }
        for tx in &ledger {
            conn.execute(
                "INSERT INTO transactions (id, record) VALUES (?1, ?2)",
                params![tx.id, to_json(tx).unwrap()],
            )
            .unwrap();
        }
    }
    let store = SqliteTaskStore::open(&path).unwrap();
    {
        let conn = store.conn.lock().unwrap();
        assert_eq!(version(&conn), MIGRATIONS.len() as i64);
        assert_eq!(index_names(&conn).len(), 4);
    }
    assert_eq!(store.job(job.id).await.unwrap(), Some(job.clone()));
    assert_eq!(store.tasks_of_job(job.id).await.unwrap(), stored);
    assert_eq!(
        store.tasks_in_status(TaskStatus::Queued, 10).await.unwrap(),
        vec![tasks[0].clone(), tasks[2].clone()]
    );

    // Migration 3 counted the old tasks' frames and summed the old
    // ledger per account, under the keys the store itself uses.
    assert_eq!(
        store.status_counts(job.id).await.unwrap(),
        StatusCount::tally(&stored)
    );
    assert_eq!(
        StatusCount::frames_in(
            &store.status_counts(job.id).await.unwrap(),
            TaskStatus::Leased
        ),
        (2, 5)
    );
    assert_eq!(store.transactions().await.unwrap(), ledger);
    inferix_core::store::conformance::derived_balances_hold(&store, &accounts, &ledger).await;
    let rows: i64 = store
        .conn
        .lock()
        .unwrap()
        .query_row("SELECT COUNT(*) FROM balances", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, accounts.len() as i64);

    // Reopening an up-to-date database is a no-op.
    drop(store);
    let again = SqliteTaskStore::open(&path).unwrap();
    let all = again.transactions().await.unwrap();
    assert_eq!(
        version(&again.conn.lock().unwrap()),
        MIGRATIONS.len() as i64
    );
    assert_eq!(
        again.balance(&accounts[1]).await.unwrap(),
        inferix_core::ledger::balance(&all, &accounts[1])
    );
}

#[tokio::test]
async fn balances_and_counts_are_indexed_lookups() {
    let store = SqliteTaskStore::open_in_memory().unwrap();
    let conn = store.conn.lock().unwrap();
    let plan = |sql: &str| -> String {
        let mut s = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        s.query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .map(Result::unwrap)
            .collect::<Vec<_>>()
            .join("; ")
    };
    let balance = plan("SELECT amount FROM balances WHERE account = 'x'");
    assert!(
        balance.contains("SEARCH balances USING PRIMARY KEY"),
        "{balance}"
    );
    let counts = plan("SELECT status, tasks, frames FROM job_counts WHERE job_id = 'x'");
    assert!(
        counts.contains("SEARCH job_counts USING PRIMARY KEY (job_id=?)"),
        "{counts}"
    );
}

/// The trigger-kept counts equal a recount after every kind of write:
/// leases, requeues, results, a second handle on the same file, and a
/// compare-and-set that lost (which must change nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_counts_equal_a_recount_after_every_kind_of_write() {
    use inferix_core::ids::NodeId;
    use inferix_core::store::StatusCount;
    use inferix_core::task::{Fault, Lease};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("counts.db");
    let a = SqliteTaskStore::open(&path).unwrap();
    let b = SqliteTaskStore::open(&path).unwrap();
    let (job, tasks) = inferix_core::store::conformance::sample_job(0, 1, 41);
    a.insert_job(&job, &tasks).await.unwrap();
    let lease = |w: u128| Lease {
        worker: NodeId(w),
        manager: NodeId(1),
        deadline_ms: 1_000,
        scene: None,
    };
    let recount = |store: SqliteTaskStore| async move {
        let all = store.tasks_of_job(job.id).await.unwrap();
        (
            StatusCount::tally(&all),
            store.status_counts(job.id).await.unwrap(),
        )
    };
    let work = |store: SqliteTaskStore, ids: Vec<usize>, w: u128| {
        let tasks = tasks.clone();
        async move {
            for i in ids {
                let mut t = tasks[i].clone();
                t.lease(lease(w), 2).unwrap();
                store.update_task(&mut t).await.unwrap();
                if i % 3 == 0 {
                    t.requeue(3, Fault::Manager, 5, "handed back").unwrap();
                    store.update_task(&mut t).await.unwrap();
                }
            }
        }
    };
    let evens: Vec<usize> = (0..tasks.len()).filter(|i| i % 2 == 0).collect();
    let odds: Vec<usize> = (0..tasks.len()).filter(|i| i % 2 == 1).collect();
    tokio::join!(work(a.clone(), evens, 7), work(b.clone(), odds, 8));
    // A stale write loses and must not move a count.
    let mut stale = tasks[1].clone();
    stale.lease(lease(9), 4).unwrap();
    assert!(a.update_task(&mut stale).await.is_err());
    for store in [a, b] {
        let (expected, kept) = recount(store).await;
        assert_eq!(kept, expected);
        assert_eq!(kept.iter().map(|c| c.tasks).sum::<usize>(), tasks.len());
    }
}

#[tokio::test]
async fn a_refused_duplicate_transaction_moves_no_balance() {
    let store = SqliteTaskStore::open_in_memory().unwrap();
    let accounts = inferix_core::store::conformance::tricky_accounts();
    let tx = Transaction::transfer("t", 1, "m", accounts[0].clone(), accounts[1].clone(), 7);
    store.append_transaction(&tx).await.unwrap();
    let mut again = tx.clone();
    again.postings.reverse();
    assert!(matches!(
        store.append_transaction(&again).await,
        Err(StoreError::AlreadyExists { .. })
    ));
    assert_eq!(store.balance(&accounts[0]).await.unwrap(), -7);
    assert_eq!(store.balance(&accounts[1]).await.unwrap(), 7);
}

#[tokio::test]
async fn an_unknown_status_in_a_row_is_corrupt() {
    let store = SqliteTaskStore::open_in_memory().unwrap();
    let (job, tasks) = inferix_core::store::conformance::sample_job(0, 1, 2);
    store.insert_job(&job, &tasks).await.unwrap();
    store
        .conn
        .lock()
        .unwrap()
        .execute_batch("UPDATE tasks SET status = 'lost'")
        .unwrap();
    assert!(matches!(
        store.status_counts(job.id).await,
        Err(StoreError::Corrupt { .. })
    ));
}

#[test]
fn a_database_from_a_newer_build_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.db");
    let conn = Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", MIGRATIONS.len() as i64 + 1)
        .unwrap();
    drop(conn);
    let err = SqliteTaskStore::open(&path).unwrap_err();
    assert!(
        matches!(err, StoreError::Backend(ref m) if m.contains("newer")),
        "got {err:?}"
    );
}

#[tokio::test]
async fn undecodable_records_are_corrupt_not_panics() {
    let store = SqliteTaskStore::open_in_memory().unwrap();
    let (job, tasks) = inferix_core::store::conformance::sample_job(0, 1, 2);
    store.insert_job(&job, &tasks).await.unwrap();
    store
        .conn
        .lock()
        .unwrap()
        .execute_batch("UPDATE tasks SET record = '{not json'; UPDATE jobs SET record = '[]'")
        .unwrap();
    assert!(matches!(
        store.task(tasks[0].id).await,
        Err(StoreError::Corrupt { .. })
    ));
    assert!(matches!(
        store.tasks_of_job(job.id).await,
        Err(StoreError::Corrupt { .. })
    ));
    assert!(matches!(
        store.job(job.id).await,
        Err(StoreError::Corrupt { .. })
    ));
    assert!(matches!(
        store.jobs().await,
        Err(StoreError::Corrupt { .. })
    ));
}
