//! The empirical ROC curve and what pROC derives from it: the Youden-optimal threshold,
//! sensitivity at a given specificity (and back) with pROC's linear interpolation, the partial
//! AUC over a specificity range with McClish's correction, and the paired DeLong test of two
//! markers measured on the same samples.
//!
//! Everything follows pROC 1.18 (`roc(controls, cases, direction = "<")`, `coords`, `auc`,
//! `roc.test(method = "delong", paired = TRUE)`) rule for rule, including its floating-point
//! comparisons, so that results agree with it to the last digit or two:
//!
//! - thresholds are −∞, the midpoints of consecutive distinct values, and +∞; a value is
//!   positive when it is ≥ the threshold;
//! - curve points are in ascending threshold order (specificity non-decreasing);
//! - sums of areas are compensated (R sums in extended precision).
//!
//! References:
//! 1. X. Robin et al. (2011), "pROC: an open-source package for R and S+ to analyze and compare
//!    ROC curves", BMC Bioinformatics 12:77.
//! 2. D. K. McClish (1989), "Analyzing a portion of the ROC curve", Med. Decis. Making 9(3).
//! 3. E. R. DeLong, D. M. DeLong, D. L. Clarke-Pearson (1988), "Comparing the areas under two
//!    or more correlated receiver operating characteristic curves", Biometrics 44(3).

use super::ranks::merged_runs;
use super::tally::Tally;

/// One point of the ROC curve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RocPoint {
    /// Values ≥ threshold are called positive.
    pub threshold: f64,
    /// True-positive fraction.
    pub sensitivity: f64,
    /// True-negative fraction.
    pub specificity: f64,
}

/// pROC's threshold between consecutive distinct values `a < b`: the midpoint (halves added
/// when the sum would exceed 1e100), moved up to `b` when rounding puts it on `a`.
fn midpoint(a: f64, b: f64) -> f64 {
    let sum_first = (a + b) / 2.0;
    let t = if sum_first.abs() > 1e100 {
        a / 2.0 + b / 2.0
    } else {
        sum_first
    };
    if t == a { b } else { t }
}

/// The ROC curve of compacted, non-empty tallies of `case` and `control` values, as pROC's
/// `coords(roc, "all")`.
pub fn roc_curve(case: &Tally, control: &Tally) -> Vec<RocPoint> {
    let (n1, n0) = (case.len(), control.len());
    let mut points = vec![RocPoint {
        threshold: f64::NEG_INFINITY,
        sensitivity: 1.0,
        specificity: 0.0,
    }];
    // After value u, the positives are the values above u; thresholds are set once the next
    // distinct value is known.
    let (mut cases_upto, mut controls_upto) = (0u64, 0u64);
    let mut previous: Option<f64> = None;
    merged_runs(case, control, |v, cases_here, controls_here| {
        if let (Some(p), Some(last)) = (previous, points.last_mut()) {
            last.threshold = midpoint(p, v);
        }
        cases_upto += cases_here;
        controls_upto += controls_here;
        points.push(RocPoint {
            threshold: f64::INFINITY,
            sensitivity: (n1 - cases_upto) as f64 / n1 as f64,
            specificity: (n0 - (n0 - controls_upto)) as f64 / n0 as f64,
        });
        previous = Some(v);
    });
    points
}

/// The Youden-optimal point, pROC's `coords(roc, "best", best.method = "youden")`: the
/// largest sensitivity + specificity (compared in floating point, as pROC does); of tied
/// points the one with the smallest threshold.
pub fn youden(curve: &[RocPoint]) -> Option<RocPoint> {
    let mut best: Option<RocPoint> = None;
    for p in curve {
        if best.is_none_or(|b| p.sensitivity + p.specificity > b.sensitivity + b.specificity) {
            best = Some(*p);
        }
    }
    best
}

