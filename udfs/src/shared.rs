//! One state for every two-group statistic of the same `(value, is_case)` in a GROUP BY.
//!
//! The discrimination report asks for the AUC with its interval, the Mann-Whitney test, the
//! Youden point, Welch's test, the fold change, and the count, mean and median of each group,
//! all of the same value and label. Each of these aggregates would keep its own state and
//! visit every row (and DataFusion's `median` would keep every value), so the report would
//! hold a biomarker's values five times, sort them five times and read each row twelve
//! times. The optimizer rule [`ShareTwoGroupState`] gives them one state instead: it replaces
//! them in an Aggregate by one internal aggregate, [`SharedTwoGroup`], which keeps the tallies
//! once (each row is visited once, to be added to them) and evaluates every statistic from
//! them into one STRUCT, and a projection above picks each statistic out under its original
//! name.
//!
//! What is shared: `auc`, `auc_ci`, `mann_whitney`, `ks_test` and `youden` without FILTER,
//! DISTINCT or ORDER BY (the statistics that need every value; a state is only formed around
//! them), and joining them, of the same DOUBLE value and label: the moment statistics
//! (`welch_t_test`, `student_t_test`, `cohens_d`, `hedges_g`, `fold_change`,
//! `log2_fold_change`), and `median(value)`, `count(value)` and `avg(value)` with `FILTER
//! (WHERE is_case)` or `FILTER (WHERE NOT is_case)`. A group of one aggregate is left alone.
//!
//! Results: the rank statistics, medians and counts are identical (the same kernels run on the
//! same tallies); tests/shared_state.rs compares them with the rule on and off. `median`,
//! `count` and `avg` keep NaN and infinite values, which the tallies skip, so the shared state
//! counts them on the side and places them where DataFusion puts them (total order for the
//! median: −NaN, −∞, finite values, +∞, +NaN). Moments and means come from the tallies in two
//! passes over the distinct values (`Moments::from_runs`), where the separate aggregates use a
//! one-pass update in the order rows arrive: the two agree to rounding (the separate ones
//! already differ in their last bits from run to run, as partial states merge in a different
//! order), and the shared ones are the more accurate and do not depend on that order.

use std::any::Any;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int64Array, ListBuilder, StructArray, UInt64Builder,
};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, UInt64Type};
use datafusion::common::tree_node::Transformed;
use datafusion::common::{Column, Result, ScalarValue, exec_err};
use datafusion::functions::core::expr_fn::get_field;
use datafusion::logical_expr::expr::{AggregateFunction, AggregateFunctionParams};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, Aggregate, AggregateUDF, AggregateUDFImpl, Expr, ExprSchemable, GroupsAccumulator,
    LogicalPlan, Projection, Signature, Volatility,
};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

use crate::kernels::PValueMethod;
use crate::kernels::moments::{Moments, TwoGroups};
use crate::moments::{MomentStatistic, MomentUdaf};
use crate::ranks::{GroupValues, Options, RankStatistic, RankUdaf, evaluate_groups};
use crate::roc::{RocFunction, RocUdaf, youden_array};
use crate::state::{Evaluate, GroupState, StateAccumulator, StateGroupsAccumulator};
use crate::two_group::for_each_labelled;

/// One statistic evaluated from the shared state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Item {
    /// A rank statistic with its method, the bits of its confidence level and whether its
    /// normal approximation has the continuity correction.
    Rank(RankStatistic, PValueMethod, u64, bool),
    Youden,
    /// A moment statistic (Welch's t test, the fold change, ...).
    Moment(MomentStatistic),
    /// `median(value)` of the cases (true) or of the controls (false).
    Median(bool),
    /// `count(value)` of the cases or of the controls.
    Count(bool),
    /// `avg(value)` of the cases or of the controls.
    Mean(bool),
}

impl Item {
    /// The same filtered statistic of the other label.
    fn other_label(self) -> Item {
        match self {
            Item::Median(c) => Item::Median(!c),
            Item::Count(c) => Item::Count(!c),
            Item::Mean(c) => Item::Mean(!c),
            other => other,
        }
    }

