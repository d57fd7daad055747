//! The moment statistics against scipy / mpmath reference values
//! (`testdata/reference/moments.py` → `moments.json`), through DataFusion, on three paths:
//! one Accumulator per case (no GROUP BY), one GroupsAccumulator over all cases (GROUP BY),
//! and tiny batches over several partitions (partial states merged); and beside a rank
//! statistic, where they are evaluated from the shared state's tallies (`shared.rs`).
//!
//! The references are exact (mpmath at 60 digits on the exact moments of the double inputs,
//! cross-checked against scipy), so one tolerance holds for everything: 1e-12 relative for
//! t, df, p, ln p, d, g and the fold changes, including values of 1e9 with unit spread
//! (where scipy's own t is off by 5e-7) and p-values that underflow (ln p down to −17934).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::prelude::{SessionConfig, SessionContext};
use serde_json::Value;

const REL: f64 = 1e-12;

fn close(actual: f64, expected: f64, what: &str) {
    let ok = if expected == 0.0 {
        actual.abs() <= 1e-300
    } else {
        ((actual - expected) / expected).abs() <= REL
    };
    assert!(ok, "{what}: got {actual:e}, reference {expected:e}");
}

/// Compares one output column (one row per case) with the reference.
fn check(cases: &[Value], name: &str, column: &ArrayRef, path: &str) {
    for (row, c) in cases.iter().enumerate() {
        let expected = &c["expected"][name];
        let what = format!("{name} [{}] ({path})", c["name"].as_str().unwrap());
        if expected.is_null() {
            assert!(column.is_null(row), "{what}: expected NULL");
            continue;
        }
        assert!(
            !column.is_null(row),
            "{what}: got NULL, reference {expected}"
        );
        match column.data_type() {
            DataType::Struct(_) => {
                let s = column.as_struct();
                for field in ["t", "df", "p", "log_p"] {
                    let v = s
                        .column_by_name(field)
                        .unwrap()
                        .as_primitive::<Float64Type>();
                    close(
                        v.value(row),
                        expected[field].as_f64().unwrap(),
                        &format!("{what}.{field}"),
                    );
                }
            }
            _ => close(
                column.as_primitive::<Float64Type>().value(row),
                expected.as_f64().unwrap(),
                &what,
            ),
        }
    }
}

const FUNCTIONS: [&str; 6] = [
    "welch_t_test",
    "student_t_test",
    "cohens_d",
    "hedges_g",
    "fold_change",
    "log2_fold_change",
];

async fn run(partitions: usize, batch: usize, grouped: bool) {
    run_with(partitions, batch, grouped, false).await
}

/// `shared`: the query also asks for an AUC of the same arguments, so the optimizer rule
/// evaluates the moments from the tallies of one shared state.
async fn run_with(partitions: usize, batch: usize, grouped: bool, shared: bool) {
    let reference = common::reference("moments.json");
    let cases = reference["cases"].as_array().unwrap();
    let config = SessionConfig::new()
        .with_target_partitions(partitions)
        .with_batch_size(batch);
    let ctx = SessionContext::new_with_config(config);
    discern_udfs::register_all(&ctx).unwrap();
    ctx.register_table("t", Arc::new(common::table(cases, partitions, batch)))
        .unwrap();
    let mut calls: Vec<String> = FUNCTIONS
        .iter()
        .map(|f| format!("{f}(value, is_case) AS {f}"))
        .collect();
    if shared {
        calls.push("auc(value, is_case) AS auc".into());
    }
    let path =
        format!("{partitions} partitions, batches of {batch}, grouped={grouped}, shared={shared}");
    let batches = if grouped {
        let sql = format!(
            "SELECT case_id, {} FROM t GROUP BY case_id ORDER BY case_id",
            calls.join(", ")
        );
        let explained = ctx.sql(&format!("EXPLAIN {sql}")).await.unwrap();
        let explained = datafusion::arrow::util::pretty::pretty_format_batches(
            &explained.collect().await.unwrap(),
        )
        .unwrap()
        .to_string();
        assert_eq!(
            explained.contains("discern_shared_ranks"),
            shared,
            "{path}: {explained}"
        );
        ctx.sql(&sql).await.unwrap().collect().await.unwrap()
    } else {
        // One aggregate without GROUP BY per case: the plain Accumulator.
        let mut out = Vec::new();
        for id in 0..cases.len() {
            let sql = format!("SELECT {} FROM t WHERE case_id = {id}", calls.join(", "));
            out.extend(ctx.sql(&sql).await.unwrap().collect().await.unwrap());
        }
        out
    };
    let all = datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
    assert_eq!(all.num_rows(), cases.len());
    for f in FUNCTIONS {
        check(cases, f, all.column_by_name(f).unwrap(), &path);
    }
}

#[tokio::test]
async fn moments_match_the_reference_without_group_by() {
    run(1, 8192, false).await;
}

#[tokio::test]
async fn moments_match_the_reference_grouped() {
    run(1, 8192, true).await;
}

#[tokio::test]
async fn moments_match_the_reference_when_partial_states_merge() {
    run(4, 7, true).await;
    run(3, 5, false).await;
}

#[tokio::test]
async fn moments_match_the_reference_from_the_shared_state() {
    run_with(1, 8192, true, true).await;
    run_with(4, 7, true, true).await;
}

#[tokio::test]
async fn bad_arguments_are_plan_errors() {
    let ctx = SessionContext::new();
    discern_udfs::register_all(&ctx).unwrap();
    for (sql, needle) in [
        ("SELECT welch_t_test('a', true)", "value must be numeric"),
        ("SELECT cohens_d(1.0, 1)", "is_case must be BOOLEAN"),
        ("SELECT hedges_g(1.0)", "takes 2 arguments"),
        ("SELECT t_sf(1.0, 0)", "df must be > 0"),
        ("SELECT normal_quantile(1.5)", "p must be in [0, 1]"),
        ("SELECT chi2_sf('x', 1)", "must be numeric"),
    ] {
        let err = match ctx.sql(sql).await {
            Err(e) => e.to_string(),
            Ok(df) => df.collect().await.unwrap_err().to_string(),
        };
        assert!(err.contains(needle), "{sql}: {err}");
    }
}
