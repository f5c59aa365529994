//! Hellos: admission rules from the engine, the stake check against the ledger,
//! joining workers and verifiers.

use super::*;

impl State {
    pub(super) async fn on_hello(&mut self, conn: ConnId, id: u64, node: NodeId, h: Hello) -> bool {
        let admission = AdmissionConfig {
            node_token: self.cfg.node_token.clone(),
            client_token: self.cfg.client_token.clone(),
        };
        if let Err(refusal) = check_hello(&admission, &h) {
            warn!(?node, role = ?h.role, why = refusal.close, "refused");
            self.reply(conn, id, Message::error(refusal.code, refusal.message))
                .await;
            self.refuse(conn, refusal.close).await;
            return false;
        }
        let now = self.now();
        if let Some(p) = self.peers.get_mut(&conn) {
            p.role = Some(h.role);
        }
        self.admitted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(conn);
        match h.role {
            Role::Worker => {
                if let Err((code, why)) = self.ensure_stake(node, h.ib).await {
                    // A ledger that cannot be read is the manager's trouble:
                    // the worker is told to come back, not refused for good.
                    let close = if code == ErrorCode::Unavailable {
                        "task database unavailable; try again"
                    } else {
                        "insufficient stake"
                    };
                    warn!(worker = ?node, %why, "refused: stake");
                    self.reply(conn, id, Message::error(code, why)).await;
                    self.refuse(conn, close).await;
                    return false;
                }
                // A worker reconnecting replaces its old connection.
                if let Some(old) = self.workers.get(&node).map(|w| w.conn) {
                    self.drop_peer(old, "replaced by a new connection").await;
                }
                let info = WorkerInfo {
                    id: node,
                    ib: h.ib,
                    reputation: 1.0,
                    tags: h.tags,
                };
                info!(worker = ?node, ib = info.ib, "worker joined");
                self.workers.join(conn, info, now);
                self.reconcile_worker(node).await;
            }
            Role::Verifier => {
                if let Some(old) = self.verifiers.get(&node).map(|v| v.conn) {
                    self.drop_peer(old, "replaced by a new connection").await;
                }
                info!(verifier = ?node, "verifier joined");
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
                    renders: h.tags.iter().any(|t| t == RENDER_TAG),
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
