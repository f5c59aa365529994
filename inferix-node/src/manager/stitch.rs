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
    /// was its last tile to be; nothing for a job without tiles. A failure
    /// is logged: the frames are then missing from the job's status.
    pub(super) async fn stitch_tiles(&mut self, task: TaskId) {
        let Some(job) = self.job(task.job).await else {
            return;
        };
        let per_frame = job.spec.tiles_per_frame() as u32;
        if job.spec.tiles.is_none() || per_frame == 0 {
            return;
        }
        let first = task.index - task.index % per_frame;
        let mut tiles = Vec::with_capacity(per_frame as usize);
        for index in first..first + per_frame {
            match self.store.task(TaskId::new(task.job, index)).await {
                Ok(Some(t)) if t.status == TaskStatus::Accepted => tiles.push(t),
                // Not every tile is accepted yet: the last one stitches.
                _ => return,
            }
        }
        match self.stitch(&job, &tiles).await {
            Ok(frames) => {
                self.keep_stitched(TaskId::new(task.job, first), frames)
                    .await
            }
            Err(e) => warn!(?task, error = %e, "tiles not stitched"),
        }
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
    async fn keep_stitched(&mut self, first: TaskId, frames: Vec<FrameOutput>) {
        for _ in 0..3 {
            let Ok(Some(mut t)) = self.store.task(first).await else {
                return;
            };
            t.stitched = frames.clone();
            match self.store.update_task(&mut t).await {
                Ok(()) => {
                    debug!(task = ?first, frames = frames.len(), "tiles stitched");
                    return;
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => {
                    warn!(task = ?first, error = %e, "cannot record the stitched frames");
                    return;
                }
            }
        }
    }
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
