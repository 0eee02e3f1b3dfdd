//! The sorted set type: members with scores, ordered by (score, member).
//!
//! A [`Dict`] maps members to scores (O(1) ZSCORE), and an [`OrderIndex`] keeps the order with
//! element counts in its inner nodes, which gives O(log n) rank, rank-to-element and range
//! starts, where Redis uses a skip list with spans.

use crate::dict::Dict;
pub use crate::order_index::compare;
use crate::order_index::{OrderIndex, Pos};
use rand::Rng;
use std::cmp::Ordering;

/// One end of a score range: a value, exclusive or not.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoreBound {
    pub value: f64,
    pub exclusive: bool,
}

/// A score interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoreRange {
    pub min: ScoreBound,
    pub max: ScoreBound,
}

impl ScoreRange {
    fn above_min(&self, s: f64) -> bool {
        if self.min.exclusive {
            s > self.min.value
        } else {
            s >= self.min.value
        }
    }

    fn below_max(&self, s: f64) -> bool {
        if self.max.exclusive {
            s < self.max.value
        } else {
            s <= self.max.value
        }
    }

    fn is_empty(&self) -> bool {
        self.min.value > self.max.value
            || (self.min.value == self.max.value && (self.min.exclusive || self.max.exclusive))
    }
}

/// One end of a lexicographic range (`-`, `+`, `[x`, `(x`).
#[derive(Clone, Debug, PartialEq)]
pub enum LexBound {
    NegInf,
    PosInf,
    Inclusive(Vec<u8>),
    Exclusive(Vec<u8>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct LexRange {
    pub min: LexBound,
    pub max: LexBound,
}

impl LexRange {
    fn above_min(&self, m: &[u8]) -> bool {
        match &self.min {
            LexBound::NegInf => true,
            LexBound::PosInf => false,
            LexBound::Inclusive(v) => m >= v.as_slice(),
            LexBound::Exclusive(v) => m > v.as_slice(),
        }
    }

    fn below_max(&self, m: &[u8]) -> bool {
        match &self.max {
            LexBound::NegInf => false,
            LexBound::PosInf => true,
            LexBound::Inclusive(v) => m <= v.as_slice(),
            LexBound::Exclusive(v) => m < v.as_slice(),
        }
    }
}

/// Thresholds for the `listpack` encoding label (zset-max-listpack-entries/value).
#[derive(Clone, Copy, Debug)]
pub struct ZSetLimits {
    pub max_entries: usize,
    pub max_value: usize,
}

#[derive(Clone, Debug)]
pub struct SortedSet {
    scores: Dict<f64>,
    index: OrderIndex,
    packed: bool,
}

impl Default for SortedSet {
    fn default() -> Self {
        Self::new()
    }
}

impl SortedSet {
    pub fn new() -> Self {
        SortedSet {
            scores: Dict::new(),
            index: OrderIndex::new(),
            packed: true,
        }
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Bytes held by the order index (MEMORY USAGE; the member-to-score table is extra).
    pub fn index_bytes(&self) -> usize {
        self.index.allocated_bytes()
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.scores.get(member).copied()
    }

    /// Sets `member`'s score; returns the previous score if it existed.
    pub fn insert(&mut self, member: &[u8], score: f64, limits: ZSetLimits) -> Option<f64> {
        let old = self.scores.get(member).copied();
        match old {
            Some(o) if o == score => return old,
            Some(o) => {
                if let Some(slot) = self.scores.get_mut(member) {
                    *slot = score;
                }
                self.index.update_score(o, member, score);
                return old;
            }
            None => {}
        }
        self.scores.insert(member, score);
        self.index.insert(score, member);
        if self.packed && (self.index.len() > limits.max_entries || member.len() > limits.max_value)
        {
            self.packed = false;
        }
        old
    }

    pub fn remove(&mut self, member: &[u8]) -> bool {
        match self.scores.remove(member) {
            Some((_, score)) => self.index.delete(score, member),
            None => false,
        }
    }

    /// 0-based rank from the lowest score (or from the highest when `reverse`).
    pub fn rank(&self, member: &[u8], reverse: bool) -> Option<usize> {
        let score = self.score(member)?;
        let r = self.index.rank(score, member)?;
        Some(if reverse { self.len() - 1 - r } else { r })
    }

    fn entry(&self, pos: Pos) -> (&[u8], f64) {
        self.index.entry(pos)
    }

    /// Elements with ranks in [start, end] (0-based, inclusive, already clamped), in order or
    /// reversed (ranks then count from the highest score).
    pub fn range_by_rank(&self, start: usize, end: usize, reverse: bool) -> Vec<(Vec<u8>, f64)> {
        let mut out = Vec::with_capacity(end.saturating_sub(start) + 1);
        let len = self.len();
        if start > end || end >= len {
            return out;
        }
        let first_rank = if reverse { len - 1 - start } else { start };
        let mut node = self.index.at_rank(first_rank);
        for _ in start..=end {
            let Some(n) = node else { break };
            let (m, s) = self.entry(n);
            out.push((m.to_vec(), s));
            node = self.step(n, reverse);
        }
        out
    }

    fn step(&self, pos: Pos, reverse: bool) -> Option<Pos> {
        if reverse {
            self.index.prev(pos)
        } else {
            self.index.next(pos)
        }
    }

    /// First and last node of a score range.
    fn score_bounds(&self, range: &ScoreRange) -> Option<(Pos, Pos)> {
        if range.is_empty() {
            return None;
        }
        let first = self.index.first_not(|s, _| !range.above_min(s))?;
        let last = self.index.last_within(|s, _| range.below_max(s))?;
        let (fm, fs) = self.entry(first);
        let (lm, ls) = self.entry(last);
        (compare(fs, fm, ls, lm) != Ordering::Greater).then_some((first, last))
    }

    fn lex_bounds(&self, range: &LexRange) -> Option<(Pos, Pos)> {
        let first = self.index.first_not(|_, m| !range.above_min(m))?;
        let last = self.index.last_within(|_, m| range.below_max(m))?;
        let (fm, fs) = self.entry(first);
        let (lm, ls) = self.entry(last);
        (compare(fs, fm, ls, lm) != Ordering::Greater).then_some((first, last))
    }

    fn collect(
        &self,
        bounds: Option<(Pos, Pos)>,
        reverse: bool,
        offset: usize,
        limit: Option<usize>,
    ) -> Vec<(Vec<u8>, f64)> {
        let mut out = Vec::new();
        let Some((first, last)) = bounds else {
            return out;
        };
        let (mut node, stop) = if reverse {
            (Some(last), first)
        } else {
            (Some(first), last)
        };
        let mut skipped = 0;
        while let Some(n) = node {
            if limit.is_some_and(|l| out.len() >= l) {
                break;
            }
            if skipped < offset {
                skipped += 1;
            } else {
                let (m, s) = self.entry(n);
                out.push((m.to_vec(), s));
            }
            if n == stop {
                break;
            }
            node = self.step(n, reverse);
        }
        out
    }

    pub fn range_by_score(
        &self,
        range: &ScoreRange,
        reverse: bool,
        offset: usize,
        limit: Option<usize>,
    ) -> Vec<(Vec<u8>, f64)> {
        self.collect(self.score_bounds(range), reverse, offset, limit)
    }

    pub fn range_by_lex(
        &self,
        range: &LexRange,
        reverse: bool,
        offset: usize,
        limit: Option<usize>,
    ) -> Vec<(Vec<u8>, f64)> {
        self.collect(self.lex_bounds(range), reverse, offset, limit)
    }

    fn count_between(&self, bounds: Option<(Pos, Pos)>) -> usize {
        let Some((first, last)) = bounds else {
            return 0;
        };
        let (fm, fs) = self.entry(first);
        let (lm, ls) = self.entry(last);
        match (self.index.rank(fs, fm), self.index.rank(ls, lm)) {
            (Some(a), Some(b)) if b >= a => b - a + 1,
            _ => 0,
        }
    }

    pub fn count_by_score(&self, range: &ScoreRange) -> usize {
        self.count_between(self.score_bounds(range))
    }

    pub fn count_by_lex(&self, range: &LexRange) -> usize {
        self.count_between(self.lex_bounds(range))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&[u8], f64)> {
        self.index.iter()
    }

    pub fn random_member(&self, rng: &mut impl Rng) -> Option<(&[u8], f64)> {
        self.scores
            .random_entry(rng)
            .map(|(k, v)| (k.as_slice(), *v))
    }

    pub fn scan_step(&self, cursor: u64, mut visit: impl FnMut(&[u8], f64)) -> u64 {
        self.scores.scan_step(cursor, |k, v| visit(k, *v))
    }

    pub fn encoding(&self) -> &'static str {
        if self.packed {
            "listpack"
        } else {
            "skiplist"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ZSetLimits = ZSetLimits {
        max_entries: 128,
        max_value: 64,
    };

    fn range(min: f64, max: f64) -> ScoreRange {
        ScoreRange {
            min: ScoreBound {
                value: min,
                exclusive: false,
            },
            max: ScoreBound {
                value: max,
                exclusive: false,
            },
        }
    }

    #[test]
    fn ranks_and_ranges_match_a_sorted_vector() {
        let mut z = SortedSet::new();
        let mut model: Vec<(f64, Vec<u8>)> = Vec::new();
        let mut rng = rand::thread_rng();
        for i in 0..2000 {
            let member = format!("m{}", rng.gen_range(0..500)).into_bytes();
            let score = rng.gen_range(0..100) as f64;
            if i % 3 == 0 {
                z.remove(&member);
                model.retain(|(_, m)| *m != member);
            } else {
                z.insert(&member, score, LIMITS);
                model.retain(|(_, m)| *m != member);
                model.push((score, member));
            }
        }
        model.sort_by(|a, b| compare(a.0, &a.1, b.0, &b.1));
        assert_eq!(z.len(), model.len());
        for (rank, (score, member)) in model.iter().enumerate() {
            assert_eq!(z.rank(member, false), Some(rank));
            assert_eq!(z.score(member), Some(*score));
        }
        let all = z.range_by_rank(0, model.len() - 1, false);
        assert_eq!(
            all.iter().map(|(m, _)| m.clone()).collect::<Vec<_>>(),
            model.iter().map(|(_, m)| m.clone()).collect::<Vec<_>>()
        );
        let expected = model
            .iter()
            .filter(|(s, _)| (10.0..=20.0).contains(s))
            .count();
        assert_eq!(z.count_by_score(&range(10.0, 20.0)), expected);
        assert_eq!(
            z.range_by_score(&range(10.0, 20.0), false, 0, None).len(),
            expected
        );
        assert_eq!(
            z.range_by_score(&range(10.0, 20.0), true, 0, None).len(),
            expected
        );
        let rev = z.range_by_rank(0, 2, true);
        assert_eq!(rev[0].0, model.last().unwrap().1);
    }

    #[test]
    fn lex_ranges() {
        let mut z = SortedSet::new();
        for m in ["a", "b", "c", "d"] {
            z.insert(m.as_bytes(), 0.0, LIMITS);
        }
        let r = LexRange {
            min: LexBound::Exclusive(b"a".to_vec()),
            max: LexBound::Inclusive(b"c".to_vec()),
        };
        let got: Vec<Vec<u8>> = z
            .range_by_lex(&r, false, 0, None)
            .into_iter()
            .map(|(m, _)| m)
            .collect();
        assert_eq!(got, vec![b"b".to_vec(), b"c".to_vec()]);
        assert_eq!(z.count_by_lex(&r), 2);
        let all = LexRange {
            min: LexBound::NegInf,
            max: LexBound::PosInf,
        };
        assert_eq!(z.count_by_lex(&all), 4);
    }

    #[test]
    fn encoding_label() {
        let mut z = SortedSet::new();
        z.insert(b"a", 1.0, LIMITS);
        assert_eq!(z.encoding(), "listpack");
        z.insert(&[b'x'; 65], 1.0, LIMITS);
        assert_eq!(z.encoding(), "skiplist");
    }
}
