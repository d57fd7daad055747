#!/usr/bin/env python3
"""Reference values for the rank statistics (udfs/src/ranks.rs): auc and mann_whitney.

Writes ranks.json beside this file: for each case the inputs (value as decimal strings, or
null / "NaN" / "Infinity" for rows to skip; is_case) and:

- auc: the count over all (case, control) pairs of [x_case > x_control] + 1/2 [tie], divided
  by n_case * n_control, in exact rational arithmetic (no auto-flip);
- auc_ci at levels 0.95 and 0.8: DeLong's variance straight from its definition (placement
  values V10, V01 over all pairs, sample variances with n - 1), in exact rational arithmetic;
  se and the normal quantile with mpmath; the interval auc -/+ z se clipped to [0, 1] as pROC;
- mann_whitney for method 'auto', 'asymptotic' and 'exact': u and p from
  scipy.stats.mannwhitneyu(cases, controls, method=...) (two-sided, use_continuity=True),
  except the exact p with ties: scipy's ignores them; Discern's is the exact distribution
  given the tied midranks (exactRankTests::wilcox.exact), counted exactly by exact_ties.py
  (NULL beyond 10,000 pairs);
  z from the tie-corrected normal approximation with a continuity correction of 1/2 towards 0
  (R wilcox.test's z), at 60 digits with mpmath, checked against scipy's asymptotic p;
- mann_whitney_no_correct: the same without the continuity correction
  (scipy use_continuity=False, R wilcox.test(correct = FALSE)).

Run:  python3 testdata/reference/ranks.py   (numpy, scipy, mpmath; versions are recorded)
"""
import json
import math
import pathlib
from collections import Counter
from fractions import Fraction

import mpmath
from exact_ties import rank_sum_p
import numpy as np
import scipy
import scipy.stats

from common import make_case

mpmath.mp.dps = 60
rng = np.random.default_rng(7)




def exact_auc(x1, x0):
    wins = Fraction(0)
    for a in x1:
        for b in x0:
            wins += 1 if a > b else Fraction(1, 2) if a == b else 0
    return float(wins / (len(x1) * len(x0)))


def exact_delong(x1, x0, level):
    n1, n0 = len(x1), len(x0)
    psi = lambda a, b: Fraction(1) if a > b else Fraction(1, 2) if a == b else Fraction(0)
    v10 = [sum(psi(a, b) for b in x0) / n0 for a in x1]
    v01 = [sum(psi(a, b) for a in x1) / n1 for b in x0]
    auc = sum(v10) / n1
    if n1 < 2 or n0 < 2:
        return {"auc": float(auc), "se": None, "lower": None, "upper": None}
    def var(v):
        m = sum(v) / len(v)
        return sum((x - m) ** 2 for x in v) / (len(v) - 1)
    variance = var(v10) / n1 + var(v01) / n0
    se = mpmath.sqrt(mpmath.mpf(variance.numerator) / variance.denominator)
    z = -mpmath.sqrt(2) * mpmath.erfinv(-mpmath.mpf(level))  # the (1 + level)/2 quantile
    a = mpmath.mpf(auc.numerator) / auc.denominator
    return {"auc": float(auc), "se": float(se),
            "lower": float(max(mpmath.mpf(0), a - z * se)),
            "upper": float(min(mpmath.mpf(1), a + z * se))}


def z_value(x1, x0, correct=True):
    n1, n0 = len(x1), len(x0)
    n = n1 + n0
    ranks = scipy.stats.rankdata(x1 + x0)
    u = mpmath.mpf(sum(ranks[:n1])) - mpmath.mpf(n1 * (n1 + 1)) / 2
    ties = sum(t ** 3 - t for t in Counter(x1 + x0).values())
    var = mpmath.mpf(n1 * n0) / 12 * ((n + 1) - mpmath.mpf(ties) / (n * (n - 1)))
    if var <= 0:
        return None
    centred = u - mpmath.mpf(n1 * n0) / 2
    if not correct:
        return centred / mpmath.sqrt(var)
    corrected = centred - mpmath.sign(centred) * mpmath.mpf(1) / 2 if abs(centred) >= 0.5 else 0
    return corrected / mpmath.sqrt(var)


