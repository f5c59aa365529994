//! glTF 2.0 loading with hostile-input checks, and per-frame scene evaluation.
//!
//! Everything read from the file is bounds-checked before allocation: accessor
//! ranges against buffer views and buffers, triangle counts against
//! [`MAX_TRIANGLES`], image sizes against [`MAX_TEXTURE_PIXELS`].

use std::path::{Component, Path};

use gltf::accessor::{DataType, Dimensions};
use gltf::animation::{Interpolation, Property};

use crate::camera::{self, Camera, Projection};
use crate::math::{self, Mat4, Vec3};

/// Most triangles a scene may have (after instancing).
pub const MAX_TRIANGLES: usize = 10_000_000;
/// Most texels of one texture.
pub(crate) const MAX_TEXTURE_PIXELS: u64 = 8192 * 8192;
/// Most bytes of all textures together.
const MAX_TEXTURE_BYTES: u64 = 1 << 30;
/// Largest scene file or external buffer read.
pub(crate) const MAX_FILE_BYTES: u64 = 2 << 30;
const MAX_NODE_DEPTH: usize = 256;

/// A scene parse failure (mapped to `RenderError::InvalidScene` by callers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SceneError(pub(crate) String);

impl<T: std::fmt::Display> From<T> for SceneError {
    fn from(e: T) -> Self {
        SceneError(e.to_string())
    }
}

macro_rules! bail {
    ($($t:tt)*) => { return Err(SceneError(format!($($t)*))) };
}

/// One triangle mesh primitive in object space.
#[derive(Debug, Clone, Default)]
pub(crate) struct Primitive {
    pub(crate) positions: Vec<Vec3>,
    pub(crate) normals: Option<Vec<Vec3>>,
    pub(crate) uvs: Option<Vec<[f32; 2]>>,
    pub(crate) indices: Vec<[u32; 3]>,
    pub(crate) material: usize,
}

/// PBR metallic-roughness material.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Material {
    pub(crate) base: [f32; 3],
    pub(crate) metallic: f32,
    pub(crate) roughness: f32,
    pub(crate) emissive: [f32; 3],
    pub(crate) specular: f32,
    pub(crate) texture: Option<usize>,
    /// The texture tints the emission instead of the base colour (a
    /// material with an emissive texture and no base colour texture).
    pub(crate) emission_textured: bool,
}

impl Default for Material {
    fn default() -> Self {
        Material {
            base: [1.0; 3],
            metallic: 1.0,
            roughness: 1.0,
            emissive: [0.0; 3],
            specular: 1.0,
            texture: None,
            emission_textured: false,
        }
    }
}

/// An RGBA8 sRGB texture, texels packed little-endian into `u32`.
#[derive(Debug, Clone)]
pub(crate) struct Texture {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) texels: Vec<u32>,
}

/// KHR_lights_punctual light.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum LightKind {
    Point,
    Spot { inner: f32, outer: f32 },
    Directional,
}

/// A light definition (before placement by a node).
#[derive(Debug, Clone, Copy)]
pub(crate) struct LightDef {
    pub(crate) kind: LightKind,
    /// Colour times intensity.
    pub(crate) color: [f32; 3],
    pub(crate) range: f32,
}

#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) translation: Vec3,
    pub(crate) rotation: [f32; 4],
    pub(crate) scale: Vec3,
    /// A fixed matrix (then TRS and animation are ignored).
    pub(crate) matrix: Option<Mat4>,
    pub(crate) children: Vec<usize>,
    pub(crate) mesh: Option<usize>,
    pub(crate) camera: Option<Projection>,
    pub(crate) light: Option<usize>,
}

#[derive(Debug, Clone)]
pub(crate) struct Channel {
    pub(crate) node: usize,
    pub(crate) property: Property,
    pub(crate) interpolation: Interpolation,
    pub(crate) times: Vec<f32>,
    /// Flattened outputs: 3 or 4 components per key (x3 for cubic spline).
    pub(crate) values: Vec<f32>,
}

/// A parsed scene, independent of time.
#[derive(Debug, Clone)]
pub(crate) struct Scene {
    pub(crate) meshes: Vec<Vec<Primitive>>,
    pub(crate) materials: Vec<Material>,
    pub(crate) textures: Vec<Texture>,
    pub(crate) lights: Vec<LightDef>,
    pub(crate) nodes: Vec<Node>,
    pub(crate) roots: Vec<usize>,
    pub(crate) channels: Vec<Channel>,
}

