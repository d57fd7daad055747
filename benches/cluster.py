#!/usr/bin/env python3
"""The discrimination report on one node against 2 and 4 `discern worker`s on this machine.

    python3 benches/cluster.py [--discern target/release/discern] [--sizes L,L-full] [--runs 3]

Uses the data of benches/report.py (target/bench-report/SIZE, generated there if missing).
Makes a cluster CA and node certificates with openssl, starts the workers on 127.0.0.1 (each
with --target-partitions 1 and --memory-limit 1GiB, so that N workers on this machine use the
cores one node would), runs the report as a whole process against each setting, the runs
interleaved, checks every cluster result against the single node's (rank statistics,
counts and medians: the same; the Welch p-value within 1e-9, the other moments within 1e-12:
on the cluster the moments are summed in the order rows arrive, on one node exactly over the
distinct values, and a p-value far in the tail magnifies the difference), and prints median wall time, the
overhead ratio to one node and the bytes shuffled between stages (`--stats`' cluster line).
On 2 cores no speed-up can show: this measures what distribution costs.
"""
import argparse
import csv
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
REPORT = ROOT / "sql" / "reports" / "discrimination.sql"
sys.path.insert(0, str(ROOT / "benches"))
import report as report_bench  # noqa: E402

EXACT = {"biomarker", "n_case", "n_control", "median_case", "median_control", "auc", "auc_lower",
         "auc_upper", "mann_whitney_p", "mann_whitney_q", "youden_threshold",
         "youden_sensitivity", "youden_specificity"}
# A p-value from a t statistic: its relative error is the statistic's times about t².
LOOSE = {"welch_p": 1e-9}


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def certificates(dir):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-days", "2", "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=bench-ca", cwd=dir)
    for node in ["worker", "coordinator"]:
        (dir / f"{node}.ext").write_text(
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n")
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", f"{node}.key", "-out", f"{node}.csr", "-subj", f"/CN={node}", cwd=dir)
        openssl("x509", "-req", "-in", f"{node}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-extfile", f"{node}.ext", "-out", f"{node}.crt",
                cwd=dir)


def start_workers(discern, dir, n):
    workers = []
    for _ in range(n):
        proc = subprocess.Popen(
            [str(discern), "worker", "--listen", "127.0.0.1:0", "--tls-cert", "worker.crt",
             "--tls-key", "worker.key", "--ca", "ca.crt", "--target-partitions", "1",
             "--memory-limit", "1GiB"],
            cwd=dir, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = proc.stdout.readline().strip()
        prefix = "discern worker listening on "
        if not line.startswith(prefix):
            sys.exit(f"discern worker did not start: {line!r}")
        workers.append((proc, "https://" + line[len(prefix):]))
    return workers


def run(discern, data, out, dir, workers):
    cmd = [str(discern), "query", "-f", str(REPORT), "--stats", "--output", str(out),
           "--table", f"measurements={data}/measurements", "--table", f"samples={data}/samples"]
    for _, url in workers:
        cmd += ["--worker", url]
    if workers:
        cmd += ["--cluster-cert", str(dir / "coordinator.crt"), "--cluster-key",
                str(dir / "coordinator.key"), "--cluster-ca", str(dir / "ca.crt")]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    shuffled = 0
    for line in proc.stderr.splitlines():
        if line.startswith("cluster: "):
            shuffled = int(line.split("shuffled_bytes=")[1].split()[0])
            if f"workers={len(workers)}" not in line:
                sys.exit(f"not every worker ran tasks: {line}")
    return wall, shuffled


def check(reference, path, what):
    with open(reference, newline="") as f:
        want = list(csv.DictReader(f))
    with open(path, newline="") as f:
        got = list(csv.DictReader(f))
    if len(want) != len(got):
        sys.exit(f"{what}: {len(got)} rows, one node gave {len(want)}")
    for a, b in zip(want, got):
        for column, x in a.items():
            y = b[column]
            if column in EXACT or x == y:
                if x != y:
                    sys.exit(f"{what}: {a['biomarker']} {column} = {y}, one node says {x}")
                continue
            fx, fy = float(x), float(y)
            if abs(fx - fy) > LOOSE.get(column, 1e-12) * max(abs(fx), abs(fy)):
                sys.exit(f"{what}: {a['biomarker']} {column} = {y}, one node says {x}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--discern", default=str(ROOT / "target" / "release" / "discern"))
    parser.add_argument("--sizes", default="L,L-full")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--work", default=str(ROOT / "target" / "bench-report"))
    args = parser.parse_args()
    discern = pathlib.Path(args.discern).resolve()
    work = pathlib.Path(args.work)
    print(f"{report_bench.machine()}; {args.runs} runs, median", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        dir = pathlib.Path(tmp)
        certificates(dir)
        for size in args.sizes.split(","):
            data = work / size
            report_bench.generate(discern, size, data)
            settings = {"one node": 0, "2 workers": 2, "4 workers": 4}
            results = {name: [] for name in settings}
            for r in range(args.runs):
                for name, n in settings.items():
                    workers = start_workers(discern, dir, n)
                    try:
                        out = work / f"{size}-cluster-{n}.csv"
                        results[name].append(run(discern, data, out, dir, workers))
                    finally:
                        for proc, _ in workers:
                            proc.terminate()
                            proc.wait()
                    if n:
                        check(work / f"{size}-cluster-0.csv", out, f"{size} {name}")
                    print(f"  {size} run {r + 1} {name}: {results[name][-1][0]:.2f} s",
                          file=sys.stderr, flush=True)
            base = statistics.median(w for w, _ in results["one node"])
            lines = [f"### {size}", "", "| setting | wall (s) | ÷ one node | shuffled (MB) |",
                     "| --- | --- | --- | --- |"]
            for name, runs in results.items():
                wall = statistics.median(w for w, _ in runs)
                shuffled = statistics.median(s for _, s in runs) / 1e6
                lines.append(f"| {name} | {wall:.2f} | {wall / base:.2f}× | {shuffled:.1f} |")
            print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
