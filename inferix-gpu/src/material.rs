//! glTF materials: the metallic-roughness core, its five textures, alpha
//! modes, double-sidedness, `KHR_texture_transform` and the material
//! extensions the tracer shades (`KHR_materials_emissive_strength`,
//! `_specular`, `_transmission`, `_ior`, `_clearcoat`, `_unlit`).
//!
//! Every texture a material uses is a [`TexRef`]: which decoded image, which
//! UV set, how coordinates wrap, whether it is filtered, and the UV transform.
//! The kernel reads these slots from the material record (see
//! [`crate::kernel::MAT_F`] / [`crate::kernel::MAT_U`]).

use crate::scene::{check_finite, SceneError};

macro_rules! bail {
    ($($t:tt)*) => { return Err(SceneError(format!($($t)*))) };
}

/// Texture slot of the base colour (sRGB; alpha in the fourth channel).
pub(crate) const SLOT_BASE: usize = 0;
/// Texture slot of metallic (blue) and roughness (green), linear.
pub(crate) const SLOT_MR: usize = 1;
/// Texture slot of the tangent-space normal map, linear.
pub(crate) const SLOT_NORMAL: usize = 2;
/// Texture slot of ambient occlusion (red), linear.
pub(crate) const SLOT_OCCLUSION: usize = 3;
/// Texture slot of the emission colour (sRGB).
pub(crate) const SLOT_EMISSIVE: usize = 4;
/// Number of texture slots per material.
pub(crate) const SLOTS: usize = 5;

/// Inferix's material extension for surfaces only camera rays see: the
/// Proof-of-Render patches use it, so that they change no pixel but their
/// own (no shadow, reflection or bounce light of them anywhere else) and a
/// frame's other pixels equal those of the scene without them.
pub(crate) const CAMERA_ONLY_EXTENSION: &str = "INFERIX_materials_camera_only";

/// How texture coordinates outside [0, 1] are mapped (glTF sampler wrap).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wrap {
    Repeat = 0,
    Clamp = 1,
    Mirror = 2,
}

/// One texture use by a material.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct TexRef {
    /// Index into `Scene::textures`.
    pub(crate) texture: usize,
    /// TEXCOORD_0 or TEXCOORD_1.
    pub(crate) tex_coord: u32,
    pub(crate) wrap_s: Wrap,
    pub(crate) wrap_t: Wrap,
    /// Nearest-texel lookup (the sampler's magFilter is NEAREST); bilinear
    /// otherwise.
    pub(crate) nearest: bool,
    /// UV transform as a 2x3 row-major matrix: `u' = m0 u + m1 v + m2`,
    /// `v' = m3 u + m4 v + m5` (identity without `KHR_texture_transform`).
    pub(crate) transform: [f32; 6],
}

/// glTF alpha modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AlphaMode {
    Opaque = 0,
    /// Cut out where alpha < `alpha_cutoff`.
    Mask = 1,
    /// Stochastic transparency: a ray passes with probability 1 − alpha.
    Blend = 2,
}

/// PBR metallic-roughness material.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Material {
    pub(crate) base: [f32; 3],
    /// Base colour alpha factor.
    pub(crate) alpha: f32,
    pub(crate) alpha_mode: AlphaMode,
    pub(crate) alpha_cutoff: f32,
    pub(crate) double_sided: bool,
    pub(crate) metallic: f32,
    pub(crate) roughness: f32,
    pub(crate) emissive: [f32; 3],
    pub(crate) specular: f32,
    pub(crate) normal_scale: f32,
    pub(crate) occlusion_strength: f32,
    /// `KHR_materials_transmission` factor.
    pub(crate) transmission: f32,
    /// `KHR_materials_ior`.
    pub(crate) ior: f32,
    /// `KHR_materials_unlit`: the base colour is seen as is, unshaded.
    pub(crate) unlit: bool,
    /// [`CAMERA_ONLY_EXTENSION`]: seen by camera rays only; every other
    /// ray (shadows, reflections, indirect light) passes through it.
    pub(crate) camera_only: bool,
    /// `KHR_materials_clearcoat` factor and roughness.
    pub(crate) clearcoat: f32,
    pub(crate) clearcoat_roughness: f32,
    /// Texture per slot (`SLOT_*`).
    pub(crate) slots: [Option<TexRef>; SLOTS],
}

