//! Rank statistics of two groups: the Mann-Whitney U (with midranks for ties), the AUC, and
//! the exact null distribution of U.
//!
//! References:
//! 1. H. B. Mann, D. R. Whitney (1947), "On a test of whether one of two random variables is
//!    stochastically larger than the other", Ann. Math. Statist. 18(1).
//! 2. E. L. Lehmann (1975), *Nonparametrics*, ch. 1 (tie-corrected variance of U).
//! 3. The exact distribution's generating function ∏ᵢ (1 − q^(n+i)) / (1 − q^i), i = 1..m
//!    (Andrews, *The Theory of Partitions*, Gaussian binomial coefficients).

use super::distributions::{ln_normal_two_sided_p, normal_sf};
use super::permutation;
use super::tally::Tally;
use super::wide;

/// U of the cases (R's `W` with the cases first), the group sizes and the tie term
/// Σ (t³ − t) over groups of tied values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RankSums {
    /// U₁ = R₁ − n₁(n₁+1)/2, R₁ the sum of the cases' midranks.
    pub u: f64,
    /// Number of cases.
    pub n_case: usize,
    /// Number of controls.
    pub n_control: usize,
    /// Σ (t³ − t) over tie groups (0 without ties).
    pub ties: f64,
}

/// Ranks cases against controls (compacted tallies of finite values): U₁ counts, for each
/// case, the controls below it plus half of the controls equal to it.
pub fn rank_sums(case: &Tally, control: &Tally) -> RankSums {
    rank_walk(case, control, false).0
}

/// [`rank_sums`] and [`delong_variance`] in one merge walk over the values.
pub fn rank_sums_and_delong(case: &Tally, control: &Tally) -> (RankSums, Option<f64>) {
    rank_walk(case, control, true)
}

/// The weighted mean and sum of squared deviations of a sequence of (value, weight), by West's
/// (1979) weighted form of Welford's update: one pass, no storage, stable.
#[derive(Debug, Default, Clone, Copy)]
struct Spread {
    weight: f64,
    mean: f64,
    m2: f64,
}

impl Spread {
    fn add(&mut self, x: f64, w: f64) {
        self.weight += w;
        let delta = x - self.mean;
        self.mean += delta * w / self.weight;
        self.m2 += w * delta * (x - self.mean);
    }
}

/// One walk over the merged runs: U, the tie term and, with `delong`, the spread of the
/// placement values (see [`delong_variance`]).
fn rank_walk(case: &Tally, control: &Tally, delong: bool) -> (RankSums, Option<f64>) {
    let (n1, n0) = (case.len(), control.len());
    let mut u = 0.0;
    let mut ties = 0.0;
    let (mut cases_below, mut controls_below) = (0u64, 0u64);
    let (mut v10, mut v01) = (Spread::default(), Spread::default());
    merged_runs(case, control, |_, cases_here, controls_here| {
        u += cases_here as f64 * (controls_below as f64 + 0.5 * controls_here as f64);
        let t = (cases_here + controls_here) as f64;
        ties += t * t * t - t;
        if delong {
            if cases_here > 0 {
                let placement = (controls_below as f64 + 0.5 * controls_here as f64) / n0 as f64;
                v10.add(placement, cases_here as f64);
            }
            if controls_here > 0 {
                let above = n1 - cases_below - cases_here;
                let placement = (above as f64 + 0.5 * cases_here as f64) / n1 as f64;
                v01.add(placement, controls_here as f64);
            }
        }
        cases_below += cases_here;
        controls_below += controls_here;
    });
    let sums = RankSums {
        u,
        n_case: n1 as usize,
        n_control: n0 as usize,
        ties,
    };
    let variance = (delong && n1 >= 2 && n0 >= 2)
        .then(|| v10.m2 / (n1 - 1) as f64 / n1 as f64 + v01.m2 / (n0 - 1) as f64 / n0 as f64);
    (sums, variance)
}

