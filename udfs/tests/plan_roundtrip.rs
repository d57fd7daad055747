//! Every aggregate of the catalog in a distributed setting: its physical plan survives
//! serialisation (datafusion-proto, functions found by name in the receiving session, options
//! as literal arguments) and gives the same results; its partial states survive Arrow IPC and
//! give the same results when merged in another order.
//!
//! Results must be bit-identical, except the moment statistics, whose Chan merge of (n, mean,
//! M2) is not associative in floating point: their statistics agree to 1e-11 relative (the
//! states to a few ulp; a p-value amplifies that by its condition number).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, UInt32Array,
};
use datafusion::arrow::compute::{concat_batches, take_record_batch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::datasource::MemTable;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use datafusion::physical_plan::{ExecutionPlan, collect};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_proto::bytes::{physical_plan_from_bytes, physical_plan_to_bytes};

/// Every aggregate call, with whether its result may differ in the last bits between merge
/// orders (moment statistics).
const CALLS: &[(&str, bool)] = &[
    ("auc(v, c)", false),
    ("mann_whitney(v, c)", false),
    ("mann_whitney(v, c, 'exact')", false),
    ("auc_ci(v, c, 0.9)", false),
    ("welch_t_test(v, c)", true),
    ("student_t_test(v, c)", true),
    ("cohens_d(v, c)", true),
    ("hedges_g(v, c)", true),
    ("fold_change(v, c)", true),
    ("log2_fold_change(v, c)", true),
    ("paired_t_test(v - w)", true),
    ("wilcoxon_signed_rank(v - w, 'asymptotic')", false),
    (
        "wilcoxon_signed_rank(v - w, 'asymptotic', false, 'pratt')",
        false,
    ),
    ("odds_ratio(e, c, 0.9)", false),
    ("fisher_exact(e, c)", false),
    ("chi2_test(e, c, false)", false),
    ("mcnemar(e, c)", false),
    ("cmh_test(e, c, s)", false),
    ("breslow_day(e, c, s, true)", false),
    ("fisher_exact(e, c, 0.9, 'greater')", false),
    ("mann_whitney(v, c, 'asymptotic', false)", false),
    ("reclassification(v / 10, w / 10, c)", true),
    ("roc_sample_size(v, c, 0.9, 0.01)", false),
    ("roc_test_unpaired(v, c, e)", false),
    ("youden(v, c)", false),
    ("sensitivity_at_specificity(v, c, 0.8)", false),
    ("specificity_at_sensitivity(v, c, 0.8)", false),
    ("partial_auc(v, c, 0.8, 1.0, true)", false),
    ("roc_curve(v, c)", false),
    ("roc_test(v, w, c)", false),
    ("logistic_regression(c, v, w)", false),
    ("odds_ratio_per_sd(v, c, w)", false),
    ("conditional_logistic(c, m, v)", false),
    ("conditional_logistic(c, m, v, w, 'breslow')", false),
    ("cmh_exact(e, c, s, 0.9)", false),
    ("auc_ci_bootstrap(v, c, 0.9, 50, 3)", false),
    ("wilcoxon_signed_rank(v - w, 'exact', true, 'pratt')", false),
];

/// 40 groups of 150 rows: values with ties, a second marker, exposure, strata, matched sets.
fn data() -> MemTable {
    let schema = Arc::new(Schema::new(vec![
        Field::new("g", DataType::Int64, false),
        Field::new("v", DataType::Float64, true),
        Field::new("w", DataType::Float64, true),
        Field::new("c", DataType::Boolean, true),
        Field::new("e", DataType::Boolean, true),
        Field::new("s", DataType::Int64, true),
        Field::new("m", DataType::Int64, true),
    ]));
    let n = 6000i64;
    let mut state = 0x9e3779b97f4a7c15u64;
    let mut uniform = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut rows = Vec::new();
    for i in 0..n {
        let g = i % 40;
        // Matched sets of 4 within a group: one case, three controls.
        let c = (i / 40) % 4 == 0;
        let shift = if c { 0.4 + g as f64 * 0.01 } else { 0.0 };
        let v = ((uniform() * 3.0 + shift) * 10.0).round() / 10.0;
        let w = v * 0.5 + uniform();
        let e = uniform() < if c { 0.5 } else { 0.3 };
        let v = (i % 97 != 0).then_some(v);
        rows.push((g, v, w, c, e, i % 3, i / 160));
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
        Arc::new(Float64Array::from_iter(rows.iter().map(|r| r.1))),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.2))),
        Arc::new(BooleanArray::from_iter(rows.iter().map(|r| Some(r.3)))),
        Arc::new(BooleanArray::from_iter(rows.iter().map(|r| Some(r.4)))),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.5))),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.6))),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
    // Four partitions of small batches, so that partial aggregates form.
    let mut parts = vec![Vec::new(); 4];
    for (k, start) in (0..batch.num_rows()).step_by(97).enumerate() {
        let len = 97.min(batch.num_rows() - start);
        parts[k % 4].push(batch.slice(start, len));
    }
    MemTable::try_new(schema, parts).unwrap()
}

fn session() -> SessionContext {
    let ctx = SessionContext::new_with_config(
        SessionConfig::new()
            .with_target_partitions(4)
            .with_batch_size(64),
    );
    discern_udfs::register_all(&ctx).unwrap();
    ctx.register_table("t", Arc::new(data())).unwrap();
    ctx
}

