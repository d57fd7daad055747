//! Logistic regression by iteratively reweighted least squares (as R's `glm.fit` with the
//! binomial family) and conditional logistic regression for matched sets by Newton-Raphson on
//! the exact conditional likelihood (as R's `survival::clogit(method = "exact")`).
//!
//! References:
//! 1. P. McCullagh, J. A. Nelder (1989), *Generalized Linear Models*, 2nd ed., §2.5 (IRLS).
//! 2. R `stats::glm.fit` (R 4.2): starting values, link clamps and convergence rule.
//! 3. M. H. Gail, J. H. Lubin, L. V. Rubinstein (1981), "Likelihood calculations for matched
//!    case-control studies and survival studies with tied death times", Biometrika 68(3).
//! 4. N. E. Breslow, N. E. Day (1980), *Statistical Methods in Cancer Research I*, ch. 7.
//! 5. A. Albert, J. A. Anderson (1984), "On the existence of maximum likelihood estimates in
//!    logistic regression models", Biometrika 71(1) (see [`super::separation`]).

use super::distributions::{normal_quantile, normal_sf};
use super::separation::separated;

/// A fitted model: per coefficient the estimate and its standard error (None for a column
/// that is aliased: a linear combination of the columns before it).
#[derive(Debug, Clone, PartialEq)]
pub struct Fit {
    /// Estimates (log odds ratios).
    pub coef: Vec<Option<f64>>,
    /// Standard errors from the inverse information at the estimate.
    pub se: Vec<Option<f64>>,
    /// Whether the iterations converged to a finite maximum (false under separation).
    pub converged: bool,
    /// Iterations run.
    pub iterations: usize,
    /// The log-likelihood at the estimate (conditional for a conditional fit); None without
    /// an estimate.
    pub log_likelihood: Option<f64>,
    /// The log-likelihood of the null model: the intercept only (logistic), all
    /// coefficients 0 (conditional).
    pub null_log_likelihood: Option<f64>,
    /// Coefficients estimated (the columns that are not aliased).
    pub rank: usize,
    /// Conditional fits: the score test statistic U(0)ᵀ I(0)⁻¹ U(0) at 0.
    pub score_test: Option<f64>,
    /// Conditional fits: the Wald statistic β̂ᵀ I(β̂) β̂ of all coefficients.
    pub wald_test: Option<f64>,
}

impl Fit {
    /// No estimate (separated data, no convergence).
    fn none(p_all: usize, iterations: usize) -> Fit {
        Fit {
            coef: vec![None; p_all],
            se: vec![None; p_all],
            converged: false,
            iterations,
            log_likelihood: None,
            null_log_likelihood: None,
            rank: 0,
            score_test: None,
            wald_test: None,
        }
    }

    /// Wald z of coefficient `i`.
    pub fn z(&self, i: usize) -> Option<f64> {
        let (b, se) = (self.coef.get(i).copied()??, self.se.get(i).copied()??);
        (se > 0.0).then(|| b / se)
    }

    /// Two-sided Wald p of coefficient `i`.
    pub fn p(&self, i: usize) -> Option<f64> {
        self.z(i).map(|z| (2.0 * normal_sf(z.abs())).min(1.0))
    }
}

/// A dense column-major matrix of `rows` × `cols`.
#[derive(Debug, Clone)]
struct Matrix {
    rows: usize,
    cols: usize,
    data: Vec<f64>,
}

impl Matrix {
    fn column(&self, j: usize) -> &[f64] {
        &self.data[j * self.rows..(j + 1) * self.rows]
    }
}

/// Householder QR of `a` (n × p, n ≥ p, full column rank), returning R (p × p, upper, row-major)
/// and Qᵀb, or None when a pivot vanishes.
fn householder(mut a: Matrix, mut b: Vec<f64>) -> Option<(Vec<f64>, Vec<f64>)> {
    let (n, p) = (a.rows, a.cols);
    for k in 0..p {
        let col = &a.data[k * n..(k + 1) * n];
        let norm = col[k..].iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm == 0.0 || !norm.is_finite() {
            return None;
        }
        let alpha = if col[k] > 0.0 { -norm } else { norm };
        let mut v: Vec<f64> = col[k..].to_vec();
        v[0] -= alpha;
        let vnorm2: f64 = v.iter().map(|x| x * x).sum();
        if vnorm2 == 0.0 {
            continue;
        }
        let reflect = |x: &mut [f64]| {
            let dot: f64 = v.iter().zip(x.iter()).map(|(a, b)| a * b).sum();
            let f = 2.0 * dot / vnorm2;
            for (xi, vi) in x.iter_mut().zip(&v) {
                *xi -= f * vi;
            }
        };
        for j in k..p {
            reflect(&mut a.data[j * n + k..(j + 1) * n]);
        }
        reflect(&mut b[k..]);
    }
    let mut r = vec![0.0; p * p];
    for i in 0..p {
        for j in i..p {
            r[i * p + j] = a.data[j * n + i];
        }
    }
    if (0..p).any(|i| r[i * p + i] == 0.0) {
        return None;
    }
    Some((r, b[..p].to_vec()))
}

