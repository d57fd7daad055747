//! `discern query` and `discern demo-data` end to end: the real binary on real Parquet.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::fs::File;

use common::{demo_dir, discern, generate, read_tree, run};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::Int64Type;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use discern::demo_data::{self, DemoSpec};

/// Reads every batch of a Parquet file with the parquet crate alone (no DataFusion).
fn read_parquet(path: &std::path::Path) -> Vec<RecordBatch> {
    ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap())
        .unwrap()
        .build()
        .unwrap()
        .map(|b| b.unwrap())
        .collect()
}

/// Measurements per biomarker, counted straight from the demo's Parquet files.
fn demo_counts() -> BTreeMap<String, i64> {
    let mut counts = BTreeMap::new();
    for (rel, _) in read_tree(&demo_dir().join("measurements")) {
        for batch in read_parquet(&demo_dir().join("measurements").join(rel)) {
            let names = batch
                .column_by_name("biomarker")
                .unwrap()
                .as_string::<i32>();
            for name in names.iter().flatten() {
                *counts.entry(name.to_string()).or_insert(0) += 1;
            }
        }
    }
    counts
}

#[test]
fn the_embedded_demo_answers_the_readme_query() {
    let out = run(discern().args([
        "query",
        "SELECT biomarker, count(*) AS n FROM measurements GROUP BY 1 ORDER BY 1",
    ]))
    .ok();
    let expected = demo_counts();
    assert_eq!(expected.len(), demo_data::DEFAULT.biomarkers);
    // An aligned table: a border, a header, one row per biomarker, a row count.
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[0].starts_with("+-"), "{}", out.stdout);
    assert!(
        lines[1].contains("biomarker") && lines[1].contains(" n "),
        "{}",
        out.stdout
    );
    let widths: Vec<usize> = lines[..lines.len() - 1].iter().map(|l| l.len()).collect();
    assert!(
        widths.iter().all(|&w| w == widths[0]),
        "not aligned:\n{}",
        out.stdout
    );
    for (name, n) in &expected {
        let row = lines
            .iter()
            .find(|l| l.split('|').nth(1).map(str::trim) == Some(name.as_str()))
            .unwrap_or_else(|| panic!("no row for {name}:\n{}", out.stdout));
        assert_eq!(
            row.split('|').nth(2).unwrap().trim(),
            n.to_string(),
            "{row}"
        );
    }
    assert_eq!(*lines.last().unwrap(), format!("({} rows)", expected.len()));
}

#[test]
fn the_demo_in_testdata_is_what_the_generator_writes() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(discern().args(["demo-data", "--out"]).arg(dir.path())).ok();
    assert!(out.stdout.contains("wrote 240 samples"), "{}", out.stdout);
    let generated = read_tree(dir.path());
    let shipped = read_tree(&demo_dir());
    let names = |t: &[(String, Vec<u8>)]| t.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&generated), names(&shipped));
    for ((name, a), (_, b)) in generated.iter().zip(&shipped) {
        assert!(
            a == b,
            "{name} differs from the generator's output: regenerate it with \
             `cargo run -- demo-data --out testdata/demo --force` and commit"
        );
    }
}

