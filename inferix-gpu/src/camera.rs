//! Cameras: from a glTF node's world matrix, and the default camera for
//! scenes that name none.
//!
//! The default camera must be the same on every node of the network (the
//! worker renders through it, verifiers re-render crops through it and the
//! watermarker places Proof-of-Render patches in front of it), so it is a
//! pure function of the scene file and the frame's aspect ratio: it frames
//! the union of the geometry's bounds at every animation key time (not the
//! current frame's, so animated scenes neither zoom nor jump, and not the
//! job's frame range, which the watermarker does not know) from a fixed
//! three-quarter direction, and it is built as a glTF node would be, so a
//! camera node with the same transform renders bit-identically.

use crate::math::{self, Mat4, Vec3};
use crate::scene::{Scene, SceneError};

/// Vertical field of view of the default camera (about 46°).
pub(crate) const DEFAULT_YFOV: f32 = 0.8;
/// Azimuth of the default view from +Z towards +X, and its elevation.
const AZIMUTH: f32 = 0.61;
const ELEVATION: f32 = 0.44;
/// At most this many animation instants are evaluated to fit the default
/// camera (evenly chosen among the key times when there are more).
const MAX_FIT_TIMES: usize = 64;

/// How a camera projects.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Projection {
    /// Vertical field of view in radians.
    Perspective { yfov: f32 },
    /// Half the view's height in scene units (glTF `ymag`); the width
    /// follows the frame's aspect ratio.
    Orthographic { half_height: f32 },
}

/// A camera in world space.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Camera {
    pub(crate) position: Vec3,
    pub(crate) forward: Vec3,
    pub(crate) right: Vec3,
    pub(crate) up: Vec3,
    pub(crate) projection: Projection,
}

/// The camera of a node with world matrix `world` (looking down its −Z,
/// +Y up), or `None` when the matrix is degenerate.
pub(crate) fn from_world(world: &Mat4, projection: Projection) -> Option<Camera> {
    let fwd = math::normalize(math::transform_dir(world, [0.0, 0.0, -1.0]));
    let up0 = math::transform_dir(world, [0.0, 1.0, 0.0]);
    let right = math::normalize(math::cross(fwd, up0));
    let up = math::cross(right, fwd);
    (math::dot(fwd, fwd) > 0.5 && math::dot(right, right) > 0.5).then(|| Camera {
        position: math::transform_point(world, [0.0; 3]),
        forward: fwd,
        right,
        up,
        projection,
    })
}

/// Axis-aligned bounds of the geometry over the whole animation: at time 0
/// and at every key time of every channel. `None` for a scene without
/// triangles.
pub(crate) fn animation_bounds(scene: &Scene) -> Result<Option<(Vec3, Vec3)>, SceneError> {
    let mut times: Vec<f32> = std::iter::once(0.0)
        .chain(scene.channels.iter().flat_map(|c| c.times.iter().copied()))
        .filter(|t| t.is_finite())
        .collect();
    times.sort_by(f32::total_cmp);
    times.dedup();
    if times.len() > MAX_FIT_TIMES {
        let n = times.len();
        times = (0..MAX_FIT_TIMES)
            .map(|i| times[i * (n - 1) / (MAX_FIT_TIMES - 1)])
            .collect();
    }
    let mut bounds: Option<(Vec3, Vec3)> = None;
    for t in times {
        let g = scene.evaluate(t)?;
        for p in g.tris.iter().flatten() {
            bounds = Some(match bounds {
                Some((lo, hi)) => (math::vmin(lo, *p), math::vmax(hi, *p)),
                None => (*p, *p),
            });
        }
    }
    Ok(bounds)
}

/// Position and rotation of the default camera's node for geometry within
/// `bounds`, seen in frames of `aspect` = width / height.
pub(crate) fn default_transform(bounds: Option<(Vec3, Vec3)>, aspect: f32) -> (Vec3, [f32; 4]) {
    let (lo, hi) = bounds.unwrap_or(([-1.0; 3], [1.0; 3]));
    let center = math::scale(math::add(lo, hi), 0.5);
    let radius = (math::length(math::sub(hi, lo)) * 0.5).max(1e-3);
    let aspect = if aspect.is_finite() && aspect > 0.0 {
        aspect
    } else {
        1.0
    };
    // The bounding sphere fits the narrower of the two fields of view.
    let half_v = DEFAULT_YFOV * 0.5;
    let half_h = (half_v.tan() * aspect).atan();
    let dist = radius / half_v.min(half_h).sin();
    let (se, ce) = ELEVATION.sin_cos();
    let (sa, ca) = AZIMUTH.sin_cos();
    let dir = [sa * ce, se, ca * ce];
    let q = quat_mul(
        math::quat_axis_angle([0.0, 1.0, 0.0], AZIMUTH),
        math::quat_axis_angle([1.0, 0.0, 0.0], -ELEVATION),
    );
    (math::add(center, math::scale(dir, dist)), q)
}

/// The default camera: the node transform of [`default_transform`] with a
/// perspective [`DEFAULT_YFOV`], made exactly as a glTF node's camera is.
pub(crate) fn default_camera(bounds: Option<(Vec3, Vec3)>, aspect: f32) -> Camera {
    let (t, q) = default_transform(bounds, aspect);
    // Normalised as the scene loader normalises a node's rotation, so the
    // camera a watermarker writes into a copy of the scene (with `q` as
    // its rotation) is this one to the last bit.
    let world = math::trs(t, math::quat_normalize(q), [1.0; 3]);
    from_world(&world, Projection::Perspective { yfov: DEFAULT_YFOV })
        .expect("a rotation matrix is not degenerate")
}

/// Hamilton product `a * b` (apply `b`, then `a`).
fn quat_mul(a: [f32; 4], b: [f32; 4]) -> [f32; 4] {
    let [ax, ay, az, aw] = a;
    let [bx, by, bz, bw] = b;
    [
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
        aw * bw - ax * bx - ay * by - az * bz,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_camera_looks_at_the_bounds_from_three_quarters() {
        let bounds = Some(([-1.0, 0.0, -2.0], [3.0, 2.0, 0.0]));
        let c = default_camera(bounds, 16.0 / 9.0);
        let center = [1.0, 1.0, -1.0];
        let to_center = math::normalize(math::sub(center, c.position));
        assert!(math::dot(to_center, c.forward) > 0.9999, "{c:?}");
        // Not straight down −Z: from above, front and right.
        assert!(c.forward[0] < -0.3 && c.forward[1] < -0.3 && c.forward[2] < -0.5);
        assert!(c.up[1] > 0.8 && c.right[1].abs() < 1e-5);
        // The bounding sphere fits in both fields of view.
        let radius = math::length([4.0, 2.0, 2.0]) * 0.5;
        let dist = math::length(math::sub(center, c.position));
        assert!(dist * (DEFAULT_YFOV * 0.5).sin() >= radius * 0.999);
        // A portrait frame moves the camera back.
        let tall = default_camera(bounds, 0.5);
        assert!(math::length(math::sub(center, tall.position)) > dist * 1.2);
    }
}