/// Solves R x = y for upper-triangular R (p × p, row-major).
fn back_substitute(r: &[f64], y: &[f64]) -> Vec<f64> {
    let p = y.len();
    let mut x = vec![0.0; p];
    for i in (0..p).rev() {
        let s: f64 = (i + 1..p).map(|j| r[i * p + j] * x[j]).sum();
        x[i] = (y[i] - s) / r[i * p + i];
    }
    x
}

/// diag((RᵀR)⁻¹) for upper-triangular R: the squared row norms of R⁻¹.
fn inverse_gram_diagonal(r: &[f64], p: usize) -> Vec<f64> {
    let mut diag = vec![0.0; p];
    for k in 0..p {
        // Column k of R⁻¹ solves R x = e_k.
        let mut e = vec![0.0; p];
        e[k] = 1.0;
        let x = back_substitute(r, &e);
        for (d, xi) in diag.iter_mut().zip(x) {
            *d += xi * xi;
        }
    }
    diag
}

/// Which columns to keep: a column whose part orthogonal to the kept columns before it is
/// below 1e-7 of its norm is aliased (R's `dqrdc2` rule with glm's default tolerance).
fn independent_columns(x: &Matrix) -> Vec<usize> {
    let mut basis: Vec<Vec<f64>> = Vec::new();
    let mut kept = Vec::new();
    for j in 0..x.cols {
        let original = x.column(j);
        let norm = original.iter().map(|v| v * v).sum::<f64>().sqrt();
        let mut v = original.to_vec();
        for _ in 0..2 {
            for q in &basis {
                let dot: f64 = q.iter().zip(&v).map(|(a, b)| a * b).sum();
                v.iter_mut().zip(q).for_each(|(vi, qi)| *vi -= dot * qi);
            }
        }
        let rest = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        if norm > 0.0 && rest >= 1e-7 * norm {
            v.iter_mut().for_each(|vi| *vi /= rest);
            basis.push(v);
            kept.push(j);
        }
    }
    kept
}

/// R's logit inverse link with its clamps at |η| > 30, and dμ/dη.
fn inverse_link(eta: f64) -> (f64, f64) {
    let t = if eta < -30.0 {
        f64::EPSILON
    } else if eta > 30.0 {
        1.0 / f64::EPSILON
    } else {
        eta.exp()
    };
    let mu = t / (1.0 + t);
    let dmu = if eta.abs() > 30.0 {
        f64::EPSILON
    } else {
        t / ((1.0 + t) * (1.0 + t))
    };
    (mu, dmu)
}

fn deviance(y: &[bool], mu: &[f64]) -> f64 {
    y.iter()
        .zip(mu)
        .map(|(&y, &m)| {
            if y {
                -2.0 * m.ln()
            } else {
                -2.0 * (1.0 - m).ln()
            }
        })
        .sum()
}

/// IRLS settings, R's `glm.control()` defaults: the deviance rule
/// |dev − dev_old| / (|dev| + 0.1) < ε with ε = 1e-8, and at most 25 iterations.
pub const GLM_EPSILON: f64 = 1e-8;
/// The most IRLS iterations (R's `maxit`).
pub const GLM_MAX_ITERATIONS: usize = 25;

