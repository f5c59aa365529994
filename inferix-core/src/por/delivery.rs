//! Clean delivery: which verifier's clean pixels replace a result's
//! watermark rectangles.
//!
//! A worker renders the watermarked copy of a scene; its frames carry the
//! patches. Verifiers that pass a result also re-render the patches' clean
//! rectangles from the scene without them, and the manager pastes those
//! pixels over the worker's frame: the customer receives exactly what the
//! scene renders to. Verifiers may lie too, so a set of clean pixels is used
//! only when it is complete and a strict majority of the complete sets
//! agrees with it (exactly within one device class, within the network's
//! crop tolerance across classes). A verifier that sends nothing cannot
//! block delivery; when the sets split evenly, the manager asks other
//! verifiers.

use crate::ids::NodeId;
use crate::image::{Rect, Rgb8Image};

/// One verifier's clean pixels for a result, decoded to the 8-bit pixels
/// that are compared.
#[derive(Debug, Clone, PartialEq)]
pub struct CleanSet {
    /// The verifier that rendered them.
    pub verifier: NodeId,
    /// Its renderer's device class.
    pub device_class: String,
    /// `(frame, rect, pixels)` per rectangle; pixels the size of `rect`.
    pub crops: Vec<(u32, Rect, Rgb8Image)>,
}

impl CleanSet {
    /// Whether it holds exactly one crop of the right size for every
    /// `(frame, rect)` of `wanted`.
    pub fn covers(&self, wanted: &[(u32, Rect)]) -> bool {
        self.crops.len() == wanted.len()
            && wanted.iter().all(|(frame, rect)| {
                self.crops
                    .iter()
                    .filter(|(f, r, _)| f == frame && r == rect)
                    .count()
                    == 1
                    && self.crop(*frame, *rect).is_some_and(|img| {
                        img.width == rect.width
                            && img.height == rect.height
                            && img.pixels.len() == rect.area() as usize * 3
                    })
            })
    }

    /// The pixels for `rect` of `frame`.
    pub fn crop(&self, frame: u32, rect: Rect) -> Option<&Rgb8Image> {
        self.crops
            .iter()
            .find(|(f, r, _)| *f == frame && *r == rect)
            .map(|(_, _, img)| img)
    }

    /// Whether every crop of `self` is within `tolerance` of `other`'s
    /// (exactly equal when both come from one device class).
    fn agrees_with(&self, other: &CleanSet, wanted: &[(u32, Rect)], tolerance: u8) -> bool {
        let allowed = if self.device_class == other.device_class {
            0
        } else {
            tolerance
        };
        wanted.iter().all(|(frame, rect)| {
            match (self.crop(*frame, *rect), other.crop(*frame, *rect)) {
                (Some(a), Some(b)) => a.max_channel_diff(b).is_some_and(|d| d <= allowed),
                _ => false,
            }
        })
    }
}

/// Why no clean pixels can be delivered yet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CleanChoiceError {
    /// No verifier sent a complete set of clean rectangles.
    #[error("no verifier sent the clean pixels of every watermark rectangle")]
    Missing,
    /// Complete sets disagree, and none has a majority.
    #[error("verifiers sent clean pixels that disagree ({verifiers:?})")]
    Disagreement {
        /// Verifiers whose complete sets disagree.
        verifiers: Vec<NodeId>,
    },
}

