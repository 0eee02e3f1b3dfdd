//! The sorted set type: members with scores, ordered by (score, member).
//!
//! A [`Dict`] maps members to scores (O(1) ZSCORE), and a skip list keeps the order with span
//! counts on every link, which gives O(log n) rank, rank-to-element and range starts, as
//! Redis's zskiplist does. The skip list lives in an arena (`Vec` of nodes linked by index), so
//! it needs no unsafe code and no per-link allocation.

use crate::dict::Dict;
use compact_bytes::CompactBytes;
use rand::Rng;
use smallvec::SmallVec;
use std::cmp::Ordering;

const MAX_LEVEL: usize = 32;
const NIL: u32 = u32::MAX;
const HEAD: u32 = 0;

#[derive(Clone, Copy, Debug)]
struct Link {
    forward: u32,
    span: u32,
}

/// Most nodes have one or two levels (p = 1/4), so those links live inside the node.
type Links = SmallVec<[Link; 2]>;

#[derive(Clone, Debug)]
struct Node {
    member: CompactBytes,
    score: f64,
    backward: u32,
    links: Links,
}

/// Orders (score, member) pairs: by score, then bytewise by member.
fn compare(a_score: f64, a_member: &[u8], b_score: f64, b_member: &[u8]) -> Ordering {
    a_score.partial_cmp(&b_score).unwrap_or(Ordering::Equal).then_with(|| a_member.cmp(b_member))
}

#[derive(Clone, Debug)]
struct SkipList {
    nodes: Vec<Node>,
    free: Vec<u32>,
    level: usize,
    len: usize,
    tail: u32,
}

impl SkipList {
    fn new() -> Self {
        let head = Node { member: CompactBytes::new(b""), score: 0.0, backward: NIL, links: SmallVec::from_elem(Link { forward: NIL, span: 0 }, MAX_LEVEL) };
        SkipList { nodes: vec![head], free: Vec::new(), level: 1, len: 0, tail: NIL }
    }

    fn node(&self, i: u32) -> &Node {
        &self.nodes[i as usize]
    }

    fn node_mut(&mut self, i: u32) -> &mut Node {
        &mut self.nodes[i as usize]
    }

    fn random_level() -> usize {
        let mut rng = rand::thread_rng();
        let mut level = 1;
        // Each level up with probability 1/4, like Redis.
        while level < MAX_LEVEL && rng.gen_range(0..4) == 0 {
            level += 1;
        }
        level
    }