/// Logistic regression of `y` on the columns `x` (each of length n) with an intercept first,
/// as R's `glm(family = binomial)` with its default control computes it: the same starting
/// values, link clamps (|η| > 30), iterations and stopping rule, so the same estimates and
/// iteration count; the standard errors come, as in `summary.glm`, from the weighted least
/// squares of the last iteration (the weights of the estimate before the last update).
/// R stops at ε = 1e-8, so its estimates (and these) can be ~1e-8 relatively from the exact
/// maximum; what users compare with is R's.
///
/// Returns None without both outcomes. When the data are separated (complete or
/// quasi-complete: no finite maximum exists; decided from the data before iterating by
/// [`separated`]) or the rule is not met within 25 iterations, the fit has
/// `converged = false` and no estimates (R reports huge coefficients with warnings). Fitted
/// probabilities that are numerically 0 or 1 (R's warning) are not separation: where the
/// groups overlap the estimate exists and is returned.
pub fn logistic(y: &[bool], x: &[Vec<f64>]) -> Option<Fit> {
    let n = y.len();
    if !y.iter().any(|&v| v) || y.iter().all(|&v| v) {
        return None;
    }
    let p_all = x.len() + 1;
    let mut data = vec![1.0; n];
    for column in x {
        data.extend_from_slice(column);
    }
    let design = Matrix {
        rows: n,
        cols: p_all,
        data,
    };
    let kept = independent_columns(&design);
    let p = kept.len();
    let column = |j: usize| design.column(kept[j]);
    let no_estimate = |iterations| Some(Fit::none(p_all, iterations));
    let columns: Vec<&[f64]> = (0..p).map(column).collect();
    if separated(y, &columns) {
        return no_estimate(0);
    }
    let y_f: Vec<f64> = y.iter().map(|&v| if v { 1.0 } else { 0.0 }).collect();
    let mut mu: Vec<f64> = y_f.iter().map(|v| (v + 0.5) / 2.0).collect();
    let mut eta: Vec<f64> = mu.iter().map(|m| (m / (1.0 - m)).ln()).collect();
    let mut dev_old = deviance(y, &mu);
    // The weighted least-squares problem at the current μ: returns R and Qᵀz, or None.
    let weighted = |eta: &[f64], mu: &[f64]| {
        let mut a = Matrix {
            rows: n,
            cols: p,
            data: vec![0.0; n * p],
        };
        let mut b = vec![0.0; n];
        for i in 0..n {
            let (_, dmu) = inverse_link(eta[i]);
            let variance = mu[i] * (1.0 - mu[i]);
            let w = (dmu * dmu / variance).sqrt();
            b[i] = w * (eta[i] + (y_f[i] - mu[i]) / dmu);
            for j in 0..p {
                a.data[j * n + i] = w * column(j)[i];
            }
        }
        householder(a, b)
    };
    for iteration in 1..=GLM_MAX_ITERATIONS {
        let (r, qtb) = weighted(&eta, &mu)?;
        let beta = back_substitute(&r, &qtb);
        for i in 0..n {
            eta[i] = (0..p).map(|j| column(j)[i] * beta[j]).sum();
            mu[i] = inverse_link(eta[i]).0;
        }
        let dev = deviance(y, &mu);
        if !dev.is_finite() || beta.iter().any(|b| !b.is_finite()) {
            return no_estimate(iteration);
        }
        if (dev - dev_old).abs() / (dev.abs() + 0.1) < GLM_EPSILON {
            let variance = inverse_gram_diagonal(&r, p);
            let mut coef = vec![None; p_all];
            let mut se = vec![None; p_all];
            for (j, &original) in kept.iter().enumerate() {
                coef[original] = Some(beta[j]);
                se[original] = Some(variance[j].sqrt());
            }
            // The null model's fitted probability is the share of cases.
            let cases = y.iter().filter(|&&v| v).count() as f64;
            let share = cases / n as f64;
            let null_log_likelihood = cases * share.ln() + (n as f64 - cases) * (1.0 - share).ln();
            return Some(Fit {
                coef,
                se,
                converged: true,
                iterations: iteration,
                log_likelihood: Some(-dev / 2.0),
                null_log_likelihood: Some(null_log_likelihood),
                rank: p,
                score_test: None,
                wald_test: None,
            });
        }
        dev_old = dev;
    }
    no_estimate(GLM_MAX_ITERATIONS)
}

/// One matched set: its members' covariate rows and which are cases.
#[derive(Debug, Clone, Default)]
pub struct MatchedSet {
    /// Covariates, one row per member (each of length p).
    pub x: Vec<Vec<f64>>,
    /// Case status per member.
    pub case: Vec<bool>,
}

