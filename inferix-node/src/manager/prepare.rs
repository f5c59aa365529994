//! Proof-of-Render lease preparation: watermarked scene copies and task offers.

use super::*;

impl State {
    pub(super) fn watermarker_for(&self, job: &Job) -> Option<Arc<dyn SceneWatermarker>> {
        self.por.as_ref()?;
        self.watermarkers
            .iter()
            .find(|w| w.formats().contains(&job.spec.scene.format))
            .cloned()
    }

    pub(super) async fn offer(&mut self, task: &Task, job: &Job, worker: NodeId, scene: SceneRef) {
        let now = self.now();
        let Some(conn) = self.workers.get_mut(&worker).map(|w| {
            w.last_progress = now;
            w.conn
        }) else {
            return;
        };
        let Some(lease) = &task.lease else { return };
        let offer = TaskAssignment {
            task: task.id,
            frames: task.frames.clone(),
            scene,
            settings: job.spec.settings.clone(),
            format: job.spec.format,
            deadline_ms: lease.deadline_ms,
            attempt: task.attempts,
            environment: job.spec.environment.clone(),
            region: job.spec.task_region(task.id.index),
        };
        debug!(task = ?task.id, ?worker, "leased");
        self.send(conn, Envelope::push(Message::TaskOffer(offer)))
            .await;
    }

    /// Makes the scene copy of one lease in the background: the lease's
    /// patches inserted by `marker`, uploaded as a blob of its own.
    pub(super) fn spawn_preparation(
        &self,
        marker: Arc<dyn SceneWatermarker>,
        task: &Task,
        job: &Job,
        worker: NodeId,
    ) {
        let Some(por) = &self.por else { return };
        let settings = job.spec.settings.clone();
        let patches = patches_for_lease_in(
            por,
            task.id,
            task.attempts,
            settings.width,
            settings.height,
            job.spec.task_region(task.id.index),
        );
        let (task_id, attempt) = (task.id, task.attempts);
        let scene = job.spec.scene.clone();
        let blobs = self.blobs.clone();
        let dir = self.prep_dir.clone();
        let inputs = self.inputs.clone();
        tokio::spawn(async move {
            let prepared = async {
                let plain_dir = dir.join(scene.blob.to_hex());
                inferix_core::fs::create_private_dir(&plain_dir)
                    .map_err(|e| format!("cannot create {}: {e}", plain_dir.display()))?;
                let plain = plain_dir.join(crate::safe_file_name(&scene.file_name));
                if !plain.exists() {
                    blobs
                        .get_to_file(scene.blob, &plain)
                        .await
                        .map_err(|e| format!("cannot fetch the scene: {e}"))?;
                }
                // Keep the extension: some tools read the format from it.
                let out = plain_dir.join(format!(
                    "lease-{task_id}-{attempt}-{}",
                    crate::safe_file_name(&scene.file_name)
                ));
                marker
                    .watermark(&plain, &patches, &settings, &out)
                    .await
                    .map_err(|e| format!("cannot watermark the scene: {e}"))?;
                let stored = blobs
                    .put_file(&out)
                    .await
                    .map_err(|e| format!("cannot store the watermarked scene: {e}"));
                let _ = tokio::fs::remove_file(&out).await;
                stored.map(|m| m.hash)
            }
            .await;
            let _ = inputs
                .send(Input::Prepared {
                    task: task_id,
                    attempt,
                    worker,
                    scene: prepared,
                })
                .await;
        });
    }

    pub(super) async fn on_prepared(
        &mut self,
        task_id: TaskId,
        attempt: u32,
        worker: NodeId,
        scene: Result<ContentHash, String>,
    ) {
        let Ok(Some(mut task)) = self.store.task(task_id).await else {
            return;
        };
        let current = task.status == TaskStatus::Leased
            && task.attempts == attempt
            && task.lease.as_ref().is_some_and(|l| l.worker == worker);
        if !current {
            debug!(task = ?task_id, attempt, "prepared scene of a lease that ended; dropped");
            return;
        }
        let blob = match scene {
            Ok(b) => b,
            Err(why) => {
                warn!(task = ?task_id, %why, "lease preparation failed");
                self.release_worker(worker, task_id);
                self.requeue(task_id, worker, Fault::Manager, &why).await;
                return;
            }
        };
        if let Some(l) = task.lease.as_mut() {
            l.scene = Some(blob);
        }
        if let Err(e) = self.store.update_task(&mut task).await {
            debug!(task = ?task_id, error = %e, "lease changed while preparing; dropped");
            return;
        }
        self.batch.leased(&task);
        let Some(job) = self.job(task_id.job).await else {
            return;
        };
        let scene = SceneRef {
            blob,
            ..job.spec.scene.clone()
        };
        self.offer(&task, &job, worker, scene).await;
    }
}
