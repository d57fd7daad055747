//! Tests of 2×2 tables: the sample odds ratio with Woolf's interval, Pearson's χ² with Yates's
//! correction, McNemar's test of matched pairs, Fisher's exact test with the conditional
//! maximum-likelihood odds ratio and its exact interval, and the Cochran-Mantel-Haenszel test
//! over strata with the Mantel-Haenszel odds ratio and the Robins-Breslow-Greenland interval.
//!
//! A table is laid out as R's `matrix(c(a, c, b, d), 2)`: rows cases / controls, columns
//! exposed / unexposed, so the odds ratio is a·d / (b·c) (odds of exposure in cases over odds
//! in controls, which equals the odds of being a case among the exposed over the unexposed).
//!
//! References:
//! 1. B. Woolf (1955), "On estimating the relation between blood group and disease", Ann. Hum.
//!    Genet. 19.
//! 2. R `stats::chisq.test`, `mcnemar.test`, `fisher.test`, `mantelhaen.test` (R 4.2).
//! 3. J. Robins, N. Breslow, S. Greenland (1986), "Estimators of the Mantel-Haenszel variance
//!    consistent in both sparse data and large-strata limiting models", Biometrics 42.

use super::distributions::{chi2_sf, normal_quantile};
use super::double_double::DoubleDouble;

/// The four cells of a 2×2 table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Table2x2 {
    /// Exposed cases.
    pub a: u64,
    /// Unexposed cases.
    pub b: u64,
    /// Exposed controls.
    pub c: u64,
    /// Unexposed controls.
    pub d: u64,
}

impl Table2x2 {
    /// Adds one observation.
    pub fn add(&mut self, exposed: bool, is_case: bool) {
        match (is_case, exposed) {
            (true, true) => self.a += 1,
            (true, false) => self.b += 1,
            (false, true) => self.c += 1,
            (false, false) => self.d += 1,
        }
    }

    /// Removes one observation added before.
    pub fn remove(&mut self, exposed: bool, is_case: bool) {
        let cell = match (is_case, exposed) {
            (true, true) => &mut self.a,
            (true, false) => &mut self.b,
            (false, true) => &mut self.c,
            (false, false) => &mut self.d,
        };
        *cell = cell.saturating_sub(1);
    }

    /// Adds another table cell by cell.
    pub fn merge(&mut self, other: &Table2x2) {
        self.a += other.a;
        self.b += other.b;
        self.c += other.c;
        self.d += other.d;
    }

    /// The number of observations.
    pub fn total(&self) -> u64 {
        self.a + self.b + self.c + self.d
    }

    fn cells(&self) -> [f64; 4] {
        [self.a as f64, self.b as f64, self.c as f64, self.d as f64]
    }
}

/// An odds ratio with a confidence interval; the bounds are None where undefined.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OddsRatio {
    /// The estimate (0 or +∞ at a zero cell).
    pub odds_ratio: f64,
    /// Lower bound.
    pub lower: Option<f64>,
    /// Upper bound.
    pub upper: Option<f64>,
}

/// The sample odds ratio a·d / (b·c) with Woolf's interval exp(ln OR ± z·√(1/a + 1/b + 1/c +
/// 1/d)). The estimate is +∞ when only b·c is 0 and 0 when only a·d is 0 (no interval then);
/// None when both are 0.
pub fn odds_ratio_woolf(t: &Table2x2, level: f64) -> Option<OddsRatio> {
    let [a, b, c, d] = t.cells();
    let (ad, bc) = (a * d, b * c);
    if ad == 0.0 && bc == 0.0 {
        return None;
    }
    let odds_ratio = ad / bc;
    if a == 0.0 || b == 0.0 || c == 0.0 || d == 0.0 {
        return Some(OddsRatio {
            odds_ratio,
            lower: None,
            upper: None,
        });
    }
    let z = normal_quantile(0.5 + level / 2.0);
    let se = (1.0 / a + 1.0 / b + 1.0 / c + 1.0 / d).sqrt();
    // ln(ad/bc) from the cells' logs keeps full precision for huge counts.
    let ln_or = (a.ln() + d.ln()) - (b.ln() + c.ln());
    Some(OddsRatio {
        odds_ratio,
        lower: Some((ln_or - z * se).exp()),
        upper: Some((ln_or + z * se).exp()),
    })
}

