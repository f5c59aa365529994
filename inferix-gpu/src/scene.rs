//! glTF 2.0 loading with hostile-input checks, and per-frame scene evaluation.
//!
//! Everything read from the file is bounds-checked before allocation: accessor
//! ranges against buffer views and buffers, triangle counts against
//! [`MAX_TRIANGLES`], image sizes against [`MAX_TEXTURE_PIXELS`].

use std::path::Path;

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

pub(crate) use crate::material::Material;
pub(crate) use crate::mesh::Primitive;
use crate::skin::Skin;

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
    pub(crate) skin: Option<usize>,
    /// Morph target weights of the node (overriding the mesh's).
    pub(crate) weights: Option<Vec<f32>>,
}

#[derive(Debug, Clone)]
pub(crate) struct Channel {
    pub(crate) node: usize,
    pub(crate) property: Property,
    pub(crate) interpolation: Interpolation,
    pub(crate) times: Vec<f32>,
    /// Components per key: 3 (translation, scale), 4 (rotation) or the
    /// number of morph targets (weights).
    pub(crate) comps: usize,
    /// Flattened outputs: `comps` components per key (x3 for cubic spline).
    pub(crate) values: Vec<f32>,
}

/// A parsed scene, independent of time.
#[derive(Debug, Clone)]
pub(crate) struct Scene {
    pub(crate) meshes: Vec<Vec<Primitive>>,
    /// Default morph target weights per mesh.
    pub(crate) mesh_weights: Vec<Vec<f32>>,
    pub(crate) skins: Vec<Skin>,
    pub(crate) materials: Vec<Material>,
    pub(crate) textures: Vec<Texture>,
    pub(crate) lights: Vec<LightDef>,
    pub(crate) nodes: Vec<Node>,
    pub(crate) roots: Vec<usize>,
    pub(crate) channels: Vec<Channel>,
    /// Features of the file that are not rendered (each logged once at load).
    pub(crate) warnings: Vec<String>,
}

/// A placed light.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PlacedLight {
    pub(crate) def: LightDef,
    pub(crate) position: Vec3,
    /// Direction the light shines (−Z of the node).
    pub(crate) direction: Vec3,
}

/// World-space shading attributes of one vertex.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct FrameVertex {
    /// Zero when the primitive has no normals (the face normal is used).
    pub(crate) normal: Vec3,
    /// Tangent and handedness; zero without tangents.
    pub(crate) tangent: [f32; 4],
    /// TEXCOORD_0 and TEXCOORD_1.
    pub(crate) uv: [[f32; 2]; 2],
    /// COLOR_0 (white without one).
    pub(crate) color: [f32; 4],
}

/// The scene at one instant: world-space triangles and attributes.
#[derive(Debug, Clone, Default)]
pub(crate) struct FrameGeometry {
    pub(crate) tris: Vec<[Vec3; 3]>,
    /// Indices into `verts` of each triangle's corners.
    pub(crate) tri_verts: Vec<[u32; 3]>,
    pub(crate) verts: Vec<FrameVertex>,
    pub(crate) material: Vec<u32>,
    pub(crate) lights: Vec<PlacedLight>,
    pub(crate) camera: Option<Camera>,
}

pub(crate) fn check_finite(vals: &[f32], what: &str) -> Result<(), SceneError> {
    if vals.iter().any(|v| !v.is_finite()) {
        bail!("{what} contains NaN or infinite values");
    }
    Ok(())
}

mod external;
mod graph;

use external::read_external;
use graph::{read_channels, read_lights, read_nodes, scene_roots};

pub(crate) use crate::accessor::Reader;

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

/// Every mesh's primitives, and its default morph target weights.
type MeshesAndWeights = (Vec<Vec<Primitive>>, Vec<Vec<f32>>);

