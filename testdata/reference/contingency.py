#!/usr/bin/env python3
"""Reference values for the 2x2 statistics: odds_ratio, fisher_exact, chi2_test, cmh_test, mcnemar.

Writes contingency.json beside this file. R (Rscript with jsonlite, run by this script on the
R program below) is the oracle for fisher.test, chisq.test, mantelhaen.test and mcnemar.test; every
"expected" number is recomputed here in exact rational arithmetic / mpmath (60 digits) from R's
formulas and checked against R's own output, and against scipy / statsmodels where they agree
by design. R's raw answers are kept under "r" of each case ("NaN", "Infinity" as strings,
{"error": ...} when R refuses).

A 2x2 table is given as counts: a = exposed cases, b = unexposed cases, c = exposed controls,
d = unexposed controls (a test expands them into rows (exposed BOOLEAN, is_case BOOLEAN)). In R
it is matrix(c(a, c, b, d), 2): rows case / control, columns exposed / unexposed (all of the
statistics are symmetric under transposition).

- odds_ratio at levels 0.95 and 0.9: ad/bc (0 when ad = 0 < bc, Infinity when bc = 0 < ad, null
  when ad = bc = 0); Woolf interval exp(log(ad/bc) -/+ z sqrt(1/a + 1/b + 1/c + 1/d)) with z the
  (1 + level)/2 normal quantile, null bounds when any cell is 0. Checked against statsmodels
  Table2x2(...).oddsratio_confint(method='normal').
- fisher_exact: the conditional MLE and the exact 0.95 interval solved at 60 digits from the same
  equations as R's fisher.test (R's uniroot stops at tol ~1.2e-4: its estimate and bounds, kept
  under r, are only that accurate; they are checked against ours with that tolerance); the
  two-sided p = sum of the null probabilities d_k <= d_a (1 + 1e-7), as R and scipy. Checked
  against scipy.stats.fisher_exact (p) and scipy.stats.contingency.odds_ratio(kind='conditional').
- fisher_less / fisher_greater: R's fisher.test(alternative = "less" / "greater"): the one-sided
  p = P(X <= a) / P(X >= a) at odds ratio 1 (60 digits) and the one-sided 0.95 interval, each
  bound solved at alpha = 0.05 (R's uniroot checked to its tolerance); p checked against
  scipy.stats.fisher_exact(alternative = ...).
- chi2_test {yates, no_yates}: R chisq.test(correct = TRUE / FALSE) in exact arithmetic
  (Yates: |O - E| reduced by min(0.5, |O - E|)); p = chi2 upper tail with 1 df.
- A zero margin (no cases, no controls, no exposed or no unexposed rows) makes everything null
  (R: chisq NaN, fisher estimate 0 with [0, Inf] and p 1; scipy: NaN and p 1).
- A struct whose fields would all be null is written as null (the SQL value is a NULL struct).
- Infinite expected values are the strings "Infinity" / "-Infinity" (as in roc.json).
- strata (cmh_test): R mantelhaen.test(array, correct = TRUE / FALSE): statistic, p, the
  Mantel-Haenszel estimate and its Robins-Breslow-Greenland 0.95 interval. Strata with fewer
  than 2 rows are dropped (R refuses them; they add nothing to any sum); R also needs 2 strata,
  so when fewer remain, R is run with a neutral stratum (2, 0, 0, 0) added (adds 0 to every sum).
  Null: no stratum left, or a zero variance (chi2, p); 0/0 (estimate); bounds when either MH sum
  is 0.
- breslow_day {plain, tarone} (strata): the Breslow-Day statistic under the Mantel-Haenszel common
  odds ratio, each stratum's fitted count the root of A D = psi B C (60 digits), Tarone's
  correction subtracted for tarone; df = strata used - 1; strata with a zero margin left out;
  null with fewer than 2 strata or a common odds ratio of 0 or Infinity. Checked against
  statsmodels StratifiedTable.test_equal_odds(adjust = False / True) on the same strata
  (DescTools, which R users call, is not packaged for Debian 12: its formula is statsmodels').
- pairs (mcnemar): counts of matched pairs {both, case_only, control_only, neither}; R
  mcnemar.test(matrix(c(both, control_only, case_only, neither), 2), correct = TRUE / FALSE); null
  when case_only + control_only = 0.

Run:  python3 testdata/reference/contingency.py   (R with jsonlite; numpy, scipy, mpmath,
statsmodels; versions are recorded)
"""
import json
import math
import pathlib
import subprocess
import tempfile
from fractions import Fraction

