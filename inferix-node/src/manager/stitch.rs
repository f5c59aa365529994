//! Tile jobs: once every tile of a chunk's frames is accepted, the
//! manager pastes the tiles' delivered files (clean when they carried
//! watermark patches) into whole frames, kept on the chunk's first tile
//! task ([`Task::stitched`]). The renderers are deterministic per pixel,
//! so the stitched frame equals the frame rendered whole.

use inferix_core::image::Rect;
use inferix_core::por::merkle::TileTree;
use inferix_core::task::FrameOutput;

use super::*;
use crate::frame_codec::{self, FramePixels};

impl State {
    /// Stitches the frames of `task`'s chunk when `task`, just accepted,
    /// was its last tile to be. False when stitching failed: the job is
    /// then kept for housekeeping to stitch again, and its frames are
    /// missing from its status until then.
    pub(super) async fn stitch_tiles(&mut self, task: TaskId) -> bool {
        let Some(job) = self.job(task.job).await else {
            return true;
        };
        let per_frame = job.spec.tiles_per_frame() as u32;
        if job.spec.tiles.is_none() || per_frame == 0 {
            return true;
        }
        let first = first_of(task, per_frame);
        // The chunk's tiles in one read.
        let Ok(tiles) = self
            .store
            .tasks_of_job_page(task.job, first.index, per_frame as usize)
            .await
        else {
            self.unfinished.insert(task.job);
            return false;
        };
        let whole = tiles.len() == per_frame as usize
            && tiles
                .iter()
                .zip(first.index..)
                .all(|(t, index)| t.id.index == index && t.status == TaskStatus::Accepted);
        if !whole {
            // Not every tile is accepted yet: the last one stitches.
            return true;
        }
        let stitched = match self.stitch(&job, &tiles).await {
            Ok(frames) => self.keep_stitched(first, frames).await,
            Err(e) => Err(e),
        };
        match stitched {
            Ok(()) => true,
            Err(e) => {
                warn!(?task, error = %e, "tiles not stitched; trying again later");
                self.unfinished.insert(task.job);
                false
            }
        }
    }

    /// Completes a job whose every task is accepted, once (for a tile job)
    /// every chunk is stitched. Until stitching succeeds the job waits,
    /// saying why, and housekeeping tries again: a completed job always
    /// has all its frames.
    pub(super) async fn finish_job(&mut self, job_id: JobId) {
        let Some(mut job) = self.job(job_id).await else {
            self.unfinished.remove(&job_id);
            return;
        };
        if job.spec.tiles.is_some() {
            if let Err(e) = self.stitch_missing(&job).await {
                warn!(job = ?job_id, error = %e, "every tile accepted, stitching failed; trying again later");
                self.unfinished.insert(job_id);
                let reason =
                    format!("every tile is accepted; stitching failed and is retried: {e}");
                if job.waiting_reason.as_deref() != Some(reason.as_str()) {
                    job.waiting_reason = Some(reason.clone());
                    self.save_job(job).await;
                    self.emit(job_id, JobEvent::Waiting { reason }).await;
                }
                return;
            }
        }
        self.unfinished.remove(&job_id);
        self.complete_job(job_id).await;
    }

    /// Housekeeping: finishes the jobs kept in `unfinished`, or stitches
    /// what can be stitched of those still rendering.
    pub(super) async fn finish_unfinished(&mut self) {
        for job_id in std::mem::take(&mut self.unfinished) {
            let Some(job) = self.job(job_id).await else {
                continue;
            };
            if job.state.is_terminal() {
                continue;
            }
            match self.store.status_counts(job_id).await {
                Ok(counts) if StatusCount::all_accepted(&counts) => self.finish_job(job_id).await,
                Ok(_) if job.spec.tiles.is_some() => {
                    if let Err(e) = self.stitch_missing(&job).await {
                        debug!(job = ?job_id, error = %e, "stitching still fails");
                        self.unfinished.insert(job_id);
                    }
                }
                Ok(_) => {}
                // The database is away: the job waits for it.
                Err(_) => {
                    self.unfinished.insert(job_id);
                }
            }
        }
    }

