#!/usr/bin/env python3
"""Reference values for the exact p-values far in their tails, in exact integer arithmetic.

Writes exact_tails.json beside this file. Every p-value here is a ratio of two integers
computed exactly with Python's integers and then rounded once (`float(Fraction)` is correctly
rounded), so the references have no error of their own; Discern must match them to 1e-12
relatively at every size and every tail (tests: udfs/tests/reference_exact_tails.rs).

- mann_whitney (value, is_case; tie-free): the two-sided exact p of scipy.stats.mannwhitneyu
  (method='exact'): min(1, 2 P(U >= max(U1, U0))), U1 = U of the cases, from the number of label
  arrangements of m cases and n controls with each U, the coefficients of the Gaussian binomial
  prod_{i=1..m} (1 - q^(n+i)) / (1 - q^i), counted exactly up to the degree the tail needs.
  Sizes 1x1, 1xn, 10x10, 50x60, 200x400, 303x330 (the largest C(m+n, m) under the 100,000-pair
  limit) and 316x316, 1x100,000, each at p near 1, near 0.5, about 1e-10 and as far in the tail
  as the size allows (U = 0: 2 / C(m+n, m)). A case is a string of labels in the order of the
  values ("1" a case, "0" a control); the test gives position k the value k. (Samples with
  ties: exact_ties.py.)
- wilcoxon_signed_rank (diff; no ties, no zeros; method 'exact'): R's two-sided exact p,
  min(1, 2 P(V <= v)) below the centre and min(1, 2 P(V >= v)) above, from the number of
  subsets of {1..n} with each sum (exact integers; a polynomial packed into one integer),
  n = 1, 10, 49, 50, 200 and 1000 (Discern's limit), near 1, near 0.5 and far out (V = 0:
  2 / 2^n). A case is a string of signs by rank ("+" positive); the test gives rank k the
  difference +k or -k.
- ks_test (two samples, method 'exact'): R's psmirnov (exact = TRUE, with the ties): P(D >= d)
  = 1 - (lattice paths that stay strictly inside |u n - v m| < d m n at the end of every run of
  equal pooled values) / C(m+n, m), counted exactly. Tie-free and tied samples of 10x10, 50x60,
  200x400 and 1000x1000, from p near 1 to complete separation (2 / C(m+n, m); below 1e-300 and
  0 for 1000x1000, whose 4.9e-601 is not a double). A case is a label string and the sizes of
  its runs of equal values (null: no ties); the test gives run r the value r.
- fisher_exact (exposed, is_case): R's two-sided p, the sum of the hypergeometric
  probabilities (given the margins) no larger than the observed table's times 1 + 1e-7, each
  an exact fraction C(K, x) C(N - K, n - x) / C(N, n); tables from 2x2 to tens of thousands of
  rows, down to p = 7.4e-300 and one below f64's range (0).

Run:  python3 testdata/reference/exact_tails.py   (scipy for the cross-check only; takes a
few minutes)
"""
import json
import math
import pathlib
import random
from fractions import Fraction

import numpy as np
import scipy
import scipy.stats

rng = random.Random(20261202)


def to_float(x):
    return float(x)


# ---------------------------------------------------------------------------------------------
# Mann-Whitney U

def u_lower_counts(m, n, k):
    """Counts of U = 0..k for m cases and n controls, exactly (m <= n after swapping)."""
    if m > n:
        m, n = n, m
    top = min(k, m * n)
    c = [0] * (top + 1)
    c[0] = 1
    for i in range(1, m + 1):
        for d in range(i, top + 1):          # divide by (1 - q^i)
            c[d] += c[d - i]
        step = n + i
        for d in range(top, step - 1, -1):   # multiply by (1 - q^(n+i))
            c[d] -= c[d - step]
    assert all(v >= 0 for v in c)
    return c