/// Log-likelihood, score and information of the exact conditional likelihood of the sets.
fn conditional_terms(sets: &[MatchedSet], beta: &[f64]) -> (f64, Vec<f64>, Vec<f64>) {
    let p = beta.len();
    let mut loglik = 0.0;
    let mut score = vec![0.0; p];
    let mut info = vec![0.0; p * p];
    for set in sets {
        let d = set.case.iter().filter(|&&c| c).count();
        let eta: Vec<f64> = set
            .x
            .iter()
            .map(|row| row.iter().zip(beta).map(|(a, b)| a * b).sum())
            .collect();
        let shift = eta.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let r: Vec<f64> = eta.iter().map(|e| (e - shift).exp()).collect();
        // b[k] = Σ over k-subsets of the members seen so far of Π r; d1, d2 its derivatives
        // (Gail, Lubin & Rubinstein's recursion, one member at a time).
        let mut b = vec![0.0; d + 1];
        let mut d1 = vec![0.0; (d + 1) * p];
        let mut d2 = vec![0.0; (d + 1) * p * p];
        b[0] = 1.0;
        for (m, row) in set.x.iter().enumerate() {
            for k in (1..=d.min(m + 1)).rev() {
                let rm = r[m];
                for j in 0..p {
                    for l in 0..p {
                        d2[k * p * p + j * p + l] += rm
                            * (d2[(k - 1) * p * p + j * p + l]
                                + row[j] * d1[(k - 1) * p + l]
                                + row[l] * d1[(k - 1) * p + j]
                                + row[j] * row[l] * b[k - 1]);
                    }
                }
                for j in 0..p {
                    d1[k * p + j] += rm * (d1[(k - 1) * p + j] + row[j] * b[k - 1]);
                }
                b[k] += rm * b[k - 1];
            }
        }
        let total = b[d];
        loglik += set
            .case
            .iter()
            .zip(&eta)
            .filter(|(c, _)| **c)
            .map(|(_, e)| e)
            .sum::<f64>()
            - (total.ln() + d as f64 * shift);
        for j in 0..p {
            let mean_j = d1[d * p + j] / total;
            let observed: f64 = set
                .case
                .iter()
                .zip(&set.x)
                .filter(|(c, _)| **c)
                .map(|(_, row)| row[j])
                .sum();
            score[j] += observed - mean_j;
            for l in 0..p {
                let mean_l = d1[d * p + l] / total;
                info[j * p + l] += d2[d * p * p + j * p + l] / total - mean_j * mean_l;
            }
        }
    }
    (loglik, score, info)
}

/// The log-likelihood, score and information of Breslow's approximation at β: each set with
/// d cases contributes Σ_cases η − d · log Σ_members e^η (the Cox partial likelihood with
/// Breslow's handling of ties, R's `clogit(method = "breslow")`); the same as the exact
/// conditional likelihood for sets with one case.
fn breslow_terms(sets: &[MatchedSet], beta: &[f64]) -> (f64, Vec<f64>, Vec<f64>) {
    let p = beta.len();
    let mut loglik = 0.0;
    let mut score = vec![0.0; p];
    let mut info = vec![0.0; p * p];
    for set in sets {
        let d = set.case.iter().filter(|&&c| c).count() as f64;
        let eta: Vec<f64> = set
            .x
            .iter()
            .map(|row| row.iter().zip(beta).map(|(a, b)| a * b).sum())
            .collect();
        let shift = eta.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let w: Vec<f64> = eta.iter().map(|e| (e - shift).exp()).collect();
        let total: f64 = w.iter().sum();
        let mut mean = vec![0.0; p];
        let mut second = vec![0.0; p * p];
        for (row, wi) in set.x.iter().zip(&w) {
            for j in 0..p {
                mean[j] += wi * row[j] / total;
                for l in 0..p {
                    second[j * p + l] += wi * row[j] * row[l] / total;
                }
            }
        }
        for ((case, row), e) in set.case.iter().zip(&set.x).zip(&eta) {
            if *case {
                loglik += e;
                for j in 0..p {
                    score[j] += row[j];
                }
            }
        }
        loglik -= d * (total.ln() + shift);
        for j in 0..p {
            score[j] -= d * mean[j];
            for l in 0..p {
                info[j * p + l] += d * (second[j * p + l] - mean[j] * mean[l]);
            }
        }
    }
    (loglik, score, info)
}

/// How a conditional fit treats sets with several cases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ties {
    /// The exact conditional likelihood (R's `clogit` default, `method = "exact"`).
    Exact,
    /// Breslow's approximation (`method = "breslow"`).
    Breslow,
}

impl Ties {
    /// `'exact'` or `'breslow'`.
    pub fn parse(text: &str) -> Option<Ties> {
        match text.to_ascii_lowercase().as_str() {
            "exact" => Some(Ties::Exact),
            "breslow" => Some(Ties::Breslow),
            _ => None,
        }
    }

