//! A multiset of finite values kept compactly: sorted distinct values with their counts.
//!
//! Instrument values repeat a lot (a value rounded to 3 significant digits takes a few
//! thousand distinct values however many samples there are), and rank statistics only need
//! each distinct value once with its multiplicity. New values go to an unsorted tail that is
//! sorted and merged in whenever it grows to half the compacted part, so adding n values costs
//! O(n log n) in all and the memory held is about the number of distinct values (plus a tail
//! no larger than half of that). Without ties the counts are not stored at all (8 bytes a value,
//! as a plain vector).
//!
//! Adding a value is a store into the tail; the work is in the compaction, which the profile of
//! the discrimination report puts first, so it is written for speed. The tail holds integer
//! keys in the values' total order. Once values repeat, a compaction does not sort the tail: a
//! guide over the held values places each pending value by a shift and a short binary search
//! and adds one to its count ([`Tally::add_keys_guided`]); only values seen for the first time
//! are sorted, and moved in as blocks. Before values repeat, the tail is sorted and walked
//! along the held values. Nothing is allocated per value, and the held vectors are only
//! reallocated when new values arrive.

use std::cmp::Ordering;
use std::mem::size_of;

/// The smallest tail that triggers a compaction.
const MIN_TAIL: usize = 256;

/// From how many distinct values a compaction looks pending values up through a guide instead
/// of sorting them ([`Tally::add_keys_guided`]).
const GUIDED: usize = 64;

/// The guide splits the held values into 2^GUIDE_BITS ranges of keys.
const GUIDE_BITS: u32 = 8;

/// A compaction of at least this many pending values that finds no value twice puts the tally
/// in sparse mode ([`Tally::tail_limit`]).
const SPARSE_EVIDENCE: usize = 4096;

/// Sorted distinct values with counts, plus values not merged in yet.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    /// Distinct values, ascending (−0 and 0 are one value).
    values: Vec<f64>,
    /// The count of each value; empty when every count is 1.
    counts: Vec<u64>,
    /// Values added since the last compaction, unsorted, as [`key`]s.
    tail: Vec<u64>,
    /// Runs merged in from other tallies since the last compaction.
    tail_runs: Vec<(f64, u64)>,
    /// No value has been seen twice in a large compaction (full-precision data): compacting
    /// saves no memory, so the tail may grow larger before it is merged.
    sparse: bool,
}

/// The sort key of a value: unsigned integers in the order of `f64::total_cmp`.
fn key(x: f64) -> u64 {
    let bits = x.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | 1 << 63
    }
}

/// The value of a [`key`].
fn from_key(k: u64) -> f64 {
    f64::from_bits(if k >> 63 == 1 { k & !(1 << 63) } else { !k })
}

impl Tally {
    /// Adds one value (finite). Returns by how many bytes the heap grew (or shrank).
    pub fn push(&mut self, x: f64) -> isize {
        if self.tail.len() < self.tail.capacity() {
            self.tail.push(key(x));
            return 0;
        }
        let before = self.heap_bytes();
        if self.tail_is_full() {
            self.compact();
        }
        if self.tail.len() == self.tail.capacity() {
            // Grow by doubling, but never past the size that triggers a compaction: the
            // tail's capacity is what the memory pool is told.
            let cap = self.tail.capacity();
            let want = (2 * cap).clamp(4, self.tail_limit().max(cap + 1));
            self.tail.reserve_exact(want - self.tail.len());
        }
        self.tail.push(key(x));
        self.heap_bytes() as isize - before as isize
    }

    /// Adds `count` copies of `x` (finite).
    pub fn push_run(&mut self, x: f64, count: u64) {
        if count > 0 {
            self.tail_runs.push((x, count));
            if self.tail_is_full() {
                self.compact();
            }
        }
    }

    /// How many pending values trigger a compaction: half the compacted size, so the tail
    /// never holds more than a third of the values and each value is merged O(1) times on
    /// average. (A tail as large as the compacted part is 5 % faster on the L report but makes
    /// it spill at a 256 MiB limit.) In sparse mode (every value distinct so far) merging
    /// saves no memory, a pending key taking the 8 bytes a held value takes: the tail grows to
    /// four times the held values, so that each value is merged about 1.25 times instead of 3.
    fn tail_limit(&self) -> usize {
        if self.sparse {
            MIN_TAIL.max(self.values.len() * 4)
        } else {
            MIN_TAIL.max(self.values.len() / 2)
        }
    }