    fn insert(&mut self, score: f64, member: &[u8]) {
        let mut update = [HEAD; MAX_LEVEL];
        let mut rank = [0u32; MAX_LEVEL];
        let mut x = HEAD;
        for i in (0..self.level).rev() {
            rank[i] = if i == self.level - 1 { 0 } else { rank[i + 1] };
            loop {
                let f = self.node(x).links[i].forward;
                if f == NIL || compare(self.node(f).score, &self.node(f).member, score, member) != Ordering::Less {
                    break;
                }
                rank[i] += self.node(x).links[i].span;
                x = f;
            }
            update[i] = x;
        }
        let level = Self::random_level();
        if level > self.level {
            for i in self.level..level {
                rank[i] = 0;
                update[i] = HEAD;
                self.node_mut(HEAD).links[i].span = self.len as u32;
            }
            self.level = level;
        }
        let node = Node { member: CompactBytes::new(member), score, backward: NIL, links: SmallVec::from_elem(Link { forward: NIL, span: 0 }, level) };
        let new = match self.free.pop() {
            Some(slot) => {
                self.nodes[slot as usize] = node;
                slot
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        };
        for i in 0..level {
            let prev = update[i];
            let prev_link = self.node(prev).links[i];
            self.node_mut(new).links[i] = Link { forward: prev_link.forward, span: prev_link.span - (rank[0] - rank[i]) };
            self.node_mut(prev).links[i] = Link { forward: new, span: (rank[0] - rank[i]) + 1 };
        }
        for i in level..self.level {
            self.node_mut(update[i]).links[i].span += 1;
        }
        self.node_mut(new).backward = if update[0] == HEAD { NIL } else { update[0] };
        let next = self.node(new).links[0].forward;
        if next != NIL {
            self.node_mut(next).backward = new;
        } else {
            self.tail = new;
        }
        self.len += 1;
    }

    /// Descends to (score, member): the last node before it on every level, and the node
    /// itself if present.
    fn find_path(&self, score: f64, member: &[u8]) -> ([u32; MAX_LEVEL], Option<u32>) {
        let mut update = [HEAD; MAX_LEVEL];
        let mut x = HEAD;
        for i in (0..self.level).rev() {
            loop {
                let f = self.node(x).links[i].forward;
                if f == NIL || compare(self.node(f).score, &self.node(f).member, score, member) != Ordering::Less {
                    break;
                }
                x = f;
            }
            update[i] = x;
        }
        let target = self.node(x).links[0].forward;
        let found = target != NIL && compare(self.node(target).score, &self.node(target).member, score, member) == Ordering::Equal;
        (update, found.then_some(target))
    }

    /// Unlinks `target` given its path, and frees its slot.
    fn unlink(&mut self, target: u32, update: &[u32; MAX_LEVEL]) {
        for i in 0..self.level {
            let prev = update[i];
            if self.node(prev).links[i].forward == target {
                let t = self.node(target).links[i];
                let p = &mut self.node_mut(prev).links[i];
                p.span = p.span + t.span - 1;
                p.forward = t.forward;
            } else {
                self.node_mut(prev).links[i].span -= 1;
            }
        }
        let next = self.node(target).links[0].forward;
        let back = self.node(target).backward;
        if next != NIL {
            self.node_mut(next).backward = back;
        } else {
            self.tail = back;
        }
        while self.level > 1 && self.node(HEAD).links[self.level - 1].forward == NIL {
            self.level -= 1;
        }
        // Free the slot (and its member bytes) for reuse.
        self.node_mut(target).member = CompactBytes::new(b"");
        self.node_mut(target).links = SmallVec::new();
        self.free.push(target);
        self.len -= 1;
    }

    fn delete(&mut self, score: f64, member: &[u8]) -> bool {
        match self.find_path(score, member) {
            (update, Some(target)) => {
                self.unlink(target, &update);
                true
            }
            _ => false,
        }
    }

    /// Moves (old, member) to score `new`: in place when the order is unchanged (one descent),
    /// otherwise unlinked on the path just found and inserted again (two descents in all).
    fn update_score(&mut self, old: f64, member: &[u8], new: f64) {
        let (update, target) = self.find_path(old, member);
        let Some(target) = target else {
            self.insert(new, member);
            return;
        };
        let prev = self.node(target).backward;
        let next = self.node(target).links[0].forward;
        let after_prev = prev == NIL || compare(self.node(prev).score, &self.node(prev).member, new, member) == Ordering::Less;
        let before_next = next == NIL || compare(new, member, self.node(next).score, &self.node(next).member) == Ordering::Less;
        if after_prev && before_next {
            self.node_mut(target).score = new;
            return;
        }
        self.unlink(target, &update);
        self.insert(new, member);
    }

    /// 0-based rank of (score, member), if present.
    fn rank(&self, score: f64, member: &[u8]) -> Option<usize> {
        let mut x = HEAD;
        let mut rank = 0u32;
        for i in (0..self.level).rev() {
            loop {
                let f = self.node(x).links[i].forward;
                if f == NIL || compare(self.node(f).score, &self.node(f).member, score, member) == Ordering::Greater {
                    break;
                }
                rank += self.node(x).links[i].span;
                x = f;
            }
            if x != HEAD && compare(self.node(x).score, &self.node(x).member, score, member) == Ordering::Equal {
                return Some(rank as usize - 1);
            }
        }
        None
    }

    /// The node at 0-based `rank`.
    fn at_rank(&self, rank: usize) -> Option<u32> {
        let target = rank as u32 + 1;
        let mut traversed = 0u32;
        let mut x = HEAD;
        for i in (0..self.level).rev() {
            loop {
                let link = self.node(x).links[i];
                if link.forward == NIL || traversed + link.span > target {
                    break;
                }
                traversed += link.span;
                x = link.forward;
            }
            if traversed == target {
                return Some(x);
            }
        }
        None
    }

    /// The first node for which `before` is false (the start of a range).
    fn first_not(&self, before: impl Fn(f64, &[u8]) -> bool) -> Option<u32> {
        let mut x = HEAD;
        for i in (0..self.level).rev() {
            loop {
                let f = self.node(x).links[i].forward;
                if f == NIL || !before(self.node(f).score, &self.node(f).member) {
                    break;
                }
                x = f;
            }
        }
        let next = self.node(x).links[0].forward;
        (next != NIL).then_some(next)
    }

    /// The last node for which `within` is true, given `within` holds for a prefix of the order
    /// (the end of a range).
    fn last_within(&self, within: impl Fn(f64, &[u8]) -> bool) -> Option<u32> {
        let mut x = HEAD;
        for i in (0..self.level).rev() {
            loop {
                let f = self.node(x).links[i].forward;
                if f == NIL || !within(self.node(f).score, &self.node(f).member) {
                    break;
                }
                x = f;
            }
        }
        (x != HEAD).then_some(x)
    }
}

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
        self.min.value > self.max.value || (self.min.value == self.max.value && (self.min.exclusive || self.max.exclusive))
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
    list: SkipList,
    packed: bool,
}

