//! One Accumulator and one GroupsAccumulator for every aggregate family.
//!
//! A family describes its per-group state once ([`GroupState`]: how rows are added, how
//! partial states travel as Arrow columns and merge) and how a slice of states becomes the
//! result column; [`StateAccumulator`] (no GROUP BY, windows) and [`StateGroupsAccumulator`]
//! (GROUP BY) are then the same for all of them, including the honest `size()` that the
//! memory pool relies on.

use std::fmt;
use std::mem::size_of;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{Accumulator, EmitTo, GroupsAccumulator};

/// The state one group of an aggregate keeps.
pub trait GroupState: fmt::Debug + Default + Clone + Send + Sync + 'static {
    /// Adds the rows of `values` (the aggregate's arguments after coercion) that pass
    /// `filter`, row `r` to `groups[group(r)]`. Returns by how many bytes the states' heap
    /// allocations grew (negative when they shrank, as when values are compacted).
    fn update(
        groups: &mut [Self],
        values: &[ArrayRef],
        filter: Option<&BooleanArray>,
        group: impl Fn(usize) -> usize,
    ) -> Result<isize>;

    /// Merges partial states (the columns of [`GroupState::to_arrays`]), row `r` into
    /// `groups[group(r)]`. Returns by how many bytes the heap allocations grew (or shrank).
    fn merge(
        groups: &mut [Self],
        states: &[ArrayRef],
        group: impl Fn(usize) -> usize,
    ) -> Result<isize>;

    /// Whether [`GroupState::retract`] removes rows (sliding window frames).
    const RETRACTS: bool = false;

    /// Removes rows added before (a sliding window frame moving on), row `r` from
    /// `groups[group(r)]`. Returns the heap delta. Only called when `RETRACTS` is true.
    fn retract(
        _groups: &mut [Self],
        _values: &[ArrayRef],
        _group: impl Fn(usize) -> usize,
    ) -> Result<isize> {
        datafusion::common::not_impl_err!("this aggregate cannot remove rows from its state")
    }

    /// The states as Arrow columns, one row per group, matching the UDAF's `state_fields`.
    fn to_arrays(groups: &[Self]) -> Result<Vec<ArrayRef>>;

    /// Bytes this state holds on the heap.
    fn heap_bytes(&self) -> usize {
        0
    }
}

/// Turns states into the result column (one row per state). May reorder a state's contents
/// (sorting values, say) but not what they mean.
pub struct Evaluate<S>(Arc<EvaluateFn<S>>);

type EvaluateFn<S> = dyn Fn(&mut [S]) -> Result<ArrayRef> + Send + Sync;

impl<S> Evaluate<S> {
    /// Wraps the final step of an aggregate.
    pub fn new(f: impl Fn(&mut [S]) -> Result<ArrayRef> + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }
}

impl<S> Clone for Evaluate<S> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<S> fmt::Debug for Evaluate<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Evaluate")
    }
}

/// The Accumulator of one group.
#[derive(Debug)]
pub struct StateAccumulator<S> {
    state: S,
    evaluate: Evaluate<S>,
}

impl<S: GroupState> StateAccumulator<S> {
    /// An empty accumulator.
    pub fn new(evaluate: Evaluate<S>) -> Self {
        Self {
            state: S::default(),
            evaluate,
        }
    }
}

impl<S: GroupState> Accumulator for StateAccumulator<S> {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        S::update(std::slice::from_mut(&mut self.state), values, None, |_| 0).map(|_| ())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        S::merge(std::slice::from_mut(&mut self.state), states, |_| 0).map(|_| ())
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        S::retract(std::slice::from_mut(&mut self.state), values, |_| 0).map(|_| ())
    }

    fn supports_retract_batch(&self) -> bool {
        S::RETRACTS
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        S::to_arrays(std::slice::from_ref(&self.state))?
            .iter()
            .map(|a| ScalarValue::try_from_array(a, 0))
            .collect()
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        // Evaluate a copy: in a window frame the accumulator goes on receiving rows.
        let mut copy = [self.state.clone()];
        let column = (self.evaluate.0)(&mut copy)?;
        ScalarValue::try_from_array(&column, 0)
    }

    fn size(&self) -> usize {
        size_of::<Self>() + self.state.heap_bytes()
    }
}

/// The GroupsAccumulator: a vector of states indexed by group, with a running total of their
/// heap bytes so that `size()` is exact without walking every group.
#[derive(Debug)]
pub struct StateGroupsAccumulator<S> {
    groups: Vec<S>,
    heap_bytes: usize,
    evaluate: Evaluate<S>,
}

impl<S: GroupState> StateGroupsAccumulator<S> {
    /// An empty accumulator.
    pub fn new(evaluate: Evaluate<S>) -> Self {
        Self {
            groups: Vec::new(),
            heap_bytes: 0,
            evaluate,
        }
    }

