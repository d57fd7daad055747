#!/usr/bin/env python3
"""Reference values for the exact rank tests with ties and zeros, in exact integer arithmetic.

Writes exact_ties.json beside this file (tests: udfs/tests/reference_exact_ties.rs). Every p is
a ratio of two integers counted exactly with Python's integers and rounded once
(`float(Fraction)` is correctly rounded), so the references have no error of their own.

- mann_whitney(value, is_case, 'exact') with ties: the exact distribution given the tied
  midranks (exactRankTests::wilcox.exact): p = P(|T - E| >= |t - E|) over the C(N, m) equally
  likely choices of the m cases among the N pooled values, T the cases' midrank sum and
  E = m (N + 1) / 2; 1 when t = E. Counted over runs of equal values: choosing c of a run of
  t values with midrank r contributes C(t, c) ways and c r to T (midranks doubled, so that
  every sum is an integer). Sizes from 1 x 5 to 100 x 100 and 10 x 1000 (the limit: 10,000
  pairs), at p near 1, near 0.5 and far out; NULL beyond the limit.
- wilcoxon_signed_rank(diff, 'exact', correct, zero_method) with ties and zeros: every sign
  pattern of the non-zero differences equally likely, V the sum of the positive ones' midranks
  (zeros dropped before ranking for 'wilcox'; ranked and then dropped for 'pratt'); p =
  min(1, 2 P(V <= v)) below the centre, min(1, 2 P(V >= v)) above (R's rule).

Cross-checks: R's exactRankTests::wilcox.exact (its own floating-point shift algorithm) through
Rscript where it runs in reasonable time, to 1e-9; scipy.stats.wilcoxon with
method=PermutationMethod() (an exact enumeration when the sign patterns are few) on the small
signed-rank cases, to 1e-12. (scipy's permutation Mann-Whitney doubles the smaller one-sided
tail instead, which differs from |T - E| when ties make the distribution asymmetric.)

Run:  python3 testdata/reference/exact_ties.py   (numpy, scipy; Rscript with
r-cran-exactranktests and r-cran-jsonlite)
"""
import json
import math
import pathlib
import subprocess
import tempfile
from fractions import Fraction

import numpy as np
import scipy
import scipy.stats

rng = np.random.default_rng(20261202)


def runs_of(x1, x0):
    """Runs of equal pooled values in ascending order: (doubled midrank, cases, size)."""
    values = sorted(set(x1) | set(x0))
    c1 = {v: 0 for v in values}
    c0 = {v: 0 for v in values}
    for v in x1:
        c1[v] += 1
    for v in x0:
        c0[v] += 1
    out, below = [], 0
    for v in values:
        t = c1[v] + c0[v]
        out.append((2 * below + t + 1, c1[v], t))
        below += t
    return out


def coefficient_sum(poly, bits, terms):
    """Sum of the `terms` coefficients of a polynomial packed `bits` (a multiple of 8) apiece."""
    width = bits // 8
    raw = poly.to_bytes(width * terms, "little")
    return sum(int.from_bytes(raw[i:i + width], "little") for i in range(0, len(raw), width))


