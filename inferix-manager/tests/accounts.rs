//! Accounts: which account a client is, what it may see, what it may submit.

use inferix_core::account::{new_key, AccountRecord, Quotas};
use inferix_core::job::{FrameRange, Job, JobSpec, JobState, SceneRef};
use inferix_core::protocol::ErrorCode;
use inferix_core::renderer::SceneFormat;
use inferix_core::ContentHash;
use inferix_manager::accounts::{
    check_key, check_submission, client_lookup, may_see, not_found, ClientLookup, Submission,
};
use rand::SeedableRng;

fn account(name: &str, operator: bool) -> (AccountRecord, String) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(name.len() as u64);
    let mut a = AccountRecord::new(name, operator, 1).unwrap();
    let (key, record) = new_key(1, &mut rng);
    a.keys.push(record);
    (a, key)
}

fn job_of(owner: Option<&str>) -> Job {
    let scene = SceneRef {
        blob: ContentHash::of(b"s"),
        format: SceneFormat::Gltf,
        file_name: "s.glb".into(),
    };
    Job {
        id: inferix_core::ids::JobId(7),
        spec: JobSpec::new(scene, FrameRange::new(1, 4)),
        state: JobState::Active,
        created_ms: 1,
        quoted_price: 10,
        waiting_reason: None,
        blocklist: vec![],
        history: vec![],
        warnings: vec![],
        lease_copies_removed: false,
        owner: owner.map(Into::into),
        outputs: Vec::new(),
    }
}

#[test]
fn a_key_names_its_account_and_no_key_is_the_guest_or_nobody() {
    let (_, key) = account("alice", false);
    let id = inferix_core::account::key_id(&key).unwrap().to_string();
    assert_eq!(client_lookup(Some(&key), None), Ok(ClientLookup::Key(id)));
    assert_eq!(
        client_lookup(None, Some("guest")),
        Ok(ClientLookup::Guest("guest".into()))
    );
    for (token, guest) in [(None, None), (Some("shared-secret"), Some("guest"))] {
        let r = client_lookup(token, guest).unwrap_err();
        assert_eq!(r.code, ErrorCode::Unauthorized, "{token:?}");
    }
}

#[test]
fn unknown_wrong_and_revoked_keys_are_refused_alike() {
    let (mut alice, key) = account("alice", false);
    let (_, other) = account("bob", false);
    assert!(check_key(Some(&alice), &key).is_ok());
    let wrong = check_key(Some(&alice), &other).unwrap_err();
    let unknown = check_key(None, &key).unwrap_err();
    let id = alice.keys[0].id.clone();
    alice.revoke(&id, 2);
    let revoked = check_key(Some(&alice), &key).unwrap_err();
    assert_eq!(wrong, unknown);
    assert_eq!(
        unknown, revoked,
        "nothing tells a revoked key from a wrong one"
    );
}

#[test]
fn a_job_is_its_owners_and_the_operators() {
    let (alice, _) = account("alice", false);
    let (bob, _) = account("bob", false);
    let (root, _) = account("root", true);
    let job = job_of(Some("alice"));
    assert!(may_see(&alice, &job));
    assert!(!may_see(&bob, &job));
    assert!(may_see(&root, &job));
    let orphan = job_of(None);
    assert!(!may_see(&alice, &orphan) && may_see(&root, &orphan));
    // Not found, like a job that does not exist.
    assert_eq!(not_found(job.id).0, ErrorCode::NotFound);
}

#[test]
fn a_submission_needs_funds_and_room_in_the_quotas() {
    let (mut a, _) = account("alice", false);
    a.quotas = Quotas {
        max_active_jobs: 2,
        max_frames_per_job: 100,
        max_scene_bytes: 1_000,
    };
    let ok = Submission {
        price: 500,
        frames: 100,
        balance: 500,
        active_jobs: 1,
        scene_bytes: 1_000,
    };
    assert!(check_submission(&a, ok).is_ok());
    let code = |s| check_submission(&a, s).unwrap_err().0;
    assert_eq!(
        code(Submission { balance: 499, ..ok }),
        ErrorCode::PaymentRequired
    );
    assert_eq!(
        code(Submission {
            balance: -10,
            price: 0,
            ..ok
        }),
        ErrorCode::PaymentRequired,
        "a debt is paid before anything else"
    );
    assert_eq!(
        code(Submission { frames: 101, ..ok }),
        ErrorCode::LimitExceeded
    );
    assert_eq!(
        code(Submission {
            active_jobs: 2,
            ..ok
        }),
        ErrorCode::LimitExceeded
    );
    assert_eq!(
        code(Submission {
            scene_bytes: 1_001,
            ..ok
        }),
        ErrorCode::LimitExceeded
    );
    let e = check_submission(&a, Submission { frames: 101, ..ok }).unwrap_err();
    assert!(e.1.contains("100"), "the refusal names the limit: {}", e.1);
    a.credit_limit = 1_000;
    assert!(check_submission(
        &a,
        Submission {
            balance: -400,
            ..ok
        }
    )
    .is_ok());
}