    /// Whether the statistic needs every value (a rank statistic): only those make a shared
    /// state worth keeping; the others join one.
    fn needs_values(self) -> bool {
        matches!(self, Item::Rank(..) | Item::Youden)
    }
}

/// Which rows go to which item: the candidate aggregate calls of an Aggregate node.
struct Candidate {
    /// Position in the Aggregate's `aggr_expr`.
    position: usize,
    item: Item,
    value: Expr,
    label: Expr,
}

/// The internal aggregate: the tallies of one `(value, is_case)` and every statistic asked of
/// them, returned as a STRUCT with one field per item (named "0", "1", ...).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SharedTwoGroup {
    items: Vec<Item>,
    /// The items' result types and whether they can be NULL, in order.
    types: Vec<(DataType, bool)>,
    signature: Signature,
}

/// The name the internal aggregate shows in plans.
pub const SHARED_NAME: &str = "discern_shared_ranks";

impl SharedTwoGroup {
    fn new(items: Vec<Item>, types: Vec<(DataType, bool)>) -> Self {
        Self {
            items,
            types,
            signature: Signature::exact(
                vec![DataType::Float64, DataType::Boolean],
                Volatility::Immutable,
            ),
        }
    }

    fn fields(&self) -> Fields {
        self.types
            .iter()
            .enumerate()
            .map(|(i, (t, nullable))| Field::new(i.to_string(), t.clone(), *nullable))
            .collect()
    }

    fn evaluate(&self) -> Evaluate<SharedValues> {
        let items = self.items.clone();
        let fields = self.fields();
        Evaluate::new(move |groups: &mut [SharedValues]| {
            let mut values: Vec<GroupValues> = groups
                .iter_mut()
                .map(|g| {
                    g.values.compact();
                    std::mem::take(&mut g.values)
                })
                .collect();
            // Moments of the finite values, from the tallies, if a statistic needs them.
            let moments: Vec<TwoGroups> = if items
                .iter()
                .any(|i| matches!(i, Item::Moment(_) | Item::Mean(_)))
            {
                values
                    .iter()
                    .map(|v| TwoGroups {
                        control: Moments::from_runs(v.control.runs()),
                        case: Moments::from_runs(v.case.runs()),
                    })
                    .collect()
            } else {
                Vec::new()
            };
            // U and DeLong's variance in one walk per group, shared by the rank statistics.
            let summaries = items
                .iter()
                .any(|i| matches!(i, Item::Rank(s, ..) if *s != RankStatistic::Ks))
                .then(|| crate::ranks::summaries(&values));
            let mut columns = Vec::with_capacity(items.len());
            for item in &items {
                columns.push(match *item {
                    Item::Rank(statistic, method, level, correct) => {
                        let options = Options {
                            method,
                            level: f64::from_bits(level),
                            correct,
                            ..Options::default()
                        };
                        match (statistic, &summaries) {
                            (RankStatistic::Ks, _) => crate::ranks::ks_array(options, &values)?,
                            (_, Some(summaries)) => crate::ranks::evaluate_summaries(
                                statistic, options, summaries, &values,
                            )?,
                            (_, None) => evaluate_groups(statistic, options, &mut values)?,
                        }
                    }
                    Item::Youden => youden_array(&mut values)?,
                    Item::Moment(statistic) => {
                        crate::moments::evaluate_groups(statistic, &moments)?
                    }
                    Item::Median(case) => median_array(groups, &values, case),
                    Item::Count(case) => count_array(groups, &values, case),
                    Item::Mean(case) => mean_array(groups, &moments, case),
                });
            }
            Ok(Arc::new(StructArray::try_new(fields.clone(), columns, None)?) as ArrayRef)
        })
    }
}

impl AggregateUDFImpl for SharedTwoGroup {
    fn name(&self) -> &str {
        SHARED_NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(self.fields()))
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(StateAccumulator::new(self.evaluate())))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let mut fields = GroupValues::state_fields(args.name);
        let list = DataType::List(Arc::new(Field::new_list_field(DataType::UInt64, true)));
        fields.push(Arc::new(Field::new(
            format_state_name(args.name, "nonfinite_counts"),
            list,
            true,
        )));
        Ok(fields)
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        _args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(StateGroupsAccumulator::new(self.evaluate())))
    }
}

