#!/usr/bin/env python3
"""Reference values for auc_ci_bootstrap (udfs/src/ranks.rs, udfs/src/kernels/bootstrap.rs).

Writes auc_bootstrap.json beside this file (test: udfs/tests/reference_ranks.rs). Two checks of
different kinds:

- replay: the documented algorithm written again here, independently of the Rust code:
  SplitMix64 seeded with the seed, Lemire's unbiased multiply-and-reject for an index in
  0..n, per replicate n_case draws among the cases in ascending order of value and then
  n_control draws among the controls, the replicate's AUC counted exactly (Fractions), the
  interval R's type-7 quantiles at (1 - level)/2 and (1 + level)/2 of the sorted AUCs. Discern
  must give the same numbers (to 1e-15: both sum integers and divide once).
- pROC: ci.auc(roc(controls, cases, direction = "<"), method = "bootstrap",
  boot.stratified = TRUE, boot.n = 20000) in R with its own random numbers. The two bootstraps
  estimate the same quantiles, so they agree within Monte-Carlo error: the recorded tolerance
  is 5 standard errors of the difference of two 20,000-replicate quantile estimates,
  sqrt(2 p (1 - p) / B) / f(q), with the density f at the quantile from a normal fit to the
  replayed replicates.

Run:  python3 testdata/reference/auc_bootstrap.py   (numpy, scipy; Rscript with r-cran-proc and
r-cran-jsonlite)
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

MASK = (1 << 64) - 1
rng = np.random.default_rng(7)


class SplitMix64:
    def __init__(self, seed):
        self.state = seed & MASK

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def below(self, n):
        m = self.next() * n
        low = m & MASK
        if low < n:
            threshold = ((1 << 64) - n) % n
            while low < threshold:
                m = self.next() * n
                low = m & MASK
        return m >> 64


def auc_of(cases, controls):
    """Exact AUC of two lists: P(case > control) + P(tie) / 2."""
    pooled = sorted(set(cases) | set(controls))
    c1 = {v: 0 for v in pooled}
    c0 = {v: 0 for v in pooled}
    for v in cases:
        c1[v] += 1
    for v in controls:
        c0[v] += 1
    twice_u, below = 0, 0
    for v in pooled:
        twice_u += c1[v] * (2 * below + c0[v])
        below += c0[v]
    return Fraction(twice_u, 2 * len(cases) * len(controls))


def quantile7(sorted_values, p):
    h = (len(sorted_values) - 1) * p
    lo = math.floor(h)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (h - lo) * (sorted_values[hi] - sorted_values[lo])


def replay(cases, controls, replicates, seed, level):
    cases, controls = sorted(cases), sorted(controls)
    g = SplitMix64(seed)
    aucs = []
    for _ in range(replicates):
        a = [cases[g.below(len(cases))] for _ in cases]
        b = [controls[g.below(len(controls))] for _ in controls]
        aucs.append(float(auc_of(a, b)))
    aucs.sort()
    alpha = (1 - level) / 2
    return quantile7(aucs, alpha), quantile7(aucs, 1 - alpha), aucs


R = r"""
suppressMessages({library(pROC); library(jsonlite)})
args <- commandArgs(TRUE)
inp <- fromJSON(args[1], simplifyVector = FALSE)
set.seed(20261202)
out <- lapply(inp, function(c) {
  r <- roc(controls = unlist(c$controls), cases = unlist(c$cases), direction = "<", quiet = TRUE)
  ci <- ci.auc(r, method = "bootstrap", boot.n = c$replicates, boot.stratified = TRUE,
               conf.level = c$level, progress = "none")
  list(lower = sprintf("%.17g", ci[1]), upper = sprintf("%.17g", ci[3]))
})
writeLines(toJSON(list(version = paste(R.version$major, R.version$minor, sep = "."),
                       pROC = as.character(packageVersion("pROC")), out = out),
                  auto_unbox = TRUE), args[2])
