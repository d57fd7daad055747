//! The 2×2 tests against R and mpmath (`testdata/reference/contingency.py` →
//! `contingency.json`), through DataFusion with and without GROUP BY, over partitions and tiny
//! batches (the counts merge).
//!
//! References and tolerances:
//! - odds_ratio: Woolf's interval at 60 digits (mpmath), cross-checked with statsmodels; 1e-12.
//! - fisher_exact: the conditional MLE and the exact interval solved at 60 digits (mpmath);
//!   R's fisher.test stops at uniroot's tolerance (≈ 1e-4) so its estimate is checked only to
//!   1e-3; p as R / scipy, 1e-12 (exact fractions; far tails: `reference_exact_tails.rs`).
//! - chi2_test: R chisq.test(correct = TRUE / FALSE); 1e-12.
//! - fisher_exact with alternative 'less' / 'greater': R fisher.test(alternative = …), the
//!   one-sided p at 60 digits (1e-12, cross-checked with scipy) and the one-sided interval
//!   solved at 60 digits (1e-9).
//! - cmh_test: R mantelhaen.test (correct = TRUE / FALSE); 1e-12.
//! - breslow_day: the statistic at 60 digits (mpmath), cross-checked with statsmodels
//!   StratifiedTable.test_equal_odds (adjust = False / True); 1e-12 (df exactly).
//! - mcnemar: R mcnemar.test (correct = TRUE / FALSE); 1e-12.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use serde_json::Value;

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Null => None,
        Value::String(s) if s == "Infinity" => Some(f64::INFINITY),
        Value::String(s) if s == "-Infinity" => Some(f64::NEG_INFINITY),
        Value::Number(n) => n.as_f64(),
        other => panic!("unexpected reference value {other}"),
    }
}

fn close(actual: Option<f64>, expected: &Value, rel: f64, what: &str) {
    match (actual, number(expected)) {
        (None, None) => {}
        (Some(a), Some(e)) if a.is_infinite() || e.is_infinite() || e == 0.0 => {
            assert_eq!(a, e, "{what}")
        }
        (Some(a), Some(e)) => assert!(
            ((a - e) / e).abs() <= rel,
            "{what}: got {a:e}, reference {e:e}"
        ),
        (a, _) => panic!("{what}: got {a:?}, reference {expected}"),
    }
}

fn field(column: &ArrayRef, row: usize, name: &str) -> Option<f64> {
    if column.is_null(row) {
        return None;
    }
    let f = column
        .as_struct()
        .column_by_name(name)
        .unwrap()
        .as_primitive::<Float64Type>();
    (!f.is_null(row)).then(|| f.value(row))
}

/// Rows (case_id, x, y, stratum) expanding cell counts: `cells` lists (x, y, count).
fn table(
    groups: &[Vec<(bool, bool, i64, u64)>],
    partitions: usize,
    batch: usize,
    stratified: bool,
) -> MemTable {
    let schema = Arc::new(Schema::new(vec![
        Field::new("case_id", DataType::Int64, false),
        Field::new("x", DataType::Boolean, true),
        Field::new("y", DataType::Boolean, true),
        Field::new("stratum", DataType::Int64, true),
    ]));
    let mut rows = Vec::new();
    for (id, cells) in groups.iter().enumerate() {
        for &(x, y, stratum, count) in cells {
            for _ in 0..count {
                rows.push((id as i64, Some(x), Some(y), Some(stratum)));
            }
        }
        // Rows with a NULL are skipped (the stratum only matters to cmh_test).
        rows.push((id as i64, None, Some(true), Some(0)));
        rows.push((id as i64, Some(true), None, Some(0)));
        if stratified {
            rows.push((id as i64, Some(true), Some(true), None));
        }
    }
    let mut parts: Vec<Vec<RecordBatch>> = vec![Vec::new(); partitions];
    for (i, chunk) in rows.chunks(batch).enumerate() {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from_iter_values(chunk.iter().map(|r| r.0))),
            Arc::new(BooleanArray::from_iter(chunk.iter().map(|r| r.1))),
            Arc::new(BooleanArray::from_iter(chunk.iter().map(|r| r.2))),
            Arc::new(Int64Array::from_iter(chunk.iter().map(|r| r.3))),
        ];
        parts[i % partitions].push(RecordBatch::try_new(schema.clone(), columns).unwrap());
    }
    MemTable::try_new(schema, parts).unwrap()
}

/// (exposed, is_case, stratum, count) cells of one 2×2 table.
fn cells(t: &Value, stratum: i64) -> Vec<(bool, bool, i64, u64)> {
    let n = |k: &str| t[k].as_u64().unwrap();
    vec![
        (true, true, stratum, n("a")),
        (false, true, stratum, n("b")),
        (true, false, stratum, n("c")),
        (false, false, stratum, n("d")),
    ]
}

