//! The rules for nodes run by accounts: admission, stake, standing, and
//! how hard their results are checked.

use inferix_core::account::{new_key, AccountRecord, NodeStanding};
use inferix_core::ids::NodeId;
use inferix_core::protocol::{ErrorCode, Hello, Role};
use inferix_manager::economy::EconomyConfig;
use inferix_manager::operators::{
    after_result, check_level, check_operator, check_operator_stake, node_key, stake_ib,
    PROBATION_TASKS,
};
use rand::SeedableRng;

fn economy() -> EconomyConfig {
    EconomyConfig {
        price_per_ibm: 100,
        stake_epoch_minutes: 10.0,
        grant_stake: true,
        verifier_reward: 0,
    }
}

fn account(verifier: bool) -> (AccountRecord, String) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let mut a = AccountRecord::new("farm", false, 1).unwrap();
    let (key, record) = new_key(1, &mut rng);
    a.keys.push(record);
    a.verifier = verifier;
    (a, key)
}

fn hello(role: Role, token: Option<&str>) -> Hello {
    Hello {
        role,
        node: NodeId(5),
        ib: 2.0,
        tags: vec![],
        device_class: "x".into(),
        token: token.map(String::from),
        formats: vec![],
    }
}

#[test]
fn only_worker_and_verifier_tokens_with_the_key_prefix_are_account_keys() {
    let (_, key) = account(false);
    let id = inferix_core::account::key_id(&key).unwrap();
    assert_eq!(node_key(&hello(Role::Worker, Some(&key))), Some(id));
    assert_eq!(node_key(&hello(Role::Verifier, Some(&key))), Some(id));
    // Clients authenticate elsewhere; the shared node token is no key.
    assert_eq!(node_key(&hello(Role::Client, Some(&key))), None);
    assert_eq!(node_key(&hello(Role::Worker, Some("shared-secret"))), None);
    assert_eq!(node_key(&hello(Role::Worker, None)), None);
    // A malformed key is still looked up as one (and found by nobody).
    assert_eq!(
        node_key(&hello(Role::Worker, Some("ifx_nonsense"))),
        Some("ifx_nonsense")
    );
}

#[test]
fn unknown_keys_banned_accounts_and_unlisted_verifiers_are_refused() {
    let (a, key) = account(false);
    let fine = NodeStanding::default();
    assert!(check_operator(Some(&a), &key, Role::Worker, &fine).is_ok());
    let wrong = check_operator(Some(&a), "ifx_0000000000000000_00", Role::Worker, &fine);
    assert_eq!(wrong.unwrap_err().code, ErrorCode::Unauthorized);
    assert!(check_operator(None, &key, Role::Worker, &fine).is_err());

    let verifier = check_operator(Some(&a), &key, Role::Verifier, &fine).unwrap_err();
    assert!(verifier.message.contains("may not run verifiers"));
    let (listed, key) = account(true);
    assert!(check_operator(Some(&listed), &key, Role::Verifier, &fine).is_ok());

    let banned = NodeStanding {
        banned: Some("passed a known-bad result".into()),
        ..NodeStanding::default()
    };
    for role in [Role::Worker, Role::Verifier] {
        let r = check_operator(Some(&listed), &key, role, &banned).unwrap_err();
        assert!(r.message.contains("banned"), "{}", r.message);
    }
}

#[test]
fn an_accounts_stake_covers_every_connected_node() {
    let cfg = economy();
    // S = 2 · 10 · IB · 100 = 2,000 per IB.
    assert_eq!(stake_ib(Role::Worker, 3.0), Some(3.0));
    assert_eq!(stake_ib(Role::Verifier, 3.0), Some(1.0));
    assert_eq!(stake_ib(Role::Client, 3.0), None);
    assert!(check_operator_stake(&cfg, "farm", &[], 1.0, 2_000).is_ok());
    assert!(check_operator_stake(&cfg, "farm", &[1.0], 1.0, 4_000).is_ok());
    let short = check_operator_stake(&cfg, "farm", &[1.0, 2.0], 1.0, 7_999).unwrap_err();
    assert!(short.message.contains("need 8000"), "{}", short.message);
    assert!(short.message.contains("--stake"), "{}", short.message);
    assert!(check_operator_stake(&cfg, "farm", &[], 1.0, 0).is_err());
}

#[test]
fn results_move_an_accounts_history_and_rejections_its_reputation() {
    let mut s = NodeStanding::default();
    after_result(&mut s, true, 0.5);
    assert_eq!((s.accepted_tasks, s.rejected_tasks), (1, 0));
    assert_eq!(s.worker_reputation, 1.0);
    after_result(&mut s, false, 0.5);
    after_result(&mut s, false, 0.5);
    assert_eq!(s.rejected_tasks, 2);
    assert_eq!(s.worker_reputation, 0.25);
    s.accepted_tasks = u64::MAX;
    after_result(&mut s, true, 0.5);
    assert_eq!(s.accepted_tasks, u64::MAX, "saturates");
}

#[test]
fn new_and_distrusted_accounts_are_checked_harder() {
    let base = 8;
    let own = check_level(base, None);
    assert_eq!(own.crops, 8);
    let new = check_level(base, Some(&NodeStanding::default()));
    assert_eq!(new.crops, 16);
    assert!(new.audit_chance > own.audit_chance);
    let proven = NodeStanding {
        accepted_tasks: PROBATION_TASKS,
        ..NodeStanding::default()
    };
    let trusted = check_level(base, Some(&proven));
    assert_eq!(trusted.crops, 8);
    assert!(
        trusted.audit_chance > 0.0,
        "even trusted accounts are audited"
    );
    let fallen = NodeStanding {
        accepted_tasks: 10_000,
        worker_reputation: 0.25,
        ..NodeStanding::default()
    };
    let fallen = check_level(base, Some(&fallen));
    assert_eq!(fallen.crops, 32);
    assert!(fallen.audit_chance >= new.audit_chance);
    // Checks off stay off.
    assert_eq!(check_level(0, Some(&NodeStanding::default())).crops, 0);
}

#[test]
fn accounts_on_probation_get_twice_the_verifiers() {
    use inferix_manager::operators::{round_quorum, PROBATION_TASKS};
    let mut s = inferix_core::account::NodeStanding::default();
    assert_eq!(round_quorum(2, Some(&s)), 4, "a new account");
    s.accepted_tasks = PROBATION_TASKS;
    assert_eq!(round_quorum(2, Some(&s)), 2, "a proven account");
    s.worker_reputation = 0.5;
    assert_eq!(
        round_quorum(2, Some(&s)),
        4,
        "a proven account that was caught"
    );
    assert_eq!(round_quorum(2, None), 2, "the operator's own nodes");
    s.accepted_tasks = 0;
    assert_eq!(
        round_quorum(1, Some(&s)),
        1,
        "a network that trusts one verifier"
    );
}
