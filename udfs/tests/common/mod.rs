//! Helpers shared by the reference tests: read a reference JSON, build the input table.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use serde_json::Value;

/// `testdata/reference/NAME`, parsed.
pub fn reference(name: &str) -> Value {
    let path = format!(
        "{}/../testdata/reference/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Inputs are decimal strings (std's parser is correctly rounded, so every double is exact),
/// "NaN", "Infinity", "-Infinity", or null for NULL.
pub fn decode(v: &Value) -> Option<f64> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.parse().unwrap()),
        other => panic!("unexpected input {other}"),
    }
}

/// All cases in one table: (case_id, value, is_case), split into `partitions` partitions of
/// batches of at most `batch` rows.
pub fn table(cases: &[Value], partitions: usize, batch: usize) -> MemTable {
    let schema = Arc::new(Schema::new(vec![
        Field::new("case_id", DataType::Int64, false),
        Field::new("value", DataType::Float64, true),
        Field::new("is_case", DataType::Boolean, true),
    ]));
    let mut rows = Vec::new();
    for (id, c) in cases.iter().enumerate() {
        let values = c["value"].as_array().unwrap();
        let labels = c["is_case"].as_array().unwrap();
        for (v, l) in values.iter().zip(labels) {
            rows.push((id as i64, decode(v), l.as_bool()));
        }
    }
    let mut parts: Vec<Vec<RecordBatch>> = vec![Vec::new(); partitions];
    for (i, chunk) in rows.chunks(batch).enumerate() {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from_iter_values(chunk.iter().map(|r| r.0))),
            Arc::new(Float64Array::from_iter(chunk.iter().map(|r| r.1))),
            Arc::new(BooleanArray::from_iter(chunk.iter().map(|r| r.2))),
        ];
        parts[i % partitions].push(RecordBatch::try_new(schema.clone(), columns).unwrap());
    }
    MemTable::try_new(schema, parts).unwrap()
}