impl Default for Material {
    /// The glTF default material (no `material` on a primitive).
    fn default() -> Self {
        Material {
            base: [1.0; 3],
            alpha: 1.0,
            alpha_mode: AlphaMode::Opaque,
            alpha_cutoff: 0.5,
            double_sided: false,
            metallic: 1.0,
            roughness: 1.0,
            emissive: [0.0; 3],
            specular: 1.0,
            normal_scale: 1.0,
            occlusion_strength: 1.0,
            transmission: 0.0,
            ior: 1.5,
            clearcoat: 0.0,
            clearcoat_roughness: 0.0,
            unlit: false,
            camera_only: false,
            slots: [None; SLOTS],
        }
    }
}

impl Material {
    /// Emission varies over the surface: such surfaces are seen (and found
    /// by BSDF sampling) but not sampled as lights, which would need the
    /// texture's distribution (watermark patches are the common case).
    pub(crate) fn emission_textured(&self) -> bool {
        self.slots[SLOT_EMISSIVE].is_some()
    }

    /// Rays may pass through the surface (MASK or BLEND).
    pub(crate) fn alpha_tested(&self) -> bool {
        self.alpha_mode != AlphaMode::Opaque || self.camera_only
    }
}

fn wrap_of(mode: gltf::texture::WrappingMode) -> Wrap {
    match mode {
        gltf::texture::WrappingMode::ClampToEdge => Wrap::Clamp,
        gltf::texture::WrappingMode::MirroredRepeat => Wrap::Mirror,
        gltf::texture::WrappingMode::Repeat => Wrap::Repeat,
    }
}

/// The 2x3 UV matrix of `KHR_texture_transform` (translation · rotation ·
/// scale, as the extension defines it).
pub(crate) fn uv_transform(offset: [f32; 2], rotation: f32, scale: [f32; 2]) -> [f32; 6] {
    let (s, c) = rotation.sin_cos();
    [
        c * scale[0],
        s * scale[1],
        offset[0],
        -s * scale[0],
        c * scale[1],
        offset[1],
    ]
}

const IDENTITY_UV: [f32; 6] = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0];

/// `KHR_texture_transform` parameters of one texture reference.
#[derive(Debug, Clone, Copy)]
struct UvXform {
    offset: [f32; 2],
    rotation: f32,
    scale: [f32; 2],
    tex_coord: Option<u32>,
}

impl UvXform {
    fn from_gltf(t: gltf::texture::TextureTransform) -> Self {
        UvXform {
            offset: t.offset(),
            rotation: t.rotation(),
            scale: t.scale(),
            tex_coord: t.tex_coord(),
        }
    }

    /// From the raw extension JSON (normal and occlusion textures, on which
    /// the gltf crate does not model the extension).
    fn from_json(v: &serde_json::Value) -> Self {
        let pair = |key: &str, d: f32| -> [f32; 2] {
            let a = v.get(key).and_then(serde_json::Value::as_array);
            let at = |i: usize| {
                a.and_then(|a| a.get(i))
                    .and_then(serde_json::Value::as_f64)
                    .map_or(d, |x| x as f32)
            };
            [at(0), at(1)]
        };
        UvXform {
            offset: pair("offset", 0.0),
            rotation: ext_f32(Some(v), "rotation", 0.0),
            scale: pair("scale", 1.0),
            tex_coord: v
                .get("texCoord")
                .and_then(serde_json::Value::as_u64)
                .map(|c| c.min(u32::MAX as u64) as u32),
        }
    }
}