    fn take(&mut self, emit_to: EmitTo) -> Vec<S> {
        let taken = emit_to.take_needed(&mut self.groups);
        let freed: usize = taken.iter().map(S::heap_bytes).sum();
        self.heap_bytes = self.heap_bytes.saturating_sub(freed);
        taken
    }
}

impl<S: GroupState> GroupsAccumulator for StateGroupsAccumulator<S> {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.groups.resize(total_num_groups, S::default());
        let delta = S::update(&mut self.groups, values, opt_filter, |row| {
            group_indices[row]
        })?;
        self.heap_bytes = self.heap_bytes.saturating_add_signed(delta);
        Ok(())
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.groups.resize(total_num_groups, S::default());
        let delta = S::merge(&mut self.groups, values, |row| group_indices[row])?;
        self.heap_bytes = self.heap_bytes.saturating_add_signed(delta);
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let mut groups = self.take(emit_to);
        (self.evaluate.0)(&mut groups)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let groups = self.take(emit_to);
        S::to_arrays(&groups)
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let rows = values.first().map_or(0, |v| v.len());
        let mut groups = vec![S::default(); rows];
        S::update(&mut groups, values, opt_filter, |row| row)?;
        S::to_arrays(&groups)
    }

    fn size(&self) -> usize {
        size_of::<Self>() + self.groups.capacity() * size_of::<S>() + self.heap_bytes
    }
}

/// Whether row `row` passes an aggregate's FILTER clause.
pub fn passes(filter: Option<&BooleanArray>, row: usize) -> bool {
    use datafusion::arrow::array::Array;
    filter.is_none_or(|f| f.is_valid(row) && f.value(row))
}

/// The fields of a STRUCT of nullable DOUBLEs.
pub fn float_fields(names: &[&str]) -> datafusion::arrow::datatypes::Fields {
    use datafusion::arrow::datatypes::{DataType, Field};
    names
        .iter()
        .map(|name| Field::new(*name, DataType::Float64, true))
        .collect()
}

/// A STRUCT column of nullable DOUBLEs named `names`, one row per item of `rows`: None is a
/// NULL struct, otherwise one optional value per field.
pub fn float_struct<const K: usize>(
    names: &[&str; K],
    rows: impl IntoIterator<Item = Option<[Option<f64>; K]>>,
) -> Result<ArrayRef> {
    use datafusion::arrow::array::{Float64Builder, StructArray};
    use datafusion::arrow::buffer::NullBuffer;
    let mut columns: [Float64Builder; K] = std::array::from_fn(|_| Float64Builder::new());
    let mut valid = Vec::new();
    for row in rows {
        valid.push(row.is_some());
        let row = row.unwrap_or([None; K]);
        for (column, value) in columns.iter_mut().zip(row) {
            column.append_option(value);
        }
    }
    let arrays: Vec<ArrayRef> = columns
        .iter_mut()
        .map(|c| Arc::new(c.finish()) as ArrayRef)
        .collect();
    Ok(Arc::new(StructArray::try_new(
        float_fields(names),
        arrays,
        Some(NullBuffer::from(valid)),
    )?))
}

/// The constant argument `index` of an aggregate call, if it is a literal.
pub fn literal(
    args: &datafusion::logical_expr::function::AccumulatorArgs,
    index: usize,
) -> Option<ScalarValue> {
    use datafusion::physical_expr::expressions::Literal;
    args.exprs
        .get(index)
        .and_then(|e| e.downcast_ref::<Literal>())
        .map(|l| l.value().clone())
}

/// An optional constant confidence level in (0, 1) at argument `index` (default 0.95).
pub fn level_argument(
    name: &str,
    args: &datafusion::logical_expr::function::AccumulatorArgs,
    index: usize,
) -> Result<f64> {
    if args.exprs.len() <= index {
        return Ok(0.95);
    }
    match literal(args, index) {
        Some(ScalarValue::Float64(Some(level))) if level > 0.0 && level < 1.0 => Ok(level),
        _ => datafusion::common::plan_err!("{name}: level must be a constant in (0, 1)"),
    }
}

/// An optional constant BOOLEAN flag at argument `index`.
pub fn flag_argument(
    name: &str,
    what: &str,
    args: &datafusion::logical_expr::function::AccumulatorArgs,
    index: usize,
    default: bool,
) -> Result<bool> {
    if args.exprs.len() <= index {
        return Ok(default);
    }
    match literal(args, index) {
        Some(ScalarValue::Boolean(Some(flag))) => Ok(flag),
        _ => datafusion::common::plan_err!("{name}: {what} must be a constant true or false"),
    }
}
