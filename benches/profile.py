#!/usr/bin/env python3
"""Where the discrimination report's time goes: perf samples of one `discern query` run,
grouped by what the code does.

    python3 benches/profile.py [--discern target/release/discern] [--size L]

Needs `perf` (Debian's linux-perf) and the data of benches/report.py (target/bench-report/SIZE).
Prints the share of CPU samples per group and the top symbols; the raw profile stays in
target/bench-report/perf-SIZE.data for `perf report -i`.
"""
import argparse
import collections
import pathlib
import re
import subprocess

ROOT = pathlib.Path(__file__).resolve().parent.parent

# First match wins; the patterns are matched against the symbol name.
GROUPS = [
    ("rank tallies: sorting and merging distinct values", r"Tally|smallsort|quicksort|sort8|heapsort|merge_row|insertion_sort"),
    ("statistical aggregates' row loops (value, label, group)", r"for_each_row|for_each_labelled|discern_udfs|BooleanArray::value"),
    ("count / avg with FILTER (DataFusion accumulators)", r"NullState|accumulate_indices|accumulate::|AvgGroupsAccumulator|PrimitiveGroupsAccumulator"),
    ("GROUP BY biomarker: hashing the strings", r"binary_view_map|ArrowBytesViewMap|group_values|GroupValues|create_hashes|hash_utf8|ahash|xxhash"),
    ("hash join on sample_id", r"joins::|HashJoin|ArrayMap|JoinHashMap"),
    ("Parquet decoding and zstd", r"parquet|ZSTD|zstd|Rle|rle|bit_pack|unpack|pad_nulls|ValuesBuffer|DictIndexDecoder|ByteView"),
    ("memory allocation", r"malloc|free|realloc|_int_|unlink_chunk|calloc|memmove|memset|memcpy"),
    ("Arrow kernels (filter, take, concat, compare)", r"arrow_|filter_|take_|concat"),
    ("kernel (I/O, page faults, scheduling)", r"^\[k\]"),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--discern", default=str(ROOT / "target" / "release" / "discern"))
    parser.add_argument("--size", default="L")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    work = ROOT / "target" / "bench-report"
    data = work / args.size
    perf_data = work / f"perf-{args.size}.data"
    subprocess.run(
        ["perf", "record", "-F", "499", "-g", "-o", str(perf_data), "--", args.discern, "query",
         "-f", str(ROOT / "sql" / "reports" / "discrimination.sql"),
         "--table", f"measurements={data}/measurements", "--table", f"samples={data}/samples",
         "--output", str(work / f"profile-{args.size}.csv")],
        check=True, stderr=subprocess.DEVNULL,
    )
    report = subprocess.run(
        ["perf", "report", "-i", str(perf_data), "--no-children", "--sort", "symbol", "--stdio"],
        check=True, capture_output=True, text=True,
    ).stdout
    shares = collections.Counter()
    top = []
    line_re = re.compile(r"^\s+([0-9.]+)%\s+(\[[.k]\])\s+(.*?)\s*(?:-\s+-\s*)?$")
    for line in report.splitlines():
        m = line_re.match(line)
        if not m:
            continue
        share, kind, symbol = float(m.group(1)), m.group(2), m.group(3).strip()
        name = f"{kind} {symbol}" if kind == "[k]" else symbol
        group = next((g for g, pattern in GROUPS if re.search(pattern, name)), "other")
        shares[group] += share
        top.append((share, symbol))
    print(f"CPU samples of one report on {args.size}, by what the code does:\n")
    print("| share | where |\n| --- | --- |")
    for group, share in shares.most_common():
        print(f"| {share:.1f} % | {group} |")
    print(f"\ntop {args.top} symbols:")
    for share, symbol in sorted(top, reverse=True)[: args.top]:
        print(f"  {share:5.1f} %  {symbol[:100]}")


if __name__ == "__main__":
    main()
