//! The memory limit holds: a query larger than the limit spills and completes, one that
//! cannot spill fails alone with a clear error, and the process's peak RSS (measured by the
//! parent through wait4) stays within the limit plus the overhead stated in the README.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs::File;

use common::{Outcome, discern, generate, run};
use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Float64Type;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use discern::demo_data::{self, DemoSpec};

const MIB: u64 = 1 << 20;
/// The limit under test: well below the ~200 MiB the sort below holds in Arrow arrays.
const LIMIT_MIB: u64 = 128;
/// What the process may use beyond the pool, over an idle query on the same tables: Parquet
/// decoding buffers, batches read back from spill files while merging, allocator slack. The
/// README states this figure; the test holds us to it.
const OVERHEAD_MIB: u64 = 64;

fn stat(out: &Outcome, key: &str) -> String {
    let line = out
        .stderr
        .lines()
        .find(|l| l.starts_with("stats:"))
        .unwrap_or_else(|| panic!("no stats line:\n{}", out.stderr));
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key} in {line}"))
        .to_string()
}

#[test]
fn the_memory_limit_holds() {
    let dir = tempfile::tempdir().unwrap();
    let spec = DemoSpec {
        samples: 60_000,
        biomarkers: 100,
        shards: 6,
        seed: 5,
        ..demo_data::DEFAULT
    };
    generate(dir.path(), &spec);
    let spill = dir.path().join("spill");
    let table = format!("measurements={}", dir.path().join("measurements").display());
    let limit = format!("{LIMIT_MIB}MiB");
    let query = |sql: &str, limit: &str| {
        let mut cmd = discern();
        cmd.args([
            "query",
            sql,
            "--stats",
            // One partition: with two, DataFusion's sorts compete for the pool while merging
            // their spilled runs, and the merge itself can run out (seen at 128 MiB in CI):
            // DataFusion's limitation, stated in the README, not what this test is about.
            "--target-partitions",
            "1",
            "--table",
            &table,
        ])
        .args(["--memory-limit", limit, "--spill-dir"])
        .arg(&spill);
        cmd
    };

    // The floor: the same binary and tables, a query that holds almost nothing.
    let idle = run(&mut query("SELECT count(*) FROM measurements", &limit)).ok();

    // A full sort of ~5.8M rows spills to the spill directory and completes.
    let sorted = dir.path().join("sorted.parquet");
    let sql = "SELECT sample_id, biomarker, value FROM measurements \
               ORDER BY value DESC NULLS LAST, biomarker, sample_id";
    let bounded = run(query(sql, &limit).arg("--output").arg(&sorted)).ok();
    let spill_files: usize = stat(&bounded, "spill_files").parse().unwrap();
    assert!(
        spill_files > 0,
        "the sort did not spill: {}",
        bounded.stderr
    );
    let rows: usize = stat(&bounded, "rows").parse().unwrap();
    assert!(rows > 5_500_000, "{rows}");
    let mut previous = f64::INFINITY;
    let mut read = 0;
    for batch in ParquetRecordBatchReaderBuilder::try_new(File::open(&sorted).unwrap())
        .unwrap()
        .build()
        .unwrap()
    {
        let batch = batch.unwrap();
        read += batch.num_rows();
        for v in batch
            .column(2)
            .as_primitive::<Float64Type>()
            .iter()
            .flatten()
        {
            assert!(v <= previous, "output not sorted: {v} after {previous}");
            previous = v;
        }
    }
    assert_eq!(read, rows);
    assert!(
        bounded.max_rss <= idle.max_rss + (LIMIT_MIB + OVERHEAD_MIB) * MIB,
        "peak RSS {} MiB exceeds idle {} MiB + limit {LIMIT_MIB} MiB + overhead {OVERHEAD_MIB} MiB",
        bounded.max_rss / MIB,
        idle.max_rss / MIB
    );
    assert!(
        std::fs::read_dir(&spill).unwrap().count() == 0,
        "spill files were left behind"
    );

    // The same sort with room to spare does not spill and takes more memory: the limit, not
    // the query, is what kept the first run small.
    let roomy = run(query(sql, "4GiB")
        .arg("--output")
        .arg(dir.path().join("roomy.parquet")))
    .ok();
    assert_eq!(stat(&roomy, "spill_files"), "0", "{}", roomy.stderr);
    assert!(
        roomy.max_rss > bounded.max_rss,
        "unbounded {} MiB vs bounded {} MiB",
        roomy.max_rss / MIB,
        bounded.max_rss / MIB
    );

    // A hash join cannot spill its build side: it fails with a clear error, within bounds.
    let join = run(&mut query(
        "SELECT count(*) FROM measurements a JOIN measurements b \
         ON a.sample_id = b.sample_id AND a.biomarker = b.biomarker",
        &limit,
    ))
    .fails_with(&["Resources exhausted", "memory limit of 128MiB"]);
    assert!(
        join.max_rss <= idle.max_rss + (LIMIT_MIB + OVERHEAD_MIB) * MIB,
        "peak RSS {} MiB of the failed join",
        join.max_rss / MIB
    );
    eprintln!(
        "peak RSS: idle {} MiB, bounded sort {} MiB, unbounded sort {} MiB, failed join {} MiB",
        idle.max_rss / MIB,
        bounded.max_rss / MIB,
        roomy.max_rss / MIB,
        join.max_rss / MIB
    );

    // Rank statistics per biomarker (the report's shape: ~58,000 rows a biomarker, values with
    // 3 significant digits). Their states hold distinct values with counts, so the whole
    // aggregation fits in a small limit without spilling, and gives the same answers as with
    // room to spare.
    let ranks = "SELECT m.biomarker, auc_ci(m.value, s.is_case) AS auc, \
                 mann_whitney(m.value, s.is_case)['p'] AS p, ks_test(m.value, s.is_case)['p'] AS ks, \
                 youden(m.value, s.is_case)['threshold'] AS cutoff \
                 FROM measurements m JOIN samples s USING (sample_id) GROUP BY 1 ORDER BY 1";
    let samples = format!("samples={}", dir.path().join("samples").display());
    let small = dir.path().join("ranks_small.csv");
    let ranks_small = run(query(ranks, "48MiB")
        .args(["--table", &samples, "--output"])
        .arg(&small))
    .ok();
    assert_eq!(
        stat(&ranks_small, "spill_files"),
        "0",
        "{}",
        ranks_small.stderr
    );
    assert!(
        ranks_small.max_rss <= idle.max_rss + (48 + OVERHEAD_MIB) * MIB,
        "rank statistics at 48 MiB: peak RSS {} MiB",
        ranks_small.max_rss / MIB
    );
    let large = dir.path().join("ranks_large.csv");
    run(query(ranks, "4GiB")
        .args(["--table", &samples, "--output"])
        .arg(&large))
    .ok();
    let answers = std::fs::read_to_string(&small).unwrap();
    assert_eq!(answers.lines().count(), 101);
    assert_eq!(answers, std::fs::read_to_string(&large).unwrap());

    // Below what the states need, the group states are written out by group and aggregated
    // a bucket at a time: the same answers, within bounds.
    let tight = dir.path().join("ranks_tight.csv");
    let spilling = run(query(ranks, "8MiB")
        .args(["--table", &samples, "--output"])
        .arg(&tight))
    .ok();
    assert_ne!(stat(&spilling, "spill_files"), "0", "{}", spilling.stderr);
    assert_eq!(answers, std::fs::read_to_string(&tight).unwrap());
    assert!(
        spilling.max_rss <= idle.max_rss + (8 + OVERHEAD_MIB) * MIB,
        "rank statistics at 8 MiB: peak RSS {} MiB",
        spilling.max_rss / MIB
    );

    // One group of 5.8M distinct values (no GROUP BY; the values made distinct by a tiny
    // per-sample offset) cannot be split: the query fails alone with a clear error, within
    // bounds.
    let whole = "SELECT auc_ci(m.value + m.sample_id * 1e-9, s.is_case) AS auc \
                 FROM measurements m JOIN samples s USING (sample_id)";
    let too_small = run(query(whole, "8MiB").args(["--table", &samples]))
        .fails_with(&["Resources exhausted", "memory limit of 8MiB"]);
    assert!(
        too_small.max_rss <= idle.max_rss + (8 + OVERHEAD_MIB) * MIB,
        "failed rank statistics at 8 MiB: peak RSS {} MiB",
        too_small.max_rss / MIB
    );
}

