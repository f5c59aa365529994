//! Crop challenges: secret rectangles a verifier re-renders and compares.
//!
//! They are drawn from the task key and the worker's commitment, so they
//! exist only after the worker has committed, and a worker that faked a
//! fraction f of the frame is caught with probability 1 − (1 − f)^k.

use rand::Rng;

use super::key::VerificationKey;
use crate::image::Rect;
use crate::ContentHash;

/// Fraction of the frame's area each challenge covers by default
/// (`PorConfig::challenge_area`): 0.05 %, about 32×32 pixels of a 1080p
/// frame. Small, because detection of a partly cheap frame follows the
/// number of crops, not their size (a cheap fraction f escapes k crops
/// with chance about (1 − f)^k), while a verifier's cost follows their
/// total area once a frame's crops are rendered in one call: many small
/// crops catch more per pixel re-rendered than a few large ones.
pub const CHALLENGE_AREA: f64 = 0.0005;

/// `k` crop rectangles for `frame` of a `width`×`height` image, each
/// covering about `area` of it (at least one pixel).
pub fn draw(
    key: &VerificationKey,
    commitment: ContentHash,
    frame: u32,
    (width, height): (u32, u32),
    k: usize,
    area: f64,
) -> Vec<Rect> {
    let mut ctx = commitment.0.to_vec();
    ctx.extend_from_slice(&frame.to_le_bytes());
    let mut rng = key.rng("challenge", &ctx);
    let side = if area.is_finite() {
        area.clamp(0.0, 1.0).sqrt()
    } else {
        CHALLENGE_AREA.sqrt()
    };
    let w = ((width as f64 * side).round() as u32).clamp(1, width);
    let h = ((height as f64 * side).round() as u32).clamp(1, height);
    (0..k)
        .map(|_| {
            Rect::new(
                rng.gen_range(0..=width - w),
                rng.gen_range(0..=height - h),
                w,
                h,
            )
        })
        .collect()
}

/// At least `k` crops over the frames of a task: one on every frame, so a
/// worker that skips or fakes any single frame is always caught, and the
/// rest on frames drawn from the key, so every frame is equally at risk.
/// A task of more frames than `k` gets one crop per frame; `k` = 0 turns
/// challenges off.
pub fn draw_for_task(
    key: &VerificationKey,
    commitment: ContentHash,
    frames: &[u32],
    size: (u32, u32),
    k: usize,
    area: f64,
) -> Vec<(u32, Rect)> {
    if frames.is_empty() || k == 0 {
        return Vec::new();
    }
    let mut rng = key.rng("challenge-frames", &commitment.0);
    let mut per_frame = vec![1usize; frames.len()];
    for _ in 0..k.saturating_sub(frames.len()) {
        per_frame[rng.gen_range(0..frames.len())] += 1;
    }
    frames
        .iter()
        .zip(per_frame)
        .flat_map(|(&f, n)| {
            draw(key, commitment, f, size, n, area)
                .into_iter()
                .map(move |r| (f, r))
        })
        .collect()
}

/// Probability that `k` challenges catch a worker who faked a fraction
/// `faked` of the frame.
pub fn detection_probability(faked: f64, k: usize) -> f64 {
    1.0 - (1.0 - faked.clamp(0.0, 1.0)).powi(k as i32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{JobId, TaskId};
    use crate::por::key::ManagerSecret;

    #[test]
    fn challenges_fit_cover_their_area_and_depend_on_the_commitment() {
        let key = VerificationKey::derive(&ManagerSecret(b"s".to_vec()), TaskId::new(JobId(3), 1));
        let d = |root: &[u8], frame| {
            draw(
                &key,
                ContentHash::of(root),
                frame,
                (640, 360),
                8,
                CHALLENGE_AREA,
            )
        };
        let a = d(b"root-a", 1);
        assert_eq!(a.len(), 8);
        for r in &a {
            assert!(r.fits_in(640, 360));
            let frac = r.area() as f64 / (640.0 * 360.0);
            assert!(
                (frac - CHALLENGE_AREA).abs() < 0.0002,
                "area fraction {frac}"
            );
        }
        assert_eq!(a, d(b"root-a", 1));
        assert_ne!(a, d(b"root-b", 1));
        assert_ne!(a, d(b"root-a", 2));
        assert!((detection_probability(0.5, 10) - 0.999_023_4).abs() < 1e-6);
    }

    /// A worker that leaves a quarter of each frame cheap (a band down its
    /// right side, where it saves a quarter of the work at most) escapes
    /// the default challenges of fewer than one task in a thousand, over
    /// 20,000 commitments; the drawn frames and positions, not only the
    /// formula, carry the figure.
    #[test]
    fn the_default_crops_catch_a_quarter_cheap_frame_in_all_but_a_thousandth_of_tasks() {
        use crate::por::prepare::DEFAULT_CHALLENGES_PER_TASK;
        let key = VerificationKey::derive(&ManagerSecret(b"s".to_vec()), TaskId::new(JobId(3), 1));
        let (w, h) = (1920u32, 1080u32);
        let cheap_from = w * 3 / 4;
        let tasks = 20_000u32;
        let frames = [7u32, 8];
        let escaped = (0..tasks)
            .filter(|t| {
                draw_for_task(
                    &key,
                    ContentHash::of(&t.to_le_bytes()),
                    &frames,
                    (w, h),
                    DEFAULT_CHALLENGES_PER_TASK,
                    CHALLENGE_AREA,
                )
                .iter()
                .all(|(_, r)| r.x + r.width <= cheap_from)
            })
            .count();
        assert!(
            escaped * 1000 <= tasks as usize,
            "{escaped} of {tasks} tasks escaped"
        );
        // And the total area re-rendered stays a small share of a frame.
        let area = DEFAULT_CHALLENGES_PER_TASK as f64 * CHALLENGE_AREA;
        assert!(area <= 0.03, "crops cover {area} of a frame");
    }

    #[test]
    fn every_frame_of_a_task_is_challenged_at_least_once() {
        let key = VerificationKey::derive(&ManagerSecret(b"s".to_vec()), TaskId::new(JobId(3), 1));
        for (frames, k) in [(5u32, 8usize), (24, 8), (8, 8), (1, 8), (3, 0)] {
            let list: Vec<u32> = (1..=frames).collect();
            let drawn = draw_for_task(
                &key,
                ContentHash::of(b"root"),
                &list,
                (320, 180),
                k,
                CHALLENGE_AREA,
            );
            if k == 0 {
                assert!(drawn.is_empty(), "challenges off");
                continue;
            }
            assert_eq!(
                drawn.len(),
                k.max(frames as usize),
                "{frames} frames, k {k}"
            );
            for f in &list {
                assert!(
                    drawn.iter().any(|(g, _)| g == f),
                    "frame {f} of {frames} unchallenged"
                );
            }
        }
    }
}
