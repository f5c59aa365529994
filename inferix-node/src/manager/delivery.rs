//! Clean delivery: the frames a customer receives are the worker's frames
//! with every watermark rectangle replaced by clean pixels that the
//! verifiers rendered from the scene without patches (see
//! `inferix_core::por::delivery` for whose pixels are used).

use inferix_core::image::Rect;
use inferix_core::job::OutputFormat;
use inferix_core::por::delivery::{choose_clean_set, CleanSet};
use inferix_core::por::plan::clean_rects;
use inferix_core::protocol::CleanCrop;
use inferix_core::task::DeliveredFrame;

use super::*;
use crate::frame_codec::{self, FramePixels};

impl State {
    /// Keeps the clean pixels a verifier sent with its passing verdict
    /// until the round settles.
    pub(super) fn keep_clean(&mut self, verifier: NodeId, task: TaskId, crops: Vec<CleanCrop>) {
        if crops.is_empty() {
            return;
        }
        let votes = self.clean_votes.entry(task).or_default();
        votes.retain(|(v, _)| *v != verifier);
        votes.push((verifier, crops));
    }

    /// The delivered frames of `task`, whose result just passed: empty
    /// when its frames carry no watermark; an error (the round is asked
    /// again) when the verifiers' clean pixels are missing or disagree.
    pub(super) async fn deliver(
        &mut self,
        task: &Task,
        agreeing: &[NodeId],
        clean: Vec<(NodeId, Vec<CleanCrop>)>,
    ) -> Result<Vec<DeliveredFrame>, String> {
        let Some((job, plan)) = self.verification_plan(task).await else {
            return Ok(Vec::new());
        };
        let watermark = plan.map(|p| p.watermark).unwrap_or_default();
        let Some(result) = task.result.as_ref() else {
            return Ok(Vec::new());
        };
        if watermark.is_empty() {
            return Ok(Vec::new());
        }
        // A tile task's frames, patches and clean rectangles are its tile's.
        let (width, height) = job
            .spec
            .task_region(task.id.index)
            .map_or((job.spec.settings.width, job.spec.settings.height), |r| {
                (r.width, r.height)
            });
        let format = job.spec.format;
        let rects = clean_rects(&watermark, width, height);
        let wanted: Vec<(u32, Rect)> = result
            .frames
            .iter()
            .flat_map(|f| rects.iter().map(move |r| (f.frame, *r)))
            .collect();
        // Only verifiers whose verdict is the outcome supply pixels.
        let mut sets = Vec::new();
        let mut raw: Vec<(NodeId, Vec<CleanCrop>)> = Vec::new();
        for (verifier, crops) in clean {
            if !agreeing.contains(&verifier) {
                continue;
            }
            let decoded: Option<Vec<_>> = crops
                .iter()
                .map(|c| {
                    frame_codec::decode(&c.image, format, (c.rect.width, c.rect.height))
                        .ok()
                        .map(|img| (c.frame, c.rect, img))
                })
                .collect();
            let Some(crops_decoded) = decoded else {
                warn!(task = ?task.id, ?verifier, "clean pixels do not decode; ignored");
                continue;
            };
            sets.push(CleanSet {
                verifier,
                device_class: self
                    .verifiers
                    .get(&verifier)
                    .map(|v| v.device_class.clone())
                    .unwrap_or_default(),
                crops: crops_decoded,
            });
            raw.push((verifier, crops));
        }
        let tolerance = self.por.as_ref().map_or(0, |p| p.crop_tolerance);
        let chosen = choose_clean_set(&sets, &wanted, &result.device_class, tolerance)
            .map_err(|e| e.to_string())?
            .verifier;
        let Some((_, crops)) = raw.into_iter().find(|(v, _)| *v == chosen) else {
            return Err("the chosen clean pixels vanished".into());
        };
        let mut delivered = Vec::with_capacity(result.frames.len());
        for f in &result.frames {
            let bytes = self
                .blobs
                .get_bytes_at_most(f.blob, frame_codec::max_encoded_len(width, height))
                .await
                .map_err(|e| format!("frame {}: cannot read the worker's file: {e}", f.frame))?;
            let patches: Vec<CleanCrop> = crops
                .iter()
                .filter(|c| c.frame == f.frame)
                .cloned()
                .collect();
            // Decoding and encoding whole frames is CPU work: off the loop.
            let composed = tokio::task::spawn_blocking(move || {
                compose(&bytes, format, (width, height), &patches)
            })
            .await
            .map_err(|e| format!("frame {}: composing failed: {e}", f.frame))?
            .map_err(|e| format!("frame {}: {e}", f.frame))?;
            let (file, pixel_hash) = composed;
            let meta = self
                .blobs
                .put_bytes(file)
                .await
                .map_err(|e| format!("frame {}: cannot store the clean file: {e}", f.frame))?;
            delivered.push(DeliveredFrame {
                frame: f.frame,
                blob: meta.hash,
                pixel_hash,
                verifier: chosen,
                clean_pixels: rects.iter().map(Rect::area).sum(),
            });
        }
        debug!(task = ?task.id, verifier = ?chosen, frames = delivered.len(), "clean frames composed");
        Ok(delivered)
    }
}

/// The worker's frame file `bytes` with `patches` pasted over it, encoded
/// again, and the hash of its 8-bit pixels.
fn compose(
    bytes: &[u8],
    format: OutputFormat,
    size: (u32, u32),
    patches: &[CleanCrop],
) -> Result<(Vec<u8>, ContentHash), String> {
    let mut frame = FramePixels::decode(bytes, format, size)
        .map_err(|e| format!("the worker's file does not decode: {e}"))?;
    for c in patches {
        let crop = FramePixels::decode(&c.image, format, (c.rect.width, c.rect.height))
            .map_err(|e| format!("clean pixels do not decode: {e}"))?;
        if crop.size() != (c.rect.width, c.rect.height) || !frame.paste(&crop, c.rect.x, c.rect.y) {
            return Err(format!("clean pixels for {:?} do not fit", c.rect));
        }
    }
    let file = frame
        .encode()
        .map_err(|e| format!("cannot encode the clean frame: {e}"))?;
    Ok((file, frame.to_srgb8().pixel_hash()))
}
