//! `reclassification` against R (`testdata/reference/reclassification.R` →
//! `reclassification.json`): Hmisc 4.8 `improveProb` for the continuous NRI and the IDI, and
//! Pencina's categorical NRI on R's `cut()` categories, through DataFusion grouped and not,
//! over several partitions of tiny batches (the counts and moments merge). Tolerance: 1e-12
//! relative (1e-15 absolute for values that are differences of nearly equal means).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, RecordBatch,
};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use discern_udfs::kernels::reclassification::FIELDS;
use serde_json::Value;

fn table(cases: &[Value], partitions: usize, batch: usize) -> MemTable {
    let schema = Arc::new(Schema::new(vec![
        Field::new("case_id", DataType::Int64, false),
        Field::new("p_old", DataType::Float64, true),
        Field::new("p_new", DataType::Float64, true),
        Field::new("is_case", DataType::Boolean, true),
    ]));
    let mut rows = Vec::new();
    for (id, c) in cases.iter().enumerate() {
        let old = c["p_old"].as_array().unwrap();
        let new = c["p_new"].as_array().unwrap();
        let label = c["is_case"].as_array().unwrap();
        for i in 0..old.len() {
            rows.push((
                id as i64,
                common::decode(&old[i]),
                common::decode(&new[i]),
                label[i].as_bool(),
            ));
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

fn check(got: &ArrayRef, row: usize, expected: &Value, what: &str) {
    if expected.is_null() {
        assert!(got.is_null(row), "{what}: expected NULL");
        return;
    }
    assert!(!got.is_null(row), "{what}: NULL");
    let fields = got.as_struct();
    for name in FIELDS {
        let column = fields
            .column_by_name(name)
            .unwrap()
            .as_primitive::<Float64Type>();
        let want = common::decode(&expected[name]);
        let have = (!column.is_null(row)).then(|| column.value(row));
        match (have, want) {
            (None, None) => {}
            (Some(h), Some(w)) => assert!(
                (h - w).abs() <= 1e-12 * w.abs() || (h - w).abs() <= 1e-15,
                "{what}.{name}: got {h:e}, R {w:e}"
            ),
            (h, w) => panic!("{what}.{name}: got {h:?}, R {w:?}"),
        }
    }
}

async fn run(partitions: usize, batch: usize, grouped: bool) {
    let reference = common::reference("reclassification.json");
    let cases = reference["cases"].as_array().unwrap();
    let ctx = SessionContext::new_with_config(
        SessionConfig::new()
            .with_target_partitions(partitions)
            .with_batch_size(batch),
    );
    discern_udfs::register_all(&ctx).unwrap();
    ctx.register_table("t", Arc::new(table(cases, partitions, batch)))
        .unwrap();
    for (id, c) in cases.iter().enumerate() {
        let name = c["name"].as_str().unwrap();
        let cutoffs = match c["cutoffs"].as_array() {
            Some(list) => format!(
                ", [{}]",
                list.iter()
                    .map(|v| format!("{:?}", common::decode(v).unwrap()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => String::new(),
        };
        let call = format!("reclassification(p_old, p_new, is_case{cutoffs}) AS r");
        let sql = if grouped {
            format!("SELECT case_id, {call} FROM t GROUP BY case_id ORDER BY case_id")
        } else {
            format!("SELECT {call} FROM t WHERE case_id = {id}")
        };
        let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
        let all =
            datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
        let row = if grouped { id } else { 0 };
        let what =
            format!("[{name}] ({partitions} partitions, batches of {batch}, grouped={grouped})");
        check(all.column_by_name("r").unwrap(), row, &c["expected"], &what);
    }
}

#[tokio::test]
async fn reclassification_matches_r() {
    run(1, 8192, false).await;
    run(1, 8192, true).await;
    run(4, 7, true).await;
}

#[tokio::test]
async fn bad_arguments_are_errors_that_say_why() {
    let ctx = SessionContext::new();
    discern_udfs::register_all(&ctx).unwrap();
    for (sql, message) in [
        (
            "SELECT reclassification(1.5, 0.2, true)",
            "must be probabilities in [0, 1], got 1.5",
        ),
        (
            "SELECT reclassification(0.1, 0.2, true, [0.3, 0.1])",
            "cutoffs must be ascending risks in (0, 1)",
        ),
        (
            "SELECT reclassification(0.1, 0.2, 1)",
            "is_case must be BOOLEAN",
        ),
        (
            "SELECT reclassification(0.1, 0.2)",
            "takes 3 or 4 arguments",
        ),
    ] {
        let result = match ctx.sql(sql).await {
            Ok(df) => df.collect().await.map(|_| ()),
            Err(e) => Err(e),
        };
        let error = result.expect_err(sql).to_string();
        assert!(error.contains(message), "{sql}: {error}");
    }
}
