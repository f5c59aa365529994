//! The conformance suite every [`TaskStore`] backend runs.
//!
//! A backend is done when `test_all` passes with its builder:
//! ```text
//! inferix_core::store::conformance::test_all(|| async { MyStore::open_temp().await }).await;
//! ```
//! Each case takes a fresh, empty store and panics with a message on the
//! first broken promise.

use std::future::Future;
use std::sync::Arc;

use super::{Change, StatusCount, StoreError, TaskStore};
use crate::account::{new_key, AccountRecord, Quotas};
use crate::ids::{JobId, NodeId, TaskId};
use crate::job::{FrameRange, Job, JobSpec, JobState, SceneRef};
use crate::ledger::{balance, Account, Posting, Transaction};
use crate::renderer::SceneFormat;
use crate::task::{Fault, FrameOutput, Lease, Task, TaskResult, TaskStatus};
use crate::ContentHash;

mod accounts;
pub use accounts::{
    accounts_round_trip_and_are_found_by_key, standing_writes_are_compare_and_set,
    standings_are_kept_apart_from_accounts,
};

/// Runs every case, each on a fresh store from `build`.
pub async fn test_all<S, F, Fut>(build: F)
where
    S: TaskStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    jobs_and_tasks_round_trip(build().await).await;
    pages_of_a_job_cover_its_tasks_in_order(build().await).await;
    duplicate_job_is_refused_and_changes_nothing(build().await).await;
    stale_update_is_a_conflict(build().await).await;
    concurrent_claims_have_one_winner(Arc::new(build().await)).await;
    queue_order_follows_priority_age_and_index(build().await).await;
    paused_jobs_leave_the_queue(build().await).await;
    expired_leases_are_found(build().await).await;
    ledger_refuses_unbalanced_and_duplicate_transactions(build().await).await;
    missing_records_are_none_or_not_found(build().await).await;
    requeued_tasks_return_to_their_place(build().await).await;
    reprioritised_jobs_move_in_the_queue(build().await).await;
    balances_follow_the_ledger(build().await).await;
    status_counts_count_tasks_and_frames(build().await).await;
    batches_apply_all_or_nothing(build().await).await;
    accounts_round_trip_and_are_found_by_key(build().await).await;
    standings_are_kept_apart_from_accounts(build().await).await;
    standing_writes_are_compare_and_set(build().await).await;
}

/// A job of `frames` frames split in tasks of 2, created at `created_ms`.
pub fn sample_job(priority: i32, created_ms: u64, frames: u32) -> (Job, Vec<Task>) {
    let id = JobId::random();
    let mut spec = JobSpec::new(
        SceneRef {
            blob: ContentHash::of(b"scene"),
            format: SceneFormat::Gltf,
            file_name: "scene.glb".into(),
        },
        FrameRange::new(1, frames),
    );
    spec.priority = priority;
    spec.chunk_size = 2;
    spec.tags = vec!["gpu".into()];
    let tasks = spec
        .split(id)
        .unwrap()
        .into_iter()
        .map(|t| Task::new(t.id, t.frames, created_ms))
        .collect();
    (
        Job {
            id,
            spec,
            state: JobState::Active,
            created_ms,
            quoted_price: 1234,
            waiting_reason: None,
            blocklist: Vec::new(),
            history: Vec::new(),
            warnings: Vec::new(),
            lease_copies_removed: false,
            owner: None,
            outputs: Vec::new(),
        },
        tasks,
    )
}

fn lease(worker: u128, deadline_ms: u64) -> Lease {
    Lease {
        worker: NodeId(worker),
        manager: NodeId(1),
        deadline_ms,
        scene: None,
    }
}

