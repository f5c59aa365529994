//! Accounts of the people who use a network: users who submit jobs and pay
//! for them, and operators who run it. Each authenticates with API keys.
//!
//! A key is shown once, when it is made; the store keeps only its public id
//! and a hash of the whole key, so a copy of the database lets no one act
//! as a user. Keys are checked by hashing what a client presents and
//! comparing hashes in constant time.

use rand::RngCore;
use serde::{Deserialize, Serialize};

/// What every API key starts with, so that a leaked key is recognisable
/// (secret scanners, logs).
pub const KEY_PREFIX: &str = "ifx_";

/// Hex digits of a key's public id.
const ID_DIGITS: usize = 16;
/// Hex digits of a key's secret part (128 bits).
const SECRET_DIGITS: usize = 32;

/// Longest account name: names appear in ledger accounts and paths.
pub const MAX_NAME_LEN: usize = 64;

/// A user or operator of the network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountRecord {
    /// Unique name ([`check_name`]).
    pub name: String,
    /// Operators may see and act on every job and list the network's nodes.
    pub operator: bool,
    /// When it was created (ms since the Unix epoch).
    pub created_ms: u64,
    /// How far below zero the account's balance may go, in micro-credits:
    /// 0 for prepaid accounts, `u64::MAX` for accounts never refused for
    /// lack of funds (the guest account of a single-machine network).
    #[serde(default)]
    pub credit_limit: u64,
    /// Limits on what the account may ask of the network.
    #[serde(default)]
    pub quotas: Quotas,
    /// Its API keys, revoked ones included (their ids stay taken).
    #[serde(default)]
    pub keys: Vec<KeyRecord>,
    /// Whether its nodes may join as verifiers (an operator's allowlist:
    /// a verifier's vote decides payments, so not every account that runs
    /// workers may cast one).
    #[serde(default)]
    pub verifier: bool,
}

/// How an account's nodes have behaved: what the manager learns of an
/// operator of workers and verifiers, kept in the task store beside the
/// account so that it survives reconnections, new node keys and manager
/// restarts. Stake lives in the ledger (`Account::OperatorStake`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeStanding {
    /// Reputation of its workers, 0 to 1: lowered by rejections and lost
    /// leases, it weighs the scheduler's choice and how hard results are
    /// checked.
    pub worker_reputation: f64,
    /// Reputation of its verifiers, 0 to 1: lowered by votes on the losing
    /// side, it weighs the draw of verification seats.
    pub verifier_reputation: f64,
    /// Results of its workers accepted.
    pub accepted_tasks: u64,
    /// Results of its workers rejected (or upheld claims).
    pub rejected_tasks: u64,
    /// Why its nodes are refused, when they are (a verifier caught passing
    /// a known-bad result). Only an operator lifts it.
    pub banned: Option<String>,
    /// Bumped by every write. Several managers judge one account's nodes
    /// and operators lift bans, so a write is refused when the stored
    /// standing has moved on since it was read (`TaskStore::put_standing`):
    /// a reputation update never undoes a ban made meanwhile.
    pub version: u64,
}

impl Default for NodeStanding {
    fn default() -> Self {
        Self {
            worker_reputation: 1.0,
            verifier_reputation: 1.0,
            accepted_tasks: 0,
            rejected_tasks: 0,
            banned: None,
            version: 0,
        }
    }
}

/// Limits on one account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Quotas {
    /// Jobs not yet completed, failed or cancelled at once.
    pub max_active_jobs: u32,
    /// Frames in one job.
    pub max_frames_per_job: u64,
    /// Bytes of scenes and environment maps its unfinished jobs hold in
    /// blob storage, the new job's included (each blob counted once).
    pub max_scene_bytes: u64,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            max_active_jobs: 20,
            max_frames_per_job: 10_000,
            max_scene_bytes: 16 << 30,
        }
    }
}

impl Quotas {
    /// No limits beyond the network's own.
    pub const UNLIMITED: Quotas = Quotas {
        max_active_jobs: u32::MAX,
        max_frames_per_job: u64::MAX,
        max_scene_bytes: u64::MAX,
    };
}

/// A stored API key: its public id and the hash of the whole key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// Public part of the key, shown in listings.
    pub id: String,
    /// BLAKE3 of the whole key, hex.
    pub hash: String,
    /// When it was made (ms since the Unix epoch).
    pub created_ms: u64,
    /// When it was revoked; a revoked key authenticates no one.
    #[serde(default)]
    pub revoked_ms: Option<u64>,
}

/// Why an account name or key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AccountError {
    /// A name that is empty, too long or has characters other than ASCII
    /// letters, digits, `-`, `_` and `.`.
    #[error(
        "account name {name:?} must be 1 to {MAX_NAME_LEN} ASCII letters, digits, '-', '_' or '.'"
    )]
    BadName {
        /// The name given.
        name: String,
    },
    /// Not an API key of this network's form.
    #[error("not an API key (expected {KEY_PREFIX}<id>_<secret>)")]
    Malformed,
}

/// Checks an account name.
pub fn check_name(name: &str) -> Result<(), AccountError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(AccountError::BadName { name: name.into() })
    }
}

