//! Power of the test that a ROC curve's AUC is 0.5, as pROC's `power.roc.test` computes it
//! (Obuchowski and McClish 1997: the variance of the AUC of a binormal curve with equal
//! variances).

use super::distributions::{normal_cdf, normal_quantile};

/// n_cases · Var(AUC) of a binormal curve with this AUC, κ controls per case, as pROC's
/// `var.theta.obuchowski`: with A = Φ⁻¹(θ) · 1.414 (pROC's rounding of √2, kept to match),
/// 0.0099 · e^(−A²/2) · ((5A² + 8) + (A² + 8) / κ).
fn scaled_variance(theta: f64, kappa: f64) -> f64 {
    let a = normal_quantile(theta) * 1.414;
    0.0099 * (-a * a / 2.0).exp() * ((5.0 * a * a + 8.0) + (a * a + 8.0) / kappa)
}

/// The power of the two-sided test at `sig_level` that the AUC is 0.5, when it is `auc`,
/// with `n_cases` cases and `n_controls` controls: Φ((√n_cases · |θ − ½| − z · √V₀) / √V_θ)
/// with z = Φ⁻¹(1 − sig_level / 2), V₀ = 0.0792 · (1 + 1/κ) (the null variance) and V_θ as
/// [`scaled_variance`]. As pROC, the power counts rejections on the side of the true AUC only
/// (at AUC 0.5 it is sig_level / 2).
pub fn roc_power(auc: f64, n_cases: f64, n_controls: f64, sig_level: f64) -> f64 {
    let kappa = n_controls / n_cases;
    let null_variance = 0.0792 * (1.0 + 1.0 / kappa);
    let z_alpha = normal_quantile(1.0 - sig_level / 2.0);
    let delta = auc - 0.5;
    let z_beta = ((n_cases * delta * delta).sqrt() - z_alpha * null_variance.sqrt())
        / scaled_variance(auc, kappa).sqrt();
    normal_cdf(z_beta)
}

/// The cases needed for the two-sided test at `sig_level` to detect `auc` with `power`, with
/// `kappa` controls per case, as pROC's `power.roc.test(roc, power =)`: (z_α · √V₀ +
/// z_β · √V_θ)² / (auc − ½)², z_α = Φ⁻¹(1 − sig_level / 2), z_β = Φ⁻¹(power). Not rounded
/// (pROC does not round either); +∞ at AUC ½.
pub fn roc_sample_size(auc: f64, kappa: f64, power: f64, sig_level: f64) -> f64 {
    let null_variance = 0.0792 * (1.0 + 1.0 / kappa);
    let z_alpha = normal_quantile(1.0 - sig_level / 2.0);
    let z_beta = normal_quantile(power);
    let delta = auc - 0.5;
    let root = z_alpha * null_variance.sqrt() + z_beta * scaled_variance(auc, kappa).sqrt();
    root * root / (delta * delta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_grows_with_the_study_and_the_effect() {
        let small = roc_power(0.7, 20.0, 40.0, 0.05);
        assert!(small < roc_power(0.7, 100.0, 200.0, 0.05));
        assert!(small < roc_power(0.8, 20.0, 40.0, 0.05));
        // As pROC: one tail at AUC 0.5.
        assert!((roc_power(0.5, 50.0, 50.0, 0.05) - 0.025).abs() < 1e-12);
        // Symmetric about 0.5.
        assert!(
            (roc_power(0.3, 30.0, 60.0, 0.01) - roc_power(0.7, 30.0, 60.0, 0.01)).abs() < 1e-12
        );
    }

    #[test]
    fn the_sample_size_gives_the_power_asked_for() {
        let n = roc_sample_size(0.72, 2.0, 0.9, 0.05);
        assert!((roc_power(0.72, n, 2.0 * n, 0.05) - 0.9).abs() < 1e-12);
        assert_eq!(roc_sample_size(0.5, 1.0, 0.8, 0.05), f64::INFINITY);
    }
}
