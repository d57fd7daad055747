//! Rank statistics of the same (value, is_case) share one state (`shared::ShareTwoGroupState`):
//! every result must be what the separate aggregates give, bit for bit, including DataFusion's
//! own `median` with NaN, ±∞, NULL values and NULL labels.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};

/// Groups that exercise the edges: ties, non-finite values (which `median` keeps and the rank
/// statistics skip), NULLs, a group without controls, one value per group, even and odd counts.
fn rows() -> Vec<(i64, Option<f64>, Option<bool>, i64)> {
    let mut rows = Vec::new();
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for g in 0..12i64 {
        let n = 3 + (next() % 300) as usize;
        for i in 0..n {
            let r = next();
            // Three significant digits at most: many ties.
            let mut v = Some(((r % 1000) as f64) / 100.0 + if r % 5 == 0 { 1.5 } else { 0.0 });
            let mut c = Some(r % 4 == 0);
            match (g, i % 17) {
                (1, 0) => v = Some(f64::NAN),
                (2, 1) => v = Some(f64::INFINITY),
                (2, 2) => v = Some(f64::NEG_INFINITY),
                (3, 3) => v = Some(-f64::NAN),
                (3, 4) => v = Some(f64::INFINITY),
                (4, 5) => v = None,
                (5, 6) => c = None,
                _ => {}
            }
            if g == 6 {
                c = Some(true);
            }
            if g == 7 && i > 0 {
                continue;
            }
            // Mostly non-finite: the medians land on +∞ and NaN, −∞, or between.
            match (g, i % 5) {
                (8, 0 | 1) => v = Some(f64::INFINITY),
                (8, 2) => v = Some(f64::NAN),
                (9, 0..=2) => v = Some(f64::NAN),
                (10, 0..=2) => v = Some(f64::NEG_INFINITY),
                (11, 0) => v = Some(-f64::NAN),
                _ => {}
            }
            rows.push((g, v, c, (r % 7) as i64));
        }
    }
    rows
}

fn table(partitions: usize) -> MemTable {
    let schema = Arc::new(Schema::new(vec![
        Field::new("g", DataType::Int64, false),
        Field::new("v", DataType::Float64, true),
        Field::new("c", DataType::Boolean, true),
        Field::new("k", DataType::Int64, false),
    ]));
    let rows = rows();
    let mut parts: Vec<Vec<RecordBatch>> = vec![Vec::new(); partitions];
    for (i, chunk) in rows.chunks(97).enumerate() {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from_iter_values(chunk.iter().map(|r| r.0))),
            Arc::new(Float64Array::from_iter(chunk.iter().map(|r| r.1))),
            Arc::new(BooleanArray::from_iter(chunk.iter().map(|r| r.2))),
            Arc::new(Int64Array::from_iter_values(chunk.iter().map(|r| r.3))),
        ];
        parts[i % partitions].push(RecordBatch::try_new(schema.clone(), columns).unwrap());
    }
    MemTable::try_new(schema, parts).unwrap()
}

/// A session with the catalog; `shared` adds the optimizer rule (as `register_all` does).
fn session(shared: bool, partitions: usize) -> SessionContext {
    let ctx = SessionContext::new_with_config(
        SessionConfig::new()
            .with_target_partitions(partitions)
            .with_batch_size(64),
    );
    if shared {
        discern_udfs::register_all(&ctx).unwrap();
    } else {
        for f in discern_udfs::all_aggregate_functions() {
            ctx.register_udaf(f.as_ref().clone());
        }
    }
    ctx.register_table("t", Arc::new(table(partitions)))
        .unwrap();
    ctx
}

async fn run(ctx: &SessionContext, sql: &str) -> String {
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    pretty_format_batches(&batches).unwrap().to_string()
}

async fn plan(ctx: &SessionContext, sql: &str) -> String {
    run(ctx, &format!("EXPLAIN {sql}")).await
}

/// The report's shape and more: several statistics, options, medians of both labels, a second
/// marker (the integer k, cast), aggregates that must stay alone. (No moment statistics: their
/// last bits depend on the order partial states merge in, so two runs may differ.)
const QUERY: &str = "
    SELECT g,
           count(v) FILTER (WHERE c) AS n_case,
           median(v) FILTER (WHERE c) AS median_case,
           median(v) FILTER (WHERE NOT c) AS median_control,
           median(v) AS median_all,
           auc(v, c) AS auc,
           auc_ci(v, c, 0.9) AS ci,
           mann_whitney(v, c)['p'] AS p,
           mann_whitney(v, c, 'asymptotic') AS mw,
           ks_test(v, c) AS ks,
           youden(v, c) AS youden,
           auc(k, c) AS auc_k,
           mann_whitney(k, c) AS mw_k,
           median(k) FILTER (WHERE c) AS median_k,
           auc(v, c) FILTER (WHERE k > 2) AS auc_filtered,
           count(*) AS n
    FROM t GROUP BY g ORDER BY g";

#[tokio::test]
async fn shared_state_gives_the_separate_aggregates_results() {
    for partitions in [1, 3] {
        let separate = session(false, partitions);
        let shared = session(true, partitions);
        let want = run(&separate, QUERY).await;
        let got = run(&shared, QUERY).await;
        assert_eq!(got, want, "{partitions} partitions");
        // The rule did fire: one shared state for v and one for CAST(k AS DOUBLE).
        let explained = plan(&shared, QUERY).await;
        assert!(
            explained.matches("discern_shared_ranks(").count() >= 2,
            "{explained}"
        );
        assert!(
            !plan(&separate, QUERY)
                .await
                .contains("discern_shared_ranks")
        );
        // The medians really met NaN and infinities (group 8 is mostly non-finite).
        assert!(want.contains("NaN") && want.contains("inf"), "{want}");
    }
}

