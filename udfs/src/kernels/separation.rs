//! Whether the maximum-likelihood estimate of a logistic regression exists: the overlap test
//! of Albert & Anderson, decided by a linear programme as Konis does (R's
//! `safeBinaryRegression` and `detectseparation` packages).
//!
//! With aᵢ = sᵢ xᵢ, where xᵢ is the design row of observation i (intercept included, columns
//! of full rank) and sᵢ = +1 for a case, −1 for a control, the data are *separated*
//! (completely or quasi-completely) when some β with Xβ ≠ 0 has aᵢᵀβ ≥ 0 for every i: moving
//! along β raises the likelihood for ever, and the estimate does not exist (R's glm then stops
//! on its deviance rule with huge coefficients and the warning "fitted probabilities
//! numerically 0 or 1 occurred"). Otherwise the data *overlap* and the estimate is finite and
//! unique. By Stiemke's theorem of the alternative, overlap holds exactly when some λ with
//! every λᵢ > 0 solves Σ λᵢ aᵢ = 0, that is (scaling λ) when {λ ≥ 1 : Aᵀλ = 0} is not empty.
//! Phase one of the simplex method decides that: p equality rows, n non-negative variables
//! μ = λ − 1, a p × p basis.
//!
//! The test is about the data, not the iterations: a fit whose fitted probabilities reach 0 or
//! 1 numerically (|η| > 30, R's warning) can still overlap and have a finite estimate, and a
//! quasi-complete separation can keep every |η| moderate while one coefficient drifts.
//!
//! References:
//! 1. A. Albert, J. A. Anderson (1984), "On the existence of maximum likelihood estimates in
//!    logistic regression models", Biometrika 71(1).
//! 2. K. Konis (2007), *Linear programming algorithms for detecting separated data in binary
//!    logistic regression models*, DPhil thesis, University of Oxford, ch. 3.
//! 3. E. Stiemke (1915), "Über positive Lösungen homogener linearer Gleichungen", Math. Ann. 76.

/// Whether the observations with outcome `y` and design `columns` (each of length n, the
/// intercept among them, linearly independent) are separated. Columns are scaled to a largest
/// magnitude of 1 first (separation does not depend on the scale of a column).
pub fn separated(y: &[bool], columns: &[&[f64]]) -> bool {
    let n = y.len();
    let p = columns.len();
    if n == 0 || p == 0 {
        return false;
    }
    // Row i of A (length p), row-major: sᵢ xᵢ with scaled columns.
    let mut a = vec![0.0; n * p];
    for (j, column) in columns.iter().enumerate() {
        let scale = column.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let scale = if scale > 0.0 { scale } else { 1.0 };
        for (i, &v) in column.iter().enumerate() {
            let s = if y[i] { 1.0 } else { -1.0 };
            a[i * p + j] = s * v / scale;
        }
    }
    !Phase1::new(&a, n, p).feasible()
}

/// Phase one of the revised simplex method for {μ ≥ 0 : Aᵀμ = b}, b = −Aᵀ1, with one
/// artificial variable per row (cost 1, all others 0).
struct Phase1<'a> {
    a: &'a [f64],
    n: usize,
    p: usize,
    /// Basic variable per row: `Some(i)` for μᵢ, `None` for the row's own artificial.
    basis: Vec<Option<usize>>,
    /// The basis inverse, row-major p × p.
    inverse: Vec<f64>,
    /// Values of the basic variables.
    values: Vec<f64>,
}

/// A reduced cost must be below −`PRICE_TOLERANCE` (the scaled entries are at most 1) for a
/// column to enter, and a pivot element above `PIVOT_TOLERANCE` of the column's largest.
const PRICE_TOLERANCE: f64 = 1e-10;
const PIVOT_TOLERANCE: f64 = 1e-9;
/// The phase-one optimum counts as 0 (overlap) below this fraction of its starting value.
const FEASIBILITY_TOLERANCE: f64 = 1e-9;

