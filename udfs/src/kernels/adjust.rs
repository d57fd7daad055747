//! Multiple-testing adjustment of p-values, exactly as R's `p.adjust`.
//!
//! References:
//! 1. R Core Team, `stats::p.adjust` (R 4.x source), whose algorithms these follow line by line.
//! 2. Y. Benjamini, Y. Hochberg (1995), JRSS B 57; Y. Benjamini, D. Yekutieli (2001), Ann.
//!    Statist. 29; S. Holm (1979), Scand. J. Statist. 6; Y. Hochberg (1988), Biometrika 75;
//!    G. Hommel (1988), Biometrika 75.

/// An adjustment method (R's names in parentheses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Adjustment {
    /// Benjamini–Hochberg false discovery rate ("BH", "fdr").
    Bh,
    /// Benjamini–Yekutieli ("BY").
    By,
    /// Holm's step-down ("holm").
    Holm,
    /// Hochberg's step-up ("hochberg").
    Hochberg,
    /// Hommel's ("hommel"); O(n²).
    Hommel,
    /// Bonferroni ("bonferroni").
    Bonferroni,
}

impl Adjustment {
    /// Parses a method name (case-insensitive; 'fdr' is BH as in R).
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().as_str() {
            "bh" | "fdr" => Adjustment::Bh,
            "by" => Adjustment::By,
            "holm" => Adjustment::Holm,
            "hochberg" => Adjustment::Hochberg,
            "hommel" => Adjustment::Hommel,
            "bonferroni" => Adjustment::Bonferroni,
            _ => return None,
        })
    }
}

/// Adjusts `p` (every value in [0, 1]; callers drop NULLs first, so n counts only real
/// p-values, as R's p.adjust does with NA). Returns the adjusted values in input order.
pub fn adjust(p: &[f64], method: Adjustment) -> Vec<f64> {
    let n = p.len();
    if n <= 1 {
        return p.to_vec();
    }
    let nf = n as f64;
    // Ascending order, stable (R's order()).
    let mut up: Vec<usize> = (0..n).collect();
    up.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut out = vec![0.0; n];
    match method {
        Adjustment::Bonferroni => {
            for (o, &x) in out.iter_mut().zip(p) {
                *o = (nf * x).min(1.0);
            }
        }
        Adjustment::Holm => {
            // pmin(1, cummax((n - i + 1) * p[o])), i = 1..n ascending
            let mut running = 0.0f64;
            for (i, &idx) in up.iter().enumerate() {
                running = running.max((nf - i as f64) * p[idx]);
                out[idx] = running.min(1.0);
            }
        }
        Adjustment::Hochberg | Adjustment::Bh | Adjustment::By => {
            // Walk descending: i = n..1, cummin(factor(i) * p[o]).
            let q = match method {
                Adjustment::By => (1..=n).map(|k| 1.0 / k as f64).sum::<f64>(),
                _ => 1.0,
            };
            let mut running = f64::INFINITY;
            for (k, &idx) in up.iter().rev().enumerate() {
                let i = (n - k) as f64; // rank in ascending order, 1-based
                let factor = match method {
                    Adjustment::Hochberg => nf - i + 1.0,
                    _ => q * nf / i,
                };
                running = running.min(factor * p[idx]);
                out[idx] = running.min(1.0);
            }
        }
        Adjustment::Hommel => {
            let sorted: Vec<f64> = up.iter().map(|&i| p[i]).collect();
            let adjusted = hommel_sorted(&sorted);
            for (k, &idx) in up.iter().enumerate() {
                out[idx] = adjusted[k];
            }
        }
    }
    out
}

/// Hommel's adjustment of ascending p-values (R's loop, 0-based).
fn hommel_sorted(p: &[f64]) -> Vec<f64> {
    let n = p.len();
    let nf = n as f64;
    let start = p
        .iter()
        .enumerate()
        .map(|(i, &x)| nf * x / (i + 1) as f64)
        .fold(f64::INFINITY, f64::min);
    let mut q = vec![start; n];
    let mut pa = vec![start; n];
    for m in (2..n).rev() {
        let mf = m as f64;
        // i1 = 1..(n - m + 1), i2 = (n - m + 2)..n in R's 1-based terms.
        let split = n - m + 1;
        let q1 = (split..n)
            .enumerate()
            .map(|(k, i)| mf * p[i] / (k + 2) as f64)
            .fold(f64::INFINITY, f64::min);
        for i in 0..split {
            q[i] = (mf * p[i]).min(q1);
        }
        let fill = q[split - 1];
        for qi in q.iter_mut().skip(split) {
            *qi = fill;
        }
        for (a, &b) in pa.iter_mut().zip(&q) {
            *a = a.max(b);
        }
    }
    pa.iter().zip(p).map(|(&a, &x)| a.max(x)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r_documented_example() {
        // R: p.adjust(c(0.01, 0.02, 0.03, 0.04, 0.05), "BH") = rep(0.05, 5)
        let p = [0.01, 0.02, 0.03, 0.04, 0.05];
        assert!(
            adjust(&p, Adjustment::Bh)
                .iter()
                .all(|&q| (q - 0.05).abs() < 1e-15)
        );
        // Bonferroni caps at 1; a single p-value is unchanged.
        assert_eq!(adjust(&[0.3, 0.5], Adjustment::Bonferroni), vec![0.6, 1.0]);
        assert_eq!(adjust(&[0.3], Adjustment::Holm), vec![0.3]);
    }
}
