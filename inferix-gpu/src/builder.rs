//! A tiny glTF 2.0 writer for scenes generated in code (the demo scene,
//! the bench scene, analytic test scenes).

use serde_json::{json, Value};

/// Material parameters for [`GltfBuilder::material`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MaterialDesc {
    /// Linear base colour.
    pub base_color: [f32; 3],
    /// Metalness 0..=1.
    pub metallic: f32,
    /// Perceptual roughness 0..=1.
    pub roughness: f32,
    /// Emitted radiance (linear, before strength).
    pub emissive: [f32; 3],
    /// `KHR_materials_emissive_strength` multiplier.
    pub emissive_strength: f32,
    /// `KHR_materials_specular` factor; 0 gives a pure Lambertian dielectric.
    pub specular: f32,
}

impl Default for MaterialDesc {
    fn default() -> Self {
        MaterialDesc {
            base_color: [0.8; 3],
            metallic: 0.0,
            roughness: 0.5,
            emissive: [0.0; 3],
            emissive_strength: 1.0,
            specular: 1.0,
        }
    }
}

/// Node placement for [`GltfBuilder::node`].
#[derive(Debug, Clone, Default)]
pub struct NodeDesc {
    /// Optional name.
    pub name: Option<String>,
    /// Translation.
    pub translation: Option<[f32; 3]>,
    /// Rotation quaternion (x, y, z, w).
    pub rotation: Option<[f32; 4]>,
    /// Scale.
    pub scale: Option<[f32; 3]>,
    /// Mesh index.
    pub mesh: Option<usize>,
    /// Camera index.
    pub camera: Option<usize>,
    /// KHR_lights_punctual light index.
    pub light: Option<usize>,
    /// Child node indices.
    pub children: Vec<usize>,
}

/// Accumulates glTF JSON and one binary buffer, then writes `.glb` bytes.
#[derive(Debug, Default)]
pub struct GltfBuilder {
    bin: Vec<u8>,
    views: Vec<Value>,
    accessors: Vec<Value>,
    materials: Vec<Value>,
    meshes: Vec<Value>,
    nodes: Vec<Value>,
    cameras: Vec<Value>,
    lights: Vec<Value>,
    channels: Vec<Value>,
    samplers: Vec<Value>,
    roots: Vec<usize>,
    /// Top-level arrays written as given (`textures`, `images`, `samplers`,
    /// `skins`), for scenes that exercise glTF features directly.
    raw: std::collections::BTreeMap<String, Vec<Value>>,
    extensions_used: Vec<String>,
    extensions_required: Vec<String>,
}

fn bounds(data: &[f32], comps: usize) -> (Vec<f32>, Vec<f32>) {
    let mut lo = vec![f32::INFINITY; comps];
    let mut hi = vec![f32::NEG_INFINITY; comps];
    for c in data.chunks_exact(comps) {
        for i in 0..comps {
            lo[i] = lo[i].min(c[i]);
            hi[i] = hi[i].max(c[i]);
        }
    }
    (lo, hi)
}

impl GltfBuilder {
    /// An empty scene.
    pub fn new() -> Self {
        Self::default()
    }

    fn view(&mut self, bytes: &[u8], target: Option<u32>) -> usize {
        while self.bin.len() % 4 != 0 {
            self.bin.push(0);
        }
        let offset = self.bin.len();
        self.bin.extend_from_slice(bytes);
        let mut v = json!({ "buffer": 0, "byteOffset": offset, "byteLength": bytes.len() });
        if let Some(t) = target {
            v["target"] = json!(t);
        }
        self.views.push(v);
        self.views.len() - 1
    }

    fn float_accessor(
        &mut self,
        data: &[f32],
        comps: usize,
        with_bounds: bool,
        target: Option<u32>,
    ) -> usize {
        let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        let view = self.view(&bytes, target);
        let ty = match comps {
            1 => "SCALAR",
            2 => "VEC2",
            3 => "VEC3",
            _ => "VEC4",
        };
        let mut a = json!({
            "bufferView": view, "componentType": 5126, "count": data.len() / comps, "type": ty
        });
        if with_bounds {
            let (lo, hi) = bounds(data, comps);
            a["min"] = json!(lo);
            a["max"] = json!(hi);
        }
        self.accessors.push(a);
        self.accessors.len() - 1
    }

