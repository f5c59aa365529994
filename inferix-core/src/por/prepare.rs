//! Manager-side preparation of the scene copy a worker receives: the noise
//! patches of the task's key are inserted by a format-specific watermarker.

use std::path::Path;

use async_trait::async_trait;

use super::key::ManagerSecret;
use super::watermark::{Patch, DEFAULT_PATCHES, DEFAULT_THRESHOLD};
use crate::renderer::{RenderError, RenderSettings, SceneFormat};

/// Inserts camera-facing noise patches into a copy of a scene so that each
/// covers exactly its rectangle of every frame at the given settings.
#[async_trait]
pub trait SceneWatermarker: Send + Sync {
    /// Scene formats this watermarker edits.
    fn formats(&self) -> &[SceneFormat];
    /// Writes the watermarked copy of `scene` to `out`.
    async fn watermark(
        &self,
        scene: &Path,
        patches: &[Patch],
        settings: &RenderSettings,
        out: &Path,
    ) -> Result<(), RenderError>;
}

/// Crop challenges per task by default: a cheat that leaves cheap the
/// pixels holding a quarter of the frame's work (about the least that
/// saves a quarter of it) escapes them with chance about 0.75^48 < 10⁻⁵,
/// and one on the pixels of a tenth of the work is caught more often than
/// not. At [`CHALLENGE_AREA`](super::challenge::CHALLENGE_AREA) each they
/// re-render 2.4 % of one frame.
pub const DEFAULT_CHALLENGES_PER_TASK: usize = 48;

/// Proof-of-Render settings shared by every manager of a network.
#[derive(Debug, Clone)]
pub struct PorConfig {
    /// Key of every task's verification key; all managers share it.
    pub secret: ManagerSecret,
    /// Noise patches per task.
    pub patches: usize,
    /// Minimum Laplacian-energy contrast of each patch.
    pub threshold: f64,
    /// Crop challenges drawn per task after the worker commits; every
    /// frame gets at least one unless this is 0 (challenges off).
    pub challenges_per_task: usize,
    /// Fraction of the frame's area each crop challenge covers.
    pub challenge_area: f64,
    /// Largest per-channel difference (of 255) tolerated between a crop and
    /// the committed frame when worker and verifier differ in device class.
    pub crop_tolerance: u8,
}

impl PorConfig {
    /// Defaults around `secret`.
    pub fn new(secret: ManagerSecret) -> Self {
        Self {
            secret,
            patches: DEFAULT_PATCHES,
            threshold: DEFAULT_THRESHOLD,
            challenges_per_task: DEFAULT_CHALLENGES_PER_TASK,
            challenge_area: super::challenge::CHALLENGE_AREA,
            crop_tolerance: 2,
        }
    }
}
