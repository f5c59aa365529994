//! Ledger rules: stakes, payments, slashes, rewards, refunds.

use inferix_core::ids::{JobId, NodeId, TaskId};
use inferix_core::ledger::{Account, Transaction};
use inferix_core::task::TaskClaim;
use inferix_manager::economy::{
    claim_bond, claim_settlement, escrow_refund, frames_share, minimum_stake, rewards_in_order,
    slash, stake_decision, stake_grant_id, task_payment, verifier_rewards, verifier_slash,
    CleanDelivery, EconomyConfig, StakeDecision, StakeHolder, STAKE_GRANTOR,
};

fn cfg() -> EconomyConfig {
    EconomyConfig {
        price_per_ibm: 100,
        stake_epoch_minutes: 60.0,
        grant_stake: true,
        verifier_reward: 1_000,
    }
}

/// (account, amount) of every posting, checking the transaction balances.
fn postings(tx: &Transaction) -> Vec<(Account, i64)> {
    assert_eq!(tx.postings.iter().map(|p| p.amount).sum::<i64>(), 0);
    tx.postings
        .iter()
        .map(|p| (p.account.clone(), p.amount))
        .collect()
}

const W: NodeId = NodeId(4);

#[test]
fn the_minimum_stake_is_two_epochs_of_work_at_the_workers_index() {
    // 2 · 60 min · IB 1.5 · 100 = 18,000.
    assert_eq!(minimum_stake(&cfg(), 1.5), 18_000);
    let off = EconomyConfig {
        stake_epoch_minutes: 0.0,
        ..cfg()
    };
    assert_eq!(minimum_stake(&off, 1.5), 0);
    assert_eq!(
        stake_decision(&off, W, 1.5, 0, false, 1),
        StakeDecision::Enough
    );
}

#[test]
fn a_short_stake_is_granted_once_then_refused() {
    assert_eq!(
        stake_decision(&cfg(), W, 1.0, 12_000, false, 1),
        StakeDecision::Enough
    );
    let StakeDecision::Grant(tx) = stake_decision(&cfg(), W, 1.0, 2_000, false, 1) else {
        panic!("the operator grants the missing stake");
    };
    assert_eq!(tx.id, stake_grant_id(W));
    assert_eq!(
        postings(&tx),
        vec![
            (Account::User(STAKE_GRANTOR.into()), -10_000),
            (Account::Stake(W), 10_000)
        ]
    );
    let StakeDecision::Refuse(why) = stake_decision(&cfg(), W, 1.0, 2_000, true, 1) else {
        panic!("a second grant is refused");
    };
    assert!(why.contains("12000"), "{why}");
    let no_grants = EconomyConfig {
        grant_stake: false,
        ..cfg()
    };
    assert!(matches!(
        stake_decision(&no_grants, W, 1.0, 0, false, 1),
        StakeDecision::Refuse(_)
    ));
}

#[test]
fn a_task_is_paid_its_share_of_the_quote_once() {
    let task = TaskId::new(JobId(9), 2);
    assert_eq!(frames_share(1_000, 3, 7), 428, "rounded down");
    assert_eq!(frames_share(1_000, 3, 0), 3_000, "no division by zero");
    let tx = task_payment(task, 3, 1_000, 7, W, None, 5);
    assert_eq!(tx.id, format!("pay:{task}"), "one payment id per task");
    assert_eq!(
        postings(&tx),
        vec![(Account::Job(JobId(9)), -428), (Account::Worker(W), 428)]
    );
}

#[test]
fn the_verifier_that_rendered_clean_pixels_is_paid_their_share() {
    let task = TaskId::new(JobId(9), 2);
    let v = NodeId(77);
    let delivery = |clean_pixels, frame_pixels| {
        Some(CleanDelivery {
            verifier: v,
            clean_pixels,
            frame_pixels,
        })
    };
    // 1 % of the pixels: 1 % of the payment, out of the worker's.
    let tx = task_payment(task, 3, 1_000_000, 3, W, delivery(300, 30_000), 5);
    assert_eq!(
        postings(&tx),
        vec![
            (Account::Job(JobId(9)), -1_000_000),
            (Account::Worker(W), 990_000),
            (Account::Verifier(v), 10_000)
        ]
    );
    assert!(tx.check_balanced().is_ok());
    // A claim of more pixels than the frames have is capped at all of them.
    let tx = task_payment(task, 3, 1_000, 3, W, delivery(u64::MAX, 10), 5);
    assert!(tx.check_balanced().is_ok());
    assert_eq!(postings(&tx)[1], (Account::Worker(W), 0));
    // A share too small to pay leaves the payment as it was.
    let tx = task_payment(task, 3, 10, 3, W, delivery(1, 30_000), 5);
    assert_eq!(postings(&tx).len(), 2);
}