import mpmath
import numpy as np
import scipy
import scipy.special
import scipy.stats
import scipy.stats.contingency
import statsmodels
from statsmodels.stats.contingency_tables import StratifiedTable, Table2x2

mpmath.mp.dps = 60
rng = np.random.default_rng(11)
HERE = pathlib.Path(__file__).parent

R_PROGRAM = r"""
suppressPackageStartupMessages(library(jsonlite))
args <- commandArgs(TRUE)
inp <- fromJSON(args[1], simplifyVector = FALSE)
# Doubles leave R as C99 hex floats (exact); NaN / NA / infinities as words.
h <- function(x) {
  x <- unname(as.numeric(x))
  if (length(x) != 1L) stop("scalar expected")
  if (is.nan(x)) "NaN" else if (is.na(x)) "NA" else if (is.infinite(x)) {
    if (x > 0) "Infinity" else "-Infinity" } else sprintf("%a", x)
}
run <- function(expr) {
  warnings <- character()
  value <- withCallingHandlers(
    tryCatch(expr, error = function(e) list(error = conditionMessage(e))),
    warning = function(w) { warnings <<- c(warnings, conditionMessage(w)); invokeRestart("muffleWarning") })
  if (length(warnings)) value$warnings <- as.list(warnings)
  value
}
m2 <- function(t) matrix(as.numeric(c(t[[1]], t[[3]], t[[2]], t[[4]])), 2)
tables <- lapply(inp$tables, function(t) {
  x <- m2(t)
  list(
    fisher_exact = run({ f <- fisher.test(x)
      list(odds_ratio = h(f$estimate), lower = h(f$conf.int[1]), upper = h(f$conf.int[2]),
           p = h(f$p.value)) }),
    fisher_less = run({ f <- fisher.test(x, alternative = "less")
      list(odds_ratio = h(f$estimate), lower = h(f$conf.int[1]), upper = h(f$conf.int[2]),
           p = h(f$p.value)) }),
    fisher_greater = run({ f <- fisher.test(x, alternative = "greater")
      list(odds_ratio = h(f$estimate), lower = h(f$conf.int[1]), upper = h(f$conf.int[2]),
           p = h(f$p.value)) }),
    chi2_test = list(
      yates = run({ r <- chisq.test(x, correct = TRUE); list(chi2 = h(r$statistic), p = h(r$p.value)) }),
      no_yates = run({ r <- chisq.test(x, correct = FALSE); list(chi2 = h(r$statistic), p = h(r$p.value)) })))
})
mh <- function(strata, correct) run({
  x <- array(as.numeric(unlist(lapply(strata, function(t) c(t[[1]], t[[3]], t[[2]], t[[4]])))),
             dim = c(2, 2, length(strata)))
  r <- mantelhaen.test(x, correct = correct)
  list(chi2 = h(r$statistic), p = h(r$p.value), odds_ratio = h(r$estimate),
       lower = h(r$conf.int[1]), upper = h(r$conf.int[2]))
})
strata <- lapply(inp$strata, function(s) list(
  as_given = list(correct = mh(s$given, TRUE), no_correct = mh(s$given, FALSE)),
  used = if (length(s$used)) list(correct = mh(s$used, TRUE), no_correct = mh(s$used, FALSE))))
pairs <- lapply(inp$pairs, function(p) {
  x <- matrix(as.numeric(c(p$both, p$control_only, p$case_only, p$neither)), 2)
  list(correct = run({ r <- mcnemar.test(x, correct = TRUE); list(chi2 = h(r$statistic), p = h(r$p.value)) }),
       no_correct = run({ r <- mcnemar.test(x, correct = FALSE); list(chi2 = h(r$statistic), p = h(r$p.value)) }))
})
writeLines(toJSON(list(version = R.version.string, jsonlite = as.character(packageVersion("jsonlite")),
                       tables = tables, strata = strata, pairs = pairs),
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
    """R's answer as JSON: hex floats to numbers; NaN and infinities stay words."""
    if isinstance(v, dict):
        return {k: decode_r(x) for k, x in v.items()}
    if isinstance(v, list):
        return [decode_r(x) for x in v]
    if isinstance(v, str) and v.lstrip("-").startswith("0x"):
        return float.fromhex(v)
    return v


def rnum(v):
    """An R number as a float (NaN for NaN / NA, infinities)."""
    if isinstance(v, float):
        return v
    return {"Infinity": math.inf, "-Infinity": -math.inf}.get(v, math.nan)