/// A χ² statistic with its upper-tail p-value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChiSquared {
    /// The statistic.
    pub chi2: f64,
    /// P(χ²₁ ≥ chi2).
    pub p: f64,
}

/// Pearson's χ² test of independence of a 2×2 table (R `chisq.test`): with `yates`, each
/// |O − E| is reduced by min(½, |O − E|). None when a row or column total is 0.
pub fn chi2_2x2(t: &Table2x2, yates: bool) -> Option<ChiSquared> {
    let [a, b, c, d] = t.cells();
    let n = a + b + c + d;
    let (cases, controls) = (a + b, c + d);
    let (exposed, unexposed) = (a + c, b + d);
    if cases == 0.0 || controls == 0.0 || exposed == 0.0 || unexposed == 0.0 {
        return None;
    }
    let expected = [
        cases * exposed / n,
        cases * unexposed / n,
        controls * exposed / n,
        controls * unexposed / n,
    ];
    let chi2 = [a, b, c, d]
        .iter()
        .zip(expected)
        .map(|(&o, e)| {
            let deviation = (o - e).abs();
            let deviation = if yates {
                deviation - deviation.min(0.5)
            } else {
                deviation
            };
            deviation * deviation / e
        })
        .sum::<f64>();
    Some(ChiSquared {
        chi2,
        p: chi2_sf(chi2, 1.0),
    })
}

/// McNemar's test of matched pairs (R `mcnemar.test`): `discordant_case` pairs where only
/// the case is exposed, `discordant_control` pairs where only the control is; the statistic
/// is (|b − c| − 1)² / (b + c) with the continuity correction, which R skips when b = c (the
/// statistic is then 0), and (b − c)² / (b + c) without. None without discordant pairs.
pub fn mcnemar(discordant_case: u64, discordant_control: u64, correct: bool) -> Option<ChiSquared> {
    let (b, c) = (discordant_case as f64, discordant_control as f64);
    if b + c == 0.0 {
        return None;
    }
    let deviation = (b - c).abs() - if correct && b != c { 1.0 } else { 0.0 };
    let chi2 = deviation * deviation / (b + c);
    Some(ChiSquared {
        chi2,
        p: chi2_sf(chi2, 1.0),
    })
}

/// The Cochran-Mantel-Haenszel test of a 2×2×K table (R `mantelhaen.test`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cmh {
    /// The CMH statistic (1 degree of freedom) and its p-value; None when its variance is 0.
    pub test: Option<ChiSquared>,
    /// The Mantel-Haenszel common odds ratio with the Robins-Breslow-Greenland interval;
    /// None when both of its sums are 0.
    pub odds_ratio: Option<OddsRatio>,
}