#[test]
fn generated_data_has_the_documented_shape() {
    let dir = tempfile::tempdir().unwrap();
    let spec = DemoSpec {
        samples: 1000,
        biomarkers: 40,
        shards: 5,
        ..demo_data::DEFAULT
    };
    generate(dir.path(), &spec);
    let m = dir.path().join("measurements");
    let files = read_tree(&m);
    let shard_names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        shard_names,
        [
            "batch=2024-01/part-0.parquet",
            "batch=2024-02/part-0.parquet",
            "batch=2024-03/part-0.parquet",
            "batch=2024-04/part-0.parquet",
            "batch=2024-05/part-0.parquet"
        ]
    );
    let mut rows = 0;
    let mut nulls = 0;
    let mut values = Vec::new();
    let mut biomarkers_per_shard = Vec::new();
    for (rel, _) in &files {
        let mut seen = std::collections::BTreeSet::new();
        for batch in read_parquet(&m.join(rel)) {
            rows += batch.num_rows();
            let v = batch
                .column_by_name("value")
                .unwrap()
                .as_primitive::<datafusion::arrow::datatypes::Float64Type>();
            nulls += v.null_count();
            values.extend(v.iter().flatten());
            for b in batch
                .column_by_name("biomarker")
                .unwrap()
                .as_string::<i32>()
                .iter()
                .flatten()
            {
                seen.insert(b.to_string());
            }
        }
        biomarkers_per_shard.push(seen.len());
    }
    // Every biomarker spans every shard.
    assert!(
        biomarkers_per_shard.iter().all(|&n| n == 40),
        "{biomarkers_per_shard:?}"
    );
    // About 5 % missing: 4 % absent rows, 1 % NULL values (binomial, 40 000 draws).
    let total = 1000 * 40;
    let absent = total - rows;
    assert!((1200..2000).contains(&absent), "absent rows: {absent}");
    assert!((250..550).contains(&nulls), "NULL values: {nulls}");
    // Instrument rounding: 3 significant digits, hence many ties.
    for v in &values {
        let text = format!("{v:.2e}");
        assert_eq!(text.parse::<f64>().unwrap(), *v);
    }
    let distinct: std::collections::BTreeSet<u64> = values.iter().map(|v| v.to_bits()).collect();
    assert!(
        distinct.len() < values.len() / 2,
        "{} distinct of {}",
        distinct.len(),
        values.len()
    );
    // 25 % cases exactly.
    let samples = read_parquet(&dir.path().join("samples/samples.parquet"));
    let cases: usize = samples
        .iter()
        .map(|b| {
            b.column_by_name("is_case")
                .unwrap()
                .as_boolean()
                .true_count()
        })
        .sum();
    assert_eq!(cases, 250);
    let ids: Vec<i64> = samples
        .iter()
        .flat_map(|b| {
            b.column_by_name("sample_id")
                .unwrap()
                .as_primitive::<Int64Type>()
                .values()
                .to_vec()
        })
        .collect();
    assert_eq!(ids, (1..=1000).collect::<Vec<_>>());
}

#[test]
fn hive_partitions_are_queryable_and_prune_files() {
    let out = run(discern().args([
        "query",
        "SELECT batch, count(DISTINCT sample_id) AS samples FROM measurements GROUP BY batch ORDER BY batch",
    ]))
    .ok();
    for batch in ["2024-01", "2024-02", "2024-03", "2024-04"] {
        assert!(out.stdout.contains(batch), "{}", out.stdout);
    }
    assert!(out.stdout.contains("(4 rows)"), "{}", out.stdout);

    let explain = run(discern().args([
        "query",
        "EXPLAIN SELECT sum(value) FROM measurements WHERE batch = '2024-03'",
    ]))
    .ok();
    let physical: String = explain
        .stdout
        .lines()
        .skip_while(|l| !l.contains("physical_plan"))
        .collect();
    assert!(
        physical.contains("batch=2024-03/part-0.parquet"),
        "{}",
        explain.stdout
    );
    for other in ["batch=2024-01", "batch=2024-02", "batch=2024-04"] {
        assert!(
            !physical.contains(other),
            "{other} was not pruned:\n{}",
            explain.stdout
        );
    }
}

#[test]
fn results_go_to_csv_json_and_parquet_files() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.sql");
    std::fs::write(
        &report,
        "-- per-biomarker counts by group\n\
         SELECT m.biomarker, s.is_case, count(m.value) AS n, avg(m.value) AS mean\n\
         FROM measurements m JOIN samples s USING (sample_id)\n\
         GROUP BY 1, 2 ORDER BY 1, 2;\n",
    )
    .unwrap();
    let mut results = BTreeMap::new();
    for ext in ["csv", "json", "ndjson", "parquet"] {
        let path = dir.path().join(format!("out.{ext}"));
        let out = run(discern()
            .args(["query", "-f"])
            .arg(&report)
            .arg("--output")
            .arg(&path))
        .ok();
        assert!(out.stdout.is_empty(), "{}", out.stdout);
        assert!(out.stderr.contains("wrote 48 rows"), "{}", out.stderr);
        results.insert(ext, path);
    }
    // Parquet: types preserved, 24 biomarkers × 2 groups, counts add up to the non-NULL values.
    let batches = read_parquet(&results["parquet"]);
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 48);
    let n: i64 = batches
        .iter()
        .map(|b| {
            b.column_by_name("n")
                .unwrap()
                .as_primitive::<Int64Type>()
                .values()
                .iter()
                .sum::<i64>()
        })
        .sum();
    let non_null =
        run(discern().args(["query", "SELECT count(value) AS c FROM measurements"])).ok();
    assert!(
        non_null.stdout.contains(&format!("| {n} ")),
        "{n} vs\n{}",
        non_null.stdout
    );
    // CSV: a header and 48 records.
    let csv = std::fs::read_to_string(&results["csv"]).unwrap();
    assert_eq!(csv.lines().next(), Some("biomarker,is_case,n,mean"));
    assert_eq!(csv.lines().count(), 49);
    // JSON: one array of 48 objects; NDJSON: 48 lines of objects.
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&results["json"]).unwrap()).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 48);
    assert_eq!(json[0]["biomarker"], "albumin");
    let ndjson = std::fs::read_to_string(&results["ndjson"]).unwrap();
    assert_eq!(ndjson.lines().count(), 48);
    assert!(ndjson.lines().all(|l| {
        serde_json::from_str::<serde_json::Value>(l)
            .unwrap()
            .is_object()
    }));
}