fn sorted(batches: &[RecordBatch]) -> RecordBatch {
    let all = concat_batches(&batches[0].schema(), batches).unwrap();
    let keys = all
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .clone();
    let mut order: Vec<u32> = (0..all.num_rows() as u32).collect();
    order.sort_by_key(|&i| keys.value(i as usize));
    take_record_batch(&all, &UInt32Array::from(order)).unwrap()
}

/// Every value rendered with full precision, or numbers for the tolerant comparison.
fn rendered(batch: &RecordBatch) -> Vec<String> {
    let options = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for column in batch.columns() {
        let f = ArrayFormatter::try_new(column.as_ref(), &options).unwrap();
        for row in 0..column.len() {
            out.push(f.value(row).to_string());
        }
    }
    out
}

fn numbers(text: &str) -> Vec<f64> {
    text.split(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | 'e' | '+')))
        .filter_map(|t| t.parse().ok())
        .collect()
}

fn assert_same(a: &RecordBatch, b: &RecordBatch, call: &str, tolerant: bool, what: &str) {
    assert_eq!(a.num_rows(), b.num_rows(), "{call}: {what}: row count");
    let (x, y) = (rendered(a), rendered(b));
    for (p, q) in x.iter().zip(&y) {
        if p == q {
            continue;
        }
        assert!(tolerant, "{call}: {what}: {p} != {q}");
        let (u, v) = (numbers(p), numbers(q));
        assert_eq!(u.len(), v.len(), "{call}: {what}: {p} vs {q}");
        for (s, t) in u.iter().zip(&v) {
            assert!(
                (s - t).abs() <= 1e-11 * t.abs(),
                "{call}: {what}: {p} vs {q}"
            );
        }
    }
}

/// The lowest aggregate that merges partial states (Final or FinalPartitioned).
fn final_aggregate(plan: &Arc<dyn ExecutionPlan>) -> Option<Arc<dyn ExecutionPlan>> {
    if let Some(agg) = plan.downcast_ref::<AggregateExec>()
        && matches!(
            agg.mode(),
            AggregateMode::Final | AggregateMode::FinalPartitioned
        )
    {
        return Some(Arc::clone(plan));
    }
    plan.children().into_iter().find_map(final_aggregate)
}

/// Writes batches through Arrow IPC and reads them back, as a shuffle between machines would.
fn through_ipc(batches: &[RecordBatch]) -> Vec<RecordBatch> {
    let schema = batches[0].schema();
    let mut buffer = Vec::new();
    {
        let mut writer = StreamWriter::try_new(&mut buffer, &schema).unwrap();
        for b in batches {
            writer.write(b).unwrap();
        }
        writer.finish().unwrap();
    }
    StreamReader::try_new(std::io::Cursor::new(buffer), None)
        .unwrap()
        .map(|b| b.unwrap())
        .collect()
}

#[tokio::test]
async fn every_aggregate_survives_plan_serialisation_and_reordered_merges() {
    let ctx = session();
    // A second session plays the worker: same functions and table, nothing else shared.
    let worker = session();
    for &(call, tolerant) in CALLS {
        let sql = format!("SELECT g, {call} AS r FROM t GROUP BY g");
        let plan = ctx
            .sql(&sql)
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap();
        let expected = sorted(&collect(Arc::clone(&plan), ctx.task_ctx()).await.unwrap());
        assert_eq!(expected.num_rows(), 40, "{call}");

        // 1. The plan, serialised and decoded in the other session.
        let bytes = physical_plan_to_bytes(Arc::clone(&plan)).unwrap();
        let decoded = physical_plan_from_bytes(&bytes, &worker.task_ctx()).unwrap();
        let got = sorted(&collect(decoded, worker.task_ctx()).await.unwrap());
        assert_same(&expected, &got, call, false, "after plan serialisation");

        // 2. The partial states through IPC, merged in reverse order in one partition (a
        // fresh plan: a plan's repartitioning runs once).
        let plan = ctx
            .sql(&sql)
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap();
        let final_agg =
            final_aggregate(&plan).unwrap_or_else(|| panic!("{call}: no final aggregate"));
        let input = Arc::clone(final_agg.children()[0]);
        let states = collect(Arc::clone(&input), ctx.task_ctx()).await.unwrap();
        let mut states = through_ipc(&states);
        states.reverse();
        let states: Vec<RecordBatch> = states
            .iter()
            .map(|b| {
                let reversed = UInt32Array::from_iter_values((0..b.num_rows() as u32).rev());
                take_record_batch(b, &reversed).unwrap()
            })
            .collect();
        let source = MemorySourceConfig::try_new_exec(&[states], input.schema(), None).unwrap();
        let merged = Arc::clone(&final_agg)
            .replace_children(
                vec![source],
                ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
            )
            .unwrap();
        let got = sorted(&collect(merged, ctx.task_ctx()).await.unwrap());
        // The final aggregate's output columns: group, then the aggregate.
        let expected_core = expected.project(&[0, 1]).unwrap();
        let got_core = got.project(&[0, 1]).unwrap();
        assert_same(
            &expected_core,
            &got_core,
            call,
            tolerant,
            "partial states merged in reverse order",
        );
    }
}
