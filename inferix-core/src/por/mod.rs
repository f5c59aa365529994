//! Proof of Render: the pieces a manager and a verifier need to check that
//! a frame was really rendered, without trusting the worker.
//!
//! - [`key`]: a per-task secret derived from the task id with HMAC, so a
//!   spent key reveals nothing about future ones.
//! - [`merkle`]: a commitment over a frame's pixel tiles, sent before any
//!   challenge is drawn.
//! - [`challenge`]: crop rectangles drawn from the key *and* the commitment,
//!   so a worker cannot know them before committing.
//! - [`watermark`]: the Laplacian-energy check of the active noise patches.
//! - [`prepare`]: the scene copy with the patches, made by the manager.
//! - [`delivery`]: whose clean pixels replace the patches in the frames a
//!   customer receives.

pub mod challenge;
#[cfg(any(test, feature = "testing"))]
pub mod conformance;
pub mod delivery;
pub mod key;
pub mod merkle;
pub mod plan;
pub mod prepare;
pub mod watermark;