/// The shared state of one group: the finite values' tallies, and per label how many values
/// were −NaN, −∞, +∞ and +NaN (only `median` sees those).
#[derive(Debug, Default, Clone)]
struct SharedValues {
    values: GroupValues,
    /// `[label][kind]`: label 0 = cases, 1 = controls; kind in [`NONFINITE`] order.
    nonfinite: [[u64; 4]; 2],
}

impl SharedValues {
    /// The non-finite counts of the cases (`case`) or of the controls.
    fn nonfinite_of(&self, case: bool) -> &[u64; 4] {
        &self.nonfinite[label_index(case)]
    }
}

/// The index of a label in [`SharedValues::nonfinite`]: 0 = cases, 1 = controls.
fn label_index(case: bool) -> usize {
    usize::from(!case)
}

/// The order of the non-finite counts: −NaN, −∞, +∞, +NaN.
const NONFINITE: [f64; 4] = [-f64::NAN, f64::NEG_INFINITY, f64::INFINITY, f64::NAN];

fn nonfinite_kind(x: f64) -> usize {
    match (x.is_nan(), x.is_sign_negative()) {
        (true, true) => 0,
        (false, true) => 1,
        (false, false) => 2,
        (true, false) => 3,
    }
}

impl GroupState for SharedValues {
    fn update(
        groups: &mut [Self],
        values: &[ArrayRef],
        filter: Option<&datafusion::arrow::array::BooleanArray>,
        group: impl Fn(usize) -> usize,
    ) -> Result<isize> {
        let mut grew = 0isize;
        for_each_labelled(values, filter, |row, x, is_case| {
            let g = &mut groups[group(row)];
            if x.is_finite() {
                grew += g.values.push(x, is_case);
            } else {
                g.nonfinite[label_index(is_case)][nonfinite_kind(x)] += 1;
            }
        })?;
        Ok(grew)
    }

    fn merge(
        groups: &mut [Self],
        states: &[ArrayRef],
        group: impl Fn(usize) -> usize,
    ) -> Result<isize> {
        let lists = GroupValues::state_lists(states)?;
        let Some(nonfinite) = states.get(4).map(|a| a.as_list::<i32>()) else {
            return exec_err!("expected 5 state arrays, got {}", states.len());
        };
        let mut grew = 0isize;
        for row in 0..nonfinite.len() {
            let g = &mut groups[group(row)];
            let before = g.values.bytes() as isize;
            g.values.merge_row(&lists, row)?;
            grew += g.values.bytes() as isize - before;
            if nonfinite.is_null(row) {
                continue;
            }
            let counts = nonfinite.value(row);
            let counts = counts.as_primitive::<UInt64Type>().values();
            if counts.len() != 8 {
                return exec_err!("malformed shared rank state: {} counts", counts.len());
            }
            for (i, c) in counts.iter().enumerate() {
                g.nonfinite[i / 4][i % 4] += c;
            }
        }
        Ok(grew)
    }

    fn to_arrays(groups: &[Self]) -> Result<Vec<ArrayRef>> {
        let mut arrays = GroupValues::arrays(groups.iter().map(|g| &g.values));
        let mut counts = ListBuilder::new(UInt64Builder::new());
        for g in groups {
            counts.values().append_slice(g.nonfinite.as_flattened());
            counts.append(true);
        }
        arrays.push(Arc::new(counts.finish()));
        Ok(arrays)
    }

    fn heap_bytes(&self) -> usize {
        self.values.bytes()
    }
}

/// The median of the cases or the controls of each group, as DataFusion's `median` computes
/// it: the middle value in total order, or the mean of the two middle values.
fn median_array(groups: &[SharedValues], values: &[GroupValues], case: bool) -> ArrayRef {
    let medians = groups.iter().zip(values).map(|(g, v)| {
        let (tally, counts) = (v.tally(case), g.nonfinite_of(case));
        let below = counts[0] + counts[1];
        let n = below + tally.len() + counts[2] + counts[3];
        // The k-th value (0-based) in total order.
        let at = |k: u64| -> f64 {
            if k < counts[0] {
                return NONFINITE[0];
            }
            if k < below {
                return NONFINITE[1];
            }
            let mut k = k - below;
            for (x, c) in tally.runs() {
                if k < c {
                    return x;
                }
                k -= c;
            }
            if k < counts[2] {
                NONFINITE[2]
            } else {
                NONFINITE[3]
            }
        };
        match n {
            0 => None,
            n if n % 2 == 1 => Some(at(n / 2)),
            n => Some((at(n / 2 - 1) + at(n / 2)) / 2.0),
        }
    });
    Arc::new(Float64Array::from_iter(medians))
}