/// A placed light.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PlacedLight {
    pub(crate) def: LightDef,
    pub(crate) position: Vec3,
    /// Direction the light shines (−Z of the node).
    pub(crate) direction: Vec3,
}

/// The scene at one instant: world-space triangles and attributes.
#[derive(Debug, Clone, Default)]
pub(crate) struct FrameGeometry {
    pub(crate) tris: Vec<[Vec3; 3]>,
    pub(crate) normals: Vec<[Vec3; 3]>,
    pub(crate) uvs: Vec<[[f32; 2]; 3]>,
    pub(crate) material: Vec<u32>,
    pub(crate) lights: Vec<PlacedLight>,
    pub(crate) camera: Option<Camera>,
}

fn check_finite(vals: &[f32], what: &str) -> Result<(), SceneError> {
    if vals.iter().any(|v| !v.is_finite()) {
        bail!("{what} contains NaN or infinite values");
    }
    Ok(())
}

/// Reads an external file referenced by a URI, refusing paths that leave the
/// scene's directory.
fn read_external(base: &Path, uri: &str, limit: u64) -> Result<Vec<u8>, SceneError> {
    if let Some(rest) = uri.strip_prefix("data:") {
        let Some((_, data)) = rest.split_once(";base64,") else {
            bail!("unsupported data URI");
        };
        if data.len() as u64 > limit.saturating_mul(2) {
            bail!("data URI too large");
        }
        return base64::decode(data).map_err(|e| SceneError(format!("bad base64 data URI: {e}")));
    }
    if uri.contains("://") {
        bail!("remote URI {uri:?} is not allowed");
    }
    let decoded = percent_decode(uri);
    let rel = Path::new(&decoded);
    if rel
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        bail!("URI {uri:?} leaves the scene directory");
    }
    let path = base.join(rel);
    let meta = std::fs::metadata(&path)
        .map_err(|e| SceneError(format!("missing resource {uri:?}: {e}")))?;
    if meta.len() > limit {
        bail!(
            "resource {uri:?} is {} bytes, over the {limit} limit",
            meta.len()
        );
    }
    std::fs::read(&path).map_err(|e| SceneError(format!("cannot read {uri:?}: {e}")))
}