/// Walks the distinct values of two compacted tallies in ascending order (equal values, −0
/// and 0 included, together), calling `f(value, count in a, count in b)`.
pub fn merged_runs(a: &Tally, b: &Tally, mut f: impl FnMut(f64, u64, u64)) {
    let (va, vb) = (a.values(), b.values());
    let (mut i, mut j) = (0, 0);
    while i < va.len() || j < vb.len() {
        let v = match (va.get(i), vb.get(j)) {
            (Some(&x), Some(&y)) => {
                if y < x {
                    y
                } else {
                    x
                }
            }
            (Some(&x), None) => x,
            (None, Some(&y)) => y,
            (None, None) => break,
        };
        let here_a = if i < va.len() && va[i] == v {
            i += 1;
            a.count(i - 1)
        } else {
            0
        };
        let here_b = if j < vb.len() && vb[j] == v {
            j += 1;
            b.count(j - 1)
        } else {
            0
        };
        f(v, here_a, here_b);
    }
}

impl RankSums {
    /// The AUC: P(X_case > X_control) + ½ P(tie) = U₁ / (n₁ n₀). None if a group is empty.
    pub fn auc(&self) -> Option<f64> {
        (self.n_case > 0 && self.n_control > 0)
            .then(|| self.u / (self.n_case as f64 * self.n_control as f64))
    }

    /// The normal approximation: z with the tie-corrected variance and a continuity correction
    /// of ½ towards 0 (R `wilcox.test(correct = TRUE)`; |z| is scipy's), and the two-sided p
    /// with its log. None when a group is empty or every value is tied (variance 0).
    pub fn asymptotic(&self) -> Option<(f64, f64, f64)> {
        self.asymptotic_corrected(true)
    }

    /// As [`Self::asymptotic`], with (`correct`) or without the continuity correction (R's
    /// `wilcox.test(correct = FALSE)`, scipy's `use_continuity=False`).
    pub fn asymptotic_corrected(&self, correct: bool) -> Option<(f64, f64, f64)> {
        if self.n_case == 0 || self.n_control == 0 {
            return None;
        }
        let (n1, n0) = (self.n_case as f64, self.n_control as f64);
        let n = n1 + n0;
        let variance = n1 * n0 / 12.0 * ((n + 1.0) - self.ties / (n * (n - 1.0)));
        if variance.is_nan() || variance <= 0.0 {
            return None;
        }
        let centred = self.u - n1 * n0 / 2.0;
        let corrected = if !correct {
            centred
        } else if centred.abs() < 0.5 {
            0.0
        } else {
            centred - 0.5 * centred.signum()
        };
        let z = corrected / variance.sqrt();
        let p = (2.0 * normal_sf(z.abs())).min(1.0);
        Some((z, p, ln_normal_two_sided_p(z).min(0.0)))
    }

    /// The exact two-sided p-value: 2 · P(U ≥ max(U₁, U₀)) under H₀, capped at 1 (scipy's
    /// convention). Valid without ties only (see [`exact_p_given_ties`]); None when a group is empty or n₁·n₀ exceeds
    /// [`EXACT_MAX_CELLS`] (where scipy's exact method returns NaN too). By symmetry the tail
    /// is the lower one, P(U ≤ n₁n₀ − max(U₁, U₀)), counted exactly ([`exact_lower_tail`]).
    pub fn exact_p(&self) -> Option<f64> {
        if self.n_case == 0
            || self.n_control == 0
            || self.n_case.saturating_mul(self.n_control) > EXACT_MAX_CELLS
        {
            return None;
        }
        let cells = self.n_case * self.n_control;
        let u_max = self.u.max(cells as f64 - self.u);
        // With ties U can be a half-integer; scipy truncates it to an integer, and so do we.
        let from = u_max.floor() as usize;
        let tail = exact_lower_tail(self.n_case, self.n_control, cells - from);
        Some((2.0 * tail).min(1.0))
    }
}

