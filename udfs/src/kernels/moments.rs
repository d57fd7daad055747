//! Moments of two groups (controls and cases), and the statistics built from them: Welch's
//! and Student's t tests, Cohen's d, Hedges' g, fold change.
//!
//! Each group keeps (n, mean, M2) updated by Welford's algorithm and merged by Chan et al.'s
//! pairwise formula, so partial states from any number of partitions combine to the same
//! result as one pass, up to rounding.
//!
//! References:
//! 1. B. P. Welford (1962), "Note on a method for calculating corrected sums of squares and
//!    products", Technometrics 4(3).
//! 2. T. F. Chan, G. H. Golub, R. J. LeVeque (1979), "Updating formulae and a pairwise
//!    algorithm for computing sample variances", Stanford CS report STAN-CS-79-773.
//! 3. B. L. Welch (1947), "The generalization of 'Student's' problem when several different
//!    population variances are involved", Biometrika 34.
//! 4. L. V. Hedges (1981), "Distribution theory for Glass's estimator of effect size and
//!    related estimators", J. Educational Statistics 6(2): the exact correction
//!    J(m) = Γ(m/2) / (√(m/2) Γ((m−1)/2)).

use super::distributions::{ln_gamma_ratio, ln_t_two_sided_p};

/// Count, mean and sum of squared deviations of one group.
///
/// The mean is kept as an unevaluated sum `mean + mean_lo` (a double-double): Welford's
/// update subtracts the running mean from every value, and a mean rounded to 53 bits would
/// make that difference lose the digits the data share (values around 1e9 with unit spread
/// lose 7 of them, where a two-pass computation loses none). With the compensation the
/// one-pass, mergeable state is as accurate as the exact two-pass result to about 1e-13.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Moments {
    /// Number of values.
    pub n: u64,
    /// Their mean, rounded (0 when n = 0).
    pub mean: f64,
    /// The rounding error of `mean`: the mean is `mean + mean_lo`.
    pub mean_lo: f64,
    /// Σ (x − mean)².
    pub m2: f64,
}

/// `a + b` as a rounded sum and its exact error (Knuth's TwoSum).
fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let bb = s - a;
    (s, (a - (s - bb)) + (b - bb))
}

impl Moments {
    /// x − mean, with the compensated mean.
    fn deviation(&self, x: f64) -> f64 {
        (x - self.mean) - self.mean_lo
    }

    /// Adds `increment` to the compensated mean.
    fn shift_mean(&mut self, increment: f64) {
        let (sum, err) = two_sum(self.mean, increment);
        let (hi, lo) = two_sum(sum, err + self.mean_lo);
        self.mean = hi;
        self.mean_lo = lo;
    }

    /// Adds one finite value (Welford).
    pub fn push(&mut self, x: f64) {
        self.n += 1;
        let delta = self.deviation(x);
        self.shift_mean(delta / self.n as f64);
        self.m2 += delta * self.deviation(x);
    }

    /// Removes a value added before (Welford's update run backwards).
    pub fn remove(&mut self, x: f64) {
        if self.n <= 1 {
            *self = Moments::default();
            return;
        }
        let before = self.deviation(x);
        self.shift_mean(-before / (self.n - 1) as f64);
        self.m2 -= before * self.deviation(x);
        self.n -= 1;
    }

    /// Combines another group's moments into this one (Chan et al.).
    pub fn merge(&mut self, other: &Moments) {
        if other.n == 0 {
            return;
        }
        if self.n == 0 {
            *self = *other;
            return;
        }
        let n = self.n + other.n;
        let (na, nb, nf) = (self.n as f64, other.n as f64, n as f64);
        let delta = (other.mean - self.mean) + (other.mean_lo - self.mean_lo);
        self.shift_mean(delta * nb / nf);
        self.m2 += other.m2 + delta * delta * na * nb / nf;
        self.n = n;
    }

    /// The moments of `(value, count)` runs (finite values, any order), in two passes: the
    /// mean from the exactly accumulated sum (each `value · count` and each addition with its
    /// rounding error), then Σ count · (x − mean)². As accurate as the state gets, and what
    /// the shared state of `shared.rs` evaluates from its tallies. Should the sum overflow
    /// (values near the largest double), the runs are merged as one-value groups instead,
    /// which never forms the sum.
    pub fn from_runs(runs: impl Iterator<Item = (f64, u64)> + Clone) -> Moments {
        let (mut n, mut hi, mut lo) = (0u64, 0.0f64, 0.0f64);
        for (x, c) in runs.clone() {
            n += c;
            let c = c as f64;
            let product = x * c;
            let (sum, err) = two_sum(hi, product);
            hi = sum;
            lo += err + x.mul_add(c, -product);
        }
        if n == 0 {
            return Moments::default();
        }
        if !(hi.is_finite() && lo.is_finite()) {
            let mut m = Moments::default();
            for (x, c) in runs {
                m.merge(&Moments {
                    n: c,
                    mean: x,
                    mean_lo: 0.0,
                    m2: 0.0,
                });
            }
            return m;
        }
        let nf = n as f64;
        let (sum, sum_lo) = two_sum(hi, lo);
        let mean = sum / nf;
        // The division's remainder, exactly: sum − mean·n by a fused multiply-add.
        let mean_lo = ((-mean).mul_add(nf, sum) + sum_lo) / nf;
        let mut m = Moments {
            n,
            mean,
            mean_lo,
            m2: 0.0,
        };
        m.m2 = runs
            .map(|(x, c)| {
                let d = m.deviation(x);
                c as f64 * d * d
            })
            .sum();
        m
    }