def subsets_at_most(runs, m, k):
    """Number of m-subsets (with multiplicity) whose doubled-score sum is at most k: for each
    count j of chosen items, a polynomial in the sum packed into one integer."""
    total = math.comb(sum(t for _, _, t in runs), m)
    bits = 8 * (total.bit_length() // 8 + 1)
    mask = (1 << (bits * (k + 1))) - 1
    poly = [1] + [0] * m
    for score, _, t in runs:
        new = list(poly)
        for j in range(1, m + 1):
            acc = 0
            for c in range(1, min(t, j) + 1):
                if poly[j - c] and c * score <= k:
                    acc += math.comb(t, c) * (poly[j - c] << (bits * c * score))
            new[j] = (new[j] + acc) & mask
        poly = new
    return coefficient_sum(poly[m], bits, k + 1)


def rank_sum_p(x1, x0):
    runs = runs_of(x1, x0)
    n = sum(t for _, _, t in runs)
    m = len(x1)
    t_obs = sum(score * c for score, c, _ in runs)
    centre = m * (n + 1)
    d = abs(t_obs - centre)
    if d == 0:
        return Fraction(1), t_obs
    k = centre - d
    if k < 0:
        return Fraction(0), t_obs
    reflected = sorted((2 * (n + 1) - s, c, t) for s, c, t in runs)
    count = subsets_at_most(runs, m, k) + subsets_at_most(reflected, m, k)
    return min(Fraction(1), Fraction(count, math.comb(n, m))), t_obs


def signed_rank_p(d, zero_method):
    nonzero = [x for x in d if x != 0]
    z0 = len(d) - len(nonzero) if zero_method == "pratt" else 0
    ranked = sorted(nonzero, key=abs)
    scores, i = [], 0
    while i < len(ranked):
        j = i
        while j < len(ranked) and abs(ranked[j]) == abs(ranked[i]):
            j += 1
        scores += [2 * z0 + i + j + 1] * (j - i)
        i = j
    v2 = sum(s for s, x in zip(scores, ranked) if x > 0)
    total = sum(scores)
    k = min(v2, total - v2)
    bits = 8 * (len(scores) // 8 + 1)
    mask = (1 << (bits * (k + 1))) - 1
    poly = 1
    for a in scores:
        poly = (poly + (poly << (bits * a))) & mask
    below = coefficient_sum(poly, bits, k + 1)
    return min(Fraction(1), Fraction(2 * below, 2 ** len(scores))), Fraction(v2, 2)


def wilcox_exact_r(jobs):
    """exactRankTests::wilcox.exact p for each job (two samples or one), None if R fails."""
    with tempfile.TemporaryDirectory() as tmp:
        src = pathlib.Path(tmp, "in.json")
        src.write_text(json.dumps(jobs))
        script = (
            "suppressMessages({library(exactRankTests); library(jsonlite)});"
            "jobs <- fromJSON(commandArgs(TRUE)[1], simplifyVector = FALSE);"
            "out <- sapply(jobs, function(j) {"
            "  x <- unlist(j$x); y <- if (length(j$y)) unlist(j$y) else NULL;"
            "  wilcox.exact(x, y, exact = TRUE)$p.value });"
            "cat(sprintf('%.17g', out), sep = '\\n')"
        )
        r = subprocess.run(["Rscript", "-e", script, str(src)], capture_output=True, text=True,
                           check=True)
    return [float(x) for x in r.stdout.split()]


def enc(xs):
    return [repr(float(x)) for x in xs]


def main():
    mann_whitney, r_jobs = [], []


    def mw(name, x1, x0, r_check=True):
        p, t2 = rank_sum_p(list(x1), list(x0))
        u = Fraction(t2, 2) - Fraction(len(x1) * (len(x1) + 1), 2)
        case = {"name": name, "cases": enc(x1), "controls": enc(x0), "u": float(u), "p": float(p)}
        if r_check:
            r_jobs.append((case, {"x": [float(v) for v in x1], "y": [float(v) for v in x0]}))
        mann_whitney.append(case)
        print("mann_whitney", name, float(p), flush=True)


    mw("1 x 5, a tie across the groups", [2.0], [1.0, 2.0, 3.0, 4.0, 5.0])
    mw("5 x 4, ties within and across", [1, 2, 2, 3, 5], [2, 3, 3, 4])
    mw("equal rank sums: p = 1", [1, 2, 3, 3], [1, 2, 3, 3])
    mw("complete separation with ties", [5, 5, 6, 6], [1, 1, 2, 2, 3])
    x = np.round(rng.normal(0, 1, 20), 1)
    y = np.round(rng.normal(0.8, 1, 30), 1)
    mw("20 x 30, one decimal", x, y)
    mw("40 x 60, three values", rng.integers(0, 3, 40), rng.integers(0, 3, 60))
    mw("40 x 60, three values, shifted", rng.integers(1, 4, 40), rng.integers(0, 3, 60))
    base = np.round(rng.normal(0, 1, 200), 1)
    mw("100 x 100 (the limit), near 0.5", base[:100], base[100:])
    mw("100 x 100, p near 1e-7", np.round(rng.normal(0.95, 1, 100), 1),
       np.round(rng.normal(0, 1, 100), 1))
    mw("100 x 100, far tail", np.round(rng.normal(4, 1, 100), 1), np.round(rng.normal(0, 1, 100), 1),
       r_check=False)
    mw("10 x 1000, ties in the controls", np.round(rng.normal(1, 1, 10), 1),
       np.round(rng.normal(0, 1, 1000), 1), r_check=False)
    # Beyond 10,000 pairs with ties the count is not made (its cost, N min(m, n) 2mn additions,
    # grows past seconds): p is NULL, whatever the tail. Issue 12's example (200 x 400, 166 tied
    # pairs) is one; scipy's exact p there, from the tie-free distribution at the midrank U, is
    # recorded beside it.
    rows = [(v + (100 if v % 3 == 0 else 0), v % 3 == 0) for v in range(1, 601)]
    x1 = [float(x) for x, c in rows if c]
    x0 = [float(x) for x, c in rows if not c]
    mann_whitney.append({
        "name": "issue 12's example (200 x 400 with ties): beyond the limit, NULL",
        "sql": "SELECT mann_whitney(x, c, 'exact') AS r FROM (SELECT CAST(v AS DOUBLE) + CASE "
               "WHEN v % 3 = 0 THEN 100.0 ELSE 0 END AS x, v % 3 = 0 AS c "
               "FROM generate_series(1, 600) AS t(v))",
        "u": float(sum((a > b) + 0.5 * (a == b) for a in x1 for b in x0)), "p": None,
        "scipy_tie_free": float(scipy.stats.mannwhitneyu(x1, x0, method="exact").pvalue)})
    wide = np.round(rng.normal(0, 1, 400), 1)
    mann_whitney.append({"name": "101 x 100 with ties: beyond the limit, NULL",
                         "cases": enc(wide[:101]), "controls": enc(wide[101:201]),
                         "u": float(sum((a > b) + 0.5 * (a == b) for a in wide[:101]
                                        for b in wide[101:201])), "p": None})

    signed_rank = []


    def sr(name, d, r_check=True):
        d = [float(x) for x in d]
        case = {"name": name, "diffs": enc(d)}
        for zm in ("wilcox", "pratt"):
            if not any(x != 0 for x in d):
                case[zm] = None
                continue
            p, v = signed_rank_p(d, zm)
            case[zm] = {"statistic": float(v), "p": float(p)}
            nonzero = sum(1 for x in d if x != 0)
            if nonzero <= 16:
                s = scipy.stats.wilcoxon(d, zero_method=zm, method=scipy.stats.PermutationMethod(
                    n_resamples=10**6))
                assert abs(s.pvalue - float(p)) <= 1e-12 * float(p), (name, zm, s.pvalue, float(p))
                case[zm]["scipy"] = float(s.pvalue)
        if r_check and any(x != 0 for x in d):
            r_jobs.append((case, {"x": d, "y": []}))
        signed_rank.append(case)
        print("signed_rank", name, case["wilcox"], case["pratt"], flush=True)


    sr("ties, no zeros", [1, -1, 2, 2, 3, -3, 3, 4, 5, 5, 6])
    sr("zeros and ties", [0, 0, 1.5, -0.5, 2, 2, 3.1, -1.2, 0.5, 2.2, 4, -0.1, 0])
    sr("many zeros", [0] * 10 + [1, 2, 3, -1, 4, 5, -2, 6])
    sr("one non-zero difference", [0, 0, 2.5])
    sr("all positive with ties: the smallest p", [1, 1, 2, 2, 2, 3, 4, 4, 5, 6, 7, 7])
    sr("60 rounded differences", np.round(rng.normal(0.3, 1, 60), 1))
    sr("300 rounded differences, far tail", np.round(rng.normal(0.5, 1, 300), 1))
    sr("1000 rounded differences (the limit), near 0.5", np.round(rng.normal(0.0, 1, 1000), 1),
       r_check=False)
    sr("every difference zero", [0, 0, 0])

    # R's exactRankTests, in one Rscript run.
    results = wilcox_exact_r([job for _, job in r_jobs])
    for (case, job), r in zip(r_jobs, results):
        if job["y"]:
            exact = case["p"]
        else:
            exact = case["wilcox"]["p"]
        assert abs(r - exact) <= 1e-9 * exact, (case["name"], r, exact)
        if job["y"]:
            case["r"] = r
        else:
            case["wilcox"]["r"] = r

    out = {
        "generated_by": "testdata/reference/exact_ties.py",
        "versions": {"numpy": np.__version__, "scipy": scipy.__version__,
                     "exactRankTests": subprocess.run(
                         ["Rscript", "-e", "cat(format(packageVersion('exactRankTests')))"],
                         capture_output=True, text=True).stdout.strip()},
        "mann_whitney": mann_whitney,
        "signed_rank": signed_rank,
    }
    path = pathlib.Path(__file__).with_name("exact_ties.json")
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {len(mann_whitney)} + {len(signed_rank)} cases to {path}")


if __name__ == "__main__":
    main()
