//! Reclassification: does a new risk model move people the right way? The net reclassification
//! improvement (NRI) and the integrated discrimination improvement (IDI) of Pencina et al.
//! (2008, 2011), as Hmisc's `improveProb` computes them.

use super::distributions::normal_sf;
use super::moments::Moments;

/// What one outcome group (events or non-events) contributes: how many moved up or down, and
/// the moments of p_new − p_old.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Moves {
    /// Rows whose risk went up (p_new > p_old; with cutoffs, a higher category).
    pub up: u64,
    /// Rows whose risk went down.
    pub down: u64,
    /// The moments of p_new − p_old over every row of the group.
    pub change: Moments,
}

impl Moves {
    /// Merges another partial group.
    pub fn merge(&mut self, other: &Moves) {
        self.up += other.up;
        self.down += other.down;
        self.change.merge(&other.change);
    }

    /// (up − down) / n and its variance (Hmisc: (up + down)/n² − (up − down)²/n³).
    fn net(&self) -> (f64, f64) {
        let n = self.change.n as f64;
        let (up, down) = (self.up as f64, self.down as f64);
        let variance = (up + down) / (n * n) - (up - down) * (up - down) / (n * n * n);
        ((up - down) / n, variance.max(0.0))
    }
}

/// The reclassification measures, in the SQL struct's order.
pub const FIELDS: [&str; 12] = [
    "nri",
    "nri_events",
    "nri_nonevents",
    "se",
    "z",
    "p",
    "idi",
    "idi_se",
    "idi_z",
    "idi_p",
    "improve_sensitivity",
    "improve_specificity",
];

/// NRI = (up − down)/n of the events + (down − up)/n of the non-events with its standard error
/// and z; IDI = mean(p_new − p_old) of the events − that of the non-events, its standard
/// error √(var_events/n_events + var_nonevents/n_nonevents) and z; two-sided normal p-values;
/// improve_sensitivity = mean change of the events, improve_specificity = − mean change of the
/// non-events. None without events or without non-events (Hmisc stops); a z and its p are None
/// where the standard error is 0 or undefined (fewer than 2 rows for a variance).
pub fn reclassification(events: &Moves, nonevents: &Moves) -> Option<[Option<f64>; 12]> {
    if events.change.n == 0 || nonevents.change.n == 0 {
        return None;
    }
    let (nri_events, v_events) = events.net();
    let (up_minus_down, v_nonevents) = nonevents.net();
    let nri_nonevents = -up_minus_down;
    let nri = nri_events + nri_nonevents;
    let se = (v_events + v_nonevents).sqrt();
    let test = |estimate: f64, se: Option<f64>| {
        let z = se.filter(|s| *s > 0.0).map(|s| estimate / s);
        (z, z.map(|z| (2.0 * normal_sf(z.abs())).min(1.0)))
    };
    let (z, p) = test(nri, Some(se));
    let improve_sensitivity = events.change.mean();
    let improve_specificity = -nonevents.change.mean();
    let idi = improve_sensitivity + improve_specificity;
    let idi_se = match (events.change.variance(), nonevents.change.variance()) {
        (Some(a), Some(b)) => {
            Some((a / events.change.n as f64 + b / nonevents.change.n as f64).sqrt())
        }
        _ => None,
    };
    let (idi_z, idi_p) = test(idi, idi_se);
    Some([
        Some(nri),
        Some(nri_events),
        Some(nri_nonevents),
        Some(se),
        z,
        p,
        Some(idi),
        idi_se,
        idi_z,
        idi_p,
        Some(improve_sensitivity),
        Some(improve_specificity),
    ])
}

/// The risk category of `p` among ascending `cutoffs`: how many cutoffs lie strictly below it
/// (categories (−∞, c₁], (c₁, c₂], …, as R's `cut(p, c(0, cutoffs, 1))`).
pub fn category(p: f64, cutoffs: &[f64]) -> usize {
    cutoffs.partition_point(|c| *c < p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moves(up: u64, down: u64, changes: &[f64]) -> Moves {
        let mut change = Moments::default();
        for c in changes {
            change.push(*c);
        }
        Moves { up, down, change }
    }

    #[test]
    fn nri_counts_moves_in_the_right_direction() {
        // Two of three events up, one of three non-events down, one up.
        let events = moves(2, 0, &[0.1, 0.2, 0.0]);
        let nonevents = moves(1, 1, &[0.05, -0.1, 0.0]);
        let r = reclassification(&events, &nonevents).unwrap();
        assert!((r[1].unwrap() - 2.0 / 3.0).abs() < 1e-15);
        assert_eq!(r[2], Some(0.0));
        assert!((r[0].unwrap() - 2.0 / 3.0).abs() < 1e-15);
        assert!(reclassification(&events, &Moves::default()).is_none());
    }

    #[test]
    fn categories_are_right_closed() {
        let cutoffs = [0.1, 0.3];
        assert_eq!(category(0.05, &cutoffs), 0);
        assert_eq!(category(0.1, &cutoffs), 0);
        assert_eq!(category(0.1000001, &cutoffs), 1);
        assert_eq!(category(0.3, &cutoffs), 1);
        assert_eq!(category(0.9, &cutoffs), 2);
    }
}
