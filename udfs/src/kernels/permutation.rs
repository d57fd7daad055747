//! Exact permutation distributions of rank sums with tied ranks: the conditional null
//! distribution given the observed midranks, as `exactRankTests::wilcox.exact` computes it
//! (Streitberg & Röhmel's shift algorithm counts the same subsets).
//!
//! Midranks are multiples of ½, so every score is handled doubled, as an integer; sums of
//! scores are then exact and the tail events are decided without rounding.
//!
//! The counts are built by additions of non-negative numbers only (no subtraction, so no
//! cancellation): each count is a sum of exact integers whose floating-point evaluation is at
//! most N additions deep, N the number of items, so its relative error is below N · 2⁻⁵³.
//!
//! References:
//! 1. B. Streitberg, J. Röhmel (1986), "Exact distributions for permutation and rank tests",
//!    Statistical Software Newsletter 12(1).
//! 2. T. Hothorn, K. Hornik (2002), exactRankTests: `wilcox.exact`, `pperm`.

/// Doubled midranks of the merged runs of two groups, one entry per distinct value:
/// (doubled midrank, items of the first group, items of both).
pub type ScoreRuns = Vec<(u64, u64, u64)>;

/// Doubled midranks from counts per distinct value in ascending order ((first, second) group
/// counts): the run of t values starting after `below` has midrank below + (t + 1) / 2.
pub fn doubled_midranks(runs: impl IntoIterator<Item = (u64, u64)>) -> ScoreRuns {
    let mut below = 0u64;
    runs.into_iter()
        .filter(|&(a, b)| a + b > 0)
        .map(|(a, b)| {
            let t = a + b;
            let score = 2 * below + t + 1;
            below += t;
            (score, a, t)
        })
        .collect()
}

/// The two-sided exact p of the two-sample rank-sum test given the ties:
/// P(|T − E| ≥ |t − E|) over the C(N, m) equally likely choices of the first group's m
/// items, T the sum of their midranks and E = m(N + 1)/2 its mean (exactRankTests' two-sided
/// `pperm`); 1 when t = E. Computed for the smaller group (the event is the same for both).
pub fn rank_sum_two_sided(runs: &ScoreRuns) -> f64 {
    let n: u64 = runs.iter().map(|r| r.2).sum();
    let first: u64 = runs.iter().map(|r| r.1).sum();
    let (m, observed) = if first <= n - first {
        (first, runs.iter().map(|r| r.0 * r.1).sum::<u64>())
    } else {
        (
            n - first,
            runs.iter().map(|r| r.0 * (r.2 - r.1)).sum::<u64>(),
        )
    };
    if m == 0 {
        return 1.0;
    }
    // Doubled: E₂ = m(N + 1); the tails are T₂ ≤ E₂ − d and T₂ ≥ E₂ + d.
    let centre = m * (n + 1);
    let d = observed.abs_diff(centre);
    if d == 0 {
        return 1.0;
    }
    let scores: Vec<(u64, u64)> = runs.iter().map(|r| (r.0, r.2)).collect();
    let reflected: Vec<(u64, u64)> = runs.iter().map(|r| (2 * (n + 1) - r.0, r.2)).collect();
    let total = binomial(n, m);
    let (lower, upper) = match centre.checked_sub(d) {
        // T₂ ≥ E₂ + d is T₂' ≤ 2m(N + 1) − E₂ − d = E₂ − d for the reflected scores.
        Some(k) => (
            subsets_at_most(&scores, m, k),
            subsets_at_most(&reflected, m, k),
        ),
        None => (0.0, 0.0),
    };
    ((lower + upper) / total).min(1.0)
}

/// The number of m-subsets of the items (score, count) whose scores sum to at most k.
fn subsets_at_most(items: &[(u64, u64)], m: u64, k: u64) -> f64 {
    let m = m as usize;
    let smallest = items.iter().map(|r| r.0).min().unwrap_or(0);
    // Shift every score by the smallest: an m-subset's sum drops by m · smallest.
    let Some(top) = k.checked_sub(m as u64 * smallest) else {
        return 0.0;
    };
    let top = top as usize;
    let width = top + 1;
    // counts[j · width + s]: j-subsets of the items seen so far with shifted sum s.
    let mut counts = vec![0.0f64; (m + 1) * width];
    counts[0] = 1.0;
    let mut seen = 0usize;
    for &(score, count) in items {
        let b = (score - smallest) as usize;
        for _ in 0..count {
            seen += 1;
            for j in (1..=m.min(seen)).rev() {
                if b > top {
                    continue;
                }
                let (below, here) = counts.split_at_mut(j * width);
                let from = &below[(j - 1) * width..(j - 1) * width + width - b];
                for (c, &f) in here[b..width].iter_mut().zip(from) {
                    *c += f;
                }
            }
        }
    }
    compensated_sum(&counts[m * width..])
}