/// Reads every mesh's primitives and default morph weights, with the
/// scene's triangle budget.
fn read_meshes(
    doc: &gltf::Document,
    reader: &Reader,
    materials: &[Material],
    warnings: &mut Vec<String>,
) -> Result<MeshesAndWeights, SceneError> {
    let default_material = materials.len() - 1;
    let mut total_tris = 0usize;
    let mut meshes = Vec::new();
    let mut weights = Vec::new();
    for mesh in doc.meshes() {
        let mut prims = Vec::new();
        for p in mesh.primitives() {
            let Some(prim) = crate::mesh::read_primitive(
                reader,
                &mesh,
                &p,
                materials,
                default_material,
                warnings,
            )?
            else {
                continue;
            };
            total_tris += prim.indices.len();
            if total_tris > MAX_TRIANGLES {
                bail!("scene has more than {MAX_TRIANGLES} triangles");
            }
            prims.push(prim);
        }
        let w = mesh.weights().map(<[f32]>::to_vec).unwrap_or_default();
        check_finite(&w, "mesh weights")?;
        meshes.push(prims);
        weights.push(w);
    }
    Ok((meshes, weights))
}

/// Extensions the tracer renders (or, for `KHR_materials_specular` and the
/// punctual lights, has always read).
pub(crate) const SUPPORTED_EXTENSIONS: &[&str] = &[
    "KHR_lights_punctual",
    "KHR_materials_emissive_strength",
    "KHR_materials_specular",
    "KHR_materials_transmission",
    "KHR_materials_ior",
    "KHR_materials_clearcoat",
    "KHR_materials_unlit",
    "KHR_mesh_quantization",
    "KHR_texture_transform",
    // Proof of Render's own: watermark patches seen by camera rays only.
    crate::material::CAMERA_ONLY_EXTENSION,
];

/// The gltf crate's validation (index bounds, required fields), except its
/// refusal of required extensions it does not know: those were checked
/// against what the tracer supports by [`check_extensions`] (the crate does
/// not know `KHR_mesh_quantization`, which only widens accessor types the
/// accessor reader handles).
fn validate(doc: &gltf::Document) -> Result<(), SceneError> {
    use gltf::json::validation::{Error, Validate};
    let root = doc.as_json();
    let mut errors = Vec::new();
    root.validate(root, gltf::json::Path::new, &mut |path, error| {
        let path = path().to_string();
        if !(error == Error::Unsupported && path.starts_with("extensionsRequired")) {
            errors.push(format!("{path}: {error}"));
        }
    });
    if !errors.is_empty() {
        bail!("not valid glTF: {}", errors.join(", "));
    }
    Ok(())
}

/// Checks `extensionsRequired` before the document is parsed (so a file
/// that needs an unsupported extension gets an error naming it, not a
/// validation failure) and lists `extensionsUsed` that are not handled.
fn check_extensions(bytes: &[u8]) -> Result<Vec<String>, SceneError> {
    let json: &[u8] = if bytes.starts_with(b"glTF") {
        match gltf::Glb::from_slice(bytes) {
            Ok(glb) => return check_extensions_json(&glb.json[..]),
            Err(e) => bail!("not valid glTF: {e}"),
        }
    } else {
        bytes
    };
    check_extensions_json(json)
}

fn check_extensions_json(json: &[u8]) -> Result<Vec<String>, SceneError> {
    #[derive(serde::Deserialize)]
    struct Exts {
        #[serde(default, rename = "extensionsRequired")]
        required: Vec<String>,
        #[serde(default, rename = "extensionsUsed")]
        used: Vec<String>,
    }
    // Malformed JSON is reported by the full parse that follows.
    let Ok(e) = serde_json::from_slice::<Exts>(json) else {
        return Ok(Vec::new());
    };
    let missing: Vec<&str> = e
        .required
        .iter()
        .map(String::as_str)
        .filter(|x| !SUPPORTED_EXTENSIONS.contains(x))
        .collect();
    if !missing.is_empty() {
        bail!(
            "the file requires glTF extensions this renderer does not support: {} (supported: {})",
            missing.join(", "),
            SUPPORTED_EXTENSIONS.join(", ")
        );
    }
    Ok(e.used
        .iter()
        .filter(|x| !SUPPORTED_EXTENSIONS.contains(&x.as_str()))
        .map(|x| format!("glTF extension {x} is not supported and is ignored"))
        .collect())
}

