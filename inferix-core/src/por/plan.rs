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
use crate::image::Rect;
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

/// The patches to insert into the scene copy of one lease of a task that
/// renders `region` of each frame (a tile job's task; `None` for whole
/// frames), in frame pixels: laid out inside the tile as in a frame of the
/// tile's size, so that they land in the pixels the worker renders.
/// [`VerificationPlan::in_tile`] gives the same patches in the tile's own
/// pixels.
pub fn patches_for_lease_in(
    cfg: &PorConfig,
    task: TaskId,
    attempt: u32,
    width: u32,
    height: u32,
    region: Option<Rect>,
) -> Vec<Patch> {
    let Some(r) = region else {
        return patches_for_lease(cfg, task, attempt, width, height);
    };
    let mut patches = patches_for_lease(cfg, task, attempt, r.width, r.height);
    for p in &mut patches {
        p.rect.x += r.x;
        p.rect.y += r.y;
    }
    patches
}

/// Pixels around each patch that clean delivery re-renders too: a pixel
/// filter wider than one pixel (Cycles' default is 1.5 px) lets a patch
/// reach into its neighbours' samples.
pub const CLEAN_MARGIN: u32 = 2;

/// The rectangles of a frame that differ between the watermarked and the
/// clean scene: each patch grown by [`CLEAN_MARGIN`], clipped to the frame.
/// Re-rendered from the clean scene and composited over the worker's frame,
/// they make the frame a customer receives.
pub fn clean_rects(patches: &[Patch], width: u32, height: u32) -> Vec<Rect> {
    patches
        .iter()
        .map(|p| {
            let r = p.rect;
            let x0 = r.x.saturating_sub(CLEAN_MARGIN);
            let y0 = r.y.saturating_sub(CLEAN_MARGIN);
            let x1 = (r.x + r.width + CLEAN_MARGIN).min(width);
            let y1 = (r.y + r.height + CLEAN_MARGIN).min(height);
            Rect::new(x0, y0, x1.saturating_sub(x0), y1.saturating_sub(y0))
        })
        .filter(|r| r.width > 0 && r.height > 0)
        .collect()
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

impl VerificationPlan {
    /// This plan, drawn for a `region.width`×`region.height` image, as the
    /// plan of a tile task whose images are `region`'s pixels: rectangles
    /// stay in the tile's pixels (what the verifier reads), while each
    /// patch's pattern is the one drawn at the frame's pixels.
    pub fn in_tile(mut self, region: Rect) -> Self {
        for p in &mut self.watermark {
            p.origin = [region.x, region.y];
        }
        self
    }
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
    let level = CheckLevel {
        crops: cfg.challenges_per_task,
        audit_chance: 0.0,
    };
    plan_checks(cfg, level, task, result, width, height, watermarked)
}

/// How hard one result is checked (the manager scales it with the
/// worker's history).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CheckLevel {
    /// Crop challenges over the task (at least one per frame).
    pub crops: usize,
    /// Chance that one frame of the task is audited: re-rendered whole.
    pub audit_chance: f64,
}