    /// The mean (0 when n = 0).
    pub fn mean(&self) -> f64 {
        self.mean + self.mean_lo
    }

    /// The sample variance (n − 1 denominator), if n ≥ 2.
    pub fn variance(&self) -> Option<f64> {
        (self.n >= 2).then(|| self.m2.max(0.0) / (self.n - 1) as f64)
    }
}

/// The moments of the controls and of the cases.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TwoGroups {
    /// Rows with `is_case = false`.
    pub control: Moments,
    /// Rows with `is_case = true`.
    pub case: Moments,
}

impl TwoGroups {
    /// Adds a value to the group its label names.
    pub fn push(&mut self, x: f64, is_case: bool) {
        if is_case {
            self.case.push(x)
        } else {
            self.control.push(x)
        }
    }

    /// Removes a value added before.
    pub fn remove(&mut self, x: f64, is_case: bool) {
        if is_case {
            self.case.remove(x)
        } else {
            self.control.remove(x)
        }
    }

    /// Combines another partial state into this one.
    pub fn merge(&mut self, other: &TwoGroups) {
        self.control.merge(&other.control);
        self.case.merge(&other.case);
    }

    /// Pooled variance Σ M2 / (n₁ + n₀ − 2), if both groups are non-empty and n₁ + n₀ ≥ 3.
    fn pooled_variance(&self) -> Option<f64> {
        let (n0, n1) = (self.control.n, self.case.n);
        (n0 >= 1 && n1 >= 1 && n0 + n1 >= 3)
            .then(|| (self.control.m2 + self.case.m2).max(0.0) / (n0 + n1 - 2) as f64)
    }
}

/// A two-sided t test, case minus control.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TTest {
    /// The t statistic: positive when cases have the larger mean.
    pub t: f64,
    /// Degrees of freedom (Welch–Satterthwaite for Welch's test).
    pub df: f64,
    /// Two-sided p-value.
    pub p: f64,
    /// ln p, finite even where p underflows to 0.
    pub log_p: f64,
}

/// mean_case − mean_control, from the compensated means.
fn mean_difference(g: &TwoGroups) -> f64 {
    (g.case.mean - g.control.mean) + (g.case.mean_lo - g.control.mean_lo)
}

fn t_test(t: f64, df: f64) -> Option<TTest> {
    if !t.is_finite() || df.is_nan() || df <= 0.0 {
        return None;
    }
    let log_p = ln_t_two_sided_p(t, df).min(0.0);
    Some(TTest {
        t,
        df,
        p: log_p.exp(),
        log_p,
    })
}

/// Welch's unequal-variance t test (R `t.test(var.equal = FALSE)`, scipy
/// `ttest_ind(equal_var=False)`). None when a group has fewer than 2 values or both
/// variances are 0.
pub fn welch(g: &TwoGroups) -> Option<TTest> {
    let (v0, v1) = (g.control.variance()?, g.case.variance()?);
    let (n0, n1) = (g.control.n as f64, g.case.n as f64);
    let (s0, s1) = (v0 / n0, v1 / n1);
    let se2 = s0 + s1;
    if se2.is_nan() || se2 <= 0.0 {
        return None;
    }
    let t = mean_difference(g) / se2.sqrt();
    let df = se2 * se2 / (s1 * s1 / (n1 - 1.0) + s0 * s0 / (n0 - 1.0));
    t_test(t, df)
}

/// Student's pooled-variance t test (R `t.test(var.equal = TRUE)`, scipy `ttest_ind`).
/// None when a group is empty, there are fewer than 3 values, or the pooled variance is 0.
pub fn student(g: &TwoGroups) -> Option<TTest> {
    let sp2 = g.pooled_variance()?;
    let (n0, n1) = (g.control.n as f64, g.case.n as f64);
    let se2 = sp2 * (1.0 / n0 + 1.0 / n1);
    if se2.is_nan() || se2 <= 0.0 {
        return None;
    }
    let t = mean_difference(g) / se2.sqrt();
    t_test(t, n0 + n1 - 2.0)
}

/// Cohen's d: (mean₁ − mean₀) / pooled SD (n − 1 denominators). None when the pooled
/// variance is undefined or 0.
pub fn cohens_d(g: &TwoGroups) -> Option<f64> {
    let sp2 = g.pooled_variance()?;
    (sp2 > 0.0).then(|| mean_difference(g) / sp2.sqrt())
}

