//! The built-in animated demo scene and the fixed bench scene.

use crate::builder::{box_mesh, sphere_mesh, GltfBuilder, MaterialDesc, NodeDesc};
use crate::math::quat_axis_angle;

/// Frames in the demo animation (one second at 24 fps).
pub const DEMO_SCENE_FRAMES: u32 = 24;

fn wall(b: &mut GltfBuilder, corners: [[f32; 3]; 4], normal: [f32; 3], material: usize) -> usize {
    b.mesh(&corners, Some(&[normal; 4]), &[0, 1, 2, 0, 2, 3], material)
}

/// Builds the room shared by the demo and bench scenes; returns the builder.
fn room(b: &mut GltfBuilder) {
    let white = b.material(MaterialDesc {
        base_color: [0.73, 0.73, 0.73],
        roughness: 0.9,
        ..Default::default()
    });
    let red = b.material(MaterialDesc {
        base_color: [0.65, 0.05, 0.05],
        roughness: 0.9,
        ..Default::default()
    });
    let green = b.material(MaterialDesc {
        base_color: [0.12, 0.45, 0.15],
        roughness: 0.9,
        ..Default::default()
    });
    let light = b.material(MaterialDesc {
        base_color: [0.0; 3],
        emissive: [1.0, 0.85, 0.6],
        emissive_strength: 12.0,
        ..Default::default()
    });
    let (l, r, f, c, bk, fr) = (-1.0f32, 1.0f32, 0.0f32, 2.0f32, -1.0f32, 1.0f32);
    let floor = wall(
        b,
        [[l, f, fr], [r, f, fr], [r, f, bk], [l, f, bk]],
        [0.0, 1.0, 0.0],
        white,
    );
    let ceiling = wall(
        b,
        [[l, c, bk], [r, c, bk], [r, c, fr], [l, c, fr]],
        [0.0, -1.0, 0.0],
        white,
    );
    let back = wall(
        b,
        [[l, f, bk], [r, f, bk], [r, c, bk], [l, c, bk]],
        [0.0, 0.0, 1.0],
        white,
    );
    let left = wall(
        b,
        [[l, f, fr], [l, f, bk], [l, c, bk], [l, c, fr]],
        [1.0, 0.0, 0.0],
        red,
    );
    let right = wall(
        b,
        [[r, f, bk], [r, f, fr], [r, c, fr], [r, c, bk]],
        [-1.0, 0.0, 0.0],
        green,
    );
    let s = 0.3;
    let lamp = wall(
        b,
        [
            [-s, c - 0.001, -s],
            [s, c - 0.001, -s],
            [s, c - 0.001, s],
            [-s, c - 0.001, s],
        ],
        [0.0, -1.0, 0.0],
        light,
    );
    for m in [floor, ceiling, back, left, right, lamp] {
        b.node(
            NodeDesc {
                mesh: Some(m),
                ..Default::default()
            },
            true,
        );
    }
    let cam = b.camera(0.75);
    b.node(
        NodeDesc {
            name: Some("camera".into()),
            camera: Some(cam),
            translation: Some([0.0, 1.0, 3.6]),
            ..Default::default()
        },
        true,
    );
}

