//! Nodes run by accounts. A worker or verifier that joins with an account's
//! API key is that account's: the account's deposited stake must cover all
//! its connected nodes, a slash takes the account's stake (so a fresh node
//! key gains nothing), a ban refuses every key of the account and outlives
//! the manager, none of the account's verifiers judges its workers, and
//! only accounts an operator allowed may run verifiers.

use std::sync::Arc;
use std::time::Duration;

use inferix_core::blob::BlobStore;
use inferix_core::ids::NodeId;
use inferix_core::ledger::Account;
use inferix_core::protocol::JobEvent;
use inferix_core::protocol::{Envelope, Hello, Message, Role};
use inferix_core::renderer::SceneFormat;
use inferix_core::store::accounts::Accounts;
use inferix_core::store::{MemoryTaskStore, TaskStore};
use inferix_node::{Client, ManagerConfig};
use inferix_storage::ObjectBlobStore;
use inferix_tests::{
    keyed_worker, scripted_verifier_keyed, spawn_verifiers, start_manager, submit_stand_in_job,
    until_completed,
};
use inferix_transport::{InProcNetwork, Transport};
use tokio::sync::watch;

/// The minimum stake of a worker of IB 1 under the default economy
/// (S = 2 · E · IB · P).
fn stake_per_ib() -> i64 {
    let cfg = ManagerConfig::default();
    (2.0 * cfg.stake_epoch_minutes * cfg.price_per_ibm as f64) as i64
}

/// Says hello as `role` with `token` and returns the manager's first
/// answer: `Ok` with the open connection when welcomed, the refusal's
/// message otherwise.
async fn hello(
    net: &InProcNetwork,
    addr: &str,
    id: u128,
    role: Role,
    token: &str,
) -> Result<inferix_transport::Connection, String> {
    let mut conn = net.transport(NodeId(id)).connect(addr).await.unwrap();
    let hello = Hello {
        role,
        node: NodeId(id),
        ib: 1.0,
        tags: vec![],
        device_class: "test".into(),
        token: Some(token.into()),
        formats: vec![SceneFormat::Gltf],
    };
    conn.sender
        .send(Envelope::with_id(1, Message::Hello(hello)))
        .await
        .unwrap();
    loop {
        match conn.receiver.recv().await {
            Ok(Some(env)) => match env.body {
                Message::Welcome { .. } => return Ok(conn),
                Message::Error { message, .. } => return Err(message),
                _ => {}
            },
            _ => return Err("closed without an answer".into()),
        }
    }
}

/// Creates account `name` with stake for ten nodes of IB 1, allowed to run
/// verifiers when `verifier`; returns its key.
async fn staked_account(accounts: &Accounts<'_>, name: &str, verifier: bool) -> String {
    let (_, key) = accounts.create(name, false, 1).await.unwrap();
    if verifier {
        accounts.allow_verifiers(name, true).await.unwrap();
    }
    accounts
        .deposit_stake(name, 10 * stake_per_ib(), "stake", 2)
        .await
        .unwrap();
    key
}

/// A stand-in worker (100 ms a frame) joining with the farm's `key`.
fn farm_worker(net: &InProcNetwork, addr: &str, key: &str) -> inferix_node::WorkerNode {
    keyed_worker(
        net,
        100,
        addr,
        Arc::new(inferix_core::renderer::stand_in::StandInRenderer::new(
            inferix_core::renderer::stand_in::StandInBehaviour::Honest,
            Duration::from_millis(100),
        )),
        Some(key.to_string()),
    )
}

async fn manager(
    net: &InProcNetwork,
    store: Arc<dyn TaskStore>,
    quorum: usize,
) -> inferix_node::ManagerHandle {
    let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::in_memory());
    start_manager(
        net,
        store,
        blobs,
        ManagerConfig {
            quorum,
            ..ManagerConfig::default()
        },
    )
    .await
}

