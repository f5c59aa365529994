//! A black scene renders flat frames, and that is not a cheat: a verifier
//! that renders the scene confirms the flatness on a crop of its own and
//! accepts; a flat frame of a scene that is not flat is still rejected; one
//! no connected verifier can confirm waits for a verifier that can, neither
//! accepted nor held against the worker. Simulated renderers, paused time,
//! no Proof of Render (with it, watermark patches keep frames from being
//! flat).

use std::sync::Arc;
use std::time::Duration;

use inferix_core::blob::BlobStore;
use inferix_core::ids::NodeId;
use inferix_core::ledger::Account;
use inferix_core::protocol::JobEvent;
use inferix_core::renderer::stand_in::{StandInBehaviour, StandInRenderer};
use inferix_core::renderer::Renderer;
use inferix_core::store::{MemoryTaskStore, TaskStore};
use inferix_node::{Client, ManagerConfig, WorkerConfig, WorkerNode};
use inferix_storage::ObjectBlobStore;
use inferix_tests::{
    accepted_until_completed, first_rejection, seeded_identity, spawn_verifiers, start_manager,
    submit_stand_in_job,
};
use inferix_transport::InProcNetwork;
use tokio::sync::watch;

fn sim(behaviour: StandInBehaviour) -> Arc<dyn Renderer> {
    Arc::new(StandInRenderer::new(behaviour, Duration::from_secs(1)))
}

/// One worker rendering with `worker`, two verifiers rendering with
/// `verifiers` (none: they cannot render); returns the job's events after
/// submitting 4 one-frame tasks, the worker's id and the store.
async fn network(
    worker: StandInBehaviour,
    verifiers: Option<StandInBehaviour>,
) -> (
    tokio::sync::mpsc::UnboundedReceiver<inferix_core::protocol::JobEvent>,
    NodeId,
    Arc<dyn TaskStore>,
    watch::Sender<bool>,
) {
    let net = InProcNetwork::new();
    let store: Arc<dyn TaskStore> = Arc::new(MemoryTaskStore::new());
    let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::in_memory());
    let manager = start_manager(&net, store.clone(), blobs, ManagerConfig::default()).await;
    let (stop, stopped) = watch::channel(false);
    let dir = tempfile::tempdir().unwrap().keep();
    spawn_verifiers(
        &net,
        manager.addr(),
        2,
        None,
        verifiers.map(sim),
        &dir,
        &stopped,
    );
    let w = WorkerNode::new(
        Arc::new(net.node(seeded_identity(100))),
        sim(worker),
        WorkerConfig {
            manager: manager.addr().into(),
            work_dir: dir.join("worker"),
            ..WorkerConfig::default()
        },
    );
    let id = w.id();
    tokio::spawn(w.run(stopped.clone()));
    let client = Client::connect(&net.transport(NodeId(300)), manager.addr(), None)
        .await
        .unwrap();
    let job = submit_stand_in_job(&client, 4, 20, 1).await;
    let events = client.watch(job).await.unwrap();
    std::mem::forget(client);
    std::mem::forget(manager);
    (events, id, store, stop)
}

/// Transactions that moved anything into the penalty pool (slashes).
async fn penalties(store: &dyn TaskStore) -> usize {
    store
        .transactions()
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.postings.iter().any(|p| p.account == Account::PenaltyPool))
        .count()
}

#[tokio::test(start_paused = true)]
async fn honest_flat_frames_of_a_black_scene_are_accepted_and_nobody_is_slashed() {
    // Everyone's render of this scene is black.
    let (mut events, worker, store, _stop) =
        network(StandInBehaviour::Blank, Some(StandInBehaviour::Blank)).await;
    let by = accepted_until_completed(&mut events, NodeId(0), Duration::from_secs(600)).await;
    assert_eq!(by.len(), 4);
    assert!(by.iter().all(|w| *w == worker));
    let slashed = penalties(&*store).await;
    assert_eq!(slashed, 0, "an honest worker was slashed");
}

#[tokio::test(start_paused = true)]
async fn flat_frames_of_a_scene_that_is_not_flat_are_rejected() {
    let (mut events, worker, _store, _stop) =
        network(StandInBehaviour::Blank, Some(StandInBehaviour::Honest)).await;
    let reasons = first_rejection(&mut events, worker, Duration::from_secs(600)).await;
    assert!(
        reasons.iter().any(|r| r.contains("does not render flat")),
        "{reasons:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn flat_frames_no_verifier_can_confirm_are_neither_accepted_nor_rejected() {
    // The verifiers cannot render: they can only say they could not check.
    let (mut events, _worker, store, _stop) = network(StandInBehaviour::Blank, None).await;
    let why = tokio::time::timeout(Duration::from_secs(600), async {
        loop {
            match events.recv().await.expect("event stream open") {
                JobEvent::Waiting { reason } if reason.contains("could not check") => {
                    return reason
                }
                JobEvent::TaskAccepted { task, .. } => panic!("{task} accepted unconfirmed"),
                JobEvent::TaskRejected { task, reasons, .. } => {
                    panic!("{task} rejected for the verifier's want of a renderer: {reasons:?}")
                }
                _ => {}
            }
        }
    })
    .await
    .expect("the round says it waits");
    assert!(why.contains("verification of task"), "{why}");
    let slashed = penalties(&*store).await;
    assert_eq!(
        slashed, 0,
        "the worker was punished for the verifiers' limits"
    );
}
