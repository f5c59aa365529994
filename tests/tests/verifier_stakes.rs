//! Verifiers stake too, and a vote that loses costs the stake. Beside two
//! honest verifiers, a griefing verifier fails every result it is seated
//! on. Each such round splits 1–1, asks a third verifier, and settles 2–1
//! for the honest worker; the griefer's whole stake goes to the penalty
//! pool, it is disconnected, and with the same key it is refused when it
//! comes back.

use std::sync::Arc;
use std::time::Duration;

use inferix_core::blob::BlobStore;
use inferix_core::ids::NodeId;
use inferix_core::ledger::{balance, Account};
use inferix_core::store::{MemoryTaskStore, TaskStore};
use inferix_node::{Client, ManagerConfig};
use inferix_storage::ObjectBlobStore;
use inferix_tests::{
    scripted_verifier, spawn_honest_workers, spawn_verifiers, start_manager, submit_stand_in_job,
    until_completed,
};
use inferix_transport::InProcNetwork;
use tokio::sync::watch;

#[tokio::test(start_paused = true)]
async fn a_verifier_whose_vote_loses_after_escalation_loses_its_stake() {
    let net = InProcNetwork::new();
    let store: Arc<dyn TaskStore> = Arc::new(MemoryTaskStore::new());
    let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::in_memory());
    let manager = start_manager(
        &net,
        store.clone(),
        blobs,
        ManagerConfig {
            quorum: 2,
            ..ManagerConfig::default()
        },
    )
    .await;
    let addr = manager.addr().to_string();
    let (stop, stopped) = watch::channel(false);
    let dir = tempfile::tempdir().unwrap();
    let griefer = NodeId(250);
    let griefing = {
        let (net, addr) = (net.clone(), addr.clone());
        tokio::spawn(async move { scripted_verifier(&net, &addr, griefer, false).await })
    };
    let honest = spawn_verifiers(&net, &addr, 2, None, None, dir.path(), &stopped);
    let workers = spawn_honest_workers(
        &net,
        &addr,
        2,
        Duration::from_millis(200),
        dir.path(),
        &stopped,
    );
    let client = Client::connect(&net.transport(NodeId(300)), &addr, None)
        .await
        .unwrap();
    let job = submit_stand_in_job(&client, 12, 8, 1).await;
    let mut events = client.watch(job).await.unwrap();
    until_completed(&mut events, Duration::from_secs(3_600)).await;

    let txs = store.transactions().await.unwrap();
    let slashes: Vec<_> = txs
        .iter()
        .filter(|t| t.id.starts_with(&format!("verifier-slash:{griefer}:")))
        .collect();
    assert!(
        !slashes.is_empty(),
        "the griefer's lost votes cost its stake"
    );
    assert!(
        slashes[0].memo.contains("its vote lost"),
        "{}",
        slashes[0].memo
    );
    assert_eq!(balance(&txs, &Account::Stake(griefer)), 0);
    for v in [NodeId(200), NodeId(201)] {
        assert!(
            balance(&txs, &Account::Stake(v)) > 0,
            "honest verifier {v} keeps its stake"
        );
        assert!(!txs
            .iter()
            .any(|t| t.id.starts_with(&format!("verifier-slash:{v}:"))));
    }
    // Nothing it failed was rejected: every task was accepted.
    for t in store.tasks_of_job(job).await.unwrap() {
        assert_eq!(t.failures, 0, "{:?}", t.history);
    }

    // It was disconnected when slashed, and back with the same key it is
    // refused.
    let first = tokio::time::timeout(Duration::from_secs(60), griefing)
        .await
        .expect("the griefer is disconnected")
        .unwrap();
    assert!(first.answered >= 1);
    let again = scripted_verifier(&net, &addr, griefer, false).await;
    assert_eq!(again.answered, 0);
    assert!(again.refusal.expect("refused").contains("stake"));

    let _ = stop.send(true);
    for h in honest.into_iter().chain(workers) {
        let _ = h.await;
    }
    manager.shutdown().await;
}