def close(got, want, rel, what, abs_tol=0.0):
    """got (R, scipy, ...) against our value `want` (None = null)."""
    if want is None:
        if not (got is None or (isinstance(got, float) and math.isnan(got))):
            raise SystemExit(f"{what}: {got} where null is expected")
        return
    if isinstance(got, str):
        got = rnum(got)
    if math.isinf(want) or want == 0:
        ok = got == want or abs(got - want) <= abs_tol
    else:
        ok = abs(got - want) <= rel * abs(want) + abs_tol
    if not ok:
        raise SystemExit(f"{what}: {got!r} vs {want!r}")


def mpq(q):
    return mpmath.mpf(q.numerator) / q.denominator


def chi2_sf_1(x):
    """Upper tail of chi-squared with 1 df at the rational x."""
    return mpmath.erfc(mpmath.sqrt(mpq(x) / 2))


def z_of(level):
    """The (1 + level)/2 normal quantile, level being the double Discern receives."""
    return mpmath.sqrt(2) * mpmath.erfinv(mpmath.mpf(level))


# ---------------------------------------------------------------------------------------------
# odds ratio (Woolf)

def woolf(a, b, c, d, level):
    ad, bc = a * d, b * c
    if ad == 0 and bc == 0:
        est = None
    elif bc == 0:
        est = math.inf
    else:
        est = float(Fraction(ad, bc))
    if est is None:
        return None
    if min(a, b, c, d) == 0:
        return {"odds_ratio": est, "lower": None, "upper": None}
    log_or = mpmath.log(mpmath.mpf(ad) / bc)
    se = mpmath.sqrt(mpq(Fraction(1, a) + Fraction(1, b) + Fraction(1, c) + Fraction(1, d)))
    z = z_of(level)
    out = {"odds_ratio": est, "lower": float(mpmath.exp(log_or - z * se)),
           "upper": float(mpmath.exp(log_or + z * se))}
    sm = Table2x2(np.array([[a, b], [c, d]], dtype=float))
    lo, hi = sm.oddsratio_confint(alpha=1 - level, method="normal")
    close(sm.oddsratio, est, 1e-13, "statsmodels odds ratio")
    close(lo, out["lower"], 1e-12, "statsmodels lower")
    close(hi, out["upper"], 1e-12, "statsmodels upper")
    return out


# ---------------------------------------------------------------------------------------------
# Fisher's exact test, as R's fisher.test, at 60 digits

class Conditional:
    """The (noncentral) hypergeometric distribution of a given the margins, as in fisher.test:
    m = a + c exposed, n = b + d unexposed, k = a + b cases, support lo..hi."""

    def __init__(self, a, b, c, d):
        self.m, self.n, self.k, self.x = a + c, b + d, a + b, a
        self.lo, self.hi = max(0, self.k - self.n), min(self.k, self.m)
        s = np.arange(self.lo, self.hi + 1)
        g = scipy.special.gammaln
        # float log-weights, only to choose which terms matter
        self.support = s
        self.flogw = (g(self.m + 1) - g(s + 1) - g(self.m - s + 1)
                      + g(self.n + 1) - g(self.k - s + 1) - g(self.n - self.k + s + 1))
        self.cache = {}

    def logw(self, s):
        s = int(s)
        if s not in self.cache:
            lg = mpmath.loggamma
            self.cache[s] = (lg(self.m + 1) - lg(s + 1) - lg(self.m - s + 1) + lg(self.n + 1)
                             - lg(self.k - s + 1) - lg(self.n - self.k + s + 1))
        return self.cache[s]

    def dist(self, log_psi):
        """{s: P(X = s; psi)} over the terms within e^-200 of the largest."""
        t = self.flogw + self.support * float(log_psi)
        keep = self.support[t >= t.max() - 200]
        logs = {int(s): self.logw(s) + s * log_psi for s in keep}
        top = max(logs.values())
        w = {s: mpmath.exp(v - top) for s, v in logs.items()}
        total = mpmath.fsum(w.values())
        return {s: v / total for s, v in w.items()}

    def mean(self, log_psi):
        return mpmath.fsum(s * p for s, p in self.dist(log_psi).items())

    def lower_tail(self, log_psi):  # P(X <= x)
        return mpmath.fsum(p for s, p in self.dist(log_psi).items() if s <= self.x)

    def upper_tail(self, log_psi):  # P(X >= x)
        return mpmath.fsum(p for s, p in self.dist(log_psi).items() if s >= self.x)

    def solve(self, f, target):
        """log psi with f(log psi) = target, f increasing (bisection, then Illinois)."""
        lo, hi = mpmath.mpf(-1), mpmath.mpf(1)
        while f(lo) > target:
            lo *= 2
        while f(hi) < target:
            hi *= 2
        for _ in range(30):
            mid = (lo + hi) / 2
            if f(mid) < target:
                lo = mid
            else:
                hi = mid
        root = mpmath.findroot(lambda t: f(t) - target, (lo, hi), solver="illinois",
                               tol=mpmath.mpf(10) ** -50)
        return mpmath.exp(root)

    def p_one_sided(self, less):
        """P(X <= x) (less) or P(X >= x) at psi = 1, over every term within e^-800 of the
        largest (the others are below f64's range relative to the total)."""
        logd = {int(s): self.logw(s) for s in self.support[self.flogw >= self.flogw.max() - 800]}
        top = max(logd.values())
        total = mpmath.fsum(mpmath.exp(v - top) for v in logd.values())
        tail = mpmath.fsum(mpmath.exp(v - top) for s, v in logd.items()
                           if (s <= self.x if less else s >= self.x))
        return tail / total

    def p_two_sided(self):
        logd = {int(s): self.logw(s) for s in self.support[self.flogw >= self.flogw.max() - 800]}
        top = max(logd.values())
        total = mpmath.fsum(mpmath.exp(v - top) for v in logd.values())
        dx = self.logw(self.x)
        cut = dx + mpmath.log(1 + mpmath.mpf(10) ** -7)
        return mpmath.fsum(mpmath.exp(v - top) for v in logd.values() if v <= cut) / total


