//! Aggregations whose states hold every value of a group (rank statistics, medians), kept
//! within the memory limit at any cardinality.
//!
//! A rank statistic needs all of a group's values together. With instrument-rounded values a
//! group's tally is small (a few thousand distinct values), but with full-precision values it
//! has as many entries as rows, and the states of all groups together can be many times the
//! memory limit. DataFusion's own answer under memory pressure does not hold the limit for
//! such states: its partial aggregation emits every state at once, and its final aggregation
//! spills by materialising every state as one Arrow batch beside the live states and sorting
//! it, neither of which the pool sees.
//!
//! [`BoundedAggregateExec`] replaces such an aggregation (the rule [`BoundValueAggregates`],
//! added to every session by `session.rs`). It is a one-stage, hash-partitioned ("grace")
//! aggregation:
//!
//! - The raw rows are hash-repartitioned by the group key, with no partial stage (a partial
//!   state of full-precision values is as large as the rows, and merging it costs a second
//!   pass).
//! - Each partition aggregates in memory while its reservation grows. When the pool refuses,
//!   the groups' states are written out to 16 spill buckets by a hash of the group key (in
//!   chunks, each freed as it is written), and aggregation starts again from an empty table.
//! - At the end, what is in memory is evaluated; then each bucket is read back and merged in a
//!   new table, one bucket at a time, so that only a sixteenth of the groups is held at once.
//!   A bucket that still does not fit is split again into 16 (another hash), up to
//!   [`MAX_DEPTH`] times; one group that alone exceeds the limit fails the query with the
//!   memory-limit error.
//!
//! States merge exactly (tallies are multisets), so the rank statistics are bit for bit those
//! of a run with room to spare; statistics evaluated from the tallies (moments, medians) are too.

mod buckets;
mod exec;
mod table;

use std::sync::Arc;

use datafusion::common::Result;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::physical_expr::physical_exprs_equal;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::{ExecutionPlanProperties, InputOrderMode, Partitioning};

pub use exec::BoundedAggregateExec;

/// How many times a bucket that does not fit is split again (16⁴ = 65,536 buckets).
pub const MAX_DEPTH: usize = 4;

/// The physical optimizer rule that gives value-holding aggregations a
/// [`BoundedAggregateExec`]: a grouped `AggregateExec` pair (Partial, then Final or
/// FinalPartitioned) or a single-stage one, with one of the value-holding aggregates of
/// `discern_udfs::keeps_values` among its aggregates, one set of grouping expressions, no
/// ordered aggregate (`ORDER BY` inside the call) and unsorted input. Others are left to
/// DataFusion.
#[derive(Debug, Default)]
pub struct BoundValueAggregates;

impl PhysicalOptimizerRule for BoundValueAggregates {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_down(|node| {
            Ok(match rewrite(&node)? {
                Some(new) => Transformed::yes(new),
                None => Transformed::no(node),
            })
        })
        .data()
    }

    fn name(&self) -> &str {
        "discern_bound_value_aggregates"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Whether `aggregate` is one this module takes over.
fn qualifies(aggregate: &AggregateExec) -> bool {
    let group_by = aggregate.group_expr();
    !group_by.expr().is_empty()
        && group_by.is_single()
        && *aggregate.input_order_mode() == InputOrderMode::Linear
        && aggregate.limit_options().is_none()
        && aggregate
            .aggr_expr()
            .iter()
            .all(|a| a.order_bys().is_empty())
        && aggregate
            .aggr_expr()
            .iter()
            .any(|a| discern_udfs::keeps_values(a.fun().name()))
}

/// The replacement of `node`, if it is an aggregation this module takes over.
fn rewrite(node: &Arc<dyn ExecutionPlan>) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let Some(outer) = node.downcast_ref::<AggregateExec>() else {
        return Ok(None);
    };
    match outer.mode() {
        AggregateMode::Single | AggregateMode::SinglePartitioned if qualifies(outer) => {
            let exec = BoundedAggregateExec::try_new(outer, Arc::clone(outer.input()))?;
            Ok(Some(Arc::new(exec)))
        }
        AggregateMode::Final | AggregateMode::FinalPartitioned => {
            // Final ← [Repartition | CoalescePartitions] ← Partial ← input.
            let Some(partial) = partial_below(outer.input()) else {
                return Ok(None);
            };
            if !qualifies(partial) || !same_aggregation(outer, partial) {
                return Ok(None);
            }
            let raw = Arc::clone(partial.input());
            let input: Arc<dyn ExecutionPlan> = match outer.mode() {
                AggregateMode::FinalPartitioned => {
                    let partitions = node.output_partitioning().partition_count();
                    Arc::new(RepartitionExec::try_new(
                        raw,
                        Partitioning::Hash(partial.group_expr().input_exprs(), partitions),
                    )?)
                }
                _ if raw.output_partitioning().partition_count() > 1 => {
                    Arc::new(CoalescePartitionsExec::new(raw))
                }
                _ => raw,
            };
            let exec = BoundedAggregateExec::try_new_final(partial, outer, input)?;
            Ok(Some(Arc::new(exec)))
        }
        _ => Ok(None),
    }
}

/// Whether a final aggregation finishes what `partial` started (DataFusion's own test for
/// combining the two into one stage): the partial's output groups are the final's input
/// groups, and the aggregates and filters are the same.
fn same_aggregation(outer: &AggregateExec, partial: &AggregateExec) -> bool {
    let (final_by, partial_by) = (outer.group_expr(), partial.group_expr());
    physical_exprs_equal(&partial_by.output_exprs(), &final_by.input_exprs())
        && partial_by.groups() == final_by.groups()
        && outer.aggr_expr().len() == partial.aggr_expr().len()
        && outer
            .aggr_expr()
            .iter()
            .zip(partial.aggr_expr())
            .all(|(a, b)| a == b)
        && outer.filter_expr().len() == partial.filter_expr().len()
        && outer
            .filter_expr()
            .iter()
            .zip(partial.filter_expr())
            .all(|(a, b)| match (a, b) {
                (Some(a), Some(b)) => a.eq(b),
                (None, None) => true,
                _ => false,
            })
}

/// The partial aggregation under a final one, through a repartition or a coalesce.
fn partial_below(plan: &Arc<dyn ExecutionPlan>) -> Option<&AggregateExec> {
    if let Some(partial) = plan.downcast_ref::<AggregateExec>() {
        return (*partial.mode() == AggregateMode::Partial).then_some(partial);
    }
    let passes_through = plan.downcast_ref::<RepartitionExec>().is_some()
        || plan.downcast_ref::<CoalescePartitionsExec>().is_some();
    if passes_through {
        return plan.children().first().and_then(|c| partial_below(c));
    }
    None
}