/// The CMH test over strata. Strata with fewer than 2 observations carry no information and
/// are skipped (R refuses them). With `correct`, |Σ(a − E a)| is reduced by ½ when it is at
/// least ½, as R does. None when no stratum is left.
pub fn cmh(strata: &[Table2x2], correct: bool, level: f64) -> Option<Cmh> {
    let strata: Vec<[f64; 4]> = strata
        .iter()
        .filter(|t| t.total() >= 2)
        .map(Table2x2::cells)
        .collect();
    if strata.is_empty() {
        return None;
    }
    let (mut delta, mut variance) = (0.0, 0.0);
    // Robins-Breslow-Greenland: R = Σ ad/t, S = Σ bc/t and the P·R, P·S + Q·R, Q·S sums with
    // P = (a + d)/t, Q = (b + c)/t.
    let (mut r, mut s, mut pr, mut ps_qr, mut qs) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &[a, b, c, d] in &strata {
        let t = a + b + c + d;
        let (cases, exposed) = (a + b, a + c);
        let (controls, unexposed) = (t - cases, t - exposed);
        delta += a - cases * exposed / t;
        variance += cases * exposed * controls * unexposed / (t * t * (t - 1.0));
        let (ri, si) = (a * d / t, b * c / t);
        let (p, q) = ((a + d) / t, (b + c) / t);
        r += ri;
        s += si;
        pr += p * ri;
        ps_qr += p * si + q * ri;
        qs += q * si;
    }
    let test = (variance > 0.0).then(|| {
        let yates = if correct && delta.abs() >= 0.5 {
            0.5
        } else {
            0.0
        };
        let deviation = delta.abs() - yates;
        let chi2 = deviation * deviation / variance;
        ChiSquared {
            chi2,
            p: chi2_sf(chi2, 1.0),
        }
    });
    let odds_ratio = (r > 0.0 || s > 0.0).then(|| {
        let estimate = r / s;
        let interval = (r > 0.0 && s > 0.0).then(|| {
            let se = (pr / (2.0 * r * r) + ps_qr / (2.0 * r * s) + qs / (2.0 * s * s)).sqrt();
            let z = normal_quantile(0.5 + level / 2.0);
            (estimate * (-z * se).exp(), estimate * (z * se).exp())
        });
        OddsRatio {
            odds_ratio: estimate,
            lower: interval.map(|i| i.0),
            upper: interval.map(|i| i.1),
        }
    });
    Some(Cmh { test, odds_ratio })
}

/// Fisher's exact test of a 2×2 table as R's `fisher.test` computes it: the conditional
/// maximum-likelihood odds ratio, its exact interval, and the two-sided p-value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fisher {
    /// The conditional MLE of the odds ratio (0 or +∞ at the ends of the support).
    pub odds_ratio: f64,
    /// Lower end of the exact interval.
    pub lower: f64,
    /// Upper end of the exact interval (+∞ when `a` is the largest possible).
    pub upper: f64,
    /// Two-sided p: the probability of the tables no more likely than the observed one.
    pub p: f64,
}

/// The conditional distribution of `a` given the margins: the noncentral hypergeometric
/// family with support lo..=hi and ln of the central (odds ratio 1) weights.
struct Conditional {
    lo: u64,
    observed: u64,
    /// ln C(cases, x) C(controls, exposed − x) up to a constant, for x = lo..=hi.
    ln_weight: Vec<f64>,
}

impl Conditional {
    fn new(t: &Table2x2) -> Self {
        let cases = t.a + t.b;
        let controls = t.c + t.d;
        let exposed = t.a + t.c;
        let lo = exposed.saturating_sub(controls);
        let hi = exposed.min(cases);
        // Ratios of consecutive weights: w(x + 1) / w(x) = (cases − x)(exposed − x) /
        // ((x + 1)(controls − exposed + x + 1)).
        let mut ln_weight = Vec::with_capacity((hi - lo + 1) as usize);
        let mut w = 0.0;
        ln_weight.push(w);
        for x in lo..hi {
            let (x, m, k, n) = (x as f64, cases as f64, exposed as f64, controls as f64);
            w += ((m - x) * (k - x)).ln() - ((x + 1.0) * (n - k + x + 1.0)).ln();
            ln_weight.push(w);
        }
        Self {
            lo,
            observed: t.a,
            ln_weight,
        }
    }