"""


def run_r(jobs):
    with tempfile.TemporaryDirectory() as tmp:
        src, dst, prog = (pathlib.Path(tmp, n) for n in ("in.json", "out.json", "p.R"))
        src.write_text(json.dumps(jobs))
        prog.write_text(R)
        subprocess.run(["Rscript", str(prog), str(src), str(dst)], check=True)
        return json.loads(dst.read_text())


def enc(xs):
    return [repr(float(x)) for x in xs]


replays, against_r = [], []


def replay_case(name, cases, controls, replicates=2000, seed=0, level=0.95):
    lower, upper, _ = replay(cases, controls, replicates, seed, level)
    replays.append({"name": name, "cases": enc(cases), "controls": enc(controls),
                    "replicates": replicates, "seed": seed, "level": level,
                    "auc": float(auc_of(cases, controls)), "lower": lower, "upper": upper})
    print("replay", name, lower, upper, flush=True)


x1 = list(np.round(rng.normal(0.8, 1, 30), 1))
x0 = list(np.round(rng.normal(0.0, 1, 40), 1))
replay_case("30 x 40 with ties, defaults", x1, x0)
replay_case("30 x 40 with ties, seed 42", x1, x0, seed=42)
replay_case("30 x 40 with ties, seed -1 (as 2^64 - 1)", x1, x0, seed=-1)
replay_case("30 x 40 with ties, level 0.9, 500 replicates", x1, x0, replicates=500, level=0.9)
replay_case("1 case x 5 controls", [3.0], [1.0, 2.0, 3.0, 4.0, 5.0])
replay_case("every value tied", [1.0] * 4, [1.0] * 6)
replay_case("one replicate", x1, x0, replicates=1)
y1 = list(rng.lognormal(0.4, 0.8, 150))
y0 = list(rng.lognormal(0.0, 0.8, 250))
replay_case("150 x 250 full precision, seed 7", y1, y0, seed=7)


def r_case(name, cases, controls, level=0.95):
    b = 20000
    lower, upper, aucs = replay(cases, controls, b, 0, level)
    sd = float(np.std(aucs, ddof=1))
    alpha = (1 - level) / 2
    density = scipy.stats.norm.pdf(scipy.stats.norm.ppf(alpha)) / sd
    tol = 5 * math.sqrt(2 * alpha * (1 - alpha) / b) / density
    against_r.append({"name": name, "cases": enc(cases), "controls": enc(controls),
                      "replicates": b, "seed": 0, "level": level, "tolerance": tol,
                      "replay": {"lower": lower, "upper": upper}})
    print("pROC case", name, lower, upper, tol, flush=True)


r_case("60 x 80 normal, shift 0.7", list(rng.normal(0.7, 1, 60)), list(rng.normal(0, 1, 80)))
r_case("40 x 40 rounded, level 0.9", list(np.round(rng.normal(0.5, 1, 40))),
       list(np.round(rng.normal(0, 1, 40))), level=0.9)
r_case("25 x 120 skewed", list(rng.lognormal(0.6, 1, 25)), list(rng.lognormal(0, 1, 120)))

r = run_r([{"cases": [float(v) for v in c["cases"]], "controls": [float(v) for v in c["controls"]],
            "replicates": c["replicates"], "level": c["level"]} for c in against_r])
for c, rr in zip(against_r, r["out"]):
    c["proc"] = {"lower": float(rr["lower"]), "upper": float(rr["upper"])}
    for k in ("lower", "upper"):
        d = abs(c["proc"][k] - c["replay"][k])
        if d > c["tolerance"]:
            raise SystemExit(f"{c['name']} {k}: pROC {c['proc'][k]} vs replay {c['replay'][k]}")

out = {"generated_by": "testdata/reference/auc_bootstrap.py",
       "versions": {"numpy": np.__version__, "scipy": scipy.__version__, "R": r["version"],
                    "pROC": r["pROC"]},
       "replay": replays, "proc": against_r}
path = pathlib.Path(__file__).with_name("auc_bootstrap.json")
path.write_text(json.dumps(out, indent=1) + "\n")
print(f"wrote {len(replays)} + {len(against_r)} cases to {path}")