/// Every field of jobs and tasks survives a write and a read.
pub async fn jobs_and_tasks_round_trip(store: impl TaskStore) {
    let (mut job, tasks) = sample_job(3, 10, 5);
    store.insert_job(&job, &tasks).await.unwrap();
    assert_eq!(store.job(job.id).await.unwrap().as_ref(), Some(&job));
    assert_eq!(
        store.tasks_of_job(job.id).await.unwrap(),
        tasks,
        "tasks in index order"
    );

    let mut t = tasks[1].clone();
    t.lease(lease(7, 500), 20).unwrap();
    store.update_task(&mut t).await.unwrap();
    assert_eq!(t.version, 1, "update bumps the version");
    let result = TaskResult {
        worker: NodeId(7),
        frames: t
            .frames
            .iter()
            .map(|&f| FrameOutput {
                frame: f,
                pixel_hash: ContentHash::of(&f.to_le_bytes()),
                blob: ContentHash::of(b"blob"),
                width: 64,
                height: 32,
                tile_root: ContentHash::of(b"tiles"),
            })
            .collect(),
        render_ms: 42,
        attempt: 1,
        scene: ContentHash::of(b"prepared scene"),
        device_class: "cubecl-pt/test".into(),
        public_key: vec![7; 32],
        signature: vec![9; 64],
    };
    t.complete(result, 30).unwrap();
    t.excluded.push(NodeId(5));
    store.update_task(&mut t).await.unwrap();
    assert_eq!(
        store.task(t.id).await.unwrap(),
        Some(t.clone()),
        "result, history, exclusions persist"
    );

    job.state = JobState::Paused;
    job.waiting_reason = Some("no worker meets min IB 5".into());
    store.update_job(&job).await.unwrap();
    assert_eq!(store.job(job.id).await.unwrap(), Some(job.clone()));
    assert_eq!(store.jobs().await.unwrap(), vec![job]);
}

/// Pages of a job's tasks list each task once, in index order, and
/// nothing of another job.
pub async fn pages_of_a_job_cover_its_tasks_in_order(store: impl TaskStore) {
    let (job, tasks) = sample_job(0, 10, 9);
    let (other, other_tasks) = sample_job(0, 11, 9);
    store.insert_job(&job, &tasks).await.unwrap();
    store.insert_job(&other, &other_tasks).await.unwrap();
    assert_eq!(tasks.len(), 5);
    let page = |from, limit| store.tasks_of_job_page(job.id, from, limit);
    assert_eq!(page(0, 2).await.unwrap(), tasks[..2]);
    assert_eq!(page(2, 2).await.unwrap(), tasks[2..4]);
    assert_eq!(page(4, 2).await.unwrap(), tasks[4..]);
    assert_eq!(page(5, 2).await.unwrap(), vec![]);
    assert_eq!(page(1, 100).await.unwrap(), tasks[1..]);
    assert_eq!(page(0, 0).await.unwrap(), vec![]);
    assert_eq!(page(u32::MAX, 3).await.unwrap(), vec![]);
    assert_eq!(
        store
            .tasks_of_job_page(JobId::random(), 0, 10)
            .await
            .unwrap(),
        vec![]
    );
}

/// Inserting a job id twice fails and leaves the first copy intact.
pub async fn duplicate_job_is_refused_and_changes_nothing(store: impl TaskStore) {
    let (job, tasks) = sample_job(0, 1, 4);
    store.insert_job(&job, &tasks).await.unwrap();
    let mut other = job.clone();
    other.quoted_price = 1;
    let err = store.insert_job(&other, &tasks[..1]).await.unwrap_err();
    assert!(
        matches!(err, StoreError::AlreadyExists { .. }),
        "got {err:?}"
    );
    assert_eq!(store.job(job.id).await.unwrap().unwrap().quoted_price, 1234);
    assert_eq!(store.tasks_of_job(job.id).await.unwrap().len(), 2);
}

/// An update based on an old version is refused.
pub async fn stale_update_is_a_conflict(store: impl TaskStore) {
    let (job, tasks) = sample_job(0, 1, 2);
    store.insert_job(&job, &tasks).await.unwrap();
    let mut a = tasks[0].clone();
    let mut b = tasks[0].clone();
    a.lease(lease(1, 100), 2).unwrap();
    store.update_task(&mut a).await.unwrap();
    b.lease(lease(2, 100), 2).unwrap();
    let err = store.update_task(&mut b).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "got {err:?}");
    let stored = store.task(a.id).await.unwrap().unwrap();
    assert_eq!(stored.lease.unwrap().worker, NodeId(1), "first writer kept");
}

