#!/usr/bin/env python3
"""The discrimination report, written the way a user of each peer tool would write it.

    python3 benches/report_peers.py TOOL DATA OUT.csv

TOOL is one of: duckdb_rank, duckdb_distinct, polars, pandas_scipy, dask_scipy, scan_floor.
DATA holds `samples/*.parquet` and `measurements/**/*.parquet` (`discern demo-data`).
Each run is one whole process (interpreter, imports, reading, computing, writing the CSV), as
`discern query -f sql/reports/discrimination.sql` is on the Discern side.

The report (the common part of sql/reports/discrimination.sql): per biomarker n, mean and
median of cases and of controls, log2 fold change of the means, AUC, the Mann-Whitney p
(normal approximation with tie correction and continuity correction, two-sided: scipy's
mannwhitneyu, R's wilcox.test), the Welch t-test p, and the Benjamini-Hochberg q of the
Mann-Whitney p; most discriminating first. Rows with a NULL or non-finite value are skipped.
Where a tool has no distribution functions (DuckDB, Polars), the SQL/dataframe part computes
the sums and the p-values come from scipy on the 1,000 result rows, as a user would do it.

`scan_floor` reads the same Parquet columns (pyarrow's multi-threaded scanner) and does
nothing else: the floor any report over these files stands on.
"""
import sys

COLUMNS = [
    "biomarker",
    "n_case",
    "n_control",
    "mean_case",
    "mean_control",
    "median_case",
    "median_control",
    "log2_fold_change",
    "auc",
    "mann_whitney_p",
    "welch_p",
    "mann_whitney_q",
]


def finish(df, out):
    """From per-biomarker sums to p-values, q-values and the order (pandas + scipy).

    `df` has biomarker, n_case, n_control, mean/median per group, var_case, var_control,
    rank_sum_case (sum of the cases' midranks) and tie_sum (sum over tie groups of t³ − t).
    """
    import numpy as np
    import scipy.stats

    n1 = df["n_case"].to_numpy(dtype=float)
    n2 = df["n_control"].to_numpy(dtype=float)
    n = n1 + n2
    u = df["rank_sum_case"].to_numpy(dtype=float) - n1 * (n1 + 1) / 2
    mu = n1 * n2 / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma = np.sqrt(n1 * n2 / 12 * ((n + 1) - df["tie_sum"].to_numpy(dtype=float) / (n * (n - 1))))
        z = (np.abs(u - mu) - 0.5) / sigma
        df["auc"] = u / (n1 * n2)
        df["mann_whitney_p"] = np.minimum(1.0, 2 * scipy.stats.norm.sf(z))
        v1 = df["var_case"].to_numpy(dtype=float) / n1
        v2 = df["var_control"].to_numpy(dtype=float) / n2
        t = (df["mean_case"].to_numpy(dtype=float) - df["mean_control"].to_numpy(dtype=float)) / np.sqrt(v1 + v2)
        dof = (v1 + v2) ** 2 / (v1**2 / (n1 - 1) + v2**2 / (n2 - 1))
        df["welch_p"] = 2 * scipy.stats.t.sf(np.abs(t), dof)
        df["log2_fold_change"] = np.log2(df["mean_case"] / df["mean_control"])
    write(df, out)


def bh(p):
    """Benjamini-Hochberg q-values (statsmodels), NULL p-values left out."""
    import numpy as np
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p, dtype=float)
    q = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        q[ok] = multipletests(p[ok], method="fdr_bh")[1]
    return q


def write(df, out):
    df["mann_whitney_q"] = bh(df["mann_whitney_p"])
    df["order"] = (df["auc"] - 0.5).abs()
    df = df.sort_values(["order", "biomarker"], ascending=[False, True])
    df[COLUMNS].to_csv(out, index=False, float_format="%.17g")


def duckdb_sql(data, distinct):
    import duckdb

    con = duckdb.connect()
    joined = f"""
        SELECT m.biomarker, m.value, s.is_case
        FROM read_parquet('{data}/measurements/**/*.parquet', hive_partitioning = false) m
        JOIN read_parquet('{data}/samples/*.parquet') s USING (sample_id)
        WHERE m.value IS NOT NULL AND isfinite(m.value) AND s.is_case IS NOT NULL
    """
    moments = """
        SELECT biomarker,
               count(*) FILTER (WHERE is_case)         AS n_case,
               count(*) FILTER (WHERE NOT is_case)     AS n_control,
               avg(value) FILTER (WHERE is_case)       AS mean_case,
               avg(value) FILTER (WHERE NOT is_case)   AS mean_control,
               median(value) FILTER (WHERE is_case)    AS median_case,
               median(value) FILTER (WHERE NOT is_case) AS median_control,
               var_samp(value) FILTER (WHERE is_case)  AS var_case,
               var_samp(value) FILTER (WHERE NOT is_case) AS var_control
    """
    if distinct:
        # Rank each distinct value once: its midrank is (values below) + (t + 1) / 2.
        sql = f"""
            WITH j AS ({joined}),
            d AS (
                SELECT biomarker, value,
                       count(*) FILTER (WHERE is_case) AS c1,
                       count(*) AS t
                FROM j GROUP BY biomarker, value
            ),
            r AS (
                SELECT biomarker,
                       sum(c1 * (below + (t + 1) / 2.0)) AS rank_sum_case,
                       sum(t * t * t - t)::DOUBLE AS tie_sum
                FROM (SELECT *, sum(t) OVER (PARTITION BY biomarker ORDER BY value
                                            ROWS UNBOUNDED PRECEDING) - t AS below
                      FROM d)
                GROUP BY biomarker
            ),
            mo AS ({moments} FROM j GROUP BY biomarker)
            SELECT * FROM mo JOIN r USING (biomarker)
        """
    else:
        # The textbook formulation: rank() over every row, midranks from the tie counts.
        sql = f"""
            WITH r AS (
                SELECT *,
                       rank() OVER (PARTITION BY biomarker ORDER BY value) AS rk,
                       count(*) OVER (PARTITION BY biomarker, value) AS t
                FROM ({joined})
            )
            {moments},
                   sum(rk + (t - 1) / 2.0) FILTER (WHERE is_case) AS rank_sum_case,
                   sum(t * t - 1.0) AS tie_sum
            FROM r GROUP BY biomarker
        """
    return con.sql(sql).df()


