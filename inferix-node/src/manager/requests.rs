//! Client requests: quotes, submissions, status, pause, resume, cancel.

use inferix_manager::accounts::{self, Submission};
use inferix_manager::requests;

use super::*;

impl State {
    pub(super) async fn on_client(&mut self, conn: ConnId, id: u64, body: Message) {
        let body_kind = body.kind();
        let Some(account) = self.current_account(conn).await else {
            let refusal = Message::error(
                ErrorCode::Unauthorized,
                "the API key of this connection was revoked",
            );
            self.reply(conn, id, refusal).await;
            return self.refuse(conn, "API key revoked").await;
        };
        if let Some(job) = job_asked_for(&body) {
            // Another account's job is answered as a missing one.
            let visible = self
                .job(job)
                .await
                .filter(|j| accounts::may_see(&account, j));
            if visible.is_none() {
                let (code, m) = accounts::not_found(job);
                return self.reply(conn, id, Message::error(code, m)).await;
            }
        }
        match body {
            Message::QuoteRequest { spec } => self.start_quote(conn, id, spec, false),
            Message::Submit { spec } => self.start_quote(conn, id, spec, true),
            Message::StatusRequest { job, from_task } => {
                let reply = match self.status(job, from_task).await {
                    Ok(s) => Message::StatusReply(Box::new(s)),
                    Err((c, m)) => Message::error(c, m),
                };
                self.reply(conn, id, reply).await;
            }
            Message::Watch { job } => match self.job(job).await {
                None => {
                    self.reply(
                        conn,
                        id,
                        Message::error(ErrorCode::NotFound, format!("job {job} not found")),
                    )
                    .await
                }
                Some(j) => {
                    if let Err(message) = self.add_watcher(job, conn) {
                        let refusal = Message::error(ErrorCode::InvalidRequest, message);
                        return self.reply(conn, id, refusal).await;
                    }
                    self.reply(conn, id, Message::Ok).await;
                    // A watcher of a job whose outputs are made learns so,
                    // as one watching all along did.
                    let outputs = (j.state == JobState::Completed)
                        .then(|| super::outputs::outputs_finished(&j))
                        .flatten();
                    let ev = match j.state {
                        JobState::Completed => Some(JobEvent::Completed { job }),
                        JobState::Cancelled => Some(JobEvent::Cancelled),
                        JobState::Failed => Some(JobEvent::Failed {
                            reason: j.waiting_reason.unwrap_or_default(),
                        }),
                        _ => j.waiting_reason.map(|reason| JobEvent::Waiting { reason }),
                    };
                    for ev in ev.into_iter().chain(outputs) {
                        self.send(conn, Envelope::push(Message::Event { job, event: ev }))
                            .await;
                    }
                }
            },
            Message::Cancel { job } => {
                let reply = match self.cancel(job).await {
                    Ok(()) => Message::Ok,
                    Err((c, m)) => Message::error(c, m),
                };
                self.reply(conn, id, reply).await;
            }
            Message::Pause { job } | Message::Resume { job } => {
                let pause = matches!(body_kind, "pause");
                let reply = match self.pause(job, pause).await {
                    Ok(()) => Message::Ok,
                    Err((c, m)) => Message::error(c, m),
                };
                self.reply(conn, id, reply).await;
            }
            Message::Claim {
                job,
                frames,
                reason,
            } => {
                let reply = match self.file_claim(&account, job, frames, reason).await {
                    Ok(claim) => Message::ClaimFiled { claim },
                    Err((c, m)) => Message::error(c, m),
                };
                self.reply(conn, id, reply).await;
            }
            Message::ListJobs { all } => {
                let reply = match self.list_jobs(&account, all).await {
                    Ok(jobs) => Message::JobList(jobs),
                    Err((c, m)) => Message::error(c, m),
                };
                self.reply(conn, id, reply).await;
            }
            Message::NodeControl { node, action } => {
                let reply = match self.node_control(&account, node, action).await {
                    Ok(()) => Message::Ok,
                    Err((c, m)) => Message::error(c, m),
                };
                self.reply(conn, id, reply).await;
            }
            Message::LedgerRequest => {
                let reply = match self.ledger_totals(&account).await {
                    Ok(t) => Message::LedgerReply(t),
                    Err((c, m)) => Message::error(c, m),
                };
                self.reply(conn, id, reply).await;
            }
            Message::ListNodes => {
                let reply = match self.list_nodes(&account).await {
                    Ok(nodes) => {
                        // Only for operators, who may list the nodes anyway.
                        self.count_nodes();
                        Message::NodeList(nodes)
                    }
                    Err((c, m)) => Message::error(c, m),
                };
                self.reply(conn, id, reply).await;
            }
            other => {
                let m = format!("{} is not a client request", other.kind());
                self.reply(conn, id, Message::error(ErrorCode::UnexpectedMessage, m))
                    .await;
            }
        }
    }

