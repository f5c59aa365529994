//! Accounts own their jobs. Over a manager that admits clients by API key
//! only, with workers and verifiers that move every blob through their
//! manager connection:
//! - another account cannot see, watch, download, pause, cancel or claim a
//!   job, nor read its frames or scene by hash: each answers "not found",
//!   as for a job or blob that does not exist;
//! - an operator sees every job;
//! - an account without funds cannot submit, and can once it has them;
//!   its escrow comes from its balance;
//! - quotas (active jobs, frames per job, scene bytes) refuse a
//!   submission by name;
//! - a revoked key, a made-up key and no key are refused, and a revoked
//!   key's open connection is refused within `account_refresh`.

use std::sync::Arc;
use std::time::Duration;

use inferix_core::blob::{BlobError, BlobStore, BlobStoreExt};
use inferix_core::ids::{JobId, NodeId};
use inferix_core::job::{FrameRange, JobSpec, JobState};
use inferix_core::protocol::{ErrorCode, Role};
use inferix_core::store::accounts::Accounts;
use inferix_core::store::{MemoryTaskStore, TaskStore};
use inferix_node::{Client, ClientError, ManagerConfig};
use inferix_storage::ObjectBlobStore;
use inferix_tests::{
    funded_account, refusal_code, spawn_honest_workers, spawn_verifiers, start_keyed_manager,
    start_manager, submit_stand_in_job,
};
use inferix_transport::InProcNetwork;
use tokio::sync::watch;