def polars_report(data):
    import polars as pl

    m = pl.scan_parquet(f"{data}/measurements/**/*.parquet", hive_partitioning=False)
    s = pl.scan_parquet(f"{data}/samples/*.parquet").select("sample_id", "is_case")
    j = (
        m.join(s, on="sample_id")
        .filter(pl.col("value").is_not_null() & pl.col("value").is_finite() & pl.col("is_case").is_not_null())
        .with_columns(
            rk=pl.col("value").rank("average").over("biomarker"),
            t=pl.len().over("biomarker", "value"),
        )
    )
    case, control = pl.col("is_case"), ~pl.col("is_case")
    v = pl.col("value")
    out = (
        j.group_by("biomarker")
        .agg(
            n_case=case.sum(),
            n_control=control.sum(),
            mean_case=v.filter(case).mean(),
            mean_control=v.filter(control).mean(),
            median_case=v.filter(case).median(),
            median_control=v.filter(control).median(),
            var_case=v.filter(case).var(),
            var_control=v.filter(control).var(),
            rank_sum_case=pl.col("rk").filter(case).sum(),
            tie_sum=(pl.col("t").cast(pl.Float64) ** 2 - 1).sum(),
        )
        .collect()
    )
    return out.to_pandas()


def per_biomarker(values, is_case):
    """One biomarker in numpy and scipy, as a pandas user writes it."""
    import numpy as np
    import scipy.stats

    x, y = values[is_case], values[~is_case]
    mw = scipy.stats.mannwhitneyu(x, y, alternative="two-sided", use_continuity=True)
    welch = scipy.stats.ttest_ind(x, y, equal_var=False)
    return {
        "n_case": len(x),
        "n_control": len(y),
        "mean_case": x.mean(),
        "mean_control": y.mean(),
        "median_case": np.median(x),
        "median_control": np.median(y),
        "log2_fold_change": np.log2(x.mean() / y.mean()),
        "auc": mw.statistic / (len(x) * len(y)),
        "mann_whitney_p": mw.pvalue,
        "welch_p": welch.pvalue,
    }


def pandas_report(data):
    import numpy as np
    import pandas as pd

    m = pd.read_parquet(f"{data}/measurements", columns=["sample_id", "biomarker", "value"])
    s = pd.read_parquet(f"{data}/samples", columns=["sample_id", "is_case"])
    j = m[np.isfinite(m["value"])].merge(s.dropna(), on="sample_id")
    rows = []
    for biomarker, g in j.groupby("biomarker", sort=False):
        row = per_biomarker(g["value"].to_numpy(), g["is_case"].to_numpy(dtype=bool))
        row["biomarker"] = biomarker
        rows.append(row)
    return pd.DataFrame(rows)


def dask_report(data):
    import numpy as np
    import dask.dataframe as dd
    import pandas as pd

    m = dd.read_parquet(f"{data}/measurements", columns=["sample_id", "biomarker", "value"])
    s = pd.read_parquet(f"{data}/samples", columns=["sample_id", "is_case"]).dropna()
    j = m[m["value"].map_partitions(np.isfinite)].merge(s, on="sample_id")

    def group(g):
        return pd.Series(per_biomarker(g["value"].to_numpy(), g["is_case"].to_numpy(dtype=bool)))

    meta = {k: "f8" for k in COLUMNS if k not in ("biomarker", "mann_whitney_q")}
    out = j.groupby("biomarker").apply(group, meta=meta).compute()
    return out.reset_index()


def scan_floor(data):
    import pyarrow.dataset as ds

    rows = 0
    dataset = ds.dataset(f"{data}/measurements", format="parquet")
    for batch in dataset.to_batches(columns=["sample_id", "biomarker", "value"], use_threads=True):
        rows += batch.num_rows
    dataset = ds.dataset(f"{data}/samples", format="parquet")
    for batch in dataset.to_batches(columns=["sample_id", "is_case"], use_threads=True):
        rows += batch.num_rows
    return rows


def main():
    tool, data, out = sys.argv[1:4]
    if tool == "scan_floor":
        with open(out, "w") as f:
            f.write(f"rows\n{scan_floor(data)}\n")
    elif tool in ("duckdb_rank", "duckdb_distinct"):
        finish(duckdb_sql(data, tool == "duckdb_distinct"), out)
    elif tool == "polars":
        finish(polars_report(data), out)
    elif tool == "pandas_scipy":
        write(pandas_report(data), out)
    elif tool == "dask_scipy":
        write(dask_report(data), out)
    else:
        sys.exit(f"unknown tool {tool!r}")


if __name__ == "__main__":
    main()
