//! The k best (score, index) pairs seen so far, in a total order: higher score first, and for
//! equal scores the lower index first. Because the order is total, the final k best do not depend
//! on the order candidates arrive in, so partial results from any partition of the candidates
//! (threads, tiles) merge to the same answer. The score is a float32 key (the miners) or the 53
//! bits of a seeded draw (the corpus miner's draw lists, `draw.rs`).

/// A score `TopK` ranks by (higher first).
pub trait RankKey: Copy + PartialOrd {
    /// Below every kept score: the threshold of a list with room.
    const LOWEST: Self;
    /// Above every score: the threshold of a list that keeps nothing.
    const HIGHEST: Self;
    /// Whether a score can be kept at all (NaN never is).
    fn keepable(self) -> bool;
}

impl RankKey for f32 {
    const LOWEST: Self = f32::NEG_INFINITY;
    const HIGHEST: Self = f32::INFINITY;
    fn keepable(self) -> bool {
        !self.is_nan()
    }
}

impl RankKey for u64 {
    const LOWEST: Self = 0;
    const HIGHEST: Self = u64::MAX;
    fn keepable(self) -> bool {
        true
    }
}

#[derive(Debug, Clone)]
pub struct TopK<K: RankKey = f32> {
    k: usize,
    /// Sorted best first; at most `k` entries.
    items: Vec<(K, u32)>,
}

/// `a` ranks before `b`.
#[inline]
fn better<K: RankKey>(a: (K, u32), b: (K, u32)) -> bool {
    a.0 > b.0 || (a.0 == b.0 && a.1 < b.1)
}

impl<K: RankKey> TopK<K> {
    pub fn new(k: usize) -> Self {
        Self {
            k,
            items: Vec::with_capacity(k.min(1024)),
        }
    }

    /// The score a new candidate must beat (or tie with a lower index) to enter; the lowest
    /// score (-inf) while there is room.
    #[inline]
    pub fn threshold(&self) -> K {
        if self.items.len() < self.k {
            K::LOWEST
        } else {
            self.items.last().map_or(K::HIGHEST, |w| w.0)
        }
    }

    /// Offers a candidate. NaN scores are never kept.
    #[inline]
    pub fn push(&mut self, score: K, index: u32) {
        if self.k == 0 || !score.keepable() {
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
    pub fn merge(&mut self, other: &TopK<K>) {
        for &(score, index) in &other.items {
            self.push(score, index);
        }
    }

    /// Entries best first.
    pub fn items(&self) -> &[(K, u32)] {
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
