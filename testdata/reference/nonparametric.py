#!/usr/bin/env python3
"""Reference values for ks_test (two-sample) and wilcoxon_signed_rank (one-sample).

Writes nonparametric.json beside this file. R (Rscript with jsonlite, run by this script on the
R program below; doubles travel to and from R as C99 hex floats, so exactly) is the oracle:
ks.test(cases, controls) and wilcox.test(diff, mu = 0, correct = TRUE). Every "expected" number
is recomputed here from R's algorithm in exact rational arithmetic / mpmath (60 digits) and
checked against R's own output (kept under "r" of each case: "NaN" as a word, {"error": ...}
when R refuses, R's warnings, null where R was not asked) and against scipy where scipy agrees
by design. Rows whose value is NULL, NaN or infinite, or whose label is NULL, are skipped before
anything is computed (R itself would keep infinities); no rows left in a group: null.
Expected values are finite; a struct whose fields would all be null is written as null.

two_sample (value, is_case as in ranks.json) -> "ks_test": {auto, exact, asymptotic}, each {d, p}:
- d = max |F_case - F_control| over the distinct pooled values, exactly (R sums +-1/n in floating
  point, so its d can be an ulp off; checked to 1e-12).
- exact: R's psmirnov(d, sizes, z = pooled values, exact = TRUE, lower.tail = FALSE), i.e.
  p = P(D >= d) = 1 - #{lattice paths with |u/m - v/n| < d at every step that ends a run of equal
  pooled values} / choose(m + n, m) -- ties taken into account. Computed with exact integer path
  counts (R computes 1 - count/choose in doubles, so its small p-values lose digits; checked
  to 1e-12 absolute).
- asymptotic: R's 1 - pkolmogorov(sqrt(m n / (m + n)) d) as its C code pKS2(x, tol = 1e-6) does
  it: for x < 1 only the first term of the theta series, sqrt(2 pi)/x exp(-pi^2 / (8 x^2)) (its
  term bound k_max = (int) sqrt(2 - log(tol)) = 3 keeps only k = 1); for x >= 1,
  1 + 2 sum_k (-1)^k exp(-2 k^2 x^2) until a term is <= 1e-6; p = 1 when d = 0. Evaluated at 60
  digits (p taken as the tail sum itself for x >= 1: R's 1 - (1 - tail) in doubles loses small
  p-values). "kolmogorov_limit_p" is the untruncated 1 - K(x) (scipy.stats.kstwobign.sf), which
  differs from R's by up to 4e-5 for x just below 1.
- auto: R's rule, exact when m * n < 10000 (ties or not), asymptotic otherwise.
- scipy.stats.ks_2samp(method='exact') ignores ties: checked only on tie-free cases.

one_sample (a list "diff") -> "wilcoxon_signed_rank": {auto, exact, asymptotic}, each
{statistic, p}: R's wilcox.test(diff, mu = 0, exact = NULL / TRUE / FALSE, correct = TRUE):
- zeros are dropped first; n = the number of non-zero differences; statistic V = the sum of the
  mid-ranks of |diff| over the positive differences (R's V, also with ties).
- the exact null distribution is used when requested (auto: n < 50 without ties or zeros);
  p = min(1, 2 P(T <= V)) if V <= n(n+1)/4, else min(1, 2 P(T >= V)); computed with exact
  integer counts (n <= 100) or a normalised float recursion (n = 2000: R's psignrank
  overflows there and returns NaN). With ties or zeros R's wilcox.test falls back to the
  normal approximation; Discern's 'exact' is then the distribution given the ties
  (exactRankTests::wilcox.exact), counted exactly by exact_ties.py (up to n = 1000).
- otherwise the normal approximation: z = (V - n(n+1)/4 - sign(V - n(n+1)/4)/2) / sigma,
  sigma^2 = n(n+1)(2n+1)/24 - sum(t^3 - t)/48 over tie groups of |diff|, p = 2 Phi(-|z|).
- no non-zero difference left: null (R: V = 0 with p NaN, or an error when no row is left).
- checked against scipy.stats.wilcoxon(zero_method='wilcox', correction=True), whose two-sided
  statistic is min(V, n(n+1)/2 - V) and whose 'auto' differs from R's (see the report).

Run:  python3 testdata/reference/nonparametric.py   (R with jsonlite; numpy, scipy, mpmath;
versions are recorded)
"""
import json
import math
import pathlib
import subprocess
import tempfile
from collections import Counter
from fractions import Fraction