async fn query(groups: &[Vec<(bool, bool, i64, u64)>], calls: &str, grouped: bool) -> RecordBatch {
    let stratified = ["cmh_test", "cmh_exact", "breslow_day"]
        .iter()
        .any(|f| calls.contains(f));
    let (partitions, batch) = if grouped { (4, 13) } else { (1, 8192) };
    let ctx = SessionContext::new_with_config(
        SessionConfig::new()
            .with_target_partitions(partitions)
            .with_batch_size(batch),
    );
    discern_udfs::register_all(&ctx).unwrap();
    ctx.register_table("t", Arc::new(table(groups, partitions, batch, stratified)))
        .unwrap();
    let batches = if grouped {
        let sql = format!("SELECT case_id, {calls} FROM t GROUP BY case_id ORDER BY case_id");
        ctx.sql(&sql).await.unwrap().collect().await.unwrap()
    } else {
        let mut out = Vec::new();
        for id in 0..groups.len() {
            let sql = format!("SELECT {calls} FROM t WHERE case_id = {id}");
            out.extend(ctx.sql(&sql).await.unwrap().collect().await.unwrap());
        }
        out
    };
    datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
}

async fn two_by_two(grouped: bool) {
    let reference = common::reference("contingency.json");
    let cases = reference["tables"].as_array().unwrap();
    let groups: Vec<_> = cases.iter().map(|c| cells(c, 1)).collect();
    let calls = "odds_ratio(x, y) AS or95, odds_ratio(x, y, 0.9) AS or90, \
                 fisher_exact(x, y) AS fisher, chi2_test(x, y) AS yates, \
                 chi2_test(x, y, false) AS no_yates, \
                 fisher_exact(x, y, 0.95, 'less') AS fisher_less, \
                 fisher_exact(x, y, 0.95, 'greater') AS fisher_greater";
    let all = query(&groups, calls, grouped).await;
    let col = |n: &str| all.column_by_name(n).unwrap().clone();
    for (row, c) in cases.iter().enumerate() {
        let name = c["name"].as_str().unwrap();
        let e = &c["expected"];
        let what = |f: &str| format!("{f} [{name}] (grouped={grouped})");
        for (column, level) in [("or95", "0.95"), ("or90", "0.9")] {
            let expected = &e["odds_ratio"][level];
            if expected.is_null() {
                assert!(col(column).is_null(row), "{}", what(column));
                continue;
            }
            for f in ["odds_ratio", "lower", "upper"] {
                close(
                    field(&col(column), row, f),
                    &expected[f],
                    1e-12,
                    &what(&format!("odds_ratio {level}.{f}")),
                );
            }
        }
        let fisher = &e["fisher_exact"];
        if fisher.is_null() {
            assert!(col("fisher").is_null(row), "{}", what("fisher_exact"));
        } else {
            for f in ["odds_ratio", "lower", "upper"] {
                close(
                    field(&col("fisher"), row, f),
                    &fisher[f],
                    1e-9,
                    &what(&format!("fisher_exact.{f}")),
                );
            }
            close(
                field(&col("fisher"), row, "p"),
                &fisher["p"],
                1e-12,
                &what("fisher_exact.p"),
            );
            // R's own estimate, as far as its uniroot tolerance allows.
            let r = &c["r"]["fisher_exact"];
            let estimate = field(&col("fisher"), row, "odds_ratio").unwrap();
            if estimate.is_finite() && estimate > 0.0 && r["odds_ratio"].is_number() {
                let r_estimate = r["odds_ratio"].as_f64().unwrap();
                // Except where R's search itself fails (noted in the case name).
                if !name.contains("R's fisher estimate is far off") {
                    assert!(
                        ((estimate - r_estimate) / r_estimate).abs() < 1e-3,
                        "{}: {estimate} vs R {r_estimate}",
                        what("fisher_exact vs R")
                    );
                }
            }
        }
        for side in ["less", "greater"] {
            let column = format!("fisher_{side}");
            let expected = &e[column.as_str()];
            if expected.is_null() {
                assert!(col(&column).is_null(row), "{}", what(&column));
                continue;
            }
            for (f, rel) in [
                ("odds_ratio", 1e-9),
                ("lower", 1e-9),
                ("upper", 1e-9),
                ("p", 1e-12),
            ] {
                close(
                    field(&col(&column), row, f),
                    &expected[f],
                    rel,
                    &what(&format!("{column}.{f}")),
                );
            }
        }
        for column in ["yates", "no_yates"] {
            let expected = &e["chi2_test"][column];
            if expected.is_null() {
                assert!(col(column).is_null(row), "{}", what(column));
                continue;
            }
            for f in ["chi2", "p"] {
                close(
                    field(&col(column), row, f),
                    &expected[f],
                    1e-12,
                    &what(&format!("chi2_test {column}.{f}")),
                );
            }
        }
    }
}

#[tokio::test]
async fn two_by_two_tests_match_the_reference() {
    two_by_two(false).await;
}

#[tokio::test]
async fn two_by_two_tests_match_the_reference_when_counts_merge() {
    two_by_two(true).await;
}