def fisher_one_sided(a, b, c, d, alternative):
    """R's fisher.test(alternative = "less" / "greater"): the one-sided p at psi = 1 and the
    one-sided 0.95 interval ([0, upper] / [lower, Inf], each bound at alpha = 0.05)."""
    if 0 in (a + b, c + d, a + c, b + d):
        return None
    cond = Conditional(a, b, c, d)
    x, lo, hi = cond.x, cond.lo, cond.hi
    alpha = 1 - mpmath.mpf(0.95)
    est = 0.0 if x == lo else math.inf if x == hi else float(cond.solve(cond.mean, x))
    if alternative == "less":
        lower = 0.0
        upper = math.inf if x == hi else float(cond.solve(lambda t: -cond.lower_tail(t), -alpha))
        p = cond.p_one_sided(True)
    else:
        lower = 0.0 if x == lo else float(cond.solve(cond.upper_tail, alpha))
        upper = math.inf
        p = cond.p_one_sided(False)
    out = {"odds_ratio": est, "lower": lower, "upper": upper, "p": min(float(p), 1.0)}
    table = np.array([[a, b], [c, d]])
    close(scipy.stats.fisher_exact(table, alternative=alternative).pvalue, out["p"], 1e-9,
          f"scipy fisher p ({alternative})", abs_tol=1e-300)
    return out


def fisher(a, b, c, d):
    if 0 in (a + b, c + d, a + c, b + d):
        return None
    cond = Conditional(a, b, c, d)
    x, lo, hi = cond.x, cond.lo, cond.hi
    alpha = (1 - mpmath.mpf(0.95)) / 2
    est = 0.0 if x == lo else math.inf if x == hi else float(cond.solve(cond.mean, x))
    # lower bound: P(X >= x; psi) = alpha (increasing in psi); upper: P(X <= x; psi) = alpha
    lower = 0.0 if x == lo else float(cond.solve(cond.upper_tail, alpha))
    upper = math.inf if x == hi else float(cond.solve(lambda t: -cond.lower_tail(t), -alpha))
    out = {"odds_ratio": est, "lower": lower, "upper": upper, "p": float(cond.p_two_sided())}
    table = np.array([[a, b], [c, d]])
    close(scipy.stats.fisher_exact(table).pvalue, out["p"], 1e-9, "scipy fisher p")
    res = scipy.stats.contingency.odds_ratio(table, kind="conditional")
    ci = res.confidence_interval(0.95)
    close(res.statistic, est, 1e-8, "scipy conditional odds ratio")
    close(ci.low, lower, 1e-7, "scipy conditional lower")
    close(ci.high, upper, 1e-7, "scipy conditional upper")
    return out


# ---------------------------------------------------------------------------------------------
# chi-squared test of independence, as R's chisq.test

