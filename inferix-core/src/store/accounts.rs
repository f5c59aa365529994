//! Account administration over any [`TaskStore`]: what `inferix account`
//! and embedders do to create accounts, hand out and revoke keys and add
//! funds. Managers read accounts from the same store, so a change is
//! seen by the next connection without restarting anything.

use super::{StoreError, TaskStore};
use crate::account::{new_key, AccountError, AccountRecord, KeyRecord, NodeStanding};
use crate::ledger::{Account, Transaction};

/// Why an account operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccountAdminError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A bad name.
    #[error(transparent)]
    Name(#[from] AccountError),
    /// No account of that name.
    #[error("no account named {name}")]
    NoSuchAccount {
        /// The name asked for.
        name: String,
    },
    /// The account has no key with that id.
    #[error("account {name} has no key {key}")]
    NoSuchKey {
        /// The account.
        name: String,
        /// The key id asked for.
        key: String,
    },
    /// A deposit of nothing or less.
    #[error("a deposit must be more than 0 micro-credits (got {amount})")]
    BadAmount {
        /// The amount given.
        amount: i64,
    },
}

/// Account operations on a store.
pub struct Accounts<'a> {
    store: &'a dyn TaskStore,
}

impl<'a> Accounts<'a> {
    /// Operations on `store`.
    pub fn new(store: &'a dyn TaskStore) -> Self {
        Self { store }
    }

    /// The account named `name`.
    pub async fn get(&self, name: &str) -> Result<AccountRecord, AccountAdminError> {
        self.store
            .account(name)
            .await?
            .ok_or_else(|| AccountAdminError::NoSuchAccount { name: name.into() })
    }

    /// Creates an account with one key, and returns it and the key (shown
    /// to its owner once; only its hash is stored).
    pub async fn create(
        &self,
        name: &str,
        operator: bool,
        now_ms: u64,
    ) -> Result<(AccountRecord, String), AccountAdminError> {
        let mut account = AccountRecord::new(name, operator, now_ms)?;
        let (key, record) = new_key(now_ms, &mut rand::rngs::OsRng);
        account.keys.push(record);
        self.store.insert_account(&account).await?;
        Ok((account, key))
    }

    /// Adds a key to an account and returns it.
    pub async fn add_key(&self, name: &str, now_ms: u64) -> Result<String, AccountAdminError> {
        let mut account = self.get(name).await?;
        let (key, record) = loop {
            let (key, record) = new_key(now_ms, &mut rand::rngs::OsRng);
            // Key ids are 64 random bits; a repeat is only theoretically
            // possible, and would make lookups ambiguous.
            if self.store.account_with_key(&record.id).await?.is_none() {
                break (key, record);
            }
        };
        account.keys.push(record);
        self.store.update_account(&account).await?;
        Ok(key)
    }

    /// Revokes one key of an account (it authenticates no one from the
    /// next connection on).
    pub async fn revoke(
        &self,
        name: &str,
        key_id: &str,
        now_ms: u64,
    ) -> Result<(), AccountAdminError> {
        let mut account = self.get(name).await?;
        if !account.revoke(key_id, now_ms) {
            return Err(AccountAdminError::NoSuchKey {
                name: name.into(),
                key: key_id.into(),
            });
        }
        self.store.update_account(&account).await?;
        Ok(())
    }

    /// An account's keys, revoked ones included.
    pub async fn keys(&self, name: &str) -> Result<Vec<KeyRecord>, AccountAdminError> {
        Ok(self.get(name).await?.keys)
    }

    /// Adds `amount` micro-credits to an account from outside the network,
    /// and returns the new balance.
    pub async fn deposit(
        &self,
        name: &str,
        amount: i64,
        memo: &str,
        now_ms: u64,
    ) -> Result<i64, AccountAdminError> {
        let account = self.get(name).await?;
        let id = format!("deposit:{name}");
        self.move_in(&id, account.ledger_account(), amount, memo, now_ms)
            .await
    }

    /// Moves `amount` micro-credits from outside the network into `to` and
    /// returns its balance; `id` starts the transaction's (unique) id.
    async fn move_in(
        &self,
        id: &str,
        to: Account,
        amount: i64,
        memo: &str,
        now_ms: u64,
    ) -> Result<i64, AccountAdminError> {
        if amount <= 0 {
            return Err(AccountAdminError::BadAmount { amount });
        }
        let tx = Transaction::transfer(
            format!("{id}:{now_ms}:{:016x}", rand::random::<u64>()),
            now_ms,
            memo,
            Account::External,
            to.clone(),
            amount,
        );
        self.store.append_transaction(&tx).await?;
        Ok(self.store.balance(&to).await?)
    }

    /// An account's balance, micro-credits.
    pub async fn balance(&self, name: &str) -> Result<i64, AccountAdminError> {
        let account = self.get(name).await?;
        Ok(self.store.balance(&account.ledger_account()).await?)
    }

    /// Adds `amount` micro-credits to the stake of the nodes account
    /// `name` runs, from outside the network, and returns the stake. A
    /// slashed account deposits again before its nodes are admitted.
    pub async fn deposit_stake(
        &self,
        name: &str,
        amount: i64,
        memo: &str,
        now_ms: u64,
    ) -> Result<i64, AccountAdminError> {
        self.get(name).await?;
        let id = format!("stake-deposit:{name}");
        self.move_in(
            &id,
            Account::OperatorStake(name.to_string()),
            amount,
            memo,
            now_ms,
        )
        .await
    }

