#!/usr/bin/env python3
"""The discrimination report on S, M and L data: Discern against the tools a user would pick.

    python3 benches/report.py [--discern target/release/discern] [--sizes S,M,L,L-full] [--runs 3]

A size is S, M or L, with values rounded to 3 significant digits like an instrument's, or
S-full, M-full or L-full: the same samples with full-precision values (as many distinct values
as rows, as concentrations computed from calibration curves have).

For each size: generates the data once (`discern demo-data`, under target/bench-report/SIZE),
then runs every tool as a whole process on the same files, the runs interleaved (run 1 of
every tool, then run 2, ...). Every output is checked against Discern's before any time is
reported; a disagreement stops the benchmark. Prints, and writes to
target/bench-report/results-SIZE.md, a table of median wall time, CPU time and peak RSS per
tool, each peer's wall-time ratio to Discern, and each tool's CPU against the scan floor's.

The tools: Discern with default settings (`discern query -f sql/reports/discrimination.sql`),
Discern with `--memory-limit 256MiB`, the peers of benches/report_peers.py (DuckDB with rank()
and with ranked distinct values, Polars, pandas + scipy + statsmodels, Dask + scipy), and the
scan floor (pyarrow reading the same columns and nothing else). Needs the Python packages of
benches/README.md.
"""
import argparse
import csv
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
REPORT = ROOT / "sql" / "reports" / "discrimination.sql"
PEERS = ROOT / "benches" / "report_peers.py"

# samples, biomarkers, shards (2,000 samples a shard for M and L)
SIZES = {
    "S": (2_000, 500, 4),
    "M": (20_000, 1_000, 10),
    "L": (100_000, 1_000, 50),
}
PEER_TOOLS = ["duckdb_distinct", "duckdb_rank", "polars", "pandas_scipy", "dask_scipy"]
DISCERN_TOOLS = ["discern", "discern_256MiB"]

# What "agree" means. Counts and AUC: exactly (AUC is U / (n1 n2) with U a sum of half
# integers, exact in a double). p and q values: 1e-6 relative, as the issue asks; below 1e-300
# (where doubles go subnormal and libraries underflow differently) both count as zero.
# Means and medians: 1e-9 relative (summation order differs between tools). The log2 fold
# change: 1e-12 absolute (a difference of logarithms: near 0 a relative test would only
# measure the means' last bits).
EXACT = ["n_case", "n_control", "auc"]
P_VALUES = ["mann_whitney_p", "welch_p", "mann_whitney_q"]
CLOSE = ["mean_case", "mean_control", "median_case", "median_control"]
ABSOLUTE = ["log2_fold_change"]


def command(tool, discern, data, out):
    if tool.startswith("discern"):
        cmd = [
            str(discern), "query", "-f", str(REPORT),
            "--table", f"measurements={data}/measurements",
            "--table", f"samples={data}/samples",
            "--output", str(out),
        ]
        if tool == "discern_256MiB":
            cmd += ["--memory-limit", "256MiB"]
        return cmd
    return [sys.executable, str(PEERS), tool, str(data), str(out)]


def run(cmd):
    """Runs a whole process; returns wall seconds, CPU seconds and peak RSS in MiB."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{stderr.decode(errors='replace')}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def read(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [r["biomarker"] for r in rows], {r["biomarker"]: r for r in rows}


def number(text):
    return None if text in ("", "NULL", "nan", "NaN") else float(text)


def check(reference, path, tool):
    """Raises SystemExit naming the first disagreement of `path` with Discern's output."""
    ref_order, ref = read(reference)
    order, rows = read(path)
    if set(order) != set(ref_order):
        sys.exit(f"{tool}: biomarkers differ from Discern's ({len(order)} against {len(ref_order)})")
    if order != ref_order:
        at = next(i for i, (a, b) in enumerate(zip(order, ref_order)) if a != b)
        sys.exit(f"{tool}: order differs from Discern's at row {at + 1}: {order[at]} against {ref_order[at]}")
    for biomarker, want in ref.items():
        got = rows[biomarker]
        for column in EXACT + P_VALUES + CLOSE + ABSOLUTE:
            a, b = number(got[column]), number(want[column])
            if a is None or b is None:
                ok = a is None and b is None
            elif column in EXACT:
                ok = a == b
            elif column in P_VALUES:
                ok = (a < 1e-300 and b < 1e-300) or abs(a - b) <= 1e-6 * abs(b)
            elif column in ABSOLUTE:
                ok = abs(a - b) <= 1e-12
            else:
                ok = abs(a - b) <= 1e-9 * abs(b)
            if not ok:
                sys.exit(f"{tool}: {biomarker} {column} = {got[column]}, Discern says {want[column]}")


