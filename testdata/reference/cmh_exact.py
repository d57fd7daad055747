#!/usr/bin/env python3
"""Reference values for cmh_exact (udfs/src/contingency.rs): R's mantelhaen.test(exact = TRUE)
for 2 x 2 x K strata, recomputed exactly.

Writes cmh_exact.json beside this file (test: udfs/tests/reference_contingency.rs). A stratum is
(a, b, c, d) = (exposed cases, unexposed cases, exposed controls, unexposed controls); R's array
has x[1, 1, k] = a, x[1, 2, k] = b, x[2, 1, k] = c, x[2, 2, k] = d.

- The distribution of S = sum a given every stratum's margins at odds ratio 1 is the
  convolution of the strata's hypergeometric weights C(cases, x) C(controls, exposed - x),
  counted in exact integers; at odds ratio psi each weight is multiplied by psi^s.
- p: R's two-sided rule, the probability of the sums whose probability is at most the
  observed one's times 1 + 1e-7, an exact fraction rounded once.
- odds_ratio: the conditional MLE, E[S; psi] = s; lower / upper: P(S >= s; psi) = alpha/2 and
  P(S <= s; psi) = alpha/2, solved with mpmath at 60 digits (R's uniroot stops near 1e-4; R's
  values are recorded and checked to that tolerance). 0 / Infinity at the ends of the support.

Run:  python3 testdata/reference/cmh_exact.py   (mpmath; Rscript with r-cran-jsonlite)
"""
import json
import math
import pathlib
import subprocess
from fractions import Fraction

import mpmath
import numpy as np

mpmath.mp.dps = 60
rng = np.random.default_rng(2026)


def weights(strata):
    """(lo, exact integer weights of S = lo..hi) at odds ratio 1."""
    lo, dist = 0, [1]
    for a, b, c, d in strata:
        cases, controls, exposed = a + b, c + d, a + c
        l, h = max(0, exposed - controls), min(exposed, cases)
        w = [math.comb(cases, x) * math.comb(controls, exposed - x) for x in range(l, h + 1)]
        out = [0] * (len(dist) + len(w) - 1)
        for i, di in enumerate(dist):
            for j, wj in enumerate(w):
                out[i + j] += di * wj
        lo, dist = lo + l, out
    return lo, dist


def solve(f, target):
    """log psi with f(log psi) = target, f increasing."""
    lo, hi = mpmath.mpf(-1), mpmath.mpf(1)
    while f(lo) > target:
        lo *= 2
    while f(hi) < target:
        hi *= 2
    for _ in range(40):
        mid = (lo + hi) / 2
        if f(mid) < target:
            lo = mid
        else:
            hi = mid
    root = mpmath.findroot(lambda t: f(t) - target, (lo, hi), solver="illinois",
                           tol=mpmath.mpf(10) ** -50)
    return mpmath.exp(root)


def cmh_exact(strata, level=0.95):
    lo, w = weights(strata)
    if len(w) < 2:
        return None
    s = sum(t[0] for t in strata)
    hi = lo + len(w) - 1
    logw = [mpmath.log(x) if x else None for x in w]

    def density(log_psi):
        logs = [(lo + i, lw + (lo + i) * log_psi) for i, lw in enumerate(logw) if lw is not None]
        top = max(v for _, v in logs)
        e = [(x, mpmath.exp(v - top)) for x, v in logs]
        total = mpmath.fsum(p for _, p in e)
        return [(x, p / total) for x, p in e]

    def mean(t):
        return mpmath.fsum(x * p for x, p in density(t))

    def upper_tail(t):
        return mpmath.fsum(p for x, p in density(t) if x >= s)

    def lower_tail(t):
        return mpmath.fsum(p for x, p in density(t) if x <= s)

    alpha = (1 - mpmath.mpf(level)) / 2
    est = 0.0 if s == lo else math.inf if s == hi else float(solve(mean, s))
    lower = 0.0 if s == lo else float(solve(upper_tail, alpha))
    upper = math.inf if s == hi else float(solve(lambda t: -lower_tail(t), -alpha))
    observed = w[s - lo]
    # R: d <= d[s] * (1 + 1e-7), in exact arithmetic on the integer weights
    cut = Fraction(observed) * (1 + Fraction(1, 10**7))
    p = Fraction(sum(x for x in w if x <= cut), sum(w))
    return {"odds_ratio": est, "lower": lower, "upper": upper, "p": float(min(p, 1))}


def json_safe(v):
    """Infinity as the string "Infinity" (JSON has no infinities)."""
    if isinstance(v, dict):
        return {k: json_safe(x) for k, x in v.items()}
    if isinstance(v, list):
        return [json_safe(x) for x in v]
    return "Infinity" if v == math.inf else v