/// The point [`youden`] picks from [`roc_curve`], found in one pass over the merged values
/// without building the curve (on full-precision data the curve has as many points as
/// values). The same points, sums and comparisons in the same order: the same bits.
pub fn youden_point(case: &Tally, control: &Tally) -> RocPoint {
    let (n1, n0) = (case.len(), control.len());
    let mut best = RocPoint {
        threshold: f64::NEG_INFINITY,
        sensitivity: 1.0,
        specificity: 0.0,
    };
    // Whether `best` is the last point so far, whose threshold waits for the next value.
    let mut best_is_last = false;
    let (mut cases_upto, mut controls_upto) = (0u64, 0u64);
    let mut previous: Option<f64> = None;
    merged_runs(case, control, |v, cases_here, controls_here| {
        if let Some(p) = previous
            && best_is_last
        {
            best.threshold = midpoint(p, v);
        }
        best_is_last = false;
        cases_upto += cases_here;
        controls_upto += controls_here;
        let point = RocPoint {
            threshold: f64::INFINITY,
            sensitivity: (n1 - cases_upto) as f64 / n1 as f64,
            specificity: (n0 - (n0 - controls_upto)) as f64 / n0 as f64,
        };
        if point.sensitivity + point.specificity > best.sensitivity + best.specificity {
            best = point;
            best_is_last = true;
        }
        previous = Some(v);
    });
    best
}

/// Which coordinate is given to [`coords_at`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Given {
    /// Sensitivity at a given specificity.
    Specificity,
    /// Specificity at a given sensitivity.
    Sensitivity,
}

/// pROC's `coords(roc, x, input = …)`: the other coordinate at `x` in [0, 1]. Where `x` is
/// attained, the first such point for specificity (highest sensitivity on a vertical step),
/// the last for sensitivity (highest specificity); otherwise linear interpolation between
/// the two points around `x`.
pub fn coords_at(curve: &[RocPoint], given: Given, x: f64) -> Option<f64> {
    type Coordinate = fn(&RocPoint) -> f64;
    let (input, output): (Coordinate, Coordinate) = match given {
        Given::Specificity => (|p| p.specificity, |p| p.sensitivity),
        Given::Sensitivity => (|p| p.sensitivity, |p| p.specificity),
    };
    let exact = match given {
        Given::Specificity => curve.iter().find(|p| input(p) == x),
        Given::Sensitivity => curve.iter().rev().find(|p| input(p) == x),
    };
    if let Some(p) = exact {
        return Some(output(p));
    }
    // Specificity rises along the curve and sensitivity falls: find the first point past x.
    let next = match given {
        Given::Specificity => curve.iter().position(|p| input(p) > x)?,
        Given::Sensitivity => curve.iter().position(|p| input(p) < x)?,
    };
    let prev = next.checked_sub(1)?;
    let (a, b) = (&curve[prev], &curve[next]);
    let proportion = (x - input(b)) / (input(a) - input(b));
    Some(output(b) + proportion * (output(a) - output(b)))
}

/// Σ with Neumaier's compensation (R's `sum` accumulates in extended precision).
fn compensated_sum(terms: impl IntoIterator<Item = f64>) -> f64 {
    let (mut sum, mut compensation) = (0.0f64, 0.0f64);
    for t in terms {
        let next = sum + t;
        compensation += if sum.abs() >= t.abs() {
            (sum - next) + t
        } else {
            (t - next) + sum
        };
        sum = next;
    }
    sum + compensation
}

/// The full AUC as pROC computes it: trapezoids along the curve.
pub fn trapezoid_auc(curve: &[RocPoint]) -> f64 {
    compensated_sum(curve.windows(2).map(|w| {
        (w[1].sensitivity + w[0].sensitivity) / 2.0 * (w[1].specificity - w[0].specificity)
    }))
}

