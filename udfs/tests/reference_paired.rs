//! `paired_t_test` against mpmath (60 digits) cross-checked with scipy.stats.ttest_1samp
//! (`testdata/reference/paired.py`), on the Accumulator, GroupsAccumulator and merge paths.
//! Tolerance: 1e-12 relative.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::Float64Type;
use datafusion::prelude::{SessionConfig, SessionContext};

async fn run(partitions: usize, batch: usize) {
    let reference = common::reference("paired.json");
    let cases = reference["cases"].as_array().unwrap();
    let ctx = SessionContext::new_with_config(
        SessionConfig::new()
            .with_target_partitions(partitions)
            .with_batch_size(batch),
    );
    discern_udfs::register_all(&ctx).unwrap();
    ctx.register_table("t", Arc::new(common::table(cases, partitions, batch)))
        .unwrap();
    let sql = "SELECT case_id, paired_t_test(value) AS r FROM t GROUP BY case_id ORDER BY case_id";
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let all = datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
    assert_eq!(all.num_rows(), cases.len());
    let r = all.column_by_name("r").unwrap();
    for (row, c) in cases.iter().enumerate() {
        let expected = &c["expected"]["paired_t_test"];
        let what = format!(
            "[{}] ({partitions} partitions, batches of {batch})",
            c["name"]
        );
        if expected.is_null() {
            assert!(r.is_null(row), "{what}: expected NULL");
            continue;
        }
        for field in ["statistic", "p"] {
            let got = r
                .as_struct()
                .column_by_name(field)
                .unwrap()
                .as_primitive::<Float64Type>()
                .value(row);
            let e = expected[field].as_f64().unwrap();
            assert!(
                ((got - e) / e).abs() <= 1e-12,
                "{what}.{field}: got {got:e}, reference {e:e}"
            );
        }
    }
}

#[tokio::test]
async fn paired_t_test_matches_the_reference() {
    run(1, 8192).await;
    run(4, 7).await;
}
