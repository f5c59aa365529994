//! Disputed rounds end to end: verifiers' checks are deterministic, so
//! when two verifiers disagree one of them lied, and the manager checks
//! the result itself with its own renderer. A verifier that fails every
//! honest result (a griefer) sits beside one honest verifier at quorum
//! two: every round splits, the manager's re-render passes the result,
//! the griefer's losing vote costs it its stake and its connection, and
//! the job completes with every frame accepted — where a majority of two
//! could only wait for a third verifier. Real path tracer, Proof of Render
//! on, no forced errors (the griefer is caught by its votes alone).

use std::time::Duration;

use inferix_core::ids::NodeId;
use inferix_core::ledger::{balance, Account};
use inferix_core::task::TaskStatus;
use inferix_tests::{scripted_verifier, until_completed, PorNetwork};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verifier_that_fails_honest_results_is_outvoted_by_the_managers_own_check() {
    let n = PorNetwork::checked_by_manager(b"arbitration", 2).await;
    n.rendering_verifiers(1);
    let griefer = NodeId(250);
    let griefer_run = {
        let (net, addr) = (n.net.clone(), n.addr.clone());
        tokio::spawn(async move { scripted_verifier(&net, &addr, griefer, false).await })
    };
    n.worker(100, n.tracer.clone());

    let client = n.client().await;
    let spec = PorNetwork::demo_job(&client, 3, 1).await;
    let (job, _) = client.submit(&spec).await.unwrap();
    let mut events = client.watch(job).await.unwrap();
    let run = tokio::time::timeout(Duration::from_secs(300), griefer_run)
        .await
        .expect("the griefer is disconnected after its vote loses")
        .unwrap();
    assert!(run.answered >= 1, "it voted before it was removed");
    until_completed(&mut events, Duration::from_secs(300)).await;

    let tasks = n.store.tasks_of_job(job).await.unwrap();
    assert_eq!(tasks.len(), 3);
    for t in &tasks {
        assert_eq!(t.status, TaskStatus::Accepted, "{t:?}");
        assert_eq!(t.attempts, 1, "no honest result was rejected: {t:?}");
    }
    let txs = n.store.transactions().await.unwrap();
    assert_eq!(
        balance(&txs, &Account::Stake(griefer)),
        0,
        "the outvoted griefer's stake is slashed"
    );
    assert!(balance(&txs, &Account::Verifier(NodeId(200))) > 0);
    assert_eq!(balance(&txs, &Account::Verifier(griefer)), 0);
    // Back with the same key, it is refused: its stake is gone.
    let again = scripted_verifier(&n.net, &n.addr, griefer, false).await;
    assert_eq!(again.answered, 0);
    assert!(again.refusal.expect("refused").contains("stake"));
    n.shut().await;
}
