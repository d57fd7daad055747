//! Rank statistics over full-precision values (every value distinct) within memory limits far
//! below what the states need: `BoundedAggregateExec` writes group states to hash buckets,
//! splits buckets that still do not fit, and gives the same answers, bit for bit, as with
//! room to spare and as DataFusion's own aggregation; a group that alone exceeds the limit
//! fails with the memory-limit error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, Float64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::datasource::MemTable;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::physical_plan::{ExecutionPlan, collect, displayable};
use datafusion::prelude::{SessionConfig, SessionContext};

const GROUPS: usize = 400;
const ROWS_PER_GROUP: usize = 2_500;
const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;

/// SplitMix64: a deterministic stream of full-precision uniforms.
fn uniform(i: u64) -> f64 {
    let mut z = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    ((z ^ (z >> 31)) >> 11) as f64 / 9_007_199_254_740_992.0
}

/// `groups` markers of `per_group` rows each, interleaved as a scan of samples would deliver
/// them; values log-normal-ish at full precision, shifted in cases for every fifth marker; a
/// NULL, a NaN and an infinity here and there.
fn table(groups: usize, per_group: usize) -> MemTable {
    let schema = Arc::new(Schema::new(vec![
        Field::new("g", DataType::Utf8, false),
        Field::new("v", DataType::Float64, true),
        Field::new("c", DataType::Boolean, true),
    ]));
    let rows = groups * per_group;
    let mut batches = Vec::new();
    for start in (0..rows).step_by(8_192) {
        let end = (start + 8_192).min(rows);
        let (mut g, mut v, mut c) = (Vec::new(), Vec::new(), Vec::new());
        for i in start..end {
            let marker = i % groups;
            let case = uniform(3 * i as u64 + 1) < 0.3;
            let shift = if case && marker.is_multiple_of(5) {
                0.7
            } else {
                0.0
            };
            let x = (shift + 4.0 * (uniform(3 * i as u64 + 2) - 0.5)).exp();
            g.push(format!("marker-{marker:04}"));
            v.push(match i % 997 {
                0 => None,
                1 => Some(f64::NAN),
                2 => Some(f64::INFINITY),
                _ => Some(x),
            });
            c.push(Some(case));
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(g)),
            Arc::new(Float64Array::from(v)),
            Arc::new(BooleanArray::from(c)),
        ];
        batches.push(RecordBatch::try_new(schema.clone(), columns).unwrap());
    }
    let half = batches.len() / 2;
    MemTable::try_new(
        schema,
        vec![batches[..half].to_vec(), batches[half..].to_vec()],
    )
    .unwrap()
}

/// A session as Discern builds it (its rules, a fair spill pool of `limit` bytes, a spill
/// directory), or without Discern's physical rule (`bounded = false`).
fn session(limit: Option<usize>, bounded: bool, spill: &std::path::Path) -> SessionContext {
    let mut runtime = RuntimeEnvBuilder::new().with_disk_manager_builder(
        DiskManagerBuilder::default()
            .with_mode(DiskManagerMode::Directories(vec![spill.to_path_buf()])),
    );
    if let Some(limit) = limit {
        runtime = runtime.with_memory_pool(Arc::new(FairSpillPool::new(limit)));
    }
    let mut config = SessionConfig::new()
        .with_target_partitions(2)
        .with_batch_size(1_024);
    config.options_mut().execution.sort_spill_reservation_bytes = 64 * KIB;
    let builder = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime.build_arc().unwrap())
        .with_default_features();
    let builder = if bounded {
        discern::session::with_discern_rules(builder)
    } else {
        builder
    };
    let ctx = SessionContext::new_with_state(builder.build());
    discern_udfs::register_all(&ctx).unwrap();
    ctx
}

/// The report's statistics: rank statistics, moments, medians and counts of one state.
const REPORT: &str = "SELECT g, count(v) FILTER (WHERE c) AS n_case, \
     count(v) FILTER (WHERE NOT c) AS n_control, median(v) FILTER (WHERE c) AS median_case, \
     avg(v) FILTER (WHERE NOT c) AS mean_control, auc_ci(v, c) AS auc, \
     mann_whitney(v, c)['p'] AS mw_p, ks_test(v, c)['d'] AS ks_d, \
     welch_t_test(v, c)['t'] AS t, youden(v, c) AS youden, count(*) AS rows \
     FROM t GROUP BY g";

struct Outcome {
    /// One line per group, sorted, every value printed in full.
    lines: Vec<String>,
    plan: String,
    spill_files: usize,
    depth: usize,
}

async fn run(ctx: &SessionContext, sql: &str) -> datafusion::error::Result<Outcome> {
    let plan = ctx.sql(sql).await?.create_physical_plan().await?;
    let batches = collect(Arc::clone(&plan), ctx.task_ctx()).await?;
    let options = FormatOptions::default().with_null("NULL");
    let mut lines = Vec::new();
    for batch in &batches {
        let formatters: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for row in 0..batch.num_rows() {
            let cells: Vec<String> = formatters
                .iter()
                .map(|f| f.value(row).to_string())
                .collect();
            lines.push(cells.join("|"));
        }
    }
    lines.sort();
    let (spill_files, depth) = bounded_metrics(&plan);
    Ok(Outcome {
        lines,
        plan: displayable(plan.as_ref()).indent(true).to_string(),
        spill_files,
        depth,
    })
}

