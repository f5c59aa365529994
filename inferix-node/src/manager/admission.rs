//! Hellos: admission rules from the engine, the stake check against the ledger,
//! joining workers and verifiers.

use inferix_core::account::Quotas;
use inferix_manager::accounts::{self, ClientLookup};
use inferix_manager::admission::Refusal;

use super::*;

impl State {
    pub(super) async fn on_hello(&mut self, conn: ConnId, id: u64, node: NodeId, h: Hello) -> bool {
        let admission = AdmissionConfig {
            node_token: self.cfg.node_token.clone(),
            verifier_token: self.cfg.verifier_token.clone(),
        };
        let mut account = None;
        let mut checked = check_hello(&admission, &h);
        if checked.is_ok() && h.role != Role::Client && self.disabled.contains(&node) {
            checked = Err(Refusal {
                code: ErrorCode::Unauthorized,
                message: format!("node {node} was disabled by an operator"),
                close: "disabled",
            });
        }
        let mut operator = None;
        if checked.is_ok() {
            if let Some(key_id) = inferix_manager::operators::node_key(&h) {
                match self.admit_operator(key_id, &h, node).await {
                    Ok(found) => operator = Some(found),
                    Err(refusal) => checked = Err(refusal),
                }
            }
        }
        if checked.is_ok() && h.role == Role::Client {
            match self.client_account(h.token.as_deref()).await {
                Ok(a) => account = Some(a),
                Err(refusal) => checked = Err(refusal),
            }
        }
        if let Err(refusal) = checked {
            warn!(?node, role = ?h.role, why = refusal.close, "refused");
            self.reply(conn, id, Message::error(refusal.code, refusal.message))
                .await;
            self.refuse(conn, refusal.close).await;
            return false;
        }
        if self.probes(&h) {
            // Greeted (the hello timer lets it render), not yet joined.
            self.access.admit(conn);
            self.start_probe(conn, id, h, operator).await;
            return false;
        }
        self.finish_hello(conn, id, node, h, account, operator)
            .await
    }

    /// Admits a node whose hello passed every check (and its probe, when
    /// it had one), answering request `id` with a welcome: its stake,
    /// then it joins the workers or verifiers.
    pub(super) async fn finish_hello(
        &mut self,
        conn: ConnId,
        id: u64,
        node: NodeId,
        h: Hello,
        account: Option<AccountRecord>,
        operator: Option<(String, inferix_core::account::NodeStanding)>,
    ) -> bool {
        let now = self.now();
        if let Some(p) = self.peers.get_mut(&conn) {
            p.role = Some(h.role);
            p.key_id = account
                .is_some()
                .then(|| {
                    h.token
                        .as_deref()
                        .and_then(|t| inferix_core::account::key_id(t).ok())
                })
                .flatten()
                .map(String::from);
            p.account = account;
            p.account_read = now;
            p.operator = operator.as_ref().map(|(name, _)| name.clone());
            p.stake_ib = inferix_manager::operators::stake_ib(h.role, h.ib).unwrap_or(0.0);
        }
        self.access.admit(conn);
        // Workers stake by their index, verifiers as a worker of IB 1; a
        // node run by an account was checked against its account's stake.
        let stake_ib = inferix_manager::operators::stake_ib(h.role, h.ib);
        if let Some(ib) = stake_ib.filter(|_| operator.is_none()) {
            if let Err((code, why)) = self.ensure_stake(node, ib).await {
                // A ledger that cannot be read is the manager's trouble:
                // the node is told to come back, not refused for good.
                let close = if code == ErrorCode::Unavailable {
                    "task database unavailable; try again"
                } else {
                    "insufficient stake"
                };
                warn!(?node, role = ?h.role, %why, "refused: stake");
                self.reply(conn, id, Message::error(code, why)).await;
                self.refuse(conn, close).await;
                return false;
            }
        }
        match h.role {
            Role::Worker => {
                // A worker reconnecting replaces its old connection.
                if let Some(old) = self.workers.get(&node).map(|w| w.conn) {
                    self.drop_peer(old, "replaced by a new connection").await;
                }
                let info = WorkerInfo {
                    id: node,
                    ib: h.ib,
                    reputation: operator
                        .as_ref()
                        .map_or(1.0, |(_, s)| s.worker_reputation.clamp(0.0, 1.0)),
                    tags: h.tags,
                    formats: h.formats,
                };
                info!(worker = ?node, ib = info.ib, operator = ?operator.as_ref().map(|o| &o.0), "worker joined");
                self.workers.join(conn, info, now);
                self.reconcile_worker(node).await;
            }
            Role::Verifier => {
                if let Some(old) = self.verifiers.get(&node).map(|v| v.conn) {
                    self.drop_peer(old, "replaced by a new connection").await;
                }
                info!(verifier = ?node, operator = ?operator.as_ref().map(|o| &o.0), "verifier joined");
                self.verifiers.insert(
                    node,
                    VerifierConn {
                        conn,
                        last_seen: now,
                        device_class: h.device_class.clone(),
                    },
                );
                self.engine_event(EngineEvent::VerifierJoined {
                    verifier: node,
                    formats: h.formats.clone(),
                    standing: inferix_manager::VerifierStanding {
                        operator: operator.as_ref().map(|(name, _)| name.clone()),
                        reputation: operator
                            .as_ref()
                            .map_or(1.0, |(_, s)| s.verifier_reputation),
                    },
                })
                .await;
            }
            _ => {}
        }
        self.reply(
            conn,
            id,
            Message::Welcome {
                manager: self.id,
                max_blob_size: self.blobs.max_blob_size(),
            },
        )
        .await;
        true
    }