#[tokio::test(start_paused = true)]
async fn an_accounts_nodes_need_its_deposited_stake_and_a_verifier_account_needs_leave() {
    let net = InProcNetwork::new();
    let store: Arc<dyn TaskStore> = Arc::new(MemoryTaskStore::new());
    let m = manager(&net, store.clone(), 1).await;
    let addr = m.addr().to_string();
    let accounts = Accounts::new(&*store);
    let (_, key) = accounts.create("farm", false, 1).await.unwrap();

    // No stake: refused, told how to deposit, and nothing was granted.
    let why = hello(&net, &addr, 10, Role::Worker, &key)
        .await
        .err()
        .unwrap();
    assert!(
        why.contains("inferix account deposit farm"),
        "the refusal says how to deposit: {why}"
    );
    assert_eq!(
        store
            .balance(&Account::OperatorStake("farm".into()))
            .await
            .unwrap(),
        0,
        "the manager grants no stake to an account"
    );

    // Stake for two workers of IB 1: two are admitted, the third is not,
    // whatever key it makes for itself.
    accounts
        .deposit_stake("farm", 2 * stake_per_ib(), "stake", 2)
        .await
        .unwrap();
    let _a = hello(&net, &addr, 10, Role::Worker, &key).await.unwrap();
    let _b = hello(&net, &addr, 11, Role::Worker, &key).await.unwrap();
    let third = hello(&net, &addr, 12, Role::Worker, &key)
        .await
        .err()
        .unwrap();
    assert!(
        third.contains("2 connected") || third.contains("3 connected"),
        "{third}"
    );
    // A node that reconnects replaces itself and needs no more stake.
    let _a_again = hello(&net, &addr, 10, Role::Worker, &key).await.unwrap();

    // A wrong or revoked key is refused as unknown.
    let bad = format!("{}x", &key[..key.len() - 1]);
    let why = hello(&net, &addr, 13, Role::Worker, &bad)
        .await
        .err()
        .unwrap();
    assert!(why.contains("unknown or revoked"), "{why}");

    // Verifiers: only accounts an operator allowed.
    let (_, vkey) = accounts.create("checkers", false, 1).await.unwrap();
    accounts
        .deposit_stake("checkers", stake_per_ib(), "stake", 2)
        .await
        .unwrap();
    let why = hello(&net, &addr, 20, Role::Verifier, &vkey)
        .await
        .err()
        .unwrap();
    assert!(why.contains("may not run verifiers"), "{why}");
    accounts.allow_verifiers("checkers", true).await.unwrap();
    let _v = hello(&net, &addr, 20, Role::Verifier, &vkey).await.unwrap();
    m.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_slash_takes_the_accounts_stake_so_a_fresh_key_gains_nothing_until_it_deposits() {
    let net = InProcNetwork::new();
    let store: Arc<dyn TaskStore> = Arc::new(MemoryTaskStore::new());
    let m = manager(&net, store.clone(), 1).await;
    let addr = m.addr().to_string();
    let accounts = Accounts::new(&*store);
    let (_, key) = accounts.create("farm", false, 1).await.unwrap();
    accounts
        .deposit_stake("farm", 3 * stake_per_ib(), "stake", 2)
        .await
        .unwrap();
    // A griefing verifier (the operator's own node) fails the farm's
    // first result: the farm's stake goes, and its worker is disconnected.
    let griefer = {
        let (net, addr) = (net.clone(), addr.clone());
        tokio::spawn(
            async move { scripted_verifier_keyed(&net, &addr, NodeId(250), false, None).await },
        )
    };
    let (stop, stopped) = watch::channel(false);
    let running = tokio::spawn(farm_worker(&net, &addr, &key).run(stopped.clone()));
    let client = Client::connect(&net.transport(NodeId(300)), &addr, None)
        .await
        .unwrap();
    let job = submit_stand_in_job(&client, 1, 8, 1).await;
    let mut events = client.watch(job).await.unwrap();
    tokio::time::timeout(Duration::from_secs(600), async {
        loop {
            if let JobEvent::TaskRejected { .. } = events.recv().await.expect("events") {
                return;
            }
        }
    })
    .await
    .expect("the griefer fails the farm's result");
    let stake = Account::OperatorStake("farm".into());
    assert_eq!(
        store.balance(&stake).await.unwrap(),
        0,
        "the rejected result cost the farm its stake"
    );
    let txs = store.transactions().await.unwrap();
    let slash = txs
        .iter()
        .find(|t| t.id.starts_with(&format!("slash:{job}")))
        .expect("a slash");
    assert!(slash
        .postings
        .iter()
        .any(|p| p.account == stake && p.amount == -3 * stake_per_ib()));
    let task = &store.tasks_of_job(job).await.unwrap()[0];
    assert!(task.history.iter().any(|c| c.note.contains("rejected")));
    let standing = store.standing("farm").await.unwrap().expect("recorded");
    assert_eq!(standing.rejected_tasks, 1);
    assert!(standing.worker_reputation < 1.0);

    // Any key of the farm's is refused now, fresh node keys included.
    for id in [400, 401] {
        let why = hello(&net, &addr, id, Role::Worker, &key)
            .await
            .err()
            .unwrap();
        assert!(why.contains("stake"), "{why}");
    }
    // It deposits again, and is back.
    accounts
        .deposit_stake("farm", stake_per_ib(), "stake", 3)
        .await
        .unwrap();
    let _back = hello(&net, &addr, 401, Role::Worker, &key).await.unwrap();

    let _ = stop.send(true);
    let _ = running.await;
    griefer.abort();
    m.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn no_verifier_of_the_workers_account_judges_its_results() {
    let net = InProcNetwork::new();
    let store: Arc<dyn TaskStore> = Arc::new(MemoryTaskStore::new());
    let m = manager(&net, store.clone(), 1).await;
    let addr = m.addr().to_string();
    let accounts = Accounts::new(&*store);
    let key = staked_account(&accounts, "farm", true).await;
    // The farm's own rubber stamps, under three keys, would pass anything
    // its worker sends; an honest verifier of the operator's stands by.
    let stamps: Vec<_> = (0..3)
        .map(|i| {
            let (net, addr, key) = (net.clone(), addr.clone(), key.clone());
            tokio::spawn(async move {
                scripted_verifier_keyed(&net, &addr, NodeId(250 + i), true, Some(key)).await
            })
        })
        .collect();
    let (stop, stopped) = watch::channel(false);
    let dir = tempfile::tempdir().unwrap();
    let honest = spawn_verifiers(&net, &addr, 1, None, None, dir.path(), &stopped);
    let running = tokio::spawn(farm_worker(&net, &addr, &key).run(stopped.clone()));
    let client = Client::connect(&net.transport(NodeId(300)), &addr, None)
        .await
        .unwrap();
    let job = submit_stand_in_job(&client, 12, 8, 1).await;
    let mut events = client.watch(job).await.unwrap();
    until_completed(&mut events, Duration::from_secs(3_600)).await;

    let tasks = store.tasks_of_job(job).await.unwrap();
    assert!(tasks.iter().all(|t| t.operator.as_deref() == Some("farm")));
    let standing = store.standing("farm").await.unwrap().expect("recorded");
    assert_eq!(standing.accepted_tasks, 12);
    let _ = stop.send(true);
    let _ = running.await;
    for h in honest {
        let _ = h.await;
    }
    m.shutdown().await;
    for s in stamps {
        let run = s.await.unwrap();
        assert_eq!(run.answered, 0, "a farm verifier judged the farm's work");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caught_verifier_bans_its_account_under_every_key_and_after_a_restart() {
    use inferix_core::job::FrameRange;
    use inferix_tests::PorNetwork;
    let (n, client, spec) = PorNetwork::catching_verifiers(b"operator bans").await;
    let store = n.store.clone();
    let accounts = Accounts::new(&*store);
    let key = staked_account(&accounts, "shady", true).await;

    // Shady's rubber stamp passes a known-bad result and is caught.
    let stamp_run = {
        let (net, addr, key) = (n.net.clone(), n.addr.clone(), key.clone());
        tokio::spawn(async move {
            scripted_verifier_keyed(&net, &addr, NodeId(250), true, Some(key)).await
        })
    };
    let mut second = spec.clone();
    second.frames = FrameRange::new(1, 12);
    let (job, _) = client.submit(&second).await.unwrap();
    let mut events = client.watch(job).await.unwrap();
    let run = tokio::time::timeout(Duration::from_secs(300), stamp_run)
        .await
        .expect("the rubber stamp is disconnected")
        .unwrap();
    assert!(run.answered >= 1);
    until_completed(&mut events, Duration::from_secs(300)).await;
    let standing = n.store.standing("shady").await.unwrap().expect("recorded");
    assert!(
        standing
            .banned
            .as_deref()
            .is_some_and(|b| b.contains("known-bad")),
        "{standing:?}"
    );
    assert_eq!(
        n.store
            .balance(&Account::OperatorStake("shady".into()))
            .await
            .unwrap(),
        0,
        "the account's stake is slashed"
    );

    // A fresh node key under a fresh API key of the account: refused.
    let other_key = accounts.add_key("shady", 3).await.unwrap();
    accounts
        .deposit_stake("shady", 10 * stake_per_ib(), "stake", 3)
        .await
        .unwrap();
    let refused =
        scripted_verifier_keyed(&n.net, &n.addr, NodeId(251), true, Some(other_key.clone())).await;
    assert_eq!(refused.answered, 0);
    assert!(refused.refusal.expect("refused").contains("banned"));
    let why = hello(&n.net, &n.addr, 252, Role::Worker, &other_key)
        .await
        .err()
        .unwrap();
    assert!(why.contains("banned"), "workers of the account too: {why}");

    // A restarted manager reads the ban from the store.
    let net = n.net.clone();
    n.shut().await;
    let again = manager(&net, store.clone(), 1).await;
    let why = hello(&net, again.addr(), 253, Role::Worker, &other_key)
        .await
        .err()
        .unwrap();
    assert!(why.contains("banned"), "{why}");
    // Until an operator lifts it.
    accounts.unban("shady").await.unwrap();
    let _back = hello(&net, again.addr(), 253, Role::Worker, &other_key)
        .await
        .unwrap();
    again.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_accounts_results_are_checked_with_twice_the_crops() {
    use inferix_tests::PorNetwork;
    let n = PorNetwork::start(
        b"history-scaled checks",
        ManagerConfig {
            quorum: 1,
            forced_error_rate: 0.0,
            ..ManagerConfig::default()
        },
    )
    .await;
    let store = n.store.clone();
    let accounts = Accounts::new(&*store);
    let key = staked_account(&accounts, "newcomer", false).await;
    // The operator's own worker first, then the newcomer's, one job each;
    // a verifier driven by hand counts the crops of every offer.
    // (No node token is set: any token that is not a key admits it.)
    let mut conn = hello(&n.net, &n.addr, 250, Role::Verifier, "counting")
        .await
        .unwrap();
    let client = n.client().await;
    let spec = PorNetwork::demo_job(&client, 2, 2).await;
    let mut crops = Vec::new();
    for token in [None, Some(key.clone())] {
        let (stop, stopped) = watch::channel(false);
        let worker = keyed_worker(
            &n.net,
            100 + crops.len() as u128,
            &n.addr,
            n.tracer.clone(),
            token,
        )
        .with_blob_store(n.blobs.clone());
        let running = tokio::spawn(worker.run(stopped));
        client.submit(&spec).await.unwrap();
        let offer = tokio::time::timeout(Duration::from_secs(300), async {
            loop {
                let env = conn.receiver.recv().await.unwrap().expect("open");
                if let Message::VerifyOffer(a) = env.body {
                    return a;
                }
            }
        })
        .await
        .expect("an offer");
        // Whole-frame audits aside, the crops of the plan.
        crops.push(
            offer
                .challenges
                .iter()
                .filter(|c| c.rect.width < offer.width)
                .count(),
        );
        let _ = stop.send(true);
        let _ = running.await;
    }
    assert_eq!(
        crops[1],
        2 * crops[0],
        "a new account's result gets twice the crops: {crops:?}"
    );
    n.shut().await;
}