R = r"""
suppressMessages(library(jsonlite))
args <- commandArgs(TRUE)
inp <- fromJSON(args[1], simplifyVector = FALSE)
h <- function(x) sprintf("%.17g", x)
out <- lapply(inp, function(case) tryCatch({
  s <- case$strata
  x <- array(as.numeric(unlist(lapply(s, function(t) c(t[[1]], t[[3]], t[[2]], t[[4]])))),
             dim = c(2, 2, length(s)))
  r <- mantelhaen.test(x, exact = TRUE, conf.level = case$level)
  list(odds_ratio = h(r$estimate), lower = h(r$conf.int[1]), upper = h(r$conf.int[2]),
       p = h(r$p.value))
}, error = function(e) list(error = conditionMessage(e))))
writeLines(toJSON(list(version = R.version.string, out = out), auto_unbox = TRUE), args[2])
"""


def run_r(cases):
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        src, dst, prog = (pathlib.Path(tmp, n) for n in ("in.json", "out.json", "p.R"))
        src.write_text(json.dumps(cases))
        prog.write_text(R)
        subprocess.run(["Rscript", str(prog), str(src), str(dst)], check=True)
        return json.loads(dst.read_text())


cases = []


def case(name, strata, level=0.95):
    cases.append({"name": name, "strata": [list(map(int, t)) for t in strata], "level": level,
                  "expected": cmh_exact(strata, level)})


case("two strata", [(12, 8, 6, 14), (20, 15, 10, 25)])
case("ten strata", [tuple(int(v) for v in rng.integers(1, 40, 4)) for _ in range(10)])
case("one stratum (= fisher_exact)", [(12, 5, 7, 15)])
case("level 0.9", [(3, 5, 2, 9), (4, 4, 1, 7), (6, 2, 3, 3)], level=0.9)
case("small strata with zero cells", [(3, 0, 2, 4), (1, 2, 0, 3), (2, 2, 1, 1)])
case("a stratum with a zero margin adds nothing", [(12, 8, 6, 14), (0, 0, 3, 4)])
case("s at the bottom of the support: estimate 0", [(0, 4, 3, 2), (0, 3, 2, 5)])
case("s at the top of the support: estimate Infinity", [(4, 0, 2, 3), (3, 0, 1, 5)])
case("matched pairs: 60 strata of 2", [(1, 0, 0, 1)] * 25 + [(0, 1, 1, 0)] * 10
     + [(1, 0, 1, 0)] * 15 + [(0, 1, 0, 1)] * 10)
case("large strata, strong effect (p ~ 1e-70)",
     [(300, 100, 120, 280), (250, 150, 100, 300), (90, 60, 40, 110)])
case("very strong effect, p ~ 1e-110",
     [(250, 50, 60, 240), (200, 30, 40, 190)])
case("p ~ 1e-382, below f64's range: 0 (R fails)", [(600, 50, 60, 590), (400, 30, 40, 390)])
case("no information: every stratum has a zero margin", [(0, 0, 3, 4), (2, 5, 0, 0)])

r = run_r([{"strata": c["strata"], "level": c["level"]} for c in cases])
for c in cases:
    c["strata"] = [dict(zip("abcd", t)) for t in c["strata"]]
for c, rr in zip(cases, r["out"]):
    e = c["expected"]
    c["r"] = rr
    if "error" in rr:
        # R refuses a single stratum (fisher.test is that case), and its uniroot fails
        # when the interval's bound is far from 1.
        assert len(c["strata"]) == 1 or "R fails" in c["name"], (c["name"], rr)
        print(c["name"], c["expected"], "(R:", rr["error"], ")")
        continue
    if e is None:
        continue
    rp = float(rr["p"])
    if abs(rp - e["p"]) > 1e-9 * e["p"] + 1e-300:
        raise SystemExit(f"{c['name']}: R p {rp} vs {e['p']}")
    for k in ("odds_ratio", "lower", "upper"):
        want, got = e[k], float(rr[k])
        if want in (0.0, math.inf):
            assert got == want, (c["name"], k, got, want)
            continue
        t_want, t_got = (want, got) if want < 1 else (1 / want, 1 / got)
        if abs(t_want - t_got) > 2.5e-4:
            raise SystemExit(f"{c['name']}: R {k} {got} vs {want}")
    print(c["name"], e, flush=True)

out = {"generated_by": "testdata/reference/cmh_exact.py", "r": r["version"],
       "versions": {"numpy": np.__version__, "mpmath": mpmath.__version__},
       "cases": json_safe(cases)}
path = pathlib.Path(__file__).with_name("cmh_exact.json")
path.write_text(json.dumps(out, indent=1) + "\n")
print(f"wrote {len(cases)} cases to {path}")
