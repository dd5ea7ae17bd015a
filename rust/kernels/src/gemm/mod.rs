//! Single-threaded blocked matrix multiply, `C (+)= A B`, on strided float32 views.
//!
//! The GEMM-shaped losses (shared-pool and in-batch InfoNCE) and the miner need three
//! products on the same data: `A B^T`, `A B` and `A^T B`. Strided views make all three one routine
//! (a transpose is a swap of strides), and the packing step absorbs the strides, so the micro-kernel
//! only ever sees contiguous panels.
//!
//! Blocking follows Goto's scheme: a `KC x NC` panel of B is packed once per block (it stays in the
//! L2/L3 cache), an `MC x KC` block of A is packed per row block (L2), and the micro-kernel keeps an
//! `MR x NR` tile of C in registers while streaming `KC` steps. The sizes come from the caches
//! of the machine it runs on (`blocking.rs`). Micro-kernels are written with
//! `std::arch` intrinsics for AVX-512 (4 x 64 tile) and AVX2+FMA (6 x 16), chosen at run time;
//! other CPUs get a portable 4 x 8 loop. Fused multiply-add rounds once, so results differ from
//! the portable path in the last bits (the losses' tests allow float32 round-off, not bit
//! identity, for GEMM-based forms). Callers parallelise over their own row blocks.

mod blocking;
mod micro;
mod pack;

pub use blocking::{Blocking, CacheSizes};

use crate::simd::{active, SimdPath};
use micro::Portable;
#[cfg(x86_simd)]
use micro::{Avx2, Avx512};
use pack::{pack, Region};

/// A read-only strided matrix view: element `(i, j)` is `data[i * row_stride + j * col_stride]`.
#[derive(Clone, Copy)]
pub struct MatRef<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// A row-major `rows x cols` matrix.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transposed view (no copy).
    pub fn t(self) -> Self {
        Self {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    /// Rows `start..start + len` (no copy).
    pub fn rows_range(self, start: usize, len: usize) -> Self {
        debug_assert!(start + len <= self.rows);
        let offset = start * self.row_stride;
        Self {
            data: if len == 0 { &[] } else { &self.data[offset..] },
            rows: len,
            ..self
        }
    }

    #[inline(always)]
    fn at(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.row_stride + j * self.col_stride]
    }

    fn fits(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride
                < self.data.len()
    }
}

/// The block sizes of `path`'s micro-kernel on this machine's caches: the one rule for the
/// blocked loop and for `PackedB`, so a packed B always matches the loop that reads it.
pub fn blocking_of(path: SimdPath) -> Blocking {
    let (mr, nr) = tile_of(path);
    Blocking::for_tile(mr, nr, CacheSizes::detected())
}

/// Packed panels start on a 64-byte boundary, so that no vector load of a B strip (a whole
/// cache line with AVX-512) straddles two lines: the allocator only promises 16 bytes, and a
/// large block from `mmap` starts 16 bytes past a page boundary.
const ALIGN_FLOATS: usize = 16;

/// Floats to skip from the start of `buffer` to its first 64-byte boundary.
fn cache_line_offset(buffer: &[f32]) -> usize {
    buffer.as_ptr().align_offset(64).min(ALIGN_FLOATS)
}

/// `len` floats of `buffer` (which holds `len + ALIGN_FLOATS`) from its first 64-byte boundary.
fn line_aligned(buffer: &mut [f32], len: usize) -> &mut [f32] {
    let start = cache_line_offset(buffer);
    &mut buffer[start..start + len]
}

/// The micro-kernel tile `(MR, NR)` of a SIMD path.
fn tile_of(path: SimdPath) -> (usize, usize) {
    match path {
        #[cfg(x86_simd)]
        SimdPath::Avx512 => (Avx512::MR, Avx512::NR),
        #[cfg(x86_simd)]
        SimdPath::Avx2 => (Avx2::MR, Avx2::NR),
        _ => (Portable::MR, Portable::NR),
    }
}

