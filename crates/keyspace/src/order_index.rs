//! The order of a sorted set: (score, member) pairs in a B+ tree whose inner nodes count the
//! elements under each child.
//!
//! Redis keeps this order in a skip list. A skip list descent visits some thirty nodes for
//! 100,000 elements, each a likely cache miss; here a descent reads one node per level (about
//! three levels) and binary-searches contiguous arrays, so ZADD, ZRANK and range starts cost a
//! fraction of the memory traffic. The per-child counts give O(log n) ranks and rank lookups,
//! and leaves are chained both ways for range scans. Everything lives in arenas indexed by
//! `u32`, so there is no unsafe code and no per-element allocation.

use compact_bytes::CompactBytes;
use smallvec::SmallVec;
use std::cmp::Ordering;

/// Elements per leaf at most (32 bytes each: a 2 KiB leaf).
const LEAF_CAP: usize = 64;
/// Children per inner node at most.
const INNER_CAP: usize = 64;
/// A leaf this small is merged into a neighbour when both fit in one leaf.
const LEAF_MIN: usize = LEAF_CAP / 4;
const NIL: u32 = u32::MAX;

/// Orders (score, member) pairs: by score, then bytewise by member.
pub fn compare(a_score: f64, a_member: &[u8], b_score: f64, b_member: &[u8]) -> Ordering {
    a_score
        .partial_cmp(&b_score)
        .unwrap_or(Ordering::Equal)
        .then_with(|| a_member.cmp(b_member))
}

#[derive(Clone, Debug)]
struct Entry {
    score: f64,
    member: CompactBytes,
}

impl Entry {
    fn cmp_key(&self, score: f64, member: &[u8]) -> Ordering {
        compare(self.score, self.member.as_slice(), score, member)
    }
}

#[derive(Clone, Debug, Default)]
struct Leaf {
    entries: Vec<Entry>,
    prev: u32,
    next: u32,
}

#[derive(Clone, Debug, Default)]
struct Inner {
    children: Vec<u32>,
    /// Elements under each child.
    counts: Vec<usize>,
    /// The smallest element under each child (a copy), for choosing where to descend.
    mins: Vec<Entry>,
}

/// Where one element sits: a leaf and an index in it. Valid until the index changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pos {
    leaf: u32,
    idx: u32,
}

/// The inner nodes passed on the way down, with the child taken in each.
type Path = SmallVec<[(u32, usize); 8]>;

#[derive(Clone, Debug)]
pub struct OrderIndex {
    leaves: Vec<Leaf>,
    inners: Vec<Inner>,
    free_leaves: Vec<u32>,
    free_inners: Vec<u32>,
    root: u32,
    /// Levels of inner nodes above the leaves (0: the root is a leaf).
    height: usize,
    first: u32,
    last: u32,
    len: usize,
}

impl Default for OrderIndex {
    fn default() -> Self {
        Self::new()
    }
}