    /// Adds a material; returns its index.
    pub fn material(&mut self, m: MaterialDesc) -> usize {
        let mut v = json!({
            "pbrMetallicRoughness": {
                "baseColorFactor": [m.base_color[0], m.base_color[1], m.base_color[2], 1.0],
                "metallicFactor": m.metallic,
                "roughnessFactor": m.roughness,
            },
            "emissiveFactor": m.emissive,
        });
        let mut ext = serde_json::Map::new();
        if m.emissive_strength != 1.0 {
            ext.insert(
                "KHR_materials_emissive_strength".into(),
                json!({ "emissiveStrength": m.emissive_strength }),
            );
        }
        if m.specular != 1.0 {
            ext.insert(
                "KHR_materials_specular".into(),
                json!({ "specularFactor": m.specular }),
            );
        }
        if !ext.is_empty() {
            v["extensions"] = Value::Object(ext);
        }
        self.materials.push(v);
        self.materials.len() - 1
    }

    /// Adds a float accessor of `comps` components (1..=4, or 16 for
    /// matrices) over `data`; returns its index.
    pub fn accessor_f32(&mut self, data: &[f32], comps: usize) -> usize {
        if comps == 16 {
            let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
            let view = self.view(&bytes, None);
            self.accessors.push(json!({
                "bufferView": view, "componentType": 5126, "count": data.len() / 16, "type": "MAT4"
            }));
            return self.accessors.len() - 1;
        }
        self.float_accessor(data, comps, comps == 3, None)
    }

    /// Adds a buffer view over `bytes`; returns its index.
    pub fn buffer_view(&mut self, bytes: &[u8]) -> usize {
        self.view(bytes, None)
    }

    /// Adds a vertex buffer view over `bytes` with a byte stride; returns
    /// its index.
    pub fn buffer_view_strided(&mut self, bytes: &[u8], stride: usize) -> usize {
        let v = self.view(bytes, Some(34962));
        self.views[v]["byteStride"] = json!(stride);
        v
    }

    /// Adds an accessor given as glTF JSON (sparse ones, for instance);
    /// returns its index.
    pub fn accessor_json(&mut self, value: Value) -> usize {
        self.accessors.push(value);
        self.accessors.len() - 1
    }

    /// Adds an unsigned 8-bit VEC4 accessor (JOINTS_0, or normalised colours
    /// with `normalized`); returns its index.
    pub fn accessor_u8x4(&mut self, data: &[[u8; 4]], normalized: bool) -> usize {
        let bytes: Vec<u8> = data.iter().flatten().copied().collect();
        let view = self.view(&bytes, Some(34962));
        self.accessors.push(json!({
            "bufferView": view, "componentType": 5121, "count": data.len(), "type": "VEC4",
            "normalized": normalized
        }));
        self.accessors.len() - 1
    }

    /// Adds a u32 index accessor; returns its index.
    pub fn accessor_indices(&mut self, indices: &[u32]) -> usize {
        let ib: Vec<u8> = indices.iter().flat_map(|i| i.to_le_bytes()).collect();
        let iv = self.view(&ib, Some(34963));
        self.accessors.push(json!({
            "bufferView": iv, "componentType": 5125, "count": indices.len(), "type": "SCALAR"
        }));
        self.accessors.len() - 1
    }

    /// Adds an embedded image from encoded (PNG/JPEG) bytes; returns its index.
    pub fn image(&mut self, encoded: &[u8], mime: &str) -> usize {
        let view = self.view(encoded, None);
        self.raw_item("images", json!({ "bufferView": view, "mimeType": mime }))
    }

    /// Appends `value` to the top-level array `key` (`textures`, `samplers`,
    /// `skins`, ...); returns its index.
    pub fn raw_item(&mut self, key: &str, value: Value) -> usize {
        let list = self.raw.entry(key.to_string()).or_default();
        list.push(value);
        list.len() - 1
    }