#[test]
fn a_failed_query_leaves_no_output_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.csv");
    std::fs::write(&path, "previous result\n").unwrap();
    run(discern()
        .args([
            "query",
            "SELECT CAST(biomarker AS INT) AS x FROM measurements",
            "--output",
        ])
        .arg(&path))
    .fails_with(&["Cannot cast"]);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "previous result\n");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "a partial file was left"
    );
}

#[test]
fn tables_come_from_flags_or_a_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let spec = DemoSpec {
        samples: 300,
        biomarkers: 5,
        shards: 3,
        seed: 7,
        ..demo_data::DEFAULT
    };
    generate(dir.path(), &spec);
    let m = dir.path().join("measurements");
    let s = dir.path().join("samples");
    let sql = "SELECT count(*) AS n, count(DISTINCT m.biomarker) AS b, count(DISTINCT batch) AS shards \
               FROM measurements m JOIN samples s USING (sample_id) WHERE s.sample_id > 0";
    let by_flags = run(discern()
        .args(["query", sql, "--table"])
        .arg(format!("measurements={}", m.display()))
        .arg("--table")
        .arg(format!("samples={}", s.display())))
    .ok();
    let config = dir.path().join("discern.toml");
    std::fs::write(
        &config,
        format!(
            "memory_limit = \"256MiB\"\n[tables.measurements]\nlocation = {:?}\n[tables.samples]\nlocation = {:?}\n",
            m.display().to_string(),
            s.display().to_string()
        ),
    )
    .unwrap();
    let by_config = run(discern().args(["query", sql, "--config"]).arg(&config)).ok();
    assert_eq!(by_flags.stdout, by_config.stdout);
    // 300 samples × 5 biomarkers, minus the ~4 % never measured.
    let n: usize = by_flags
        .stdout
        .lines()
        .nth(3)
        .unwrap()
        .split('|')
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!((1380..1500).contains(&n), "{}", by_flags.stdout);
    assert!(by_flags.stdout.contains("| 5 "), "{}", by_flags.stdout);
    assert!(by_flags.stdout.contains("| 3 "), "{}", by_flags.stdout);
}

