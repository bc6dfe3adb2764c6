//! A set of `u128` keys stored as disjoint, non-adjacent inclusive intervals, so that "lowest
//! member not in the set at or after x" is one ordered-map lookup. Memory grows with the number
//! of runs of used addresses, never with pool size. Pure; no I/O.

use std::collections::BTreeMap;

/// Disjoint, non-adjacent inclusive intervals keyed by their start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct IntervalSet {
    runs: BTreeMap<u128, u128>,
}

impl IntervalSet {
    /// The run containing `key`, if any.
    fn run_of(&self, key: u128) -> Option<(u128, u128)> {
        self.runs
            .range(..=key)
            .next_back()
            .map(|(&lo, &hi)| (lo, hi))
            .filter(|&(_, hi)| hi >= key)
    }

    /// Whether `key` is in the set.
    #[cfg(test)]
    pub(crate) fn contains(&self, key: u128) -> bool {
        self.run_of(key).is_some()
    }

    /// Adds `key`, merging with neighbouring runs. Returns false if it was already present.
    pub(crate) fn insert(&mut self, key: u128) -> bool {
        let before = self.runs.range(..=key).next_back().map(|(&l, &h)| (l, h));
        if let Some((_, hi)) = before
            && hi >= key
        {
            return false;
        }
        let after = key
            .checked_add(1)
            .and_then(|next| self.runs.get(&next).map(|&hi| (next, hi)));
        let joins_before = before.filter(|&(_, hi)| hi.checked_add(1) == Some(key));
        match (joins_before, after) {
            (Some((lo, _)), Some((next, hi))) => {
                self.runs.remove(&next);
                self.runs.insert(lo, hi);
            }
            (Some((lo, _)), None) => {
                self.runs.insert(lo, key);
            }
            (None, Some((next, hi))) => {
                self.runs.remove(&next);
                self.runs.insert(key, hi);
            }
            (None, None) => {
                self.runs.insert(key, key);
            }
        }
        true
    }

    /// Removes `key`, splitting its run. Returns false if it was absent.
    pub(crate) fn remove(&mut self, key: u128) -> bool {
        let Some((lo, hi)) = self.run_of(key) else {
            return false;
        };
        if lo == key {
            self.runs.remove(&lo);
        } else {
            self.runs.insert(lo, key - 1);
        }
        if hi > key {
            self.runs.insert(key + 1, hi);
        }
        true
    }

    /// The lowest key in `lo..=hi` that is not in the set.
    pub(crate) fn first_free(&self, lo: u128, hi: u128) -> Option<u128> {
        let candidate = match self.run_of(lo) {
            None => lo,
            // Runs are never adjacent, so the key after a run is free.
            Some((_, end)) => end.checked_add(1)?,
        };
        (candidate <= hi).then_some(candidate)
    }

    /// How many members lie in `lo..=hi`.
    pub(crate) fn count_in(&self, lo: u128, hi: u128) -> u128 {
        let first = self.runs.range(..lo).next_back().map(|(&l, &h)| (l, h));
        first
            .into_iter()
            .chain(self.runs.range(lo..=hi).map(|(&l, &h)| (l, h)))
            .filter(|&(l, h)| h >= lo && l <= hi)
            .map(|(l, h)| (h.min(hi) - l.max(lo)).saturating_add(1))
            .fold(0u128, u128::saturating_add)
    }

    /// Number of runs (memory use is proportional to this).
    #[cfg(test)]
    pub(crate) fn runs(&self) -> usize {
        self.runs.len()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn insert_merges_and_remove_splits() {
        let mut s = IntervalSet::default();
        assert!(s.insert(5));
        assert!(s.insert(7));
        assert_eq!(s.runs(), 2);
        assert!(s.insert(6));
        assert_eq!(s.runs(), 1);
        assert!(!s.insert(6));
        assert!(s.remove(6));
        assert_eq!(s.runs(), 2);
        assert!(!s.contains(6));
        assert!(s.contains(5) && s.contains(7));
        assert!(!s.remove(6));
    }

    #[test]
    fn first_free_skips_runs() {
        let mut s = IntervalSet::default();
        for k in 10..20 {
            s.insert(k);
        }
        assert_eq!(s.first_free(10, 30), Some(20));
        assert_eq!(s.first_free(5, 30), Some(5));
        assert_eq!(s.first_free(10, 19), None);
        assert_eq!(s.first_free(15, 25), Some(20));
    }

    #[test]
    fn extremes_do_not_overflow() {
        let mut s = IntervalSet::default();
        assert!(s.insert(u128::MAX));
        assert!(s.insert(u128::MAX - 1));
        assert_eq!(s.runs(), 1);
        assert_eq!(s.first_free(u128::MAX - 1, u128::MAX), None);
        assert!(s.insert(0));
        assert!(s.remove(u128::MAX));
        assert_eq!(s.first_free(u128::MAX - 1, u128::MAX), Some(u128::MAX));
    }

    proptest! {
        #[test]
        fn behaves_like_a_plain_set(ops in prop::collection::vec((any::<bool>(), 0u128..64), 0..200)) {
            let mut s = IntervalSet::default();
            let mut model = BTreeSet::new();
            for (add, k) in ops {
                if add {
                    prop_assert_eq!(s.insert(k), model.insert(k));
                } else {
                    prop_assert_eq!(s.remove(k), model.remove(&k));
                }
                let expected = (0u128..64).find(|k| !model.contains(k));
                prop_assert_eq!(s.first_free(0, 63), expected);
                let inside = model.range(10..=40).count() as u128;
                prop_assert_eq!(s.count_in(10, 40), inside);
            }
            for k in 0u128..64 {
                prop_assert_eq!(s.contains(k), model.contains(&k));
            }
        }
    }
}