    /// Whether the pending values and runs call for a compaction.
    fn tail_is_full(&self) -> bool {
        self.tail.len() + self.tail_runs.len() >= self.tail_limit()
    }

    /// Merges the pending values and runs into the sorted runs.
    pub fn compact(&mut self) {
        if self.tail.is_empty() && self.tail_runs.is_empty() {
            return;
        }
        let mut runs = std::mem::take(&mut self.tail_runs);
        if !runs.is_empty() {
            // Both kinds pending (merging states): one sorted list of runs.
            runs.extend(self.tail.iter().map(|&k| (from_key(k), 1)));
            runs.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
            self.add_sorted(runs.iter().copied());
        } else if self.counts.is_empty() || self.values.len() < GUIDED {
            // No repeats yet, or few values: sort the tail and walk.
            self.tail.sort_unstable();
            let tail = std::mem::take(&mut self.tail);
            if !(self.counts.is_empty() && self.merge_distinct(&tail)) {
                self.add_sorted(KeyRuns { keys: &tail, at: 0 });
            }
            // Sparse while large tails bring nothing seen before; repeats end it.
            if !self.counts.is_empty() {
                self.sparse = false;
            } else if tail.len() >= SPARSE_EVIDENCE {
                self.sparse = true;
            }
            self.tail = tail;
        } else {
            let tail = std::mem::take(&mut self.tail);
            self.add_keys_guided(&tail);
            self.tail = tail;
        }
        self.tail.clear();
        // Runs only arrive when partial states merge; their buffer is not kept.
        drop(runs);
    }

    /// Merges sorted pending keys when none of them is held already or pending twice (the
    /// common case without ties): one read-only pass checks that, then one merge from the
    /// back writes them in, with no intermediate list. Returns false, changing nothing, when a
    /// value repeats (the general path then counts it).
    fn merge_distinct(&mut self, keys: &[u64]) -> bool {
        let n = self.values.len();
        let mut i = 0;
        let mut previous: Option<f64> = None;
        for &k in keys {
            let x = from_key(k);
            // −0 and 0 have different keys but are one value.
            if previous == Some(x) {
                return false;
            }
            previous = Some(x);
            while i < n && self.values[i] < x {
                i += 1;
            }
            if i < n && self.values[i] == x {
                return false;
            }
        }
        let total = n + keys.len();
        // Exactly the room needed (see insert_fresh).
        self.values.reserve_exact(keys.len());
        self.values.resize(total, 0.0);
        let (mut i, mut j) = (n, keys.len());
        for w in (0..total).rev() {
            if j == 0 {
                break;
            }
            let x = from_key(keys[j - 1]);
            if i > 0 && self.values[i - 1] > x {
                i -= 1;
                self.values[w] = self.values[i];
            } else {
                j -= 1;
                self.values[w] = x;
            }
        }
        true
    }

    /// Adds ascending runs (equal values may repeat): counts of values already held are added
    /// in place; values seen for the first time are collected and merged in from the back.
    fn add_sorted(&mut self, incoming: impl Iterator<Item = (f64, u64)>) {
        let mut fresh: Vec<(f64, u64)> = Vec::new();
        let mut i = 0;
        let n = self.values.len();
        for (x, c) in incoming {
            while i < n && self.values[i] < x {
                i += 1;
            }
            if i < n && self.values[i] == x {
                if self.counts.is_empty() {
                    self.counts = vec![1; n];
                }
                self.counts[i] += c;
            } else {
                add_fresh(&mut fresh, x, c);
            }
        }
        self.insert_fresh(fresh);
    }

