#!/usr/bin/env python3
"""Reference values for wilcoxon_signed_rank's variants (udfs/src/paired.rs): the normal
approximation with and without the continuity correction (correct), and Pratt's handling of
zero differences (zero_method 'pratt') beside Wilcoxon's (zeros dropped, R's).

Writes signed_rank.json beside this file: differences (decimal strings; null / "NaN" for rows
to skip) and, for each (zero_method, correct), {statistic, p}:

- statistic = V, the sum of the ranks of the positive differences (R's V), with midranks; for
  'wilcox' the zeros are dropped before ranking, for 'pratt' they are ranked (taking the
  smallest ranks) and then dropped; exact in rational arithmetic.
- p: the two-sided normal approximation, z = (V - mean - c) / sd with c = sign(V - mean) / 2
  when correct (else 0), mean = n(n+1)/4 and var = n(n+1)(2n+1)/24 - sum(t^3 - t)/48 over ties
  among the non-zero |d|; for 'pratt' n counts the zeros and their share z0(z0+1)/4 and
  z0(z0+1)(2 z0+1)/24 is taken off (Pratt 1959, as scipy). At 60 digits with mpmath, checked
  against scipy.stats.wilcoxon(d, zero_method=..., correction=..., method='approx') to 1e-9.
  Null when no difference is non-zero.

Run:  python3 testdata/reference/signed_rank.py   (numpy, scipy, mpmath; versions recorded)
"""
import json
import math
import pathlib
from collections import Counter
from fractions import Fraction

import mpmath
import numpy as np
import scipy
import scipy.stats

mpmath.mp.dps = 60
rng = np.random.default_rng(17)


def midranks(values):
    """{value: midrank} of sorted values (1-based)."""
    order = sorted(values)
    ranks, i = {}, 0
    while i < len(order):
        j = i
        while j < len(order) and order[j] == order[i]:
            j += 1
        ranks[order[i]] = Fraction(i + 1 + j, 2)
        i = j
    return ranks


def variant(d, zero_method, correct):
    nonzero = [x for x in d if x != 0]
    if not nonzero:
        return None
    zeros = len(d) - len(nonzero)
    if zero_method == "wilcox":
        ranked, z0 = nonzero, 0
    else:
        ranked, z0 = d, zeros
    ranks = midranks([abs(x) for x in ranked])
    v = sum(ranks[abs(x)] for x in nonzero if x > 0)
    n = len(ranked)
    mean = Fraction(n * (n + 1), 4) - Fraction(z0 * (z0 + 1), 4)
    ties = sum(t ** 3 - t for t in Counter(abs(x) for x in nonzero).values() if t > 1)
    var = (Fraction(n * (n + 1) * (2 * n + 1), 24) - Fraction(z0 * (z0 + 1) * (2 * z0 + 1), 24)
           - Fraction(ties, 48))
    centred = v - mean
    c = (Fraction(1, 2) if centred > 0 else -Fraction(1, 2) if centred < 0 else 0) if correct else 0
    z = (mpmath.mpf(centred.numerator) / centred.denominator - mpmath.mpf(c.numerator) / c.denominator
         if c else mpmath.mpf(centred.numerator) / centred.denominator) / mpmath.sqrt(
        mpmath.mpf(var.numerator) / var.denominator)
    p = min(mpmath.mpf(1), 2 * mpmath.ncdf(-abs(z)))
    r = scipy.stats.wilcoxon(d, zero_method=zero_method, correction=correct, method="approx")
    if abs(float(p) - r.pvalue) > 1e-9 * r.pvalue:
        raise SystemExit(f"{zero_method}/{correct}: p {float(p)} vs scipy {r.pvalue}")
    return {"statistic": float(v), "p": float(p)}


def case(name, diffs, extra=()):
    values = [float(x) for x in diffs] + list(extra)
    d = [x for x in values if x is not None and math.isfinite(x)]
    expected = {f"{zm}_{'correct' if c else 'no_correct'}": variant(d, zm, c)
                for zm in ("wilcox", "pratt") for c in (True, False)}
    enc = [None if x is None else ("NaN" if isinstance(x, float) and math.isnan(x) else repr(x))
           for x in values]
    return {"name": name, "diffs": enc, "expected": expected}


cases = [
    case("no zeros, no ties", rng.normal(0.4, 1, 30)),
    case("zeros", [0, 0, 0, 1.5, -0.5, 2.0, 3.1, -1.2, 0.7, 2.2, 4.0, -0.1]),
    case("zeros and ties (rounded)", np.round(rng.normal(0.3, 1, 60), 1)),
    case("many zeros", [0] * 10 + [1, 2, 3, -1, 4, 5, -2, 6]),
    case("one non-zero difference", [0, 0, 2.5]),
    case("NULL and NaN rows are skipped", [1.0, -2.0, 0.0, 3.0, 4.5, -0.5],
         extra=[None, float("nan")]),
    case("every difference zero", [0, 0, 0]),
]

out = {
    "generated_by": "testdata/reference/signed_rank.py",
    "versions": {"numpy": np.__version__, "scipy": scipy.__version__, "mpmath": mpmath.__version__},
    "cases": cases,
}
path = pathlib.Path(__file__).with_name("signed_rank.json")
path.write_text(json.dumps(out, indent=1) + "\n")
print(f"wrote {len(cases)} cases to {path}")
