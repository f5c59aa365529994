//! Operators run the network: a drained worker finishes what it holds and
//! takes nothing new, so a job goes to the others; a disabled worker is
//! disconnected and refused when it comes back; the ledger's totals add
//! up; each worker's and verifier's own metrics count what it did. Users
//! may do none of it.

use std::sync::Arc;
use std::time::Duration;

use inferix_core::ids::NodeId;
use inferix_core::protocol::{ErrorCode, JobEvent, NodeAction, Role};
use inferix_core::renderer::stand_in::{StandInBehaviour, StandInRenderer};
use inferix_core::renderer::Renderer;
use inferix_core::store::accounts::Accounts;
use inferix_core::store::MemoryTaskStore;
use inferix_node::Client;
use inferix_node::{VerifierConfig, VerifierNode};
use inferix_tests::{
    funded_account, numbered_worker, refusal_code, seeded_identity, start_keyed_manager,
    submit_stand_in_job,
};
use inferix_transport::InProcNetwork;
use tokio::sync::watch;

#[tokio::test(start_paused = true)]
async fn operators_drain_and_disable_workers_and_read_the_ledger() {
    let net = InProcNetwork::new();
    let store = Arc::new(MemoryTaskStore::new());
    let accounts = Accounts::new(&*store);
    let ops_key = funded_account(&*store, "ops", true, 0).await;
    let ana_key = funded_account(&*store, "ana", false, 50_000_000).await;
    let manager = start_keyed_manager(&net, store.clone()).await;
    let addr = manager.addr().to_string();
    let dir = tempfile::tempdir().unwrap();
    let (_stop, stopped) = watch::channel(false);
    let renderer: Arc<dyn Renderer> = Arc::new(StandInRenderer::new(
        StandInBehaviour::Honest,
        Duration::from_millis(50),
    ));
    let (w1, w2) = (
        numbered_worker(&net, 100, &addr, renderer.clone()),
        numbered_worker(&net, 101, &addr, renderer),
    );
    let (m1, m2) = (w1.metrics(), w2.metrics());
    let workers = vec![
        tokio::spawn(w1.run(stopped.clone())),
        tokio::spawn(w2.run(stopped.clone())),
    ];
    let verifier = VerifierNode::new(
        Arc::new(net.transport(NodeId(200))),
        VerifierConfig {
            manager: addr.clone(),
            work_dir: dir.path().join("v"),
            ..VerifierConfig::default()
        },
    );
    let vm = verifier.metrics();
    let _verifier = tokio::spawn(verifier.run(stopped.clone()));
    let (first, second) = (
        seeded_identity(100).node_id(),
        seeded_identity(101).node_id(),
    );
    let ops = Client::connect(&net.transport(NodeId(300)), &addr, Some(ops_key))
        .await
        .unwrap();
    let ana = Client::connect(&net.transport(NodeId(301)), &addr, Some(ana_key))
        .await
        .unwrap();
    // Both workers have joined once the operator sees them: each listing
    // is a round trip through the manager, behind the hellos before it.
    let mut joined = 0;
    for _ in 0..1_000 {
        let nodes = ops.list_nodes().await.unwrap();
        joined = nodes.iter().filter(|n| n.role == Role::Worker).count();
        if joined == 2 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(joined, 2, "both workers joined");

    // Users may not touch nodes or read the ledger.
    assert_eq!(
        refusal_code(ana.control_node(first, NodeAction::Drain).await),
        ErrorCode::Forbidden
    );
    assert_eq!(refusal_code(ana.ledger().await), ErrorCode::Forbidden);
    assert_eq!(
        refusal_code(ops.control_node(NodeId(7), NodeAction::Drain).await),
        ErrorCode::NotFound,
        "no such worker connected"
    );

    // Drained, the first worker renders nothing of a new job.
    ops.control_node(first, NodeAction::Drain).await.unwrap();
    let listed = ops.list_nodes().await.unwrap();
    let state = |n: NodeId| listed.iter().find(|x| x.node == n).map(|x| x.state.clone());
    assert_eq!(state(first).as_deref(), Some("drained"));
    let job = submit_stand_in_job(&ana, 6, 8, 1).await;
    let mut events = ana.watch(job).await.unwrap();
    let mut by = Vec::new();
    tokio::time::timeout(Duration::from_secs(600), async {
        loop {
            match events.recv().await.expect("events") {
                JobEvent::TaskAccepted { worker, .. } => by.push(worker),
                JobEvent::Completed { .. } => break,
                _ => {}
            }
        }
    })
    .await
    .expect("the job completes on the other worker");
    assert_eq!(by.len(), 6);
    assert!(by.iter().all(|w| *w == second), "{by:?}");
    // Each node's own metrics say what it did.
    let done = "inferix_worker_tasks_total{outcome=\"done\"}";
    assert!(
        m2.encode().contains(&format!("{done} 6\n")),
        "{}",
        m2.encode()
    );
    assert!(!m1.encode().contains(done), "{}", m1.encode());
    let passed = "inferix_verifier_verifications_total{outcome=\"passed\"} 6\n";
    assert!(vm.encode().contains(passed), "{}", vm.encode());

    // The ledger adds up: what was deposited is in the account or was paid.
    let totals = ops.ledger().await.unwrap();
    assert_eq!(totals.deposited, 50_000_000);
    assert_eq!(totals.escrow, 0, "the job is finished");
    let paid = 50_000_000 - accounts.balance("ana").await.unwrap();
    assert!(paid > 0);
    assert_eq!(totals.account_balances, 50_000_000 - paid);

    // Disabled, the second worker is disconnected and refused when it
    // says hello again: its node stops.
    ops.control_node(second, NodeAction::Disable).await.unwrap();
    let listed = ops.list_nodes().await.unwrap();
    assert!(listed.iter().all(|n| n.node != second), "{listed:?}");
    let mut ended = 0;
    for w in workers {
        if let Ok(Ok(result)) = tokio::time::timeout(Duration::from_secs(120), w).await {
            assert!(
                matches!(result, Err(inferix_node::NodeError::Refused(_))),
                "{result:?}"
            );
            ended += 1;
        }
    }
    assert_eq!(ended, 1, "only the disabled worker stopped");
}