    /// The family of S = Σ aₖ over independent strata sharing one odds ratio: the strata's
    /// log-weights convolved in log space (each sum of products taken relative to its
    /// largest term), so that no weight underflows however far it lies from the mode at
    /// odds ratio 1; the estimate and interval may sit there.
    fn convolved(strata: &[Table2x2]) -> Self {
        let mut lo = 0;
        let mut observed = 0;
        let mut ln_weight = vec![0.0f64];
        for t in strata {
            let one = Conditional::new(t);
            lo += one.lo;
            observed += t.a;
            if one.ln_weight.len() == 1 {
                continue;
            }
            let width = ln_weight.len() + one.ln_weight.len() - 1;
            let mut next = Vec::with_capacity(width);
            for k in 0..width {
                let from = k.saturating_sub(one.ln_weight.len() - 1);
                let to = k.min(ln_weight.len() - 1);
                let terms = (from..=to).map(|i| ln_weight[i] + one.ln_weight[k - i]);
                let top = terms.clone().fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = terms.map(|x| (x - top).exp()).sum();
                next.push(top + sum.ln());
            }
            ln_weight = next;
        }
        Self {
            lo,
            observed,
            ln_weight,
        }
    }

    fn hi(&self) -> u64 {
        self.lo + self.ln_weight.len() as u64 - 1
    }

    /// The probabilities of x = lo..=hi under odds ratio e^θ.
    fn density(&self, theta: f64) -> Vec<f64> {
        let logs: Vec<f64> = self
            .ln_weight
            .iter()
            .enumerate()
            .map(|(i, w)| w + theta * (self.lo as f64 + i as f64))
            .collect();
        let max = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mut d: Vec<f64> = logs.iter().map(|l| (l - max).exp()).collect();
        let total: f64 = d.iter().sum();
        d.iter_mut().for_each(|x| *x /= total);
        d
    }

    /// E[X] and Var[X] under odds ratio e^θ.
    fn mean_variance(&self, theta: f64) -> (f64, f64) {
        let d = self.density(theta);
        let mean: f64 = d
            .iter()
            .enumerate()
            .map(|(i, p)| p * (self.lo as f64 + i as f64))
            .sum();
        let variance: f64 = d
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let e = self.lo as f64 + i as f64 - mean;
                p * e * e
            })
            .sum();
        (mean, variance)
    }

    /// P(X ≥ observed) (upper) or P(X ≤ observed), with d/dθ of it: Cov(1[tail], X).
    fn tail(&self, theta: f64, upper: bool) -> (f64, f64) {
        let d = self.density(theta);
        let k = (self.observed - self.lo) as usize;
        let in_tail = |i: usize| if upper { i >= k } else { i <= k };
        let (mut tail, mut mean, mut tail_x) = (0.0, 0.0, 0.0);
        for (i, p) in d.iter().enumerate() {
            let x = self.lo as f64 + i as f64;
            mean += p * x;
            if in_tail(i) {
                tail += p;
                tail_x += p * x;
            }
        }
        (tail, tail_x - tail * mean)
    }
}

/// Solves f(θ) = 0 for f increasing in θ, with its derivative; Newton's method kept inside a
/// bracket that is first widened until it holds the root, then halved when a step leaves it.
fn solve_increasing(f: impl Fn(f64) -> (f64, f64)) -> f64 {
    let (mut lo, mut hi) = (-1.0, 1.0);
    while f(lo).0 > 0.0 && lo > -750.0 {
        lo *= 2.0;
    }
    while f(hi).0 < 0.0 && hi < 750.0 {
        hi *= 2.0;
    }
    let mut theta = 0.5 * (lo + hi);
    for _ in 0..200 {
        let (value, slope) = f(theta);
        if value == 0.0 {
            return theta;
        }
        if value < 0.0 {
            lo = theta;
        } else {
            hi = theta;
        }
        let newton = theta - value / slope;
        let next = if slope > 0.0 && newton > lo && newton < hi {
            newton
        } else {
            0.5 * (lo + hi)
        };
        if (next - theta).abs() <= 4.0 * f64::EPSILON * theta.abs().max(1.0) || hi - lo <= 0.0 {
            return next;
        }
        theta = next;
    }
    theta
}

