//! Audits end to end: a new account's worker renders its only job with a
//! sixteenth of the samples, and the only two verifiers connected collude
//! with it, so they hold every seat of its round and pass it. Its worker is
//! on probation, so before the result is paid the manager checks it with
//! its own renderer: the result is rejected and never paid, the account
//! loses its stake and reputation, both colluders are outvoted and lose
//! their stakes, and the task is rendered again by an honest worker.
//! Real path tracer, Proof of Render on, no forced errors (the colluders
//! are caught by the audit alone).

use std::sync::Arc;
use std::time::Duration;

use inferix_core::ids::NodeId;
use inferix_core::ledger::{balance, Account};
use inferix_core::store::accounts::Accounts;
use inferix_core::task::TaskStatus;
use inferix_tests::{
    accepted_until_completed, first_rejection, keyed_worker, seeded_identity, FewerSamples,
    PorNetwork,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_shot_fake_of_a_new_account_passed_by_colluders_is_rejected_by_an_audit() {
    let n = PorNetwork::checked_by_manager(b"audit", 2).await;
    let accounts = Accounts::new(&*n.store);
    let (_, key) = accounts.create("newcomer", false, 1).await.unwrap();
    accounts
        .deposit_stake("newcomer", 1_000_000_000, "stake", 2)
        .await
        .unwrap();
    let colluders = [NodeId(250), NodeId(251)];
    let runs: Vec<_> = colluders.iter().map(|&id| n.colluder(id)).collect();
    let lazy = Arc::new(FewerSamples {
        inner: n.tracer.clone(),
        divisor: 16,
    });
    let lazy_id = seeded_identity(100).node_id();
    let worker =
        keyed_worker(&n.net, 100, &n.addr, lazy, Some(key)).with_blob_store(n.blobs.clone());
    let lazy_run = tokio::spawn(worker.run(n.stopped.clone()));
    let client = n.client().await;

    let spec = PorNetwork::demo_job(&client, 1, 1).await;
    let (job, _) = client.submit(&spec).await.unwrap();
    let mut events = client.watch(job).await.unwrap();
    let reasons = first_rejection(&mut events, lazy_id, Duration::from_secs(300)).await;
    assert!(
        reasons.iter().any(|r| r.contains("re-rendered crop")),
        "the manager's crops catch it: {reasons:?}"
    );
    let txs = n.store.transactions().await.unwrap();
    assert_eq!(
        balance(&txs, &Account::Worker(lazy_id)),
        0,
        "the fake is never paid"
    );
    assert_eq!(
        balance(&txs, &Account::OperatorStake("newcomer".into())),
        0,
        "the account is slashed"
    );
    for c in colluders {
        assert_eq!(balance(&txs, &Account::Stake(c)), 0, "{c:?} is slashed");
    }
    let standing = n.store.standing("newcomer").await.unwrap().expect("kept");
    assert_eq!((standing.accepted_tasks, standing.rejected_tasks), (0, 1));
    assert!(standing.worker_reputation < 1.0);
    let ended = tokio::time::timeout(Duration::from_secs(60), lazy_run).await;
    assert!(ended.is_ok(), "without stake the worker is sent away");

    // Honest verifiers and an honest worker (the farm's own, not on
    // probation) finish the job.
    for r in runs {
        r.abort();
    }
    n.rendering_verifiers(2);
    n.worker(101, n.tracer.clone());
    let by = accepted_until_completed(&mut events, lazy_id, Duration::from_secs(300)).await;
    assert_eq!(by, vec![seeded_identity(101).node_id()]);
    let task = &n.store.tasks_of_job(job).await.unwrap()[0];
    assert_eq!(task.status, TaskStatus::Accepted);
    let honest = seeded_identity(101).node_id();
    assert_eq!(task.result.as_ref().map(|r| r.worker), Some(honest));
    n.shut().await;
}
