//! "Could not check" is never a pass. A worker renders with fewer samples;
//! the only verifier connected cannot re-render the scene (it has no
//! renderer), so it cannot answer the crop challenges that would catch the
//! worker. The round is not given to it: the job says that it waits for a
//! verifier that renders glTF scenes, and nothing is accepted. When such a
//! verifier joins, it re-renders the crops and rejects the result.

use std::sync::Arc;
use std::time::Duration;

use inferix_core::ids::NodeId;
use inferix_core::protocol::JobEvent;
use inferix_node::{ManagerConfig, VerifierConfig, VerifierNode};
use inferix_tests::{first_rejection, numbered_worker, spawn_verifiers, FewerSamples, PorNetwork};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verifier_that_cannot_re_render_never_passes_a_result() {
    let n = PorNetwork::start(
        b"could not check",
        ManagerConfig {
            quorum: 1,
            ..ManagerConfig::default()
        },
    )
    .await;
    // A verifier that checks files only.
    let _files_only = spawn_verifiers(
        &n.net,
        &n.addr,
        1,
        Some(n.blobs.clone()),
        None,
        n.scratch.path(),
        &n.stopped,
    );
    let cheater = numbered_worker(
        &n.net,
        100,
        &n.addr,
        Arc::new(FewerSamples {
            inner: n.tracer.clone(),
            divisor: 8,
        }),
    )
    .with_blob_store(n.blobs.clone());
    let cheater_id = cheater.id();
    tokio::spawn(cheater.run(n.stopped.clone()));

    let client = n.client().await;
    let spec = PorNetwork::demo_job(&client, 2, 2).await;
    let (job, _) = client.submit(&spec).await.unwrap();
    let mut events = client.watch(job).await.unwrap();

    // The cheater's result reaches verification and waits there: the one
    // verifier connected could only say it could not check the crops.
    let why = tokio::time::timeout(Duration::from_secs(300), async {
        loop {
            match events.recv().await.expect("event stream open") {
                JobEvent::Waiting { reason } if reason.contains("verification of task") => {
                    return reason
                }
                JobEvent::TaskAccepted { worker, .. } => {
                    panic!("{worker:?}'s result was accepted without its crops checked")
                }
                JobEvent::TaskRejected { reasons, .. } => {
                    panic!("rejected without a re-render: {reasons:?}")
                }
                _ => {}
            }
        }
    })
    .await
    .expect("the round says it waits");
    assert!(why.contains("renders glTF scenes"), "{why}");
    let task = n.store.tasks_of_job(job).await.unwrap().remove(0);
    assert_eq!(
        task.status,
        inferix_core::task::TaskStatus::Verifying,
        "{task:?}"
    );

    // A verifier that renders joins, re-renders the crops and rejects it.
    let renderer = VerifierNode::new(
        Arc::new(n.net.transport(NodeId(250))),
        VerifierConfig {
            manager: n.addr.clone(),
            work_dir: n.scratch.path().join("renderer"),
            ..VerifierConfig::default()
        },
    )
    .with_blob_store(n.blobs.clone())
    .with_renderer(n.tracer.clone());
    tokio::spawn(renderer.run(n.stopped.clone()));
    let reasons = first_rejection(&mut events, cheater_id, Duration::from_secs(300)).await;
    assert!(
        reasons.iter().any(|r| r.contains("re-rendered crop")),
        "rejected for its crops: {reasons:?}"
    );
    n.shut().await;
}