    fn terms(self, sets: &[MatchedSet], beta: &[f64]) -> (f64, Vec<f64>, Vec<f64>) {
        match self {
            Ties::Exact => conditional_terms(sets, beta),
            Ties::Breslow => breslow_terms(sets, beta),
        }
    }
}

/// Cholesky factor (lower, row-major) of a symmetric positive-definite matrix; None if not.
fn cholesky(a: &[f64], p: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; p * p];
    let scale = (0..p).map(|i| a[i * p + i].abs()).fold(0.0, f64::max);
    for i in 0..p {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i * p + k] * l[j * p + k]).sum();
            if i == j {
                let v = a[i * p + i] - s;
                if v.is_nan() || v <= 1e-13 * scale {
                    return None;
                }
                l[i * p + i] = v.sqrt();
            } else {
                l[i * p + j] = (a[i * p + j] - s) / l[j * p + j];
            }
        }
    }
    Some(l)
}

/// Solves (L Lᵀ) x = b.
fn cholesky_solve(l: &[f64], b: &[f64]) -> Vec<f64> {
    let p = b.len();
    let mut y = vec![0.0; p];
    for i in 0..p {
        let s: f64 = (0..i).map(|k| l[i * p + k] * y[k]).sum();
        y[i] = (b[i] - s) / l[i * p + i];
    }
    let mut x = vec![0.0; p];
    for i in (0..p).rev() {
        let s: f64 = (i + 1..p).map(|k| l[k * p + i] * x[k]).sum();
        x[i] = (y[i] - s) / l[i * p + i];
    }
    x
}

/// Newton settings: coxph's rule |1 − ℓ_old/ℓ| ≤ ε, tightened from R's 1e-9.
pub const CLOGIT_EPSILON: f64 = 1e-12;
/// The most Newton iterations.
pub const CLOGIT_MAX_ITERATIONS: usize = 100;

/// Conditional logistic regression over matched sets (exact conditional likelihood, or
/// Breslow's approximation with `ties`; sets
/// without a case or without a control carry no information and are dropped). Newton-Raphson
/// from 0 with step halving, as `coxph`'s exact method; standard errors from the inverse
/// information at the estimate. Columns that are constant within every set (or linear
/// combinations of others) are aliased (None). None when no set is informative; under
/// separation there is no finite maximum, the iterations run out, and the fit has
/// `converged = false` and no estimates.
pub fn conditional_logistic(sets: &[MatchedSet], p_all: usize, ties: Ties) -> Option<Fit> {
    let sets: Vec<&MatchedSet> = sets
        .iter()
        .filter(|s| s.case.iter().any(|&c| c) && s.case.iter().any(|&c| !c))
        .collect();
    if sets.is_empty() {
        return None;
    }
    // Aliasing: within-set centred columns that depend on earlier ones.
    let n: usize = sets.iter().map(|s| s.x.len()).sum();
    let mut centred = vec![0.0; n * p_all];
    let mut offset = 0;
    for s in &sets {
        for j in 0..p_all {
            let mean = s.x.iter().map(|r| r[j]).sum::<f64>() / s.x.len() as f64;
            for (i, row) in s.x.iter().enumerate() {
                centred[j * n + offset + i] = row[j] - mean;
            }
        }
        offset += s.x.len();
    }
    let kept = independent_columns(&Matrix {
        rows: n,
        cols: p_all,
        data: centred,
    });
    let p = kept.len();
    if p == 0 {
        return None;
    }
    let reduced: Vec<MatchedSet> = sets
        .iter()
        .map(|s| MatchedSet {
            x: s.x
                .iter()
                .map(|row| kept.iter().map(|&j| row[j]).collect())
                .collect(),
            case: s.case.clone(),
        })
        .collect();
    let mut beta = vec![0.0; p];
    let (mut loglik, score, info) = ties.terms(&reduced, &beta);
    let null_log_likelihood = loglik;
    let failed = |iterations| Some(Fit::none(p_all, iterations));
    let Some(l) = cholesky(&info, p) else {
        return failed(0);
    };
    let mut old_beta = beta.clone();
    let step = cholesky_solve(&l, &score);
    // The score test at 0 uses the first Newton step: U(0)ᵀ I(0)⁻¹ U(0).
    let score_test: f64 = score.iter().zip(&step).map(|(u, s)| u * s).sum();
    beta.iter_mut().zip(&step).for_each(|(b, s)| *b += s);
    let mut halving = false;
    for iteration in 1..=CLOGIT_MAX_ITERATIONS {
        let (new_loglik, score, info) = ties.terms(&reduced, &beta);
        if (1.0 - loglik / new_loglik).abs() <= CLOGIT_EPSILON && !halving {
            let Some(l) = cholesky(&info, p) else {
                return failed(iteration);
            };
            let mut coef = vec![None; p_all];
            let mut se = vec![None; p_all];
            for (j, &original) in kept.iter().enumerate() {
                let mut e = vec![0.0; p];
                e[j] = 1.0;
                let column = cholesky_solve(&l, &e);
                coef[original] = Some(beta[j]);
                se[original] = Some(column[j].sqrt());
            }
            if beta.iter().any(|b| !b.is_finite()) {
                return failed(iteration);
            }
            let wald_test: f64 = (0..p)
                .map(|i| {
                    (0..p)
                        .map(|j| beta[i] * info[i * p + j] * beta[j])
                        .sum::<f64>()
                })
                .sum();
            return Some(Fit {
                coef,
                se,
                converged: true,
                iterations: iteration,
                log_likelihood: Some(new_loglik),
                null_log_likelihood: Some(null_log_likelihood),
                rank: p,
                score_test: Some(score_test),
                wald_test: Some(wald_test),
            });
        }
        if !new_loglik.is_finite() || new_loglik < loglik {
            halving = true;
            beta.iter_mut()
                .zip(&old_beta)
                .for_each(|(b, o)| *b = (*b + o) / 2.0);
            continue;
        }
        halving = false;
        loglik = new_loglik;
        let Some(l) = cholesky(&info, p) else {
            return failed(iteration);
        };
        old_beta.clone_from(&beta);
        let step = cholesky_solve(&l, &score);
        beta.iter_mut().zip(&step).for_each(|(b, s)| *b += s);
    }
    failed(CLOGIT_MAX_ITERATIONS)
}