/// `c[m x n, row stride ldc] = A B` (or `+=` when `accumulate`). A is `m x k`, B is `k x n`.
///
/// Panics if the views' shapes disagree or do not fit their data: callers check their inputs, so
/// a panic here is a bug, and the Python layer turns it into an exception.
pub fn gemm(c: &mut [f32], ldc: usize, a: MatRef<'_>, b: MatRef<'_>, accumulate: bool) {
    assert!(b.fits(), "gemm: view exceeds its data");
    run(
        c,
        ldc,
        a,
        BSource::View(b),
        accumulate,
        active(),
        &mut NoEpilogue,
    );
}

/// B packed once into the micro-kernel's layout, for products that reuse the same B with many
/// row blocks of A (the pool in InfoNCE is multiplied by every block of anchors).
pub struct PackedB {
    k: usize,
    n: usize,
    path: SimdPath,
    data: Vec<f32>,
    /// Where the packed panels start in `data`: the first 64-byte boundary (see `ALIGN_FLOATS`).
    start: usize,
}

impl PackedB {
    /// Packs `b` (`k x n`) for the SIMD path active now.
    pub fn new(b: MatRef<'_>) -> Self {
        assert!(b.fits(), "gemm: view exceeds its data");
        let path = active();
        let (_, nr) = tile_of(path);
        let Blocking {
            kc: kc_max,
            nc: nc_max,
            ..
        } = blocking_of(path);
        let (k, n) = (b.rows, b.cols);
        let mut data = crate::scratch::take(n.next_multiple_of(nr) * k + ALIGN_FLOATS);
        let start = cache_line_offset(&data);
        let mut offset = start;
        for jc in (0..n).step_by(nc_max) {
            let nc = nc_max.min(n - jc);
            for pc in (0..k).step_by(kc_max) {
                let kc = kc_max.min(k - pc);
                let len = nc.next_multiple_of(nr) * kc;
                pack_b(&mut data[offset..offset + len], nr, b, pc, kc, jc, nc);
                offset += len;
            }
        }
        Self {
            k,
            n,
            path,
            data,
            start,
        }
    }

    pub fn rows(&self) -> usize {
        self.k
    }

    pub fn cols(&self) -> usize {
        self.n
    }
}

impl Drop for PackedB {
    fn drop(&mut self) {
        crate::scratch::give(std::mem::take(&mut self.data));
    }
}

/// `c = A B` (or `+=`) with B packed beforehand. Runs the micro-kernel B was packed for (even
/// if another path was forced since: the packing fixes the tile width).
pub fn gemm_packed(c: &mut [f32], ldc: usize, a: MatRef<'_>, b: &PackedB, accumulate: bool) {
    run(
        c,
        ldc,
        a,
        BSource::Packed(b),
        accumulate,
        b.path,
        &mut NoEpilogue,
    );
}

/// `c = A B` with B packed beforehand, handing each finished tile of C to `epilogue` while the
/// tile is still in L1.
pub fn gemm_packed_then<E: TileEpilogue>(
    c: &mut [f32],
    ldc: usize,
    a: MatRef<'_>,
    b: &PackedB,
    epilogue: &mut E,
) {
    run(c, ldc, a, BSource::Packed(b), false, b.path, epilogue);
}

/// Work on each finished tile of C (every step of K summed), done right after the micro-kernel
/// wrote it, while it is in L1: it saves the caller a pass over C from memory (InfoNCE turns
/// similarities into exponentials and row sums here).
pub trait TileEpilogue {
    /// Tiles of a row arrive in increasing `col0` order, so sums over a row are deterministic.
    fn finish(&mut self, tile: Tile<'_>);
}

/// A finished tile of C: `values[r * ldc + j]`, for `r < rows` and `j < cols`, is C's element
/// `(row0 + r, col0 + j)`.
pub struct Tile<'c> {
    pub values: &'c mut [f32],
    pub ldc: usize,
    pub row0: usize,
    pub col0: usize,
    pub rows: usize,
    pub cols: usize,
}

/// Plain products: nothing to do per tile.
struct NoEpilogue;

