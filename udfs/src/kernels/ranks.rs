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

/// Ranks cases against controls. Sorts its inputs in place; values must be finite.
pub fn rank_sums(case: &mut [f64], control: &mut [f64]) -> RankSums {
    case.sort_unstable_by(f64::total_cmp);
    control.sort_unstable_by(f64::total_cmp);
    // Merge the two sorted lists, one tie group at a time: U₁ counts, for each case, the
    // controls below it plus half of the controls equal to it.
    let (mut i, mut j) = (0, 0);
    let mut u = 0.0;
    let mut ties = 0.0;
    while i < case.len() || j < control.len() {
        let v = match (case.get(i), control.get(j)) {
            (Some(&a), Some(&b)) => a.min(b),
            (Some(&a), None) => a,
            (None, Some(&b)) => b,
            (None, None) => break,
        };
        let start_i = i;
        while i < case.len() && case[i] == v {
            i += 1;
        }
        let start_j = j;
        while j < control.len() && control[j] == v {
            j += 1;
        }
        let (cases_here, controls_here) = ((i - start_i) as f64, (j - start_j) as f64);
        u += cases_here * (start_j as f64 + 0.5 * controls_here);
        let t = cases_here + controls_here;
        ties += t * t * t - t;
    }
    RankSums {
        u,
        n_case: case.len(),
        n_control: control.len(),
        ties,
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
        let corrected = centred - 0.5 * centred.signum();
        let corrected = if centred.abs() < 0.5 { 0.0 } else { corrected };
        let z = corrected / variance.sqrt();
        let p = (2.0 * normal_sf(z.abs())).min(1.0);
        Some((z, p, ln_normal_two_sided_p(z).min(0.0)))
    }

    /// The exact two-sided p-value: 2 · P(U ≥ max(U₁, U₀)) under H₀, capped at 1 (scipy's
    /// convention). Valid without ties only; None when a group is empty or n₁·n₀ exceeds
    /// [`EXACT_MAX_CELLS`] (where scipy's exact method returns NaN too).
    pub fn exact_p(&self) -> Option<f64> {
        if self.n_case == 0
            || self.n_control == 0
            || self.n_case.saturating_mul(self.n_control) > EXACT_MAX_CELLS
        {
            return None;
        }
        let (m, n) = if self.n_case <= self.n_control {
            (self.n_case, self.n_control)
        } else {
            (self.n_control, self.n_case)
        };
        let counts = u_distribution(m, n);
        let total: f64 = counts.iter().sum();
        let u_max = self.u.max((m * n) as f64 - self.u);
        // With ties U can be a half-integer; scipy truncates it to an integer, and so do we.
        let from = u_max.floor() as usize;
        let tail: f64 = counts.iter().skip(from).sum();
        Some((2.0 * tail / total).min(1.0))
    }
}

/// DeLong's variance of the AUC from the placement values (DeLong, DeLong & Clarke-Pearson
/// 1988; computed in O(n log n) as Sun & Xu 2014 do, here by two merge sweeps over the sorted
/// groups): V₁₀(x) = P(control < x) + ½ P(control = x) for each case, V₀₁(y) = P(case > y) +
/// ½ P(case = y) for each control; var = s²(V₁₀)/n₁ + s²(V₀₁)/n₀ with n − 1 denominators.
/// Both slices must be sorted ascending. None when a group has fewer than 2 values.
pub fn delong_variance(case: &[f64], control: &[f64]) -> Option<f64> {
    let (n1, n0) = (case.len(), control.len());
    if n1 < 2 || n0 < 2 {
        return None;
    }
    // For each value of `of`, (how many of `among` are below it, how many equal it).
    fn placements(of: &[f64], among: &[f64]) -> Vec<(usize, usize)> {
        let (mut below, mut upto) = (0, 0);
        of.iter()
            .map(|&x| {
                while below < among.len() && among[below] < x {
                    below += 1;
                }
                upto = upto.max(below);
                while upto < among.len() && among[upto] == x {
                    upto += 1;
                }
                (below, upto - below)
            })
            .collect()
    }
    let variance = |v: &[f64]| {
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (v.len() - 1) as f64
    };
    let v10: Vec<f64> = placements(case, control)
        .iter()
        .map(|&(below, equal)| (below as f64 + 0.5 * equal as f64) / n0 as f64)
        .collect();
    let v01: Vec<f64> = placements(control, case)
        .iter()
        .map(|&(below, equal)| {
            let above = n1 - below - equal;
            (above as f64 + 0.5 * equal as f64) / n1 as f64
        })
        .collect();
    Some(variance(&v10) / n1 as f64 + variance(&v01) / n0 as f64)
}

/// The largest n₁·n₀ for which the exact distribution is computed: its counts stay below
/// f64's range (C(632, 316) ≈ 1e189 at the worst shape) and the cost below 3·10⁷ steps.
pub const EXACT_MAX_CELLS: usize = 100_000;

/// The number of arrangements giving each U = 0..=m·n for groups of m and n (m ≤ n): the
/// coefficients of the Gaussian binomial ∏ᵢ (1 − q^(n+i)) / (1 − q^i). O(m² n) operations.
fn u_distribution(m: usize, n: usize) -> Vec<f64> {
    let size = m * n + 1;
    let mut poly = vec![0.0; size];
    poly[0] = 1.0;
    for i in 1..=m {
        // Multiply by (1 − q^(n+i)): from the top down so each term is used once.
        let k = n + i;
        for d in (k..size).rev() {
            poly[d] -= poly[d - k];
        }
        // Divide by (1 − q^i): running sums with stride i.
        for d in i..size {
            poly[d] += poly[d - i];
        }
    }
    poly
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
        let mut case = vec![3.0, 1.0, 2.0];
        let mut control = vec![2.0, 0.5];
        let s = rank_sums(&mut case, &mut control);
        // case 3: 2 below; case 1: 1 below; case 2: 1 below + ½ tie
        assert_eq!(s.u, 4.5);
        assert_eq!(s.ties, 6.0);
        assert_eq!(s.auc(), Some(0.75));
    }

    #[test]
    fn exact_distribution_sums_to_the_binomial() {
        let counts = u_distribution(3, 5);
        assert_eq!(counts.iter().sum::<f64>(), 56.0); // C(8, 3)
        assert_eq!(counts[0], 1.0);
        assert_eq!(counts[15], 1.0);
        // symmetric
        for u in 0..=15 {
            assert_eq!(counts[u], counts[15 - u]);
        }
    }
}