fn blob_missing<T: std::fmt::Debug>(r: Result<T, BlobError>) {
    match r {
        Err(BlobError::NotFound(_)) => {}
        other => panic!("expected the blob to be not found, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn accounts_see_only_their_own_jobs_and_pay_for_them() {
    let net = InProcNetwork::new();
    let store = Arc::new(MemoryTaskStore::new());
    let accounts = Accounts::new(&*store);
    let key_a = funded_account(&*store, "ana", false, 10_000_000).await;
    let key_b = funded_account(&*store, "ben", false, 10_000_000).await;
    let key_op = funded_account(&*store, "ops", true, 0).await;
    let key_poor = funded_account(&*store, "cy", false, 0).await;
    let manager = start_keyed_manager(&net, store.clone()).await;
    let addr = manager.addr().to_string();
    let dir = tempfile::tempdir().unwrap();
    let (_stop, stopped) = watch::channel(false);
    let _workers = spawn_honest_workers(
        &net,
        &addr,
        2,
        Duration::from_millis(50),
        dir.path(),
        &stopped,
    );
    let _verifiers = spawn_verifiers(&net, &addr, 1, None, None, dir.path(), &stopped);
    let connect = |n: u64, key: &str| {
        let t = net.transport(NodeId(300 + u128::from(n)));
        let key = Some(key.to_string());
        let addr = addr.clone();
        async move { Client::connect(&t, &addr, key).await }
    };
    let ana = connect(0, &key_a).await.unwrap();
    let ben = connect(1, &key_b).await.unwrap();
    let ops = connect(2, &key_op).await.unwrap();

    // Ana's job runs to completion; its escrow came from her balance.
    let job = submit_stand_in_job(&ana, 4, 8, 2).await;
    let mut events = ana.watch(job).await.unwrap();
    inferix_tests::until_completed(&mut events, Duration::from_secs(600)).await;
    let status = ana.status(job).await.unwrap();
    assert_eq!(status.job.state, JobState::Completed);
    assert_eq!(status.job.owner.as_deref(), Some("ana"));
    assert_eq!(status.frames.len(), 4);
    let paid = 10_000_000 - accounts.balance("ana").await.unwrap();
    assert!(
        paid > 0 && paid as u64 <= status.job.quoted_price,
        "ana paid {paid} for a job quoted {}",
        status.job.quoted_price
    );
    let frame = status.frames[0].blob;
    let scene = status.job.spec.scene.blob;
    assert!(!ana.blob_store().get_bytes(frame).await.unwrap().is_empty());

    // Ben gets "not found" for every request about it, like for a job
    // that does not exist.
    let ghost = JobId(12345);
    for id in [job, ghost] {
        assert_eq!(refusal_code(ben.status(id).await), ErrorCode::NotFound);
        assert_eq!(refusal_code(ben.watch(id).await), ErrorCode::NotFound);
        assert_eq!(refusal_code(ben.pause(id).await), ErrorCode::NotFound);
        assert_eq!(refusal_code(ben.resume(id).await), ErrorCode::NotFound);
        assert_eq!(refusal_code(ben.cancel(id).await), ErrorCode::NotFound);
        assert_eq!(
            refusal_code(ben.claim(id, vec![1], "mine now").await),
            ErrorCode::NotFound
        );
        assert_eq!(
            refusal_code(ben.download(id, &dir.path().join("stolen")).await),
            ErrorCode::NotFound
        );
    }
    // Knowing the hashes is not enough either.
    let theirs = ben.blob_store();
    blob_missing(theirs.get_bytes(frame).await);
    blob_missing(theirs.get_bytes(scene).await);
    assert_eq!(theirs.size(frame).await.unwrap(), None);
    // Nothing Ben tried changed the job or its ledger.
    let after = ana.status(job).await.unwrap();
    assert_eq!(after.job.state, JobState::Completed);
    assert_eq!(10_000_000 - accounts.balance("ana").await.unwrap(), paid);

    // The operator sees it and its frames.
    let seen = ops.status(job).await.unwrap();
    assert_eq!(seen.job.id, job);
    assert!(!ops.blob_store().get_bytes(frame).await.unwrap().is_empty());

    // Listings: each account lists its own jobs; every job and the nodes
    // are for operators.
    let mine = ana.list_jobs(false).await.unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(
        (mine[0].id, mine[0].accepted_frames, mine[0].frames),
        (job, 4, 4)
    );
    assert!(ben.list_jobs(false).await.unwrap().is_empty());
    assert_eq!(
        refusal_code(ben.list_jobs(true).await),
        ErrorCode::Forbidden
    );
    assert_eq!(refusal_code(ana.list_nodes().await), ErrorCode::Forbidden);
    assert_eq!(ops.list_jobs(true).await.unwrap().len(), 1);
    let nodes = ops.list_nodes().await.unwrap();
    let count = |role| nodes.iter().filter(|n| n.role == role).count();
    assert_eq!((count(Role::Worker), count(Role::Verifier)), (2, 1));
    assert!(nodes
        .iter()
        .filter(|n| n.role == Role::Worker)
        .all(|n| n.stake > 0 && n.state == "idle"));

    // Without funds, no submission; with them, one.
    let cy = connect(3, &key_poor).await.unwrap();
    let upload = cy
        .upload_scene_bytes(inferix_gpu::demo_scene_glb(), "s.glb")
        .await
        .unwrap();
    let mut spec = JobSpec::new(upload, FrameRange::new(1, 2));
    spec.settings.width = 8;
    spec.settings.height = 8;
    let quote = cy.quote(&spec).await.unwrap();
    assert!(quote.total_price > 0);
    match cy.submit(&spec).await {
        Err(ClientError::Refused { code, message }) => {
            assert_eq!(code, ErrorCode::PaymentRequired);
            assert!(message.contains("inferix account deposit"), "{message}");
        }
        other => panic!("a submission without funds must be refused, got {other:?}"),
    }
    assert_eq!(
        accounts.balance("cy").await.unwrap(),
        0,
        "nothing was taken"
    );
    accounts
        .deposit("cy", quote.total_price as i64, "exactly enough", 2)
        .await
        .unwrap();
    let (paid_job, _) = cy.submit(&spec).await.unwrap();
    assert_eq!(accounts.balance("cy").await.unwrap(), 0);
    // Ben still cannot see Cy's job, and Cy cannot see Ana's.
    assert_eq!(
        refusal_code(ben.status(paid_job).await),
        ErrorCode::NotFound
    );
    assert_eq!(refusal_code(cy.status(job).await), ErrorCode::NotFound);

    // Keys: a revoked one, a made-up one and none are refused alike.
    let key_id = inferix_core::account::key_id(&key_b).unwrap().to_string();
    accounts.revoke("ben", &key_id, 3).await.unwrap();
    // A connection already open keeps its copy of the account only for
    // `account_refresh` (30 s): then the revocation applies to it too.
    tokio::time::advance(Duration::from_secs(31)).await;
    assert_eq!(
        refusal_code(ben.status(ghost).await),
        ErrorCode::Unauthorized
    );
    assert_eq!(
        refusal_code(connect(4, &key_b).await),
        ErrorCode::Unauthorized
    );
    let made_up = "ifx_0123456789abcdef_0123456789abcdef0123456789abcdef";
    assert_eq!(
        refusal_code(connect(5, made_up).await),
        ErrorCode::Unauthorized
    );
    let anonymous = Client::connect(&net.transport(NodeId(399)), &addr, None).await;
    assert_eq!(refusal_code(anonymous), ErrorCode::Unauthorized);
}

#[tokio::test(start_paused = true)]
async fn quotas_refuse_a_submission_and_name_the_limit() {
    let net = InProcNetwork::new();
    let store = Arc::new(MemoryTaskStore::new());
    let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::in_memory());
    let accounts = Accounts::new(&*store);
    let (mut limited, key) = accounts.create("small", false, 1).await.unwrap();
    limited.quotas.max_active_jobs = 1;
    limited.quotas.max_frames_per_job = 3;
    store.update_account(&limited).await.unwrap();
    // A second key: a new connection reads the account afresh.
    let key2 = accounts.add_key("small", 1).await.unwrap();
    accounts
        .deposit("small", 1 << 40, "funds", 1)
        .await
        .unwrap();
    let config = ManagerConfig {
        guest_account: None,
        ..ManagerConfig::default()
    };
    let manager = start_manager(&net, store.clone(), blobs, config).await;
    let client = Client::connect(&net.transport(NodeId(300)), manager.addr(), Some(key))
        .await
        .unwrap();
    let scene = client
        .upload_scene_bytes(inferix_gpu::demo_scene_glb(), "s.glb")
        .await
        .unwrap();
    let spec = |frames| {
        let mut s = JobSpec::new(scene.clone(), FrameRange::new(1, frames));
        s.settings.width = 8;
        s.settings.height = 8;
        s
    };
    match client.submit(&spec(4)).await {
        Err(ClientError::Refused { code, message }) => {
            assert_eq!(code, ErrorCode::LimitExceeded);
            assert!(message.contains("at most 3"), "{message}");
        }
        other => panic!("4 frames over a limit of 3, got {other:?}"),
    }
    // No workers: the first job stays active and fills the quota.
    let (first, _) = client.submit(&spec(3)).await.unwrap();
    assert_eq!(
        refusal_code(client.submit(&spec(1)).await),
        ErrorCode::LimitExceeded
    );
    // A cancelled job no longer counts.
    client.cancel(first).await.unwrap();
    client.submit(&spec(1)).await.unwrap();
    // Scene bytes: each distinct scene of the unfinished jobs counts once.
    let mut limited = accounts.get("small").await.unwrap();
    limited.quotas.max_active_jobs = 10;
    limited.quotas.max_scene_bytes = inferix_gpu::demo_scene_glb().len() as u64 + 10;
    store.update_account(&limited).await.unwrap();
    let fresh = Client::connect(&net.transport(NodeId(301)), manager.addr(), Some(key2))
        .await
        .unwrap();
    let same = fresh
        .upload_scene_bytes(inferix_gpu::demo_scene_glb(), "s.glb")
        .await
        .unwrap();
    let mut again = JobSpec::new(same, FrameRange::new(1, 1));
    again.settings.width = 8;
    again.settings.height = 8;
    fresh.submit(&again).await.unwrap();
    let other = fresh
        .upload_scene_bytes(inferix_gpu::builder::bare_cube_glb(), "c.glb")
        .await
        .unwrap();
    let mut bigger = JobSpec::new(other, FrameRange::new(1, 1));
    bigger.settings.width = 8;
    bigger.settings.height = 8;
    match fresh.submit(&bigger).await {
        Err(ClientError::Refused { code, message }) => {
            assert_eq!(code, ErrorCode::LimitExceeded);
            assert!(message.contains("bytes"), "{message}");
        }
        other => panic!("a second scene over the byte limit, got {other:?}"),
    }
    assert_eq!(
        store.jobs().await.unwrap().len(),
        3,
        "refused submissions left no job behind"
    );
}
