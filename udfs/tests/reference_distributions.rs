//! The scalar distribution helpers against mpmath (60 digits) reference values, checked
//! against scipy by `testdata/reference/distributions.py`. Tolerance: 1e-12 relative (absolute
//! below 1e-300) up to df = 1e6; `normal_quantile` (statrs's inverse) is held to 1e-9.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Float64Type;
use datafusion::prelude::SessionContext;
use serde_json::Value;

#[tokio::test]
async fn distributions_match_the_reference() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/reference/distributions.json"
    );
    let reference: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let ctx = SessionContext::new();
    discern_udfs::register_all(&ctx).unwrap();
    let rows = reference["rows"].as_array().unwrap();
    assert!(rows.len() > 40);
    for row in rows {
        let name = row[0].as_str().unwrap();
        let args: Vec<String> = row[1]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| format!("CAST('{}' AS DOUBLE)", a.as_str().unwrap()))
            .collect();
        let expected: f64 = row[2].as_str().unwrap().parse().unwrap();
        let sql = format!("SELECT {name}({}) AS v", args.join(", "));
        let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
        let got = batches[0].column(0).as_primitive::<Float64Type>().value(0);
        let tolerance = if name == "normal_quantile" {
            1e-9
        } else {
            1e-12
        };
        let ok = if expected.abs() < 1e-300 {
            (got - expected).abs() < 1e-300
        } else {
            ((got - expected) / expected).abs() <= tolerance
        };
        assert!(ok, "{sql}: got {got:e}, reference {expected:e}");
    }
}

#[tokio::test]
async fn nulls_propagate_and_nan_stays_nan() {
    let ctx = SessionContext::new();
    discern_udfs::register_all(&ctx).unwrap();
    let sql = "SELECT normal_sf(NULL) AS a, t_sf(1.0, NULL) AS b, chi2_sf(CAST('NaN' AS DOUBLE), 2) AS c, normal_cdf(1) AS d";
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let b = &batches[0];
    assert!(b.column(0).is_null(0));
    assert!(b.column(1).is_null(0));
    assert!(b.column(2).as_primitive::<Float64Type>().value(0).is_nan());
    assert!(b.column(3).as_primitive::<Float64Type>().value(0) > 0.84);
}