#[test]
fn bad_input_gets_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good");
    generate(
        &good,
        &DemoSpec {
            samples: 50,
            biomarkers: 3,
            shards: 2,
            ..demo_data::DEFAULT
        },
    );

    // A path that does not exist.
    run(discern().args(["query", "SELECT 1", "--table", "m=/nonexistent/discern/m/"])).fails_with(
        &[
            "table 'm'",
            "/nonexistent/discern/m/",
            "no such file or directory",
        ],
    );

    // A file that is not Parquet at all, next to good shards.
    let foreign = dir.path().join("foreign");
    common::copy_tree(&good.join("measurements"), &foreign);
    std::fs::write(
        foreign.join("batch=2024-02/part-1.parquet"),
        b"sample_id,value\n1,2\n",
    )
    .unwrap();
    run(discern()
        .args(["query", "SELECT count(*) FROM m", "--table"])
        .arg(format!("m={}", foreign.display())))
    .fails_with(&[
        "table 'm'",
        "batch=2024-02/part-1.parquet",
        "not a readable Parquet file",
    ]);

    // A truncated Parquet file (the copy stopped half-way).
    let truncated = dir.path().join("truncated");
    common::copy_tree(&good.join("measurements"), &truncated);
    let victim = truncated.join("batch=2024-01/part-0.parquet");
    let bytes = std::fs::read(&victim).unwrap();
    std::fs::write(&victim, &bytes[..bytes.len() / 2]).unwrap();
    run(discern()
        .args(["query", "SELECT count(*) FROM m", "--table"])
        .arg(format!("m={}", truncated.display())))
    .fails_with(&[
        "batch=2024-01/part-0.parquet",
        "not a readable Parquet file",
    ]);

    // A file whose footer reads but whose data pages are garbage: found when the query fails.
    let garbled = dir.path().join("garbled");
    common::copy_tree(&good.join("measurements"), &garbled);
    let victim = garbled.join("batch=2024-02/part-0.parquet");
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes[8..600].fill(0x55);
    std::fs::write(&victim, &bytes).unwrap();
    run(discern()
        .args([
            "query",
            "SELECT sum(value), count(biomarker) FROM m",
            "--table",
        ])
        .arg(format!("m={}", garbled.display())))
    .fails_with(&[
        "table 'm'",
        "batch=2024-02/part-0.parquet",
        "not a readable Parquet file",
    ]);

    // A directory with no Parquet files.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    run(discern()
        .args(["query", "SELECT 1", "--table"])
        .arg(format!("m={}", empty.display())))
    .fails_with(&["table 'm'", "no Parquet files found"]);

    // A malformed config file, and one that tries to carry a secret.
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[tables.m]\nlocation = \n").unwrap();
    run(discern()
        .args(["query", "SELECT 1", "--config"])
        .arg(&config))
    .fails_with(&["bad.toml", "line 2"]);
    std::fs::write(&config, "[s3]\nsecret_access_key = \"hunter2\"\n").unwrap();
    let out = run(discern()
        .args(["query", "SELECT 1", "--config"])
        .arg(&config))
    .fails_with(&[
        "bad.toml",
        "secret_access_key",
        "AWS_* environment variables",
    ]);
    assert!(
        !out.stderr.contains("hunter2"),
        "the secret was echoed: {}",
        out.stderr
    );
    run(discern().args(["query", "SELECT 1", "--config", "/nonexistent/discern.toml"]))
        .fails_with(&["/nonexistent/discern.toml"]);

    // SQL that does not parse, an unknown table, an unknown column, an unknown function.
    run(discern().args(["query", "SELEC biomarker FROM measurements"])).fails_with(&["SELEC"]);
    run(discern().args(["query", "SELECT * FROM measurments"]))
        .fails_with(&["measurments", "not found"]);
    run(discern().args(["query", "SELECT valu FROM measurements"])).fails_with(&["valu"]);
    run(discern().args(["query", "SELECT no_such_fn(value) FROM measurements"]))
        .fails_with(&["no_such_fn"]);
    // In a multi-statement file, the failing statement is named.
    run(discern().args(["query", "SELECT 1; SELECT * FROM nope"]))
        .fails_with(&["statement 2 of 2", "nope"]);
    // A missing SQL file.
    run(discern().args(["query", "-f", "/nonexistent/report.sql"]))
        .fails_with(&["/nonexistent/report.sql"]);
    // Unknown output format.
    run(discern()
        .args(["query", "SELECT 1", "--output"])
        .arg(dir.path().join("out.xlsx")))
    .fails_with(&["out.xlsx", "--format"]);
}

#[test]
fn sql_cannot_write_data_or_change_the_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("copy.parquet");
    for (sql, needle) in [
        (format!("COPY (SELECT 1) TO '{}'", target.display()), "COPY"),
        (
            "INSERT INTO measurements SELECT * FROM measurements".to_string(),
            "Insert",
        ),
        (
            format!(
                "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '{}'",
                dir.path().display()
            ),
            "CreateExternalTable",
        ),
        (
            "CREATE TABLE t AS SELECT 1".to_string(),
            "CreateMemoryTable",
        ),
        (
            "SET datafusion.runtime.memory_limit = '100G'".to_string(),
            "datafusion.runtime.memory_limit",
        ),
    ] {
        run(discern().args(["query", &sql])).fails_with(&[needle, "not allowed"]);
    }
    assert!(!target.exists());
    // Views and ordinary settings are fine.
    let out = run(discern().args([
        "query",
        "SET datafusion.execution.batch_size = 1024; \
         CREATE VIEW iron AS SELECT * FROM measurements WHERE biomarker = 'iron'; \
         SELECT count(DISTINCT biomarker) AS b FROM iron",
    ]))
    .ok();
    assert!(out.stdout.contains("| 1 "), "{}", out.stdout);
}

#[test]
fn help_states_the_memory_default() {
    let out = run(discern().args(["query", "--help"])).ok();
    assert!(out.stdout.contains("--memory-limit"), "{}", out.stdout);
    assert!(
        out.stdout.contains("half of the memory available"),
        "{}",
        out.stdout
    );
    let default = discern::config::default_memory_limit().to_string();
    assert!(
        out.stdout.contains(&format!("{default} here")),
        "{}",
        out.stdout
    );
}

