//! `roc_power` against R's pROC 1.18.0 `power.roc.test(auc =, ncases =, ncontrols =,
//! sig.level =)` (`testdata/reference/power.R` → `power.json`): 528 studies, AUC 0.3 to 0.99,
//! 5 to 1000 cases, 5 to 5000 controls, significance 0.05 to 0.001, through SQL, one row per
//! study; and `roc_sample_size` against `power.roc.test(roc, power =, sig.level =)` on five
//! simulated curves (ties and an AUC below 0.5 included) at three (power, sig.level) pairs,
//! grouped over partitions of small batches. Tolerance: 1e-12 relative (pROC's formula in
//! double precision, the same operations; the AUC is exact).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use datafusion::arrow::array::{AsArray, BooleanArray, Float64Array, Int64Array, RecordBatch};
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

#[tokio::test]
async fn roc_sample_size_matches_proc() {
    let reference = common::reference("power.json");
    let curves = reference["curves"].as_array().unwrap();
    let mut rows: Vec<(i64, f64, bool)> = Vec::new();
    for (id, c) in curves.iter().enumerate() {
        for (key, is_case) in [("cases", true), ("controls", false)] {
            for v in c[key].as_array().unwrap() {
                rows.push((id as i64, common::decode(v).unwrap(), is_case));
            }
        }
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("curve", DataType::Int64, false),
        Field::new("value", DataType::Float64, false),
        Field::new("is_case", DataType::Boolean, false),
    ]));
    let mut parts: Vec<Vec<RecordBatch>> = vec![Vec::new(); 3];
    for (i, chunk) in rows.chunks(17).enumerate() {
        parts[i % 3].push(
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int64Array::from_iter_values(chunk.iter().map(|r| r.0))),
                    Arc::new(Float64Array::from_iter_values(chunk.iter().map(|r| r.1))),
                    Arc::new(BooleanArray::from_iter(chunk.iter().map(|r| Some(r.2)))),
                ],
            )
            .unwrap(),
        );
    }
    let ctx = SessionContext::new_with_config(
        datafusion::prelude::SessionConfig::new()
            .with_target_partitions(3)
            .with_batch_size(17),
    );
    discern_udfs::register_all(&ctx).unwrap();
    ctx.register_table("t", Arc::new(MemTable::try_new(schema, parts).unwrap()))
        .unwrap();
    for size in 0..3 {
        let first = &curves[0]["sizes"][size];
        let power = common::decode(&first["power"]).unwrap();
        let sig = common::decode(&first["sig_level"]).unwrap();
        let sql = format!(
            "SELECT curve, roc_sample_size(value, is_case, {power:?}, {sig:?}) AS s \
             FROM t GROUP BY curve ORDER BY curve"
        );
        let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
        let all =
            datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
        let s = all.column_by_name("s").unwrap().as_struct();
        for (row, c) in curves.iter().enumerate() {
            let e = &c["sizes"][size];
            for f in ["n_cases", "n_controls"] {
                let got = s
                    .column_by_name(f)
                    .unwrap()
                    .as_primitive::<Float64Type>()
                    .value(row);
                let want = common::decode(&e[f]).unwrap();
                assert!(
                    ((got - want) / want).abs() <= 1e-12,
                    "roc_sample_size {f} [{}] at power {power}, sig {sig}: got {got}, pROC {want}",
                    c["name"]
                );
            }
        }
    }
}
