//! The blocked GEMM against a float64 triple loop, on every SIMD path, for all three layouts the
//! losses use (A B, A B^T, A^T B), sizes that straddle every block and tile edge, and `+=`.

mod common;

use common::data;
use ruvector_kernels::gemm::{
    blocking_of, gemm, gemm_packed, gemm_packed_then, MatRef, PackedB, Tile, TileEpilogue,
};
use ruvector_kernels::simd::{detect, force, SimdPath};

fn reference(a: MatRef<'_>, b: MatRef<'_>) -> Vec<f64> {
    let mut out = vec![0.0; a.rows * b.cols];
    for i in 0..a.rows {
        for j in 0..b.cols {
            out[i * b.cols + j] = (0..a.cols)
                .map(|p| {
                    f64::from(a.data[i * a.row_stride + p * a.col_stride])
                        * f64::from(b.data[p * b.row_stride + j * b.col_stride])
                })
                .sum();
        }
    }
    out
}

/// Tests that force a SIMD path (global state) take turns.
static PATH_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn paths() -> Vec<SimdPath> {
    common::simd_paths()
}

#[test]
fn matches_float64_for_every_layout_size_and_path() {
    let _turn = PATH_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let sizes = [
        (1, 1, 1),
        (7, 5, 3),
        (9, 33, 17),
        (63, 65, 7),
        (65, 7, 63),
        (1, 513, 65),
        (7, 63, 1),
        (130, 300, 70),
        (64, 257, 2100),
    ];
    for path in paths() {
        force(path).unwrap();
        for &(m, k, n) in &sizes {
            let x = data(m * k, 1);
            let y = data(k * n, 2);
            let yt = data(n * k, 3);
            let xt = data(k * m, 4);
            let cases = [
                (MatRef::row_major(&x, m, k), MatRef::row_major(&y, k, n)),
                (
                    MatRef::row_major(&x, m, k),
                    MatRef::row_major(&yt, n, k).t(),
                ),
                (
                    MatRef::row_major(&xt, k, m).t(),
                    MatRef::row_major(&y, k, n),
                ),
            ];
            for (a, b) in cases {
                let expected = reference(a, b);
                // Plain product, and accumulation onto a non-zero C with a wider row stride.
                let ldc = n + 3;
                let base = data(m * ldc, 5);
                let mut c = base.clone();
                gemm(&mut c, ldc, a, b, false);
                let mut c_acc = base.clone();
                gemm(&mut c_acc, ldc, a, b, true);
                let tol = 1e-5 * (k as f64).sqrt() + 1e-6;
                for i in 0..m {
                    for j in 0..n {
                        let e = expected[i * n + j];
                        let got = f64::from(c[i * ldc + j]);
                        assert!(
                            (got - e).abs() <= tol,
                            "{path:?} {m}x{k}x{n} ({i},{j}): {got} vs {e}"
                        );
                        let got_acc = f64::from(c_acc[i * ldc + j]);
                        let e_acc = e + f64::from(base[i * ldc + j]);
                        assert!((got_acc - e_acc).abs() <= tol, "{path:?} += ({i},{j})");
                    }
                    // Padding columns between rows are never touched.
                    for j in n..ldc {
                        assert_eq!(c[i * ldc + j], base[i * ldc + j]);
                    }
                }
            }
        }
    }
    force(detect()).unwrap();
}

#[test]
fn empty_depth_zeroes_or_keeps() {
    let mut c = vec![1.0f32; 6];
    gemm(
        &mut c,
        3,
        MatRef::row_major(&[], 2, 0),
        MatRef::row_major(&[], 0, 3),
        true,
    );
    assert_eq!(c, vec![1.0; 6]);
    gemm(
        &mut c,
        3,
        MatRef::row_major(&[], 2, 0),
        MatRef::row_major(&[], 0, 3),
        false,
    );
    assert_eq!(c, vec![0.0; 6]);
}

#[test]
#[should_panic(expected = "inner dimensions")]
fn mismatched_shapes_are_a_bug() {
    let mut c = vec![0.0f32; 4];
    gemm(
        &mut c,
        2,
        MatRef::row_major(&[0.0; 6], 2, 3),
        MatRef::row_major(&[0.0; 4], 2, 2),
        false,
    );
}

#[test]
fn prepacked_b_gives_the_same_bits_as_packing_on_the_fly() {
    let _turn = PATH_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    for path in paths() {
        force(path).unwrap();
        for &(m, k, n) in &[(1, 1, 1), (9, 300, 33), (20, 513, 2100)] {
            let x = data(m * k, 7);
            let y = data(n * k, 8);
            let a = MatRef::row_major(&x, m, k);
            for b in [MatRef::row_major(&y, k, n), MatRef::row_major(&y, n, k).t()] {
                let packed = PackedB::new(b);
                assert_eq!((packed.rows(), packed.cols()), (k, n));
                let mut expected = vec![0.0f32; m * n];
                gemm(&mut expected, n, a, b, false);
                let mut got = vec![1.0f32; m * n];
                gemm_packed(&mut got, n, a, &packed, false);
                let bad = got.iter().zip(&expected).filter(|(g, e)| g != e).count();
                assert_eq!(
                    bad,
                    0,
                    "{path:?} {m}x{k}x{n} first {:?}",
                    got.iter().zip(&expected).position(|(g, e)| g != e)
                );
                // Accumulation rounds in the same order as with B packed on the fly.
                gemm_packed(&mut got, n, a, &packed, true);
                gemm(&mut expected, n, a, b, true);
                assert_eq!(got, expected);
            }
        }
    }
    force(detect()).unwrap();
}