import mpmath
from exact_ties import signed_rank_p
import numpy as np
import scipy
import scipy.stats

from common import encode

mpmath.mp.dps = 60
rng = np.random.default_rng(5)
HERE = pathlib.Path(__file__).parent

R_PROGRAM = r"""
suppressPackageStartupMessages(library(jsonlite))
args <- commandArgs(TRUE)
inp <- fromJSON(args[1], simplifyVector = FALSE)
h <- function(x) {
  x <- unname(as.numeric(x))
  if (length(x) != 1L) stop("scalar expected")
  if (is.nan(x)) "NaN" else if (is.na(x)) "NA" else if (is.infinite(x)) {
    if (x > 0) "Infinity" else "-Infinity" } else sprintf("%a", x)
}
num <- function(v) as.numeric(unlist(v))
run <- function(expr) {
  warnings <- character()
  value <- withCallingHandlers(
    tryCatch(expr, error = function(e) list(error = conditionMessage(e))),
    warning = function(w) { warnings <<- c(warnings, conditionMessage(w)); invokeRestart("muffleWarning") })
  if (length(warnings)) value$warnings <- as.list(warnings)
  value
}
ks <- function(x, y, exact) run({
  r <- ks.test(x, y, exact = exact)
  list(d = h(r$statistic), p = h(r$p.value), method = r$method)
})
two_sample <- lapply(inp$two_sample, function(case) {
  x <- num(case$cases); y <- num(case$controls)
  list(echo = lapply(c(x, y), h),
       auto = ks(x, y, NULL),
       # beyond choose(m + n, m) ~ 1e300 R's path count overflows and it falls back to Monte Carlo
       exact = if (lchoose(length(x) + length(y), length(x)) < 690) ks(x, y, TRUE),
       asymptotic = ks(x, y, FALSE))
})
wil <- function(d, exact) run({
  r <- wilcox.test(d, mu = 0, exact = exact, correct = TRUE)
  list(statistic = h(r$statistic), p = h(r$p.value), method = r$method)
})
one_sample <- lapply(inp$one_sample, function(case) {
  d <- num(case$diff)
  list(echo = lapply(d, h), auto = wil(d, NULL), exact = wil(d, TRUE), asymptotic = wil(d, FALSE))
})
writeLines(toJSON(list(version = R.version.string, jsonlite = as.character(packageVersion("jsonlite")),
                       two_sample = two_sample, one_sample = one_sample),
                  auto_unbox = TRUE, null = "null", digits = NA), args[2])
"""


def json_safe(v):
    """Infinities as the strings "Infinity" / "-Infinity" (JSON has no such numbers)."""
    if isinstance(v, dict):
        return {k: json_safe(x) for k, x in v.items()}
    if isinstance(v, list):
        return [json_safe(x) for x in v]
    if isinstance(v, float) and math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    if isinstance(v, float) and math.isnan(v):
        raise SystemExit("NaN in the output: undefined results must be null")
    return v


def run_r(payload):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        (tmp / "prog.R").write_text(R_PROGRAM)
        (tmp / "in.json").write_text(json.dumps(payload))
        subprocess.run(["Rscript", "--vanilla", str(tmp / "prog.R"), str(tmp / "in.json"),
                        str(tmp / "out.json")], check=True)
        return json.loads((tmp / "out.json").read_text())


def decode_r(v):
    if isinstance(v, dict):
        return {k: decode_r(x) for k, x in v.items()}
    if isinstance(v, list):
        return [decode_r(x) for x in v]
    if isinstance(v, str) and v.lstrip("-").startswith("0x"):
        return float.fromhex(v)
    return v


def close(got, want, what, rel=0.0, abs_tol=0.0):
    if isinstance(got, str):
        got = {"Infinity": math.inf, "-Infinity": -math.inf}.get(got, math.nan)
    if not abs(got - want) <= rel * abs(want) + abs_tol:
        raise SystemExit(f"{what}: {got!r} vs {want!r}")


def hexes(xs):
    return [float(x).hex() for x in xs]


def kept(values, labels):
    return [(v, c) for v, c in zip(values, labels)
            if v is not None and c is not None and math.isfinite(v)]