/// The plan for `result` of `task` at `level`: its crops, and, with
/// probability `level.audit_chance`, one frame drawn from the key and the
/// commitment re-rendered whole. The draw is fixed by the commitment, so
/// every verifier of the result gets the same plan and the worker cannot
/// know it before committing.
pub fn plan_checks(
    cfg: &PorConfig,
    level: CheckLevel,
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
    let mut challenges = draw_for_task(
        &key,
        result.commitment(task),
        &frames,
        (width, height),
        level.crops,
        cfg.challenge_area,
    )
    .into_iter()
    .map(|(frame, rect)| CropChallenge { frame, rect })
    .collect::<Vec<_>>();
    if level.crops > 0 && level.audit_chance > 0.0 && !frames.is_empty() {
        use rand::Rng;
        let mut rng = key.rng("audit", &result.commitment(task).0);
        if rng.gen_bool(level.audit_chance.clamp(0.0, 1.0)) {
            let frame = frames[rng.gen_range(0..frames.len())];
            challenges.push(CropChallenge {
                frame,
                rect: Rect::new(0, 0, width, height),
            });
        }
    }
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

    #[test]
    fn tile_plans_are_drawn_inside_the_tile_and_match_the_patches_inserted() {
        let cfg = PorConfig::new(ManagerSecret(b"network secret".to_vec()));
        let task = TaskId::new(JobId(3), 5);
        let region = Rect::new(96, 40, 80, 60);
        let inserted = patches_for_lease_in(&cfg, task, 1, 200, 100, Some(region));
        assert!(!inserted.is_empty());
        let plan = plan_verification(&cfg, task, &result(1), region.width, region.height, true)
            .in_tile(region);
        assert_eq!(plan.watermark.len(), inserted.len());
        for (local, framed) in plan.watermark.iter().zip(&inserted) {
            // Inside the tile, in frame pixels, for the scene copy.
            assert!(framed.rect.x >= region.x && framed.rect.y >= region.y);
            assert!(framed.rect.x + framed.rect.width <= region.x + region.width);
            assert!(framed.rect.y + framed.rect.height <= region.y + region.height);
            // The same patch in the tile's pixels, with the same pattern.
            assert_eq!(local.rect.x + region.x, framed.rect.x);
            assert_eq!(local.rect.y + region.y, framed.rect.y);
            for (x, y) in [(0, 0), (1, 2), (3, 1)] {
                let (lx, ly) = (local.rect.x + x, local.rect.y + y);
                assert_eq!(
                    local.value(lx, ly),
                    framed.value(lx + region.x, ly + region.y)
                );
            }
        }
        assert!(plan
            .challenges
            .iter()
            .all(|c| c.rect.fits_in(region.width, region.height)));
        // Whole frames keep the plain layout.
        assert_eq!(
            patches_for_lease_in(&cfg, task, 1, 200, 100, None),
            patches_for_lease(&cfg, task, 1, 200, 100)
        );
    }

    #[test]
    fn clean_rects_cover_each_patch_with_its_margin_inside_the_frame() {
        let cfg = PorConfig::new(ManagerSecret(b"network secret".to_vec()));
        let task = TaskId {
            job: JobId(1),
            index: 0,
        };
        let patches = patches_for_lease(&cfg, task, 1, 64, 40);
        let rects = clean_rects(&patches, 64, 40);
        assert_eq!(rects.len(), patches.len());
        for (p, r) in patches.iter().zip(&rects) {
            assert!(r.fits_in(64, 40));
            assert_eq!(r.x + CLEAN_MARGIN, p.rect.x);
            assert_eq!(r.width, p.rect.width + 2 * CLEAN_MARGIN);
        }
        // At the frame's edge the margin is clipped, never outside.
        let mut edge = patches[0].clone();
        edge.rect = Rect::new(0, 0, 4, 4);
        assert_eq!(clean_rects(&[edge], 5, 5), vec![Rect::new(0, 0, 5, 5)]);
    }

    #[test]
    fn audits_re_render_a_whole_frame_as_often_as_asked_and_always_the_same_way() {
        let cfg = PorConfig::new(crate::por::key::ManagerSecret(b"k".to_vec()));
        let never = CheckLevel {
            crops: 4,
            audit_chance: 0.0,
        };
        let always = CheckLevel {
            crops: 4,
            audit_chance: 1.0,
        };
        let task = TaskId::new(JobId(1), 2);
        let r = result(7);
        let whole = |p: &VerificationPlan| {
            p.challenges
                .iter()
                .filter(|c| c.rect == Rect::new(0, 0, 200, 100))
                .count()
        };
        let a = plan_checks(&cfg, always, task, &r, 200, 100, false);
        assert_eq!(whole(&a), 1);
        assert_eq!(a, plan_checks(&cfg, always, task, &r, 200, 100, false));
        assert_eq!(
            whole(&plan_checks(&cfg, never, task, &r, 200, 100, false)),
            0
        );
        // About one result in four at a quarter.
        let quarter = CheckLevel {
            crops: 4,
            audit_chance: 0.25,
        };
        let audited = (0..400u32)
            .filter(|i| {
                let t = TaskId::new(JobId(1), *i);
                whole(&plan_checks(&cfg, quarter, t, &r, 200, 100, false)) == 1
            })
            .count();
        assert!((70..130).contains(&audited), "{audited} of 400 audited");
    }
}