impl<'a> Phase1<'a> {
    fn new(a: &'a [f64], n: usize, p: usize) -> Self {
        let mut b = vec![0.0; p];
        for row in a.chunks_exact(p) {
            for (bj, v) in b.iter_mut().zip(row) {
                *bj -= v;
            }
        }
        // Each artificial's column is ±e_j with the sign of b_j, so that it starts at |b_j|.
        let mut inverse = vec![0.0; p * p];
        for (j, &bj) in b.iter().enumerate() {
            inverse[j * p + j] = if bj >= 0.0 { 1.0 } else { -1.0 };
        }
        let values = b.iter().map(|v| v.abs()).collect();
        Self {
            a,
            n,
            p,
            basis: vec![None; p],
            inverse,
            values,
        }
    }

    fn row(&self, i: usize) -> &[f64] {
        &self.a[i * self.p..(i + 1) * self.p]
    }

    /// The sum of the artificials still in the basis (the phase-one objective).
    fn objective(&self) -> f64 {
        self.basis
            .iter()
            .zip(&self.values)
            .filter(|(v, _)| v.is_none())
            .map(|(_, x)| x.max(0.0))
            .sum()
    }

    /// Runs the simplex method to its optimum; true when the optimum is 0 (feasible).
    fn feasible(mut self) -> bool {
        let start = self.objective();
        if start == 0.0 {
            return true;
        }
        let p = self.p;
        let limit = 50 * (self.n + p) + 1000;
        let mut in_basis = vec![false; self.n];
        let mut degenerate_run = 0;
        for _ in 0..limit {
            // Simplex multipliers π = c_Bᵀ B⁻¹ (cost 1 on the basic artificials).
            let mut pi = vec![0.0; p];
            for (r, basic) in self.basis.iter().enumerate() {
                if basic.is_none() {
                    for (k, pk) in pi.iter_mut().enumerate() {
                        *pk += self.inverse[r * p + k];
                    }
                }
            }
            let scale = 1.0 + pi.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            // Entering column: the most negative reduced cost −π·aᵢ (Dantzig), or the first
            // negative one (Bland) after a long run of degenerate pivots, which cannot cycle.
            let bland = degenerate_run > 2 * p + 10;
            let mut entering = None;
            let mut best = -PRICE_TOLERANCE * scale;
            for (i, _) in in_basis.iter().enumerate().filter(|(_, basic)| !**basic) {
                let reduced = -self.row(i).iter().zip(&pi).map(|(x, y)| x * y).sum::<f64>();
                if reduced < best {
                    entering = Some(i);
                    if bland {
                        break;
                    }
                    best = reduced;
                }
            }
            let Some(q) = entering else {
                return self.objective() <= FEASIBILITY_TOLERANCE * start.max(1.0);
            };
            // w = B⁻¹ a_q and the ratio test; ties go to the lowest variable, the artificials
            // (by row) counting before every μ (Bland's rule for the leaving variable).
            let column = self.row(q);
            let w: Vec<f64> = (0..p)
                .map(|r| (0..p).map(|k| self.inverse[r * p + k] * column[k]).sum())
                .collect();
            let largest = w.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let order = |r: usize| self.basis[r].map_or((0, r), |i| (1, i));
            let mut leaving: Option<(usize, f64)> = None;
            for (r, &wr) in w.iter().enumerate() {
                if wr <= PIVOT_TOLERANCE * largest {
                    continue;
                }
                let ratio = self.values[r].max(0.0) / wr;
                let better = match leaving {
                    None => true,
                    Some((l, best_ratio)) => {
                        ratio < best_ratio || (ratio == best_ratio && order(r) < order(l))
                    }
                };
                if better {
                    leaving = Some((r, ratio));
                }
            }
            // Phase one is bounded below by 0, so some row always limits the step; if rounding
            // says otherwise, do not claim separation: let the iterations decide.
            let Some((r, step)) = leaving else {
                return true;
            };
            degenerate_run = if step == 0.0 { degenerate_run + 1 } else { 0 };
            if let Some(old) = self.basis[r] {
                in_basis[old] = false;
            }
            self.basis[r] = Some(q);
            in_basis[q] = true;
            let pivot = w[r];
            for k in 0..p {
                self.inverse[r * p + k] /= pivot;
            }
            self.values[r] /= pivot;
            for (row, &f) in w.iter().enumerate() {
                if row == r || f == 0.0 {
                    continue;
                }
                for k in 0..p {
                    self.inverse[row * p + k] -= f * self.inverse[r * p + k];
                }
                self.values[row] -= f * self.values[r];
            }
            if self.objective() <= FEASIBILITY_TOLERANCE * start.max(1.0) {
                return true;
            }
        }
        // Out of pivots (not seen in practice): say "overlap" and let the iterations decide.
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fit(y: &[bool], x: &[&[f64]]) -> bool {
        let ones = vec![1.0; y.len()];
        let mut columns: Vec<&[f64]> = vec![&ones];
        columns.extend_from_slice(x);
        separated(y, &columns)
    }

    #[test]
    fn one_predictor_is_separated_exactly_when_the_ranges_do_not_overlap() {
        // A range check decides one predictor: separated iff max(controls) ≤ min(cases) or
        // max(cases) ≤ min(controls). Compare on many small random designs.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for trial in 0..2000 {
            let n = 2 + (next() % 12) as usize;
            let y: Vec<bool> = (0..n).map(|_| next() % 2 == 0).collect();
            if y.iter().all(|&c| c) || y.iter().all(|&c| !c) {
                continue;
            }
            // Few distinct values, so ties at the boundary (quasi-complete) are common.
            let x: Vec<f64> = (0..n).map(|_| (next() % 6) as f64 * 1.5 - 3.0).collect();
            let (mut case_lo, mut case_hi) = (f64::INFINITY, f64::NEG_INFINITY);
            let (mut control_lo, mut control_hi) = (f64::INFINITY, f64::NEG_INFINITY);
            for (&c, &v) in y.iter().zip(&x) {
                if c {
                    case_lo = case_lo.min(v);
                    case_hi = case_hi.max(v);
                } else {
                    control_lo = control_lo.min(v);
                    control_hi = control_hi.max(v);
                }
            }
            if x.iter().all(|&v| v == x[0]) {
                continue; // aliased with the intercept
            }
            let expected = control_hi <= case_lo || case_hi <= control_lo;
            assert_eq!(fit(&y, &[&x]), expected, "trial {trial}: {y:?} {x:?}");
        }
    }

