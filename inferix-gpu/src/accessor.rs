//! Bounds-checked reading of glTF accessors (dense and sparse).
//!
//! Every range is checked against its buffer view and buffer before any
//! element is read, so truncated or hostile files give an error, never a
//! panic or an oversized allocation.

use gltf::accessor::{DataType, Dimensions};

use crate::scene::{check_finite, SceneError, MAX_TRIANGLES};

macro_rules! bail {
    ($($t:tt)*) => { return Err(SceneError(format!($($t)*))) };
}

/// Typed accessor reading with full bounds checks.
pub(crate) struct Reader<'a> {
    pub(crate) buffers: &'a [Vec<u8>],
}

impl Reader<'_> {
    /// Reads `count` elements of `comps` components as f32 (normalising
    /// ints), with sparse substitutions applied.
    pub(crate) fn floats(
        &self,
        acc: &gltf::Accessor,
        comps: usize,
        what: &str,
    ) -> Result<Vec<f32>, SceneError> {
        let dims = acc.dimensions().multiplicity();
        if dims != comps {
            bail!("{what}: expected {comps} components, found {dims}");
        }
        let count = acc.count();
        let n = count
            .checked_mul(comps)
            .ok_or_else(|| SceneError(format!("{what}: count overflow")))?;
        if n > MAX_TRIANGLES * 9 {
            bail!("{what}: {count} elements is over the limit");
        }
        let (dt, norm) = (acc.data_type(), acc.normalized());
        let mut out = match acc.view() {
            Some(view) => self.elements(&view, acc.offset(), count, comps, dt, norm, what)?,
            None => vec![0.0; n],
        };
        if let Some(sp) = acc.sparse() {
            let k = sp.count();
            if k > count {
                bail!("{what}: {k} sparse values for {count} elements");
            }
            let idx = sp.indices();
            let itype = match idx.index_type() {
                gltf::accessor::sparse::IndexType::U8 => DataType::U8,
                gltf::accessor::sparse::IndexType::U16 => DataType::U16,
                gltf::accessor::sparse::IndexType::U32 => DataType::U32,
            };
            let at = self.elements(&idx.view(), idx.offset(), k, 1, itype, false, what)?;
            let vals = sp.values();
            let values = self.elements(&vals.view(), vals.offset(), k, comps, dt, norm, what)?;
            for (j, &i) in at.iter().enumerate() {
                let i = i as usize;
                if i >= count {
                    bail!("{what}: sparse index {i} out of range ({count} elements)");
                }
                out[i * comps..(i + 1) * comps]
                    .copy_from_slice(&values[j * comps..(j + 1) * comps]);
            }
        }
        check_finite(&out, what)?;
        Ok(out)
    }

    /// `count` elements of `comps` components of type `dt` from `view`
    /// starting at byte `offset`, bounds-checked.
    #[allow(clippy::too_many_arguments)]
    fn elements(
        &self,
        view: &gltf::buffer::View,
        offset: usize,
        count: usize,
        comps: usize,
        dt: DataType,
        norm: bool,
        what: &str,
    ) -> Result<Vec<f32>, SceneError> {
        let n = count * comps;
        let csize = dt.size();
        let elem = csize * comps;
        let stride = view.stride().unwrap_or(elem);
        if stride < elem {
            bail!("{what}: stride {stride} smaller than element size {elem}");
        }
        let buf = self
            .buffers
            .get(view.buffer().index())
            .ok_or_else(|| SceneError(format!("{what}: missing buffer")))?;
        let vstart = view.offset();
        let vend = vstart
            .checked_add(view.length())
            .filter(|&e| e <= buf.len())
            .ok_or_else(|| {
                SceneError(format!(
                    "{what}: buffer view exceeds its buffer ({} bytes)",
                    buf.len()
                ))
            })?;
        let data = &buf[vstart..vend];
        if count > 0 {
            let need = offset
                .checked_add(stride.saturating_mul(count - 1))
                .and_then(|x| x.checked_add(elem));
            if need.is_none_or(|need| need > data.len()) {
                bail!("{what}: accessor reads past the end of its buffer view (truncated buffer?)");
            }
        }
        let mut out = Vec::with_capacity(n);
        for i in 0..count {
            let base = offset + i * stride;
            for c in 0..comps {
                let o = base + c * csize;
                let v = match dt {
                    DataType::F32 => {
                        f32::from_le_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]])
                    }
                    DataType::U8 => {
                        let v = data[o] as f32;
                        if norm {
                            v / 255.0
                        } else {
                            v
                        }
                    }
                    DataType::I8 => {
                        let v = data[o] as i8 as f32;
                        if norm {
                            (v / 127.0).max(-1.0)
                        } else {
                            v
                        }
                    }
                    DataType::U16 => {
                        let v = u16::from_le_bytes([data[o], data[o + 1]]) as f32;
                        if norm {
                            v / 65535.0
                        } else {
                            v
                        }
                    }
                    DataType::I16 => {
                        let v = i16::from_le_bytes([data[o], data[o + 1]]) as f32;
                        if norm {
                            (v / 32767.0).max(-1.0)
                        } else {
                            v
                        }
                    }
                    DataType::U32 => {
                        u32::from_le_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]]) as f32
                    }
                };
                out.push(v);
            }
        }
        Ok(out)
    }

    pub(crate) fn indices(
        &self,
        acc: &gltf::Accessor,
        vertex_count: usize,
    ) -> Result<Vec<u32>, SceneError> {
        if acc.dimensions() != Dimensions::Scalar {
            bail!("indices must be scalars");
        }
        if !matches!(
            acc.data_type(),
            DataType::U8 | DataType::U16 | DataType::U32
        ) {
            bail!("indices must be unsigned integers");
        }
        if acc.count() > MAX_TRIANGLES * 3 {
            bail!(
                "index count {} is over the {} triangle limit",
                acc.count(),
                MAX_TRIANGLES
            );
        }
        let raw = self.raw_u32(acc)?;
        if let Some(bad) = raw.iter().find(|&&i| i as usize >= vertex_count) {
            bail!("vertex index {bad} out of range ({vertex_count} vertices)");
        }
        Ok(raw)
    }

    fn raw_u32(&self, acc: &gltf::Accessor) -> Result<Vec<u32>, SceneError> {
        // Integers up to 2^24 are exact in f32, but u32 indices may exceed it:
        // read them directly.
        if acc.data_type() != DataType::U32 {
            return Ok(self
                .floats(acc, 1, "indices")?
                .into_iter()
                .map(|v| v as u32)
                .collect());
        }
        let count = acc.count();
        let Some(view) = acc.view() else {
            return Ok(vec![0; count]);
        };
        if acc.sparse().is_some() {
            // Rare for indices: read through the general path.
            return Ok(self
                .floats(acc, 1, "indices")?
                .into_iter()
                .map(|v| v as u32)
                .collect());
        }
        let stride = view.stride().unwrap_or(4).max(4);
        let buf = self
            .buffers
            .get(view.buffer().index())
            .ok_or_else(|| SceneError("indices: missing buffer".into()))?;
        let vend = view
            .offset()
            .checked_add(view.length())
            .filter(|&e| e <= buf.len())
            .ok_or_else(|| SceneError("indices: buffer view exceeds its buffer".into()))?;
        let data = &buf[view.offset()..vend];
        if count > 0 {
            let need = acc
                .offset()
                .checked_add(stride.saturating_mul(count - 1))
                .and_then(|x| x.checked_add(4));
            if need.is_none_or(|need| need > data.len()) {
                bail!(
                    "indices: accessor reads past the end of its buffer view (truncated buffer?)"
                );
            }
        }
        Ok((0..count)
            .map(|i| {
                let o = acc.offset() + i * stride;
                u32::from_le_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]])
            })
            .collect())
    }
}