/// C(n, k) in floating point, relative error below 2k · 2⁻⁵³ (below 2⁵³ the exact value is
/// an integer, and rounding to it removes the divisions' error).
fn binomial(n: u64, k: u64) -> f64 {
    let k = k.min(n - k);
    let mut c = 1.0f64;
    for i in 0..k {
        c = c * (n - i) as f64 / (i + 1) as f64;
    }
    if c < 9.0e15 { c.round() } else { c }
}

/// The two-sided exact p of the signed-rank statistic V given the ties: doubled scores of the
/// non-zero differences and V doubled. Every sign pattern is equally likely, so V₂ is
/// symmetric about half the scores' total and p = 2 · P(V₂ ≤ min(v₂, total − v₂)), capped at
/// 1 (R's and exactRankTests' rule).
pub fn signed_rank_two_sided(scores: &[u64], v: u64) -> f64 {
    let total: u64 = scores.iter().sum();
    let k = v.min(total - v.min(total)) as usize;
    let mut counts = vec![0.0f64; k + 1];
    counts[0] = 1.0;
    let mut reach = 0usize;
    for &a in scores {
        let a = a as usize;
        reach = (reach + a).min(k);
        if a > k {
            continue;
        }
        for s in (a..=reach).rev() {
            counts[s] += counts[s - a];
        }
    }
    let tail = compensated_sum(&counts) * 2f64.powi(-(scores.len() as i32));
    (2.0 * tail).min(1.0)
}

/// Σ xs with Neumaier's compensation.
fn compensated_sum(xs: &[f64]) -> f64 {
    let (mut sum, mut compensation) = (0.0f64, 0.0f64);
    for &x in xs {
        let t = sum + x;
        compensation += if sum.abs() >= x.abs() {
            (sum - t) + x
        } else {
            (x - t) + sum
        };
        sum = t;
    }
    sum + compensation
}

#[cfg(test)]
mod tests {
    use super::*;

    /// All C(N, m) choices enumerated: the tail probability by brute force.
    fn brute_rank_sum(runs: &ScoreRuns) -> f64 {
        let mut scores = Vec::new();
        for &(s, _, t) in runs {
            scores.extend(std::iter::repeat_n(s, t as usize));
        }
        let m: u64 = runs.iter().map(|r| r.1).sum();
        let observed: u64 = runs.iter().map(|r| r.0 * r.1).sum();
        let n = scores.len();
        let centre = (m * (n as u64 + 1)) as i64;
        let d = (observed as i64 - centre).abs();
        let (mut hit, mut all) = (0u64, 0u64);
        for mask in 0u32..(1 << n) {
            if mask.count_ones() as u64 != m {
                continue;
            }
            all += 1;
            let t: i64 = (0..n)
                .filter(|i| mask >> i & 1 == 1)
                .map(|i| scores[i] as i64)
                .sum();
            if d == 0 || (t - centre).abs() >= d {
                hit += 1;
            }
        }
        hit as f64 / all as f64
    }

    #[test]
    fn rank_sum_tails_count_the_subsets() {
        // runs of 2, 1, 3, 1, 2 values; the first group takes 1, 0, 2, 1, 1 of them
        let runs = doubled_midranks([(1, 1), (0, 1), (2, 1), (1, 0), (1, 1)]);
        assert_eq!(runs[0], (3, 1, 2));
        assert_eq!(runs[2], (10, 2, 3));
        let p = rank_sum_two_sided(&runs);
        assert!((p - brute_rank_sum(&runs)).abs() < 1e-15, "{p}");
        // The larger group first gives the same event.
        let swapped: ScoreRuns = runs.iter().map(|&(s, a, t)| (s, t - a, t)).collect();
        assert!((rank_sum_two_sided(&swapped) - p).abs() < 1e-15);
        for pattern in [
            vec![(2, 0), (0, 3), (1, 1), (0, 2)],
            vec![(3, 3), (1, 1)],
            vec![(1, 0), (1, 0), (0, 1), (0, 1), (0, 1)],
            vec![(0, 4), (4, 0)],
        ] {
            let runs = doubled_midranks(pattern);
            assert!((rank_sum_two_sided(&runs) - brute_rank_sum(&runs)).abs() < 1e-15);
        }
    }

    #[test]
    fn signed_rank_tails_count_the_sign_patterns() {
        // |d| ranks 1.5 1.5 3 4.5 4.5 doubled
        let scores = [3, 3, 6, 9, 9];
        let total = 30;
        for v in 0..=total {
            let mut hit = 0;
            let k = v.min(total - v);
            for mask in 0u32..32 {
                let s: u64 = (0..5)
                    .filter(|i| mask >> i & 1 == 1)
                    .map(|i| scores[i])
                    .sum();
                hit += u32::from(s <= k);
            }
            let expected = (2.0 * f64::from(hit) / 32.0).min(1.0);
            assert_eq!(signed_rank_two_sided(&scores, v), expected, "v₂ = {v}");
        }
    }
}
