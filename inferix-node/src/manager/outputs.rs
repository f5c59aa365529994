//! Consolidation: once every frame of a job is accepted, the outputs its
//! spec asks for (video, archives, previews, contact sheet) are made from
//! the delivered frames, off the manager's loop, each stored as a blob and
//! recorded on the job as ready or failed.
//!
//! The job is Completed before consolidation starts and stays so: an
//! output that cannot be made (ffmpeg missing or failing) is marked failed
//! with the reason, and the frames are neither changed nor lost. The
//! outputs live on the job record, so they survive a restart; outputs
//! still pending when a manager starts are made again.

use inferix_core::job::OutputFormat;
use inferix_core::outputs::{JobOutput, OutputRequest, OutputState};

use super::*;
use crate::outputs::{self, Sequence};

impl State {
    /// Starts making `job`'s pending outputs; each comes back as
    /// [`Input::OutputMade`].
    pub(super) fn start_outputs(&self, job: &Job) {
        let pending: Vec<OutputRequest> = job
            .outputs
            .iter()
            .filter(|o| o.state == OutputState::Pending)
            .map(|o| o.request)
            .collect();
        if pending.is_empty() {
            return;
        }
        info!(job = ?job.id, outputs = pending.len(), "making the job's outputs");
        let ctx = Consolidation {
            job: job.id,
            tiled: job.spec.tiles.is_some(),
            format: job.spec.format,
            size: (job.spec.settings.width, job.spec.settings.height),
            store: self.store.clone(),
            blobs: self.blobs.clone(),
            ffmpeg: self.cfg.ffmpeg.clone(),
            // Beside the prepared scene copies, in the manager's scratch.
            work: self
                .prep_dir
                .with_file_name("outputs")
                .join(job.id.to_string()),
            inputs: self.inputs.clone(),
        };
        tokio::spawn(ctx.run(pending));
    }

    /// Records an output made (or failed) and, once none is pending, tells
    /// the job's watchers.
    pub(super) async fn on_output_made(
        &mut self,
        job_id: JobId,
        request: OutputRequest,
        result: Result<(ContentHash, u64), String>,
    ) {
        let Some(mut job) = self.job(job_id).await else {
            return;
        };
        let Some(out) = job.outputs.iter_mut().find(|o| o.request == request) else {
            return;
        };
        out.state = match result {
            Ok((blob, size)) => {
                info!(job = ?job_id, output = request.name(), size, "output ready");
                OutputState::Ready { blob, size }
            }
            Err(reason) => {
                warn!(job = ?job_id, output = request.name(), %reason, "output failed");
                OutputState::Failed { reason }
            }
        };
        let finished = outputs_finished(&job);
        self.save_job(job).await;
        if let Some(ev) = finished {
            self.emit(job_id, ev).await;
        }
    }

    /// Makes again the outputs of completed jobs still pending when this
    /// manager started (the one making them stopped), and keeps for
    /// housekeeping the jobs every task of which was accepted but which
    /// did not complete (stopped before, or stitching failed).
    pub(super) async fn recover_finishing_jobs(&mut self, jobs: &[Job]) {
        for job in jobs {
            if job.state == JobState::Completed
                && job.outputs.iter().any(|o| o.state == OutputState::Pending)
            {
                self.start_outputs(job);
            } else if !job.state.is_terminal()
                && self
                    .store
                    .status_counts(job.id)
                    .await
                    .is_ok_and(|c| StatusCount::all_accepted(&c))
            {
                self.unfinished.insert(job.id);
            }
        }
    }
}

/// What `job`'s watchers are told once none of the outputs it asked for is
/// pending: how many failed. `None` while one is, or when it asked for
/// none.
pub(super) fn outputs_finished(job: &Job) -> Option<JobEvent> {
    if job.outputs.is_empty() || job.outputs.iter().any(|o| o.state == OutputState::Pending) {
        return None;
    }
    let failed = job
        .outputs
        .iter()
        .filter(|o| matches!(o.state, OutputState::Failed { .. }))
        .count() as u32;
    Some(JobEvent::OutputsFinished {
        job: job.id,
        failed,
    })
}

/// The pending outputs asked for by a job's spec, recorded when it
/// completes.
pub(super) fn pending_outputs(spec: &JobSpec) -> Vec<JobOutput> {
    spec.outputs
        .iter()
        .map(|r| JobOutput::pending(*r))
        .collect()
}

/// What one job's consolidation needs, moved off the loop.
struct Consolidation {
    job: JobId,
    /// A tile job: its frames are the stitched ones.
    tiled: bool,
    format: OutputFormat,
    size: (u32, u32),
    store: Arc<dyn TaskStore>,
    blobs: Arc<dyn BlobStore>,
    ffmpeg: PathBuf,
    work: PathBuf,
    inputs: mpsc::Sender<Input>,
}

impl Consolidation {
    async fn run(self, requests: Vec<OutputRequest>) {
        let seq = self.fetch_frames().await;
        for request in requests {
            let result = match &seq {
                Ok(seq) => self.make(request, seq.clone()).await,
                Err(e) => Err(e.clone()),
            };
            let _ = self
                .inputs
                .send(Input::OutputMade {
                    job: self.job,
                    request,
                    result,
                })
                .await;
        }
        let _ = tokio::fs::remove_dir_all(&self.work).await;
    }

    /// The frames the job delivers (stitched ones for a tile job), read
    /// from the blob store into `work/frames`.
    async fn fetch_frames(&self) -> Result<Sequence, String> {
        let tasks = self
            .store
            .tasks_of_job(self.job)
            .await
            .map_err(|e| format!("cannot read the job's tasks: {e}"))?;
        let frames = inferix_core::task::job_frames(self.tiled, &tasks);
        let dir = self.work.join("frames");
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        let ext = self.format.extension();
        let mut seq = Sequence {
            format: self.format,
            size: self.size,
            frames: Vec::with_capacity(frames.len()),
        };
        for f in frames {
            let path = dir.join(Sequence::entry_name(f.frame, ext));
            self.blobs
                .get_to_file(f.blob, &path)
                .await
                .map_err(|e| format!("cannot read frame {}: {e}", f.frame))?;
            seq.frames.push((f.frame, path));
        }
        Ok(seq)
    }

    /// Makes one output (CPU work and ffmpeg: on a blocking thread) and
    /// stores it.
    async fn make(
        &self,
        request: OutputRequest,
        seq: Sequence,
    ) -> Result<(ContentHash, u64), String> {
        let work = self.work.join(request.name());
        let ffmpeg = self.ffmpeg.clone();
        let made =
            tokio::task::spawn_blocking(move || outputs::make(&request, &seq, &work, &ffmpeg))
                .await
                .map_err(|e| format!("making it crashed: {e}"))?
                .map_err(|e| e.to_string())?;
        let meta = self
            .blobs
            .put_file(&made)
            .await
            .map_err(|e| format!("cannot store it: {e}"))?;
        let _ = tokio::fs::remove_file(&made).await;
        Ok((meta.hash, meta.size))
    }
}
