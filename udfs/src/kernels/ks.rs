//! The two-sample Kolmogorov-Smirnov test, as R's `ks.test(cases, controls)` defines it: the
//! statistic over the pooled sample's distinct values, an exact p-value that accounts for ties
//! (R ≥ 4.1's `psmirnov` with `z`), and the Kolmogorov limit distribution otherwise.
//!
//! References:
//! 1. N. Smirnov (1939), "Estimate of deviation between empirical distribution functions in
//!    two independent samples", Bull. Moscow Univ. 2(2).
//! 2. T. Hothorn, K. Hornik: R `stats::psmirnov` (exact distribution with ties, R 4.2).
//! 3. A. Kolmogorov (1933), the limit distribution K(x) = 1 − 2 Σ (−1)^(k−1) e^(−2k²x²).

use std::f64::consts::PI;

use super::PValueMethod;
use super::double_double::{DoubleDouble, scale_by_power_of_two};
use super::ranks::merged_runs;
use super::tally::Tally;

/// R's cut-off for the exact p-value under `exact = NULL`.
pub const AUTO_EXACT_BELOW: u64 = 10_000;

/// The largest n_case · n_control for which the exact distribution is computed (its cost is
/// at most 2 · n_case · n_control steps); beyond it the exact p is None.
pub const EXACT_MAX_CELLS: u64 = 10_000_000;

/// The test's result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ks {
    /// D = sup |F_case − F_control|, evaluated where runs of equal pooled values end.
    pub d: f64,
    /// The two-sided p-value (None when the exact method is asked for beyond
    /// [`EXACT_MAX_CELLS`]).
    pub p: Option<f64>,
}

/// The KS test of compacted, non-empty tallies of `case` and `control` values.
/// `Auto` is R's rule: exact when n_case · n_control < 10,000.
pub fn ks_test(case: &Tally, control: &Tally, method: PValueMethod) -> Ks {
    let (m, n) = (case.len(), control.len());
    // After each distinct pooled value the case and control counts are (u, v), and
    // |u/m − v/n| = |u·n − v·m| / (m·n) is compared as an integer.
    let mut ends = Vec::new();
    let (mut u, mut v) = (0u64, 0u64);
    let mut d_scaled = 0u64;
    merged_runs(case, control, |_, cases_here, controls_here| {
        u += cases_here;
        v += controls_here;
        d_scaled = d_scaled.max((u * n).abs_diff(v * m));
        ends.push((u + v) as usize);
    });
    let d = d_scaled as f64 / (m as f64 * n as f64);
    let exact = match method {
        PValueMethod::Exact => true,
        PValueMethod::Asymptotic => false,
        PValueMethod::Auto => m * n < AUTO_EXACT_BELOW,
    };
    let p = if exact {
        (m.saturating_mul(n) <= EXACT_MAX_CELLS).then(|| exact_p(m, n, d_scaled, &ends))
    } else {
        Some(kolmogorov_sf(
            (m as f64 * n as f64 / (m + n) as f64).sqrt() * d,
        ))
    };
    Ks { d, p }
}

