//! Modelled verifiers joining managers, and managers crashing with their
//! engine's state, restarting, and adopting orphaned rounds.

use super::*;

impl Sim {
    pub(super) async fn verifier_join(&mut self, v: u32) -> Result<(), BenchError> {
        if self.verifiers[v as usize].manager.is_some() || self.verifiers[v as usize].removed {
            return Ok(());
        }
        let Some(m) = self.random_alive_manager() else {
            self.at(30_000, Ev::VerifierJoin { v });
            return Ok(());
        };
        self.attach_verifier(v, m).await
    }

    pub(super) async fn attach_verifier(&mut self, v: u32, m: usize) -> Result<(), BenchError> {
        self.verifiers[v as usize].manager = Some(m);
        let ev = Event::VerifierJoined {
            verifier: node_of_verifier(v),
            formats: vec![inferix_core::renderer::SceneFormat::Gltf],
            standing: Default::default(),
        };
        self.engine_event(m, ev).await
    }

    /// A manager dies with its engine's state; its workers and verifiers
    /// reconnect elsewhere and its open rounds are adopted later.
    pub(super) fn manager_crash(&mut self) {
        let alive: Vec<usize> = (0..self.managers.len())
            .filter(|&m| self.managers[m].alive)
            .collect();
        if alive.len() < 2 {
            return;
        }
        let m = alive[self.rng.gen_range(0..alive.len())];
        self.c.manager_crashes += 1;
        let ms = &mut self.managers[m];
        ms.alive = false;
        ms.epoch += 1;
        ms.engine = Engine::new(self.round_cfg.clone());
        ms.pool = WorkerPool::default();
        ms.estimates = Estimates::default();
        for w in 0..self.workers.len() as u32 {
            let ws = &mut self.workers[w as usize];
            if ws.manager == Some(m) {
                ws.manager = None;
                // The session ends: a render in progress is abandoned and
                // its lease left to expire.
                ws.job = None;
                ws.gen += 1;
                if ws.alive {
                    let d = self.rng.gen_range(1_000..30_000);
                    self.at(d, Ev::WorkerJoin { w });
                }
            }
        }
        for v in 0..self.verifiers.len() as u32 {
            if self.verifiers[v as usize].manager == Some(m) {
                self.verifiers[v as usize].manager = None;
                let d = self.rng.gen_range(1_000..30_000);
                self.at(d, Ev::VerifierJoin { v });
            }
        }
        let orphans: Vec<TaskId> = self
            .rounds
            .iter()
            .filter(|(_, r)| r.manager == m)
            .map(|(t, _)| *t)
            .collect();
        // Another manager presumes a round lost after twice the vote
        // timeout, as the manager node's housekeeping does.
        let lost_after = 2 * self.round_cfg.vote_timeout_ms;
        for t in orphans {
            self.rounds.remove(&t);
            self.at(lost_after, Ev::Adopt { task: t });
        }
        let back = self.rng.gen_range(60_000..600_000);
        self.at(back, Ev::ManagerRestart { m });
    }

    /// A manager comes back empty; verifiers rebalance onto it (each moves
    /// with the chance that it would have picked it).
    pub(super) async fn manager_restart(&mut self, m: usize) -> Result<(), BenchError> {
        self.managers[m].alive = true;
        let epoch = self.managers[m].epoch;
        self.at(TICK_MS, Ev::Tick { m, epoch });
        let alive = self.managers.iter().filter(|ms| ms.alive).count() as f64;
        for v in 0..self.verifiers.len() as u32 {
            let Some(old) = self.verifiers[v as usize].manager else {
                continue;
            };
            if old != m && self.rng.gen_bool(1.0 / alive) {
                let left = Event::VerifierLeft {
                    verifier: node_of_verifier(v),
                };
                self.verifiers[v as usize].manager = None;
                self.engine_event(old, left).await?;
                self.attach_verifier(v, m).await?;
            }
        }
        Ok(())
    }

    pub(super) async fn adopt(&mut self, tid: TaskId) -> Result<(), BenchError> {
        let Some(m) = self.random_alive_manager() else {
            self.at(60_000, Ev::Adopt { task: tid });
            return Ok(());
        };
        if self.rounds.contains_key(&tid) {
            return Ok(());
        }
        let Some(mut task) = self.store.task(tid).await.map_err(store_err)? else {
            return Ok(());
        };
        if task.status != TaskStatus::Verifying {
            return Ok(());
        }
        let Some(result) = task.result.clone() else {
            return Ok(());
        };
        task.transition(
            TaskStatus::Rendered,
            self.abs_ms(),
            "verification round lost with its manager",
        )
        .map_err(run_err)?;
        self.store.update_task(&mut task).await.map_err(store_err)?;
        self.c.adopted += 1;
        let w = worker_of_node(result.worker);
        let fake = result.frames.first().is_some_and(|f| {
            f.pixel_hash != ContentHash::of(&[f.frame.to_le_bytes(), [0; 4]].concat())
        });
        self.start_round(m, task, w, fake).await
    }
}