/// pROC's `auc(roc, partial.auc = c(hi, lo), partial.auc.focus = "specificity",
/// partial.auc.correct = mcclish)` for 0 ≤ lo < hi ≤ 1. With `mcclish`, the area is rescaled
/// to (1 + (A − min)/(max − min))/2 with min the area under the diagonal and max the full
/// strip; None when A is below min (pROC: NA).
pub fn partial_auc(curve: &[RocPoint], lo: f64, hi: f64, mcclish: bool) -> Option<f64> {
    let x: Vec<f64> = curve.iter().map(|p| p.specificity).collect();
    let y: Vec<f64> = curve.iter().map(|p| p.sensitivity).collect();
    let included: Vec<usize> = (0..x.len()).filter(|&i| x[i] <= hi && x[i] >= lo).collect();
    let area = if included.is_empty() {
        // The range falls between two points: one trapezoid under the interpolated segment.
        let idx_hi = x.iter().position(|&v| v >= hi)?;
        let idx_lo = idx_hi.checked_sub(1)?;
        let span = x[idx_hi] - x[idx_lo];
        let p_hi = (x[idx_hi] - hi) / span;
        let p_lo = (lo - x[idx_lo]) / span;
        let y_hi = y[idx_hi] + p_hi * (y[idx_lo] - y[idx_hi]);
        let y_lo = y[idx_lo] - p_lo * (y[idx_lo] - y[idx_hi]);
        (y_hi + y_lo) / 2.0 * (hi - lo)
    } else {
        let mut area = compensated_sum(included.windows(2).map(|w| {
            let (a, b) = (w[0], w[1]);
            (y[b] + y[a]) / 2.0 * (x[b] - x[a])
        }));
        if !included.iter().any(|&i| x[i] == hi) {
            let out = x.iter().position(|&v| v >= hi)?;
            let inside = out.checked_sub(1)?;
            let y_i = y[out] + (hi - x[out]) / (x[inside] - x[out]) * (y[inside] - y[out]);
            area += (hi - x[inside]) * (y[inside] + y_i) / 2.0;
        }
        if !included.iter().any(|&i| x[i] == lo) {
            let out = x.iter().position(|&v| v > lo)?.checked_sub(1)?;
            let inside = out + 1;
            let y_i = y[inside] + (x[inside] - lo) / (x[inside] - x[out]) * (y[out] - y[inside]);
            area += (x[inside] - lo) * (y[inside] + y_i) / 2.0;
        }
        area
    };
    if !mcclish {
        return Some(area);
    }
    let min = ((1.0 - hi) + (1.0 - lo)) * (lo - hi).abs() / 2.0;
    let max = (lo - hi).abs();
    (area >= min).then(|| (1.0 + (area - min) / (max - min)) / 2.0)
}

/// DeLong's placement values of one marker: for each case, the fraction of controls below it
/// (ties ½); for each control, the fraction of cases above it (ties ½). Order is preserved.
fn placements(case: &[f64], control: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let sorted = |v: &[f64]| {
        let mut s = v.to_vec();
        s.sort_unstable_by(f64::total_cmp);
        s
    };
    let (case_sorted, control_sorted) = (sorted(case), sorted(control));
    let (n1, n0) = (case.len() as f64, control.len() as f64);
    let count = |among: &[f64], x: f64| {
        let below = among.partition_point(|&v| v < x);
        let upto = among.partition_point(|&v| v <= x);
        (below as f64, (upto - below) as f64)
    };
    let v10 = case
        .iter()
        .map(|&x| {
            let (below, equal) = count(&control_sorted, x);
            (below + 0.5 * equal) / n0
        })
        .collect();
    let v01 = control
        .iter()
        .map(|&y| {
            let (below, equal) = count(&case_sorted, y);
            (n1 - below - equal + 0.5 * equal) / n1
        })
        .collect();
    (v10, v01)
}

/// The paired DeLong test of two markers (pROC `roc.test(method = "delong", paired = TRUE)`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RocTest {
    /// AUC of the first marker.
    pub auc_a: f64,
    /// AUC of the second marker.
    pub auc_b: f64,
    /// (auc_a − auc_b) / se; None when the variance is 0 or undefined (0 when both AUCs are
    /// equal and the variance is 0, as pROC).
    pub z: Option<f64>,
    /// Two-sided p-value.
    pub p: Option<f64>,
    /// Wald interval of auc_a − auc_b (not clipped, as pROC).
    pub diff_interval: Option<(f64, f64)>,
}