/// Many concurrent leases of one queued task: exactly one wins.
pub async fn concurrent_claims_have_one_winner<S: TaskStore>(store: Arc<S>) {
    let (job, tasks) = sample_job(0, 1, 2);
    store.insert_job(&job, &tasks).await.unwrap();
    let id = tasks[0].id;
    let mut handles = Vec::new();
    for w in 0..16u128 {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let mut t = store.task(id).await.unwrap().unwrap();
            if t.lease(lease(w, 1000), 5).is_err() {
                return false;
            }
            store.update_task(&mut t).await.is_ok()
        }));
    }
    let mut wins = 0;
    for h in handles {
        wins += h.await.unwrap() as usize;
    }
    assert_eq!(wins, 1, "exactly one concurrent claim succeeds");
    let t = store.task(id).await.unwrap().unwrap();
    assert_eq!(t.status, TaskStatus::Leased);
    assert_eq!(t.attempts, 1);
}

/// Queued tasks come out by priority, then age, then index.
pub async fn queue_order_follows_priority_age_and_index(store: impl TaskStore) {
    let (low, low_tasks) = sample_job(0, 1, 4);
    let (high, high_tasks) = sample_job(5, 2, 4);
    let (late, late_tasks) = sample_job(5, 3, 2);
    store.insert_job(&low, &low_tasks).await.unwrap();
    store.insert_job(&late, &late_tasks).await.unwrap();
    store.insert_job(&high, &high_tasks).await.unwrap();
    let q: Vec<TaskId> = store
        .tasks_in_status(TaskStatus::Queued, 100)
        .await
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect();
    let expected = vec![
        high_tasks[0].id,
        high_tasks[1].id,
        late_tasks[0].id,
        low_tasks[0].id,
        low_tasks[1].id,
    ];
    assert_eq!(q, expected);
    // A limited read is the head of the same order, wherever the limit
    // cuts (within a job or between jobs).
    for limit in 1..=expected.len() {
        let head: Vec<TaskId> = store
            .tasks_in_status(TaskStatus::Queued, limit)
            .await
            .unwrap()
            .iter()
            .map(|t| t.id)
            .collect();
        assert_eq!(head, expected[..limit], "limit {limit}");
    }
    let mut t = high_tasks[0].clone();
    t.lease(lease(1, 50), 4).unwrap();
    store.update_task(&mut t).await.unwrap();
    let leased = store.tasks_in_status(TaskStatus::Leased, 10).await.unwrap();
    assert_eq!(leased.iter().map(|t| t.id).collect::<Vec<_>>(), vec![t.id]);
    assert_eq!(
        store
            .tasks_in_status(TaskStatus::Queued, 100)
            .await
            .unwrap()
            .len(),
        4
    );
}

/// Queued tasks of paused or cancelled jobs are not offered.
pub async fn paused_jobs_leave_the_queue(store: impl TaskStore) {
    let (mut job, tasks) = sample_job(0, 1, 4);
    store.insert_job(&job, &tasks).await.unwrap();
    job.state = JobState::Paused;
    store.update_job(&job).await.unwrap();
    assert!(store
        .tasks_in_status(TaskStatus::Queued, 10)
        .await
        .unwrap()
        .is_empty());
    job.state = JobState::Active;
    store.update_job(&job).await.unwrap();
    assert_eq!(
        store
            .tasks_in_status(TaskStatus::Queued, 10)
            .await
            .unwrap()
            .len(),
        2
    );
}

