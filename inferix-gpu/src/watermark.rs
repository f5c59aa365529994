//! Proof-of-Render watermarks for glTF scenes: camera-facing noise patches
//! added to a copy of the scene, each covering exactly its frame rectangle.
//!
//! A patch is an emissive quad with a texture of the patch's periodic
//! pattern, made a child of the camera node the path tracer uses and placed
//! just past the near plane, so it follows the camera through any animation
//! and is never occluded. Its texels map one to one onto frame pixels
//! (the tracer samples textures with nearest lookup), so the pattern lands
//! on the pixels the manager computed without rendering anything.
//!
//! The copy is written as GLB: the patches' vertices, indices and textures
//! go into the binary chunk; everything else of the scene is kept as is.

use std::path::Path;

use async_trait::async_trait;
use inferix_core::image::{linear_to_srgb8, Rgb8Image};
use inferix_core::por::prepare::SceneWatermarker;
use inferix_core::por::watermark::Patch;
use inferix_core::renderer::{RenderError, RenderSettings, SceneFormat};
use serde_json::{json, Value};

use crate::camera::{self, Projection};
use crate::codec;
use crate::material::CAMERA_ONLY_EXTENSION;
use crate::math;

/// Pixels a patch's quad reaches past its rectangle on every side.
const EDGE_MARGIN: f32 = 0.01;
/// Distance of the patches in front of the camera when the camera declares
/// no near plane, in scene units.
const DEFAULT_DISTANCE: f32 = 0.05;

/// Inserts watermark patches into glTF 2.0 scenes (`.glb` or `.gltf` with
/// embedded or no buffers).
#[derive(Debug, Default, Clone, Copy)]
pub struct GltfWatermarker;

#[async_trait]
impl SceneWatermarker for GltfWatermarker {
    fn formats(&self) -> &[SceneFormat] {
        &[SceneFormat::Gltf]
    }

    async fn watermark(
        &self,
        scene: &Path,
        patches: &[Patch],
        settings: &RenderSettings,
        out: &Path,
    ) -> Result<(), RenderError> {
        let bytes = tokio::fs::read(scene)
            .await
            .map_err(|e| RenderError::InvalidScene {
                path: scene.to_path_buf(),
                reason: format!("cannot read it: {e}"),
            })?;
        let glb = watermark_gltf(&bytes, scene, patches, settings)?;
        tokio::fs::write(out, glb)
            .await
            .map_err(|e| RenderError::Backend(format!("cannot write {}: {e}", out.display())))
    }
}

fn bad_scene(msg: impl Into<String>) -> String {
    msg.into()
}

/// The GLB bytes of `scene` (the contents of the GLB or JSON glTF file at
/// `path`) with `patches` added.
pub fn watermark_gltf(
    scene: &[u8],
    path: &Path,
    patches: &[Patch],
    settings: &RenderSettings,
) -> Result<Vec<u8>, RenderError> {
    // The lease's settings, not the scene, are wrong when a patch does not
    // fit: checked before the scene is touched.
    if let Some(p) = patches.iter().find(|p| {
        !p.rect.fits_in(settings.width, settings.height) || p.rect.width == 0 || p.rect.height == 0
    }) {
        return Err(RenderError::InvalidSettings(format!(
            "watermark patch {:?} is outside the {}x{} frame",
            p.rect, settings.width, settings.height
        )));
    }
    add_patches(scene, path, patches, settings).map_err(|reason| RenderError::InvalidScene {
        path: path.to_path_buf(),
        reason: format!("cannot add watermark patches: {reason}"),
    })
}

