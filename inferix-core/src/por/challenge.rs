//! Crop challenges: secret rectangles a verifier re-renders and compares.
//!
//! They are drawn from the task key and the worker's commitment, so they
//! exist only after the worker has committed, and a worker that faked a
//! fraction f of the frame is caught with probability 1 − (1 − f)^k.

use rand::Rng;

use super::key::VerificationKey;
use crate::image::Rect;
use crate::ContentHash;

/// Fraction of the frame's area each challenge covers.
pub const CHALLENGE_AREA: f64 = 0.01;

/// `k` crop rectangles for `frame` of a `width`×`height` image.
pub fn draw(
    key: &VerificationKey,
    commitment: ContentHash,
    frame: u32,
    width: u32,
    height: u32,
    k: usize,
) -> Vec<Rect> {
    let mut ctx = commitment.0.to_vec();
    ctx.extend_from_slice(&frame.to_le_bytes());
    let mut rng = key.rng("challenge", &ctx);
    let side = CHALLENGE_AREA.sqrt();
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
    width: u32,
    height: u32,
    k: usize,
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
            draw(key, commitment, f, width, height, n)
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
    fn challenges_fit_cover_one_percent_and_depend_on_the_commitment() {
        let key = VerificationKey::derive(&ManagerSecret(b"s".to_vec()), TaskId::new(JobId(3), 1));
        let a = draw(&key, ContentHash::of(b"root-a"), 1, 640, 360, 8);
        assert_eq!(a.len(), 8);
        for r in &a {
            assert!(r.fits_in(640, 360));
            let frac = r.area() as f64 / (640.0 * 360.0);
            assert!((frac - 0.01).abs() < 0.002, "area fraction {frac}");
        }
        assert_eq!(a, draw(&key, ContentHash::of(b"root-a"), 1, 640, 360, 8));
        assert_ne!(a, draw(&key, ContentHash::of(b"root-b"), 1, 640, 360, 8));
        assert_ne!(a, draw(&key, ContentHash::of(b"root-a"), 2, 640, 360, 8));
        assert!((detection_probability(0.5, 10) - 0.999_023_4).abs() < 1e-6);
    }

    #[test]
    fn every_frame_of_a_task_is_challenged_at_least_once() {
        let key = VerificationKey::derive(&ManagerSecret(b"s".to_vec()), TaskId::new(JobId(3), 1));
        for (frames, k) in [(5u32, 8usize), (24, 8), (8, 8), (1, 8), (3, 0)] {
            let list: Vec<u32> = (1..=frames).collect();
            let drawn = draw_for_task(&key, ContentHash::of(b"root"), &list, 320, 180, k);
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
