//! The operator: one-stage hash aggregation that spills group states to hash buckets when the
//! pool refuses to grow, and aggregates the buckets one at a time afterwards.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result, internal_err};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_expr::{Distribution, PhysicalExpr};
use datafusion::physical_plan::aggregates::{
    AggregateExec, AggregateMode, PhysicalGroupBy, aggregate_expressions,
};
use datafusion::physical_plan::execution_plan::{
    ChildrenPropertiesMode, ReplaceChildrenOptions, apply_expression_roots,
};
use datafusion::physical_plan::metrics::{
    BaselineMetrics, ExecutionPlanMetricsSet, Gauge, MetricBuilder, MetricsSet, SpillMetrics,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SpillManager,
};
use futures::{StreamExt, TryStreamExt};

use super::MAX_DEPTH;
use super::buckets::Buckets;
use super::table::{Definition, Table};

/// A grouped aggregation that stays within the memory limit by writing group states out to
/// hash buckets (see the module documentation). It takes raw rows and produces final values,
/// as an `AggregateExec` in `Single` / `SinglePartitioned` mode would.
#[derive(Debug, Clone)]
pub struct BoundedAggregateExec {
    group_by: PhysicalGroupBy,
    aggregates: Vec<Arc<AggregateFunctionExpr>>,
    filters: Vec<Option<Arc<dyn PhysicalExpr>>>,
    input: Arc<dyn ExecutionPlan>,
    input_schema: SchemaRef,
    /// Whether the input must be hash-partitioned by the group key (else one partition).
    partitioned: bool,
    cache: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl BoundedAggregateExec {
    /// Replaces a one-stage aggregation, over `input`.
    pub fn try_new(single: &AggregateExec, input: Arc<dyn ExecutionPlan>) -> Result<Self> {
        Ok(Self {
            group_by: single.group_expr().clone(),
            aggregates: single.aggr_expr().to_vec(),
            filters: single.filter_expr().to_vec(),
            input_schema: single.input_schema(),
            partitioned: *single.mode() == AggregateMode::SinglePartitioned,
            cache: Arc::clone(single.properties()),
            input,
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }

    /// Replaces the two stages `partial` and `outer` by one, over `input` (the partial's
    /// input, repartitioned by the group key when `outer` is partitioned).
    pub fn try_new_final(
        partial: &AggregateExec,
        outer: &AggregateExec,
        input: Arc<dyn ExecutionPlan>,
    ) -> Result<Self> {
        Ok(Self {
            group_by: partial.group_expr().clone(),
            aggregates: partial.aggr_expr().to_vec(),
            filters: partial.filter_expr().to_vec(),
            input_schema: partial.input_schema(),
            partitioned: *outer.mode() == AggregateMode::FinalPartitioned,
            cache: Arc::clone(outer.properties()),
            input,
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }

    /// The schema of the rows it aggregates.
    pub fn input_schema(&self) -> SchemaRef {
        Arc::clone(&self.input_schema)
    }

    /// The one-stage `AggregateExec` this operator computes, over `input`: how it is described
    /// in a serialised plan (cluster mode ships it to workers this way).
    pub fn as_aggregate(&self, input: Arc<dyn ExecutionPlan>) -> Result<AggregateExec> {
        let mode = if self.partitioned {
            AggregateMode::SinglePartitioned
        } else {
            AggregateMode::Single
        };
        AggregateExec::try_new(
            mode,
            self.group_by.clone(),
            self.aggregates.clone(),
            self.filters.clone(),
            input,
            Arc::clone(&self.input_schema),
        )
    }

    fn definition(&self, batch_size: usize) -> Result<Definition> {
        let group_schema = self.group_by.group_schema(&self.input_schema)?;
        let mut state_fields: Vec<Arc<Field>> = group_schema.fields().iter().cloned().collect();
        for aggregate in &self.aggregates {
            state_fields.extend(aggregate.state_fields()?);
        }
        let arguments = aggregate_expressions(&self.aggregates, &AggregateMode::Single, 0)?;
        Ok(Definition {
            group_exprs: self.group_by.input_exprs(),
            group_schema,
            aggregates: self.aggregates.clone(),
            arguments,
            filters: self.filters.clone(),
            state_schema: Arc::new(Schema::new(state_fields)),
            output_schema: self.schema(),
            batch_size,
        })
    }
}

impl DisplayAs for BoundedAggregateExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let groups: Vec<String> = self
            .group_by
            .expr()
            .iter()
            .map(|(e, name)| {
                let e = e.to_string();
                if &e == name {
                    e
                } else {
                    format!("{e} as {name}")
                }
            })
            .collect();
        let aggregates: Vec<&str> = self.aggregates.iter().map(|a| a.name()).collect();
        write!(
            f,
            "BoundedAggregateExec: gby=[{}], aggr=[{}]",
            groups.join(", "),
            aggregates.join(", ")
        )
    }
}

impl ExecutionPlan for BoundedAggregateExec {
    fn name(&self) -> &str {
        "BoundedAggregateExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.cache
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        if self.partitioned {
            vec![Distribution::KeyPartitioned(self.group_by.input_exprs())]
        } else {
            vec![Distribution::SinglePartition]
        }
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        let groups = self.group_by.input_exprs();
        let arguments = self.aggregates.iter().flat_map(|a| a.expressions());
        let filters = self.filters.iter().flatten().cloned();
        let roots: Vec<Arc<dyn PhysicalExpr>> =
            groups.into_iter().chain(arguments).chain(filters).collect();
        apply_expression_roots(roots.iter(), f)
    }

    fn replace_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return internal_err!(
                "BoundedAggregateExec takes one child, got {}",
                children.len()
            );
        }
        Ok(Arc::new(Self {
            input: children.swap_remove(0),
            metrics: ExecutionPlanMetricsSet::new(),
            ..Self::clone(&self)
        }))
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(
            children,
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let config = context.session_config();
        let definition = Arc::new(self.definition(config.batch_size())?);
        let options = &config.options().execution;
        let spill = SpillManager::new(
            context.runtime_env(),
            SpillMetrics::new(&self.metrics, partition),
            Arc::clone(&definition.state_schema),
        )
        .with_compression_type(options.spill_compression);
        // A spilling consumer: a fair pool gives it its share of what the others leave, so
        // that concurrent partitions and queries each get theirs.
        let reservation = MemoryConsumer::new(format!("BoundedAggregateExec[{partition}]"))
            .with_can_spill(true)
            .register(context.memory_pool());
        let run = Run {
            definition,
            reservation,
            spill: Arc::new(spill),
            max_file_bytes: options.max_spill_file_size_bytes.get(),
            can_spill: context.runtime_env().disk_manager.tmp_files_enabled(),
            pending: Vec::new(),
            ready: VecDeque::new(),
            baseline: BaselineMetrics::new(&self.metrics, partition),
            depth: MetricBuilder::new(&self.metrics).gauge("bucket_depth", partition),
        };
        let input = self.input.execute(partition, context)?;
        let stream = futures::stream::once(run.first_pass(input))
            .map_ok(|run| futures::stream::try_unfold(run, Run::next))
            .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema(),
            stream,
        )))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// One partition's aggregation: results ready to go out, and buckets still to aggregate.
struct Run {
    definition: Arc<Definition>,
    reservation: MemoryReservation,
    spill: Arc<SpillManager>,
    max_file_bytes: usize,
    can_spill: bool,
    /// Buckets written and not aggregated yet, with the level they would split at.
    pending: Vec<(SendableRecordBatchStream, usize)>,
    ready: VecDeque<RecordBatch>,
    baseline: BaselineMetrics,
    /// The deepest level of buckets aggregated (0: nothing was written out).
    depth: Gauge,
}

impl Run {
    fn table(&self) -> Result<Table> {
        Table::new(Arc::clone(&self.definition), self.reservation.new_empty())
    }