fn percent_decode(s: &str) -> String {
    fn hex(c: u8) -> Option<u8> {
        (c as char).to_digit(16).map(|d| d as u8)
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Typed accessor reading with full bounds checks.
struct Reader<'a> {
    buffers: &'a [Vec<u8>],
}

impl Reader<'_> {
    /// Reads `count` elements of `comps` components as f32 (normalising ints).
    fn floats(
        &self,
        acc: &gltf::Accessor,
        comps: usize,
        what: &str,
    ) -> Result<Vec<f32>, SceneError> {
        if acc.sparse().is_some() {
            bail!("{what}: sparse accessors are not supported");
        }
        let dims = acc.dimensions().multiplicity();
        if dims != comps {
            bail!("{what}: expected {comps} components, found {dims}");
        }
        let count = acc.count();
        let n = count
            .checked_mul(comps)
            .ok_or_else(|| SceneError(format!("{what}: count overflow")))?;
        if n > MAX_TRIANGLES * 9 {
            bail!("{what}: {count} elements is over the limit");
        }
        let Some(view) = acc.view() else {
            return Ok(vec![0.0; n]);
        };
        let csize = acc.data_type().size();
        let elem = csize * comps;
        let stride = view.stride().unwrap_or(elem);
        if stride < elem {
            bail!("{what}: stride {stride} smaller than element size {elem}");
        }
        let buf = self
            .buffers
            .get(view.buffer().index())
            .ok_or_else(|| SceneError(format!("{what}: missing buffer")))?;
        let vstart = view.offset();
        let vend = vstart
            .checked_add(view.length())
            .filter(|&e| e <= buf.len())
            .ok_or_else(|| {
                SceneError(format!(
                    "{what}: buffer view exceeds its buffer ({} bytes)",
                    buf.len()
                ))
            })?;
        let data = &buf[vstart..vend];
        if count > 0 {
            let need = acc
                .offset()
                .checked_add(stride.saturating_mul(count - 1))
                .and_then(|x| x.checked_add(elem));
            if need.is_none_or(|need| need > data.len()) {
                bail!("{what}: accessor reads past the end of its buffer view (truncated buffer?)");
            }
        }
        let norm = acc.normalized();
        let dt = acc.data_type();
        let mut out = Vec::with_capacity(n);
        for i in 0..count {
            let base = acc.offset() + i * stride;
            for c in 0..comps {
                let o = base + c * csize;
                let v = match dt {
                    DataType::F32 => {
                        f32::from_le_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]])
                    }
                    DataType::U8 => {
                        let v = data[o] as f32;
                        if norm {
                            v / 255.0
                        } else {
                            v
                        }
                    }
                    DataType::I8 => {
                        let v = data[o] as i8 as f32;
                        if norm {
                            (v / 127.0).max(-1.0)
                        } else {
                            v
                        }
                    }
                    DataType::U16 => {
                        let v = u16::from_le_bytes([data[o], data[o + 1]]) as f32;
                        if norm {
                            v / 65535.0
                        } else {
                            v
                        }
                    }
                    DataType::I16 => {
                        let v = i16::from_le_bytes([data[o], data[o + 1]]) as f32;
                        if norm {
                            (v / 32767.0).max(-1.0)
                        } else {
                            v
                        }
                    }
                    DataType::U32 => {
                        u32::from_le_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]]) as f32
                    }
                };
                out.push(v);
            }
        }
        check_finite(&out, what)?;
        Ok(out)
    }

    fn indices(&self, acc: &gltf::Accessor, vertex_count: usize) -> Result<Vec<u32>, SceneError> {
        if acc.dimensions() != Dimensions::Scalar {
            bail!("indices must be scalars");
        }
        if !matches!(
            acc.data_type(),
            DataType::U8 | DataType::U16 | DataType::U32
        ) {
            bail!("indices must be unsigned integers");
        }
        if acc.count() > MAX_TRIANGLES * 3 {
            bail!(
                "index count {} is over the {} triangle limit",
                acc.count(),
                MAX_TRIANGLES
            );
        }
        let raw = self.raw_u32(acc)?;
        if let Some(bad) = raw.iter().find(|&&i| i as usize >= vertex_count) {
            bail!("vertex index {bad} out of range ({vertex_count} vertices)");
        }
        Ok(raw)
    }

    fn raw_u32(&self, acc: &gltf::Accessor) -> Result<Vec<u32>, SceneError> {
        // Integers up to 2^24 are exact in f32, but u32 indices may exceed it:
        // read them directly.
        if acc.data_type() != DataType::U32 {
            return Ok(self
                .floats(acc, 1, "indices")?
                .into_iter()
                .map(|v| v as u32)
                .collect());
        }
        let count = acc.count();
        let Some(view) = acc.view() else {
            return Ok(vec![0; count]);
        };
        if acc.sparse().is_some() {
            bail!("indices: sparse accessors are not supported");
        }
        let stride = view.stride().unwrap_or(4).max(4);
        let buf = self
            .buffers
            .get(view.buffer().index())
            .ok_or_else(|| SceneError("indices: missing buffer".into()))?;
        let vend = view
            .offset()
            .checked_add(view.length())
            .filter(|&e| e <= buf.len())
            .ok_or_else(|| SceneError("indices: buffer view exceeds its buffer".into()))?;
        let data = &buf[view.offset()..vend];
        if count > 0 {
            let need = acc
                .offset()
                .checked_add(stride.saturating_mul(count - 1))
                .and_then(|x| x.checked_add(4));
            if need.is_none_or(|need| need > data.len()) {
                bail!(
                    "indices: accessor reads past the end of its buffer view (truncated buffer?)"
                );
            }
        }
        Ok((0..count)
            .map(|i| {
                let o = acc.offset() + i * stride;
                u32::from_le_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]])
            })
            .collect())
    }
}

fn decode_image(bytes: &[u8], budget: &mut u64) -> Result<Texture, SceneError> {
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| SceneError(format!("image: {e}")))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(8192);
    limits.max_image_height = Some(8192);
    limits.max_alloc = Some((*budget).min(MAX_TEXTURE_PIXELS * 4 * 2));
    reader.limits(limits);
    let img = reader
        .decode()
        .map_err(|e| SceneError(format!("image decode failed: {e}")))?;
    let rgba = img.to_rgba8();
    let (w, h) = rgba.dimensions();
    let bytes_used = w as u64 * h as u64 * 4;
    if w == 0 || h == 0 || w as u64 * h as u64 > MAX_TEXTURE_PIXELS || bytes_used > *budget {
        bail!("texture {w}x{h} is too large");
    }
    *budget -= bytes_used;
    let texels = rgba.pixels().map(|p| u32::from_le_bytes(p.0)).collect();
    Ok(Texture {
        width: w,
        height: h,
        texels,
    })
}

