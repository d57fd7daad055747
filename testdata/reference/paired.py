#!/usr/bin/env python3
"""Reference values for paired_t_test (udfs/src/paired.rs).

Writes paired.json beside this file: differences (decimal strings; null / "NaN" / "Infinity"
for rows to skip) and {statistic, p}: t and p computed with mpmath at 60 digits from the exact
moments (p = I_{df/(df+t^2)}(df/2, 1/2)), cross-checked against scipy.stats.ttest_1samp(d, 0)
to 1e-9. Undefined (fewer than 2 differences, all equal) is null.

Run:  python3 testdata/reference/paired.py   (numpy, scipy, mpmath; versions are recorded)
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
rng = np.random.default_rng(3)


def expected(values, _labels):
    d = [mpmath.mpf(v) for v in values if v is not None and math.isfinite(v)]
    n = len(d)
    if n < 2:
        return {"paired_t_test": None}
    mean = mpmath.fsum(d) / n
    var = mpmath.fsum([(x - mean) ** 2 for x in d]) / (n - 1)
    if var == 0:
        return {"paired_t_test": None}
    t = mean / mpmath.sqrt(var / n)
    df = mpmath.mpf(n - 1)
    p = mpmath.betainc(df / 2, mpmath.mpf(1) / 2, 0, df / (df + t * t), regularized=True)
    r = scipy.stats.ttest_1samp([float(x) for x in d], 0.0)
    for got, want in ((float(t), r.statistic), (float(p), r.pvalue)):
        if want != 0 and abs(got - want) > 1e-9 * abs(want):
            raise SystemExit(f"scipy disagrees: {got} vs {want}")
    return {"paired_t_test": {"statistic": float(t), "p": float(p)}}


def case(name, diffs):
    return make_case(expected, name, diffs, [])


cases = [
    case("small", [0.5, 1.2, -0.3, 0.8, 1.1, 0.4]),
    case("negative mean", (rng.normal(-0.3, 1.0, 40)).tolist()),
    case("large n", (rng.normal(0.05, 1.0, 20000)).tolist()),
    case("NULL, NaN and infinite rows are skipped",
         [0.5, None, 1.2, float("nan"), -0.3, float("inf"), 0.8]),
    case("one difference", [0.7]),
    case("all differences equal", [0.2, 0.2, 0.2]),
    case("strong effect (p around 1e-90)", (rng.normal(5.0, 0.1, 50)).tolist()),
]
out = {
    "generated_by": "testdata/reference/paired.py",
    "versions": {"numpy": np.__version__, "scipy": scipy.__version__, "mpmath": mpmath.__version__},
    "cases": cases,
}
path = pathlib.Path(__file__).with_name("paired.json")
path.write_text(json.dumps(out, indent=1) + "\n")
print(f"wrote {len(cases)} cases to {path}")