/// A task that goes back to the queue takes its old place, not the end.
pub async fn requeued_tasks_return_to_their_place(store: impl TaskStore) {
    let (job, tasks) = sample_job(0, 1, 6);
    store.insert_job(&job, &tasks).await.unwrap();
    let mut t = tasks[0].clone();
    t.lease(lease(1, 50), 2).unwrap();
    store.update_task(&mut t).await.unwrap();
    let head = store.tasks_in_status(TaskStatus::Queued, 1).await.unwrap();
    assert_eq!(head[0].id, tasks[1].id, "a leased task leaves the queue");
    t.requeue(3, Fault::Attempt(NodeId(1)), 5, "renderer failed")
        .unwrap();
    store.update_task(&mut t).await.unwrap();
    let back = store.task(t.id).await.unwrap().unwrap();
    assert_eq!(
        (back.failures, back.excluded.clone()),
        (1, vec![NodeId(1)]),
        "the charged failure and the exclusion are stored"
    );
    let q: Vec<TaskId> = store
        .tasks_in_status(TaskStatus::Queued, 10)
        .await
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(q, tasks.iter().map(|t| t.id).collect::<Vec<_>>());
    assert!(store
        .tasks_in_status(TaskStatus::Leased, 10)
        .await
        .unwrap()
        .is_empty());
}

/// Raising a job's priority moves its queued tasks ahead of older jobs.
pub async fn reprioritised_jobs_move_in_the_queue(store: impl TaskStore) {
    let (old, old_tasks) = sample_job(0, 1, 2);
    let (mut young, young_tasks) = sample_job(0, 2, 2);
    store.insert_job(&old, &old_tasks).await.unwrap();
    store.insert_job(&young, &young_tasks).await.unwrap();
    let head = store.tasks_in_status(TaskStatus::Queued, 1).await.unwrap();
    assert_eq!(head[0].id, old_tasks[0].id);
    young.spec.priority = 9;
    store.update_job(&young).await.unwrap();
    let head = store.tasks_in_status(TaskStatus::Queued, 1).await.unwrap();
    assert_eq!(head[0].id, young_tasks[0].id, "higher priority first");
}

/// `balance` equals the sum of the account's postings, across many
/// transactions, and is zero for an account never posted to.
pub async fn balances_follow_the_ledger(store: impl TaskStore) {
    let user = Account::User("alice".into());
    let job = Account::Job(JobId(4));
    let worker = Account::Worker(NodeId(8));
    assert_eq!(store.balance(&worker).await.unwrap(), 0);
    let txs = [
        Transaction::transfer("fund", 1, "escrow", user.clone(), job.clone(), 1_000),
        Transaction::transfer("pay-a", 2, "frame", job.clone(), worker.clone(), 300),
        Transaction::transfer("pay-b", 3, "frame", job.clone(), worker.clone(), 250),
        Transaction {
            id: "split".into(),
            at_ms: 4,
            memo: "three ways".into(),
            postings: vec![
                Posting {
                    account: job.clone(),
                    amount: -100,
                },
                Posting {
                    account: worker.clone(),
                    amount: 60,
                },
                Posting {
                    account: Account::PenaltyPool,
                    amount: 40,
                },
            ],
        },
    ];
    for tx in &txs {
        store.append_transaction(tx).await.unwrap();
    }
    // A refused duplicate changes no balance.
    assert!(store.append_transaction(&txs[1]).await.is_err());
    let all = store.transactions().await.unwrap();
    for account in [&user, &job, &worker, &Account::PenaltyPool] {
        assert_eq!(
            store.balance(account).await.unwrap(),
            balance(&all, account),
            "balance of {account:?}"
        );
    }
    assert_eq!(store.balance(&worker).await.unwrap(), 610);
    assert_eq!(
        store.transaction("pay-b").await.unwrap().as_ref(),
        Some(&txs[2]),
        "one transaction by id"
    );
    assert!(store.transaction("pay-c").await.unwrap().is_none());
    assert_eq!(store.balance(&Account::Stake(NodeId(8))).await.unwrap(), 0);
}