/// A log-likelihood with its score and information (p × p, row-major) at β.
type Terms<'a> = dyn Fn(&[f64]) -> (f64, Vec<f64>, Vec<f64>) + 'a;

/// The most Newton iterations of a profile fit, and of the root search on one bound.
const PROFILE_MAX_ITERATIONS: usize = 100;

/// Maximises the log-likelihood over the coefficients other than `fixed` (all when None),
/// from `beta` (updated in place): Newton-Raphson with step halving, to full precision.
/// Returns (ℓ, U) at the maximum, or None when the information is singular or ℓ is not
/// finite.
fn maximise(terms: &Terms, beta: &mut [f64], fixed: Option<usize>) -> Option<(f64, Vec<f64>)> {
    let free: Vec<usize> = (0..beta.len()).filter(|&i| Some(i) != fixed).collect();
    let (mut loglik, mut score, mut info) = terms(beta);
    if !loglik.is_finite() {
        return None;
    }
    for _ in 0..PROFILE_MAX_ITERATIONS {
        if free.is_empty() {
            break;
        }
        let q = free.len();
        let sub: Vec<f64> = free
            .iter()
            .flat_map(|&i| free.iter().map(move |&j| (i, j)))
            .map(|(i, j)| info[i * beta.len() + j])
            .collect();
        let l = cholesky(&sub, q)?;
        let rhs: Vec<f64> = free.iter().map(|&i| score[i]).collect();
        let step = cholesky_solve(&l, &rhs);
        let old: Vec<f64> = beta.to_vec();
        let mut scale = 1.0;
        let mut accepted = false;
        for _ in 0..60 {
            for (k, &i) in free.iter().enumerate() {
                beta[i] = old[i] + scale * step[k];
            }
            let t = terms(beta);
            if t.0.is_finite() && t.0 >= loglik - 1e-12 * loglik.abs().max(1.0) {
                (loglik, score, info) = t;
                accepted = true;
                break;
            }
            scale /= 2.0;
        }
        if !accepted {
            beta.copy_from_slice(&old);
            break;
        }
        let small = free
            .iter()
            .enumerate()
            .all(|(k, &i)| (scale * step[k]).abs() <= 1e-13 * (1.0 + old[i].abs()));
        if small {
            break;
        }
    }
    Some((loglik, score))
}

