//! `roc_test_unpaired` against R's pROC 1.18.0 `roc.test(ra, rb, method = "delong",
//! paired = FALSE)` (`testdata/reference/roc_unpaired.R` → `roc_unpaired.json`): six pairs of
//! curves (different sizes, ties, a curve below 0.5, small curves), one group each, over
//! partitions of small batches (the tallies merge). Tolerance: 1e-12 relative (the AUCs are
//! exact; DeLong's variances and the t tail in double precision).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, AsArray, BooleanArray, Float64Array, Int64Array, RecordBatch,
};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};

#[tokio::test]
async fn roc_test_unpaired_matches_proc() {
    let reference = common::reference("roc_unpaired.json");
    let cases = reference["cases"].as_array().unwrap();
    let mut rows: Vec<(i64, f64, bool, bool)> = Vec::new();
    for (id, c) in cases.iter().enumerate() {
        for (curve, second) in [("a", false), ("b", true)] {
            for (key, is_case) in [("cases", true), ("controls", false)] {
                for v in c[curve][key].as_array().unwrap() {
                    rows.push((id as i64, common::decode(v).unwrap(), is_case, second));
                }
            }
        }
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("pair", DataType::Int64, false),
        Field::new("value", DataType::Float64, false),
        Field::new("is_case", DataType::Boolean, false),
        Field::new("in_second", DataType::Boolean, false),
    ]));
    for (partitions, batch) in [(1, 8192), (3, 11)] {
        let mut parts: Vec<Vec<RecordBatch>> = vec![Vec::new(); partitions];
        for (i, chunk) in rows.chunks(batch).enumerate() {
            parts[i % partitions].push(
                RecordBatch::try_new(
                    schema.clone(),
                    vec![
                        Arc::new(Int64Array::from_iter_values(chunk.iter().map(|r| r.0))),
                        Arc::new(Float64Array::from_iter_values(chunk.iter().map(|r| r.1))),
                        Arc::new(BooleanArray::from_iter(chunk.iter().map(|r| Some(r.2)))),
                        Arc::new(BooleanArray::from_iter(chunk.iter().map(|r| Some(r.3)))),
                    ],
                )
                .unwrap(),
            );
        }
        let ctx = SessionContext::new_with_config(
            SessionConfig::new()
                .with_target_partitions(partitions)
                .with_batch_size(batch),
        );
        discern_udfs::register_all(&ctx).unwrap();
        ctx.register_table(
            "t",
            Arc::new(MemTable::try_new(schema.clone(), parts).unwrap()),
        )
        .unwrap();
        let batches = ctx
            .sql(
                "SELECT pair, roc_test_unpaired(value, is_case, in_second) AS r \
                 FROM t GROUP BY pair ORDER BY pair",
            )
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let all =
            datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
        let r = all.column_by_name("r").unwrap().as_struct();
        for (row, c) in cases.iter().enumerate() {
            for f in ["auc_a", "auc_b", "d", "df", "p"] {
                let column = r.column_by_name(f).unwrap().as_primitive::<Float64Type>();
                assert!(!column.is_null(row), "{f} [{}]", c["name"]);
                let got = column.value(row);
                let want = common::decode(&c["expected"][f]).unwrap();
                assert!(
                    ((got - want) / want).abs() <= 1e-12,
                    "roc_test_unpaired {f} [{}] ({partitions} partitions): got {got}, pROC {want}",
                    c["name"]
                );
            }
        }
    }
}

#[tokio::test]
async fn a_curve_without_controls_is_null() {
    let ctx = SessionContext::new();
    discern_udfs::register_all(&ctx).unwrap();
    let batches = ctx
        .sql(
            "SELECT roc_test_unpaired(v, c, s) AS r FROM (VALUES (1.0, true, false), \
             (2.0, false, false), (3.0, true, true)) AS t(v, c, s)",
        )
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert!(batches[0].column(0).is_null(0));
    let err = match ctx.sql("SELECT roc_test_unpaired(1.0, true, 1)").await {
        Err(e) => e.to_string(),
        Ok(df) => df.collect().await.unwrap_err().to_string(),
    };
    assert!(err.contains("in_second must be BOOLEAN"), "{err}");
}