/// Resolves a texture reference. `image_tex` maps image index to
/// `Scene::textures` index.
fn tex_ref(
    texture: gltf::Texture,
    tex_coord: u32,
    transform: Option<UvXform>,
    image_tex: &[usize],
    warnings: &mut Vec<String>,
) -> Result<Option<TexRef>, SceneError> {
    let Some(&index) = image_tex.get(texture.source().index()) else {
        return Ok(None);
    };
    let sampler = texture.sampler();
    let (tex_coord, transform) = match transform {
        Some(t) => {
            let (o, r, s) = (t.offset, t.rotation, t.scale);
            check_finite(&[o[0], o[1], r, s[0], s[1]], "KHR_texture_transform")?;
            (t.tex_coord.unwrap_or(tex_coord), uv_transform(o, r, s))
        }
        None => (tex_coord, IDENTITY_UV),
    };
    if tex_coord > 1 {
        warn_once(
            warnings,
            format!("TEXCOORD_{tex_coord} is not supported (sets 0 and 1 are); set 0 is used"),
        );
    }
    Ok(Some(TexRef {
        texture: index,
        tex_coord: if tex_coord > 1 { 0 } else { tex_coord },
        wrap_s: wrap_of(sampler.wrap_s()),
        wrap_t: wrap_of(sampler.wrap_t()),
        nearest: sampler.mag_filter() == Some(gltf::texture::MagFilter::Nearest),
        transform,
    }))
}

/// Adds `w` to the scene's warnings unless it is already there.
pub(crate) fn warn_once(warnings: &mut Vec<String>, w: String) {
    if !warnings.contains(&w) {
        warnings.push(w);
    }
}

fn ext_f32(ext: Option<&serde_json::Value>, key: &str, default: f32) -> f32 {
    ext.and_then(|e| e.get(key))
        .and_then(serde_json::Value::as_f64)
        .map(|v| v as f32)
        .unwrap_or(default)
}

