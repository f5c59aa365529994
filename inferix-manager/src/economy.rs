//! The ledger rules: stakes, payments, slashing, verifier rewards, escrow
//! refunds and claim settlements, as the transactions they write.
//!
//! Every function here only decides; the driver reads the balances it
//! needs and appends what comes back. Transaction ids are what make the
//! ledger idempotent (the store refuses an id twice), so they are part of
//! the rules: one payment per task, one grant per worker, one slash per
//! task and worker.

use inferix_core::ids::{JobId, NodeId, TaskId};
use inferix_core::ledger::{balance, Account, Posting, Transaction};
use inferix_core::task::{Task, TaskClaim};

/// Verifiers stake as much as a worker of this index: a verifier's vote
/// decides payments as a worker's result does, so joining as one is not
/// free either.
pub const VERIFIER_STAKE_IB: f64 = 1.0;

/// Ledger account of the operator that posts workers' minimum stakes.
pub const STAKE_GRANTOR: &str = "operator";

/// Prices and stakes.
#[derive(Debug, Clone, PartialEq)]
pub struct EconomyConfig {
    /// Micro-credits per IB-minute.
    pub price_per_ibm: u64,
    /// Epoch E in minutes of the stake rule S = 2 · E · IB · P; `0`
    /// disables stakes.
    pub stake_epoch_minutes: f64,
    /// Whether the operator posts the minimum stake of the workers it
    /// admits (once per worker).
    pub grant_stake: bool,
    /// Micro-credits paid from the penalty pool to each verifier whose
    /// verdict agrees with the outcome, while the pool has funds.
    pub verifier_reward: i64,
}

/// Id of the operator's stake grant to `worker`: at most one per worker.
pub fn stake_grant_id(worker: NodeId) -> String {
    format!("stake-grant:{worker}")
}

/// The minimum stake S = 2 · E · IB · P of a worker of index `ib`.
pub fn minimum_stake(cfg: &EconomyConfig, ib: f64) -> i64 {
    (2.0 * cfg.stake_epoch_minutes * ib * cfg.price_per_ibm as f64).ceil() as i64
}

/// What to do about a worker's stake when it says hello.
#[derive(Debug, Clone, PartialEq)]
pub enum StakeDecision {
    /// It holds enough (or stakes are off).
    Enough,
    /// The operator posts the missing stake with this transaction.
    Grant(Transaction),
    /// It is refused, for this reason.
    Refuse(String),
}

/// The stake rule for a worker of index `ib` holding `have`; `granted`
/// says whether the operator already posted its stake once.
pub fn stake_decision(
    cfg: &EconomyConfig,
    worker: NodeId,
    ib: f64,
    have: i64,
    granted: bool,
    now: u64,
) -> StakeDecision {
    let need = minimum_stake(cfg, ib);
    if need <= 0 || have >= need {
        return StakeDecision::Enough;
    }
    if !cfg.grant_stake || granted {
        return StakeDecision::Refuse(format!(
            "stake of {have} is below the minimum 2·E·IB·P = {need} micro-credits for IB {ib:.2}"
        ));
    }
    StakeDecision::Grant(Transaction::transfer(
        stake_grant_id(worker),
        now,
        format!("operator posts the minimum stake for IB {ib:.2}"),
        Account::User(STAKE_GRANTOR.into()),
        Account::Stake(worker),
        need - have,
    ))
}

/// The share of a job's quoted price that `frames` of its `total` frames
/// are worth (rounded down; the remainder goes back at completion).
pub fn frames_share(quoted_price: u64, frames: usize, total: u64) -> i64 {
    (quoted_price as u128 * frames as u128 / total.max(1) as u128) as i64
}

/// Who rendered the clean pixels of an accepted task's delivered frames,
/// and how much of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanDelivery {
    /// The verifier whose clean pixels were delivered.
    pub verifier: NodeId,
    /// Pixels it rendered, over all the task's frames.
    pub clean_pixels: u64,
    /// Pixels of all the task's frames.
    pub frame_pixels: u64,
}

/// The payment of an accepted task out of the job's escrow: to its worker,
/// less the share of the pixels a verifier re-rendered clean for delivery
/// (about 0.3 % of a frame), which goes to that verifier.
pub fn task_payment(
    task: TaskId,
    frames: usize,
    quoted_price: u64,
    job_frames: u64,
    worker: NodeId,
    delivery: Option<CleanDelivery>,
    now: u64,
) -> Transaction {
    let total = frames_share(quoted_price, frames, job_frames);
    let mut tx = Transaction::transfer(
        format!("pay:{task}"),
        now,
        format!("{frames} frames of {task} accepted"),
        Account::Job(task.job),
        Account::Worker(worker),
        total,
    );
    if let Some(d) = delivery {
        let clean = d.clean_pixels.min(d.frame_pixels);
        let share = (total.max(0) as u128 * clean as u128 / d.frame_pixels.max(1) as u128) as i64;
        if share > 0 {
            tx.postings[1].amount -= share;
            tx.postings.push(Posting {
                account: Account::Verifier(d.verifier),
                amount: share,
            });
        }
    }
    tx
}

