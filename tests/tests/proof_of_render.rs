//! Proof of Render end to end, with the real path tracer: a worker that
//! renders with fewer samples than the job asks for passes every check a
//! frame alone allows (the watermark patches are there), but the crops the
//! verifiers re-render after its signed commitment give it away. It is
//! rejected by both verifiers, blocklisted for the job, its stake goes to
//! the penalty pool that pays the verifiers, and it is refused from then
//! on; an honest worker then renders every frame, all of them accepted,
//! and the frames the customer downloads equal a local render of the
//! scene: the watermark patches were replaced by clean pixels.

use std::sync::Arc;
use std::time::Duration;

use inferix_core::blob::BlobStore;
use inferix_core::ids::NodeId;
use inferix_core::job::{FrameRange, JobSpec};
use inferix_core::ledger::{balance, Account};
use inferix_core::por::key::ManagerSecret;
use inferix_core::por::prepare::PorConfig;
use inferix_core::protocol::JobEvent;
use inferix_core::renderer::Renderer;
use inferix_core::store::{MemoryTaskStore, TaskStore};
use inferix_node::{Client, ManagerBuilder, ManagerConfig, NodeError};
use inferix_storage::ObjectBlobStore;
use inferix_tests::{
    accepted_until_completed, assert_clean_delivery, first_rejection, numbered_worker,
    spawn_verifiers, FewerSamples,
};
use inferix_transport::InProcNetwork;
use tokio::sync::watch;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fewer_samples_are_caught_by_crop_challenges_and_punished() {
    let net = InProcNetwork::new();
    let store: Arc<dyn TaskStore> = Arc::new(MemoryTaskStore::new());
    let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::in_memory());
    let tracer: Arc<dyn Renderer> = Arc::new(inferix_gpu::PathTracer::new().unwrap());
    let config = ManagerConfig {
        quorum: 2,
        tick: Duration::from_millis(50),
        ..ManagerConfig::default()
    };
    let scratch = tempfile::tempdir().unwrap();
    let manager = ManagerBuilder::new(
        Arc::new(net.transport(NodeId(1))),
        store.clone(),
        blobs.clone(),
    )
    .config(config)
    .scratch_dir(scratch.path())
    .proof_of_render(PorConfig::new(ManagerSecret(b"por e2e".to_vec())))
    .watermarker(Arc::new(inferix_gpu::GltfWatermarker))
    .build()
    .start()
    .await
    .unwrap();
    let addr = manager.addr().to_string();
    let (stop, stopped) = watch::channel(false);
    let verifiers = spawn_verifiers(
        &net,
        &addr,
        2,
        Some(blobs.clone()),
        Some(tracer.clone()),
        scratch.path(),
        &stopped,
    );
    let cheater = numbered_worker(
        &net,
        100,
        &addr,
        Arc::new(FewerSamples {
            inner: tracer.clone(),
            divisor: 8,
        }),
    )
    .with_blob_store(blobs.clone());
    let cheater_id = cheater.id();
    let cheater_run = tokio::spawn(cheater.run(stopped.clone()));

    let client =
        Client::connect_with_blobs(&net.transport(NodeId(300)), &addr, None, blobs.clone())
            .await
            .unwrap();
    let scene = client
        .upload_scene_bytes(inferix_gpu::demo_scene_glb(), "demo.glb")
        .await
        .unwrap();
    let mut spec = JobSpec::new(scene, FrameRange::new(1, 4));
    spec.settings.width = 64;
    spec.settings.height = 48;
    spec.settings.samples = 16;
    spec.chunk_size = 2;
    let (job, _) = client.submit(&spec).await.unwrap();
    let mut events = client.watch(job).await.unwrap();

    // Only the cheater is connected: its first result must be rejected.
    let reasons = first_rejection(&mut events, cheater_id, Duration::from_secs(300)).await;
    assert!(
        reasons.iter().any(|r| r.contains("re-rendered crop")),
        "rejected for its crops: {reasons:?}"
    );
    assert!(
        !reasons.iter().any(|r| r.contains("watermark")),
        "its frames show the patches; only crops give it away: {reasons:?}"
    );
    // Slashed, hence refused from now on.
    let refused = tokio::time::timeout(Duration::from_secs(60), cheater_run)
        .await
        .expect("the cheater is disconnected")
        .unwrap();
    assert!(matches!(refused, Err(NodeError::Refused(_))), "{refused:?}");

    let honest = numbered_worker(&net, 101, &addr, tracer.clone()).with_blob_store(blobs.clone());
    let honest_id = honest.id();
    let honest_run = tokio::spawn(honest.run(stopped.clone()));
    let accepted_by =
        accepted_until_completed(&mut events, cheater_id, Duration::from_secs(300)).await;
    assert_eq!(accepted_by, vec![honest_id, honest_id]);

    // The customer's frames carry no marks: they equal a local render.
    let files = client
        .download(job, &scratch.path().join("out"))
        .await
        .unwrap();
    assert_eq!(files.len(), 4);
    let local_scene = scratch.path().join("demo.glb");
    std::fs::write(&local_scene, inferix_gpu::demo_scene_glb()).unwrap();
    assert_clean_delivery(&*store, job, &files, &*tracer, &local_scene, &spec.settings).await;

    let stored = store.job(job).await.unwrap().unwrap();
    assert_eq!(stored.blocklist, vec![cheater_id]);
    let txs = store.transactions().await.unwrap();
    let all: i64 = txs.iter().flat_map(|t| &t.postings).map(|p| p.amount).sum();
    assert_eq!(all, 0, "every transaction balances");
    assert_eq!(
        balance(&txs, &Account::Stake(cheater_id)),
        0,
        "stake slashed"
    );
    assert!(
        balance(&txs, &Account::Stake(honest_id)) > 0,
        "honest stake kept"
    );
    let slashed: i64 = txs
        .iter()
        .filter(|t| t.id.starts_with("slash:"))
        .flat_map(|t| &t.postings)
        .filter(|p| p.account == Account::PenaltyPool)
        .map(|p| p.amount)
        .sum();
    assert!(slashed > 0);
    let paid: i64 = (0..2u128)
        .map(|i| balance(&txs, &Account::Verifier(NodeId(200 + i))))
        .sum();
    // Verifiers earn rewards from the penalty pool, and the one whose
    // clean pixels were delivered a share of each task's payment.
    let for_clean_pixels: i64 = txs
        .iter()
        .filter(|t| t.id.starts_with("pay:"))
        .flat_map(|t| &t.postings)
        .filter(|p| matches!(p.account, Account::Verifier(_)))
        .map(|p| p.amount)
        .sum();
    assert!(for_clean_pixels > 0, "clean pixels are paid for");
    assert!(
        paid > for_clean_pixels,
        "verifiers are paid from the penalty pool"
    );
    assert_eq!(
        balance(&txs, &Account::PenaltyPool) + paid - for_clean_pixels,
        slashed
    );

    let _ = stop.send(true);
    let _ = honest_run.await;
    for v in verifiers {
        let _ = v.await;
    }
    manager.shutdown().await;
    let _ = scratch;
}