/// Per-status counts of a job's tasks and frames, other jobs left out.
pub async fn status_counts_count_tasks_and_frames(store: impl TaskStore) {
    let (job, tasks) = sample_job(0, 1, 5);
    let (other, other_tasks) = sample_job(0, 1, 8);
    store.insert_job(&job, &tasks).await.unwrap();
    store.insert_job(&other, &other_tasks).await.unwrap();
    let mut t = tasks[2].clone();
    t.lease(lease(1, 50), 2).unwrap();
    store.update_task(&mut t).await.unwrap();
    let counts = store.status_counts(job.id).await.unwrap();
    assert_eq!(
        counts,
        vec![
            StatusCount {
                status: TaskStatus::Queued,
                tasks: 2,
                frames: 4
            },
            StatusCount {
                status: TaskStatus::Leased,
                tasks: 1,
                frames: 1
            },
        ]
    );
    assert!(!StatusCount::all_accepted(&counts));
    assert_eq!(StatusCount::frames_in(&counts, TaskStatus::Leased), (1, 5));
    assert!(store.status_counts(JobId(77)).await.unwrap().is_empty());
}

/// Leases at or past their deadline are reported, others not.
pub async fn expired_leases_are_found(store: impl TaskStore) {
    let (job, tasks) = sample_job(0, 1, 6);
    store.insert_job(&job, &tasks).await.unwrap();
    for (i, deadline) in [(0, 100u64), (1, 200)] {
        let mut t = tasks[i].clone();
        t.lease(lease(1, deadline), 1).unwrap();
        store.update_task(&mut t).await.unwrap();
    }
    assert!(store.expired_leases(99, 10).await.unwrap().is_empty());
    let e: Vec<TaskId> = store
        .expired_leases(150, 10)
        .await
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(e, vec![tasks[0].id]);
    assert_eq!(store.expired_leases(1000, 10).await.unwrap().len(), 2);
}

/// The ledger keeps only balanced, unique transactions.
pub async fn ledger_refuses_unbalanced_and_duplicate_transactions(store: impl TaskStore) {
    let w = Account::Worker(NodeId(3));
    let j = Account::Job(JobId(9));
    let tx = Transaction::transfer("pay-1", 5, "frame 1 accepted", j.clone(), w.clone(), 700);
    store.append_transaction(&tx).await.unwrap();
    let dup = store.append_transaction(&tx).await.unwrap_err();
    assert!(
        matches!(dup, StoreError::AlreadyExists { .. }),
        "got {dup:?}"
    );
    let bad = Transaction {
        id: "bad".into(),
        at_ms: 6,
        memo: "unbalanced".into(),
        postings: vec![Posting {
            account: w.clone(),
            amount: 1,
        }],
    };
    assert!(matches!(
        store.append_transaction(&bad).await,
        Err(StoreError::Unbalanced(_))
    ));
    let all = store.transactions().await.unwrap();
    assert_eq!(all, vec![tx]);
    assert_eq!(balance(&all, &w), 700);
    assert_eq!(balance(&all, &j), -700);
}

