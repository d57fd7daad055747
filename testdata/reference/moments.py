#!/usr/bin/env python3
"""Reference values for the two-group moment statistics (udfs/src/moments.rs).

Writes moments.json beside this file: for each case, the inputs (value, is_case; null for
NULL, the strings "NaN"/"Infinity"/"-Infinity" for the non-finite values that must be skipped)
as decimal strings, and the expected results:

Everything is computed from the exact moments of the (double) inputs with mpmath at 60
digits, then rounded once to double; scipy is run beside it as a cross-check (the script
stops if scipy disagrees by more than 1e-5; it differs by more than 1e-9 only where scipy loses
digits, e.g. values of 1e9 with unit spread).

- welch_t_test, student_t_test: t (case minus control), df (Welch-Satterthwaite /
  n1 + n0 - 2), p = P(|T| >= |t|) = I_{df/(df+t^2)}(df/2, 1/2) and log_p = ln p, exact even
  where p underflows to 0; cross-checked against scipy.stats.ttest_ind (equal_var False/True).
- cohens_d: pooled SD with n - 1 denominators.
- hedges_g: d times Hedges' (1981) exact J(m) = Gamma(m/2) / (sqrt(m/2) Gamma((m-1)/2)),
  evaluated with mpmath at 60 digits. (statsmodels' effectsize_smd and pingouin use the
  1 - 3/(4n - 9) approximation instead, so they are not the oracle here.)
- fold_change, log2_fold_change: ratio of the exact means.
A statistic that is undefined for the data is null.

Run:  python3 testdata/reference/moments.py   (numpy, scipy, mpmath; versions are recorded)
"""
import json
import math
import pathlib

import mpmath
import numpy as np
import scipy
import scipy.stats

from common import make_case

mpmath.mp.dps = 60
rng = np.random.default_rng(20261125)




def exact_moments(x):
    x = [mpmath.mpf(v) for v in x]
    n = len(x)
    mean = mpmath.fsum(x) / n if n else mpmath.mpf(0)
    m2 = mpmath.fsum([(v - mean) ** 2 for v in x])
    return n, mean, m2


def t_result(t, df, scipy_result):
    x = df / (df + t * t)
    p = mpmath.betainc(df / 2, mpmath.mpf(1) / 2, 0, x, regularized=True)
    for got, want in ((float(t), scipy_result.statistic), (float(p), scipy_result.pvalue)):
        if want != 0 and abs(got - want) > 1e-5 * abs(want):
            raise SystemExit(f"scipy disagrees: {got} vs {want}")
    return {"t": float(t), "df": float(df), "p": float(p), "log_p": float(mpmath.log(p))}


def expected(values, labels):
    pairs = [(v, c) for v, c in zip(values, labels)
             if v is not None and c is not None and math.isfinite(v)]
    x1 = [v for v, c in pairs if c]
    x0 = [v for v, c in pairs if not c]
    n1, mean1, ss1 = exact_moments(x1)
    n0, mean0, ss0 = exact_moments(x0)
    out = {}

    # Welch
    if n1 >= 2 and n0 >= 2 and (ss1 / (n1 - 1) / n1 + ss0 / (n0 - 1) / n0) > 0:
        s1, s0 = ss1 / (n1 - 1) / n1, ss0 / (n0 - 1) / n0
        t = (mean1 - mean0) / mpmath.sqrt(s1 + s0)
        df = (s1 + s0) ** 2 / (s1 ** 2 / (n1 - 1) + s0 ** 2 / (n0 - 1))
        out["welch_t_test"] = t_result(t, df, scipy.stats.ttest_ind(x1, x0, equal_var=False))
    else:
        out["welch_t_test"] = None

    # Student, Cohen's d, Hedges' g: pooled variance
    pooled = (ss1 + ss0) / (n1 + n0 - 2) if n1 >= 1 and n0 >= 1 and n1 + n0 >= 3 else None
    if pooled is not None and pooled > 0:
        t = (mean1 - mean0) / mpmath.sqrt(pooled * (mpmath.mpf(1) / n1 + mpmath.mpf(1) / n0))
        df = mpmath.mpf(n1 + n0 - 2)
        out["student_t_test"] = t_result(t, df, scipy.stats.ttest_ind(x1, x0, equal_var=True))
        d = (mean1 - mean0) / mpmath.sqrt(pooled)
        out["cohens_d"] = float(d)
        m = df
        if m >= 2:
            j = mpmath.gamma(m / 2) / (mpmath.sqrt(m / 2) * mpmath.gamma((m - 1) / 2))
            out["hedges_g"] = float(d * j)
        else:
            out["hedges_g"] = None
    else:
        out["student_t_test"] = None
        out["cohens_d"] = None
        out["hedges_g"] = None

    # Fold change
    if n1 >= 1 and n0 >= 1 and mean0 != 0:
        fc = mean1 / mean0
        out["fold_change"] = float(fc)
        out["log2_fold_change"] = float(mpmath.log(fc, 2)) if fc > 0 else None
    else:
        out["fold_change"] = None
        out["log2_fold_change"] = None
    return out


def case(name, control, cases, extra=()):
    return make_case(expected, name, control, cases, extra)


def lognormal(n, mu, sigma, digits=None):
    v = rng.lognormal(mu, sigma, n)
    if digits is not None:
        v = np.array([float(f"{x:.{digits - 1}e}") for x in v])
    return v.tolist()


cases = [
    case("small, no ties", [1.2, 3.4, 2.2, 5.1, 4.4], [6.3, 7.7, 5.9, 8.1, 6.6, 9.0]),
    case("heavy ties (2 significant digits)", lognormal(80, 1.0, 0.4, 2), lognormal(25, 1.3, 0.4, 2)),
    case("large n, unequal groups", lognormal(5000, 2.0, 0.5), lognormal(400, 2.1, 0.6)),
    case("one case", [3.0, 4.0, 5.5, 6.0], [9.5]),
    case("one control, one case", [3.0], [4.0]),
    case("zero variance in both groups", [2.0, 2.0, 2.0], [2.0, 2.0]),
    case("zero variance, different means", [2.0, 2.0, 2.0], [3.0, 3.0]),
    case("zero variance in one group", [2.0, 2.0, 2.0, 2.0], [1.0, 3.0, 4.0]),
    case("no cases", [1.0, 2.0, 3.0], []),
    case("NULL, NaN and infinite rows are skipped", [1.0, 2.5, 3.0, 2.0], [4.0, 5.5, 6.0],
         extra=[(None, True), (float("nan"), True), (float("inf"), False),
                (float("-inf"), True), (7.0, None)]),
    case("p underflows: complete separation, large n",
         (rng.normal(0.0, 1.0, 3000)).tolist(), (rng.normal(40.0, 1.0, 3000)).tolist()),
    case("negative control mean (fold change < 0)", [-2.0, -1.0, -3.0], [1.0, 2.0]),
    case("large offset (numerical stability)", (1e9 + rng.normal(0, 1, 200)).tolist(),
         (1e9 + 0.5 + rng.normal(0, 1, 100)).tolist()),
]

out = {
    "generated_by": "testdata/reference/moments.py",
    "versions": {"numpy": np.__version__, "scipy": scipy.__version__, "mpmath": mpmath.__version__},
    "cases": cases,
}
path = pathlib.Path(__file__).with_name("moments.json")
path.write_text(json.dumps(out, indent=1) + "\n")
print(f"wrote {len(cases)} cases to {path}")
