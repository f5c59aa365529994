//! Forced errors end to end: a rubber-stamp verifier (it passes whatever it
//! is offered, at once) joins a network beside an honest one. Known-bad
//! results slipped in among its offers give it away: it is disconnected,
//! its stake and earnings go to the penalty pool (so it is refused when it
//! comes back), and the honest verifier,
//! which fails every known-bad result, keeps its seat. Real path tracer,
//! Proof of Render on, one forced error per seat (rate 1).

use std::time::Duration;

use inferix_core::ids::NodeId;
use inferix_core::job::FrameRange;
use inferix_core::ledger::{balance, Account};
use inferix_tests::{scripted_verifier, until_completed, PorNetwork};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rubber_stamp_verifier_is_caught_by_a_known_bad_result_and_removed() {
    // A first job gives the manager accepted results to build known-bad
    // ones from; the honest verifier fails those it gets.
    let (n, client, spec) = PorNetwork::catching_verifiers(b"forced errors").await;

    // The rubber stamp joins; seated on a round, it also gets a known-bad
    // result, passes it, and is removed.
    let stamp = NodeId(250);
    let stamp_run = {
        let (net, addr) = (n.net.clone(), n.addr.clone());
        tokio::spawn(async move { scripted_verifier(&net, &addr, stamp, true).await })
    };
    let mut second = spec.clone();
    second.frames = FrameRange::new(1, 12);
    let (job, _) = client.submit(&second).await.unwrap();
    let mut events = client.watch(job).await.unwrap();
    let run = tokio::time::timeout(Duration::from_secs(300), stamp_run)
        .await
        .expect("the rubber stamp is disconnected")
        .unwrap();
    assert!(
        run.answered >= 1,
        "it was offered work before it was caught"
    );
    until_completed(&mut events, Duration::from_secs(300)).await;

    let exposition = n.manager.metrics().encode();
    assert!(
        exposition.contains("inferix_verifiers_caught_total 1"),
        "{exposition}"
    );
    let txs = n.store.transactions().await.unwrap();
    assert_eq!(
        balance(&txs, &Account::Verifier(stamp)),
        0,
        "what it earned is forfeited"
    );
    assert!(
        balance(&txs, &Account::Verifier(NodeId(200))) > 0,
        "the honest verifier keeps its earnings"
    );
    assert_eq!(
        balance(&txs, &Account::Stake(stamp)),
        0,
        "its stake slashed"
    );
    assert!(balance(&txs, &Account::Stake(NodeId(200))) > 0);
    // Back with the same key, it is refused: its stake is gone.
    let again = scripted_verifier(&n.net, &n.addr, stamp, true).await;
    assert_eq!(again.answered, 0);
    let refusal = again.refusal.expect("refused");
    assert!(refusal.contains("stake"), "{refusal}");
    n.shut().await;
}