/// The alternative hypothesis of a test of the odds ratio (R's `alternative`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alternative {
    /// The odds ratio differs from 1.
    TwoSided,
    /// The odds ratio is below 1.
    Less,
    /// The odds ratio is above 1.
    Greater,
}

impl Alternative {
    /// `'two_sided'` (also R's `'two.sided'` and `'two-sided'`), `'less'` or `'greater'`.
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "two_sided" | "two.sided" | "two-sided" => Some(Alternative::TwoSided),
            "less" => Some(Alternative::Less),
            "greater" => Some(Alternative::Greater),
            _ => None,
        }
    }
}

/// Fisher's exact test (R `fisher.test(conf.level = level, alternative = …)`). The estimate
/// and the interval are solved to full double precision (R's `uniroot` stops at a tolerance
/// of about 1e-4, so R agrees with them to about 4 digits). A one-sided test has the
/// one-sided interval ([0, upper] for `Less`, [lower, ∞] for `Greater`, each bound at
/// 1 − level) and the one-sided p, P(X ≤ a) or P(X ≥ a) at odds ratio 1. None when a margin
/// is 0.
pub fn fisher_exact(t: &Table2x2, level: f64, alternative: Alternative) -> Option<Fisher> {
    if t.a + t.b == 0 || t.c + t.d == 0 || t.a + t.c == 0 || t.b + t.d == 0 {
        return None;
    }
    let (odds_ratio, lower, upper) = conditional_estimate(&Conditional::new(t), level, alternative);
    let p = fisher_p(t, alternative);
    Some(Fisher {
        odds_ratio,
        lower,
        upper,
        p,
    })
}

/// The conditional maximum-likelihood odds ratio of a noncentral hypergeometric family at its
/// observed value, with the exact interval at `level` for `alternative` (R's `fisher.test`
/// and `mantelhaen.test(exact = TRUE)`): (estimate, lower, upper).
fn conditional_estimate(
    dist: &Conditional,
    level: f64,
    alternative: Alternative,
) -> (f64, f64, f64) {
    let (lo, hi, x) = (dist.lo, dist.hi(), dist.observed);
    let xf = x as f64;
    let odds_ratio = if x == lo {
        0.0
    } else if x == hi {
        f64::INFINITY
    } else {
        solve_increasing(|theta| {
            let (mean, variance) = dist.mean_variance(theta);
            (mean - xf, variance)
        })
        .exp()
    };
    let alpha = match alternative {
        Alternative::TwoSided => (1.0 - level) / 2.0,
        Alternative::Less | Alternative::Greater => 1.0 - level,
    };
    // The lower bound solves P(X ≥ x; ψ) = α (increasing in ψ), the upper P(X ≤ x; ψ) = α
    // (decreasing in ψ).
    let lower = if x == lo || alternative == Alternative::Less {
        0.0
    } else {
        solve_increasing(|theta| {
            let (p, slope) = dist.tail(theta, true);
            (p - alpha, slope)
        })
        .exp()
    };
    let upper = if x == hi || alternative == Alternative::Greater {
        f64::INFINITY
    } else {
        solve_increasing(|theta| {
            let (p, slope) = dist.tail(theta, false);
            (alpha - p, -slope)
        })
        .exp()
    };
    (odds_ratio, lower, upper)
}