/// Parses a glTF (`.gltf` or `.glb`) file from memory; external resources are
/// looked up beside `path`.
pub(crate) fn load(bytes: &[u8], path: &Path) -> Result<Scene, SceneError> {
    let mut warnings = check_extensions(bytes)?;
    let gltf = gltf::Gltf::from_slice_without_validation(bytes)
        .map_err(|e| SceneError(format!("not valid glTF: {e}")))?;
    validate(&gltf.document)?;
    let base = path.parent().unwrap_or(Path::new("."));
    let doc = &gltf.document;
    let buffers = read_buffers(&gltf, base)?;
    let reader = Reader { buffers: &buffers };
    let (textures, image_tex) = read_textures(doc, &buffers, base)?;
    let mut materials = crate::material::read_materials(doc, &image_tex, &mut warnings)?;
    materials.push(Material::default());
    let (meshes, mesh_weights) = read_meshes(doc, &reader, &materials, &mut warnings)?;
    let skins = crate::skin::read_skins(doc, &reader)?;
    let lights = read_lights(doc)?;
    let nodes = read_nodes(doc)?;
    let roots = scene_roots(doc, &nodes);
    let channels = read_channels(doc, &reader)?;
    check_skinned_nodes(&nodes, &skins, &meshes)?;
    let scene = Scene {
        meshes,
        mesh_weights,
        skins,
        warnings,
        materials,
        textures,
        lights,
        nodes,
        roots,
        channels,
    };
    check_instanced_triangles(&scene)?;
    Ok(scene)
}

