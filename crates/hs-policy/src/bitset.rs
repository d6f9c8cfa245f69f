//! A fixed-size bit set over node indices: rule membership and peer sets are kept as bit sets
//! so that set algebra over thousands of nodes is a few hundred word operations.

/// A set of node indices `0..len`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct NodeSet {
    words: Vec<u64>,
}

impl NodeSet {
    /// An empty set able to hold `len` indices.
    pub fn new(len: usize) -> Self {
        Self {
            words: vec![0; len.div_ceil(64)],
        }
    }

    /// A set holding every index in `0..len`.
    pub fn full(len: usize) -> Self {
        let mut s = Self::new(len);
        for i in 0..len {
            s.insert(i);
        }
        s
    }

    /// Adds `i`.
    pub fn insert(&mut self, i: usize) {
        if let Some(w) = self.words.get_mut(i / 64) {
            *w |= 1 << (i % 64);
        }
    }

    /// Removes `i`.
    pub fn remove(&mut self, i: usize) {
        if let Some(w) = self.words.get_mut(i / 64) {
            *w &= !(1 << (i % 64));
        }
    }

    /// True when `i` is in the set.
    pub fn contains(&self, i: usize) -> bool {
        self.words
            .get(i / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    /// Adds every member of `o`.
    pub fn union_with(&mut self, o: &NodeSet) {
        for (a, b) in self.words.iter_mut().zip(&o.words) {
            *a |= b;
        }
    }

    /// True when the sets share a member.
    pub fn intersects(&self, o: &NodeSet) -> bool {
        self.words.iter().zip(&o.words).any(|(a, b)| a & b != 0)
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }

    /// Members in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(wi, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let b = w.trailing_zeros() as usize;
                w &= w - 1;
                Some(wi * 64 + b)
            })
        })
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// This set, able to hold `len` indices (members at or past `len` are dropped), with `i`
    /// in it or not as `member` says: a set after one node changed (or was appended).
    pub fn patched(&self, len: usize, i: usize, member: bool) -> NodeSet {
        let mut words = self.words.clone();
        words.resize(len.div_ceil(64), 0);
        if !len.is_multiple_of(64)
            && let Some(last) = words.last_mut()
        {
            *last &= (1u64 << (len % 64)) - 1;
        }
        let mut s = NodeSet { words };
        if member {
            s.insert(i);
        } else {
            s.remove(i);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_ops() {
        let mut a = NodeSet::new(130);
        a.insert(0);
        a.insert(129);
        let mut b = NodeSet::new(130);
        b.insert(64);
        assert!(!a.intersects(&b));
        b.union_with(&a);
        assert_eq!(b.iter().collect::<Vec<_>>(), vec![0, 64, 129]);
        b.remove(0);
        assert!(!b.contains(0));
        assert_eq!(b.len(), 2);
        assert_eq!(NodeSet::full(3).len(), 3);
    }
}
