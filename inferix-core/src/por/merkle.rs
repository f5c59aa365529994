//! A Merkle commitment over the tiles of a frame.
//!
//! The worker commits to the root before challenges are drawn; to answer a
//! crop challenge it opens the tiles the crop touches, and the verifier
//! checks each tile's pixels against the root. Leaves hash the tile's index
//! and its decoded pixels, so neither can be swapped.

use serde::{Deserialize, Serialize};

use crate::image::{Rect, Rgb8Image};
use crate::ContentHash;

/// Tile edge in pixels.
pub const TILE: u32 = 32;

/// The tile grid of a `width`×`height` frame, row-major.
pub fn tiles(width: u32, height: u32) -> Vec<Rect> {
    let mut out = Vec::new();
    for y in (0..height).step_by(TILE as usize) {
        for x in (0..width).step_by(TILE as usize) {
            out.push(Rect::new(x, y, TILE.min(width - x), TILE.min(height - y)));
        }
    }
    out
}

/// Indices of the tiles that `rect` touches.
pub fn tiles_touching(width: u32, height: u32, rect: Rect) -> Vec<usize> {
    tiles(width, height)
        .iter()
        .enumerate()
        .filter(|(_, t)| t.overlaps(&rect))
        .map(|(i, _)| i)
        .collect()
}

fn leaf(index: usize, pixels: &Rgb8Image) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(b"leaf");
    h.update(&(index as u64).to_le_bytes());
    h.update(&pixels.width.to_le_bytes());
    h.update(&pixels.height.to_le_bytes());
    h.update(&pixels.pixels);
    if let Some(a) = &pixels.alpha {
        h.update(b"alpha");
        h.update(a);
    }
    *h.finalize().as_bytes()
}

fn node(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(b"node");
    h.update(a);
    h.update(b);
    *h.finalize().as_bytes()
}

/// All levels of the tree, leaves first; an odd node is carried up as is.
fn levels(leaves: Vec<[u8; 32]>) -> Vec<Vec<[u8; 32]>> {
    let mut levels = vec![leaves];
    while levels.last().is_some_and(|l| l.len() > 1) {
        let prev = levels.last().expect("non-empty");
        let next = prev
            .chunks(2)
            .map(|c| {
                if c.len() == 2 {
                    node(&c[0], &c[1])
                } else {
                    c[0]
                }
            })
            .collect();
        levels.push(next);
    }
    levels
}

/// The tree over one frame's tiles.
pub struct TileTree {
    width: u32,
    height: u32,
    levels: Vec<Vec<[u8; 32]>>,
}

/// A tile's pixels and the sibling hashes up to the root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TileProof {
    /// Tile index in the grid.
    pub index: usize,
    /// The tile's pixels.
    pub pixels: Rgb8Image,
    /// Sibling hash per level; `None` where the node had no sibling.
    pub path: Vec<Option<ContentHash>>,
}

impl TileTree {
    /// Builds the tree of `img`.
    pub fn build(img: &Rgb8Image) -> Self {
        let leaves = tiles(img.width, img.height)
            .into_iter()
            .enumerate()
            .map(|(i, r)| leaf(i, &img.crop(r)))
            .collect();
        Self {
            width: img.width,
            height: img.height,
            levels: levels(leaves),
        }
    }

    /// The commitment.
    pub fn root(&self) -> ContentHash {
        ContentHash(
            self.levels
                .last()
                .and_then(|l| l.first())
                .copied()
                .unwrap_or([0; 32]),
        )
    }

    /// Opens tile `index` of `img` (the image the tree was built from).
    pub fn prove(&self, img: &Rgb8Image, index: usize) -> Option<TileProof> {
        let rect = *tiles(self.width, self.height).get(index)?;
        let mut path = Vec::new();
        let mut i = index;
        for level in &self.levels[..self.levels.len() - 1] {
            let sib = i ^ 1;
            path.push(level.get(sib).map(|h| ContentHash(*h)));
            i /= 2;
        }
        Some(TileProof {
            index,
            pixels: img.crop(rect),
            path,
        })
    }
}

/// Checks a tile opening against a committed root for a frame of the given
/// size: right tile dimensions, and the hashes lead to the root.
pub fn verify_tile(root: ContentHash, width: u32, height: u32, proof: &TileProof) -> bool {
    let grid = tiles(width, height);
    let Some(rect) = grid.get(proof.index) else {
        return false;
    };
    if proof.pixels.width != rect.width
        || proof.pixels.height != rect.height
        || proof.pixels.pixels.len() != rect.area() as usize * 3
    {
        return false;
    }
    // The path length is fixed by the grid size; a longer or shorter one
    // would let a forger pick where the climb ends.
    let mut n = grid.len();
    let mut depth = 0;
    while n > 1 {
        n = n.div_ceil(2);
        depth += 1;
    }
    if proof.path.len() != depth {
        return false;
    }
    let mut h = leaf(proof.index, &proof.pixels);
    let mut i = proof.index;
    for sib in &proof.path {
        h = match sib {
            Some(s) if i % 2 == 0 => node(&h, &s.0),
            Some(s) => node(&s.0, &h),
            None => h,
        };
        i /= 2;
    }
    h == root.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(w: u32, h: u32, seed: u8) -> Rgb8Image {
        Rgb8Image {
            width: w,
            height: h,
            pixels: (0..w * h * 3)
                .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
                .collect(),
            alpha: None,
        }
    }

    #[test]
    fn every_tile_opens_and_tampering_is_caught() {
        let im = img(100, 70, 1);
        let tree = TileTree::build(&im);
        let n = tiles(100, 70).len();
        assert_eq!(n, 4 * 3);
        for i in 0..n {
            let p = tree.prove(&im, i).unwrap();
            assert!(verify_tile(tree.root(), 100, 70, &p), "tile {i}");
            let mut bad = p.clone();
            bad.pixels.pixels[0] ^= 1;
            assert!(
                !verify_tile(tree.root(), 100, 70, &bad),
                "flipped pixel in tile {i}"
            );
            let mut moved = p.clone();
            moved.index = (i + 1) % n;
            assert!(
                !verify_tile(tree.root(), 100, 70, &moved),
                "tile moved from {i}"
            );
        }
        assert_ne!(TileTree::build(&img(100, 70, 2)).root(), tree.root());
        assert!(tree.prove(&im, n).is_none());
    }

    #[test]
    fn crops_map_to_the_tiles_they_touch() {
        assert_eq!(tiles_touching(100, 70, Rect::new(0, 0, 1, 1)), vec![0]);
        assert_eq!(
            tiles_touching(100, 70, Rect::new(30, 30, 4, 4)),
            vec![0, 1, 4, 5]
        );
    }
}
