//! ks_test and wilcoxon_signed_rank against R (`testdata/reference/nonparametric.py` →
//! `nonparametric.json`: R 4.2.2's ks.test / wilcox.test, recomputed in exact integer
//! arithmetic and mpmath), through DataFusion with and without GROUP BY, over partitions and
//! tiny batches.
//!
//! Tolerances: d and V are exact fractions (1e-15); exact p-values 1e-12 (Discern sums path
//! probabilities in double-double, counts subsets exactly; far tails against exact integers:
//! `reference_exact_tails.rs`); asymptotic p-values 1e-12 against the Kolmogorov limit
//! and the normal tail (mpmath). R's own asymptotic KS value truncates Kolmogorov's series
//! below x = 1: it is checked to 4e-5 absolute, the documented gap.
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

fn close(actual: Option<f64>, expected: Option<f64>, rel: f64, what: &str) {
    match (actual, expected) {
        (None, None) => {}
        (Some(a), Some(e)) if e == 0.0 => assert_eq!(a, e, "{what}"),
        (Some(a), Some(e)) => assert!(
            ((a - e) / e).abs() <= rel,
            "{what}: got {a:e}, reference {e:e}"
        ),
        (a, e) => panic!("{what}: got {a:?}, reference {e:?}"),
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

fn session(partitions: usize, batch: usize) -> SessionContext {
    let ctx = SessionContext::new_with_config(
        SessionConfig::new()
            .with_target_partitions(partitions)
            .with_batch_size(batch),
    );
    discern_udfs::register_all(&ctx).unwrap();
    ctx
}

async fn collect(ctx: &SessionContext, sql: &str) -> RecordBatch {
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
}

async fn ks(partitions: usize, batch: usize) {
    let reference = common::reference("nonparametric.json");
    let cases = reference["two_sample"].as_array().unwrap();
    let ctx = session(partitions, batch);
    ctx.register_table("t", Arc::new(common::table(cases, partitions, batch)))
        .unwrap();
    let all = collect(
        &ctx,
        "SELECT case_id, ks_test(value, is_case) AS auto, ks_test(value, is_case, 'exact') AS exact, \
         ks_test(value, is_case, 'asymptotic') AS asymptotic FROM t GROUP BY case_id ORDER BY case_id",
    )
    .await;
    for (row, c) in cases.iter().enumerate() {
        let name = c["name"].as_str().unwrap();
        let e = &c["expected"]["ks_test"];
        let limit = c["expected"]["kolmogorov_limit_p"].as_f64();
        let (m, n) = {
            let labels = c["is_case"].as_array().unwrap();
            let values = c["value"].as_array().unwrap();
            let finite = |i: usize| common::decode(&values[i]).is_some_and(f64::is_finite);
            let count = |want: bool| {
                (0..labels.len())
                    .filter(|&i| labels[i].as_bool() == Some(want) && finite(i))
                    .count()
            };
            (count(true), count(false))
        };
        for method in ["auto", "exact", "asymptotic"] {
            let got = all.column_by_name(method).unwrap();
            let what = format!("ks_test {method} [{name}] ({partitions} partitions)");
            if e[method].is_null() {
                assert!(got.is_null(row), "{what}: expected NULL");
                continue;
            }
            close(
                field(got, row, "d"),
                e[method]["d"].as_f64(),
                1e-15,
                &format!("{what}.d"),
            );
            let exact = method == "exact" || (method == "auto" && m * n < 10_000);
            let p = field(got, row, "p");
            if exact {
                close(p, e[method]["p"].as_f64(), 1e-12, &format!("{what}.p"));
            } else {
                close(p, limit, 1e-12, &format!("{what}.p (Kolmogorov limit)"));
                let r = e[method]["p"].as_f64().unwrap();
                assert!(
                    (p.unwrap() - r).abs() < 4e-5,
                    "{what}.p vs R's truncated series"
                );
            }
        }
    }
}

#[tokio::test]
async fn ks_test_matches_r() {
    ks(1, 8192).await;
}

#[tokio::test]
async fn ks_test_matches_r_when_partial_states_merge() {
    ks(4, 7).await;
}

fn diffs(cases: &[Value], partitions: usize, batch: usize) -> MemTable {
    let schema = Arc::new(Schema::new(vec![
        Field::new("case_id", DataType::Int64, false),
        Field::new("d", DataType::Float64, true),
        Field::new("unused", DataType::Boolean, true),
    ]));
    let mut rows = Vec::new();
    for (id, c) in cases.iter().enumerate() {
        for v in c["diff"].as_array().unwrap() {
            rows.push((id as i64, common::decode(v)));
        }
    }
    let mut parts: Vec<Vec<RecordBatch>> = vec![Vec::new(); partitions];
    for (i, chunk) in rows.chunks(batch).enumerate() {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from_iter_values(chunk.iter().map(|r| r.0))),
            Arc::new(Float64Array::from_iter(chunk.iter().map(|r| r.1))),
            Arc::new(BooleanArray::from_iter(chunk.iter().map(|_| Some(true)))),
        ];
        parts[i % partitions].push(RecordBatch::try_new(schema.clone(), columns).unwrap());
    }
    MemTable::try_new(schema, parts).unwrap()
}

async fn signed_rank(partitions: usize, batch: usize) {
    let reference = common::reference("nonparametric.json");
    let cases = reference["one_sample"].as_array().unwrap();
    let ctx = session(partitions, batch);
    ctx.register_table("t", Arc::new(diffs(cases, partitions, batch)))
        .unwrap();
    let all = collect(
        &ctx,
        "SELECT case_id, wilcoxon_signed_rank(d) AS auto, wilcoxon_signed_rank(d, 'exact') AS exact, \
         wilcoxon_signed_rank(d, 'asymptotic') AS asymptotic FROM t GROUP BY case_id ORDER BY case_id",
    )
    .await;
    for (row, c) in cases.iter().enumerate() {
        let name = c["name"].as_str().unwrap();
        let e = &c["expected"]["wilcoxon_signed_rank"];
        let nonzero = c["diff"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| common::decode(v).is_some_and(|x| x.is_finite() && x != 0.0))
            .count();
        for method in ["auto", "exact", "asymptotic"] {
            let got = all.column_by_name(method).unwrap();
            let what = format!("wilcoxon_signed_rank {method} [{name}] ({partitions} partitions)");
            if e[method].is_null() {
                assert!(got.is_null(row), "{what}: expected NULL");
                continue;
            }
            close(
                field(got, row, "statistic"),
                e[method]["statistic"].as_f64(),
                1e-15,
                &format!("{what}.statistic"),
            );
            let p = field(got, row, "p");
            if method == "exact" && nonzero > 1000 {
                // Beyond 1,000 differences Discern does not compute the exact distribution
                // (R's overflows from about 1,040).
                assert_eq!(p, None, "{what}.p");
                continue;
            }
            close(p, e[method]["p"].as_f64(), 1e-12, &format!("{what}.p"));
        }
    }
}

#[tokio::test]
async fn wilcoxon_signed_rank_matches_r() {
    signed_rank(1, 8192).await;
    signed_rank(3, 5).await;
}
