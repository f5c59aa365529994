//! SAH bounding-volume hierarchy, built on the CPU and flattened for the kernel.

use crate::math::{vmax, vmin, Vec3};

/// Triangles per leaf at most.
const MAX_LEAF: usize = 4;
/// Depth limit; the kernel's traversal stack holds 64 entries.
const MAX_DEPTH: usize = 48;
const BINS: usize = 12;

/// One flattened node: bounds, and either the index of the left child (the
/// right child follows it) or the first triangle and triangle count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Node {
    pub(crate) min: Vec3,
    pub(crate) max: Vec3,
    /// Left child index (interior) or first triangle (leaf).
    pub(crate) a: u32,
    /// Triangle count; 0 for interior nodes.
    pub(crate) count: u32,
    /// Split axis of an interior node.
    pub(crate) axis: u32,
}

/// A built hierarchy: nodes (root first) and the triangle order it uses.
#[derive(Debug, Clone)]
pub(crate) struct Bvh {
    pub(crate) nodes: Vec<Node>,
    /// `order[i]` is the original index of the i-th triangle in leaf order.
    pub(crate) order: Vec<u32>,
}

#[derive(Clone, Copy)]
struct Aabb {
    min: Vec3,
    max: Vec3,
}

impl Aabb {
    const EMPTY: Aabb = Aabb {
        min: [f32::INFINITY; 3],
        max: [f32::NEG_INFINITY; 3],
    };

    fn grow(&mut self, p: Vec3) {
        self.min = vmin(self.min, p);
        self.max = vmax(self.max, p);
    }

    fn merge(&mut self, o: &Aabb) {
        self.min = vmin(self.min, o.min);
        self.max = vmax(self.max, o.max);
    }

    fn area(&self) -> f32 {
        let d = [
            self.max[0] - self.min[0],
            self.max[1] - self.min[1],
            self.max[2] - self.min[2],
        ];
        if d[0] < 0.0 {
            return 0.0;
        }
        2.0 * (d[0] * d[1] + d[1] * d[2] + d[2] * d[0])
    }
}

