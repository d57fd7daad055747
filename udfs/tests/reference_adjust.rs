//! `p_adjust` against statsmodels' multipletests (`testdata/reference/adjust.py`), through
//! DataFusion's window machinery. Tolerance: 1e-12 relative (the procedures are sums,
//! products and running minima of the inputs).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

const METHODS: [&str; 6] = ["bh", "by", "holm", "hochberg", "hommel", "bonferroni"];

#[tokio::test]
async fn p_adjust_matches_statsmodels() {
    let reference = common::reference("adjust.json");
    let vectors = reference["vectors"].as_array().unwrap();
    // One table, one partition per vector: PARTITION BY v adjusts each vector on its own.
    let schema = Arc::new(Schema::new(vec![
        Field::new("v", DataType::Int64, false),
        Field::new("i", DataType::Int64, false),
        Field::new("p", DataType::Float64, true),
    ]));
    let (mut v, mut i, mut p) = (Vec::new(), Vec::new(), Vec::new());
    for (k, vector) in vectors.iter().enumerate() {
        for (j, x) in vector["p"].as_array().unwrap().iter().enumerate() {
            v.push(k as i64);
            i.push(j as i64);
            p.push(common::decode(x));
        }
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(v)),
        Arc::new(Int64Array::from(i)),
        Arc::new(Float64Array::from(p)),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
    let ctx = SessionContext::new();
    discern_udfs::register_all(&ctx).unwrap();
    ctx.register_table(
        "t",
        Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap()),
    )
    .unwrap();
    let calls: Vec<String> = METHODS
        .iter()
        .map(|m| format!("p_adjust(p, '{m}') OVER (PARTITION BY v) AS {m}"))
        .collect();
    let sql = format!("SELECT v, i, {} FROM t ORDER BY v, i", calls.join(", "));
    let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
    let all = datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
    let (vs, is) = (
        all.column(0)
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>(),
        all.column(1)
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>(),
    );
    for m in METHODS {
        let column = all.column_by_name(m).unwrap().as_primitive::<Float64Type>();
        for row in 0..all.num_rows() {
            let vector = &vectors[vs.value(row) as usize];
            let expected = &vector["expected"][m][is.value(row) as usize];
            let what = format!("{m} [{}] row {}", vector["name"], is.value(row));
            match expected.as_f64() {
                None => assert!(column.is_null(row), "{what}: expected NULL"),
                Some(e) => {
                    let got = column.value(row);
                    let ok = if e == 0.0 {
                        got == 0.0
                    } else {
                        ((got - e) / e).abs() <= 1e-12
                    };
                    assert!(ok, "{what}: got {got:e}, reference {e:e}");
                }
            }
        }
    }
}

#[tokio::test]
async fn bad_methods_and_p_values_are_errors() {
    let ctx = SessionContext::new();
    discern_udfs::register_all(&ctx).unwrap();
    for (sql, needle) in [
        (
            "SELECT p_adjust(0.1, 'sidak') OVER ()",
            "unknown method 'sidak'",
        ),
        (
            "SELECT p_adjust(1.5, 'bh') OVER ()",
            "p-values must be in [0, 1], got 1.5",
        ),
        ("SELECT p_adjust('x', 'bh') OVER ()", "p must be numeric"),
    ] {
        let err = match ctx.sql(sql).await {
            Err(e) => e.to_string(),
            Ok(df) => df.collect().await.unwrap_err().to_string(),
        };
        assert!(err.contains(needle), "{sql}: {err}");
    }
}