# ---------------------------------------------------------------------------------------------
# Kolmogorov-Smirnov, two samples

def ks_statistic(x, y):
    """D * m * n (an integer) and the list of 'a run of equal pooled values ends here' flags."""
    m, n = len(x), len(y)
    pooled = sorted([(v, 0) for v in x] + [(v, 1) for v in y])
    u = v = 0
    dmn = 0
    ends = []
    for k, (value, which) in enumerate(pooled):
        if which == 0:
            u += 1
        else:
            v += 1
        end = k == len(pooled) - 1 or pooled[k + 1][0] != value
        ends.append(end)
        if end:
            dmn = max(dmn, abs(u * n - v * m))
    return dmn, ends


def ks_exact_p(m, n, dmn, ends):
    """P(D >= d): R's psmirnov(exact = TRUE, z = pooled) with exact integer path counts."""
    counts = [1] + [0] * m  # counts[u]: paths reaching (u, k - u) inside the band so far
    for k in range(1, m + n + 1):
        new = [0] * (m + 1)
        for u in range(max(0, k - n), min(k, m) + 1):
            c = (counts[u - 1] if u >= 1 else 0) + (counts[u] if k - u >= 1 else 0)
            if ends[k - 1] and abs(u * n - (k - u) * m) >= dmn:
                c = 0
            new[u] = c
        counts = new
    return 1 - Fraction(counts[m], math.comb(m + n, m))


def r_pks2_upper(x):
    """1 - pKS2(x, tol = 1e-6) as R 4.2's C code computes pKS2, at 60 digits."""
    tol = mpmath.mpf(1e-6)
    if x == 0:
        return mpmath.mpf(1)  # R: ret[q < .Machine$double.eps] <- 0
    if x < 1:
        k_max = int(math.sqrt(2 - math.log(1e-6)))  # 3
        s = mpmath.fsum(mpmath.exp(-k * k * mpmath.pi ** 2 / (8 * x * x) - mpmath.log(x))
                        for k in range(1, k_max, 2))
        return 1 - s * mpmath.sqrt(2 * mpmath.pi)
    tail, k = mpmath.mpf(0), 1  # 1 - new, summed directly
    while True:
        term = 2 * mpmath.exp(-2 * k * k * x * x)
        tail += term if k % 2 == 1 else -term
        if term <= tol:
            return tail
        k += 1


def kolmogorov_sf(x):
    if x == 0:
        return mpmath.mpf(1)
    if x < 1:
        s = mpmath.nsum(lambda j: mpmath.exp(-(2 * j - 1) ** 2 * mpmath.pi ** 2 / (8 * x * x)),
                        [1, mpmath.inf])
        return 1 - mpmath.sqrt(2 * mpmath.pi) / x * s
    return 2 * mpmath.nsum(lambda k: (-1) ** (k - 1) * mpmath.exp(-2 * k * k * x * x),
                           [1, mpmath.inf])


def ks_expected(values, labels):
    rows = kept(values, labels)
    x = [v for v, c in rows if c]      # cases
    y = [v for v, c in rows if not c]  # controls
    if not x or not y:
        return {"ks_test": {"auto": None, "exact": None, "asymptotic": None},
                "kolmogorov_limit_p": None}, x, y
    m, n = len(x), len(y)
    dmn, ends = ks_statistic(x, y)
    d = float(Fraction(dmn, m * n))
    p_exact = float(ks_exact_p(m, n, dmn, ends))
    xq = mpmath.sqrt(mpmath.mpf(m * n) / (m + n)) * mpmath.mpf(dmn) / (m * n)
    p_asym = float(r_pks2_upper(xq))
    limit = kolmogorov_sf(xq)
    close(scipy.stats.kstwobign.sf(float(xq)), float(limit), "scipy kstwobign", rel=1e-9,
          abs_tol=1e-300)
    exact, asym = {"d": d, "p": p_exact}, {"d": d, "p": p_asym}
    if len(set(x + y)) == m + n:  # scipy's exact ignores ties
        r = scipy.stats.ks_2samp(x, y, method="exact")
        close(r.statistic, d, "scipy D", abs_tol=1e-15)
        close(r.pvalue, p_exact, "scipy exact p", rel=1e-9, abs_tol=1e-15)
    return {"ks_test": {"auto": exact if m * n < 10000 else asym, "exact": exact,
                        "asymptotic": asym},
            "kolmogorov_limit_p": float(limit)}, x, y