/// Every buffer's bytes: the GLB chunk, or a file beside the scene.
fn read_buffers(gltf: &gltf::Gltf, base: &Path) -> Result<Vec<Vec<u8>>, SceneError> {
    let mut buffers = Vec::new();
    for b in gltf.document.buffers() {
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
    Ok(buffers)
}

/// Every image decoded within the texture budget, and the texture index of
/// each glTF image.
fn read_textures(
    doc: &gltf::Document,
    buffers: &[Vec<u8>],
    base: &Path,
) -> Result<(Vec<Texture>, Vec<usize>), SceneError> {
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

    Ok((textures, image_tex))
}

/// Every skinned node's skin exists and its joints fit the mesh.
fn check_skinned_nodes(
    nodes: &[Node],
    skins: &[crate::skin::Skin],
    meshes: &[Vec<Primitive>],
) -> Result<(), SceneError> {
    // Nodes instancing meshes may multiply triangle counts: check the total.
    for n in nodes {
        if let (Some(s), Some(m)) = (n.skin, n.mesh) {
            let skin = skins
                .get(s)
                .ok_or_else(|| SceneError(format!("skin {s} does not exist")))?;
            for p in &meshes[m] {
                crate::skin::check_joints(p, skin)?;
            }
        }
    }
    Ok(())
}

/// Nodes instancing meshes may multiply triangle counts: the total stays
/// within [`MAX_TRIANGLES`].
fn check_instanced_triangles(scene: &Scene) -> Result<(), SceneError> {
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
    Ok(())
}

fn sample_channel(ch: &Channel, t: f32) -> Vec<f32> {
    let comps = ch.comps;
    let rotation = ch.property == Property::Rotation;
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
            if rotation {
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
            if rotation {
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

    /// Local matrices and animated morph weights of every node at time `t`.
    fn animated(&self, t: f32) -> (Vec<Mat4>, Vec<Option<Vec<f32>>>) {
        let mut trs: Vec<(Vec3, [f32; 4], Vec3)> = self
            .nodes
            .iter()
            .map(|n| (n.translation, n.rotation, n.scale))
            .collect();
        let mut weights: Vec<Option<Vec<f32>>> = vec![None; self.nodes.len()];
        for ch in &self.channels {
            let Some(e) = trs.get_mut(ch.node) else {
                continue;
            };
            let v = sample_channel(ch, t);
            match ch.property {
                Property::Translation => e.0 = [v[0], v[1], v[2]],
                Property::Scale => e.2 = [v[0], v[1], v[2]],
                Property::Rotation => e.1 = math::quat_normalize([v[0], v[1], v[2], v[3]]),
                Property::MorphTargetWeights => weights[ch.node] = Some(v),
            }
        }
        let local = self
            .nodes
            .iter()
            .zip(trs)
            .map(|(n, (t, r, s))| n.matrix.unwrap_or_else(|| math::trs(t, r, s)))
            .collect();
        (local, weights)
    }

    /// Visits every node instance depth-first with its world matrix; `f`
    /// returns false to stop. Errors on cycles or absurd depth.
    fn walk(&self, t: f32, f: &mut dyn FnMut(usize, &Mat4) -> bool) -> Result<(), SceneError> {
        let (local, _) = self.animated(t);
        self.walk_with(&local, f)
    }

    fn walk_with(
        &self,
        local: &[Mat4],
        f: &mut dyn FnMut(usize, &Mat4) -> bool,
    ) -> Result<(), SceneError> {
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

    /// Joint matrices of `skin` given the nodes' world matrices (joints
    /// outside the scene keep their bind pose).
    fn joint_matrices(&self, skin: usize, world: &[Option<Mat4>]) -> Vec<Mat4> {
        let s = &self.skins[skin];
        s.joints
            .iter()
            .zip(&s.inverse_bind)
            .map(|(&j, ib)| match world.get(j).copied().flatten() {
                Some(w) => math::mat_mul(&w, ib),
                None => math::IDENTITY,
            })
            .collect()
    }

    /// World-space geometry, lights and camera at time `t` seconds.
    pub(crate) fn evaluate(&self, t: f32) -> Result<FrameGeometry, SceneError> {
        let (local, anim_weights) = self.animated(t);
        let skinned = self.nodes.iter().any(|n| n.skin.is_some());
        // World matrix of each node's first instance, for joints.
        let mut world_of: Vec<Option<Mat4>> = vec![None; self.nodes.len()];
        if skinned {
            self.walk_with(&local, &mut |n, w| {
                world_of[n].get_or_insert(*w);
                true
            })?;
        }
        let mut g = FrameGeometry::default();
        let mut err = None;
        self.walk_with(&local, &mut |n, world| {
            let node = &self.nodes[n];
            if let Some(m) = node.mesh {
                let weights: &[f32] = anim_weights[n]
                    .as_deref()
                    .or(node.weights.as_deref())
                    .unwrap_or(&self.mesh_weights[m]);
                let joints = node.skin.map(|s| self.joint_matrices(s, &world_of));
                for p in &self.meshes[m] {
                    let d = crate::skin::deform(p, weights, joints.as_deref(), world);
                    if d.positions.iter().flatten().any(|x| !x.is_finite()) {
                        err = Some(SceneError("transformed vertex is not finite".into()));
                        return false;
                    }
                    // A mirroring transform reverses the winding: swap two
                    // corners so front faces stay front faces.
                    let mirrored = joints.is_none() && math::determinant3(world) < 0.0;
                    let base = g.verts.len() as u32;
                    for i in 0..p.positions.len() {
                        g.verts.push(FrameVertex {
                            normal: d.normals[i],
                            tangent: d.tangents[i],
                            uv: [0, 1].map(|s| p.uvs[s].as_ref().map(|u| u[i]).unwrap_or([0.0; 2])),
                            color: p.colors.as_ref().map(|c| c[i]).unwrap_or([1.0; 4]),
                        });
                    }
                    for tri in &p.indices {
                        let tri = if mirrored {
                            [tri[0], tri[2], tri[1]]
                        } else {
                            *tri
                        };
                        g.tris.push(tri.map(|i| d.positions[i as usize]));
                        g.tri_verts.push(tri.map(|i| base + i));
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