/// DeLong's variance of the AUC from the placement values (DeLong, DeLong & Clarke-Pearson
/// 1988; computed in O(n log n) as Sun & Xu 2014 do, here by one merge walk over the
/// compacted groups, each distinct value weighted by its count): V₁₀(x) = P(control < x) +
/// ½ P(control = x) for each case, V₀₁(y) = P(case > y) + ½ P(case = y) for each control;
/// var = s²(V₁₀)/n₁ + s²(V₀₁)/n₀ with n − 1 denominators, the spreads accumulated in the
/// walk (West's weighted Welford update) rather than from stored placements. None when a
/// group has fewer than 2 values.
pub fn delong_variance(case: &Tally, control: &Tally) -> Option<f64> {
    rank_walk(case, control, true).1
}

/// The largest n₁·n₀ for which the exact distribution is computed (scipy's exact method has
/// no limit but slows down as Discern would). The counts are exact at any size; the cost of
/// [`exact_lower_tail`] is at most m · (m·n/2) additions of numbers of up to
/// log₂ C(m+n, m) bits: about 3·10⁸ limb operations at 316 × 316, a fraction of a second.
pub const EXACT_MAX_CELLS: usize = 100_000;

/// P(U ≤ k) under H₀ for tie-free groups of m and n: the number of arrangements of the labels
/// with U ≤ k over C(m+n, m), both counted exactly and divided once, so the result has a
/// relative error of a few units in the last place at any k (no cancellation, no underflow
/// above f64's normal range: the smallest tail, 1/C(m+n, m), is 1.6e-189 or more within
/// [`EXACT_MAX_CELLS`]).
///
/// The counts of U = 0, 1, … are the coefficients of the Gaussian binomial
/// ∏ᵢ₌₁..ₘ (1 − q^(n+i)) / (1 − q^i) (m ≤ n). Each factor is applied as a division by
/// (1 − q^i) (running sums with stride i) and then a multiplication by (1 − q^(n+i)), so
/// that every intermediate polynomial has non-negative coefficients (the series of
/// [n+i−1 choose i−1]_q / (1 − q^i), then [n+i choose i]_q) bounded by C(n+i, i): the
/// subtractions never borrow. Coefficients above k never influence those up to k, so only
/// 0..=k are kept: O(m · k) operations on ⌈log₂ C(m+n, m) / 64⌉-limb integers.
pub fn exact_lower_tail(m: usize, n: usize, k: usize) -> f64 {
    let (m, n) = if m <= n { (m, n) } else { (n, m) };
    let top = k.min(m * n);
    // C(n+i, i) for i = 0..=m, exactly; its length at step i bounds every count of that step.
    let mut binomial = vec![1u64];
    let mut widths = Vec::with_capacity(m + 1);
    widths.push(1);
    for i in 1..=m {
        binomial.push(0);
        wide::mul_small(&mut binomial, (n + i) as u64);
        wide::div_small(&mut binomial, i as u64);
        binomial.truncate(wide::significant_limbs(&binomial).max(1));
        widths.push(binomial.len());
    }
    let width = binomial.len();
    let mut counts = vec![0u64; (top + 1) * width];
    counts[0] = 1;
    for i in 1..=m {
        let w = widths[i];
        // Divide by (1 − q^i): c[d] += c[d − i], upwards.
        for d in i..=top {
            let (below, here) = counts.split_at_mut(d * width);
            let from = &below[(d - i) * width..(d - i) * width + w];
            wide::add_assign(&mut here[..w], from);
        }
        // Multiply by (1 − q^(n+i)): c[d] −= c[d − n − i], downwards.
        let step = n + i;
        for d in (step..=top).rev() {
            let (below, here) = counts.split_at_mut(d * width);
            let from = &below[(d - step) * width..(d - step) * width + w];
            wide::sub_assign(&mut here[..w], from);
        }
    }
    let mut tail = vec![0u64; width + 1];
    for count in counts.chunks_exact(width) {
        wide::add_assign(&mut tail[..width], count);
    }
    binomial.push(0);
    wide::ratio(&tail, &binomial)
}

/// The largest n₁·n₀ for which the exact distribution given ties is computed: its cost is
/// N · min(n₁, n₀) · 2n₁n₀ additions at most (4·10⁸ at 100 × 100, under a second).
pub const EXACT_TIES_MAX_CELLS: usize = 10_000;