/// Parses a glTF (`.gltf` or `.glb`) file from memory; external resources are
/// looked up beside `path`.
pub(crate) fn load(bytes: &[u8], path: &Path) -> Result<Scene, SceneError> {
    let gltf =
        gltf::Gltf::from_slice(bytes).map_err(|e| SceneError(format!("not valid glTF: {e}")))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let doc = &gltf.document;

    let mut buffers = Vec::new();
    for b in doc.buffers() {
        let data = match b.source() {
            gltf::buffer::Source::Bin => match &gltf.blob {
                Some(blob) => blob.clone(),
                None => bail!("buffer {} refers to a missing GLB binary chunk", b.index()),
            },
            gltf::buffer::Source::Uri(uri) => read_external(base, uri, MAX_FILE_BYTES)?,
        };
        if data.len() < b.length() {
            bail!(
                "buffer {} is truncated: {} bytes, declared {}",
                b.index(),
                data.len(),
                b.length()
            );
        }
        buffers.push(data);
    }
    let reader = Reader { buffers: &buffers };

    let mut textures = Vec::new();
    let mut budget = MAX_TEXTURE_BYTES;
    let mut image_tex = Vec::new();
    for img in doc.images() {
        let bytes: Vec<u8> = match img.source() {
            gltf::image::Source::View { view, .. } => {
                let buf = &buffers[view.buffer().index()];
                let end = view
                    .offset()
                    .checked_add(view.length())
                    .filter(|&e| e <= buf.len());
                match end {
                    Some(end) => buf[view.offset()..end].to_vec(),
                    None => bail!("image {} view exceeds its buffer", img.index()),
                }
            }
            gltf::image::Source::Uri { uri, .. } => read_external(base, uri, 256 << 20)?,
        };
        image_tex.push(textures.len());
        textures.push(decode_image(&bytes, &mut budget)?);
    }

    let mut materials: Vec<Material> = Vec::new();
    for m in doc.materials() {
        let pbr = m.pbr_metallic_roughness();
        let bc = pbr.base_color_factor();
        let strength = m.emissive_strength().unwrap_or(1.0);
        let e = m.emissive_factor();
        let base_texture = pbr
            .base_color_texture()
            .map(|t| t.texture().source().index())
            .and_then(|i| image_tex.get(i).copied());
        let emissive_texture = m
            .emissive_texture()
            .map(|t| t.texture().source().index())
            .and_then(|i| image_tex.get(i).copied());
        let mat = Material {
            base: [bc[0], bc[1], bc[2]],
            metallic: pbr.metallic_factor(),
            roughness: pbr.roughness_factor(),
            emissive: [e[0] * strength, e[1] * strength, e[2] * strength],
            specular: m.specular().map(|s| s.specular_factor()).unwrap_or(1.0),
            texture: base_texture.or(emissive_texture),
            emission_textured: base_texture.is_none() && emissive_texture.is_some(),
        };
        let all = [
            mat.base[0],
            mat.base[1],
            mat.base[2],
            mat.metallic,
            mat.roughness,
            mat.specular,
            strength,
        ];
        check_finite(&all, "material")?;
        check_finite(&mat.emissive, "material emission")?;
        if mat.base.iter().chain(mat.emissive.iter()).any(|v| *v < 0.0) {
            bail!("material {} has negative colours", m.index().unwrap_or(0));
        }
        materials.push(Material {
            metallic: mat.metallic.clamp(0.0, 1.0),
            roughness: mat.roughness.clamp(0.0, 1.0),
            specular: mat.specular.clamp(0.0, 1.0),
            ..mat
        });
    }
    let default_material = materials.len();
    materials.push(Material::default());

    let mut total_tris = 0usize;
    let mut meshes = Vec::new();
    for mesh in doc.meshes() {
        let mut prims = Vec::new();
        for p in mesh.primitives() {
            if p.mode() != gltf::mesh::Mode::Triangles {
                continue;
            }
            let Some(pos) = p.get(&gltf::Semantic::Positions) else {
                continue;
            };
            let positions: Vec<Vec3> = reader
                .floats(&pos, 3, "POSITION")?
                .chunks_exact(3)
                .map(|c| [c[0], c[1], c[2]])
                .collect();
            let normals = match p.get(&gltf::Semantic::Normals) {
                Some(a) if a.count() == positions.len() => Some(
                    reader
                        .floats(&a, 3, "NORMAL")?
                        .chunks_exact(3)
                        .map(|c| [c[0], c[1], c[2]])
                        .collect(),
                ),
                Some(_) => bail!("NORMAL count differs from POSITION count"),
                None => None,
            };
            let uvs = match p.get(&gltf::Semantic::TexCoords(0)) {
                Some(a) if a.count() == positions.len() => Some(
                    reader
                        .floats(&a, 2, "TEXCOORD_0")?
                        .chunks_exact(2)
                        .map(|c| [c[0], c[1]])
                        .collect(),
                ),
                Some(_) => bail!("TEXCOORD_0 count differs from POSITION count"),
                None => None,
            };
            let flat: Vec<u32> = match p.indices() {
                Some(a) => reader.indices(&a, positions.len())?,
                None => {
                    if positions.len() > MAX_TRIANGLES * 3 {
                        bail!("too many vertices");
                    }
                    (0..positions.len() as u32).collect()
                }
            };
            let indices: Vec<[u32; 3]> = flat.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect();
            total_tris += indices.len();
            if total_tris > MAX_TRIANGLES {
                bail!("scene has more than {MAX_TRIANGLES} triangles");
            }
            let material = p.material().index().unwrap_or(default_material);
            prims.push(Primitive {
                positions,
                normals,
                uvs,
                indices,
                material,
            });
        }
        meshes.push(prims);
    }

    let mut lights = Vec::new();
    if let Some(ls) = doc.lights() {
        for l in ls {
            let c = l.color();
            let i = l.intensity();
            let kind = match l.kind() {
                gltf::khr_lights_punctual::Kind::Point => LightKind::Point,
                gltf::khr_lights_punctual::Kind::Directional => LightKind::Directional,
                gltf::khr_lights_punctual::Kind::Spot {
                    inner_cone_angle,
                    outer_cone_angle,
                } => LightKind::Spot {
                    inner: inner_cone_angle,
                    outer: outer_cone_angle,
                },
            };
            let def = LightDef {
                kind,
                color: [c[0] * i, c[1] * i, c[2] * i],
                range: l.range().unwrap_or(0.0),
            };
            check_finite(&def.color, "light")?;
            if def.color.iter().any(|v| *v < 0.0) || !def.range.is_finite() {
                bail!("light {} has a negative colour or bad range", l.index());
            }
            lights.push(def);
        }
    }

    let mut nodes = Vec::new();
    for n in doc.nodes() {
        let (matrix, t, r, s) = match n.transform() {
            gltf::scene::Transform::Matrix { matrix } => {
                let m: Mat4 = std::array::from_fn(|i| matrix[i / 4][i % 4]);
                (Some(m), [0.0; 3], [0.0, 0.0, 0.0, 1.0], [1.0; 3])
            }
            gltf::scene::Transform::Decomposed {
                translation,
                rotation,
                scale,
            } => (None, translation, rotation, scale),
        };
        check_finite(&t, "node translation")?;
        check_finite(&r, "node rotation")?;
        check_finite(&s, "node scale")?;
        if let Some(m) = &matrix {
            check_finite(m, "node matrix")?;
        }
        let camera = n.camera().map(|c| match c.projection() {
            gltf::camera::Projection::Perspective(p) => Projection::Perspective { yfov: p.yfov() },
            gltf::camera::Projection::Orthographic(o) => Projection::Orthographic {
                half_height: o.ymag().abs(),
            },
        });
        match camera {
            Some(Projection::Perspective { yfov })
                if !(yfov.is_finite() && yfov > 0.0 && yfov < std::f32::consts::PI) =>
            {
                bail!("camera yfov {yfov} out of range");
            }
            Some(Projection::Orthographic { half_height })
                if !(half_height.is_finite() && half_height > 0.0) =>
            {
                bail!("orthographic camera ymag {half_height} out of range");
            }
            _ => {}
        }
        nodes.push(Node {
            translation: t,
            rotation: math::quat_normalize(r),
            scale: s,
            matrix,
            children: n.children().map(|c| c.index()).collect(),
            mesh: n.mesh().map(|m| m.index()),
            camera,
            light: n.light().map(|l| l.index()),
        });
    }
    let roots: Vec<usize> = match doc.default_scene().or_else(|| doc.scenes().next()) {
        Some(s) => s.nodes().map(|n| n.index()).collect(),
        None => {
            // No scene: treat nodes that are nobody's child as roots.
            let mut is_child = vec![false; nodes.len()];
            for n in &nodes {
                for &c in &n.children {
                    is_child[c] = true;
                }
            }
            (0..nodes.len()).filter(|&i| !is_child[i]).collect()
        }
    };

    let mut channels = Vec::new();
    for anim in doc.animations() {
        for ch in anim.channels() {
            let target = ch.target();
            let property = target.property();
            let comps = match property {
                Property::Translation | Property::Scale => 3,
                Property::Rotation => 4,
                Property::MorphTargetWeights => continue,
            };
            let sampler = ch.sampler();
            let times = reader.floats(&sampler.input(), 1, "animation input")?;
            let values = reader.floats(&sampler.output(), comps, "animation output")?;
            let interpolation = sampler.interpolation();
            let per_key = if interpolation == Interpolation::CubicSpline {
                3
            } else {
                1
            };
            if times.is_empty() || values.len() != times.len() * comps * per_key {
                bail!("animation sampler input/output counts do not match");
            }
            if times.windows(2).any(|w| w[1] < w[0]) {
                bail!("animation key times are not increasing");
            }
            channels.push(Channel {
                node: target.node().index(),
                property,
                interpolation,
                times,
                values,
            });
        }
    }

    // Nodes instancing meshes may multiply triangle counts: check the total.
    let scene = Scene {
        meshes,
        materials,
        textures,
        lights,
        nodes,
        roots,
        channels,
    };
    let mut instanced = 0usize;
    let mut overflow = false;
    scene.walk(0.0, &mut |node, _| {
        if let Some(m) = scene.nodes[node].mesh {
            instanced =
                instanced.saturating_add(scene.meshes[m].iter().map(|p| p.indices.len()).sum());
            overflow |= instanced > MAX_TRIANGLES;
        }
        !overflow
    })?;
    if overflow {
        bail!("scene instantiates more than {MAX_TRIANGLES} triangles");
    }
    Ok(scene)
}