    /// Adds the (unsorted) keys of the tail once values repeat (counts are kept): the common
    /// case, and the hot loop of a rank statistic. Instead of sorting the tail, one pass over
    /// the held values builds a guide: the held values split into 256 ranges of keys, and
    /// where each range starts. A pending value's range is then a shift away, and its place a
    /// binary search among the few values of that range. Keys of doubles are about the
    /// logarithm of the value, so instrument readings (log-normal, say) spread evenly over the
    /// ranges. Only values not held yet are sorted, and merged in.
    fn add_keys_guided(&mut self, keys: &[u64]) {
        let values = self.values.as_slice();
        let n = values.len();
        let (Some(&first), Some(&last)) = (values.first(), values.last()) else {
            return;
        };
        let (low, high) = (key(first), key(last));
        let span = high - low;
        let shift = (u64::BITS - span.leading_zeros()).saturating_sub(GUIDE_BITS);
        // guide[b]: the first held value whose range is b or more.
        let mut guide = [n; (1 << GUIDE_BITS) + 1];
        let mut b = 0;
        for (i, &v) in values.iter().enumerate() {
            let range = ((key(v) - low) >> shift) as usize;
            while b <= range {
                guide[b] = i;
                b += 1;
            }
        }
        let counts = self.counts.as_mut_slice();
        // The counts are about to be hit at random; a tally is cold by the time its tail fills
        // (the others' were compacted in between), and one sequential read of a value per
        // cache line brings them in far faster than a miss per pending value (a quarter of the
        // report's time without it).
        std::hint::black_box(counts.iter().step_by(8).fold(0, |a, &c| a ^ c));
        let mut fresh: Vec<f64> = Vec::new();
        for &k in keys {
            let x = from_key(k);
            let at = if x == 0.0 {
                // −0 and 0 are one value but two keys (0 may be the lowest value held and −0
                // below it): search everything.
                Some(values.partition_point(|&v| v < x))
            } else if k < low || k > high {
                None
            } else {
                let range = ((k - low) >> shift) as usize;
                let (start, end) = (guide[range], guide[range + 1]);
                Some(start + values[start..end].partition_point(|&v| v < x))
            };
            match at {
                Some(at) if values.get(at) == Some(&x) => counts[at] += 1,
                _ => fresh.push(x),
            }
        }
        if fresh.is_empty() {
            return;
        }
        fresh.sort_unstable_by(f64::total_cmp);
        let mut runs: Vec<(f64, u64)> = Vec::with_capacity(fresh.len());
        for x in fresh {
            add_fresh(&mut runs, x, 1);
        }
        self.insert_fresh(runs);
    }

    /// Merges values not held before (ascending, distinct) into the sorted runs, from the back.
    fn insert_fresh(&mut self, fresh: Vec<(f64, u64)>) {
        if fresh.is_empty() {
            return;
        }
        let n = self.values.len();
        let with_counts = !self.counts.is_empty() || fresh.iter().any(|&(_, c)| c > 1);
        if with_counts && self.counts.is_empty() {
            self.counts = vec![1; n];
        }
        let total = n + fresh.len();
        // Exactly the room needed: the capacity is what heap_bytes reports, and a sixteenth
        // more (fewer reallocations) made the L report spill at a 256 MiB limit.
        self.values.reserve_exact(total - self.values.len());
        self.values.resize(total, 0.0);
        if with_counts {
            self.counts.reserve_exact(total - self.counts.len());
            self.counts.resize(total, 0);
        }
        if fresh.len() * 16 < n {
            // A few new values among many (a tally that has seen most of its values): each
            // one's place by binary search, and the held values above it moved up as a block.
            let mut end = n;
            for (j, &(x, c)) in fresh.iter().enumerate().rev() {
                let at = self.values[..end].partition_point(|&v| v < x);
                self.values.copy_within(at..end, at + j + 1);
                self.values[at + j] = x;
                if with_counts {
                    self.counts.copy_within(at..end, at + j + 1);
                    self.counts[at + j] = c;
                }
                end = at;
            }
            return;
        }
        // Many new values: one merge from the back, the larger head to the free end.
        let (mut i, mut j) = (n, fresh.len());
        for w in (0..total).rev() {
            if j == 0 {
                break;
            }
            if i > 0 && self.values[i - 1] > fresh[j - 1].0 {
                i -= 1;
                self.values[w] = self.values[i];
                if with_counts {
                    self.counts[w] = self.counts[i];
                }
            } else {
                j -= 1;
                self.values[w] = fresh[j].0;
                if with_counts {
                    self.counts[w] = fresh[j].1;
                }
            }
        }
    }

    /// Removes one copy of `x` (a value added before); false if it is not held.
    pub fn remove(&mut self, x: f64) -> bool {
        self.compact();
        let at = self.values.partition_point(|&v| v < x);
        if self.values.get(at) != Some(&x) {
            return false;
        }
        if self.count(at) > 1 {
            self.counts[at] -= 1;
        } else {
            self.values.remove(at);
            if !self.counts.is_empty() {
                self.counts.remove(at);
            }
        }
        true
    }

