#!/usr/bin/env bash
# Peak RSS of `discern query` against --memory-limit: a full sort of ~9.6M measurements
# (100,000 samples x 100 biomarkers, 10 shards) that must spill, at several limits, next to an
# idle query on the same tables. Prints a Markdown table; the README quotes it.
#
#   benches/memory_overhead.sh [path/to/discern]     (default: target/release/discern)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/discern}
[ -x "$bin" ] || { echo "build first: cargo build --release --locked (or pass the binary)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin" demo-data --out "$work/data" --samples 100000 --biomarkers 100 --shards 10 --case-fraction 0.1 >/dev/null
table="measurements=$work/data/measurements"
sort_sql="SELECT sample_id, biomarker, value FROM measurements ORDER BY value DESC NULLS LAST, biomarker, sample_id"

# Peak RSS in KiB; a failed run prints its error to $work/err and still reports its peak.
peak_kib() { /usr/bin/time -f '%M' -o "$work/rss" "$@" >/dev/null 2>"$work/err" || true; tail -n 1 "$work/rss"; }

idle=$(peak_kib "$bin" query --table "$table" --memory-limit 1GiB "SELECT count(*) FROM measurements")
echo "| memory limit | peak RSS | over idle + limit | outcome |"
echo "| --- | --- | --- | --- |"
for limit_mib in 32 64 96 128 256 512 1024; do
  rss=$(peak_kib "$bin" query --table "$table" --memory-limit "${limit_mib}MiB" --stats \
        --output "$work/sorted.parquet" "$sort_sql")
  if grep -q '^stats:' "$work/err"; then
    outcome="completed, spilled $(grep -o 'spilled=[^ ]*' "$work/err" | cut -d= -f2)"
  else
    outcome="failed: $(grep -o 'Resources exhausted\|Not enough memory' "$work/err" | head -n 1)"
  fi
  echo "| ${limit_mib} MiB | $((rss / 1024)) MiB | $(( rss / 1024 - idle / 1024 - limit_mib )) MiB | $outcome |"
done
echo
echo "idle process (same binary, same tables, SELECT count(*)): $((idle / 1024)) MiB; $(nproc) cores"
