//! Recall end to end: a worker that renders with a sixteenth of the samples
//! has its first job passed by a colluding verifier (it renders the clean
//! pixels clean delivery needs, and passes whatever it finds), the only
//! one connected. Once an honest verifier catches it on its next job, the
//! manager checks the results the colluder passed with its own
//! renderer: each is found bad, its frames are refunded to the job's payer
//! from the worker and recorded as claimed and upheld (the owner is told),
//! and the colluder loses its stake and is never seated again. Real
//! path tracer, Proof of Render on, no forced errors (the colluder is
//! caught by the recall alone).

use std::sync::Arc;
use std::time::Duration;

use inferix_core::ids::NodeId;
use inferix_core::ledger::{balance, Account};
use inferix_core::protocol::JobEvent;
use inferix_core::task::TaskStatus;
use inferix_tests::{scripted_verifier, until_completed, FewerSamples, PorNetwork};

/// The frames of the recalls settled on `events`, once `count` are.
async fn recalled_frames(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<JobEvent>,
    count: usize,
) -> Vec<u32> {
    let mut recalled = Vec::new();
    tokio::time::timeout(Duration::from_secs(300), async {
        while recalled.len() < count {
            if let JobEvent::ClaimSettled {
                claim: 0,
                frames,
                upheld,
                evidence,
            } = events.recv().await.unwrap()
            {
                assert!(upheld);
                assert!(evidence[0].starts_with("recalled"), "{evidence:?}");
                recalled.extend(frames);
            }
        }
    })
    .await
    .expect("the passed fakes are recalled");
    recalled
}

/// A worker (numbered 100) rendering a sixteenth of the samples, and a
/// job of `frames` one-frame tasks that colluder `stamp`, the only
/// verifier, passes; returns once the job completed and the colluder left,
/// with the client, the job's spec and id and its events.
async fn passed_by_a_colluder(
    n: &PorNetwork,
    stamp: NodeId,
    frames: u32,
) -> (
    inferix_node::Client,
    inferix_core::job::JobSpec,
    inferix_core::ids::JobId,
    tokio::sync::mpsc::UnboundedReceiver<JobEvent>,
) {
    let stamp_run = n.colluder(stamp);
    let lazy = Arc::new(FewerSamples {
        inner: n.tracer.clone(),
        divisor: 16,
    });
    n.worker(100, lazy);
    let client = n.client().await;
    let spec = PorNetwork::demo_job(&client, frames, 1).await;
    let (first, _) = client.submit(&spec).await.unwrap();
    let mut events = client.watch(first).await.unwrap();
    until_completed(&mut events, Duration::from_secs(300)).await;
    stamp_run.abort();
    (client, spec, first, events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caught_workers_passed_fakes_are_refunded_and_their_verifier_slashed() {
    let n = PorNetwork::checked_by_manager(b"recall", 1).await;
    let stamp = NodeId(250);
    // The colluder alone passes the lazy worker's first job.
    let (client, spec, first, mut events) = passed_by_a_colluder(&n, stamp, 2).await;
    let paid_before = n.store.transactions().await.unwrap();
    let worker_earned = balance(
        &paid_before,
        &Account::Worker(inferix_tests::seeded_identity(100).node_id()),
    );
    assert!(worker_earned > 0, "the fakes were paid");

    // An honest verifier catches it on the next job.
    n.rendering_verifiers(1);
    let (second, _) = client.submit(&spec).await.unwrap();
    let mut second_events = client.watch(second).await.unwrap();
    let rejected = tokio::time::timeout(Duration::from_secs(300), async {
        loop {
            if let JobEvent::TaskRejected { worker, .. } = second_events.recv().await.unwrap() {
                return worker;
            }
        }
    })
    .await
    .expect("the honest verifier rejects the lazy result");
    assert_eq!(rejected, inferix_tests::seeded_identity(100).node_id());

    // Each of the first job's frames is recalled and refunded.
    let mut recalled = recalled_frames(&mut events, 2).await;
    recalled.sort();
    assert_eq!(recalled, vec![1, 2]);

    let tasks = n.store.tasks_of_job(first).await.unwrap();
    for t in &tasks {
        assert_eq!(t.status, TaskStatus::Accepted);
        assert_eq!(t.claims.len(), 1, "{t:?}");
        assert_eq!(t.claims[0].upheld, Some(true));
        assert_eq!(t.claims[0].frames, t.frames);
    }
    // The owner cannot be refunded twice for them.
    let again = client
        .claim(first, vec![1], "bad frame")
        .await
        .unwrap_err()
        .to_string();
    assert!(again.contains("claimed already"), "{again}");
    let txs = n.store.transactions().await.unwrap();
    let lazy_id = inferix_tests::seeded_identity(100).node_id();
    let refunded: i64 = txs
        .iter()
        .filter(|t| t.id.starts_with("recall:"))
        .map(|t| {
            t.postings
                .iter()
                .filter(|p| p.account == Account::Worker(lazy_id))
                .map(|p| -p.amount)
                .sum::<i64>()
        })
        .sum();
    // The frames' whole price goes back (more than the worker earned: the
    // verifiers' fees were paid out of it too).
    let quoted = client.status(first).await.unwrap().job.quoted_price as i64;
    assert!(
        refunded >= worker_earned && refunded <= quoted,
        "{refunded} refunded, {worker_earned} earned, {quoted} quoted"
    );
    assert_eq!(
        balance(&txs, &Account::Stake(stamp)),
        0,
        "the colluder is slashed"
    );
    // Back with the same key, it is refused: its stake is gone.
    let back = scripted_verifier(&n.net, &n.addr, stamp, true).await;
    assert_eq!(back.answered, 0);
    assert!(back.refusal.expect("refused").contains("stake"));
    n.shut().await;
}

/// As above, with the manager killed and started again on the same store
/// between the colluder's pass and the worker's capture: the store kept
/// who passed the result, so the restarted manager still recalls it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_from_before_a_manager_restart_is_still_recalled() {
    let n = PorNetwork::checked_by_manager(b"recall restart", 1).await;
    let stamp = NodeId(250);
    let (client, spec, first, _) = passed_by_a_colluder(&n, stamp, 1).await;
    let task = &n.store.tasks_of_job(first).await.unwrap()[0];
    assert_eq!(task.passed_by, vec![stamp], "the store keeps who passed it");
    drop(client);

    let n = n.restart_manager().await;
    let client = n.client().await;
    let mut first_events = client.watch(first).await.unwrap();
    n.rendering_verifiers(1);
    let (second, _) = client.submit(&spec).await.unwrap();
    let mut second_events = client.watch(second).await.unwrap();
    let lazy_id = inferix_tests::seeded_identity(100).node_id();
    inferix_tests::first_rejection(&mut second_events, lazy_id, Duration::from_secs(300)).await;
    assert_eq!(recalled_frames(&mut first_events, 1).await, vec![1]);
    let txs = n.store.transactions().await.unwrap();
    assert_eq!(
        balance(&txs, &Account::Stake(stamp)),
        0,
        "the colluder is slashed"
    );
    n.shut().await;
}
