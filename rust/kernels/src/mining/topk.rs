//! The k best (score, index) pairs seen so far, in a total order: higher score first, and for
//! equal scores the lower index first. Because the order is total, the final k best do not depend
//! on the order candidates arrive in, so partial results from any partition of the candidates
//! (threads, tiles) merge to the same answer.

#[derive(Debug, Clone)]
pub struct TopK {
    k: usize,
    /// Sorted best first; at most `k` entries.
    items: Vec<(f32, u32)>,
}

/// `a` ranks before `b`.
#[inline]
fn better(a: (f32, u32), b: (f32, u32)) -> bool {
    a.0 > b.0 || (a.0 == b.0 && a.1 < b.1)
}

impl TopK {
    pub fn new(k: usize) -> Self {
        Self {
            k,
            items: Vec::with_capacity(k.min(1024)),
        }
    }

    /// The score a new candidate must beat (or tie with a lower index) to enter; -inf while
    /// there is room.
    #[inline]
    pub fn threshold(&self) -> f32 {
        if self.items.len() < self.k {
            f32::NEG_INFINITY
        } else {
            self.items.last().map_or(f32::INFINITY, |w| w.0)
        }
    }

    /// Offers a candidate. NaN scores are never kept.
    #[inline]
    pub fn push(&mut self, score: f32, index: u32) {
        if self.k == 0 || score.is_nan() {
            return;
        }
        let item = (score, index);
        if self.items.len() == self.k {
            match self.items.last() {
                Some(&worst) if better(item, worst) => {
                    self.items.pop();
                }
                _ => return,
            }
        }
        let at = self.items.partition_point(|&x| better(x, item));
        self.items.insert(at, item);
    }

    /// Adds every entry of `other` (the merge of two partial results).
    pub fn merge(&mut self, other: &TopK) {
        for &(score, index) in &other.items {
            self.push(score, index);
        }
    }

    /// Entries best first.
    pub fn items(&self) -> &[(f32, u32)] {
        &self.items
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn contains(&self, index: u32) -> bool {
        self.items.iter().any(|&(_, i)| i == index)
    }
}
