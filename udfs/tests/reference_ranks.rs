//! The rank statistics against exact / scipy reference values (`testdata/reference/ranks.py`
//! → `ranks.json`), through DataFusion on the Accumulator, GroupsAccumulator and merge paths.
//!
//! auc_ci is checked against DeLong's definition evaluated in exact rationals (1e-12).
//! Tolerances: the AUC and u are exact rationals with small denominators (1e-15 relative);
//! z (mpmath, 60 digits), the asymptotic p (scipy's normal tail) and the exact p 1e-12 (the
//! exact p is a ratio of exact integer counts; scipy rounds its recursion but agrees to ~1e-13
//! on these cases; far tails against exact integers: `reference_exact_tails.rs`). With
//! `correct = false`, z and the asymptotic p without the continuity correction (scipy's
//! use_continuity=False, mpmath z), same tolerances.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::Float64Type;
use datafusion::prelude::{SessionConfig, SessionContext};
use serde_json::Value;

fn close(actual: Option<f64>, expected: &Value, rel: f64, what: &str) {
    match (actual, expected.as_f64()) {
        (None, None) => {}
        (Some(a), Some(e)) => {
            let ok = if e == 0.0 {
                a.abs() < 1e-300
            } else {
                ((a - e) / e).abs() <= rel
            };
            assert!(ok, "{what}: got {a:e}, reference {e:e}");
        }
        (a, _) => panic!("{what}: got {a:?}, reference {expected}"),
    }
}

fn field(column: &ArrayRef, row: usize, name: &str) -> Option<f64> {
    let s = column.as_struct();
    let f = s
        .column_by_name(name)
        .unwrap()
        .as_primitive::<Float64Type>();
    (!column.is_null(row) && !f.is_null(row)).then(|| f.value(row))
}

async fn run(partitions: usize, batch: usize, grouped: bool) {
    let reference = common::reference("ranks.json");
    let cases = reference["cases"].as_array().unwrap();
    let ctx = SessionContext::new_with_config(
        SessionConfig::new()
            .with_target_partitions(partitions)
            .with_batch_size(batch),
    );
    discern_udfs::register_all(&ctx).unwrap();
    ctx.register_table("t", Arc::new(common::table(cases, partitions, batch)))
        .unwrap();
    let calls = "auc(value, is_case) AS auc, mann_whitney(value, is_case) AS auto, \
                 mann_whitney(value, is_case, 'asymptotic') AS asymptotic, \
                 mann_whitney(value, is_case, 'exact') AS exact, \
                 mann_whitney(value, is_case, 'auto', false) AS auto_nc, \
                 mann_whitney(value, is_case, 'asymptotic', false) AS asymptotic_nc, \
                 mann_whitney(value, is_case, 'exact', false) AS exact_nc, \
                 auc_ci(value, is_case) AS ci95, auc_ci(value, is_case, 0.8) AS ci80";
    let batches = if grouped {
        let sql = format!("SELECT case_id, {calls} FROM t GROUP BY case_id ORDER BY case_id");
        ctx.sql(&sql).await.unwrap().collect().await.unwrap()
    } else {
        let mut out = Vec::new();
        for id in 0..cases.len() {
            let sql = format!("SELECT {calls} FROM t WHERE case_id = {id}");
            out.extend(ctx.sql(&sql).await.unwrap().collect().await.unwrap());
        }
        out
    };
    let all = datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
    assert_eq!(all.num_rows(), cases.len());
    let path = format!("{partitions} partitions, batches of {batch}, grouped={grouped}");
    for (row, c) in cases.iter().enumerate() {
        let name = c["name"].as_str().unwrap();
        let expected = &c["expected"];
        let auc = all.column_by_name("auc").unwrap();
        let auc = (!auc.is_null(row)).then(|| auc.as_primitive::<Float64Type>().value(row));
        close(
            auc,
            &expected["auc"],
            1e-15,
            &format!("auc [{name}] ({path})"),
        );
        for (column, level) in [("ci95", "0.95"), ("ci80", "0.8")] {
            let column = all.column_by_name(column).unwrap();
            let e = &expected["auc_ci"][level];
            let what = format!("auc_ci {level} [{name}] ({path})");
            if e.is_null() {
                assert!(column.is_null(row), "{what}: expected NULL");
                continue;
            }
            for f in ["auc", "se", "lower", "upper"] {
                close(field(column, row, f), &e[f], 1e-12, &format!("{what}.{f}"));
            }
        }
        for (method, column, key) in [
            ("auto", "auto", "mann_whitney"),
            ("asymptotic", "asymptotic", "mann_whitney"),
            ("exact", "exact", "mann_whitney"),
            ("auto", "auto_nc", "mann_whitney_no_correct"),
            ("asymptotic", "asymptotic_nc", "mann_whitney_no_correct"),
            ("exact", "exact_nc", "mann_whitney_no_correct"),
        ] {
            let column = all.column_by_name(column).unwrap();
            let e = &expected[key][method];
            let what = format!("{key} {method} [{name}] ({path})");
            if e.is_null() {
                assert!(column.is_null(row), "{what}: expected NULL");
                continue;
            }
            close(
                field(column, row, "u"),
                &e["u"],
                1e-15,
                &format!("{what}.u"),
            );
            close(
                field(column, row, "z"),
                &e["z"],
                1e-12,
                &format!("{what}.z"),
            );
            close(
                field(column, row, "p"),
                &e["p"],
                1e-12,
                &format!("{what}.p"),
            );
        }
    }
}