    /// The account a client presenting `token` acts as: the one holding
    /// that API key, or the guest account (created when missing) for a
    /// client without one, when the manager has a guest account.
    async fn client_account(&mut self, token: Option<&str>) -> Result<AccountRecord, Refusal> {
        let unavailable = |e: StoreError| Refusal {
            code: ErrorCode::Unavailable,
            message: format!("cannot read accounts: {e}"),
            close: "task database unavailable; try again",
        };
        match accounts::client_lookup(token, self.cfg.guest_account.as_deref())? {
            ClientLookup::Key(key_id) => {
                let found = self
                    .store
                    .account_with_key(&key_id)
                    .await
                    .map_err(unavailable)?;
                accounts::check_key(found.as_ref(), token.unwrap_or_default())?;
                found.ok_or_else(unreachable_refusal)
            }
            ClientLookup::Guest(name) => {
                if let Some(a) = self.store.account(&name).await.map_err(unavailable)? {
                    return Ok(a);
                }
                let mut guest =
                    AccountRecord::new(&name, false, self.now()).map_err(|e| Refusal {
                        code: ErrorCode::Internal,
                        message: format!("guest account: {e}"),
                        close: "bad guest account",
                    })?;
                guest.credit_limit = u64::MAX;
                guest.quotas = Quotas::UNLIMITED;
                match self.store.insert_account(&guest).await {
                    Ok(()) => Ok(guest),
                    // Another manager of the store made it first.
                    Err(StoreError::AlreadyExists { .. }) => self
                        .store
                        .account(&name)
                        .await
                        .map_err(unavailable)?
                        .ok_or_else(unreachable_refusal),
                    Err(e) => Err(unavailable(e)),
                }
            }
        }
    }

    /// The account of client connection `conn`, read again from the store
    /// when its copy is older than `account_refresh`. A key revoked (or an
    /// account removed) since the connection was admitted refuses the
    /// request and closes the connection; a store that cannot be read
    /// leaves the copy in use.
    pub(super) async fn current_account(&mut self, conn: ConnId) -> Option<AccountRecord> {
        let now = self.now();
        let refresh = self.cfg.account_refresh.as_millis() as u64;
        let (account, key_id, read) = {
            let p = self.peers.get(&conn)?;
            (p.account.clone()?, p.key_id.clone(), p.account_read)
        };
        if now.saturating_sub(read) < refresh {
            return Some(account);
        }
        match self.store.account(&account.name).await {
            Ok(Some(fresh))
                if key_id.as_deref().is_none_or(|id| {
                    fresh
                        .keys
                        .iter()
                        .any(|k| k.id == id && k.revoked_ms.is_none())
                }) =>
            {
                if let Some(p) = self.peers.get_mut(&conn) {
                    p.account = Some(fresh.clone());
                    p.account_read = now;
                }
                Some(fresh)
            }
            Ok(_) => {
                warn!(account = %account.name, "API key revoked; client disconnected");
                None
            }
            Err(e) => {
                debug!(error = %e, "cannot read the account again; keeping its copy");
                Some(account)
            }
        }
    }

    /// The minimum stake S = 2 · E · IB · P of a worker of index `ib`.
    pub(super) fn minimum_stake(&self, ib: f64) -> i64 {
        economy::minimum_stake(&self.economy(), ib)
    }

    /// Checks (or, when the operator grants stakes, posts) a worker's
    /// stake; a ledger that cannot be reached answers `Unavailable`.
    pub(super) async fn ensure_stake(
        &mut self,
        worker: NodeId,
        ib: f64,
    ) -> Result<(), (ErrorCode, String)> {
        if self.minimum_stake(ib) <= 0 {
            return Ok(());
        }
        let ledger = |e: StoreError| {
            (
                ErrorCode::Unavailable,
                format!("cannot read the ledger: {e}"),
            )
        };
        let have = self
            .store
            .balance(&Account::Stake(worker))
            .await
            .map_err(ledger)?;
        if have >= self.minimum_stake(ib) {
            return Ok(());
        }
        let granted = self
            .store
            .transaction(&economy::stake_grant_id(worker))
            .await
            .map_err(ledger)?
            .is_some();
        match economy::stake_decision(&self.economy(), worker, ib, have, granted, self.now()) {
            StakeDecision::Enough => Ok(()),
            StakeDecision::Refuse(why) => Err((ErrorCode::Unauthorized, why)),
            StakeDecision::Grant(tx) => match self.store.append_transaction(&tx).await {
                Ok(()) | Err(StoreError::AlreadyExists { .. }) => Ok(()),
                Err(e) => Err((
                    ErrorCode::Unavailable,
                    format!("cannot record the stake: {e}"),
                )),
            },
        }
    }
}

/// A refusal for a state the checks before it rule out.
fn unreachable_refusal() -> Refusal {
    Refusal {
        code: ErrorCode::Internal,
        message: "account vanished while it was read".into(),
        close: "account vanished",
    }
}