fn sample_channel(ch: &Channel, t: f32, comps: usize) -> Vec<f32> {
    let times = &ch.times;
    let per_key = if ch.interpolation == Interpolation::CubicSpline {
        3
    } else {
        1
    };
    let value = |k: usize, part: usize| -> &[f32] {
        let o = (k * per_key + part) * comps;
        &ch.values[o..o + comps]
    };
    let vpart = if per_key == 3 { 1 } else { 0 };
    if t <= times[0] {
        return value(0, vpart).to_vec();
    }
    let last = times.len() - 1;
    if t >= times[last] {
        return value(last, vpart).to_vec();
    }
    let k = times
        .partition_point(|&x| x <= t)
        .saturating_sub(1)
        .min(last - 1);
    let (t0, t1) = (times[k], times[k + 1]);
    let dt = t1 - t0;
    let u = if dt > 0.0 { (t - t0) / dt } else { 0.0 };
    match ch.interpolation {
        Interpolation::Step => value(k, 0).to_vec(),
        Interpolation::Linear => {
            let (a, b) = (value(k, 0), value(k + 1, 0));
            if comps == 4 {
                math::slerp([a[0], a[1], a[2], a[3]], [b[0], b[1], b[2], b[3]], u).to_vec()
            } else {
                (0..comps).map(|i| a[i] + (b[i] - a[i]) * u).collect()
            }
        }
        Interpolation::CubicSpline => {
            let (p0, m0, p1, m1) = (value(k, 1), value(k, 2), value(k + 1, 1), value(k + 1, 0));
            let (u2, u3) = (u * u, u * u * u);
            let r: Vec<f32> = (0..comps)
                .map(|i| {
                    (2.0 * u3 - 3.0 * u2 + 1.0) * p0[i]
                        + (u3 - 2.0 * u2 + u) * dt * m0[i]
                        + (-2.0 * u3 + 3.0 * u2) * p1[i]
                        + (u3 - u2) * dt * m1[i]
                })
                .collect();
            if comps == 4 {
                math::quat_normalize([r[0], r[1], r[2], r[3]]).to_vec()
            } else {
                r
            }
        }
    }
}