fn add_patches(
    scene: &[u8],
    path: &Path,
    patches: &[Patch],
    settings: &RenderSettings,
) -> Result<Vec<u8>, String> {
    let (mut doc, bin) = split_container(scene)?;
    let mut bin = match bin {
        Some(b) => b,
        None => {
            insert_binary_buffer(&mut doc)?;
            Vec::new()
        }
    };
    let (w, h) = (settings.width as f32, settings.height as f32);
    let aspect = w / h;
    let (camera_node, znear) = match tracer_camera(&doc)? {
        Some(found) => found,
        None => insert_default_camera(&mut doc, scene, path, aspect)?,
    };
    let distance = znear.map_or(DEFAULT_DISTANCE, |z| z * 1.5);
    // Half the view's size at `distance`, vertically.
    let half = match camera_projection(&doc, camera_node)? {
        Projection::Perspective { yfov } => (yfov * 0.5).tan() * distance,
        Projection::Orthographic { half_height } => half_height,
    };
    // Camera-space coordinates at `distance` of a continuous pixel position,
    // inverting the tracer's primary-ray mapping.
    let to_x = |u: f32| (2.0 * u / w - 1.0) * half * aspect;
    let to_y = |v: f32| (1.0 - 2.0 * v / h) * half;

    for p in patches {
        let r = p.rect;
        if !r.fits_in(settings.width, settings.height) || r.width == 0 || r.height == 0 {
            return Err(bad_scene(format!(
                "watermark patch {r:?} is outside the {}x{} frame",
                settings.width, settings.height
            )));
        }
        // A sliver of margin so rays at the rectangle's edge cannot slip
        // past the quad through rounding; texels keep their pixels.
        let (x0, x1) = (
            to_x(r.x as f32 - EDGE_MARGIN),
            to_x((r.x + r.width) as f32 + EDGE_MARGIN),
        );
        let (y0, y1) = (
            to_y(r.y as f32 - EDGE_MARGIN),
            to_y((r.y + r.height) as f32 + EDGE_MARGIN),
        );
        let (du, dv) = (EDGE_MARGIN / r.width as f32, EDGE_MARGIN / r.height as f32);
        let z = -distance;
        // Top-left, top-right, bottom-right, bottom-left; uv (0,0) is the
        // texture's first row, i.e. the patch's top row.
        let positions: [[f32; 3]; 4] = [[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]];
        let uvs: [[f32; 2]; 4] = [
            [-du, -dv],
            [1.0 + du, -dv],
            [1.0 + du, 1.0 + dv],
            [-du, 1.0 + dv],
        ];
        let normals = [[0.0f32, 0.0, 1.0]; 4];
        let indices: [u32; 6] = [0, 3, 2, 0, 2, 1];

        let pos_acc = push_accessor(
            &mut doc,
            &mut bin,
            &f32_bytes(positions.as_flattened()),
            "VEC3",
            5126,
            4,
            Some((
                positions.iter().fold([f32::MAX; 3], |m, p| {
                    [m[0].min(p[0]), m[1].min(p[1]), m[2].min(p[2])]
                }),
                positions.iter().fold([f32::MIN; 3], |m, p| {
                    [m[0].max(p[0]), m[1].max(p[1]), m[2].max(p[2])]
                }),
            )),
            Some(34962),
        )?;
        let nrm_acc = push_accessor(
            &mut doc,
            &mut bin,
            &f32_bytes(normals.as_flattened()),
            "VEC3",
            5126,
            4,
            None,
            Some(34962),
        )?;
        let uv_acc = push_accessor(
            &mut doc,
            &mut bin,
            &f32_bytes(uvs.as_flattened()),
            "VEC2",
            5126,
            4,
            None,
            Some(34962),
        )?;
        let idx_bytes: Vec<u8> = indices.iter().flat_map(|i| i.to_le_bytes()).collect();
        let idx_acc = push_accessor(
            &mut doc,
            &mut bin,
            &idx_bytes,
            "SCALAR",
            5125,
            6,
            None,
            Some(34963),
        )?;

        let png = codec::encode_png(&pattern_texture(p));
        let view = push_view(&mut doc, &mut bin, &png, None)?;
        let image = push(
            &mut doc,
            "images",
            json!({ "bufferView": view, "mimeType": "image/png" }),
        )?;
        let sampler = push(
            &mut doc,
            "samplers",
            json!({ "magFilter": 9728, "minFilter": 9728, "wrapS": 33071, "wrapT": 33071 }),
        )?;
        let texture = push(
            &mut doc,
            "textures",
            json!({ "source": image, "sampler": sampler }),
        )?;
        use_extension(&mut doc, "KHR_materials_unlit")?;
        use_extension(&mut doc, CAMERA_ONLY_EXTENSION)?;
        let material = push(
            &mut doc,
            "materials",
            json!({
                "name": "inferix-watermark",
                // Unlit: the patch shows its pattern exactly. Camera-only:
                // no shadow, reflection or bounce light of it reaches any
                // other pixel, so the rest of the frame equals the clean
                // scene's (clean delivery re-renders only the patches).
                // Neither makes it a light: a lightless scene keeps its
                // default studio.
                "pbrMetallicRoughness": {
                    "baseColorFactor": [1.0, 1.0, 1.0, 1.0],
                    "baseColorTexture": { "index": texture },
                    "metallicFactor": 0.0,
                    "roughnessFactor": 1.0
                },
                "extensions": {
                    "KHR_materials_unlit": {},
                    (CAMERA_ONLY_EXTENSION): {}
                },
                "doubleSided": true
            }),
        )?;
        let mesh = push(
            &mut doc,
            "meshes",
            json!({
                "name": "inferix-watermark",
                "primitives": [{
                    "attributes": { "POSITION": pos_acc, "NORMAL": nrm_acc, "TEXCOORD_0": uv_acc },
                    "indices": idx_acc,
                    "material": material
                }]
            }),
        )?;
        let node = push(
            &mut doc,
            "nodes",
            json!({ "name": "inferix-watermark", "mesh": mesh }),
        )?;
        let cam = doc["nodes"]
            .get_mut(camera_node)
            .and_then(Value::as_object_mut)
            .ok_or_else(|| bad_scene("camera node vanished"))?;
        cam.entry("children")
            .or_insert_with(|| json!([]))
            .as_array_mut()
            .ok_or_else(|| bad_scene("camera node children is not an array"))?
            .push(json!(node));
    }
    doc["buffers"][0]["byteLength"] = json!(bin.len());
    Ok(write_glb(&doc, &bin))
}