/// The count of non-NULL values of the cases or the controls of each group, as `count(value)
/// FILTER (WHERE is_case)` (or `NOT is_case`) counts them: NaN and ±∞ included.
fn count_array(groups: &[SharedValues], values: &[GroupValues], case: bool) -> ArrayRef {
    let counts = groups.iter().zip(values).map(|(g, v)| {
        let n = v.tally(case).len() + g.nonfinite_of(case).iter().sum::<u64>();
        i64::try_from(n).unwrap_or(i64::MAX)
    });
    Arc::new(Int64Array::from_iter_values(counts))
}

/// The mean of the cases or the controls of each group, as `avg(value) FILTER (...)`: NULL
/// without values, NaN with a NaN or with both infinities, ±∞ with one of them, otherwise the
/// mean of the finite values. DataFusion's `avg` adds the values in the order they arrive;
/// this is the mean of the exact sum (see `Moments::from_runs`), so the two can differ in the
/// last bits, this one being the correctly rounded one.
fn mean_array(groups: &[SharedValues], moments: &[TwoGroups], case: bool) -> ArrayRef {
    let means = groups.iter().zip(moments).map(|(g, m)| {
        let m = if case { &m.case } else { &m.control };
        let [negative_nan, minus_infinity, plus_infinity, nan] = *g.nonfinite_of(case);
        if m.n + negative_nan + minus_infinity + plus_infinity + nan == 0 {
            None
        } else if negative_nan + nan > 0 || (minus_infinity > 0 && plus_infinity > 0) {
            Some(f64::NAN)
        } else if minus_infinity > 0 {
            Some(f64::NEG_INFINITY)
        } else if plus_infinity > 0 {
            Some(f64::INFINITY)
        } else {
            Some(m.mean())
        }
    });
    Arc::new(Float64Array::from_iter(means))
}

/// The optimizer rule that gives rank statistics of the same arguments one state.
#[derive(Debug, Default)]
pub struct ShareTwoGroupState;

impl OptimizerRule for ShareTwoGroupState {
    fn name(&self) -> &str {
        "discern_share_two_group_state"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let LogicalPlan::Aggregate(aggregate) = plan else {
            return Ok(Transformed::no(plan));
        };
        match share(&aggregate)? {
            Some(rewritten) => Ok(Transformed::yes(rewritten)),
            None => Ok(Transformed::no(LogicalPlan::Aggregate(aggregate))),
        }
    }
}

/// The aggregate call inside `expr` (which may be aliased).
fn aggregate_call(expr: &Expr) -> Option<&AggregateFunction> {
    match expr {
        Expr::AggregateFunction(f) => Some(f),
        Expr::Alias(alias) => aggregate_call(&alias.expr),
        _ => None,
    }
}

/// A constant string argument.
fn string_literal(expr: Option<&Expr>) -> Option<&str> {
    match expr? {
        Expr::Literal(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)),
            _,
        ) => Some(s),
        _ => None,
    }
}