#[test]
fn the_discrimination_report_runs_on_the_demo() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report.csv");
    let report = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/sql/reports/discrimination.sql"
    );
    run(discern()
        .args(["query", "-f", report, "--output"])
        .arg(&out))
    .ok();
    let csv = std::fs::read_to_string(&out).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), demo_data::DEFAULT.biomarkers);
    // Ordered by |AUC − 0.5|, and the biomarkers the generator shifted come first.
    let distance: Vec<f64> = rows
        .iter()
        .map(|r| (r[col("auc")].parse::<f64>().unwrap() - 0.5).abs())
        .collect();
    assert!(distance.windows(2).all(|w| w[0] >= w[1]), "{distance:?}");
    let top: Vec<&str> = rows[..4].iter().map(|r| r[col("biomarker")]).collect();
    for shifted in ["zinc", "ferritin", "urea"] {
        assert!(
            top.contains(&shifted),
            "{shifted} not in the top 4: {top:?}"
        );
    }
    for r in &rows {
        let p: f64 = r[col("mann_whitney_p")].parse().unwrap();
        let q: f64 = r[col("mann_whitney_q")].parse().unwrap();
        let (lo, auc, hi): (f64, f64, f64) = (
            r[col("auc_lower")].parse().unwrap(),
            r[col("auc")].parse().unwrap(),
            r[col("auc_upper")].parse().unwrap(),
        );
        assert!(p <= q && q <= 1.0, "{r:?}");
        assert!(0.0 <= lo && lo <= auc && auc <= hi && hi <= 1.0, "{r:?}");
        let (sens, spec): (f64, f64) = (
            r[col("youden_sensitivity")].parse().unwrap(),
            r[col("youden_specificity")].parse().unwrap(),
        );
        // Youden's J is at least that of calling everyone a case (J = 0).
        assert!(sens + spec >= 1.0 && sens <= 1.0 && spec <= 1.0, "{r:?}");
    }
    // A shifted biomarker is separated by a finite threshold with J well above 0.
    let zinc = rows.iter().find(|r| r[col("biomarker")] == "zinc").unwrap();
    let threshold: f64 = zinc[col("youden_threshold")].parse().unwrap();
    assert!(threshold.is_finite(), "{zinc:?}");
}

/// sql/reports/new_marker.sql on the demo against `testdata/reference/new_marker.py`: the two
/// logistic fits by statsmodels (IRLS to 1e-12), AUCs counted exactly, the likelihood-ratio
/// test from statsmodels' log-likelihoods, and R Hmisc::improveProb on the fitted risks.
/// Tolerance 1e-6 relative: the report's fits stop at R glm's default convergence (1e-8).
#[test]
fn the_new_marker_report_matches_statsmodels_and_hmisc() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("new_marker.csv");
    let report = concat!(env!("CARGO_MANIFEST_DIR"), "/sql/reports/new_marker.sql");
    run(discern()
        .args(["query", "-f", report, "--output"])
        .arg(&out))
    .ok();
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/testdata/reference/new_marker.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let expected = reference["biomarkers"].as_object().unwrap();
    let csv = std::fs::read_to_string(&out).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), expected.len(), "{csv}");
    let nri: Vec<f64> = rows
        .iter()
        .map(|r| r[col("nri")].parse().unwrap())
        .collect();
    assert!(
        nri.windows(2).all(|w| w[0] >= w[1]),
        "ordered by NRI: {nri:?}"
    );
    for r in &rows {
        let biomarker = r[col("biomarker")];
        let e = &expected[biomarker];
        for field in ["n_case", "n_control"] {
            assert_eq!(
                r[col(field)].parse::<u64>().unwrap(),
                e[field].as_u64().unwrap(),
                "{biomarker}.{field}"
            );
        }
        for field in [
            "auc_clinical",
            "auc_with_marker",
            "lr_chi2",
            "lr_p",
            "nri",
            "nri_p",
            "idi",
            "idi_p",
        ] {
            let got: f64 = r[col(field)].parse().unwrap();
            let want = e[field].as_f64().unwrap();
            assert!(
                (got - want).abs() <= 1e-6 * want.abs().max(1e-12),
                "{biomarker}.{field}: report {got}, reference {want}"
            );
        }
    }
}
