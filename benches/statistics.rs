//! Criterion benches of the statistical functions, one or more per family, as users run them:
//! a GROUP BY through DataFusion over 1M rows in 1,000 groups, with instrument-like values (3
//! significant digits, heavy ties) and without ties.
//!
//!   cargo bench --bench statistics
//!
//! `benches/scipy_compare.py` builds the same rows (same integer recipe, exactly the same
//! doubles) and times scipy / statsmodels on them; `benches/README.md` has both side by side.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};

const ROWS: u64 = 1_000_000;
const GROUPS: u64 = 1_000;

/// A uniform in [0, 1) for row `i` and stream `stream`: SplitMix64 of (i, stream), integer
/// arithmetic only, so Python builds the same doubles.
fn uniform(i: u64, stream: u64) -> f64 {
    let mut z = (i * 8 + stream).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / 9_007_199_254_740_992.0
}

/// Rounds to 3 significant digits the way Python's `float(f"{x:.2e}")` does (both are
/// correctly rounded decimal conversions).
fn three_digits(x: f64) -> f64 {
    format!("{x:.2e}").parse().unwrap_or(x)
}

/// The rows: g (group), v and w (two markers), c (case), e (exposure), s (stratum).
fn table(ties: bool) -> MemTable {
    let schema = Arc::new(Schema::new(vec![
        Field::new("g", DataType::Int64, false),
        Field::new("v", DataType::Float64, false),
        Field::new("w", DataType::Float64, false),
        Field::new("c", DataType::Boolean, false),
        Field::new("e", DataType::Boolean, false),
        Field::new("s", DataType::Int64, false),
    ]));
    let (mut gs, mut vs, mut ws) = (Vec::new(), Vec::new(), Vec::new());
    let (mut cs, mut es, mut ss) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..ROWS {
        let g = (i * 7919) % GROUPS;
        let case = uniform(i, 1) < 0.25;
        // Cases are shifted in every tenth group.
        let shift = if case && g.is_multiple_of(10) {
            1.25
        } else {
            1.0
        };
        let mut v = (1.0 + 9.0 * uniform(i, 0)) * shift;
        let mut w = 1.0 + 9.0 * uniform(i, 2);
        if ties {
            v = three_digits(v);
            w = three_digits(w);
        }
        gs.push(g as i64);
        vs.push(v);
        ws.push(w);
        cs.push(case);
        es.push(uniform(i, 3) < if case { 0.4 } else { 0.3 });
        ss.push((uniform(i, 4) * 5.0) as i64);
    }
    let arrays: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(gs)),
        Arc::new(Float64Array::from(vs)),
        Arc::new(Float64Array::from(ws)),
        Arc::new(BooleanArray::from(cs)),
        Arc::new(BooleanArray::from(es)),
        Arc::new(Int64Array::from(ss)),
    ];
    let batch = RecordBatch::try_new(schema.clone(), arrays).unwrap();
    let batches: Vec<RecordBatch> = (0..ROWS as usize)
        .step_by(8192)
        .map(|start| batch.slice(start, 8192.min(ROWS as usize - start)))
        .collect();
    // Two partitions: this machine's cores.
    let half = batches.len() / 2;
    MemTable::try_new(
        schema,
        vec![batches[..half].to_vec(), batches[half..].to_vec()],
    )
    .unwrap()
}

/// Every family's representative calls, with the name the README uses.
const CALLS: &[(&str, &str)] = &[
    ("avg (DataFusion, for scale)", "avg(v)"),
    ("welch_t_test", "welch_t_test(v, c)"),
    ("auc", "auc(v, c)"),
    ("mann_whitney", "mann_whitney(v, c)"),
    ("auc_ci", "auc_ci(v, c)"),
    ("ks_test", "ks_test(v, c)"),
    ("youden", "youden(v, c)"),
    ("roc_test", "roc_test(v, w, c)"),
    ("fisher_exact", "fisher_exact(e, c)"),
    ("cmh_test", "cmh_test(e, c, s)"),
    ("wilcoxon_signed_rank", "wilcoxon_signed_rank(v - w)"),
    ("logistic_regression", "logistic_regression(c, v)"),
];

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for ties in [true, false] {
        let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(2));
        discern_udfs::register_all(&ctx).unwrap();
        ctx.register_table("t", Arc::new(table(ties))).unwrap();
        let mut group = c.benchmark_group(if ties { "ties" } else { "no_ties" });
        group.sample_size(10);
        for (name, call) in CALLS {
            let sql = format!("SELECT g, {call} FROM t GROUP BY g");
            // Every group has cases and controls: no statistic may be NULL (a benchmark of
            // empty groups would measure nothing).
            let nulls: usize = runtime.block_on(async {
                let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
                batches.iter().map(|b| b.column(1).null_count()).sum()
            });
            assert_eq!(nulls, 0, "{name}: NULL results");
            group.bench_function(*name, |b| {
                b.iter(|| {
                    runtime.block_on(async {
                        let df = ctx.sql(&sql).await.unwrap();
                        let batches = df.collect().await.unwrap();
                        assert_eq!(
                            batches.iter().map(|b| b.num_rows()).sum::<usize>(),
                            GROUPS as usize
                        );
                    })
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