    fn buckets(&self, level: usize) -> Buckets {
        let keys = self.definition.group_schema.fields().len();
        Buckets::new(&self.spill, self.max_file_bytes, keys, level)
    }

    /// Aggregates the input; what did not fit is left in buckets.
    async fn first_pass(mut self, mut input: SendableRecordBatchStream) -> Result<Self> {
        let mut table = self.table()?;
        let mut buckets: Option<Buckets> = None;
        while let Some(batch) = input.next().await {
            let batch = batch?;
            let _timer = self.baseline.elapsed_compute().timer();
            table.update(&batch)?;
            if let Err(refused) = table.reserve() {
                if !self.can_spill {
                    return Err(refused);
                }
                let b = buckets.get_or_insert_with(|| self.buckets(0));
                table.spill(b)?;
            }
        }
        self.finish(table, buckets)?;
        Ok(self)
    }

    /// Aggregates one bucket (states written out before), splitting it if it does not fit.
    async fn aggregate_bucket(
        &mut self,
        mut stream: SendableRecordBatchStream,
        level: usize,
    ) -> Result<()> {
        self.depth.set_max(level);
        let mut table = self.table()?;
        let mut buckets: Option<Buckets> = None;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            let _timer = self.baseline.elapsed_compute().timer();
            table.merge(&batch)?;
            if let Err(refused) = table.reserve() {
                if table.groups() <= 1 || level >= super::MAX_DEPTH {
                    return Err(one_group_too_large(refused, level));
                }
                let b = buckets.get_or_insert_with(|| self.buckets(level));
                table.spill(b)?;
            }
        }
        self.finish(table, buckets)
    }

    /// The end of a pass: with nothing written out, the table's groups are complete and are
    /// evaluated; otherwise the table joins its buckets, which wait their turn.
    fn finish(&mut self, mut table: Table, buckets: Option<Buckets>) -> Result<()> {
        let _timer = self.baseline.elapsed_compute().timer();
        match buckets {
            None => {
                let batches = table.evaluate()?;
                let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
                self.baseline.output_rows().add(rows);
                self.ready.extend(batches);
            }
            Some(mut buckets) => {
                table.spill(&mut buckets)?;
                self.pending.extend(buckets.finish());
            }
        }
        Ok(())
    }

    /// The next output batch, aggregating the next bucket when none is ready.
    async fn next(mut self) -> Result<Option<(RecordBatch, Self)>> {
        loop {
            if let Some(batch) = self.ready.pop_front() {
                return Ok(Some((batch, self)));
            }
            let Some((stream, level)) = self.pending.pop() else {
                self.reservation.free();
                return Ok(None);
            };
            self.aggregate_bucket(stream, level).await?;
        }
    }
}

/// The error when one group's state alone does not fit: nothing can be split further.
fn one_group_too_large(refused: DataFusionError, level: usize) -> DataFusionError {
    let why = if level >= MAX_DEPTH {
        format!("after splitting its groups {MAX_DEPTH} times")
    } else {
        "and one group's state alone needs more than that".to_string()
    };
    match refused {
        DataFusionError::ResourcesExhausted(message) => {
            DataFusionError::ResourcesExhausted(format!("{message} ({why})"))
        }
        other => other,
    }
}
