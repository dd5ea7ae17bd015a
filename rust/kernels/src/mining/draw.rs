//! The corpus miner's seeded draw inside the preselection (random sampling over an open window):
//! per anchor, the rows that may pass its score limits, ranked by their draw
//! (`rng::corpus_key_bits`, a pure function of seed, query and corpus row), the best `size` kept.
//! Which of them really pass is decided on their exact scores by the caller.

use super::rng::corpus_key_bits;
use super::TopK;

/// What the draw needs per call.
pub struct Draw<'a> {
    pub seed: u64,
    /// Per anchor, its index among the caller's queries (the draw's `query`).
    pub query_ids: &'a [i64],
    /// Per anchor, the lowest preselection key that may pass its floor (floor minus the error).
    pub floors: &'a [f32],
    /// The corpus row of candidate 0 (the draw's `row` is `first_row + candidate`).
    pub first_row: u64,
    /// Entries kept per anchor.
    pub size: usize,
}

impl Draw<'_> {
    #[inline]
    pub(super) fn bits(&self, anchor: usize, candidate: usize) -> u64 {
        corpus_key_bits(
            self.seed,
            self.query_ids[anchor] as u64,
            self.first_row + candidate as u64,
        )
    }
}

/// The `size` best (draw, candidate) pairs: higher draw first, then lower candidate (the order
/// of every `TopK`).
pub type DrawTop = TopK<u64>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_best_in_a_total_order_whatever_the_arrival() {
        let items = [(5u64, 9u32), (7, 1), (5, 2), (1, 0), (7, 0), (3, 3)];
        let mut forward = DrawTop::new(4);
        for &(b, i) in &items {
            forward.push(b, i);
        }
        let mut halves = (DrawTop::new(4), DrawTop::new(4));
        for &(b, i) in items.iter().rev().take(3) {
            halves.0.push(b, i);
        }
        for &(b, i) in items.iter().take(3) {
            halves.1.push(b, i);
        }
        halves.0.merge(&halves.1);
        assert_eq!(forward.items(), &[(7, 0), (7, 1), (5, 2), (5, 9)]);
        assert_eq!(halves.0.items(), forward.items());
    }
}