    /// Adds a material given as glTF JSON; returns its index.
    pub fn material_json(&mut self, value: Value) -> usize {
        self.materials.push(value);
        self.materials.len() - 1
    }

    /// Adds a mesh given as glTF JSON; returns its index.
    pub fn mesh_json(&mut self, value: Value) -> usize {
        self.meshes.push(value);
        self.meshes.len() - 1
    }

    /// Adds a node given as glTF JSON; `root` puts it in the scene's root
    /// list. Returns its index.
    pub fn node_json(&mut self, value: Value, root: bool) -> usize {
        self.nodes.push(value);
        let i = self.nodes.len() - 1;
        if root {
            self.roots.push(i);
        }
        i
    }

    /// Lists `name` in `extensionsUsed` (and `extensionsRequired`).
    pub fn use_extension(&mut self, name: &str, required: bool) {
        if !self.extensions_used.iter().any(|e| e == name) {
            self.extensions_used.push(name.to_string());
        }
        if required && !self.extensions_required.iter().any(|e| e == name) {
            self.extensions_required.push(name.to_string());
        }
    }

    /// Adds an animation channel on `path` of `node` with linear keys and
    /// outputs given as a flat list (morph `weights` included).
    pub fn animate_raw(&mut self, node: usize, path: &str, times: &[f32], outputs: &[f32]) {
        let input = self.float_accessor(times, 1, true, None);
        let output = self.float_accessor(outputs, 1, false, None);
        self.samplers
            .push(json!({ "input": input, "output": output, "interpolation": "LINEAR" }));
        let s = self.samplers.len() - 1;
        self.channels
            .push(json!({ "sampler": s, "target": { "node": node, "path": path } }));
    }

    /// Adds a one-primitive triangle mesh; returns its index.
    pub fn mesh(
        &mut self,
        positions: &[[f32; 3]],
        normals: Option<&[[f32; 3]]>,
        indices: &[u32],
        material: usize,
    ) -> usize {
        let p: Vec<f32> = positions.iter().flatten().copied().collect();
        let pa = self.float_accessor(&p, 3, true, Some(34962));
        let mut attrs = json!({ "POSITION": pa });
        if let Some(n) = normals {
            let n: Vec<f32> = n.iter().flatten().copied().collect();
            attrs["NORMAL"] = json!(self.float_accessor(&n, 3, false, Some(34962)));
        }
        let ib: Vec<u8> = indices.iter().flat_map(|i| i.to_le_bytes()).collect();
        let iv = self.view(&ib, Some(34963));
        self.accessors.push(json!({
            "bufferView": iv, "componentType": 5125, "count": indices.len(), "type": "SCALAR"
        }));
        let ia = self.accessors.len() - 1;
        self.meshes.push(
            json!({ "primitives": [{ "attributes": attrs, "indices": ia, "material": material }] }),
        );
        self.meshes.len() - 1
    }

    /// Adds a perspective camera; returns its index.
    pub fn camera(&mut self, yfov: f32) -> usize {
        self.camera_with_near(yfov, 0.01)
    }

    /// Adds a perspective camera whose near plane is `znear` units ahead.
    pub fn camera_with_near(&mut self, yfov: f32, znear: f32) -> usize {
        self.cameras.push(
            json!({ "type": "perspective", "perspective": { "yfov": yfov, "znear": znear } }),
        );
        self.cameras.len() - 1
    }

    /// Adds an orthographic camera showing `ymag` units above and below
    /// its axis; returns its index.
    pub fn orthographic_camera(&mut self, ymag: f32) -> usize {
        self.cameras.push(json!({
            "type": "orthographic",
            "orthographic": { "xmag": ymag, "ymag": ymag, "znear": 0.01, "zfar": 100.0 }
        }));
        self.cameras.len() - 1
    }

    /// Adds a point light (intensity in candela); returns its index.
    pub fn point_light(&mut self, color: [f32; 3], intensity: f32) -> usize {
        self.lights
            .push(json!({ "type": "point", "color": color, "intensity": intensity }));
        self.lights.len() - 1
    }

