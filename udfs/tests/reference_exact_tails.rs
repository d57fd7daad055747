//! Exact p-values far in their tails against exact integer arithmetic
//! (`testdata/reference/exact_tails.py` → `exact_tails.json`): mann_whitney 'exact' from 1×1
//! to the largest groups its limit admits, wilcoxon_signed_rank 'exact' up to n = 1000,
//! ks_test 'exact' with and without ties up to 1000 × 1000, fisher_exact down to 7e-300 and
//! below f64's range; each at p near 1, near 0.5 and as far out as the size allows.
//!
//! Oracle: the exact ratio of two integer counts, rounded once. Tolerance: 1e-12 relative for
//! every p (the functions promise it; they are within a few ulps in practice), and exactly 0
//! where the true p is below f64's range. Every p must lie in [0, 1]: an exact p-value that
//! goes negative or above 1 fails here whatever its size. Run through DataFusion over two
//! partitions of small batches, so that partial states merge.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, RecordBatch,
};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use serde_json::Value;

const PARTITIONS: usize = 2;
const BATCH: usize = 4096;

/// `actual` is a probability within 1e-12 of `expected` relatively (0 exactly for 0).
fn check_p(actual: Option<f64>, expected: f64, what: &str) {
    let p = actual.unwrap_or_else(|| panic!("{what}: p is NULL, expected {expected:e}"));
    assert!(
        (0.0..=1.0).contains(&p),
        "{what}: p = {p:e} is not a probability"
    );
    if expected == 0.0 {
        assert_eq!(p, 0.0, "{what}");
    } else {
        assert!(
            ((p - expected) / expected).abs() <= 1e-12,
            "{what}: got {p:e}, exact {expected:e} (relative error {:e})",
            ((p - expected) / expected).abs()
        );
    }
}

fn session() -> SessionContext {
    let ctx = SessionContext::new_with_config(
        SessionConfig::new()
            .with_target_partitions(PARTITIONS)
            .with_batch_size(BATCH),
    );
    discern_udfs::register_all(&ctx).unwrap();
    ctx
}

/// Rows (case_id, value, flag) as a table `t(case_id, value, flag)` over the partitions.
fn register(ctx: &SessionContext, rows: &[(i64, f64, bool)]) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("case_id", DataType::Int64, false),
        Field::new("value", DataType::Float64, false),
        Field::new("flag", DataType::Boolean, false),
    ]));
    let mut parts: Vec<Vec<RecordBatch>> = vec![Vec::new(); PARTITIONS];
    for (i, chunk) in rows.chunks(BATCH).enumerate() {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from_iter_values(chunk.iter().map(|r| r.0))),
            Arc::new(Float64Array::from_iter_values(chunk.iter().map(|r| r.1))),
            Arc::new(BooleanArray::from_iter(chunk.iter().map(|r| Some(r.2)))),
        ];
        parts[i % PARTITIONS].push(RecordBatch::try_new(schema.clone(), columns).unwrap());
    }
    ctx.register_table("t", Arc::new(MemTable::try_new(schema, parts).unwrap()))
        .unwrap();
}