    /// Adds every value of another tally.
    pub fn merge(&mut self, other: &Tally) {
        for (x, c) in other.all_runs() {
            self.push_run(x, c);
        }
    }

    /// The (value, count) runs in ascending order. Only the compacted part: call
    /// [`Tally::compact`] first to include everything.
    pub fn runs(&self) -> impl Iterator<Item = (f64, u64)> + Clone + '_ {
        self.values
            .iter()
            .enumerate()
            .map(|(i, &x)| (x, self.count(i)))
    }

    /// The count of distinct value `i`.
    pub fn count(&self, i: usize) -> u64 {
        self.counts.get(i).copied().unwrap_or(1)
    }

    /// The number of distinct values (compacted part).
    pub fn distinct(&self) -> usize {
        self.values.len()
    }

    /// Every (value, count) held, compacted or not: the sorted runs first, then the pending
    /// values and runs (unsorted, possibly repeating values).
    pub fn all_runs(&self) -> Vec<(f64, u64)> {
        let mut runs: Vec<(f64, u64)> = self.runs().collect();
        runs.extend(self.tail.iter().map(|&k| (from_key(k), 1)));
        runs.extend_from_slice(&self.tail_runs);
        runs
    }

    /// The distinct values (compacted part).
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    /// The counts of the distinct values; empty when every count is 1.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// Builds a compacted tally from runs (ascending distinct values; counts may be empty for
    /// all ones). Returns None if the runs are not ascending or the lengths disagree.
    pub fn from_runs(values: Vec<f64>, counts: Vec<u64>) -> Option<Tally> {
        if !(counts.is_empty() || counts.len() == values.len())
            || values
                .windows(2)
                .any(|w| w[0].total_cmp(&w[1]) != Ordering::Less)
        {
            return None;
        }
        Some(Tally {
            values,
            counts,
            tail: Vec::new(),
            tail_runs: Vec::new(),
            sparse: false,
        })
    }

    /// The number of values (compacted part).
    pub fn len(&self) -> u64 {
        if self.counts.is_empty() {
            self.values.len() as u64
        } else {
            self.counts.iter().sum()
        }
    }

    /// Whether nothing has been added.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty() && self.tail.is_empty() && self.tail_runs.is_empty()
    }

    /// Bytes held on the heap.
    pub fn heap_bytes(&self) -> usize {
        (self.values.capacity() + self.tail.capacity()) * size_of::<f64>()
            + self.counts.capacity() * size_of::<u64>()
            + self.tail_runs.capacity() * size_of::<(f64, u64)>()
    }
}

/// Appends a value seen for the first time to ascending `fresh`; −0 after 0 (or a value both
/// pending and in runs) is the same value.
fn add_fresh(fresh: &mut Vec<(f64, u64)>, x: f64, c: u64) {
    match fresh.last_mut() {
        Some(last) if last.0 == x => last.1 += c,
        _ => fresh.push((x, c)),
    }
}

/// The sorted keys of a tail as ascending (value, count) runs.
struct KeyRuns<'a> {
    keys: &'a [u64],
    at: usize,
}