/// A batch of task writes and transactions lands whole or not at all: a
/// stale task, a duplicate or unbalanced transaction, or an unknown task
/// anywhere in it leaves every record as it was.
pub async fn batches_apply_all_or_nothing(store: impl TaskStore) {
    let (job, tasks) = sample_job(0, 1, 4);
    store.insert_job(&job, &tasks).await.unwrap();
    let w = Account::Worker(NodeId(3));
    let j = Account::Job(job.id);
    let pay =
        |id: &str, amount| Transaction::transfer(id, 5, "accepted", j.clone(), w.clone(), amount);

    // A task write and its payment, together.
    let mut a = tasks[0].clone();
    a.lease(
        Lease {
            worker: NodeId(3),
            manager: NodeId(1),
            deadline_ms: 100,
            scene: None,
        },
        2,
    )
    .unwrap();
    let mut batch = vec![
        Change::Task(Box::new(a.clone())),
        Change::Transaction(pay("pay-a", 300)),
    ];
    store.apply(&mut batch).await.unwrap();
    let Change::Task(written) = &batch[0] else {
        unreachable!()
    };
    assert_eq!(
        written.version,
        tasks[0].version + 1,
        "the version moves on"
    );
    let stored = store.task(a.id).await.unwrap().unwrap();
    assert_eq!(stored.status, TaskStatus::Leased);
    assert_eq!(stored.version, written.version);
    assert_eq!(store.balance(&w).await.unwrap(), 300);
    assert_eq!(
        store
            .tasks_in_status(TaskStatus::Leased, 10)
            .await
            .unwrap()
            .len(),
        1,
        "indexes follow batch writes"
    );

    // Several tasks and payments in one batch (a manager's group commit):
    // every task moves on one version, and counts and balances follow.
    let (job2, tasks2) = sample_job(0, 2, 4);
    store.insert_job(&job2, &tasks2).await.unwrap();
    let mut several = Vec::new();
    for (t, id, amount) in [(&tasks2[0], "pay-c0", 10), (&tasks2[1], "pay-c1", 20)] {
        let mut t = t.clone();
        t.transition(TaskStatus::Cancelled, 4, "x").unwrap();
        several.push(Change::Task(Box::new(t)));
        several.push(Change::Transaction(pay(id, amount)));
    }
    store.apply(&mut several).await.unwrap();
    for (change, original) in several.iter().step_by(2).zip(&tasks2) {
        let Change::Task(written) = change else {
            unreachable!()
        };
        assert_eq!(written.version, original.version + 1);
        let stored = store.task(original.id).await.unwrap().unwrap();
        assert_eq!(stored.status, TaskStatus::Cancelled);
        assert_eq!(stored.version, written.version);
    }
    let counts = store.status_counts(job2.id).await.unwrap();
    assert_eq!(
        StatusCount::frames_in(&counts, TaskStatus::Cancelled).0,
        4,
        "counts follow a batch of several tasks"
    );
    assert_eq!(store.balance(&w).await.unwrap(), 330);

    // Each failure leaves everything as it was.
    let before_tasks = store.tasks_of_job(job.id).await.unwrap();
    let before_txs = store.transactions().await.unwrap();
    let mut b = tasks[1].clone();
    b.transition(TaskStatus::Cancelled, 3, "x").unwrap();
    let stale = a.clone(); // the version before the batch above
    let unbalanced = Transaction {
        id: "odd".into(),
        at_ms: 6,
        memo: "unbalanced".into(),
        postings: vec![Posting {
            account: w.clone(),
            amount: 1,
        }],
    };
    let mut unknown = tasks[1].clone();
    unknown.id = TaskId::new(JobId(404), 0);
    type Expected = fn(&StoreError) -> bool;
    let failing: Vec<(Vec<Change>, Expected)> = vec![
        (
            vec![
                Change::Task(Box::new(b.clone())),
                Change::Transaction(pay("pay-b", 1)),
                Change::Task(Box::new(stale)),
            ],
            |e| matches!(e, StoreError::Conflict { .. }),
        ),
        (
            vec![
                Change::Task(Box::new(b.clone())),
                Change::Transaction(pay("pay-a", 1)),
            ],
            |e| matches!(e, StoreError::AlreadyExists { .. }),
        ),
        (
            vec![
                Change::Transaction(pay("pay-c", 1)),
                Change::Transaction(pay("pay-c", 1)),
            ],
            |e| matches!(e, StoreError::AlreadyExists { .. }),
        ),
        (
            vec![
                Change::Task(Box::new(b.clone())),
                Change::Transaction(unbalanced),
            ],
            |e| matches!(e, StoreError::Unbalanced(_)),
        ),
        (
            vec![
                Change::Task(Box::new(b.clone())),
                Change::Task(Box::new(unknown)),
            ],
            |e| matches!(e, StoreError::NotFound { .. }),
        ),
        (
            // The same task twice from one read: the second write is stale.
            vec![
                Change::Task(Box::new(b.clone())),
                Change::Task(Box::new(b.clone())),
            ],
            |e| matches!(e, StoreError::Conflict { .. }),
        ),
    ];
    for (mut batch, expected) in failing {
        let e = store.apply(&mut batch).await.unwrap_err();
        assert!(expected(&e), "unexpected error {e:?} for {batch:?}");
        assert_eq!(store.tasks_of_job(job.id).await.unwrap(), before_tasks);
        assert_eq!(store.transactions().await.unwrap(), before_txs);
        assert_eq!(store.balance(&w).await.unwrap(), 330);
        assert!(store.transaction("pay-b").await.unwrap().is_none());
    }
    // An empty batch is fine.
    store.apply(&mut []).await.unwrap();
}