/// Where a node's stake is held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StakeHolder {
    /// A node of the manager's own operator: its own stake, granted once.
    Node(NodeId),
    /// A node run by an account: one stake for all the account's nodes.
    Operator(String),
}

impl StakeHolder {
    /// The holder of `node`'s stake when it is run by `operator`.
    pub fn of(node: NodeId, operator: Option<&str>) -> Self {
        match operator {
            Some(name) => Self::Operator(name.to_string()),
            None => Self::Node(node),
        }
    }

    /// The ledger account holding the stake.
    pub fn account(&self) -> Account {
        match self {
            Self::Node(n) => Account::Stake(*n),
            Self::Operator(name) => Account::OperatorStake(name.clone()),
        }
    }
}

/// The slash of a worker whose result of `task` was rejected: the whole
/// stake `from` holds (`amount`) goes to the penalty pool; for a node run
/// by an account, that is the account's stake, so every node of the
/// account is short of stake until its owner deposits again. Nothing when
/// it is 0.
pub fn slash(
    task: TaskId,
    worker: NodeId,
    from: &StakeHolder,
    amount: i64,
    now: u64,
) -> Option<Transaction> {
    (amount > 0).then(|| {
        Transaction::transfer(
            format!("slash:{task}:{worker}"),
            now,
            format!("stake slashed: result of {task} rejected by verifiers"),
            from.account(),
            Account::PenaltyPool,
            amount,
        )
    })
}

/// Rewards of the verifiers that agreed with a verdict on `task`, paid from
/// the penalty pool (holding `pool`) in order while it has funds.
pub fn verifier_rewards(
    cfg: &EconomyConfig,
    task: TaskId,
    verifiers: &[NodeId],
    mut pool: i64,
    now: u64,
) -> Vec<Transaction> {
    let mut out = Vec::new();
    if cfg.verifier_reward <= 0 {
        return out;
    }
    for v in verifiers {
        let amount = cfg.verifier_reward.min(pool);
        if amount <= 0 {
            break;
        }
        out.push(Transaction::transfer(
            format!("verify:{task}:{v}:{now}"),
            now,
            format!("verification of {task}"),
            Account::PenaltyPool,
            Account::Verifier(*v),
            amount,
        ));
        pool -= amount;
    }
    out
}

/// Rewards of several verdicts from one reading of the pool (`pool`), in
/// order: each round is paid from what the rounds before it left, so a
/// batch of acceptances never pays out more than the pool holds.
pub fn rewards_in_order<'a>(
    cfg: &EconomyConfig,
    rounds: impl IntoIterator<Item = (TaskId, &'a [NodeId])>,
    mut pool: i64,
    now: u64,
) -> Vec<Transaction> {
    let mut out = Vec::new();
    for (task, verifiers) in rounds {
        let rewards = verifier_rewards(cfg, task, verifiers, pool, now);
        // What the pool paid shows as its (negative) balance in them.
        pool += balance(&rewards, &Account::PenaltyPool);
        out.extend(rewards);
    }
    out
}

/// What is left in `job`'s escrow (`left`) back to its payer.
pub fn escrow_refund(
    job: JobId,
    left: i64,
    payer: Account,
    memo: &str,
    now: u64,
) -> Option<Transaction> {
    (left > 0).then(|| {
        Transaction::transfer(
            format!("refund:{job}"),
            now,
            memo,
            Account::Job(job),
            payer,
            left,
        )
    })
}

/// The bond a claimant puts up for `claim` on frames of `task`: held in the
/// job's claim-bond account until the claim is decided. Its id follows the
/// claim's frames, which are claimed once, so it is written once.
pub fn claim_bond(task: TaskId, claim: &TaskClaim, now: u64) -> Transaction {
    Transaction::transfer(
        format!("claim-bond:{}", claim.key(task)),
        now,
        format!("bond of the claim on frames {:?} of {task}", claim.frames),
        claim.payer.clone(),
        Account::ClaimBond(task.job),
        claim.bond,
    )
}

/// The ledger side of a decided claim on frames of `task` that `worker`
/// rendered. Upheld: the worker refunds `refund` (what the frames were
/// paid) to `job_payer`, and the bond goes back to its payer. Dismissed:
/// the bond is forfeited to the penalty pool, which pays the verifiers who
/// re-rendered the frames. `evidence` is kept in the memos.
#[allow(clippy::too_many_arguments)]
pub fn claim_settlement(
    task: TaskId,
    claim: &TaskClaim,
    worker: NodeId,
    job_payer: Account,
    refund: i64,
    upheld: bool,
    evidence: &str,
    now: u64,
) -> Vec<Transaction> {
    let key = claim.key(task);
    let verdict = if upheld { "upheld" } else { "dismissed" };
    let memo = format!(
        "claim on frames {:?} of {task} ({}): {verdict}; evidence: {evidence}",
        claim.frames, claim.reason
    );
    if upheld {
        vec![
            Transaction::transfer(
                format!("claim:{key}"),
                now,
                memo.clone(),
                Account::Worker(worker),
                job_payer,
                refund,
            ),
            Transaction::transfer(
                format!("claim-bond-return:{key}"),
                now,
                memo,
                Account::ClaimBond(task.job),
                claim.payer.clone(),
                claim.bond,
            ),
        ]
    } else {
        vec![Transaction::transfer(
            format!("claim-bond-forfeit:{key}"),
            now,
            memo,
            Account::ClaimBond(task.job),
            Account::PenaltyPool,
            claim.bond,
        )]
    }
}

