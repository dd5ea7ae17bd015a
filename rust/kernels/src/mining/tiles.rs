//! Tiling: B anchors against N candidates in tasks of row blocks x candidate groups. Each task
//! packs a candidate tile once, computes a panel of dot products with the blocked GEMM and offers
//! every row's keys to that row's top-k list (`bound.rs`); the lists of all tasks merge in a total
//! order, so the result does not depend on the thread count.

use super::bound::{cosine_keys, offer, offer_cosines, Ceiling, SharedBound};
use super::draw::DrawTop;
use super::scoring::{prepare, score_row, Prepared};
use super::{eligible, Limits, MineInputs, Strategy, TopK};
use crate::error::KernelResult;
use crate::gemm::{gemm_packed, MatRef, PackedB};
use crate::parallel::map_tasks;
use crate::scratch::Scratch;

/// Candidates per tile (packed once per task), and anchors per panel: a 128 x 1024 panel of dot
/// products (512 KiB) stays in L2 between the GEMM writing it and the selection reading it.
const TILE_COLUMNS: usize = 1024;
const SELECT_ROWS: usize = 128;

/// Groups of candidate tiles per row block: enough tasks for the cores, few enough partial
/// lists to keep (a function of the sizes only, not of the thread count).
const COLUMN_GROUPS: usize = 8;

/// One task of `tiled_rows`: anchors `i0..i0 + rows` against candidates `g0..g0 + width`.
#[derive(Clone, Copy)]
struct Task {
    i0: usize,
    rows: usize,
    g0: usize,
    width: usize,
}

/// What every task of one `tiled_rows` call shares.
struct Shared<'a> {
    inputs: &'a MineInputs<'a>,
    prepared: Prepared,
    strategy: Strategy,
    k: usize,
    /// Per anchor, the best k-th key any task has reached so far: a block whose best key is
    /// below it cannot reach the final top k, whichever task sees it.
    bounds: Vec<SharedBound>,
    limits: &'a Limits<'a>,
}

pub(super) fn tiled_rows(
    inputs: &MineInputs<'_>,
    strategy: Strategy,
    k: usize,
) -> KernelResult<Vec<TopK>> {
    Ok(tiled_rows_within(inputs, strategy, k, &Limits::NONE)?.0)
}

/// Per anchor: its top-k list, its count above the ceiling, its draw list (empty without one).
pub(super) type WithinLists = (Vec<TopK>, Vec<u64>, Vec<DrawTop>);

/// `tiled_rows` within per-anchor limits (HARDEST only): keys above an anchor's ceiling are
/// counted (the second result) instead of kept, excluded pairs are never considered, and with
/// a draw each anchor's best draws among its candidates within limits are kept (the third).
pub(super) fn tiled_rows_within(
    inputs: &MineInputs<'_>,
    strategy: Strategy,
    k: usize,
    limits: &Limits<'_>,
) -> KernelResult<WithinLists> {
    let (b, n, d) = (inputs.batch, inputs.pool, inputs.dim);
    // Row blocks: all anchors at once when the pool gives enough tiles to share out (each
    // candidate tile is then packed once); otherwise a quarter of them per block.
    let row_block = if n >= 4 * TILE_COLUMNS {
        b.min(1024)
    } else {
        b.div_ceil(4).max(64)
    };
    let tiles_per_row = n.div_ceil(TILE_COLUMNS);
    let tiles_per_group = tiles_per_row.div_ceil(COLUMN_GROUPS);
    let group_columns = tiles_per_group * TILE_COLUMNS;
    let mut tasks = Vec::new();
    for i0 in (0..b).step_by(row_block) {
        for g0 in (0..n).step_by(group_columns) {
            tasks.push(Task {
                i0,
                rows: row_block.min(b - i0),
                g0,
                width: group_columns.min(n - g0),
            });
        }
    }
    let shared = Shared {
        inputs,
        prepared: prepare(inputs, strategy),
        strategy,
        k,
        bounds: (0..b).map(|_| SharedBound::new()).collect(),
        limits,
    };
    let partial: Vec<WithinLists> = map_tasks(tasks.clone(), b * n * d, |task| {
        select_in_task(&shared, task)
    });
    // Merge the groups' lists row by row (the order does not change the result).
    let draw_size = limits.draw.as_ref().map_or(0, |d| d.size);
    let mut rows: Vec<TopK> = (0..b).map(|_| TopK::new(k)).collect();
    let mut over = vec![0u64; b];
    let mut draws: Vec<DrawTop> = (0..b).map(|_| DrawTop::new(draw_size)).collect();
    for (task, (lists, counts, drawn)) in tasks.iter().zip(&partial) {
        for (r, (list, count)) in lists.iter().zip(counts).enumerate() {
            rows[task.i0 + r].merge(list);
            over[task.i0 + r] += count;
        }
        for (r, top) in drawn.iter().enumerate() {
            draws[task.i0 + r].merge(top);
        }
    }
    Ok((rows, over, draws))
}