    #[test]
    fn two_predictors_separated_by_their_sum_only() {
        // Cases have x1 + x2 > 0, controls < 0, but each predictor alone overlaps.
        let x1 = [1.0, 3.0, -1.0, 2.0, -2.0, 1.0, -3.0, 0.5];
        let x2 = [0.5, -2.0, 2.0, -1.5, 1.0, -2.0, 2.5, -1.0];
        let y: Vec<bool> = x1.iter().zip(&x2).map(|(a, b)| a + b > 0.0).collect();
        assert!(fit(&y, &[&x1, &x2]));
        // One control moved across the line: overlap.
        let mut y2 = y.clone();
        let i = y2.iter().position(|&c| !c).unwrap();
        y2[i] = true;
        let j = y2.iter().position(|&c| c).unwrap();
        y2[j] = false;
        assert!(!fit(&y2, &[&x1, &x2]));
    }

    #[test]
    fn quasi_complete_separation_through_a_tie_at_the_boundary() {
        // Controls at x ≤ 0, cases at x ≥ 0, both groups at 0: quasi-complete.
        let x = [-2.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 3.0];
        let y = [false, false, false, true, false, true, true, true];
        assert!(fit(&y, &[&x]));
        // A case below 0 restores overlap.
        let y2 = [true, false, false, true, false, true, true, true];
        assert!(!fit(&y2, &[&x]));
    }
}
