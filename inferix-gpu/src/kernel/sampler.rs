//! Per-pixel random numbers: the PCG hash and stream of the former
//! independent sampler, and Owen-scrambled Sobol points keyed by the pixel,
//! so a pixel's samples depend on nothing but its own key.

use cubecl::prelude::*;

/// PCG-style integer hash (same as [`crate::rng::pcg_hash`]).
#[cube]
pub(super) fn pcg(v: u32) -> u32 {
    let state = v * 747796405u32 + 2891336453u32;
    let word = ((state >> ((state >> 28u32) + 4u32)) ^ state) * 277803737u32;
    (word >> 22u32) ^ word
}

/// Next uniform float in [0, 1) from a 32-bit state.
#[cube]
pub(super) fn rnd(state: &mut u32) -> f32 {
    let s = *state * 747796405u32 + 2891336453u32;
    *state = s;
    let word = ((s >> ((s >> 28u32) + 4u32)) ^ s) * 277803737u32;
    let r = (word >> 22u32) ^ word;
    f32::cast_from(r >> 8u32) * (1.0 / 16777216.0)
}

/// Two sample values in [0, 1).
#[derive(CubeType, Clone, Copy)]
pub(crate) struct P2 {
    pub(super) a: f32,
    pub(super) b: f32,
}

/// Reverses the 32 bits of `v` (with shifts every backend has).
#[allow(clippy::manual_rotate)]
#[cube]
pub(super) fn reverse32(v: u32) -> u32 {
    let mut x = v;
    x = ((x >> 1u32) & 0x5555_5555u32) | ((x & 0x5555_5555u32) << 1u32);
    x = ((x >> 2u32) & 0x3333_3333u32) | ((x & 0x3333_3333u32) << 2u32);
    x = ((x >> 4u32) & 0x0F0F_0F0Fu32) | ((x & 0x0F0F_0F0Fu32) << 4u32);
    x = ((x >> 8u32) & 0x00FF_00FFu32) | ((x & 0x00FF_00FFu32) << 8u32);
    (x >> 16u32) | (x << 16u32)
}

/// Nested uniform (Owen) scrambling of the bits of `v`, keyed by `seed`:
/// the Laine–Karras permutation on reversed bits (Burley 2020).
#[cube]
pub(super) fn owen(v: u32, seed: u32) -> u32 {
    let mut x = reverse32(v);
    x += seed;
    x ^= x * 0x6C50_B47Cu32;
    x ^= x * 0xB82F_1E52u32;
    x ^= x * 0xC7AF_E638u32;
    x ^= x * 0x8D22_F6E6u32;
    reverse32(x)
}

/// The first two dimensions of the Sobol sequence at `index`, as 32-bit
/// fractions: van der Corput, and the dimension whose direction numbers
/// are v_k = v_{k-1} ^ (v_{k-1} >> 1).
#[cube]
pub(super) fn sobol_y(index: u32) -> u32 {
    let mut v: u32 = 0x8000_0000u32;
    let mut y: u32 = 0;
    for bit in 0..32u32 {
        if ((index >> bit) & 1u32) != 0u32 {
            y ^= v;
        }
        v ^= v >> 1u32;
    }
    y
}

#[cube]
pub(super) fn unit(bits: u32) -> f32 {
    f32::cast_from(bits >> 8u32) * (1.0 / 16777216.0)
}

/// Two sample values for dimension pair `group` of sample `index` of the
/// pixel keyed `key`: an Owen-scrambled 2D Sobol point whose index is
/// itself shuffled per pair (Burley 2020), so pairs are decorrelated while
/// each stays stratified over the pixel's samples. With `low_discrepancy`
/// off, two independent uniform numbers from `rng` (the former sampler,
/// kept for comparisons).
#[allow(unused_assignments)]
#[cube]
pub(super) fn draw2(rng: &mut u32, key: u32, index: u32, group: u32, low_discrepancy: bool) -> P2 {
    let mut a: f32 = 0.0;
    let mut b: f32 = 0.0;
    if low_discrepancy {
        let gk = pcg(key ^ pcg(group + 0x2545_F491u32));
        let shuffled = owen(index, gk);
        a = unit(owen(reverse32(shuffled), pcg(gk ^ 0xA511_E9B3u32)));
        b = unit(owen(sobol_y(shuffled), pcg(gk ^ 0x63D8_3595u32)));
    } else {
        a = rnd(rng);
        b = rnd(rng);
    }
    P2 { a, b }
}