def shape(size):
    """(samples, biomarkers, shards, full precision) of a size name such as `L` or `L-full`."""
    base, _, variant = size.partition("-")
    if base not in SIZES or variant not in ("", "full"):
        sys.exit(f"unknown size {size!r}: one of {', '.join(SIZES)}, each optionally with -full")
    return (*SIZES[base], variant == "full")


def generate(discern, size, data):
    if (data / "measurements").exists():
        return
    samples, biomarkers, shards, full = shape(size)
    subprocess.run(
        [str(discern), "demo-data", "--out", str(data), "--samples", str(samples),
         "--biomarkers", str(biomarkers), "--shards", str(shards), "--case-fraction", "0.1"]
        + (["--full-precision"] if full else []),
        check=True, stdout=subprocess.DEVNULL,
    )


def versions():
    import duckdb, polars, pandas, scipy, statsmodels, dask, pyarrow  # noqa: E401

    return (f"duckdb {duckdb.__version__}, polars {polars.__version__}, pandas {pandas.__version__}, "
            f"scipy {scipy.__version__}, statsmodels {statsmodels.__version__}, dask {dask.__version__}, "
            f"pyarrow {pyarrow.__version__}, Python {platform.python_version()}")


def machine():
    model = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({model}), {mem:.0f} GiB RAM, {platform.system()} {platform.release()}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--discern", default=str(ROOT / "target" / "release" / "discern"))
    parser.add_argument("--sizes", default="S,M,L")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tools", default=",".join(DISCERN_TOOLS + PEER_TOOLS + ["scan_floor"]),
                        help="comma-separated; discern always runs (it is the reference)")
    parser.add_argument("--work", default=str(ROOT / "target" / "bench-report"))
    args = parser.parse_args()
    discern = pathlib.Path(args.discern).resolve()
    tools = ["discern"] + [t for t in args.tools.split(",") if t and t != "discern"]
    work = pathlib.Path(args.work)
    header = f"{machine()}; {versions()}; {args.runs} runs, median"
    print(header, flush=True)

    for size in args.sizes.split(","):
        data = work / size
        generate(discern, size, data)
        times = {tool: [] for tool in tools}
        for r in range(args.runs):
            for tool in tools:
                out = work / f"{size}-{tool}.csv"
                times[tool].append(run(command(tool, discern, data, out)))
                print(f"  {size} run {r + 1} {tool}: {times[tool][-1][0]:.2f} s", file=sys.stderr, flush=True)
                if tool != "discern" and tool != "scan_floor":
                    check(work / f"{size}-discern.csv", out, tool)
        median = {t: [statistics.median(x[i] for x in v) for i in range(3)] for t, v in times.items()}
        rows = sum(1 for _ in open(work / f"{size}-discern.csv")) - 1
        floor_cpu = median.get("scan_floor", [None, None])[1]
        samples, biomarkers, _, full = shape(size)
        values = "full-precision values" if full else "values to 3 significant digits"
        lines = [
            f"### {size}: {samples:,} samples × {biomarkers:,} biomarkers, {values} ({rows} report rows)",
            "",
            "| tool | wall (s) | CPU (s) | peak RSS (MiB) | wall ÷ Discern's | CPU ÷ scan floor's |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for tool in tools:
            wall, cpu, rss = median[tool]
            ratio = wall / median["discern"][0]
            floor = f"{cpu / floor_cpu:.1f}×" if floor_cpu else ""
            lines.append(f"| {tool} | {wall:.2f} | {cpu:.2f} | {rss:.0f} | {ratio:.2f}× | {floor} |")
        text = "\n".join(lines)
        print(text, flush=True)
        (work / f"results-{size}.md").write_text(header + "\n\n" + text + "\n")


if __name__ == "__main__":
    main()
