//! Mesh primitives: vertex attributes, primitive modes and tangents.
//!
//! Triangle strips and fans become triangle lists with the vertex order the
//! glTF specification gives (so front faces stay front faces); points and
//! lines have no area for a path tracer and are reported as warnings.
//! Tangents missing from a normal-mapped primitive are generated with
//! MikkTSpace, as the glTF specification asks, so normal maps baked by other
//! tools shade as they were baked: per triangle corner, with vertices split
//! where the corners of one vertex need different tangents (UV seams,
//! mirrored halves).

use gltf::mesh::Mode;

use crate::material::{warn_once, Material, SLOT_NORMAL};
use crate::math::{self, Vec3};
use crate::scene::{Reader, SceneError, MAX_TRIANGLES};

macro_rules! bail {
    ($($t:tt)*) => { return Err(SceneError(format!($($t)*))) };
}

/// Position and normal offsets of one morph target.
#[derive(Debug, Clone, Default)]
pub(crate) struct MorphTarget {
    pub(crate) positions: Option<Vec<Vec3>>,
    pub(crate) normals: Option<Vec<Vec3>>,
}

/// One triangle mesh primitive in object space.
#[derive(Debug, Clone, Default)]
pub(crate) struct Primitive {
    pub(crate) positions: Vec<Vec3>,
    pub(crate) normals: Option<Vec<Vec3>>,
    /// Tangent xyz and handedness w (from the file or generated).
    pub(crate) tangents: Option<Vec<[f32; 4]>>,
    /// TEXCOORD_0 and TEXCOORD_1.
    pub(crate) uvs: [Option<Vec<[f32; 2]>>; 2],
    /// COLOR_0 as linear RGBA.
    pub(crate) colors: Option<Vec<[f32; 4]>>,
    /// JOINTS_0 (indices into the skin's joint list) and WEIGHTS_0.
    pub(crate) joints: Option<Vec<[u32; 4]>>,
    pub(crate) weights: Option<Vec<[f32; 4]>>,
    pub(crate) targets: Vec<MorphTarget>,
    pub(crate) indices: Vec<[u32; 3]>,
    pub(crate) material: usize,
}

fn vec3s(
    reader: &Reader,
    acc: Option<gltf::Accessor>,
    count: usize,
    what: &str,
) -> Result<Option<Vec<Vec3>>, SceneError> {
    let Some(a) = acc else { return Ok(None) };
    if a.count() != count {
        bail!("{what} count differs from POSITION count");
    }
    Ok(Some(
        reader
            .floats(&a, 3, what)?
            .chunks_exact(3)
            .map(|c| [c[0], c[1], c[2]])
            .collect(),
    ))
}

fn vec4s(
    reader: &Reader,
    acc: Option<gltf::Accessor>,
    count: usize,
    what: &str,
) -> Result<Option<Vec<[f32; 4]>>, SceneError> {
    let Some(a) = acc else { return Ok(None) };
    if a.count() != count {
        bail!("{what} count differs from POSITION count");
    }
    let comps = a.dimensions().multiplicity();
    if comps != 3 && comps != 4 {
        bail!("{what}: expected 3 or 4 components, found {comps}");
    }
    Ok(Some(
        reader
            .floats(&a, comps, what)?
            .chunks_exact(comps)
            .map(|c| [c[0], c[1], c[2], if comps == 4 { c[3] } else { 1.0 }])
            .collect(),
    ))
}

/// Triangles of a primitive's index list in the order its mode defines.
pub(crate) fn triangles(mode: Mode, flat: &[u32]) -> Vec<[u32; 3]> {
    let n = flat.len();
    match mode {
        Mode::Triangles => flat.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect(),
        Mode::TriangleStrip => (0..n.saturating_sub(2))
            .map(|i| {
                if i % 2 == 0 {
                    [flat[i], flat[i + 1], flat[i + 2]]
                } else {
                    [flat[i], flat[i + 2], flat[i + 1]]
                }
            })
            .collect(),
        Mode::TriangleFan => (1..n.saturating_sub(1))
            .map(|i| [flat[i], flat[i + 1], flat[0]])
            .collect(),
        Mode::Points | Mode::Lines | Mode::LineLoop | Mode::LineStrip => Vec::new(),
    }
}

