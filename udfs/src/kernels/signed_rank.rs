//! The Wilcoxon signed-rank test of paired differences against 0, as R's
//! `wilcox.test(diff, mu = 0, correct = TRUE)` computes it.
//!
//! References:
//! 1. F. Wilcoxon (1945), "Individual comparisons by ranking methods", Biometrics Bull. 1(6).
//! 2. R `stats::wilcox.test.default` (one-sample branch) and `psignrank` (R 4.2).

use super::PValueMethod;
use super::distributions::normal_sf;
use super::permutation::signed_rank_two_sided;

/// The test's result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SignedRank {
    /// V: the sum of the ranks of |diff| over the positive differences (R's statistic).
    pub statistic: f64,
    /// The two-sided p-value (None when the exact method is asked for beyond [`EXACT_MAX`]).
    pub p: Option<f64>,
}

/// R's cut-off: the exact distribution is used below 50 non-zero differences.
pub const EXACT_BELOW: usize = 50;

/// The most differences for which the exact distribution is computed when asked for (its
/// counts stay below f64's range up to n = 1023; R's `psignrank` overflows from n ≈ 1040);
/// beyond it the exact p is None.
pub const EXACT_MAX: usize = 1000;

/// How zero differences enter the signed-rank test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ZeroMethod {
    /// Dropped before ranking (Wilcoxon; R's `wilcox.test`, scipy's default).
    Wilcox,
    /// Ranked with the others (taking the smallest ranks), then dropped from V; the normal
    /// approximation's mean and variance lose the zeros' share (Pratt 1959; scipy's
    /// `zero_method='pratt'`).
    Pratt,
}

impl ZeroMethod {
    /// `'wilcox'` or `'pratt'`.
    pub fn parse(text: &str) -> Option<ZeroMethod> {
        match text.to_ascii_lowercase().as_str() {
            "wilcox" => Some(ZeroMethod::Wilcox),
            "pratt" => Some(ZeroMethod::Pratt),
            _ => None,
        }
    }
}

/// The signed-rank test of `diffs` (finite values; reordered in place). `Auto` is R's rule:
/// exact below 50 non-zero differences without ties or zeros; `Exact` is the exact
/// distribution given the ties and zeros (every sign pattern of the non-zero differences'
/// midranks equally likely, `exactRankTests::wilcox.exact`; R's `wilcox.test` falls back to
/// the normal approximation there). The normal approximation has R's continuity correction
/// of ½ when `correct`. Zeros are handled by `zero_method`. None when no difference is
/// non-zero.
pub fn signed_rank(
    diffs: &mut Vec<f64>,
    method: PValueMethod,
    correct: bool,
    zero_method: ZeroMethod,
) -> Option<SignedRank> {
    let before = diffs.len();
    diffs.retain(|&d| d != 0.0);
    let zero_count = before - diffs.len();
    let zeros = zero_count > 0;
    let n = diffs.len();
    if n == 0 {
        return None;
    }
    // Pratt: the zeros take ranks 1..z₀, the others' ranks start after them.
    let offset = match zero_method {
        ZeroMethod::Wilcox => 0.0,
        ZeroMethod::Pratt => zero_count as f64,
    };
    diffs.sort_unstable_by(|a, b| a.abs().total_cmp(&b.abs()));
    // Midranks of |diff| by tie group; V sums the positive ones. The doubled midranks are
    // integers, kept for the exact distribution given ties.
    let (mut statistic, mut tie_term, mut ties) = (0.0, 0.0, false);
    let mut doubled = Vec::with_capacity(n);
    let mut doubled_statistic = 0u64;
    let mut start = 0;
    while start < n {
        let mut end = start + 1;
        while end < n && diffs[end].abs() == diffs[start].abs() {
            end += 1;
        }
        let t = (end - start) as f64;
        let midrank = offset + (start + end + 1) as f64 / 2.0;
        let positives = diffs[start..end].iter().filter(|&&d| d > 0.0).count();
        statistic += midrank * positives as f64;
        let score = 2 * offset as u64 + (start + end + 1) as u64;
        doubled.extend(std::iter::repeat_n(score, end - start));
        doubled_statistic += score * positives as u64;
        if end - start > 1 {
            ties = true;
            tie_term += t * t * t - t;
        }
        start = end;
    }
    let exact = match method {
        PValueMethod::Asymptotic => false,
        PValueMethod::Exact => true,
        PValueMethod::Auto => n < EXACT_BELOW && !ties && !zeros,
    };
    let p = if exact {
        // Ranks 1..n unless tied or shifted by Pratt's zeros.
        let plain = !ties && offset == 0.0;
        (n <= EXACT_MAX).then(|| {
            if plain {
                exact_p(statistic, n)
            } else {
                signed_rank_two_sided(&doubled, doubled_statistic)
            }
        })
    } else {
        // With Pratt's method n counts the zeros and their share (z₀ ranks) comes off.
        let nf = n as f64 + offset;
        let variance = nf * (nf + 1.0) * (2.0 * nf + 1.0) / 24.0
            - offset * (offset + 1.0) * (2.0 * offset + 1.0) / 24.0
            - tie_term / 48.0;
        let centred = statistic - nf * (nf + 1.0) / 4.0 + offset * (offset + 1.0) / 4.0;
        // R: z = (V − n(n+1)/4 − sign·½) / σ, p = 2 · min(Φ(z), 1 − Φ(z)).
        let correction = if correct { 0.5 * sign(centred) } else { 0.0 };
        let z = (centred - correction) / variance.sqrt();
        Some((2.0 * normal_sf(z.abs())).min(1.0))
    };
    Some(SignedRank { statistic, p })
}