impl TileEpilogue for NoEpilogue {
    #[inline(always)]
    fn finish(&mut self, _: Tile<'_>) {}
}

/// Checks shapes (a mismatch is a caller's bug: panic), handles empty products, dispatches.
fn run<E: TileEpilogue>(
    c: &mut [f32],
    ldc: usize,
    a: MatRef<'_>,
    b: BSource<'_>,
    accumulate: bool,
    path: SimdPath,
    epilogue: &mut E,
) {
    let (k, n) = b.dims();
    let m = a.rows;
    assert_eq!(a.cols, k, "gemm: inner dimensions differ");
    assert!(a.fits(), "gemm: view exceeds its data");
    assert!(
        m == 0 || n == 0 || (m - 1) * ldc + n <= c.len(),
        "gemm: C too small"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for row in c.chunks_mut(ldc).take(m) {
                row[..n].fill(0.0);
            }
        }
        finish_whole(c, ldc, m, n, epilogue);
        return;
    }
    let blocking = blocking_of(path);
    match path {
        #[cfg(x86_simd)]
        SimdPath::Avx512 => blocked::<Avx512, E>(c, ldc, a, b, accumulate, blocking, epilogue),
        #[cfg(x86_simd)]
        SimdPath::Avx2 => blocked::<Avx2, E>(c, ldc, a, b, accumulate, blocking, epilogue),
        _ => blocked::<Portable, E>(c, ldc, a, b, accumulate, blocking, epilogue),
    }
}

/// Where the blocked loop gets B's panels from.
#[derive(Clone, Copy)]
enum BSource<'a> {
    View(MatRef<'a>),
    Packed(&'a PackedB),
}

impl BSource<'_> {
    fn dims(&self) -> (usize, usize) {
        match self {
            BSource::View(b) => (b.rows, b.cols),
            BSource::Packed(b) => (b.k, b.n),
        }
    }
}

/// A register-tile kernel: `c[MR x NR] (+)= sum over kc of a_panel[p] (column) x b_panel[p] (row)`.
pub(crate) trait MicroKernel {
    const MR: usize;
    const NR: usize;
    /// # Safety
    /// `a` holds `kc * MR` and `b` holds `kc * NR` floats; `c` addresses an `MR x NR` tile with
    /// row stride `ldc`; the CPU supports the kernel's instruction set.
    unsafe fn run(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, acc: bool);
}

/// The epilogue over a C whose product had nothing to sum (K = 0), in tiles of one row.
fn finish_whole<E: TileEpilogue>(c: &mut [f32], ldc: usize, m: usize, n: usize, epilogue: &mut E) {
    for r in 0..m {
        epilogue.finish(Tile {
            values: &mut c[r * ldc..],
            ldc,
            row0: r,
            col0: 0,
            rows: 1,
            cols: n,
        });
    }
}