def chi2_test(a, b, c, d):
    n = a + b + c + d
    margins = (a + b, c + d, a + c, b + d)
    if 0 in margins:
        return {"yates": None, "no_yates": None}
    r1, r2, c1, c2 = margins
    delta = Fraction(abs(a * d - b * c), n)  # |O - E|, the same in every cell
    inv_e = sum(Fraction(n, r * col) for r in (r1, r2) for col in (c1, c2))
    out = {}
    for name, yates in (("yates", min(Fraction(1, 2), delta)), ("no_yates", Fraction(0))):
        chi2 = (delta - yates) ** 2 * inv_e
        out[name] = {"chi2": float(chi2), "p": float(chi2_sf_1(chi2))}
        r = scipy.stats.chi2_contingency(np.array([[a, b], [c, d]]), correction=name == "yates")
        close(r.statistic, out[name]["chi2"], 1e-12, "scipy chi2", abs_tol=1e-12)
        if out[name]["p"] > 1e-290:
            close(r.pvalue, out[name]["p"], 1e-10, "scipy chi2 p")
    return out


def table_case(name, a, b, c, d):
    return {"name": name, "a": a, "b": b, "c": c, "d": d, "expected": {
        "odds_ratio": {str(level): woolf(a, b, c, d, level) for level in (0.95, 0.9)},
        "fisher_exact": fisher(a, b, c, d),
        "fisher_less": fisher_one_sided(a, b, c, d, "less"),
        "fisher_greater": fisher_one_sided(a, b, c, d, "greater"),
        "chi2_test": chi2_test(a, b, c, d)}}


# ---------------------------------------------------------------------------------------------
# Cochran-Mantel-Haenszel, as R's mantelhaen.test for 2 x 2 x K

def used_strata(strata):
    return [t for t in strata if sum(t) >= 2]


def cmh(strata):
    used = used_strata(strata)
    if not used:
        return {"correct": None, "no_correct": None}
    delta = var = diag = offd = Fraction(0)
    pr = ps_qr = qs = Fraction(0)
    for a, b, c, d in used:
        n = a + b + c + d
        r1, r2, c1, c2 = a + b, c + d, a + c, b + d
        delta += a - Fraction(r1 * c1, n)
        var += Fraction(r1 * r2 * c1 * c2, n * n * (n - 1))
        P, Q, R, S = Fraction(a + d, n), Fraction(b + c, n), Fraction(a * d, n), Fraction(b * c, n)
        diag += R
        offd += S
        pr += P * R
        ps_qr += P * S + Q * R
        qs += Q * S
    if diag == 0 and offd == 0:
        est = None
    elif offd == 0:
        est = math.inf
    else:
        est = float(diag / offd)
    lower = upper = None
    if diag > 0 and offd > 0:
        # Robins, Breslow and Greenland (1986): variance of log(OR_MH)
        v = pr / (2 * diag ** 2) + ps_qr / (2 * diag * offd) + qs / (2 * offd ** 2)
        sd = mpmath.sqrt(mpq(v))
        z = z_of(0.95)
        lower = float(mpq(diag / offd) * mpmath.exp(-z * sd))
        upper = float(mpq(diag / offd) * mpmath.exp(z * sd))
    out = {}
    for name, correct in (("correct", True), ("no_correct", False)):
        if var == 0:
            chi2 = p = None
        else:
            y = Fraction(1, 2) if correct and abs(delta) >= Fraction(1, 2) else 0
            x = (abs(delta) - y) ** 2 / var
            chi2, p = float(x), float(chi2_sf_1(x))
        out[name] = {"chi2": chi2, "p": p, "odds_ratio": est, "lower": lower, "upper": upper}
        if all(v is None for v in out[name].values()):
            out[name] = None
    if len(used) >= 2 and var > 0 and diag > 0 and offd > 0:
        st = StratifiedTable([np.array([[a, b], [c, d]], dtype=float) for a, b, c, d in used])
        close(st.oddsratio_pooled, est, 1e-12, "statsmodels MH estimate")
        lo, hi = st.oddsratio_pooled_confint(alpha=0.05)
        close(lo, lower, 1e-12, "statsmodels MH lower")
        close(hi, upper, 1e-12, "statsmodels MH upper")
        close(st.test_null_odds(correction=False).statistic, out["no_correct"]["chi2"], 1e-12,
              "statsmodels CMH statistic")
        if abs(delta) >= Fraction(1, 2):  # statsmodels subtracts 1/2 regardless
            close(st.test_null_odds(correction=True).statistic, out["correct"]["chi2"], 1e-12,
                  "statsmodels CMH statistic (corrected)")
    return out


