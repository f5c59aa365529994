//! Tile jobs: each frame split into a grid of rectangles, each rendered as
//! a task of its own (possibly by different workers) and stitched back
//! into the whole frame once every tile is accepted.
//!
//! The renderers are deterministic per pixel (a pixel's samples depend on
//! the scene, settings, frame and the pixel itself, never on the region
//! rendered), so the stitched frame is bit-identical to the frame rendered
//! whole.

use serde::{Deserialize, Serialize};

use crate::image::Rect;

/// The most tiles one frame may be split into: every tile is a lease, a
/// verification round and a payment, so a grid beyond this costs the
/// network far more than it saves.
pub const MAX_TILES_PER_FRAME: u32 = 1024;

/// A grid of `columns` × `rows` tiles over every frame of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TileGrid {
    /// Tiles across.
    pub columns: u32,
    /// Tiles down.
    pub rows: u32,
}

impl TileGrid {
    /// A grid of `columns` × `rows` tiles.
    pub fn new(columns: u32, rows: u32) -> Self {
        Self { columns, rows }
    }

    /// Tiles per frame.
    pub fn count(&self) -> u64 {
        u64::from(self.columns) * u64::from(self.rows)
    }

    /// Checks the grid against a `width`×`height` frame: at least one tile
    /// each way, at most [`MAX_TILES_PER_FRAME`], and every tile at least
    /// one pixel wide and high.
    pub fn validate(&self, width: u32, height: u32) -> Result<(), TileError> {
        if self.columns == 0 || self.rows == 0 {
            return Err(TileError::Empty { grid: *self });
        }
        if self.count() > u64::from(MAX_TILES_PER_FRAME) {
            return Err(TileError::TooMany {
                grid: *self,
                max: MAX_TILES_PER_FRAME,
            });
        }
        if self.columns > width || self.rows > height {
            return Err(TileError::MorePixels {
                grid: *self,
                width,
                height,
            });
        }
        Ok(())
    }

    /// The tiles of a `width`×`height` frame, row by row from the top
    /// left. Column `i` spans `i·W/columns .. (i+1)·W/columns` (rows
    /// alike), so uneven divisions still cover every pixel exactly once
    /// and tiles differ in size by at most one pixel. Empty when the grid
    /// does not [validate](Self::validate).
    pub fn rects(&self, width: u32, height: u32) -> Vec<Rect> {
        if self.validate(width, height).is_err() {
            return Vec::new();
        }
        let edge = |i: u32, n: u32, len: u32| (u64::from(i) * u64::from(len) / u64::from(n)) as u32;
        let mut out = Vec::with_capacity(self.count() as usize);
        for r in 0..self.rows {
            let (y0, y1) = (edge(r, self.rows, height), edge(r + 1, self.rows, height));
            for c in 0..self.columns {
                let (x0, x1) = (
                    edge(c, self.columns, width),
                    edge(c + 1, self.columns, width),
                );
                out.push(Rect::new(x0, y0, x1 - x0, y1 - y0));
            }
        }
        out
    }
}

impl std::fmt::Display for TileGrid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}", self.columns, self.rows)
    }
}

impl std::str::FromStr for TileGrid {
    type Err = TileError;

    /// Parses `COLUMNSxROWS`, e.g. `4x4`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || TileError::Unparsable(s.to_string());
        let (c, r) = s.trim().split_once(['x', 'X']).ok_or_else(bad)?;
        Ok(Self {
            columns: c.trim().parse().map_err(|_| bad())?,
            rows: r.trim().parse().map_err(|_| bad())?,
        })
    }
}

/// Why a tile grid was refused; every message names the `tiles` field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TileError {
    /// No column or no row.
    #[error("tiles {grid}: a grid needs at least one column and one row")]
    Empty {
        /// The grid asked.
        grid: TileGrid,
    },
    /// More tiles per frame than [`MAX_TILES_PER_FRAME`].
    #[error("tiles {grid}: more than {max} tiles per frame")]
    TooMany {
        /// The grid asked.
        grid: TileGrid,
        /// Limit.
        max: u32,
    },
    /// More columns than pixels across, or rows than pixels down.
    #[error("tiles {grid}: more tiles than pixels in a {width}x{height} frame")]
    MorePixels {
        /// The grid asked.
        grid: TileGrid,
        /// Frame width.
        width: u32,
        /// Frame height.
        height: u32,
    },
    /// Text that is not `COLUMNSxROWS`.
    #[error("tiles {0:?}: expected COLUMNSxROWS, e.g. 4x4")]
    Unparsable(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uneven_grids_cover_every_pixel_exactly_once() {
        for (w, h, c, r) in [(64, 48, 2, 2), (65, 47, 3, 4), (7, 5, 7, 5), (100, 1, 3, 1)] {
            let grid = TileGrid::new(c, r);
            let rects = grid.rects(w, h);
            assert_eq!(rects.len() as u64, grid.count());
            let mut hits = vec![0u8; (w * h) as usize];
            for t in &rects {
                assert!(t.fits_in(w, h), "{t:?} in {w}x{h}");
                for y in t.y..t.y + t.height {
                    for x in t.x..t.x + t.width {
                        hits[(y * w + x) as usize] += 1;
                    }
                }
            }
            assert!(hits.iter().all(|&n| n == 1), "{w}x{h} by {grid}");
            let widths: Vec<u32> = rects.iter().map(|t| t.width).collect();
            let (lo, hi) = (widths.iter().min().unwrap(), widths.iter().max().unwrap());
            assert!(hi - lo <= 1, "{widths:?}");
        }
        assert_eq!(
            TileGrid::new(3, 1).rects(10, 2),
            vec![
                Rect::new(0, 0, 3, 2),
                Rect::new(3, 0, 3, 2),
                Rect::new(6, 0, 4, 2)
            ]
        );
    }

    #[test]
    fn bad_grids_are_refused_and_grids_parse() {
        assert_eq!("4x4".parse(), Ok(TileGrid::new(4, 4)));
        assert_eq!(" 2X3 ".parse(), Ok(TileGrid::new(2, 3)));
        assert!(matches!(
            "4".parse::<TileGrid>(),
            Err(TileError::Unparsable(_))
        ));
        assert!(matches!(
            "ax2".parse::<TileGrid>(),
            Err(TileError::Unparsable(_))
        ));
        let g = TileGrid::new(0, 2);
        assert_eq!(g.validate(64, 48), Err(TileError::Empty { grid: g }));
        assert!(g.rects(64, 48).is_empty());
        let g = TileGrid::new(65, 1);
        assert!(matches!(
            g.validate(64, 48),
            Err(TileError::MorePixels { .. })
        ));
        let g = TileGrid::new(u32::MAX, u32::MAX);
        assert!(matches!(g.validate(64, 48), Err(TileError::TooMany { .. })));
        assert!(TileGrid::new(64, 16).validate(64, 48).is_ok());
        assert!(TileError::Empty {
            grid: TileGrid::new(0, 2)
        }
        .to_string()
        .starts_with("tiles 0x2"));
    }
}