/// Reads one primitive; `None` for primitives that are not rendered (points,
/// lines, no POSITION), each reported in `warnings`.
pub(crate) fn read_primitive(
    reader: &Reader,
    mesh: &gltf::Mesh,
    p: &gltf::Primitive,
    materials: &[Material],
    default_material: usize,
    warnings: &mut Vec<String>,
) -> Result<Option<Primitive>, SceneError> {
    let mode = p.mode();
    if matches!(
        mode,
        Mode::Points | Mode::Lines | Mode::LineLoop | Mode::LineStrip
    ) {
        warn_once(
            warnings,
            format!("{mode:?} primitives are not rendered (points and lines have no surface)"),
        );
        return Ok(None);
    }
    let Some(pos) = p.get(&gltf::Semantic::Positions) else {
        warn_once(
            warnings,
            format!(
                "mesh {} has a primitive without POSITION, which is skipped",
                mesh.index()
            ),
        );
        return Ok(None);
    };
    let positions: Vec<Vec3> = reader
        .floats(&pos, 3, "POSITION")?
        .chunks_exact(3)
        .map(|c| [c[0], c[1], c[2]])
        .collect();
    let count = positions.len();
    let normals = vec3s(reader, p.get(&gltf::Semantic::Normals), count, "NORMAL")?;
    let tangents = vec4s(reader, p.get(&gltf::Semantic::Tangents), count, "TANGENT")?;
    let mut uvs: [Option<Vec<[f32; 2]>>; 2] = [None, None];
    for (set, slot) in uvs.iter_mut().enumerate() {
        let what = format!("TEXCOORD_{set}");
        if let Some(a) = p.get(&gltf::Semantic::TexCoords(set as u32)) {
            if a.count() != count {
                bail!("{what} count differs from POSITION count");
            }
            *slot = Some(
                reader
                    .floats(&a, 2, &what)?
                    .chunks_exact(2)
                    .map(|c| [c[0], c[1]])
                    .collect(),
            );
        }
    }
    let colors = vec4s(reader, p.get(&gltf::Semantic::Colors(0)), count, "COLOR_0")?;
    let joints = vec4s(reader, p.get(&gltf::Semantic::Joints(0)), count, "JOINTS_0")?
        .map(|j| j.iter().map(|v| v.map(|x| x as u32)).collect());
    let weights = vec4s(
        reader,
        p.get(&gltf::Semantic::Weights(0)),
        count,
        "WEIGHTS_0",
    )?;
    for (sem, _) in p.attributes() {
        let name = format!("{sem:?}");
        if matches!(
            sem,
            gltf::Semantic::Joints(1..)
                | gltf::Semantic::Weights(1..)
                | gltf::Semantic::Colors(1..)
        ) || matches!(sem, gltf::Semantic::TexCoords(2..))
        {
            warn_once(
                warnings,
                format!("vertex attribute {name} is not supported"),
            );
        }
    }
    let mut targets = Vec::new();
    for t in p.morph_targets() {
        if t.tangents().is_some() {
            warn_once(
                warnings,
                "morph target TANGENT offsets are not supported".into(),
            );
        }
        targets.push(MorphTarget {
            positions: vec3s(reader, t.positions(), count, "morph target POSITION")?,
            normals: vec3s(reader, t.normals(), count, "morph target NORMAL")?,
        });
    }
    let flat: Vec<u32> = match p.indices() {
        Some(a) => reader.indices(&a, count)?,
        None => {
            if count > MAX_TRIANGLES * 3 {
                bail!("too many vertices");
            }
            (0..count as u32).collect()
        }
    };
    let indices = triangles(mode, &flat);
    let material = p.material().index().unwrap_or(default_material);
    let mut prim = Primitive {
        positions,
        normals,
        tangents,
        uvs,
        colors,
        joints,
        weights,
        targets,
        indices,
        material,
    };
    if prim.tangents.is_none() {
        if let Some(slot) = materials.get(material).and_then(|m| m.slots[SLOT_NORMAL]) {
            if !mikk_tangents(&mut prim, slot.tex_coord as usize) {
                prim.tangents = generate_tangents(&prim, slot.tex_coord as usize);
            }
        }
    }
    Ok(Some(prim))
}