def breslow_day(strata):
    """The Breslow-Day statistic at 60 digits, without and with Tarone's correction, over the
    strata with no zero margin, under the Mantel-Haenszel common odds ratio; checked against
    statsmodels StratifiedTable.test_equal_odds on the same strata."""
    used = [t for t in strata if min(t[0] + t[1], t[2] + t[3], t[0] + t[2], t[1] + t[3]) > 0]
    none = {"plain": None, "tarone": None}
    if len(used) < 2:
        return none
    mp = mpmath.mpf
    r = mpmath.fsum(mp(a) * d / (a + b + c + d) for a, b, c, d in used)
    s = mpmath.fsum(mp(b) * c / (a + b + c + d) for a, b, c, d in used)
    if r == 0 or s == 0:
        return none
    psi = r / s
    terms = []
    for a, b, c, d in used:
        k, m, n = a + b, a + c, a + b + c + d
        lo, hi = max(0, k + m - n), min(k, m)
        f = lambda x: x * (n - k - m + x) - psi * (k - x) * (m - x)
        fitted = mpmath.findroot(f, (mp(lo), mp(hi)), solver="anderson",
                                 tol=mp(10) ** -50) if lo < hi else mp(lo)
        cells = [fitted, k - fitted, m - fitted, n - k - m + fitted]
        var = 1 / mpmath.fsum(1 / v for v in cells)
        terms.append((a - fitted, var))
    plain = mpmath.fsum(dv * dv / v for dv, v in terms)
    tarone = plain - mpmath.fsum(dv for dv, _ in terms) ** 2 / mpmath.fsum(v for _, v in terms)
    df = len(used) - 1
    out = {}
    for name, x in (("plain", plain), ("tarone", tarone)):
        p = mpmath.gammainc(mp(df) / 2, x / 2, mpmath.inf, regularized=True)
        out[name] = {"chi2": float(x), "df": float(df), "p": float(p)}
    st = StratifiedTable(np.array([[[a, b], [c, d]] for a, b, c, d in used],
                                  dtype=float).transpose(1, 2, 0))
    for name, adjust in (("plain", False), ("tarone", True)):
        res = st.test_equal_odds(adjust=adjust)
        close(res.statistic, out[name]["chi2"], 1e-9, f"statsmodels breslow-day {name}",
              abs_tol=1e-12)
        close(res.pvalue, out[name]["p"], 1e-6, f"statsmodels breslow-day {name} p",
              abs_tol=1e-12)
    return out


def strata_case(name, strata):
    return {"name": name, "strata": [dict(zip("abcd", t)) for t in strata],
            "expected": {"cmh": cmh(strata), "breslow_day": breslow_day(strata)}}


# ---------------------------------------------------------------------------------------------
# McNemar

def mcnemar(both, case_only, control_only, neither):
    b, c = case_only, control_only
    if b + c == 0:
        return {"correct": None, "no_correct": None}
    out = {}
    for name, correct in (("correct", True), ("no_correct", False)):
        # R applies the correction only when the table is not symmetric (b != c).
        dev = abs(b - c) - 1 if correct and b != c else abs(b - c)
        x = Fraction(dev * dev, b + c)
        out[name] = {"chi2": float(x), "p": float(chi2_sf_1(x))}
    return out


def pairs_case(name, both, case_only, control_only, neither):
    return {"name": name, "both": both, "case_only": case_only, "control_only": control_only,
            "neither": neither, "expected": {"mcnemar": mcnemar(both, case_only, control_only,
                                                                neither)}}


# ---------------------------------------------------------------------------------------------
# cases

