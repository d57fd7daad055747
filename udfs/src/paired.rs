//! Paired designs: `paired_t_test(diff)`.
//!
//! The argument is the within-pair difference (case minus its matched control, or after minus
//! before), so a matched design is `paired_t_test(case_value - control_value)` over the pairs.
//! NULL, NaN and infinite differences are skipped; fewer than 2 differences, or differences
//! that are all equal, give NULL.

use std::mem::size_of;
use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, StructArray, UInt64Array,
};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, Float64Type, UInt64Type};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Documentation, EmitTo, GroupsAccumulator,
    Signature, Volatility,
};

use crate::docs::{SECTION, doc};
use crate::kernels::moments::{Moments, TTest, one_sample};

/// The `paired_t_test` aggregate.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PairedTTest {
    signature: Signature,
}

impl Default for PairedTTest {
    fn default() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

/// The functions of this family, for registration.
pub fn all() -> Vec<Arc<AggregateUDF>> {
    vec![Arc::new(AggregateUDF::from(PairedTTest::default()))]
}

fn fields() -> Fields {
    Fields::from(vec![
        Field::new("statistic", DataType::Float64, true),
        Field::new("p", DataType::Float64, true),
    ])
}

const STATE: [(&str, DataType); 4] = [
    ("n", DataType::UInt64),
    ("mean", DataType::Float64),
    ("mean_lo", DataType::Float64),
    ("m2", DataType::Float64),
];

impl AggregateUDFImpl for PairedTTest {
    fn name(&self) -> &str {
        "paired_t_test"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types {
            [t] if t.is_numeric() || t.is_null() => Ok(vec![DataType::Float64]),
            [t] => plan_err!("paired_t_test: diff must be numeric, got {t}"),
            _ => plan_err!(
                "paired_t_test(diff) takes 1 argument, got {}",
                arg_types.len()
            ),
        }
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(fields()))
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(PairedAccumulator::default()))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(STATE
            .iter()
            .map(|(n, t)| Arc::new(Field::new(format_state_name(args.name, n), t.clone(), true)))
            .collect())
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        _args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(PairedGroupsAccumulator::default()))
    }

    fn documentation(&self) -> Option<&Documentation> {
        static DOC: OnceLock<Documentation> = OnceLock::new();
        Some(DOC.get_or_init(|| {
            doc(
                SECTION,
                "Paired t test of the within-pair differences against 0, two-sided: \
                 statistic = mean(diff) / (sd(diff) / sqrt(n)) with n − 1 degrees of freedom. \
                 Matches scipy.stats.ttest_1samp(diff, 0) and R t.test(x, y, paired = TRUE). \
                 NULL with fewer than 2 differences or when all differences are equal.",
                "paired_t_test(diff)",
                "SELECT biomarker, paired_t_test(after - before)['p'] AS p\nFROM visits GROUP BY biomarker;",
            )
            .with_argument(
                "diff",
                "The within-pair difference (numeric). NULL, NaN and infinite values are skipped.",
            )
            .build()
        }))
    }
}

fn push_values(
    values: &[ArrayRef],
    filter: Option<&BooleanArray>,
    mut f: impl FnMut(usize, f64),
) -> Result<()> {
    let Some(diff) = values.first() else {
        return exec_err!("paired_t_test: missing the diff argument");
    };
    let diff = diff.as_primitive::<Float64Type>();
    for (row, x) in diff.iter().enumerate() {
        let selected = filter.is_none_or(|f| f.is_valid(row) && f.value(row));
        if let Some(x) = x.filter(|x| x.is_finite() && selected) {
            f(row, x);
        }
    }
    Ok(())
}

fn for_each_state(states: &[ArrayRef], mut f: impl FnMut(usize, Moments)) -> Result<()> {
    let [n, mean, mean_lo, m2] = states else {
        return exec_err!(
            "paired_t_test: expected 4 state arrays, got {}",
            states.len()
        );
    };
    let n = n.as_primitive::<UInt64Type>();
    let (mean, mean_lo, m2) = (
        mean.as_primitive::<Float64Type>(),
        mean_lo.as_primitive::<Float64Type>(),
        m2.as_primitive::<Float64Type>(),
    );
    for row in 0..n.len() {
        if !n.is_null(row) {
            f(
                row,
                Moments {
                    n: n.value(row),
                    mean: mean.value(row),
                    mean_lo: mean_lo.value(row),
                    m2: m2.value(row),
                },
            );
        }
    }
    Ok(())
}

fn state_arrays(moments: &[Moments]) -> Vec<ArrayRef> {
    vec![
        Arc::new(UInt64Array::from_iter_values(moments.iter().map(|m| m.n))),
        Arc::new(Float64Array::from_iter_values(
            moments.iter().map(|m| m.mean),
        )),
        Arc::new(Float64Array::from_iter_values(
            moments.iter().map(|m| m.mean_lo),
        )),
        Arc::new(Float64Array::from_iter_values(moments.iter().map(|m| m.m2))),
    ]
}

fn evaluate(moments: &[Moments]) -> Result<ArrayRef> {
    let tests: Vec<Option<TTest>> = moments.iter().map(one_sample).collect();
    let column = |f: fn(&TTest) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter(
            tests.iter().map(|t| t.as_ref().map(f)),
        ))
    };
    Ok(Arc::new(StructArray::try_new(
        fields(),
        vec![column(|t| t.t), column(|t| t.p)],
        Some(NullBuffer::from_iter(tests.iter().map(Option::is_some))),
    )?))
}

#[derive(Debug, Default)]
struct PairedAccumulator {
    moments: Moments,
}

impl Accumulator for PairedAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        push_values(values, None, |_, x| self.moments.push(x))
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        for_each_state(states, |_, other| self.moments.merge(&other))
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        state_arrays(std::slice::from_ref(&self.moments))
            .iter()
            .map(|a| ScalarValue::try_from_array(a, 0))
            .collect()
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        ScalarValue::try_from_array(&evaluate(std::slice::from_ref(&self.moments))?, 0)
    }

    fn size(&self) -> usize {
        size_of::<Self>()
    }
}

#[derive(Debug, Default)]
struct PairedGroupsAccumulator {
    groups: Vec<Moments>,
}

impl GroupsAccumulator for PairedGroupsAccumulator {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.groups.resize(total_num_groups, Moments::default());
        let groups = &mut self.groups;
        push_values(values, opt_filter, |row, x| {
            groups[group_indices[row]].push(x)
        })
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.groups.resize(total_num_groups, Moments::default());
        let groups = &mut self.groups;
        for_each_state(values, |row, other| {
            groups[group_indices[row]].merge(&other)
        })
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        evaluate(&emit_to.take_needed(&mut self.groups))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(state_arrays(&emit_to.take_needed(&mut self.groups)))
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let rows = values.first().map_or(0, |v| v.len());
        let mut moments = vec![Moments::default(); rows];
        push_values(values, opt_filter, |row, x| moments[row].push(x))?;
        Ok(state_arrays(&moments))
    }

    fn size(&self) -> usize {
        size_of::<Self>() + self.groups.capacity() * size_of::<Moments>()
    }
}