    /// Adds `conn` to `job`'s watchers once, within the per-client limit.
    fn add_watcher(&mut self, job: JobId, conn: ConnId) -> Result<(), String> {
        let list = self.watchers.entry(job).or_default();
        if list.contains(&conn) {
            return Ok(());
        }
        let limit = self.cfg.max_watches_per_client;
        let Some(peer) = self.peers.get_mut(&conn) else {
            return Err("not connected".into());
        };
        if peer.watching >= limit {
            if list.is_empty() {
                self.watchers.remove(&job);
            }
            return Err(format!(
                "this connection already watches {limit} jobs, the limit; \
                 watch fewer at once or use another connection"
            ));
        }
        peer.watching += 1;
        list.push(conn);
        Ok(())
    }

    /// Quotes off the manager loop (a probe render takes a while); the
    /// answer comes back as an input.
    pub(super) fn start_quote(&mut self, conn: ConnId, id: u64, spec: JobSpec, submit: bool) {
        let blobs = self.blobs.clone();
        let prober = self.prober.clone();
        let inspector = self
            .inspectors
            .iter()
            .find(|i| i.formats().contains(&spec.scene.format))
            .cloned();
        let price = self.cfg.price_per_ibm;
        let size = requests::check_job_size(&spec, self.cfg.max_tasks_per_job);
        let inputs = self.inputs.clone();
        let scratch = self.prep_dir.clone();
        let trial = self.por.as_ref().and_then(|por| {
            Some(WatermarkTrial {
                marker: self
                    .watermarkers
                    .iter()
                    .find(|w| w.formats().contains(&spec.scene.format))?
                    .clone(),
                por: por.clone(),
                scratch: self.prep_dir.clone(),
                passed: self.watermark_trials.clone(),
            })
        });
        tokio::spawn(async move {
            let mut result = match size {
                // Refused before the scene is read or probed.
                Err(refusal) => Err(refusal),
                Ok(()) => {
                    quote(
                        &spec,
                        &*blobs,
                        prober.as_deref(),
                        inspector,
                        price,
                        &scratch,
                    )
                    .await
                }
            };
            if let (Ok(_), Some(trial)) = (&result, trial) {
                if let Err(e) = trial.check(&spec, &*blobs).await {
                    result = Err(e);
                }
            }
            let _ = inputs
                .send(Input::Quoted {
                    conn,
                    id,
                    spec: Box::new(spec),
                    submit,
                    result,
                })
                .await;
        });
    }

    pub(super) async fn create_job(
        &mut self,
        conn: ConnId,
        spec: JobSpec,
        quote: Quote,
    ) -> Result<JobId, (ErrorCode, String)> {
        let account = self
            .peers
            .get(&conn)
            .and_then(|p| p.account.clone())
            .ok_or((ErrorCode::Unauthorized, "not a client".to_string()))?;
        let payer = account.ledger_account();
        let balance = self.store.balance(&payer).await.map_err(store_err)?;
        let active: Vec<Job> = self
            .store
            .jobs()
            .await
            .map_err(store_err)?
            .into_iter()
            .filter(|j| j.owner.as_deref() == Some(account.name.as_str()) && !j.state.is_terminal())
            .collect();
        let scene_bytes = self
            .scene_bytes(active.iter().map(|j| &j.spec).chain([&spec]))
            .await?;
        accounts::check_submission(
            &account,
            Submission {
                price: quote.total_price,
                frames: spec.frames.len(),
                balance,
                active_jobs: active.len() as u64,
                scene_bytes,
            },
        )?;
        let job_id = JobId::random();
        let tasks = spec
            .split(job_id)
            .map_err(|e| (ErrorCode::InvalidRequest, e.to_string()))?;
        let now = self.now();
        let tasks: Vec<Task> = tasks
            .into_iter()
            .map(|t| Task::new(t.id, t.frames, now))
            .collect();
        // Listed as pending from the start, so the status shows what comes.
        let outputs = super::outputs::pending_outputs(&spec);
        let job = Job {
            id: job_id,
            spec,
            state: JobState::Active,
            created_ms: now,
            quoted_price: quote.total_price,
            waiting_reason: None,
            blocklist: Vec::new(),
            history: vec![inferix_core::job::JobStateChange {
                state: JobState::Active,
                at_ms: now,
                note: format!("submitted; quoted {}", quote.total_price),
            }],
            warnings: quote.warnings.clone(),
            lease_copies_removed: false,
            owner: Some(account.name.clone()),
            outputs,
        };
        self.store
            .insert_job(&job, &tasks)
            .await
            .map_err(store_err)?;
        let fund = Transaction::transfer(
            format!("fund:{job_id}"),
            now,
            "escrow at submission",
            payer,
            Account::Job(job_id),
            quote.total_price as i64,
        );
        if let Err(e) = self.store.append_transaction(&fund).await {
            warn!(job = ?job_id, error = %e, "cannot record escrow");
        }
        info!(job = ?job_id, tasks = tasks.len(), price = quote.total_price, "job submitted");
        self.jobs.insert(job_id, job);
        Ok(job_id)
    }