# ---------------------------------------------------------------------------------------------
# Wilcoxon signed rank, one sample

def midranks(a):
    """Mid-ranks (as Fractions) of the doubles in a, and the tie-group sizes."""
    order = sorted(range(len(a)), key=lambda i: a[i])
    ranks = [Fraction(0)] * len(a)
    groups = []
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and a[order[j + 1]] == a[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = Fraction(i + j + 2, 2)
        groups.append(j - i + 1)
        i = j + 1
    return ranks, groups


def signrank_cdf_pair(n, v):
    """(P(T <= v), P(T >= v)) for the signed-rank statistic T of n untied non-zero values."""
    top = n * (n + 1) // 2
    if n <= 100:
        c = [1] + [0] * top
        for i in range(1, n + 1):
            for k in range(i * (i + 1) // 2, i - 1, -1):
                c[k] += c[k - i]
        total = 2 ** n
        return Fraction(sum(c[:v + 1]), total), Fraction(sum(c[v:]), total)
    p = np.zeros(top + 1)
    p[0] = 1.0
    for i in range(1, n + 1):
        hi = i * (i + 1) // 2
        p[i:hi + 1] = (p[i:hi + 1] + p[:hi + 1 - i]) / 2
        p[:i] /= 2
    return math.fsum(p[:v + 1]), math.fsum(p[v:])


def wilcoxon_expected(diff):
    d = [v for v in diff if v is not None and math.isfinite(v)]
    zeros = any(v == 0 for v in d)
    d = [v for v in d if v != 0]
    n = len(d)
    if n == 0:
        return {"wilcoxon_signed_rank": {"auto": None, "exact": None, "asymptotic": None}}, d
    ranks, groups = midranks([abs(v) for v in d])
    V = sum(r for r, v in zip(ranks, d) if v > 0)
    ties = any(g > 1 for g in groups)
    mean = Fraction(n * (n + 1), 4)

    z0 = V - mean
    var = Fraction(n * (n + 1) * (2 * n + 1), 24) - Fraction(sum(g ** 3 - g for g in groups), 48)
    corr = Fraction(1, 2) * (1 if z0 > 0 else -1 if z0 < 0 else 0)
    z = mpmath.mpf((z0 - corr).numerator) / (z0 - corr).denominator / mpmath.sqrt(
        mpmath.mpf(var.numerator) / var.denominator)
    normal = {"statistic": float(V), "p": float(mpmath.erfc(abs(z) / mpmath.sqrt(2)))}

    exact = normal
    if ties or zeros:
        exact = ({"statistic": float(V), "p": float(signed_rank_p(d, "wilcox")[0])}
                 if n <= 1000 else None)
    if not ties and not zeros:
        lower, upper = signrank_cdf_pair(n, int(V))
        p = lower if V <= mean else upper
        exact = {"statistic": float(V), "p": float(min(1, 2 * p))}

    # scipy: the same normal approximation; the same exact distribution without ties or zeros
    sc = scipy.stats.wilcoxon(d, zero_method="wilcox", correction=True, method="asymptotic")
    close(sc.pvalue, normal["p"], "scipy asymptotic p", rel=1e-9, abs_tol=1e-300)
    close(sc.statistic, float(min(V, 2 * mean - V)), "scipy statistic")
    if not ties and not zeros:
        sc = scipy.stats.wilcoxon(d, zero_method="wilcox", correction=True, method="exact")
        # (scipy's exact p has absolute, not relative, accuracy: 0 for n = 200, all positive)
        close(sc.pvalue, exact["p"], "scipy exact p (wilcoxon)", rel=1e-9, abs_tol=1e-15)
    auto = exact if n < 50 and not ties and not zeros else normal
    return {"wilcoxon_signed_rank": {"auto": auto, "exact": exact, "asymptotic": normal,
                                     "r_exact_is_normal": ties or zeros}}, d


# ---------------------------------------------------------------------------------------------
# cases

def rounded(v, digits):
    return [float(f"{x:.{digits - 1}e}") for x in v]


def normal(mu, sd, size):
    return rng.normal(mu, sd, size).tolist()


two_sample_inputs = [
    ("small, no ties", [1.2, 3.4, 2.2, 5.1, 4.4], [6.3, 7.7, 5.9, 8.1, 4.9, 9.0], ()),
    ("small, interleaved", [0.3, 1.9, 2.5, 4.1, 5.2, 6.6, 7.0],
     [1.1, 2.0, 3.3, 4.4, 5.0, 8.2], ()),
    ("heavy ties (2 significant digits), exact with ties",
     rounded(rng.lognormal(1.0, 0.4, 12), 2), rounded(rng.lognormal(1.3, 0.4, 15), 2), ()),
    ("values in {1, 2, 3, 4}, exact with ties", rng.integers(1, 5, 20).astype(float).tolist(),
     rng.integers(2, 5, 25).astype(float).tolist(), ()),
    ("m n = 9999, no ties (auto = exact)", normal(0, 1, 99), normal(0.3, 1, 101), ()),
    ("m n = 9999, ties (auto = exact with ties)", rounded(normal(0, 1, 101), 2),
     rounded(normal(0.25, 1, 99), 2), ()),
    ("m n = 10000 (auto = asymptotic)", normal(0, 1, 100), normal(0.3, 1, 100), ()),
    ("sqrt(m n/(m + n)) d = 0.99: R's one-term series is 3.6e-5 below the Kolmogorov limit",
     [float(i) for i in range(100)], [i + 13.5 for i in range(100)], ()),
    ("m n = 10100, ties (auto = asymptotic)", rounded(normal(0, 1, 101), 2),
     rounded(normal(0.3, 1, 100), 2), ()),
    ("large n", normal(0, 1, 2000), normal(0.15, 1.1, 300), ()),
    ("one case", [3.0, 4.0, 5.5, 6.0], [9.5], ()),
    ("one case among ties", [3.0, 4.0, 4.0, 6.0], [4.0], ()),
    ("identical samples (d = 0)", [1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0], ()),
    ("same distribution", normal(5, 2, 40), normal(5, 2, 35), ()),
    ("complete separation, small", [1.0, 2.0, 3.0, 4.0, 5.0], [6.0, 7.0, 8.0, 9.0, 10.0, 11.0], ()),
    ("complete separation, 30 against 40", normal(0, 1, 40), normal(10, 1, 30), ()),
    ("every value tied", [2.0, 2.0, 2.0], [2.0, 2.0], ()),
    ("no cases", [1.0, 2.0, 3.0], [], ()),
    ("NULL, NaN and infinite rows are skipped", [1.0, 2.5, 3.0, 2.0, 0.5],
     [4.0, 5.5, 6.0, 2.0, 3.5],
     ((None, True), (float("nan"), True), (float("inf"), False), (float("-inf"), True),
      (7.0, None), (None, None))),
]

one_sample_inputs = [
    ("small, no ties", [0.5, 1.2, -0.3, 0.8, 1.1, 0.4, -0.9, 2.1]),
    ("small, V below its mean", [-0.5, -1.2, 0.3, -0.8, -1.1, 0.4, -0.9, -2.1, 0.15]),
    ("ties (1 decimal)", rounded(normal(0.3, 1, 20), 2)),
    ("zeros (n = 15, 2 zeros)", [0.8, -0.2, 1.5, 0.0, 2.2, 1.1, -0.7, 0.35, 1.9, 0.0, 0.6, -1.3,
                                 2.7, 0.45, 1.25]),
    ("zeros, small n (scipy's auto differs)", [0.0, 1.1, -0.4, 2.3, 0.9, 1.7, -0.2, 3.1, 0.6, 1.4]),
    ("all |diff| tied", [1.0, -1.0, 1.0, 1.0, -1.0]),
    ("V at its mean (p = 1)", [1.0, -1.0, 2.0, -2.0]),
    ("all zeros", [0.0, 0.0, 0.0]),
    ("one difference", [0.7]),
    ("one negative difference", [-0.7]),
    ("n = 49 (auto = exact)", normal(0.25, 1, 49)),
    ("n = 50 (auto = normal in R, exact in scipy)", normal(0.25, 1, 50)),
    ("n = 51 (auto = normal)", normal(0.25, 1, 51)),
    ("large n", normal(0.05, 1, 2000)),
    ("all positive, n = 30", np.abs(normal(1, 1, 30)).tolist()),
    ("all positive, n = 200", np.abs(normal(1, 1, 200)).tolist()),
    ("NULL, NaN and infinite rows are skipped",
     [0.5, None, 1.2, float("nan"), -0.3, float("inf"), 0.8, float("-inf"), 2.2, -1.4]),
    ("no rows left", [None, float("nan")]),
]

two_sample, r_two = [], []
for name, control, cases_, extra in two_sample_inputs:
    values = list(control) + list(cases_) + [v for v, _ in extra]
    labels = [False] * len(control) + [True] * len(cases_) + [c for _, c in extra]
    expected, x, y = ks_expected(values, labels)
    two_sample.append({"name": name, "value": [encode(v) for v in values], "is_case": labels,
                       "expected": expected})
    r_two.append({"cases": hexes(x), "controls": hexes(y), "n": (len(x), len(y))})

one_sample, r_one = [], []
for name, diff in one_sample_inputs:
    expected, d = wilcoxon_expected(diff)
    one_sample.append({"name": name, "diff": [encode(v) for v in diff], "expected": expected})
    kept_d = [v for v in diff if v is not None and math.isfinite(v)]
    r_one.append({"diff": hexes(kept_d), "kept": kept_d})

# ---------------------------------------------------------------------------------------------
# R, and the comparison with it

r = decode_r(run_r({"two_sample": [{"cases": c["cases"], "controls": c["controls"]}
                                   for c in r_two],
                    "one_sample": [{"diff": c["diff"]} for c in r_one]}))

for case, sent, rr in zip(two_sample, r_two, r["two_sample"]):
    if [float.fromhex(h) for h in sent["cases"] + sent["controls"]] != rr.pop("echo"):
        raise SystemExit(f"{case['name']}: R did not read the inputs exactly")
    case["r"] = rr
    e = case["expected"]["ks_test"]
    m, n = sent["n"]
    for method in ("auto", "exact", "asymptotic"):
        got, want = rr[method], e[method]
        if want is None:
            if "error" not in got:
                raise SystemExit(f"{case['name']}: R answers {got} where null is expected")
            continue
        if got is None:  # R not asked (its exact path count would overflow)
            continue
        close(got["d"], want["d"], f"{case['name']} R {method} d", abs_tol=1e-12)
        close(got["p"], want["p"], f"{case['name']} R {method} p", abs_tol=1e-12)
        if got["p"] > 1e-4:
            close(got["p"], want["p"], f"{case['name']} R {method} p", rel=1e-9)
    if e["auto"] is not None and (m * n < 10000) != rr["auto"]["method"].startswith("Exact"):
        raise SystemExit(f"{case['name']}: R's auto rule is not m n < 10000")

for case, sent, rr in zip(one_sample, r_one, r["one_sample"]):
    if [float.fromhex(h) for h in sent["diff"]] != rr.pop("echo"):
        raise SystemExit(f"{case['name']}: R did not read the inputs exactly")
    case["r"] = rr
    e = case["expected"]["wilcoxon_signed_rank"]
    for method in ("auto", "exact", "asymptotic"):
        got, want = rr[method], e[method]
        if want is None:
            if not ("error" in got or got["p"] in ("NaN", "NA")):
                raise SystemExit(f"{case['name']}: R answers {got} where null is expected")
            continue
        close(got["statistic"], want["statistic"], f"{case['name']} R {method} V")
        if got["p"] == "NaN" and method == "exact" and len(sent["kept"]) > 1000:
            continue  # R's psignrank overflows for large n
        if method == "exact" and e["r_exact_is_normal"]:
            want = e["asymptotic"]  # R's wilcox.test falls back to the normal approximation
        close(got["p"], want["p"], f"{case['name']} R {method} p", rel=1e-11, abs_tol=1e-300)

out = {
    "generated_by": "testdata/reference/nonparametric.py",
    "versions": {"R": r["version"], "jsonlite": r["jsonlite"], "numpy": np.__version__,
                 "scipy": scipy.__version__, "mpmath": mpmath.__version__},
    "two_sample": two_sample,
    "one_sample": one_sample,
}
path = HERE / "nonparametric.json"
path.write_text(json.dumps(json_safe(out), indent=1, allow_nan=False) + "\n")
print(f"wrote {len(two_sample)} two-sample and {len(one_sample)} one-sample cases to {path}")
