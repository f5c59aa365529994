//! Double-entry ledger records: every movement of credit is a transaction
//! whose entries sum to zero, so every balance is reproducible from records.

use serde::{Deserialize, Serialize};

use crate::ids::{JobId, NodeId};

/// An account in the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Account {
    /// Escrow of a job: funded at submission, drawn on as frames are accepted.
    Job(JobId),
    /// A worker's earnings.
    Worker(NodeId),
    /// A verifier's earnings.
    Verifier(NodeId),
    /// A worker's stake.
    Stake(NodeId),
    /// Slashed stakes, paid out to verifiers.
    PenaltyPool,
    /// A user paying for jobs.
    User(String),
    /// Credit entering or leaving the network: deposits into user
    /// accounts are drawn from it, so its balance is minus everything
    /// deposited.
    External,
    /// Bonds of bad-result claims on a job's frames, held until each claim
    /// is decided.
    ClaimBond(JobId),
    /// The stake an account deposited for the nodes it runs: one stake
    /// for all its workers and verifiers, whatever their keys.
    OperatorStake(String),
}

/// One line of a transaction: a signed amount on one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Posting {
    /// Account moved.
    pub account: Account,
    /// Micro-credits; positive credits the account.
    pub amount: i64,
}

/// A balanced set of postings with a reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    /// Unique id; appending the same id twice is refused (no double payment).
    pub id: String,
    /// When (ms since the Unix epoch).
    pub at_ms: u64,
    /// Why.
    pub memo: String,
    /// The postings, summing to zero.
    pub postings: Vec<Posting>,
}

/// A transaction that does not balance.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("transaction {id} does not balance: postings sum to {sum}")]
pub struct UnbalancedError {
    /// Transaction id.
    pub id: String,
    /// Sum of its postings.
    pub sum: i64,
}

impl Transaction {
    /// A transfer of `amount` from one account to another.
    pub fn transfer(
        id: impl Into<String>,
        at_ms: u64,
        memo: impl Into<String>,
        from: Account,
        to: Account,
        amount: i64,
    ) -> Self {
        Self {
            id: id.into(),
            at_ms,
            memo: memo.into(),
            postings: vec![
                Posting {
                    account: from,
                    amount: -amount,
                },
                Posting {
                    account: to,
                    amount,
                },
            ],
        }
    }

    /// Checks that the postings sum to zero.
    pub fn check_balanced(&self) -> Result<(), UnbalancedError> {
        let sum = self.postings.iter().map(|p| p.amount).sum();
        if sum == 0 {
            Ok(())
        } else {
            Err(UnbalancedError {
                id: self.id.clone(),
                sum,
            })
        }
    }
}

/// Balance of `account` over `transactions`.
pub fn balance(transactions: &[Transaction], account: &Account) -> i64 {
    transactions
        .iter()
        .flat_map(|t| &t.postings)
        .filter(|p| &p.account == account)
        .map(|p| p.amount)
        .sum()
}