/// What a call of one of our two-group aggregates asks of a shared state, if it can be
/// shared: (item, value, label).
fn two_group_candidate(call: &AggregateFunction) -> Option<(Item, Expr, Expr)> {
    let AggregateFunctionParams {
        args,
        distinct,
        filter,
        order_by,
        null_treatment,
    } = &call.params;
    if *distinct || filter.is_some() || !order_by.is_empty() || null_treatment.is_some() {
        return None;
    }
    let inner: &dyn Any = call.func.inner().as_ref();
    let item = if let Some(rank) = inner.downcast_ref::<RankUdaf>() {
        let statistic = rank.statistic();
        if statistic == RankStatistic::Bootstrap {
            // Its replicates and seed are not part of the shared item.
            return None;
        }
        let mut method = PValueMethod::Auto;
        let mut level = 0.95f64;
        let correct = match (statistic, args.get(3)) {
            (_, None) => true,
            (RankStatistic::MannWhitney, Some(Expr::Literal(ScalarValue::Boolean(Some(c)), _))) => {
                *c
            }
            _ => return None,
        };
        match (statistic, args.get(2)) {
            (_, None) => {}
            (RankStatistic::MannWhitney | RankStatistic::Ks, third) => {
                method =
                    crate::ranks::parse_method(statistic.name(), string_literal(third)?).ok()?
            }
            (RankStatistic::AucCi, Some(Expr::Literal(ScalarValue::Float64(Some(l)), _)))
                if *l > 0.0 && *l < 1.0 =>
            {
                level = *l
            }
            _ => return None,
        }
        Item::Rank(statistic, method, level.to_bits(), correct)
    } else if let Some(roc) = inner.downcast_ref::<RocUdaf>() {
        if roc.function() != RocFunction::Youden || args.len() != 2 {
            return None;
        }
        Item::Youden
    } else if let Some(moment) = inner.downcast_ref::<MomentUdaf>() {
        Item::Moment(moment.statistic())
    } else {
        return None;
    };
    match args.as_slice() {
        [value, label, ..] => Some((item, value.clone(), label.clone())),
        _ => None,
    }
}

/// `median(value)`, `count(value)` or `avg(value)` with `FILTER (WHERE label)` or `FILTER
/// (WHERE NOT label)`: (the item, as if the filter were the cases, value, label).
fn filtered_candidate(call: &AggregateFunction) -> Option<(Item, &Expr, &Expr)> {
    let params = &call.params;
    let item = match call.func.name() {
        "median" => Item::Median(true),
        "count" => Item::Count(true),
        "avg" => Item::Mean(true),
        _ => return None,
    };
    if params.distinct || !params.order_by.is_empty() || params.args.len() != 1 {
        return None;
    }
    match params.filter.as_deref()? {
        Expr::Not(label) => Some((item.other_label(), &params.args[0], label.as_ref())),
        label => Some((item, &params.args[0], label)),
    }
}

/// `expr` without aliases, and seen through the projection below the aggregate: common
/// subexpression elimination computes `NOT is_case` once there, as `__common_expr_1`, and
/// the FILTER clauses refer to that column.
fn resolve(expr: &Expr, input: &LogicalPlan) -> Expr {
    match expr {
        Expr::Alias(alias) => resolve(&alias.expr, input),
        Expr::Column(column) => {
            if let LogicalPlan::Projection(projection) = input
                && let Some(i) = projection.schema.maybe_index_of_column(column)
                && let Some(defined) = projection.expr.get(i)
                && column.name.starts_with("__common_expr")
            {
                return resolve(defined, &projection.input);
            }
            expr.clone()
        }
        Expr::Not(inner) => Expr::Not(Box::new(resolve(inner, input))),
        _ => expr.clone(),
    }
}