/// The primitive's triangles as MikkTSpace reads them; it writes one
/// tangent per triangle corner.
struct MikkInput<'a> {
    p: &'a Primitive,
    uvs: &'a [[f32; 2]],
    corners: Vec<[f32; 4]>,
}

impl MikkInput<'_> {
    fn vertex(&self, face: usize, vert: usize) -> usize {
        self.p.indices[face][vert] as usize
    }
}

impl mikktspace::Geometry for MikkInput<'_> {
    fn num_faces(&self) -> usize {
        self.p.indices.len()
    }
    fn num_vertices_of_face(&self, _: usize) -> usize {
        3
    }
    fn position(&self, face: usize, vert: usize) -> [f32; 3] {
        self.p.positions[self.vertex(face, vert)]
    }
    fn normal(&self, face: usize, vert: usize) -> [f32; 3] {
        match &self.p.normals {
            Some(n) => n[self.vertex(face, vert)],
            // Without normals glTF shades flat: the face's normal.
            None => {
                let [a, b, c] = self.p.indices[face].map(|i| self.p.positions[i as usize]);
                math::normalize(math::cross(math::sub(b, a), math::sub(c, a)))
            }
        }
    }
    fn tex_coord(&self, face: usize, vert: usize) -> [f32; 2] {
        self.uvs[self.vertex(face, vert)]
    }
    fn set_tangent_encoded(&mut self, t: [f32; 4], face: usize, vert: usize) {
        // glTF's V axis points down the image, the opposite of the
        // convention MikkTSpace assumes: the handedness flips.
        self.corners[face * 3 + vert] = [t[0], t[1], t[2], -t[3]];
    }
}

/// MikkTSpace tangents from UV set `set`, splitting vertices whose corners
/// need different tangents; false (nothing changed) without those UVs or
/// when the generator fails.
pub(crate) fn mikk_tangents(p: &mut Primitive, set: usize) -> bool {
    let Some(uvs) = p.uvs[set].as_ref() else {
        return false;
    };
    let mut input = MikkInput {
        p,
        uvs,
        corners: vec![[0.0; 4]; p.indices.len() * 3],
    };
    if !mikktspace::generate_tangents(&mut input) {
        return false;
    }
    let corners = input.corners;
    let n = p.positions.len();
    let mut tangents: Vec<Option<[f32; 4]>> = vec![None; n];
    // (original vertex, tangent bits) → vertex carrying that tangent.
    let mut copies: std::collections::HashMap<(u32, [u32; 4]), u32> =
        std::collections::HashMap::new();
    for (face, tri) in p.indices.clone().iter().enumerate() {
        for (corner, &v) in tri.iter().enumerate() {
            let t = corners[face * 3 + corner];
            let key = (v, t.map(f32::to_bits));
            let at = match copies.get(&key) {
                Some(&at) => at,
                None => {
                    let at = if tangents[v as usize].is_none() {
                        v
                    } else {
                        duplicate_vertex(p, v as usize);
                        tangents.push(None);
                        (p.positions.len() - 1) as u32
                    };
                    tangents[at as usize] = Some(t);
                    copies.insert(key, at);
                    at
                }
            };
            p.indices[face][corner] = at;
        }
    }
    p.tangents = Some(
        tangents
            .into_iter()
            .map(|t| t.unwrap_or([1.0, 0.0, 0.0, 1.0]))
            .collect(),
    );
    true
}

/// Appends a copy of vertex `v` with every attribute it has.
fn duplicate_vertex(p: &mut Primitive, v: usize) {
    fn dup<T: Clone>(a: &mut Option<Vec<T>>, v: usize) {
        if let Some(a) = a {
            a.push(a[v].clone());
        }
    }
    p.positions.push(p.positions[v]);
    dup(&mut p.normals, v);
    dup(&mut p.tangents, v);
    dup(&mut p.uvs[0], v);
    dup(&mut p.uvs[1], v);
    dup(&mut p.colors, v);
    dup(&mut p.joints, v);
    dup(&mut p.weights, v);
    for t in &mut p.targets {
        dup(&mut t.positions, v);
        dup(&mut t.normals, v);
    }
}