/// The patch's pattern as an sRGB texture, one texel per frame pixel.
fn pattern_texture(p: &Patch) -> Rgb8Image {
    let (w, h) = (p.rect.width, p.rect.height);
    let mut pixels = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            let v = linear_to_srgb8(p.radiance(p.rect.x + x, p.rect.y + y));
            pixels.extend_from_slice(&[v, v, v]);
        }
    }
    Rgb8Image {
        width: w,
        height: h,
        pixels,
        alpha: None,
    }
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|f| f.to_le_bytes()).collect()
}

/// Appends `value` to the top-level array `key`, returning its index.
fn push(doc: &mut Value, key: &str, value: Value) -> Result<usize, String> {
    let obj = doc
        .as_object_mut()
        .ok_or_else(|| bad_scene("glTF JSON is not an object"))?;
    let arr = obj
        .entry(key)
        .or_insert_with(|| json!([]))
        .as_array_mut()
        .ok_or_else(|| bad_scene(format!("glTF `{key}` is not an array")))?;
    arr.push(value);
    Ok(arr.len() - 1)
}

/// Lists `name` in `extensionsUsed` once.
fn use_extension(doc: &mut Value, name: &str) -> Result<(), String> {
    let obj = doc
        .as_object_mut()
        .ok_or_else(|| bad_scene("glTF JSON is not an object"))?;
    let used = obj
        .entry("extensionsUsed")
        .or_insert_with(|| json!([]))
        .as_array_mut()
        .ok_or_else(|| bad_scene("glTF `extensionsUsed` is not an array"))?;
    if !used.iter().any(|u| u.as_str() == Some(name)) {
        used.push(json!(name));
    }
    Ok(())
}

/// Appends bytes to the binary chunk (4-byte aligned) and a view on them.
fn push_view(
    doc: &mut Value,
    bin: &mut Vec<u8>,
    bytes: &[u8],
    target: Option<u32>,
) -> Result<usize, String> {
    while bin.len() % 4 != 0 {
        bin.push(0);
    }
    let offset = bin.len();
    bin.extend_from_slice(bytes);
    let mut view = json!({ "buffer": 0, "byteOffset": offset, "byteLength": bytes.len() });
    if let Some(t) = target {
        view["target"] = json!(t);
    }
    push(doc, "bufferViews", view)
}

#[allow(clippy::too_many_arguments)]
fn push_accessor(
    doc: &mut Value,
    bin: &mut Vec<u8>,
    bytes: &[u8],
    kind: &str,
    component: u32,
    count: usize,
    bounds: Option<([f32; 3], [f32; 3])>,
    target: Option<u32>,
) -> Result<usize, String> {
    let view = push_view(doc, bin, bytes, target)?;
    let mut acc = json!({
        "bufferView": view,
        "componentType": component,
        "count": count,
        "type": kind
    });
    if let Some((min, max)) = bounds {
        acc["min"] = json!(min);
        acc["max"] = json!(max);
    }
    push(doc, "accessors", acc)
}

