//! Connections: inputs from the accept loop, peer messages by role, refusing
//! and dropping peers.

use super::*;

impl State {
    /// Returns whether scheduling may have changed.
    pub(super) async fn on_input(&mut self, input: Input) -> bool {
        // A peer's results are recorded before whatever it does next.
        let overtakes = match &input {
            Input::Disconnected(conn) | Input::Received(conn, _) => self.batch.waits_for(*conn),
            _ => false,
        };
        if overtakes {
            self.flush_results().await;
        }
        match input {
            Input::Connected(conn, node, sender) => {
                self.peers.insert(
                    conn,
                    Peer {
                        node,
                        role: None,
                        account: None,
                        key_id: None,
                        account_read: 0,
                        operator: None,
                        stake_ib: 0.0,
                        probing: None,
                        out: Outbound::spawn(sender, OUTBOUND_CAPACITY),
                        watching: 0,
                    },
                );
                false
            }
            Input::Disconnected(conn) => {
                self.drop_peer(conn, "connection closed").await;
                true
            }
            Input::StorageFailed(reason) => {
                self.storage_failed(reason).await;
                false
            }
            Input::Received(conn, env) => self.on_message(conn, *env).await,
            Input::Quoted {
                conn,
                id,
                spec,
                submit,
                result,
            } => {
                match result {
                    Err((code, msg)) => self.reply(conn, id, Message::error(code, msg)).await,
                    Ok(q) if !submit => self.reply(conn, id, Message::QuoteReply(q)).await,
                    Ok(q) => {
                        let body = match self.create_job(conn, *spec, q.clone()).await {
                            Ok(job) => Message::Submitted { job, quote: q },
                            Err((code, msg)) => Message::error(code, msg),
                        };
                        self.reply(conn, id, body).await;
                    }
                }
                true
            }
            Input::ProbeExpected {
                conn,
                image,
                elapsed_ms,
            } => {
                self.on_probe_expected(conn, image, elapsed_ms).await;
                true
            }
            Input::Prepared {
                task,
                attempt,
                worker,
                scene,
            } => {
                self.on_prepared(task, attempt, worker, scene).await;
                true
            }
            Input::OwnCheck {
                task,
                kind,
                outcome,
            } => {
                self.on_own_check(task, kind, outcome).await;
                true
            }
            Input::OutputMade {
                job,
                request,
                result,
            } => {
                self.on_output_made(job, request, result).await;
                false
            }
            Input::ResultSigned {
                conn,
                id,
                worker,
                task,
                result,
                signature,
            } => {
                self.on_result_signed(conn, id, worker, task, *result, signature)
                    .await;
                true
            }
        }
    }

    /// Drops a refused peer's state at once but closes its connection only
    /// after a short linger, so the refusal it was just sent reaches it
    /// (closing a QUIC connection discards unsent data).
    pub(super) async fn refuse(&mut self, conn: ConnId, why: &str) {
        let Some(p) = self.peers.get(&conn) else {
            return;
        };
        p.out.close_after(REFUSAL_LINGER, why.to_string());
        self.drop_peer_keeping_connection(conn, why).await;
    }

    pub(super) async fn drop_peer(&mut self, conn: ConnId, why: &str) {
        if let Some(p) = self.peers.get(&conn) {
            p.out.close(why);
        }
        self.drop_peer_keeping_connection(conn, why).await;
    }

    pub(super) async fn drop_peer_keeping_connection(&mut self, conn: ConnId, why: &str) {
        let Some(peer) = self.peers.remove(&conn) else {
            return;
        };
        self.access.forget(conn);
        if peer.watching > 0 {
            self.watchers.retain(|_, list| {
                list.retain(|c| *c != conn);
                !list.is_empty()
            });
        }
        if self.workers.get(&peer.node).is_some_and(|w| w.conn == conn) {
            let slot = self.workers.leave(peer.node);
            info!(worker = ?peer.node, why, "worker left");
            if let Some(task) = slot.and_then(|s| s.task()) {
                self.count_failure(task.job, peer.node).await;
                self.requeue(
                    task,
                    peer.node,
                    Fault::Worker(peer.node),
                    &format!("worker {:?} left: {why}", peer.node),
                )
                .await;
            }
        }
        if self
            .verifiers
            .get(&peer.node)
            .is_some_and(|v| v.conn == conn)
        {
            self.verifiers.remove(&peer.node);
            info!(verifier = ?peer.node, why, "verifier left");
            // Carried out by the caller's loop: dropping a peer happens
            // while commands are being carried out (a slashed worker).
            self.engine_defer(EngineEvent::VerifierLeft {
                verifier: peer.node,
            });
        }
    }