/// Picks the set to deliver among `sets` for the rectangles `wanted`: a
/// complete set that a strict majority of the complete sets (itself
/// included) agrees with, preferring one
/// from the worker's device class (its pixels then equal a local render on
/// the worker's kind of device), else the lowest verifier id.
pub fn choose_clean_set<'a>(
    sets: &'a [CleanSet],
    wanted: &[(u32, Rect)],
    worker_device_class: &str,
    tolerance: u8,
) -> Result<&'a CleanSet, CleanChoiceError> {
    let complete: Vec<&CleanSet> = sets.iter().filter(|s| s.covers(wanted)).collect();
    if complete.is_empty() {
        return Err(CleanChoiceError::Missing);
    }
    let mut agreeing: Vec<&CleanSet> = complete
        .iter()
        .copied()
        .filter(|s| {
            let backers = complete
                .iter()
                .filter(|o| std::ptr::eq(*s, **o) || s.agrees_with(o, wanted, tolerance))
                .count();
            backers * 2 > complete.len()
        })
        .collect();
    agreeing.sort_by_key(|s| (s.device_class != worker_device_class, s.verifier));
    agreeing
        .first()
        .copied()
        .ok_or_else(|| CleanChoiceError::Disagreement {
            verifiers: complete.iter().map(|s| s.verifier).collect(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted() -> Vec<(u32, Rect)> {
        vec![(1, Rect::new(0, 0, 2, 2)), (1, Rect::new(4, 4, 3, 2))]
    }

    fn set(verifier: u128, class: &str, value: u8) -> CleanSet {
        CleanSet {
            verifier: NodeId(verifier),
            device_class: class.into(),
            crops: wanted()
                .into_iter()
                .map(|(f, r)| {
                    (
                        f,
                        r,
                        Rgb8Image {
                            width: r.width,
                            height: r.height,
                            pixels: vec![value; r.area() as usize * 3],
                            alpha: None,
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn agreeing_sets_deliver_the_worker_class_first() {
        let sets = [set(1, "cpu", 10), set(2, "gpu", 11)];
        let chosen = choose_clean_set(&sets, &wanted(), "gpu", 2).unwrap();
        assert_eq!(chosen.verifier, NodeId(2));
        let chosen = choose_clean_set(&sets, &wanted(), "other", 2).unwrap();
        assert_eq!(chosen.verifier, NodeId(1));
    }

    #[test]
    fn a_lying_verifier_cannot_choose_the_pixels() {
        // Two honest sets and one painted one: the painted one disagrees
        // with the others and is not chosen.
        let sets = [set(1, "cpu", 10), set(2, "cpu", 200), set(3, "cpu", 10)];
        let chosen = choose_clean_set(&sets, &wanted(), "cpu", 2).unwrap();
        assert_ne!(chosen.verifier, NodeId(2));
        // One honest set against one painted set: nobody can tell, so
        // nothing is delivered (the manager asks other verifiers).
        let sets = [set(1, "cpu", 10), set(2, "cpu", 200)];
        assert_eq!(
            choose_clean_set(&sets, &wanted(), "cpu", 2),
            Err(CleanChoiceError::Disagreement {
                verifiers: vec![NodeId(1), NodeId(2)]
            })
        );
        // Within one device class pixels must be equal, not just close.
        let sets = [set(1, "cpu", 10), set(2, "cpu", 11)];
        assert!(choose_clean_set(&sets, &wanted(), "cpu", 2).is_err());
    }

    #[test]
    fn incomplete_or_misshapen_sets_are_ignored() {
        let mut short = set(1, "cpu", 99);
        short.crops.pop();
        let mut misshapen = set(2, "cpu", 99);
        misshapen.crops[0].2.width = 3;
        let mut doubled = set(4, "cpu", 99);
        doubled.crops[1] = doubled.crops[0].clone();
        let honest = set(3, "cpu", 10);
        let sets = [short.clone(), misshapen.clone(), doubled, honest];
        assert_eq!(
            choose_clean_set(&sets, &wanted(), "cpu", 2)
                .unwrap()
                .verifier,
            NodeId(3)
        );
        assert_eq!(
            choose_clean_set(&[short, misshapen], &wanted(), "cpu", 2),
            Err(CleanChoiceError::Missing)
        );
        assert_eq!(
            choose_clean_set(&[], &wanted(), "cpu", 2),
            Err(CleanChoiceError::Missing)
        );
    }
}