#[test]
fn a_slash_takes_the_whole_stake_and_nothing_without_one() {
    let task = TaskId::new(JobId(9), 0);
    let tx = slash(task, W, &StakeHolder::Node(W), 700, 5).unwrap();
    assert_eq!(
        postings(&tx),
        vec![(Account::Stake(W), -700), (Account::PenaltyPool, 700)]
    );
    assert!(slash(task, W, &StakeHolder::Node(W), 0, 5).is_none());
}

#[test]
fn verifiers_are_rewarded_while_the_pool_lasts() {
    let task = TaskId::new(JobId(9), 0);
    let vs = [NodeId(1), NodeId(2), NodeId(3)];
    let txs = verifier_rewards(&cfg(), task, &vs, 1_500, 5);
    assert_eq!(txs.len(), 2, "the pool runs dry at the second verifier");
    assert_eq!(postings(&txs[0])[1], (Account::Verifier(NodeId(1)), 1_000));
    assert_eq!(postings(&txs[1])[1], (Account::Verifier(NodeId(2)), 500));
    assert!(verifier_rewards(&cfg(), task, &vs, 0, 5).is_empty());
    let unpaid = EconomyConfig {
        verifier_reward: 0,
        ..cfg()
    };
    assert!(verifier_rewards(&unpaid, task, &vs, 10_000, 5).is_empty());
}

#[test]
fn a_batch_of_verdicts_is_paid_from_one_reading_of_the_pool() {
    let (a, b, c) = (
        TaskId::new(JobId(9), 0),
        TaskId::new(JobId(9), 1),
        TaskId::new(JobId(9), 2),
    );
    let (first, second) = ([NodeId(1)], [NodeId(2), NodeId(3)]);
    let rounds = [(a, &first[..]), (b, &second[..]), (c, &first[..])];
    let txs = rewards_in_order(&cfg(), rounds, 2_500, 5);
    let paid: Vec<_> = txs.iter().map(|tx| postings(tx)[1].clone()).collect();
    assert_eq!(
        paid,
        vec![
            (Account::Verifier(NodeId(1)), 1_000),
            (Account::Verifier(NodeId(2)), 1_000),
            (Account::Verifier(NodeId(3)), 500),
        ],
        "later rounds get what the earlier ones left, and nothing once it is gone"
    );
    assert!(txs.iter().all(|tx| !tx.id.contains(&c.to_string())));
    assert!(rewards_in_order(&cfg(), rounds, 0, 5).is_empty());
}

#[test]
fn what_is_left_in_escrow_goes_back_to_the_payer() {
    let payer = Account::User("alice".into());
    let tx = escrow_refund(JobId(9), 3, payer.clone(), "done", 5).unwrap();
    assert_eq!(tx.id, format!("refund:{}", JobId(9)));
    assert_eq!(
        postings(&tx),
        vec![(Account::Job(JobId(9)), -3), (payer.clone(), 3)]
    );
    assert!(escrow_refund(JobId(9), 0, payer, "done", 5).is_none());
}

fn claim(bond: i64) -> TaskClaim {
    TaskClaim {
        frames: vec![3, 4],
        reason: "grainy".into(),
        filed_ms: 5,
        bond,
        payer: Account::User("ana".into()),
        upheld: None,
    }
}