tables = [
    table_case("typical", 42, 58, 27, 73),
    table_case("moderate", 12, 5, 7, 15),
    table_case("small counts (1, 2, 3, 1)", 1, 2, 3, 1),
    table_case("small counts (2, 1, 1, 3)", 2, 1, 1, 3),
    table_case("small counts (3, 1, 2, 2)", 3, 1, 2, 2),
    table_case("zero cell a (OR 0)", 0, 5, 4, 6),
    table_case("zero cell b (OR Infinity)", 5, 0, 4, 6),
    table_case("zero cell c (OR Infinity)", 5, 4, 0, 6),
    table_case("zero cell d (OR 0)", 5, 4, 6, 0),
    table_case("zero diagonal (OR 0)", 0, 5, 5, 0),
    table_case("zero off-diagonal (OR Infinity)", 5, 0, 0, 5),
    table_case("zero margin: no exposed rows", 0, 7, 0, 9),
    table_case("zero margin: no unexposed rows", 7, 0, 9, 0),
    table_case("zero margin: no cases", 0, 0, 6, 8),
    table_case("zero margin: no controls", 4, 5, 0, 0),
    table_case("one row", 1, 0, 0, 0),
    table_case("no rows", 0, 0, 0, 0),
    table_case("balanced, OR = 1", 10, 20, 30, 60),
    table_case("|ad - bc|/n < 1/2: Yates removes all of it", 10, 11, 10, 10),
    table_case("large counts", 52000, 48000, 50500, 49500),
    table_case("large counts, strong effect", 31000, 69000, 28000, 72000),
    table_case("extremely significant (p ~ 1e-160)", 700, 150, 150, 700),
    table_case("extremely significant (p underflows to 0; R's fisher estimate is far off)",
               3000, 20, 20, 3000),
]

random_strata = [tuple(int(v) for v in rng.integers(1, 40, 4)) for _ in range(10)]
strata_cases = [
    strata_case("two strata", [(12, 8, 6, 14), (20, 15, 10, 25)]),
    strata_case("ten strata", random_strata),
    strata_case("a stratum with zero cells", [(3, 0, 2, 4), (10, 6, 5, 12), (7, 7, 3, 9)]),
    strata_case("strata with 1 and 0 rows are dropped",
                [(12, 8, 6, 14), (1, 0, 0, 0), (0, 0, 0, 0), (20, 15, 10, 25), (0, 0, 0, 1)]),
    strata_case("a stratum with a zero margin (no cases) adds nothing",
                [(12, 8, 6, 14), (0, 0, 3, 4), (20, 15, 10, 25)]),
    strata_case("one stratum (= the 2x2 table)", [(42, 58, 27, 73)]),
    strata_case("one usable stratum", [(1, 0, 0, 0), (12, 5, 7, 15)]),
    strata_case("no usable stratum", [(1, 0, 0, 0), (0, 0, 0, 1)]),
    strata_case("|DELTA| < 1/2: no continuity correction", [(10, 11, 10, 10), (5, 5, 5, 5)]),
    strata_case("off-diagonal sum 0: estimate Infinity, no bounds", [(3, 0, 2, 4), (5, 2, 0, 3)]),
    strata_case("diagonal sum 0: estimate 0, no bounds", [(0, 4, 2, 5), (3, 2, 6, 0)]),
    strata_case("every stratum has a zero margin: no variance", [(0, 0, 3, 4), (2, 5, 0, 0)]),
    strata_case("large strata", [(3100, 6900, 2800, 7200), (4000, 1000, 3600, 1400),
                                 (500, 500, 420, 580)]),
]

pairs = [
    pairs_case("typical", 20, 15, 6, 40),
    pairs_case("case_only = control_only: R applies no correction", 10, 7, 7, 12),
    pairs_case("no discordant pairs", 10, 0, 0, 12),
    pairs_case("|case_only - control_only| = 1", 3, 5, 4, 8),
    pairs_case("one discordant pair", 4, 1, 0, 6),
    pairs_case("large counts", 10000, 5000, 4800, 30000),
    pairs_case("very significant (p ~ 1e-125)", 100, 600, 10, 500),
    pairs_case("extremely significant (p underflows to 0)", 100, 3000, 10, 500),
    pairs_case("no pairs", 0, 0, 0, 0),
]

# ---------------------------------------------------------------------------------------------
# R, and the comparison with it

r = run_r({
    "tables": [[t[k] for k in "abcd"] for t in tables],
    "strata": [{"given": [[s[k] for k in "abcd"] for s in case["strata"]],
                "used": (lambda u: u + [[2, 0, 0, 0]] * (2 - len(u)) if u else [])(
                    [[s[k] for k in "abcd"] for s in case["strata"] if sum(s.values()) >= 2])}
               for case in strata_cases],
    "pairs": [{k: p[k] for k in ("both", "case_only", "control_only", "neither")} for p in pairs],
})
r = decode_r(r)