    /// The stake account `name` holds for its nodes, micro-credits.
    pub async fn stake(&self, name: &str) -> Result<i64, AccountAdminError> {
        self.get(name).await?;
        Ok(self
            .store
            .balance(&Account::OperatorStake(name.to_string()))
            .await?)
    }

    /// Allows (or stops) account `name`'s nodes to join as verifiers.
    pub async fn allow_verifiers(&self, name: &str, allow: bool) -> Result<(), AccountAdminError> {
        let mut account = self.get(name).await?;
        account.verifier = allow;
        self.store.update_account(&account).await?;
        Ok(())
    }

    /// How account `name`'s nodes have behaved (the default for an account
    /// none of whose nodes was judged yet).
    pub async fn standing(&self, name: &str) -> Result<NodeStanding, AccountAdminError> {
        self.get(name).await?;
        Ok(self.store.standing(name).await?.unwrap_or_default())
    }

    /// Lifts the ban on account `name`'s nodes, leaving the rest of its
    /// standing as it is (its verifiers start again from a reputation of
    /// one half, not from a clean slate).
    pub async fn unban(&self, name: &str) -> Result<NodeStanding, AccountAdminError> {
        let mut tries = 0;
        loop {
            let mut standing = self.standing(name).await?;
            standing.banned = None;
            standing.verifier_reputation = standing.verifier_reputation.max(0.5);
            tries += 1;
            match self.store.put_standing(name, &mut standing).await {
                // A manager judged a node meanwhile: read it again.
                Err(StoreError::StandingConflict { .. }) if tries < 8 => continue,
                other => {
                    other?;
                    return Ok(standing);
                }
            }
        }
    }
}

#[cfg(all(test, feature = "runtime"))]
mod tests {
    use super::*;
    use crate::store::MemoryTaskStore;

    #[tokio::test]
    async fn keys_are_made_revoked_and_funds_deposited() {
        let store = MemoryTaskStore::new();
        let accounts = Accounts::new(&store);
        let (a, key) = accounts.create("alice", false, 1).await.unwrap();
        assert!(a.accepts(&key));
        assert!(matches!(
            accounts.create("alice", true, 2).await,
            Err(AccountAdminError::Store(StoreError::AlreadyExists { .. }))
        ));
        assert!(matches!(
            accounts.create("no spaces", false, 2).await,
            Err(AccountAdminError::Name(_))
        ));
        let second = accounts.add_key("alice", 3).await.unwrap();
        let id = crate::account::key_id(&key).unwrap();
        accounts.revoke("alice", id, 4).await.unwrap();
        let now = accounts.get("alice").await.unwrap();
        assert!(!now.accepts(&key) && now.accepts(&second));
        assert_eq!(accounts.keys("alice").await.unwrap().len(), 2);
        assert!(matches!(
            accounts.revoke("alice", "feed", 5).await,
            Err(AccountAdminError::NoSuchKey { .. })
        ));

        assert_eq!(
            accounts.deposit("alice", 500, "top up", 6).await.unwrap(),
            500
        );
        assert_eq!(
            accounts.deposit("alice", 250, "again", 6).await.unwrap(),
            750
        );
        assert!(matches!(
            accounts.deposit("alice", 0, "nothing", 7).await,
            Err(AccountAdminError::BadAmount { .. })
        ));
        assert!(matches!(
            accounts.deposit("bob", 5, "who", 7).await,
            Err(AccountAdminError::NoSuchAccount { .. })
        ));
        assert_eq!(store.balance(&Account::External).await.unwrap(), -750);
    }

    #[tokio::test]
    async fn operators_of_nodes_deposit_stake_are_allowed_to_verify_and_unbanned() {
        let store = MemoryTaskStore::new();
        let accounts = Accounts::new(&store);
        accounts.create("farm", false, 1).await.unwrap();
        assert_eq!(accounts.stake("farm").await.unwrap(), 0);
        assert_eq!(
            accounts
                .deposit_stake("farm", 900, "stake", 2)
                .await
                .unwrap(),
            900
        );
        assert_eq!(
            accounts
                .deposit_stake("farm", 100, "stake", 2)
                .await
                .unwrap(),
            1_000
        );
        // Stake is not spendable credit.
        assert_eq!(accounts.balance("farm").await.unwrap(), 0);
        assert!(matches!(
            accounts.deposit_stake("farm", -5, "stake", 3).await,
            Err(AccountAdminError::BadAmount { .. })
        ));
        assert!(matches!(
            accounts.deposit_stake("nobody", 5, "stake", 3).await,
            Err(AccountAdminError::NoSuchAccount { .. })
        ));
        assert!(!accounts.get("farm").await.unwrap().verifier);
        accounts.allow_verifiers("farm", true).await.unwrap();
        assert!(accounts.get("farm").await.unwrap().verifier);

        let mut banned = NodeStanding {
            banned: Some("passed a known-bad result".into()),
            verifier_reputation: 0.0,
            ..NodeStanding::default()
        };
        banned.rejected_tasks = 2;
        store.put_standing("farm", &mut banned).await.unwrap();
        let lifted = accounts.unban("farm").await.unwrap();
        assert_eq!(lifted.banned, None);
        assert_eq!(lifted.verifier_reputation, 0.5);
        assert_eq!(lifted.rejected_tasks, 2, "history stays");
        assert_eq!(store.standing("farm").await.unwrap(), Some(lifted));
    }
}