/// Rewrites `aggregate` if two or more of its calls can share a state.
fn share(aggregate: &Aggregate) -> Result<Option<LogicalPlan>> {
    let input_schema = aggregate.input.schema();
    let mut candidates: Vec<Candidate> = Vec::new();
    for (position, expr) in aggregate.aggr_expr.iter().enumerate() {
        let Some(call) = aggregate_call(expr) else {
            continue;
        };
        if let Some((item, value, label)) = two_group_candidate(call) {
            candidates.push(Candidate {
                position,
                item,
                value,
                label,
            });
        }
    }
    // Filtered medians, counts and means join a group of rank statistics of the same value
    // and label.
    for (position, expr) in aggregate.aggr_expr.iter().enumerate() {
        let Some((item, value, label)) = aggregate_call(expr).and_then(filtered_candidate) else {
            continue;
        };
        let input = aggregate.input.as_ref();
        let (label, item) = match resolve(label, input) {
            Expr::Not(inner) => (*inner, item.other_label()),
            resolved => (resolved, item),
        };
        let (value, label) = (&resolve(value, input), &label);
        // The rank statistics' own arguments (valid against the aggregate's input).
        let same_arguments = candidates.iter().find(|c| {
            c.item.needs_values()
                && &resolve(&c.value, input) == value
                && &resolve(&c.label, input) == label
        });
        if let Some(c) = same_arguments
            && c.value.get_type(input_schema.as_ref())? == DataType::Float64
        {
            let (value, label) = (c.value.clone(), c.label.clone());
            candidates.push(Candidate {
                position,
                item,
                value,
                label,
            });
        }
    }
    // Groups of two or more calls on the same (value, label), in order of appearance.
    let mut groups: Vec<(Expr, Expr, Vec<usize>)> = Vec::new();
    for (i, c) in candidates.iter().enumerate() {
        match groups
            .iter_mut()
            .find(|(v, l, _)| v == &c.value && l == &c.label)
        {
            Some((_, _, members)) => members.push(i),
            None => groups.push((c.value.clone(), c.label.clone(), vec![i])),
        }
    }
    groups.retain(|(_, _, members)| {
        members.len() >= 2 && members.iter().any(|&m| candidates[m].item.needs_values())
    });
    if groups.is_empty() {
        return Ok(None);
    }

    // Where each original aggregate's result comes from: (shared column, field).
    let original = aggregate.schema.as_ref();
    let group_fields = original.fields().len() - aggregate.aggr_expr.len();
    let mut source: Vec<Option<(String, usize)>> = vec![None; aggregate.aggr_expr.len()];
    let mut new_aggr: Vec<Expr> = Vec::new();
    let mut shared_exprs = Vec::new();
    for (k, (value, label, members)) in groups.iter().enumerate() {
        let name = format!("__{SHARED_NAME}_{k}");
        let mut items = Vec::with_capacity(members.len());
        let mut types = Vec::with_capacity(members.len());
        for (at, &m) in members.iter().enumerate() {
            let c = &candidates[m];
            items.push(c.item);
            let field = original.field(group_fields + c.position);
            types.push((field.data_type().clone(), field.is_nullable()));
            source[c.position] = Some((name.clone(), at));
        }
        let udaf = AggregateUDF::from(SharedTwoGroup::new(items, types));
        shared_exprs.push(
            Expr::AggregateFunction(AggregateFunction::new_udf(
                Arc::new(udaf),
                vec![value.clone(), label.clone()],
                false,
                None,
                vec![],
                None,
            ))
            .alias(name),
        );
    }
    for (position, expr) in aggregate.aggr_expr.iter().enumerate() {
        if source[position].is_none() {
            new_aggr.push(expr.clone());
        }
    }
    new_aggr.extend(shared_exprs);
    let new_aggregate = Aggregate::try_new(
        Arc::clone(&aggregate.input),
        aggregate.group_expr.clone(),
        new_aggr,
    )?;
    let new_schema = Arc::clone(&new_aggregate.schema);

    // The projection restores the original columns, names and order.
    let mut exprs = Vec::with_capacity(original.fields().len());
    let mut kept = 0;
    for (i, (qualifier, field)) in original.iter().enumerate() {
        let expr = if i < group_fields {
            let (q, f) = new_schema.qualified_field(i);
            Expr::Column(Column::from((q, f)))
        } else {
            match &source[i - group_fields] {
                Some((name, at)) => get_field(
                    Expr::Column(Column::from_name(name.clone())),
                    at.to_string(),
                ),
                None => {
                    let (q, f) = new_schema.qualified_field(group_fields + kept);
                    kept += 1;
                    Expr::Column(Column::from((q, f)))
                }
            }
        };
        // Columns keep their names; only the picked-out fields need the original one.
        exprs.push(match expr {
            Expr::Column(_) => expr,
            _ => expr.alias_qualified(qualifier.cloned(), field.name()),
        });
    }
    let projection = Projection::try_new_with_schema(
        exprs,
        Arc::new(LogicalPlan::Aggregate(new_aggregate)),
        Arc::clone(&aggregate.schema),
    )?;
    Ok(Some(LogicalPlan::Projection(projection)))
}