/// Fisher's p at odds ratio 1, as R's `fisher.test`. Two-sided: the total probability of
/// the tables (given the margins) whose probability is at most the observed one's times
/// 1 + 1e-7 (R's and scipy's allowance for rounding); one-sided: P(X ≤ a) or P(X ≥ a).
///
/// The hypergeometric terms are built outwards from the mode by the ratios of consecutive
/// terms, w(x + 1) / w(x) = (cases − x)(exposed − x) / ((x + 1)(controls − exposed + x + 1)),
/// each a quotient of exact integer products, in double-double arithmetic: a term d steps
/// from the mode carries a relative error below d · 2⁻⁹⁸, and p is a ratio of two sums of
/// positive terms, so it keeps about 15 significant digits however far in the tail. The mode
/// starts at 2⁶⁰⁰ so that terms far below 1e-300 of it stay representable; terms below that
/// come out as 0 (a p-value below f64's range is 0).
fn fisher_p(t: &Table2x2, alternative: Alternative) -> f64 {
    let (lo, w) = hypergeometric_weights(t, DoubleDouble::new(2f64.powi(600)));
    let at = |x: u64| (x - lo) as usize;
    let threshold = w[at(t.a)].hi() * (1.0 + 1e-7);
    let (mut total, mut tail) = (DoubleDouble::ZERO, DoubleDouble::ZERO);
    for (x, &term) in (lo..).zip(&w) {
        total += term;
        let counted = match alternative {
            Alternative::TwoSided => term.hi() <= threshold,
            Alternative::Less => x <= t.a,
            Alternative::Greater => x >= t.a,
        };
        if counted {
            tail += term;
        }
    }
    (tail / total).to_f64().min(1.0)
}

/// The central hypergeometric weights of `a` given the margins, for x = lo..=hi, with the mode
/// at `mode_weight` (see [`fisher_p`] for the accuracy): (lo, weights). Terms that underflow
/// are 0, and so is every term beyond them.
fn hypergeometric_weights(t: &Table2x2, mode_weight: DoubleDouble) -> (u64, Vec<DoubleDouble>) {
    let cases = t.a + t.b;
    let controls = t.c + t.d;
    let exposed = t.a + t.c;
    let lo = exposed.saturating_sub(controls);
    let hi = exposed.min(cases);
    // w(x + 1) / w(x) for lo ≤ x < hi (controls + x + 1 ≥ exposed there).
    let ratio = |x: u64| {
        DoubleDouble::product((cases - x) as f64, (exposed - x) as f64)
            / DoubleDouble::product((x + 1) as f64, (controls + x + 1 - exposed) as f64)
    };
    let n = (cases + controls) as f64;
    let mode =
        (((cases as f64 + 1.0) * (exposed as f64 + 1.0) / (n + 2.0)).floor() as u64).clamp(lo, hi);
    let mut w = vec![DoubleDouble::ZERO; (hi - lo + 1) as usize];
    let at = |x: u64| (x - lo) as usize;
    w[at(mode)] = mode_weight;
    for x in mode..hi {
        w[at(x + 1)] = w[at(x)] * ratio(x);
        if w[at(x + 1)].hi() == 0.0 {
            break;
        }
    }
    for x in (lo..mode).rev() {
        w[at(x)] = w[at(x + 1)] / ratio(x);
        if w[at(x)].hi() == 0.0 {
            break;
        }
    }
    (lo, w)
}