/// `case` and `control` hold (marker a, marker b) per sample, finite; both non-empty.
pub fn roc_test(case: &[(f64, f64)], control: &[(f64, f64)], level: f64) -> RocTest {
    let (m, n) = (case.len(), control.len());
    let split = |v: &[(f64, f64)]| -> (Vec<f64>, Vec<f64>) { v.iter().copied().unzip() };
    let (case_a, case_b) = split(case);
    let (control_a, control_b) = split(control);
    let (xa, ya) = placements(&case_a, &control_a);
    let (xb, yb) = placements(&case_b, &control_b);
    let mean = |v: &[f64]| compensated_sum(v.iter().copied()) / v.len() as f64;
    let (auc_a, auc_b) = (mean(&xa), mean(&xb));
    let covariance = |u: &[f64], ub: f64, v: &[f64], vb: f64| {
        compensated_sum(u.iter().zip(v).map(|(p, q)| (p - ub) * (q - vb))) / (u.len() as f64 - 1.0)
    };
    let s = |i: (&[f64], f64, &[f64], f64), j: (&[f64], f64, &[f64], f64)| {
        covariance(i.0, i.1, j.0, j.1) / m as f64 + covariance(i.2, i.1, j.2, j.1) / n as f64
    };
    let a = (&xa[..], auc_a, &ya[..], auc_a);
    let b = (&xb[..], auc_b, &yb[..], auc_b);
    let variance = s(a, a) + s(b, b) - 2.0 * s(a, b);
    let d = auc_a - auc_b;
    let sigma = variance.sqrt();
    let defined = m >= 2 && n >= 2 && sigma.is_finite();
    let (z, p, diff_interval) = if !defined {
        (None, None, None)
    } else if sigma > 0.0 {
        let z = d / sigma;
        let crit = super::distributions::normal_quantile(0.5 + level / 2.0);
        (
            Some(z),
            Some((2.0 * super::distributions::normal_sf(z.abs())).min(1.0)),
            Some((d - crit * sigma, d + crit * sigma)),
        )
    } else if d == 0.0 {
        (Some(0.0), Some(1.0), Some((0.0, 0.0)))
    } else {
        (None, None, None)
    };
    RocTest {
        auc_a,
        auc_b,
        z,
        p,
        diff_interval,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(v: &[f64]) -> Tally {
        let mut t = Tally::default();
        v.iter().for_each(|&x| {
            t.push(x);
        });
        t.compact();
        t
    }

    #[test]
    fn curve_runs_from_all_positive_to_none() {
        let curve = roc_curve(&tally(&[3.0, 7.0]), &tally(&[1.0, 2.0, 4.0, 5.0, 6.0, 8.0]));
        assert_eq!(curve.len(), 9);
        assert_eq!(curve[0].threshold, f64::NEG_INFINITY);
        assert_eq!(curve[1].threshold, 1.5);
        assert_eq!(curve[8].threshold, f64::INFINITY);
        assert_eq!((curve[8].sensitivity, curve[8].specificity), (0.0, 1.0));
        assert!((trapezoid_auc(&curve) - 7.0 / 12.0).abs() < 1e-15);
    }

    #[test]
    fn youden_ties_are_broken_by_floating_point_sums_then_the_lowest_threshold() {
        // pROC returns only 6.5 here: 1 + 2/6 and 0.5 + 5/6 differ in the last bit.
        let curve = roc_curve(&tally(&[3.0, 7.0]), &tally(&[1.0, 2.0, 4.0, 5.0, 6.0, 8.0]));
        assert_eq!(youden(&curve).map(|p| p.threshold), Some(6.5));
    }

    #[test]
    fn the_one_pass_youden_point_is_the_curve_s() {
        let value = |i: u64| ((i * 7919) % 1009) as f64 / 10.0;
        for (cases, controls) in [(30, 70), (1, 5), (200, 13), (500, 500)] {
            let case = tally(
                &(0..cases)
                    .map(|i| value(3 * i + 1) + 3.0)
                    .collect::<Vec<_>>(),
            );
            let control = tally(&(0..controls).map(|i| value(5 * i + 2)).collect::<Vec<_>>());
            let from_curve = youden(&roc_curve(&case, &control)).unwrap();
            let direct = youden_point(&case, &control);
            assert_eq!(
                (
                    from_curve.threshold.to_bits(),
                    from_curve.sensitivity,
                    from_curve.specificity
                ),
                (
                    direct.threshold.to_bits(),
                    direct.sensitivity,
                    direct.specificity
                ),
                "{cases} x {controls}"
            );
        }
    }

    #[test]
    fn midpoints_of_adjacent_doubles_move_up() {
        let a: f64 = 1e9;
        let b = f64::from_bits(a.to_bits() + 1);
        assert_eq!(midpoint(a, b), b);
        assert!(midpoint(f64::MAX / 1.5, f64::MAX).is_finite());
    }
}
