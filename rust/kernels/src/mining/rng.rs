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

/// The corpus miner's draw for (query, corpus row): a uniform number in [0, 1) with 53 random
/// bits, a pure function of `(seed, query, row)`, so a seeded draw never depends on chunking,
/// blocks or threads. (Its own mixing of the three numbers, kept from its first release so that
/// seeded results stay the same; the output function is SplitMix64's `mix`.)
#[inline(always)]
pub fn corpus_key(seed: u64, query: u64, row: u64) -> f64 {
    corpus_key_bits(seed, query, row) as f64 * (1.0 / 9_007_199_254_740_992.0)
}

/// The 53 random bits behind `corpus_key` (`corpus_key` is this times 2^-53, exactly): the
/// same order, as an integer the preselection's draw lists compare.
#[inline(always)]
pub fn corpus_key_bits(seed: u64, query: u64, row: u64) -> u64 {
    let z = seed ^ query.wrapping_mul(GAMMA) ^ row.wrapping_mul(0xD1B5_4A32_D192_ED03);
    mix(z) >> 11
}

/// `corpus_key` for each pair.
pub fn corpus_keys(seed: u64, queries: &[i64], rows: &[i64], out: &mut [f64]) {
    for ((o, &q), &r) in out.iter_mut().zip(queries).zip(rows) {
        *o = corpus_key(seed, q as u64, r as u64);
    }
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