/// The top-k lists of one task's anchors among its candidates, tile by tile (and per anchor the
/// eligible keys above its ceiling, and its draws).
fn select_in_task(shared: &Shared<'_>, task: Task) -> WithinLists {
    let Shared {
        inputs,
        prepared,
        strategy,
        k,
        bounds,
        limits,
    } = shared;
    let (strategy, d) = (*strategy, inputs.dim);
    let Task {
        i0,
        rows,
        g0,
        width,
    } = task;
    let mut lists: Vec<TopK> = (0..rows).map(|_| TopK::new(*k)).collect();
    let mut over = vec![0u64; rows];
    let draw_size = limits.draw.as_ref().map_or(0, |d| d.size);
    let mut draws: Vec<DrawTop> = if limits.draw.is_some() {
        (0..rows).map(|_| DrawTop::new(draw_size)).collect()
    } else {
        Vec::new()
    };
    let sub_rows = SELECT_ROWS.min(rows);
    let mut panel = Scratch::new(sub_rows * TILE_COLUMNS.min(width));
    let mut keys = vec![0.0f32; TILE_COLUMNS.min(width)];
    for j0 in (g0..g0 + width).step_by(TILE_COLUMNS) {
        if inputs.cancel.is_requested() {
            break; // the caller discards the result
        }
        let cols = TILE_COLUMNS.min(g0 + width - j0);
        // The candidate tile is packed once for all of this task's anchors; each block of
        // SELECT_ROWS anchors then gets a panel small enough to stay in L2 while its rows are
        // selected from.
        let c = MatRef::row_major(&inputs.candidates[j0 * d..(j0 + cols) * d], cols, d);
        let packed = PackedB::new(c.t());
        for s0 in (0..rows).step_by(SELECT_ROWS) {
            let srows = SELECT_ROWS.min(rows - s0);
            let first_row = i0 + s0;
            let a = MatRef::row_major(
                &inputs.anchors[first_row * d..(first_row + srows) * d],
                srows,
                d,
            );
            let panel = &mut panel[..srows * cols];
            gemm_packed(panel, cols, a, &packed, false);
            for (r, ((dots, list), over)) in panel
                .chunks_exact(cols)
                .zip(lists[s0..s0 + srows].iter_mut())
                .zip(over[s0..s0 + srows].iter_mut())
                .enumerate()
            {
                let row = first_row + r;
                let ok = |j: usize| eligible(inputs.labels, row, j) && !limits.excludes(row, j);
                if strategy == Strategy::Hardest {
                    // The common case, fused: no key buffer, and blocks that cannot beat the
                    // threshold cost one vectorised pass.
                    let inv_c = &prepared.inv_candidate_norm[j0..j0 + cols];
                    let inv_a = prepared.inv_anchor_norm[row];
                    let ceiling = Ceiling {
                        value: limits.ceiling(row),
                        over,
                    };
                    offer_cosines(list, &bounds[row], dots, inv_c, inv_a, j0, ceiling, ok);
                    if let Some(draw) = &limits.draw {
                        // Every candidate within the limits is drawn: no block can be skipped.
                        let keys = &mut keys[..cols];
                        cosine_keys(keys, dots, inv_c, inv_a);
                        let (lo, hi) = (draw.floors[row], limits.ceiling(row));
                        let top = &mut draws[s0 + r];
                        for (j, &key) in keys.iter().enumerate() {
                            // NaN fails both comparisons: never drawn.
                            if key >= lo && key <= hi && ok(j0 + j) {
                                top.push(draw.bits(row, j0 + j), (j0 + j) as u32);
                            }
                        }
                    }
                } else {
                    let keys = &mut keys[..cols];
                    score_row(inputs, prepared, strategy, row, j0, dots, keys);
                    offer(list, &bounds[row], keys, j0, ok);
                }
            }
        }
    }
    (lists, over, draws)
}
