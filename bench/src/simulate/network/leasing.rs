//! Dispatch passes: the engine's plan over each manager's idle workers,
//! carried out as leases (with racing managers meeting the store's
//! compare-and-set).

use super::*;

impl Sim {
    /// Each manager with idle workers runs a dispatch pass over the head of
    /// the queue; the first manager rotates so none is always first.
    pub(super) async fn dispatch(&mut self) -> Result<(), BenchError> {
        let n = self.managers.len();
        for i in 0..n {
            if self.ready.is_empty() {
                break;
            }
            let m = (self.next_manager + i) % n;
            if self.managers[m].alive && self.managers[m].pool.idle_count() > 0 {
                self.dispatch_on(m).await?;
            }
        }
        self.next_manager = (self.next_manager + 1) % n;
        Ok(())
    }

    pub(super) async fn dispatch_on(&mut self, m: usize) -> Result<(), BenchError> {
        let batch = self.managers[m].pool.idle_count().min(MAX_PASS);
        let mut queued = Vec::new();
        while queued.len() < batch {
            let Some(tid) = self.ready.pop_front() else {
                break;
            };
            if let Some(t) = self.store.task(tid).await.map_err(store_err)? {
                if t.status == TaskStatus::Queued {
                    queued.push(t);
                }
            }
        }
        let now = self.abs_ms();
        let ms = &mut self.managers[m];
        let decisions = dispatch::plan(
            &queued,
            &self.job_records,
            &ms.pool,
            &mut ms.scheduler,
            &ms.estimates,
            &self.dispatch_cfg,
            now,
        );
        let mut leased = HashSet::new();
        let mut by_id: HashMap<TaskId, Task> = queued.iter().map(|t| (t.id, t.clone())).collect();
        for d in decisions {
            match d {
                Decision::Lease { task, worker } => {
                    if let Some(t) = by_id.remove(&task) {
                        if self.lease(m, t, worker).await? {
                            leased.insert(task);
                        }
                    }
                }
                Decision::Waiting { .. } => self.c.dispatch_waits += 1,
            }
        }
        // What was not leased keeps its place at the head of the queue.
        for t in queued.iter().rev() {
            if !leased.contains(&t.id) {
                self.ready.push_front(t.id);
            }
        }
        Ok(())
    }

    /// Manager `m` leases `task` to `worker`, as the plan decided; another
    /// manager that read the same version may race it for the task.
    pub(super) async fn lease(
        &mut self,
        m: usize,
        mut task: Task,
        worker: NodeId,
    ) -> Result<bool, BenchError> {
        let Some(work) = self.jobs.get(&task.id.job).map(|j| j.work_per_frame_s) else {
            return Ok(false);
        };
        let w = worker_of_node(worker);
        let racer = if self.rng.gen_bool(self.cfg.race) {
            let other = (m + 1) % self.managers.len();
            let theirs = self.managers[other].pool.idle().next().map(|s| s.info.id);
            match theirs {
                Some(w2) if other != m && self.managers[other].alive => {
                    Some((other, w2, task.clone()))
                }
                _ => None,
            }
        } else {
            None
        };
        let frames = task.frames.len();
        // Leases last long enough for the real render (the manager node
        // extends them while the worker reports progress), so what an IB
        // liar wins or loses is the scheduler's doing alone.
        let est_ms = frames as f64 * work / self.workers[w as usize].ib * 1000.0;
        let lease_ms = (2.0 * est_ms) as u64 + 600_000;
        let now = self.abs_ms();
        let lease = Lease {
            worker,
            manager: self.managers[m].id,
            deadline_ms: now + lease_ms,
            scene: None,
        };
        task.lease(lease, now).map_err(run_err)?;
        match self.store.update_task(&mut task).await {
            Ok(()) => {}
            Err(StoreError::Conflict { .. }) => return Ok(false),
            Err(e) => return Err(store_err(e)),
        }
        self.c.leases += 1;
        self.managers[m].pool.assign(worker, task.id, frames, now);
        self.workers[w as usize].job = Some((task.id, task.attempts));
        if let Some((other, w2, mut stale)) = racer {
            let lease = Lease {
                worker: w2,
                manager: self.managers[other].id,
                deadline_ms: now + lease_ms,
                scene: None,
            };
            if stale.lease(lease, now).is_ok() {
                match self.store.update_task(&mut stale).await {
                    Err(StoreError::Conflict { .. }) => self.c.cas_conflicts += 1,
                    Ok(()) => self.c.double_claims += 1,
                    Err(e) => return Err(store_err(e)),
                }
            }
        }
        let gen = self.workers[w as usize].gen;
        if let Some(d) = self.message_delay() {
            self.at(
                d,
                Ev::Offer {
                    w,
                    task: task.id,
                    attempt: task.attempts,
                    gen,
                    frames: frames as u32,
                },
            );
        }
        self.at(
            lease_ms,
            Ev::LeaseExpiry {
                task: task.id,
                attempt: task.attempts,
            },
        );
        Ok(true)
    }
}