/// Profile-likelihood intervals at `level` for each coefficient of `beta_hat` (the exact
/// roots that MASS's `confint()` on a glm interpolates): the values b of coefficient j with
/// 2 (ℓ(β̂) − max over the others of ℓ(β with βⱼ = b)) = χ²₁(level). The maximum ℓ(β̂) is
/// refined to full precision first; each bound is found by Newton's method on b, whose slope
/// is the profile's score Uⱼ (the other coefficients are at their maximum), kept inside a
/// bracket grown outwards from the Wald bound. A bound is None when the profile never rises
/// that far (the likelihood levels off: quasi-separation on that side).
fn profile_intervals(
    terms: &Terms,
    beta_hat: &[f64],
    se: &[f64],
    level: f64,
) -> Vec<(Option<f64>, Option<f64>)> {
    let mut top = beta_hat.to_vec();
    let Some((best, _)) = maximise(terms, &mut top, None) else {
        return vec![(None, None); beta_hat.len()];
    };
    let q = normal_quantile(0.5 + level / 2.0);
    let target = q * q;
    // The covariance at the maximum: moving βⱼ by δ moves the others' maximum by about
    // δ · Σ₋ⱼⱼ / Σⱼⱼ (the profile trace's tangent), the start of each profile fit. Without
    // it a step of a few standard errors in one of two nearly collinear coefficients puts
    // every fitted probability at 0 or 1.
    let p = top.len();
    let covariance: Vec<Vec<f64>> = match cholesky(&terms(&top).2, p) {
        Some(l) => (0..p)
            .map(|j| {
                let mut e = vec![0.0; p];
                e[j] = 1.0;
                cholesky_solve(&l, &e)
            })
            .collect(),
        None => return vec![(None, None); p],
    };
    (0..p)
        .map(|j| {
            let direction: Vec<f64> = covariance[j].iter().map(|c| c / covariance[j][j]).collect();
            let bound = |side: f64| -> Option<f64> {
                // g(b) = 2 (ℓ̂ − ℓₚ(b)) − q², increasing in side · (b − β̂ⱼ), with
                // g'(b) = −2 Uⱼ(b).
                let mut start = top.clone();
                let mut g = |b: f64| -> Option<(f64, f64)> {
                    let shift = b - start[j];
                    start
                        .iter_mut()
                        .zip(&direction)
                        .for_each(|(s, d)| *s += shift * d);
                    start[j] = b;
                    let (l, u) = maximise(terms, &mut start, Some(j))?;
                    Some((2.0 * (best - l) - target, -2.0 * u[j]))
                };
                let centre = top[j];
                let width = (q * se[j]).max(1e-8 * (1.0 + centre.abs()));
                let mut inner = centre;
                let mut outer = centre + side * width;
                let mut at_outer = g(outer)?;
                let mut grown = 0;
                while at_outer.0 < 0.0 {
                    grown += 1;
                    if grown > 40 {
                        return None;
                    }
                    inner = outer;
                    outer = centre + side * width * 2f64.powi(grown);
                    at_outer = g(outer)?;
                }
                let (mut b, mut value) = (outer, at_outer);
                for _ in 0..PROFILE_MAX_ITERATIONS {
                    if value.0 == 0.0 {
                        break;
                    }
                    if value.0 > 0.0 {
                        outer = b;
                    } else {
                        inner = b;
                    }
                    let newton = b - value.0 / value.1;
                    let between = (newton - inner) * (newton - outer) < 0.0;
                    let next = if value.1 != 0.0 && between {
                        newton
                    } else {
                        0.5 * (inner + outer)
                    };
                    if (next - b).abs() <= 4.0 * f64::EPSILON * b.abs().max(1.0) {
                        b = next;
                        break;
                    }
                    b = next;
                    value = g(b)?;
                }
                Some(b)
            };
            (bound(-1.0), bound(1.0))
        })
        .collect()
}

/// ℓ, U and I of the binomial log-likelihood of `y` on the design columns at β (no clamps:
/// ℓ = Σ y η − log(1 + e^η) evaluated stably).
fn binomial_terms(y: &[bool], columns: &[&[f64]], beta: &[f64]) -> (f64, Vec<f64>, Vec<f64>) {
    let p = columns.len();
    let (mut loglik, mut score, mut info) = (0.0, vec![0.0; p], vec![0.0; p * p]);
    for (i, &yi) in y.iter().enumerate() {
        let eta: f64 = (0..p).map(|j| columns[j][i] * beta[j]).sum();
        let softplus = eta.max(0.0) + (-eta.abs()).exp().ln_1p();
        loglik += if yi { eta } else { 0.0 } - softplus;
        let mu = if eta >= 0.0 {
            1.0 / (1.0 + (-eta).exp())
        } else {
            let e = eta.exp();
            e / (1.0 + e)
        };
        let w = mu * (1.0 - mu);
        let r = f64::from(u8::from(yi)) - mu;
        for a in 0..p {
            score[a] += columns[a][i] * r;
            for b in 0..=a {
                info[a * p + b] += w * columns[a][i] * columns[b][i];
            }
        }
    }
    for a in 0..p {
        for b in 0..a {
            info[b * p + a] = info[a * p + b];
        }
    }
    (loglik, score, info)
}

