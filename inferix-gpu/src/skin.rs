//! Skinning and morph targets: a primitive's vertices at one instant.
//!
//! Morph targets add their weighted POSITION / NORMAL offsets first (weights
//! from the node's animated or static weights, else the mesh's); skinning then
//! blends the joint matrices `world(joint) · inverseBind` by WEIGHTS_0, and,
//! as glTF specifies, the skinned mesh node's own transform is not applied.

use crate::math::{self, Mat4, Vec3};
use crate::mesh::Primitive;
use crate::scene::{Reader, SceneError};

macro_rules! bail {
    ($($t:tt)*) => { return Err(SceneError(format!($($t)*))) };
}

/// A glTF skin.
#[derive(Debug, Clone)]
pub(crate) struct Skin {
    /// Joint node indices.
    pub(crate) joints: Vec<usize>,
    /// One inverse bind matrix per joint (identity when absent).
    pub(crate) inverse_bind: Vec<Mat4>,
}

/// Reads every skin of the document.
pub(crate) fn read_skins(doc: &gltf::Document, reader: &Reader) -> Result<Vec<Skin>, SceneError> {
    let mut skins = Vec::new();
    for s in doc.skins() {
        let joints: Vec<usize> = s.joints().map(|j| j.index()).collect();
        let inverse_bind = match s.inverse_bind_matrices() {
            Some(a) => {
                if a.count() != joints.len() {
                    bail!(
                        "skin {}: inverse bind matrix count differs from joint count",
                        s.index()
                    );
                }
                reader
                    .floats(&a, 16, "inverseBindMatrices")?
                    .chunks_exact(16)
                    .map(|c| std::array::from_fn(|i| c[i]))
                    .collect()
            }
            None => vec![math::IDENTITY; joints.len()],
        };
        skins.push(Skin {
            joints,
            inverse_bind,
        });
    }
    Ok(skins)
}

/// World-space positions, normals and tangents of a primitive instance.
pub(crate) struct Deformed {
    pub(crate) positions: Vec<Vec3>,
    /// Zero where the primitive has no normals (flat shading).
    pub(crate) normals: Vec<Vec3>,
    pub(crate) tangents: Vec<[f32; 4]>,
}

/// Applies morph `weights`, then the skin (joint matrices `joint_mats`, one
/// per joint of the node's skin) or the node's `world` matrix.
pub(crate) fn deform(
    p: &Primitive,
    weights: &[f32],
    joint_mats: Option<&[Mat4]>,
    world: &Mat4,
) -> Deformed {
    let n = p.positions.len();
    let mut pos = p.positions.clone();
    let mut nrm: Option<Vec<Vec3>> = p.normals.clone();
    for (t, &w) in p.targets.iter().zip(weights) {
        if w == 0.0 {
            continue;
        }
        if let Some(dp) = &t.positions {
            for (v, d) in pos.iter_mut().zip(dp) {
                *v = math::add(*v, math::scale(*d, w));
            }
        }
        if let (Some(ns), Some(dn)) = (&mut nrm, &t.normals) {
            for (v, d) in ns.iter_mut().zip(dn) {
                *v = math::add(*v, math::scale(*d, w));
            }
        }
    }
    let skinned = match (joint_mats, &p.joints, &p.weights) {
        (Some(j), Some(ji), Some(jw)) => Some((j, ji, jw)),
        _ => None,
    };
    let mut out = Deformed {
        positions: Vec::with_capacity(n),
        normals: Vec::with_capacity(n),
        tangents: Vec::with_capacity(n),
    };
    for i in 0..n {
        let m = match skinned {
            Some((mats, ji, jw)) => {
                let mut m = [0.0f32; 16];
                for k in 0..4 {
                    let w = jw[i][k];
                    if w == 0.0 {
                        continue;
                    }
                    // Out-of-range joint indices were rejected at load.
                    let jm = &mats[ji[i][k] as usize];
                    for (a, b) in m.iter_mut().zip(jm) {
                        *a += w * b;
                    }
                }
                m
            }
            None => *world,
        };
        out.positions.push(math::transform_point(&m, pos[i]));
        out.normals.push(match &nrm {
            Some(ns) if math::dot(ns[i], ns[i]) > 0.0 => math::transform_normal(&m, ns[i]),
            _ => [0.0; 3],
        });
        out.tangents.push(match &p.tangents {
            Some(ts) => {
                let t = math::normalize(math::transform_dir(&m, [ts[i][0], ts[i][1], ts[i][2]]));
                [t[0], t[1], t[2], ts[i][3]]
            }
            None => [0.0; 4],
        });
    }
    out
}

/// Checks a skinned primitive's joint indices against its skin.
pub(crate) fn check_joints(p: &Primitive, skin: &Skin) -> Result<(), SceneError> {
    if let Some(j) = &p.joints {
        if let Some(bad) = j
            .iter()
            .flatten()
            .find(|&&x| x as usize >= skin.joints.len())
        {
            bail!(
                "JOINTS_0 index {bad} out of range (skin has {} joints)",
                skin.joints.len()
            );
        }
    }
    Ok(())
}