#[tokio::test]
async fn lone_or_filtered_calls_are_left_alone() {
    let ctx = session(true, 2);
    for sql in [
        "SELECT g, auc(v, c) FROM t GROUP BY g",
        "SELECT g, auc(v, c) FILTER (WHERE k > 1), auc(v, c) FILTER (WHERE k > 2) FROM t GROUP BY g",
        "SELECT g, median(v) FILTER (WHERE c), median(v) FILTER (WHERE NOT c) FROM t GROUP BY g",
        "SELECT g, auc(v, c), mann_whitney(v, NOT c) FROM t GROUP BY g",
        // Without a rank statistic the moments keep their own one-pass state.
        "SELECT g, welch_t_test(v, c), log2_fold_change(v, c), avg(v) FILTER (WHERE c) FROM t GROUP BY g",
        // Unfiltered, or filtered by something else, count and avg are not a group's.
        "SELECT g, auc(v, c), avg(v), count(v) FILTER (WHERE k > 2) FROM t GROUP BY g",
    ] {
        let explained = plan(&ctx, sql).await;
        assert!(
            !explained.contains("discern_shared_ranks"),
            "{sql}\n{explained}"
        );
    }
}

/// Every leaf of a result as doubles: struct fields flattened, integers cast.
fn leaves(batches: &[RecordBatch]) -> Vec<(String, Vec<Option<f64>>)> {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::compute::cast;
    fn walk(name: String, array: &ArrayRef, out: &mut Vec<(String, Vec<Option<f64>>)>) {
        if let Some(fields) = array.as_struct_opt() {
            for (field, child) in fields.fields().iter().zip(fields.columns()) {
                walk(format!("{name}.{}", field.name()), child, out);
            }
            return;
        }
        let doubles = cast(array, &DataType::Float64).unwrap();
        let doubles = doubles.as_primitive::<datafusion::arrow::datatypes::Float64Type>();
        out.push((
            name,
            (0..doubles.len())
                .map(|i| doubles.is_valid(i).then(|| doubles.value(i)))
                .collect(),
        ));
    }
    let mut columns: Vec<(String, Vec<Option<f64>>)> = Vec::new();
    for batch in batches {
        let mut these = Vec::new();
        for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
            walk(field.name().clone(), column, &mut these);
        }
        if columns.is_empty() {
            columns = these;
        } else {
            for (all, (_, more)) in columns.iter_mut().zip(these) {
                all.1.extend(more);
            }
        }
    }
    columns
}

/// Moment statistics, counts and means of the cases and controls join the shared state and
/// are evaluated from its tallies (two passes over the distinct values) instead of one pass
/// over the rows: the same values to rounding. Reference: the separate aggregates (Welford
/// with a compensated mean; DataFusion's count and avg), tolerance 1e-12 relative; counts,
/// NULLs, NaN and infinities exactly.
#[tokio::test]
async fn moments_counts_and_means_from_the_shared_state_agree_with_their_own() {
    const SQL: &str = "
        SELECT g,
               count(v) FILTER (WHERE c) AS n_case,
               count(v) FILTER (WHERE NOT c) AS n_control,
               avg(v) FILTER (WHERE c) AS mean_case,
               avg(v) FILTER (WHERE NOT c) AS mean_control,
               welch_t_test(v, c) AS welch,
               student_t_test(v, c) AS student,
               cohens_d(v, c) AS d,
               hedges_g(v, c) AS g_hedges,
               fold_change(v, c) AS fc,
               log2_fold_change(v, c) AS lfc,
               avg(CAST(k AS DOUBLE)) FILTER (WHERE c) AS mean_k,
               auc(v, c) AS auc,
               auc(k, c) AS auc_k
        FROM t GROUP BY g ORDER BY g";
    for partitions in [1, 3] {
        let separate = session(false, partitions);
        let shared = session(true, partitions);
        let explained = plan(&shared, SQL).await;
        for own in ["welch_t_test(", "log2_fold_change(", "avg(", "count("] {
            assert!(
                !explained.contains(own),
                "{own} is still separate:\n{explained}"
            );
        }
        let batches = |ctx: SessionContext| async move {
            ctx.sql(SQL).await.unwrap().collect().await.unwrap()
        };
        let want = leaves(&batches(separate).await);
        let got = leaves(&batches(shared).await);
        assert_eq!(got.len(), want.len());
        let mut compared = 0;
        for ((name, got), (_, want)) in got.iter().zip(&want) {
            for (row, (x, y)) in got.iter().zip(want).enumerate() {
                let same = match (x, y) {
                    (Some(x), Some(y)) if x.is_finite() && y.is_finite() => {
                        compared += 1;
                        (x - y).abs() <= 1e-12 * y.abs().max(1e-300)
                    }
                    (Some(x), Some(y)) => x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()),
                    (None, None) => true,
                    _ => false,
                };
                assert!(
                    same,
                    "{name}, group {row}: {x:?} against {y:?} ({partitions} partitions)"
                );
            }
        }
        // Real numbers were compared, and the non-finite means were met.
        assert!(compared > 100, "{compared}");
        let means = &want.iter().find(|c| c.0 == "mean_case").unwrap().1;
        assert!(means.iter().any(|m| m.is_some_and(f64::is_nan)));
        assert!(means.iter().any(|m| m.is_some_and(f64::is_infinite)));
    }
}