impl Scene {
    /// Whether anything moves.
    pub(crate) fn is_animated(&self) -> bool {
        !self.channels.is_empty()
    }

    /// Local matrices of every node at time `t`.
    fn local_matrices(&self, t: f32) -> Vec<Mat4> {
        let mut trs: Vec<(Vec3, [f32; 4], Vec3)> = self
            .nodes
            .iter()
            .map(|n| (n.translation, n.rotation, n.scale))
            .collect();
        for ch in &self.channels {
            let Some(e) = trs.get_mut(ch.node) else {
                continue;
            };
            match ch.property {
                Property::Translation => {
                    let v = sample_channel(ch, t, 3);
                    e.0 = [v[0], v[1], v[2]];
                }
                Property::Scale => {
                    let v = sample_channel(ch, t, 3);
                    e.2 = [v[0], v[1], v[2]];
                }
                Property::Rotation => {
                    let v = sample_channel(ch, t, 4);
                    e.1 = math::quat_normalize([v[0], v[1], v[2], v[3]]);
                }
                Property::MorphTargetWeights => {}
            }
        }
        self.nodes
            .iter()
            .zip(trs)
            .map(|(n, (t, r, s))| n.matrix.unwrap_or_else(|| math::trs(t, r, s)))
            .collect()
    }