def check_struct(got, want, what, rel=1e-12, tiny=1e-290):
    """R's struct `got` against ours (None = every field null: R has NaN there)."""
    for k in ("chi2", "p", "odds_ratio", "lower", "upper"):
        if k not in got and (want is None or k not in want):
            continue
        w = None if want is None else want[k]
        g = got[k]
        if w is None:
            if g not in ("NaN", "NA"):
                raise SystemExit(f"{what} {k}: R gives {g}, expected null")
        elif k == "p" and w < tiny:
            close(g, w, 1e-6, f"{what} {k}", abs_tol=1e-300)
        else:
            close(g, w, rel, f"{what} {k}")


for case, rr in zip(tables, r["tables"]):
    e = case["expected"]
    case["r"] = rr
    if e["fisher_exact"] is None:
        # zero margin: R's conditional distribution has one point
        if rr["fisher_exact"].get("p") not in (1.0, None):
            raise SystemExit(f"{case['name']}: R fisher p {rr['fisher_exact']}")
    else:
        f, rf = e["fisher_exact"], rr["fisher_exact"]
        close(rf["p"], f["p"], 1e-9, f"{case['name']}: R fisher p", abs_tol=1e-300)
        for k in ("odds_ratio", "lower", "upper"):
            # R's uniroot(tol = .Machine$double.eps^0.25) on psi in (0, 1) or on 1/psi
            want, got = f[k], rnum(rf[k])
            if want in (0.0, math.inf):
                close(got, want, 0, f"{case['name']}: R fisher {k}")
            else:
                t_want, t_got = (want, got) if want < 1 else (1 / want, 1 / got)
                if abs(t_want - t_got) > 2.5e-4:
                    raise SystemExit(f"{case['name']}: R fisher {k} {got} vs {want}")
    for side in ("less", "greater"):
        f, rf = e[f"fisher_{side}"], rr[f"fisher_{side}"]
        if f is None:
            continue
        close(rf["p"], f["p"], 1e-9, f"{case['name']}: R fisher p ({side})", abs_tol=1e-300)
        for k in ("lower", "upper"):
            want, got = f[k], rnum(rf[k])
            if want in (0.0, math.inf):
                close(got, want, 0, f"{case['name']}: R fisher {k} ({side})")
            else:
                t_want, t_got = (want, got) if want < 1 else (1 / want, 1 / got)
                if abs(t_want - t_got) > 2.5e-4:
                    raise SystemExit(f"{case['name']}: R fisher {k} ({side}) {got} vs {want}")
    for name in ("yates", "no_yates"):
        want = e["chi2_test"][name]
        got = rr["chi2_test"][name]
        if "error" in got:
            if want is not None:
                raise SystemExit(f"{case['name']}: R chisq.test failed: {got}")
            continue
        check_struct(got, want, f"{case['name']}: R chisq {name}")

for case, rr in zip(strata_cases, r["strata"]):
    case["r"] = rr
    e = case["expected"]["cmh"]
    for name in ("correct", "no_correct"):
        if rr["used"] is None:
            if e[name] is not None:
                raise SystemExit(f"{case['name']}: no stratum left but a result expected")
            continue
        check_struct(rr["used"][name], e[name], f"{case['name']}: R mantelhaen {name}")
        if len(used_strata([tuple(s.values()) for s in case["strata"]])) == len(case["strata"]) \
                and len(case["strata"]) >= 2:
            check_struct(rr["as_given"][name], e[name], f"{case['name']}: R mantelhaen {name}")

for case, rr in zip(pairs, r["pairs"]):
    case["r"] = rr
    e = case["expected"]["mcnemar"]
    for name in ("correct", "no_correct"):
        check_struct(rr[name], e[name], f"{case['name']}: R mcnemar {name}")
    if e["no_correct"]:
        import statsmodels.stats.contingency_tables as ct
        tab = np.array([[case["both"], case["case_only"]], [case["control_only"], case["neither"]]])
        res = ct.mcnemar(tab, exact=False, correction=False)
        close(res.statistic, e["no_correct"]["chi2"], 1e-12, "statsmodels mcnemar")

out = {
    "generated_by": "testdata/reference/contingency.py",
    "versions": {"R": r["version"], "jsonlite": r["jsonlite"], "numpy": np.__version__,
                 "scipy": scipy.__version__, "mpmath": mpmath.__version__,
                 "statsmodels": statsmodels.__version__},
    "tables": tables,
    "strata": strata_cases,
    "pairs": pairs,
}
path = HERE / "contingency.json"
path.write_text(json.dumps(json_safe(out), indent=1, allow_nan=False) + "\n")
print(f"wrote {len(tables)} tables, {len(strata_cases)} strata cases, {len(pairs)} pairs cases "
      f"to {path}")