/// Splits GLB into its JSON and binary chunk, or parses JSON glTF.
fn split_container(bytes: &[u8]) -> Result<(Value, Option<Vec<u8>>), String> {
    if bytes.len() >= 12 && &bytes[0..4] == b"glTF" {
        let u32_at = |o: usize| -> Result<u32, String> {
            bytes
                .get(o..o + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or_else(|| bad_scene("GLB is truncated"))
        };
        if u32_at(4)? != 2 {
            return Err(bad_scene("only GLB version 2 is supported"));
        }
        let total = (u32_at(8)? as usize).min(bytes.len());
        let mut at = 12;
        let mut json_doc = None;
        let mut bin = None;
        while at + 8 <= total {
            let len = u32_at(at)? as usize;
            let kind = u32_at(at + 4)?;
            let body = bytes
                .get(at + 8..at + 8 + len)
                .ok_or_else(|| bad_scene("GLB chunk exceeds the file"))?;
            match kind {
                0x4E4F_534A => {
                    json_doc = Some(
                        serde_json::from_slice(body)
                            .map_err(|e| bad_scene(format!("GLB JSON chunk: {e}")))?,
                    )
                }
                0x004E_4942 if bin.is_none() => bin = Some(body.to_vec()),
                _ => {}
            }
            at += 8 + len;
        }
        let doc: Value = json_doc.ok_or_else(|| bad_scene("GLB has no JSON chunk"))?;
        // A binary chunk belongs to buffer 0 only when that buffer has no uri.
        let bin_is_buffer0 =
            doc["buffers"][0].is_object() && doc["buffers"][0].get("uri").is_none();
        Ok((doc, bin.filter(|_| bin_is_buffer0)))
    } else {
        let doc: Value =
            serde_json::from_slice(bytes).map_err(|e| bad_scene(format!("not glTF: {e}")))?;
        if !doc.is_object() {
            return Err(bad_scene("glTF JSON is not an object"));
        }
        Ok((doc, None))
    }
}

/// Makes buffer 0 a new, empty binary-chunk buffer, renumbering the views
/// that pointed at the old buffers.
fn insert_binary_buffer(doc: &mut Value) -> Result<(), String> {
    if let Some(views) = doc.get_mut("bufferViews").and_then(Value::as_array_mut) {
        for v in views {
            let b = v["buffer"]
                .as_u64()
                .ok_or_else(|| bad_scene("bufferView without a buffer"))?;
            v["buffer"] = json!(b + 1);
        }
    }
    let obj = doc
        .as_object_mut()
        .ok_or_else(|| bad_scene("glTF JSON is not an object"))?;
    let buffers = obj
        .entry("buffers")
        .or_insert_with(|| json!([]))
        .as_array_mut()
        .ok_or_else(|| bad_scene("glTF `buffers` is not an array"))?;
    buffers.insert(0, json!({ "byteLength": 0 }));
    Ok(())
}

/// Gives a scene without a camera the renderer's default camera, as a
/// camera node with exactly the default camera's transform, so the patches
/// can face it and the marked scene renders through the same view. Returns
/// the node and a near plane in front of all the geometry.
fn insert_default_camera(
    doc: &mut Value,
    scene: &[u8],
    path: &Path,
    aspect: f32,
) -> Result<(usize, Option<f32>), String> {
    let parsed = crate::scene::load(scene, path).map_err(|e| e.0)?;
    let bounds = camera::animation_bounds(&parsed).map_err(|e| e.0)?;
    let (t, q) = camera::default_transform(bounds, aspect);
    let (lo, hi) = bounds.unwrap_or(([-1.0; 3], [1.0; 3]));
    let center = math::scale(math::add(lo, hi), 0.5);
    let radius = math::length(math::sub(hi, lo)) * 0.5;
    let gap = math::length(math::sub(t, center)) - radius;
    let znear = (gap * 0.5).max(1e-4);
    let cam = push(
        doc,
        "cameras",
        json!({
            "type": "perspective",
            "perspective": { "yfov": camera::DEFAULT_YFOV, "znear": znear }
        }),
    )?;
    let node = push(
        doc,
        "nodes",
        json!({ "name": "inferix-default-camera", "translation": t, "rotation": q, "camera": cam }),
    )?;
    // A root of the scene the tracer renders (without scenes, a node that
    // is nobody's child is a root already).
    let scene_index = doc["scene"].as_u64().unwrap_or(0) as usize;
    if let Some(s) = doc["scenes"].get_mut(scene_index) {
        s.as_object_mut()
            .ok_or_else(|| bad_scene("glTF scene is not an object"))?
            .entry("nodes")
            .or_insert_with(|| json!([]))
            .as_array_mut()
            .ok_or_else(|| bad_scene("glTF scene nodes is not an array"))?
            .push(json!(node));
    }
    Ok((node, Some(znear / 1.5)))
}

/// The node whose camera the tracer looks through (the first camera node
/// met depth-first from the default scene's roots) and its near plane, or
/// `None` when the scene has no camera.
fn tracer_camera(doc: &Value) -> Result<Option<(usize, Option<f32>)>, String> {
    let nodes = doc["nodes"].as_array().cloned().unwrap_or_default();
    let scene_index = doc["scene"].as_u64().unwrap_or(0) as usize;
    let roots: Vec<usize> = match doc["scenes"].get(scene_index) {
        Some(s) => s["nodes"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_u64())
                    .map(|v| v as usize)
                    .collect()
            })
            .unwrap_or_default(),
        None => {
            let mut is_child = vec![false; nodes.len()];
            for n in &nodes {
                for c in n["children"].as_array().into_iter().flatten() {
                    if let Some(c) = c.as_u64().and_then(|c| is_child.get_mut(c as usize)) {
                        *c = true;
                    }
                }
            }
            (0..nodes.len()).filter(|&i| !is_child[i]).collect()
        }
    };
    let mut stack: Vec<(usize, usize)> = roots.iter().rev().map(|&r| (r, 0)).collect();
    let mut visits = 0usize;
    while let Some((n, depth)) = stack.pop() {
        visits += 1;
        if depth > 64 || visits > 1_000_000 {
            return Err(bad_scene("node hierarchy too deep or cyclic"));
        }
        let Some(node) = nodes.get(n) else {
            return Err(bad_scene(format!("scene names missing node {n}")));
        };
        if let Some(cam) = node["camera"].as_u64() {
            let c = &doc["cameras"][cam as usize];
            let znear = if c["type"] == "perspective" {
                c["perspective"]["znear"].as_f64()
            } else {
                c["orthographic"]["znear"].as_f64()
            };
            let znear = znear.map(|z| z as f32);
            return Ok(Some((n, znear.filter(|z| z.is_finite() && *z > 0.0))));
        }
        for c in node["children"].as_array().into_iter().flatten().rev() {
            if let Some(c) = c.as_u64() {
                stack.push((c as usize, depth + 1));
            }
        }
    }
    Ok(None)
}