/// Per-vertex tangents from UV set `set` (None without those UVs): the
/// fallback when MikkTSpace cannot run.
pub(crate) fn generate_tangents(p: &Primitive, set: usize) -> Option<Vec<[f32; 4]>> {
    let uvs = p.uvs[set].as_ref()?;
    let n = p.positions.len();
    let mut tan = vec![[0.0f32; 3]; n];
    let mut bit = vec![[0.0f32; 3]; n];
    let mut face_n = vec![[0.0f32; 3]; n];
    for t in &p.indices {
        let [a, b, c] = t.map(|i| i as usize);
        let (p0, p1, p2) = (p.positions[a], p.positions[b], p.positions[c]);
        let (w0, w1, w2) = (uvs[a], uvs[b], uvs[c]);
        let e1 = math::sub(p1, p0);
        let e2 = math::sub(p2, p0);
        let (du1, dv1) = (w1[0] - w0[0], w1[1] - w0[1]);
        let (du2, dv2) = (w2[0] - w0[0], w2[1] - w0[1]);
        let r = du1 * dv2 - du2 * dv1;
        let fnrm = math::cross(e1, e2);
        for &v in &[a, b, c] {
            face_n[v] = math::add(face_n[v], fnrm);
        }
        if r.abs() < 1e-20 {
            continue;
        }
        let sdir = math::scale(
            math::sub(math::scale(e1, dv2), math::scale(e2, dv1)),
            1.0 / r,
        );
        let tdir = math::scale(
            math::sub(math::scale(e2, du1), math::scale(e1, du2)),
            1.0 / r,
        );
        for &v in &[a, b, c] {
            tan[v] = math::add(tan[v], sdir);
            bit[v] = math::add(bit[v], tdir);
        }
    }
    Some(
        (0..n)
            .map(|i| {
                let nrm = p
                    .normals
                    .as_ref()
                    .map(|ns| ns[i])
                    .unwrap_or_else(|| math::normalize(face_n[i]));
                let t =
                    math::normalize(math::sub(tan[i], math::scale(nrm, math::dot(nrm, tan[i]))));
                // glTF's V axis points down the image while a normal map's
                // +Y points up: the bitangent cross(n, t) is opposite to
                // dP/dv for an unmirrored mapping, which is handedness +1.
                let w = if math::dot(math::cross(nrm, t), bit[i]) < 0.0 {
                    1.0
                } else {
                    -1.0
                };
                [t[0], t[1], t[2], w]
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_and_fans_keep_the_winding() {
        assert_eq!(
            triangles(Mode::TriangleStrip, &[0, 1, 2, 3, 4]),
            vec![[0, 1, 2], [1, 3, 2], [2, 3, 4]]
        );
        assert_eq!(
            triangles(Mode::TriangleFan, &[0, 1, 2, 3]),
            vec![[1, 2, 0], [2, 3, 0]]
        );
        assert!(triangles(Mode::TriangleStrip, &[0, 1]).is_empty());
        assert!(triangles(Mode::Lines, &[0, 1, 2]).is_empty());
    }

    #[test]
    fn generated_tangents_follow_u_with_gltf_handedness() {
        // A quad facing +Z, u along +x, v down the image (along −y).
        let mut p = Primitive {
            positions: vec![
                [-1.0, -1.0, 0.0],
                [1.0, -1.0, 0.0],
                [-1.0, 1.0, 0.0],
                [1.0, 1.0, 0.0],
            ],
            normals: Some(vec![[0.0, 0.0, 1.0]; 4]),
            uvs: [
                Some(vec![[0.0, 1.0], [1.0, 1.0], [0.0, 0.0], [1.0, 0.0]]),
                None,
            ],
            indices: vec![[0, 1, 2], [2, 1, 3]],
            ..Default::default()
        };
        let t = generate_tangents(&p, 0).unwrap();
        for v in &t {
            assert!((v[0] - 1.0).abs() < 1e-6 && v[1].abs() < 1e-6 && v[2].abs() < 1e-6);
            assert_eq!(v[3], 1.0, "unmirrored mapping");
        }
        // Mirrored in v: the handedness flips.
        p.uvs[0] = Some(vec![[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]);
        assert!(generate_tangents(&p, 0)
            .unwrap()
            .iter()
            .all(|v| v[3] == -1.0));
        assert!(generate_tangents(&p, 1).is_none(), "no TEXCOORD_1");
    }

    #[test]
    fn mikktspace_agrees_on_a_plain_quad_and_splits_a_mirrored_seam() {
        // The unmirrored quad: the same tangents as above, no split.
        let mut quad = Primitive {
            positions: vec![
                [-1.0, -1.0, 0.0],
                [1.0, -1.0, 0.0],
                [-1.0, 1.0, 0.0],
                [1.0, 1.0, 0.0],
            ],
            normals: Some(vec![[0.0, 0.0, 1.0]; 4]),
            uvs: [
                Some(vec![[0.0, 1.0], [1.0, 1.0], [0.0, 0.0], [1.0, 0.0]]),
                None,
            ],
            indices: vec![[0, 1, 2], [2, 1, 3]],
            ..Default::default()
        };
        assert!(mikk_tangents(&mut quad, 0));
        assert_eq!(quad.positions.len(), 4, "nothing to split");
        for t in quad.tangents.as_ref().unwrap() {
            assert!((t[0] - 1.0).abs() < 1e-5 && t[1].abs() < 1e-5 && t[2].abs() < 1e-5);
            assert_eq!(t[3], 1.0);
        }
        assert!(!mikk_tangents(&mut quad, 1), "no TEXCOORD_1");

        // Two quads sharing the edge x = 0, the right one's UVs mirrored
        // in u (a texture painted once for both halves): the shared
        // vertices split, each half keeps its own tangent, and the copies
        // carry every attribute.
        let mut mirrored = Primitive {
            positions: vec![
                [-1.0, -1.0, 0.0],
                [0.0, -1.0, 0.0],
                [1.0, -1.0, 0.0],
                [-1.0, 1.0, 0.0],
                [0.0, 1.0, 0.0],
                [1.0, 1.0, 0.0],
            ],
            normals: Some(vec![[0.0, 0.0, 1.0]; 6]),
            uvs: [
                Some(vec![
                    [0.0, 1.0],
                    [1.0, 1.0],
                    [0.0, 1.0],
                    [0.0, 0.0],
                    [1.0, 0.0],
                    [0.0, 0.0],
                ]),
                None,
            ],
            colors: Some((0..6).map(|i| [i as f32, 0.0, 0.0, 1.0]).collect()),
            targets: vec![MorphTarget {
                positions: Some((0..6).map(|i| [0.0, 0.0, i as f32]).collect()),
                normals: None,
            }],
            indices: vec![[0, 1, 3], [3, 1, 4], [1, 2, 4], [4, 2, 5]],
            ..Default::default()
        };
        assert!(mikk_tangents(&mut mirrored, 0));
        assert_eq!(mirrored.positions.len(), 8, "the two seam vertices split");
        let t = mirrored.tangents.as_ref().unwrap();
        let colors = mirrored.colors.as_ref().unwrap();
        let morph = mirrored.targets[0].positions.as_ref().unwrap();
        assert_eq!((colors.len(), morph.len()), (8, 8));
        for (face, tri) in mirrored.indices.iter().enumerate() {
            let left = face < 2;
            for &v in tri {
                let v = v as usize;
                let want_x = if left { 1.0 } else { -1.0 };
                assert!((t[v][0] - want_x).abs() < 1e-5, "face {face}: {:?}", t[v]);
                // A copy keeps the attributes of the vertex it copies.
                let original = mirrored.positions[v];
                let src = [-1.0, 0.0, 1.0]
                    .iter()
                    .position(|&x| x == original[0])
                    .unwrap()
                    + if original[1] > 0.0 { 3 } else { 0 };
                assert_eq!(colors[v][0], src as f32);
                assert_eq!(morph[v][2], src as f32);
            }
        }
        // Both halves are mirror images: opposite handedness in glTF terms.
        let hand = |face: usize| t[mirrored.indices[face][0] as usize][3];
        assert_eq!(hand(0), 1.0);
        assert_eq!(hand(2), -1.0);
    }
}