class UDistribution:
    """P(U <= k) for every k up to the centre, from one exact count of the lower half."""

    def __init__(self, m, n):
        self.m, self.n = m, n
        self.total = math.comb(m + n, m)
        below, self.cumulative = 0, []
        for c in u_lower_counts(m, n, m * n // 2):
            below += c
            self.cumulative.append(below)

    def p(self, u):
        """scipy's exact two-sided p for U1 = u (an integer: no ties)."""
        mn = self.m * self.n
        k = mn - max(u, mn - u)
        return min(Fraction(1), Fraction(2 * self.cumulative[k], self.total))

    def u_near(self, target):
        """The U >= mn/2 whose p is the largest not above `target` (p falls as U rises)."""
        mn = self.m * self.n
        k = max((k for k, c in enumerate(self.cumulative)
                 if Fraction(2 * c, self.total) <= target), default=0)
        return mn - k


def labels_with_u(m, n, u):
    """A label string (by increasing value) with U1 = u: the q highest cases above every
    control, one case above r controls, the rest below all."""
    q, r = divmod(u, n)
    if q == m:
        q, r = m - 1, n
    below = [n] * q + ([r] if q < m else [])
    below += [0] * (m - len(below))
    assert sum(below) == u
    # Controls in order; a case with c controls below it goes after control c.
    slots = [[] for _ in range(n + 1)]
    for b in below:
        slots[b].append("1")
    out = []
    for c in range(n + 1):
        out.extend(slots[c])
        if c < n:
            out.append("0")
    return "".join(out)


def u_of(labels):
    controls, u = 0, 0
    for x in labels:
        if x == "0":
            controls += 1
        else:
            u += controls
    return u


def mw_case(name, labels, dist):
    u = u_of(labels)
    assert labels.count("1") == dist.m and labels.count("0") == dist.n
    return {"name": name, "labels": labels, "u": u, "p": to_float(dist.p(u))}


mann_whitney = []
for m, n in [(1, 1), (1, 50), (10, 10), (50, 60), (200, 400), (303, 330), (316, 316),
             (1, 100_000)]:
    dist = UDistribution(m, n)
    mn = m * n
    picks = {"p near 1": mn // 2, "p near 0.5": dist.u_near(0.5)}
    if mn >= 200:
        picks["p near 1e-10"] = dist.u_near(1e-10)
    picks["U = 0, the smallest p"] = 0
    picks["U = mn, the smallest p"] = mn
    for what, u in picks.items():
        labels = labels_with_u(m, n, u)
        assert u_of(labels) == u
        mann_whitney.append(mw_case(f"{m} cases x {n} controls, {what}", labels, dist))
        print("mann_whitney", m, n, what, mann_whitney[-1]["p"], flush=True)

# The example has ties: its exact p is in exact_ties.py (the distribution given the
# ties).

# ---------------------------------------------------------------------------------------------
# Wilcoxon signed rank

def signed_rank_lower(n, k):
    """Number of subsets of {1..n} with sum s, for s = 0..k: one integer holds the polynomial,
    each coefficient in its own field of whole bytes (the counts stay below 2^n)."""
    width = 8 * ((n + 8) // 8)
    mask = (1 << ((k + 1) * width)) - 1
    poly = 1
    for j in range(1, min(n, k) + 1):
        poly = (poly + (poly << (j * width))) & mask
    size = width // 8
    raw = poly.to_bytes((k + 1) * size, "little")
    return [int.from_bytes(raw[s * size:(s + 1) * size], "little") for s in range(k + 1)]


class SignedRankDistribution:
    """P(V <= k) for every k up to the centre."""

    def __init__(self, n):
        self.n = n
        self.top = n * (n + 1) // 2
        below, self.cumulative = 0, []
        for c in signed_rank_lower(n, self.top // 2):
            below += c
            self.cumulative.append(below)

    def p(self, v):
        k = self.top - v if 2 * v > self.top else v
        return min(Fraction(1), Fraction(2 * self.cumulative[k], 2 ** self.n))


def signs_with_v(n, v):
    """Signs by rank ("+" positive) whose positive ranks sum to v (greedy from the top)."""
    signs = ["-"] * n
    left = v
    for r in range(n, 0, -1):
        if r <= left:
            signs[r - 1] = "+"
            left -= r
    assert left == 0
    return "".join(signs)


signed_rank = []
for n in [1, 10, 49, 50, 200, 1000]:
    dist = SignedRankDistribution(n)
    top = dist.top
    sigma = math.sqrt(n * (n + 1) * (2 * n + 1) / 24)
    picks = {"p near 1": top // 2,
             "p near 0.5": max(0, round(top / 2 - 0.674 * sigma)),
             "V = 0, the smallest p": 0, "V = n(n+1)/2, the smallest p": top}
    if n >= 50:
        picks["p near 1e-10"] = max(0, round(top / 2 - 6.4 * sigma))
    for what, v in picks.items():
        p = dist.p(v)
        signed_rank.append({"name": f"n = {n}, {what}", "signs": signs_with_v(n, v), "v": v,
                            "p": to_float(p)})
        print("signed_rank", n, what, to_float(p), flush=True)
# scipy agrees where its exact distribution is used (n <= 50 here).
for c in signed_rank:
    n = len(c["signs"])
    if n <= 50:
        d = [(k + 1) * (1 if s == "+" else -1) for k, s in enumerate(c["signs"])]
        r = scipy.stats.wilcoxon(d, method="exact")
        assert abs(r.pvalue / c["p"] - 1) < 1e-9, (c["name"], r.pvalue, c["p"])

# ---------------------------------------------------------------------------------------------
# Kolmogorov-Smirnov (exact, with ties)

def ks_exact(labels, runs):
    """(d, p): D and P(D >= d) given the runs of equal values, exactly."""
    m, n = labels.count("1"), labels.count("0")
    runs = runs or [1] * (m + n)
    ends = set()
    position = 0
    for r in runs:
        position += r
        ends.add(position)
    u = v = 0
    dmn = 0
    for k, x in enumerate(labels, start=1):
        if x == "1":
            u += 1
        else:
            v += 1
        if k in ends:
            dmn = max(dmn, abs(u * n - v * m))
    counts = [1] + [0] * m
    for k in range(1, m + n + 1):
        new = [0] * (m + 1)
        for uu in range(max(0, k - n), min(k, m) + 1):
            c = (counts[uu - 1] if uu >= 1 else 0) + (counts[uu] if k - uu >= 1 else 0)
            if k in ends and abs(uu * n - (k - uu) * m) >= dmn:
                c = 0
            new[uu] = c
        counts = new
    p = Fraction(1) if dmn == 0 else 1 - Fraction(counts[m], math.comb(m + n, m))
    return Fraction(dmn, m * n), p


def shifted_labels(m, n, shift, ties=None):
    """Labels (and runs) of m cases from N(shift, 1) and n controls from N(0, 1), rounded to
    `ties` decimals when given."""
    xs = [(rng.gauss(shift, 1), "1") for _ in range(m)] + [(rng.gauss(0, 1), "0")
                                                          for _ in range(n)]
    if ties is not None:
        xs = [(round(x, ties), c) for x, c in xs]
    xs.sort()
    labels = "".join(c for _, c in xs)
    if ties is None:
        return labels, None
    runs, start = [], 0
    for k in range(1, len(xs) + 1):
        if k == len(xs) or xs[k][0] != xs[start][0]:
            runs.append(k - start)
            start = k
    return labels, runs


ks = []
for m, n in [(10, 10), (50, 60), (200, 400), (1000, 1000)]:
    picks = [("no ties, p near 1", *shifted_labels(m, n, 0.0)),
             ("no ties, shifted by 1", *shifted_labels(m, n, 1.0)),
             ("ties (1 decimal), shifted by 1.5", *shifted_labels(m, n, 1.5, ties=1)),
             ("complete separation", "0" * n + "1" * m, None),
             ("complete separation with tied runs", "0" * n + "1" * m,
              [2] * ((m + n) // 2) + [1] * ((m + n) % 2))]
    for what, labels, runs in picks:
        d, p = ks_exact(labels, runs)
        ks.append({"name": f"{m} cases x {n} controls, {what}", "labels": labels, "runs": runs,
                   "d": to_float(d), "p": to_float(p)})
        print("ks", m, n, what, to_float(p), flush=True)
for c in ks:  # scipy's exact method ignores ties; compare where there are none
    if c["runs"] is None and len(c["labels"]) <= 700:
        x = [k for k, s in enumerate(c["labels"]) if s == "1"]
        y = [k for k, s in enumerate(c["labels"]) if s == "0"]
        r = scipy.stats.ks_2samp(x, y, method="exact")
        assert abs(r.pvalue - c["p"]) <= 1e-9 * c["p"] + 1e-14, (c["name"], r.pvalue, c["p"])

# ---------------------------------------------------------------------------------------------
# Fisher's exact test

def fisher_p(a, b, c, d):
    cases, controls, exposed = a + b, c + d, a + c
    lo, hi = max(0, exposed - controls), min(exposed, cases)
    terms = {x: math.comb(cases, x) * math.comb(controls, exposed - x) for x in range(lo, hi + 1)}
    total = sum(terms.values())
    observed = terms[a]
    # d(x) <= d(a) * (1 + 1e-7), exactly: 10^7 d(x) <= (10^7 + 1) d(a).
    tail = sum(t for t in terms.values() if 10**7 * t <= (10**7 + 1) * observed)
    return min(Fraction(1), Fraction(tail, total))


fisher = []
for name, table in [
    ("2x2, p = 1", (1, 1, 1, 1)),
    ("small (7, 3, 2, 8)", (7, 3, 2, 8)),
    ("moderate (200, 50, 40, 300)", (200, 50, 40, 300)),
    ("symmetric, tied terms on both sides (30, 10, 10, 30)", (30, 10, 10, 30)),
    ("large, strong (5000, 4000, 4000, 5000)", (5000, 4000, 4000, 5000)),
    ("rare exposure (40, 2000, 1, 3000)", (40, 2000, 1, 3000)),
    ("far tail (300, 20, 25, 300)", (300, 20, 25, 300)),
    ("complete, 500 + 500: 2 / C(1000, 500)", (500, 0, 0, 500)),
    ("complete, 600 + 600: below f64's range", (600, 0, 0, 600)),
    ("unbalanced, far tail (3, 9000, 20, 3)", (3, 9000, 20, 3)),
]:
    p = fisher_p(*table)
    fisher.append({"name": name, "table": list(table), "p": to_float(p)})
    print("fisher", name, to_float(p), flush=True)
for c in fisher:
    a, b, cc, d = c["table"]
    r = scipy.stats.fisher_exact([[a, b], [cc, d]])
    if c["p"] > 1e-290:
        assert abs(r.pvalue / c["p"] - 1) <= 1e-9, (c["name"], r.pvalue, c["p"])

out = {
    "generated_by": "testdata/reference/exact_tails.py",
    "versions": {"python": ".".join(map(str, __import__("sys").version_info[:3])),
                 "numpy": np.__version__, "scipy": scipy.__version__},
    "mann_whitney": mann_whitney,
    "signed_rank": signed_rank,
    "ks": ks,
    "fisher": fisher,
}
path = pathlib.Path(__file__).with_name("exact_tails.json")
path.write_text(json.dumps(out, indent=1) + "\n")
print(f"wrote {path}")