def expected(values, labels):
    pairs = [(v, c) for v, c in zip(values, labels)
             if v is not None and c is not None and math.isfinite(v)]
    x1 = [v for v, c in pairs if c]
    x0 = [v for v, c in pairs if not c]
    if not x1 or not x0:
        return {"auc": None, "auc_ci": {"0.95": None, "0.8": None},
                "mann_whitney": {m: None for m in ("auto", "asymptotic", "exact")},
                "mann_whitney_no_correct": {m: None for m in ("auto", "asymptotic", "exact")}}
    out = {"auc": exact_auc(x1, x0), "mann_whitney": {},
           "auc_ci": {str(level): exact_delong(x1, x0, level) for level in (0.95, 0.8)}}
    out["mann_whitney"] = mann_whitney(x1, x0, True)
    out["mann_whitney_no_correct"] = mann_whitney(x1, x0, False)
    return out


def mann_whitney(x1, x0, correct):
    """{method: {u, z, p}} with or without the continuity correction."""
    out = {}
    z = z_value(x1, x0, correct)
    for method in ("auto", "asymptotic", "exact"):
        r = scipy.stats.mannwhitneyu(x1, x0, method=method, use_continuity=correct)
        if z is None:
            # Every value tied: no normal approximation (scipy divides by 0 here).
            uses_exact = method == "exact"
            p = float(rank_sum_p(x1, x0)[0]) if uses_exact else None
            out[method] = {"u": float(r.statistic), "z": None, "p": p}
            continue
        if method == "asymptotic":
            check = float(2 * mpmath.ncdf(-abs(z)))
            if abs(min(check, 1.0) - r.pvalue) > 1e-9 * r.pvalue:
                raise SystemExit(f"z does not reproduce scipy's p: {check} vs {r.pvalue}")
        p = float(r.pvalue)
        tied = len(set(x1) | set(x0)) < len(x1) + len(x0)
        if method == "exact" and tied:
            p = float(rank_sum_p(x1, x0)[0]) if len(x1) * len(x0) <= 10_000 else None
        elif method == "exact" and len(x1) * len(x0) > 100_000:
            # Beyond 100,000 pairs Discern does not compute the exact distribution (p NULL);
            # scipy's exact method returns NaN here as well.
            p = None
        out[method] = {"u": float(r.statistic), "z": float(z), "p": p}
    return out


def case(name, control, cases, extra=()):
    return make_case(expected, name, control, cases, extra)


def rounded(v, digits):
    return [float(f"{x:.{digits - 1}e}") for x in v]


cases = [
    case("small, no ties (auto = exact)", [1.2, 3.4, 2.2, 5.1, 4.4], [6.3, 7.7, 5.9, 8.1, 4.9, 9.0]),
    case("heavy ties (2 significant digits)", rounded(rng.lognormal(1.0, 0.4, 80), 2),
         rounded(rng.lognormal(1.3, 0.4, 25), 2)),
    case("ties with a small group (auto = asymptotic)", [1.0, 2.0, 2.0, 3.0, 4.0, 5.0],
         [2.0, 4.0, 6.0]),
    case("8 cases against 200 controls, no ties (auto = exact)",
         rng.normal(0, 1, 200).tolist(), rng.normal(0.8, 1, 8).tolist()),
    case("large n", rng.normal(0, 1, 2000).tolist(), rng.normal(0.2, 1.1, 300).tolist()),
    case("one case", [3.0, 4.0, 5.5, 6.0], [9.5]),
    case("perfect separation, cases higher", [1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0]),
    case("perfect separation, cases lower (no auto-flip)", [4.0, 5.0, 6.0, 7.0], [1.0, 2.0]),
    case("every value tied", [2.0, 2.0, 2.0], [2.0, 2.0]),
    case("no cases", [1.0, 2.0], []),
    case("NULL, NaN and infinite rows are skipped", [1.0, 2.5, 3.0, 2.0], [4.0, 5.5, 6.0, 2.0],
         extra=[(None, True), (float("nan"), True), (float("inf"), False),
                (float("-inf"), True), (7.0, None)]),
]

out = {
    "generated_by": "testdata/reference/ranks.py",
    "versions": {"numpy": np.__version__, "scipy": scipy.__version__, "mpmath": mpmath.__version__},
    "cases": cases,
}
path = pathlib.Path(__file__).with_name("ranks.json")
path.write_text(json.dumps(out, indent=1) + "\n")
print(f"wrote {len(cases)} cases to {path}")
