//! wilcoxon_signed_rank's variants against exact rationals and mpmath, cross-checked with
//! scipy.stats.wilcoxon (`testdata/reference/signed_rank.py` → `signed_rank.json`): the normal
//! approximation with and without the continuity correction, zeros dropped (Wilcoxon, R) or
//! ranked and dropped (Pratt, scipy's zero_method='pratt'); ties, zeros, NULL and NaN rows.
//! V exactly; p to 1e-12 relative. Grouped, over partitions of small batches.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, Float64Array, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};

#[tokio::test]
async fn signed_rank_variants_match_the_reference() {
    let reference = common::reference("signed_rank.json");
    let cases = reference["cases"].as_array().unwrap();
    let mut rows: Vec<(i64, Option<f64>)> = Vec::new();
    for (id, c) in cases.iter().enumerate() {
        for d in c["diffs"].as_array().unwrap() {
            rows.push((id as i64, common::decode(d)));
        }
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("d", DataType::Float64, true),
    ]));
    let mut parts: Vec<Vec<RecordBatch>> = vec![Vec::new(); 3];
    for (i, chunk) in rows.chunks(13).enumerate() {
        parts[i % 3].push(
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int64Array::from_iter_values(chunk.iter().map(|r| r.0))),
                    Arc::new(Float64Array::from_iter(chunk.iter().map(|r| r.1))),
                ],
            )
            .unwrap(),
        );
    }
    let ctx = SessionContext::new_with_config(
        SessionConfig::new()
            .with_target_partitions(3)
            .with_batch_size(13),
    );
    discern_udfs::register_all(&ctx).unwrap();
    ctx.register_table("t", Arc::new(MemTable::try_new(schema, parts).unwrap()))
        .unwrap();
    let variants = [
        ("wilcox_correct", "true, 'wilcox'"),
        ("wilcox_no_correct", "false, 'wilcox'"),
        ("pratt_correct", "true, 'pratt'"),
        ("pratt_no_correct", "false, 'pratt'"),
    ];
    let calls: Vec<String> = variants
        .iter()
        .map(|(key, args)| format!("wilcoxon_signed_rank(d, 'asymptotic', {args}) AS {key}"))
        .collect();
    let sql = format!(
        "SELECT id, {} FROM t GROUP BY id ORDER BY id",
        calls.join(", ")
    );
    let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
    let all = datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
    for (row, c) in cases.iter().enumerate() {
        for (key, _) in variants {
            let got = all.column_by_name(key).unwrap();
            let e = &c["expected"][key];
            let what = format!("{key} [{}]", c["name"]);
            if e.is_null() {
                assert!(got.is_null(row), "{what}: expected NULL");
                continue;
            }
            let s = got.as_struct();
            let field = |f: &str| {
                s.column_by_name(f)
                    .unwrap()
                    .as_primitive::<Float64Type>()
                    .value(row)
            };
            assert_eq!(
                field("statistic"),
                e["statistic"].as_f64().unwrap(),
                "{what}.statistic"
            );
            let (p, want) = (field("p"), e["p"].as_f64().unwrap());
            assert!(
                ((p - want) / want).abs() <= 1e-12,
                "{what}.p: got {p}, reference {want}"
            );
        }
    }
}

#[tokio::test]
async fn a_bad_zero_method_is_a_plan_error() {
    let ctx = SessionContext::new();
    discern_udfs::register_all(&ctx).unwrap();
    let err = match ctx
        .sql("SELECT wilcoxon_signed_rank(1.0, 'auto', true, 'zsplit')")
        .await
    {
        Err(e) => e.to_string(),
        Ok(df) => df.collect().await.unwrap_err().to_string(),
    };
    assert!(
        err.contains("zero_method must be 'wilcox' or 'pratt'"),
        "{err}"
    );
}