fn blocked<K: MicroKernel, E: TileEpilogue>(
    c: &mut [f32],
    ldc: usize,
    a: MatRef<'_>,
    b: BSource<'_>,
    accumulate: bool,
    blocking: Blocking,
    epilogue: &mut E,
) {
    let m = a.rows;
    let (k, n) = b.dims();
    let Blocking {
        mc: mc_max,
        kc: kc_max,
        nc: nc_max,
    } = blocking;
    let a_len = mc_max.min(m).next_multiple_of(K::MR) * kc_max.min(k);
    let mut a_buffer = crate::scratch::Scratch::new(a_len + ALIGN_FLOATS);
    let a_pack = line_aligned(&mut a_buffer, a_len);
    let b_len = match b {
        BSource::View(_) => nc_max.min(n).next_multiple_of(K::NR) * kc_max.min(k),
        BSource::Packed(_) => 0,
    };
    let mut b_buffer = crate::scratch::Scratch::new(b_len + ALIGN_FLOATS);
    let b_pack = line_aligned(&mut b_buffer, b_len);
    let mut edge = [0.0f32; 512];
    let edge = &mut edge[..K::MR * K::NR];
    let mut packed_offset = 0;
    for jc in (0..n).step_by(nc_max) {
        let nc = nc_max.min(n - jc);
        for pc in (0..k).step_by(kc_max) {
            let kc = kc_max.min(k - pc);
            let acc = accumulate || pc > 0;
            let last_step = pc + kc == k;
            let panel_len = nc.next_multiple_of(K::NR) * kc;
            let b_panel: &[f32] = match b {
                BSource::View(view) => {
                    pack_b(b_pack, K::NR, view, pc, kc, jc, nc);
                    &b_pack[..panel_len]
                }
                BSource::Packed(packed) => {
                    let panel = &packed.data
                        [packed.start + packed_offset..packed.start + packed_offset + panel_len];
                    packed_offset += panel_len;
                    panel
                }
            };
            for ic in (0..m).step_by(mc_max) {
                let mc = mc_max.min(m - ic);
                pack_a(a_pack, K::MR, a, ic, mc, pc, kc);
                for jr in (0..nc).step_by(K::NR) {
                    let nr = K::NR.min(nc - jr);
                    let bp = &b_panel[jr * kc..(jr + K::NR) * kc];
                    for ir in (0..mc).step_by(K::MR) {
                        let mr = K::MR.min(mc - ir);
                        let ap = &a_pack[ir * kc..(ir + K::MR) * kc];
                        let c0 = (ic + ir) * ldc + jc + jr;
                        if mr == K::MR && nr == K::NR {
                            // SAFETY: the packed panels have kc * MR / kc * NR floats; the tile's
                            // last element (c0 + (MR-1) * ldc + NR - 1) is inside C (checked
                            // by the assert at entry); `blocked::<K>` only runs on CPUs with K's
                            // features (`run` picks the active path or the one B was packed
                            // for, both found on this CPU by `detect()`).
                            unsafe {
                                K::run(kc, ap.as_ptr(), bp.as_ptr(), c[c0..].as_mut_ptr(), ldc, acc)
                            };
                        } else {
                            // Edge tile: compute into a full scratch tile, copy the valid part.
                            for (r, row) in edge.chunks_exact_mut(K::NR).enumerate().take(mr) {
                                if acc {
                                    row[..nr].copy_from_slice(&c[c0 + r * ldc..c0 + r * ldc + nr]);
                                }
                            }
                            // SAFETY: as above; the scratch tile is exactly MR x NR.
                            unsafe {
                                K::run(kc, ap.as_ptr(), bp.as_ptr(), edge.as_mut_ptr(), K::NR, acc)
                            };
                            for (r, row) in edge.chunks_exact(K::NR).enumerate().take(mr) {
                                c[c0 + r * ldc..c0 + r * ldc + nr].copy_from_slice(&row[..nr]);
                            }
                        }
                        if last_step {
                            epilogue.finish(Tile {
                                values: &mut c[c0..],
                                ldc,
                                row0: ic + ir,
                                col0: jc + jr,
                                rows: mr,
                                cols: nr,
                            });
                        }
                    }
                }
            }
        }
    }
}

/// Packs rows `ic..ic+mc`, depth `pc..pc+kc` of A into `mr`-row strips, depth-major,
/// zero-padded.
fn pack_a(out: &mut [f32], mr: usize, a: MatRef<'_>, ic: usize, mc: usize, pc: usize, kc: usize) {
    let region = Region {
        x: a,
        o0: ic,
        count: mc,
        d0: pc,
        depth: kc,
    };
    pack(out, mr, region);
}

/// Packs depth `pc..pc+kc`, columns `jc..jc+nc` of B into `nr`-column strips, depth-major: the
/// one layout of B, for the blocked loop and for `PackedB`.
fn pack_b(out: &mut [f32], nr: usize, b: MatRef<'_>, pc: usize, kc: usize, jc: usize, nc: usize) {
    let region = Region {
        x: b.t(),
        o0: jc,
        count: nc,
        d0: pc,
        depth: kc,
    };
    pack(out, nr, region);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_panels_start_on_a_cache_line_whatever_the_allocator_returns() {
        for rows in [1, 7, 64, 1000, 5000] {
            let x = vec![1.0f32; rows * 9];
            let packed = PackedB::new(MatRef::row_major(&x, rows, 9).t());
            assert_eq!(packed.data[packed.start..].as_ptr() as usize % 64, 0);
        }
        // Any start is moved forward to the next line, at most `ALIGN_FLOATS` floats.
        let buffer = [0.0f32; 40];
        for skew in 0..16 {
            let offset = cache_line_offset(&buffer[skew..]);
            assert!(offset <= ALIGN_FLOATS);
            assert_eq!(buffer[skew + offset..].as_ptr() as usize % 64, 0);
        }
    }
}