/// A new API key: the secret to hand to its owner once, and its record.
pub fn new_key(now_ms: u64, rng: &mut impl RngCore) -> (String, KeyRecord) {
    let mut id = [0u8; ID_DIGITS / 2];
    let mut secret = [0u8; SECRET_DIGITS / 2];
    rng.fill_bytes(&mut id);
    rng.fill_bytes(&mut secret);
    let key = format!("{KEY_PREFIX}{}_{}", hex::encode(id), hex::encode(secret));
    let record = KeyRecord {
        id: hex::encode(id),
        hash: blake3::hash(key.as_bytes()).to_hex().to_string(),
        created_ms: now_ms,
        revoked_ms: None,
    };
    (key, record)
}

/// The public id of a presented key, without checking it.
pub fn key_id(key: &str) -> Result<&str, AccountError> {
    let rest = key
        .strip_prefix(KEY_PREFIX)
        .ok_or(AccountError::Malformed)?;
    let (id, secret) = rest.split_once('_').ok_or(AccountError::Malformed)?;
    let hex_of = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    if hex_of(id, ID_DIGITS) && hex_of(secret, SECRET_DIGITS) {
        Ok(id)
    } else {
        Err(AccountError::Malformed)
    }
}

impl AccountRecord {
    /// A new account with no keys.
    pub fn new(name: &str, operator: bool, now_ms: u64) -> Result<Self, AccountError> {
        check_name(name)?;
        Ok(Self {
            name: name.into(),
            operator,
            created_ms: now_ms,
            credit_limit: 0,
            quotas: Quotas::default(),
            keys: Vec::new(),
            verifier: false,
        })
    }

    /// Whether `key` is one of this account's keys and not revoked. The
    /// hashes are compared in constant time.
    pub fn accepts(&self, key: &str) -> bool {
        let Ok(id) = key_id(key) else {
            return false;
        };
        let presented = blake3::hash(key.as_bytes());
        self.keys.iter().any(|k| {
            k.id == id
                && k.revoked_ms.is_none()
                && blake3::Hash::from_hex(&k.hash).is_ok_and(|h| h == presented)
        })
    }

    /// Whether one of its keys, revoked or not, has public id `id`.
    pub fn has_key(&self, id: &str) -> bool {
        self.keys.iter().any(|k| k.id == id)
    }

    /// Revokes the key with public id `id`; false when there is none.
    pub fn revoke(&mut self, id: &str, now_ms: u64) -> bool {
        match self.keys.iter_mut().find(|k| k.id == id) {
            Some(k) => {
                k.revoked_ms.get_or_insert(now_ms);
                true
            }
            None => false,
        }
    }

    /// Whether a balance of `balance` can pay `price`.
    pub fn can_pay(&self, balance: i64, price: u64) -> bool {
        i128::from(balance) + i128::from(self.credit_limit) >= i128::from(price)
    }

    /// The ledger account it pays from.
    pub fn ledger_account(&self) -> crate::ledger::Account {
        crate::ledger::Account::User(self.name.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn rng() -> rand_chacha::ChaCha8Rng {
        rand_chacha::ChaCha8Rng::seed_from_u64(7)
    }

    #[test]
    fn a_new_key_is_accepted_and_nothing_else_is() {
        let mut a = AccountRecord::new("alice", false, 1).unwrap();
        let (key, record) = new_key(1, &mut rng());
        a.keys.push(record);
        assert!(a.accepts(&key));
        assert_eq!(key_id(&key).unwrap(), a.keys[0].id);
        // One secret digit changed.
        let mut wrong = key.clone().into_bytes();
        let last = wrong.len() - 1;
        wrong[last] = if wrong[last] == b'0' { b'1' } else { b'0' };
        assert!(!a.accepts(&String::from_utf8(wrong).unwrap()));
        assert!(!a.accepts(""));
        assert!(!a.accepts("ifx_"));
        assert!(!a.accepts(&key.replace("ifx_", "ifz_")));
        // The stored record does not contain the secret.
        let stored = serde_json::to_string(&a).unwrap();
        assert!(!stored.contains(key.rsplit('_').next().unwrap()));
    }

    #[test]
    fn a_revoked_key_is_refused() {
        let mut a = AccountRecord::new("bob", false, 1).unwrap();
        let (key, record) = new_key(1, &mut rng());
        let id = record.id.clone();
        a.keys.push(record);
        assert!(a.revoke(&id, 5));
        assert!(!a.accepts(&key));
        assert!(!a.revoke("0000", 5));
        assert!(a.has_key(&id));
    }

    #[test]
    fn names_are_checked() {
        for good in ["a", "studio-7", "ana.b_c"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "a b", "é", "x/y", &"n".repeat(65)] {
            assert!(
                matches!(check_name(bad), Err(AccountError::BadName { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn funds_and_credit_decide_what_can_be_paid() {
        let mut a = AccountRecord::new("c", false, 1).unwrap();
        assert!(a.can_pay(10, 10));
        assert!(!a.can_pay(9, 10));
        assert!(!a.can_pay(0, 1));
        a.credit_limit = 5;
        assert!(a.can_pay(-5, 0));
        assert!(!a.can_pay(-5, 1));
        a.credit_limit = u64::MAX;
        assert!(a.can_pay(i64::MIN, i64::MAX as u64));
        assert!(!a.can_pay(i64::MIN, u64::MAX));
    }
}