/// The exact conditional test of a common odds ratio in 2×2×K strata, as R's
/// `mantelhaen.test(exact = TRUE)` (two-sided): S = Σ a given every stratum's margins has the
/// distribution of a sum of independent noncentral hypergeometric variables with one odds
/// ratio ψ. The estimate is the conditional MLE (E[S; ψ] = s), the interval the exact one at
/// `level` (P(S ≥ s; ψ) = α/2 and P(S ≤ s; ψ) = α/2), p the probability at ψ = 1 of the
/// sums no more likely than s (times 1 + 1e-7, R's allowance), all solved to full double
/// precision (R's `uniroot` stops near 1e-4).
///
/// For p, the distribution at ψ = 1 is the convolution of the strata's central
/// hypergeometric weights (each from exact ratios, [`hypergeometric_weights`]), rescaled to a
/// largest term of 1 after each stratum: sums and products of positive numbers only, so a
/// term keeps a relative error of a few units of 2⁻⁵³ per stratum; terms below f64's range
/// relative to the largest are 0, so p keeps that accuracy down to about 1e-290 and is 0
/// below. The estimate and interval use the same convolution in log space
/// ([`Conditional::convolved`]), where nothing underflows. Strata with a zero margin
/// contribute a constant and no information. None when S can take one value only.
pub fn cmh_exact(strata: &[Table2x2], level: f64) -> Option<Fisher> {
    let mut lo = 0u64;
    let mut dist = vec![1.0f64];
    let mut observed = 0u64;
    for t in strata {
        let (l, w) = hypergeometric_weights(t, DoubleDouble::new(1.0));
        lo += l;
        observed += t.a;
        if w.len() == 1 {
            continue;
        }
        let mut next = vec![0.0f64; dist.len() + w.len() - 1];
        for (i, &d) in dist.iter().enumerate() {
            if d == 0.0 {
                continue;
            }
            for (j, wj) in w.iter().enumerate() {
                next[i + j] += d * wj.to_f64();
            }
        }
        let top = next.iter().copied().fold(0.0f64, f64::max);
        next.iter_mut().for_each(|x| *x /= top);
        dist = next;
    }
    if dist.len() < 2 {
        return None;
    }
    let (odds_ratio, lower, upper) = conditional_estimate(
        &Conditional::convolved(strata),
        level,
        Alternative::TwoSided,
    );
    let threshold = dist[(observed - lo) as usize] * (1.0 + 1e-7);
    let (mut total, mut tail) = (DoubleDouble::ZERO, DoubleDouble::ZERO);
    for &d in &dist {
        total += DoubleDouble::new(d);
        if d <= threshold {
            tail += DoubleDouble::new(d);
        }
    }
    Some(Fisher {
        odds_ratio,
        lower,
        upper,
        p: (tail / total).to_f64().min(1.0),
    })
}

/// The Breslow-Day test of homogeneity of the odds ratios of 2×2×K strata.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreslowDay {
    /// The statistic (with Tarone's correction when asked).
    pub chi2: f64,
    /// Its degrees of freedom: the strata used, less 1.
    pub df: f64,
    /// P(χ²_df ≥ chi2).
    pub p: f64,
}

/// The Breslow-Day test that K strata share one odds ratio, as statsmodels'
/// `StratifiedTable.test_equal_odds` and DescTools' `BreslowDayTest`: each stratum's fitted
/// exposed-case count A under the Mantel-Haenszel common odds ratio ψ (the root of
/// A·D = ψ·B·C within the margins), χ² = Σ (a − A)² / Var with
/// Var = 1 / (1/A + 1/B + 1/C + 1/D), on K − 1 degrees of freedom; Tarone's correction
/// subtracts (Σa − ΣA)² / ΣVar. A stratum with a zero margin says nothing about its odds
/// ratio and is left out (its variance is 0). None with fewer than 2 strata left or when ψ
/// is 0 or infinite.
pub fn breslow_day(strata: &[Table2x2], tarone: bool) -> Option<BreslowDay> {
    let used: Vec<&Table2x2> = strata
        .iter()
        .filter(|t| t.a + t.b > 0 && t.c + t.d > 0 && t.a + t.c > 0 && t.b + t.d > 0)
        .collect();
    if used.len() < 2 {
        return None;
    }
    let (mut r, mut s) = (0.0, 0.0);
    for t in &used {
        let [a, b, c, d] = t.cells();
        let n = a + b + c + d;
        r += a * d / n;
        s += b * c / n;
    }
    let psi = r / s;
    if !(psi.is_finite() && psi > 0.0) {
        return None;
    }
    let (mut chi2, mut deviation, mut variance) = (0.0, 0.0, 0.0);
    for t in &used {
        let [a, ..] = t.cells();
        let fitted = fitted_exposed_cases(t, psi);
        let [fa, fb, fc, fd] = fitted;
        let var = 1.0 / (1.0 / fa + 1.0 / fb + 1.0 / fc + 1.0 / fd);
        chi2 += (a - fa) * (a - fa) / var;
        deviation += a - fa;
        variance += var;
    }
    if tarone {
        chi2 -= deviation * deviation / variance;
    }
    let df = (used.len() - 1) as f64;
    Some(BreslowDay {
        chi2,
        df,
        p: chi2_sf(chi2, df),
    })
}