impl Iterator for KeyRuns<'_> {
    type Item = (f64, u64);

    fn next(&mut self) -> Option<(f64, u64)> {
        let &k = self.keys.get(self.at)?;
        let start = self.at;
        self.at += 1;
        while self.keys.get(self.at) == Some(&k) {
            self.at += 1;
        }
        Some((from_key(k), (self.at - start) as u64))
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_are_counted_and_order_does_not_matter() {
        let mut a = Tally::default();
        for i in 0..20_000 {
            a.push(f64::from((i * 7) % 13));
        }
        a.push(-0.0);
        a.compact();
        assert_eq!(a.values().len(), 13);
        assert_eq!(a.len(), 20_001);
        let mut b = Tally::default();
        for i in (0..20_000).rev() {
            b.push(f64::from((i * 7) % 13));
        }
        b.push(0.0);
        b.compact();
        assert_eq!(a.runs().collect::<Vec<_>>(), b.runs().collect::<Vec<_>>());
    }

    #[test]
    fn removing_undoes_adding() {
        let mut a = Tally::default();
        for x in [3.0, 1.0, 3.0, 2.0, -0.0] {
            a.push(x);
        }
        assert!(a.remove(3.0) && a.remove(0.0) && a.remove(1.0));
        assert!(!a.remove(7.0));
        a.compact();
        assert_eq!(a.runs().collect::<Vec<_>>(), vec![(2.0, 1), (3.0, 1)]);
    }

    #[test]
    fn without_ties_no_counts_are_stored() {
        let mut a = Tally::default();
        for i in 0..10_000 {
            a.push(f64::from(i) * 0.5);
        }
        a.compact();
        assert!(a.counts().is_empty());
        assert_eq!(a.len(), 10_000);
        let mut b = Tally::default();
        b.merge(&a);
        b.merge(&a);
        b.compact();
        assert_eq!(b.len(), 20_000);
        assert!(b.runs().all(|(_, c)| c == 2));
    }

    /// SplitMix64, for reproducible pseudo-random values.
    fn splitmix(i: u64) -> u64 {
        let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    #[test]
    fn agrees_with_a_sorted_count_and_reports_its_heap_exactly() {
        // Few distinct values (ties), many (a sorted vector), signed zeros and negative values,
        // single values and merged runs interleaved, across many compactions.
        // With runs merged in between (partial states) and without (the guided path).
        for (distinct, runs_every) in [(3u64, 97), (900, 97), (1_000_000, 97), (900, 0), (5_000, 0)]
        {
            let mut t = Tally::default();
            let mut grew: isize = 0;
            let mut expected = std::collections::BTreeMap::new();
            for i in 0..60_000u64 {
                let r = splitmix(i);
                let v = (r % distinct) as f64 - (distinct / 3) as f64;
                let x = if v == 0.0 && r & (1 << 40) != 0 {
                    -0.0
                } else {
                    v
                };
                if runs_every > 0 && i % runs_every == 0 {
                    let c = 1 + r % 5;
                    let before = t.heap_bytes() as isize;
                    t.push_run(x, c);
                    grew += t.heap_bytes() as isize - before;
                    *expected.entry((x + 0.0).to_bits()).or_insert(0u64) += c;
                } else {
                    grew += t.push(x);
                    *expected.entry((x + 0.0).to_bits()).or_insert(0u64) += 1;
                }
                assert_eq!(grew, t.heap_bytes() as isize, "heap deltas add up");
            }
            let pending: u64 = t.all_runs().iter().map(|r| r.1).sum();
            t.compact();
            let mut want: Vec<(f64, u64)> = expected
                .into_iter()
                .map(|(b, c)| (f64::from_bits(b), c))
                .collect();
            want.sort_by(|a, b| a.0.total_cmp(&b.0));
            let got: Vec<(f64, u64)> = t.runs().collect();
            assert_eq!(got.len(), want.len());
            for ((x, c), (y, d)) in got.iter().zip(&want) {
                assert!(x == y && c == d, "{x} x{c} against {y} x{d}");
            }
            assert_eq!(t.len(), pending);
            assert_eq!(t.counts().is_empty(), want.iter().all(|r| r.1 == 1));
        }
    }

    #[test]
    fn signed_zeros_are_one_value_at_the_ends_of_the_range() {
        // Zero as the lowest value held (−0 has the key just below it), then as the highest.
        for sign in [1.0, -1.0] {
            let mut t = Tally::default();
            for round in 0..4 {
                for i in 0..1_000u32 {
                    t.push(sign * f64::from(i % 100));
                }
                t.push(if round % 2 == 0 { -0.0 } else { 0.0 });
            }
            t.compact();
            let zeros: Vec<(f64, u64)> = t.runs().filter(|&(x, _)| x == 0.0).collect();
            assert_eq!(zeros.len(), 1, "{zeros:?}");
            assert_eq!(zeros[0].1, 4 * 10 + 4);
            assert_eq!(t.distinct(), 100);
        }
    }

    #[test]
    fn keys_sort_in_total_order() {
        let xs = [
            f64::MIN,
            -1.5,
            -f64::MIN_POSITIVE,
            -0.0,
            0.0,
            5e-324,
            1.0,
            f64::MAX,
        ];
        for w in xs.windows(2) {
            assert!(key(w[0]) < key(w[1]));
        }
        for x in xs {
            assert_eq!(from_key(key(x)).to_bits(), x.to_bits());
        }
    }
}