/// Hedges' g: Cohen's d times the exact small-sample correction J(m), m = n₁ + n₀ − 2
/// (Hedges 1981). None when d is undefined or m < 2.
pub fn hedges_g(g: &TwoGroups) -> Option<f64> {
    let m = (g.control.n + g.case.n).checked_sub(2)? as f64;
    if m < 2.0 {
        return None;
    }
    // ln J = ln Γ(m/2) − ln Γ((m−1)/2) − ½ ln(m/2)
    let ln_j = ln_gamma_ratio((m - 1.0) / 2.0, 0.5) - 0.5 * (m / 2.0).ln();
    Some(cohens_d(g)? * ln_j.exp())
}

/// The one-sample t test of mean = 0 (scipy `ttest_1samp(x, 0)`, R `t.test(x)`), used for
/// paired differences: t = mean / (s / √n), df = n − 1. None when n < 2 or s = 0.
pub fn one_sample(m: &Moments) -> Option<TTest> {
    let variance = m.variance()?;
    if variance <= 0.0 {
        return None;
    }
    t_test(m.mean() / (variance / m.n as f64).sqrt(), (m.n - 1) as f64)
}

/// mean₁ / mean₀. None when a group is empty or the control mean is 0.
pub fn fold_change(g: &TwoGroups) -> Option<f64> {
    (g.control.n >= 1 && g.case.n >= 1 && g.control.mean() != 0.0)
        .then(|| g.case.mean() / g.control.mean())
}

/// log₂(mean₁ / mean₀). None when the ratio is undefined or not positive.
///
/// Computed as log1p((mean₁ − mean₀) / mean₀) / ln 2, so that the many biomarkers whose fold
/// change is close to 1 keep their digits (log₂ of a rounded ratio loses them).
pub fn log2_fold_change(g: &TwoGroups) -> Option<f64> {
    fold_change(g)?;
    let excess = mean_difference(g) / g.control.mean();
    (excess > -1.0).then(|| excess.ln_1p() / std::f64::consts::LN_2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups(control: &[f64], case: &[f64]) -> TwoGroups {
        let mut g = TwoGroups::default();
        control.iter().for_each(|&x| g.push(x, false));
        case.iter().for_each(|&x| g.push(x, true));
        g
    }

    #[test]
    fn merging_partial_states_equals_one_pass() {
        let xs: Vec<f64> = (0..1000)
            .map(|i| ((i * 7919) % 1013) as f64 / 7.0 + 1e6)
            .collect();
        let mut whole = Moments::default();
        xs.iter().for_each(|&x| whole.push(x));
        for split in [0, 1, 17, 500, 999, 1000] {
            let (mut a, mut b) = (Moments::default(), Moments::default());
            xs[..split].iter().for_each(|&x| a.push(x));
            xs[split..].iter().for_each(|&x| b.push(x));
            b.merge(&a);
            assert_eq!(b.n, whole.n);
            assert!((b.mean() - whole.mean()).abs() <= 1e-12 * whole.mean().abs());
            assert!((b.m2 - whole.m2).abs() <= 1e-9 * whole.m2.abs(), "{split}");
        }
    }

    #[test]
    fn moments_of_runs_equal_one_pass() {
        // Values sharing 7 leading digits, with ties: Welford with the compensated mean and
        // the two-pass moments of the runs agree to the last digits.
        let runs: Vec<(f64, u64)> = (0..300u64)
            .map(|i| (1e7 + ((i * 7919) % 1013) as f64 / 8.0, 1 + i % 4))
            .collect();
        let mut one_pass = Moments::default();
        for &(x, c) in &runs {
            (0..c).for_each(|_| one_pass.push(x));
        }
        let two_pass = Moments::from_runs(runs.iter().copied());
        assert_eq!(two_pass.n, one_pass.n);
        assert!((two_pass.mean() - one_pass.mean()).abs() <= 1e-15 * one_pass.mean());
        assert!((two_pass.m2 - one_pass.m2).abs() <= 1e-12 * one_pass.m2);
        // A sum that overflows: the runs are merged instead, and the mean stays finite.
        let huge = Moments::from_runs([(f64::MAX, 3), (f64::MAX / 2.0, 1)].into_iter());
        assert_eq!(huge.n, 4);
        assert!((huge.mean() / f64::MAX - 0.875).abs() < 1e-15);
        assert_eq!(Moments::from_runs(std::iter::empty()), Moments::default());
    }

    #[test]
    fn degenerate_groups_give_none() {
        assert!(welch(&groups(&[1.0], &[2.0, 3.0])).is_none());
        assert!(welch(&groups(&[1.0, 1.0], &[2.0, 2.0])).is_none());
        assert!(student(&groups(&[], &[2.0, 3.0, 4.0])).is_none());
        assert!(cohens_d(&groups(&[5.0, 5.0], &[5.0])).is_none());
        assert!(hedges_g(&groups(&[1.0], &[2.0, 3.0])).is_none());
        assert!(fold_change(&groups(&[0.0, 0.0], &[1.0])).is_none());
        assert!(log2_fold_change(&groups(&[1.0], &[-1.0])).is_none());
    }
}
