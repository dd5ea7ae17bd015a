//! Counter-based random numbers for the samplers: the value for (key, call, row, candidate) is a
//! pure function of those four numbers, so results do not depend on how rows and candidates are
//! split between threads, and successive calls (a new `call`) draw anew.
//!
//! The generator is SplitMix64 (Steele, Lea and Flood 2014; the seeding generator of the
//! xoshiro family), whose state advances by a constant: the n-th output of a stream is
//! `mix(start + n * GAMMA)`, so any position can be reached in O(1). Each (key, call, row) gets
//! its own stream start by mixing those numbers.

const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function (a bijective 64-bit mixer).
#[inline(always)]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The stream of one row in one call.
#[derive(Clone, Copy, Debug)]
pub struct Stream {
    start: u64,
}

impl Stream {
    pub fn new(key: u64, call: u64, row: u64) -> Self {
        let start =
            mix(mix(key ^ mix(call.wrapping_add(GAMMA))).wrapping_add(row.wrapping_mul(GAMMA)));
        Self { start }
    }

    /// The 64 random bits at position `index` of the stream.
    #[inline(always)]
    pub fn bits(&self, index: u64) -> u64 {
        mix(self.start.wrapping_add(index.wrapping_mul(GAMMA)))
    }

    /// A uniform float in (0, 1) (24 random bits, never 0 or 1).
    #[inline(always)]
    pub fn uniform(&self, index: u64) -> f32 {
        ((self.bits(index) >> 40) as f32 + 0.5) * (1.0 / 16_777_216.0)
    }
}