fn sign(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// The exact two-sided p-value for V with n ranks 1..n (R: the upper tail P(V ≥ v) above the
/// centre, the lower tail P(V ≤ v) otherwise, doubled and capped at 1). The upper tail is
/// taken as the lower one by symmetry, P(V ≥ v) = P(V ≤ n(n+1)/2 − v), so a tail is always a
/// sum of counts, never a difference.
///
/// Accuracy: the counts are built by additions of positive numbers only, at most n deep, so
/// each carries a relative error below n · 2⁻⁵³; the tail is summed with Neumaier's
/// compensation and divided by 2ⁿ exactly. The p-value's relative error is below
/// (n + 3) · 2⁻⁵³, 1.2e-13 at [`EXACT_MAX`]; the smallest p, 2 / 2ⁿ, stays a normal double.
fn exact_p(statistic: f64, n: usize) -> f64 {
    let top = n * (n + 1) / 2;
    let v = (statistic.round().max(0.0) as usize).min(top);
    let k = if statistic > top as f64 / 2.0 {
        top - v
    } else {
        v
    };
    let counts = lower_distribution(n, k);
    let (mut sum, mut compensation) = (0.0f64, 0.0f64);
    for &c in &counts {
        let t = sum + c;
        compensation += if sum.abs() >= c.abs() {
            (sum - t) + c
        } else {
            (c - t) + sum
        };
        sum = t;
    }
    let tail = (sum + compensation) * 2f64.powi(-(n as i32));
    (2.0 * tail).min(1.0)
}

/// The number of subsets of {1, …, n} with each sum 0..=k (k ≤ n(n+1)/2): exact integers in
/// f64 while they stay below 2⁵³ (n < 53), within n · 2⁻⁵³ relatively beyond.
fn lower_distribution(n: usize, k: usize) -> Vec<f64> {
    let mut counts = vec![0.0; k + 1];
    counts[0] = 1.0;
    for j in 1..=n.min(k) {
        for s in (j..=k.min(j * (j + 1) / 2)).rev() {
            counts[s] += counts[s - j];
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distribution_is_symmetric_and_sums_to_two_to_the_n() {
        let c = lower_distribution(10, 55);
        assert_eq!(c.iter().sum::<f64>(), 1024.0);
        for v in 0..=55 {
            assert_eq!(c[v], c[55 - v]);
        }
        assert_eq!(lower_distribution(10, 7), c[..=7].to_vec());
        // Both tails of V come out of the lower one: P(V ≥ 50) = P(V ≤ 5) for n = 10.
        let lower: f64 = c[..=5].iter().sum();
        assert_eq!(exact_p(50.0, 10), 2.0 * lower / 1024.0);
        assert_eq!(exact_p(5.0, 10), 2.0 * lower / 1024.0);
        assert_eq!(exact_p(27.0, 10), 1.0);
    }

    #[test]
    fn zeros_are_dropped_and_ties_use_midranks() {
        let mut d = vec![0.0, 1.0, -1.0, 2.0, 3.0];
        let r = signed_rank(&mut d, PValueMethod::Auto, true, ZeroMethod::Wilcox).unwrap();
        // ranks of |1|, |-1|, 2, 3: 1.5, 1.5, 3, 4; V = 1.5 + 3 + 4
        assert_eq!(r.statistic, 8.5);
        assert!(
            signed_rank(
                &mut vec![0.0, 0.0],
                PValueMethod::Auto,
                true,
                ZeroMethod::Wilcox
            )
            .is_none()
        );
    }
}