/// Reads every material of the document.
pub(crate) fn read_materials(
    doc: &gltf::Document,
    image_tex: &[usize],
    warnings: &mut Vec<String>,
) -> Result<Vec<Material>, SceneError> {
    let mut materials = Vec::new();
    for m in doc.materials() {
        let mut r = |info: Option<(gltf::Texture, u32, Option<UvXform>)>| match info {
            Some((t, c, x)) => tex_ref(t, c, x, image_tex, warnings),
            None => Ok(None),
        };
        let pbr = m.pbr_metallic_roughness();
        let base_slot = r(pbr.base_color_texture().map(|t| {
            (
                t.texture(),
                t.tex_coord(),
                t.texture_transform().map(UvXform::from_gltf),
            )
        }))?;
        let mr_slot = r(pbr.metallic_roughness_texture().map(|t| {
            (
                t.texture(),
                t.tex_coord(),
                t.texture_transform().map(UvXform::from_gltf),
            )
        }))?;
        let normal = m.normal_texture();
        let normal_scale = normal.as_ref().map(|n| n.scale()).unwrap_or(1.0);
        let normal_slot = r(normal.map(|t| {
            let x = t
                .extension_value("KHR_texture_transform")
                .map(UvXform::from_json);
            (t.texture(), t.tex_coord(), x)
        }))?;
        let occlusion = m.occlusion_texture();
        let occlusion_strength = occlusion.as_ref().map(|o| o.strength()).unwrap_or(1.0);
        let occlusion_slot = r(occlusion.map(|t| {
            let x = t
                .extension_value("KHR_texture_transform")
                .map(UvXform::from_json);
            (t.texture(), t.tex_coord(), x)
        }))?;
        let emissive_slot = r(m.emissive_texture().map(|t| {
            (
                t.texture(),
                t.tex_coord(),
                t.texture_transform().map(UvXform::from_gltf),
            )
        }))?;

        let transmission = m.transmission();
        let transmission_factor = transmission
            .as_ref()
            .map(|t| t.transmission_factor())
            .unwrap_or(0.0);
        if transmission
            .as_ref()
            .is_some_and(|t| t.transmission_texture().is_some())
        {
            warn_once(
                warnings,
                "KHR_materials_transmission: transmissionTexture is not supported (the factor is used)"
                    .into(),
            );
        }
        let clearcoat = m.extension_value("KHR_materials_clearcoat");
        if clearcoat.is_some_and(|c| {
            c.get("clearcoatTexture").is_some()
                || c.get("clearcoatRoughnessTexture").is_some()
                || c.get("clearcoatNormalTexture").is_some()
        }) {
            warn_once(
                warnings,
                "KHR_materials_clearcoat: clearcoat textures are not supported (the factors are used)"
                    .into(),
            );
        }
        if let Some(ext) = m.extensions() {
            for name in ext.keys() {
                if name != "KHR_materials_clearcoat" && name != CAMERA_ONLY_EXTENSION {
                    warn_once(
                        warnings,
                        format!("material extension {name} is not supported and is ignored"),
                    );
                }
            }
        }

        let bc = pbr.base_color_factor();
        let strength = m.emissive_strength().unwrap_or(1.0);
        let e = m.emissive_factor();
        let (alpha_mode, alpha_cutoff) = match m.alpha_mode() {
            gltf::material::AlphaMode::Opaque => (AlphaMode::Opaque, 0.5),
            gltf::material::AlphaMode::Mask => (AlphaMode::Mask, m.alpha_cutoff().unwrap_or(0.5)),
            gltf::material::AlphaMode::Blend => (AlphaMode::Blend, 0.5),
        };
        let mat = Material {
            base: [bc[0], bc[1], bc[2]],
            alpha: bc[3],
            alpha_mode,
            alpha_cutoff,
            double_sided: m.double_sided(),
            metallic: pbr.metallic_factor(),
            roughness: pbr.roughness_factor(),
            emissive: [e[0] * strength, e[1] * strength, e[2] * strength],
            specular: m.specular().map(|s| s.specular_factor()).unwrap_or(1.0),
            normal_scale,
            occlusion_strength,
            transmission: transmission_factor,
            ior: m.ior().unwrap_or(1.5),
            clearcoat: ext_f32(clearcoat, "clearcoatFactor", 0.0),
            clearcoat_roughness: ext_f32(clearcoat, "clearcoatRoughnessFactor", 0.0),
            unlit: m.unlit(),
            camera_only: m.extension_value(CAMERA_ONLY_EXTENSION).is_some(),
            slots: [
                base_slot,
                mr_slot,
                normal_slot,
                occlusion_slot,
                emissive_slot,
            ],
        };
        let all = [
            mat.alpha,
            mat.alpha_cutoff,
            mat.metallic,
            mat.roughness,
            mat.specular,
            mat.normal_scale,
            mat.occlusion_strength,
            mat.transmission,
            mat.ior,
            mat.clearcoat,
            mat.clearcoat_roughness,
            strength,
        ];
        check_finite(&all, "material")?;
        check_finite(&mat.base, "material base colour")?;
        check_finite(&mat.emissive, "material emission")?;
        if mat.base.iter().chain(mat.emissive.iter()).any(|v| *v < 0.0) {
            bail!("material {} has negative colours", m.index().unwrap_or(0));
        }
        // Values below 1 (the extension allows a special 0) fall back to
        // the default 1.5; very dense media are capped.
        let ior = if mat.ior < 1.0 { 1.5 } else { mat.ior.min(4.0) };
        materials.push(Material {
            alpha: mat.alpha.clamp(0.0, 1.0),
            alpha_cutoff: mat.alpha_cutoff.clamp(0.0, 1.0),
            metallic: mat.metallic.clamp(0.0, 1.0),
            roughness: mat.roughness.clamp(0.0, 1.0),
            specular: mat.specular.clamp(0.0, 1.0),
            occlusion_strength: mat.occlusion_strength.clamp(0.0, 1.0),
            transmission: mat.transmission.clamp(0.0, 1.0),
            clearcoat: mat.clearcoat.clamp(0.0, 1.0),
            clearcoat_roughness: mat.clearcoat_roughness.clamp(0.0, 1.0),
            ior,
            ..mat
        });
    }
    Ok(materials)
}