/// Spill files and the deepest bucket split of the plan's BoundedAggregateExec.
fn bounded_metrics(plan: &Arc<dyn ExecutionPlan>) -> (usize, usize) {
    let mut found = (0, 0);
    if plan.name() == "BoundedAggregateExec"
        && let Some(m) = plan.metrics()
    {
        let depth = m
            .iter()
            .filter(|m| m.value().name() == "bucket_depth")
            .map(|m| m.value().as_usize())
            .max()
            .unwrap_or(0);
        found = (m.spill_count().unwrap_or(0), depth);
    }
    for child in plan.children() {
        let (files, depth) = bounded_metrics(child);
        found = (found.0 + files, found.1.max(depth));
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rank_statistics_spill_by_group_and_give_the_same_answers() {
    let dir = tempfile::tempdir().unwrap();
    let data = Arc::new(table(GROUPS, ROWS_PER_GROUP));
    let mut outcomes = Vec::new();
    // Room to spare; DataFusion's own aggregation; then limits where the states (about
    // 10 MiB of tallies) spill once, and where a sixteenth of them still does not fit.
    for (limit, bounded) in [
        (None, true),
        (None, false),
        (Some(4 * MIB), true),
        (Some(512 * KIB), true),
    ] {
        let ctx = session(limit, bounded, dir.path());
        ctx.register_table("t", data.clone()).unwrap();
        let outcome = run(&ctx, REPORT).await.unwrap();
        assert_eq!(
            outcome.plan.contains("BoundedAggregateExec"),
            bounded,
            "{}",
            outcome.plan
        );
        assert_eq!(outcome.lines.len(), GROUPS);
        outcomes.push((limit, outcome));
    }
    let reference = &outcomes[0].1;
    assert_eq!(reference.spill_files, 0, "no spill with room to spare");
    for (limit, outcome) in &outcomes[1..] {
        for (got, want) in outcome.lines.iter().zip(&reference.lines) {
            assert_eq!(got, want, "limit {limit:?}");
        }
    }
    let (at_4, at_512) = (&outcomes[2].1, &outcomes[3].1);
    assert!(at_4.spill_files > 0, "4 MiB: the states did not spill");
    assert!(at_4.depth >= 1, "4 MiB: no bucket was aggregated");
    assert!(
        at_512.depth >= 2,
        "512 KiB: buckets should have been split again (depth {})",
        at_512.depth
    );
    // Nothing is left in the spill directory.
    assert_eq!(files_under(dir.path()), 0);
}

/// Files under `dir` (the disk manager keeps an empty directory of its own while a session
/// lives).
fn files_under(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            if path.is_dir() { files_under(&path) } else { 1 }
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_group_larger_than_the_limit_fails_alone_and_clearly() {
    let dir = tempfile::tempdir().unwrap();
    // One group of 400,000 distinct values: about 4 MiB of tally.
    let ctx = session(Some(MIB), true, dir.path());
    ctx.register_table("t", Arc::new(table(1, 400_000)))
        .unwrap();
    let error = match run(
        &ctx,
        "SELECT g, auc(v, c), mann_whitney(v, c) FROM t GROUP BY g",
    )
    .await
    {
        Ok(_) => panic!("the query should not fit in 1 MiB"),
        Err(e) => e.to_string(),
    };
    assert!(error.contains("Resources exhausted"), "{error}");
    assert!(error.contains("one group's state alone"), "{error}");
    // The same session still answers a query that fits.
    ctx.register_table("small", Arc::new(table(10, 100)))
        .unwrap();
    let fine = run(&ctx, "SELECT g, auc(v, c) FROM small GROUP BY g")
        .await
        .unwrap();
    assert_eq!(fine.lines.len(), 10);
    assert_eq!(files_under(dir.path()), 0, "spill files left behind");
}

#[tokio::test]
async fn only_value_holding_aggregations_are_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = session(None, true, dir.path());
    ctx.register_table("t", Arc::new(table(4, 10))).unwrap();
    let plan = |sql: &'static str| {
        let ctx = ctx.clone();
        async move {
            let plan = ctx
                .sql(sql)
                .await
                .unwrap()
                .create_physical_plan()
                .await
                .unwrap();
            displayable(plan.as_ref()).indent(true).to_string()
        }
    };
    let counts = plan("SELECT g, count(*), avg(v) FROM t GROUP BY g").await;
    assert!(!counts.contains("BoundedAggregateExec"), "{counts}");
    let medians = plan("SELECT g, median(v) FROM t GROUP BY g").await;
    assert!(medians.contains("BoundedAggregateExec"), "{medians}");
    // Without GROUP BY there is one group: nothing to split by.
    let whole = plan("SELECT auc(v, c) FROM t").await;
    assert!(!whole.contains("BoundedAggregateExec"), "{whole}");
}