#[tokio::test]
async fn ranks_match_the_reference_without_group_by() {
    run(1, 8192, false).await;
}

#[tokio::test]
async fn ranks_match_the_reference_grouped() {
    run(1, 8192, true).await;
}

#[tokio::test]
async fn ranks_match_the_reference_when_partial_states_merge() {
    run(4, 7, true).await;
    run(3, 5, false).await;
}

#[tokio::test]
async fn a_bad_method_is_a_plan_error() {
    let ctx = SessionContext::new();
    discern_udfs::register_all(&ctx).unwrap();
    let err = match ctx.sql("SELECT mann_whitney(1.0, true, 'bogus')").await {
        Err(e) => e.to_string(),
        Ok(df) => df.collect().await.unwrap_err().to_string(),
    };
    assert!(
        err.contains("method must be 'auto', 'asymptotic' or 'exact'"),
        "{err}"
    );
}

/// auc_ci_bootstrap against the documented algorithm replayed in Python (`auc_bootstrap.py`:
/// SplitMix64, Lemire's draws, exact AUCs, type-7 quantiles) to 1e-15, the same bits over
/// one partition and over three partitions of 7-row batches, and pROC's
/// ci.auc(method = "bootstrap", boot.stratified = TRUE) at 20,000 replicates within the
/// Monte-Carlo tolerance the script records (5 standard errors of the difference).
#[tokio::test]
async fn auc_ci_bootstrap_replays_and_agrees_with_proc() {
    use serde_json::json;
    let reference = common::reference("auc_bootstrap.json");
    let sections = ["replay", "proc"];
    for section in sections {
        let cases: Vec<Value> = reference[section]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let mut values = c["cases"].as_array().unwrap().clone();
                let n1 = values.len();
                values.extend(c["controls"].as_array().unwrap().iter().cloned());
                let labels: Vec<bool> = (0..values.len()).map(|i| i < n1).collect();
                json!({"value": values, "is_case": labels})
            })
            .collect();
        let mut results: Vec<Vec<[f64; 3]>> = Vec::new();
        for (partitions, batch) in [(1, 8192), (3, 7)] {
            let ctx = SessionContext::new_with_config(
                SessionConfig::new()
                    .with_target_partitions(partitions)
                    .with_batch_size(batch),
            );
            discern_udfs::register_all(&ctx).unwrap();
            ctx.register_table("t", Arc::new(common::table(&cases, partitions, batch)))
                .unwrap();
            let mut got = Vec::new();
            for (id, c) in reference[section].as_array().unwrap().iter().enumerate() {
                let sql = format!(
                    "SELECT auc_ci_bootstrap(value, is_case, {}, {}, {}) AS r FROM t \
                     WHERE case_id = {id}",
                    c["level"], c["replicates"], c["seed"]
                );
                let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
                let r = batches[0].column(0).as_struct();
                let f = |name: &str| {
                    r.column_by_name(name)
                        .unwrap()
                        .as_primitive::<Float64Type>()
                        .value(0)
                };
                got.push([f("auc"), f("lower"), f("upper")]);
            }
            results.push(got);
        }
        assert_eq!(
            results[0], results[1],
            "{section}: partitioning changed the interval"
        );
        for (c, [auc, lower, upper]) in reference[section]
            .as_array()
            .unwrap()
            .iter()
            .zip(&results[0])
        {
            let name = c["name"].as_str().unwrap();
            let want = if section == "replay" { c } else { &c["replay"] };
            for (what, got, want) in [
                ("lower", *lower, want["lower"].as_f64().unwrap()),
                ("upper", *upper, want["upper"].as_f64().unwrap()),
            ] {
                assert!(
                    (got - want).abs() <= 1e-15,
                    "{name} {what}: {got} vs replay {want}"
                );
            }
            if section == "replay" {
                assert_eq!(*auc, c["auc"].as_f64().unwrap(), "{name}: auc");
            } else {
                let tolerance = c["tolerance"].as_f64().unwrap();
                for (what, got) in [("lower", *lower), ("upper", *upper)] {
                    let proc = c["proc"][what].as_f64().unwrap();
                    assert!(
                        (got - proc).abs() <= tolerance,
                        "{name} {what}: {got} vs pROC {proc} (Monte-Carlo tolerance {tolerance})"
                    );
                }
            }
        }
    }
}