    /// Adds a directional light (intensity in lux); returns its index.
    pub fn directional_light(&mut self, color: [f32; 3], intensity: f32) -> usize {
        self.lights
            .push(json!({ "type": "directional", "color": color, "intensity": intensity }));
        self.lights.len() - 1
    }

    /// Adds a node; `root` puts it in the scene's root list. Returns its index.
    pub fn node(&mut self, n: NodeDesc, root: bool) -> usize {
        let mut v = json!({});
        if let Some(x) = n.name {
            v["name"] = json!(x);
        }
        if let Some(x) = n.translation {
            v["translation"] = json!(x);
        }
        if let Some(x) = n.rotation {
            v["rotation"] = json!(x);
        }
        if let Some(x) = n.scale {
            v["scale"] = json!(x);
        }
        if let Some(x) = n.mesh {
            v["mesh"] = json!(x);
        }
        if let Some(x) = n.camera {
            v["camera"] = json!(x);
        }
        if let Some(x) = n.light {
            v["extensions"] = json!({ "KHR_lights_punctual": { "light": x } });
        }
        if !n.children.is_empty() {
            v["children"] = json!(n.children);
        }
        self.nodes.push(v);
        let i = self.nodes.len() - 1;
        if root {
            self.roots.push(i);
        }
        i
    }

    /// Animates a node property (`"translation"`, `"rotation"`, `"scale"`)
    /// with linear keys.
    pub fn animate(&mut self, node: usize, path: &str, times: &[f32], values: &[f32]) {
        let comps = if path == "rotation" { 4 } else { 3 };
        let input = self.float_accessor(times, 1, true, None);
        let output = self.float_accessor(values, comps, false, None);
        self.samplers
            .push(json!({ "input": input, "output": output, "interpolation": "LINEAR" }));
        let s = self.samplers.len() - 1;
        self.channels
            .push(json!({ "sampler": s, "target": { "node": node, "path": path } }));
    }

    /// The glTF JSON document (buffer 0 being the GLB binary chunk).
    pub fn json(&self) -> Value {
        let mut doc = json!({
            "asset": { "version": "2.0", "generator": "inferix-gpu" },
            "scene": 0,
            "scenes": [{ "nodes": self.roots }],
            "nodes": self.nodes,
            "meshes": self.meshes,
            "materials": self.materials,
            "accessors": self.accessors,
            "bufferViews": self.views,
            "buffers": [{ "byteLength": self.bin.len() }],
        });
        let mut used: Vec<&str> = vec!["KHR_materials_emissive_strength", "KHR_materials_specular"];
        used.extend(self.extensions_used.iter().map(String::as_str));
        for (k, v) in &self.raw {
            doc[k.as_str()] = json!(v);
        }
        if !self.extensions_required.is_empty() {
            doc["extensionsRequired"] = json!(self.extensions_required);
        }
        if !self.cameras.is_empty() {
            doc["cameras"] = json!(self.cameras);
        }
        if !self.lights.is_empty() {
            doc["extensions"] = json!({ "KHR_lights_punctual": { "lights": self.lights } });
            used.push("KHR_lights_punctual");
        }
        doc["extensionsUsed"] = json!(used);
        if !self.channels.is_empty() {
            doc["animations"] = json!([{ "channels": self.channels, "samplers": self.samplers }]);
        }
        doc
    }

    /// The binary buffer contents.
    pub fn bin(&self) -> &[u8] {
        &self.bin
    }