impl Default for SortedSet {
    fn default() -> Self {
        Self::new()
    }
}

impl SortedSet {
    pub fn new() -> Self {
        SortedSet { scores: Dict::new(), list: SkipList::new(), packed: true }
    }

    pub fn len(&self) -> usize {
        self.list.len
    }

    pub fn is_empty(&self) -> bool {
        self.list.len == 0
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
                self.list.update_score(o, member, score);
                return old;
            }
            None => {}
        }
        self.scores.insert(member, score);
        self.list.insert(score, member);
        if self.packed && (self.list.len > limits.max_entries || member.len() > limits.max_value) {
            self.packed = false;
        }
        old
    }

    pub fn remove(&mut self, member: &[u8]) -> bool {
        match self.scores.remove(member) {
            Some((_, score)) => self.list.delete(score, member),
            None => false,
        }
    }

    /// 0-based rank from the lowest score (or from the highest when `reverse`).
    pub fn rank(&self, member: &[u8], reverse: bool) -> Option<usize> {
        let score = self.score(member)?;
        let r = self.list.rank(score, member)?;
        Some(if reverse { self.len() - 1 - r } else { r })
    }

    fn entry(&self, node: u32) -> (&[u8], f64) {
        let n = self.list.node(node);
        (n.member.as_slice(), n.score)
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
        let mut node = self.list.at_rank(first_rank);
        for _ in start..=end {
            let Some(n) = node else { break };
            let (m, s) = self.entry(n);
            out.push((m.to_vec(), s));
            node = self.step(n, reverse);
        }
        out
    }

    fn step(&self, node: u32, reverse: bool) -> Option<u32> {
        let n = self.list.node(node);
        let next = if reverse { n.backward } else { n.links[0].forward };
        (next != NIL).then_some(next)
    }

    /// First and last node of a score range.
    fn score_bounds(&self, range: &ScoreRange) -> Option<(u32, u32)> {
        if range.is_empty() {
            return None;
        }
        let first = self.list.first_not(|s, _| !range.above_min(s))?;
        let last = self.list.last_within(|s, _| range.below_max(s))?;
        let (fm, fs) = self.entry(first);
        let (lm, ls) = self.entry(last);
        (compare(fs, fm, ls, lm) != Ordering::Greater).then_some((first, last))
    }

    fn lex_bounds(&self, range: &LexRange) -> Option<(u32, u32)> {
        let first = self.list.first_not(|_, m| !range.above_min(m))?;
        let last = self.list.last_within(|_, m| range.below_max(m))?;
        let (fm, fs) = self.entry(first);
        let (lm, ls) = self.entry(last);
        (compare(fs, fm, ls, lm) != Ordering::Greater).then_some((first, last))
    }

    fn collect(&self, bounds: Option<(u32, u32)>, reverse: bool, offset: usize, limit: Option<usize>) -> Vec<(Vec<u8>, f64)> {
        let mut out = Vec::new();
        let Some((first, last)) = bounds else { return out };
        let (mut node, stop) = if reverse { (Some(last), first) } else { (Some(first), last) };
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

    pub fn range_by_score(&self, range: &ScoreRange, reverse: bool, offset: usize, limit: Option<usize>) -> Vec<(Vec<u8>, f64)> {
        self.collect(self.score_bounds(range), reverse, offset, limit)
    }

    pub fn range_by_lex(&self, range: &LexRange, reverse: bool, offset: usize, limit: Option<usize>) -> Vec<(Vec<u8>, f64)> {
        self.collect(self.lex_bounds(range), reverse, offset, limit)
    }

    fn count_between(&self, bounds: Option<(u32, u32)>) -> usize {
        let Some((first, last)) = bounds else { return 0 };
        let (fm, fs) = self.entry(first);
        let (lm, ls) = self.entry(last);
        match (self.list.rank(fs, fm), self.list.rank(ls, lm)) {
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
        let mut node = self.list.node(HEAD).links[0].forward;
        std::iter::from_fn(move || {
            if node == NIL {
                return None;
            }
            let n = self.list.node(node);
            node = n.links[0].forward;
            Some((n.member.as_slice(), n.score))
        })
    }

    pub fn random_member(&self, rng: &mut impl Rng) -> Option<(&[u8], f64)> {
        self.scores.random_entry(rng).map(|(k, v)| (k.as_slice(), *v))
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

    const LIMITS: ZSetLimits = ZSetLimits { max_entries: 128, max_value: 64 };

    fn range(min: f64, max: f64) -> ScoreRange {
        ScoreRange { min: ScoreBound { value: min, exclusive: false }, max: ScoreBound { value: max, exclusive: false } }
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
        assert_eq!(all.iter().map(|(m, _)| m.clone()).collect::<Vec<_>>(), model.iter().map(|(_, m)| m.clone()).collect::<Vec<_>>());
        let expected = model.iter().filter(|(s, _)| (10.0..=20.0).contains(s)).count();
        assert_eq!(z.count_by_score(&range(10.0, 20.0)), expected);
        assert_eq!(z.range_by_score(&range(10.0, 20.0), false, 0, None).len(), expected);
        assert_eq!(z.range_by_score(&range(10.0, 20.0), true, 0, None).len(), expected);
        let rev = z.range_by_rank(0, 2, true);
        assert_eq!(rev[0].0, model.last().unwrap().1);
    }

    #[test]
    fn lex_ranges() {
        let mut z = SortedSet::new();
        for m in ["a", "b", "c", "d"] {
            z.insert(m.as_bytes(), 0.0, LIMITS);
        }
        let r = LexRange { min: LexBound::Exclusive(b"a".to_vec()), max: LexBound::Inclusive(b"c".to_vec()) };
        let got: Vec<Vec<u8>> = z.range_by_lex(&r, false, 0, None).into_iter().map(|(m, _)| m).collect();
        assert_eq!(got, vec![b"b".to_vec(), b"c".to_vec()]);
        assert_eq!(z.count_by_lex(&r), 2);
        let all = LexRange { min: LexBound::NegInf, max: LexBound::PosInf };
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