#[allow(clippy::needless_range_loop)]
/// Builds a BVH over triangles given as `[v0, v1, v2]` world positions.
pub(crate) fn build(tris: &[[Vec3; 3]]) -> Bvh {
    let n = tris.len();
    let mut boxes = Vec::with_capacity(n);
    let mut centroids = Vec::with_capacity(n);
    for t in tris {
        let mut b = Aabb::EMPTY;
        for p in t {
            b.grow(*p);
        }
        centroids.push([
            (b.min[0] + b.max[0]) * 0.5,
            (b.min[1] + b.max[1]) * 0.5,
            (b.min[2] + b.max[2]) * 0.5,
        ]);
        boxes.push(b);
    }
    let mut order: Vec<u32> = (0..n as u32).collect();
    let mut nodes = Vec::with_capacity(2 * n.max(1));
    nodes.push(Node {
        min: [0.0; 3],
        max: [0.0; 3],
        a: 0,
        count: 0,
        axis: 0,
    });
    if n == 0 {
        return Bvh { nodes, order };
    }
    // Explicit work stack: (node index, start, end, depth).
    let mut work = vec![(0usize, 0usize, n, 0usize)];
    while let Some((ni, start, end, depth)) = work.pop() {
        let mut bounds = Aabb::EMPTY;
        let mut cb = Aabb::EMPTY;
        for &t in &order[start..end] {
            bounds.merge(&boxes[t as usize]);
            cb.grow(centroids[t as usize]);
        }
        let count = end - start;
        let leaf = Node {
            min: bounds.min,
            max: bounds.max,
            a: start as u32,
            count: count as u32,
            axis: 0,
        };
        if count <= MAX_LEAF.min(2) || depth >= MAX_DEPTH {
            nodes[ni] = leaf;
            continue;
        }
        // Binned SAH over the widest usable axes.
        let mut best: Option<(f32, usize, f32)> = None;
        for axis in 0..3 {
            let lo = cb.min[axis];
            let hi = cb.max[axis];
            if hi - lo <= 1e-12 || !(hi - lo).is_finite() {
                continue;
            }
            let mut bins = [(Aabb::EMPTY, 0usize); BINS];
            let k = BINS as f32 / (hi - lo);
            for &t in &order[start..end] {
                let b = (((centroids[t as usize][axis] - lo) * k) as usize).min(BINS - 1);
                bins[b].0.merge(&boxes[t as usize]);
                bins[b].1 += 1;
            }
            let mut right_area = [0.0f32; BINS];
            let mut right_count = [0usize; BINS];
            let mut acc = Aabb::EMPTY;
            let mut c = 0;
            for i in (1..BINS).rev() {
                acc.merge(&bins[i].0);
                c += bins[i].1;
                right_area[i] = acc.area();
                right_count[i] = c;
            }
            let mut acc = Aabb::EMPTY;
            let mut c = 0;
            for i in 0..BINS - 1 {
                acc.merge(&bins[i].0);
                c += bins[i].1;
                if c == 0 || right_count[i + 1] == 0 {
                    continue;
                }
                let cost = acc.area() * c as f32 + right_area[i + 1] * right_count[i + 1] as f32;
                if best.is_none_or(|(bc, _, _)| cost < bc) {
                    best = Some((cost, axis, lo + (i + 1) as f32 / k));
                }
            }
        }
        let leaf_cost = bounds.area() * count as f32;
        let split = match best {
            Some((cost, axis, pos)) if count > MAX_LEAF || cost < leaf_cost => {
                let slice = &mut order[start..end];
                let mut i = 0;
                let mut j = slice.len();
                while i < j {
                    if centroids[slice[i] as usize][axis] < pos {
                        i += 1;
                    } else {
                        j -= 1;
                        slice.swap(i, j);
                    }
                }
                if i == 0 || i == slice.len() {
                    None
                } else {
                    Some((axis, start + i))
                }
            }
            _ => None,
        };
        let (axis, mid) = match split {
            Some(s) => s,
            None if count > MAX_LEAF => {
                // Degenerate centroids: split the list in half.
                let axis = (0..3)
                    .max_by(|&x, &y| {
                        (bounds.max[x] - bounds.min[x]).total_cmp(&(bounds.max[y] - bounds.min[y]))
                    })
                    .unwrap_or(0);
                (axis, start + count / 2)
            }
            None => {
                nodes[ni] = leaf;
                continue;
            }
        };
        let left = nodes.len();
        nodes.push(leaf);
        nodes.push(leaf);
        nodes[ni] = Node {
            min: bounds.min,
            max: bounds.max,
            a: left as u32,
            count: 0,
            axis: axis as u32,
        };
        work.push((left, start, mid, depth + 1));
        work.push((left + 1, mid, end, depth + 1));
    }
    Bvh { nodes, order }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_triangle_in_exactly_one_leaf() {
        let mut tris = Vec::new();
        for i in 0..1000 {
            let x = (i % 10) as f32;
            let y = ((i / 10) % 10) as f32;
            let z = (i / 100) as f32;
            tris.push([[x, y, z], [x + 0.5, y, z], [x, y + 0.5, z]]);
        }
        // Many identical triangles too (degenerate centroids).
        for _ in 0..100 {
            tris.push([[0.0; 3], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]);
        }
        let bvh = build(&tris);
        let mut seen = vec![0u32; tris.len()];
        for n in &bvh.nodes {
            if n.count > 0 {
                assert!(n.count as usize <= MAX_LEAF || n.count <= 100);
                for k in n.a..n.a + n.count {
                    seen[bvh.order[k as usize] as usize] += 1;
                }
            }
        }
        assert!(seen.iter().all(|&c| c == 1));
        assert!(bvh.nodes.len() < 2 * tris.len());
    }
}
