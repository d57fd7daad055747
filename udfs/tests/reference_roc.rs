//! The ROC functions against R's pROC 1.18 (`testdata/reference/roc.R` → `roc.json`), through
//! DataFusion on the Accumulator, GroupsAccumulator and merge paths.
//!
//! Tolerance: 1e-12 relative plus 1e-15 absolute. pROC's arithmetic is reproduced rule for
//! rule, so most values agree to the bit; R's `sum` accumulates in extended precision where
//! Discern compensates, which leaves 1–2 ulp on some areas, and pROC's auc_a / auc_b in
//! roc_test are trapezoid sums where Discern averages placement values (equal in exact
//! arithmetic).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, RecordBatch,
};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use serde_json::Value;

/// An expected number: a JSON number, "Infinity"/"-Infinity", or null.
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Null => None,
        Value::String(s) if s == "Infinity" => Some(f64::INFINITY),
        Value::String(s) if s == "-Infinity" => Some(f64::NEG_INFINITY),
        Value::Number(n) => n.as_f64(),
        other => panic!("unexpected reference value {other}"),
    }
}

fn close(actual: Option<f64>, expected: &Value, what: &str) {
    match (actual, number(expected)) {
        (None, None) => {}
        (Some(a), Some(e)) if a.is_infinite() || e.is_infinite() => {
            assert_eq!(a, e, "{what}")
        }
        (Some(a), Some(e)) => assert!(
            (a - e).abs() <= 1e-12 * e.abs() + 1e-15,
            "{what}: got {a:e}, pROC {e:e}"
        ),
        (a, _) => panic!("{what}: got {a:?}, pROC {expected}"),
    }
}

fn float(column: &ArrayRef, row: usize) -> Option<f64> {
    (!column.is_null(row)).then(|| column.as_primitive::<Float64Type>().value(row))
}

fn field(column: &ArrayRef, row: usize, name: &str) -> Option<f64> {
    if column.is_null(row) {
        return None;
    }
    float(column.as_struct().column_by_name(name).unwrap(), row)
}

const POINTS: [&str; 5] = ["0.9", "0.5", "0.95", "1", "0"];
const RANGES: [(f64, f64); 6] = [
    (0.8, 1.0),
    (0.9, 1.0),
    (0.5, 0.9),
    (0.0, 1.0),
    (0.61, 0.62),
    (0.0, 0.3),
];

async fn collect(ctx: &SessionContext, sql: &str) -> RecordBatch {
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
}

fn check_case(all: &RecordBatch, row: usize, c: &Value, path: &str) {
    let name = c["name"].as_str().unwrap();
    let e = &c["expected"];
    let col = |n: &str| all.column_by_name(n).unwrap().clone();
    let what = |f: &str| format!("{f} [{name}] ({path})");
    if e["auc"].is_null() {
        for n in ["youden", "curve", "sens_0", "pauc_0_false"] {
            assert!(col(n).is_null(row), "{}", what(n));
        }
        return;
    }
    let youden = col("youden");
    for f in ["threshold", "sensitivity", "specificity", "j"] {
        close(
            field(&youden, row, f),
            &e["youden"][f],
            &what(&format!("youden.{f}")),
        );
    }
    for (i, key) in POINTS.iter().enumerate() {
        close(
            float(&col(&format!("sens_{i}")), row),
            &e["sensitivity_at_specificity"][key],
            &what(&format!("sensitivity_at_specificity {key}")),
        );
        close(
            float(&col(&format!("spec_{i}")), row),
            &e["specificity_at_sensitivity"][key],
            &what(&format!("specificity_at_sensitivity {key}")),
        );
    }
    for r in e["partial_auc"].as_array().unwrap() {
        let (lo, hi) = (
            r["spec_low"].as_f64().unwrap(),
            r["spec_high"].as_f64().unwrap(),
        );
        // serde_json's float parser may be an ulp off: match the range approximately.
        let i = RANGES
            .iter()
            .position(|x| (x.0 - lo).abs() < 1e-9 && (x.1 - hi).abs() < 1e-9)
            .unwrap();
        let (lo, hi) = RANGES[i];
        let mcclish = r["mcclish"].as_bool().unwrap();
        close(
            float(&col(&format!("pauc_{i}_{mcclish}")), row),
            &r["value"],
            &what(&format!("partial_auc({lo}, {hi}, {mcclish})")),
        );
    }
    let curve = col("curve");
    let curve = curve.as_list::<i32>().value(row);
    let expected = e["roc_curve"].as_array().unwrap();
    assert_eq!(curve.len(), expected.len(), "{}", what("roc_curve length"));
    let points = curve.as_struct();
    for (i, p) in expected.iter().enumerate() {
        for f in ["threshold", "sensitivity", "specificity"] {
            close(
                float(points.column_by_name(f).unwrap(), i),
                &p[f],
                &what(&format!("roc_curve[{i}].{f}")),
            );
        }
    }
}

