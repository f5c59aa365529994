//! Operators of nodes: the accounts whose workers and verifiers join with
//! an API key instead of the network's shared node token.
//!
//! A node key is free to make, so nothing that matters may attach to one:
//! stake, reputation, history and bans attach to the account that runs the
//! node, persist in the task store ([`NodeStanding`], and the ledger's
//! `OperatorStake` account), and follow the account to every key it uses.
//! A slashed account's next key finds the stake gone; a banned account's
//! next key is refused; a low reputation is found again after a restart.
//!
//! Nodes admitted with the shared node token are the manager's own
//! operator's: each is its own operator, staked by the operator's grant
//! (see [`crate::economy::stake_decision`]).
//!
//! The rules here only decide; the driver reads the account, its standing
//! and its stake, and writes what comes back.

use inferix_core::account::{AccountRecord, NodeStanding, KEY_PREFIX};
use inferix_core::protocol::{ErrorCode, Hello, Role};

pub use inferix_core::por::plan::CheckLevel;

use crate::admission::Refusal;
use crate::economy::{self, EconomyConfig};

/// The key id of an account's API key presented by a worker or verifier
/// as its token (any token with the keys' prefix counts as one); `None`
/// when the node presents the shared node token (or nothing).
pub fn node_key(h: &Hello) -> Option<&str> {
    if !matches!(h.role, Role::Worker | Role::Verifier) {
        return None;
    }
    let token = h.token.as_deref()?;
    if !token.starts_with(KEY_PREFIX) {
        return None;
    }
    // A malformed key is looked up as it is, finds no account and is
    // refused as unknown: it never falls back to the shared token's rules.
    Some(inferix_core::account::key_id(token).unwrap_or(token))
}

fn refuse(message: String, close: &'static str) -> Refusal {
    Refusal {
        code: ErrorCode::Unauthorized,
        message,
        close,
    }
}

/// Whether the account holding a node's key may run a node of `role`:
/// the key is one of its live keys, the account is not banned, and a
/// verifier's account is on the operator's list of verifiers. `account` is
/// the account the key's id names (none: unknown key).
pub fn check_operator(
    account: Option<&AccountRecord>,
    key: &str,
    role: Role,
    standing: &NodeStanding,
) -> Result<(), Refusal> {
    let Some(account) = account.filter(|a| a.accepts(key)) else {
        return Err(refuse(
            format!("{role:?} not admitted: unknown or revoked API key"),
            "unauthorized",
        ));
    };
    if let Some(why) = &standing.banned {
        return Err(refuse(
            format!(
                "the nodes of account {} are banned ({why}); only an operator lifts it",
                account.name
            ),
            "account banned",
        ));
    }
    if role == Role::Verifier && !account.verifier {
        return Err(refuse(
            format!(
                "account {} may not run verifiers; an operator allows it with \
                 `inferix account verifiers {} --allow`",
                account.name, account.name
            ),
            "not a verifier account",
        ));
    }
    Ok(())
}

/// The stake index of a node of `role` announcing `ib`: workers stake by
/// their index, verifiers as a worker of [`economy::VERIFIER_STAKE_IB`].
pub fn stake_ib(role: Role, ib: f64) -> Option<f64> {
    match role {
        Role::Worker => Some(ib),
        Role::Verifier => Some(economy::VERIFIER_STAKE_IB),
        _ => None,
    }
}

/// Checks that an account holding `have` in its operator stake covers the
/// minimum stakes of all its nodes once one more joins: `others` are the
/// stake indexes of its nodes already connected, `joining` the new one's.
/// An account's stake is deposited by its owner through the ledger; the
/// manager never grants it, so a slashed account deposits again.
pub fn check_operator_stake(
    cfg: &EconomyConfig,
    name: &str,
    others: &[f64],
    joining: f64,
    have: i64,
) -> Result<(), Refusal> {
    let need: i64 = others
        .iter()
        .chain(std::iter::once(&joining))
        .map(|ib| economy::minimum_stake(cfg, *ib).max(0))
        .sum();
    if have >= need {
        return Ok(());
    }
    Err(refuse(
        format!(
            "account {name} holds a stake of {have} micro-credits; its {} connected nodes \
             need {need} (2·E·IB·P each). Deposit stake with \
             `inferix account deposit {name} CREDITS --stake`",
            others.len() + 1
        ),
        "insufficient stake",
    ))
}

/// How a settled result changes its worker's account: an accepted one
/// counts toward its history, a rejected one (or an upheld claim) counts
/// against it and multiplies its workers' reputation by `penalty`.
pub fn after_result(standing: &mut NodeStanding, accepted: bool, penalty: f64) {
    if accepted {
        standing.accepted_tasks = standing.accepted_tasks.saturating_add(1);
    } else {
        standing.rejected_tasks = standing.rejected_tasks.saturating_add(1);
        standing.worker_reputation = (standing.worker_reputation * penalty).clamp(0.0, 1.0);
    }
}

/// Results an account's workers must have had accepted before their
/// results are checked at the base rate.
pub const PROBATION_TASKS: u64 = 50;

/// How many verifiers vote on a result of a worker with `standing`, from
/// the network's `quorum`: twice as many for an account on probation
/// (fewer than [`PROBATION_TASKS`] accepted results, or reputation below
/// 0.9), so that colluding verifiers must hold every one of twice the
/// seats to pass its bad result — the chance falls from f² to f⁴ for a
/// colluding share f of verifiers, where a new account would cheat most.
/// `None` (the manager's own operator's nodes) keeps the quorum, and so
/// does a network run at quorum 1, which trusts one verifier per result.
/// The engine seats the extra verifiers only where that many can sit.
pub fn round_quorum(quorum: usize, standing: Option<&NodeStanding>) -> usize {
    match standing {
        Some(s)
            if quorum >= 2 && (s.accepted_tasks < PROBATION_TASKS || s.worker_reputation < 0.9) =>
        {
            quorum.saturating_mul(2)
        }
        _ => quorum,
    }
}

/// How hard the results of a worker with `standing` are checked, from the
/// network's base number of crops per task: new accounts (fewer than
/// [`PROBATION_TASKS`] accepted results) and accounts whose reputation fell
/// get twice the crops (four times below 0.5) and more frequent whole-frame
/// audits. `None` is a node of the manager's own operator, checked at the
/// base rate with the occasional audit. A base of 0 turns checks off.
pub fn check_level(base_crops: usize, standing: Option<&NodeStanding>) -> CheckLevel {
    if base_crops == 0 {
        return CheckLevel {
            crops: 0,
            audit_chance: 0.0,
        };
    }
    let Some(s) = standing else {
        return CheckLevel {
            crops: base_crops,
            audit_chance: 0.01,
        };
    };
    let mut factor = 1;
    let mut audit: f64 = 0.01;
    if s.accepted_tasks < PROBATION_TASKS {
        factor = 2;
        audit = 0.1;
    }
    if s.worker_reputation < 0.9 {
        factor = factor.max(2);
        audit = audit.max(0.1);
    }
    if s.worker_reputation < 0.5 {
        factor = 4;
        audit = 0.25;
    }
    CheckLevel {
        crops: base_crops.saturating_mul(factor),
        audit_chance: audit,
    }
}