    /// Stitches every chunk of `job` whose tiles are all accepted and
    /// whose frames are not stitched yet.
    async fn stitch_missing(&mut self, job: &Job) -> Result<(), String> {
        let per_frame = job.spec.tiles_per_frame() as usize;
        if per_frame == 0 {
            return Ok(());
        }
        let mut tasks = self
            .store
            .tasks_of_job(job.id)
            .await
            .map_err(|e| format!("cannot read the job's tasks: {e}"))?;
        tasks.sort_by_key(|t| t.id.index);
        for chunk in tasks.chunks(per_frame) {
            let done = chunk.iter().all(|t| t.status == TaskStatus::Accepted);
            if done && chunk[0].stitched.is_empty() {
                let frames = self.stitch(job, chunk).await?;
                self.keep_stitched(chunk[0].id, frames).await?;
            }
        }
        Ok(())
    }

    /// The whole frames of `tiles` (one chunk's tasks, in tile order).
    async fn stitch(&self, job: &Job, tiles: &[Task]) -> Result<Vec<FrameOutput>, String> {
        let (width, height) = (job.spec.settings.width, job.spec.settings.height);
        let format = job.spec.format;
        let mut out = Vec::new();
        for &frame in &tiles[0].frames {
            let mut files: Vec<(Rect, Vec<u8>)> = Vec::with_capacity(tiles.len());
            for t in tiles {
                let region = job
                    .spec
                    .task_region(t.id.index)
                    .ok_or("a tile task without a tile")?;
                let file = t
                    .delivered_frames()
                    .into_iter()
                    .find(|f| f.frame == frame)
                    .ok_or_else(|| format!("task {} has no frame {frame}", t.id))?;
                let limit = frame_codec::max_encoded_len(region.width, region.height);
                let bytes = self
                    .blobs
                    .get_bytes_at_most(file.blob, limit)
                    .await
                    .map_err(|e| format!("frame {frame} of task {}: {e}", t.id))?;
                files.push((region, bytes));
            }
            // Decoding and encoding whole frames is CPU work: off the loop.
            let (file, pixels) =
                tokio::task::spawn_blocking(move || paste_tiles(&files, format, (width, height)))
                    .await
                    .map_err(|e| format!("frame {frame}: stitching failed: {e}"))?
                    .map_err(|e| format!("frame {frame}: {e}"))?;
            let meta = self
                .blobs
                .put_bytes(file)
                .await
                .map_err(|e| format!("frame {frame}: cannot store the stitched file: {e}"))?;
            out.push(FrameOutput {
                frame,
                pixel_hash: pixels.pixel_hash(),
                blob: meta.hash,
                width,
                height,
                tile_root: TileTree::build(&pixels).root(),
            });
        }
        Ok(out)
    }

    /// Records `frames` on the chunk's first tile task.
    async fn keep_stitched(
        &mut self,
        first: TaskId,
        frames: Vec<FrameOutput>,
    ) -> Result<(), String> {
        for _ in 0..3 {
            let mut t = match self.store.task(first).await {
                Ok(Some(t)) => t,
                Ok(None) => return Err(format!("task {first} is gone")),
                Err(e) => return Err(format!("cannot read task {first}: {e}")),
            };
            t.stitched = frames.clone();
            match self.store.update_task(&mut t).await {
                Ok(()) => {
                    debug!(task = ?first, frames = frames.len(), "tiles stitched");
                    return Ok(());
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(format!("cannot record the stitched frames: {e}")),
            }
        }
        Err(format!(
            "task {first} kept changing while its frames were recorded"
        ))
    }
}

/// The chunk's first tile task, which keeps its stitched frames.
fn first_of(task: TaskId, per_frame: u32) -> TaskId {
    TaskId::new(task.job, task.index - task.index % per_frame)
}

/// The tile files pasted at their rectangles into a `size` frame, encoded,
/// and its 8-bit pixels.
fn paste_tiles(
    files: &[(Rect, Vec<u8>)],
    format: inferix_core::job::OutputFormat,
    size: (u32, u32),
) -> Result<(Vec<u8>, inferix_core::image::Rgb8Image), String> {
    let mut frame: Option<FramePixels> = None;
    for (rect, bytes) in files {
        let tile = FramePixels::decode(bytes, format, (rect.width, rect.height))
            .map_err(|e| format!("tile {rect:?} does not decode: {e}"))?;
        let canvas = frame.get_or_insert_with(|| tile.blank_like(size.0, size.1));
        if !canvas.paste(&tile, rect.x, rect.y) {
            return Err(format!("tile {rect:?} does not fit"));
        }
    }
    let frame = frame.ok_or("no tiles")?;
    let file = frame
        .encode()
        .map_err(|e| format!("cannot encode the stitched frame: {e}"))?;
    Ok((file, frame.to_srgb8()))
}