#[test]
fn a_claim_bond_is_held_then_returned_if_upheld_and_forfeited_if_dismissed() {
    let task = TaskId::new(JobId(9), 1);
    let c = claim(700);
    let bond = claim_bond(task, &c, 5);
    assert_eq!(
        postings(&bond),
        vec![
            (Account::User("ana".into()), -700),
            (Account::ClaimBond(JobId(9)), 700)
        ]
    );
    let payer = Account::User("studio".into());
    let upheld = claim_settlement(task, &c, W, payer.clone(), 900, true, "crop differs", 6);
    let moves: Vec<_> = upheld.iter().flat_map(postings).collect();
    assert!(moves.contains(&(Account::Worker(W), -900)), "{moves:?}");
    assert!(moves.contains(&(payer.clone(), 900)));
    assert!(moves.contains(&(Account::ClaimBond(JobId(9)), -700)));
    assert!(moves.contains(&(Account::User("ana".into()), 700)));
    assert!(upheld.iter().all(|t| t.memo.contains("crop differs")));
    let dismissed = claim_settlement(task, &c, W, payer, 0, false, "pixels match", 6);
    assert_eq!(dismissed.len(), 1);
    assert_eq!(
        postings(&dismissed[0]),
        vec![
            (Account::ClaimBond(JobId(9)), -700),
            (Account::PenaltyPool, 700)
        ]
    );
    // Every id follows the claimed frames: written once however often a
    // verdict arrives, and distinct from another task's claim.
    let other = claim_bond(TaskId::new(JobId(9), 2), &c, 5);
    assert_ne!(bond.id, other.id);
    assert_eq!(bond.id, claim_bond(task, &c, 99).id);
}

#[test]
fn a_slashed_verifier_loses_its_whole_stake_to_the_penalty_pool() {
    let v = NodeId(8);
    let tx = verifier_slash(
        v,
        &StakeHolder::Node(v),
        12_000,
        "job-1/3",
        "its vote lost",
        5,
    )
    .unwrap();
    assert_eq!(
        postings(&tx),
        vec![(Account::Stake(v), -12_000), (Account::PenaltyPool, 12_000)]
    );
    assert!(tx.memo.contains("its vote lost"));
    assert_ne!(
        tx.id,
        verifier_slash(
            v,
            &StakeHolder::Node(v),
            12_000,
            "job-1/4",
            "its vote lost",
            5
        )
        .unwrap()
        .id,
        "one slash per task"
    );
    assert!(verifier_slash(v, &StakeHolder::Node(v), 0, "job-1/3", "its vote lost", 5).is_none());
}

/// The cheating economics at the default stake, printed as a table: for
/// every cheat fraction the expected loss exceeds the expected gain, with
/// 8 crops per task (the default), and with a single crop on any task
/// length.
#[test]
fn at_the_default_stake_no_cheat_fraction_pays() {
    use inferix_core::por::prepare::DEFAULT_CHALLENGES_PER_TASK;
    use inferix_manager::economy::cheat_odds;
    let cfg = EconomyConfig {
        price_per_ibm: 100_000,
        stake_epoch_minutes: 60.0,
        grant_stake: true,
        verifier_reward: 1_000,
    };
    println!(
        "| cheat fraction | detection per task | expected gain | expected loss | loss / gain |"
    );
    println!("|---:|---:|---:|---:|---:|");
    for minutes in [10.0, 100.0] {
        for cheat in [0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0] {
            let o = cheat_odds(&cfg, 1.0, minutes, DEFAULT_CHALLENGES_PER_TASK, cheat, 0.9);
            println!(
                "| {:.1} % of a {minutes} min task | {:.1} % | {:.0} | {:.0} | {:.1} |",
                cheat * 100.0,
                o.detection * 100.0,
                o.expected_gain,
                o.expected_loss,
                o.expected_loss / o.expected_gain
            );
            assert!(
                o.expected_loss > o.expected_gain,
                "cheating {cheat} of a {minutes}-minute task pays: {o:?}"
            );
        }
    }
    // Nor on any task length: a caught task is not paid, and with a crop
    // on every frame the chance of being caught is at least the cheat
    // fraction, so the expected loss is at least the cheated share of the
    // payment, more than the work it saved, before the stake even counts.
    for minutes in [1.0, 1_000.0, 100_000.0] {
        for cheat in (1..=1000).map(|i| f64::from(i) / 1000.0) {
            let o = cheat_odds(&cfg, 1.0, minutes, 1, cheat, 1.0);
            assert!(o.expected_loss > o.expected_gain, "{minutes} min: {o:?}");
        }
    }
}

#[test]
fn a_node_run_by_an_account_is_slashed_from_the_accounts_stake() {
    let own = StakeHolder::of(W, None);
    let farm = StakeHolder::of(W, Some("farm"));
    assert_eq!(own.account(), Account::Stake(W));
    assert_eq!(farm.account(), Account::OperatorStake("farm".into()));
    let task = TaskId::new(JobId(2), 3);
    let tx = slash(task, W, &farm, 700, 5).unwrap();
    assert_eq!(
        tx.postings[0].account,
        Account::OperatorStake("farm".into())
    );
    assert_eq!(tx.postings[0].amount, -700);
}