    /// Visits every node instance depth-first with its world matrix; `f`
    /// returns false to stop. Errors on cycles or absurd depth.
    fn walk(&self, t: f32, f: &mut dyn FnMut(usize, &Mat4) -> bool) -> Result<(), SceneError> {
        let local = self.local_matrices(t);
        let mut stack: Vec<(usize, Mat4, usize)> = self
            .roots
            .iter()
            .rev()
            .map(|&r| (r, math::IDENTITY, 0))
            .collect();
        let mut visits = 0usize;
        while let Some((n, parent, depth)) = stack.pop() {
            if depth > MAX_NODE_DEPTH {
                bail!("node hierarchy deeper than {MAX_NODE_DEPTH} (cycle?)");
            }
            visits += 1;
            if visits > 4 * self.nodes.len() + 16 && visits > 1_000_000 {
                bail!("node hierarchy visits too many instances");
            }
            let world = math::mat_mul(&parent, &local[n]);
            if !f(n, &world) {
                return Ok(());
            }
            for &c in self.nodes[n].children.iter().rev() {
                stack.push((c, world, depth + 1));
            }
        }
        Ok(())
    }

    /// World-space geometry, lights and camera at time `t` seconds.
    pub(crate) fn evaluate(&self, t: f32) -> Result<FrameGeometry, SceneError> {
        let mut g = FrameGeometry::default();
        let mut err = None;
        self.walk(t, &mut |n, world| {
            let node = &self.nodes[n];
            if let Some(m) = node.mesh {
                for p in &self.meshes[m] {
                    for tri in &p.indices {
                        let v = tri.map(|i| math::transform_point(world, p.positions[i as usize]));
                        let face = math::normalize(math::cross(
                            math::sub(v[1], v[0]),
                            math::sub(v[2], v[0]),
                        ));
                        let nrm = match &p.normals {
                            Some(ns) => tri.map(|i| {
                                let tn = math::transform_normal(world, ns[i as usize]);
                                if math::dot(tn, tn) > 0.5 {
                                    tn
                                } else {
                                    face
                                }
                            }),
                            None => [face; 3],
                        };
                        let uv = match &p.uvs {
                            Some(uvs) => tri.map(|i| uvs[i as usize]),
                            None => [[0.0; 2]; 3],
                        };
                        if v.iter().flatten().any(|x| !x.is_finite()) {
                            err = Some(SceneError("transformed vertex is not finite".into()));
                            return false;
                        }
                        g.tris.push(v);
                        g.normals.push(nrm);
                        g.uvs.push(uv);
                        g.material.push(p.material as u32);
                    }
                }
            }
            if let Some(l) = node.light.and_then(|l| self.lights.get(l)) {
                g.lights.push(PlacedLight {
                    def: *l,
                    position: math::transform_point(world, [0.0; 3]),
                    direction: math::normalize(math::transform_dir(world, [0.0, 0.0, -1.0])),
                });
            }
            if let (Some(c), None) = (node.camera, g.camera) {
                g.camera = camera::from_world(world, c);
            }
            true
        })?;
        if let Some(e) = err {
            return Err(e);
        }
        Ok(g)
    }
}
