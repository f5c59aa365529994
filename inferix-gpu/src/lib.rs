//! GPU renderers and image kernels for Inferix, written in cubecl.
//!
//! * [`PathTracer`]: a deterministic path tracer for glTF 2.0 scenes
//!   (next-event estimation with multiple importance sampling, SAH BVH,
//!   Russian roulette) implementing [`inferix_core::renderer::Renderer`].
//!   It runs on any cubecl runtime: `wgpu` (default; Mesa's lavapipe on
//!   machines without a GPU), `cuda`, `hip`.
//!
//!   glTF coverage: metallic-roughness materials with base colour,
//!   metallic-roughness, normal (tangents generated when absent), occlusion
//!   and emissive textures, COLOR_0, TEXCOORD_0/1, sampler wrap modes,
//!   nearest/bilinear filtering and `KHR_texture_transform`; alpha modes
//!   (MASK, stochastic BLEND, in shadow rays too) and single-sided culling;
//!   triangle lists, strips and fans; skins and morph targets (sparse
//!   accessors included) with their animations; `KHR_lights_punctual`,
//!   `KHR_materials_emissive_strength`, `_specular`, `_transmission`,
//!   `_ior`, `_clearcoat`, `_unlit` and `KHR_mesh_quantization`. Whatever a
//!   file uses beyond that is listed as a warning when the scene loads; a
//!   required extension outside it is refused with an error naming it.
//! * [`demo_scene_glb`]: the built-in animated demo scene.
//! * [`codec`]: PNG / EXR encoding (the `inferix-codec` crate), [`metrics`]: PSNR / SSIM / max difference,
//!   [`bench`]: the Inferix Bench index (IB).

// Without any runtime feature the device enum is empty and code after a
// device dispatch is unreachable by construction.
#![cfg_attr(
    not(any(feature = "wgpu", feature = "cuda", feature = "hip")),
    allow(unreachable_code, unused_variables, dead_code)
)]

mod accessor;
pub mod bench;
pub mod blender;
pub mod builder;
mod bvh;
mod camera;
pub use inferix_codec as codec;
mod demo;
mod device;
mod environment;
mod gpu_scene;
mod inspector;
mod kernel;
mod material;
mod math;
mod mesh;
pub mod metrics;
mod scene;
mod skin;
mod tracer;
pub mod watermark;

pub use demo::{demo_scene_glb, DEMO_SCENE_FRAMES};
pub use device::RuntimeKind;
pub use environment::default_environment_exr;
pub use inspector::GltfInspector;
pub use scene::MAX_TRIANGLES;
pub use tracer::{scene_warnings, PathTracer, Sampler};
pub use watermark::GltfWatermarker;

#[cfg(test)]
mod extension_tests;
#[cfg(test)]
mod feature_tests;
#[cfg(test)]
mod geometry_tests;
#[cfg(test)]
mod test_scenes;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_camera;
#[cfg(test)]
mod tests_light;
#[cfg(test)]
mod tests_sampler;