/// Issue 13: the discrimination report on M data (20,000 samples × 1,000 biomarkers, 19.2M
/// rows) in both variants, instrument-rounded (3 significant digits) and full precision
/// (every value distinct: states as large as the data), from a limit far below the states to
/// one above them. Every run completes with the same bytes of output as the run with room to
/// spare, and the process's peak RSS stays within the limit plus the README's 256 MiB margin
/// (binary, Parquet decoding and what DataFusion does not count). Rounded values need no
/// spill at 256 MiB; full-precision values spill their group states and still fit 128 MiB.
#[test]
fn the_report_holds_every_limit_at_any_cardinality() {
    const MARGIN_MIB: u64 = 256;
    let report = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("sql")
        .join("reports")
        .join("discrimination.sql");
    for (variant, digits) in [("3 digits", Some(3)), ("full precision", None)] {
        let dir = tempfile::tempdir().unwrap();
        let spec = DemoSpec {
            samples: 20_000,
            biomarkers: 1_000,
            shards: 10,
            case_fraction: 0.1,
            seed: 13,
            digits,
        };
        generate(dir.path(), &spec);
        let tables = [
            format!("measurements={}", dir.path().join("measurements").display()),
            format!("samples={}", dir.path().join("samples").display()),
        ];
        let spill = dir.path().join("spill");
        let run_at = |limit: &str| {
            let out = dir.path().join(format!("report-{limit}.csv"));
            let outcome = run(discern()
                .args(["query", "-f"])
                .arg(&report)
                .args(["--stats", "--memory-limit", limit, "--spill-dir"])
                .arg(&spill)
                .args(["--table", &tables[0], "--table", &tables[1], "--output"])
                .arg(&out))
            .ok();
            (std::fs::read(&out).unwrap(), outcome)
        };
        let (reference, roomy) = run_at("4GiB");
        assert_eq!(
            stat(&roomy, "spill_files"),
            "0",
            "{variant}: {}",
            roomy.stderr
        );
        for (limit, mib) in [("128MiB", 128), ("256MiB", 256), ("1GiB", 1024)] {
            let (answer, outcome) = run_at(limit);
            let spilled = stat(&outcome, "spill_files");
            eprintln!(
                "{variant} at {limit}: peak RSS {} MiB, spill files {spilled}",
                outcome.max_rss / MIB
            );
            assert!(
                answer == reference,
                "{variant} at {limit}: the report differs from the run with room to spare"
            );
            assert!(
                outcome.max_rss <= (mib + MARGIN_MIB) * MIB,
                "{variant} at {limit}: peak RSS {} MiB exceeds the limit + {MARGIN_MIB} MiB",
                outcome.max_rss / MIB
            );
            if digits.is_some() && mib >= 256 {
                assert_eq!(
                    spilled, "0",
                    "{variant} at {limit} spilled: {}",
                    outcome.stderr
                );
            }
            if digits.is_none() && mib == 128 {
                assert_ne!(spilled, "0", "{variant} at {limit} did not spill");
            }
        }
        assert!(
            std::fs::read_dir(&spill).map_or(0, |d| d.count()) == 0,
            "spill files were left behind"
        );
        eprintln!(
            "{variant} with room to spare: peak RSS {} MiB",
            roomy.max_rss / MIB
        );
    }
}