/// The exact two-sided p given the tied midranks (`exactRankTests::wilcox.exact`):
/// P(|R₁ − E| ≥ |r₁ − E|) over every choice of the cases among the pooled values, R₁ the
/// cases' midrank sum and E = n₁(N + 1)/2 ([`permutation::rank_sum_two_sided`]). None when
/// a group is empty or n₁·n₀ exceeds [`EXACT_TIES_MAX_CELLS`].
pub fn exact_p_given_ties(case: &Tally, control: &Tally) -> Option<f64> {
    let (n1, n0) = (case.len() as usize, control.len() as usize);
    if n1 == 0 || n0 == 0 || n1.saturating_mul(n0) > EXACT_TIES_MAX_CELLS {
        return None;
    }
    let mut runs = Vec::new();
    merged_runs(case, control, |_, a, b| runs.push((a, b)));
    Some(permutation::rank_sum_two_sided(
        &permutation::doubled_midranks(runs),
    ))
}

/// scipy's `method='auto'`: exact when a group has at most 8 values and there are no ties.
pub fn auto_uses_exact(sums: &RankSums) -> bool {
    (sums.n_case <= 8 || sums.n_control <= 8) && sums.ties == 0.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u_counts_controls_below_and_half_the_ties() {
        let tally = |v: &[f64]| {
            let mut t = Tally::default();
            v.iter().for_each(|&x| {
                t.push(x);
            });
            t.compact();
            t
        };
        let s = rank_sums(&tally(&[3.0, 1.0, 2.0]), &tally(&[2.0, 0.5]));
        // case 3: 2 below; case 1: 1 below; case 2: 1 below + ½ tie
        assert_eq!(s.u, 4.5);
        assert_eq!(s.ties, 6.0);
        assert_eq!(s.auc(), Some(0.75));
    }

    #[test]
    fn compacted_groups_count_pairs_like_brute_force() {
        // Large enough for the tallies to compact several times while values arrive.
        let value = |i: u64| ((i * 7919) % 1009) as f64 / 10.0;
        let (mut case, mut control) = (Tally::default(), Tally::default());
        let case_values: Vec<f64> = (0..6_000).map(|i| value(i * 3 + 1)).collect();
        let control_values: Vec<f64> = (0..9_000).map(|i| value(i * 5 + 2)).collect();
        case_values.iter().for_each(|&x| {
            case.push(x);
        });
        control_values.iter().for_each(|&x| {
            control.push(x);
        });
        case.compact();
        control.compact();
        let s = rank_sums(&case, &control);
        let mut u = 0.0;
        for &a in &case_values {
            for &b in &control_values {
                u += if a > b {
                    1.0
                } else if a == b {
                    0.5
                } else {
                    0.0
                };
            }
        }
        assert_eq!(s.u, u);
        assert_eq!((s.n_case, s.n_control), (6_000, 9_000));
        assert!(case.values().len() <= 1009);
    }

    #[test]
    fn exact_tails_are_the_counted_fractions() {
        // m = 3, n = 5: the counts of U = 0..=15 are 1 1 2 3 4 5 6 6 6 6 5 4 3 2 1 1 (56 in all).
        let counts = [1, 1, 2, 3, 4, 5, 6, 6, 6, 6, 5, 4, 3, 2, 1, 1];
        let mut below = 0;
        for (k, c) in counts.iter().enumerate() {
            below += c;
            let p = exact_lower_tail(3, 5, k);
            assert!((p - below as f64 / 56.0).abs() <= 1e-16 * p, "{k}: {p}");
            assert_eq!(p, exact_lower_tail(5, 3, k));
        }
        assert_eq!(exact_lower_tail(3, 5, 99), 1.0);
        // One arrangement of 316 + 316 has U = 0: 1 / C(632, 316).
        let p = exact_lower_tail(316, 316, 0);
        assert!((p / 1.768_613_809_288_11e-189 - 1.0).abs() < 1e-15, "{p:e}");
    }
}
