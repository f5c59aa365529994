//! Small CPU-side linear algebra: vectors, quaternions, column-major 4x4 matrices.

/// A 3-vector.
pub(crate) type Vec3 = [f32; 3];

pub(crate) fn add(a: Vec3, b: Vec3) -> Vec3 {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}

pub(crate) fn sub(a: Vec3, b: Vec3) -> Vec3 {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

pub(crate) fn scale(a: Vec3, s: f32) -> Vec3 {
    [a[0] * s, a[1] * s, a[2] * s]
}

pub(crate) fn dot(a: Vec3, b: Vec3) -> f32 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

pub(crate) fn cross(a: Vec3, b: Vec3) -> Vec3 {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

pub(crate) fn length(a: Vec3) -> f32 {
    dot(a, a).sqrt()
}

pub(crate) fn normalize(a: Vec3) -> Vec3 {
    let l = length(a);
    if l > 0.0 && l.is_finite() {
        scale(a, 1.0 / l)
    } else {
        [0.0, 0.0, 0.0]
    }
}

pub(crate) fn vmin(a: Vec3, b: Vec3) -> Vec3 {
    [a[0].min(b[0]), a[1].min(b[1]), a[2].min(b[2])]
}

pub(crate) fn vmax(a: Vec3, b: Vec3) -> Vec3 {
    [a[0].max(b[0]), a[1].max(b[1]), a[2].max(b[2])]
}

/// Column-major 4x4 matrix, as glTF stores them.
pub(crate) type Mat4 = [f32; 16];

pub(crate) const IDENTITY: Mat4 = [
    1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0,
];

pub(crate) fn mat_mul(a: &Mat4, b: &Mat4) -> Mat4 {
    let mut r = [0.0f32; 16];
    for c in 0..4 {
        for row in 0..4 {
            let mut s = 0.0;
            for k in 0..4 {
                s += a[k * 4 + row] * b[c * 4 + k];
            }
            r[c * 4 + row] = s;
        }
    }
    r
}

pub(crate) fn transform_point(m: &Mat4, p: Vec3) -> Vec3 {
    [
        m[0] * p[0] + m[4] * p[1] + m[8] * p[2] + m[12],
        m[1] * p[0] + m[5] * p[1] + m[9] * p[2] + m[13],
        m[2] * p[0] + m[6] * p[1] + m[10] * p[2] + m[14],
    ]
}

pub(crate) fn transform_dir(m: &Mat4, d: Vec3) -> Vec3 {
    [
        m[0] * d[0] + m[4] * d[1] + m[8] * d[2],
        m[1] * d[0] + m[5] * d[1] + m[9] * d[2],
        m[2] * d[0] + m[6] * d[1] + m[10] * d[2],
    ]
}

/// Transforms a normal by the inverse transpose of the upper 3x3 (via cofactors,
/// which equals it up to a positive or negative scale; the result is normalised
/// and flipped for mirroring transforms).
pub(crate) fn transform_normal(m: &Mat4, n: Vec3) -> Vec3 {
    let c0 = [m[0], m[1], m[2]];
    let c1 = [m[4], m[5], m[6]];
    let c2 = [m[8], m[9], m[10]];
    // Rows of the cofactor matrix are cross products of columns.
    let r0 = cross(c1, c2);
    let r1 = cross(c2, c0);
    let r2 = cross(c0, c1);
    let det = dot(c0, r0);
    let v = [
        r0[0] * n[0] + r1[0] * n[1] + r2[0] * n[2],
        r0[1] * n[0] + r1[1] * n[1] + r2[1] * n[2],
        r0[2] * n[0] + r1[2] * n[1] + r2[2] * n[2],
    ];
    let v = if det < 0.0 { scale(v, -1.0) } else { v };
    normalize(v)
}

/// Matrix from translation, rotation quaternion (x, y, z, w) and scale.
pub(crate) fn trs(t: Vec3, q: [f32; 4], s: Vec3) -> Mat4 {
    let [x, y, z, w] = q;
    let (xx, yy, zz) = (x * x, y * y, z * z);
    let (xy, xz, yz) = (x * y, x * z, y * z);
    let (wx, wy, wz) = (w * x, w * y, w * z);
    [
        (1.0 - 2.0 * (yy + zz)) * s[0],
        2.0 * (xy + wz) * s[0],
        2.0 * (xz - wy) * s[0],
        0.0,
        2.0 * (xy - wz) * s[1],
        (1.0 - 2.0 * (xx + zz)) * s[1],
        2.0 * (yz + wx) * s[1],
        0.0,
        2.0 * (xz + wy) * s[2],
        2.0 * (yz - wx) * s[2],
        (1.0 - 2.0 * (xx + yy)) * s[2],
        0.0,
        t[0],
        t[1],
        t[2],
        1.0,
    ]
}

pub(crate) fn quat_normalize(q: [f32; 4]) -> [f32; 4] {
    let l = (q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]).sqrt();
    if l > 0.0 && l.is_finite() {
        [q[0] / l, q[1] / l, q[2] / l, q[3] / l]
    } else {
        [0.0, 0.0, 0.0, 1.0]
    }
}

/// Spherical linear interpolation of unit quaternions.
pub(crate) fn slerp(a: [f32; 4], b: [f32; 4], t: f32) -> [f32; 4] {
    let mut d = a[0] * b[0] + a[1] * b[1] + a[2] * b[2] + a[3] * b[3];
    let mut b = b;
    if d < 0.0 {
        d = -d;
        b = [-b[0], -b[1], -b[2], -b[3]];
    }
    let (wa, wb) = if d > 0.9995 {
        (1.0 - t, t)
    } else {
        let th = d.clamp(-1.0, 1.0).acos();
        let s = th.sin();
        (((1.0 - t) * th).sin() / s, (t * th).sin() / s)
    };
    quat_normalize([
        a[0] * wa + b[0] * wb,
        a[1] * wa + b[1] * wb,
        a[2] * wa + b[2] * wb,
        a[3] * wa + b[3] * wb,
    ])
}

/// Quaternion for a rotation of `angle` radians around unit `axis`.
pub(crate) fn quat_axis_angle(axis: Vec3, angle: f32) -> [f32; 4] {
    let a = normalize(axis);
    let (s, c) = (angle * 0.5).sin_cos();
    [a[0] * s, a[1] * s, a[2] * s, c]
}

/// Determinant of the upper 3x3 (negative for mirroring transforms).
pub(crate) fn determinant3(m: &Mat4) -> f32 {
    dot(
        [m[0], m[1], m[2]],
        cross([m[4], m[5], m[6]], [m[8], m[9], m[10]]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trs_matches_parts() {
        let q = quat_axis_angle([0.0, 1.0, 0.0], std::f32::consts::FRAC_PI_2);
        let m = trs([1.0, 2.0, 3.0], q, [2.0, 2.0, 2.0]);
        let p = transform_point(&m, [1.0, 0.0, 0.0]);
        assert!(
            (p[0] - 1.0).abs() < 1e-5 && (p[1] - 2.0).abs() < 1e-5 && (p[2] - 1.0).abs() < 1e-5
        );
        let n = transform_normal(&m, [1.0, 0.0, 0.0]);
        assert!((n[2] + 1.0).abs() < 1e-5);
        let id = mat_mul(&IDENTITY, &m);
        assert_eq!(id, m);
    }

    #[test]
    fn slerp_halfway() {
        let a = quat_axis_angle([0.0, 0.0, 1.0], 0.0);
        let b = quat_axis_angle([0.0, 0.0, 1.0], 1.0);
        let h = slerp(a, b, 0.5);
        let e = quat_axis_angle([0.0, 0.0, 1.0], 0.5);
        for i in 0..4 {
            assert!((h[i] - e[i]).abs() < 1e-5);
        }
    }
}