/// Profile-likelihood intervals (log odds ratios) at `level` of a [`logistic`] fit of the
/// same data, per coefficient (intercept first); (None, None) for aliased columns and when
/// the fit has no estimate. As MASS's `confint()` on the glm, with exact roots.
pub fn logistic_profile(
    y: &[bool],
    x: &[Vec<f64>],
    fit: &Fit,
    level: f64,
) -> Vec<(Option<f64>, Option<f64>)> {
    let ones = vec![1.0; y.len()];
    let all: Vec<&[f64]> = std::iter::once(ones.as_slice())
        .chain(x.iter().map(Vec::as_slice))
        .collect();
    let kept: Vec<usize> = (0..all.len()).filter(|&j| fit.coef[j].is_some()).collect();
    let mut out = vec![(None, None); all.len()];
    if !fit.converged || kept.is_empty() {
        return out;
    }
    let columns: Vec<&[f64]> = kept.iter().map(|&j| all[j]).collect();
    let beta: Vec<f64> = kept.iter().filter_map(|&j| fit.coef[j]).collect();
    let se: Vec<f64> = kept.iter().map(|&j| fit.se[j].unwrap_or(1.0)).collect();
    let terms = |b: &[f64]| binomial_terms(y, &columns, b);
    for (k, bounds) in profile_intervals(&terms, &beta, &se, level)
        .into_iter()
        .enumerate()
    {
        out[kept[k]] = bounds;
    }
    out
}

/// Profile-likelihood intervals (log odds ratios) at `level` of a [`conditional_logistic`]
/// fit of the same sets, per coefficient; (None, None) for aliased columns and without an
/// estimate.
pub fn conditional_profile(
    sets: &[MatchedSet],
    fit: &Fit,
    ties: Ties,
    level: f64,
) -> Vec<(Option<f64>, Option<f64>)> {
    let p_all = fit.coef.len();
    let kept: Vec<usize> = (0..p_all).filter(|&j| fit.coef[j].is_some()).collect();
    let mut out = vec![(None, None); p_all];
    if !fit.converged || kept.is_empty() {
        return out;
    }
    let reduced: Vec<MatchedSet> = sets
        .iter()
        .filter(|s| s.case.iter().any(|&c| c) && s.case.iter().any(|&c| !c))
        .map(|s| MatchedSet {
            x: s.x
                .iter()
                .map(|row| kept.iter().map(|&j| row[j]).collect())
                .collect(),
            case: s.case.clone(),
        })
        .collect();
    let beta: Vec<f64> = kept.iter().filter_map(|&j| fit.coef[j]).collect();
    let se: Vec<f64> = kept.iter().map(|&j| fit.se[j].unwrap_or(1.0)).collect();
    let terms = |b: &[f64]| ties.terms(&reduced, b);
    for (k, bounds) in profile_intervals(&terms, &beta, &se, level)
        .into_iter()
        .enumerate()
    {
        out[kept[k]] = bounds;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matched_pairs_estimate_the_discordant_ratio() {
        // 1:1 pairs with a binary exposure: the conditional MLE is ln(b/c), se √(1/b + 1/c).
        let mut sets = Vec::new();
        for (case_x, control_x, count) in [(1.0, 0.0, 23), (0.0, 1.0, 7), (1.0, 1.0, 5)] {
            for _ in 0..count {
                sets.push(MatchedSet {
                    x: vec![vec![case_x], vec![control_x]],
                    case: vec![true, false],
                });
            }
        }
        let fit = conditional_logistic(&sets, 1, Ties::Exact).unwrap();
        assert!(fit.converged);
        let b = fit.coef[0].unwrap();
        assert!((b - (23.0f64 / 7.0).ln()).abs() < 1e-10, "{b}");
        let se = fit.se[0].unwrap();
        assert!(
            (se - (1.0 / 23.0 + 1.0 / 7.0f64).sqrt()).abs() < 1e-10,
            "{se}"
        );
    }

    #[test]
    fn a_duplicated_column_is_aliased() {
        let y = [true, false, true, false, false, true];
        let x1 = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.5];
        let fit = logistic(&y, &[x1.clone(), x1]).unwrap();
        assert!(fit.coef[1].is_some());
        assert_eq!(fit.coef[2], None);
    }
}
