//! Blender as a worker renderer: `.blend` scenes rendered headless by a
//! `blender` subprocess (Debian's `blender` package or any official build).
//!
//! * [`Blender`] is a located, version-checked executable.
//! * [`BlenderRenderer`] implements [`inferix_core::renderer::Renderer`]
//!   for [`SceneFormat::Blend`](inferix_core::renderer::SceneFormat::Blend).
//!   Each call runs one Blender process in a job-private temporary folder,
//!   renders the requested frames with Cycles (CPU or GPU), EEVEE or
//!   Workbench at the request's resolution, samples, bounces and seed, and
//!   reads the written OpenEXR (linear float, the default) or 8-bit PNG
//!   back into an [`Image`](inferix_core::image::Image). Crops use Cycles
//!   border rendering; with adaptive sampling, denoising, path guiding and
//!   time limits forced off, a crop is bit-identical to the same region of
//!   the full frame.
//! * [`BlenderWatermarker`] implements
//!   [`SceneWatermarker`](inferix_core::por::prepare::SceneWatermarker):
//!   inserts one camera-facing emissive plane per Proof-of-Render noise
//!   patch and saves a self-contained (packed) copy of the scene.
//! * [`Blender::pack_scene`] writes a self-contained copy of a scene with all
//!   external images and linked libraries packed in, which is what a client
//!   uploads as the scene blob.
//!
//! Failures are [`BlenderError`]s naming what happened (unreadable file,
//! missing referenced files, an exception in the scene's own Python, an
//! executable that is missing or too old, a hang past the time limit); they
//! convert into [`RenderError`](inferix_core::renderer::RenderError) for the
//! trait. A failed render leaves nothing behind: the process group is killed
//! and the job folder removed, so the worker stays healthy.
//!
//! Wiring a network for `.blend` jobs: clients pack the scene
//! ([`Blender::pack_scene`]) before uploading it; managers watermark each
//! task's copy with a [`BlenderWatermarker`] for the task's patch layout at
//! the job's resolution; workers render with a [`BlenderRenderer`];
//! verifiers re-render crop challenges with the same renderer (one process
//! for many crops: [`Renderer::render_crops`](inferix_core::renderer::Renderer::render_crops)) and compare exactly
//! when their [`device_class`](inferix_core::renderer::Renderer::device_class)
//! equals the worker's.
//!
//! ```no_run
//! use inferix_gpu::blender::{Blender, BlenderConfig, BlenderRenderer, BlenderWatermarker};
//! # async fn wire() -> Result<(), inferix_gpu::blender::BlenderError> {
//! let blender = Blender::locate(None).await?; // explicit path, $BLENDER, then PATH
//! let renderer = BlenderRenderer::new(blender.clone(), BlenderConfig::default());
//! let watermarker = BlenderWatermarker::new(blender);
//! # let _ = (renderer, watermarker);
//! # Ok(())
//! # }
//! ```
//!
//! Scenes are untrusted: Blender runs with `--factory-startup` and, unless
//! [`BlenderConfig::allow_scene_scripts`] is set, `--disable-autoexec`, so
//! Python embedded in a scene (text blocks, drivers) does not run. A scene
//! may name only files packed into it or inside its own folder (after
//! resolving `//`, `..` and symlinks); rendering, watermarking and packing
//! refuse anything else with [`BlenderError::OutsideFiles`] before a file
//! is packed or rendered, so a scene cannot carry a node's own files (keys,
//! database, credentials, other users' scenes) to whoever sent it.
//!
//! Blender itself runs in a sandbox when bubblewrap is installed
//! ([`SandboxPolicy`], [`Blender::with_sandbox`]): it sees the system's
//! programs read-only, its private job folder and the run's input files,
//! and nothing else: no data folder, no home folders, no node environment,
//! no network. So even a scene whose code runs (scene scripts allowed, or a
//! Blender bug) cannot read or send a node's files.

mod error;
mod process;
mod renderer;
mod sandbox;
mod version;
mod watermark;

pub use error::{BlenderError, ExternalRef};
pub use renderer::{
    Blender, BlenderConfig, BlenderEngine, BlenderOutput, BlenderRenderer, RenderedCrop,
};
pub use sandbox::SandboxPolicy;
pub use version::BlenderVersion;
pub use watermark::{patch_texel, BlenderWatermarker};
