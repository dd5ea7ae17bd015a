//! Packing of GEMM operands into the micro-kernel's strips (Goto's scheme, see `mod.rs`): the
//! one place that reads the strided views, so the micro-kernel only sees contiguous panels.
//!
//! Row-major sources are transposed into strips in fixed 4 x 8 and 8 x 8 blocks; on x86-64 with
//! AVX these are register shuffles (`_mm256_unpack*`, `_mm256_shuffle_ps`, `_mm256_permute2f128`),
//! since LLVM turns the equivalent array code into one scalar move per element (measured: packing
//! the 1024 x 256 pool of in-batch InfoNCE as B took 163 us that way, 40 us with the shuffles).
//! Column-contiguous sources (transposed views) are copied in runs instead.

use super::MatRef;

/// The block of a view that one `pack` call copies: rows `o0..o0 + count` (the lanes of the
/// strips) by columns `d0..d0 + depth` (the depth steps).
#[derive(Clone, Copy)]
pub(super) struct Region<'a> {
    pub(super) x: MatRef<'a>,
    pub(super) o0: usize,
    pub(super) count: usize,
    pub(super) d0: usize,
    pub(super) depth: usize,
}

// Packs a region into strips of `width` rows: strip s holds, for each depth step, the `width`
// values of its rows (zero past `count`). The source is read along whichever axis is
// contiguous. Compiled per SIMD path, so that the short fixed-size copies are vector moves, not
// memcpy calls.
crate::dispatch_simd!(pub(super) fn pack(out: &mut [f32], width: usize, region: Region<'_>) => pack_generic);

#[inline(always)]
fn pack_generic(out: &mut [f32], width: usize, region: Region<'_>) {
    let Region {
        x,
        o0,
        count,
        d0,
        depth,
    } = region;
    if x.row_stride == 1 && x.col_stride != 1 {
        pack_columns(out, width, region);
        return;
    }
    let transpose = Transposer::for_active_path();
    for (strip, dst) in out.chunks_exact_mut(width * depth).enumerate() {
        let first = strip * width;
        if first >= count {
            break;
        }
        let rows = width.min(count - first);
        if rows < width {
            dst.fill(0.0);
        }
        if x.col_stride == 1 {
            transpose_rows(dst, width, rows, region, o0 + first, transpose);
        } else {
            for (p, step) in dst.chunks_exact_mut(width).enumerate() {
                for (r, v) in step.iter_mut().enumerate().take(rows) {
                    *v = x.at(o0 + first + r, d0 + p);
                }
            }
        }
    }
}

/// One strip from `rows` contiguous source rows starting at `row0`: a transpose. The depth is
/// taken in chunks of 8 so that each row is read in runs and the packed steps being written stay
/// in L1; full strips of the tile widths go through fixed blocks (shuffles with AVX).
#[inline(always)]
fn transpose_rows(
    dst: &mut [f32],
    width: usize,
    rows: usize,
    region: Region<'_>,
    row0: usize,
    transpose: Transposer,
) {
    let Region { x, d0, depth, .. } = region;
    let mut p0 = 0;
    if width.is_multiple_of(8) && rows == width {
        // The B strips (64 wide for AVX-512, 16 for AVX2) and 8-wide strips: 8 x 8 blocks, 16
        // steps at a time so that every row is read a whole cache line at once and the 16 steps
        // written are one contiguous run of the strip.
        while p0 + 16 <= depth {
            for r0 in (0..width).step_by(8) {
                let start = (row0 + r0) * x.row_stride + d0 + p0;
                for half in [0, 8] {
                    transpose.block_8x8(
                        &mut dst[(p0 + half) * width + r0..],
                        width,
                        &x.data[start + half..],
                        x.row_stride,
                    );
                }
            }
            p0 += 16;
        }
    }
    if width == 4 && rows == 4 {
        // The A strips of the AVX-512 and portable tiles: fixed 4 x 8 blocks.
        while p0 + 8 <= depth {
            let start = row0 * x.row_stride + d0 + p0;
            transpose.block_4x8(
                &mut dst[p0 * 4..(p0 + 8) * 4],
                &x.data[start..],
                x.row_stride,
            );
            p0 += 8;
        }
    }
    while p0 < depth {
        let chunk = 8.min(depth - p0);
        for r in 0..rows {
            let start = (row0 + r) * x.row_stride + d0 + p0;
            for (q, &v) in x.data[start..start + chunk].iter().enumerate() {
                dst[(p0 + q) * width + r] = v;
            }
        }
        p0 += chunk;
    }
}

/// `pack` of a view whose columns are contiguous (`row_stride == 1`: a transposed row-major
/// matrix): each depth step's `count` values are adjacent in the source. The source is read
/// along those runs (strip by strip, narrow A strips would use 16 bytes of each line and come
/// back to it later), and the strips are written a cache line at a time: a few depth steps per
/// strip before moving on (one step at a time would write 16 bytes to each of many strips
/// `depth` floats apart, which map to the same L1 set).
#[inline(always)]
fn pack_columns(out: &mut [f32], width: usize, region: Region<'_>) {
    let Region {
        x,
        o0,
        count,
        d0,
        depth,
    } = region;
    let strips = count.div_ceil(width);
    let full = count / width;
    let out = &mut out[..strips * width * depth];
    if full < strips {
        out[full * width * depth..].fill(0.0);
    }
    let step = |p: usize| {
        let start = (d0 + p) * x.col_stride + o0;
        &x.data[start..start + count]
    };
    // One loop per tile width, each with copies of fixed size (a few vector moves): a loop with
    // a `match` on the length inside gets merged back into a memcpy call per copy.
    match width {
        4 => scatter_steps::<4>(out, step, depth, full),
        6 => scatter_steps::<6>(out, step, depth, full),
        8 => scatter_steps::<8>(out, step, depth, full),
        16 => scatter_steps::<16>(out, step, depth, full),
        64 => scatter_steps::<64>(out, step, depth, full),
        _ => {
            for p in 0..depth {
                let src = step(p);
                for s in 0..full {
                    let at = s * width * depth + p * width;
                    out[at..at + width].copy_from_slice(&src[s * width..(s + 1) * width]);
                }
            }
        }
    }
    if full < strips {
        for p in 0..depth {
            let rest = &step(p)[full * width..];
            let at = full * width * depth + p * width;
            out[at..at + rest.len()].copy_from_slice(rest);
        }
    }
}

/// The first `full` strips of width `W`, from the depth steps `step(p)`, in groups of steps that
/// fill a 64-byte line of a strip.
#[inline(always)]
fn scatter_steps<'s, const W: usize>(
    out: &mut [f32],
    step: impl Fn(usize) -> &'s [f32],
    depth: usize,
    full: usize,
) {
    let group = (16 / W).max(1);
    for p0 in (0..depth).step_by(group) {
        let steps = group.min(depth - p0);
        let mut sources: [&[f32]; 16] = [&[]; 16];
        for (q, src) in sources.iter_mut().enumerate().take(steps) {
            *src = step(p0 + q);
        }
        for s in 0..full {
            for (q, src) in sources.iter().enumerate().take(steps) {
                let at = s * W * depth + (p0 + q) * W;
                let to: &mut [f32; W] = (&mut out[at..at + W]).try_into().expect("W floats");
                *to = src[s * W..(s + 1) * W].try_into().expect("W floats");
            }
        }
    }
}

/// Transposes of small blocks: `dst[q * dst_stride + r] = src[r * src_stride + q]`.
///
/// With AVX they are shuffles; `avx` must only be true when the CPU has AVX (both the AVX2 and
/// the AVX-512 paths imply it: callers pass `simd::active() != Baseline`).
#[derive(Clone, Copy)]
struct Transposer {
    #[cfg(x86_simd)]
    avx: bool,
}

impl Transposer {
    fn for_active_path() -> Self {
        Self {
            #[cfg(x86_simd)]
            avx: crate::simd::active() != crate::simd::SimdPath::Baseline,
        }
    }

    /// An 8 x 8 block.
    #[inline(always)]
    fn block_8x8(self, dst: &mut [f32], dst_stride: usize, src: &[f32], src_stride: usize) {
        assert!(src.len() >= 7 * src_stride + 8 && dst.len() >= 7 * dst_stride + 8);
        #[cfg(x86_simd)]
        if self.avx {
            // SAFETY: AVX is present (see the type's contract); the assert above keeps every
            // 8-float load and store inside the slices.
            unsafe { avx::transpose_8x8(dst.as_mut_ptr(), dst_stride, src.as_ptr(), src_stride) };
            return;
        }
        for q in 0..8 {
            for r in 0..8 {
                dst[q * dst_stride + r] = src[r * src_stride + q];
            }
        }
    }

    /// 4 rows by 8 steps into a 4-wide strip: `dst[q * 4 + r] = src[r * stride + q]`.
    #[inline(always)]
    fn block_4x8(self, dst: &mut [f32], src: &[f32], stride: usize) {
        assert!(src.len() >= 3 * stride + 8 && dst.len() >= 32);
        #[cfg(x86_simd)]
        if self.avx {
            // SAFETY: as in `block_8x8`.
            unsafe { avx::transpose_4x8(dst.as_mut_ptr(), src.as_ptr(), stride) };
            return;
        }
        for q in 0..8 {
            for r in 0..4 {
                dst[q * 4 + r] = src[r * stride + q];
            }
        }
    }
}

#[cfg(x86_simd)]
mod avx {
    use std::arch::x86_64::*;

    /// Four rows of 8 into four registers of two 4-row steps each: register `i` holds steps `i`
    /// (low half) and `i + 4` (high half), rows in order. Pairs of rows interleaved, then pairs of
    /// pairs.
    #[target_feature(enable = "avx")]
    #[inline]
    fn interleave_4(r: [__m256; 4]) -> [__m256; 4] {
        let t0 = _mm256_unpacklo_ps(r[0], r[1]);
        let t1 = _mm256_unpackhi_ps(r[0], r[1]);
        let t2 = _mm256_unpacklo_ps(r[2], r[3]);
        let t3 = _mm256_unpackhi_ps(r[2], r[3]);
        [
            _mm256_shuffle_ps::<0x44>(t0, t2),
            _mm256_shuffle_ps::<0xEE>(t0, t2),
            _mm256_shuffle_ps::<0x44>(t1, t3),
            _mm256_shuffle_ps::<0xEE>(t1, t3),
        ]
    }

    /// # Safety
    /// AVX present; `src + r * src_stride + [0, 8)` readable and `dst + q * dst_stride + [0, 8)`
    /// writable for r, q < 8.
    #[target_feature(enable = "avx")]
    pub(super) unsafe fn transpose_8x8(
        dst: *mut f32,
        dst_stride: usize,
        src: *const f32,
        src_stride: usize,
    ) {
        // SAFETY: the caller's contract covers every pointer below.
        unsafe {
            let row = |i: usize| _mm256_loadu_ps(src.add(i * src_stride));
            let top = interleave_4([row(0), row(1), row(2), row(3)]);
            let bottom = interleave_4([row(4), row(5), row(6), row(7)]);
            // Step q < 4: the low halves of rows 0-3 and 4-7; step q + 4: the high halves.
            for q in 0..4 {
                let low = _mm256_permute2f128_ps::<0x20>(top[q], bottom[q]);
                let high = _mm256_permute2f128_ps::<0x31>(top[q], bottom[q]);
                _mm256_storeu_ps(dst.add(q * dst_stride), low);
                _mm256_storeu_ps(dst.add((q + 4) * dst_stride), high);
            }
        }
    }

    /// # Safety
    /// AVX present; `src + r * stride + [0, 8)` readable for r < 4, `dst + [0, 32)` writable.
    #[target_feature(enable = "avx")]
    pub(super) unsafe fn transpose_4x8(dst: *mut f32, src: *const f32, stride: usize) {
        // SAFETY: the caller's contract covers every pointer below.
        unsafe {
            let row = |i: usize| _mm256_loadu_ps(src.add(i * stride));
            let u = interleave_4([row(0), row(1), row(2), row(3)]);
            // Output register j holds steps 2j and 2j + 1 (4 rows each).
            let out = [
                _mm256_permute2f128_ps::<0x20>(u[0], u[1]),
                _mm256_permute2f128_ps::<0x20>(u[2], u[3]),
                _mm256_permute2f128_ps::<0x31>(u[0], u[1]),
                _mm256_permute2f128_ps::<0x31>(u[2], u[3]),
            ];
            for (j, v) in out.into_iter().enumerate() {
                _mm256_storeu_ps(dst.add(j * 8), v);
            }
        }
    }
}