async fn single_marker(partitions: usize, batch: usize) {
    let reference = common::reference("roc.json");
    let cases = reference["cases"].as_array().unwrap();
    let ctx = SessionContext::new_with_config(
        SessionConfig::new()
            .with_target_partitions(partitions)
            .with_batch_size(batch),
    );
    discern_udfs::register_all(&ctx).unwrap();
    ctx.register_table("t", Arc::new(common::table(cases, partitions, batch)))
        .unwrap();
    let mut calls = vec![
        "youden(value, is_case) AS youden".to_string(),
        "roc_curve(value, is_case) AS curve".to_string(),
    ];
    for (i, x) in POINTS.iter().enumerate() {
        calls.push(format!(
            "sensitivity_at_specificity(value, is_case, {x}) AS sens_{i}"
        ));
        calls.push(format!(
            "specificity_at_sensitivity(value, is_case, {x}) AS spec_{i}"
        ));
    }
    for (i, (lo, hi)) in RANGES.iter().enumerate() {
        for mcclish in [false, true] {
            calls.push(format!(
                "partial_auc(value, is_case, {lo:?}, {hi:?}, {mcclish}) AS pauc_{i}_{mcclish}"
            ));
        }
    }
    let sql = format!(
        "SELECT case_id, {} FROM t GROUP BY case_id ORDER BY case_id",
        calls.join(", ")
    );
    let all = collect(&ctx, &sql).await;
    assert_eq!(all.num_rows(), cases.len());
    let path = format!("{partitions} partitions, batches of {batch}");
    for (row, c) in cases.iter().enumerate() {
        check_case(&all, row, c, &path);
    }
    // The extra attained point of each case, without GROUP BY (the Accumulator path).
    for (id, c) in cases.iter().enumerate() {
        let e = &c["expected"];
        if e["auc"].is_null() {
            continue;
        }
        for (function, key) in [
            ("sensitivity_at_specificity", "sensitivity_at_specificity"),
            ("specificity_at_sensitivity", "specificity_at_sensitivity"),
        ] {
            for (x, value) in e[key].as_object().unwrap() {
                let x: f64 = x.parse().unwrap();
                let sql = format!(
                    "SELECT {function}(value, is_case, {x:?}) AS r FROM t WHERE case_id = {id}"
                );
                let out = collect(&ctx, &sql).await;
                let name = c["name"].as_str().unwrap();
                close(
                    float(out.column(0), 0),
                    value,
                    &format!("{function}({x:?}) [{name}] without GROUP BY"),
                );
            }
        }
    }
}

#[tokio::test]
async fn roc_functions_match_proc() {
    single_marker(1, 8192).await;
}

#[tokio::test]
async fn roc_functions_match_proc_when_partial_states_merge() {
    single_marker(4, 7).await;
}

fn paired_table(cases: &[Value], partitions: usize, batch: usize) -> MemTable {
    let schema = Arc::new(Schema::new(vec![
        Field::new("case_id", DataType::Int64, false),
        Field::new("a", DataType::Float64, true),
        Field::new("b", DataType::Float64, true),
        Field::new("is_case", DataType::Boolean, true),
    ]));
    let mut rows = Vec::new();
    for (id, c) in cases.iter().enumerate() {
        let a = c["value_a"].as_array().unwrap();
        let b = c["value_b"].as_array().unwrap();
        let labels = c["is_case"].as_array().unwrap();
        for ((x, y), l) in a.iter().zip(b).zip(labels) {
            rows.push((id as i64, common::decode(x), common::decode(y), l.as_bool()));
        }
    }
    let mut parts: Vec<Vec<RecordBatch>> = vec![Vec::new(); partitions];
    for (i, chunk) in rows.chunks(batch).enumerate() {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from_iter_values(chunk.iter().map(|r| r.0))),
            Arc::new(Float64Array::from_iter(chunk.iter().map(|r| r.1))),
            Arc::new(Float64Array::from_iter(chunk.iter().map(|r| r.2))),
            Arc::new(BooleanArray::from_iter(chunk.iter().map(|r| r.3))),
        ];
        parts[i % partitions].push(RecordBatch::try_new(schema.clone(), columns).unwrap());
    }
    MemTable::try_new(schema, parts).unwrap()
}

async fn two_markers(partitions: usize, batch: usize) {
    let reference = common::reference("roc.json");
    let cases = reference["paired_cases"].as_array().unwrap();
    let ctx = SessionContext::new_with_config(
        SessionConfig::new()
            .with_target_partitions(partitions)
            .with_batch_size(batch),
    );
    discern_udfs::register_all(&ctx).unwrap();
    ctx.register_table("t", Arc::new(paired_table(cases, partitions, batch)))
        .unwrap();
    let all = collect(
        &ctx,
        "SELECT case_id, roc_test(a, b, is_case) AS r FROM t GROUP BY case_id ORDER BY case_id",
    )
    .await;
    let r = all.column_by_name("r").unwrap();
    for (row, c) in cases.iter().enumerate() {
        let name = c["name"].as_str().unwrap();
        let e = &c["expected"]["roc_test"];
        let what = |f: &str| format!("roc_test.{f} [{name}] ({partitions} partitions)");
        if e.is_null() {
            // pROC fails on these (an empty group, or one case with equal AUCs): Discern
            // gives the AUCs when both groups have a sample and NULL statistics.
            match c["expected"]["roc_test_error"].as_str() {
                Some(_) => assert!(!r.is_null(row), "{}", what("AUCs")),
                None => assert!(r.is_null(row), "{}", what("(empty group)")),
            }
            assert_eq!(field(r, row, "z"), None, "{}", what("z"));
            assert_eq!(field(r, row, "p"), None, "{}", what("p"));
            continue;
        }
        for f in ["auc_a", "auc_b"] {
            close(field(r, row, f), &e[f], &what(f));
        }
        // pROC reports z = ±Inf, p = 0 for unequal AUCs with zero variance; Discern NULL.
        let degenerate = number(&e["z"]).is_some_and(f64::is_infinite);
        for f in ["z", "p", "diff_lower", "diff_upper"] {
            if degenerate {
                assert_eq!(field(r, row, f), None, "{}", what(f));
            } else {
                close(field(r, row, f), &e[f], &what(f));
            }
        }
    }
}

#[tokio::test]
async fn roc_test_matches_proc() {
    two_markers(1, 8192).await;
    two_markers(3, 5).await;
}