/// P(D ≥ observed) under H₀ given the ties: the probability that a random arrangement of the
/// labels over the pooled order reaches |u·n − v·m| ≥ `d_scaled` at the end of some run of
/// equal values. A forward pass over positions carries the probability of each count of
/// cases so far among the paths that have not reached the band yet; what reaches it is added
/// to p directly, so p is a sum of positive terms, never 1 minus something.
///
/// Accuracy: each step multiplies by a ratio of integers and adds, in double-double
/// arithmetic ([`DoubleDouble`], relative error below 2⁻¹⁰⁰ per operation), so after the
/// m + n steps p carries a relative error below (m + n) · 2⁻⁹⁸ before its one rounding to
/// f64. The walk starts from 2⁶⁰⁰ instead of 1 and p is scaled back at the end, so the paths
/// of a tail far below 1e-300 keep their digits (a p below f64's range comes out as 0).
/// Once the mass still walking is below 2⁻¹¹⁰ of p, it can no longer change p and the walk
/// stops.
fn exact_p(m: u64, n: u64, d_scaled: u64, ends: &[usize]) -> f64 {
    const SCALE: i32 = 600;
    if d_scaled == 0 {
        return 1.0;
    }
    let total = (m + n) as usize;
    let mut alive = vec![DoubleDouble::ZERO; m as usize + 1];
    alive[0] = DoubleDouble::new(2f64.powi(SCALE));
    let mut p = DoubleDouble::ZERO;
    let mut next_end = ends.iter().peekable();
    for k in 0..total {
        // Step from position k to k + 1: a case with probability (m − u)/(N − k), a control
        // with (n − (k − u))/(N − k).
        let remaining = (total - k) as f64;
        let lowest = k.saturating_sub(n as usize);
        let highest = k.min(m as usize);
        let mut walking = 0.0;
        for u in (lowest..=highest).rev() {
            let mass = alive[u];
            if mass.hi() == 0.0 {
                continue;
            }
            let share = mass / remaining;
            let cases_left = (m as usize - u) as f64;
            let controls_left = (n as usize - (k - u)) as f64;
            alive[u] = share * controls_left;
            if u < m as usize {
                alive[u + 1] += share * cases_left;
            }
            walking += mass.hi();
        }
        while next_end.peek().is_some_and(|&&e| e < k + 1) {
            next_end.next();
        }
        if next_end.peek().is_some_and(|&&e| e == k + 1) {
            let position = (k + 1) as u64;
            for (u, mass) in alive.iter_mut().enumerate() {
                let u = u as u64;
                if mass.hi() == 0.0 || u > position || position - u > n {
                    continue;
                }
                let gap = (u * n).abs_diff((position - u) * m);
                if gap >= d_scaled {
                    p += *mass;
                    *mass = DoubleDouble::ZERO;
                }
            }
        }
        if p.hi() > 0.0 && walking < p.hi() * 2f64.powi(-110) {
            break;
        }
    }
    scale_by_power_of_two(p.to_f64(), -SCALE).min(1.0)
}

/// 1 − K(x), the upper tail of Kolmogorov's limit distribution, to double precision: the
/// alternating series 2 Σ (−1)^(k−1) e^(−2k²x²) for x ≥ 1, Jacobi's dual series
/// K(x) = √(2π)/x Σ e^(−(2k−1)²π²/(8x²)) below.
pub fn kolmogorov_sf(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x <= 0.0 {
        return 1.0;
    }
    if x >= 1.0 {
        let mut sum = 0.0;
        for k in 1..=100 {
            let k = k as f64;
            let term = (-2.0 * k * k * x * x).exp();
            sum += if k as u64 % 2 == 1 { term } else { -term };
            if term < 1e-300 || term < 1e-17 * sum.abs() {
                break;
            }
        }
        (2.0 * sum).clamp(0.0, 1.0)
    } else {
        let mut sum = 0.0;
        for k in 1..=100 {
            let odd = (2 * k - 1) as f64;
            let term = (-odd * odd * PI * PI / (8.0 * x * x)).exp();
            sum += term;
            if term < 1e-17 * sum || term == 0.0 {
                break;
            }
        }
        (1.0 - (2.0 * PI).sqrt() / x * sum).clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_separation_has_the_smallest_exact_p() {
        // 3 cases all above 3 controls: D = 1, p = 2 / C(6, 3).
        let tally = |v: &[f64]| {
            let mut t = Tally::default();
            v.iter().for_each(|&x| {
                t.push(x);
            });
            t.compact();
            t
        };
        let r = ks_test(
            &tally(&[4.0, 5.0, 6.0]),
            &tally(&[1.0, 2.0, 3.0]),
            PValueMethod::Exact,
        );
        assert_eq!(r.d, 1.0);
        assert!((r.p.unwrap() - 0.1).abs() < 1e-15);
    }

    #[test]
    fn the_two_kolmogorov_series_meet() {
        let below = kolmogorov_sf(1.0 - 1e-12);
        let above = kolmogorov_sf(1.0);
        assert!((below - above).abs() < 1e-11, "{below} {above}");
        assert_eq!(kolmogorov_sf(0.0), 1.0);
    }
}