async fn strata(grouped: bool) {
    let reference = common::reference("contingency.json");
    let cases = reference["strata"].as_array().unwrap();
    let groups: Vec<_> = cases
        .iter()
        .map(|c| {
            c["strata"]
                .as_array()
                .unwrap()
                .iter()
                .enumerate()
                .flat_map(|(k, t)| cells(t, k as i64))
                .collect()
        })
        .collect();
    let calls = "cmh_test(x, y, stratum) AS correct, cmh_test(x, y, stratum, false) AS no_correct, \
                 breslow_day(x, y, stratum) AS plain, breslow_day(x, y, stratum, true) AS tarone";
    let all = query(&groups, calls, grouped).await;
    for (row, c) in cases.iter().enumerate() {
        let name = c["name"].as_str().unwrap();
        for column in ["plain", "tarone"] {
            let got = all.column_by_name(column).unwrap();
            let expected = &c["expected"]["breslow_day"][column];
            let what = format!("breslow_day {column} [{name}] (grouped={grouped})");
            if expected.is_null() {
                assert!(got.is_null(row), "{what}");
                continue;
            }
            for f in ["chi2", "df", "p"] {
                close(
                    field(got, row, f),
                    &expected[f],
                    1e-12,
                    &format!("{what}.{f}"),
                );
            }
        }
        for column in ["correct", "no_correct"] {
            let got = all.column_by_name(column).unwrap();
            let expected = &c["expected"]["cmh"][column];
            let what = format!("cmh_test {column} [{name}] (grouped={grouped})");
            if expected.is_null() {
                assert!(
                    got.is_null(row) || field(got, row, "chi2").is_none(),
                    "{what}"
                );
                continue;
            }
            for f in ["chi2", "p", "odds_ratio", "lower", "upper"] {
                close(
                    field(got, row, f),
                    &expected[f],
                    1e-12,
                    &format!("{what}.{f}"),
                );
            }
        }
    }
}

#[tokio::test]
async fn cmh_matches_r_and_breslow_day_statsmodels() {
    strata(false).await;
    strata(true).await;
}

#[tokio::test]
async fn mcnemar_matches_r() {
    let reference = common::reference("contingency.json");
    let cases = reference["pairs"].as_array().unwrap();
    // One row per pair: x = the case is exposed, y = the control is exposed.
    let groups: Vec<_> = cases
        .iter()
        .map(|c| {
            let n = |k: &str| c[k].as_u64().unwrap();
            vec![
                (true, true, 0, n("both")),
                (true, false, 0, n("case_only")),
                (false, true, 0, n("control_only")),
                (false, false, 0, n("neither")),
            ]
        })
        .collect();
    for grouped in [false, true] {
        let all = query(
            &groups,
            "mcnemar(x, y) AS correct, mcnemar(x, y, false) AS no_correct",
            grouped,
        )
        .await;
        for (row, c) in cases.iter().enumerate() {
            let name = c["name"].as_str().unwrap();
            for column in ["correct", "no_correct"] {
                let got = all.column_by_name(column).unwrap();
                let expected = &c["expected"]["mcnemar"][column];
                let what = format!("mcnemar {column} [{name}] (grouped={grouped})");
                if expected.is_null() {
                    assert!(got.is_null(row), "{what}");
                    continue;
                }
                for f in ["chi2", "p"] {
                    close(
                        field(got, row, f),
                        &expected[f],
                        1e-12,
                        &format!("{what}.{f}"),
                    );
                }
            }
        }
    }
}

/// cmh_exact against exact integer convolutions and mpmath roots (`cmh_exact.py`, which
/// checks R's mantelhaen.test(exact = TRUE) to its uniroot tolerance): p 1e-12 relative,
/// estimate and interval 1e-9 (they are solved to double precision; the reference's roots
/// are exact to 50 digits).
#[tokio::test]
async fn cmh_exact_matches_the_exact_reference() {
    let reference = common::reference("cmh_exact.json");
    let cases = reference["cases"].as_array().unwrap();
    let groups: Vec<_> = cases
        .iter()
        .map(|c| {
            c["strata"]
                .as_array()
                .unwrap()
                .iter()
                .enumerate()
                .flat_map(|(k, t)| cells(t, k as i64))
                .collect()
        })
        .collect();
    for grouped in [false, true] {
        // Every case at its own level: one call per distinct level.
        let calls = "cmh_exact(x, y, stratum) AS l95, cmh_exact(x, y, stratum, 0.9) AS l90";
        let all = query(&groups, calls, grouped).await;
        for (row, c) in cases.iter().enumerate() {
            let name = c["name"].as_str().unwrap();
            let column = if c["level"].as_f64() == Some(0.9) {
                "l90"
            } else {
                "l95"
            };
            let got = all.column_by_name(column).unwrap();
            let expected = &c["expected"];
            let what = format!("cmh_exact [{name}] (grouped={grouped})");
            if expected.is_null() {
                assert!(got.is_null(row), "{what}: expected NULL");
                continue;
            }
            close(
                field(got, row, "p"),
                &expected["p"],
                1e-12,
                &format!("{what}.p"),
            );
            for f in ["odds_ratio", "lower", "upper"] {
                close(
                    field(got, row, f),
                    &expected[f],
                    1e-9,
                    &format!("{what}.{f}"),
                );
            }
        }
    }
}