/// How the camera of `node` projects, as the tracer reads it.
fn camera_projection(doc: &Value, node: usize) -> Result<Projection, String> {
    let cam = doc["nodes"][node]["camera"].as_u64().unwrap_or(0) as usize;
    let c = &doc["cameras"][cam];
    if c["type"] == "orthographic" {
        let ymag = c["orthographic"]["ymag"]
            .as_f64()
            .ok_or_else(|| bad_scene("orthographic camera without ymag"))?
            .abs() as f32;
        if !(ymag.is_finite() && ymag > 0.0) {
            return Err(bad_scene(format!("camera ymag {ymag} out of range")));
        }
        return Ok(Projection::Orthographic { half_height: ymag });
    }
    let yfov = c["perspective"]["yfov"]
        .as_f64()
        .ok_or_else(|| bad_scene("perspective camera without yfov"))? as f32;
    if !(yfov.is_finite() && yfov > 0.0 && yfov < std::f32::consts::PI) {
        return Err(bad_scene(format!("camera yfov {yfov} out of range")));
    }
    Ok(Projection::Perspective { yfov })
}

fn write_glb(doc: &Value, bin: &[u8]) -> Vec<u8> {
    let mut json_bytes = serde_json::to_vec(doc).expect("JSON values serialise");
    while json_bytes.len() % 4 != 0 {
        json_bytes.push(b' ');
    }
    let mut bin = bin.to_vec();
    while bin.len() % 4 != 0 {
        bin.push(0);
    }
    let total = 12 + 8 + json_bytes.len() + 8 + bin.len();
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(b"glTF");
    out.extend_from_slice(&2u32.to_le_bytes());
    out.extend_from_slice(&(total as u32).to_le_bytes());
    out.extend_from_slice(&(json_bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(&0x4E4F_534Au32.to_le_bytes());
    out.extend_from_slice(&json_bytes);
    out.extend_from_slice(&(bin.len() as u32).to_le_bytes());
    out.extend_from_slice(&0x004E_4942u32.to_le_bytes());
    out.extend_from_slice(&bin);
    out
}
