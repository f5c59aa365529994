//! Conformance cases of accounts and node standings.

use super::*;
/// Accounts are stored whole (keys, quotas, credit), a taken name is
/// refused without changing the account, an unknown one cannot be updated,
/// and an account is found by the public id of any of its keys.
pub async fn accounts_round_trip_and_are_found_by_key(store: impl TaskStore) {
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    assert!(store.accounts().await.unwrap().is_empty());
    let mut alice = AccountRecord::new("alice", false, 10).unwrap();
    let (key, record) = new_key(10, &mut rng);
    alice.keys.push(record);
    alice.quotas = Quotas {
        max_active_jobs: 3,
        max_frames_per_job: 40,
        max_scene_bytes: 1 << 20,
    };
    alice.credit_limit = u64::MAX;
    store.insert_account(&alice).await.unwrap();
    let root = AccountRecord::new("root.ops", true, 11).unwrap();
    store.insert_account(&root).await.unwrap();

    let impostor = AccountRecord::new("alice", true, 12).unwrap();
    assert!(
        matches!(
            store.insert_account(&impostor).await,
            Err(StoreError::AlreadyExists { .. })
        ),
        "a taken name is refused"
    );
    assert_eq!(store.account("alice").await.unwrap().as_ref(), Some(&alice));
    assert!(store.account("nobody").await.unwrap().is_none());
    let names: Vec<String> = store
        .accounts()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(names, ["alice", "root.ops"], "accounts come by name");

    let id = crate::account::key_id(&key).unwrap();
    let found = store.account_with_key(id).await.unwrap().unwrap();
    assert_eq!(found.name, "alice");
    assert!(found.accepts(&key));
    assert!(store
        .account_with_key("0123456789abcdef")
        .await
        .unwrap()
        .is_none());

    alice.revoke(id, 20);
    store.update_account(&alice).await.unwrap();
    let found = store.account_with_key(id).await.unwrap().unwrap();
    assert!(!found.accepts(&key), "the revocation was stored");
    let ghost = AccountRecord::new("ghost", false, 1).unwrap();
    assert!(matches!(
        store.update_account(&ghost).await,
        Err(StoreError::NotFound { .. })
    ));
}

/// An account's standing is stored whole, replaced by the next write, and
/// kept apart from its record: an operator's edit of the account does not
/// undo it, and its write does not undo the operator's.
pub async fn standings_are_kept_apart_from_accounts(store: impl TaskStore) {
    use crate::account::NodeStanding;
    assert_eq!(store.standing("farm").await.unwrap(), None);
    let mut farm = AccountRecord::new("farm", false, 1).unwrap();
    store.insert_account(&farm).await.unwrap();
    let mut standing = NodeStanding {
        worker_reputation: 0.25,
        verifier_reputation: 0.5,
        accepted_tasks: 12,
        rejected_tasks: 3,
        banned: Some("passed a known-bad result \"quoted\" ✓".into()),
        version: 0,
    };
    store.put_standing("farm", &mut standing).await.unwrap();
    assert_eq!(standing.version, 1, "a write bumps the version");
    farm.verifier = true;
    store.update_account(&farm).await.unwrap();
    assert_eq!(
        store.standing("farm").await.unwrap().as_ref(),
        Some(&standing)
    );
    standing.banned = None;
    standing.accepted_tasks = u64::MAX;
    store.put_standing("farm", &mut standing).await.unwrap();
    assert_eq!(store.standing("farm").await.unwrap(), Some(standing));
    assert!(store.account("farm").await.unwrap().unwrap().verifier);
    assert_eq!(store.standing("other").await.unwrap(), None);
}

/// Of two writers that read the same standing, the second is refused
/// and nothing of its write lands: a manager's reputation update cannot
/// undo a ban another manager recorded meanwhile.
pub async fn standing_writes_are_compare_and_set(store: impl TaskStore) {
    use crate::account::NodeStanding;
    let conflict = |r: Result<(), StoreError>| match r {
        Err(StoreError::StandingConflict { account, .. }) => assert_eq!(account, "farm"),
        other => panic!("expected a standing conflict, got {other:?}"),
    };
    let mut first = NodeStanding::default();
    store.put_standing("farm", &mut first).await.unwrap();
    // Two managers read version 1.
    let mut banning = store.standing("farm").await.unwrap().unwrap();
    let mut judging = banning.clone();
    banning.banned = Some("passed a known-bad result".into());
    store.put_standing("farm", &mut banning).await.unwrap();
    judging.accepted_tasks += 1;
    conflict(store.put_standing("farm", &mut judging).await);
    assert_eq!(judging.version, 1, "a refused write keeps its version");
    // Read again, the judgement lands and keeps the ban.
    let mut judging = store.standing("farm").await.unwrap().unwrap();
    judging.accepted_tasks += 1;
    store.put_standing("farm", &mut judging).await.unwrap();
    let stored = store.standing("farm").await.unwrap().unwrap();
    assert_eq!(stored.banned.as_deref(), Some("passed a known-bad result"));
    assert_eq!((stored.accepted_tasks, stored.version), (1, 3));
    // A fresh standing where one is stored, and a later version where none
    // is, are refused too.
    conflict(
        store
            .put_standing("farm", &mut NodeStanding::default())
            .await,
    );
    let mut ahead = NodeStanding {
        version: 5,
        ..NodeStanding::default()
    };
    match store.put_standing("other", &mut ahead).await {
        Err(StoreError::StandingConflict { account, expected }) => {
            assert_eq!((account.as_str(), expected), ("other", 5));
        }
        other => panic!("expected a standing conflict, got {other:?}"),
    }
    assert_eq!(store.standing("other").await.unwrap(), None);
}