    /// Writes a `.glb` file's bytes.
    pub fn to_glb(&self) -> Vec<u8> {
        let mut js = serde_json::to_vec(&self.json()).unwrap_or_default();
        while js.len() % 4 != 0 {
            js.push(b' ');
        }
        let mut bin = self.bin.clone();
        while bin.len() % 4 != 0 {
            bin.push(0);
        }
        let total = 12 + 8 + js.len() + 8 + bin.len();
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(b"glTF");
        out.extend_from_slice(&2u32.to_le_bytes());
        out.extend_from_slice(&(total as u32).to_le_bytes());
        out.extend_from_slice(&(js.len() as u32).to_le_bytes());
        out.extend_from_slice(b"JSON");
        out.extend_from_slice(&js);
        out.extend_from_slice(&(bin.len() as u32).to_le_bytes());
        out.extend_from_slice(b"BIN\0");
        out.extend_from_slice(&bin);
        out
    }
}

/// A scene of one grey cube (half-extent 0.5) at the origin and nothing
/// else: no light, no emission, no camera, so that a renderer substitutes
/// every default it has.
pub fn bare_cube_glb() -> Vec<u8> {
    let mut b = GltfBuilder::new();
    let m = b.material(MaterialDesc {
        base_color: [0.6; 3],
        ..Default::default()
    });
    let (p, n, i) = box_mesh([0.5; 3], false);
    let mesh = b.mesh(&p, Some(&n), &i, m);
    b.node(
        NodeDesc {
            mesh: Some(mesh),
            ..Default::default()
        },
        true,
    );
    b.to_glb()
}

/// An axis-aligned box mesh data (24 vertices with face normals, 12 triangles),
/// centred at the origin with half-extents `h`. `inward` flips the faces.
pub fn box_mesh(h: [f32; 3], inward: bool) -> (Vec<[f32; 3]>, Vec<[f32; 3]>, Vec<u32>) {
    let mut p = Vec::new();
    let mut n = Vec::new();
    let mut idx = Vec::new();
    for axis in 0..3 {
        for sign in [-1.0f32, 1.0] {
            let (u, v) = ((axis + 1) % 3, (axis + 2) % 3);
            let mut normal = [0.0; 3];
            normal[axis] = if inward { -sign } else { sign };
            let base = p.len() as u32;
            for (a, b) in [(-1.0, -1.0), (1.0, -1.0), (1.0, 1.0), (-1.0, 1.0)] {
                let mut q = [0.0; 3];
                q[axis] = sign * h[axis];
                q[u] = a * h[u];
                q[v] = b * h[v];
                p.push(q);
                n.push(normal);
            }
            // Counter-clockwise seen from the outside when sign > 0.
            let outward = sign > 0.0;
            if outward != inward {
                idx.extend_from_slice(&[base, base + 1, base + 2, base, base + 2, base + 3]);
            } else {
                idx.extend_from_slice(&[base, base + 2, base + 1, base, base + 3, base + 2]);
            }
        }
    }
    (p, n, idx)
}

/// A UV sphere of radius `r` with smooth normals.
pub fn sphere_mesh(r: f32, segments: u32, rings: u32) -> (Vec<[f32; 3]>, Vec<[f32; 3]>, Vec<u32>) {
    let mut p = Vec::new();
    let mut n = Vec::new();
    let mut idx = Vec::new();
    for i in 0..=rings {
        let th = std::f32::consts::PI * i as f32 / rings as f32;
        for j in 0..=segments {
            let ph = 2.0 * std::f32::consts::PI * j as f32 / segments as f32;
            let d = [th.sin() * ph.cos(), th.cos(), th.sin() * ph.sin()];
            n.push(d);
            p.push([d[0] * r, d[1] * r, d[2] * r]);
        }
    }
    let w = segments + 1;
    for i in 0..rings {
        for j in 0..segments {
            let a = i * w + j;
            let b = a + w;
            idx.extend_from_slice(&[a, a + 1, b, a + 1, b + 1, b]);
        }
    }
    (p, n, idx)
}

/// A quad in the XZ plane (normal +Y) with half-size `h`.
pub fn quad_mesh(h: f32) -> (Vec<[f32; 3]>, Vec<[f32; 3]>, Vec<u32>) {
    (
        vec![[-h, 0.0, -h], [h, 0.0, -h], [h, 0.0, h], [-h, 0.0, h]],
        vec![[0.0, 1.0, 0.0]; 4],
        vec![0, 2, 1, 0, 3, 2],
    )
}