/// The cells (A, B, C, D) of a stratum with its margins and odds ratio `psi`: A is the root
/// of (1 − ψ)A² + (n − k − m + ψ(k + m))A − ψkm = 0 (k cases, m exposed) strictly inside
/// the support, taken from the quadratic without cancellation and polished by Newton steps.
fn fitted_exposed_cases(t: &Table2x2, psi: f64) -> [f64; 4] {
    let [a, b, c, d] = t.cells();
    let (k, m, n) = (a + b, a + c, a + b + c + d);
    let qa = 1.0 - psi;
    let qb = n - k - m + psi * (k + m);
    let qc = -psi * k * m;
    let lo = (k + m - n).max(0.0);
    let hi = k.min(m);
    let mut x = if qa.abs() < 1e-12 * qb.abs() {
        -qc / qb
    } else {
        // The root in the support: with q = -(b + sign(b)·√Δ)/2 the two roots are q/a and c/q.
        let disc = (qb * qb - 4.0 * qa * qc).max(0.0).sqrt();
        let q = -0.5 * (qb + qb.signum() * disc);
        let (r1, r2) = (q / qa, qc / q);
        if (lo..=hi).contains(&r1) { r1 } else { r2 }
    };
    for _ in 0..3 {
        let f = x * (n - k - m + x) - psi * (k - x) * (m - x);
        let slope = (n - k - m + 2.0 * x) + psi * ((k - x) + (m - x));
        if slope == 0.0 {
            break;
        }
        let next = x - f / slope;
        if !(next > lo && next < hi) {
            break;
        }
        x = next;
    }
    [x, k - x, m - x, n - k - m + x]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(a: u64, b: u64, c: u64, d: u64) -> Table2x2 {
        Table2x2 { a, b, c, d }
    }

    #[test]
    fn woolf_interval_is_symmetric_on_the_log_scale() {
        let r = odds_ratio_woolf(&table(10, 20, 5, 40), 0.95).unwrap();
        assert_eq!(r.odds_ratio, 4.0);
        let (l, u) = (r.lower.unwrap(), r.upper.unwrap());
        assert!(((l * u).sqrt() - 4.0).abs() < 1e-12);
        assert!(odds_ratio_woolf(&table(0, 3, 0, 4), 0.95).is_none());
        let inf = odds_ratio_woolf(&table(3, 0, 2, 4), 0.95).unwrap();
        assert_eq!(inf.odds_ratio, f64::INFINITY);
        assert_eq!(inf.lower, None);
    }

    #[test]
    fn fisher_estimate_solves_the_conditional_score_equation() {
        let t = table(7, 3, 2, 8);
        let f = fisher_exact(&t, 0.95, Alternative::TwoSided).unwrap();
        let dist = Conditional::new(&t);
        let (mean, _) = dist.mean_variance(f.odds_ratio.ln());
        assert!((mean - 7.0).abs() < 1e-12, "{mean}");
        assert!(f.lower < f.odds_ratio && f.odds_ratio < f.upper);
        assert!((dist.tail(f.lower.ln(), true).0 - 0.025).abs() < 1e-14);
        assert!((dist.tail(f.upper.ln(), false).0 - 0.025).abs() < 1e-14);
    }

    #[test]
    fn mcnemar_corrects_like_r_except_when_balanced() {
        assert_eq!(mcnemar(5, 5, true).unwrap().chi2, 0.0);
        assert_eq!(mcnemar(7, 3, true).unwrap().chi2, 0.9);
        assert!(mcnemar(0, 0, true).is_none());
    }
}
