//! The in-memory part of a bounded aggregation: group keys interned by DataFusion's
//! `GroupValues`, one `GroupsAccumulator` per aggregate, and a reservation that follows what
//! both report holding.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::{Result, internal_err};
use datafusion::execution::memory_pool::MemoryReservation;
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_expr::{GroupsAccumulatorAdapter, PhysicalExpr};
use datafusion::physical_plan::aggregates::group_values::{GroupValues, new_group_values};
use datafusion::physical_plan::aggregates::order::GroupOrdering;

use super::buckets::Buckets;

/// What an aggregation computes, shared by all of its tables.
#[derive(Debug)]
pub struct Definition {
    /// The grouping expressions over the raw input.
    pub group_exprs: Vec<Arc<dyn PhysicalExpr>>,
    /// The group key columns.
    pub group_schema: SchemaRef,
    /// The aggregates.
    pub aggregates: Vec<Arc<AggregateFunctionExpr>>,
    /// Each aggregate's argument expressions over the raw input.
    pub arguments: Vec<Vec<Arc<dyn PhysicalExpr>>>,
    /// Each aggregate's FILTER, over the raw input.
    pub filters: Vec<Option<Arc<dyn PhysicalExpr>>>,
    /// The group key columns followed by every aggregate's state fields: what spills.
    pub state_schema: SchemaRef,
    /// The result: the group key columns followed by every aggregate's value.
    pub output_schema: SchemaRef,
    /// Rows per output batch.
    pub batch_size: usize,
}

impl Definition {
    fn accumulators(&self) -> Result<Vec<Box<dyn GroupsAccumulator>>> {
        self.aggregates
            .iter()
            .map(|aggregate| {
                if aggregate.groups_accumulator_supported() {
                    aggregate.create_groups_accumulator()
                } else {
                    let aggregate = Arc::clone(aggregate);
                    Ok(Box::new(GroupsAccumulatorAdapter::new(move || {
                        aggregate.create_accumulator()
                    })) as Box<dyn GroupsAccumulator>)
                }
            })
            .collect()
    }
}

/// Groups being aggregated in memory.
pub struct Table {
    definition: Arc<Definition>,
    group_values: Box<dyn GroupValues>,
    accumulators: Vec<Box<dyn GroupsAccumulator>>,
    reservation: MemoryReservation,
    indices: Vec<usize>,
}

impl Table {
    /// An empty table whose memory goes to `reservation`.
    pub fn new(definition: Arc<Definition>, reservation: MemoryReservation) -> Result<Self> {
        Ok(Self {
            group_values: new_group_values(
                Arc::clone(&definition.group_schema),
                &GroupOrdering::None,
            )?,
            accumulators: definition.accumulators()?,
            definition,
            reservation,
            indices: Vec::new(),
        })
    }

    /// The number of groups held.
    pub fn groups(&self) -> usize {
        self.group_values.len()
    }

    /// Bytes held: the group keys, the accumulators' states and the index buffer.
    fn size(&self) -> usize {
        self.group_values.size()
            + self.accumulators.iter().map(|a| a.size()).sum::<usize>()
            + self.indices.capacity() * size_of::<usize>()
    }

    /// Makes the reservation match what the table holds; the pool's error when it refuses
    /// (the table must then be written out).
    pub fn reserve(&mut self) -> Result<()> {
        self.reservation.try_resize(self.size())
    }

    /// Adds raw input rows.
    pub fn update(&mut self, batch: &RecordBatch) -> Result<()> {
        let definition = Arc::clone(&self.definition);
        let keys = evaluate(&definition.group_exprs, batch)?;
        self.group_values.intern(&keys, &mut self.indices)?;
        let groups = self.group_values.len();
        for ((accumulator, arguments), filter) in self
            .accumulators
            .iter_mut()
            .zip(&definition.arguments)
            .zip(&definition.filters)
        {
            let values = evaluate(arguments, batch)?;
            let filter = match filter {
                Some(f) => Some(f.evaluate(batch)?.into_array(batch.num_rows())?),
                None => None,
            };
            accumulator.update_batch(
                &values,
                &self.indices,
                filter.as_ref().map(|f| f.as_boolean()),
                groups,
            )?;
        }
        Ok(())
    }

    /// Merges states written out before (rows of [`Definition::state_schema`]).
    pub fn merge(&mut self, batch: &RecordBatch) -> Result<()> {
        let keys = self.definition.group_schema.fields().len();
        self.group_values
            .intern(&batch.columns()[..keys], &mut self.indices)?;
        let groups = self.group_values.len();
        let mut column = keys;
        for (accumulator, aggregate) in self
            .accumulators
            .iter_mut()
            .zip(&self.definition.aggregates)
        {
            let width = aggregate.state_fields()?.len();
            let Some(states) = batch.columns().get(column..column + width) else {
                return internal_err!("a spilled state batch has too few columns");
            };
            accumulator.merge_batch(states, &self.indices, groups)?;
            column += width;
        }
        Ok(())
    }

    /// Writes every group's state to `buckets` and empties the table. The states are taken a
    /// sixteenth of the groups at a time (at least 64), each chunk freed once written, so
    /// that writing out holds little beyond what the reservation already counts.
    pub fn spill(&mut self, buckets: &mut Buckets) -> Result<()> {
        let keys = self.group_values.emit(EmitTo::All)?;
        let groups = keys.first().map_or(0, |k| k.len());
        let chunk = (groups / 16).max(64);
        let mut start = 0;
        while start < groups {
            let take = chunk.min(groups - start);
            let mut columns: Vec<ArrayRef> = keys.iter().map(|k| k.slice(start, take)).collect();
            for accumulator in &mut self.accumulators {
                columns.extend(accumulator.state(EmitTo::First(take))?);
            }
            let batch = RecordBatch::try_new(Arc::clone(&self.definition.state_schema), columns)?;
            buckets.write(&batch)?;
            start += take;
        }
        self.reset()
    }

    /// Evaluates every group (the table is then empty), as batches of the output schema.
    pub fn evaluate(&mut self) -> Result<Vec<RecordBatch>> {
        let mut columns = self.group_values.emit(EmitTo::All)?;
        for accumulator in &mut self.accumulators {
            columns.push(accumulator.evaluate(EmitTo::All)?);
        }
        let batch = RecordBatch::try_new(Arc::clone(&self.definition.output_schema), columns)?;
        self.reset()?;
        let size = self.definition.batch_size.max(1);
        Ok((0..batch.num_rows())
            .step_by(size)
            .map(|start| batch.slice(start, size.min(batch.num_rows() - start)))
            .collect())
    }

    /// Starts afresh with empty group values and accumulators.
    fn reset(&mut self) -> Result<()> {
        self.group_values.clear_shrink(0);
        self.accumulators = self.definition.accumulators()?;
        self.indices = Vec::new();
        self.reservation.resize(self.size());
        Ok(())
    }
}

fn evaluate(exprs: &[Arc<dyn PhysicalExpr>], batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
    exprs
        .iter()
        .map(|e| e.evaluate(batch)?.into_array(batch.num_rows()))
        .collect()
}