/// Unknown ids read as `None`; updates of unknown records fail.
pub async fn missing_records_are_none_or_not_found(store: impl TaskStore) {
    assert!(store.job(JobId(1)).await.unwrap().is_none());
    assert!(store
        .task(TaskId::new(JobId(1), 0))
        .await
        .unwrap()
        .is_none());
    assert!(store.tasks_of_job(JobId(1)).await.unwrap().is_empty());
    let (job, tasks) = sample_job(0, 1, 2);
    assert!(matches!(
        store.update_job(&job).await,
        Err(StoreError::NotFound { .. })
    ));
    let mut t = tasks[0].clone();
    assert!(matches!(
        store.update_task(&mut t).await,
        Err(StoreError::NotFound { .. })
    ));
}

/// Accounts whose JSON text is easy to get wrong: escapes, non-ASCII and
/// control characters. A backend that keys balances by account text must
/// key them the same whether the key comes from a migration or a write.
pub fn tricky_accounts() -> Vec<Account> {
    vec![
        Account::User("alice".into()),
        Account::User("q\"uote\\back/slash\ttab\u{1}ctl\u{7f}".into()),
        Account::User("ünïcødé ✓ 🦀".into()),
        Account::PenaltyPool,
        Account::Worker(NodeId(8)),
    ]
}

/// A ledger for migration tests: a transfer between each neighbouring pair
/// of `accounts`, and one transaction posting twice to one account.
pub fn sample_ledger(accounts: &[Account]) -> Vec<Transaction> {
    let mut txs: Vec<Transaction> = accounts
        .windows(2)
        .enumerate()
        .map(|(i, w)| {
            Transaction::transfer(
                format!("t{i}"),
                i as u64,
                "old",
                w[0].clone(),
                w[1].clone(),
                100 + i as i64,
            )
        })
        .collect();
    if let [first, second, ..] = accounts {
        txs.push(Transaction {
            id: "twice".into(),
            at_ms: 9,
            memo: "split".into(),
            postings: vec![
                Posting {
                    account: first.clone(),
                    amount: -30,
                },
                Posting {
                    account: second.clone(),
                    amount: 10,
                },
                Posting {
                    account: second.clone(),
                    amount: 20,
                },
            ],
        });
    }
    txs
}

/// For migration tests, after a migration that derived balances from
/// `ledger`: every account's balance equals the sum of its postings, and a
/// new posting lands on the derived balance rather than beside it.
pub async fn derived_balances_hold<S: TaskStore + ?Sized>(
    store: &S,
    accounts: &[Account],
    ledger: &[Transaction],
) {
    for account in accounts {
        let expected = balance(ledger, account);
        assert_ne!(expected, 0, "{account:?} is posted to");
        assert_eq!(
            store.balance(account).await.unwrap(),
            expected,
            "{account:?}"
        );
    }
    let more = Transaction::transfer(
        "new",
        20,
        "new",
        accounts[2].clone(),
        accounts[1].clone(),
        5,
    );
    store.append_transaction(&more).await.unwrap();
    let all = store.transactions().await.unwrap();
    for account in accounts {
        assert_eq!(
            store.balance(account).await.unwrap(),
            balance(&all, account),
            "{account:?}"
        );
    }
}