/// What a recalled result found bad ([`crate::recall`]) writes, in one
/// store change with `task`: the claim that records its frames no claim
/// names yet as upheld (no bond), so that they are never refunded twice,
/// and the refund of what they were paid (`price` of that many frames)
/// from `worker` to the job's payer. The refund's id is the claim's key:
/// written once however often it is retried. `None` when every frame was
/// claimed already.
pub fn recall_claim(
    task: &Task,
    worker: NodeId,
    job_payer: Account,
    reason: &str,
    price: impl FnOnce(usize) -> i64,
    now: u64,
) -> Option<(TaskClaim, Transaction)> {
    let frames = task.unclaimed_frames();
    if frames.is_empty() {
        return None;
    }
    let refund = price(frames.len());
    let claim = TaskClaim {
        frames,
        reason: reason.to_string(),
        filed_ms: now,
        bond: 0,
        payer: job_payer.clone(),
        upheld: Some(true),
    };
    let tx = Transaction::transfer(
        format!("recall:{}", claim.key(task.id)),
        now,
        format!(
            "frames {:?} of {} recalled: {}",
            claim.frames, task.id, claim.reason
        ),
        Account::Worker(worker),
        job_payer,
        refund,
    );
    Some((claim, tx))
}

/// A verifier caught passing a known-bad result forfeits everything it has
/// earned (`earned`) to the penalty pool. Nothing when it earned nothing.
pub fn forfeit_earnings(verifier: NodeId, earned: i64, now: u64) -> Option<Transaction> {
    (earned > 0).then(|| {
        Transaction::transfer(
            format!("caught:{verifier}:{now}"),
            now,
            "verifier passed a known-bad result: its earnings are forfeited",
            Account::Verifier(verifier),
            Account::PenaltyPool,
            earned,
        )
    })
}

/// The bounty of a verifier that failed known-bad result `verification`:
/// the verifier reward, from the penalty pool (holding `pool`) while it has
/// funds.
pub fn forced_error_bounty(
    cfg: &EconomyConfig,
    verifier: NodeId,
    verification: u64,
    pool: i64,
    now: u64,
) -> Option<Transaction> {
    let amount = cfg.verifier_reward.min(pool);
    (amount > 0).then(|| {
        Transaction::transfer(
            format!("bounty:{verifier}:{now}:{verification}"),
            now,
            "verifier failed a known-bad result",
            Account::PenaltyPool,
            Account::Verifier(verifier),
            amount,
        )
    })
}

/// The slash of a verifier whose vote lost (the round's majority, after
/// escalation, decided the other way), or that passed a known-bad result:
/// the whole `stake` `from` holds goes to the penalty pool, so it is
/// refused when it next says hello unless more is deposited. `about` names the task or offer. Nothing when it is 0.
pub fn verifier_slash(
    verifier: NodeId,
    from: &StakeHolder,
    stake: i64,
    about: &str,
    why: &str,
    now: u64,
) -> Option<Transaction> {
    (stake > 0).then(|| {
        Transaction::transfer(
            format!("verifier-slash:{verifier}:{about}:{now}"),
            now,
            format!("verifier stake slashed ({about}): {why}"),
            from.account(),
            Account::PenaltyPool,
            stake,
        )
    })
}

/// What cheating on part of a task is worth to a worker, in expectation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CheatOdds {
    /// Fraction of each frame rendered cheaply.
    pub cheat: f64,
    /// Chance that the task's crop challenges catch it.
    pub detection: f64,
    /// The work it saves, valued at the network's price (micro-credits).
    pub expected_gain: f64,
    /// What it loses when caught (its stake and the task's payment),
    /// times the chance of being caught (micro-credits).
    pub expected_loss: f64,
}

/// The odds of a worker of index `ib` that renders a fraction `cheat` of
/// each frame of a task worth `task_minutes` minutes of its work cheaply,
/// saving the fraction `saving` of the work there, against `crops` crop
/// challenges. Each crop is taken as catching the cheat with chance
/// `cheat` (a crop that overlaps a cheap region by its area is more
/// likely to, so this is the cheat's best case).
pub fn cheat_odds(
    cfg: &EconomyConfig,
    ib: f64,
    task_minutes: f64,
    crops: usize,
    cheat: f64,
    saving: f64,
) -> CheatOdds {
    let cheat = cheat.clamp(0.0, 1.0);
    let detection = 1.0 - (1.0 - cheat).powi(crops as i32);
    let value = task_minutes * ib * cfg.price_per_ibm as f64;
    let expected_gain = cheat * saving * value;
    let expected_loss = detection * (minimum_stake(cfg, ib) as f64 + value);
    CheatOdds {
        cheat,
        detection,
        expected_gain,
        expected_loss,
    }
}