#[test]
fn a_packed_b_keeps_its_kernel_when_the_path_changes() {
    use ruvector_kernels::gemm::{gemm_packed, PackedB};
    let _turn = PATH_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let (x, y) = (data(5 * 70, 1), data(70 * 9, 2));
    let (a, b) = (MatRef::row_major(&x, 5, 70), MatRef::row_major(&y, 70, 9));
    let packed = PackedB::new(b);
    let mut expected = vec![0.0f32; 45];
    gemm_packed(&mut expected, 9, a, &packed, false);
    force(SimdPath::Baseline).unwrap();
    let mut got = vec![0.0f32; 45];
    gemm_packed(&mut got, 9, a, &packed, false);
    force(detect()).unwrap();
    assert_eq!(got, expected);
}

#[test]
fn block_edges_of_this_machines_blocking_match_float64() {
    // One past each block size the detected caches gave, on every path: the loops' remainders.
    let _turn = PATH_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    for path in paths() {
        force(path).unwrap();
        let blocks = blocking_of(path);
        for (m, k, n) in [
            (blocks.mc + 3, blocks.kc + 1, 9),
            (3, 2 * blocks.kc + 5, blocks.nc + 5),
        ] {
            let x = data(m * k, 6);
            let xt = data(k * m, 8);
            let y = data(n * k, 7);
            let b = MatRef::row_major(&y, n, k).t();
            // A row-major, and transposed (its packing reads columns: `pack_columns`).
            for a in [
                MatRef::row_major(&x, m, k),
                MatRef::row_major(&xt, k, m).t(),
            ] {
                let expected = reference(a, b);
                let mut c = vec![0.0f32; m * n];
                gemm(&mut c, n, a, b, false);
                let tol = 1e-5 * (k as f64).sqrt() + 1e-6;
                for (i, (&got, &e)) in c.iter().zip(&expected).enumerate() {
                    assert!(
                        (f64::from(got) - e).abs() <= tol,
                        "{path:?} {m}x{k}x{n} [{i}]: {got} vs {e}"
                    );
                }
                let packed = PackedB::new(b);
                let mut c2 = vec![0.0f32; m * n];
                gemm_packed(&mut c2, n, a, &packed, false);
                assert_eq!(c, c2, "{path:?}: packed B differs");
            }
        }
    }
    force(detect()).unwrap();
}

/// Records every tile an epilogue is handed, and its values at that moment.
struct Recorder {
    tiles: Vec<(usize, usize, usize, usize)>,
    seen: Vec<f32>,
    n: usize,
}

impl TileEpilogue for Recorder {
    fn finish(&mut self, tile: Tile<'_>) {
        let Tile {
            values: tile,
            ldc,
            row0,
            col0,
            rows,
            cols,
        } = tile;
        self.tiles.push((row0, col0, rows, cols));
        for r in 0..rows {
            for j in 0..cols {
                self.seen[(row0 + r) * self.n + col0 + j] = tile[r * ldc + j];
                // What the epilogue writes is what C keeps.
                tile[r * ldc + j] *= 2.0;
            }
        }
    }
}

#[test]
fn the_epilogue_sees_each_finished_tile_once_in_column_order() {
    let _turn = PATH_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    for path in paths() {
        force(path).unwrap();
        let blocks = blocking_of(path);
        // Depth past one block (the epilogue must see only complete sums), edge tiles both ways,
        // and more columns than one column block.
        for (m, k, n) in [
            (7, 5, 3),
            (blocks.mc + 3, blocks.kc + 1, 70),
            (5, 9, blocks.nc + 5),
        ] {
            let x = data(m * k, 9);
            let y = data(n * k, 10);
            let (a, b) = (MatRef::row_major(&x, m, k), MatRef::row_major(&y, n, k).t());
            let packed = PackedB::new(b);
            let mut plain = vec![0.0f32; m * n];
            gemm_packed(&mut plain, n, a, &packed, false);
            let mut c = vec![0.0f32; m * n];
            let mut rec = Recorder {
                tiles: Vec::new(),
                seen: vec![f32::NAN; m * n],
                n,
            };
            gemm_packed_then(&mut c, n, a, &packed, &mut rec);
            assert_eq!(
                rec.seen, plain,
                "{path:?} {m}x{k}x{n}: the epilogue saw partial sums"
            );
            let doubled: Vec<f32> = plain.iter().map(|v| v * 2.0).collect();
            assert_eq!(c, doubled, "{path:?}: the epilogue's writes were lost");
            let mut covered = vec![0u8; m * n];
            let mut last_col = vec![None; m];
            for &(row0, col0, rows, cols) in &rec.tiles {
                for r in row0..row0 + rows {
                    assert!(
                        last_col[r].is_none_or(|c| c < col0),
                        "{path:?}: row {r} out of order"
                    );
                    last_col[r] = Some(col0);
                    for j in col0..col0 + cols {
                        covered[r * n + j] += 1;
                    }
                }
            }
            assert!(
                covered.iter().all(|&t| t == 1),
                "{path:?}: a tile was missed or repeated"
            );
        }
    }
    force(detect()).unwrap();
}
