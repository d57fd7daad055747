//! `roc_power` against R's pROC 1.18.0 `power.roc.test(auc =, ncases =, ncontrols =,
//! sig.level =)` (`testdata/reference/power.R` → `power.json`): 528 studies, AUC 0.3 to 0.99,
//! 5 to 1000 cases, 5 to 5000 controls, significance 0.05 to 0.001, through SQL, one row per
//! study. Tolerance: 1e-12 relative (pROC's formula in double precision, the same operations).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use datafusion::arrow::array::{AsArray, Float64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

#[tokio::test]
async fn roc_power_matches_proc() {
    let reference = common::reference("power.json");
    let cases = reference["cases"].as_array().unwrap();
    let column = |key: &str| -> Arc<Float64Array> {
        Arc::new(Float64Array::from_iter(
            cases.iter().map(|c| common::decode(&c[key])),
        ))
    };
    let schema = Arc::new(Schema::new(
        ["auc", "n_cases", "n_controls", "sig_level"]
            .iter()
            .map(|n| Field::new(*n, DataType::Float64, true))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            column("auc"),
            column("n_cases"),
            column("n_controls"),
            column("sig_level"),
        ],
    )
    .unwrap();
    let ctx = SessionContext::new();
    discern_udfs::register_all(&ctx).unwrap();
    ctx.register_table(
        "studies",
        Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap()),
    )
    .unwrap();
    let batches = ctx
        .sql(
            "SELECT roc_power(auc, n_cases, n_controls, sig_level) AS p, \
             roc_power(auc, n_cases, n_controls) AS p05, sig_level FROM studies",
        )
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let mut row = 0;
    for batch in &batches {
        let got = batch.column(0).as_primitive::<Float64Type>();
        let default = batch.column(1).as_primitive::<Float64Type>();
        let sig = batch.column(2).as_primitive::<Float64Type>();
        for i in 0..batch.num_rows() {
            let case = &cases[row];
            let want = common::decode(&case["power"]).unwrap();
            let g = got.value(i);
            assert!(
                ((g - want) / want).abs() <= 1e-12,
                "roc_power {case}: got {g:e}, pROC {want:e}"
            );
            if sig.value(i) == 0.05 {
                assert_eq!(default.value(i), g, "the default sig_level is 0.05");
            }
            row += 1;
        }
    }
    assert_eq!(row, cases.len());
}

#[tokio::test]
async fn roc_power_refuses_what_is_not_a_study() {
    let ctx = SessionContext::new();
    discern_udfs::register_all(&ctx).unwrap();
    for (sql, message) in [
        (
            "SELECT roc_power(1.5, 10, 10)",
            "auc must be in [0, 1], got 1.5",
        ),
        (
            "SELECT roc_power(0.7, 0, 10)",
            "n_cases and n_controls must be > 0",
        ),
        (
            "SELECT roc_power(0.7, 10, 10, 1.0)",
            "sig_level must be in (0, 1)",
        ),
        ("SELECT roc_power(0.7, 10)", "takes 3 or 4 arguments"),
        (
            "SELECT roc_power(0.7, 'ten', 10)",
            "arguments must be numeric",
        ),
    ] {
        let result = match ctx.sql(sql).await {
            Ok(df) => df.collect().await.map(|_| ()),
            Err(e) => Err(e),
        };
        let error = result.expect_err(sql).to_string();
        assert!(error.contains(message), "{sql}: {error}");
    }
    let batches = ctx
        .sql("SELECT roc_power(NULL, 10, 10) AS p")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert!(batches[0].column(0).is_null(0), "NULL in, NULL out");
}