/// Waits for the claim's settlement among a job's events.
async fn settlement(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<JobEvent>,
    claim: u64,
) -> (bool, Vec<String>) {
    tokio::time::timeout(Duration::from_secs(300), async {
        loop {
            if let JobEvent::ClaimSettled {
                claim: c,
                upheld,
                evidence,
                ..
            } = events.recv().await.expect("event stream open")
            {
                if c == claim {
                    return (upheld, evidence);
                }
            }
        }
    })
    .await
    .expect("the claim is settled")
}

async fn render_job(client: &Client, frames: u32) -> inferix_core::ids::JobId {
    let scene = client
        .upload_scene_bytes(inferix_gpu::demo_scene_glb(), "demo.glb")
        .await
        .unwrap();
    let mut spec = JobSpec::new(scene, FrameRange::new(1, frames));
    spec.settings.width = 48;
    spec.settings.height = 32;
    spec.settings.samples = 16;
    spec.chunk_size = 2;
    let (job, _) = client.submit(&spec).await.unwrap();
    let status = tokio::time::timeout(Duration::from_secs(300), client.wait(job, |_| {}))
        .await
        .expect("job finishes")
        .unwrap();
    assert_eq!(status.job.state, inferix_core::job::JobState::Completed);
    job
}

/// Without crop challenges a lazy worker's frames pass every check a frame
/// alone allows and are accepted; the user's claim has them re-rendered,
/// which upholds it: the user is refunded from the worker's earnings and
/// the worker slashed. A claim on honest frames is rejected, and claims on
/// unknown jobs or frames are refused with a reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_are_settled_by_re_rendering() {
    let net = InProcNetwork::new();
    let store: Arc<dyn TaskStore> = Arc::new(MemoryTaskStore::new());
    let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::in_memory());
    let tracer: Arc<dyn Renderer> = Arc::new(inferix_gpu::PathTracer::new().unwrap());
    let scratch = tempfile::tempdir().unwrap();
    let mut por = PorConfig::new(ManagerSecret(b"claims".to_vec()));
    por.challenges_per_task = 0;
    let manager = ManagerBuilder::new(
        Arc::new(net.transport(NodeId(1))),
        store.clone(),
        blobs.clone(),
    )
    .config(ManagerConfig {
        quorum: 1,
        tick: Duration::from_millis(50),
        ..ManagerConfig::default()
    })
    .scratch_dir(scratch.path())
    .proof_of_render(por)
    .build()
    .start()
    .await
    .unwrap();
    let addr = manager.addr().to_string();
    let (stop, stopped) = watch::channel(false);
    let verifiers = spawn_verifiers(
        &net,
        &addr,
        1,
        Some(blobs.clone()),
        Some(tracer.clone()),
        scratch.path(),
        &stopped,
    );
    let lazy = numbered_worker(
        &net,
        110,
        &addr,
        Arc::new(FewerSamples {
            inner: tracer.clone(),
            divisor: 8,
        }),
    )
    .with_blob_store(blobs.clone());
    let lazy_id = lazy.id();
    let lazy_run = tokio::spawn(lazy.run(stopped.clone()));
    let client =
        Client::connect_with_blobs(&net.transport(NodeId(300)), &addr, None, blobs.clone())
            .await
            .unwrap();

    let bad_job = render_job(&client, 2).await;
    let earned_before = balance(
        &store.transactions().await.unwrap(),
        &Account::Worker(lazy_id),
    );
    assert!(earned_before > 0, "the lazy worker was paid at first");
    let mut events = client.watch(bad_job).await.unwrap();
    let claim = client.claim(bad_job, vec![2], "grainy").await.unwrap();
    let (upheld, evidence) = settlement(&mut events, claim).await;
    assert!(upheld, "{evidence:?}");
    assert!(
        evidence.iter().any(|e| e.contains("re-rendered crop")),
        "{evidence:?}"
    );
    let txs = store.transactions().await.unwrap();
    let record = txs
        .iter()
        .find(|t| t.id.starts_with("claim:") && t.memo.contains("grainy"))
        .expect("the claim is recorded");
    assert!(record.memo.contains("upheld"), "{}", record.memo);
    let bond = txs
        .iter()
        .find(|t| t.id.starts_with("claim-bond:"))
        .expect("the claim put up a bond");
    assert!(bond.postings.iter().any(|p| p.amount > 0));
    assert_eq!(
        balance(&txs, &Account::ClaimBond(bad_job)),
        0,
        "an upheld claim's bond is returned"
    );
    // A frame is claimed once: the same claim again refunds nothing more.
    let again = client.claim(bad_job, vec![2], "grainy").await.unwrap_err();
    assert!(again.to_string().contains("claimed already"), "{again}");
    let stored = store.tasks_of_job(bad_job).await.unwrap();
    let claimed: Vec<_> = stored.iter().flat_map(|t| &t.claims).collect();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].upheld, Some(true));
    assert!(
        balance(&txs, &Account::Worker(lazy_id)) < earned_before,
        "refund taken back"
    );
    assert_eq!(balance(&txs, &Account::Stake(lazy_id)), 0, "stake slashed");
    let refused = tokio::time::timeout(Duration::from_secs(60), lazy_run)
        .await
        .expect("the lazy worker is disconnected")
        .unwrap();
    assert!(matches!(refused, Err(NodeError::Refused(_))), "{refused:?}");

    let honest = numbered_worker(&net, 111, &addr, tracer.clone()).with_blob_store(blobs.clone());
    let honest_run = tokio::spawn(honest.run(stopped.clone()));
    let good_job = render_job(&client, 2).await;
    let mut events = client.watch(good_job).await.unwrap();
    let claim = client
        .claim(good_job, vec![1, 2], "looks wrong")
        .await
        .unwrap();
    let (upheld, evidence) = settlement(&mut events, claim).await;
    assert!(
        !upheld,
        "honest frames are upheld against a claim: {evidence:?}"
    );
    // The dismissed claim's bond went to the penalty pool.
    let txs = store.transactions().await.unwrap();
    let forfeit = txs
        .iter()
        .find(|t| t.id.starts_with("claim-bond-forfeit:") && t.memo.contains("looks wrong"))
        .expect("a dismissed claim forfeits its bond");
    assert!(forfeit
        .postings
        .iter()
        .any(|p| p.account == Account::PenaltyPool && p.amount > 0));
    assert_eq!(balance(&txs, &Account::ClaimBond(good_job)), 0);

    // Bad claims are refused with a reason.
    let unknown = client
        .claim(inferix_core::ids::JobId(12345), vec![1], "?")
        .await
        .unwrap_err();
    assert!(unknown.to_string().contains("not found"), "{unknown}");
    let outside = client.claim(good_job, vec![99], "?").await.unwrap_err();
    assert!(outside.to_string().contains("not part of"), "{outside}");
    let empty = client.claim(good_job, vec![], "?").await.unwrap_err();
    assert!(empty.to_string().contains("at least one frame"), "{empty}");

    let _ = stop.send(true);
    let _ = honest_run.await;
    for v in verifiers {
        let _ = v.await;
    }
    manager.shutdown().await;
}