/// The animated demo scene as `.glb` bytes: a Cornell-style room lit by an
/// area light and a point light, with a spinning box, a bouncing metal
/// sphere and an orbiting cube. Deterministic bytes, ~1.5k triangles.
pub fn demo_scene_glb() -> Vec<u8> {
    let mut b = GltfBuilder::new();
    room(&mut b);
    let plastic = b.material(MaterialDesc {
        base_color: [0.8, 0.75, 0.7],
        roughness: 0.35,
        ..Default::default()
    });
    let metal = b.material(MaterialDesc {
        base_color: [0.95, 0.8, 0.5],
        metallic: 1.0,
        roughness: 0.25,
        ..Default::default()
    });
    let blue = b.material(MaterialDesc {
        base_color: [0.1, 0.2, 0.7],
        roughness: 0.5,
        ..Default::default()
    });

    let (p, n, i) = box_mesh([0.28, 0.55, 0.28], false);
    let tall = b.mesh(&p, Some(&n), &i, plastic);
    let (p, n, i) = sphere_mesh(0.3, 32, 20);
    let ball = b.mesh(&p, Some(&n), &i, metal);
    let (p, n, i) = box_mesh([0.15, 0.15, 0.15], false);
    let cube = b.mesh(&p, Some(&n), &i, blue);

    let tall_node = b.node(
        NodeDesc {
            mesh: Some(tall),
            translation: Some([-0.4, 0.55, -0.35]),
            ..Default::default()
        },
        true,
    );
    let ball_node = b.node(
        NodeDesc {
            mesh: Some(ball),
            translation: Some([0.45, 0.3, 0.2]),
            ..Default::default()
        },
        true,
    );
    let cube_node = b.node(
        NodeDesc {
            mesh: Some(cube),
            translation: Some([0.6, 0.0, 0.0]),
            ..Default::default()
        },
        false,
    );
    let pivot = b.node(
        NodeDesc {
            translation: Some([0.0, 1.2, -0.2]),
            children: vec![cube_node],
            ..Default::default()
        },
        true,
    );
    let pl = b.point_light([1.0, 0.9, 0.8], 0.6);
    b.node(
        NodeDesc {
            light: Some(pl),
            translation: Some([0.6, 1.7, 0.6]),
            ..Default::default()
        },
        true,
    );

    let keys = 9;
    let dur = DEMO_SCENE_FRAMES as f32 / 24.0;
    let times: Vec<f32> = (0..keys)
        .map(|k| dur * k as f32 / (keys - 1) as f32)
        .collect();
    let spin: Vec<f32> = times
        .iter()
        .flat_map(|t| quat_axis_angle([0.0, 1.0, 0.0], t / dur * std::f32::consts::PI))
        .collect();
    b.animate(tall_node, "rotation", &times, &spin);
    let bounce: Vec<f32> = times
        .iter()
        .flat_map(|t| {
            let ph = t / dur * std::f32::consts::TAU;
            [0.45, 0.3 + 0.5 * ph.sin().abs(), 0.2]
        })
        .collect();
    b.animate(ball_node, "translation", &times, &bounce);
    let orbit: Vec<f32> = times
        .iter()
        .flat_map(|t| quat_axis_angle([0.0, 1.0, 0.0], t / dur * std::f32::consts::TAU))
        .collect();
    b.animate(pivot, "rotation", &times, &orbit);
    let tumble: Vec<f32> = times
        .iter()
        .flat_map(|t| quat_axis_angle([1.0, 1.0, 0.0], t / dur * std::f32::consts::TAU))
        .collect();
    b.animate(cube_node, "rotation", &times, &tumble);
    b.to_glb()
}

/// The fixed, static scene the Inferix Bench renders.
pub(crate) fn bench_scene_glb() -> Vec<u8> {
    let mut b = GltfBuilder::new();
    room(&mut b);
    let plastic = b.material(MaterialDesc {
        base_color: [0.8, 0.75, 0.7],
        roughness: 0.35,
        ..Default::default()
    });
    let metal = b.material(MaterialDesc {
        base_color: [0.95, 0.8, 0.5],
        metallic: 1.0,
        roughness: 0.25,
        ..Default::default()
    });
    let (p, n, i) = box_mesh([0.28, 0.55, 0.28], false);
    let tall = b.mesh(&p, Some(&n), &i, plastic);
    let (p, n, i) = sphere_mesh(0.3, 32, 20);
    let ball = b.mesh(&p, Some(&n), &i, metal);
    b.node(
        NodeDesc {
            mesh: Some(tall),
            translation: Some([-0.4, 0.55, -0.35]),
            rotation: Some(quat_axis_angle([0.0, 1.0, 0.0], 0.4)),
            ..Default::default()
        },
        true,
    );
    b.node(
        NodeDesc {
            mesh: Some(ball),
            translation: Some([0.45, 0.3, 0.2]),
            ..Default::default()
        },
        true,
    );
    b.to_glb()
}
