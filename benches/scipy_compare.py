#!/usr/bin/env python3
"""The statistical functions against scipy / statsmodels on the same rows.

Builds the rows of benches/statistics.rs (1M rows, 1,000 groups; with 3-significant-digit
values, and without ties) from the same integer recipe, so both sides see exactly the same
doubles; writes them as Parquet; runs each function per group in scipy / statsmodels the way a
pandas user would (a loop over the groups) and in Discern (`discern query`, whole process);
checks that the answers agree before reporting any time; prints a table of median wall times.

    python3 benches/scipy_compare.py target/release/discern

Needs numpy, scipy, statsmodels, pyarrow (see benches/README.md).
"""
import csv
import math
import pathlib
import statistics
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import scipy
import scipy.stats
import statsmodels
import statsmodels.api as sm
from statsmodels.stats.contingency_tables import StratifiedTable

ROWS = 1_000_000
GROUPS = 1_000
RUNS = 3


def uniform(i, stream):
    """SplitMix64 of (i, stream), as benches/statistics.rs (uint64 arithmetic wraps)."""
    z = (i * np.uint64(8) + np.uint64(stream)) * np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return (z >> np.uint64(11)).astype(np.float64) / 9_007_199_254_740_992.0


def three_digits(values):
    return np.array([float(f"{x:.2e}") for x in values])


def rows(ties):
    i = np.arange(ROWS, dtype=np.uint64)
    g = (i * np.uint64(7919)) % np.uint64(GROUPS)
    case = uniform(i, 1) < 0.25
    shift = np.where(case & (g % np.uint64(10) == 0), 1.25, 1.0)
    v = (1.0 + 9.0 * uniform(i, 0)) * shift
    w = 1.0 + 9.0 * uniform(i, 2)
    if ties:
        v, w = three_digits(v), three_digits(w)
    e = uniform(i, 3) < np.where(case, 0.4, 0.3)
    s = (uniform(i, 4) * 5.0).astype(np.int64)
    return {"g": g.astype(np.int64), "v": v, "w": w, "c": case, "e": e, "s": s}


def groups(data):
    order = np.argsort(data["g"], kind="stable")
    bounds = np.flatnonzero(np.diff(data["g"][order])) + 1
    return [np.split(data[k][order], bounds) for k in ("v", "w", "c", "e", "s")]


def per_group(data, f):
    v, w, c, e, s = groups(data)
    return [f(v[k], w[k], c[k], e[k], s[k]) for k in range(len(v))]


def welch(v, w, c, e, s):
    return scipy.stats.ttest_ind(v[c], v[~c], equal_var=False).pvalue


def auc(v, w, c, e, s):
    x1, x0 = v[c], v[~c]
    return scipy.stats.mannwhitneyu(x1, x0).statistic / (len(x1) * len(x0))


def mann_whitney(v, w, c, e, s):
    return scipy.stats.mannwhitneyu(v[c], v[~c]).pvalue


def ks(v, w, c, e, s):
    # Discern's 'auto' is asymptotic here (n_case · n_control >= 10,000): Kolmogorov's limit.
    x1, x0 = v[c], v[~c]
    d = scipy.stats.ks_2samp(x1, x0).statistic
    n = len(x1) * len(x0) / (len(x1) + len(x0))
    return scipy.stats.kstwobign.sf(math.sqrt(n) * d)


def table(e, c):
    return np.array([[np.sum(e & c), np.sum(~e & c)], [np.sum(e & ~c), np.sum(~e & ~c)]])


def fisher(v, w, c, e, s):
    t = table(e, c)
    p = scipy.stats.fisher_exact(t).pvalue
    conditional = scipy.stats.contingency.odds_ratio(t, kind="conditional")
    conditional.confidence_interval(0.95)
    return p


def cmh(v, w, c, e, s):
    # statsmodels always subtracts the continuity correction where R (and Discern) skip it
    # below |Σ(a − E a)| = ½, so the Mantel-Haenszel odds ratio is what is compared.
    tables = [table(e[s == k], c[s == k]) for k in range(5)]
    st = StratifiedTable(tables)
    st.oddsratio_pooled_confint()
    st.test_null_odds(correction=True)
    return st.oddsratio_pooled


def wilcoxon(v, w, c, e, s):
    return scipy.stats.wilcoxon(v - w, correction=True).pvalue


def logistic(v, w, c, e, s):
    fit = sm.Logit(c.astype(float), sm.add_constant(v)).fit(disp=0, tol=1e-10)
    return fit.params[1]


# (name in the README, Python function, Discern call, field to compare, relative tolerance)
FUNCTIONS = [
    ("welch_t_test", welch, "welch_t_test(v, c)['p']", 1e-9),
    ("auc", auc, "auc(v, c)", 1e-15),
    ("mann_whitney", mann_whitney, "mann_whitney(v, c)['p']", 1e-9),
    ("ks_test", ks, "ks_test(v, c)['p']", 1e-9),
    ("fisher_exact", fisher, "fisher_exact(e, c)['p']", 1e-9),
    ("cmh_test", cmh, "cmh_test(e, c, s)['odds_ratio']", 1e-12),
    ("wilcoxon_signed_rank", wilcoxon, "wilcoxon_signed_rank(v - w)['p']", 1e-9),
    ("logistic_regression", logistic, "logistic_regression(c, v)['coef'][2]", 1e-6),
]


def discern(binary, path, call):
    sql = f"SELECT g, {call} AS r FROM t GROUP BY g ORDER BY g"
    result = path.with_suffix(".csv")
    start = time.perf_counter()
    subprocess.run([binary, "query", sql, "--table", f"t={path}", "--output", str(result)],
                   check=True, capture_output=True)
    elapsed = time.perf_counter() - start
    with open(result, newline="") as f:
        values = [float(r["r"]) for r in csv.DictReader(f)]
    return elapsed, values


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/discern"
    out_dir = pathlib.Path("target/bench-data")
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"numpy {np.__version__}, scipy {scipy.__version__}, statsmodels {statsmodels.__version__}")
    print("| rows | function | scipy/statsmodels (s) | discern query (s) | ratio |")
    print("| --- | --- | --- | --- | --- |")
    for ties in (True, False):
        data = rows(ties)
        path = out_dir / ("ties.parquet" if ties else "no_ties.parquet")
        pq.write_table(pa.table(data), path, row_group_size=131_072)
        label = "ties" if ties else "no ties"
        for name, f, call, tolerance in FUNCTIONS:
            reference = per_group(data, f)
            got = discern(binary, path, call)[1]
            for k, (a, b) in enumerate(zip(got, reference)):
                if not math.isclose(a, b, rel_tol=tolerance, abs_tol=1e-300):
                    raise SystemExit(f"{name} ({label}), group {k}: discern {a!r}, scipy {b!r}")
            python_times, discern_times = [], []
            for _ in range(RUNS):  # interleaved
                start = time.perf_counter()
                per_group(data, f)
                python_times.append(time.perf_counter() - start)
                discern_times.append(discern(binary, path, call)[0])
            p, d = statistics.median(python_times), statistics.median(discern_times)
            print(f"| {label} | {name} | {p:.3f} | {d:.3f} | {p / d:.1f}× |", flush=True)


if __name__ == "__main__":
    main()