async fn collect(ctx: &SessionContext, sql: &str) -> RecordBatch {
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
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

/// One function's cases.
fn section(reference: &Value, key: &str) -> Vec<Value> {
    reference[key].as_array().unwrap().clone()
}

/// Labels in the order of the values ("1" a case), position k getting value k.
fn labelled_rows(id: i64, labels: &str, runs: Option<&Vec<Value>>) -> Vec<(i64, f64, bool)> {
    let mut value_of = Vec::with_capacity(labels.len());
    match runs {
        None => value_of.extend((0..labels.len()).map(|k| k as f64)),
        Some(runs) => {
            for (r, size) in runs.iter().enumerate() {
                value_of.extend(std::iter::repeat_n(
                    r as f64,
                    size.as_u64().unwrap() as usize,
                ));
            }
        }
    }
    assert_eq!(value_of.len(), labels.len());
    labels
        .bytes()
        .zip(value_of)
        .map(|(l, v)| (id, v, l == b'1'))
        .collect()
}

#[tokio::test]
async fn mann_whitney_exact_tails() {
    let reference = common::reference("exact_tails.json");
    let cases = section(&reference, "mann_whitney");
    let ctx = session();
    let mut rows = Vec::new();
    for (id, c) in cases.iter().enumerate() {
        rows.extend(labelled_rows(
            id as i64,
            c["labels"].as_str().unwrap(),
            None,
        ));
    }
    register(&ctx, &rows);
    let all = collect(
        &ctx,
        "SELECT case_id, mann_whitney(value, flag, 'exact') AS r FROM t GROUP BY case_id",
    )
    .await;
    let ids = all.column(0).as_primitive::<Int64Type>();
    let r = all.column_by_name("r").unwrap();
    let mut checked = 0;
    for (id, c) in cases.iter().enumerate() {
        let name = c["name"].as_str().unwrap();
        let expected_u = c["u"].as_f64().unwrap();
        let expected_p = c["p"].as_f64().unwrap();
        let row = (0..ids.len()).find(|&i| ids.value(i) == id as i64).unwrap();
        assert_eq!(field(r, row, "u"), Some(expected_u), "{name}: u");
        check_p(
            field(r, row, "p"),
            expected_p,
            &format!("mann_whitney [{name}]"),
        );
        checked += 1;
    }
    assert!(checked >= 30, "{checked} cases");
}

#[tokio::test]
async fn wilcoxon_signed_rank_exact_tails() {
    let reference = common::reference("exact_tails.json");
    let cases = section(&reference, "signed_rank");
    let ctx = session();
    let mut rows = Vec::new();
    for (id, c) in cases.iter().enumerate() {
        for (k, sign) in c["signs"].as_str().unwrap().bytes().enumerate() {
            let rank = (k + 1) as f64;
            rows.push((id as i64, if sign == b'+' { rank } else { -rank }, true));
        }
    }
    register(&ctx, &rows);
    let all = collect(
        &ctx,
        "SELECT case_id, wilcoxon_signed_rank(value, 'exact') AS r FROM t GROUP BY case_id \
         ORDER BY case_id",
    )
    .await;
    let r = all.column_by_name("r").unwrap();
    assert_eq!(r.len(), cases.len());
    for (row, c) in cases.iter().enumerate() {
        let name = c["name"].as_str().unwrap();
        assert_eq!(
            field(r, row, "statistic"),
            c["v"].as_f64(),
            "{name}: statistic"
        );
        check_p(
            field(r, row, "p"),
            c["p"].as_f64().unwrap(),
            &format!("wilcoxon_signed_rank [{name}]"),
        );
    }
}

#[tokio::test]
async fn ks_test_exact_tails() {
    let reference = common::reference("exact_tails.json");
    let cases = section(&reference, "ks");
    let ctx = session();
    let mut rows = Vec::new();
    for (id, c) in cases.iter().enumerate() {
        let labels = c["labels"].as_str().unwrap();
        rows.extend(labelled_rows(id as i64, labels, c["runs"].as_array()));
    }
    register(&ctx, &rows);
    let all = collect(
        &ctx,
        "SELECT case_id, ks_test(value, flag, 'exact') AS r FROM t GROUP BY case_id \
         ORDER BY case_id",
    )
    .await;
    let r = all.column_by_name("r").unwrap();
    assert_eq!(r.len(), cases.len());
    for (row, c) in cases.iter().enumerate() {
        let name = c["name"].as_str().unwrap();
        let d = field(r, row, "d").unwrap();
        let expected_d = c["d"].as_f64().unwrap();
        assert!(
            (d - expected_d).abs() <= 1e-15,
            "{name}: d {d} vs {expected_d}"
        );
        check_p(
            field(r, row, "p"),
            c["p"].as_f64().unwrap(),
            &format!("ks_test [{name}]"),
        );
    }
}

#[tokio::test]
async fn fisher_exact_tails() {
    let reference = common::reference("exact_tails.json");
    let cases = section(&reference, "fisher");
    let ctx = session();
    let mut rows = Vec::new();
    for (id, c) in cases.iter().enumerate() {
        let cells: Vec<u64> = c["table"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        // a: exposed cases, b: unexposed cases, c: exposed controls, d: unexposed controls.
        // `value` carries exposure (1 / 0), `flag` the label.
        for (count, exposed, case) in [
            (cells[0], 1.0, true),
            (cells[1], 0.0, true),
            (cells[2], 1.0, false),
            (cells[3], 0.0, false),
        ] {
            rows.extend(std::iter::repeat_n(
                (id as i64, exposed, case),
                count as usize,
            ));
        }
    }
    register(&ctx, &rows);
    let all = collect(
        &ctx,
        "SELECT case_id, fisher_exact(value = 1.0, flag) AS r FROM t GROUP BY case_id \
         ORDER BY case_id",
    )
    .await;
    let r = all.column_by_name("r").unwrap();
    assert_eq!(r.len(), cases.len());
    for (row, c) in cases.iter().enumerate() {
        let name = c["name"].as_str().unwrap();
        check_p(
            field(r, row, "p"),
            c["p"].as_f64().unwrap(),
            &format!("fisher_exact [{name}]"),
        );
    }
}

/// Rows of a case given as decimal strings: cases (flag true) then controls.
fn sample_rows(id: i64, c: &Value) -> Vec<(i64, f64, bool)> {
    let mut rows = Vec::new();
    for (key, flag) in [("cases", true), ("controls", false)] {
        for v in c[key].as_array().unwrap() {
            rows.push((id, common::decode(v).unwrap(), flag));
        }
    }
    rows
}

/// mann_whitney 'exact' with ties: the exact distribution given the midranks, against exact
/// integer counts (`exact_ties.py`, cross-checked there with exactRankTests::wilcox.exact),
/// 1e-12 relative; NULL beyond 10,000 pairs, where the issue-12 example now falls.
#[tokio::test]
async fn mann_whitney_exact_with_ties() {
    let reference = common::reference("exact_ties.json");
    let cases = section(&reference, "mann_whitney");
    let ctx = session();
    let mut rows = Vec::new();
    for (id, c) in cases.iter().enumerate() {
        if c["sql"].is_null() {
            rows.extend(sample_rows(id as i64, c));
        }
    }
    register(&ctx, &rows);
    let all = collect(
        &ctx,
        "SELECT case_id, mann_whitney(value, flag, 'exact') AS r, \
         mann_whitney(value, flag) AS auto FROM t GROUP BY case_id",
    )
    .await;
    let ids = all.column(0).as_primitive::<Int64Type>();
    for (id, c) in cases.iter().enumerate() {
        let name = c["name"].as_str().unwrap();
        let (column, row) = match c["sql"].as_str() {
            Some(sql) => (
                collect(&ctx, sql)
                    .await
                    .column_by_name("r")
                    .unwrap()
                    .clone(),
                0,
            ),
            None => {
                let row = (0..ids.len()).find(|&i| ids.value(i) == id as i64).unwrap();
                // 'auto' stays scipy's rule: the normal approximation with ties.
                let auto = all.column_by_name("auto").unwrap();
                if c["p"].as_f64().is_some_and(|p| p < 1.0) {
                    assert_ne!(field(auto, row, "p"), c["p"].as_f64(), "{name}: auto");
                }
                (all.column_by_name("r").unwrap().clone(), row)
            }
        };
        assert_eq!(field(&column, row, "u"), c["u"].as_f64(), "{name}: u");
        match c["p"].as_f64() {
            Some(p) => check_p(field(&column, row, "p"), p, &format!("[{name}]")),
            None => assert_eq!(field(&column, row, "p"), None, "{name}: beyond the limit"),
        }
    }
}

/// wilcoxon_signed_rank 'exact' with ties and zeros, zeros dropped ('wilcox', as
/// exactRankTests) or ranked then dropped ('pratt'): exact integer counts, 1e-12 relative.
#[tokio::test]
async fn wilcoxon_signed_rank_exact_with_ties_and_zeros() {
    let reference = common::reference("exact_ties.json");
    let cases = section(&reference, "signed_rank");
    let ctx = session();
    let mut rows = Vec::new();
    for (id, c) in cases.iter().enumerate() {
        for v in c["diffs"].as_array().unwrap() {
            rows.push((id as i64, common::decode(v).unwrap(), true));
        }
    }
    register(&ctx, &rows);
    let all = collect(
        &ctx,
        "SELECT case_id, wilcoxon_signed_rank(value, 'exact') AS wilcox, \
         wilcoxon_signed_rank(value, 'exact', true, 'pratt') AS pratt \
         FROM t GROUP BY case_id ORDER BY case_id",
    )
    .await;
    assert_eq!(all.num_rows(), cases.len());
    for (row, c) in cases.iter().enumerate() {
        let name = c["name"].as_str().unwrap();
        for key in ["wilcox", "pratt"] {
            let column = all.column_by_name(key).unwrap();
            let e = &c[key];
            if e.is_null() {
                assert!(column.is_null(row), "{name} {key}: expected NULL");
                continue;
            }
            assert_eq!(
                field(column, row, "statistic"),
                e["statistic"].as_f64(),
                "{name} {key}: V"
            );
            check_p(
                field(column, row, "p"),
                e["p"].as_f64().unwrap(),
                &format!("[{name}] {key}"),
            );
        }
    }
}