    pub(super) async fn on_message(&mut self, conn: ConnId, env: Envelope) -> bool {
        let Some(peer) = self.peers.get(&conn) else {
            return false;
        };
        let (node, role, probing) = (peer.node, peer.role, peer.probing.is_some());
        if env.version != PROTOCOL_VERSION {
            warn!(
                conn,
                version = env.version,
                "peer speaks another protocol version"
            );
            let msg = format!(
                "protocol version {} not supported; this manager speaks {PROTOCOL_VERSION}",
                env.version
            );
            self.reply(
                conn,
                env.id,
                Message::error(ErrorCode::VersionMismatch, msg),
            )
            .await;
            self.refuse(conn, "protocol version mismatch").await;
            return true;
        }
        let now = self.now();
        self.workers.heard(node, now);
        if let Some(v) = self.verifiers.get_mut(&node) {
            v.last_seen = now;
        }
        let id = env.id;
        match (role, env.body) {
            (None, Message::Hello(h)) if !probing => self.on_hello(conn, id, node, h).await,
            (None, Message::ProbeDone { png }) => {
                self.on_probe_done(conn, id, png).await;
                true
            }
            (None, other) => {
                let m = format!("expected hello, got {}", other.kind());
                self.reply(conn, id, Message::error(ErrorCode::UnexpectedMessage, m))
                    .await;
                false
            }
            (Some(_), Message::Heartbeat) => false,
            (Some(Role::Worker), Message::TaskDone { task, result }) => {
                let current = self.workers.get(&node).and_then(|w| w.task());
                if current != Some(task) {
                    // A late result of an earlier lease (or a made-up one):
                    // refused, and the current lease is left alone.
                    let m = format!("{task:?} is not leased to you now; result ignored");
                    self.reply(conn, id, Message::error(ErrorCode::UnexpectedMessage, m))
                        .await;
                    return false;
                }
                let span =
                    tracing::info_span!("result", job = %task.job, task = %task, worker = %node);
                tracing::Instrument::instrument(
                    self.on_task_done(conn, id, node, current, result),
                    span,
                )
                .await;
                true
            }
            (
                Some(Role::Worker),
                Message::TaskFailed { task, .. } | Message::TaskReleased { task },
            ) if self.workers.get(&node).and_then(|w| w.task()) != Some(task) => {
                // Only the holder of a lease may give it up or fail it.
                debug!(
                    ?node,
                    ?task,
                    "hand-back or failure for a task not leased to the sender ignored"
                );
                false
            }
            (Some(Role::Worker), Message::TaskFailed { task, error, cause }) => {
                self.release_worker(node, task);
                if cause == FailureCause::Storage && self.storage_outage.is_none() {
                    // A worker writing to the blob store directly (S3) is
                    // believed only when the manager's own write fails too.
                    self.confirm_storage_failure().await;
                }
                if self.storage_outage.is_some() {
                    // Its upload hit the manager's failing store: neither
                    // the worker's fault nor the task's.
                    let why = format!("the manager's blob store failed: {error}");
                    self.requeue(task, node, Fault::Manager, &why).await;
                } else {
                    self.count_failure(task.job, node).await;
                    let why = format!("worker failed: {error}");
                    let fault = self.failure_fault(node).await;
                    self.requeue(task, node, fault, &why).await;
                }
                true
            }
            (Some(Role::Worker), Message::TaskReleased { task }) => {
                self.count_failure(task.job, node).await;
                self.release_worker(node, task);
                self.requeue(task, node, Fault::Worker(node), "handed back by worker")
                    .await;
                true
            }
            (Some(Role::Worker), Message::TaskProgress { task, .. }) => {
                let now = self.now();
                if let Some(w) = self
                    .workers
                    .get_mut(&node)
                    .filter(|w| w.task() == Some(task))
                {
                    w.last_progress = now;
                }
                false
            }
            (Some(Role::Verifier), Message::VerifyDone(v)) => {
                let span = tracing::info_span!("verdict", job = %v.task.job, task = %v.task, verifier = %node);
                tracing::Instrument::instrument(self.on_verdict(node, v), span).await;
                true
            }
            (Some(Role::Client), body) => {
                self.on_client(conn, id, body).await;
                true
            }
            (Some(r), other) => {
                let m = format!("{} is not a message a {r:?} may send", other.kind());
                warn!(conn, ?node, "{m}");
                self.reply(conn, id, Message::error(ErrorCode::UnexpectedMessage, m))
                    .await;
                false
            }
        }
    }
}