    /// Bytes of the distinct scenes and environment maps of `specs`, as
    /// blob storage has them.
    async fn scene_bytes(
        &self,
        specs: impl Iterator<Item = &JobSpec>,
    ) -> Result<u64, (ErrorCode, String)> {
        let blobs: HashSet<ContentHash> = specs
            .flat_map(|s| {
                std::iter::once(s.scene.blob).chain(s.environment.as_ref().map(|e| e.blob))
            })
            .collect();
        let mut total = 0u64;
        for hash in blobs {
            let size = self.blobs.size(hash).await.map_err(|e| {
                (
                    ErrorCode::Unavailable,
                    format!("cannot read blob sizes: {e}"),
                )
            })?;
            total = total.saturating_add(size.unwrap_or(0));
        }
        Ok(total)
    }

    /// A page of a job's status: its counts, and the accepted frames of
    /// the tasks from `from_task` on, at most about `status_page_frames`.
    pub(super) async fn status(
        &mut self,
        job_id: JobId,
        from_task: u32,
    ) -> Result<JobStatus, (ErrorCode, String)> {
        let job = self
            .store
            .job(job_id)
            .await
            .map_err(store_err)?
            .ok_or((ErrorCode::NotFound, format!("job {job_id} not found")))?;
        let counts = self
            .store
            .status_counts(job_id)
            .await
            .map_err(store_err)?
            .into_iter()
            .map(|c| (c.status, c.tasks))
            .collect();
        let page = requests::status_page_tasks(job.spec.chunk_size, self.cfg.status_page_frames);
        // One more than the page, to learn whether another page follows.
        let mut tasks = self
            .store
            .tasks_of_job_page(job_id, from_task, page + 1)
            .await
            .map_err(store_err)?;
        let next_task = (tasks.len() > page).then(|| tasks[page].id.index);
        tasks.truncate(page);
        let stuck = self.round_waiting.iter().map(|(t, why)| (*t, why.as_str()));
        let mut status = requests::job_status(job, counts, &tasks, stuck);
        status.next_task = next_task;
        Ok(status)
    }

    /// Pauses (no new leases; running tasks finish) or resumes a job.
    pub(super) async fn pause(
        &mut self,
        job_id: JobId,
        pause: bool,
    ) -> Result<(), (ErrorCode, String)> {
        let mut job = self
            .store
            .job(job_id)
            .await
            .map_err(store_err)?
            .ok_or((ErrorCode::NotFound, format!("job {job_id} not found")))?;
        let Some((to, note)) = requests::pause_change(job.state, pause)
            .map_err(|why| (ErrorCode::InvalidRequest, format!("job {job_id} {why}")))?
        else {
            return Ok(());
        };
        job.set_state(to, self.now(), note);
        self.waiting.remove(&job_id);
        self.save_job(job).await;
        let reason = if pause {
            "paused by the user"
        } else {
            "resumed"
        };
        self.emit(
            job_id,
            JobEvent::Waiting {
                reason: reason.into(),
            },
        )
        .await;
        Ok(())
    }

    pub(super) async fn cancel(&mut self, job_id: JobId) -> Result<(), (ErrorCode, String)> {
        let mut job = self
            .store
            .job(job_id)
            .await
            .map_err(store_err)?
            .ok_or((ErrorCode::NotFound, format!("job {job_id} not found")))?;
        requests::may_cancel(job.state)
            .map_err(|why| (ErrorCode::InvalidRequest, format!("job {job_id} {why}")))?;
        job.set_state(JobState::Cancelled, self.now(), "cancelled by the user");
        self.save_job(job).await;
        let now = self.now();
        for mut t in self.store.tasks_of_job(job_id).await.map_err(store_err)? {
            if let Some(l) = t.lease.clone() {
                self.revoke(l.worker, t.id).await;
            }
            let copy = super::collect::lease_copy(&t);
            if !t.status.is_terminal()
                && t.transition(TaskStatus::Cancelled, now, "job cancelled")
                    .is_ok()
                && self.store.update_task(&mut t).await.is_ok()
            {
                self.discard_lease_copy(job_id, copy).await;
            }
            if self.engine.has_round(t.id) {
                self.round_tasks.remove(&t.id);
                self.check_levels.remove(&t.id);
                self.round_waiting.remove(&t.id);
                self.engine_defer(EngineEvent::RoundAbandoned { task: t.id });
            }
        }
        self.run_engine_commands().await;
        self.refund_escrow(job_id, "job cancelled: unspent escrow")
            .await;
        self.emit(job_id, JobEvent::Cancelled).await;
        Ok(())
    }
}

/// The job a client request is about, when it is about one.
fn job_asked_for(body: &Message) -> Option<JobId> {
    match body {
        Message::StatusRequest { job, .. }
        | Message::Watch { job }
        | Message::Cancel { job }
        | Message::Pause { job }
        | Message::Resume { job }
        | Message::Claim { job, .. } => Some(*job),
        _ => None,
    }
}
