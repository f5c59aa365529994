//! What a manager asks verifiers to check for one result: the watermark
//! rectangles of the lease's key and the crop challenges drawn from the
//! key and the worker's signed commitment.
//!
//! Both sides of the protocol derive the same values from the shared
//! secret, so any manager of the network can plan a verification for a
//! task another manager leased.

use super::challenge::draw_for_task;
use super::key::VerificationKey;
use super::prepare::PorConfig;
use super::watermark::{layout, Patch};
use crate::ids::TaskId;
use crate::protocol::CropChallenge;
use crate::task::TaskResult;

/// The key of one lease of a task.
pub fn lease_key(cfg: &PorConfig, task: TaskId, attempt: u32) -> VerificationKey {
    VerificationKey::for_attempt(&cfg.secret, task, attempt)
}

/// The patches to insert into the scene copy of one lease.
pub fn patches_for_lease(
    cfg: &PorConfig,
    task: TaskId,
    attempt: u32,
    width: u32,
    height: u32,
) -> Vec<Patch> {
    layout(&lease_key(cfg, task, attempt), width, height, cfg.patches)
}

/// What verifiers check for one result.
#[derive(Debug, Clone, PartialEq)]
pub struct VerificationPlan {
    /// Patches every frame must show (empty when the scene was not
    /// watermarked).
    pub watermark: Vec<Patch>,
    /// Crops to re-render.
    pub challenges: Vec<CropChallenge>,
}

/// The plan for `result` of `task`; `watermarked` says whether the lease
/// carried a watermarked scene copy.
pub fn plan_verification(
    cfg: &PorConfig,
    task: TaskId,
    result: &TaskResult,
    width: u32,
    height: u32,
    watermarked: bool,
) -> VerificationPlan {
    let key = lease_key(cfg, task, result.attempt);
    let watermark = if watermarked {
        layout(&key, width, height, cfg.patches)
    } else {
        Vec::new()
    };
    let frames: Vec<u32> = result.frames.iter().map(|f| f.frame).collect();
    let challenges = draw_for_task(
        &key,
        result.commitment(task),
        &frames,
        width,
        height,
        cfg.challenges_per_task,
    )
    .into_iter()
    .map(|(frame, rect)| CropChallenge { frame, rect })
    .collect();
    VerificationPlan {
        watermark,
        challenges,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::JobId;
    use crate::por::key::ManagerSecret;
    use crate::task::FrameOutput;
    use crate::ContentHash;

    fn result(pixels: u8) -> TaskResult {
        TaskResult {
            worker: crate::ids::NodeId(1),
            frames: (0..3)
                .map(|f| FrameOutput {
                    frame: f,
                    pixel_hash: ContentHash::of(&[pixels, f as u8]),
                    blob: ContentHash::of(&[f as u8]),
                    width: 200,
                    height: 100,
                    tile_root: ContentHash::default(),
                })
                .collect(),
            render_ms: 1,
            attempt: 1,
            scene: ContentHash::of(b"scene"),
            device_class: "cpu".into(),
            public_key: vec![],
            signature: vec![],
        }
    }

    #[test]
    fn plans_are_reproducible_and_bound_to_the_commitment() {
        let cfg = PorConfig::new(ManagerSecret(b"network secret".to_vec()));
        let task = TaskId {
            job: JobId(7),
            index: 2,
        };
        let a = plan_verification(&cfg, task, &result(1), 200, 100, true);
        assert_eq!(a, plan_verification(&cfg, task, &result(1), 200, 100, true));
        assert_eq!(a.challenges.len(), cfg.challenges_per_task);
        assert_eq!(a.watermark.len(), cfg.patches);
        assert!(a.challenges.iter().all(|c| c.rect.fits_in(200, 100)));
        // Another commitment draws other crops; the watermark stays the
        // lease's.
        let b = plan_verification(&cfg, task, &result(2), 200, 100, true);
        assert_ne!(a.challenges, b.challenges);
        assert_eq!(a.watermark, b.watermark);
        // The patches inserted at lease time are the ones checked.
        let patches = patches_for_lease(&cfg, task, 1, 200, 100);
        assert_eq!(patches, a.watermark);
        // Another attempt, another key.
        assert_ne!(patches, patches_for_lease(&cfg, task, 2, 200, 100));
        assert!(plan_verification(&cfg, task, &result(1), 200, 100, false)
            .watermark
            .is_empty());
    }
}
