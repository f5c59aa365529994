//! The scene graph of a glTF: punctual lights, nodes with their checked
//! transforms and cameras, the roots to draw from, and animation channels.

use gltf::animation::{Interpolation, Property};

use super::*;

/// `KHR_lights_punctual` lights, with their intensity folded into colour.
pub(super) fn read_lights(doc: &gltf::Document) -> Result<Vec<LightDef>, SceneError> {
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

    Ok(lights)
}

/// Nodes with checked transforms and cameras.
pub(super) fn read_nodes(doc: &gltf::Document) -> Result<Vec<Node>, SceneError> {
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
            skin: n.skin().map(|s| s.index()),
            weights: n.weights().map(<[f32]>::to_vec),
        });
    }
    Ok(nodes)
}

/// The roots of the default scene (or the first), or of every parentless
/// node when the file names no scene.
pub(super) fn scene_roots(doc: &gltf::Document, nodes: &[Node]) -> Vec<usize> {
    match doc.default_scene().or_else(|| doc.scenes().next()) {
        Some(s) => s.nodes().map(|n| n.index()).collect(),
        None => {
            // No scene: treat nodes that are nobody's child as roots.
            let mut is_child = vec![false; nodes.len()];
            for n in nodes {
                for &c in &n.children {
                    is_child[c] = true;
                }
            }
            (0..nodes.len()).filter(|&i| !is_child[i]).collect()
        }
    }
}

/// Animation channels with their key times and values checked.
pub(super) fn read_channels(
    doc: &gltf::Document,
    reader: &Reader<'_>,
) -> Result<Vec<Channel>, SceneError> {
    let mut channels = Vec::new();
    for anim in doc.animations() {
        for ch in anim.channels() {
            let target = ch.target();
            let property = target.property();
            let sampler = ch.sampler();
            let times = reader.floats(&sampler.input(), 1, "animation input")?;
            let interpolation = sampler.interpolation();
            let per_key = if interpolation == Interpolation::CubicSpline {
                3
            } else {
                1
            };
            let (comps, values) = match property {
                Property::Translation | Property::Scale => {
                    (3, reader.floats(&sampler.output(), 3, "animation output")?)
                }
                Property::Rotation => (4, reader.floats(&sampler.output(), 4, "animation output")?),
                Property::MorphTargetWeights => {
                    // Scalar outputs: one weight per morph target per key.
                    let v = reader.floats(&sampler.output(), 1, "animation output")?;
                    let keys = times.len() * per_key;
                    if keys == 0 || v.is_empty() || v.len() % keys != 0 {
                        bail!("morph weight animation output count does not match its input");
                    }
                    (v.len() / keys, v)
                }
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
                comps,
                values,
            });
        }
    }

    Ok(channels)
}