impl OrderIndex {
    pub fn new() -> Self {
        OrderIndex {
            leaves: vec![Leaf {
                entries: Vec::new(),
                prev: NIL,
                next: NIL,
            }],
            inners: Vec::new(),
            free_leaves: Vec::new(),
            free_inners: Vec::new(),
            root: 0,
            height: 0,
            first: 0,
            last: 0,
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes held by the index's arrays (MEMORY USAGE).
    pub fn allocated_bytes(&self) -> usize {
        let leaves: usize = self
            .leaves
            .iter()
            .map(|l| l.entries.capacity() * std::mem::size_of::<Entry>())
            .sum();
        let inners: usize = self
            .inners
            .iter()
            .map(|i| i.children.capacity() * (4 + 8 + std::mem::size_of::<Entry>()))
            .sum();
        leaves
            + inners
            + self.leaves.capacity() * std::mem::size_of::<Leaf>()
            + self.inners.capacity() * std::mem::size_of::<Inner>()
    }

    fn new_leaf(&mut self, leaf: Leaf) -> u32 {
        match self.free_leaves.pop() {
            Some(id) => {
                self.leaves[id as usize] = leaf;
                id
            }
            None => {
                self.leaves.push(leaf);
                (self.leaves.len() - 1) as u32
            }
        }
    }

    fn new_inner(&mut self, inner: Inner) -> u32 {
        match self.free_inners.pop() {
            Some(id) => {
                self.inners[id as usize] = inner;
                id
            }
            None => {
                self.inners.push(inner);
                (self.inners.len() - 1) as u32
            }
        }
    }

    fn leaf(&self, id: u32) -> &Leaf {
        &self.leaves[id as usize]
    }

    fn inner(&self, id: u32) -> &Inner {
        &self.inners[id as usize]
    }

    /// Descends towards (score, member), returning the path and the leaf reached.
    fn descend(&self, score: f64, member: &[u8]) -> (Path, u32) {
        let mut path = Path::new();
        let mut node = self.root;
        for _ in 0..self.height {
            let inner = self.inner(node);
            let above = inner
                .mins
                .partition_point(|m| m.cmp_key(score, member) != Ordering::Greater);
            let child = above.saturating_sub(1);
            path.push((node, child));
            node = inner.children[child];
        }
        (path, node)
    }

    fn subtree_count(&self, node: u32, depth: usize) -> usize {
        if depth == self.height {
            self.leaf(node).entries.len()
        } else {
            self.inner(node).counts.iter().sum()
        }
    }

    fn subtree_min(&self, node: u32, depth: usize) -> Entry {
        if depth == self.height {
            self.leaf(node).entries[0].clone()
        } else {
            self.inner(node).mins[0].clone()
        }
    }

    /// After the smallest element under the end of `path` changed, copies the new minimum up
    /// as far as it is a minimum.
    fn refresh_mins(&mut self, path: &[(u32, usize)]) {
        let Some(&(bottom, child)) = path.last() else {
            return;
        };
        let min = self.subtree_min(self.inner(bottom).children[child], path.len());
        for &(inner, child) in path.iter().rev() {
            self.inners[inner as usize].mins[child] = min.clone();
            if child != 0 {
                break;
            }
        }
    }

    /// Adds (score, member); the caller knows it is absent.
    pub fn insert(&mut self, score: f64, member: &[u8]) {
        let (path, leaf_id) = self.descend(score, member);
        let idx = self
            .leaf(leaf_id)
            .entries
            .partition_point(|e| e.cmp_key(score, member) == Ordering::Less);
        let entry = Entry {
            score,
            member: CompactBytes::new(member),
        };
        for &(inner, child) in &path {
            self.inners[inner as usize].counts[child] += 1;
        }
        self.len += 1;
        if self.leaf(leaf_id).entries.len() < LEAF_CAP {
            self.leaves[leaf_id as usize].entries.insert(idx, entry);
            if idx == 0 {
                self.refresh_mins(&path);
            }
            return;
        }
        // Full: split, then insert into the half the element belongs to. Appending at the very
        // end (or the very start) starts a fresh leaf instead, so ascending loads fill leaves.
        let leaf = &mut self.leaves[leaf_id as usize];
        let right_entries = if idx == LEAF_CAP && leaf_id == self.last {
            vec![entry]
        } else if idx == 0 && leaf_id == self.first {
            let mut moved = Vec::with_capacity(LEAF_CAP);
            moved.push(entry);
            std::mem::replace(&mut leaf.entries, moved)
        } else {
            let mut right = Vec::with_capacity(LEAF_CAP);
            right.extend(leaf.entries.drain(LEAF_CAP / 2..));
            if idx >= LEAF_CAP / 2 {
                right.insert(idx - LEAF_CAP / 2, entry);
            } else {
                leaf.entries.insert(idx, entry);
            }
            right
        };
        let next = leaf.next;
        let right_count = right_entries.len();
        let right_min = right_entries[0].clone();
        let right_id = self.new_leaf(Leaf {
            entries: right_entries,
            prev: leaf_id,
            next,
        });
        self.leaves[leaf_id as usize].next = right_id;
        if next == NIL {
            self.last = right_id;
        } else {
            self.leaves[next as usize].prev = right_id;
        }
        if idx == 0 {
            // The new element is the left leaf's first (prepend, or a split below the middle).
            self.refresh_mins(&path);
        }
        self.add_child_after(&path, path.len(), leaf_id, right_id, right_count, right_min);
    }

    /// Links `new` (with `count` elements, smallest `min`) right after `left`, whose parent is
    /// at `path[depth - 1]` (depth 0: `left` is the root). Splits parents that overflow.
    fn add_child_after(
        &mut self,
        path: &[(u32, usize)],
        depth: usize,
        left: u32,
        new: u32,
        count: usize,
        min: Entry,
    ) {
        if depth == 0 {
            let left_count = self.subtree_count(left, 0);
            let left_min = self.subtree_min(left, 0);
            let root = self.new_inner(Inner {
                children: vec![left, new],
                counts: vec![left_count, count],
                mins: vec![left_min, min],
            });
            self.root = root;
            self.height += 1;
            return;
        }
        let (parent, child) = path[depth - 1];
        let p = &mut self.inners[parent as usize];
        p.counts[child] -= count;
        p.children.insert(child + 1, new);
        p.counts.insert(child + 1, count);
        p.mins.insert(child + 1, min);
        if p.children.len() <= INNER_CAP {
            return;
        }
        let half = p.children.len() / 2;
        let right = Inner {
            children: p.children.split_off(half),
            counts: p.counts.split_off(half),
            mins: p.mins.split_off(half),
        };
        let right_count = right.counts.iter().sum();
        let right_min = right.mins[0].clone();
        let right_id = self.new_inner(right);
        self.add_child_after(path, depth - 1, parent, right_id, right_count, right_min);
    }

    /// Removes (score, member); false if absent.
    pub fn delete(&mut self, score: f64, member: &[u8]) -> bool {
        let (path, leaf_id) = self.descend(score, member);
        let entries = &self.leaf(leaf_id).entries;
        let idx = entries.partition_point(|e| e.cmp_key(score, member) == Ordering::Less);
        if idx >= entries.len() || entries[idx].cmp_key(score, member) != Ordering::Equal {
            return false;
        }
        self.leaves[leaf_id as usize].entries.remove(idx);
        for &(inner, child) in &path {
            self.inners[inner as usize].counts[child] -= 1;
        }
        self.len -= 1;
        let remaining = self.leaf(leaf_id).entries.len();
        if remaining == 0 {
            self.remove_leaf(&path, leaf_id);
        } else {
            if idx == 0 {
                self.refresh_mins(&path);
            }
            if remaining < LEAF_MIN {
                self.merge_with_neighbour(&path, leaf_id);
            }
        }
        true
    }

    /// Folds a small leaf into its right sibling under the same parent (or the left one into
    /// it), when the two fit in one leaf: deletions never leave a trail of near-empty leaves.
    fn merge_with_neighbour(&mut self, path: &[(u32, usize)], leaf_id: u32) {
        let Some(&(parent, child)) = path.last() else {
            return;
        };
        let siblings = self.inner(parent).children.len();
        let (left_child, left, right) = if child + 1 < siblings {
            (child, leaf_id, self.inner(parent).children[child + 1])
        } else if child > 0 {
            (child - 1, self.inner(parent).children[child - 1], leaf_id)
        } else {
            return;
        };
        if self.leaf(left).entries.len() + self.leaf(right).entries.len() > LEAF_CAP {
            return;
        }
        let moved = std::mem::take(&mut self.leaves[right as usize].entries);
        let count = moved.len();
        self.leaves[left as usize].entries.extend(moved);
        // Account the moved elements to the left child, then drop the emptied right leaf.
        let p = &mut self.inners[parent as usize];
        p.counts[left_child] += count;
        p.counts[left_child + 1] -= count;
        let mut right_path: Path = path.iter().copied().collect();
        if let Some(last) = right_path.last_mut() {
            last.1 = left_child + 1;
        }
        self.remove_leaf(&right_path, right);
    }

    /// Unlinks an empty leaf and removes it from its parent (and empty ancestors).
    fn remove_leaf(&mut self, path: &[(u32, usize)], leaf_id: u32) {
        if path.is_empty() {
            return; // The root leaf stays, empty.
        }
        let Leaf { prev, next, .. } = std::mem::take(&mut self.leaves[leaf_id as usize]);
        if prev == NIL {
            self.first = next;
        } else {
            self.leaves[prev as usize].next = next;
        }
        if next == NIL {
            self.last = prev;
        } else {
            self.leaves[next as usize].prev = prev;
        }
        self.free_leaves.push(leaf_id);
        self.remove_child(path, path.len() - 1);
        while self.height > 0 && self.inner(self.root).children.len() == 1 {
            let old = self.root;
            self.root = self.inner(old).children[0];
            self.inners[old as usize] = Inner::default();
            self.free_inners.push(old);
            self.height -= 1;
        }
    }

    /// Removes the child taken at `path[depth]` from that inner node.
    fn remove_child(&mut self, path: &[(u32, usize)], depth: usize) {
        let (inner, child) = path[depth];
        let node = &mut self.inners[inner as usize];
        node.children.remove(child);
        node.counts.remove(child);
        node.mins.remove(child);
        if node.children.is_empty() {
            self.inners[inner as usize] = Inner::default();
            self.free_inners.push(inner);
            if depth == 0 {
                // Everything is gone: start over with one empty leaf.
                let leaf = self.new_leaf(Leaf {
                    entries: Vec::new(),
                    prev: NIL,
                    next: NIL,
                });
                self.root = leaf;
                self.height = 0;
                self.first = leaf;
                self.last = leaf;
            } else {
                self.remove_child(path, depth - 1);
            }
        } else if child == 0 {
            self.refresh_mins(&path[..=depth]);
        }
    }

    /// Moves (old, member) to score `new`: in place when its neighbours keep it in order,
    /// otherwise by deletion and insertion.
    pub fn update_score(&mut self, old: f64, member: &[u8], new: f64) {
        let (path, leaf_id) = self.descend(old, member);
        let entries = &self.leaf(leaf_id).entries;
        let idx = entries.partition_point(|e| e.cmp_key(old, member) == Ordering::Less);
        if idx < entries.len() && entries[idx].cmp_key(old, member) == Ordering::Equal {
            let pos = Pos {
                leaf: leaf_id,
                idx: idx as u32,
            };
            let after_prev = self.prev(pos).map_or(true, |p| {
                let (m, s) = self.entry(p);
                compare(s, m, new, member) == Ordering::Less
            });
            let before_next = self.next(pos).map_or(true, |n| {
                let (m, s) = self.entry(n);
                compare(new, member, s, m) == Ordering::Less
            });
            if after_prev && before_next {
                self.leaves[leaf_id as usize].entries[idx].score = new;
                if idx == 0 {
                    self.refresh_mins(&path);
                }
                return;
            }
        }
        self.delete(old, member);
        self.insert(new, member);
    }

    /// 0-based rank of (score, member), if present.
    pub fn rank(&self, score: f64, member: &[u8]) -> Option<usize> {
        let mut before = 0;
        let mut node = self.root;
        for _ in 0..self.height {
            let inner = self.inner(node);
            let above = inner
                .mins
                .partition_point(|m| m.cmp_key(score, member) != Ordering::Greater);
            let child = above.saturating_sub(1);
            before += inner.counts[..child].iter().sum::<usize>();
            node = inner.children[child];
        }
        let entries = &self.leaf(node).entries;
        let idx = entries.partition_point(|e| e.cmp_key(score, member) == Ordering::Less);
        (idx < entries.len() && entries[idx].cmp_key(score, member) == Ordering::Equal)
            .then_some(before + idx)
    }

    /// The element at 0-based `rank`.
    pub fn at_rank(&self, rank: usize) -> Option<Pos> {
        if rank >= self.len {
            return None;
        }
        let mut rest = rank;
        let mut node = self.root;
        for _ in 0..self.height {
            let inner = self.inner(node);
            let mut child = 0;
            while child + 1 < inner.counts.len() && rest >= inner.counts[child] {
                rest -= inner.counts[child];
                child += 1;
            }
            node = inner.children[child];
        }
        (rest < self.leaf(node).entries.len()).then_some(Pos {
            leaf: node,
            idx: rest as u32,
        })
    }

    /// The first element for which `before` is false, given `before` holds for a prefix of
    /// the order (the start of a range).
    pub fn first_not(&self, before: impl Fn(f64, &[u8]) -> bool) -> Option<Pos> {
        if self.len == 0 {
            return None;
        }
        let mut node = self.root;
        for _ in 0..self.height {
            let inner = self.inner(node);
            let child = inner
                .mins
                .partition_point(|m| before(m.score, m.member.as_slice()))
                .saturating_sub(1);
            node = inner.children[child];
        }
        let leaf = self.leaf(node);
        let idx = leaf
            .entries
            .partition_point(|e| before(e.score, e.member.as_slice()));
        if idx < leaf.entries.len() {
            return Some(Pos {
                leaf: node,
                idx: idx as u32,
            });
        }
        (leaf.next != NIL).then_some(Pos {
            leaf: leaf.next,
            idx: 0,
        })
    }

    /// The last element for which `within` is true, given `within` holds for a prefix of the
    /// order (the end of a range).
    pub fn last_within(&self, within: impl Fn(f64, &[u8]) -> bool) -> Option<Pos> {
        match self.first_not(within) {
            Some(pos) => self.prev(pos),
            None => self.last_pos(),
        }
    }

    pub fn first_pos(&self) -> Option<Pos> {
        (self.len > 0).then_some(Pos {
            leaf: self.first,
            idx: 0,
        })
    }

    pub fn last_pos(&self) -> Option<Pos> {
        let leaf = self.leaf(self.last);
        (self.len > 0).then(|| Pos {
            leaf: self.last,
            idx: (leaf.entries.len() - 1) as u32,
        })
    }

    pub fn next(&self, pos: Pos) -> Option<Pos> {
        let leaf = self.leaf(pos.leaf);
        if (pos.idx as usize) + 1 < leaf.entries.len() {
            return Some(Pos {
                leaf: pos.leaf,
                idx: pos.idx + 1,
            });
        }
        (leaf.next != NIL).then_some(Pos {
            leaf: leaf.next,
            idx: 0,
        })
    }

    pub fn prev(&self, pos: Pos) -> Option<Pos> {
        if pos.idx > 0 {
            return Some(Pos {
                leaf: pos.leaf,
                idx: pos.idx - 1,
            });
        }
        let prev = self.leaf(pos.leaf).prev;
        (prev != NIL).then(|| Pos {
            leaf: prev,
            idx: (self.leaf(prev).entries.len() - 1) as u32,
        })
    }

    /// The member and score at `pos`.
    pub fn entry(&self, pos: Pos) -> (&[u8], f64) {
        let e = &self.leaf(pos.leaf).entries[pos.idx as usize];
        (e.member.as_slice(), e.score)
    }

    /// Every element in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], f64)> {
        let mut leaf = if self.len == 0 { NIL } else { self.first };
        let mut idx = 0usize;
        std::iter::from_fn(move || loop {
            if leaf == NIL {
                return None;
            }
            let l = self.leaf(leaf);
            if idx < l.entries.len() {
                let e = &l.entries[idx];
                idx += 1;
                return Some((e.member.as_slice(), e.score));
            }
            leaf = l.next;
            idx = 0;
        })
    }

    /// Checks every structural invariant (tests).
    #[cfg(test)]
    fn check(&self) {
        fn walk(ix: &OrderIndex, node: u32, depth: usize, out: &mut Vec<u32>) -> usize {
            if depth == ix.height {
                let n = ix.leaf(node).entries.len();
                assert!(n > 0 || ix.len == 0);
                out.push(node);
                return n;
            }
            let inner = ix.inner(node);
            assert!(!inner.children.is_empty() && inner.children.len() <= INNER_CAP);
            let mut total = 0;
            for (i, &c) in inner.children.iter().enumerate() {
                let n = walk(ix, c, depth + 1, out);
                assert_eq!(n, inner.counts[i], "count of child {i}");
                let min = ix.subtree_min(c, depth + 1);
                assert_eq!(
                    min.cmp_key(inner.mins[i].score, inner.mins[i].member.as_slice()),
                    Ordering::Equal,
                    "min of child {i}"
                );
                total += n;
            }
            total
        }
        let mut leaves = Vec::new();
        assert_eq!(walk(self, self.root, 0, &mut leaves), self.len);
        assert_eq!(leaves.first().copied(), Some(self.first));
        assert_eq!(leaves.last().copied(), Some(self.last));
        for w in leaves.windows(2) {
            assert_eq!(self.leaf(w[0]).next, w[1]);
            assert_eq!(self.leaf(w[1]).prev, w[0]);
        }
        let all: Vec<(&[u8], f64)> = self.iter().collect();
        assert_eq!(all.len(), self.len);
        for w in all.windows(2) {
            assert_eq!(compare(w[0].1, w[0].0, w[1].1, w[1].0), Ordering::Less);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn matches_a_sorted_vector_through_random_changes() {
        let mut rng = rand::thread_rng();
        let mut ix = OrderIndex::new();
        let mut current: std::collections::HashMap<Vec<u8>, f64> = std::collections::HashMap::new();
        for step in 0..80_000 {
            let member = format!("m{}", rng.gen_range(0..20_000)).into_bytes();
            let score = rng.gen_range(0..200) as f64;
            match (rng.gen_range(0..4), current.get(&member).copied()) {
                (0, Some(old)) => {
                    assert!(ix.delete(old, &member));
                    current.remove(&member);
                }
                (1, Some(old)) => {
                    ix.update_score(old, &member, score);
                    current.insert(member, score);
                }
                (_, None) => {
                    ix.insert(score, &member);
                    current.insert(member, score);
                }
                _ => {}
            }
            if step % 20_000 == 0 {
                ix.check();
            }
        }
        ix.check();
        let mut model: Vec<(f64, Vec<u8>)> = current.into_iter().map(|(m, s)| (s, m)).collect();
        model.sort_by(|a, b| compare(a.0, &a.1, b.0, &b.1));
        assert_eq!(ix.len(), model.len());
        assert!(
            ix.height >= 2,
            "the test must build a tree of several levels"
        );
        for (rank, (score, member)) in model.iter().enumerate() {
            assert_eq!(ix.rank(*score, member), Some(rank));
            let pos = ix.at_rank(rank).unwrap();
            assert_eq!(ix.entry(pos), (member.as_slice(), *score));
        }
        assert_eq!(ix.at_rank(model.len()), None);
        for bound in [-1.0, 0.0, 57.0, 57.5, 199.0, 500.0] {
            let first = ix
                .first_not(|s, _| s < bound)
                .map(|p| ix.rank(ix.entry(p).1, ix.entry(p).0).unwrap());
            assert_eq!(
                first,
                model.iter().position(|(s, _)| *s >= bound),
                "first >= {bound}"
            );
            let last = ix
                .last_within(|s, _| s <= bound)
                .map(|p| ix.rank(ix.entry(p).1, ix.entry(p).0).unwrap());
            assert_eq!(
                last,
                model.iter().rposition(|(s, _)| *s <= bound),
                "last <= {bound}"
            );
        }
        // Walk backwards from the end.
        let mut pos = ix.last_pos();
        let mut back = Vec::new();
        while let Some(p) = pos {
            back.push(ix.entry(p).0.to_vec());
            pos = ix.prev(p);
        }
        back.reverse();
        assert_eq!(
            back,
            model.iter().map(|(_, m)| m.clone()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn draining_from_either_end_and_refilling() {
        let mut ix = OrderIndex::new();
        for i in 0..10_000 {
            ix.insert(i as f64, format!("e{i}").as_bytes());
        }
        ix.check();
        // Ascending loads fill leaves instead of leaving them half empty.
        let leaves_in_use = ix.leaves.len() - ix.free_leaves.len();
        assert!(
            leaves_in_use <= 10_000 / LEAF_CAP + 2,
            "{leaves_in_use} leaves"
        );
        for i in 0..5000 {
            let p = ix.first_pos().unwrap();
            assert_eq!(ix.entry(p).1, i as f64);
            assert!(ix.delete(i as f64, format!("e{i}").as_bytes()));
        }
        for i in (5000..10_000).rev() {
            assert!(ix.delete(i as f64, format!("e{i}").as_bytes()));
        }
        assert!(ix.is_empty());
        assert_eq!(ix.first_pos(), None);
        assert_eq!(ix.iter().count(), 0);
        ix.check();
        for i in (0..3000).rev() {
            ix.insert(i as f64, b"same");
            ix.insert(i as f64, b"other");
        }
        ix.check();
        assert_eq!(ix.rank(0.0, b"other"), Some(0));
        assert_eq!(ix.rank(2999.0, b"same"), Some(5999));
    }
}
